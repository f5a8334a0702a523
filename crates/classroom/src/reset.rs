//! Resetting a learner — a new personal code, or a self-reporter's token forgotten ([`Reset`]) — and
//! `classroom reset-code` / `classroom remove` on a classroom that is not running.

use crate::error::ClassroomError;
use crate::folder::{Folder, LearnerEntry, LearnerSource};
use crate::gate;
use crate::names::LearnerName;
use dicomlab_dicomweb::Secret;

/// What a reset gave a learner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reset {
    /// An SSH learner's new personal code (the old one no longer logs in).
    Code(Secret),
    /// A self-reporting learner's token is forgotten: their next report gets a new one.
    Token,
}

/// A new personal code for an SSH learner; a self-reporting learner's token forgotten.
pub(crate) fn reset_entry(e: &mut LearnerEntry) -> Reset {
    match e.source {
        LearnerSource::Service => {
            let code = Secret::new(gate::new_personal_code());
            e.code = Some(code.clone());
            Reset::Code(code)
        }
        LearnerSource::SelfReported => {
            e.token_sha256 = None;
            Reset::Token
        }
    }
}

/// `classroom reset-code`: resets a learner of a classroom that is not running (a running one is
/// reset from its dashboard: it holds `learners.json` in memory).
pub fn reset_offline(folder: &Folder, name: &LearnerName) -> Result<Reset, ClassroomError> {
    let _running = folder.lock_running()?;
    let mut learners = folder.learners()?;
    let Some(e) = learners.iter_mut().find(|e| &e.name == name) else {
        return Err(ClassroomError::NoLearner(name.clone()));
    };
    let reset = reset_entry(e);
    folder.save_learners(&learners)?;
    Ok(reset)
}

/// `classroom remove`: takes a learner out of a classroom that is not running — their entry, then
/// their folder (service, data, verdicts). The entry goes first: a folder left by an interrupted
/// removal belongs to nobody and is taken over by the next learner of that name, as new.
pub fn remove_offline(folder: &Folder, name: &LearnerName) -> Result<(), ClassroomError> {
    let _running = folder.lock_running()?;
    let mut learners = folder.learners()?;
    let before = learners.len();
    learners.retain(|e| &e.name != name);
    if learners.len() == before {
        return Err(ClassroomError::NoLearner(name.clone()));
    }
    folder.save_learners(&learners)?;
    folder.remove_learner_dir(name)?;
    Ok(())
}
