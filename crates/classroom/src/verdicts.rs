//! The classroom's own checks: each learner's steps judged from their own service's records (change
//! feed, audit log, what the service holds) by the same lab engine the learner's TUI uses, through the
//! loopback front, and kept in the learner's `verdicts.json` — a file the learner never writes, so a
//! verdict on the dashboard cannot be edited by a learner.
//!
//! Checks run when a learner's service saw a request of theirs — once its audit rows are written, at
//! the latest `check_delay` after the first since their last check, so that a burst costs one check —
//! a few learners at a time; a room where nobody works costs nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, watch};

use crate::folder::VERDICTS_KEY;
use crate::names::LearnerName;
use crate::state::Core;
use crate::stop::stopped;
use dicomlab_lab::checks::Outcome;
use dicomlab_lab::engine::Session;
use dicomlab_lab::model::StepId;
use dicomlab_lab::progress::ProgressStore;

/// Learners checked at once.
const AT_ONCE: usize = 4;

/// What the room keeps of each learner it checked: their session (a token from their service) and
/// their verdicts' store, which the next check takes in again only when the learner's TUI saved
/// since (it reads the file only then).
#[derive(Default)]
pub(crate) struct Checkers {
    sessions: tokio::sync::Mutex<HashMap<LearnerName, Arc<Session>>>,
    /// Taken out while the learner's check runs (one at a time per learner), put back after.
    stores: std::sync::Mutex<HashMap<LearnerName, ProgressStore>>,
}

/// Runs the checks until `stop`.
pub(crate) async fn run(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let checkers: Arc<Checkers> = Arc::default();
    let gate = Arc::new(Semaphore::new(AT_ONCE));
    // Learners whose check runs now: touched meanwhile, they are checked again after.
    let running: Arc<std::sync::Mutex<std::collections::HashSet<LearnerName>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        // Each learner is checked once the records of their request are in (its audit rows come a
        // moment after it; at the latest `check_delay` after the first request since their last
        // check: a burst costs one check); a learner newly due wakes the loop to look again.
        let due = core.next_due();
        tokio::select! {
            () = stopped(&mut stop) => break,
            // Whatever woke the loop, the checks due now are taken (none, often): a busy room
            // cannot keep the due ones waiting behind its notifications.
            () = core.activity.notified() => {}
            () = until(due) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
        for name in core.take_due() {
            let busy = running
                .lock()
                .map(|mut r| !r.insert(name.clone()))
                .unwrap_or(true);
            if busy {
                // Checked again once the running check ends.
                core.requeue(&name);
                continue;
            }
            let core = core.clone();
            let checkers = checkers.clone();
            let gate = gate.clone();
            let running = running.clone();
            tasks.spawn(async move {
                let Ok(_permit) = gate.acquire().await else {
                    return;
                };
                check_learner(&core, &checkers, &name).await;
                if let Ok(mut r) = running.lock() {
                    r.remove(&name);
                }
                if core.is_dirty(&name) {
                    core.activity.notify_one();
                }
            });
        }
    }
    tasks.abort_all();
}

/// Sleeps until `due`; forever when there is none.
async fn until(due: Option<tokio::time::Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Checks one learner's steps against their service and keeps the verdicts; their TUI over SSH
/// is told when the check ends, whatever it found (it waits for the room's word after `c`).
pub(crate) async fn check_learner(core: &Core, checkers: &Checkers, name: &LearnerName) {
    check_and_keep(core, checkers, name).await;
    core.verdicts_changed(name);
}

async fn check_and_keep(core: &Core, checkers: &Checkers, name: &LearnerName) {
    let sessions = &checkers.sessions;
    let started = Instant::now();
    // The map is locked only to look and to insert: a learner's first check opens their session (a
    // token from their service) without holding up everyone else's — a room that starts together
    // would otherwise open its sessions one after another. (One check per learner runs at a time, so
    // no two open the same learner's session.)
    let known = sessions.lock().await.get(name).cloned();
    let session = match known {
        Some(x) => x,
        None => {
            let Some(env) = core.join_env(name).await else {
                return;
            };
            match Session::open(&env.profile(), None, None).await {
                Ok(x) => {
                    let x = Arc::new(x);
                    sessions.lock().await.insert(name.clone(), x.clone());
                    x
                }
                Err(e) => {
                    tracing::warn!(learner = %name, "cannot check: {e}");
                    return;
                }
            }
        }
    };
    let kept = checkers.stores.lock().ok().and_then(|mut s| s.remove(name));
    let path = core.folder.verdicts(name);
    let Ok(mut store) = tokio::task::spawn_blocking(move || match kept {
        // What the learner's TUI saved since (their exchanges, a reset) is taken in.
        Some(mut store) => {
            store.reload();
            store
        }
        None => ProgressStore::load(&path),
    })
    .await
    else {
        return;
    };
    let lab = &core.lab;
    let before = store.target(&lab.id, VERDICTS_KEY);
    let out = session.run_all(lab, &before, None).await;
    // The checks' own requests, kept for the next run (the logs of a service without a User-Agent).
    store.own(&lab.id, VERDICTS_KEY, session.ledger.take());
    for (id, o) in &out {
        store.record(&lab.id, VERDICTS_KEY, id, o);
    }
    let folder = core.folder.clone();
    let who = name.clone();
    // The files are read and written on the blocking pool: the runtime's threads draw the screens.
    let saved = tokio::task::spawn_blocking(move || {
        let mut last: BTreeMap<StepId, Outcome> = folder.last(&who);
        let changed = merge_last(&mut last, out);
        // Most checks find what the last one found: the file is rewritten only when a step's
        // outcome changed.
        let saved = store.save().map_err(|e| e.to_string()).and_then(|()| {
            if changed {
                folder.save_last(&who, &last).map_err(|e| e.to_string())
            } else {
                Ok(())
            }
        });
        (store, saved)
    })
    .await;
    if let Ok((store, saved)) = saved {
        if let Err(e) = saved {
            tracing::warn!(learner = %name, "cannot keep the verdicts: {e}");
        }
        if let Ok(mut s) = checkers.stores.lock() {
            s.insert(name.clone(), store);
        }
    }
    core.checks_run
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let took = started.elapsed();
    tracing::info!(learner = %name, ms = took.as_millis() as u64, "checked");
    core.changed();
}

/// Takes a check's outcomes into the learner's last ones (a step the target lacks keeps what it had);
/// whether any changed.
fn merge_last(last: &mut BTreeMap<StepId, Outcome>, out: Vec<(StepId, Outcome)>) -> bool {
    let mut changed = false;
    for (id, o) in out {
        if !matches!(o, Outcome::NotSupported { .. }) && last.get(&id) != Some(&o) {
            last.insert(id, o);
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_outcomes_change_only_when_a_step_does() {
        let ready = |d: &str| Outcome::Ready {
            detail: d.into(),
            tried: Vec::new(),
        };
        let mut last = BTreeMap::new();
        let first = vec![
            (StepId::new("a"), ready("x")),
            (StepId::new("b"), ready("y")),
        ];
        assert!(merge_last(&mut last, first.clone()));
        assert!(!merge_last(&mut last, first), "the same outcomes again");
        // A step the target lacks keeps what it had, and changes nothing.
        let unsupported = Outcome::NotSupported {
            reason: "no".into(),
        };
        assert!(!merge_last(
            &mut last,
            vec![(StepId::new("a"), unsupported)]
        ));
        assert_eq!(last.get(&StepId::new("a")), Some(&ready("x")));
        assert!(merge_last(&mut last, vec![(StepId::new("b"), ready("z"))]));
        assert_eq!(last.get(&StepId::new("b")), Some(&ready("z")));
    }
}
