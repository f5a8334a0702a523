//! The classroom's public port and room against misuse: nothing for loopback only granted through
//! it, anonymous requests that cost no checks and tell no names, a rate and a connection share per
//! address, a log nobody fills, names nobody squats (and the instructor frees), guesses at the class
//! code that gain nothing.

use dicomlab_testkit as common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dicomlab_classroom::Classroom;
use serde_json::json;

use super::classroom_service::{do_steps, name, open, open_with, token};

/// Behind a reverse proxy on the classroom's machine every caller of the public port is on loopback:
/// what a learner's service grants callers on loopback (role administration, the one-click sign-in)
/// is never granted through the public port — only through the classroom's own loopback listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_port_grants_nothing_that_is_for_loopback_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let ada = c.core.join(&name("ada")).await.expect("ada joins");
    let http = reqwest::Client::new();
    // The test's requests come from 127.0.0.1, as a same-host nginx's would.
    let public = format!("http://{}", c.http_addr);
    // The classroom's own loopback listener: its key leads every path (the learner's values know it).
    let internal = ada
        .authority
        .strip_suffix("/l/ada")
        .expect("the internal origin")
        .to_string();
    assert!(internal.starts_with(&format!("http://{}/", c.internal_addr)));
    for path in [
        "/l/ada/admin/roles",
        "/l/ada//admin/roles",
        "/l/ada/ADMIN/roles",
        "/l/ada/%61dmin/roles",
        "/l/ada/admin/apps",
        "/l/ada/admin/cors",
    ] {
        let r = http
            .get(format!("{public}{path}"))
            .header("x-dicomlab-admin", "1")
            .send()
            .await
            .expect("get");
        assert!(!r.status().is_success(), "{path}: {}", r.status());
    }
    let r = http
        .put(format!(
            "{public}/l/ada/admin/roles/{}/DICOM%20Data%20Owner",
            ada.client_id
        ))
        .header("x-dicomlab-admin", "1")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 403, "no role granted through the public port");
    let r = http
        .post(format!("{public}/l/ada/admin/clients"))
        .header("x-dicomlab-admin", "1")
        .json(&json!({"name": "mine"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    // The one-click sign-in: refused as from another machine (not "this page expired").
    let r = http
        .post(format!("{public}/l/ada/{}/login", ada.tenant_id))
        .form(&[("flow", "x"), ("user", "")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 403, "{:?}", r.text().await);
    // The classroom's own loopback listener (the learner's TUI: the lab's role step) still may.
    let r = http
        .get(format!("{internal}/l/ada/admin/roles"))
        .header("x-dicomlab-admin", "1")
        .send()
        .await
        .expect("internal");
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{internal}/l/ada/{}/login", ada.tenant_id))
        .form(&[("flow", "x"), ("user", "")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 400, "on loopback the page is merely expired");
    // Issue 16: another local user's process, without the classroom's key, reaches nothing there —
    // not the roles, not a new client, not the one-click sign-in, not the learner's data.
    let bare = format!("http://{}", c.internal_addr);
    let wrong = format!("{bare}/{}", "0".repeat(32));
    for origin in [&bare, &wrong] {
        for (method, path) in [
            ("GET", "/l/ada/admin/roles".to_string()),
            (
                "PUT",
                format!("/l/ada/admin/roles/{}/DICOM%20Data%20Owner", ada.client_id),
            ),
            ("POST", "/l/ada/admin/clients".to_string()),
            ("POST", format!("/l/ada/{}/login", ada.tenant_id)),
            ("GET", "/l/ada/v1/studies".to_string()),
            ("GET", "/".to_string()),
            ("POST", "/classroom/join".to_string()),
        ] {
            let r = http
                .request(method.parse().expect("method"), format!("{origin}{path}"))
                .header("x-dicomlab-admin", "1")
                .json(&json!({"name": "mine"}))
                .send()
                .await
                .expect("internal without the key");
            assert_eq!(r.status(), 404, "{method} {origin}{path}");
        }
    }
    let roles = &c.core.tenants.get(&name("ada")).expect("ada").service.auth;
    assert!(
        !roles
            .roles_of(&ada.client_id)
            .contains(&dicomlab_practice::auth::Role::DataOwner),
        "nothing was granted"
    );
    c.shutdown().await;
}

/// Waits until no check has run for a while; how many ran.
async fn settled(c: &Classroom) -> u64 {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let before = c.core.checks_run.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = c.core.checks_run.load(Ordering::Relaxed);
        if before == after || Instant::now() > end {
            return after;
        }
    }
}

/// Requests without a valid token cost no check, and "not found" tells no names apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_cost_no_checks_and_tell_no_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let ada = c.core.join(&name("ada")).await.expect("ada joins");
    let http = reqwest::Client::new();
    let origin = format!("http://{}", c.http_addr);
    let answer = |path: &'static str| {
        let http = http.clone();
        let origin = origin.clone();
        async move {
            let r = http
                .get(format!("{origin}{path}"))
                .send()
                .await
                .expect("get");
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (r.status().as_u16(), ct, r.text().await.expect("text"))
        }
    };
    let known = answer("/l/ada/no/such/route").await;
    assert_eq!(known.0, 404);
    for path in [
        "/l/nobody/no/such/route",
        "/l/nobody/v1/studies",
        "/l/Nobody/x",
    ] {
        assert_eq!(answer(path).await, known, "{path}");
    }
    // A route's own 404 (no such operation) is the service's, untouched, with its headers.
    do_steps(&ada, &["role-assigned"]).await;
    let t = token(&http, &ada, true).await;
    let r = http
        .get(format!(
            "{origin}/l/ada/v1/operations/0b4a9fd1-4b5c-4a3e-9d7e-1f2a3b4c5d6e"
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("operation");
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("api-supported-versions"));
    assert_ne!(r.text().await.expect("text"), known.2);

    let quiet = settled(&c).await;
    for _ in 0..20 {
        let r = http
            .get(format!("{origin}/l/ada/v1/studies"))
            .send()
            .await
            .expect("anonymous");
        assert_eq!(r.status(), 401);
        let r = http
            .get(format!("{origin}/l/ada/v1/studies"))
            .bearer_auth("not-a-token")
            .send()
            .await
            .expect("forged");
        assert_eq!(r.status(), 401);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        c.core.checks_run.load(Ordering::Relaxed),
        quiet,
        "requests answered 401 run no check"
    );
    c.shutdown().await;
}

/// One address may send the public port so many requests a second; past them, 429 with Retry-After.
/// The classroom's own loopback listener (the TUIs, the checks) has no such limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_port_limits_each_address_rate() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open_with(dir.path(), "right-code", |c| {
        c.rate_per_sec = 2.0;
        c.rate_burst = 10.0;
    })
    .await;
    let http = reqwest::Client::new();
    let mut limited = None;
    for i in 0..30 {
        let r = http
            .get(format!("http://{}/", c.http_addr))
            .send()
            .await
            .expect("get");
        if r.status() == 429 {
            limited = Some((
                i,
                r.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok()),
            ));
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let (at, retry) = limited.expect("limited");
    assert!(at >= 10, "the burst passes: limited after {at}");
    assert!(retry.is_some_and(|s| s >= 1), "{retry:?}");
    let ada = c.core.join(&name("ada")).await.expect("ada joins");
    for _ in 0..30 {
        let r = http
            .get(format!("{}/changefeed/latest", ada.base_url))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 401, "the loopback listener is not limited");
    }
    c.shutdown().await;
}
/// On the public port one client holds at most a quarter of the connections (128 of 512): a client
/// that opens more is told why and closed, and the port still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_hold_every_connection_of_the_public_port() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let addr = c.http_addr;
    let held: Vec<std::net::TcpStream> = (0..128)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = tokio::task::spawn_blocking(move || {
        let mut extra = std::net::TcpStream::connect(addr).expect("connect");
        let _ = extra.write_all(b"GET /l/ada/v1/studies HTTP/1.1\r\nHost: x\r\n\r\n");
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut out = String::new();
        let _ = extra.read_to_string(&mut out);
        out
    })
    .await
    .expect("task");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("128 connections"), "{answer}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = reqwest::get(format!("http://{addr}/l/nobody/v1/studies"))
        .await
        .expect("get");
    assert_eq!(r.status(), 404, "the port answers again");
    c.shutdown().await;
}

/// A free loopback port (bound, then let go for the process under test).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Issue 16: nobody fills the instructor's disk through `classroom.log`. A real `dicomlab classroom`
/// process; one address sends requests with 60 KiB paths (no credentials) as fast as the public
/// port lets it: the log grows by a few hundred bytes a request, not by the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_credentials_cannot_fill_the_log() {
    let dir = tempfile::tempdir().expect("tmp");
    let room = dir.path().join("room");
    let (http, ssh) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(dicomlab_testkit::exe())
        .args(["classroom", "--headless", "--code", "kx7p-2mqa-h4rt"])
        .arg("--dir")
        .arg(&room)
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--ssh", &format!("127.0.0.1:{ssh}")])
        .args(["--log-max-mib", "1"])
        .env("HOME", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the classroom starts");
    let client = reqwest::Client::new();
    let origin = format!("http://127.0.0.1:{http}");
    let end = Instant::now() + Duration::from_secs(30);
    while client.get(&origin).send().await.is_err() {
        assert!(Instant::now() < end, "the classroom never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Ada is a learner (her service logs its requests); the flood needs no credentials.
    let ssh_addr: std::net::SocketAddr = format!("127.0.0.1:{ssh}").parse().expect("addr");
    let (_ada, _) =
        common::ssh_client::Terminal::first_login(ssh_addr, "ada", "kx7p-2mqa-h4rt", 120, 40)
            .await
            .expect("ada logs in");
    let log = room.join("classroom.log");
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = size(&log);
    let long = "a".repeat(60 * 1024);
    let mut sent = 0u64;
    for i in 0..400 {
        // Ada's service (a route, an unknown route), anonymously.
        let url = match i % 2 {
            0 => format!("{origin}/l/ada/v1/studies/{long}"),
            _ => format!("{origin}/l/ada/{long}"),
        };
        if client.get(&url).send().await.is_ok() {
            sent += 1;
        }
    }
    // The log is written off the request path: let it catch up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = size(&log) + size(&room.join("classroom.log.1")) - before;
    assert!(sent >= 300, "only {sent} requests went through");
    assert!(
        grown < 256 * 1024,
        "{sent} requests of 60 KiB paths grew the log by {grown} bytes"
    );
    eprintln!("{sent} requests of 60 KiB paths grew classroom.log by {grown} bytes");
    // Everything the classroom wrote — the log, the learner's service, its data — is private.
    #[cfg(unix)]
    {
        let open = common::open_to_others(&room);
        assert!(open.is_empty(), "open to others: {open:#?}");
    }
    let _ = child.start_kill();
}

/// Issue 16: the instructor takes a squatted (or unused) name out of the room with `classroom remove`:
/// its entry, service and verdicts go, and the name logs in as new with the class code again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instructor_removes_a_learner_and_the_name_is_free_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let peer: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
    match c.core.ssh_login(peer, "squatter", "right-code").await {
        dicomlab_classroom::SshLogin::Learner { .. } => {}
        other => panic!("{other:?}"),
    }
    c.core.join(&name("squatter")).await.expect("a service");
    assert!(dir.path().join("learners/squatter/service").exists());
    c.shutdown().await;
    let out = std::process::Command::new(dicomlab_testkit::exe())
        .args(["classroom", "remove", "squatter", "--dir"])
        .arg(dir.path())
        .output()
        .expect("classroom remove");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("learners/squatter").exists());
    let kept = std::fs::read_to_string(dir.path().join("learners.json")).expect("learners");
    assert!(!kept.contains("squatter"), "{kept}");
    // Removing someone who is not there says so.
    let out = std::process::Command::new(dicomlab_testkit::exe())
        .args(["classroom", "remove", "nobody", "--dir"])
        .arg(dir.path())
        .output()
        .expect("classroom remove");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no learner 'nobody'"));
    // The name is free: the class code logs it in as new (a new personal code).
    let c = open(dir.path(), "right-code").await;
    match c.core.ssh_login(peer, "squatter", "right-code").await {
        dicomlab_classroom::SshLogin::Learner { issued, .. } => assert!(issued.is_some()),
        other => panic!("{other:?}"),
    }
    c.shutdown().await;
}

/// Issue 16: one address brings at most 40 new names into the room at once (a room behind one NAT
/// address joins together), then one every 30 s: a class-code holder cannot squat the room's names.
/// Other addresses, and the learners already in, are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_squat_the_rooms_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open(dir.path(), "right-code").await;
    let squatter: std::net::IpAddr = "10.0.0.66".parse().expect("ip");
    for i in 0..40 {
        match c
            .core
            .ssh_login(squatter, &format!("name-{i}"), "right-code")
            .await
        {
            dicomlab_classroom::SshLogin::Learner { .. } => {}
            other => panic!("name-{i}: {other:?}"),
        }
    }
    match c.core.ssh_login(squatter, "name-40", "right-code").await {
        dicomlab_classroom::SshLogin::Told(why) => {
            assert!(why.contains("many new names"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // Its reports are held back the same way (429, with the wait).
    let report = json!({"code": "right-code", "name": "fake-report", "lab": "dicom-service",
        "target": "azure", "steps": {}});
    let other: std::net::IpAddr = "10.0.0.7".parse().expect("ip");
    match c.core.ssh_login(other, "grace", "right-code").await {
        dicomlab_classroom::SshLogin::Learner { issued, .. } => assert!(issued.is_some()),
        other => panic!("another address: {other:?}"),
    }
    // From the loopback address of the test, a self-report is a new name too: 40 pass, then 429.
    let http = reqwest::Client::new();
    let url = format!("http://{}/classroom/join", c.http_addr);
    let mut last = 0;
    for i in 0..41 {
        let mut r = report.clone();
        r["name"] = json!(format!("report-{i}"));
        last = http
            .post(&url)
            .json(&r)
            .send()
            .await
            .expect("join")
            .status()
            .as_u16();
        if last != 200 {
            assert_eq!(i, 40, "refused early, at {i}: {last}");
        }
    }
    assert_eq!(last, 429);
    c.shutdown().await;
}

/// Issue 16: guesses at the class code sent at once from one address gain nothing — while the wait
/// after a wrong one runs, the next are not even looked at (the right code included) and do not
/// make the wait grow; a wrong self-report token's announced wait holds (429), the right token is
/// always let in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_are_not_looked_at_and_announced_waits_hold() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = open_with(dir.path(), "right-code", |c| {
        c.first_refusal_delay = Duration::from_secs(2)
    })
    .await;
    let peer: std::net::IpAddr = "10.0.0.9".parse().expect("ip");
    let mut waits = Vec::new();
    for i in 0..10 {
        match c
            .core
            .ssh_login(peer, &format!("guess-{i}"), "wrong-code")
            .await
        {
            dicomlab_classroom::SshLogin::Wrong(w) => waits.push(w),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        waits.iter().all(|w| *w <= Duration::from_secs(2)),
        "one guess counted, the others waited for it: {waits:?}"
    );
    // Within the wait even the right code is not looked at; after it, it is.
    assert!(matches!(
        c.core.ssh_login(peer, "late", "right-code").await,
        dicomlab_classroom::SshLogin::Wrong(_)
    ));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        c.core.ssh_login(peer, "late", "right-code").await,
        dicomlab_classroom::SshLogin::Learner { .. }
    ));

    // A self-reporter's token.
    let http = reqwest::Client::new();
    let url = format!("http://{}/classroom/join", c.http_addr);
    let report = |token: Option<&str>| {
        let mut r = json!({"code": "right-code", "name": "dora", "lab": "dicom-service",
            "target": "azure", "steps": {}});
        if let Some(t) = token {
            r["token"] = json!(t);
        }
        http.post(&url).json(&r).send()
    };
    let first = report(None).await.expect("first report");
    assert_eq!(first.status(), 200);
    let token = first
        .headers()
        .get("x-dicomlab-join-token")
        .and_then(|v| v.to_str().ok())
        .expect("a token")
        .to_string();
    let wrong = report(Some("not-the-token")).await.expect("wrong");
    assert_eq!(wrong.status(), 403);
    assert!(wrong.headers().contains_key("retry-after"));
    let again = report(Some("not-the-token-either")).await.expect("again");
    assert_eq!(again.status(), 429, "the announced wait holds");
    let right = report(Some(&token)).await.expect("right");
    assert_eq!(right.status(), 200, "the right token is always let in");
    c.shutdown().await;
}
