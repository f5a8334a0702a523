//! Practice-service benchmark (a bench binary, not a timed test): `cargo bench --bench practice`.
//!
//! - ingest: 1,000 small instances over STOW (multipart/related, one instance per request — the framing
//!   Orthanc's DICOMweb plugin accepts), 4 concurrent clients, instances/s, the best of three rounds
//!   (each of new instances; `--quick`: one round of 50); the same against Orthanc when
//!   it is installed, and against a null server (reads the body, answers 200: the loopback ceiling of
//!   these clients). The data goes where `TMPDIR` says (`TMPDIR=/dev/shm` for tmpfs).
//! - QIDO latency: p50 / p99 over 2,000 lab-style searches with 10,000 instances stored.

use dicomlab_testkit::deadline;
use dicomlab_testkit::orthanc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dicomlab_dicom::samples::tiny_instance;
use dicomlab_practice::ServiceConfig;

/// The sizes (`--quick`: tiny ones, what CI runs).
fn ingest_n() -> usize {
    if deadline::quick() { 50 } else { 1_000 }
}
const CLIENTS: usize = 4;
fn qido_n() -> usize {
    if deadline::quick() { 300 } else { 10_000 }
}
fn queries_n() -> usize {
    if deadline::quick() { 100 } else { 2_000 }
}

struct Inst {
    study: String,
    sop: String,
    patient: String,
    bytes: Vec<u8>,
}

fn instances(n: usize, per_study: usize, tag: &str) -> Vec<Inst> {
    (0..n)
        .map(|i| {
            let study = format!("1.2.826.0.1.3680043.8.498.7{tag}.{}", i / per_study + 1);
            let series = format!("{study}.1");
            let sop = format!("{series}.{}", i + 1);
            let patient = format!("Patient{}^Bench", i / per_study);
            let bytes = tiny_instance(&study, &series, &sop, &patient).expect("instance");
            Inst {
                study,
                sop,
                patient,
                bytes,
            }
        })
        .collect()
}

fn multipart(bytes: &[u8]) -> Vec<u8> {
    let mut body = b"--benchboundary\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
    body.extend_from_slice(bytes);
    body.extend_from_slice(b"\r\n--benchboundary--\r\n");
    body
}

/// Stores every instance with `CLIENTS` concurrent clients; returns instances per second.
async fn ingest(url: &str, items: Arc<Vec<Inst>>) -> f64 {
    let http = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (http, next, items, url) = (http.clone(), next.clone(), items.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = http
                    .post(&url)
                    .header("Accept", "application/dicom+json")
                    .header(
                        "Content-Type",
                        "multipart/related; type=\"application/dicom\"; boundary=benchboundary",
                    )
                    .body(multipart(&item.bytes))
                    .send()
                    .await
                    .expect("store");
                assert!(r.status().is_success(), "store answered {}", r.status());
                let _ = r.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    items.len() as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn qido(base: &str, items: &[Inst]) {
    let http = reqwest::Client::new();
    let kinds = [
        "study by UID",
        "study by PatientName",
        "instance by SOP UID",
        "instances of a study",
    ];
    let (queries, instances_n) = (queries_n(), qido_n());
    let mut all = Vec::with_capacity(queries);
    let mut per_kind: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for q in 0..queries {
        let item = &items[(q * 7919) % items.len()];
        let kind = q % kinds.len();
        let url = match kind {
            0 => format!("{base}/studies?StudyInstanceUID={}", item.study),
            1 => format!("{base}/studies?PatientName={}", item.patient),
            2 => format!("{base}/instances?SOPInstanceUID={}", item.sop),
            _ => format!("{base}/studies/{}/instances", item.study),
        };
        let start = Instant::now();
        let r = http
            .get(&url)
            .header("Accept", "application/dicom+json")
            .send()
            .await
            .expect("query");
        assert_eq!(r.status(), 200, "{url}");
        let body = r.bytes().await.expect("body");
        let took = start.elapsed();
        assert!(body.len() > 2);
        all.push(took);
        per_kind[kind].push(took);
    }
    all.sort();
    println!(
        "qido: {queries} searches over {instances_n} instances: p50 {:.3} ms, p99 {:.3} ms",
        percentile(&all, 0.5).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3
    );
    for (name, mut v) in kinds.iter().zip(per_kind) {
        v.sort();
        println!(
            "  {name:<22} p50 {:.3} ms  p99 {:.3} ms",
            percentile(&v, 0.5).as_secs_f64() * 1e3,
            percentile(&v, 0.99).as_secs_f64() * 1e3
        );
    }
}

fn config() -> ServiceConfig {
    ServiceConfig {
        auth: false,
        ..ServiceConfig::default()
    }
}

fn main() {
    deadline::watchdog(
        "practice",
        Duration::from_secs(if deadline::quick() { 180 } else { 1800 }),
        || {},
    );
    // `cargo bench` passes `--bench`; DICOMLAB_BENCH=ingest|qido runs one part only.
    let only = std::env::var("DICOMLAB_BENCH").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if only != "qido" {
            deadline::phase("ingest vs Orthanc");
            ingest_vs_orthanc().await;
        }
        if only != "ingest" {
            deadline::phase("QIDO latency");
            qido_latency().await;
        }
    });
}

/// A server that reads each body and answers 200 with an empty JSON object: what the same clients
/// reach with no DICOM work at all.
async fn null_server() -> String {
    let app = axum::Router::new().route(
        "/studies",
        axum::routing::post(|body: axum::body::Bytes| async move {
            std::hint::black_box(body.len());
            ([("content-type", "application/dicom+json")], "{}")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/studies")
}

/// Rounds of ingest against each server; the best counts (the VM's neighbours take a share of its
/// CPU now and then, and a round of 1,000 stores lasts a fraction of a second).
fn rounds() -> usize {
    if deadline::quick() { 1 } else { 3 }
}

/// The best rate of `rounds()` rounds against `url`, each of instances not stored before.
async fn best_ingest(url: &str, rounds: &[Arc<Vec<Inst>>]) -> f64 {
    let mut best: f64 = 0.0;
    for items in rounds {
        best = best.max(ingest(url, items.clone()).await);
    }
    best
}

async fn ingest_vs_orthanc() {
    let n = ingest_n();
    let rounds: Vec<Arc<Vec<Inst>>> = (0..rounds())
        .map(|r| Arc::new(instances(n, 5, &format!("1{r}"))))
        .collect();
    let k = rounds.len();
    let rounds_said = if k == 1 {
        "one round".to_string()
    } else {
        format!("best of {k} rounds")
    };
    println!(
        "ingest: data under {}; {rounds_said}",
        std::env::temp_dir().display()
    );
    let ceiling = best_ingest(&null_server().await, &rounds).await;
    println!(
        "ingest: null server       {ceiling:>8.0} instances/s  (the clients' loopback ceiling)"
    );
    let svc = dicomlab_practice::start(config())
        .await
        .expect("practice service");
    let ours = best_ingest(&format!("{}/studies", svc.base_url), &rounds).await;
    println!(
        "ingest: practice service  {ours:>8.0} instances/s  ({n} instances a round, {CLIENTS} clients; {:.2}× below the ceiling)",
        ceiling / ours
    );
    svc.shutdown().await;

    match orthanc::start() {
        Some(o) => {
            let theirs = best_ingest(&format!("{}/studies", o.dicomweb), &rounds).await;
            println!(
                "ingest: Orthanc 1.10      {theirs:>8.0} instances/s  (same instances, same clients)"
            );
            println!("ingest: ratio             {:>8.2}×", ours / theirs);
        }
        None => println!("ingest: Orthanc not installed; no comparison"),
    }
}

async fn qido_latency() {
    let n = qido_n();
    let items = instances(n, 5, "2");
    let svc = dicomlab_practice::start(config())
        .await
        .expect("practice service");
    let loaded = ingest(&format!("{}/studies", svc.base_url), Arc::new(items)).await;
    println!("qido: loaded {n} instances at {loaded:.0} instances/s");
    let items = instances(n, 5, "2");
    qido(&svc.base_url, &items).await;
    svc.shutdown().await;
}
