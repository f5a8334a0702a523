//! `report`: what an instructor reads (the renderer is `dicomlab_lab::report`), with the learner's
//! name asked once.

use anyhow::Result;

use super::{config_path, load, progress_store};
use crate::Cli;
use dicomlab_lab::config::Config;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ReportFormat {
    Md,
    Json,
}

/// The learner's name for the report: `--name` (kept in the config), the config's, or asked once on
/// a terminal.
pub(crate) fn learner_name(cli: &Cli, given: Option<String>) -> Result<Option<String>> {
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

pub(crate) fn report(cli: &Cli, format: ReportFormat, name: Option<String>) -> Result<()> {
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
        ReportFormat::Md => dicomlab_lab::report::Format::Md,
        ReportFormat::Json => dicomlab_lab::report::Format::Json,
    };
    let o = dicomlab_lab::report::render(&l.lab, learner.as_deref(), &targets, format);
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), o.as_bytes());
    Ok(())
}
