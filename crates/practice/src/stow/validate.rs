//! Validating a stored instance as Azure's StoreDatasetValidator does: the required attributes, the
//! minimum validator on the indexed ones (v1) or the core tags (v2, leniently), and in v2 every other
//! element against its VR — failures there are warnings and the element is dropped from the metadata.

use dicom_core::value::Value as DicomValue;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicomlab_dicom::reader::{Refusal, Scan};
use dicomlab_dicom::uid::trim_uid;
use dicomlab_dicom::vr;

use super::outcome::{Outcome, reason};
use crate::ApiVersion;
use crate::eqt::EqtDef;
use crate::index::CORE_ATTRIBUTES;
use crate::minimum;
use crate::tags::tag_text;

/// The UIDs of the study, series and instance.
const UIDS: [Tag; 3] = [
    tags::STUDY_INSTANCE_UID,
    tags::SERIES_INSTANCE_UID,
    tags::SOP_INSTANCE_UID,
];

/// The UIDs that name an instance, each `None` when absent, empty or multi-valued.
pub(super) struct Identifiers {
    pub(super) class: Option<String>,
    pub(super) sop: Option<String>,
    pub(super) study: Option<String>,
    pub(super) series: Option<String>,
}

impl Identifiers {
    pub(super) fn of(obj: &InMemDicomObject) -> Self {
        Self {
            class: single_str(obj, tags::SOP_CLASS_UID),
            sop: single_str(obj, tags::SOP_INSTANCE_UID),
            study: single_str(obj, tags::STUDY_INSTANCE_UID),
            series: single_str(obj, tags::SERIES_INSTANCE_UID),
        }
    }
}

/// What validation found.
pub(super) struct Checked {
    /// One error comment per attribute (the first found).
    pub(super) comments: Vec<String>,
    /// Whether the instance fails (v2: only the core tags' errors fail it).
    pub(super) fails: bool,
    /// v2: the elements whose failures are warnings, dropped from the metadata.
    pub(super) dropped: Vec<Tag>,
}

/// The indexed attributes: the core ones (their dictionary VR), then the extended query tags (theirs).
pub(super) fn indexed_attributes(eqts: &[EqtDef]) -> Vec<(Tag, Option<VR>)> {
    CORE_ATTRIBUTES
        .iter()
        .map(|a| (a.tag, None))
        .chain(eqts.iter().map(|t| (t.tag, Some(t.vr))))
        .collect()
}

fn missing(tag: Tag) -> String {
    format!(
        "DICOM100: {} - The required tag '{}' is missing.",
        tag_text(tag),
        tag_text(tag)
    )
}

/// Validation as upstream's StoreDatasetValidator does it, one comment per attribute (the first found):
/// the required attributes (the first one missing, else a study other than the path's, else PatientID),
/// then the minimum validator (v1: every indexed attribute; v2: the core tags, leniently), then in v2
/// everything else, whose failures are warnings and leave the metadata.
pub(super) fn validate(
    obj: &InMemDicomObject,
    version: ApiVersion,
    study_in_path: Option<&str>,
    ids: &Identifiers,
    indexed: &[(Tag, Option<VR>)],
) -> Checked {
    let mut errors: Vec<(Tag, String)> = Vec::new();
    let patient_id_value = single_str(obj, tags::PATIENT_ID).is_some();
    if let Some(error) = required_error(obj, version, study_in_path, ids, patient_id_value) {
        errors.push(error);
    }
    minimum_errors(obj, version, indexed, &mut errors);
    // In v2 only the core tags' errors fail the instance; the rest warn and are dropped.
    let core_errors = errors.len();
    let dropped = if version.v2 {
        element_warnings(obj, patient_id_value, &mut errors)
    } else {
        Vec::new()
    };
    let comments: Vec<String> = errors.into_iter().map(|(_, c)| c).collect();
    let fails = if version.v2 {
        core_errors > 0
    } else {
        !comments.is_empty()
    };
    Checked {
        comments,
        fails,
        dropped,
    }
}

/// The required attributes: the first UID missing, else a study other than the path's, else PatientID
/// (absent; in v1 also empty).
fn required_error(
    obj: &InMemDicomObject,
    version: ApiVersion,
    study_in_path: Option<&str>,
    ids: &Identifiers,
    patient_id_value: bool,
) -> Option<(Tag, String)> {
    let patient_id_present = obj.get(tags::PATIENT_ID).is_some();
    let first_missing = [
        (tags::SOP_CLASS_UID, &ids.class),
        (tags::STUDY_INSTANCE_UID, &ids.study),
        (tags::SERIES_INSTANCE_UID, &ids.series),
        (tags::SOP_INSTANCE_UID, &ids.sop),
    ]
    .into_iter()
    .find_map(|(tag, value)| value.is_none().then_some(tag));
    if let Some(tag) = first_missing {
        Some((tag, missing(tag)))
    } else if let (Some(expected), Some(found)) = (study_in_path, &ids.study)
        && !trim_uid(expected).trim().eq_ignore_ascii_case(found)
    {
        Some((
            tags::STUDY_INSTANCE_UID,
            format!(
                "DICOM100: {} - The StudyInstanceUid in the payload does not match the specified StudyInstanceUid.",
                tag_text(tags::STUDY_INSTANCE_UID)
            ),
        ))
    } else if !patient_id_present || (!version.v2 && !patient_id_value) {
        Some((tags::PATIENT_ID, missing(tags::PATIENT_ID)))
    } else {
        None
    }
}

/// The minimum validator: v2 on the core tags (leniently), v1 on upstream's core query tags (the UIDs,
/// ModalitiesInStudy and the core attributes), then the extended query tags. One comment per tag.
fn minimum_errors(
    obj: &InMemDicomObject,
    version: ApiVersion,
    indexed: &[(Tag, Option<VR>)],
    errors: &mut Vec<(Tag, String)>,
) {
    let (checked, level): (Vec<Tag>, _) = if version.v2 {
        let mut core = UIDS.to_vec();
        core.extend([tags::PATIENT_ID, tags::SOP_CLASS_UID]);
        (core, minimum::Padding::Lenient)
    } else {
        let mut all = UIDS.to_vec();
        all.push(tags::MODALITIES_IN_STUDY);
        all.extend(indexed.iter().map(|(t, _)| *t));
        (all, minimum::Padding::Strict)
    };
    for tag in checked {
        if let Some(comment) = minimum_check(obj, tag, level)
            && !errors.iter().any(|(t, _)| *t == tag)
        {
            errors.push((tag, comment));
        }
    }
}

/// v2: every element against its VR (an empty PatientID as missing); a failure is a warning, and the
/// element (unless a UID) is dropped. Answers the dropped tags.
fn element_warnings(
    obj: &InMemDicomObject,
    patient_id_value: bool,
    errors: &mut Vec<(Tag, String)>,
) -> Vec<Tag> {
    let mut dropped = Vec::new();
    for e in obj.iter() {
        let tag = e.header().tag;
        let comment = if tag == tags::PATIENT_ID && !patient_id_value {
            Some(missing(tag))
        } else {
            validate_element(obj, tag, None)
        };
        if let Some(comment) = comment
            && !errors.iter().any(|(t, _)| *t == tag)
        {
            errors.push((tag, comment));
            if !UIDS.contains(&tag) {
                dropped.push(tag);
            }
        }
    }
    dropped
}

/// Memory a validation may hold for a scanned file: its header parsed (dicom-object's elements), its
/// metadata as JSON, and a margin.
pub(super) fn validation_bytes(scan: &Scan) -> u64 {
    scan.header_len
        .saturating_mul(4)
        .saturating_add(scan.header_elements.saturating_mul(256))
        .saturating_add(64 * 1024)
}

/// The ErrorComment for a file the reader refused.
fn refusal_comment(why: &Refusal) -> String {
    match why.tag() {
        Some(tag) => format!("DICOM100: {} - {why}", tag_text(tag)),
        None => format!("DICOM100: The file is not valid DICOM: {why}"),
    }
}

pub(super) fn refused(
    why: &Refusal,
    class: Option<String>,
    sop: Option<String>,
) -> (Outcome, bool) {
    tracing::info!("stored body refused: {why}");
    (
        Outcome::Failed {
            reason: reason::VALIDATION_FAILED,
            class,
            sop,
            comments: vec![refusal_comment(why)],
        },
        false,
    )
}

/// The single string value of an element, trimmed; `None` when absent, empty or multi-valued.
pub(super) fn single_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.get(tag)?;
    if e.value().multiplicity() != 1 {
        return None;
    }
    e.value()
        .to_str()
        .ok()
        .map(|s| trim_uid(&s).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Azure's minimum validator on an element's first value (v1's indexed attributes, v2's PatientID): the
/// error comment when it fails. The raw text is checked: a NUL is padding only where the level says so.
fn minimum_check(obj: &InMemDicomObject, tag: Tag, level: minimum::Padding) -> Option<String> {
    let e = obj.get(tag)?;
    let DicomValue::Primitive(p) = e.value() else {
        return None;
    };
    if vr::is_bulk(e.vr()) {
        return None;
    }
    let why = minimum::check(e.vr(), &p.to_raw_str(), level)?;
    Some(minimum::comment(tag, e.vr(), &why))
}

/// Checks every string value of an element against its VR; the first failure as an error comment.
fn validate_element(obj: &InMemDicomObject, tag: Tag, vr_override: Option<VR>) -> Option<String> {
    let e = obj.get(tag)?;
    let vr = vr_override.unwrap_or(e.vr());
    let DicomValue::Primitive(p) = e.value() else {
        return None;
    };
    if matches!(vr, VR::LT | VR::ST | VR::UT | VR::UR | VR::UC) || vr::is_bulk(vr) {
        return None;
    }
    let values = p.to_multi_str();
    for v in values.iter() {
        if let Err(why) = vr::check_str(vr, v) {
            return Some(format!(
                "DICOM100: {} - Content \"{}\" does not validate VR {}: {}",
                tag_text(tag),
                v.trim_end_matches(['\0', ' ']),
                vr,
                why
            ));
        }
    }
    None
}
