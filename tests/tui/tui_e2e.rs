//! End to end: the real binary in a pseudo-terminal (tmux send-keys / capture-pane).
//! 1. The whole lab on the embedded practice service: the learner's name asked once, every step done
//!    with `d` and seen checked off (the Postman import step, which sends nothing, stays ready), then a
//!    restart that shows the progress kept and does not ask the name again.
//! 2. Every exercise through its screen on a practice service of the test's own, starting from an empty
//!    profile: the Postman environment imported and saved (0600) on the Environment screen, the role
//!    granted, the store (multipart), searches, metadata, change feed, tags (add, search, disable,
//!    delete with its confirmation) — each seen checked off, and the final screen.
//!
//! Skipped with a printed reason when tmux is missing, unless `DICOMLAB_REQUIRE_TMUX=1` (set by `.ci/run`).

use dicomlab_lab::model::CheckKind;
use dicomlab_testkit::screen::{done_count, step_checked};
use std::process::Command;
use std::time::{Duration, Instant};

/// The TUI in a 120×40 tmux session `lab` of a server of its own, HOME at `home` (a failed wait
/// prints the tail of its log), started with `args`.
fn start(label: &str, home: &std::path::Path, args: &str) -> Tmux {
    let tmux = Tmux::new(label).with_log(home.join("data/dicomlab/dicomlab.log"));
    let exe = dicomlab_testkit::exe();
    let command = format!(
        "env HOME={h} XDG_DATA_HOME={h}/data XDG_CONFIG_HOME={h}/config TERM=xterm-256color DICOMLAB_LOG=info,dicomlab_tui=debug {exe} {args}; sleep 30",
        h = home.display(),
        exe = exe.display(),
    );
    tmux.new_session("lab", 120, 40, &command);
    tmux
}

use dicomlab_testkit::require;
use dicomlab_testkit::tmux::{Pane, Tmux};

fn tmux_available() -> bool {
    require::tmux()
}

fn header(screen: &str) -> &str {
    screen.lines().next().unwrap_or("")
}

/// When the lab has just become complete the final screen is up: see it, and close it.
fn close_summary(t: &Pane, screen: &str) {
    let s = if screen.contains("Check    ✓ pass") {
        // The summary comes in the frame of the last required check, or just after it.
        std::thread::sleep(Duration::from_millis(200));
        t.screen()
    } else {
        screen.to_string()
    };
    if s.contains("Lab complete") {
        assert!(s.contains("dicomlab report"), "{s}");
        t.keys("Escape");
        t.wait_for("the summary to close", |s| !s.contains("Lab complete"), 5);
    }
}

/// The lab the binary embeds: steps are found by id, so an edit to the lab moves nothing here.
fn lab() -> dicomlab_lab::Lab {
    dicomlab_lab::Lab::embedded().expect("the embedded lab")
}

/// Whether the step pane shows the step `id`: its border's title is `N · <title>` (and `(optional)`).
fn shows_step(screen: &str, id: &str) -> bool {
    let lab = lab();
    let Some(step) = lab.step(id) else {
        panic!("no step {id} in the lab")
    };
    let optional = if step.optional { " (optional)" } else { "" };
    let title = format!(" · {}{optional} ", step.title);
    screen
        .lines()
        .any(|l| l.contains('┌') && l.contains(&title))
}

/// Waits for the step `id` to be the current one.
fn at_step(t: &Pane, id: &str) {
    t.wait_for(&format!("step {id}"), |s| shows_step(s, id), 10);
}

/// Waits for the current step's check to pass (and fails fast on a failed check).
fn passes(t: &Pane, what: &str) -> String {
    let s = t.wait_for(
        what,
        |s| s.contains("Check    ✓ pass") || s.contains("Check    ✗"),
        90,
    );
    assert!(s.contains("Check    ✓ pass"), "{what} did not pass:\n{s}");
    s
}

#[test]
fn the_whole_lab_in_the_tui_then_a_restart_keeps_progress() {
    if !tmux_available() {
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let tmux = start("e2e", home.path(), "");
    let t = tmux.pane("lab");
    t.wait_for(
        "the name prompt",
        |s| s.contains("Your name, for the report"),
        30,
    );
    t.type_text("Ada Lovelace");
    t.keys("Enter");
    let lab = lab();
    let first = lab
        .steps()
        .next()
        .map(|s| s.id.to_string())
        .unwrap_or_default();
    t.wait_for(
        "the first screen",
        |s| s.contains("Exercises") && shows_step(s, &first) && !s.contains("Your name"),
        30,
    );
    let steps = lab.steps().count();
    for step in lab.steps() {
        let n = &step.id;
        at_step(&t, n);
        if step.check.kind() == CheckKind::PostmanImport {
            // The Postman import sends no request: `d` cannot do it, the step stays ready.
            t.keys("d");
            t.wait_for("the import step", |s| s.contains("Check    ○ ready"), 30);
            t.keys("n");
            continue;
        }
        let done_before = done_count(&t.screen());
        t.keys("d");
        let s = t.wait_for(
            &format!("the check of step {n}"),
            |s| step_checked(s, done_before),
            60,
        );
        assert!(s.contains("Check    ✓ pass"), "step {n} did not pass:\n{s}");
        close_summary(&t, &s);
        t.keys("n");
    }
    let s = t.wait_for(
        "every step done",
        |s| header(s).contains(&format!("{} done", steps - 1)),
        10,
    );
    let last = lab.exercises.last().expect("an exercise");
    assert!(
        s.contains(&format!("✓ {} {}", lab.exercises.len(), last.title)),
        "{s}"
    );
    let config = std::fs::read_to_string(home.path().join("config/dicomlab/config.toml"))
        .unwrap_or_default();
    assert!(
        config.contains("Ada Lovelace"),
        "the name is kept: {config}"
    );
    t.keys("q");
    std::thread::sleep(Duration::from_millis(500));
    t.tmux.cmd(&["kill-server"]);

    // Restart, on a tmux server of its own (the old one may still be going away): the progress is there.
    let tmux2 = start("e2e-restart", home.path(), "");
    let t2 = tmux2.pane("lab");
    let s = t2.wait_for("the restarted TUI", |s| s.contains("Exercises"), 30);
    assert!(header(&s).contains(&format!("{} done", steps - 1)), "{s}");
    assert!(!s.contains("Your name"), "asked once: {s}");
    // Every ✓ shows what it rests on, without a request.
    t2.keys("g");
    t2.wait_for(
        "the evidence of step 1",
        |s| s.contains("Evidence service state"),
        10,
    );
    t2.keys("q");
}

/// The screens, on a practice service of the test's own (as `dicomlab serve` would be) whose profile
/// starts empty: the learner imports the workshop's Postman environment on the Environment screen, saves
/// it (0600) and does every exercise through its screen — not with `d`.
#[test]
fn every_exercise_through_its_screen_from_a_postman_import() {
    if !tmux_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let svc = rt
        .block_on(dicomlab_practice::start(dicomlab_practice::ServiceConfig {
            reindex_min_duration: Duration::from_millis(1500),
            ..Default::default()
        }))
        .expect("practice service");
    let home = tempfile::tempdir().expect("home");
    let config = home.path().join("dicomlab.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"served\"\n[profiles.served]\nkind = \"practice\"\nbase_url = \"{}\"\nauthority = \"{}\"\n",
            svc.base_url, svc.authority
        ),
    )
    .expect("config");
    let postman = home.path().join("dicom-service.postman_environment.json");
    let value = |k: &str, v: &str| serde_json::json!({"key": k, "value": v, "type": "default", "enabled": true});
    std::fs::write(
        &postman,
        serde_json::json!({"name": "dicom-service", "values": [
            value("tenantId", &svc.tenant_id),
            value("clientId", &svc.client_id),
            value("clientSecret", &svc.client_secret),
            value("resource", &svc.resource),
            value("baseUrl", &svc.base_url),
        ]})
        .to_string(),
    )
    .expect("postman file");
    let tmux = start(
        "e2e-screens",
        home.path(),
        &format!("--config {}", config.display()),
    );
    let t = tmux.pane("lab");
    // The name: left out (Esc); the report will say so.
    t.wait_for(
        "the name prompt",
        |s| s.contains("Your name, for the report"),
        30,
    );
    t.keys("Escape");
    at_step(&t, "service-exists");
    t.keys("d");
    passes(&t, "the service answers");

    // Environment: import, save, and the TUI reopens the target with the values.
    t.keys("n");
    t.keys("n");
    at_step(&t, "postman-environment");
    t.keys("Enter");
    t.keys("I");
    t.keys("C-u");
    t.type_text(&postman.display().to_string());
    t.keys("Enter");
    t.wait_for("the import", |s| s.contains("imported"), 10);
    t.keys("w");
    // Saved and reopened: the import is the import step's evidence (done in dicomlab).
    let s = passes(&t, "the environment, saved and reopened");
    assert!(
        s.contains("Evidence done in dicomlab: imported the workshop's Postman environment"),
        "{s}"
    );
    assert!(
        !s.contains(&svc.client_secret),
        "the secret is on screen:\n{s}"
    );
    let saved = std::fs::read_to_string(&config).expect("config");
    assert!(saved.contains(&svc.client_id), "{saved}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the config holds a secret");
    }
    t.keys("Escape");
    t.keys("n");
    at_step(&t, "environment-values");
    t.keys("c");
    passes(&t, "the environment values");

    // Role: 403 until granted on the role screen — "not yet", never a failure: the learner tried
    // nothing, the 403 answers the checks' own empty store.
    t.keys("p");
    t.keys("p");
    at_step(&t, "role-assigned");
    t.keys("c");
    t.wait_for(
        "the 403",
        |s| s.contains("Check    ○ not yet") && s.contains("403 Forbidden"),
        30,
    );
    t.keys("Enter");
    t.keys("+");
    // The 403 is on screen until the grant's own check comes back.
    t.wait_for("the grant", |s| s.contains("granted DICOM Data Owner"), 10);
    passes(&t, "the role, granted");
    t.keys("Escape");
    for _ in 0..3 {
        t.keys("n");
    }
    at_step(&t, "get-token");
    t.keys("d");
    passes(&t, "the token");

    // Store: multipart, from the screen.
    t.keys("n");
    at_step(&t, "store-samples");
    t.keys("Enter");
    t.wait_for("the files", |s| s.contains("☑ red-triangle.dcm"), 20);
    t.keys("m");
    t.wait_for(
        "multipart mode",
        |s| s.contains("multipart/related: one request"),
        5,
    );
    t.keys("Enter");
    let s = passes(&t, "the store");
    assert!(s.contains("one multipart request: 200"), "{s}");

    // Search: every study, then open the result.
    t.keys("Escape");
    t.keys("n");
    at_step(&t, "search-samples");
    t.keys("Enter");
    t.keys("Enter");
    t.wait_for("the results", |s| s.contains("200 · 1 result(s)"), 20);
    // One search is not the six the step asks for: it stays ready, never done by what the service
    // could answer.
    let s = t.wait_for(
        "the check",
        |s| s.contains("Check    ○ ready") || s.contains("Check    ✓"),
        20,
    );
    assert!(s.contains("Check    ○ ready"), "{s}");
    t.keys("Enter");
    t.wait_for(
        "the result's tag tree",
        |s| s.contains("(0010,0010) PatientName"),
        5,
    );
    t.keys("Escape");
    // The six searches, sent by dicomlab (d) from the step pane.
    t.keys("Escape");
    t.keys("d");
    passes(&t, "the six searches");

    // Retrieve: the metadata as a tag tree.
    t.keys("Escape");
    t.keys("n");
    at_step(&t, "retrieve-samples");
    t.keys("Enter");
    t.keys("4");
    t.keys("Enter");
    t.wait_for(
        "the metadata tree",
        |s| s.contains("metadata of 3 instance(s)") && s.contains("Instance 1"),
        20,
    );
    // The metadata is one of the five retrieves the step asks for: 1 of 5, the rest to do.
    t.wait_for(
        "1 of 5",
        |s| s.contains("ready: 1 of 5 done; still to do"),
        20,
    );
    t.keys("Escape");
    t.keys("d");
    passes(&t, "the retrieves");

    // Change feed.
    t.keys("Escape");
    t.keys("n");
    at_step(&t, "change-feed");
    t.keys("Enter");
    t.keys("Enter");
    t.wait_for("the feed table", |s| s.contains("Create  Current"), 20);
    passes(&t, "the change feed");

    // Extended query tags: add (the operation runs ≥ 1.5 s), search with it, disable, delete (asks).
    t.keys("Escape");
    t.keys("n");
    at_step(&t, "tag-add");
    t.keys("Enter");
    t.wait_for(
        "the empty tag list",
        |s| s.contains("no extended query tag yet"),
        20,
    );
    t.keys("+");
    t.keys("Enter");
    t.wait_for("the operation", |s| s.contains("re-index"), 20);
    passes(&t, "the tag added");
    // List the tags (a), then get the learner's (Enter on its row).
    t.keys("Escape");
    t.keys("n");
    at_step(&t, "tag-list");
    t.keys("Enter");
    t.keys("a");
    passes(&t, "the tags listed");
    t.keys("Escape");
    t.keys("n");
    at_step(&t, "tag-get");
    t.keys("Enter");
    t.wait_for("the tag's row", |s| s.contains("00100040 PatientSex"), 10);
    t.keys("Enter");
    passes(&t, "the tag got");
    t.keys("Escape");
    t.keys("n");
    at_step(&t, "tag-search");
    t.keys("Enter");
    t.wait_for("the prefilled filter", |s| s.contains("PatientSex=F"), 5);
    t.keys("a");
    passes(&t, "the search with the tag");
    t.keys("Escape");
    t.keys("n");
    at_step(&t, "tag-disable");
    t.keys("Enter");
    // The list's row (the step's text names the tag too).
    t.wait_for(
        "the tag in the list",
        |s| s.contains("00100040 PatientSex"),
        10,
    );
    t.keys("u");
    passes(&t, "the tag disabled");
    t.keys("Escape");
    t.keys("n");
    at_step(&t, "tag-delete");
    t.keys("Enter");
    t.keys("D");
    t.wait_for(
        "the confirmation",
        |s| s.contains("Delete the extended query tag"),
        5,
    );
    t.keys("y");
    passes(&t, "the tag deleted");
    // Every required step is done: the final screen says so and names the report.
    let s = t.wait_for("the summary", |s| s.contains("Lab complete"), 5);
    close_summary(&t, &s);
    t.keys("Escape");
    // The steps after the tags (the viewer, the optional deletes), with `d`.
    let lab = lab();
    let rest: Vec<String> = lab
        .steps()
        .skip_while(|s| s.id != "tag-delete")
        .skip(1)
        .map(|s| s.id.to_string())
        .collect();
    for id in &rest {
        t.keys("n");
        at_step(&t, id);
        t.keys("d");
        passes(&t, id);
    }
    let all = format!("{} done", lab.steps().count());
    t.wait_for("every step done", |s| header(s).contains(&all), 10);
    t.keys("q");
    drop(svc);
}

use dicomlab_testkit::served;

fn newman_available() -> bool {
    require::newman()
}

/// The workshop collection's requests, in groups that each finish one exercise of the lab (by its
/// title's number in the checklist).
const GROUPS: &[(&[&str], &str)] = &[
    (&["AuthorizeGetToken"], "token"),
    (
        &[
            "Store-single-instance (red-triangle.dcm)",
            "Store-single-instance (green-square.dcm)",
            "Store-single-instance (blue-circle.dcm)",
        ],
        "store",
    ),
    (
        &[
            "Search-for-studies",
            "Search-for-series",
            "Search-for-series-within-a-study",
            "Search-for-instances",
            "Search-for-instances-within-a-study",
            "Search-for-instances-within-a-study-and-series",
        ],
        "search",
    ),
    (
        &[
            "Retrieve-all-instances-within-a-study",
            "Retrieve-metadata-of-all-instances-in-study",
            "Retrieve-all-instances-within-a-series",
            "Retrieve-metadata-of-all-instances-within-a-series",
            "Retrieve-a-single-instance-within-a-series-of-a-study",
            "Retrieve-metadata-of-a-single-instance-within-a-series-of-a-study",
            "Retrieve-one-or-more-frames-from-a-single-instance",
        ],
        "retrieve",
    ),
];

/// `✓ N Title` of the lab's exercise `id` in the checklist.
fn exercise_done(id: &str) -> String {
    let lab = lab();
    let n = lab
        .exercises
        .iter()
        .position(|e| e.id == id)
        .unwrap_or_else(|| panic!("no exercise {id}"));
    format!("✓ {} {}", n + 1, lab.exercises[n].title)
}

/// Runs `requests` of the exported collection with newman in its own process, the environment carried
/// from one run to the next (the token the first one gets).
fn newman(dir: &std::path::Path, requests: &[&str]) {
    let env = dir.join("dicom-service.postman_environment.json");
    let mut c = Command::new("newman");
    c.arg("run")
        .arg(dir.join("Conformance-as-Postman.postman_collection.json"))
        .arg("-e")
        .arg(&env)
        .arg("--export-environment")
        .arg(&env)
        .args(["--reporters", "cli"]);
    for r in requests {
        c.args(["--folder", r]);
    }
    let out = c.output().expect("newman runs");
    assert!(
        out.status.success(),
        "newman {requests:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each group of the workshop collection's requests, run by newman beside the open TUI: its exercise
/// turns ✓ on the screen within 3 s of the request, no key sent to the TUI.
fn collection_checks_off_live(t: &Pane, dir: &std::path::Path) -> Vec<Duration> {
    let mut took = Vec::new();
    for (requests, exercise) in GROUPS {
        let want = exercise_done(exercise);
        assert!(
            !t.screen().contains(&want),
            "{exercise} is done before its requests"
        );
        newman(dir, requests);
        let sent = Instant::now();
        t.wait_for(&format!("{want}, live"), |s| s.contains(&want), 10);
        let after = sent.elapsed();
        assert!(
            after <= Duration::from_secs(3),
            "{exercise}: ✓ {after:?} after its requests (no key sent)"
        );
        took.push(after);
    }
    took
}

fn write_config(home: &std::path::Path, served: Option<&served::Served>) {
    let dir = home.join("config/dicomlab");
    std::fs::create_dir_all(&dir).expect("config dir");
    let mut text = "learner = \"Ada Lovelace\"\n".to_string();
    if let Some(s) = served {
        text.push_str(&format!(
            "\n[profiles.served]\nkind = \"practice\"\nbase_url = \"{}/v1\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority = \"{}\"\n",
            s.origin, s.tenant_id, s.client_id, s.client_secret, s.origin
        ));
    }
    std::fs::write(dir.join("config.toml"), text).expect("config");
}

/// Issue 15, on the embedded practice service (it tells the TUI when it writes a record): the
/// Postman files exported from the environment screen, the role granted with `dicomlab role grant` in
/// another terminal, then the workshop collection run with newman — each step it does turns ✓ on the
/// open screen within 3 s, without a key.
#[test]
fn the_workshop_collection_beside_the_tui_is_checked_off_live_on_the_embedded_service() {
    if !tmux_available() || !newman_available() {
        return;
    }
    let home = tempfile::tempdir().expect("home");
    write_config(home.path(), None);
    let tmux = start("live-embedded", home.path(), "");
    let t = tmux.pane("lab");
    let s = t.wait_for(
        "the lab, watched",
        |s| s.contains("Exercises") && s.contains("watching"),
        30,
    );
    // The embedded service's port (8042 unless another test holds it).
    let base = header(&s)
        .split_once("(http://")
        .and_then(|(_, r)| r.split_once("/v1)"))
        .map(|(h, _)| format!("http://{h}"))
        .expect("the base URL in the header");
    // The Postman files, from the environment screen (they name the port in use).
    let files = home.path().join("postman");
    for _ in 0..10 {
        if shows_step(&t.screen(), "environment-values") {
            break;
        }
        t.keys("n");
        std::thread::sleep(Duration::from_millis(100));
    }
    at_step(&t, "environment-values");
    t.keys("Enter");
    t.keys("P");
    t.keys("C-u");
    t.type_text(&files.display().to_string());
    t.keys("Enter");
    t.wait_for("the export", |s| s.contains("wrote the Postman files"), 10);
    t.keys("Escape");
    // From now on, no key. The role, as `dicomlab role grant` gives it in another terminal.
    let role = Command::new(dicomlab_testkit::exe())
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .args(["role", "grant", "--service", &base])
        .output()
        .expect("role grant");
    assert!(
        role.status.success(),
        "{}",
        String::from_utf8_lossy(&role.stderr)
    );
    let granted = Instant::now();
    let access = exercise_done("access");
    t.wait_for("the role, live", |s| s.contains(&access), 10);
    assert!(granted.elapsed() <= Duration::from_secs(3));
    let took = collection_checks_off_live(&t, &files);
    eprintln!("embedded: each exercise ✓ after its requests in {took:?}");
}

/// Issue 15, on a served practice service (the TUI looks at its logs every 1–2 s): the files exported
/// with `dicomlab postman export`, the collection run with newman — each step it does turns ✓ on the
/// open screen within 3 s, without a key; then `check` agrees with the screen.
#[test]
fn the_workshop_collection_beside_the_tui_is_checked_off_live_on_a_served_service() {
    if !tmux_available() || !newman_available() {
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let svc = served::Served::start(&home.path().join("served"), &[]);
    write_config(home.path(), Some(&svc));
    let tmux = start("live-served", home.path(), "--profile served");
    let t = tmux.pane("lab");
    t.wait_for(
        "the lab, watched",
        |s| s.contains("Exercises") && s.contains("watching"),
        30,
    );
    let files = home.path().join("postman");
    let dicomlab = |args: &[&str]| {
        Command::new(dicomlab_testkit::exe())
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .args(["--profile", "served"])
            .args(args)
            .output()
            .expect("dicomlab")
    };
    let out = dicomlab(&["postman", "export", "--out", &files.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = collection_checks_off_live(&t, &files);
    eprintln!("served: each exercise ✓ after its requests in {took:?}");
    // `check` and the screen agree, exercise by exercise.
    let out = dicomlab(&["check", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check --json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let screen = t.screen();
    let lab = lab();
    for (n, e) in lab.exercises.iter().enumerate() {
        let on_screen = screen.contains(&format!("✓ {} {}", n + 1, e.title));
        let checked = e.steps.iter().all(|s| {
            v["steps"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["step"] == s.id.as_str()))
                .is_some_and(|x| x["outcome"]["status"] == "pass")
        });
        assert_eq!(on_screen, checked, "exercise {}: {v:#}\n{screen}", e.id);
    }
}
