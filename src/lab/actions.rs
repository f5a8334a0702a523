//! What "do it" does for each kind of step: the same requests a learner would send, through the client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::engine::Session;
use super::model::Check;
use crate::dicom::samples::{RED_UID, SAMPLES, SERIES1_UID, STUDY_UID};
use crate::dicomweb::{ClientError, Level, StoreMode, get_ci};
use crate::practice::auth::Role;

/// Why an action could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write the samples: {0}")]
    Samples(#[from] crate::dicom::samples::SampleError),
    #[error("{0}")]
    Manual(String),
}

/// The sample files: from `dir` when given (the official download), else generated into the scratch
/// folder — on the blocking pool, since that writes three 2.9 MB files.
pub async fn sample_files(
    session: &Session,
    dir: Option<&Path>,
) -> Result<Vec<PathBuf>, ActionError> {
    let d = match dir {
        Some(d) => return Ok(SAMPLES.iter().map(|s| d.join(s.file_name)).collect()),
        None => session.scratch.path().join("samples"),
    };
    if !d.join(SAMPLES[2].file_name).exists() {
        let target = d.clone();
        tokio::task::spawn_blocking(move || crate::dicom::samples::write_samples(&target))
            .await
            .map_err(|e| ActionError::Manual(format!("the sample writer stopped: {e}")))??;
    }
    Ok(SAMPLES.iter().map(|s| d.join(s.file_name)).collect())
}

/// Grants (or revokes) the lab client's DICOM Data Owner role on a practice service: the embedded one
/// directly, one of `dicomlab serve` through its loopback admin route. Elsewhere it says where to do it.
pub async fn set_role(session: &Session, grant: bool) -> Result<String, ActionError> {
    let c = &session.client;
    let done = |client_id: &str| {
        if grant {
            format!("granted DICOM Data Owner to client {client_id}")
        } else {
            format!("revoked DICOM Data Owner from client {client_id}")
        }
    };
    match &session.practice {
        Some(p) => {
            p.set_lab_role(Role::DataOwner, grant)
                .map_err(|e| ActionError::Manual(e.to_string()))?;
            Ok(done(&p.client_id))
        }
        None if session.kind == super::checks::TargetKind::Practice => {
            let client_id = match c.auth() {
                crate::dicomweb::AuthConfig::Azure { client_id, .. } => client_id.clone(),
                _ => return Err(ActionError::Manual("this profile has no client id".into())),
            };
            let origin = c.base().rsplit_once('/').map_or(c.base(), |(o, _)| o);
            let url = format!("{origin}/admin/roles/{client_id}/DICOM%20Data%20Owner");
            let a = if grant {
                c.put_anonymous(&url).await?
            } else {
                c.delete_anonymous(&url).await?
            };
            if !a.ok() {
                return Err(ActionError::Manual(format!(
                    "the practice service answered {}: {}",
                    a.status,
                    a.text()
                )));
            }
            Ok(done(&client_id))
        }
        None => Err(ActionError::Manual(
            "assign the role in the Azure portal: DICOM service → Access control (IAM) → Add role assignment → DICOM Data Owner".into(),
        )),
    }
}

/// How adding an extended query tag went.
#[derive(Debug)]
pub enum TagAdd {
    /// The service did not start it (no 202): its answer.
    Refused(Box<crate::dicomweb::Answer>),
    /// The re-index operation stopped running, or `limit` passed while it still ran (`running`).
    Ended { status: String },
}

/// Adds an extended query tag (`tag` as the service takes it: Path, VR, Level) and follows its
/// re-index operation for up to `limit`; each poll's JSON goes to `progress`.
pub async fn add_tag(
    session: &Session,
    tag: serde_json::Value,
    limit: Duration,
    progress: Option<&tokio::sync::mpsc::UnboundedSender<serde_json::Value>>,
) -> Result<TagAdd, ActionError> {
    let c = &session.client;
    let a = c.post_json("extendedquerytags", json!([tag])).await?;
    if a.status != 202 {
        return Ok(TagAdd::Refused(Box::new(a)));
    }
    let text = |v: &serde_json::Value, k: &str| {
        get_ci(v, k)
            .and_then(|s| s.as_str())
            .map(str::to_string)
            .unwrap_or_default()
    };
    let href = a.json().map(|v| text(&v, "href")).unwrap_or_default();
    let op = c.poll_operation(&href, limit, progress).await?;
    let status = op.json().map(|v| text(&v, "status")).unwrap_or_default();
    Ok(TagAdd::Ended { status })
}

/// Performs a step's action; returns what was done, in a sentence.
pub async fn perform(
    session: &Session,
    check: &Check,
    samples: Option<&Path>,
    mode: StoreMode,
) -> Result<String, ActionError> {
    let c = &session.client;
    let inst = format!("studies/{STUDY_UID}/series/{SERIES1_UID}/instances/{RED_UID}");
    Ok(match check {
        Check::ServiceExists => {
            let a = c.get_anonymous("changefeed/latest").await?;
            format!("the service answered {}", a.status)
        }
        Check::Environment => "nothing to send: the environment is the configuration".into(),
        Check::Token => {
            let t = c.refresh_token().await?;
            format!("got a token, {} min left", t.remaining().as_secs() / 60)
        }
        Check::Role => set_role(session, true).await?,
        Check::Store => {
            let files = sample_files(session, samples).await?;
            let answers = c.store(&files, mode, None, 3, None).await?;
            let codes: Vec<String> = answers.iter().map(|a| a.status.to_string()).collect();
            format!("stored {} file(s): {}", files.len(), codes.join(", "))
        }
        Check::Search => {
            let a = c
                .search(
                    Level::Studies,
                    None,
                    None,
                    &[("StudyInstanceUID", STUDY_UID)],
                )
                .await?;
            let b = c
                .search(Level::Instances, Some(STUDY_UID), None, &[])
                .await?;
            format!(
                "{} study, {} instances found",
                a.results().len(),
                b.results().len()
            )
        }
        Check::Retrieve => {
            let dir = session.scratch.path().join("retrieved");
            let (a, files) = c
                .retrieve_to_dir(
                    &format!("studies/{STUDY_UID}"),
                    "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
                    &dir,
                )
                .await?;
            format!(
                "{}: {} file(s) saved in {}",
                a.status,
                files.len(),
                dir.display()
            )
        }
        Check::ChangeFeed => {
            let a = c.change_feed(0, 100, false).await?;
            format!(
                "{}: {} entries",
                a.status,
                a.json()
                    .and_then(|v| v.as_array().map(Vec::len))
                    .unwrap_or(0)
            )
        }
        Check::TagAdded { tag } => {
            let tag_json = json!({"Path": tag, "Level": "Study"});
            match add_tag(session, tag_json, Duration::from_secs(120), None).await? {
                TagAdd::Refused(a) => format!("{}: {}", a.status, a.text()),
                TagAdd::Ended { status } => {
                    format!("added {tag}; its re-index operation is {status}")
                }
            }
        }
        Check::TagUsed { tag, value } => {
            let a = c
                .search(
                    Level::Studies,
                    None,
                    None,
                    &[(tag.as_str(), value.as_str())],
                )
                .await?;
            format!("{}: {} study(ies)", a.status, a.results().len())
        }
        Check::TagUpdated { tag, query_status } => {
            let status = if query_status.eq_ignore_ascii_case("disabled") {
                "Disabled"
            } else {
                "Enabled"
            };
            let a = c
                .patch_json(
                    &format!("extendedquerytags/{tag}"),
                    json!({"QueryStatus": status}),
                )
                .await?;
            format!("{}: QueryStatus {status}", a.status)
        }
        Check::TagDeleted { tag } => {
            let a = c.delete(&format!("extendedquerytags/{tag}")).await?;
            format!("{}: {tag} deleted", a.status)
        }
        Check::Viewer => {
            let a = c.get(&format!("{inst}/rendered"), "image/png").await?;
            let path = session.scratch.path().join("red-triangle.png");
            tokio::fs::write(&path, &a.body).await?;
            format!("{}: saved {}", a.status, path.display())
        }
        Check::Deleted { level } => {
            let path = match level.as_str() {
                "instance" => inst,
                "series" => format!("studies/{STUDY_UID}/series/{SERIES1_UID}"),
                _ => format!("studies/{STUDY_UID}"),
            };
            let a = c.delete(&path).await?;
            format!("{}: DELETE {path}", a.status)
        }
    })
}
