//! Contract §10: the lab walked through step by step, request by request, as a learner with Postman or curl
//! would, on a fresh service. Runs with the generated samples, or the official files when
//! `DICOMLAB_SAMPLES_DIR` is set.

use dicomlab_testkit as common;

use common::*;
use dicomlab_dicom::samples::{BLUE_UID, GREEN_UID, RED_UID, SERIES1_UID, SERIES2_UID, STUDY_UID};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, ETAG};
use serde_json::Value;

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_whole_lab_in_order() {
    let lab = Lab::start().await;
    let files = sample_files();
    let st = STUDY_UID;
    let (se1, se2) = (SERIES1_UID, SERIES2_UID);

    // 1. Token (v1): expires_in is a string.
    let r = lab
        .http
        .post(lab.svc.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", lab.svc.client_id.as_str()),
            ("client_secret", lab.svc.client_secret.as_str()),
            ("resource", "https://dicom.healthcareapis.azure.com"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.expect("json");
    assert_eq!(tok["token_type"], "Bearer");
    assert!(
        tok["expires_in"]
            .as_str()
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n > 3000))
    );
    assert_eq!(tok["resource"], "https://dicom.healthcareapis.azure.com");

    // 2–4. Store red, green, blue (single part).
    for (bytes, (sop, series)) in
        files
            .iter()
            .zip([(RED_UID, se1), (GREEN_UID, se1), (BLUE_UID, se2)])
    {
        let (status, body) = lab.store_single("studies", bytes.clone()).await;
        assert_eq!(status, 200, "{body}");
        let item = &values(&body, "00081199")[0];
        assert_eq!(first_str(item, "00081155").as_deref(), Some(sop));
        assert!(
            first_str(item, "00081190")
                .expect("url")
                .ends_with(&format!("/v1/studies/{st}/series/{series}/instances/{sop}"))
        );
        assert!(body.get("00081198").is_none() && body.get("00081190").is_none());
        assert!(
            item.get("00741048").is_none(),
            "v1 has no FailedAttributesSequence"
        );
    }
    // 4b. Re-send: 409 45070. 4c. Multipart to /studies/{ST} when all exist: 409.
    let (status, body) = lab.store_single("studies", files[0].clone()).await;
    assert_eq!(status, 409);
    assert_eq!(
        first_str(&values(&body, "00081198")[0], "00081197").as_deref(),
        Some("45070")
    );
    let (status, _) = lab
        .store_multipart(&lab.url(&format!("studies/{st}")), &files)
        .await;
    assert_eq!(status, 409);

    // 5. Retrieve study: 3 parts with `*`, 406 without.
    let any = r#"multipart/related; type="application/dicom"; transfer-syntax=*"#;
    let r = lab
        .get(&lab.url(&format!("studies/{st}")))
        .header(ACCEPT, any)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let ct = r.headers()[CONTENT_TYPE].to_str().expect("ct").to_string();
    assert!(ct.starts_with("multipart/related; boundary="), "{ct}");
    let parts = split_multipart(&ct, &r.bytes().await.expect("body"));
    assert_eq!(parts.len(), 3);
    let mut sizes: Vec<usize> = parts.iter().map(|p| p.1.len()).collect();
    let mut expected: Vec<usize> = files.iter().map(Vec::len).collect();
    sizes.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sizes, expected, "each part is the stored file");
    let r = lab
        .get(&lab.url(&format!("studies/{st}")))
        .header(ACCEPT, r#"multipart/related; type="application/dicom""#)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 406);

    // 6. Study metadata: 3 objects, no pixel data, ETag.
    let r = lab
        .get(&lab.url(&format!("studies/{st}/metadata")))
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key(ETAG));
    let meta: Value = r.json().await.expect("json");
    let meta = meta.as_array().expect("array");
    assert_eq!(meta.len(), 3);
    assert!(meta.iter().all(|m| m.get("7FE00010").is_none()));
    let series: Vec<String> = meta
        .iter()
        .filter_map(|m| first_str(m, "0020000E"))
        .collect();
    assert!(series.contains(&se1.to_string()) && series.contains(&se2.to_string()));

    // 7–8. Series: 2 parts; metadata of 2.
    let r = lab
        .get(&lab.url(&format!("studies/{st}/series/{se1}")))
        .header(ACCEPT, any)
        .send()
        .await
        .expect("send");
    let ct = r.headers()[CONTENT_TYPE].to_str().expect("ct").to_string();
    assert_eq!(
        split_multipart(&ct, &r.bytes().await.expect("body")).len(),
        2
    );
    let (status, meta) = lab
        .get_json(&lab.url(&format!("studies/{st}/series/{se1}/metadata")))
        .await;
    assert_eq!((status, meta.as_array().map(Vec::len)), (200, Some(2)));

    // 9. Instance, single part: the identical file.
    let inst = format!("studies/{st}/series/{se1}/instances/{RED_UID}");
    let r = lab
        .get(&lab.url(&inst))
        .header(ACCEPT, "application/dicom; transfer-syntax=*")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()[CONTENT_TYPE],
        "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    );
    let body = r.bytes().await.expect("body");
    assert_eq!(body.len(), files[0].len());
    assert_eq!(
        &body[128..],
        &files[0][128..],
        "identical after the (zeroed) preamble"
    );

    // 10. Instance metadata: 39 elements, with the contract's values.
    let (status, meta) = lab.get_json(&lab.url(&format!("{inst}/metadata"))).await;
    assert_eq!(status, 200);
    let m = &meta[0];
    assert_eq!(keys(m).len(), 39);
    assert_eq!(
        m["00100010"],
        serde_json::json!({"vr": "PN", "Value": [{"Alphabetic": "Anony Mous"}]})
    );
    assert_eq!(m["00200013"], serde_json::json!({"vr": "IS", "Value": [1]}));
    assert_eq!(
        m["00280010"],
        serde_json::json!({"vr": "US", "Value": [979]})
    );
    assert_eq!(m["00080050"], serde_json::json!({"vr": "SH"}));

    // 11. Frame 1: 2,892,945 bytes; frame 2: 404.
    let frames = r#"multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1"#;
    let r = lab
        .get(&lab.url(&format!("{inst}/frames/1")))
        .header(ACCEPT, frames)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let ct = r.headers()[CONTENT_TYPE].to_str().expect("ct").to_string();
    let parts = split_multipart(&ct, &r.bytes().await.expect("body"));
    assert_eq!(parts.len(), 1);
    assert!(
        parts[0]
            .0
            .contains("application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1")
    );
    assert_eq!(parts[0].1.len(), 2_892_945);
    let r = lab
        .get(&lab.url(&format!("{inst}/frames/2")))
        .header(ACCEPT, frames)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);

    // 12. Search studies: the v1 default attributes present in the data.
    let (status, found) = lab
        .get_json(&lab.url(&format!("studies?StudyInstanceUID={st}")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let s = &found[0];
    for k in [
        "00080005", "00080020", "00080030", "00080050", "00080090", "00100010", "00100020",
        "00100030", "00100040", "0020000D", "00200010",
    ] {
        assert!(s.get(k).is_some(), "study result lacks {k}: {s}");
    }
    assert_eq!(first_str(s, "00080020").as_deref(), Some("20200922"));
    assert_eq!(first_str(s, "00100020").as_deref(), Some("ID1"));
    assert_eq!(first_str(s, "00100040").as_deref(), Some("F"));
    assert_eq!(s["00100030"], serde_json::json!({"vr": "DA"}));

    // 13. Search series: study attributes plus Modality and the series UID.
    let (status, found) = lab
        .get_json(&lab.url(&format!("series?SeriesInstanceUID={se1}")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    assert_eq!(first_str(&found[0], "00080060").as_deref(), Some("OT"));
    assert!(found[0].get("00100010").is_some() && found[0].get("0020000E").is_some());

    // 14. Series in study: with the filter 1, without 2.
    let (_, found) = lab
        .get_json(&lab.url(&format!("studies/{st}/series?SeriesInstanceUID={se1}")))
        .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    for k in ["00080005", "00080060", "0020000D", "0020000E"] {
        assert!(found[0].get(k).is_some(), "{k}");
    }
    assert!(
        found[0].get("00100010").is_none(),
        "no study set on /studies/{{st}}/series"
    );
    let (_, found) = lab
        .get_json(&lab.url(&format!("studies/{st}/series")))
        .await;
    assert_eq!(found.as_array().map(Vec::len), Some(2));

    // 15–17. Instances.
    let (_, found) = lab
        .get_json(&lab.url(&format!("instances?SOPInstanceUID={RED_UID}")))
        .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let i = &found[0];
    for (k, v) in [
        ("00200013", "1"),
        ("00280010", "979"),
        ("00280011", "985"),
        ("00280100", "8"),
    ] {
        assert_eq!(first_str(i, k).as_deref(), Some(v), "{k}");
    }
    assert!(
        i.get("00080016").is_some() && i.get("00100010").is_some() && i.get("00080060").is_some()
    );
    for (path, all) in [
        (format!("studies/{st}/instances"), 3),
        (format!("studies/{st}/series/{se1}/instances"), 2),
    ] {
        let (_, found) = lab
            .get_json(&lab.url(&format!("{path}?SOPInstanceUID={RED_UID}")))
            .await;
        assert_eq!(found.as_array().map(Vec::len), Some(1), "{path}");
        let (_, found) = lab.get_json(&lab.url(&path)).await;
        assert_eq!(found.as_array().map(Vec::len), Some(all), "{path}");
    }

    // 18–19. Change feed: 3 Create/Current entries with metadata; latest is blue.
    let (status, feed) = lab.get_json(&lab.url("changefeed")).await;
    assert_eq!(status, 200);
    let feed = feed.as_array().expect("array");
    assert_eq!(feed.len(), 3);
    assert!(feed.iter().all(|e| e["action"] == "Create"
        && e["state"] == "Current"
        && e.get("metadata").is_some()));
    let (_, feed) = lab
        .get_json(&lab.url("changefeed?includeMetadata=false"))
        .await;
    assert!(
        feed.as_array()
            .expect("array")
            .iter()
            .all(|e| e.get("metadata").is_none())
    );
    let (_, latest) = lab.get_json(&lab.url("changefeed/latest")).await;
    assert_eq!(latest["sopInstanceUid"], BLUE_UID);

    // 20–21. Extended query tag (the lab's recommended tag), and the operation.
    let (status, headers, text) = lab
        .json_request(
            Method::POST,
            &lab.url("extendedquerytags"),
            r#"[{"Path":"PatientSex","Level":"Study"}]"#,
        )
        .await;
    assert_eq!(status, 202, "{text}");
    let reference: Value = serde_json::from_str(&text).expect("json");
    let href = reference["href"].as_str().expect("href").to_string();
    assert!(href.starts_with(&format!("{}/operations/", lab.svc.base_url)));
    assert_eq!(headers["location"], href.as_str());
    let op = lab.wait_operation(&href).await;
    assert_eq!(op["status"], "completed");
    assert_eq!(op["percentComplete"], 100);

    // 22–24. List, get, use.
    let (_, list) = lab.get_json(&lab.url("extendedquerytags")).await;
    assert_eq!(
        list[0],
        serde_json::json!({"path": "00100040", "vr": "CS", "level": "study", "status": "ready", "queryStatus": "enabled"})
    );
    for path in ["PatientSex", "00100040"] {
        let (status, tag) = lab
            .get_json(&lab.url(&format!("extendedquerytags/{path}")))
            .await;
        assert_eq!((status, &tag), (200, &list[0]));
    }
    let (status, found) = lab.get_json(&lab.url("studies?PatientSex=F")).await;
    assert_eq!(status, 200);
    assert_eq!(first_str(&found[0], "0020000D").as_deref(), Some(st));

    // 25. Disable: then searching on it is 400.
    let (status, _, text) = lab
        .json_request(
            Method::PATCH,
            &lab.url("extendedquerytags/PatientSex"),
            r#"{"QueryStatus":"Disabled"}"#,
        )
        .await;
    assert_eq!(status, 200);
    let tag: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(tag["queryStatus"], "disabled");
    let r = lab
        .get(&lab.url("studies?PatientSex=F"))
        .header(ACCEPT, DICOM_JSON)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.expect("text"),
        "Query is disabled on specified attribute 'PatientSex'."
    );

    // 26–27. Errors, delete, delete again.
    let (status, errors) = lab
        .get_json(&lab.url("extendedquerytags/PatientSex/errors"))
        .await;
    assert_eq!((status, errors), (200, Value::Array(vec![])));
    let (status, _, _) = lab
        .json_request(Method::DELETE, &lab.url("extendedquerytags/PatientSex"), "")
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = lab
        .json_request(Method::DELETE, &lab.url("extendedquerytags/PatientSex"), "")
        .await;
    assert_eq!(status, 404);

    // 28–30. Deletes, with a Delete entry in the change feed.
    let del = |path: String| {
        let req = lab.http.delete(lab.url(&path)).bearer_auth(&lab.token);
        async move { req.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(del(inst.clone()).await, 204);
    assert_eq!(del(inst.clone()).await, 404);
    let (_, latest) = lab.get_json(&lab.url("changefeed/latest")).await;
    assert_eq!(
        (latest["action"].as_str(), latest["sopInstanceUid"].as_str()),
        (Some("Delete"), Some(RED_UID))
    );
    assert_eq!(del(format!("studies/{st}/series/{se1}")).await, 204);
    let (status, _) = lab
        .get_json(&lab.url(&format!("instances?SOPInstanceUID={GREEN_UID}")))
        .await;
    assert_eq!(status, 204);
    assert_eq!(del(format!("studies/{st}")).await, 204);
    let (status, _) = lab
        .get_json(&lab.url(&format!("studies?StudyInstanceUID={st}")))
        .await;
    assert_eq!(status, 204);
    let r = lab
        .get(&lab.url(&format!("studies/{st}")))
        .header(ACCEPT, any)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn multipart_store_to_the_study_on_a_fresh_service() {
    let lab = Lab::start().await;
    let (status, body) = lab
        .store_multipart(&lab.url(&format!("studies/{STUDY_UID}")), &sample_files())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(values(&body, "00081199").len(), 3);
    assert!(
        first_str(&body, "00081190")
            .expect("url")
            .ends_with(&format!("/v1/studies/{STUDY_UID}"))
    );
    // Some exist already: 202.
    let extra = instance(STUDY_UID, SERIES2_UID, &uid(), &[]);
    let mut files = sample_files();
    files.push(extra);
    let (status, _) = lab
        .store_multipart(&lab.url(&format!("studies/{STUDY_UID}")), &files)
        .await;
    assert_eq!(status, 202);
}
