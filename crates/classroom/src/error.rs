//! Why the classroom could not start or do something ([`ClassroomError`]).

use std::net::SocketAddr;
use std::time::Duration;

use crate::folder::FolderError;
use crate::names::LearnerName;
use crate::ssh::host_key::SshError;
use crate::tenants::TenantError;

/// Why the classroom could not start or do something.
#[derive(Debug, thiserror::Error)]
pub enum ClassroomError {
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "this classroom folder holds the lab '{kept}', not '{given}': use another folder for another lab"
    )]
    OtherLab { kept: String, given: String },
    #[error("the name '{0}' is taken by a learner on this classroom's services: pick another")]
    NameOnService(LearnerName),
    #[error(
        "the name '{0}' is taken by a learner who reports from their own service: pick another"
    )]
    NameSelfReported(LearnerName),
    #[error(
        "the name '{0}' reports with the token its first report got (dicomlab join keeps it): ask the instructor to reset it"
    )]
    WrongToken(LearnerName),
    #[error("no learner '{0}' in this classroom")]
    NoLearner(LearnerName),
    #[error(
        "this address has brought many new names into the room lately: try again in {} min, or ask the instructor",
        .0.as_secs().div_ceil(60)
    )]
    ManyNames(Duration),
    #[error("the classroom's list of learners is unusable (a task failed while changing it)")]
    Poisoned,
    #[error(transparent)]
    Ssh(#[from] SshError),
}
