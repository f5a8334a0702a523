//! `postman export`: the workshop's Postman environment and collection for the active target (the
//! embedded practice service, a served one, Azure, a classroom learner's profile), written into a folder.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::load;
use crate::Cli;
use dicomlab_lab::config::Profile;
use dicomlab_lab::postman::{self, Variables};
use dicomlab_lab::targets::{PRACTICE_PORT, TargetKind};

#[derive(Subcommand, Debug)]
pub(crate) enum PostmanAction {
    /// Write the workshop's Postman environment (the lab's variables, the client secret included:
    /// mode 0600) and its collection, its token request pointed at the active target's token URL, with
    /// the sample files its stores send. `newman run COLLECTION -e ENVIRONMENT` then runs as it is.
    Export {
        /// The folder to write into (created when missing). A file there that dicomlab did not write
        /// is never replaced.
        #[arg(long, default_value = "dicomlab-postman")]
        out: PathBuf,
    },
}

pub(crate) async fn postman(cli: &Cli, action: PostmanAction) -> Result<()> {
    let PostmanAction::Export { out } = action;
    let l = load(cli)?;
    let embedded = l.profile.kind == TargetKind::Practice && l.profile.base_url.trim().is_empty();
    let profile = if embedded {
        embedded_profile().await?
    } else {
        for p in l.profile.problems() {
            eprintln!("profile '{}': {p}", l.profile_name);
        }
        l.profile.clone()
    };
    let vars = Variables::of_profile(&l.profile_name, &profile)?;
    let base = vars.base_url.clone();
    let exported = tokio::task::spawn_blocking(move || postman::export(&vars, &out))
        .await
        .context("the export stopped")??;
    println!(
        "profile '{}' ({}, {base})",
        l.profile_name,
        match (profile.kind, embedded) {
            (_, true) => "the embedded practice service",
            (TargetKind::Practice, _) => "a practice service",
            (TargetKind::Azure, _) => "Azure's DICOM service",
            (TargetKind::Generic, _) => "a DICOMweb server",
        }
    );
    for line in exported.lines() {
        println!("{line}");
    }
    if embedded {
        println!(
            "The embedded practice service answers while dicomlab runs (on port {PRACTICE_PORT} when it is free: the status bar shows its URL; if it shows another, export from the Environment screen, P), or under `dicomlab serve`."
        );
    }
    Ok(())
}

/// The embedded practice service's values, as its data folder keeps them (read, not served: the TUI
/// may be serving it now), at the URL it takes when its port is free.
async fn embedded_profile() -> Result<Profile> {
    let data = dicomlab_lab::config::data_dir().join("practice");
    let client = tokio::task::spawn_blocking(move || dicomlab_practice::lab_client(&data))
        .await
        .context("reading the practice service's data stopped")??;
    let origin = format!("http://127.0.0.1:{PRACTICE_PORT}");
    let mut p = Profile::new(TargetKind::Practice);
    p.base_url = format!("{origin}/v1");
    p.authority = origin;
    p.tenant_id = client.tenant_id;
    p.client_id = client.client_id;
    p.client_secret = dicomlab_dicomweb::Secret::new(client.client_secret);
    Ok(p)
}
