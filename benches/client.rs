//! Client benchmark (a bench binary, not a timed test): `cargo bench --bench client`.
//!
//! - bulk STOW of 500 small instances to the practice service (a separate `dicomlab serve` process)
//!   with 1, 4 and 8 concurrent requests: instances/s and the client's peak RSS; the same 500 with
//!   Python's dicomweb-client (one `store_instances` call per file) when it is installed.
//! - a 1 GB study (10 instances of 100 MB) retrieved to disk: MB/s and the client's peak RSS, beside
//!   the ceiling of plain buffered I/O on the same bytes (read and write them to disk); and retrieved
//!   only counted (read to its end, nothing written) beside plain buffered reading. Best of 3 rounds.
//!   Beside them, the CPU seconds the retrieve took in the client and the service (and what that
//!   allows on this machine's cores) and the memory the retrieve itself added to the client's.
//!
//! Peak RSS is the process's VmHWM, reset before each measurement (`/proc/self/clear_refs` = 5).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicomlab_dicom::samples::tiny_instance;
use dicomlab_dicomweb::{AuthConfig, DicomWebClient, StoreMode};

use dicomlab_testkit::deadline;
use dicomlab_testkit::served;

/// Instances of the bulk store (`--quick`: 20, what CI runs).
fn bulk() -> usize {
    if deadline::quick() { 20 } else { 500 }
}
/// Frames (1 MiB each) of each of the 10 instances of the big study (`--quick`: 2 MB instances).
fn big_frames() -> usize {
    if deadline::quick() { 2 } else { 100 }
}

struct Server(Child, String);

impl Drop for Server {
    /// Told to stop (SIGTERM), the service removes its ephemeral data folder (a GB after the big
    /// study); killed only if it has not stopped within 10 s.
    fn drop(&mut self) {
        served::stop(&mut self.0, Duration::from_secs(10));
    }
}

fn serve() -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dicomlab"))
        .args([
            "serve",
            "--no-auth",
            "--ephemeral",
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dicomlab serve");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Server(child, format!("http://127.0.0.1:{port}/v1"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("dicomlab serve did not start");
}

/// Writes the page cache's dirty pages out (`sync`), so that the retrieve and the copy each start with
/// none: one GB written just before is otherwise flushed under the next one, which it slows 2–10×.
fn settle_disk() {
    let _ = Command::new("sync").status();
}

/// CPU seconds (user + system, every thread) the process `pid` (`"self"`: this one) has used:
/// `/proc/<pid>/stat`'s utime and stime, in the kernel's fixed 100 ticks a second.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's name (which may hold spaces), itself in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are the stat's 14th and 15th fields: the 12th and 13th after the name.
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => panic!("no CPU times in /proc/{pid}/stat"),
    }
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// The resident memory now: what the process holds from its earlier work (the allocator keeps
/// freed memory) before a measurement starts.
fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// A field of `/proc/self/status`, in MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn write_bulk(dir: &Path, tag: &str) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("dir");
    (0..bulk())
        .map(|i| {
            let study = format!("1.2.826.0.1.3680043.8.498.8{tag}.{}", i / 10);
            let series = format!("{study}.1");
            let bytes = tiny_instance(&study, &series, &format!("{series}.{i}"), "Bulk^Bench")
                .expect("instance");
            let path = dir.join(format!("{i:04}.dcm"));
            std::fs::write(&path, bytes).expect("write");
            path
        })
        .collect()
}

/// One instance of ~100 MB: 100 frames of 1024 × 1024 8-bit grey.
fn write_big(path: &Path, study: &str, i: usize) {
    let (rows, cols, frames) = (1024u16, 1024u16, big_frames());
    let pixels = vec![(i * 20 % 256) as u8; rows as usize * cols as usize * frames];
    let s = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let us = |tag, v: u16| DataElement::new(tag, VR::US, dicom_value!(U16, [v]));
    let sop = format!("{study}.1.{i}");
    let obj = InMemDicomObject::from_element_iter([
        s(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.7.2"),
        s(tags::SOP_INSTANCE_UID, VR::UI, &sop),
        s(tags::PATIENT_ID, VR::LO, "BIG"),
        s(tags::STUDY_INSTANCE_UID, VR::UI, study),
        s(tags::SERIES_INSTANCE_UID, VR::UI, &format!("{study}.1")),
        s(tags::NUMBER_OF_FRAMES, VR::IS, &frames.to_string()),
        us(tags::SAMPLES_PER_PIXEL, 1),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, cols),
        us(tags::BITS_ALLOCATED, 8),
        us(tags::BITS_STORED, 8),
        us(tags::HIGH_BIT, 7),
        us(tags::PIXEL_REPRESENTATION, 0),
        DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(pixels.into())),
    ]);
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1"))
        .expect("meta");
    file.write_to_file(path).expect("write big");
}

fn python_baseline(base: &str, dir: &Path) -> Option<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/client_stow.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(base)
        .arg(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn main() {
    deadline::watchdog(
        "client",
        Duration::from_secs(if deadline::quick() { 180 } else { 1800 }),
        || {},
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let work = tempfile::tempdir().expect("tmp");
    // `cargo bench` passes `--bench`; DICOMLAB_BENCH=stow|wado runs one part only.
    let only = std::env::var("DICOMLAB_BENCH").unwrap_or_default();
    rt.block_on(async {
        let server = serve();
        let client = DicomWebClient::new(&server.1, AuthConfig::None).expect("client");
        if only != "wado" {
            bulk_stores(&client, &server, work.path()).await;
        }
        if only != "stow" {
            big_study(&client, work.path(), server.0.id()).await;
        }
        drop(server);
    });
}

/// Bulk STOW at 1, 4 and 8 concurrent requests, beside Python's dicomweb-client.
async fn bulk_stores(client: &DicomWebClient, server: &Server, work: &Path) {
    deadline::phase("bulk stores");
    let mut ours = Vec::new();
    for (n, concurrency) in [1usize, 4, 8].into_iter().enumerate() {
        let files = write_bulk(&work.join(format!("bulk{n}")), &n.to_string());
        reset_peak_rss();
        let start = Instant::now();
        let answers = client
            .store(&files, StoreMode::Single, None, concurrency, None)
            .await
            .expect("store");
        let rate = files.len() as f64 / start.elapsed().as_secs_f64();
        assert!(answers.iter().all(|a| a.status == 200));
        println!(
            "stow: {} instances, {concurrency} concurrent: {rate:>7.0} instances/s, client peak RSS {:.1} MB",
            bulk(),
            peak_rss_mb()
        );
        ours.push((concurrency, rate));
    }
    let files_dir = work.join("python");
    write_bulk(&files_dir, "9");
    match python_baseline(&server.1, &files_dir) {
        Some(py) => {
            println!(
                "stow: Python dicomweb-client (one store_instances call per file): {py:.0} instances/s"
            );
            for (c, r) in &ours {
                println!("stow: dicomlab with {c} concurrent = {:.1}× Python", r / py);
            }
        }
        None => println!("stow: Python dicomweb-client not available; no comparison"),
    }
}

/// A 1 GB study stored, then retrieved to disk, beside plain buffered I/O on the same bytes.
async fn big_study(client: &DicomWebClient, work: &Path, service: u32) {
    // A 1 GB study: 10 instances of 100 MB, stored (streamed), then retrieved to disk.
    deadline::phase("the big study");
    let study = "1.2.826.0.1.3680043.8.498.77";
    let big_dir = work.join("big");
    std::fs::create_dir_all(&big_dir).expect("dir");
    let mut big = Vec::new();
    for i in 0..10 {
        let p = big_dir.join(format!("big{i}.dcm"));
        write_big(&p, study, i);
        big.push(p);
    }
    settle_disk();
    let start = Instant::now();
    let answers = client
        .store(&big, StoreMode::Single, None, 2, None)
        .await
        .expect("store big");
    let stow_secs = start.elapsed().as_secs_f64();
    assert!(
        answers.iter().all(|a| a.status == 200),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let total: u64 = big
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    println!(
        "stow: {:.2} GB study (10 instances of {:.0} MB, 2 at once, each synced by the service) in {stow_secs:.2} s ({:.0} MB/s)",
        total as f64 / 1e9,
        total as f64 / 1e7,
        total as f64 / 1e6 / stow_secs
    );
    // Rounds of: the retrieve to disk, the retrieve only counted, the plain read, the plain copy;
    // the best of each. Every written copy is deleted before the next: writing a GB into memory the
    // VM has not touched lately runs 2–6× slower than into pages just freed, and that would decide
    // which of the two comes out ahead.
    let rounds = if deadline::quick() { 1 } else { 3 };
    let path = format!("studies/{study}");
    let accept = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";
    let copied = work.join("copied");
    let _ = plain_io(&big, &copied);
    let mut best = [f64::MAX; 5];
    let mut rss: f64 = 0.0;
    // The most the retrieve itself added to what the process held when it started.
    let mut rss_added: f64 = 0.0;
    // The CPU seconds the retrieve to disk took in the client and the service, of its fastest round.
    let mut cpu = (0.0, 0.0);
    // The same of the loopback socket's copy (both its ends are this process's threads).
    let mut socket_cpu = 0.0;
    let service = service.to_string();
    for _ in 0..rounds {
        let _ = std::fs::remove_dir_all(&copied);
        settle_disk();
        reset_peak_rss();
        let rss_before = rss_mb();
        let cpu_before = (cpu_secs("self"), cpu_secs(&service));
        let start = Instant::now();
        let out = work.join("retrieved");
        let (a, parts) = client
            .retrieve_to_dir(&path, accept, &out)
            .await
            .expect("retrieve");
        let secs = start.elapsed().as_secs_f64();
        rss = rss.max(peak_rss_mb());
        rss_added = rss_added.max(peak_rss_mb() - rss_before);
        if secs < best[0] {
            cpu = (
                cpu_secs("self") - cpu_before.0,
                cpu_secs(&service) - cpu_before.1,
            );
        }
        assert_eq!(a.status, 200);
        assert_eq!(parts.len(), 10);
        assert_eq!(parts.iter().map(|p| p.size).sum::<u64>(), total);
        best[0] = best[0].min(secs);
        std::fs::remove_dir_all(&out).expect("rm");
        let start = Instant::now();
        let (a, parts) = client
            .retrieve_counted(&path, accept)
            .await
            .expect("retrieve");
        best[1] = best[1].min(start.elapsed().as_secs_f64());
        assert_eq!(a.status, 200);
        assert_eq!(parts.iter().map(|p| p.size).sum::<u64>(), total);
        let (read, copy) = plain_io(&big, &copied);
        best[2] = best[2].min(read);
        best[3] = best[3].min(copy);
        std::fs::remove_dir_all(&copied).expect("rm");
        settle_disk();
        let cpu_before = cpu_secs("self");
        let secs = socket_copy(&big, &copied);
        if secs < best[4] {
            socket_cpu = cpu_secs("self") - cpu_before;
        }
        best[4] = best[4].min(secs);
    }
    let mbs = |secs: f64| total as f64 / 1e6 / secs;
    println!(
        "wado: {:.2} GB study (10 parts) to disk in {:.2} s ({:.0} MB/s, best of {rounds}), client peak RSS {rss:.1} MB ({rss_added:.1} MB above what it held before the retrieve)",
        total as f64 / 1e9,
        best[0],
        mbs(best[0]),
    );
    println!(
        "wado: plain buffered read + write to disk {:.0} MB/s: the retrieve takes {:.2}× the copy's time",
        mbs(best[3]),
        best[0] / best[3]
    );
    // The retrieve copies every byte four times (file → service → socket → client → file) where
    // the plain copy copies it twice: its CPU, spread over every core, bounds how fast it can go.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let busy = cpu.0 + cpu.1;
    println!(
        "wado: the retrieve to disk used {busy:.2} CPU seconds (client {:.2}, service {:.2}); on {cores} cores no faster than {:.2} s ({:.0} MB/s, {:.2}× the plain copy's time)",
        cpu.0,
        cpu.1,
        busy / cores as f64,
        mbs(busy / cores as f64),
        busy / cores as f64 / best[3]
    );
    println!(
        "wado: the same copy through a loopback socket (a thread reading the files into it, one writing them out) {:.0} MB/s, {socket_cpu:.2} CPU seconds: the retrieve takes {:.2}× its time, {:.2}× its CPU",
        mbs(best[4]),
        best[0] / best[4],
        busy / socket_cpu.max(0.01)
    );
    println!(
        "wado: read to its end and counted, nothing written, {:.0} MB/s; plain buffered read {:.0} MB/s: {:.2}× its time",
        mbs(best[1]),
        mbs(best[2]),
        best[1] / best[2]
    );
}

/// Seconds to copy `files` into `dir` through a loopback TCP connection with plain blocking I/O, a
/// thread at each end: the retrieve's disk and socket work with no HTTP, no multipart and no service.
fn socket_copy(files: &[PathBuf], dir: &Path) -> f64 {
    use std::io::{Read, Write};
    std::fs::create_dir_all(dir).expect("dir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).expect("size").len())
        .collect();
    let start = Instant::now();
    let sender = {
        let files = files.to_vec();
        std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            let mut buf = vec![0u8; 1 << 20];
            for f in &files {
                let mut r = std::fs::File::open(f).expect("open");
                loop {
                    let n = r.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    s.write_all(&buf[..n]).expect("send");
                }
            }
        })
    };
    let (mut s, _) = listener.accept().expect("accept");
    let mut buf = vec![0u8; 1 << 20];
    for (i, size) in sizes.iter().enumerate() {
        let mut out = std::fs::File::create(dir.join(format!("{i}.dcm"))).expect("create");
        let mut left = *size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = s.read(&mut buf[..want]).expect("recv");
            assert!(n > 0, "the sender stopped early");
            out.write_all(&buf[..n]).expect("write");
            left -= n as u64;
        }
    }
    sender.join().expect("sender");
    start.elapsed().as_secs_f64()
}

/// Seconds to read `files` with buffered I/O, and to read and write them into `dir`: what the
/// retrieve's bytes cost with no HTTP, no multipart and no service.
fn plain_io(files: &[PathBuf], dir: &Path) -> (f64, f64) {
    use std::io::{BufReader, BufWriter, Read, Write};
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    for f in files {
        let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(f).expect("open"));
        while r.read(&mut buf).expect("read") > 0 {}
    }
    let read = start.elapsed().as_secs_f64();
    std::fs::create_dir_all(dir).expect("dir");
    settle_disk();
    let start = Instant::now();
    for (i, f) in files.iter().enumerate() {
        let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(f).expect("open"));
        let out = std::fs::File::create(dir.join(format!("{i}.dcm"))).expect("create");
        let mut w = BufWriter::with_capacity(1 << 20, out);
        std::io::copy(&mut r, &mut w).expect("copy");
        w.flush().expect("flush");
    }
    let copy = start.elapsed().as_secs_f64();
    (read, copy)
}
