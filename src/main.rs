//! The `dicomlab` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use dicomlab::practice::{self, ServiceConfig, auth::Role};

#[derive(Parser, Debug)]
#[command(
    name = "dicomlab",
    version,
    about = "Walks you through the hands-on lab \"DICOM service\" and checks each step against the live service."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the practice service: a local DICOM service that answers like Azure's.
    Serve(ServeArgs),
    /// Write the lab's three sample instances (red triangle, green square, blue circle).
    Samples {
        /// Folder to write red-triangle.dcm, green-square.dcm and blue-circle.dcm into.
        #[arg(long, default_value = "dcms")]
        out: PathBuf,
    },
    /// Grant, revoke or list roles on a running practice service (what the Azure portal's IAM blade does).
    Role {
        /// The practice service's origin or base URL.
        #[arg(long, default_value = "http://127.0.0.1:8042")]
        service: String,
        #[command(subcommand)]
        action: RoleAction,
    },
}

#[derive(Subcommand, Debug)]
enum RoleAction {
    /// Assign a role ("DICOM Data Owner" by default) to a client (the lab client by default).
    Grant {
        #[arg(default_value = "DICOM Data Owner")]
        role: String,
        #[arg(long)]
        client: Option<String>,
    },
    /// Remove a role assignment.
    Revoke {
        #[arg(default_value = "DICOM Data Owner")]
        role: String,
        #[arg(long)]
        client: Option<String>,
    },
    /// Show every client and its roles.
    List,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8042")]
    addr: SocketAddr,
    /// Data directory (index and files); kept across restarts.
    #[arg(long, conflicts_with = "ephemeral")]
    data: Option<PathBuf>,
    /// Keep everything in a temporary directory removed on exit.
    #[arg(long)]
    ephemeral: bool,
    /// Accept requests without a token (every data action allowed).
    #[arg(long)]
    no_auth: bool,
    /// Start with "DICOM Data Owner" already assigned to the lab client.
    #[arg(long)]
    grant_owner: bool,
    /// Minimum duration of an extended-query-tag re-index, in seconds (so it can be watched).
    #[arg(long, default_value_t = 2.0)]
    reindex_seconds: f64,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, default_value_t = 3599)]
    token_seconds: u64,
}

fn default_data_dir() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "dicomlab")
        .context("no home directory to keep data in")?;
    Ok(dirs.data_dir().join("practice"))
}

async fn serve(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hyper=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let data_dir = if args.ephemeral {
        None
    } else {
        Some(args.data.map_or_else(default_data_dir, Ok)?)
    };
    let config = ServiceConfig {
        addr: args.addr,
        data_dir,
        auth: !args.no_auth,
        grant_owner: args.grant_owner,
        token_lifetime: Duration::from_secs(args.token_seconds.max(1)),
        reindex_min_duration: Duration::from_secs_f64(args.reindex_seconds.clamp(0.0, 3600.0)),
        ..ServiceConfig::default()
    };
    let running = practice::start(config).await?;
    println!("dicomlab practice service");
    println!("  base URL (baseUrl)   {}", running.base_url);
    println!("  data                 {}", running.data_dir.display());
    if args.no_auth {
        println!("  auth                 off (--no-auth): no token needed");
    } else {
        println!("  token endpoint (v1)  {}", running.token_url());
        println!("  token endpoint (v2)  {}", running.token_url_v2());
        println!("  tenantId             {}", running.tenant_id);
        println!("  clientId             {}", running.client_id);
        println!("  clientSecret         {}", running.client_secret);
        println!("  resource             {}", running.resource);
        let roles = running.service().auth.roles_of(&running.client_id);
        if roles.is_empty() {
            println!(
                "  roles                none yet: grant with `dicomlab role grant --service {}`",
                running.origin
            );
        } else {
            let names: Vec<_> = roles.iter().map(|r| r.name()).collect();
            println!("  roles                {}", names.join(", "));
        }
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    running.shutdown().await;
    Ok(())
}

async fn role(service: &str, action: RoleAction) -> Result<()> {
    let origin = service
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .trim_end_matches("/v2")
        .to_string();
    let http = reqwest::Client::new();
    let list = || async {
        let resp = http
            .get(format!("{origin}/admin/roles"))
            .send()
            .await
            .with_context(|| format!("cannot reach {origin}"))?;
        if !resp.status().is_success() {
            bail!(
                "{origin} answered {} to /admin/roles: is it a dicomlab practice service?",
                resp.status()
            );
        }
        Ok::<Vec<serde_json::Value>, anyhow::Error>(resp.json().await?)
    };
    let (role, client, grant) = match action {
        RoleAction::List => {
            for c in list().await? {
                let roles: Vec<&str> = c["roles"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|r| r.as_str()).collect())
                    .unwrap_or_default();
                let lab = if c["labClient"].as_bool() == Some(true) {
                    " (lab client)"
                } else {
                    ""
                };
                println!(
                    "{}{lab}: {}",
                    c["clientId"].as_str().unwrap_or("?"),
                    if roles.is_empty() {
                        "no role".to_string()
                    } else {
                        roles.join(", ")
                    }
                );
            }
            return Ok(());
        }
        RoleAction::Grant { role, client } => (role, client, true),
        RoleAction::Revoke { role, client } => (role, client, false),
    };
    let Some(role) = Role::parse(&role) else {
        bail!(
            "unknown role '{role}': use \"DICOM Data Owner\" (owner) or \"DICOM Data Reader\" (reader)"
        );
    };
    let client = match client {
        Some(c) => c,
        None => list()
            .await?
            .into_iter()
            .find(|c| c["labClient"].as_bool() == Some(true))
            .and_then(|c| c["clientId"].as_str().map(str::to_string))
            .context("the service has no lab client")?,
    };
    let url = format!(
        "{origin}/admin/roles/{client}/{}",
        role.name().replace(' ', "%20")
    );
    let req = if grant {
        http.put(&url)
    } else {
        http.delete(&url)
    };
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {origin}"))?;
    if !resp.status().is_success() {
        bail!(
            "{} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    println!(
        "{} {} {} client {client}",
        if grant { "granted" } else { "revoked" },
        role.name(),
        if grant { "to" } else { "from" }
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Samples { out }) => {
            let paths = dicomlab::dicom::samples::write_samples(&out)?;
            for p in paths {
                println!("{}", p.display());
            }
            Ok(())
        }
        Some(Command::Role { service, action }) => role(&service, action).await,
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(())
        }
    }
}
