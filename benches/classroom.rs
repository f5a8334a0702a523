//! Classroom benchmark (a bench binary, not a timed test): `cargo bench --bench classroom`.
//!
//! Starts the release binary's `dicomlab classroom --headless` on loopback ports, then 30 learners
//! connect over SSH (russh's client, in this process, each from a loopback address of its own) and each
//! does the whole lab in the TUI at once:
//! for every step `d` (do it), then the step's check is read off the screen (a vt100 emulator of each
//! learner's terminal). Measures:
//! - each step's latency, `d` pressed → its check on screen (the step's requests and its check), and the
//!   classroom's own checks of each learner's service (from its log): p50 / p99;
//! - errors: a step whose check did not pass (the Postman import step, which sends nothing, stays
//!   ready), a learner that could not log in or timed out;
//! - the classroom process's peak RSS (VmHWM) and its CPU while the 30 sessions sit idle for 20 s.
//!
//! Targets (issue 12, this 2-core machine): every check's p99 ≤ 1 s, 0 errors, peak RSS ≤ 300 MB,
//! CPU ≈ 0 while idle. `-- --learners N` (or `DICOMLAB_BENCH_LEARNERS`) changes the number of learners.
//!
//! Then the same room again, under attack (issue 16): while the learners work, one other address
//! with the class code holds 200 connections to both ports and sends, as fast as the room lets it,
//! anonymous requests with 8 KiB paths and User-Agents at a learner's service (log lines, audit rows),
//! logins with names that cannot be used and made-up self-reports under new names. Reported: the
//! learners' step p99 against the quiet room's (target ≤ 1.5×), their errors (must be 0), the
//! classroom's peak RSS and how much its folder grew. `--quick` (CI): 3 learners.
//! `DICOMLAB_BENCH_KEEP=1` keeps each room's folder (the classroom's log, the learners' services).

use dicomlab_testkit::deadline;
use dicomlab_testkit::procfs;
use dicomlab_testkit::screen::{done_count, shown_step, step_checked};
use dicomlab_testkit::served;
use dicomlab_testkit::ssh_client;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use procfs::{cpu_seconds, status_kb};
use ssh_client::Terminal;

const CODE: &str = "bench-code-1234";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[i.min(v.len() - 1)]
}

/// The step pane shows step `id` (its border's title is `N · <title>`).
fn shows_step(lab: &dicomlab_lab::Lab, screen: &str, id: &str) -> bool {
    let Some(step) = lab.step(id) else {
        return false;
    };
    let optional = if step.optional { " (optional)" } else { "" };
    let title = format!(" · {}{optional} ", step.title);
    screen
        .lines()
        .any(|l| l.contains('┌') && l.contains(&title))
}

/// Learner `i`'s machine: a loopback address of its own (127.1.x.y), as learners at their own
/// laptops reach the room. From one address (a room behind one NAT address) at most 40 new names join
/// at once (issue 16's guard against a class-code holder squatting the room's names), so a room larger
/// than that from one address is not what this measures.
fn machine(i: usize) -> std::net::IpAddr {
    std::net::Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8).into()
}

/// One learner's whole lab; (step id, seconds from `d` to its check) and the errors.
async fn learner(
    addr: std::net::SocketAddr,
    from: std::net::IpAddr,
    name: String,
    lab: Arc<dicomlab_lab::Lab>,
    began: Instant,
) -> (Vec<(String, f64, String)>, Vec<String>, Option<Terminal>) {
    let long = Duration::from_secs(120);
    let mut times = Vec::new();
    let mut errors = Vec::new();
    // A first login: the class code, then the personal code the lab shows is read off the screen
    // and Enter opens the lab.
    let mut t = match Terminal::first_login_from(addr, Some(from), &name, CODE, (120, 40)).await {
        Ok((t, _code)) => t,
        Err(e) => return (times, vec![format!("{name}: {e}")], None),
    };
    for (at, step) in lab.steps().enumerate() {
        let id = step.id.clone();
        // The lab opens at the first step not done: the room's first check of a learner (their
        // service exists, their values are set) can land before their TUI opens, which then
        // resumes past those steps — nothing to do for them.
        match t
            .wait_for(
                &id,
                |s| shows_step(&lab, s, &id) || shown_step(s) > at + 1,
                Duration::from_secs(30),
            )
            .await
        {
            Ok(s) if shows_step(&lab, &s, &id) => {}
            // Resumed past it: it is done (every step before the one shown is).
            Ok(s) if done_count(&s) > at => continue,
            Ok(_) => {
                errors.push(format!("{name} {id}: the TUI went past it, not done"));
                break;
            }
            Err(e) => {
                errors.push(format!("{name} {id}: {e}"));
                break;
            }
        }
        let done_before = done_count(&t.contents());
        let start = Instant::now();
        let _ = t.send(b"d").await;
        if step.check.kind() == dicomlab_lab::model::CheckKind::PostmanImport {
            // It sends nothing: the step stays ready.
            let _ = t
                .wait_for(&id, |s| s.contains("Check    ○ ready"), long)
                .await;
            let _ = t.send(b"n").await;
            continue;
        }
        match t
            .wait_for(&id, |s| step_checked(s, done_before), long)
            .await
        {
            Ok(s) if s.contains("Check    ✓ pass") => times.push((
                id.to_string(),
                start.elapsed().as_secs_f64(),
                format!("{name}, {:.1} s in", (start - began).as_secs_f64()),
            )),
            Ok(s) => {
                let line = s
                    .lines()
                    .find(|l| l.contains("Check    "))
                    .unwrap_or("")
                    .trim();
                errors.push(format!("{name} {id}: {line}"));
            }
            Err(e) => {
                // What the screen said of the step (its check, what was done) tells why.
                let said: Vec<&str> = e
                    .lines()
                    .filter(|l| l.contains("Check ") || l.contains("Did ") || l.contains("watch"))
                    .map(str::trim)
                    .collect();
                errors.push(format!(
                    "{name} {id}: {} [{}]",
                    e.lines().next().unwrap_or(""),
                    said.join(" | ")
                ));
                break;
            }
        }
        // The summary shows up when the lab is complete: close it.
        if t.contents().contains("Lab complete") {
            let _ = t.send(b"\x1b").await;
            let _ = t
                .wait_for(
                    "the summary to close",
                    |s| !s.contains("Lab complete"),
                    long,
                )
                .await;
        }
        let _ = t.send(b"n").await;
    }
    (times, errors, Some(t))
}

/// What one room's run measured.
struct Run {
    p99: f64,
    errors: usize,
    peak_mb: f64,
    grown_kb: u64,
}

fn main() {
    let quick = deadline::quick();
    // `-- --learners 100` (or DICOMLAB_BENCH_LEARNERS=100): the room's size.
    let args: Vec<String> = std::env::args().collect();
    let learners: usize = args
        .iter()
        .position(|a| a == "--learners")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .or_else(|| std::env::var("DICOMLAB_BENCH_LEARNERS").ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 3 } else { 30 });
    deadline::watchdog(
        "classroom",
        Duration::from_secs(if quick { 300 } else { 2400 }),
        || {},
    );
    let quiet = room(learners, quick, false);
    let attacked = room(learners, quick, true);
    println!(
        "classroom under attack: learners' step p99 {:.3} s against {:.3} s quiet = {:.2}×   (target ≤ 1.5×); errors {}; peak RSS {:.0} MB (quiet {:.0}); the folder grew {} KB (quiet {})",
        attacked.p99,
        quiet.p99,
        attacked.p99 / quiet.p99.max(1e-3),
        attacked.errors,
        attacked.peak_mb,
        quiet.peak_mb,
        attacked.grown_kb,
        quiet.grown_kb,
    );
    // A learner who could not do the lab is a broken room: the bench fails (CI runs it).
    if quiet.errors + attacked.errors > 0 {
        std::process::exit(1);
    }
}

/// Bytes under `dir`.
fn size_of(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => todo.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// What one address with the class code throws at the room while the learners work (issue 16): held
/// connections to both ports, anonymous requests with long paths at a learner's service (log lines,
/// audit rows), logins with names that cannot be used, and made-up self-reports under new names.
async fn attack(http: u16, ssh: u16, stop: Arc<std::sync::atomic::AtomicBool>) -> (usize, usize) {
    use std::sync::atomic::Ordering;
    // Another address than the learners' (all of loopback is this machine's).
    let from: std::net::IpAddr = "127.0.0.2".parse().expect("ip");
    let connect = |port: u16| async move {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(std::net::SocketAddr::new(from, 0)).ok()?;
        socket
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .ok()
    };
    let mut held = Vec::new();
    for i in 0..200 {
        if let Some(c) = connect(if i % 2 == 0 { ssh } else { http }).await {
            held.push(c);
        }
    }
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .expect("client");
    let origin = format!("http://127.0.0.1:{http}");
    let long = "a".repeat(8 * 1024);
    let (mut sent, mut n) = (0usize, 0usize);
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let r = match n % 4 {
            0 => {
                client
                    .post(format!("{origin}/classroom/join"))
                    .json(
                        &serde_json::json!({"code": CODE, "name": format!("fake-{n}"),
                    "lab": "dicom-service", "target": "azure", "steps": {}}),
                    )
                    .send()
                    .await
            }
            1 => {
                client
                    .get(format!("{origin}/l/learner00/v1/studies/{long}"))
                    .header("User-Agent", long.as_str())
                    .send()
                    .await
            }
            2 => {
                client
                    .get(format!("{origin}/l/learner00/{long}"))
                    .send()
                    .await
            }
            _ => {
                if let Some(stream) = connect(ssh).await {
                    let config = Arc::new(russh::client::Config::default());
                    if let Ok(mut h) =
                        russh::client::connect_stream(config, stream, ssh_client::Accept).await
                    {
                        let _ = h.authenticate_password(format!("../bad{n}"), CODE).await;
                    }
                }
                continue;
            }
        };
        if r.is_ok() {
            sent += 1;
        }
    }
    (held.len(), sent)
}

fn room(learners: usize, quick: bool, under_attack: bool) -> Run {
    deadline::phase(if under_attack {
        "starting the classroom to attack"
    } else {
        "starting the quiet classroom"
    });
    let dir = tempfile::tempdir().expect("tmp");
    // DICOMLAB_BENCH_KEEP=1: the room's folder (its log, each learner's service and its log) stays.
    let keep = std::env::var("DICOMLAB_BENCH_KEEP").is_ok_and(|v| v == "1");
    if keep {
        println!("  the room's folder: {} (kept)", dir.path().display());
    }
    let (http, ssh) = (free_port(), free_port());
    let exe = env!("CARGO_BIN_EXE_dicomlab");
    let mut child = Command::new(exe)
        .args([
            "classroom",
            "--headless",
            "--instant-reindex",
            "--code",
            CODE,
        ])
        .args(["--max-sessions", &(learners + 10).to_string()])
        .arg("--dir")
        .arg(dir.path().join("room"))
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--ssh", &format!("127.0.0.1:{ssh}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the classroom starts");
    let pid = child.id();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{ssh}").parse().expect("addr");
    let ready = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "the classroom did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "classroom: listening after {:.2} s, RSS {:.0} MB",
        ready.elapsed().as_secs_f64(),
        status_kb(pid, "VmRSS:") / 1024.0
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let lab = Arc::new(dicomlab_lab::Lab::embedded().expect("lab"));
    deadline::phase("the learners doing the lab over SSH");
    let folder = dir.path().join("room");
    let size_before = size_of(&folder);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let (results, attacked) = rt.block_on(async {
        let attacker = under_attack.then(|| tokio::spawn(attack(http, ssh, stop.clone())));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..learners {
            tasks.spawn(learner(
                addr,
                machine(i),
                format!("learner{i:02}"),
                lab.clone(),
                started,
            ));
        }
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            if let Ok(r) = r {
                out.push(r);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let attacked = match attacker {
            Some(a) => a.await.ok(),
            None => None,
        };
        (out, attacked)
    });
    let grown_kb = size_of(&folder).saturating_sub(size_before) / 1024;
    let lab_secs = started.elapsed().as_secs_f64();
    let mut all: Vec<f64> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut sessions = Vec::new();
    let mut slowest: Vec<(String, f64, String)> = Vec::new();
    for (times, errs, t) in results {
        all.extend(times.iter().map(|(_, s, _)| *s));
        slowest.extend(times);
        errors.extend(errs);
        sessions.extend(t);
    }
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (p50, p99) = (percentile(&mut all, 50.0), percentile(&mut all, 99.0));
    // Thirty sessions connected, nobody typing.
    std::thread::sleep(Duration::from_secs(3));
    deadline::phase("the sessions sitting idle");
    let idle_secs = if quick { 3.0 } else { 20.0 };
    let cpu0 = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs_f64(idle_secs));
    let idle_cpu = (cpu_seconds(pid) - cpu0) / idle_secs * 100.0;
    let connected = sessions.iter().filter(|t| !t.closed).count();
    let peak = status_kb(pid, "VmHWM:") / 1024.0;
    let log = std::fs::read_to_string(dir.path().join("room/classroom.log")).unwrap_or_default();
    let mut checks: Vec<f64> = log
        .lines()
        .filter(|l| l.contains(" checked ") || l.ends_with(" checked"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("ms="))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|ms| ms / 1000.0)
        .collect();
    let n_checks = checks.len();
    let (c50, c99) = (percentile(&mut checks, 50.0), percentile(&mut checks, 99.0));
    drop(sessions);
    served::stop(&mut child, Duration::from_secs(15));

    println!(
        "classroom{}: {learners} learners over SSH, each the whole lab at once, in {lab_secs:.1} s",
        if under_attack { " (under attack)" } else { "" }
    );
    if let Some((held, sent)) = attacked {
        println!(
            "  the attacker held {held} connections and sent {sent} requests (long paths, anonymous, new names, bad logins)"
        );
    }
    println!("  the classroom's folder grew {grown_kb} KB");
    // Issue 19's targets: 30 learners p99 ≤ 1 s; the default room of 100 p99 ≤ 2 s, 600 MB, 1 % idle.
    let (p99_target, rss_target, idle_target) = if learners > 30 {
        ("2 s", "600 MB", "≤ 1 %")
    } else {
        ("1 s", "300 MB", "≈ 0")
    };
    println!(
        "  steps (d → check on screen): {} · p50 {:.3} s · p99 {:.3} s   (target p99 ≤ {p99_target})",
        all.len(),
        p50,
        p99
    );
    for (id, s, whose) in slowest.iter().take(5) {
        println!("    slowest: {id} {s:.3} s ({whose})");
    }
    // Each step's own p50 / p99, the slowest six by p99: which steps make the room's p99.
    let mut by_step: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for (id, s, _) in &slowest {
        by_step.entry(id.as_str()).or_default().push(*s);
    }
    let mut per_step: Vec<(&str, f64, f64)> = by_step
        .into_iter()
        .map(|(id, mut v)| (id, percentile(&mut v, 50.0), percentile(&mut v, 99.0)))
        .collect();
    per_step.sort_by(|a, b| b.2.total_cmp(&a.2));
    let line: Vec<String> = per_step
        .iter()
        .take(6)
        .map(|(id, p50, p99)| format!("{id} {p50:.2}/{p99:.2}"))
        .collect();
    println!("    by step (p50/p99 s): {}", line.join(" · "));
    println!(
        "  the classroom's checks of each service: {n_checks} · p50 {c50:.3} s · p99 {c99:.3} s   (target p99 ≤ 1 s)"
    );
    println!("  errors: {}   (target 0)", errors.len());
    for e in errors.iter().take(10) {
        println!("    {e}");
    }
    println!("  peak RSS of the classroom: {peak:.0} MB   (target ≤ {rss_target})");
    println!(
        "  CPU while {connected} sessions sit idle for {idle_secs:.0} s: {idle_cpu:.2} % of a core   (target {idle_target})"
    );
    if keep {
        let _ = dir.keep();
    }
    Run {
        p99,
        errors: errors.len(),
        peak_mb: peak,
        grown_kb,
    }
}
