//! QIDO-RS: the study's latest attributes, the default attribute sets of v1 and v2, matching (padded
//! UIDs, person names), and query errors in Azure's words.

use super::*;

/// The PatientID a study search shows for a study (`None`: the attribute has no value).
async fn study_patient_id(az: &Azure, study: &str) -> Option<String> {
    let a = az
        .get_json("v2", &format!("studies?StudyInstanceUID={study}"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let found = a.json();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    first_str(&found[0], "00100020")
}

/// Upstream: StoreTransactionTestsLatest.GivenStoringMultipleInstanceInStudy_WhenInitialInstanceHasNullPatientId_ThenExpectPatientIdCorrectlyUpdated
/// — an empty PatientID is stored with the missing-tag warning; a later instance's `123` becomes the
/// study's; a still later empty one leaves it (AddInstanceV6: "latest wins", an empty value does not).
#[tokio::test]
async fn the_study_takes_the_latest_patient_id_given() {
    let az = Azure::start().await;
    let study = uid();
    let missing = "DICOM100: (0010,0020) - The required tag '(0010,0020)' is missing.";
    let empty_id = || instance(&study, &uid(), &uid(), &[(tags::PATIENT_ID, VR::LO, " ")]);

    let a = az.store("v2", "studies", &[empty_id()]).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let item = only_item(&a.json(), "00081199").clone();
    assert!(
        comments(&item).iter().any(|c| c.contains(missing)),
        "{item}"
    );
    assert_eq!(study_patient_id(&az, &study).await, None);

    let with_id = instance(&study, &uid(), &uid(), &[(tags::PATIENT_ID, VR::LO, "123")]);
    let a = az.store("v2", "studies", &[with_id]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(comments(only_item(&a.json(), "00081199")).is_empty());
    assert_eq!(study_patient_id(&az, &study).await.as_deref(), Some("123"));

    let a = az.store("v2", "studies", &[empty_id()]).await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(study_patient_id(&az, &study).await.as_deref(), Some("123"));
    // The study is found by its PatientID, with all three instances (a study attribute filters studies).
    let a = az.get_json("v2", "studies?PatientID=123").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = az
        .get_json(
            "v2",
            &format!("instances?PatientID=123&StudyInstanceUID={study}"),
        )
        .await;
    assert_eq!(a.json().as_array().map(Vec::len), Some(3), "{}", a.text);
}

/// Upstream: AddInstanceV6.sql's study update ("latest wins", `ISNULL`), seen through
/// QueryTransactionTests.GivenSearchRequest_AllStudyLevel_MatchResult: a study whose later instance
/// names another patient is found by the new name and no longer by the old one.
#[tokio::test]
async fn a_study_attribute_matches_on_the_studys_latest_value() {
    let az = Azure::start().await;
    let study = uid();
    let first = instance(
        &study,
        &uid(),
        &uid(),
        &[(tags::ACCESSION_NUMBER, VR::SH, "OLD1")],
    );
    let later = instance(
        &study,
        &uid(),
        &uid(),
        &[(tags::ACCESSION_NUMBER, VR::SH, "NEW2")],
    );
    for f in [first, later] {
        assert_eq!(az.store("v2", "studies", &[f]).await.status, 200);
    }
    assert_eq!(
        az.get_json("v2", "studies?AccessionNumber=OLD1")
            .await
            .status,
        204
    );
    let a = az.get_json("v2", "studies?AccessionNumber=NEW2").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(first_str(&a.json()[0], "00080050").as_deref(), Some("NEW2"));
}

/// Upstream: QueryResponseBuilder.DefaultStudyTags / DefaultSeriesTags / DefaultInstancesTags and the
/// "all" sets (used by QueryTransactionV1Tests' GivenSearchRequest_All*Level_MatchResult): no
/// ModalitiesInStudy or related-instance counts unless asked;
/// QueryTransactionTests.GivenSearchRequest_AllStudyComputedColumns_MatchResult: asked, it lists every
/// modality of the study, and NumberOfStudyRelatedInstances counts its instances.
#[tokio::test]
async fn v1_results_carry_modalities_in_study_only_when_asked() {
    let az = Azure::start().await;
    let study = uid();
    for modality in ["CT", "CT", "MR"] {
        let f = instance(
            &study,
            &uid(),
            &uid(),
            &[(tags::MODALITY, VR::CS, modality)],
        );
        assert_eq!(az.store("v1", "studies", &[f]).await.status, 200);
    }
    for path in [
        format!("studies?StudyInstanceUID={study}"),
        format!("series?StudyInstanceUID={study}"),
        format!("instances?StudyInstanceUID={study}"),
    ] {
        let a = az.get_json("v1", &path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        for result in a.json().as_array().expect("array") {
            assert!(result.get("00080061").is_none(), "{path}: {result}");
            assert!(result.get("00100020").is_some(), "{path}: {result}");
        }
    }
    // `includefield=all` adds upstream's "all" sets (QueryResponseBuilder.AllStudyTags, AllSeriesTags):
    // the computed attributes are not in them.
    for level in ["studies", "series"] {
        let a = az
            .get_json(
                "v1",
                &format!("{level}?StudyInstanceUID={study}&includefield=all"),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        for r in a.json().as_array().expect("array") {
            for computed in ["00080061", "00201208", "00201209"] {
                assert!(r.get(computed).is_none(), "{level}: {computed} in {r}");
            }
        }
    }
    let a = az
        .get_json(
            "v1",
            "studies?ModalitiesInStudy=CT&includefield=NumberOfStudyRelatedInstances",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let r = &a.json()[0];
    let mods: Vec<&str> = values(r, "00080061")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(mods, ["CT", "MR"]);
    assert_eq!(first_str(r, "00201208").as_deref(), Some("3"));
}

/// Upstream: QueryTransactionTests.GivenSearchRequest_WithUnsupportedTag_ReturnBadRequest (message
/// compared whole) and QueryParser's UnknownQueryParameter.
#[tokio::test]
async fn query_errors_in_azures_words() {
    let az = Azure::start().await;
    for version in ["v1", "v2"] {
        let a = az.get_json(version, "studies?Modality=CT").await;
        assert_eq!(a.status, 400);
        assert_eq!(
            a.text,
            "Invalid query: AttributeId Modality is not queryable.  If the parameter is an attribute keyword, check the casing as they are case-sensitive. The conformance statement has a list of supported query parameters, attributes and the levels."
        );
        let a = az.get_json(version, "studies?patientname=x").await;
        assert_eq!(a.status, 400);
        assert_eq!(
            a.text,
            "Invalid query: unknown query parameter 'patientname'. If the parameter is an attribute keyword, check the casing as they are case-sensitive. The conformance statement has a list of supported query parameters, attributes and the levels."
        );
    }
}

/// Upstream: QueryTransactionTests.GivenSearchRequest_StudySeriesLevel_MatchResult and
/// GivenSearchRequest_WithValidParamsAndNoMatchingResult_ReturnNoContent.
#[tokio::test]
async fn series_of_a_study_by_modality() {
    let az = Azure::start().await;
    let study = uid();
    let mri = uid();
    for (series, modality) in [(mri.as_str(), "MRI"), (uid().as_str(), "CT")] {
        let f = instance(
            &study,
            series,
            &uid(),
            &[(tags::MODALITY, VR::CS, modality)],
        );
        assert_eq!(az.store("v1", "studies", &[f]).await.status, 200);
    }
    let a = az
        .get_json("v1", &format!("studies/{study}/series?Modality=MRI"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let found = a.json();
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    assert_eq!(
        first_str(&found[0], "0020000E").as_deref(),
        Some(mri.as_str())
    );
    assert_eq!(first_str(&found[0], "00080060").as_deref(), Some("MRI"));
    assert_eq!(
        az.get_json("v1", "studies?StudyDate=20200101").await.status,
        204
    );
}

/// Upstream: RetrieveTransactionResourceTests.GivenInstanceWithPaddedStudyInstanceUID_WhenRetrieveInstance_ThenServerShouldReturnExpectedContent
/// (its four InlineData: query and stored padding) — the instance is found whatever the padding, and
/// comes back as stored.
#[tokio::test]
async fn an_instance_stored_or_asked_with_a_padded_study_uid_is_found() {
    let az = Azure::start().await;
    for (query_pad, save_pad) in [(" ", " "), ("", " "), (" ", ""), ("     ", " ")] {
        let (study, series, sop) = ids();
        let saved = format!("{study}{save_pad}");
        let f = instance(&saved, &series, &sop, &[]);
        assert_eq!(az.store("v2", "studies", &[f]).await.status, 200);
        let queried = format!("{study}{query_pad}").replace(' ', "%20");
        let url = az.url(
            "v2",
            &format!("studies/{queried}/series/{series}/instances/{sop}"),
        );
        let (status, _, body) = az
            .get_bytes(&url, "application/dicom; transfer-syntax=*")
            .await;
        assert_eq!(status, 200, "{query_pad:?}/{save_pad:?}");
        let file = dicom_object::OpenFileOptions::new()
            .from_reader(&body[128..])
            .expect("a DICOM file");
        let got = file
            .element(tags::STUDY_INSTANCE_UID)
            .expect("StudyInstanceUID")
            .to_str()
            .expect("text")
            .to_string();
        assert_eq!(got.trim_end(), study, "{query_pad:?}/{save_pad:?}");
    }
}

/// Upstream: QueryTransactionLatestTests (QueryTransactionTests' GivenSearchRequest_AllStudyLevel_MatchResult,
/// _AllSeriesLevel_, _AllInstancesLevel_, _StudyInstancesLevel_, _StudySeriesLevel_ run through v2, checked
/// by ValidationHelpers.ValidateResponseDatasetV2): each result is the stored attributes of v2's default
/// sets and the filters, exactly — nothing more, nothing less.
#[tokio::test]
async fn v2_results_are_exactly_the_default_sets() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let f = instance(
        &st,
        &se,
        &sop,
        &[
            (tags::STUDY_DATE, VR::DA, "20190101"),
            (tags::MODALITY, VR::CS, "MRI"),
        ],
    );
    assert_eq!(az.store("v2", "studies", &[f]).await.status, 200);
    let meta = az
        .get_json(
            "v2",
            &format!("studies/{st}/series/{se}/instances/{sop}/metadata"),
        )
        .await
        .json()[0]
        .clone();
    let study = ["0020000D", "00080020", "00100010", "00100020"];
    let series = ["0020000E", "00080060"];
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("studies?StudyDate=20190101".into(), study.to_vec()),
        (
            "series?Modality=MRI".into(),
            [&study[..], &series[..]].concat(),
        ),
        (
            "instances?Modality=MRI".into(),
            [&study[..], &series[..], &["00080018"]].concat(),
        ),
        (
            format!("studies/{st}/instances?Modality=MRI"),
            [&series[..], &["00080018", "0020000D"]].concat(),
        ),
        (
            format!("studies/{st}/series?Modality=MRI"),
            [&series[..], &["0020000D"]].concat(),
        ),
    ];
    for (query, keys) in cases {
        let a = az.get_json("v2", &query).await;
        assert_eq!(a.status, 200, "{query}: {}", a.text);
        let found = a.json();
        assert_eq!(found.as_array().map(Vec::len), Some(1), "{query}: {found}");
        let expected: serde_json::Map<String, Value> = keys
            .iter()
            .filter_map(|k| meta.get(*k).map(|v| ((*k).to_string(), v.clone())))
            .collect();
        assert_eq!(
            expected.len(),
            keys.len(),
            "{query}: the instance has them all"
        );
        assert_eq!(found[0], Value::Object(expected), "{query}");
    }
}

/// Upstream: QueryTransactionTests.GivenSearchRequest_PatientNameFuzzyMatch_MatchResult,
/// GivenSearchRequest_ReferringPhysicianNameFuzzyMatch_MatchResult and
/// GivenSearchRequest_AllStudyLevelOnPatientName_MatchIsCaseIncensitiveAndAccentIncensitive.
#[tokio::test]
async fn person_names_fuzzy_and_without_case_or_accents() {
    let az = Azure::start().await;
    let part = "QWZXKTP";
    let (a_study, b_study, c_study) = (uid(), uid(), uid());
    for (study, tag, name) in [
        (
            &a_study,
            tags::PATIENT_NAME,
            format!("Jonathan^{part}^Stone Hall^^"),
        ),
        (
            &b_study,
            tags::PATIENT_NAME,
            format!("Jon^{part}^StoneHall"),
        ),
        (
            &c_study,
            tags::REFERRING_PHYSICIAN_NAME,
            format!("dr^{part}^Stone Hall^^"),
        ),
    ] {
        let f = instance(study, &uid(), &uid(), &[(tag, VR::PN, name.as_str())]);
        assert_eq!(az.store("v1", "studies", &[f]).await.status, 200);
    }
    let studies = |found: &Value| -> Vec<String> {
        let mut v: Vec<String> = found
            .as_array()
            .map(|r| r.iter().filter_map(|s| first_str(s, "0020000D")).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let a = az
        .get_json(
            "v1",
            &format!("studies?PatientName={part}&FuzzyMatching=true"),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut want = vec![a_study.clone(), b_study.clone()];
    want.sort();
    assert_eq!(studies(&a.json()), want);
    let a = az
        .get_json(
            "v1",
            &format!("studies?ReferringPhysicianName={part}&FuzzyMatching=true"),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(studies(&a.json()), vec![c_study.clone()]);
    assert_eq!(
        first_str(&a.json()[0], "00080090").as_deref(),
        Some(format!("dr^{part}^Stone Hall^^").as_str())
    );

    let d_study = uid();
    let f = instance(
        &d_study,
        &uid(),
        &uid(),
        &[
            (tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
            (tags::PATIENT_NAME, VR::PN, "Hall^ABCDEFG^Tá"),
        ],
    );
    assert_eq!(az.store("v1", "studies", &[f]).await.status, 200);
    let a = az
        .get_json("v1", "studies?PatientName=hall^abcdefg^ta")
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(studies(&a.json()), vec![d_study]);
    assert_eq!(
        first_str(&a.json()[0], "00100010").as_deref(),
        Some("Hall^ABCDEFG^Tá")
    );
}
