//! The classroom's SSH server, from a Rust SSH client: what it refuses (a wrong code, with a growing
//! wait; a name that is not valid; exec; port forwarding; a session past the limit), a second login
//! that takes over, and an idle session told, then closed.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ssh_client::{Terminal, login};
use dicomlab::classroom::{Classroom, ClassroomConfig};
use dicomlab::lab::Lab;

const CODE: &str = "abcd-efgh-jkmn";

async fn open(
    dir: &std::path::Path,
    max_sessions: usize,
    idle: Duration,
    idle_warning: Duration,
) -> Classroom {
    let mut c = ClassroomConfig::new(dir.to_path_buf());
    c.http = "127.0.0.1:0".parse().expect("addr");
    c.ssh = "127.0.0.1:0".parse().expect("addr");
    c.code = Some(dicomlab::dicomweb::Secret::new(CODE));
    c.reindex_min = Duration::ZERO;
    c.first_refusal_delay = Duration::from_millis(300);
    c.max_sessions = max_sessions;
    c.idle = idle;
    c.idle_warning = idle_warning;
    Classroom::start(
        c,
        Lab::embedded().expect("lab"),
        Arc::new(dicomlab::classroom::lab_tui::LabRunner),
    )
    .await
    .expect("classroom starts")
}

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(
        dir.path(),
        1,
        Duration::from_secs(3600),
        Duration::from_secs(60),
    )
    .await;
    let addr = c.ssh.addr;

    // A wrong code is refused, and the next one from the same address waits longer.
    let t = Instant::now();
    assert!(login(addr, "ada", "wrong").await.expect("ssh").is_none());
    let first = t.elapsed();
    let t = Instant::now();
    assert!(login(addr, "ada", "wrong").await.expect("ssh").is_none());
    let second = t.elapsed();
    assert!(
        second >= Duration::from_millis(600) && second > first,
        "{first:?} then {second:?}"
    );

    // A name that cannot be used is said in the terminal.
    let mut t = Terminal::open(addr, "../etc", CODE, 80, 24)
        .await
        .expect("logged in");
    let s = t.until_closed(LONG).await.expect("closed");
    assert!(s.contains("cannot be used"), "{s}");
    assert_eq!(t.exit, Some(1));

    // No commands, no port forwarding.
    let h = login(addr, "ada", CODE).await.expect("ssh").expect("code");
    let mut ch = h.channel_open_session().await.expect("session");
    ch.exec(true, "cat /etc/passwd").await.expect("exec sent");
    let mut said = Vec::new();
    let mut exit = None;
    while let Ok(Some(m)) = tokio::time::timeout(LONG, ch.wait()).await {
        match m {
            russh::ChannelMsg::Data { data } => said.extend_from_slice(&data),
            russh::ChannelMsg::ExitStatus { exit_status } => exit = Some(exit_status),
            russh::ChannelMsg::Close => break,
            _ => {}
        }
    }
    assert!(
        String::from_utf8_lossy(&said).contains("no commands here"),
        "{said:?}"
    );
    assert_eq!(exit, Some(1));
    assert!(
        h.channel_open_direct_tcpip(
            "127.0.0.1",
            u32::from(c.http_addr.port()),
            "127.0.0.1",
            5000
        )
        .await
        .is_err(),
        "port forwarding is refused"
    );

    // The limit: one session; a second learner is told.
    let mut ada = Terminal::open(addr, "ada", CODE, 100, 30)
        .await
        .expect("ada");
    ada.wait_for("ada's lab", |s| s.contains("Exercises"), LONG)
        .await
        .expect("lab");
    let mut bob = Terminal::open(addr, "bob", CODE, 100, 30)
        .await
        .expect("bob");
    let s = bob.until_closed(LONG).await.expect("closed");
    assert!(s.contains("limit of 1 sessions"), "{s}");

    // Ada again, from another terminal: the new session takes over, the old one is told.
    let mut again = Terminal::open(addr, "ada", CODE, 100, 30)
        .await
        .expect("ada again");
    again
        .wait_for("ada's lab again", |s| s.contains("Exercises"), LONG)
        .await
        .expect("lab");
    let s = ada.until_closed(LONG).await.expect("the old one closes");
    assert!(s.contains("You connected again"), "{s}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_told_then_closed() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(
        dir.path(),
        5,
        Duration::from_secs(5),
        Duration::from_secs(3),
    )
    .await;
    let mut ada = Terminal::open(c.ssh.addr, "ada", CODE, 100, 30)
        .await
        .expect("ada");
    ada.wait_for("the lab", |s| s.contains("Exercises"), LONG)
        .await
        .expect("lab");
    // The notice comes `idle_warning` before the end: here after 2 s.
    let s = ada
        .wait_for("the notice", |s| s.contains("closes in 3 s"), LONG)
        .await
        .expect("told");
    assert!(s.contains("Press any key to stay"), "{s}");
    // A key keeps it, and redraws the screen without the notice.
    ada.send(b"j").await.expect("key");
    ada.wait_for(
        "the redraw",
        |s| !s.contains("closes in 3 s") && s.contains("Exercises"),
        LONG,
    )
    .await
    .expect("redrawn");
    let s = ada
        .until_closed(Duration::from_secs(120))
        .await
        .expect("closed");
    assert!(s.contains("without a key"), "{s}");
    c.shutdown().await;
}
