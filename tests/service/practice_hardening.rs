//! Hostile input, slow clients and faults against a real `dicomlab serve` process: each test checks the
//! answer, that the process lives on, and that its peak memory (VmHWM, reset before the attack) stayed
//! bounded.

use dicomlab_testkit as common;
use dicomlab_testkit::served;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{DICOM_JSON, first_str, split_multipart, uid, values};
use dicomlab_dicom::hostile;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;
use served::Served;

/// The FailureReason and the first ErrorComment of the first failed item.
fn failure(body: &Value) -> (Option<String>, String) {
    let item = &values(body, "00081198")[0];
    let comment = values(item, "00741048")
        .first()
        .and_then(|c| first_str(c, "00000902"))
        .unwrap_or_default();
    (first_str(item, "00081197"), comment)
}

fn ids() -> (String, String, String) {
    (uid(), uid(), uid())
}

/// Baseline memory after start-up, then the peak is reset.
fn baseline(s: &Served) -> u64 {
    let rss = s.rss_mib();
    s.reset_peak();
    rss
}

#[tokio::test]
async fn hostile_files_are_refused_with_a_reason_and_the_service_lives_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Served::start(&dir.path().join("data"), &[]);
    let token = s.token().await;
    let base = baseline(&s);

    // 2,000 nested sequences (56 KB): once a stack overflow that killed the process.
    let (st, se, sop) = ids();
    let (status, body) = s
        .store(&token, hostile::deeply_nested(&st, &se, &sop, 2_000))
        .await;
    assert_eq!(status, 409, "{body}");
    let (reason, comment) = failure(&body);
    assert_eq!(reason.as_deref(), Some("43264"));
    assert!(comment.contains("nested more than 32 deep"), "{comment}");

    // Four 400-byte files whose PixelData declares 4 GiB, at once: nothing is allocated for them.
    let lies = (0..4).map(|_| {
        let (st, se, sop) = ids();
        s.store(&token, hostile::lying_length(&st, &se, &sop, 0xFFFF_FFF0))
    });
    for (status, body) in futures_util::future::join_all(lies).await {
        assert_eq!(status, 409, "{body}");
        let (_, comment) = failure(&body);
        assert!(comment.contains("declares 4294967280 bytes"), "{comment}");
    }

    // 2^30 frames of 32768²: the size is computed with checked arithmetic.
    let (st, se, sop) = ids();
    let (status, body) = s
        .store(&token, hostile::pixel_overflow(&st, &se, &sop))
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, comment) = failure(&body);
    assert!(
        comment.contains("overflows") || comment.contains("PixelData holds"),
        "{comment}"
    );

    // A deflated data set that inflates past the cap (512 MiB) is refused while it inflates.
    let (st, se, sop) = ids();
    let bomb = hostile::deflate_bomb(&st, &se, &sop, 600 * 1024 * 1024);
    assert!(bomb.len() < 4 * 1024 * 1024, "{}", bomb.len());
    let (status, body) = s.store(&token, bomb).await;
    assert_eq!(status, 409, "{body}");
    let (_, comment) = failure(&body);
    assert!(comment.contains("inflates past"), "{comment}");

    // 32 levels are stored and their metadata reads back whole; 33 are refused at the door.
    let (st, se, sop) = ids();
    let (status, body) = s
        .store(&token, hostile::deeply_nested(&st, &se, &sop, 32))
        .await;
    assert_eq!(status, 200, "{body}");
    let r = reqwest::Client::new()
        .get(s.url(&format!(
            "studies/{st}/series/{se}/instances/{sop}/metadata"
        )))
        .bearer_auth(&token)
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("metadata");
    assert_eq!(r.status(), 200);
    let meta: Value = r.json().await.expect("metadata parses back");
    assert!(meta[0]["00081140"]["Value"][0].is_object(), "{meta}");
    let (st, se, sop) = ids();
    let (status, _) = s
        .store(&token, hostile::deeply_nested(&st, &se, &sop, 33))
        .await;
    assert_eq!(status, 409);

    // A meta group without (0002,0000), as pydicom and dicomweb-client send: stored, and retrievable.
    let (st, se, sop) = ids();
    let file = hostile::without_group_length(&st, &se, &sop);
    let (status, body) = s.store(&token, file.clone()).await;
    assert_eq!(status, 200, "{body}");
    let r = reqwest::Client::new()
        .get(s.url(&format!("studies/{st}/series/{se}/instances/{sop}")))
        .bearer_auth(&token)
        .header(ACCEPT, "application/dicom; transfer-syntax=*")
        .send()
        .await
        .expect("retrieve");
    assert_eq!(r.status(), 200);
    // Stored in the standard form: the same bytes with the group length added, which dicom-rs reads.
    let stored = r.bytes().await.expect("bytes");
    assert_eq!(stored.len(), file.len() + 12);
    assert_eq!(&stored[144..], &file[132..]);
    dicom_object::OpenFileOptions::new()
        .from_reader(&stored[128..])
        .expect("a strict reader reads the stored file");
    let r = reqwest::Client::new()
        .get(s.url(&format!(
            "studies/{st}/series/{se}/instances/{sop}/frames/1"
        )))
        .bearer_auth(&token)
        .header(ACCEPT, "application/octet-stream; transfer-syntax=*")
        .send()
        .await
        .expect("frame");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("bytes").as_ref(), &[0, 64, 128, 255]);

    s.assert_healthy(base + 120).await;
}

#[tokio::test]
async fn validation_memory_is_bounded_by_bytes_not_count() {
    let dir = tempfile::tempdir().expect("tmp");
    // 128 MiB: 96 for validation, so one 16 MiB header (about 64 MiB to validate) at a time.
    let mut s = Served::start(&dir.path().join("data"), &["--memory-mib", "128"]);
    let token = s.token().await;
    let study = uid();
    let files: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            hostile::big_header(
                &study,
                &format!("{study}.1"),
                &format!("{study}.{i}.9"),
                16 << 20,
            )
        })
        .collect();
    let base = baseline(&s);
    let started = Instant::now();
    let stores = files.into_iter().map(|f| s.store(&token, f));
    for (status, body) in futures_util::future::join_all(stores).await {
        assert_eq!(status, 200, "{body}");
    }
    let peak = s.peak_mib();
    eprintln!(
        "12 × 16 MiB headers at once: peak {peak} MiB (base {base} MiB), {:?}",
        started.elapsed()
    );
    // Unbounded, eight blocking threads would hold 8 × 16 MiB (and their copies) at once.
    assert!(peak < base + 80, "peak {peak} MiB, base {base} MiB");
    // A header that could never fit the budget is refused with the reason, not waited for.
    let (status, body) = s
        .store(
            &token,
            hostile::big_header(
                &study,
                &format!("{study}.1"),
                &format!("{study}.99"),
                30 << 20,
            ),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, comment) = failure(&body);
    assert!(
        comment.contains("more than the service allows"),
        "{comment}"
    );
    s.assert_healthy(base + 120).await;
}

fn related(boundary: &str) -> String {
    format!("multipart/related; type=\"application/dicom\"; boundary={boundary}")
}

async fn post_related(
    s: &Served,
    token: &str,
    body: reqwest::Body,
) -> Result<(u16, String), String> {
    let r = reqwest::Client::new()
        .post(s.url("studies"))
        .bearer_auth(token)
        .header(ACCEPT, DICOM_JSON)
        .header(CONTENT_TYPE, related("b"))
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.unwrap_or_default()))
}

#[tokio::test]
async fn multipart_bodies_are_bounded_and_linear() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Served::start(&dir.path().join("data"), &[]);
    let token = s.token().await;
    let base = baseline(&s);

    // No boundary within 64 KiB: 400 with the reason.
    let (status, text) = post_related(&s, &token, vec![b'a'; 200_000].into())
        .await
        .expect("answer");
    assert_eq!(status, 400);
    assert!(
        text.contains("no boundary within the first 65536 bytes"),
        "{text}"
    );

    // Part headers that never end, 300 MB of them: refused at 64 KiB, never buffered.
    let mut head = b"--b\r\nContent-Type: application/dicom\r\nX-Filler: ".to_vec();
    head.extend(vec![b'a'; 1 << 20]);
    let chunk = bytes::Bytes::from(vec![b'a'; 1 << 20]);
    let chunks = std::iter::once(bytes::Bytes::from(head))
        .chain(std::iter::repeat_n(chunk, 300))
        .map(Ok::<_, std::io::Error>);
    match post_related(
        &s,
        &token,
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
    )
    .await
    {
        Ok((status, text)) => {
            assert_eq!(status, 400, "{text}");
            assert!(
                text.contains("headers do not end within 65536 bytes"),
                "{text}"
            );
        }
        // The service answered and closed while the client was still sending.
        Err(e) => eprintln!("endless headers: the client saw {e}"),
    }

    // Too many parts.
    let tiny = |n: usize| {
        let mut b = Vec::with_capacity(n * 50);
        for _ in 0..n {
            b.extend_from_slice(b"--b\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n");
        }
        b.extend_from_slice(b"--b--\r\n");
        b
    };
    let (status, text) = post_related(&s, &token, tiny(10_001).into())
        .await
        .expect("answer");
    assert_eq!(status, 400);
    assert!(text.contains("more than 10000 parts"), "{text}");

    // Linear in the number of parts: 10,000 tiny parts cost about five times 2,000.
    let time = |n: usize| {
        let body = tiny(n);
        let (s, token) = (&s, &token);
        async move {
            let t = Instant::now();
            let (status, text) = post_related(s, token, body.into()).await.expect("answer");
            assert_eq!(status, 409, "{}", &text[..text.len().min(300)]);
            t.elapsed()
        }
    };
    let small = time(2_000).await;
    let large = time(10_000).await;
    eprintln!("2,000 tiny parts: {small:?}; 10,000: {large:?}");
    assert!(large < Duration::from_secs(15), "{large:?}");
    assert!(
        large < small * 10 + Duration::from_millis(500),
        "2,000 parts {small:?}, 10,000 parts {large:?}: not linear"
    );
    s.assert_healthy(base + 35).await;
}

/// Sends `head` on a fresh connection and returns it.
fn raw(s: &Served, head: &str) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.write_all(head.as_bytes()).expect("write");
    c
}

/// Reads what the server sends until it closes or `limit` passes.
fn read_until_closed(c: &mut TcpStream, limit: Duration) -> (String, bool) {
    c.set_read_timeout(Some(limit)).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&out).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

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

#[tokio::test]
async fn a_foreign_data_folder_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let foreign = dir.path().join("documents");
    std::fs::create_dir_all(foreign.join("tmp")).expect("mkdir");
    std::fs::create_dir_all(foreign.join("blobs/ab")).expect("mkdir");
    std::fs::write(foreign.join("tmp/draft.txt"), "mine").expect("write");
    std::fs::write(foreign.join("blobs/ab/photo.dcm"), "mine").expect("write");
    std::fs::write(foreign.join("thesis.txt"), "mine").expect("write");
    let err = Served::try_start_on(&foreign, served::free_port(), "127.0.0.1", &[])
        .err()
        .expect("refused");
    assert!(
        err.contains("not empty and was not created by `dicomlab serve`"),
        "{err}"
    );
    for f in ["tmp/draft.txt", "blobs/ab/photo.dcm", "thesis.txt"] {
        assert!(foreign.join(f).exists(), "{f} was touched");
    }
    assert!(!foreign.join(".dicomlab-practice").exists());

    let fresh = dir.path().join("fresh");
    let mut s = Served::start(&fresh, &[]);
    assert!(fresh.join(".dicomlab-practice").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), 0o700);
        for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
            let p = fresh.join(f);
            if p.exists() {
                assert_eq!(mode(&p), 0o600, "{f}");
            }
        }
    }
    s.assert_healthy(200).await;
}

/// Signs claims with the service's own key (read from its index, as an attacker with a copy could).
fn sign(s: &Served, claims: &Value) -> String {
    let c = rusqlite::Connection::open(s.data.join("index.sqlite")).expect("index");
    let key: String = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'signing_key'",
            [],
            |r| r.get(0),
        )
        .expect("key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("sign")
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("claims")
}

#[tokio::test]
async fn tokens_must_name_their_client_and_admin_routes_refuse_cross_site_requests() {
    let dir = tempfile::tempdir().expect("tmp");
    // On [::]: loopback IPv4 clients arrive as ::ffff:127.0.0.1.
    let mut s = Served::start_on(&dir.path().join("data"), served::free_port(), "[::]", &[]);
    let token = s.token().await;
    let http = reqwest::Client::new();
    let read = |t: String| http.get(s.url("changefeed?limit=1")).bearer_auth(t).send();
    assert_eq!(read(token.clone()).await.expect("send").status(), 200);
    let good = claims_of(&token);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: [(&str, Edit, &str); 4] = [
        (
            "no appid",
            Box::new(|c| _ = c.as_object_mut().map(|o| o.remove("appid"))),
            "names no client",
        ),
        (
            "other tenant",
            Box::new(|c| c["tid"] = "11111111-1111-1111-1111-111111111111".into()),
            "another tenant",
        ),
        (
            "other issuer",
            Box::new(|c| c["iss"] = "https://sts.windows.net/evil/".into()),
            "issuer is invalid",
        ),
        (
            "not yet valid",
            Box::new(move |c| c["nbf"] = (now + 3600).into()),
            "not valid yet",
        ),
    ];
    for (what, edit, why) in cases {
        let mut c = good.clone();
        edit(&mut c);
        let r = read(sign(&s, &c)).await.expect("send");
        assert_eq!(r.status(), 401, "{what}");
        let www = r.headers()["www-authenticate"]
            .to_str()
            .expect("header")
            .to_string();
        assert!(www.contains(why), "{what}: {www}");
    }

    let grant = format!(
        "{}/admin/roles/{}/DICOM%20Data%20Owner",
        s.origin, s.client_id
    );
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let refused: [(&str, Headers, &str); 3] = [
        ("no admin header", vec![], "X-Dicomlab-Admin"),
        (
            "a rebound name",
            vec![("X-Dicomlab-Admin", "1"), ("Host", "evil.example:8042")],
            "addressed to this machine",
        ),
        (
            "a foreign page",
            vec![("X-Dicomlab-Admin", "1"), ("Origin", "http://evil.example")],
            "other sites",
        ),
    ];
    for (what, headers, why) in refused {
        let mut req = http.put(&grant);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let r = req.send().await.expect("send");
        assert_eq!(r.status(), 403, "{what}");
        let text = r.text().await.expect("text");
        assert!(text.contains(why), "{what}: {text}");
    }
    let r = http
        .put(&grant)
        .header("X-Dicomlab-Admin", "1")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "an IPv4-mapped loopback peer is loopback");
    s.assert_healthy(200).await;
}

#[tokio::test]
async fn a_retrieve_during_a_delete_sends_whole_parts() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut s = Served::start(&data, &[]);
    let token = s.token().await;
    let (study, series) = (uid(), uid());
    let files: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            hostile::image(
                &study,
                &series,
                &format!("{series}.{i}"),
                2000,
                2000,
                i as u8,
            )
        })
        .collect();
    for f in &files {
        let (status, body) = s.store(&token, f.clone()).await;
        assert_eq!(status, 200, "{body}");
    }
    let base = baseline(&s);
    let http = reqwest::Client::new();
    let retrieve_study = || {
        http.get(s.url(&format!("studies/{study}")))
            .bearer_auth(&token)
            .header(
                ACCEPT,
                "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
            )
            .send()
    };
    let retrieve_study = || async { retrieve_study().await.expect("retrieve") };
    let mut r = retrieve_study().await;
    assert_eq!(r.status(), 200);
    let ct = r.headers()[CONTENT_TYPE].to_str().expect("ct").to_string();
    let mut body = r
        .chunk()
        .await
        .expect("chunk")
        .expect("first chunk")
        .to_vec();
    let d = http
        .delete(s.url(&format!("studies/{study}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(d.status(), 204);
    while let Some(chunk) = r.chunk().await.expect("chunk") {
        body.extend_from_slice(&chunk);
    }
    let parts = split_multipart(&ct, &body);
    assert_eq!(parts.len(), 3);
    for (part, file) in parts.iter().zip(&files) {
        assert_eq!(part.1.len(), file.len());
        assert!(part.1 == *file, "a part was cut");
    }
    // Gone now, files included.
    let r = retrieve_study().await;
    assert_eq!(r.status(), 404);
    let left: usize = std::fs::read_dir(data.join("blobs"))
        .expect("blobs")
        .filter_map(Result::ok)
        .map(|shard| std::fs::read_dir(shard.path()).map_or(0, |d| d.count()))
        .sum();
    assert_eq!(
        left, 0,
        "the deleted files are removed once the retrieve is done"
    );
    s.assert_healthy(base + 60).await;
}

#[tokio::test]
async fn a_thousand_word_fuzzy_search_is_400_with_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Served::start(&dir.path().join("data"), &[]);
    let token = s.token().await;
    let base = baseline(&s);
    let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
    let r = reqwest::Client::new()
        .get(s.url(&format!(
            "studies?fuzzymatching=true&PatientName={}",
            words.join("%5E")
        )))
        .bearer_auth(&token)
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("search");
    assert_eq!(r.status(), 400);
    let text = r.text().await.expect("text");
    assert!(text.contains("1000 words; at most 32"), "{text}");
    // Many parameters too.
    let many: Vec<String> = (0..65).map(|i| format!("x{i}=1")).collect();
    let r = reqwest::Client::new()
        .get(s.url(&format!("studies?{}", many.join("&"))))
        .bearer_auth(&token)
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("search");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("at most 64"));
    s.assert_healthy(base + 60).await;
}

/// What `dicomweb-client`'s `store_instances` sends for a dataset built in memory with pydicom (a meta
/// group without (0002,0000)) is stored. Skipped when Python, pydicom or dicomweb-client is missing.
#[tokio::test]
async fn a_pydicom_in_memory_dataset_from_dicomweb_client_is_stored() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import pydicom, dicomweb_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: python3 with pydicom and dicomweb-client is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Served::start(&dir.path().join("data"), &[]);
    let token = s.token().await;
    let rss = baseline(&s);
    let (study, series, sop) = ids();
    let base = format!("{}/v1", s.origin);
    let script = format!(
        r#"
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from dicomweb_client.api import DICOMwebClient
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
meta.MediaStorageSOPInstanceUID = "{sop}"
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset()
ds.file_meta = meta
ds.SOPClassUID = meta.MediaStorageSOPClassUID
ds.SOPInstanceUID = "{sop}"
ds.StudyInstanceUID = "{study}"
ds.SeriesInstanceUID = "{series}"
ds.PatientID = "PYDICOM"
ds.PatientName = "In^Memory"
ds.Modality = "OT"
client = DICOMwebClient("{base}", headers={{"Authorization": "Bearer {token}"}})
client.store_instances([ds])
found = client.search_for_instances(search_filters={{"SOPInstanceUID": "{sop}"}})
assert len(found) == 1, found
print("stored")
"#
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.assert_healthy(rss + 60).await;
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

/// Issue 16: requests without a valid token cannot make the audit log (and every check that reads it)
/// costly. 32,000 anonymous requests with 2 KiB URIs and User-Agents against a real `dicomlab serve`:
/// the log keeps a few small rows of them (as many as a person makes), and the learner's next check —
/// a query that wants the newest 100 rows — reads what it returns, not the table: fast, and the
/// process's memory stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_floods_cost_the_audit_log_and_its_queries_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut svc = served::Served::start(&dir.path().join("data"), &[]);
    let http = reqwest::Client::new();
    let long = "x".repeat(2000);
    let flood_from = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let (http, url, ua) = (
            http.clone(),
            svc.url(&format!("studies/{long}")),
            format!("flood-{t}/{long}"),
        );
        tasks.spawn(async move {
            let mut answered = 0u32;
            for _ in 0..4_000 {
                if let Ok(r) = http.get(&url).header("User-Agent", &ua).send().await {
                    answered += u32::from(r.status() == 401);
                }
            }
            answered
        });
    }
    let mut refused = 0;
    while let Some(n) = tasks.join_next().await {
        refused += n.expect("flood task");
    }
    let flood = flood_from.elapsed();
    assert_eq!(refused, 32_000, "every anonymous request is a 401");

    // The learner's query, as a check sends it.
    let token = |resource: &'static str| {
        let http = http.clone();
        let url = format!("{}/{}/oauth2/token", svc.origin, svc.tenant_id);
        let form = [
            ("grant_type", "client_credentials".to_string()),
            ("client_id", svc.client_id.clone()),
            ("client_secret", svc.client_secret.clone()),
            ("resource", resource.to_string()),
        ];
        async move {
            let v: Value = http
                .post(url)
                .form(&form)
                .send()
                .await
                .expect("token")
                .json()
                .await
                .expect("json");
            v["access_token"].as_str().expect("token").to_string()
        }
    };
    let la = token("https://api.loganalytics.io").await;
    let workspace: Value = http
        .get(format!("{}/loganalytics/v1/workspaces", svc.origin))
        .send()
        .await
        .expect("workspaces")
        .json()
        .await
        .expect("json");
    let workspace = workspace[0]["id"].as_str().expect("id").to_string();
    let query = |kql: &str| {
        http.post(format!(
            "{}/loganalytics/v1/workspaces/{workspace}/query",
            svc.origin
        ))
        .bearer_auth(&la)
        .json(&serde_json::json!({ "query": kql }))
        .send()
    };
    // The audit log is written a moment after the requests.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let all: Value = query("AHDSDicomAuditLogs | take 30000")
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    let rows = all["tables"][0]["rows"].as_array().expect("rows");
    // A burst, then a couple a second: never the flood.
    let bound = 60 + (flood.as_secs_f64() * 2.0).ceil() as usize + 2;
    assert!(
        rows.len() <= bound,
        "{} rows kept of 32,000 anonymous requests in {flood:?} (bound {bound})",
        rows.len()
    );
    let uri = all["tables"][0]["columns"]
        .as_array()
        .and_then(|c| c.iter().position(|c| c["name"] == "Uri"))
        .expect("Uri");
    assert!(
        rows.iter()
            .all(|r| r[uri].as_str().is_some_and(|u| u.len() <= 256)),
        "anonymous rows are small"
    );

    // A learner's own requests are recorded whole, however many (16,000 of 2 KiB here)...
    let dicom = token("https://dicom.healthcareapis.azure.com").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url, dicom) = (
            http.clone(),
            svc.url(&format!("studies?StudyDescription={long}")),
            dicom.clone(),
        );
        tasks.spawn(async move {
            for _ in 0..2_000 {
                let _ = http.get(&url).bearer_auth(&dicom).send().await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // ...and the check's query, which wants the newest 100, reads about that many.
    let r = http
        .get(svc.url("studies?PatientID=mine"))
        .bearer_auth(&dicom)
        .send()
        .await
        .expect("search");
    assert!(r.status() == 204 || r.status() == 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    svc.reset_peak();
    let asked = Instant::now();
    let mine: Value = query(
        "AHDSDicomAuditLogs | where TimeGenerated >= ago(1h) and ResultType != \"Started\" | order by TimeGenerated desc | take 100",
    )
    .await
    .expect("query")
    .json()
    .await
    .expect("json");
    let took = asked.elapsed();
    let mine = mine["tables"][0]["rows"].as_array().expect("rows");
    assert!(
        mine.iter().any(|r| r[uri]
            .as_str()
            .is_some_and(|u| u.contains("PatientID=mine"))),
        "the learner's request is in the log"
    );
    eprintln!(
        "32,000 anonymous requests in {flood:?} kept {} rows; the check's query took {took:?}",
        rows.len()
    );
    svc.assert_healthy(64).await;
}

/// Issue 16: a served practice service's data — marker, lock, index, blob folders, stored
/// instances — is its owner's only, whatever made each file.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_the_service_writes_is_private() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let svc = served::Served::start(&data, &[]);
    let token = svc.token().await;
    for file in common::sample_files() {
        let (status, _) = svc.store(&token, file).await;
        assert_eq!(status, 200);
    }
    // A multipart upload large enough to be spilled to disk on its way.
    let big = common::instance(&uid(), &uid(), &uid(), &[]);
    let (ct, body) = common::multipart_related(&[big.clone(), big]);
    let r = reqwest::Client::new()
        .post(svc.url("studies"))
        .bearer_auth(&token)
        .header(CONTENT_TYPE, ct)
        .body(body)
        .send()
        .await
        .expect("store");
    assert!(r.status().is_success() || r.status() == 409);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let open = common::open_to_others(&data);
    assert!(open.is_empty(), "open to others: {open:#?}");
}
