//! How the service writes a tag: the number its index stores, the text its error comments show.

use dicom_core::Tag;

/// `(gggg,eeee)` in lower-case hex, as the service's error comments write tags.
pub(crate) fn tag_text(tag: Tag) -> String {
    format!("({:04x},{:04x})", tag.0, tag.1)
}

/// A tag as the index stores it.
pub(crate) fn tag_number(tag: Tag) -> i64 {
    (i64::from(tag.0) << 16) | i64::from(tag.1)
}
