//! The TUI's state and its `update`: pure, no I/O. Every result of async work comes back as a [`Msg`];
//! every piece of work to do leaves as an [`Effect`].

use std::collections::HashMap;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use super::screens::{Done, Screen, Screens, Work};

use crate::dicomweb::{Claims, Exchange};
use crate::lab::Outcome;
use crate::lab::checks::TargetKind;
use crate::lab::model::Lab;
use crate::lab::progress::{Status, StepProgress};

/// Where a step's check stands, as the view shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckState {
    NotChecked,
    Checking,
    Checked(Outcome),
}

/// A step as the TUI tracks it.
#[derive(Debug, Clone)]
pub struct StepView {
    pub check: CheckState,
    /// From the progress file: done / failed / skipped.
    pub saved: Option<Status>,
    /// Hints revealed so far.
    pub hints_shown: usize,
    /// "do it" running.
    pub doing: bool,
    /// What the last "do it" did.
    pub did: Option<Result<String, String>>,
    /// What the step was about, from progress (the learner's extended query tag).
    pub subject: Option<String>,
}

/// Which pane has the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Checklist,
    Step,
    /// The exercise's screen (store, search, …).
    Panel,
}

/// A question on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    ResetStep(String),
    /// Typed confirmation: the learner types `reset`.
    ResetAll(String),
    /// Delete an extended query tag.
    DeleteTag(String),
    /// The answer to a step's question, being typed.
    Answer {
        step: String,
        typed: String,
    },
    /// The learner's name for the report (asked once), being typed.
    Name(String),
    Quit,
}

/// Everything on screen.
pub struct App {
    pub lab: Lab,
    pub profile: String,
    pub target: TargetKind,
    pub base_url: String,
    pub steps: HashMap<String, StepView>,
    /// Index into `lab.steps()`.
    pub selected: usize,
    pub focus: Focus,
    pub show_exchange: bool,
    pub show_help: bool,
    pub confirm: Option<Confirm>,
    pub last_exchange: Option<Exchange>,
    pub token_left: Option<Duration>,
    /// A one-line message (copied, saved, errors).
    pub status: Option<String>,
    pub quit: bool,
    /// ASCII symbols instead of Unicode (TERM=linux, or DICOMLAB_ASCII=1).
    pub ascii: bool,
    /// NO_COLOR: symbols carry everything.
    pub no_color: bool,
    /// Scroll of the step pane.
    pub scroll: u16,
    /// The token's claims, for the token step.
    pub claims: Option<Claims>,
    /// The profiles `t` cycles through.
    pub profiles: Vec<String>,
    /// A target switch in progress.
    pub switching: bool,
    /// Placeholders of lab text and their values for this target (`{baseUrl}` …; never a secret).
    pub vars: Vec<(String, String)>,
    /// The rendered image of the viewer step, ready to draw: the protocol resizes it once per size and
    /// keeps the result (a cache behind a RefCell: drawing the same size again costs nothing).
    pub image: Option<std::cell::RefCell<ratatui_image::protocol::StatefulProtocol>>,
    /// How images reach this terminal: kitty / sixel / iTerm2 when detected at start, else half-blocks.
    pub picker: ratatui_image::picker::Picker,
    /// The profile last tried by `t` (so a profile that cannot open is stepped over next time).
    pub last_tried: Option<String>,
    /// The per-exercise screens.
    pub screens: Screens,
    /// Mouse capture (off by default: it breaks the terminal's text selection).
    pub mouse: bool,
    /// The final screen: the summary and the `dicomlab report` hint.
    pub show_summary: bool,
    /// The viewer's action is done: show its image when its check is back.
    pub image_after_check: bool,
    /// The terminal's width: below 100 columns there is no checklist pane (a click cannot land on it).
    pub width: u16,
    /// The viewed instance's key attributes, shown beside the image.
    pub image_attributes: Vec<(String, String)>,
    /// The target's records show the learner's reads (an audit log dicomlab reads): no questions.
    pub reads_recorded: bool,
    /// A Postman environment imported on the environment screen, not yet saved: its file, which
    /// credits the lab's import step once the profile is saved and opened.
    pub imported: Option<String>,
}

/// Work for the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Check(String),
    CheckAll,
    Do(String),
    Skip(String),
    Reset(Option<String>),
    /// Copy to the clipboard with OSC 52 (works over SSH).
    Copy(String),
    /// Open another profile's target.
    SwitchTarget(String),
    /// The red triangle's rendered image for the viewer: fetched (`true`), or the PNG the step's action
    /// just saved when there is one (`false`).
    LoadImage(bool),
    /// A screen's request.
    Work(Work),
    /// Abort every request in flight.
    Cancel,
    /// Turn mouse capture on or off.
    Mouse(bool),
    /// Keep one of the learner's exchanges in progress (done in dicomlab).
    Keep(Exchange),
    /// Check an answer to the step's question against the service.
    Answer {
        step: String,
        value: String,
    },
    /// Save the learner's name in the config (empty: declined).
    SaveName(String),
    /// Credit a step with something done in dicomlab that sends no request (the Postman import).
    Credit {
        step: String,
        summary: String,
    },
    Quit,
}

/// What happened.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
    Checked {
        step: String,
        outcome: Outcome,
    },
    Did {
        step: String,
        result: Result<String, String>,
    },
    Exchange(Exchange),
    TokenLeft(Option<Duration>),
    /// The token's decoded claims (shown on the token step).
    Claims(Option<Claims>),
    /// Another target is open now.
    Switched {
        profile: String,
        target: TargetKind,
        base_url: String,
        vars: Vec<(String, String)>,
        saved: std::collections::BTreeMap<String, StepProgress>,
        /// Whether the new target's reads are on a record dicomlab reads.
        reads_recorded: bool,
    },
    /// Switching failed.
    SwitchFailed(String),
    /// The viewer's image, decoded (or why not).
    Image(Result<std::sync::Arc<image::DynamicImage>, String>),
    /// The viewed instance's key attributes (keyword, value), from its metadata.
    ImageAttributes(Vec<(String, String)>),
    Saved(Result<(), String>),
    Progress(std::collections::BTreeMap<String, StepProgress>),
    /// A screen's request came back.
    Done(Done),
    /// The requests in flight were aborted.
    Cancelled,
    Mouse(MouseEvent),
    /// The live tail's tick (only while the change feed is followed).
    Tail,
    /// The slow tick that checks again the steps waiting for a late record (the audit log).
    Recheck,
}

impl App {
    pub fn new(lab: Lab, profile: String, target: TargetKind, base_url: String) -> App {
        let steps = lab
            .steps()
            .map(|s| {
                (
                    s.id.clone(),
                    StepView {
                        check: CheckState::NotChecked,
                        saved: None,
                        hints_shown: 0,
                        doing: false,
                        did: None,
                        subject: None,
                    },
                )
            })
            .collect();
        let mut app = App {
            lab,
            profile,
            target,
            base_url,
            steps,
            selected: 0,
            focus: Focus::Checklist,
            show_exchange: true,
            show_help: false,
            confirm: None,
            last_exchange: None,
            token_left: None,
            status: None,
            quit: false,
            ascii: false,
            no_color: false,
            scroll: 0,
            claims: None,
            profiles: Vec::new(),
            switching: false,
            last_tried: None,
            vars: Vec::new(),
            image: None,
            picker: ratatui_image::picker::Picker::halfblocks(),
            screens: Screens::default(),
            mouse: false,
            show_summary: false,
            image_after_check: false,
            width: 120,
            image_attributes: Vec::new(),
            reads_recorded: false,
            imported: None,
        };
        // The retrieve form starts on the instance the lab's retrieve step names.
        let start = app
            .lab
            .steps()
            .find(|s| s.screen() == Some(crate::lab::model::ScreenKind::Retrieve))
            .and_then(|s| s.instance.as_deref())
            .and_then(|n| app.lab.dataset.instance(n))
            .map(|i| [i.study.clone(), i.series.clone(), i.sop.clone()]);
        if let Some(uids) = start {
            for (f, v) in app.screens.retrieve.form.fields.iter_mut().zip(uids) {
                f.set(&v);
            }
        }
        app
    }

    /// Every required step done (skipped ones count as not done).
    pub fn complete(&self) -> bool {
        self.lab
            .steps()
            .filter(|s| !s.optional)
            .all(|s| self.is_done(&s.id))
    }

    /// The screen of the selected step, if it has one.
    pub fn screen(&self) -> Option<Screen> {
        self.lab.step(&self.selected_id()).and_then(Screen::of)
    }

    /// Why the target has nothing for a screen (a DICOMweb server without Azure's extensions).
    pub fn unsupported(&self, screen: Screen) -> Option<&'static str> {
        match (self.target, screen) {
            (TargetKind::Generic, Screen::ChangeFeed) => Some(
                "this server has no change feed: it is an Azure DICOM service feature (try it on the practice service)",
            ),
            (TargetKind::Generic, Screen::Tags) => Some(
                "this server has no extended query tags: they are an Azure DICOM service feature (try them on the practice service)",
            ),
            _ => None,
        }
    }

    /// A v2 base URL (the change feed pages differently).
    pub fn v2(&self) -> bool {
        self.base_url.trim_end_matches('/').ends_with("/v2")
    }

    /// Whether something animates (the runtime ticks only then).
    pub fn ticking(&self) -> bool {
        self.screens.feed.following
    }

    pub fn step_ids(&self) -> Vec<String> {
        self.lab.steps().map(|s| s.id.clone()).collect()
    }

    pub fn selected_id(&self) -> String {
        self.lab
            .steps()
            .nth(self.selected)
            .map(|s| s.id.clone())
            .unwrap_or_default()
    }

    /// Done = passed now, or saved as done: once done, a step stays done until it is reset.
    pub fn is_done(&self, id: &str) -> bool {
        self.steps.get(id).is_some_and(|s| {
            matches!(&s.check, CheckState::Checked(o) if o.is_pass())
                || s.saved == Some(Status::Done)
        })
    }

    /// Whether the step shows the viewer.
    pub fn is_viewer(&self, id: &str) -> bool {
        self.lab
            .step(id)
            .is_some_and(|s| s.screen() == Some(crate::lab::model::ScreenKind::Viewer))
    }

    /// Whether the step's question is the way to show it done: it asks one, it is not done, the target
    /// keeps no record of reads dicomlab can read, and the target has what the step is about.
    pub fn answerable(&self, id: &str) -> bool {
        let Some(step) = self.lab.step(id) else {
            return false;
        };
        step.question.is_some()
            && !self.is_done(id)
            && !self.reads_recorded
            && !self.steps.get(id).is_some_and(|v| {
                matches!(&v.check, CheckState::Checked(Outcome::NotSupported { .. }))
            })
            && Screen::of(step).is_none_or(|s| self.unsupported(s).is_none())
    }

    /// Steps waiting for a late record (the audit log): checked again on a slow tick.
    pub fn waiting(&self) -> Vec<String> {
        self.lab
            .steps()
            .filter(|s| {
                self.steps.get(&s.id).is_some_and(|v| {
                    matches!(&v.check, CheckState::Checked(Outcome::Waiting { .. }))
                })
            })
            .map(|s| s.id.clone())
            .collect()
    }

    /// The learner's extended query tag: the one the tag step credited, else the one the lab suggests.
    pub fn learner_tag(&self) -> Option<String> {
        let add = self.lab.step_of_kind("tag_added")?;
        self.steps
            .get(&add.id)
            .and_then(|v| v.subject.clone())
            .or_else(|| match &add.check {
                crate::lab::model::Check::TagAdded { suggest } => suggest.clone(),
                _ => None,
            })
    }

    /// Whether anything runs (quit asks first).
    pub fn busy(&self) -> bool {
        self.steps
            .values()
            .any(|s| s.doing || s.check == CheckState::Checking)
            || self.screens.busy()
    }

    /// Moves to the first step not done yet (resume where the learner left off).
    pub fn resume(&mut self) {
        let ids = self.step_ids();
        self.selected = ids
            .iter()
            .position(|id| {
                !self.is_done(id)
                    && self
                        .steps
                        .get(id)
                        .is_none_or(|s| s.saved != Some(Status::Skipped))
            })
            .unwrap_or(0);
    }

    fn view_mut(&mut self, id: &str) -> Option<&mut StepView> {
        self.steps.get_mut(id)
    }
}

/// The single place state changes.
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
            if matches!(d, Done::ProfileSaved(Err(_))) {
                app.switching = false;
            }
            if let Done::Imported(Ok((_, names))) = &d {
                app.imported = Some(names.join(", "));
            }
            let refresh_tags = matches!(d, Done::TagChanged(_));
            let from = d.screen();
            app.screens.done(d);
            let mut fx = Vec::new();
            if refresh_tags {
                app.screens.tags.running = true;
                fx.push(Effect::Work(Work::TagsList));
            }
            // Checks also run after each action (of the step still on screen: not of one moved to since).
            if from.is_some() && app.screen() == from {
                let id = app.selected_id();
                if let Some(s) = app.view_mut(&id) {
                    s.check = CheckState::Checking;
                }
                fx.push(Effect::Check(id));
            }
            fx
        }
        Msg::Cancelled => {
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
        Msg::Mouse(m) => {
            let code = match m.kind {
                MouseEventKind::ScrollDown => KeyCode::Down,
                MouseEventKind::ScrollUp => KeyCode::Up,
                MouseEventKind::Down(_) => {
                    // A click moves the focus to the pane under the pointer (the checklist is 36 wide);
                    // on a checklist row it selects that step (an exercise's row: its first step).
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
                    return Vec::new();
                }
                _ => return Vec::new(),
            };
            update(app, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
        }
        Msg::Tail => {
            let v2 = app.v2();
            app.screens
                .feed_tick(v2)
                .into_iter()
                .map(Effect::Work)
                .collect()
        }
        Msg::Resize(width, _) => {
            app.width = width;
            Vec::new()
        }
        Msg::Checked { step, outcome } => {
            let mut fx = Vec::new();
            if app.image_after_check && app.is_viewer(&step) {
                app.image_after_check = false;
                fx.push(Effect::LoadImage(false));
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
                app.show_summary = true;
            }
            fx
        }
        Msg::Did { step, result } => {
            let viewer = result.is_ok() && app.is_viewer(&step);
            if let Some(s) = app.view_mut(&step) {
                s.doing = false;
                s.did = Some(result);
                s.check = CheckState::Checking;
            }
            // Checks also run after each action; the viewer's action also shows the image, once its check
            // is back (the service renders one image at a time; the TUI decodes it after).
            app.image_after_check |= viewer;
            vec![Effect::Check(step)]
        }
        Msg::ImageAttributes(a) => {
            app.image_attributes = a;
            Vec::new()
        }
        Msg::Image(r) => {
            match r {
                Ok(img) => {
                    let img = std::sync::Arc::try_unwrap(img).unwrap_or_else(|a| (*a).clone());
                    app.image = Some(std::cell::RefCell::new(app.picker.new_resize_protocol(img)));
                }
                Err(e) => app.status = Some(format!("no image: {e}")),
            }
            Vec::new()
        }
        Msg::Exchange(e) => {
            // The learner's own requests sent from dicomlab are kept: evidence where the service
            // keeps no record of them (never the checks' requests).
            let keep = !e.by_check && e.status.is_some();
            app.last_exchange = Some(e.clone());
            if keep {
                vec![Effect::Keep(e)]
            } else {
                Vec::new()
            }
        }
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
        } => {
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
                *view = StepView {
                    check: CheckState::NotChecked,
                    saved: None,
                    hints_shown: 0,
                    doing: false,
                    did: None,
                    subject: None,
                };
            }
            update(app, Msg::Progress(saved));
            app.screens.cancel();
            app.screens.search.results.clear();
            app.screens.feed.rows.clear();
            app.screens.tags.rows.clear();
            app.screens.store.files.clear();
            let env_step = app.screen() == Some(Screen::Environment);
            if !env_step {
                app.resume();
            }
            app.status = Some(format!("now on {} ({})", app.profile, app.base_url));
            // A saved environment is checked at once on the target it opened; an import saved with it
            // is the import step's evidence.
            let mut fx = entered(app);
            let import_step = app.lab.step_of_kind("postman_import").map(|s| s.id.clone());
            let credited = match (app.imported.take(), &import_step) {
                (Some(what), Some(step)) if env_step => {
                    fx.push(Effect::Credit {
                        step: step.clone(),
                        summary: format!("imported the workshop's Postman environment ({what}) and saved it as profile {}", app.profile),
                    });
                    Some(step.clone())
                }
                _ => None,
            };
            if env_step {
                let id = app.selected_id();
                if credited.as_deref() != Some(id.as_str()) {
                    if let Some(s) = app.view_mut(&id) {
                        s.check = CheckState::Checking;
                    }
                    fx.push(Effect::Check(id));
                }
            }
            fx
        }
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
        Msg::Recheck => {
            let ids = app.waiting();
            for id in &ids {
                if let Some(s) = app.view_mut(id) {
                    s.check = CheckState::Checking;
                }
            }
            ids.into_iter().map(Effect::Check).collect()
        }
        Msg::Progress(saved) => {
            for (id, view) in app.steps.iter_mut() {
                let p = saved.get(id);
                view.saved = p.map(|p| p.status);
                view.subject = p.and_then(|p| p.subject.clone());
                // A step done before shows what its ✓ rests on at once, without a request.
                if let Some(o) = p.and_then(crate::lab::checks::saved_pass)
                    && view.check == CheckState::NotChecked
                {
                    view.check = CheckState::Checked(o);
                }
            }
            Vec::new()
        }
    }
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
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
    let count = app.lab.steps().count();
    let id = app.selected_id();
    if app.focus == Focus::Panel
        && let Some(screen) = app.screen()
        && app.unsupported(screen).is_none()
    {
        if key.code == KeyCode::Char('D') && screen == Screen::Tags && !app.screens.editing(screen)
        {
            match app.screens.selected_tag() {
                Some(tag) => app.confirm = Some(Confirm::DeleteTag(tag)),
                None => app.status = Some("no tag selected: a lists the tags".into()),
            }
            return Vec::new();
        }
        if key.code == KeyCode::Char('>')
            && screen == Screen::Search
            && !app.screens.editing(screen)
        {
            return to_retrieve(app);
        }
        let editing = app.screens.editing(screen);
        let v2 = app.v2();
        if let Some(work) = app.screens.key(screen, key, v2) {
            return work.into_iter().map(Effect::Work).collect();
        }
        if editing {
            return Vec::new();
        }
    }
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
        KeyCode::Char('c') => {
            if let Some(s) = app.view_mut(&id) {
                s.check = CheckState::Checking;
            }
            vec![Effect::Check(id)]
        }
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
            vec![Effect::SwitchTarget(name)]
        }
        KeyCode::Char('v') if app.is_viewer(&id) => {
            app.status = Some("fetching the rendered image…".into());
            vec![Effect::LoadImage(true)]
        }
        KeyCode::Char('e') => {
            app.show_exchange = !app.show_exchange;
            Vec::new()
        }
        KeyCode::Char('y') => match &app.last_exchange {
            Some(e) => {
                app.status = Some("copied the last request as curl (OSC 52)".into());
                vec![Effect::Copy(e.curl())]
            }
            None => {
                app.status = Some("no request sent yet".into());
                Vec::new()
            }
        },
        _ => Vec::new(),
    }
}

/// `>` on a search result: its UIDs go to the retrieve screen, which gets the keys.
fn to_retrieve(app: &mut App) -> Vec<Effect> {
    let s = &app.screens.search;
    let Some(result) = s.results.get(s.selected) else {
        app.status = Some("no result selected: search first".into());
        return Vec::new();
    };
    let uid = |tag| super::screens::value_of(result, tag);
    let (study, series, instance) = (uid("0020000D"), uid("0020000E"), uid("00080018"));
    let form = &mut app.screens.retrieve.form;
    for (i, v) in [study, series, instance].iter().enumerate() {
        if !v.is_empty()
            && let Some(f) = form.fields.get_mut(i)
        {
            f.set(v);
        }
    }
    let Some(i) = app
        .lab
        .steps()
        .position(|s| s.screen() == Some(crate::lab::model::ScreenKind::Retrieve))
    else {
        return Vec::new();
    };
    app.selected = i;
    app.focus = Focus::Panel;
    app.status = Some("the result's UIDs are in the retrieve form: Enter fetches".into());
    entered(app)
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

/// Entering a step whose screen shows the service's state loads it (files to store, the tag list).
pub fn entered(app: &mut App) -> Vec<Effect> {
    app.scroll = 0;
    match app.screen() {
        Some(Screen::Store) if app.screens.store.files.is_empty() && !app.screens.store.loading => {
            app.screens.store.loading = true;
            vec![Effect::Work(Work::ListFiles(
                app.screens.store.folder.clone(),
            ))]
        }
        Some(Screen::Tags)
            if app.screens.tags.rows.is_empty()
                && !app.screens.tags.running
                && app.unsupported(Screen::Tags).is_none() =>
        {
            app.screens.tags.running = true;
            vec![Effect::Work(Work::TagsList)]
        }
        Some(Screen::Search) => {
            // The tag step's search starts with the learner's tag filled in.
            if let Some(crate::lab::model::Check::TagUsed { value }) =
                app.lab.step(&app.selected_id()).map(|s| s.check.clone())
                && let Some(tag) = app.learner_tag()
            {
                let value = value.unwrap_or_default();
                let f = &mut app.screens.search;
                if !f.form.value(0).contains(tag.as_str()) {
                    f.form.fields[0].set(&format!("{tag}={value}"));
                    f.level = crate::dicomweb::Level::Studies;
                    f.results.clear();
                    f.detail = None;
                    f.status = None;
                }
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn on_confirm(app: &mut App, confirm: Confirm, key: KeyEvent) -> Vec<Effect> {
    match confirm {
        Confirm::ResetStep(id) => {
            app.confirm = None;
            if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                if let Some(s) = app.view_mut(&id) {
                    s.saved = None;
                    s.check = CheckState::NotChecked;
                    s.hints_shown = 0;
                    s.did = None;
                }
                app.status = Some(format!("{id} reset"));
                return vec![Effect::Reset(Some(id))];
            }
            Vec::new()
        }
        Confirm::ResetAll(mut typed) => match key.code {
            KeyCode::Esc => {
                app.confirm = None;
                Vec::new()
            }
            KeyCode::Backspace => {
                typed.pop();
                app.confirm = Some(Confirm::ResetAll(typed));
                Vec::new()
            }
            KeyCode::Enter if typed == "reset" => {
                app.confirm = None;
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
            KeyCode::Char(c) if typed.len() < 10 => {
                typed.push(c);
                app.confirm = Some(Confirm::ResetAll(typed));
                Vec::new()
            }
            _ => {
                app.confirm = Some(Confirm::ResetAll(typed));
                Vec::new()
            }
        },
        Confirm::DeleteTag(tag) => {
            app.confirm = None;
            if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                app.screens.tags.running = true;
                return vec![Effect::Work(Work::TagDelete(tag))];
            }
            Vec::new()
        }
        Confirm::Quit => {
            app.confirm = None;
            if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                app.quit = true;
                return vec![Effect::Quit];
            }
            Vec::new()
        }
        Confirm::Answer { step, mut typed } => match key.code {
            KeyCode::Esc => {
                app.confirm = None;
                Vec::new()
            }
            KeyCode::Enter if !typed.trim().is_empty() => {
                app.confirm = None;
                if let Some(s) = app.view_mut(&step) {
                    s.check = CheckState::Checking;
                }
                vec![Effect::Answer { step, value: typed }]
            }
            KeyCode::Backspace => {
                typed.pop();
                app.confirm = Some(Confirm::Answer { step, typed });
                Vec::new()
            }
            KeyCode::Char(c) if !c.is_control() && typed.chars().count() < 120 => {
                typed.push(c);
                app.confirm = Some(Confirm::Answer { step, typed });
                Vec::new()
            }
            _ => {
                app.confirm = Some(Confirm::Answer { step, typed });
                Vec::new()
            }
        },
        Confirm::Name(mut typed) => match key.code {
            // Esc declines: the report says "no name given", and the question is not asked again.
            KeyCode::Esc => {
                app.confirm = None;
                vec![Effect::SaveName(String::new())]
            }
            KeyCode::Enter => {
                app.confirm = None;
                app.status = Some(if typed.trim().is_empty() {
                    "no name: the report will say so".into()
                } else {
                    format!("the report will name you {}", typed.trim())
                });
                vec![Effect::SaveName(typed.trim().to_string())]
            }
            KeyCode::Backspace => {
                typed.pop();
                app.confirm = Some(Confirm::Name(typed));
                Vec::new()
            }
            KeyCode::Char(c) if !c.is_control() && typed.chars().count() < 80 => {
                typed.push(c);
                app.confirm = Some(Confirm::Name(typed));
                Vec::new()
            }
            _ => {
                app.confirm = Some(Confirm::Name(typed));
                Vec::new()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App::new(
            Lab::embedded().expect("lab"),
            "practice".into(),
            TargetKind::Practice,
            "http://127.0.0.1:8042/v1".into(),
        )
    }

    fn key(c: char) -> Msg {
        Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
    }

    #[test]
    fn a_step_done_stays_done_whatever_a_later_check_says() {
        let mut a = app();
        let id = "store-samples".to_string();
        let mut saved = std::collections::BTreeMap::new();
        saved.insert(
            id.clone(),
            StepProgress {
                status: Status::Done,
                attempts: 1,
                first: "2026-11-30T14:00:00Z".into(),
                last: "2026-11-30T14:00:00Z".into(),
                done_at: Some("2026-11-30T14:00:00Z".into()),
                last_failure: None,
                evidence: Some(crate::lab::evidence::Evidence::new(
                    crate::lab::evidence::Source::ChangeFeed,
                    "Create entries #1, #2, #3",
                    None,
                )),
                waiting_since: None,
                subject: None,
            },
        );
        update(&mut a, Msg::Progress(saved));
        assert!(a.is_done(&id));
        // The study deleted (the lab's optional deletes), then C: whatever comes back, it stays done.
        update(
            &mut a,
            Msg::Checked {
                step: id.clone(),
                outcome: Outcome::Fail {
                    expected: "e".into(),
                    observed: "o".into(),
                    diagnosis: "d".into(),
                    tried: Vec::new(),
                },
            },
        );
        assert!(a.is_done(&id));
    }

    #[test]
    fn check_and_do_are_effects_not_io() {
        let mut a = app();
        assert_eq!(
            update(&mut a, key('c')),
            vec![Effect::Check("service-exists".into())]
        );
        assert_eq!(a.steps["service-exists"].check, CheckState::Checking);
        assert_eq!(
            update(&mut a, key('d')),
            vec![Effect::Do("service-exists".into())]
        );
        // After an action, its check runs.
        let fx = update(
            &mut a,
            Msg::Did {
                step: "service-exists".into(),
                result: Ok("ok".into()),
            },
        );
        assert_eq!(fx, vec![Effect::Check("service-exists".into())]);
    }

    #[test]
    fn reset_all_needs_the_typed_word() {
        let mut a = app();
        update(&mut a, key('R'));
        for c in "rese".chars() {
            update(&mut a, key(c));
        }
        assert!(
            update(
                &mut a,
                Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
            )
            .is_empty()
        );
        update(&mut a, key('t'));
        assert_eq!(
            update(
                &mut a,
                Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
            ),
            vec![Effect::Reset(None)]
        );
    }

    #[test]
    fn hints_are_progressive_and_quit_asks_while_busy() {
        let mut a = app();
        update(&mut a, key('h'));
        update(&mut a, key('h'));
        assert_eq!(a.steps["service-exists"].hints_shown, 2);
        update(&mut a, key('d'));
        assert!(update(&mut a, key('q')).is_empty());
        assert_eq!(a.confirm, Some(Confirm::Quit));
        assert_eq!(update(&mut a, key('y')), vec![Effect::Quit]);
    }

    #[test]
    fn x_cancels_what_runs_and_the_ui_forgets_it() {
        let mut a = app();
        assert!(update(&mut a, key('x')).is_empty(), "nothing to cancel");
        update(&mut a, key('c'));
        assert!(a.busy());
        assert_eq!(update(&mut a, key('x')), vec![Effect::Cancel]);
        update(&mut a, Msg::Cancelled);
        assert!(!a.busy());
        assert_eq!(a.steps["service-exists"].check, CheckState::NotChecked);
    }

    #[test]
    fn screens_get_the_keys_when_focused_and_esc_gives_them_back() {
        let mut a = app();
        a.selected = a
            .step_ids()
            .iter()
            .position(|s| s == "change-feed")
            .expect("step");
        let enter = Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        update(&mut a, enter.clone());
        assert_eq!(a.focus, Focus::Panel);
        // `f` follows the feed; the runtime then ticks, and each tick asks for what came next.
        update(&mut a, key('f'));
        assert!(a.ticking());
        assert_eq!(
            update(&mut a, Msg::Tail),
            vec![Effect::Work(Work::Feed {
                offset: 0,
                limit: 10,
                append: true
            })]
        );
        // `n` is not the screen's: it still moves to the next step, which loads the tag list.
        let fx = update(&mut a, key('n'));
        assert_eq!(fx, vec![Effect::Work(Work::TagsList)]);
        update(
            &mut a,
            Msg::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)),
        );
        assert_eq!(a.focus, Focus::Checklist);
    }

    #[test]
    fn a_search_result_goes_to_the_retrieve_screen() {
        let mut a = app();
        a.selected = a
            .step_ids()
            .iter()
            .position(|s| s == "search-samples")
            .expect("step");
        a.focus = Focus::Panel;
        assert!(update(&mut a, key('>')).is_empty(), "no result yet");
        a.screens.search.results = vec![serde_json::json!({
            "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
            "0020000E": {"vr": "UI", "Value": ["1.2.3.4"]},
            "00080018": {"vr": "UI", "Value": ["1.2.3.4.5"]}
        })];
        update(&mut a, key('>'));
        assert_eq!(a.selected_id(), "retrieve-samples");
        assert_eq!(a.focus, Focus::Panel);
        let f = &a.screens.retrieve.form;
        assert_eq!(
            (f.value(0), f.value(1), f.value(2)),
            ("1.2.3".into(), "1.2.3.4".into(), "1.2.3.4.5".into())
        );
    }

    #[test]
    fn mouse_is_a_toggle_and_its_wheel_scrolls() {
        let mut a = app();
        assert_eq!(update(&mut a, key('M')), vec![Effect::Mouse(true)]);
        let wheel = MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: 50,
            row: 5,
            modifiers: KeyModifiers::NONE,
        };
        update(&mut a, Msg::Mouse(wheel));
        assert_eq!(a.selected, 1, "the wheel moves in the focused checklist");
        // A click on exercise 4's row: rows 2–5 are exercise 1, exercise 2 (expanded), its step, exercise 3.
        let click = |row| MouseEvent {
            kind: MouseEventKind::Down(crossterm::event::MouseButton::Left),
            column: 5,
            row,
            modifiers: KeyModifiers::NONE,
        };
        update(&mut a, Msg::Mouse(click(2 + 4)));
        assert_eq!(a.selected_id(), "get-token");
        // Now exercise 4 is expanded: its step is on row 6, the store exercise's row is row 7.
        let fx = update(&mut a, Msg::Mouse(click(2 + 5)));
        assert_eq!(a.selected_id(), "store-samples");
        assert_eq!(fx, vec![Effect::Work(Work::ListFiles(None))]);
        assert_eq!(update(&mut a, key('M')), vec![Effect::Mouse(false)]);
    }
}
