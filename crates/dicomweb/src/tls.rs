//! One TLS configuration for the whole process, shared by every HTTP client it builds.
//!
//! reqwest builds a certificate verifier for each client, and the platform verifier reads and parses
//! the system's root certificates each time (milliseconds of CPU and hundreds of KB). A classroom
//! makes clients for every learner's session and for every learner the room checks: in the opening
//! burst of 100 learners that was an eighth of the room's CPU. Here the verifier — the same one
//! reqwest would build: the system's roots through `rustls-platform-verifier`, reqwest's crypto
//! provider, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1` — is built once and each client gets a clone
//! of the configuration (reference counts). Roots added to the system later are seen after a restart.

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

/// A client builder whose TLS is the process's shared configuration.
pub fn client_builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
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
            client_builder().build().expect("a client");
        }
        let config = CONFIG.get_or_init(build).as_ref().expect("config");
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
