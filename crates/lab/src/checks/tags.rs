//! The extended query tag steps: the learner's tag added, used in a search, updated, deleted.

use super::{CheckContext, Outcome, checks_saw, fail, not_recorded_hint, pass, ready, tool_suffix};
use crate::clock::local_time;
use crate::diagnose::diagnose_answer;
use crate::evidence::{Attempt, Evidence, Source};
use crate::model::{Check, CheckKind, Step};

/// A tag name as the service would take it, compared by tag.
fn same_tag(a: &str, b: &str) -> bool {
    match (
        dicomlab_dicom::tags::resolve(a),
        dicomlab_dicom::tags::resolve(b),
    ) {
        (Some(x), Some(y)) => x.tag == y.tag,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// The keyword of a tag path when it has one (`00100040` → `PatientSex`).
fn tag_name(path: &str) -> String {
    dicomlab_dicom::tags::resolve(path).map_or_else(|| path.to_string(), |a| a.display_name())
}

/// The tag segment of an `extendedquerytags/{path}` request.
fn tag_of_url(url: &str) -> Option<String> {
    let (segs, _) = crate::request::route_of(url)?;
    (segs.first().map(String::as_str) == Some("extendedquerytags")).then(|| segs.get(1).cloned())?
}

/// The learner's tag: the one the tag step credited, else one the records show.
pub(super) fn learner_tag(ctx: &CheckContext<'_>, suggest: Option<&str>) -> Option<String> {
    if let Some(s) = ctx.saved_subject(CheckKind::TagAdded) {
        return Some(s);
    }
    if let Some(tags) = &ctx.records.tags
        && !tags.is_empty()
    {
        if let Some(s) = suggest
            && let Some(t) = tags.iter().find(|t| same_tag(&t.path, s))
        {
            return Some(tag_name(&t.path));
        }
        return tags.last().map(|t| tag_name(&t.path));
    }
    // From the learner's own requests on a tag (the add's body is not in any record).
    ctx.records
        .attempts_since(ctx.since)
        .iter()
        .filter(|a| a.ok())
        .find_map(|a| tag_of_url(&a.url))
        .map(|t| tag_name(&t))
}

fn tags_unavailable(ctx: &CheckContext<'_>) -> Option<Outcome> {
    if ctx.records.tags.is_some() {
        return None;
    }
    Some(match &ctx.records.tags_error {
        Some(a) => checks_saw(
            "the extended query tags API answers",
            a.exchange.summary(),
            diagnose_answer(ctx.place(), a),
            Vec::new(),
        ),
        None => Outcome::NotSupported {
            reason: "this server has no extended query tags (an Azure DICOM service feature)"
                .into(),
        },
    })
}

fn is_tag_route(a: &Attempt) -> bool {
    a.url.contains("/extendedquerytags")
}

pub(super) fn tag_added(ctx: &CheckContext<'_>, step: &Step, suggest: Option<&str>) -> Outcome {
    if let Some(o) = tags_unavailable(ctx) {
        return o;
    }
    let expected = format!(
        "an extended query tag added and re-indexed (the lab suggests {})",
        suggest.unwrap_or("PatientSex")
    );
    let tried = ctx.tried(
        |a| is_tag_route(a) && a.method.eq_ignore_ascii_case("POST"),
        |a| !a.ok(),
    );
    let tag = learner_tag(ctx, suggest);
    let listed = tag.as_deref().and_then(|t| {
        ctx.records
            .tags
            .as_ref()?
            .iter()
            .find(|e| same_tag(&e.path, t))
    });
    let add = ctx
        .records
        .attempts_since(ctx.since)
        .into_iter()
        .find(|a| is_tag_route(a) && a.method.eq_ignore_ascii_case("POST") && a.status == 202);
    if let Some(e) = listed
        && e.status.eq_ignore_ascii_case("adding")
    {
        return Outcome::Waiting {
            reason: format!(
                "{} is being re-indexed (status adding): its operation is still running",
                tag_name(&e.path)
            ),
            tried,
        };
    }
    match (add, listed) {
        (Some(a), _) => tag_add_passed(a, tag.as_deref()),
        (None, Some(e)) if ctx.state_may_show() => {
            let name = tag_name(&e.path);
            pass(
            format!("{name} is in the tag list (status {})", e.status),
            Evidence::new(
                Source::ServiceState,
                format!(
                    "the service's tag list holds {name} (status {}, queryStatus {})",
                    e.status, e.query_status
                ),
                None,
            )
            .about(name.clone()),
            )
        }
        // In the list, but the records show no add of the learner's since the step began.
        (None, Some(e)) => {
            let name = tag_name(&e.path);
            ctx.after_attempts(step, expected, tried, |tried| {
                ready(
                    format!(
                        "{name} is in the tag list, but {} no add of yours{}: add a tag of your own (POST to {{baseUrl}}/extendedquerytags)",
                        if ctx.shared && !ctx.records.audit_read() {
                            "this service is shared and nothing shows"
                        } else {
                            "the records show"
                        },
                        ctx.since.map(|t| format!(" since {}", local_time(Some(t)))).unwrap_or_default()
                    ),
                    tried,
                )
            })
        }
        (None, None) => ctx.after_attempts(step, expected, tried, |tried| ready(
                format!(
                    "no tag yet: POST [{{\"Path\":\"{}\",\"Level\":\"Study\"}}] to {{baseUrl}}/extendedquerytags",
                    suggest.unwrap_or("PatientSex")
                ),
                tried,
            )),
    }
}

/// The learner's add answered 202: the pass, naming the tag when the records show it.
fn tag_add_passed(a: &Attempt, tag: Option<&str>) -> Outcome {
    // The add's body is in no record: the tag is named when the list or a later request
    // shows it, and only then becomes the next steps' subject.
    let evidence = Evidence::new(
        a.source,
        format!(
            "{} answered 202 (the re-index started){}{}",
            a.line(),
            tool_suffix(a),
            tag.map(|t| format!("; tag {t}")).unwrap_or_default()
        ),
        a.time(),
    );
    let (detail, evidence) = match tag.filter(|t| !t.trim().is_empty()) {
        Some(t) => (
            format!("{t} added ({}{})", local_time(a.at), tool_suffix(a)),
            evidence.about(t.to_string()),
        ),
        None => (
            format!("a tag added ({}{})", local_time(a.at), tool_suffix(a)),
            evidence,
        ),
    };
    pass(detail, evidence)
}

/// The subject of a tag step: the learner's tag, or why it is not known.
pub(super) fn subject_or_block(ctx: &CheckContext<'_>) -> Result<String, Outcome> {
    let suggest = ctx.lab.steps().find_map(|s| match &s.check {
        Check::TagAdded { suggest } => suggest.clone(),
        _ => None,
    });
    learner_tag(ctx, suggest.as_deref()).ok_or_else(|| Outcome::Blocked {
        reason: "add an extended query tag first (its step names the tag the next steps use)"
            .into(),
    })
}

pub(super) fn tag_used(ctx: &CheckContext<'_>, step: &Step, value: Option<&str>) -> Outcome {
    let tag = match tag_step(ctx) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let expected = format!(
        "a search with {tag} (e.g. /studies?{tag}={}) that finds something",
        value.unwrap_or("…")
    );
    let uses = |a: &Attempt| {
        a.method.eq_ignore_ascii_case("GET")
            && a.route().is_some_and(|(segs, q)| {
                matches!(
                    segs.last().map(String::as_str),
                    Some("studies" | "series" | "instances")
                ) && q.iter().any(|(k, _)| same_tag(k, &tag))
            })
    };
    let attempts = ctx.records.attempts_since(ctx.since);
    if let Some(a) = attempts.iter().find(|a| uses(a) && a.status == 200) {
        return pass(
            format!(
                "searched with {tag} ({}{})",
                local_time(a.at),
                tool_suffix(a)
            ),
            Evidence::new(
                a.source,
                format!("{} answered 200{}", a.line(), tool_suffix(a)),
                a.time(),
            ),
        );
    }
    let tried = ctx.tried(uses, |a| a.status != 200);
    ctx.after_attempts(step, expected, tried, |tried| {
        ready(not_recorded_hint(ctx, step), tried)
    })
}

/// The learner's tag, for a step on it; or why it cannot be checked (no tags, no tag yet).
fn tag_step(ctx: &CheckContext<'_>) -> Result<String, Outcome> {
    if let Some(o) = tags_unavailable(ctx) {
        return Err(o);
    }
    subject_or_block(ctx)
}

/// A request of `method` on the learner's tag (`extendedquerytags/{tag}`).
fn on_tag<'a>(method: &'a str, tag: &'a str) -> impl Fn(&Attempt) -> bool + 'a {
    move |a: &Attempt| {
        a.method.eq_ignore_ascii_case(method)
            && tag_of_url(&a.url).is_some_and(|t| same_tag(&t, tag))
    }
}

pub(super) fn tag_updated(ctx: &CheckContext<'_>, step: &Step, query_status: &str) -> Outcome {
    let tag = match tag_step(ctx) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let expected = format!("{tag} with queryStatus {query_status}");
    let is_patch = on_tag("PATCH", &tag);
    let patched = ctx
        .records
        .attempts_since(ctx.since)
        .into_iter()
        .find(|a| is_patch(a) && a.status == 200);
    let listed = ctx
        .records
        .tags
        .as_ref()
        .and_then(|tags| tags.iter().find(|e| same_tag(&e.path, &tag)));
    let tried = ctx.tried(is_patch, |a| a.status != 200);
    match (listed, patched) {
        (Some(e), p)
            if e.query_status.eq_ignore_ascii_case(query_status)
                && (p.is_some() || ctx.state_may_show()) =>
        {
            pass(
            format!("{tag} has queryStatus {}", e.query_status),
            match p {
                Some(a) => Evidence::new(
                    a.source,
                    format!(
                        "{} answered 200{}; the tag list shows queryStatus {}",
                        a.line(),
                        tool_suffix(a),
                        e.query_status
                    ),
                    a.time(),
                ),
                None => Evidence::new(
                    Source::ServiceState,
                    format!(
                        "the service's tag list shows {tag} with queryStatus {}",
                        e.query_status
                    ),
                    None,
                ),
            },
            )
        }
        // The tag is gone now (deleted later): the record of the update is what is left.
        (None, Some(a)) => pass(
            format!(
                "{tag} was updated ({}{})",
                local_time(a.at),
                tool_suffix(a)
            ),
            Evidence::new(
                a.source,
                format!(
                    "{} answered 200{} (the record keeps the request, not its body)",
                    a.line(),
                    tool_suffix(a)
                ),
                a.time(),
            ),
        ),
        (Some(e), _) if e.query_status.eq_ignore_ascii_case(query_status) => {
            ctx.after_attempts(step, expected, tried, |tried| {
                ready(
                    format!(
                        "{tag} has queryStatus {} already, but the records show no PATCH of yours: PATCH {{\"QueryStatus\": \"{query_status}\"}} to {{baseUrl}}/extendedquerytags/{tag}",
                        e.query_status
                    ),
                    tried,
                )
            })
        }
        (Some(e), _) => match tried.first() {
            Some(t) => fail(
                expected,
                format!(
                    "queryStatus is {}; your last attempt: {} answered {}",
                    e.query_status, t.line, t.status
                ),
                t.diagnosis.clone(),
                tried,
            ),
            None => ready(
                format!(
                    "{tag} has queryStatus {}: PATCH {{\"QueryStatus\": \"{query_status}\"}} to {{baseUrl}}/extendedquerytags/{tag}",
                    e.query_status
                ),
                tried,
            ),
        },
        (None, None) => ctx.after_attempts(step, expected, tried, |_| Outcome::Blocked {
            reason: format!("{tag} is not in the tag list: add it first"),
        }),
    }
}

pub(super) fn tag_deleted(ctx: &CheckContext<'_>, step: &Step) -> Outcome {
    let tag = match tag_step(ctx) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let expected = format!("{tag} deleted (DELETE answered 204)");
    let is_delete = on_tag("DELETE", &tag);
    if let Some(a) = ctx
        .records
        .attempts_since(ctx.since)
        .into_iter()
        .find(|a| is_delete(a) && a.status == 204)
    {
        return pass(
            format!("{tag} deleted ({}{})", local_time(a.at), tool_suffix(a)),
            Evidence::new(
                a.source,
                format!("{} answered 204{}", a.line(), tool_suffix(a)),
                a.time(),
            ),
        );
    }
    let listed = ctx
        .records
        .tags
        .as_ref()
        .is_some_and(|tags| tags.iter().any(|e| same_tag(&e.path, &tag)));
    let added = ctx
        .lab
        .step_of_kind(CheckKind::TagAdded)
        .is_some_and(|s| ctx.done.contains(&s.id));
    let tried = ctx.tried(is_delete, |a| a.status != 204);
    if !listed && added && ctx.saved_subject(CheckKind::TagAdded).is_some() && ctx.state_may_show()
    {
        return pass(
            format!("{tag} is gone from the tag list"),
            Evidence::new(
                Source::ServiceState,
                format!("{tag} was in the tag list when its addition was checked, and is gone now"),
                None,
            ),
        );
    }
    match tried.first() {
        Some(t) => fail(
            expected,
            format!("your last attempt: {} answered {}", t.line, t.status),
            t.diagnosis.clone(),
            tried,
        ),
        None if ctx.may_still_arrive(step) && ctx.records.audit_read() => ctx.waiting(tried),
        None if listed => ready(
            format!("{tag} is still in the tag list: DELETE {{baseUrl}}/extendedquerytags/{tag}"),
            tried,
        ),
        None => Outcome::Blocked {
            reason: format!("add {tag} first: its deletion is checked against its addition"),
        },
    }
}
