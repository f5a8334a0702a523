//! Step checks. A check reads the service's state and never trusts what dicomlab did, so a step done with
//! Postman, curl or Python passes too. On a shared service other data exists: match by UID, never by counts.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::model::Check;
use crate::dicom::samples::{
    BLUE_UID, FRAME_BYTES, GREEN_UID, RED_UID, SAMPLES, SERIES1_UID, STUDY_UID,
};
use crate::dicomweb::{
    Answer, AuthConfig, ClientError, DicomWebClient, Level, TokenError, eq_ci, get_ci,
};

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Pass {
        detail: String,
    },
    Fail {
        expected: String,
        observed: String,
        diagnosis: String,
    },
    /// A prerequisite is missing: do an earlier step first.
    Blocked {
        reason: String,
    },
    /// The server lacks the feature (a generic DICOMweb server without change feed or tags).
    NotSupported {
        reason: String,
    },
    /// The check itself could not run.
    Error {
        message: String,
    },
}

impl Outcome {
    pub fn is_pass(&self) -> bool {
        matches!(self, Outcome::Pass { .. })
    }
    /// A short label: `pass`, `fail`, `blocked`, `not supported`, `error`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass { .. } => "pass",
            Outcome::Fail { .. } => "fail",
            Outcome::Blocked { .. } => "blocked",
            Outcome::NotSupported { .. } => "not supported",
            Outcome::Error { .. } => "error",
        }
    }
    /// The symbol that carries the outcome without color: ✓ ✗ ○ – (or + x o - in ASCII).
    pub fn symbol(&self, ascii: bool) -> &'static str {
        let (u, a) = match self {
            Outcome::Pass { .. } => ("✓", "+"),
            Outcome::Fail { .. } | Outcome::Error { .. } => ("✗", "x"),
            Outcome::Blocked { .. } => ("○", "o"),
            Outcome::NotSupported { .. } => ("–", "-"),
        };
        if ascii { a } else { u }
    }

    /// One line for lists and progress files.
    pub fn one_line(&self) -> String {
        match self {
            Outcome::Pass { detail } => detail.clone(),
            Outcome::Fail {
                observed,
                diagnosis,
                ..
            } => format!("{observed} — {diagnosis}"),
            Outcome::Blocked { reason } | Outcome::NotSupported { reason } => reason.clone(),
            Outcome::Error { message } => message.clone(),
        }
    }
}

fn fail(
    expected: impl Into<String>,
    observed: impl Into<String>,
    diagnosis: impl Into<String>,
) -> Outcome {
    Outcome::Fail {
        expected: expected.into(),
        observed: observed.into(),
        diagnosis: diagnosis.into(),
    }
}

fn pass(detail: impl Into<String>) -> Outcome {
    Outcome::Pass {
        detail: detail.into(),
    }
}

/// What kind of server the lab runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The practice service (embedded or `dicomlab serve`).
    Practice,
    /// Azure Health Data Services.
    Azure,
    /// Any DICOMweb server (Orthanc…).
    Generic,
}

/// Everything a check may use.
pub struct CheckContext<'a> {
    pub client: &'a DicomWebClient,
    pub target: TargetKind,
    /// Checks that passed before (prerequisites of the delete checks, which a state alone cannot prove).
    pub passed: HashSet<Check>,
    /// Where retrieved files go.
    pub scratch: PathBuf,
}

const DICOM_JSON: &str = "application/dicom+json";
const MULTI_ANY: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";

/// The learner-facing reading of an HTTP answer that is not a success.
pub fn diagnose(ctx: &CheckContext<'_>, a: &Answer) -> String {
    let client_id = match ctx.client.auth() {
        AuthConfig::Azure { client_id, .. } => client_id.clone(),
        _ => String::from("(your client)"),
    };
    match a.status {
        401 => {
            let why = a.header("www-authenticate").and_then(|w| w.split("error_description=\"").nth(1)).map(|d| d.trim_end_matches('"').to_string());
            format!(
                "401 Unauthorized: the service did not accept the token{}. Get a new token (exercise 'Get an access token'); check that its audience is the resource https://dicom.healthcareapis.azure.com and that it has not expired.",
                why.map(|w| format!(" ({w})")).unwrap_or_default()
            )
        }
        403 => format!(
            "403 Forbidden: the token is valid but the app has no role that allows this. Assign \"DICOM Data Owner\" to client {client_id} on the DICOM service (Access control (IAM)); on Azure a new assignment can take several minutes."
        ),
        404 if ctx.target != TargetKind::Generic && !has_version(ctx.client.base()) => {
            "404 Not Found on a base URL without a version: add /v1 to the base URL (every DICOM route is versioned).".into()
        }
        404 if a.exchange.url.contains("/extendedquerytags") => "404 Not Found: there is no such extended query tag (GET extendedquerytags lists them).".into(),
        404 => "404 Not Found: a UID in the path is wrong, or the instance is not stored (yet).".into(),
        406 => "406 Not Acceptable: add transfer-syntax=* to the Accept header (several instances cannot be sent in one fixed transfer syntax).".into(),
        415 => "415 Unsupported Media Type: send Content-Type: application/dicom (one file) or multipart/related; type=\"application/dicom\"; boundary=….".into(),
        409 if a.exchange.url.contains("/extendedquerytags") => format!(
            "409 Conflict: {} — the tag exists already, or another re-index operation is still running (wait for it: GET the operation in the Location header).",
            a.text().trim()
        ),
        409 => stow_conflict(a),
        400 => format!("400 Bad Request: {}", a.text().trim()),
        s if s >= 500 => format!("{s}: the service failed; try again in a moment."),
        s => format!("unexpected status {s}"),
    }
}

/// A STOW 409 read through its FailureReason codes (contract §3.5).
fn stow_conflict(a: &Answer) -> String {
    let reasons: Vec<u64> = a
        .json()
        .and_then(|v| v.get("00081198")?.get("Value")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|item| item.get("00081197")?.get("Value")?.get(0)?.as_u64())
        .collect();
    let mut parts: Vec<String> = Vec::new();
    for code in [45070, 43264, 45071] {
        if reasons.contains(&code) {
            parts.push(format!("{code}: {}", reason_text(code)));
        }
    }
    if parts.is_empty() {
        "409 Conflict: no instance was stored; see the FailureReason of each item.".into()
    } else {
        format!("409 Conflict: {}", parts.join("; "))
    }
}

/// What a STOW FailureReason or WarningReason code means (contract §3.5), in the learner's words.
pub fn reason_text(code: u64) -> &'static str {
    match code {
        45070 => "already stored — that counts as done (delete it first to replace it)",
        43264 => {
            "not a valid DICOM file, a required attribute is missing or invalid, or the file belongs to another study than the one in the URL"
        }
        43265 => "the instance's StudyInstanceUID is not the study in the URL",
        45071 => "the same instance is being stored by another request",
        45063 => {
            "warning: the dataset does not match its SOP class (an implicit VR file): stored anyway"
        }
        1 => "warning (v2): some attributes failed validation and were left out of the metadata",
        272 => "the service failed to read or store it: try again",
        _ => "a code the lab does not know: see the service's documentation",
    }
}

fn has_version(base: &str) -> bool {
    let b = base.trim_end_matches('/');
    b.ends_with("/v1") || b.ends_with("/v2") || b.ends_with("/v1.0-prerelease")
}

/// The reading of a transport or token failure.
pub fn diagnose_error(e: &ClientError) -> String {
    match e {
        ClientError::Dns { host } => {
            format!("host not found: {host}. Check the service URL for typos.")
        }
        ClientError::Connect { url } => format!(
            "connection refused: nothing answers at {url}. Is the service running (practice service: `dicomlab serve`)?"
        ),
        ClientError::Timeout { .. } => {
            "no answer in time: the service or the network is slow; try again.".into()
        }
        ClientError::Tls { .. } => {
            "TLS failed: the URL's certificate is not trusted (https with a wrong host name?)."
                .into()
        }
        ClientError::Token(t) => diagnose_token(t),
        other => other.to_string(),
    }
}

fn diagnose_token(t: &TokenError) -> String {
    match t.aadsts() {
        Some("AADSTS7000215") => "AADSTS7000215: the client secret is wrong. Use the secret's Value (shown once when created), not its Secret ID.".into(),
        Some("AADSTS7000218") => "AADSTS7000218: no client secret was sent.".into(),
        Some("AADSTS700016") => "AADSTS700016: no app with this client id in this tenant. Check clientId and tenantId.".into(),
        Some("AADSTS90002") => "AADSTS90002: tenant not found. Check tenantId (the Directory (tenant) ID).".into(),
        Some("AADSTS500011") => "AADSTS500011: the resource is wrong. It is https://dicom.healthcareapis.azure.com.".into(),
        Some("AADSTS1002012") | Some("AADSTS70011") => "invalid scope: on the v2 endpoint the scope is https://dicom.healthcareapis.azure.com/.default.".into(),
        _ => t.to_string(),
    }
}

/// The outcome for an answer that should have been a success.
fn failed_answer(ctx: &CheckContext<'_>, expected: &str, a: &Answer) -> Outcome {
    fail(
        expected,
        format!("{} answered {}", a.exchange.summary(), a.status),
        diagnose(ctx, a),
    )
}

fn failed_error(expected: &str, e: &ClientError) -> Outcome {
    match e {
        ClientError::Token(_) => Outcome::Blocked {
            reason: format!("no token: {}", diagnose_error(e)),
        },
        _ => fail(expected, e.to_string(), diagnose_error(e)),
    }
}

macro_rules! answer {
    ($expr:expr, $expected:expr) => {
        match $expr {
            Ok(a) => a,
            Err(e) => return failed_error($expected, &e),
        }
    };
}

fn first_str(obj: &Value, tag: &str) -> Option<String> {
    obj.get(tag)?
        .get("Value")?
        .get(0)?
        .as_str()
        .map(str::to_string)
}

/// Runs one check.
pub async fn run(ctx: &CheckContext<'_>, check: &Check) -> Outcome {
    match check {
        Check::ServiceExists => service_exists(ctx).await,
        Check::Environment => environment(ctx),
        Check::Token => token(ctx).await,
        Check::Role => role(ctx).await,
        Check::Store => store(ctx).await,
        Check::Search => search(ctx).await,
        Check::Retrieve => retrieve(ctx).await,
        Check::ChangeFeed => change_feed(ctx).await,
        Check::TagAdded { tag } => tag_added(ctx, tag).await,
        Check::TagUsed { tag, value } => tag_used(ctx, tag, value).await,
        Check::TagUpdated { tag, query_status } => tag_updated(ctx, tag, query_status).await,
        Check::TagDeleted { tag } => tag_deleted(ctx, tag).await,
        Check::Viewer => viewer(ctx).await,
        Check::Deleted { level } => deleted(ctx, level).await,
    }
}

async fn service_exists(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "any HTTP answer from the service URL (401 without a token proves it exists)";
    let a = answer!(
        ctx.client.get_anonymous("changefeed/latest").await,
        expected
    );
    if a.status != 404 {
        return pass(format!("the service answered {} without a token", a.status));
    }
    let b = answer!(ctx.client.get_anonymous("studies?limit=1").await, expected);
    if b.status == 404 {
        return failed_answer(ctx, expected, &b);
    }
    pass(format!("the service answered {} without a token", b.status))
}

fn environment(ctx: &CheckContext<'_>) -> Outcome {
    let base = ctx.client.base();
    let expected = "tenant id, client id, client secret, resource and a base URL ending in /v1";
    let mut problems = Vec::new();
    if base.trim_end_matches('/').ends_with("/studies") {
        problems.push(
            "the base URL ends in /studies: remove it (the lab adds /studies itself)".to_string(),
        );
    } else if ctx.target != TargetKind::Generic && !has_version(base) {
        problems.push("the base URL has no version: add /v1".to_string());
    }
    if ctx.target == TargetKind::Azure && base.starts_with("http://") {
        problems.push("Azure's DICOM service is served over https only".to_string());
    }
    if let AuthConfig::Azure {
        tenant_id,
        client_id,
        client_secret,
        resource,
        ..
    } = ctx.client.auth()
    {
        for (v, name) in [
            (tenant_id.as_str(), "tenantId"),
            (client_id.as_str(), "clientId"),
            (resource.as_str(), "resource"),
        ] {
            if v.trim().is_empty() {
                problems.push(format!("{name} is empty"));
            }
        }
        if client_secret.is_empty() {
            problems.push("clientSecret is empty".into());
        }
        if !resource.trim().is_empty()
            && resource.trim().trim_end_matches('/') != crate::dicomweb::auth::DICOM_RESOURCE
        {
            problems.push(format!(
                "resource is {resource}; the DICOM service's is {}",
                crate::dicomweb::auth::DICOM_RESOURCE
            ));
        }
    }
    if problems.is_empty() {
        pass(format!("base URL {base}; every value is set"))
    } else {
        fail(
            expected,
            problems.join("; "),
            "fix these values on the Environment screen (or in the config file)",
        )
    }
}

async fn token(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "a token whose audience is the resource, valid for at least 5 more minutes";
    let (token, resource) = match ctx.client.auth() {
        AuthConfig::Azure { resource, .. } => match ctx.client.refresh_token().await {
            Ok(t) => (t, resource.clone()),
            Err(e) => return fail(expected, e.to_string(), diagnose_error(&e)),
        },
        AuthConfig::Bearer { token } => (
            crate::dicomweb::Token::from_jwt(token.expose()),
            crate::dicomweb::auth::DICOM_RESOURCE.to_string(),
        ),
        _ => {
            return Outcome::NotSupported {
                reason: "this target does not use tokens".into(),
            };
        }
    };
    let claims = token.claims.clone().unwrap_or_default();
    if let Some(aud) = &claims.aud
        && aud.trim_end_matches('/') != resource.trim().trim_end_matches('/')
    {
        return fail(
            expected,
            format!("the token's audience is {aud}"),
            format!("request the token with resource={resource}"),
        );
    }
    let left = token.remaining().as_secs();
    if left < 300 {
        return fail(
            expected,
            format!("the token expires in {left} s"),
            "request a new token",
        );
    }
    pass(format!(
        "token for {} (app {}), {} min left",
        claims.aud.unwrap_or_default(),
        claims.app.unwrap_or_default(),
        left / 60
    ))
}

async fn role(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "an authenticated read that is neither 401 nor 403";
    let mut a = answer!(
        ctx.client
            .get("changefeed?limit=1", "application/json")
            .await,
        expected
    );
    if a.status == 404 {
        a = answer!(
            ctx.client.get("studies?limit=1", DICOM_JSON).await,
            expected
        );
    }
    if a.ok() {
        pass(format!("an authenticated read answered {}", a.status))
    } else {
        failed_answer(ctx, expected, &a)
    }
}

/// The samples found by SOP Instance UID: (sop, study, series) of each found.
async fn found_samples(
    ctx: &CheckContext<'_>,
) -> Result<Result<Vec<(String, String, String)>, Answer>, ClientError> {
    let mut found = Vec::new();
    for s in &SAMPLES {
        let a = ctx
            .client
            .search(
                Level::Instances,
                None,
                None,
                &[("SOPInstanceUID", s.sop_uid)],
            )
            .await?;
        if !a.ok() {
            return Ok(Err(a));
        }
        for r in a.results() {
            if first_str(&r, "00080018").as_deref() == Some(s.sop_uid) {
                found.push((
                    s.sop_uid.to_string(),
                    first_str(&r, "0020000D").unwrap_or_default(),
                    first_str(&r, "0020000E").unwrap_or_default(),
                ));
                break;
            }
        }
    }
    Ok(Ok(found))
}

async fn store(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "the 3 sample instances found by SOP Instance UID (1 study, 2 series)";
    let found = match found_samples(ctx).await {
        Ok(Ok(f)) => f,
        Ok(Err(a)) => return failed_answer(ctx, expected, &a),
        Err(e) => return failed_error(expected, &e),
    };
    let studies: HashSet<&str> = found.iter().map(|f| f.1.as_str()).collect();
    let series: HashSet<&str> = found.iter().map(|f| f.2.as_str()).collect();
    match found.len() {
        3 => pass(format!(
            "3 of 3 instances found: {} study, {} series",
            studies.len(),
            series.len()
        )),
        0 => fail(
            expected,
            "none of the 3 found (searches answered 204: nothing stored yet)",
            "POST the three .dcm files to {baseUrl}/studies",
        ),
        n => {
            let missing: Vec<&str> = SAMPLES
                .iter()
                .filter(|s| !found.iter().any(|f| f.0 == s.sop_uid))
                .map(|s| s.name)
                .collect();
            fail(
                expected,
                format!("{n} of 3 instances found"),
                format!("still to store: {}", missing.join(", ")),
            )
        }
    }
}

/// Name, level, study, series, filter, and the tag whose value must come back.
type SearchCase = (
    &'static str,
    Level,
    Option<&'static str>,
    Option<&'static str>,
    (&'static str, &'static str),
    &'static str,
);

async fn search(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "each of the six searches finds the expected UID";
    let cases: [SearchCase; 6] = [
        (
            "studies?StudyInstanceUID",
            Level::Studies,
            None,
            None,
            ("StudyInstanceUID", STUDY_UID),
            "0020000D",
        ),
        (
            "series?SeriesInstanceUID",
            Level::Series,
            None,
            None,
            ("SeriesInstanceUID", SERIES1_UID),
            "0020000E",
        ),
        (
            "studies/{study}/series",
            Level::Series,
            Some(STUDY_UID),
            None,
            ("SeriesInstanceUID", SERIES1_UID),
            "0020000E",
        ),
        (
            "instances?SOPInstanceUID",
            Level::Instances,
            None,
            None,
            ("SOPInstanceUID", RED_UID),
            "00080018",
        ),
        (
            "studies/{study}/instances",
            Level::Instances,
            Some(STUDY_UID),
            None,
            ("SOPInstanceUID", RED_UID),
            "00080018",
        ),
        (
            "studies/{study}/series/{series}/instances",
            Level::Instances,
            Some(STUDY_UID),
            Some(SERIES1_UID),
            ("SOPInstanceUID", RED_UID),
            "00080018",
        ),
    ];
    for (ok, (name, level, study, series, (k, v), tag)) in cases.into_iter().enumerate() {
        let a = answer!(
            ctx.client.search(level, study, series, &[(k, v)]).await,
            expected
        );
        if !a.ok() {
            return failed_answer(ctx, expected, &a);
        }
        if !a
            .results()
            .iter()
            .any(|r| first_str(r, tag).as_deref() == Some(v))
        {
            if ok == 0 {
                return Outcome::Blocked {
                    reason: format!("the search {name} found nothing: store the samples first"),
                };
            }
            return fail(
                expected,
                format!("{name} did not return {v}"),
                "check the UIDs in the query",
            );
        }
    }
    pass("all six searches found the lab's UIDs")
}

/// Reads the SOP Instance UID of a DICOM file on disk.
fn sop_of(path: &std::path::Path) -> Option<String> {
    let obj = dicom_object::OpenFileOptions::new()
        .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
        .open_file(path)
        .ok()?;
    let e = obj
        .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .ok()?;
    e.to_str()
        .ok()
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
}

async fn retrieve(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "the study (3 parts), the instance (a DICOM file with its SOP UID), its metadata and frame 1";
    let dir = ctx
        .scratch
        .join(format!("retrieve-{}", uuid::Uuid::new_v4().simple()));
    let inst = format!("studies/{STUDY_UID}/series/{SERIES1_UID}/instances/{RED_UID}");
    // Instance: single part where the server allows it (Orthanc only answers multipart).
    let accept = if ctx.target == TargetKind::Generic {
        MULTI_ANY
    } else {
        "application/dicom; transfer-syntax=*"
    };
    let (a, files) = answer!(
        ctx.client
            .retrieve_to_dir(&inst, accept, &dir.join("instance"))
            .await,
        expected
    );
    if a.status == 404 {
        return Outcome::Blocked {
            reason: "the red triangle instance is not stored: store the samples first".into(),
        };
    }
    if !a.ok() {
        return failed_answer(ctx, expected, &a);
    }
    if files.first().and_then(|f| sop_of(&f.path)).as_deref() != Some(RED_UID) {
        return fail(
            expected,
            "the instance retrieved is not a DICOM file with the red triangle's SOP UID",
            "retrieve .../instances/{red}",
        );
    }
    // Study, multipart.
    let (a, files) = answer!(
        ctx.client
            .retrieve_to_dir(
                &format!("studies/{STUDY_UID}"),
                MULTI_ANY,
                &dir.join("study")
            )
            .await,
        expected
    );
    if !a.ok() {
        return failed_answer(ctx, expected, &a);
    }
    let sops: HashSet<String> = files.iter().filter_map(|f| sop_of(&f.path)).collect();
    if ![RED_UID, GREEN_UID, BLUE_UID]
        .iter()
        .all(|u| sops.contains(*u))
    {
        return fail(
            expected,
            format!("the study came back with {} part(s)", files.len()),
            "store all three samples first",
        );
    }
    // Metadata.
    let m = answer!(
        ctx.client
            .get(&format!("{inst}/metadata"), DICOM_JSON)
            .await,
        expected
    );
    let meta = m
        .json()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    if !m.ok()
        || meta
            .first()
            .and_then(|o| first_str(o, "00080018"))
            .as_deref()
            != Some(RED_UID)
    {
        return if m.ok() {
            fail(
                expected,
                "metadata without the SOP UID",
                "GET …/metadata with Accept: application/dicom+json",
            )
        } else {
            failed_answer(ctx, expected, &m)
        };
    }
    // Frame 1.
    let (f, frames) = answer!(
        ctx.client
            .retrieve_to_dir(
                &format!("{inst}/frames/1"),
                "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
                &dir.join("frames")
            )
            .await,
        expected
    );
    let _ = tokio::fs::remove_dir_all(&dir).await;
    if !f.ok() {
        return failed_answer(ctx, expected, &f);
    }
    match frames.first().map(|p| p.size) {
        Some(n) if n as usize == FRAME_BYTES => pass(format!(
            "study: {} parts; instance, metadata and frame 1 ({FRAME_BYTES} bytes) retrieved",
            files.len()
        )),
        other => fail(
            expected,
            format!("frame 1 has {} bytes", other.unwrap_or(0)),
            format!("expected {FRAME_BYTES} bytes (979 × 985 × 3)"),
        ),
    }
}

fn is_v2(base: &str) -> bool {
    base.trim_end_matches('/').ends_with("/v2")
}

async fn change_feed(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "Create entries for the 3 sample SOP Instance UIDs";
    let latest = answer!(ctx.client.change_feed_latest().await, expected);
    if latest.status == 404 {
        return Outcome::NotSupported {
            reason: "this server has no change feed (an Azure DICOM service feature)".into(),
        };
    }
    if !(latest.ok() || latest.status == 204) {
        return failed_answer(ctx, expected, &latest);
    }
    let last = latest
        .json()
        .and_then(|v| get_ci(&v, "sequence").and_then(Value::as_u64))
        .unwrap_or(0);
    let wanted: HashSet<&str> = [RED_UID, GREEN_UID, BLUE_UID].into();
    let mut seen: HashSet<String> = HashSet::new();
    let (mut offset, limit) = (0u64, 100u32);
    let v2 = is_v2(ctx.client.base());
    for _ in 0..10_000 {
        let a = answer!(ctx.client.change_feed(offset, limit, false).await, expected);
        if !a.ok() {
            return failed_answer(ctx, expected, &a);
        }
        let entries = a
            .json()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        for e in &entries {
            let action = get_ci(e, "action").and_then(Value::as_str).unwrap_or("");
            let sop = get_ci(e, "sopInstanceUid")
                .and_then(Value::as_str)
                .unwrap_or("");
            if eq_ci(action, "create") && wanted.contains(sop) {
                seen.insert(sop.to_string());
            }
        }
        if v2 {
            // v2: offset skips rows; a short page is the end.
            offset += entries.len() as u64;
            if entries.len() < limit as usize {
                break;
            }
        } else {
            // v1: offset is a sequence cursor; an empty window is not the end until we pass `latest`.
            let max = entries
                .iter()
                .filter_map(|e| get_ci(e, "sequence").and_then(Value::as_u64))
                .max();
            offset = max.unwrap_or(offset + u64::from(limit));
            if offset >= last {
                break;
            }
        }
    }
    match seen.len() {
        3 => pass("Create entries found for all 3 samples"),
        n => fail(
            expected,
            format!("{n} of 3 found in the change feed"),
            "store the samples; every store adds a Create entry",
        ),
    }
}

/// Whether the server has extended query tags (404 on the list route means no).
async fn tags_supported(ctx: &CheckContext<'_>) -> Result<Option<Outcome>, ClientError> {
    let a = ctx
        .client
        .get("extendedquerytags?limit=1", "application/json")
        .await?;
    Ok(match a.status {
        404 => Some(Outcome::NotSupported {
            reason: "this server has no extended query tags (an Azure DICOM service feature)"
                .into(),
        }),
        s if (200..300).contains(&s) => None,
        _ => Some(failed_answer(
            ctx,
            "the extended query tags API answers",
            &a,
        )),
    })
}

/// The outcome to give when the tags API is missing or failing; `None` when tags can be checked.
async fn tags_unavailable(ctx: &CheckContext<'_>, expected: &str) -> Option<Outcome> {
    match tags_supported(ctx).await {
        Ok(o) => o,
        Err(e) => Some(failed_error(expected, &e)),
    }
}

async fn tag_added(ctx: &CheckContext<'_>, tag: &str) -> Outcome {
    let expected = format!("the tag {tag} with status ready");
    if let Some(o) = tags_unavailable(ctx, &expected).await {
        return o;
    }
    let a = answer!(
        ctx.client
            .get(&format!("extendedquerytags/{tag}"), "application/json")
            .await,
        &expected
    );
    if a.status == 404 {
        return fail(
            &expected,
            format!("{tag} is not there (404)"),
            format!(
                "POST [{{\"Path\":\"{tag}\",\"Level\":\"Study\"}}] to {{baseUrl}}/extendedquerytags. (The workshop's ManufacturerModelName answers 400 'already supported': it is a core attribute now.)"
            ),
        );
    }
    if !a.ok() {
        return failed_answer(ctx, &expected, &a);
    }
    let v = a.json().unwrap_or_default();
    let status = get_ci(&v, "status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if eq_ci(&status, "ready") {
        return pass(format!(
            "{tag} is ready (queryStatus {})",
            get_ci(&v, "queryStatus")
                .and_then(Value::as_str)
                .unwrap_or("?")
        ));
    }
    let mut observed = format!("{tag} has status {status}");
    if let Some(op) = get_ci(&v, "operation")
        .and_then(|o| get_ci(o, "id"))
        .and_then(Value::as_str)
        && let Ok(o) = ctx
            .client
            .get(&format!("operations/{op}"), "application/json")
            .await
        && let Some(p) = o
            .json()
            .and_then(|j| get_ci(&j, "percentComplete").and_then(Value::as_u64))
    {
        observed.push_str(&format!(" (re-index {p}% done)"));
    }
    fail(
        expected,
        observed,
        "the re-index operation is still running: poll its href until it completes, then check again",
    )
}

async fn tag_used(ctx: &CheckContext<'_>, tag: &str, value: &str) -> Outcome {
    let expected = format!("/studies?{tag}={value} finds the lab study");
    if let Some(o) = tags_unavailable(ctx, &expected).await {
        return o;
    }
    let a = answer!(
        ctx.client
            .search(Level::Studies, None, None, &[(tag, value)])
            .await,
        &expected
    );
    if a.status == 400 {
        return fail(
            &expected,
            format!("400: {}", a.text().trim()),
            format!(
                "the tag {tag} must exist, be ready and be enabled (add it and wait for its operation)"
            ),
        );
    }
    if !a.ok() {
        return failed_answer(ctx, &expected, &a);
    }
    if a.results()
        .iter()
        .any(|r| first_str(r, "0020000D").as_deref() == Some(STUDY_UID))
    {
        pass(format!("/studies?{tag}={value} found the lab study"))
    } else {
        Outcome::Blocked {
            reason: "the search found no lab study: store the samples first".into(),
        }
    }
}

async fn tag_updated(ctx: &CheckContext<'_>, tag: &str, query_status: &str) -> Outcome {
    let expected = format!("{tag} with queryStatus {query_status}");
    if let Some(o) = tags_unavailable(ctx, &expected).await {
        return o;
    }
    let a = answer!(
        ctx.client
            .get(&format!("extendedquerytags/{tag}"), "application/json")
            .await,
        &expected
    );
    if a.status == 404 {
        return Outcome::Blocked {
            reason: format!("{tag} is not there: add it first"),
        };
    }
    if !a.ok() {
        return failed_answer(ctx, &expected, &a);
    }
    let v = a.json().unwrap_or_default();
    let got = get_ci(&v, "queryStatus")
        .and_then(Value::as_str)
        .unwrap_or("");
    if eq_ci(got, query_status) {
        pass(format!("{tag} has queryStatus {got}"))
    } else {
        fail(
            expected,
            format!("queryStatus is {got}"),
            format!(
                "PATCH {{\"QueryStatus\": \"{query_status}\"}} to {{baseUrl}}/extendedquerytags/{tag}"
            ),
        )
    }
}

async fn tag_deleted(ctx: &CheckContext<'_>, tag: &str) -> Outcome {
    let expected = format!("{tag} gone (404)");
    if let Some(o) = tags_unavailable(ctx, &expected).await {
        return o;
    }
    // A tag that was never added is also 404: only a tag that was seen ready can be seen deleted.
    if !ctx
        .passed
        .iter()
        .any(|c| matches!(c, Check::TagAdded { tag: t } if t == tag))
    {
        return Outcome::Blocked {
            reason: format!(
                "add {tag} first (its check must pass before its deletion can be checked)"
            ),
        };
    }
    let a = answer!(
        ctx.client
            .get(&format!("extendedquerytags/{tag}"), "application/json")
            .await,
        &expected
    );
    match a.status {
        404 => pass(format!("{tag} is deleted (404)")),
        s if (200..300).contains(&s) => fail(
            expected,
            format!("{tag} is still there"),
            format!("DELETE {{baseUrl}}/extendedquerytags/{tag}"),
        ),
        _ => failed_answer(ctx, &expected, &a),
    }
}

async fn viewer(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "a rendered PNG of 985 × 979 pixels";
    let path = format!("studies/{STUDY_UID}/series/{SERIES1_UID}/instances/{RED_UID}/rendered");
    let a = answer!(ctx.client.get(&path, "image/png").await, expected);
    if a.status == 404 {
        return Outcome::Blocked {
            reason: "the red triangle is not stored: store the samples first".into(),
        };
    }
    if !a.ok() {
        return failed_answer(ctx, expected, &a);
    }
    match image::load_from_memory(&a.body) {
        Ok(img) if (img.width(), img.height()) == (985, 979) => pass("rendered PNG of 985 × 979"),
        Ok(img) => fail(
            expected,
            format!("an image of {} × {}", img.width(), img.height()),
            "render the red triangle's instance",
        ),
        Err(e) => fail(
            expected,
            format!("not an image: {e}"),
            "send Accept: image/png",
        ),
    }
}

async fn deleted(ctx: &CheckContext<'_>, level: &str) -> Outcome {
    let (gone, what): (&[&str], String) = match level {
        "instance" => (&[RED_UID], "the red triangle instance".into()),
        "series" => (&[RED_UID, GREEN_UID], format!("series {SERIES1_UID}")),
        _ => (
            &[RED_UID, GREEN_UID, BLUE_UID],
            format!("study {STUDY_UID}"),
        ),
    };
    let expected = format!("{what} deleted");
    if !ctx.passed.contains(&Check::Store) {
        return Outcome::Blocked {
            reason: "store the samples first: a delete is checked against what was stored".into(),
        };
    }
    for uid in gone {
        let a = answer!(
            ctx.client
                .search(Level::Instances, None, None, &[("SOPInstanceUID", uid)])
                .await,
            &expected
        );
        if !a.ok() && a.status != 204 {
            return failed_answer(ctx, &expected, &a);
        }
        if !a.results().is_empty() {
            return fail(
                expected,
                format!("{uid} is still found"),
                format!("DELETE the {level} (DELETE answers 204, then 404)"),
            );
        }
    }
    pass(format!("{what} is gone"))
}
