//! One bounded reader for DICOM Part-10 bytes nobody vouched for: STOW bodies, files a learner picks, and
//! files a server sends back. dicom-parser reserves each declared length before reading it and recurses
//! into nested sequences without a limit, and dicom-object refuses a file meta group without its group
//! length (0002,0000), which pydicom writes for in-memory datasets. So every file is first walked here,
//! element by element with an explicit stack and no allocation driven by a declared length:
//!
//! - the file meta group is read element by element, whether or not (0002,0000) is there;
//! - every declared length is checked against the bytes that remain (of the file, or of the enclosing
//!   item or sequence) before anything is read;
//! - sequences nest at most [`Limits::max_depth`] deep, so the stored metadata is always readable back
//!   (serde_json stops at 128 levels; each DICOM level costs three);
//! - a deflated data set is inflated as a stream and refused past [`Limits::max_inflated`] bytes;
//! - the image's size (rows × columns × samples × bits × frames) is computed with checked arithmetic.
//!
//! Only then is the data set handed to dicom-object, and only up to the top-level PixelData: the header is
//! what validation and metadata need, so memory follows the header's size, never the pixel data's.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_encoding::transfer_syntax::{Endianness, TransferSyntaxIndex};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{DefaultDicomObject, FileMetaTable, InMemDicomObject};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

mod walk;
use walk::{Skip, Src, Streamed, Syntax, UNDEFINED, check_fits, long_length, walk};

/// How far the reader goes before it refuses a file.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sequences nested deeper than this are refused.
    pub max_depth: u32,
    /// A deflated data set may inflate to at most this many bytes.
    pub max_inflated: u64,
    /// The file meta group may hold at most this many bytes.
    pub max_meta: u64,
}

/// Sequences nest at most this deep (the stored metadata's JSON then stays under serde_json's 128 levels).
pub const MAX_DEPTH: u32 = 32;
/// A deflated data set inflates to at most 512 MiB.
pub const MAX_INFLATED: u64 = 512 * 1024 * 1024;
/// The file meta group holds at most 64 KiB.
pub const MAX_META: u64 = 64 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: MAX_DEPTH,
            max_inflated: MAX_INFLATED,
            max_meta: MAX_META,
        }
    }
}

/// Why a file was refused. The text is what a learner (or the STOW answer's ErrorComment) reads.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("not a DICOM Part-10 file: {0}")]
    NotPart10(&'static str),
    #[error("the file meta group is invalid: {0}")]
    Meta(String),
    #[error("the transfer syntax {0} is not supported")]
    UnsupportedTransferSyntax(String),
    #[error("the file ends inside {what} at byte {at}")]
    Truncated { what: &'static str, at: u64 },
    #[error("element {tag} declares {len} bytes, but only {left} remain")]
    LengthBeyondEnd { tag: TagText, len: u64, left: u64 },
    #[error("sequences are nested more than {max} deep (at element {tag})")]
    TooDeep { tag: TagText, max: u32 },
    #[error("the deflated data set inflates past {max} bytes")]
    InflatedTooLarge { max: u64 },
    #[error("{0}")]
    Structure(String),
    #[error(
        "the image's size overflows: rows × columns × samples per pixel × bits allocated × frames"
    )]
    PixelOverflow,
    #[error("PixelData holds {have} bytes, the image needs {need}")]
    PixelShort { have: u64, need: u64 },
    #[error("an image without PixelData (is the file truncated?)")]
    NoPixelData,
    #[error("the pixel data has no fragments")]
    NoFragments,
    #[error("the data set does not parse: {0}")]
    Parse(String),
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
}

impl Refusal {
    /// The element the refusal is about, when there is one (for `DICOM100: (gggg,eeee) - …` comments).
    pub fn tag(&self) -> Option<Tag> {
        match self {
            Refusal::LengthBeyondEnd { tag, .. } | Refusal::TooDeep { tag, .. } => Some(tag.0),
            Refusal::Meta(_) => Some(Tag(0x0002, 0x0000)),
            Refusal::PixelShort { .. } | Refusal::NoPixelData | Refusal::NoFragments => {
                Some(tags::PIXEL_DATA)
            }
            Refusal::PixelOverflow => Some(tags::NUMBER_OF_FRAMES),
            _ => None,
        }
    }
}

/// A tag written `(gggg,eeee)` in lower-case hex, as the service's comments write tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagText(pub Tag);

impl std::fmt::Display for TagText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({:04x},{:04x})", self.0.0, self.0.1)
    }
}

/// Where the bytes are.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// The image attributes of the top-level data set that size its pixel data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Image {
    pub rows: Option<u64>,
    pub columns: Option<u64>,
    pub samples_per_pixel: Option<u64>,
    pub bits_allocated: Option<u64>,
    pub frames: Option<u64>,
}

impl Image {
    /// Bytes of one native frame, or `None` when the file is not an image; an overflow is an error.
    pub fn frame_bytes(&self) -> Result<Option<u64>, Refusal> {
        let (Some(rows), Some(cols)) = (self.rows, self.columns) else {
            return Ok(None);
        };
        let bits = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(self.samples_per_pixel.unwrap_or(1)))
            .and_then(|n| n.checked_mul(self.bits_allocated.unwrap_or(8)))
            .ok_or(Refusal::PixelOverflow)?;
        Ok(Some(bits.div_ceil(8)))
    }

    /// Bytes every frame together needs.
    pub fn total_bytes(&self) -> Result<Option<u64>, Refusal> {
        let Some(frame) = self.frame_bytes()? else {
            return Ok(None);
        };
        let frames = self.frames.unwrap_or(1).max(1);
        // Computed in bits first so that a sub-byte frame size cannot hide an overflow.
        frame
            .checked_mul(frames)
            .map(Some)
            .ok_or(Refusal::PixelOverflow)
    }
}

/// The top-level PixelData, located in the data set's (decoded) byte stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pixel {
    /// Offset of the first value byte (native) or of the first item (encapsulated).
    pub value_offset: u64,
    /// Native pixel data: its declared length. `None` when encapsulated.
    pub native_len: Option<u64>,
    /// Encapsulated pixel data: `(offset, length)` of each fragment after the basic offset table.
    pub fragments: Vec<(u64, u64)>,
}

/// What the walk learned: enough to validate the file and to read its header, frames or whole data set.
#[derive(Debug, Clone)]
pub struct Scan {
    pub meta: FileMetaTable,
    /// The transfer syntax UID, without padding.
    pub transfer_syntax: String,
    /// Where the meta group's elements start: 132 after a preamble and `DICM`, 4 after `DICM` alone, 0
    /// for a bare meta group (pydicom's in-memory datasets).
    pub meta_start: u64,
    /// The meta group carries its group length (0002,0000).
    pub group_length: bool,
    /// Where the data set starts in the file (after the preamble, `DICM` and the meta group).
    pub dataset_start: u64,
    /// The data set is deflated: offsets below count inflated bytes.
    pub deflated: bool,
    /// Bytes of the (decoded) data set before the top-level PixelData, or all of it without one.
    pub header_len: u64,
    /// Elements (at any depth) in those bytes.
    pub header_elements: u64,
    pub pixel: Option<Pixel>,
    pub image: Image,
}

impl Scan {
    /// Whether the file has the standard form: preamble, `DICM`, and a meta group with its length.
    pub fn is_canonical(&self) -> bool {
        self.meta_start == 132 && self.group_length
    }

    /// For a file that is not in the standard form, the head to write in place of its bytes before the
    /// data set: a zero preamble, `DICM`, (0002,0000) if it was missing, and the meta group's elements.
    /// Strict readers (dicom-rs among them) then read the stored file.
    pub fn canonical_head(&self, source: Source<'_>) -> Result<Option<Vec<u8>>, Refusal> {
        if self.is_canonical() {
            return Ok(None);
        }
        let len = self.dataset_start.saturating_sub(self.meta_start);
        let mut meta = Vec::new();
        match source {
            Source::Bytes(b) => meta.extend_from_slice(
                b.get(self.meta_start as usize..self.dataset_start as usize)
                    .unwrap_or_default(),
            ),
            Source::File(path) => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(self.meta_start))?;
                f.take(len).read_to_end(&mut meta)?;
            }
        }
        if meta.len() as u64 != len {
            return Err(Refusal::Truncated {
                what: "the file meta group",
                at: self.meta_start + meta.len() as u64,
            });
        }
        let mut head = vec![0u8; 128];
        head.extend_from_slice(b"DICM");
        if !self.group_length {
            head.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
            head.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        }
        head.extend_from_slice(&meta);
        Ok(Some(head))
    }

    /// An image must carry all of its pixel data: native pixel data long enough for every frame, or at
    /// least one fragment. Sizes are computed with checked arithmetic.
    pub fn check_pixels(&self) -> Result<(), Refusal> {
        let Some(need) = self.image.total_bytes()? else {
            return Ok(());
        };
        let pixel = self.pixel.as_ref().ok_or(Refusal::NoPixelData)?;
        match pixel.native_len {
            Some(have) if have < need => Err(Refusal::PixelShort { have, need }),
            Some(_) => Ok(()),
            None if pixel.fragments.is_empty() => Err(Refusal::NoFragments),
            None => Ok(()),
        }
    }
}

/// Reads a Part-10 file's preamble, `DICM` and file meta group (element by element), then walks its
/// data set within `limits`. Nothing is allocated from a declared length.
pub fn scan(source: Source<'_>, limits: &Limits) -> Result<Scan, Refusal> {
    match source {
        Source::Bytes(bytes) => {
            let (meta, head) = read_head(bytes, limits)?;
            let rest = bytes.get(head.dataset_start as usize..).unwrap_or_default();
            scan_dataset(rest, rest.len() as u64, meta, head, limits)
        }
        Source::File(path) => {
            let mut file = File::open(path)?;
            let len = file.metadata()?.len();
            // The preamble, DICM and at most `max_meta` bytes of meta group: read whole, then parsed.
            let mut head = Vec::new();
            (&mut file)
                .take(132 + limits.max_meta + 16)
                .read_to_end(&mut head)?;
            let (meta, head) = read_head(&head, limits)?;
            file.seek(SeekFrom::Start(head.dataset_start))?;
            let rest = BufReader::with_capacity(64 * 1024, file);
            scan_dataset(
                rest,
                len.saturating_sub(head.dataset_start),
                meta,
                head,
                limits,
            )
        }
    }
}

/// The preamble, `DICM` and meta group; returns the table and where the data set starts.
/// Where the meta group was found, and whether it had its group length.
#[derive(Debug, Clone, Copy)]
struct Head {
    meta_start: u64,
    dataset_start: u64,
    group_length: bool,
}

/// Reads the preamble and `DICM` (or their absence: pydicom writes an in-memory dataset as its bare meta
/// group and data set, and fo-dicom and Orthanc store that), then the meta group.
fn read_head(bytes: &[u8], limits: &Limits) -> Result<(FileMetaTable, Head), Refusal> {
    let bare_meta = bytes.len() >= 8
        && bytes[..2] == [0x02, 0x00]
        && VR::from_binary([bytes[4], bytes[5]]).is_some();
    let start = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        132
    } else if bytes.starts_with(b"DICM") {
        4
    } else if bare_meta {
        0
    } else {
        return Err(Refusal::NotPart10(
            "no DICM prefix after the 128-byte preamble",
        ));
    };
    let (meta, len, group_length) = read_meta(&bytes[start..], limits)?;
    Ok((
        meta,
        Head {
            meta_start: start as u64,
            dataset_start: start as u64 + len,
            group_length,
        },
    ))
}

fn scan_dataset<R: Skip>(
    r: R,
    len: u64,
    meta: FileMetaTable,
    head: Head,
    limits: &Limits,
) -> Result<Scan, Refusal> {
    let transfer_syntax = meta
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string();
    let deflated = [
        uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
        uids::JPIP_REFERENCED_DEFLATE,
        uids::JPIPHTJ2K_REFERENCED_DEFLATE,
    ]
    .contains(&transfer_syntax.as_str());
    let syntax = syntax_of(&transfer_syntax)?;
    let walked = if deflated {
        let mut src = Src {
            r: Streamed(flate2::read::DeflateDecoder::new(r)),
            pos: 0,
            limit: limits.max_inflated,
            inflated: true,
        };
        walk(&mut src, syntax, limits)?
    } else {
        let mut src = Src {
            r,
            pos: 0,
            limit: len,
            inflated: false,
        };
        walk(&mut src, syntax, limits)?
    };
    Ok(Scan {
        meta,
        transfer_syntax,
        meta_start: head.meta_start,
        group_length: head.group_length,
        dataset_start: head.dataset_start,
        deflated,
        header_len: walked.header_len,
        header_elements: walked.header_elements,
        pixel: walked.pixel,
        image: walked.image,
    })
}

/// Reads group 0002 element by element (explicit VR little endian), whether or not (0002,0000) is there,
/// and builds the table dicom-object would have read. Returns it and the bytes it took.
fn read_meta(bytes: &[u8], limits: &Limits) -> Result<(FileMetaTable, u64, bool), Refusal> {
    let mut src = Src {
        r: bytes,
        pos: 0,
        limit: bytes.len() as u64,
        inflated: false,
    };
    let mut builder = FileMetaTableBuilder::new();
    let mut has_ts = false;
    let mut group_length = false;
    // The first element of another group is the data set's.
    while src.r.len() >= 2 && u16::from_le_bytes([src.r[0], src.r[1]]) == 0x0002 {
        let mut tag = [0u8; 4];
        src.read(&mut tag, "the file meta group")?;
        let tag = Tag(
            u16::from_le_bytes([tag[0], tag[1]]),
            u16::from_le_bytes([tag[2], tag[3]]),
        );
        let mut vr = [0u8; 2];
        src.read(&mut vr, "the file meta group")?;
        let vr = VR::from_binary(vr).unwrap_or(VR::UN);
        let len = if long_length(vr) {
            let mut b = [0u8; 6];
            src.read(&mut b, "the file meta group")?;
            u32::from_le_bytes([b[2], b[3], b[4], b[5]])
        } else {
            let mut b = [0u8; 2];
            src.read(&mut b, "the file meta group")?;
            u32::from(u16::from_le_bytes(b))
        };
        if len == UNDEFINED {
            return Err(Refusal::Meta(format!(
                "{} has an undefined length",
                TagText(tag)
            )));
        }
        let len = u64::from(len);
        if src.pos.saturating_add(len) > limits.max_meta {
            return Err(Refusal::Meta(format!(
                "the group is longer than {} bytes",
                limits.max_meta
            )));
        }
        check_fits(src.pos, len, src.limit, tag)?;
        let value = &src.r[..len as usize];
        src.skip(len, "the file meta group")?;
        let text = || {
            String::from_utf8_lossy(value)
                .trim_end_matches(['\0', ' '])
                .to_string()
        };
        group_length |= tag.1 == 0x0000;
        builder = match tag.1 {
            0x0001 if value.len() >= 2 => builder.information_version([value[0], value[1]]),
            0x0002 => builder.media_storage_sop_class_uid(text()),
            0x0003 => builder.media_storage_sop_instance_uid(text()),
            0x0010 => {
                has_ts = true;
                builder.transfer_syntax(text())
            }
            0x0012 => builder.implementation_class_uid(text()),
            0x0013 => builder.implementation_version_name(text()),
            0x0016 => builder.source_application_entity_title(text()),
            0x0017 => builder.sending_application_entity_title(text()),
            0x0018 => builder.receiving_application_entity_title(text()),
            0x0100 => builder.private_information_creator_uid(text()),
            0x0102 => builder.private_information(value.to_vec()),
            _ => builder,
        };
    }
    if !has_ts {
        return Err(Refusal::Meta(
            "the Transfer Syntax UID (0002,0010) is missing".into(),
        ));
    }
    let meta = builder.build().map_err(|e| Refusal::Meta(e.to_string()))?;
    Ok((meta, src.pos, group_length))
}

/// The data set's encoding for a transfer syntax the service can read.
fn syntax_of(uid: &str) -> Result<Syntax, Refusal> {
    let ts = TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| Refusal::UnsupportedTransferSyntax(uid.to_string()))?;
    Ok(Syntax {
        explicit: uid != uids::IMPLICIT_VR_LITTLE_ENDIAN,
        big_endian: ts.endianness() == Endianness::Big,
    })
}

/// The (decoded) data set as a stream, from its first byte.
fn dataset_stream<'a>(source: Source<'a>, scan: &Scan) -> Result<Box<dyn Read + 'a>, Refusal> {
    let raw: Box<dyn Read + 'a> = match source {
        Source::Bytes(b) => {
            let start = usize::try_from(scan.dataset_start)
                .unwrap_or(usize::MAX)
                .min(b.len());
            Box::new(&b[start..])
        }
        Source::File(path) => {
            let mut f = File::open(path)?;
            f.seek(SeekFrom::Start(scan.dataset_start))?;
            Box::new(BufReader::with_capacity(64 * 1024, f))
        }
    };
    Ok(if scan.deflated {
        Box::new(flate2::read::DeflateDecoder::new(raw))
    } else {
        raw
    })
}

/// The transfer syntax dicom-parser reads the (decoded) data set with.
fn parse_syntax(scan: &Scan) -> Result<&'static dicom_encoding::TransferSyntax, Refusal> {
    let uid = if scan.deflated {
        uids::EXPLICIT_VR_LITTLE_ENDIAN
    } else {
        scan.transfer_syntax.as_str()
    };
    TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| Refusal::UnsupportedTransferSyntax(uid.to_string()))
}

/// The file's header: its meta group and its data set up to (not including) the top-level PixelData.
/// Memory follows the header's size; `scan` must come from the same bytes.
pub fn read_header(source: Source<'_>, scan: &Scan) -> Result<DefaultDicomObject, Refusal> {
    let stream = dataset_stream(source, scan)?.take(scan.header_len);
    parse(stream, scan)
}

/// The whole data set, pixel data included (rendering). Bound the file's size before calling this.
pub fn read_all(source: Source<'_>, scan: &Scan) -> Result<DefaultDicomObject, Refusal> {
    parse(dataset_stream(source, scan)?, scan)
}

fn parse(stream: impl Read, scan: &Scan) -> Result<DefaultDicomObject, Refusal> {
    let ts = parse_syntax(scan)?;
    let obj = InMemDicomObject::read_dataset_with_ts(stream, ts)
        .map_err(|e| Refusal::Parse(e.to_string()))?;
    Ok(obj.with_exact_meta(scan.meta.clone()))
}

/// Scans with the default limits and reads the header: what a client does with a file it did not write.
pub fn open_header(path: &Path) -> Result<DefaultDicomObject, Refusal> {
    let scan = scan(Source::File(path), &Limits::default())?;
    read_header(Source::File(path), &scan)
}

/// The raw bytes of the given (1-based) frames: native frames by offset, encapsulated frames as one
/// fragment each. Reads only those bytes (a deflated data set is inflated up to them).
pub fn read_frames(
    source: Source<'_>,
    scan: &Scan,
    frames: &[u32],
) -> Result<Vec<Vec<u8>>, Refusal> {
    let pixel = scan.pixel.as_ref().ok_or(Refusal::NoPixelData)?;
    let mut spans: Vec<(u64, u64)> = Vec::with_capacity(frames.len());
    for f in frames {
        let index = u64::from(f.saturating_sub(1));
        let span = match pixel.native_len {
            Some(len) => {
                let size = scan
                    .image
                    .frame_bytes()?
                    .filter(|s| *s > 0)
                    .ok_or_else(|| Refusal::Structure("the image has no dimensions".into()))?;
                let start = index.checked_mul(size).ok_or(Refusal::PixelOverflow)?;
                let end = start.checked_add(size).ok_or(Refusal::PixelOverflow)?;
                if end > len {
                    return Err(Refusal::Structure(format!("frame {f} is not in the file")));
                }
                (pixel.value_offset + start, size)
            }
            None => *pixel
                .fragments
                .get(usize::try_from(index).unwrap_or(usize::MAX))
                .ok_or_else(|| Refusal::Structure(format!("frame {f} is not in the file")))?,
        };
        spans.push(span);
    }
    let mut out = Vec::with_capacity(spans.len());
    for (offset, len) in spans {
        let mut stream = dataset_stream(source, scan)?;
        std::io::copy(&mut (&mut stream).take(offset), &mut std::io::sink())?;
        let mut buf = Vec::new();
        stream.take(len).read_to_end(&mut buf)?;
        if (buf.len() as u64) < len {
            return Err(Refusal::Truncated {
                what: "a frame",
                at: offset + buf.len() as u64,
            });
        }
        out.push(buf);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
