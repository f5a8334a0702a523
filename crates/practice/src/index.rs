//! What the service can search on and how values are normalised for matching (docs/contract.md §5.2–5.3, §8.8):
//! string VRs match exactly but without case, PN also without accents, dates compare as text in
//! `yyyyMMdd` form, numbers as numbers.

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;

use dicomlab_dicom::json::{first_value_str, tag_key};

pub use dicomlab_dicom::Level;

/// A core searchable attribute that is not a UID column.
#[derive(Debug, Clone, Copy)]
pub struct CoreAttribute {
    pub tag: Tag,
    pub vr: VR,
    pub level: Level,
}

const fn core(tag: Tag, vr: VR, level: Level) -> CoreAttribute {
    CoreAttribute { tag, vr, level }
}

/// Contract §5.2. The three UIDs are columns of the instance table and are handled apart.
pub const CORE_ATTRIBUTES: &[CoreAttribute] = &[
    core(tags::PATIENT_NAME, VR::PN, Level::Study),
    core(tags::PATIENT_ID, VR::LO, Level::Study),
    core(tags::PATIENT_BIRTH_DATE, VR::DA, Level::Study),
    core(tags::ACCESSION_NUMBER, VR::SH, Level::Study),
    core(tags::REFERRING_PHYSICIAN_NAME, VR::PN, Level::Study),
    core(tags::STUDY_DATE, VR::DA, Level::Study),
    core(tags::STUDY_DESCRIPTION, VR::LO, Level::Study),
    core(tags::MODALITY, VR::CS, Level::Series),
    core(
        tags::PERFORMED_PROCEDURE_STEP_START_DATE,
        VR::DA,
        Level::Series,
    ),
    core(tags::MANUFACTURER_MODEL_NAME, VR::LO, Level::Series),
];

/// The UID attributes and their level.
pub const UID_ATTRIBUTES: &[(Tag, Level)] = &[
    (tags::STUDY_INSTANCE_UID, Level::Study),
    (tags::SERIES_INSTANCE_UID, Level::Series),
    (tags::SOP_INSTANCE_UID, Level::Instance),
];

/// Whether a tag is a core searchable attribute at any level (incl. UIDs and ModalitiesInStudy).
pub fn is_core_searchable(tag: Tag) -> bool {
    tag == tags::MODALITIES_IN_STUDY
        || UID_ATTRIBUTES.iter().any(|(t, _)| *t == tag)
        || CORE_ATTRIBUTES.iter().any(|a| a.tag == tag)
}

/// VRs stored and compared as numbers.
pub fn is_numeric(vr: VR) -> bool {
    matches!(
        vr,
        VR::IS | VR::DS | VR::SL | VR::SS | VR::UL | VR::US | VR::FL | VR::FD | VR::SV | VR::UV
    )
}

/// Lower case without accents: `Hall^X^Tá` → `hall^x^ta`.
pub fn fold(s: &str) -> String {
    s.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The normalised form of a value for the index (and of a query value for matching).
/// Returns `(text, number)`; exactly one is set, or neither when the value cannot be indexed.
pub fn normalise(vr: VR, raw: &str) -> (Option<String>, Option<f64>) {
    let v = raw.trim_end_matches(['\0', ' ']).trim_start();
    if v.is_empty() {
        return (None, None);
    }
    if is_numeric(vr) {
        return (None, v.parse::<f64>().ok());
    }
    match vr {
        VR::PN => (Some(fold(v)), None),
        VR::UI | VR::DA | VR::DT | VR::TM => (Some(v.to_string()), None),
        _ => (Some(v.to_lowercase()), None),
    }
}

/// The value to index for `tag` in a stored instance's metadata (first value only, docs/contract.md §8.7).
pub fn index_value(
    metadata: &Map<String, Value>,
    tag: Tag,
    vr: VR,
) -> (Option<String>, Option<f64>) {
    match first_value_str(metadata, tag) {
        Some(v) => normalise(vr, &v),
        None => (None, None),
    }
}

/// Whether an element holds more than one value (only the first is indexed; the service warns).
pub fn is_multi_valued(metadata: &Map<String, Value>, tag: Tag) -> bool {
    metadata
        .get(&tag_key(tag))
        .and_then(|e| e.get("Value"))
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(fold("Hall^X^Tá"), "hall^x^ta");
        assert_eq!(
            normalise(VR::PN, "Anony Mous"),
            (Some("anony mous".into()), None)
        );
        assert_eq!(normalise(VR::IS, "0003"), (None, Some(3.0)));
        assert_eq!(normalise(VR::CS, "OT "), (Some("ot".into()), None));
        assert_eq!(normalise(VR::LO, "  "), (None, None));
    }
}
