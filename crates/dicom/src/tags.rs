//! Attribute names as learners type them: an 8-hex tag or an exact (case-sensitive) DICOM keyword.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

/// A resolved attribute: its tag, its dictionary VR (when known) and its keyword (when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub tag: Tag,
    pub vr: Option<VR>,
    pub keyword: Option<&'static str>,
}

impl Attribute {
    /// The keyword if there is one, else the hex tag: what messages name.
    pub fn display_name(&self) -> String {
        self.keyword
            .map_or_else(|| super::json::tag_key(self.tag), str::to_string)
    }
}

/// Resolves `00100040` (hex, any case) or `PatientSex` (keyword, exact case).
pub fn resolve(name: &str) -> Option<Attribute> {
    let tag = match super::json::parse_tag_key(name) {
        Some(t) => t,
        None => {
            let entry = StandardDataDictionary.by_name(name)?;
            // by_name is exact already, but keep the case rule explicit (docs/contract.md §5.3).
            if entry.alias() != name {
                return None;
            }
            entry.tag_range().inner()
        }
    };
    Some(describe(tag))
}

/// What the dictionary knows of a tag.
pub fn describe(tag: Tag) -> Attribute {
    match StandardDataDictionary.by_tag(tag) {
        Some(e) => Attribute {
            tag,
            vr: Some(e.vr.relaxed()),
            keyword: Some(e.alias),
        },
        None => Attribute {
            tag,
            vr: None,
            keyword: None,
        },
    }
}

/// The keyword of a tag, for display in tables and trees.
pub fn keyword(tag: Tag) -> Option<&'static str> {
    StandardDataDictionary.by_tag(tag).map(|e| e.alias)
}

/// Private data elements live in odd groups.
pub fn is_private(tag: Tag) -> bool {
    tag.0 % 2 == 1
}

/// A private creator element: (gggg,0010–00FF) in an odd group.
pub fn is_private_creator(tag: Tag) -> bool {
    is_private(tag) && (0x0010..=0x00FF).contains(&tag.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_keywords_and_hex() {
        let a = resolve("PatientSex").expect("keyword");
        assert_eq!(a.tag, Tag(0x0010, 0x0040));
        assert_eq!(a.vr, Some(VR::CS));
        assert_eq!(
            resolve("00100040").map(|a| a.keyword),
            Some(Some("PatientSex"))
        );
        assert_eq!(
            resolve("0010004a").map(|a| a.tag),
            Some(Tag(0x0010, 0x004A))
        );
        assert!(resolve("patientsex").is_none());
        assert!(resolve("PatientSex.Foo").is_none());
    }
}
