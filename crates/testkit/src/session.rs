//! A lab session on a practice service of the test's own: the service (as `dicomlab serve` would
//! run it), a session opened on a learner's profile pointing at it, the embedded lab, and a progress
//! store in a temporary folder. One fixture for the lab's integration tests.

use std::time::Duration;

use dicomlab_lab::engine::Session;
use dicomlab_lab::progress::ProgressStore;
use dicomlab_lab::{Lab, Outcome};
use dicomlab_practice::{RunningService, ServiceConfig};

/// A practice service with immediate re-indexing (tests wait for no one).
pub async fn service(config: ServiceConfig) -> RunningService {
    dicomlab_practice::start(ServiceConfig {
        reindex_min_duration: Duration::ZERO,
        ..config
    })
    .await
    .expect("practice service")
}

/// A service, a session on it, the lab, and fresh progress.
pub struct LabRun {
    pub svc: RunningService,
    pub session: Session,
    pub lab: Lab,
    pub store: ProgressStore,
    pub dir: tempfile::TempDir,
}

impl LabRun {
    /// The embedded lab on a new service.
    pub async fn start(config: ServiceConfig) -> LabRun {
        Self::with_lab(config, Lab::embedded().expect("lab")).await
    }

    /// Another lab on a new service.
    pub async fn with_lab(config: ServiceConfig, lab: Lab) -> LabRun {
        let svc = service(config).await;
        let session = Session::open(&crate::profile_for(&svc), None, None)
            .await
            .expect("session");
        let dir = tempfile::tempdir().expect("tmp");
        let store = ProgressStore::load(&dir.path().join("progress.json"));
        LabRun {
            svc,
            session,
            lab,
            store,
            dir,
        }
    }

    /// Checks every step and records them.
    pub async fn check(&mut self) -> Vec<(dicomlab_lab::model::StepId, Outcome)> {
        self.session
            .check_all(&self.lab, &mut self.store, None)
            .await
    }
}
