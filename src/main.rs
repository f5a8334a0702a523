//! The `dicomlab` command line: the arguments, and one small module per subcommand under `cmd/`. The
//! parts live in the workspace's crates (`crates/*`: the lab engine, the TUI, the practice service,
//! the classroom…); this binary ties them together and hands the lab its embedded practice service.

// The arguments' doc comments are clap's `--help` text, written for a terminal (`host[:port]`, a bare
// `http://…` example), not rustdoc markdown.
#![allow(rustdoc::bare_urls, rustdoc::broken_intra_doc_links)]

mod cmd;
mod logfile;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use cmd::classroom::ClassroomArgs;
use cmd::lab::LabAction;
use cmd::postman::PostmanAction;
use cmd::report::ReportFormat;
use cmd::role::RoleAction;
use cmd::serve::ServeArgs;

#[derive(Parser, Debug)]
#[command(
    name = "dicomlab",
    version,
    about = "Walks you through the hands-on lab \"DICOM service\" and checks each step against the live service."
)]
pub(crate) struct Cli {
    /// Config file (default: the dicomlab config dir's config.toml).
    #[arg(long, global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Profile: practice (the embedded service), azure, generic, or one of yours.
    #[arg(long, global = true)]
    pub(crate) profile: Option<String>,
    /// A lab file instead of the embedded one.
    #[arg(long, global = true)]
    pub(crate) lab: Option<PathBuf>,
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
    /// The workshop's Postman files for the active target (`postman export [--out DIR]`).
    Postman {
        #[command(subcommand)]
        action: PostmanAction,
    },
    /// The terminal UI (what `dicomlab` alone opens).
    Tui {
        /// The folder with the official sample files (default: generated ones).
        #[arg(long)]
        samples: Option<PathBuf>,
    },
    /// Run the practice service: a local DICOM service that answers like Azure's.
    Serve(ServeArgs),
    /// Write the lab's sample instances: its dataset (the embedded lab's are the red triangle, green
    /// square and blue circle; with `--lab FILE`, that lab's own).
    Samples {
        /// Folder to write them into (replacing files of the same names).
        #[arg(long, default_value = "dcms")]
        out: PathBuf,
    },
    /// A classroom: every learner's own DICOM service, the lab over SSH (`ssh -p 2222 <name>@host`),
    /// and the instructor's live dashboard; `classroom status` prints the room.
    Classroom(ClassroomArgs),
    /// Show your progress on your own service on a classroom's dashboard (marked "self-reported"):
    /// checks your steps, then sends their verdicts — never a secret or a token.
    Join {
        /// The classroom's URL (its dashboard shows it), e.g. http://classroom.local:8080
        url: String,
        /// The class code.
        #[arg(long, env = "DICOMLAB_CLASS_CODE", hide_env_values = true)]
        code: String,
        /// Your name on the dashboard (letters, digits, - and _).
        #[arg(long)]
        name: String,
        /// Send again every this many seconds (default: once).
        #[arg(long)]
        every: Option<u64>,
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
    Cors(crate::cmd::cors::CorsCommand),
    /// An app registration's redirect URIs and implicit grant on the practice tenant (Entra's
    /// Authentication blade).
    App(crate::cmd::app::AppCommand),
    /// Serve the OHIF viewer for the active target (the bonus exercise), on loopback.
    Ohif(crate::cmd::ohif::OhifCommand),
}

fn main() -> Result<std::process::ExitCode> {
    // Everything dicomlab writes — a practice service's index, stored instances and folders, its
    // markers and locks, logs, progress, exported files — is its owner's only (files 0600, folders
    // 0700), whatever path makes it; the files that hold secrets are also made so explicitly.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    #[cfg(target_os = "linux")]
    match cli.command {
        None | Some(Command::Tui { .. }) => cmd::tui::tune_allocator(cmd::tui::MMAP_THRESHOLD),
        Some(Command::Classroom(_)) => cmd::tui::tune_allocator(cmd::tui::ROOM_MMAP_THRESHOLD),
        _ => {}
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

async fn run_cli(mut cli: Cli) -> Result<std::process::ExitCode> {
    let _log = if matches!(cli.command, Some(Command::Serve(_) | Command::Classroom(_))) {
        None
    } else {
        cmd::log_to_file()
    };
    let ok = Ok(std::process::ExitCode::SUCCESS);
    // The subcommand is taken out; the global options stay in `cli` for the modules.
    match cli.command.take() {
        Some(Command::Check { step, json }) => cmd::check::check(&cli, step, json).await,
        Some(Command::Run {
            step,
            samples,
            multipart,
        }) => cmd::check::run_step(&cli, &step, samples, multipart).await,
        Some(Command::Answer { step, value }) => cmd::check::answer(&cli, &step, &value).await,
        Some(Command::Report { format, name }) => {
            cmd::report::report(&cli, format, name)?;
            ok
        }
        Some(Command::Lab { action }) => cmd::lab::lab(&action),
        Some(Command::ImportPostman { file, into }) => {
            cmd::lab::import_postman(&cli, &file, &into)?;
            ok
        }
        Some(Command::Postman { action }) => {
            cmd::postman::postman(&cli, action).await?;
            ok
        }
        Some(Command::Steps) => {
            cmd::lab::steps(&cli)?;
            ok
        }
        Some(Command::Serve(args)) => {
            cmd::serve::serve(args, cmd::lab_of(&cli)?.practice.roles).await?;
            ok
        }
        Some(Command::Samples { out }) => {
            for p in cmd::lab_of(&cli)?.dataset.write_all(&out)? {
                println!("{}", p.display());
            }
            ok
        }
        Some(Command::Role { service, action }) => {
            cmd::role::role(&service, action).await?;
            ok
        }
        Some(Command::Cors(c)) => {
            c.run().await?;
            ok
        }
        Some(Command::App(c)) => {
            c.run().await?;
            ok
        }
        Some(Command::Ohif(c)) => {
            c.run(cli.config.clone(), cli.profile.clone(), cli.lab.clone())
                .await?;
            ok
        }
        Some(Command::Classroom(args)) => {
            cmd::classroom::classroom(&cli, &args).await?;
            ok
        }
        Some(Command::Join {
            url,
            code,
            name,
            every,
        }) => cmd::join::join(&cli, &url, &code, &name, every).await,
        Some(Command::Tui { samples }) => {
            cmd::tui::tui(&cli, samples).await?;
            ok
        }
        None => {
            cmd::tui::tui(&cli, None).await?;
            ok
        }
    }
}
