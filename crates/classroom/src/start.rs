//! A running classroom ([`Classroom`]): its start-up — the folder and its room, the listeners, every
//! learner's service, the HTTP front, the checks, the SSH server — and its shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ClassroomConfig;
use crate::error::ClassroomError;
use crate::folder::{Folder, LearnerEntry, LearnerSource, RoomFile, now};
use crate::front;
use crate::gate;
use crate::ssh;
use crate::state::Core;
use crate::stop::stopped;
use crate::verdicts;
use dicomlab_lab::Lab;
use dicomlab_practice::server::ConnectionLimits;

/// A running classroom.
pub struct Classroom {
    pub core: Arc<Core>,
    /// The HTTP front's address.
    pub http_addr: SocketAddr,
    /// The loopback listener's address (the learners' TUIs and the checks).
    pub internal_addr: SocketAddr,
    /// The SSH server's address and host key fingerprint.
    pub ssh: ssh::Listening,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
    /// The folder's `classroom.lock`, held while the classroom runs.
    _running: std::fs::File,
}

impl Classroom {
    /// Opens (or makes) the classroom folder, starts every learner's service, the HTTP front, the
    /// checks and the SSH server.
    pub async fn start(
        config: ClassroomConfig,
        lab: Lab,
        runner: Arc<dyn ssh::Runner>,
    ) -> Result<Classroom, ClassroomError> {
        let folder = Folder::create(&config.dir)?;
        let running = folder.lock_running()?;
        let room = open_room(&folder, &config, &lab)?;
        let (public, http_addr) = bind(config.http, config.http).await?;
        let (internal, internal_addr) =
            bind(SocketAddr::from(([127, 0, 0, 1], 0)), config.http).await?;
        let learners = folder.learners()?;
        let public_origin = public_origin(&config, http_addr);
        let core = Arc::new(Core::new(
            lab,
            config,
            folder,
            room.code,
            learners.clone(),
            internal_addr,
            public_origin,
        ));
        // A learner's check runs as soon as their request's audit rows are written.
        let room = Arc::downgrade(&core);
        core.tenants.on_rows_landed(Arc::new(move |name| {
            if let Some(core) = room.upgrade() {
                core.rows_landed(name);
            }
        }));
        reopen_services(&core, &learners).await;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        {
            // Until they are made, a learner's TUI makes its own (as it does outside a room).
            let core = core.clone();
            tasks.spawn(async move {
                let made = tokio::task::spawn_blocking(move || core.make_samples()).await;
                if let Ok(Err(e)) = made {
                    tracing::warn!("the room's sample files: {e}");
                }
            });
        }
        serve_fronts(&mut tasks, &core, public, internal, &stop_rx);
        tasks.spawn(verdicts::run(core.clone(), stop_rx.clone()));
        let ssh = ssh::start(core.clone(), runner, stop_rx.clone()).await?;
        core.set_ssh_port(ssh.addr.port());
        for l in &learners {
            core.touched(&l.name);
        }
        tracing::info!(%http_addr, ssh = %ssh.addr, learners = learners.len(), "classroom open");
        Ok(Classroom {
            core,
            http_addr,
            internal_addr,
            ssh,
            stop,
            tasks,
            _running: running,
        })
    }

    /// Closes every session, stops the front and the checks, and writes what the services hold.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let grace = Duration::from_secs(8);
        let _ = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
        self.core.tenants.flush().await;
        tracing::info!("classroom closed");
    }
}

/// The folder's room: the one kept (its class code replaced by the configured one, if any), or a new
/// one; a room of another lab is refused.
fn open_room(
    folder: &Folder,
    config: &ClassroomConfig,
    lab: &Lab,
) -> Result<RoomFile, ClassroomError> {
    let room = match folder.room()? {
        Some(r) if r.lab != lab.id => {
            return Err(ClassroomError::OtherLab {
                kept: r.lab,
                given: lab.id.clone(),
            });
        }
        Some(mut r) => {
            if let Some(code) = config.code.as_ref().filter(|c| c.expose() != r.code) {
                r.code = code.expose().to_string();
                folder.save_room(&r)?;
            }
            r
        }
        None => {
            let r = RoomFile {
                version: 1,
                code: config
                    .code
                    .as_ref()
                    .map_or_else(gate::new_code, |c| c.expose().to_string()),
                created: Some(now()),
                lab: lab.id.clone(),
            };
            folder.save_room(&r)?;
            r
        }
    };
    Ok(room)
}

/// Listens on `addr` (an error names `said`, the address asked for), and the address it got.
async fn bind(
    addr: SocketAddr,
    said: SocketAddr,
) -> Result<(TcpListener, SocketAddr), ClassroomError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ClassroomError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ClassroomError::Bind { addr: said, source })?;
    Ok((listener, bound))
}

/// Every learner's service runs again (their Postman keeps working after a restart). One that
/// cannot (its folder damaged, say) keeps nobody else out: it is logged, and said to the learner
/// when they next log in (their login opens it again).
async fn reopen_services(core: &Core, learners: &[LearnerEntry]) {
    for l in learners
        .iter()
        .filter(|l| l.source == LearnerSource::Service)
    {
        if let Err(e) = core.tenants.open(&l.name).await {
            tracing::error!(learner = %l.name, "cannot open the learner's service: {e}");
        }
    }
}

/// Serves the HTTP front on the public port and on the loopback listener, until `stop`.
fn serve_fronts(
    tasks: &mut tokio::task::JoinSet<()>,
    core: &Arc<Core>,
    public: TcpListener,
    internal: TcpListener,
    stop: &watch::Receiver<bool>,
) {
    let front_limits = ConnectionLimits {
        max_connections: 512,
        ..ConnectionLimits::default()
    };
    for (listener, exposure) in [
        (public, front::Exposure::Public),
        (internal, front::Exposure::Internal),
    ] {
        // On the public port one client holds at most a quarter of the connections (a room
        // behind one NAT address shares them; Postman and Python hold a few each). The loopback
        // listener serves the room's own TUI sessions and checks, a few connections per learner
        // each (a store sends its files at once): it grows with the room, or a full room that
        // stores together is refused connections (100 learners: 347 refusals at 512).
        let front_limits = match exposure {
            front::Exposure::Public => ConnectionLimits {
                max_per_client: Some(front_limits.max_connections / 4),
                ..front_limits
            },
            front::Exposure::Internal => ConnectionLimits {
                max_connections: front_limits
                    .max_connections
                    .max(16 * (core.config.max_sessions + core.config.max_learners)),
                ..front_limits
            },
        };
        let app = front::router(core.clone(), exposure);
        let mut stop = stop.clone();
        tasks.spawn(dicomlab_practice::server::serve(
            listener,
            app,
            front_limits,
            async move { stopped(&mut stop).await },
        ));
    }
}

/// How learners reach the front: the configured URL, else `http://<host name>:<port>` (or the
/// address itself when it names one interface).
fn public_origin(config: &ClassroomConfig, bound: SocketAddr) -> String {
    if let Some(u) = &config.public_url {
        return u.trim().trim_end_matches('/').to_string();
    }
    if !bound.ip().is_unspecified() {
        return format!("http://{bound}");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
        .unwrap_or_else(|| "localhost".into());
    format!("http://{host}:{}", bound.port())
}
