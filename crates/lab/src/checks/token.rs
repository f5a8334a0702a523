//! The token step: a token request of the learner's app, or a request it sent with a valid token;
//! not done, whether the profile's values would get a good one.

use super::{CheckContext, Outcome, Tried, checks_saw, diagnose_error, pass, ready, tool_suffix};
use crate::clock::local_time;
use crate::evidence::{Attempt, Evidence};
use crate::model::Step;
use dicomlab_dicomweb::AuthConfig;

pub(super) async fn token(ctx: &CheckContext<'_>, step: &Step) -> Outcome {
    let expected = "a token request of your app, or a request your app sent with a valid token";
    if !matches!(
        ctx.client.auth(),
        AuthConfig::Azure { .. } | AuthConfig::Bearer { .. }
    ) {
        return Outcome::NotSupported {
            reason: "this target does not use tokens".into(),
        };
    }
    // A user's sign-in or request is not the app's token (the viewer's step reads those).
    let attempts: Vec<&Attempt> = ctx
        .records
        .attempts_since(ctx.since)
        .into_iter()
        .filter(|a| !a.by_user())
        .collect();
    if let Some(a) = attempts.iter().find(|a| a.is_token_request() && a.ok()) {
        return pass(
            format!(
                "your app got a token ({}{})",
                local_time(a.at),
                tool_suffix(a)
            ),
            Evidence::new(
                a.source,
                format!(
                    "token request of your app answered 200 ({}{})",
                    a.at.map(crate::evidence::rfc3339).unwrap_or_default(),
                    tool_suffix(a)
                ),
                a.time(),
            ),
        );
    }
    if let Some(a) = attempts
        .iter()
        .find(|a| !a.is_token_request() && a.status != 401 && a.status != 0)
    {
        return pass(
            format!(
                "your app sent a request with a valid token ({} {}{})",
                a.line(),
                local_time(a.at),
                tool_suffix(a)
            ),
            Evidence::new(
                a.source,
                format!(
                    "{} answered {} with your app's token{}",
                    a.line(),
                    a.status,
                    tool_suffix(a)
                ),
                a.time(),
            ),
        );
    }
    let tried = ctx.tried(
        |a| !a.by_user() && (a.is_token_request() || a.status == 401),
        |a| !a.ok(),
    );
    if ctx.may_still_arrive(step) && ctx.records.audit_read() {
        return ctx.waiting(tried);
    }
    // Not done: say whether the values would get a good one (a check's own token, never credit).
    values_would_get_token(ctx, expected, tried).await
}

/// Not done: whether the profile's values get a token of the right audience and lifetime (the
/// checks' own token, never credit for the learner).
async fn values_would_get_token(
    ctx: &CheckContext<'_>,
    expected: &str,
    tried: Vec<Tried>,
) -> Outcome {
    match ctx.client.token().await {
        Ok(Some(t)) => {
            let left = t.remaining().as_secs();
            let aud = t
                .claims
                .as_ref()
                .and_then(|c| c.aud.clone())
                .unwrap_or_default();
            let resource = match ctx.client.auth() {
                AuthConfig::Azure { resource, .. } => resource.trim().to_string(),
                _ => dicomlab_dicomweb::auth::DICOM_RESOURCE.to_string(),
            };
            if !aud.is_empty() && aud.trim_end_matches('/') != resource.trim_end_matches('/') {
                return checks_saw(
                    "a token whose audience is the DICOM service",
                    format!("the token's audience is {aud}"),
                    format!("request the token with resource={resource}"),
                    tried,
                );
            }
            if left < 300 {
                return checks_saw(
                    "a token valid for at least 5 more minutes",
                    format!("the token expires in {left} s"),
                    "request a new token",
                    tried,
                );
            }
            let left = left / 60;
            ready(
                format!(
                    "your values get a token (audience {aud}, {left} min): now request one yourself — press d, or send Postman's AuthorizeGetToken"
                ),
                tried,
            )
        }
        Ok(None) => ready("no token is needed on this target", tried),
        Err(e) => checks_saw(expected, e.to_string(), diagnose_error(&e), tried),
    }
}
