//! The lab engine against the practice service on a loopback port: checks before any step, every step
//! done through the client, every step done with plain HTTP (as curl would), and the full lab green.

mod common;

use std::time::Duration;

use common::*;
use dicomlab::dicom::samples::{RED_UID, SAMPLES, SERIES1_UID, STUDY_UID};
use dicomlab::dicomweb::StoreMode;
use dicomlab::lab::actions::perform;
use dicomlab::lab::engine::Session;
use dicomlab::lab::progress::ProgressStore;
use dicomlab::lab::{Lab, Outcome};
use dicomlab::practice::{self, RunningService, ServiceConfig};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;

async fn fresh() -> (
    RunningService,
    Session,
    Lab,
    ProgressStore,
    tempfile::TempDir,
) {
    let svc = practice::start(ServiceConfig {
        reindex_min_duration: Duration::ZERO,
        ..ServiceConfig::default()
    })
    .await
    .expect("service");
    let session = Session::open(&profile_for(&svc), None, None)
        .await
        .expect("session");
    let dir = tempfile::tempdir().expect("tmp");
    let store = ProgressStore::load(&dir.path().join("progress.json"));
    (svc, session, Lab::embedded().expect("lab"), store, dir)
}

fn assert_fail(o: &Outcome, needle: &str) {
    match o {
        Outcome::Fail {
            diagnosis,
            observed,
            ..
        } => {
            assert!(
                diagnosis.contains(needle) || observed.contains(needle),
                "expected '{needle}' in {o:?}"
            )
        }
        other => panic!("expected a failure mentioning '{needle}', got {other:?}"),
    }
}

fn assert_blocked(o: &Outcome) {
    assert!(
        matches!(o, Outcome::Blocked { .. }),
        "expected blocked, got {o:?}"
    );
}

#[tokio::test]
async fn before_any_step_the_checks_say_what_is_missing() {
    let (svc, session, lab, mut store, _d) = fresh().await;
    let results = session.check_all(&lab, &mut store, None).await;
    let get = |id: &str| {
        results
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, o)| o.clone())
            .expect("step")
    };
    assert!(get("service-exists").is_pass());
    assert!(get("environment-values").is_pass());
    assert!(get("get-token").is_pass());
    // No role yet: 403, naming the role and the client.
    let role = get("role-assigned");
    assert_fail(&role, "DICOM Data Owner");
    assert_fail(&role, &svc.client_id);
    // Grant it: 403 turns into "nothing stored yet".
    svc.set_lab_role(dicomlab::practice::auth::Role::DataOwner, true)
        .expect("grant");
    let results = session.check_all(&lab, &mut store, None).await;
    let get = |id: &str| {
        results
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, o)| o.clone())
            .expect("step")
    };
    assert!(get("role-assigned").is_pass());
    assert_fail(&get("store-samples"), "204");
    assert_blocked(&get("search-samples"));
    assert_blocked(&get("retrieve-samples"));
    assert_fail(&get("change-feed"), "0 of 3");
    assert_fail(&get("tag-add"), "404");
    assert_blocked(&get("tag-disable"));
    assert_blocked(&get("tag-delete"));
    assert_blocked(&get("viewer"));
    assert_blocked(&get("delete-study"));
}

#[tokio::test]
async fn every_step_through_the_client_passes_and_the_lab_ends_green() {
    let (_svc, session, lab, mut store, _d) = fresh().await;
    for step in lab.steps() {
        if step.id.starts_with("delete-") {
            continue;
        }
        let did = perform(&session, &step.check, None, StoreMode::Single).await;
        let outcome = session
            .check_step(&lab, &mut store, &step.id)
            .await
            .expect("step");
        assert!(
            outcome.is_pass(),
            "{}: did {did:?}, got {outcome:?}",
            step.id
        );
    }
    let results = session.check_all(&lab, &mut store, None).await;
    for (id, o) in &results {
        let optional = lab.step(id).is_some_and(|s| s.optional);
        assert!(o.is_pass() || optional, "{id}: {o:?}");
    }
    // Checked alone, a step whose state a later step moved on (the tag deleted after it was added and
    // disabled) still counts, and says why; one never done does not.
    let o = session
        .check_step(&lab, &mut store, "tag-add")
        .await
        .expect("step");
    assert!(
        matches!(&o, Outcome::Pass { detail } if detail.contains("moved the state on")),
        "{o:?}"
    );
    store.reset(&lab.id, &session.target_key, Some("tag-add"));
    let o = session
        .check_step(&lab, &mut store, "tag-add")
        .await
        .expect("step");
    assert!(!o.is_pass(), "{o:?}");
    // The optional deletes, in order; each passes.
    for id in ["delete-instance", "delete-series", "delete-study"] {
        let step = lab.step(id).expect("step");
        perform(&session, &step.check, None, StoreMode::Single)
            .await
            .expect("delete");
        let o = session
            .check_step(&lab, &mut store, id)
            .await
            .expect("step");
        assert!(o.is_pass(), "{id}: {o:?}");
    }
}

#[tokio::test]
async fn multipart_store_through_the_client_passes_too() {
    let (svc, session, lab, mut store, _d) = fresh().await;
    svc.set_lab_role(dicomlab::practice::auth::Role::DataOwner, true)
        .expect("grant");
    let step = lab.step("store-samples").expect("step");
    perform(&session, &step.check, None, StoreMode::Multipart)
        .await
        .expect("store");
    assert!(
        session
            .check_step(&lab, &mut store, "store-samples")
            .await
            .expect("step")
            .is_pass()
    );
    // Storing again: 409 with 45070 — already stored, still done.
    let files = dicomlab::lab::actions::sample_files(&session, None)
        .await
        .expect("files");
    let answers = session
        .client
        .store(&files, StoreMode::Single, None, 1, None)
        .await
        .expect("store");
    assert!(answers.iter().all(|a| a.status == 409));
    let ctx_diag = answers[0].json().expect("json").to_string();
    assert!(ctx_diag.contains("45070"));
    assert!(
        session
            .check_step(&lab, &mut store, "store-samples")
            .await
            .expect("step")
            .is_pass()
    );
}

/// Every step done with plain HTTP requests, as a learner with curl would: the checks see it.
#[tokio::test]
async fn every_step_done_with_plain_http_passes() {
    let (svc, session, lab, mut store, _d) = fresh().await;
    let http = reqwest::Client::new();
    // Token, the AuthorizeGetToken way.
    let tok: Value = http
        .post(svc.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &svc.client_id),
            ("client_secret", &svc.client_secret),
            ("resource", "https://dicom.healthcareapis.azure.com"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = tok["access_token"].as_str().expect("token").to_string();
    // Role: what the portal's IAM blade does.
    let r = http
        .put(format!(
            "{}/admin/roles/{}/DICOM%20Data%20Owner",
            svc.origin, svc.client_id
        ))
        .send()
        .await
        .expect("grant");
    assert_eq!(r.status(), 200);
    assert!(
        session
            .check_step(&lab, &mut store, "role-assigned")
            .await
            .expect("step")
            .is_pass()
    );
    // Store: single part, Postman style.
    for s in &SAMPLES {
        let r = http
            .post(format!("{}/studies", svc.base_url))
            .bearer_auth(&token)
            .header(ACCEPT, DICOM_JSON)
            .header(CONTENT_TYPE, "application/dicom")
            .body(s.to_bytes().expect("bytes"))
            .send()
            .await
            .expect("store");
        assert_eq!(r.status(), 200);
    }
    for id in [
        "store-samples",
        "search-samples",
        "retrieve-samples",
        "change-feed",
        "viewer",
    ] {
        let o = session
            .check_step(&lab, &mut store, id)
            .await
            .expect("step");
        assert!(o.is_pass(), "{id}: {o:?}");
    }
    // Tags, with raw JSON.
    let r = http
        .post(format!("{}/extendedquerytags", svc.base_url))
        .bearer_auth(&token)
        .header(CONTENT_TYPE, "application/json")
        .body(r#"[{"Path":"PatientSex","Level":"Study"}]"#)
        .send()
        .await
        .expect("add");
    assert_eq!(r.status(), 202);
    let href = r.json::<Value>().await.expect("json")["href"]
        .as_str()
        .expect("href")
        .to_string();
    for _ in 0..100 {
        if http
            .get(&href)
            .bearer_auth(&token)
            .send()
            .await
            .expect("poll")
            .status()
            == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in ["tag-add", "tag-search"] {
        assert!(
            session
                .check_step(&lab, &mut store, id)
                .await
                .expect("step")
                .is_pass(),
            "{id}"
        );
    }
    let r = http
        .patch(format!("{}/extendedquerytags/PatientSex", svc.base_url))
        .bearer_auth(&token)
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"QueryStatus":"Disabled"}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 200);
    assert!(
        session
            .check_step(&lab, &mut store, "tag-disable")
            .await
            .expect("step")
            .is_pass()
    );
    let r = http
        .delete(format!("{}/extendedquerytags/PatientSex", svc.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert!(
        session
            .check_step(&lab, &mut store, "tag-delete")
            .await
            .expect("step")
            .is_pass()
    );
    // Deletes.
    let inst = format!(
        "{}/studies/{STUDY_UID}/series/{SERIES1_UID}/instances/{RED_UID}",
        svc.base_url
    );
    assert_eq!(
        http.delete(&inst)
            .bearer_auth(&token)
            .send()
            .await
            .expect("delete")
            .status(),
        204
    );
    assert!(
        session
            .check_step(&lab, &mut store, "delete-instance")
            .await
            .expect("step")
            .is_pass()
    );
    assert_eq!(
        http.delete(format!("{}/studies/{STUDY_UID}", svc.base_url))
            .bearer_auth(&token)
            .send()
            .await
            .expect("delete")
            .status(),
        204
    );
    assert!(
        session
            .check_step(&lab, &mut store, "delete-study")
            .await
            .expect("step")
            .is_pass()
    );
}
