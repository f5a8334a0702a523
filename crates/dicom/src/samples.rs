//! The lab's three sample instances (docs/contract.md §0.1), produced by code: the same Study, Series and SOP
//! Instance UIDs and attributes as the official download, 979×985 RGB secondary-capture images of a red
//! triangle, a green square and a blue circle. Checks work by UID, so either set passes them.
//!
//! Other labs draw their own: [`shape_instance`] makes a secondary-capture image of a shape in a colour,
//! with the UIDs and attributes the lab file declares.

use std::path::{Path, PathBuf};

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR, dicom_value};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

/// The lab study.
pub const STUDY_UID: &str = "1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420";
/// Series 1: red and green.
pub const SERIES1_UID: &str = "1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652";
/// Series 2: blue.
pub const SERIES2_UID: &str = "1.2.826.0.1.3680043.8.498.77033797676425927098669402985243398207";
pub const RED_UID: &str = "1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395";
pub const GREEN_UID: &str = "1.2.826.0.1.3680043.8.498.12714725698140337137334606354172323212";
pub const BLUE_UID: &str = "1.2.826.0.1.3680043.8.498.13273713909719068980354078852867170114";
/// Secondary Capture Image Storage.
pub const SOP_CLASS_UID: &str = "1.2.840.10008.5.1.4.1.1.7";
pub const ROWS: u16 = 979;
pub const COLUMNS: u16 = 985;
/// One RGB frame: 979 × 985 × 3.
pub const FRAME_BYTES: usize = ROWS as usize * COLUMNS as usize * 3;

/// dicomlab's implementation class UID (under the same root the samples use for examples).
const IMPLEMENTATION_UID: &str = "1.2.826.0.1.3680043.8.498.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Triangle,
    Square,
    Circle,
}

/// One of the three lab instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The official file name, e.g. `red-triangle.dcm`.
    pub file_name: &'static str,
    /// A short name for lists: `red-triangle`.
    pub name: &'static str,
    pub study_uid: &'static str,
    pub series_uid: &'static str,
    pub sop_uid: &'static str,
    instance_number: u32,
    series_number: u32,
    comment: &'static str,
    shape: Shape,
    rgb: [u8; 3],
}

/// The three samples, in the order the lab stores them.
pub const SAMPLES: [Sample; 3] = [
    Sample {
        file_name: "red-triangle.dcm",
        name: "red-triangle",
        study_uid: STUDY_UID,
        series_uid: SERIES1_UID,
        sop_uid: RED_UID,
        instance_number: 1,
        series_number: 1,
        comment: "Fake DICOM - Red Triangle",
        shape: Shape::Triangle,
        rgb: [237, 28, 36],
    },
    Sample {
        file_name: "green-square.dcm",
        name: "green-square",
        study_uid: STUDY_UID,
        series_uid: SERIES1_UID,
        sop_uid: GREEN_UID,
        instance_number: 2,
        series_number: 1,
        comment: "Fake DICOM - Green Square",
        shape: Shape::Square,
        rgb: [34, 177, 76],
    },
    Sample {
        file_name: "blue-circle.dcm",
        name: "blue-circle",
        study_uid: STUDY_UID,
        series_uid: SERIES2_UID,
        sop_uid: BLUE_UID,
        instance_number: 1,
        series_number: 2,
        comment: "Fake DICOM - Blue Circle",
        shape: Shape::Circle,
        rgb: [63, 72, 204],
    },
];

const BACKGROUND: [u8; 3] = [195, 195, 195];

impl Sample {
    /// Finds a sample by SOP Instance UID.
    pub fn by_sop(sop_uid: &str) -> Option<&'static Sample> {
        SAMPLES.iter().find(|s| s.sop_uid == sop_uid)
    }

    /// Finds a sample by its short name (`red-triangle`): a lab's built-in generator.
    pub fn by_name(name: &str) -> Option<&'static Sample> {
        SAMPLES.iter().find(|s| s.name == name)
    }

    fn inside(&self, x: f64, y: f64) -> bool {
        match self.shape {
            // Apex at (477.5, 237), base on row 717 from column 170 to 785.
            Shape::Triangle => {
                (237.0..=717.0).contains(&y) && (x - 477.5).abs() <= (y - 237.0) / 480.0 * 307.5
            }
            Shape::Square => (240.0..=736.0).contains(&y) && (236.0..=748.0).contains(&x),
            Shape::Circle => {
                let (dx, dy) = ((x - 491.0) / 296.5, (y - 510.5) / 275.0);
                dx * dx + dy * dy <= 1.0
            }
        }
    }

    /// The interleaved RGB frame.
    pub fn pixels(&self) -> Vec<u8> {
        let mut px = Vec::with_capacity(FRAME_BYTES + 1);
        for y in 0..ROWS {
            for x in 0..COLUMNS {
                let c = if self.inside(f64::from(x), f64::from(y)) {
                    self.rgb
                } else {
                    BACKGROUND
                };
                px.extend_from_slice(&c);
            }
        }
        px
    }

    /// The dataset: the 40 elements of the official file.
    pub fn dataset(&self) -> InMemDicomObject {
        self.dataset_with(self.study_uid, self.series_uid, self.sop_uid)
    }

    /// Writes the Part-10 file with these UIDs (its own, or those of a lab that reuses the picture for
    /// its own dataset) to `out`: the header as dicom-rs encodes it, then the pixel data straight from
    /// the drawn frame (the encoder copies a value into its tokens: 4 MB more for each file).
    pub fn write_with(
        &self,
        study: &str,
        series: &str,
        sop: &str,
        out: &mut impl std::io::Write,
    ) -> Result<(), SampleError> {
        let io = |source| SampleError::Io {
            path: PathBuf::from(self.file_name),
            source,
        };
        let header = self.header_with(study, series, sop).with_meta(meta())?;
        header.write_all(&mut *out)?;
        let pixels = self.pixels();
        // Pixel Data (7FE0,0010), OB, explicit VR little endian, the last element; OB values have
        // even length: one padding byte, as in the official files.
        let len = u32::try_from(pixels.len() + pixels.len() % 2).unwrap_or(u32::MAX);
        out.write_all(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0])
            .map_err(io)?;
        out.write_all(&len.to_le_bytes()).map_err(io)?;
        out.write_all(&pixels).map_err(io)?;
        if pixels.len() % 2 == 1 {
            out.write_all(&[0]).map_err(io)?;
        }
        Ok(())
    }

    fn dataset_with(&self, study: &str, series: &str, sop: &str) -> InMemDicomObject {
        let mut pixels = self.pixels();
        // OB values have even length: one padding byte, as in the official files.
        pixels.push(0);
        let mut obj = self.header_with(study, series, sop);
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(pixels.into()),
        ));
        obj
    }

    /// Every element but the pixel data.
    fn header_with(&self, study: &str, series: &str, sop: &str) -> InMemDicomObject {
        let s = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
        let empty = |tag, vr| DataElement::new(tag, vr, PrimitiveValue::Empty);
        let us = |tag, v: u16| DataElement::new(tag, VR::US, dicom_value!(U16, [v]));
        InMemDicomObject::from_element_iter([
            s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
            DataElement::new(
                tags::IMAGE_TYPE,
                VR::CS,
                dicom_value!(Strs, ["DERIVED", "SECONDARY", "OTHER"]),
            ),
            s(tags::SOP_CLASS_UID, VR::UI, SOP_CLASS_UID),
            s(tags::SOP_INSTANCE_UID, VR::UI, sop),
            s(tags::STUDY_DATE, VR::DA, "20200922"),
            empty(tags::CONTENT_DATE, VR::DA),
            empty(tags::ACQUISITION_DATE_TIME, VR::DT),
            s(tags::STUDY_TIME, VR::TM, "120000"),
            empty(tags::CONTENT_TIME, VR::TM),
            empty(tags::ACCESSION_NUMBER, VR::SH),
            s(tags::MODALITY, VR::CS, "OT"),
            s(tags::CONVERSION_TYPE, VR::CS, "SYN"),
            s(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "Doctor Doc"),
            s(tags::PATIENT_NAME, VR::PN, "Anony Mous"),
            s(tags::PATIENT_ID, VR::LO, "ID1"),
            empty(tags::PATIENT_BIRTH_DATE, VR::DA),
            s(tags::PATIENT_SEX, VR::CS, "F"),
            s(tags::PATIENT_AGE, VR::AS, "024Y"),
            empty(tags::PATIENT_POSITION, VR::CS),
            s(tags::STUDY_INSTANCE_UID, VR::UI, study),
            s(tags::SERIES_INSTANCE_UID, VR::UI, series),
            s(tags::STUDY_ID, VR::SH, "1"),
            s(tags::SERIES_NUMBER, VR::IS, &self.series_number.to_string()),
            s(
                tags::INSTANCE_NUMBER,
                VR::IS,
                &self.instance_number.to_string(),
            ),
            empty(tags::PATIENT_ORIENTATION, VR::CS),
            empty(tags::LATERALITY, VR::CS),
            s(tags::IMAGE_COMMENTS, VR::LT, self.comment),
            us(tags::SAMPLES_PER_PIXEL, 3),
            s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"),
            us(tags::PLANAR_CONFIGURATION, 0),
            us(tags::ROWS, ROWS),
            us(tags::COLUMNS, COLUMNS),
            DataElement::new(tags::PIXEL_SPACING, VR::DS, dicom_value!(Strs, ["1", "1"])),
            us(tags::BITS_ALLOCATED, 8),
            us(tags::BITS_STORED, 8),
            us(tags::HIGH_BIT, 7),
            us(tags::PIXEL_REPRESENTATION, 0),
            us(tags::SMALLEST_IMAGE_PIXEL_VALUE, 0),
            us(tags::LARGEST_IMAGE_PIXEL_VALUE, 255),
        ])
    }

    /// The Part-10 file, in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SampleError> {
        let mut out = Vec::with_capacity(FRAME_BYTES + 4096);
        self.write_with(self.study_uid, self.series_uid, self.sop_uid, &mut out)?;
        Ok(out)
    }
}

/// A drawn instance of another lab: a shape in a colour on grey, `rows` × `columns`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeSpec {
    /// `triangle`, `square`, `circle`, `diamond` or `star`.
    pub shape: String,
    /// `#rrggbb`.
    pub color: String,
    #[serde(default = "default_side")]
    pub rows: u16,
    #[serde(default = "default_side")]
    pub columns: u16,
}

fn default_side() -> u16 {
    256
}

/// The largest side a lab may ask a generator for.
const MAX_SIDE: u16 = 2048;

impl ShapeSpec {
    /// What is wrong with it, in an instructor's words.
    pub fn validate(&self) -> Result<(), String> {
        if !["triangle", "square", "circle", "diamond", "star"].contains(&self.shape.as_str()) {
            return Err(format!(
                "'{}' is not a shape the generator draws (triangle, square, circle, diamond, star)",
                self.shape
            ));
        }
        if self.rgb().is_none() {
            return Err(format!(
                "'{}' is not a colour of the form #rrggbb",
                self.color
            ));
        }
        if !(8..=MAX_SIDE).contains(&self.rows) || !(8..=MAX_SIDE).contains(&self.columns) {
            return Err(format!("rows and columns must be between 8 and {MAX_SIDE}"));
        }
        Ok(())
    }

    fn rgb(&self) -> Option<[u8; 3]> {
        let h = self.color.strip_prefix('#')?;
        if h.len() != 6 || !h.is_ascii() {
            return None;
        }
        let c = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
        Some([c(0)?, c(2)?, c(4)?])
    }

    /// Whether (x, y) in unit coordinates (0..1, y down) is inside the shape.
    fn inside(&self, x: f64, y: f64) -> bool {
        let (dx, dy) = (x - 0.5, y - 0.5);
        match self.shape.as_str() {
            "triangle" => (0.2..=0.8).contains(&y) && dx.abs() <= (y - 0.2) / 0.6 * 0.32,
            "square" => dx.abs() <= 0.27 && dy.abs() <= 0.27,
            "circle" => dx * dx + dy * dy <= 0.3 * 0.3,
            "diamond" => dx.abs() + dy.abs() <= 0.33,
            _ => {
                // A five-pointed star: a radius that varies with the angle.
                let r = (dx * dx + dy * dy).sqrt();
                let a = dy.atan2(dx) + std::f64::consts::FRAC_PI_2;
                let k = (a * 5.0 / (2.0 * std::f64::consts::PI)).rem_euclid(1.0);
                let edge = 0.16 + 0.18 * (1.0 - 2.0 * (k - 0.5).abs());
                r <= edge
            }
        }
    }
}

/// A secondary-capture instance of a shape, with the given UIDs and the lab's attributes (keyword →
/// value; values are written with the keyword's dictionary VR).
pub fn shape_instance(
    spec: &ShapeSpec,
    study: &str,
    series: &str,
    sop: &str,
    attributes: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<u8>, SampleError> {
    let bad = |m: String| SampleError::Io {
        path: PathBuf::from(sop),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
    };
    spec.validate().map_err(bad)?;
    let (rows, cols) = (spec.rows, spec.columns);
    let px = shape_pixels(spec);
    let s = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let us = |tag, v: u16| DataElement::new(tag, VR::US, dicom_value!(U16, [v]));
    let mut obj = InMemDicomObject::from_element_iter([
        s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        s(tags::SOP_CLASS_UID, VR::UI, SOP_CLASS_UID),
        s(tags::SOP_INSTANCE_UID, VR::UI, sop),
        s(tags::MODALITY, VR::CS, "OT"),
        s(tags::CONVERSION_TYPE, VR::CS, "SYN"),
        s(tags::PATIENT_NAME, VR::PN, "Anony Mous"),
        s(tags::PATIENT_ID, VR::LO, "DICOMLAB"),
        s(tags::STUDY_INSTANCE_UID, VR::UI, study),
        s(tags::SERIES_INSTANCE_UID, VR::UI, series),
        s(tags::INSTANCE_NUMBER, VR::IS, "1"),
        us(tags::SAMPLES_PER_PIXEL, 3),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"),
        us(tags::PLANAR_CONFIGURATION, 0),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, cols),
        us(tags::BITS_ALLOCATED, 8),
        us(tags::BITS_STORED, 8),
        us(tags::HIGH_BIT, 7),
        us(tags::PIXEL_REPRESENTATION, 0),
        DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(px.into())),
    ]);
    for (keyword, value) in attributes {
        let Some(attr) = super::tags::resolve(keyword) else {
            return Err(bad(format!("'{keyword}' is not a DICOM keyword")));
        };
        let vr = attr.vr.unwrap_or(VR::LO);
        if super::vr::is_bulk(vr) || vr == VR::SQ {
            return Err(bad(format!(
                "'{keyword}' cannot be set from a lab file (VR {vr:?})"
            )));
        }
        let value = attribute_value(vr, keyword, value).map_err(bad)?;
        obj.put(DataElement::new(attr.tag, vr, value));
    }
    let file = obj.with_meta(meta())?;
    let mut out = Vec::new();
    file.write_all(&mut out)?;
    Ok(out)
}

/// The shape's RGB pixels, row by row, padded to an even length.
fn shape_pixels(spec: &ShapeSpec) -> Vec<u8> {
    let rgb = spec.rgb().unwrap_or(BACKGROUND);
    let (rows, cols) = (spec.rows, spec.columns);
    let mut px = Vec::with_capacity(usize::from(rows) * usize::from(cols) * 3 + 1);
    for y in 0..rows {
        for x in 0..cols {
            let inside = spec.inside(
                (f64::from(x) + 0.5) / f64::from(cols),
                (f64::from(y) + 0.5) / f64::from(rows),
            );
            px.extend_from_slice(if inside { &rgb } else { &BACKGROUND });
        }
    }
    if px.len() % 2 == 1 {
        px.push(0);
    }
    px
}

/// A lab attribute's value as its VR holds it (numbers parsed, text checked); the reason when not.
fn attribute_value(vr: VR, keyword: &str, value: &str) -> Result<PrimitiveValue, String> {
    let number = |_| format!("{keyword} = '{value}' is not a number");
    Ok(match vr {
        VR::US => dicom_value!(U16, [value.trim().parse::<u16>().map_err(number)?]),
        VR::UL => dicom_value!(U32, [value.trim().parse::<u32>().map_err(number)?]),
        VR::SS => dicom_value!(I16, [value.trim().parse::<i16>().map_err(number)?]),
        VR::SL => dicom_value!(I32, [value.trim().parse::<i32>().map_err(number)?]),
        _ => {
            if let Err(why) = super::vr::check_str(vr, value) {
                return Err(format!("{keyword} = '{value}': {why}"));
            }
            PrimitiveValue::from(value)
        }
    })
}

/// Writes `bytes` to `path` through a temporary file of its own, renamed into place: two writers at
/// once each leave a whole file, never a half one or an error.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SampleError> {
    write_atomically_with(path, |w| {
        w.write_all(bytes).map_err(|source| SampleError::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Writes what `write` writes to `path` through a temporary file of its own (buffered), renamed into
/// place, as [`write_atomically`] does.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<(), SampleError>,
) -> Result<(), SampleError> {
    let io = |source| SampleError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let prefix = format!(
        ".{}.",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    // Sample files are not private: the usual mode, not a temporary file's 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let tmp = builder.tempfile_in(dir).map_err(io)?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, tmp);
    // A write that failed names the file it was for.
    write(&mut out).map_err(|e| match e {
        SampleError::Io { source, .. } => io(source),
        other => other,
    })?;
    let tmp = out.into_inner().map_err(|e| io(e.into_error()))?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

fn meta() -> FileMetaTableBuilder {
    FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .implementation_class_uid(IMPLEMENTATION_UID)
        .implementation_version_name("DICOMLAB")
}

/// Why the samples could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("could not build the file meta group: {0}")]
    Meta(Box<dicom_object::WithMetaError>),
    #[error("could not encode the DICOM file: {0}")]
    Write(Box<dicom_object::WriteError>),
    #[error("could not write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<dicom_object::WithMetaError> for SampleError {
    fn from(e: dicom_object::WithMetaError) -> Self {
        Self::Meta(Box::new(e))
    }
}

impl From<dicom_object::WriteError> for SampleError {
    fn from(e: dicom_object::WriteError) -> Self {
        Self::Write(Box::new(e))
    }
}

/// Writes the three samples into `dir` (created if needed) under their official names.
pub fn write_samples(dir: &Path) -> Result<Vec<PathBuf>, SampleError> {
    std::fs::create_dir_all(dir).map_err(|source| SampleError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for sample in &SAMPLES {
        let path = dir.join(sample.file_name);
        write_atomically_with(&path, |mut w| {
            sample.write_with(sample.study_uid, sample.series_uid, sample.sop_uid, &mut w)
        })?;
        paths.push(path);
    }
    Ok(paths)
}

/// A small valid instance for tests and benchmarks: 8×8 grey, with the given UIDs and patient.
pub fn tiny_instance(
    study: &str,
    series: &str,
    sop: &str,
    patient_name: &str,
) -> Result<Vec<u8>, SampleError> {
    let s = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let us = |tag, v: u16| DataElement::new(tag, VR::US, dicom_value!(U16, [v]));
    let obj = InMemDicomObject::from_element_iter([
        s(tags::SOP_CLASS_UID, VR::UI, SOP_CLASS_UID),
        s(tags::SOP_INSTANCE_UID, VR::UI, sop),
        s(tags::STUDY_DATE, VR::DA, "20240101"),
        s(tags::MODALITY, VR::CS, "OT"),
        s(tags::PATIENT_NAME, VR::PN, patient_name),
        s(tags::PATIENT_ID, VR::LO, "P1"),
        s(tags::PATIENT_SEX, VR::CS, "M"),
        s(tags::STUDY_INSTANCE_UID, VR::UI, study),
        s(tags::SERIES_INSTANCE_UID, VR::UI, series),
        s(tags::INSTANCE_NUMBER, VR::IS, "1"),
        us(tags::SAMPLES_PER_PIXEL, 1),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, 8),
        us(tags::COLUMNS, 8),
        us(tags::BITS_ALLOCATED, 8),
        us(tags::BITS_STORED, 8),
        us(tags::HIGH_BIT, 7),
        us(tags::PIXEL_REPRESENTATION, 0),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(vec![128u8; 64].into()),
        ),
    ]);
    let file = obj.with_meta(meta())?;
    let mut out = Vec::new();
    file.write_all(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_object::OpenFileOptions;

    #[test]
    fn samples_match_the_contract() {
        let red = SAMPLES[0];
        let bytes = red.to_bytes().expect("encode");
        assert_eq!(&bytes[128..132], b"DICM");
        let obj = OpenFileOptions::new()
            .from_reader(&bytes[128..])
            .expect("parse");
        assert_eq!(obj.iter().count(), 40);
        let px = obj
            .element(tags::PIXEL_DATA)
            .expect("pixels")
            .value()
            .to_bytes()
            .expect("bytes");
        assert_eq!(px.len(), FRAME_BYTES + 1);
        // The centre of the triangle is red, the corner is the grey background.
        let at = |x: usize, y: usize| &px[(y * COLUMNS as usize + x) * 3..][..3];
        assert_eq!(at(492, 600), &[237, 28, 36]);
        assert_eq!(at(0, 0), &BACKGROUND);
        let sop = obj
            .element(tags::SOP_INSTANCE_UID)
            .expect("sop")
            .to_str()
            .expect("str");
        assert_eq!(sop.trim_end_matches('\0'), RED_UID);
    }

    /// The file written piece by piece is the one dicom-rs encodes from the whole data set.
    #[test]
    fn the_streamed_file_is_the_encoded_one() {
        for s in &SAMPLES {
            let mut encoded = Vec::new();
            s.dataset()
                .with_meta(meta())
                .expect("meta")
                .write_all(&mut encoded)
                .expect("encode");
            assert_eq!(s.to_bytes().expect("streamed"), encoded, "{}", s.file_name);
        }
    }

    #[test]
    fn shapes_differ() {
        let [r, g, b] = SAMPLES.map(|s| s.pixels());
        assert_ne!(r, g);
        assert_ne!(g, b);
        let blue = b.chunks(3).filter(|c| c == &[63, 72, 204]).count();
        // The official blue circle covers 257,023 pixels.
        assert!((250_000..265_000).contains(&blue), "{blue}");
    }

    #[test]
    fn writers_at_once_each_leave_whole_files() {
        let dir = tempfile::tempdir().expect("dir");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let d = dir.path().to_path_buf();
                std::thread::spawn(move || write_samples(&d))
            })
            .collect();
        for t in threads {
            assert!(t.join().expect("thread").is_ok());
        }
        for s in &SAMPLES {
            let on_disk = std::fs::read(dir.path().join(s.file_name)).expect("file");
            assert_eq!(on_disk, s.to_bytes().expect("bytes"));
        }
        // Nothing left behind but the three files.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 3);
    }
}
