//! The DICOMweb client. HTTP errors are answers ([`Answer`]) for the checks to diagnose; only transport
//! failures (DNS, connect, TLS, timeout) and token failures are [`ClientError`]s.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

use super::auth::{AuthConfig, Token, TokenError, TokenVersion, parse_token_answer};
use super::exchange::{Exchange, excerpt, shell_quote};
use super::multipart::{self, Counter, SavedPart};
use super::routes::{self, BaseUrl, InstanceRef, Retrieve};

/// The largest answer the client holds in memory (QIDO results, metadata, errors); files stream to disk.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a whole answer, refusing one larger than [`MAX_ANSWER_BYTES`] before and while it arrives.
async fn read_bounded(
    resp: reqwest::Response,
    url: &str,
    timeout: Duration,
) -> Result<Bytes, ClientError> {
    let too_large = || ClientError::TooLarge {
        url: url.to_string(),
        max: MAX_ANSWER_BYTES,
    };
    if resp.content_length().is_some_and(|n| n > MAX_ANSWER_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ClientError::from_reqwest(&e, url, timeout))?;
        if (body.len() + chunk.len()) as u64 > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// The header the practice service's admin routes require.
const ADMIN: (&str, &str) = ("X-Dicomlab-Admin", "1");

/// Transport and token failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("host not found: {host} (check the URL; DNS has no such name)")]
    Dns { host: String },
    #[error("connection refused or unreachable: {url}")]
    Connect { url: String },
    #[error("TLS failed for {url}: {detail}")]
    Tls { url: String, detail: String },
    #[error("no answer within {secs} s from {url}")]
    Timeout { url: String, secs: u64 },
    #[error("could not get a token: {0}")]
    Token(#[from] TokenError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Read(#[from] multipart::ReadError),
    #[error("the base URL is not a valid URL: {0}")]
    BadUrl(String),
    #[error("the answer from {url} is larger than {max} bytes; the client does not hold it")]
    TooLarge { url: String, max: u64 },
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    fn from_reqwest(e: &reqwest::Error, url: &str, timeout: Duration) -> ClientError {
        let chain = {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s.to_lowercase()
        };
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        if e.is_timeout() {
            ClientError::Timeout {
                url: url.to_string(),
                secs: timeout.as_secs(),
            }
        } else if chain.contains("dns")
            || chain.contains("failed to lookup")
            || chain.contains("name or service not known")
        {
            ClientError::Dns { host }
        } else if chain.contains("certificate")
            || chain.contains("tls")
            || chain.contains("handshake")
        {
            ClientError::Tls {
                url: url.to_string(),
                detail: chain,
            }
        } else if e.is_connect() || chain.contains("connection refused") {
            ClientError::Connect {
                url: url.to_string(),
            }
        } else {
            ClientError::Other(format!("request to {url} failed: {chain}"))
        }
    }
}

/// An HTTP answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub exchange: Exchange,
}

impl Answer {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    /// The body as text for display: control characters and escape sequences made visible.
    pub fn text(&self) -> String {
        dicomlab_dicom::text::visible(&String::from_utf8_lossy(&self.body)).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// QIDO results: 204 and Orthanc's `200 []` both mean none.
    pub fn results(&self) -> Vec<Value> {
        if self.status == 204 {
            return Vec::new();
        }
        self.json()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }
}

/// Single-part (one request per file, what the Postman collection does) or one multipart/related request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Single,
    Multipart,
}

/// Progress of a store, per file.
#[derive(Debug, Clone)]
pub struct StoreProgress {
    pub file: usize,
    pub sent: u64,
    pub total: u64,
    pub done: bool,
}

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub use dicomlab_dicom::Level;

/// How a request body is made (again, for a retry).
#[derive(Clone)]
enum Body {
    None,
    Bytes(Bytes, Vec<String>),
    Json(Value),
    Form(Vec<(String, String)>, Vec<String>),
}

/// The client.
pub struct DicomWebClient {
    http: reqwest::Client,
    base: BaseUrl,
    auth: AuthConfig,
    /// Shared with the client's checking twin ([`DicomWebClient::checking`]): one token for both.
    token: std::sync::Arc<Mutex<Option<Token>>>,
    sink: Option<mpsc::UnboundedSender<Exchange>>,
    timeout: Duration,
    /// Retries on 429 / 503 (honouring Retry-After).
    retries: u32,
    /// Requests are the checks' own: marked (User-Agent `dicomlab-check/…`, and a `dicomlab-check`
    /// query parameter where the route ignores unknown ones) so that no record of them is taken for
    /// the learner's.
    by_check: bool,
    /// Where a checking client notes what it sends (see [`crate::ledger`]).
    ledger: Option<super::ledger::Ledger>,
}

/// The User-Agent of the checks' requests: the practice service's audit log keeps it.
pub const CHECK_USER_AGENT: &str = concat!("dicomlab-check/", env!("CARGO_PKG_VERSION"));
/// The query parameter that marks a check's read in a log that keeps only the URI (Azure's audit log).
pub const CHECK_MARK: &str = "dicomlab-check=1";

impl DicomWebClient {
    /// A client for `base` (e.g. `https://ws-dicom.dicom.azurehealthcareapis.com/v1`).
    pub fn new(base: &str, auth: AuthConfig) -> Result<Self, ClientError> {
        let base = BaseUrl::parse(base);
        reqwest::Url::parse(base.as_str())
            .map_err(|e| ClientError::BadUrl(format!("{base}: {e}")))?;
        let timeout = Duration::from_secs(60);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(timeout)
            .user_agent(concat!("dicomlab/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Other(e.to_string()))?;
        Ok(Self {
            http,
            base,
            auth,
            token: std::sync::Arc::new(Mutex::new(None)),
            sink: None,
            timeout,
            retries: 3,
            by_check: false,
            ledger: None,
        })
    }

    /// The same client for checks: it shares the token, marks its requests as the checks' own, and
    /// sends no exchange to the sink — the exchange pane (and the exchanges kept as the learner's) are
    /// the learner's requests only, while checks run by themselves as records arrive.
    pub fn checking(&self) -> DicomWebClient {
        DicomWebClient {
            http: self.http.clone(),
            base: self.base.clone(),
            auth: self.auth.clone(),
            token: self.token.clone(),
            sink: None,
            timeout: self.timeout,
            retries: self.retries,
            by_check: true,
            ledger: self.ledger.clone(),
        }
    }

    /// Notes every request this (checking) client sends in `ledger`.
    pub fn with_ledger(mut self, ledger: super::ledger::Ledger) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Whether this is a checking client.
    pub fn is_checking(&self) -> bool {
        self.by_check
    }

    /// `path` with the check mark added when this client checks (for routes that ignore unknown
    /// query parameters: the change feed, extended query tags, operations).
    pub fn marked(&self, path: &str) -> String {
        if !self.by_check {
            return path.to_string();
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}{CHECK_MARK}")
    }

    /// Sends every exchange to `sink` (the TUI's "last exchange" pane).
    pub fn with_sink(mut self, sink: mpsc::UnboundedSender<Exchange>) -> Self {
        self.sink = Some(sink);
        self
    }

    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    /// The base URL, with its API version and data partition.
    pub fn base_url(&self) -> &BaseUrl {
        &self.base
    }

    pub fn auth(&self) -> &AuthConfig {
        &self.auth
    }

    /// `{base}/{path}`. With a data partition in the base URL (`…/v1/partitions/{name}`, docs/contract.md §1.2),
    /// the change feed, extended query tags and operations stay at the versioned base: they are the
    /// service's, not a partition's.
    pub fn url(&self, path: &str) -> String {
        self.base.join(path)
    }

    /// The data partition named in the base URL, if any.
    pub fn partition(&self) -> Option<&str> {
        self.base.partition()
    }

    /// A new exchange record for a request about to be sent.
    fn exchange(&self, method: &str, url: &str) -> Exchange {
        Exchange {
            method: method.to_string(),
            url: url.to_string(),
            by_check: self.by_check,
            at: now_rfc3339(),
            ..Exchange::default()
        }
    }

    /// A request builder; a checking client's requests say so in their User-Agent.
    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        if self.by_check {
            req.header(reqwest::header::USER_AGENT, CHECK_USER_AGENT)
        } else {
            req
        }
    }

    fn report(&self, e: &Exchange) {
        tracing::debug!(
            method = e.method,
            url = e.url,
            status = e.status,
            ms = e.duration_ms,
            "exchange"
        );
        if self.by_check
            && let Some(l) = &self.ledger
        {
            l.note(&e.method, &e.url, &e.at);
        }
        if let Some(s) = &self.sink {
            let _ = s.send(e.clone());
        }
    }

    /// The current token, fetched or refreshed when it is missing or lapses within five minutes.
    pub async fn token(&self) -> Result<Option<Token>, ClientError> {
        match &self.auth {
            AuthConfig::Azure { .. } => {
                let mut guard = self.token.lock().await;
                if let Some(t) = guard.as_ref().filter(|t| !t.needs_refresh()) {
                    return Ok(Some(t.clone()));
                }
                let t = self.fetch_token().await?;
                *guard = Some(t.clone());
                Ok(Some(t))
            }
            AuthConfig::Bearer { token } => Ok(Some(Token::from_jwt(token.expose()))),
            _ => Ok(None),
        }
    }

    /// The token in hand, without fetching one (for the countdown in the status bar).
    pub fn cached_token(&self) -> Option<Token> {
        match &self.auth {
            AuthConfig::Bearer { token } => Some(Token::from_jwt(token.expose())),
            _ => self.token.try_lock().ok().and_then(|t| t.clone()),
        }
    }

    /// Gets a new token now and keeps it for the requests that follow (the token step's "do it").
    pub async fn refresh_token(&self) -> Result<Token, ClientError> {
        let t = self.fetch_token().await?;
        *self.token.lock().await = Some(t.clone());
        Ok(t)
    }

    /// Asks the token endpoint for a new token (what the lab's `AuthorizeGetToken` request does).
    pub async fn fetch_token(&self) -> Result<Token, ClientError> {
        let AuthConfig::Azure {
            tenant_id,
            client_id,
            client_secret,
            resource,
            token_version,
            ..
        } = &self.auth
        else {
            return Err(ClientError::Other(
                "this target does not use Azure AD tokens".into(),
            ));
        };
        for (value, name) in [
            (tenant_id.as_str(), "tenantId"),
            (client_id.as_str(), "clientId"),
            (resource.as_str(), "resource"),
        ] {
            if value.trim().is_empty() {
                return Err(TokenError::Missing(name).into());
            }
        }
        if client_secret.is_empty() {
            return Err(TokenError::Missing("clientSecret").into());
        }
        let url = self.auth.token_url().unwrap_or_default();
        let mut form = vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), client_id.trim().to_string()),
            (
                "client_secret".to_string(),
                client_secret.expose().trim().to_string(),
            ),
        ];
        match token_version {
            TokenVersion::V1 => form.push(("resource".into(), resource.trim().to_string())),
            TokenVersion::V2 => {
                form.push((
                    "scope".into(),
                    format!("{}/.default", resource.trim().trim_end_matches('/')),
                ));
            }
        }
        let shown: Vec<String> = form
            .iter()
            .map(|(k, v)| {
                let v = if k == "client_secret" {
                    "$CLIENT_SECRET".to_string()
                } else {
                    v.clone()
                };
                format!("--data-urlencode \"{k}={v}\"")
            })
            .collect();
        // A token host out of reach is a token failure, not the DICOM service's: it says which host.
        let answer = self
            .send(Method::POST, &url, &[], Body::Form(form, shown), false)
            .await
            .map_err(|e| match e {
                ClientError::Dns { host } => ClientError::Token(TokenError::Unreachable {
                    host,
                    why: "no such name (DNS)".into(),
                }),
                ClientError::Connect { url } | ClientError::Timeout { url, .. } => {
                    ClientError::Token(TokenError::Unreachable {
                        host: reqwest::Url::parse(&url)
                            .ok()
                            .and_then(|u| u.host_str().map(str::to_string))
                            .unwrap_or(url),
                        why: "no connection".into(),
                    })
                }
                other => other,
            })?;
        Ok(parse_token_answer(answer.status, &answer.body)?)
    }

    async fn auth_header(&self) -> Result<Option<(HeaderValue, String)>, ClientError> {
        match &self.auth {
            AuthConfig::Basic { username, password } => {
                use base64::Engine;
                let raw = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                let v = HeaderValue::from_str(&format!("Basic {raw}"))
                    .map_err(|e| ClientError::Other(e.to_string()))?;
                Ok(Some((v, "Basic $BASIC_AUTH".into())))
            }
            AuthConfig::None => Ok(None),
            _ => match self.token().await? {
                Some(t) => {
                    let v = HeaderValue::from_str(&format!("Bearer {}", t.access_token.expose()))
                        .map_err(|_| {
                        ClientError::Other("the token has characters a header cannot hold".into())
                    })?;
                    Ok(Some((v, "Bearer $TOKEN".into())))
                }
                None => Ok(None),
            },
        }
    }

    /// Sends one request (with retries on 429 / 503) and reads the whole answer.
    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Body,
        authenticate: bool,
    ) -> Result<Answer, ClientError> {
        // Boxed: the token request itself goes through `send` (without authentication).
        let auth = if authenticate {
            Box::pin(self.auth_header()).await?
        } else {
            None
        };
        let mut attempt = 0;
        loop {
            let mut exchange = self.exchange(method.as_str(), url);
            let mut req = self.request(method.clone(), url);
            for (k, v) in headers {
                req = req.header(*k, *v);
                exchange
                    .request_headers
                    .push(((*k).to_string(), (*v).to_string()));
            }
            if let Some((value, shown)) = &auth {
                req = req.header(AUTHORIZATION, value.clone());
                exchange
                    .request_headers
                    .push(("Authorization".into(), shown.clone()));
            }
            req = match &body {
                Body::None => req,
                Body::Bytes(b, shown) => {
                    exchange.request_body = shown.clone();
                    req.body(b.clone())
                }
                Body::Json(v) => {
                    let text = v.to_string();
                    exchange
                        .request_headers
                        .push(("Content-Type".into(), "application/json".into()));
                    exchange.request_body = vec![format!("-d {}", shell_quote(&text))];
                    req.header(CONTENT_TYPE, "application/json").body(text)
                }
                Body::Form(form, shown) => {
                    exchange.request_body = shown.clone();
                    req.form(form)
                }
            };
            let answer = self.finish(req, exchange, url).await?;
            if is_busy(answer.status) && attempt < self.retries {
                attempt += 1;
                let wait = retry_after(&answer.headers)
                    .unwrap_or(Duration::from_millis(500 * 2u64.pow(attempt)))
                    .min(Duration::from_secs(30));
                tracing::info!(url, ?wait, attempt, "server busy; retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(answer);
        }
    }

    /// Sends a built request, reads the whole answer and reports the exchange (or the transport error).
    async fn finish(
        &self,
        req: reqwest::RequestBuilder,
        mut exchange: Exchange,
        url: &str,
    ) -> Result<Answer, ClientError> {
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let err = ClientError::from_reqwest(&e, url, self.timeout);
                exchange.duration_ms = started.elapsed().as_millis() as u64;
                exchange.error = Some(err.to_string());
                self.report(&exchange);
                return Err(err);
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_bounded(resp, url, self.timeout).await?;
        exchange.duration_ms = started.elapsed().as_millis() as u64;
        exchange.status = Some(status);
        exchange.response_headers = header_list(&headers);
        let ct = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        exchange.response_excerpt = excerpt(ct, &body);
        self.report(&exchange);
        Ok(Answer {
            status,
            headers,
            body,
            exchange,
        })
    }

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
        tokio::fs::create_dir_all(dir).await?;
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
        exchange.request_body = vec![format!(
            "-o {}",
            shell_quote(&dir.join("retrieved").display().to_string())
        )];
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
                let path = dir.join(format!("part-1.{ext}"));
                let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(&path).await?);
                let mut stream = resp.bytes_stream().map_err(std::io::Error::other);
                let mut size = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    size += chunk.len() as u64;
                    tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
                }
                tokio::io::AsyncWriteExt::flush(&mut file).await?;
                saved.push(SavedPart {
                    path,
                    content_type: Some(ct.clone()),
                    size,
                });
            }
            let total: u64 = saved.iter().map(|p| p.size).sum();
            exchange.response_excerpt = format!(
                "<{} part(s), {total} bytes, saved under {}>",
                saved.len(),
                dir.display()
            );
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

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~^*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// 429 and 503: the server asks to come back later.
fn is_busy(status: u16) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS.as_u16()
        || status == StatusCode::SERVICE_UNAVAILABLE.as_u16()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("<binary>").to_string()))
        .collect()
}
