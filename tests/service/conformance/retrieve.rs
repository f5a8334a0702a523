//! WADO-RS: instances, studies, frames and metadata as stored, padded UIDs, ETags, and the refusals.

use super::*;

/// Upstream: RetrieveTransactionResourceTests.GivenAnyMediaType_WhenRetrieveFrameWithOriginalTransferSyntax_ThenOriginalContentReturned
/// — `Accept: multipart/related; type="*/*"; transfer-syntax=*` gets the original frame
/// (AcceptHeaderHandler: "any media type" is application/octet-stream for frames).
#[tokio::test]
async fn frames_for_any_media_type_are_the_original_frames() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    assert_eq!(
        az.store("v1", "studies", &[instance(&st, &se, &sop, &[])])
            .await
            .status,
        200
    );
    let url = az.url(
        "v1",
        &format!("studies/{st}/series/{se}/instances/{sop}/frames/1"),
    );
    for accept in [
        r#"multipart/related; type="*/*"; transfer-syntax=*"#,
        r#"multipart/related; type="*/*""#,
    ] {
        let (status, ct, body) = az.get_bytes(&url, accept).await;
        assert_eq!(status, 200, "{accept}: {}", String::from_utf8_lossy(&body));
        let parts = split_multipart(&ct, &body);
        assert_eq!(parts.len(), 1, "{accept}");
        assert_eq!(parts[0].1, vec![128u8; 64], "{accept}");
        assert!(
            parts[0]
                .0
                .to_ascii_lowercase()
                .contains("application/octet-stream"),
            "{}",
            parts[0].0
        );
    }
}

/// Upstream: StoreTransactionTests.GivenInstanceWithPaddedStudyInstanceUIDAlreadyStored_WhenStoreInstanceWithMorePaddedId_ThenExpectConflict
/// — a StudyInstanceUID with a trailing space is stored; retrieving it by the padded UID finds it (SQL
/// Server compares padded strings); storing it again with more padding is a conflict. The other
/// routes that name it by a padded UID find it too.
#[tokio::test]
async fn trailing_spaces_of_a_uid_do_not_count() {
    let az = Azure::start().await;
    let (study, series, sop) = ids();
    let padded = format!("{study} ");
    let f = instance(&padded, &series, &sop, &[]);
    assert_eq!(az.store("v1", "studies", &[f]).await.status, 200);
    let path = format!("studies/{study}%20/series/{series}/instances/{sop}");
    let (status, _, body) = az
        .get_bytes(
            &az.url("v1", &path),
            r#"multipart/related; type="application/dicom"; transfer-syntax=*"#,
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        az.get_json("v1", &format!("{path}/metadata")).await.status,
        200
    );
    let a = az
        .get_json("v1", &format!("studies/{study}%20/series"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);

    let more = instance(&format!("{study}      "), &series, &sop, &[]);
    let a = az.store("v1", "studies", &[more]).await;
    assert_eq!(a.status, 409, "{}", a.text);
    let failed = only_item(&a.json(), "00081198").clone();
    assert_eq!(first_str(&failed, "00081197").as_deref(), Some("45070"));

    let a = az
        .send(az.http.request(Method::DELETE, az.url("v1", &path)))
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(
        az.get_json("v1", &format!("{path}/metadata")).await.status,
        404
    );
}

/// Upstream: RetrieveTransactionResourceTests.GivenUnsupportedAcceptHeaders_WhenRetrieveInstance_ThenServerShouldReturnNotAcceptable
/// (GeUnsupportedAcceptHeadersForInstances) and GivenNonExistingInstance_WhenRetrieveInstance_ThenServerShouldReturnNotFound.
#[tokio::test]
async fn instance_retrieve_refusals() {
    let az = Azure::start().await;
    let url = az.url(
        "v2",
        &format!("studies/{}/series/{}/instances/{}", uid(), uid(), uid()),
    );
    for accept in [
        r#"application/octet-stream; transfer-syntax="*""#,
        r#"application/dicom; transfer-syntax="1.2.840.10008.1.2.4.100""#,
    ] {
        let (status, _, _) = az.get_bytes(&url, accept).await;
        assert_eq!(status, 406, "{accept}");
    }
    let (status, _, _) = az
        .get_bytes(&url, "application/dicom; transfer-syntax=*")
        .await;
    assert_eq!(status, 404);
}

/// Upstream: RetrieveTransactionResourceTests.GivenInstanceWithoutPixelData_WhenRetrieveInstance_ThenServerShouldReturnExpectedContent
/// — what was stored comes back byte for byte.
#[tokio::test]
async fn an_instance_comes_back_as_stored() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let no_image: Vec<(Tag, VR, &str)> = [
        tags::PIXEL_DATA,
        tags::ROWS,
        tags::COLUMNS,
        tags::BITS_ALLOCATED,
        tags::BITS_STORED,
        tags::HIGH_BIT,
        tags::PIXEL_REPRESENTATION,
        tags::SAMPLES_PER_PIXEL,
        tags::PHOTOMETRIC_INTERPRETATION,
    ]
    .into_iter()
    .map(|t| (t, VR::US, ""))
    .collect();
    let f = instance(&st, &se, &sop, &no_image);
    assert_eq!(
        az.store("v1", "studies", std::slice::from_ref(&f))
            .await
            .status,
        200
    );
    let url = az.url("v1", &format!("studies/{st}/series/{se}/instances/{sop}"));
    let (status, ct, body) = az
        .get_bytes(&url, "application/dicom; transfer-syntax=*")
        .await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/dicom"), "{ct}");
    assert_eq!(body, f);
}

/// Upstream: DicomRetrieveMetadataTransactionTests.GivenAnIncorrectAcceptHeader_WhenRetrievingResource_ThenNotAcceptableIsReturned
/// — the Accept header is judged before the (here invalid) UIDs.
#[tokio::test]
async fn metadata_for_an_unacceptable_accept_is_406() {
    let az = Azure::start().await;
    let g = || uuid::Uuid::new_v4().to_string();
    for path in [
        format!("studies/{}/metadata", g()),
        format!("studies/{}/series/{}/metadata", g(), g()),
        format!("studies/{}/series/{}/instances/{}/metadata", g(), g(), g()),
    ] {
        let (status, _, _) = az.get_bytes(&az.url("v1", &path), "application/data").await;
        assert_eq!(status, 406, "{path}");
    }
}

/// Upstream: DicomRetrieveMetadataETagTests.GivenRetrieveStudyMetadataRequest_WhenIfNoneMatchMatchesETag_ThenNotModifiedResponseIsReturned,
/// …_WhenStudyIsUpdatedAndPreviousETagIsUsed_… and …_WhenInstanceIsDeletedInStudyAndPreviousETagIsUsed_…
#[tokio::test]
async fn study_metadata_etag() {
    let az = Azure::start().await;
    let study = uid();
    let (se1, sop1) = (uid(), uid());
    let first = instance(&study, &se1, &sop1, &[]);
    assert_eq!(az.store("v1", "studies", &[first]).await.status, 200);
    let path = format!("studies/{study}/metadata");
    let get = |etag: Option<String>| {
        let mut r = az.http.get(az.url("v1", &path)).header(ACCEPT, DICOM_JSON);
        if let Some(e) = etag {
            r = r.header("If-None-Match", e);
        }
        az.send(r)
    };
    let a = get(None).await;
    assert_eq!(a.status, 200);
    let etag = a.headers["etag"].to_str().expect("etag").to_string();
    let a = get(Some(etag.clone())).await;
    assert_eq!(a.status, 304);
    assert!(a.text.is_empty());

    let second = instance(&study, &uid(), &uid(), &[]);
    assert_eq!(az.store("v1", "studies", &[second]).await.status, 200);
    let a = get(Some(etag)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json().as_array().map(Vec::len), Some(2));
    let etag = a.headers["etag"].to_str().expect("etag").to_string();

    let one = az.url(
        "v1",
        &format!("studies/{study}/series/{se1}/instances/{sop1}"),
    );
    assert_eq!(az.send(az.http.delete(&one)).await.status, 204);
    let a = get(Some(etag)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json().as_array().map(Vec::len), Some(1));
}

/// Upstream: RetrieveTransactionResourceTests.GivenMultipleInstances_WhenRetrieveStudy_ThenServerShouldReturnExpectedInstances,
/// GivenNonExistingStudy_WhenRetrieveStudy_ThenServerShouldReturnNotFound and
/// GivenUnsupportedAcceptHeaders_WhenRetrieveStudy_ThenServerShouldReturnNotAcceptable
/// (GetUnsupportedAcceptHeadersForStudiesAndSeries) — a study's instances come back whole, as stored.
#[tokio::test]
async fn retrieving_a_study() {
    let az = Azure::start().await;
    let (study, other) = (uid(), uid());
    let one = instance(&study, &uid(), &uid(), &[]);
    let two = instance(&study, &uid(), &uid(), &[]);
    let three = instance(&other, &uid(), &uid(), &[]);
    let a = az
        .store("v2", "studies", &[one.clone(), two.clone(), three])
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let any = r#"multipart/related; type="application/dicom"; transfer-syntax="*""#;
    let (status, ct, body) = az
        .get_bytes(&az.url("v2", &format!("studies/{study}")), any)
        .await;
    assert_eq!(status, 200);
    let parts = split_multipart(&ct, &body);
    assert_eq!(parts.len(), 2);
    for f in [&one, &two] {
        assert!(
            parts.iter().any(|(_, p)| p == f),
            "each file comes back as stored"
        );
    }
    let (status, _, _) = az
        .get_bytes(&az.url("v2", &format!("studies/{}", uid())), any)
        .await;
    assert_eq!(status, 404);
    for accept in [
        r#"application/dicom; transfer-syntax="*""#,
        r#"multipart/related; type="application/octet-stream"; transfer-syntax="*""#,
        r#"multipart/related; type="application/dicom"; transfer-syntax="1.2.840.10008.1.2.4.100""#,
    ] {
        let (status, _, _) = az
            .get_bytes(&az.url("v2", &format!("studies/{}", uid())), accept)
            .await;
        assert_eq!(status, 406, "{accept}");
    }
}

/// Upstream: RetrieveTransactionResourceTests.GivenMultipleFrames_WhenRetrieveFrame_ThenServerShouldReturnExpectedContent,
/// GivenInstanceWithFrames_WhenRetrieveSinglePartOneFrame_ThenServerShouldReturnExpectedContent,
/// GivenNonExistingFrames_WhenRetrieveFrame_ThenServerShouldReturnNotFound,
/// GivenInvalidFrames_WhenRetrievingFrame_TheServerShouldReturnBadRequest (its InlineData) and
/// GivenUnsupportedTransferSyntax_WhenRetrieveFrame_ThenServerShouldReturnNotAcceptable.
#[tokio::test]
async fn frames() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    // Three 8×8 frames of 8 bits: 1s, 2s, 3s.
    let pixels: String = (1u8..=3)
        .flat_map(|v| std::iter::repeat_n(char::from(v), 64))
        .collect();
    let f = instance(
        &st,
        &se,
        &sop,
        &[
            (tags::NUMBER_OF_FRAMES, VR::IS, "3"),
            (tags::PIXEL_DATA, VR::OB, pixels.as_str()),
        ],
    );
    assert_eq!(az.store("v2", "studies", &[f]).await.status, 200);
    let base = format!("studies/{st}/series/{se}/instances/{sop}/frames");
    let multi = r#"multipart/related; type="application/octet-stream"; transfer-syntax=*"#;
    let (status, ct, body) = az
        .get_bytes(&az.url("v2", &format!("{base}/1,2")), multi)
        .await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("multipart/related"), "{ct}");
    let parts = split_multipart(&ct, &body);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].1, vec![1u8; 64]);
    assert_eq!(parts[1].1, vec![2u8; 64]);
    let (status, ct, body) = az
        .get_bytes(
            &az.url("v2", &format!("{base}/3")),
            "application/octet-stream",
        )
        .await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/octet-stream"), "{ct}");
    assert_eq!(body, vec![3u8; 64]);
    let (status, _, _) = az
        .get_bytes(&az.url("v2", &format!("{base}/4")), multi)
        .await;
    assert_eq!(status, 404);
    for frames in ["0", "-1", "1,-1", "0,1"] {
        let (status, _, _) = az
            .get_bytes(&az.url("v2", &format!("{base}/{frames}")), multi)
            .await;
        assert_eq!(status, 400, "{frames}");
    }
    let (status, _, _) = az
        .get_bytes(
            &az.url("v2", &format!("{base}/1")),
            r#"multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.90"#,
        )
        .await;
    assert_eq!(status, 406);
}
