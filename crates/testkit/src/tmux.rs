//! The tmux driver of the end-to-end tests: a tmux server of the test's own (`-L socket`, killed when
//! dropped), sessions and windows that run a command, keys sent, the screen read, and waits with a
//! deadline that fail with the screen (and the tail of a log, when one is named) instead of hanging.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of the test's own.
pub struct Tmux {
    socket: String,
    /// A log whose tail a failed wait prints (the TUI's, under its HOME).
    log: Option<PathBuf>,
    /// Targets without a `:` name windows of this session.
    session: Option<String>,
    /// How often a wait looks at the screen.
    poll: Duration,
}

impl Tmux {
    /// A server on its own socket (`label` and the process id name it).
    pub fn new(label: &str) -> Tmux {
        Tmux {
            socket: format!("dicomlab-{label}-{}", std::process::id()),
            log: None,
            session: None,
            poll: Duration::from_millis(100),
        }
    }

    /// The server's socket name (`tmux -L NAME`).
    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// Waits look at the screen every `poll` (a bench timing a first frame looks often).
    pub fn with_poll(mut self, poll: Duration) -> Tmux {
        self.poll = poll;
        self
    }

    /// A failed wait prints the tail of `log`.
    pub fn with_log(mut self, log: PathBuf) -> Tmux {
        self.log = Some(log);
        self
    }

    /// Targets without a `:` are windows of `session`.
    pub fn windows_of(mut self, session: &str) -> Tmux {
        self.session = Some(session.to_string());
        self
    }

    /// `tmux -L socket ARGS…`, its standard output.
    pub fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .env("TERM", "xterm-256color")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A detached session `name` of `width`×`height` running `command`.
    pub fn new_session(&self, name: &str, width: u16, height: u16, command: &str) {
        let (w, h) = (width.to_string(), height.to_string());
        self.cmd(&["new-session", "-d", "-s", name, "-x", &w, "-y", &h, command]);
    }

    /// A window `name` of the session running `command`, kept open a minute after it ends with
    /// `EXIT=status` on screen (to read what it said).
    pub fn new_window(&self, name: &str, command: &str) {
        let session = self.session.as_deref().unwrap_or_default();
        let command = format!("{command}; echo EXIT=$?; sleep 60");
        self.cmd(&["new-window", "-d", "-t", session, "-n", name, &command]);
    }

    fn target(&self, t: &str) -> String {
        match &self.session {
            Some(s) if !t.contains(':') => format!("{s}:{t}"),
            _ => t.to_string(),
        }
    }

    /// Keys by tmux's names (`Enter`, `C-c`, or characters).
    pub fn keys(&self, target: &str, keys: &str) {
        self.cmd(&["send-keys", "-t", &self.target(target), keys]);
    }

    /// Text typed literally (no key-name lookup).
    pub fn type_text(&self, target: &str, text: &str) {
        self.cmd(&["send-keys", "-t", &self.target(target), "-l", text]);
    }

    /// What the pane shows.
    pub fn screen(&self, target: &str) -> String {
        self.cmd(&["capture-pane", "-t", &self.target(target), "-p"])
    }

    /// Waits until the screen satisfies `pred` (at most `secs`); a timeout fails with the screen and
    /// the log's tail.
    pub fn wait_for(
        &self,
        target: &str,
        what: &str,
        pred: impl Fn(&str) -> bool,
        secs: u64,
    ) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen(target);
            if pred(&s) {
                return s;
            }
            if start.elapsed() >= Duration::from_secs(secs) {
                let log = self
                    .log
                    .as_ref()
                    .and_then(|l| std::fs::read_to_string(l).ok())
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "timed out waiting for {what} in {target}; screen:\n{s}\nlog tail:\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(self.poll);
        }
    }

    /// One pane, to drive without naming it each time.
    pub fn pane(&self, target: &str) -> Pane<'_> {
        Pane {
            tmux: self,
            target: target.to_string(),
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}

/// One pane of a [`Tmux`].
pub struct Pane<'a> {
    pub tmux: &'a Tmux,
    target: String,
}

impl Pane<'_> {
    /// The pane's tmux target (`session`, or `session:window`).
    pub fn target(&self) -> &str {
        &self.target
    }
    /// The process id of what the pane runs.
    pub fn pid(&self) -> String {
        self.tmux
            .cmd(&[
                "list-panes",
                "-t",
                &self.tmux.target(&self.target),
                "-F",
                "#{pane_pid}",
            ])
            .trim()
            .to_string()
    }
    pub fn keys(&self, keys: &str) {
        self.tmux.keys(&self.target, keys);
    }
    pub fn type_text(&self, text: &str) {
        self.tmux.type_text(&self.target, text);
    }
    pub fn screen(&self) -> String {
        self.tmux.screen(&self.target)
    }
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool, secs: u64) -> String {
        self.tmux.wait_for(&self.target, what, pred, secs)
    }
}
