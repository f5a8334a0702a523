//! DICOM JSON (PS3.18 F.2) written the way the real service's fo-dicom writer does (docs/contract.md §3.4): keys are
//! upper-case 8-hex tags in ascending order, empty elements are `{"vr":"XX"}`, PN values are objects with
//! `Alphabetic`, IS/DS become numbers when they parse, and bulk VRs are left out (metadata never has them).

use dicom_core::value::{PrimitiveValue, Value as DicomValue};
use dicom_core::{Tag, VR};
use dicom_object::InMemDicomObject;
use serde_json::{Map, Number, Value, json};

/// The JSON key of a tag: `00100010`.
pub fn tag_key(tag: Tag) -> String {
    format!("{:04X}{:04X}", tag.0, tag.1)
}

/// Parses an 8-hex JSON key back into a tag.
pub fn parse_tag_key(key: &str) -> Option<Tag> {
    if key.len() != 8 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let g = u16::from_str_radix(&key[..4], 16).ok()?;
    let e = u16::from_str_radix(&key[4..], 16).ok()?;
    Some(Tag(g, e))
}

/// The dataset (never the file-meta group) as a DICOM JSON object, without bulk data.
pub fn dataset_to_json(obj: &InMemDicomObject) -> Map<String, Value> {
    let mut out = Map::new();
    for elem in obj.iter() {
        let tag = elem.header().tag;
        let vr = elem.vr();
        if tag.0 == 0x0002 || super::vr::is_bulk(vr) {
            continue;
        }
        let value = match elem.value() {
            DicomValue::Sequence(seq) => {
                let items: Vec<Value> = seq
                    .items()
                    .iter()
                    .map(|i| Value::Object(dataset_to_json(i)))
                    .collect();
                element_json(vr, (!items.is_empty()).then_some(items))
            }
            DicomValue::PixelSequence(_) => continue,
            DicomValue::Primitive(p) => element_json(vr, primitive_values(vr, p)),
        };
        out.insert(tag_key(tag), value);
    }
    out
}

fn element_json(vr: VR, values: Option<Vec<Value>>) -> Value {
    match values {
        Some(v) => json!({"vr": vr.to_string(), "Value": v}),
        None => json!({"vr": vr.to_string()}),
    }
}

fn trim(s: &str) -> &str {
    s.trim_end_matches(['\0', ' '])
}

/// A value without its VR's padding: trailing spaces, and trailing NULs for UI (whose padding they are).
fn unpad(vr: VR, s: &str) -> &str {
    if vr == VR::UI {
        trim(s)
    } else {
        s.trim_end_matches(' ')
    }
}

/// The JSON values of a primitive element, or `None` when it is empty.
fn primitive_values(vr: VR, p: &PrimitiveValue) -> Option<Vec<Value>> {
    if p.multiplicity() == 0 {
        return None;
    }
    let values: Vec<Value> = match vr {
        VR::US | VR::UL | VR::SS | VR::SL | VR::SV | VR::UV => p
            .to_multi_int::<i64>()
            .ok()?
            .into_iter()
            .map(Value::from)
            .collect(),
        VR::FL | VR::FD => p
            .to_multi_float64()
            .ok()?
            .into_iter()
            .map(float_value)
            .collect(),
        VR::AT => match p {
            PrimitiveValue::Tags(tags) => tags.iter().map(|t| Value::from(tag_key(*t))).collect(),
            _ => return None,
        },
        _ => {
            // The raw text: a NUL that pads a value (`X\0`) is kept, as fo-dicom keeps it; only the VR's own
            // padding goes (spaces, and for UI the NUL).
            let raw = p.to_raw_str();
            let strs: Vec<&str> = if matches!(vr, VR::LT | VR::ST | VR::UT | VR::UR) {
                vec![raw.as_ref()]
            } else {
                raw.split('\\').collect()
            };
            if strs.iter().all(|s| trim(s).trim_start().is_empty()) {
                return None;
            }
            strs.iter()
                .map(|s| string_value(vr, unpad(vr, s)))
                .collect()
        }
    };
    (!values.is_empty()).then_some(values)
}

fn float_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

fn string_value(vr: VR, s: &str) -> Value {
    match vr {
        VR::PN => {
            if s.is_empty() {
                return Value::Null;
            }
            let mut obj = Map::new();
            for (name, group) in ["Alphabetic", "Ideographic", "Phonetic"]
                .iter()
                .zip(s.split('='))
            {
                if !group.is_empty() {
                    obj.insert((*name).to_string(), Value::from(group));
                }
            }
            Value::Object(obj)
        }
        VR::IS => s
            .trim_matches([' ', '\0'])
            .parse::<i64>()
            .map_or_else(|_| Value::from(s), Value::from),
        VR::DS => s
            .trim_matches([' ', '\0'])
            .parse::<f64>()
            .map_or_else(|_| Value::from(s), float_value),
        _ if s.is_empty() => Value::Null,
        _ => Value::from(s),
    }
}

/// The first value of an element in a DICOM JSON object, as text (PN: its Alphabetic group).
pub fn first_value_str(dataset: &Map<String, Value>, tag: Tag) -> Option<String> {
    let first = dataset.get(&tag_key(tag))?.get("Value")?.get(0)?;
    match first {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => o
            .get("Alphabetic")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, dicom_value};
    use dicom_dictionary_std::tags;

    #[test]
    fn writes_fo_dicom_shapes() {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(
            tags::PATIENT_NAME,
            VR::PN,
            PrimitiveValue::from("Anony Mous"),
        ));
        obj.put(DataElement::new(
            tags::INSTANCE_NUMBER,
            VR::IS,
            PrimitiveValue::from("1 "),
        ));
        obj.put(DataElement::new(
            tags::ACCESSION_NUMBER,
            VR::SH,
            PrimitiveValue::Empty,
        ));
        obj.put(DataElement::new(
            tags::ROWS,
            VR::US,
            dicom_value!(U16, [979]),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_SPACING,
            VR::DS,
            PrimitiveValue::from("1\\0.5"),
        ));
        obj.put(DataElement::new(
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::from("DERIVED\\SECONDARY"),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            dicom_value!(U8, [1, 2]),
        ));
        let j = Value::Object(dataset_to_json(&obj));
        assert_eq!(
            j["00100010"],
            json!({"vr":"PN","Value":[{"Alphabetic":"Anony Mous"}]})
        );
        assert_eq!(j["00200013"], json!({"vr":"IS","Value":[1]}));
        assert_eq!(j["00080050"], json!({"vr":"SH"}));
        assert_eq!(j["00280010"], json!({"vr":"US","Value":[979]}));
        assert_eq!(j["00280030"], json!({"vr":"DS","Value":[1, 0.5]}));
        assert_eq!(
            j["00080008"],
            json!({"vr":"CS","Value":["DERIVED","SECONDARY"]})
        );
        assert!(j.get("7FE00010").is_none());
        let keys: Vec<_> = j
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn tag_keys_round_trip() {
        assert_eq!(parse_tag_key("0020000D"), Some(Tag(0x0020, 0x000D)));
        assert_eq!(parse_tag_key("0020000d"), Some(Tag(0x0020, 0x000D)));
        assert_eq!(parse_tag_key("0020000"), None);
        assert_eq!(tag_key(Tag(0x7FE0, 0x0010)), "7FE00010");
    }
}
