//! `dicomlab ohif`: the lab's bonus exercise with the OHIF viewer. Serves an OHIF build on loopback
//! with an `app-config.js` for the active target, prints its URL (and, over SSH, how to forward the
//! ports), and says what the service still needs before a browser may use it — the exercise itself,
//! which this command never does for the learner: CORS for the viewer's origin, the redirect URI on
//! the app registration, a role for the user.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use reqwest::Method;

use super::admin::{Admin, CommandError};
use dicomlab_lab::config::{Config, Profile};
use dicomlab_lab::targets::{PRACTICE_PORT, TargetKind};
use dicomlab_ohif::config::{Flow, SignIn, ViewerConfig};
use dicomlab_ohif::{Site, fetch};
use dicomlab_practice::cors::CorsConfig;

/// `dicomlab ohif`
#[derive(Args, Debug)]
pub(crate) struct OhifCommand {
    /// A built OHIF: its dist/ folder, or an unpacked @ohif/app package. Default: @ohif/app 3.13.2,
    /// fetched with npm into --cache the first time.
    #[arg(long)]
    build: Option<PathBuf>,
    /// Where a fetched OHIF is kept (default: dicomlab's data folder, ohif/).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Where to serve the viewer (loopback; over SSH, forward the port).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// The sign-in OHIF runs: code (with PKCE, a single-page application redirect URI), or the
    /// implicit grant Microsoft's dicom-ohif guide configures (token, id_token-token).
    #[arg(long, value_enum, default_value_t = Flow::Code)]
    flow: Flow,
    /// Print the generated app-config.js and exit (to deploy OHIF elsewhere).
    #[arg(long)]
    print_config: bool,
}

/// What the viewer is pointed at.
struct Pointed {
    config: ViewerConfig,
    kind: TargetKind,
    /// A practice service's admin routes.
    admin: Option<Admin>,
    client_id: String,
}

async fn pointed(
    profile_name: &str,
    profile: &Profile,
    flow: Flow,
) -> Result<Pointed, CommandError> {
    let base = profile.base_url.trim().trim_end_matches('/').to_string();
    match profile.kind {
        TargetKind::Practice => {
            let base = if base.is_empty() {
                format!("http://127.0.0.1:{PRACTICE_PORT}/v1")
            } else {
                base
            };
            let admin = Admin::new(&base);
            let apps = admin
                .call(Method::GET, "/admin/apps", None)
                .await
                .map_err(|e| {
                    CommandError::Other(format!(
                        "the practice service at {} does not answer ({e}): start it first (`dicomlab serve`, or `dicomlab` for the TUI)",
                        admin.origin()
                    ))
                })?;
            let text = |v: &serde_json::Value| {
                dicomlab_dicom::text::visible(v.as_str().unwrap_or_default()).into_owned()
            };
            let client_id = if profile.client_id.trim().is_empty() {
                apps["apps"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["labClient"].as_bool() == Some(true)))
                    .map(|x| text(&x["clientId"]))
                    .unwrap_or_default()
            } else {
                profile.client_id.trim().to_string()
            };
            Ok(Pointed {
                config: ViewerConfig {
                    name: "practice".into(),
                    base_url: base,
                    sign_in: Some(SignIn {
                        authority: text(&apps["authority"]),
                        client_id: client_id.clone(),
                        flow,
                    }),
                },
                kind: TargetKind::Practice,
                admin: Some(admin),
                client_id,
            })
        }
        TargetKind::Azure => {
            let (tenant, client) = (profile.tenant_id.trim(), profile.client_id.trim());
            if tenant.is_empty() || client.is_empty() || base.is_empty() {
                return Err(CommandError::Other(format!(
                    "profile '{profile_name}' needs base_url, tenant_id and client_id for the viewer (the environment step)"
                )));
            }
            Ok(Pointed {
                config: ViewerConfig {
                    name: "Azure DICOM service".into(),
                    base_url: base,
                    sign_in: Some(SignIn {
                        authority: format!(
                            "{}/{tenant}/v2.0",
                            profile.authority.trim().trim_end_matches('/')
                        ),
                        client_id: client.to_string(),
                        flow,
                    }),
                },
                kind: TargetKind::Azure,
                admin: None,
                client_id: client.to_string(),
            })
        }
        TargetKind::Generic => {
            if base.is_empty() {
                return Err(CommandError::Other(format!(
                    "profile '{profile_name}' has no base_url"
                )));
            }
            Ok(Pointed {
                config: ViewerConfig {
                    name: "DICOMweb".into(),
                    base_url: base,
                    sign_in: None,
                },
                kind: TargetKind::Generic,
                admin: None,
                client_id: String::new(),
            })
        }
    }
}

/// What the learner still has to set up on a practice service, each with how (never done here).
async fn practice_to_do(admin: &Admin, origin: &str, client_id: &str) -> Vec<String> {
    let mut todo = Vec::new();
    let service = admin.origin();
    if let Ok(v) = admin.call(Method::GET, "/admin/cors", None).await {
        let cors: CorsConfig = serde_json::from_value(v).unwrap_or_default();
        let headers_ok = cors
            .headers
            .iter()
            .any(|h| h == "*" || h == "authorization");
        let get_ok = cors.methods.iter().any(|m| m == "*" || m == "GET");
        if !cors.allows(origin) || !headers_ok || !get_ok {
            todo.push(format!(
                "CORS: the DICOM service must let {origin} read its answers, with the header authorization and the method GET (now: {}).\n      Azure: DICOM service → CORS. Here: dicomlab cors set --service {service} --origin {origin} --header authorization --method GET",
                cors.summary()
            ));
        }
    }
    if let Ok(v) = admin.call(Method::GET, "/admin/apps", None).await {
        let callback = format!("{origin}/callback");
        let registered = v["apps"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["clientId"].as_str() == Some(client_id)))
            .and_then(|a| a["redirectUris"].as_array())
            .is_some_and(|u| {
                u.iter()
                    .any(|r| r["uri"].as_str() == Some(callback.as_str()))
            });
        if !registered {
            todo.push(format!(
                "Redirect URI: the app {client_id} must list {callback} (single-page application).\n      Azure: App registrations → the app → Authentication → Add a platform → Single-page application. Here: dicomlab app redirect-uri add {callback} --service {service}"
            ));
        }
        let users = v["users"].as_array().cloned().unwrap_or_default();
        if let Some(u) = users.first() {
            let has_role = u["roles"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|x| x.as_str().is_some_and(|n| n.starts_with("DICOM Data")))
            });
            if !has_role {
                let upn = dicomlab_dicom::text::visible(u["upn"].as_str().unwrap_or("learner"))
                    .into_owned();
                todo.push(format!(
                    "Role: the user {upn} needs DICOM Data Owner (or Reader) on the service.\n      Azure: DICOM service → Access control (IAM) → Add role assignment → the user. Here: dicomlab role grant --user {upn} --service {service}"
                ));
            }
        }
    }
    todo
}

/// How to reach the viewer from the learner's own computer over SSH (`ssh_connection`: the
/// `SSH_CONNECTION` variable, "client-ip client-port server-ip server-port").
fn ssh_hint(ssh_connection: &str, user: &str, ports: &[u16]) -> Option<String> {
    let mut parts = ssh_connection.split_whitespace();
    let (_, _, server_ip, server_port) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let server_ip = if server_ip.contains(':') {
        format!("[{server_ip}]")
    } else {
        server_ip.to_string()
    };
    let forwards: Vec<String> = ports
        .iter()
        .map(|p| format!("-L {p}:127.0.0.1:{p}"))
        .collect();
    let port = if server_port == "22" {
        String::new()
    } else {
        format!(" -p {server_port}")
    };
    Some(format!(
        "You are on SSH: the browser runs on your own computer. There, run\n    ssh -N {} {user}@{server_ip}{port}\n  and open the URL above in its browser.",
        forwards.join(" ")
    ))
}

/// The OHIF build to serve: the one given, else the one fetched into the cache (fetched with npm the
/// first time).
async fn build_dir(
    build: Option<PathBuf>,
    cache: Option<PathBuf>,
) -> Result<PathBuf, CommandError> {
    Ok(match build {
        Some(b) => b,
        None => {
            let cache = cache.unwrap_or_else(|| dicomlab_lab::config::data_dir().join("ohif"));
            tokio::task::spawn_blocking(move || fetch::ensure(&cache, &|s| eprintln!("{s}")))
                .await
                .map_err(|e| CommandError::Other(e.to_string()))??
        }
    })
}

/// Prints what the service still needs before the viewer at `origin` may use it: on the practice
/// service, what its admin API says is missing; on Azure, where to set it.
async fn print_to_do(pointed: &Pointed, origin: &str) {
    match (pointed.kind, &pointed.admin) {
        (TargetKind::Practice, Some(admin)) => {
            let todo = practice_to_do(admin, origin, &pointed.client_id).await;
            if todo.is_empty() {
                println!("  ready        CORS, redirect URI and the user's role are set");
            } else {
                println!("Before the viewer can show the study (the bonus exercise):");
                for t in todo {
                    println!("  - {t}");
                }
            }
        }
        (TargetKind::Azure, _) => {
            println!("On Azure, the bonus exercise is (see the README):");
            println!(
                "  - App registrations → the app → Authentication → Add a platform → Single-page application: {origin}/callback"
            );
            println!(
                "  - API permissions → Add a permission → APIs my organization uses → Azure API for DICOM → Delegated → Dicom.ReadWrite (grant admin consent)"
            );
            println!("  - DICOM service → CORS: origin {origin}, header authorization, method GET");
            println!(
                "  - DICOM service → Access control (IAM): DICOM Data Owner (or Reader) for your user"
            );
        }
        _ => {
            println!(
                "  note         no sign-in: the server must allow {origin} (CORS) and need no password from a browser"
            );
        }
    }
}

/// The ports to forward over SSH: the viewer's, and a practice service's on this machine.
fn forwarded_ports(viewer: u16, pointed: &Pointed) -> Vec<u16> {
    let mut ports = vec![viewer];
    if pointed.kind == TargetKind::Practice
        && let Ok(u) = reqwest::Url::parse(&pointed.config.base_url)
        && let Some(p) = u.port_or_known_default()
        && u.host_str()
            .is_some_and(|h| h == "127.0.0.1" || h == "localhost")
    {
        ports.push(p);
    }
    ports
}

impl OhifCommand {
    pub(crate) async fn run(
        self,
        config_path: Option<PathBuf>,
        profile: Option<String>,
        lab: Option<PathBuf>,
    ) -> Result<(), CommandError> {
        let path = match config_path {
            Some(p) => p,
            None => dicomlab_lab::config::default_path().ok_or_else(|| {
                CommandError::Other("no config dir on this system: pass --config FILE".into())
            })?,
        };
        let config = Config::load(&path)?;
        let (name, profile) = config.active(profile.as_deref())?;
        let pointed = pointed(&name, &profile, self.flow).await?;
        if self.print_config {
            print!("{}", pointed.config.app_config_js());
            return Ok(());
        }
        if !self.addr.ip().is_loopback() {
            return Err(CommandError::Other(format!(
                "the viewer is served on loopback only ({} is not): over SSH, forward the port",
                self.addr
            )));
        }
        let build = build_dir(self.build, self.cache).await?;
        let site = Site::new(&build, pointed.config.app_config_js())?;
        let root = site.root().to_path_buf();
        let serving = dicomlab_ohif::serve(site, self.addr).await?;
        let origin = serving.origin.clone();
        let lab = match lab {
            Some(p) => dicomlab_lab::Lab::load(&p)?,
            None => dicomlab_lab::Lab::embedded()?,
        };
        println!("OHIF viewer for {} ({})", name, pointed.config.base_url);
        println!("  build        {}", root.display());
        println!("  URL          {origin}/");
        if let Some(i) = lab.dataset.instances.first() {
            println!(
                "  lab study    {origin}/viewer?StudyInstanceUIDs={}",
                i.study
            );
        }
        if let Some(s) = &pointed.config.sign_in {
            println!(
                "  sign-in      {} (client {}, {} flow)",
                s.authority,
                s.client_id,
                s.flow.response_type()
            );
        }
        print_to_do(&pointed, &origin).await;
        let ports = forwarded_ports(self.addr.port(), &pointed);
        let user = std::env::var("USER").unwrap_or_else(|_| "you".into());
        if let Some(hint) = std::env::var("SSH_CONNECTION")
            .ok()
            .and_then(|c| ssh_hint(&c, &user, &ports))
        {
            println!("{hint}");
        }
        println!("Press Ctrl-C to stop.");
        super::stop_signal()
            .await
            .map_err(|e| CommandError::Other(e.to_string()))?;
        serving.stop().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_ssh_the_ports_are_forwarded() {
        let hint =
            ssh_hint("203.0.113.7 52311 198.51.100.2 2222", "ada", &[3000, 8042]).expect("a hint");
        assert!(
            hint.contains(
                "ssh -N -L 3000:127.0.0.1:3000 -L 8042:127.0.0.1:8042 ada@198.51.100.2 -p 2222"
            ),
            "{hint}"
        );
        let hint = ssh_hint("2001:db8::1 5 2001:db8::2 22", "ada", &[3000]).expect("a hint");
        assert!(
            hint.contains("ssh -N -L 3000:127.0.0.1:3000 ada@[2001:db8::2]\n"),
            "{hint}"
        );
        assert_eq!(ssh_hint("", "ada", &[3000]), None);
    }
}
