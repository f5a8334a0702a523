//! The runtime: runs one [`App`] on any terminal-like [`Channel`] — a stream of terminal events in, a
//! writer of bytes out, a size — so the same TUI serves the local terminal (`terminal.rs`) or a remote
//! one. It opens the target's session, feeds every event and result to `update` as a [`Msg`], runs the
//! [`Effect`]s it returns on tokio (a screen's request runs its component's `run`), and draws after
//! messages only: a burst of results costs one frame (and frames are at least 25 ms apart: what
//! arrives meanwhile waits for the next), an idle TUI draws nothing, and the only timers
//! are the token countdown (20 s), the 2-second tick while something animates, and the 30-second
//! recheck while a step waits for a late record. Every byte for the terminal — frames, the alternate
//! screen, mouse capture, OSC 52 — goes to the channel's writer.

use dicomlab_lab::model::CheckKind;
use dicomlab_lab::model::StepId;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event, KeyCode, KeyEventKind};
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen};
use futures_util::{Stream, StreamExt};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use ratatui_image::picker::Picker;
use tokio::sync::{Mutex, MutexGuard, mpsc};
use tokio::task::AbortHandle;

use super::app::{App, Effect, Msg};
use super::component::Io;
use super::screens::environment;
use super::theme::Theme;
use super::update::update;
use super::{Options, TuiError, view, viewer};
use dicomlab_dicomweb::{Exchange, StoreMode};
use dicomlab_lab::config::{Config, Profile};
use dicomlab_lab::engine::Session;
use dicomlab_lab::evidence::{Evidence, Source};
use dicomlab_lab::model::Lab;
use dicomlab_lab::progress::ProgressStore;
use dicomlab_lab::watch::Plan;

/// A terminal the TUI runs on.
pub struct Channel<E, W> {
    /// The terminal's input as events (keys, mouse, resizes); the TUI stops when it ends.
    pub events: E,
    /// Where every byte for the terminal goes.
    pub out: W,
    /// Its size (columns, rows) when the TUI starts; later sizes arrive as resize events.
    pub size: (u16, u16),
    /// Its symbols and colors.
    pub theme: Theme,
    /// How images reach it (see `graphics.rs`); half-blocks when it did not say.
    pub picker: Picker,
}

/// A profile's session opened in the background: its name, and the session or why not.
type Opened = (String, Result<Session, String>);

/// What runs effects: the open session and what every effect shares.
struct Runtime {
    session: Arc<Session>,
    store: Arc<Mutex<ProgressStore>>,
    /// Saves `store`, one save at a time.
    saver: Arc<Saver>,
    lab: Arc<Lab>,
    /// Every profile, for `t`; a profile saved on the environment screen replaces its old self.
    profiles: BTreeMap<String, Profile>,
    /// The embedded practice service's data folder (a switch back to `practice` reopens it).
    embedded: Option<std::sync::Arc<dyn dicomlab_lab::targets::Launch>>,
    /// The official sample files, when the learner has them.
    samples: Option<PathBuf>,
    /// The config file (the environment screen saves into it; the learner's name goes in it).
    config: Option<PathBuf>,
    /// The terminal is a remote learner's: screens read no file of this machine.
    remote: bool,
    /// The largest side, in pixels, of an image this terminal can show (see `viewer::largest_side`).
    image_side: u32,
    /// Requests in flight, for `x` (cancel).
    inflight: Vec<AbortHandle>,
    /// Results, back to `update`.
    tx: mpsc::UnboundedSender<Msg>,
    /// Every exchange a session's client makes (the exchange pane, and the learner's own are kept).
    exchanges: mpsc::UnboundedSender<Exchange>,
    /// Sessions opened by a switch.
    opened: mpsc::UnboundedSender<Opened>,
    /// The judge of a classroom learner's steps (None: this TUI judges them).
    room: Option<Arc<dyn super::Room>>,
    /// The watch of the open target's records.
    watch: Option<AbortHandle>,
}

/// Runs the TUI on `channel` until the learner quits or the channel's input ends.
pub async fn run<E, W>(opts: Options, channel: Channel<E, W>) -> Result<(), TuiError>
where
    E: Stream<Item = std::io::Result<Event>> + Unpin,
    W: Write,
{
    let Channel {
        mut events,
        out,
        size,
        theme,
        picker,
    } = channel;
    let (ex_tx, ex_rx) = mpsc::unbounded_channel();
    let mut session =
        Session::open(&opts.profile, opts.embedded.as_deref(), Some(ex_tx.clone())).await?;
    // A classroom learner's records are the room's: one store, the one the dashboard reads.
    if let Some(room) = &opts.room {
        session.target_key = room.key();
    }
    opts.lab.practice.apply(session.practice.as_deref());
    let session = Arc::new(session);
    let store = Arc::new(Mutex::new(ProgressStore::load(&opts.progress_path)));
    let image_side = viewer::largest_side(&picker);
    let mut app = first_app(&opts, &session, &store, theme, picker, size).await;

    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    forward_exchanges(ex_rx, tx.clone());
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel::<Opened>();
    let mut rt = Runtime {
        session,
        store,
        saver: Arc::default(),
        lab: Arc::new(opts.lab),
        profiles: opts.profiles,
        embedded: opts.embedded,
        samples: opts.samples,
        config: opts.config_path,
        remote: opts.remote,
        image_side,
        inflight: Vec::new(),
        tx,
        exchanges: ex_tx,
        opened: opened_tx,
        room: opts.room,
        watch: None,
    };
    rt.start_watch();

    let mut terminal = open(out, size)?;
    let result = event_loop(
        &mut app,
        &mut rt,
        &mut terminal,
        &mut events,
        &mut rx,
        &mut opened_rx,
    )
    .await;
    close(&mut terminal, app.mouse);
    if let Some(w) = rt.watch.take() {
        w.abort();
    }
    let _ = rt.store.lock().await.save();
    result
}

/// The app as it opens: the session's target, the saved progress, the environment screen's values.
async fn first_app(
    opts: &Options,
    session: &Session,
    store: &Mutex<ProgressStore>,
    theme: Theme,
    picker: Picker,
    size: (u16, u16),
) -> App {
    let mut app = App::new(
        opts.lab.clone(),
        opts.profile_name.clone(),
        session.kind,
        session.client.base().to_string(),
    );
    app.theme = theme;
    app.remote = opts.remote;
    app.viewer.picker = picker;
    app.profiles = opts.profiles.keys().cloned().collect();
    app.vars = session.placeholders(&opts.lab);
    if let Some(shown) = &opts.shown_profile {
        app.shown_urls = shown_urls(session, shown);
        for (k, v) in &mut app.vars {
            if let Some((_, to)) = app.shown_urls.iter().find(|(from, _)| from == v)
                && matches!(k.as_str(), "{baseUrl}" | "{tokenUrl}")
            {
                *v = to.clone();
            }
        }
        app.base_url = shown.base_url.trim().to_string();
    }
    app.reads_recorded = session.log.is_some();
    if opts.ask_name {
        app.ask(super::app::Confirm::Name(String::new()));
    }
    {
        let s = store.lock().await;
        if let Some(w) = &s.warning {
            app.status = Some(w.clone());
        }
        let saved = s.steps(&app.lab.id, &session.target_key);
        update(&mut app, Msg::Progress(saved));
    }
    app.resume();
    let shown = environment::shown(
        &opts.profile_name,
        opts.shown_profile.as_ref().unwrap_or(&opts.profile),
        session,
    );
    update(&mut app, Msg::Done(shown.into()));
    update(&mut app, Msg::Resize(size.0, size.1));
    app
}

/// The learner's exchanges reach the app as messages.
fn forward_exchanges(mut ex_rx: mpsc::UnboundedReceiver<Exchange>, tx: mpsc::UnboundedSender<Msg>) {
    tokio::spawn(async move {
        while let Some(e) = ex_rx.recv().await {
            if tx.send(Msg::Exchange(e)).is_err() {
                break;
            }
        }
    });
}

/// Messages in, effects out, a frame after each burst, until the learner quits or the input ends.
async fn event_loop<E, W>(
    app: &mut App,
    rt: &mut Runtime,
    terminal: &mut Terminal<CrosstermBackend<W>>,
    events: &mut E,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    opened_rx: &mut mpsc::UnboundedReceiver<Opened>,
) -> Result<(), TuiError>
where
    E: Stream<Item = std::io::Result<Event>> + Unpin,
    W: Write,
{
    // The token countdown moves in minutes: a slow tick is enough.
    let mut countdown = tokio::time::interval(Duration::from_secs(20));
    // A screen that animates (the change feed's live tail) ticks every 2 s, only while it does.
    let mut animation = tokio::time::interval(Duration::from_secs(2));
    // Steps waiting for a late audit record are checked again every 30 s, only while some wait.
    let mut recheck = tokio::time::interval(Duration::from_secs(30));
    recheck.reset();
    let mut pending = super::update::entered(app);
    terminal.draw(|f| view::view(app, f))?;
    let mut last_frame = tokio::time::Instant::now();
    loop {
        let mut effects = std::mem::take(&mut pending);
        let first = tokio::select! {
            biased;
            Some(m) = rx.recv() => m,
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => Msg::Key(k),
                Some(Ok(Event::Resize(w, h))) => {
                    terminal.resize(Rect::new(0, 0, w, h))?;
                    Msg::Resize(w, h)
                }
                Some(Ok(Event::Mouse(m))) if app.mouse => Msg::Mouse(m),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            Some((name, opened)) = opened_rx.recv() => rt.switched(name, opened).await,
            _ = countdown.tick() => {
                Msg::TokenLeft(rt.session.client.cached_token().map(|t| t.remaining()))
            }
            _ = animation.tick(), if app.ticking() => Msg::Tick,
            _ = recheck.tick(), if !app.waiting().is_empty() => Msg::Recheck,
        };
        if let Msg::Key(k) = &first {
            // Never the characters: a form may be taking a secret.
            let code = match k.code {
                KeyCode::Char(_) => "a character".to_string(),
                c => format!("{c:?}"),
            };
            tracing::debug!(code, modifiers = ?k.modifiers, focus = ?app.focus, "key");
        }
        // A countdown tick that changes nothing on screen costs no frame: a room's idle sessions
        // each tick every 20 s, and the header shows minutes.
        let mut countdown_only =
            matches!(first, Msg::TokenLeft(_)).then(|| view::countdown_shown(app));
        effects.extend(update(app, first));
        // A burst of results costs one frame.
        while let Ok(m) = rx.try_recv() {
            countdown_only = None;
            effects.extend(update(app, m));
        }
        if effects.is_empty()
            && countdown_only.is_some_and(|before| before == view::countdown_shown(app))
        {
            continue;
        }
        if !effects.is_empty() {
            tracing::debug!(?effects, "effects");
        }
        rt.inflight.retain(|h| !h.is_finished());
        for effect in effects {
            rt.run(effect, terminal.backend_mut());
        }
        // At most a frame every FRAME: what arrives meanwhile (a step's requests end one after
        // another) goes in the next one — a room of learners' screens costs frames, not messages.
        let due = last_frame + FRAME;
        while !app.quit && tokio::time::Instant::now() < due {
            let more = tokio::select! {
                biased;
                Some(m) = rx.recv() => update(app, m),
                () = tokio::time::sleep_until(due) => break,
            };
            for effect in more {
                rt.run(effect, terminal.backend_mut());
            }
        }
        if app.quit {
            return Ok(());
        }
        terminal.draw(|f| view::view(app, f))?;
        last_frame = tokio::time::Instant::now();
    }
}

/// The shortest time between two frames (a terminal shows no more than this anyway).
const FRAME: Duration = Duration::from_millis(25);

/// The TUI's screen on the channel: the alternate screen, a fixed viewport of the channel's size (the
/// runtime resizes it on resize events: a remote terminal's size is not this process's).
fn open<W: Write>(
    mut out: W,
    (width, height): (u16, u16),
) -> std::io::Result<Terminal<CrosstermBackend<W>>> {
    crossterm::execute!(out, EnterAlternateScreen)?;
    Terminal::with_options(
        CrosstermBackend::new(out),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, width, height)),
        },
    )
}

/// Gives the terminal back as it was: mouse capture off, the normal screen, the cursor shown.
fn close<W: Write>(terminal: &mut Terminal<CrosstermBackend<W>>, mouse: bool) {
    let out = terminal.backend_mut();
    if mouse {
        let _ = crossterm::execute!(out, DisableMouseCapture);
    }
    let _ = crossterm::execute!(out, LeaveAlternateScreen);
    let _ = terminal.show_cursor();
}

impl Runtime {
    /// Another profile's session is open (or could not be): the message that tells the app.
    async fn switched(&mut self, name: String, opened: Result<Session, String>) -> Msg {
        let session = match opened {
            Ok(s) => Arc::new(s),
            Err(e) => return Msg::SwitchFailed(e),
        };
        self.session = session.clone();
        self.start_watch();
        let saved = self
            .store
            .lock()
            .await
            .steps(&self.lab.id, &session.target_key);
        if let Some(p) = self.profiles.get(&name) {
            let shown = environment::shown(&name, p, &session);
            let _ = self.tx.send(Msg::Done(shown.into()));
        }
        Msg::Switched {
            profile: name,
            target: session.kind,
            base_url: session.client.base().to_string(),
            vars: session.placeholders(&self.lab),
            saved,
            reads_recorded: session.log.is_some(),
        }
    }

    /// Watches the open target's records (see `lab::watch`): the room's verdicts in a classroom, the
    /// embedded service's word, or looks at another target on its schedule. Each news is a
    /// `Msg::Looked`; the first one (at once) brings every verdict up to date.
    fn start_watch(&mut self) {
        if let Some(w) = self.watch.take() {
            w.abort();
        }
        let tx = self.tx.clone();
        let looked = move |changed: bool, problem: Option<String>| {
            tx.send(Msg::Looked {
                at: time::OffsetDateTime::now_utc(),
                changed,
                problem,
            })
            .is_ok()
        };
        let pushed = |mut rx: tokio::sync::watch::Receiver<u64>| {
            let looked = looked.clone();
            tokio::spawn(async move {
                rx.mark_unchanged();
                looked(true, None);
                while rx.changed().await.is_ok() {
                    if !looked(true, None) {
                        break;
                    }
                }
            })
        };
        let (how, task) = match (&self.room, self.session.watch_plan()) {
            (Some(room), _) => ("the room".to_string(), pushed(room.changed())),
            (None, Plan::Pushed(rx)) => ("live".to_string(), pushed(rx)),
            (None, Plan::Polled(schedule)) => {
                let (session, lab, store) = (
                    self.session.clone(),
                    self.lab.id.clone(),
                    self.store.clone(),
                );
                let looked = looked.clone();
                let task = tokio::spawn(async move {
                    looked(true, None);
                    dicomlab_lab::watch::poll(session, lab, store, schedule, move |l| {
                        looked(l.changed, l.problem);
                    })
                    .await;
                });
                (schedule.pace(), task)
            }
        };
        let _ = self.tx.send(Msg::Watch(how));
        self.watch = Some(task.abort_handle());
    }

    /// Runs an effect: on tokio, or at once when it is the terminal's (`out`) or the runtime's own.
    fn run(&mut self, effect: Effect, out: &mut impl Write) {
        match effect {
            Effect::Copy(text) => {
                // OSC 52: the terminal (even over SSH, in tmux with set-clipboard on) puts it on the
                // clipboard.
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(text.expose());
                let _ = write!(out, "\x1b]52;c;{b64}\x07");
                let _ = out.flush();
            }
            Effect::Mouse(on) => {
                let _ = if on {
                    crossterm::execute!(out, EnableMouseCapture)
                } else {
                    crossterm::execute!(out, DisableMouseCapture)
                };
            }
            Effect::Cancel => {
                for h in self.inflight.drain(..) {
                    h.abort();
                }
                let _ = self.tx.send(Msg::Cancelled);
            }
            Effect::SwitchTarget { name, profile } => {
                if let Some(p) = profile {
                    self.profiles.insert(name.clone(), *p);
                }
                let profile = self.profiles.get(&name).cloned();
                let (embedded, opened, exchanges, lab) = (
                    self.embedded.clone(),
                    self.opened.clone(),
                    self.exchanges.clone(),
                    self.lab.clone(),
                );
                tokio::spawn(async move {
                    let session = open_profile(&name, profile, embedded, exchanges).await;
                    if let Ok(s) = &session {
                        lab.practice.apply(s.practice.as_deref());
                    }
                    let _ = opened.send((name, session));
                });
            }
            Effect::SaveName(name) => self.save_name(name),
            Effect::Quit => {}
            other => {
                if let Some(handle) = self.spawn(other) {
                    self.inflight.push(handle);
                }
            }
        }
    }

    /// Runs an effect on tokio; the handle of a request that `x` may cancel.
    fn spawn(&self, effect: Effect) -> Option<AbortHandle> {
        let job = Job {
            session: self.session.clone(),
            store: self.store.clone(),
            saver: self.saver.clone(),
            lab: self.lab.clone(),
            tx: self.tx.clone(),
        };
        if let Some(room) = &self.room {
            // The room judges: a check is a request to it; what it decides arrives by the watch.
            match effect {
                Effect::Check(_) | Effect::CheckAll => {
                    room.judge();
                    return None;
                }
                Effect::Judge => {
                    job.room_verdicts(room.clone());
                    return None;
                }
                _ => {}
            }
        }
        let handle = match effect {
            Effect::Work(work) => {
                let sink = job.tx.clone();
                let mut io = Io::new(
                    job.session,
                    job.lab,
                    self.samples.clone(),
                    self.config.clone(),
                    move |d| {
                        let _ = sink.send(Msg::Done(d));
                    },
                );
                io.remote = self.remote;
                tokio::spawn(work.run(io))
            }
            Effect::Check(id) => tokio::spawn(job.check(id)),
            Effect::CheckAll => tokio::spawn(async move {
                check_every_step(&job.session, &job.lab, &job.store, &job.tx).await;
            }),
            Effect::Do(id) => tokio::spawn(job.do_step(id, self.samples.clone())),
            Effect::Answer { step, value } => tokio::spawn(job.answer(step, value)),
            Effect::LoadImage => tokio::spawn(job.load_image(self.image_side)),
            // Not requests `x` cancels: a judgement (the watch waits for its `Judged`) and quick
            // writes to progress.
            Effect::Judge => {
                tokio::spawn(async move {
                    check_every_step(&job.session, &job.lab, &job.store, &job.tx).await;
                    let _ = job.tx.send(Msg::Judged);
                });
                return None;
            }
            Effect::Credit { step, summary } => {
                tokio::spawn(job.credit(step, summary));
                return None;
            }
            Effect::Keep(exchange) => {
                // The room reads the learner's exchanges from its store's file: saved at once there.
                tokio::spawn(job.keep(exchange, self.room.is_some()));
                return None;
            }
            Effect::Skip(id) => {
                tokio::spawn(job.write(move |s, lab, key| s.skip(lab, key, &id)));
                return None;
            }
            Effect::Reset(id) => {
                tokio::spawn(job.write(move |s, lab, key| s.reset(lab, key, id.as_deref())));
                return None;
            }
            Effect::Copy(_)
            | Effect::Mouse(_)
            | Effect::Cancel
            | Effect::SwitchTarget { .. }
            | Effect::SaveName(_)
            | Effect::Quit => return None,
        };
        Some(handle.abort_handle())
    }

    /// Keeps the learner's name in the config file (off the loop: a slow disk never blocks a key).
    fn save_name(&self, name: String) {
        let Some(path) = self.config.clone() else {
            return;
        };
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let saved = Config::load(&path).and_then(|mut c| {
                c.learner = Some(name);
                c.save(&path)
            });
            if let Err(e) = saved {
                let _ = tx.send(Msg::Saved(Err(e.to_string())));
            }
        });
    }
}

/// Whether progress is being saved, and whether it must be saved again after (see
/// [`Job::save_soon`]).
#[derive(Default)]
struct Saver {
    running: std::sync::atomic::AtomicBool,
    again: std::sync::atomic::AtomicBool,
}

impl Saver {
    /// Runs `save` on a task now, or — when a save runs — once after it: however many ask meanwhile,
    /// one more save, which starts after the last of them asked.
    fn ask<F, Fut>(self: &Arc<Self>, save: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        use std::sync::atomic::Ordering::SeqCst;
        self.again.store(true, SeqCst);
        if self.running.swap(true, SeqCst) {
            return;
        }
        let saver = self.clone();
        tokio::spawn(async move {
            loop {
                saver.again.store(false, SeqCst);
                save().await;
                if saver.again.load(SeqCst) {
                    continue;
                }
                saver.running.store(false, SeqCst);
                // Asked for between the look and the release: this task makes it, unless the one
                // who asked started another.
                if !saver.again.load(SeqCst) || saver.running.swap(true, SeqCst) {
                    break;
                }
            }
        });
    }
}

/// What an effect's task holds: the session, the progress store, the lab, and the way back to the app.
#[derive(Clone)]
struct Job {
    session: Arc<Session>,
    store: Arc<Mutex<ProgressStore>>,
    saver: Arc<Saver>,
    lab: Arc<Lab>,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Job {
    /// Progress was recorded (under `s`, released now): it is saved soon, by [`Job::save_soon`].
    fn saved(&self, s: MutexGuard<'_, ProgressStore>) {
        drop(s);
        self.save_soon();
    }

    /// Saves progress (the app hears whether it could) on the blocking pool — a read when another
    /// writer saved, a write and two syncs to disk — never on the runtime's threads (in a classroom
    /// they draw every learner's screen). One save runs at a time: what is recorded while it runs is
    /// saved once after it, with whatever else came meanwhile (a step's three exchanges cost one or
    /// two writes, not three).
    fn save_soon(&self) {
        let (store, tx) = (self.store.clone(), self.tx.clone());
        self.saver.ask(move || {
            let (store, tx) = (store.clone(), tx.clone());
            async move {
                let s = store.lock_owned().await;
                let done = tokio::task::spawn_blocking(move || {
                    let mut s = s;
                    s.save().map_err(|e| e.to_string())
                })
                .await;
                let _ = tx.send(Msg::Saved(done.unwrap_or_else(|e| Err(e.to_string()))));
            }
        });
    }

    /// One step's check. Progress is locked only to read it and to record: never while requests run.
    async fn check(self, id: StepId) {
        let (session, lab) = (&self.session, &self.lab);
        let before = session.before(lab, &*self.store.lock().await);
        if let Some(outcome) = session.run_check(lab, &before, &id).await {
            let mut s = self.store.lock().await;
            // Not when the step was reset while the check ran: its verdict is of before.
            let fresh = session.record_from(lab, &mut s, &before, &id, &outcome);
            self.saved(s);
            if fresh {
                let _ = self.tx.send(Msg::Checked { step: id, outcome });
            }
        }
        send_token(session, &self.tx);
    }

    /// "Do it": the step's requests, sent by the learner's client.
    async fn do_step(self, id: StepId, samples: Option<PathBuf>) {
        let (session, lab) = (&self.session, &self.lab);
        let Some(step) = lab.step(&id) else { return };
        let subject = lab.step_of_kind(CheckKind::TagAdded).and_then(|t| {
            self.store
                .try_lock()
                .ok()?
                .steps(&lab.id, &session.target_key)
                .get(&t.id)?
                .subject
                .clone()
        });
        let result = dicomlab_lab::actions::perform(
            session,
            lab,
            step,
            samples.as_deref(),
            StoreMode::Single,
            subject.as_deref(),
        )
        .await
        .map_err(|e| dicomlab_dicom::text::visible(&e.to_string()).into_owned());
        let _ = self.tx.send(Msg::Did { step: id, result });
    }

    /// The answer to a step's question, checked against the service.
    async fn answer(self, step: StepId, value: String) {
        let (session, lab) = (&self.session, &self.lab);
        let before = session.before(lab, &*self.store.lock().await);
        let outcome = session.answer(lab, &before, &step, &value).await;
        let mut s = self.store.lock().await;
        let fresh = match outcome.evidence() {
            Some(e) => {
                s.credit(&lab.id, &session.target_key, &step, e.clone());
                true
            }
            None => session.record_from(lab, &mut s, &before, &step, &outcome),
        };
        self.saved(s);
        if fresh {
            let _ = self.tx.send(Msg::Checked { step, outcome });
        }
    }

    /// The viewer step's image, then its attributes.
    async fn load_image(self, largest_side: u32) {
        let (image_tx, attributes_tx) = (self.tx.clone(), self.tx.clone());
        viewer::load(
            &self.session,
            &self.lab,
            largest_side,
            |r| {
                let _ = image_tx.send(Msg::Image(r));
            },
            |a| {
                let _ = attributes_tx.send(Msg::ImageAttributes(a));
            },
        )
        .await;
    }

    /// Something done inside dicomlab that sent no request (an import) credits its step.
    async fn credit(self, step: StepId, summary: String) {
        let evidence = Evidence::new(
            Source::Dicomlab,
            summary,
            Some(time::OffsetDateTime::now_utc()),
        );
        let mut s = self.store.lock().await;
        s.credit(
            &self.lab.id,
            &self.session.target_key,
            &step,
            evidence.clone(),
        );
        self.saved(s);
        let outcome = dicomlab_lab::Outcome::Pass {
            detail: "imported in dicomlab".into(),
            evidence,
        };
        let _ = self.tx.send(Msg::Checked { step, outcome });
    }

    /// A learner's exchange kept as evidence (saved at once when `now`).
    async fn keep(self, exchange: Exchange, now: bool) {
        let mut s = self.store.lock().await;
        self.session.keep_exchange(&self.lab, &mut s, &exchange);
        if now {
            self.saved(s);
        }
    }

    /// A write to the progress of this lab and target, then saved.
    async fn write(self, f: impl FnOnce(&mut ProgressStore, &str, &str)) {
        let mut s = self.store.lock().await;
        f(&mut s, &self.lab.id, &self.session.target_key);
        self.saved(s);
    }

    /// A classroom learner's verdicts: the room's, read from its store.
    fn room_verdicts(self, room: Arc<dyn super::Room>) {
        let (lab_id, key) = (self.lab.id.clone(), self.session.target_key.clone());
        tokio::task::spawn_blocking(move || {
            let outcomes = room.outcomes();
            let saved = {
                let mut s = self.store.blocking_lock();
                s.reload();
                s.steps(&lab_id, &key)
            };
            let _ = self.tx.send(Msg::Progress(saved));
            for (step, outcome) in outcomes {
                let _ = self.tx.send(Msg::Checked { step, outcome });
            }
            let _ = self.tx.send(Msg::Judged);
        });
    }
}

/// Checks every step (those done keep their verdict; progress is locked only to read and record),
/// records what is new and sends it.
async fn check_every_step(
    session: &Session,
    lab: &Lab,
    store: &Mutex<ProgressStore>,
    tx: &mpsc::UnboundedSender<Msg>,
) {
    let before = session.before(lab, &*store.lock().await);
    let out = session.run_all(lab, &before, None).await;
    let mut s = store.lock().await;
    for (step, outcome) in out {
        if session.record_from(lab, &mut s, &before, &step, &outcome) {
            let _ = tx.send(Msg::Checked { step, outcome });
        }
    }
    let _ = tx.send(Msg::Saved(s.save().map_err(|e| e.to_string())));
    drop(s);
    send_token(session, tx);
}

/// Opens a profile's session.
async fn open_profile(
    name: &str,
    profile: Option<Profile>,
    embedded: Option<std::sync::Arc<dyn dicomlab_lab::targets::Launch>>,
    exchanges: mpsc::UnboundedSender<Exchange>,
) -> Result<Session, String> {
    match profile {
        Some(p)
            if p.kind != dicomlab_lab::targets::TargetKind::Practice
                && p.base_url.trim().is_empty() =>
        {
            Err(format!(
                "profile {name} has no base URL yet: fill in the Environment screen or the config file"
            ))
        }
        Some(p) => Session::open(&p, embedded.as_deref(), Some(exchanges))
            .await
            .map_err(|e| e.to_string()),
        None => Err(format!("no profile {name}")),
    }
}

/// The token's time left and claims, for the status bar and the token step.
fn send_token(session: &Session, tx: &mpsc::UnboundedSender<Msg>) {
    let token = session.client.cached_token();
    let _ = tx.send(Msg::TokenLeft(token.as_ref().map(|t| t.remaining())));
    let _ = tx.send(Msg::Claims(token.and_then(|t| t.claims)));
}

/// The URLs a session sends to, and how the learner's own machine reaches the same (`shown`): the
/// base URL and the token URL.
fn shown_urls(session: &Session, shown: &dicomlab_lab::config::Profile) -> Vec<(String, String)> {
    let mut pairs = vec![(
        session.client.base().to_string(),
        shown.base_url.trim().trim_end_matches('/').to_string(),
    )];
    if let (Some(from), Some(to)) = (
        session.client.auth().token_url(),
        dicomlab_lab::targets::auth_of(shown).token_url(),
    ) {
        pairs.push((from, to));
    }
    pairs.retain(|(from, to)| !from.is_empty() && !to.is_empty() && from != to);
    pairs
}

#[cfg(test)]
mod tests {
    use super::Saver;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    /// Saves asked for while one runs cost one more save, not one each.
    #[tokio::test]
    async fn saves_asked_while_one_runs_are_made_once_after_it() {
        let saver = Arc::new(Saver::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let save = {
            let runs = runs.clone();
            move || {
                let runs = runs.clone();
                async move {
                    runs.fetch_add(1, SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        saver.ask(save.clone());
        while runs.load(SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The first runs: nine more asks.
        for _ in 0..9 {
            saver.ask(save.clone());
        }
        while saver.running.load(SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(runs.load(SeqCst), 2, "the first, then one for the nine");
        saver.ask(save);
        tokio::time::sleep(Duration::from_millis(10)).await;
        while saver.running.load(SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(runs.load(SeqCst), 3);
    }

    /// However asks and saves interleave, the last ask is followed by a save that began after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_ask_is_always_saved() {
        for _ in 0..50 {
            let saver = Arc::new(Saver::default());
            let asked = Arc::new(AtomicUsize::new(0));
            let saved = Arc::new(AtomicUsize::new(0));
            let save = {
                let (asked, saved) = (asked.clone(), saved.clone());
                move || {
                    let (asked, saved) = (asked.clone(), saved.clone());
                    async move {
                        saved.fetch_max(asked.load(SeqCst), SeqCst);
                        tokio::task::yield_now().await;
                    }
                }
            };
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let (saver, asked, save) = (saver.clone(), asked.clone(), save.clone());
                tasks.push(tokio::spawn(async move {
                    for _ in 0..20 {
                        asked.fetch_add(1, SeqCst);
                        saver.ask(save.clone());
                        tokio::task::yield_now().await;
                    }
                }));
            }
            for t in tasks {
                t.await.expect("asker");
            }
            while saver.running.load(SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(saved.load(SeqCst), asked.load(SeqCst));
        }
    }
}
