//! End to end, as a room would use it: `dicomlab classroom` with its dashboard in one terminal, learners
//! logging in with the system OpenSSH client (`sshpass` types the class code) in others, all in tmux.
//! Two learners log in; one does steps; the dashboard and `classroom status --format json` show exactly
//! that learner's progress; the second sees none of the first's data; a wrong code is refused; a
//! resize redraws; a reconnect with the personal code the first login showed resumes, while the class
//! code no longer logs in as her; the host key's fingerprint is the one the dashboard prints.
//!
//! Skipped with a printed reason when tmux, ssh or sshpass is missing, unless `DICOMLAB_REQUIRE_TMUX=1`
//! (set by `.ci/run`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dicomlab_testkit::tmux::Tmux;
use serde_json::Value;

const CODE: &str = "kx7p-2mqa-h4rt";

fn available() -> bool {
    dicomlab_testkit::require::require_all(
        &[&["tmux", "-V"], &["ssh", "-V"], &["sshpass", "-V"]],
        "DICOMLAB_REQUIRE_TMUX",
        "apt-get install tmux openssh-client sshpass",
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn lab() -> dicomlab_lab::Lab {
    dicomlab_lab::Lab::embedded().expect("the embedded lab")
}

/// The step pane shows step `id` (its border's title is `N · <title>`).
fn shows_step(screen: &str, id: &str) -> bool {
    let lab = lab();
    let step = lab.step(id).expect("a step of the lab");
    let optional = if step.optional { " (optional)" } else { "" };
    let title = format!(" · {}{optional} ", step.title);
    screen
        .lines()
        .any(|l| l.contains('┌') && l.contains(&title))
}

/// `ssh` as a learner types it, with the code typed by sshpass.
fn ssh(port: u16, user: &str, code: &str, known_hosts: &Path) -> String {
    format!(
        "env TERM=xterm-256color sshpass -p '{code}' ssh -F /dev/null -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={} -o LogLevel=ERROR -o PubkeyAuthentication=no -p {port} {user}@127.0.0.1",
        known_hosts.display()
    )
}

/// Moves a learner's TUI to step `id` (`n` next, `g` first) and waits for it.
fn go_to(t: &Tmux, w: &str, id: &str) {
    t.keys(w, "g");
    for _ in 0..lab().steps().count() {
        if shows_step(&t.screen(w), id) {
            return;
        }
        t.keys(w, "n");
        std::thread::sleep(Duration::from_millis(150));
    }
    t.wait_for(w, &format!("step {id}"), |s| shows_step(s, id), 5);
}

/// Does the current step with `d` and waits for its check to pass.
fn do_step(t: &Tmux, w: &str, id: &str) {
    go_to(t, w, id);
    t.keys(w, "d");
    let s = t.wait_for(
        w,
        &format!("the check of {id}"),
        |s| s.contains("Did ") && (s.contains("Check    ✓") || s.contains("Check    ✗")),
        60,
    );
    assert!(s.contains("Check    ✓ pass"), "{id} did not pass:\n{s}");
}

fn status(dir: &Path) -> Value {
    let out = Command::new(dicomlab_testkit::exe())
        .args(["classroom", "status", "--format", "json", "--dir"])
        .arg(dir)
        .output()
        .expect("status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status json")
}

fn learner<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["learners"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["name"] == name))
        .unwrap_or(&Value::Null)
}

/// The personal code a first login shows, read off the screen; then Enter opens the lab.
fn first_login(t: &Tmux, w: &str) -> String {
    let s = t.wait_for(w, "the personal code", |s| code_on(s).is_some(), 60);
    let code = code_on(&s).unwrap_or_default();
    t.keys(w, "Enter");
    t.wait_for(w, "the lab", |s| s.contains("Exercises"), 60);
    code
}

fn code_on(screen: &str) -> Option<String> {
    let after = screen.split("Your personal code is ").nth(1)?;
    let code: String = after.chars().take(9).collect();
    (code.len() == 9 && code.chars().nth(4) == Some('-')).then_some(code)
}

fn header(screen: &str) -> &str {
    screen.lines().next().unwrap_or("")
}

#[test]
fn a_room_over_ssh_with_its_dashboard() {
    if !available() {
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let dir = home.path().join("room");
    let known_hosts = home.path().join("known_hosts");
    let (http, sshp) = (free_port(), free_port());
    let t = Tmux::new("classroom-e2e").windows_of("room");
    let exe = dicomlab_testkit::exe();
    let exe = exe.display();
    let room = format!(
        "env HOME={h} XDG_DATA_HOME={h}/data XDG_CONFIG_HOME={h}/config TERM=xterm-256color {exe} classroom --dir {d} --http 127.0.0.1:{http} --ssh 127.0.0.1:{sshp} --code {CODE} --instant-reindex --refusal-seconds 0.5; sleep 60",
        h = home.path().display(),
        d = dir.display(),
    );
    t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "room",
        "-n",
        "dash",
        "-x",
        "140",
        "-y",
        "40",
        &room,
    ]);
    let dash = t.wait_for(
        "dash",
        "the dashboard",
        |s| s.contains("dicomlab classroom") && s.contains("Nobody has joined yet"),
        60,
    );
    assert!(dash.contains(CODE), "the code is on the dashboard:\n{dash}");
    let fingerprint = dash
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .expect("the host key's fingerprint on the dashboard")
        .to_string();

    // Ada logs in; the host key is the one the dashboard shows.
    t.new_window("ada", &ssh(sshp, "ada", CODE, &known_hosts));
    let ada_code = first_login(&t, "ada");
    let keygen = Command::new("ssh-keygen")
        .args(["-l", "-f"])
        .arg(&known_hosts)
        .output()
        .expect("ssh-keygen");
    let listed = String::from_utf8_lossy(&keygen.stdout);
    assert!(listed.contains(&fingerprint), "{listed} vs {fingerprint}");

    // Bob logs in too.
    t.new_window("bob", &ssh(sshp, "Bob", CODE, &known_hosts));
    let bob_code = first_login(&t, "bob");
    assert_ne!(ada_code, bob_code);

    // A wrong code is refused (and the name never joins).
    t.new_window(
        "mallory",
        &ssh(sshp, "mallory", "not-the-code", &known_hosts),
    );
    let s = t.wait_for("mallory", "the refusal", |s| s.contains("EXIT="), 60);
    assert!(
        s.contains("EXIT=5"),
        "sshpass says the password was refused:\n{s}"
    );

    // Ada does steps.
    for id in [
        "service-exists",
        "role-assigned",
        "get-token",
        "store-samples",
    ] {
        do_step(&t, "ada", id);
    }
    let ada_screen = t.screen("ada");
    let ada_done = header(&ada_screen)
        .split(" done")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .map(str::to_string)
        .unwrap_or_default();

    // Bob sees none of Ada's data: his store step finds no instance of his own.
    go_to(&t, "bob", "store-samples");
    t.keys("bob", "c");
    let s = t.wait_for(
        "bob",
        "bob's store check",
        |s| {
            s.contains("Check    ")
                && !s.contains("Check    not checked")
                && !s.contains("Check    …")
        },
        30,
    );
    assert!(
        !s.contains("Check    ✓"),
        "bob's store step is not done:\n{s}"
    );

    // The classroom's own verdicts, from each learner's service.
    let start = Instant::now();
    let json = loop {
        let j = status(&dir);
        let ada = learner(&j, "ada");
        let ok = [
            "service-exists",
            "role-assigned",
            "get-token",
            "store-samples",
        ]
        .iter()
        .all(|id| ada["steps"][id] == "done");
        if ok {
            break j;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{j:#}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let bob = learner(&json, "bob");
    for id in ["role-assigned", "get-token", "store-samples"] {
        assert_ne!(bob["steps"][id], "done", "bob did not do {id}: {json:#}");
    }
    assert_eq!(bob["online"], Value::Null, "status reads the folder");
    let ada = learner(&json, "ada");
    let ada_cell = format!("{}/{}", ada["done"], ada["required"]);
    let bob_cell = format!("{}/{}", bob["done"], bob["required"]);
    assert!(learner(&json, "mallory").is_null());
    assert!(!ada_done.is_empty());

    // The dashboard shows the same, live.
    let d = t.wait_for(
        "dash",
        "both learners on the dashboard",
        |s| {
            s.lines()
                .any(|l| l.contains("ada") && l.contains(&ada_cell))
                && s.lines()
                    .any(|l| l.contains("bob") && l.contains(&bob_cell))
        },
        30,
    );
    assert!(d.contains("2 learner(s), 2 connected"), "{d}");
    let ada_row = d
        .lines()
        .find(|l| l.contains("ada") && l.contains(&ada_cell))
        .unwrap_or_default();
    assert!(ada_row.contains('✓'), "{ada_row}");

    // The environment screen shows the values her laptop uses (the secret masked).
    go_to(&t, "ada", "environment-values");
    let public = format!("http://127.0.0.1:{http}/l/ada/v1");
    let s = t.wait_for("ada", "her public base URL", |s| s.contains(&public), 20);
    assert!(s.contains("••••"), "the secret is masked:\n{s}");
    // So does the status bar: the classroom's address, not its loopback port.
    assert!(
        header(&s).contains(&format!("127.0.0.1:{http}/l/ada/v1")),
        "the status bar:\n{}",
        header(&s)
    );

    // A resize redraws: below 100 columns the checklist collapses to one line.
    t.cmd(&["resize-window", "-t", "room:ada", "-x", "90", "-y", "30"]);
    let s = t.wait_for(
        "ada",
        "the redraw at 90 columns",
        |s| !s.contains("┌ Exercises") && s.lines().count() <= 30 && header(s).contains("dicomlab"),
        20,
    );
    assert!(
        s.lines().all(|l| l.chars().count() <= 90),
        "drawn for 90 columns:\n{s}"
    );

    // Ada leaves (her values for Postman on the way out) and comes back: the lab resumes.
    t.keys("ada", "q");
    let v = t.wait_for("ada", "ada's values", |s| s.contains("Your values"), 20);
    assert!(
        v.contains(&format!("http://127.0.0.1:{http}/l/ada/v1")),
        "the public base URL:\n{v}"
    );
    assert!(
        !v.contains("clientSecret          ") || v.contains("••••"),
        "masked:\n{v}"
    );
    t.keys("ada", "q");
    t.wait_for(
        "ada",
        "the goodbye",
        |s| s.contains("Your progress is kept"),
        20,
    );
    // The class code no longer logs in as her, nor does Bob's code.
    for (w, code) in [("ada-class", CODE), ("ada-bob", bob_code.as_str())] {
        t.new_window(w, &ssh(sshp, "ada", code, &known_hosts));
        let s = t.wait_for(w, "the refusal", |s| s.contains("EXIT="), 60);
        assert!(s.contains("EXIT=5"), "refused:\n{s}");
    }
    t.new_window("ada2", &ssh(sshp, "ada", &ada_code, &known_hosts));
    let s = t.wait_for("ada2", "ada's lab again", |s| s.contains("Exercises"), 60);
    assert!(
        header(&s).contains(&format!("{ada_done} done")),
        "resumed with {ada_done} done:\n{s}"
    );
    assert!(
        !shows_step(&s, "service-exists"),
        "resumed at the first step not done, not the first:\n{s}"
    );
    // The room's log and lock are its owner's only.
    #[cfg(unix)]
    for f in ["classroom.log", "classroom.lock", "learners.json"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}
