//! The TUI (what `dicomlab` alone opens), and the allocator settings it (and `serve`) run with.

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::load;
use crate::Cli;
use dicomlab_lab::config::Config;

pub(crate) async fn tui(cli: &Cli, samples: Option<PathBuf>) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        bail!("the TUI needs a terminal; for scripts use `dicomlab check`, `run` and `report`");
    }
    let l = load(cli)?;
    let data = dicomlab_lab::config::data_dir();
    dicomlab_tui::run(dicomlab_tui::Options {
        lab: l.lab,
        profile_name: l.profile_name,
        profile: l.profile,
        profiles: l.profiles,
        progress_path: data.join("progress.json"),
        embedded: Some(std::sync::Arc::new(dicomlab_embedded::Launcher::new(Some(
            data.join("practice"),
        )))),
        samples,
        log_path: data.join("dicomlab.log"),
        ask_name: Config::load(&l.config_path).is_ok_and(|c| c.learner.is_none()),
        config_path: Some(l.config_path),
        remote: false,
        shown_profile: None,
        room: None,
    })
    .await?;
    Ok(())
}

/// The fixed mmap threshold of the TUI and `serve`.
#[cfg(target_os = "linux")]
pub(crate) const MMAP_THRESHOLD: usize = 128 * 1024;
/// The fixed mmap threshold of a classroom.
#[cfg(target_os = "linux")]
pub(crate) const ROOM_MMAP_THRESHOLD: usize = 512 * 1024;

/// glibc's malloc keeps a heap arena per thread and, after a large block is freed, raises its mmap
/// threshold so that later large blocks (a 3 MB image, a file being validated) come from those arenas and
/// stay resident. For the long-lived TUI (embedded practice service included) that doubled the memory
/// it keeps. Its documented tunables are read from the environment at process start only, so the TUI
/// re-executes itself once with them set: two arenas and a fixed mmap threshold, `mmap_threshold`
/// bytes. Other allocators ignore these variables; `DICOMLAB_MALLOC=default` (or the variables already
/// set) skips this.
///
/// The TUI and `serve` take 128 KiB ([`MMAP_THRESHOLD`]). A classroom takes 512 KiB
/// ([`ROOM_MMAP_THRESHOLD`]): its hundred learners' bodies pass through blocks of 128–512 KiB (hyper's
/// read buffers, parts received in memory), and each one mapped afresh page-faults as it is written
/// and is unmapped when freed. Measured on the 100-learner bench, four runs each: step p99 1.20–1.43 s
/// against 1.38–2.20 s, peak RSS 420–430 MB against 310–317 MB (the target is 600).
#[cfg(target_os = "linux")]
pub(crate) fn tune_allocator(mmap_threshold: usize) {
    use std::os::unix::process::CommandExt;
    let tunables = format!("glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold={mmap_threshold}");
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
        .env("GLIBC_TUNABLES", tunables)
        .exec();
    // exec returns only on failure: go on untuned.
    tracing::debug!(%err, "could not re-execute with the malloc tunables");
}
