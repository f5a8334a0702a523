//! DICOM helpers shared by the practice service, the client and the checks: UID rules, VR validation,
//! the DICOM JSON writer (fo-dicom's rules, contract §3.4), attribute names, and the lab's sample files.

pub mod hostile;
pub mod json;
pub mod reader;
pub mod samples;
pub mod tags;
pub mod uid;
pub mod vr;

pub use uid::is_valid_uid;
