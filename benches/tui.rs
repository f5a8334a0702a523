//! TUI benchmark (a bench binary, not a timed test): `cargo bench --bench tui [-- --quick]`. Needs
//! tmux. Every wait has a deadline and the whole run a watchdog: a broken TUI fails the bench with a
//! message, never hangs it. `--quick` (what `.ci/run` runs) measures the same things for seconds.
//!
//! Runs the binary in a 120×40 tmux pane and measures:
//! 1. on the embedded practice service: the time to its first frame (the very first start, then
//!    five warm ones after the lab; one with `--quick`); its CPU while nobody works with
//!    the watch of the records on (60 s; it waits on the service's word, so ≈ 0); its RSS after each
//!    step of the whole lab done in it, and its peak;
//! 2. on a practice service served by this process (the TUI then polls its logs): the requests a
//!    minute the watch sends while nobody works, and the TUI's CPU meanwhile (60 s).

use dicomlab_testkit::deadline;
use dicomlab_testkit::procfs;
use dicomlab_testkit::screen::{done_count, step_checked};
use dicomlab_testkit::tmux::{Pane, Tmux};

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use procfs::{cpu_seconds, status_kb};
use tracing_subscriber::layer::SubscriberExt;

/// The TUI in a 120×40 session `name` of the bench's tmux server.
fn open_tui<'a>(tmux: &'a Tmux, name: &str, home: &std::path::Path, args: &str) -> Pane<'a> {
    let command = format!(
        "env HOME={h} XDG_DATA_HOME={h}/data XDG_CONFIG_HOME={h}/config TERM=xterm-256color {exe} {args}",
        h = home.display(),
        exe = env!("CARGO_BIN_EXE_dicomlab"),
    );
    tmux.new_session(name, 120, 40, &command);
    tmux.pane(name)
}

/// Quits the TUI and ends its session.
fn quit(pane: &Pane) {
    pane.keys("q");
    std::thread::sleep(Duration::from_millis(300));
    pane.tmux.cmd(&["kill-session", "-t", pane.target()]);
}

/// A config whose learner has a name (no prompt at first start) and, optionally, a profile for a
/// served practice service.
fn write_config(home: &std::path::Path, served: Option<&dicomlab_practice::RunningService>) {
    let dir = home.join("config/dicomlab");
    std::fs::create_dir_all(&dir).expect("config dir");
    let mut text = "learner = \"Bench\"\n\n[profiles.practice]\nkind = \"practice\"\n".to_string();
    if let Some(s) = served {
        text.push_str(&format!(
            "\n[profiles.served]\nkind = \"practice\"\nbase_url = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority = \"{}\"\n",
            s.base_url, s.tenant_id, s.client_id, s.client_secret, s.authority
        ));
    }
    std::fs::write(dir.join("config.toml"), text).expect("config");
}

/// Counts the requests the practice service in this process answers (its `request` log events).
#[derive(Clone, Default)]
struct Requests(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Requests {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct IsRequest(bool);
        impl tracing::field::Visit for IsRequest {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" && format!("{v:?}") == "request" {
                    self.0 = true;
                }
            }
        }
        if event.metadata().target().starts_with("dicomlab_practice") {
            let mut v = IsRequest(false);
            event.record(&mut v);
            if v.0 {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn main() {
    let quick = deadline::quick();
    if !dicomlab_testkit::require::tmux() {
        println!("tui: nothing measured");
        return;
    }
    let idle_secs: u64 = if quick { 5 } else { 60 };
    let tmux = Tmux::new("bench").with_poll(Duration::from_millis(5));
    {
        let socket = tmux.socket().to_string();
        deadline::watchdog(
            "tui",
            Duration::from_secs(if quick { 120 } else { 600 }),
            move || {
                let _ = Command::new("tmux")
                    .args(["-L", &socket, "kill-server"])
                    .output();
            },
        );
    }
    let requests = Requests::default();
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(requests.clone()),
    );

    // 1. The embedded practice service.
    deadline::phase("waiting for the first frame");
    let home = tempfile::tempdir().expect("home");
    write_config(home.path(), None);
    let start = Instant::now();
    let pane = open_tui(&tmux, "embedded", home.path(), "");
    pane.wait_for("the first frame", |s| s.contains("Exercises"), 60);
    let first_frame = start.elapsed();
    pane.wait_for("the watch's first look", |s| s.contains("watching"), 30);
    let pid = pane.pid();
    deadline::phase("idle on the embedded service");
    std::thread::sleep(Duration::from_secs(1));
    let before = cpu_seconds(&pid);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let idle_embedded = cpu_seconds(&pid) - before;

    // The whole lab, step by step, to see memory after real work (the render of the image included);
    // --quick: the first three steps.
    deadline::phase("doing the lab's steps");
    let steps = if quick {
        3
    } else {
        dicomlab_lab::Lab::embedded()
            .map(|l| l.steps().count())
            .unwrap_or(19)
    };
    let mut per_step = Vec::new();
    for _ in 0..steps {
        let done_before = done_count(&pane.screen());
        pane.keys("d");
        // Until the step's check is back (the Postman import's stays ready: it sends nothing).
        pane.wait_for(
            "a step's check after d",
            |s| step_checked(s, done_before) || (s.contains("Did ") && s.contains("Check    ○")),
            60,
        );
        // The viewer's image is decoded after its check.
        std::thread::sleep(Duration::from_millis(500));
        // The final screen comes up when the last required step passes: close it.
        if pane.screen().contains("Lab complete") {
            pane.keys("Escape");
            std::thread::sleep(Duration::from_millis(200));
        }
        per_step.push(format!(
            "{:.0}/{:.0}",
            status_kb(&pid, "VmRSS:") / 1024.0,
            status_kb(&pid, "VmHWM:") / 1024.0
        ));
        pane.keys("n");
    }
    std::thread::sleep(Duration::from_secs(1));
    let hwm = status_kb(&pid, "VmHWM:") / 1024.0;
    let header = pane
        .screen()
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    quit(&pane);

    // The same home again: a warm start (the practice service's keys, its data and the progress are
    // there).
    deadline::phase("waiting for the first frame of warm starts");
    let mut warm: Vec<f64> = Vec::new();
    for n in 0..if deadline::quick() { 1 } else { 5 } {
        let start = Instant::now();
        let pane = open_tui(&tmux, &format!("warm{n}"), home.path(), "");
        pane.wait_for(
            "the first frame of a warm start",
            |s| s.contains("Exercises"),
            60,
        );
        warm.push(start.elapsed().as_secs_f64() * 1e3);
        quit(&pane);
    }
    warm.sort_by(f64::total_cmp);

    // 2. A practice service served by this process: the TUI polls its logs.
    deadline::phase("starting a served practice service");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let served = rt
        .block_on(dicomlab_practice::start(dicomlab_practice::ServiceConfig {
            grant_owner: true,
            reindex_min_duration: Duration::ZERO,
            ..dicomlab_practice::ServiceConfig::default()
        }))
        .expect("the practice service starts");
    let home = tempfile::tempdir().expect("home");
    write_config(home.path(), Some(&served));
    deadline::phase("waiting for the TUI on the served service");
    let pane = open_tui(&tmux, "served", home.path(), "--profile served");
    pane.wait_for(
        "the first frame on the served service",
        |s| s.contains("Exercises") && s.contains("watching"),
        60,
    );
    let pid = pane.pid();
    deadline::phase("idle on the served service");
    // The first looks (and the judgement they bring) settle.
    std::thread::sleep(Duration::from_secs(3));
    let (cpu0, req0, t0) = (
        cpu_seconds(&pid),
        requests.0.load(Ordering::Relaxed),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(idle_secs));
    let secs = t0.elapsed().as_secs_f64();
    let idle_served = cpu_seconds(&pid) - cpu0;
    let per_minute = (requests.0.load(Ordering::Relaxed) - req0) as f64 * 60.0 / secs;
    quit(&pane);
    drop(tmux);
    drop(rt);

    let warm: Vec<String> = warm.iter().map(|ms| format!("{ms:.0}")).collect();
    println!(
        "tui: first frame after {:.0} ms on the very first start (it makes the practice service's keys); warm starts, fastest to slowest: {} ms (process start, embedded practice service included)",
        first_frame.as_secs_f64() * 1e3,
        warm.join(" / ")
    );
    println!(
        "tui: embedded service, nobody working for {idle_secs} s with the watch on: CPU {:.2} s ({:.2}% of a core)",
        idle_embedded,
        idle_embedded * 100.0 / idle_secs as f64
    );
    println!(
        "tui: RSS / peak so far after each step (MB): {}",
        per_step.join(" ")
    );
    println!(
        "tui: peak RSS after {steps} steps: {hwm:.1} MB (process incl. the embedded practice service)"
    );
    println!("tui: header at the end: {header}");
    println!(
        "tui: served service, nobody working for {secs:.0} s: the watch sent {per_minute:.0} requests a minute; TUI CPU {:.2} s ({:.2}% of a core)",
        idle_served,
        idle_served * 100.0 / secs
    );
}
