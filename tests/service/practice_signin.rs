//! CORS and the user sign-in on a real `dicomlab serve` process: preflights and CORS headers as Azure's
//! DICOM service answers them, the setting kept across a restart, and the OpenID Connect sign-in a
//! browser app (OHIF) runs — discovery, the code flow with PKCE, the implicit grant, the AADSTS errors,
//! a silent re-sign-in with the session cookie, and the user's token subject to the user's own role.

use dicomlab_testkit::served;

use std::process::Command;

use base64::Engine;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
    LOCATION, ORIGIN, SET_COOKIE,
};
use serde_json::Value;
use served::Served;

const VIEWER: &str = "http://127.0.0.1:3000";

fn dicomlab(args: &[&str]) -> (bool, String) {
    let out = Command::new(dicomlab_testkit::exe())
        .args(args)
        .output()
        .expect("run dicomlab");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn preflight(s: &Served, path: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}{path}", s.origin))
        .header(ORIGIN, origin)
        .header(ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
        .send()
        .await
        .expect("preflight")
}

fn header(r: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test]
async fn cors_is_answered_as_azures_dicom_service_answers_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let mut s = Served::start(
        &data,
        &[
            "--cors-origin",
            VIEWER,
            "--cors-header",
            "authorization",
            "--cors-method",
            "GET",
            "--cors-max-age",
            "600",
        ],
    );
    // An allowed origin's preflight: 204 with what the setting allows.
    let r = preflight(&s, "/v1/studies", VIEWER).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some(VIEWER)
    );
    assert_eq!(
        header(&r, ACCESS_CONTROL_ALLOW_METHODS).as_deref(),
        Some("GET")
    );
    assert_eq!(
        header(&r, ACCESS_CONTROL_ALLOW_HEADERS).as_deref(),
        Some("authorization")
    );
    assert_eq!(header(&r, ACCESS_CONTROL_MAX_AGE).as_deref(), Some("600"));
    // Another origin: 204 too, without a CORS header (the browser blocks the page).
    let r = preflight(&s, "/v1/studies", "http://evil.example").await;
    assert_eq!(r.status(), 204);
    assert!(header(&r, ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    // Every answer carries it for an allowed origin: a 401, a 200, a 404.
    let http = reqwest::Client::new();
    let token = s.token().await;
    for (auth, path, status) in [
        (false, "/v1/studies", 401),
        (true, "/v1/studies?limit=1", 204),
        (true, "/v1/studies/1.2.3/metadata", 404),
    ] {
        let mut req = http
            .get(format!("{}{path}", s.origin))
            .header(ORIGIN, VIEWER);
        if auth {
            req = req.bearer_auth(&token);
        }
        let r = req.send().await.expect("get");
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(
            header(&r, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
            Some(VIEWER),
            "{path}"
        );
        let r = http
            .get(format!("{}{path}", s.origin))
            .header(ORIGIN, "http://evil.example")
            .send()
            .await
            .expect("get");
        assert!(header(&r, ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{path}");
    }
    // The admin routes and the Log Analytics route never take part.
    for path in ["/admin/roles", "/admin/cors", "/loganalytics/v1/workspaces"] {
        let r = preflight(&s, path, VIEWER).await;
        assert!(header(&r, ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{path}");
    }
    // Set "as in the portal": the whole setting, checked, kept across a restart.
    let service = s.origin.clone();
    let (ok, out) = dicomlab(&[
        "cors",
        "set",
        "--service",
        &service,
        "--origin",
        "*",
        "--allow-credentials",
    ]);
    assert!(
        !ok && out.contains("Allow credentials can't be set"),
        "{out}"
    );
    let (ok, out) = dicomlab(&[
        "cors",
        "set",
        "--service",
        &service,
        "--origin",
        "http://127.0.0.1:4000,https://viewer.example",
        "--header",
        "*",
        "--method",
        "*",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("origins http://127.0.0.1:4000, https://viewer.example"),
        "{out}"
    );
    let r = preflight(&s, "/v1/studies", "https://viewer.example").await;
    assert_eq!(
        header(&r, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some("https://viewer.example")
    );
    assert_eq!(
        header(&r, ACCESS_CONTROL_ALLOW_METHODS).as_deref(),
        Some("GET"),
        "* echoes the method asked"
    );
    assert_eq!(
        header(&r, ACCESS_CONTROL_ALLOW_HEADERS).as_deref(),
        Some("authorization")
    );
    assert!(
        header(
            &preflight(&s, "/v1/studies", VIEWER).await,
            ACCESS_CONTROL_ALLOW_ORIGIN
        )
        .is_none()
    );
    // The admin route refuses a bad setting with the portal's reason, and a caller without the header.
    let r = http
        .put(format!("{service}/admin/cors"))
        .header("X-Dicomlab-Admin", "1")
        .json(&serde_json::json!({"origins": ["ftp://x"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap_or_default()
            .contains("is not an origin")
    );
    let r = http
        .put(format!("{service}/admin/cors"))
        .json(&serde_json::json!({"origins": ["*"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 403);
    let r = http
        .put(format!("{service}/admin/cors"))
        .header("X-Dicomlab-Admin", "1")
        .body(vec![b' '; 70 * 1024])
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 413);
    s.kill9();
    let port = s.port;
    drop(s);
    let s = Served::start_on(&data, port, "127.0.0.1", &[]);
    let r = preflight(&s, "/v1/studies", "http://127.0.0.1:4000").await;
    assert_eq!(
        header(&r, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some("http://127.0.0.1:4000"),
        "kept across a restart"
    );
    let (ok, out) = dicomlab(&["cors", "clear", "--service", &s.origin]);
    assert!(ok && out.contains("off"), "{out}");
    assert!(
        header(
            &preflight(&s, "/v1/studies", "http://127.0.0.1:4000").await,
            ACCESS_CONTROL_ALLOW_ORIGIN
        )
        .is_none()
    );
}

/// The PKCE pair of RFC 7636's example.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn query_of(url: &str, fragment: bool) -> Vec<(String, String)> {
    let part = if fragment {
        url.split_once('#').map(|x| x.1)
    } else {
        url.split_once('?').map(|x| x.1)
    };
    serde_urlencoded::from_str(part.unwrap_or("")).expect("params")
}

fn get(params: &[(String, String)], k: &str) -> String {
    params
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The sign-in page's flow id.
fn flow_of(page: &str) -> String {
    let i = page.find("name=\"flow\" value=\"").expect("a sign-in form") + 19;
    page[i..].split('"').next().expect("flow").to_string()
}

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("json")
}

async fn audit_rows(s: &Served, query: &str) -> Vec<Value> {
    let r = reqwest::Client::new()
        .post(format!("{}/{}/oauth2/token", s.origin, s.tenant_id))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.as_str()),
            ("resource", "https://api.loganalytics.io"),
        ])
        .send()
        .await
        .expect("token");
    let v: Value = r.json().await.expect("json");
    let token = v["access_token"].as_str().expect("token").to_string();
    let ws: Value = reqwest::get(format!("{}/loganalytics/v1/workspaces", s.origin))
        .await
        .expect("ws")
        .json()
        .await
        .expect("json");
    let id = ws[0]["id"].as_str().expect("id").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/loganalytics/v1/workspaces/{id}/query",
            s.origin
        ))
        .bearer_auth(token)
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .expect("query");
    let v: Value = r.json().await.expect("json");
    let cols: Vec<String> = v["tables"][0]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect();
    v["tables"][0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            for (i, c) in cols.iter().enumerate() {
                o.insert(c.clone(), r[i].clone());
            }
            Value::Object(o)
        })
        .collect()
}

#[tokio::test]
async fn a_user_signs_in_as_a_browser_app_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Served::start(&dir.path().join("data"), &[]);
    let (t, c) = (s.tenant_id.clone(), s.client_id.clone());
    let callback = format!("{VIEWER}/callback");
    let http = no_redirects();

    // Discovery and keys: readable from any origin.
    let r = http
        .get(format!(
            "{}/{t}/v2.0/.well-known/openid-configuration",
            s.origin
        ))
        .header(ORIGIN, VIEWER)
        .send()
        .await
        .expect("discovery");
    assert_eq!(
        header(&r, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some("*")
    );
    assert!(
        header(&r, reqwest::header::CONTENT_TYPE)
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let d: Value = r.json().await.expect("json");
    let issuer = d["issuer"].as_str().expect("issuer").to_string();
    assert_eq!(issuer, format!("{}/{t}/v2.0", s.origin));
    let jwks: Value = http
        .get(d["jwks_uri"].as_str().expect("jwks_uri"))
        .send()
        .await
        .expect("keys")
        .json()
        .await
        .expect("json");
    let key = &jwks["keys"][0];
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().expect("n"),
        key["e"].as_str().expect("e"),
    )
    .expect("jwk");
    let authorize = d["authorization_endpoint"]
        .as_str()
        .expect("authorize")
        .to_string();
    let token_url = d["token_endpoint"].as_str().expect("token").to_string();

    // No redirect URI registered yet: refused on the sign-in page with AADSTS50011's text.
    let code_query = |redirect: &str, extra: &str| {
        format!(
            "{authorize}?client_id={c}&response_type=code&redirect_uri={}&scope={}&state=st8&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
            urlencode(redirect),
            urlencode("openid profile https://dicom.healthcareapis.azure.com/Dicom.ReadWrite")
        )
    };
    let r = http
        .get(code_query(&callback, ""))
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), 400);
    let page = r.text().await.expect("page");
    assert!(
        page.contains(&format!("AADSTS50011: The redirect URI &#39;{callback}&#39; specified in the request does not match the redirect URIs configured for the application &#39;{c}&#39;")),
        "{page}"
    );
    let (ok, out) = dicomlab(&[
        "app",
        "--service",
        &s.origin,
        "redirect-uri",
        "add",
        &callback,
    ]);
    assert!(ok, "{out}");

    // The sign-in page, one click, back to the app with a code and a session cookie.
    let r = http
        .get(code_query(&callback, ""))
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, reqwest::header::X_FRAME_OPTIONS).as_deref(),
        Some("DENY")
    );
    let page = r.text().await.expect("page");
    assert!(
        page.contains("Sign in as learner@practice.dicomlab.test"),
        "{page}"
    );
    assert!(page.contains("Dicom.ReadWrite"));
    let r = http
        .post(format!("{}/{t}/login", s.origin))
        .form(&[("flow", flow_of(&page).as_str())])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    let cookie = header(&r, SET_COOKIE).expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().expect("cookie").to_string();
    let location = header(&r, LOCATION).expect("location");
    assert!(location.starts_with(&format!("{callback}?")), "{location}");
    let params = query_of(&location, false);
    assert_eq!(get(&params, "state"), "st8");
    let code = get(&params, "code");
    assert!(code.len() >= 40);

    // Redeemed as a single-page app: cross-origin (Origin), with the PKCE verifier.
    let redeem_code = |code: &str, origin: Option<&str>, verifier: &str| {
        let mut req = http.post(&token_url).form(&[
            ("grant_type", "authorization_code"),
            ("client_id", c.as_str()),
            ("code", code),
            ("redirect_uri", callback.as_str()),
            ("code_verifier", verifier),
        ]);
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        req.send()
    };
    let r = redeem_code(&code, None, VERIFIER).await.expect("token");
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.expect("json");
    assert!(e["error_description"].as_str().unwrap_or("").starts_with("AADSTS9002327: Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests."), "{e}");
    // A wrong verifier spends the code, as Entra does (issue 16): the right one comes too late.
    let r = redeem_code(
        &code,
        Some(VIEWER),
        "wrong-verifier-wrong-verifier-wrong-verifier",
    )
    .await
    .expect("token");
    let e: Value = r.json().await.expect("json");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap_or("")
            .starts_with("AADSTS501481"),
        "{e}"
    );
    let r = redeem_code(&code, Some(VIEWER), VERIFIER)
        .await
        .expect("token");
    assert_eq!(r.status(), 400, "the code is spent");
    // A new code (the browser's session signs in again without the page).
    let r = http
        .get(code_query(&callback, ""))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("authorize");
    let location = header(&r, LOCATION).expect("location");
    let code = get(&query_of(&location, false), "code");
    let r = redeem_code(&code, Some(VIEWER), VERIFIER)
        .await
        .expect("token");
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some("*")
    );
    let tokens: Value = r.json().await.expect("json");
    let r = redeem_code(&code, Some(VIEWER), VERIFIER)
        .await
        .expect("token");
    let e: Value = r.json().await.expect("json");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap_or("")
            .starts_with("AADSTS70008"),
        "a code is used once: {e}"
    );

    // The id_token: RS256 with the published key, for the app, from the discovery's issuer.
    let id_token = tokens["id_token"].as_str().expect("id_token");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[c.as_str()]);
    v.set_issuer(&[issuer.as_str()]);
    let id = jsonwebtoken::decode::<Value>(id_token, &decoding, &v)
        .expect("the id_token verifies")
        .claims;
    assert_eq!(id["preferred_username"], "learner@practice.dicomlab.test");
    assert!(id["sub"].as_str().is_some_and(|s| !s.is_empty()));
    // The access token: the DICOM audience, the delegated permission, the user.
    let access = tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let claims = jwt_claims(&access);
    assert_eq!(claims["aud"], "https://dicom.healthcareapis.azure.com");
    assert_eq!(claims["scp"], "Dicom.ReadWrite");
    assert_eq!(claims["upn"], "learner@practice.dicomlab.test");
    assert_eq!(claims["appid"], c.as_str());
    assert_eq!(
        tokens["scope"],
        "https://dicom.healthcareapis.azure.com/Dicom.ReadWrite"
    );

    // The user has no role yet (the app has DICOM Data Owner): 403, then 200 once the user has one.
    let studies = format!("{}/v1/studies?limit=1", s.origin);
    let r = reqwest::Client::new()
        .get(&studies)
        .bearer_auth(&access)
        .send()
        .await
        .expect("qido");
    assert_eq!(r.status(), 403);
    let (ok, out) = dicomlab(&["role", "--service", &s.origin, "grant", "reader", "--user"]);
    assert!(
        ok && out.contains("to user learner@practice.dicomlab.test"),
        "{out}"
    );
    let r = reqwest::Client::new()
        .get(&studies)
        .bearer_auth(&access)
        .header("User-Agent", "Mozilla/5.0 (test)")
        .send()
        .await
        .expect("qido");
    assert_eq!(r.status(), 204, "a reader may search");
    let (ok, out) = dicomlab(&["role", "--service", &s.origin, "list"]);
    assert!(
        ok && out.contains("(user learner@practice.dicomlab.test): DICOM Data Reader"),
        "{out}"
    );

    // The audit log tells the user's requests from the app's; the user sign-in log has the sign-in.
    let rows = audit_rows(&s, "AHDSDicomAuditLogs | where ResultType != \"Started\"").await;
    let user_rows: Vec<&Value> = rows
        .iter()
        .filter(|r| r["Identity"]["claims"]["scp"] == "Dicom.ReadWrite")
        .collect();
    assert_eq!(user_rows.len(), 2, "{rows:?}");
    assert_eq!(
        user_rows[0]["Identity"]["claims"]["upn"],
        "learner@practice.dicomlab.test"
    );
    assert_eq!(user_rows[1]["StatusCode"], 204);
    let signins = audit_rows(&s, "SigninLogs").await;
    assert!(
        signins
            .iter()
            .any(|r| r["ResultType"] == "50011" && r["AppId"] == c.as_str()),
        "{signins:?}"
    );
    assert!(
        signins.iter().any(|r| r["ResultType"] == "0"
            && r["UserPrincipalName"] == "learner@practice.dicomlab.test")
    );
    let sp = audit_rows(&s, "AADServicePrincipalSignInLogs").await;
    assert!(
        sp.iter().all(|r| r["AppId"] == c.as_str()),
        "code redemptions are not the app's sign-ins"
    );

    // A signed-in browser comes back without the page (what OHIF's reload relies on); prompt=none
    // without a session is login_required.
    let r = http
        .get(code_query(&callback, ""))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), 302);
    assert!(header(&r, LOCATION).is_some_and(|l| l.contains("code=")));
    let r = http
        .get(code_query(&callback, "&prompt=none"))
        .send()
        .await
        .expect("authorize");
    let l = header(&r, LOCATION).expect("location");
    assert_eq!(get(&query_of(&l, false), "error"), "login_required");

    // The implicit grant, refused until the app registration enables it.
    let implicit = |rt: &str| {
        format!(
            "{authorize}?client_id={c}&response_type={}&redirect_uri={}&scope={}&state=s2&nonce=n0nce",
            urlencode(rt),
            urlencode(&callback),
            urlencode("openid https://dicom.healthcareapis.azure.com/Dicom.ReadWrite")
        )
    };
    let r = http
        .get(implicit("id_token token"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("authorize");
    let l = header(&r, LOCATION).expect("location");
    let p = query_of(&l, true);
    assert_eq!(get(&p, "error"), "unsupported_response_type");
    assert!(
        get(&p, "error_description").starts_with("AADSTS700051"),
        "{l}"
    );
    let (ok, out) = dicomlab(&[
        "app",
        "--service",
        &s.origin,
        "implicit",
        "--access-tokens",
        "--id-tokens",
    ]);
    assert!(ok, "{out}");
    let r = http
        .get(implicit("id_token token"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("authorize");
    let l = header(&r, LOCATION).expect("location");
    let p = query_of(&l, true);
    let at = get(&p, "access_token");
    let id = jsonwebtoken::decode::<Value>(&get(&p, "id_token"), &decoding, &v)
        .expect("verifies")
        .claims;
    assert_eq!(id["nonce"], "n0nce");
    let hash = dicomlab_practice::identity::keys::at_hash(&at);
    assert_eq!(id["at_hash"], hash.as_str());
    assert_eq!(get(&p, "state"), "s2");
    // A wrong scope on the DICOM resource goes back to the app.
    let r = http
        .get(implicit("token").replace("Dicom.ReadWrite", "Dicom.Everything"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("authorize");
    let p = query_of(&header(&r, LOCATION).expect("location"), true);
    assert!(get(&p, "error_description").starts_with("AADSTS650053"));

    // Signing out ends the session: the page is shown again.
    let r = http
        .get(format!("{}/{t}/oauth2/v2.0/logout", s.origin))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("logout");
    assert!(header(&r, SET_COOKIE).is_some_and(|c| c.contains("Max-Age=0")));
    let r = http
        .get(code_query(&callback, ""))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), 200, "signed out: the sign-in page again");
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)])
        .expect("encode")
        .trim_start_matches("x=")
        .to_string()
}

/// This machine's address on a non-loopback interface, if it has one.
fn outside_address() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn one_click_sign_in_is_offered_only_on_this_machine() {
    let Some(ip) = outside_address() else {
        eprintln!("SKIPPED: this machine has no address outside loopback");
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let s = Served::start_on(
        &dir.path().join("data"),
        served::free_port(),
        "0.0.0.0",
        &[],
    );
    let callback = format!("{VIEWER}/callback");
    let (ok, out) = dicomlab(&[
        "app",
        "--service",
        &s.origin,
        "redirect-uri",
        "add",
        &callback,
    ]);
    assert!(ok, "{out}");
    let from_outside = format!("http://{ip}:{}", s.port);
    let http = no_redirects();
    let r = http
        .get(format!(
            "{from_outside}/{}/oauth2/v2.0/authorize?client_id={}&response_type=code&redirect_uri={}&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256",
            s.tenant_id,
            s.client_id,
            urlencode(&callback)
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("page");
    assert!(
        !page.contains("id=\"signin\""),
        "no button for a browser elsewhere: {page}"
    );
    assert!(page.contains("only in a browser on this machine"), "{page}");
    let r = http
        .post(format!("{from_outside}/{}/login", s.tenant_id))
        .form(&[("flow", "anything")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 403);
}
