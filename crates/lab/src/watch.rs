//! Watching the target's records while a lab is open, so that a step done beside dicomlab — in
//! Postman, with curl or Python — is judged when its record arrives, without a key press.
//!
//! - The embedded practice service (in this process) says when it has written a record a check could
//!   use ([`Plan::Pushed`]): nothing is polled, and an idle lab costs no CPU at all.
//! - Any other target is looked at ([`Plan::Polled`]) with cheap reads that show whether something
//!   new happened: the newest of the learner's rows in the audit and sign-in logs (the checks' own
//!   left out), the change feed's latest sequence, or — a generic server, which keeps no history — a
//!   fingerprint of its studies. Each source has its own pace ([`Every`]): fast after a change,
//!   slowing down while nothing changes, never faster than its ceiling ([`Schedule::ceiling`]).
//!
//! A change is only a reason to judge again: verdicts still come from the checks, and the watch's
//! own reads are the checks' (marked, noted in the ledger), never the learner's.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::engine::Session;
use super::evidence;
use super::progress::ProgressStore;
use crate::targets::TargetKind;
use dicomlab_dicomweb::DicomWebClient;

impl Session {
    /// How this session learns that the target's records changed: the embedded service tells; any
    /// other target is looked at on a schedule that fits it.
    pub fn watch_plan(&self) -> Plan {
        match &self.practice {
            Some(p) => Plan::Pushed(p.records()),
            None => Plan::Polled(Schedule::for_target(self.kind, self.log.is_some())),
        }
    }
}

/// How a session learns that the target's records changed.
pub enum Plan {
    /// The service is in this process and tells (the value only counts).
    Pushed(tokio::sync::watch::Receiver<u64>),
    /// The service is looked at on a schedule.
    Polled(Schedule),
}

/// One source's pace: `fast` after a change, growing by half each look that finds nothing new, up
/// to `slow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    pub fast: Duration,
    pub slow: Duration,
}

impl Every {
    const fn secs(fast: u64, slow: u64) -> Every {
        Every {
            fast: Duration::from_secs(fast),
            slow: Duration::from_secs(slow),
        }
    }

    /// The wait after a look.
    pub fn next(self, waited: Duration, changed: bool) -> Duration {
        if changed {
            self.fast
        } else {
            (waited + waited / 2).clamp(self.fast, self.slow)
        }
    }
}

/// What a polled target is looked at, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The audit and sign-in logs (two queries a look).
    pub log: Option<Every>,
    /// The change feed's latest entry (one request a look).
    pub feed: Option<Every>,
    /// A generic server's studies (one search a look).
    pub studies: Option<Every>,
}

impl Schedule {
    /// The schedule that fits a target:
    /// - a practice service: its logs every 1 s after a change, up to every 2 s (they are on the
    ///   same machine or network, and written within a second);
    /// - Azure: the change feed every 5 s, up to 15 s (stores and deletes show there at once), and
    ///   the audit log every 30 s, up to 60 s (Azure delivers it minutes late anyway);
    /// - a generic server: its studies every 10 s, up to 30 s.
    pub fn for_target(kind: TargetKind, has_log: bool) -> Schedule {
        match kind {
            TargetKind::Practice if has_log => Schedule {
                log: Some(Every::secs(1, 2)),
                feed: None,
                studies: None,
            },
            TargetKind::Practice | TargetKind::Azure => Schedule {
                log: has_log.then_some(Every::secs(30, 60)),
                feed: Some(Every::secs(5, 15)),
                studies: None,
            },
            TargetKind::Generic => Schedule {
                log: None,
                feed: None,
                studies: Some(Every::secs(10, 30)),
            },
        }
    }

    /// The most requests a minute the watch sends (every source at its fastest), and the fewest
    /// (every source at its slowest: nothing happens).
    pub fn ceiling(&self) -> (u32, u32) {
        let per_min = |e: Option<Every>, n: u32, d: fn(&Every) -> Duration| {
            e.map_or(0, |e| n * (60 / d(&e).as_secs().max(1)) as u32)
        };
        let at = |d: fn(&Every) -> Duration| {
            per_min(self.log, 2, d) + per_min(self.feed, 1, d) + per_min(self.studies, 1, d)
        };
        (at(|e| e.fast), at(|e| e.slow))
    }

    /// How often it looks, for the status bar (`1–2 s`).
    pub fn pace(&self) -> String {
        let e = [self.log, self.feed, self.studies]
            .into_iter()
            .flatten()
            .min_by_key(|e| e.fast);
        match e {
            Some(e) => format!("{}–{} s", e.fast.as_secs(), e.slow.as_secs()),
            None => "never".into(),
        }
    }
}

/// What one look found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    pub at: OffsetDateTime,
    /// Something new happened since the previous look (never on the first: it sets the baseline).
    pub changed: bool,
    /// A source could not be read (said in the status bar; the watch goes on).
    pub problem: Option<String>,
}

/// What the previous looks saw.
#[derive(Debug, Default)]
struct Seen {
    log: Option<Option<OffsetDateTime>>,
    feed: Option<Option<u64>>,
    studies: Option<u64>,
}

/// Compares a new reading with the previous one (none before: the baseline, not a change).
fn differs<T: PartialEq>(previous: &mut Option<T>, now: T) -> bool {
    let changed = previous.as_ref().is_some_and(|p| *p != now);
    *previous = Some(now);
    changed
}

/// Looks at the target on `schedule` for as long as the task runs, telling `on` after each look.
/// `store` holds the checks' own requests kept with progress (their rows are left out where the
/// log keeps no User-Agent).
pub async fn poll(
    session: Arc<Session>,
    lab: String,
    store: Arc<Mutex<ProgressStore>>,
    schedule: Schedule,
    on: impl Fn(Look) + Send,
) {
    // The watch's reads are the checks': marked and noted in the ledger, never in the exchange pane.
    let client = &session.checker;
    let sources = [
        (Source::Log, schedule.log),
        (Source::Feed, schedule.feed),
        (Source::Studies, schedule.studies),
    ];
    let mut due: Vec<(Source, Every, Duration, Instant)> = sources
        .into_iter()
        .filter_map(|(s, e)| e.map(|e| (s, e, e.fast, Instant::now())))
        .collect();
    if due.is_empty() {
        return;
    }
    let mut seen = Seen::default();
    let learner = session.learner().await;
    // The logs are read from the newest row seen on (the first look: the last hour), so that a look
    // costs the same on a log of millions of rows.
    let mut log_since = OffsetDateTime::now_utc() - time::Duration::hours(1);
    loop {
        let Some(next) = due.iter().map(|d| d.3).min() else {
            return;
        };
        tokio::time::sleep_until(next).await;
        let now = Instant::now();
        let mut changed = false;
        let mut problem = None;
        for (source, every, waited, at) in &mut due {
            if *at > now {
                continue;
            }
            let found = match source {
                Source::Log => match &session.log {
                    Some(reader) => {
                        let own = {
                            let s = store.lock().await;
                            let mut own = s.target(&lab, &session.target_key).own;
                            own.extend(session.ledger.snapshot());
                            own
                        };
                        evidence::newest_learner_row(reader, &learner, Some(log_since), &own)
                            .await
                            .map(|t| {
                                if let Some(t) = t {
                                    log_since = log_since.max(t);
                                }
                                differs(&mut seen.log, t)
                            })
                            .map_err(|e| format!("the audit log: {e}"))
                    }
                    None => Ok(false),
                },
                Source::Feed => feed_latest(client)
                    .await
                    .map(|s| differs(&mut seen.feed, s)),
                Source::Studies => studies_print(client)
                    .await
                    .map(|p| differs(&mut seen.studies, p)),
            };
            let news = match found {
                Ok(c) => c,
                Err(e) => {
                    problem = Some(dicomlab_dicom::text::visible(&e).into_owned());
                    false
                }
            };
            changed |= news;
            *waited = every.next(*waited, news);
            *at = now + *waited;
        }
        on(Look {
            at: OffsetDateTime::now_utc(),
            changed,
            problem,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Log,
    Feed,
    Studies,
}

/// The change feed's latest sequence (None: empty).
async fn feed_latest(client: &DicomWebClient) -> Result<Option<u64>, String> {
    let a = client
        .change_feed_latest()
        .await
        .map_err(|e| format!("the change feed: {e}"))?;
    if a.status == 204 {
        return Ok(None);
    }
    if !a.ok() {
        return Err(format!("the change feed: {}", a.exchange.summary()));
    }
    Ok(a.json().and_then(|v| {
        dicomlab_dicomweb::get_ci(&v, "sequence").and_then(serde_json::Value::as_u64)
    }))
}

/// A fingerprint of a generic server's studies and their instance counts (its stored data is its
/// only record).
async fn studies_print(client: &DicomWebClient) -> Result<u64, String> {
    let a = client
        .get(
            "studies?includefield=NumberOfStudyRelatedInstances&limit=200",
            dicomlab_dicomweb::routes::DICOM_JSON,
        )
        .await
        .map_err(|e| format!("the studies: {e}"))?;
    if !a.ok() && a.status != 204 {
        return Err(format!("the studies: {}", a.exchange.summary()));
    }
    let mut h = DefaultHasher::new();
    a.status.hash(&mut h);
    a.text().hash(&mut h);
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pace_slows_while_nothing_changes_and_is_fast_after_a_change() {
        let e = Every::secs(1, 2);
        let mut w = e.fast;
        w = e.next(w, false);
        assert_eq!(w, Duration::from_millis(1500));
        w = e.next(w, false);
        assert_eq!(w, Duration::from_secs(2));
        w = e.next(w, false);
        assert_eq!(w, Duration::from_secs(2), "never slower than its ceiling");
        assert_eq!(e.next(w, true), Duration::from_secs(1));
    }

    #[test]
    fn each_target_has_a_documented_ceiling() {
        let practice = Schedule::for_target(TargetKind::Practice, true);
        assert_eq!(practice.ceiling(), (120, 60));
        assert_eq!(practice.pace(), "1–2 s");
        let azure = Schedule::for_target(TargetKind::Azure, true);
        assert_eq!(azure.ceiling(), (12 + 4, 4 + 2));
        let azure_without_log = Schedule::for_target(TargetKind::Azure, false);
        assert_eq!(azure_without_log.ceiling(), (12, 4));
        let generic = Schedule::for_target(TargetKind::Generic, false);
        assert_eq!(generic.ceiling(), (6, 2));
        assert_eq!(generic.pace(), "10–30 s");
    }

    #[test]
    fn the_first_reading_is_a_baseline_not_a_change() {
        let mut seen: Option<u64> = None;
        assert!(!differs(&mut seen, 3));
        assert!(!differs(&mut seen, 3));
        assert!(differs(&mut seen, 4));
    }
}
