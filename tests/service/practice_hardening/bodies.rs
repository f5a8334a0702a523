//! Hostile bodies: malformed files refused with a reason, validation memory bounded by bytes, multipart
//! bodies bounded and linear, a pydicom in-memory dataset stored, a thousand-word fuzzy search refused.

use super::*;

#[tokio::test]
async fn hostile_files_are_refused_with_a_reason_and_the_service_lives_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Served::start(&dir.path().join("data"), &[]);
    let token = s.token().await;
    let base = baseline(&s);

    // 2,000 nested sequences (56 KB): once a stack overflow that killed the process.
    let (st, se, sop) = ids();
    let (status, body) = s
        .store(&token, hostile::deeply_nested(&st, &se, &sop, 2_000))
        .await;
    assert_eq!(status, 409, "{body}");
    let (reason, comment) = failure(&body);
    assert_eq!(reason.as_deref(), Some("43264"));
    assert!(comment.contains("nested more than 32 deep"), "{comment}");

    // Four 400-byte files whose PixelData declares 4 GiB, at once: nothing is allocated for them.
    let lies = (0..4).map(|_| {
        let (st, se, sop) = ids();
        s.store(&token, hostile::lying_length(&st, &se, &sop, 0xFFFF_FFF0))
    });
    for (status, body) in futures_util::future::join_all(lies).await {
        assert_eq!(status, 409, "{body}");
        let (_, comment) = failure(&body);
        assert!(comment.contains("declares 4294967280 bytes"), "{comment}");
    }

    // 2^30 frames of 32768²: the size is computed with checked arithmetic.
    let (st, se, sop) = ids();
    let (status, body) = s
        .store(&token, hostile::pixel_overflow(&st, &se, &sop))
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, comment) = failure(&body);
    assert!(
        comment.contains("overflows") || comment.contains("PixelData holds"),
        "{comment}"
    );

    // A deflated data set that inflates past the cap (512 MiB) is refused while it inflates.
    let (st, se, sop) = ids();
    let bomb = hostile::deflate_bomb(&st, &se, &sop, 600 * 1024 * 1024);
    assert!(bomb.len() < 4 * 1024 * 1024, "{}", bomb.len());
    let (status, body) = s.store(&token, bomb).await;
    assert_eq!(status, 409, "{body}");
    let (_, comment) = failure(&body);
    assert!(comment.contains("inflates past"), "{comment}");

    // 32 levels are stored and their metadata reads back whole; 33 are refused at the door.
    let (st, se, sop) = ids();
    let (status, body) = s
        .store(&token, hostile::deeply_nested(&st, &se, &sop, 32))
        .await;
    assert_eq!(status, 200, "{body}");
    let r = reqwest::Client::new()
        .get(s.url(&format!(
            "studies/{st}/series/{se}/instances/{sop}/metadata"
        )))
        .bearer_auth(&token)
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("metadata");
    assert_eq!(r.status(), 200);
    let meta: Value = r.json().await.expect("metadata parses back");
    assert!(meta[0]["00081140"]["Value"][0].is_object(), "{meta}");
    let (st, se, sop) = ids();
    let (status, _) = s
        .store(&token, hostile::deeply_nested(&st, &se, &sop, 33))
        .await;
    assert_eq!(status, 409);

    // A meta group without (0002,0000), as pydicom and dicomweb-client send: stored, and retrievable.
    let (st, se, sop) = ids();
    let file = hostile::without_group_length(&st, &se, &sop);
    let (status, body) = s.store(&token, file.clone()).await;
    assert_eq!(status, 200, "{body}");
    let r = s
        .get(
            &token,
            &format!("studies/{st}/series/{se}/instances/{sop}"),
            "application/dicom; transfer-syntax=*",
        )
        .await;
    assert_eq!(r.status(), 200);
    // Stored in the standard form: the same bytes with the group length added, which dicom-rs reads.
    let stored = r.bytes().await.expect("bytes");
    assert_eq!(stored.len(), file.len() + 12);
    assert_eq!(&stored[144..], &file[132..]);
    dicom_object::OpenFileOptions::new()
        .from_reader(&stored[128..])
        .expect("a strict reader reads the stored file");
    let r = reqwest::Client::new()
        .get(s.url(&format!(
            "studies/{st}/series/{se}/instances/{sop}/frames/1"
        )))
        .bearer_auth(&token)
        .header(ACCEPT, "application/octet-stream; transfer-syntax=*")
        .send()
        .await
        .expect("frame");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("bytes").as_ref(), &[0, 64, 128, 255]);

    s.assert_healthy(base + 120).await;
}

#[tokio::test]
async fn validation_memory_is_bounded_by_bytes_not_count() {
    let dir = tempfile::tempdir().expect("tmp");
    // 128 MiB: 96 for validation, so one 16 MiB header (about 64 MiB to validate) at a time.
    let mut s = Served::start(&dir.path().join("data"), &["--memory-mib", "128"]);
    let token = s.token().await;
    let study = uid();
    let files: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            hostile::big_header(
                &study,
                &format!("{study}.1"),
                &format!("{study}.{i}.9"),
                16 << 20,
            )
        })
        .collect();
    let base = baseline(&s);
    let started = Instant::now();
    let stores = files.into_iter().map(|f| s.store(&token, f));
    for (status, body) in futures_util::future::join_all(stores).await {
        assert_eq!(status, 200, "{body}");
    }
    let peak = s.peak_mib();
    eprintln!(
        "12 × 16 MiB headers at once: peak {peak} MiB (base {base} MiB), {:?}",
        started.elapsed()
    );
    // Unbounded, eight blocking threads would hold 8 × 16 MiB (and their copies) at once.
    assert!(peak < base + 80, "peak {peak} MiB, base {base} MiB");
    // A header that could never fit the budget is refused with the reason, not waited for.
    let (status, body) = s
        .store(
            &token,
            hostile::big_header(
                &study,
                &format!("{study}.1"),
                &format!("{study}.99"),
                30 << 20,
            ),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, comment) = failure(&body);
    assert!(
        comment.contains("more than the service allows"),
        "{comment}"
    );
    s.assert_healthy(base + 120).await;
}

fn related(boundary: &str) -> String {
    format!("multipart/related; type=\"application/dicom\"; boundary={boundary}")
}

async fn post_related(
    s: &Served,
    token: &str,
    body: reqwest::Body,
) -> Result<(u16, String), String> {
    let r = reqwest::Client::new()
        .post(s.url("studies"))
        .bearer_auth(token)
        .header(ACCEPT, DICOM_JSON)
        .header(CONTENT_TYPE, related("b"))
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.unwrap_or_default()))
}

#[tokio::test]
async fn multipart_bodies_are_bounded_and_linear() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Served::start(&dir.path().join("data"), &[]);
    let token = s.token().await;
    let base = baseline(&s);

    // No boundary within 64 KiB: 400 with the reason.
    let (status, text) = post_related(&s, &token, vec![b'a'; 200_000].into())
        .await
        .expect("answer");
    assert_eq!(status, 400);
    assert!(
        text.contains("no boundary within the first 65536 bytes"),
        "{text}"
    );

    // Part headers that never end, 300 MB of them: refused at 64 KiB, never buffered.
    let mut head = b"--b\r\nContent-Type: application/dicom\r\nX-Filler: ".to_vec();
    head.extend(vec![b'a'; 1 << 20]);
    let chunk = bytes::Bytes::from(vec![b'a'; 1 << 20]);
    let chunks = std::iter::once(bytes::Bytes::from(head))
        .chain(std::iter::repeat_n(chunk, 300))
        .map(Ok::<_, std::io::Error>);
    match post_related(
        &s,
        &token,
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
    )
    .await
    {
        Ok((status, text)) => {
            assert_eq!(status, 400, "{text}");
            assert!(
                text.contains("headers do not end within 65536 bytes"),
                "{text}"
            );
        }
        // The service answered and closed while the client was still sending.
        Err(e) => eprintln!("endless headers: the client saw {e}"),
    }

    // Too many parts.
    let tiny = |n: usize| {
        let mut b = Vec::with_capacity(n * 50);
        for _ in 0..n {
            b.extend_from_slice(b"--b\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n");
        }
        b.extend_from_slice(b"--b--\r\n");
        b
    };
    let (status, text) = post_related(&s, &token, tiny(10_001).into())
        .await
        .expect("answer");
    assert_eq!(status, 400);
    assert!(text.contains("more than 10000 parts"), "{text}");

    // Linear in the number of parts: 10,000 tiny parts cost about five times 2,000.
    let time = |n: usize| {
        let body = tiny(n);
        let (s, token) = (&s, &token);
        async move {
            let t = Instant::now();
            let (status, text) = post_related(s, token, body.into()).await.expect("answer");
            assert_eq!(status, 409, "{}", &text[..text.len().min(300)]);
            t.elapsed()
        }
    };
    let small = time(2_000).await;
    let large = time(10_000).await;
    eprintln!("2,000 tiny parts: {small:?}; 10,000: {large:?}");
    assert!(large < Duration::from_secs(15), "{large:?}");
    assert!(
        large < small * 10 + Duration::from_millis(500),
        "2,000 parts {small:?}, 10,000 parts {large:?}: not linear"
    );
    s.assert_healthy(base + 35).await;
}

#[tokio::test]
async fn a_thousand_word_fuzzy_search_is_400_with_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Served::start(&dir.path().join("data"), &[]);
    let token = s.token().await;
    let base = baseline(&s);
    let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
    let r = reqwest::Client::new()
        .get(s.url(&format!(
            "studies?fuzzymatching=true&PatientName={}",
            words.join("%5E")
        )))
        .bearer_auth(&token)
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("search");
    assert_eq!(r.status(), 400);
    let text = r.text().await.expect("text");
    assert!(text.contains("1000 words; at most 32"), "{text}");
    // Many parameters too.
    let many: Vec<String> = (0..65).map(|i| format!("x{i}=1")).collect();
    let r = s
        .get(&token, &format!("studies?{}", many.join("&")), DICOM_JSON)
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("at most 64"));
    s.assert_healthy(base + 60).await;
}

/// What `dicomweb-client`'s `store_instances` sends for a dataset built in memory with pydicom (a meta
/// group without (0002,0000)) is stored. Skipped when Python, pydicom or dicomweb-client is missing
/// (failed instead under `DICOMLAB_REQUIRE_CLIENTS=1`).
#[tokio::test]
async fn a_pydicom_in_memory_dataset_from_dicomweb_client_is_stored() {
    if !dicomlab_testkit::require::python_clients() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = Served::start(&dir.path().join("data"), &[]);
    let token = s.token().await;
    let rss = baseline(&s);
    let (study, series, sop) = ids();
    let base = format!("{}/v1", s.origin);
    let script = format!(
        r#"
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from dicomweb_client.api import DICOMwebClient
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
meta.MediaStorageSOPInstanceUID = "{sop}"
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset()
ds.file_meta = meta
ds.SOPClassUID = meta.MediaStorageSOPClassUID
ds.SOPInstanceUID = "{sop}"
ds.StudyInstanceUID = "{study}"
ds.SeriesInstanceUID = "{series}"
ds.PatientID = "PYDICOM"
ds.PatientName = "In^Memory"
ds.Modality = "OT"
client = DICOMwebClient("{base}", headers={{"Authorization": "Bearer {token}"}})
client.store_instances([ds])
found = client.search_for_instances(search_filters={{"SOPInstanceUID": "{sop}"}})
assert len(found) == 1, found
print("stored")
"#
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.assert_healthy(rss + 60).await;
}

#[tokio::test]
async fn a_retrieve_during_a_delete_sends_whole_parts() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut s = Served::start(&data, &[]);
    let token = s.token().await;
    let (study, series) = (uid(), uid());
    let files: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            hostile::image(
                &study,
                &series,
                &format!("{series}.{i}"),
                2000,
                2000,
                i as u8,
            )
        })
        .collect();
    for f in &files {
        let (status, body) = s.store(&token, f.clone()).await;
        assert_eq!(status, 200, "{body}");
    }
    let base = baseline(&s);
    let http = reqwest::Client::new();
    let retrieve_study = || {
        http.get(s.url(&format!("studies/{study}")))
            .bearer_auth(&token)
            .header(
                ACCEPT,
                "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
            )
            .send()
    };
    let retrieve_study = || async { retrieve_study().await.expect("retrieve") };
    let mut r = retrieve_study().await;
    assert_eq!(r.status(), 200);
    let ct = r.headers()[CONTENT_TYPE].to_str().expect("ct").to_string();
    let mut body = r
        .chunk()
        .await
        .expect("chunk")
        .expect("first chunk")
        .to_vec();
    let d = http
        .delete(s.url(&format!("studies/{study}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(d.status(), 204);
    while let Some(chunk) = r.chunk().await.expect("chunk") {
        body.extend_from_slice(&chunk);
    }
    let parts = split_multipart(&ct, &body);
    assert_eq!(parts.len(), 3);
    for (part, file) in parts.iter().zip(&files) {
        assert_eq!(part.1.len(), file.len());
        assert!(part.1 == *file, "a part was cut");
    }
    // Gone now, files included.
    let r = retrieve_study().await;
    assert_eq!(r.status(), 404);
    let left: usize = std::fs::read_dir(data.join("blobs"))
        .expect("blobs")
        .filter_map(Result::ok)
        .map(|shard| std::fs::read_dir(shard.path()).map_or(0, |d| d.count()))
        .sum();
    assert_eq!(
        left, 0,
        "the deleted files are removed once the retrieve is done"
    );
    s.assert_healthy(base + 60).await;
}
