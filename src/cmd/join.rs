//! `join`: a learner on their own service (Azure's, or any) shows up on a classroom's dashboard. Their
//! steps are checked here first, as `dicomlab check` does, then their progress — each step's verdict,
//! evidence, times and last failure; never a secret, a token or a request — is sent to the classroom,
//! which marks it "self-reported".

use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{load, open_session, progress_store};
use crate::Cli;
use dicomlab::classroom::front::JoinReport;

/// The longest answer read from the classroom.
const MAX_ANSWER: usize = 4096;

pub(crate) async fn join(
    cli: &Cli,
    url: &str,
    code: &str,
    name: &str,
    every: Option<u64>,
) -> Result<std::process::ExitCode> {
    dicomlab::classroom::names::LearnerName::parse(name)
        .map_err(|e| anyhow::anyhow!("the name '{name}' cannot be used: {e}"))?;
    let endpoint = format!("{}/classroom/join", url.trim().trim_end_matches('/'));
    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
        bail!(
            "the classroom's URL starts with http:// or https:// (the instructor's dashboard shows it)"
        );
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    loop {
        let l = load(cli)?;
        let session = open_session(&l).await?;
        let mut store = progress_store();
        let out = session.check_all(&l.lab, &mut store, None).await;
        store.save()?;
        let done = out.iter().filter(|(_, o)| o.is_pass()).count();
        let report = JoinReport {
            code: code.to_string(),
            name: name.to_string(),
            lab: l.lab.id.clone(),
            target: format!("{:?}", session.kind).to_lowercase(),
            steps: store.steps(&l.lab.id, &session.target_key),
        };
        let answer = http
            .post(&endpoint)
            .json(&report)
            .send()
            .await
            .with_context(|| format!("cannot reach the classroom at {endpoint}"))?;
        let status = answer.status();
        let mut body = answer.bytes().await.unwrap_or_default().to_vec();
        body.truncate(MAX_ANSWER);
        let text = String::from_utf8_lossy(&body);
        let text = dicomlab::text::visible(text.trim());
        if !status.is_success() {
            bail!("the classroom said {}: {text}", status.as_u16());
        }
        println!("{done} of {} steps done · {text}", out.len());
        match every {
            Some(s) => tokio::time::sleep(Duration::from_secs(s.clamp(10, 3600))).await,
            None => return Ok(std::process::ExitCode::SUCCESS),
        }
    }
}
