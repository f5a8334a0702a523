//! The report an instructor reads: the learner's name, per target each step with its verdict, the
//! evidence it rests on (the service's records, or the learner's own machine), when it was done in
//! local time, and the time it took. Optional steps never tried say "not tried", never "failed".
//! Never a secret or a token: progress holds none.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::clock;
use super::model::Lab;
use super::progress::{Status, StepProgress, TargetProgress};

/// How to write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Md,
    Json,
}

/// One step's line.
struct Line<'a> {
    id: &'a str,
    title: &'a str,
    optional: bool,
    verdict: &'static str,
    rec: Option<&'a StepProgress>,
    spent: Option<time::Duration>,
}

fn verdict(optional: bool, rec: Option<&StepProgress>) -> &'static str {
    match rec.map(|r| r.status) {
        Some(Status::Done) => "done",
        Some(Status::Skipped) => "skipped",
        Some(Status::Failed) if optional => "tried, not done",
        Some(Status::Failed) => "not done (failed)",
        Some(Status::Pending) | None if optional => "not tried",
        Some(Status::Pending) | None => "not done",
    }
}

fn lines<'a>(lab: &'a Lab, t: &'a TargetProgress) -> Vec<Line<'a>> {
    let mut previous: Option<time::OffsetDateTime> = None;
    lab.steps()
        .map(|s| {
            let rec = t.steps.get(&s.id);
            let done_at = rec
                .filter(|r| r.status == Status::Done)
                .and_then(|r| r.done_at);
            let spent = match (previous, done_at) {
                (Some(p), Some(d)) if d >= p => Some(d - p),
                _ => None,
            };
            if let Some(d) = done_at {
                previous = Some(previous.map_or(d, |p| p.max(d)));
            }
            Line {
                id: &s.id,
                title: &s.title,
                optional: s.optional,
                verdict: verdict(s.optional, rec),
                rec,
                spent,
            }
        })
        .collect()
}

fn md_cell(s: &str) -> String {
    dicomlab_dicom::text::visible(s)
        .replace('|', "\\|")
        .replace('\n', " ")
}

/// Renders the report.
pub fn render(
    lab: &Lab,
    learner: Option<&str>,
    targets: &BTreeMap<String, TargetProgress>,
    format: Format,
) -> String {
    match format {
        Format::Json => json_report(lab, learner, targets),
        Format::Md => md_report(lab, learner, targets),
    }
}

fn md_report(
    lab: &Lab,
    learner: Option<&str>,
    targets: &BTreeMap<String, TargetProgress>,
) -> String {
    let mut o = String::new();
    let who = learner
        .filter(|l| !l.trim().is_empty())
        .unwrap_or("(no name given)");
    o.push_str(&format!("# {} — {}\n\n", lab.title, md_cell(who)));
    o.push_str(&format!(
        "Report of {} (local time). A ✓ rests on the service's records (change feed, audit log, what the service holds) or on this learner's machine (done in dicomlab, an answered question, the configuration).\n\n",
        clock::human(time::OffsetDateTime::now_utc())
    ));
    if targets.is_empty() {
        o.push_str("No step checked yet.\n");
    }
    for (target, t) in targets {
        let ls = lines(lab, t);
        let required = ls.iter().filter(|l| !l.optional).count();
        let done_required = ls
            .iter()
            .filter(|l| !l.optional && l.verdict == "done")
            .count();
        let on_service = ls
            .iter()
            .filter(|l| l.verdict == "done")
            .filter(|l| {
                l.rec
                    .and_then(|r| r.evidence.as_ref())
                    .is_some_and(|e| e.source.on_service())
            })
            .count();
        let done = ls.iter().filter(|l| l.verdict == "done").count();
        o.push_str(&format!("## Target: {}\n\n", md_cell(target)));
        o.push_str(&summary(
            (done_required, required),
            (done - done_required, ls.len() - required),
            (on_service, done - on_service),
        ));
        o.push_str("| step | verdict | evidence | done at | time | checks | last failure |\n|---|---|---|---|---|---|---|\n");
        for l in &ls {
            let (evidence, at, checks, failure) = match l.rec {
                Some(r) => (
                    r.evidence
                        .as_ref()
                        .map(|e| {
                            format!(
                                "{} ({}): {}",
                                e.source.label(),
                                if e.source.on_service() {
                                    "service"
                                } else {
                                    "learner's machine"
                                },
                                e.summary
                            )
                        })
                        .unwrap_or_default(),
                    r.done_at.map(clock::human).unwrap_or_default(),
                    r.attempts.to_string(),
                    if r.status == Status::Done {
                        String::new()
                    } else {
                        r.last_failure.clone().unwrap_or_default()
                    },
                ),
                None => Default::default(),
            };
            o.push_str(&format!(
                "| {}{} | {} | {} | {} | {} | {} | {} |\n",
                md_cell(l.title),
                if l.optional { " (optional)" } else { "" },
                l.verdict,
                md_cell(&evidence),
                at,
                l.spent.map(clock::duration).unwrap_or_default(),
                checks,
                md_cell(&failure)
            ));
        }
        o.push('\n');
    }
    o
}

/// The summary line, read aloud: "4 of 12 required steps done (and 1 of 5 optional steps)." and, when
/// any is done, where the evidence is.
fn summary(required: (usize, usize), optional: (usize, usize), on: (usize, usize)) -> String {
    let steps = |n: usize| if n == 1 { "step" } else { "steps" };
    let mut o = format!(
        "{} of {} required {} done",
        required.0,
        required.1,
        steps(required.1)
    );
    if optional.1 > 0 {
        o.push_str(&format!(
            " (and {} of {} optional {})",
            optional.0,
            optional.1,
            steps(optional.1)
        ));
    }
    o.push_str(".\n");
    if on.0 + on.1 > 0 {
        o.push_str(&format!(
            "Evidence: the service's own records for {} {}, the learner's machine for {}.\n",
            on.0,
            steps(on.0),
            on.1
        ));
    }
    o.push('\n');
    o
}

fn json_report(
    lab: &Lab,
    learner: Option<&str>,
    targets: &BTreeMap<String, TargetProgress>,
) -> String {
    let ts: Vec<Value> = targets
        .iter()
        .map(|(target, t)| {
            let steps: Vec<Value> = lines(lab, t)
                .iter()
                .map(|l| {
                    let r = l.rec;
                    json!({
                        "id": l.id,
                        "title": l.title,
                        "optional": l.optional,
                        "verdict": l.verdict,
                        "evidence": r.and_then(|r| r.evidence.as_ref()).map(|e| json!({
                            "source": e.source,
                            "label": e.source.label(),
                            "on_service": e.source.on_service(),
                            "summary": e.summary,
                            "at": e.at.map(super::evidence::rfc3339),
                        })),
                        "done_at": r.and_then(|r| r.done_at).map(super::evidence::rfc3339),
                        "done_at_local": r.and_then(|r| r.done_at).map(clock::human),
                        "time_spent_secs": l.spent.map(|d| d.whole_seconds()),
                        "checks": r.map_or(0, |r| r.attempts),
                        "last_failure": r.filter(|r| r.status != Status::Done).and_then(|r| r.last_failure.clone()),
                    })
                })
                .collect();
            json!({"target": target, "steps": steps})
        })
        .collect();
    let v = json!({
        "lab": lab.id,
        "title": lab.title,
        "learner": learner,
        "generated": super::evidence::rfc3339(time::OffsetDateTime::now_utc()),
        "targets": ts,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{Evidence, Source};
    use crate::outcome::Outcome;
    use crate::progress::ProgressStore;

    #[test]
    fn names_times_evidence_and_not_tried() {
        let lab = Lab::embedded().expect("lab");
        let mut store = ProgressStore::load(std::path::Path::new("/nonexistent/p.json"));
        let ev = |source, at: &str| Outcome::Pass {
            detail: "d".into(),
            evidence: Evidence {
                source,
                summary: "the record".into(),
                at: dicomlab_dicomweb::parse_timestamp(at),
                subject: None,
            },
        };
        store.record(
            &lab.id,
            "practice",
            "service-exists",
            &ev(Source::ServiceState, "2026-11-30T14:00:00Z"),
        );
        store.record(
            &lab.id,
            "practice",
            "store-samples",
            &ev(Source::ChangeFeed, "2026-11-30T14:12:00Z"),
        );
        store.record(
            &lab.id,
            "practice",
            "environment-values",
            &ev(Source::Local, "2026-11-30T14:05:00Z"),
        );
        let targets = store
            .progress
            .labs
            .get(&lab.id)
            .cloned()
            .unwrap_or_default();
        let md = render(&lab, Some("Ada Lovelace"), &targets, Format::Md);
        assert!(md.contains("Ada Lovelace"));
        assert!(md.contains("change feed (service): the record"), "{md}");
        assert!(
            md.contains("your configuration (learner's machine)"),
            "{md}"
        );
        assert!(md.contains("not tried"), "optional steps untried: {md}");
        assert!(!md.contains("Failed"));
        assert!(
            md.contains(
                "\n3 of 14 required steps done (and 0 of 5 optional steps).\nEvidence: the service's own records for 2 steps, the learner's machine for 1.\n"
            ),
            "{md}"
        );
        let json: Value =
            serde_json::from_str(&render(&lab, Some("Ada Lovelace"), &targets, Format::Json))
                .expect("json");
        let steps = json["targets"][0]["steps"].as_array().expect("steps");
        let store_step = steps
            .iter()
            .find(|s| s["id"] == "store-samples")
            .expect("store");
        assert_eq!(store_step["evidence"]["on_service"], true);
        assert!(
            store_step["time_spent_secs"]
                .as_i64()
                .is_some_and(|s| s > 0),
            "{store_step}"
        );
        assert_eq!(json["learner"], "Ada Lovelace");
    }
}
