//! The DICOMweb operations over [`DicomWebClient::send`]: reads, searches (QIDO-RS), retrieves
//! (WADO-RS, to a folder), the change feed, extended query tags and their operations.

use super::{
    ADMIN, Answer, Body, ClientError, DicomWebClient, Level, encode, header_list, read_bounded,
};
use crate::exchange::{excerpt, shell_quote};
use crate::multipart::{self, SavedPart};
use crate::routes::{self, InstanceRef, Retrieve};
use bytes::Bytes;
use dicomlab_dicom::chunks::FileWriter;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

impl DicomWebClient {
    /// GET `{base}/{path}` with an Accept header.
    pub async fn get(&self, path: &str, accept: &str) -> Result<Answer, ClientError> {
        self.send(
            Method::GET,
            &self.url(path),
            &[("Accept", accept)],
            Body::None,
            true,
        )
        .await
    }

    /// GET of an absolute URL without credentials (a practice service's discovery route).
    pub async fn get_anonymous_url(&self, url: &str) -> Result<Answer, ClientError> {
        self.send(
            Method::GET,
            url,
            &[("Accept", "application/json")],
            Body::None,
            false,
        )
        .await
    }

    /// A store of nothing: `multipart/related` with zero parts. The service checks the write
    /// permission, then answers 204 and stores nothing — how the role step asks "may this app write?".
    pub async fn probe_store(&self) -> Result<Answer, ClientError> {
        let boundary = "dicomlab-probe";
        let ct = format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
        self.send(
            Method::POST,
            &self.url("studies"),
            &[("Accept", "application/dicom+json"), ("Content-Type", &ct)],
            Body::Bytes(
                Bytes::from(format!("--{boundary}--\r\n")),
                vec![format!("--data-binary $'--{boundary}--\\r\\n'")],
            ),
            true,
        )
        .await
    }

    /// GET without any credentials (does the service exist?).
    pub async fn get_anonymous(&self, path: &str) -> Result<Answer, ClientError> {
        self.send(
            Method::GET,
            &self.url(path),
            &[("Accept", "application/json")],
            Body::None,
            false,
        )
        .await
    }

    /// PUT to an absolute URL without credentials (the practice service's loopback admin routes, which
    /// also want `X-Dicomlab-Admin: 1`, a header a web page cannot send cross-site).
    pub async fn put_anonymous(&self, url: &str) -> Result<Answer, ClientError> {
        self.send(Method::PUT, url, &[ADMIN], Body::None, false)
            .await
    }

    /// A DELETE without a token on an absolute URL (the practice service's loopback admin routes).
    pub async fn delete_anonymous(&self, url: &str) -> Result<Answer, ClientError> {
        self.send(Method::DELETE, url, &[ADMIN], Body::None, false)
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<Answer, ClientError> {
        self.send(Method::DELETE, &self.url(path), &[], Body::None, true)
            .await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Result<Answer, ClientError> {
        self.send(Method::POST, &self.url(path), &[], Body::Json(body), true)
            .await
    }

    pub async fn patch_json(&self, path: &str, body: Value) -> Result<Answer, ClientError> {
        self.send(Method::PATCH, &self.url(path), &[], Body::Json(body), true)
            .await
    }

    /// QIDO-RS at a level, optionally under a study (and series), with query parameters.
    pub async fn search(
        &self,
        level: Level,
        study: Option<&str>,
        series: Option<&str>,
        params: &[(&str, &str)],
    ) -> Result<Answer, ClientError> {
        let mut path = String::new();
        if let Some(s) = study {
            path.push_str(&format!("studies/{s}/"));
            if let Some(se) = series {
                path.push_str(&format!("series/{se}/"));
            }
        }
        path.push_str(level.segment());
        if !params.is_empty() {
            let q: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            path.push('?');
            path.push_str(&q.join("&"));
        }
        self.get(&path, "application/dicom+json").await
    }

    /// WADO-RS streamed to `dir`: a multipart answer becomes one file per part, a single part one file.
    /// Memory stays bounded whatever the size. Returns the answer (body empty) and the saved files.
    pub async fn retrieve_to_dir(
        &self,
        path: &str,
        accept: &str,
        dir: &Path,
    ) -> Result<(Answer, Vec<SavedPart>), ClientError> {
        self.retrieve_into(path, accept, Some(dir)).await
    }

    /// WADO-RS read to its end and counted, nothing written (as `curl -o /dev/null`): a request sent
    /// for what the service records of it. Returns the answer (body empty) and each part's size.
    pub async fn retrieve_counted(
        &self,
        path: &str,
        accept: &str,
    ) -> Result<(Answer, Vec<SavedPart>), ClientError> {
        self.retrieve_into(path, accept, None).await
    }

    /// A retrieve streamed into `dir`, or only counted.
    async fn retrieve_into(
        &self,
        path: &str,
        accept: &str,
        dir: Option<&Path>,
    ) -> Result<(Answer, Vec<SavedPart>), ClientError> {
        if let Some(dir) = dir {
            tokio::fs::create_dir_all(dir).await?;
        }
        let url = self.url(path);
        let auth = self.auth_header().await?;
        let mut exchange = self.exchange("GET", &url);
        exchange
            .request_headers
            .push(("Accept".into(), accept.to_string()));
        let mut req = self.request(Method::GET, &url).header(ACCEPT, accept);
        if let Some((v, shown)) = &auth {
            req = req.header(AUTHORIZATION, v.clone());
            exchange
                .request_headers
                .push(("Authorization".into(), shown.clone()));
        }
        exchange.request_body = vec![match dir {
            Some(dir) => format!(
                "-o {}",
                shell_quote(&dir.join("retrieved").display().to_string())
            ),
            None => "-o /dev/null".to_string(),
        }];
        let started = Instant::now();
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::from_reqwest(&e, &url, self.timeout))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        exchange.status = Some(status);
        exchange.response_headers = header_list(&headers);
        let ct = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut saved = Vec::new();
        let mut small = Bytes::new();
        if (200..300).contains(&status) {
            if let Some(boundary) = multipart::boundary_of(&ct) {
                let ext = if ct.contains("octet-stream") {
                    "bin"
                } else if ct.contains("image/jp2") || accept.contains("image/jp2") {
                    "j2k"
                } else {
                    "dcm"
                };
                saved = multipart::save_parts(resp.bytes_stream(), &boundary, dir, ext).await?;
            } else {
                let ext = if ct.starts_with("image/png") {
                    "png"
                } else if ct.starts_with("image/jpeg") {
                    "jpg"
                } else {
                    "dcm"
                };
                let path = dir.map_or_else(PathBuf::new, |d| d.join(format!("part-1.{ext}")));
                let mut file = match dir {
                    Some(_) => Some(FileWriter::create(&path).await?),
                    None => None,
                };
                let mut stream = resp.bytes_stream().map_err(std::io::Error::other);
                let mut size = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    size += chunk.len() as u64;
                    if let Some(f) = &mut file {
                        f.write(chunk).await?;
                    }
                }
                if let Some(f) = file {
                    f.finish().await?;
                }
                saved.push(SavedPart {
                    path,
                    content_type: Some(ct.clone()),
                    size,
                });
            }
            let total: u64 = saved.iter().map(|p| p.size).sum();
            exchange.response_excerpt = match dir {
                Some(dir) => format!(
                    "<{} part(s), {total} bytes, saved under {}>",
                    saved.len(),
                    dir.display()
                ),
                None => format!("<{} part(s), {total} bytes, read and dropped>", saved.len()),
            };
        } else {
            small = read_bounded(resp, &url, self.timeout).await?;
            exchange.response_excerpt = excerpt(&ct, &small);
        }
        exchange.duration_ms = started.elapsed().as_millis() as u64;
        self.report(&exchange);
        Ok((
            Answer {
                status,
                headers,
                body: small,
                exchange,
            },
            saved,
        ))
    }

    /// The change feed. v1: `offset` is a sequence cursor; v2 (base ending `/v2`): rows to skip.
    pub async fn change_feed(
        &self,
        offset: u64,
        limit: u32,
        include_metadata: bool,
    ) -> Result<Answer, ClientError> {
        self.get(
            &self.marked(&format!(
                "changefeed?offset={offset}&limit={limit}&includeMetadata={include_metadata}"
            )),
            "application/json",
        )
        .await
    }

    pub async fn change_feed_latest(&self) -> Result<Answer, ClientError> {
        self.get(&self.marked("changefeed/latest"), "application/json")
            .await
    }

    /// A WADO-RS retrieve, streamed to `dir` (a file per part).
    pub async fn retrieve(
        &self,
        what: &Retrieve,
        dir: &Path,
    ) -> Result<(Answer, Vec<SavedPart>), ClientError> {
        self.retrieve_to_dir(&what.path(), what.accept(), dir).await
    }

    /// [`DicomWebClient::retrieve`] in a transfer syntax: the service converts (or answers 406).
    pub async fn retrieve_as(
        &self,
        what: &Retrieve,
        syntax: crate::routes::Syntax,
        dir: &Path,
    ) -> Result<(Answer, Vec<SavedPart>), ClientError> {
        self.retrieve_to_dir(&what.path(), &what.accept_as(syntax), dir)
            .await
    }

    /// The metadata of a study, series or instance (DICOM JSON), in memory.
    pub async fn metadata(&self, of: &InstanceRef) -> Result<Answer, ClientError> {
        let what = Retrieve::Metadata(of.clone());
        self.get(&what.path(), what.accept()).await
    }

    /// An instance rendered as PNG, in memory.
    pub async fn rendered(&self, of: &InstanceRef) -> Result<Answer, ClientError> {
        let what = Retrieve::Rendered(of.clone(), routes::ImageFormat::Png);
        self.get(&what.path(), what.accept()).await
    }

    /// Deletes a study (`series` and `sop` empty), a series (`sop` empty) or an instance.
    pub async fn delete_of(&self, of: &InstanceRef) -> Result<Answer, ClientError> {
        let path = if of.series.is_empty() {
            of.study_path()
        } else if of.sop.is_empty() {
            of.series_path()
        } else {
            of.path()
        };
        self.delete(&path).await
    }

    /// A page of the extended query tags.
    pub async fn tags(&self, limit: u32, offset: u32) -> Result<Answer, ClientError> {
        self.get(
            &self.marked(&routes::tags::list(limit, offset)),
            routes::JSON,
        )
        .await
    }

    /// One extended query tag.
    pub async fn tag(&self, path: &str) -> Result<Answer, ClientError> {
        self.get(&self.marked(&routes::tags::one(path)), routes::JSON)
            .await
    }

    /// Adds extended query tags (`[{"Path", "VR"?, "Level"}…]`): 202 and the re-index operation.
    pub async fn add_tags(&self, tags: Value) -> Result<Answer, ClientError> {
        self.post_json(routes::tags::all(), tags).await
    }

    /// Sets a tag's QueryStatus (`Enabled` / `Disabled`).
    pub async fn update_tag(&self, path: &str, query_status: &str) -> Result<Answer, ClientError> {
        self.patch_json(
            &routes::tags::one(path),
            serde_json::json!({ "QueryStatus": query_status }),
        )
        .await
    }

    /// Deletes an extended query tag.
    pub async fn delete_tag(&self, path: &str) -> Result<Answer, ClientError> {
        self.delete(&routes::tags::one(path)).await
    }

    /// A tag's indexing errors.
    pub async fn tag_errors(&self, path: &str) -> Result<Answer, ClientError> {
        self.get(&routes::tags::errors(path), routes::JSON).await
    }

    /// Polls an operation (id or href) until it leaves `running`, with backoff, up to `limit`.
    /// Each answer's JSON also goes to `progress` (a screen's progress bar).
    pub async fn poll_operation(
        &self,
        id_or_href: &str,
        limit: Duration,
        progress: Option<&mpsc::UnboundedSender<Value>>,
    ) -> Result<Answer, ClientError> {
        let path = match id_or_href.rsplit_once("/operations/") {
            Some((_, id)) => format!("operations/{id}"),
            None => format!("operations/{id_or_href}"),
        };
        let started = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let a = self.get(&path, "application/json").await?;
            if let (Some(tx), Some(v)) = (progress, a.json()) {
                let _ = tx.send(v);
            }
            if a.status != 202 || started.elapsed() >= limit {
                return Ok(a);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}
