//! The lab against Orthanc (Debian 1.10 + DICOMweb plugin), spawned by the test: store (multipart),
//! search, retrieve and viewer pass; the change feed and extended query tags say "not supported".

#[path = "common/orthanc.rs"]
mod orthanc;

use dicomlab::config::Profile;
use dicomlab::dicomweb::StoreMode;
use dicomlab::lab::actions::perform;
use dicomlab::lab::checks::TargetKind;
use dicomlab::lab::engine::Session;
use dicomlab::lab::progress::ProgressStore;
use dicomlab::lab::{Lab, Outcome};

#[tokio::test]
async fn the_lab_on_orthanc() {
    let Some(o) = orthanc::start() else { return };
    let mut p = Profile::new(TargetKind::Generic);
    p.base_url = o.dicomweb.clone();
    let session = Session::open(&p, None, None).await.expect("session");
    let lab = Lab::embedded().expect("lab");
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = ProgressStore::load(&dir.path().join("progress.json"));

    // Before storing: nothing found.
    let before = session
        .check_step(&lab, &mut store, "store-samples")
        .await
        .expect("step");
    assert!(matches!(before, Outcome::Fail { .. }), "{before:?}");

    // Orthanc accepts only multipart STOW.
    let step = lab.step("store-samples").expect("step");
    let samples = std::env::var_os("DICOMLAB_SAMPLES_DIR").map(std::path::PathBuf::from);
    perform(
        &session,
        &step.check,
        samples.as_deref(),
        StoreMode::Multipart,
    )
    .await
    .expect("store");
    for id in [
        "service-exists",
        "environment-values",
        "store-samples",
        "search-samples",
        "retrieve-samples",
        "viewer",
    ] {
        let o = session
            .check_step(&lab, &mut store, id)
            .await
            .expect("step");
        assert!(o.is_pass(), "{id}: {o:?}");
    }
    for id in [
        "change-feed",
        "tag-add",
        "tag-search",
        "tag-disable",
        "tag-delete",
    ] {
        let o = session
            .check_step(&lab, &mut store, id)
            .await
            .expect("step");
        assert!(matches!(o, Outcome::NotSupported { .. }), "{id}: {o:?}");
    }
    // No tokens on this target.
    let o = session
        .check_step(&lab, &mut store, "get-token")
        .await
        .expect("step");
    assert!(matches!(o, Outcome::NotSupported { .. }), "{o:?}");
}
