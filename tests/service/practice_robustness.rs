//! The practice service under stress of a different kind: restarts, a kill in the middle of a store, bad
//! input of every sort, token errors, live role changes, and size limits.

use dicomlab_testkit as common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicomlab_dicom::samples::{RED_UID, SERIES1_UID, STUDY_UID};
use dicomlab_practice::ServiceConfig;
use dicomlab_practice::auth::Role;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::Value;

fn config_in(dir: &std::path::Path) -> ServiceConfig {
    ServiceConfig {
        data_dir: Some(dir.to_path_buf()),
        grant_owner: true,
        reindex_min_duration: Duration::ZERO,
        ..ServiceConfig::default()
    }
}

#[tokio::test]
async fn restart_on_the_same_data_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = Lab::start_with(config_in(dir.path())).await;
    lab.store_samples().await;
    let (_, _, text) = lab
        .json_request(
            Method::POST,
            &lab.url("extendedquerytags"),
            r#"[{"Path":"PatientSex","Level":"Study"}]"#,
        )
        .await;
    let reference: Value = serde_json::from_str(&text).expect("json");
    lab.wait_operation(reference["href"].as_str().expect("href"))
        .await;
    let (client, secret, tenant) = (
        lab.svc.client_id.clone(),
        lab.svc.client_secret.clone(),
        lab.svc.tenant_id.clone(),
    );
    let old_token = lab.token.clone();
    lab.svc.shutdown().await;

    let svc = dicomlab_practice::start(ServiceConfig {
        grant_owner: false,
        ..config_in(dir.path())
    })
    .await
    .expect("restart");
    assert_eq!(
        (&svc.client_id, &svc.client_secret, &svc.tenant_id),
        (&client, &secret, &tenant)
    );
    let lab = Lab {
        http: reqwest::Client::new(),
        token: old_token,
        svc,
    };
    let (status, found) = lab.get_json(&lab.url("studies?PatientSex=F")).await;
    assert_eq!(
        status, 200,
        "an old token, the role and the tag survive a restart"
    );
    assert_eq!(first_str(&found[0], "0020000D").as_deref(), Some(STUDY_UID));
    let (_, feed) = lab.get_json(&lab.url("changefeed")).await;
    assert_eq!(feed.as_array().map(Vec::len), Some(3));
    let r = lab
        .get(&lab.url(&format!(
            "studies/{STUDY_UID}/series/{SERIES1_UID}/instances/{RED_UID}"
        )))
        .header(ACCEPT, "application/dicom; transfer-syntax=*")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

/// Files under `blobs/` (in its shard folders).
fn blob_files(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("blobs"))
        .expect("blobs")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|shard| std::fs::read_dir(shard.path()).expect("shard").count())
        .sum()
}

/// Sends headers and half of a body over a raw socket, then kills the server process.
#[tokio::test]
async fn a_kill_in_the_middle_of_a_store_leaves_no_half_instance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dicomlab_testkit::exe();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let spawn = || {
        std::process::Command::new(&exe)
            .args([
                "serve",
                "--no-auth",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--data",
            ])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn dicomlab serve")
    };
    let wait_up = || {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("service did not come up");
    };
    let mut child = spawn();
    wait_up();
    let file = sample_files().remove(0);
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        sock,
        "POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/dicom+json\r\nContent-Type: application/dicom\r\nContent-Length: {}\r\n\r\n",
        file.len()
    )
    .expect("headers");
    sock.write_all(&file[..file.len() / 2]).expect("half body");
    sock.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        blob_files(dir.path()),
        1,
        "the upload is being streamed to its blob path"
    );
    child.kill().expect("kill");
    child.wait().expect("wait");

    let mut child = spawn();
    wait_up();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/v1");
    let r = http
        .get(format!("{base}/instances?SOPInstanceUID={RED_UID}"))
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204, "nothing half-stored is visible");
    assert_eq!(
        blob_files(dir.path()),
        0,
        "the half-written file is removed at start"
    );
    // And the same file stores cleanly afterwards.
    let r = http
        .post(format!("{base}/studies"))
        .header(ACCEPT, DICOM_JSON)
        .header(CONTENT_TYPE, "application/dicom")
        .body(file)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    child.kill().expect("kill");
    let _ = child.wait();
    let mut s = String::new();
    let _ = sock.read_to_string(&mut s);
}

#[tokio::test]
async fn unreferenced_files_are_removed_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The folder is the service's once it has run there (it carries the marker).
    dicomlab_practice::start(config_in(dir.path()))
        .await
        .expect("start")
        .shutdown()
        .await;
    // A shard folder is made by the first upload named in it (the one the crash cut short).
    std::fs::create_dir_all(dir.path().join("blobs/ab")).expect("shard folder");
    let orphan = dir
        .path()
        .join("blobs/ab/ab0123456789abcdef0123456789abcd.dcm");
    std::fs::write(&orphan, b"left by a crash").expect("write");
    let mine = dir.path().join("blobs/ab/notes.txt");
    std::fs::write(&mine, b"not the service's").expect("write");
    let svc = dicomlab_practice::start(config_in(dir.path()))
        .await
        .expect("start");
    assert!(
        !orphan.exists(),
        "a file named as the service names them is cleaned"
    );
    assert!(mine.exists(), "anything else is left alone");
    assert_eq!(blob_files(dir.path()), 1);
    svc.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_the_contract_status_and_a_reason() {
    let lab = Lab::start().await;
    // Garbage and truncated files: the item fails (409 / 43264).
    let red = sample_files().remove(0);
    for body in [
        b"this is not DICOM".to_vec(),
        red[..1000].to_vec(),
        vec![0u8; 4096],
        Vec::new(),
    ] {
        let (status, resp) = lab.store_single("studies", body).await;
        assert_eq!(status, 409, "{resp}");
        assert_eq!(
            first_str(&values(&resp, "00081198")[0], "00081197").as_deref(),
            Some("43264")
        );
    }
    // Malformed multipart: 400 with a reason.
    let r = lab
        .http
        .post(lab.url("studies"))
        .bearer_auth(&lab.token)
        .header(ACCEPT, DICOM_JSON)
        .header(
            CONTENT_TYPE,
            "multipart/related; type=\"application/dicom\"; boundary=xyz",
        )
        .body("--xyz\r\nContent-Type: application/dicom\r\n\r\nno closing boundary")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.expect("text").is_empty());
    // A later part without a Content-Type: 415.
    let (ct, _) = multipart_related(&[]);
    // (A part with no header lines at all is refused as malformed by the multipart parser: 400.)
    let body = "--dicomlab-test-boundary\r\nContent-Type: application/dicom\r\n\r\nx\r\n--dicomlab-test-boundary\r\nContent-Description: second\r\n\r\ny\r\n--dicomlab-test-boundary--\r\n";
    let r = lab
        .http
        .post(lab.url("studies"))
        .bearer_auth(&lab.token)
        .header(ACCEPT, DICOM_JSON)
        .header(CONTENT_TYPE, ct)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 415);
    // Bad UIDs in paths, including traversal attempts.
    for path in [
        "studies/..%2F..%2Fetc/metadata".to_string(),
        "studies/1.2.3/series/..%2Fx/metadata".to_string(),
        format!("studies/{}/metadata", "9".repeat(65)),
        "studies/1.2.abc/metadata".to_string(),
    ] {
        let (status, _) = lab.get_json(&lab.url(&path)).await;
        assert_eq!(status, 400, "{path}");
    }
    // Huge values: a 10,000-character PatientName fails validation in v1, and a huge query value is fine.
    let long = "A".repeat(10_000);
    let file = instance(
        &uid(),
        &uid(),
        &uid(),
        &[(tags::PATIENT_NAME, VR::PN, &long)],
    );
    let (status, _) = lab.store_single("studies", file).await;
    assert_eq!(status, 409);
    let (status, _) = lab
        .get_json(&lab.url(&format!("studies?PatientID={long}")))
        .await;
    assert_eq!(status, 204);
    // Query errors.
    for q in [
        "studies?limit=0",
        "studies?limit=201",
        "studies?limit=x",
        "studies?offset=-1",
        "studies?PatientName=",
        "studies?studyinstanceuid=1",
        "studies?includefield=all&includefield=PatientAge",
        "studies?PatientName=a&00100010=b",
        "studies?StudyDate=2020-01-01",
        "studies?StudyDate=-",
        "studies?StudyDate=20200102-20200101",
        "studies?PatientName=%3Cscript",
        "studies?ReferencedSOPSequence.ReferencedSOPInstanceUID=1",
    ] {
        let (status, body) = lab.get_json(&lab.url(q)).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(
            body.as_str().is_some_and(|s| !s.is_empty()),
            "{q} has a reason"
        );
    }
    // Tag and operation garbage.
    for body in [
        "{not json",
        "{}",
        "[]",
        r#"[{"Path":"Nope","Level":"Study"}]"#,
        r#"[{"Path":"PatientSex","Level":"Study","VR":"LT"}]"#,
        r#"[{"Path":"PatientSex","Level":"Study","VR":"DA"}]"#,
        r#"[{"Path":"00191002","Level":"Study","VR":"LO"}]"#,
        r#"[{"Path":"PatientSex","Level":"Study","PrivateCreator":"X"}]"#,
        r#"[{"Path":"PatientSex","Level":"Study"},{"Path":"00100040","Level":"Study"}]"#,
        r#"[{"Path":"PatientSex","Level":1}]"#,
    ] {
        let (status, _, text) = lab
            .json_request(Method::POST, &lab.url("extendedquerytags"), body)
            .await;
        assert_eq!(status, 400, "{body}: {text}");
    }
    let r = lab
        .http
        .post(lab.url("extendedquerytags"))
        .bearer_auth(&lab.token)
        .header(CONTENT_TYPE, "text/plain")
        .body("[]")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 415);
    for id in ["1", "not-a-guid", "00000000000000000000000000000000"] {
        let r = lab
            .get(&lab.url(&format!("operations/{id}")))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 404, "{id}");
    }
    for body in [
        r#"{"QueryStatus":"Maybe"}"#,
        r#"{"QueryStatus":"Enabled","Other":1}"#,
        "[]",
    ] {
        let (status, _, _) = lab
            .json_request(
                Method::PATCH,
                &lab.url("extendedquerytags/PatientSex"),
                body,
            )
            .await;
        assert_eq!(status, 400, "{body}");
    }
    // Versions and partitions.
    let (status, body) = lab
        .get_json(&format!("{}/v3/studies", lab.svc.origin))
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("UnsupportedApiVersion"));
    let (status, _) = lab.get_json(&format!("{}/studies", lab.svc.origin)).await;
    assert_eq!(status, 404, "a base URL without /v1 matches no route");
    let (status, _) = lab.get_json(&lab.url("partitions/foo/studies")).await;
    assert_eq!(status, 400);
    // The service is still fine.
    let r = lab
        .http
        .get(format!("{}/health/check", lab.svc.origin))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let lab = Lab::start_with(ServiceConfig {
        grant_owner: true,
        max_request_bytes: 100_000,
        ..ServiceConfig::default()
    })
    .await;
    let (status, _) = lab.store_single("studies", sample_files().remove(0)).await;
    assert_eq!(status, 413);
    // Chunked (no Content-Length): cut off while streaming.
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(
        sample_files()
            .remove(0)
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    ));
    let r = lab
        .http
        .post(lab.url("studies"))
        .bearer_auth(&lab.token)
        .header(ACCEPT, DICOM_JSON)
        .header(CONTENT_TYPE, "application/dicom")
        .body(body)
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
}

/// Form fields, URL, expected status, `error`, and the AADSTS code.
type TokenCase<'a> = (&'a [(&'a str, &'a str)], String, u16, &'a str, &'a str);

async fn token_form(lab: &Lab, url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = lab.http.post(url).form(form).send().await.expect("send");
    (r.status().as_u16(), r.json().await.expect("json"))
}

#[tokio::test]
async fn token_endpoint_errors_look_like_azure_ad() {
    let lab = Lab::start().await;
    let s = &lab.svc;
    let cases: [TokenCase; 5] = [
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &s.client_id),
                ("client_secret", "wrong"),
                ("resource", &s.resource),
            ],
            s.token_url(),
            401,
            "invalid_client",
            "AADSTS7000215",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "00000000-0000-0000-0000-000000000000"),
                ("client_secret", "x"),
                ("resource", &s.resource),
            ],
            s.token_url(),
            400,
            "unauthorized_client",
            "AADSTS700016",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &s.client_id),
                ("client_secret", &s.client_secret),
                ("resource", "https://management.azure.com"),
            ],
            s.token_url(),
            400,
            "invalid_resource",
            "AADSTS500011",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &s.client_id),
                ("client_secret", &s.client_secret),
                ("resource", &s.resource),
            ],
            format!("{}/not-my-tenant/oauth2/token", s.origin),
            400,
            "invalid_request",
            "AADSTS90002",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &s.client_id),
                ("client_secret", &s.client_secret),
                ("scope", "https://dicom.healthcareapis.azure.com"),
            ],
            s.token_url_v2(),
            400,
            "invalid_scope",
            "AADSTS1002012",
        ),
    ];
    for (form, url, status, error, code) in cases {
        let (got, body) = token_form(&lab, &url, form).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(body["error"], error);
        assert!(
            body["error_description"]
                .as_str()
                .expect("description")
                .starts_with(code),
            "{body}"
        );
        assert!(body["error_codes"].is_array() && body["trace_id"].is_string());
    }
    let (status, body) = token_form(
        &lab,
        &s.token_url_v2(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &s.client_id),
            ("client_secret", &s.client_secret),
            ("scope", "https://dicom.healthcareapis.azure.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["expires_in"].is_number(), "v2 expires_in is a number");
    assert!(body.get("resource").is_none());
}

#[tokio::test]
async fn expired_wrong_audience_and_foreign_tokens_are_401() {
    let lab = Lab::start_with(ServiceConfig {
        grant_owner: true,
        token_lifetime: Duration::from_secs(1),
        ..ServiceConfig::default()
    })
    .await;
    let (wrong_aud, _) = lab
        .svc
        .service()
        .auth
        .issue(&lab.svc.client_id, "https://management.azure.com", false)
        .expect("issue");
    let other = dicomlab_practice::start(ServiceConfig::default())
        .await
        .expect("other");
    let foreign = token(&lab.http, &other).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for (tok, what) in [
        (&lab.token, "expired"),
        (&wrong_aud, "audience"),
        (&foreign, "signature"),
        (&"garbage".to_string(), "malformed"),
    ] {
        let r = lab
            .http
            .get(lab.url("changefeed"))
            .bearer_auth(tok)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401, "{what}");
        let www = r.headers()[WWW_AUTHENTICATE].to_str().expect("header");
        assert!(www.contains("error=\"invalid_token\""), "{what}: {www}");
    }
}

#[tokio::test]
async fn granting_the_role_turns_403_into_200_with_the_same_token() {
    let lab = Lab::start_with(ServiceConfig::default()).await;
    let read = || lab.get(&lab.url("changefeed?limit=1")).send();
    assert_eq!(read().await.expect("send").status(), 403);
    let r = lab
        .http
        .put(format!(
            "{}/admin/roles/{}/DICOM%20Data%20Owner",
            lab.svc.origin, lab.svc.client_id
        ))
        .header("X-Dicomlab-Admin", "1")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(read().await.expect("send").status(), 200);
    lab.svc
        .set_lab_role(Role::DataOwner, false)
        .expect("revoke");
    assert_eq!(read().await.expect("send").status(), 403);
    let (status, _) = lab.get_json(&lab.url("changefeed")).await;
    assert_eq!(status, 403);
}

/// Twelve parts of ~690 KB: past the request's in-memory budget (8 MB) the rest stream to disk; all store.
#[tokio::test]
async fn many_medium_parts_past_the_memory_budget_all_store() {
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, dicom_value};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    let lab = Lab::start().await;
    let study = uid();
    let files: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            let s = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
            let us = |tag, v: u16| DataElement::new(tag, VR::US, dicom_value!(U16, [v]));
            let sop = format!("{study}.{i}");
            let obj = InMemDicomObject::from_element_iter([
                s(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.7"),
                s(tags::SOP_INSTANCE_UID, VR::UI, &sop),
                s(tags::PATIENT_ID, VR::LO, "MEM"),
                s(tags::STUDY_INSTANCE_UID, VR::UI, &study),
                s(tags::SERIES_INSTANCE_UID, VR::UI, &format!("{study}.99")),
                us(tags::SAMPLES_PER_PIXEL, 3),
                s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"),
                us(tags::ROWS, 480),
                us(tags::COLUMNS, 480),
                us(tags::BITS_ALLOCATED, 8),
                us(tags::BITS_STORED, 8),
                us(tags::HIGH_BIT, 7),
                us(tags::PIXEL_REPRESENTATION, 0),
                DataElement::new(
                    tags::PIXEL_DATA,
                    VR::OB,
                    PrimitiveValue::U8(vec![i as u8; 480 * 480 * 3].into()),
                ),
            ]);
            let file = obj
                .with_meta(FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1"))
                .expect("meta");
            let mut out = Vec::new();
            file.write_all(&mut out).expect("write");
            out
        })
        .collect();
    let (status, body) = lab.store_multipart(&lab.url("studies"), &files).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(values(&body, "00081199").len(), 12);
    let (status, found) = lab
        .get_json(&lab.url(&format!("studies/{study}/instances")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(found.as_array().map(Vec::len), Some(12));
}

/// A service with a storage limit (each learner's, in a classroom): a body that cannot fit is refused
/// 507 before it is received, an instance whose stored file outgrows the room left fails 272 with the
/// reason, and a delete makes room.
#[tokio::test]
async fn a_storage_limit_refuses_what_does_not_fit_and_a_delete_makes_room() {
    // UIDs of one length: every instance has the same size.
    let fixed = |i: u64| format!("2.25.1{i:037}");
    let study = fixed(1);
    let next = std::sync::atomic::AtomicU64::new(100);
    let one = || {
        let i = next.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
        instance(&study, &fixed(i), &fixed(i + 1), &[])
    };
    let n = one().len() as u64;
    assert_eq!(one().len() as u64, n);
    let lab = Lab::start_with(ServiceConfig {
        grant_owner: true,
        max_stored_bytes: Some(2 * n - 64),
        ..ServiceConfig::default()
    })
    .await;
    let (status, _) = lab.store_single("studies", one()).await;
    assert_eq!(status, 200);
    // Without its 128-byte preamble the body fits the room left (n - 64), the file stored from it
    // (the preamble put back) does not: 272, the reason in its comment.
    let bare = one()[128..].to_vec();
    let (status, body) = lab.store_single("studies", bare).await;
    assert_eq!(status, 409, "{body:#}");
    let failed = body["00081198"]["Value"].as_array().expect("failed list");
    assert_eq!(failed[0]["00081197"]["Value"][0], 272);
    assert!(body.to_string().contains("delete a study"), "{body:#}");
    // A whole instance is bigger than the room left: refused before it is read.
    let (status, body) = lab.store_single("studies", one()).await;
    assert_eq!(status, 507, "{body:#}");
    assert!(body.to_string().contains("delete a study"), "{body:#}");
    // A body of megabytes too: its client reads the 507 and why, not a broken pipe.
    let big = sample_files().remove(0);
    assert!(big.len() > 1024 * 1024);
    let (status, body) = lab.store_single("studies", big).await;
    assert_eq!(status, 507, "{body:#}");
    // A delete makes room.
    assert_eq!(lab.delete(&format!("studies/{study}")).await, 204);
    let (status, _) = lab.store_single("studies", one()).await;
    assert_eq!(status, 200);
}

/// Stores received at once share the room: while one body that takes all of it is still arriving,
/// another is refused 507 before it is read; once the first is in, the service holds just its limit.
#[tokio::test]
async fn stores_received_at_once_cannot_together_pass_the_storage_limit() {
    let fixed = |i: u64| format!("2.25.1{i:037}");
    let study = fixed(1);
    let one = |i: u64| instance(&study, &fixed(i), &fixed(i + 1), &[]);
    // A: two instances in one body that takes all the room, half sent, the rest held back.
    let (content_type, body) = multipart_related(&[one(20), one(30)]);
    let lab = Lab::start_with(ServiceConfig {
        grant_owner: true,
        max_stored_bytes: Some(body.len() as u64),
        ..ServiceConfig::default()
    })
    .await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let half = body.len() / 2;
    tx.send(Ok(body[..half].to_vec()))
        .await
        .expect("first half");
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let a = {
        let req = lab
            .http
            .post(lab.url("studies"))
            .bearer_auth(&lab.token)
            .header(ACCEPT, DICOM_JSON)
            .header(CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, body.len())
            .body(reqwest::Body::wrap_stream(stream));
        tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
    };
    // Once A's body is being received (its room promised)…
    let started = std::time::Instant::now();
    while lab
        .svc
        .service()
        .storage_reserved
        .load(std::sync::atomic::Ordering::Acquire)
        == 0
    {
        assert!(started.elapsed() < Duration::from_secs(20), "A never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …B: no room left.
    let (status, said) = lab.store_single("studies", one(40)).await;
    assert_eq!(status, 507, "{said:#}");
    // A finishes: both of its instances are stored, and nothing stays promised.
    tx.send(Ok(body[half..].to_vec()))
        .await
        .expect("second half");
    drop(tx);
    assert_eq!(a.await.expect("task").expect("a"), 200);
    assert_eq!(
        lab.svc
            .service()
            .storage_reserved
            .load(std::sync::atomic::Ordering::Acquire),
        0
    );
    // Full now; and nothing is promised any more, so a delete makes room for B.
    let (status, _) = lab.store_single("studies", one(40)).await;
    assert_eq!(status, 507);
    assert_eq!(
        lab.delete(&format!("studies/{study}/series/{}", fixed(20)))
            .await,
        204
    );
    let (status, _) = lab.store_single("studies", one(40)).await;
    assert_eq!(status, 200);
}

/// A metadata read racing a delete of what it reads answers what was there or 404 — never 500 (the
/// instances found and their metadata are read at one moment).
#[tokio::test]
async fn a_metadata_read_racing_a_delete_answers_200_or_404() {
    use dicomlab_dicom::samples::tiny_instance;
    let lab = Lab::start().await;
    let study = "1.2.826.0.1.3680043.8.498.4242";
    let series = format!("{study}.1");
    let url = lab.url(&format!("studies/{study}/metadata"));
    let mut answered = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..30 {
        let files: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                tiny_instance(
                    study,
                    &series,
                    &format!("{series}.{round}.{i}"),
                    "Race^Test",
                )
                .expect("instance")
            })
            .collect();
        let (status, body) = lab.store_multipart(&lab.url("studies"), &files).await;
        assert_eq!(status, 200, "{body}");
        // Readers read the study's metadata again and again; once each has seen it, it is deleted
        // while they go on.
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (http, token, url) = (lab.http.clone(), lab.token.clone(), url.clone());
                let (seen, stop) = (seen.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut statuses = Vec::new();
                    let mut counted = false;
                    while !stop.load(std::sync::atomic::Ordering::Acquire) {
                        let r = http
                            .get(&url)
                            .bearer_auth(&token)
                            .header(ACCEPT, "application/dicom+json")
                            .send()
                            .await
                            .expect("send");
                        statuses.push(r.status().as_u16());
                        if !counted && r.status().as_u16() == 200 {
                            counted = true;
                            seen.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        }
                    }
                    statuses
                })
            })
            .collect();
        while seen.load(std::sync::atomic::Ordering::Acquire) < 4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(lab.delete(&format!("studies/{study}")).await, 204);
        stop.store(true, std::sync::atomic::Ordering::Release);
        for r in readers {
            for s in r.await.expect("reader") {
                assert!(
                    s == 200 || s == 404,
                    "a metadata read racing a delete answered {s}"
                );
                *answered.entry(s).or_default() += 1;
            }
        }
    }
    println!("metadata reads racing deletes: {answered:?}");
}
