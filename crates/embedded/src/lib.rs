//! The practice service as the lab's embedded target: [`Launcher`] starts a
//! [`dicomlab_practice::RunningService`] on loopback and hands the lab an
//! [`dicomlab_lab::targets::Embedded`] over it. The binary gives one to the TUI and the headless
//! commands; tests give one to a session. This is the only crate that knows both the lab and the
//! practice service.

use std::path::PathBuf;
use std::sync::Arc;

use dicomlab_dicom::role::Role;
use dicomlab_dicomweb::Secret;
use dicomlab_lab::targets::roles::Assignment;
use dicomlab_lab::targets::{Embedded, Endpoint, Launch, PRACTICE_PORT, embedded::Launching};
use dicomlab_practice::{RunningService, ServiceConfig, StartError};

/// Starts the embedded practice service, keeping its data in `data` (None: a temporary folder), on
/// the stable port [`PRACTICE_PORT`] when it is free, so Postman or curl in another terminal keep
/// working across restarts.
#[derive(Debug, Clone, Default)]
pub struct Launcher {
    pub data: Option<PathBuf>,
}

impl Launcher {
    pub fn new(data: Option<PathBuf>) -> Launcher {
        Launcher { data }
    }
}

impl Launch for Launcher {
    fn launch(&self) -> Launching {
        let data = self.data.clone();
        Box::pin(async move {
            let running = start(data).await.map_err(|e| e.to_string())?;
            Ok(Arc::new(Running::new(running)) as Arc<dyn Embedded>)
        })
    }
}

async fn start(data: Option<PathBuf>) -> Result<RunningService, StartError> {
    let config = |port: u16| ServiceConfig {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        data_dir: data.clone(),
        heavy_jobs: 1,
        ..ServiceConfig::default()
    };
    match dicomlab_practice::start(config(PRACTICE_PORT)).await {
        Err(StartError::Bind { .. }) => dicomlab_practice::start(config(0)).await,
        other => other,
    }
}

/// A running practice service, as the lab sees it.
pub struct Running {
    service: RunningService,
    endpoint: Endpoint,
}

impl Running {
    pub fn new(service: RunningService) -> Running {
        let endpoint = Endpoint {
            origin: service.origin.clone(),
            base_url: service.base_url.clone(),
            authority: service.authority.clone(),
            tenant_id: service.tenant_id.clone(),
            client_id: service.client_id.clone(),
            client_secret: Secret::new(service.client_secret.clone()),
            resource: service.resource.clone(),
            workspace_id: service.workspace_id().to_string(),
        };
        Running { service, endpoint }
    }

    /// The practice service itself (tests reach past the lab's view).
    pub fn service(&self) -> &RunningService {
        &self.service
    }

    /// The practice service, to shut it down and wait for it.
    pub fn into_service(self) -> RunningService {
        self.service
    }
}

impl Embedded for Running {
    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn records(&self) -> tokio::sync::watch::Receiver<u64> {
        self.service.records()
    }

    fn hold_lab_roles(&self, roles: &[Role]) {
        self.service.hold_lab_roles(roles);
    }

    fn has_client(&self, client_id: &str) -> bool {
        self.service.service().auth.client(client_id).is_some()
    }

    fn set_role(&self, client_id: &str, role: Role, grant: bool) -> Result<(), String> {
        let svc = self.service.service();
        svc.auth
            .set_role(&svc.db, client_id, role, grant)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn assignments(&self) -> Vec<Assignment> {
        let auth = &self.service.service().auth;
        auth.clients()
            .into_iter()
            .map(|c| Assignment {
                roles: auth
                    .roles_of(&c.client_id)
                    .iter()
                    .map(|r| r.name().to_string())
                    .collect(),
                lab_client: c.client_id == auth.lab_client_id,
                user: false,
                client_id: c.client_id,
                name: c.name,
            })
            .collect()
    }
}
