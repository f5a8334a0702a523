//! Reading a table of the log a page at a time — the index's lock held for a page, never for the whole
//! read — as the query route's tables (the columns Log Analytics shows).

use serde_json::Value;
use time::OffsetDateTime;

use super::{AUDIT_TABLE, AuditLog, SIGNIN_TABLE, USER_SIGNIN_TABLE};
use crate::db::{Db, DbError};
use crate::kql::{self, Cell, Column, Table};

/// Rows a query reads from the index at a time.
const PAGE: usize = 2_000;

impl AuditLog {
    /// The rows of `table` written at or after `since` and at least `delay` ago that `keep` lets
    /// through, read a page at a time — the index's lock is held for a page, never for the whole read
    /// — until `plan.wanted` of them are in, or every row was looked at: a query costs what it
    /// returns, not what the table holds. None: no such table.
    pub(super) fn read(
        &self,
        db: &Db,
        table: &str,
        since: Option<OffsetDateTime>,
        plan: kql::Plan,
        mut keep: impl FnMut(&mut Table) -> Result<(), kql::KqlError>,
    ) -> Result<Option<Result<Table, kql::KqlError>>, DbError> {
        let visible = kql::format_time(OffsetDateTime::now_utc() - self.delay);
        let since = since.map_or_else(String::new, kql::format_time);
        let mut cursor = if plan.newest_first { i64::MAX } else { 0 };
        let mut out: Option<Table> = None;
        loop {
            let page = {
                let c = db.lock()?;
                self.read_page(&c, table, [&since, &visible], cursor, plan.newest_first)?
            };
            let Some((mut page, last)) = page else {
                return Ok(None);
            };
            let ended = page.rows.len() < PAGE;
            if let Some(i) = page.columns.iter().position(|c| c.name == "UserAgent")
                && !self.agent_column
            {
                page.columns.remove(i);
                for row in &mut page.rows {
                    if i < row.len() {
                        row.remove(i);
                    }
                }
            }
            if let Err(e) = keep(&mut page) {
                return Ok(Some(Err(e)));
            }
            let t = out.get_or_insert_with(|| Table {
                columns: page.columns.clone(),
                rows: Vec::new(),
            });
            t.rows.extend(page.rows);
            if t.rows.len() >= plan.wanted {
                t.rows.truncate(plan.wanted);
                break;
            }
            match last {
                Some(id) if !ended => cursor = id,
                _ => break,
            }
        }
        let mut t = out.unwrap_or_default();
        if plan.newest_first {
            // Read newest first; the query's own order (and everything after it) runs on these.
            t.rows.reverse();
        }
        Ok(Some(Ok(t)))
    }

    /// One page of a table's rows after `cursor` (an id) in the reading order, and the last id read.
    fn read_page(
        &self,
        c: &rusqlite::Connection,
        table: &str,
        window: [&String; 2],
        cursor: i64,
        newest_first: bool,
    ) -> Result<Option<(Table, Option<i64>)>, DbError> {
        let (cmp, dir) = if newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let page = PAGE as i64;
        if table.eq_ignore_ascii_case(AUDIT_TABLE) {
            return self
                .audit_page(c, (window, cursor, page), (cmp, dir))
                .map(Some);
        }
        let (sql, names, type_name): (&str, &[&str], &str) = if table
            .eq_ignore_ascii_case(USER_SIGNIN_TABLE)
        {
            (
                "SELECT id, time, upn, user_id, app_id, result_type, result_description, resource, correlation_id, user_agent FROM user_signin_log",
                &[
                    "UserPrincipalName",
                    "UserId",
                    "AppId",
                    "ResultType",
                    "ResultDescription",
                    "ResourceIdentity",
                    "CorrelationId",
                    "UserAgent",
                ],
                USER_SIGNIN_TABLE,
            )
        } else if table.eq_ignore_ascii_case(SIGNIN_TABLE) {
            (
                "SELECT id, time, app_id, result_type, result_description, resource, correlation_id, user_agent FROM signin_log",
                &[
                    "AppId",
                    "ResultType",
                    "ResultDescription",
                    "ResourceIdentity",
                    "CorrelationId",
                    "UserAgent",
                ],
                SIGNIN_TABLE,
            )
        } else {
            return Ok(None);
        };
        let sql = format!(
            "{sql} WHERE time >= ?1 AND time <= ?2 AND id {cmp} ?3 ORDER BY id {dir} LIMIT ?4"
        );
        text_table(c, &sql, (window, cursor, page), names, type_name).map(Some)
    }
    /// A page of the audit table (its columns as Azure's, `Level` from the status, the workspace's
    /// `TenantId` and `_ResourceId`), and the last id read.
    fn audit_page(
        &self,
        c: &rusqlite::Connection,
        (window, cursor, page): ([&String; 2], i64, i64),
        (cmp, dir): (&str, &str),
    ) -> Result<(Table, Option<i64>), DbError> {
        let col = |name: &str, ty: &'static str| Column {
            name: name.into(),
            ty,
        };
        let parse_time = |s: String| kql::parse_datetime(&s).map_or(Cell::Null, Cell::Time);
        let mut stmt = c.prepare_cached(&format!(
            "SELECT id, time, operation, identity, status, result_type, correlation_id, uri, user_agent FROM audit_log WHERE time >= ?1 AND time <= ?2 AND id {cmp} ?3 ORDER BY id {dir} LIMIT ?4"
        ))?;
        let mut last = None;
        let rows = stmt
            .query_map(rusqlite::params![window[0], window[1], cursor, page], |r| {
                let id: i64 = r.get(0)?;
                let identity: String = r.get(3)?;
                let status: Option<i64> = r.get(4)?;
                let result_type: String = r.get(5)?;
                Ok((
                    id,
                    vec![
                        parse_time(r.get(1)?),
                        Cell::Str(r.get(2)?),
                        Cell::Dyn(serde_json::from_str(&identity).unwrap_or(Value::Null)),
                        status.map_or(Cell::Null, Cell::Int),
                        Cell::Str(if result_type == "Started" {
                            "Informational".into()
                        } else if status.unwrap_or(0) >= 500 {
                            "Error".into()
                        } else {
                            "Informational".into()
                        }),
                        Cell::Str(result_type),
                        Cell::Str(r.get(6)?),
                        Cell::Str(r.get(7)?),
                        Cell::Str(r.get(8)?),
                        Cell::Str(self.workspace_id.clone()),
                        Cell::Str("Azure".into()),
                        Cell::Str(AUDIT_TABLE.into()),
                        Cell::Str(self.resource_id.clone()),
                    ],
                ))
            })?
            .map(|r| {
                r.map(|(id, row)| {
                    last = Some(id);
                    row
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let columns = vec![
            col("TimeGenerated", "datetime"),
            col("OperationName", "string"),
            col("Identity", "dynamic"),
            col("StatusCode", "int"),
            col("Level", "string"),
            col("ResultType", "string"),
            col("CorrelationId", "string"),
            col("Uri", "string"),
            col("UserAgent", "string"),
            col("TenantId", "string"),
            col("SourceSystem", "string"),
            col("Type", "string"),
            col("_ResourceId", "string"),
        ];
        Ok((Table { columns, rows }, last))
    }
}

/// A page of a table whose rows are the id, the time, then text columns (`names`, in the query's
/// order), then `Type`; and the last id read.
fn text_table(
    c: &rusqlite::Connection,
    sql: &str,
    (window, cursor, page): ([&String; 2], i64, i64),
    names: &[&str],
    type_name: &str,
) -> Result<(Table, Option<i64>), DbError> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut last = None;
    let rows = stmt
        .query_map(rusqlite::params![window[0], window[1], cursor, page], |r| {
            let id: i64 = r.get(0)?;
            let time: String = r.get(1)?;
            let mut row = vec![kql::parse_datetime(&time).map_or(Cell::Null, Cell::Time)];
            for i in 0..names.len() {
                row.push(Cell::Str(r.get(i + 2)?));
            }
            row.push(Cell::Str(type_name.into()));
            Ok((id, row))
        })?
        .map(|r| {
            r.map(|(id, row)| {
                last = Some(id);
                row
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let col = |name: &str, ty: &'static str| Column {
        name: name.into(),
        ty,
    };
    let mut columns = vec![col("TimeGenerated", "datetime")];
    columns.extend(names.iter().map(|n| col(n, "string")));
    columns.push(col("Type", "string"));
    Ok((Table { columns, rows }, last))
}
