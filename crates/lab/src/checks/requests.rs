//! Steps made of requests: the learner made each of the step's requests (one alternative each) and it
//! succeeded, by the records.

use super::{CheckContext, Outcome, TargetKind, fail, not_recorded_hint, pass, ready, tool_suffix};
use crate::evidence::{Attempt, Evidence, Source};
use crate::model::{By, Step};
use crate::request::RequestPattern;
use std::collections::HashSet;

/// Whether a status counts as success for a request of the step.
fn accepted(method: &str, status: u16, allowed: &[u16]) -> bool {
    if !allowed.is_empty() {
        return allowed.contains(&status);
    }
    (200..300).contains(&status) && !(status == 204 && method.eq_ignore_ascii_case("GET"))
}

/// The learner made each of these requests (one alternative each) and it succeeded.
pub(super) fn requests_check(
    ctx: &CheckContext<'_>,
    step: &Step,
    specs: &[Vec<(String, By)>],
    labels: &[Option<String>],
    allowed: &[u16],
) -> Outcome {
    let with_by: Vec<Vec<(RequestPattern, By)>> = specs
        .iter()
        .map(|alts| {
            alts.iter()
                .filter_map(|(a, by)| RequestPattern::parse(a).ok().map(|p| (p, *by)))
                .collect()
        })
        .collect();
    let patterns: Vec<Vec<RequestPattern>> = with_by
        .iter()
        .map(|alts| alts.iter().map(|(p, _)| p.clone()).collect())
        .collect();
    let wants_user = with_by.iter().flatten().any(|(_, by)| *by == By::User);
    if let Some(o) = azure_only_route(ctx, &patterns) {
        return o;
    }
    let shown = |i: usize| -> String {
        labels[i]
            .clone()
            .or_else(|| patterns[i].first().map(RequestPattern::display))
            .unwrap_or_default()
    };
    let attempts = ctx.records.attempts_since(ctx.since);
    let done = done_requests(&attempts, &with_by, allowed);
    let belongs = |a: &Attempt| {
        with_by
            .iter()
            .flatten()
            .any(|(p, by)| counts(*by, a) && a.tries(p))
    };
    let tried = ctx.tried(belongs, |a| !accepted(&a.method, a.status, allowed));
    let expected = if patterns.len() == 1 {
        shown(0)
    } else {
        format!(
            "the step's {} requests, each answered with success",
            patterns.len()
        )
    };
    if done.len() == patterns.len() {
        return all_done(&done);
    }
    let missing: Vec<String> = (0..patterns.len())
        .filter(|i| !done.iter().any(|(d, _)| d == i))
        .map(shown)
        .collect();
    // A step a signed-in user may do (the viewer's): once the records show the user (a sign-in, a
    // request), or when only the user's requests count, say what the set-up still lacks.
    if wants_user
        && done.is_empty()
        && (with_by.iter().flatten().all(|(_, by)| *by == By::User)
            || attempts.iter().any(|a| a.by_user()))
    {
        return super::signin::not_yet(ctx, step, &expected, tried);
    }
    if done.is_empty() {
        return ctx.after_attempts(step, expected, tried, |tried| {
            ready(not_recorded_hint(ctx, step), tried)
        });
    }
    // While a record may still be on its way, never ✗ (failed attempts show, diagnosed).
    if ctx.may_still_arrive(step) && ctx.records.audit_read() {
        return ctx.waiting(tried);
    }
    // Part done and nothing failed: not a failure, the rest is to do.
    let Some(t) = tried.first() else {
        return ready(
            format!(
                "{} of {} done; still to do: {}",
                done.len(),
                patterns.len(),
                missing.join("; ")
            ),
            tried,
        );
    };
    fail(
        expected,
        format!("{} of {} done", done.len(), patterns.len()),
        format!(
            "still to do: {}. Your last attempt: {} answered {}: {}",
            missing.join("; "),
            t.line,
            t.status,
            t.diagnosis
        ),
        tried.clone(),
    )
}

/// Each request's first successful attempt in the records, by the request's index.
fn done_requests<'a>(
    attempts: &[&'a Attempt],
    with_by: &[Vec<(RequestPattern, By)>],
    allowed: &[u16],
) -> Vec<(usize, &'a Attempt)> {
    let mut done = Vec::new();
    for (i, alts) in with_by.iter().enumerate() {
        if let Some(a) = attempts.iter().find(|a| {
            accepted(&a.method, a.status, allowed)
                && alts.iter().any(|(p, by)| counts(*by, a) && a.is(p))
        }) {
            done.push((i, *a));
        }
    }
    done
}

/// Whose records count for an alternative: a user's sign-ins are never a request of the step.
fn counts(by: By, a: &Attempt) -> bool {
    !a.is_user_sign_in()
        && match by {
            By::Any => true,
            By::App => !a.by_user(),
            By::User => a.by_user(),
        }
}

/// Azure's own routes on a server that has none of them: not supported there.
fn azure_only_route(ctx: &CheckContext<'_>, patterns: &[Vec<RequestPattern>]) -> Option<Outcome> {
    if ctx.target == TargetKind::Generic
        && let Some(first) = patterns.iter().flatten().find_map(|p| {
            p.segments
                .first()
                .filter(|s| ["changefeed", "extendedquerytags", "operations"].contains(&s.as_str()))
        })
    {
        return Some(Outcome::NotSupported {
            reason: format!(
                "this server has no {first} route: it is an Azure DICOM service feature (try it on the practice service)"
            ),
        });
    }
    None
}

/// Each request done: the pass, with the service's record first (any request the audit log shows
/// makes it the evidence), the tools and the user named.
fn all_done(done: &[(usize, &Attempt)]) -> Outcome {
    // The service's record first: any request it shows makes the audit log the evidence.
    let source = if done.iter().any(|(_, a)| a.source == Source::AuditLog) {
        Source::AuditLog
    } else {
        Source::Dicomlab
    };
    let last = done.iter().filter_map(|(_, a)| a.time()).max();
    let tools: HashSet<String> = done.iter().filter_map(|(_, a)| a.tool.clone()).collect();
    let mut tools: Vec<String> = tools.into_iter().collect();
    tools.sort();
    let users: Vec<&str> = done
        .iter()
        .filter_map(|(_, a)| a.principal.as_ref().and_then(|p| p.user()))
        .collect();
    let by_user = users
        .first()
        .map(|u| format!(" by your user {u}"))
        .unwrap_or_default();
    let summary = if done.len() == 1 {
        let a = done[0].1;
        format!(
            "{} answered {}{by_user}{}",
            a.line(),
            a.status,
            tool_suffix(a)
        )
    } else {
        format!(
            "{} requests answered with success{by_user}{}",
            done.len(),
            if tools.is_empty() {
                String::new()
            } else {
                format!(", from {}", tools.join(" and "))
            }
        )
    };
    pass(
        if done.len() == 1 {
            summary.clone()
        } else {
            format!("all {} requests done", done.len())
        },
        Evidence::new(source, summary, last),
    )
}

#[cfg(test)]
mod tests {
    use super::accepted;

    #[test]
    fn statuses_that_count() {
        assert!(accepted("GET", 200, &[]));
        assert!(!accepted("GET", 204, &[]));
        assert!(accepted("DELETE", 204, &[]));
        assert!(!accepted("GET", 404, &[]));
        assert!(accepted("GET", 204, &[204]));
    }
}
