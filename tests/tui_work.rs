//! The screens' requests (`tui::work`), each sent to a real server and read back as the screen shows
//! it: the practice service (every screen, refusals explained) and Orthanc (store, search, retrieve).

mod common;
#[path = "common/orthanc.rs"]
mod orthanc;

use dicomlab::config::Profile;
use dicomlab::dicom::samples::{RED_UID, SERIES1_UID, STUDY_UID};
use dicomlab::dicomweb::{Level, StoreMode};
use dicomlab::lab::engine::Session;
use dicomlab::practice::{ServiceConfig, start};
use dicomlab::target::TargetKind;
use dicomlab::tui::app::Msg;
use dicomlab::tui::screens::{Done, Scope, Uids, What, Work};
use tokio::sync::mpsc;

/// Runs one piece of work; returns every `Done` it sent, in order.
async fn run(work: Work, session: &Session) -> Vec<Done> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let lab = dicomlab::lab::Lab::embedded().expect("lab");
    dicomlab::tui::work::run(work, session, &lab, None, &tx).await;
    drop(tx);
    let mut out = Vec::new();
    while let Some(m) = rx.recv().await {
        if let Msg::Done(d) = m {
            out.push(d);
        }
    }
    out
}

/// Retrieve, of the lab's red triangle (the screen's default UIDs).
fn retrieve(what: What) -> Work {
    Work::Retrieve {
        what,
        uids: Uids {
            study: STUDY_UID.into(),
            series: SERIES1_UID.into(),
            instance: RED_UID.into(),
        },
    }
}

fn last(done: Vec<Done>) -> Done {
    done.into_iter().last().expect("a result")
}

async fn files(session: &Session) -> Vec<std::path::PathBuf> {
    let samples = std::env::var_os("DICOMLAB_SAMPLES_DIR").map(std::path::PathBuf::from);
    match last(run(Work::ListFiles(samples), session).await) {
        Done::Files(Ok((_, files))) => {
            assert_eq!(files.len(), 3, "{files:?}");
            files.into_iter().map(|(p, _)| p).collect()
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_screen_on_the_practice_service() {
    let svc = start(ServiceConfig {
        reindex_min_duration: std::time::Duration::ZERO,
        ..ServiceConfig::default()
    })
    .await
    .expect("service");
    let session = Session::open(&common::profile_for(&svc), None, None)
        .await
        .expect("session");
    let files = files(&session).await;

    // No role yet: the store is refused as a whole, and the screen says what to do.
    let d = last(
        run(
            Work::Store {
                files: files.clone(),
                mode: StoreMode::Single,
            },
            &session,
        )
        .await,
    );
    assert!(
        matches!(&d, Done::Stored(Err(e)) if e.contains("403") && e.contains("DICOM Data Owner")),
        "{d:?}"
    );
    assert!(matches!(
        last(run(Work::Role(true), &session).await),
        Done::Role(Ok(_))
    ));

    // Single-part: progress per file, then three instances stored.
    let all = run(
        Work::Store {
            files: files.clone(),
            mode: StoreMode::Single,
        },
        &session,
    )
    .await;
    assert!(all.iter().any(|d| matches!(d, Done::StoreProgress(_))));
    match all.into_iter().last() {
        Some(Done::Stored(Ok((statuses, results)))) => {
            assert_eq!(statuses, vec![200, 200, 200]);
            assert!(results.iter().all(|r| r.stored), "{results:?}");
        }
        other => panic!("{other:?}"),
    }
    // Again, multipart: one 409 whose three instances say 45070 (already stored).
    match last(
        run(
            Work::Store {
                files,
                mode: StoreMode::Multipart,
            },
            &session,
        )
        .await,
    ) {
        Done::Stored(Ok((statuses, results))) => {
            assert_eq!(statuses, vec![409]);
            assert_eq!(results.len(), 3);
            assert!(results.iter().all(|r| r.code == Some(45070)), "{results:?}");
        }
        other => panic!("{other:?}"),
    }

    // Search: the study, with keywords; a bad filter is the service's 400, explained.
    match last(
        run(
            Work::Search {
                level: Level::Studies,
                scope: Scope::default(),
                params: vec![("PatientID".into(), "ID1".into())],
            },
            &session,
        )
        .await,
    ) {
        Done::Searched(Ok((200, r))) => assert_eq!(r.len(), 1),
        other => panic!("{other:?}"),
    }
    let d = last(
        run(
            Work::Search {
                level: Level::Studies,
                scope: Scope::default(),
                params: vec![("StudyDate".into(), "yesterday".into())],
            },
            &session,
        )
        .await,
    );
    assert!(
        matches!(&d, Done::Searched(Err(e)) if e.starts_with("400")),
        "{d:?}"
    );

    // Retrieve: the study as three files; the metadata as datasets for the tree.
    match last(run(retrieve(What::Study), &session).await) {
        Done::Retrieved(Ok((summary, None))) => assert!(summary.contains("3 file(s)"), "{summary}"),
        other => panic!("{other:?}"),
    }
    match last(run(retrieve(What::Metadata), &session).await) {
        Done::Retrieved(Ok((_, Some(m)))) => assert_eq!(m.len(), 3),
        other => panic!("{other:?}"),
    }
    // Another instance of the series, by its UIDs.
    let green = Work::Retrieve {
        what: What::Instance,
        uids: Uids {
            study: STUDY_UID.into(),
            series: SERIES1_UID.into(),
            instance: dicomlab::dicom::samples::GREEN_UID.into(),
        },
    };
    match last(run(green, &session).await) {
        Done::Retrieved(Ok((summary, None))) => assert!(summary.contains("1 file(s)"), "{summary}"),
        other => panic!("{other:?}"),
    }

    // Change feed: three Create rows; the latest.
    match last(
        run(
            Work::Feed {
                offset: 0,
                limit: 10,
                append: false,
            },
            &session,
        )
        .await,
    ) {
        Done::Feed {
            result: Ok(rows), ..
        } => {
            assert_eq!(rows.len(), 3);
            assert!(rows.iter().all(|r| r.action == "Create"), "{rows:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        last(run(Work::FeedLatest, &session).await),
        Done::Latest(Ok(Some(_)))
    ));

    // Tags: add (the operation reported), list, get, disable, delete.
    let all = run(
        Work::TagAdd {
            path: "PatientSex".into(),
            vr: String::new(),
            level: "Study".into(),
        },
        &session,
    )
    .await;
    assert!(all.iter().any(|d| matches!(d, Done::Operation { .. })));
    assert!(
        matches!(all.last(), Some(Done::TagChanged(Ok(_)))),
        "{all:?}"
    );
    match last(run(Work::TagsList, &session).await) {
        Done::Tags(Ok(rows)) => assert_eq!(rows.len(), 1),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        last(run(Work::TagGet("00100040".into()), &session).await),
        Done::Tag(Ok(_))
    ));
    let d = last(
        run(
            Work::TagUpdate {
                path: "00100040".into(),
                query_status: "Disabled".into(),
            },
            &session,
        )
        .await,
    );
    assert!(
        matches!(&d, Done::TagChanged(Ok(m)) if m.contains("Disabled")),
        "{d:?}"
    );
    assert!(matches!(
        last(run(Work::TagDelete("00100040".into()), &session).await),
        Done::TagChanged(Ok(_))
    ));
    // Deleting it again: 404, explained.
    let d = last(run(Work::TagDelete("00100040".into()), &session).await);
    assert!(
        matches!(&d, Done::TagChanged(Err(e)) if e.contains("no such extended query tag")),
        "{d:?}"
    );
}

#[tokio::test]
async fn store_search_and_retrieve_screens_on_orthanc() {
    let Some(o) = orthanc::start() else { return };
    let mut p = Profile::new(TargetKind::Generic);
    p.base_url = o.dicomweb.clone();
    let session = Session::open(&p, None, None).await.expect("session");
    let files = files(&session).await;
    match last(
        run(
            Work::Store {
                files,
                mode: StoreMode::Multipart,
            },
            &session,
        )
        .await,
    ) {
        Done::Stored(Ok((statuses, results))) => {
            assert_eq!(statuses, vec![200]);
            assert_eq!(results.len(), 3, "{results:?}");
        }
        other => panic!("{other:?}"),
    }
    match last(
        run(
            Work::Search {
                level: Level::Instances,
                scope: Scope {
                    study: Some(STUDY_UID.into()),
                    series: Some(SERIES1_UID.into()),
                },
                params: Vec::new(),
            },
            &session,
        )
        .await,
    ) {
        // Within the first series: the red triangle and the green square.
        Done::Searched(Ok((200, r))) => assert_eq!(r.len(), 2),
        other => panic!("{other:?}"),
    }
    match last(run(retrieve(What::Metadata), &session).await) {
        Done::Retrieved(Ok((_, Some(m)))) => assert_eq!(m.len(), 3),
        other => panic!("{other:?}"),
    }
    match last(run(retrieve(What::Series), &session).await) {
        Done::Retrieved(Ok((summary, None))) => assert!(summary.contains("2 file(s)"), "{summary}"),
        other => panic!("{other:?}"),
    }
}
