//! Cross-origin resource sharing on the DICOM routes, configured as Azure's DICOM service configures it
//! (the portal's CORS blade, ARM's `corsConfiguration`): allowed origins, headers, methods, a max age
//! and "allow credentials" — one setting set for every origin, `*` and credentials not together.
//!
//! It answers as ASP.NET Core's CORS middleware (what the DICOM service runs) does: a preflight
//! (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) gets `204` whatever it asks, with the
//! CORS headers only when its origin is allowed — the browser, not the server, then compares the
//! method and headers it wants with the ones allowed. Every other answer (errors and `401` included)
//! carries `Access-Control-Allow-Origin` for an allowed origin; an origin not allowed gets no CORS
//! header at all, so the browser blocks the page from reading the answer.
//!
//! Only the DICOM routes (`/v1/…`, `/v2/…`, `/health/check`) take part. The identity endpoints answer
//! CORS as Microsoft's do (see `identity`); the admin routes never do (see `admin_guard`), nor does the
//! Log Analytics route (another service on Azure).

use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::SharedService;
use super::db::{Db, DbError};
use super::error::ApiError;

/// Where the setting is kept in the index (`meta`), so a restart keeps it.
const META_KEY: &str = "cors";
/// Most origins, headers or methods in a setting.
pub const MAX_ENTRIES: usize = 64;
/// Longest origin or header name.
pub const MAX_ENTRY_LEN: usize = 256;
/// Largest max age, in seconds (the portal's field takes five digits).
pub const MAX_AGE_LIMIT: u32 = 99_999;
/// The methods the portal offers.
const METHODS: [&str; 8] = [
    "DELETE", "GET", "HEAD", "MERGE", "OPTIONS", "PATCH", "POST", "PUT",
];

/// The CORS setting of the DICOM service, field for field as ARM's `corsConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsConfig {
    /// `Access-Control-Allow-Origin`: `scheme://host[:port]` each, or `*` for any.
    #[serde(default)]
    pub origins: Vec<String>,
    /// `Access-Control-Allow-Headers`: header names, or `*` for any.
    #[serde(default)]
    pub headers: Vec<String>,
    /// `Access-Control-Allow-Methods`: `GET`, `POST`…, or `*` for any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// `Access-Control-Max-Age`: how long a browser may keep a preflight's answer, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
    /// `Access-Control-Allow-Credentials: true` (cookies, client certificates); not with origin `*`.
    #[serde(default)]
    pub allow_credentials: bool,
}

/// Why a CORS setting was refused (the portal says the same before it saves).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsError {
    #[error(
        "'{0}' is not an origin: write scheme://host[:port] (e.g. http://127.0.0.1:3000), without a path, or *"
    )]
    Origin(String),
    #[error("'{0}' is not a header name (letters, digits and !#$%&'*+-.^_`|~), or *")]
    Header(String),
    #[error("'{0}' is not a method the DICOM service's CORS setting offers ({list}, or *)", list = METHODS.join(", "))]
    Method(String),
    #[error("at most {MAX_ENTRIES} {0} (each at most {MAX_ENTRY_LEN} characters)")]
    TooMany(&'static str),
    #[error("the max age must be between 0 and {MAX_AGE_LIMIT} seconds")]
    MaxAge,
    #[error(
        "Allow credentials can't be set when Origins contains '*': name the origins, or turn credentials off"
    )]
    CredentialsWithAnyOrigin,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `scheme://host[:port]`, lower-cased, or None when it is not one.
fn normalize_origin(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches('/');
    let (scheme, authority) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") {
        return None;
    }
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (addr, after) = rest.split_once(']')?;
            (addr.parse::<std::net::Ipv6Addr>().is_ok(), after)
        }
        None => {
            let (host, after) = match authority.find(':') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            };
            let ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            (ok, after)
        }
    };
    if !host_ok {
        return None;
    }
    if !port.is_empty() {
        port.strip_prefix(':')?
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)?;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

impl CorsConfig {
    /// The same setting checked and tidied (origins lower-cased, methods upper-cased, duplicates
    /// gone), or why the portal would refuse it.
    pub fn validated(&self) -> Result<CorsConfig, CorsError> {
        fn list(
            items: &[String],
            what: &'static str,
            one: impl Fn(&str) -> Option<String>,
            bad: impl Fn(String) -> CorsError,
        ) -> Result<Vec<String>, CorsError> {
            if items.len() > MAX_ENTRIES || items.iter().any(|i| i.len() > MAX_ENTRY_LEN) {
                return Err(CorsError::TooMany(what));
            }
            let mut out: Vec<String> = Vec::new();
            for i in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
                let v = if i == "*" {
                    "*".to_string()
                } else {
                    one(i).ok_or_else(|| bad(dicomlab_dicom::text::visible(i).into_owned()))?
                };
                if !out.iter().any(|o| o.eq_ignore_ascii_case(&v)) {
                    out.push(v);
                }
            }
            Ok(out)
        }
        let origins = list(
            &self.origins,
            "origins",
            normalize_origin,
            CorsError::Origin,
        )?;
        let headers = list(
            &self.headers,
            "headers",
            |h| is_token(h).then(|| h.to_ascii_lowercase()),
            CorsError::Header,
        )?;
        let methods = list(
            &self.methods,
            "methods",
            |m| {
                let m = m.to_ascii_uppercase();
                METHODS.contains(&m.as_str()).then_some(m)
            },
            CorsError::Method,
        )?;
        if self.max_age.is_some_and(|a| a > MAX_AGE_LIMIT) {
            return Err(CorsError::MaxAge);
        }
        if self.allow_credentials && origins.iter().any(|o| o == "*") {
            return Err(CorsError::CredentialsWithAnyOrigin);
        }
        Ok(CorsConfig {
            origins,
            headers,
            methods,
            max_age: self.max_age,
            allow_credentials: self.allow_credentials,
        })
    }

    /// Whether no origin is allowed (CORS off: browsers on other origins are blocked).
    pub fn is_off(&self) -> bool {
        self.origins.is_empty()
    }

    /// Whether a page on `origin` may read the answers.
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == "*")
            || normalize_origin(origin).is_some_and(|n| self.origins.contains(&n))
    }

    /// A line for the learner: `origins http://…; headers *; methods GET, …; max age 600 s; credentials`.
    pub fn summary(&self) -> String {
        if self.is_off() {
            return "off (no origin allowed)".into();
        }
        let join = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        format!(
            "origins {}; headers {}; methods {}; max age {}; credentials {}",
            join(&self.origins),
            join(&self.headers),
            join(&self.methods),
            self.max_age
                .map_or_else(|| "not set".to_string(), |a| format!("{a} s")),
            if self.allow_credentials {
                "allowed"
            } else {
                "not allowed"
            }
        )
    }

    /// The CORS headers of an answer to `origin` (empty when the origin is not allowed). A preflight
    /// also gets the allowed methods and headers (for `*`: what it asked), and the max age.
    pub fn answer_headers(
        &self,
        origin: &str,
        preflight: Option<&HeaderMap>,
    ) -> Vec<(header::HeaderName, String)> {
        let mut out = Vec::new();
        if !self.allows(origin) {
            return out;
        }
        let any = self.origins.iter().any(|o| o == "*");
        if any && !self.allow_credentials {
            out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".to_string()));
        } else {
            out.push((
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                origin.trim().to_string(),
            ));
            out.push((header::VARY, "Origin".to_string()));
        }
        if self.allow_credentials {
            out.push((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".to_string()));
        }
        let Some(request) = preflight else {
            return out;
        };
        let asked = |name: header::HeaderName| {
            request
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let methods = if self.methods.iter().any(|m| m == "*") {
            asked(header::ACCESS_CONTROL_REQUEST_METHOD)
        } else {
            (!self.methods.is_empty()).then(|| self.methods.join(","))
        };
        if let Some(m) = methods {
            out.push((header::ACCESS_CONTROL_ALLOW_METHODS, m));
        }
        let headers = if self.headers.iter().any(|h| h == "*") {
            asked(header::ACCESS_CONTROL_REQUEST_HEADERS)
        } else {
            (!self.headers.is_empty()).then(|| self.headers.join(","))
        };
        if let Some(h) = headers {
            out.push((header::ACCESS_CONTROL_ALLOW_HEADERS, h));
        }
        if let Some(age) = self.max_age {
            out.push((header::ACCESS_CONTROL_MAX_AGE, age.to_string()));
        }
        out
    }
}

/// The service's setting: read on every request, changed by the admin route.
pub struct Cors {
    current: RwLock<Arc<CorsConfig>>,
}

impl Cors {
    /// The setting kept in the index; `given` (from `serve`'s flags) replaces it, and is kept.
    pub fn load(db: &Db, given: Option<&CorsConfig>) -> Result<Self, CorsLoadError> {
        let config = match given {
            Some(c) => {
                let c = c.validated()?;
                db.meta_set(META_KEY, &serde_json::to_string(&c).unwrap_or_default())?;
                c
            }
            None => match db.meta_get(META_KEY)? {
                Some(s) => serde_json::from_str::<CorsConfig>(&s)
                    .ok()
                    .and_then(|c| c.validated().ok())
                    .unwrap_or_default(),
                None => CorsConfig::default(),
            },
        };
        Ok(Self {
            current: RwLock::new(Arc::new(config)),
        })
    }

    pub fn get(&self) -> Arc<CorsConfig> {
        self.current.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Replaces the setting (checked first) and keeps it in the index.
    pub fn set(&self, db: &Db, config: &CorsConfig) -> Result<CorsConfig, CorsLoadError> {
        let c = config.validated()?;
        db.meta_set(META_KEY, &serde_json::to_string(&c).unwrap_or_default())?;
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(c.clone());
        }
        Ok(c)
    }
}

/// Why the setting could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum CorsLoadError {
    #[error("the CORS setting is not valid: {0}")]
    Invalid(#[from] CorsError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Whether a path is one of the DICOM service's own (the routes CORS applies to).
pub fn is_dicom_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    first == "health"
        || (first.starts_with('v') && first[1..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The middleware: answers preflights on the DICOM routes, and adds the CORS headers to every answer
/// there.
pub async fn layer(State(service): State<SharedService>, req: Request, next: Next) -> Response {
    if !is_dicom_path(req.uri().path()) {
        return next.run(req).await;
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    let config = service.cors.get();
    if is_preflight(req.method(), req.headers()) {
        let headers = config.answer_headers(&origin, Some(req.headers()));
        if headers.is_empty() {
            tracing::info!(
                origin = %dicomlab_dicom::text::visible(&origin),
                "CORS preflight from an origin not allowed: answered without CORS headers"
            );
        }
        return with_headers(StatusCode::NO_CONTENT.into_response(), headers);
    }
    let headers = config.answer_headers(&origin, None);
    with_headers(next.run(req).await, headers)
}

fn with_headers(mut resp: Response, headers: Vec<(header::HeaderName, String)>) -> Response {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            if name == header::VARY {
                resp.headers_mut().append(name, v);
            } else {
                resp.headers_mut().insert(name, v);
            }
        }
    }
    resp
}

/// Largest admin request body (a setting of 64 origins fits many times over).
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// `GET /admin/cors`: the setting (what the portal's CORS blade shows).
pub async fn show(
    State(service): State<SharedService>,
    parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    super::admin_guard::require_admin(&parts)?;
    Ok(axum::Json(&*service.cors.get()).into_response())
}

/// `PUT /admin/cors` with the whole setting as JSON (`origins`, `headers`, `methods`, `maxAge`,
/// `allowCredentials`), what the portal's Save does; `DELETE /admin/cors` turns CORS off.
pub async fn change(
    State(service): State<SharedService>,
    parts: axum::http::request::Parts,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    super::admin_guard::require_admin(&parts)?;
    let config = if parts.method == Method::DELETE {
        CorsConfig::default()
    } else {
        let bytes = axum::body::to_bytes(body, MAX_ADMIN_BODY)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("A CORS setting is at most {MAX_ADMIN_BODY} bytes."),
                )
            })?;
        serde_json::from_slice::<CorsConfig>(&bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "The body must be a CORS setting: {{\"origins\": [...], \"headers\": [...], \"methods\": [...], \"maxAge\": 600, \"allowCredentials\": false}} ({e})."
            ))
        })?
    };
    let svc = service.clone();
    let saved = tokio::task::spawn_blocking(move || svc.cors.set(&svc.db, &config))
        .await
        .map_err(|e| ApiError::internal("CORS setting", e))?
        .map_err(|e| match e {
            CorsLoadError::Invalid(e) => ApiError::bad_request(e.to_string()),
            CorsLoadError::Db(e) => ApiError::internal("CORS setting", e),
        })?;
    tracing::info!(setting = %saved.summary(), "CORS setting changed");
    Ok(axum::Json(saved).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            origins: origins.iter().map(|s| s.to_string()).collect(),
            headers: vec!["*".into()],
            methods: vec!["GET".into(), "post".into()],
            max_age: Some(600),
            allow_credentials: false,
        }
    }

    #[test]
    fn settings_are_checked_as_the_portal_checks_them() {
        let c = config(&["HTTP://127.0.0.1:3000/", "https://viewer.example"])
            .validated()
            .expect("valid");
        assert_eq!(
            c.origins,
            ["http://127.0.0.1:3000", "https://viewer.example"]
        );
        assert_eq!(c.methods, ["GET", "POST"]);
        for bad in [
            "127.0.0.1:3000",
            "http://host/path",
            "ftp://host",
            "http://",
            "http://host:0",
            "http://host:99999",
            "http://a b",
            "http://[::1",
        ] {
            assert!(
                matches!(config(&[bad]).validated(), Err(CorsError::Origin(_))),
                "{bad}"
            );
        }
        assert!(config(&["http://[::1]:3000"]).validated().is_ok());
        let mut c = config(&["*"]);
        c.allow_credentials = true;
        assert_eq!(c.validated(), Err(CorsError::CredentialsWithAnyOrigin));
        c.origins = vec!["http://a.example".into()];
        assert!(c.validated().is_ok());
        c.max_age = Some(100_000);
        assert_eq!(c.validated(), Err(CorsError::MaxAge));
        c.max_age = None;
        c.methods = vec!["TRACE".into()];
        assert!(matches!(c.validated(), Err(CorsError::Method(_))));
        c.methods = vec![];
        c.headers = vec!["x y".into()];
        assert!(matches!(c.validated(), Err(CorsError::Header(_))));
        c.headers = (0..65).map(|i| format!("h{i}")).collect();
        assert_eq!(c.validated(), Err(CorsError::TooMany("headers")));
    }

    #[test]
    fn answers_name_only_allowed_origins() {
        let c = config(&["http://127.0.0.1:3000"])
            .validated()
            .expect("valid");
        assert!(c.answer_headers("http://evil.example", None).is_empty());
        let mut pre = HeaderMap::new();
        pre.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("GET"),
        );
        pre.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("authorization"),
        );
        let h = c.answer_headers("http://127.0.0.1:3000", Some(&pre));
        let get = |n: header::HeaderName| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(
            get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(get(header::VARY), Some("Origin"));
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_METHODS), Some("GET,POST"));
        assert_eq!(
            get(header::ACCESS_CONTROL_ALLOW_HEADERS),
            Some("authorization")
        );
        assert_eq!(get(header::ACCESS_CONTROL_MAX_AGE), Some("600"));
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS), None);
        let any = config(&["*"]).validated().expect("valid");
        let h = any.answer_headers("http://anything.example", None);
        assert_eq!(
            h,
            vec![(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".to_string())]
        );
    }

    #[test]
    fn dicom_paths() {
        for p in [
            "/v1/studies",
            "/v2/changefeed",
            "/v1.0-prerelease/studies",
            "/health/check",
        ] {
            assert!(is_dicom_path(p), "{p}");
        }
        for p in [
            "/admin/roles",
            "/loganalytics/v1/workspaces",
            "/abc/oauth2/v2.0/token",
            "/",
        ] {
            assert!(!is_dicom_path(p), "{p}");
        }
    }
}
