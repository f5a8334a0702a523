//! The app's own keys — moving between steps and panes, check, do, hint, skip, reset, switch target,
//! copy, quit —, the answers to its questions (confirmations, typed answers), the mouse, and the key
//! lists the command bar and the `?` help show for them. A focused screen gets a key first; only the
//! keys it does not take come here.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent};

use super::app::{App, CheckState, Confirm, Effect, Focus, apply, entered};
use super::component::CommandInfo;
use crate::lab::progress::Status;

/// A key, after the confirmations, the overlays and the focused screen had their chance.
pub(super) fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        app.quit = true;
        return vec![Effect::Quit];
    }
    if let Some(confirm) = app.confirm.clone() {
        return on_confirm(app, confirm, key);
    }
    if app.show_help {
        app.show_help = false;
        return Vec::new();
    }
    if app.show_summary {
        app.show_summary = false;
        return Vec::new();
    }
    app.status = None;
    if app.focus == Focus::Panel
        && let Some(screen) = app.screen()
    {
        let ctx = app.ctx();
        if let Some(outs) = app.screens.key(screen, key, &ctx) {
            return apply(app, screen, outs);
        }
    }
    let count = app.lab.steps().count();
    let id = app.selected_id();
    match key.code {
        KeyCode::Char('q') => {
            if app.busy() {
                app.confirm = Some(Confirm::Quit);
                Vec::new()
            } else {
                app.quit = true;
                vec![Effect::Quit]
            }
        }
        KeyCode::Char('?') | KeyCode::F(1) => {
            app.show_help = true;
            Vec::new()
        }
        KeyCode::Down | KeyCode::Char('j') if app.focus == Focus::Checklist => {
            app.selected = (app.selected + 1).min(count.saturating_sub(1));
            app.scroll = 0;
            Vec::new()
        }
        KeyCode::Up | KeyCode::Char('k') if app.focus == Focus::Checklist => {
            app.selected = app.selected.saturating_sub(1);
            app.scroll = 0;
            Vec::new()
        }
        KeyCode::Down | KeyCode::Char('j') => {
            app.scroll = app.scroll.saturating_add(1);
            Vec::new()
        }
        KeyCode::Up | KeyCode::Char('k') => {
            app.scroll = app.scroll.saturating_sub(1);
            Vec::new()
        }
        KeyCode::Right | KeyCode::Char('n') => {
            app.selected = (app.selected + 1).min(count.saturating_sub(1));
            app.scroll = 0;
            Vec::new()
        }
        KeyCode::Left | KeyCode::Char('p') => {
            app.selected = app.selected.saturating_sub(1);
            app.scroll = 0;
            Vec::new()
        }
        KeyCode::Char('g') | KeyCode::Home => {
            app.selected = 0;
            Vec::new()
        }
        KeyCode::Char('G') | KeyCode::End => {
            app.selected = count.saturating_sub(1);
            Vec::new()
        }
        KeyCode::Enter if app.focus == Focus::Checklist => {
            app.focus = if app.screen().is_some() {
                Focus::Panel
            } else {
                Focus::Step
            };
            Vec::new()
        }
        KeyCode::Tab => {
            app.focus = match app.focus {
                Focus::Checklist => Focus::Step,
                Focus::Step if app.screen().is_some() => Focus::Panel,
                _ => Focus::Checklist,
            };
            Vec::new()
        }
        KeyCode::BackTab => {
            app.focus = match app.focus {
                Focus::Checklist if app.screen().is_some() => Focus::Panel,
                Focus::Checklist | Focus::Panel => Focus::Step,
                Focus::Step => Focus::Checklist,
            };
            Vec::new()
        }
        KeyCode::Esc => {
            app.focus = Focus::Checklist;
            Vec::new()
        }
        KeyCode::Char('x') => {
            if app.busy() {
                app.status = Some("cancelling…".into());
                vec![Effect::Cancel]
            } else {
                app.status = Some("nothing to cancel".into());
                Vec::new()
            }
        }
        KeyCode::Char('S') => {
            app.show_summary = true;
            Vec::new()
        }
        KeyCode::Char('M') => {
            app.mouse = !app.mouse;
            app.status = Some(if app.mouse {
                "mouse on: wheel scrolls, a click picks a step or a pane (text selection needs Shift)".into()
            } else {
                "mouse off: the terminal selects text again".into()
            });
            vec![Effect::Mouse(app.mouse)]
        }
        KeyCode::Char('c') => vec![app.check_selected()],
        KeyCode::Char('C') => {
            for s in app.steps.values_mut() {
                s.check = CheckState::Checking;
            }
            vec![Effect::CheckAll]
        }
        KeyCode::Char('d') => match app.view_mut(&id) {
            Some(s) if !s.doing => {
                s.doing = true;
                vec![Effect::Do(id)]
            }
            _ => Vec::new(),
        },
        KeyCode::Char('a') => {
            if app.answerable(&id) {
                app.confirm = Some(Confirm::Answer {
                    step: id,
                    typed: String::new(),
                });
            } else {
                app.status =
                    Some("this step asks no question: the service's records show it".into());
            }
            Vec::new()
        }
        KeyCode::Char('h') => {
            let total = app.lab.step(&id).map_or(0, |s| s.hints.len());
            if let Some(s) = app.view_mut(&id) {
                if s.hints_shown < total {
                    s.hints_shown += 1;
                } else {
                    app.status = Some("no more hints for this step".into());
                }
            }
            Vec::new()
        }
        KeyCode::Char('s') => {
            if let Some(s) = app.view_mut(&id) {
                s.saved = Some(Status::Skipped);
            }
            app.selected = (app.selected + 1).min(count.saturating_sub(1));
            vec![Effect::Skip(id)]
        }
        KeyCode::Char('r') => {
            app.confirm = Some(Confirm::ResetStep(id));
            Vec::new()
        }
        KeyCode::Char('R') => {
            app.confirm = Some(Confirm::ResetAll(String::new()));
            Vec::new()
        }
        KeyCode::Char('t') if !app.switching && !app.busy() && app.profiles.len() > 1 => {
            let from = app
                .last_tried
                .clone()
                .unwrap_or_else(|| app.profile.clone());
            let next = app
                .profiles
                .iter()
                .position(|p| *p == from)
                .map_or(0, |i| (i + 1) % app.profiles.len());
            let name = app.profiles[next].clone();
            app.last_tried = Some(name.clone());
            app.switching = true;
            app.status = Some(format!("opening {name}…"));
            vec![Effect::SwitchTarget {
                name,
                profile: None,
            }]
        }
        KeyCode::Char('v') if app.is_viewer(&id) => {
            app.status = Some("fetching the rendered image…".into());
            vec![Effect::LoadImage]
        }
        KeyCode::Char('e') => {
            app.show_exchange = !app.show_exchange;
            Vec::new()
        }
        KeyCode::Char('y') => match &app.last_exchange {
            Some(e) => {
                app.status = Some("copied the last request as curl (OSC 52)".into());
                vec![Effect::Copy(crate::dicomweb::Secret::new(e.curl()))]
            }
            None => {
                app.status = Some("no request sent yet".into());
                Vec::new()
            }
        },
        _ => Vec::new(),
    }
}

/// A mouse click: the focus moves to the pane under the pointer (the checklist is 36 wide); on a
/// checklist row it selects that step (an exercise's row: its first step).
pub(super) fn click(app: &mut App, m: MouseEvent) -> Vec<Effect> {
    if app.width >= 100 && m.column < 36 {
        app.focus = Focus::Checklist;
        if let Some(i) = checklist_row(app, m.row)
            && i != app.selected
        {
            app.selected = i;
            return entered(app);
        }
    } else {
        app.focus = if app.screen().is_some() {
            Focus::Panel
        } else {
            Focus::Step
        };
    }
    Vec::new()
}

/// The step under a terminal row of the wide layout's checklist (the view draws: a header row, the
/// pane's border, then per exercise its row and, for the current exercise, a row per step).
pub fn checklist_row(app: &App, row: u16) -> Option<usize> {
    let line = usize::from(row.checked_sub(2)?);
    let current = app
        .lab
        .exercise_of(&app.selected_id())
        .map(|e| e.id.clone());
    let mut n = 0usize;
    let mut first = 0usize;
    for ex in &app.lab.exercises {
        if n == line {
            return Some(first);
        }
        n += 1;
        if current.as_deref() == Some(ex.id.as_str()) {
            for i in 0..ex.steps.len() {
                if n == line {
                    return Some(first + i);
                }
                n += 1;
            }
        }
        first += ex.steps.len();
    }
    None
}

/// A line being typed into a question: Backspace, a character up to `max`, anything else ignored.
fn typing(typed: &mut String, code: KeyCode, max: usize) {
    match code {
        KeyCode::Backspace => {
            typed.pop();
        }
        KeyCode::Char(c) if !c.is_control() && typed.chars().count() < max => typed.push(c),
        _ => {}
    }
}

fn yes(key: KeyEvent) -> bool {
    matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y'))
}

fn on_confirm(app: &mut App, confirm: Confirm, key: KeyEvent) -> Vec<Effect> {
    app.confirm = None;
    match confirm {
        Confirm::ResetStep(id) if yes(key) => {
            if let Some(s) = app.view_mut(&id) {
                s.saved = None;
                s.check = CheckState::NotChecked;
                s.hints_shown = 0;
                s.did = None;
            }
            app.status = Some(format!("{id} reset"));
            vec![Effect::Reset(Some(id))]
        }
        Confirm::Screen { yes: work, .. } if yes(key) => {
            let (from, outs) = app.screens.confirmed(work);
            apply(app, from, outs)
        }
        Confirm::Quit if yes(key) => {
            app.quit = true;
            vec![Effect::Quit]
        }
        Confirm::ResetStep(_) | Confirm::Screen { .. } | Confirm::Quit => Vec::new(),
        Confirm::ResetAll(typed) if key.code == KeyCode::Enter && typed == "reset" => {
            for s in app.steps.values_mut() {
                s.saved = None;
                s.check = CheckState::NotChecked;
                s.hints_shown = 0;
                s.did = None;
            }
            app.selected = 0;
            app.status = Some("all progress reset".into());
            vec![Effect::Reset(None)]
        }
        Confirm::ResetAll(_) if key.code == KeyCode::Esc => Vec::new(),
        Confirm::ResetAll(mut typed) => {
            typing(&mut typed, key.code, 10);
            app.confirm = Some(Confirm::ResetAll(typed));
            Vec::new()
        }
        Confirm::Answer { .. } if key.code == KeyCode::Esc => Vec::new(),
        Confirm::Answer { step, typed }
            if key.code == KeyCode::Enter && !typed.trim().is_empty() =>
        {
            if let Some(s) = app.view_mut(&step) {
                s.check = CheckState::Checking;
            }
            vec![Effect::Answer { step, value: typed }]
        }
        Confirm::Answer { step, mut typed } => {
            typing(&mut typed, key.code, 120);
            app.confirm = Some(Confirm::Answer { step, typed });
            Vec::new()
        }
        // Esc declines: the report says "no name given", and the question is not asked again.
        Confirm::Name(_) if key.code == KeyCode::Esc => vec![Effect::SaveName(String::new())],
        Confirm::Name(typed) if key.code == KeyCode::Enter => {
            app.status = Some(if typed.trim().is_empty() {
                "no name: the report will say so".into()
            } else {
                format!("the report will name you {}", typed.trim())
            });
            vec![Effect::SaveName(typed.trim().to_string())]
        }
        Confirm::Name(mut typed) => {
            typing(&mut typed, key.code, 80);
            app.confirm = Some(Confirm::Name(typed));
            Vec::new()
        }
    }
}

const fn bar(keys: &'static str, does: &'static str) -> CommandInfo {
    CommandInfo {
        keys,
        does,
        bar: true,
    }
}

/// The keys that work now, for the command bar: the focused screen's, else the app's.
pub fn commands(app: &App) -> Vec<CommandInfo> {
    match &app.confirm {
        Some(Confirm::Answer { .. }) => {
            return vec![bar("Enter", "check the answer"), bar("Esc", "cancel")];
        }
        Some(Confirm::Name(_)) => {
            return vec![bar("Enter", "keep the name"), bar("Esc", "leave it out")];
        }
        Some(Confirm::ResetAll(_)) => {
            return vec![bar("reset Enter", "reset all"), bar("Esc", "cancel")];
        }
        Some(_) => return vec![bar("y", "yes"), bar("other", "no")],
        None => {}
    }
    if app.show_help || app.show_summary {
        return vec![bar("any key", "close")];
    }
    if app.focus == Focus::Panel
        && let Some(screen) = app.screen()
    {
        let mut v: Vec<CommandInfo> = app
            .screens
            .commands(screen, &app.ctx())
            .into_iter()
            .filter(|c| c.bar)
            .collect();
        if !app.screens.editing(screen) {
            if app.busy() {
                v.push(bar("x", "cancel"));
            }
            v.push(bar("c", "check"));
            if !v.iter().any(|c| c.keys == "Esc") {
                v.push(bar("Esc", "checklist"));
            }
            v.push(bar("?", "keys"));
        }
        return v;
    }
    let mut v = vec![bar("d", "do it"), bar("c", "check"), bar("h", "hint")];
    let id = app.selected_id();
    if app.answerable(&id) {
        v.push(bar("a", "answer"));
    }
    if app.busy() {
        v.push(bar("x", "cancel"));
    }
    if app.last_exchange.is_some() {
        v.push(bar("y", "copy curl"));
        v.push(bar("e", "exchange"));
    }
    v.extend([
        bar("s", "skip"),
        bar("r", "reset"),
        bar("↑↓", "step"),
        bar("Tab", "pane"),
        bar("?", "keys"),
        bar("q", "quit"),
    ]);
    v
}

/// Every key of the app, for the `?` help (below the focused screen's own).
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
