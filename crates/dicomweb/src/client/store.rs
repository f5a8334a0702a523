//! STOW-RS: storing instances (in memory, or files streamed as one multipart body each batch), with
//! progress reported per file.

use super::{
    Answer, Body, ClientError, DicomWebClient, StoreMode, StoreProgress, is_busy, retry_after,
};
use crate::exchange::shell_quote;
use crate::multipart::{self, Counter};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

impl DicomWebClient {
    /// Stores small in-memory instances (tests, benchmarks); files go through [`Self::store`].
    pub async fn store_bytes(&self, bytes: Bytes, name: &str) -> Result<Answer, ClientError> {
        let headers = [
            ("Accept", "application/dicom+json"),
            ("Content-Type", "application/dicom"),
        ];
        let shown = vec![format!("--data-binary @{}", shell_quote(name))];
        self.send(
            Method::POST,
            &self.url("studies"),
            &headers,
            Body::Bytes(bytes, shown),
            true,
        )
        .await
    }

    /// STOW-RS of files, streamed from disk: one request per file (`Single`, up to `concurrency` at once)
    /// or one multipart/related request. Progress goes to `progress` per file, in bytes.
    pub async fn store(
        &self,
        files: &[PathBuf],
        mode: StoreMode,
        study: Option<&str>,
        concurrency: usize,
        progress: Option<mpsc::UnboundedSender<StoreProgress>>,
    ) -> Result<Vec<Answer>, ClientError> {
        let path = match study {
            Some(s) => format!("studies/{s}"),
            None => "studies".to_string(),
        };
        let url = self.url(&path);
        let sizes: Vec<u64> = files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .collect();
        let counters: Vec<Counter> = files.iter().map(|_| Counter::default()).collect();
        // Progress: a watcher samples the counters while requests run.
        let watcher = progress.clone().map(|tx| {
            let counters = counters.clone();
            let sizes = sizes.clone();
            tokio::spawn(async move {
                loop {
                    report_progress(&tx, &counters, &sizes, false);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        });
        let result = match mode {
            StoreMode::Multipart => {
                let answer = self.store_request(&url, files, &counters, true).await;
                answer.map(|a| vec![a])
            }
            StoreMode::Single => {
                // Boxed futures in a Vec: keeps the whole store future `Send` for `tokio::spawn`.
                let mut jobs: Vec<
                    futures_util::future::BoxFuture<'_, Result<Answer, ClientError>>,
                > = Vec::new();
                for (i, f) in files.iter().enumerate() {
                    let url = url.clone();
                    let counter = counters[i].clone();
                    let progress = progress.clone();
                    let size = sizes[i];
                    jobs.push(Box::pin(async move {
                        let a = self
                            .store_request(
                                &url,
                                std::slice::from_ref(f),
                                std::slice::from_ref(&counter),
                                false,
                            )
                            .await;
                        if let Some(tx) = progress {
                            let _ = tx.send(StoreProgress {
                                file: i,
                                sent: counter.get(),
                                total: size,
                                done: true,
                            });
                        }
                        a
                    }));
                }
                let answers: Vec<Result<Answer, ClientError>> = futures_util::stream::iter(jobs)
                    .buffered(concurrency.max(1))
                    .collect()
                    .await;
                answers.into_iter().collect()
            }
        };
        if let Some(w) = watcher {
            w.abort();
        }
        if let Some(tx) = progress {
            report_progress(&tx, &counters, &sizes, true);
        }
        result
    }

    async fn store_request(
        &self,
        url: &str,
        files: &[PathBuf],
        counters: &[Counter],
        related: bool,
    ) -> Result<Answer, ClientError> {
        let auth = self.auth_header().await?;
        let mut attempt = 0;
        loop {
            let mut exchange = self.exchange("POST", url);
            let (ct, stream) = if related {
                multipart::related_body(files, counters)
            } else {
                (
                    "application/dicom".to_string(),
                    multipart::file_stream(files[0].clone(), counters[0].clone()),
                )
            };
            exchange
                .request_headers
                .push(("Accept".into(), "application/dicom+json".into()));
            exchange
                .request_headers
                .push(("Content-Type".into(), ct.clone()));
            exchange.request_body = if related {
                vec![format!(
                    "--data-binary @body.multipart  # the {} files, each after a boundary line",
                    files.len()
                )]
            } else {
                vec![format!(
                    "--data-binary @{}",
                    shell_quote(&files[0].display().to_string())
                )]
            };
            let mut req = self
                .http
                .post(url)
                .header(ACCEPT, "application/dicom+json")
                .header(CONTENT_TYPE, ct)
                .body(reqwest::Body::wrap_stream(stream));
            if let Some((v, shown)) = &auth {
                req = req.header(AUTHORIZATION, v.clone());
                exchange
                    .request_headers
                    .push(("Authorization".into(), shown.clone()));
            }
            let answer = self.finish(req, exchange, url).await?;
            if is_busy(answer.status) && attempt < self.retries {
                attempt += 1;
                for c in counters {
                    c.reset();
                }
                let wait = retry_after(&answer.headers)
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(30));
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(answer);
        }
    }
}

/// Each file's bytes sent so far, to a store's progress channel.
fn report_progress(
    tx: &mpsc::UnboundedSender<StoreProgress>,
    counters: &[Counter],
    sizes: &[u64],
    done: bool,
) {
    for (i, (c, total)) in counters.iter().zip(sizes).enumerate() {
        let _ = tx.send(StoreProgress {
            file: i,
            sent: c.get(),
            total: *total,
            done,
        });
    }
}
