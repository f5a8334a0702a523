//! dicomlab: a terminal companion for the hands-on lab "DICOM service". Every step is checked against the
//! live service. This crate holds the practice service, the DICOM helpers, and (later) the client, the lab
//! engine and the TUI.

pub mod config;
pub mod dicom;
pub mod dicomweb;
#[doc(hidden)]
pub mod fuzzing;
pub mod lab;
pub mod multipart;
pub mod practice;
pub mod text;
pub mod tui;
