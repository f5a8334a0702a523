//! Conformance with Azure's DICOM service, ported from the end-to-end tests of Microsoft's DICOM server
//! (github.com/microsoft/dicom-server, commit eeefbe4, `test/Microsoft.Health.Dicom.Web.Tests.E2E`). Each
//! test names the upstream class and method it follows; each runs against a real `dicomlab serve` process
//! on a loopback port. Where upstream builds files with fo-dicom, these build them with dicom-rs
//! (`common::instance`): the same attributes, the same bytes where it matters (NUL and space padding).
//!
//! Grouped by contract area; this file holds the harness they share.

mod delete_and_change_feed;
mod extended_query_tags;
mod retrieve;
mod search;
mod store;
mod transcoding;

use dicomlab_testkit as common;
use dicomlab_testkit::served;

use common::{DICOM_JSON, first_str, instance, split_multipart, uid, values};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde_json::Value;
use served::Served;

/// A `dicomlab serve` process, a token for it, and requests as upstream's DicomWebClient sends them.
struct Azure {
    served: Served,
    token: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// What a request got back.
struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Azure {
    async fn start() -> Azure {
        let dir = tempfile::tempdir().expect("tmp");
        let served = Served::start(&dir.path().join("data"), &[]);
        let token = served.token().await;
        Azure {
            served,
            token,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// `{origin}/{version}/{path}`
    fn url(&self, version: &str, path: &str) -> String {
        format!("{}/{version}/{}", self.served.origin, path)
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Answer {
        let r = r.bearer_auth(&self.token).send().await.expect("send");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        Answer {
            status,
            headers,
            text,
        }
    }

    /// STOW of files as multipart/related to `{version}/{path}`.
    async fn store(&self, version: &str, path: &str, files: &[Vec<u8>]) -> Answer {
        let (ct, body) = common::multipart_related(files);
        self.send(
            self.http
                .post(self.url(version, path))
                .header(ACCEPT, DICOM_JSON)
                .header(CONTENT_TYPE, ct)
                .body(body),
        )
        .await
    }

    async fn get_json(&self, version: &str, path: &str) -> Answer {
        self.send(
            self.http
                .get(self.url(version, path))
                .header(ACCEPT, DICOM_JSON),
        )
        .await
    }

    async fn get_bytes(&self, url: &str, accept: &str) -> (u16, String, Vec<u8>) {
        let r = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .header(ACCEPT, accept)
            .send()
            .await
            .expect("send");
        common::status_type_bytes(r).await
    }

    async fn add_tags(&self, body: &str) {
        let a = self
            .send(
                self.http
                    .post(self.url("v2", "extendedquerytags"))
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string()),
            )
            .await;
        assert_eq!(a.status, 202, "{}", a.text);
        let href = a.json()["href"].as_str().expect("href").to_string();
        for _ in 0..400 {
            let op = self.send(self.http.get(&href)).await;
            if op.status == 200 {
                assert_eq!(op.json()["status"], "succeeded", "{}", op.text);
                return;
            }
            assert_eq!(op.status, 202, "{}", op.text);
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("re-index did not finish");
    }
}

/// A fresh study, series and instance.
fn ids() -> (String, String, String) {
    (uid(), uid(), uid())
}

/// The one item of a sequence element of a STOW answer.
fn only_item<'a>(body: &'a Value, sequence: &str) -> &'a Value {
    let items = values(body, sequence);
    assert_eq!(items.len(), 1, "{body}");
    &items[0]
}

/// The ErrorComments of a STOW item's FailedAttributesSequence (0074,1048).
fn comments(item: &Value) -> Vec<String> {
    values(item, "00741048")
        .iter()
        .filter_map(|c| first_str(c, "00000902"))
        .collect()
}
