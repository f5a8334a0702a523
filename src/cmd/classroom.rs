//! `classroom`: a room's own DICOM services, the lab over SSH and the instructor's dashboard, in one
//! process (`dicomlab_classroom`); `classroom status`: a snapshot of the room from its folder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::Cli;
use dicomlab_classroom::dashboard::{self, Header};
use dicomlab_classroom::folder::Folder;
use dicomlab_classroom::room::{self, Room};
use dicomlab_classroom::{Classroom, ClassroomConfig};
use dicomlab_lab::Lab;

#[derive(clap::Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ClassroomArgs {
    #[command(subcommand)]
    action: Option<ClassroomAction>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub(crate) enum ClassroomAction {
    /// Print the room now (also the end-of-class record): each learner's exercises, current step,
    /// time on it, whether they look stuck, their last failure.
    Status {
        /// The classroom folder.
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = StatusFormat::Md)]
        format: StatusFormat,
    },
    /// Give a learner a new personal code (their SSH password; the old one stops working) and print
    /// it, or let a self-reporting learner's next report take a new token. For a classroom that is
    /// not running: a running one does it on its dashboard (select the learner, R twice).
    ResetCode {
        /// The learner's name.
        name: String,
        /// The classroom folder.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Take a learner out of the room — a name nobody uses, or one someone squatted: their entry, their
    /// service and its data, their verdicts. The name is free again. For a classroom that is not
    /// running (a running one holds the room in memory).
    Remove {
        /// The learner's name.
        name: String,
        /// The classroom folder.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum StatusFormat {
    Md,
    Json,
    Csv,
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RunArgs {
    /// The classroom folder: learners, their services and progress, the host key, the log (kept
    /// across restarts).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The HTTP address learners' Postman, curl or Python (and `dicomlab join`) reach.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http: SocketAddr,
    /// The SSH address learners connect to.
    #[arg(long, default_value = "0.0.0.0:2222")]
    ssh: SocketAddr,
    /// The class code (learners' SSH password); default: the one kept in the folder, or a new one.
    #[arg(long, env = "DICOMLAB_CLASS_CODE", hide_env_values = true)]
    code: Option<String>,
    /// How learners reach the HTTP address (e.g. http://classroom.local:8080); default: this
    /// machine's host name and the port.
    #[arg(long)]
    public_url: Option<String>,
    /// SSH sessions at once; one more is told the room is full.
    #[arg(long, default_value_t = 60)]
    max_sessions: usize,
    /// MiB classroom.log may hold; then it becomes classroom.log.1 and starts anew (at most twice
    /// this on disk, whoever sends requests).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    log_max_mib: u64,
    /// Learners (each has a service and a folder).
    #[arg(long, default_value_t = 100)]
    max_learners: usize,
    /// Requests a second one client address may send the HTTP port (on average; 429 beyond). Behind a
    /// reverse proxy every learner has the proxy's address: raise it.
    #[arg(long, default_value_t = 50.0, value_parser = super::positive)]
    rate: f64,
    /// Requests one client address may send the HTTP port at once.
    #[arg(long, default_value_t = 200.0, value_parser = super::positive)]
    rate_burst: f64,
    /// MiB each learner's stored instances may take (a store beyond is refused with the reason).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1024 * 1024))]
    learner_storage_mib: u64,
    /// Minutes without a key before an SSH session is closed (told a minute before).
    #[arg(long, default_value_t = 45.0, value_parser = super::positive)]
    idle_minutes: f64,
    /// No dashboard: print where to connect and run until Ctrl-C or SIGTERM (a server without a
    /// terminal, tests).
    #[arg(long)]
    headless: bool,
    /// Extended query tag re-indexes take no time (tests and benches).
    #[arg(long, hide = true)]
    instant_reindex: bool,
    /// The first wait after a wrong class code, in seconds (it doubles each time).
    #[arg(long, hide = true, default_value_t = 1.0, value_parser = super::positive)]
    refusal_seconds: f64,
}

pub(crate) fn default_dir() -> PathBuf {
    dicomlab_lab::config::data_dir().join("classroom")
}

fn lab(cli: &Cli) -> Result<Lab> {
    Ok(match &cli.lab {
        Some(p) => Lab::load(p)?,
        None => Lab::embedded()?,
    })
}

pub(crate) async fn classroom(cli: &Cli, args: &ClassroomArgs) -> Result<()> {
    match &args.action {
        Some(ClassroomAction::Status { dir, format }) => status(cli, dir.clone(), *format),
        Some(ClassroomAction::ResetCode { name, dir }) => reset_code(name, dir.clone()),
        Some(ClassroomAction::Remove { name, dir }) => remove(name, dir.clone()),
        None => run(cli, &args.run).await,
    }
}

fn status(cli: &Cli, dir: Option<PathBuf>, format: StatusFormat) -> Result<()> {
    let lab = lab(cli)?;
    let dir = dir.unwrap_or_else(default_dir);
    let folder = Folder::existing(&dir)?;
    let learners = folder.learners()?;
    let room = Room::read(
        &lab,
        &folder,
        &learners,
        None,
        time::OffsetDateTime::now_utc(),
    );
    let format = match format {
        StatusFormat::Md => room::Format::Md,
        StatusFormat::Json => room::Format::Json,
        StatusFormat::Csv => room::Format::Csv,
    };
    print!("{}", room::render(&room, format));
    Ok(())
}

fn reset_code(name: &str, dir: Option<PathBuf>) -> Result<()> {
    let dir = dir.unwrap_or_else(default_dir);
    let folder = Folder::existing(&dir)?;
    let learner = dicomlab_classroom::names::LearnerName::parse(name)
        .map_err(|e| anyhow::anyhow!("the name '{name}' cannot be used: {e}"))?;
    match dicomlab_classroom::reset_offline(&folder, &learner)? {
        dicomlab_classroom::Reset::Code(code) => println!(
            "{learner}'s new personal code: {} (their SSH password from now on; the old one no longer logs in)",
            code.expose()
        ),
        dicomlab_classroom::Reset::Token => println!(
            "{learner} reports from their own service: their next `dicomlab join` takes a new token"
        ),
    }
    Ok(())
}

/// The shortest class code accepted (every wrong guess waits, but a short code is still guessed).
const MIN_CODE: usize = 8;

fn remove(name: &str, dir: Option<PathBuf>) -> Result<()> {
    let dir = dir.unwrap_or_else(default_dir);
    let folder = Folder::existing(&dir)?;
    let learner = dicomlab_classroom::names::LearnerName::parse(name)
        .map_err(|e| anyhow::anyhow!("the name '{name}' cannot be used: {e}"))?;
    dicomlab_classroom::remove_offline(&folder, &learner)?;
    println!(
        "{learner} is out of the room: their service, data and verdicts are gone, and the name is free"
    );
    Ok(())
}

async fn run(cli: &Cli, args: &RunArgs) -> Result<()> {
    use std::io::IsTerminal;
    let lab = lab(cli)?;
    let dir = args.dir.clone().unwrap_or_else(default_dir);
    // The folder first (refused if foreign), then its log: the dashboard owns the terminal.
    let folder = Folder::create(&dir)?;
    let _log = super::log_into(folder.dir(), "classroom.log", args.log_max_mib << 20);
    let mut config = ClassroomConfig::new(dir.clone());
    config.http = args.http;
    config.ssh = args.ssh;
    config.code = args
        .code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(dicomlab_dicomweb::Secret::new);
    if let Some(c) = &config.code
        && c.expose().chars().count() < MIN_CODE
    {
        anyhow::bail!(
            "a class code of {} characters is guessed too easily: give one of at least {MIN_CODE} (or none: the classroom makes one, like kx7p-2mqa-h4rt)",
            c.expose().chars().count()
        );
    }
    config.public_url = args.public_url.clone();
    config.max_sessions = args.max_sessions.max(1);
    config.max_learners = args.max_learners.max(1);
    config.rate_per_sec = args.rate;
    config.rate_burst = args.rate_burst;
    config.learner_storage = args.learner_storage_mib * 1024 * 1024;
    config.idle = Duration::from_secs_f64((args.idle_minutes * 60.0).clamp(60.0, 86_400.0));
    config.first_refusal_delay = Duration::from_secs_f64(args.refusal_seconds.clamp(0.01, 30.0));
    if args.instant_reindex {
        config.reindex_min = Duration::ZERO;
    }
    let runner: Arc<dyn dicomlab_classroom::ssh::Runner> =
        Arc::new(dicomlab_classroom::lab_tui::LabRunner);
    let classroom = Classroom::start(config, lab, runner)
        .await
        .context("the classroom could not start")?;
    let core = classroom.core.clone();
    let host = core.public_origin();
    let host_name = host
        .split_once("://")
        .map_or(host.as_str(), |(_, h)| h)
        .rsplit_once(':')
        .map_or(host.as_str(), |(h, _)| h)
        .to_string();
    let header = Header {
        code: core.gate.code().to_string(),
        ssh: format!("ssh -p {} <name>@{host_name}", classroom.ssh.addr.port()),
        fingerprint: classroom.ssh.fingerprint.clone(),
        http: format!("{host}/l/<name>/v1"),
        log: folder.log_file().display().to_string(),
    };
    let headless = args.headless || !std::io::stdout().is_terminal();
    if headless {
        println!("dicomlab classroom · {}", core.lab.title);
        println!("  learners type     {}", header.ssh);
        println!("  class code        {}", header.code);
        println!("  host key          {}", header.fingerprint);
        println!("  their service     {}", header.http);
        println!("  folder            {}", dir.display());
        println!("  log               {}", header.log);
        println!("Press Ctrl-C to close the classroom.");
        super::stop_signal().await?;
    } else {
        tokio::select! {
            r = dashboard::run(core, header) => r.context("the dashboard")?,
            r = super::stop_signal() => r?,
        }
    }
    classroom.shutdown().await;
    Ok(())
}
