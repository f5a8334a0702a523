//! A step's question: its true answer, read from the service now, and how answers compare.

use super::{CheckContext, diagnose_error};
use crate::diagnose::diagnose_answer;
use crate::model::AnswerFrom;
use crate::request::RequestPattern;
use dicomlab_dicomweb::Retrieve;
use dicomlab_dicomweb::routes::DICOM_JSON;

/// The true answer of a step's question, read from the service now (by the checks' client).
pub(crate) async fn true_answer(
    ctx: &CheckContext<'_>,
    from: &AnswerFrom,
) -> Result<String, String> {
    let inst = |n: &str| {
        ctx.lab
            .dataset
            .instance(n)
            .ok_or_else(|| format!("the dataset has no instance '{n}'"))
    };
    let read = |e: dicomlab_dicomweb::ClientError| diagnose_error(&e);
    match from {
        AnswerFrom::Metadata {
            instance,
            attribute,
        } => {
            let i = inst(instance)?;
            let a = ctx.client.metadata(&i.reference()).await.map_err(read)?;
            if !a.ok() {
                return Err(diagnose_answer(ctx.place(), &a));
            }
            let attr = dicomlab_dicom::tags::resolve(attribute)
                .ok_or_else(|| format!("'{attribute}' is not a DICOM keyword"))?;
            let key = dicomlab_dicom::json::tag_key(attr.tag);
            let v = a
                .json()
                .and_then(|j| j.get(0)?.get(&key)?.get("Value").cloned())
                .ok_or_else(|| format!("the metadata has no {attribute}"))?;
            let values: Vec<String> = v
                .as_array()
                .map(|arr| {
                    arr.iter()
                        .map(|x| match x {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Object(o) => o
                                .get("Alphabetic")
                                .and_then(|a| a.as_str())
                                .unwrap_or_default()
                                .to_string(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(values.join("\\"))
        }
        AnswerFrom::ChangeFeed { instance, action } => {
            let i = inst(instance)?;
            let feed = ctx
                .records
                .feed
                .as_ref()
                .ok_or("this server has no change feed")?;
            feed.iter()
                .rfind(|e| e.sop == i.sop && e.action.eq_ignore_ascii_case(action))
                .map(|e| e.sequence.to_string())
                .ok_or_else(|| {
                    format!(
                        "the change feed has no {action} entry for the {}",
                        i.display()
                    )
                })
        }
        AnswerFrom::Frame { instance, frame } => {
            let i = inst(instance)?;
            let dir = ctx
                .scratch
                .join(format!("answer-{}", uuid::Uuid::new_v4().simple()));
            let (a, parts) = ctx
                .client
                .retrieve(&Retrieve::Frame(i.reference(), *frame), &dir)
                .await
                .map_err(read)?;
            let _ = tokio::fs::remove_dir_all(&dir).await;
            if !a.ok() {
                return Err(diagnose_answer(ctx.place(), &a));
            }
            parts
                .first()
                .map(|p| p.size.to_string())
                .ok_or_else(|| "the frame came back empty".to_string())
        }
        AnswerFrom::SearchCount { request } => {
            let filled = ctx.fill(request);
            let p = RequestPattern::parse(&filled)?;
            let mut path = p.segments.join("/");
            if !p.query.is_empty() {
                path.push('?');
                path.push_str(&serde_urlencoded::to_string(&p.query).unwrap_or_default());
            }
            let a = ctx.client.get(&path, DICOM_JSON).await.map_err(read)?;
            if !a.ok() && a.status != 204 {
                return Err(diagnose_answer(ctx.place(), &a));
            }
            Ok(a.results().len().to_string())
        }
    }
}

/// Answers compared as a learner would write them: without case, spaces, thousands separators or
/// DICOM padding.
pub(crate) fn same_answer(given: &str, truth: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .trim_end_matches('\0')
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ',' && *c != '_' && *c != '\'')
            .collect::<String>()
            .to_lowercase()
    };
    !norm(given).is_empty() && norm(given) == norm(truth)
}
