//! Spawns a throw-away Orthanc (Debian's `orthanc` + `orthanc-dicomweb`) on a free loopback port.
//! When Orthanc is not installed the caller is told why and skips — unless `DICOMLAB_REQUIRE_ORTHANC=1`
//! (set by `.ci/run`), where that is a failure.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PLUGIN: &str = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";

/// A running Orthanc, killed on drop.
pub struct Orthanc {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    /// `http://127.0.0.1:PORT/dicom-web`: what a learner would use as the base URL.
    pub dicomweb: String,
    _dir: tempfile::TempDir,
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<PathBuf> {
    ["/usr/sbin/Orthanc", "/usr/bin/Orthanc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Starts Orthanc, or returns `None` (after printing why) when it is not installed.
pub fn start() -> Option<Orthanc> {
    start_in(&std::env::temp_dir())
}

/// Same, with its storage under `parent`.
pub fn start_in(parent: &std::path::Path) -> Option<Orthanc> {
    let required = std::env::var("DICOMLAB_REQUIRE_ORTHANC").is_ok_and(|v| v == "1");
    let (Some(bin), true) = (binary(), std::path::Path::new(PLUGIN).exists()) else {
        assert!(
            !required,
            "DICOMLAB_REQUIRE_ORTHANC=1 but Orthanc or its DICOMweb plugin is not installed"
        );
        eprintln!("SKIPPED: Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)");
        return None;
    };
    let dir = tempfile::tempdir_in(parent).expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let storage = dir.path().join("storage");
    let config = serde_json::json!({
        "Name": "dicomlab-test",
        "HttpPort": port,
        "StorageDirectory": storage,
        "IndexDirectory": storage,
        "Plugins": [PLUGIN],
        "DicomWeb": {"Enable": true, "Root": "/dicom-web/"},
        "AuthenticationEnabled": false,
        "RemoteAccessAllowed": false,
        "DicomServerEnabled": false,
        "HttpCompressionEnabled": false,
    });
    let config_path = dir.path().join("orthanc.json");
    std::fs::write(&config_path, config.to_string()).expect("write config");
    let log = std::fs::File::create(dir.path().join("orthanc.log")).expect("log");
    let child = Command::new(bin)
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn Orthanc");
    let origin = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let orthanc = Orthanc {
        child,
        dicomweb: format!("{origin}/dicom-web"),
        origin,
        _dir: dir,
    };
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = write!(s, "GET /system HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            if s.read_to_string(&mut buf).is_ok() && buf.get(9..12) == Some("200") {
                return Some(orthanc);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("Orthanc did not answer within 30 s");
}
