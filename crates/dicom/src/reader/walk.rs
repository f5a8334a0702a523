//! The element walk under [`super::scan`]: a bounded source ([`Src`]) that never reads past the bytes
//! that remain, how the data set is encoded ([`Syntax`]), and the walk itself — an explicit stack of
//! items and sequences, every declared length checked before anything is read.

use std::fs::File;
use std::io::{BufReader, Read};

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};

use super::{Image, Limits, Pixel, Refusal, TagText};

pub(super) const ITEM: Tag = Tag(0xFFFE, 0xE000);
pub(super) const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
pub(super) const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);
pub(super) const UNDEFINED: u32 = 0xFFFF_FFFF;

/// Bytes that can be skipped cheaply.
pub(super) trait Skip: Read {
    fn skip(&mut self, n: u64) -> std::io::Result<()>;
}

impl Skip for &[u8] {
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        let n = usize::try_from(n).unwrap_or(usize::MAX).min(self.len());
        *self = &self[n..];
        Ok(())
    }
}

impl Skip for BufReader<File> {
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        let n = i64::try_from(n).map_err(|_| std::io::Error::other("skip too long"))?;
        self.seek_relative(n)
    }
}

/// A stream that cannot seek (an inflated data set): skipping reads.
pub(super) struct Streamed<R>(pub(super) R);

impl<R: Read> Read for Streamed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Skip for Streamed<R> {
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        let copied = std::io::copy(&mut (&mut self.0).take(n), &mut std::io::sink())?;
        if copied < n {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// The byte stream under the walk, with its position and how far it may go.
pub(super) struct Src<R> {
    pub(super) r: R,
    pub(super) pos: u64,
    /// Bytes that exist (a file) or may be inflated (a deflated data set).
    pub(super) limit: u64,
    pub(super) inflated: bool,
}

impl<R: Skip> Src<R> {
    pub(super) fn past_limit(&self, what: &'static str) -> Refusal {
        if self.inflated {
            Refusal::InflatedTooLarge { max: self.limit }
        } else {
            Refusal::Truncated { what, at: self.pos }
        }
    }

    pub(super) fn read(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), Refusal> {
        let n = buf.len() as u64;
        if self.limit.saturating_sub(self.pos) < n {
            return Err(self.past_limit(what));
        }
        self.r.read_exact(buf).map_err(|e| eof(e, what, self.pos))?;
        self.pos += n;
        Ok(())
    }

    /// Reads a 4-byte tag, or `None` at a clean end of the stream.
    pub(super) fn tag_or_end(&mut self, what: &'static str) -> Result<Option<[u8; 4]>, Refusal> {
        let mut buf = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.r.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(Refusal::Truncated { what, at: self.pos }),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.pos.saturating_add(4) > self.limit {
            return Err(self.past_limit(what));
        }
        self.pos += 4;
        Ok(Some(buf))
    }

    pub(super) fn skip(&mut self, n: u64, what: &'static str) -> Result<(), Refusal> {
        if self.limit.saturating_sub(self.pos) < n {
            return Err(self.past_limit(what));
        }
        self.r.skip(n).map_err(|e| eof(e, what, self.pos))?;
        self.pos += n;
        Ok(())
    }
}

pub(super) fn eof(e: std::io::Error, what: &'static str, at: u64) -> Refusal {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Refusal::Truncated { what, at }
    } else {
        Refusal::Io(e)
    }
}

/// How the data set's elements are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Syntax {
    pub(super) explicit: bool,
    pub(super) big_endian: bool,
}

impl Syntax {
    pub(super) fn u16(self, b: [u8; 2]) -> u16 {
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }
    pub(super) fn u32(self, b: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }
    pub(super) fn tag(self, b: [u8; 4]) -> Tag {
        Tag(self.u16([b[0], b[1]]), self.u16([b[2], b[3]]))
    }
}

/// VRs whose explicit header has two reserved bytes and a 32-bit length.
pub(super) fn long_length(vr: VR) -> bool {
    !matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::AT
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::FL
            | VR::FD
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::SL
            | VR::SS
            | VR::ST
            | VR::TM
            | VR::UI
            | VR::UL
            | VR::US
    )
}

/// The VR an implicit-VR decoder gives a tag (what dicom-parser will do with it).
pub(super) fn implicit_vr(tag: Tag) -> VR {
    if tag == tags::PIXEL_DATA || (tag.0 >> 8 == 0x60 && tag.1 == 0x3000) {
        return VR::OW;
    }
    StandardDataDictionary
        .by_tag(tag)
        .map_or(VR::UN, |e| e.vr().relaxed())
}

/// One open sequence, item or pixel-fragment sequence of the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frame {
    Sequence { end: Option<u64> },
    Item { end: Option<u64> },
    Fragments { top_level: bool },
}

impl Frame {
    pub(super) fn end(self) -> Option<u64> {
        match self {
            Frame::Sequence { end } | Frame::Item { end } => end,
            Frame::Fragments { .. } => None,
        }
    }
}
/// What the data set walk found.
#[derive(Debug, Default)]
pub(super) struct Walked {
    pub(super) header_len: u64,
    pub(super) header_elements: u64,
    pub(super) pixel: Option<Pixel>,
    pub(super) image: Image,
}

/// Walks a data set with an explicit stack: every declared length is checked against what remains of
/// the stream and of each enclosing item and sequence, sequences nest at most `max_depth` deep.
pub(super) fn walk<R: Skip>(
    src: &mut Src<R>,
    syntax: Syntax,
    limits: &Limits,
) -> Result<Walked, Refusal> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut depth: u32 = 0;
    let mut out = Walked::default();
    let mut elements: u64 = 0;
    let mut header_done = false;
    let mut offset_table_pending = false;
    loop {
        close_ended(&mut stack, &mut depth, src.pos)?;
        // The nearest defined end: no length may reach past it.
        let item_bound = stack.iter().rev().find_map(|f| f.end());
        let bound = item_bound.unwrap_or(src.limit);
        let inflated = src.inflated;
        let fits = move |pos: u64, len: u64, tag: Tag| {
            if item_bound.is_none() && inflated && len > bound.saturating_sub(pos) {
                return Err(Refusal::InflatedTooLarge { max: bound });
            }
            check_fits(pos, len, bound, tag)
        };
        match stack.last().copied() {
            Some(Frame::Sequence { end }) => {
                in_sequence(src, syntax, &mut stack, &mut depth, end, fits)?;
            }
            Some(Frame::Fragments { top_level }) => {
                let pixel = if top_level && !std::mem::replace(&mut offset_table_pending, false) {
                    out.pixel.as_mut()
                } else {
                    None
                };
                in_fragments(src, syntax, &mut stack, pixel, fits)?;
            }
            Some(Frame::Item { .. }) | None => {
                let start = src.pos;
                let Some(raw) = src.tag_or_end("an element")? else {
                    if stack.is_empty() {
                        break;
                    }
                    return Err(Refusal::Truncated {
                        what: "an item",
                        at: src.pos,
                    });
                };
                let tag = syntax.tag(raw);
                let top_level = stack.is_empty();
                if top_level && !header_done && tag == tags::PIXEL_DATA {
                    header_done = true;
                    out.header_len = start;
                    out.header_elements = elements;
                }
                elements += 1;
                let (vr, len) = element_header(src, syntax, tag)?;
                if tag.0 == 0xFFFE {
                    item_delimiter(tag, &mut stack)?;
                    continue;
                }
                if tag == tags::PIXEL_DATA && len == UNDEFINED {
                    if top_level {
                        out.pixel = Some(Pixel {
                            value_offset: src.pos,
                            native_len: None,
                            fragments: Vec::new(),
                        });
                        offset_table_pending = true;
                    }
                    stack.push(Frame::Fragments { top_level });
                    continue;
                }
                if vr == VR::SQ || len == UNDEFINED {
                    depth += 1;
                    if depth > limits.max_depth {
                        return Err(Refusal::TooDeep {
                            tag: TagText(tag),
                            max: limits.max_depth,
                        });
                    }
                    let end = defined_end(src.pos, len, tag, fits)?;
                    stack.push(Frame::Sequence { end });
                    continue;
                }
                element_value(src, syntax, (tag, vr, len), top_level, &mut out, fits)?;
            }
        }
    }
    if !stack.is_empty() {
        return Err(Refusal::Truncated {
            what: "a sequence",
            at: src.pos,
        });
    }
    if !header_done {
        out.header_len = src.pos;
        out.header_elements = elements;
    }
    Ok(out)
}

/// A defined-length element's value: checked against the bound, then read when the top level's
/// image attributes need it (native pixel data noted), else skipped.
fn element_value<R: Skip>(
    src: &mut Src<R>,
    syntax: Syntax,
    (tag, vr, len): (Tag, VR, u32),
    top_level: bool,
    out: &mut Walked,
    fits: impl Fn(u64, u64, Tag) -> Result<(), Refusal>,
) -> Result<(), Refusal> {
    let len = u64::from(len);
    fits(src.pos, len, tag)?;
    if top_level && tag == tags::PIXEL_DATA {
        out.pixel = Some(Pixel {
            value_offset: src.pos,
            native_len: Some(len),
            fragments: Vec::new(),
        });
    }
    if top_level && len <= 16 && is_image_attribute(tag) {
        let mut value = [0u8; 16];
        let value = &mut value[..len as usize];
        src.read(value, "an element")?;
        record_image(&mut out.image, tag, vr, value, syntax);
    } else {
        src.skip(len, "an element's value")?;
    }
    Ok(())
}

/// Closes the defined-length items and sequences that end at `pos`.
fn close_ended(stack: &mut Vec<Frame>, depth: &mut u32, pos: u64) -> Result<(), Refusal> {
    while let Some(end) = stack.last().and_then(|f| f.end()) {
        if pos < end {
            break;
        }
        if pos > end {
            return Err(Refusal::Structure(format!(
                "an element runs past the end of its item or sequence (byte {pos})"
            )));
        }
        if let Some(Frame::Sequence { .. }) = stack.pop() {
            *depth -= 1;
        }
    }
    Ok(())
}

/// Inside a sequence: an item opens, or (undefined length) the sequence ends.
fn in_sequence<R: Skip>(
    src: &mut Src<R>,
    syntax: Syntax,
    stack: &mut Vec<Frame>,
    depth: &mut u32,
    end: Option<u64>,
    fits: impl Fn(u64, u64, Tag) -> Result<(), Refusal>,
) -> Result<(), Refusal> {
    let (tag, len) = item_header(src, syntax, "a sequence")?;
    match tag {
        ITEM => {
            let end = defined_end(src.pos, len, tag, fits)?;
            stack.push(Frame::Item { end });
        }
        SEQUENCE_END if end.is_none() => {
            stack.pop();
            *depth -= 1;
        }
        other => {
            return Err(Refusal::Structure(format!(
                "a sequence holds {} where an item was expected",
                TagText(other)
            )));
        }
    }
    Ok(())
}

/// Inside encapsulated pixel data: a fragment (noted in `pixel`, the top level's past its basic
/// offset table) or the end of the fragments.
fn in_fragments<R: Skip>(
    src: &mut Src<R>,
    syntax: Syntax,
    stack: &mut Vec<Frame>,
    pixel: Option<&mut Pixel>,
    fits: impl Fn(u64, u64, Tag) -> Result<(), Refusal>,
) -> Result<(), Refusal> {
    let (tag, len) = item_header(src, syntax, "the pixel data fragments")?;
    match tag {
        ITEM if len != UNDEFINED => {
            let len = u64::from(len);
            fits(src.pos, len, tag)?;
            if let Some(pixel) = pixel {
                pixel.fragments.push((src.pos, len));
            }
            src.skip(len, "a pixel data fragment")?;
        }
        SEQUENCE_END => {
            stack.pop();
        }
        other => {
            return Err(Refusal::Structure(format!(
                "the pixel data fragments hold {} where a defined-length item was expected",
                TagText(other)
            )));
        }
    }
    Ok(())
}

/// An item delimiter among elements: it closes the item (dicom-parser ignores a stray one at the top
/// level; so does the walk); any other (FFFE,xxxx) there is refused.
fn item_delimiter(tag: Tag, stack: &mut Vec<Frame>) -> Result<(), Refusal> {
    match (tag, stack.last()) {
        (ITEM_END, None) => Ok(()),
        (ITEM_END, Some(_)) => {
            stack.pop();
            Ok(())
        }
        _ => Err(Refusal::Structure(format!(
            "{} outside a sequence",
            TagText(tag)
        ))),
    }
}

pub(super) fn check_fits(pos: u64, len: u64, bound: u64, tag: Tag) -> Result<(), Refusal> {
    let left = bound.saturating_sub(pos);
    if len > left {
        return Err(Refusal::LengthBeyondEnd {
            tag: TagText(tag),
            len,
            left,
        });
    }
    Ok(())
}

/// The end of a defined-length item or sequence (checked to fit), or `None` for an undefined length.
pub(super) fn defined_end(
    pos: u64,
    len: u32,
    tag: Tag,
    fits: impl Fn(u64, u64, Tag) -> Result<(), Refusal>,
) -> Result<Option<u64>, Refusal> {
    if len == UNDEFINED {
        return Ok(None);
    }
    let len = u64::from(len);
    fits(pos, len, tag)?;
    Ok(Some(pos + len))
}

/// An item, item end or sequence end header: a tag and a 32-bit length, in every syntax.
pub(super) fn item_header<R: Skip>(
    src: &mut Src<R>,
    syntax: Syntax,
    what: &'static str,
) -> Result<(Tag, u32), Refusal> {
    let mut b = [0u8; 8];
    src.read(&mut b, what)?;
    Ok((
        syntax.tag([b[0], b[1], b[2], b[3]]),
        syntax.u32([b[4], b[5], b[6], b[7]]),
    ))
}

/// The rest of an element header after its tag: its VR (as dicom-parser will see it) and length.
pub(super) fn element_header<R: Skip>(
    src: &mut Src<R>,
    syntax: Syntax,
    tag: Tag,
) -> Result<(VR, u32), Refusal> {
    if tag.0 == 0xFFFE || !syntax.explicit {
        let mut b = [0u8; 4];
        src.read(&mut b, "an element header")?;
        let vr = if tag.0 == 0xFFFE {
            VR::UN
        } else {
            implicit_vr(tag)
        };
        return Ok((vr, syntax.u32(b)));
    }
    let mut b = [0u8; 2];
    src.read(&mut b, "an element header")?;
    let vr = VR::from_binary(b).unwrap_or(VR::UN);
    if long_length(vr) {
        let mut b = [0u8; 6];
        src.read(&mut b, "an element header")?;
        Ok((vr, syntax.u32([b[2], b[3], b[4], b[5]])))
    } else {
        let mut b = [0u8; 2];
        src.read(&mut b, "an element header")?;
        Ok((vr, u32::from(syntax.u16(b))))
    }
}

pub(super) fn is_image_attribute(tag: Tag) -> bool {
    [
        tags::ROWS,
        tags::COLUMNS,
        tags::SAMPLES_PER_PIXEL,
        tags::BITS_ALLOCATED,
        tags::NUMBER_OF_FRAMES,
    ]
    .contains(&tag)
}

pub(super) fn record_image(image: &mut Image, tag: Tag, vr: VR, value: &[u8], syntax: Syntax) {
    let number = match (vr, value.len()) {
        (VR::IS | VR::DS | VR::UN, _) if tag == tags::NUMBER_OF_FRAMES => {
            std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.trim_matches(['\0', ' ']).parse::<u64>().ok())
        }
        (_, 2) => Some(u64::from(syntax.u16([value[0], value[1]]))),
        (_, 4) => Some(u64::from(
            syntax.u32([value[0], value[1], value[2], value[3]]),
        )),
        _ => None,
    };
    let slot = match tag {
        t if t == tags::ROWS => &mut image.rows,
        t if t == tags::COLUMNS => &mut image.columns,
        t if t == tags::SAMPLES_PER_PIXEL => &mut image.samples_per_pixel,
        t if t == tags::BITS_ALLOCATED => &mut image.bits_allocated,
        _ => &mut image.frames,
    };
    *slot = number;
}
