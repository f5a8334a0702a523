//! What "do it" does for each step: the requests the lab asks of the learner, sent through the learner's
//! client, so they land in the service's records as the learner's (and in dicomlab's own, as done here).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::checks::accept_for;
use super::engine::Session;
use super::model::{Check, LEARNER_TAG, Lab, Step};
use super::request::{RequestPattern, RequestSpec};
use crate::targets::Role;
use dicomlab_dicomweb::{ClientError, StoreMode, get_ci};

/// Why an action could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write the samples: {0}")]
    Samples(#[from] dicomlab_dicom::samples::SampleError),
    #[error("{0}")]
    Manual(String),
}

/// The lab's instance files: from `dir` when given (the official download), else made into the
/// scratch folder — on the blocking pool, since that writes megabytes.
pub async fn sample_files(
    session: &Session,
    lab: &Lab,
    dir: Option<&Path>,
) -> Result<Vec<PathBuf>, ActionError> {
    let dataset = lab.dataset.clone();
    let dir = dir.map(Path::to_path_buf);
    let out = session.scratch.path().join("samples");
    tokio::task::spawn_blocking(move || dataset.files(dir.as_deref(), &out))
        .await
        .map_err(|e| ActionError::Manual(format!("the sample writer stopped: {e}")))?
        .map_err(ActionError::from)
}

/// Grants (or revokes) the learner's app DICOM Data Owner on the target (the embedded practice service
/// directly, a served one through its admin routes); on Azure it says where to click.
pub async fn set_role(session: &Session, grant: bool) -> Result<String, ActionError> {
    session
        .roles
        .set(Role::DataOwner, None, grant)
        .await
        .map_err(|e| ActionError::Manual(e.to_string()))
}

/// How adding an extended query tag went.
#[derive(Debug)]
pub enum TagAdd {
    /// The service did not start it (no 202): its answer.
    Refused(Box<dicomlab_dicomweb::Answer>),
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
    let a = c.add_tags(json!([tag])).await?;
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

/// The request of a lab pattern, sent as the learner would (with the Accept header the route needs).
pub async fn send_pattern(
    session: &Session,
    lab: &Lab,
    pattern: &str,
) -> Result<dicomlab_dicomweb::Answer, ActionError> {
    let filled = lab.dataset.fill(pattern);
    let p = RequestPattern::parse(&filled).map_err(ActionError::Manual)?;
    let mut path = p.segments.join("/");
    if !p.query.is_empty() {
        path.push('?');
        path.push_str(&serde_urlencoded::to_string(&p.query).unwrap_or_default());
    }
    let c = &session.client;
    Ok(match p.method.as_str() {
        "DELETE" => c.delete(&path).await?,
        // Read to its end, nothing kept: only the request's summary is shown (and a room of learners
        // would write every study it retrieves for nobody).
        "GET" if accept_for(&p).starts_with("multipart/") => {
            c.retrieve_counted(&path, accept_for(&p)).await?.0
        }
        "GET" => c.get(&path, accept_for(&p)).await?,
        other => {
            return Err(ActionError::Manual(format!(
                "dicomlab does not send {other} requests for you: the step's screen does"
            )));
        }
    })
}

/// Performs a step's action; returns what was done, in a sentence. `subject` is the learner's tag for
/// the tag steps (the one the add step credited).
pub async fn perform(
    session: &Session,
    lab: &Lab,
    step: &Step,
    samples: Option<&Path>,
    mode: StoreMode,
    subject: Option<&str>,
) -> Result<String, ActionError> {
    let c = &session.client;
    let suggested_tag = || {
        subject
            .map(str::to_string)
            .or_else(|| {
                lab.steps().find_map(|s| match &s.check {
                    Check::TagAdded { suggest } => suggest.clone(),
                    _ => None,
                })
            })
            .unwrap_or_else(|| "PatientSex".into())
    };
    Ok(match &step.check {
        Check::ServiceExists => {
            let a = c.get_anonymous("changefeed/latest").await?;
            format!("the service answered {}", a.status)
        }
        Check::Environment | Check::PostmanImport => {
            "nothing to send: the environment is your configuration (Environment screen)".into()
        }
        Check::Token => {
            let t = c.refresh_token().await?;
            format!("got a token, {} min left", t.remaining().as_secs() / 60)
        }
        Check::Role { .. } => set_role(session, true).await?,
        Check::Store { instances } => {
            store_instances(session, lab, samples, mode, instances).await?
        }
        Check::Requests {
            by: crate::model::By::User,
            ..
        } => {
            return Err(ActionError::Manual(
                "dicomlab calls the service as your app; this step wants your user, signed in through a browser app: run `dicomlab ohif`, open the lab study and sign in".into(),
            ));
        }
        Check::Requests { requests, .. } => {
            send_requests(session, lab, requests, suggested_tag).await?
        }
        Check::TagAdded { suggest } => add_suggested_tag(session, suggest.as_deref()).await?,
        Check::TagUsed { value } => {
            let tag = suggested_tag();
            let value = value.clone().unwrap_or_default();
            let a = c
                .search(
                    dicomlab_dicomweb::Level::Study,
                    None,
                    None,
                    &[(tag.as_str(), value.as_str())],
                )
                .await?;
            format!("{}: {} study(ies)", a.status, a.results().len())
        }
        Check::TagUpdated { query_status } => {
            let tag = suggested_tag();
            let status = if query_status.eq_ignore_ascii_case("disabled") {
                "Disabled"
            } else {
                "Enabled"
            };
            let a = c.update_tag(&tag, status).await?;
            format!("{}: QueryStatus {status}", a.status)
        }
        Check::TagDeleted => {
            let tag = suggested_tag();
            let a = c.delete_tag(&tag).await?;
            format!("{}: {tag} deleted", a.status)
        }
        Check::Deleted { level, instance } => {
            let Some(i) = lab.dataset.instance(instance) else {
                return Err(ActionError::Manual(format!(
                    "the dataset has no instance '{instance}'"
                )));
            };
            let a = c.delete_of(&i.at(*level)).await?;
            a.exchange.summary()
        }
    })
}

/// The store step: the sample files of the step's instances, stored.
async fn store_instances(
    session: &Session,
    lab: &Lab,
    samples: Option<&Path>,
    mode: StoreMode,
    instances: &[String],
) -> Result<String, ActionError> {
    let all = sample_files(session, lab, samples).await?;
    let files: Vec<PathBuf> = lab
        .dataset
        .instances
        .iter()
        .zip(all)
        .filter(|(i, _)| instances.contains(&i.name))
        .map(|(_, f)| f)
        .collect();
    let answers = session.client.store(&files, mode, None, 3, None).await?;
    let codes: Vec<String> = answers.iter().map(|a| a.status.to_string()).collect();
    Ok(format!(
        "stored {} file(s): {}",
        files.len(),
        codes.join(", ")
    ))
}

/// A requests step: the first alternative of each request, sent (`{tag}`: `tag()`).
async fn send_requests(
    session: &Session,
    lab: &Lab,
    requests: &[RequestSpec],
    tag: impl Fn() -> String,
) -> Result<String, ActionError> {
    let mut lines = Vec::new();
    for r in requests {
        let Some(first) = r
            .alternatives()
            .first()
            .map(|s| s.replace(LEARNER_TAG, &tag()))
        else {
            continue;
        };
        let a = send_pattern(session, lab, &first).await?;
        lines.push(a.exchange.summary());
    }
    Ok(format!(
        "sent {} request(s): {}",
        lines.len(),
        lines.join("; ")
    ))
}

/// The add-tag step: the lab's suggested tag (PatientSex without one), added at study level.
async fn add_suggested_tag(
    session: &Session,
    suggest: Option<&str>,
) -> Result<String, ActionError> {
    let tag = suggest.unwrap_or("PatientSex").to_string();
    let tag_json = json!({"Path": tag, "Level": "Study"});
    Ok(
        match add_tag(session, tag_json, Duration::from_secs(120), None).await? {
            TagAdd::Refused(a) => {
                format!("{}: {}", a.status, dicomlab_dicom::text::visible(&a.text()))
            }
            TagAdd::Ended { status } => {
                format!("added {tag}; its re-index operation is {status}")
            }
        },
    )
}
