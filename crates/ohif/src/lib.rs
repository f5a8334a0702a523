//! The OHIF viewer on the learner's DICOM service (the lab's bonus exercise): a built OHIF (the
//! `dist/` folder of npm's `@ohif/app`, or any build) served from the root of its own loopback port —
//! the prebuilt viewer loads its files from `/` — with
//!
//! - `app-config.js` generated for the active target ([`config`]): the practice service with a sign-in
//!   on its tenant, Azure with the learner's tenant and app registration, or a generic DICOMweb server
//!   without a sign-in;
//! - a single-page-app fallback: a path that names no file (`/callback`, `/viewer?…`) gets
//!   `index.html`, so the sign-in's redirect and deep links work;
//! - nothing outside the build: a path is decoded, every `..` refused, and the file's real path
//!   (symbolic links followed) must lie inside the build's.
//!
//! [`fetch`] gets the pinned `@ohif/app` with npm when the learner has no build.

pub mod config;
pub mod fetch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// Why the viewer could not be served.
#[derive(Debug, thiserror::Error)]
pub enum OhifError {
    #[error(
        "{0} is not an OHIF build: it has no index.html (point at the dist/ folder of a build, or at an unpacked @ohif/app package)"
    )]
    NotABuild(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Fetch(String),
}

/// Longest request path served (a build's paths are short).
const MAX_PATH: usize = 1024;

/// A build being served.
pub struct Site {
    /// The build's folder, its real path.
    root: PathBuf,
    /// The generated `app-config.js`.
    app_config: String,
}

/// The build folder under `dir`: `dir` itself when it holds `index.html`, else its `dist/` or
/// `package/dist/` (an unpacked npm package).
pub fn find_build(dir: &Path) -> Result<PathBuf, OhifError> {
    for candidate in [
        dir.to_path_buf(),
        dir.join("dist"),
        dir.join("package/dist"),
    ] {
        if candidate.join("index.html").is_file() {
            return candidate.canonicalize().map_err(|source| OhifError::Read {
                path: candidate,
                source,
            });
        }
    }
    Err(OhifError::NotABuild(dir.to_path_buf()))
}

impl Site {
    pub fn new(build: &Path, app_config: String) -> Result<Site, OhifError> {
        Ok(Site {
            root: find_build(build)?,
            app_config,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// `%XX` decoded; None for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What a request path names.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A file inside the build (its real path).
    File(PathBuf),
    /// Nothing there (a route of the app, or a missing file).
    Missing,
    /// A path that tries to leave the build, or that no build file could have: never served.
    Refused,
}

/// Resolves a request path (still percent-encoded) inside `root` (a real path).
pub fn resolve(root: &Path, path: &str) -> Resolved {
    if path.len() > MAX_PATH {
        return Resolved::Refused;
    }
    let Some(decoded) = percent_decode(path) else {
        return Resolved::Refused;
    };
    if decoded.contains(['\\', '\0']) || decoded.chars().any(char::is_control) {
        return Resolved::Refused;
    }
    let mut rel = PathBuf::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Resolved::Refused,
            s if s.starts_with('.') => return Resolved::Refused,
            s => rel.push(s),
        }
    }
    let target = if rel.as_os_str().is_empty() {
        root.join("index.html")
    } else {
        root.join(&rel)
    };
    match target.canonicalize() {
        Ok(real) if real.starts_with(root) && real.is_file() => Resolved::File(real),
        Ok(real) if real.starts_with(root) => Resolved::Missing,
        Ok(_) => Resolved::Refused,
        Err(_) => Resolved::Missing,
    }
}

/// The Content-Type of a build file.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" | "cjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "wasm" => "application/wasm",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

/// Whether a miss gets `index.html`: the app's own routes (no file extension), or a page load.
fn spa_route(path: &str, headers: &HeaderMap) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    !last.contains('.')
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut r = (status, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn send_file(path: &Path, no_cache: bool) -> Response {
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(_) => return plain(StatusCode::NOT_FOUND, "Not found.\n"),
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if no_cache {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    r
}

async fn handle(
    State(site): State<Arc<Site>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "Only GET and HEAD.\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = uri.path();
    let mut resp = if path == "/app-config.js" {
        let mut r = site.app_config.clone().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    } else {
        match resolve(&site.root, path) {
            Resolved::File(p) => {
                let index = p.file_name().is_some_and(|n| n == "index.html");
                send_file(&p, index).await
            }
            Resolved::Missing if spa_route(path, &headers) => {
                send_file(&site.root.join("index.html"), true).await
            }
            Resolved::Missing => plain(StatusCode::NOT_FOUND, "Not found.\n"),
            Resolved::Refused => {
                tracing::info!(path = %dicomlab_dicom::text::visible(path), "refused a path outside the build");
                plain(StatusCode::NOT_FOUND, "Not found.\n")
            }
        }
    };
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The viewer's routes: every path goes to the build (or its fallback).
pub fn router(site: Arc<Site>) -> Router {
    Router::new().fallback(handle).with_state(site)
}

/// A viewer being served.
pub struct Serving {
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Serving {
    /// Stops serving (requests in flight get the connection limits' grace).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves `site` on `addr` (through the practice service's bounded HTTP server) until stopped.
pub async fn serve(site: Site, addr: SocketAddr) -> Result<Serving, OhifError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| OhifError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| OhifError::Bind { addr, source })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(Arc::new(site));
    let limits = dicomlab_practice::server::ConnectionLimits {
        max_connections: 128,
        shutdown_grace: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let task = tokio::spawn(dicomlab_practice::server::serve(
        listener,
        app,
        limits,
        async {
            let _ = rx.await;
        },
    ));
    Ok(Serving {
        origin: format!("http://{local}"),
        shutdown: Some(tx),
        task: Some(task),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_leave_the_build() {
        let dir = tempfile::tempdir().expect("tmp");
        let outside = dir.path().join("secret.txt");
        std::fs::write(&outside, "secret").expect("write");
        let build = dir.path().join("dist");
        std::fs::create_dir_all(build.join("assets")).expect("mkdir");
        std::fs::write(build.join("index.html"), "<html>").expect("write");
        std::fs::write(build.join("assets/a.js"), "x").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, build.join("link.txt")).expect("symlink");
        let root = find_build(dir.path()).expect("build found under dist/");
        assert_eq!(resolve(&root, "/"), Resolved::File(root.join("index.html")));
        assert_eq!(
            resolve(&root, "/assets/a.js"),
            Resolved::File(root.join("assets/a.js"))
        );
        assert_eq!(
            resolve(&root, "/assets/%61.js"),
            Resolved::File(root.join("assets/a.js"))
        );
        assert_eq!(resolve(&root, "/callback"), Resolved::Missing);
        assert_eq!(resolve(&root, "/assets"), Resolved::Missing);
        for bad in [
            "/../secret.txt",
            "/assets/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E%2Fsecret.txt",
            "/assets/..%2f..%2fsecret.txt",
            "/..\\secret.txt",
            "/%5c..%5csecret.txt",
            "/assets/%00",
            "/%zz",
            "/%c0%ae%c0%ae/secret.txt",
            "/.git/config",
        ] {
            assert_eq!(resolve(&root, bad), Resolved::Refused, "{bad}");
        }
        #[cfg(unix)]
        assert_eq!(
            resolve(&root, "/link.txt"),
            Resolved::Refused,
            "a link out of the build"
        );
        assert_eq!(
            resolve(&root, &format!("/{}", "a".repeat(2000))),
            Resolved::Refused
        );
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
        assert_eq!(
            content_type(Path::new("x.JS")),
            "text/javascript; charset=utf-8"
        );
    }

    #[test]
    fn app_routes_fall_back_to_the_page() {
        let h = HeaderMap::new();
        assert!(spa_route("/callback", &h));
        assert!(spa_route("/viewer", &h));
        assert!(!spa_route("/app.bundle.123.js", &h));
        let mut html = HeaderMap::new();
        html.insert(header::ACCEPT, HeaderValue::from_static("text/html,*/*"));
        assert!(spa_route("/viewer/1.2.3", &html));
    }
}
