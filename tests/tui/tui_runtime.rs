//! The runtime on a terminal that is not this process's: events from a channel, bytes into a buffer (as
//! a remote terminal would be served). Every byte for the terminal goes to the channel's writer —
//! frames, the alternate screen, mouse capture, OSC 52 — and the TUI stops when the learner quits or the
//! input ends.

use dicomlab_testkit as common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use dicomlab_practice::{ServiceConfig, start};
use dicomlab_tui::Options;
use dicomlab_tui::runtime::{Channel, run};
use dicomlab_tui::theme::Theme;
use futures_util::stream;
use tokio::sync::mpsc;

/// What the terminal received.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<u8>>>);

impl Received {
    fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// How many bytes the terminal has received.
    fn len(&self) -> usize {
        self.0.lock().map(|b| b.len()).unwrap_or_default()
    }

    /// Waits until the terminal has received `what`.
    async fn wait_for(&self, what: &str) {
        self.wait_for_after(0, what).await;
    }

    /// Waits until the terminal has received `what` after its first `from` bytes.
    async fn wait_for_after(&self, from: usize, what: &str) {
        let start = Instant::now();
        let after = || {
            let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
            String::from_utf8_lossy(bytes.get(from..).unwrap_or_default()).contains(what)
        };
        while !after() {
            if start.elapsed() > Duration::from_secs(20) {
                let text = self.text();
                let tail: String = text
                    .chars()
                    .skip(text.chars().count().saturating_sub(3000))
                    .collect();
                panic!("the terminal never received {what:?}; the last it did: {tail:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Write for Received {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The TUI on a served practice service, its files in `dir`.
fn options(svc: &dicomlab_practice::RunningService, dir: &std::path::Path) -> Options {
    let profile = common::profile_for(svc);
    Options {
        lab: dicomlab_lab::Lab::embedded().expect("lab"),
        profile_name: "served".into(),
        profile: profile.clone(),
        profiles: [("served".to_string(), profile)].into(),
        progress_path: dir.join("progress.json"),
        embedded: Some(std::sync::Arc::new(dicomlab_embedded::Launcher::new(Some(
            dir.join("practice"),
        )))),
        samples: None,
        log_path: dir.join("dicomlab.log"),
        config_path: None,
        ask_name: false,
        remote: false,
        shown_profile: None,
        room: None,
    }
}

fn key(c: char) -> std::io::Result<Event> {
    Ok(Event::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::NONE,
    )))
}

#[tokio::test]
async fn the_tui_runs_on_any_channel_and_writes_only_to_it() {
    let svc = start(ServiceConfig::default()).await.expect("service");
    let dir = tempfile::tempdir().expect("dir");
    let opts = options(&svc, dir.path());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let events = stream::poll_fn(move |cx| rx.poll_recv(cx));
    let received = Received::default();
    let channel = Channel {
        events,
        out: received.clone(),
        size: (120, 40),
        theme: Theme::default(),
        picker: ratatui_image::picker::Picker::halfblocks(),
    };
    let learner = async {
        // The alternate screen, then the first frame.
        received.wait_for("Exercises").await;
        assert!(received.text().starts_with("\x1b[?1049h"));
        // Mouse capture goes to this terminal.
        tx.send(key('M')).expect("send");
        received.wait_for("\x1b[?1000h").await;
        // "Do it" sends the step's request; the last request is copied with OSC 52, to this terminal.
        tx.send(key('d')).expect("send");
        // (The frames are diffs: what is new is whole, as the exchange pane's first line.)
        received.wait_for("GET /v1/changefeed/latest  401").await;
        tx.send(key('y')).expect("send");
        received.wait_for("\x1b]52;c;").await;
        // A resize redraws the whole screen at the new size.
        let before = received.len();
        tx.send(Ok(Event::Resize(90, 30))).expect("send");
        received.wait_for_after(before, "dicomlab").await;
        tx.send(key('q')).expect("send");
    };
    let (ran, ()) = tokio::join!(run(opts, channel), learner);
    ran.expect("the TUI ends without an error");
    let all = received.text();
    assert!(all.contains("\x1b[?1000l"), "mouse capture is turned off");
    assert!(all.ends_with("\x1b[?25h") || all.contains("\x1b[?1049l"));
    assert!(
        all.rfind("\x1b[?1049l") > all.rfind("\x1b[?1000l"),
        "the normal screen comes back last"
    );
    // Progress was saved where the options say.
    assert!(dir.path().join("progress.json").exists());
}

#[tokio::test]
async fn the_tui_stops_when_its_input_ends() {
    let svc = start(ServiceConfig::default()).await.expect("service");
    let dir = tempfile::tempdir().expect("dir");
    let opts = options(&svc, dir.path());
    let received = Received::default();
    let channel = Channel {
        events: stream::iter(vec![key('?')]),
        out: received.clone(),
        size: (80, 24),
        theme: Theme::default(),
        picker: ratatui_image::picker::Picker::halfblocks(),
    };
    run(opts, channel).await.expect("ends");
    let all = received.text();
    assert!(all.contains("Keys"), "the help was drawn");
    assert!(all.contains("\x1b[?1049l"));
}
