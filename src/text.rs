//! Text from elsewhere (a server's error message, a file's attribute) made safe to show in a terminal:
//! control characters and escape sequences become visible symbols, so a hostile server cannot move the
//! cursor, set the window title or write the clipboard (OSC 52) through what the learner reads.

use std::borrow::Cow;

/// Whether a character must not reach the terminal as is.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        // Bidirectional overrides and isolates reorder what is shown ("Trojan Source").
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// `s` with every control character except newline and tab made visible: C0 controls as their Unicode
/// control pictures (`␛` for ESC, `␍` for CR, `␇` for BEL), DEL as `␡`, C1 controls (U+0080–U+009F,
/// which some terminals obey like ESC sequences) as `�`, bidirectional overrides as `\u{…}`. Borrows
/// when there is nothing to change.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !hidden(c) {
            out.push(c);
            continue;
        }
        match c as u32 {
            n @ 0x00..=0x1F => out.push(char::from_u32(0x2400 + n).unwrap_or('\u{FFFD}')),
            0x7F => out.push('\u{2421}'),
            0x80..=0x9F => out.push('\u{FFFD}'),
            n => out.push_str(&format!("\\u{{{n:x}}}")),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_visible() {
        assert!(matches!(
            visible("plain text\nnext\tline"),
            Cow::Borrowed(_)
        ));
        assert_eq!(visible("\u{1b}]0;pwned\u{7}\u{1b}[2J"), "␛]0;pwned␇␛[2J");
        assert_eq!(visible("a\rb\u{7f}"), "a␍b␡");
        assert_eq!(visible("\u{9b}31m"), "�31m");
        assert_eq!(visible("plain"), "plain");
        assert_eq!(visible("a\x1b[2Jb\x07"), "a␛[2Jb␇");
        assert_eq!(visible("line\nnext\ttab"), "line\nnext\ttab");
        assert_eq!(visible("abc\u{202e}def"), "abc\\u{202e}def");
        // OSC 52 (clipboard) cannot survive.
        let osc52 = "\u{1b}]52;c;cm0gLXJmIH4=\u{7}";
        assert!(!visible(osc52).contains('\u{1b}'));
    }
}
