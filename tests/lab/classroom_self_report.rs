//! Self-reported learners: a learner on their own service reports with the class code (`dicomlab
//! join`), never the secret, with a token for their name; self-reporters have their own budget of
//! the room and never keep an SSH learner out.

use dicomlab_testkit as common;

use std::time::Duration;

use dicomlab_classroom::folder::LearnerSource;
use dicomlab_classroom::room::{self, Mark};
use serde_json::{Value, json};

use super::classroom_service::{name, open, open_with, room_until, step_mark};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learners_on_their_own_service_report_with_the_code() {
    let dir = tempfile::tempdir().expect("tmp");
    // Waits of a second (then two): long enough that "at once" is within them on a slow machine.
    let c = open_with(dir.path(), "right-code", |c| {
        c.first_refusal_delay = Duration::from_secs(1)
    })
    .await;
    c.core.join(&name("ada")).await.expect("ada joins");
    let http = reqwest::Client::new();
    let url = format!("http://{}/classroom/join", c.http_addr);
    let report = |code: &str, who: &str| {
        json!({
            "code": code, "name": who, "lab": "dicom-service", "target": "azure",
            "steps": {"service-exists": {"status": "done", "attempts": 1, "first": "2026-11-30T10:00:00Z",
                "last": "2026-11-30T10:00:00Z", "done_at": "2026-11-30T10:00:00Z"},
                "store-samples": {"status": "failed", "attempts": 2, "first": "2026-11-30T10:01:00Z",
                "last": "2026-11-30T10:02:00Z", "last_failure": "415 \u{1b}[2J Unsupported Media Type"},
                "not-a-step": {"status": "done", "attempts": 1, "first": "x", "last": "x"}}
        })
    };
    let r = http
        .post(&url)
        .json(&report("wrong", "carol"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(r.headers().contains_key("www-authenticate"));
    // At once again, even with the right code: told to wait (429), nothing checked, no answer sleeps.
    let started = std::time::Instant::now();
    let r = http
        .post(&url)
        .json(&report("right-code", "Carol"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(started.elapsed() < Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = http
        .post(&url)
        .json(&report("right-code", "Carol"))
        .send()
        .await
        .expect("post");
    let token = r
        .headers()
        .get(dicomlab_classroom::front::TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let token = token.expect("the first report gets a token");
    // Every later report of the name carries it: without it (or with another) it is refused.
    let r = http
        .post(&url)
        .json(&report("right-code", "carol"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403, "no token");
    let with = |t: &str| {
        let mut v = report("right-code", "carol");
        v["token"] = json!(t);
        v
    };
    // A wrong token counts as a wrong code for this name: 1 s, then 2 s — the right class code in
    // between does not reset it. Within the announced wait another wrong one is not even looked at.
    assert_eq!(r.headers()["retry-after"], "1");
    let r = http
        .post(&url)
        .json(&with("not-the-token"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 429, "within the wait");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = http
        .post(&url)
        .json(&with("not-the-token"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403, "another token");
    assert_eq!(r.headers()["retry-after"], "2");
    // The right token is let in at once all the same: a classmate's guesses cannot lock Carol out.
    let r = http
        .post(&url)
        .json(&with(&token))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let kept = std::fs::read_to_string(dir.path().join("learners.json")).expect("learners");
    assert!(!kept.contains(&token), "kept hashed");
    let r = http
        .post(&url)
        .json(&report("right-code", "ada"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 409, "an SSH learner's name is taken");
    let r = http
        .post(&url)
        .body(vec![b' '; dicomlab_classroom::front::MAX_JOIN_BODY + 1])
        .header("content-type", "application/json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    let r = room_until(&c, "carol shows", |r| r.learner("carol").is_some()).await;
    let carol = r.learner("carol").expect("carol");
    assert_eq!(carol.source, LearnerSource::SelfReported);
    assert_eq!(step_mark(&r, "carol", "service-exists"), Some(Mark::Done));
    assert_eq!(step_mark(&r, "carol", "store-samples"), Some(Mark::Failed));
    let md = room::render(&r, room::Format::Md);
    assert!(md.contains("carol (self-reported)"), "{md}");
    assert!(!md.contains('\u{1b}'));
    assert!(
        c.core.join(&name("carol")).await.is_err(),
        "a self-reported name cannot log in over SSH"
    );
    c.shutdown().await;
}

/// `dicomlab join`: a learner on their own service (here a practice service of the test's own, as
/// `dicomlab serve` runs it) checks their steps and sends the verdicts — never the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_sends_a_learners_own_progress_and_never_the_secret() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(&dir.path().join("room"), "right-code").await;
    let own = common::session::service(dicomlab_practice::ServiceConfig::default()).await;
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"own\"\n[profiles.own]\nkind = \"practice\"\nbase_url = \"{}\"\nauthority = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
            own.base_url, own.authority, own.tenant_id, own.client_id, own.client_secret
        ),
    )
    .expect("config");
    let url = format!("http://{}", c.http_addr);
    let run = |code: &'static str| {
        let (home, config, url) = (home.clone(), config.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(dicomlab_testkit::exe())
                .arg("--config")
                .arg(&config)
                .args(["join", &url, "--code", code, "--name", "Dora"])
                .env("HOME", &home)
                .env("XDG_DATA_HOME", home.join("data"))
                .env("XDG_CONFIG_HOME", home.join("config"))
                .env_remove("DICOMLAB_PROFILE")
                .env_remove("DICOMLAB_CLASS_CODE")
                .output()
                .expect("dicomlab join");
            (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        })
    };
    let (ok, out) = run("wrong-code").await.expect("join");
    assert!(!ok && out.contains("401"), "{out}");
    let (ok, out) = run("right-code").await.expect("join");
    assert!(ok, "{out}");
    assert!(out.contains("self-reported"), "{out}");
    // Its token is kept (0600) and sent with the next report; a report without it is refused.
    let tokens = home.join("config/dicomlab/classroom-tokens.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&tokens)
            .expect("the token is kept")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (ok, out) = run("right-code").await.expect("join again");
    assert!(ok, "{out}");
    let r = reqwest::Client::new()
        .post(format!("{url}/classroom/join"))
        .json(&json!({"code": "right-code", "name": "dora", "lab": "dicom-service", "target": "azure", "steps": {}}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403, "dora's name needs her token");
    let r = room_until(&c, "dora shows", |r| r.learner("dora").is_some()).await;
    assert_eq!(
        r.learner("dora").map(|l| l.source),
        Some(LearnerSource::SelfReported)
    );
    assert_eq!(step_mark(&r, "dora", "service-exists"), Some(Mark::Done));
    let kept =
        std::fs::read_to_string(dir.path().join("room/learners/dora/verdicts.json")).expect("kept");
    assert!(!kept.contains(&own.client_secret), "never the secret");
    assert!(!out.contains(&own.client_secret));
    c.shutdown().await;
}

/// Issue 16: self-reporters have their own budget of `--max-learners` (reports filled at once all
/// count), so a flood of made-up reports by a class-code holder never keeps an SSH learner out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_reports_have_their_own_budget_and_never_keep_learners_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open_with(dir.path(), "right-code", |c| c.max_learners = 12).await;
    c.core.join(&name("ada")).await.expect("ada joins");
    let http = reqwest::Client::new();
    let url = format!("http://{}/classroom/join", c.http_addr);
    let report = |who: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.post(&url)
                .json(
                    &json!({"code": "right-code", "name": who, "lab": "dicom-service",
                    "target": "azure", "steps": {}}),
                )
                .send()
                .await
                .expect("post")
        }
    };
    let mut at_once = tokio::task::JoinSet::new();
    for i in 0..12 {
        at_once.spawn(report(format!("self{i:02}")));
    }
    while let Some(r) = at_once.join_next().await {
        assert_eq!(r.expect("task").status(), 200);
    }
    let r = report("one-too-many".into()).await;
    assert_eq!(r.status(), 409);
    let said = r.text().await.expect("text");
    assert!(said.contains("limit of 12 learners"), "{said}");
    // The SSH learners' budget is untouched.
    for i in 0..11 {
        match c
            .core
            .ssh_login(
                "127.0.0.1".parse().expect("ip"),
                &format!("learner-{i}"),
                "right-code",
            )
            .await
        {
            dicomlab_classroom::SshLogin::Learner { .. } => {}
            other => panic!("learner-{i}: {other:?}"),
        }
    }
    match c
        .core
        .ssh_login("127.0.0.1".parse().expect("ip"), "newcomer", "right-code")
        .await
    {
        dicomlab_classroom::SshLogin::Told(why) => assert!(why.contains("limit of 12"), "{why}"),
        other => panic!("{other:?}"),
    }
    let kept: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("learners.json")).expect("read"))
            .expect("json");
    assert_eq!(
        kept["learners"].as_array().map(Vec::len),
        Some(24),
        "every report and login reached the file: {kept:#}"
    );
    c.shutdown().await;
}
