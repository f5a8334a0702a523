//! The lab where its parts meet: sessions against the practice service, a served one and Orthanc,
//! the checks' diagnoses, the classroom (service, SSH, the dashboard end to end), the command line, and
//! the crate graph. One test binary for these (cargo links each binary once); the helpers are
//! `dicomlab-testkit`.

mod classroom_e2e;
mod classroom_limits;
mod classroom_self_report;
mod classroom_service;
mod classroom_ssh;
mod cli;
mod lab_diagnoses;
mod lab_orthanc;
mod lab_practice;
mod lab_second;
mod layout;
