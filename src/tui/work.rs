//! The screens' requests, run on tokio: each [`Work`] sends back [`Done`] messages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::app::Msg;
use super::screens::{Done, InstanceResult, Uids, What, Work, feed_row};
use crate::dicomweb::{Answer, ClientError, get_ci};
use crate::lab::actions::TagAdd;
use crate::lab::checks::diagnose_error;
use crate::lab::engine::Session;

/// Runs one piece of work. Profile saving is the runtime's (it re-opens the session).
pub async fn run(
    work: Work,
    session: &Session,
    lab: &crate::lab::model::Lab,
    samples: Option<PathBuf>,
    tx: &mpsc::UnboundedSender<Msg>,
) {
    let send = |d: Done| {
        let _ = tx.send(Msg::Done(d));
    };
    let c = &session.client;
    match work {
        Work::ListFiles(folder) => {
            let r = list_files(session, lab, folder.or(samples)).await;
            send(Done::Files(r));
        }
        Work::Store { files, mode } => {
            let (ptx, mut prx) = mpsc::unbounded_channel();
            let forward = {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Some(p) = prx.recv().await {
                        if tx.send(Msg::Done(Done::StoreProgress(p))).is_err() {
                            break;
                        }
                    }
                })
            };
            let r = c.store(&files, mode, None, 3, Some(ptx)).await;
            let _ = forward.await;
            let r = r.map_err(err).and_then(|answers| {
                // A refusal of the whole request (401, 403, 415…) has no per-instance results.
                match answers.iter().find(|a| !a.ok() && a.status != 409) {
                    Some(a) => Err(refused(session, a)),
                    None => Ok(read_stow(&answers)),
                }
            });
            send(Done::Stored(r));
        }
        Work::Search {
            level,
            scope,
            params,
        } => {
            let p: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let r = c
                .search(level, scope.study.as_deref(), scope.series.as_deref(), &p)
                .await
                .map_err(err)
                .and_then(|a| {
                    if a.ok() {
                        Ok((a.status, a.results()))
                    } else {
                        Err(refused(session, &a))
                    }
                });
            send(Done::Searched(r));
        }
        Work::Retrieve { what, uids } => {
            send(Done::Retrieved(retrieve(session, what, &uids).await));
        }
        Work::Feed {
            offset,
            limit,
            append,
        } => {
            let r = c
                .change_feed(offset, limit, false)
                .await
                .map_err(err)
                .and_then(|a| {
                    if a.ok() {
                        Ok(a.results().iter().map(feed_row).collect())
                    } else {
                        Err(refused(session, &a))
                    }
                });
            send(Done::Feed { result: r, append });
        }
        Work::FeedLatest => {
            let r = c.change_feed_latest().await.map_err(err).and_then(|a| {
                if a.ok() {
                    Ok(a.json().filter(|v| v.is_object()).map(|v| feed_row(&v)))
                } else {
                    Err(refused(session, &a))
                }
            });
            send(Done::Latest(r));
        }
        Work::TagsList => {
            let r = c
                .get("extendedquerytags", "application/json")
                .await
                .map_err(err)
                .and_then(|a| {
                    if a.ok() {
                        Ok(a.results())
                    } else {
                        Err(refused(session, &a))
                    }
                });
            send(Done::Tags(r));
        }
        Work::TagGet(path) => {
            let r = c
                .get(&format!("extendedquerytags/{path}"), "application/json")
                .await
                .map_err(err)
                .and_then(|a| match a.json() {
                    Some(v) if a.ok() => Ok(v),
                    _ => Err(refused(session, &a)),
                });
            send(Done::Tag(r));
        }
        Work::TagAdd { path, vr, level } => {
            let mut tag = json!({"Path": path, "Level": level});
            if !vr.is_empty() {
                tag["VR"] = json!(vr);
            }
            let r = add_tag(session, tag, &path, tx).await;
            send(Done::TagChanged(r));
        }
        Work::TagUpdate { path, query_status } => {
            let r = c
                .patch_json(
                    &format!("extendedquerytags/{path}"),
                    json!({"QueryStatus": query_status}),
                )
                .await
                .map_err(err)
                .and_then(|a| {
                    if a.ok() {
                        Ok(format!(
                            "{}: {path} QueryStatus is {query_status}",
                            a.status
                        ))
                    } else {
                        Err(refused(session, &a))
                    }
                });
            send(Done::TagChanged(r));
        }
        Work::TagDelete(path) => {
            let r = c
                .delete(&format!("extendedquerytags/{path}"))
                .await
                .map_err(err)
                .and_then(|a| {
                    if a.ok() {
                        Ok(format!("{}: {path} deleted", a.status))
                    } else {
                        Err(refused(session, &a))
                    }
                });
            send(Done::TagChanged(r));
        }
        Work::Role(grant) => {
            let r = crate::lab::actions::set_role(session, grant)
                .await
                .map_err(|e| e.to_string());
            send(Done::Role(r));
        }
        Work::ImportPostman { path, into } => {
            let r = tokio::task::spawn_blocking(move || {
                let mut p = *into;
                crate::config::import_postman(&path, &mut p)
                    .map(|names| (p, names))
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            send(Done::Imported(r));
        }
        Work::SaveProfile { .. } => {}
    }
}

/// A transport or token failure and its reading (once when the reading adds nothing).
fn err(e: ClientError) -> String {
    let said = e.to_string();
    let reading = diagnose_error(&e);
    if reading == said {
        said
    } else {
        format!("{said} — {reading}")
    }
}

/// A refusal in a line: what the service answered, read for the learner (the fix included).
fn refused(session: &Session, a: &Answer) -> String {
    session.diagnose(a)
}

/// The files of a folder (`.dcm`, sorted) or the generated samples, with their sizes.
async fn list_files(
    session: &Session,
    lab: &crate::lab::model::Lab,
    folder: Option<PathBuf>,
) -> Result<super::screens::Listing, String> {
    let files = match &folder {
        Some(dir) => {
            let mut rd = tokio::fs::read_dir(dir)
                .await
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            let mut out = Vec::new();
            while let Ok(Some(entry)) = rd.next_entry().await {
                let p = entry.path();
                let is_dcm = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("dcm"));
                if is_dcm && entry.file_type().await.is_ok_and(|t| t.is_file()) {
                    out.push(p);
                }
            }
            out.sort();
            out
        }
        None => crate::lab::actions::sample_files(session, lab, None)
            .await
            .map_err(|e| e.to_string())?,
    };
    let mut sized = Vec::new();
    for f in files {
        let size = tokio::fs::metadata(&f).await.map(|m| m.len()).unwrap_or(0);
        sized.push((f, size));
    }
    Ok((folder, sized))
}

/// Statuses and per-instance results of STOW answers (ReferencedSOPSequence, FailedSOPSequence).
pub fn read_stow(answers: &[Answer]) -> (Vec<u16>, Vec<InstanceResult>) {
    let mut out = Vec::new();
    for a in answers {
        let Some(v) = a.json() else { continue };
        for (seq, stored, reason) in [
            ("00081199", true, "00081196"),
            ("00081198", false, "00081197"),
        ] {
            let items = v
                .get(seq)
                .and_then(|s| s.get("Value"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for item in items {
                let uid = item
                    .get("00081155")
                    .and_then(|e| e.get("Value"))
                    .and_then(|v| v.get(0))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                let code = item
                    .get(reason)
                    .and_then(|e| e.get("Value"))
                    .and_then(|v| v.get(0))
                    .and_then(Value::as_u64);
                out.push(InstanceResult {
                    sop_uid: uid,
                    stored,
                    code,
                });
            }
        }
    }
    (answers.iter().map(|a| a.status).collect(), out)
}

async fn retrieve(
    session: &Session,
    what: What,
    uids: &Uids,
) -> Result<(String, Option<Vec<Value>>), String> {
    let c = &session.client;
    let study = format!("studies/{}", uids.study);
    let series = format!("{study}/series/{}", uids.series);
    let inst = format!("{series}/instances/{}", uids.instance);
    let any = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";
    let (path, accept) = match what {
        What::Study => (study.clone(), any),
        What::Series => (series, any),
        What::Instance => (inst, "application/dicom; transfer-syntax=*"),
        What::Metadata => (format!("{study}/metadata"), "application/dicom+json"),
        What::Frame => (
            format!("{inst}/frames/1"),
            "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
        ),
        What::Rendered => (format!("{inst}/rendered"), "image/png"),
    };
    if what == What::Metadata {
        let a = c.get(&path, accept).await.map_err(err)?;
        if !a.ok() {
            return Err(refused(session, &a));
        }
        let all = a.results();
        return Ok((
            format!(
                "{}: metadata of {} instance(s), {} bytes",
                a.status,
                all.len(),
                a.body.len()
            ),
            Some(all),
        ));
    }
    let dir = session
        .scratch
        .path()
        .join("retrieved")
        .join(what.label().replace(' ', "-"));
    let (a, saved) = c.retrieve_to_dir(&path, accept, &dir).await.map_err(err)?;
    if !a.ok() {
        return Err(refused(session, &a));
    }
    let bytes: u64 = saved.iter().map(|p| p.size).sum();
    Ok((
        format!(
            "{}: {} file(s), {} saved in {}",
            a.status,
            saved.len(),
            human(bytes),
            display(&dir)
        ),
        None,
    ))
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// Bytes for people.
pub fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Adds a tag and follows its re-index operation, each poll shown as the screen's progress bar.
async fn add_tag(
    session: &Session,
    tag: Value,
    path: &str,
    tx: &mpsc::UnboundedSender<Msg>,
) -> Result<String, String> {
    let (ptx, mut prx) = mpsc::unbounded_channel::<Value>();
    let forward = {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(v) = prx.recv().await {
                let id = get_ci(&v, "operationId")
                    .or_else(|| get_ci(&v, "id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let status = get_ci(&v, "status")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                let percent = get_ci(&v, "percentComplete").and_then(Value::as_u64);
                let _ = tx.send(Msg::Done(Done::Operation {
                    id,
                    status,
                    percent,
                }));
            }
        })
    };
    let limit = Duration::from_secs(300);
    let added = crate::lab::actions::add_tag(session, tag, limit, Some(&ptx)).await;
    drop(ptx);
    let _ = forward.await;
    match added.map_err(|e| e.to_string())? {
        TagAdd::Refused(a) => Err(refused(session, &a)),
        TagAdd::Ended { status } => match status.to_ascii_lowercase().as_str() {
            "completed" | "succeeded" => {
                Ok(format!("added {path}; its re-index operation {status}"))
            }
            "running" | "notstarted" => {
                Err(format!("the re-index of {path} still runs after 5 minutes"))
            }
            _ => Err(format!("the re-index operation of {path} ended {status}")),
        },
    }
}
