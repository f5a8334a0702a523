//! `join`: a learner on their own service (Azure's, or any) shows up on a classroom's dashboard. Their
//! steps are checked here first, as `dicomlab check` does, then their progress — each step's verdict,
//! evidence, times and last failure; never a secret, a token or a request — is sent to the classroom,
//! which marks it "self-reported". The classroom's answer to a name's first report carries a token
//! that every later report of that name must carry: it is kept in the config dir
//! (`classroom-tokens.json`, 0600), per classroom URL and name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{load, open_session, progress_store};
use crate::Cli;
use dicomlab_classroom::front::JoinReport;

/// The longest answer read from the classroom.
const MAX_ANSWER: usize = 4096;

/// Where the tokens are kept.
fn tokens_file() -> Option<PathBuf> {
    dicomlab_lab::config::config_dir().map(|d| d.join("classroom-tokens.json"))
}

/// The largest tokens file read (a few hundred bytes per classroom and name).
const MAX_TOKENS_FILE: u64 = 1024 * 1024;
/// Times a report is sent again when the classroom says to wait (429 with a short `Retry-After`).
const RETRIES: usize = 3;
/// The longest `Retry-After` waited for.
const MAX_RETRY_AFTER: u64 = 60;

fn read_tokens(path: &Path) -> BTreeMap<String, String> {
    use std::io::Read;
    let mut b = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TOKENS_FILE).read_to_end(&mut b))
        .is_ok();
    read.then(|| serde_json::from_slice(&b).ok())
        .flatten()
        .unwrap_or_default()
}

/// Sends the report; when the classroom says to wait a little (429 — a classmate behind the same
/// address typed a wrong code a moment ago, say), waits as told and sends it again.
async fn send(
    http: &reqwest::Client,
    endpoint: &str,
    report: &JoinReport,
) -> Result<reqwest::Response> {
    let mut tries = 0;
    loop {
        let answer = http
            .post(endpoint)
            .json(report)
            .send()
            .await
            .with_context(|| format!("cannot reach the classroom at {endpoint}"))?;
        let wait = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s <= MAX_RETRY_AFTER);
        match wait {
            Some(s) if answer.status() == 429 && tries < RETRIES => {
                tries += 1;
                eprintln!("The classroom asks to wait {s} s; sending again then.");
                tokio::time::sleep(Duration::from_secs(s.max(1))).await;
            }
            _ => return Ok(answer),
        }
    }
}

/// The answer's text, at most [`MAX_ANSWER`] bytes of it read (whatever the classroom sends).
async fn bounded_text(mut answer: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ANSWER {
        match answer.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c[..c.len().min(MAX_ANSWER - body.len())]),
            _ => break,
        }
    }
    body
}

/// Keeps `token` for `key` (the classroom's endpoint and the name), 0600.
fn keep_token(path: &Path, key: &str, token: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    }
    let mut all = read_tokens(path);
    all.insert(key.to_string(), token.to_string());
    dicomlab_classroom::folder::write_json(path, &all)?;
    Ok(())
}

pub(crate) async fn join(
    cli: &Cli,
    url: &str,
    code: &str,
    name: &str,
    every: Option<u64>,
) -> Result<std::process::ExitCode> {
    let learner = dicomlab_classroom::names::LearnerName::parse(name)
        .map_err(|e| anyhow::anyhow!("the name '{name}' cannot be used: {e}"))?;
    let endpoint = format!("{}/classroom/join", url.trim().trim_end_matches('/'));
    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
        bail!(
            "the classroom's URL starts with http:// or https:// (the instructor's dashboard shows it)"
        );
    }
    let tokens = tokens_file();
    let key = format!("{endpoint} {learner}");
    let http = dicomlab_dicomweb::tls::client_builder([endpoint.as_str()])
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
            token: tokens.as_deref().and_then(|p| read_tokens(p).remove(&key)),
        };
        let answer = send(&http, &endpoint, &report).await?;
        let status = answer.status();
        let issued = answer
            .headers()
            .get(dicomlab_classroom::front::TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(token) = issued.filter(|_| status.is_success()) {
            match &tokens {
                Some(p) => keep_token(p, &key, &token)?,
                None => eprintln!(
                    "No config dir on this system: the classroom's token for {learner} is not kept, so the next report is refused."
                ),
            }
        }
        let body = bounded_text(answer).await;
        let text = String::from_utf8_lossy(&body);
        let text = dicomlab_dicom::text::visible(text.trim());
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
