//! What kind of server the lab runs against: the profile names it, the targets open it.

use serde::{Deserialize, Serialize};

/// What kind of server the lab runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The practice service (embedded or `dicomlab serve`): change feed, audit log, sign-in log.
    Practice,
    /// Azure Health Data Services: change feed; the audit log when sent to a Log Analytics workspace.
    Azure,
    /// Any DICOMweb server (Orthanc…): no change feed, no extended query tags, no audit log.
    Generic,
}
