//! Trust: tokens must name their client, admin routes refuse cross-site requests, anonymous floods cost
//! the audit log nothing, a foreign data folder is left untouched, and every file written is private.

use super::*;

#[tokio::test]
async fn a_foreign_data_folder_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let foreign = dir.path().join("documents");
    std::fs::create_dir_all(foreign.join("tmp")).expect("mkdir");
    std::fs::create_dir_all(foreign.join("blobs/ab")).expect("mkdir");
    std::fs::write(foreign.join("tmp/draft.txt"), "mine").expect("write");
    std::fs::write(foreign.join("blobs/ab/photo.dcm"), "mine").expect("write");
    std::fs::write(foreign.join("thesis.txt"), "mine").expect("write");
    let err = Served::try_start_on(&foreign, served::free_port(), "127.0.0.1", &[])
        .err()
        .expect("refused");
    assert!(
        err.contains("not empty and was not created by `dicomlab serve`"),
        "{err}"
    );
    for f in ["tmp/draft.txt", "blobs/ab/photo.dcm", "thesis.txt"] {
        assert!(foreign.join(f).exists(), "{f} was touched");
    }
    assert!(!foreign.join(".dicomlab-practice").exists());

    let fresh = dir.path().join("fresh");
    let mut s = Served::start(&fresh, &[]);
    assert!(fresh.join(".dicomlab-practice").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), 0o700);
        for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
            let p = fresh.join(f);
            if p.exists() {
                assert_eq!(mode(&p), 0o600, "{f}");
            }
        }
    }
    s.assert_healthy(200).await;
}

/// Signs claims with the service's own key (read from its index, as an attacker with a copy could).
fn sign(s: &Served, claims: &Value) -> String {
    let c = rusqlite::Connection::open(s.data.join("index.sqlite")).expect("index");
    let key: String = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'signing_key'",
            [],
            |r| r.get(0),
        )
        .expect("key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("sign")
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("claims")
}

#[tokio::test]
async fn tokens_must_name_their_client_and_admin_routes_refuse_cross_site_requests() {
    let dir = tempfile::tempdir().expect("tmp");
    // On [::]: loopback IPv4 clients arrive as ::ffff:127.0.0.1.
    let mut s = Served::start_on(&dir.path().join("data"), served::free_port(), "[::]", &[]);
    let token = s.token().await;
    let http = reqwest::Client::new();
    let read = |t: String| http.get(s.url("changefeed?limit=1")).bearer_auth(t).send();
    assert_eq!(read(token.clone()).await.expect("send").status(), 200);
    let good = claims_of(&token);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: [(&str, Edit, &str); 4] = [
        (
            "no appid",
            Box::new(|c| _ = c.as_object_mut().map(|o| o.remove("appid"))),
            "names no client",
        ),
        (
            "other tenant",
            Box::new(|c| c["tid"] = "11111111-1111-1111-1111-111111111111".into()),
            "another tenant",
        ),
        (
            "other issuer",
            Box::new(|c| c["iss"] = "https://sts.windows.net/evil/".into()),
            "issuer is invalid",
        ),
        (
            "not yet valid",
            Box::new(move |c| c["nbf"] = (now + 3600).into()),
            "not valid yet",
        ),
    ];
    for (what, edit, why) in cases {
        let mut c = good.clone();
        edit(&mut c);
        let r = read(sign(&s, &c)).await.expect("send");
        assert_eq!(r.status(), 401, "{what}");
        let www = r.headers()["www-authenticate"]
            .to_str()
            .expect("header")
            .to_string();
        assert!(www.contains(why), "{what}: {www}");
    }

    let grant = format!(
        "{}/admin/roles/{}/DICOM%20Data%20Owner",
        s.origin, s.client_id
    );
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let refused: [(&str, Headers, &str); 3] = [
        ("no admin header", vec![], "X-Dicomlab-Admin"),
        (
            "a rebound name",
            vec![("X-Dicomlab-Admin", "1"), ("Host", "evil.example:8042")],
            "addressed to this machine",
        ),
        (
            "a foreign page",
            vec![("X-Dicomlab-Admin", "1"), ("Origin", "http://evil.example")],
            "other sites",
        ),
    ];
    for (what, headers, why) in refused {
        let mut req = http.put(&grant);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let r = req.send().await.expect("send");
        assert_eq!(r.status(), 403, "{what}");
        let text = r.text().await.expect("text");
        assert!(text.contains(why), "{what}: {text}");
    }
    let r = http
        .put(&grant)
        .header("X-Dicomlab-Admin", "1")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "an IPv4-mapped loopback peer is loopback");
    s.assert_healthy(200).await;
}

/// Issue 16: requests without a valid token cannot make the audit log (and every check that reads it)
/// costly. 32,000 anonymous requests with 2 KiB URIs and User-Agents against a real `dicomlab serve`:
/// the log keeps a few small rows of them (as many as a person makes), and the learner's next check —
/// a query that wants the newest 100 rows — reads what it returns, not the table: fast, and the
/// process's memory stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_floods_cost_the_audit_log_and_its_queries_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut svc = served::Served::start(&dir.path().join("data"), &[]);
    let http = reqwest::Client::new();
    let long = "x".repeat(2000);
    let flood_from = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let (http, url, ua) = (
            http.clone(),
            svc.url(&format!("studies/{long}")),
            format!("flood-{t}/{long}"),
        );
        tasks.spawn(async move {
            let mut answered = 0u32;
            for _ in 0..4_000 {
                if let Ok(r) = http.get(&url).header("User-Agent", &ua).send().await {
                    answered += u32::from(r.status() == 401);
                }
            }
            answered
        });
    }
    let mut refused = 0;
    while let Some(n) = tasks.join_next().await {
        refused += n.expect("flood task");
    }
    let flood = flood_from.elapsed();
    assert_eq!(refused, 32_000, "every anonymous request is a 401");

    // The learner's query, as a check sends it.
    let token = |resource: &'static str| {
        let http = http.clone();
        let url = format!("{}/{}/oauth2/token", svc.origin, svc.tenant_id);
        let form = [
            ("grant_type", "client_credentials".to_string()),
            ("client_id", svc.client_id.clone()),
            ("client_secret", svc.client_secret.clone()),
            ("resource", resource.to_string()),
        ];
        async move {
            let v: Value = http
                .post(url)
                .form(&form)
                .send()
                .await
                .expect("token")
                .json()
                .await
                .expect("json");
            v["access_token"].as_str().expect("token").to_string()
        }
    };
    let la = token("https://api.loganalytics.io").await;
    let workspace: Value = http
        .get(format!("{}/loganalytics/v1/workspaces", svc.origin))
        .send()
        .await
        .expect("workspaces")
        .json()
        .await
        .expect("json");
    let workspace = workspace[0]["id"].as_str().expect("id").to_string();
    let query = |kql: &str| {
        http.post(format!(
            "{}/loganalytics/v1/workspaces/{workspace}/query",
            svc.origin
        ))
        .bearer_auth(&la)
        .json(&serde_json::json!({ "query": kql }))
        .send()
    };
    // The audit log is written a moment after the requests.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let all: Value = query("AHDSDicomAuditLogs | take 30000")
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    let rows = all["tables"][0]["rows"].as_array().expect("rows");
    // A burst, then a couple a second: never the flood.
    let bound = 60 + (flood.as_secs_f64() * 2.0).ceil() as usize + 2;
    assert!(
        rows.len() <= bound,
        "{} rows kept of 32,000 anonymous requests in {flood:?} (bound {bound})",
        rows.len()
    );
    let uri = all["tables"][0]["columns"]
        .as_array()
        .and_then(|c| c.iter().position(|c| c["name"] == "Uri"))
        .expect("Uri");
    assert!(
        rows.iter()
            .all(|r| r[uri].as_str().is_some_and(|u| u.len() <= 256)),
        "anonymous rows are small"
    );

    // A learner's own requests are recorded whole, however many (16,000 of 2 KiB here)...
    let dicom = token("https://dicom.healthcareapis.azure.com").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url, dicom) = (
            http.clone(),
            svc.url(&format!("studies?StudyDescription={long}")),
            dicom.clone(),
        );
        tasks.spawn(async move {
            for _ in 0..2_000 {
                let _ = http.get(&url).bearer_auth(&dicom).send().await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // ...and the check's query, which wants the newest 100, reads about that many.
    let r = http
        .get(svc.url("studies?PatientID=mine"))
        .bearer_auth(&dicom)
        .send()
        .await
        .expect("search");
    assert!(r.status() == 204 || r.status() == 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    svc.reset_peak();
    let asked = Instant::now();
    let mine: Value = query(
        "AHDSDicomAuditLogs | where TimeGenerated >= ago(1h) and ResultType != \"Started\" | order by TimeGenerated desc | take 100",
    )
    .await
    .expect("query")
    .json()
    .await
    .expect("json");
    let took = asked.elapsed();
    let mine = mine["tables"][0]["rows"].as_array().expect("rows");
    assert!(
        mine.iter().any(|r| r[uri]
            .as_str()
            .is_some_and(|u| u.contains("PatientID=mine"))),
        "the learner's request is in the log"
    );
    eprintln!(
        "32,000 anonymous requests in {flood:?} kept {} rows; the check's query took {took:?}",
        rows.len()
    );
    svc.assert_healthy(64).await;
}

/// Issue 16: a served practice service's data — marker, lock, index, blob folders, stored
/// instances — is its owner's only, whatever made each file.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_the_service_writes_is_private() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let svc = served::Served::start(&data, &[]);
    let token = svc.token().await;
    for file in common::sample_files() {
        let (status, _) = svc.store(&token, file).await;
        assert_eq!(status, 200);
    }
    // A multipart upload large enough to be spilled to disk on its way.
    let big = common::instance(&uid(), &uid(), &uid(), &[]);
    let (ct, body) = common::multipart_related(&[big.clone(), big]);
    let r = reqwest::Client::new()
        .post(svc.url("studies"))
        .bearer_auth(&token)
        .header(CONTENT_TYPE, ct)
        .body(body)
        .send()
        .await
        .expect("store");
    assert!(r.status().is_success() || r.status() == 409);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let open = common::open_to_others(&data);
    assert!(open.is_empty(), "open to others: {open:#?}");
}
