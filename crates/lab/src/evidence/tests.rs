//! Unit tests of the evidence: tools and methods, the checks' own rows left out, the audit query.

use super::own::leave_out_own;
use super::*;
use dicomlab_dicomweb::LogTable;
use dicomlab_dicomweb::ledger::route_key;

#[test]
fn tools_and_methods() {
    assert_eq!(tool_of("PostmanRuntime/7.39.0").as_deref(), Some("Postman"));
    assert_eq!(tool_of("curl/8.5.0").as_deref(), Some("curl"));
    assert_eq!(tool_of("python-requests/2.32").as_deref(), Some("Python"));
    assert_eq!(tool_of(""), None);
    assert_eq!(method_of("Store", "/v1/studies"), "POST");
    assert_eq!(
        method_of("remove-extended-query-tag", "/v1/extendedquerytags/x"),
        "DELETE"
    );
    assert_eq!(
        method_of("UpdateExtendedQueryTag", "/v1/extendedquerytags/x"),
        "PATCH"
    );
    assert_eq!(
        method_of("RetrieveMetadata", "/v1/studies/1/metadata"),
        "GET"
    );
    assert_eq!(
        method_of("AddExtendedQueryTag", "/v1/extendedquerytags"),
        "POST"
    );
}

fn row(at: &str, method: &str, url: &str) -> Attempt {
    Attempt {
        at: dicomlab_dicomweb::parse_timestamp(at),
        method: method.into(),
        url: url.into(),
        status: 200,
        source: Source::AuditLog,
        tool: None,
        detail: None,
        parsed: Default::default(),
        principal: None,
    }
}

#[test]
fn an_anonymous_probe_answered_401_is_no_attempt() {
    let mut e = dicomlab_dicomweb::Exchange {
        method: "GET".into(),
        url: "http://h/v1/changefeed/latest".into(),
        status: Some(401),
        at: Some(time::macros::datetime!(2026-11-30 14:00:00 UTC)),
        ..Default::default()
    };
    assert!(Attempt::from_exchange(&e).is_none());
    e.request_headers
        .push(("Authorization".into(), "Bearer $TOKEN".into()));
    assert_eq!(
        Attempt::from_exchange(&e).map(|a| a.status),
        Some(401),
        "a token refused is an attempt"
    );
}

#[test]
fn the_checks_own_rows_are_left_out_one_for_one() {
    let mut rows = vec![
        row(
            "2026-11-30T14:00:01Z",
            "GET",
            "https://h/v1/studies/1/metadata",
        ),
        row(
            "2026-11-30T14:00:02Z",
            "GET",
            "https://h/v1/studies/1/metadata",
        ),
        row("2026-11-30T14:00:03Z", "POST", "/oauth2/token"),
        row(
            "2026-11-30T15:00:00Z",
            "GET",
            "https://h/v1/studies/1/metadata",
        ),
    ];
    let own = [
        OwnRequest {
            at: time::macros::datetime!(2026-11-30 14:00:00 UTC),
            method: "GET".into(),
            path: route_key("https://h/v1/studies/1/metadata?x=1"),
        },
        OwnRequest {
            at: time::macros::datetime!(2026-11-30 14:00:02 UTC),
            method: "POST".into(),
            path: route_key("https://login.example/tenant/oauth2/v2.0/token"),
        },
    ];
    leave_out_own(&mut rows, &own);
    let left: Vec<String> = rows.iter().filter_map(|a| a.at).map(rfc3339).collect();
    // One metadata read was the check's; the other (a second later) and the one an hour later
    // are the learner's; the token row near the check's own fetch was the check's.
    assert_eq!(left, ["2026-11-30T14:00:02Z", "2026-11-30T15:00:00Z"]);
}

#[test]
fn the_audit_query_asks_for_the_learners_rows_only() {
    let learner = Learner {
        ids: ["0000-app".to_string(), "bad\" or 1==1".to_string()].into(),
        shared: true,
    };
    let q = audit_query(None, &learner);
    assert!(
        q.contains("tostring(Identity) contains \"0000-app\""),
        "{q}"
    );
    // An id that is not GUID-like never reaches the query; on a shared service rows that name
    // nobody are not asked for.
    assert!(!q.contains("bad"), "{q}");
    assert!(!q.contains("!has"), "{q}");
    let own = Learner {
        shared: false,
        ..learner
    };
    assert!(audit_query(None, &own).contains("!has \"claims\""));
    // That every query parses in the practice workspace's Kusto is shown where both meet: the
    // lab's tests against a practice service run these queries (tests/lab/practice.rs).
}

#[test]
fn audit_rows_become_attempts_and_checks_rows_are_left_out() {
    let body = serde_json::json!({"tables": [{"name": "PrimaryResult",
    "columns": [{"name": "TimeGenerated", "type": "datetime"}, {"name": "OperationName", "type": "string"},
                {"name": "Identity", "type": "dynamic"}, {"name": "StatusCode", "type": "int"},
                {"name": "ResultType", "type": "string"}, {"name": "Uri", "type": "string"}],
    "rows": [
        ["2026-11-30T14:03:00Z", "Store", {"claims": {"appid": "me"}}, 415, "Failed", "https://h/v1/studies"],
        ["2026-11-30T14:03:01Z", "Store", {}, null, "Started", "https://h/v1/studies"],
        ["2026-11-30T14:04:00Z", "ChangeFeed", {"claims": {"appid": "me"}}, 200, "Succeeded", "https://h/v1/changefeed?offset=0&dicomlab-check=1"]
    ]}]});
    let t = LogTable::parse(&body).expect("table");
    let a: Vec<Attempt> = t.rows.iter().filter_map(|r| audit_attempt(&t, r)).collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].method, "POST");
    assert_eq!(a[0].status, 415);
    assert_eq!(a[0].line(), "POST /v1/studies");
    let learner = Learner {
        ids: ["me".to_string()].into(),
        shared: false,
    };
    assert_eq!(learner.is(&t.dynamic(&t.rows[0], "Identity")), Some(true));
    assert_eq!(
        learner.is(&serde_json::json!({"claims": {"oid": "other"}})),
        Some(false)
    );
    assert_eq!(learner.is(&serde_json::json!({})), None);
}
