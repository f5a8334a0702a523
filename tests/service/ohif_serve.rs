//! `dicomlab ohif` without a browser: what it serves from a build (the generated `app-config.js`, the
//! single-page-app fallback, content types), what it never serves (anything outside the build, however
//! the path is spelled on the wire), and the configuration it generates for each kind of target.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use dicomlab_ohif::config::{Flow, SignIn, ViewerConfig};
use dicomlab_ohif::{Site, serve};

/// One raw HTTP/1.1 request (the path exactly as given: no client normalises `..` away).
fn raw(addr: &str, method: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_ascii_lowercase(), buf[split + 4..].to_vec())
}

fn build(dir: &Path) {
    let dist = dir.join("package/dist");
    std::fs::create_dir_all(dist.join("assets")).expect("mkdir");
    std::fs::write(dist.join("index.html"), "<html>OHIF</html>").expect("write");
    std::fs::write(
        dist.join("app-config.js"),
        "window.config = {shipped: true};",
    )
    .expect("write");
    std::fs::write(dist.join("app.bundle.abc.js"), "console.log(1)").expect("write");
    std::fs::write(dist.join("codec.wasm"), b"\0asm").expect("write");
    std::fs::write(dir.join("secret.txt"), "outside the build").expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.join("secret.txt"), dist.join("assets/link.txt")).expect("link");
}

#[tokio::test]
async fn the_build_is_served_and_nothing_outside_it() {
    let dir = tempfile::tempdir().expect("tmp");
    build(dir.path());
    let config = ViewerConfig {
        name: "practice".into(),
        base_url: "http://127.0.0.1:8042/v1".into(),
        sign_in: None,
    };
    let site =
        Site::new(dir.path(), config.app_config_js()).expect("an unpacked package is a build");
    let serving = serve(site, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let addr = serving.origin.trim_start_matches("http://").to_string();
    let a = addr.clone();
    tokio::task::spawn_blocking(move || {
        let get = |p: &str| raw(&a, "GET", p, "");
        let (s, h, b) = get("/");
        assert_eq!((s, b.as_slice()), (200, &b"<html>OHIF</html>"[..]));
        assert!(h.contains("content-type: text/html"));
        // The generated configuration replaces the shipped one.
        let (s, h, b) = get("/app-config.js");
        assert_eq!(s, 200);
        assert!(h.contains("text/javascript"));
        assert!(String::from_utf8_lossy(&b).contains("\"qidoRoot\": \"http://127.0.0.1:8042/v1\""));
        let (s, h, _) = get("/codec.wasm");
        assert_eq!(s, 200);
        assert!(h.contains("content-type: application/wasm"), "{h}");
        assert!(h.contains("x-content-type-options: nosniff"));
        // The app's own routes get the page (the sign-in comes back to /callback).
        for route in [
            "/callback?code=x&state=y",
            "/viewer?StudyInstanceUIDs=1.2.3",
            "/login",
        ] {
            let (s, _, b) = get(route);
            assert_eq!(
                (s, b.as_slice()),
                (200, &b"<html>OHIF</html>"[..]),
                "{route}"
            );
        }
        let (s, _, _) = get("/missing.bundle.js");
        assert_eq!(s, 404, "a missing file is not the page");
        // Never outside the build, however spelled.
        for bad in [
            "/../secret.txt",
            "/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E%2Fsecret.txt",
            "/assets/..%2f..%2f..%2fsecret.txt",
            "/..%5csecret.txt",
            "/assets/link.txt",
            "/%00",
            "/.%2e/secret.txt",
        ] {
            let (s, _, b) = get(bad);
            assert!(
                !String::from_utf8_lossy(&b).contains("outside the build"),
                "{bad} answered {s}"
            );
            assert_eq!(s, 404, "{bad}");
        }
        let (s, h, b) = raw(&a, "HEAD", "/", "");
        assert_eq!(s, 200);
        assert!(h.contains("content-length: 17"), "{h}");
        assert!(b.is_empty());
        let (s, h, _) = raw(&a, "POST", "/", "Content-Length: 0\r\n");
        assert_eq!(s, 405);
        assert!(h.contains("allow: get, head"));
    })
    .await
    .expect("requests");
    serving.stop().await;
}

#[test]
fn a_folder_without_a_build_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = Site::new(dir.path(), String::new()).err().expect("refused");
    assert!(e.to_string().contains("is not an OHIF build"), "{e}");
}

/// `dicomlab ohif --print-config` for an Azure and a generic profile (no service needed).
#[test]
fn the_configuration_follows_the_target() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "profile = \"azure\"\n\
         [profiles.azure]\nkind = \"azure\"\nbase_url = \"https://ws-dicom.dicom.azurehealthcareapis.com/v1\"\n\
         tenant_id = \"11111111-2222-3333-4444-555555555555\"\nclient_id = \"aaaaaaaa-0000-0000-0000-000000000001\"\n\
         [profiles.orthanc]\nkind = \"generic\"\nbase_url = \"http://127.0.0.1:8043/dicom-web\"\n",
    )
    .expect("config");
    let print = |profile: &str, flow: &str| {
        let out = Command::new(dicomlab_testkit::exe())
            .arg("--config")
            .arg(&config)
            .args([
                "--profile",
                profile,
                "ohif",
                "--print-config",
                "--flow",
                flow,
            ])
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .output()
            .expect("dicomlab ohif");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let azure = print("azure", "token");
    assert!(azure.contains("\"authority\": \"https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0\""), "{azure}");
    assert!(azure.contains("\"client_id\": \"aaaaaaaa-0000-0000-0000-000000000001\""));
    assert!(azure.contains("\"response_type\": \"token\""));
    assert!(azure.contains("\"loadUserInfo\": false"));
    assert!(azure.contains(
        "\"scope\": \"openid profile https://dicom.healthcareapis.azure.com/Dicom.ReadWrite\""
    ));
    assert!(azure.contains("\"wadoRoot\": \"https://ws-dicom.dicom.azurehealthcareapis.com/v1\""));
    let orthanc = print("orthanc", "code");
    assert!(orthanc.contains("\"qidoRoot\": \"http://127.0.0.1:8043/dicom-web\""));
    assert!(!orthanc.contains("oidc"), "no sign-in on a generic server");
    // The generated file is the one a build would load: a SignIn round-trips into it.
    let c = ViewerConfig {
        name: "x".into(),
        base_url: "http://h/v1".into(),
        sign_in: Some(SignIn {
            authority: "http://h/t/v2.0".into(),
            client_id: "c".into(),
            flow: Flow::IdTokenToken,
        }),
    };
    assert!(
        c.app_config_js()
            .contains("\"response_type\": \"id_token token\"")
    );
}
