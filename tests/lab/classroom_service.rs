//! The classroom's services behind one port: each learner's own service under `/l/{name}`, nothing
//! shared, URLs built with the prefix, verdicts from each learner's own records, a restart that keeps
//! everything, an older TUI's progress folded in, URLs the public port answers with. The helpers the
//! other classroom files share (a classroom opened on a folder, a learner's token, waiting for the
//! room) are here. Self-reported learners: `classroom_self_report.rs`; the public port and the room
//! against misuse: `classroom_limits.rs`.

use dicomlab_testkit as common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dicomlab_classroom::names::LearnerName;
use dicomlab_classroom::room::{self, Mark};
use dicomlab_classroom::{Classroom, ClassroomConfig, LearnerEnv};
use dicomlab_dicomweb::StoreMode;
use dicomlab_lab::Lab;
use dicomlab_lab::engine::Session;
use serde_json::{Value, json};

pub(crate) async fn open(dir: &std::path::Path, code: &str) -> Classroom {
    open_with(dir, code, |_| {}).await
}

pub(crate) async fn open_with(
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

pub(crate) fn name(n: &str) -> LearnerName {
    LearnerName::exact(n).expect("name")
}

pub(crate) async fn token(http: &reqwest::Client, env: &LearnerEnv, public: bool) -> String {
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
pub(crate) async fn do_steps(env: &LearnerEnv, steps: &[&str]) {
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
pub(crate) async fn room_until(
    c: &Classroom,
    what: &str,
    ok: impl Fn(&room::Room) -> bool,
) -> room::Room {
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

pub(crate) fn step_mark(r: &room::Room, learner: &str, step: &str) -> Option<Mark> {
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

/// The room draws the lab's instance files once, into its folder, for every learner's TUI to store
/// (each session drew and wrote its own before: megabytes each, all at the same moment in a room).
#[tokio::test]
async fn the_room_makes_the_sample_files_once_for_every_learner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let room = open(dir.path(), "samples-code-1").await;
    let lab = Lab::embedded().expect("lab");
    let folder = dir.path().join("samples");
    let started = Instant::now();
    let made = |file: &str| dicomlab_dicom::reader::open_header(&folder.join(file)).ok();
    while !lab
        .dataset
        .instances
        .iter()
        .all(|i| made(&i.file).is_some())
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the room's sample files never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in &lab.dataset.instances {
        let header = made(&i.file).expect("header");
        let sop = header
            .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
            .expect("SOP Instance UID")
            .to_str()
            .expect("text");
        assert_eq!(sop.trim_end_matches('\0'), i.sop, "{}", i.file);
    }
    room.shutdown().await;
}
