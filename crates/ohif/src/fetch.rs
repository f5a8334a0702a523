//! Getting OHIF when the learner has no build: npm's `@ohif/app` of a pinned version ships the built
//! viewer in `package/dist/`. `npm pack` downloads the package (through the learner's npm, its cache
//! and proxy settings), dicomlab checks the archive against the integrity the registry published for
//! that version, and unpacks `dist/` into a cache folder (by default the data folder's `ohif/`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;

use super::OhifError;

/// The pinned package.
pub const PACKAGE: &str = "@ohif/app";
/// The pinned version (its `dist/` is what the tests and the README were tried with).
pub const VERSION: &str = "3.13.2";
/// The registry's integrity of `@ohif/app@3.13.2` (`npm view @ohif/app@3.13.2 dist.integrity`).
pub const INTEGRITY: &str = "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==";
/// Files of the package left out: onnxruntime (136 MB), used only by segmentation tools the lab does
/// not open.
const LEFT_OUT: &str = "package/dist/ort";

/// Where the pinned build lives under `cache`.
pub fn build_dir(cache: &Path) -> PathBuf {
    cache.join(format!("ohif-app-{VERSION}")).join("dist")
}

/// Whether a program is on the PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let p = d.join(program);
            p.is_file()
        })
    })
}

/// The `sha512-…` integrity of a file.
pub fn integrity_of(path: &Path) -> Result<String, OhifError> {
    let read_err = |source| OhifError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(read_err)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA512);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
    ))
}

fn run(cmd: &mut Command, what: &str) -> Result<String, OhifError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| OhifError::Fetch(format!("{what}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(6).collect();
        return Err(OhifError::Fetch(format!(
            "{what} failed ({}): {}",
            out.status,
            dicomlab_dicom::text::visible(&tail.into_iter().rev().collect::<Vec<_>>().join(" / "))
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The pinned build under `cache`, fetched with npm when it is not there yet. Blocking: call it on
/// the blocking pool. `say` hears what is being done (a 48 MB download takes a while).
pub fn ensure(cache: &Path, say: &dyn Fn(&str)) -> Result<PathBuf, OhifError> {
    let dir = build_dir(cache);
    if dir.join("index.html").is_file() {
        return Ok(dir);
    }
    if !on_path("npm") {
        return Err(OhifError::Fetch(format!(
            "npm is not installed, so dicomlab cannot fetch {PACKAGE}@{VERSION}: install Node.js with npm, or build OHIF yourself and pass --build DIR"
        )));
    }
    std::fs::create_dir_all(cache).map_err(|source| OhifError::Read {
        path: cache.to_path_buf(),
        source,
    })?;
    let tmp = tempfile::Builder::new()
        .prefix(".ohif-fetch-")
        .tempdir_in(cache)
        .map_err(|source| OhifError::Read {
            path: cache.to_path_buf(),
            source,
        })?;
    say(&format!(
        "fetching {PACKAGE}@{VERSION} with npm (about 48 MB) into {} …",
        cache.display()
    ));
    let name = run(
        Command::new("npm")
            .args([
                "pack",
                &format!("{PACKAGE}@{VERSION}"),
                "--ignore-scripts",
                "--silent",
                "--pack-destination",
            ])
            .arg(tmp.path()),
        "npm pack",
    )?;
    let name = name.lines().last().unwrap_or("").trim().to_string();
    let tgz = tmp.path().join(&name);
    if name.is_empty() || name.contains('/') || !tgz.is_file() {
        return Err(OhifError::Fetch(format!(
            "npm pack did not say which file it wrote ({})",
            dicomlab_dicom::text::visible(&name)
        )));
    }
    let got = integrity_of(&tgz)?;
    if got != INTEGRITY {
        return Err(OhifError::Fetch(format!(
            "the downloaded {PACKAGE}@{VERSION} is not the published one (integrity {got}, expected {INTEGRITY}): not used"
        )));
    }
    say("unpacking the built viewer (dist/) …");
    run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tgz)
            .arg("-C")
            .arg(tmp.path())
            .arg(format!("--exclude={LEFT_OUT}"))
            .arg("package/dist"),
        "tar",
    )?;
    let unpacked = tmp.path().join("package/dist");
    if !unpacked.join("index.html").is_file() {
        return Err(OhifError::NotABuild(unpacked));
    }
    let parent = dir.parent().unwrap_or(cache);
    std::fs::create_dir_all(parent).map_err(|source| OhifError::Read {
        path: parent.to_path_buf(),
        source,
    })?;
    std::fs::rename(&unpacked, &dir).map_err(|source| OhifError::Read {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}
