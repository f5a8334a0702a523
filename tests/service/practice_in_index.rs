//! Small instances are kept in the index rather than in files of their own (`blobs::IN_INDEX`): stored,
//! retrieved alone, in their study, as frames, rendered and transcoded, surviving `kill -9`, and
//! deleted — through the real process, beside an instance too large to keep there.

use dicomlab_testkit as common;
use dicomlab_testkit::served::Served;

use std::path::Path;

use common::{split_multipart, uid};
use dicomlab_dicom::hostile;

/// Files under `blobs/` (in its shard folders).
pub(crate) fn files(data: &Path) -> usize {
    std::fs::read_dir(data.join("blobs"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|shard| std::fs::read_dir(shard.path()).map_or(0, |f| f.count()))
                .sum()
        })
        .unwrap_or(0)
}

/// Instances whose bytes the index keeps.
pub(crate) fn kept(data: &Path) -> usize {
    rusqlite::Connection::open(data.join("index.sqlite"))
        .and_then(|c| {
            c.query_row("SELECT COUNT(*) FROM inline_blobs", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// GET with a bearer token and an Accept header: the status, the Content-Type and the body.
async fn get(s: &Served, token: &str, path: &str, accept: &str) -> (u16, String, Vec<u8>) {
    common::status_type_bytes(s.get(token, path, accept).await).await
}

const ANY: &str = "application/dicom; transfer-syntax=*";
const STUDY_ANY: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";

/// The study comes back with every instance whole, in the order stored.
async fn study_is_whole(s: &Served, token: &str, study: &str, sent: &[Vec<u8>]) {
    let (status, ct, body) = get(s, token, &format!("studies/{study}"), STUDY_ANY).await;
    assert_eq!(status, 200);
    let parts: Vec<Vec<u8>> = split_multipart(&ct, &body)
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert_eq!(parts.len(), sent.len());
    for (i, (got, want)) in parts.iter().zip(sent).enumerate() {
        assert!(
            got == want,
            "part {i}: {} bytes, sent {}",
            got.len(),
            want.len()
        );
    }
}

#[tokio::test]
async fn small_instances_live_in_the_index_and_come_back_whole() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut s = Served::start(&data, &[]);
    let token = s.token().await;
    let (study, series) = (uid(), uid());
    let sop = |i: u8| format!("{series}.{i}");
    // Two of a few KB, and one of 90 KB: above the 64 KiB the index keeps.
    let sent = vec![
        hostile::image(&study, &series, &sop(1), 32, 32, 1),
        hostile::image(&study, &series, &sop(2), 48, 48, 2),
        hostile::image(&study, &series, &sop(3), 300, 300, 3),
    ];
    for f in &sent {
        assert_eq!(s.store(&token, f.clone()).await.0, 200);
    }
    assert_eq!((files(&data), kept(&data)), (1, 2), "one file, two kept");

    let instance = |i: u8| format!("studies/{study}/series/{series}/instances/{}", sop(i));
    for (i, f) in (1..).zip(&sent) {
        let (status, _, body) = get(&s, &token, &instance(i), ANY).await;
        assert_eq!(status, 200);
        assert!(&body == f, "instance {i} comes back as sent");
    }
    study_is_whole(&s, &token, &study, &sent).await;
    let (status, _, frame) = get(
        &s,
        &token,
        &format!("{}/frames/1", instance(1)),
        "application/octet-stream; transfer-syntax=*",
    )
    .await;
    assert_eq!(
        (status, frame.len()),
        (200, 32 * 32),
        "the first frame's pixels"
    );
    let (status, ct, png) = get(
        &s,
        &token,
        &format!("{}/rendered", instance(2)),
        "image/png",
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert!(png.starts_with(b"\x89PNG"));
    let (status, _, j2k) = get(
        &s,
        &token,
        &instance(1),
        "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90",
    )
    .await;
    assert_eq!(status, 200, "transcoded: {}", String::from_utf8_lossy(&j2k));

    // What the index kept survives a kill.
    s.kill9();
    let s = Served::start(&data, &[]);
    let token = s.token().await;
    assert_eq!((files(&data), kept(&data)), (1, 2));
    study_is_whole(&s, &token, &study, &sent).await;

    // A delete takes the bytes with the row.
    let r = reqwest::Client::new()
        .delete(s.url(&instance(1)))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert_eq!((files(&data), kept(&data)), (1, 1));
    assert_eq!(get(&s, &token, &instance(1), ANY).await.0, 404);
    study_is_whole(&s, &token, &study, &sent[1..]).await;
}

/// A study of more small instances than a retrieve reads with its lookup (1 MiB of them) comes back
/// whole too: the rest are read as their turn comes.
#[tokio::test]
async fn a_study_beyond_what_a_retrieve_reads_at_once_comes_back_whole() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let s = Served::start(&data, &[]);
    let token = s.token().await;
    let (study, series) = (uid(), uid());
    // 30 of about 40 KB: 1.2 MB in all.
    let sent: Vec<Vec<u8>> = (1..=30u8)
        .map(|i| hostile::image(&study, &series, &format!("{series}.{i}"), 200, 200, i))
        .collect();
    assert!(sent.iter().map(Vec::len).sum::<usize>() > 1024 * 1024);
    for f in &sent {
        assert_eq!(s.store(&token, f.clone()).await.0, 200);
    }
    assert_eq!((files(&data), kept(&data)), (0, 30));
    study_is_whole(&s, &token, &study, &sent).await;
}
