//! Every diagnosis the checks give, produced for real against the practice service (or a dead address).

use dicomlab_testkit as common;

use std::time::Duration;

use common::*;
use dicomlab_dicom::samples::STUDY_UID;
use dicomlab_dicomweb::{Secret, StoreMode};
use dicomlab_lab::config::{GenericAuth, Profile};
use dicomlab_lab::engine::Session;
use dicomlab_lab::model::StepId;
use dicomlab_lab::progress::TargetProgress;
use dicomlab_lab::targets::TargetKind;
use dicomlab_lab::{Lab, Outcome};
use dicomlab_practice::{RunningService, ServiceConfig};
use serde_json::json;

async fn service(config: ServiceConfig) -> RunningService {
    session::service(ServiceConfig {
        grant_owner: true,
        ..config
    })
    .await
}

/// The check of one step of the embedded lab, on a fresh progress.
async fn run(profile: &Profile, step: &str) -> Outcome {
    let session = Session::open(profile, None, None).await.expect("session");
    let lab = Lab::embedded().expect("lab");
    session
        .run_check(&lab, &TargetProgress::default(), step)
        .await
        .expect("step")
}

fn text(o: &Outcome) -> String {
    match o {
        Outcome::Fail {
            expected,
            observed,
            diagnosis,
            ..
        } => format!("{expected} | {observed} | {diagnosis}"),
        // What the checks' own look found (nothing the learner tried failed): the same diagnosis.
        Outcome::NotYet { observed, fix } => format!("| {observed} | {fix}"),
        other => panic!("expected a failure or \"not yet\", got {other:?}"),
    }
}

fn has(o: &Outcome, needles: &[&str]) {
    let t = text(o);
    for n in needles {
        assert!(t.contains(n), "'{n}' missing from: {t}");
    }
}

#[tokio::test]
async fn no_token_and_expired_token_are_401() {
    let svc = service(ServiceConfig {
        token_lifetime: Duration::from_secs(1),
        ..ServiceConfig::default()
    })
    .await;
    let mut none = Profile::new(TargetKind::Generic);
    none.base_url = svc.base_url.clone();
    none.auth = GenericAuth::Bearer;
    none.token = Secret::new("not-a-token");
    has(&run(&none, "role-assigned").await, &["401", "token"]);
    let token = token(&reqwest::Client::new(), &svc).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut pasted = none.clone();
    pasted.auth = GenericAuth::Bearer;
    pasted.token = Secret::new(token);
    has(&run(&pasted, "role-assigned").await, &["401", "expired"]);
}

#[tokio::test]
async fn wrong_audience() {
    let svc = service(ServiceConfig::default()).await;
    let (tok, _) = svc
        .service()
        .auth
        .issue(&svc.client_id, "https://management.azure.com", false)
        .expect("issue");
    let mut p = Profile::new(TargetKind::Generic);
    p.base_url = svc.base_url.clone();
    p.auth = GenericAuth::Bearer;
    p.token = Secret::new(tok);
    has(
        &run(&p, "get-token").await,
        &[
            "audience is https://management.azure.com",
            "resource=https://dicom.healthcareapis.azure.com",
        ],
    );
    has(&run(&p, "role-assigned").await, &["401", "audience"]);
}

#[tokio::test]
async fn base_url_without_v1() {
    let svc = service(ServiceConfig::default()).await;
    let mut p = profile_for(&svc);
    p.base_url = svc.origin.clone();
    has(&run(&p, "service-exists").await, &["404", "add /v1"]);
    has(&run(&p, "environment-values").await, &["must end in /v1"]);
    p.base_url = format!("{}/studies", svc.base_url);
    has(&run(&p, "environment-values").await, &["/studies"]);
}

#[tokio::test]
async fn http_answers_read_as_the_lab_needs() {
    let svc = service(ServiceConfig::default()).await;
    let session = Session::open(&profile_for(&svc), None, None)
        .await
        .expect("session");
    let lab = Lab::embedded().expect("lab");
    let c = &session.client;
    let files = dicomlab_lab::actions::sample_files(&session, &lab, None)
        .await
        .expect("samples");
    c.store(&files, StoreMode::Single, None, 3, None)
        .await
        .expect("store");
    // 406 without transfer-syntax=*.
    let a = c
        .get(
            &format!("studies/{STUDY_UID}"),
            "multipart/related; type=\"application/dicom\"",
        )
        .await
        .expect("get");
    assert_eq!(a.status, 406);
    assert!(session.diagnose(&a).contains("transfer-syntax=*"));
    // 409 45070: already stored, said as such (the ✓ stays the first store's).
    let a = c
        .store(&files[..1], StoreMode::Single, None, 1, None)
        .await
        .expect("store")
        .remove(0);
    assert_eq!(a.status, 409);
    assert!(
        session
            .diagnose(&a)
            .contains("45070: already stored on this service")
    );
    // 409 43264: wrong study in the URL.
    let a = c
        .store(&files[..1], StoreMode::Multipart, Some("1.2.3.4"), 1, None)
        .await
        .expect("store")
        .remove(0);
    assert_eq!(a.status, 409);
    assert!(session.diagnose(&a).contains("43264"));
    // 415: a JSON body to STOW.
    let a = c.post_json("studies", json!({})).await.expect("post");
    assert_eq!(a.status, 415);
    assert!(session.diagnose(&a).contains("Content-Type"));
    // 404 on a wrong UID.
    let a = c
        .get(
            &format!("studies/{STUDY_UID}/series/1.2.3/metadata"),
            "application/dicom+json",
        )
        .await
        .expect("get");
    assert!(session.diagnose(&a).contains("UID in the path is wrong"));
    // Tags: 400 already a core attribute, 400 bad VR / level, 409 exists.
    let a = c
        .post_json(
            "extendedquerytags",
            json!([{"Path": "ManufacturerModelName", "VR": "LO", "Level": "Series"}]),
        )
        .await
        .expect("post");
    assert_eq!(a.status, 400);
    assert!(session.diagnose(&a).contains("already supported"));
    let a = c
        .post_json(
            "extendedquerytags",
            json!([{"Path": "PatientSex", "VR": "LT", "Level": "Study"}]),
        )
        .await
        .expect("post");
    assert!(
        session
            .diagnose(&a)
            .contains("400 Bad Request: The VR code 'LT'")
    );
    let a = c
        .post_json(
            "extendedquerytags",
            json!([{"Path": "PatientSex", "Level": "Studys"}]),
        )
        .await
        .expect("post");
    assert!(session.diagnose(&a).contains("Expected value 'Studys'"));
    let a = c
        .post_json(
            "extendedquerytags",
            json!([{"Path": "PatientSex", "Level": "Study"}]),
        )
        .await
        .expect("post");
    assert_eq!(a.status, 202);
    let href = a
        .json()
        .and_then(|v| v["href"].as_str().map(str::to_string))
        .expect("href");
    c.poll_operation(&href, Duration::from_secs(10), None)
        .await
        .expect("poll");
    let a = c
        .post_json(
            "extendedquerytags",
            json!([{"Path": "PatientSex", "Level": "Study"}]),
        )
        .await
        .expect("post");
    assert_eq!(a.status, 409);
    assert!(session.diagnose(&a).contains("exists already"));
}

#[tokio::test]
async fn a_tag_still_adding() {
    let svc = dicomlab_practice::start(ServiceConfig {
        grant_owner: true,
        reindex_min_duration: Duration::from_secs(5),
        ..ServiceConfig::default()
    })
    .await
    .expect("service");
    let session = Session::open(&profile_for(&svc), None, None)
        .await
        .expect("session");
    let a = session
        .client
        .post_json(
            "extendedquerytags",
            json!([{"Path": "PatientSex", "Level": "Study"}]),
        )
        .await
        .expect("post");
    assert_eq!(a.status, 202);
    // Still adding: waiting, never a failure.
    let o = run(&profile_for(&svc), "tag-add").await;
    assert!(
        matches!(&o, Outcome::Waiting { reason, .. } if reason.contains("status adding") && reason.contains("still running")),
        "{o:?}"
    );
    // Another add while it runs: 409 with the running operation.
    let b = session
        .client
        .post_json(
            "extendedquerytags",
            json!([{"Path": "PatientAge", "Level": "Study"}]),
        )
        .await
        .expect("post");
    assert_eq!(b.status, 409);
    assert!(b.text().contains("already an active re-index operation"));
}

#[tokio::test]
async fn token_errors_from_azure_ad() {
    let svc = service(ServiceConfig::default()).await;
    let mut p = profile_for(&svc);
    p.client_secret = Secret::new("not-the-secret");
    has(&run(&p, "get-token").await, &["AADSTS7000215", "Value"]);
    let mut p = profile_for(&svc);
    p.client_id = "00000000-0000-0000-0000-000000000001".into();
    has(&run(&p, "get-token").await, &["AADSTS700016"]);
    let mut p = profile_for(&svc);
    p.resource = "https://management.azure.com".into();
    has(&run(&p, "get-token").await, &["AADSTS500011"]);
    let mut p = profile_for(&svc);
    p.tenant_id = "someone-else".into();
    has(&run(&p, "get-token").await, &["AADSTS90002"]);
    // A check that needs a token is blocked by it, and says why.
    let mut p = profile_for(&svc);
    p.client_secret = Secret::new("not-the-secret");
    let o = run(&p, "store-samples").await;
    assert!(
        matches!(&o, Outcome::Blocked { reason } if reason.contains("blocked by the token") && reason.contains("AADSTS7000215")),
        "{o:?}"
    );
}

#[tokio::test]
async fn dns_and_connection_refused() {
    let mut p = Profile::new(TargetKind::Generic);
    p.base_url = "http://dicomlab-no-such-host.invalid/v1".into();
    has(&run(&p, "service-exists").await, &["host not found"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    p.base_url = format!("http://127.0.0.1:{port}/v1");
    has(&run(&p, "service-exists").await, &["connection refused"]);
}

#[tokio::test]
async fn a_token_that_expires_mid_lab_is_renewed() {
    let svc = service(ServiceConfig {
        token_lifetime: Duration::from_secs(2),
        ..ServiceConfig::default()
    })
    .await;
    let p = profile_for(&svc);
    let session = Session::open(&p, None, None).await.expect("session");
    let lab = Lab::embedded().expect("lab");
    let fresh = TargetProgress::default();
    let check = |id: &'static str| {
        let (session, lab, fresh) = (&session, &lab, &fresh);
        async move { session.run_check(lab, fresh, id).await.expect("step") }
    };
    assert!(check("role-assigned").await.is_pass());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        check("role-assigned").await.is_pass(),
        "the client fetched a new token"
    );
    // The token the values get must last at least five minutes.
    has(
        &check("get-token").await,
        &["expires in", "request a new token"],
    );
}

#[tokio::test]
async fn change_feed_paging_v1_windows_and_v2_offsets() {
    let svc = service(ServiceConfig::default()).await;
    let session = Session::open(&profile_for(&svc), None, None)
        .await
        .expect("session");
    for i in 0..150 {
        let bytes = dicomlab_dicom::samples::tiny_instance(
            &format!("1.2.3.{i}"),
            "1.2.3.9",
            &format!("1.2.3.9.{i}"),
            "Other^Learner",
        )
        .expect("instance");
        assert_eq!(
            session
                .client
                .store_bytes(bytes.into(), "other.dcm")
                .await
                .expect("store")
                .status,
            200
        );
    }
    let lab = Lab::embedded().expect("lab");
    let files = dicomlab_lab::actions::sample_files(&session, &lab, None)
        .await
        .expect("samples");
    session
        .client
        .store(&files, StoreMode::Single, None, 3, None)
        .await
        .expect("store");
    // The store step finds the samples' Create entries after 150 others: the whole feed is paged.
    let v1 = run(&profile_for(&svc), "store-samples").await;
    assert!(
        matches!(&v1, Outcome::Pass { evidence, .. } if evidence.summary.contains("#151")),
        "v1: sequence windows: {v1:?}"
    );
    let mut v2 = profile_for(&svc);
    v2.base_url = format!("{}/v2", svc.origin);
    assert!(run(&v2, "store-samples").await.is_pass(), "v2: row offsets");
}

#[tokio::test]
async fn an_unreachable_service_or_token_host_is_said_once() {
    let lab = Lab::embedded().expect("lab");
    let fresh = TargetProgress::default();
    // The token host cannot be found: the token step says why (the network, not the service URL);
    // the service itself answers; the steps that need a token are blocked by it.
    let svc = service(ServiceConfig::default()).await;
    let mut p = profile_for(&svc);
    p.authority = "http://dicomlab-token-host.invalid".into();
    let session = Session::open(&p, None, None).await.expect("session");
    let out = session.run_all(&lab, &fresh, None).await;
    let get = |id: &str| {
        out.iter()
            .find(|(s, _)| s == id)
            .map(|(_, o)| o.clone())
            .expect("step")
    };
    assert!(get("service-exists").is_pass());
    assert!(get("environment-values").is_pass());
    has(
        &get("get-token"),
        &[
            "token host dicomlab-token-host.invalid",
            "proxy",
            "not your service URL",
        ],
    );
    for id in ["store-samples", "search-samples", "tag-add", "delete-study"] {
        assert!(
            matches!(get(id), Outcome::Blocked { reason } if reason.starts_with("blocked by the token")),
            "{id}: {:?}",
            get(id)
        );
    }
    // Nothing answers at the service URL: the first step says so, the others are blocked by it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut p = profile_for(&svc);
    p.base_url = format!("http://127.0.0.1:{port}/v1");
    let session = Session::open(&p, None, None).await.expect("session");
    let out = session.run_all(&lab, &fresh, None).await;
    // Said once, as "not yet" (the checks' own request failed; the learner tried nothing): no step
    // is a failure.
    let said: Vec<&StepId> = out
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::NotYet { .. }))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(said, ["service-exists"], "{out:#?}");
    assert!(
        !out.iter().any(|(_, o)| matches!(o, Outcome::Fail { .. })),
        "{out:#?}"
    );
    has(&out[0].1, &["connection refused"]);
    assert!(out.iter().filter(|(_, o)| matches!(o, Outcome::Blocked { reason } if reason.starts_with("blocked by the service"))).count() >= 10);
}

#[tokio::test]
async fn a_base_url_with_a_data_partition_is_used() {
    // The practice service keeps partitions off (docs/contract.md §1.2): the data routes go to the partition
    // and are refused as Azure refuses them; the change feed stays at the versioned base and answers.
    let svc = service(ServiceConfig::default()).await;
    let mut p = profile_for(&svc);
    p.base_url = format!("{}/partitions/lab-a", svc.base_url);
    assert!(p.problems().is_empty(), "{:?}", p.problems());
    let session = Session::open(&p, None, None).await.expect("session");
    let a = session
        .client
        .search(dicomlab_dicomweb::Level::Study, None, None, &[])
        .await
        .expect("search");
    assert_eq!(a.status, 400);
    assert!(
        a.exchange.url.contains("/v1/partitions/lab-a/studies"),
        "{}",
        a.exchange.url
    );
    assert!(
        session
            .diagnose(&a)
            .contains("partitions feature is disabled"),
        "{}",
        session.diagnose(&a)
    );
    let f = session.client.change_feed_latest().await.expect("feed");
    assert!(
        f.exchange.url.ends_with("/v1/changefeed/latest"),
        "{}",
        f.exchange.url
    );
    assert!(f.status == 204 || f.ok(), "{}", f.status);
    let lab = Lab::embedded().expect("lab");
    assert!(
        session
            .run_check(&lab, &TargetProgress::default(), "environment-values")
            .await
            .expect("step")
            .is_pass()
    );
}
