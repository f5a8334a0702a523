//! What an SSH session runs: the lab's TUI on the learner's own service, then — when they leave the
//! lab with `q` — their values for Postman or curl (`values.rs`), from which Enter goes back to the lab
//! and `q` leaves.
//!
//! The TUI shows the room's verdicts (`RoomOf`, in `state.rs`): it runs no check of its own, its `c`
//! asks the room's checks, and what they decide shows as it arrives, so the learner's screen, the
//! dashboard and `classroom status` never disagree. What the learner does inside the TUI (their
//! requests, answers, a reset) goes into the same store, `verdicts.json`; a reconnect resumes at their
//! first step not done.
//!
//! The TUI runs as `Options::remote`: no path of the classroom's machine is typed in it (the store
//! screen stores the lab's samples, the environment screen reads no file, nothing is saved to a config
//! file), and it has one profile, the learner's, so it cannot be pointed elsewhere.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};

use crossterm::event::Event;
use futures_util::Stream;

use crate::channel::{pack, unpack};
use crate::folder::VERDICTS_KEY;
use crate::ssh::program::{Learner, RunFuture, Runner, Terminal};
use crate::values::{self, Choice, LearnerEnv, Values};
use dicomlab_tui::runtime::{self, Channel};
use dicomlab_tui::theme::Theme;

/// The lab's TUI over SSH.
pub struct LabRunner;

impl Runner for LabRunner {
    fn run(&self, learner: Learner, terminal: Terminal) -> RunFuture {
        Box::pin(run(learner, terminal))
    }
}

/// The terminal's events, remembering its last size and whether they ended.
struct Watched<S> {
    inner: S,
    size: Arc<AtomicU32>,
    ended: Arc<AtomicBool>,
}

impl<S: Stream<Item = io::Result<Event>> + Unpin> Stream for Watched<S> {
    type Item = io::Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = Pin::new(&mut this.inner).poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(Event::Resize(w, h)))) => {
                this.size.store(pack((*w, *h)), Ordering::Relaxed);
            }
            Poll::Ready(None) => this.ended.store(true, Ordering::Relaxed),
            _ => {}
        }
        next
    }
}

async fn run(learner: Learner, terminal: Terminal) -> Result<(), String> {
    let Terminal {
        events,
        mut out,
        size,
        term,
    } = terminal;
    let profile = learner.env.profile();
    // The environment screen shows what their laptop uses.
    let mut public = profile.clone();
    public.base_url = learner.env.public_base_url.clone();
    public.authority = learner.env.public_authority.clone();
    {
        let (old, path, lab, env) = (
            learner.old_progress.clone(),
            learner.progress.clone(),
            learner.lab.id.clone(),
            learner.env.clone(),
        );
        let _ =
            tokio::task::spawn_blocking(move || fold_old_progress(&old, &path, &lab, &env)).await;
    }
    let size_now = Arc::new(AtomicU32::new(pack(size)));
    let ended = Arc::new(AtomicBool::new(false));
    let mut events = Watched {
        inner: events,
        size: size_now.clone(),
        ended: ended.clone(),
    };
    let theme = Theme::from_env(|k| (k == "TERM").then(|| term.clone()));
    if learner.new_code
        && let Some(code) = &learner.personal_code
    {
        let choice = values::show_code(
            learner.env.name.as_str(),
            code,
            &mut events,
            &mut out,
            unpack(size_now.load(Ordering::Relaxed)),
        )
        .await
        .map_err(|e| e.to_string())?;
        if choice == Choice::Leave {
            return Ok(());
        }
    }
    loop {
        let opts = dicomlab_tui::Options {
            lab: learner.lab.clone(),
            profile_name: learner.env.name.to_string(),
            profile: profile.clone(),
            profiles: BTreeMap::from([(learner.env.name.to_string(), profile.clone())]),
            progress_path: learner.progress.clone(),
            // Never used: the profile names a served service, nothing is embedded.
            embedded: None,
            samples: learner.samples.clone(),
            log_path: learner.log.clone(),
            config_path: None,
            ask_name: false,
            remote: true,
            shown_profile: Some(public.clone()),
            room: Some(learner.room.clone()),
        };
        let channel = Channel {
            events: &mut events,
            out: &mut out,
            size: unpack(size_now.load(Ordering::Relaxed)),
            theme,
            picker: ratatui_image::picker::Picker::halfblocks(),
        };
        runtime::run(opts, channel)
            .await
            .map_err(|e| e.to_string())?;
        if ended.load(Ordering::Relaxed) {
            return Ok(());
        }
        let choice = values::show(
            Values::of(&learner.env).with_code(learner.personal_code.clone()),
            &mut events,
            &mut out,
            unpack(size_now.load(Ordering::Relaxed)),
        )
        .await
        .map_err(|e| e.to_string())?;
        if choice == Choice::Leave {
            return Ok(());
        }
    }
}

/// Before the TUI showed the room's verdicts it kept progress of its own (`progress.json`, keyed by the
/// loopback URL of the learner's service): what it holds — their answers, their requests from the
/// TUI, a reset — is folded into the room's store once, and the old file renamed
/// `progress.json.folded`.
pub fn fold_old_progress(old: &Path, verdicts: &Path, lab: &str, env: &LearnerEnv) {
    if !old.exists() {
        return;
    }
    let tail = format!("{}/v1", env.name.prefix());
    let kept = dicomlab_lab::progress::ProgressStore::load(old);
    let mut store = dicomlab_lab::progress::ProgressStore::load(verdicts);
    let theirs: Vec<_> = kept
        .progress
        .labs
        .get(lab)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("http://127.0.0.1:") && k.ends_with(&tail))
        .map(|(_, t)| t.clone())
        .collect();
    for t in theirs {
        store.absorb(lab, VERDICTS_KEY, t);
    }
    if let Err(e) = store.save() {
        tracing::warn!("cannot fold the old progress into the room's: {e}");
        return;
    }
    if let Err(e) = std::fs::rename(old, old.with_extension("json.folded")) {
        tracing::warn!("cannot rename the old progress file: {e}");
    }
}
