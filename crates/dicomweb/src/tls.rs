//! One TLS configuration for the whole process, shared by every HTTP client it builds.
//!
//! reqwest builds a certificate verifier for each client, and the platform verifier reads and parses
//! the system's root certificates each time (milliseconds of CPU and hundreds of KB). A classroom
//! makes clients for every learner's session and for every learner the room checks: in the opening
//! burst of 100 learners that was an eighth of the room's CPU. Here the verifier — the same one
//! reqwest would build: the system's roots through `rustls-platform-verifier`, reqwest's crypto
//! provider, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1` — is built once and each client gets a clone
//! of the configuration (reference counts). Roots added to the system later are seen after a restart.
//!
//! A client made only for plain HTTP to this machine (the embedded practice service, a classroom's
//! front, a local Orthanc) gets no verifier at all: the TUI's first frame does not wait for the
//! system's certificates, and such a client refuses HTTPS.

use std::sync::{Arc, OnceLock};

/// The process's configuration; `None` when it could not be built (then reqwest builds its own, and
/// says why if that fails too).
static CONFIG: OnceLock<Option<rustls::ClientConfig>> = OnceLock::new();

fn build() -> Option<rustls::ClientConfig> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = match rustls_platform_verifier::Verifier::new(provider.clone()) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("the system's certificate verifier is unavailable: {e}");
            return None;
        }
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        // "dangerous" is rustls's name for any verifier of one's own: this one is the platform's.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Some(config)
}

/// Whether `url` is plain HTTP to this machine (`localhost` or a loopback address).
pub fn is_loopback_http(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| {
        u.scheme() == "http"
            && u.host_str().is_some_and(|h| {
                h.eq_ignore_ascii_case("localhost")
                    || h.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            })
    })
}

/// Whether there are URLs and every one is plain HTTP to this machine.
fn all_loopback_http<'a>(urls: impl IntoIterator<Item = &'a str>) -> bool {
    let mut urls = urls.into_iter().peekable();
    urls.peek().is_some() && urls.all(is_loopback_http)
}

/// A client builder for a client that will call `urls`: without TLS when all of them are plain HTTP
/// to this machine, with the process's shared configuration otherwise.
pub fn client_builder<'a>(urls: impl IntoIterator<Item = &'a str>) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    if all_loopback_http(urls) {
        return builder.tls_certs_only(std::iter::empty());
    }
    match CONFIG.get_or_init(build) {
        Some(config) => builder.tls_backend_preconfigured(config.clone()),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_take_the_shared_configuration() {
        // reqwest refuses at build a preconfigured TLS it does not recognise (another rustls version
        // than its own): this fails when the two drift apart.
        assert!(CONFIG.get_or_init(build).is_some());
        for _ in 0..3 {
            client_builder(["https://login.microsoftonline.com"])
                .build()
                .expect("a client");
        }
        let config = CONFIG.get_or_init(build).as_ref().expect("config");
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn only_plain_http_to_this_machine_goes_without_tls() {
        for url in [
            "http://127.0.0.1:8042/v1",
            "http://localhost:8042/dicom-web",
            "http://[::1]:8042/v2",
            "http://127.1.0.7:9000/ada/v1",
        ] {
            assert!(is_loopback_http(url), "{url}");
        }
        for url in [
            "https://ws-dicom.dicom.azurehealthcareapis.com/v1",
            "http://orthanc.school.lan:8042/dicom-web",
            "https://127.0.0.1:8443/v1",
            "http://127.0.0.1.example.com/v1",
            "not a url",
        ] {
            assert!(!is_loopback_http(url), "{url}");
        }
        // A local base with Azure's token endpoint needs TLS; no URL at all is not "local".
        let local = |urls: &[&str]| {
            let mut it = urls.iter().copied().peekable();
            it.peek().is_some() && it.all(is_loopback_http)
        };
        assert!(local(&[
            "http://127.0.0.1:8042/v1",
            "http://127.0.0.1:8042"
        ]));
        assert!(!local(&[
            "http://127.0.0.1:8042/v1",
            "https://login.microsoftonline.com"
        ]));
        assert!(!local(&[]));
        for urls in [&["http://127.0.0.1:8042/v1"][..], &[][..]] {
            client_builder(urls.iter().copied())
                .build()
                .expect("a client");
        }
    }
}
