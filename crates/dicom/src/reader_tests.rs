//! The bounded reader against hand-built hostile files and the lab's samples.

use super::*;
use crate::samples::SAMPLES;

use crate::hostile::{self, SEQUENCE_END, nested};

fn el(tag: Tag, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    hostile::element(tag, VR::from_binary(*vr).unwrap_or(VR::UN), value)
}

fn header_only(tag: Tag, vr: &[u8; 2], len: u32) -> Vec<u8> {
    hostile::header(tag, VR::from_binary(*vr).unwrap_or(VR::UN), len)
}

fn delimiter(tag: Tag) -> Vec<u8> {
    hostile::item(tag, 0)
}

fn part10(ts: &str, dataset: &[u8], group_length: bool) -> Vec<u8> {
    hostile::part10(ts, "1.2.3.4", dataset, group_length)
}

fn uids_dataset() -> Vec<u8> {
    let mut d = Vec::new();
    d.extend(el(
        tags::SOP_CLASS_UID,
        b"UI",
        b"1.2.840.10008.5.1.4.1.1.7\0",
    ));
    d.extend(el(tags::SOP_INSTANCE_UID, b"UI", b"1.2.3.4\0"));
    d.extend(el(tags::PATIENT_ID, b"LO", b"P1"));
    d.extend(el(tags::STUDY_INSTANCE_UID, b"UI", b"1.2.3\0"));
    d.extend(el(tags::SERIES_INSTANCE_UID, b"UI", b"1.2.3.1\0"));
    d
}

fn scan_bytes(b: &[u8]) -> Result<Scan, Refusal> {
    scan(Source::Bytes(b), &Limits::default())
}

#[test]
fn the_samples_scan_and_their_header_reads_without_pixels() {
    let bytes = SAMPLES[0].to_bytes().expect("sample");
    let s = scan_bytes(&bytes).expect("scan");
    assert_eq!(s.transfer_syntax, EXPLICIT_VR_LE);
    s.check_pixels().expect("complete");
    let pixel = s.pixel.as_ref().expect("pixel data");
    assert_eq!(pixel.native_len, Some(979 * 985 * 3 + 1));
    let obj = read_header(Source::Bytes(&bytes), &s).expect("header");
    assert!(obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none());
    assert!(obj.element(tags::SOP_INSTANCE_UID).is_ok());
    assert!(s.header_len < 4096, "{}", s.header_len);
    let frames = read_frames(Source::Bytes(&bytes), &s, &[1]).expect("frame");
    assert_eq!(frames[0].len(), 979 * 985 * 3);
}

const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

#[test]
fn a_meta_group_without_its_group_length_is_read_element_by_element() {
    let file = part10(EXPLICIT_VR_LE, &uids_dataset(), false);
    let s = scan_bytes(&file).expect("scan");
    assert_eq!(s.transfer_syntax, EXPLICIT_VR_LE);
    let obj = read_header(Source::Bytes(&file), &s).expect("header");
    assert_eq!(
        obj.element(tags::PATIENT_ID)
            .expect("patient id")
            .to_str()
            .expect("str"),
        "P1"
    );
    // And with it, the same.
    let file = part10(EXPLICIT_VR_LE, &uids_dataset(), true);
    assert!(scan_bytes(&file).is_ok());
}

#[test]
fn a_bare_meta_group_is_read_and_put_in_the_standard_form() {
    // pydicom's dcmwrite of an in-memory dataset: no preamble, no DICM, no (0002,0000).
    let file = part10(EXPLICIT_VR_LE, &uids_dataset(), false);
    let bare = &file[132..];
    let s = scan_bytes(bare).expect("scan");
    assert_eq!((s.meta_start, s.group_length), (0, false));
    assert!(read_header(Source::Bytes(bare), &s).is_ok());
    let head = s
        .canonical_head(Source::Bytes(bare))
        .expect("head")
        .expect("not canonical");
    let mut fixed = head;
    fixed.extend_from_slice(&bare[s.dataset_start as usize..]);
    let again = scan_bytes(&fixed).expect("scan");
    assert!(again.is_canonical());
    assert!(
        dicom_object::OpenFileOptions::new()
            .from_reader(&fixed[128..])
            .is_ok()
    );
    assert_eq!(
        scan_bytes(&part10(EXPLICIT_VR_LE, &uids_dataset(), true))
            .expect("scan")
            .canonical_head(Source::Bytes(&[]))
            .expect("head"),
        None
    );
}

#[test]
fn nesting_is_bounded_without_recursion() {
    let ok = part10(EXPLICIT_VR_LE, &nested(MAX_DEPTH as usize), false);
    scan_bytes(&ok).expect("32 levels are fine");
    let file = part10(EXPLICIT_VR_LE, &nested(2_000), false);
    let err = scan_bytes(&file).expect_err("too deep");
    assert!(
        matches!(err, Refusal::TooDeep { max: MAX_DEPTH, .. }),
        "{err}"
    );
    assert_eq!(err.tag(), Some(tags::REFERENCED_IMAGE_SEQUENCE));
}

#[test]
fn a_declared_length_past_the_end_is_refused_before_reading() {
    let mut d = uids_dataset();
    d.extend(header_only(tags::PIXEL_DATA, b"OB", 0xFFFF_FFF0));
    d.extend_from_slice(&[0u8; 64]);
    let file = part10(EXPLICIT_VR_LE, &d, false);
    let err = scan_bytes(&file).expect_err("refused");
    assert!(
        matches!(
            err,
            Refusal::LengthBeyondEnd {
                len: 0xFFFF_FFF0,
                left: 64,
                ..
            }
        ),
        "{err}"
    );
    // Inside a defined-length item, the item's end is the bound.
    let mut d = uids_dataset();
    let inner = el(tags::PATIENT_NAME, b"PN", b"ABCD");
    let mut item = Vec::new();
    item.extend_from_slice(&0xFFFEu16.to_le_bytes());
    item.extend_from_slice(&0xE000u16.to_le_bytes());
    item.extend_from_slice(&2u32.to_le_bytes());
    item.extend(inner);
    d.extend(header_only(
        tags::REFERENCED_IMAGE_SEQUENCE,
        b"SQ",
        item.len() as u32,
    ));
    d.extend(item);
    let err = scan_bytes(&part10(EXPLICIT_VR_LE, &d, false)).expect_err("refused");
    assert!(matches!(err, Refusal::LengthBeyondEnd { .. }), "{err}");
}

#[test]
fn pixel_sizes_are_checked_arithmetic() {
    let us = |v: u16| v.to_le_bytes();
    let mut d = uids_dataset();
    d.extend(el(tags::SAMPLES_PER_PIXEL, b"US", &us(3)));
    d.extend(el(tags::NUMBER_OF_FRAMES, b"IS", b"4294967295"));
    d.extend(el(tags::ROWS, b"US", &us(32768)));
    d.extend(el(tags::COLUMNS, b"US", &us(32768)));
    d.extend(el(tags::BITS_ALLOCATED, b"US", &us(32)));
    d.extend(el(tags::PIXEL_DATA, b"OB", &[0u8; 16]));
    let s = scan_bytes(&part10(EXPLICIT_VR_LE, &d, true)).expect("scan");
    assert!(matches!(s.check_pixels(), Err(Refusal::PixelOverflow)));
    // 2^30 frames of 32768² (what once wrapped around and was stored): no overflow, far too few bytes.
    let img = Image {
        frames: Some(1 << 30),
        ..s.image
    };
    assert_eq!(
        img.total_bytes().expect("no overflow"),
        Some(12_884_901_888 << 30)
    );
    let s = Scan { image: img, ..s };
    assert!(
        matches!(s.check_pixels(), Err(Refusal::PixelShort { have: 16, .. })),
        "{:?}",
        s.check_pixels()
    );
}

#[test]
fn a_deflated_data_set_is_capped_while_it_inflates() {
    use std::io::Write;
    let mut d = uids_dataset();
    d.extend(el(Tag(0x0009, 0x1010), b"OB", &vec![0u8; 4 * 1024 * 1024]));
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&d).expect("deflate");
    let deflated = z.finish().expect("deflate");
    assert!(deflated.len() < 64 * 1024);
    let file = part10(uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, &deflated, true);
    let small = Limits {
        max_inflated: 1024 * 1024,
        ..Limits::default()
    };
    let err = scan(Source::Bytes(&file), &small).expect_err("capped");
    assert!(matches!(err, Refusal::InflatedTooLarge { .. }), "{err}");
    // Under the default cap it reads, and its header parses from the inflated stream.
    let s = scan_bytes(&file).expect("scan");
    assert!(s.deflated);
    let obj = read_header(Source::Bytes(&file), &s).expect("header");
    assert!(obj.element(tags::SOP_INSTANCE_UID).is_ok());
}

#[test]
fn truncation_anywhere_is_refused() {
    let file = part10(EXPLICIT_VR_LE, &nested(3), false);
    for cut in [file.len() - 3, file.len() - 8, file.len() - 20] {
        let err = scan_bytes(&file[..cut]).expect_err("truncated");
        assert!(matches!(err, Refusal::Truncated { .. }), "{cut}: {err}");
    }
    assert!(matches!(
        scan_bytes(b"not dicom at all"),
        Err(Refusal::NotPart10(_))
    ));
    assert!(matches!(scan_bytes(&[]), Err(Refusal::NotPart10(_))));
    let bytes = SAMPLES[0].to_bytes().expect("sample");
    let err = scan_bytes(&bytes[..bytes.len() / 2]).expect_err("half");
    assert!(matches!(err, Refusal::LengthBeyondEnd { .. }), "{err}");
}

#[test]
fn implicit_vr_sequences_come_from_the_dictionary() {
    // (0008,1140) ReferencedImageSequence, defined length, implicit VR: a sequence by the dictionary.
    let implicit = |tag: Tag, value: &[u8]| {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
        out
    };
    let inner = implicit(tags::PATIENT_ID, b"IN");
    let mut item = Vec::new();
    item.extend_from_slice(&0xFFFEu16.to_le_bytes());
    item.extend_from_slice(&0xE000u16.to_le_bytes());
    item.extend_from_slice(&(inner.len() as u32).to_le_bytes());
    item.extend(inner);
    let mut d = implicit(tags::SOP_INSTANCE_UID, b"1.2.3.4\0");
    d.extend(implicit(tags::REFERENCED_IMAGE_SEQUENCE, &item));
    let file = part10("1.2.840.10008.1.2", &d, true);
    let s = scan_bytes(&file).expect("scan");
    let obj = read_header(Source::Bytes(&file), &s).expect("header");
    let seq = obj
        .element(tags::REFERENCED_IMAGE_SEQUENCE)
        .expect("sequence");
    assert_eq!(seq.items().map(<[_]>::len), Some(1));
}

#[test]
fn encapsulated_fragments_are_located() {
    let mut d = uids_dataset();
    d.extend(el(tags::ROWS, b"US", &2u16.to_le_bytes()));
    d.extend(el(tags::COLUMNS, b"US", &2u16.to_le_bytes()));
    d.extend(header_only(tags::PIXEL_DATA, b"OB", UNDEFINED));
    let item = |data: &[u8]| {
        let mut out = Vec::new();
        out.extend_from_slice(&0xFFFEu16.to_le_bytes());
        out.extend_from_slice(&0xE000u16.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    };
    d.extend(item(&[]));
    d.extend(item(b"frame-one"));
    d.extend(item(b"frame-2!"));
    d.extend(delimiter(SEQUENCE_END));
    let file = part10("1.2.840.10008.1.2.4.50", &d, true);
    let s = scan_bytes(&file).expect("scan");
    s.check_pixels().expect("fragments");
    assert_eq!(s.pixel.as_ref().map(|p| p.fragments.len()), Some(2));
    let frames = read_frames(Source::Bytes(&file), &s, &[2, 1]).expect("frames");
    assert_eq!(frames, vec![b"frame-2!".to_vec(), b"frame-one".to_vec()]);
    // Cut inside the fragments: truncated.
    let err = scan_bytes(&file[..file.len() - 12]).expect_err("cut");
    assert!(
        matches!(
            err,
            Refusal::Truncated { .. } | Refusal::LengthBeyondEnd { .. }
        ),
        "{err}"
    );
}
