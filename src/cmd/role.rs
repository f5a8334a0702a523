//! `role grant | revoke | list`: the practice service's "Access control (IAM)", through the target
//! layer's role administration.

use anyhow::{Result, bail};
use clap::Subcommand;

use dicomlab_lab::targets::Role;

#[derive(Subcommand, Debug, Clone)]
pub(crate) enum RoleAction {
    /// Assign a role ("DICOM Data Owner" by default) to a client (the lab client by default), or to
    /// a user of the practice tenant (`--user`: the learner).
    Grant {
        #[arg(default_value = "DICOM Data Owner")]
        role: String,
        #[arg(long)]
        client: Option<String>,
        /// A user (UPN, object id, or `learner`) instead of a client.
        #[arg(long, conflicts_with = "client", num_args = 0..=1, default_missing_value = "learner")]
        user: Option<String>,
    },
    /// Remove a role assignment.
    Revoke {
        #[arg(default_value = "DICOM Data Owner")]
        role: String,
        #[arg(long)]
        client: Option<String>,
        /// A user (UPN, object id, or `learner`) instead of a client.
        #[arg(long, conflicts_with = "client", num_args = 0..=1, default_missing_value = "learner")]
        user: Option<String>,
    },
    /// Show every client and its roles.
    List,
}

pub(crate) async fn role(service: &str, action: RoleAction) -> Result<()> {
    use dicomlab_lab::targets::RoleAdmin;
    let (role, client, grant) = match action {
        RoleAction::List => {
            let admin = RoleAdmin::http(service, None);
            for c in admin.list().await? {
                let lab = if c.lab_client {
                    " (lab client)".to_string()
                } else if c.user {
                    format!(" (user {})", c.name)
                } else {
                    String::new()
                };
                println!(
                    "{}{lab}: {}",
                    c.client_id,
                    if c.roles.is_empty() {
                        "no role".to_string()
                    } else {
                        c.roles.join(", ")
                    }
                );
            }
            return Ok(());
        }
        RoleAction::Grant { role, client, user } => (role, client.or(user), true),
        RoleAction::Revoke { role, client, user } => (role, client.or(user), false),
    };
    let Some(role) = Role::parse(&role) else {
        bail!(
            "unknown role '{role}': use \"DICOM Data Owner\" (owner), \"DICOM Data Reader\" (reader) or \"Log Analytics Reader\""
        );
    };
    let admin = RoleAdmin::http(service, client);
    println!("{}", admin.set(role, None, grant).await?);
    Ok(())
}
