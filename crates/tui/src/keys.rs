//! The answers to the app's questions (confirmations, typed answers), where a click lands, and the keys
//! the command bar shows now, each with its rank (the app's own keys are a command list in
//! `app_commands`; `update` routes a key: question, overlay, the focused screen, then the app).

use crossterm::event::{KeyCode, KeyEvent, MouseEvent};

use super::app::{App, CheckState, Confirm, Effect, Focus, Overlay};
use super::app_commands::COMMANDS;
use super::component::CommandInfo;

/// A mouse click: the focus moves to the pane under the pointer (the checklist is 36 wide); on a
/// checklist row it selects that step (an exercise's row: its first step).
/// Says whether the selection moved.
pub(super) fn click(app: &mut App, m: MouseEvent) -> bool {
    if app.width >= 100 && m.column < 36 {
        app.focus = Focus::Checklist;
        if let Some(i) = checklist_row(app, m.row)
            && i != app.selected
        {
            app.selected = i;
            return true;
        }
    } else {
        app.focus = if app.screen().is_some() {
            Focus::Panel
        } else {
            Focus::Step
        };
    }
    false
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

/// A yes to a question.
pub(super) fn yes(key: KeyEvent) -> bool {
    matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y'))
}

/// The answer to a question of the app's (a screen's own question is `update`'s to apply).
pub(super) fn on_confirm(app: &mut App, confirm: Confirm, key: KeyEvent) -> Vec<Effect> {
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
            app.ask(Confirm::ResetAll(typed));
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
            app.ask(Confirm::Answer { step, typed });
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
            app.ask(Confirm::Name(typed));
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

/// The keys that work now, for the command bar, each with its rank (the bar drops the highest ranks
/// first when it is narrow; rank 0 stays): the question's, else the focused screen's, else the app's.
pub fn commands(app: &App) -> Vec<(CommandInfo, u8)> {
    let kept = |c: CommandInfo| (c, 0);
    match &app.overlay {
        Some(Overlay::Confirm(Confirm::Answer { .. })) => {
            return vec![
                kept(bar("Enter", "check the answer")),
                kept(bar("Esc", "cancel")),
            ];
        }
        Some(Overlay::Confirm(Confirm::Name(_))) => {
            return vec![
                kept(bar("Enter", "keep the name")),
                kept(bar("Esc", "leave it out")),
            ];
        }
        Some(Overlay::Confirm(Confirm::ResetAll(_))) => {
            return vec![
                kept(bar("reset Enter", "reset all")),
                kept(bar("Esc", "cancel")),
            ];
        }
        Some(Overlay::Confirm(_)) => return vec![kept(bar("y", "yes")), kept(bar("other", "no"))],
        Some(Overlay::Help | Overlay::Summary) => return vec![kept(bar("any key", "close"))],
        None => {}
    }
    if app.focus == Focus::Panel
        && let Some(screen) = app.screen()
    {
        // The screen's own first, in its order (the later, the sooner dropped), then the app's.
        let mut v: Vec<(CommandInfo, u8)> = app
            .screens
            .commands(screen, &app.ctx())
            .into_iter()
            .filter(|c| c.bar)
            .enumerate()
            .map(|(i, c)| (c, u8::try_from(i + 1).unwrap_or(u8::MAX).min(9)))
            .collect();
        if app.screens.editing(screen) {
            v.push(kept(bar("F1", "keys")));
        } else {
            if app.busy() {
                v.push((bar("x", "cancel"), 1));
            }
            v.push((bar("c", "check"), 2));
            if !v.iter().any(|(c, _)| c.keys == "Esc") {
                v.push((bar("Esc", "checklist"), 3));
            }
            v.push(kept(bar("?", "keys")));
        }
        return v;
    }
    COMMANDS
        .iter()
        .filter_map(|c| c.bar_rank(app).map(|r| (bar(c.bar_keys, c.short), r)))
        .collect()
}
