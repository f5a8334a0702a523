//! UID syntax as the service checks it (docs/contract.md §3.6): digits and dots only, at most 64 characters after
//! trailing spaces (and NUL padding) are trimmed, ending in a digit.

/// Trims the padding DICOM allows at the end of a UI value.
pub fn trim_uid(value: &str) -> &str {
    value.trim_end_matches([' ', '\0'])
}

/// Whether `value` is a UID the service accepts.
pub fn is_valid_uid(value: &str) -> bool {
    let v = trim_uid(value);
    !v.is_empty()
        && v.len() <= 64
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.as_bytes().last().is_some_and(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_lab_uids() {
        assert!(is_valid_uid(
            "1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420"
        ));
        assert!(is_valid_uid("1.2.3\0"));
        assert!(is_valid_uid("1.2.3 "));
    }

    #[test]
    fn rejects_what_the_service_rejects() {
        for bad in [
            "",
            "abc.123",
            "11|",
            "1.2.",
            "../etc",
            &"1".repeat(65),
            "1.2-3",
        ] {
            assert!(!is_valid_uid(bad), "{bad:?} should be invalid");
        }
        assert!(is_valid_uid(&"1".repeat(64)));
    }
}
