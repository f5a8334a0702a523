//! The instructor's dashboard: learners × exercises with the lab's symbols, each learner's time on their
//! current step, who looks stuck and why, and the selected learner's last failure with its diagnosis.
//! The same Elm style as the lab's TUI: one [`Dashboard`] state, [`Msg`]s, a pure [`update`] that returns
//! [`Effect`]s, a [`view`] that only reads. The selected learner's pane shows their personal code (to
//! read it out to a learner who lost it); `R` twice gives them a new one. The runtime ([`run`]) redraws when the room changes (a
//! verdict, a join, a session), on a key, and once every 30 s for the clocks — never at a fixed rate.

use std::collections::BTreeMap;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures_util::StreamExt;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use crate::folder::LearnerSource;
use crate::names::LearnerName;
use crate::reset::Reset;
use crate::room::{LearnerRow, Mark, Room};
use crate::state::Core;
use dicomlab_dicomweb::Secret;

/// What the header tells the instructor to write on the board.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// The class code.
    pub code: String,
    /// `ssh -p 2222 <name>@host`
    pub ssh: String,
    /// The host key's fingerprint (`SHA256:…`).
    pub fingerprint: String,
    /// `http://host:8080/l/<name>/v1`
    pub http: String,
    /// Where the log is.
    pub log: String,
}

/// The dashboard's state.
pub struct Dashboard {
    pub room: Room,
    pub header: Header,
    /// The selected learner (an index into `room.learners`).
    pub selected: usize,
    /// The selected learner's detail pane is open.
    pub detail: bool,
    /// `q` was pressed once: a second one closes the classroom.
    pub confirm_quit: bool,
    /// `R` was pressed once on this learner: a second one resets their personal code.
    pub confirm_reset: Option<String>,
    /// Every SSH learner's personal code (only the selected learner's is shown, and only after `s`:
    /// the dashboard may be projected).
    pub codes: BTreeMap<String, Secret>,
    /// `s` was pressed on the selected learner: their code is shown until the selection moves.
    pub show_code: bool,
    /// What the last action did.
    pub note: String,
    /// ASCII symbols (`DICOMLAB_ASCII=1`, `TERM=linux`).
    pub ascii: bool,
    pub no_color: bool,
}

/// What happens.
pub enum Msg {
    Key(KeyEvent),
    /// The room as it is now.
    Room(Room),
    /// The learners' personal codes now.
    Codes(BTreeMap<String, Secret>),
    /// What an action did (a reset).
    Note(String),
}

/// What to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    Quit,
    /// Give this learner a new personal code (or forget a self-reporter's token).
    Reset(String),
}

impl Dashboard {
    pub fn new(room: Room, header: Header) -> Self {
        Dashboard {
            room,
            header,
            selected: 0,
            detail: true,
            confirm_quit: false,
            confirm_reset: None,
            codes: BTreeMap::new(),
            show_code: false,
            note: String::new(),
            ascii: false,
            no_color: false,
        }
    }

    fn selected_row(&self) -> Option<&LearnerRow> {
        self.room.learners.get(self.selected)
    }
}

/// Changes the state; no I/O.
pub fn update(d: &mut Dashboard, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Room(room) => {
            // Keep the same learner selected when rows are added.
            let name = d.selected_row().map(|l| l.name.clone());
            d.room = room;
            if let Some(n) = name
                && let Some(i) = d.room.learners.iter().position(|l| l.name == n)
            {
                d.selected = i;
            }
            d.selected = d.selected.min(d.room.learners.len().saturating_sub(1));
        }
        Msg::Codes(codes) => d.codes = codes,
        Msg::Note(note) => d.note = note,
        Msg::Key(k) if k.kind == KeyEventKind::Press => {
            let quit = matches!(k.code, KeyCode::Char('q'))
                || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL));
            if quit {
                if d.confirm_quit {
                    return vec![Effect::Quit];
                }
                d.confirm_quit = true;
                return Vec::new();
            }
            d.confirm_quit = false;
            let confirm_reset = d.confirm_reset.take();
            if k.code == KeyCode::Char('R')
                && let Some(name) = d.selected_row().map(|l| l.name.clone())
            {
                if confirm_reset.as_deref() == Some(name.as_str()) {
                    return vec![Effect::Reset(name)];
                }
                d.confirm_reset = Some(name);
                return Vec::new();
            }
            let n = d.room.learners.len();
            let before = d.selected;
            match k.code {
                KeyCode::Char('s') => d.show_code = !d.show_code,
                KeyCode::Up | KeyCode::Char('k') => d.selected = d.selected.saturating_sub(1),
                KeyCode::Down | KeyCode::Char('j') => {
                    d.selected = (d.selected + 1).min(n.saturating_sub(1));
                }
                KeyCode::Home | KeyCode::Char('g') => d.selected = 0,
                KeyCode::End | KeyCode::Char('G') => d.selected = n.saturating_sub(1),
                KeyCode::Enter => d.detail = !d.detail,
                KeyCode::Esc => {
                    d.detail = false;
                    d.show_code = false;
                }
                _ => {}
            }
            if d.selected != before {
                d.show_code = false;
            }
        }
        Msg::Key(_) => {}
    }
    Vec::new()
}

fn mark_style(d: &Dashboard, m: Mark) -> Style {
    if d.no_color {
        return Style::default();
    }
    match m {
        Mark::Done => Style::default().fg(Color::Green),
        Mark::Failed => Style::default().fg(Color::Red),
        Mark::Current => Style::default().fg(Color::Cyan),
        Mark::Waiting => Style::default().fg(Color::Yellow),
        Mark::Skipped | Mark::Pending => Style::default().fg(Color::DarkGray),
    }
}

fn clock(secs: i64) -> String {
    match secs {
        s if s < 60 => "<1 min".into(),
        s if s < 3600 => format!("{} min", s / 60),
        s => format!("{}h{:02}", s / 3600, (s % 3600) / 60),
    }
}

/// Draws the dashboard (reads only): the header, the learners' table, the selected learner's last
/// failure (when open), the footer.
pub fn view(d: &Dashboard, f: &mut Frame) {
    let detail_height = if d.detail && d.selected_row().is_some() {
        10
    } else {
        0
    };
    let [head, table, detail, foot] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(3),
        Constraint::Length(detail_height),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(header(d), head);
    learners_table(d, f, table);
    if detail_height > 0
        && let Some(l) = d.selected_row()
    {
        f.render_widget(detail_pane(d, l), detail);
    }
    f.render_widget(Paragraph::new(footer(d)), foot);
}

/// Bold, for what the instructor reads out.
fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// The title, the room's counts, and what learners type (the ssh line, the class code, the host key,
/// their service's address).
fn header(d: &Dashboard) -> Paragraph<'static> {
    let bold = bold();
    let online = d
        .room
        .learners
        .iter()
        .filter(|l| l.online == Some(true))
        .count();
    let stuck = d.room.learners.iter().filter(|l| l.stuck.is_some()).count();
    Paragraph::new(vec![
        Line::from(vec![
            Span::styled(format!("dicomlab classroom · {}", d.room.title), bold),
            Span::raw(format!(
                "   {} learner(s), {online} connected, {stuck} stuck",
                d.room.learners.len()
            )),
        ]),
        Line::from(vec![
            Span::raw("learners type  "),
            Span::styled(d.header.ssh.clone(), bold),
            Span::raw("   code  "),
            Span::styled(d.header.code.clone(), bold),
        ]),
        Line::from(format!(
            "host key {}   their service  {}",
            d.header.fingerprint, d.header.http
        )),
    ])
}

/// Learners × exercises, the selected learner's row reversed (or a word while nobody has joined).
fn learners_table(d: &Dashboard, f: &mut Frame, table: Rect) {
    let bold = bold();
    let mut header = vec![Cell::from("learner"), Cell::from("")];
    header.extend((1..=d.room.exercises.len()).map(|i| Cell::from(format!("{i:>2}"))));
    header.extend(["done", "current step", "on it", "stuck"].map(Cell::from));
    let rows: Vec<Row> = d
        .room
        .learners
        .iter()
        .enumerate()
        .map(|(i, l)| learner_row(d, i, l))
        .collect();
    let mut widths = vec![Constraint::Length(14), Constraint::Length(4)];
    widths.extend(d.room.exercises.iter().map(|_| Constraint::Length(2)));
    widths.extend([
        Constraint::Length(5),
        Constraint::Length(20),
        Constraint::Length(7),
        Constraint::Min(10),
    ]);
    let legend = if d.ascii {
        " + done  x failed  > current  ~ waiting  s skipped  o not yet "
    } else {
        " ✓ done  ✗ failed  » current  … waiting  ⤼ skipped  ○ not yet "
    };
    let block = Block::default().borders(Borders::ALL).title(legend);
    if rows.is_empty() {
        f.render_widget(
            Paragraph::new("Nobody has joined yet: learners connect with the ssh line above.")
                .block(block),
            table,
        );
    } else {
        f.render_widget(
            Table::new(rows, widths)
                .header(Row::new(header).style(bold))
                .column_spacing(1)
                .block(block),
            table,
        );
    }
}

/// One learner's row: their name, whether they are connected, their marks, how far they are, their
/// current step, how long they have been on it, and why they look stuck.
fn learner_row(d: &Dashboard, i: usize, l: &LearnerRow) -> Row<'static> {
    let bold = bold();
    let dot = match (l.source, l.online) {
        (LearnerSource::SelfReported, _) => "self",
        (_, Some(true)) => {
            if d.ascii {
                "on"
            } else {
                "●"
            }
        }
        _ => "",
    };
    let mut cells = vec![Cell::from(l.name.clone()), Cell::from(dot)];
    cells.extend(l.exercises.iter().map(|m| {
        Cell::from(Span::styled(
            format!("{:>2}", m.symbol(d.ascii)),
            mark_style(d, *m),
        ))
    }));
    cells.push(Cell::from(format!("{}/{}", l.done, l.required)));
    cells.push(Cell::from(
        l.current
            .as_ref()
            .map_or_else(|| "complete".into(), ToString::to_string),
    ));
    cells.push(Cell::from(l.on_step_secs.map(clock).unwrap_or_default()));
    let stuck = l.stuck.clone().unwrap_or_default();
    cells.push(Cell::from(Span::styled(
        stuck,
        if d.no_color {
            bold
        } else {
            Style::default().fg(Color::Red)
        },
    )));
    let row = Row::new(cells);
    if i == d.selected {
        row.style(Style::default().add_modifier(Modifier::REVERSED))
    } else {
        row
    }
}

/// The selected learner's pane: their personal code (masked until `s`), why they look stuck, their
/// last failure with its diagnosis.
fn detail_pane<'a>(d: &Dashboard, l: &'a LearnerRow) -> Paragraph<'a> {
    let bold = bold();
    let mut lines = Vec::new();
    match &l.last_failure {
        Some(fl) => {
            lines.push(Line::from(vec![
                Span::styled(format!("{} · {}", fl.step, fl.title), bold),
                Span::raw(format!(
                    "  (checked {})",
                    fl.at.map(dicomlab_lab::clock::human).unwrap_or_default()
                )),
            ]));
            lines.push(Line::from(format!("observed  {}", fl.observed)));
            if !fl.diagnosis.is_empty() {
                lines.push(Line::from(format!("fix       {}", fl.diagnosis)));
            }
            for (i, t) in fl.tried.iter().enumerate() {
                let head = if i == 0 { "tried     " } else { "          " };
                lines.push(Line::from(format!("{head}{t}")));
            }
        }
        None => lines.push(Line::from("No failure recorded.")),
    }
    if let Some(s) = &l.stuck {
        lines.insert(0, Line::from(Span::styled(format!("stuck: {s}"), bold)));
    }
    let code = match (l.source, d.codes.get(&l.name)) {
        (LearnerSource::Service, Some(c)) if d.show_code => Line::from(vec![
            Span::raw("personal code  "),
            Span::styled(c.expose().to_string(), bold),
            Span::raw("  (their SSH password; s hides it; R twice gives a new one)"),
        ]),
        (LearnerSource::Service, Some(_)) => Line::from(vec![
            Span::raw("personal code  "),
            Span::styled("••••-••••", bold),
            Span::raw("  (s shows it, to read out; R twice gives a new one)"),
        ]),
        (LearnerSource::Service, None) => {
            Line::from("personal code  none yet: given at their next login with the class code")
        }
        (LearnerSource::SelfReported, _) => Line::from(
            "reports with a token dicomlab join keeps (R twice lets their next report take a new one)",
        ),
    };
    lines.insert(0, code);
    let source = match l.source {
        LearnerSource::Service => "checked on their service",
        LearnerSource::SelfReported => "self-reported from their own service",
    };
    Paragraph::new(lines).wrap(Wrap { trim: false }).block(
        Block::default()
            .borders(Borders::ALL)
            .title(format!(" {} — last failure ({source}) ", l.name)),
    )
}

/// The footer: a confirmation asked for, what the last action did, or the keys.
fn footer(d: &Dashboard) -> String {
    if d.confirm_quit {
        "Press q again to close the classroom (every session ends; progress is kept). Any other key: stay."
            .to_string()
    } else if let Some(name) = &d.confirm_reset {
        format!(
            "Press R again to reset {name}: a new personal code (the old one stops working) or, self-reported, a new token. Any other key: no."
        )
    } else if !d.note.is_empty() {
        d.note.clone()
    } else {
        format!(
            "↑ ↓ learner  Enter show/hide their last failure  s show their code  R reset it  q close the classroom   log: {}",
            d.header.log
        )
    }
}

/// Runs the dashboard in this process's terminal until the instructor closes the classroom.
/// A panic in a learner's task (a session, a check, a request of theirs) ends that task only: it goes
/// to the classroom's log, not onto the instructor's screen — ratatui's hook would give the terminal
/// back (leave the alternate screen, end raw mode) under a dashboard that goes on drawing. A panic of
/// the dashboard itself (the main thread) still restores the terminal and says so.
fn keep_the_screen_from_learners_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            "panic: {info}\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        if panic_reaches_the_screen(thread.name()) {
            previous(info);
        }
    }));
}

/// Whether a panic on this thread is the dashboard's own (the main thread runs it; tokio's workers and
/// blocking threads run the learners' tasks).
fn panic_reaches_the_screen(thread: Option<&str>) -> bool {
    thread == Some("main")
}

pub async fn run(core: std::sync::Arc<Core>, header: Header) -> std::io::Result<()> {
    let mut d = Dashboard::new(core.room(), header);
    d.codes = core.personal_codes();
    d.ascii = std::env::var("DICOMLAB_ASCII").is_ok_and(|v| v == "1")
        || std::env::var("TERM").is_ok_and(|t| t == "linux" || t == "vt100");
    d.no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let mut terminal = ratatui::init();
    keep_the_screen_from_learners_panics();
    let mut events = EventStream::new();
    let mut changes = core.watch();
    // Minutes on a step move slowly: redraw the clocks twice a minute.
    let mut clocks = tokio::time::interval(Duration::from_secs(30));
    clocks.reset();
    let result = async {
        terminal.draw(|f| view(&d, f))?;
        loop {
            let msg = tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(Event::Key(k))) => Msg::Key(k),
                    Some(Ok(Event::Resize(..))) => {
                        terminal.autoresize()?;
                        terminal.draw(|f| view(&d, f))?;
                        continue;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
                r = changes.changed() => {
                    if r.is_err() {
                        return Ok(());
                    }
                    // A burst of verdicts costs one read of the room.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    changes.borrow_and_update();
                    d.codes = core.personal_codes();
                    Msg::Room(room_now(&core).await)
                }
                _ = clocks.tick() => Msg::Room(room_now(&core).await),
            };
            for effect in update(&mut d, msg) {
                match effect {
                    Effect::Quit => return Ok(()),
                    Effect::Reset(name) => {
                        let reset = match LearnerName::exact(&name) {
                            Ok(n) => core.reset_code(&n).await.map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        };
                        let note = match reset {
                            Ok(Reset::Code(_)) => format!(
                                "{name} has a new personal code (s shows it); the old one no longer logs in."
                            ),
                            Ok(Reset::Token) => format!(
                                "{name}'s next report takes a new token (dicomlab join keeps it)."
                            ),
                            Err(e) => format!("Cannot reset {name}: {e}"),
                        };
                        d.codes = core.personal_codes();
                        update(&mut d, Msg::Note(note));
                    }
                }
            }
            terminal.draw(|f| view(&d, f))?;
        }
    }
    .await;
    ratatui::restore();
    result
}

async fn room_now(core: &std::sync::Arc<Core>) -> Room {
    let c = core.clone();
    tokio::task::spawn_blocking(move || c.room())
        .await
        .unwrap_or_else(|_| core.room())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn key(c: KeyCode) -> Msg {
        Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
    }

    fn room(names: &[&str]) -> Room {
        let lab = dicomlab_lab::Lab::embedded().expect("lab");
        Room {
            lab: lab.id.clone(),
            title: lab.title.clone(),
            at: time::macros::datetime!(2026-11-30 10:00 UTC),
            exercises: lab
                .exercises
                .iter()
                .map(|e| crate::room::Column {
                    id: e.id.clone(),
                    title: e.title.clone(),
                })
                .collect(),
            learners: names
                .iter()
                .map(|n| LearnerRow {
                    name: n.to_string(),
                    source: LearnerSource::Service,
                    online: Some(true),
                    exercises: lab.exercises.iter().map(|_| Mark::Pending).collect(),
                    steps: Vec::new(),
                    done: 0,
                    required: 14,
                    current: Some("service-exists".into()),
                    on_step_secs: Some(125),
                    stuck: (*n == "cy").then(|| "the same failure 3 times in a row (415)".into()),
                    last_failure: None,
                })
                .collect(),
        }
    }

    #[test]
    fn keys_select_learners_and_quit_asks_first() {
        let mut d = Dashboard::new(room(&["ada", "bob", "cy"]), Header::default());
        update(&mut d, key(KeyCode::Down));
        update(&mut d, key(KeyCode::Down));
        update(&mut d, key(KeyCode::Down));
        assert_eq!(d.selected, 2);
        // A new room keeps the same learner selected.
        update(&mut d, Msg::Room(room(&["al", "ada", "bob", "cy"])));
        assert_eq!(d.room.learners[d.selected].name, "cy");
        assert!(update(&mut d, key(KeyCode::Char('q'))).is_empty());
        assert!(d.confirm_quit);
        update(&mut d, key(KeyCode::Up));
        assert!(!d.confirm_quit, "another key stays");
        update(&mut d, key(KeyCode::Char('q')));
        assert_eq!(update(&mut d, key(KeyCode::Char('q'))), vec![Effect::Quit]);
    }

    #[test]
    fn only_the_dashboards_own_panic_reaches_the_screen() {
        assert!(panic_reaches_the_screen(Some("main")));
        assert!(!panic_reaches_the_screen(Some("tokio-runtime-worker")));
        assert!(!panic_reaches_the_screen(None));
        // The thread the runtime's workers are named after, here.
        let worker = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime")
            .block_on(async {
                tokio::spawn(async { std::thread::current().name().map(str::to_string) })
                    .await
                    .expect("task")
            });
        assert!(!panic_reaches_the_screen(worker.as_deref()), "{worker:?}");
    }

    #[test]
    fn the_selected_learner_shows_their_code_and_r_twice_resets_it() {
        let mut d = Dashboard::new(room(&["ada", "bob"]), Header::default());
        d.codes = BTreeMap::from([
            ("ada".to_string(), Secret::new("aaaa-bbbb")),
            ("bob".to_string(), Secret::new("cccc-dddd")),
        ]);
        let text = |d: &Dashboard| {
            let mut t = Terminal::new(TestBackend::new(120, 30)).expect("terminal");
            t.draw(|f| view(d, f)).expect("draw");
            t.backend()
                .buffer()
                .content()
                .iter()
                .map(|c| c.symbol())
                .collect::<String>()
        };
        let masked = text(&d);
        assert!(
            !masked.contains("aaaa-bbbb"),
            "masked until asked: {masked}"
        );
        assert!(masked.contains("••••-••••"));
        update(&mut d, key(KeyCode::Char('s')));
        let shown = text(&d);
        assert!(shown.contains("aaaa-bbbb"), "the selected learner's code");
        assert!(!shown.contains("cccc-dddd"), "only the selected learner's");
        update(&mut d, key(KeyCode::Down));
        assert!(
            !text(&d).contains("cccc-dddd"),
            "another learner: masked again"
        );
        update(&mut d, key(KeyCode::Up));
        assert!(
            update(&mut d, key(KeyCode::Char('R'))).is_empty(),
            "asks first"
        );
        assert!(text(&d).contains("Press R again to reset ada"));
        update(&mut d, key(KeyCode::Down));
        assert!(d.confirm_reset.is_none(), "another key: no");
        update(&mut d, key(KeyCode::Char('R')));
        assert_eq!(
            update(&mut d, key(KeyCode::Char('R'))),
            vec![Effect::Reset("bob".into())]
        );
    }

    #[test]
    fn the_view_shows_learners_symbols_and_who_is_stuck() {
        let d = Dashboard::new(
            room(&["ada", "cy"]),
            Header {
                code: "kx7p-2mqa-h4rt".into(),
                ssh: "ssh -p 2222 <name>@classroom".into(),
                fingerprint: "SHA256:abc".into(),
                http: "http://classroom:8080/l/<name>/v1".into(),
                log: "/tmp/classroom.log".into(),
            },
        );
        let mut t = Terminal::new(TestBackend::new(120, 30)).expect("terminal");
        t.draw(|f| view(&d, f)).expect("draw");
        let text: String = t
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        for want in [
            "ada",
            "cy",
            "kx7p-2mqa-h4rt",
            "ssh -p 2222",
            "○",
            "2 min",
            "the same failure",
        ] {
            assert!(text.contains(want), "{want} missing");
        }
    }
}
