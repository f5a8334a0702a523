//! The classroom's SSH server, from a Rust SSH client: what it refuses (a wrong code, with a growing
//! wait; a name that is not valid; exec; port forwarding; a session past the limit), personal codes
//! (the class code logs a new name in once, then only the learner's own code does), a second login
//! with that code that takes over, and an idle session told, then closed.

use dicomlab_testkit as common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ssh_client::{Terminal, login, personal_code};
use dicomlab_classroom::{Classroom, ClassroomConfig};
use dicomlab_lab::Lab;

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
    c.code = Some(dicomlab_dicomweb::Secret::new(CODE));
    c.reindex_min = Duration::ZERO;
    c.first_refusal_delay = Duration::from_millis(300);
    c.max_sessions = max_sessions;
    c.idle = idle;
    c.idle_warning = idle_warning;
    Classroom::start(
        c,
        Lab::embedded().expect("lab"),
        Arc::new(dicomlab_classroom::lab_tui::LabRunner),
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

    // No commands, no port forwarding (eve's first login: her personal code is said all the same).
    let h = login(addr, "eve", CODE).await.expect("ssh").expect("code");
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
    let said = String::from_utf8_lossy(&said);
    assert!(said.contains("no commands here"), "{said}");
    assert!(personal_code(&said).is_some(), "{said}");
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

    // The limit: one session; a second learner is told (and given their personal code all the same).
    let (mut ada, ada_code) = Terminal::first_login(addr, "ada", CODE, 100, 30)
        .await
        .expect("ada");
    let mut bob = Terminal::open(addr, "bob", CODE, 100, 30)
        .await
        .expect("bob");
    let s = bob.until_closed(LONG).await.expect("closed");
    assert!(s.contains("limit of 1 sessions"), "{s}");
    assert!(personal_code(&s).is_some(), "{s}");

    // Ada again, from another terminal, with her personal code: the new session takes over, the old
    // one is told.
    let mut again = Terminal::open(addr, "ada", &ada_code, 100, 30)
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
    let (mut ada, _) = Terminal::first_login(c.ssh.addr, "ada", CODE, 100, 30)
        .await
        .expect("ada");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_first_login_only_the_learners_own_code_logs_in() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(
        dir.path(),
        5,
        Duration::from_secs(3600),
        Duration::from_secs(60),
    )
    .await;
    let addr = c.ssh.addr;
    let (mut ada, ada_code) = Terminal::first_login(addr, "ada", CODE, 100, 30)
        .await
        .expect("ada's first login");
    let (bob, bob_code) = Terminal::first_login(addr, "bob", CODE, 100, 30)
        .await
        .expect("bob's first login");
    assert_ne!(ada_code, bob_code);
    drop(bob);

    // The class code no longer logs in as Ada, nor does Bob's code.
    assert!(login(addr, "ada", CODE).await.expect("ssh").is_none());
    assert!(login(addr, "ada", &bob_code).await.expect("ssh").is_none());
    assert!(login(addr, "bob", &ada_code).await.expect("ssh").is_none());
    // Her own code does (as typed: case and the dash do not matter), straight into the lab.
    let typed = ada_code.to_uppercase().replace('-', "");
    let mut again = Terminal::open(addr, "ada", &typed, 100, 30)
        .await
        .expect("ada with her code");
    let s = again
        .wait_for("the lab", |s| s.contains("Exercises"), LONG)
        .await
        .expect("lab");
    assert!(personal_code(&s).is_none(), "shown once only:\n{s}");
    ada.until_closed(LONG).await.expect("taken over");

    // Her values show it, masked until asked.
    again.send(b"q").await.expect("q");
    let v = again
        .wait_for("her values", |s| s.contains("personal code (ssh)"), LONG)
        .await
        .expect("values");
    assert!(!v.contains(&ada_code), "masked:\n{v}");
    again.send(b"s").await.expect("s");
    again
        .wait_for("her code", |s| s.contains(&ada_code), LONG)
        .await
        .expect("shown");

    // Never in what `classroom status` prints.
    let room = c.core.room();
    for format in [
        dicomlab_classroom::room::Format::Md,
        dicomlab_classroom::room::Format::Json,
        dicomlab_classroom::room::Format::Csv,
    ] {
        let text = dicomlab_classroom::room::render(&room, format);
        assert!(!text.contains(&ada_code) && !text.contains(&bob_code));
    }

    // Someone logged in with her code, not yet at a terminal, when the instructor resets it…
    let pending = login(addr, "ada", &ada_code)
        .await
        .expect("ssh")
        .expect("logged in with her code");
    // The instructor gives her a new one: the old one stops working.
    let name = dicomlab_classroom::names::LearnerName::exact("ada").expect("name");
    let Ok(dicomlab_classroom::Reset::Code(new)) = c.core.reset_code(&name).await else {
        panic!("a new code");
    };
    // Whoever holds her open session is told, and it closes.
    let last = again.until_closed(LONG).await.expect("closed by the reset");
    assert!(last.contains("new personal code"), "{last}");
    // …and the connection that logged in before the reset gets no terminal.
    let channel = pending.channel_open_session().await.expect("session");
    channel
        .request_pty(true, "xterm", 100, 30, 0, 0, &[])
        .await
        .expect("pty");
    channel.request_shell(true).await.expect("shell");
    let mut late = Terminal {
        handle: pending,
        channel,
        screen: vt100::Parser::new(
            std::num::NonZeroU16::new(30).expect("rows"),
            std::num::NonZeroU16::new(100).expect("columns"),
            0,
        ),
        received: 0,
        exit: None,
        closed: false,
    };
    let said = late.until_closed(LONG).await.expect("refused");
    assert!(said.contains("reset after you logged in"), "{said}");
    assert!(!said.contains("Exercises"), "{said}");
    // …and the dashboard no longer shows her connected.
    let started = Instant::now();
    while c
        .core
        .room()
        .learners
        .iter()
        .any(|l| l.name == "ada" && l.online == Some(true))
    {
        assert!(started.elapsed() < LONG, "ada still shown connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(login(addr, "ada", &ada_code).await.expect("ssh").is_none());
    assert!(
        login(addr, "ada", new.expose())
            .await
            .expect("ssh")
            .is_some()
    );

    // A learner from before personal codes gets one at their next login with the class code.
    let cy = dicomlab_classroom::names::LearnerName::exact("cy").expect("name");
    c.core
        .join(&cy)
        .await
        .expect("cy, as an older classroom made him");
    assert!(c.core.personal_code(&cy).is_none());
    let (_cy, cy_code) = Terminal::first_login(addr, "cy", CODE, 100, 30)
        .await
        .expect("cy's code");
    assert_eq!(
        c.core.personal_code(&cy).map(|s| s.expose().to_string()),
        Some(cy_code)
    );
    assert!(login(addr, "cy", CODE).await.expect("ssh").is_none());
    c.shutdown().await;
}

/// A program that only records the sizes it is told, slowly (as a real redraw of a large screen is).
struct SizeRecorder(Arc<std::sync::Mutex<Vec<(u16, u16)>>>);

impl dicomlab_classroom::ssh::Runner for SizeRecorder {
    fn run(
        &self,
        _learner: dicomlab_classroom::ssh::Learner,
        terminal: dicomlab_classroom::ssh::Terminal,
    ) -> dicomlab_classroom::ssh::RunFuture {
        let seen = self.0.clone();
        Box::pin(async move {
            use futures_util::StreamExt;
            let mut events = terminal.events;
            if let Ok(mut s) = seen.lock() {
                s.push(terminal.size);
            }
            while let Some(e) = events.next().await {
                if let Ok(crossterm::event::Event::Resize(w, h)) = e {
                    if let Ok(mut s) = seen.lock() {
                        s.push((w, h));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Ok(())
        })
    }
}

async fn open_recording(
    dir: &std::path::Path,
    login_time: Duration,
) -> (Classroom, Arc<std::sync::Mutex<Vec<(u16, u16)>>>) {
    let mut c = ClassroomConfig::new(dir.to_path_buf());
    c.http = "127.0.0.1:0".parse().expect("addr");
    c.ssh = "127.0.0.1:0".parse().expect("addr");
    c.code = Some(dicomlab_dicomweb::Secret::new(CODE));
    c.reindex_min = Duration::ZERO;
    c.login_time = login_time;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let room = Classroom::start(
        c,
        Lab::embedded().expect("lab"),
        Arc::new(SizeRecorder(seen.clone())),
    )
    .await
    .expect("classroom starts");
    (room, seen)
}

/// A flood of window changes costs the program a few redraws, at the newest size; a giant terminal
/// is drawn at most 320×120.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_changes_are_coalesced_and_sizes_clamped() {
    let dir = tempfile::tempdir().expect("tmp");
    let (c, seen) = open_recording(dir.path(), LONG).await;
    let t = Terminal::open(c.ssh.addr, "ada", CODE, 5000, 3000)
        .await
        .expect("terminal");
    for i in 0..300u32 {
        t.channel
            .window_change(80 + i % 50, 24 + i % 20, 0, 0)
            .await
            .expect("window change");
    }
    t.channel
        .window_change(200, 60, 0, 0)
        .await
        .expect("window change");
    let started = Instant::now();
    loop {
        let s = seen.lock().expect("seen").clone();
        if s.last() == Some(&(200, 60)) {
            assert_eq!(s.first(), Some(&(320, 120)), "clamped: {s:?}");
            // Without coalescing each of the 301 would be drawn (30 s at 100 ms each).
            assert!(s.len() <= 60, "{} sizes for 301 window changes", s.len());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the newest size never arrived: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.shutdown().await;
}

/// A connection must log in, then ask for a terminal, each within the login time; and one address
/// cannot hold every place among the connections logging in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_do_not_log_in_or_open_a_terminal_are_closed() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().expect("tmp");
    let (c, _) = open_recording(dir.path(), Duration::from_secs(1)).await;
    let addr = c.ssh.addr;

    // Logged in, no terminal: closed after the login time, twice over at most.
    let handle = login(addr, "ada", CODE)
        .await
        .expect("ssh")
        .expect("logged in");
    let started = Instant::now();
    while !handle.is_closed() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a connection without a terminal was kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    c.shutdown().await;

    // 32 connections from one address that never log in take its share; the 33rd waits (no SSH
    // greeting) until one of them goes, then is greeted — a room behind one NAT address that logs in
    // all at once is served in turn, not closed; the rest of the room's places stay free. (A login
    // time of 4 s: the 33 connections are all made within it even on a slow machine.)
    let dir = tempfile::tempdir().expect("tmp");
    let (c, _) = open_recording(dir.path(), Duration::from_secs(4)).await;
    let addr = c.ssh.addr;
    async fn greeting(s: &mut tokio::net::TcpStream) -> usize {
        let mut buf = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0)
    }
    let mut idle = Vec::new();
    for _ in 0..32 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        assert!(greeting(&mut s).await > 0, "an SSH greeting");
        idle.push(s);
    }
    let mut extra = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let early = tokio::time::timeout(Duration::from_millis(700), extra.read(&mut [0u8; 64])).await;
    assert!(early.is_err(), "the 33rd waits for a place: {early:?}");
    drop(idle.pop());
    assert!(
        greeting(&mut extra).await > 0,
        "the 33rd is greeted once a place is free"
    );
    // After the login time they are all closed, and the address may connect again.
    let mut buf = [0u8; 4096];
    for s in &mut idle {
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a connection that never logged in was kept");
    }
    let mut again = tokio::net::TcpStream::connect(addr).await.expect("connect");
    assert!(greeting(&mut again).await > 0);
    c.shutdown().await;
}

/// The room's marks of one learner, from what `classroom status --format json` prints.
fn status_of(c: &Classroom, learner: &str) -> serde_json::Value {
    let json =
        dicomlab_classroom::room::render(&c.core.room(), dicomlab_classroom::room::Format::Json);
    let v: serde_json::Value = serde_json::from_str(&json).expect("status json");
    v["learners"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["name"] == learner))
        .cloned()
        .unwrap_or_else(|| panic!("no {learner} in {v:#}"))
}

/// Waits until the room's checks stop running (none for a while).
async fn settled(c: &Classroom) {
    let mut last = u64::MAX;
    let mut quiet = 0;
    let end = Instant::now() + LONG;
    while quiet < 6 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = c.core.checks_run.load(std::sync::atomic::Ordering::Relaxed);
        quiet = if now == last && now > 0 { quiet + 1 } else { 0 };
        last = now;
    }
}

/// What the learner's TUI shows of each exercise (✓ or not, in lab order) and its "N done".
fn tui_marks(screen: &str, lab: &Lab) -> (Vec<bool>, Option<usize>) {
    let marks = lab
        .exercises
        .iter()
        .enumerate()
        .map(|(n, e)| {
            let head = format!("{} {}", n + 1, e.title);
            screen
                .lines()
                .find(|l| l.contains(&head))
                .is_some_and(|l| l.contains(&format!("✓ {head}")))
        })
        .collect();
    let done = screen.lines().next().and_then(|h| {
        let (before, _) = h.split_once(" done")?;
        before.rsplit(' ').next()?.parse().ok()
    });
    (marks, done)
}

/// The room's view of the same: an exercise is ✓ when each of its steps is done or skipped, and the
/// steps done (optional ones too).
fn room_marks(status: &serde_json::Value, lab: &Lab) -> (Vec<bool>, Option<usize>) {
    let mark = |id: &str| status["steps"][id].as_str().unwrap_or("").to_string();
    let marks = lab
        .exercises
        .iter()
        .map(|e| {
            e.steps
                .iter()
                .all(|s| matches!(mark(&s.id).as_str(), "done" | "skipped"))
        })
        .collect();
    let done = lab.steps().filter(|s| mark(&s.id) == "done").count();
    (marks, Some(done))
}

/// Issue 15: the checks' own requests are never a learner's failure; a learner's screen over SSH shows
/// the room's verdicts as they arrive (work done with HTTP from her laptop, no key pressed); after a
/// reconnect her screen and `classroom status` agree on every exercise and on what is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_truth_for_a_learner_live_on_her_screen_and_in_the_room() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(
        dir.path(),
        8,
        Duration::from_secs(3600),
        Duration::from_secs(60),
    )
    .await;
    let addr = c.ssh.addr;
    let lab = Lab::embedded().expect("lab");
    let (mut ada, ada_code) = Terminal::first_login(addr, "ada", CODE, 120, 40)
        .await
        .expect("ada logs in");
    let (_bob, _) = Terminal::first_login(addr, "bob", CODE, 120, 40)
        .await
        .expect("bob logs in");

    // Nobody did anything: nothing failed, nobody has a last failure or is stuck.
    settled(&c).await;
    for who in ["ada", "bob"] {
        let s = status_of(&c, who);
        let failed: Vec<&String> = s["steps"]
            .as_object()
            .expect("steps")
            .iter()
            .filter(|(_, m)| *m == "failed")
            .map(|(id, _)| id)
            .collect();
        assert!(failed.is_empty(), "{who}: failed {failed:?} in {s:#}");
        assert!(s["last_failure"].is_null(), "{who}: {s:#}");
        assert!(s["stuck"].is_null(), "{who}: {s:#}");
    }
    let screen = ada.contents();
    assert!(
        !screen.contains('✗'),
        "nothing failed on ada's screen either:\n{screen}"
    );

    // Ada works from her laptop: the role (as the instructor would grant it), a token and the
    // samples stored, with plain HTTP to the public port. No key is sent to her TUI.
    let env = c
        .core
        .join(&dicomlab_classroom::names::LearnerName::exact("ada").expect("name"))
        .await
        .expect("ada's values");
    let tenant = c.core.tenants.get(&env.name).expect("ada's service");
    tenant
        .service
        .auth
        .set_role(
            &tenant.service.db,
            &env.client_id,
            dicomlab_practice::auth::Role::DataOwner,
            true,
        )
        .expect("role granted");
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!(
            "{}/{}/oauth2/token",
            env.public_authority, env.tenant_id
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", env.client_id.as_str()),
            ("client_secret", env.client_secret.expose()),
            ("resource", env.resource.as_str()),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    let token = token["access_token"].as_str().expect("token").to_string();
    for file in common::sample_files() {
        let r = http
            .post(format!("{}/studies", env.public_base_url))
            .bearer_auth(&token)
            .header("content-type", "application/dicom")
            .header("accept", "application/dicom+json")
            .body(file)
            .send()
            .await
            .expect("store");
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
    let stored = Instant::now();
    let store_title = lab
        .exercises
        .iter()
        .position(|e| e.steps.iter().any(|s| s.id == "store-samples"))
        .map(|n| format!("✓ {} {}", n + 1, lab.exercises[n].title))
        .expect("the store exercise");
    ada.wait_for(
        "the store step checked off on ada's open screen",
        |s| s.contains(&store_title),
        Duration::from_secs(10),
    )
    .await
    .expect("live");
    let took = stored.elapsed();
    eprintln!("ada's open screen showed the store {took:?} after it");
    assert!(
        took <= Duration::from_secs(3),
        "ada's screen showed the store {took:?} after it, without a key"
    );
    // The room says the same.
    let s = status_of(&c, "ada");
    assert_eq!(s["steps"]["store-samples"], "done", "{s:#}");

    // She reconnects: her screen and the room agree on every exercise and on what is done.
    drop(ada);
    settled(&c).await;
    let mut ada = Terminal::open(addr, "ada", &ada_code, 120, 40)
        .await
        .expect("ada logs in again");
    let room = room_marks(&status_of(&c, "ada"), &lab);
    let screen = ada
        .wait_for(
            "ada's screen as the room has it",
            |s| s.contains("Exercises") && tui_marks(s, &lab) == room,
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\nthe room: {room:?}"));
    let (marks, done) = tui_marks(&screen, &lab);
    assert!(done.is_some_and(|d| d >= 4), "{marks:?} {done:?}\n{screen}");
}

/// Waits until the server has ended the connection (not only the channel).
async fn hung_up(h: &russh::client::Handle<common::ssh_client::Accept>, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if h.is_closed() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.is_closed()
}

/// Issue 16: a connection is counted and closed for its whole life. With the class code, a refused
/// login (a name that cannot be used, a full room) says why and then ends the connection — it holds
/// no file of the classroom's — and a session's end ends its connection too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_finished_connections_are_closed() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(
        dir.path(),
        1,
        Duration::from_secs(3600),
        Duration::from_secs(60),
    )
    .await;
    let addr = c.ssh.addr;
    // Forty logins with a name that cannot be used: each told, then hung up on.
    let mut held = Vec::new();
    for i in 0..40 {
        let mut t = Terminal::open(addr, &format!("../x{i}"), CODE, 80, 24)
            .await
            .expect("logged in");
        let s = t.until_closed(LONG).await.expect("told");
        assert!(s.contains("cannot be used"), "{s}");
        held.push(t);
    }
    for (i, t) in held.iter().enumerate() {
        assert!(
            hung_up(&t.handle, Duration::from_secs(5)).await,
            "refused connection {i} is still open"
        );
    }
    // A full room (one session): the second learner is told, and hung up on.
    let (ada, _) = Terminal::first_login(addr, "ada", CODE, 120, 40)
        .await
        .expect("ada");
    let mut bob = Terminal::open(addr, "bob", CODE, 80, 24)
        .await
        .expect("bob logs in");
    let s = bob.until_closed(LONG).await.expect("told");
    assert!(s.contains("limit of 1 sessions"), "{s}");
    assert!(hung_up(&bob.handle, Duration::from_secs(5)).await);
    // Ada leaves the lab (q, then q on her values): her connection ends with her session.
    ada.send(b"q").await.expect("q");
    let mut ada = ada;
    ada.wait_for("her values", |s| s.contains("Enter"), LONG)
        .await
        .expect("values");
    ada.send(b"q").await.expect("q");
    let _ = ada.until_closed(LONG).await;
    assert!(hung_up(&ada.handle, Duration::from_secs(5)).await);
}
