//! `dicomlab app show | redirect-uri add/remove | implicit`: an app registration's sign-in settings on
//! the practice tenant, as Entra's portal sets them (App registrations → the app → Authentication:
//! "Add a platform" → single-page application or web, its redirect URIs, and the implicit grant's
//! "Access tokens" / "ID tokens" boxes).

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::admin::{Admin, CommandError};

/// `dicomlab app …`
#[derive(Args, Debug)]
pub(crate) struct AppCommand {
    /// The practice service's origin or base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8042")]
    service: String,
    /// The app's client id (default: the lab client).
    #[arg(long, global = true)]
    client: Option<String>,
    #[command(subcommand)]
    action: AppAction,
}

#[derive(Subcommand, Debug)]
enum AppAction {
    /// The tenant, each app's redirect URIs and implicit grant, and the users with their roles.
    Show,
    /// Add or remove a redirect URI.
    RedirectUri {
        #[command(subcommand)]
        action: RedirectAction,
    },
    /// The implicit grant: which tokens the authorization endpoint may return itself.
    Implicit {
        /// "Access tokens (used for implicit flows)".
        #[arg(long)]
        access_tokens: bool,
        /// "ID tokens (used for implicit and hybrid flows)".
        #[arg(long)]
        id_tokens: bool,
    },
}

#[derive(Subcommand, Debug)]
enum RedirectAction {
    /// Register a redirect URI, e.g. http://127.0.0.1:3000/callback for OHIF.
    Add {
        uri: String,
        /// spa (single-page application: code flow with PKCE, what OHIF uses) or web.
        #[arg(long, default_value = "spa")]
        platform: String,
    },
    /// Remove a redirect URI.
    Remove { uri: String },
}

fn text(v: &Value, k: &str) -> String {
    dicomlab_dicom::text::visible(v[k].as_str().unwrap_or_default()).into_owned()
}

fn uris(v: &Value) -> String {
    let list: Vec<String> = v["redirectUris"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| format!("{} ({})", text(r, "uri"), text(r, "platform")))
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

impl AppCommand {
    async fn client(&self, admin: &Admin) -> Result<String, CommandError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let apps = admin.call(Method::GET, "/admin/apps", None).await?;
        apps["apps"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["labClient"].as_bool() == Some(true)))
            .map(|x| text(x, "clientId"))
            .ok_or_else(|| CommandError::Other(format!("{} has no lab client", admin.origin())))
    }

    pub(crate) async fn run(self) -> Result<(), CommandError> {
        let admin = Admin::new(&self.service);
        match &self.action {
            AppAction::Show => {
                let v = admin.call(Method::GET, "/admin/apps", None).await?;
                println!(
                    "tenant {} · authority {}",
                    text(&v, "tenantId"),
                    text(&v, "authority")
                );
                for a in v["apps"].as_array().into_iter().flatten() {
                    let lab = if a["labClient"].as_bool() == Some(true) {
                        " (lab client)"
                    } else {
                        ""
                    };
                    let implicit = &a["implicitGrant"];
                    println!(
                        "app {}{lab} \"{}\"\n  redirect URIs   {}\n  implicit grant  access tokens {}, ID tokens {}",
                        text(a, "clientId"),
                        text(a, "name"),
                        uris(a),
                        if implicit["accessTokens"].as_bool() == Some(true) {
                            "on"
                        } else {
                            "off"
                        },
                        if implicit["idTokens"].as_bool() == Some(true) {
                            "on"
                        } else {
                            "off"
                        },
                    );
                }
                for u in v["users"].as_array().into_iter().flatten() {
                    let roles: Vec<String> = u["roles"]
                        .as_array()
                        .map(|r| {
                            r.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    println!(
                        "user {} (object id {}): {}",
                        text(u, "upn"),
                        text(u, "oid"),
                        if roles.is_empty() {
                            "no role".to_string()
                        } else {
                            roles.join(", ")
                        }
                    );
                }
            }
            AppAction::RedirectUri { action } => {
                let client = self.client(&admin).await?;
                let path = format!("/admin/apps/{client}/redirect-uris");
                let v = match action {
                    RedirectAction::Add { uri, platform } => {
                        admin
                            .call(
                                Method::PUT,
                                &path,
                                Some(&json!({"uri": uri, "platform": platform})),
                            )
                            .await?
                    }
                    RedirectAction::Remove { uri } => {
                        admin
                            .call(Method::DELETE, &path, Some(&json!({"uri": uri})))
                            .await?
                    }
                };
                println!("app {client}: redirect URIs {}", uris(&v));
            }
            AppAction::Implicit {
                access_tokens,
                id_tokens,
            } => {
                let client = self.client(&admin).await?;
                admin
                    .call(
                        Method::PUT,
                        &format!("/admin/apps/{client}/implicit"),
                        Some(&json!({"accessTokens": access_tokens, "idTokens": id_tokens})),
                    )
                    .await?;
                println!(
                    "app {client}: implicit grant access tokens {}, ID tokens {}",
                    if *access_tokens { "on" } else { "off" },
                    if *id_tokens { "on" } else { "off" }
                );
            }
        }
        Ok(())
    }
}
