//! The TUI's state ([`App`]), changed in one place ([`crate::update::update`]: pure, no I/O).
//! Everything that happens arrives as a [`Msg`] — a key, a resize, a result of async work — and
//! everything to do leaves as an [`Effect`] for the runtime. A key for the focused exercise screen goes
//! to its component (`screens/`); what the component answers ([`crate::component::Out`]) is applied by
//! `update`, the same way for every screen. The app's own keys are in `keys.rs` and `app_commands.rs`.

use dicomlab_lab::model::CheckKind;
use dicomlab_lab::model::StepId;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crossterm::event::{KeyEvent, MouseEvent};

use super::component::Ctx;
use super::screens::{Done, Screen, Screens, Work};
use super::theme::Theme;
use super::viewer::Viewer;
use dicomlab_dicomweb::{BaseUrl, Claims, Exchange};
use dicomlab_lab::Outcome;
use dicomlab_lab::config::Profile;
use dicomlab_lab::model::{Lab, ScreenKind};
use dicomlab_lab::progress::{Status, StepProgress};
use dicomlab_lab::targets::TargetKind;

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
    /// What its check says now (shown in the step pane and the checklist's symbol).
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

impl StepView {
    pub(crate) fn fresh() -> StepView {
        StepView {
            check: CheckState::NotChecked,
            saved: None,
            hints_shown: 0,
            doing: false,
            did: None,
            subject: None,
        }
    }
}

/// The watch of the target's records (see `lab::watch`), as the header shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watching {
    /// How it learns of new records: `live` (the service in this process tells), the pace of its
    /// looks (`1–2 s`), or `the room` (a classroom's checks).
    pub how: String,
    /// When it last looked or heard.
    pub looked: Option<time::OffsetDateTime>,
    /// Why its last look failed (the watch goes on).
    pub problem: Option<String>,
    /// The verdicts are being brought up to date.
    pub(crate) judging: bool,
    /// New records arrived meanwhile: once more after.
    pub(crate) again: bool,
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
#[derive(Debug, Clone, PartialEq)]
pub enum Confirm {
    ResetStep(StepId),
    /// Typed confirmation: the learner types `reset`.
    ResetAll(String),
    /// A screen's question (delete a tag?): on yes, the screen gets `yes` back.
    Screen {
        ask: String,
        yes: Work,
    },
    /// The answer to a step's question, being typed.
    Answer {
        step: StepId,
        typed: String,
    },
    /// The learner's name for the report (asked once), being typed.
    Name(String),
    Quit,
}

/// What is drawn over the panes, one at a time; it gets the next key.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    /// The `?` help: every key that works here.
    Help,
    /// The final screen: the summary and the `dicomlab report` hint.
    Summary,
    /// A question: it gets every key until it is answered.
    Confirm(Confirm),
}

/// Everything on screen.
pub struct App {
    /// The lab being done: its steps, text and dataset.
    pub lab: Lab,
    /// The profile open now (`t` cycles through `profiles`).
    pub profile: String,
    /// The kind of target open now (what the screens can do on it).
    pub target: TargetKind,
    /// The target's base URL, for the header and `{baseUrl}` in the lab's text.
    pub base_url: String,
    /// Every step's state, by step id.
    pub steps: HashMap<StepId, StepView>,
    /// Index into `lab.steps()`.
    pub selected: usize,
    /// The pane that has the keys.
    pub focus: Focus,
    /// The last exchange's pane is shown (`e`).
    pub show_exchange: bool,
    /// What is drawn over the panes and gets the next key: the help, the summary, or a question.
    pub overlay: Option<Overlay>,
    /// The last request sent, by anyone (the exchange pane, `y` copies it as curl).
    pub last_exchange: Option<Exchange>,
    /// The token's time left, for the status bar.
    pub token_left: Option<Duration>,
    /// A one-line message (copied, saved, errors).
    pub status: Option<String>,
    /// The learner quit: the runtime stops after this message.
    pub quit: bool,
    /// Symbols and colors of the terminal.
    pub theme: Theme,
    /// Scroll of the step pane.
    pub scroll: u16,
    /// The token's claims, for the token step.
    pub claims: Option<Claims>,
    /// The profiles `t` cycles through.
    pub profiles: Vec<String>,
    /// A target switch in progress (`t` waits for it).
    pub switching: bool,
    /// Placeholders of lab text and their values for this target (`{baseUrl}` …; never a secret).
    pub vars: Vec<(String, String)>,
    /// URL prefixes shown as others (from, to): over SSH the requests go to the classroom's loopback
    /// port, and the learner's laptop reaches the same service by the classroom's public address.
    pub shown_urls: Vec<(String, String)>,
    /// The viewer step's image and its attributes.
    pub viewer: Viewer,
    /// The profile last tried by `t` (so a profile that cannot open is stepped over next time).
    pub last_tried: Option<String>,
    /// The per-exercise screens.
    pub screens: Screens,
    /// Mouse capture (off by default: it breaks the terminal's text selection).
    pub mouse: bool,
    /// The terminal's width: below 100 columns there is no checklist pane (a click cannot land on it).
    pub width: u16,
    /// The terminal is a remote learner's (a classroom's, over SSH): screens type and write no path
    /// of this machine.
    pub remote: bool,
    /// The target's records show the learner's reads (an audit log dicomlab reads): no questions.
    pub reads_recorded: bool,
    /// The watch of the target's records (None: not watching).
    pub watch: Option<Watching>,
}

/// Work for the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Check(StepId),
    CheckAll,
    /// Bring every verdict up to date after new records (the watch): judged again without showing
    /// "checking…" (or, in a classroom, read from the room's checks); the runtime answers
    /// `Msg::Judged` when done.
    Judge,
    Do(StepId),
    Skip(StepId),
    Reset(Option<StepId>),
    /// Copy to the clipboard with OSC 52 (works over SSH). A secret: it may be the client secret, and
    /// is never logged.
    Copy(dicomlab_dicomweb::Secret),
    /// Open another profile's target; `profile` when the environment screen just saved it (the runtime
    /// keeps it for `t`).
    SwitchTarget {
        name: String,
        profile: Option<Box<Profile>>,
    },
    /// The viewer step's rendered image (and its attributes).
    LoadImage,
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
        step: StepId,
        value: String,
    },
    /// Save the learner's name in the config (empty: declined).
    SaveName(String),
    /// Credit a step with something done in dicomlab that sends no request (the Postman import).
    Credit {
        step: StepId,
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
        step: StepId,
        outcome: Outcome,
    },
    Did {
        step: StepId,
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
        saved: BTreeMap<StepId, StepProgress>,
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
    Progress(BTreeMap<StepId, StepProgress>),
    /// A screen's request came back (or reported progress).
    Done(Done),
    /// The requests in flight were aborted.
    Cancelled,
    Mouse(MouseEvent),
    /// The 2-second tick, only while something on a screen moves by itself (the change feed's live tail).
    Tick,
    /// The slow tick that checks again the steps waiting for a late record (the audit log).
    Recheck,
    /// The watch of the target's records starts (`how`: see [`Watching`]).
    Watch(String),
    /// The watch looked (or heard from the service): `changed` when there are new records.
    Looked {
        at: time::OffsetDateTime,
        changed: bool,
        problem: Option<String>,
    },
    /// The verdicts asked by `Effect::Judge` are in.
    Judged,
}

impl App {
    /// The question on screen, if any.
    pub fn confirm(&self) -> Option<&Confirm> {
        match &self.overlay {
            Some(Overlay::Confirm(c)) => Some(c),
            _ => None,
        }
    }

    /// Puts a question on screen.
    pub fn ask(&mut self, c: Confirm) {
        self.overlay = Some(Overlay::Confirm(c));
    }

    pub fn new(lab: Lab, profile: String, target: TargetKind, base_url: String) -> App {
        let steps = lab
            .steps()
            .map(|s| (s.id.clone(), StepView::fresh()))
            .collect();
        let screens = Screens::new(&lab);
        App {
            lab,
            profile,
            target,
            base_url,
            steps,
            selected: 0,
            focus: Focus::Checklist,
            show_exchange: true,
            overlay: None,
            last_exchange: None,
            token_left: None,
            status: None,
            quit: false,
            theme: Theme::default(),
            scroll: 0,
            claims: None,
            profiles: Vec::new(),
            switching: false,
            last_tried: None,
            vars: Vec::new(),
            shown_urls: Vec::new(),
            viewer: Viewer::default(),
            screens,
            mouse: false,
            width: 120,
            remote: false,
            reads_recorded: false,
            watch: None,
        }
    }

    /// What the screens may read of the app.
    pub fn ctx(&self) -> Ctx {
        Ctx {
            target: self.target,
            profile: self.profile.clone(),
            v2: self.v2(),
            focused: self.focus == Focus::Panel,
            remote: self.remote,
            theme: self.theme,
            learner_tag: self.learner_tag(),
        }
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
        self.screens.unsupported(screen, &self.ctx())
    }

    /// A v2 base URL, data partition or not (the change feed pages differently).
    pub fn v2(&self) -> bool {
        BaseUrl::parse(&self.base_url).is_v2()
    }

    /// Whether something animates (the runtime ticks only then).
    pub fn ticking(&self) -> bool {
        self.screens.animating()
    }

    pub fn step_ids(&self) -> Vec<StepId> {
        self.lab.steps().map(|s| s.id.clone()).collect()
    }

    pub fn selected_id(&self) -> StepId {
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
            .is_some_and(|s| s.screen() == Some(ScreenKind::Viewer))
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
    pub fn waiting(&self) -> Vec<StepId> {
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
        let add = self.lab.step_of_kind(CheckKind::TagAdded)?;
        self.steps
            .get(&add.id)
            .and_then(|v| v.subject.clone())
            .or_else(|| match &add.check {
                dicomlab_lab::model::Check::TagAdded { suggest } => suggest.clone(),
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

    pub(super) fn view_mut(&mut self, id: &str) -> Option<&mut StepView> {
        self.steps.get_mut(id)
    }

    /// The selected step's check starts: it shows "checking…" until the outcome is back.
    pub(super) fn check_selected(&mut self) -> Effect {
        let id = self.selected_id();
        if let Some(s) = self.view_mut(&id) {
            s.check = CheckState::Checking;
        }
        Effect::Check(id)
    }
}
