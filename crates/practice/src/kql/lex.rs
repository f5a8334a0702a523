//! The lexer: query text to tokens (identifiers, strings, numbers, symbols); `//` comments skipped,
//! `datetime(…)`'s text taken as written.

use super::query::{KqlError, MAX_QUERY_CHARS};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
}

/// Query text to tokens.
pub(super) fn lex(text: &str) -> Result<Vec<Tok>, KqlError> {
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(KqlError::Syntax(format!(
            "the query is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i = if c.is_whitespace() {
            i + 1
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            skip_comment(&chars, i)
        } else if c == '"' || c == '\'' {
            string(&chars, i, &mut out)?
        } else if c.is_ascii_digit() {
            number(&chars, i, &mut out)?
        } else if c.is_alphabetic()
            || c == '_'
            || c == '!' && chars.get(i + 1).is_some_and(|n| n.is_alphabetic())
        {
            word(&chars, i, &mut out)?
        } else {
            symbol(&chars, i, &mut out)?
        };
    }
    Ok(out)
}

/// A `//` comment, to the end of its line; answers where the lexer goes on.
fn skip_comment(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '\n' {
        i += 1;
    }
    i
}

/// A string in the quote at `chars[i]` (a backslash escapes the next character).
fn string(chars: &[char], mut i: usize, out: &mut Vec<Tok>) -> Result<usize, KqlError> {
    let c = chars[i];
    let mut s = String::new();
    i += 1;
    loop {
        match chars.get(i) {
            None => return Err(KqlError::Syntax("a string is not closed".into())),
            Some('\\') => {
                if let Some(n) = chars.get(i + 1) {
                    s.push(*n);
                }
                i += 2;
            }
            Some(q) if *q == c => {
                i += 1;
                break;
            }
            Some(other) => {
                s.push(*other);
                i += 1;
            }
        }
    }
    out.push(Tok::Str(s));
    Ok(i)
}

/// A number; with a unit right after it (`ago(5m)`) it stays with it as an identifier.
fn number(chars: &[char], mut i: usize, out: &mut Vec<Tok>) -> Result<usize, KqlError> {
    let start = i;
    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
        i += 1;
    }
    let s: String = chars[start..i].iter().collect();
    let n = s
        .parse::<f64>()
        .map_err(|_| KqlError::Syntax(format!("'{s}' is not a number")))?;
    if i < chars.len() && chars[i].is_ascii_alphabetic() {
        let ustart = i;
        while i < chars.len() && chars[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit: String = chars[ustart..i].iter().collect();
        out.push(Tok::Ident(format!("{s}{unit}")));
    } else {
        out.push(Tok::Num(n));
    }
    Ok(i)
}

/// An identifier (or `!has`-like operator); `datetime(…)`'s text is taken as written.
fn word(chars: &[char], mut i: usize, out: &mut Vec<Tok>) -> Result<usize, KqlError> {
    let start = i;
    i += 1;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    let word: String = chars[start..i].iter().collect();
    let is_datetime = word.eq_ignore_ascii_case("datetime");
    out.push(Tok::Ident(word));
    // datetime(2026-11-30T14:00:00Z): the text inside is taken as written.
    if is_datetime {
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        if chars.get(j) == Some(&'(') {
            let close = chars[j..]
                .iter()
                .position(|c| *c == ')')
                .ok_or_else(|| KqlError::Syntax("datetime( is not closed".into()))?;
            let raw: String = chars[j + 1..j + close].iter().collect();
            let raw = raw.trim().trim_matches(['"', '\'']).to_string();
            out.push(Tok::Sym("("));
            out.push(Tok::Str(raw));
            out.push(Tok::Sym(")"));
            i = j + close + 1;
        }
    }
    Ok(i)
}

/// A one- or two-character symbol; anything else is refused.
fn symbol(chars: &[char], i: usize, out: &mut Vec<Tok>) -> Result<usize, KqlError> {
    let c = chars[i];
    let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
    let sym = match two.as_str() {
        "==" => Some("=="),
        "!=" => Some("!="),
        "=~" => Some("=~"),
        "<=" => Some("<="),
        ">=" => Some(">="),
        _ => None,
    };
    if let Some(s) = sym {
        out.push(Tok::Sym(s));
        return Ok(i + 2);
    }
    let one = match c {
        '|' => "|",
        '<' => "<",
        '>' => ">",
        '(' => "(",
        ')' => ")",
        ',' => ",",
        '.' => ".",
        _ => {
            return Err(KqlError::Syntax(format!(
                "unexpected character '{}'",
                c.escape_default()
            )));
        }
    };
    out.push(Tok::Sym(one));
    Ok(i + 1)
}
