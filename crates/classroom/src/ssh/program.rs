//! What the SSH server runs on a learner's terminal: the program ([`Runner`]: the lab's TUI), what it
//! is given — the learner ([`Learner`]) and their terminal ([`Terminal`]: events in, bytes out).

use std::future::Future;
use std::io;
use std::pin::Pin;

use crossterm::event::Event;
use futures_util::Stream;

pub use crate::channel::ChannelWriter;
use crate::values::LearnerEnv;

/// A learner's terminal: events in, bytes out, its size and `TERM`.
pub struct Terminal {
    /// Keys, mouse, paste and resizes; ends when the connection does (or the session is closed).
    pub events: Pin<Box<dyn Stream<Item = io::Result<Event>> + Send>>,
    /// Where every byte for the terminal goes.
    pub out: ChannelWriter,
    /// Columns and rows when the program starts.
    pub size: (u16, u16),
    /// The client's `TERM` (`xterm-256color`…).
    pub term: String,
}

/// What the program on a learner's terminal gets to know.
pub struct Learner {
    /// Their service's values.
    pub env: LearnerEnv,
    /// The room's store of their verdicts (`verdicts.json`): what the dashboard reads, what their
    /// TUI shows and writes what they do in it, what a reconnect resumes.
    pub progress: std::path::PathBuf,
    /// Their progress file of before the TUI showed the room's verdicts (folded into `progress` once).
    pub old_progress: std::path::PathBuf,
    /// The room's checks of them, as their TUI asks for and follows them.
    pub room: std::sync::Arc<dyn dicomlab_tui::Room>,
    /// The classroom's lab.
    pub lab: dicomlab_lab::Lab,
    /// The classroom's log file.
    pub log: std::path::PathBuf,
    /// Their personal code (what they log in with; the values screen shows it).
    pub personal_code: Option<dicomlab_dicomweb::Secret>,
    /// The code was given at this login: show it before the lab.
    pub new_code: bool,
    /// The lab's instance files the room made once (None until they are there: the TUI then makes
    /// its own).
    pub samples: Option<std::path::PathBuf>,
}

/// A future the runner returns.
pub type RunFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The program each learner's SSH session runs.
pub trait Runner: Send + Sync + 'static {
    fn run(&self, learner: Learner, terminal: Terminal) -> RunFuture;
}
