//! `kill -9` in the middle of a large store and of a tag re-index: after a restart on the same data there
//! is no half instance, no operation stuck running, and the change feed matches the instances.

use dicomlab_testkit as common;
use dicomlab_testkit::served;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{DICOM_JSON, sample_files, uid};
use dicomlab_dicom::hostile;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use served::Served;

use crate::practice_in_index::{files, kept};

async fn get_json(s: &Served, token: &str, path: &str) -> (u16, Value) {
    common::status_json(s.get(token, path, DICOM_JSON).await).await
}

/// Instances (by QIDO), change-feed entries and files on disk agree.
async fn consistent(s: &Served, token: &str) -> usize {
    let (status, found) = get_json(s, token, "instances?limit=200").await;
    let instances = if status == 204 {
        0
    } else {
        found.as_array().map_or(0, Vec::len)
    };
    let (_, feed) = get_json(s, token, "changefeed?limit=100").await;
    let creates = feed
        .as_array()
        .map_or(0, |a| a.iter().filter(|e| e["action"] == "Create").count());
    assert_eq!(
        instances, creates,
        "the change feed matches the instances: {feed}"
    );
    // A small instance has no file: the index keeps its bytes.
    assert_eq!(
        instances,
        files(&s.data) + kept(&s.data),
        "one file (or bytes the index keeps) per instance, no half one"
    );
    instances
}

/// Starts a single-part store of `file` on a raw socket and sends `sent` bytes of it.
fn start_store(s: &Served, token: &str, file: &[u8], sent: usize) -> TcpStream {
    let mut sock = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    write!(
        sock,
        "POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nAccept: application/dicom+json\r\nContent-Type: application/dicom\r\nContent-Length: {}\r\n\r\n",
        file.len()
    )
    .expect("headers");
    sock.write_all(&file[..sent]).expect("body");
    sock.flush().expect("flush");
    sock
}

#[tokio::test]
async fn a_kill_mid_large_store_leaves_no_half_instance() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let (study, series) = (uid(), uid());
    // 144 MB: an image of 12000 × 12000.
    let big = hostile::image(&study, &series, &format!("{series}.1"), 12000, 12000, 9);
    for (round, sent) in [big.len() / 2, big.len()].into_iter().enumerate() {
        let mut s = Served::start(&data, &[]);
        let token = s.token().await;
        let before = consistent(&s, &token).await;
        let _sock = start_store(&s, &token, &big, sent);
        // Mid-body (round 0), or while it is validated and indexed (round 1).
        std::thread::sleep(Duration::from_millis(if round == 0 { 400 } else { 60 }));
        s.kill9();
        let s = Served::start(&data, &[]);
        let token = s.token().await;
        let after = consistent(&s, &token).await;
        assert!(after == before || after == before + 1, "{before} → {after}");
        eprintln!("round {round}: {before} → {after} instance(s) after the kill");
    }
    // The service stores normally afterwards.
    let s = Served::start(&data, &[]);
    let token = s.token().await;
    let small = hostile::image(&study, &series, &format!("{series}.2"), 64, 64, 1);
    assert_eq!(s.store(&token, small).await.0, 200);
    consistent(&s, &token).await;
}

/// Adds PatientSex as an extended query tag; returns the re-index operation's id.
async fn add_tag(s: &Served, token: &str) -> String {
    let r = reqwest::Client::new()
        .post(s.url("extendedquerytags"))
        .bearer_auth(token)
        .header(CONTENT_TYPE, "application/json")
        .body(r#"[{"Path":"PatientSex","Level":"Study"}]"#)
        .send()
        .await
        .expect("add");
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.expect("json");
    v["id"].as_str().expect("operation id").to_string()
}

#[tokio::test]
async fn a_kill_mid_reindex_leaves_no_stuck_operation() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut s = Served::start(&data, &["--reindex-seconds", "30"]);
    let token = s.token().await;
    for f in sample_files() {
        assert_eq!(s.store(&token, f).await.0, 200);
    }
    let op = add_tag(&s, &token).await;
    std::thread::sleep(Duration::from_millis(300));
    let (_, running) = get_json(&s, &token, &format!("operations/{op}")).await;
    assert_eq!(running["status"], "running", "{running}");
    s.kill9();

    let s = Served::start(&data, &[]);
    let token = s.token().await;
    let (_, after) = get_json(&s, &token, &format!("operations/{op}")).await;
    assert_eq!(
        after["status"], "failed",
        "no operation stays running: {after}"
    );
    assert_eq!(consistent(&s, &token).await, 3);
    // The tag can be added again; it indexes each instance once.
    let op = add_tag(&s, &token).await;
    let mut status = Value::Null;
    for _ in 0..100 {
        let (_, o) = get_json(&s, &token, &format!("operations/{op}")).await;
        status = o["status"].clone();
        if status != "running" && status != "notStarted" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(status == "completed" || status == "succeeded", "{status}");
    let index = rusqlite::Connection::open(data.join("index.sqlite")).expect("index");
    let rows: i64 = index
        .query_row(
            "SELECT COUNT(*) FROM attr_index WHERE tag = ?1",
            [0x0010_0040i64],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(rows, 3, "each instance indexed once on the re-added tag");
    let (status, found) = get_json(&s, &token, "studies?PatientSex=F").await;
    assert_eq!(status, 200, "{found}");
}
