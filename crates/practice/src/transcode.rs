//! Transcoding on retrieve, as Azure does it with fo-dicom's transcoder: one instance, or the frames of one
//! instance, converted between Explicit VR Little Endian and JPEG 2000 lossless. JPEG 2000 is decoded by
//! dicom-rs (its `openjp2` feature) and encoded here with the `openjp2` crate (reversible 5/3 wavelet, one
//! layer: lossless). What cannot be converted is refused with Azure's words; the caller bounds the size
//! of what is converted (Azure's 100 MB) and the memory it takes.

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{PixelDecoder, Transcode};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use openjp2::{
    CODEC_FORMAT, COLOR_SPACE, Codec, Stream, opj_cparameters_t, opj_image, opj_image_comptparm,
};

use dicomlab_dicom::reader::{self, Image, Source};

pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub const JPEG2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";
pub const JPEG2000: &str = "1.2.840.10008.1.2.4.91";

/// Azure's `RetrieveConfiguration.MaxDicomFileSize`: larger files are not transcoded.
pub const MAX_FILE: u64 = 100 * 1024 * 1024;

/// Azure's words when a file is over [`MAX_FILE`] (`RetrieveServiceFileTooBig`).
pub fn too_big_text() -> String {
    format!(
        "Requested DICOM instance size is above the supported limit of {MAX_FILE}. The entire instance can be retrieved with the original transfer syntax by specifying 'transfer-syntax=*' in the Accept header."
    )
}

/// Azure's words when the transcoder fails (`UnsupportedTranscoding`).
pub const UNSUPPORTED_TEXT: &str = "The specified transcoding is not supported.";

/// Why a conversion cannot be made; the service answers [`UNSUPPORTED_TEXT`] and logs this.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

impl From<reader::Refusal> for Unsupported {
    fn from(e: reader::Refusal) -> Self {
        Unsupported(e.to_string())
    }
}

fn native(ts: &str) -> bool {
    ts == IMPLICIT_LE || ts == EXPLICIT_LE
}

/// Whether a file stored as `from` can be sent as `to`.
pub fn converts(from: &str, to: &str) -> bool {
    match to {
        EXPLICIT_LE => native(from) || from == JPEG2000_LOSSLESS || from == JPEG2000,
        JPEG2000_LOSSLESS => native(from),
        _ => false,
    }
}

/// The encoder's working memory per sample of a frame (it works on 32-bit samples, twice over): measured
/// at 7–8 bytes (4096 × 4096 at 8 bits: 108 MiB; at 16 bits: 117 MiB), whatever the bits allocated.
const ENCODE_BYTES_PER_SAMPLE: u64 = 10;

/// Bytes a conversion holds at its peak, from the file's size and its image attributes (native size, not
/// the compressed one: decoding makes it that big). `frames`: the frames asked for, `None` for the file.
pub fn memory_needed(file_size: u64, image: &Image, frames: Option<usize>, to: &str) -> u64 {
    let frame = image.frame_bytes().ok().flatten().unwrap_or(0);
    let total = image.total_bytes().ok().flatten().unwrap_or(0);
    let samples = image
        .rows
        .unwrap_or(0)
        .saturating_mul(image.columns.unwrap_or(0))
        .saturating_mul(image.samples_per_pixel.unwrap_or(1));
    let encoder = samples.saturating_mul(ENCODE_BYTES_PER_SAMPLE);
    match (frames, to) {
        // The frames read, each frame's encoder, the codestreams made.
        (Some(n), JPEG2000_LOSSLESS) => (n as u64)
            .saturating_mul(frame)
            .saturating_mul(2)
            .saturating_add(encoder),
        // The file in memory and the decoded frames.
        (Some(n), _) => {
            file_size.saturating_add((n as u64).saturating_mul(frame).saturating_mul(3))
        }
        // The frames read, the codestreams made (no larger), one frame's encoder.
        (None, JPEG2000_LOSSLESS) => file_size.saturating_mul(2).saturating_add(encoder),
        // The file in memory, its pixels decoded, the file written.
        (None, _) => file_size
            .saturating_mul(2)
            .saturating_add(total.saturating_mul(2)),
    }
}

/// Reads what sizes a conversion: the file's scan (its header only).
pub fn scan(source: Source<'_>) -> Result<reader::Scan, Unsupported> {
    Ok(reader::scan(source, &reader::Limits::default())?)
}

/// How one frame's samples are laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub rows: u32,
    pub columns: u32,
    /// 1 (grey) or 3 (colour).
    pub samples: u32,
    /// 8 or 16.
    pub bits_allocated: u32,
    pub bits_stored: u32,
    pub signed: bool,
    /// Colour planes one after the other (PlanarConfiguration 1) rather than interleaved.
    pub planar: bool,
}

impl Geometry {
    /// From a data set's image attributes; what JPEG 2000 lossless cannot hold is refused.
    pub fn of(obj: &DefaultDicomObject) -> Result<Geometry, Unsupported> {
        let int = |tag, name: &str| -> Result<u32, Unsupported> {
            obj.get(tag)
                .and_then(|e| e.to_int::<u32>().ok())
                .ok_or_else(|| Unsupported(format!("{name} is missing or not a number")))
        };
        let opt = |tag, default: u32| {
            obj.get(tag)
                .and_then(|e| e.to_int::<u32>().ok())
                .unwrap_or(default)
        };
        let g = Geometry {
            rows: int(tags::ROWS, "Rows")?,
            columns: int(tags::COLUMNS, "Columns")?,
            samples: opt(tags::SAMPLES_PER_PIXEL, 1),
            bits_allocated: int(tags::BITS_ALLOCATED, "BitsAllocated")?,
            bits_stored: opt(tags::BITS_STORED, 0),
            signed: opt(tags::PIXEL_REPRESENTATION, 0) == 1,
            planar: opt(tags::PLANAR_CONFIGURATION, 0) == 1,
        };
        let g = Geometry {
            bits_stored: if g.bits_stored == 0 {
                g.bits_allocated
            } else {
                g.bits_stored
            },
            ..g
        };
        if g.rows == 0 || g.columns == 0 {
            return Err(Unsupported("the image has no rows or columns".into()));
        }
        if !matches!(g.samples, 1 | 3) {
            return Err(Unsupported(format!("{} samples per pixel", g.samples)));
        }
        if !matches!(g.bits_allocated, 8 | 16) || g.bits_stored > g.bits_allocated {
            return Err(Unsupported(format!(
                "{} bits allocated, {} stored",
                g.bits_allocated, g.bits_stored
            )));
        }
        Ok(g)
    }

    /// Bytes of one native frame.
    pub fn frame_bytes(&self) -> usize {
        self.rows as usize
            * self.columns as usize
            * self.samples as usize
            * (self.bits_allocated as usize / 8)
    }
}

/// Resolution levels the encoder may use: each level halves the image, and the smallest must keep a pixel.
fn resolutions(g: &Geometry) -> i32 {
    let side = g.rows.min(g.columns).max(1);
    (side.ilog2() as i32 + 1).clamp(1, 6)
}

/// One native frame as a JPEG 2000 lossless codestream (what DICOM's encapsulated fragments and
/// `image/jp2` frames hold).
pub fn encode_frame(frame: &[u8], g: &Geometry) -> Result<Vec<u8>, Unsupported> {
    if frame.len() < g.frame_bytes() {
        return Err(Unsupported(format!(
            "the frame has {} bytes where {} were expected",
            frame.len(),
            g.frame_bytes()
        )));
    }
    let parm = opj_image_comptparm {
        dx: 1,
        dy: 1,
        w: g.columns,
        h: g.rows,
        x0: 0,
        y0: 0,
        prec: g.bits_stored,
        bpp: g.bits_stored,
        sgnd: u32::from(g.signed),
    };
    let space = if g.samples == 3 {
        COLOR_SPACE::OPJ_CLRSPC_SRGB
    } else {
        COLOR_SPACE::OPJ_CLRSPC_GRAY
    };
    let mut img = opj_image::create(&vec![parm; g.samples as usize], space)
        .ok_or_else(|| Unsupported("the encoder refused the image".into()))?;
    img.x1 = g.columns;
    img.y1 = g.rows;
    let pixels = g.rows as usize * g.columns as usize;
    let samples = g.samples as usize;
    let mask: u32 = if g.bits_stored >= 32 {
        u32::MAX
    } else {
        (1u32 << g.bits_stored) - 1
    };
    let value = |raw: u32| -> i32 {
        let v = raw & mask;
        if g.signed && g.bits_stored < 32 && v & (1 << (g.bits_stored - 1)) != 0 {
            (v | !mask) as i32
        } else {
            v as i32
        }
    };
    let planes = img
        .comps_data_mut_iter()
        .ok_or_else(|| Unsupported("the encoder made no planes".into()))?;
    for (c, plane) in planes.enumerate() {
        for (i, out) in plane.iter_mut().enumerate().take(pixels) {
            let index = if g.planar {
                c * pixels + i
            } else {
                i * samples + c
            };
            let raw = if g.bits_allocated == 16 {
                u32::from(u16::from_le_bytes([frame[2 * index], frame[2 * index + 1]]))
            } else {
                u32::from(frame[index])
            };
            *out = value(raw);
        }
    }
    let mut p = opj_cparameters_t {
        numresolution: resolutions(g),
        // Colour stays RGB (no colour transform): the frame's Photometric Interpretation still holds.
        tcp_mct: 0,
        ..Default::default()
    };
    let mut enc = Codec::new_encoder(CODEC_FORMAT::OPJ_CODEC_J2K)
        .ok_or_else(|| Unsupported("no JPEG 2000 encoder".into()))?;
    // The crate's safe API writes to a file only.
    let tmp = tempfile::NamedTempFile::new().map_err(|e| Unsupported(e.to_string()))?;
    {
        let mut out =
            Stream::new_file(tmp.path(), 1 << 20, false).map_err(|e| Unsupported(e.to_string()))?;
        let ok = enc.setup_encoder(&mut p, &mut img) != 0
            && enc.start_compress(&mut img, &mut out) != 0
            && enc.encode(&mut out) != 0
            && enc.end_compress(&mut out) != 0;
        if !ok {
            return Err(Unsupported("the JPEG 2000 encoder failed".into()));
        }
        out.flush().map_err(|e| Unsupported(e.to_string()))?;
    }
    std::fs::read(tmp.path()).map_err(|e| Unsupported(e.to_string()))
}

/// Reads a JPEG 2000 codestream's image size (its SIZ marker segment): `(width, height, components)`.
fn codestream_size(fragment: &[u8]) -> Option<(u32, u32, u16)> {
    let u32_at = |i: usize| -> Option<u32> {
        fragment
            .get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    // SOC (FF4F), then SIZ (FF51): Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz, XTOsiz, YTOsiz, Csiz.
    if fragment.get(..4)? != [0xFF, 0x4F, 0xFF, 0x51] {
        return None;
    }
    let width = u32_at(8)?.checked_sub(u32_at(16)?)?;
    let height = u32_at(12)?.checked_sub(u32_at(20)?)?;
    let components = fragment
        .get(40..42)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))?;
    Some((width, height, components))
}

/// A codestream is decoded to the size it declares, not the data set's: one that declares more than the
/// data set's image (a small file that would decode to gigabytes) is refused before it is decoded.
pub fn check_codestream(fragment: &[u8], g: &Geometry) -> Result<(), Unsupported> {
    let (w, h, c) = codestream_size(fragment)
        .ok_or_else(|| Unsupported("a frame is not a JPEG 2000 codestream".into()))?;
    if w > g.columns || h > g.rows || u32::from(c) > g.samples {
        return Err(Unsupported(format!(
            "a codestream declares {w}×{h}×{c}, more than the image's {}×{}×{}",
            g.columns, g.rows, g.samples
        )));
    }
    Ok(())
}

/// Checks every frame's codestream of an encapsulated data set against its image attributes.
fn check_codestreams(obj: &DefaultDicomObject) -> Result<(), Unsupported> {
    let g = Geometry::of(obj)?;
    let pixels = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| Unsupported("no pixel data".into()))?;
    let fragments = pixels
        .value()
        .fragments()
        .ok_or_else(|| Unsupported("no encapsulated pixel data".into()))?;
    let mut frames = 0;
    for f in fragments.iter().filter(|f| f.starts_with(&[0xFF, 0x4F])) {
        check_codestream(f, &g)?;
        frames += 1;
    }
    if frames == 0 {
        return Err(Unsupported(
            "no JPEG 2000 codestream in the pixel data".into(),
        ));
    }
    Ok(())
}

/// Sets the file's transfer syntax (its meta group length follows).
fn set_syntax(obj: &mut DefaultDicomObject, to: &str) -> Result<(), Unsupported> {
    let ts = TransferSyntaxRegistry
        .get(to)
        .ok_or_else(|| Unsupported(format!("unknown transfer syntax {to}")))?;
    obj.update_meta(|m| m.set_transfer_syntax(ts));
    Ok(())
}

fn write(obj: &DefaultDicomObject) -> Result<Vec<u8>, Unsupported> {
    let mut out = Vec::new();
    obj.write_all(&mut out)
        .map_err(|e| Unsupported(e.to_string()))?;
    Ok(out)
}

/// A whole stored file as a Part 10 file in `to`. The caller has bounded the file's size.
pub fn file(source: Source<'_>, to: &str) -> Result<Vec<u8>, Unsupported> {
    let scan = scan(source)?;
    let from = scan.transfer_syntax.clone();
    if !converts(&from, to) {
        return Err(Unsupported(format!("{from} to {to}")));
    }
    if to == JPEG2000_LOSSLESS {
        let mut obj = reader::read_header(source, &scan)?;
        if scan.pixel.is_some() {
            let g = Geometry::of(&obj)?;
            let count = scan.image.frames.unwrap_or(1).max(1);
            let count = u32::try_from(count).map_err(|_| Unsupported("too many frames".into()))?;
            let wanted: Vec<u32> = (1..=count).collect();
            let frames = reader::read_frames(source, &scan, &wanted)?;
            let mut fragments = Vec::with_capacity(frames.len());
            for f in &frames {
                fragments.push(encode_frame(f, &g)?);
            }
            drop(frames);
            obj.put(DataElement::new_with_len(
                tags::PIXEL_DATA,
                VR::OB,
                Length::UNDEFINED,
                PixelFragmentSequence::new(Vec::<u32>::new(), fragments),
            ));
            obj.put(DataElement::new(
                tags::LOSSY_IMAGE_COMPRESSION,
                VR::CS,
                PrimitiveValue::from("00"),
            ));
        }
        set_syntax(&mut obj, to)?;
        return write(&obj);
    }
    // To Explicit VR Little Endian: native data sets only change their syntax; JPEG 2000 is decoded.
    let mut obj = reader::read_all(source, &scan)?;
    if !native(&from) {
        check_codestreams(&obj)?;
    }
    if native(&from) {
        set_syntax(&mut obj, to)?;
    } else {
        let ts = TransferSyntaxRegistry
            .get(to)
            .ok_or_else(|| Unsupported(format!("unknown transfer syntax {to}")))?;
        obj.transcode(ts).map_err(|e| Unsupported(e.to_string()))?;
    }
    write(&obj)
}

/// The given (1-based) frames of a stored file, in `to`.
pub fn frames(source: Source<'_>, wanted: &[u32], to: &str) -> Result<Vec<Vec<u8>>, Unsupported> {
    let scan = scan(source)?;
    let from = scan.transfer_syntax.clone();
    if !converts(&from, to) {
        return Err(Unsupported(format!("{from} to {to}")));
    }
    if native(&from) {
        let raw = reader::read_frames(source, &scan, wanted)?;
        if to == EXPLICIT_LE {
            // Implicit and explicit VR Little Endian frames are the same bytes.
            return Ok(raw);
        }
        let header = reader::read_header(source, &scan)?;
        let g = Geometry::of(&header)?;
        return raw.iter().map(|f| encode_frame(f, &g)).collect();
    }
    let obj = reader::read_all(source, &scan)?;
    check_codestreams(&obj)?;
    let mut out = Vec::with_capacity(wanted.len());
    for f in wanted {
        let decoded = obj
            .decode_pixel_data_frame(f.saturating_sub(1))
            .map_err(|e| Unsupported(e.to_string()))?;
        out.push(decoded.into_data());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

    /// A file holding `fragments` as JPEG 2000 lossless, decoded by dicom-rs: the encoder's output read by
    /// another decoder.
    fn decode(fragment: Vec<u8>, g: &Geometry) -> Vec<u8> {
        let mut obj = InMemDicomObject::new_empty();
        let us = |v: u32| PrimitiveValue::from(v as u16);
        obj.put(DataElement::new(tags::ROWS, VR::US, us(g.rows)));
        obj.put(DataElement::new(tags::COLUMNS, VR::US, us(g.columns)));
        obj.put(DataElement::new(
            tags::SAMPLES_PER_PIXEL,
            VR::US,
            us(g.samples),
        ));
        obj.put(DataElement::new(
            tags::BITS_ALLOCATED,
            VR::US,
            us(g.bits_allocated),
        ));
        obj.put(DataElement::new(
            tags::BITS_STORED,
            VR::US,
            us(g.bits_stored),
        ));
        obj.put(DataElement::new(
            tags::HIGH_BIT,
            VR::US,
            us(g.bits_stored - 1),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            us(u32::from(g.signed)),
        ));
        let pi = if g.samples == 3 { "RGB" } else { "MONOCHROME2" };
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(pi),
        ));
        if g.samples == 3 {
            obj.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, us(0)));
        }
        obj.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3"),
        ));
        obj.put(DataElement::new_with_len(
            tags::PIXEL_DATA,
            VR::OB,
            Length::UNDEFINED,
            PixelFragmentSequence::new(Vec::<u32>::new(), vec![fragment]),
        ));
        let file = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(JPEG2000_LOSSLESS)
                    .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
                    .media_storage_sop_instance_uid("1.2.3"),
            )
            .expect("meta");
        file.decode_pixel_data().expect("decode").into_data()
    }

    fn round_trip(g: Geometry, frame: Vec<u8>) {
        let j2k = encode_frame(&frame, &g).expect("encode");
        assert_eq!(
            &j2k[..4],
            &[0xFF, 0x4F, 0xFF, 0x51],
            "a J2K codestream (SOC, SIZ)"
        );
        assert_eq!(decode(j2k, &g), frame, "{g:?}");
    }

    #[test]
    fn grey_8_bit_comes_back_bit_exact() {
        let g = Geometry {
            rows: 37,
            columns: 53,
            samples: 1,
            bits_allocated: 8,
            bits_stored: 8,
            signed: false,
            planar: false,
        };
        let frame = (0..g.frame_bytes()).map(|i| (i * 7 % 251) as u8).collect();
        round_trip(g, frame);
    }

    #[test]
    fn grey_16_bit_and_tiny_images_come_back_bit_exact() {
        let g = Geometry {
            rows: 64,
            columns: 40,
            samples: 1,
            bits_allocated: 16,
            bits_stored: 12,
            signed: false,
            planar: false,
        };
        let frame = (0..g.frame_bytes() / 2)
            .flat_map(|i| ((i * 131 % 4096) as u16).to_le_bytes())
            .collect();
        round_trip(g, frame);
        let tiny = Geometry {
            rows: 1,
            columns: 3,
            bits_allocated: 8,
            bits_stored: 8,
            ..g
        };
        round_trip(tiny, vec![0, 128, 255]);
    }

    #[test]
    fn rgb_comes_back_bit_exact() {
        let g = Geometry {
            rows: 16,
            columns: 24,
            samples: 3,
            bits_allocated: 8,
            bits_stored: 8,
            signed: false,
            planar: false,
        };
        let frame = (0..g.frame_bytes()).map(|i| (i * 13 % 256) as u8).collect();
        round_trip(g, frame);
    }

    #[test]
    fn a_codestream_larger_than_its_image_is_refused_before_decoding() {
        let g = Geometry {
            rows: 8,
            columns: 8,
            samples: 1,
            bits_allocated: 8,
            bits_stored: 8,
            signed: false,
            planar: false,
        };
        let mut j2k = encode_frame(&[7u8; 64], &g).expect("encode");
        assert!(check_codestream(&j2k, &g).is_ok());
        assert_eq!(codestream_size(&j2k), Some((8, 8, 1)));
        // The same codestream declaring 40000 × 40000 (Xsiz, Ysiz): a bomb of 1.6 GB.
        j2k[8..12].copy_from_slice(&40000u32.to_be_bytes());
        j2k[12..16].copy_from_slice(&40000u32.to_be_bytes());
        let e = check_codestream(&j2k, &g).expect_err("refused");
        assert!(e.0.contains("40000×40000"), "{e}");
        assert!(check_codestream(b"not j2k", &g).is_err());
        assert!(
            check_codestream(&[0xFF, 0x4F, 0xFF, 0x51, 0, 0], &g).is_err(),
            "truncated"
        );
    }

    #[test]
    fn what_converts() {
        assert!(converts(EXPLICIT_LE, JPEG2000_LOSSLESS));
        assert!(converts(IMPLICIT_LE, JPEG2000_LOSSLESS));
        assert!(converts(JPEG2000_LOSSLESS, EXPLICIT_LE));
        assert!(!converts(JPEG2000, JPEG2000_LOSSLESS));
        assert!(!converts("1.2.840.10008.1.2.4.100", EXPLICIT_LE));
        assert!(!converts(EXPLICIT_LE, "1.2.840.10008.1.2.4.50"));
    }

    #[test]
    fn memory_is_sized_by_the_decoded_frame() {
        let image = Image {
            rows: Some(4096),
            columns: Some(4096),
            samples_per_pixel: Some(1),
            bits_allocated: Some(16),
            frames: Some(1),
        };
        let frame = 4096 * 4096 * 2;
        assert_eq!(
            memory_needed(1000, &image, Some(1), JPEG2000_LOSSLESS),
            frame * 2 + 4096 * 4096 * ENCODE_BYTES_PER_SAMPLE
        );
        // What the default budget (192 MiB for validations) holds: a 4096 × 4096 8-bit frame.
        let eight = Image {
            bits_allocated: Some(8),
            ..image
        };
        assert!(memory_needed(0, &eight, Some(1), JPEG2000_LOSSLESS) <= 192 * 1024 * 1024);
        assert!(memory_needed(1000, &image, None, EXPLICIT_LE) >= frame * 2);
    }
}
