//! The TUI harness: the whole app on the embedded lab, driven by keys and results as the runtime would
//! (`update` is pure, so nothing touches the network), and drawn on ratatui's TestBackend. Included by
//! the TUI tests with `#[path = "common/tui.rs"] mod tui;`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use dicomlab_lab::evidence::{Evidence, Source};
use dicomlab_lab::targets::TargetKind;
use dicomlab_lab::{Lab, Outcome};
use dicomlab_tui::app::{App, Effect, Focus, Msg};
use dicomlab_tui::screens::Done;
use dicomlab_tui::update::update;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// The base URL the app says it is on (the practice service's usual one).
pub const BASE_URL: &str = "http://127.0.0.1:8042/v1";

/// The app on the embedded lab and the practice service, its token 52 minutes from expiry.
pub fn app() -> App {
    let mut a = app_on(TargetKind::Practice, "practice", BASE_URL);
    a.token_left = Some(std::time::Duration::from_secs(52 * 60));
    a
}

/// The app on another kind of target (no token yet).
pub fn app_on(target: TargetKind, profile: &str, base_url: &str) -> App {
    App::new(
        Lab::embedded().expect("the embedded lab"),
        profile.into(),
        target,
        base_url.into(),
    )
}

/// A key press, as the terminal sends it.
pub fn press(a: &mut App, code: KeyCode) -> Vec<Effect> {
    update(a, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

/// A character key.
pub fn key(a: &mut App, c: char) -> Vec<Effect> {
    press(a, KeyCode::Char(c))
}

/// Characters typed one by one.
pub fn type_text(a: &mut App, text: &str) {
    for c in text.chars() {
        key(a, c);
    }
}

/// The position of a step in the lab.
pub fn position(a: &App, id: &str) -> usize {
    a.step_ids()
        .iter()
        .position(|s| s == id)
        .unwrap_or_else(|| panic!("no step {id} in the lab"))
}

/// Selects a step (as the checklist would, without loading its screen).
pub fn select(a: &mut App, id: &str) {
    a.selected = position(a, id);
}

/// Selects a step and gives its screen the keys.
pub fn on_screen(a: &mut App, id: &str) {
    select(a, id);
    a.focus = Focus::Panel;
}

/// A screen's result comes back.
pub fn done(a: &mut App, d: impl Into<Done>) -> Vec<Effect> {
    update(a, Msg::Done(d.into()))
}

/// A step's check passes, on the audit log's evidence (without a time: the snapshots must not depend
/// on the machine's time zone).
pub fn pass(a: &mut App, id: &str, detail: &str) {
    update(
        a,
        Msg::Checked {
            step: id.into(),
            outcome: Outcome::Pass {
                detail: detail.into(),
                evidence: Evidence {
                    source: Source::AuditLog,
                    summary: format!("the service's record: {detail}"),
                    at: None,
                    subject: None,
                },
            },
        },
    );
}

/// A step's check fails.
pub fn fail(a: &mut App, id: &str, expected: &str, observed: &str, fix: &str) {
    update(
        a,
        Msg::Checked {
            step: id.into(),
            outcome: Outcome::Fail {
                expected: expected.into(),
                observed: observed.into(),
                diagnosis: fix.into(),
                tried: Vec::new(),
            },
        },
    );
}

/// The first steps done (the service, the role, the environment, the token).
pub fn first_steps_done(a: &mut App) {
    for (id, d) in [
        ("service-exists", "the service answered 401 without a token"),
        ("role-assigned", "an authenticated read answered 200"),
        ("postman-environment", "every value is set"),
        ("environment-values", "every value is set"),
        (
            "get-token",
            "token for https://dicom.healthcareapis.azure.com, 59 min left",
        ),
    ] {
        pass(a, id, d);
    }
}

/// An azure profile with the lab client's values and a secret that must never be on screen.
pub fn azure_profile(base_url: &str) -> dicomlab_lab::config::Profile {
    let mut p = dicomlab_lab::config::Profile::new(TargetKind::Azure);
    p.tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47".into();
    p.client_id = "7338ffc8-ad5f-46ad-bfc8-4b34b6363c26".into();
    p.client_secret = dicomlab_dicomweb::Secret::new("Zq8~s3cr3t-value-never-shown");
    p.base_url = base_url.into();
    p
}

/// The embedded practice service's values, as the environment screen shows them (read-only).
pub fn practice_profile() -> dicomlab_lab::config::Profile {
    let mut p = dicomlab_lab::config::Profile::new(TargetKind::Practice);
    p.tenant_id = "0c1e5f0a-8a1b-4c55-9d3e-6f1e2a3b4c5d".into();
    p.client_id = "5d4c3b2a-1e6f-4e3d-9c55-b1a8a0f5e1c0".into();
    p.client_secret = dicomlab_dicomweb::Secret::new("8f2d61c0e4b94a7fbd31~c7a90e5d2f1b4c8e9a6");
    p.base_url = BASE_URL.into();
    p.authority = "http://127.0.0.1:8042".into();
    p
}

/// The environment step on the embedded practice service, its screen with the keys.
pub fn on_practice_environment(a: &mut App) {
    on_screen(a, "environment-values");
    done(
        a,
        dicomlab_tui::screens::environment::Done::Profile {
            name: "practice".into(),
            profile: practice_profile(),
            editable: false,
        },
    );
}

/// The app drawn at a size.
pub fn draw(a: &App, width: u16, height: u16) -> TestBackend {
    let mut t = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    t.draw(|f| dicomlab_tui::view::view(a, f)).expect("draw");
    t.backend().clone()
}

/// The app's screen as text, a line per row.
pub fn text(a: &App, width: u16, height: u16) -> String {
    let backend = draw(a, width, height);
    let buffer = backend.buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The command bar's keys now (`keys does` pairs, as the bar shows them).
pub fn bar(a: &App) -> Vec<String> {
    dicomlab_tui::keys::commands(a)
        .iter()
        .map(|(c, _)| format!("{} {}", c.keys, c.does))
        .collect()
}
