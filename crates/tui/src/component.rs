//! What every exercise screen is: a [`Component`] that owns its state, declares its [`Command`]s (from
//! which its keys are handled *and* the command bar and `?` help are drawn, so the two cannot drift),
//! draws itself, and does its I/O in [`Component::run`]. A screen never touches the app: it answers a key
//! or a result with [`Out`]s — a request to run, "check my step", a status line, a question — that the
//! app applies. Its requests' states are [`Request`]s.
//!
//! `screens/mod.rs` registers every component in one line each and generates the dispatch (`Screen`,
//! `Screens`, the `Work` and `Done` enums that wrap each screen's own).

use dicomlab_lab::model::CheckKind;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;

use super::theme::Theme;
use dicomlab_dicomweb::InstanceRef;
use dicomlab_lab::config::Profile;
use dicomlab_lab::engine::Session;
use dicomlab_lab::model::{Lab, Step};
use dicomlab_lab::targets::TargetKind;

/// What a screen may read of the app while it handles a key or a result, or draws.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The kind of target: roles are granted here on the practice service only, and a generic DICOMweb
    /// server has no change feed or extended query tags.
    pub target: TargetKind,
    /// The profile open now (an import saved on the environment screen is credited under its name).
    pub profile: String,
    /// The base URL ends in `/v2`: the change feed then pages by rows skipped, not by sequence.
    pub v2: bool,
    /// The screen has the keys: its selection is highlighted.
    pub focused: bool,
    /// The terminal is a remote learner's (a classroom's, over SSH): no path of this machine is typed
    /// or written.
    pub remote: bool,
    /// Symbols and colors of the terminal.
    pub theme: Theme,
    /// The learner's extended query tag: the tag step's search starts with it filled in.
    pub learner_tag: Option<String>,
}

/// A key and what it does, as the command bar and the `?` help show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandInfo {
    /// The keys as the learner reads them (`Enter`, `[ ]`, `1-6 w`): every key the command takes.
    pub keys: &'static str,
    /// What they do, in a word or two.
    pub does: &'static str,
    /// In the command bar; otherwise only in the `?` help (moving, a second spelling of a key).
    pub bar: bool,
}

/// What a command does: gets the screen, the key (a command of several keys tells them apart) and the
/// context; returns what the screen asks of the app.
pub type Handler<S> = fn(&mut S, KeyEvent, &Ctx) -> Vec<Out<<S as Component>::Work>>;

/// One thing a screen does on a key: the keys it takes, how the learner is told, and the handler. A key
/// no command of the screen takes is not the screen's (the app's global keys get it).
pub struct Command<S: Component> {
    /// The key codes that run it (modifiers are not looked at, as the app's own keys do).
    pub keys: &'static [KeyCode],
    /// How the bar and the help name it.
    pub info: CommandInfo,
    /// What it does.
    pub run: Handler<S>,
}

impl<S: Component> Command<S> {
    /// A command shown in the bar and the help.
    pub fn bar(
        keys: &'static [KeyCode],
        label: &'static str,
        does: &'static str,
        run: Handler<S>,
    ) -> Command<S> {
        Command {
            keys,
            info: CommandInfo {
                keys: label,
                does,
                bar: true,
            },
            run,
        }
    }

    /// A command only the `?` help shows (moving in a list, a second spelling of a key).
    pub fn help(
        keys: &'static [KeyCode],
        label: &'static str,
        does: &'static str,
        run: Handler<S>,
    ) -> Command<S> {
        let shown = Command::bar(keys, label, does, run);
        Command {
            info: CommandInfo {
                bar: false,
                ..shown.info
            },
            ..shown
        }
    }
}

/// The keys that move in a list or a tree.
pub const MOVE_KEYS: &[KeyCode] = &[
    KeyCode::Up,
    KeyCode::Down,
    KeyCode::Char('j'),
    KeyCode::Char('k'),
];

/// What a form shows in the bar while it has the keys.
pub const FORM_COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        keys: "Tab",
        does: "next field",
        bar: true,
    },
    CommandInfo {
        keys: "Enter",
        does: "done",
        bar: true,
    },
    CommandInfo {
        keys: "Esc",
        does: "cancel",
        bar: true,
    },
];

/// What a screen asks of the app after a key or a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Out<W> {
    /// Run this request ([`Component::run`] does it; its results come back to [`Component::done`]).
    Work(W),
    /// The screen's action is done: check its step (only while the step is still on screen).
    Check,
    /// A line in the status bar.
    Status(String),
    /// Put this on the learner's clipboard (OSC 52: their own terminal's, over SSH too); never logged.
    Copy(dicomlab_dicomweb::Secret),
    /// Ask the learner first (y/n); on yes the screen gets `yes` back in [`Component::confirmed`].
    Confirm { ask: String, yes: W },
    /// Go to the retrieve screen with these UIDs in its form (a search result's `>`).
    Retrieve(InstanceRef),
    /// Open this profile's target (the environment screen saved it); the runtime keeps it for `t`.
    Open { name: String, profile: Box<Profile> },
    /// Credit the lab's step of this check kind with something done in dicomlab that sent no request
    /// (a Postman import, saved and opened), when this screen's step is on screen.
    Credit { kind: CheckKind, summary: String },
}

impl<W> Out<W> {
    /// The same, its request wrapped (a screen's own `Work` into the app's).
    pub fn map<V>(self, f: impl FnOnce(W) -> V) -> Out<V> {
        match self {
            Out::Work(w) => Out::Work(f(w)),
            Out::Confirm { ask, yes } => Out::Confirm { ask, yes: f(yes) },
            Out::Check => Out::Check,
            Out::Status(s) => Out::Status(s),
            Out::Copy(t) => Out::Copy(t),
            Out::Retrieve(u) => Out::Retrieve(u),
            Out::Open { name, profile } => Out::Open { name, profile },
            Out::Credit { kind, summary } => Out::Credit { kind, summary },
        }
    }
}

/// Where a screen's request stands. The last answer stays on screen while the next request runs (a
/// list refreshed, a page turned, the live tail polled), so `Running` keeps it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Request<T> {
    #[default]
    Idle,
    /// Sent; the last answer, if any, is still shown until this one is back.
    Running(Option<T>),
    Done(T),
    /// The request failed, or could not be sent (a form with a mistake): why, for the learner.
    Failed(String),
}

impl<T> Request<T> {
    /// Sent, the last answer kept on screen meanwhile.
    pub fn start(&mut self) {
        let last = match std::mem::take(self) {
            Request::Running(last) => last,
            Request::Done(t) => Some(t),
            Request::Idle | Request::Failed(_) => None,
        };
        *self = Request::Running(last);
    }

    /// Sent, with nothing of the last answer shown.
    pub fn restart(&mut self) {
        *self = Request::Running(None);
    }

    /// The answer came back.
    pub fn finish(&mut self, result: Result<T, String>) {
        *self = match result {
            Ok(t) => Request::Done(t),
            Err(e) => Request::Failed(e),
        };
    }

    /// The request was aborted: back to the last answer, if there was one.
    pub fn cancel(&mut self) {
        if let Request::Running(last) = self {
            *self = last.take().map_or(Request::Idle, Request::Done);
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, Request::Running(_))
    }

    /// The answer on screen: the last one back, also while the next runs.
    pub fn last(&self) -> Option<&T> {
        match self {
            Request::Done(t) | Request::Running(Some(t)) => Some(t),
            _ => None,
        }
    }

    pub fn last_mut(&mut self) -> Option<&mut T> {
        match self {
            Request::Done(t) | Request::Running(Some(t)) => Some(t),
            _ => None,
        }
    }

    /// Takes the answer on screen out, leaving `Idle`.
    pub fn take_last(&mut self) -> Option<T> {
        match std::mem::take(self) {
            Request::Done(t) | Request::Running(Some(t)) => Some(t),
            _ => None,
        }
    }

    /// Why it failed.
    pub fn error(&self) -> Option<&str> {
        match self {
            Request::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// Where a screen's request runs: the target's session, the lab, the runtime's paths, and where its
/// results go (each [`Io::send`] is one [`Component::done`] on the screen, in order).
pub struct Io<D> {
    /// The target's session: its client, the one every request goes through.
    pub session: Arc<Session>,
    /// The lab (its dataset names the sample files).
    pub lab: Arc<Lab>,
    /// The official sample files, when the learner has them (else the store screen lists generated ones).
    pub samples: Option<PathBuf>,
    /// The config file the environment screen saves profiles into (None: started without one).
    pub config: Option<PathBuf>,
    /// The terminal is a remote learner's (`Options::remote`): no file of this machine is read.
    pub remote: bool,
    /// Delivers a result to the app (as the screen's message).
    sink: Arc<dyn Fn(D) + Send + Sync>,
}

impl<D> Clone for Io<D> {
    fn clone(&self) -> Self {
        Io {
            session: self.session.clone(),
            lab: self.lab.clone(),
            samples: self.samples.clone(),
            config: self.config.clone(),
            remote: self.remote,
            sink: self.sink.clone(),
        }
    }
}

impl<D: 'static> Io<D> {
    pub fn new(
        session: Arc<Session>,
        lab: Arc<Lab>,
        samples: Option<PathBuf>,
        config: Option<PathBuf>,
        sink: impl Fn(D) + Send + Sync + 'static,
    ) -> Io<D> {
        Io {
            session,
            lab,
            samples,
            config,
            remote: false,
            sink: Arc::new(sink),
        }
    }

    /// Sends a result (a progress report or the answer) back to the screen.
    pub fn send(&self, done: D) {
        (self.sink)(done);
    }

    /// The same, for a part of the results: `wrap` makes a screen's own result the app's.
    pub fn map<E: 'static>(self, wrap: fn(E) -> D) -> Io<E> {
        let sink = self.sink;
        Io {
            session: self.session,
            lab: self.lab,
            samples: self.samples,
            config: self.config,
            remote: self.remote,
            sink: Arc::new(move |e| sink(wrap(e))),
        }
    }

    /// A refusal in a line: what the service answered, read for the learner (the fix included).
    pub fn refused(&self, answer: &dicomlab_dicomweb::Answer) -> String {
        self.session.diagnose(answer)
    }
}

/// A transport or token failure and its reading (said once when the reading adds nothing).
pub fn failed(e: dicomlab_dicomweb::ClientError) -> String {
    let said = e.to_string();
    let reading = dicomlab_lab::checks::diagnose_error(&e);
    if reading == said {
        said
    } else {
        format!("{said} — {reading}")
    }
}

/// An exercise screen below a step's instructions. One file in `screens/` each; see `screens/mod.rs`.
pub trait Component: Sized {
    /// A request the screen asks the runtime to run.
    type Work: fmt::Debug + Clone + PartialEq + Send + 'static;
    /// What its requests send back (progress reports included).
    type Done: fmt::Debug + Clone + Send + 'static;
    /// The screen's name, on its border and in the help.
    const TITLE: &'static str;

    /// The screen as a lab starts it (the retrieve form starts on the lab's instance).
    fn new(lab: &Lab) -> Self;

    /// Why the target has nothing for this screen (a DICOMweb server without Azure's extensions); the
    /// screen then says so and takes no key.
    fn unsupported(_ctx: &Ctx) -> Option<&'static str> {
        None
    }

    /// The screen's keys now (they may depend on its state: a tree shown, a profile read-only).
    fn commands(&self, ctx: &Ctx) -> Vec<Command<Self>>;

    /// Whether a form has the keys: every key goes to [`Component::edit`] then, and no global key
    /// applies but Ctrl-C.
    fn editing(&self) -> bool {
        false
    }

    /// A key while [`Component::editing`].
    fn edit(&mut self, _key: KeyEvent, _ctx: &Ctx) -> Vec<Out<Self::Work>> {
        Vec::new()
    }

    /// A key while the screen has the focus; None: not one of its keys.
    fn key(&mut self, key: KeyEvent, ctx: &Ctx) -> Option<Vec<Out<Self::Work>>> {
        if self.editing() {
            return Some(self.edit(key, ctx));
        }
        let run = self
            .commands(ctx)
            .into_iter()
            .find(|c| c.keys.contains(&key.code))?
            .run;
        Some(run(self, key, ctx))
    }

    /// Whether one of its requests runs (quit asks first, `x` cancels).
    fn busy(&self) -> bool;

    /// The runtime aborted every request in flight.
    fn cancel(&mut self);

    /// The learner arrived on a step with this screen: load what it shows of the service.
    fn entered(&mut self, _step: &Step, _ctx: &Ctx) -> Vec<Out<Self::Work>> {
        Vec::new()
    }

    /// Another target is open (its requests were cancelled): forget what came from the old one. What it
    /// returns applies to its step, and the learner stays on it; nothing lets the app move on to the first
    /// step not done.
    fn switched(&mut self, _ctx: &Ctx) -> Vec<Out<Self::Work>> {
        Vec::new()
    }

    /// Whether something on it moves by itself (the runtime then ticks every 2 s).
    fn animating(&self) -> bool {
        false
    }

    /// The 2-second tick, while [`Component::animating`].
    fn tick(&mut self, _ctx: &Ctx) -> Vec<Out<Self::Work>> {
        Vec::new()
    }

    /// The learner said yes to an [`Out::Confirm`].
    fn confirmed(&mut self, yes: Self::Work) -> Vec<Out<Self::Work>> {
        vec![Out::Work(yes)]
    }

    /// A result of one of its requests.
    fn done(&mut self, done: Self::Done, ctx: &Ctx) -> Vec<Out<Self::Work>>;

    /// The rows it wants inside its border (tables and trees want all there is: `u16::MAX`).
    fn height(&self, _ctx: &Ctx) -> u16 {
        u16::MAX
    }

    /// Draws inside its border (read only).
    fn draw(&self, ctx: &Ctx, f: &mut Frame, area: Rect);

    /// Runs one request on tokio, sending its results through `io`.
    fn run(work: Self::Work, io: Io<Self::Done>) -> impl Future<Output = ()> + Send;
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn a_request_keeps_its_last_answer_while_the_next_runs() {
        let mut r: Request<u32> = Request::Idle;
        r.start();
        assert_eq!(r, Request::Running(None));
        r.finish(Ok(1));
        r.start();
        assert_eq!(r.last(), Some(&1));
        assert!(r.is_running());
        r.cancel();
        assert_eq!(r, Request::Done(1));
        r.restart();
        assert_eq!(r.last(), None);
        r.cancel();
        assert_eq!(r, Request::Idle);
        r.finish(Err("no".into()));
        assert_eq!(r.error(), Some("no"));
        r.start();
        assert_eq!(
            r,
            Request::Running(None),
            "a failure is not an answer to keep"
        );
    }
}
