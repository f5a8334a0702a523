//! The real binary, headless: Postman import into a 0600 config, `check` naming the problem, and neither
//! the progress file nor `report` ever holding the secret.

use std::process::Command;

const SECRET: &str = "s3cr3t-value-never-printed";

fn dicomlab(home: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dicomlab"))
        .args(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("DICOMLAB_PROFILE")
        .output()
        .expect("run dicomlab");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn postman_import_check_and_report_keep_the_secret_private() {
    let home = tempfile::tempdir().expect("home");
    let env = home.path().join("dicom-service.postman_environment.json");
    std::fs::write(
        &env,
        format!(
            r#"{{"id":"x","name":"dicom-service","values":[
            {{"key":"tenantId","value":"72f988bf-86f1-41af-91ab-2d7cd011db47","enabled":true}},
            {{"key":"clientId","value":"11111111-2222-3333-4444-555555555555","enabled":true}},
            {{"key":"clientSecret","value":"{SECRET}","enabled":true}},
            {{"key":"bearerToken","value":"","enabled":true}},
            {{"key":"resource","value":"https://dicom.healthcareapis.azure.com","enabled":true}},
            {{"key":"baseUrl","value":"https://ws-dicom.dicom.azurehealthcareapis.com","enabled":true}}]}}"#
        ),
    )
    .expect("env file");
    let config = home.path().join("config.toml");
    let c = config.to_str().expect("path");
    let (ok, out) = dicomlab(
        home.path(),
        &["--config", c, "import-postman", env.to_str().expect("path")],
    );
    assert!(ok, "{out}");
    assert!(out.contains("must end in /v1"), "{out}");
    assert!(!out.contains(SECRET));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&config)
                .expect("config")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    // The environment step fails on the missing /v1, and says so; no network needed.
    let (ok, out) = dicomlab(
        home.path(),
        &["--config", c, "check", "--step", "environment-values"],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("add /v1"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
    // The import itself is the optional import step's evidence (done in dicomlab).
    let (ok, out) = dicomlab(
        home.path(),
        &["--config", c, "check", "--step", "postman-environment"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("done in dicomlab: imported"), "{out}");
    let (ok, out) = dicomlab(
        home.path(),
        &[
            "--config",
            c,
            "report",
            "--format",
            "json",
            "--name",
            "Ada Lovelace",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("environment-values") && !out.contains(SECRET),
        "{out}"
    );
    // The name is kept in the config for the next report; optional steps never tried say so.
    let (ok, out) = dicomlab(home.path(), &["--config", c, "report"]);
    assert!(ok, "{out}");
    assert!(out.contains("# Lab: DICOM service — Ada Lovelace"), "{out}");
    assert!(
        out.contains("| Show the red triangle (optional) | not tried |"),
        "{out}"
    );
    assert!(
        out.contains("done in dicomlab (learner's machine): imported"),
        "{out}"
    );
    assert!(!out.contains(SECRET));
    let progress =
        std::fs::read_to_string(home.path().join("data/dicomlab/progress.json")).expect("progress");
    assert!(!progress.contains(SECRET));
}

#[test]
fn a_broken_lab_file_names_the_line() {
    let home = tempfile::tempdir().expect("home");
    let lab = home.path().join("lab.toml");
    std::fs::write(&lab, "format_version = 2\nid = \"x\"\ntitle = \"x\"\n[[exercise]]\nid = \"e\"\ntitle = \"e\"\n[[exercise.step]]\nid = \"s\"\ntitle = \"s\"\ninstructions = \"i\"\ncheck = { kind = \"telepathy\" }\n").expect("lab");
    let (ok, out) = dicomlab(
        home.path(),
        &["--lab", lab.to_str().expect("path"), "steps"],
    );
    assert!(!ok);
    assert!(
        out.contains("line 11") && out.contains("telepathy"),
        "{out}"
    );
    // `lab lint` says the same, and passes the shipped labs.
    let (ok, out) = dicomlab(home.path(), &["lab", "lint", lab.to_str().expect("path")]);
    assert!(!ok && out.contains("telepathy"), "{out}");
    for shipped in ["labs/dicom-service.toml", "labs/dicomweb-basics.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(shipped);
        let (ok, out) = dicomlab(home.path(), &["lab", "lint", path.to_str().expect("path")]);
        assert!(ok && out.contains("is valid"), "{shipped}: {out}");
    }
}

#[test]
fn serve_prints_a_role_command_that_works_as_printed() {
    use std::io::BufRead;
    let home = tempfile::tempdir().expect("home");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dicomlab"))
        .args([
            "serve",
            "--ephemeral",
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("HOME", home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut printed = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(i) = line.find("`dicomlab ") {
            printed = Some(line[i + 1..].trim_end_matches('`').to_string());
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let printed = printed.expect("serve prints how to grant the role");
    let words: Vec<&str> = printed.split_whitespace().skip(1).collect();
    let (ok, out) = dicomlab(home.path(), &words);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok && out.contains("granted DICOM Data Owner"),
        "{printed}: {out}"
    );
}

#[test]
fn the_embedded_service_keeps_its_port_across_runs() {
    // 8042 when it is free, so Postman or curl in another terminal keep working after a restart.
    if std::net::TcpListener::bind("127.0.0.1:8042").is_err() {
        eprintln!("SKIPPED: port 8042 is taken on this machine");
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let mut bases = Vec::new();
    for _ in 0..2 {
        let (_, out) = dicomlab(
            home.path(),
            &["check", "--step", "service-exists", "--json"],
        );
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        bases.push(v["target"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(bases[0], "http://127.0.0.1:8042/v1", "{bases:?}");
    assert_eq!(bases[0], bases[1]);
}

/// Durations and rates on the command line are numbers clap checks: NaN, infinity or a negative
/// is refused with the option's name, never a panic deep in the program.
#[test]
fn nonsense_numbers_on_the_command_line_are_refused_by_name() {
    let home = tempfile::tempdir().expect("home");
    let data = home.path().join("data-dir");
    let data = data.to_str().expect("path");
    for (args, option) in [
        (
            vec!["serve", "--data", data, "--body-timeout", "NaN"],
            "--body-timeout",
        ),
        (
            vec!["serve", "--data", data, "--header-timeout", "inf"],
            "--header-timeout",
        ),
        (
            vec!["serve", "--data", data, "--shutdown-grace=-1"],
            "--shutdown-grace",
        ),
        (
            vec!["serve", "--data", data, "--reindex-seconds", "nan"],
            "--reindex-seconds",
        ),
        (
            vec![
                "classroom",
                "--dir",
                data,
                "--headless",
                "--idle-minutes",
                "NaN",
            ],
            "--idle-minutes",
        ),
        (
            vec!["classroom", "--dir", data, "--headless", "--rate", "0"],
            "--rate",
        ),
    ] {
        let (ok, out) = dicomlab(home.path(), &args);
        assert!(!ok, "{args:?} was taken: {out}");
        assert!(out.contains(option), "{args:?}: {out}");
        assert!(!out.contains("panicked"), "{args:?}: {out}");
    }
}
