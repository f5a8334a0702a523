//! STOW-RS: what is stored, refused or stored with warnings, and why — the study in the path, the
//! required attributes, PatientID, NUL padding, multipart bodies as .NET writes them.

use super::*;

const MISMATCH: &str = "DICOM100: (0020,000d) - The StudyInstanceUid in the payload does not match the specified StudyInstanceUid.";

/// Upstream: StoreTransactionTests.GivenOneDifferentStudyInstanceUID_WhenStoringWithProvidedStudyInstanceUID_TheServerShouldReturnAccepted
/// (v1 and latest): 202, three attributes (RetrieveURL of the study, the failed and the referenced
/// sequences), the file of the other study not stored; its failure says why (StoreResponseBuilder adds
/// the validator's errors as a FailedAttributesSequence).
#[tokio::test]
async fn a_file_of_another_study_fails_with_its_reason() {
    let az = Azure::start().await;
    for version in ["v1", "v2"] {
        let (st1, se1, sop1) = ids();
        let (st2, se2, sop2) = ids();
        let a = az
            .store(
                version,
                &format!("studies/{st1}"),
                &[
                    instance(&st1, &se1, &sop1, &[]),
                    instance(&st2, &se2, &sop2, &[]),
                ],
            )
            .await;
        assert_eq!(a.status, 202, "{version}: {}", a.text);
        let body = a.json();
        assert_eq!(body.as_object().map(|o| o.len()), Some(3), "{body}");
        let url = first_str(&body, "00081190").expect("RetrieveURL");
        assert!(url.ends_with(&format!("studies/{st1}")), "{url}");
        let failed = only_item(&body, "00081198");
        assert_eq!(first_str(failed, "00081197").as_deref(), Some("43264"));
        assert_eq!(
            first_str(failed, "00081155").as_deref(),
            Some(sop2.as_str())
        );
        assert_eq!(comments(failed), vec![MISMATCH.to_string()], "{version}");
        let referenced = only_item(&body, "00081199");
        assert_eq!(
            first_str(referenced, "00081155").as_deref(),
            Some(sop1.as_str())
        );
        let a = az
            .get_json(
                version,
                &format!("studies/{st2}/series/{se2}/instances/{sop2}/metadata"),
            )
            .await;
        assert_eq!(a.status, 404);
    }
}

/// Upstream: StoreTransactionTests.GivenAllDifferentStudyInstanceUIDs_WhenStoringWithProvidedStudyInstanceUID_TheServerShouldReturnConflict
/// — 409 with the failed sequence alone, each item 43264 with its reason.
#[tokio::test]
async fn files_all_of_other_studies_are_409_each_with_its_reason() {
    let az = Azure::start().await;
    let (a1, b1, c1) = ids();
    let (a2, b2, c2) = ids();
    let a = az
        .store(
            "v1",
            &format!("studies/{}", uid()),
            &[instance(&a1, &b1, &c1, &[]), instance(&a2, &b2, &c2, &[])],
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.text);
    let body = a.json();
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    let failed = values(&body, "00081198");
    assert_eq!(failed.len(), 2);
    for f in failed {
        assert_eq!(first_str(f, "00081197").as_deref(), Some("43264"));
        assert_eq!(comments(f), vec![MISMATCH.to_string()]);
    }
}

/// Upstream: StoreTransactionTestsV1.GivenInstanceWithPatientIDWithInvalidChars_WhenStoreInstanceWithPartialValidation_ThenExpectDicom100ErrorAndConflictStatus
#[tokio::test]
async fn v1_a_patient_id_with_a_nul_is_409_with_the_minimum_validators_words() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let f = instance(
        &st,
        &se,
        &sop,
        &[(tags::PATIENT_ID, VR::LO, "Before Null Character, \0")],
    );
    let a = az.store("v1", "studies", &[f]).await;
    assert_eq!(a.status, 409, "{}", a.text);
    let failed = only_item(&a.json(), "00081198").clone();
    assert_eq!(
        comments(&failed).first().map(String::as_str),
        Some(
            "DICOM100: (0010,0020) - Dicom element 'PatientID' failed validation for VR 'LO': Value contains invalid character."
        )
    );
}

/// Upstream: StoreTransactionTestsLatest.GivenInstanceWithPatientIdInvalidWithNullPadding_WhenStoreInstanceWithPartialValidation_ThenExpectConflict
/// and GivenInstanceWithPatientIdValidWithNullPadding_WhenStoreInstanceWithPartialValidation_ThenExpectOkAndNoWarnings
/// — in v2 PatientID is a core tag: a NUL that is not padding fails the instance; trailing NUL padding is fine.
#[tokio::test]
async fn v2_patient_id_is_a_core_tag() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let f = instance(
        &st,
        &se,
        &sop,
        &[(tags::PATIENT_ID, VR::LO, "\u{0}123\u{0}")],
    );
    let a = az.store("v2", "studies", &[f]).await;
    assert_eq!(a.status, 409, "{}", a.text);
    let body = a.json();
    assert!(body.get("00081199").is_none(), "{body}");
    let failed = only_item(&body, "00081198");
    assert_eq!(first_str(failed, "00081197").as_deref(), Some("43264"));
    assert_eq!(first_str(failed, "00081155").as_deref(), Some(sop.as_str()));

    let (st, se, sop) = ids();
    let f = instance(&st, &se, &sop, &[(tags::PATIENT_ID, VR::LO, "123\u{0}")]);
    let a = az.store("v2", "studies", &[f]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(comments(only_item(&a.json(), "00081199")).is_empty());
}

/// Upstream: StoreTransactionTests.GivenAMultipartRequestWithNoContent_WhenStoring_TheServerShouldReturnNoContent
/// — .NET's MultipartContent of no parts is `--b\r\n\r\n--b--\r\n`.
#[tokio::test]
async fn a_multipart_body_of_no_parts_as_dotnet_writes_it_is_204() {
    let az = Azure::start().await;
    for version in ["v1", "v2"] {
        let a = az
            .send(
                az.http
                    .post(az.url(version, "studies"))
                    .header(ACCEPT, DICOM_JSON)
                    .header(
                        CONTENT_TYPE,
                        r#"multipart/related; boundary="b"; type="application/dicom""#,
                    )
                    .body("--b\r\n\r\n--b--\r\n"),
            )
            .await;
        assert_eq!(a.status, 204, "{version}: {}", a.text);
        assert!(a.text.is_empty());
    }
}

/// Upstream: StoreTransactionTests.GivenAMultipartRequestWithEmptyContent_WhenStoring_TheServerShouldReturnConflict
#[tokio::test]
async fn a_multipart_body_of_one_empty_part_is_409() {
    let az = Azure::start().await;
    let a = az
        .send(
            az.http
                .post(az.url("v1", "studies"))
                .header(ACCEPT, DICOM_JSON)
                .header(
                    CONTENT_TYPE,
                    r#"multipart/related; boundary="b"; type="application/dicom""#,
                )
                .body("--b\r\nContent-Type: application/dicom\r\n\r\n\r\n--b--\r\n"),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.text);
    let failed = only_item(&a.json(), "00081198").clone();
    assert_eq!(first_str(&failed, "00081197").as_deref(), Some("43264"));
}

/// Upstream: StoreTransactionTests.GivenDicomTagWithMultipleValues_WhenStoring_ThenShouldSucceedWithWarning,
/// with the header as StoreController writes it (HttpResponseExtensions.SetWarning, GetHost(dicomStandards)):
/// `299 {host}: "…"`, the host without its port.
#[tokio::test]
async fn multiple_values_warn_with_the_host_as_agent() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let f = instance(
        &st,
        &se,
        &sop,
        &[(tags::STUDY_DESCRIPTION, VR::LO, "Value1\\Value2")],
    );
    let a = az.store("v1", "studies", &[f]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let warning = a.headers["warning"].to_str().expect("text");
    assert_eq!(
        warning,
        "299 127.0.0.1: \"One or more indexed Dicom tag(s) have multiple values, only first value is indexed.\""
    );
}

/// Upstream: StoreTransactionTestsLatest.GivenInstanceWithIndexableTagWithNullPadding_WhenStoreInstance_ThenOkAndNoWarning
/// — `X\0` is stored without warning, its metadata keeps the NUL, and both `Modality=X%00` and
/// `Modality=X` find it.
#[tokio::test]
async fn nul_padding_of_an_indexed_value_is_kept_and_matched() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let f = instance(&st, &se, &sop, &[(tags::MODALITY, VR::CS, "X\u{0}")]);
    let a = az.store("v2", "studies", &[f]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(comments(only_item(&a.json(), "00081199")).is_empty());
    let a = az
        .get_json(
            "v2",
            &format!("studies/{st}/series/{se}/instances/{sop}/metadata"),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        first_str(&a.json()[0], "00080060").as_deref(),
        Some("X\u{0}")
    );
    for q in ["Modality=X%00", "Modality=X"] {
        let a = az
            .get_json("v2", &format!("instances?StudyInstanceUID={st}&{q}"))
            .await;
        assert_eq!(a.status, 200, "{q}: {}", a.text);
        assert_eq!(a.json().as_array().map(Vec::len), Some(1), "{q}");
    }
}

/// Upstream: StoreTransactionTestsLatest.GivenInstanceWithIndexableTagWithNullAsInvalidChar_WhenStoreInstance_ThenExpectDicom100ErrorAndAcceptedStatus
#[tokio::test]
async fn a_nul_inside_an_indexed_value_is_dropped_with_a_warning() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let f = instance(&st, &se, &sop, &[(tags::MODALITY, VR::CS, "X\u{0}X")]);
    let a = az.store("v2", "studies", &[f]).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let item = only_item(&a.json(), "00081199").clone();
    assert!(
        comments(&item)
            .iter()
            .any(|c| c.contains("does not validate VR CS: value contains invalid character")),
        "{item}"
    );
}

/// Upstream: StoreTransactionTests.GivenExistingDataset_WhenStoring_TheServerShouldReturnConflict
/// and GivenSinglePartRequest_WhenStoring_ThenServerShouldReturnOK.
#[tokio::test]
async fn storing_the_same_instance_twice_is_45070() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let f = instance(&st, &se, &sop, &[]);
    let a = az
        .send(
            az.http
                .post(az.url("v1", "studies"))
                .header(ACCEPT, DICOM_JSON)
                .header(CONTENT_TYPE, "application/dicom")
                .body(f.clone()),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.headers[CONTENT_TYPE]
            .to_str()
            .unwrap_or("")
            .starts_with("application/dicom+json")
    );
    assert!(a.json().get("00081198").is_none());
    let a = az.store("v1", "studies", &[f]).await;
    assert_eq!(a.status, 409);
    let failed = only_item(&a.json(), "00081198").clone();
    assert_eq!(first_str(&failed, "00081197").as_deref(), Some("45070"));
}

/// Upstream: StoreTransactionTests.GivenDatasetWithInvalidUid_WhenStoring_TheServerShouldReturnConflict
/// (`abc.123`, `11|`), GivenAnIncorrectAcceptHeader_WhenStoring_TheServerShouldReturnNotAcceptable,
/// GivenAnNonMultipartRequest_WhenStoring_TheServerShouldReturnUnsupportedMediaType and
/// GivenARequestWithInvalidStudyInstanceUID_WhenStoring_TheServerShouldReturnBadRequest.
#[tokio::test]
async fn store_refusals() {
    let az = Azure::start().await;
    for bad in ["abc.123", "11|"] {
        let a = az
            .store("v1", "studies", &[instance(bad, &uid(), &uid(), &[])])
            .await;
        assert_eq!(a.status, 409, "{bad}: {}", a.text);
        let body = a.json();
        assert!(body.get("00081199").is_none());
        let failed = only_item(&body, "00081198");
        assert_eq!(first_str(failed, "00081197").as_deref(), Some("43264"));
        // The UIDs are core query tags, which v1 checks with the minimum validator (UidValidation).
        assert_eq!(
            comments(failed),
            vec!["DICOM100: (0020,000d) - Dicom element 'StudyInstanceUID' failed validation for VR 'UI': DICOM Identifier is invalid. Value length should not exceed the maximum length of 64 characters. Value should contain characters in '0'-'9' and '.'. Each component must start with non-zero number.".to_string()]
        );
    }
    for accept in ["application/dicom", "application/data"] {
        let a = az
            .send(
                az.http
                    .post(az.url("v2", "studies"))
                    .header(ACCEPT, accept)
                    .header(CONTENT_TYPE, "application/dicom")
                    .body(instance(&uid(), &uid(), &uid(), &[])),
            )
            .await;
        assert_eq!(a.status, 406, "{accept}");
    }
    let a = az
        .send(
            az.http
                .post(az.url("v2", "studies"))
                .header(ACCEPT, DICOM_JSON)
                .header(
                    CONTENT_TYPE,
                    r#"multipart/form; type="application/dicom"; boundary=b"#,
                )
                .body("--b--\r\n"),
        )
        .await;
    assert_eq!(a.status, 415);
    let a = az
        .store("v2", &format!("studies/{}", "b".repeat(65)), &[])
        .await;
    assert_eq!(a.status, 400);
}

/// Upstream: StoreTransactionTestsLatest.GivenInstanceWithStudyUIDValidWithNullPadding_WhenStoreInstanceWithPartialValidation_ThenExpectOkAndNoWarnings
#[tokio::test]
async fn a_study_uid_padded_with_nul_matches_the_path() {
    let az = Azure::start().await;
    let (study, series, sop) = ids();
    let f = instance(&format!("{study}\u{0}"), &series, &sop, &[]);
    let a = az.store("v2", &format!("studies/{study}"), &[f]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(comments(only_item(&a.json(), "00081199")).is_empty());
    let a = az
        .get_json(
            "v2",
            &format!("studies/{study}/series/{series}/instances/{sop}/metadata"),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json().as_array().map(Vec::len), Some(1));
}

/// Upstream: StoreTransactionTestsLatest.GivenInstanceWithAnInvalidIndexableAttribute_WhenEnableDropInvalidDicomJsonMetadata_ThenInvalidDataDroppedAndValidDataWritten
#[tokio::test]
async fn v2_drops_an_invalid_attribute_and_keeps_the_valid_ones() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let f = instance(
        &st,
        &se,
        &sop,
        &[
            (tags::STUDY_DATE, VR::DA, "NotAValidStudyDate"),
            (tags::PATIENT_BIRTH_DATE, VR::DA, "20220315"),
        ],
    );
    let a = az.store("v2", "studies", &[f]).await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(
        comments(only_item(&a.json(), "00081199")),
        vec![
            r#"DICOM100: (0008,0020) - Content "NotAValidStudyDate" does not validate VR DA: one of the date values does not match the pattern YYYYMMDD"#
                .to_string()
        ]
    );
    let a = az
        .get_json(
            "v2",
            &format!("studies/{st}/series/{se}/instances/{sop}/metadata"),
        )
        .await;
    let meta = &a.json()[0];
    assert!(meta.get("00080020").is_none(), "{meta}");
    assert_eq!(first_str(meta, "00100030").as_deref(), Some("20220315"));
    let a = az
        .get_json(
            "v2",
            &format!("instances?StudyInstanceUID={st}&PatientBirthDate=20220315"),
        )
        .await;
    assert_eq!(a.json().as_array().map(Vec::len), Some(1), "{}", a.text);
    let a = az
        .get_json("v2", "instances?StudyDate=NotAValidStudyDate")
        .await;
    assert_eq!(a.status, 400);
    assert!(
        a.text.contains("Invalid query: specified Date value 'NotAValidStudyDate' is invalid for attribute 'StudyDate'. Date should be valid and formatted as yyyyMMdd."),
        "{}",
        a.text
    );
}

/// Upstream: StoreDatasetValidator.ValidateRequiredCoreTags (source; the E2E tests check only the
/// failure code): the required attributes are checked in order and the first one missing is the reason;
/// the indexed attributes are still checked after it (v1), each with its own comment.
#[tokio::test]
async fn the_first_missing_required_attribute_is_the_reason() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let f = instance(
        &st,
        &se,
        &sop,
        &[
            (tags::SOP_CLASS_UID, VR::UI, ""),
            (tags::SERIES_INSTANCE_UID, VR::UI, ""),
            (tags::MODALITY, VR::CS, "WAY_TOO_LONG_FOR_A_CS"),
        ],
    );
    let a = az.store("v1", "studies", &[f]).await;
    assert_eq!(a.status, 409, "{}", a.text);
    let failed = only_item(&a.json(), "00081198").clone();
    assert_eq!(
        comments(&failed),
        vec![
            "DICOM100: (0008,0016) - The required tag '(0008,0016)' is missing.".to_string(),
            "DICOM100: (0008,0060) - Dicom element 'Modality' failed validation for VR 'CS': Value length exceeds maximum length of 16.".to_string(),
        ]
    );
}

/// Upstream: StoreTransactionTests.GivenAMultipartRequestWithAnInvalidMultipartSection_WhenStoring_TheServerShouldReturnAccepted,
/// GivenAMultipartRequestWithTypeParameterAndFirstSectionWithoutContentType_WhenStoring_TheServerShouldReturnOK
/// and GivenDatasetWithDuplicateIdentifiers_WhenStoring_TheServerShouldReturnAccepted.
#[tokio::test]
async fn multipart_sections_as_dotnet_sends_them() {
    let az = Azure::start().await;
    let ct = r#"multipart/related; boundary="b"; type="application/dicom""#;
    let post = |body: Vec<u8>, path: String| {
        az.send(
            az.http
                .post(az.url("v2", &path))
                .header(ACCEPT, DICOM_JSON)
                .header(CONTENT_TYPE, ct)
                .body(body),
        )
    };
    // An empty section, then a valid one: 202, the valid one referenced.
    let (st, se, sop) = ids();
    let mut body = b"--b\r\nContent-Type: application/dicom\r\n\r\n\r\n--b\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
    body.extend(instance(&st, &se, &sop, &[]));
    body.extend(b"\r\n--b--\r\n");
    let a = post(body, "studies".into()).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let body_json = a.json();
    let referenced = only_item(&body_json, "00081199");
    assert_eq!(
        first_str(referenced, "00081155").as_deref(),
        Some(sop.as_str())
    );
    assert_eq!(values(&body_json, "00081198").len(), 1);
    // A section without Content-Type (the request's type parameter says what it is): 200.
    let (st, se, sop) = ids();
    let mut body = b"--b\r\n\r\n".to_vec();
    body.extend(instance(&st, &se, &sop, &[]));
    body.extend(b"\r\n--b--\r\n");
    let a = post(body, "studies".into()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // The same file twice in one request: the second is a conflict, the answer 202.
    let (st, se, sop) = ids();
    let f = instance(&st, &se, &sop, &[]);
    let a = az
        .store("v2", &format!("studies/{st}"), &[f.clone(), f])
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let failed = only_item(&a.json(), "00081198").clone();
    assert_eq!(first_str(&failed, "00081197").as_deref(), Some("45070"));
}
