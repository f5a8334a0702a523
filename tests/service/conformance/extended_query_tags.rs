//! Extended query tags: adding them, re-indexing, matching on them, and their refusals in Azure's words.

use super::*;

/// Upstream: ExtendedQueryTagTests.GivenExtendedQueryTag_WhenReindexing_ThenShouldSucceed — two instances
/// stored through v2 with NumberOfFilms (IS) "12" and "03", tags added, re-indexed; `NumberOfFilms=0003`
/// finds the "03" one: IS values compare as integers (SQL Server's long column), and a keyword of the
/// standard's dictionary names the tag as its hex path does.
#[tokio::test]
async fn extended_query_tag_of_vr_is_matches_as_an_integer() {
    let az = Azure::start().await;
    let films = Tag(0x2100, 0x0170);
    let copies = Tag(0x2000, 0x0010);
    let (st1, se1, sop1) = ids();
    let (st2, se2, sop2) = ids();
    let one = instance(
        &st1,
        &se1,
        &sop1,
        &[
            (tags::PATIENT_SEX, VR::CS, "M"),
            (films, VR::IS, "12"),
            (copies, VR::IS, "12"),
        ],
    );
    let two = instance(
        &st2,
        &se2,
        &sop2,
        &[
            (tags::PATIENT_SEX, VR::CS, "O"),
            (films, VR::IS, "03"),
            (copies, VR::IS, "03"),
        ],
    );
    for file in [one, two] {
        let a = az.store("v2", "studies", &[file]).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    az.add_tags(r#"[{"Path":"00100040","VR":"CS","Level":"Study"},{"Path":"21000170","VR":"IS","Level":"Study"}]"#)
        .await;
    // The same over NumberOfCopies (2000,0010), an IS of the instance level, named by its keyword.
    az.add_tags(r#"[{"Path":"NumberOfCopies","Level":"Instance"}]"#)
        .await;
    for path in ["00100040", "21000170", "20000010"] {
        let a = az
            .get_json("v2", &format!("extendedquerytags/{path}"))
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let tag = a.json();
        assert_eq!(tag["queryStatus"], "enabled", "{tag}");
        assert!(tag.get("errors").is_none(), "{tag}");
    }
    for query in [
        "21000170=0003",
        "21000170=03",
        "21000170=3",
        "NumberOfFilms=3",
        "NumberOfFilms=0003",
        "20000010=0003",
        "20000010=03",
        "NumberOfCopies=3",
    ] {
        let a = az.get_json("v2", &format!("instances?{query}")).await;
        assert_eq!(a.status, 200, "{query}: {}", a.text);
        let found = a.json();
        let sops: Vec<String> = found
            .as_array()
            .map(|r| r.iter().filter_map(|i| first_str(i, "00080018")).collect())
            .unwrap_or_default();
        assert_eq!(sops, vec![sop2.clone()], "{query}");
    }
    let a = az.get_json("v2", "studies?PatientSex=M").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        first_str(&a.json()[0], "0020000D").as_deref(),
        Some(st1.as_str())
    );
    // A keyword of the dictionary that is no query tag: Azure's UnsupportedSearchParameter, word for word.
    let a = az.get_json("v2", "instances?NumberOfStages=3").await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.text,
        "Invalid query: AttributeId NumberOfStages is not queryable.  If the parameter is an attribute keyword, check the casing as they are case-sensitive. The conformance statement has a list of supported query parameters, attributes and the levels."
    );
}

/// Upstream: ExtendedQueryTagTests.GivenInvalidISAndIndexed_WhenStoring_ThenServerShouldReturnConflict
/// — an indexed IS that is no integer fails v1 and warns in v2.
#[tokio::test]
async fn an_invalid_value_of_an_extended_query_tag() {
    let az = Azure::start().await;
    az.add_tags(r#"[{"Path":"00082122","Level":"Instance"}]"#)
        .await;
    let (st, se, sop) = ids();
    let f = instance(
        &st,
        &se,
        &sop,
        &[(tags::STAGE_NUMBER, VR::IS, "InvalidISValue")],
    );
    let a = az.store("v1", "studies", std::slice::from_ref(&f)).await;
    assert_eq!(a.status, 409, "{}", a.text);
    let failed = only_item(&a.json(), "00081198").clone();
    assert_eq!(
        comments(&failed),
        vec!["DICOM100: (0008,2122) - Dicom element 'StageNumber' failed validation for VR 'IS': Value cannot be parsed as a valid integer string.".to_string()]
    );
    let a = az.store("v2", "studies", &[f]).await;
    assert_eq!(a.status, 202, "{}", a.text);
}

/// Upstream: ExtendedQueryTagTests.GivenMissingPropertyInRequestBody_WhenCallingPostAsync_ThenShouldThrowException
/// and GivenInvalidTagLevelInRequestBody_WhenCallingPostAync_ThenShouldThrowException.
#[tokio::test]
async fn extended_query_tag_requests_refused_in_azures_words() {
    let az = Azure::start().await;
    let post = |body: &'static str| {
        az.send(
            az.http
                .post(az.url("v2", "extendedquerytags"))
                .header(CONTENT_TYPE, "application/json")
                .body(body),
        )
    };
    for (body, missing) in [
        (r#"[{"Path":"00100040"}]"#, "Level"),
        (r#"[{"Path":"","Level":"Study"}]"#, "Path"),
    ] {
        let a = post(body).await;
        assert_eq!(a.status, 400, "{body}");
        assert!(
            a.text.contains(&format!("The field '[0].{missing}' in request body is invalid: The Dicom Tag Property {missing} must be specified and must not be null, empty or whitespace")),
            "{body}: {}",
            a.text
        );
    }
    let a = post(r#"[{"Path":"00100040","Level":"Studys"}]"#).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.text,
        "The field '$[0].Level' in request body is invalid: Expected value 'Studys' to be one of the following values: ['Instance', 'Series', 'Study']"
    );
}

/// Upstream: ExtendedQueryTagTests.GivenExtendedQueryTagWithErrors_WhenReindexing_ThenShouldSucceedWithErrors
/// — values that do not validate are errors of the tag, whose search is then disabled; enabled again, a
/// search answers with the `erroneous-dicom-attributes` header. A v2 store drops the invalid value, so it
/// is no error.
#[tokio::test]
async fn an_extended_query_tag_over_invalid_values() {
    let az = Azure::start().await;
    let mut sops = Vec::new();
    for (version, age) in [("v1", "foo"), ("v1", "bar"), ("v1", "053Y"), ("v2", "baz")] {
        let (st, se, sop) = ids();
        let f = instance(&st, &se, &sop, &[(tags::PATIENT_AGE, VR::AS, age)]);
        let a = az.store(version, "studies", &[f]).await;
        assert!(a.status == 200 || a.status == 202, "{age}: {}", a.text);
        sops.push(sop);
    }
    az.add_tags(r#"[{"Path":"00101010","VR":"AS","Level":"Instance"}]"#)
        .await;
    let a = az.get_json("v2", "extendedquerytags/00101010").await;
    let tag = a.json();
    assert_eq!(tag["queryStatus"], "disabled", "{tag}");
    assert_eq!(tag["errors"]["count"], 2, "{tag}");
    let a = az.get_json("v2", "extendedquerytags/00101010/errors").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut wrong: Vec<String> = a
        .json()
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["sopInstanceUid"].as_str().map(str::to_string))
        .collect();
    wrong.sort();
    let mut want = vec![sops[0].clone(), sops[1].clone()];
    want.sort();
    assert_eq!(wrong, want);
    assert_eq!(
        az.get_json("v2", "instances?PatientAge=053Y").await.status,
        400
    );
    let a = az
        .send(
            az.http
                .patch(az.url("v2", "extendedquerytags/00101010"))
                .header(CONTENT_TYPE, "application/json")
                .body(r#"{"QueryStatus":"Enabled"}"#),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["queryStatus"], "enabled");
    let a = az.get_json("v2", "instances?00101010=053Y").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.headers["erroneous-dicom-attributes"], "00101010");
    assert_eq!(
        first_str(&a.json()[0], "00080018").as_deref(),
        Some(sops[2].as_str())
    );
}
