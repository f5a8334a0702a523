//! Soak benchmark (a bench binary): `cargo bench --bench soak`.
//!
//! One `dicomlab serve` process; 30 clients each run the whole lab a fixed number of times (token, store
//! the three samples under their own UIDs, the six searches, retrieve study / instance / metadata / frame /
//! rendered, change feed, the extended query tag, delete), and between runs each sends a hostile upload or
//! request (nested sequences, lying lengths, an overflowing image, a deflate bomb, endless multipart
//! headers, a missing boundary, a 1,000-word fuzzy search, a token without a client). Every answer is
//! checked against what the lab (or the hostile request) must get.
//!
//! Reports: errors (must be 0), requests, p50 / p99 latency of the lab's requests, and the service's peak
//! RSS (VmHWM). `SOAK_CLIENTS` and `SOAK_ROUNDS` change the counts (default 30 × 3; `--quick`, what CI
//! runs: 3 × 1). A watchdog fails the run when it takes too long.

use dicomlab_testkit::deadline;
use dicomlab_testkit::served;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dicomlab_dicom::hostile;
use dicomlab_dicom::samples::SAMPLES;
use served::Served;

const JSON: &str = "application/dicom+json";

/// What every request measured and every failure said.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: Vec<String>,
    hostile: usize,
}

/// The same UID length as the samples' (64), unique per client, round and role.
fn uid(client: usize, round: usize, role: usize) -> String {
    let digits = format!("9{client:08}{round:08}{role:04}");
    format!("1.2.826.0.1.3680043.8.498.{digits:0<38}")
}

/// A sample with its UIDs replaced in place (same lengths, so the file stays valid).
fn relabel(bytes: &[u8], pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (old, new) in pairs {
        assert_eq!(old.len(), new.len());
        let finder = memchr::memmem::Finder::new(old.as_bytes());
        let hits: Vec<usize> = finder.find_iter(&out).collect();
        for at in hits {
            out[at..at + new.len()].copy_from_slice(new.as_bytes());
        }
    }
    out
}

struct Lab {
    http: reqwest::Client,
    origin: String,
    tenant: String,
    client_id: String,
    secret: String,
    samples: Arc<Vec<Vec<u8>>>,
    tally: Arc<Mutex<Tally>>,
}

impl Lab {
    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.origin)
    }

    /// Sends a request, times it, and records an error unless the status is one of `ok`.
    async fn call(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
        ok: &[u16],
    ) -> Option<bytes::Bytes> {
        let started = Instant::now();
        let result = req.send().await;
        let (status, body) = match result {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.bytes().await.ok())
            }
            Err(e) => {
                self.error(format!("{what}: {e}"));
                return None;
            }
        };
        let took = started.elapsed();
        let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        t.latencies.push(took);
        if !ok.contains(&status) {
            let text = body
                .as_ref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                .unwrap_or_default();
            t.errors.push(format!("{what}: {status} {text}"));
        }
        body
    }

    fn error(&self, e: String) {
        self.tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .errors
            .push(e);
    }

    async fn token(&self) -> String {
        let body = self
            .call(
                "token",
                self.http
                    .post(format!("{}/{}/oauth2/token", self.origin, self.tenant))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", self.client_id.as_str()),
                        ("client_secret", self.secret.as_str()),
                        ("resource", "https://dicom.healthcareapis.azure.com"),
                    ]),
                &[200],
            )
            .await
            .unwrap_or_default();
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["access_token"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The whole lab, once, under this client's own UIDs.
    async fn run(&self, client: usize, round: usize) {
        let token = self.token().await;
        let get = |url: String, accept: &str| {
            self.http
                .get(url)
                .bearer_auth(&token)
                .header("Accept", accept)
        };
        let study = uid(client, round, 1);
        let series = [uid(client, round, 2), uid(client, round, 3)];
        let sops: Vec<String> = (0..3).map(|i| uid(client, round, 10 + i)).collect();
        for (i, s) in SAMPLES.iter().enumerate() {
            let series_uid = if s.series_uid == SAMPLES[0].series_uid {
                &series[0]
            } else {
                &series[1]
            };
            let bytes = relabel(
                &self.samples[i],
                &[
                    (s.study_uid, &study),
                    (s.series_uid, series_uid),
                    (s.sop_uid, &sops[i]),
                ],
            );
            self.call(
                "store",
                self.http
                    .post(self.url("studies"))
                    .bearer_auth(&token)
                    .header("Accept", JSON)
                    .header("Content-Type", "application/dicom")
                    .body(bytes),
                &[200],
            )
            .await;
        }
        let (se, sop) = (&series[0], &sops[0]);
        for q in [
            format!("studies?StudyInstanceUID={study}"),
            format!("series?SeriesInstanceUID={se}"),
            format!("studies/{study}/series?SeriesInstanceUID={se}"),
            format!("instances?SOPInstanceUID={sop}"),
            format!("studies/{study}/instances?SOPInstanceUID={sop}"),
            format!("studies/{study}/series/{se}/instances?SOPInstanceUID={sop}"),
            format!("studies?PatientSex=F&StudyInstanceUID={study}"),
        ] {
            self.call("search", get(self.url(&q), JSON), &[200]).await;
        }
        let inst = format!("studies/{study}/series/{se}/instances/{sop}");
        let any = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";
        self.call(
            "retrieve study",
            get(self.url(&format!("studies/{study}")), any),
            &[200],
        )
        .await;
        self.call(
            "retrieve instance",
            get(self.url(&inst), "application/dicom; transfer-syntax=*"),
            &[200],
        )
        .await;
        self.call(
            "metadata",
            get(self.url(&format!("{inst}/metadata")), JSON),
            &[200],
        )
        .await;
        self.call(
            "frame",
            get(
                self.url(&format!("{inst}/frames/1")),
                "application/octet-stream; transfer-syntax=*",
            ),
            &[200],
        )
        .await;
        self.call(
            "rendered",
            get(self.url(&format!("{inst}/rendered")), "image/png"),
            &[200],
        )
        .await;
        self.call(
            "change feed",
            get(self.url("changefeed?limit=10"), "application/json"),
            &[200],
        )
        .await;
        self.call(
            "latest",
            get(self.url("changefeed/latest"), "application/json"),
            &[200],
        )
        .await;
        self.call(
            "tag",
            get(self.url("extendedquerytags/PatientSex"), "application/json"),
            &[200],
        )
        .await;
        self.call(
            "delete",
            self.http
                .delete(self.url(&format!("studies/{study}")))
                .bearer_auth(&token),
            &[204],
        )
        .await;
    }

    /// One hostile request, chosen by `n`; it must get its refusal and nothing else.
    async fn hostile(&self, n: usize, token: &str) {
        let (st, se, sop) = (uid(n, 0, 901), uid(n, 0, 902), uid(n, 0, 903));
        let stow = |body: Vec<u8>| {
            self.http
                .post(self.url("studies"))
                .bearer_auth(token)
                .header("Accept", JSON)
                .header("Content-Type", "application/dicom")
                .body(body)
        };
        let related = |body: Vec<u8>| {
            self.http
                .post(self.url("studies"))
                .bearer_auth(token)
                .header("Accept", JSON)
                .header(
                    "Content-Type",
                    "multipart/related; type=\"application/dicom\"; boundary=b",
                )
                .body(body)
        };
        let (what, req, ok): (&str, reqwest::RequestBuilder, &[u16]) = match n % 8 {
            0 => (
                "nested",
                stow(hostile::deeply_nested(&st, &se, &sop, 2_000)),
                &[409],
            ),
            1 => (
                "lying length",
                stow(hostile::lying_length(&st, &se, &sop, 0xFFFF_FFF0)),
                &[409],
            ),
            2 => (
                "overflow",
                stow(hostile::pixel_overflow(&st, &se, &sop)),
                &[409],
            ),
            3 => (
                "deflate bomb",
                stow(hostile::deflate_bomb(&st, &se, &sop, 64 << 20)),
                &[200, 409],
            ),
            4 => {
                let mut b = b"--b\r\nContent-Type: application/dicom\r\nX: ".to_vec();
                b.extend(vec![b'a'; 1 << 20]);
                ("endless headers", related(b), &[400])
            }
            5 => ("no boundary", related(vec![b'z'; 200_000]), &[400]),
            6 => {
                let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
                let url = self.url(&format!(
                    "studies?fuzzymatching=true&PatientName={}",
                    words.join("%5E")
                ));
                (
                    "fuzzy",
                    self.http.get(url).bearer_auth(token).header("Accept", JSON),
                    &[400],
                )
            }
            _ => (
                "no token",
                self.http
                    .get(self.url("studies"))
                    .bearer_auth("not.a.token"),
                &[401],
            ),
        };
        // Hostile requests are not part of the lab's latency.
        match req.send().await {
            Ok(r) if ok.contains(&r.status().as_u16()) => {
                let _ = r.bytes().await;
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                self.error(format!(
                    "hostile {what}: {status} {}",
                    &text[..text.len().min(200)]
                ));
            }
            // A refusal may close the connection before the upload is sent.
            Err(e) if what == "endless headers" || what == "no boundary" => {
                let _ = e;
            }
            Err(e) => self.error(format!("hostile {what}: {e}")),
        }
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).hostile += 1;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let quick = deadline::quick();
    let clients = env_count("SOAK_CLIENTS", if quick { 3 } else { 30 });
    let rounds = env_count("SOAK_ROUNDS", if quick { 1 } else { 3 });
    deadline::watchdog(
        "soak",
        Duration::from_secs(if quick { 180 } else { 1800 }),
        || {},
    );
    deadline::phase("the lab runs, with hostile requests between");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tmp");
        let mut service = Served::start(&dir.path().join("data"), &[]);
        let samples = Arc::new(
            SAMPLES
                .iter()
                .map(|s| s.to_bytes().expect("sample"))
                .collect::<Vec<_>>(),
        );
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(4)
            .build()
            .expect("client");
        let tally = Arc::new(Mutex::new(Tally::default()));
        let lab = Arc::new(Lab {
            http,
            origin: service.origin.clone(),
            tenant: service.tenant_id.clone(),
            client_id: service.client_id.clone(),
            secret: service.client_secret.clone(),
            samples,
            tally: tally.clone(),
        });
        // The lab's extended query tag, once (exercise 9); every run reads it back.
        let token = lab.token().await;
        lab.call(
            "add tag",
            lab.http
                .post(lab.url("extendedquerytags"))
                .bearer_auth(&token)
                .header("Content-Type", "application/json")
                .body(r#"[{"Path":"PatientSex","Level":"Study"}]"#),
            &[202],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let base = service.rss_mib();
        service.reset_peak();
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let lab = lab.clone();
                tokio::spawn(async move {
                    for r in 0..rounds {
                        lab.run(c, r).await;
                        let token = lab.token().await;
                        lab.hostile(c * rounds + r, &token).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            if let Err(e) = t.await {
                lab.error(format!("client task: {e}"));
            }
        }
        let elapsed = started.elapsed();
        let peak = service.peak_mib();
        let alive = service.alive();
        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
        t.latencies.sort();
        println!(
            "soak: {clients} clients × {rounds} lab runs, {} hostile requests, {:.1} s",
            t.hostile,
            elapsed.as_secs_f64()
        );
        println!("soak: requests          {:>8}", t.latencies.len());
        println!("soak: errors            {:>8}", t.errors.len());
        println!(
            "soak: latency p50       {:>8.1} ms",
            percentile(&t.latencies, 0.5).as_secs_f64() * 1000.0
        );
        println!(
            "soak: latency p99       {:>8.1} ms",
            percentile(&t.latencies, 0.99).as_secs_f64() * 1000.0
        );
        println!("soak: peak RSS          {peak:>8} MiB (after start-up: {base} MiB)");
        println!("soak: service alive     {alive:>8}");
        for e in t.errors.iter().take(10) {
            println!("soak: error: {e}");
        }
        let failed = !t.errors.is_empty() || !alive;
        drop(t);
        // Stop the service before exiting (exit skips destructors).
        drop(service);
        if failed {
            std::process::exit(1);
        }
    });
}
