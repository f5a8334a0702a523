//! The Log Analytics query route (`/loganalytics/v1/workspaces/{id}/query`): a token for
//! `https://api.loganalytics.io` with the "Log Analytics Reader" role, a KQL query and an optional
//! timespan, answered as `tables` → `columns` / `rows`, refused with Log Analytics' error codes.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{AUDIT_TABLE, SIGNIN_TABLE, USER_SIGNIN_TABLE};
use crate::SharedService;
use crate::auth::{LOG_ANALYTICS_RESOURCE, Role};
use crate::kql::{self, Cell, Table};

/// `GET /loganalytics/v1/workspaces`: the practice workspace's id and how late its rows arrive (a
/// practice-only route, so dicomlab finds the workspace of a served practice service by itself).
pub(crate) async fn workspaces(State(svc): State<SharedService>) -> Response {
    Json(json!([{
        "id": svc.audit.workspace_id,
        "tables": [AUDIT_TABLE, SIGNIN_TABLE, USER_SIGNIN_TABLE],
        "delaySeconds": svc.audit.delay.as_secs(),
    }]))
    .into_response()
}

/// A Log Analytics error answer.
fn la_error(
    status: StatusCode,
    code: &str,
    message: &str,
    inner: Option<(&str, &str)>,
) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some((c, m)) = inner {
        error["innererror"] = json!({"code": c, "message": m});
    }
    (status, Json(json!({"error": error}))).into_response()
}

/// A refusal of the query route: the parts of its Log Analytics error ([`la_error`]).
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    inner: Option<(&'static str, String)>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            inner: None,
        }
    }

    fn answer(self) -> Response {
        la_error(
            self.status,
            self.code,
            &self.message,
            self.inner.as_ref().map(|(c, m)| (*c, m.as_str())),
        )
    }
}

/// `400 BadArgumentError` with the inner error that says what is wrong.
fn bad_argument(inner: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        inner: Some((inner, message.into())),
        ..Refusal::new(
            StatusCode::BAD_REQUEST,
            "BadArgumentError",
            "The request had some invalid properties",
        )
    }
}

/// The workspace could not be read (logged; the answer says no more).
fn internal() -> Refusal {
    Refusal::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "The practice workspace could not be read.",
    )
}

/// `POST /loganalytics/v1/workspaces/{id}/query` `{"query": "…", "timespan": "PT1H"}` (and the GET form
/// with `?query=…&timespan=…`): the practice workspace's answer, shaped like the Log Analytics query API's.
pub(crate) async fn query(
    State(svc): State<SharedService>,
    Path(workspace): Path<String>,
    method: Method,
    headers: HeaderMap,
    params: Query<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> Response {
    match answer(&svc, &workspace, &method, &headers, &params.0, &body).await {
        Ok(resp) => resp,
        Err(refusal) => refusal.answer(),
    }
}

async fn answer(
    svc: &SharedService,
    workspace: &str,
    method: &Method,
    headers: &HeaderMap,
    params: &[(String, String)],
    body: &[u8],
) -> Result<Response, Refusal> {
    authorize(svc, headers, workspace)?;
    let (text, timespan) = query_text(method, params, body)?;
    let now = OffsetDateTime::now_utc();
    let q = kql::parse(&text, now).map_err(|e| bad_argument("SyntaxError", e.to_string()))?;
    let window = match timespan.as_deref().map(|t| kql::parse_timespan(t, now)) {
        Some(None) => {
            return Err(bad_argument(
                "InvalidTimespan",
                "timespan is an ISO 8601 duration (PT1H) or start/end.",
            ));
        }
        Some(Some(w)) => Some(w),
        None => None,
    };
    let table = read_table(svc, &q, window).await?;
    let result = q
        .run(table)
        .map_err(|e| bad_argument("SemanticError", e.to_string()))?;
    Ok(tables_answer(&result))
}

/// The caller's token, its role and the workspace: refused in Log Analytics' words.
fn authorize(svc: &SharedService, headers: &HeaderMap, workspace: &str) -> Result<(), Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let Some(token) = token else {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    let client = svc
        .auth
        .verify_for(&token, LOG_ANALYTICS_RESOURCE)
        .map_err(|why| Refusal::new(StatusCode::FORBIDDEN, why.code(), why.message()))?;
    if !svc
        .auth
        .roles_of(&client)
        .contains(&Role::LogAnalyticsReader)
    {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "InsufficientAccessError",
            format!(
                "The provided credentials have insufficient access to perform the requested operation: assign \"Log Analytics Reader\" to client {client} (practice service: `dicomlab role grant \"Log Analytics Reader\" --client {client}`)."
            ),
        ));
    }
    if !workspace.eq_ignore_ascii_case(&svc.audit.workspace_id) {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "PathNotFoundError",
            format!(
                "The requested path does not exist: no workspace '{workspace}' (this practice service's workspace is {}).",
                svc.audit.workspace_id
            ),
        ));
    }
    Ok(())
}

/// The query and the timespan: from the JSON body of a POST, else from the query string.
fn query_text(
    method: &Method,
    params: &[(String, String)],
    body: &[u8],
) -> Result<(String, Option<String>), Refusal> {
    let (text, timespan) = if method == Method::POST {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return Err(bad_argument(
                "InvalidJson",
                "The body must be JSON: {\"query\": \"…\", \"timespan\": \"PT1H\"}.",
            ));
        };
        (
            v.get("query").and_then(Value::as_str).map(str::to_string),
            v.get("timespan")
                .and_then(Value::as_str)
                .map(str::to_string),
        )
    } else {
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        (get("query"), get("timespan"))
    };
    let Some(text) = text else {
        return Err(bad_argument(
            "MissingQuery",
            "The query is missing: send {\"query\": \"AHDSDicomAuditLogs | take 10\"}.",
        ));
    };
    Ok((text, timespan))
}

/// The query's table, read (after a flush) on the blocking pool: each page filtered by the timespan,
/// then by the query's leading filters; reading stops once it has the rows the query returns.
async fn read_table(
    svc: &SharedService,
    q: &kql::Query,
    window: Option<(OffsetDateTime, OffsetDateTime)>,
) -> Result<Table, Refusal> {
    let since = [q.lower_bound("TimeGenerated"), window.map(|w| w.0)]
        .into_iter()
        .flatten()
        .max();
    let table_name = q.table.clone();
    let s2 = svc.clone();
    let q2 = q.clone();
    let read = tokio::task::spawn_blocking(move || {
        s2.audit.flush(&s2.db)?;
        // Each page: the timespan, then the query's leading filters; a query stops reading once it
        // has the rows it returns.
        s2.audit
            .read(&s2.db, &table_name, since, q2.plan(), |page| {
                if let Some((start, end)) = window
                    && let Some(i) = page.columns.iter().position(|c| c.name == "TimeGenerated")
                {
                    page.rows
                        .retain(|r| matches!(&r[i], Cell::Time(t) if *t >= start && *t <= end));
                }
                q2.prefilter(page)
            })
    })
    .await;
    match read {
        Ok(Ok(Some(Ok(t)))) => Ok(t),
        Ok(Ok(Some(Err(e)))) => Err(bad_argument("SemanticError", e.to_string())),
        Ok(Ok(None)) => Err(bad_argument(
            "SemanticError",
            format!(
                "'{}' could not be resolved: the practice workspace has the tables {AUDIT_TABLE} and {SIGNIN_TABLE}.",
                q.table
            ),
        )),
        Ok(Err(e)) => {
            tracing::error!("audit log read: {e}");
            Err(internal())
        }
        Err(e) => {
            tracing::error!("audit log task: {e}");
            Err(internal())
        }
    }
}

/// The answer: one `PrimaryResult` table of typed columns and rows.
fn tables_answer(result: &Table) -> Response {
    let columns: Vec<Value> = result
        .columns
        .iter()
        .map(|c| json!({"name": c.name, "type": c.ty}))
        .collect();
    let rows: Vec<Value> = result
        .rows
        .iter()
        .map(|r| Value::Array(r.iter().map(Cell::to_json).collect()))
        .collect();
    Json(json!({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]}))
        .into_response()
}
