//! Who assigns roles on a target — Azure's "Access control (IAM)": on the embedded practice service,
//! dicomlab itself; on a served practice service, its loopback admin routes (what `dicomlab role` uses);
//! on Azure, the learner in the portal (the answer says where to click); a generic server has none.

use std::sync::Arc;

use serde_json::Value;

pub use super::embedded::Assignment;
use super::embedded::Embedded;
pub use dicomlab_dicom::role::Role;

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

/// A practice service's admin routes (loopback only, with the admin header): the one client of them —
/// role administration here, and `dicomlab cors`, `app` and `ohif`.
#[derive(Debug, Clone)]
pub struct AdminClient {
    origin: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// The service at `service`: its origin, or a base URL (its routes outside `/v1` are found as
    /// [`crate::config::service_root`] says).
    pub fn new(service: &str) -> AdminClient {
        let origin = crate::config::service_root(service);
        AdminClient {
            http: dicomlab_dicomweb::tls::client_builder([origin.as_str()])
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            origin,
        }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `method path` with an optional JSON body; an answer that is not a success is refused.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, RoleError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.origin))
            .header(ADMIN_HEADER.0, ADMIN_HEADER.1);
        if let Some(b) = body {
            req = req.json(b);
        }
        let origin = &self.origin;
        let resp = req.send().await.map_err(|e| RoleError::Unreachable {
            origin: origin.clone(),
            detail: e.to_string(),
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Err(RoleError::Refused {
            origin: origin.clone(),
            status,
            body: dicomlab_dicom::text::visible(body.trim()).into_owned(),
        })
    }

    /// The same, and its JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RoleError> {
        let text = self
            .send(method, path, body)
            .await?
            .text()
            .await
            .map_err(|e| RoleError::Other(format!("{}: {e}", self.origin)))?;
        serde_json::from_str(&text).map_err(|_| {
            RoleError::Other(format!(
                "{} did not answer as a dicomlab practice service does (is it one?)",
                self.origin
            ))
        })
    }
}

/// Role administration, one implementation per kind of target.
pub enum RoleAdmin {
    /// The embedded practice service: directly.
    Embedded {
        service: Arc<dyn Embedded>,
        client_id: String,
    },
    /// A served practice service: its loopback admin routes.
    Http {
        admin: AdminClient,
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
        RoleAdmin::Http {
            admin: AdminClient::new(origin),
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
                if !service.has_client(&client) {
                    return Err(RoleError::Other(format!("no client with id '{client}'")));
                }
                let svc = service.clone();
                let c = client.clone();
                tokio::task::spawn_blocking(move || svc.set_role(&c, role, grant))
                    .await
                    .map_err(|e| RoleError::Other(e.to_string()))?
                    .map_err(RoleError::Other)?;
                Ok(done(&client))
            }
            RoleAdmin::Http { admin, client_id } => {
                let origin = admin.origin();
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
                let path = format!("/admin/roles/{client}/{}", role.name().replace(' ', "%20"));
                let method = if grant {
                    reqwest::Method::PUT
                } else {
                    reqwest::Method::DELETE
                };
                let resp = admin.send(method, &path, None).await?;
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
            RoleAdmin::Embedded { service, .. } => Ok(service.assignments()),
            RoleAdmin::Http { admin, .. } => {
                let origin = admin.origin();
                let resp = admin.send(reqwest::Method::GET, "/admin/roles", None).await?;
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
