//! The lab engine: the configuration ([`config`]) and what it opens ([`targets`]: the embedded
//! practice service through [`targets::embedded`], a served one, Azure, any DICOMweb server), the
//! lab as data ([`model`], `dataset.rs`, `request.rs`), the evidence a ✓ rests on ([`evidence`]:
//! the service's change feed and audit log, dicomlab's own exchanges, answers), the step checks
//! that read it ([`checks`], `diagnose.rs`), the session that runs them ([`engine`]), what "do it"
//! sends ([`actions`]), the learner's progress ([`progress`]) and the instructor's report
//! ([`report`]), and the workshop's Postman collection for the target ([`postman`]).

pub mod actions;
pub mod checks;
pub mod clock;
pub mod config;
mod dataset;
mod diagnose;
pub mod engine;
pub mod evidence;
pub mod model;
mod outcome;
pub mod postman;
pub mod progress;
pub mod report;
mod request;
pub mod targets;
pub mod watch;

pub use checks::{CheckContext, Outcome};
pub use model::{Check, Exercise, Lab, LabError, Step};
