//! The lab against Orthanc (Debian 1.10 + DICOMweb plugin), spawned by the test. Orthanc keeps no
//! change feed and no audit log dicomlab can read: the store is credited from the server's stored data,
//! reads from dicomlab's own exchanges (done in dicomlab) or a question only the result answers; the
//! change feed and extended query tags say "not supported".

use dicomlab_testkit::orthanc;

use dicomlab_dicomweb::StoreMode;
use dicomlab_lab::actions::perform;
use dicomlab_lab::config::Profile;
use dicomlab_lab::engine::Session;
use dicomlab_lab::evidence::Source;
use dicomlab_lab::progress::ProgressStore;
use dicomlab_lab::targets::TargetKind;
use dicomlab_lab::{Lab, Outcome};

#[tokio::test]
async fn the_lab_on_orthanc() {
    let Some(o) = orthanc::start() else { return };
    let mut p = Profile::new(TargetKind::Generic);
    p.base_url = o.dicomweb.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let session = Session::open(&p, None, Some(tx)).await.expect("session");
    let lab = Lab::embedded().expect("lab");
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = ProgressStore::load(&dir.path().join("progress.json"));

    // Before storing: nothing found, and nothing tried: ready, not failed.
    let before = session
        .check_step(&lab, &mut store, "store-samples")
        .await
        .expect("step");
    assert!(matches!(before, Outcome::Ready { .. }), "{before:?}");

    // Orthanc accepts only multipart STOW; then the searches and the viewer from dicomlab.
    let samples = std::env::var_os("DICOMLAB_SAMPLES_DIR").map(std::path::PathBuf::from);
    for id in ["store-samples", "search-samples", "viewer"] {
        let step = lab.step(id).expect("step");
        perform(
            &session,
            &lab,
            step,
            samples.as_deref(),
            StoreMode::Multipart,
            None,
        )
        .await
        .expect("do it");
    }
    while let Ok(e) = rx.try_recv() {
        session.keep_exchange(&lab, &mut store, &e);
    }
    let ev = |o: &Outcome| o.evidence().map(|e| e.source);
    for (id, source) in [
        ("service-exists", Source::ServiceState),
        ("environment-values", Source::Local),
        ("store-samples", Source::Dicomlab),
        ("search-samples", Source::Dicomlab),
        ("viewer", Source::Dicomlab),
    ] {
        let o = session
            .check_step(&lab, &mut store, id)
            .await
            .expect("step");
        assert_eq!(ev(&o), Some(source), "{id}: {o:?}");
    }
    // The retrieve was done with another tool: Orthanc keeps no record dicomlab can read, so the
    // step asks its question; the right answer is read from Orthanc.
    let r = session
        .check_step(&lab, &mut store, "retrieve-samples")
        .await
        .expect("step");
    assert!(
        matches!(&r, Outcome::Ready { detail, .. } if detail.contains("answer the question")),
        "{r:?}"
    );
    let before = store.target(&lab.id, &session.target_key);
    let a = session
        .answer(&lab, &before, "retrieve-samples", "2892945")
        .await;
    assert_eq!(ev(&a), Some(Source::Answer), "{a:?}");
    for id in [
        "change-feed",
        "tag-add",
        "tag-search",
        "tag-disable",
        "tag-delete",
        "role-assigned",
        "get-token",
    ] {
        let o = session
            .check_step(&lab, &mut store, id)
            .await
            .expect("step");
        assert!(matches!(o, Outcome::NotSupported { .. }), "{id}: {o:?}");
    }
}
