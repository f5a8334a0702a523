//! Subcommands whose logic lives in the library; `main.rs` holds their clap variant and one dispatch
//! line each.
//!
//! - `dicomlab cors …`: the practice service's CORS setting, as the portal's CORS blade sets Azure's;
//! - `dicomlab app …`: an app registration's redirect URIs and implicit grant (Entra's Authentication
//!   blade);
//! - `dicomlab ohif`: the OHIF viewer, served for the active target (see [`crate::ohif`]).

pub mod app;
pub mod cors;
pub mod ohif;

use serde_json::Value;

use crate::target::roles::{ADMIN_HEADER, RoleError, admin_call};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Admin(#[from] RoleError),
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Ohif(#[from] crate::ohif::OhifError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Lab(#[from] crate::lab::model::LabError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A practice service's admin routes (loopback, with the admin header).
pub struct Admin {
    origin: String,
    http: reqwest::Client,
}

impl Admin {
    /// The service at `service` (an origin or a base URL).
    pub fn new(service: &str) -> Admin {
        Admin {
            origin: crate::config::origin_of(service),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `method path` with an optional JSON body; the JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CommandError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.origin))
            .header(ADMIN_HEADER.0, ADMIN_HEADER.1);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = admin_call(&self.origin, req).await?;
        let text = resp
            .text()
            .await
            .map_err(|e| CommandError::Other(format!("{}: {e}", self.origin)))?;
        serde_json::from_str(&text).map_err(|_| {
            CommandError::Other(format!(
                "{} did not answer as a dicomlab practice service does (is it one?)",
                self.origin
            ))
        })
    }
}

/// Ctrl-C, or SIGTERM (what `kill` and service managers send).
pub async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// What `dicomlab serve` prints about the sign-in and CORS, below the environment.
pub fn serve_lines(running: &crate::practice::RunningService, no_auth: bool) -> Vec<String> {
    let svc = running.service();
    let mut out = Vec::new();
    if !no_auth {
        out.push(format!(
            "  sign-in (users)      {}/{}/v2.0 (OpenID Connect; user {})",
            running.origin,
            running.tenant_id,
            svc.identity
                .directory
                .learner()
                .map_or_else(|| "none".to_string(), |u| u.upn)
        ));
        let app = svc.identity.directory.app(&running.client_id);
        let uris: Vec<String> = app
            .redirect_uris
            .iter()
            .map(|r| format!("{} ({})", r.uri, r.platform.name()))
            .collect();
        out.push(format!(
            "  redirect URIs        {}",
            if uris.is_empty() {
                "none yet (dicomlab app redirect-uri add URI)".to_string()
            } else {
                uris.join(", ")
            }
        ));
    }
    out.push(format!(
        "  CORS                 {}",
        svc.cors.get().summary()
    ));
    out
}
