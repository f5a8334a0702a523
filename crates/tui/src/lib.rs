//! The terminal UI, an Elm-style app:
//! - `app.rs`: the state ([`app::App`]), what happens ([`app::Msg`]), what to do ([`app::Effect`]);
//!   `update.rs`: the pure [`update::update`]; `keys.rs` and `app_commands.rs`: the app's own keys and
//!   the lists the command bar and help show.
//! - `screens/`: the exercise screens, one file each, each a [`component::Component`] that owns its
//!   state, keys, command list, drawing and requests; `screens/mod.rs` registers them and generates the
//!   dispatch. `component.rs`: the trait, [`component::Request`] (idle / running / done / failed) and
//!   what a screen may ask of the app; `widgets/`: forms of named fields, tag trees, tables.
//! - `view.rs`: draws the app (read only); `viewer.rs`: the viewer step's image; `theme.rs`: symbols and
//!   colors.
//! - `runtime.rs`: runs the app on any terminal-like channel (events in, bytes out), effects on tokio,
//!   a frame after messages only; `terminal.rs`: the local terminal as such a channel; `graphics.rs`:
//!   asking a terminal which graphics it draws.
//!
//! ARCHITECTURE.md walks one key press through these files.

pub mod app;
mod app_commands;
pub mod component;
mod graphics;
pub mod keys;
pub mod runtime;
pub mod screens;
mod terminal;
pub mod theme;
pub mod update;
pub mod view;
pub mod viewer;
pub mod widgets;

use std::collections::BTreeMap;
use std::path::PathBuf;

use dicomlab_lab::config::Profile;
use dicomlab_lab::engine::SessionError;
use dicomlab_lab::model::Lab;

/// Why the TUI stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
}

/// What the TUI needs to start.
pub struct Options {
    /// The lab to run (the embedded one, or `--lab FILE`).
    pub lab: Lab,
    /// The profile to open first.
    pub profile_name: String,
    /// That profile's values.
    pub profile: Profile,
    /// Every profile, for the target switcher (`t`).
    pub profiles: BTreeMap<String, Profile>,
    /// The progress file (per lab and target).
    pub progress_path: PathBuf,
    /// Starts the embedded practice service (the `practice` profile without a base URL); None: that
    /// profile cannot be opened here.
    pub embedded: Option<std::sync::Arc<dyn dicomlab_lab::targets::Launch>>,
    /// The official sample files, when the learner has them.
    pub samples: Option<PathBuf>,
    /// The log file (a panic says where it is).
    pub log_path: PathBuf,
    /// Where the environment screen saves (None: it cannot save).
    pub config_path: Option<PathBuf>,
    /// Ask the learner's name for the report (the config has none yet).
    pub ask_name: bool,
    /// The terminal is not on this machine (a classroom learner's, over SSH): no path on this machine
    /// is typed — the store screen stores the lab's samples only, the environment screen reads no file.
    pub remote: bool,
    /// What the environment screen shows when it differs from `profile` (a classroom learner's values
    /// as their laptop reaches the service, while the TUI reaches it on loopback).
    pub shown_profile: Option<Profile>,
    /// Where the verdicts come from when another part of the process judges them (a classroom
    /// learner's TUI shows the room's checks of their service: the same verdicts the dashboard
    /// shows). None: the TUI judges the steps itself.
    pub room: Option<std::sync::Arc<dyn Room>>,
}

/// The verdicts of one learner as another judge keeps them (the classroom's checks). The TUI then
/// runs no check of its own: `c`, `C` and every action ask the judge, and what it decides shows as it
/// arrives. Progress is the judge's store: `progress_path` names its file, `key` its target key.
pub trait Room: Send + Sync {
    /// The target key of the learner's records in the judge's store.
    fn key(&self) -> String;
    /// Asks for the learner's steps to be judged soon.
    fn judge(&self);
    /// Changes when the learner's verdicts changed.
    fn changed(&self) -> tokio::sync::watch::Receiver<u64>;
    /// The learner's latest outcomes, per step (blocking: the runtime reads them off its loop).
    fn outcomes(&self) -> BTreeMap<dicomlab_lab::model::StepId, dicomlab_lab::Outcome>;
}

/// Runs the TUI in this process's terminal until the learner quits.
pub async fn run(opts: Options) -> Result<(), TuiError> {
    terminal::run(opts).await
}
