//! The lab over SSH: `ssh -p 2222 <name>@<host>` gives the learner a terminal program ([`Runner`]: the
//! lab's TUI) on their own service, with their saved progress.
//!
//! - Password authentication only. A new name logs in with the class code and is given a personal
//!   code at once (shown before the lab); from then on only that personal code logs in as them, so
//!   another learner who knows the class code cannot take their session, service or secret
//!   ([`crate::Core::ssh_login`]). Codes are checked through `gate.rs` (a wrong one waits
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
//!
//! This file holds the server: its limits on connections, the deadlines of a login, the login itself
//! and the channel requests (`Handler`). `ssh/program.rs`: what the program is given;
//! `ssh/session.rs`: a session's life once its terminal opens; `ssh/sessions.rs`: one session per
//! learner and the session limit; `ssh/host_key.rs`: the host key.

pub(crate) mod host_key;
pub(crate) mod program;
mod session;
pub(crate) mod sessions;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossterm::event::Event;
use russh::keys::HashAlg;
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Pty};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

pub use self::host_key::SshError;
use self::host_key::host_key;
pub use self::program::{ChannelWriter, Learner, RunFuture, Runner, Terminal};
use self::session::{LiveSessionTask, code_said, refuse};
use self::sessions::Sessions;
use crate::channel::pack;
pub use crate::channel::{InputParser, MAX_QUEUED_OUTPUT};
use crate::config::ClassroomConfig;
use crate::gate;
use crate::names::LearnerName;
use crate::state::{Core, SshLogin};
use crate::stop::stopped;
use dicomlab_practice::server::{ClientCounts, ClientSlot};

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
/// How often a connection waiting for a place among those logging in looks again.
const LOGIN_SLOT_POLL: Duration = Duration::from_millis(20);

/// The SSH server, listening.
#[derive(Debug, Clone)]
pub struct Listening {
    pub addr: SocketAddr,
    /// `SHA256:…`, as `ssh` shows it on first connection.
    pub fingerprint: String,
}

/// Starts the SSH server on `core.config.ssh` with the classroom's runner.
pub(crate) async fn start(
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

/// Takes connections until `stop`, each within the limits ([`Admission`]), each served in a task of
/// its own.
async fn accept(
    core: Arc<Core>,
    runner: Arc<dyn Runner>,
    listener: tokio::net::TcpListener,
    config: Arc<russh::server::Config>,
    mut stop: watch::Receiver<bool>,
) {
    let admission = Arc::new(Admission::new(&core.config));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (socket, peer) = tokio::select! {
            () = stopped(&mut stop) => break,
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
        let Some(alive) = admission.admit(peer) else {
            continue;
        };
        let (admission, core, runner, config, stop) = (
            admission.clone(),
            core.clone(),
            runner.clone(),
            config.clone(),
            stop.clone(),
        );
        connections.spawn(async move {
            // A room that starts at once (everyone pressing Enter together, from behind one NAT
            // address) waits a moment for a place among those logging in instead of being closed.
            let Some(slot) = admission.login_slot(peer, core.config.login_time).await else {
                return;
            };
            let handler = Connection::new(&core, &runner, peer, slot);
            serve(config, socket, handler, alive, core.config.login_time, stop).await;
        });
    }
    connections.abort_all();
}

/// What bounds the connections: those logging in, and for a connection's whole life the sessions and
/// those logging in, each overall and from one address (a room behind one NAT address holds every
/// session) — however a connection behaves after its login, the listener's files stay bounded.
struct Admission {
    unauthenticated: Arc<Semaphore>,
    per_address: ClientCounts,
    whole_life: usize,
    alive: Arc<Semaphore>,
    alive_per_address: ClientCounts,
    per_address_life: usize,
}

/// A connection's place for its whole life.
type Alive = (OwnedSemaphorePermit, ClientSlot);

impl Admission {
    fn new(config: &ClassroomConfig) -> Admission {
        let whole_life = config.max_sessions + MAX_UNAUTHENTICATED;
        Admission {
            unauthenticated: Arc::new(Semaphore::new(MAX_UNAUTHENTICATED)),
            per_address: ClientCounts::default(),
            whole_life,
            alive: Arc::new(Semaphore::new(whole_life)),
            alive_per_address: ClientCounts::default(),
            per_address_life: config.max_sessions.max(MAX_UNAUTHENTICATED_PER_ADDRESS),
        }
    }

    /// A new connection from `peer`: its place for its whole life, or `None` (logged) when a limit is
    /// reached.
    fn admit(&self, peer: SocketAddr) -> Option<Alive> {
        let whole_life = self.whole_life;
        let per_address_life = self.per_address_life;
        let Ok(alive_permit) = self.alive.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "ssh: {whole_life} connections open; closed");
            return None;
        };
        let Some(alive_slot) = ClientSlot::take(
            &self.alive_per_address,
            gate::client(peer.ip()),
            per_address_life,
        ) else {
            tracing::warn!(%peer, "ssh: {per_address_life} connections open from this address; closed");
            return None;
        };
        Some((alive_permit, alive_slot))
    }

    /// A place among the connections logging in (overall, and from `peer`'s address), waited for
    /// until `wait` has passed (then `None`, logged). The connection already holds its place for its
    /// whole life, so those waiting here are bounded too.
    async fn login_slot(&self, peer: SocketAddr, wait: Duration) -> Option<LoginSlot> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(slot) = self.try_login_slot(peer) {
                return Some(slot);
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(%peer, "ssh: too many connections logging in at once (from this address or overall) for {} s; closed", wait.as_secs());
                return None;
            }
            tokio::time::sleep(LOGIN_SLOT_POLL).await;
        }
    }

    fn try_login_slot(&self, peer: SocketAddr) -> Option<LoginSlot> {
        let permit = self.unauthenticated.clone().try_acquire_owned().ok()?;
        let client = ClientSlot::take(
            &self.per_address,
            gate::client(peer.ip()),
            MAX_UNAUTHENTICATED_PER_ADDRESS,
        )?;
        Some(LoginSlot {
            _overall: permit,
            _client: client,
        })
    }
}

/// Serves one connection: it logs in within `login_time` (the key exchange counts), then asks for a
/// terminal within as long — a connection that does neither holds a slot (and a task) for nothing.
async fn serve(
    config: Arc<russh::server::Config>,
    socket: tokio::net::TcpStream,
    handler: Connection,
    alive: Alive,
    login_time: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let _alive = alive;
    let peer = handler.peer;
    let authenticated = handler.authenticated.clone();
    let shell = handler.shell.clone();
    let deadline = tokio::time::Instant::now() + login_time;
    let running =
        match tokio::time::timeout_at(deadline, russh::server::run_stream(config, socket, handler))
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
                match stage.at_deadline(shell.load(Ordering::Acquire), authenticated.load(Ordering::Acquire)) {
                    Ok(Stage::OpeningTerminal) => {
                        stage = Stage::OpeningTerminal;
                        login.as_mut().reset(tokio::time::Instant::now() + login_time);
                    }
                    Ok(next) => stage = next,
                    Err(why) => {
                        tracing::info!(%peer, "ssh: {why} ({} s); closed", login_time.as_secs());
                        let _ = handle.disconnect(russh::Disconnect::ByApplication, why.into(), String::new()).await;
                        return;
                    }
                }
            }
            () = stopped(&mut stop) => {
                let _ = handle.disconnect(russh::Disconnect::ByApplication, "the classroom is closing".into(), String::new()).await;
                return;
            }
        }
    }
}

/// Where a connection is, for its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    LoggingIn,
    OpeningTerminal,
    Working,
}

impl Stage {
    /// At a deadline: the connection's next stage (`OpeningTerminal`: it just logged in, and has as
    /// long again to ask for a terminal), or why it is closed.
    fn at_deadline(self, shell: bool, authenticated: bool) -> Result<Stage, &'static str> {
        match self {
            _ if shell => Ok(Stage::Working),
            Stage::LoggingIn if authenticated => Ok(Stage::OpeningTerminal),
            Stage::LoggingIn => Err("no login in time"),
            _ => Err("no terminal asked for in time"),
        }
    }
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

impl Connection {
    /// A connection from `peer`, holding its place among those logging in until it logs in.
    fn new(core: &Arc<Core>, runner: &Arc<dyn Runner>, peer: SocketAddr, slot: LoginSlot) -> Self {
        Connection {
            core: core.clone(),
            runner: runner.clone(),
            sessions: core.ssh_sessions.clone(),
            peer,
            user: None,
            issued: None,
            login_code: None,
            refusal: None,
            authenticated: Arc::new(AtomicBool::new(false)),
            shell: Arc::new(AtomicBool::new(false)),
            login_permit: Some(slot),
            channel: None,
            size: (80, 24),
            term: String::new(),
            input: None,
            last_input: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
        }
    }
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
