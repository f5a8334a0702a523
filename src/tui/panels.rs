//! The exercise screens' views (read only, like the rest of `view`).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};
use serde_json::Value;

use super::app::{App, Focus};
use super::screens::{Form, Screen, TagTree, What, columns, value_of};
use super::view::{bold, glyph, style};
use super::work::human;
use crate::dicomweb::{Level, StoreMode, get_ci};
use crate::lab::checks::{TargetKind, reason_text};

fn ok_sym(app: &App, ok: bool) -> Span<'static> {
    match (ok, app.ascii) {
        (true, false) => Span::styled("✓", style(app, Color::Green)),
        (true, true) => Span::styled("+", style(app, Color::Green)),
        (false, false) => Span::styled("✗", style(app, Color::Red)),
        (false, true) => Span::styled("x", style(app, Color::Red)),
    }
}

fn message(app: &App, m: &Option<Result<String, String>>) -> Option<Line<'static>> {
    m.as_ref().map(|r| match r {
        Ok(t) => Line::from(vec![ok_sym(app, true), Span::raw(format!(" {t}"))]),
        Err(e) => Line::from(vec![ok_sym(app, false), Span::raw(format!(" {e}"))]),
    })
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

/// A text progress bar (works in every terminal, over SSH, in snapshots).
fn bar(app: &App, done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        ((done.min(total) as f64 / total as f64) * width as f64).round() as usize
    };
    let (f, e) = if app.ascii {
        ("#", "-")
    } else {
        ("█", "░")
    };
    format!("{}{}", f.repeat(filled), e.repeat(width - filled))
}

/// The rows a screen wants (tables and trees want all there is).
pub fn wanted_height(app: &App, screen: Screen) -> u16 {
    let s = &app.screens;
    if app.unsupported(screen).is_some() {
        return 4;
    }
    let message = |m: &Option<Result<String, String>>| u16::from(m.is_some()) * 2;
    2 + match screen {
        Screen::Role => 3 + u16::from(s.role.running) + message(&s.role.message),
        Screen::Environment => {
            let problems = s.env.problems().len().max(1) as u16;
            2 + s.env.form.fields.len() as u16
                + 2 * u16::from(s.env.import.is_some())
                + problems
                + message(&s.env.message)
        }
        Screen::Store => {
            let st = &s.store;
            3 + 2 * u16::from(st.picking.is_some())
                + st.files.len() as u16
                + st.results.len() as u16
                + u16::from(st.running || st.loading || !st.statuses.is_empty())
                + 2 * u16::from(st.error.is_some())
        }
        _ => return u16::MAX,
    }
}

/// Draws the screen of the selected step in `area`.
pub fn draw(app: &App, f: &mut Frame, area: Rect, screen: Screen) {
    let focused = app.focus == Focus::Panel;
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} ", screen.title()))
        .border_style(if focused { bold() } else { Style::default() });
    let inner = block.inner(area);
    f.render_widget(block, area);
    if let Some(why) = app.unsupported(screen) {
        let sym = glyph(app, "–", "-");
        paragraph(
            f,
            inner,
            vec![Line::from(vec![
                Span::styled(sym, style(app, Color::DarkGray)),
                Span::raw(format!(" not supported: {why}")),
            ])],
        );
        return;
    }
    match screen {
        Screen::Role => role(app, f, inner),
        Screen::Environment => environment(app, f, inner),
        Screen::Store => store(app, f, inner),
        Screen::Search => search(app, f, inner),
        Screen::Retrieve => retrieve(app, f, inner),
        Screen::ChangeFeed => feed(app, f, inner),
        Screen::Tags => tags(app, f, inner),
    }
}

/// The rows `lines` take once wrapped at `width` (each line at least one).
fn wrapped(lines: &[Line<'_>], width: u16) -> u16 {
    let w = usize::from(width.max(1));
    lines
        .iter()
        .map(|l| l.width().div_ceil(w).max(1) as u16)
        .sum()
}

fn paragraph(f: &mut Frame, area: Rect, lines: Vec<Line<'static>>) {
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn role(app: &App, f: &mut Frame, area: Rect) {
    let r = &app.screens.role;
    let mut lines = vec![Line::raw(
        "401 = no valid token (who are you?) · 403 = a valid token without a role (you may not).",
    )];
    if app.target == TargetKind::Practice {
        lines.push(Line::from(vec![
            Span::styled("+", bold()),
            Span::raw(" grant DICOM Data Owner to the lab client   "),
            Span::styled("-", bold()),
            Span::raw(" revoke it   — the check runs after each: watch 403 turn into 200"),
        ]));
    } else {
        lines.push(Line::raw(
            "Assign it in the portal: DICOM service → Access control (IAM) → Add role assignment → DICOM Data Owner → your app. Then c.",
        ));
    }
    if r.running {
        lines.push(Line::raw("…"));
    }
    lines.extend(message(app, &r.message));
    paragraph(f, area, lines);
}

/// One form field: label, then the input (a live text area while edited, masked for secrets).
fn field_line(app: &App, form: &Form, i: usize, width: u16) -> Line<'static> {
    let field = &form.fields[i];
    let value = field.value();
    let shown = if field.masked && !value.is_empty() {
        crate::dicomweb::Secret::new(value).masked()
    } else {
        value
    };
    let focus = form.editing && form.focus == i;
    let mark = if focus { glyph(app, "›", ">") } else { " " };
    let room = (width as usize).saturating_sub(14);
    let shown: String = if shown.chars().count() > room {
        let n = shown.chars().count();
        format!("…{}", shown.chars().skip(n - room + 1).collect::<String>())
    } else {
        shown
    };
    let st = if focus {
        Style::default().add_modifier(Modifier::UNDERLINED)
    } else {
        Style::default()
    };
    Line::from(vec![
        Span::raw(mark.to_string()),
        Span::styled(format!("{:<12} ", field.label), bold()),
        Span::styled(shown, st),
        Span::raw(if focus { "▏" } else { "" }),
    ])
}

fn environment(app: &App, f: &mut Frame, area: Rect) {
    let env = &app.screens.env;
    let mut lines = vec![Line::raw(if env.editable {
        format!(
            "profile {} · i edits (Tab next field, Enter done) · w saves (mode 0600) and opens it · I imports a Postman environment",
            env.name
        )
    } else {
        format!(
            "profile {}: the embedded practice service fills these in (read-only) · I imports your Postman environment into the azure profile",
            env.name
        )
    })];
    for i in 0..env.form.fields.len() {
        lines.push(field_line(app, &env.form, i, area.width));
    }
    if let Some(imp) = &env.import {
        lines.push(field_line(app, imp, 0, area.width));
        lines.push(Line::raw("  Enter imports this file · Esc cancels"));
    }
    let problems = env.problems();
    if env.editable {
        if problems.is_empty() {
            lines.push(Line::from(vec![
                ok_sym(app, true),
                Span::raw(" every value looks right"),
                Span::raw(if env.dirty { " (not saved yet: w)" } else { "" }),
            ]));
        } else {
            for p in problems {
                lines.push(Line::from(vec![
                    ok_sym(app, false),
                    Span::raw(format!(" {p}")),
                ]));
            }
        }
    }
    lines.extend(message(app, &env.message));
    paragraph(f, area, lines);
}

fn store(app: &App, f: &mut Frame, area: Rect) {
    let st = &app.screens.store;
    let source = match &st.folder {
        Some(p) => format!("folder {}", p.display()),
        None => "the generated samples (same UIDs as the official files)".into(),
    };
    let mode = match st.mode {
        StoreMode::Single => "single-part: one request per file",
        StoreMode::Multipart => "multipart/related: one request",
    };
    let mut lines = vec![
        Line::from(vec![Span::styled("from ", bold()), Span::raw(source)]),
        Line::from(vec![
            Span::styled("mode ", bold()),
            Span::raw(format!("{mode} (m)")),
            Span::raw("   o folder · Space choose · Enter store"),
        ]),
    ];
    if let Some(form) = &st.picking {
        lines.push(field_line(app, form, 0, area.width));
        lines.push(Line::raw(
            "  Enter lists its .dcm files · empty = the generated samples · Esc cancels",
        ));
    }
    if st.loading {
        lines.push(Line::raw("listing files…"));
    }
    let name_w = st
        .files
        .iter()
        .map(|f| {
            f.path
                .file_name()
                .map_or(0, |n| n.to_string_lossy().chars().count())
        })
        .max()
        .unwrap_or(0)
        .min(28);
    let bar_w = (area.width as usize)
        .saturating_sub(name_w + 26)
        .clamp(4, 24);
    for (i, file) in st.files.iter().enumerate() {
        let name = file
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let chosen = match (file.chosen, app.ascii) {
            (true, false) => "☑",
            (false, false) => "☐",
            (true, true) => "[x]",
            (false, true) => "[ ]",
        };
        let status = match file.status {
            Some(s) => Span::styled(
                format!(" {s}"),
                style(
                    app,
                    if (200..300).contains(&s) {
                        Color::Green
                    } else {
                        Color::Red
                    },
                ),
            ),
            None => Span::raw(""),
        };
        let sel = app.focus == Focus::Panel && i == st.selected && st.picking.is_none();
        let name_style = if sel {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{chosen} ")),
            Span::styled(format!("{name:<name_w$}"), name_style),
            Span::raw(format!(" {:>7} ", human(file.size))),
            Span::raw(bar(app, file.sent, file.size, bar_w)),
            status,
        ]));
    }
    if st.running {
        lines.push(Line::raw("storing…  (x cancels)"));
    }
    if !st.statuses.is_empty() && st.mode == StoreMode::Multipart {
        lines.push(Line::raw(format!(
            "one multipart request: {}",
            st.statuses
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for r in &st.results {
        let what = match (r.stored, r.code) {
            (true, None) => "stored".to_string(),
            (true, Some(c)) => format!("stored, warning {c}: {}", reason_text(c)),
            (false, Some(c)) => format!("{c}: {}", reason_text(c)),
            (false, None) => "failed".to_string(),
        };
        // 45070 (already stored) counts as done.
        let ok = r.stored || r.code == Some(45070);
        lines.push(Line::from(vec![
            ok_sym(app, ok),
            Span::raw(format!(" {} {what}", short_uid(&r.sop_uid, 24))),
        ]));
    }
    if let Some(e) = &st.error {
        lines.push(Line::from(vec![
            ok_sym(app, false),
            Span::raw(format!(" {e}")),
        ]));
    }
    paragraph(f, area, lines);
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Studies => "studies",
        Level::Series => "series",
        Level::Instances => "instances",
    }
}

fn search(app: &App, f: &mut Frame, area: Rect) {
    let s = &app.screens.search;
    let mut head = vec![
        Line::from(vec![
            Span::styled("level ", bold()),
            Span::raw(format!("{} (l)", level_name(s.level))),
            Span::styled("   fuzzy ", bold()),
            Span::raw(format!("{} (z)", if s.fuzzy { "on" } else { "off" })),
            Span::raw("   / edits · Enter searches, then opens a result"),
        ]),
        field_line(app, &s.form, 0, area.width),
    ];
    // The less used fields on one line unless edited.
    if s.form.editing {
        for i in 1..s.form.fields.len() {
            head.push(field_line(app, &s.form, i, area.width));
        }
    } else {
        head.push(Line::from(vec![
            Span::styled(" includefield ", bold()),
            Span::raw(format!("{:<12}", s.form.value(1))),
            Span::styled(" limit ", bold()),
            Span::raw(s.form.value(2)),
            Span::styled("  offset ", bold()),
            Span::raw(s.form.value(3)),
        ]));
        // The scope only when there is one.
        let (study, series) = (s.form.value(4), s.form.value(5));
        if !study.trim().is_empty() || !series.trim().is_empty() {
            head.push(Line::from(vec![
                Span::styled(" within       ", bold()),
                Span::raw(format!(
                    "study {}{}",
                    short_uid(study.trim(), 24),
                    if series.trim().is_empty() {
                        String::new()
                    } else {
                        format!(" · series {}", short_uid(series.trim(), 24))
                    }
                )),
            ]));
        }
    }
    match (&s.error, s.running, s.status) {
        (Some(e), _, _) => head.push(Line::from(vec![
            ok_sym(app, false),
            Span::raw(format!(" {e}")),
        ])),
        (None, true, _) => head.push(Line::raw("searching…")),
        (None, false, Some(st)) => head.push(Line::raw(format!(
            "{st} · {} result(s){}",
            s.results.len(),
            if st == 204 {
                " (204 No Content: nothing matched)"
            } else {
                ""
            }
        ))),
        _ => {}
    }
    let h = wrapped(&head, area.width);
    let [top, rest] = Layout::vertical([Constraint::Length(h), Constraint::Min(1)]).areas(area);
    paragraph(f, top, head);
    if let Some(tree) = &s.detail {
        draw_tree(app, f, rest, tree, "Esc back · Space folds");
        return;
    }
    if s.results.is_empty() {
        return;
    }
    let cols = columns(s.level);
    let header = Row::new(cols.iter().map(|(k, _)| Cell::from(*k)));
    let rows = s.results.iter().map(|v| {
        Row::new(
            cols.iter()
                .map(|(k, tag)| {
                    let text = value_of(v, tag);
                    Cell::from(if k.ends_with("UID") {
                        short_uid(&text, 24)
                    } else {
                        text
                    })
                })
                .collect::<Vec<_>>(),
        )
    });
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|(k, _)| {
            if k.ends_with("UID") {
                Constraint::Min(12)
            } else {
                Constraint::Max(k.len().max(10) as u16)
            }
        })
        .collect();
    draw_table(f, rest, header, rows, widths, s.selected);
}

/// A table with a header and the selected row highlighted.
fn draw_table<'a>(
    f: &mut Frame,
    area: Rect,
    header: Row<'a>,
    rows: impl IntoIterator<Item = Row<'a>>,
    widths: impl IntoIterator<Item = Constraint>,
    selected: usize,
) {
    let table = Table::new(rows, widths)
        .header(header.style(bold()))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(selected));
    f.render_stateful_widget(table, area, &mut state);
}

fn draw_tree(app: &App, f: &mut Frame, area: Rect, tree: &TagTree, keys: &str) {
    let visible = tree.visible();
    let height = area.height.saturating_sub(1) as usize;
    let first = tree.selected.saturating_sub(height.saturating_sub(1));
    let mut lines = vec![Line::styled(
        format!("{} of {} rows · {keys}", visible.len(), tree.rows.len()),
        bold(),
    )];
    for (n, &i) in visible.iter().enumerate().skip(first).take(height) {
        let r = &tree.rows[i];
        let fold = if r.container {
            match (tree.folded.contains(&i), app.ascii) {
                (true, false) => "▸ ",
                (false, false) => "▾ ",
                (true, true) => "+ ",
                (false, true) => "- ",
            }
        } else {
            "  "
        };
        let indent = "  ".repeat(r.depth as usize);
        let text = format!(
            "{indent}{fold}{:<11} {:<28} {:<2} {}",
            r.tag, r.keyword, r.vr, r.value
        );
        let st = if n == tree.selected && app.focus == Focus::Panel {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
        };
        lines.push(Line::styled(text, st));
    }
    f.render_widget(Paragraph::new(lines), area);
}

fn retrieve(app: &App, f: &mut Frame, area: Rect) {
    let r = &app.screens.retrieve;
    let mut choices = vec![Span::styled("fetch ", bold())];
    for (i, w) in What::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, w.label());
        if *w == r.what {
            choices.push(Span::styled(
                label,
                Style::default().add_modifier(Modifier::REVERSED),
            ));
        } else {
            choices.push(Span::raw(label));
        }
    }
    let mut head = vec![Line::from(choices)];
    if r.form.editing {
        for i in 0..r.form.fields.len() {
            head.push(field_line(app, &r.form, i, area.width));
        }
    } else {
        head.push(Line::from(vec![
            Span::styled("of ", bold()),
            Span::raw(format!(
                "study {} · series {} · instance {} (/)",
                short_uid(r.form.value(0).trim(), 12),
                short_uid(r.form.value(1).trim(), 12),
                short_uid(r.form.value(2).trim(), 12)
            )),
        ]));
    }
    head.extend([
        Line::raw(match r.what {
            What::Metadata => "Accept: application/dicom+json → a tag tree (Space folds)",
            What::Instance => "Accept: application/dicom; transfer-syntax=* → one file",
            What::Frame => {
                "Accept: multipart/related; type=\"application/octet-stream\"; transfer-syntax=*"
            }
            What::Rendered => "Accept: image/png → the viewer's picture",
            _ => {
                "Accept: multipart/related; type=\"application/dicom\"; transfer-syntax=* (without it: 406)"
            }
        }),
    ]);
    if r.running {
        head.push(Line::raw("retrieving…  (x cancels)"));
    }
    head.extend(message(app, &r.result));
    let h = wrapped(&head, area.width);
    let [top, rest] = Layout::vertical([Constraint::Length(h), Constraint::Min(1)]).areas(area);
    paragraph(f, top, head);
    if let Some(tree) = &r.tree {
        draw_tree(app, f, rest, tree, "↑↓ move · Space folds");
    }
}

fn feed(app: &App, f: &mut Frame, area: Rect) {
    let fd = &app.screens.feed;
    let v2 = app.v2();
    let mut head = vec![
        Line::from(vec![
            Span::styled("offset ", bold()),
            Span::raw(fd.offset.to_string()),
            Span::styled("  limit ", bold()),
            Span::raw(format!("{} (+ -)", fd.limit)),
            Span::raw("  Enter load · ] next · [ back · L latest · f "),
            Span::raw(if fd.following {
                "stop the live tail"
            } else {
                "live tail"
            }),
        ]),
        Line::raw(if v2 {
            "v2: offset = rows to skip in time order (limit ≤ 200); the next page starts at offset + rows."
        } else {
            "v1: offset = a sequence cursor (limit ≤ 100): the next page starts after the last sequence. v2 counts rows."
        }),
    ];
    if fd.following {
        head.push(Line::styled(
            "● following: new entries appear every 2 s",
            style(app, Color::Yellow),
        ));
    }
    if let Some(l) = &fd.latest {
        head.push(Line::raw(format!(
            "latest: sequence {} · {} · {} · {}",
            l.sequence,
            l.action,
            l.state,
            short_uid(&l.sop, 24)
        )));
    }
    if let Some(e) = &fd.error {
        head.push(Line::from(vec![
            ok_sym(app, false),
            Span::raw(format!(" {e}")),
        ]));
    } else if fd.running && !fd.following {
        head.push(Line::raw("loading…"));
    }
    let h = wrapped(&head, area.width);
    let [top, rest] = Layout::vertical([Constraint::Length(h), Constraint::Min(1)]).areas(area);
    paragraph(f, top, head);
    if fd.rows.is_empty() {
        return;
    }
    let header = Row::new([
        "Seq",
        "Action",
        "State",
        "Timestamp",
        "Study",
        "Series",
        "SOP",
    ])
    .style(bold());
    let rows = fd.rows.iter().map(|r| {
        Row::new(vec![
            Cell::from(r.sequence.to_string()),
            Cell::from(r.action.clone()),
            Cell::from(r.state.clone()),
            Cell::from(r.timestamp.chars().take(19).collect::<String>()),
            Cell::from(short_uid(&r.study, 14)),
            Cell::from(short_uid(&r.series, 14)),
            Cell::from(short_uid(&r.sop, 14)),
        ])
    });
    let widths = [
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(19),
        Constraint::Min(8),
        Constraint::Min(8),
        Constraint::Min(8),
    ];
    draw_table(f, rest, header, rows, widths, fd.selected);
}

fn tags(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.screens.tags;
    let mut head = vec![Line::raw(
        "a list · + add · Enter get · u Enabled/Disabled · D delete (asks)",
    )];
    if let Some(form) = &t.form {
        for i in 0..form.fields.len() {
            head.push(field_line(app, form, i, area.width));
        }
        head.push(Line::raw(
            "  Enter adds · VR may stay empty for a standard tag · level Study, Series or Instance",
        ));
    }
    if let Some((id, status, percent)) = &t.operation {
        let p = percent.unwrap_or(0);
        head.push(Line::raw(format!(
            "re-index {} {status} {} {p}%",
            short_uid(id, 10),
            bar(app, p, 100, 20)
        )));
    }
    if t.running {
        head.push(Line::raw("…  (x cancels)"));
    }
    head.extend(message(app, &t.message));
    let h = wrapped(&head, area.width);
    let [top, rest] = Layout::vertical([Constraint::Length(h), Constraint::Min(1)]).areas(area);
    paragraph(f, top, head);
    if let Some(d) = &t.detail {
        let mut lines = vec![Line::styled("GET extendedquerytags/… · Esc back", bold())];
        if let Some(o) = d.as_object() {
            for (k, v) in o {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                lines.push(Line::raw(format!("{k:<16} {v}")));
            }
        }
        f.render_widget(Paragraph::new(lines), rest);
        return;
    }
    if t.rows.is_empty() {
        if !t.running {
            f.render_widget(
                Paragraph::new("no extended query tag yet (+ adds one)"),
                rest,
            );
        }
        return;
    }
    let s = |v: &Value, k: &str| {
        get_ci(v, k)
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let header = Row::new(["Path", "VR", "Level", "Status", "QueryStatus", "Errors"]);
    let rows = t.rows.iter().map(|v| {
        let path = s(v, "Path");
        let keyword = crate::dicom::tags::resolve(&path)
            .and_then(|a| a.keyword)
            .filter(|k| *k != path)
            .map(|k| format!(" {k}"))
            .unwrap_or_default();
        Row::new(vec![
            format!("{path}{keyword}"),
            s(v, "VR"),
            s(v, "Level"),
            s(v, "Status"),
            s(v, "QueryStatus"),
            s(v, "ErrorCount"),
        ])
    });
    let widths = [
        Constraint::Min(12),
        Constraint::Length(3),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(11),
        Constraint::Length(6),
    ];
    draw_table(f, rest, header, rows, widths, t.selected);
}

/// The keys of a screen, for the command bar and the help.
pub fn keys(app: &App, screen: Screen) -> Vec<(&'static str, &'static str)> {
    let s = &app.screens;
    if app.unsupported(screen).is_some() {
        return Vec::new();
    }
    if s.editing(screen) {
        return vec![("Tab", "next field"), ("Enter", "done"), ("Esc", "cancel")];
    }
    match screen {
        Screen::Role => vec![("+", "grant"), ("-", "revoke")],
        Screen::Environment if s.env.editable => {
            vec![("i", "edit"), ("w", "save"), ("I", "import Postman")]
        }
        Screen::Environment => vec![("I", "import Postman")],
        Screen::Store => vec![
            ("Enter", "store"),
            ("m", "mode"),
            ("Space", "choose"),
            ("o", "folder"),
        ],
        Screen::Search if s.search.detail.is_some() => {
            vec![("Space", "fold"), (">", "to retrieve"), ("Esc", "results")]
        }
        Screen::Search => vec![
            ("/", "edit"),
            ("Enter", "search/open"),
            (">", "to retrieve"),
            ("a", "again"),
            ("l", "level"),
            ("z", "fuzzy"),
        ],
        Screen::Retrieve => vec![
            ("1-6 w", "what"),
            ("/", "UIDs"),
            ("Enter", "fetch"),
            ("Space", "fold"),
        ],
        Screen::ChangeFeed => vec![
            ("Enter", "load"),
            ("[ ]", "page"),
            ("+ -", "limit"),
            ("L", "latest"),
            ("f", "tail"),
        ],
        Screen::Tags => vec![
            ("a", "list"),
            ("+", "add"),
            ("Enter", "get"),
            ("u", "query status"),
            ("D", "delete"),
        ],
    }
}
