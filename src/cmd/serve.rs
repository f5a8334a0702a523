//! `serve`: the practice service in the foreground, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use dicomlab_lab::targets::Role;
use dicomlab_practice::ServiceConfig;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ServeArgs {
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
    #[arg(long, default_value_t = 2.0, value_parser = super::non_negative)]
    reindex_seconds: f64,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, default_value_t = 3599)]
    token_seconds: u64,
    /// Hold audit-log records back this many seconds, the way Azure delivers them minutes late.
    #[arg(long, default_value_t = 0)]
    audit_delay: u64,
    /// Logs without the practice service's extra UserAgent column, as Azure's (dicomlab then tells
    /// its checks' own requests apart by the ledger it keeps, as on Azure).
    #[arg(long)]
    audit_without_user_agent: bool,
    /// Connections served at once; one more is answered 503.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Seconds a request head (and an idle keep-alive connection) may take.
    #[arg(long, default_value_t = 15.0, value_parser = super::positive)]
    header_timeout: f64,
    /// Seconds a request body may send nothing before it is dropped (408).
    #[arg(long, default_value_t = 30.0, value_parser = super::positive)]
    body_timeout: f64,
    /// Seconds a response may wait for the client to read it.
    #[arg(long, default_value_t = 60.0, value_parser = super::positive)]
    write_timeout: f64,
    /// Seconds requests in flight get to finish after Ctrl-C or SIGTERM.
    #[arg(long, default_value_t = 5.0, value_parser = super::positive)]
    shutdown_grace: f64,
    /// MiB that uploads kept in memory and validations may hold at once.
    #[arg(long, default_value_t = 256)]
    memory_mib: u64,
    #[command(flatten)]
    cors: crate::cmd::cors::ServeCorsFlags,
}

fn default_data_dir() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "dicomlab")
        .context("no home directory to keep data in")?;
    Ok(dirs.data_dir().join("practice"))
}

/// `lab_roles`: what the lab (`--lab FILE`) says the practice service starts with.
pub(crate) async fn serve(args: ServeArgs, lab_roles: Vec<Role>) -> Result<()> {
    // Validations parse headers of many megabytes on several threads: without the tunables glibc keeps
    // each thread's freed blocks resident, and the memory budget would bound what is live but not what
    // the process holds. (exec keeps the PID; nothing has been printed yet.)
    #[cfg(target_os = "linux")]
    super::tui::tune_allocator(super::tui::MMAP_THRESHOLD);
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
        audit_delay: Duration::from_secs(args.audit_delay.min(24 * 3600)),
        audit_user_agent: !args.audit_without_user_agent,
        memory_budget: args.memory_mib.clamp(16, 1 << 20) * 1024 * 1024,
        limits: dicomlab_practice::server::ConnectionLimits {
            max_connections: args.max_connections.max(1),
            header_timeout: seconds(args.header_timeout),
            body_timeout: seconds(args.body_timeout),
            write_timeout: seconds(args.write_timeout),
            shutdown_grace: seconds(args.shutdown_grace),
            max_per_client: None,
        },
        cors: args.cors.config(),
        lab_roles,
        ..ServiceConfig::default()
    };
    let running = dicomlab_practice::start(config).await?;
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
        println!(
            "  audit log            {}/loganalytics/v1/workspaces/{}/query (workspace {}; token resource https://api.loganalytics.io)",
            running.origin,
            running.workspace_id(),
            running.workspace_id()
        );
        let roles = running.service().auth.roles_of(&running.client_id);
        let names: Vec<_> = roles.iter().map(|r| r.name()).collect();
        if !roles
            .iter()
            .any(|r| matches!(r, Role::DataOwner | Role::DataReader))
        {
            println!(
                "  roles                {}no DICOM role yet: grant with `dicomlab role grant --service {}`",
                if names.is_empty() {
                    String::new()
                } else {
                    format!("{}; ", names.join(", "))
                },
                running.origin
            );
        } else {
            println!("  roles                {}", names.join(", "));
        }
    }
    for line in serve_lines(&running, args.no_auth) {
        println!("{line}");
    }
    println!("Press Ctrl-C to stop.");
    super::stop_signal().await?;
    // Requests in flight get the grace period; then whatever is left is dropped.
    running.shutdown().await;
    Ok(())
}

/// A duration in seconds from the command line (at least 0.1 s, at most a day).
fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.1, 86_400.0))
}

/// What `dicomlab serve` prints about the sign-in and CORS, below the environment.
fn serve_lines(running: &dicomlab_practice::RunningService, no_auth: bool) -> Vec<String> {
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
