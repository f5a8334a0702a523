//! `view(&App, &mut Frame)`: reads the state, draws, does nothing else (no I/O on the render path).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::app::{App, CheckState, Confirm, Focus};
use crate::lab::Outcome;
use crate::lab::progress::Status;

/// The symbol of a step in the checklist, Unicode or ASCII.
pub fn symbol(app: &App, id: &str, selected: bool) -> &'static str {
    let s = &app.steps[id];
    let (u, a) = match &s.check {
        _ if s.doing => ("…", "."),
        CheckState::Checking => ("…", "."),
        // A blocked step shows what progress says (done, skipped) or pending.
        CheckState::Checked(o) if !matches!(o, Outcome::Blocked { .. }) => {
            return o.symbol(app.ascii);
        }
        _ if s.saved == Some(Status::Done) => ("✓", "+"),
        _ if s.saved == Some(Status::Skipped) => ("⤼", "~"),
        _ if s.saved == Some(Status::Failed) => ("✗", "x"),
        _ if selected => ("»", ">"),
        _ => ("○", "o"),
    };
    glyph(app, u, a)
}

/// A Unicode symbol, or its ASCII fallback (TERM=linux, DICOMLAB_ASCII=1).
pub(super) fn glyph(app: &App, unicode: &'static str, ascii: &'static str) -> &'static str {
    if app.ascii { ascii } else { unicode }
}

/// A foreground color, or none under NO_COLOR.
pub(super) fn style(app: &App, color: Color) -> Style {
    if app.no_color {
        Style::default()
    } else {
        Style::default().fg(color)
    }
}

fn symbol_style(app: &App, sym: &str) -> Style {
    match sym {
        "✓" | "+" => style(app, Color::Green),
        "✗" | "x" => style(app, Color::Red),
        "…" | "." => style(app, Color::Yellow),
        "–" | "-" | "⤼" | "~" => style(app, Color::DarkGray),
        _ => Style::default(),
    }
}

pub(super) fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// Fills `{baseUrl}` and friends in lab text.
pub fn fill(app: &App, text: &str) -> String {
    let mut out = text.replace("{baseUrl}", &app.base_url);
    for (k, v) in &app.vars {
        out = out.replace(k.as_str(), v);
    }
    // The dataset's values ({red.study}…) need no target.
    app.lab.dataset.fill(&out)
}

pub fn view(app: &App, f: &mut Frame) {
    let area = f.area();
    let wide = area.width >= 100;
    let [header, body, bar] = Layout::vertical([
        Constraint::Length(if wide { 1 } else { 2 }),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(app, f, header, wide);
    if wide {
        let [left, right] =
            Layout::horizontal([Constraint::Length(36), Constraint::Min(40)]).areas(body);
        draw_checklist(app, f, left);
        draw_right(app, f, right);
    } else {
        draw_right(app, f, body);
    }
    draw_bar(app, f, bar);
    if app.show_summary {
        draw_summary(app, f, area);
    }
    if app.show_help {
        draw_help(app, f, area);
    }
    if let Some(c) = &app.confirm {
        draw_confirm(app, c, f, area);
    }
}

fn draw_header(app: &App, f: &mut Frame, area: Rect, wide: bool) {
    let total = app.lab.steps().count();
    let done = app.step_ids().iter().filter(|id| app.is_done(id)).count();
    let token = match app.token_left {
        Some(d) if d.as_secs() >= 60 => format!("token {} min", d.as_secs() / 60),
        Some(d) if d.as_secs() > 0 => format!("token {} s", d.as_secs()),
        Some(_) => "token expired".into(),
        None => "no token".into(),
    };
    let line = if wide {
        Line::from(vec![
            Span::styled(" dicomlab", bold()),
            Span::raw(format!(" · {}   ", app.lab.title)),
            Span::raw(format!("target: {} ({})   ", app.profile, app.base_url)),
            Span::raw(format!("{token}   ")),
            Span::raw(format!("step {}/{total} · {done} done", app.selected + 1)),
        ])
    } else {
        Line::from(vec![
            Span::styled(" dicomlab", bold()),
            Span::raw(format!(
                " · {} · {token} · step {}/{total} · {done} done",
                app.profile,
                app.selected + 1
            )),
        ])
    };
    if wide {
        f.render_widget(Paragraph::new(line), area);
    } else {
        // Narrow: the checklist collapses to one line of symbols.
        let ids = app.step_ids();
        let strip: Vec<Span> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let sym = symbol(app, id, i == app.selected);
                let st = if i == app.selected {
                    symbol_style(app, sym).add_modifier(Modifier::REVERSED)
                } else {
                    symbol_style(app, sym)
                };
                Span::styled(sym, st)
            })
            .collect();
        let mut second = vec![Span::raw(" ")];
        second.extend(strip);
        f.render_widget(Paragraph::new(vec![line, Line::from(second)]), area);
    }
}

fn draw_checklist(app: &App, f: &mut Frame, area: Rect) {
    let current = app
        .lab
        .exercise_of(&app.selected_id())
        .map(|e| e.id.clone());
    let mut lines = Vec::new();
    let mut index = 0usize;
    for (n, ex) in app.lab.exercises.iter().enumerate() {
        let all_done = ex
            .steps
            .iter()
            .all(|s| app.is_done(&s.id) || app.steps[&s.id].saved == Some(Status::Skipped));
        let expanded = current.as_deref() == Some(ex.id.as_str());
        let head_sym = if all_done {
            glyph(app, "✓", "+")
        } else if expanded {
            glyph(app, "»", ">")
        } else {
            glyph(app, "○", "o")
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {head_sym} "), symbol_style(app, head_sym)),
            Span::styled(
                format!("{} {}", n + 1, ex.title),
                if expanded { bold() } else { Style::default() },
            ),
        ]));
        for s in &ex.steps {
            if expanded {
                let selected = index == app.selected;
                let sym = symbol(app, &s.id, selected);
                let mut st = Style::default();
                if selected {
                    st = st.add_modifier(Modifier::REVERSED);
                }
                lines.push(Line::from(vec![
                    Span::raw("    "),
                    Span::styled(format!("{sym} "), symbol_style(app, sym)),
                    Span::styled(s.title.clone(), st),
                ]));
            }
            index += 1;
        }
    }
    let border = if app.focus == Focus::Checklist {
        bold()
    } else {
        Style::default()
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Exercises ")
        .border_style(border);
    f.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_right(app: &App, f: &mut Frame, area: Rect) {
    // On a short terminal a focused screen gets the room of the last exchange (e brings it back).
    let crowded = app.focus == Focus::Panel && area.height < 30;
    let exchange_height = if app.show_exchange && app.last_exchange.is_some() && !crowded {
        (area.height / 3).max(5)
    } else {
        0
    };
    let [step_area, ex_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(exchange_height)]).areas(area);
    draw_step(app, f, step_area);
    if exchange_height > 0 {
        draw_exchange(app, f, ex_area);
    }
}

fn draw_step(app: &App, f: &mut Frame, area: Rect) {
    let id = app.selected_id();
    let Some(step) = app.lab.step(&id) else {
        return;
    };
    if app.is_viewer(&id)
        && let Some(img) = &app.image
    {
        // The text keeps a third; the image gets the rest, fitted to the cells.
        let [text, picture] = Layout::vertical([
            Constraint::Length((area.height / 3).max(4)),
            Constraint::Min(3),
        ])
        .areas(area);
        draw_step_text(app, f, text, &id, step);
        // The key attributes beside the picture when there is room.
        if !app.image_attributes.is_empty() && picture.width >= 70 {
            let [pic, attrs] =
                Layout::horizontal([Constraint::Min(30), Constraint::Length(40)]).areas(picture);
            draw_image(f, pic, img);
            let lines: Vec<Line> = app
                .image_attributes
                .iter()
                .map(|(k, v)| {
                    Line::from(vec![
                        Span::styled(format!("{k:<26}"), bold()),
                        Span::raw(v.clone()),
                    ])
                })
                .collect();
            f.render_widget(
                Paragraph::new(lines).block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title(" Key attributes "),
                ),
                attrs,
            );
        } else {
            draw_image(f, picture, img);
        }
        return;
    }
    if let Some(screen) = super::screens::Screen::of(step) {
        // The screen below the step's text: most of the room while it has the keys.
        let panel = if app.focus == Focus::Panel {
            area.height * 2 / 3
        } else {
            area.height / 2
        }
        .min(super::panels::wanted_height(app, screen))
        .clamp(5.min(area.height), area.height.saturating_sub(4).max(5));
        let [text, rest] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(panel)]).areas(area);
        draw_step_text(app, f, text, &id, step);
        super::panels::draw(app, f, rest, screen);
        return;
    }
    draw_step_text(app, f, area, &id, step);
}

fn draw_image(
    f: &mut Frame,
    area: Rect,
    img: &std::cell::RefCell<ratatui_image::protocol::StatefulProtocol>,
) {
    let block = Block::default().borders(Borders::ALL).title(" rendered ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    // The protocol is only borrowed here, never elsewhere: a failed borrow would mean a nested draw.
    if let Ok(mut protocol) = img.try_borrow_mut() {
        f.render_stateful_widget(
            ratatui_image::StatefulImage::default(),
            inner,
            &mut *protocol,
        );
    }
}

fn draw_step_text(app: &App, f: &mut Frame, area: Rect, id: &str, step: &crate::lab::model::Step) {
    let id = id.to_string();
    let view = &app.steps[&id];
    let mut instructions: Vec<Line> = fill(app, &step.instructions)
        .lines()
        .map(|l| Line::raw(l.to_string()))
        .collect();
    let mut lines: Vec<Line> = Vec::new();
    let label = |s: &str| Span::styled(format!("{s:<9}"), bold());
    match &view.check {
        CheckState::NotChecked => lines.push(Line::from(vec![
            label("Check"),
            Span::raw("not checked yet — press c"),
        ])),
        CheckState::Checking => {
            lines.push(Line::from(vec![label("Check"), Span::raw("checking…")]))
        }
        CheckState::Checked(o) => {
            let sym = symbol(app, &id, false);
            let head = format!("{sym} {}", o.label());
            match o {
                Outcome::Fail {
                    expected,
                    observed,
                    diagnosis,
                    ..
                } => {
                    lines.push(Line::from(vec![
                        label("Check"),
                        Span::styled(head, symbol_style(app, sym)),
                    ]));
                    lines.push(Line::from(vec![
                        label("expected"),
                        Span::raw(fill(app, expected)),
                    ]));
                    lines.push(Line::from(vec![
                        label("observed"),
                        Span::raw(observed.clone()),
                    ]));
                    lines.push(Line::from(vec![
                        label("fix"),
                        Span::raw(fill(app, diagnosis)),
                    ]));
                }
                Outcome::Pass { detail, evidence } => {
                    lines.push(Line::from(vec![
                        label("Check"),
                        Span::styled(head, symbol_style(app, sym)),
                        Span::raw(format!(": {detail}")),
                    ]));
                    let when = evidence
                        .at
                        .as_deref()
                        .map(|a| format!(" · {}", crate::lab::clock::human(a)))
                        .unwrap_or_default();
                    lines.push(Line::from(vec![
                        label("Evidence"),
                        Span::styled(format!("{}: ", evidence.source.label()), bold()),
                        Span::raw(format!("{}{when}", evidence.summary)),
                    ]));
                }
                other => {
                    let text = match other {
                        Outcome::Ready { detail, .. } => detail.clone(),
                        Outcome::Waiting { reason, .. } => reason.clone(),
                        o => o.one_line(),
                    };
                    lines.push(Line::from(vec![
                        label("Check"),
                        Span::styled(head, symbol_style(app, sym)),
                        Span::raw(format!(": {}", fill(app, &text))),
                    ]))
                }
            }
            for (i, t) in o.tried().iter().enumerate() {
                lines.push(Line::from(vec![
                    label(if i == 0 { "Tried" } else { "" }),
                    Span::raw(t.text()),
                ]));
            }
        }
    }
    // The question is the evidence where the service keeps no record of reads dicomlab can read.
    if let Some(q) = &step.question
        && !app.is_done(&id)
        && !app.reads_recorded
        && !matches!(
            &view.check,
            CheckState::Checked(Outcome::NotSupported { .. })
        )
        && app.screen().is_none_or(|s| app.unsupported(s).is_none())
    {
        lines.push(Line::from(vec![
            label("Question"),
            Span::raw(format!("{} — press a to answer", fill(app, &q.ask))),
        ]));
    }
    if step.check == crate::lab::model::Check::Token
        && let Some(c) = &app.claims
    {
        let left = app.token_left.map_or_else(String::new, |d| {
            format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
        });
        lines.push(Line::from(vec![
            label("Token"),
            Span::raw(format!("aud {}", c.aud.as_deref().unwrap_or("?"))),
        ]));
        lines.push(Line::from(vec![
            label(""),
            Span::raw(format!("tid {}", c.tid.as_deref().unwrap_or("?"))),
        ]));
        lines.push(Line::from(vec![
            label(""),
            Span::raw(format!("app {}", c.app.as_deref().unwrap_or("?"))),
        ]));
        if !c.roles.is_empty() {
            lines.push(Line::from(vec![
                label(""),
                Span::raw(format!("roles {}", c.roles.join(", "))),
            ]));
        }
        lines.push(Line::from(vec![
            label(""),
            Span::raw(format!("expires in {left}")),
        ]));
    }
    if view.doing {
        lines.push(Line::from(vec![label("Doing"), Span::raw("…")]));
    } else if let Some(did) = &view.did {
        let text = match did {
            Ok(t) => t.clone(),
            Err(e) => format!("could not: {e}"),
        };
        lines.push(Line::from(vec![label("Did"), Span::raw(text)]));
    }
    for (i, h) in step.hints.iter().take(view.hints_shown).enumerate() {
        lines.push(Line::from(vec![
            label(&format!("Hint {}/{}", i + 1, step.hints.len())),
            Span::raw(fill(app, h)),
        ]));
    }
    // On a short terminal what the check found comes first; the instructions follow (scroll with j/k).
    if area.height < 30 {
        lines.push(Line::raw(""));
        lines.append(&mut instructions);
    } else {
        instructions.push(Line::raw(""));
        instructions.append(&mut lines);
        lines = instructions;
    }
    if let Some(show) = &step.show_me {
        lines.push(Line::raw(""));
        lines.push(Line::from(Span::styled("Show me", bold())));
        for l in fill(app, show).lines() {
            lines.push(Line::raw(format!("  {l}")));
        }
    }
    let n = app.selected + 1;
    let optional = if step.optional { " (optional)" } else { "" };
    let border = if app.focus == Focus::Step {
        bold()
    } else {
        Style::default()
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {n} · {}{optional} ", step.title))
        .border_style(border);
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((app.scroll, 0)),
        area,
    );
}

fn draw_exchange(app: &App, f: &mut Frame, area: Rect) {
    let Some(e) = &app.last_exchange else { return };
    let mut lines = vec![Line::from(Span::styled(e.summary(), bold()))];
    for l in e
        .response_excerpt
        .lines()
        .take(area.height.saturating_sub(3) as usize)
    {
        lines.push(Line::raw(l.to_string()));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Last exchange ");
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// The keys that work now.
pub fn commands(app: &App) -> Vec<(&'static str, &'static str)> {
    match &app.confirm {
        Some(Confirm::Answer { .. }) => {
            return vec![("Enter", "check the answer"), ("Esc", "cancel")];
        }
        Some(Confirm::Name(_)) => return vec![("Enter", "keep the name"), ("Esc", "leave it out")],
        Some(Confirm::ResetAll(_)) => return vec![("reset Enter", "reset all"), ("Esc", "cancel")],
        Some(_) => return vec![("y", "yes"), ("other", "no")],
        None => {}
    }
    if app.show_help || app.show_summary {
        return vec![("any key", "close")];
    }
    if app.focus == Focus::Panel
        && let Some(screen) = app.screen()
    {
        let mut v = super::panels::keys(app, screen);
        if !app.screens.editing(screen) {
            if app.busy() {
                v.push(("x", "cancel"));
            }
            v.push(("c", "check"));
            if !v.iter().any(|(k, _)| *k == "Esc") {
                v.push(("Esc", "checklist"));
            }
            v.push(("?", "keys"));
        }
        return v;
    }
    let mut v = vec![("d", "do it"), ("c", "check"), ("h", "hint")];
    let id = app.selected_id();
    if app.answerable(&id) {
        v.push(("a", "answer"));
    }
    if app.busy() {
        v.push(("x", "cancel"));
    }
    if app.last_exchange.is_some() {
        v.push(("y", "copy curl"));
        v.push(("e", "exchange"));
    }
    v.extend([
        ("s", "skip"),
        ("r", "reset"),
        ("↑↓", "step"),
        ("Tab", "pane"),
        ("?", "keys"),
        ("q", "quit"),
    ]);
    v
}

fn draw_bar(app: &App, f: &mut Frame, area: Rect) {
    let mut spans = Vec::new();
    if let Some(s) = &app.status {
        spans.push(Span::styled(format!(" {s} "), style(app, Color::Yellow)));
        spans.push(Span::raw(" "));
    }
    for (k, what) in commands(app) {
        spans.push(Span::styled(format!(" {k}"), bold()));
        spans.push(Span::raw(format!(" {what} ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Every key, by pane.
pub const HELP: &[(&str, &str)] = &[
    (
        "↑ ↓  j k",
        "previous / next step (checklist), scroll (step pane)",
    ),
    ("← →  p n", "previous / next step"),
    ("g G", "first / last step"),
    (
        "Tab Enter Esc",
        "move between the checklist, the step and its screen",
    ),
    ("d", "do the step (send its requests), then check it"),
    ("c / C", "check this step / every step"),
    ("h", "reveal the next hint"),
    (
        "y",
        "copy the last request as curl (OSC 52, works over SSH)",
    ),
    ("e", "show / hide the last exchange"),
    ("s", "skip the step"),
    ("t", "switch target: practice → azure → generic (profiles)"),
    (
        "r / R",
        "reset this step (asks) / all progress (type reset)",
    ),
    ("x", "cancel the requests in flight"),
    ("S", "the summary (and how to make the report)"),
    (
        "M",
        "mouse on/off (wheel scrolls, a click picks a step or a pane)",
    ),
    ("?  F1", "this help"),
    ("q  Ctrl-C", "quit (asks while something runs)"),
];

fn draw_help(app: &App, f: &mut Frame, area: Rect) {
    let key_line = |k: &str, v: &str| {
        Line::from(vec![
            Span::styled(format!(" {k:<15}"), bold()),
            Span::raw(v.to_string()),
        ])
    };
    let mut lines: Vec<Line> = Vec::new();
    // The focused screen's keys first.
    if app.focus == Focus::Panel
        && let Some(screen) = app.screen()
    {
        lines.push(Line::styled(format!(" {} screen", screen.title()), bold()));
        for (k, v) in super::panels::keys(app, screen) {
            lines.push(key_line(k, v));
        }
        lines.push(Line::raw(""));
    }
    lines.extend(HELP.iter().map(|(k, v)| key_line(k, v)));
    let rect = centered(area, 78, lines.len() as u16 + 2);
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::ALL).title(" Keys "))
            .wrap(Wrap { trim: false }),
        rect,
    );
}

/// The final screen: what is done per exercise, and the report for the instructor.
fn draw_summary(app: &App, f: &mut Frame, area: Rect) {
    let total = app.lab.steps().count();
    let done = app.step_ids().iter().filter(|id| app.is_done(id)).count();
    let mut lines = vec![
        Line::styled(
            if app.complete() {
                format!(
                    " Lab complete: {done} of {total} steps done on {}.",
                    app.profile
                )
            } else {
                format!(" {done} of {total} steps done on {} so far.", app.profile)
            },
            bold(),
        ),
        Line::raw(""),
    ];
    for (n, ex) in app.lab.exercises.iter().enumerate() {
        let d = ex.steps.iter().filter(|s| app.is_done(&s.id)).count();
        let skipped = ex
            .steps
            .iter()
            .filter(|s| app.steps[&s.id].saved == Some(Status::Skipped) && !app.is_done(&s.id))
            .count();
        // An exercise is done when its required steps are.
        let all = ex.steps.iter().all(|s| s.optional || app.is_done(&s.id))
            && ex.steps.iter().any(|s| app.is_done(&s.id));
        let sym = match (all, app.ascii) {
            (true, false) => "✓",
            (true, true) => "+",
            (false, false) => "○",
            (false, true) => "o",
        };
        let optional = ex.steps.iter().all(|s| s.optional);
        lines.push(Line::from(vec![
            Span::styled(format!(" {sym} "), symbol_style(app, sym)),
            Span::raw(format!(
                "{:<2} {:<32} {d}/{}{}{}",
                n + 1,
                ex.title,
                ex.steps.len(),
                if skipped > 0 {
                    format!(", {skipped} skipped")
                } else {
                    String::new()
                },
                if optional { " (optional)" } else { "" }
            )),
        ]));
    }
    lines.extend([
        Line::raw(""),
        Line::raw(" For your instructor: every step, its attempts, times and last failure:"),
        Line::styled(
            "   dicomlab report > report.md      (or --format json)",
            bold(),
        ),
        Line::raw(" It never holds a secret or a token."),
    ]);
    let rect = centered(area, 78, lines.len() as u16 + 2);
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::ALL).title(" Summary "))
            .wrap(Wrap { trim: false }),
        rect,
    );
}

fn draw_confirm(app: &App, c: &Confirm, f: &mut Frame, area: Rect) {
    let text = match c {
        Confirm::ResetStep(id) => format!("Reset the step {id}? Its progress is forgotten. (y/n)"),
        Confirm::ResetAll(typed) => format!(
            "Reset ALL progress of this lab on this target? Type reset and Enter (Esc cancels): {typed}"
        ),
        Confirm::DeleteTag(tag) => format!(
            "Delete the extended query tag {tag}? Searching on it stops and its index is dropped. (y/n)"
        ),
        Confirm::Quit => "A request is still running. Quit anyway? (y/n)".into(),
        Confirm::Answer { step, typed } => {
            let ask = app
                .lab
                .step(step)
                .and_then(|s| s.question.as_ref())
                .map_or(String::new(), |q| fill(app, &q.ask));
            format!(
                "{ask}\nYour answer (Enter checks it against the service, Esc cancels): {typed}█"
            )
        }
        Confirm::Name(typed) => format!(
            "Your name, for the report your instructor reads (Enter; Esc leaves it out — asked once): {typed}█"
        ),
    };
    let (title, height) = match c {
        Confirm::Answer { .. } => (" Answer ", 7),
        Confirm::Name(_) => (" Your name ", 6),
        _ => (" Confirm ", 5),
    };
    let rect = centered(area, 64, height);
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(text)
            .block(Block::default().borders(Borders::ALL).title(title))
            .wrap(Wrap { trim: false }),
        rect,
    );
}
