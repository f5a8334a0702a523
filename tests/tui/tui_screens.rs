//! The exercise screens through the app, key by key: the forms they send (named fields, mistakes said
//! before anything is sent), paging, files chosen, secrets masked — and their command lists, which are
//! both their keys and what the bar and the help show.

use dicomlab_testkit::tui;

use crossterm::event::KeyCode;
use dicomlab_dicomweb::{Level, StoreMode, StoreProgress};
use dicomlab_lab::targets::TargetKind;
use dicomlab_tui::app::{App, Effect};
use dicomlab_tui::component::{Component, Ctx, Request};
use dicomlab_tui::screens::change_feed::{self, FeedRow, feed_row};
use dicomlab_tui::screens::environment::{self, Setting};
use dicomlab_tui::screens::retrieve::{self, What};
use dicomlab_tui::screens::search::{self, Param, Scope};
use dicomlab_tui::screens::{Work, store};
use dicomlab_tui::widgets::FieldKey;
use serde_json::json;
use tui::{app, done, key, on_screen, press, type_text};

#[test]
fn the_search_form_makes_parameters_and_names_mistakes() {
    let mut a = app();
    on_screen(&mut a, "search-samples");
    key(&mut a, '/');
    type_text(&mut a, "PatientName=Anne* 00080060=CT");
    let s = &mut a.screens.search;
    let p = s.params().expect("valid");
    assert!(p.contains(&("PatientName".into(), "Anne*".into())));
    assert!(p.contains(&("limit".into(), "100".into())));
    // Scope: series within a study; never studies within one; a series needs its study.
    s.level = Level::Series;
    s.form.set(Param::InStudy, "1.2.3");
    assert_eq!(
        s.scope(),
        Ok(Scope {
            study: Some("1.2.3".into()),
            series: None
        })
    );
    s.level = Level::Study;
    assert!(s.scope().is_err());
    s.level = Level::Instance;
    s.form.set(Param::InStudy, "");
    s.form.set(Param::InSeries, "1.2.3.4");
    assert!(s.scope().is_err());
    s.form.set(Param::InSeries, "");
    s.level = Level::Study;
    s.form.set(Param::Filters, "patientname=x junk");
    let e = s.params().expect_err("invalid");
    assert_eq!(e.len(), 2, "{e:?}");
    // Enter with an invalid form sends nothing and says why.
    assert!(press(&mut a, KeyCode::Enter).is_empty());
    assert!(a.screens.search.found.error().is_some());
    // Fuzzy matching is a parameter when on.
    a.screens
        .search
        .form
        .set(Param::Filters, "PatientName=Anne*");
    a.screens.search.fuzzy = true;
    let p = a.screens.search.params().expect("valid");
    assert!(p.contains(&("fuzzymatching".into(), "true".into())));
}

#[test]
fn the_search_screen_takes_i_as_it_says() {
    let mut a = app();
    on_screen(&mut a, "search-samples");
    assert!(tui::bar(&a).contains(&"/ i edit".to_string()));
    key(&mut a, 'i');
    assert!(a.screens.search.form.editing);
}

#[test]
fn retrieve_takes_the_uids_of_its_form() {
    let mut a = app();
    on_screen(&mut a, "retrieve-samples");
    let form = &mut a.screens.retrieve.form;
    for (field, v) in [
        (retrieve::Uid::Study, "1.2.3"),
        (retrieve::Uid::Series, "1.2.3.4"),
        (retrieve::Uid::Instance, "1.2.3.4.5"),
    ] {
        form.set(field, v);
    }
    key(&mut a, '3');
    let fx = press(&mut a, KeyCode::Enter);
    assert!(
        matches!(fx.as_slice(), [Effect::Work(Work::Retrieve(retrieve::Work::Retrieve { what: What::Instance, of, .. }))] if of.sop == "1.2.3.4.5"),
        "{fx:?}"
    );
    done(
        &mut a,
        retrieve::Done::Retrieved(Ok(("200: 1 file(s)".into(), None))),
    );
    key(&mut a, '/');
    assert!(a.screens.retrieve.form.editing);
    key(&mut a, 'x');
    // Enter in the form fetches, or says which UID is not one.
    assert!(press(&mut a, KeyCode::Enter).is_empty());
    assert!(
        matches!(&a.screens.retrieve.fetched, Request::Failed(e) if e.contains("study UID")),
        "{:?}",
        a.screens.retrieve.fetched.error()
    );
}

fn rows(sequences: std::ops::RangeInclusive<u64>) -> Vec<FeedRow> {
    sequences
        .map(|n| feed_row(&json!({"Sequence": n, "Action": "Create"})))
        .collect()
}

#[test]
fn the_feed_pages_by_sequence_on_v1_and_by_rows_on_v2() {
    let mut a = app();
    on_screen(&mut a, "change-feed");
    let f = &mut a.screens.change_feed;
    f.offset = 10;
    f.page = Request::Done(rows(11..=15));
    assert_eq!(f.next_offset(false), 15);
    assert_eq!(f.next_offset(true), 15);
    f.offset = 100;
    assert_eq!(f.next_offset(true), 105);
    let page = |offset| {
        vec![Effect::Work(Work::ChangeFeed(change_feed::Work::Page {
            offset,
            limit: 10,
            append: false,
        }))]
    };
    assert_eq!(key(&mut a, ']'), page(15));
    assert_eq!(key(&mut a, '['), page(100));
    // The live tail keeps the newest 500 rows; v1's cursor moves past the rows it dropped.
    let f = &mut a.screens.change_feed;
    f.page = Request::Idle;
    f.offset = 0;
    f.following = true;
    assert_eq!(
        tui::done(
            &mut a,
            change_feed::Done::Page {
                result: Ok(Vec::new()),
                append: false
            }
        ),
        vec![Effect::Check("change-feed".into())]
    );
    assert_eq!(
        dicomlab_tui::update::update(&mut a, dicomlab_tui::app::Msg::Tick).len(),
        1
    );
    done(
        &mut a,
        change_feed::Done::Page {
            result: Ok(rows(1..=600)),
            append: true,
        },
    );
    let f = &a.screens.change_feed;
    let kept = f.page.last().expect("rows");
    assert_eq!(kept.len(), 500);
    assert_eq!(f.offset, 100);
    assert_eq!(kept[0].sequence, 101);
    // The limit doubles up to the version's maximum.
    a.screens.change_feed.following = false;
    for _ in 0..10 {
        key(&mut a, '+');
    }
    assert_eq!(a.screens.change_feed.limit, 100);
}

#[test]
fn the_environment_form_masks_the_secret_and_validates_live() {
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
    assert!(Setting::Secret.masked());
    assert!(!tui::text(&a, 120, 40).contains("s3cr3t"));
    let problems = a.screens.environment.problems();
    assert!(problems.iter().any(|p| p.contains("/v1")), "{problems:?}");
    // `w` refuses to save a form with problems.
    assert!(key(&mut a, 'w').is_empty());
    assert!(matches!(&a.screens.environment.notice, Some(Err(m)) if m.starts_with("not saved")));
    // Typing fixes it.
    key(&mut a, 'i');
    for _ in 0..4 {
        press(&mut a, KeyCode::Tab);
    }
    type_text(&mut a, "/v1");
    press(&mut a, KeyCode::Enter);
    let env = &a.screens.environment;
    assert!(env.profile().base_url.ends_with("/v1"));
    assert!(env.problems().iter().all(|p| !p.contains("/v1")));
    // Saved, the app opens the profile.
    let fx = key(&mut a, 'w');
    assert!(
        matches!(fx.as_slice(), [Effect::Work(Work::Environment(environment::Work::Save { name, .. }))] if name == "azure"),
        "{fx:?}"
    );
    let profile = Box::new(a.screens.environment.profile());
    let fx = done(
        &mut a,
        environment::Done::Saved {
            name: "azure".into(),
            profile,
            result: Ok("/tmp/config.toml".into()),
        },
    );
    assert!(
        matches!(fx.as_slice(), [Effect::SwitchTarget { name, profile: Some(_) }] if name == "azure"),
        "{fx:?}"
    );
    assert!(a.switching);
}

#[test]
fn the_environment_screen_reveals_copies_and_exports_for_postman() {
    let mut a = app();
    tui::on_practice_environment(&mut a);
    let secret = tui::practice_profile().client_secret.expose().to_string();
    // Masked until s; s again hides it; the bar says which.
    assert!(!tui::text(&a, 120, 40).contains(&secret));
    assert!(
        tui::bar(&a).contains(&"s show secret".to_string()),
        "{:?}",
        tui::bar(&a)
    );
    key(&mut a, 's');
    assert!(tui::text(&a, 120, 40).contains(&secret));
    assert!(tui::bar(&a).contains(&"s hide secret".to_string()));
    key(&mut a, 's');
    assert!(!tui::text(&a, 120, 40).contains(&secret));
    // y copies the chosen value (↑↓), the secret in clear: that is what Postman needs. The step is
    // not skipped by s, nor the curl copied by y, while the screen has the keys.
    let copied = |fx: Vec<Effect>| match fx.as_slice() {
        [Effect::Copy(c)] => c.expose().to_string(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        copied(key(&mut a, 'y')),
        "0c1e5f0a-8a1b-4c55-9d3e-6f1e2a3b4c5d"
    );
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Down);
    assert_eq!(copied(key(&mut a, 'y')), secret);
    assert!(a.status.is_none() && a.screens.environment.notice.is_some());
    // P asks for a folder, then writes there: the values shown, the token URL of the target.
    assert!(key(&mut a, 'P').is_empty());
    let form = a
        .screens
        .environment
        .export
        .as_ref()
        .expect("the folder form");
    assert_eq!(
        form.value(environment::ExportFolder),
        environment::EXPORT_FOLDER
    );
    let fx = press(&mut a, KeyCode::Enter);
    match fx.as_slice() {
        [Effect::Work(Work::Environment(environment::Work::Export { dir, vars }))] => {
            assert_eq!(dir, &std::path::PathBuf::from(environment::EXPORT_FOLDER));
            assert_eq!(vars.client_secret.expose(), secret);
            assert_eq!(
                vars.token_url(),
                "http://127.0.0.1:8042/0c1e5f0a-8a1b-4c55-9d3e-6f1e2a3b4c5d/oauth2/token"
            );
            assert_eq!(vars.base_url, tui::BASE_URL);
        }
        other => panic!("{other:?}"),
    }
    // Over SSH nothing is written on the classroom's machine: P copies the environment.
    a.remote = true;
    let env = copied(key(&mut a, 'P'));
    let env: serde_json::Value = serde_json::from_str(&env).expect("a Postman environment");
    assert!(env["values"].as_array().is_some_and(|v| {
        v.iter()
            .any(|v| v["key"] == "clientSecret" && v["value"] == secret.as_str())
    }));
    assert!(a.screens.environment.export.is_none());
    // A DICOMweb server has no token endpoint: said, nothing written.
    let mut a = tui::app_on(
        TargetKind::Generic,
        "generic",
        "http://localhost:8042/dicom-web",
    );
    on_screen(&mut a, "environment-values");
    let mut generic = dicomlab_lab::config::Profile::new(TargetKind::Generic);
    generic.base_url = "http://localhost:8042/dicom-web".into();
    done(
        &mut a,
        environment::Done::Profile {
            name: "generic".into(),
            profile: generic,
            editable: true,
        },
    );
    assert!(key(&mut a, 'P').is_empty());
    assert!(
        matches!(&a.screens.environment.notice, Some(Err(m)) if m.contains("no Azure AD token endpoint")),
        "{:?}",
        a.screens.environment.notice
    );
}

#[test]
fn store_results_land_on_the_chosen_files() {
    let mut a = app();
    on_screen(&mut a, "store-samples");
    done(
        &mut a,
        store::Done::Listed(Ok((
            None,
            vec![
                ("a.dcm".into(), 10),
                ("b.dcm".into(), 20),
                ("c.dcm".into(), 30),
            ],
        ))),
    );
    press(&mut a, KeyCode::Down);
    key(&mut a, ' ');
    assert_eq!(
        press(&mut a, KeyCode::Enter),
        vec![Effect::Work(Work::Store(store::Work::Store {
            files: vec!["a.dcm".into(), "c.dcm".into()],
            mode: StoreMode::Single
        }))]
    );
    done(
        &mut a,
        store::Done::Progress(StoreProgress {
            file: 1,
            sent: 15,
            total: 30,
            done: false,
        }),
    );
    let files = |a: &App| a.screens.store.files.last().cloned().unwrap_or_default();
    assert_eq!(files(&a)[2].sent, 15);
    done(
        &mut a,
        store::Done::Stored(Ok(store::Stored {
            statuses: vec![200, 409],
            results: Vec::new(),
        })),
    );
    let files = files(&a);
    assert_eq!(files[0].status, Some(200));
    assert_eq!(files[1].status, None);
    assert_eq!(files[2].status, Some(409));
}

#[test]
fn a_screen_the_target_has_not_takes_no_key_and_shows_none() {
    let mut a = tui::app_on(
        TargetKind::Generic,
        "generic",
        "http://localhost:8042/dicom-web",
    );
    on_screen(&mut a, "change-feed");
    assert!(press(&mut a, KeyCode::Enter).is_empty());
    assert!(!a.busy());
    assert_eq!(tui::bar(&a), ["c check", "Esc checklist", "? keys"]);
    // Entering the tag step lists nothing either.
    assert!(key(&mut a, 'n').is_empty());
}

#[test]
fn the_help_shows_every_key_of_the_screen_and_the_bar_those_it_marks() {
    let mut a = app();
    on_screen(&mut a, "store-samples");
    assert!(!tui::bar(&a).iter().any(|k| k.contains("move")));
    key(&mut a, '?');
    let help = tui::text(&a, 120, 40);
    assert!(help.contains("Store screen"), "{help}");
    let says = |keys: &str, does: &str| {
        help.lines()
            .any(|l| l.contains(&format!(" {keys} ")) && l.contains(&format!(" {does} ")))
    };
    assert!(says("↑↓ j k", "move"), "{help}");
    assert!(says("Space", "choose"), "{help}");
}

/// How a key is named in a command's label.
fn name(code: KeyCode) -> String {
    match code {
        KeyCode::Char(' ') => "Space".into(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        other => format!("{other:?}"),
    }
}

/// Every key a screen's command takes is named in its label (so the bar and the help say all of them).
fn labels_name_their_keys<S: Component>(screen: &S, ctx: &Ctx) -> Vec<String> {
    let mut seen = Vec::new();
    for c in screen.commands(ctx) {
        for &code in c.keys {
            let key = name(code);
            let named = c.info.keys.split_whitespace().any(|token| {
                token == key
                    || token.chars().all(|t| "↑↓←→".contains(t)) && token.contains(&key)
                    || matches!(
                        (token.split_once('-'), key.chars().next()),
                        (Some((from, to)), Some(k)) if from.len() == 1 && to.len() == 1
                            && (from..=to).contains(&k.to_string().as_str())
                    )
            });
            assert!(named, "{} {}: {key} is not named", S::TITLE, c.info.keys);
            seen.push(key);
        }
    }
    seen
}

#[test]
fn every_command_names_the_keys_it_takes() {
    let mut a = app();
    on_screen(&mut a, "search-samples");
    let ctx = a.ctx();
    let s = &a.screens;
    labels_name_their_keys(&s.role, &ctx);
    labels_name_their_keys(&s.environment, &ctx);
    labels_name_their_keys(&s.store, &ctx);
    let search_keys = labels_name_their_keys(&s.search, &ctx);
    assert!(search_keys.contains(&"i".to_string()));
    labels_name_their_keys(&s.retrieve, &ctx);
    labels_name_their_keys(&s.change_feed, &ctx);
    labels_name_their_keys(&s.tags, &ctx);
    // The other states of a screen: a result opened, a tree shown, a read-only profile.
    done(
        &mut a,
        search::Done::Searched(Ok(search::Found {
            status: 200,
            results: vec![json!({"00100010": {"vr": "PN"}})],
        })),
    );
    press(&mut a, KeyCode::Enter);
    assert!(a.screens.search.detail.is_some());
    labels_name_their_keys(&a.screens.search, &ctx);
    done(
        &mut a,
        retrieve::Done::Retrieved(Ok(("200".into(), Some(vec![json!({})])))),
    );
    labels_name_their_keys(&a.screens.retrieve, &ctx);
    a.screens.environment.editable = true;
    labels_name_their_keys(&a.screens.environment, &ctx);
}
