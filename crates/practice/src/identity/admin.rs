//! The app registrations' "Authentication" blade, on the loopback admin routes (`admin_guard`):
//!
//! - `GET /admin/apps`: the tenant, each app with its redirect URIs and implicit-grant boxes, the users;
//! - `PUT /admin/apps/{client}/redirect-uris` `{"uri": "…", "platform": "spa"}` adds one (or moves it to
//!   another platform), `DELETE` with `{"uri": "…"}` removes it;
//! - `PUT /admin/apps/{client}/implicit` `{"accessTokens": true, "idTokens": true}`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::directory::Platform;
use super::error::IdentityError;
use crate::error::{ApiError, ApiResult};
use crate::{SharedService, admin_guard, origin_of};

/// Largest admin request body.
const MAX_BODY: usize = 16 * 1024;

async fn body_json<T: for<'de> Deserialize<'de>>(body: Body, shape: &str) -> ApiResult<T> {
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The body is at most {MAX_BODY} bytes."),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("The body must be {shape} ({e}).")))
}

fn known_client(service: &SharedService, client: &str) -> ApiResult<String> {
    service
        .auth
        .client(client)
        .map(|c| c.client_id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "No app registration with client id '{}'.",
                dicomlab_dicom::text::visible(client)
            ))
        })
}

fn failed(e: IdentityError) -> ApiError {
    match e {
        IdentityError::RedirectUri(e) => ApiError::bad_request(e.to_string()),
        other => ApiError::internal("app registration", other),
    }
}

/// `GET /admin/apps`.
pub async fn list(State(service): State<SharedService>, parts: Parts) -> ApiResult<Response> {
    admin_guard::require_admin(&parts)?;
    let origin = origin_of(&parts.headers, &service);
    let tenant = &service.auth.tenant_id;
    let apps: Vec<_> = service
        .auth
        .clients()
        .into_iter()
        .map(|c| {
            let app = service.identity.directory.app(&c.client_id);
            json!({
                "clientId": c.client_id, "name": c.name,
                "labClient": c.client_id == service.auth.lab_client_id,
                "redirectUris": app.redirect_uris,
                "implicitGrant": {"accessTokens": app.implicit_access_tokens, "idTokens": app.implicit_id_tokens},
            })
        })
        .collect();
    let users: Vec<_> = service
        .identity
        .directory
        .users()
        .into_iter()
        .map(|u| {
            json!({"oid": u.oid, "upn": u.upn, "name": u.name, "roles": service.auth.role_names(&u.oid)})
        })
        .collect();
    Ok(Json(json!({
        "tenantId": tenant,
        "authority": format!("{origin}/{tenant}/v2.0"),
        "apps": apps,
        "users": users,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UriBody {
    uri: String,
    #[serde(default)]
    platform: Option<String>,
}

/// `PUT` / `DELETE /admin/apps/{client}/redirect-uris`.
pub async fn redirect_uris(
    State(service): State<SharedService>,
    Path(client): Path<String>,
    parts: Parts,
    body: Body,
) -> ApiResult<Response> {
    admin_guard::require_admin(&parts)?;
    let client = known_client(&service, &client)?;
    let b: UriBody = body_json(
        body,
        r#"{"uri": "http://127.0.0.1:3000/callback", "platform": "spa"}"#,
    )
    .await?;
    let platform = match b.platform.as_deref() {
        None => Platform::Spa,
        Some(p) => Platform::parse(p).ok_or_else(|| {
            ApiError::bad_request("The platform is 'spa' (single-page application) or 'web'.")
        })?,
    };
    let svc = service.clone();
    let delete = parts.method == Method::DELETE;
    let c = client.clone();
    let changed = tokio::task::spawn_blocking(move || {
        if delete {
            svc.identity
                .directory
                .remove_redirect_uri(&svc.db, &c, &b.uri)
                .map(|found| (found, svc.identity.directory.app(&c)))
        } else {
            svc.identity
                .directory
                .add_redirect_uri(&svc.db, &c, &b.uri, platform)
                .map(|app| (true, app))
        }
    })
    .await
    .map_err(|e| ApiError::internal("app registration", e))?
    .map_err(failed)?;
    let (found, app) = changed;
    if delete && !found {
        return Err(ApiError::not_found("That redirect URI is not registered."));
    }
    tracing::info!(client, delete, "redirect URIs changed");
    Ok(Json(json!({"clientId": client, "redirectUris": app.redirect_uris})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImplicitBody {
    #[serde(default)]
    access_tokens: bool,
    #[serde(default)]
    id_tokens: bool,
}

/// `PUT /admin/apps/{client}/implicit`.
pub async fn implicit(
    State(service): State<SharedService>,
    Path(client): Path<String>,
    parts: Parts,
    body: Body,
) -> ApiResult<Response> {
    admin_guard::require_admin(&parts)?;
    let client = known_client(&service, &client)?;
    let b: ImplicitBody = body_json(body, r#"{"accessTokens": true, "idTokens": true}"#).await?;
    let svc = service.clone();
    let c = client.clone();
    let app = tokio::task::spawn_blocking(move || {
        svc.identity
            .directory
            .set_implicit(&svc.db, &c, b.access_tokens, b.id_tokens)
    })
    .await
    .map_err(|e| ApiError::internal("app registration", e))?
    .map_err(failed)?;
    Ok(Json(json!({
        "clientId": client,
        "implicitGrant": {"accessTokens": app.implicit_access_tokens, "idTokens": app.implicit_id_tokens},
    }))
    .into_response())
}
