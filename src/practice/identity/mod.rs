//! A user sign-in on the practice tenant, shaped like Microsoft identity platform (v2) — enough for a
//! browser app such as the OHIF viewer to sign a user in and call the DICOM service on their behalf:
//!
//! - discovery at `/{tenant}/v2.0/.well-known/openid-configuration` and the keys (a JWKS) at
//!   `/{tenant}/discovery/v2.0/keys`, both readable cross-origin;
//! - the authorization endpoint `/{tenant}/oauth2/v2.0/authorize`: the authorization code flow with PKCE
//!   (what single-page apps use today) and the implicit grant (`token`, `id_token token`: what
//!   Microsoft's dicom-ohif guide configures) when the app registration enables it;
//! - a sign-in page: the practice tenant's user (`learner@practice.dicomlab.test`), one click, offered
//!   only to a browser on this machine; a session cookie makes later sign-ins silent, as Entra's does;
//! - code redemption at the token endpoint (`grant_type=authorization_code`; see `redeem`);
//! - `/{tenant}/oauth2/v2.0/logout`.
//!
//! Redirect URIs are registered per app (see [`directory`]); a wrong one is refused on the sign-in page
//! with AADSTS50011's text, never redirected to. The user's access token (HS256, like the app's) carries
//! the DICOM audience, `scp`, `oid`, `upn`; the DICOM routes look the user's role assignments up by
//! that `oid`, as Azure RBAC does. id_tokens are signed RS256 with the tenant's key ([`keys`]).
//! Every token issued to the user, and every sign-in refused, is a row of the user sign-in log
//! (`SigninLogs`). Codes, session ids and tokens are never logged.

pub mod admin;
pub mod directory;
pub mod keys;
mod pages;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use self::directory::{Directory, Platform, RedirectUriError, User};
use self::keys::SigningKey;
use super::auth::{DICOM_RESOURCE, aad_error};
use super::db::DbError;
use super::{SharedService, origin_of};

/// Microsoft Graph's application id: the audience of a token asked for with OpenID scopes only.
pub const GRAPH_RESOURCE: &str = "00000003-0000-0000-c000-000000000000";
/// The DICOM service's delegated permission (API permissions → Azure API for DICOM).
pub const DICOM_SCOPE: &str = "Dicom.ReadWrite";
/// Longest authorization request (its query string).
const MAX_QUERY: usize = 8 * 1024;
/// Pending sign-in pages, codes and sessions kept at most (the oldest go first).
const MAX_PENDING: usize = 512;
/// How long a sign-in page may wait for its click.
const FLOW_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long a code may wait to be redeemed (Entra: minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How long a sign-in session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The session cookie's name.
const SESSION_COOKIE: &str = "dicomlab-signin";

/// Why the identity endpoint could not do something.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    RedirectUri(#[from] RedirectUriError),
    #[error("the practice tenant's signing key could not be made or used")]
    Key,
}

impl From<rusqlite::Error> for IdentityError {
    fn from(e: rusqlite::Error) -> Self {
        IdentityError::Db(DbError::Sqlite(e))
    }
}

/// What a `response_type` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ResponseType {
    code: bool,
    token: bool,
    id_token: bool,
}

/// A checked authorization request, waiting for its sign-in.
#[derive(Debug, Clone)]
struct AuthorizeRequest {
    client_id: String,
    redirect_uri: String,
    platform: Platform,
    response_type: ResponseType,
    /// Answer in the fragment (implicit) rather than the query (code).
    fragment: bool,
    /// What the user consents to: OpenID scopes and the resource's.
    scopes: Vec<String>,
    /// The access token's audience and `scp`.
    resource: &'static str,
    scp: String,
    state: Option<String>,
    nonce: Option<String>,
    /// PKCE: the challenge and whether it is S256 (else plain).
    challenge: Option<(String, bool)>,
    prompt: Option<String>,
}

/// A code waiting to be redeemed.
#[derive(Debug, Clone)]
struct Grant {
    request: AuthorizeRequest,
    user: User,
}

/// Entries that expire, at most [`MAX_PENDING`] of them.
struct Expiring<T> {
    map: HashMap<String, (Instant, T)>,
}

impl<T: Clone> Expiring<T> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
        }
    }
    fn insert(&mut self, key: String, lifetime: Duration, value: T) {
        let now = Instant::now();
        self.map.retain(|_, (until, _)| *until > now);
        if self.map.len() >= MAX_PENDING
            && let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (until, _))| *until)
                .map(|(k, _)| k.clone())
        {
            self.map.remove(&oldest);
        }
        self.map.insert(key, (now + lifetime, value));
    }
    fn get(&self, key: &str) -> Option<T> {
        self.map
            .get(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, v)| v.clone())
    }
    fn take(&mut self, key: &str) -> Option<T> {
        self.map
            .remove(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, v)| v)
    }
}

/// The sign-in state of the practice tenant.
pub struct Identity {
    pub directory: Directory,
    key: tokio::sync::OnceCell<Arc<SigningKey>>,
    /// Sign-in pages shown and not yet clicked, by their flow id.
    flows: Mutex<Expiring<AuthorizeRequest>>,
    /// Codes issued and not yet redeemed.
    codes: Mutex<Expiring<Grant>>,
    /// Signed-in browsers, by session id: the user's object id.
    sessions: Mutex<Expiring<String>>,
}

/// 32 random bytes, base64url: codes, flow and session ids.
fn random_id() -> String {
    let mut b = [0u8; 32];
    // aws-lc's generator fails only when the system has no entropy source: a v4 UUID pair then.
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
    }
    keys::b64url(&b)
}

impl Identity {
    pub fn load(db: &super::db::Db) -> Result<Self, IdentityError> {
        Ok(Self {
            directory: Directory::load(db)?,
            key: tokio::sync::OnceCell::new(),
            flows: Mutex::new(Expiring::new()),
            codes: Mutex::new(Expiring::new()),
            sessions: Mutex::new(Expiring::new()),
        })
    }

    /// The signing key, made (on the blocking pool) the first time it is needed.
    pub async fn key(service: &SharedService) -> Result<Arc<SigningKey>, IdentityError> {
        let svc = service.clone();
        service
            .identity
            .key
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || SigningKey::load(&svc.db).map(Arc::new))
                    .await
                    .map_err(|_| IdentityError::Key)?
            })
            .await
            .cloned()
    }

    fn session_user(&self, headers: &HeaderMap) -> Option<User> {
        let sid = cookie(headers, SESSION_COOKIE)?;
        let oid = self.sessions.lock().ok()?.get(&sid)?;
        self.directory.user(&oid)
    }
}

/// A cookie's value from the request (the first of that name).
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Text from a request, made safe to show and cut to `max` characters.
fn shown(s: &str, max: usize) -> String {
    crate::text::visible(s).chars().take(max).collect()
}

/// The issuer of the tenant's id_tokens, as its discovery document names it.
fn issuer(origin: &str, tenant: &str) -> String {
    format!("{origin}/{tenant}/v2.0")
}

fn with_any_origin(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// A JSON answer readable from any origin, never cached.
fn public_json(status: StatusCode, body: Value) -> Response {
    let mut resp = with_any_origin((status, Json(body)).into_response());
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    resp
}

fn tenant_error(tenant: &str) -> Response {
    with_any_origin(aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_tenant",
        90002,
        &format!(
            "Tenant '{}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
            shown(tenant, 100)
        ),
    ))
}

/// `OPTIONS` on the discovery document, the keys and the token endpoint: any origin may call them.
pub async fn preflight(headers: HeaderMap) -> Response {
    let mut resp = with_any_origin(StatusCode::NO_CONTENT.into_response());
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    if let Some(asked) = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| v.len() <= 1024)
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("3600"),
    );
    resp
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub async fn discovery(
    State(service): State<SharedService>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !tenant.eq_ignore_ascii_case(&service.auth.tenant_id) {
        return tenant_error(&tenant);
    }
    let origin = origin_of(&headers, &service);
    let t = &service.auth.tenant_id;
    public_json(
        StatusCode::OK,
        json!({
            "issuer": issuer(&origin, t),
            "authorization_endpoint": format!("{origin}/{t}/oauth2/v2.0/authorize"),
            "token_endpoint": format!("{origin}/{t}/oauth2/v2.0/token"),
            "jwks_uri": format!("{origin}/{t}/discovery/v2.0/keys"),
            "end_session_endpoint": format!("{origin}/{t}/oauth2/v2.0/logout"),
            "response_types_supported": ["code", "id_token", "id_token token", "token"],
            "response_modes_supported": ["query", "fragment"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "oid", "tid", "name", "preferred_username", "ver"],
            "request_uri_parameter_supported": false,
            "tenant_region_scope": null,
        }),
    )
}

/// `GET /{tenant}/discovery/v2.0/keys`.
pub async fn jwks(
    State(service): State<SharedService>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !tenant.eq_ignore_ascii_case(&service.auth.tenant_id) {
        return tenant_error(&tenant);
    }
    match Identity::key(&service).await {
        Ok(key) => public_json(
            StatusCode::OK,
            key.jwks(&issuer(
                &origin_of(&headers, &service),
                &service.auth.tenant_id,
            )),
        ),
        Err(e) => super::error::ApiError::internal("signing key", e).into_response(),
    }
}

/// Why an authorization request was refused: on the sign-in page (the app cannot be trusted with
/// the answer), or back to the app's redirect URI.
enum Refusal {
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

fn page_refusal(code: u32, message: impl Into<String>) -> Refusal {
    Refusal::Page {
        code,
        message: message.into(),
    }
}

/// The resource and delegated permission of the scopes (one resource at most, as Entra wants).
fn resource_of(
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
                    crate::text::visible(name)
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

fn check_request(
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
    let back = |request: &AuthorizeRequest, error: &'static str, code: u32, message: String| {
        Refusal::Redirect {
            to: Box::new(request.clone()),
            error,
            code,
            message,
        }
    };
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
                &request,
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
            &request,
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
            &request,
            "unsupported_response_type",
            700051,
            "response_type 'token' is not enabled for the application.".into(),
        ));
    }
    if request.response_type.id_token && !app.implicit_id_tokens {
        return Err(back(
            &request,
            "unsupported_response_type",
            700054,
            "response_type 'id_token' is not enabled for the application.".into(),
        ));
    }
    request.scopes = get("scope")
        .unwrap_or_default()
        .split_whitespace()
        .take(32)
        .map(str::to_string)
        .collect();
    if request.scopes.is_empty() {
        return Err(back(
            &request,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.".into(),
        ));
    }
    let openid = request.scopes.iter().any(|s| s == "openid");
    if request.response_type.id_token && !openid {
        return Err(back(
            &request,
            "invalid_request",
            900144,
            "An id_token was asked for without the scope 'openid'.".into(),
        ));
    }
    if request.response_type.id_token && request.nonce.is_none() {
        return Err(back(
            &request,
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
        Err((code, message)) => return Err(back(&request, "invalid_scope", code, message)),
    }
    if let Some(challenge) = get("code_challenge") {
        let s256 = match get("code_challenge_method").as_deref() {
            None | Some("plain") => false,
            Some("S256") => true,
            Some(_) => {
                return Err(back(
                    &request,
                    "invalid_request",
                    501491,
                    "Invalid code_challenge_method: use S256 (or plain).".into(),
                ));
            }
        };
        if !(43..=128).contains(&challenge.len()) {
            return Err(back(
                &request,
                "invalid_request",
                501491,
                "Invalid size of code_challenge parameter.".into(),
            ));
        }
        request.challenge = Some((challenge, s256));
    }
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

/// `url` with `params` added in its query or its fragment.
fn redirect_url(base: &str, fragment: bool, params: &[(&str, &str)]) -> String {
    let encoded = serde_urlencoded::to_string(params).unwrap_or_default();
    if fragment {
        format!("{base}#{encoded}")
    } else if base.contains('?') {
        format!("{base}&{encoded}")
    } else {
        format!("{base}?{encoded}")
    }
}

fn see_other(location: &str, status: StatusCode) -> Response {
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
fn redirect_error(to: &AuthorizeRequest, error: &str, code: u32, message: &str) -> Response {
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

fn is_loopback_peer(parts: &Parts) -> bool {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| c.0.ip().to_canonical().is_loopback())
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: checks the request; a signed-in browser goes straight back
/// to the app, others get the sign-in page.
pub async fn authorize(
    State(service): State<SharedService>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    parts: Parts,
) -> Response {
    let request = match check_request(&service, &tenant, query.as_deref()) {
        Ok(r) => r,
        Err(refusal) => return refuse(&service, &parts, refusal),
    };
    let signed_in = service.identity.session_user(&parts.headers);
    let prompt = request.prompt.as_deref();
    if let Some(user) = signed_in
        && !matches!(prompt, Some("login" | "select_account"))
    {
        return complete(&service, &parts.headers, request, user, None).await;
    }
    if prompt == Some("none") {
        return redirect_error(
            &request,
            "login_required",
            50058,
            "A silent sign-in request was sent but no user is signed in.",
        );
    }
    let flow = random_id();
    if let Ok(mut flows) = service.identity.flows.lock() {
        flows.insert(flow.clone(), FLOW_LIFETIME, request.clone());
    }
    let client_name = service
        .auth
        .client(&request.client_id)
        .map(|c| c.name)
        .unwrap_or_default();
    let html = pages::sign_in(&pages::SignIn {
        tenant: &service.auth.tenant_id,
        flow: &flow,
        client_id: &request.client_id,
        client_name: &client_name,
        scopes: &request.scopes,
        users: &service.identity.directory.users(),
        loopback: is_loopback_peer(&parts),
    });
    pages::html(StatusCode::OK, html)
}

fn refuse(service: &SharedService, parts: &Parts, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page { code, message } => {
            let client = parts
                .uri
                .query()
                .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
                .and_then(|p| p.into_iter().find(|(k, _)| k == "client_id"))
                .map(|(_, v)| v)
                .unwrap_or_default();
            service.audit.push_user_signin(super::audit::UserSignIn {
                user: String::new(),
                user_id: String::new(),
                app_id: client,
                result_type: code.to_string(),
                result_description: format!("AADSTS{code}: {message}"),
                resource: String::new(),
                user_agent: user_agent(&parts.headers),
            });
            tracing::info!(code, "sign-in refused on the sign-in page");
            pages::html(StatusCode::BAD_REQUEST, pages::error(code, &message))
        }
        Refusal::Redirect {
            to,
            error,
            code,
            message,
        } => {
            service.audit.push_user_signin(super::audit::UserSignIn {
                user: String::new(),
                user_id: String::new(),
                app_id: to.client_id.clone(),
                result_type: code.to_string(),
                result_description: format!("AADSTS{code}: {message}"),
                resource: String::new(),
                user_agent: user_agent(&parts.headers),
            });
            redirect_error(&to, error, code, &message)
        }
    }
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect())
        .unwrap_or_default()
}

/// `POST /{tenant}/login` (`flow`, `user`): the sign-in page's button.
pub async fn sign_in(
    State(service): State<SharedService>,
    Path(tenant): Path<String>,
    parts: Parts,
    body: axum::body::Body,
) -> Response {
    if !tenant.eq_ignore_ascii_case(&service.auth.tenant_id) {
        return pages::html(
            StatusCode::BAD_REQUEST,
            pages::error(90002, "This sign-in page belongs to another tenant."),
        );
    }
    // The form holds a flow id and a user id: a few hundred bytes.
    let Ok(body) = axum::body::to_bytes(body, MAX_QUERY).await else {
        return pages::html(
            StatusCode::PAYLOAD_TOO_LARGE,
            pages::error(90015, "The sign-in form is too large."),
        );
    };
    if !is_loopback_peer(&parts) {
        return pages::html(
            StatusCode::FORBIDDEN,
            pages::error(
                50126,
                "The practice tenant signs its learner in with one click only in a browser on this machine. Over SSH, forward the ports (ssh -L) and open the viewer on 127.0.0.1.",
            ),
        );
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let request = field("flow").and_then(|f| service.identity.flows.lock().ok()?.take(f));
    let Some(request) = request else {
        return pages::html(
            StatusCode::BAD_REQUEST,
            pages::error(
                50058,
                "This sign-in page has expired or was already used. Go back to the app and sign in again.",
            ),
        );
    };
    let user = field("user")
        .and_then(|u| service.identity.directory.user(u))
        .or_else(|| service.identity.directory.learner());
    let Some(user) = user else {
        return pages::html(
            StatusCode::BAD_REQUEST,
            pages::error(50034, "The user account does not exist in this directory."),
        );
    };
    let sid = random_id();
    if let Ok(mut s) = service.identity.sessions.lock() {
        s.insert(sid.clone(), SESSION_LIFETIME, user.oid.clone());
    }
    tracing::info!(user = %user.upn, client = %request.client_id, "user signed in on the practice tenant");
    let cookie = format!(
        "{SESSION_COOKIE}={sid}; Path=/{}/; HttpOnly; SameSite=Lax; Max-Age={}",
        service.auth.tenant_id,
        SESSION_LIFETIME.as_secs()
    );
    complete(&service, &parts.headers, request, user, Some(cookie)).await
}

/// Sends the signed-in user back to the app: a code (code flow) or the tokens (implicit).
async fn complete(
    service: &SharedService,
    headers: &HeaderMap,
    request: AuthorizeRequest,
    user: User,
    cookie: Option<String>,
) -> Response {
    let mut params: Vec<(&str, String)> = Vec::new();
    if request.response_type.code {
        let code = random_id();
        if let Ok(mut codes) = service.identity.codes.lock() {
            codes.insert(
                code.clone(),
                CODE_LIFETIME,
                Grant {
                    request: request.clone(),
                    user: user.clone(),
                },
            );
        }
        params.push(("code", code));
    } else {
        let origin = origin_of(headers, service);
        let tokens = match issue(service, &origin, &request, &user, true).await {
            Ok(t) => t,
            Err(e) => return super::error::ApiError::internal("token signing", e).into_response(),
        };
        log_user_token(service, &request, &user, headers);
        if let Some(at) = tokens.access_token {
            params.push(("access_token", at));
            params.push(("token_type", "Bearer".into()));
            params.push(("expires_in", tokens.expires_in.to_string()));
            params.push(("scope", tokens.scope));
        }
        if let Some(id) = tokens.id_token {
            params.push(("id_token", id));
        }
    }
    if let Some(s) = &request.state {
        params.push(("state", s.clone()));
    }
    params.push(("session_state", uuid::Uuid::new_v4().to_string()));
    let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut resp = see_other(
        &redirect_url(&request.redirect_uri, request.fragment, &refs),
        if cookie.is_some() {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::FOUND
        },
    );
    if let Some(c) = cookie
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

fn log_user_token(
    service: &SharedService,
    request: &AuthorizeRequest,
    user: &User,
    headers: &HeaderMap,
) {
    service.audit.push_user_signin(super::audit::UserSignIn {
        user: user.upn.clone(),
        user_id: user.oid.clone(),
        app_id: request.client_id.clone(),
        result_type: "0".into(),
        result_description: String::new(),
        resource: request.resource.to_string(),
        user_agent: user_agent(headers),
    });
}

/// What a sign-in issues.
struct Tokens {
    access_token: Option<String>,
    id_token: Option<String>,
    expires_in: u64,
    scope: String,
}

async fn issue(
    service: &SharedService,
    origin: &str,
    request: &AuthorizeRequest,
    user: &User,
    implicit: bool,
) -> Result<Tokens, IdentityError> {
    let want_access = !implicit || request.response_type.token;
    let (access_token, expires_in) = if want_access {
        let (t, life) = service
            .auth
            .issue_user(&request.client_id, user, request.resource, &request.scp)
            .map_err(|_| IdentityError::Key)?;
        (Some(t), life)
    } else {
        (None, 0)
    };
    let scope = if request.resource == DICOM_RESOURCE {
        request
            .scp
            .split_whitespace()
            .map(|p| format!("{DICOM_RESOURCE}/{p}"))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        request.scp.clone()
    };
    let openid = request.scopes.iter().any(|s| s == "openid");
    let id_token = if openid && (!implicit || request.response_type.id_token) {
        let key = Identity::key(service).await?;
        let now = super::auth::now_secs();
        let mut claims = json!({
            "aud": request.client_id,
            "iss": issuer(origin, &service.auth.tenant_id),
            "iat": now, "nbf": now, "exp": now + 3600,
            "sub": pairwise(&user.oid, &request.client_id),
            "oid": user.oid,
            "tid": service.auth.tenant_id,
            "preferred_username": user.upn,
            "name": user.name,
            "ver": "2.0",
        });
        if let Some(n) = &request.nonce {
            claims["nonce"] = n.clone().into();
        }
        if let Some(at) = &access_token {
            claims["at_hash"] = keys::at_hash(at).into();
        }
        Some(key.sign(&claims)?)
    } else {
        None
    };
    Ok(Tokens {
        access_token,
        id_token,
        expires_in,
        scope,
    })
}

/// The `sub` of a user for one app (Entra's is pairwise: another app sees another).
pub fn pairwise(oid: &str, client_id: &str) -> String {
    keys::b64url(&keys::sha256(format!("{oid}|{client_id}").as_bytes())[..24])
}

/// `grant_type=authorization_code` at the token endpoint, as Entra redeems codes: a single-page app's
/// code only cross-origin (an `Origin` header) and with its PKCE verifier; a web app's only with the
/// client secret and never cross-origin.
pub async fn redeem(
    service: &SharedService,
    parts: &Parts,
    form: &std::collections::BTreeMap<String, String>,
) -> Response {
    let field = |k: &str| form.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let answer = |status: StatusCode, error: &str, code: u32, description: &str| {
        with_any_origin(aad_error(status, error, code, description))
    };
    let missing = |p: &str| {
        answer(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{p}'."),
        )
    };
    let Some(client_id) = field("client_id") else {
        return missing("client_id");
    };
    let Some(code) = field("code") else {
        return missing("code");
    };
    // Looked at first, taken only once it is redeemed: a refused redemption (no Origin, a wrong
    // verifier) does not spend it.
    let grant = service.identity.codes.lock().ok().and_then(|c| c.get(code));
    let Some(grant) = grant else {
        return answer(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        );
    };
    let request = &grant.request;
    if request.client_id != client_id {
        return answer(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70000,
            "The provided value for the 'code' parameter is not valid: it was issued to another application.",
        );
    }
    let redirect = field("redirect_uri").unwrap_or("");
    if redirect != request.redirect_uri {
        return answer(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            500112,
            &format!(
                "The reply address '{}' does not match the reply address '{}' provided when requesting Authorization code.",
                shown(redirect, 300),
                request.redirect_uri
            ),
        );
    }
    let cross_origin = parts.headers.contains_key(header::ORIGIN);
    match request.platform {
        Platform::Spa => {
            if !cross_origin {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    9002327,
                    "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests.",
                );
            }
            if request.challenge.is_none() {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    9002325,
                    "Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
                );
            }
        }
        Platform::Web => {
            if cross_origin {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    9002326,
                    "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type. Request origin: '(the browser's)'.",
                );
            }
            let secret_ok = field("client_secret").is_some_and(|s| {
                service
                    .auth
                    .client(client_id)
                    .is_some_and(|c| super::auth::secret_matches(s, &c.secret))
            });
            if !secret_ok {
                return answer(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                );
            }
        }
    }
    if let Some((challenge, s256)) = &request.challenge {
        let verifier = field("code_verifier").unwrap_or("");
        let computed = if *s256 {
            keys::b64url(&keys::sha256(verifier.as_bytes()))
        } else {
            verifier.to_string()
        };
        if verifier.is_empty() || !super::auth::secret_matches(&computed, challenge) {
            return answer(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            );
        }
    }
    let taken = service
        .identity
        .codes
        .lock()
        .ok()
        .and_then(|mut c| c.take(code));
    if taken.is_none() {
        return answer(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        );
    }
    let origin = origin_of(&parts.headers, service);
    let tokens = match issue(service, &origin, request, &grant.user, false).await {
        Ok(t) => t,
        Err(e) => return super::error::ApiError::internal("token signing", e).into_response(),
    };
    log_user_token(service, request, &grant.user, &parts.headers);
    tracing::info!(user = %grant.user.upn, client = client_id, "code redeemed");
    let mut body = json!({
        "token_type": "Bearer",
        "scope": tokens.scope,
        "expires_in": tokens.expires_in,
        "ext_expires_in": tokens.expires_in,
        "access_token": tokens.access_token,
    });
    if let Some(id) = tokens.id_token {
        body["id_token"] = id.into();
    }
    public_json(StatusCode::OK, body)
}

/// `GET /{tenant}/oauth2/v2.0/logout`: ends the browser's session; back to the app when its
/// `post_logout_redirect_uri` is one of an app's registered URIs.
pub async fn logout(
    State(service): State<SharedService>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(sid) = cookie(&headers, SESSION_COOKIE)
        && let Ok(mut s) = service.identity.sessions.lock()
    {
        s.take(&sid);
    }
    let params: Vec<(String, String)> = query
        .as_deref()
        .filter(|q| q.len() <= MAX_QUERY)
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let clear = format!(
        "{SESSION_COOKIE}=; Path=/{}/; HttpOnly; SameSite=Lax; Max-Age=0",
        service.auth.tenant_id
    );
    let registered = get("post_logout_redirect_uri").filter(|uri| {
        tenant.eq_ignore_ascii_case(&service.auth.tenant_id)
            && service.auth.clients().iter().any(|c| {
                service
                    .identity
                    .directory
                    .registered(&c.client_id, uri)
                    .is_some()
            })
    });
    let mut resp = match registered {
        Some(uri) => {
            let state = get("state");
            let params: Vec<(&str, &str)> = state.iter().map(|s| ("state", s.as_str())).collect();
            let to = if params.is_empty() {
                uri
            } else {
                redirect_url(&uri, false, &params)
            };
            see_other(&to, StatusCode::FOUND)
        }
        None => pages::html(StatusCode::OK, pages::signed_out()),
    };
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
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
    fn expiring_entries_are_bounded_and_used_once() {
        let mut e: Expiring<u32> = Expiring::new();
        for i in 0..(MAX_PENDING as u32 + 10) {
            e.insert(i.to_string(), Duration::from_secs(60 + u64::from(i)), i);
        }
        assert_eq!(e.map.len(), MAX_PENDING);
        assert_eq!(e.get("0"), None, "the oldest went first");
        let last = (MAX_PENDING as u32 + 9).to_string();
        assert_eq!(e.take(&last), Some(MAX_PENDING as u32 + 9));
        assert_eq!(e.take(&last), None);
        e.insert("gone".into(), Duration::ZERO, 1);
        assert_eq!(e.get("gone"), None);
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
