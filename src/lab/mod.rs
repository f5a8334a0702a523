//! The lab engine: the lab as data ([`model`], [`dataset`], [`request`]), the evidence a ✓ rests on
//! ([`evidence`]: the service's change feed and audit log, dicomlab's own exchanges, answers), the step
//! checks that read it ([`checks`], [`diagnose`]), the session that runs them ([`engine`]), what "do
//! it" sends ([`actions`]), the learner's progress ([`progress`]) and the instructor's report
//! ([`report`]).

pub mod actions;
pub mod checks;
pub mod clock;
pub mod dataset;
pub mod diagnose;
pub mod engine;
pub mod evidence;
pub mod model;
pub mod progress;
pub mod report;
pub mod request;
pub mod watch;

pub use checks::{CheckContext, Outcome};
pub use model::{Check, Exercise, Lab, LabError, Step};
