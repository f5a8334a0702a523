//! Who assigns roles on a target — Azure's "Access control (IAM)": on the embedded practice service,
//! dicomlab itself; on a served practice service, its loopback admin routes (what `dicomlab role` uses);
//! on Azure, the learner in the portal (the answer says where to click); a generic server has none.

use std::sync::Arc;

use serde_json::Value;

use crate::practice::Service;
pub use crate::practice::auth::Role;

/// The header the practice service's admin routes want: a browser cannot send it cross-site without
/// a preflight, so a web page cannot grant itself roles through a learner's loopback.
pub const ADMIN_HEADER: (&str, &str) = ("X-Dicomlab-Admin", "1");

/// Why a role could not be changed or listed.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// A person must do it (the Azure portal): where.
    #[error("{0}")]
    Manual(String),
    #[error("cannot reach {origin}: {detail}")]
    Unreachable { origin: String, detail: String },
    #[error("{origin} answered {status}: {body}")]
    Refused {
        origin: String,
        status: u16,
        body: String,
    },
    #[error("{0}")]
    Other(String),
}

/// Sends an admin request (with the admin header); an answer that is not a success is refused. The
/// `dicomlab cors` and `dicomlab app` commands use it too.
pub async fn admin_call(
    origin: &str,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, RoleError> {
    let resp = req
        .header(ADMIN_HEADER.0, ADMIN_HEADER.1)
        .send()
        .await
        .map_err(|e| RoleError::Unreachable {
            origin: origin.to_string(),
            detail: e.to_string(),
        })?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Err(RoleError::Refused {
        origin: origin.to_string(),
        status,
        body: crate::text::visible(body.trim()).into_owned(),
    })
}

/// One client and its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub client_id: String,
    pub name: String,
    pub roles: Vec<String>,
    /// The service's lab client (the one its environment prints).
    pub lab_client: bool,
    /// A user of the practice tenant (`name` is their UPN), not an app.
    pub user: bool,
}

/// Role administration, one implementation per kind of target.
pub enum RoleAdmin {
    /// The embedded practice service: directly.
    Embedded {
        service: Arc<Service>,
        client_id: String,
    },
    /// A served practice service: its loopback admin routes.
    Http {
        origin: String,
        http: reqwest::Client,
        /// The profile's client (None: the service's lab client).
        client_id: Option<String>,
    },
    /// Azure: the learner assigns it in the portal.
    Portal { client_id: Option<String> },
    /// A generic server: no Azure roles.
    None,
}

impl RoleAdmin {
    /// The admin routes of a practice service at `origin` (`http://127.0.0.1:8042`, or a base URL).
    pub fn http(origin: &str, client_id: Option<String>) -> RoleAdmin {
        let origin = crate::config::service_root(origin);
        RoleAdmin::Http {
            origin,
            http: reqwest::Client::new(),
            client_id: client_id.filter(|c| !c.trim().is_empty()),
        }
    }

    /// Grants or revokes `role` for `client` (default: the target's client); says what it did.
    pub async fn set(
        &self,
        role: Role,
        client: Option<&str>,
        grant: bool,
    ) -> Result<String, RoleError> {
        let done = |client: &str| {
            format!(
                "{} {} {} client {client}",
                if grant { "granted" } else { "revoked" },
                role.name(),
                if grant { "to" } else { "from" }
            )
        };
        match self {
            RoleAdmin::Embedded { service, client_id } => {
                let client = client.unwrap_or(client_id).to_string();
                if service.auth.client(&client).is_none() {
                    return Err(RoleError::Other(format!("no client with id '{client}'")));
                }
                let svc = service.clone();
                let c = client.clone();
                tokio::task::spawn_blocking(move || svc.auth.set_role(&svc.db, &c, role, grant))
                    .await
                    .map_err(|e| RoleError::Other(e.to_string()))?
                    .map_err(|e| RoleError::Other(e.to_string()))?;
                Ok(done(&client))
            }
            RoleAdmin::Http {
                origin,
                http,
                client_id,
            } => {
                let client = match client.map(str::to_string).or_else(|| client_id.clone()) {
                    Some(c) => c,
                    None => self
                        .list()
                        .await?
                        .into_iter()
                        .find(|a| a.lab_client)
                        .map(|a| a.client_id)
                        .ok_or_else(|| RoleError::Other(format!("{origin} has no lab client")))?,
                };
                let url = format!(
                    "{origin}/admin/roles/{client}/{}",
                    role.name().replace(' ', "%20")
                );
                let req = if grant {
                    http.put(&url)
                } else {
                    http.delete(&url)
                };
                let resp = admin_call(origin, req).await?;
                let answer: Value = resp.json().await.unwrap_or(Value::Null);
                Ok(match answer["user"].as_str() {
                    Some(upn) => done(upn).replacen(" client ", " user ", 1),
                    None => done(&client),
                })
            }
            RoleAdmin::Portal { client_id } => Err(RoleError::Manual(format!(
                "assign the role in the Azure portal: DICOM service → Access control (IAM) → Add role assignment → {} → select the app {}",
                role.name(),
                client_id.as_deref().unwrap_or("(your client id)")
            ))),
            RoleAdmin::None => Err(RoleError::Manual(
                "this server has no Azure roles: access is whatever its own configuration allows"
                    .into(),
            )),
        }
    }

    /// Every client and its roles (never a secret).
    pub async fn list(&self) -> Result<Vec<Assignment>, RoleError> {
        match self {
            RoleAdmin::Embedded { service, .. } => Ok(service
                .auth
                .clients()
                .into_iter()
                .map(|c| Assignment {
                    roles: service
                        .auth
                        .roles_of(&c.client_id)
                        .iter()
                        .map(|r| r.name().to_string())
                        .collect(),
                    lab_client: c.client_id == service.auth.lab_client_id,
                    user: false,
                    client_id: c.client_id,
                    name: c.name,
                })
                .collect()),
            RoleAdmin::Http { origin, http, .. } => {
                let resp = admin_call(origin, http.get(format!("{origin}/admin/roles"))).await?;
                let v: Vec<Value> = resp.json().await.map_err(|e| {
                    RoleError::Other(format!("{origin}/admin/roles is not a dicomlab practice service's: {e}"))
                })?;
                let text = |c: &Value, k: &str| c[k].as_str().unwrap_or_default().to_string();
                Ok(v.iter()
                    .map(|c| Assignment {
                        client_id: text(c, "clientId"),
                        name: text(c, "name"),
                        roles: c["roles"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|r| r.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        lab_client: c["labClient"].as_bool() == Some(true),
                        user: c["user"].as_bool() == Some(true),
                    })
                    .collect())
            }
            RoleAdmin::Portal { .. } => Err(RoleError::Manual(
                "the Azure portal lists role assignments: DICOM service → Access control (IAM) → Role assignments".into(),
            )),
            RoleAdmin::None => Ok(Vec::new()),
        }
    }
}
