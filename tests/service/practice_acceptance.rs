//! Contract §11: every acceptance case, against the practice service on a loopback port, with plain HTTP.

use dicomlab_testkit as common;

use common::*;
use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicomlab_dicom::samples::{
    BLUE_UID, GREEN_UID, RED_UID, SERIES1_UID, SOP_CLASS_UID, STUDY_UID,
};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, ETAG, IF_NONE_MATCH, WWW_AUTHENTICATE};
use serde_json::Value;

const MULTI_ANY: &str = r#"multipart/related; type="application/dicom"; transfer-syntax=*"#;

fn red_path() -> String {
    format!("studies/{STUDY_UID}/series/{SERIES1_UID}/instances/{RED_UID}")
}

#[tokio::test]
async fn a01_store_with_wrong_accept_is_406() {
    let lab = Lab::start().await;
    for accept in ["application/dicom", "application/data"] {
        let r = lab
            .http
            .post(lab.url("studies"))
            .bearer_auth(&lab.token)
            .header(ACCEPT, accept)
            .header(CONTENT_TYPE, "application/dicom")
            .body(sample_files().remove(0))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 406, "{accept}");
        assert!(r.bytes().await.expect("body").is_empty());
    }
}

#[tokio::test]
async fn a02_store_with_form_content_type_is_415() {
    let lab = Lab::start().await;
    for ct in [
        r#"multipart/form; type="application/dicom""#,
        "multipart/form-data; boundary=x",
        "application/json",
    ] {
        let r = lab
            .http
            .post(lab.url("studies"))
            .bearer_auth(&lab.token)
            .header(ACCEPT, DICOM_JSON)
            .header(CONTENT_TYPE, ct)
            .body("x")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 415, "{ct}");
    }
}

#[tokio::test]
async fn a03_multipart_with_zero_parts_is_204() {
    let lab = Lab::start().await;
    let (status, body) = lab.store_multipart(&lab.url("studies"), &[]).await;
    assert_eq!(status, 204);
    assert_eq!(body, Value::String(String::new()));
}

#[tokio::test]
async fn a04_store_to_an_invalid_study_uid_is_400() {
    let lab = Lab::start().await;
    let (status, _) = lab
        .store_multipart(
            &lab.url(&format!("studies/{}", "b".repeat(65))),
            &sample_files()[..1],
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a05_single_part_store_of_a_new_file() {
    let lab = Lab::start().await;
    let r = lab
        .http
        .post(lab.url("studies"))
        .bearer_auth(&lab.token)
        .header(ACCEPT, DICOM_JSON)
        .header(CONTENT_TYPE, "application/dicom")
        .body(sample_files().remove(0))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let ct = r.headers()[CONTENT_TYPE].to_str().expect("ct").to_string();
    assert!(ct.starts_with("application/dicom+json"), "{ct}");
    let body: Value = r.json().await.expect("json");
    let items = values(&body, "00081199");
    assert_eq!(items.len(), 1);
    assert_eq!(
        first_str(&items[0], "00081150").as_deref(),
        Some(SOP_CLASS_UID)
    );
    assert_eq!(first_str(&items[0], "00081155").as_deref(), Some(RED_UID));
    let url = first_str(&items[0], "00081190").expect("RetrieveURL");
    assert!(
        url.ends_with(&format!(
            "studies/{STUDY_UID}/series/{SERIES1_UID}/instances/{RED_UID}"
        )),
        "{url}"
    );
    assert!(
        url.starts_with(&lab.svc.base_url),
        "absolute, from the request's origin: {url}"
    );
    assert!(body.get("00081198").is_none());
    assert!(
        body.get("00081190").is_none(),
        "no top-level RetrieveURL without {{study}} in the route"
    );
}

#[tokio::test]
async fn a06_storing_the_same_file_again_is_409_45070() {
    let lab = Lab::start().await;
    let red = sample_files().remove(0);
    assert_eq!(lab.store_single("studies", red.clone()).await.0, 200);
    let (status, body) = lab.store_single("studies", red).await;
    assert_eq!(status, 409);
    let failed = values(&body, "00081198");
    assert_eq!(failed.len(), 1);
    assert_eq!(first_str(&failed[0], "00081197").as_deref(), Some("45070"));
    assert_eq!(first_str(&failed[0], "00081155").as_deref(), Some(RED_UID));
    assert!(body.get("00081199").is_none());
}

#[tokio::test]
async fn a07_all_files_of_other_studies_is_409_43264() {
    let lab = Lab::start().await;
    let (a, b, third) = (uid(), uid(), uid());
    let files = [
        instance(&a, &uid(), &uid(), &[]),
        instance(&b, &uid(), &uid(), &[]),
    ];
    let (status, body) = lab
        .store_multipart(&lab.url(&format!("studies/{third}")), &files)
        .await;
    assert_eq!(status, 409);
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    let failed = values(&body, "00081198");
    assert_eq!(failed.len(), 2);
    for f in failed {
        assert_eq!(first_str(f, "00081197").as_deref(), Some("43264"));
    }
}

#[tokio::test]
async fn a08_mixed_study_match_is_202() {
    let lab = Lab::start().await;
    let (study, other) = (uid(), uid());
    let (series, bad_series, bad_sop) = (uid(), uid(), uid());
    let files = [
        instance(&study, &series, &uid(), &[]),
        instance(&other, &bad_series, &bad_sop, &[]),
    ];
    let (status, body) = lab
        .store_multipart(&lab.url(&format!("studies/{study}")), &files)
        .await;
    assert_eq!(status, 202);
    assert_eq!(body.as_object().map(|o| o.len()), Some(3), "{body}");
    assert!(
        first_str(&body, "00081190")
            .expect("RetrieveURL")
            .ends_with(&format!("studies/{study}"))
    );
    let failed = values(&body, "00081198");
    assert_eq!(failed.len(), 1);
    assert_eq!(first_str(&failed[0], "00081197").as_deref(), Some("43264"));
    let (status, _) = lab
        .get_json(&lab.url(&format!(
            "studies/{other}/series/{bad_series}/instances/{bad_sop}/metadata"
        )))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a09_invalid_study_uid_in_the_file_is_409_43264() {
    let lab = Lab::start().await;
    for bad in ["abc.123", "11|"] {
        let file = instance(
            &uid(),
            &uid(),
            &uid(),
            &[(tags::STUDY_INSTANCE_UID, VR::UI, bad)],
        );
        let (status, body) = lab.store_single("studies", file).await;
        assert_eq!(status, 409, "{bad}: {body}");
        assert_eq!(
            first_str(&values(&body, "00081198")[0], "00081197").as_deref(),
            Some("43264")
        );
    }
}

#[tokio::test]
async fn a10_invalid_indexed_attribute_fails_in_v1_and_warns_in_v2() {
    let lab = Lab::start().await;
    let bad = [(tags::MODALITY, VR::CS, "123456789ABCDEFGHIJK")];
    let (status, body) = lab
        .store_single("studies", instance(&uid(), &uid(), &uid(), &bad))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        first_str(&values(&body, "00081198")[0], "00081197").as_deref(),
        Some("43264")
    );
    assert!(body.get("00081199").is_none());
    let (status, body) = lab
        .store_multipart(
            &lab.url_v2("studies"),
            &[instance(&uid(), &uid(), &uid(), &bad)],
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn a11_v2_drops_an_invalid_study_date_with_a_warning() {
    let lab = Lab::start().await;
    let (study, series, sop) = (uid(), uid(), uid());
    let file = instance(
        &study,
        &series,
        &sop,
        &[(tags::STUDY_DATE, VR::DA, "NotAValidStudyDate")],
    );
    let (status, body) = lab.store_multipart(&lab.url_v2("studies"), &[file]).await;
    assert_eq!(status, 202, "{body}");
    let item = &values(&body, "00081199")[0];
    assert_eq!(first_str(item, "00081196").as_deref(), Some("1"));
    let comments = values(item, "00741048");
    assert_eq!(comments.len(), 1);
    let text = first_str(&comments[0], "00000902").expect("ErrorComment");
    assert!(
        text.starts_with(
            r#"DICOM100: (0008,0020) - Content "NotAValidStudyDate" does not validate VR DA"#
        ),
        "{text}"
    );
    let (status, meta) = lab
        .get_json(&lab.url_v2(&format!(
            "studies/{study}/series/{series}/instances/{sop}/metadata"
        )))
        .await;
    assert_eq!(status, 200);
    assert!(meta[0].get("00080020").is_none());
    let (status, _) = lab
        .get_json(&lab.url_v2("instances?StudyDate=NotAValidStudyDate"))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a12_unknown_study_is_404() {
    let lab = Lab::start().await;
    let r = lab
        .get(&lab.url(&format!("studies/{}", uid())))
        .header(ACCEPT, MULTI_ANY)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.text().await.expect("text"),
        "The specified study cannot be found."
    );
}

#[tokio::test]
async fn a13_single_part_study_retrieve_is_406() {
    let lab = Lab::start().await;
    lab.store_samples().await;
    let r = lab
        .get(&lab.url(&format!("studies/{STUDY_UID}")))
        .header(ACCEPT, "application/dicom; transfer-syntax=*")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 406);
}

#[tokio::test]
async fn a14_several_instances_need_transfer_syntax_star() {
    let lab = Lab::start().await;
    lab.store_samples().await;
    let url = lab.url(&format!("studies/{STUDY_UID}"));
    let explicit =
        r#"multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1"#;
    let r = lab
        .get(&url)
        .header(ACCEPT, explicit)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 406);
    let r = lab
        .get(&url)
        .header(ACCEPT, MULTI_ANY)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let ct = r.headers()[CONTENT_TYPE].to_str().expect("ct").to_string();
    let parts = split_multipart(&ct, &r.bytes().await.expect("body"));
    assert_eq!(parts.len(), 3);
    for (headers, _) in &parts {
        assert!(
            headers.contains("application/dicom; transfer-syntax=1.2.840.10008.1.2.1"),
            "{headers}"
        );
    }
}

#[tokio::test]
async fn a15_frame_numbers() {
    let lab = Lab::start().await;
    lab.store_samples().await;
    let accept = r#"multipart/related; type="application/octet-stream"; transfer-syntax=*"#;
    for frames in ["0", "-1", "1,-1", "0,1", "x"] {
        let r = lab
            .get(&lab.url(&format!("{}/frames/{frames}", red_path())))
            .header(ACCEPT, accept)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "frames/{frames}");
    }
    let r = lab
        .get(&lab.url(&format!("{}/frames/2", red_path())))
        .header(ACCEPT, accept)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.text().await.expect("text"),
        "The specified frame cannot be found."
    );
}

#[tokio::test]
async fn a16_rendered_png_and_jpeg() {
    let lab = Lab::start().await;
    lab.store_samples().await;
    for (accept, format) in [
        ("image/png", image::ImageFormat::Png),
        ("image/jpeg", image::ImageFormat::Jpeg),
    ] {
        let r = lab
            .get(&lab.url(&format!("{}/rendered", red_path())))
            .header(ACCEPT, accept)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[CONTENT_TYPE], accept);
        let bytes = r.bytes().await.expect("body");
        let img = image::load_from_memory_with_format(&bytes, format).expect("decodes");
        assert_eq!((img.width(), img.height()), (985, 979));
    }
    let r = lab
        .get(&lab.url(&format!("{}/rendered", red_path())))
        .header(ACCEPT, "*/*")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 406);
    let r = lab
        .get(&lab.url(&format!("{}/rendered?quality=0", red_path())))
        .header(ACCEPT, "image/jpeg")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a17_metadata_etag_and_304() {
    let lab = Lab::start().await;
    lab.store_samples().await;
    for path in [
        format!("studies/{STUDY_UID}/metadata"),
        format!("{}/metadata", red_path()),
    ] {
        let r = lab
            .get(&lab.url(&path))
            .header(ACCEPT, DICOM_JSON)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        let etag = r.headers()[ETAG].to_str().expect("etag").to_string();
        assert!(!etag.starts_with('"'), "unquoted: {etag}");
        let r = lab
            .get(&lab.url(&path))
            .header(ACCEPT, DICOM_JSON)
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 304);
        assert!(r.bytes().await.expect("body").is_empty());
        let r = lab
            .get(&lab.url(&path))
            .header(ACCEPT, DICOM_JSON)
            .header(IF_NONE_MATCH, "nope")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key(ETAG));
    }
    // A store in the study changes the study's ETag.
    let r = lab
        .get(&lab.url(&format!("studies/{STUDY_UID}/metadata")))
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("send");
    let before = r.headers()[ETAG].clone();
    let extra = instance(STUDY_UID, &uid(), &uid(), &[]);
    assert_eq!(lab.store_single("studies", extra).await.0, 200);
    let r = lab
        .get(&lab.url(&format!("studies/{STUDY_UID}/metadata")))
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("send");
    assert_ne!(r.headers()[ETAG], before);
}

#[tokio::test]
async fn a18_series_attribute_on_studies_is_400() {
    let lab = Lab::start().await;
    let r = lab
        .get(&lab.url("studies?Modality=CT"))
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .expect("text")
            .contains("AttributeId Modality is not queryable")
    );
}

#[tokio::test]
async fn a19_no_match_is_204() {
    let lab = Lab::start().await;
    lab.store_samples().await;
    let r = lab
        .get(&lab.url("studies?StudyDate=20200101"))
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.expect("body").is_empty());
}

#[tokio::test]
async fn a20_person_names_ignore_accents_and_fuzzy_matches_word_prefixes() {
    let lab = Lab::start().await;
    let study = uid();
    let file = instance(
        &study,
        &uid(),
        &uid(),
        &[(tags::PATIENT_NAME, VR::PN, "Hall^X^Tá")],
    );
    assert_eq!(lab.store_single("studies", file).await.0, 200);
    let (status, body) = lab
        .get_json(&lab.url("studies?PatientName=Hall^X^Ta"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().map(Vec::len), Some(1));
    assert_eq!(
        first_str(&body[0], "00100010").as_deref(),
        Some("Hall^X^Tá")
    );
    let (status, body) = lab
        .get_json(&lab.url("studies?PatientName=hal&FuzzyMatching=true"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        first_str(&body[0], "0020000D").as_deref(),
        Some(study.as_str())
    );
    let (status, _) = lab
        .get_json(&lab.url("studies?PatientName=all&fuzzymatching=true"))
        .await;
    assert_eq!(status, 204, "a prefix of a word, not a substring");
}

#[tokio::test]
async fn a21_delete_then_delete_again_and_bad_uid() {
    let lab = Lab::start().await;
    lab.store_samples().await;
    let del = |path: String| {
        let req = lab.http.delete(lab.url(&path)).bearer_auth(&lab.token);
        async move { req.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(del(red_path()).await, 204);
    assert_eq!(del(red_path()).await, 404);
    assert_eq!(del("studies/notAStudyInstanceUid".into()).await, 400);
}

#[tokio::test]
async fn a22_v1_latest_and_offset_window() {
    let lab = Lab::start().await;
    lab.store_samples().await;
    let (status, latest) = lab.get_json(&lab.url("changefeed/latest")).await;
    assert_eq!(status, 200);
    assert_eq!(latest["action"], "Create");
    assert_eq!(latest["state"], "Current");
    assert_eq!(latest["sopInstanceUid"], BLUE_UID);
    let first = latest["sequence"].as_i64().expect("sequence") + 1;
    for _ in 0..10 {
        assert_eq!(
            lab.store_single("studies", instance(&uid(), &uid(), &uid(), &[]))
                .await
                .0,
            200
        );
    }
    let (status, page) = lab
        .get_json(&lab.url(&format!("changefeed?offset={}", first - 1)))
        .await;
    assert_eq!(status, 200);
    let page = page.as_array().expect("array");
    assert_eq!(page.len(), 10);
    assert_eq!(page[0]["sequence"].as_i64(), Some(first));
    assert!(page.iter().all(|e| e.get("metadata").is_some()));
}

#[tokio::test]
async fn a23_states_after_create_delete_create() {
    let lab = Lab::start().await;
    let (study, series, sop) = (uid(), uid(), uid());
    let file = instance(&study, &series, &sop, &[]);
    assert_eq!(lab.store_single("studies", file.clone()).await.0, 200);
    let (_, latest) = lab.get_json(&lab.url_v2("changefeed/latest")).await;
    let start = latest["timestamp"].as_str().expect("timestamp").to_string();
    assert_eq!(lab.delete(&format!("studies/{study}")).await, 204);
    let (_, latest) = lab.get_json(&lab.url_v2("changefeed/latest")).await;
    assert_eq!(latest["action"], "Delete");
    assert_eq!(latest["state"], "Deleted");
    assert!(latest.get("metadata").is_none());
    assert_eq!(lab.store_single("studies", file).await.0, 200);
    let q = format!("changefeed?startTime={}", start.replace('+', "%2B"));
    let (status, feed) = lab.get_json(&lab.url_v2(&q)).await;
    assert_eq!(status, 200, "{feed}");
    let states: Vec<&str> = feed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(states, ["Replaced", "Replaced", "Current"]);
}

#[tokio::test]
async fn a24_change_feed_parameter_validation() {
    let lab = Lab::start().await;
    for q in [
        "startTime=2023-05-03T10:58:00",
        "startTime=2023-05-03T10:58:00Z&endTime=2023-05-03T10:58:00Z",
        "startTime=2023-05-03T10:58:00Z&endTime=2023-05-02T10:58:00Z",
        "startTime=yesterday",
        "limit=201",
        "limit=0",
        "offset=-1",
        "includeMetadata=0",
    ] {
        let (status, _) = lab.get_json(&lab.url_v2(&format!("changefeed?{q}"))).await;
        assert_eq!(status, 400, "v2 {q}");
    }
    for q in ["limit=101", "limit=0", "offset=-1", "includeMetadata=yes"] {
        let (status, _) = lab.get_json(&lab.url(&format!("changefeed?{q}"))).await;
        assert_eq!(status, 400, "v1 {q}");
    }
    let (status, body) = lab.get_json(&lab.url("changefeed")).await;
    assert_eq!((status, body), (200, Value::Array(vec![])));
    let r = lab
        .get(&lab.url("changefeed/latest"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn a25_tag_level_messages() {
    let lab = Lab::start().await;
    let (status, _, text) = lab
        .json_request(
            Method::POST,
            &lab.url("extendedquerytags"),
            r#"[{"Path":"00100040"}]"#,
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        text.starts_with("The field '[0].Level' in request body is invalid: The Dicom Tag Property Level must be specified"),
        "{text}"
    );
    let (status, _, text) = lab
        .json_request(
            Method::POST,
            &lab.url("extendedquerytags"),
            r#"[{"Path":"00100040","Level":"Studys"}]"#,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        text,
        "The field '$[0].Level' in request body is invalid: Expected value 'Studys' to be one of the following values: ['Instance', 'Series', 'Study']"
    );
}

#[tokio::test]
async fn a26_tags_added_reindexed_listed_and_searched() {
    let lab = Lab::start().await;
    lab.store_samples().await;
    for (version, done) in [("v1", "completed"), ("v2", "succeeded")] {
        let url = format!("{}/{version}/extendedquerytags", lab.svc.origin);
        let body =
            r#"[{"Path":"PatientSex","Level":"Study"},{"Path":"NumberOfFilms","Level":"Study"}]"#;
        let (status, headers, text) = lab.json_request(Method::POST, &url, body).await;
        assert_eq!(status, 202, "{text}");
        let reference: Value = serde_json::from_str(&text).expect("json");
        let id = reference["id"].as_str().expect("id");
        assert_eq!(id.len(), 32);
        let href = reference["href"].as_str().expect("href");
        assert_eq!(headers["location"], href);
        let op = lab.wait_operation(href).await;
        assert_eq!(op["status"], done);
        assert_eq!(op["type"], "reindex");
        assert_eq!(op["percentComplete"], 100);
        assert!(
            op["resources"][0]
                .as_str()
                .expect("resource")
                .ends_with("/extendedquerytags/00100040")
        );
        let (status, tag) = lab.get_json(&format!("{url}/PatientSex")).await;
        assert_eq!(status, 200);
        assert_eq!(tag["queryStatus"], "enabled");
        assert_eq!(tag["status"], "ready");
        assert_eq!(tag["level"], "study");
        assert_eq!(tag["vr"], "CS");
        assert!(
            tag.get("errors").is_none() && tag.get("operation").is_none(),
            "{tag}"
        );
        let (status, page) = lab.get_json(&format!("{url}?limit=1&offset=1")).await;
        assert_eq!(status, 200);
        assert_eq!(page.as_array().map(Vec::len), Some(1));
        assert_eq!(page[0]["path"], "21000170");
        let (status, found) = lab
            .get_json(&format!(
                "{}/{version}/studies?PatientSex=F",
                lab.svc.origin
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(first_str(&found[0], "0020000D").as_deref(), Some(STUDY_UID));
        for path in ["PatientSex", "NumberOfFilms"] {
            let (status, _, _) = lab
                .json_request(Method::DELETE, &format!("{url}/{path}"), "")
                .await;
            assert_eq!(status, 204);
        }
        let (status, _, _) = lab
            .json_request(Method::DELETE, &format!("{url}/PatientSex"), "")
            .await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn a27_tag_over_invalid_values() {
    let lab = Lab::start().await;
    for _ in 0..2 {
        let file = instance(
            &uid(),
            &uid(),
            &uid(),
            &[(tags::STAGE_NUMBER, VR::IS, "abc")],
        );
        assert_eq!(lab.store_single("studies", file).await.0, 200);
    }
    let (status, _, text) = lab
        .json_request(
            Method::POST,
            &lab.url("extendedquerytags"),
            r#"[{"Path":"StageNumber","Level":"Instance"}]"#,
        )
        .await;
    assert_eq!(status, 202, "{text}");
    let reference: Value = serde_json::from_str(&text).expect("json");
    let op = lab
        .wait_operation(reference["href"].as_str().expect("href"))
        .await;
    assert_eq!(op["status"], "completed");
    let (_, tag) = lab
        .get_json(&lab.url("extendedquerytags/StageNumber"))
        .await;
    assert!(
        tag["errors"]["count"].as_i64().expect("count") >= 2,
        "{tag}"
    );
    assert_eq!(tag["queryStatus"], "disabled");
    let (_, errors) = lab
        .get_json(&lab.url("extendedquerytags/StageNumber/errors"))
        .await;
    assert_eq!(errors.as_array().map(Vec::len), Some(2));
    let (status, _) = lab.get_json(&lab.url("instances?StageNumber=1")).await;
    assert_eq!(status, 400);
    let (status, _, text) = lab
        .json_request(
            Method::PATCH,
            &lab.url("extendedquerytags/StageNumber"),
            r#"{"QueryStatus":"Enabled"}"#,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let r = lab
        .get(&lab.url("instances?StageNumber=1"))
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("send");
    assert!(matches!(r.status().as_u16(), 200 | 204));
    assert_eq!(r.headers()["erroneous-dicom-attributes"], "StageNumber");
    let bad = [(tags::STAGE_NUMBER, VR::IS, "xyz")];
    let (status, _) = lab
        .store_single("studies", instance(&uid(), &uid(), &uid(), &bad))
        .await;
    assert_eq!(status, 409);
    let (status, _) = lab
        .store_multipart(
            &lab.url_v2("studies"),
            &[instance(&uid(), &uid(), &uid(), &bad)],
        )
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a28_the_lab_postman_tag_is_already_supported() {
    let lab = Lab::start().await;
    let body = r#"[{"Path":"ManufacturerModelName","VR":"LO","Level":"Series"}]"#;
    let (status, _, text) = lab
        .json_request(Method::POST, &lab.url("extendedquerytags"), body)
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        text,
        "The query tag 'ManufacturerModelName' is already supported."
    );
}

#[tokio::test]
async fn a29_no_token_is_401_and_a_reader_cannot_store() {
    let lab = Lab::start().await;
    let r = lab
        .http
        .get(lab.url("studies"))
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let www = r.headers()[WWW_AUTHENTICATE]
        .to_str()
        .expect("header")
        .to_string();
    assert!(www.starts_with("Bearer authorization_uri="), "{www}");
    assert!(r.bytes().await.expect("body").is_empty());
    // A second client with only DICOM Data Reader.
    let created: Value = lab
        .http
        .post(format!("{}/admin/clients", lab.svc.origin))
        .header("X-Dicomlab-Admin", "1")
        .json(&serde_json::json!({"name": "reader"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let id = created["clientId"].as_str().expect("id");
    let secret = created["clientSecret"].as_str().expect("secret");
    let r = lab
        .http
        .put(format!("{}/admin/roles/{id}/reader", lab.svc.origin))
        .header("X-Dicomlab-Admin", "1")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let tok: Value = lab
        .http
        .post(lab.svc.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("resource", &lab.svc.resource),
        ])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let reader = tok["access_token"].as_str().expect("token");
    let r = lab
        .http
        .post(lab.url("studies"))
        .bearer_auth(reader)
        .header(ACCEPT, DICOM_JSON)
        .header(CONTENT_TYPE, "application/dicom")
        .body(sample_files().remove(0))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.expect("text"), "Authorization failed.");
    let r = lab
        .http
        .get(lab.url("changefeed"))
        .bearer_auth(reader)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "a reader can read");
}

#[tokio::test]
async fn a30_health_check() {
    let lab = Lab::start().await;
    let r = lab
        .http
        .get(format!("{}/health/check", lab.svc.origin))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["overallStatus"], "Healthy");
}

#[tokio::test]
async fn green_is_in_series_one() {
    // Guard for the sample constants the other cases rely on.
    let lab = Lab::start().await;
    lab.store_samples().await;
    let (status, body) = lab
        .get_json(&lab.url(&format!(
            "studies/{STUDY_UID}/series/{SERIES1_UID}/instances"
        )))
        .await;
    assert_eq!(status, 200);
    let mut sops: Vec<String> = body
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| first_str(i, "00080018"))
        .collect();
    sops.sort();
    let mut expected = vec![RED_UID.to_string(), GREEN_UID.to_string()];
    expected.sort();
    assert_eq!(sops, expected);
}
