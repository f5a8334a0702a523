//! Checking an authorization request as Entra does: the tenant, the app, its registered redirect
//! URI (refused on the sign-in page when wrong: the app cannot be trusted with the answer), then the
//! response type, the implicit grant's boxes, the scope (one resource), `nonce`, PKCE — those errors go
//! back to the app's redirect URI, in its query or fragment.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::directory::Platform;
use super::protocol::{DICOM_SCOPE, GRAPH_RESOURCE, MAX_QUERY, shown};
use crate::SharedService;
use crate::auth::DICOM_RESOURCE;

/// What a `response_type` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ResponseType {
    pub(super) code: bool,
    pub(super) token: bool,
    pub(super) id_token: bool,
}

/// A checked authorization request, waiting for its sign-in.
#[derive(Debug, Clone)]
pub(super) struct AuthorizeRequest {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    pub(super) platform: Platform,
    pub(super) response_type: ResponseType,
    /// Answer in the fragment (implicit) rather than the query (code).
    pub(super) fragment: bool,
    /// What the user consents to: OpenID scopes and the resource's.
    pub(super) scopes: Vec<String>,
    /// The access token's audience and `scp`.
    pub(super) resource: &'static str,
    pub(super) scp: String,
    pub(super) state: Option<String>,
    pub(super) nonce: Option<String>,
    /// PKCE: the challenge and whether it is S256 (else plain).
    pub(super) challenge: Option<(String, bool)>,
    pub(super) prompt: Option<String>,
}

/// Why an authorization request was refused: on the sign-in page (the app cannot be trusted with
/// the answer), or back to the app's redirect URI.
pub(super) enum Refusal {
    Page {
        code: u32,
        message: String,
    },
    Redirect {
        to: Box<AuthorizeRequest>,
        error: &'static str,
        code: u32,
        message: String,
    },
}

pub(super) fn page_refusal(code: u32, message: impl Into<String>) -> Refusal {
    Refusal::Page {
        code,
        message: message.into(),
    }
}

/// The resource and delegated permission of the scopes (one resource at most, as Entra wants).
pub(super) fn resource_of(
    scopes: &[String],
    client_id: &str,
) -> Result<(&'static str, String), (u32, String)> {
    let mut resource: Option<&'static str> = None;
    let mut granted: Vec<&str> = Vec::new();
    for s in scopes {
        let lower = s.to_ascii_lowercase();
        if ["openid", "profile", "email", "offline_access"].contains(&lower.as_str()) {
            continue;
        }
        let (r, perm): (&'static str, &str) = if let Some(p) = s
            .strip_prefix(DICOM_RESOURCE)
            .and_then(|p| p.strip_prefix('/'))
        {
            if p == DICOM_SCOPE || p == ".default" {
                (DICOM_RESOURCE, DICOM_SCOPE)
            } else {
                return Err((
                    650053,
                    format!(
                        "The application '{client_id}' asked for scope '{p}' that doesn't exist on the resource '{DICOM_RESOURCE}'. Contact the app vendor. (The DICOM service's delegated permission is {DICOM_SCOPE}.)"
                    ),
                ));
            }
        } else if lower == "user.read" || lower.starts_with("https://graph.microsoft.com/") {
            (GRAPH_RESOURCE, "User.Read")
        } else {
            let name = s.rsplit_once('/').map_or(s.as_str(), |(r, _)| r);
            return Err((
                500011,
                format!(
                    "The resource principal named {} was not found in the tenant. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                    dicomlab_dicom::text::visible(name)
                ),
            ));
        };
        if resource.is_some_and(|x| x != r) {
            return Err((
                28000,
                "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope is not valid.".into(),
            ));
        }
        resource = Some(r);
        if !granted.contains(&perm) {
            granted.push(perm);
        }
    }
    match resource {
        Some(r) => Ok((r, granted.join(" "))),
        // OpenID scopes only: Entra issues a token for Microsoft Graph.
        None => Ok((GRAPH_RESOURCE, "openid profile email User.Read".into())),
    }
}

pub(super) fn check_request(
    service: &SharedService,
    tenant: &str,
    query: Option<&str>,
) -> Result<AuthorizeRequest, Refusal> {
    let auth = &service.auth;
    if !tenant.eq_ignore_ascii_case(&auth.tenant_id) {
        return Err(page_refusal(
            90002,
            format!(
                "Tenant '{}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
                shown(tenant, 100)
            ),
        ));
    }
    let query = query.unwrap_or("");
    if query.len() > MAX_QUERY {
        return Err(page_refusal(
            90015,
            format!("The request is too long (its query string is over {MAX_QUERY} bytes)."),
        ));
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let missing = |p: &str| {
        page_refusal(
            900144,
            format!("The request body must contain the following parameter: '{p}'."),
        )
    };
    let client_id = get("client_id").ok_or_else(|| missing("client_id"))?;
    let Some(client) = auth.client(&client_id) else {
        return Err(page_refusal(
            700016,
            format!(
                "Application with identifier '{}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                shown(&client_id, 100),
                auth.tenant_id
            ),
        ));
    };
    let redirect_uri = get("redirect_uri").ok_or_else(|| missing("redirect_uri"))?;
    let Some(platform) = service
        .identity
        .directory
        .registered(&client.client_id, &redirect_uri)
    else {
        return Err(page_refusal(
            50011,
            format!(
                "The redirect URI '{}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
                shown(&redirect_uri, 300),
                client.client_id
            ),
        ));
    };
    let mut request = AuthorizeRequest {
        client_id: client.client_id.clone(),
        redirect_uri,
        platform,
        response_type: ResponseType {
            code: true,
            token: false,
            id_token: false,
        },
        fragment: false,
        scopes: Vec::new(),
        resource: DICOM_RESOURCE,
        scp: String::new(),
        state: get("state"),
        nonce: get("nonce"),
        challenge: None,
        prompt: get("prompt").map(|p| p.to_ascii_lowercase()),
    };
    // From here on, errors go back to the app (its redirect URI is registered).
    response_type(service, &mut request, &get)?;
    scopes(&mut request, &get)?;
    pkce(&mut request, &get)?;
    for (k, v) in [("state", &request.state), ("nonce", &request.nonce)] {
        if v.as_ref().is_some_and(|v| v.len() > 2048) {
            return Err(back(
                &request,
                "invalid_request",
                90015,
                format!("The '{k}' parameter is too long."),
            ));
        }
    }
    Ok(request)
}

/// An error that goes back to the app, at its redirect URI.
fn back(request: &AuthorizeRequest, error: &'static str, code: u32, message: String) -> Refusal {
    Refusal::Redirect {
        to: Box::new(request.clone()),
        error,
        code,
        message,
    }
}

/// `response_type` (code, or the implicit grant's token / id_token, when the app enables them) and
/// `response_mode` (query for a code, else fragment).
fn response_type(
    service: &SharedService,
    request: &mut AuthorizeRequest,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Refusal> {
    let rt = get("response_type").unwrap_or_default();
    let words: Vec<&str> = rt.split_whitespace().collect();
    let known = !words.is_empty()
        && words
            .iter()
            .all(|w| ["code", "token", "id_token"].contains(w))
        && !(words.contains(&"code") && words.len() > 1);
    request.response_type = ResponseType {
        code: words.contains(&"code"),
        token: words.contains(&"token"),
        id_token: words.contains(&"id_token"),
    };
    request.fragment = !request.response_type.code;
    match get("response_mode").as_deref() {
        None => {}
        Some("query") if request.response_type.code => request.fragment = false,
        Some("fragment") => request.fragment = true,
        Some(other) => {
            request.fragment = !request.response_type.code;
            return Err(back(
                request,
                "invalid_request",
                900021,
                format!(
                    "The response_mode '{}' is not offered here: use query (code) or fragment.",
                    shown(other, 40)
                ),
            ));
        }
    }
    if !known {
        return Err(back(
            request,
            "unsupported_response_type",
            900144,
            format!(
                "The provided value for the input parameter 'response_type' is not valid: '{}'. Use code (with PKCE), or token / id_token token for the implicit grant.",
                shown(&rt, 40)
            ),
        ));
    }
    let app = service.identity.directory.app(&request.client_id);
    if request.response_type.token && !app.implicit_access_tokens {
        return Err(back(
            request,
            "unsupported_response_type",
            700051,
            "response_type 'token' is not enabled for the application.".into(),
        ));
    }
    if request.response_type.id_token && !app.implicit_id_tokens {
        return Err(back(
            request,
            "unsupported_response_type",
            700054,
            "response_type 'id_token' is not enabled for the application.".into(),
        ));
    }
    Ok(())
}

/// `scope`: at least one, `openid` (and a `nonce`) for an id_token, one resource.
fn scopes(
    request: &mut AuthorizeRequest,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Refusal> {
    request.scopes = get("scope")
        .unwrap_or_default()
        .split_whitespace()
        .take(32)
        .map(str::to_string)
        .collect();
    if request.scopes.is_empty() {
        return Err(back(
            request,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.".into(),
        ));
    }
    let openid = request.scopes.iter().any(|s| s == "openid");
    if request.response_type.id_token && !openid {
        return Err(back(
            request,
            "invalid_request",
            900144,
            "An id_token was asked for without the scope 'openid'.".into(),
        ));
    }
    if request.response_type.id_token && request.nonce.is_none() {
        return Err(back(
            request,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'nonce'.".into(),
        ));
    }
    match resource_of(&request.scopes, &request.client_id) {
        Ok((resource, scp)) => {
            request.resource = resource;
            request.scp = scp;
        }
        Err((code, message)) => return Err(back(request, "invalid_scope", code, message)),
    }
    Ok(())
}

/// PKCE: `code_challenge` (43 to 128 characters) and its method (S256 or plain).
fn pkce(
    request: &mut AuthorizeRequest,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Refusal> {
    if let Some(challenge) = get("code_challenge") {
        let s256 = match get("code_challenge_method").as_deref() {
            None | Some("plain") => false,
            Some("S256") => true,
            Some(_) => {
                return Err(back(
                    request,
                    "invalid_request",
                    501491,
                    "Invalid code_challenge_method: use S256 (or plain).".into(),
                ));
            }
        };
        if !(43..=128).contains(&challenge.len()) {
            return Err(back(
                request,
                "invalid_request",
                501491,
                "Invalid size of code_challenge parameter.".into(),
            ));
        }
        request.challenge = Some((challenge, s256));
    }
    Ok(())
}

/// `url` with `params` added in its query or its fragment.
pub(super) fn redirect_url(base: &str, fragment: bool, params: &[(&str, &str)]) -> String {
    let encoded = serde_urlencoded::to_string(params).unwrap_or_default();
    if fragment {
        format!("{base}#{encoded}")
    } else if base.contains('?') {
        format!("{base}&{encoded}")
    } else {
        format!("{base}?{encoded}")
    }
}

pub(super) fn see_other(location: &str, status: StatusCode) -> Response {
    let mut resp = status.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    resp
}

/// An error back to the app, as Entra sends it (`error`, `error_description`, `state`).
pub(super) fn redirect_error(
    to: &AuthorizeRequest,
    error: &str,
    code: u32,
    message: &str,
) -> Response {
    let description = format!("AADSTS{code}: {message}");
    let mut params = vec![
        ("error", error),
        ("error_description", description.as_str()),
    ];
    if let Some(s) = &to.state {
        params.push(("state", s));
    }
    see_other(
        &redirect_url(&to.redirect_uri, to.fragment, &params),
        StatusCode::FOUND,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_one_resource() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resource_of(
                &s(&[
                    "openid",
                    "profile",
                    "https://dicom.healthcareapis.azure.com/Dicom.ReadWrite"
                ]),
                "c"
            ),
            Ok((DICOM_RESOURCE, DICOM_SCOPE.to_string()))
        );
        assert_eq!(
            resource_of(
                &s(&["https://dicom.healthcareapis.azure.com/.default"]),
                "c"
            ),
            Ok((DICOM_RESOURCE, DICOM_SCOPE.to_string()))
        );
        assert_eq!(
            resource_of(&s(&["openid"]), "c").map(|r| r.0),
            Ok(GRAPH_RESOURCE)
        );
        assert_eq!(
            resource_of(
                &s(&["https://dicom.healthcareapis.azure.com/user_impersonation"]),
                "c"
            )
            .map_err(|e| e.0),
            Err(650053)
        );
        assert_eq!(
            resource_of(
                &s(&[
                    "User.Read",
                    "https://dicom.healthcareapis.azure.com/Dicom.ReadWrite"
                ]),
                "c"
            )
            .map_err(|e| e.0),
            Err(28000)
        );
        assert_eq!(
            resource_of(&s(&["api://other/x"]), "c").map_err(|e| e.0),
            Err(500011)
        );
    }

    #[test]
    fn redirects_put_parameters_where_the_flow_wants_them() {
        assert_eq!(
            redirect_url("http://h/cb", false, &[("code", "a b"), ("state", "s")]),
            "http://h/cb?code=a+b&state=s"
        );
        assert_eq!(
            redirect_url("http://h/cb?x=1", false, &[("code", "c")]),
            "http://h/cb?x=1&code=c"
        );
        assert_eq!(
            redirect_url("http://h/cb", true, &[("access_token", "t")]),
            "http://h/cb#access_token=t"
        );
    }
}
