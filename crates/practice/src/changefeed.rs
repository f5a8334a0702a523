//! Change feed (docs/contract.md §7): v1 pages by sequence window, v2 by rows in time order with a time window.
//! Entries are immutable and never renumbered; their state is derived from what is stored now.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::auth::{Action, Caller};
use super::error::{ApiError, ApiResult};
use super::{ApiVersion, Service, SharedService, format_timestamp};

/// Query parameters, names matched without case (ASP.NET binding).
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn int(&self, name: &str, default: i64, min: i64, max: i64) -> ApiResult<i64> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ if max == i64::MAX => Err(ApiError::bad_query_param(
                    name,
                    &format!(
                        "The value '{v}' is not valid. It must be an integer of at least {min}."
                    ),
                )),
                _ => Err(ApiError::bad_query_param(
                    name,
                    &format!(
                        "The value '{v}' is not valid. It must be an integer between {min} and {max}."
                    ),
                )),
            },
        }
    }
    pub(crate) fn bool(&self, name: &str, default: bool) -> ApiResult<bool> {
        match self.get(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::bad_query_param(
                name,
                &format!("The value '{v}' is not a valid boolean."),
            )),
        }
    }
    fn time(&self, name: &str) -> ApiResult<Option<OffsetDateTime>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => OffsetDateTime::parse(v.trim(), &Rfc3339).map(Some).map_err(|_| {
                ApiError::bad_query_param(
                    name,
                    &format!("The value '{v}' is not a valid date and time with a time zone (for example 2023-05-03T10:58:00Z)."),
                )
            }),
        }
    }
}

/// One row as read from the index.
struct Row {
    sequence: i64,
    study: String,
    series: String,
    sop: String,
    action: String,
    timestamp: String,
    watermark: i64,
    current: Option<i64>,
    metadata: Option<String>,
}

const SELECT: &str =
    "SELECT c.sequence, c.study_uid, c.series_uid, c.sop_uid, c.action, c.timestamp, c.watermark,
        i.watermark, i.metadata
    FROM changefeed c LEFT JOIN instances i
      ON i.study_uid = c.study_uid AND i.series_uid = c.series_uid AND i.sop_uid = c.sop_uid";

fn read_rows(
    svc: &Service,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Row>, super::db::DbError> {
    let c = svc.db.lock()?;
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt
        .query_map(args, |r| {
            Ok(Row {
                sequence: r.get(0)?,
                study: r.get(1)?,
                series: r.get(2)?,
                sop: r.get(3)?,
                action: r.get(4)?,
                timestamp: r.get(5)?,
                watermark: r.get(6)?,
                current: r.get(7)?,
                metadata: r.get(8)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn entry(row: Row, include_metadata: bool) -> Value {
    // Contract §7.4: Deleted when the instance is gone, Replaced when a newer version exists.
    let state = match row.current {
        None => "Deleted",
        Some(w) if w == row.watermark => "Current",
        Some(_) => "Replaced",
    };
    let mut e = Map::new();
    e.insert("sequence".into(), json!(row.sequence));
    e.insert("partitionName".into(), json!("Microsoft.Default"));
    e.insert("studyInstanceUid".into(), json!(row.study));
    e.insert("seriesInstanceUid".into(), json!(row.series));
    e.insert("sopInstanceUid".into(), json!(row.sop));
    e.insert("action".into(), json!(row.action));
    e.insert("timestamp".into(), json!(row.timestamp));
    e.insert("state".into(), json!(state));
    if include_metadata
        && let Some(m) = row
            .metadata
            .and_then(|m| serde_json::from_str::<Value>(&m).ok())
    {
        e.insert("metadata".into(), m);
    }
    Value::Object(e)
}

/// `GET /v{n}/changefeed`
pub(crate) async fn feed(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    caller.require(&svc, Action::Read)?;
    let p = Params::new(q);
    let include = p.bool("includeMetadata", true)?;
    let rows = if version.v2 {
        let offset = p.int("offset", 0, 0, i64::MAX)?;
        let limit = p.int("limit", 100, 1, 200)?;
        let start = p.time("startTime")?;
        let end = p.time("endTime")?;
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            return Err(ApiError::bad_query_param(
                "endTime",
                "The end time must be after the start time.",
            ));
        }
        let start = start.map_or_else(|| String::from("0000"), format_timestamp);
        let end = end.map_or_else(|| String::from("9999"), format_timestamp);
        svc.db(move |s| {
            read_rows(
                s,
                &format!(
                    "{SELECT} WHERE c.timestamp >= ?1 AND c.timestamp < ?2 ORDER BY c.timestamp, c.sequence LIMIT ?3 OFFSET ?4"
                ),
                &[&start, &end, &limit, &offset],
            )
        })
        .await?
    } else {
        let offset = p.int("offset", 0, 0, i64::MAX)?;
        let limit = p.int("limit", 10, 1, 100)?;
        // v1: a window of sequence numbers, offset < sequence <= offset + limit (docs/contract.md §7.2).
        let upper = offset.saturating_add(limit);
        svc.db(move |s| {
            read_rows(
                s,
                &format!("{SELECT} WHERE c.sequence > ?1 AND c.sequence <= ?2 ORDER BY c.sequence"),
                &[&offset, &upper],
            )
        })
        .await?
    };
    let entries: Vec<Value> = rows.into_iter().map(|r| entry(r, include)).collect();
    Ok(Json(entries).into_response())
}

/// `GET /v{n}/changefeed/latest`
pub(crate) async fn latest(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    caller.require(&svc, Action::Read)?;
    let include = Params::new(q).bool("includeMetadata", true)?;
    let order = if version.v2 {
        "c.timestamp DESC, c.sequence DESC"
    } else {
        "c.sequence DESC"
    };
    let mut rows = svc
        .db(move |s| read_rows(s, &format!("{SELECT} ORDER BY {order} LIMIT 1"), &[]))
        .await?;
    match rows.pop() {
        Some(r) => Ok(Json(entry(r, include)).into_response()),
        // Contract §7.4: an empty feed has no latest entry; ASP.NET sends 204 for the null result.
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}
