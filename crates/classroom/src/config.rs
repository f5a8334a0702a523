//! How to run a classroom: its addresses, code, limits and timings ([`ClassroomConfig`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dicomlab_dicomweb::Secret;

/// How to run a classroom.
#[derive(Debug, Clone)]
pub struct ClassroomConfig {
    /// The classroom folder.
    pub dir: PathBuf,
    /// The HTTP front's address (learners' Postman, curl, Python; `dicomlab join`).
    pub http: SocketAddr,
    /// The SSH server's address.
    pub ssh: SocketAddr,
    /// The class code; `None`: the one kept in the folder, or a new one (a `Secret`: never printed
    /// by `Debug`).
    pub code: Option<Secret>,
    /// How learners reach the HTTP front (`http://classroom.local:8080`); `None`: made from the
    /// address and this machine's host name.
    pub public_url: Option<String>,
    /// Most learners (each has a service and a folder).
    pub max_learners: usize,
    /// Most SSH sessions at once.
    pub max_sessions: usize,
    /// An SSH session without a key for this long is closed (told `idle_warning` before).
    pub idle: Duration,
    pub idle_warning: Duration,
    /// Renderings and frame extractions at once, across every learner.
    pub heavy_jobs: usize,
    /// Memory every learner's uploads and validations may hold together.
    pub memory_budget: u64,
    /// The first wait after a wrong class code (it doubles each time).
    pub first_refusal_delay: Duration,
    /// A re-index takes at least this long (0 in tests and the bench).
    pub reindex_min: Duration,
    /// How long after the first request of a learner's since their last check their steps are
    /// checked at the latest (a burst costs one check). They are checked sooner, as soon as their
    /// service wrote that request's audit rows (25 ms after it, one transaction for a burst); this
    /// is for rows that landed before the request was counted.
    pub check_delay: Duration,
    /// Requests a second one client address may send the public HTTP port, on average…
    pub rate_per_sec: f64,
    /// …and at once.
    pub rate_burst: f64,
    /// An SSH connection must log in within this, and then ask for a terminal within as long.
    pub login_time: Duration,
    /// Bytes each learner's stored instances may take (the room's disk is the sum).
    pub learner_storage: u64,
}

impl ClassroomConfig {
    pub fn new(dir: PathBuf) -> Self {
        ClassroomConfig {
            dir,
            http: SocketAddr::from(([0, 0, 0, 0], 8080)),
            ssh: SocketAddr::from(([0, 0, 0, 0], 2222)),
            code: None,
            public_url: None,
            max_learners: 100,
            max_sessions: 60,
            idle: Duration::from_secs(45 * 60),
            idle_warning: Duration::from_secs(60),
            heavy_jobs: 2,
            memory_budget: 256 * 1024 * 1024,
            first_refusal_delay: Duration::from_secs(1),
            reindex_min: Duration::from_secs(2),
            check_delay: Duration::from_millis(350),
            rate_per_sec: 50.0,
            rate_burst: 200.0,
            login_time: Duration::from_secs(60),
            learner_storage: 1024 * 1024 * 1024,
        }
    }
}
