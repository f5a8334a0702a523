//! The second lab (`labs/dicomweb-basics.toml`), written in TOML alone, end to end: on the practice
//! service with plain HTTP as a learner's tool (its audit log is the evidence), and on Orthanc through
//! dicomlab (its own exchanges are the evidence, the deletion is seen in Orthanc's stored data). A lab
//! without a role step says what the practice service starts with (`[practice] roles`): without it,
//! its first store answers 403 and the fix names how to grant on the practice service.

use dicomlab_testkit as common;
use dicomlab_testkit::orthanc;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use dicomlab_dicomweb::StoreMode;
use dicomlab_lab::actions::perform;
use dicomlab_lab::config::Profile;
use dicomlab_lab::engine::Session;
use dicomlab_lab::evidence::Source;
use dicomlab_lab::model::StepId;
use dicomlab_lab::progress::ProgressStore;
use dicomlab_lab::targets::TargetKind;
use dicomlab_lab::{Lab, Outcome};
use dicomlab_practice::ServiceConfig;
use reqwest::header::{ACCEPT, CONTENT_TYPE, USER_AGENT};

fn second_lab() -> Lab {
    Lab::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/dicomweb-basics.toml"))
        .expect("the second lab loads")
}

fn passed(results: &[(StepId, Outcome)]) -> BTreeSet<StepId> {
    results
        .iter()
        .filter(|(_, o)| o.is_pass())
        .map(|(id, _)| id.clone())
        .collect()
}

#[tokio::test]
async fn the_second_lab_on_the_practice_service_with_curl() {
    let lab = second_lab();
    // No step of it assigns a role: the lab file says the service starts with one.
    let svc = dicomlab_practice::start(ServiceConfig {
        lab_roles: lab.practice.roles.clone(),
        ..ServiceConfig::default()
    })
    .await
    .expect("service");
    let session = Session::open(&profile_for(&svc), None, None)
        .await
        .expect("session");
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = ProgressStore::load(&dir.path().join("progress.json"));

    // The learner's files, as the lab's generators draw them; stored with one multipart request.
    let files = lab
        .dataset
        .files(None, dir.path())
        .expect("the dataset's files");
    let bytes: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("file"))
        .collect();
    let http = reqwest::Client::new();
    let token = token(&http, &svc).await;
    let (ct, body) = multipart_related(&bytes);
    let r = http
        .post(format!("{}/studies", svc.base_url))
        .bearer_auth(&token)
        .header(USER_AGENT, "curl/8.5.0")
        .header(ACCEPT, DICOM_JSON)
        .header(CONTENT_TYPE, ct)
        .body(body)
        .send()
        .await
        .expect("stow");
    assert_eq!(r.status(), 200);
    let results = session.check_all(&lab, &mut store, None).await;
    assert_eq!(
        passed(&results),
        ["profile-values", "server-answers", "store-shapes"]
            .iter()
            .map(|s| StepId::from(*s))
            .collect(),
        "only the store is done: {results:#?}"
    );
    let get = |path: String, accept: &'static str| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            http.get(path)
                .bearer_auth(token)
                .header(USER_AGENT, "curl/8.5.0")
                .header(ACCEPT, accept)
                .send()
                .await
                .expect("get")
                .status()
                .as_u16()
        }
    };
    let star = lab.dataset.instance("star").expect("star");
    let diamond = lab.dataset.instance("diamond").expect("diamond");
    let b = &svc.base_url;
    assert_eq!(
        get(format!("{b}/studies?PatientID=LAB2-PAT"), DICOM_JSON).await,
        200
    );
    assert_eq!(
        get(format!("{b}/studies/{}/series", star.study), DICOM_JSON).await,
        200
    );
    assert_eq!(
        get(format!("{b}/{}/metadata", star.path()), DICOM_JSON).await,
        200
    );
    assert_eq!(
        get(format!("{b}/{}/rendered", diamond.path()), "image/png").await,
        200
    );
    let results = session.check_all(&lab, &mut store, None).await;
    for id in ["find-patient", "read-metadata", "see-diamond"] {
        let o = &results.iter().find(|(s, _)| s == id).expect("step").1;
        assert!(
            matches!(o, Outcome::Pass { evidence, .. } if evidence.source == Source::AuditLog),
            "{id}: {o:?}"
        );
    }
    // Where the audit log records reads, an answer is not asked for: the records are the evidence.
    let before = store.target(&lab.id, &session.target_key);
    let a = session.answer(&lab, &before, "read-metadata", "320").await;
    assert!(
        matches!(&a, Outcome::Ready { detail, .. } if detail.contains("audit log records")),
        "{a:?}"
    );
    // Where no log is read (a workspace that is not there), the questions' answers come from the
    // service: the lab's attributes, the diamond's frame size.
    let mut p = profile_for(&svc);
    p.log_workspace = "00000000-0000-0000-0000-000000000000".into();
    let session = Session::open(&p, None, None).await.expect("session");
    let a = session.answer(&lab, &before, "read-metadata", "320").await;
    assert!(a.is_pass(), "{a:?}");
    let a = session
        .answer(&lab, &before, "see-diamond", &(240 * 360 * 3).to_string())
        .await;
    assert!(a.is_pass(), "{a:?}");
    let a = session
        .answer(&lab, &before, "find-patient", "DICOMweb basics")
        .await;
    assert!(a.is_pass(), "{a:?}");
}

/// The learner's single-part store of the star: its status.
async fn store_star(svc: &dicomlab_practice::RunningService, lab: &Lab, dir: &Path) -> u16 {
    let files = lab.dataset.files(None, dir).expect("the dataset's files");
    let http = reqwest::Client::new();
    let token = token(&http, svc).await;
    http.post(format!("{}/studies", svc.base_url))
        .bearer_auth(&token)
        .header(USER_AGENT, "curl/8.5.0")
        .header(ACCEPT, DICOM_JSON)
        .header(CONTENT_TYPE, "application/dicom")
        .body(std::fs::read(&files[0]).expect("file"))
        .send()
        .await
        .expect("stow")
        .status()
        .as_u16()
}

#[tokio::test]
async fn what_the_practice_service_starts_with_is_the_labs_and_is_not_kept() {
    let lab = second_lab();
    assert_eq!(lab.practice.roles, [dicomlab_lab::targets::Role::DataOwner]);
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("service");
    let config = |roles: Vec<dicomlab_lab::targets::Role>| ServiceConfig {
        data_dir: Some(data.clone()),
        lab_roles: roles,
        ..ServiceConfig::default()
    };
    // Without the lab's start: 403, and the store step's fix names the practice service's way.
    let svc = dicomlab_practice::start(config(Vec::new()))
        .await
        .expect("service");
    assert_eq!(store_star(&svc, &lab, dir.path()).await, 403);
    let session = Session::open(&profile_for(&svc), None, None)
        .await
        .expect("session");
    let mut store = ProgressStore::load(&dir.path().join("progress.json"));
    let results = session
        .check_all(&lab, &mut store, Some("store-shapes"))
        .await;
    let o = &results
        .iter()
        .find(|(s, _)| s == "store-shapes")
        .expect("step")
        .1;
    let said = serde_json::to_string(o).expect("json");
    assert!(
        said.contains(&format!("dicomlab role grant --service {}", svc.origin))
            && !said.contains("Access control (IAM)"),
        "{said}"
    );
    // What a session opens it with (the embedded service, as the TUI and the commands open it).
    let embedded = dicomlab_embedded::Running::new(svc);
    lab.practice.apply(Some(&embedded));
    assert_eq!(store_star(embedded.service(), &lab, dir.path()).await, 200);
    embedded.into_service().shutdown().await;
    // Started for the lab (`dicomlab --lab FILE serve`, a classroom's learners): the role is there.
    let svc = dicomlab_practice::start(config(lab.practice.roles.clone()))
        .await
        .expect("service");
    assert!(
        svc.service()
            .auth
            .roles_of(&svc.client_id)
            .contains(&dicomlab_lab::targets::Role::DataOwner)
    );
    svc.shutdown().await;
    // Never kept: the same service started for another lab begins without it.
    let svc = dicomlab_practice::start(config(Vec::new()))
        .await
        .expect("service");
    assert!(
        !svc.service()
            .auth
            .roles_of(&svc.client_id)
            .contains(&dicomlab_lab::targets::Role::DataOwner)
    );
}

/// The real binary on the embedded practice service (the default profile), running the second lab's
/// store step: the lab file's start role is what lets it store.
#[test]
fn the_second_lab_stores_on_the_embedded_practice_service() {
    let home = tempfile::tempdir().expect("home");
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/dicomweb-basics.toml");
    let out = std::process::Command::new(dicomlab_testkit::exe())
        .args(["--lab", lab.to_str().expect("path"), "run", "store-shapes"])
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env_remove("DICOMLAB_PROFILE")
        .output()
        .expect("run dicomlab");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("✓ store-shapes"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_second_lab_on_orthanc_through_dicomlab() {
    let Some(o) = orthanc::start() else { return };
    let lab = second_lab();
    let mut p = Profile::new(TargetKind::Generic);
    p.base_url = o.dicomweb.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let session = Session::open(&p, None, Some(tx)).await.expect("session");
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = ProgressStore::load(&dir.path().join("progress.json"));
    for id in [
        "store-shapes",
        "find-patient",
        "read-metadata",
        "see-diamond",
    ] {
        let step = lab.step(id).expect("step");
        perform(&session, &lab, step, None, StoreMode::Multipart, None)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
    }
    while let Ok(e) = rx.try_recv() {
        session.keep_exchange(&lab, &mut store, &e);
    }
    let results = session.check_all(&lab, &mut store, None).await;
    for id in [
        "store-shapes",
        "find-patient",
        "read-metadata",
        "see-diamond",
    ] {
        let o = &results.iter().find(|(s, _)| s == id).expect("step").1;
        assert!(
            matches!(o, Outcome::Pass { evidence, .. } if evidence.source == Source::Dicomlab),
            "{id}: {o:?}"
        );
    }
    // Orthanc has no DICOMweb delete: its REST API removes the study, and dicomlab sees it gone.
    let star = lab.dataset.instance("star").expect("star");
    let http = reqwest::Client::new();
    let found: serde_json::Value = http
        .post(format!("{}/tools/lookup", o.origin))
        .body(star.study.clone())
        .send()
        .await
        .expect("lookup")
        .json()
        .await
        .expect("json");
    let id = found[0]["ID"].as_str().expect("orthanc id");
    let r = http
        .delete(format!("{}/studies/{id}", o.origin))
        .send()
        .await
        .expect("delete");
    assert!(r.status().is_success());
    let o = session
        .check_step(&lab, &mut store, "delete-study")
        .await
        .expect("step");
    assert!(
        matches!(&o, Outcome::Pass { evidence, .. } if evidence.source == Source::ServiceState),
        "{o:?}"
    );
}
