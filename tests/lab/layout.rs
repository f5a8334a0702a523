//! The crate graph the design draws (ARCHITECTURE.md), read from each crate's manifest: which parts
//! may use which, and that the lab and the TUI build without the practice service's stack (axum,
//! SQLite, the SSH server). The compiler keeps the boundary; this keeps the manifests from moving it.

use std::collections::BTreeSet;
use std::path::Path;

/// Each crate and the dicomlab crates it may depend on.
const ALLOWED: &[(&str, &[&str])] = &[
    ("dicom", &[]),
    ("dicomweb", &["dicom"]),
    ("practice", &["dicom"]),
    ("lab", &["dicom", "dicomweb"]),
    ("embedded", &["dicom", "dicomweb", "lab", "practice"]),
    ("tui", &["dicom", "dicomweb", "lab"]),
    (
        "classroom",
        &["dicom", "dicomweb", "lab", "practice", "tui"],
    ),
    ("ohif", &["dicom", "practice"]),
];

/// The server stack the lab and the TUI never link.
const SERVER_STACK: &[&str] = &["axum", "rusqlite", "hyper", "russh", "jsonwebtoken"];

/// Every dependency a manifest names (normal, dev and build).
fn deps_of(crate_dir: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates")
        .join(crate_dir)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("manifest");
    let manifest: toml::Table = text.parse().expect("a TOML manifest");
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|k| manifest.get(*k).and_then(toml::Value::as_table))
        .flat_map(|t| t.keys().cloned())
        .collect()
}

#[test]
fn every_crate_uses_only_the_parts_below_it() {
    let crates = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crates"))
        .expect("crates/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "testkit")
        .collect::<BTreeSet<_>>();
    let known: BTreeSet<String> = ALLOWED.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(crates, known, "a crate is missing from the graph (or gone)");
    for (name, allowed) in ALLOWED {
        let used: BTreeSet<String> = deps_of(name)
            .into_iter()
            .filter_map(|d| d.strip_prefix("dicomlab-").map(str::to_string))
            .collect();
        let extra: Vec<&String> = used
            .iter()
            .filter(|d| !allowed.contains(&d.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "dicomlab-{name} depends on {extra:?}, which the design keeps above it"
        );
    }
}

#[test]
fn the_lab_and_the_tui_build_without_the_server_stack() {
    for name in ["dicom", "dicomweb", "lab", "tui"] {
        let deps = deps_of(name);
        let server: Vec<&&str> = SERVER_STACK.iter().filter(|d| deps.contains(**d)).collect();
        assert!(server.is_empty(), "dicomlab-{name} names {server:?}");
    }
}
