//! The delete steps: a study, series or instance deleted by the learner, by the records.

use super::{
    CheckContext, Outcome, checks_saw, diagnose_error, find_instance, pass, ready, tool_suffix,
};
use crate::clock::local_time;
use crate::dataset::Instance;
use crate::evidence::{Attempt, Evidence, FeedEntry, Source};
use crate::model::{CheckKind, Level, Step};
use crate::request::RequestPattern;
use time::OffsetDateTime;

pub(super) async fn deleted(
    ctx: &CheckContext<'_>,
    step: &Step,
    level: Level,
    name: &str,
) -> Outcome {
    let Some(of) = ctx.lab.dataset.instance(name) else {
        return Outcome::Error {
            message: format!("the dataset has no instance '{name}'"),
        };
    };
    let target = of.at(level);
    let path = match level {
        Level::Study => target.study_path(),
        Level::Series => target.series_path(),
        Level::Instance => target.path(),
    };
    let what = match level {
        Level::Instance => format!("the {} instance", of.display()),
        Level::Series => format!("the series of the {}", of.display()),
        Level::Study => format!("the study of the {}", of.display()),
    };
    let expected = format!("{what} deleted (DELETE {path} answered 204)");
    let Ok(pattern) = RequestPattern::parse(&format!("DELETE {path}")) else {
        return Outcome::Error {
            message: format!("cannot read the route {path}"),
        };
    };
    let attempts = ctx.records.attempts_since(ctx.since);
    let scope = ctx.lab.dataset.in_scope(of, level);
    let feed_deletes = |e: &&FeedEntry| deletes_in(e, &scope);
    if let Some(a) = attempts.iter().find(|a| a.is(&pattern) && a.status == 204) {
        let seqs: Vec<String> = ctx
            .records
            .feed
            .iter()
            .flatten()
            .filter(feed_deletes)
            .map(|e| format!("#{}", e.sequence))
            .collect();
        let feed = if seqs.is_empty() {
            String::new()
        } else {
            format!("; change feed Delete entries {}", seqs.join(", "))
        };
        return pass(
            format!("{what} deleted ({}{})", local_time(a.at), tool_suffix(a)),
            Evidence::new(
                a.source,
                format!("{} answered 204{}{feed}", a.line(), tool_suffix(a)),
                a.time(),
            ),
        );
    }
    let belongs = |a: &Attempt| a.tries(&pattern);
    let tried = ctx.tried(belongs, |a| a.status != 204);
    // Without a record of the route, the change feed shows the deletes (it cannot tell the level).
    if let Some(o) = deleted_by_feed(ctx, &scope, &what) {
        return o;
    }
    if ctx.records.feed.is_none() && !ctx.records.audit_read() {
        // A server without history: the instances gone after the store was done.
        match gone_from_server(ctx, &scope).await {
            Ok(true) => {
                return pass(
                    format!("{what} is gone"),
                    Evidence::new(
                        Source::ServiceState,
                        format!("{what} was stored and is no longer found on the server"),
                        Some(OffsetDateTime::now_utc()),
                    ),
                );
            }
            Ok(false) => {}
            Err(e) => return checks_saw(expected, e.to_string(), diagnose_error(&e), tried),
        }
    }
    ctx.after_attempts(step, expected, tried, |tried| {
        ready(format!("DELETE {{baseUrl}}/{path}"), tried)
    })
}

/// Whether a change-feed entry deletes one of `scope`.
fn deletes_in(e: &FeedEntry, scope: &[&Instance]) -> bool {
    e.action.eq_ignore_ascii_case("delete") && scope.iter().any(|i| i.sop == e.sop)
}

/// Without a record of the route (no audit log read), the change feed's Delete entries for every
/// instance in scope, on a service of the learner's own.
fn deleted_by_feed(ctx: &CheckContext<'_>, scope: &[&Instance], what: &str) -> Option<Outcome> {
    if ctx.records.audit_read() {
        return None;
    }
    let feed = ctx.records.feed.as_ref()?;
    let since = ctx.since;
    let gone: Vec<&FeedEntry> = feed
        .iter()
        .filter(|e| deletes_in(e, scope))
        .filter(|e| since.is_none_or(|s| e.timestamp.is_none_or(|t| t >= s)))
        .collect();
    if !scope.is_empty() && scope.iter().all(|i| gone.iter().any(|e| e.sop == i.sop)) && !ctx.shared
    {
        let latest = gone.iter().filter_map(|e| e.timestamp).max();
        let seqs: Vec<String> = gone.iter().map(|e| format!("#{}", e.sequence)).collect();
        return Some(pass(
            format!("{what} deleted"),
            Evidence::new(
                Source::ChangeFeed,
                format!("Delete entries {}", seqs.join(", ")),
                latest,
            ),
        ));
    }
    None
}

/// A server without history: whether the store step was done and every instance in scope is no
/// longer found (the first failure to ask stops the look).
async fn gone_from_server(
    ctx: &CheckContext<'_>,
    scope: &[&Instance],
) -> Result<bool, dicomlab_dicomweb::ClientError> {
    let stored = ctx
        .lab
        .step_of_kind(CheckKind::Store)
        .is_some_and(|s| ctx.done.contains(&s.id));
    if !stored {
        return Ok(false);
    }
    let mut all_gone = true;
    for i in scope {
        match find_instance(ctx, i).await? {
            a if a.results().is_empty() && (a.ok() || a.status == 204) => {}
            _ => all_gone = false,
        }
    }
    Ok(all_gone)
}
