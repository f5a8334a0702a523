//! `lab lint`, `steps` and `import-postman`: the lab file and the workshop's values.

use dicomlab_lab::model::CheckKind;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;

use super::{config_path, load, progress_store};
use crate::Cli;
use dicomlab_lab::Lab;
use dicomlab_lab::config::{Config, Profile};

#[derive(Subcommand, Debug)]
pub(crate) enum LabAction {
    /// Check a lab file: its format, step ids, prerequisites, instance names, placeholders and
    /// requests, each problem with its line.
    Lint {
        /// The lab file.
        file: PathBuf,
    },
}

/// `lab lint FILE`: every problem with its line; exit 1 on the first.
pub(crate) fn lab(action: &LabAction) -> Result<std::process::ExitCode> {
    let LabAction::Lint { file } = action;
    Ok(match Lab::load(file) {
        Ok(lab) => {
            println!(
                "{}: lab '{}' is valid — {} exercises, {} steps, {} dataset instances",
                file.display(),
                lab.id,
                lab.exercises.len(),
                lab.steps().count(),
                lab.dataset.instances.len()
            );
            for note in lab.notes() {
                println!("  note: {note}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    })
}

/// `steps`: the lab's exercises and step ids.
pub(crate) fn steps(cli: &Cli) -> Result<()> {
    let l = load(cli)?;
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
    Ok(())
}

/// `import-postman FILE --into PROFILE`: the workshop's environment into a profile (saved 0600, made
/// active); the import is the lab's import step's evidence (done in dicomlab).
pub(crate) fn import_postman(cli: &Cli, file: &Path, into: &str) -> Result<()> {
    let path = config_path(cli)?;
    let mut config = Config::load(&path)?;
    let profile = config
        .profiles
        .entry(into.to_string())
        .or_insert_with(|| Profile::new(dicomlab_lab::targets::TargetKind::Azure));
    let imported = dicomlab_lab::config::import_postman(file, profile)?;
    let problems = profile.problems();
    let target = dicomlab_lab::config::target_key(profile);
    config.profile = into.to_string();
    config.save(&path)?;
    if let Ok(l) = load(cli)
        && let Some(step) = l.lab.step_of_kind(CheckKind::PostmanImport)
    {
        let mut store = progress_store();
        store.credit(
            &l.lab.id,
            &target,
            &step.id,
            dicomlab_lab::evidence::Evidence::new(
                dicomlab_lab::evidence::Source::Dicomlab,
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
    Ok(())
}
