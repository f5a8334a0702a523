//! The store thread: a service's small stores — parts received in memory, of at most
//! [`IN_INDEX_MAX`](crate::blobs::IN_INDEX_MAX) bytes, whose bytes the index keeps — are validated and
//! committed by one thread of its own rather than on the blocking pool. Nothing there waits on a disk:
//! there is no file to write or sync. A store hands its part over and waits for its answer; the thread
//! takes every part waiting, validates each, and commits those that passed in one transaction (with
//! [`commit_answering`], as the group commit does).
//!
//! Why a thread: a tiny store's own work is a fraction of a millisecond, and on the blocking pool each
//! one woke a pool thread, then its runtime worker, and concurrent stores met again at the index lock:
//! the hand-offs cost as much as the work. With one thread the stores that arrive together are
//! validated one after another while the runtime's workers serve the next requests, and committed
//! together. The thread starts with the first small store and ends after [`IDLE`] without one (a
//! classroom runs a service per learner).
//!
//! A part the thread cannot take (it could not be started) is stored on the blocking pool as before.
//! A panic while a part is validated is that part's 272; a thread that panics elsewhere answers its
//! waiting stores 272, and the next small store starts another.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use super::commit::{commit_answering, unanswered};
use super::instance::{Job, Ready, outcome, processing_failure};
use super::outcome::Outcome;
use crate::SharedService;

/// The thread ends after this long without a store.
const IDLE: Duration = if cfg!(test) {
    Duration::from_millis(200)
} else {
    Duration::from_secs(10)
};
/// The most parts one round validates and commits.
const MAX_BATCH: usize = 64;

/// A part and where its answer goes.
struct Task {
    svc: SharedService,
    job: Job,
    answer: oneshot::Sender<(Outcome, bool)>,
}

/// The way to the service's store thread, while it runs.
#[derive(Default)]
pub(crate) struct Storer {
    slot: Arc<Mutex<Slot>>,
}

/// The running thread's sender, with the number it was started under.
#[derive(Default)]
struct Slot {
    running: Option<(u64, Sender<Task>)>,
    /// Threads started so far.
    started: u64,
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // Nothing under this lock can panic: a poisoned slot is still whole.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    /// Forgets thread `n`'s sender (a later store starts another thread), unless another runs now.
    fn forget(&mut self, n: u64) {
        if self.running.as_ref().is_some_and(|(m, _)| *m == n) {
            self.running = None;
        }
    }
}

impl Storer {
    /// Stores a small part on the store thread and answers its outcome; gives the part back when the
    /// thread cannot take it.
    pub(super) async fn store(
        &self,
        svc: &SharedService,
        job: Job,
    ) -> Result<(Outcome, bool), Job> {
        let (answer, answered) = oneshot::channel();
        let mut task = Task {
            svc: svc.clone(),
            job,
            answer,
        };
        // Twice: a thread that has just ended (its channel closed) is started again.
        for _ in 0..2 {
            let Some((n, sender)) = self.sender() else {
                break;
            };
            match sender.send(task) {
                Ok(()) => {
                    drop(sender);
                    // A thread that panicked drops the answer: the store failed for the service's reason.
                    return Ok(answered.await.unwrap_or_else(|_| processing_failure()));
                }
                Err(mpsc::SendError(t)) => {
                    task = t;
                    lock(&self.slot).forget(n);
                }
            }
        }
        Err(task.job)
    }

    /// The running thread's number and sender, starting the thread if none runs.
    fn sender(&self) -> Option<(u64, Sender<Task>)> {
        let mut slot = lock(&self.slot);
        if let Some((n, s)) = slot.running.as_ref() {
            return Some((*n, s.clone()));
        }
        let n = slot.started + 1;
        let (sender, tasks) = mpsc::channel();
        let ends = Ends {
            slot: self.slot.clone(),
            n,
        };
        let started = std::thread::Builder::new()
            .name("dicomlab-store".into())
            .spawn(move || run(&ends, tasks));
        match started {
            Ok(_) => {
                slot.started = n;
                slot.running = Some((n, sender.clone()));
                Some((n, sender))
            }
            Err(e) => {
                tracing::warn!(
                    "the store thread could not start ({e}); storing on the blocking pool"
                );
                None
            }
        }
    }
}

/// Held by a running thread: when it ends — idle, or unwinding from a panic — its sender leaves the
/// slot, and the next small store starts another thread.
struct Ends {
    slot: Arc<Mutex<Slot>>,
    n: u64,
}

impl Drop for Ends {
    fn drop(&mut self) {
        lock(&self.slot).forget(self.n);
    }
}

/// The thread: rounds of every task waiting, until none came for [`IDLE`]. Then no new store reaches
/// it (its sender leaves the slot), and it answers those that took the sender before, until the last
/// of them is answered and the channel closes.
fn run(ends: &Ends, tasks: mpsc::Receiver<Task>) {
    loop {
        match tasks.recv_timeout(IDLE) {
            Ok(first) => store_round(round(first, &tasks)),
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                lock(&ends.slot).forget(ends.n);
                while let Ok(first) = tasks.recv() {
                    store_round(round(first, &tasks));
                }
                return;
            }
        }
    }
}

/// `first` and every task waiting behind it, up to [`MAX_BATCH`].
fn round(first: Task, tasks: &mpsc::Receiver<Task>) -> Vec<Task> {
    let mut round = vec![first];
    while round.len() < MAX_BATCH {
        match tasks.try_recv() {
            Ok(t) => round.push(t),
            Err(_) => break,
        }
    }
    round
}

/// Validates each task's part, commits those that passed in one transaction, and answers each.
fn store_round(round: Vec<Task>) {
    let Some(svc) = round.first().map(|t| t.svc.clone()) else {
        return;
    };
    let eqts = match crate::eqt::active_tags(&svc) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("store failed: {e}");
            for t in round {
                let _ = t.answer.send(processing_failure());
            }
            return;
        }
    };
    // Each part is validated on its own: a panic is that part's failure, not its neighbours'.
    let mut rows = Vec::new();
    let mut waiting = Vec::new();
    for (ticket, task) in (0u64..).zip(round) {
        let ready = catch_unwind(AssertUnwindSafe(|| {
            let Ready {
                rec,
                stored,
                multi_valued,
            } = task.job.prepare(&eqts)?;
            match task.job.in_index_row(rec) {
                Ok(row) => Ok((row, stored, multi_valued)),
                Err(e) => {
                    tracing::error!("store failed: {e}");
                    Err(processing_failure())
                }
            }
        }));
        match ready {
            Ok(Ok((row, stored, multi_valued))) => {
                rows.push((ticket, row));
                waiting.push((ticket, task, stored, multi_valued));
            }
            Ok(Err(done)) => {
                let _ = task.answer.send(done);
            }
            Err(_) => {
                tracing::error!("a store's validation panicked");
                let _ = task.answer.send(processing_failure());
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    let mut answers = commit_answering(&svc, rows);
    for (ticket, task, stored, multi_valued) in waiting {
        let inserted = answers.remove(&ticket).unwrap_or_else(|| Err(unanswered()));
        // The index keeps the part: there is no file of it to remove, whatever the commit answered.
        task.job.keep();
        let _ = task.answer.send((outcome(inserted, stored), multi_valued));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiVersion;
    use crate::multipart::ReceivedPart;
    use crate::stow::outcome::reason;
    use dicomlab_dicom::reader;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn service() -> SharedService {
        crate::build(crate::ServiceConfig::default(), "http://127.0.0.1")
            .expect("service")
            .service
    }

    /// A small store of a tiny instance of study `1.2.3` as it reaches the store thread.
    fn job(svc: &SharedService, sop: &str) -> Job {
        let bytes = dicomlab_dicom::samples::tiny_instance("1.2.3", "1.2.3.4", sop, "Doe^Jo")
            .expect("instance");
        let scan =
            reader::scan(reader::Source::Bytes(&bytes), &reader::Limits::default()).expect("scan");
        let name = svc.blobs.new_name().expect("name");
        let part = ReceivedPart {
            path: svc.blobs.path(&name),
            name,
            size: bytes.len() as u64,
            bytes: Some(bytes),
            keep: false.into(),
            memory: None,
        };
        let v1 = ApiVersion {
            v2: false,
            segment: "v1",
        };
        Job::new(v1, None, "http://127.0.0.1/v1".into(), part, scan)
    }

    fn reason_of(o: &Outcome) -> Option<u16> {
        match o {
            Outcome::Stored { .. } => None,
            Outcome::Failed { reason, .. } => Some(*reason),
        }
    }

    /// Stores that reach the thread while it commits are validated one after another and committed in
    /// one transaction, each with its own answer: the instance already stored is 45070, one that fails
    /// validation is 43264, and neither takes anything from the others.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stores_arriving_together_are_committed_together_each_with_its_own_answer() {
        let svc = service();
        let commits = Arc::new(AtomicUsize::new(0));
        let counted = commits.clone();
        svc.db
            .lock()
            .expect("index")
            .commit_hook(Some(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                false
            }))
            .expect("commit hook");
        let sops = [
            "1.2.3.4.1",
            "1.2.3.4.2",
            "1.2.3.4.1",
            "1.2.3.4.x",
            "1.2.3.4.3",
        ];
        let held = svc.db.lock().expect("index");
        let (_, sender) = svc.storer.sender().expect("the store thread");
        let mut answers = Vec::new();
        for sop in sops {
            let (answer, answered) = oneshot::channel();
            let task = Task {
                svc: svc.clone(),
                job: job(&svc, sop),
                answer,
            };
            assert!(sender.send(task).is_ok());
            answers.push(answered);
        }
        // The first round waits for the index; whatever came after it goes in the next.
        drop(held);
        let mut reasons = Vec::new();
        for a in answers {
            reasons.push(reason_of(&a.await.expect("answered").0));
        }
        assert_eq!(
            reasons,
            [
                None,
                None,
                Some(reason::SOP_INSTANCE_ALREADY_EXISTS),
                Some(reason::VALIDATION_FAILED),
                None
            ]
        );
        let n = commits.load(Ordering::SeqCst);
        assert!((1..=2).contains(&n), "five stores in {n} commits");
        assert_eq!(crate::blobs::kept_in_index(&svc.db), 3);
    }

    /// The thread ends after a while without stores, and the next store starts another.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_thread_ends_when_idle_and_the_next_store_starts_another() {
        let svc = service();
        let stored =
            |o: Result<(Outcome, bool), Job>| matches!(o.map(|(o, _)| reason_of(&o)), Ok(None));
        assert!(stored(svc.storer.store(&svc, job(&svc, "1.2.3.4.1")).await));
        assert_eq!(lock(&svc.storer.slot).started, 1);
        let started = std::time::Instant::now();
        while lock(&svc.storer.slot).running.is_some() {
            assert!(started.elapsed() < Duration::from_secs(20), "never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(stored(svc.storer.store(&svc, job(&svc, "1.2.3.4.2")).await));
        assert_eq!(lock(&svc.storer.slot).started, 2, "a new thread");
    }

    /// A store that took the sender just before the thread went idle is still answered: the thread
    /// ends only once no store holds its sender.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_sent_as_the_thread_goes_idle_is_answered() {
        let svc = service();
        let (n, sender) = svc.storer.sender().expect("the store thread");
        // The thread goes idle with this sender still held (as a store between taking and sending).
        let started = std::time::Instant::now();
        while lock(&svc.storer.slot).running.is_some() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "never went idle"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (answer, answered) = oneshot::channel();
        let task = Task {
            svc: svc.clone(),
            job: job(&svc, "1.2.3.4.1"),
            answer,
        };
        assert!(sender.send(task).is_ok());
        drop(sender);
        let (o, _) = answered.await.expect("answered, not dropped");
        assert_eq!(reason_of(&o), None);
        assert_eq!(n, 1);
    }
}
