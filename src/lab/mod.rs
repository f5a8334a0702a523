//! The lab engine: the lab as data ([`model`]), the step checks ([`checks`]) that read the service's state,
//! and the learner's progress ([`progress`]).

pub mod actions;
pub mod checks;
pub mod engine;
pub mod model;
pub mod progress;

pub use checks::{CheckContext, Outcome};
pub use model::{Check, Exercise, Lab, LabError, Step};
