//! Each learner's own practice service, in this process: its own data folder, index, credentials, role
//! assignments, change feed, extended query tags and audit log — nothing shared but the process's
//! limits on memory and rendering ([`SharedLimits`]), so thirty learners cannot take more together
//! than one classroom may. A service is built when its learner first joins and kept until the
//! classroom stops; the front (`front.rs`) routes `/l/{name}/…` to it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;

use crate::folder::{Folder, FolderError};
use crate::names::LearnerName;
use dicomlab_practice::{BuiltService, ServiceConfig, SharedLimits, SharedService, StartError};

/// One learner's service.
pub struct Tenant {
    pub name: LearnerName,
    /// Its state (credentials, roles, audit log…).
    pub service: SharedService,
    /// Its routes, called by the front with the prefix stripped.
    pub router: Router,
    /// The lab client's secret (never logged).
    pub secret: String,
    /// What `dicomlab_practice::build` made (its data folder is the learner's, in the classroom folder).
    _built: BuiltService,
}

/// Why a learner's service could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("the classroom has its limit of {0} learners")]
    Full(usize),
    #[error("{name}'s service could not start: {source}")]
    Start {
        name: LearnerName,
        source: StartError,
    },
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error("{0}")]
    Task(String),
}

/// Every learner's service.
pub struct Tenants {
    folder: Folder,
    limits: SharedLimits,
    /// Most services at once.
    max: usize,
    /// `http://127.0.0.1:PORT`: URLs of requests without a Host header (none come that way).
    default_origin: String,
    /// Largest request body a learner may send.
    max_request_bytes: u64,
    /// Bytes a learner's stored instances may take.
    max_stored_bytes: u64,
    /// How long a re-index takes at least (learners watch it run).
    reindex_min: Duration,
    /// Roles each learner's client holds from the start (the lab file's `[practice] roles`).
    lab_roles: Vec<dicomlab_practice::auth::Role>,
    tenants: RwLock<HashMap<LearnerName, Arc<Tenant>>>,
    /// One creation at a time: two first connections of one learner make one service.
    creating: tokio::sync::Mutex<()>,
    /// Told, with the learner's name, each time their service wrote audit rows of theirs.
    rows_landed: std::sync::OnceLock<RowsLanded>,
}

/// What hears that a learner's service wrote audit rows of theirs (the room's checks).
pub(crate) type RowsLanded = Arc<dyn Fn(&LearnerName) + Send + Sync>;

impl Tenants {
    pub fn new(folder: Folder, limits: SharedLimits, max: usize, default_origin: String) -> Self {
        Tenants {
            folder,
            limits,
            max,
            default_origin,
            max_request_bytes: 512 * 1024 * 1024,
            max_stored_bytes: 1024 * 1024 * 1024,
            reindex_min: Duration::from_secs(2),
            lab_roles: Vec::new(),
            tenants: RwLock::new(HashMap::new()),
            rows_landed: std::sync::OnceLock::new(),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// What each learner's stored instances may take (bytes).
    pub fn with_storage(mut self, bytes: u64) -> Self {
        self.max_stored_bytes = bytes;
        self
    }

    /// Re-indexes take no time (tests and the bench).
    pub fn with_reindex_min(mut self, d: Duration) -> Self {
        self.reindex_min = d;
        self
    }

    /// What the room's lab says each learner's service starts with (`[practice] roles`).
    pub fn with_lab_roles(mut self, roles: Vec<dicomlab_practice::auth::Role>) -> Self {
        self.lab_roles = roles;
        self
    }

    /// Tells `f` each time a service (opened from now on) wrote audit rows of its learner's; set once.
    pub(crate) fn on_rows_landed(&self, f: RowsLanded) {
        let _ = self.rows_landed.set(f);
    }

    /// The learner's service, when it runs.
    pub fn get(&self, name: &LearnerName) -> Option<Arc<Tenant>> {
        self.tenants.read().ok().and_then(|t| t.get(name).cloned())
    }

    /// How many services run.
    pub fn len(&self) -> usize {
        self.tenants.read().map_or(0, |t| t.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every running service.
    pub fn all(&self) -> Vec<Arc<Tenant>> {
        self.tenants
            .read()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The learner's service, built (or re-opened from its folder) when it is not running yet.
    pub async fn open(&self, name: &LearnerName) -> Result<Arc<Tenant>, TenantError> {
        if let Some(t) = self.get(name) {
            return Ok(t);
        }
        let _one = self.creating.lock().await;
        if let Some(t) = self.get(name) {
            return Ok(t);
        }
        if self.len() >= self.max {
            return Err(TenantError::Full(self.max));
        }
        self.folder.make_learner_dir(name)?;
        let config = ServiceConfig {
            data_dir: Some(self.folder.service_dir(name)),
            auth: true,
            grant_owner: false,
            heavy_jobs: 1,
            reindex_min_duration: self.reindex_min,
            max_request_bytes: self.max_request_bytes.min(self.max_stored_bytes),
            max_stored_bytes: Some(self.max_stored_bytes),
            shared_limits: Some(self.limits.clone()),
            // A learner's lab makes a few thousand rows: a room of services keeps a tenth of a
            // lone service's log each, so no learner's log costs the room much memory or disk.
            audit_rows: 20_000,
            lab_roles: self.lab_roles.clone(),
            ..ServiceConfig::default()
        };
        let origin = self.default_origin.clone();
        // Opening the index is blocking work; the audit log's flusher is spawned on this runtime.
        let built = tokio::task::spawn_blocking(move || dicomlab_practice::build(config, &origin))
            .await
            .map_err(|e| TenantError::Task(e.to_string()))?
            .map_err(|source| TenantError::Start {
                name: name.clone(),
                source,
            })?;
        let tenant = Arc::new(Tenant {
            name: name.clone(),
            service: built.service.clone(),
            router: dicomlab_practice::router(built.service.clone()),
            secret: built.lab_secret(),
            _built: built,
        });
        if let Ok(mut t) = self.tenants.write() {
            t.insert(name.clone(), tenant.clone());
        }
        if let Some(f) = self.rows_landed.get().cloned() {
            // Ends with the service (its log's sender goes with it).
            let mut rows = tenant.service.audit.watch();
            let name = name.clone();
            tokio::spawn(async move {
                while rows.changed().await.is_ok() {
                    f(&name);
                }
            });
        }
        tracing::info!(learner = %name, "learner's service ready");
        Ok(tenant)
    }

    /// Writes every service's pending audit rows (at shutdown).
    pub async fn flush(&self) {
        for t in self.all() {
            let svc = t.service.clone();
            let _ = tokio::task::spawn_blocking(move || svc.audit.flush(&svc.db)).await;
        }
    }
}
