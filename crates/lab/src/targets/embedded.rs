//! The embedded practice service, as the lab sees it. The lab does not depend on the practice
//! service: whoever runs the lab (the binary, the classroom, a test) hands it a [`Launch`], and what
//! that starts is an [`Embedded`] — where it answers, the lab client's credentials, the feed of its
//! records for the live verdicts, and its role assignments. `dicomlab-embedded` implements both over
//! `dicomlab-practice`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use dicomlab_dicom::role::Role;
use dicomlab_dicomweb::Secret;

/// Where the embedded service answers, and its lab client.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    /// `http://127.0.0.1:PORT/v1`: what the lab calls the base URL.
    pub base_url: String,
    /// The authority host the client puts before `/{tenant}/oauth2/token`.
    pub authority: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub resource: String,
    /// The practice workspace (its audit log is read at `{origin}/loganalytics/v1/workspaces/{id}/query`).
    pub workspace_id: String,
}

/// A running embedded practice service. Dropping the last handle stops it.
pub trait Embedded: Send + Sync {
    fn endpoint(&self) -> &Endpoint;
    /// Bumped after the service writes a record a check could use (see `watch::Plan::Pushed`).
    fn records(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Gives the lab client `roles` for as long as the service runs (a lab file's `[practice] roles`).
    fn hold_lab_roles(&self, roles: &[Role]);
    /// Whether the service knows a client with this id.
    fn has_client(&self, client_id: &str) -> bool;
    /// Grants or revokes a role; may block on the service's database (call it off the runtime).
    fn set_role(&self, client_id: &str, role: Role, grant: bool) -> Result<(), String>;
    /// Every client and its roles (never a secret).
    fn assignments(&self) -> Vec<Assignment>;
}

/// What [`Launch::launch`] returns.
pub type Launching = Pin<Box<dyn Future<Output = Result<Arc<dyn Embedded>, String>> + Send>>;

/// Starts the embedded practice service (with whatever data folder the launcher was given).
pub trait Launch: Send + Sync {
    fn launch(&self) -> Launching;
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
