//! `dicomlab cors show | set | clear`: the practice service's CORS setting, set as the Azure portal sets
//! the DICOM service's (DICOM service → CORS: origins, headers, methods, max age, allow credentials —
//! one setting for every origin, saved as a whole). `serve --cors-origin …` sets it at start.

use clap::{Args, Subcommand};
use reqwest::Method;

use super::admin::{Admin, CommandError};
use dicomlab_practice::cors::CorsConfig;

/// `dicomlab cors …`
#[derive(Args, Debug)]
pub(crate) struct CorsCommand {
    /// The practice service's origin or base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8042")]
    service: String,
    #[command(subcommand)]
    action: CorsAction,
}

#[derive(Subcommand, Debug)]
enum CorsAction {
    /// Show the setting.
    Show,
    /// Replace the setting (as the portal's Save does): origins, headers, methods, max age, credentials.
    Set(CorsFields),
    /// Turn CORS off (no origin allowed: browsers on other origins are blocked).
    Clear,
}

/// The fields of the CORS blade.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct CorsFields {
    /// An allowed origin, scheme://host[:port] (e.g. http://127.0.0.1:3000), or * for any. Repeat it,
    /// or separate with commas.
    #[arg(long = "origin", value_delimiter = ',', required = true)]
    origins: Vec<String>,
    /// An allowed request header (authorization, content-type…), or * for any.
    #[arg(long = "header", value_delimiter = ',')]
    headers: Vec<String>,
    /// An allowed method (GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS, MERGE), or * for all.
    #[arg(long = "method", value_delimiter = ',')]
    methods: Vec<String>,
    /// Seconds a browser may keep a preflight's answer.
    #[arg(long)]
    max_age: Option<u32>,
    /// Allow credentials (not with origin *).
    #[arg(long)]
    allow_credentials: bool,
}

impl CorsFields {
    fn config(&self) -> CorsConfig {
        CorsConfig {
            origins: self.origins.clone(),
            headers: self.headers.clone(),
            methods: self.methods.clone(),
            max_age: self.max_age,
            allow_credentials: self.allow_credentials,
        }
    }
}

/// `serve`'s CORS flags: when any is given, they replace the setting kept with the data.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ServeCorsFlags {
    /// CORS: an allowed origin (scheme://host[:port], or *); repeat or separate with commas. Replaces
    /// the kept setting (`dicomlab cors` changes it while the service runs).
    #[arg(long = "cors-origin", value_delimiter = ',')]
    origins: Vec<String>,
    /// CORS: an allowed request header, or *.
    #[arg(long = "cors-header", value_delimiter = ',')]
    headers: Vec<String>,
    /// CORS: an allowed method, or *.
    #[arg(long = "cors-method", value_delimiter = ',')]
    methods: Vec<String>,
    /// CORS: the preflight max age, in seconds.
    #[arg(long = "cors-max-age")]
    max_age: Option<u32>,
    /// CORS: allow credentials.
    #[arg(long = "cors-allow-credentials")]
    allow_credentials: bool,
}

impl ServeCorsFlags {
    /// The setting the flags give, if any flag was given.
    pub(crate) fn config(&self) -> Option<CorsConfig> {
        let any = !self.origins.is_empty()
            || !self.headers.is_empty()
            || !self.methods.is_empty()
            || self.max_age.is_some()
            || self.allow_credentials;
        any.then(|| CorsConfig {
            origins: self.origins.clone(),
            headers: self.headers.clone(),
            methods: self.methods.clone(),
            max_age: self.max_age,
            allow_credentials: self.allow_credentials,
        })
    }
}

fn shown(v: &serde_json::Value) -> String {
    match serde_json::from_value::<CorsConfig>(v.clone()) {
        Ok(c) => c.summary(),
        Err(_) => dicomlab_dicom::text::visible(&v.to_string()).into_owned(),
    }
}

impl CorsCommand {
    pub(crate) async fn run(self) -> Result<(), CommandError> {
        let admin = Admin::new(&self.service);
        let answer = match &self.action {
            CorsAction::Show => admin.call(Method::GET, "/admin/cors", None).await?,
            CorsAction::Set(f) => {
                // Checked here first, so a mistake is said before anything is sent.
                let config = f
                    .config()
                    .validated()
                    .map_err(|e| CommandError::Other(e.to_string()))?;
                let body = serde_json::to_value(&config)
                    .map_err(|e| CommandError::Other(e.to_string()))?;
                admin.call(Method::PUT, "/admin/cors", Some(&body)).await?
            }
            CorsAction::Clear => admin.call(Method::DELETE, "/admin/cors", None).await?,
        };
        println!("CORS on {}: {}", admin.origin(), shown(&answer));
        Ok(())
    }
}
