//! The practice service and the client, end to end: a real `dicomlab serve` (or one in-process),
//! the contract (docs/contract.md), hostile input, kill -9, ordinary clients (curl, Python, Postman),
//! the OHIF viewer, the fuzz corpus. One test binary for these (cargo links each binary once); the
//! helpers are `dicomlab-testkit`.

mod client_faults;
mod client_hostile;
mod conformance;
mod fuzz_corpus;
mod loopback;
mod ohif_browser;
mod ohif_serve;
mod ordinary_clients;
mod practice_acceptance;
mod practice_hardening;
mod practice_in_index;
mod practice_kill9;
mod practice_robustness;
mod practice_signin;
mod practice_walkthrough;
