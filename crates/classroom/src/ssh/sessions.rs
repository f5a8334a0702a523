//! Who is connected over SSH: one session per learner (connecting again takes over the older one), a
//! limit on sessions at once, and a way to end a learner's session from outside ([`Kick`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

use crate::names::LearnerName;

/// Why a session is ended from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    /// The learner logged in again elsewhere.
    TakenOver,
    /// The instructor gave them a new personal code: whoever holds this session may not be them.
    Reset,
}

/// Who is connected: one session per learner, and how many in all.
#[derive(Default)]
pub(crate) struct Sessions {
    next_id: AtomicU64,
    live: Mutex<HashMap<LearnerName, (u64, oneshot::Sender<Kick>)>>,
}

impl Sessions {
    /// Registers a session for `name`, taking over an older one. `None` when the room is full.
    pub(super) fn open(
        &self,
        name: &LearnerName,
        max: usize,
    ) -> Option<(u64, oneshot::Receiver<Kick>)> {
        let mut live = self.live.lock().ok()?;
        if !live.contains_key(name) && live.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        if let Some((_, old)) = live.insert(name.clone(), (id, tx)) {
            let _ = old.send(Kick::TakenOver);
        }
        Some((id, rx))
    }

    /// Ends `name`'s session, if one is open (it says why, then closes). Whether one was.
    pub(crate) fn end(&self, name: &LearnerName, why: Kick) -> bool {
        let Ok(mut live) = self.live.lock() else {
            return false;
        };
        // The entry stays (with a sender nobody listens to) until the session closes itself: its
        // `close` then finds it, and the dashboard learns it is gone.
        match live.get_mut(name) {
            Some((_, tx)) => std::mem::replace(tx, oneshot::channel().0)
                .send(why)
                .is_ok(),
            None => false,
        }
    }

    /// Forgets session `id` of `name` (not a newer one that took over). Says whether it was there.
    pub(super) fn close(&self, name: &LearnerName, id: u64) -> bool {
        let Ok(mut live) = self.live.lock() else {
            return false;
        };
        if live.get(name).is_some_and(|(i, _)| *i == id) {
            live.remove(name);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_session_per_learner_and_a_limit() {
        let s = Sessions::default();
        let ada = LearnerName::exact("ada").expect("n");
        let bob = LearnerName::exact("bob").expect("n");
        let (first, mut kicked) = s.open(&ada, 1).expect("room");
        assert!(s.open(&bob, 1).is_none(), "full");
        let (second, _k) = s.open(&ada, 1).expect("a takeover needs no room");
        assert!(kicked.try_recv().is_ok(), "the old one is told");
        assert!(!s.close(&ada, first), "the old one does not close the new");
        assert!(s.close(&ada, second));
        assert!(s.open(&bob, 1).is_some());
    }
}
