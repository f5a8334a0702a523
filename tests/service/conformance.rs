//! Conformance with Azure's DICOM service, ported from the end-to-end tests of Microsoft's DICOM server
//! (github.com/microsoft/dicom-server, commit eeefbe4, `test/Microsoft.Health.Dicom.Web.Tests.E2E`). Each
//! test names the upstream class and method it follows; each runs against a real `dicomlab serve` process
//! on a loopback port. Where upstream builds files with fo-dicom, these build them with dicom-rs
//! (`common::instance`): the same attributes, the same bytes where it matters (NUL and space padding).

use dicomlab_testkit as common;
use dicomlab_testkit::served;

use common::{DICOM_JSON, first_str, instance, split_multipart, uid, values};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde_json::Value;
use served::Served;

/// A `dicomlab serve` process, a token for it, and requests as upstream's DicomWebClient sends them.
struct Azure {
    served: Served,
    token: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// What a request got back.
struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Azure {
    async fn start() -> Azure {
        let dir = tempfile::tempdir().expect("tmp");
        let served = Served::start(&dir.path().join("data"), &[]);
        let token = served.token().await;
        Azure {
            served,
            token,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// `{origin}/{version}/{path}`
    fn url(&self, version: &str, path: &str) -> String {
        format!("{}/{version}/{}", self.served.origin, path)
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Answer {
        let r = r.bearer_auth(&self.token).send().await.expect("send");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        Answer {
            status,
            headers,
            text,
        }
    }

    /// STOW of files as multipart/related to `{version}/{path}`.
    async fn store(&self, version: &str, path: &str, files: &[Vec<u8>]) -> Answer {
        let (ct, body) = common::multipart_related(files);
        self.send(
            self.http
                .post(self.url(version, path))
                .header(ACCEPT, DICOM_JSON)
                .header(CONTENT_TYPE, ct)
                .body(body),
        )
        .await
    }

    async fn get_json(&self, version: &str, path: &str) -> Answer {
        self.send(
            self.http
                .get(self.url(version, path))
                .header(ACCEPT, DICOM_JSON),
        )
        .await
    }

    async fn get_bytes(&self, url: &str, accept: &str) -> (u16, String, Vec<u8>) {
        let r = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .header(ACCEPT, accept)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, ct, r.bytes().await.expect("body").to_vec())
    }

    async fn add_tags(&self, body: &str) {
        let a = self
            .send(
                self.http
                    .post(self.url("v2", "extendedquerytags"))
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string()),
            )
            .await;
        assert_eq!(a.status, 202, "{}", a.text);
        let href = a.json()["href"].as_str().expect("href").to_string();
        for _ in 0..400 {
            let op = self.send(self.http.get(&href)).await;
            if op.status == 200 {
                assert_eq!(op.json()["status"], "succeeded", "{}", op.text);
                return;
            }
            assert_eq!(op.status, 202, "{}", op.text);
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("re-index did not finish");
    }
}

/// A fresh study, series and instance.
fn ids() -> (String, String, String) {
    (uid(), uid(), uid())
}

/// The one item of a sequence element of a STOW answer.
fn only_item<'a>(body: &'a Value, sequence: &str) -> &'a Value {
    let items = values(body, sequence);
    assert_eq!(items.len(), 1, "{body}");
    &items[0]
}

/// The ErrorComments of a STOW item's FailedAttributesSequence (0074,1048).
fn comments(item: &Value) -> Vec<String> {
    values(item, "00741048")
        .iter()
        .filter_map(|c| first_str(c, "00000902"))
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Extended query tags (issue 17, item 2)
// ---------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------
// Study UID mismatch (item 3)
// ---------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------
// The study's PatientID (item 4)
// ---------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------
// v1 default attributes (item 5)
// ---------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------
// PatientID validation (item 6)
// ---------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------
// Edges (item 7)
// ---------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------
// Ports of upstream cases the practice service already passed
// ---------------------------------------------------------------------------------------------------

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

/// Upstream: DeleteTests.GivenMultipleInstancesInSeries_WhenDeletingInstance_TheServerShouldReturnNoContentAndOnlyTargetInstanceIsDeleted
/// and GivenAnExistingInstance_WhenDeletingInstanceSecondTime_TheServerShouldReturnNotFound.
#[tokio::test]
async fn deleting_one_instance_leaves_its_siblings() {
    let az = Azure::start().await;
    let (st, se, sop1) = ids();
    let sop2 = uid();
    let a = az
        .store(
            "v1",
            "studies",
            &[
                instance(&st, &se, &sop1, &[]),
                instance(&st, &se, &sop2, &[]),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let one = az.url("v1", &format!("studies/{st}/series/{se}/instances/{sop1}"));
    assert_eq!(az.send(az.http.delete(&one)).await.status, 204);
    assert_eq!(az.send(az.http.delete(&one)).await.status, 404);
    let a = az
        .get_json(
            "v1",
            &format!("studies/{st}/series/{se}/instances/{sop2}/metadata"),
        )
        .await;
    assert_eq!(a.status, 200);
    let a = az
        .get_json(
            "v1",
            &format!("studies/{st}/series/{se}/instances/{sop1}/metadata"),
        )
        .await;
    assert_eq!(a.status, 404);
}

/// Upstream: DeleteTests.GivenABadStudyInstanceUid_WhenDeleting_TheServerShouldReturnBackRequest,
/// GivenABadSeriesInstanceUid_… and GivenABadSopInstanceUid_… (their InlineData).
#[tokio::test]
async fn deleting_by_a_bad_uid_is_400() {
    let az = Azure::start().await;
    for path in [
        "studies/notAStudyInstanceUid",
        "studies/notAStudyInstanceUid/series/notASeriesInstanceUid",
        "studies/2.25.106797093114774953545959916858814568441/series/notASeriesInstanceUid",
        "studies/notAStudyInstanceUid/series/notASeriesInstanceUid/instances/notASopInstanceUid",
        "studies/2.25.106797093114774953545959916858814568441/series/2.25.106797093114774953545959916858814568442/instances/notASopInstanceUid",
    ] {
        let a = az.send(az.http.delete(az.url("v1", path))).await;
        assert_eq!(a.status, 400, "{path}: {}", a.text);
    }
}

/// Upstream: ChangeFeedTests.GivenADeletedAndReplacedInstance_WhenRetrievingChangeFeed_ThenTheExpectedInstanceAreReturned
/// — create, delete, create again: `latest` says Create/Current (with metadata), Delete/Deleted (without),
/// Create/Current; the whole feed then says Replaced, Replaced, Current.
#[tokio::test]
async fn change_feed_after_create_delete_create() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let f = instance(&st, &se, &sop, &[]);
    let latest = |action: &'static str, state: &'static str| {
        let az = &az;
        let sop = &sop;
        async move {
            let a = az
                .send(az.http.get(az.url("v2", "changefeed/latest")))
                .await;
            assert_eq!(a.status, 200, "{}", a.text);
            let e = a.json();
            assert_eq!(e["sopInstanceUid"], sop.as_str(), "{e}");
            assert_eq!(
                (e["action"].as_str(), e["state"].as_str()),
                (Some(action), Some(state)),
                "{e}"
            );
            assert_eq!(e.get("metadata").is_some(), state != "Deleted", "{e}");
        }
    };
    assert_eq!(
        az.store("v2", "studies", std::slice::from_ref(&f))
            .await
            .status,
        200
    );
    latest("Create", "Current").await;
    let path = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop}"));
    assert_eq!(az.send(az.http.delete(&path)).await.status, 204);
    latest("Delete", "Deleted").await;
    assert_eq!(az.store("v2", "studies", &[f]).await.status, 200);
    latest("Create", "Current").await;
    let a = az.send(az.http.get(az.url("v2", "changefeed"))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let feed = a.json();
    let states: Vec<&str> = feed
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["sopInstanceUid"] == sop.as_str())
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(states, ["Replaced", "Replaced", "Current"], "{feed}");
}

/// Upstream: ChangeFeedTests.GivenAnInvalidParameter_WhenRetrievingChangeFeed_ThenBadRequestReturned,
/// GivenAnInvalidV1Limit_…, GivenAnInvalidV2Limit_… and GivenAnInvalidParameter_WhenRetrievingChangeFeedLatest_…
#[tokio::test]
async fn change_feed_refuses_bad_parameters() {
    let az = Azure::start().await;
    for (limit, offset, include) in [
        ("-1", "0", "true"),
        ("0", "0", "true"),
        ("blah", "0", "true"),
        ("1", "-1", "true"),
        ("1", "92233720368547758070", "true"),
        ("1", "blah", "true"),
        ("1", "0", "0"),
        ("1", "0", "true-ish"),
        ("1", "0", "boolean"),
    ] {
        let q = format!("changefeed?limit={limit}&offset={offset}&includeMetadata={include}");
        let a = az.send(az.http.get(az.url("v2", &q))).await;
        assert_eq!(a.status, 400, "{q}: {}", a.text);
    }
    for (version, q) in [
        ("v1", "changefeed?limit=101"),
        ("v2", "changefeed?limit=201"),
        ("v2", "changefeed/latest?includeMetadata=asdf"),
    ] {
        let a = az.send(az.http.get(az.url(version, q))).await;
        assert_eq!(a.status, 400, "{version} {q}: {}", a.text);
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

// ---------------------------------------------------------------------------------------------------
// Transcoding on retrieve (issue 17, item 1)
// ---------------------------------------------------------------------------------------------------

const JPEG2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const UNSUPPORTED_TRANSCODING: &str = "The specified transcoding is not supported.";

/// An instance with a real image: `frames` frames of `rows`×`cols`, 8 or 16 bits allocated (`stored` of
/// them used), grey; the pixels as they are in the file.
fn image_instance(
    ids: (&str, &str, &str),
    (rows, cols, frames): (u16, u16, u32),
    (allocated, stored): (u16, u16),
    transfer_syntax: &str,
) -> (Vec<u8>, Vec<u8>) {
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, Length};
    let samples = usize::from(rows) * usize::from(cols) * frames as usize;
    let pixels: Vec<u8> = if allocated == 16 {
        (0..samples)
            .flat_map(|i| ((i * 37 % (1 << stored)) as u16).to_le_bytes())
            .collect()
    } else {
        (0..samples).map(|i| (i * 7 % 251) as u8).collect()
    };
    let base = instance(ids.0, ids.1, ids.2, &[]);
    let file = dicom_object::OpenFileOptions::new()
        .from_reader(&base[128..])
        .expect("parse");
    let mut obj = file.into_inner();
    let us = |v: u16| PrimitiveValue::from(v);
    obj.put(DataElement::new(tags::ROWS, VR::US, us(rows)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, us(cols)));
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        us(allocated),
    ));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, us(stored)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, us(stored - 1)));
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from(frames.to_string()),
    ));
    obj.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        if allocated == 16 { VR::OW } else { VR::OB },
        Length::defined(pixels.len() as u32),
        PrimitiveValue::U8(pixels.clone().into()),
    ));
    let meta = dicom_object::FileMetaTableBuilder::new()
        .transfer_syntax(transfer_syntax)
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
        .media_storage_sop_instance_uid(ids.2);
    let mut out = Vec::new();
    obj.with_meta(meta)
        .expect("meta")
        .write_all(&mut out)
        .expect("write");
    (out, pixels)
}

/// A Part 10 file from an answer's bytes.
fn part10(bytes: &[u8]) -> dicom_object::DefaultDicomObject {
    assert_eq!(&bytes[128..132], b"DICM", "a Part 10 file");
    dicom_object::OpenFileOptions::new()
        .from_reader(&bytes[128..])
        .expect("a Part 10 file")
}

/// Decodes a JPEG 2000 codestream with dicom-rs (its openjp2 decoder), as the frame of an 8-bit or
/// 16-bit grey image of `rows`×`cols`.
fn decode_j2k(
    codestream: Vec<u8>,
    rows: u16,
    cols: u16,
    (allocated, stored): (u16, u16),
) -> Vec<u8> {
    use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
    use dicom_core::{DataElement, Length};
    use dicom_pixeldata::PixelDecoder;
    let mut obj = dicom_object::InMemDicomObject::new_empty();
    let us = |v: u16| PrimitiveValue::from(v);
    obj.put(DataElement::new(tags::ROWS, VR::US, us(rows)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, us(cols)));
    obj.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, us(1)));
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        us(allocated),
    ));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, us(stored)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, us(stored - 1)));
    obj.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, us(0)));
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from("MONOCHROME2"),
    ));
    obj.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        Length::UNDEFINED,
        PixelFragmentSequence::new(Vec::<u32>::new(), vec![codestream]),
    ));
    let sop = uid();
    let file = obj
        .with_meta(
            dicom_object::FileMetaTableBuilder::new()
                .transfer_syntax(JPEG2000_LOSSLESS)
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
                .media_storage_sop_instance_uid(sop.as_str()),
        )
        .expect("meta");
    file.decode_pixel_data().expect("decode").into_data()
}

/// Upstream: RetrieveTransactionResourceTests.GivenSinglePartAcceptHeader_WhenRetrieveInstance_ThenServerShouldReturnExpectedContent
/// (FromExplicitVRLittleEndianToJPEG2000Lossless with "1.2.840.10008.1.2.4.90", then
/// FromJPEG2000LosslessToExplicitVRLittleEndian with null and "1.2.840.10008.1.2.1") and
/// GivenMultipartAcceptHeader_WhenRetrieveInstance_ThenServerShouldReturnExpectedContent — upstream
/// compares with files fo-dicom encoded; here the answer is a Part 10 file in the syntax asked for whose
/// pixels decode (with dicom-rs) to the stored ones, bit for bit.
#[tokio::test]
async fn an_instance_is_transcoded_to_jpeg_2000_lossless_and_back() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let (f, pixels) = image_instance((&st, &se, &sop), (48, 40, 2), (16, 12), EXPLICIT_LE);
    assert_eq!(az.store("v2", "studies", &[f]).await.status, 200);
    let url = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop}"));
    let (status, ct, body) = az
        .get_bytes(
            &url,
            &format!("application/dicom; transfer-syntax={JPEG2000_LOSSLESS}"),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        ct,
        format!("application/dicom; transfer-syntax={JPEG2000_LOSSLESS}")
    );
    let j2k = part10(&body);
    assert_eq!(j2k.meta().transfer_syntax(), JPEG2000_LOSSLESS);
    assert_eq!(
        j2k.element(tags::SOP_INSTANCE_UID)
            .expect("sop")
            .to_str()
            .expect("str")
            .trim_end_matches('\0'),
        sop
    );
    {
        use dicom_pixeldata::PixelDecoder;
        assert_eq!(
            j2k.decode_pixel_data().expect("decode").data(),
            pixels.as_slice(),
            "both frames decode to the stored pixels"
        );
    }
    // Multipart: one part, the same file.
    let (status, ct, multi) = az
        .get_bytes(
            &url,
            &format!(
                r#"multipart/related; type="application/dicom"; transfer-syntax={JPEG2000_LOSSLESS}"#
            ),
        )
        .await;
    assert_eq!(status, 200);
    let parts = split_multipart(&ct, &multi);
    assert_eq!(parts.len(), 1);
    assert!(parts[0].0.contains(JPEG2000_LOSSLESS), "{}", parts[0].0);
    assert_eq!(
        part10(&parts[0].1).meta().transfer_syntax(),
        JPEG2000_LOSSLESS
    );

    // The JPEG 2000 file, stored as a new instance, comes back as Explicit VR Little Endian (asked for,
    // and by default), its frames too.
    let sop2 = uid();
    let mut obj = j2k;
    obj.put(dicom_core::DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        dicom_core::value::PrimitiveValue::from(sop2.as_str()),
    ));
    obj.update_meta(|m| m.media_storage_sop_instance_uid = sop2.clone());
    let mut stored = Vec::new();
    obj.write_all(&mut stored).expect("write");
    let a = az.store("v2", "studies", &[stored]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url2 = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop2}"));
    for accept in [
        "application/dicom".to_string(),
        format!("application/dicom; transfer-syntax={}", EXPLICIT_LE),
    ] {
        let (status, ct, body) = az.get_bytes(&url2, &accept).await;
        assert_eq!(status, 200, "{accept}: {}", String::from_utf8_lossy(&body));
        assert!(ct.ends_with(EXPLICIT_LE), "{ct}");
        let ele = part10(&body);
        assert_eq!(ele.meta().transfer_syntax(), EXPLICIT_LE);
        let native = ele
            .element(tags::PIXEL_DATA)
            .expect("pixels")
            .to_bytes()
            .expect("bytes")
            .to_vec();
        assert_eq!(native, pixels, "{accept}");
    }
    let (status, _, frame) = az
        .get_bytes(&format!("{url2}/frames/2"), "application/octet-stream")
        .await;
    assert_eq!(status, 200);
    assert_eq!(frame, pixels[pixels.len() / 2..], "frame 2, decoded");
}

/// Upstream: RetrieveTransactionResourceTests.GivenSupportedAcceptHeaders_WhenRetrieveFrame_ThenServerShouldReturnExpectedContent
/// (FromExplicitVRLittleEndianToJPEG2000Lossless as image/jp2, with no transfer syntax and with
/// "1.2.840.10008.1.2.4.90") and AcceptHeaderHandler's frame descriptors: image/jp2 only in
/// multipart/related, only as JPEG 2000 lossless.
#[tokio::test]
async fn a_frame_as_image_jp2_decodes_back_bit_exact() {
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let (rows, cols) = (30, 50);
    let (f, pixels) = image_instance((&st, &se, &sop), (rows, cols, 3), (8, 8), EXPLICIT_LE);
    assert_eq!(az.store("v1", "studies", &[f]).await.status, 200);
    let base = az.url(
        "v1",
        &format!("studies/{st}/series/{se}/instances/{sop}/frames"),
    );
    let frame_len = usize::from(rows) * usize::from(cols);
    for accept in [
        r#"multipart/related; type="image/jp2""#.to_string(),
        format!(r#"multipart/related; type="image/jp2"; transfer-syntax={JPEG2000_LOSSLESS}"#),
    ] {
        let (status, ct, body) = az.get_bytes(&format!("{base}/2"), &accept).await;
        assert_eq!(status, 200, "{accept}: {}", String::from_utf8_lossy(&body));
        let parts = split_multipart(&ct, &body);
        assert_eq!(parts.len(), 1, "{accept}");
        let head = parts[0].0.to_ascii_lowercase();
        assert!(head.contains("image/jp2"), "{head}");
        assert!(head.contains(JPEG2000_LOSSLESS), "{head}");
        assert_eq!(&parts[0].1[..2], &[0xFF, 0x4F], "a JPEG 2000 codestream");
        assert_eq!(
            decode_j2k(parts[0].1.clone(), rows, cols, (8, 8)),
            pixels[frame_len..2 * frame_len],
            "{accept}"
        );
    }
    // Two frames: two codestreams, in order.
    let (status, ct, body) = az
        .get_bytes(
            &format!("{base}/3,1"),
            r#"multipart/related; type="image/jp2""#,
        )
        .await;
    assert_eq!(status, 200);
    let parts = split_multipart(&ct, &body);
    assert_eq!(parts.len(), 2);
    assert_eq!(
        decode_j2k(parts[0].1.clone(), rows, cols, (8, 8)),
        pixels[2 * frame_len..]
    );
    assert_eq!(
        decode_j2k(parts[1].1.clone(), rows, cols, (8, 8)),
        pixels[..frame_len]
    );
    // Single-part image/jp2, and image/jp2 in another syntax, are not acceptable.
    for accept in [
        "image/jp2".to_string(),
        r#"multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.1"#.to_string(),
    ] {
        let (status, _, _) = az.get_bytes(&format!("{base}/1"), &accept).await;
        assert_eq!(status, 406, "{accept}");
    }
}

/// Upstream: RetrieveTransactionResourceTests.GivenUnsupportedInternalTransferSyntax_WhenRetrieveInstance_ThenServerShouldReturnNotAcceptable,
/// GivenUnsupportedInternalTransferSyntax_WhenRetrieveInstanceWithOriginalTransferSyntax_ThenServerShouldReturnOriginalContent
/// and GivenUnsupportedTransferSyntax_WhenRetrieveFrameWithOriginalTransferSyntax_ThenOriginalContentReturned
/// — a file stored in a syntax no codec reads (MPEG2) is 406 with Azure's TranscodingException text when
/// a conversion is asked for, and comes back as stored with `*`.
#[tokio::test]
async fn what_cannot_be_transcoded_is_406_in_azures_words() {
    use dicom_core::value::PixelFragmentSequence;
    use dicom_core::{DataElement, Length};
    let az = Azure::start().await;
    let (st, se, sop) = ids();
    let base = instance(&st, &se, &sop, &[]);
    let mut obj = dicom_object::OpenFileOptions::new()
        .from_reader(&base[128..])
        .expect("parse")
        .into_inner();
    let fragment = vec![7u8; 64];
    obj.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        Length::UNDEFINED,
        PixelFragmentSequence::new(Vec::<u32>::new(), vec![fragment.clone()]),
    ));
    let mut f = Vec::new();
    obj.with_meta(
        dicom_object::FileMetaTableBuilder::new()
            .transfer_syntax("1.2.840.10008.1.2.4.100")
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid(sop.as_str()),
    )
    .expect("meta")
    .write_all(&mut f)
    .expect("write");
    let a = az.store("v2", "studies", std::slice::from_ref(&f)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop}"));
    for accept in [
        "application/dicom; transfer-syntax=1.2.840.10008.1.2.1".to_string(),
        format!("application/dicom; transfer-syntax={JPEG2000_LOSSLESS}"),
    ] {
        let (status, _, body) = az.get_bytes(&url, &accept).await;
        assert_eq!(status, 406, "{accept}");
        assert_eq!(String::from_utf8_lossy(&body), UNSUPPORTED_TRANSCODING);
    }
    let (status, _, body) = az
        .get_bytes(&url, "application/dicom; transfer-syntax=*")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, f, "as stored");
    let (status, _, body) = az
        .get_bytes(&format!("{url}/frames/1"), "application/octet-stream")
        .await;
    assert_eq!(status, 406, "a frame in Explicit VR Little Endian");
    assert_eq!(String::from_utf8_lossy(&body), UNSUPPORTED_TRANSCODING);
    let (status, _, body) = az
        .get_bytes(
            &format!("{url}/frames/1"),
            r#"multipart/related; type="application/octet-stream"; transfer-syntax=*"#,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        body.windows(fragment.len()).any(|w| w == fragment),
        "the stored fragment"
    );
    // Several instances are never transcoded (RetrieveServiceMultiInstanceTranscodingNotSupported).
    let (st2, se2) = (uid(), uid());
    let two = [
        instance(&st2, &se2, &uid(), &[]),
        instance(&st2, &se2, &uid(), &[]),
    ];
    assert_eq!(az.store("v2", "studies", &two).await.status, 200);
    let (status, _, body) = az
        .get_bytes(
            &az.url("v2", &format!("studies/{st2}")),
            &format!(
                r#"multipart/related; type="application/dicom"; transfer-syntax={JPEG2000_LOSSLESS}"#
            ),
        )
        .await;
    assert_eq!(status, 406);
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!(
            "Accept transfer syntax '{JPEG2000_LOSSLESS}' is not supported when multiple instances are matched. Matching instances can be retrieved with their original transfer syntax by specifying 'transfer-syntax=*' in the Accept header."
        )
    );
}

/// Upstream: RetrieveHelpers.CheckFileSize with RetrieveConfiguration.MaxDicomFileSize (100 MB) and
/// RetrieveResourceServiceTests' "above max file size" cases: a file over 100 MB is not transcoded — 406
/// with RetrieveServiceFileTooBig's words — and the service lives on, its memory not grown by it. A
/// transcode that fits is timed and its memory measured.
#[tokio::test]
async fn a_file_over_100_mb_is_not_transcoded_and_the_service_lives_on() {
    let mut az = Azure::start().await;
    // 10240 × 10240 8-bit: 100 MiB of pixels, so the file is just over the limit.
    let (st, se, sop) = ids();
    let (f, _) = image_instance((&st, &se, &sop), (10240, 10240, 1), (8, 8), EXPLICIT_LE);
    assert!(f.len() as u64 > 100 * 1024 * 1024);
    let a = az.store("v2", "studies", &[f]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    az.served.reset_peak();
    let before = az.served.rss_mib();
    let too_big = "Requested DICOM instance size is above the supported limit of 104857600. The entire instance can be retrieved with the original transfer syntax by specifying 'transfer-syntax=*' in the Accept header.";
    let url = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop}"));
    for (url, accept) in [
        (
            url.clone(),
            format!("application/dicom; transfer-syntax={JPEG2000_LOSSLESS}"),
        ),
        (
            format!("{url}/frames/1"),
            r#"multipart/related; type="image/jp2""#.to_string(),
        ),
    ] {
        let (status, _, body) = az.get_bytes(&url, &accept).await;
        assert_eq!(status, 406, "{accept}");
        assert_eq!(String::from_utf8_lossy(&body), too_big);
    }
    az.served.assert_healthy(before + 16).await;

    // 2048 × 2048 at 16 bits (8 MiB): timed, and its memory measured.
    let (st, se, sop) = ids();
    let (f, pixels) = image_instance((&st, &se, &sop), (2048, 2048, 1), (16, 16), EXPLICIT_LE);
    assert_eq!(az.store("v2", "studies", &[f]).await.status, 200);
    az.served.reset_peak();
    let before = az.served.rss_mib();
    let started = std::time::Instant::now();
    let (status, ct, body) = az
        .get_bytes(
            &az.url(
                "v2",
                &format!("studies/{st}/series/{se}/instances/{sop}/frames/1"),
            ),
            r#"multipart/related; type="image/jp2""#,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    let parts = split_multipart(&ct, &body);
    let peak = az.served.peak_mib();
    eprintln!(
        "2048x2048x16 frame to JPEG 2000: {} ms, {} bytes, peak RSS {peak} MiB (from {before} MiB)",
        took.as_millis(),
        parts[0].1.len()
    );
    assert_eq!(decode_j2k(parts[0].1.clone(), 2048, 2048, (16, 16)), pixels);
    // An 8 MiB frame: 56 MiB reserved (the frame and its codestream, 10 bytes a sample for the
    // encoder); the process grows by less than that.
    az.served.assert_healthy(before + 56).await;
}

/// Hostile input (no upstream test: fo-dicom would try): a JPEG 2000 instance whose codestream declares
/// 40000 × 40000 pixels where the data set says 8 × 8 is stored (storing does not decode), then asked for
/// in Explicit VR Little Endian, whole and as a frame. Decoding it would take gigabytes; it is refused
/// before it is decoded with Azure's transcoding 406, and the service lives on without growing.
#[tokio::test]
async fn a_jpeg_2000_bomb_is_refused_before_it_is_decoded() {
    use dicom_core::value::PixelFragmentSequence;
    use dicom_core::{DataElement, Length};
    use dicomlab_practice::transcode::{Geometry, encode_frame};
    let mut az = Azure::start().await;
    let (st, se, sop) = ids();
    let g = Geometry {
        rows: 8,
        columns: 8,
        samples: 1,
        bits_allocated: 8,
        bits_stored: 8,
        signed: false,
        planar: false,
    };
    let mut bomb = encode_frame(&[9u8; 64], &g).expect("encode");
    bomb[8..12].copy_from_slice(&40000u32.to_be_bytes());
    bomb[12..16].copy_from_slice(&40000u32.to_be_bytes());
    let base = instance(&st, &se, &sop, &[]);
    let mut obj = dicom_object::OpenFileOptions::new()
        .from_reader(&base[128..])
        .expect("parse")
        .into_inner();
    obj.put(DataElement::new_with_len(
        tags::PIXEL_DATA,
        VR::OB,
        Length::UNDEFINED,
        PixelFragmentSequence::new(Vec::<u32>::new(), vec![bomb]),
    ));
    let mut f = Vec::new();
    obj.with_meta(
        dicom_object::FileMetaTableBuilder::new()
            .transfer_syntax(JPEG2000_LOSSLESS)
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid(sop.as_str()),
    )
    .expect("meta")
    .write_all(&mut f)
    .expect("write");
    let a = az.store("v2", "studies", &[f]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    az.served.reset_peak();
    let before = az.served.rss_mib();
    let url = az.url("v2", &format!("studies/{st}/series/{se}/instances/{sop}"));
    for (url, accept) in [
        (url.clone(), "application/dicom"),
        (format!("{url}/frames/1"), "application/octet-stream"),
    ] {
        let (status, _, body) = az.get_bytes(&url, accept).await;
        assert_eq!(status, 406, "{accept}: {}", String::from_utf8_lossy(&body));
        assert_eq!(String::from_utf8_lossy(&body), UNSUPPORTED_TRANSCODING);
    }
    az.served.assert_healthy(before + 16).await;
}
