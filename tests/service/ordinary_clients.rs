//! The practice service works unchanged with the clients learners use: curl, Postman (newman running the
//! workshop's requests), Python `requests` and the `dicomweb-client` library. A missing tool is a printed
//! skip, except when `DICOMLAB_REQUIRE_CLIENTS=1` (set by `.ci/run`).

use dicomlab_testkit as common;

use std::path::PathBuf;
use tokio::process::Command;

use common::*;
use dicomlab_dicom::samples::{RED_UID, SERIES1_UID, STUDY_UID};
use dicomlab_testkit::require;

/// `name` answers `probe`; skipped or failed as `DICOMLAB_REQUIRE_CLIENTS` says when not.
async fn tool(name: &str, probe: &[&str]) -> bool {
    let command: Vec<&str> = std::iter::once(name).chain(probe.iter().copied()).collect();
    require::require(
        &command,
        "DICOMLAB_REQUIRE_CLIENTS",
        "see docs/development.md",
    )
}

/// A folder with the three samples under their official names.
fn samples_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    if let Some(dir) = std::env::var_os("DICOMLAB_SAMPLES_DIR") {
        return (None, PathBuf::from(dir));
    }
    let t = tempfile::tempdir().expect("tempdir");
    dicomlab_dicom::samples::write_samples(t.path()).expect("samples");
    let p = t.path().to_path_buf();
    (Some(t), p)
}

/// Runs a command without blocking the runtime that serves the practice service.
async fn run(cmd: &mut Command) -> String {
    let out = cmd.output().await.expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn curl() {
    if !tool("curl", &["--version"]).await {
        return;
    }
    let lab = Lab::start().await;
    let (_keep, dir) = samples_dir();
    let auth = format!("Authorization: Bearer {}", lab.token);
    for f in ["red-triangle.dcm", "green-square.dcm", "blue-circle.dcm"] {
        let out = run(Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .arg(lab.url("studies"))
            .args([
                "-H",
                &auth,
                "-H",
                "Accept: application/dicom+json",
                "-H",
                "Content-Type: application/dicom",
                "--data-binary",
            ])
            .arg(format!("@{}", dir.join(f).display())))
        .await;
        assert_eq!(out, "200", "{f}");
    }
    // curl sends Accept: */* by default: fine for QIDO.
    let out = run(Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .arg(lab.url(&format!("studies?StudyInstanceUID={STUDY_UID}")))
        .args(["-H", &auth]))
    .await;
    assert!(out.ends_with("\n200") && out.contains(STUDY_UID), "{out}");
    let file = tempfile::NamedTempFile::new().expect("tmp");
    let out = run(Command::new("curl")
        .args(["-s", "-w", "%{http_code}", "-o"])
        .arg(file.path())
        .arg(lab.url(&format!(
            "studies/{STUDY_UID}/series/{SERIES1_UID}/instances/{RED_UID}"
        )))
        .args([
            "-H",
            &auth,
            "-H",
            "Accept: application/dicom; transfer-syntax=*",
        ]))
    .await;
    assert_eq!(out, "200");
    assert_eq!(
        std::fs::metadata(file.path()).expect("file").len() as usize,
        sample_files()[0].len()
    );
    let out = run(Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
        ])
        .arg(lab.url(&format!("studies/{STUDY_UID}")))
        .args(["-H", &auth]))
    .await;
    assert_eq!(out, "204");
}

#[tokio::test]
async fn python_requests_and_dicomweb_client() {
    if !require::python_clients() {
        return;
    }
    let lab = Lab::start().await;
    let (_keep, dir) = samples_dir();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/python_client.py"
    );
    let out = run(Command::new("python3")
        .arg(script)
        .arg(&lab.svc.base_url)
        .arg(lab.svc.token_url())
        .arg(&lab.svc.client_id)
        .arg(&lab.svc.client_secret)
        .arg(&dir))
    .await;
    assert!(out.contains("python clients: OK"), "{out}");
}

#[tokio::test]
async fn postman_collection_with_newman() {
    if !tool("newman", &["--version"]).await {
        return;
    }
    let lab = Lab::start().await;
    let (_keep, dir) = samples_dir();
    let collection = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/workshop-requests.postman_collection.json"
    );
    let var = |k: &str, v: &str| format!("{k}={v}");
    let out = run(Command::new("newman")
        .args([
            "run",
            collection,
            "--bail",
            "--reporters",
            "cli",
            "--working-dir",
        ])
        .arg(&dir)
        .args(["--env-var", &var("baseUrl", &lab.svc.base_url)])
        .args(["--env-var", &var("authority", &lab.svc.authority)])
        .args(["--env-var", &var("tenantId", &lab.svc.tenant_id)])
        .args(["--env-var", &var("clientId", &lab.svc.client_id)])
        .args(["--env-var", &var("clientSecret", &lab.svc.client_secret)])
        .args(["--env-var", &var("resource", &lab.svc.resource)])
        .args(["--env-var", &var("study1", STUDY_UID)])
        .args(["--env-var", &var("series1", SERIES1_UID)])
        .args(["--env-var", &var("instance1", RED_UID)])
        .args(["--env-var", "extendedQueryTag=PatientSex"]))
    .await;
    assert!(out.contains("assertions"), "{out}");
}
