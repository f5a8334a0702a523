//! The checks whose record is the service itself: it exists, the app's role, the profile's values.

use time::OffsetDateTime;

use super::{CheckContext, Outcome, checks_saw, diagnose_error, fail, pass};
use crate::diagnose::diagnose_answer;
use crate::evidence::{Evidence, Source};
use crate::model::Permission;
use crate::targets::TargetKind;
use dicomlab_dicomweb::AuthConfig;

pub(super) async fn service_exists(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "any HTTP answer from the service URL (401 without a token proves it exists)";
    let mut a = match ctx.client.get_anonymous("changefeed/latest").await {
        Ok(a) => a,
        Err(e) => return checks_saw(expected, e.to_string(), diagnose_error(&e), Vec::new()),
    };
    if a.status == 404 {
        a = match ctx.client.get_anonymous("studies?limit=1").await {
            Ok(a) => a,
            Err(e) => return checks_saw(expected, e.to_string(), diagnose_error(&e), Vec::new()),
        };
        if a.status == 404 {
            return checks_saw(
                expected,
                a.exchange.summary(),
                diagnose_answer(ctx.place(), &a),
                Vec::new(),
            );
        }
    }
    pass(
        format!("the service answered {} without a token", a.status),
        Evidence::new(
            Source::ServiceState,
            format!(
                "the service at {} answers ({} without a token)",
                ctx.client.base(),
                a.status
            ),
            Some(OffsetDateTime::now_utc()),
        ),
    )
}

/// The role: an empty store (zero parts: nothing is stored) shows whether the app may write; a read
/// whether it may read. DICOM Data Reader may read but not write.
pub(super) async fn role(ctx: &CheckContext<'_>, may: Permission) -> Outcome {
    // A generic server has no Azure roles (unless a pasted Azure token points at Azure behind it).
    if ctx.target == TargetKind::Generic && !matches!(ctx.client.auth(), AuthConfig::Bearer { .. })
    {
        return Outcome::NotSupported {
            reason:
                "this server has no Azure roles: access is whatever its own configuration allows"
                    .into(),
        };
    }
    let (expected, answer) = match may {
        Permission::Write => (
            "an empty store (it stores nothing) that is neither 401 nor 403: the app may write",
            ctx.client.probe_store().await,
        ),
        Permission::Read => (
            "an authenticated read that is neither 401 nor 403",
            ctx.client
                .get(&ctx.client.marked("changefeed?limit=1"), "application/json")
                .await,
        ),
    };
    let a = match answer {
        Ok(a) => a,
        Err(e) => {
            return if matches!(e, dicomlab_dicomweb::ClientError::Token(_)) {
                Outcome::Blocked {
                    reason: format!("no token: {}", diagnose_error(&e)),
                }
            } else {
                checks_saw(expected, e.to_string(), diagnose_error(&e), Vec::new())
            };
        }
    };
    if a.ok() {
        let what = match may {
            Permission::Write => {
                "the service let the app write (an empty store answered 204; nothing was stored)"
            }
            Permission::Read => "the service let the app read",
        };
        return pass(
            format!("{what}: the role is assigned"),
            Evidence::new(Source::ServiceState, what, Some(OffsetDateTime::now_utc())),
        );
    }
    let mut diagnosis = diagnose_answer(ctx.place(), &a);
    if a.status == 403 && may == Permission::Write {
        diagnosis.push_str(" DICOM Data Reader is not enough: it reads but cannot store.");
    }
    checks_saw(expected, a.exchange.summary(), diagnosis, Vec::new())
}

pub(super) fn environment(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "tenant id, client id, client secret, resource and a base URL ending in /v1";
    if ctx.profile_problems.is_empty() {
        pass(
            format!("base URL {}; every value is set", ctx.client.base()),
            Evidence::new(
                Source::Local,
                format!(
                    "the profile holds every value (base URL {})",
                    ctx.client.base()
                ),
                None,
            ),
        )
    } else {
        fail(
            expected,
            ctx.profile_problems.join("; "),
            "fix these values on the Environment screen (or in the config file)",
            Vec::new(),
        )
    }
}
