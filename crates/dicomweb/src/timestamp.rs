//! Timestamps on the wire and on disk: RFC 3339 text, read once at the edge into `OffsetDateTime`
//! (serde helpers for a time, an optional time, a map of times).
//! Written as `time` formats RFC 3339 (what dicomlab always wrote); read tolerantly, the way
//! [`crate::parse_timestamp`] reads (any offset, up to 7 fractional digits, no zone meaning UTC).

use serde::{Deserialize, Deserializer, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `#[serde(with = "…::rfc3339")]` for an `OffsetDateTime`.
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format(&Rfc3339).map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        crate::parse_timestamp(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

/// `#[serde(default, skip_serializing_if = "Option::is_none", with = "…::rfc3339_option")]` for an
/// `Option<OffsetDateTime>`; text that is not a time reads as none (as it counted before: not at all).
pub mod rfc3339_option {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.and_then(|t| crate::parse_timestamp(&t)))
    }
}

/// `#[serde(default, with = "…::rfc3339_map")]` for a `BTreeMap<String, OffsetDateTime>`; an entry
/// whose text is not a time is left out (as it counted before: not at all).
pub mod rfc3339_map {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<String, OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<&str, String> = m
            .iter()
            .map(|(k, t)| Ok((k.as_str(), t.format(&Rfc3339)?)))
            .collect::<Result<_, time::error::Format>>()
            .map_err(serde::ser::Error::custom)?;
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, OffsetDateTime>, D::Error> {
        Ok(BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .filter_map(|(k, t)| crate::parse_timestamp(&t).map(|t| (k, t)))
            .collect())
    }
}

/// `#[serde(with = "…::rfc3339_or_empty")]` for an `Option<OffsetDateTime>` written as text, `""`
/// when there is none (the form an absent time always had); text that is not a time reads as none.
pub mod rfc3339_or_empty {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        super::rfc3339_option::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use time::macros::datetime;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct At {
        #[serde(with = "super::rfc3339")]
        at: time::OffsetDateTime,
        #[serde(
            skip_deserializing,
            serialize_with = "super::rfc3339_or_empty::serialize"
        )]
        maybe: Option<time::OffsetDateTime>,
    }

    #[test]
    fn the_text_form_is_kept() {
        let a = At {
            at: datetime!(2026-11-30 14:00:00.5 UTC),
            maybe: None,
        };
        let text = serde_json::to_string(&a).expect("serializes");
        assert_eq!(text, r#"{"at":"2026-11-30T14:00:00.5Z","maybe":""}"#);
        assert_eq!(serde_json::from_str::<At>(&text).expect("reads"), a);
        let old: At = serde_json::from_str(r#"{"at":"2026-11-30T15:00:00+01:00"}"#).expect("reads");
        assert_eq!(old.at, datetime!(2026-11-30 14:00:00 UTC));
        let some = At {
            maybe: Some(old.at),
            ..old
        };
        assert_eq!(
            serde_json::to_string(&some).expect("serializes"),
            r#"{"at":"2026-11-30T15:00:00+01:00","maybe":"2026-11-30T15:00:00+01:00"}"#
        );
        assert!(serde_json::from_str::<At>(r#"{"at":"yesterday"}"#).is_err());
    }
}
