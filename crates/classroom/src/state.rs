//! What every part of the classroom shares ([`Core`]): the lab, the folder, the learners' services,
//! the gate, the room's learners (in memory, written to `learners.json`), who is connected, and what
//! wakes the checks and the dashboard; SSH logins and self-reports go through it.

use dicomlab_lab::model::StepId;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::config::ClassroomConfig;
use crate::error::ClassroomError;
use crate::folder::{Folder, LearnerEntry, LearnerSource, SELF_REPORTED_KEY, VERDICTS_KEY, now};
use crate::gate::{self, Gate};
use crate::names::{self, LearnerName};
use crate::rate;
use crate::reset::{Reset, reset_entry};
use crate::room::{self, LiveSession};
use crate::ssh::sessions::{Kick, Sessions};
use crate::tenants::{TenantError, Tenants};
use crate::values::LearnerEnv;
use dicomlab_dicomweb::Secret;
use dicomlab_lab::Lab;
use dicomlab_lab::progress::{ProgressStore, StepProgress, TargetProgress};
use dicomlab_practice::SharedLimits;

/// New names one client address may bring into the room at once (a room behind one NAT address
/// joins together)…
const NEW_NAMES_BURST: f64 = 40.0;
/// …and then one every 30 s.
const NEW_NAMES_PER_SEC: f64 = 1.0 / 30.0;

/// How an SSH login went.
#[derive(Debug)]
pub enum SshLogin {
    /// In as this learner; `issued`: their new personal code, shown to them at once.
    Learner {
        name: LearnerName,
        issued: Option<Secret>,
    },
    /// The class code was right but the name cannot be used: said in the terminal.
    BadName(names::NameError),
    /// The class code was right but the learner cannot come in (a self-reported name, a full room):
    /// said in the terminal.
    Told(String),
    /// Refused: after waiting this long.
    Wrong(Duration),
}

/// One learner's verdicts as the room keeps them, for their TUI over SSH: it runs no check of its
/// own, asks the room's (`c`, `C`, after an action), and shows what they decide as it arrives — the
/// verdicts the dashboard and `classroom status` show.
pub(crate) struct RoomOf {
    pub(crate) core: Arc<Core>,
    pub(crate) name: LearnerName,
}

impl dicomlab_tui::Room for RoomOf {
    fn key(&self) -> String {
        VERDICTS_KEY.to_string()
    }
    fn judge(&self) {
        self.core.touched(&self.name);
    }
    fn changed(&self) -> watch::Receiver<u64> {
        self.core.verdicts_watch(&self.name)
    }
    fn outcomes(&self) -> BTreeMap<dicomlab_lab::model::StepId, dicomlab_lab::Outcome> {
        self.core.folder.last(&self.name)
    }
}

/// What every part of the classroom shares.
pub struct Core {
    pub lab: Lab,
    pub folder: Folder,
    pub tenants: Tenants,
    pub gate: Gate,
    /// The public port's per-address request rate.
    pub rate: rate::RateLimit,
    pub config: ClassroomConfig,
    /// Who joined (in memory: changed under this lock without I/O, then written by `persist`).
    learners: Mutex<Roster>,
    /// The version of `learners` last written to `learners.json` (one write at a time).
    learners_saved: tokio::sync::Mutex<u64>,
    /// Learners whose service saw a request of theirs since their last check, and when their check
    /// is due: as soon as their service wrote the request's audit rows, at the latest `check_delay`
    /// after the request.
    dirty: Mutex<HashMap<LearnerName, tokio::time::Instant>>,
    /// Wakes the checks.
    pub(crate) activity: Notify,
    /// Bumped when anything the dashboard shows changed.
    changed: watch::Sender<u64>,
    /// New names each client address may still bring into the room: (tokens, last refill).
    new_names: Mutex<std::collections::HashMap<IpAddr, (f64, std::time::Instant)>>,
    /// Per learner, bumped when the room's checks of them ended: what their TUI over SSH waits on.
    verdicts: Mutex<std::collections::HashMap<LearnerName, watch::Sender<u64>>>,
    /// `http://127.0.0.1:PORT/{key}` of the loopback listener (set once it listens): the key is
    /// this process's secret, so no other local user's process reaches a learner's service (and what
    /// it grants callers on loopback) through it.
    internal_origin: OnceLock<String>,
    /// That key (random, made at each start, never written anywhere).
    pub(crate) internal_key: String,
    /// The public origin learners use.
    public_origin: OnceLock<String>,
    ssh_port: OnceLock<u16>,
    /// Who is connected over SSH now.
    sessions: Mutex<BTreeMap<LearnerName, LiveSession>>,
    /// The open SSH sessions (one per learner): a reset ends the learner's.
    pub(crate) ssh_sessions: Arc<Sessions>,
    /// Checks run since the start (a room where nobody works runs none).
    pub checks_run: std::sync::atomic::AtomicU64,
    /// The lab's instance files, once made (see [`Core::make_samples`]).
    samples: OnceLock<std::path::PathBuf>,
}

/// The room's learners, and a version bumped on each change.
struct Roster {
    entries: Vec<LearnerEntry>,
    version: u64,
}

impl Core {
    /// The shared state of a classroom starting: `code` is the class code, `learners` those kept in
    /// the folder, `internal_addr` the loopback listener's (its path gets a new secret key); the
    /// learners reach the front at `public_origin`.
    pub(crate) fn new(
        lab: Lab,
        config: ClassroomConfig,
        folder: Folder,
        code: String,
        learners: Vec<LearnerEntry>,
        internal_addr: SocketAddr,
        public_origin: String,
    ) -> Core {
        let internal_key = uuid::Uuid::new_v4().simple().to_string();
        let internal_origin = format!("http://{internal_addr}/{internal_key}");
        let limits = SharedLimits::new(config.heavy_jobs, config.memory_budget);
        let tenants = Tenants::new(
            folder.clone(),
            limits,
            config.max_learners,
            format!("http://{internal_addr}"),
        )
        .with_reindex_min(config.reindex_min)
        .with_storage(config.learner_storage)
        .with_lab_roles(lab.practice.roles.clone());
        let (changed, _) = watch::channel(0u64);
        let core = Core {
            lab,
            gate: Gate::new(code).with_first_delay(config.first_refusal_delay),
            rate: rate::RateLimit::new(config.rate_per_sec, config.rate_burst),
            folder,
            tenants,
            learners: Mutex::new(Roster {
                entries: learners,
                version: 0,
            }),
            learners_saved: tokio::sync::Mutex::new(0),
            dirty: Mutex::new(HashMap::new()),
            activity: Notify::new(),
            verdicts: Mutex::default(),
            new_names: Mutex::default(),
            changed,
            internal_origin: OnceLock::new(),
            internal_key,
            public_origin: OnceLock::new(),
            ssh_port: OnceLock::new(),
            sessions: Mutex::new(BTreeMap::new()),
            checks_run: std::sync::atomic::AtomicU64::new(0),
            ssh_sessions: Arc::default(),
            samples: OnceLock::new(),
            config,
        };
        let _ = core.internal_origin.set(internal_origin);
        let _ = core.public_origin.set(public_origin);
        core
    }

    /// Makes the lab's instance files once for the room, in its folder: each learner's TUI stores
    /// these rather than drawing and writing its own (megabytes each, all at once when a room starts
    /// the store step together). Blocking: megabytes written.
    pub(crate) fn make_samples(&self) -> Result<(), dicomlab_dicom::samples::SampleError> {
        let dir = self.folder.samples_dir();
        self.lab.dataset.write_all(&dir)?;
        let _ = self.samples.set(dir);
        Ok(())
    }

    /// The room's instance files, once made.
    pub(crate) fn samples(&self) -> Option<std::path::PathBuf> {
        self.samples.get().cloned()
    }

    /// The SSH server listens on `port` (what learners are told to connect to).
    pub(crate) fn set_ssh_port(&self, port: u16) {
        let _ = self.ssh_port.set(port);
    }

    /// Something the dashboard shows changed.
    pub fn changed(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every change.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A receiver that sees each end of the room's checks of `name`.
    pub fn verdicts_watch(&self, name: &LearnerName) -> watch::Receiver<u64> {
        match self.verdicts.lock() {
            Ok(mut v) => v
                .entry(name.clone())
                .or_insert_with(|| watch::channel(0).0)
                .subscribe(),
            // Never told: the TUI still shows what it reads at the start and after its own actions.
            Err(_) => watch::channel(0).1,
        }
    }

    /// The room's checks of `name` ended (their verdicts may have changed).
    pub(crate) fn verdicts_changed(&self, name: &LearnerName) {
        if let Ok(v) = self.verdicts.lock()
            && let Some(tx) = v.get(name)
        {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// The learner did something on their service: check their steps soon — once its audit rows are
    /// written (`rows_landed`), at the latest `check_delay` after the first thing they did
    /// since their last check (a burst costs one check).
    pub fn touched(&self, name: &LearnerName) {
        if self.mark(name) {
            self.activity.notify_one();
        }
    }

    /// Marks `name` to check, due `check_delay` from now unless marked already; whether they were not.
    fn mark(&self, name: &LearnerName) -> bool {
        use std::collections::hash_map::Entry;
        self.dirty
            .lock()
            .is_ok_and(|mut d| match d.entry(name.clone()) {
                Entry::Vacant(v) => {
                    v.insert(tokio::time::Instant::now() + self.config.check_delay);
                    true
                }
                Entry::Occupied(_) => false,
            })
    }

    /// The learner's service wrote audit rows of theirs (not the checks' own): the records a check
    /// waits for are in, so a check they wait for is due now. (Rows that land before the request's
    /// touch change nothing: that check is due `check_delay` after it, when they are long in.)
    pub(crate) fn rows_landed(&self, name: &LearnerName) {
        let now = tokio::time::Instant::now();
        let sooner = self.dirty.lock().is_ok_and(|mut d| match d.get_mut(name) {
            Some(due) if *due > now => {
                *due = now;
                true
            }
            _ => false,
        });
        if sooner {
            self.activity.notify_one();
        }
    }

    /// When the next learner's check is due (None: nobody waits for one).
    pub(crate) fn next_due(&self) -> Option<tokio::time::Instant> {
        let d = self.dirty.lock().ok()?;
        d.values().min().copied()
    }

    /// Takes the learners whose check is due, each on their own clock — one learner's late request
    /// does not wait for a round another's began.
    pub(crate) fn take_due(&self) -> Vec<LearnerName> {
        let now = tokio::time::Instant::now();
        let Ok(mut d) = self.dirty.lock() else {
            return Vec::new();
        };
        let due: Vec<LearnerName> = d
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &due {
            d.remove(n);
        }
        due
    }

    /// Marks a learner to check again (their check was running when they were touched).
    pub(crate) fn requeue(&self, name: &LearnerName) {
        self.mark(name);
    }

    pub(crate) fn is_dirty(&self, name: &LearnerName) -> bool {
        self.dirty.lock().is_ok_and(|d| d.contains_key(name))
    }

    /// A learner's values when their service runs (the checks use them).
    pub(crate) async fn join_env(&self, name: &LearnerName) -> Option<LearnerEnv> {
        self.tenants.get(name)?;
        self.join(name).await.ok()
    }

    pub fn ssh_port(&self) -> u16 {
        self.ssh_port
            .get()
            .copied()
            .unwrap_or(self.config.ssh.port())
    }

    pub fn internal_origin(&self) -> String {
        self.internal_origin.get().cloned().unwrap_or_default()
    }

    pub fn public_origin(&self) -> String {
        self.public_origin.get().cloned().unwrap_or_default()
    }

    /// Everyone who joined.
    pub fn learners(&self) -> Vec<LearnerEntry> {
        self.learners
            .lock()
            .map(|l| l.entries.clone())
            .unwrap_or_default()
    }

    fn entry(&self, name: &LearnerName) -> Option<LearnerEntry> {
        self.learners
            .lock()
            .ok()?
            .entries
            .iter()
            .find(|l| &l.name == name)
            .cloned()
    }

    /// Changes the room's learners under their lock — no I/O, no await there; `f` says whether it
    /// changed them (then `persist` writes them).
    fn edit<T>(
        &self,
        f: impl FnOnce(&mut Vec<LearnerEntry>) -> Result<(T, bool), ClassroomError>,
    ) -> Result<(T, bool), ClassroomError> {
        let mut r = self.learners.lock().map_err(|_| ClassroomError::Poisoned)?;
        let (value, changed) = f(&mut r.entries)?;
        if changed {
            r.version += 1;
        }
        Ok((value, changed))
    }

    /// Writes `learners.json` as the room holds it now: atomically and fsync'd, on the blocking pool,
    /// never under the learners' lock. Writes wait for each other, and one that finds a newer write
    /// done has nothing to do.
    async fn persist(&self) -> Result<(), ClassroomError> {
        let mut on_disk = self.learners_saved.lock().await;
        let (snapshot, version) = {
            let r = self.learners.lock().map_err(|_| ClassroomError::Poisoned)?;
            (r.entries.clone(), r.version)
        };
        if version <= *on_disk {
            return Ok(());
        }
        let folder = self.folder.clone();
        tokio::task::spawn_blocking(move || folder.save_learners(&snapshot))
            .await
            .map_err(|e| TenantError::Task(e.to_string()))??;
        *on_disk = version;
        Ok(())
    }

    /// Adds a learner to the room (and to `learners.json`): no-op when they are in it.
    async fn add_learner(
        &self,
        name: &LearnerName,
        source: LearnerSource,
    ) -> Result<(), ClassroomError> {
        let max = self.config.max_learners;
        let ((), added) = self.edit(|l| {
            if l.iter().any(|e| &e.name == name) {
                return Ok(((), false));
            }
            // SSH learners and self-reporters each have the room's budget: reports anyone with
            // the class code can send never keep a learner from logging in.
            if l.iter().filter(|e| e.source == source).count() >= max {
                return Err(TenantError::Full(max).into());
            }
            l.push(LearnerEntry::new(name.clone(), now(), source));
            Ok(((), true))
        })?;
        if added {
            tracing::info!(learner = %name, ?source, "learner joined");
            self.changed();
            self.persist().await?;
        }
        Ok(())
    }

    /// An SSH login: `user` with `password` from `peer`. A learner with a personal code logs in with it
    /// (and only with it); a new name, or a learner from before personal codes, logs in with the class
    /// code and is given one at once. Every wrong password waits longer (the gate).
    pub async fn ssh_login(&self, peer: IpAddr, user: &str, password: &str) -> SshLogin {
        // While a client waits after a wrong code at a door, its next guesses there are not even
        // looked at (parallel connections gain nothing): each is refused after the time left.
        let refused = |r: gate::Refused| match r {
            gate::Refused::Wait(w) | gate::Refused::Wrong(w) => SshLogin::Wrong(w),
        };
        let name = match LearnerName::parse(user) {
            Ok(n) => n,
            Err(e) => {
                return match self.gate.check_now(peer, password) {
                    Ok(()) => SshLogin::BadName(e),
                    Err(r) => {
                        tracing::info!(%peer, "ssh: wrong class code");
                        refused(r)
                    }
                };
            }
        };
        if let Some(code) = self.entry(&name).and_then(|e| e.code) {
            // Counted per client and learner; a right code always passes (a classmate's wrong guesses
            // cannot lock the learner out): each wrong one waits longer before it is answered.
            // Here a right code is always let in (a classmate behind the same address cannot lock
            // the learner out), so each guess is looked at; they come one a second at best per
            // address, against about 40 bits.
            let right = gate::same_personal_code(password, code.expose());
            return match self
                .gate
                .verdict(peer, gate::Door::Learner(name.as_str()), right)
            {
                Ok(()) => SshLogin::Learner { name, issued: None },
                Err(wait) => {
                    tracing::info!(%peer, learner = %name, "ssh: wrong personal code");
                    SshLogin::Wrong(wait)
                }
            };
        }
        if let Err(r) = self.gate.check_now(peer, password) {
            tracing::info!(%peer, "ssh: wrong class code");
            return refused(r);
        }
        match self.claim(&name, peer).await {
            Ok(Some(code)) => {
                tracing::info!(learner = %name, "personal code issued");
                SshLogin::Learner {
                    name,
                    issued: Some(code),
                }
            }
            // Another login took the name meanwhile: the class code no longer logs in as them.
            Ok(None) => SshLogin::Wrong(
                self.gate
                    .verdict(peer, gate::Door::Learner(name.as_str()), false)
                    .err()
                    .unwrap_or(gate::MAX_DELAY),
            ),
            Err(e) => SshLogin::Told(e.to_string()),
        }
    }

    /// One more new name from `peer` (a token bucket per client address: a room behind one NAT
    /// address joins at once, a name squatter soon waits), or how long until one more may come.
    fn new_name_from(&self, peer: IpAddr) -> Result<(), ClassroomError> {
        let client = gate::client(peer);
        let Ok(mut all) = self.new_names.lock() else {
            return Err(ClassroomError::Poisoned);
        };
        let now = std::time::Instant::now();
        // Forget addresses whose bucket is full again (bounded by the room's real clients).
        all.retain(|_, (tokens, at)| {
            *tokens + now.duration_since(*at).as_secs_f64() * NEW_NAMES_PER_SEC < NEW_NAMES_BURST
        });
        let b = all.entry(client).or_insert((NEW_NAMES_BURST, now));
        b.0 =
            (b.0 + now.duration_since(b.1).as_secs_f64() * NEW_NAMES_PER_SEC).min(NEW_NAMES_BURST);
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            Ok(())
        } else {
            Err(ClassroomError::ManyNames(Duration::from_secs_f64(
                (1.0 - b.0) / NEW_NAMES_PER_SEC,
            )))
        }
    }

    /// Gives `name` a personal code, adding them to the room when new (their name and kind reserved
    /// before their service is built). `None`: they have one already.
    async fn claim(
        &self,
        name: &LearnerName,
        peer: IpAddr,
    ) -> Result<Option<Secret>, ClassroomError> {
        let max = self.config.max_learners;
        let (code, _) = self.edit(|l| {
            let code = Secret::new(gate::new_personal_code());
            let full = l
                .iter()
                .filter(|e| e.source == LearnerSource::Service)
                .count()
                >= max;
            match l.iter_mut().find(|e| &e.name == name) {
                Some(e) if e.source == LearnerSource::SelfReported => {
                    Err(ClassroomError::NameSelfReported(name.clone()))
                }
                Some(e) if e.code.is_some() => Ok((None, false)),
                Some(e) => {
                    e.code = Some(code.clone());
                    Ok((Some(code), true))
                }
                None if full => Err(TenantError::Full(max).into()),
                None => {
                    self.new_name_from(peer)?;
                    let mut e = LearnerEntry::new(name.clone(), now(), LearnerSource::Service);
                    e.code = Some(code.clone());
                    l.push(e);
                    tracing::info!(learner = %name, "learner joined");
                    Ok((Some(code), true))
                }
            }
        })?;
        if code.is_some() {
            self.changed();
            // In memory the code holds already; a disk that cannot take it is the log's business.
            if let Err(e) = self.persist().await {
                tracing::warn!(learner = %name, "cannot keep the learners: {e}");
            }
        }
        Ok(code)
    }

    /// A learner's personal code (an SSH learner's, once given).
    pub fn personal_code(&self, name: &LearnerName) -> Option<Secret> {
        self.entry(name).and_then(|e| e.code)
    }

    /// Every SSH learner's personal code (the dashboard's selected learner shows theirs; never
    /// `classroom status`, never the log).
    pub fn personal_codes(&self) -> BTreeMap<String, Secret> {
        self.learners()
            .into_iter()
            .filter_map(|e| Some((e.name.to_string(), e.code?)))
            .collect()
    }

    /// The instructor resets a learner: a new personal code, or a self-reporter's token forgotten.
    pub async fn reset_code(&self, name: &LearnerName) -> Result<Reset, ClassroomError> {
        let (reset, _) = self.edit(|l| match l.iter_mut().find(|e| &e.name == name) {
            Some(e) => Ok((reset_entry(e), true)),
            None => Err(ClassroomError::NoLearner(name.clone())),
        })?;
        tracing::info!(learner = %name, "reset by the instructor");
        if matches!(reset, Reset::Code(_)) && self.ssh_sessions.end(name, Kick::Reset) {
            tracing::info!(learner = %name, "their open session is closed (reset)");
        }
        self.changed();
        self.persist().await?;
        Ok(reset)
    }

    /// A learner logs in: their service (made the first time), and their values.
    pub async fn join(&self, name: &LearnerName) -> Result<LearnerEnv, ClassroomError> {
        if let Some(e) = self.entry(name)
            && e.source == LearnerSource::SelfReported
        {
            return Err(ClassroomError::NameSelfReported(name.clone()));
        }
        let fresh = self.tenants.get(name).is_none();
        let tenant = self.tenants.open(name).await?;
        if self.entry(name).is_none() {
            self.add_learner(name, LearnerSource::Service).await?;
        }
        if fresh {
            // Their first verdicts (the service exists, the environment is set) show at once.
            self.touched(name);
        }
        let internal = format!("{}{}", self.internal_origin(), name.prefix());
        let public = format!("{}{}", self.public_origin(), name.prefix());
        let auth = &tenant.service.auth;
        Ok(LearnerEnv {
            name: name.clone(),
            base_url: format!("{internal}/v1"),
            public_base_url: format!("{public}/v1"),
            authority: internal,
            public_authority: public,
            tenant_id: auth.tenant_id.clone(),
            client_id: auth.lab_client_id.clone(),
            client_secret: Secret::new(tenant.secret.clone()),
            resource: dicomlab_practice::auth::DICOM_RESOURCE.to_string(),
            workspace_id: tenant.service.audit.workspace_id.clone(),
        })
    }

    /// Checks a self-report's name and token: the first report of a name (or the first after a reset)
    /// gets a new token (returned), every other must carry it.
    async fn self_reporter(
        &self,
        name: &LearnerName,
        token: Option<&str>,
        peer: IpAddr,
    ) -> Result<Option<String>, ClassroomError> {
        let max = self.config.max_learners;
        let (issued, _) = self.edit(|l| {
            let fresh = gate::new_token();
            let full = l
                .iter()
                .filter(|e| e.source == LearnerSource::SelfReported)
                .count()
                >= max;
            match l.iter_mut().find(|e| &e.name == name) {
                Some(e) if e.source == LearnerSource::Service => {
                    Err(ClassroomError::NameOnService(name.clone()))
                }
                Some(e) => match &e.token_sha256 {
                    Some(h) if token.is_some_and(|t| gate::token_matches(t, h)) => {
                        Ok((None, false))
                    }
                    Some(_) => Err(ClassroomError::WrongToken(name.clone())),
                    None => {
                        e.token_sha256 = Some(gate::token_hash(&fresh));
                        Ok((Some(fresh), true))
                    }
                },
                // Self-reporting learners have a budget of their own (they never keep an SSH
                // learner out).
                None if full => Err(TenantError::Full(max).into()),
                None => {
                    self.new_name_from(peer)?;
                    let mut e = LearnerEntry::new(name.clone(), now(), LearnerSource::SelfReported);
                    e.token_sha256 = Some(gate::token_hash(&fresh));
                    l.push(e);
                    tracing::info!(learner = %name, "self-reporting learner joined");
                    Ok((Some(fresh), true))
                }
            }
        })?;
        if issued.is_some() {
            self.changed();
            // The token holds in memory already and must reach the learner (else their name is
            // locked until a reset): a disk that cannot take it is the log's business, as for codes.
            if let Err(e) = self.persist().await {
                tracing::warn!(learner = %name, "cannot keep the learners: {e}");
            }
        }
        Ok(issued)
    }

    /// Keeps what a learner on their own service sent; the token their first report gets.
    pub async fn self_reported(
        &self,
        name: &LearnerName,
        token: Option<&str>,
        steps: BTreeMap<StepId, StepProgress>,
        peer: IpAddr,
    ) -> Result<Option<String>, ClassroomError> {
        let issued = self.self_reporter(name, token, peer).await?;
        if let Err(e) = self.folder.make_learner_dir(name) {
            // The token is given all the same: this report is lost, the next one may be kept.
            tracing::warn!(learner = %name, "cannot keep the self-report: {e}");
            self.changed();
            return Ok(issued);
        }
        let path = self.folder.verdicts(name);
        let lab = self.lab.id.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let mut store = ProgressStore::load(&path);
            store.progress.version = store.progress.version.max(2);
            store.progress.labs.entry(lab).or_default().insert(
                SELF_REPORTED_KEY.to_string(),
                TargetProgress {
                    steps,
                    ..TargetProgress::default()
                },
            );
            store.save()
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(learner = %name, "cannot keep the self-report: {e}"),
            Err(e) => tracing::warn!(learner = %name, "cannot keep the self-report: {e}"),
        }
        self.changed();
        Ok(issued)
    }

    /// Marks a learner's SSH session open (`Some`) or closed.
    pub fn session(&self, name: &LearnerName, live: Option<LiveSession>) {
        if let Ok(mut s) = self.sessions.lock() {
            match live {
                Some(l) => {
                    s.insert(name.clone(), l);
                }
                None => {
                    s.remove(name);
                }
            }
        }
        self.changed();
    }

    /// Who is connected now.
    pub fn connected(&self) -> BTreeMap<LearnerName, LiveSession> {
        self.sessions.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The room now, as the dashboard shows it.
    pub fn room(&self) -> room::Room {
        let connected = self.connected();
        room::Room::read(
            &self.lab,
            &self.folder,
            &self.learners(),
            Some(&connected),
            time::OffsetDateTime::now_utc(),
        )
    }
}
