//! Every screen state of the TUI at 80×24 and 120×40, in pass and fail states, as insta snapshots of
//! ratatui's TestBackend. The state is built directly (update is pure), so nothing touches the network.

use dicomlab_testkit::tui;

use crossterm::event::KeyCode;
use dicomlab_dicomweb::Exchange;
use dicomlab_lab::Outcome;
use dicomlab_lab::targets::TargetKind;
use dicomlab_tui::app::{App, Effect, Focus, Msg};
use dicomlab_tui::screens::{change_feed, environment, retrieve, role, search, store, tags};
use dicomlab_tui::update::update;
use tui::{app, done, fail, first_steps_done, key, on_screen, pass, press, select};

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn render(a: &App, name: &str) {
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), tui::draw(a, w, h));
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
            tried: Vec::new(),
        },
    });
    key(&mut a, 'h');
    key(&mut a, 'h');
    render(&a, "role_fail");
}

#[test]
fn change_feed_not_supported_on_a_generic_server() {
    let mut a = tui::app_on(
        TargetKind::Generic,
        "generic",
        "http://localhost:8042/dicom-web",
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
    // Its screen says so too, and takes no keys.
    a.focus = Focus::Panel;
    press(&mut a, KeyCode::Enter);
    assert!(
        !a.screens.change_feed.page.is_running(),
        "no request to a server without a change feed"
    );
}

#[test]
fn help_overlay() {
    let mut a = app();
    key(&mut a, '?');
    render(&a, "help");
}

/// At 80×24 every screen's bar keeps the way to the help: `? keys`, or `F1 keys` while a form has the
/// keys (`?` is typed there). Only a question or an overlay says something else: its own answers.
#[test]
fn every_narrow_bar_keeps_the_help_key() {
    let questions = [
        "answer_prompt",
        "name_prompt",
        "reset_all",
        "tags_delete_confirm",
        "help",
        "summary",
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tui/snapshots");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("snapshots") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some(shot) = name
            .strip_prefix("tui__tui_snapshots__")
            .and_then(|n| n.strip_suffix("_80x24.snap"))
        else {
            continue;
        };
        seen += 1;
        let text = std::fs::read_to_string(&path).expect("snapshot");
        let bar = text.trim_end().lines().last().unwrap_or_default();
        if questions.contains(&shot) {
            assert!(!bar.contains("? keys"), "{shot}: a question's bar: {bar}");
        } else {
            assert!(
                bar.contains(" ? keys ") || bar.contains(" F1 keys "),
                "{shot}: the bar lost the help key: {bar}"
            );
        }
    }
    assert!(seen >= 20, "only {seen} snapshots at 80×24");
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
    a.theme.ascii = true;
    a.theme.no_color = true;
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
        Msg::Claims(Some(dicomlab_dicomweb::Claims {
            aud: Some("https://dicom.healthcareapis.azure.com".into()),
            tid: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
            app: Some("7338ffc8-ad5f-46ad-bfc8-4b34b6363c26".into()),
            roles: vec![],
            exp: Some(1_800_000_000),
            oid: None,
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
    let red = dicomlab_dicom::samples::SAMPLES[0];
    let img = image::RgbImage::from_raw(985, 979, red.pixels()).expect("image");
    update(
        &mut a,
        Msg::Image(Ok(std::sync::Arc::new(image::DynamicImage::ImageRgb8(img)))),
    );
    update(
        &mut a,
        Msg::ImageAttributes(dicomlab_tui::viewer::key_attributes(&metadata(0))),
    );
    render(&a, "viewer_image");
}

// ---- The exercise screens, each with the focus on it, in pass and fail states. ----

use dicomlab_dicom::samples::{BLUE_UID, GREEN_UID, RED_UID, SAMPLES, SERIES1_UID, STUDY_UID};
use dicomlab_tui::screens::change_feed::FeedRow;
use dicomlab_tui::screens::retrieve::What;
use dicomlab_tui::screens::store::{InstanceResult, Stored};
use serde_json::{Value, json};

/// A sample's metadata as the service returns it (no pixel data).
fn metadata(i: usize) -> Value {
    let mut m = dicomlab_dicom::json::dataset_to_json(&SAMPLES[i].dataset());
    m.remove("7FE00010");
    Value::Object(m)
}

#[test]
fn environment_screen() {
    let mut a = app();
    first_steps_done(&mut a);
    on_screen(&mut a, "environment-values");
    done(
        &mut a,
        environment::Done::Profile {
            name: "azure".into(),
            profile: tui::azure_profile("https://ws-dicom.dicom.azurehealthcareapis.com/v1"),
            editable: true,
        },
    );
    render(&a, "environment_pass");

    let mut a = app();
    on_screen(&mut a, "environment-values");
    done(
        &mut a,
        environment::Done::Profile {
            name: "azure".into(),
            profile: tui::azure_profile("https://ws-dicom.dicom.azurehealthcareapis.com"),
            editable: true,
        },
    );
    fail(
        &mut a,
        "environment-values",
        "a tenant id, client id, client secret, resource and a base URL ending in /v1",
        "the base URL must end in /v1 (every DICOM route is versioned)",
        "fix these values on the Environment screen (or in the config file)",
    );
    // Editing the base URL: the cursor is in the last field.
    press(&mut a, KeyCode::Char('i'));
    for _ in 0..4 {
        press(&mut a, KeyCode::Tab);
    }
    let text = tui::text(&a, 120, 40);
    assert!(
        !text.contains("s3cr3t"),
        "the secret must never be on screen"
    );
    render(&a, "environment_fail");
}

#[test]
fn environment_secret_revealed_and_copied() {
    let mut a = app();
    first_steps_done(&mut a);
    tui::on_practice_environment(&mut a);
    let secret = tui::practice_profile().client_secret;
    assert!(!tui::text(&a, 120, 40).contains(secret.expose()));
    key(&mut a, 's');
    for _ in 0..2 {
        press(&mut a, KeyCode::Down);
    }
    let fx = key(&mut a, 'y');
    assert!(
        matches!(fx.as_slice(), [Effect::Copy(c)] if c.expose() == secret.expose()),
        "{fx:?}"
    );
    assert!(tui::text(&a, 120, 40).contains(secret.expose()));
    render(&a, "environment_revealed");
}

#[test]
fn environment_postman_files_written() {
    let mut a = app();
    first_steps_done(&mut a);
    tui::on_practice_environment(&mut a);
    let dir = std::path::PathBuf::from("/home/ada/dicomlab-postman");
    done(
        &mut a,
        environment::Done::Exported(Ok(dicomlab_lab::postman::Exported {
            environment: dir.join(dicomlab_lab::postman::ENVIRONMENT_FILE),
            collection: dir.join(dicomlab_lab::postman::COLLECTION_FILE),
            samples: ["red-triangle.dcm", "green-square.dcm", "blue-circle.dcm"]
                .map(|f| dir.join(f))
                .to_vec(),
            token_url: "http://127.0.0.1:8042/{{tenantId}}/oauth2/token".into(),
            name: "dicom-service · practice".into(),
            dir,
        })),
    );
    let text = tui::text(&a, 120, 40);
    assert!(
        text.contains("0600") && text.contains("newman run"),
        "{text}"
    );
    assert!(!text.contains(tui::practice_profile().client_secret.expose()));
    render(&a, "environment_exported");
}

fn stored_files(a: &mut App) {
    done(
        a,
        store::Done::Listed(Ok((
            None,
            SAMPLES
                .iter()
                .map(|s| {
                    (
                        format!("/tmp/dicomlab-x/samples/{}", s.file_name).into(),
                        2_893_334,
                    )
                })
                .collect(),
        ))),
    );
}

#[test]
fn store_screen() {
    let mut a = app();
    first_steps_done(&mut a);
    on_screen(&mut a, "store-samples");
    stored_files(&mut a);
    press(&mut a, KeyCode::Enter);
    done(
        &mut a,
        store::Done::Stored(Ok(Stored {
            statuses: vec![200, 200, 200],
            results: [RED_UID, GREEN_UID, BLUE_UID]
                .iter()
                .map(|u| InstanceResult {
                    sop_uid: u.to_string(),
                    stored: true,
                    code: None,
                })
                .collect(),
        })),
    );
    pass(
        &mut a,
        "store-samples",
        "3 of 3 instances found: 1 study, 2 series",
    );
    render(&a, "store_screen_pass");

    let mut a = app();
    first_steps_done(&mut a);
    on_screen(&mut a, "store-samples");
    stored_files(&mut a);
    press(&mut a, KeyCode::Char('m'));
    press(&mut a, KeyCode::Enter);
    // Mid-transfer: the gauges.
    for (file, sent) in [(0, 2_893_334), (1, 1_400_000), (2, 0)] {
        done(
            &mut a,
            store::Done::Progress(dicomlab_dicomweb::StoreProgress {
                file,
                sent,
                total: 2_893_334,
                done: false,
            }),
        );
    }
    render(&a, "store_screen_progress");
    done(
        &mut a,
        store::Done::Stored(Ok(Stored {
            statuses: vec![409],
            results: vec![
                InstanceResult {
                    sop_uid: RED_UID.into(),
                    stored: false,
                    code: Some(45070),
                },
                InstanceResult {
                    sop_uid: "1.2.3.4".into(),
                    stored: false,
                    code: Some(43264),
                },
            ],
        })),
    );
    fail(
        &mut a,
        "store-samples",
        "the three sample instances stored",
        "1 of 3 found",
        "409 Conflict: 43264: not a valid DICOM file, a required attribute is missing or invalid, or the file belongs to another study than the one in the URL",
    );
    render(&a, "store_screen_fail");
}

fn study_result() -> Value {
    json!({
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Anonymized^Patient"}]},
        "00100020": {"vr": "LO", "Value": ["pat-001"]},
        "00080020": {"vr": "DA", "Value": ["20200101"]},
        "00080061": {"vr": "CS", "Value": ["OT"]},
        "00081030": {"vr": "LO", "Value": ["Lab study"]},
        "0020000D": {"vr": "UI", "Value": [STUDY_UID]},
    })
}

#[test]
fn search_screen() {
    let mut a = app();
    first_steps_done(&mut a);
    on_screen(&mut a, "search-samples");
    press(&mut a, KeyCode::Char('/'));
    for c in "PatientID=pat-001".chars() {
        press(&mut a, KeyCode::Char(c));
    }
    press(&mut a, KeyCode::Enter);
    done(
        &mut a,
        search::Done::Searched(Ok(search::Found {
            status: 200,
            results: vec![study_result()],
        })),
    );
    pass(
        &mut a,
        "search-samples",
        "the six searches find the samples",
    );
    render(&a, "search_pass");
    // Enter opens the result as a tag tree.
    press(&mut a, KeyCode::Enter);
    render(&a, "search_result_open");

    let mut a = app();
    on_screen(&mut a, "search-samples");
    press(&mut a, KeyCode::Char('/'));
    for c in "patientname=Anne".chars() {
        press(&mut a, KeyCode::Char(c));
    }
    press(&mut a, KeyCode::Enter);
    fail(
        &mut a,
        "search-samples",
        "each of the six searches finds the lab study",
        "GET /v1/studies?PatientName=Anonymized  204  3 ms",
        "204 No Content: nothing matched. Store the samples first (exercise 'Store instances').",
    );
    render(&a, "search_fail");
}

#[test]
fn retrieve_screen() {
    let mut a = app();
    first_steps_done(&mut a);
    on_screen(&mut a, "retrieve-samples");
    press(&mut a, KeyCode::Char('4'));
    press(&mut a, KeyCode::Enter);
    done(
        &mut a,
        retrieve::Done::Retrieved(Ok((
            "200: metadata of 3 instance(s), 5841 bytes".into(),
            Some(vec![metadata(0), metadata(1), metadata(2)]),
        ))),
    );
    pass(
        &mut a,
        "retrieve-samples",
        "study, series, instance, metadata, frame and rendered retrieved",
    );
    render(&a, "retrieve_metadata_pass");

    let mut a = app();
    on_screen(&mut a, "retrieve-samples");
    assert_eq!(a.screens.retrieve.what, What::Study);
    press(&mut a, KeyCode::Enter);
    done(
        &mut a,
        retrieve::Done::Retrieved(Err(
            "the service answered 406: the requested transfer syntax is not supported".into(),
        )),
    );
    fail(
        &mut a,
        "retrieve-samples",
        "200 and the three instances for the study",
        "GET /v1/studies/… 406",
        "406 Not Acceptable: add transfer-syntax=* to the Accept header (several instances cannot be sent in one fixed transfer syntax).",
    );
    render(&a, "retrieve_fail");

    // T: frame 1 asked for as JPEG 2000 lossless (image/jp2 parts), saved.
    let mut a = app();
    on_screen(&mut a, "retrieve-samples");
    press(&mut a, KeyCode::Char('5'));
    press(&mut a, KeyCode::Char('T'));
    press(&mut a, KeyCode::Char('T'));
    assert_eq!(
        a.screens.retrieve.syntax,
        dicomlab_dicomweb::routes::Syntax::Jpeg2000Lossless
    );
    press(&mut a, KeyCode::Enter);
    done(
        &mut a,
        retrieve::Done::Retrieved(Ok((
            "200: 1 file(s), 3.1 KiB saved in /tmp/retrieved/frame-1".into(),
            None,
        ))),
    );
    render(&a, "retrieve_jpeg2000");
}

fn feed_rows() -> Vec<FeedRow> {
    [RED_UID, GREEN_UID, BLUE_UID]
        .iter()
        .enumerate()
        .map(|(i, sop)| FeedRow {
            sequence: i as u64 + 1,
            action: "Create".into(),
            state: "Current".into(),
            timestamp: format!("2026-11-28T09:1{i}:03.127Z"),
            study: STUDY_UID.into(),
            series: SERIES1_UID.into(),
            sop: sop.to_string(),
        })
        .collect()
}

#[test]
fn change_feed_screen() {
    let mut a = app();
    first_steps_done(&mut a);
    on_screen(&mut a, "change-feed");
    press(&mut a, KeyCode::Enter);
    done(
        &mut a,
        change_feed::Done::Page {
            result: Ok(feed_rows()),
            append: false,
        },
    );
    press(&mut a, KeyCode::Char('f'));
    pass(&mut a, "change-feed", "3 Create entries for the samples");
    render(&a, "change_feed_pass");

    let mut a = app();
    on_screen(&mut a, "change-feed");
    press(&mut a, KeyCode::Enter);
    done(
        &mut a,
        change_feed::Done::Page {
            result: Err("the service answered 403: Forbidden".into()),
            append: false,
        },
    );
    fail(
        &mut a,
        "change-feed",
        "Create entries for the three samples",
        "GET /v1/changefeed  403",
        "403 Forbidden: the token is valid but the app has no role that allows this.",
    );
    render(&a, "change_feed_fail");
}

#[test]
fn tags_screen() {
    let mut a = app();
    first_steps_done(&mut a);
    on_screen(&mut a, "tag-add");
    done(
        &mut a,
        tags::Done::Listed(Ok(vec![json!({
            "Path": "00100040", "VR": "CS", "Level": "Study", "Status": "Adding",
            "QueryStatus": "Enabled", "ErrorCount": 0
        })])),
    );
    done(
        &mut a,
        tags::Done::Progress(tags::Operation {
            id: "0f8c2e6ab47d4e8cb1d96cf1a32c7a0e".into(),
            status: "running".into(),
            percent: Some(40),
        }),
    );
    render(&a, "tags_progress");
    done(
        &mut a,
        tags::Done::Changed(Ok(
            "added PatientSex; its re-index operation completed".into()
        )),
    );
    done(
        &mut a,
        tags::Done::Listed(Ok(vec![json!({
            "Path": "00100040", "VR": "CS", "Level": "Study", "Status": "Ready",
            "QueryStatus": "Enabled", "ErrorCount": 0
        })])),
    );
    pass(&mut a, "tag-add", "00100040 PatientSex is Ready");
    render(&a, "tags_pass");
    // Delete asks first.
    press(&mut a, KeyCode::Char('D'));
    render(&a, "tags_delete_confirm");

    let mut a = app();
    on_screen(&mut a, "tag-add");
    press(&mut a, KeyCode::Char('+'));
    render(&a, "tags_add_form");
    press(&mut a, KeyCode::Enter);
    done(
        &mut a,
        tags::Done::Changed(Err(
            "the service answered 409: The extended query tag(s) '00100040' already exist.".into(),
        )),
    );
    fail(
        &mut a,
        "tag-add",
        "PatientSex added at study level, Ready",
        "POST /v1/extendedquerytags  409",
        "409 Conflict: the tag exists already, or another re-index operation is still running.",
    );
    render(&a, "tags_fail");
}

#[test]
fn role_screen_after_grant() {
    let mut a = app();
    pass(
        &mut a,
        "service-exists",
        "the service answered 401 without a token",
    );
    on_screen(&mut a, "role-assigned");
    press(&mut a, KeyCode::Char('+'));
    done(
        &mut a,
        role::Done::Changed(Ok(
            "granted DICOM Data Owner to client 7338ffc8-ad5f-46ad-bfc8-4b34b6363c26".into(),
        )),
    );
    pass(
        &mut a,
        "role-assigned",
        "an authenticated read answered 200",
    );
    render(&a, "role_pass");
}

#[test]
fn summary_when_the_lab_is_complete() {
    let mut a = app();
    let ids = a.step_ids();
    let required: Vec<dicomlab_lab::model::StepId> = ids
        .iter()
        .filter(|id| a.lab.step(id).is_some_and(|s| !s.optional))
        .cloned()
        .collect();
    for id in &required {
        assert!(
            a.overlay != Some(dicomlab_tui::app::Overlay::Summary),
            "the summary came before the lab was complete"
        );
        pass(&mut a, id, "done");
    }
    assert!(
        a.overlay == Some(dicomlab_tui::app::Overlay::Summary),
        "completing the lab shows the final screen"
    );
    render(&a, "summary");
    // Any key closes it; it does not come back on the next pass.
    press(&mut a, KeyCode::Esc);
    assert!(a.overlay != Some(dicomlab_tui::app::Overlay::Summary));
    pass(&mut a, "viewer", "rendered");
    assert!(a.overlay != Some(dicomlab_tui::app::Overlay::Summary));
}

#[test]
fn portal_token_and_viewer_failures() {
    // The service URL without /v1.
    let mut a = app();
    fail(
        &mut a,
        "service-exists",
        "an answer from the DICOM service at the base URL",
        "GET /changefeed/latest  404  41 ms",
        "404 Not Found on a base URL without a version: add /v1 to the base URL (every DICOM route is versioned).",
    );
    render(&a, "portal_fail");
    let mut a = app();
    pass(
        &mut a,
        "service-exists",
        "the service answered 401 without a token: it exists and wants one",
    );
    render(&a, "portal_pass");

    // A wrong client secret.
    let mut a = app();
    first_steps_done(&mut a);
    select(&mut a, "get-token");
    fail(
        &mut a,
        "get-token",
        "a token whose audience is the resource, valid for at least 5 more minutes",
        "POST https://login.microsoftonline.com/…/oauth2/token → 401 AADSTS7000215: Invalid client secret provided.",
        "AADSTS7000215: the client secret is wrong — use the secret's Value (shown once when it was created), not its Secret ID.",
    );
    render(&a, "token_fail");

    // The viewer when the instance is not stored.
    let mut a = app();
    first_steps_done(&mut a);
    select(&mut a, "viewer");
    fail(
        &mut a,
        "viewer",
        "a PNG rendering of red-triangle.dcm",
        "GET /v1/studies/…/instances/…/rendered  404  2 ms",
        "404 Not Found: a UID in the path is wrong, or the instance is not stored (yet).",
    );
    render(&a, "viewer_fail");
}

// ---- Evidence: what a verdict rests on, the learner's failed attempts, waiting, questions. ----

#[test]
fn a_failed_attempt_from_postman_is_shown_diagnosed() {
    use dicomlab_lab::checks::Tried;
    use dicomlab_lab::evidence::Source;
    let mut a = app();
    first_steps_done(&mut a);
    select(&mut a, "store-samples");
    update(
        &mut a,
        Msg::Checked {
            step: "store-samples".into(),
            outcome: Outcome::Fail {
                expected: "Create entries in the change feed for red triangle, green square, blue circle".into(),
                observed: "no Create entry yet; your last attempt: POST /v1/studies answered 415".into(),
                diagnosis: "415 Unsupported Media Type: send Content-Type: application/dicom (one file) or multipart/related; type=\"application/dicom\"; boundary=….".into(),
                tried: vec![Tried {
                    at: None,
                    line: "POST /v1/studies".into(),
                    status: 415,
                    tool: Some("Postman".into()),
                    source: Source::AuditLog,
                    diagnosis: "415 Unsupported Media Type: send Content-Type: application/dicom".into(),
                }],
            },
        },
    );
    render(&a, "store_tried");
}

#[test]
fn waiting_for_the_audit_log() {
    let mut a = app();
    // Waiting means an audit log is read: no question.
    a.reads_recorded = true;
    first_steps_done(&mut a);
    select(&mut a, "change-feed");
    update(
        &mut a,
        Msg::Checked {
            step: "change-feed".into(),
            outcome: Outcome::Waiting {
                reason: "waiting for the audit log: no record of it yet. Azure delivers audit records late (usually within 10 min); dicomlab looks again on its own".into(),
                tried: Vec::new(),
            },
        },
    );
    assert_eq!(a.waiting(), vec!["change-feed".to_string()]);
    render(&a, "waiting");
}

#[test]
fn a_question_where_reads_leave_no_record() {
    let mut a = app();
    a.reads_recorded = false;
    first_steps_done(&mut a);
    select(&mut a, "retrieve-samples");
    update(
        &mut a,
        Msg::Checked {
            step: "retrieve-samples".into(),
            outcome: Outcome::Ready {
                detail: "no record of it yet (the audit log is not set up (profile: log_workspace)): do it (press d, or with your tool), then answer the question — How many bytes is frame 1 of the red triangle?".into(),
                tried: Vec::new(),
            },
        },
    );
    key(&mut a, 'a');
    for c in "2892945".chars() {
        key(&mut a, c);
    }
    render(&a, "answer_prompt");
    let fx = press(&mut a, KeyCode::Enter);
    assert!(
        matches!(fx.as_slice(), [Effect::Answer { step, value }] if step == "retrieve-samples" && value == "2892945"),
        "{fx:?}"
    );
}

#[test]
fn the_name_is_asked_once() {
    let mut a = app();
    a.ask(dicomlab_tui::app::Confirm::Name(String::new()));
    for c in "Ada".chars() {
        key(&mut a, c);
    }
    render(&a, "name_prompt");
    let fx = press(&mut a, KeyCode::Enter);
    assert!(
        matches!(fx.as_slice(), [Effect::SaveName(n)] if n == "Ada"),
        "{fx:?}"
    );
    assert!(a.confirm().is_none());
}
