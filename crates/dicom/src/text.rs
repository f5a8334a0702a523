//! Text from elsewhere (a server's error message, a file's attribute) made safe to show in a terminal:
//! control characters and escape sequences become visible symbols, so a hostile server cannot move the
//! cursor, set the window title or write the clipboard (OSC 52) through what the learner reads.

use std::borrow::Cow;

/// Whether a character must not reach the terminal as is.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        // Bidirectional controls reorder what is shown ("Trojan Source"): the embeddings and
        // overrides, the isolates, and the marks — left-to-right, right-to-left, the Arabic letter
        // mark (U+061C).
        || matches!(
            c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
        )
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

/// The first `max` characters of `s` (all of it when shorter), with `…` when it was cut.
pub fn prefix(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((end, _)) => Cow::Owned(format!("{}…", &s[..end])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_cut_on_characters() {
        assert_eq!(prefix("abc", 3), "abc");
        assert_eq!(prefix("abcd", 3), "abc…");
        assert_eq!(prefix("ééé", 2), "éé…");
    }

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
        // Every bidirectional control Unicode lists (UAX #9), none left to reorder a line.
        for c in ('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
            .chain(['\u{200E}', '\u{200F}', '\u{061C}'])
        {
            let s = format!("a{c}b");
            assert!(!visible(&s).contains(c), "U+{:04X} got through", c as u32);
        }
        // OSC 52 (clipboard) cannot survive.
        let osc52 = "\u{1b}]52;c;cm0gLXJmIH4=\u{7}";
        assert!(!visible(osc52).contains('\u{1b}'));
    }
}
