//! The client against a hostile server on loopback: escape sequences in error text are shown, never
//! obeyed; an endless answer is refused at the cap; a multipart answer whose part headers never end is
//! refused within the window; absurdly nested JSON is not parsed (and does not crash).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use dicomlab_dicomweb::{AuthConfig, ClientError, DicomWebClient, Secret, TokenVersion};

const ESCAPES: &str =
    "bad \u{1b}]0;pwned\u{7}\u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{1b}[2J\u{1b}[H\r done";

async fn hostile() -> String {
    let endless = || {
        let chunk = bytes::Bytes::from(vec![b'x'; 1 << 20]);
        Body::from_stream(futures_util::stream::iter(
            std::iter::repeat_n(chunk, 200).map(Ok::<_, std::io::Error>),
        ))
    };
    let app = Router::new()
        .route(
            "/v1/studies",
            get(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "text/plain")],
                    ESCAPES,
                )
            }),
        )
        .route(
            "/v1/huge",
            get(move || async move { (StatusCode::OK, endless()) }),
        )
        .route(
            "/v1/studies/1.2.3",
            get(move || async move {
                let mut head = b"--b\r\nContent-Type: application/dicom\r\nX: ".to_vec();
                head.extend(vec![b'a'; 200_000]);
                (
                    StatusCode::OK,
                    [(
                        header::CONTENT_TYPE,
                        "multipart/related; type=\"application/dicom\"; boundary=b",
                    )],
                    head,
                )
                    .into_response()
            }),
        )
        .route(
            "/v1/deep",
            get(|| async {
                let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
                ([(header::CONTENT_TYPE, "application/dicom+json")], deep)
            }),
        )
        .route(
            "/tenant/oauth2/token",
            post(|| async {
                let body = serde_json::json!({
                    "error": "invalid_client\u{1b}[31m",
                    "error_description": format!("AADSTS7000215: {ESCAPES}"),
                    "error_codes": [7000215],
                });
                (StatusCode::UNAUTHORIZED, axum::Json(body))
            }),
        );
    crate::loopback::serve(app).await
}

#[tokio::test]
async fn a_hostile_server_cannot_reach_the_terminal_or_the_memory() {
    let origin = hostile().await;
    let (tx, mut exchanges) = tokio::sync::mpsc::unbounded_channel();
    let client = DicomWebClient::new(&format!("{origin}/v1"), AuthConfig::None)
        .expect("client")
        .with_sink(tx);

    // Escape sequences in an error message are shown as symbols.
    let a = client
        .get("studies", "application/dicom+json")
        .await
        .expect("answer");
    assert_eq!(a.status, 400);
    let text = a.text();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\r'),
        "{text:?}"
    );
    assert!(text.contains("␛]52;c;"), "{text}");
    let shown = exchanges.recv().await.expect("exchange");
    assert!(
        !shown.response_excerpt.contains('\u{1b}'),
        "{:?}",
        shown.response_excerpt
    );

    // An answer that never ends is refused at the cap (64 MiB), not held.
    let started = std::time::Instant::now();
    match client.get("huge", "application/dicom+json").await {
        Err(ClientError::TooLarge { max, .. }) => assert_eq!(max, 64 * 1024 * 1024),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));

    // A multipart answer whose part headers never end.
    let dir = tempfile::tempdir().expect("tmp");
    let err = client
        .retrieve_to_dir(
            "studies/1.2.3",
            "multipart/related; type=\"application/dicom\"",
            dir.path(),
        )
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("headers do not end within 65536 bytes"),
        "{err}"
    );
    // Counted only (a step's retrieve, nothing kept): refused the same.
    let err = client
        .retrieve_counted(
            "studies/1.2.3",
            "multipart/related; type=\"application/dicom\"",
        )
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("headers do not end within 65536 bytes"),
        "{err}"
    );

    // JSON nested 100,000 deep: not parsed, and no stack overflow.
    let a = client
        .get("deep", "application/dicom+json")
        .await
        .expect("answer");
    assert!(a.json().is_none());
    assert!(a.results().is_empty());

    // The token endpoint's error text, too.
    let azure = AuthConfig::Azure {
        authority: origin.clone(),
        tenant_id: "tenant".into(),
        client_id: "client".into(),
        client_secret: Secret::new("secret"),
        resource: "https://dicom.healthcareapis.azure.com".into(),
        token_version: TokenVersion::V1,
    };
    let client = DicomWebClient::new(&format!("{origin}/v1"), azure).expect("client");
    let err = client.fetch_token().await.expect_err("refused");
    let shown = err.to_string();
    assert!(!shown.contains('\u{1b}'), "{shown:?}");
    assert!(shown.contains("AADSTS7000215"), "{shown}");
}

#[tokio::test]
async fn a_change_feed_that_never_moves_ahead_is_read_in_bounded_pages() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // `latest` claims a sequence near u64::MAX; every page gives the same old entry back (a cursor
    // that does not move ahead). The reading must end, after a bounded number of requests.
    let pages = Arc::new(AtomicUsize::new(0));
    let counted = pages.clone();
    let entry = |seq: u64| {
        serde_json::json!({"Sequence": seq, "Action": "Create", "StudyInstanceUid": "1.2",
            "SeriesInstanceUid": "1.2.3", "SopInstanceUid": "1.2.3.4",
            "Timestamp": "2026-11-30T14:00:00Z"})
    };
    let app = Router::new()
        .route(
            "/v1/changefeed/latest",
            get(move || async move { axum::Json(entry(u64::MAX - 1)) }),
        )
        .route(
            "/v1/changefeed",
            get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { axum::Json(serde_json::json!([entry(1)])) }
            }),
        );
    let origin = crate::loopback::serve(app).await;
    let client = DicomWebClient::new(&format!("{origin}/v1"), AuthConfig::None).expect("client");
    let learner = dicomlab_lab::evidence::Learner::default();
    let records = tokio::time::timeout(
        Duration::from_secs(120),
        dicomlab_lab::evidence::gather(
            &client,
            dicomlab_lab::evidence::Sources::none(&learner),
            None,
            dicomlab_lab::evidence::Needs {
                feed: true,
                ..Default::default()
            },
        ),
    )
    .await
    .expect("the feed's reading ends")
    .expect("records");
    let n = pages.load(Ordering::SeqCst);
    assert!((1..=600).contains(&n), "{n} pages");
    assert!(records.feed.is_some_and(|f| !f.is_empty()));
}
