//! Every screen state of the TUI at 80×24 and 120×40, in pass and fail states, as insta snapshots of
//! ratatui's TestBackend. The state is built directly (update is pure), so nothing touches the network.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use dicomlab::dicomweb::Exchange;
use dicomlab::lab::checks::TargetKind;
use dicomlab::lab::{Lab, Outcome};
use dicomlab::tui::app::{App, Msg, update};
use dicomlab::tui::view::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn app() -> App {
    let mut a = App::new(
        Lab::embedded().expect("lab"),
        "practice".into(),
        TargetKind::Practice,
        "http://127.0.0.1:8042/v1".into(),
    );
    a.token_left = Some(std::time::Duration::from_secs(52 * 60));
    a
}

fn key(a: &mut App, c: char) {
    update(
        a,
        Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
    );
}

fn select(a: &mut App, id: &str) {
    a.selected = a.step_ids().iter().position(|s| s == id).expect("step");
}

fn pass(a: &mut App, id: &str, detail: &str) {
    update(
        a,
        Msg::Checked {
            step: id.into(),
            outcome: Outcome::Pass {
                detail: detail.into(),
            },
        },
    );
}

fn render(a: &App, name: &str) {
    for (w, h) in SIZES {
        let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        t.draw(|f| view(a, f)).expect("draw");
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), t.backend());
    }
}

fn store_exchange() -> Exchange {
    Exchange {
        method: "POST".into(),
        url: "http://127.0.0.1:8042/v1/studies".into(),
        status: Some(200),
        duration_ms: 84,
        response_excerpt: r#"{"00081199":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.7"]}}]}}"#.into(),
        ..Exchange::default()
    }
}

fn first_steps_done(a: &mut App) {
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

#[test]
fn fresh_start() {
    let a = app();
    render(&a, "fresh");
}

#[test]
fn store_passed() {
    let mut a = app();
    first_steps_done(&mut a);
    pass(
        &mut a,
        "store-samples",
        "3 of 3 instances found: 1 study, 2 series",
    );
    update(
        &mut a,
        Msg::Did {
            step: "store-samples".into(),
            result: Ok("stored 3 file(s): 200, 200, 200".into()),
        },
    );
    pass(
        &mut a,
        "store-samples",
        "3 of 3 instances found: 1 study, 2 series",
    );
    update(&mut a, Msg::Exchange(store_exchange()));
    select(&mut a, "store-samples");
    render(&a, "store_pass");
}

#[test]
fn role_failed_with_hints() {
    let mut a = app();
    pass(
        &mut a,
        "service-exists",
        "the service answered 401 without a token",
    );
    select(&mut a, "role-assigned");
    update(&mut a, Msg::Checked {
        step: "role-assigned".into(),
        outcome: Outcome::Fail {
            expected: "an authenticated read that is neither 401 nor 403".into(),
            observed: "GET /v1/changefeed?limit=1  403  1 ms".into(),
            diagnosis: "403 Forbidden: the token is valid but the app has no role that allows this. Assign \"DICOM Data Owner\" to client 7338ffc8-ad5f-46ad-bfc8-4b34b6363c26 on the DICOM service (Access control (IAM)); on Azure a new assignment can take several minutes.".into(),
        },
    });
    key(&mut a, 'h');
    key(&mut a, 'h');
    render(&a, "role_fail");
}

#[test]
fn change_feed_not_supported_on_a_generic_server() {
    let mut a = App::new(
        Lab::embedded().expect("lab"),
        "generic".into(),
        TargetKind::Generic,
        "http://localhost:8042/dicom-web".into(),
    );
    select(&mut a, "change-feed");
    update(
        &mut a,
        Msg::Checked {
            step: "change-feed".into(),
            outcome: Outcome::NotSupported {
                reason: "this server has no change feed (an Azure DICOM service feature)".into(),
            },
        },
    );
    render(&a, "change_feed_not_supported");
}

#[test]
fn help_overlay() {
    let mut a = app();
    key(&mut a, '?');
    render(&a, "help");
}

#[test]
fn reset_all_asks_for_the_word() {
    let mut a = app();
    first_steps_done(&mut a);
    key(&mut a, 'R');
    for c in "res".chars() {
        key(&mut a, c);
    }
    render(&a, "reset_all");
}

#[test]
fn ascii_and_no_color() {
    let mut a = app();
    a.ascii = true;
    a.no_color = true;
    first_steps_done(&mut a);
    select(&mut a, "store-samples");
    render(&a, "ascii");
}

#[test]
fn token_step_shows_claims_and_countdown() {
    let mut a = app();
    a.profiles = vec!["azure".into(), "generic".into(), "practice".into()];
    first_steps_done(&mut a);
    select(&mut a, "get-token");
    update(
        &mut a,
        Msg::Claims(Some(dicomlab::dicomweb::Claims {
            aud: Some("https://dicom.healthcareapis.azure.com".into()),
            tid: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
            app: Some("7338ffc8-ad5f-46ad-bfc8-4b34b6363c26".into()),
            roles: vec![],
            exp: Some(1_800_000_000),
        })),
    );
    render(&a, "token_claims");
}

#[test]
fn viewer_shows_the_image_in_half_blocks() {
    let mut a = app();
    first_steps_done(&mut a);
    select(&mut a, "viewer");
    pass(&mut a, "viewer", "rendered PNG of 985 × 979");
    let red = dicomlab::dicom::samples::SAMPLES[0];
    let img = image::RgbImage::from_raw(985, 979, red.pixels()).expect("image");
    update(
        &mut a,
        Msg::Image(Ok(std::sync::Arc::new(image::DynamicImage::ImageRgb8(img)))),
    );
    render(&a, "viewer_image");
}
