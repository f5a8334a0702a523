//! The screens' requests (each screen's `Component::run`), each sent to a real server and read back as
//! the screen shows it: the practice service (every screen, refusals explained) and Orthanc (store,
//! search, retrieve).

use dicomlab_testkit as common;
use dicomlab_testkit::orthanc;

use std::sync::Arc;

use dicomlab_dicom::samples::{RED_UID, SERIES1_UID, STUDY_UID};
use dicomlab_dicomweb::routes::Syntax;
use dicomlab_dicomweb::{InstanceRef, Level, StoreMode};
use dicomlab_lab::config::Profile;
use dicomlab_lab::engine::Session;
use dicomlab_lab::targets::TargetKind;
use dicomlab_practice::{ServiceConfig, start};
use dicomlab_tui::component::Io;
use dicomlab_tui::screens::change_feed as feed;
use dicomlab_tui::screens::retrieve::{self, What};
use dicomlab_tui::screens::search::{self, Found, Scope};
use dicomlab_tui::screens::{Done, Work, environment, role, store, tags};
use tokio::sync::mpsc;

/// Runs one request as the runtime would; returns every result it sent, in order.
async fn run(work: impl Into<Work>, session: &Arc<Session>) -> Vec<Done> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let lab = Arc::new(dicomlab_lab::Lab::embedded().expect("lab"));
    let io = Io::new(session.clone(), lab, None, None, move |d| {
        let _ = tx.send(d);
    });
    work.into().run(io).await;
    let mut out = Vec::new();
    while let Some(d) = rx.recv().await {
        out.push(d);
    }
    out
}

/// Retrieve, of the lab's red triangle (the screen's default UIDs).
fn retrieve(what: What) -> retrieve::Work {
    retrieve::Work::Retrieve {
        what,
        of: InstanceRef::new(STUDY_UID, SERIES1_UID, RED_UID),
        syntax: Syntax::Stored,
    }
}

fn last(done: Vec<Done>) -> Done {
    done.into_iter().last().expect("a result")
}

async fn files(session: &Arc<Session>) -> Vec<std::path::PathBuf> {
    let samples = std::env::var_os("DICOMLAB_SAMPLES_DIR").map(std::path::PathBuf::from);
    match last(run(store::Work::List(samples), session).await) {
        Done::Store(store::Done::Listed(Ok((_, files)))) => {
            assert_eq!(files.len(), 3, "{files:?}");
            files.into_iter().map(|(p, _)| p).collect()
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_environment_screen_writes_the_postman_files_for_its_target() {
    let svc = start(ServiceConfig::default()).await.expect("service");
    let session = Arc::new(
        Session::open(&common::profile_for(&svc), None, None)
            .await
            .expect("session"),
    );
    let profile = common::profile_for(&svc);
    let vars = dicomlab_lab::postman::Variables::of_profile("served", &profile).expect("vars");
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("postman");
    let d = last(
        run(
            environment::Work::Export {
                dir: out.clone(),
                vars: Box::new(vars),
            },
            &session,
        )
        .await,
    );
    let Done::Environment(environment::Done::Exported(Ok(e))) = d else {
        panic!("{d:?}")
    };
    assert_eq!(e.dir, out.canonicalize().expect("made"));
    assert_eq!(
        e.token_url,
        format!("{}/{{{{tenantId}}}}/oauth2/token", svc.origin)
    );
    let collection = std::fs::read_to_string(&e.collection).expect("collection");
    assert!(collection.contains(&format!("{}/{{{{tenantId}}}}/oauth2/token", svc.origin)));
    assert!(!collection.contains("login.microsoftonline.com"));
    let env = std::fs::read_to_string(&e.environment).expect("environment");
    assert!(env.contains(&svc.client_secret));
    assert!(e.samples.iter().all(|p| p.exists()));
}

#[tokio::test]
async fn every_screen_on_the_practice_service() {
    let svc = start(ServiceConfig {
        reindex_min_duration: std::time::Duration::ZERO,
        ..ServiceConfig::default()
    })
    .await
    .expect("service");
    let session = Arc::new(
        Session::open(&common::profile_for(&svc), None, None)
            .await
            .expect("session"),
    );
    let files = files(&session).await;

    // No role yet: the store is refused as a whole, and the screen says what to do.
    let d = last(
        run(
            store::Work::Store {
                files: files.clone(),
                mode: StoreMode::Single,
            },
            &session,
        )
        .await,
    );
    assert!(
        matches!(&d, Done::Store(store::Done::Stored(Err(e))) if e.contains("403") && e.contains("DICOM Data Owner")),
        "{d:?}"
    );
    assert!(matches!(
        last(run(role::Work::Grant, &session).await),
        Done::Role(role::Done::Changed(Ok(_)))
    ));

    // Single-part: progress per file, then three instances stored.
    let all = run(
        store::Work::Store {
            files: files.clone(),
            mode: StoreMode::Single,
        },
        &session,
    )
    .await;
    assert!(
        all.iter()
            .any(|d| matches!(d, Done::Store(store::Done::Progress(_))))
    );
    match all.into_iter().last() {
        Some(Done::Store(store::Done::Stored(Ok(stored)))) => {
            assert_eq!(stored.statuses, vec![200, 200, 200]);
            assert!(stored.results.iter().all(|r| r.stored), "{stored:?}");
        }
        other => panic!("{other:?}"),
    }
    // Again, multipart: one 409 whose three instances say 45070 (already stored).
    match last(
        run(
            store::Work::Store {
                files,
                mode: StoreMode::Multipart,
            },
            &session,
        )
        .await,
    ) {
        Done::Store(store::Done::Stored(Ok(stored))) => {
            assert_eq!(stored.statuses, vec![409]);
            assert_eq!(stored.results.len(), 3);
            assert!(
                stored.results.iter().all(|r| r.code == Some(45070)),
                "{stored:?}"
            );
        }
        other => panic!("{other:?}"),
    }

    // Search: the study, with keywords; a bad filter is the service's 400, explained.
    match last(
        run(
            search::Work::Search {
                level: Level::Study,
                scope: Scope::default(),
                params: vec![("PatientID".into(), "ID1".into())],
            },
            &session,
        )
        .await,
    ) {
        Done::Search(search::Done::Searched(Ok(Found {
            status: 200,
            results,
        }))) => assert_eq!(results.len(), 1),
        other => panic!("{other:?}"),
    }
    let d = last(
        run(
            search::Work::Search {
                level: Level::Study,
                scope: Scope::default(),
                params: vec![("StudyDate".into(), "yesterday".into())],
            },
            &session,
        )
        .await,
    );
    assert!(
        matches!(&d, Done::Search(search::Done::Searched(Err(e))) if e.starts_with("400")),
        "{d:?}"
    );

    // Retrieve: the study as three files; the metadata as datasets for the tree.
    match last(run(retrieve(What::Study), &session).await) {
        Done::Retrieve(retrieve::Done::Retrieved(Ok((summary, None)))) => {
            assert!(summary.contains("3 file(s)"), "{summary}")
        }
        other => panic!("{other:?}"),
    }
    match last(run(retrieve(What::Metadata), &session).await) {
        Done::Retrieve(retrieve::Done::Retrieved(Ok((_, Some(m))))) => assert_eq!(m.len(), 3),
        other => panic!("{other:?}"),
    }
    // In another transfer syntax (T): the instance and its frame 1 converted to JPEG 2000 lossless; the
    // study in one fixed syntax is Azure's 406.
    for what in [What::Instance, What::Frame] {
        let work = retrieve::Work::Retrieve {
            what,
            of: InstanceRef::new(STUDY_UID, SERIES1_UID, RED_UID),
            syntax: Syntax::Jpeg2000Lossless,
        };
        match last(run(work, &session).await) {
            Done::Retrieve(retrieve::Done::Retrieved(Ok((summary, None)))) => {
                assert!(summary.starts_with("200: 1 file(s)"), "{what:?}: {summary}")
            }
            other => panic!("{what:?}: {other:?}"),
        }
    }
    let study = retrieve::Work::Retrieve {
        what: What::Study,
        of: InstanceRef::new(STUDY_UID, SERIES1_UID, RED_UID),
        syntax: Syntax::Jpeg2000Lossless,
    };
    match last(run(study, &session).await) {
        Done::Retrieve(retrieve::Done::Retrieved(Err(e))) => assert!(e.contains("406"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Another instance of the series, by its UIDs.
    let green = retrieve::Work::Retrieve {
        what: What::Instance,
        of: InstanceRef::new(STUDY_UID, SERIES1_UID, dicomlab_dicom::samples::GREEN_UID),
        syntax: Syntax::Stored,
    };
    match last(run(green, &session).await) {
        Done::Retrieve(retrieve::Done::Retrieved(Ok((summary, None)))) => {
            assert!(summary.contains("1 file(s)"), "{summary}")
        }
        other => panic!("{other:?}"),
    }

    // Change feed: three Create rows; the latest.
    match last(
        run(
            feed::Work::Page {
                offset: 0,
                limit: 10,
                append: false,
            },
            &session,
        )
        .await,
    ) {
        Done::ChangeFeed(feed::Done::Page {
            result: Ok(rows), ..
        }) => {
            assert_eq!(rows.len(), 3);
            assert!(rows.iter().all(|r| r.action == "Create"), "{rows:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        last(run(feed::Work::Latest, &session).await),
        Done::ChangeFeed(feed::Done::Latest(Ok(Some(_))))
    ));

    // Tags: add (the operation reported), list, get, disable, delete.
    let all = run(
        tags::Work::Add {
            path: "PatientSex".into(),
            vr: String::new(),
            level: "Study".into(),
        },
        &session,
    )
    .await;
    assert!(
        all.iter()
            .any(|d| matches!(d, Done::Tags(tags::Done::Progress(_))))
    );
    assert!(
        matches!(all.last(), Some(Done::Tags(tags::Done::Changed(Ok(_))))),
        "{all:?}"
    );
    match last(run(tags::Work::List, &session).await) {
        Done::Tags(tags::Done::Listed(Ok(rows))) => assert_eq!(rows.len(), 1),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        last(run(tags::Work::Get("00100040".into()), &session).await),
        Done::Tags(tags::Done::Got(Ok(_)))
    ));
    let d = last(
        run(
            tags::Work::Update {
                path: "00100040".into(),
                query_status: "Disabled".into(),
            },
            &session,
        )
        .await,
    );
    assert!(
        matches!(&d, Done::Tags(tags::Done::Changed(Ok(m))) if m.contains("Disabled")),
        "{d:?}"
    );
    assert!(matches!(
        last(run(tags::Work::Delete("00100040".into()), &session).await),
        Done::Tags(tags::Done::Changed(Ok(_)))
    ));
    // Deleting it again: 404, explained.
    let d = last(run(tags::Work::Delete("00100040".into()), &session).await);
    assert!(
        matches!(&d, Done::Tags(tags::Done::Changed(Err(e))) if e.contains("no such extended query tag")),
        "{d:?}"
    );
}

#[tokio::test]
async fn store_search_and_retrieve_screens_on_orthanc() {
    let Some(o) = orthanc::start() else { return };
    let mut p = Profile::new(TargetKind::Generic);
    p.base_url = o.dicomweb.clone();
    let session = Arc::new(Session::open(&p, None, None).await.expect("session"));
    let files = files(&session).await;
    match last(
        run(
            store::Work::Store {
                files,
                mode: StoreMode::Multipart,
            },
            &session,
        )
        .await,
    ) {
        Done::Store(store::Done::Stored(Ok(stored))) => {
            assert_eq!(stored.statuses, vec![200]);
            assert_eq!(stored.results.len(), 3, "{stored:?}");
        }
        other => panic!("{other:?}"),
    }
    match last(
        run(
            search::Work::Search {
                level: Level::Instance,
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
        Done::Search(search::Done::Searched(Ok(Found {
            status: 200,
            results,
        }))) => assert_eq!(results.len(), 2),
        other => panic!("{other:?}"),
    }
    match last(run(retrieve(What::Metadata), &session).await) {
        Done::Retrieve(retrieve::Done::Retrieved(Ok((_, Some(m))))) => assert_eq!(m.len(), 3),
        other => panic!("{other:?}"),
    }
    match last(run(retrieve(What::Series), &session).await) {
        Done::Retrieve(retrieve::Done::Retrieved(Ok((summary, None)))) => {
            assert!(summary.contains("2 file(s)"), "{summary}")
        }
        other => panic!("{other:?}"),
    }
}
