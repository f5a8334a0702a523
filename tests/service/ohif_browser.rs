//! The lab's bonus for real: the OHIF viewer (npm's `@ohif/app`, pinned) served by `dicomlab ohif` on its
//! own port, signing a user in on a `dicomlab serve` practice service and showing the lab study in
//! Debian's Chromium, headless, driven by playwright-core (pinned) through `tests/browser/driver.js`.
//! Three runs on one service, as a learner meets them:
//!
//! 1. no redirect URI registered: the sign-in page shows AADSTS50011; the viewer step says to register it;
//! 2. CORS set for another origin: the user signs in, the browser blocks the requests, OHIF says the study
//!    is not available; the viewer step says why (signed in, nothing reached the service: CORS);
//! 3. CORS for the viewer's origin: the viewport shows the red triangle (its red pixels counted in the
//!    screenshot), and the viewer step is ✓ on the audit log's record of the user's frame request;
//! 4. the implicit grant (`id_token token`), as Microsoft's guide configures OHIF: the red triangle again.
//!
//! Skipped (with the reason printed) without chromium, node or npm, or when npm cannot fetch the pinned
//! packages — except with `DICOMLAB_REQUIRE_BROWSER=1` (CI), where that fails the test. Node packages
//! and the OHIF build go under the target folder, never into the repository.

use dicomlab_testkit as common;
use dicomlab_testkit::served;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::Value;
use served::{Served, free_port};

/// The pinned driver library (its own Chromium download is never used: Debian's is).
const PLAYWRIGHT: &str = "playwright-core@1.65.1";
const STUDY: &str = "1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420";

/// Skips the test with a reason, or fails it where the browser test is required.
fn skip(reason: &str) {
    dicomlab_testkit::require::skip(reason, "DICOMLAB_REQUIRE_BROWSER");
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    ["chromium", "chromium-browser"]
        .iter()
        .find_map(|p| on_path(p))
}

/// playwright-core installed (once) under the target folder; its folder for NODE_PATH.
fn playwright(cache: &Path) -> Result<PathBuf, String> {
    let modules = cache.join("node_modules");
    if modules.join("playwright-core/package.json").is_file() {
        return Ok(modules);
    }
    std::fs::create_dir_all(cache).map_err(|e| e.to_string())?;
    let out = Command::new("npm")
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(cache)
        .arg(PLAYWRIGHT)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() || !modules.join("playwright-core/package.json").is_file() {
        return Err(format!(
            "npm install {PLAYWRIGHT} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(modules)
}

/// `dicomlab` with the test's own config and data folders.
struct Learner {
    config: PathBuf,
    xdg: PathBuf,
}

impl Learner {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(dicomlab_testkit::exe());
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("XDG_DATA_HOME", self.xdg.join("data"))
            .env("XDG_CONFIG_HOME", self.xdg.join("config"))
            .env_remove("SSH_CONNECTION");
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("dicomlab");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "dicomlab {args:?}: {text}");
        text
    }

    /// The viewer step's outcome (`check --step viewer --json`).
    fn viewer_step(&self) -> Value {
        let out = self
            .command(&["check", "--step", "viewer", "--json"])
            .output()
            .expect("check");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "check --json: {e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        v["steps"][0]["outcome"].clone()
    }
}

/// A running `dicomlab ohif`.
struct Viewer {
    child: Child,
    origin: String,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dicomlab ohif` (fetching the pinned OHIF into `cache` the first time); Err: why it could
/// not, with what it printed.
fn start_viewer(learner: &Learner, cache: &Path, port: u16, flow: &str) -> Result<Viewer, String> {
    let addr = format!("127.0.0.1:{port}");
    std::fs::create_dir_all(cache).map_err(|e| e.to_string())?;
    let log = cache.join("ohif-stderr.log");
    let mut child = learner
        .command(&["ohif", "--addr", &addr, "--flow", flow, "--cache"])
        .arg(cache)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = String::new();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                printed.push_str(&line);
                printed.push('\n');
                if line.starts_with("Press Ctrl-C") {
                    break;
                }
            }
            _ => {
                let _ = child.wait();
                return Err(format!(
                    "{printed}{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
        }
    }
    std::thread::spawn(move || for _ in lines {});
    eprintln!("{printed}");
    Ok(Viewer {
        child,
        origin: format!("http://{addr}"),
    })
}

/// One run of the browser driver.
fn drive(node_path: &Path, chromium: &Path, viewer: &Viewer, mode: &str, shot: &Path) -> Value {
    let args = serde_json::json!({
        "viewer": viewer.origin, "study": STUDY, "mode": mode,
        "screenshot": shot, "chromium": chromium, "timeoutMs": 90_000,
    });
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/driver.js");
    let out = Command::new("node")
        .arg(driver)
        .arg(args.to_string())
        .env("NODE_PATH", node_path)
        .output()
        .expect("node");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
        panic!(
            "the driver printed no result ({e}): {line}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(v["error"].is_null(), "the browser run failed: {v:#}");
    v
}

/// Red pixels of a PNG (as the lab draws its triangle: R > 200, G and B < 60), and all its pixels.
fn red_pixels(png: &Path) -> (u64, u64) {
    let img = image::open(png).expect("screenshot").to_rgb8();
    let red = img
        .pixels()
        .filter(|p| p[0] > 200 && p[1] < 60 && p[2] < 60)
        .count() as u64;
    (red, u64::from(img.width()) * u64::from(img.height()))
}

fn text(v: &Value) -> String {
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ohif_shows_the_lab_study_to_a_signed_in_user_and_the_viewer_step_rests_on_it() {
    let Some(chromium) = chromium() else {
        return skip("no chromium (apt-get install chromium)");
    };
    if on_path("node").is_none() || on_path("npm").is_none() {
        return skip("no node or npm (apt-get install nodejs npm)");
    }
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ohif-browser");
    let node_path = match playwright(&cache.join("node")) {
        Ok(p) => p,
        Err(e) => return skip(&e),
    };
    let dir = tempfile::tempdir().expect("tmp");
    let viewer_port = free_port();
    let viewer_origin = format!("http://127.0.0.1:{viewer_port}");
    // The practice service, CORS set for the viewer's origin at start (`serve --cors-origin`).
    let s = Served::start(
        &dir.path().join("data"),
        &[
            "--cors-origin",
            &viewer_origin,
            "--cors-header",
            "authorization",
            "--cors-method",
            "GET",
        ],
    );
    let token = s.token().await;
    for f in common::sample_files() {
        assert_eq!(s.store(&token, f).await.0, 200);
    }
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"practice\"\n[profiles.practice]\nkind = \"practice\"\nbase_url = \"{}/v1\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority = \"{}\"\n",
            s.origin, s.tenant_id, s.client_id, s.client_secret, s.origin
        ),
    )
    .expect("config");
    let learner = Learner {
        config,
        xdg: dir.path().join("xdg"),
    };
    let started = Instant::now();
    let viewer = match start_viewer(&learner, &cache.join("ohif"), viewer_port, "code") {
        Ok(v) => v,
        Err(e) if e.contains("npm") || e.contains("fetch") => {
            return skip(&format!("the pinned OHIF could not be fetched: {e}"));
        }
        Err(e) => panic!("dicomlab ohif did not start: {e}"),
    };
    eprintln!(
        "dicomlab ohif ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let service = s.origin.clone();
    let shots = dir.path();

    // 1. No redirect URI registered: Entra's page, AADSTS50011; the step says to register it.
    let run = drive(
        &node_path,
        &chromium,
        &viewer,
        "signin-error",
        &shots.join("1.png"),
    );
    let error = run["signinError"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "AADSTS50011: The redirect URI '{viewer_origin}/callback' specified in the request does not match the redirect URIs configured for the application '{}'",
            s.client_id
        )),
        "{run:#}"
    );
    let o = learner.viewer_step();
    assert_eq!(o["status"], "fail", "{o:#}");
    assert!(text(&o["observed"]).contains("AADSTS50011"), "{o:#}");
    assert!(
        text(&o["diagnosis"]).contains("register the viewer's redirect URI"),
        "{o:#}"
    );

    // 2. The redirect URI and the user's role set, CORS for another origin: blocked in the browser.
    learner.run(&[
        "app",
        "--service",
        &service,
        "redirect-uri",
        "add",
        &format!("{viewer_origin}/callback"),
    ]);
    learner.run(&["role", "--service", &service, "grant", "reader", "--user"]);
    learner.run(&[
        "cors",
        "--service",
        &service,
        "set",
        "--origin",
        "http://127.0.0.1:1",
        "--header",
        "authorization",
        "--method",
        "GET",
    ]);
    let run = drive(
        &node_path,
        &chromium,
        &viewer,
        "blocked",
        &shots.join("2.png"),
    );
    assert_eq!(run["signinPage"], true, "{run:#}");
    assert!(
        run["console"].as_array().is_some_and(|c| c.iter().any(|l| l
            .as_str()
            .is_some_and(|l| l.contains("has been blocked by CORS policy")))),
        "{run:#}"
    );
    assert!(
        text(&run["page"]).contains("not available"),
        "OHIF says the study is not available: {run:#}"
    );
    let o = learner.viewer_step();
    assert_eq!(o["status"], "fail", "{o:#}");
    assert!(
        text(&o["observed"]).contains("signed in through your app")
            && text(&o["observed"]).contains("no request of theirs reached the DICOM service"),
        "{o:#}"
    );
    assert!(text(&o["diagnosis"]).contains("CORS"), "{o:#}");

    // 3. CORS for the viewer's origin, as in the portal: the red triangle, and the step is done.
    learner.run(&[
        "cors",
        "--service",
        &service,
        "set",
        "--origin",
        &viewer_origin,
        "--header",
        "authorization",
        "--method",
        "GET",
    ]);
    let shot = shots.join("3.png");
    let run = drive(&node_path, &chromium, &viewer, "view", &shot);
    assert_eq!(run["viewportShot"], true, "{run:#}");
    // The shots a second apart: the one that shows the most red.
    let (red, all) = run["shots"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str())
        .map(|p| red_pixels(Path::new(p)))
        .max_by_key(|(red, _)| *red)
        .unwrap_or_else(|| red_pixels(&shot));
    eprintln!(
        "viewport screenshot: {red} red pixels of {all} ({:.1} %); canvas {} red pixels; first red pixel {} ms after the page was opened; run {} ms",
        100.0 * red as f64 / all.max(1) as f64,
        run["canvasRed"],
        run["firstRedMs"],
        run["ms"]
    );
    assert!(
        red > 50_000,
        "the viewport holds the red triangle: {red} red pixels ({run:#})"
    );
    let frames = run["requests"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|q| {
                    q["url"].as_str().is_some_and(|u| u.contains("/frames/1")) && q["status"] == 200
                })
                .count()
        })
        .unwrap_or(0);
    assert!(frames >= 1, "{run:#}");
    let o = learner.viewer_step();
    assert_eq!(o["status"], "pass", "{o:#}");
    assert_eq!(o["evidence"]["source"], "audit_log", "{o:#}");
    let summary = text(&o["evidence"]["summary"]);
    assert!(
        summary.contains(
            "/frames/1 answered 200 by your user learner@practice.dicomlab.test, from a browser"
        ),
        "{o:#}"
    );
    drop(viewer);

    // 4. The implicit grant Microsoft's dicom-ohif guide configures (OHIF's legacy client checks the
    //    id_token's RS256 signature against the keys, its issuer, audience, nonce and at_hash).
    learner.run(&[
        "app",
        "--service",
        &service,
        "implicit",
        "--access-tokens",
        "--id-tokens",
    ]);
    let viewer = start_viewer(&learner, &cache.join("ohif"), viewer_port, "id_token-token")
        .expect("dicomlab ohif --flow id_token-token");
    let shot = shots.join("4.png");
    let run = drive(&node_path, &chromium, &viewer, "view", &shot);
    let (red, _) = red_pixels(&shot);
    eprintln!(
        "implicit grant: {red} red pixels in the viewport; first red pixel {} ms after the page was opened",
        run["firstRedMs"]
    );
    assert!(red > 50_000, "{run:#}");
    assert!(
        run["requests"]
            .as_array()
            .is_some_and(|r| r.iter().any(|q| q["url"]
                .as_str()
                .is_some_and(|u| u.contains("/discovery/v2.0/keys")))),
        "the legacy client fetched the keys: {run:#}"
    );
    drop(viewer);
}
