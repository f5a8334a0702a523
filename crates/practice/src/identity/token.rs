//! Issuing the user's tokens — the access token (the DICOM audience, `scp`, the user) and the RS256
//! id_token (`nonce`, `at_hash`) — and redeeming codes at the token endpoint as Entra does.

use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::directory::{Platform, User};
use super::error::IdentityError;
use super::keys;
use super::protocol::{issuer, public_json, shown, user_agent, with_any_origin};
use super::request::AuthorizeRequest;
use super::state::Identity;
use crate::auth::{Auth, Claims, DICOM_RESOURCE, aad_error, now_secs, secret_matches};
use crate::{SharedService, origin_of};

pub(super) fn log_user_token(
    service: &SharedService,
    request: &AuthorizeRequest,
    user: &User,
    headers: &HeaderMap,
) {
    service.audit.push_user_signin(crate::audit::UserSignIn {
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
pub(super) struct Tokens {
    pub(super) access_token: Option<String>,
    pub(super) id_token: Option<String>,
    pub(super) expires_in: u64,
    pub(super) scope: String,
}

pub(super) async fn issue(
    service: &SharedService,
    origin: &str,
    request: &AuthorizeRequest,
    user: &User,
    implicit: bool,
) -> Result<Tokens, IdentityError> {
    let want_access = !implicit || request.response_type.token;
    let (access_token, expires_in) = if want_access {
        let (t, life) = user_access_token(
            &service.auth,
            &request.client_id,
            user,
            request.resource,
            &request.scp,
        )
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
        let now = now_secs();
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

/// Issues a delegated token for a signed-in user of an app (v1-shaped, as Entra issues tokens for
/// the DICOM service's resource URI): `appid` the app, `oid` / `upn` the user, `scp` the delegated
/// permission. The DICOM routes look the user's roles up by `oid`.
fn user_access_token(
    auth: &Auth,
    client_id: &str,
    user: &User,
    audience: &str,
    scp: &str,
) -> Result<(String, u64), jsonwebtoken::errors::Error> {
    let now = now_secs();
    let claims = Claims {
        aud: audience.to_string(),
        iss: format!("https://sts.windows.net/{}/", auth.tenant_id),
        iat: now,
        nbf: now,
        exp: now + auth.token_lifetime().as_secs(),
        tid: auth.tenant_id.clone(),
        appid: Some(client_id.to_string()),
        azp: None,
        oid: user.oid.clone(),
        sub: pairwise(&user.oid, client_id),
        roles: Vec::new(),
        ver: "1.0".into(),
        appidacr: Some("0".into()),
        scp: Some(scp.to_string()),
        upn: Some(user.upn.clone()),
        unique_name: Some(user.upn.clone()),
        name: Some(user.name.clone()),
    };
    auth.sign(&claims)
}

/// The `sub` of a user for one app (Entra's is pairwise: another app sees another).
pub(super) fn pairwise(oid: &str, client_id: &str) -> String {
    keys::b64url(&keys::sha256(format!("{oid}|{client_id}").as_bytes())[..24])
}

/// `grant_type=authorization_code` at the token endpoint, as Entra redeems codes: a single-page app's
/// code only cross-origin (an `Origin` header) and with its PKCE verifier; a web app's only with the
/// client secret and never cross-origin.
pub(crate) async fn redeem(
    service: &SharedService,
    parts: &Parts,
    form: &std::collections::BTreeMap<String, String>,
) -> Response {
    let field = |k: &str| form.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
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
    // Looked at first, taken once it is redeemed — or once a wrong PKCE verifier is tried with it (as
    // Entra does: a stolen code gets one guess); other refusals (no Origin, another redirect URI)
    // leave it for the app's own request.
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
    if let Some(refused) = check_client(service, request, &field, cross_origin) {
        return refused;
    }
    if let Some(refused) = check_verifier(service, request, &field, code) {
        return refused;
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
        Err(e) => {
            return crate::error::ApiError::internal("token signing", e).into_response();
        }
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

/// Azure AD's error body, readable from any origin.
fn answer(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    with_any_origin(aad_error(status, error, code, description))
}

/// The app redeems its code as its platform must: a single-page app cross-origin with PKCE, a web app
/// with its client secret and never cross-origin. The refusal, if any.
fn check_client<'f>(
    service: &SharedService,
    request: &AuthorizeRequest,
    field: &dyn Fn(&str) -> Option<&'f str>,
    cross_origin: bool,
) -> Option<Response> {
    let client_id = request.client_id.as_str();
    match request.platform {
        Platform::Spa => {
            if !cross_origin {
                return Some(answer(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    9002327,
                    "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests.",
                ));
            }
            if request.challenge.is_none() {
                return Some(answer(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    9002325,
                    "Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
                ));
            }
        }
        Platform::Web => {
            if cross_origin {
                return Some(answer(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    9002326,
                    "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type. Request origin: '(the browser's)'.",
                ));
            }
            let secret_ok = field("client_secret").is_some_and(|s| {
                service
                    .auth
                    .client(client_id)
                    .is_some_and(|c| secret_matches(s, &c.secret))
            });
            if !secret_ok {
                return Some(answer(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                ));
            }
        }
    }
    None
}

/// The PKCE verifier matches the challenge; a wrong one takes the code (a stolen code gets one guess).
/// The refusal, if any.
fn check_verifier<'f>(
    service: &SharedService,
    request: &AuthorizeRequest,
    field: &dyn Fn(&str) -> Option<&'f str>,
    code: &str,
) -> Option<Response> {
    if let Some((challenge, s256)) = &request.challenge {
        let verifier = field("code_verifier").unwrap_or("");
        let computed = if *s256 {
            keys::b64url(&keys::sha256(verifier.as_bytes()))
        } else {
            verifier.to_string()
        };
        if verifier.is_empty() || !secret_matches(&computed, challenge) {
            if let Ok(mut c) = service.identity.codes.lock() {
                c.take(code);
            }
            return Some(answer(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
    }
    None
}
