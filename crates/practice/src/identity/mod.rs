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
mod error;
pub mod keys;
mod pages;
mod protocol;
mod redirect_uri;
mod request;
mod state;
mod token;

use std::net::SocketAddr;

use self::directory::User;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use self::protocol::{MAX_QUERY, issuer, public_json, shown, user_agent, with_any_origin};
use self::request::{
    AuthorizeRequest, Refusal, check_request, redirect_error, redirect_url, see_other,
};
use self::state::{
    CODE_LIFETIME, FLOW_LIFETIME, Grant, SESSION_COOKIE, SESSION_LIFETIME, cookie, random_id,
};
use self::token::{issue, log_user_token};
use crate::auth::aad_error;
use crate::{SharedService, origin_of};

pub use self::error::IdentityError;
pub use self::protocol::{DICOM_SCOPE, GRAPH_RESOURCE};
pub use self::state::Identity;
pub(crate) use self::token::redeem;

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

/// Whether the browser is on this machine: its peer is loopback, and no front for other machines
/// forwarded the request ([`super::NotLoopback`]).
fn is_loopback_peer(parts: &Parts) -> bool {
    parts.extensions.get::<super::NotLoopback>().is_none()
        && parts
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
