//! End to end: the real binary in a pseudo-terminal (tmux send-keys / capture-pane), through the whole
//! lab on the embedded practice service — every step done with `d` and seen checked off — then restarted
//! and seen to keep the progress. Skipped with a printed reason when tmux is missing, unless
//! `DICOMLAB_REQUIRE_TMUX=1` (set by `.ci/run`).

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .env("TERM", "xterm-256color")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn keys(&self, keys: &str) {
        self.cmd(&["send-keys", "-t", "lab", keys]);
    }
    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-t", "lab", "-p"])
    }
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool, secs: u64) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    fn start(&self, home: &std::path::Path) {
        let exe = env!("CARGO_BIN_EXE_dicomlab");
        let command = format!(
            "env HOME={h} XDG_DATA_HOME={h}/data XDG_CONFIG_HOME={h}/config TERM=xterm-256color {exe}; sleep 30",
            h = home.display()
        );
        self.cmd(&[
            "new-session",
            "-d",
            "-s",
            "lab",
            "-x",
            "120",
            "-y",
            "40",
            &command,
        ]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}

fn tmux_available() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !std::env::var("DICOMLAB_REQUIRE_TMUX").is_ok_and(|v| v == "1"),
            "DICOMLAB_REQUIRE_TMUX=1 but tmux is not installed"
        );
        eprintln!("SKIPPED: tmux is not installed (apt-get install tmux)");
    }
    ok
}

fn header(screen: &str) -> &str {
    screen.lines().next().unwrap_or("")
}

#[test]
fn the_whole_lab_in_the_tui_then_a_restart_keeps_progress() {
    if !tmux_available() {
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let t = Tmux {
        socket: format!("dicomlab-e2e-{}", std::process::id()),
    };
    t.start(home.path());
    t.wait_for(
        "the first screen",
        |s| s.contains("Exercises") && s.contains("step 1/17"),
        30,
    );
    let steps = 17;
    for n in 1..=steps {
        t.wait_for(
            &format!("step {n}"),
            |s| header(s).contains(&format!("step {n}/{steps}")),
            10,
        );
        t.keys("d");
        let s = t.wait_for(
            &format!("the check of step {n}"),
            |s| {
                s.contains("Did ")
                    && (s.contains("Check    ✓")
                        || s.contains("Check    ✗")
                        || s.contains("Check    –"))
            },
            60,
        );
        assert!(s.contains("Check    ✓ pass"), "step {n} did not pass:\n{s}");
        t.keys("n");
    }
    let s = t.wait_for(
        "every step done",
        |s| header(s).contains(&format!("{steps} done")),
        10,
    );
    assert!(s.contains("✓ 11 Delete (optional)"), "{s}");
    t.keys("q");
    std::thread::sleep(Duration::from_millis(500));
    t.cmd(&["kill-server"]);

    // Restart, on a tmux server of its own (the old one may still be going away): the progress is there.
    let t2 = Tmux {
        socket: format!("{}-restart", t.socket),
    };
    t2.start(home.path());
    let s = t2.wait_for("the restarted TUI", |s| s.contains("Exercises"), 30);
    assert!(header(&s).contains(&format!("{steps} done")), "{s}");
    t2.keys("q");
}
