//! The app's `update`, key by key (pure: effects are data, nothing touches the network): checks and
//! actions as effects, progress that stays, questions, cancel, focus, the mouse, and how a screen's
//! keys, results and command list reach the app.

use dicomlab_testkit::tui;

use crossterm::event::{KeyCode, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use dicomlab_lab::Outcome;
use dicomlab_lab::evidence::{Evidence, Source};
use dicomlab_lab::progress::{Status, StepProgress};
use dicomlab_tui::app::{CheckState, Confirm, Effect, Focus, Msg};
use dicomlab_tui::screens::{Work, change_feed, search, tags};
use dicomlab_tui::update::update;
use serde_json::json;
use tui::{app, bar, done, key, on_screen, press, select};

#[test]
fn a_step_done_stays_done_whatever_a_later_check_says() {
    let mut a = app();
    let id = dicomlab_lab::model::StepId::from("store-samples");
    let mut saved = std::collections::BTreeMap::new();
    saved.insert(
        id.clone(),
        StepProgress {
            status: Status::Done,
            attempts: 1,
            first: Some(time::macros::datetime!(2026-11-30 14:00 UTC)),
            last: Some(time::macros::datetime!(2026-11-30 14:00 UTC)),
            done_at: Some(time::macros::datetime!(2026-11-30 14:00 UTC)),
            last_failure: None,
            evidence: Some(Evidence::new(
                Source::ChangeFeed,
                "Create entries #1, #2, #3",
                None,
            )),
            waiting_since: None,
            subject: None,
        },
    );
    update(&mut a, Msg::Progress(saved));
    assert!(a.is_done(&id));
    // The study deleted (the lab's optional deletes), then C: whatever comes back, it stays done.
    tui::fail(&mut a, &id, "e", "o", "d");
    assert!(a.is_done(&id));
}

#[test]
fn check_and_do_are_effects_not_io() {
    let mut a = app();
    assert_eq!(
        key(&mut a, 'c'),
        vec![Effect::Check("service-exists".into())]
    );
    assert_eq!(a.steps["service-exists"].check, CheckState::Checking);
    assert_eq!(key(&mut a, 'd'), vec![Effect::Do("service-exists".into())]);
    // After an action, its check runs.
    let fx = update(
        &mut a,
        Msg::Did {
            step: "service-exists".into(),
            result: Ok("ok".into()),
        },
    );
    assert_eq!(fx, vec![Effect::Check("service-exists".into())]);
}

#[test]
fn reset_all_needs_the_typed_word() {
    let mut a = app();
    key(&mut a, 'R');
    tui::type_text(&mut a, "rese");
    assert!(press(&mut a, KeyCode::Enter).is_empty());
    key(&mut a, 't');
    assert_eq!(press(&mut a, KeyCode::Enter), vec![Effect::Reset(None)]);
}

#[test]
fn hints_are_progressive_and_quit_asks_while_busy() {
    let mut a = app();
    key(&mut a, 'h');
    key(&mut a, 'h');
    assert_eq!(a.steps["service-exists"].hints_shown, 2);
    key(&mut a, 'd');
    assert!(key(&mut a, 'q').is_empty());
    assert_eq!(a.confirm(), Some(&Confirm::Quit));
    assert_eq!(key(&mut a, 'y'), vec![Effect::Quit]);
}

#[test]
fn x_cancels_what_runs_and_the_ui_forgets_it() {
    let mut a = app();
    assert!(key(&mut a, 'x').is_empty(), "nothing to cancel");
    key(&mut a, 'c');
    assert!(a.busy());
    assert_eq!(key(&mut a, 'x'), vec![Effect::Cancel]);
    update(&mut a, Msg::Cancelled);
    assert!(!a.busy());
    assert_eq!(a.steps["service-exists"].check, CheckState::NotChecked);
    // A screen's request is forgotten too.
    on_screen(&mut a, "search-samples");
    press(&mut a, KeyCode::Enter);
    assert!(a.busy());
    key(&mut a, 'x');
    update(&mut a, Msg::Cancelled);
    assert!(!a.busy());
}

#[test]
fn screens_get_the_keys_when_focused_and_esc_gives_them_back() {
    let mut a = app();
    select(&mut a, "change-feed");
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.focus, Focus::Panel);
    // `f` follows the feed; the runtime then ticks, and each tick asks for what came next.
    key(&mut a, 'f');
    assert!(a.ticking());
    assert_eq!(
        update(&mut a, Msg::Tick),
        vec![Effect::Work(Work::ChangeFeed(change_feed::Work::Page {
            offset: 0,
            limit: 10,
            append: true
        }))]
    );
    // `n` is not the screen's: it still moves to the next step, which loads the tag list.
    let fx = key(&mut a, 'n');
    assert_eq!(fx, vec![Effect::Work(Work::Tags(tags::Work::List))]);
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.focus, Focus::Checklist);
}

#[test]
fn a_search_result_goes_to_the_retrieve_screen() {
    let mut a = app();
    on_screen(&mut a, "search-samples");
    assert!(key(&mut a, '>').is_empty(), "no result yet");
    assert_eq!(
        a.status.as_deref(),
        Some("no result selected: search first")
    );
    done(
        &mut a,
        search::Done::Searched(Ok(search::Found {
            status: 200,
            results: vec![json!({
                "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
                "0020000E": {"vr": "UI", "Value": ["1.2.3.4"]},
                "00080018": {"vr": "UI", "Value": ["1.2.3.4.5"]}
            })],
        })),
    );
    key(&mut a, '>');
    assert_eq!(a.selected_id(), "retrieve-samples");
    assert_eq!(a.focus, Focus::Panel);
    let of = a.screens.retrieve.instance().expect("UIDs");
    assert_eq!(
        (of.study, of.series, of.sop),
        ("1.2.3".into(), "1.2.3.4".into(), "1.2.3.4.5".into())
    );
}

#[test]
fn a_check_after_an_action_is_for_the_step_still_on_screen() {
    let mut a = app();
    on_screen(&mut a, "search-samples");
    press(&mut a, KeyCode::Enter);
    let found = || {
        search::Done::Searched(Ok(search::Found {
            status: 204,
            results: Vec::new(),
        }))
    };
    assert_eq!(
        done(&mut a, found()),
        vec![Effect::Check("search-samples".into())]
    );
    // The learner moved on before the answer came: nothing is checked.
    press(&mut a, KeyCode::Enter);
    select(&mut a, "service-exists");
    assert!(done(&mut a, found()).is_empty());
}

#[test]
fn a_screen_asks_before_it_deletes() {
    let mut a = app();
    on_screen(&mut a, "tag-add");
    done(
        &mut a,
        tags::Done::Listed(Ok(vec![
            json!({"Path": "00100040", "QueryStatus": "Enabled"}),
        ])),
    );
    assert!(key(&mut a, 'D').is_empty());
    assert!(matches!(a.confirm(), Some(Confirm::Screen { ask, .. }) if ask.contains("00100040")));
    assert_eq!(bar(&a), ["y yes", "other no"]);
    assert_eq!(
        key(&mut a, 'y'),
        vec![Effect::Work(Work::Tags(tags::Work::Delete(
            "00100040".into()
        )))]
    );
    assert!(a.busy(), "the delete runs");
    // No: nothing is sent.
    update(&mut a, Msg::Cancelled);
    key(&mut a, 'D');
    assert!(key(&mut a, 'n').is_empty());
    assert!(a.confirm().is_none());
}

#[test]
fn a_question_only_where_it_shows_a_step_done() {
    let mut a = app();
    select(&mut a, "retrieve-samples");
    assert!(bar(&a).contains(&"a answer".to_string()));
    key(&mut a, 'a');
    assert!(matches!(a.confirm(), Some(Confirm::Answer { .. })));
    press(&mut a, KeyCode::Esc);
    // Where the target's records show reads, the step asks nothing.
    a.reads_recorded = true;
    assert!(!bar(&a).contains(&"a answer".to_string()));
    key(&mut a, 'a');
    assert!(a.confirm().is_none());
}

#[test]
fn mouse_is_a_toggle_and_its_wheel_scrolls() {
    let mut a = app();
    assert_eq!(key(&mut a, 'M'), vec![Effect::Mouse(true)]);
    let wheel = MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 50,
        row: 5,
        modifiers: KeyModifiers::NONE,
    };
    update(&mut a, Msg::Mouse(wheel));
    assert_eq!(a.selected, 1, "the wheel moves in the focused checklist");
    // A click on exercise 4's row: rows 2–5 are exercise 1, exercise 2 (expanded), its step, exercise 3.
    let click = |row| MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 5,
        row,
        modifiers: KeyModifiers::NONE,
    };
    update(&mut a, Msg::Mouse(click(2 + 4)));
    assert_eq!(a.selected_id(), "get-token");
    // Now exercise 4 is expanded: its step is on row 6, the store exercise's row is row 7.
    let fx = update(&mut a, Msg::Mouse(click(2 + 5)));
    assert_eq!(a.selected_id(), "store-samples");
    assert_eq!(
        fx,
        vec![Effect::Work(Work::Store(
            dicomlab_tui::screens::store::Work::List(None)
        ))]
    );
    assert_eq!(key(&mut a, 'M'), vec![Effect::Mouse(false)]);
}

#[test]
fn the_lab_completed_shows_the_summary_once() {
    let mut a = app();
    let required: Vec<String> = a
        .lab
        .steps()
        .filter(|s| !s.optional)
        .map(|s| s.id.to_string())
        .collect();
    for id in &required {
        assert!(a.overlay != Some(dicomlab_tui::app::Overlay::Summary));
        tui::pass(&mut a, id, "done");
    }
    assert!(a.overlay == Some(dicomlab_tui::app::Overlay::Summary));
    press(&mut a, KeyCode::Esc);
    tui::pass(&mut a, "viewer", "rendered");
    assert!(a.overlay != Some(dicomlab_tui::app::Overlay::Summary));
}

#[test]
fn a_waiting_step_is_checked_again_on_the_slow_tick() {
    let mut a = app();
    update(
        &mut a,
        Msg::Checked {
            step: "change-feed".into(),
            outcome: Outcome::Waiting {
                reason: "waiting for the audit log".into(),
                tried: Vec::new(),
            },
        },
    );
    assert_eq!(
        update(&mut a, Msg::Recheck),
        vec![Effect::Check("change-feed".into())]
    );
    assert_eq!(a.steps["change-feed"].check, CheckState::Checking);
}

#[test]
fn over_ssh_an_exchange_shows_the_address_the_learners_laptop_uses() {
    let mut a = app();
    a.shown_urls = vec![(
        "http://127.0.0.1:40001/l/ann/v1".into(),
        "http://room.local:8080/l/ann/v1".into(),
    )];
    let e = dicomlab_dicomweb::Exchange {
        method: "GET".into(),
        url: "http://127.0.0.1:40001/l/ann/v1/studies?PatientID=1".into(),
        status: Some(200),
        ..Default::default()
    };
    let effects = update(&mut a, Msg::Exchange(e));
    let shown = a.last_exchange.as_ref().expect("shown");
    assert_eq!(
        shown.url,
        "http://room.local:8080/l/ann/v1/studies?PatientID=1"
    );
    assert!(
        shown
            .curl()
            .contains("http://room.local:8080/l/ann/v1/studies")
    );
    // What is kept as evidence is what was sent.
    assert!(
        matches!(&effects[..], [Effect::Keep(k)] if k.url.starts_with("http://127.0.0.1:40001/")),
        "{effects:?}"
    );
}

#[test]
fn new_records_judge_every_step_once_at_a_time_and_never_while_unwatched() {
    let mut a = app();
    let at = time::macros::datetime!(2026-11-30 14:03:22 UTC);
    let looked = |changed| Msg::Looked {
        at,
        changed,
        problem: None,
    };
    // Not watching: news changes nothing.
    assert!(update(&mut a, looked(true)).is_empty());
    update(&mut a, Msg::Watch("1–2 s".into()));
    // A look that found nothing new costs nothing but the time it shows.
    assert!(update(&mut a, looked(false)).is_empty());
    assert_eq!(a.watch.as_ref().and_then(|w| w.looked), Some(at));
    // News: judged once; more news meanwhile waits for that judgement, then once more.
    assert_eq!(update(&mut a, looked(true)), vec![Effect::Judge]);
    assert!(update(&mut a, looked(true)).is_empty());
    assert!(update(&mut a, looked(true)).is_empty());
    assert_eq!(update(&mut a, Msg::Judged), vec![Effect::Judge]);
    assert!(update(&mut a, Msg::Judged).is_empty());
    // Idle again: the next news is judged at once.
    assert_eq!(update(&mut a, looked(true)), vec![Effect::Judge]);
    // A judgement never shows "checking…": the screen stays as it was until verdicts arrive.
    assert!(a.steps.values().all(|s| s.check != CheckState::Checking));
}

#[test]
fn the_header_says_the_lab_is_watched_and_when_it_last_looked() {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    for (w, h) in [(120, 40), (80, 24)] {
        let mut a = app();
        update(&mut a, Msg::Resize(w, h));
        update(&mut a, Msg::Watch("live".into()));
        update(
            &mut a,
            Msg::Looked {
                at: time::macros::datetime!(2026-11-30 14:03:22 UTC),
                changed: false,
                problem: None,
            },
        );
        let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        t.draw(|f| dicomlab_tui::view::view(&a, f)).expect("draw");
        let top: String = (0..w)
            .map(|x| t.backend().buffer()[(x, 0)].symbol().to_string())
            .collect();
        let first = dicomlab_lab::clock::hms(time::macros::datetime!(2026-11-30 14:03:22 UTC));
        assert!(top.contains(&format!("watching {first}")), "{w}×{h}: {top}");
        update(
            &mut a,
            Msg::Looked {
                at: time::macros::datetime!(2026-11-30 14:03:24 UTC),
                changed: false,
                problem: Some("the audit log: 403".into()),
            },
        );
        t.draw(|f| dicomlab_tui::view::view(&a, f)).expect("draw");
        let top: String = (0..w)
            .map(|x| t.backend().buffer()[(x, 0)].symbol().to_string())
            .collect();
        let second = dicomlab_lab::clock::hms(time::macros::datetime!(2026-11-30 14:03:24 UTC));
        assert!(
            top.contains(&format!("watch failed {second}")),
            "{w}×{h}: {top}"
        );
    }
}

#[test]
fn the_token_step_names_the_targets_own_token_endpoint() {
    let mut a = app();
    a.vars = vec![(
        "{tokenUrl}".into(),
        "http://127.0.0.1:8042/0c1e5f0a/oauth2/token".into(),
    )];
    select(&mut a, "get-token");
    let text = tui::text(&a, 120, 40).replace('\n', "");
    assert!(
        text.contains("http://127.0.0.1:8042/0c1e5f0a/oauth2/token"),
        "{text}"
    );
    // Its instructions and its "Show me" agree: Azure AD's host is not the practice service's.
    let step = a.lab.step("get-token").expect("step");
    for t in [
        step.instructions.as_str(),
        step.show_me.as_deref().unwrap_or_default(),
    ] {
        assert!(
            t.contains("{tokenUrl}") && !t.contains("login.microsoftonline.com"),
            "{t}"
        );
    }
}

/// A countdown tick redraws only what it changes: the header shows whole minutes, the token step
/// (when shown, with its claims) minutes and seconds. The runtime skips the frame of a tick that
/// changes neither (a room's idle sessions tick every 20 s).
#[test]
fn the_token_countdown_shows_minutes_except_on_the_token_step() {
    use dicomlab_tui::view::countdown_shown;
    use std::time::Duration;
    let mut a = app();
    select(&mut a, "store-samples");
    update(&mut a, Msg::TokenLeft(Some(Duration::from_secs(3599))));
    let before = countdown_shown(&a);
    update(&mut a, Msg::TokenLeft(Some(Duration::from_secs(3579))));
    assert_eq!(countdown_shown(&a), before, "59 min either way");
    update(&mut a, Msg::TokenLeft(Some(Duration::from_secs(3539))));
    assert_ne!(countdown_shown(&a), before, "58 min");
    update(&mut a, Msg::TokenLeft(Some(Duration::from_secs(59))));
    let last_minute = countdown_shown(&a);
    update(&mut a, Msg::TokenLeft(Some(Duration::from_secs(39))));
    assert_ne!(
        countdown_shown(&a),
        last_minute,
        "seconds in the last minute"
    );
    // On the token step with its claims, every tick shows.
    select(&mut a, "get-token");
    update(
        &mut a,
        Msg::Claims(Some(dicomlab_dicomweb::Claims {
            aud: Some("https://dicom.healthcareapis.azure.com".into()),
            tid: None,
            app: None,
            roles: vec![],
            exp: None,
            oid: None,
        })),
    );
    update(&mut a, Msg::TokenLeft(Some(Duration::from_secs(3599))));
    let before = countdown_shown(&a);
    update(&mut a, Msg::TokenLeft(Some(Duration::from_secs(3579))));
    assert_ne!(countdown_shown(&a), before);
}
