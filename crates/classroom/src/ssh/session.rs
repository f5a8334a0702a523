//! A learner's SSH session once their terminal opens: their program runs on the channel (input from
//! the connection, output through a bounded writer), watched for idleness, a takeover, a reset and a
//! client that stopped reading; when it ends, why is said in the terminal and the connection closes.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossterm::event::Event;
use futures_util::Stream;
use russh::ChannelId;
use tokio::sync::{mpsc, oneshot, watch};

use super::program::{Learner, RunFuture, Runner, Terminal};
use super::sessions::{Kick, Sessions};
use crate::channel::{ChannelWriter, unpack};
use crate::config::ClassroomConfig;
use crate::folder::now;
use crate::names::LearnerName;
use crate::room::LiveSession;
use crate::state::{Core, RoomOf};
use crate::stop::stopped;
use crate::values::LearnerEnv;

/// A learner's program, running on their channel.
pub(super) struct LiveSessionTask {
    pub(super) core: Arc<Core>,
    pub(super) runner: Arc<dyn Runner>,
    pub(super) sessions: Arc<Sessions>,
    pub(super) name: LearnerName,
    /// Their personal code, given at this login.
    pub(super) new_code: Option<dicomlab_dicomweb::Secret>,
    pub(super) id: u64,
    pub(super) channel: ChannelId,
    pub(super) handle: russh::server::Handle,
    pub(super) size: (u16, u16),
    pub(super) term: String,
    pub(super) events: mpsc::Receiver<io::Result<Event>>,
    /// The newest window size not taken yet (see the connection's `Input::resize`).
    pub(super) resize: Arc<AtomicU32>,
    pub(super) kicked: oneshot::Receiver<Kick>,
    pub(super) last_input: Arc<AtomicU64>,
    pub(super) started: Instant,
    pub(super) noticed: Arc<AtomicBool>,
}

/// How the session ended, said in the terminal after the program gave it back.
enum Ending {
    Quit,
    Idle,
    TakenOver,
    Reset,
    Failed(String),
}

impl LiveSessionTask {
    pub(super) async fn run(self) {
        let LiveSessionTask {
            core,
            runner,
            sessions,
            name,
            new_code,
            id,
            channel,
            handle,
            size,
            term,
            events,
            resize,
            kicked,
            last_input,
            started,
            noticed,
        } = self;
        let (out, sender, broken) = writer(&handle, channel);
        let mut notices = out.sibling();
        let env = match core.join(&name).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(learner = %name, "cannot open the learner's service: {e}");
                sessions.close(&name, id);
                refuse(
                    handle,
                    channel,
                    format!("{e}{}", code_said(new_code.as_ref())),
                )
                .await;
                return;
            }
        };
        core.session(&name, Some(LiveSession { id, since: now() }));
        // However this task ends — a panic in the program included — the session is forgotten.
        let _forget = Forget {
            core: core.clone(),
            sessions: sessions.clone(),
            name: name.clone(),
            id,
        };
        tracing::info!(learner = %name, id, "ssh session opened");
        let learner = learner(&core, &name, env, new_code.is_some());
        // The program's input ends when the connection's does, or when this task says so (idle,
        // takeover, a client that stopped reading).
        let (stop_tx, stop_rx) = watch::channel(false);
        let program = runner.run(
            learner,
            Terminal {
                events: Box::pin(input(events, stop_rx, resize)),
                out,
                size,
                term,
            },
        );
        let idle = Idle::new(&core.config, started, last_input, noticed, broken);
        let ending = supervise(program, kicked, &idle, &stop_tx, &mut notices).await;
        let said = farewell(&ending, &name, idle.limit);
        let _ = io::Write::write_all(&mut notices, format!("\r\n{said}\r\n").as_bytes());
        let _ = io::Write::flush(&mut notices);
        drop(notices);
        let _ = tokio::time::timeout(Duration::from_secs(5), sender).await;
        let code = if matches!(ending, Ending::Failed(_)) {
            1
        } else {
            0
        };
        let _ = handle.exit_status_request(channel, code).await;
        let _ = handle.eof(channel).await;
        let _ = handle.close(channel).await;
        // One terminal per connection: the connection ends with it (nothing else may use it).
        hang_up(&handle, "the session ended").await;
        tracing::info!(learner = %name, id, "ssh session closed");
    }
}

/// The program's output: a writer whose queue is bounded, and the task that sends it to the channel
/// one chunk at a time (waiting for the client's window); the flag says the client stopped reading.
fn writer(
    handle: &russh::server::Handle,
    channel: ChannelId,
) -> (ChannelWriter, tokio::task::JoinHandle<()>, Arc<AtomicBool>) {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Bytes>();
    let queued = Arc::new(AtomicUsize::new(0));
    let sender = {
        let handle = handle.clone();
        let queued = queued.clone();
        tokio::spawn(async move {
            while let Some(chunk) = out_rx.recv().await {
                let n = chunk.len();
                let sent = handle.data(channel, chunk).await;
                queued.fetch_sub(n, Ordering::AcqRel);
                if sent.is_err() {
                    break;
                }
            }
        })
    };
    let broken = Arc::new(AtomicBool::new(false));
    let out = ChannelWriter::new(out_tx, queued, broken.clone());
    (out, sender, broken)
}

/// What the program on `name`'s terminal gets to know.
fn learner(core: &Arc<Core>, name: &LearnerName, env: LearnerEnv, new_code: bool) -> Learner {
    Learner {
        env,
        progress: core.folder.verdicts(name),
        old_progress: core.folder.progress(name),
        room: Arc::new(RoomOf {
            core: core.clone(),
            name: name.clone(),
        }),
        lab: core.lab.clone(),
        log: core.folder.log_file(),
        personal_code: core.personal_code(name),
        new_code,
        samples: core.samples(),
    }
}

/// The program's terminal events, until `stop` says so; a queued resize takes the newest size.
fn input(
    events: mpsc::Receiver<io::Result<Event>>,
    stop: watch::Receiver<bool>,
    resize: Arc<AtomicU32>,
) -> impl Stream<Item = io::Result<Event>> + Send {
    futures_util::stream::unfold(
        (events, stop, resize),
        |(mut rx, mut stop, resize)| async move {
            let e = tokio::select! {
                e = rx.recv() => e?,
                () = stopped(&mut stop) => return None,
            };
            // A queued resize takes the newest size, and lets the next one be queued.
            let e = match e {
                Ok(Event::Resize(w, h)) => match resize.swap(0, Ordering::AcqRel) {
                    0 => Ok(Event::Resize(w, h)),
                    newest => {
                        let (w, h) = unpack(newest);
                        Ok(Event::Resize(w, h))
                    }
                },
                other => other,
            };
            Some((e, (rx, stop, resize)))
        },
    )
}

/// What tells an idle session, or one whose client stopped reading.
struct Idle {
    /// Closed after this long without a key…
    limit: Duration,
    /// …told this long before…
    warning: Duration,
    /// …that is, after this long without one.
    warn_at: Duration,
    started: Instant,
    /// Seconds since `started` of the last key.
    last_input: Arc<AtomicU64>,
    /// The notice was shown (the next key redraws the screen).
    noticed: Arc<AtomicBool>,
    /// The client stopped reading.
    broken: Arc<AtomicBool>,
}

impl Idle {
    fn new(
        config: &ClassroomConfig,
        started: Instant,
        last_input: Arc<AtomicU64>,
        noticed: Arc<AtomicBool>,
        broken: Arc<AtomicBool>,
    ) -> Idle {
        let limit = config.idle;
        let warning = config.idle_warning.min(limit);
        Idle {
            limit,
            warning,
            warn_at: limit.saturating_sub(warning),
            started,
            last_input,
            noticed,
            broken,
        }
    }

    /// How often to look.
    fn period(&self) -> Duration {
        (self.warning / 3).clamp(Duration::from_millis(200), Duration::from_secs(15))
    }

    /// A look: the session ends (the client stopped reading, or no key for too long), or is told it
    /// soon will.
    fn check(&self, notices: &mut ChannelWriter) -> Option<Ending> {
        let idle = Duration::from_secs(
            self.started
                .elapsed()
                .as_secs()
                .saturating_sub(self.last_input.load(Ordering::Relaxed)),
        );
        if self.broken.load(Ordering::Acquire) {
            return Some(Ending::Failed("the terminal stopped reading".into()));
        }
        if idle >= self.limit {
            return Some(Ending::Idle);
        }
        if idle >= self.warn_at && !self.noticed.load(Ordering::Acquire) {
            self.noticed.store(true, Ordering::Release);
            let _ = notice(
                notices,
                &format!(
                    " No key for {}: this session closes in {}. Press any key to stay. ",
                    span(self.warn_at),
                    span(self.warning)
                ),
            );
        }
        None
    }
}

/// Why a kicked session ends.
fn kicked_ending(why: Result<Kick, oneshot::error::RecvError>) -> Ending {
    match why {
        Ok(Kick::Reset) => Ending::Reset,
        _ => Ending::TakenOver,
    }
}

/// Runs the program until it gives the terminal back, ending its input (`stop`) when the session is
/// kicked, idle or its client stopped reading; how it ended.
async fn supervise(
    program: RunFuture,
    mut kicked: oneshot::Receiver<Kick>,
    idle: &Idle,
    stop: &watch::Sender<bool>,
    notices: &mut ChannelWriter,
) -> Ending {
    let mut ending = None;
    let mut program = std::pin::pin!(program);
    let mut watch = tokio::time::interval(idle.period());
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            r = &mut program => break r,
            why = &mut kicked, if ending.is_none() => {
                ending = Some(kicked_ending(why));
                let _ = stop.send(true);
            }
            _ = watch.tick(), if ending.is_none() => {
                if let Some(e) = idle.check(notices) {
                    ending = Some(e);
                    let _ = stop.send(true);
                }
            }
        }
    };
    match (ending, result) {
        (Some(e), _) => e,
        (None, Ok(())) => Ending::Quit,
        (None, Err(e)) => Ending::Failed(e),
    }
}

/// What the terminal is told when the session ends.
fn farewell(ending: &Ending, name: &LearnerName, idle_limit: Duration) -> String {
    match ending {
        Ending::Quit => "Your progress is kept: ssh again to go on where you left.".to_string(),
        Ending::Idle => format!(
            "Closed after {} without a key. Your progress is kept: ssh again to go on.",
            span(idle_limit)
        ),
        Ending::TakenOver => {
            "You connected again from another terminal: this session is closed. Your progress goes on there."
                .to_string()
        }
        Ending::Reset => {
            "The instructor gave you a new personal code: this session is closed. Log in again with the new code (the instructor reads it out)."
                .to_string()
        }
        Ending::Failed(e) => {
            tracing::warn!(learner = %name, "the lab stopped: {e}");
            format!("The lab stopped on an error ({e}); the instructor's log says more. ssh again to go on.")
        }
    }
}

/// Forgets a session when its task ends, however it ends: the room's count and the dashboard.
struct Forget {
    core: Arc<Core>,
    sessions: Arc<Sessions>,
    name: LearnerName,
    id: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        if self.sessions.close(&self.name, self.id) {
            self.core.session(&self.name, None);
        }
    }
}

/// A personal code given at a login whose lab does not open: said with the refusal, or it is lost.
pub(super) fn code_said(issued: Option<&dicomlab_dicomweb::Secret>) -> String {
    issued.map_or_else(String::new, |c| {
        format!(
            "\nYour personal code is {} — from now on log in with it instead of the class code.",
            c.expose()
        )
    })
}

/// `45 min`, `1 min`, `30 s`.
fn span(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

/// Says why in the terminal, closes the channel, then the connection: a refused login holds nothing.
pub(super) async fn refuse(handle: russh::server::Handle, channel: ChannelId, text: String) {
    let msg = format!("\r\n{}\r\n\r\n", text.replace('\n', "\r\n"));
    let _ = handle.data(channel, Bytes::from(msg)).await;
    let _ = handle.exit_status_request(channel, 1).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
    hang_up(&handle, "refused").await;
}

/// Ends the connection, a moment after what was said on its channel (so the client shows it).
async fn hang_up(handle: &russh::server::Handle, why: &str) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = handle
        .disconnect(
            russh::Disconnect::ByApplication,
            why.to_string(),
            String::new(),
        )
        .await;
}

/// Draws a one-line notice over the top of the screen (the next key redraws the screen whole).
fn notice(out: &mut ChannelWriter, text: &str) -> io::Result<()> {
    use io::Write;
    // Save the cursor, top-left, reverse video, the text, erase the rest of the line, restore.
    write!(out, "\x1b7\x1b[1;1H\x1b[7m{text}\x1b[0m\x1b[K\x1b8\x07")?;
    out.flush()
}
