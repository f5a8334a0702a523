//! The learner-facing reading of what went wrong: an HTTP status on a route (401 vs 403, a missing
//! `/v1`, 406 without `transfer-syntax=*`, 409 with its FailureReason…), an AADSTS error, a transport
//! failure. The same readings serve a check's own requests, the screens' requests, and the learner's
//! attempts found in the service's records (where only the status and the route are known).

use crate::targets::TargetKind;
use dicomlab_dicomweb::{Answer, ClientError, TokenError};

/// What is known of a request that did not succeed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Failed<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub status: u16,
    /// The answer's body, when it was seen (an audit row has none).
    pub body: Option<&'a str>,
    /// The `WWW-Authenticate` header of a 401, when seen.
    pub www_authenticate: Option<&'a str>,
    /// What the record adds (a sign-in row's AADSTS text).
    pub detail: Option<&'a str>,
}

/// Where the request went.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    pub target: TargetKind,
    /// The base URL in use.
    pub base: &'a str,
    /// The learner's client id (for "assign the role to client …").
    pub client_id: Option<&'a str>,
}

/// Whether a base URL carries an API version (`…/v1`, `…/v2`, `…/v1/partitions/x`).
pub(crate) fn has_version(base: &str) -> bool {
    let path = base
        .split_once("://")
        .map_or(base, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let path = path.split('?').next().unwrap_or("");
    path.split('/').any(|s| {
        s.strip_prefix('v')
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// Reads a failed request.
pub(crate) fn diagnose_status(place: Place<'_>, f: &Failed<'_>) -> String {
    let client = place.client_id.unwrap_or("(your client)");
    let body = f
        .body
        .map(|b| dicomlab_dicom::text::visible(b.trim()).into_owned());
    let tags = f.url.contains("/extendedquerytags");
    if f.url.contains("/oauth2/") {
        return match f.detail {
            Some(d) => diagnose_aadsts(d),
            None => format!("the token request got {}", f.status),
        };
    }
    match f.status {
        401 => {
            let why = f
                .www_authenticate
                .and_then(|w| w.split("error_description=\"").nth(1))
                .map(|d| format!(" ({})", dicomlab_dicom::text::visible(d.trim_end_matches('"'))));
            format!(
                "401 Unauthorized: the service did not accept the token{}. Get a new token (exercise 'Get an access token'); check that its audience is the resource https://dicom.healthcareapis.azure.com and that it has not expired.",
                why.unwrap_or_default()
            )
        }
        403 => format!(
            "403 Forbidden: the token is valid but the app has no role that allows this. {}",
            grant_here(place, client)
        ),
        404 if place.target != TargetKind::Generic && !has_version(f.url) => {
            "404 Not Found on a URL without a version: add /v1 to the base URL (every DICOM route is versioned).".into()
        }
        404 if tags => "404 Not Found: there is no such extended query tag (GET extendedquerytags lists them).".into(),
        404 => "404 Not Found: a UID in the path is wrong, or the instance is not stored (yet).".into(),
        406 if f.method.eq_ignore_ascii_case("POST") => {
            "406 Not Acceptable: a store must send Accept: application/dicom+json.".into()
        }
        406 => "406 Not Acceptable: add transfer-syntax=* to the Accept header (several instances cannot be sent in one fixed transfer syntax); searches and metadata need Accept: application/dicom+json.".into(),
        415 if tags => "415 Unsupported Media Type: send Content-Type: application/json.".into(),
        415 => "415 Unsupported Media Type: send Content-Type: application/dicom (one file) or multipart/related; type=\"application/dicom\"; boundary=….".into(),
        409 if tags => format!(
            "409 Conflict: {} — the tag exists already, or another re-index operation is still running (wait for it: GET the operation in the Location header).",
            body.unwrap_or_default()
        ),
        409 => match f.body {
            Some(b) => stow_conflict(b),
            None => "409 Conflict: no instance was stored — each was already stored (45070: the instance is there; the ✓ comes from who stored it first) or is not valid (43264); the answer's FailureReason says which.".into(),
        },
        400 if tags && body.as_deref().is_some_and(|b| b.contains("already supported")) => format!(
            "400: {} — it is a core searchable attribute already (the workshop's ManufacturerModelName is one now): add another tag, e.g. PatientSex.",
            body.unwrap_or_default()
        ),
        400 => match body {
            Some(b) if !b.is_empty() => format!("400 Bad Request: {b}"),
            _ if tags => "400 Bad Request: the tag's Path, VR or Level is not valid, or it is a core attribute already (ManufacturerModelName is).".into(),
            _ if f.url.contains('?') => "400 Bad Request: an attribute in the query cannot be searched at that level, or its value is not valid (a tag that is not ready or is disabled answers 400 too).".into(),
            _ => "400 Bad Request: a UID in the path or the request body is not valid.".into(),
        },
        204 if f.method.eq_ignore_ascii_case("GET") => {
            "204 No Content: the search found nothing — store the instances first, or check the UIDs in the query.".into()
        }
        413 => format!(
            "413 Payload Too Large: the body is bigger than the service takes in one request{} — store the files in several requests.",
            body.map(|b| format!(" ({b})")).unwrap_or_default()
        ),
        507 => format!(
            "507 Insufficient Storage: {} (a classroom gives each learner's service a limit: delete a study you no longer need).",
            body.unwrap_or_else(|| "the service holds all it may".into())
        ),
        429 => "429 Too Many Requests: slow down, then send it again (the answer's Retry-After says when).".into(),
        0 => "no answer: the request did not reach the service.".into(),
        s if s >= 500 => format!("{s}: the service failed; try again in a moment."),
        s => format!("unexpected status {s}"),
    }
}

/// Where the role a 403 lacks is granted on this target: the practice service's own way (dicomlab's
/// role command or the role screen; a classroom learner's, the role screen), else Azure's IAM blade.
fn grant_here(place: Place<'_>, client: &str) -> String {
    const AT_ONCE: &str = "it counts at once, without a new token.";
    if place.target != TargetKind::Practice {
        return format!(
            "Assign \"DICOM Data Owner\" to client {client} on the DICOM service (Access control (IAM)); on Azure a new assignment can take several minutes."
        );
    }
    let root = crate::config::service_root(place.base);
    if root != crate::config::origin_of(place.base) {
        // A path before the version: a classroom learner's service, administered by the classroom.
        return format!(
            "Grant \"DICOM Data Owner\" with + on the role screen (the lab's role step); {AT_ONCE}"
        );
    }
    let service = if root == format!("http://127.0.0.1:{}", crate::targets::PRACTICE_PORT) {
        String::new()
    } else {
        format!(" --service {root}")
    };
    format!(
        "On the practice service, grant client {client} \"DICOM Data Owner\": `dicomlab role grant{service}`, or + on the role screen; {AT_ONCE}"
    )
}

/// The reading of an answer a request got.
pub(crate) fn diagnose_answer(place: Place<'_>, a: &Answer) -> String {
    let text = a.text();
    diagnose_status(
        place,
        &Failed {
            method: &a.exchange.method,
            url: &a.exchange.url,
            status: a.status,
            body: Some(&text),
            www_authenticate: a.header("www-authenticate"),
            detail: None,
        },
    )
}

/// A STOW 409 read through its FailureReason codes (docs/contract.md §3.5).
fn stow_conflict(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let reasons: Vec<u64> = v
        .get("00081198")
        .and_then(|s| s.get("Value"))
        .and_then(|s| s.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.get("00081197")?.get("Value")?.get(0)?.as_u64())
                .collect()
        })
        .unwrap_or_default();
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

/// What a STOW FailureReason or WarningReason code means (docs/contract.md §3.5), in the learner's words.
pub fn reason_text(code: u64) -> &'static str {
    match code {
        45070 => {
            "already stored on this service (by you earlier, or by another client): the ✓ is the first store's, from the change feed; delete it first to store it again"
        }
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

/// The reading of a transport or token failure. `token_host` is the token endpoint's host: a DNS
/// failure there points at the network, not at a typo in the service URL.
pub fn diagnose_error(e: &ClientError) -> String {
    match e {
        ClientError::Dns { host }
            if host.ends_with("login.microsoftonline.com")
                || host.ends_with("microsoftonline.com") =>
        {
            format!(
                "host not found: {host}, Azure AD's token host. That name is fixed, so the network is the problem: check the connection, DNS or the proxy (HTTPS_PROXY), not your service URL."
            )
        }
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
        other => dicomlab_dicom::text::visible(&other.to_string()).into_owned(),
    }
}

fn diagnose_token(t: &TokenError) -> String {
    if let TokenError::Unreachable { host, why } = t {
        return format!(
            "the token host {host} cannot be reached ({why}): check the network connection, DNS or the proxy (HTTPS_PROXY). This is the token host, not your service URL: a typo there would not cause it."
        );
    }
    match t.aadsts() {
        Some(code) => diagnose_aadsts(code),
        None => dicomlab_dicom::text::visible(&t.to_string()).into_owned(),
    }
}

/// An AADSTS error (the code, or a text starting with it), in the learner's words.
pub(crate) fn diagnose_aadsts(text: &str) -> String {
    let code: String = text
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    match code.as_str() {
        "AADSTS7000215" => "AADSTS7000215: the client secret is wrong. Use the secret's Value (shown once when created), not its Secret ID.".into(),
        "AADSTS7000218" => "AADSTS7000218: no client secret was sent.".into(),
        "AADSTS700016" => "AADSTS700016: no app with this client id in this tenant. Check clientId and tenantId.".into(),
        "AADSTS90002" => "AADSTS90002: tenant not found. Check tenantId (the Directory (tenant) ID).".into(),
        "AADSTS500011" => "AADSTS500011: the resource is wrong. It is https://dicom.healthcareapis.azure.com.".into(),
        "AADSTS1002012" | "AADSTS70011" => "invalid scope: on the v2 endpoint the scope is https://dicom.healthcareapis.azure.com/.default.".into(),
        "AADSTS900144" => "AADSTS900144: a form field is missing (grant_type=client_credentials, client_id, client_secret, resource).".into(),
        "AADSTS70003" => "AADSTS70003: grant_type must be client_credentials.".into(),
        _ => dicomlab_dicom::text::visible(text.trim()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> Place<'static> {
        Place {
            target: TargetKind::Azure,
            base: "https://x/v1",
            client_id: Some("c1"),
        }
    }

    #[test]
    fn statuses_on_routes() {
        let d = |m, url, status| {
            diagnose_status(
                place(),
                &Failed {
                    method: m,
                    url,
                    status,
                    ..Failed::default()
                },
            )
        };
        assert!(d("GET", "https://x/v1/changefeed", 403).contains("client c1"));
        assert!(d("GET", "https://x/studies/1", 404).contains("add /v1"));
        assert!(d("GET", "https://x/v1/studies/1", 404).contains("UID"));
        assert!(d("GET", "https://x/v1/studies/1", 406).contains("transfer-syntax=*"));
        assert!(d("POST", "https://x/v1/studies", 415).contains("application/dicom"));
        assert!(d("POST", "https://x/v1/studies", 507).contains("delete a study"));
        assert!(!d("POST", "https://x/v1/studies", 507).contains("try again"));
        assert!(d("POST", "https://x/v1/studies", 413).contains("several requests"));
        assert!(d("POST", "https://x/v1/studies", 409).contains("45070"));
        assert!(d("POST", "https://x/v1/extendedquerytags", 409).contains("re-index"));
        assert!(d("GET", "https://x/v1/studies?StudyInstanceUID=1", 204).contains("found nothing"));
        assert!(has_version("https://x/v1/partitions/p1"));
        assert!(!has_version("https://x"));
    }

    #[test]
    fn a_403_on_the_practice_service_names_how_to_grant_there() {
        let d = |target, base| {
            diagnose_status(
                Place {
                    target,
                    base,
                    client_id: Some("c1"),
                },
                &Failed {
                    method: "POST",
                    url: "http://x/v1/studies",
                    status: 403,
                    ..Failed::default()
                },
            )
        };
        let embedded = d(TargetKind::Practice, "http://127.0.0.1:8042/v1");
        assert!(embedded.contains("`dicomlab role grant`"), "{embedded}");
        assert!(
            embedded.contains("role screen") && !embedded.contains("IAM"),
            "{embedded}"
        );
        let elsewhere = d(TargetKind::Practice, "http://127.0.0.1:40123/v1");
        assert!(
            elsewhere.contains("`dicomlab role grant --service http://127.0.0.1:40123`"),
            "{elsewhere}"
        );
        let classroom = d(TargetKind::Practice, "http://127.0.0.1:40123/l/ada/v1");
        assert!(
            classroom.contains("role screen") && !classroom.contains("dicomlab role"),
            "{classroom}"
        );
        let azure = d(TargetKind::Azure, "https://x/v1");
        assert!(azure.contains("Access control (IAM)") && !azure.contains("dicomlab role"));
    }

    #[test]
    fn token_host_dns_points_at_the_network() {
        let e = ClientError::Dns {
            host: "login.microsoftonline.com".into(),
        };
        assert!(diagnose_error(&e).contains("proxy"));
        let e = ClientError::Dns {
            host: "myws-dicom.dicom.azurehealthcareapis.com".into(),
        };
        assert!(diagnose_error(&e).contains("typos"));
        assert!(
            diagnose_aadsts("AADSTS7000215: Invalid client secret provided.").contains("Value")
        );
    }
}
