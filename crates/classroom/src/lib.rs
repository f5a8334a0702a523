//! A classroom: one process that gives every learner of a room their own practice service (one HTTP
//! port, a path prefix each), the lab over SSH on that service, checks of each learner's steps from
//! their own service's records, and the instructor's live dashboard.
//!
//! - `start.rs`: a running [`Classroom`], its start-up and shutdown; `config.rs`: how to run one;
//!   `state.rs`: what every part shares ([`Core`]); `error.rs`: why something failed; `reset.rs`:
//!   resetting and removing learners; `stop.rs`: the stop signal every task waits on;
//! - `names.rs`: learner names; `gate.rs`: the class code and the growing wait after a wrong one;
//! - `folder.rs`: what is kept on disk (learners, services, progress, the host key, the log);
//! - `tenants.rs`: each learner's service in this process; `front.rs`: the HTTP front that routes
//!   `/l/{name}/…` to it and takes self-reports (`dicomlab join`); `rate.rs`: its per-address request
//!   rate;
//! - `verdicts.rs`: the classroom's own checks of each learner's service (activity-driven);
//! - `room.rs`: the room as the dashboard and `classroom status` show it; `dashboard.rs`: the
//!   instructor's TUI;
//! - `ssh.rs` (and `ssh/`): the SSH server that gives each learner a terminal program on their
//!   service (`channel.rs`: its input parser and bounded writer);
//!   `lab_tui.rs`: that program, the lab's TUI; `values.rs`: the learner's values (what Postman needs).

mod channel;
mod config;
pub mod dashboard;
mod error;
pub mod folder;
pub mod front;
mod gate;
pub mod lab_tui;
pub mod names;
mod rate;
mod reset;
pub mod room;
pub mod ssh;
mod start;
mod state;
mod stop;
mod tenants;
mod values;
mod verdicts;

pub use config::ClassroomConfig;
pub use error::ClassroomError;
pub use folder::{SELF_REPORTED_KEY, VERDICTS_KEY};
pub use reset::{Reset, remove_offline, reset_offline};
pub use room::LiveSession;
pub use start::Classroom;
pub use state::{Core, SshLogin};
pub use values::LearnerEnv;
