//! The `dicomlab` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use dicomlab::config::{Config, Profile};
use dicomlab::dicomweb::StoreMode;
use dicomlab::lab::engine::Session;
use dicomlab::lab::progress::ProgressStore;
use dicomlab::lab::{Lab, Outcome};
use dicomlab::practice::{self, ServiceConfig, auth::Role};

#[derive(Parser, Debug)]
#[command(
    name = "dicomlab",
    version,
    about = "Walks you through the hands-on lab \"DICOM service\" and checks each step against the live service."
)]
struct Cli {
    /// Config file (default: the dicomlab config dir's config.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Profile: practice (the embedded service), azure, generic, or one of yours.
    #[arg(long, global = true)]
    profile: Option<String>,
    /// A lab file instead of the embedded one.
    #[arg(long, global = true)]
    lab: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check every step (or one) against the service; exit 0 only when every required step passes.
    Check {
        /// Only this step id.
        #[arg(long)]
        step: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The learner's progress, for an instructor: each step's verdict, the evidence it rests on, when,
    /// and the time it took (never a secret or a token).
    Report {
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
        /// The learner's name (kept in the config; asked once when missing and a terminal is there).
        #[arg(long)]
        name: Option<String>,
    },
    /// Answer a step's question (where the service keeps no record of your reads): checked against
    /// the service; a right answer is the step's evidence.
    Answer {
        /// The step id, e.g. retrieve-samples.
        step: String,
        /// Your answer.
        value: String,
    },
    /// Work with lab files.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Do a step (what the TUI's "do it" does), then check it.
    Run {
        /// The step id, e.g. store-samples.
        step: String,
        /// The folder with the official sample files (default: generated ones).
        #[arg(long)]
        samples: Option<PathBuf>,
        /// Store with one multipart/related request instead of one request per file.
        #[arg(long)]
        multipart: bool,
    },
    /// List the lab's steps.
    Steps,
    /// Import the workshop's Postman environment (dicom-service.postman_environment.json) into a profile.
    ImportPostman {
        /// The exported environment file.
        file: PathBuf,
        /// The profile to fill (default: azure).
        #[arg(long = "into", default_value = "azure")]
        into: String,
    },
    /// The terminal UI (what `dicomlab` alone opens).
    Tui {
        /// The folder with the official sample files (default: generated ones).
        #[arg(long)]
        samples: Option<PathBuf>,
    },
    /// Run the practice service: a local DICOM service that answers like Azure's.
    Serve(ServeArgs),
    /// Write the lab's three sample instances (red triangle, green square, blue circle).
    Samples {
        /// Folder to write red-triangle.dcm, green-square.dcm and blue-circle.dcm into.
        #[arg(long, default_value = "dcms")]
        out: PathBuf,
    },
    /// Grant, revoke or list roles on a running practice service (what the Azure portal's IAM blade does).
    Role {
        /// The practice service's origin or base URL (before or after grant / revoke / list).
        #[arg(long, global = true, default_value = "http://127.0.0.1:8042")]
        service: String,
        #[command(subcommand)]
        action: RoleAction,
    },
    /// The practice service's CORS setting (what the Azure portal's CORS blade of the DICOM service sets).
    Cors(dicomlab::commands::cors::CorsCommand),
    /// An app registration's redirect URIs and implicit grant on the practice tenant (Entra's
    /// Authentication blade).
    App(dicomlab::commands::app::AppCommand),
    /// Serve the OHIF viewer for the active target (the bonus exercise), on loopback.
    Ohif(dicomlab::commands::ohif::OhifCommand),
}

#[derive(Subcommand, Debug)]
enum RoleAction {
    /// Assign a role ("DICOM Data Owner" by default) to a client (the lab client by default), or to
    /// a user of the practice tenant (`--user`: the learner).
    Grant {
        #[arg(default_value = "DICOM Data Owner")]
        role: String,
        #[arg(long)]
        client: Option<String>,
        /// A user (UPN, object id, or `learner`) instead of a client.
        #[arg(long, conflicts_with = "client", num_args = 0..=1, default_missing_value = "learner")]
        user: Option<String>,
    },
    /// Remove a role assignment.
    Revoke {
        #[arg(default_value = "DICOM Data Owner")]
        role: String,
        #[arg(long)]
        client: Option<String>,
        /// A user (UPN, object id, or `learner`) instead of a client.
        #[arg(long, conflicts_with = "client", num_args = 0..=1, default_missing_value = "learner")]
        user: Option<String>,
    },
    /// Show every client and its roles.
    List,
}

#[derive(Subcommand, Debug)]
enum LabAction {
    /// Check a lab file: its format, step ids, prerequisites, instance names, placeholders and
    /// requests, each problem with its line.
    Lint {
        /// The lab file.
        file: PathBuf,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ReportFormat {
    Md,
    Json,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8042")]
    addr: SocketAddr,
    /// Data directory (index and files); kept across restarts.
    #[arg(long, conflicts_with = "ephemeral")]
    data: Option<PathBuf>,
    /// Keep everything in a temporary directory removed on exit.
    #[arg(long)]
    ephemeral: bool,
    /// Accept requests without a token (every data action allowed).
    #[arg(long)]
    no_auth: bool,
    /// Start with "DICOM Data Owner" already assigned to the lab client.
    #[arg(long)]
    grant_owner: bool,
    /// Minimum duration of an extended-query-tag re-index, in seconds (so it can be watched).
    #[arg(long, default_value_t = 2.0)]
    reindex_seconds: f64,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, default_value_t = 3599)]
    token_seconds: u64,
    /// Hold audit-log records back this many seconds, the way Azure delivers them minutes late.
    #[arg(long, default_value_t = 0)]
    audit_delay: u64,
    /// Connections served at once; one more is answered 503.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Seconds a request head (and an idle keep-alive connection) may take.
    #[arg(long, default_value_t = 15.0)]
    header_timeout: f64,
    /// Seconds a request body may send nothing before it is dropped (408).
    #[arg(long, default_value_t = 30.0)]
    body_timeout: f64,
    /// Seconds a response may wait for the client to read it.
    #[arg(long, default_value_t = 60.0)]
    write_timeout: f64,
    /// Seconds requests in flight get to finish after Ctrl-C or SIGTERM.
    #[arg(long, default_value_t = 5.0)]
    shutdown_grace: f64,
    /// MiB that uploads kept in memory and validations may hold at once.
    #[arg(long, default_value_t = 256)]
    memory_mib: u64,
    #[command(flatten)]
    cors: dicomlab::commands::cors::ServeCorsFlags,
}

fn default_data_dir() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "dicomlab")
        .context("no home directory to keep data in")?;
    Ok(dirs.data_dir().join("practice"))
}

async fn serve(args: ServeArgs) -> Result<()> {
    // Validations parse headers of many megabytes on several threads: without the tunables glibc keeps
    // each thread's freed blocks resident, and the memory budget would bound what is live but not what
    // the process holds. (exec keeps the PID; nothing has been printed yet.)
    #[cfg(target_os = "linux")]
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hyper=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let data_dir = if args.ephemeral {
        None
    } else {
        Some(args.data.map_or_else(default_data_dir, Ok)?)
    };
    let config = ServiceConfig {
        addr: args.addr,
        data_dir,
        auth: !args.no_auth,
        grant_owner: args.grant_owner,
        token_lifetime: Duration::from_secs(args.token_seconds.max(1)),
        reindex_min_duration: Duration::from_secs_f64(args.reindex_seconds.clamp(0.0, 3600.0)),
        audit_delay: Duration::from_secs(args.audit_delay.min(24 * 3600)),
        memory_budget: args.memory_mib.clamp(16, 1 << 20) * 1024 * 1024,
        limits: practice::server::ConnectionLimits {
            max_connections: args.max_connections.max(1),
            header_timeout: seconds(args.header_timeout),
            body_timeout: seconds(args.body_timeout),
            write_timeout: seconds(args.write_timeout),
            shutdown_grace: seconds(args.shutdown_grace),
        },
        cors: args.cors.config(),
        ..ServiceConfig::default()
    };
    let running = practice::start(config).await?;
    println!("dicomlab practice service");
    println!("  base URL (baseUrl)   {}", running.base_url);
    println!("  data                 {}", running.data_dir.display());
    if args.no_auth {
        println!("  auth                 off (--no-auth): no token needed");
    } else {
        println!("  token endpoint (v1)  {}", running.token_url());
        println!("  token endpoint (v2)  {}", running.token_url_v2());
        println!("  tenantId             {}", running.tenant_id);
        println!("  clientId             {}", running.client_id);
        println!("  clientSecret         {}", running.client_secret);
        println!("  resource             {}", running.resource);
        println!(
            "  audit log            {}/loganalytics/v1/workspaces/{}/query (workspace {}; token resource https://api.loganalytics.io)",
            running.origin,
            running.workspace_id(),
            running.workspace_id()
        );
        let roles = running.service().auth.roles_of(&running.client_id);
        let names: Vec<_> = roles.iter().map(|r| r.name()).collect();
        if !roles
            .iter()
            .any(|r| matches!(r, Role::DataOwner | Role::DataReader))
        {
            println!(
                "  roles                {}no DICOM role yet: grant with `dicomlab role grant --service {}`",
                if names.is_empty() {
                    String::new()
                } else {
                    format!("{}; ", names.join(", "))
                },
                running.origin
            );
        } else {
            println!("  roles                {}", names.join(", "));
        }
    }
    for line in dicomlab::commands::serve_lines(&running, args.no_auth) {
        println!("{line}");
    }
    println!("Press Ctrl-C to stop.");
    stop_signal().await?;
    // Requests in flight get the grace period; then whatever is left is dropped.
    running.shutdown().await;
    Ok(())
}

/// A duration in seconds from the command line (at least 0.1 s, at most a day).
fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.1, 86_400.0))
}

/// Ctrl-C, or SIGTERM (what `kill` and service managers send).
async fn stop_signal() -> Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("waiting for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

async fn role(service: &str, action: RoleAction) -> Result<()> {
    use dicomlab::target::RoleAdmin;
    let (role, client, grant) = match action {
        RoleAction::List => {
            let admin = RoleAdmin::http(service, None);
            for c in admin.list().await? {
                let lab = if c.lab_client {
                    " (lab client)".to_string()
                } else if c.user {
                    format!(" (user {})", c.name)
                } else {
                    String::new()
                };
                println!(
                    "{}{lab}: {}",
                    c.client_id,
                    if c.roles.is_empty() {
                        "no role".to_string()
                    } else {
                        c.roles.join(", ")
                    }
                );
            }
            return Ok(());
        }
        RoleAction::Grant { role, client, user } => (role, client.or(user), true),
        RoleAction::Revoke { role, client, user } => (role, client.or(user), false),
    };
    let Some(role) = Role::parse(&role) else {
        bail!(
            "unknown role '{role}': use \"DICOM Data Owner\" (owner), \"DICOM Data Reader\" (reader) or \"Log Analytics Reader\""
        );
    };
    let admin = RoleAdmin::http(service, client);
    println!("{}", admin.set(role, None, grant).await?);
    Ok(())
}

/// Logs of the headless commands go to a file in the data dir, never to the terminal.
fn log_to_file() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let dir = dicomlab::config::data_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let appender = tracing_appender::rolling::never(&dir, "dicomlab.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DICOMLAB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hyper=warn")),
        )
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .ok()?;
    Some(guard)
}

struct Loaded {
    lab: Lab,
    profile_name: String,
    profile: Profile,
    /// Every profile, with environment overrides applied.
    profiles: std::collections::BTreeMap<String, Profile>,
    /// The config file (the TUI's environment screen saves there).
    config_path: PathBuf,
}

fn load(cli: &Cli) -> Result<Loaded> {
    let lab = match &cli.lab {
        Some(p) => Lab::load(p)?,
        None => Lab::embedded()?,
    };
    let path = match &cli.config {
        Some(p) => p.clone(),
        None => dicomlab::config::default_path()
            .context("no config dir on this system: pass --config FILE")?,
    };
    let config = Config::load(&path)?;
    let (profile_name, profile) = config.active(cli.profile.as_deref())?;
    // Environment overrides apply to the active profile only.
    let mut profiles = config.profiles.clone();
    profiles.insert(profile_name.clone(), profile.clone());
    Ok(Loaded {
        lab,
        profile_name,
        profile,
        profiles,
        config_path: path,
    })
}

/// Says what is wrong with the profile (the checks say it again, on their step).
fn warn_problems(l: &Loaded) {
    let problems = l.profile.problems();
    if !problems.is_empty() {
        eprintln!(
            "profile '{}' has problems: {}",
            l.profile_name,
            problems.join("; ")
        );
    }
}

async fn open_session(l: &Loaded) -> Result<Session> {
    warn_problems(l);
    Ok(Session::open(
        &l.profile,
        Some(dicomlab::config::data_dir().join("practice")),
        None,
    )
    .await?)
}

fn progress_store() -> ProgressStore {
    let store = ProgressStore::load(&dicomlab::config::data_dir().join("progress.json"));
    if let Some(w) = &store.warning {
        eprintln!("warning: {w}");
    }
    store
}

fn print_outcome(lab: &Lab, step_id: &str, o: &Outcome, vars: &[(String, String)]) {
    use dicomlab::text::visible;
    let fill = |t: &str| {
        visible(
            &vars
                .iter()
                .fold(t.to_string(), |acc, (k, v)| acc.replace(k.as_str(), v)),
        )
        .into_owned()
    };
    let title = lab.step(step_id).map_or("", |s| s.title.as_str());
    let optional = if lab.step(step_id).is_some_and(|s| s.optional) {
        " (optional)"
    } else {
        ""
    };
    println!(" {} {step_id:<20} {title}{optional}", o.symbol(false));
    match o {
        Outcome::Fail {
            expected,
            observed,
            diagnosis,
            ..
        } => {
            println!("     expected  {}", fill(expected));
            println!("     observed  {}", fill(observed));
            println!("     fix       {}", fill(diagnosis));
        }
        Outcome::Pass { detail, evidence } => {
            println!("     {}", fill(detail));
            let when = evidence
                .at
                .as_deref()
                .map(|a| format!(" · {}", dicomlab::lab::clock::human(a)))
                .unwrap_or_default();
            println!(
                "     evidence  {}: {}{when}",
                evidence.source.label(),
                fill(&evidence.summary)
            );
        }
        Outcome::Ready { detail, .. } => println!("     ready: {}", fill(detail)),
        Outcome::Waiting { reason, .. } => println!("     waiting: {}", fill(reason)),
        Outcome::Blocked { reason } => println!("     blocked: {}", fill(reason)),
        Outcome::NotSupported { reason } => println!("     not supported: {}", fill(reason)),
        Outcome::Error { message } => println!("     error: {}", fill(message)),
    }
    for (i, t) in o.tried().iter().enumerate() {
        let head = if i == 0 { "you tried" } else { "         " };
        println!("     {head} {}", fill(&t.text()));
    }
    if !o.is_pass()
        && let Some(q) = lab.step(step_id).and_then(|s| s.question.as_ref())
    {
        println!(
            "     question  {} (answer with `dicomlab answer {step_id} VALUE`)",
            fill(&q.ask)
        );
    }
}

async fn check(cli: &Cli, step: Option<String>, json: bool) -> Result<std::process::ExitCode> {
    let l = load(cli)?;
    if let Some(s) = &step
        && l.lab.step(s).is_none()
    {
        bail!("no step '{s}' in {} (see `dicomlab steps`)", l.lab.title);
    }
    let session = open_session(&l).await?;
    let mut store = progress_store();
    let results = session.check_all(&l.lab, &mut store, step.as_deref()).await;
    store.save()?;
    let required_ok = results.iter().all(|(id, o)| {
        o.is_pass()
            || matches!(o, Outcome::NotSupported { .. })
            || l.lab.step(id).is_some_and(|s| s.optional)
    });
    if json {
        let items: Vec<_> = results
            .iter()
            .map(|(id, o)| serde_json::json!({"step": id, "outcome": o}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "lab": l.lab.id, "profile": l.profile_name, "target": session.client.base(), "steps": items, "ok": required_ok,
            }))?
        );
    } else {
        println!(
            "{} · profile {} · {}",
            l.lab.title,
            l.profile_name,
            session.client.base()
        );
        for (id, o) in &results {
            print_outcome(&l.lab, id, o, &session.placeholders(&l.lab));
        }
        let passed = results.iter().filter(|(_, o)| o.is_pass()).count();
        println!(
            "{passed}/{} done{}",
            results.len(),
            if required_ok {
                " — every required step is done"
            } else {
                ""
            }
        );
    }
    Ok(if required_ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

async fn run_step(
    cli: &Cli,
    step: &str,
    samples: Option<PathBuf>,
    multipart: bool,
) -> Result<std::process::ExitCode> {
    let l = load(cli)?;
    let Some(s) = l.lab.step(step) else {
        bail!("no step '{step}' in {} (see `dicomlab steps`)", l.lab.title)
    };
    // The exchanges of the action are the learner's, done in dicomlab: kept as evidence.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    warn_problems(&l);
    let session = Session::open(
        &l.profile,
        Some(dicomlab::config::data_dir().join("practice")),
        Some(tx),
    )
    .await?;
    let mode = if multipart {
        StoreMode::Multipart
    } else {
        StoreMode::Single
    };
    let mut store = progress_store();
    let subject = l.lab.step_of_kind("tag_added").and_then(|t| {
        store
            .steps(&l.lab.id, &session.target_key)
            .get(&t.id)?
            .subject
            .clone()
    });
    match dicomlab::lab::actions::perform(
        &session,
        &l.lab,
        s,
        samples.as_deref(),
        mode,
        subject.as_deref(),
    )
    .await
    {
        Ok(done) => println!("did: {}", dicomlab::text::visible(&done)),
        Err(e) => println!(
            "could not do it: {}",
            dicomlab::text::visible(&e.to_string())
        ),
    }
    while let Ok(e) = rx.try_recv() {
        session.keep_exchange(&l.lab, &mut store, &e);
    }
    let outcome = session
        .check_step(&l.lab, &mut store, step)
        .await
        .context("step vanished")?;
    store.save()?;
    print_outcome(&l.lab, step, &outcome, &session.placeholders(&l.lab));
    Ok(if outcome.is_pass() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

async fn answer(cli: &Cli, step: &str, value: &str) -> Result<std::process::ExitCode> {
    let l = load(cli)?;
    if l.lab.step(step).is_none() {
        bail!("no step '{step}' in {} (see `dicomlab steps`)", l.lab.title);
    }
    let session = open_session(&l).await?;
    let mut store = progress_store();
    let before = session.before(&l.lab, &store);
    let outcome = session.answer(&l.lab, &before, step, value).await;
    match outcome.evidence() {
        Some(e) => store.credit(&l.lab.id, &session.target_key, step, e.clone()),
        None => session.record(&l.lab, &mut store, step, &outcome),
    }
    store.save()?;
    print_outcome(&l.lab, step, &outcome, &session.placeholders(&l.lab));
    Ok(if outcome.is_pass() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// The learner's name for the report: `--name` (kept in the config), the config's, or asked once on
/// a terminal.
fn learner_name(cli: &Cli, given: Option<String>) -> Result<Option<String>> {
    use std::io::IsTerminal;
    let path = config_path(cli)?;
    let mut config = Config::load(&path)?;
    let name = match given {
        Some(n) => Some(n.trim().to_string()),
        None if config.learner.is_some() => return Ok(config.learner.filter(|n| !n.is_empty())),
        None if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => {
            eprint!("Your name, for the report (Enter to leave it out): ");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            Some(
                line.trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(80)
                    .collect(),
            )
        }
        None => return Ok(None),
    };
    config.learner = name.clone();
    config.save(&path)?;
    Ok(name.filter(|n| !n.is_empty()))
}

fn report(cli: &Cli, format: ReportFormat, name: Option<String>) -> Result<()> {
    let l = load(cli)?;
    let learner = learner_name(cli, name)?;
    let store = progress_store();
    let targets = store
        .progress
        .labs
        .get(&l.lab.id)
        .cloned()
        .unwrap_or_default();
    let format = match format {
        ReportFormat::Md => dicomlab::lab::report::Format::Md,
        ReportFormat::Json => dicomlab::lab::report::Format::Json,
    };
    let o = dicomlab::lab::report::render(&l.lab, learner.as_deref(), &targets, format);
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), o.as_bytes());
    Ok(())
}

fn config_path(cli: &Cli) -> Result<PathBuf> {
    match &cli.config {
        Some(p) => Ok(p.clone()),
        None => dicomlab::config::default_path()
            .context("no config dir on this system: pass --config FILE"),
    }
}

async fn tui(cli: &Cli, samples: Option<PathBuf>) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        bail!("the TUI needs a terminal; for scripts use `dicomlab check`, `run` and `report`");
    }
    let l = load(cli)?;
    let data = dicomlab::config::data_dir();
    dicomlab::tui::run(dicomlab::tui::Options {
        lab: l.lab,
        profile_name: l.profile_name,
        profile: l.profile,
        profiles: l.profiles,
        progress_path: data.join("progress.json"),
        practice_data: data.join("practice"),
        samples,
        log_path: data.join("dicomlab.log"),
        ask_name: Config::load(&l.config_path).is_ok_and(|c| c.learner.is_none()),
        config_path: Some(l.config_path),
    })
    .await?;
    Ok(())
}

/// glibc's malloc keeps a heap arena per thread and, after a large block is freed, raises its mmap
/// threshold so that later large blocks (a 3 MB image, a file being validated) come from those arenas and
/// stay resident. For the long-lived TUI (embedded practice service included) that doubled the memory
/// it keeps. Its documented tunables are read from the environment at process start only, so the TUI
/// re-executes itself once with them set: two arenas, a fixed 128 KiB mmap threshold. Other allocators
/// ignore these variables; `DICOMLAB_MALLOC=default` (or the variables already set) skips this.
#[cfg(target_os = "linux")]
fn tune_allocator() {
    use std::os::unix::process::CommandExt;
    const TUNABLES: &str = "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072";
    if std::env::var_os("GLIBC_TUNABLES").is_some()
        || std::env::var("DICOMLAB_MALLOC").is_ok_and(|v| v == "default")
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", TUNABLES)
        .exec();
    // exec returns only on failure: go on untuned.
    tracing::debug!(%err, "could not re-execute with the malloc tunables");
}

fn main() -> Result<std::process::ExitCode> {
    let cli = Cli::parse();
    #[cfg(target_os = "linux")]
    if matches!(cli.command, None | Some(Command::Tui { .. })) {
        tune_allocator();
    }
    // A small blocking pool: the practice service runs its index calls there, and every extra thread
    // costs memory (its own malloc arena) that a laptop in a classroom would rather keep.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_cli(cli))
}

async fn run_cli(cli: Cli) -> Result<std::process::ExitCode> {
    let _log = if matches!(cli.command, Some(Command::Serve(_))) {
        None
    } else {
        log_to_file()
    };
    let ok = Ok(std::process::ExitCode::SUCCESS);
    match &cli.command {
        Some(Command::Check { step, json }) => return check(&cli, step.clone(), *json).await,
        Some(Command::Run {
            step,
            samples,
            multipart,
        }) => return run_step(&cli, step, samples.clone(), *multipart).await,
        Some(Command::Report { format, name }) => {
            report(&cli, *format, name.clone())?;
            return ok;
        }
        Some(Command::Answer { step, value }) => return answer(&cli, step, value).await,
        Some(Command::Lab {
            action: LabAction::Lint { file },
        }) => {
            return match Lab::load(file) {
                Ok(lab) => {
                    println!(
                        "{}: lab '{}' is valid — {} exercises, {} steps, {} dataset instances",
                        file.display(),
                        lab.id,
                        lab.exercises.len(),
                        lab.steps().count(),
                        lab.dataset.instances.len()
                    );
                    ok
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(std::process::ExitCode::FAILURE)
                }
            };
        }
        Some(Command::ImportPostman { file, into }) => {
            let path = config_path(&cli)?;
            let mut config = Config::load(&path)?;
            let profile = config
                .profiles
                .entry(into.clone())
                .or_insert_with(|| Profile::new(dicomlab::target::TargetKind::Azure));
            let imported = dicomlab::config::import_postman(file, profile)?;
            let problems = profile.problems();
            let target = dicomlab::config::target_key(profile);
            config.profile = into.clone();
            config.save(&path)?;
            // Done in dicomlab: the import is the evidence of the lab's import step.
            if let Ok(l) = load(&cli)
                && let Some(step) = l.lab.step_of_kind("postman_import")
            {
                let mut store = progress_store();
                store.credit(
                    &l.lab.id,
                    &target,
                    &step.id,
                    dicomlab::lab::evidence::Evidence::new(
                        dicomlab::lab::evidence::Source::Dicomlab,
                        format!(
                            "imported {} ({}) into profile {into}",
                            file.display(),
                            imported.join(", ")
                        ),
                        Some(time::OffsetDateTime::now_utc()),
                    ),
                );
                store.save()?;
            }
            println!(
                "imported {} into profile '{into}' of {} (now the active profile)",
                imported.join(", "),
                path.display()
            );
            for p in problems {
                println!("  still to fix: {p}");
            }
            return ok;
        }
        Some(Command::Steps) => {
            let l = load(&cli)?;
            for e in &l.lab.exercises {
                println!("{}", e.title);
                for s in &e.steps {
                    println!(
                        "  {:<22} {}{}",
                        s.id,
                        s.title,
                        if s.optional { " (optional)" } else { "" }
                    );
                }
            }
            return ok;
        }
        _ => {}
    }
    match cli.command {
        Some(Command::Serve(args)) => serve(args).await?,
        Some(Command::Samples { out }) => {
            let paths = dicomlab::dicom::samples::write_samples(&out)?;
            for p in paths {
                println!("{}", p.display());
            }
        }
        Some(Command::Role { service, action }) => role(&service, action).await?,
        Some(Command::Cors(c)) => c.run().await?,
        Some(Command::App(c)) => c.run().await?,
        Some(Command::Ohif(c)) => c.run(cli.config, cli.profile, cli.lab).await?,
        Some(Command::Tui { ref samples }) => tui(&cli, samples.clone()).await?,
        None => tui(&cli, None).await?,
        _ => {}
    }
    ok
}
