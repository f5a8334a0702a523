//! Learner names: what a learner types after `ssh -p 2222` and what names their service's path
//! (`/l/{name}/v1`), their folder and their row on the dashboard. So: short, lowercase ASCII, safe in a
//! URL path, a file name and a terminal, and never mistaken for an API version by the lab's checks.

use std::fmt;

/// The longest name, in bytes.
pub const MAX_NAME: usize = 32;

/// A valid learner name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct LearnerName(String);

/// Why a name is refused (each says what a valid one looks like).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name is 1 to {MAX_NAME} characters")]
    Length,
    #[error("a name starts with a letter (a-z)")]
    Start,
    #[error("a name has only letters a-z, digits, '-' and '_'")]
    Character,
    #[error("a name may not look like an API version (v1, v2…)")]
    Version,
}

impl LearnerName {
    /// Reads a name as typed: ASCII letters are lowered (`Ada` is `ada`).
    pub fn parse(typed: &str) -> Result<Self, NameError> {
        if typed.is_empty() || typed.len() > MAX_NAME {
            return Err(NameError::Length);
        }
        Self::exact(&typed.to_ascii_lowercase())
    }

    /// Reads a name as the classroom writes it (in a path or a file): already lowercase.
    pub fn exact(name: &str) -> Result<Self, NameError> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(NameError::Length);
        }
        let bytes = name.as_bytes();
        if !bytes[0].is_ascii_lowercase() {
            return Err(NameError::Start);
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
        {
            return Err(NameError::Character);
        }
        if bytes[0] == b'v' && bytes.get(1).is_some_and(u8::is_ascii_digit) {
            return Err(NameError::Version);
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path prefix the learner's service is served under.
    pub fn prefix(&self) -> String {
        format!("/l/{}", self.0)
    }
}

impl fmt::Display for LearnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for LearnerName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::exact(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_and_safe() {
        assert_eq!(
            LearnerName::parse("Ada").map(|n| n.to_string()),
            Ok("ada".into())
        );
        assert!(LearnerName::parse("grace_h-2").is_ok());
        for (bad, why) in [
            ("", NameError::Length),
            (&"a".repeat(33), NameError::Length),
            ("2ada", NameError::Start),
            ("-x", NameError::Start),
            ("a/b", NameError::Character),
            ("a.b", NameError::Character),
            ("ada lovelace", NameError::Character),
            ("a\u{1b}[2J", NameError::Character),
            ("ädä", NameError::Start),
            ("v2", NameError::Version),
            ("v1x", NameError::Version),
        ] {
            assert_eq!(LearnerName::parse(bad), Err(why), "{bad:?}");
        }
        assert!(LearnerName::exact("Ada").is_err(), "paths are exact");
        assert!(LearnerName::parse("vera").is_ok());
    }
}
