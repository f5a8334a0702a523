//! Unit tests of progress: recording, resets, two processes saving, files written before.

use super::*;
use crate::evidence::Source;

fn pass() -> Outcome {
    Outcome::Pass {
        detail: "d".into(),
        evidence: Evidence {
            source: Source::ChangeFeed,
            summary: "Create entries".into(),
            at: Some(time::macros::datetime!(2026-11-30 14:00:00 UTC)),
            subject: None,
        },
    }
}

fn failed() -> Outcome {
    Outcome::Fail {
        expected: "e".into(),
        observed: "o".into(),
        diagnosis: "x".into(),
        tried: Vec::new(),
    }
}

#[test]
fn done_stays_done_until_reset() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("progress.json");
    let mut s = ProgressStore::load(&path);
    s.record("lab", "t", "store", &failed());
    s.record("lab", "t", "store", &pass());
    s.record("lab", "t", "store", &failed());
    s.save().expect("save");
    let mut again = ProgressStore::load(&path);
    let steps = again.steps("lab", "t");
    assert_eq!(steps["store"].attempts, 3);
    assert_eq!(steps["store"].status, Status::Done);
    assert_eq!(
        steps["store"].done_at,
        Some(time::macros::datetime!(2026-11-30 14:00:00 UTC))
    );
    assert_eq!(
        steps["store"].evidence.as_ref().map(|e| e.source),
        Some(Source::ChangeFeed)
    );
    again.reset("lab", "t", Some("store"));
    assert!(!again.steps("lab", "t").contains_key("store"));
    assert!(again.target("lab", "t").since("store").is_some());
    again.reset("lab", "t", None);
    assert!(again.steps("lab", "t").is_empty());
    assert!(again.target("lab", "t").earliest_since().is_some());
}

fn waiting() -> Outcome {
    Outcome::Waiting {
        reason: "w".into(),
        tried: Vec::new(),
    }
}

#[test]
fn waiting_ends_with_any_other_verdict() {
    let mut s = ProgressStore::load(Path::new("/nonexistent/progress.json"));
    s.record("lab", "t", "a", &waiting());
    assert!(s.steps("lab", "t")["a"].waiting_since.is_some());
    s.record("lab", "t", "a", &failed());
    assert!(s.steps("lab", "t")["a"].waiting_since.is_none());
    s.record("lab", "t", "a", &waiting());
    s.record("lab", "t", "a", &Outcome::Blocked { reason: "b".into() });
    assert!(s.steps("lab", "t")["a"].waiting_since.is_none());
}

#[test]
fn a_check_judged_before_a_reset_is_not_recorded() {
    let mut s = ProgressStore::load(Path::new("/nonexistent/progress.json"));
    let before = s.target("lab", "t");
    std::thread::sleep(std::time::Duration::from_millis(5));
    s.reset("lab", "t", Some("a"));
    assert!(!s.record_from("lab", "t", &before, "a", &pass()));
    assert!(!s.steps("lab", "t").contains_key("a"));
    // Judged after the reset: recorded.
    let before = s.target("lab", "t");
    assert!(s.record_from("lab", "t", &before, "a", &pass()));
    assert_eq!(s.steps("lab", "t")["a"].status, Status::Done);
}

#[test]
fn a_target_moved_to_a_new_key_stays_moved_after_other_saves() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("progress.json");
    let old = "http://127.0.0.1:4100/l/ada/v1";
    let new = "http://127.0.0.1:4200/l/ada/v1";
    let mut before = ProgressStore::load(&path);
    before.record("lab", old, "store", &pass());
    before.save().expect("save");
    let mut mover = ProgressStore::load(&path);
    assert!(
        mover
            .move_target("lab", |k| k.ends_with("/l/ada/v1"), new)
            .expect("move")
    );
    let now = ProgressStore::load(&path);
    assert_eq!(now.steps("lab", new)["store"].status, Status::Done);
    assert!(now.steps("lab", old).is_empty(), "moved, not copied");
    // Once the new key has records, nothing moves again.
    let mut other = ProgressStore::load(&path);
    other.record("lab", old, "token", &pass());
    other.save().expect("save");
    assert!(
        !ProgressStore::load(&path)
            .move_target("lab", |k| k == old, new)
            .expect("no move")
    );
}

#[test]
fn a_progress_file_written_before_keeps_loading() {
    // Times were RFC 3339 strings on disk; they now hold an OffsetDateTime (the resets, the checks'
    // own requests, a step's first / last / done / waiting times, its evidence's time, dicomlab's
    // own exchanges), read from (and written back as) the same text.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("progress.json");
    let old = r#"{"version":2,"labs":{"lab":{"t":{
        "steps":{"store":{"status":"done","attempts":1,"first":"2026-11-30T14:00:00Z",
            "last":"2026-11-30T14:05:00.5Z","done_at":"2026-11-30T14:00:00Z",
            "evidence":{"source":"change_feed","summary":"Create entries","at":"2026-11-30T14:00:00Z"}},
          "token":{"status":"pending","attempts":2,"first":"2026-11-30T15:00:00+01:00",
            "last":"2026-11-30T15:10:00+01:00","waiting_since":"2026-11-30T14:01:00Z"},
          "query":{"status":"failed","attempts":1,"first":"not a time","last":"2026-11-30T14:20:00Z",
            "done_at":"yesterday","last_failure":"o — x"}},
        "did":[{"at":"2026-11-30T14:00:00Z","method":"GET","url":"/v1/studies","status":200,
                "source":"dicomlab","tool":"dicomlab"},
               {"at":"","method":"GET","url":"/v1/series","status":0,"source":"dicomlab"}],
        "resets":{"token":"2026-11-30T13:30:00Z"},"reset_all":"2026-11-30T13:00:00+00:00",
        "own":[{"at":"2026-11-30T14:00:00.123456789Z","method":"GET","path":"/v1/a"},
               {"at":"2026-11-30T13:00:00Z","method":"POST","path":"/v1/studies"}]}}}}"#;
    std::fs::write(&path, old).expect("write");
    let mut store = ProgressStore::load(&path);
    assert!(store.warning.is_none(), "{:?}", store.warning);
    let steps = store.steps("lab", "t");
    assert_eq!(steps["store"].status, Status::Done);
    assert_eq!(
        steps["store"].last,
        Some(time::macros::datetime!(2026-11-30 14:05:00.5 UTC))
    );
    assert_eq!(
        steps["store"].evidence.as_ref().and_then(|e| e.at),
        Some(time::macros::datetime!(2026-11-30 14:00:00 UTC))
    );
    assert_eq!(
        steps["token"].first,
        Some(time::macros::datetime!(2026-11-30 14:00:00 UTC))
    );
    assert_eq!(
        steps["token"].waiting_since,
        Some(time::macros::datetime!(2026-11-30 14:01:00 UTC))
    );
    // Text that is no time reads as none (as it counted before: not at all).
    assert_eq!(steps["query"].first, None);
    assert_eq!(steps["query"].done_at, None);
    let t = store.target("lab", "t");
    assert_eq!(t.own.len(), 2);
    assert_eq!(
        t.own[0].at,
        time::macros::datetime!(2026-11-30 14:00:00.123456789 UTC)
    );
    assert_eq!(t.did.len(), 2);
    assert_eq!(
        t.did[0].time(),
        Some(time::macros::datetime!(2026-11-30 14:00:00 UTC))
    );
    assert_eq!(t.did[1].time(), None);
    assert_eq!(
        t.since("token"),
        Some(time::macros::datetime!(2026-11-30 13:30:00 UTC))
    );
    assert_eq!(
        t.since("store"),
        Some(time::macros::datetime!(2026-11-30 13:00:00 UTC))
    );
    assert_eq!(t.earliest_since(), t.reset_all);
    store.save().expect("save");
    let text = std::fs::read_to_string(&path).expect("read");
    let compact: String = text.split_whitespace().collect();
    for kept in [
        r#""at":"2026-11-30T14:00:00.123456789Z""#,
        r#""token":"2026-11-30T13:30:00Z""#,
        r#""first":"2026-11-30T14:00:00Z","last":"2026-11-30T14:05:00.5Z","done_at":"2026-11-30T14:00:00Z""#,
        r#""summary":"Createentries","at":"2026-11-30T14:00:00Z""#,
        r#""first":"2026-11-30T15:00:00+01:00","last":"2026-11-30T15:10:00+01:00""#,
        r#""waiting_since":"2026-11-30T14:01:00Z""#,
        r#"{"at":"2026-11-30T14:00:00Z","method":"GET","url":"/v1/studies""#,
    ] {
        assert!(compact.contains(kept), "{kept} in {text}");
    }
    // The exchange without a time cannot be placed after the reset: the save (which merges with the
    // file) drops it, as it did when times were text.
    assert!(!compact.contains(r#""url":"/v1/series""#), "{text}");
    let again = ProgressStore::load(&path);
    assert!(again.warning.is_none(), "{:?}", again.warning);
    assert_eq!(again.progress, store.progress);
    let t = again.target("lab", "t");
    assert_eq!(t.own.len(), 2);
    assert_eq!(t.resets.len(), 1);
    assert!(t.reset_all.is_some());
}

#[test]
fn two_processes_saving_keep_each_others_work() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("progress.json");
    // The TUI and a `dicomlab check` load the same file.
    let mut tui = ProgressStore::load(&path);
    let mut cli = ProgressStore::load(&path);
    tui.record("lab", "t", "token", &pass());
    tui.save().expect("save");
    cli.record("lab", "t", "store", &pass());
    cli.record("lab", "t", "token", &failed());
    cli.save().expect("save");
    let now = ProgressStore::load(&path);
    let steps = now.steps("lab", "t");
    assert_eq!(steps["store"].status, Status::Done);
    // Done on either side is done.
    assert_eq!(steps["token"].status, Status::Done);
    // A reset in one process beats the other's older record, even a done one.
    std::thread::sleep(std::time::Duration::from_millis(5));
    tui.reset("lab", "t", Some("store"));
    tui.save().expect("save");
    cli.record("lab", "t", "store", &pass());
    cli.save().expect("save");
    let now = ProgressStore::load(&path);
    assert!(!now.steps("lab", "t").contains_key("store"));
    assert!(now.target("lab", "t").since("store").is_some());
    // After it, a new record counts.
    cli.record("lab", "t", "store", &pass());
    cli.save().expect("save");
    assert_eq!(
        ProgressStore::load(&path).steps("lab", "t")["store"].status,
        Status::Done
    );
    // The checks' own requests: the union.
    let own = |p: &str| OwnRequest {
        at: time::macros::datetime!(2026-11-30 14:00:00 UTC),
        method: "GET".into(),
        path: p.into(),
    };
    tui.own("lab", "t", vec![own("/v1/a")]);
    cli.own("lab", "t", vec![own("/v1/b")]);
    tui.save().expect("save");
    cli.save().expect("save");
    assert_eq!(ProgressStore::load(&path).target("lab", "t").own.len(), 2);
}

/// A save reads the file again only when another writer saved since: the store's own last write is
/// not read back, another's always is — even one of the same length, time and inode (its save id,
/// in the file's first bytes, differs).
#[test]
fn a_save_reads_the_file_only_when_another_writer_saved() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("progress.json");
    // Writes `text` over the file in place, its length and time kept.
    let overwrite = |text: &[u8]| {
        let meta = std::fs::metadata(&path).expect("meta");
        let mut text = text.to_vec();
        let len = usize::try_from(meta.len()).expect("length");
        assert!(text.len() <= len, "the new text fits in the file");
        text.resize(len, b' ');
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        f.write_all(&text).expect("write");
        f.set_modified(meta.modified().expect("mtime"))
            .expect("keep the time");
    };
    let mut tui = ProgressStore::load(&path);
    for step in ["token", "role", "store", "search", "retrieve"] {
        tui.record("lab", "t", step, &pass());
    }
    tui.save().expect("save");
    // Its own write (the same first bytes): not read back — a record planted past them is not seen.
    let own = std::fs::read_to_string(&path).expect("read");
    assert!(own.contains(tui.progress.save_id.as_deref().expect("an id")));
    overwrite(own.replace("\"retrieve\"", "\"planted1\"").as_bytes());
    tui.record("lab", "t", "change-feed", &pass());
    tui.save().expect("save");
    let now = ProgressStore::load(&path);
    assert!(now.steps("lab", "t").contains_key("change-feed"));
    assert!(!now.steps("lab", "t").contains_key("planted1"));
    // Another writer's file, in place with the same length, time and inode: read and merged.
    let mut other = ProgressStore::load(&dir.path().join("other.json"));
    other.record("lab", "t", "planted2", &pass());
    other.progress.save_id = Some("another writer".into());
    overwrite(&serde_json::to_vec(&other.progress).expect("json"));
    tui.record("lab", "t", "eqt-list", &pass());
    tui.save().expect("save");
    let steps = ProgressStore::load(&path).steps("lab", "t");
    assert!(steps.contains_key("planted2") && steps.contains_key("eqt-list"));
    // And a new file (another store's save): its record is taken in too.
    let mut cli = ProgressStore::load(&path);
    cli.record("lab", "t", "eqt-create", &pass());
    cli.save().expect("save");
    tui.record("lab", "t", "eqt-get", &pass());
    tui.save().expect("save");
    assert!(tui.steps("lab", "t").contains_key("eqt-create"));
    let steps = ProgressStore::load(&path).steps("lab", "t");
    assert!(steps.contains_key("eqt-create") && steps.contains_key("eqt-get"));
}

#[test]
fn a_version_1_file_is_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("progress.json");
    std::fs::write(&path, r#"{"version":1,"labs":{"dicom-service":{"practice":{"store-samples":{"status":"done","attempts":2,"first":"2026-11-01T10:00:00Z","last":"2026-11-01T10:05:00Z"}}}}}"#).expect("write");
    let s = ProgressStore::load(&path);
    assert!(s.warning.is_none(), "{:?}", s.warning);
    assert_eq!(
        s.steps("dicom-service", "practice")["store-samples"].status,
        Status::Done
    );
}

#[test]
fn unreadable_files_are_moved_aside() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("progress.json");
    for bad in [&b"{ not json"[..], &[0xff, 0xfe, 0x00, 0x13][..]] {
        std::fs::write(&path, bad).expect("write");
        let s = ProgressStore::load(&path);
        assert!(s.warning.as_deref().is_some_and(|w| w.contains("moved")));
    }
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
        .collect();
    assert!(!aside.is_empty());
}

#[test]
fn dicomlabs_own_exchanges_are_bounded() {
    let mut s = ProgressStore::load(Path::new("/nonexistent/progress.json"));
    for i in 0..(MAX_DID + 10) {
        s.did(
            "lab",
            "t",
            Attempt {
                at: Some(time::macros::datetime!(2026-11-30 14:00:00 UTC)),
                method: "GET".into(),
                url: format!("/v1/studies?n={i}"),
                status: 200,
                source: Source::Dicomlab,
                tool: None,
                detail: None,
                parsed: Default::default(),
                principal: None,
            },
        );
    }
    let t = s.target("lab", "t");
    assert_eq!(t.did.len(), MAX_DID);
    assert!(
        t.did
            .last()
            .is_some_and(|a| a.url.ends_with(&format!("n={}", MAX_DID + 9)))
    );
}
