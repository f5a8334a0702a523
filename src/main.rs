//! The `dicomlab` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use dicomlab::config::{Config, Profile};
use dicomlab::dicomweb::StoreMode;
use dicomlab::lab::engine::Session;
use dicomlab::lab::progress::{ProgressStore, Status};
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
    /// The learner's progress, for an instructor (never a secret or a token).
    Report {
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
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
        /// The practice service's origin or base URL.
        #[arg(long, default_value = "http://127.0.0.1:8042")]
        service: String,
        #[command(subcommand)]
        action: RoleAction,
    },
}

#[derive(Subcommand, Debug)]
enum RoleAction {
    /// Assign a role ("DICOM Data Owner" by default) to a client (the lab client by default).
    Grant {
        #[arg(default_value = "DICOM Data Owner")]
        role: String,
        #[arg(long)]
        client: Option<String>,
    },
    /// Remove a role assignment.
    Revoke {
        #[arg(default_value = "DICOM Data Owner")]
        role: String,
        #[arg(long)]
        client: Option<String>,
    },
    /// Show every client and its roles.
    List,
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
        memory_budget: args.memory_mib.clamp(16, 1 << 20) * 1024 * 1024,
        limits: practice::server::ConnectionLimits {
            max_connections: args.max_connections.max(1),
            header_timeout: seconds(args.header_timeout),
            body_timeout: seconds(args.body_timeout),
            write_timeout: seconds(args.write_timeout),
            shutdown_grace: seconds(args.shutdown_grace),
        },
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
        let roles = running.service().auth.roles_of(&running.client_id);
        if roles.is_empty() {
            println!(
                "  roles                none yet: grant with `dicomlab role grant --service {}`",
                running.origin
            );
        } else {
            let names: Vec<_> = roles.iter().map(|r| r.name()).collect();
            println!("  roles                {}", names.join(", "));
        }
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
    let origin = service
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .trim_end_matches("/v2")
        .to_string();
    let http = reqwest::Client::new();
    let list = || async {
        let resp = http
            .get(format!("{origin}/admin/roles"))
            .header("X-Dicomlab-Admin", "1")
            .send()
            .await
            .with_context(|| format!("cannot reach {origin}"))?;
        if !resp.status().is_success() {
            bail!(
                "{origin} answered {} to /admin/roles: is it a dicomlab practice service?",
                resp.status()
            );
        }
        Ok::<Vec<serde_json::Value>, anyhow::Error>(resp.json().await?)
    };
    let (role, client, grant) = match action {
        RoleAction::List => {
            for c in list().await? {
                let roles: Vec<&str> = c["roles"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|r| r.as_str()).collect())
                    .unwrap_or_default();
                let lab = if c["labClient"].as_bool() == Some(true) {
                    " (lab client)"
                } else {
                    ""
                };
                println!(
                    "{}{lab}: {}",
                    c["clientId"].as_str().unwrap_or("?"),
                    if roles.is_empty() {
                        "no role".to_string()
                    } else {
                        roles.join(", ")
                    }
                );
            }
            return Ok(());
        }
        RoleAction::Grant { role, client } => (role, client, true),
        RoleAction::Revoke { role, client } => (role, client, false),
    };
    let Some(role) = Role::parse(&role) else {
        bail!(
            "unknown role '{role}': use \"DICOM Data Owner\" (owner) or \"DICOM Data Reader\" (reader)"
        );
    };
    let client = match client {
        Some(c) => c,
        None => list()
            .await?
            .into_iter()
            .find(|c| c["labClient"].as_bool() == Some(true))
            .and_then(|c| c["clientId"].as_str().map(str::to_string))
            .context("the service has no lab client")?,
    };
    let url = format!(
        "{origin}/admin/roles/{client}/{}",
        role.name().replace(' ', "%20")
    );
    let req = if grant {
        http.put(&url)
    } else {
        http.delete(&url)
    };
    let resp = req
        .header("X-Dicomlab-Admin", "1")
        .send()
        .await
        .with_context(|| format!("cannot reach {origin}"))?;
    if !resp.status().is_success() {
        bail!(
            "{} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    println!(
        "{} {} {} client {client}",
        if grant { "granted" } else { "revoked" },
        role.name(),
        if grant { "to" } else { "from" }
    );
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

async fn open_session(l: &Loaded) -> Result<Session> {
    let problems = l.profile.problems();
    if !problems.is_empty() {
        eprintln!(
            "profile '{}' has problems: {}",
            l.profile_name,
            problems.join("; ")
        );
    }
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
    let fill = |t: &str| {
        vars.iter()
            .fold(t.to_string(), |acc, (k, v)| acc.replace(k.as_str(), v))
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
        } => {
            println!("     expected  {expected}");
            println!("     observed  {observed}");
            println!("     fix       {}", fill(diagnosis));
        }
        Outcome::Pass { detail } => println!("     {detail}"),
        Outcome::Blocked { reason } => println!("     blocked: {reason}"),
        Outcome::NotSupported { reason } => println!("     not supported: {reason}"),
        Outcome::Error { message } => println!("     error: {message}"),
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
            print_outcome(&l.lab, id, o, &session.placeholders());
        }
        let passed = results.iter().filter(|(_, o)| o.is_pass()).count();
        println!(
            "{passed}/{} passed{}",
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
    let session = open_session(&l).await?;
    let mode = if multipart {
        StoreMode::Multipart
    } else {
        StoreMode::Single
    };
    match dicomlab::lab::actions::perform(&session, &s.check, samples.as_deref(), mode).await {
        Ok(done) => println!("did: {done}"),
        Err(e) => println!("could not do it: {e}"),
    }
    let mut store = progress_store();
    let outcome = session
        .check_step(&l.lab, &mut store, step)
        .await
        .context("step vanished")?;
    store.save()?;
    print_outcome(&l.lab, step, &outcome, &session.placeholders());
    Ok(if outcome.is_pass() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// `println!` into a String.
macro_rules! outln {
    ($o:expr) => { $o.push('\n') };
    ($o:expr, $($arg:tt)*) => {{ $o.push_str(&format!($($arg)*)); $o.push('\n'); }};
}

fn report(cli: &Cli, format: ReportFormat) -> Result<()> {
    let l = load(cli)?;
    let store = progress_store();
    let mut o = String::new();
    let targets = store
        .progress
        .labs
        .get(&l.lab.id)
        .cloned()
        .unwrap_or_default();
    match format {
        ReportFormat::Json => {
            outln!(
                o,
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"lab": l.lab.id, "title": l.lab.title, "targets": targets})
                )?
            );
        }
        ReportFormat::Md => {
            outln!(o, "# {} — progress\n", l.lab.title);
            if targets.is_empty() {
                outln!(o, "No step checked yet.");
            }
            for (target, steps) in &targets {
                let done = l
                    .lab
                    .steps()
                    .filter(|s| steps.get(&s.id).is_some_and(|p| p.status == Status::Done))
                    .count();
                outln!(
                    o,
                    "## Target: {target}\n\n{done} of {} steps done.\n",
                    l.lab.steps().count()
                );
                outln!(
                    o,
                    "| step | status | attempts | first | last | last failure |"
                );
                outln!(o, "|---|---|---|---|---|---|");
                for s in l.lab.steps() {
                    match steps.get(&s.id) {
                        Some(p) => outln!(
                            o,
                            "| {} | {:?} | {} | {} | {} | {} |",
                            s.title,
                            p.status,
                            p.attempts,
                            p.first,
                            p.last,
                            p.last_failure.as_deref().unwrap_or("").replace('|', "\\|")
                        ),
                        None => outln!(o, "| {} | pending | 0 | | | |", s.title),
                    }
                }
                outln!(o);
            }
        }
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), o.as_bytes());
    Ok(())
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
        Some(Command::Report { format }) => {
            report(&cli, *format)?;
            return ok;
        }
        Some(Command::ImportPostman { file, into }) => {
            let path = match &cli.config {
                Some(p) => p.clone(),
                None => dicomlab::config::default_path()
                    .context("no config dir on this system: pass --config FILE")?,
            };
            let mut config = Config::load(&path)?;
            let profile = config
                .profiles
                .entry(into.clone())
                .or_insert_with(|| Profile::new(dicomlab::lab::checks::TargetKind::Azure));
            let imported = dicomlab::config::import_postman(file, profile)?;
            let problems = profile.problems();
            config.profile = into.clone();
            config.save(&path)?;
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
        Some(Command::Tui { ref samples }) => tui(&cli, samples.clone()).await?,
        None => tui(&cli, None).await?,
        _ => {}
    }
    ok
}
