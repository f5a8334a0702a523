//! Unit tests of the query language.

use super::eval::*;
use super::parse::*;
use super::query::*;
use super::table::*;
use super::times::*;
use time::macros::datetime;

fn table() -> Table {
    Table {
        columns: vec![
            Column {
                name: "TimeGenerated".into(),
                ty: "datetime",
            },
            Column {
                name: "OperationName".into(),
                ty: "string",
            },
            Column {
                name: "StatusCode".into(),
                ty: "int",
            },
            Column {
                name: "Identity".into(),
                ty: "dynamic",
            },
        ],
        rows: vec![
            vec![
                Cell::Time(datetime!(2026-11-30 14:00 UTC)),
                Cell::Str("Store".into()),
                Cell::Int(200),
                Cell::Dyn(serde_json::json!({"claims": {"appid": "a"}})),
            ],
            vec![
                Cell::Time(datetime!(2026-11-30 14:05 UTC)),
                Cell::Str("Query".into()),
                Cell::Int(400),
                Cell::Dyn(serde_json::json!({"claims": {"appid": "b"}})),
            ],
            vec![
                Cell::Time(datetime!(2026-11-30 14:10 UTC)),
                Cell::Str("RetrieveMetadata".into()),
                Cell::Null,
                Cell::Dyn(serde_json::json!({})),
            ],
        ],
    }
}

fn run(q: &str) -> Result<Table, KqlError> {
    parse(q, datetime!(2026-11-30 14:12 UTC))?.run(table())
}

#[test]
fn where_order_take_project() {
    let t = run("AHDSDicomAuditLogs | where TimeGenerated >= ago(10m) and StatusCode != 400 | order by TimeGenerated asc | take 5 | project OperationName").expect("runs");
    assert_eq!(t.columns.len(), 1);
    assert_eq!(t.rows, vec![vec![Cell::Str("RetrieveMetadata".into())]]);
    let t =
        run("T | where OperationName has \"store\" or StatusCode == 400 | sort by TimeGenerated")
            .expect("runs");
    assert_eq!(t.rows.len(), 2);
    assert_eq!(t.rows[0][1], Cell::Str("Query".into()), "desc by default");
    let t = run("T | where tostring(Identity.claims.appid) == 'a'").expect("runs");
    assert_eq!(t.rows.len(), 1);
    let t = run("T | where TimeGenerated > datetime(2026-11-30T14:04:00Z)").expect("runs");
    assert_eq!(t.rows.len(), 2);
    let t = run("T | where OperationName startswith 'retrieve' | limit 1").expect("runs");
    assert_eq!(t.rows.len(), 1);
}

#[test]
fn refusals_say_why() {
    assert!(
        matches!(run("T | summarize count()"), Err(KqlError::Syntax(m)) if m.contains("summarize"))
    );
    assert!(matches!(run("T | where Nope == 1"), Err(KqlError::Semantic(m)) if m.contains("Nope")));
    assert!(matches!(
        run("T | where StatusCode == \"x"),
        Err(KqlError::Syntax(_))
    ));
    assert!(run("").is_err());
    let long = format!(
        "T | where OperationName == '{}'",
        "x".repeat(MAX_QUERY_CHARS)
    );
    assert!(run(&long).is_err());
    let many = format!("T{}", " | take 1".repeat(MAX_OPS + 1));
    assert!(run(&many).is_err());
}

#[test]
fn a_lower_bound_narrows_the_read() {
    let now = datetime!(2026-11-30 14:12 UTC);
    let q = parse(
        "T | where TimeGenerated >= ago(12m) and StatusCode > 0",
        now,
    )
    .expect("parses");
    assert_eq!(
        q.lower_bound("TimeGenerated"),
        Some(datetime!(2026-11-30 14:00 UTC))
    );
    let q = parse("T | where TimeGenerated >= ago(12m) or StatusCode > 0", now).expect("parses");
    assert_eq!(q.lower_bound("TimeGenerated"), None);
}

#[test]
fn timespans() {
    let now = datetime!(2026-11-30 14:00 UTC);
    assert_eq!(
        parse_timespan("PT1H", now),
        Some((datetime!(2026-11-30 13:00 UTC), now))
    );
    assert_eq!(
        parse_timespan("P1D", now).map(|w| w.0),
        Some(datetime!(2026-11-29 14:00 UTC))
    );
    assert_eq!(
        parse_timespan("2026-11-30T10:00:00Z/PT30M", now),
        Some((
            datetime!(2026-11-30 10:00 UTC),
            datetime!(2026-11-30 10:30 UTC)
        ))
    );
    assert_eq!(parse_timespan("yesterday", now), None);
    // Near the calendar's ends: no window, and no panic.
    assert_eq!(parse_timespan("9999-12-31T00:00:00Z/P36000D", now), None);
    assert_eq!(parse_timespan("P36000D/-9999-01-01T00:00:00Z", now), None);
    let early = datetime!(-9999-01-01 0:00 UTC);
    assert_eq!(parse_timespan("P1D", early), None);
    assert!(parse("T | where TimeGenerated >= ago(36000d)", early).is_err());
}

#[test]
fn has_is_a_whole_term() {
    assert!(has_term("get /v1/studies?x", "studies"));
    assert!(!has_term("retrievemetadata", "retrieve"));
}
