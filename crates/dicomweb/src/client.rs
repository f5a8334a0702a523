//! The DICOMweb client. HTTP errors are answers ([`Answer`]) for the checks to diagnose; only transport
//! failures (DNS, connect, TLS, timeout) and token failures are [`ClientError`]s.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

use super::auth::{AuthConfig, Token, TokenError};
use super::exchange::{Exchange, excerpt, shell_quote};
use super::multipart;
use super::routes::BaseUrl;

mod ops;
mod store;
mod token;

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
        let token_url = auth.token_url();
        let urls = std::iter::once(base.as_str()).chain(token_url.as_deref());
        let http = crate::tls::client_builder(urls)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(timeout)
            // Idle connections kept per host: a classroom runs one client per learner against one
            // front, and each would otherwise keep every connection a burst opened.
            .pool_max_idle_per_host(8)
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
            at: Some(time::OffsetDateTime::now_utc()),
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
            && let Some(at) = e.at
        {
            l.note(&e.method, &e.url, at);
        }
        if let Some(s) = &self.sink {
            let _ = s.send(e.clone());
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
