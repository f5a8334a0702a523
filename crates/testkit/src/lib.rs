//! What the tests and benches share (a dev-dependency, never in the binary): a practice service on a
//! loopback port and a token for it, the lab's samples (generated, or the official files from
//! `DICOMLAB_SAMPLES_DIR`), custom instances; a real `dicomlab serve` ([`served`]), Orthanc
//! ([`orthanc`]), one gate for tests that need a tool ([`require`]), a lab session ([`session`]), an
//! SSH client that reads a screen ([`ssh_client`]), the TUI driven without a terminal ([`tui`]), and the
//! fuzz targets' entry points ([`fuzzing`]), and the benches' deadlines ([`deadline`]) and readings of
//! /proc ([`procfs`]).

pub mod deadline;
pub mod fuzzing;
pub mod orthanc;
pub mod procfs;
pub mod require;
pub mod screen;
pub mod served;
pub mod session;
pub mod ssh_client;
pub mod tmux;
pub mod tui;

/// The `dicomlab` binary the tests run: Cargo's `CARGO_BIN_EXE_dicomlab` when it is set, else the
/// one beside the test executable (`target/<profile>/deps/…` → `target/<profile>/dicomlab`).
pub fn exe() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("CARGO_BIN_EXE_dicomlab") {
        return p.into();
    }
    let me = std::env::current_exe().expect("the test's own path");
    let dir = me.parent().expect("deps folder");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("profile folder")
    } else {
        dir
    };
    dir.join(format!("dicomlab{}", std::env::consts::EXE_SUFFIX))
}

use std::time::Duration;

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicomlab_dicom::samples::{SAMPLES, tiny_instance};
use dicomlab_practice::{RunningService, ServiceConfig};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;

pub const DICOM_JSON: &str = "application/dicom+json";

/// A running service plus an HTTP client that sends the lab client's token.
pub struct Lab {
    pub svc: RunningService,
    pub http: reqwest::Client,
    pub token: String,
}

impl Lab {
    /// Auth on, DICOM Data Owner granted, re-index immediate.
    pub async fn start() -> Lab {
        Self::start_with(ServiceConfig {
            grant_owner: true,
            reindex_min_duration: Duration::ZERO,
            ..ServiceConfig::default()
        })
        .await
    }

    pub async fn start_with(config: ServiceConfig) -> Lab {
        let svc = dicomlab_practice::start(config)
            .await
            .expect("practice service starts");
        let http = reqwest::Client::new();
        let token = token(&http, &svc).await;
        Lab { svc, http, token }
    }

    /// `{base}/{path}` (base ends in /v1).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.svc.base_url, path.trim_start_matches('/'))
    }
    pub fn url_v2(&self, path: &str) -> String {
        format!("{}/v2/{}", self.svc.origin, path.trim_start_matches('/'))
    }

    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.http.get(url).bearer_auth(&self.token)
    }

    /// DELETE of `path` (under the v1 base) with the lab's token; the status.
    pub async fn delete(&self, path: &str) -> u16 {
        self.http
            .delete(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16()
    }

    pub async fn get_json(&self, url: &str) -> (u16, Value) {
        let r = self
            .get(url)
            .header(ACCEPT, DICOM_JSON)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Single-part STOW of one file to `path` (`studies` or `studies/{uid}`), as the Postman collection does.
    pub async fn store_single(&self, path: &str, bytes: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .header(ACCEPT, DICOM_JSON)
            .header(CONTENT_TYPE, "application/dicom")
            .body(bytes)
            .send()
            .await
            .expect("send");
        status_json(r).await
    }

    /// multipart/related STOW of several files, as curl and Python send it.
    pub async fn store_multipart(&self, url: &str, files: &[Vec<u8>]) -> (u16, Value) {
        let (ct, body) = multipart_related(files);
        let r = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .header(ACCEPT, DICOM_JSON)
            .header(CONTENT_TYPE, ct)
            .body(body)
            .send()
            .await
            .expect("send");
        status_json(r).await
    }

    /// Stores the three lab samples (single part, v1).
    pub async fn store_samples(&self) {
        for bytes in sample_files() {
            let (status, body) = self.store_single("studies", bytes).await;
            assert_eq!(status, 200, "{body}");
        }
    }

    pub async fn json_request(
        &self,
        method: reqwest::Method,
        url: &str,
        body: &str,
    ) -> (u16, HeaderMap, String) {
        let r = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().await.expect("body"))
    }

    /// Polls an operation until it is no longer running.
    pub async fn wait_operation(&self, href: &str) -> Value {
        for _ in 0..200 {
            let r = self.get(href).send().await.expect("send");
            let status = r.status().as_u16();
            let body: Value = r.json().await.expect("json");
            if status == 200 {
                return body;
            }
            assert_eq!(status, 202, "{body}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("operation {href} did not finish");
    }
}

/// A response's status, Content-Type (empty when absent) and body.
pub async fn status_type_bytes(r: reqwest::Response) -> (u16, String, Vec<u8>) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, r.bytes().await.expect("body").to_vec())
}

pub async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A v1 token for the lab client, from the service's own token endpoint.
pub async fn token(http: &reqwest::Client, svc: &RunningService) -> String {
    let r = http
        .post(svc.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &svc.client_id),
            ("client_secret", &svc.client_secret),
            ("resource", &svc.resource),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("token json");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// The three samples' bytes: the official files when `DICOMLAB_SAMPLES_DIR` is set, else generated.
pub fn sample_files() -> Vec<Vec<u8>> {
    match std::env::var_os("DICOMLAB_SAMPLES_DIR") {
        Some(dir) => SAMPLES
            .iter()
            .map(|s| {
                std::fs::read(std::path::Path::new(&dir).join(s.file_name))
                    .expect("official sample readable")
            })
            .collect(),
        None => SAMPLES
            .iter()
            .map(|s| s.to_bytes().expect("sample"))
            .collect(),
    }
}

/// A learner's profile pointing at a running practice service (as with `dicomlab serve`).
pub fn profile_for(svc: &RunningService) -> dicomlab_lab::config::Profile {
    let mut p = dicomlab_lab::config::Profile::new(dicomlab_lab::targets::TargetKind::Practice);
    p.base_url = svc.base_url.clone();
    p.tenant_id = svc.tenant_id.clone();
    p.client_id = svc.client_id.clone();
    p.client_secret = dicomlab_dicomweb::Secret::new(svc.client_secret.clone());
    p.authority = svc.authority.clone();
    p
}

/// Builds a multipart/related body.
pub fn multipart_related(files: &[Vec<u8>]) -> (String, Vec<u8>) {
    let boundary = "dicomlab-test-boundary";
    let mut body = Vec::new();
    for f in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(f);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        body,
    )
}

/// A small instance with the given UIDs, then `changes` applied (tag, VR, value; empty value = remove).
pub fn instance(study: &str, series: &str, sop: &str, changes: &[(Tag, VR, &str)]) -> Vec<u8> {
    let base = tiny_instance(study, series, sop, "Test^Patient").expect("tiny instance");
    let file = OpenFileOptions::new()
        .from_reader(&base[128..])
        .expect("parse");
    let mut obj: InMemDicomObject = file.into_inner();
    for (tag, vr, value) in changes {
        if value.is_empty() {
            obj.remove_element(*tag);
        } else {
            obj.put(DataElement::new(*tag, *vr, PrimitiveValue::from(*value)));
        }
    }
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax("1.2.840.10008.1.2.1")
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
        .media_storage_sop_instance_uid(sop);
    let file = obj.with_meta(meta).expect("meta");
    let mut out = Vec::new();
    file.write_all(&mut out).expect("write");
    out
}

/// A fresh UID under the example root.
pub fn uid() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 10u128.pow(30);
    format!("1.2.826.0.1.3680043.8.498.9{n}")
}

/// The values of a DICOM JSON element.
pub fn values<'a>(obj: &'a Value, tag: &str) -> &'a [Value] {
    obj.get(tag)
        .and_then(|e| e.get("Value"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub fn first_str(obj: &Value, tag: &str) -> Option<String> {
    values(obj, tag).first().and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => o
            .get("Alphabetic")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    })
}

/// Splits a multipart/related response into (part headers, part bytes).
pub fn split_multipart(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("boundary")
        .trim_matches('"')
        .to_string();
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let Some(start) = find(rest, delim.as_bytes()) else {
        return parts;
    };
    rest = &rest[start + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        rest = &rest[2..]; // CRLF after the delimiter
        let head_end = find(rest, b"\r\n\r\n").expect("part headers");
        let headers = String::from_utf8_lossy(&rest[..head_end]).to_string();
        rest = &rest[head_end + 4..];
        let next = find(rest, format!("\r\n{delim}").as_bytes()).expect("next delimiter");
        parts.push((headers, rest[..next].to_vec()));
        rest = &rest[next + 2 + delim.len()..];
    }
    parts
}

pub fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header value")
}

pub const AUTH: reqwest::header::HeaderName = AUTHORIZATION;

/// Every path under `dir` whose mode lets its group or others in.
#[cfg(unix)]
pub fn open_to_others(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.permissions().mode() & 0o077 != 0 {
                out.push(format!(
                    "{:o} {}",
                    m.permissions().mode() & 0o777,
                    p.display()
                ));
            }
            if m.is_dir() {
                todo.push(p);
            }
        }
    }
    out
}
