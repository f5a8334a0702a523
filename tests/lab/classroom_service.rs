//! The classroom's services behind one port: each learner's own service under `/l/{name}`, nothing
//! shared, URLs built with the prefix, verdicts from each learner's own records, a restart that keeps
//! everything, and self-reported learners.

use dicomlab_testkit as common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dicomlab_classroom::folder::LearnerSource;
use dicomlab_classroom::names::LearnerName;
use dicomlab_classroom::room::{self, Mark};
use dicomlab_classroom::{Classroom, ClassroomConfig, LearnerEnv};
use dicomlab_dicomweb::StoreMode;
use dicomlab_lab::Lab;
use dicomlab_lab::engine::Session;
use serde_json::{Value, json};

async fn open(dir: &std::path::Path, code: &str) -> Classroom {
    open_with(dir, code, |_| {}).await
}

async fn open_with(
    dir: &std::path::Path,
    code: &str,
    change: impl FnOnce(&mut ClassroomConfig),
) -> Classroom {
    open_lab(dir, code, change, Lab::embedded().expect("lab")).await
}

async fn open_lab(
    dir: &std::path::Path,
    code: &str,
    change: impl FnOnce(&mut ClassroomConfig),
    lab: Lab,
) -> Classroom {
    let mut c = ClassroomConfig::new(dir.to_path_buf());
    c.http = "127.0.0.1:0".parse().expect("addr");
    c.ssh = "127.0.0.1:0".parse().expect("addr");
    c.code = Some(dicomlab_dicomweb::Secret::new(code));
    c.reindex_min = Duration::ZERO;
    c.first_refusal_delay = Duration::from_millis(20);
    c.check_delay = Duration::from_millis(200);
    change(&mut c);
    Classroom::start(c, lab, Arc::new(dicomlab_classroom::lab_tui::LabRunner))
        .await
        .expect("classroom starts")
}

fn name(n: &str) -> LearnerName {
    LearnerName::exact(n).expect("name")
}

async fn token(http: &reqwest::Client, env: &LearnerEnv, public: bool) -> String {
    let authority = if public {
        &env.public_authority
    } else {
        &env.authority
    };
    let r = http
        .post(format!("{authority}/{}/oauth2/token", env.tenant_id))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", env.client_id.as_str()),
            ("client_secret", env.client_secret.expose()),
            ("resource", env.resource.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    v["access_token"].as_str().expect("token").to_string()
}

/// Does `steps` of the lab as "do it" does, on the learner's own service.
async fn do_steps(env: &LearnerEnv, steps: &[&str]) {
    let lab = Lab::embedded().expect("lab");
    let session = Session::open(&env.profile(), None, None)
        .await
        .expect("session");
    for id in steps {
        let step = lab.step(id).expect("step");
        dicomlab_lab::actions::perform(&session, &lab, step, None, StoreMode::Single, None)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
    }
}

/// Waits until `ok` holds for the room (the classroom's checks run a moment after a request).
async fn room_until(c: &Classroom, what: &str, ok: impl Fn(&room::Room) -> bool) -> room::Room {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.core.room();
        if ok(&r) {
            return r;
        }
        assert!(Instant::now() < end, "{what}: {r:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn step_mark(r: &room::Room, learner: &str, step: &str) -> Option<Mark> {
    r.learner(learner)?
        .steps
        .iter()
        .find(|(id, _)| id == step)
        .map(|(_, m)| *m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_learner_has_their_own_service_behind_one_port() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "kx7p-2mqa-h4rt").await;
    let ada = c.core.join(&name("ada")).await.expect("ada joins");
    let bob = c.core.join(&name("bob")).await.expect("bob joins");
    // Each service may hold the room's per-learner storage (1 GiB by default), no more.
    let ada_service = c.core.tenants.get(&name("ada")).expect("ada's service");
    assert_eq!(
        ada_service.service.config.max_stored_bytes,
        Some(1024 * 1024 * 1024)
    );
    let origin = format!("http://{}", c.http_addr);
    assert_eq!(ada.public_base_url, format!("{origin}/l/ada/v1"));
    assert_ne!(ada.tenant_id, bob.tenant_id, "own tenant");
    assert_ne!(ada.client_id, bob.client_id, "own client");

    do_steps(
        &ada,
        &["role-assigned", "get-token", "store-samples", "tag-add"],
    )
    .await;

    let http = reqwest::Client::new();
    let bob_token = token(&http, &bob, true).await;
    let ada_token = token(&http, &ada, true).await;
    // Bob sees none of Ada's data (his role is still missing: grant it so reads are allowed).
    do_steps(&bob, &["role-assigned"]).await;
    let get = |url: String, t: &str| {
        http.get(url)
            .bearer_auth(t)
            .header("accept", "application/dicom+json")
            .send()
    };
    let r = get(format!("{}/studies", bob.public_base_url), &bob_token)
        .await
        .expect("bob searches");
    assert_eq!(r.status(), 204, "bob's service holds no study");
    let feed: Value = get(format!("{}/changefeed", bob.public_base_url), &bob_token)
        .await
        .expect("feed")
        .json()
        .await
        .expect("json");
    assert_eq!(feed, json!([]), "bob's change feed is his own");
    let tags: Value = get(
        format!("{}/extendedquerytags", bob.public_base_url),
        &bob_token,
    )
    .await
    .expect("tags")
    .json()
    .await
    .expect("json");
    assert_eq!(tags, json!([]), "bob's tags are his own");
    let r = get(format!("{}/studies", ada.public_base_url), &bob_token)
        .await
        .expect("bob on ada's");
    assert_eq!(r.status(), 401, "bob's token is not valid on ada's service");
    let r = get(format!("{}/studies", ada.public_base_url), &ada_token)
        .await
        .expect("ada searches");
    assert_eq!(r.status(), 200);

    // Every URL the service returns carries the learner's prefix, whatever a client claims.
    let r = http
        .get(format!("{}/studies", ada.public_base_url))
        .header("x-forwarded-prefix", "/l/bob")
        .send()
        .await
        .expect("no token");
    assert_eq!(r.status(), 401);
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        challenge.contains(&format!(
            "authorization_uri=\"{origin}/l/ada/{}\"",
            ada.tenant_id
        )),
        "{challenge}"
    );
    let (ct, body) = common::multipart_related(&[common::instance(
        &common::uid(),
        &common::uid(),
        &common::uid(),
        &[],
    )]);
    let stored: Value = http
        .post(format!("{}/studies", ada.public_base_url))
        .bearer_auth(&ada_token)
        .header("x-forwarded-prefix", "/evil")
        .header("content-type", ct)
        .header("accept", "application/dicom+json")
        .body(body)
        .send()
        .await
        .expect("store")
        .json()
        .await
        .expect("json");
    let retrieve = stored["00081199"]["Value"][0]["00081190"]["Value"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        retrieve.starts_with(&format!("{origin}/l/ada/v1/studies/")),
        "{stored}"
    );
    let r = http
        .get(format!("{origin}/l/nobody/v1/studies"))
        .send()
        .await
        .expect("unknown");
    assert_eq!(r.status(), 404);

    // The classroom's own checks, from each learner's own records.
    let r = room_until(&c, "ada's store is checked", |r| {
        step_mark(r, "ada", "store-samples") == Some(Mark::Done)
            && step_mark(r, "ada", "tag-add") == Some(Mark::Done)
    })
    .await;
    assert_ne!(step_mark(&r, "bob", "store-samples"), Some(Mark::Done));
    assert_ne!(step_mark(&r, "bob", "tag-add"), Some(Mark::Done));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [
            dir.path().join("classroom.json"),
            dir.path().join("learners/ada/verdicts.json"),
            dir.path().join("learners/ada/service/index.sqlite"),
        ] {
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }
    let json: Value =
        serde_json::from_str(&room::render(&r, room::Format::Json)).expect("status json");
    assert_eq!(json["learners"][0]["name"], "ada");
    assert_eq!(json["learners"][0]["steps"]["store-samples"], "done");

    // Nobody works: no check runs (the checks' own reads never count as activity).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = c.core.checks_run.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        c.core.checks_run.load(Ordering::Relaxed),
        settled,
        "an idle room runs no checks"
    );

    // A restart keeps learners, services, credentials and verdicts.
    c.shutdown().await;
    let c = open(dir.path(), "kx7p-2mqa-h4rt").await;
    let again = c.core.join(&name("ada")).await.expect("ada again");
    assert_eq!(again.tenant_id, ada.tenant_id);
    assert_eq!(again.client_secret.expose(), ada.client_secret.expose());
    let r = c.core.room();
    assert_eq!(r.learners.len(), 2);
    assert_eq!(step_mark(&r, "ada", "store-samples"), Some(Mark::Done));
    let t = token(&http, &again, true).await;
    let r = http
        .get(format!("{}/studies", again.public_base_url))
        .bearer_auth(&t)
        .send()
        .await
        .expect("after restart");
    assert_eq!(r.status(), 200, "ada's studies are still there");
    c.shutdown().await;

    // One learner's damaged service keeps nobody else out: the room opens, ada works, bob is told.
    let index = dir.path().join("learners/bob/service/index.sqlite");
    assert!(index.exists(), "{}", index.display());
    std::fs::write(&index, b"not a database, whatever it was").expect("damage");
    let c = open(dir.path(), "kx7p-2mqa-h4rt").await;
    let again = c.core.join(&name("ada")).await.expect("ada again");
    assert_eq!(again.tenant_id, ada.tenant_id);
    let said = c
        .core
        .join(&name("bob"))
        .await
        .expect_err("bob's service is damaged");
    eprintln!("bob is told: {said}");
    assert!(!said.to_string().is_empty());
    c.shutdown().await;
}

#[tokio::test]
async fn learners_services_start_with_what_the_lab_says() {
    use dicomlab_lab::targets::Role;
    let role_of = |c: &Classroom, who: &str| {
        let t = c.core.tenants.get(&name(who)).expect("service");
        t.service.auth.roles_of(&t.service.auth.lab_client_id)
    };
    // The second lab has no role step: its file gives each learner's client DICOM Data Owner.
    let dir = tempfile::tempdir().expect("tmp");
    let basics = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/dicomweb-basics.toml");
    let c = open_lab(
        dir.path(),
        "kx7p-2mqa-h4rt",
        |_| {},
        Lab::load(&basics).expect("lab"),
    )
    .await;
    c.core.join(&name("ada")).await.expect("ada joins");
    assert!(role_of(&c, "ada").contains(&Role::DataOwner));
    // The lab "DICOM service" has one: the learner assigns it.
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "kx7p-2mqa-h4rt").await;
    c.core.join(&name("bob")).await.expect("bob joins");
    assert!(!role_of(&c, "bob").contains(&Role::DataOwner));
}

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

/// Behind a reverse proxy on the classroom's machine every caller of the public port is on loopback:
/// what a learner's service grants callers on loopback (role administration, the one-click sign-in)
/// is never granted through the public port — only through the classroom's own loopback listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_port_grants_nothing_that_is_for_loopback_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let ada = c.core.join(&name("ada")).await.expect("ada joins");
    let http = reqwest::Client::new();
    // The test's requests come from 127.0.0.1, as a same-host nginx's would.
    let public = format!("http://{}", c.http_addr);
    // The classroom's own loopback listener: its key leads every path (the learner's values know it).
    let internal = ada
        .authority
        .strip_suffix("/l/ada")
        .expect("the internal origin")
        .to_string();
    assert!(internal.starts_with(&format!("http://{}/", c.internal_addr)));
    for path in [
        "/l/ada/admin/roles",
        "/l/ada//admin/roles",
        "/l/ada/ADMIN/roles",
        "/l/ada/%61dmin/roles",
        "/l/ada/admin/apps",
        "/l/ada/admin/cors",
    ] {
        let r = http
            .get(format!("{public}{path}"))
            .header("x-dicomlab-admin", "1")
            .send()
            .await
            .expect("get");
        assert!(!r.status().is_success(), "{path}: {}", r.status());
    }
    let r = http
        .put(format!(
            "{public}/l/ada/admin/roles/{}/DICOM%20Data%20Owner",
            ada.client_id
        ))
        .header("x-dicomlab-admin", "1")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 403, "no role granted through the public port");
    let r = http
        .post(format!("{public}/l/ada/admin/clients"))
        .header("x-dicomlab-admin", "1")
        .json(&json!({"name": "mine"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    // The one-click sign-in: refused as from another machine (not "this page expired").
    let r = http
        .post(format!("{public}/l/ada/{}/login", ada.tenant_id))
        .form(&[("flow", "x"), ("user", "")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 403, "{:?}", r.text().await);
    // The classroom's own loopback listener (the learner's TUI: the lab's role step) still may.
    let r = http
        .get(format!("{internal}/l/ada/admin/roles"))
        .header("x-dicomlab-admin", "1")
        .send()
        .await
        .expect("internal");
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{internal}/l/ada/{}/login", ada.tenant_id))
        .form(&[("flow", "x"), ("user", "")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 400, "on loopback the page is merely expired");
    // Issue 16: another local user's process, without the classroom's key, reaches nothing there —
    // not the roles, not a new client, not the one-click sign-in, not the learner's data.
    let bare = format!("http://{}", c.internal_addr);
    let wrong = format!("{bare}/{}", "0".repeat(32));
    for origin in [&bare, &wrong] {
        for (method, path) in [
            ("GET", "/l/ada/admin/roles".to_string()),
            (
                "PUT",
                format!("/l/ada/admin/roles/{}/DICOM%20Data%20Owner", ada.client_id),
            ),
            ("POST", "/l/ada/admin/clients".to_string()),
            ("POST", format!("/l/ada/{}/login", ada.tenant_id)),
            ("GET", "/l/ada/v1/studies".to_string()),
            ("GET", "/".to_string()),
            ("POST", "/classroom/join".to_string()),
        ] {
            let r = http
                .request(method.parse().expect("method"), format!("{origin}{path}"))
                .header("x-dicomlab-admin", "1")
                .json(&json!({"name": "mine"}))
                .send()
                .await
                .expect("internal without the key");
            assert_eq!(r.status(), 404, "{method} {origin}{path}");
        }
    }
    let roles = &c.core.tenants.get(&name("ada")).expect("ada").service.auth;
    assert!(
        !roles
            .roles_of(&ada.client_id)
            .contains(&dicomlab_practice::auth::Role::DataOwner),
        "nothing was granted"
    );
    c.shutdown().await;
}

/// Waits until no check has run for a while; how many ran.
async fn settled(c: &Classroom) -> u64 {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let before = c.core.checks_run.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = c.core.checks_run.load(Ordering::Relaxed);
        if before == after || Instant::now() > end {
            return after;
        }
    }
}

/// Requests without a valid token cost no check, and "not found" tells no names apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_cost_no_checks_and_tell_no_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let ada = c.core.join(&name("ada")).await.expect("ada joins");
    let http = reqwest::Client::new();
    let origin = format!("http://{}", c.http_addr);
    let answer = |path: &'static str| {
        let http = http.clone();
        let origin = origin.clone();
        async move {
            let r = http
                .get(format!("{origin}{path}"))
                .send()
                .await
                .expect("get");
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (r.status().as_u16(), ct, r.text().await.expect("text"))
        }
    };
    let known = answer("/l/ada/no/such/route").await;
    assert_eq!(known.0, 404);
    for path in [
        "/l/nobody/no/such/route",
        "/l/nobody/v1/studies",
        "/l/Nobody/x",
    ] {
        assert_eq!(answer(path).await, known, "{path}");
    }
    // A route's own 404 (no such operation) is the service's, untouched, with its headers.
    do_steps(&ada, &["role-assigned"]).await;
    let t = token(&http, &ada, true).await;
    let r = http
        .get(format!(
            "{origin}/l/ada/v1/operations/0b4a9fd1-4b5c-4a3e-9d7e-1f2a3b4c5d6e"
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("operation");
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("api-supported-versions"));
    assert_ne!(r.text().await.expect("text"), known.2);

    let quiet = settled(&c).await;
    for _ in 0..20 {
        let r = http
            .get(format!("{origin}/l/ada/v1/studies"))
            .send()
            .await
            .expect("anonymous");
        assert_eq!(r.status(), 401);
        let r = http
            .get(format!("{origin}/l/ada/v1/studies"))
            .bearer_auth("not-a-token")
            .send()
            .await
            .expect("forged");
        assert_eq!(r.status(), 401);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        c.core.checks_run.load(Ordering::Relaxed),
        quiet,
        "requests answered 401 run no check"
    );
    c.shutdown().await;
}

/// One address may send the public port so many requests a second; past them, 429 with Retry-After.
/// The classroom's own loopback listener (the TUIs, the checks) has no such limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_port_limits_each_address_rate() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open_with(dir.path(), "right-code", |c| {
        c.rate_per_sec = 2.0;
        c.rate_burst = 10.0;
    })
    .await;
    let http = reqwest::Client::new();
    let mut limited = None;
    for i in 0..30 {
        let r = http
            .get(format!("http://{}/", c.http_addr))
            .send()
            .await
            .expect("get");
        if r.status() == 429 {
            limited = Some((
                i,
                r.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok()),
            ));
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let (at, retry) = limited.expect("limited");
    assert!(at >= 10, "the burst passes: limited after {at}");
    assert!(retry.is_some_and(|s| s >= 1), "{retry:?}");
    let ada = c.core.join(&name("ada")).await.expect("ada joins");
    for _ in 0..30 {
        let r = http
            .get(format!("{}/changefeed/latest", ada.base_url))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 401, "the loopback listener is not limited");
    }
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

/// On the public port one client holds at most a quarter of the connections (128 of 512): a client
/// that opens more is told why and closed, and the port still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_hold_every_connection_of_the_public_port() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let addr = c.http_addr;
    let held: Vec<std::net::TcpStream> = (0..128)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = tokio::task::spawn_blocking(move || {
        let mut extra = std::net::TcpStream::connect(addr).expect("connect");
        let _ = extra.write_all(b"GET /l/ada/v1/studies HTTP/1.1\r\nHost: x\r\n\r\n");
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut out = String::new();
        let _ = extra.read_to_string(&mut out);
        out
    })
    .await
    .expect("task");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("128 connections"), "{answer}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = reqwest::get(format!("http://{addr}/l/nobody/v1/studies"))
        .await
        .expect("get");
    assert_eq!(r.status(), 404, "the port answers again");
    c.shutdown().await;
}

/// A free loopback port (bound, then let go for the process under test).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Issue 16: nobody fills the instructor's disk through `classroom.log`. A real `dicomlab classroom`
/// process; one address sends requests with 60 KiB paths (no credentials) as fast as the public
/// port lets it: the log grows by a few hundred bytes a request, not by the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_credentials_cannot_fill_the_log() {
    let dir = tempfile::tempdir().expect("tmp");
    let room = dir.path().join("room");
    let (http, ssh) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(dicomlab_testkit::exe())
        .args(["classroom", "--headless", "--code", "kx7p-2mqa-h4rt"])
        .arg("--dir")
        .arg(&room)
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--ssh", &format!("127.0.0.1:{ssh}")])
        .args(["--log-max-mib", "1"])
        .env("HOME", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the classroom starts");
    let client = reqwest::Client::new();
    let origin = format!("http://127.0.0.1:{http}");
    let end = Instant::now() + Duration::from_secs(30);
    while client.get(&origin).send().await.is_err() {
        assert!(Instant::now() < end, "the classroom never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Ada is a learner (her service logs its requests); the flood needs no credentials.
    let ssh_addr: std::net::SocketAddr = format!("127.0.0.1:{ssh}").parse().expect("addr");
    let (_ada, _) =
        common::ssh_client::Terminal::first_login(ssh_addr, "ada", "kx7p-2mqa-h4rt", 120, 40)
            .await
            .expect("ada logs in");
    let log = room.join("classroom.log");
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = size(&log);
    let long = "a".repeat(60 * 1024);
    let mut sent = 0u64;
    for i in 0..400 {
        // Ada's service (a route, an unknown route), anonymously.
        let url = match i % 2 {
            0 => format!("{origin}/l/ada/v1/studies/{long}"),
            _ => format!("{origin}/l/ada/{long}"),
        };
        if client.get(&url).send().await.is_ok() {
            sent += 1;
        }
    }
    // The log is written off the request path: let it catch up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = size(&log) + size(&room.join("classroom.log.1")) - before;
    assert!(sent >= 300, "only {sent} requests went through");
    assert!(
        grown < 256 * 1024,
        "{sent} requests of 60 KiB paths grew the log by {grown} bytes"
    );
    eprintln!("{sent} requests of 60 KiB paths grew classroom.log by {grown} bytes");
    // Everything the classroom wrote — the log, the learner's service, its data — is private.
    #[cfg(unix)]
    {
        let open = common::open_to_others(&room);
        assert!(open.is_empty(), "open to others: {open:#?}");
    }
    let _ = child.start_kill();
}

/// Issue 16: the instructor takes a squatted (or unused) name out of the room with `classroom remove`:
/// its entry, service and verdicts go, and the name logs in as new with the class code again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instructor_removes_a_learner_and_the_name_is_free_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let peer: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
    match c.core.ssh_login(peer, "squatter", "right-code").await {
        dicomlab_classroom::SshLogin::Learner { .. } => {}
        other => panic!("{other:?}"),
    }
    c.core.join(&name("squatter")).await.expect("a service");
    assert!(dir.path().join("learners/squatter/service").exists());
    c.shutdown().await;
    let out = std::process::Command::new(dicomlab_testkit::exe())
        .args(["classroom", "remove", "squatter", "--dir"])
        .arg(dir.path())
        .output()
        .expect("classroom remove");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("learners/squatter").exists());
    let kept = std::fs::read_to_string(dir.path().join("learners.json")).expect("learners");
    assert!(!kept.contains("squatter"), "{kept}");
    // Removing someone who is not there says so.
    let out = std::process::Command::new(dicomlab_testkit::exe())
        .args(["classroom", "remove", "nobody", "--dir"])
        .arg(dir.path())
        .output()
        .expect("classroom remove");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no learner 'nobody'"));
    // The name is free: the class code logs it in as new (a new personal code).
    let c = open(dir.path(), "right-code").await;
    match c.core.ssh_login(peer, "squatter", "right-code").await {
        dicomlab_classroom::SshLogin::Learner { issued, .. } => assert!(issued.is_some()),
        other => panic!("{other:?}"),
    }
    c.shutdown().await;
}

/// Issue 16: one address brings at most 40 new names into the room at once (a room behind one NAT
/// address joins together), then one every 30 s: a class-code holder cannot squat the room's names.
/// Other addresses, and the learners already in, are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_squat_the_rooms_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let squatter: std::net::IpAddr = "10.0.0.66".parse().expect("ip");
    for i in 0..40 {
        match c
            .core
            .ssh_login(squatter, &format!("name-{i}"), "right-code")
            .await
        {
            dicomlab_classroom::SshLogin::Learner { .. } => {}
            other => panic!("name-{i}: {other:?}"),
        }
    }
    match c.core.ssh_login(squatter, "name-40", "right-code").await {
        dicomlab_classroom::SshLogin::Told(why) => {
            assert!(why.contains("many new names"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // Its reports are held back the same way (429, with the wait).
    let report = json!({"code": "right-code", "name": "fake-report", "lab": "dicom-service",
        "target": "azure", "steps": {}});
    let other: std::net::IpAddr = "10.0.0.7".parse().expect("ip");
    match c.core.ssh_login(other, "grace", "right-code").await {
        dicomlab_classroom::SshLogin::Learner { issued, .. } => assert!(issued.is_some()),
        other => panic!("another address: {other:?}"),
    }
    // From the loopback address of the test, a self-report is a new name too: 40 pass, then 429.
    let http = reqwest::Client::new();
    let url = format!("http://{}/classroom/join", c.http_addr);
    let mut last = 0;
    for i in 0..41 {
        let mut r = report.clone();
        r["name"] = json!(format!("report-{i}"));
        last = http
            .post(&url)
            .json(&r)
            .send()
            .await
            .expect("join")
            .status()
            .as_u16();
        if last != 200 {
            assert_eq!(i, 40, "refused early, at {i}: {last}");
        }
    }
    assert_eq!(last, 429);
    c.shutdown().await;
}

/// Issue 16: guesses at the class code sent at once from one address gain nothing — while the wait
/// after a wrong one runs, the next are not even looked at (the right code included) and do not
/// make the wait grow; a wrong self-report token's announced wait holds (429), the right token is
/// always let in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_are_not_looked_at_and_announced_waits_hold() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open_with(dir.path(), "right-code", |c| {
        c.first_refusal_delay = Duration::from_secs(2)
    })
    .await;
    let peer: std::net::IpAddr = "10.0.0.9".parse().expect("ip");
    let mut waits = Vec::new();
    for i in 0..10 {
        match c
            .core
            .ssh_login(peer, &format!("guess-{i}"), "wrong-code")
            .await
        {
            dicomlab_classroom::SshLogin::Wrong(w) => waits.push(w),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        waits.iter().all(|w| *w <= Duration::from_secs(2)),
        "one guess counted, the others waited for it: {waits:?}"
    );
    // Within the wait even the right code is not looked at; after it, it is.
    assert!(matches!(
        c.core.ssh_login(peer, "late", "right-code").await,
        dicomlab_classroom::SshLogin::Wrong(_)
    ));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        c.core.ssh_login(peer, "late", "right-code").await,
        dicomlab_classroom::SshLogin::Learner { .. }
    ));

    // A self-reporter's token.
    let http = reqwest::Client::new();
    let url = format!("http://{}/classroom/join", c.http_addr);
    let report = |token: Option<&str>| {
        let mut r = json!({"code": "right-code", "name": "dora", "lab": "dicom-service",
            "target": "azure", "steps": {}});
        if let Some(t) = token {
            r["token"] = json!(t);
        }
        http.post(&url).json(&r).send()
    };
    let first = report(None).await.expect("first report");
    assert_eq!(first.status(), 200);
    let token = first
        .headers()
        .get("x-dicomlab-join-token")
        .and_then(|v| v.to_str().ok())
        .expect("a token")
        .to_string();
    let wrong = report(Some("not-the-token")).await.expect("wrong");
    assert_eq!(wrong.status(), 403);
    assert!(wrong.headers().contains_key("retry-after"));
    let again = report(Some("not-the-token-either")).await.expect("again");
    assert_eq!(again.status(), 429, "the announced wait holds");
    let right = report(Some(&token)).await.expect("right");
    assert_eq!(right.status(), 200, "the right token is always let in");
    c.shutdown().await;
}

/// A classroom folder of an older version: a learner's TUI kept its own progress (keyed by the
/// loopback URL of their service). At their next login it is folded into the room's store — one
/// truth — and the old file is renamed, so it is folded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_tuis_progress_is_folded_into_the_rooms_store() {
    use dicomlab_lab::evidence::{Evidence, Source};
    use dicomlab_lab::progress::ProgressStore;
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let env = c.core.join(&name("ada")).await.expect("ada joins");
    let lab = Lab::embedded().expect("lab");
    let old = dir.path().join("learners/ada/progress.json");
    let mut kept = ProgressStore::load(&old);
    kept.credit(
        &lab.id,
        "http://127.0.0.1:40001/l/ada/v1",
        "change-feed",
        Evidence::new(Source::Answer, "answered 3", None),
    );
    kept.save().expect("old progress");
    let verdicts = dir.path().join("learners/ada/verdicts.json");
    dicomlab_classroom::lab_tui::fold_old_progress(&old, &verdicts, &lab.id, &env);
    let now = ProgressStore::load(&verdicts);
    let steps = now.steps(&lab.id, dicomlab_classroom::VERDICTS_KEY);
    assert_eq!(
        steps.get("change-feed").map(|p| p.status),
        Some(dicomlab_lab::progress::Status::Done),
        "{steps:#?}"
    );
    assert!(!old.exists());
    assert!(old.with_extension("json.folded").exists());
    c.shutdown().await;
}

/// Issue 16: on the public port no caller's `Host` or `X-Forwarded-Proto` decides a URL the service
/// answers with — not a store's RetrieveURL, not the sign-in's issuer: the classroom's public URL does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_host_decides_no_url_on_the_public_port() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let ada = c.core.join(&name("ada")).await.expect("ada joins");
    let http = reqwest::Client::new();
    let public = format!("http://{}", c.http_addr);
    let discovery = http
        .get(format!(
            "{public}/l/ada/{}/v2.0/.well-known/openid-configuration",
            ada.tenant_id
        ))
        .header("Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("X-Dicomlab-Origin", "https://evil.example")
        .send()
        .await
        .expect("discovery");
    assert_eq!(discovery.status(), 200);
    let v: Value = discovery.json().await.expect("json");
    let issuer = v["issuer"].as_str().expect("issuer");
    assert!(
        issuer.starts_with(&format!("{}/l/ada/", c.core.public_origin())),
        "{issuer}"
    );
    assert!(!v.to_string().contains("evil.example"), "{v:#}");
    // A store's answer names the instance at the public URL too.
    let token = token(&http, &ada, true).await;
    let tenant = c.core.tenants.get(&name("ada")).expect("service");
    tenant
        .service
        .auth
        .set_role(
            &tenant.service.db,
            &ada.client_id,
            dicomlab_practice::auth::Role::DataOwner,
            true,
        )
        .expect("role");
    let file = dicomlab_dicom::samples::SAMPLES[0]
        .to_bytes()
        .expect("sample");
    let r = http
        .post(format!("{public}/l/ada/v1/studies"))
        .bearer_auth(&token)
        .header("Host", "evil.example")
        .header("Content-Type", "application/dicom")
        .header("Accept", "application/dicom+json")
        .body(file)
        .send()
        .await
        .expect("store");
    assert_eq!(r.status(), 200);
    let body = r.text().await.expect("body");
    assert!(!body.contains("evil.example"), "{body}");
    assert!(body.contains(&ada.public_base_url), "{body}");
    c.shutdown().await;
}
