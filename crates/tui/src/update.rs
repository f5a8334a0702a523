//! `update`: the single place the app's state changes, one function per kind of message, and how what
//! a screen asks for ([`Out`]) becomes the app's state and the runtime's work ([`Effect`]).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use dicomlab_lab::model::StepId;

use super::app::{App, CheckState, Confirm, Effect, Focus, Msg, Overlay, StepView, Watching};
use super::app_commands;
use super::component::Out;
use super::keys;
use super::screens::{Screen, Work};
use dicomlab_dicomweb::{Exchange, InstanceRef};
use dicomlab_lab::Outcome;
use dicomlab_lab::model::ScreenKind;
use dicomlab_lab::progress::{Status, StepProgress};
use dicomlab_lab::targets::TargetKind;

/// The single place state changes: each message to the function that handles it.
pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(key) => {
            let before = app.selected;
            let mut fx = on_key(app, key);
            if app.selected != before {
                fx.extend(entered(app));
            }
            fx
        }
        Msg::Done(d) => {
            let ctx = app.ctx();
            let (from, outs) = app.screens.done(d, &ctx);
            apply(app, from, outs)
        }
        Msg::Cancelled => cancelled(app),
        Msg::Mouse(m) => mouse(app, m),
        Msg::Tick => {
            let ctx = app.ctx();
            let ticked = app.screens.tick(&ctx);
            ticked
                .into_iter()
                .flat_map(|(from, outs)| apply(app, from, outs))
                .collect()
        }
        Msg::Resize(width, _) => {
            app.width = width;
            Vec::new()
        }
        Msg::Checked { step, outcome } => checked(app, step, outcome),
        Msg::Did { step, result } => did(app, step, result),
        Msg::ImageAttributes(a) => {
            app.viewer.attributes = a;
            Vec::new()
        }
        Msg::Image(r) => {
            match r {
                Ok(img) => app.viewer.show(img),
                Err(e) => app.status = Some(format!("no image: {e}")),
            }
            Vec::new()
        }
        Msg::Exchange(e) => exchange(app, e),
        Msg::TokenLeft(t) => {
            app.token_left = t;
            Vec::new()
        }
        Msg::Claims(c) => {
            app.claims = c;
            Vec::new()
        }
        Msg::Switched {
            profile,
            target,
            base_url,
            vars,
            saved,
            reads_recorded,
        } => switched(
            app,
            Switched {
                profile,
                target,
                base_url,
                vars,
                saved,
                reads_recorded,
            },
        ),
        Msg::SwitchFailed(e) => {
            app.switching = false;
            app.status = Some(format!("could not switch: {e}"));
            Vec::new()
        }
        Msg::Saved(r) => {
            if let Err(e) = r {
                app.status = Some(format!("progress not saved: {e}"));
            }
            Vec::new()
        }
        Msg::Recheck => recheck(app),
        Msg::Watch(how) => {
            app.watch = Some(Watching {
                how,
                ..Watching::default()
            });
            Vec::new()
        }
        Msg::Looked {
            at,
            changed,
            problem,
        } => looked(app, at, changed, problem),
        Msg::Judged => judged(app),
        Msg::Progress(saved) => progress(app, &saved),
    }
}

/// The wheel scrolls as the arrow keys do; a click moves the focus (and may pick a step).
fn mouse(app: &mut App, m: MouseEvent) -> Vec<Effect> {
    let code = match m.kind {
        MouseEventKind::ScrollDown => KeyCode::Down,
        MouseEventKind::ScrollUp => KeyCode::Up,
        MouseEventKind::Down(_) if keys::click(app, m) => return entered(app),
        _ => return Vec::new(),
    };
    update(app, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

/// The steps waiting for a late record (the audit log) are checked again.
fn recheck(app: &mut App) -> Vec<Effect> {
    let ids = app.waiting();
    for id in &ids {
        if let Some(s) = app.view_mut(id) {
            s.check = CheckState::Checking;
        }
    }
    ids.into_iter().map(Effect::Check).collect()
}

/// A judgement asked by the watch is in: one more when news came meanwhile.
fn judged(app: &mut App) -> Vec<Effect> {
    let Some(w) = app.watch.as_mut() else {
        return Vec::new();
    };
    if std::mem::take(&mut w.again) {
        vec![Effect::Judge]
    } else {
        w.judging = false;
        Vec::new()
    }
}

/// The requests in flight were cancelled: nothing is checking or doing any more.
fn cancelled(app: &mut App) -> Vec<Effect> {
    for s in app.steps.values_mut() {
        s.doing = false;
        if s.check == CheckState::Checking {
            s.check = CheckState::NotChecked;
        }
    }
    app.screens.cancel();
    app.status = Some("cancelled".into());
    Vec::new()
}

/// A step's check came back.
fn checked(app: &mut App, step: StepId, outcome: Outcome) -> Vec<Effect> {
    let mut fx = Vec::new();
    if app.viewer.after_check && app.is_viewer(&step) {
        app.viewer.after_check = false;
        fx.push(Effect::LoadImage);
    }
    let was_complete = app.complete();
    if let Some(s) = app.view_mut(&step) {
        if outcome.is_pass() {
            s.saved = Some(Status::Done);
            if let Some(sub) = outcome.evidence().and_then(|e| e.subject.clone()) {
                s.subject = Some(sub);
            }
        }
        s.check = CheckState::Checked(outcome);
    }
    // The lab just became complete: the final screen, once.
    if !was_complete && app.complete() {
        app.overlay = Some(Overlay::Summary);
    }
    fx
}

/// "Do it" of a step came back: its check runs next.
fn did(app: &mut App, step: StepId, result: Result<String, String>) -> Vec<Effect> {
    let viewer = result.is_ok() && app.is_viewer(&step);
    if let Some(s) = app.view_mut(&step) {
        s.doing = false;
        s.did = Some(result);
        s.check = CheckState::Checking;
    }
    // Checks also run after each action; the viewer's action also shows the image, once its check
    // is back (the service renders one image at a time; the TUI decodes it after).
    app.viewer.after_check |= viewer;
    vec![Effect::Check(step)]
}

/// A request of the learner's (in dicomlab) was answered: the exchange pane shows it.
fn exchange(app: &mut App, e: Exchange) -> Vec<Effect> {
    // Only the learner's own requests reach here (a checking client has no sink): kept as
    // evidence where the service keeps no record of them.
    let keep = !e.by_check && e.status.is_some();
    let mut shown = e.clone();
    if let Some((from, to)) = app
        .shown_urls
        .iter()
        .find(|(from, _)| !from.is_empty() && shown.url.starts_with(from.as_str()))
    {
        shown.url = format!("{to}{}", &shown.url[from.len()..]);
    }
    app.last_exchange = Some(shown);
    if keep {
        vec![Effect::Keep(e)]
    } else {
        Vec::new()
    }
}

/// A target switch's result (the fields of [`Msg::Switched`]).
struct Switched {
    profile: String,
    target: TargetKind,
    base_url: String,
    vars: Vec<(String, String)>,
    saved: std::collections::BTreeMap<StepId, StepProgress>,
    reads_recorded: bool,
}

/// Another target is open: every step starts over from its saved progress.
fn switched(app: &mut App, to: Switched) -> Vec<Effect> {
    let Switched {
        profile,
        target,
        base_url,
        vars,
        saved,
        reads_recorded,
    } = to;
    app.vars = vars;
    app.reads_recorded = reads_recorded;
    app.switching = false;
    app.last_tried = None;
    app.profile = profile;
    app.target = target;
    app.base_url = base_url;
    app.last_exchange = None;
    app.claims = None;
    app.token_left = None;
    for view in app.steps.values_mut() {
        *view = StepView::fresh();
    }
    update(app, Msg::Progress(saved));
    // Every screen forgets the old target; the one on the learner's step may keep them there
    // (the environment screen: its profile was just opened, and is checked at once).
    let here = app.screen();
    let ctx = app.ctx();
    let asked = app.screens.switched(here, &ctx);
    if asked.is_empty() {
        app.resume();
    }
    app.status = Some(format!("now on {} ({})", app.profile, app.base_url));
    let mut fx = entered(app);
    if let Some(here) = here {
        fx.extend(apply(app, here, asked));
    }
    fx
}

/// The watch looked at the target's records: a change is judged once (again after a judgement in
/// progress).
fn looked(
    app: &mut App,
    at: time::OffsetDateTime,
    changed: bool,
    problem: Option<String>,
) -> Vec<Effect> {
    let Some(w) = app.watch.as_mut() else {
        return Vec::new();
    };
    w.looked = Some(at);
    w.problem = problem;
    if !changed {
        Vec::new()
    } else if w.judging {
        w.again = true;
        Vec::new()
    } else {
        w.judging = true;
        vec![Effect::Judge]
    }
}

/// Saved progress arrived (at start, after a switch or a reset): each step shows it.
fn progress(
    app: &mut App,
    saved: &std::collections::BTreeMap<StepId, StepProgress>,
) -> Vec<Effect> {
    for (id, view) in app.steps.iter_mut() {
        let p = saved.get(id);
        view.saved = p.map(|p| p.status);
        view.subject = p.and_then(|p| p.subject.clone());
        // A step done before shows what its ✓ rests on at once, without a request.
        if let Some(o) = p.and_then(dicomlab_lab::checks::saved_pass)
            && view.check == CheckState::NotChecked
        {
            view.check = CheckState::Checked(o);
        }
    }
    Vec::new()
}

/// A key: a question on screen gets it, an overlay closes, then the focused screen and the app's
/// own commands have their chance.
fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        app.quit = true;
        return vec![Effect::Quit];
    }
    match app.overlay.take() {
        Some(Overlay::Confirm(Confirm::Screen { yes: work, .. })) if keys::yes(key) => {
            let (from, outs) = app.screens.confirmed(work);
            return apply(app, from, outs);
        }
        Some(Overlay::Confirm(confirm)) => return keys::on_confirm(app, confirm, key),
        Some(Overlay::Help | Overlay::Summary) => return Vec::new(),
        None => {}
    }
    app.status = None;
    // F1 opens the help even while a screen's form has the keys (`?` is typed there).
    if key.code == KeyCode::F(1) {
        app.overlay = Some(Overlay::Help);
        return Vec::new();
    }
    if app.focus == Focus::Panel
        && let Some(screen) = app.screen()
    {
        let ctx = app.ctx();
        if let Some(outs) = app.screens.key(screen, key, &ctx) {
            return apply(app, screen, outs);
        }
    }
    match app_commands::find(app, &key) {
        Some(c) => (c.run)(app, key),
        None => Vec::new(),
    }
}

/// Applies what a screen asked for. A check or a credit applies only while that screen's step is on
/// screen (the learner may have moved on since the request left); the rest always.
pub(super) fn apply(app: &mut App, from: Screen, outs: Vec<Out<Work>>) -> Vec<Effect> {
    let mut fx = Vec::new();
    let here = app.screen() == Some(from);
    let mut credited: Option<StepId> = None;
    for out in outs {
        match out {
            Out::Work(w) => fx.push(Effect::Work(w)),
            Out::Check if here => {
                // A credit just gave the step its outcome: no check to run.
                if credited.as_deref() != Some(app.selected_id().as_str()) {
                    fx.push(app.check_selected());
                }
            }
            Out::Credit { kind, summary } if here => {
                if let Some(step) = app.lab.step_of_kind(kind).map(|s| s.id.clone()) {
                    credited = Some(step.clone());
                    fx.push(Effect::Credit { step, summary });
                }
            }
            Out::Check | Out::Credit { .. } => {}
            Out::Status(s) => app.status = Some(s),
            Out::Copy(text) => fx.push(Effect::Copy(text)),
            Out::Confirm { ask, yes } => app.ask(Confirm::Screen { ask, yes }),
            Out::Retrieve(of) => fx.extend(to_retrieve(app, &of)),
            Out::Open { name, profile } => {
                app.switching = true;
                fx.push(Effect::SwitchTarget {
                    name,
                    profile: Some(profile),
                });
            }
        }
    }
    fx
}

/// A search result's UIDs go to the retrieve screen, which gets the keys.
fn to_retrieve(app: &mut App, of: &InstanceRef) -> Vec<Effect> {
    app.screens.retrieve.show(of);
    let Some(i) = app
        .lab
        .steps()
        .position(|s| s.screen() == Some(ScreenKind::Retrieve))
    else {
        return Vec::new();
    };
    app.selected = i;
    app.focus = Focus::Panel;
    app.status = Some("the result's UIDs are in the retrieve form: Enter fetches".into());
    entered(app)
}

/// Entering a step: its screen loads what it shows of the service (files to store, the tag list).
pub fn entered(app: &mut App) -> Vec<Effect> {
    app.scroll = 0;
    let Some(screen) = app.screen() else {
        return Vec::new();
    };
    let ctx = app.ctx();
    let id = app.selected_id();
    let outs = match app.lab.step(&id) {
        Some(step) => app.screens.entered(screen, step, &ctx),
        None => Vec::new(),
    };
    apply(app, screen, outs)
}
