//! `check`, `run` (do a step, then check it) and `answer` (a step's question).

use dicomlab_lab::model::CheckKind;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::{load, open_session, print_outcome, progress_store, warn_problems};
use crate::Cli;
use dicomlab_dicomweb::StoreMode;
use dicomlab_lab::Outcome;
use dicomlab_lab::engine::Session;

pub(crate) async fn check(
    cli: &Cli,
    step: Option<String>,
    json: bool,
) -> Result<std::process::ExitCode> {
    let l = load(cli)?;
    if let Some(s) = &step
        && l.lab.step(s).is_none()
    {
        bail!("no step '{s}' in {} (see `dicomlab steps`)", l.lab.title);
    }
    let session = open_session(&l).await?;
    let mut store = progress_store();
    let results = session.check_all(&l.lab, &mut store, step.as_deref()).await;
    store.save()?;
    let required_ok = results.iter().all(|(id, o)| {
        o.is_pass()
            || matches!(o, Outcome::NotSupported { .. })
            || l.lab.step(id).is_some_and(|s| s.optional)
    });
    if json {
        let items: Vec<_> = results
            .iter()
            .map(|(id, o)| serde_json::json!({"step": id, "outcome": o}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "lab": l.lab.id, "profile": l.profile_name, "target": session.client.base(), "steps": items, "ok": required_ok,
            }))?
        );
    } else {
        println!(
            "{} · profile {} · {}",
            l.lab.title,
            l.profile_name,
            session.client.base()
        );
        for (id, o) in &results {
            print_outcome(&l.lab, id, o, &session.placeholders(&l.lab));
        }
        let passed = results.iter().filter(|(_, o)| o.is_pass()).count();
        println!(
            "{passed}/{} done{}",
            results.len(),
            if required_ok {
                " — every required step is done"
            } else {
                ""
            }
        );
    }
    Ok(if required_ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

pub(crate) async fn run_step(
    cli: &Cli,
    step: &str,
    samples: Option<PathBuf>,
    multipart: bool,
) -> Result<std::process::ExitCode> {
    let l = load(cli)?;
    let Some(s) = l.lab.step(step) else {
        bail!("no step '{step}' in {} (see `dicomlab steps`)", l.lab.title)
    };
    // The exchanges of the action are the learner's, done in dicomlab: kept as evidence.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    warn_problems(&l);
    let session = Session::open(&l.profile, Some(&super::embedded_practice()), Some(tx)).await?;
    l.lab.practice.apply(session.practice.as_deref());
    let mode = if multipart {
        StoreMode::Multipart
    } else {
        StoreMode::Single
    };
    let mut store = progress_store();
    let subject = l.lab.step_of_kind(CheckKind::TagAdded).and_then(|t| {
        store
            .steps(&l.lab.id, &session.target_key)
            .get(&t.id)?
            .subject
            .clone()
    });
    match dicomlab_lab::actions::perform(
        &session,
        &l.lab,
        s,
        samples.as_deref(),
        mode,
        subject.as_deref(),
    )
    .await
    {
        Ok(done) => println!("did: {}", dicomlab_dicom::text::visible(&done)),
        Err(e) => println!(
            "could not do it: {}",
            dicomlab_dicom::text::visible(&e.to_string())
        ),
    }
    while let Ok(e) = rx.try_recv() {
        session.keep_exchange(&l.lab, &mut store, &e);
    }
    let outcome = session
        .check_step(&l.lab, &mut store, step)
        .await
        .context("step vanished")?;
    store.save()?;
    Ok(said(&l, &session, step, &outcome))
}

pub(crate) async fn answer(cli: &Cli, step: &str, value: &str) -> Result<std::process::ExitCode> {
    let l = load(cli)?;
    if l.lab.step(step).is_none() {
        bail!("no step '{step}' in {} (see `dicomlab steps`)", l.lab.title);
    }
    let session = open_session(&l).await?;
    let mut store = progress_store();
    let before = session.before(&l.lab, &store);
    let outcome = session.answer(&l.lab, &before, step, value).await;
    match outcome.evidence() {
        Some(e) => store.credit(&l.lab.id, &session.target_key, step, e.clone()),
        None => session.record(&l.lab, &mut store, step, &outcome),
    }
    store.save()?;
    Ok(said(&l, &session, step, &outcome))
}

/// Prints one step's outcome; the exit code says whether it passed.
fn said(l: &super::Loaded, session: &Session, step: &str, o: &Outcome) -> std::process::ExitCode {
    print_outcome(&l.lab, step, o, &session.placeholders(&l.lab));
    if o.is_pass() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
