//! Who may use the admin routes (`/admin/*`, the stand-in for the Azure portal's IAM blade): only a
//! program on this machine that means it.
//!
//! - The request was not forwarded by a front for other machines (the classroom's public port marks
//!   what it forwards [`super::NotLoopback`]: behind a reverse proxy on the same machine every caller's
//!   peer is loopback).
//! - The peer is loopback (an IPv4-mapped `::ffff:127.0.0.1` on a `[::]` listener included).
//! - The `Host` header names a loopback host: a web page whose name was rebound to 127.0.0.1 sends its
//!   own name (DNS rebinding), and is refused.
//! - The request carries `X-Dicomlab-Admin: 1`: a browser sends a custom header cross-site only after a
//!   CORS preflight, which the service never grants, so a plain cross-site form or fetch is refused.
//!   An `Origin` that is not loopback is refused too.

use axum::http::StatusCode;
use axum::http::request::Parts;

use super::error::{ApiError, ApiResult};

/// The header every admin request carries.
pub(crate) const ADMIN_HEADER: &str = "x-dicomlab-admin";

fn forbidden(why: String) -> ApiError {
    tracing::warn!("admin route refused: {why}");
    ApiError::new(StatusCode::FORBIDDEN, why)
}

/// Whether `host` (a Host header or an Origin's authority, port allowed) names this machine.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        match rest.split_once(']') {
            Some((addr, _)) => addr.to_string(),
            None => return false,
        }
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host.clone(), |(h, _)| h.to_string())
    };
    let name = name.trim_end_matches('.');
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Refuses an admin request unless it comes from loopback, to a loopback host, with the admin header.
pub(crate) fn require_admin(parts: &Parts) -> ApiResult<()> {
    if parts.extensions.get::<super::NotLoopback>().is_some() {
        return Err(forbidden(
            "Role administration is not available through a front that serves other machines."
                .into(),
        ));
    }
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    match peer {
        Some(addr) if addr.ip().to_canonical().is_loopback() => {}
        Some(addr) => {
            return Err(forbidden(format!(
                "Role administration is only available on loopback (this request came from {}).",
                addr.ip()
            )));
        }
        None => {
            return Err(forbidden(
                "Role administration is only available on loopback.".into(),
            ));
        }
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("host").unwrap_or("");
    if !is_loopback_host(host) {
        return Err(forbidden(format!(
            "Role administration answers only requests addressed to this machine (Host: 127.0.0.1 or localhost), not '{host}'."
        )));
    }
    if let Some(origin) = header("origin") {
        let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
        if !is_loopback_host(authority) {
            return Err(forbidden(format!(
                "Role administration does not answer pages from other sites (Origin: {origin})."
            )));
        }
    }
    if header(ADMIN_HEADER).map(str::trim) != Some("1") {
        return Err(forbidden(
            "Role administration needs the header 'X-Dicomlab-Admin: 1' (`dicomlab role` sends it; a web page cannot send it cross-site).".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:8042",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8042",
            "127.1.2.3",
            "[::ffff:127.0.0.1]:80",
            "localhost.",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8042",
            "127.0.0.1.nip.io",
            "",
            "10.0.0.1",
            "[::2]:80",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
