//! A step's id, as the lab file gives it (`store-samples`): what progress, the checks, the screens and
//! the room key a step by. Stable across lab versions (reordering steps keeps a learner's progress);
//! written as a plain string in every file.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepId(String);

impl StepId {
    pub fn new(id: impl Into<String>) -> StepId {
        StepId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for StepId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for StepId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for StepId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for StepId {
    fn from(s: &str) -> StepId {
        StepId(s.to_string())
    }
}

impl From<String> for StepId {
    fn from(s: String) -> StepId {
        StepId(s)
    }
}

impl PartialEq<str> for StepId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StepId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for StepId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<StepId> for str {
    fn eq(&self, other: &StepId) -> bool {
        self == other.0
    }
}

impl PartialEq<StepId> for &str {
    fn eq(&self, other: &StepId) -> bool {
        *self == other.0
    }
}

impl PartialEq<StepId> for String {
    fn eq(&self, other: &StepId) -> bool {
        *self == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_id_is_a_plain_string_in_files_and_maps() {
        let id = StepId::from("store-samples");
        assert_eq!(
            serde_json::to_string(&id).ok().as_deref(),
            Some("\"store-samples\"")
        );
        let back: StepId = serde_json::from_str("\"store-samples\"").unwrap_or_default();
        assert_eq!(back, id);
        let map: std::collections::BTreeMap<StepId, u8> = [(id.clone(), 1)].into();
        assert_eq!(map.get("store-samples"), Some(&1));
        assert_eq!(id, "store-samples");
    }
}
