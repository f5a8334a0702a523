//! Client faults against a real (tiny) server on loopback: 503 / 429 are retried, honouring Retry-After;
//! an answer that stays busy is returned as it is after the retries. And a single-part retrieve's
//! body is written whole, or only counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use dicomlab_dicomweb::{AuthConfig, DicomWebClient};

async fn serve(busy_times: usize, status: StatusCode) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/v1/studies",
        get(move || {
            let h = h.clone();
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                let mut headers = HeaderMap::new();
                if n < busy_times {
                    headers.insert("retry-after", "1".parse().expect("header"));
                    (status, headers, "busy")
                } else {
                    (StatusCode::OK, headers, "[]")
                }
            }
        }),
    );
    let origin = crate::loopback::serve(app).await;
    (format!("{origin}/v1"), hits)
}

#[tokio::test]
async fn busy_answers_are_retried_after_retry_after() {
    for status in [
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let (base, hits) = serve(2, status).await;
        let client = DicomWebClient::new(&base, AuthConfig::None).expect("client");
        let start = Instant::now();
        let a = client
            .get("studies", "application/dicom+json")
            .await
            .expect("answer");
        assert_eq!(a.status, 200);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert!(
            start.elapsed() >= Duration::from_secs(2),
            "waited Retry-After (1 s) twice"
        );
    }
}

#[tokio::test]
async fn a_server_that_stays_busy_gets_its_answer_back() {
    let (base, hits) = serve(100, StatusCode::SERVICE_UNAVAILABLE).await;
    let client = DicomWebClient::new(&base, AuthConfig::None).expect("client");
    let a = client
        .get("studies", "application/dicom+json")
        .await
        .expect("answer");
    assert_eq!(a.status, 503);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "the first try and three retries"
    );
}

/// STOW bodies are streamed without `Expect: 100-continue` (some gateways mishandle it).
#[tokio::test]
async fn stow_never_sends_expect_100_continue() {
    use axum::routing::post;
    let seen = Arc::new(std::sync::Mutex::new(Vec::<Option<String>>::new()));
    let s = seen.clone();
    let app = Router::new()
        .route(
            "/v1/studies",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let s = s.clone();
                async move {
                    if let Ok(mut v) = s.lock() {
                        v.push(
                            headers
                                .get("expect")
                                .and_then(|e| e.to_str().ok())
                                .map(str::to_string),
                        );
                    }
                    (StatusCode::OK, format!("{}", body.len()))
                }
            }),
        )
        // The samples are 2.9 MB: past axum's default 2 MB limit for `Bytes`.
        .layer(axum::extract::DefaultBodyLimit::disable());
    let origin = crate::loopback::serve(app).await;
    let dir = tempfile::tempdir().expect("tmp");
    let files = dicomlab_dicom::samples::write_samples(dir.path()).expect("samples");
    let client = DicomWebClient::new(&format!("{origin}/v1"), AuthConfig::None).expect("client");
    for mode in [
        dicomlab_dicomweb::StoreMode::Single,
        dicomlab_dicomweb::StoreMode::Multipart,
    ] {
        let answers = client
            .store(&files, mode, None, 2, None)
            .await
            .expect("store");
        assert!(answers.iter().all(|a| a.status == 200));
    }
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 4, "3 single-part requests and 1 multipart");
    assert!(seen.iter().all(Option::is_none), "{seen:?}");
}

/// A retrieve answered with one part (not multipart) is written to `part-1.dcm` whole, over several
/// of the writer's batches, or read and counted only.
#[tokio::test]
async fn a_single_part_retrieve_is_written_whole_or_counted() {
    let body: Vec<u8> = (0..3_300_000u32).map(|i| (i % 247) as u8).collect();
    let served = body.clone();
    let app = Router::new().route(
        "/v1/studies/1.2.3/series/4.5/instances/6.7",
        get(move || {
            let b = served.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/dicom")], b) }
        }),
    );
    let origin = crate::loopback::serve(app).await;
    let client = DicomWebClient::new(&format!("{origin}/v1"), AuthConfig::None).expect("client");
    let path = "studies/1.2.3/series/4.5/instances/6.7";
    let dir = tempfile::tempdir().expect("tmp");
    let (a, parts) = client
        .retrieve_to_dir(path, "application/dicom; transfer-syntax=*", dir.path())
        .await
        .expect("retrieve");
    assert_eq!(a.status, 200);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].size, body.len() as u64);
    assert!(std::fs::read(&parts[0].path).expect("read") == body);
    let (a, parts) = client
        .retrieve_counted(path, "application/dicom; transfer-syntax=*")
        .await
        .expect("retrieve");
    assert_eq!(a.status, 200);
    assert_eq!(parts[0].size, body.len() as u64);
    assert!(parts[0].path.as_os_str().is_empty());
}
