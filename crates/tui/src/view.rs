//! `view(&App, &mut Frame)`: reads the state, draws, does nothing else (no I/O on the render path).
//! The header, the checklist, the step pane (instructions, what the check found, hints) with the step's
//! exercise screen below it (each screen draws itself: `screens/`) or the viewer's image, the last
//! exchange, the command bar, and the overlays (help, summary, questions).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::app::{App, CheckState, Confirm, Focus, Overlay};
use super::app_commands::COMMANDS;
use super::component::CommandInfo;
use super::keys::commands;
use super::screens::Screen;
use super::theme::bold;
use dicomlab_lab::Outcome;
use dicomlab_lab::progress::Status;

/// The symbol of a step in the checklist, Unicode or ASCII.
pub fn symbol(app: &App, id: &str, selected: bool) -> &'static str {
    let s = &app.steps[id];
    let (u, a) = match &s.check {
        _ if s.doing => ("…", "."),
        CheckState::Checking => ("…", "."),
        // A blocked step shows what progress says (done, skipped) or pending.
        CheckState::Checked(o) if !matches!(o, Outcome::Blocked { .. }) => {
            return o.symbol(app.theme.ascii);
        }
        _ if s.saved == Some(Status::Done) => ("✓", "+"),
        _ if s.saved == Some(Status::Skipped) => ("⤼", "~"),
        _ if s.saved == Some(Status::Failed) => ("✗", "x"),
        _ if selected => ("»", ">"),
        _ => ("○", "o"),
    };
    app.theme.glyph(u, a)
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
    match &app.overlay {
        Some(Overlay::Summary) => draw_summary(app, f, area),
        Some(Overlay::Help) => draw_help(app, f, area),
        Some(Overlay::Confirm(c)) => draw_confirm(app, c, f, area),
        None => {}
    }
}

/// The header's word on the token: minutes left, seconds in the last one.
fn token_header(app: &App) -> String {
    match app.token_left {
        Some(d) if d.as_secs() >= 60 => format!("token {} min", d.as_secs() / 60),
        Some(d) if d.as_secs() > 0 => format!("token {} s", d.as_secs()),
        Some(_) => "token expired".into(),
        None => "no token".into(),
    }
}

/// The token step's countdown.
fn token_left_text(app: &App) -> String {
    app.token_left.map_or_else(String::new, |d| {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    })
}

/// What the token countdown puts on screen: the header's word, and the token step's countdown when
/// that step is shown. A countdown tick that changes neither needs no frame.
pub fn countdown_shown(app: &App) -> (String, Option<String>) {
    let token_step = app
        .lab
        .step(&app.selected_id())
        .is_some_and(|s| s.check == dicomlab_lab::model::Check::Token);
    (
        token_header(app),
        (token_step && app.claims.is_some()).then(|| token_left_text(app)),
    )
}

fn draw_header(app: &App, f: &mut Frame, area: Rect, wide: bool) {
    let total = app.lab.steps().count();
    let done = app.step_ids().iter().filter(|id| app.is_done(id)).count();
    let token = token_header(app);
    let watch = watch_span(app);
    let line = if wide {
        let mut spans = vec![
            Span::styled(" dicomlab", bold()),
            Span::raw(format!(" · {}   ", app.lab.title)),
            Span::raw(format!("target: {} ({})   ", app.profile, app.base_url)),
            Span::raw(format!("{token}   ")),
            Span::raw(format!("step {}/{total} · {done} done", app.selected + 1)),
        ];
        if let Some(w) = watch {
            spans.push(Span::raw("   "));
            spans.push(w);
            // The watch is what tells the learner the screen is live: the lab's title goes first.
            if Line::from(spans.clone()).width() > usize::from(area.width) {
                spans[1] = Span::raw("   ");
            }
        }
        Line::from(spans)
    } else {
        let mut spans = vec![
            Span::styled(" dicomlab", bold()),
            Span::raw(format!(
                " · {} · {token} · step {}/{total} · {done} done",
                app.profile,
                app.selected + 1
            )),
        ];
        if let Some(w) = watch {
            spans.push(Span::raw(" · "));
            spans.push(w);
        }
        Line::from(spans)
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
                    app.theme.symbol_style(sym).add_modifier(Modifier::REVERSED)
                } else {
                    app.theme.symbol_style(sym)
                };
                Span::styled(sym, st)
            })
            .collect();
        let mut second = vec![Span::raw(" ")];
        second.extend(strip);
        f.render_widget(Paragraph::new(vec![line, Line::from(second)]), area);
    }
}

/// `watching 14:03:22` (when it last looked, or heard from the service), or what keeps it from
/// looking.
fn watch_span(app: &App) -> Option<Span<'static>> {
    let w = app.watch.as_ref()?;
    let at = w
        .looked
        .map_or_else(|| "…".to_string(), dicomlab_lab::clock::hms);
    Some(match &w.problem {
        Some(_) => Span::styled(
            format!("watch failed {at}"),
            app.theme.symbol_style(app.theme.glyph("✗", "x")),
        ),
        None => Span::styled(format!("watching {at}"), app.theme.fg(Color::Cyan)),
    })
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
            app.theme.glyph("✓", "+")
        } else if expanded {
            app.theme.glyph("»", ">")
        } else {
            app.theme.glyph("○", "o")
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {head_sym} "), app.theme.symbol_style(head_sym)),
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
                    Span::styled(format!("{sym} "), app.theme.symbol_style(sym)),
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
    if app.is_viewer(&id) && app.viewer.image.is_some() {
        // The text keeps a third; the image gets the rest, fitted to the cells.
        let [text, picture] = Layout::vertical([
            Constraint::Length((area.height / 3).max(4)),
            Constraint::Min(3),
        ])
        .areas(area);
        draw_step_text(app, f, text, &id, step);
        app.viewer.draw(f, picture);
        return;
    }
    if let Some(screen) = Screen::of(step) {
        // The screen below the step's text: most of the room while it has the keys.
        let ctx = app.ctx();
        let panel = if app.focus == Focus::Panel {
            area.height * 2 / 3
        } else {
            area.height / 2
        }
        .min(app.screens.height(screen, &ctx))
        .clamp(5.min(area.height), area.height.saturating_sub(4).max(5));
        let [text, rest] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(panel)]).areas(area);
        draw_step_text(app, f, text, &id, step);
        app.screens.draw(screen, &ctx, f, rest);
        return;
    }
    draw_step_text(app, f, area, &id, step);
}

/// A label of the step pane's lines (`Check`, `Evidence`, `Tried`…), padded to one width.
fn label(s: &str) -> Span<'static> {
    Span::styled(format!("{s:<9}"), bold())
}

/// What the step's check says: its outcome, what it rests on or what failed, and the learner's tries.
fn check_lines(app: &App, id: &str, view: &crate::app::StepView) -> Vec<Line<'static>> {
    let id = id.to_string();
    let mut lines: Vec<Line> = Vec::new();
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
                Outcome::Fail { .. } => {
                    lines.push(Line::from(vec![
                        label("Check"),
                        Span::styled(head, app.theme.symbol_style(sym)),
                    ]));
                    for (name, text) in o.failure_lines().into_iter().flatten() {
                        lines.push(Line::from(vec![label(name), Span::raw(fill(app, text))]));
                    }
                }
                Outcome::Pass { detail, evidence } => {
                    lines.push(Line::from(vec![
                        label("Check"),
                        Span::styled(head, app.theme.symbol_style(sym)),
                        Span::raw(format!(": {detail}")),
                    ]));
                    let when = evidence
                        .at
                        .map(|a| format!(" · {}", dicomlab_lab::clock::human(a)))
                        .unwrap_or_default();
                    lines.push(Line::from(vec![
                        label("Evidence"),
                        Span::styled(format!("{}: ", evidence.source.label()), bold()),
                        Span::raw(format!("{}{when}", evidence.summary)),
                    ]));
                }
                Outcome::NotYet { observed, fix } => {
                    lines.push(Line::from(vec![
                        label("Check"),
                        Span::styled(head, app.theme.symbol_style(sym)),
                        Span::raw(format!(": {}", fill(app, observed))),
                    ]));
                    lines.push(Line::from(vec![label("fix"), Span::raw(fill(app, fix))]));
                }
                other => {
                    let text = match other {
                        Outcome::Ready { detail, .. } => detail.clone(),
                        Outcome::Waiting { reason, .. } => reason.clone(),
                        o => o.one_line(),
                    };
                    lines.push(Line::from(vec![
                        label("Check"),
                        Span::styled(head, app.theme.symbol_style(sym)),
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
    lines
}

/// The token step's claims and countdown.
fn token_lines(app: &App) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if let Some(c) = &app.claims {
        let left = token_left_text(app);
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
    lines
}

fn draw_step_text(
    app: &App,
    f: &mut Frame,
    area: Rect,
    id: &str,
    step: &dicomlab_lab::model::Step,
) {
    let view = &app.steps[id];
    let mut instructions: Vec<Line> = fill(app, &step.instructions)
        .lines()
        .map(|l| Line::raw(l.to_string()))
        .collect();
    let mut lines = check_lines(app, id, view);
    // The question is the evidence where the service keeps no record of reads dicomlab can read.
    if let Some(q) = &step.question
        && app.answerable(id)
    {
        lines.push(Line::from(vec![
            label("Question"),
            Span::raw(format!("{} — press a to answer", fill(app, &q.ask))),
        ]));
    }
    if step.check == dicomlab_lab::model::Check::Token {
        lines.extend(token_lines(app));
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

/// The status line, then the keys that fit: the bar drops its lowest-ranked hints first and keeps
/// `? keys` always (a long status is cut to leave it room).
fn draw_bar(app: &App, f: &mut Frame, area: Rect) {
    let hints = fit_bar(commands(app), usize::from(area.width));
    let used: usize = hints.iter().map(|(c, _)| hint_width(c)).sum();
    let mut spans = Vec::new();
    if let Some(s) = &app.status {
        let room = usize::from(area.width).saturating_sub(used + 3);
        if room > 1 {
            let shown = dicomlab_dicom::text::prefix(s, room.saturating_sub(1));
            let cut = if shown.len() < s.len() { "…" } else { "" };
            spans.push(Span::styled(
                format!(" {shown}{cut} "),
                app.theme.fg(Color::Yellow),
            ));
            spans.push(Span::raw(" "));
        }
    }
    for (c, _) in hints {
        spans.push(Span::styled(format!(" {}", c.keys), bold()));
        spans.push(Span::raw(format!(" {} ", c.does)));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The columns a hint takes in the bar: ` keys does `.
fn hint_width(c: &CommandInfo) -> usize {
    c.keys.chars().count() + c.does.chars().count() + 3
}

/// The hints that fit in `width` columns, in their order: while they do not fit, the one of the
/// highest rank (the latest of equal rank) goes; rank 0 stays.
fn fit_bar(mut hints: Vec<(CommandInfo, u8)>, width: usize) -> Vec<(CommandInfo, u8)> {
    while hints.iter().map(|(c, _)| hint_width(c)).sum::<usize>() > width {
        let Some((i, _)) = hints
            .iter()
            .enumerate()
            .filter(|(_, (_, r))| *r > 0)
            .max_by_key(|(i, (_, r))| (*r, *i))
        else {
            break;
        };
        hints.remove(i);
    }
    hints
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
        for c in app.screens.commands(screen, &app.ctx()) {
            lines.push(key_line(c.keys, c.does));
        }
        lines.push(Line::raw(""));
    }
    lines.extend(COMMANDS.iter().map(|c| key_line(c.keys, c.help)));
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
        let sym = if all {
            app.theme.glyph("✓", "+")
        } else {
            app.theme.glyph("○", "o")
        };
        let optional = ex.steps.iter().all(|s| s.optional);
        lines.push(Line::from(vec![
            Span::styled(format!(" {sym} "), app.theme.symbol_style(sym)),
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
        Confirm::Screen { ask, .. } => ask.clone(),
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
