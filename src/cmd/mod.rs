//! The subcommands, one module each, and what they share: loading the lab and the profile, opening a
//! session, the progress store, printing an outcome, the log file.

pub(crate) mod admin;
pub(crate) mod app;
pub(crate) mod check;
pub(crate) mod classroom;
pub(crate) mod cors;
pub(crate) mod join;
pub(crate) mod lab;
pub(crate) mod ohif;
pub(crate) mod postman;
pub(crate) mod report;
pub(crate) mod role;
pub(crate) mod serve;
pub(crate) mod tui;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::Cli;
use dicomlab_lab::config::{Config, Profile};
use dicomlab_lab::engine::Session;
use dicomlab_lab::progress::ProgressStore;
use dicomlab_lab::{Lab, Outcome};

/// Logs of the headless commands go to a file in the data dir, never to the terminal.
pub(crate) fn log_to_file() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    log_into(&dicomlab_lab::config::data_dir(), "dicomlab.log", 16 << 20)
}

/// Logs go to `dir/file` (the classroom's go to its folder), 0600 (the log names learners,
/// addresses and hosts), at most `cap` bytes before it is rotated (see `crate::logfile`).
pub(crate) fn log_into(
    dir: &std::path::Path,
    file: &str,
    cap: u64,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    std::fs::create_dir_all(dir).ok()?;
    let appender = crate::logfile::CappedFile::open(dir.join(file), cap).ok()?;
    // Lines are dropped, never waited for, when the disk cannot keep up (a flood of requests). The
    // queue holds 8,192 lines: its default, 128,000, is 4 MB of memory every process keeps.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(8_192)
        .finish(appender);
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

/// The embedded practice service, kept in the data folder (so Postman and curl keep their values).
pub(crate) fn embedded_practice() -> dicomlab_embedded::Launcher {
    dicomlab_embedded::Launcher::new(Some(dicomlab_lab::config::data_dir().join("practice")))
}

pub(crate) struct Loaded {
    pub(crate) lab: Lab,
    pub(crate) profile_name: String,
    pub(crate) profile: Profile,
    /// Every profile, with environment overrides applied.
    profiles: std::collections::BTreeMap<String, Profile>,
    /// The config file (the TUI's environment screen saves there).
    config_path: PathBuf,
}

/// The lab: `--lab FILE`, else the embedded one.
pub(crate) fn lab_of(cli: &Cli) -> Result<Lab> {
    Ok(match &cli.lab {
        Some(p) => Lab::load(p)?,
        None => Lab::embedded()?,
    })
}

pub(crate) fn load(cli: &Cli) -> Result<Loaded> {
    let lab = lab_of(cli)?;
    let path = match &cli.config {
        Some(p) => p.clone(),
        None => dicomlab_lab::config::default_path()
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
pub(crate) fn warn_problems(l: &Loaded) {
    let problems = l.profile.problems();
    if !problems.is_empty() {
        eprintln!(
            "profile '{}' has problems: {}",
            l.profile_name,
            problems.join("; ")
        );
    }
}

pub(crate) async fn open_session(l: &Loaded) -> Result<Session> {
    warn_problems(l);
    let session = Session::open(&l.profile, Some(&embedded_practice()), None).await?;
    l.lab.practice.apply(session.practice.as_deref());
    Ok(session)
}

pub(crate) fn progress_store() -> ProgressStore {
    let store = ProgressStore::load(&dicomlab_lab::config::data_dir().join("progress.json"));
    if let Some(w) = &store.warning {
        eprintln!("warning: {w}");
    }
    store
}

pub(crate) fn print_outcome(lab: &Lab, step_id: &str, o: &Outcome, vars: &[(String, String)]) {
    use dicomlab_dicom::text::visible;
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
        Outcome::Fail { .. } => {
            for (label, text) in o.failure_lines().into_iter().flatten() {
                println!("     {label:<9} {}", fill(text));
            }
        }
        Outcome::Pass { detail, evidence } => {
            println!("     {}", fill(detail));
            let when = evidence
                .at
                .map(|a| format!(" · {}", dicomlab_lab::clock::human(a)))
                .unwrap_or_default();
            println!(
                "     evidence  {}: {}{when}",
                evidence.source.label(),
                fill(&evidence.summary)
            );
        }
        Outcome::Ready { detail, .. } => println!("     ready: {}", fill(detail)),
        Outcome::NotYet { observed, fix } => {
            println!("     not yet: {}", fill(observed));
            println!("     {:<9} {}", "fix", fill(fix));
        }
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

pub(crate) fn config_path(cli: &Cli) -> Result<PathBuf> {
    match &cli.config {
        Some(p) => Ok(p.clone()),
        None => dicomlab_lab::config::default_path()
            .context("no config dir on this system: pass --config FILE"),
    }
}

/// A number above zero (seconds, minutes, a rate): never NaN or infinite — clap says why.
pub(crate) fn positive(s: &str) -> Result<f64, String> {
    finite(s, |v| v > 0.0, "above zero")
}

/// A number of zero or more: never NaN or infinite.
pub(crate) fn non_negative(s: &str) -> Result<f64, String> {
    finite(s, |v| v >= 0.0, "of zero or more")
}

/// A finite number that `ok` takes; else why not ("'x' is not a number {what}").
fn finite(s: &str, ok: impl Fn(f64) -> bool, what: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && ok(v) => Ok(v),
        Ok(_) => Err(format!("'{s}' is not a number {what}")),
        Err(e) => Err(format!("'{s}': {e}")),
    }
}

/// Ctrl-C, or SIGTERM (what `kill` and service managers send).
pub(crate) async fn stop_signal() -> Result<()> {
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
