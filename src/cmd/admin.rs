//! Why `dicomlab cors`, `app` or `ohif` failed; they reach a served practice service's admin routes
//! through the lab's one client of them ([`Admin`]).

pub(crate) use dicomlab_lab::targets::roles::AdminClient as Admin;
use dicomlab_lab::targets::roles::RoleError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error(transparent)]
    Admin(#[from] RoleError),
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Ohif(#[from] dicomlab_ohif::OhifError),
    #[error(transparent)]
    Config(#[from] dicomlab_lab::config::ConfigError),
    #[error(transparent)]
    Lab(#[from] dicomlab_lab::model::LabError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
