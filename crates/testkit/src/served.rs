//! A real `dicomlab serve` process on a loopback port, for tests that must see the process itself: that it
//! lives on, how much memory it held (VmHWM, reset through /proc/PID/clear_refs), and what happens when it
//! is killed or told to stop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `dicomlab serve`.
pub struct Served {
    pub child: Child,
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    pub data: PathBuf,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Where the service's log (stderr) goes.
    pub log: PathBuf,
}

/// A free loopback port.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Served {
    /// `dicomlab serve --grant-owner --reindex-seconds 0 --addr 127.0.0.1:PORT --data DATA ARGS…`.
    pub fn start(data: &Path, args: &[&str]) -> Served {
        Self::start_on(data, free_port(), "127.0.0.1", args)
    }

    /// The same, listening on `host` (e.g. `[::]`).
    pub fn start_on(data: &Path, port: u16, host: &str, args: &[&str]) -> Served {
        Self::try_start_on(data, port, host, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts it, or returns what it printed when it exits instead.
    pub fn try_start_on(
        data: &Path,
        port: u16,
        host: &str,
        args: &[&str],
    ) -> Result<Served, String> {
        let log = data.with_extension("log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(crate::exe());
        command.args(["serve", "--grant-owner"]);
        if !args.contains(&"--reindex-seconds") {
            command.args(["--reindex-seconds", "0"]);
        }
        let mut child = command
            .args(["--addr", &format!("{host}:{port}"), "--data"])
            .arg(data)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn dicomlab serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut tenant, mut client, mut secret) = (String::new(), String::new(), String::new());
        let value = |line: &str| line.split_whitespace().last().unwrap_or("").to_string();
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    let t = line.trim_start();
                    if t.starts_with("tenantId") {
                        tenant = value(t);
                    } else if t.starts_with("clientId") {
                        client = value(t);
                    } else if t.starts_with("clientSecret") {
                        secret = value(t);
                    } else if t.starts_with("Press Ctrl-C") {
                        break;
                    }
                }
                _ => {
                    let _ = child.wait();
                    return Err(format!(
                        "dicomlab serve exited: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    ));
                }
            }
        }
        // Keep draining stdout so the service never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Served {
            child,
            port,
            origin: format!("http://127.0.0.1:{port}"),
            data: data.to_path_buf(),
            tenant_id: tenant,
            client_id: client,
            client_secret: secret,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.origin, path.trim_start_matches('/'))
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("field")
    }

    /// Peak resident memory since the last reset, in MiB.
    pub fn peak_mib(&self) -> u64 {
        self.status_kib("VmHWM:") / 1024
    }

    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> u64 {
        self.status_kib("VmRSS:") / 1024
    }

    /// Resets the peak to the current resident size.
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").expect("clear_refs");
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process lives on, answers its health check, and its peak memory stayed under `max_mib`.
    pub async fn assert_healthy(&mut self, max_mib: u64) {
        assert!(self.alive(), "the service died: {}", self.log_text());
        let r = reqwest::get(format!("{}/health/check", self.origin))
            .await
            .expect("health");
        assert_eq!(r.status(), 200);
        let peak = self.peak_mib();
        eprintln!("peak RSS {peak} MiB (bound {max_mib} MiB)");
        assert!(peak <= max_mib, "peak RSS {peak} MiB > {max_mib} MiB");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A token for the lab client.
    pub async fn token(&self) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/{}/oauth2/token", self.origin, self.tenant_id))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.as_str()),
                ("resource", "https://dicom.healthcareapis.azure.com"),
            ])
            .send()
            .await
            .expect("token");
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.expect("json");
        v["access_token"].as_str().expect("token").to_string()
    }

    /// Single-part STOW of one file; the status and the JSON answer (or its text).
    pub async fn store(&self, token: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(self.url("studies"))
            .bearer_auth(token)
            .header("Accept", "application/dicom+json")
            .header("Content-Type", "application/dicom")
            .body(bytes)
            .send()
            .await
            .expect("store");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// GET `path` with a token and an Accept header; the answer, whatever its status.
    pub async fn get(&self, token: &str, path: &str, accept: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .header("Accept", accept)
            .send()
            .await
            .expect("get")
    }

    /// SIGKILL, and wait for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`TERM`, `INT`) and waits up to `limit` for the exit; returns how long it took.
    pub fn signal_and_wait(&mut self, signal: &str, limit: Duration) -> Option<Duration> {
        signal_and_wait(&mut self.child, signal, limit)
    }
}

/// Asks `child` to stop (SIGTERM) and kills it if it has not stopped within `limit`.
pub fn stop(child: &mut Child, limit: Duration) {
    if signal_and_wait(child, "TERM", limit).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends `child` a signal by name (`TERM`, `INT`) and waits up to `limit` for it to exit; returns
/// how long it took (`None`: still running).
pub fn signal_and_wait(child: &mut Child, signal: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
