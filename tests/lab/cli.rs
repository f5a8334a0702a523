//! The real binary, headless: Postman import into a 0600 config, `check` naming the problem, and neither
//! the progress file nor `report` ever holding the secret; the Postman export (the Basic path offline:
//! newman runs the exported files as they are, in another process, against a served practice service
//! — skipped with a printed reason without newman, unless `DICOMLAB_REQUIRE_CLIENTS=1`); what a lab
//! file says the practice service starts with, and its own sample files.

use dicomlab_testkit::require;
use dicomlab_testkit::served;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use served::Served;

const SECRET: &str = "s3cr3t-value-never-printed";

/// `dicomlab ARGS…` with its config, data and home in `home`: (success, stdout, stderr).
fn run(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(dicomlab_testkit::exe())
        .args(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("DICOMLAB_PROFILE")
        .env_remove("DICOMLAB_CLIENT_SECRET")
        .output()
        .expect("run dicomlab");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The same, its two outputs as one.
fn dicomlab(home: &Path, args: &[&str]) -> (bool, String) {
    let (ok, stdout, stderr) = run(home, args);
    (ok, format!("{stdout}{stderr}"))
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

/// A lab of two shapes and a store step: no role step, so it must say what the practice service
/// starts with.
fn two_shapes(start: &str) -> String {
    format!(
        r##"format_version = 2
id = "two-shapes"
title = "Two shapes"
{start}
[[dataset.instance]]
name = "star"
file = "star.dcm"
generator = {{ shape = "star", color = "#f0c000", rows = 64, columns = 64 }}
study = "1.2.826.0.1.3680043.8.498.5551"
series = "1.2.826.0.1.3680043.8.498.5551.1"
sop = "1.2.826.0.1.3680043.8.498.5551.1.1"

[[dataset.instance]]
name = "diamond"
file = "diamond.dcm"
generator = {{ shape = "diamond", color = "#1aa39a", rows = 64, columns = 96 }}
study = "1.2.826.0.1.3680043.8.498.5551"
series = "1.2.826.0.1.3680043.8.498.5551.1"
sop = "1.2.826.0.1.3680043.8.498.5551.1.2"

[[exercise]]
id = "store"
title = "Store"

[[exercise.step]]
id = "store-shapes"
title = "Store the shapes"
instructions = "POST {{star.file}} and {{diamond.file}} to {{baseUrl}}/studies."
check = {{ kind = "store", instances = ["star", "diamond"] }}
"##
    )
}

#[test]
fn samples_writes_the_labs_own_dataset() {
    let home = tempfile::tempdir().expect("home");
    let lab = home.path().join("two.toml");
    std::fs::write(&lab, two_shapes("")).expect("lab");
    let out = home.path().join("dcms");
    let o = out.to_str().expect("path");
    let (ok, said) = dicomlab(
        home.path(),
        &["--lab", lab.to_str().expect("path"), "samples", "--out", o],
    );
    assert!(ok, "{said}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["diamond.dcm", "star.dcm"], "{said}");
    let star = std::fs::read(out.join("star.dcm")).expect("star");
    assert!(
        star.windows(34)
            .any(|w| w == b"1.2.826.0.1.3680043.8.498.5551.1.1"),
        "the lab's UIDs"
    );
    // Without --lab: the embedded lab's, the three official samples.
    let (ok, said) = dicomlab(home.path(), &["samples", "--out", o]);
    assert!(ok, "{said}");
    for f in ["red-triangle.dcm", "green-square.dcm", "blue-circle.dcm"] {
        assert!(out.join(f).exists(), "{f}: {said}");
    }
}

#[test]
fn a_lab_says_what_the_practice_service_starts_with() {
    let home = tempfile::tempdir().expect("home");
    let lab = home.path().join("two.toml");
    // Without it, lint says what the learner would meet.
    std::fs::write(&lab, two_shapes("")).expect("lab");
    let (ok, out) = dicomlab(home.path(), &["lab", "lint", lab.to_str().expect("path")]);
    assert!(ok && out.contains("note:") && out.contains("403"), "{out}");
    // With it, `dicomlab --lab FILE serve` starts with the role (as the embedded service and a
    // classroom's learners' services do).
    std::fs::write(
        &lab,
        two_shapes("[practice]\nroles = [\"DICOM Data Owner\"]"),
    )
    .expect("lab");
    let (ok, out) = dicomlab(home.path(), &["lab", "lint", lab.to_str().expect("path")]);
    assert!(ok && !out.contains("note:"), "{out}");
    let (mut child, said) = serve(home.path(), &["--lab", lab.to_str().expect("path")]);
    let _ = child.kill();
    let _ = child.wait();
    let roles = said
        .iter()
        .find(|l| l.trim_start().starts_with("roles"))
        .expect("the roles line");
    assert!(roles.contains("DICOM Data Owner"), "{roles}");
}

/// The data folder `serve` printed.
fn data_folder(said: &[String]) -> std::path::PathBuf {
    said.iter()
        .find_map(|l| l.trim_start().strip_prefix("data"))
        .map(|rest| std::path::PathBuf::from(rest.trim()))
        .expect("the data line")
}

#[test]
fn an_ephemeral_service_removes_its_folder_and_the_next_one_a_killed_ones() {
    let home = tempfile::tempdir().expect("home");
    let (mut killed, said) = serve(home.path(), &[]);
    let left = data_folder(&said);
    assert!(left.join("index.sqlite").exists(), "{said:?}");
    let _ = killed.kill();
    let _ = killed.wait();
    assert!(left.exists(), "SIGKILL leaves the folder");
    let (mut next, said) = serve(home.path(), &[]);
    let own = data_folder(&said);
    assert!(
        !left.exists(),
        "the next ephemeral service removes a killed one's folder"
    );
    assert!(own.exists() && own != left);
    // Told to stop, it removes its own.
    let stopped = served::signal_and_wait(&mut next, "TERM", std::time::Duration::from_secs(30));
    assert!(stopped.is_some(), "SIGTERM stops it");
    assert!(!own.exists(), "{}", own.display());
}

#[test]
fn serve_prints_a_role_command_that_works_as_printed() {
    let home = tempfile::tempdir().expect("home");
    let (mut child, said) = serve(home.path(), &[]);
    let printed = said
        .iter()
        .find_map(|line| {
            let i = line.find("`dicomlab ")?;
            Some(line[i + 1..].trim_end_matches('`').to_string())
        })
        .expect("serve prints how to grant the role");
    let words: Vec<&str> = printed.split_whitespace().skip(1).collect();
    let (ok, out) = dicomlab(home.path(), &words);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok && out.contains("granted DICOM Data Owner"),
        "{printed}: {out}"
    );
}

/// `dicomlab GLOBAL… serve --ephemeral` on a free loopback port, once it says it is ready: the
/// process (the caller kills it) and the lines it printed. Its temporary folder is `HOME/tmp`.
fn serve(home: &Path, global: &[&str]) -> (std::process::Child, Vec<String>) {
    use std::io::BufRead;
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    let port = served::free_port();
    let mut child = Command::new(dicomlab_testkit::exe())
        .args(global)
        .args([
            "serve",
            "--ephemeral",
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("HOME", home)
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut said = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let ready = line.starts_with("Press Ctrl-C");
        said.push(line);
        if ready {
            break;
        }
    }
    (child, said)
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

/// `dicomlab GLOBAL… postman export --out OUT`.
fn export(home: &Path, global: &[&str], out: &Path) -> (bool, String, String) {
    let mut args = global.to_vec();
    args.extend(["postman", "export", "--out", out.to_str().expect("path")]);
    run(home, &args)
}

fn newman_usable() -> bool {
    require::newman()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("file").permissions().mode() & 0o777
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
}

/// The environment's value of `key`.
fn var(env: &Value, key: &str) -> String {
    env["values"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["key"] == key))
        .and_then(|v| v["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_exported_collection_runs_unedited_with_newman_on_a_served_practice_service() {
    if !newman_usable() {
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let served = Served::start(&home.path().join("service"), &[]);
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"served\"\n[profiles.served]\nkind = \"practice\"\nbase_url = \"{}/v1\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority = \"{}\"\n",
            served.origin, served.tenant_id, served.client_id, served.client_secret, served.origin
        ),
    )
    .expect("config");
    let c = config.to_str().expect("path");
    let out = home.path().join("postman");
    let (ok, stdout, stderr) = export(home.path(), &["--config", c], &out);
    assert!(ok, "{stdout}{stderr}");
    // Said: where, that the environment holds the secret (0600), how to run it; never the secret.
    assert!(
        stdout.contains("0600") && stdout.contains("newman run"),
        "{stdout}"
    );
    assert!(!stdout.contains(&served.client_secret) && !stderr.contains(&served.client_secret));
    let environment = out.join("dicom-service.postman_environment.json");
    let collection = out.join("Conformance-as-Postman.postman_collection.json");
    assert_eq!(mode(&environment), 0o600);
    let env = json(&environment);
    assert_eq!(var(&env, "clientSecret"), served.client_secret);
    assert_eq!(var(&env, "baseUrl"), format!("{}/v1", served.origin));
    assert_eq!(
        json(&collection)["item"][0]["request"]["url"]["raw"],
        format!("{}/{{{{tenantId}}}}/oauth2/token", served.origin)
    );

    // newman, in another process and another folder, on the files as written.
    let elsewhere = tempfile::tempdir().expect("cwd");
    let newman = Command::new("newman")
        .current_dir(elsewhere.path())
        .arg("run")
        .arg(&collection)
        .arg("-e")
        .arg(&environment)
        .args(["--reporters", "cli", "--color", "off"])
        .output()
        .expect("newman");
    let said = String::from_utf8_lossy(&newman.stdout);
    assert!(
        newman.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&newman.stderr)
    );
    for reached in [
        "AuthorizeGetToken",
        "oauth2/token [200 OK",
        "Store-single-instance (red-triangle.dcm)",
        "/v1/studies [200 OK",
    ] {
        assert!(said.contains(reached), "{reached}: {said}");
    }

    // The service's own records check the lab's steps off: what the collection did is the learner's.
    let (_, stdout, stderr) = run(home.path(), &["--config", c, "check", "--json"]);
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{stdout}{stderr}"));
    let steps = report["steps"].as_array().expect("steps");
    let verdict = |id: &str| {
        steps
            .iter()
            .find(|s| s["step"] == id)
            .map(|s| {
                s["outcome"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default()
    };
    for id in [
        "get-token",
        "store-samples",
        "search-samples",
        "retrieve-samples",
    ] {
        assert_eq!(verdict(id), "pass", "{id}: {stdout}");
    }
    // No log of dicomlab's holds the secret.
    let log =
        std::fs::read_to_string(home.path().join("data/dicomlab/dicomlab.log")).unwrap_or_default();
    assert!(!log.contains(&served.client_secret));
}

#[test]
fn the_embedded_services_export_names_its_own_client_at_its_port() {
    let home = tempfile::tempdir().expect("home");
    let data = home.path().join("data/dicomlab/practice");
    std::fs::create_dir_all(data.parent().expect("parent")).expect("data dir");
    // A service serving the embedded service's folder (what the TUI does) keeps serving: the export
    // reads its values, never opens the service.
    let served = Served::start(&data, &[]);
    let out = home.path().join("postman");
    let (ok, stdout, stderr) = export(home.path(), &[], &out);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("embedded practice service"), "{stdout}");
    assert!(!stdout.contains(&served.client_secret));
    let env = json(&out.join("dicom-service.postman_environment.json"));
    assert_eq!(var(&env, "tenantId"), served.tenant_id);
    assert_eq!(var(&env, "clientId"), served.client_id);
    assert_eq!(var(&env, "clientSecret"), served.client_secret);
    assert_eq!(var(&env, "baseUrl"), "http://127.0.0.1:8042/v1");
    assert_eq!(
        var(&env, "tokenUrl"),
        format!("http://127.0.0.1:8042/{}/oauth2/token", served.tenant_id)
    );
    let collection = json(&out.join("Conformance-as-Postman.postman_collection.json"));
    assert_eq!(
        collection["item"][0]["request"]["url"]["raw"],
        "http://127.0.0.1:8042/{{tenantId}}/oauth2/token"
    );
    let health = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{}/health/check", served.origin))
        .output();
    if let Ok(h) = health {
        assert_eq!(String::from_utf8_lossy(&h.stdout), "200", "still serving");
    }

    // A folder where nobody ran the service yet: the export makes its client, as a first start would,
    // and a second export names the same one.
    let fresh = tempfile::tempdir().expect("home");
    let out = fresh.path().join("postman");
    let secret_of = |h: &Path| {
        let (ok, stdout, stderr) = export(h, &[], &out);
        assert!(ok, "{stdout}{stderr}");
        var(
            &json(&out.join("dicom-service.postman_environment.json")),
            "clientSecret",
        )
    };
    let first = secret_of(fresh.path());
    assert!(!first.is_empty());
    assert_eq!(secret_of(fresh.path()), first);
}

#[test]
fn a_generic_server_has_no_postman_files_and_says_why() {
    let home = tempfile::tempdir().expect("home");
    let out = home.path().join("postman");
    let (ok, stdout, stderr) = export(home.path(), &["--profile", "generic"], &out);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("no Azure AD token endpoint"), "{stderr}");
    assert!(!out.exists());
}

/// Issue 16: a class code too short to resist guessing is refused with the reason, before anything
/// listens.
#[test]
fn a_short_class_code_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new(dicomlab_testkit::exe())
        .args(["classroom", "--headless", "--code", "abc", "--dir"])
        .arg(dir.path().join("room"))
        .args(["--http", "127.0.0.1:0", "--ssh", "127.0.0.1:0"])
        .env("HOME", dir.path())
        .output()
        .expect("dicomlab");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 8"), "{err}");
}
