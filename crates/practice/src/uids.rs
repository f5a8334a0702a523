//! The study / series / instance a URL names, and the checks every route makes on it.

use super::error::{ApiError, ApiResult};
use dicomlab_dicom::is_valid_uid;

/// The UIDs in a route's path.
#[derive(Debug, Clone)]
pub(crate) struct UidPath {
    pub study: String,
    pub series: Option<String>,
    pub sop: Option<String>,
}

impl UidPath {
    /// 400 with the service's message for the first UID that does not validate (docs/contract.md §4.5).
    pub(crate) fn validate(&self) -> ApiResult<()> {
        for (name, v) in [
            ("StudyInstanceUid", Some(&self.study)),
            ("SeriesInstanceUid", self.series.as_ref()),
            ("SopInstanceUid", self.sop.as_ref()),
        ] {
            if let Some(v) = v
                && !is_valid_uid(v)
            {
                return Err(ApiError::bad_uid(name, v));
            }
        }
        Ok(())
    }

    /// The UIDs as the index compares them: without trailing spaces, as SQL Server's padded comparison
    /// ignores them (Azure finds `1.2.3 ` stored as `1.2.3`, and the other way round).
    pub(crate) fn compared(&self) -> UidPath {
        let unpad = |s: &String| padless(s).to_string();
        UidPath {
            study: unpad(&self.study),
            series: self.series.as_ref().map(unpad),
            sop: self.sop.as_ref().map(unpad),
        }
    }

    /// The 404 for the level the path names.
    pub(crate) fn not_found(&self) -> ApiError {
        let what = if self.sop.is_some() {
            "instance"
        } else if self.series.is_some() {
            "series"
        } else {
            "study"
        };
        ApiError::not_found(format!("The specified {what} cannot be found."))
    }
}

/// A UID without the trailing spaces that SQL Server's comparison ignores.
pub(crate) fn padless(uid: &str) -> &str {
    uid.trim_end_matches(' ')
}
