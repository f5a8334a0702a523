//! One gate for the tests that need something of this machine (a tool, a Python package, a browser):
//! when it is there the test runs; when it is not, the test prints `SKIPPED: …` and passes — unless
//! the flag that makes it required (`DICOMLAB_REQUIRE_*`, set by `.ci/run`) is `1`, where it fails.

/// Whether the command `probe` (a program and its arguments, e.g. `["tmux", "-V"]` or
/// `["python3", "-c", "import pydicom"]`) runs and succeeds; skipped or failed as `flag` says when not.
pub fn require(probe: &[&str], flag: &str, install: &str) -> bool {
    let Some((program, args)) = probe.split_first() else {
        return true;
    };
    let ok = std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(
            &format!(
                "`{}` is not installed or not usable ({install})",
                probe.join(" ")
            ),
            flag,
        );
    }
    ok
}

/// Every one of `probes`, as [`require`] (all are asked, so the message names each one missing).
pub fn require_all(probes: &[&[&str]], flag: &str, install: &str) -> bool {
    let found: Vec<bool> = probes.iter().map(|p| require(p, flag, install)).collect();
    found.into_iter().all(|ok| ok)
}

/// Skips the test with `reason`, or fails it when `flag` is `1`.
pub fn skip(reason: &str, flag: &str) {
    assert!(
        !std::env::var(flag).is_ok_and(|v| v == "1"),
        "{flag}=1 but {reason}"
    );
    eprintln!("SKIPPED: {reason}");
}

/// tmux, for the end-to-end tests that drive the TUI in a terminal (`DICOMLAB_REQUIRE_TMUX`).
pub fn tmux() -> bool {
    require(
        &["tmux", "-V"],
        "DICOMLAB_REQUIRE_TMUX",
        "apt-get install tmux",
    )
}

/// newman, Postman's command-line runner (`DICOMLAB_REQUIRE_CLIENTS`).
pub fn newman() -> bool {
    require(
        &["newman", "--version"],
        "DICOMLAB_REQUIRE_CLIENTS",
        "npm install -g newman@6.2.2",
    )
}

/// Python with the packages learners use, pydicom and dicomweb-client (`DICOMLAB_REQUIRE_CLIENTS`).
pub fn python_clients() -> bool {
    require(
        &["python3", "-c", "import requests, pydicom, dicomweb_client"],
        "DICOMLAB_REQUIRE_CLIENTS",
        "pip install requests==2.34.2 pydicom==3.0.2 dicomweb-client==0.61.2",
    )
}
