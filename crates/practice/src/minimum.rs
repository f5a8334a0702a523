//! Azure's "minimum validator": the checks v1 makes on every indexed attribute of a stored instance, and
//! v2 on its core tags (docs/contract.md §3.6). They look at the first value only, and say why in their own words:
//! `Dicom element 'PatientID' failed validation for VR 'LO': Value contains invalid character.`
//!
//! Two levels, as upstream: `Strict` (v1) keeps trailing NUL bytes, so a NUL anywhere is an invalid
//! character; `Lenient` (v2's core tags) drops trailing NUL padding first.

use dicom_core::{Tag, VR};

use super::tags::tag_text;
use dicomlab_dicom::vr;

/// How much padding is forgiven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Padding {
    /// v1: only trailing spaces are padding.
    Strict,
    /// v2 core tags: trailing NULs are padding too.
    Lenient,
}

/// The first value of an element as the check sees it: trailing spaces dropped (UI: trailing NULs too),
/// and at the lenient level trailing NULs as well.
fn first_value(vr: VR, raw: &str, level: Padding) -> String {
    let first = raw.split('\\').next().unwrap_or("");
    let mut v = first.trim_end_matches(' ');
    if vr == VR::UI {
        v = v.trim_end_matches(['\0', ' ']);
    }
    if level == Padding::Lenient {
        v = v.trim_end_matches('\0');
    }
    v.to_string()
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\u{1b}')
}

const INVALID_CHARACTER: &str = "Value contains invalid character.";

fn too_long(n: usize) -> String {
    format!("Value length exceeds maximum length of {n}.")
}

/// Why the first value of an element of this VR fails the minimum validator, if it does. `raw` is the
/// element's whole text (values separated by `\`).
pub(crate) fn check(vr: VR, raw: &str, level: Padding) -> Option<String> {
    let v = first_value(vr, raw, level);
    if v.is_empty() {
        // Empty values are allowed (AS's fixed length aside, which only a present value can break).
        return None;
    }
    let chars = v.chars().count();
    match vr {
        VR::AE | VR::CS | VR::SH if chars > 16 => Some(too_long(16)),
        VR::AS if chars != 4 => Some("Value length is not 4.".into()),
        VR::DA if !vr::is_valid_date(&v) => Some("Value cannot be parsed as a valid date.".into()),
        VR::DT if vr::check_str(VR::DT, &v).is_err() => {
            Some("Value cannot be parsed as a valid DateTime.".into())
        }
        VR::TM if vr::check_str(VR::TM, &v).is_err() => {
            Some("Value cannot be parsed as a valid Time.".into())
        }
        VR::IS if vr::check_str(VR::IS, &v).is_err() => {
            Some("Value cannot be parsed as a valid integer string.".into())
        }
        VR::LO if chars > 64 => Some(too_long(64)),
        VR::LO if v.contains('\\') || has_control(&v) => Some(INVALID_CHARACTER.into()),
        VR::PN => check_person_name(&v),
        VR::UI if chars > 64
            || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            || !v.ends_with(|c: char| c.is_ascii_digit()) =>
        {
            Some("DICOM Identifier is invalid. Value length should not exceed the maximum length of 64 characters. Value should contain characters in '0'-'9' and '.'. Each component must start with non-zero number.".into())
        }
        _ => None,
    }
}

fn check_person_name(v: &str) -> Option<String> {
    let groups: Vec<&str> = v.split('=').collect();
    if groups.len() > 3 {
        return Some("Value contains more than 3 groups.".into());
    }
    for group in &groups {
        if group.chars().count() > 64 {
            return Some("One or more group of person name exceeds maxium length of 64.".into());
        }
        if has_control(group) {
            return Some(INVALID_CHARACTER.into());
        }
    }
    if groups.iter().any(|g| g.split('^').count() > 5) {
        return Some("Value contains more than 5 components.".into());
    }
    None
}

/// The element's name in the message: its keyword, or its tag when the dictionary has none.
fn name(tag: Tag) -> String {
    dicomlab_dicom::tags::keyword(tag).map_or_else(|| tag_text(tag), str::to_string)
}

/// The ErrorComment of a failed check: `DICOM100: (0010,0020) - Dicom element 'PatientID' failed
/// validation for VR 'LO': Value contains invalid character.`
pub(crate) fn comment(tag: Tag, vr: VR, why: &str) -> String {
    format!(
        "DICOM100: {} - Dicom element '{}' failed validation for VR '{vr}': {why}",
        tag_text(tag),
        name(tag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_dictionary_std::tags;

    #[test]
    fn a_nul_in_a_long_string_is_invalid_in_v1_and_padding_in_v2() {
        let why = check(VR::LO, "Before Null Character, \0", Padding::Strict).expect("invalid");
        assert_eq!(
            comment(tags::PATIENT_ID, VR::LO, &why),
            "DICOM100: (0010,0020) - Dicom element 'PatientID' failed validation for VR 'LO': Value contains invalid character."
        );
        assert_eq!(check(VR::LO, "123\0", Padding::Lenient), None);
        assert!(check(VR::LO, "\u{0}123\u{0}", Padding::Lenient).is_some());
        assert_eq!(check(VR::LO, "123 ", Padding::Strict), None);
    }

    #[test]
    fn only_the_first_value_is_checked() {
        assert_eq!(
            check(VR::CS, "OT\\WAY_TOO_LONG_FOR_A_CS", Padding::Strict),
            None
        );
        assert_eq!(
            check(VR::CS, "WAY_TOO_LONG_FOR_A_CS", Padding::Strict).as_deref(),
            Some("Value length exceeds maximum length of 16.")
        );
        // Lower case is no reason: the minimum validator counts, it does not read.
        assert_eq!(check(VR::CS, "ot", Padding::Strict), None);
    }

    #[test]
    fn dates_names_and_uids() {
        assert_eq!(
            check(VR::DA, "20221301", Padding::Strict).as_deref(),
            Some("Value cannot be parsed as a valid date.")
        );
        assert_eq!(check(VR::DA, "20220315", Padding::Strict), None);
        assert_eq!(
            check(VR::PN, "a=b=c=d", Padding::Strict).as_deref(),
            Some("Value contains more than 3 groups.")
        );
        assert_eq!(
            check(VR::PN, "a^b^c^d^e^f", Padding::Strict).as_deref(),
            Some("Value contains more than 5 components.")
        );
        assert_eq!(check(VR::UI, "1.2.3\0", Padding::Strict), None);
        assert!(check(VR::UI, "1.2.a", Padding::Strict).is_some());
        assert_eq!(check(VR::IS, "0003", Padding::Strict), None);
        assert!(check(VR::IS, "3.5", Padding::Strict).is_some());
    }
}
