//! Pieces the screens draw with: forms of named fields, tag trees, tables, gauges, and the one-line
//! answer of a request. Drawing only, plus the small state a form or a tree keeps.

pub mod form;
pub mod tree;

use std::path::PathBuf;

use crossterm::event::KeyCode;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};
use serde_json::Value;

use super::component::Request;
use super::theme::{Theme, bold, reversed};

pub use form::{FieldKey, Form, FormKey};
pub use tree::{TagTree, element_text, value_of};

/// A line that says how something went: ✓ and what happened, or ✗ and why not.
pub fn outcome_line(theme: Theme, ok: bool, text: &str) -> Line<'static> {
    Line::from(vec![theme.ok(ok), Span::raw(format!(" {text}"))])
}

/// The line of a message kept on a screen (what an import or a save said).
pub fn notice_line(theme: Theme, notice: &Result<String, String>) -> Line<'static> {
    match notice {
        Ok(t) => outcome_line(theme, true, t),
        Err(e) => outcome_line(theme, false, e),
    }
}

/// The line of a request whose answer is a sentence: the last answer (also while the next runs), or
/// why it failed.
pub fn request_line(theme: Theme, request: &Request<String>) -> Option<Line<'static>> {
    match request {
        Request::Failed(e) => Some(outcome_line(theme, false, e)),
        other => other.last().map(|t| outcome_line(theme, true, t)),
    }
}

/// A long UID, its end kept (that is where sibling UIDs differ).
pub fn short_uid(uid: &str, max: usize) -> String {
    let n = uid.chars().count();
    if n <= max || max < 2 {
        uid.to_string()
    } else {
        let tail: String = uid.chars().skip(n - (max - 1)).collect();
        format!("…{tail}")
    }
}

/// A text gauge (works in every terminal, over SSH, in snapshots).
pub fn gauge(theme: Theme, done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        ((done.min(total) as f64 / total as f64) * width as f64).round() as usize
    };
    format!(
        "{}{}",
        theme.glyph("█", "#").repeat(filled),
        theme.glyph("░", "-").repeat(width.saturating_sub(filled))
    )
}

/// Draws `lines` at the top of `area`, as many rows as they take wrapped; the rest of `area` is
/// returned (for a table or a tree below them).
pub fn top_lines(f: &mut Frame, area: Rect, lines: Vec<Line<'static>>) -> Rect {
    let h = wrapped(&lines, area.width);
    let [top, rest] = Layout::vertical([Constraint::Length(h), Constraint::Min(1)]).areas(area);
    paragraph(f, top, lines);
    rest
}

/// A member of a service's JSON object as text, its name in any case (the change feed's and the tag
/// list's names vary in case between API versions).
pub fn json_text(v: &Value, name: &str) -> String {
    dicomlab_dicomweb::get_ci(v, name)
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// The rows `lines` take once wrapped at `width` (each line at least one).
pub fn wrapped(lines: &[Line<'_>], width: u16) -> u16 {
    let w = usize::from(width.max(1));
    lines
        .iter()
        .map(|l| l.width().div_ceil(w).max(1) as u16)
        .sum()
}

/// Lines, wrapped.
pub fn paragraph(f: &mut Frame, area: Rect, lines: Vec<Line<'static>>) {
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

/// A table with a bold header and the selected row highlighted.
pub fn table<'a>(
    f: &mut Frame,
    area: Rect,
    header: Row<'a>,
    rows: impl IntoIterator<Item = Row<'a>>,
    widths: impl IntoIterator<Item = Constraint>,
    selected: usize,
) {
    let table = Table::new(rows, widths)
        .header(header.style(bold()))
        .row_highlight_style(reversed());
    let mut state = TableState::default().with_selected(Some(selected));
    f.render_stateful_widget(table, area, &mut state);
}

/// ↑↓ (and j k) move a selection within `len` rows; false for any other key.
pub fn move_selection(selected: &mut usize, len: usize, code: KeyCode) -> bool {
    match code {
        KeyCode::Down | KeyCode::Char('j') => {
            *selected = (*selected + 1).min(len.saturating_sub(1))
        }
        KeyCode::Up | KeyCode::Char('k') => *selected = selected.saturating_sub(1),
        _ => return false,
    }
    true
}

/// Bytes for people.
pub fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// A path as typed: `~/x` is `$HOME/x`.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}
