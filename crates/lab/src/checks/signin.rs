//! A step done by a user signed in through the learner's app (the OHIF viewer's), not done yet: what
//! the records say about the set-up, in the order a learner meets it — the sign-in refused (a redirect
//! URI not registered: AADSTS50011; the implicit grant off; a wrong scope), the user signed in but none
//! of their requests reached the service (a browser blocks what the DICOM service's CORS setting does
//! not allow), the user's requests refused (401: the token's audience; 403: the user has no role).

use super::{CheckContext, Outcome, Tried, fail, ready};
use crate::clock::local_time;
use crate::evidence::Attempt;
use crate::model::Step;

/// The fix for a CORS block, on Azure and on the practice service.
pub(super) const CORS_FIX: &str = "a browser does not let a page read answers that the DICOM service's CORS setting does not allow for the page's origin, and does not even send a request with a token then. Allow the viewer's origin (where OHIF runs, e.g. http://127.0.0.1:3000) with the header authorization and the method GET — Azure: DICOM service → CORS; practice service: dicomlab cors set --origin http://127.0.0.1:3000 --header authorization --method GET";

/// What to do about a refused sign-in, by its AADSTS code.
pub(super) fn sign_in_fix(detail: &str) -> String {
    let code: String = detail
        .trim()
        .trim_start_matches("AADSTS")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    match code.as_str() {
        "50011" => "register the viewer's redirect URI — its origin followed by /callback, e.g. http://127.0.0.1:3000/callback, exactly as the browser shows it (127.0.0.1 is not localhost) — on the app registration as a single-page application. Azure: App registrations → the app → Authentication → Add a platform → Single-page application; practice service: dicomlab app redirect-uri add http://127.0.0.1:3000/callback".into(),
        "700051" | "700054" => "the viewer asks the authorization endpoint for tokens (the implicit grant): tick Access tokens and ID tokens under Authentication → Implicit grant (practice service: dicomlab app implicit --access-tokens --id-tokens), or use the code flow with PKCE (dicomlab ohif --flow code)".into(),
        "650053" | "65001" | "500011" | "28000" | "70011" => "the viewer's scope must be openid profile https://dicom.healthcareapis.azure.com/Dicom.ReadWrite; on Azure the app registration needs the API permission Azure API for DICOM → Delegated → Dicom.ReadWrite, with admin consent".into(),
        "700016" => "the viewer's client_id is not an app of this tenant: use your app registration's Application (client) ID".into(),
        "90002" => "the viewer's authority names another tenant: https://login.microsoftonline.com/<your tenant id>/v2.0".into(),
        _ => dicomlab_dicom::text::visible(detail.trim()).into_owned(),
    }
}

/// What a user's refused DICOM request means.
fn user_request_fix(ctx: &CheckContext<'_>, a: &Attempt, user: &str) -> String {
    match a.status {
        403 => format!(
            "403 Forbidden: your user {user} signed in, but has no role on the DICOM service: the app's role is not the user's. Assign DICOM Data Reader (or Owner) to the user — Azure: DICOM service → Access control (IAM) → Add role assignment → the user; practice service: dicomlab role grant --user"
        ),
        401 => "401 Unauthorized: the service did not take your user's token. The viewer must ask for the scope https://dicom.healthcareapis.azure.com/Dicom.ReadWrite (a token for Microsoft Graph has another audience), and the app registration needs that API permission".into(),
        _ => ctx.diagnose_attempt(a),
    }
}

pub(super) fn not_yet(
    ctx: &CheckContext<'_>,
    step: &Step,
    expected: &str,
    tried: Vec<Tried>,
) -> Outcome {
    let mut users: Vec<&Attempt> = ctx
        .records
        .attempts_since(ctx.since)
        .into_iter()
        .filter(|a| a.by_user())
        .collect();
    users.sort_by_key(|a| std::cmp::Reverse(a.time()));
    let name = |a: &Attempt| {
        a.principal
            .as_ref()
            .and_then(|p| p.user())
            .unwrap_or("(your user)")
            .to_string()
    };
    // The newest of the user's DICOM requests, when it was refused.
    if let Some(a) = users.iter().find(|a| !a.is_user_sign_in())
        && !a.ok()
        && a.status != 204
    {
        return fail(
            expected,
            format!(
                "your user's last request: {} answered {} ({})",
                a.line(),
                a.status,
                local_time(a.at)
            ),
            user_request_fix(ctx, a, &name(a)),
            tried,
        );
    }
    if let Some(t) = tried.first() {
        return fail(
            expected,
            format!("your user's last attempt: {} answered {}", t.line, t.status),
            t.diagnosis.clone(),
            tried,
        );
    }
    let requested = users.iter().any(|a| !a.is_user_sign_in());
    match users.iter().find(|a| a.is_user_sign_in()) {
        Some(s) if !s.ok() => {
            let detail = s.detail.clone().unwrap_or_default();
            fail(
                expected,
                format!(
                    "a sign-in through your app was refused ({}{}): {}",
                    local_time(s.at),
                    s.tool.as_ref().map(|t| format!(", from {t}")).unwrap_or_default(),
                    dicomlab_dicom::text::visible(&detail)
                ),
                sign_in_fix(&detail),
                tried,
            )
        }
        Some(s) if !requested => {
            if ctx.may_still_arrive(step) {
                return ctx.waiting(tried);
            }
            fail(
                expected,
                format!(
                    "your user {} signed in through your app ({}), but no request of theirs reached the DICOM service",
                    name(s),
                    local_time(s.at)
                ),
                CORS_FIX,
                tried,
            )
        }
        Some(s) => ready(
            format!(
                "your user {} signed in and the viewer reached the service, but the study's images are not on the record yet: open the lab study in the viewer",
                name(s)
            ),
            tried,
        ),
        None if ctx.may_still_arrive(step) => ctx.waiting(tried),
        None => ready(
            match ctx.reads_unrecorded() {
                Some(why) => format!(
                    "no record of a user's reads ({why}): the viewer's step needs the service's audit log"
                ),
                None => "open the lab study in the OHIF viewer (dicomlab ohif) and sign in as your user: the app's own requests (dicomlab, Postman, curl) do not count here".into(),
            },
            tried,
        ),
    }
}
