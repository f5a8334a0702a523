//! The room as the instructor sees it: each learner's mark on each exercise (the lab's symbols), how
//! far they are, how long they have been on their current step, whether they look stuck, and their
//! last failure with its diagnosis. Read from the classroom folder (the classroom's verdicts, or what a
//! self-reported learner sent); the dashboard shows it live and `classroom status` prints it as
//! Markdown, JSON or CSV. Every text that came from a learner or a service is made safe for a terminal.
//! Who is connected over SSH is a [`LiveSession`] each.

use dicomlab_lab::model::StepId;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::folder::{Folder, LearnerEntry, LearnerSource, SELF_REPORTED_KEY, VERDICTS_KEY};
use crate::names::LearnerName;
use dicomlab_dicom::text::visible;
use dicomlab_lab::Lab;
use dicomlab_lab::checks::Outcome;
use dicomlab_lab::model::Exercise;
use dicomlab_lab::progress::{Progress, Status, StepProgress};

/// A live SSH session of a learner (for the dashboard).
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub id: u64,
    pub since: time::OffsetDateTime,
}

/// The same failure this many times in a row is "stuck".
pub const SAME_FAILURE: usize = 3;
/// On a step this many times the room's median (and at least `MIN_STUCK`) is "stuck".
pub const SLOW_FACTOR: i64 = 3;
pub const MIN_STUCK_SECS: i64 = 5 * 60;

/// A learner's mark on a step or an exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mark {
    Done,
    Failed,
    /// The learner's current step (or the exercise that holds it).
    Current,
    Waiting,
    Skipped,
    Pending,
}

impl Mark {
    /// The lab's symbols: ✓ ✗ » … ⤼ ○ (or + x > ~ s o).
    pub fn symbol(self, ascii: bool) -> &'static str {
        let (u, a) = match self {
            Mark::Done => ("✓", "+"),
            Mark::Failed => ("✗", "x"),
            Mark::Current => ("»", ">"),
            Mark::Waiting => ("…", "~"),
            Mark::Skipped => ("⤼", "s"),
            Mark::Pending => ("○", "o"),
        };
        if ascii { a } else { u }
    }
}

/// A step that failed, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub step: StepId,
    pub title: String,
    /// What the records show.
    pub observed: String,
    /// What to do about it.
    pub diagnosis: String,
    /// The learner's failed requests for the step, newest first (`14:03 POST /v1/studies → 415: …`).
    pub tried: Vec<String>,
    /// The last check that saw it (RFC 3339, UTC, in JSON; `""` when not known).
    #[serde(serialize_with = "dicomlab_dicomweb::timestamp::rfc3339_or_empty::serialize")]
    pub at: Option<time::OffsetDateTime>,
}

/// One learner's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnerRow {
    pub name: String,
    pub source: LearnerSource,
    /// Connected over SSH now (`None`: not known, read from the folder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// Per exercise, in lab order.
    pub exercises: Vec<Mark>,
    /// Per step, in lab order.
    pub steps: Vec<(StepId, Mark)>,
    /// Required steps done, of `required`.
    pub done: usize,
    pub required: usize,
    /// The first required step not done (None: the lab is complete).
    pub current: Option<StepId>,
    /// Seconds on the current step (since the step before it was done, or since joining).
    pub on_step_secs: Option<i64>,
    /// Why they look stuck.
    pub stuck: Option<String>,
    pub last_failure: Option<Failure>,
}

/// An exercise's column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub id: String,
    pub title: String,
}

/// The room.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Room {
    pub lab: String,
    pub title: String,
    /// When it was read (RFC 3339, UTC, in JSON).
    #[serde(with = "dicomlab_dicomweb::timestamp::rfc3339")]
    pub at: time::OffsetDateTime,
    pub exercises: Vec<Column>,
    pub learners: Vec<LearnerRow>,
}

/// The step records of one lab and key in a progress file (read only: nothing is moved aside here).
fn read_steps(path: &std::path::Path, lab: &str, key: &str) -> BTreeMap<StepId, StepProgress> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Progress>(&b).ok())
        .and_then(|mut p| p.labs.remove(lab))
        .and_then(|mut t| t.remove(key))
        .map(|t| t.steps)
        .unwrap_or_default()
}

/// What a learner's record says, from the folder.
struct Record {
    entry: LearnerEntry,
    steps: BTreeMap<StepId, StepProgress>,
    last: BTreeMap<StepId, Outcome>,
}

impl Room {
    /// Reads the room from the folder at `now`; `connected` says who is online (when known).
    pub fn read(
        lab: &Lab,
        folder: &Folder,
        learners: &[LearnerEntry],
        connected: Option<&BTreeMap<LearnerName, LiveSession>>,
        now: time::OffsetDateTime,
    ) -> Room {
        let records: Vec<Record> = learners
            .iter()
            .map(|e| {
                let key = match e.source {
                    LearnerSource::Service => VERDICTS_KEY,
                    LearnerSource::SelfReported => SELF_REPORTED_KEY,
                };
                Record {
                    entry: e.clone(),
                    steps: read_steps(&folder.verdicts(&e.name), &lab.id, key),
                    last: folder.last(&e.name),
                }
            })
            .collect();
        Room::build(lab, &records, connected, now)
    }

    fn build(
        lab: &Lab,
        records: &[Record],
        connected: Option<&BTreeMap<LearnerName, LiveSession>>,
        now: time::OffsetDateTime,
    ) -> Room {
        let medians = medians(lab, records);
        let learners = records
            .iter()
            .map(|r| row(lab, r, &medians, connected, now))
            .collect();
        Room {
            lab: lab.id.clone(),
            title: lab.title.clone(),
            at: now,
            exercises: lab
                .exercises
                .iter()
                .map(|e| Column {
                    id: e.id.clone(),
                    title: e.title.clone(),
                })
                .collect(),
            learners,
        }
    }

    /// A learner's row by name.
    pub fn learner(&self, name: &str) -> Option<&LearnerRow> {
        self.learners.iter().find(|l| l.name == name)
    }
}

/// When each step was done, in lab order, and the time each took (from the previous step's done, or
/// from joining).
fn spent(lab: &Lab, r: &Record) -> BTreeMap<StepId, i64> {
    let mut previous = r.entry.joined;
    let mut out = BTreeMap::new();
    for s in lab.steps() {
        let done_at = r
            .steps
            .get(&s.id)
            .filter(|p| p.status == Status::Done)
            .and_then(|p| p.done_at);
        if let Some(d) = done_at {
            if let Some(p) = previous
                && d >= p
            {
                out.insert(s.id.clone(), (d - p).whole_seconds());
            }
            previous = Some(previous.map_or(d, |p| p.max(d)));
        }
    }
    out
}

/// The room's median time per step (steps at least two learners did).
/// The room's median time on each step, from the learners the classroom checks itself: what a
/// self-reporting learner sends (their own machine's word) never moves it, so nobody's "stuck" rests
/// on a report anyone with the class code could make up.
fn medians(lab: &Lab, records: &[Record]) -> BTreeMap<StepId, i64> {
    let mut all: BTreeMap<StepId, Vec<i64>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.entry.source == LearnerSource::Service)
    {
        for (id, secs) in spent(lab, r) {
            all.entry(id).or_default().push(secs);
        }
    }
    all.into_iter()
        .filter(|(_, v)| v.len() >= 2)
        .map(|(id, mut v)| {
            v.sort_unstable();
            let m = if v.len() % 2 == 1 {
                v[v.len() / 2]
            } else {
                (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2
            };
            (id, m)
        })
        .collect()
}

fn minutes(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

fn row(
    lab: &Lab,
    r: &Record,
    medians: &BTreeMap<StepId, i64>,
    connected: Option<&BTreeMap<LearnerName, LiveSession>>,
    now: time::OffsetDateTime,
) -> LearnerRow {
    let status = |id: &str| r.steps.get(id).map(|p| p.status);
    let current = lab
        .steps()
        .find(|s| !s.optional && !matches!(status(&s.id), Some(Status::Done | Status::Skipped)))
        .map(|s| s.id.clone());
    let mark = |id: &str| -> Mark {
        let rec = r.steps.get(id);
        match rec.map(|p| p.status) {
            Some(Status::Done) => Mark::Done,
            Some(Status::Skipped) => Mark::Skipped,
            Some(Status::Failed) => Mark::Failed,
            _ if rec.is_some_and(|p| p.waiting_since.is_some()) => Mark::Waiting,
            _ if current.as_deref() == Some(id) => Mark::Current,
            _ => Mark::Pending,
        }
    };
    let steps: Vec<(StepId, Mark)> = lab.steps().map(|s| (s.id.clone(), mark(&s.id))).collect();
    let exercises = lab
        .exercises
        .iter()
        .map(|e| exercise_mark(e, &mark))
        .collect();
    let required = lab.steps().filter(|s| !s.optional).count();
    let done = lab
        .steps()
        .filter(|s| !s.optional && status(&s.id) == Some(Status::Done))
        .count();
    let since = lab
        .steps()
        .filter_map(|s| r.steps.get(&s.id))
        .filter(|p| p.status == Status::Done)
        .filter_map(|p| p.done_at)
        .max()
        .or(r.entry.joined);
    let on_step_secs = current
        .as_ref()
        .and(since)
        .map(|s| (now - s).whole_seconds().max(0));
    let last_failure = last_failure(lab, r, current.as_deref());
    let stuck = stuck(r, current.as_deref(), on_step_secs, medians);
    LearnerRow {
        name: r.entry.name.to_string(),
        source: r.entry.source,
        online: connected.map(|c| c.contains_key(&r.entry.name)),
        exercises,
        steps,
        done,
        required,
        current,
        on_step_secs,
        stuck,
        last_failure,
    }
}

/// An exercise's mark from its steps' (`mark`): the required steps count (all of them when none is).
fn exercise_mark(e: &Exercise, mark: &impl Fn(&str) -> Mark) -> Mark {
    let marks: Vec<(bool, Mark)> = e.steps.iter().map(|s| (s.optional, mark(&s.id))).collect();
    let required: Vec<Mark> = marks.iter().filter(|(o, _)| !o).map(|(_, m)| *m).collect();
    let counted = if required.is_empty() {
        marks.iter().map(|(_, m)| *m).collect()
    } else {
        required
    };
    if counted.iter().all(|m| *m == Mark::Done) {
        Mark::Done
    } else if counted.contains(&Mark::Current) {
        if counted.contains(&Mark::Failed) {
            Mark::Failed
        } else {
            Mark::Current
        }
    } else if counted.contains(&Mark::Failed) {
        Mark::Failed
    } else if counted.contains(&Mark::Waiting) {
        Mark::Waiting
    } else if counted.iter().all(|m| *m == Mark::Skipped) {
        Mark::Skipped
    } else if counted.contains(&Mark::Done) && e.steps.iter().all(|s| s.optional) {
        Mark::Done
    } else {
        Mark::Pending
    }
}

/// Why a learner looks stuck on their `current` step: the same failure again and again, or far longer
/// on it than the room's median (`medians`).
fn stuck(
    r: &Record,
    current: Option<&str>,
    on_step_secs: Option<i64>,
    medians: &BTreeMap<StepId, i64>,
) -> Option<String> {
    let cur = current?;
    let tried: Vec<_> = r
        .last
        .get(cur)
        .map(Outcome::tried)
        .unwrap_or_default()
        .to_vec();
    if tried.len() >= SAME_FAILURE
        && tried[..SAME_FAILURE]
            .iter()
            .all(|t| t.status == tried[0].status && t.diagnosis == tried[0].diagnosis)
    {
        let what = if tried[0].status == 0 {
            "no answer".to_string()
        } else {
            tried[0].status.to_string()
        };
        Some(format!(
            "the same failure {} times in a row ({what})",
            tried
                .iter()
                .take_while(|t| t.status == tried[0].status && t.diagnosis == tried[0].diagnosis)
                .count()
        ))
    } else if let (Some(secs), Some(m)) = (on_step_secs, medians.get(cur))
        && secs > (SLOW_FACTOR * m).max(MIN_STUCK_SECS)
    {
        Some(format!(
            "{} on this step; the room's median is {}",
            minutes(secs),
            minutes(*m)
        ))
    } else {
        None
    }
}

/// The failure worth showing: the current step's, else the latest one.
fn last_failure(lab: &Lab, r: &Record, current: Option<&str>) -> Option<Failure> {
    let title = |id: &str| lab.step(id).map_or(id.to_string(), |s| s.title.clone());
    let from_outcome = |id: &str| -> Option<Failure> {
        let o = r.last.get(id)?;
        let at = r.steps.get(id).and_then(|p| p.last);
        let tried: Vec<String> = o
            .tried()
            .iter()
            .take(5)
            .map(|t| visible(&t.text()).into_owned())
            .collect();
        match o {
            Outcome::Fail {
                observed,
                diagnosis,
                ..
            } => Some(Failure {
                step: StepId::from(id),
                title: title(id),
                observed: visible(observed).into_owned(),
                diagnosis: visible(diagnosis).into_owned(),
                tried,
                at,
            }),
            Outcome::Error { message } => Some(Failure {
                step: StepId::from(id),
                title: title(id),
                observed: visible(message).into_owned(),
                diagnosis: String::new(),
                tried,
                at,
            }),
            _ if !tried.is_empty() => Some(Failure {
                step: StepId::from(id),
                title: title(id),
                observed: "not done yet; the learner's last attempts failed".into(),
                diagnosis: o
                    .tried()
                    .first()
                    .map(|t| visible(&t.diagnosis).into_owned())
                    .unwrap_or_default(),
                tried,
                at,
            }),
            _ => None,
        }
    };
    if let Some(f) = current.and_then(from_outcome) {
        return Some(f);
    }
    // The latest failed step (by its last check).
    let latest = r
        .steps
        .iter()
        .filter(|(_, p)| p.status == Status::Failed)
        .max_by_key(|(_, p)| p.last)?;
    from_outcome(latest.0).or_else(|| {
        Some(Failure {
            step: latest.0.clone(),
            title: title(latest.0),
            observed: visible(latest.1.last_failure.as_deref().unwrap_or("")).into_owned(),
            diagnosis: String::new(),
            tried: Vec::new(),
            at: latest.1.last,
        })
    })
}

/// How `classroom status` writes the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Md,
    Json,
    Csv,
}

/// Writes the room.
pub fn render(room: &Room, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(&json_room(room)).unwrap_or_default() + "\n",
        Format::Csv => csv(room),
        Format::Md => markdown(room),
    }
}

fn json_room(room: &Room) -> serde_json::Value {
    let learners: Vec<serde_json::Value> = room
        .learners
        .iter()
        .map(|l| {
            let steps: serde_json::Map<String, serde_json::Value> = l
                .steps
                .iter()
                .map(|(id, m)| (id.to_string(), serde_json::to_value(m).unwrap_or_default()))
                .collect();
            let exercises: serde_json::Map<String, serde_json::Value> = room
                .exercises
                .iter()
                .zip(&l.exercises)
                .map(|(c, m)| (c.id.clone(), serde_json::to_value(m).unwrap_or_default()))
                .collect();
            serde_json::json!({
                "name": l.name,
                "source": l.source,
                "online": l.online,
                "done": l.done,
                "required": l.required,
                "current_step": l.current,
                "on_step_secs": l.on_step_secs,
                "stuck": l.stuck,
                "exercises": exercises,
                "steps": steps,
                "last_failure": l.last_failure,
            })
        })
        .collect();
    serde_json::json!({
        "lab": room.lab,
        "title": room.title,
        "at": dicomlab_lab::evidence::rfc3339(room.at),
        "exercises": room.exercises,
        "learners": learners,
    })
}

fn csv_field(s: &str) -> String {
    let s = visible(s);
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

fn csv(room: &Room) -> String {
    let mut head = vec![
        "name".to_string(),
        "source".into(),
        "online".into(),
        "done".into(),
        "required".into(),
        "current_step".into(),
        "minutes_on_step".into(),
        "stuck".into(),
    ];
    if let Some(l) = room.learners.first() {
        head.extend(l.steps.iter().map(|(id, _)| id.to_string()));
    }
    let mut o = head.join(",") + "\n";
    for l in &room.learners {
        let mut f = vec![
            csv_field(&l.name),
            match l.source {
                LearnerSource::Service => "service".into(),
                LearnerSource::SelfReported => "self-reported".into(),
            },
            l.online.map(|b| b.to_string()).unwrap_or_default(),
            l.done.to_string(),
            l.required.to_string(),
            csv_field(l.current.as_deref().unwrap_or("")),
            l.on_step_secs
                .map(|s| (s / 60).to_string())
                .unwrap_or_default(),
            csv_field(l.stuck.as_deref().unwrap_or("")),
        ];
        f.extend(l.steps.iter().map(|(_, m)| {
            serde_json::to_value(m)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        }));
        o.push_str(&f.join(","));
        o.push('\n');
    }
    o
}

fn md_cell(s: &str) -> String {
    visible(s).replace('|', "\\|").replace('\n', " ")
}

fn markdown(room: &Room) -> String {
    let mut o = format!(
        "# {} — classroom\n\n{} learner(s), {} (UTC). ✓ done · ✗ failed · » current · … waiting · ⤼ skipped · ○ not yet; \"self-reported\" rows come from the learner's own service, the others from the classroom's checks of theirs.\n\n",
        md_cell(&room.title),
        room.learners.len(),
        dicomlab_lab::evidence::rfc3339(room.at)
    );
    if room.learners.is_empty() {
        o.push_str("Nobody has joined yet.\n");
        return o;
    }
    o.push_str("| learner |");
    for (i, _) in room.exercises.iter().enumerate() {
        o.push_str(&format!(" {} |", i + 1));
    }
    o.push_str(" done | on step | stuck |\n|---|");
    for _ in &room.exercises {
        o.push_str(":-:|");
    }
    o.push_str("---|---|---|\n");
    for l in &room.learners {
        let who = match l.source {
            LearnerSource::Service => md_cell(&l.name),
            LearnerSource::SelfReported => format!("{} (self-reported)", md_cell(&l.name)),
        };
        o.push_str(&format!("| {who} |"));
        for m in &l.exercises {
            o.push_str(&format!(" {} |", m.symbol(false)));
        }
        let on = match (&l.current, l.on_step_secs) {
            (Some(c), Some(s)) => format!("{} ({})", md_cell(c), minutes(s)),
            (Some(c), None) => md_cell(c),
            (None, _) => "complete".into(),
        };
        o.push_str(&format!(
            " {}/{} | {on} | {} |\n",
            l.done,
            l.required,
            md_cell(l.stuck.as_deref().unwrap_or(""))
        ));
    }
    o.push_str("\nExercises: ");
    o.push_str(
        &room
            .exercises
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{} {}", i + 1, md_cell(&e.title)))
            .collect::<Vec<_>>()
            .join(" · "),
    );
    o.push('\n');
    let failures: Vec<&LearnerRow> = room
        .learners
        .iter()
        .filter(|l| l.last_failure.is_some())
        .collect();
    if !failures.is_empty() {
        o.push_str("\n## Last failures\n\n");
        for l in failures {
            if let Some(f) = &l.last_failure {
                o.push_str(&format!(
                    "- **{}** — {} (`{}`): {}{}\n",
                    md_cell(&l.name),
                    md_cell(&f.title),
                    md_cell(&f.step),
                    md_cell(&f.observed),
                    if f.diagnosis.is_empty() {
                        String::new()
                    } else {
                        format!(" — fix: {}", md_cell(&f.diagnosis))
                    }
                ));
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicomlab_lab::checks::Tried;
    use dicomlab_lab::evidence::{Evidence, Source};

    fn done(at: &str) -> StepProgress {
        StepProgress {
            status: Status::Done,
            attempts: 1,
            first: Some(t(at)),
            last: Some(t(at)),
            done_at: Some(t(at)),
            last_failure: None,
            evidence: Some(Evidence::new(Source::ChangeFeed, "x", None)),
            waiting_since: None,
            subject: None,
        }
    }

    fn record(name: &str, joined: &str, steps: &[(&str, StepProgress)]) -> Record {
        Record {
            entry: LearnerEntry::new(
                LearnerName::exact(name).expect("name"),
                t(joined),
                LearnerSource::Service,
            ),
            steps: steps
                .iter()
                .map(|(k, v)| (StepId::from(*k), v.clone()))
                .collect(),
            last: BTreeMap::new(),
        }
    }

    fn t(s: &str) -> time::OffsetDateTime {
        dicomlab_dicomweb::parse_timestamp(s).expect("time")
    }

    #[test]
    fn marks_current_step_and_the_slow_learner() {
        let lab = Lab::embedded().expect("lab");
        let first = lab.steps().next().expect("a step").id.clone();
        let j = "2026-11-30T10:00:00Z";
        let rs = vec![
            record("ada", j, &[(&first, done("2026-11-30T10:02:00Z"))]),
            record("bob", j, &[(&first, done("2026-11-30T10:04:00Z"))]),
            record("cy", j, &[]),
        ];
        let room = Room::build(&lab, &rs, None, t("2026-11-30T10:30:00Z"));
        let cy = room.learner("cy").expect("cy");
        assert_eq!(cy.current.as_deref(), Some(first.as_str()));
        assert_eq!(cy.on_step_secs, Some(30 * 60));
        assert_eq!(cy.exercises[0], Mark::Current);
        assert!(
            cy.stuck
                .as_deref()
                .is_some_and(|s| s.contains("30 min") && s.contains("3 min")),
            "{:?}",
            cy.stuck
        );
        let ada = room.learner("ada").expect("ada");
        assert_eq!(ada.exercises[0], Mark::Done);
        assert_eq!(ada.done, 1);
        assert!(ada.stuck.is_none(), "nobody's median for the next step yet");
    }

    #[test]
    fn self_reports_never_move_the_rooms_medians() {
        let lab = Lab::embedded().expect("lab");
        let first = lab.steps().next().expect("a step").id.clone();
        let j = "2026-11-30T10:00:00Z";
        // Two fake reports of a step done in seconds would make everyone else look stuck.
        let mut rs = vec![
            record("ada", j, &[(&first, done("2026-11-30T10:20:00Z"))]),
            record("bob", j, &[(&first, done("2026-11-30T10:24:00Z"))]),
            record("cy", j, &[]),
        ];
        for n in ["fake-1", "fake-2", "fake-3"] {
            let mut r = record(n, j, &[(&first, done("2026-11-30T10:00:01Z"))]);
            r.entry.source = LearnerSource::SelfReported;
            rs.push(r);
        }
        let room = Room::build(&lab, &rs, None, t("2026-11-30T10:30:00Z"));
        let cy = room.learner("cy").expect("cy");
        assert!(
            cy.stuck.is_none(),
            "30 min against a median of 22: {:?}",
            cy.stuck
        );
    }

    #[test]
    fn the_same_failure_three_times_is_stuck_and_shown_with_its_diagnosis() {
        let lab = Lab::embedded().expect("lab");
        let first = lab.steps().next().expect("a step").id.clone();
        let mut r = record("ada", "2026-11-30T10:00:00Z", &[]);
        let tried = |at: &str| Tried {
            at: Some(t(at)),
            line: "POST /v1/studies".into(),
            status: 415,
            tool: Some("curl".into()),
            source: Source::AuditLog,
            diagnosis: "send Content-Type: application/dicom\u{1b}[2J".into(),
        };
        r.last.insert(
            first.clone(),
            Outcome::Fail {
                expected: "e".into(),
                observed: "no Create entry yet".into(),
                diagnosis: "415: send Content-Type: application/dicom".into(),
                tried: vec![
                    tried("2026-11-30T10:03:00Z"),
                    tried("2026-11-30T10:02:00Z"),
                    tried("2026-11-30T10:01:00Z"),
                ],
            },
        );
        let room = Room::build(&lab, &[r], None, t("2026-11-30T10:05:00Z"));
        let ada = room.learner("ada").expect("ada");
        assert_eq!(
            ada.stuck.as_deref(),
            Some("the same failure 3 times in a row (415)")
        );
        let f = ada.last_failure.as_ref().expect("failure");
        assert!(f.diagnosis.contains("Content-Type"));
        assert!(
            f.tried.iter().all(|t| !t.contains('\u{1b}')),
            "made visible"
        );
        for format in [Format::Md, Format::Json, Format::Csv] {
            let text = render(&room, format);
            assert!(text.contains("ada"), "{format:?}");
            assert!(!text.contains('\u{1b}'), "{format:?}");
        }
    }
}
