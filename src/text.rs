//! Text from outside (a server's answer, a file) made safe to show: control characters and escape
//! sequences become visible (`␛[2J` shows as text), so a hostile server cannot move the cursor, set the
//! title or write the clipboard through an error message.

use std::borrow::Cow;

/// `s` with every control character but newline and tab replaced by a visible picture (`␛`, `␇`, …).
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\n' | '\t' => c,
                // U+2400.. are the Control Pictures for C0; DEL has its own.
                c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('?'),
                '\u{7f}' => '␡',
                c if c.is_control() => '�',
                c => c,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_visible() {
        assert_eq!(visible("plain"), "plain");
        assert_eq!(visible("a\x1b[2Jb\x07"), "a␛[2Jb␇");
        assert_eq!(visible("line\nnext\ttab"), "line\nnext\ttab");
        assert_eq!(visible("\u{9b}31m"), "�31m");
    }
}
