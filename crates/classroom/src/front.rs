//! The classroom's HTTP front: one port for every learner's service. `/l/{name}/…` goes to that
//! learner's own service with the prefix taken off the path and given to the service as
//! `X-Forwarded-Prefix` (the practice service builds every URL it returns with it — RetrieveURL, href,
//! Location, WWW-Authenticate — and strips any such header a client sends). `POST /classroom/join`
//! takes the progress of a learner working on their own Azure service (`dicomlab join`).
//!
//! The front is served by the practice service's own hyper serving (`practice::server`): header and
//! body timeouts, a connection limit, and a graceful shutdown. The public port also limits each client
//! address's request rate (`rate.rs`: 429 with `Retry-After` beyond it) and connections. Every "not
//! found" of the front reads the same — an unknown learner's path and a known learner's path that
//! names no route (a route's own 404, no such study or operation, stays the service's); names are not
//! secret, codes are. A request answered 401 (no valid token) is no reason to check a learner's
//! steps, so an anonymous flood costs no checks.

use dicomlab_lab::model::StepId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::error::ClassroomError;
use crate::gate;
use crate::names::LearnerName;
use crate::state::Core;
use dicomlab_dicomweb::client::CHECK_USER_AGENT;
use dicomlab_lab::progress::StepProgress;

/// The largest self-report accepted.
pub const MAX_JOIN_BODY: usize = 256 * 1024;
/// Most steps a self-report may carry.
const MAX_REPORTED_STEPS: usize = 200;

/// What `dicomlab join` sends: the learner's progress on their own service — never a secret or a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinReport {
    /// The class code.
    pub code: String,
    /// The learner's name (as typed; validated like an SSH user name).
    pub name: String,
    /// The lab's id (it must be the classroom's).
    pub lab: String,
    /// What kind of target they work on (`azure`, `generic`, `practice`).
    pub target: String,
    /// Each step's record.
    pub steps: BTreeMap<StepId, StepProgress>,
    /// The token the name's first report got (`None` on the first report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The answer's header that carries a self-reporting learner's token (on their first report only).
pub const TOKEN_HEADER: &str = "x-dicomlab-join-token";

/// Which listener a front serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// The public port (learners' laptops; perhaps behind a reverse proxy on this machine): no
    /// `/admin/` route, and every request forwarded is marked [`dicomlab_practice::NotLoopback`], so nothing
    /// a learner's service grants callers on loopback is granted through it.
    Public,
    /// The loopback listener of this process: the learners' TUIs and the classroom's checks. Every
    /// path starts with the process's key (`/{key}/l/{name}/…`): without it, nothing answers but
    /// "not found" — another local user's process cannot use it.
    Internal,
}

/// The front's routes.
pub fn router(core: Arc<Core>, exposure: Exposure) -> Router {
    match exposure {
        Exposure::Public => Router::new()
            .route("/", get(welcome))
            .route(
                "/classroom/join",
                post(join).layer(DefaultBodyLimit::max(MAX_JOIN_BODY)),
            )
            .fallback(public_route)
            .layer(axum::middleware::from_fn_with_state(
                core.clone(),
                limit_rate,
            )),
        Exposure::Internal => Router::new().fallback(internal_route),
    }
    .with_state(core)
}

/// The public port's per-address rate: beyond it, 429 with `Retry-After`.
async fn limit_rate(
    State(core): State<Arc<Core>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| gate::client(c.0.ip()));
    if let Some(ip) = peer
        && let Err(wait) = core.rate.take(ip, std::time::Instant::now())
    {
        return too_many(wait, "Too many requests from your address: slow down.");
    }
    next.run(req).await
}

/// `429 Too Many Requests` with `Retry-After` (whole seconds, at least 1).
pub fn too_many(wait: std::time::Duration, why: &str) -> Response {
    let secs = whole_seconds(wait);
    let mut r = text(
        StatusCode::TOO_MANY_REQUESTS,
        format!("{why} Retry in {secs} s.\n"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, retry_after(wait));
    r
}

/// A wait in whole seconds, rounded up, at least 1.
fn whole_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// `Retry-After` for a wait.
fn retry_after(wait: std::time::Duration) -> HeaderValue {
    HeaderValue::from(whole_seconds(wait))
}

/// Every "not found" of the front, whatever was not found (a learner or a route of theirs).
const NOT_FOUND: &str = "Not found. Each learner's service is under /l/<name>/v1.\n";

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, NOT_FOUND)
}

async fn public_route(State(core): State<Arc<Core>>, req: Request) -> Response {
    learner_route(core, req, Exposure::Public).await
}

async fn internal_route(State(core): State<Arc<Core>>, mut req: Request) -> Response {
    use subtle::ConstantTimeEq;
    let path = req.uri().path();
    let Some((key, rest)) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .map(|(k, r)| (k, format!("/{r}")))
    else {
        return not_found();
    };
    if !bool::from(key.as_bytes().ct_eq(core.internal_key.as_bytes())) {
        return not_found();
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    let Ok(uri) = path_and_query.parse::<Uri>() else {
        return text(StatusCode::BAD_REQUEST, "Bad request path.\n");
    };
    *req.uri_mut() = uri;
    learner_route(core, req, Exposure::Internal).await
}

/// Whether a path (a learner's, the prefix taken off) names an admin route however it is spelled:
/// percent-encoded, in capitals, after empty segments.
fn is_admin_path(path: &str) -> bool {
    let decoded = percent_decoded(path).to_ascii_lowercase();
    decoded
        .split(['/', '\\'])
        .find(|s| !s.is_empty())
        .is_some_and(|first| first.trim() == "admin")
}

/// `%xx` decoded (twice over: `%2561` is `a` too); anything that is not an escape kept as is.
fn percent_decoded(path: &str) -> String {
    let mut s = path.to_string();
    for _ in 0..3 {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let hex = |c: u8| char::from(c).to_digit(16);
            if b[i] == b'%'
                && let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                )
            {
                out.push((h * 16 + l) as u8);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        let next = String::from_utf8_lossy(&out).into_owned();
        if next == s {
            break;
        }
        s = next;
    }
    s
}

async fn welcome(State(core): State<Arc<Core>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!(
            "dicomlab classroom: {}\nLearners: ssh -p {} <your name>@<this host>, with the class code as password the first time, then the personal code it gives you.\nYour DICOM service is under /l/<your name>/v1 (your SSH session shows its values).\n",
            core.lab.title,
            core.ssh_port()
        ),
    )
        .into_response()
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// `/l/{name}/rest…` → the learner's service, at `/rest…`.
async fn learner_route(core: Arc<Core>, mut req: Request, exposure: Exposure) -> Response {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix("/l/") else {
        return not_found();
    };
    let (name, tail) = match rest.split_once('/') {
        Some((n, t)) => (n, format!("/{t}")),
        None => (rest, "/".to_string()),
    };
    let Ok(name) = LearnerName::exact(name) else {
        return not_found();
    };
    let Some(tenant) = core.tenants.get(&name) else {
        return not_found();
    };
    if exposure == Exposure::Public {
        if is_admin_path(&tail) {
            tracing::info!(learner = %name, "admin route refused on the public port");
            return text(
                StatusCode::FORBIDDEN,
                "Role administration is not available on the classroom's HTTP port: your SSH session's role step does it.\n",
            );
        }
        // Whatever its peer (a reverse proxy on this machine is loopback), a request from the public
        // port is not from this machine.
        req.extensions_mut().insert(dicomlab_practice::NotLoopback);
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{tail}?{q}"),
        None => tail,
    };
    let Ok(uri) = path_and_query.parse::<Uri>() else {
        return text(StatusCode::BAD_REQUEST, "Bad request path.\n");
    };
    *req.uri_mut() = uri;
    let by_check = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_check_agent);
    let log_read = req.uri().path().starts_with("/loganalytics/");
    // The URLs the service answers with start as the caller's did (the key too, on loopback).
    let prefix = match exposure {
        Exposure::Public => name.prefix(),
        Exposure::Internal => format!("/{}{}", core.internal_key, name.prefix()),
    };
    // And the origin: the public URL the instructor gave (or made from the host's name) — never
    // a caller's Host or X-Forwarded-Proto; on loopback, the listener's own.
    let origin = match exposure {
        Exposure::Public => core.public_origin(),
        Exposure::Internal => {
            let o = core.internal_origin();
            o.strip_suffix(&format!("/{}", core.internal_key))
                .unwrap_or(&o)
                .to_string()
        }
    };
    if let Ok(v) = HeaderValue::from_str(origin.trim_end_matches('/')) {
        req.headers_mut()
            .insert(dicomlab_practice::FORWARDED_ORIGIN, v);
    }
    if let Ok(v) = HeaderValue::from_str(&prefix) {
        req.headers_mut()
            .insert(dicomlab_practice::FORWARDED_PREFIX, v);
    }
    let mut router = tenant.router.clone();
    let resp = match tower_service::Service::call(&mut router, req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    // What the learner did (not the checks' own reads, not a request without a valid token) is worth
    // checking again.
    if !by_check && !log_read && resp.status() != StatusCode::UNAUTHORIZED {
        core.touched(&name);
    }
    // A route the service does not have: the same "not found" as a learner the classroom does not
    // (with the service's own headers: CORS, api-supported-versions). A route's own 404 — no such
    // study, operation or tag — is the service's, as the contract has it.
    if resp
        .extensions()
        .get::<dicomlab_practice::NoRoute>()
        .is_some()
    {
        let mut nf = not_found();
        for (k, v) in resp.headers() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                nf.headers_mut().insert(k.clone(), v.clone());
            }
        }
        return nf;
    }
    resp
}

/// The checks' own requests (`dicomlab-check/<version>`): never a reason to check again.
fn is_check_agent(ua: &str) -> bool {
    CHECK_USER_AGENT
        .split_once('/')
        .is_some_and(|(product, _)| ua.split('/').next() == Some(product))
}

/// `POST /classroom/join`: a self-reported learner's progress.
async fn join(
    State(core): State<Arc<Core>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let report: JoinReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Not a dicomlab progress report: {e}\n"),
            );
        }
    };
    if let Some(refused) = wrong_class_code(&core, peer, &report.code) {
        return refused;
    }
    let name = match LearnerName::parse(&report.name) {
        Ok(n) => n,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("Name refused: {e}.\n")),
    };
    if report.lab != core.lab.id {
        return text(
            StatusCode::CONFLICT,
            format!(
                "This classroom runs the lab '{}', not '{}'.\n",
                core.lab.id,
                dicomlab_dicom::text::visible(&report.lab)
            ),
        );
    }
    if report.steps.len() > MAX_REPORTED_STEPS {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "Too many steps.\n");
    }
    // A wrong token is counted for this name (the 403 says how long to wait, and a wrong one within
    // that wait is 429), but the right one is always let in: tokens are 256 random bits, and a
    // classmate's wrong guesses must not lock the reporter out.
    let door = gate::Door::Learner(name.as_str());
    // Only the lab's steps are kept, and only what a dashboard may show of them.
    let received = time::OffsetDateTime::now_utc();
    let steps: BTreeMap<StepId, StepProgress> = report
        .steps
        .into_iter()
        .filter(|(id, _)| core.lab.step(id).is_some())
        .map(|(id, p)| (id, reported_step(p, received)))
        .collect();
    match core
        .self_reported(&name, report.token.as_deref(), steps, peer.ip())
        .await
    {
        Ok(issued) => {
            let _ = core.gate.verdict(peer.ip(), door, true);
            let mut r = text(
                StatusCode::OK,
                format!(
                    "Thanks, {name}: your progress is on the instructor's dashboard (marked self-reported).\n"
                ),
            );
            if let Some(token) = issued.and_then(|t| HeaderValue::from_str(&t).ok()) {
                r.headers_mut().insert(TOKEN_HEADER, token);
            }
            r
        }
        Err(e @ ClassroomError::WrongToken(_)) => wrong_token(&core, peer, &name, &e),
        Err(ClassroomError::ManyNames(wait)) => {
            too_many(wait, &ClassroomError::ManyNames(wait).to_string())
        }
        Err(e) => text(StatusCode::CONFLICT, format!("{e}\n")),
    }
}

/// The answer that refuses the report's class code, or `None`: it is right (no answer sleeps, it would hold a
/// connection: a wrong code says how long the address now waits, and a report within that wait is
/// answered 429 at once, its code not looked at).
fn wrong_class_code(core: &Core, peer: SocketAddr, code: &str) -> Option<Response> {
    match core.gate.check_now(peer.ip(), code) {
        Ok(()) => None,
        Err(gate::Refused::Wrong(wait)) => {
            tracing::info!(%peer, "join refused: wrong class code");
            let mut r = text(StatusCode::UNAUTHORIZED, "Wrong class code.\n");
            r.headers_mut()
                .insert(header::RETRY_AFTER, retry_after(wait));
            // A 401 names how to authenticate (RFC 9110): the class code, in the report's body.
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("ClassCode realm=\"dicomlab classroom\""),
            );
            Some(r)
        }
        Err(gate::Refused::Wait(wait)) => Some(too_many(
            wait,
            "A wrong class code came from your address a moment ago: wait, then send again.",
        )),
    }
}

/// The answer to a report with a wrong token for `name` (`e` says so).
fn wrong_token(core: &Core, peer: SocketAddr, name: &LearnerName, e: &ClassroomError) -> Response {
    let door = gate::Door::Learner(name.as_str());
    // The wait announced after a wrong token holds: another wrong one within it is answered
    // 429 and not counted (the right token is always let in).
    if let Some(left) = core.gate.waiting(peer.ip(), door) {
        return too_many(
            left,
            "A wrong token for this name came from your address a moment ago: wait, then send again.",
        );
    }
    // A guess at a token counts as a wrong code, for this name.
    let wait = core
        .gate
        .verdict(peer.ip(), door, false)
        .err()
        .unwrap_or(gate::MAX_DELAY);
    tracing::info!(%peer, learner = %name, "join refused: wrong token");
    let mut r = text(StatusCode::FORBIDDEN, format!("{e}\n"));
    r.headers_mut()
        .insert(header::RETRY_AFTER, retry_after(wait));
    r
}

/// The longest text kept of a self-reported step (a failure, a summary, a subject).
const MAX_REPORTED_TEXT: usize = 300;
/// How far ahead of the classroom's clock a reported time may be (clocks differ a little).
const CLOCK_SLACK: time::Duration = time::Duration::minutes(5);

/// A self-reported step as the classroom keeps it: its times real RFC 3339 instants not in the future
/// (else the time it arrived, or none), its texts visible characters and short. The report comes from
/// anyone who has the class code: nothing in it is trusted to be well formed.
fn reported_step(mut p: StepProgress, received: time::OffsetDateTime) -> StepProgress {
    let sane = |t: Option<time::OffsetDateTime>| {
        t.filter(|at| *at <= received + CLOCK_SLACK && at.year() >= 2000)
    };
    let text = |t: &str| -> String {
        let v = dicomlab_dicom::text::visible(t);
        match v.char_indices().nth(MAX_REPORTED_TEXT) {
            Some((cut, _)) => format!("{}…", &v[..cut]),
            None => v.into_owned(),
        }
    };
    p.first = sane(p.first).or(Some(received));
    p.last = sane(p.last).or(Some(received));
    p.done_at = sane(p.done_at);
    p.waiting_since = sane(p.waiting_since);
    p.last_failure = p.last_failure.as_deref().map(text);
    p.subject = p.subject.as_deref().map(text);
    if let Some(e) = &mut p.evidence {
        e.summary = text(&e.summary);
        e.at = sane(e.at);
        e.subject = e.subject.as_deref().map(text);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_reported_step_keeps_only_sane_times_and_short_visible_texts() {
        let received = time::macros::datetime!(2026-11-30 12:00 UTC);
        let raw: StepProgress = serde_json::from_value(serde_json::json!({
            "status": "done", "attempts": 3,
            "first": "2026-11-30T11:00:00Z",
            "last": "9999-12-31T23:59:59Z",
            "done_at": "yesterday",
            "last_failure": format!("\u{1b}[2Jwiped{}", "x".repeat(5000)),
            "evidence": {"source": "dicomlab", "summary": "ok\u{7}", "at": "2026-11-30T12:04:00Z"}
        }))
        .expect("a report");
        let kept = reported_step(raw, received);
        assert_eq!(
            kept.first,
            Some(time::macros::datetime!(2026-11-30 11:00 UTC))
        );
        assert_eq!(kept.last, Some(received), "a future time is the arrival's");
        assert_eq!(kept.done_at, None);
        let failure = kept.last_failure.expect("kept");
        assert!(!failure.contains('\u{1b}'), "{failure}");
        assert!(failure.chars().count() <= MAX_REPORTED_TEXT + 1);
        let e = kept.evidence.expect("evidence");
        assert!(!e.summary.contains('\u{7}'));
        assert_eq!(
            e.at,
            Some(time::macros::datetime!(2026-11-30 12:04 UTC)),
            "within the clock slack"
        );
    }

    #[test]
    fn admin_paths_however_spelled() {
        for p in [
            "/admin/roles",
            "//admin/roles",
            "/ADMIN/clients",
            "/%61dmin/roles",
            "/%2561dmin/roles",
            "/admin",
            "/%2Fadmin/roles",
        ] {
            assert!(is_admin_path(p), "{p}");
        }
        for p in ["/v1/studies", "/administer", "/v1/admin", "/", ""] {
            assert!(!is_admin_path(p), "{p}");
        }
    }
}
