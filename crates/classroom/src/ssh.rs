//! The lab over SSH: `ssh -p 2222 <name>@<host>` gives the learner a terminal program ([`Runner`]: the
//! lab's TUI) on their own service, with their saved progress.
//!
//! - Password authentication only. A new name logs in with the class code and is given a personal
//!   code at once (shown before the lab); from then on only that personal code logs in as them, so
//!   another learner who knows the class code cannot take their session, service or secret
//!   ([`super::Core::ssh_login`]). Codes are checked through [`super::gate::Gate`] (a wrong one waits
//!   longer each time). A name that is not valid, a full room or a full session limit is said in the
//!   terminal, then the connection closes.
//! - One session channel per connection, with a pty; a shell request starts the program. No exec, no
//!   subsystem (sftp), no port forwarding, no agent or X11 forwarding.
//! - The channel's bytes are parsed into terminal events (terminput, as crossterm events); a window
//!   change is a resize event. What the program writes goes to the channel through a writer whose
//!   queue is bounded: a client that stops reading is disconnected rather than held in memory.
//! - A learner has one session: connecting again takes over (the old one is told and closed), and
//!   resumes from their saved progress. A session without a key for `idle` is closed, told a minute
//!   before.
//! - The host key is made once (ed25519, 0600) in the classroom folder; its fingerprint is printed for
//!   learners to compare with what `ssh` shows them.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossterm::event::Event;
use futures_util::Stream;
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Pty};
use tokio::sync::{mpsc, oneshot, watch};

pub use super::channel::{ChannelWriter, InputParser, MAX_QUEUED_OUTPUT};
use super::channel::{pack, unpack};
use super::names::LearnerName;
use super::{Core, LearnerEnv, LiveSession, SshLogin};

/// Terminal events queued for the program; past this, keys are dropped (a paste flood).
const INPUT_QUEUE: usize = 1024;
/// Connections that have not logged in yet, at once.
const MAX_UNAUTHENTICATED: usize = 64;
/// The largest terminal drawn (columns, rows): a larger one shows the lab in its top-left corner. A
/// frame of 320×120 cells is what a large screen at a small font holds; 1000×500 would cost each
/// redraw thirteen times as much, for no reader.
const MAX_COLUMNS: u32 = 320;
const MAX_ROWS: u32 = 120;
/// Connections from one address that have not logged in yet, at once: a classroom behind one NAT
/// address logs in together, so this is half the room's, not a handful — one address cannot take
/// every slot.
const MAX_UNAUTHENTICATED_PER_ADDRESS: usize = MAX_UNAUTHENTICATED / 2;

/// Why the SSH server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot listen for SSH on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the SSH host key {path}: {why}")]
    HostKey { path: String, why: String },
}

/// The SSH server, listening.
#[derive(Debug, Clone)]
pub struct Listening {
    pub addr: SocketAddr,
    /// `SHA256:…`, as `ssh` shows it on first connection.
    pub fingerprint: String,
}

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
}

/// A future the runner returns.
pub type RunFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The program each learner's SSH session runs.
pub trait Runner: Send + Sync + 'static {
    fn run(&self, learner: Learner, terminal: Terminal) -> RunFuture;
}

/// Loads the host key from `path`, or makes one (ed25519, 0600).
pub fn host_key(path: &Path) -> Result<PrivateKey, SshError> {
    let err = |why: String| SshError::HostKey {
        path: path.display().to_string(),
        why,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => PrivateKey::from_openssh(text.as_bytes()).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            let key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
                &seed,
            ));
            let text = key
                .to_openssh(russh::keys::ssh_key::LineEnding::LF)
                .map_err(|e| err(e.to_string()))?;
            super::folder::write_private(path, text.as_bytes()).map_err(|e| err(e.to_string()))?;
            tracing::info!(path = %path.display(), "made the SSH host key");
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// Why a session is ended from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The learner logged in again elsewhere.
    TakenOver,
    /// The instructor gave them a new personal code: whoever holds this session may not be them.
    Reset,
}

/// Who is connected: one session per learner, and how many in all.
#[derive(Default)]
pub struct Sessions {
    next_id: AtomicU64,
    live: Mutex<HashMap<LearnerName, (u64, oneshot::Sender<Kick>)>>,
}

impl Sessions {
    /// Registers a session for `name`, taking over an older one. `None` when the room is full.
    fn open(&self, name: &LearnerName, max: usize) -> Option<(u64, oneshot::Receiver<Kick>)> {
        let mut live = self.live.lock().ok()?;
        if !live.contains_key(name) && live.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        if let Some((_, old)) = live.insert(name.clone(), (id, tx)) {
            let _ = old.send(Kick::TakenOver);
        }
        Some((id, rx))
    }

    /// Ends `name`'s session, if one is open (it says why, then closes). Whether one was.
    pub fn end(&self, name: &LearnerName, why: Kick) -> bool {
        let Ok(mut live) = self.live.lock() else {
            return false;
        };
        // The entry stays (with a sender nobody listens to) until the session closes itself: its
        // `close` then finds it, and the dashboard learns it is gone.
        match live.get_mut(name) {
            Some((_, tx)) => std::mem::replace(tx, oneshot::channel().0)
                .send(why)
                .is_ok(),
            None => false,
        }
    }

    /// Forgets session `id` of `name` (not a newer one that took over). Says whether it was there.
    fn close(&self, name: &LearnerName, id: u64) -> bool {
        let Ok(mut live) = self.live.lock() else {
            return false;
        };
        if live.get(name).is_some_and(|(i, _)| *i == id) {
            live.remove(name);
            return true;
        }
        false
    }
}

/// Starts the SSH server on `core.config.ssh` with the classroom's runner.
pub async fn start(
    core: Arc<Core>,
    runner: Arc<dyn Runner>,
    stop: watch::Receiver<bool>,
) -> Result<Listening, SshError> {
    let key = host_key(&core.folder.host_key())?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let addr = core.config.ssh;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SshError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| SshError::Bind { addr, source })?;
    let config = Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-dicomlab-classroom".into()),
        methods: MethodSet::from(&[MethodKind::Password][..]),
        // The gate's own growing wait comes on top.
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        max_auth_attempts: 6,
        // Dead connections are found by keepalives; idle learners by the session's own timer.
        inactivity_timeout: Some(core.config.idle + Duration::from_secs(300)),
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        ..russh::server::Config::default()
    });
    tokio::spawn(accept(core, runner, listener, config, stop));
    Ok(Listening {
        addr: bound,
        fingerprint,
    })
}

async fn accept(
    core: Arc<Core>,
    runner: Arc<dyn Runner>,
    listener: tokio::net::TcpListener,
    config: Arc<russh::server::Config>,
    mut stop: watch::Receiver<bool>,
) {
    let sessions = core.ssh_sessions.clone();
    let unauthenticated = Arc::new(tokio::sync::Semaphore::new(MAX_UNAUTHENTICATED));
    let per_address = dicomlab_practice::server::ClientCounts::default();
    // For a connection's whole life: the sessions and those logging in, and one address's share of
    // them (a room behind one NAT address holds every session) — however a connection behaves after
    // its login, the listener's files stay bounded.
    let whole_life = core.config.max_sessions + MAX_UNAUTHENTICATED;
    let alive = Arc::new(tokio::sync::Semaphore::new(whole_life));
    let alive_per_address = dicomlab_practice::server::ClientCounts::default();
    let per_address_life = core
        .config
        .max_sessions
        .max(MAX_UNAUTHENTICATED_PER_ADDRESS);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (socket, peer) = tokio::select! {
            () = super::stopped(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("ssh accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(alive_permit) = alive.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "ssh: {whole_life} connections open; closed");
            continue;
        };
        let Some(alive_slot) = dicomlab_practice::server::ClientSlot::take(
            &alive_per_address,
            super::gate::client(peer.ip()),
            per_address_life,
        ) else {
            tracing::warn!(%peer, "ssh: {per_address_life} connections open from this address; closed");
            continue;
        };
        let Ok(permit) = unauthenticated.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "ssh: too many connections logging in at once; closed");
            continue;
        };
        let Some(client) = dicomlab_practice::server::ClientSlot::take(
            &per_address,
            super::gate::client(peer.ip()),
            MAX_UNAUTHENTICATED_PER_ADDRESS,
        ) else {
            tracing::warn!(%peer, "ssh: too many connections logging in at once from this address; closed");
            continue;
        };
        let slot = LoginSlot {
            _overall: permit,
            _client: client,
        };
        let authenticated = Arc::new(AtomicBool::new(false));
        let shell = Arc::new(AtomicBool::new(false));
        let handler = Connection {
            core: core.clone(),
            runner: runner.clone(),
            sessions: sessions.clone(),
            peer,
            user: None,
            issued: None,
            login_code: None,
            refusal: None,
            authenticated: authenticated.clone(),
            shell: shell.clone(),
            login_permit: Some(slot),
            channel: None,
            size: (80, 24),
            term: String::new(),
            input: None,
            last_input: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
        };
        let config = config.clone();
        let mut stop = stop.clone();
        let login_time = core.config.login_time;
        connections.spawn(async move {
            let _alive = (alive_permit, alive_slot);
            // Log in within `login_time` (the key exchange counts), then ask for a terminal within
            // as long: a connection that does neither holds a slot (and a task) for nothing.
            let deadline = tokio::time::Instant::now() + login_time;
            let running = match tokio::time::timeout_at(
                deadline,
                russh::server::run_stream(config, socket, handler),
            )
            .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "ssh connection failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "ssh: no greeting within {} s; closed", login_time.as_secs());
                    return;
                }
            };
            let handle = running.handle();
            let login = tokio::time::sleep_until(deadline);
            tokio::pin!(login);
            let mut running = std::pin::pin!(running);
            let mut stage = Stage::LoggingIn;
            loop {
                tokio::select! {
                    r = &mut running => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, "ssh connection ended: {e}");
                        }
                        return;
                    }
                    () = &mut login, if stage != Stage::Working => {
                        let why = match stage {
                            _ if shell.load(Ordering::Acquire) => None,
                            Stage::LoggingIn if authenticated.load(Ordering::Acquire) => {
                                stage = Stage::OpeningTerminal;
                                login.as_mut().reset(tokio::time::Instant::now() + login_time);
                                continue;
                            }
                            Stage::LoggingIn => Some("no login in time"),
                            _ => Some("no terminal asked for in time"),
                        };
                        let Some(why) = why else {
                            stage = Stage::Working;
                            continue;
                        };
                        tracing::info!(%peer, "ssh: {why} ({} s); closed", login_time.as_secs());
                        let _ = handle.disconnect(russh::Disconnect::ByApplication, why.into(), String::new()).await;
                        return;
                    }
                    () = super::stopped(&mut stop) => {
                        let _ = handle.disconnect(russh::Disconnect::ByApplication, "the classroom is closing".into(), String::new()).await;
                        return;
                    }
                }
            }
        });
    }
    connections.abort_all();
}

/// Where a connection is, for its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    LoggingIn,
    OpeningTerminal,
    Working,
}

/// A connection's place among those logging in: overall (the semaphore) and from its client.
struct LoginSlot {
    _overall: tokio::sync::OwnedSemaphorePermit,
    _client: dicomlab_practice::server::ClientSlot,
}

/// One SSH connection.
struct Connection {
    core: Arc<Core>,
    runner: Arc<dyn Runner>,
    sessions: Arc<Sessions>,
    peer: SocketAddr,
    /// The learner, once logged in with the right code.
    user: Option<LearnerName>,
    /// Their personal code, when it was given at this login (said even when the lab does not open).
    issued: Option<dicomlab_dicomweb::Secret>,
    /// Their personal code when they logged in (a reset since then ends the connection's welcome).
    login_code: Option<dicomlab_dicomweb::Secret>,
    /// Logged in with the right code but refused (an invalid name): said in the terminal.
    refusal: Option<String>,
    authenticated: Arc<AtomicBool>,
    /// A terminal was asked for (the lab, or the reason it does not open, runs on it).
    shell: Arc<AtomicBool>,
    /// Held until the login (bounds connections that have not logged in).
    login_permit: Option<LoginSlot>,
    channel: Option<ChannelId>,
    size: (u16, u16),
    term: String,
    /// The program's input, once it runs.
    input: Option<Input>,
    /// Seconds since `started` of the last key.
    last_input: Arc<AtomicU64>,
    started: Instant,
}

/// The running program's input side.
struct Input {
    parser: InputParser,
    tx: mpsc::Sender<io::Result<Event>>,
    /// The newest size not taken by the program yet (packed; 0: none). A resize is queued only when
    /// none waits: a flood of window changes costs one redraw, at the newest size.
    resize: Arc<AtomicU32>,
    /// The notice of the idle close was shown: the next key redraws the screen.
    noticed: Arc<AtomicBool>,
}

fn clamp_size(cols: u32, rows: u32) -> (u16, u16) {
    let c = cols.clamp(1, MAX_COLUMNS) as u16;
    let r = rows.clamp(1, MAX_ROWS) as u16;
    (c, r)
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        // Never the word sshpass looks for: it would take the banner for the prompt.
        Ok(Some(
            "dicomlab classroom: your first login takes the class code; every login after it, the personal code the lab then shows you.\r\n"
                .into(),
        ))
    }

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::Password][..])),
            partial_success: false,
        })
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        match self.core.ssh_login(self.peer.ip(), user, password).await {
            SshLogin::Wrong(wait) => {
                tokio::time::sleep(wait).await;
                return Ok(Auth::Reject {
                    proceed_with_methods: Some(MethodSet::from(&[MethodKind::Password][..])),
                    partial_success: false,
                });
            }
            SshLogin::Learner { name, issued } => {
                // The code this login was let in with: a reset before the terminal opens refuses it.
                self.login_code = self.core.personal_code(&name);
                self.user = Some(name);
                self.issued = issued;
            }
            SshLogin::BadName(e) => {
                self.refusal = Some(format!(
                    "The name '{}' cannot be used: {e}. Connect again as ssh -p {} <name>@<host>, e.g. ada or grace-h.",
                    dicomlab_dicom::text::visible(&user.chars().take(40).collect::<String>()),
                    self.core.ssh_port()
                ));
            }
            SshLogin::Told(why) => self.refusal = Some(why),
        }
        self.authenticated.store(true, Ordering::Release);
        self.login_permit = None;
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channel.is_some() {
            // One terminal per connection.
            return Ok(());
        }
        self.channel = Some(channel.id());
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.size = clamp_size(col_width, row_height);
        self.term = term.chars().take(64).collect();
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channel != Some(channel) || self.input.is_some() {
            session.channel_failure(channel)?;
            return Ok(());
        }
        session.channel_success(channel)?;
        self.shell.store(true, Ordering::Release);
        let handle = session.handle();
        if let Some(why) = self.refusal.take() {
            tokio::spawn(refuse(handle, channel, why));
            return Ok(());
        }
        let Some(name) = self.user.clone() else {
            return Ok(());
        };
        let now = self.core.personal_code(&name);
        if now.as_ref().map(|c| c.expose()) != self.login_code.as_ref().map(|c| c.expose()) {
            tracing::info!(learner = %name, "ssh: the code was reset after this login; refused");
            tokio::spawn(refuse(
                handle,
                channel,
                "Your personal code was reset after you logged in: log in again with the new one (the instructor reads it out)."
                    .to_string(),
            ));
            return Ok(());
        }
        let max = self.core.config.max_sessions;
        let Some((id, kicked)) = self.sessions.open(&name, max) else {
            tracing::info!(learner = %name, "ssh: session limit reached");
            tokio::spawn(refuse(
                handle,
                channel,
                format!(
                    "The classroom has its limit of {max} sessions open. Try again in a few minutes, or ask the instructor.{}",
                    code_said(self.issued.as_ref())
                ),
            ));
            return Ok(());
        };
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let noticed = Arc::new(AtomicBool::new(false));
        let resize = Arc::new(AtomicU32::new(0));
        self.input = Some(Input {
            parser: InputParser::default(),
            tx: tx.clone(),
            resize: resize.clone(),
            noticed: noticed.clone(),
        });
        self.last_input
            .store(self.started.elapsed().as_secs(), Ordering::Relaxed);
        let live = LiveSessionTask {
            core: self.core.clone(),
            runner: self.runner.clone(),
            sessions: self.sessions.clone(),
            name,
            new_code: self.issued.take(),
            id,
            channel,
            handle,
            size: self.size,
            term: self.term.clone(),
            events: rx,
            resize,
            kicked,
            last_input: self.last_input.clone(),
            started: self.started,
            noticed,
        };
        tokio::spawn(live.run());
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(peer = %self.peer, "ssh: exec refused");
        session.data(
            channel,
            Bytes::from(format!(
                "dicomlab classroom: no commands here. Connect without a command to open the lab.{}\r\n",
                code_said(self.issued.as_ref()).replace('\n', "\r\n")
            )),
        )?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(peer = %self.peer, subsystem = %dicomlab_dicom::text::visible(&name.chars().take(32).collect::<String>()), "ssh: subsystem refused");
        session.channel_failure(channel)?;
        session.close(channel)?;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host: &str,
        _port: u32,
        _originator: &str,
        _originator_port: u32,
        _reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(peer = %self.peer, "ssh: port forwarding refused");
        // Dropping the reply refuses the channel.
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        tracing::info!(peer = %self.peer, "ssh: remote forwarding refused");
        Ok(false)
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channel != Some(channel) {
            return Ok(());
        }
        let Some(input) = &mut self.input else {
            return Ok(());
        };
        self.last_input
            .store(self.started.elapsed().as_secs(), Ordering::Relaxed);
        if input.noticed.swap(false, Ordering::AcqRel) {
            // The idle notice was drawn over the screen: redraw it whole.
            let (c, r) = self.size;
            let _ = input.tx.try_send(Ok(Event::Resize(c, r)));
        }
        for e in input.parser.feed(data) {
            if input.tx.try_send(Ok(e)).is_err() {
                tracing::debug!("ssh: input queue full; a key was dropped");
            }
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channel != Some(channel) {
            return Ok(());
        }
        self.size = clamp_size(col_width, row_height);
        if let Some(input) = &self.input
            && input.resize.swap(pack(self.size), Ordering::AcqRel) == 0
            && input
                .tx
                .try_send(Ok(Event::Resize(self.size.0, self.size.1)))
                .is_err()
        {
            // Not queued: the next window change tries again.
            input.resize.store(0, Ordering::Release);
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channel_close(channel, session).await
    }

    /// The program's input ends: it stops.
    async fn channel_close(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.input = None;
        Ok(())
    }
}

/// A learner's program, running on their channel.
struct LiveSessionTask {
    core: Arc<Core>,
    runner: Arc<dyn Runner>,
    sessions: Arc<Sessions>,
    name: LearnerName,
    /// Their personal code, given at this login.
    new_code: Option<dicomlab_dicomweb::Secret>,
    id: u64,
    channel: ChannelId,
    handle: russh::server::Handle,
    size: (u16, u16),
    term: String,
    events: mpsc::Receiver<io::Result<Event>>,
    /// The newest window size not taken yet (see [`Input::resize`]).
    resize: Arc<AtomicU32>,
    kicked: oneshot::Receiver<Kick>,
    last_input: Arc<AtomicU64>,
    started: Instant,
    noticed: Arc<AtomicBool>,
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
    async fn run(self) {
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
            mut kicked,
            last_input,
            started,
            noticed,
        } = self;
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Bytes>();
        let queued = Arc::new(AtomicUsize::new(0));
        // The writer: one chunk at a time to the channel (which waits for the client's window).
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
        core.session(
            &name,
            Some(LiveSession {
                id,
                since: super::now(),
            }),
        );
        // However this task ends — a panic in the program included — the session is forgotten.
        let _forget = Forget {
            core: core.clone(),
            sessions: sessions.clone(),
            name: name.clone(),
            id,
        };
        tracing::info!(learner = %name, id, "ssh session opened");
        let learner = Learner {
            env,
            progress: core.folder.verdicts(&name),
            old_progress: core.folder.progress(&name),
            room: std::sync::Arc::new(super::RoomOf {
                core: core.clone(),
                name: name.clone(),
            }),
            lab: core.lab.clone(),
            log: core.folder.log_file(),
            personal_code: core.personal_code(&name),
            new_code: new_code.is_some(),
        };
        // The program's input ends when the connection's does, or when this task says so (idle,
        // takeover, a client that stopped reading).
        let (stop_tx, stop_rx) = watch::channel(false);
        let events = futures_util::stream::unfold(
            (events, stop_rx, resize),
            |(mut rx, mut stop, resize)| async move {
                let e = tokio::select! {
                    e = rx.recv() => e?,
                    () = super::stopped(&mut stop) => return None,
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
        );
        let program = runner.run(
            learner,
            Terminal {
                events: Box::pin(events),
                out,
                size,
                term,
            },
        );
        let idle_limit = core.config.idle;
        let warning = core.config.idle_warning.min(idle_limit);
        let warn_at = idle_limit.saturating_sub(warning);
        let mut ending = None;
        let mut program = std::pin::pin!(program);
        let mut watch = tokio::time::interval(
            (warning / 3).clamp(Duration::from_millis(200), Duration::from_secs(15)),
        );
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                r = &mut program => break r,
                why = &mut kicked, if ending.is_none() => {
                    ending = Some(match why {
                        Ok(Kick::Reset) => Ending::Reset,
                        _ => Ending::TakenOver,
                    });
                    let _ = stop_tx.send(true);
                }
                _ = watch.tick(), if ending.is_none() => {
                    let idle = Duration::from_secs(
                        started.elapsed().as_secs().saturating_sub(last_input.load(Ordering::Relaxed)),
                    );
                    if broken.load(Ordering::Acquire) {
                        ending = Some(Ending::Failed("the terminal stopped reading".into()));
                        let _ = stop_tx.send(true);
                    } else if idle >= idle_limit {
                        ending = Some(Ending::Idle);
                        let _ = stop_tx.send(true);
                    } else if idle >= warn_at && !noticed.load(Ordering::Acquire) {
                        noticed.store(true, Ordering::Release);
                        let _ = notice(&mut notices, &format!(
                            " No key for {}: this session closes in {}. Press any key to stay. ",
                            span(warn_at),
                            span(warning)
                        ));
                    }
                }
            }
        };
        let ending = match (ending, result) {
            (Some(e), _) => e,
            (None, Ok(())) => Ending::Quit,
            (None, Err(e)) => Ending::Failed(e),
        };
        let said = match &ending {
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
        };
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
fn code_said(issued: Option<&dicomlab_dicomweb::Secret>) -> String {
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
async fn refuse(handle: russh::server::Handle, channel: ChannelId, text: String) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_key_is_made_once_and_private() {
        let t = tempfile::tempdir().expect("tmp");
        let path = t.path().join("host_key");
        let a = host_key(&path).expect("made");
        let b = host_key(&path).expect("read");
        assert_eq!(
            a.fingerprint(HashAlg::Sha256).to_string(),
            b.fingerprint(HashAlg::Sha256).to_string()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn one_session_per_learner_and_a_limit() {
        let s = Sessions::default();
        let ada = LearnerName::exact("ada").expect("n");
        let bob = LearnerName::exact("bob").expect("n");
        let (first, mut kicked) = s.open(&ada, 1).expect("room");
        assert!(s.open(&bob, 1).is_none(), "full");
        let (second, _k) = s.open(&ada, 1).expect("a takeover needs no room");
        assert!(kicked.try_recv().is_ok(), "the old one is told");
        assert!(!s.close(&ada, first), "the old one does not close the new");
        assert!(s.close(&ada, second));
        assert!(s.open(&bob, 1).is_some());
    }
}
