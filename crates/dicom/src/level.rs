//! The three levels of the DICOM model — study, series, instance — as the lab file writes them
//! (`level = "series"`), the tag API answers them (`"study"`, docs/contract.md §8.4) and QIDO's routes name
//! them (`/studies`, `/series`, `/instances`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Study,
    Series,
    Instance,
}

impl Level {
    /// `study`, `series`, `instance`: the lab file's and the tag API's word.
    pub fn name(self) -> &'static str {
        match self {
            Level::Study => "study",
            Level::Series => "series",
            Level::Instance => "instance",
        }
    }

    /// `studies`, `series`, `instances`: the route's segment.
    pub fn segment(self) -> &'static str {
        match self {
            Level::Study => "studies",
            Level::Series => "series",
            Level::Instance => "instances",
        }
    }

    /// A level's name in any case.
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "study" => Some(Level::Study),
            "series" => Some(Level::Series),
            "instance" => Some(Level::Instance),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_match_serde() {
        for l in [Level::Study, Level::Series, Level::Instance] {
            assert_eq!(Level::parse(l.name()), Some(l));
            assert_eq!(Level::parse(&l.name().to_uppercase()), Some(l));
            assert_eq!(
                serde_json::to_value(l).ok(),
                Some(serde_json::Value::from(l.name()))
            );
        }
        assert_eq!(Level::parse("frame"), None);
    }
}
