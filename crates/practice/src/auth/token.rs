//! The token endpoint (docs/contract.md §2.1): Azure AD's client-credentials flow, v1 (`resource`) and
//! v2 (`scope`), with Azure AD's error answers; a user's `authorization_code` goes to the identity
//! endpoint's redemption.

use std::collections::BTreeMap;

use axum::Form;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{
    Auth, Client, DICOM_RESOURCE, LOG_ANALYTICS_RESOURCE, aad_error, now_secs, secret_matches,
};
use crate::SharedService;
use crate::error::ApiError;

/// Whether a token may be asked for this resource (v1 `resource`, or v2 `scope` without `/.default`).
fn known_resource(r: &str) -> Option<&'static str> {
    let r = r.trim().trim_end_matches('/');
    [DICOM_RESOURCE, LOG_ANALYTICS_RESOURCE]
        .into_iter()
        .find(|k| *k == r)
}

/// A refusal of the token endpoint: the parts of Azure AD's error body ([`aad_error`]).
struct Refusal {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl Refusal {
    fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    fn answer(self) -> Response {
        aad_error(self.status, self.error, self.code, &self.description)
    }
}

/// Azure AD's refusal of a request without a parameter it needs (AADSTS900144).
fn missing(parameter: &str) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

/// `POST /{tenant}/oauth2/token` (v1) and `/{tenant}/oauth2/v2.0/token` (v2).
pub(crate) async fn token_endpoint(
    State(service): State<SharedService>,
    Path(tenant): Path<String>,
    parts: Parts,
    form: Result<Form<BTreeMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let v2 = parts.uri.path().contains("/v2.0/");
    let auth = &service.auth;
    let Ok(Form(form)) = form else {
        return missing("grant_type").answer();
    };
    if !tenant.eq_ignore_ascii_case(&auth.tenant_id) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let field = |k: &str| form.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    match field("grant_type") {
        Some("client_credentials") => {}
        // A user's sign-in: the identity endpoint redeems its code.
        Some("authorization_code") => {
            return crate::identity::redeem(&service, &parts, &form).await;
        }
        Some(other) => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!(
                    "The app requested an unsupported grant type '{other}'. This lab uses client_credentials."
                ),
            );
        }
        None => return missing("grant_type").answer(),
    }
    let client = match authenticated_client(auth, &field) {
        Ok(c) => c,
        Err(refused) => return refused.answer(),
    };
    let audience = match audience(auth, v2, &field) {
        Ok(a) => a,
        Err(refused) => return refused.answer(),
    };
    let (token, lifetime) = match auth.issue(&client.client_id, audience, v2) {
        Ok(t) => t,
        Err(e) => return ApiError::internal("token signing", e).into_response(),
    };
    tracing::info!(client = client.client_id, v2, "token issued");
    token_answer(&token, lifetime, audience, v2)
}

/// The client the form names, when its secret is the client's (Azure AD's refusals otherwise).
fn authenticated_client<'f>(
    auth: &Auth,
    field: &dyn Fn(&str) -> Option<&'f str>,
) -> Result<Client, Refusal> {
    let Some(client_id) = field("client_id") else {
        return Err(missing("client_id"));
    };
    let Some(client) = auth.client(client_id) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                auth.tenant_id
            ),
        ));
    };
    match field("client_secret") {
        Some(s) if secret_matches(s, &client.secret) => Ok(client),
        Some(_) => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
        )),
        None => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
    }
}

/// The audience asked for: v2's `scope` (`…/.default`) or v1's `resource`.
fn audience<'f>(
    auth: &Auth,
    v2: bool,
    field: &dyn Fn(&str) -> Option<&'f str>,
) -> Result<&'static str, Refusal> {
    if v2 {
        match field("scope") {
            Some(scope)
                if scope.ends_with("/.default")
                    && known_resource(scope.trim_end_matches("/.default")).is_some() =>
            {
                Ok(known_resource(scope.trim_end_matches("/.default")).unwrap_or(DICOM_RESOURCE))
            }
            Some(scope) => Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            )),
            None => Err(missing("scope")),
        }
    } else {
        match field("resource") {
            Some(r) if known_resource(r).is_some() => {
                Ok(known_resource(r).unwrap_or(DICOM_RESOURCE))
            }
            Some(r) => Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500011,
                format!(
                    "The resource principal named {r} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                    auth.tenant_id
                ),
            )),
            None => Err(missing("resource")),
        }
    }
}

/// The token endpoint's answer: v2's numbers, or v1's strings with `expires_on` and `resource`.
fn token_answer(token: &str, lifetime: u64, audience: &str, v2: bool) -> Response {
    let now = now_secs();
    let body = if v2 {
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token})
    } else {
        json!({
            "token_type": "Bearer",
            "expires_in": lifetime.to_string(),
            "ext_expires_in": lifetime.to_string(),
            "expires_on": (now + lifetime).to_string(),
            "not_before": now.to_string(),
            "resource": audience,
            "access_token": token,
        })
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    resp
}
