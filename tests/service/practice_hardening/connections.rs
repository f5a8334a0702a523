//! Connections: slow and excess ones dropped with reasons, a client that stops reading, a refused store
//! that asked first, and stop signals despite half-sent requests.

use super::*;

#[tokio::test]
async fn slow_and_excess_connections_are_dropped_with_reasons() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Served::start(
        &dir.path().join("data"),
        &[
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
            "--max-connections",
            "16",
        ],
    );
    let token = s.token().await;
    let base = baseline(&s);
    // Sixteen half-sent request heads take every slot…
    let mut slow: Vec<TcpStream> = (0..16)
        .map(|_| raw(&s, "GET /health/check HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // …so one more is told why, and closed.
    let mut extra = raw(&s, "GET /health/check HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("16 connections open, its limit"),
        "{answer}"
    );
    assert!(closed);
    // The half-sent heads are dropped after the header timeout (1 s)…
    let started = Instant::now();
    for c in &mut slow {
        let (_, closed) = read_until_closed(c, Duration::from_secs(5));
        assert!(closed, "a half-sent head was kept");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // …and the service answers again.
    let r = reqwest::get(format!("{}/health/check", s.origin))
        .await
        .expect("health");
    assert_eq!(r.status(), 200);
    // A body that stops arriving: 408 with the reason.
    let mut stalled = raw(
        &s,
        &format!(
            "POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nAccept: application/dicom+json\r\nContent-Type: application/dicom\r\nContent-Length: 100000\r\n\r\n0123456789"
        ),
    );
    let (answer, _) = read_until_closed(&mut stalled, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("stalled"), "{answer}");
    // So does a body that trickles into any other route (a JSON one, a form one): answered and closed.
    let token_route = format!("/{}/oauth2/token", s.tenant_id);
    for (route, kind) in [
        ("/v1/extendedquerytags", "application/json"),
        (token_route.as_str(), "application/x-www-form-urlencoded"),
    ] {
        let mut trickle = raw(
            &s,
            &format!(
                "POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: {kind}\r\nContent-Length: 5000\r\n\r\n[{{\"path\":"
            ),
        );
        let (answer, closed) = read_until_closed(&mut trickle, Duration::from_secs(5));
        assert!(closed, "{route}: a stalled body kept its connection");
        assert!(answer.starts_with("HTTP/1.1 408"), "{route}: {answer}");
        assert!(answer.contains("stalled"), "{route}: {answer}");
    }
    // A body that trickles — a byte every 300 ms, never idle for the body timeout, far below 1 KiB/s
    // — is cut off too, soon after the body timeout.
    let mut trickle = raw(
        &s,
        &format!(
            "POST /v1/extendedquerytags HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n["
        ),
    );
    let mut writer = trickle.try_clone().expect("clone");
    let dripping = std::thread::spawn(move || {
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(300));
            if writer.write_all(b" ").is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut trickle, Duration::from_secs(10));
    assert!(closed, "a trickling body kept its connection");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let _ = dripping.join();
    s.assert_healthy(base + 60).await;
}

#[tokio::test]
async fn stop_signals_end_the_process_within_the_grace_despite_half_sent_requests() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Served::start(&dir.path().join("data"), &["--shutdown-grace", "1"]);
        let token = s.token().await;
        let _head = raw(&s, "GET /health/check HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        let _body = raw(
            &s,
            &format!(
                "POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nAccept: application/dicom+json\r\nContent-Type: application/dicom\r\nContent-Length: 100000\r\n\r\nhalf"
            ),
        );
        std::thread::sleep(Duration::from_millis(300));
        let took = s.signal_and_wait(signal, Duration::from_secs(10));
        let took = took.unwrap_or_else(|| panic!("SIG{signal}: still running after 10 s"));
        eprintln!("SIG{signal}: exited after {took:?}");
        assert!(took < Duration::from_secs(4), "SIG{signal}: {took:?}");
    }
}

/// A client that asks for a large answer and stops reading it is dropped after the write timeout; the
/// service goes on.
#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Served::start(&dir.path().join("data"), &["--write-timeout", "1"]);
    let token = s.token().await;
    let (study, series, sop) = ids();
    // 42 MB: more than loopback's socket buffers hold.
    let big = hostile::image(&study, &series, &sop, 6500, 6500, 5);
    let (status, body) = s.store(&token, big.clone()).await;
    assert_eq!(status, 200, "{body}");
    let rss = baseline(&s);
    let mut c = raw(
        &s,
        &format!(
            "GET /v1/studies/{study}/series/{series}/instances/{sop} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nAccept: application/dicom; transfer-syntax=*\r\n\r\n"
        ),
    );
    std::thread::sleep(Duration::from_secs(4));
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    eprintln!(
        "read {got} of {} bytes before the service dropped the connection",
        big.len()
    );
    assert!(
        got < big.len(),
        "the whole answer arrived: the stalled writer was not dropped"
    );
    s.assert_healthy(rss + 80).await;
}

/// A store refused before its body is read (here: no token) is answered at once to a client that
/// asked first (`Expect: 100-continue`, as curl does for large bodies): no `100 Continue`, no body
/// sent for nothing.
#[tokio::test]
async fn a_refused_store_that_asked_first_is_answered_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Served::start(&dir.path().join("data"), &[]);
    let mut c = raw(
        &s,
        "POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/dicom+json\r\nContent-Type: application/dicom\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n",
    );
    let (answer, closed) = read_until_closed(&mut c, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(closed, "{answer}");
}
