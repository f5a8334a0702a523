//! DICOM helpers shared by the practice service, the client and the checks: the bounded Part 10 reader,
//! UID rules, VR validation, the DICOM JSON writer (fo-dicom's rules, docs/contract.md §3.4), attribute names,
//! the lab's sample files, multipart bodies, files streamed in chunks, the service's roles, and text
//! made safe for a terminal.

pub mod chunks;
/// Hostile DICOM files built byte by byte: test support, never in the release binary.
#[cfg(any(test, feature = "test-support"))]
pub mod hostile;
pub mod json;
mod level;
pub mod multipart;
pub mod reader;
pub mod role;
pub mod samples;
pub mod tags;
pub mod text;
pub mod uid;
pub mod vr;

pub use level::Level;
pub use uid::is_valid_uid;
