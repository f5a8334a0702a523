//! The admin routes for clients and role assignments: list them, grant and revoke a role (to an app or
//! a user of the tenant), register a client.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Role;
use crate::SharedService;
use crate::admin_guard::require_admin;
use crate::error::{ApiError, ApiResult};

/// `GET /admin/roles`: clients and their roles (never secrets).
pub(crate) async fn list_roles(
    State(service): State<SharedService>,
    parts: Parts,
) -> ApiResult<Response> {
    require_admin(&parts)?;
    let clients = service
        .auth
        .clients
        .read()
        .map(|c| c.clone())
        .unwrap_or_default();
    let list: Vec<_> = clients
        .values()
        .map(|c| {
            let roles: Vec<_> = service
                .auth
                .roles_of(&c.client_id)
                .iter()
                .map(|r| r.name())
                .collect();
            json!({"clientId": c.client_id, "name": c.name, "roles": roles,
                   "labClient": c.client_id == service.auth.lab_client_id})
        })
        .chain(service.identity.directory.users().into_iter().map(|u| {
            json!({"clientId": u.oid, "name": u.upn, "roles": service.auth.role_names(&u.oid),
                   "labClient": false, "user": true})
        }))
        .collect();
    Ok(Json(list).into_response())
}

/// `PUT` (grant) and `DELETE` (revoke) `/admin/roles/{client}/{role}`.
pub(crate) async fn change_role(
    State(service): State<SharedService>,
    Path((client, role)): Path<(String, String)>,
    parts: Parts,
) -> ApiResult<Response> {
    require_admin(&parts)?;
    let Some(role) = Role::parse(&role) else {
        return Err(ApiError::bad_request(format!(
            "Unknown role '{role}'. Use 'DICOM Data Owner' (owner) or 'DICOM Data Reader' (reader)."
        )));
    };
    // A client (an app's service principal), or a user of the tenant: by object id, UPN or name.
    let mut user_name = None;
    let client = if service.auth.client(&client).is_some() {
        client
    } else if let Some(user) = service.identity.directory.user(&client) {
        user_name = Some(user.upn);
        user.oid
    } else {
        return Err(ApiError::not_found(format!(
            "No client or user with id '{}'.",
            dicomlab_dicom::text::visible(&client)
        )));
    };
    let grant = parts.method == axum::http::Method::PUT;
    let svc = service.clone();
    let client2 = client.clone();
    let changed =
        tokio::task::spawn_blocking(move || svc.auth.set_role(&svc.db, &client2, role, grant))
            .await
            .map_err(|e| ApiError::internal("role change", e))?
            .map_err(|e| ApiError::internal("role change", e))?;
    if changed {
        // A lab open on this service (in this process) judges the role step again at once.
        service.audit.touch();
    }
    tracing::info!(
        client,
        role = role.name(),
        grant,
        changed,
        "role assignment changed"
    );
    let roles: Vec<_> = service
        .auth
        .roles_of(&client)
        .iter()
        .map(|r| r.name())
        .collect();
    Ok(
        Json(json!({"clientId": client, "roles": roles, "changed": changed, "user": user_name}))
            .into_response(),
    )
}

/// `POST /admin/clients` `{"name": "..."}`: registers a client and returns its id and secret once.
pub(crate) async fn create_client(
    State(service): State<SharedService>,
    parts: Parts,
    body: Option<Json<serde_json::Value>>,
) -> ApiResult<Response> {
    require_admin(&parts)?;
    let name = body
        .as_ref()
        .and_then(|b| b.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("extra client")
        .to_string();
    let svc = service.clone();
    let client = tokio::task::spawn_blocking(move || svc.auth.create_client(&svc.db, &name))
        .await
        .map_err(|e| ApiError::internal("create client", e))?
        .map_err(|e| ApiError::internal("create client", e))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"clientId": client.client_id, "clientSecret": client.secret, "name": client.name})),
    )
        .into_response())
}
