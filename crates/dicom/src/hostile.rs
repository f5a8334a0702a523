//! Hostile and odd Part-10 files, built byte by byte: what the bounded reader must refuse (or accept) and
//! what the tests, the fuzz corpus and the soak benchmark send. Each is small to build; none is valid by
//! accident.

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;

/// An undefined length.
pub const UNDEFINED: u32 = 0xFFFF_FFFF;

/// VRs whose explicit header has two reserved bytes and a 32-bit length.
fn long_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB
            | VR::OD
            | VR::OF
            | VR::OL
            | VR::OV
            | VR::OW
            | VR::SQ
            | VR::UC
            | VR::UN
            | VR::UR
            | VR::UT
            | VR::SV
            | VR::UV
    )
}

/// An explicit VR little endian element; odd values are padded as their VR wants.
pub fn element(tag: Tag, vr: VR, value: &[u8]) -> Vec<u8> {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(if matches!(vr, VR::UI | VR::OB | VR::OW | VR::UN) {
            0
        } else {
            b' '
        });
    }
    let mut out = header(tag, vr, value.len() as u32);
    out.extend_from_slice(&value);
    out
}

/// An explicit VR little endian element header declaring `len` bytes (none follow).
pub fn header(tag: Tag, vr: VR, len: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(vr.to_string().as_bytes());
    if long_length(vr) {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&len.to_le_bytes());
    } else {
        out.extend_from_slice(&(len as u16).to_le_bytes());
    }
    out
}

/// An item, item end or sequence end: a tag and a 32-bit length.
pub fn item(tag: Tag, len: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out
}

pub const ITEM: Tag = Tag(0xFFFE, 0xE000);
pub const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
pub const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);

/// The elements every stored instance needs: SOP class and instance, patient, study and series.
pub fn required(study: &str, series: &str, sop: &str) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend(element(
        tags::SOP_CLASS_UID,
        VR::UI,
        b"1.2.840.10008.5.1.4.1.1.7",
    ));
    d.extend(element(tags::SOP_INSTANCE_UID, VR::UI, sop.as_bytes()));
    d.extend(element(tags::PATIENT_NAME, VR::PN, b"Hostile^Input"));
    d.extend(element(tags::PATIENT_ID, VR::LO, b"HOSTILE"));
    d.extend(element(tags::STUDY_INSTANCE_UID, VR::UI, study.as_bytes()));
    d.extend(element(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        series.as_bytes(),
    ));
    d
}

/// A Part-10 file: preamble, `DICM`, a meta group (with or without (0002,0000)), then `dataset`.
pub fn part10(transfer_syntax: &str, sop: &str, dataset: &[u8], group_length: bool) -> Vec<u8> {
    let mut meta = Vec::new();
    meta.extend(element(Tag(0x0002, 0x0001), VR::OB, &[0, 1]));
    meta.extend(element(
        Tag(0x0002, 0x0002),
        VR::UI,
        b"1.2.840.10008.5.1.4.1.1.7",
    ));
    meta.extend(element(Tag(0x0002, 0x0003), VR::UI, sop.as_bytes()));
    meta.extend(element(
        Tag(0x0002, 0x0010),
        VR::UI,
        transfer_syntax.as_bytes(),
    ));
    meta.extend(element(
        Tag(0x0002, 0x0012),
        VR::UI,
        b"1.2.826.0.1.3680043.10.1",
    ));
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    if group_length {
        out.extend(element(
            Tag(0x0002, 0x0000),
            VR::UL,
            &(meta.len() as u32).to_le_bytes(),
        ));
    }
    out.extend(meta);
    out.extend_from_slice(dataset);
    out
}

pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// `depth` sequences of undefined length nested one in another's only item, around one element.
pub fn nested(depth: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(depth * 28 + 16);
    for _ in 0..depth {
        out.extend(header(tags::REFERENCED_IMAGE_SEQUENCE, VR::SQ, UNDEFINED));
        out.extend(item(ITEM, UNDEFINED));
    }
    out.extend(element(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, b"1.2.3"));
    for _ in 0..depth {
        out.extend(item(ITEM_END, 0));
        out.extend(item(SEQUENCE_END, 0));
    }
    out
}

/// A valid instance whose data set nests sequences `depth` deep (2,000: 56 KB that once overflowed the
/// parser's stack).
pub fn deeply_nested(study: &str, series: &str, sop: &str, depth: usize) -> Vec<u8> {
    let mut d = required(study, series, sop);
    d.extend(nested(depth));
    part10(EXPLICIT_LE, sop, &d, true)
}

/// A small image whose PixelData declares `declared` bytes (4 GiB − 2) and carries 64.
pub fn lying_length(study: &str, series: &str, sop: &str, declared: u32) -> Vec<u8> {
    let mut d = required(study, series, sop);
    d.extend(image_attributes(1, 1, 1, 8, None));
    d.extend(header(tags::PIXEL_DATA, VR::OB, declared));
    d.extend_from_slice(&[0u8; 64]);
    part10(EXPLICIT_LE, sop, &d, true)
}

/// Samples per pixel, rows, columns, bits allocated and (optionally) number of frames.
pub fn image_attributes(
    samples: u16,
    rows: u16,
    cols: u16,
    bits: u16,
    frames: Option<&str>,
) -> Vec<u8> {
    let us = |tag, v: u16| element(tag, VR::US, &v.to_le_bytes());
    let mut d = Vec::new();
    d.extend(us(tags::SAMPLES_PER_PIXEL, samples));
    d.extend(element(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        b"MONOCHROME2",
    ));
    if let Some(f) = frames {
        d.extend(element(tags::NUMBER_OF_FRAMES, VR::IS, f.as_bytes()));
    }
    d.extend(us(tags::ROWS, rows));
    d.extend(us(tags::COLUMNS, cols));
    d.extend(us(tags::BITS_ALLOCATED, bits));
    d.extend(us(tags::BITS_STORED, bits));
    d.extend(us(tags::HIGH_BIT, bits.saturating_sub(1)));
    d.extend(us(tags::PIXEL_REPRESENTATION, 0));
    d
}

/// 2^30 frames of 32768 × 32768, 32-bit, 3 samples, with 16 bytes of pixel data: the size overflows 64
/// bits when computed in bits.
pub fn pixel_overflow(study: &str, series: &str, sop: &str) -> Vec<u8> {
    let mut d = required(study, series, sop);
    d.extend(image_attributes(3, 32768, 32768, 32, Some("1073741824")));
    d.extend(element(tags::PIXEL_DATA, VR::OW, &[0u8; 16]));
    part10(EXPLICIT_LE, sop, &d, true)
}

/// A deflated instance whose data set inflates to about `inflated` bytes (a private OB element of zeros).
pub fn deflate_bomb(study: &str, series: &str, sop: &str, inflated: u64) -> Vec<u8> {
    use std::io::Write;
    let mut d = required(study, series, sop);
    let len = u32::try_from(inflated).unwrap_or(u32::MAX - 1) & !1;
    d.extend(element(Tag(0x0009, 0x0010), VR::LO, b"HOSTILE"));
    d.extend(header(Tag(0x0009, 0x1010), VR::OB, len));
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    let ok = z.write_all(&d).is_ok() && {
        let mut left = u64::from(len);
        let mut ok = true;
        while left > 0 && ok {
            let n = left.min(zeros.len() as u64) as usize;
            ok = z.write_all(&zeros[..n]).is_ok();
            left -= n as u64;
        }
        ok
    };
    let deflated = if ok {
        z.finish().unwrap_or_default()
    } else {
        Vec::new()
    };
    part10(DEFLATED, sop, &deflated, true)
}

/// A valid instance (a 2×2 8-bit image) whose meta group lacks (0002,0000), as pydicom writes an in-memory
/// dataset (what dicomweb-client sends).
pub fn without_group_length(study: &str, series: &str, sop: &str) -> Vec<u8> {
    let mut d = required(study, series, sop);
    d.extend(element(tags::MODALITY, VR::CS, b"OT"));
    d.extend(image_attributes(1, 2, 2, 8, None));
    d.extend(element(tags::PIXEL_DATA, VR::OB, &[0, 64, 128, 255]));
    part10(EXPLICIT_LE, sop, &d, false)
}

/// A valid instance whose header holds a private element of `bytes` bytes before a 2×2 image: its
/// validation must parse (and hold) that much.
pub fn big_header(study: &str, series: &str, sop: &str, bytes: usize) -> Vec<u8> {
    let mut d = required(study, series, sop);
    d.extend(element(Tag(0x0009, 0x0010), VR::LO, b"HOSTILE"));
    d.extend(element(Tag(0x0009, 0x1010), VR::OB, &vec![7u8; bytes]));
    d.extend(image_attributes(1, 2, 2, 8, None));
    d.extend(element(tags::PIXEL_DATA, VR::OB, &[0, 64, 128, 255]));
    part10(EXPLICIT_LE, sop, &d, true)
}

/// A valid native image of `rows` × `cols` 8-bit pixels, value `fill`.
pub fn image(study: &str, series: &str, sop: &str, rows: u16, cols: u16, fill: u8) -> Vec<u8> {
    let mut d = required(study, series, sop);
    d.extend(element(tags::MODALITY, VR::CS, b"OT"));
    d.extend(image_attributes(1, rows, cols, 8, None));
    d.extend(element(
        tags::PIXEL_DATA,
        VR::OB,
        &vec![fill; usize::from(rows) * usize::from(cols)],
    ));
    part10(EXPLICIT_LE, sop, &d, true)
}
