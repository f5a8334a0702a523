//! The app's own keys as a command list, like a screen's: each [`AppCommand`] names its keys, what the
//! bar and the `?` help say of it, when it is in the bar, and what it does. `keys::on_key` runs the
//! first command that takes a key, the bar and the help are drawn from the same list, so a key that
//! works is a key `?` lists.

use crossterm::event::{KeyCode, KeyEvent};

use super::app::{App, CheckState, Confirm, Effect, Focus, Overlay};
use dicomlab_lab::progress::Status;

/// When a command is in the command bar, and how much it matters there: a narrow terminal drops the
/// hints of the highest rank first; `? keys` (rank 0) is never dropped.
#[derive(Clone, Copy)]
pub(crate) enum Bar {
    /// Only in the `?` help (moving, a second spelling of a key).
    Never,
    /// Always, at this rank.
    Always(u8),
    /// While the condition holds, at this rank.
    When(fn(&App) -> bool, u8),
}

/// One of the app's own keys.
pub(crate) struct AppCommand {
    /// The key codes that run it (modifiers are not looked at).
    pub codes: &'static [KeyCode],
    /// The keys as the `?` help lists them (every spelling).
    pub keys: &'static str,
    /// The keys as the bar shows them (the first spelling).
    pub bar_keys: &'static str,
    /// What the bar says (a word or two).
    pub short: &'static str,
    /// What the `?` help says.
    pub help: &'static str,
    pub bar: Bar,
    /// The key is the command's only while this holds (None: always).
    pub takes: Option<fn(&App) -> bool>,
    pub run: fn(&mut App, KeyEvent) -> Vec<Effect>,
}

impl AppCommand {
    /// Whether it takes `key` now.
    pub(crate) fn takes(&self, app: &App, key: &KeyEvent) -> bool {
        self.codes.contains(&key.code) && self.takes.is_none_or(|t| t(app))
    }

    /// Its rank in the bar now (None: not in the bar).
    pub(crate) fn bar_rank(&self, app: &App) -> Option<u8> {
        match self.bar {
            Bar::Never => None,
            Bar::Always(r) => Some(r),
            Bar::When(shown, r) => shown(app).then_some(r),
        }
    }
}

const fn cmd(
    codes: &'static [KeyCode],
    keys: &'static str,
    short: &'static str,
    help: &'static str,
    bar: Bar,
    run: fn(&mut App, KeyEvent) -> Vec<Effect>,
) -> AppCommand {
    AppCommand {
        codes,
        keys,
        bar_keys: keys,
        short,
        help,
        bar,
        takes: None,
        run,
    }
}

const fn bar_as(mut c: AppCommand, bar_keys: &'static str) -> AppCommand {
    c.bar_keys = bar_keys;
    c
}

const fn only_when(mut c: AppCommand, takes: fn(&App) -> bool) -> AppCommand {
    c.takes = Some(takes);
    c
}

/// Every key of the app, in the order the bar and the `?` help list them.
pub(crate) const COMMANDS: &[AppCommand] = &[
    cmd(
        &[KeyCode::Char('d')],
        "d",
        "do it",
        "do the step (send its requests), then check it",
        Bar::Always(1),
        do_it,
    ),
    bar_as(
        cmd(
            &[KeyCode::Char('c'), KeyCode::Char('C')],
            "c / C",
            "check",
            "check this step / every step",
            Bar::Always(1),
            check,
        ),
        "c",
    ),
    cmd(
        &[KeyCode::Char('h')],
        "h",
        "hint",
        "reveal the next hint",
        Bar::Always(2),
        hint,
    ),
    cmd(
        &[KeyCode::Char('a')],
        "a",
        "answer",
        "answer the step's question (a step that asks one)",
        Bar::When(|app| app.answerable(&app.selected_id()), 2),
        answer,
    ),
    cmd(
        &[KeyCode::Char('x')],
        "x",
        "cancel",
        "cancel the requests in flight",
        Bar::When(App::busy, 1),
        cancel,
    ),
    only_when(
        cmd(
            &[KeyCode::Char('v')],
            "v",
            "view image",
            "view the rendered image (the viewer step)",
            Bar::When(|app| app.is_viewer(&app.selected_id()), 2),
            |app, _| {
                app.status = Some("fetching the rendered image…".into());
                vec![Effect::LoadImage]
            },
        ),
        |app| app.is_viewer(&app.selected_id()),
    ),
    cmd(
        &[KeyCode::Char('y')],
        "y",
        "copy curl",
        "copy the last request as curl (OSC 52, works over SSH)",
        Bar::When(|app| app.last_exchange.is_some(), 4),
        copy_curl,
    ),
    cmd(
        &[KeyCode::Char('e')],
        "e",
        "exchange",
        "show / hide the last exchange",
        Bar::When(|app| app.last_exchange.is_some(), 4),
        |app, _| {
            app.show_exchange = !app.show_exchange;
            Vec::new()
        },
    ),
    cmd(
        &[KeyCode::Char('s')],
        "s",
        "skip",
        "skip the step",
        Bar::Always(3),
        skip,
    ),
    bar_as(
        cmd(
            &[KeyCode::Char('r'), KeyCode::Char('R')],
            "r / R",
            "reset",
            "reset this step (asks) / all progress (type reset)",
            Bar::Always(5),
            reset,
        ),
        "r",
    ),
    bar_as(
        cmd(
            &[
                KeyCode::Down,
                KeyCode::Up,
                KeyCode::Char('j'),
                KeyCode::Char('k'),
            ],
            "↑ ↓  j k",
            "step",
            "previous / next step (checklist), scroll (step pane)",
            Bar::Always(6),
            up_down,
        ),
        "↑↓",
    ),
    cmd(
        &[
            KeyCode::Left,
            KeyCode::Right,
            KeyCode::Char('p'),
            KeyCode::Char('n'),
        ],
        "← →  p n",
        "step",
        "previous / next step",
        Bar::Never,
        prev_next,
    ),
    cmd(
        &[
            KeyCode::Char('g'),
            KeyCode::Home,
            KeyCode::Char('G'),
            KeyCode::End,
        ],
        "g G",
        "first / last",
        "first / last step",
        Bar::Never,
        first_last,
    ),
    bar_as(
        cmd(
            &[KeyCode::Tab, KeyCode::BackTab, KeyCode::Enter, KeyCode::Esc],
            "Tab Enter Esc",
            "pane",
            "move between the checklist, the step and its screen",
            Bar::Always(6),
            panes,
        ),
        "Tab",
    ),
    only_when(
        cmd(
            &[KeyCode::Char('t')],
            "t",
            "target",
            "switch target: practice → azure → generic (profiles)",
            Bar::Never,
            switch_target,
        ),
        |app| !app.switching && !app.busy() && app.profiles.len() > 1,
    ),
    cmd(
        &[KeyCode::Char('S')],
        "S",
        "summary",
        "the summary (and how to make the report)",
        Bar::Never,
        |app, _| {
            app.overlay = Some(Overlay::Summary);
            Vec::new()
        },
    ),
    cmd(
        &[KeyCode::Char('M')],
        "M",
        "mouse",
        "mouse on/off (wheel scrolls, a click picks a step or a pane)",
        Bar::Never,
        mouse,
    ),
    bar_as(
        cmd(
            &[KeyCode::Char('?'), KeyCode::F(1)],
            "?  F1",
            "keys",
            "this help",
            Bar::Always(0),
            |app, _| {
                app.overlay = Some(Overlay::Help);
                Vec::new()
            },
        ),
        "?",
    ),
    bar_as(
        cmd(
            &[KeyCode::Char('q')],
            "q  Ctrl-C",
            "quit",
            "quit (asks while something runs)",
            Bar::Always(3),
            quit,
        ),
        "q",
    ),
];

/// The app's command that takes `key` now, if any.
pub(crate) fn find(app: &App, key: &KeyEvent) -> Option<&'static AppCommand> {
    COMMANDS.iter().find(|c| c.takes(app, key))
}

fn step_count(app: &App) -> usize {
    app.lab.steps().count()
}

fn select(app: &mut App, i: usize) -> Vec<Effect> {
    app.selected = i.min(step_count(app).saturating_sub(1));
    app.scroll = 0;
    Vec::new()
}

fn up_down(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let down = matches!(key.code, KeyCode::Down | KeyCode::Char('j'));
    if app.focus == Focus::Checklist {
        let i = if down {
            app.selected + 1
        } else {
            app.selected.saturating_sub(1)
        };
        return select(app, i);
    }
    app.scroll = if down {
        app.scroll.saturating_add(1)
    } else {
        app.scroll.saturating_sub(1)
    };
    Vec::new()
}

fn prev_next(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let i = if matches!(key.code, KeyCode::Right | KeyCode::Char('n')) {
        app.selected + 1
    } else {
        app.selected.saturating_sub(1)
    };
    select(app, i)
}

fn first_last(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    app.selected = if matches!(key.code, KeyCode::Char('g') | KeyCode::Home) {
        0
    } else {
        step_count(app).saturating_sub(1)
    };
    Vec::new()
}

fn panes(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let has_screen = app.screen().is_some();
    app.focus = match (key.code, app.focus) {
        (KeyCode::Enter, Focus::Checklist) if has_screen => Focus::Panel,
        (KeyCode::Enter, Focus::Checklist) => Focus::Step,
        (KeyCode::Enter, f) => f,
        (KeyCode::Tab, Focus::Checklist) => Focus::Step,
        (KeyCode::Tab, Focus::Step) if has_screen => Focus::Panel,
        (KeyCode::Tab, _) => Focus::Checklist,
        (KeyCode::BackTab, Focus::Checklist) if has_screen => Focus::Panel,
        (KeyCode::BackTab, Focus::Checklist | Focus::Panel) => Focus::Step,
        (KeyCode::BackTab, Focus::Step) => Focus::Checklist,
        _ => Focus::Checklist,
    };
    Vec::new()
}

fn do_it(app: &mut App, _: KeyEvent) -> Vec<Effect> {
    let id = app.selected_id();
    match app.view_mut(&id) {
        Some(s) if !s.doing => {
            s.doing = true;
            vec![Effect::Do(id)]
        }
        _ => Vec::new(),
    }
}

fn check(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if key.code == KeyCode::Char('c') {
        return vec![app.check_selected()];
    }
    for s in app.steps.values_mut() {
        s.check = CheckState::Checking;
    }
    vec![Effect::CheckAll]
}

fn hint(app: &mut App, _: KeyEvent) -> Vec<Effect> {
    let id = app.selected_id();
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

fn reset(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    app.ask(if key.code == KeyCode::Char('r') {
        Confirm::ResetStep(app.selected_id())
    } else {
        Confirm::ResetAll(String::new())
    });
    Vec::new()
}

fn answer(app: &mut App, _: KeyEvent) -> Vec<Effect> {
    let id = app.selected_id();
    if app.answerable(&id) {
        app.ask(Confirm::Answer {
            step: id,
            typed: String::new(),
        });
    } else {
        app.status = Some("this step asks no question: the service's records show it".into());
    }
    Vec::new()
}

fn cancel(app: &mut App, _: KeyEvent) -> Vec<Effect> {
    if app.busy() {
        app.status = Some("cancelling…".into());
        vec![Effect::Cancel]
    } else {
        app.status = Some("nothing to cancel".into());
        Vec::new()
    }
}

fn copy_curl(app: &mut App, _: KeyEvent) -> Vec<Effect> {
    match &app.last_exchange {
        Some(e) => {
            let curl = dicomlab_dicomweb::Secret::new(e.curl());
            app.status = Some("copied the last request as curl (OSC 52)".into());
            vec![Effect::Copy(curl)]
        }
        None => {
            app.status = Some("no request sent yet".into());
            Vec::new()
        }
    }
}

fn skip(app: &mut App, _: KeyEvent) -> Vec<Effect> {
    let id = app.selected_id();
    if let Some(s) = app.view_mut(&id) {
        s.saved = Some(Status::Skipped);
    }
    app.selected = (app.selected + 1).min(step_count(app).saturating_sub(1));
    vec![Effect::Skip(id)]
}

fn switch_target(app: &mut App, _: KeyEvent) -> Vec<Effect> {
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

fn mouse(app: &mut App, _: KeyEvent) -> Vec<Effect> {
    app.mouse = !app.mouse;
    app.status = Some(if app.mouse {
        "mouse on: wheel scrolls, a click picks a step or a pane (text selection needs Shift)"
            .into()
    } else {
        "mouse off: the terminal selects text again".into()
    });
    vec![Effect::Mouse(app.mouse)]
}

fn quit(app: &mut App, _: KeyEvent) -> Vec<Effect> {
    if app.busy() {
        app.ask(Confirm::Quit);
        Vec::new()
    } else {
        app.quit = true;
        vec![Effect::Quit]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_commands_share_a_key() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS {
            for code in c.codes {
                assert!(seen.insert(*code), "{code:?} is taken twice ({})", c.keys);
            }
        }
    }

    #[test]
    fn the_help_key_is_the_one_the_bar_always_keeps() {
        let help: Vec<&AppCommand> = COMMANDS
            .iter()
            .filter(|c| matches!(c.bar, Bar::Always(0)))
            .collect();
        assert_eq!(help.len(), 1);
        assert!(help[0].codes.contains(&KeyCode::Char('?')));
    }
}
