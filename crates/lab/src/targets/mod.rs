//! What the lab runs against, and opening it: the practice service (embedded in-process, or one a
//! `dicomlab serve` runs), Azure's DICOM service, or any DICOMweb server. Opening a profile gives the
//! learner's client, the reader of the service's audit log when there is one, what progress is keyed
//! by, and who administers roles ([`roles::RoleAdmin`]: the embedded service, a served one over its
//! admin routes, or the Azure portal). The lab engine reaches the embedded practice service only
//! through [`embedded`]'s traits, which the binary implements.

pub mod embedded;
pub(crate) mod kind;
pub mod roles;

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::{GenericAuth, Profile};
use dicomlab_dicomweb::loganalytics::LOG_ANALYTICS_ENDPOINT;
use dicomlab_dicomweb::{AuthConfig, ClientError, DicomWebClient, Exchange, LogReader};

pub use embedded::{Embedded, Endpoint, Launch};
pub use kind::TargetKind;
pub use roles::{Role, RoleAdmin, RoleError};

/// The port the embedded practice service takes when it is free, so Postman or curl in another
/// terminal keep working across restarts (the credentials are kept with its data).
pub const PRACTICE_PORT: u16 = 8042;

/// Why a target could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the practice service could not start: {0}")]
    Practice(String),
    #[error(
        "this build has no embedded practice service: give the practice profile a base URL (`dicomlab serve`)"
    )]
    NoEmbedded,
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// An open target.
pub struct Target {
    pub kind: TargetKind,
    /// The learner's client.
    pub client: DicomWebClient,
    /// What progress is keyed by: `practice` for the embedded service, else the base URL.
    pub key: String,
    /// The embedded practice service, when the profile is `practice` without a base URL.
    pub practice: Option<Arc<dyn Embedded>>,
    /// The audit log's reader, when the target has one.
    pub log: Option<LogReader>,
    /// How late audit rows may arrive, in seconds.
    pub log_delay: u64,
    /// Who assigns roles on it.
    pub roles: RoleAdmin,
}

/// The credentials a profile describes.
pub fn auth_of(profile: &Profile) -> AuthConfig {
    match (profile.kind, profile.auth) {
        (TargetKind::Generic, GenericAuth::None) => AuthConfig::None,
        (TargetKind::Generic, GenericAuth::Basic) => AuthConfig::Basic {
            username: profile.username.clone(),
            password: profile.password.clone(),
        },
        (TargetKind::Generic, GenericAuth::Bearer) => AuthConfig::Bearer {
            token: profile.token.clone(),
        },
        _ => AuthConfig::Azure {
            tenant_id: profile.tenant_id.trim().to_string(),
            client_id: profile.client_id.trim().to_string(),
            client_secret: profile.client_secret.clone(),
            resource: profile.resource.trim().to_string(),
            authority: profile.authority.trim().to_string(),
            token_version: profile.token_version,
        },
    }
}

/// Opens a profile's target; `embedded` starts the embedded practice service when the profile asks for
/// it, `sink` receives every exchange of the learner's client.
pub async fn open(
    profile: &Profile,
    embedded: Option<&dyn Launch>,
    sink: Option<mpsc::UnboundedSender<Exchange>>,
) -> Result<Target, OpenError> {
    let mut log_delay = profile.log_delay_secs.unwrap_or(match profile.kind {
        TargetKind::Azure => 600,
        _ => 0,
    });
    let mut target = if profile.kind == TargetKind::Practice && profile.base_url.trim().is_empty() {
        let svc = embedded
            .ok_or(OpenError::NoEmbedded)?
            .launch()
            .await
            .map_err(OpenError::Practice)?;
        let end = svc.endpoint().clone();
        let auth = AuthConfig::Azure {
            tenant_id: end.tenant_id.clone(),
            client_id: end.client_id.clone(),
            client_secret: end.client_secret.clone(),
            resource: end.resource.clone(),
            authority: end.authority.clone(),
            token_version: Default::default(),
        };
        let log = LogReader::new(
            &format!("{}/loganalytics", end.origin),
            &end.workspace_id,
            &auth,
        )
        .ok();
        Target {
            kind: TargetKind::Practice,
            client: DicomWebClient::new(&end.base_url, auth)?,
            key: "practice".into(),
            roles: RoleAdmin::Embedded {
                service: svc.clone(),
                client_id: end.client_id.clone(),
            },
            practice: Some(svc),
            log,
            log_delay: 0,
        }
    } else {
        let auth = auth_of(profile);
        let base = profile.base_url.trim().trim_end_matches('/').to_string();
        let client = DicomWebClient::new(&base, auth.clone())?;
        let client_id = match &auth {
            AuthConfig::Azure { client_id, .. } => Some(client_id.clone()),
            _ => None,
        };
        let (log, roles) = match profile.kind {
            TargetKind::Generic => (None, RoleAdmin::None),
            TargetKind::Practice => {
                let origin = crate::config::service_root(&base);
                let found = discover_workspace(&client, &origin).await;
                let ws = if profile.log_workspace.trim().is_empty() {
                    found.as_ref().map(|(w, _)| w.clone())
                } else {
                    Some(profile.log_workspace.trim().to_string())
                };
                if profile.log_delay_secs.is_none()
                    && let Some((_, d)) = &found
                {
                    log_delay = *d;
                }
                let log = ws.and_then(|w| {
                    LogReader::new(&format!("{origin}/loganalytics"), &w, &auth).ok()
                });
                (log, RoleAdmin::http(&origin, client_id))
            }
            TargetKind::Azure => {
                let log = if profile.log_workspace.trim().is_empty() {
                    None
                } else {
                    let endpoint = if profile.log_endpoint.trim().is_empty() {
                        LOG_ANALYTICS_ENDPOINT
                    } else {
                        profile.log_endpoint.trim()
                    };
                    LogReader::new(endpoint, &profile.log_workspace, &auth).ok()
                };
                (log, RoleAdmin::Portal { client_id })
            }
        };
        Target {
            kind: profile.kind,
            client,
            key: base,
            practice: None,
            log,
            log_delay,
            roles,
        }
    };
    if let Some(s) = sink {
        target.client = target.client.with_sink(s);
    }
    Ok(target)
}

/// A served practice service's workspace id and audit delay (a practice-only route).
async fn discover_workspace(client: &DicomWebClient, origin: &str) -> Option<(String, u64)> {
    let a = client
        .get_anonymous_url(&format!("{origin}/loganalytics/v1/workspaces"))
        .await
        .ok()?;
    let v = a.json()?;
    let first = v.get(0)?;
    Some((
        first.get("id")?.as_str()?.to_string(),
        first
            .get("delaySeconds")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    ))
}
