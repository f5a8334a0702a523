//! The DICOM service's built-in roles (Azure RBAC) the lab meets: the practice service enforces them,
//! the lab grants them (its `[practice] roles`, the role step) and names them in its fixes.

use serde::{Deserialize, Serialize};

/// The Azure roles the lab meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    #[serde(rename = "DICOM Data Owner")]
    DataOwner,
    #[serde(rename = "DICOM Data Reader")]
    DataReader,
    /// Reads the workspace's logs (the audit log the checks use); no DICOM data action.
    #[serde(rename = "Log Analytics Reader")]
    LogAnalyticsReader,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::DataOwner => "DICOM Data Owner",
            Role::DataReader => "DICOM Data Reader",
            Role::LogAnalyticsReader => "Log Analytics Reader",
        }
    }

    /// Accepts the full name in any case, or `owner` / `reader`.
    pub fn parse(s: &str) -> Option<Role> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "dicom data owner" | "owner" | "dataowner" => Some(Role::DataOwner),
            "dicom data reader" | "reader" | "datareader" => Some(Role::DataReader),
            "log analytics reader" | "log-reader" | "logreader" => Some(Role::LogAnalyticsReader),
            _ => None,
        }
    }
}
