//! What a ✓ means, against the practice service on a loopback port: a step is credited when the
//! service's records show that the learner's client did it — with plain HTTP as curl or Postman would,
//! or through dicomlab — and never because "the service could answer this now". A later delete never
//! undoes a step; two learners on one service never credit each other; a failed request from another
//! tool shows up diagnosed on its step; records that arrive late make a step wait, never fail.

use dicomlab_testkit as common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use dicomlab_dicomweb::StoreMode;
use dicomlab_lab::actions::perform;
use dicomlab_lab::engine::Session;
use dicomlab_lab::evidence::Source;
use dicomlab_lab::model::StepId;
use dicomlab_lab::progress::ProgressStore;
use dicomlab_lab::{Lab, Outcome};
use dicomlab_practice::auth::Role;
use dicomlab_practice::{RunningService, ServiceConfig};
use reqwest::header::{ACCEPT, CONTENT_TYPE, USER_AGENT};
use serde_json::Value;

type Fixture = session::LabRun;

async fn fresh_with(config: ServiceConfig) -> Fixture {
    session::LabRun::start(config).await
}

async fn fresh() -> Fixture {
    fresh_with(ServiceConfig::default()).await
}

/// The steps that pass now.
async fn passed_steps(f: &mut Fixture) -> BTreeSet<StepId> {
    f.check()
        .await
        .into_iter()
        .filter(|(_, o)| o.is_pass())
        .map(|(id, _)| id)
        .collect()
}

fn outcome<'a>(results: &'a [(StepId, Outcome)], id: &str) -> &'a Outcome {
    &results
        .iter()
        .find(|(s, _)| s == id)
        .unwrap_or_else(|| panic!("no step {id}"))
        .1
}

fn set(ids: &[&str]) -> BTreeSet<StepId> {
    ids.iter().map(|s| StepId::from(*s)).collect()
}

/// A learner's tool: plain HTTP with the lab client's token and the tool's User-Agent.
struct Tool {
    http: reqwest::Client,
    base: String,
    token: String,
    agent: &'static str,
}

const ST: &str = "1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420";
const SE: &str = "1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652";
const RED: &str = "1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395";
const MULTI: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";

impl Tool {
    async fn new(svc: &RunningService, client_id: &str, secret: &str, agent: &'static str) -> Tool {
        let http = reqwest::Client::new();
        let r = http
            .post(svc.token_url())
            .header(USER_AGENT, agent)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("resource", "https://dicom.healthcareapis.azure.com"),
            ])
            .send()
            .await
            .expect("token");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        Tool {
            http,
            base: svc.base_url.clone(),
            token: v["access_token"].as_str().expect("token").to_string(),
            agent,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        accept: &str,
        ct: Option<&str>,
        body: Vec<u8>,
    ) -> u16 {
        let mut r = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .bearer_auth(&self.token)
            .header(USER_AGENT, self.agent)
            .header(ACCEPT, accept);
        if let Some(ct) = ct {
            r = r.header(CONTENT_TYPE, ct).body(body);
        }
        r.send().await.expect("send").status().as_u16()
    }

    async fn get(&self, path: &str, accept: &str) -> u16 {
        self.send(reqwest::Method::GET, path, accept, None, Vec::new())
            .await
    }

    async fn store_samples(&self) {
        for f in sample_files() {
            let s = self
                .send(
                    reqwest::Method::POST,
                    "studies",
                    DICOM_JSON,
                    Some("application/dicom"),
                    f,
                )
                .await;
            assert!(s == 200 || s == 409, "store answered {s}");
        }
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: &str) -> u16 {
        self.send(
            method,
            path,
            "application/json",
            Some("application/json"),
            body.as_bytes().to_vec(),
        )
        .await
    }

    /// The workshop collection's requests, in its order (tests/clients/workshop-requests): store,
    /// retrieve, search, tags (add, operation, list, get, update, errors, delete), then the deletes.
    async fn collection(&self) {
        self.store_samples().await;
        for (path, accept) in [
            (format!("studies/{ST}"), MULTI),
            (format!("studies/{ST}/metadata"), DICOM_JSON),
            (format!("studies/{ST}/series/{SE}"), MULTI),
            (format!("studies/{ST}/series/{SE}/metadata"), DICOM_JSON),
            (
                format!("studies/{ST}/series/{SE}/instances/{RED}"),
                "application/dicom; transfer-syntax=*",
            ),
            (
                format!("studies/{ST}/series/{SE}/instances/{RED}/metadata"),
                DICOM_JSON,
            ),
            (
                format!("studies/{ST}/series/{SE}/instances/{RED}/frames/1"),
                "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
            ),
            (format!("studies?StudyInstanceUID={ST}"), DICOM_JSON),
            (format!("series?SeriesInstanceUID={SE}"), DICOM_JSON),
            (
                format!("studies/{ST}/series?SeriesInstanceUID={SE}"),
                DICOM_JSON,
            ),
            (format!("instances?SOPInstanceUID={RED}"), DICOM_JSON),
            (
                format!("studies/{ST}/instances?SOPInstanceUID={RED}"),
                DICOM_JSON,
            ),
            (
                format!("studies/{ST}/series/{SE}/instances?SOPInstanceUID={RED}"),
                DICOM_JSON,
            ),
        ] {
            assert_eq!(self.get(&path, accept).await, 200, "{path}");
        }
        use reqwest::Method;
        assert_eq!(
            self.json(
                Method::POST,
                "extendedquerytags",
                r#"[{"Path":"ManufacturerModelName","VR":"LO","Level":"Series"}]"#
            )
            .await,
            400
        );
        assert_eq!(
            self.json(
                Method::POST,
                "extendedquerytags",
                r#"[{"Path":"PatientSex","Level":"Study"}]"#
            )
            .await,
            202
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(self.json(Method::GET, "extendedquerytags", "").await, 200);
        assert_eq!(
            self.json(Method::GET, "extendedquerytags/PatientSex", "")
                .await,
            200
        );
        assert_eq!(
            self.json(
                Method::PATCH,
                "extendedquerytags/PatientSex",
                r#"{"QueryStatus":"Disabled"}"#
            )
            .await,
            200
        );
        assert_eq!(
            self.json(Method::GET, "extendedquerytags/PatientSex/errors", "")
                .await,
            200
        );
        assert_eq!(
            self.json(Method::DELETE, "extendedquerytags/PatientSex", "")
                .await,
            204
        );
        for path in [
            format!("studies/{ST}/series/{SE}/instances/{RED}"),
            format!("studies/{ST}/series/{SE}"),
            format!("studies/{ST}"),
        ] {
            assert_eq!(
                self.send(Method::DELETE, &path, "*/*", None, Vec::new())
                    .await,
                204,
                "{path}"
            );
        }
    }
}

async fn lab_tool(svc: &RunningService, agent: &'static str) -> Tool {
    Tool::new(svc, &svc.client_id, &svc.client_secret, agent).await
}

#[tokio::test]
async fn a_learner_who_only_stores_is_credited_for_storing_only() {
    let mut f = fresh().await;
    f.svc.set_lab_role(Role::DataOwner, true).expect("grant");
    // Checked before, dicomlab reads the change feed and the tags itself: that never credits anything.
    let before = passed_steps(&mut f).await;
    assert!(
        !before.contains("change-feed") && !before.contains("store-samples"),
        "{before:?}"
    );
    let curl = lab_tool(&f.svc, "curl/8.5.0").await;
    curl.store_samples().await;
    let results = f.check().await;
    let store = outcome(&results, "store-samples");
    assert!(
        matches!(store, Outcome::Pass { evidence, .. } if evidence.source == Source::ChangeFeed && evidence.summary.contains("stored by your app")),
        "{store:?}"
    );
    for id in [
        "search-samples",
        "retrieve-samples",
        "change-feed",
        "viewer",
        "tag-add",
        "tag-search",
        "delete-study",
    ] {
        let o = outcome(&results, id);
        assert!(!o.is_pass(), "{id} must not be credited: {o:?}");
        assert!(
            !matches!(o, Outcome::Fail { .. }),
            "{id} was not tried: not a failure: {o:?}"
        );
    }
    // The token the learner's curl asked for is on the record (the sign-in log), from curl.
    let token = outcome(&results, "get-token");
    assert!(
        matches!(token, Outcome::Pass { evidence, .. } if evidence.source == Source::AuditLog && evidence.summary.contains("curl")),
        "{token:?}"
    );
}

#[tokio::test]
async fn the_collections_requests_in_its_order_credit_exactly_the_steps_done() {
    let mut f = fresh().await;
    f.svc.set_lab_role(Role::DataOwner, true).expect("grant");
    let postman = lab_tool(&f.svc, "PostmanRuntime/7.42.0").await;
    postman.collection().await;
    let passed = passed_steps(&mut f).await;
    assert_eq!(
        passed,
        set(&[
            "service-exists",
            "role-assigned",
            "environment-values",
            "get-token",
            "store-samples",
            "search-samples",
            "retrieve-samples",
            "tag-add",
            "tag-list",
            "tag-get",
            "tag-disable",
            "tag-delete",
            "delete-instance",
            "delete-series",
            "delete-study",
        ]),
        "the collection reads no change feed, searches with no tag and shows no image"
    );
    // The study is gone, the tag too: nothing done is undone, checked again and again.
    let again = passed_steps(&mut f).await;
    assert_eq!(passed, again);
    let results = f.check().await;
    let del = outcome(&results, "delete-series");
    assert!(
        matches!(del, Outcome::Pass { evidence, .. } if evidence.source == Source::AuditLog && evidence.summary.contains("Postman") && evidence.summary.contains("Delete entries")),
        "{del:?}"
    );
    let tag = outcome(&results, "tag-disable");
    assert!(
        matches!(tag, Outcome::Pass { evidence, .. } if evidence.summary.contains("PATCH")),
        "{tag:?}"
    );
}

/// The workshop's other routes: storing to a given study (`POST studies/{study}`) and the series' metadata
/// count for the store and retrieve steps; listing the tags and getting one by its number count for the
/// list and get steps — and a GET of some other tag does not.
#[tokio::test]
async fn storing_to_a_study_series_metadata_and_a_tag_by_number_count() {
    let mut f = fresh().await;
    f.svc.set_lab_role(Role::DataOwner, true).expect("grant");
    let curl = lab_tool(&f.svc, "curl/8.5.0").await;
    for file in sample_files() {
        let s = curl
            .send(
                reqwest::Method::POST,
                &format!("studies/{ST}"),
                DICOM_JSON,
                Some("application/dicom"),
                file,
            )
            .await;
        assert_eq!(s, 200, "store to the study");
    }
    for (path, accept) in [
        (format!("studies/{ST}"), MULTI),
        (format!("studies/{ST}/series/{SE}"), MULTI),
        (
            format!("studies/{ST}/series/{SE}/instances/{RED}"),
            "application/dicom; transfer-syntax=*",
        ),
        (format!("studies/{ST}/series/{SE}/metadata"), DICOM_JSON),
        (
            format!("studies/{ST}/series/{SE}/instances/{RED}/frames/1"),
            "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
        ),
    ] {
        assert_eq!(curl.get(&path, accept).await, 200, "{path}");
    }
    use reqwest::Method;
    assert_eq!(
        curl.json(
            Method::POST,
            "extendedquerytags",
            r#"[{"Path":"PatientSex","Level":"Study"}]"#
        )
        .await,
        202
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another tag's GET (404) is not the learner's tag.
    assert_eq!(
        curl.json(Method::GET, "extendedquerytags/PatientAge", "")
            .await,
        404
    );
    let passed = passed_steps(&mut f).await;
    for id in ["store-samples", "retrieve-samples", "tag-add"] {
        assert!(passed.contains(id), "{id}: {passed:?}");
    }
    assert!(
        !passed.contains("tag-get") && !passed.contains("tag-list"),
        "{passed:?}"
    );
    assert_eq!(curl.json(Method::GET, "extendedquerytags", "").await, 200);
    assert_eq!(
        curl.json(Method::GET, "extendedquerytags/00100040", "")
            .await,
        200
    );
    let passed = passed_steps(&mut f).await;
    assert!(
        passed.contains("tag-list") && passed.contains("tag-get"),
        "{passed:?}"
    );
}

#[tokio::test]
async fn everything_done_inside_dicomlab_passes_and_the_optional_deletes_undo_nothing() {
    let mut f = fresh().await;
    for step in f.lab.steps().cloned().collect::<Vec<_>>() {
        if step.id == "postman-environment" {
            continue;
        }
        let did = perform(
            &f.session,
            &f.lab,
            &step,
            None,
            StoreMode::Single,
            Some("PatientSex"),
        )
        .await;
        let o = f
            .session
            .check_step(&f.lab, &mut f.store, &step.id)
            .await
            .expect("step");
        assert!(o.is_pass(), "{}: did {did:?}, got {o:?}", step.id);
    }
    // `C` after the deletes: every step still done (the study and the tag are gone).
    let results = f.check().await;
    for (id, o) in &results {
        assert!(o.is_pass() || id == "postman-environment", "{id}: {o:?}");
    }
    // Only a reset undoes a step; records before the reset no longer count for it.
    f.store
        .reset(&f.lab.id, &f.session.target_key, Some("store-samples"));
    let o = f
        .session
        .check_step(&f.lab, &mut f.store, "store-samples")
        .await
        .expect("step");
    assert!(!o.is_pass(), "{o:?}");
}

#[tokio::test]
async fn two_learners_on_one_service_never_credit_each_other() {
    let mut a = fresh().await;
    a.svc.set_lab_role(Role::DataOwner, true).expect("grant");
    // Learner B: another app registration on the same service, with its own role.
    let b_client = a
        .svc
        .service()
        .auth
        .create_client(&a.svc.service().db, "learner b")
        .expect("client");
    a.svc
        .service()
        .auth
        .set_role(
            &a.svc.service().db,
            &b_client.client_id,
            Role::DataOwner,
            true,
        )
        .expect("grant b");
    let mut b_profile = profile_for(&a.svc);
    b_profile.client_id = b_client.client_id.clone();
    b_profile.client_secret = dicomlab_dicomweb::Secret::new(b_client.secret.clone());
    b_profile.shared = true;
    let b_session = Session::open(&b_profile, None, None)
        .await
        .expect("session b");
    let mut b_store = ProgressStore::load(&a.dir.path().join("b.json"));

    // A stores the samples and searches; B only searches, and tries to store (409: already stored).
    let tool_a = lab_tool(&a.svc, "curl/8.5.0").await;
    tool_a.store_samples().await;
    let tool_b = Tool::new(
        &a.svc,
        &b_client.client_id,
        &b_client.secret,
        "python-requests/2.32",
    )
    .await;
    for f in sample_files() {
        assert_eq!(
            tool_b
                .send(
                    reqwest::Method::POST,
                    "studies",
                    DICOM_JSON,
                    Some("application/dicom"),
                    f
                )
                .await,
            409
        );
    }
    for (path, accept) in [
        (format!("studies?StudyInstanceUID={ST}"), DICOM_JSON),
        (format!("series?SeriesInstanceUID={SE}"), DICOM_JSON),
        (
            format!("studies/{ST}/series?SeriesInstanceUID={SE}"),
            DICOM_JSON,
        ),
        (format!("instances?SOPInstanceUID={RED}"), DICOM_JSON),
        (
            format!("studies/{ST}/instances?SOPInstanceUID={RED}"),
            DICOM_JSON,
        ),
        (
            format!("studies/{ST}/series/{SE}/instances?SOPInstanceUID={RED}"),
            DICOM_JSON,
        ),
    ] {
        assert_eq!(tool_b.get(&path, accept).await, 200);
    }
    let a_results = a.check().await;
    assert!(outcome(&a_results, "store-samples").is_pass());
    assert!(
        !outcome(&a_results, "search-samples").is_pass(),
        "B's searches are not A's"
    );

    let lab = Lab::embedded().expect("lab");
    let b_results = b_session.check_all(&lab, &mut b_store, None).await;
    let b_store_o = outcome(&b_results, "store-samples");
    assert!(
        matches!(b_store_o, Outcome::Fail { observed, diagnosis, .. } if observed.contains("another client") && diagnosis.contains("once per service")),
        "{b_store_o:?}"
    );
    assert!(outcome(&b_results, "search-samples").is_pass());

    // A's tag, disabled: in B's tag list too, but B's audit rows show no add or update of B's.
    assert_eq!(
        tool_a
            .json(
                reqwest::Method::POST,
                "extendedquerytags",
                r#"[{"Path":"PatientSex","Level":"Study"}]"#
            )
            .await,
        202
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        tool_a
            .json(
                reqwest::Method::PATCH,
                "extendedquerytags/PatientSex",
                r#"{"QueryStatus":"Disabled"}"#
            )
            .await,
        200
    );
    let b_results = b_session.check_all(&lab, &mut b_store, None).await;
    for id in ["tag-add", "tag-disable", "tag-delete"] {
        let o = outcome(&b_results, id);
        assert!(!o.is_pass(), "{id} is A's, not B's: {o:?}");
    }
    let a_results = a.check().await;
    for id in ["tag-add", "tag-disable"] {
        assert!(outcome(&a_results, id).is_pass(), "{id}");
    }
}

#[tokio::test]
async fn a_failing_postman_request_shows_up_diagnosed_on_its_step() {
    let mut f = fresh().await;
    f.svc.set_lab_role(Role::DataOwner, true).expect("grant");
    let postman = lab_tool(&f.svc, "PostmanRuntime/7.42.0").await;
    // The body sent as JSON: 415.
    let red = sample_files().remove(0);
    let s = postman
        .send(
            reqwest::Method::POST,
            "studies",
            DICOM_JSON,
            Some("application/json"),
            red,
        )
        .await;
    assert_eq!(s, 415);
    // A retrieve without transfer-syntax=*: 406.
    assert_eq!(
        postman
            .get(
                &format!("studies/{ST}"),
                "multipart/related; type=\"application/dicom\""
            )
            .await,
        404
    );
    let results = f.check().await;
    let store = outcome(&results, "store-samples");
    let Outcome::Fail {
        diagnosis, tried, ..
    } = store
    else {
        panic!("expected a failure: {store:?}");
    };
    assert!(diagnosis.contains("Content-Type"), "{diagnosis}");
    assert_eq!(tried.len(), 1);
    assert_eq!(tried[0].status, 415);
    assert_eq!(tried[0].tool.as_deref(), Some("Postman"));
    assert_eq!(tried[0].line, "POST /v1/studies");
    assert_eq!(tried[0].source, Source::AuditLog);
    // Then it works: the failure goes, the step is done.
    postman.store_samples().await;
    let results = f.check().await;
    assert!(outcome(&results, "store-samples").is_pass());
    // A retrieve with the wrong Accept, after the store: 406, diagnosed on the retrieve step.
    assert_eq!(
        postman
            .get(
                &format!("studies/{ST}"),
                "multipart/related; type=\"application/dicom\""
            )
            .await,
        406
    );
    let results = f.check().await;
    let r = outcome(&results, "retrieve-samples");
    assert!(
        r.tried()
            .first()
            .is_some_and(|t| t.status == 406 && t.diagnosis.contains("transfer-syntax=*")),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_late_audit_log_makes_a_step_wait_never_fail() {
    let mut f = fresh_with(ServiceConfig {
        audit_delay: Duration::from_secs(3600),
        ..ServiceConfig::default()
    })
    .await;
    f.svc.set_lab_role(Role::DataOwner, true).expect("grant");
    let curl = lab_tool(&f.svc, "curl/8.5.0").await;
    curl.store_samples().await;
    assert_eq!(curl.get("changefeed", "application/json").await, 200);
    let results = f.check().await;
    // The store is in the change feed (immediate); the read is not in the audit log yet.
    assert!(outcome(&results, "store-samples").is_pass());
    let feed = outcome(&results, "change-feed");
    assert!(
        matches!(feed, Outcome::Waiting { reason, .. } if reason.contains("waiting for the audit log")),
        "{feed:?}"
    );
    let saved = f.store.steps(&f.lab.id, &f.session.target_key);
    assert!(saved["change-feed"].waiting_since.is_some());
}

#[tokio::test]
async fn the_role_step_needs_a_role_that_writes_and_stores_nothing() {
    let mut f = fresh().await;
    f.svc.set_lab_role(Role::DataReader, true).expect("reader");
    let results = f.check().await;
    let role = outcome(&results, "role-assigned");
    assert!(
        // Not a failure: the learner tried nothing; the checks' own empty store says what is missing.
        matches!(role, Outcome::NotYet { fix, .. } if fix.contains("403") && fix.contains("DICOM Data Reader is not enough")),
        "{role:?}"
    );
    f.svc.set_lab_role(Role::DataOwner, true).expect("owner");
    let results = f.check().await;
    assert!(outcome(&results, "role-assigned").is_pass());
    // Nothing was stored by the check: the change feed is empty.
    let a = f
        .session
        .client
        .change_feed(0, 100, false)
        .await
        .expect("feed");
    assert_eq!(a.json(), Some(serde_json::json!([])));
}

#[tokio::test]
async fn the_audit_log_reads_like_log_analytics() {
    let f = fresh().await;
    f.svc.set_lab_role(Role::DataOwner, true).expect("grant");
    let curl = lab_tool(&f.svc, "curl/8.5.0").await;
    assert_eq!(curl.get("changefeed", "application/json").await, 200);
    let reader = f
        .session
        .log
        .as_ref()
        .expect("the practice service has an audit log");
    let t = reader
        .query("AHDSDicomAuditLogs | where OperationName == \"ChangeFeed\" and ResultType != \"Started\" | project TimeGenerated, OperationName, StatusCode, Uri, UserAgent, Identity", Some("PT1H"))
        .await
        .expect("query");
    assert_eq!(
        t.columns,
        [
            "TimeGenerated",
            "OperationName",
            "StatusCode",
            "Uri",
            "UserAgent",
            "Identity"
        ]
    );
    assert_eq!(t.rows.len(), 1, "{:?}", t.rows);
    assert_eq!(t.text(&t.rows[0], "StatusCode").as_deref(), Some("200"));
    assert_eq!(
        t.dynamic(&t.rows[0], "Identity")["claims"]["appid"],
        f.svc.client_id.as_str()
    );
    // A query the workspace cannot read: Log Analytics' error shape.
    let e = reader
        .query("AHDSDicomAuditLogs | summarize count()", None)
        .await
        .expect_err("refused");
    assert!(
        e.to_string().contains("BadArgumentError") && e.to_string().contains("summarize"),
        "{e}"
    );
    // Without the role "Log Analytics Reader": InsufficientAccessError.
    f.svc
        .service()
        .auth
        .set_role(
            &f.svc.service().db,
            &f.svc.client_id,
            Role::LogAnalyticsReader,
            false,
        )
        .expect("revoke");
    let e = reader
        .query("AHDSDicomAuditLogs | take 1", None)
        .await
        .expect_err("forbidden");
    assert!(e.to_string().contains("InsufficientAccessError"), "{e}");
}

#[tokio::test]
async fn a_recorded_log_analytics_answer_reads_the_same() {
    // An answer as Azure's query API gives it (columns in Azure's order, Identity as a JSON string,
    // start rows with no status): the reader takes the learner's completed rows.
    let body: Value =
        serde_json::from_str(include_str!("../fixtures/loganalytics-audit.json")).expect("fixture");
    let t = dicomlab_dicomweb::LogTable::parse(&body).expect("table");
    let attempts: Vec<_> = t
        .rows
        .iter()
        .filter_map(|r| dicomlab_lab::evidence::audit_attempt(&t, r))
        .collect();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert_eq!(attempts[0].method, "POST");
    assert_eq!(attempts[0].status, 415);
    assert_eq!(attempts[1].method, "GET");
    assert_eq!(attempts[2].method, "DELETE");
    assert!(
        attempts
            .iter()
            .all(|a| a.source == Source::AuditLog && a.tool.is_none())
    );
}

#[tokio::test]
async fn a_question_answered_right_is_evidence_where_reads_leave_no_record() {
    let f = fresh().await;
    f.svc.set_lab_role(Role::DataOwner, true).expect("grant");
    lab_tool(&f.svc, "curl/8.5.0").await.store_samples().await;
    // A profile that reads no audit log (as Azure without the workspace).
    let mut p = profile_for(&f.svc);
    p.log_workspace = "00000000-0000-0000-0000-000000000000".into();
    let session = Session::open(&p, None, None).await.expect("session");
    let before = dicomlab_lab::progress::TargetProgress::default();
    let wrong = session
        .answer(&f.lab, &before, "retrieve-samples", "1234")
        .await;
    assert!(matches!(wrong, Outcome::Fail { .. }), "{wrong:?}");
    let right = session
        .answer(&f.lab, &before, "retrieve-samples", "2,892,945")
        .await;
    assert!(
        matches!(&right, Outcome::Pass { evidence, .. } if evidence.source == Source::Answer),
        "{right:?}"
    );
    let date = session
        .answer(&f.lab, &before, "search-samples", "20200922")
        .await;
    assert!(date.is_pass(), "{date:?}");
}

#[tokio::test]
async fn the_checks_own_requests_never_count_where_the_logs_keep_no_user_agent() {
    // Azure's audit and sign-in logs keep no User-Agent: only the ledger of what the checks sent tells
    // their rows (made with the learner's app) from the learner's.
    let mut f = fresh_with(ServiceConfig {
        audit_user_agent: false,
        ..ServiceConfig::default()
    })
    .await;
    f.svc.set_lab_role(Role::DataOwner, true).expect("grant");
    // Checked twice: the role check's empty store, the checks' token, their reads. The second run
    // reads the rows of the first from the log, with the ledger kept in progress.
    let _ = f.check().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let results = f.check().await;
    for id in [
        "get-token",
        "store-samples",
        "search-samples",
        "retrieve-samples",
    ] {
        let o = outcome(&results, id);
        assert!(!o.is_pass(), "{id}: {o:?}");
        assert!(
            o.tried().is_empty(),
            "{id} shows the checks' requests: {o:?}"
        );
    }
    assert!(
        !f.store
            .target(&f.lab.id, &f.session.target_key)
            .own
            .is_empty(),
        "the checks' requests are kept with progress"
    );
    // The learner's own token and store count, as ever.
    let curl = lab_tool(&f.svc, "curl/8.5.0").await;
    curl.store_samples().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let passed = passed_steps(&mut f).await;
    assert!(
        passed.contains("get-token") && passed.contains("store-samples"),
        "{passed:?}"
    );
    assert!(!passed.contains("search-samples"), "{passed:?}");
}
