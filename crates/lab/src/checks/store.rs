//! The store step: Create entries in the change feed, attributed to the learner by the audit log where
//! it names callers; on a server without history, its stored data.

use super::{
    CheckContext, Outcome, Tried, checks_saw, diagnose_error, fail, find_instance, pass, ready,
};
use crate::clock::local_time;
use crate::dataset::Instance;
use crate::diagnose::diagnose_answer;
use crate::evidence::{Attempt, Evidence, FeedEntry, Source};
use crate::model::Step;
use crate::request::RequestPattern;
use time::OffsetDateTime;

fn store_patterns() -> Vec<RequestPattern> {
    ["POST studies", "POST studies/x1"]
        .iter()
        .filter_map(|p| RequestPattern::parse(p).ok())
        .collect()
}

fn is_store(a: &Attempt) -> bool {
    store_patterns().iter().any(|p| a.tries(p))
}

/// Create entries in the change feed, attributed to the learner by the audit log where it names callers.
pub(super) async fn store(ctx: &CheckContext<'_>, step: &Step, names: &[String]) -> Outcome {
    let wanted: Vec<&Instance> = names
        .iter()
        .filter_map(|n| ctx.lab.dataset.instance(n))
        .collect();
    let titles = |v: &[&Instance]| v.iter().map(|i| i.display()).collect::<Vec<_>>().join(", ");
    let expected = format!("Create entries in the change feed for {}", titles(&wanted));
    let tried = ctx.tried(is_store, |a| !a.ok());
    let Some(feed) = &ctx.records.feed else {
        if let Some(a) = &ctx.records.feed_error {
            return checks_saw(
                expected,
                format!("the change feed: {}", a.exchange.summary()),
                diagnose_answer(ctx.place(), a),
                tried,
            );
        }
        return store_without_feed(ctx, &wanted, tried).await;
    };
    let since = ctx.since;
    let created: Vec<(&Instance, &FeedEntry)> = wanted
        .iter()
        .filter_map(|i| {
            feed.iter()
                .rfind(|e| {
                    e.sop == i.sop
                        && e.action.eq_ignore_ascii_case("create")
                        && since.is_none_or(|s| e.timestamp.is_none_or(|t| t >= s))
                })
                .map(|e| (*i, e))
        })
        .collect();
    // Who stored them: the audit log, where its rows name callers.
    let attributed = ctx.records.audit_read() && ctx.records.audit_names_caller;
    if ctx.shared && !attributed {
        let why = ctx
            .reads_unrecorded()
            .unwrap_or_else(|| "its rows name no caller".into());
        return checks_saw(
            expected,
            format!(
                "{} of {} have Create entries, but this service is shared and {why}",
                created.len(),
                wanted.len()
            ),
            "on a shared service the change feed names no caller: set up the audit log (profile log_workspace), or use a service of your own",
            tried,
        );
    }
    let (mine, by_others) = attribute(ctx, &created, attributed);
    if mine.len() == wanted.len() && !wanted.is_empty() {
        return all_stored(&mine, &wanted, attributed);
    }
    if !by_others.is_empty() {
        return stored_by_others(expected, &by_others, tried);
    }
    let missing: Vec<&Instance> = wanted
        .iter()
        .filter(|i| !mine.iter().any(|(m, _)| m.sop == i.sop))
        .copied()
        .collect();
    if mine.is_empty() {
        if let Some(t) = tried.first() {
            return fail(
                expected,
                format!(
                    "no Create entry yet; your last attempt: {} answered {}",
                    t.line, t.status
                ),
                t.diagnosis.clone(),
                tried,
            );
        }
        let _ = step;
        return ready(
            format!(
                "nothing stored yet: POST {} to {{baseUrl}}/studies",
                titles(&wanted)
            ),
            tried,
        );
    }
    checks_saw(
        expected,
        format!("{} of {} stored", mine.len(), wanted.len()),
        format!("still to store: {}", titles(&missing)),
        tried,
    )
}

/// A server without a change feed: its stored data is the record (and dicomlab's own stores).
async fn store_without_feed(
    ctx: &CheckContext<'_>,
    wanted: &[&Instance],
    tried: Vec<Tried>,
) -> Outcome {
    let expected = "the instances stored on the server (found by SOP Instance UID)";
    let mut found = Vec::new();
    for i in wanted {
        let a = match find_instance(ctx, i).await {
            Ok(a) => a,
            Err(e) => return checks_saw(expected, e.to_string(), diagnose_error(&e), tried),
        };
        if !a.ok() && a.status != 204 {
            return checks_saw(
                expected,
                a.exchange.summary(),
                diagnose_answer(ctx.place(), &a),
                tried,
            );
        }
        if a.results()
            .iter()
            .any(|r| first_str(r, "00080018").as_deref() == Some(i.sop.as_str()))
        {
            found.push(*i);
        }
    }
    let names = |v: &[&Instance]| v.iter().map(|i| i.display()).collect::<Vec<_>>().join(", ");
    if found.len() == wanted.len() {
        let by_dicomlab = ctx
            .records
            .attempts_since(ctx.since)
            .into_iter()
            .rfind(|a| a.source == Source::Dicomlab && is_store(a) && a.ok());
        let evidence = match by_dicomlab {
            Some(a) => Evidence::new(
                Source::Dicomlab,
                format!(
                    "stored from dicomlab ({} answered {}); found on the server",
                    a.line(),
                    a.status
                ),
                a.time(),
            ),
            None => Evidence::new(
                Source::ServiceState,
                "found on the server (a server without a change feed keeps no history of writes: its stored data is the record)",
                Some(OffsetDateTime::now_utc()),
            ),
        };
        return pass(
            format!(
                "{} of {} found: {}",
                found.len(),
                wanted.len(),
                names(wanted)
            ),
            evidence,
        );
    }
    if found.is_empty() {
        return match tried.first() {
            Some(t) => fail(
                expected,
                format!(
                    "none found; your last attempt: {} answered {}",
                    t.line, t.status
                ),
                t.diagnosis.clone(),
                tried,
            ),
            None => ready(
                format!(
                    "nothing stored yet: POST {} to {{baseUrl}}/studies",
                    names(wanted)
                ),
                tried,
            ),
        };
    }
    let missing: Vec<&Instance> = wanted
        .iter()
        .filter(|i| !found.iter().any(|f| f.sop == i.sop))
        .copied()
        .collect();
    checks_saw(
        expected,
        format!("{} of {} found", found.len(), wanted.len()),
        format!("still to store: {}", names(&missing)),
        tried,
    )
}

fn first_str(obj: &serde_json::Value, tag: &str) -> Option<String> {
    obj.get(tag)?
        .get("Value")?
        .get(0)?
        .as_str()
        .map(str::to_string)
}

/// Whether `a` is the request that stored `e`: dicomlab's own exchange is timed when it was sent (the
/// entry follows within the upload); an audit row when the request ended (the entry precedes it). A
/// few seconds either way for the clocks; an attempt or entry without a time is not attributed.
fn stored_near(a: &Attempt, e: &FeedEntry) -> bool {
    match (a.time(), e.timestamp) {
        (Some(at), Some(ts)) => {
            let (before, after) = match a.source {
                Source::Dicomlab => (time::Duration::minutes(10), time::Duration::seconds(5)),
                _ => (time::Duration::seconds(5), time::Duration::minutes(2)),
            };
            // Checked: a hostile timestamp near the calendar's ends is no panic.
            match (ts.checked_sub(before), ts.checked_add(after)) {
                (Some(lo), Some(hi)) => at >= lo && at <= hi,
                _ => false,
            }
        }
        _ => false,
    }
}

/// A stored instance and the Create entry that shows it.
type Created<'a> = (&'a Instance, &'a FeedEntry);

/// A stored instance, its Create entry, and when another client's request stored it (if known).
type ByOther<'a> = (&'a Instance, &'a FeedEntry, Option<time::OffsetDateTime>);

/// The Create entries the learner's app made (all of them when callers are not named), and those
/// another client made (with the time of its request, when the audit log has it).
fn attribute<'a>(
    ctx: &CheckContext<'_>,
    created: &[Created<'a>],
    attributed: bool,
) -> (Vec<Created<'a>>, Vec<ByOther<'a>>) {
    let mut mine = Vec::new();
    let mut by_others = Vec::new();
    for (i, e) in created {
        if !attributed {
            mine.push((*i, *e));
            continue;
        }
        let own =
            ctx.records.attempts.iter().any(|a| {
                a.source == Source::AuditLog && is_store(a) && a.ok() && stored_near(a, e)
            }) || ctx.records.attempts.iter().any(|a| {
                a.source == Source::Dicomlab && is_store(a) && a.ok() && stored_near(a, e)
            });
        if own {
            mine.push((*i, *e));
        } else {
            let other = ctx
                .records
                .others
                .iter()
                .find(|a| is_store(a) && a.ok() && stored_near(a, e));
            by_others.push((*i, *e, other.and_then(|a| a.at)));
        }
    }
    (mine, by_others)
}

/// The entries are there, but another client's requests made them.
fn stored_by_others(expected: String, by_others: &[ByOther<'_>], tried: Vec<Tried>) -> Outcome {
    let who: Vec<String> = by_others
        .iter()
        .map(|(i, e, at)| {
            format!(
                "{} (#{}{})",
                i.display(),
                e.sequence,
                at.map(|a| format!(", {}", local_time(Some(a))))
                    .unwrap_or_default()
            )
        })
        .collect();
    checks_saw(
        expected,
        format!(
            "{} stored by another client, not by yours: {}",
            by_others.len(),
            who.join(", ")
        ),
        "the lab's sample UIDs can be stored once per service: on a shared service ask for a service of your own (or the instructor deletes the study); your own store then answers 200",
        tried,
    )
}

/// Every instance has a Create entry of the learner's: the pass, with the entries' sequences.
fn all_stored(mine: &[Created<'_>], wanted: &[&Instance], attributed: bool) -> Outcome {
    let titles = |v: &[&Instance]| v.iter().map(|i| i.display()).collect::<Vec<_>>().join(", ");
    let latest = mine.iter().filter_map(|(_, e)| e.timestamp).max();
    let seqs: Vec<String> = mine
        .iter()
        .map(|(i, e)| format!("#{} {}", e.sequence, i.display()))
        .collect();
    let who = if attributed {
        ", stored by your app (audit log)"
    } else {
        ""
    };
    pass(
        format!(
            "{} of {} stored: {}",
            mine.len(),
            wanted.len(),
            titles(wanted)
        ),
        Evidence::new(
            Source::ChangeFeed,
            format!("Create entries {}{who}", seqs.join(", ")),
            latest,
        ),
    )
}
