//! The second lab (`labs/dicomweb-basics.toml`), written in TOML alone, end to end: on the practice
//! service with plain HTTP as a learner's tool (its audit log is the evidence), and on Orthanc through
//! dicomlab (its own exchanges are the evidence, the deletion is seen in Orthanc's stored data).

mod common;
#[path = "common/orthanc.rs"]
mod orthanc;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use dicomlab::config::Profile;
use dicomlab::dicomweb::StoreMode;
use dicomlab::lab::actions::perform;
use dicomlab::lab::engine::Session;
use dicomlab::lab::evidence::Source;
use dicomlab::lab::progress::ProgressStore;
use dicomlab::lab::{Lab, Outcome};
use dicomlab::practice::{self, ServiceConfig};
use dicomlab::target::TargetKind;
use reqwest::header::{ACCEPT, CONTENT_TYPE, USER_AGENT};

fn second_lab() -> Lab {
    Lab::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/dicomweb-basics.toml"))
        .expect("the second lab loads")
}

fn passed(results: &[(String, Outcome)]) -> BTreeSet<String> {
    results
        .iter()
        .filter(|(_, o)| o.is_pass())
        .map(|(id, _)| id.clone())
        .collect()
}

#[tokio::test]
async fn the_second_lab_on_the_practice_service_with_curl() {
    let lab = second_lab();
    let svc = practice::start(ServiceConfig {
        grant_owner: true,
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
            .map(|s| s.to_string())
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
    // The questions' answers come from the service: the lab's attributes, the diamond's frame size.
    let before = store.target(&lab.id, &session.target_key);
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
