//! The practice service: a local DICOM service that answers like Azure Health Data Services' DICOM service
//! (docs/contract.md), so the whole lab runs offline and the tests run against a real server.
//! `dicomlab serve` runs it; [`start`] runs it in-process on a loopback port (the TUI and the tests).

mod accept;
mod admin_guard;
mod audit;
pub mod auth;
mod blobs;
mod budget;
mod changefeed;
pub mod cors;
mod datadir;
pub use datadir::Ephemeral;
pub mod db;
mod delete;
mod eqt;
mod error;
pub mod identity;
pub mod index;
mod kql;
mod minimum;
mod multipart;
pub mod qido;
mod quota;
pub mod server;
mod stow;
mod tags;
pub mod transcode;
mod uids;
mod wado;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;

use self::auth::Auth;
use self::blobs::Blobs;
use self::db::{Db, DbError};
use self::error::{ApiError, ApiResult};

/// How to run the practice service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Data directory; `None` = a temporary one removed when the service stops.
    pub data_dir: Option<PathBuf>,
    /// `false` = `--no-auth`: no token needed, every data action allowed.
    pub auth: bool,
    /// Start with "DICOM Data Owner" already granted to the lab client (tests, and `serve --grant-owner`).
    /// By default the lab client has no role, so exercise 3 "assign the role" is real.
    pub grant_owner: bool,
    /// Roles the lab client holds while this service runs: what the lab file's `[practice] roles` says
    /// the practice service starts with (a lab without a role step). Never kept in the index: the next
    /// start, for another lab, begins without them.
    pub lab_roles: Vec<auth::Role>,
    /// Lifetime of issued tokens (Azure: about 60 minutes).
    pub token_lifetime: Duration,
    /// A re-index takes at least this long, so learners can watch the operation run (Azure's take
    /// seconds to minutes). Tests set it to zero.
    pub reindex_min_duration: Duration,
    /// Largest accepted request body; larger gets 413 (docs/contract.md §3.2: 2 GiB).
    pub max_request_bytes: u64,
    /// Bytes the stored instances may take in all (`None`: no limit, as Azure). A classroom gives each
    /// learner's service one, so that one learner cannot fill the instructor's disk; a store beyond it
    /// is refused with `507 Insufficient Storage` (or, for an instance that no longer fits, failure
    /// reason 272 with the reason in its comment).
    pub max_stored_bytes: Option<u64>,
    /// How many instances are rendered or cut into frames at once; 0 = one per core. The TUI's embedded
    /// service uses 1: a classroom laptop keeps the memory.
    pub heavy_jobs: usize,
    /// Audit-log rows become visible to queries this long after they are written (Azure delivers
    /// resource logs minutes late; 0 = at once).
    pub audit_delay: Duration,
    /// Whether the logs show the practice service's extra `UserAgent` column (Azure's keep none).
    pub audit_user_agent: bool,
    /// Most rows the audit log keeps per table (the oldest go first).
    pub audit_rows: i64,
    /// Bytes that uploads kept in memory and validations may hold at once, across every request: a
    /// quarter for parts kept in memory while they arrive, the rest for validating headers.
    pub memory_budget: u64,
    /// Connections, timeouts and the shutdown deadline.
    pub limits: server::ConnectionLimits,
    /// A CORS setting that replaces the one kept with the data (`serve --cors-origin …`); `None`
    /// keeps the kept one.
    pub cors: Option<cors::CorsConfig>,
    /// Limits shared with the other services of this process (the classroom's); `None`: its own,
    /// from `heavy_jobs` and `memory_budget`.
    pub shared_limits: Option<SharedLimits>,
}

/// What several services in one process share, so that their sum is bounded rather than each one:
/// renderings and frame extractions at once, and the two memory budgets.
#[derive(Debug, Clone)]
pub struct SharedLimits {
    pub heavy: Arc<tokio::sync::Semaphore>,
    pub receive_memory: budget::Budget,
    pub validation_memory: budget::Budget,
}

impl SharedLimits {
    /// `heavy_jobs` at once (at least one), and `memory_budget` bytes split as one service splits it.
    pub fn new(heavy_jobs: usize, memory_budget: u64) -> Self {
        Self {
            heavy: Arc::new(tokio::sync::Semaphore::new(heavy_jobs.max(1))),
            receive_memory: budget::Budget::new(memory_budget / 4),
            validation_memory: budget::Budget::new(memory_budget - memory_budget / 4),
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            auth: true,
            grant_owner: false,
            lab_roles: Vec::new(),
            token_lifetime: Duration::from_secs(3599),
            reindex_min_duration: Duration::from_secs(2),
            max_request_bytes: 2 * 1024 * 1024 * 1024,
            max_stored_bytes: None,
            heavy_jobs: 0,
            audit_delay: Duration::ZERO,
            audit_user_agent: true,
            audit_rows: 200_000,
            memory_budget: 256 * 1024 * 1024,
            limits: server::ConnectionLimits::default(),
            cors: None,
            shared_limits: None,
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    DataFolder(#[from] datadir::DataDirError),
    #[error("cannot use the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Cors(#[from] cors::CorsLoadError),
    #[error("the practice tenant's directory could not be opened: {0}")]
    Identity(#[from] identity::IdentityError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The running service's state, shared by every handler.
pub struct Service {
    pub db: Db,
    pub blobs: Blobs,
    pub auth: Auth,
    pub config: ServiceConfig,
    /// `http://127.0.0.1:PORT`, used when a request has no Host header.
    pub default_origin: String,
    /// Serialises the start of re-index operations (one at a time, docs/contract.md §8.3).
    pub reindex_gate: tokio::sync::Mutex<()>,
    /// Bounds the CPU of rendering and frame extraction (`ServiceConfig::heavy_jobs`, or shared).
    pub heavy: Arc<tokio::sync::Semaphore>,
    /// Who did what: the audit and sign-in logs, read through the Log Analytics-shaped route.
    pub audit: audit::AuditLog,
    /// Bytes of uploads kept in memory while they arrive (only ever tried: a part that does not fit
    /// streams to disk).
    pub receive_memory: budget::Budget,
    /// Bytes promised to stores being received and not yet stored (counted against
    /// `max_stored_bytes` beside what is stored).
    pub storage_reserved: Arc<std::sync::atomic::AtomicU64>,
    /// Bytes that validations and renderings hold while they parse (waited for).
    pub validation_memory: budget::Budget,
    /// Which web pages may call the DICOM routes (the portal's CORS blade).
    pub cors: cors::Cors,
    /// The user sign-in: users, app registrations' redirect URIs, sessions, codes, the signing key.
    pub identity: identity::Identity,
    /// The extended query tags stores index and searches read, kept until the tags' table changes.
    pub(crate) tag_cache: eqt::TagCache,
    /// Stores whose files are written, committed to the index together (`stow::commit`).
    pub(crate) store_commits: stow::StoreCommits,
    /// The thread that validates and commits small stores (`stow::storer`).
    pub(crate) storer: stow::Storer,
}

pub type SharedService = Arc<Service>;

impl Service {
    /// Runs an index call on the blocking pool.
    pub async fn db<R, F>(self: &Arc<Self>, f: F) -> ApiResult<R>
    where
        F: FnOnce(&Service) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        let svc = self.clone();
        tokio::task::spawn_blocking(move || f(&svc))
            .await
            .map_err(|e| ApiError::internal("index task", e))?
            .map_err(|e| ApiError::internal("index", e))
    }
}

/// What a caller needs to use a running service.
pub struct RunningService {
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    /// `http://127.0.0.1:PORT/v1`: what the lab calls the base URL.
    pub base_url: String,
    /// The authority host the client puts before `/{tenant}/oauth2/token`.
    pub authority: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub resource: String,
    pub data_dir: PathBuf,
    service: SharedService,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _temp: Option<datadir::Ephemeral>,
}

impl RunningService {
    /// The v1 token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/token", self.authority, self.tenant_id)
    }
    /// The v2 token endpoint.
    pub fn token_url_v2(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant_id)
    }
    pub fn service(&self) -> &SharedService {
        &self.service
    }
    /// Grants or revokes a role for the lab client (what the Azure portal's IAM blade does).
    pub fn set_lab_role(&self, role: auth::Role, granted: bool) -> Result<bool, DbError> {
        self.service
            .auth
            .set_role(&self.service.db, &self.client_id, role, granted)
    }
    /// Changes when the service has written a record a check could use (not the checks' own): what a
    /// lab session in this process waits on instead of polling.
    pub fn records(&self) -> tokio::sync::watch::Receiver<u64> {
        self.service.audit.watch()
    }
    /// Gives the lab client `roles` for as long as this service runs (a lab file's `[practice] roles`;
    /// see [`ServiceConfig::lab_roles`]).
    pub fn hold_lab_roles(&self, roles: &[auth::Role]) {
        for &role in roles {
            self.service.auth.hold(&self.client_id, role);
        }
    }
    /// The practice workspace's id (the audit log is read at `{origin}/loganalytics/v1/workspaces/{id}/query`).
    pub fn workspace_id(&self) -> &str {
        &self.service.audit.workspace_id
    }
    /// Stops accepting requests, lets those in flight finish, and returns within the shutdown grace
    /// (`ConnectionLimits::shutdown_grace`): connections still open then are dropped.
    pub async fn shutdown(mut self) {
        self.stop().await;
        let svc = self.service.clone();
        let _ = tokio::task::spawn_blocking(move || svc.audit.flush(&svc.db)).await;
    }
    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A service built and not yet serving: its state, for a caller that serves [`router`] itself (the
/// classroom serves one per learner behind one port). [`start`] builds one and serves it on its own port.
pub struct BuiltService {
    /// The state every handler shares.
    pub service: SharedService,
    /// Where its data lives.
    pub data_dir: PathBuf,
    /// The temporary data folder, when `config.data_dir` was `None` (removed when dropped).
    pub temp: Option<datadir::Ephemeral>,
}

impl BuiltService {
    /// The lab client's secret (the index keeps it; never logged).
    pub fn lab_secret(&self) -> String {
        let auth = &self.service.auth;
        auth.client(&auth.lab_client_id)
            .map(|c| c.secret)
            .unwrap_or_default()
    }
}

/// The lab client of the practice service kept in `data_dir` (the embedded one's, or `dicomlab
/// serve`'s), made on first use: read without serving it, so that a service another process serves
/// there keeps running undisturbed. Needs a tokio runtime when the folder holds no service yet.
pub fn lab_client(data_dir: &std::path::Path) -> Result<LabClient, StartError> {
    let index = data_dir.join("index.sqlite");
    if let Some((tenant_id, client_id, client_secret)) = db::read_lab_client(&index)? {
        return Ok(LabClient {
            tenant_id,
            client_id,
            client_secret,
        });
    }
    // Nobody serves a folder without an index: make it, as a first start would.
    let built = build(
        ServiceConfig {
            data_dir: Some(data_dir.to_path_buf()),
            ..ServiceConfig::default()
        },
        "http://127.0.0.1",
    )?;
    Ok(LabClient {
        tenant_id: built.service.auth.tenant_id.clone(),
        client_id: built.service.auth.lab_client_id.clone(),
        client_secret: built.lab_secret(),
    })
}

/// The lab client's credentials, as a data folder keeps them.
#[derive(Clone)]
pub struct LabClient {
    pub tenant_id: String,
    pub client_id: String,
    /// Never logged.
    pub client_secret: String,
}

/// Builds the service on its data folder (index, files, credentials, audit log) without listening.
/// `default_origin` is the origin of URLs answered to a request without a Host header. Needs a tokio
/// runtime (the audit log's flusher runs on it).
pub fn build(config: ServiceConfig, default_origin: &str) -> Result<BuiltService, StartError> {
    let (data_dir, temp) = match &config.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let t = datadir::Ephemeral::new()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    datadir::prepare(&data_dir)?;
    let index = data_dir.join("index.sqlite");
    datadir::private_index(&index)?;
    let db = Db::open(&index)?;
    datadir::private_index(&index)?;
    let blobs = Blobs::open(&data_dir).map_err(|source| StartError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    match blobs.remove_unreferenced(&db.blob_names()?) {
        Ok((removed, foreign)) => {
            if removed > 0 {
                tracing::warn!("removed {removed} file(s) left by an interrupted store");
            }
            if foreign > 0 {
                tracing::warn!(
                    "left {foreign} file(s) in the blob folder that this service did not write"
                );
            }
        }
        Err(e) => tracing::warn!("could not clean the blob folder: {e}"),
    }
    eqt::recover_interrupted(&db)?;
    let auth = Auth::load(&db, config.auth, config.token_lifetime, config.grant_owner)?;
    for &role in &config.lab_roles {
        auth.hold(&auth.lab_client_id, role);
    }
    let mut audit = audit::AuditLog::open(&db, config.audit_delay)?;
    audit.agent_column = config.audit_user_agent;
    audit.keep_rows = config.audit_rows;
    let cors = cors::Cors::load(&db, config.cors.as_ref())?;
    let identity = identity::Identity::load(&db)?;
    let limits = config.shared_limits.clone().unwrap_or_else(|| {
        SharedLimits::new(
            match config.heavy_jobs {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n,
            },
            config.memory_budget,
        )
    });
    let service = Arc::new(Service {
        db,
        blobs,
        default_origin: default_origin.to_string(),
        reindex_gate: tokio::sync::Mutex::new(()),
        heavy: limits.heavy,
        receive_memory: limits.receive_memory,
        storage_reserved: Arc::default(),
        validation_memory: limits.validation_memory,
        config,
        auth,
        audit,
        cors,
        identity,
        tag_cache: eqt::TagCache::default(),
        store_commits: stow::StoreCommits::default(),
        storer: stow::Storer::default(),
    });
    audit::spawn_flusher(Arc::downgrade(&service));
    Ok(BuiltService {
        service,
        data_dir,
        temp,
    })
}

/// Starts the service on `config.addr` and returns once it accepts connections.
pub async fn start(config: ServiceConfig) -> Result<RunningService, StartError> {
    let bind = config.addr;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| StartError::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr: bind, source })?;
    let origin = format!("http://{addr}");
    let built = build(config, &origin)?;
    let secret = built.lab_secret();
    let BuiltService {
        service,
        data_dir,
        temp,
    } = built;
    let app = router(service.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let limits = service.config.limits;
    let task = tokio::spawn(server::serve(listener, app, limits, async {
        let _ = rx.await;
    }));
    tracing::info!(%origin, "practice service listening");
    Ok(RunningService {
        base_url: format!("{origin}/v1"),
        authority: origin.clone(),
        origin,
        tenant_id: service.auth.tenant_id.clone(),
        client_id: service.auth.lab_client_id.clone(),
        client_secret: secret,
        resource: auth::DICOM_RESOURCE.to_string(),
        data_dir,
        service,
        shutdown: Some(tx),
        task: Some(task),
        _temp: temp,
    })
}

/// The origin (`scheme://host[:port]`) of a request: every URL the service returns is built from it.
pub fn origin_of(headers: &HeaderMap, service: &Service) -> String {
    // A front in this process that knows how its callers reach the service (the classroom's public
    // URL) says so: then no caller's Host or X-Forwarded-Proto decides a URL, an issuer or an `iss`.
    if let Some(o) = forwarded_origin(headers) {
        return format!("{o}{}", forwarded_prefix(headers).unwrap_or(""));
    }
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    let origin = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() && !host.contains(['/', ' ', '"']) => {
            format!("{proto}://{host}")
        }
        _ => service.default_origin.clone(),
    };
    format!("{origin}{}", forwarded_prefix(headers).unwrap_or(""))
}

/// Set by a front that forwards requests from other machines (the classroom's public port) on each
/// request it forwards: the service then treats it as not from loopback, whatever its peer address — a
/// reverse proxy on the same machine (nginx in front of the classroom) makes every caller loopback.
/// The admin routes (`admin_guard.rs`) and the practice identity's one-click sign-in refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLoopback;

/// The header a front in this process sets with the origin its callers reach the service at
/// (`http://classroom.local:8080`): [`server::serve`] removes it from what clients send.
pub const FORWARDED_ORIGIN: &str = "x-dicomlab-origin";

/// The origin a front set: `http(s)://host[:port]`, nothing else.
fn forwarded_origin(headers: &HeaderMap) -> Option<&str> {
    let o = headers.get(FORWARDED_ORIGIN)?.to_str().ok()?;
    let rest = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"))?;
    let valid = !rest.is_empty()
        && rest.len() <= 255
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    valid.then_some(o)
}

/// The header a front that serves this service under a path prefix sets (the classroom's `/l/{name}`):
/// every URL the service returns then starts with it. [`server::serve`] removes it from what clients
/// send, so only a front in this process sets it.
pub const FORWARDED_PREFIX: &str = "x-forwarded-prefix";

/// The prefix a front set: `/` and then segments of letters, digits, `-`, `_` and `.`, at most 128 bytes.
pub fn forwarded_prefix(headers: &HeaderMap) -> Option<&str> {
    let p = headers.get(FORWARDED_PREFIX)?.to_str().ok()?;
    let valid = p.len() <= 128
        && p.starts_with('/')
        && !p.ends_with('/')
        && p.split('/').skip(1).all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    valid.then_some(p)
}

/// The API version of a route, from its first path segment (docs/contract.md §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion {
    pub v2: bool,
    /// The segment as the route spelled it (`v1`, `v1.0-prerelease`, `v2`), reused in returned URLs.
    pub segment: &'static str,
}

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let seg = parts
            .uri
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        match seg {
            "v1" => Ok(ApiVersion {
                v2: false,
                segment: "v1",
            }),
            "v1.0-prerelease" => Ok(ApiVersion {
                v2: false,
                segment: "v1.0-prerelease",
            }),
            "v2" => Ok(ApiVersion {
                v2: true,
                segment: "v2",
            }),
            other
                if other.starts_with('v')
                    && other[1..].starts_with(|c: char| c.is_ascii_digit()) =>
            {
                let body = json!({"error": {
                    "code": "UnsupportedApiVersion",
                    "message": format!("The HTTP resource that matches the request URI '{}' does not support the API version '{}'.", parts.uri, &other[1..]),
                }});
                Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    message: Some(body.to_string()),
                    headers: Vec::new(),
                })
            }
            _ => Err(ApiError::empty(StatusCode::NOT_FOUND)),
        }
    }
}

/// The URL prefix of a versioned route for this request: `<origin>/v1`.
pub fn versioned_base(headers: &HeaderMap, service: &Service, version: ApiVersion) -> String {
    format!("{}/{}", origin_of(headers, service), version.segment)
}

async fn health(State(service): State<SharedService>) -> Response {
    let db_ok = service
        .db(|s| s.db.lock().map(|c| c.execute_batch("SELECT 1").is_ok()))
        .await;
    let healthy = matches!(db_ok, Ok(true));
    let status = if healthy { "Healthy" } else { "Unhealthy" };
    let body = json!({"overallStatus": status, "details": [
        {"name": "DataStoreHealthCheck", "status": status, "description": "The practice service's index (SQLite) answers."},
    ]});
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn partitions_disabled() -> ApiError {
    ApiError::bad_request("Data partitions feature is disabled.")
}

async fn not_found() -> Response {
    let mut r = ApiError::empty(StatusCode::NOT_FOUND).into_response();
    r.extensions_mut().insert(NoRoute);
    r
}

/// Marks the answer of a path the service has no route for (a front may word it its own way; a
/// route's own 404 — no such study, operation, tag — is left as the contract has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoute;

/// Logs each request (never its Authorization header) and adds `api-supported-versions`.
async fn log_requests(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut resp = next.run(req).await;
    if path.starts_with("/v") {
        resp.headers_mut().insert(
            "api-supported-versions",
            HeaderValue::from_static("1.0-prerelease, 1, 2"),
        );
    }
    // Whoever sent it: a path of up to 64 KiB is logged as its first 160 characters.
    let cut = dicomlab_dicom::text::prefix(&path, 160);
    let shown = dicomlab_dicom::text::visible(&cut);
    tracing::info!(%method, path = %shown, status = resp.status().as_u16(), ms = start.elapsed().as_millis() as u64, "request");
    resp
}

/// Every route of the service.
///
/// The route table: a table, excepted from the 100-line rule (one entry per route, read top to bottom).
pub fn router(service: SharedService) -> Router {
    let instance = "/{v}/studies/{study}/series/{series}/instances/{sop}";
    Router::new()
        .route("/health/check", get(health))
        .route("/{v}/oauth2/token", post(auth::token::token_endpoint))
        .route(
            "/{v}/oauth2/v2.0/token",
            post(auth::token::token_endpoint).options(identity::preflight),
        )
        .route(
            "/{v}/v2.0/.well-known/openid-configuration",
            get(identity::discovery).options(identity::preflight),
        )
        .route(
            "/{v}/discovery/v2.0/keys",
            get(identity::jwks).options(identity::preflight),
        )
        .route("/{v}/oauth2/v2.0/authorize", get(identity::authorize))
        .route("/{v}/oauth2/v2.0/logout", get(identity::logout))
        .route("/{v}/login", post(identity::sign_in))
        .route("/admin/roles", get(auth::assignments::list_roles))
        .route(
            "/admin/roles/{client}/{role}",
            put(auth::assignments::change_role).delete(auth::assignments::change_role),
        )
        .route("/admin/clients", post(auth::assignments::create_client))
        .route("/admin/apps", get(identity::admin::list))
        .route(
            "/admin/apps/{client}/redirect-uris",
            put(identity::admin::redirect_uris).delete(identity::admin::redirect_uris),
        )
        .route(
            "/admin/apps/{client}/implicit",
            put(identity::admin::implicit),
        )
        .route(
            "/admin/cors",
            get(cors::show).put(cors::change).delete(cors::change),
        )
        .route("/{v}/studies", get(qido::search_studies).post(stow::store))
        .route("/{v}/series", get(qido::search_series))
        .route("/{v}/instances", get(qido::search_instances))
        .route(
            "/{v}/studies/{study}",
            get(wado::retrieve_study)
                .post(stow::store_in_study)
                .delete(delete::delete_study),
        )
        .route("/{v}/studies/{study}/metadata", get(wado::study_metadata))
        .route(
            "/{v}/studies/{study}/series",
            get(qido::search_series_in_study),
        )
        .route(
            "/{v}/studies/{study}/instances",
            get(qido::search_instances_in_study),
        )
        .route(
            "/{v}/studies/{study}/series/{series}",
            get(wado::retrieve_series).delete(delete::delete_series),
        )
        .route(
            "/{v}/studies/{study}/series/{series}/metadata",
            get(wado::series_metadata),
        )
        .route(
            "/{v}/studies/{study}/series/{series}/instances",
            get(qido::search_instances_in_series),
        )
        .route(
            instance,
            get(wado::retrieve_instance).delete(delete::delete_instance),
        )
        .route(
            &format!("{instance}/metadata"),
            get(wado::instance_metadata),
        )
        .route(
            &format!("{instance}/rendered"),
            get(wado::rendered_instance),
        )
        .route(
            &format!("{instance}/frames/{{frames}}"),
            get(wado::retrieve_frames),
        )
        .route(
            &format!("{instance}/frames/{{frames}}/rendered"),
            get(wado::rendered_frame),
        )
        .route("/{v}/changefeed", get(changefeed::feed))
        .route("/{v}/changefeed/latest", get(changefeed::latest))
        .route("/{v}/extendedquerytags", get(eqt::list).post(eqt::add))
        .route(
            "/{v}/extendedquerytags/{path}",
            get(eqt::get_one).patch(eqt::update).delete(eqt::delete),
        )
        .route("/{v}/extendedquerytags/{path}/errors", get(eqt::errors))
        .route("/{v}/operations/{id}", get(eqt::operation))
        .route("/loganalytics/v1/workspaces", get(audit::query::workspaces))
        .route(
            "/loganalytics/v1/workspaces/{workspace}/query",
            get(audit::query::query).post(audit::query::query),
        )
        .route(
            "/{v}/partitions",
            get(partitions_disabled).post(partitions_disabled),
        )
        .route(
            "/{v}/partitions/{*rest}",
            axum::routing::any(partitions_disabled),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            audit::record::record,
        ))
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            cors::layer,
        ))
        .layer(axum::middleware::from_fn(log_requests))
        .with_state(service)
}

/// Timestamps as the service writes them: UTC with seven fractional digits and `+00:00`.
pub fn now_timestamp() -> String {
    format_timestamp(time::OffsetDateTime::now_utc())
}

pub fn format_timestamp(t: time::OffsetDateTime) -> String {
    format_utc(t, "+00:00")
}

/// UTC with seven fractional digits (.NET's round-trip form), then `zone` (`+00:00`, or `Z`).
pub fn format_utc(t: time::OffsetDateTime, zone: &str) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}{zone}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}
