//! dicomlab: a terminal companion for the hands-on lab "DICOM service". Every step is checked against the
//! service's own records. This crate holds the DICOMweb client, the lab engine, the practice service, the
//! DICOM helpers, the TUI and the classroom.

pub mod classroom;
pub mod commands;
pub mod config;
pub mod dicom;
pub mod dicomweb;
#[doc(hidden)]
pub mod fuzzing;
pub mod lab;
pub mod logfile;
pub mod multipart;
pub mod ohif;
pub mod postman;
pub mod practice;
pub mod target;
pub mod text;
pub mod tui;
