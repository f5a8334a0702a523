//! TUI benchmark (a bench binary, not a timed test): `cargo bench --bench tui`. Needs tmux.
//!
//! Runs the release binary in a 120×40 tmux pane on the embedded practice service and measures the time
//! to first frame, the CPU it uses while idle for 10 s (it should redraw only on messages), and its
//! peak RSS after the whole lab has been done in it.

#[path = "common/procfs.rs"]
mod procfs;

use std::process::Command;
use std::time::{Duration, Instant};

use procfs::{cpu_seconds, status_kb};

fn tmux(socket: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .env("TERM", "xterm-256color")
        .arg("-L")
        .arg(socket)
        .args(args)
        .output()
        .expect("tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    if !Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        println!("tui: tmux is not installed; nothing measured");
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let socket = format!("dicomlab-bench-{}", std::process::id());
    let exe = env!("CARGO_BIN_EXE_dicomlab");
    let command = format!(
        "env HOME={h} XDG_DATA_HOME={h}/data XDG_CONFIG_HOME={h}/config TERM=xterm-256color {exe}",
        h = home.path().display()
    );
    let start = Instant::now();
    tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "b",
            "-x",
            "120",
            "-y",
            "40",
            &command,
        ],
    );
    loop {
        if tmux(&socket, &["capture-pane", "-t", "b", "-p"]).contains("Exercises") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no first frame");
        std::thread::sleep(Duration::from_millis(5));
    }
    let first_frame = start.elapsed();
    let pid = tmux(&socket, &["list-panes", "-t", "b", "-F", "#{pane_pid}"])
        .trim()
        .to_string();
    std::thread::sleep(Duration::from_secs(1));
    let before = cpu_seconds(&pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle = cpu_seconds(&pid) - before;
    // The whole lab, step by step, to see memory after real work (the render of the image included).
    let mut per_step = Vec::new();
    for _ in 0..17 {
        tmux(&socket, &["send-keys", "-t", "b", "d"]);
        // Until the step's check is back (or 60 s).
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            let s = tmux(&socket, &["capture-pane", "-t", "b", "-p"]);
            if s.contains("Did ")
                && (s.contains("Check    ✓")
                    || s.contains("Check    ✗")
                    || s.contains("Check    –"))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The viewer's image is decoded after its check.
        std::thread::sleep(Duration::from_millis(500));
        // The final screen comes up when the last required step passes: close it.
        if tmux(&socket, &["capture-pane", "-t", "b", "-p"]).contains("Lab complete") {
            tmux(&socket, &["send-keys", "-t", "b", "Escape"]);
            std::thread::sleep(Duration::from_millis(200));
        }
        per_step.push(format!("{:.0}", status_kb(&pid, "VmRSS:") / 1024.0));
        tmux(&socket, &["send-keys", "-t", "b", "n"]);
    }
    std::thread::sleep(Duration::from_secs(1));
    let hwm = status_kb(&pid, "VmHWM:") / 1024.0;
    println!("tui: RSS after each step (MB): {}", per_step.join(" "));
    let screen = tmux(&socket, &["capture-pane", "-t", "b", "-p"]);
    let done = screen.lines().next().unwrap_or("").to_string();
    tmux(&socket, &["send-keys", "-t", "b", "q"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux(&socket, &["kill-server"]);
    println!(
        "tui: first frame after {:.0} ms (process start, embedded practice service included)",
        first_frame.as_secs_f64() * 1e3
    );
    println!(
        "tui: CPU while idle for 10 s: {:.2} s ({:.1}%)",
        idle,
        idle * 10.0
    );
    println!(
        "tui: peak RSS after the whole lab: {hwm:.1} MB (process incl. the embedded practice service)"
    );
    println!("tui: header at the end: {}", done.trim());
}
