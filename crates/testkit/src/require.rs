//! One gate for the tests that need a tool of this machine: when the tool answers its version
//! question the test runs; when it does not, the test prints `SKIPPED: …` and passes — unless the
//! flag that makes it required (set by `.ci/run`) is `1`, where it fails.

/// Whether `tool` (asked `version_arg`) is there; skipped or failed as `flag` says when not.
pub fn require(tool: &str, version_arg: &str, flag: &str, install: &str) -> bool {
    let ok = std::process::Command::new(tool)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !std::env::var(flag).is_ok_and(|v| v == "1"),
            "{flag}=1 but {tool} is not installed or not usable ({install})"
        );
        eprintln!("SKIPPED: {tool} is not installed or not usable ({install})");
    }
    ok
}
