//! Reading a Log Analytics workspace: the Azure Monitor query API (`POST {endpoint}/v1/workspaces/{id}/query`
//! with a KQL query, a token for `https://api.loganalytics.io`), answering `tables` → `columns` / `rows`.
//! The practice service answers the same request at `{origin}/loganalytics`, so one reader serves both.
//! Cells are read by column name and without trust: a `dynamic` cell may come as JSON or as a JSON string.

use serde_json::Value;

use super::auth::AuthConfig;
use super::client::{ClientError, DicomWebClient};

/// The audience of the query API.
pub const LOG_ANALYTICS_RESOURCE: &str = "https://api.loganalytics.io";
/// Azure's query API host.
pub const LOG_ANALYTICS_ENDPOINT: &str = "https://api.loganalytics.io";

/// Why a query gave no table.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The API answered with an error object (`BadArgumentError`, `InsufficientAccessError`, …).
    #[error("the workspace answered {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the workspace's answer is not a Log Analytics table: {0}")]
    Shape(String),
    #[error("reading the audit log needs Azure AD client credentials (tenant, client id, secret)")]
    NoCredentials,
}

impl LogError {
    /// The table does not exist in the workspace (e.g. sign-in logs not exported).
    pub fn no_such_table(&self) -> bool {
        matches!(self, LogError::Refused { status: 400, message, .. } if message.contains("could not be resolved"))
    }
}

/// One answer table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl LogTable {
    /// Most rows read from one answer.
    pub const MAX_ROWS: usize = 30_000;

    pub fn index(&self, column: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(column))
    }

    /// A cell by column name.
    pub fn cell<'a>(&self, row: &'a [Value], column: &str) -> Option<&'a Value> {
        row.get(self.index(column)?)
    }

    /// A cell as text (numbers written out; null and missing as None).
    pub fn text(&self, row: &[Value], column: &str) -> Option<String> {
        match self.cell(row, column)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// A `dynamic` cell as JSON, whether it came nested or as a JSON string.
    pub fn dynamic(&self, row: &[Value], column: &str) -> Value {
        match self.cell(row, column) {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
            Some(v) => v.clone(),
            None => Value::Null,
        }
    }

    /// Reads the first table of an answer body.
    pub fn parse(body: &Value) -> Result<LogTable, LogError> {
        let table = body
            .get("tables")
            .and_then(|t| t.get(0))
            .ok_or_else(|| LogError::Shape("no `tables`".into()))?;
        let columns = table
            .get("columns")
            .and_then(Value::as_array)
            .ok_or_else(|| LogError::Shape("no `columns`".into()))?
            .iter()
            .map(|c| {
                c.get("name")
                    .or_else(|| c.get("ColumnName"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect::<Vec<_>>();
        let rows = table
            .get("rows")
            .and_then(Value::as_array)
            .ok_or_else(|| LogError::Shape("no `rows`".into()))?
            .iter()
            .take(Self::MAX_ROWS)
            .filter_map(|r| r.as_array().cloned())
            .filter(|r| r.len() == columns.len())
            .collect();
        Ok(LogTable { columns, rows })
    }
}

/// A reader of one workspace.
pub struct LogReader {
    client: DicomWebClient,
    workspace: String,
}

impl LogReader {
    /// A reader of `workspace` at `endpoint` (`https://api.loganalytics.io`, or a practice service's
    /// `{origin}/loganalytics`), authenticating as the lab's app with a token for the query API.
    pub fn new(endpoint: &str, workspace: &str, auth: &AuthConfig) -> Result<LogReader, LogError> {
        let AuthConfig::Azure {
            tenant_id,
            client_id,
            client_secret,
            authority,
            token_version,
            ..
        } = auth
        else {
            return Err(LogError::NoCredentials);
        };
        let auth = AuthConfig::Azure {
            tenant_id: tenant_id.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            resource: LOG_ANALYTICS_RESOURCE.to_string(),
            authority: authority.clone(),
            token_version: *token_version,
        };
        let endpoint = endpoint.trim().trim_end_matches('/');
        Ok(LogReader {
            client: DicomWebClient::new(&format!("{endpoint}/v1"), auth)?.checking(),
            workspace: workspace.trim().to_string(),
        })
    }

    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    /// Runs a KQL query; `timespan` is ISO 8601 (`PT1H`) or `start/end`.
    pub async fn query(&self, kql: &str, timespan: Option<&str>) -> Result<LogTable, LogError> {
        let mut body = serde_json::json!({ "query": kql });
        if let Some(t) = timespan {
            body["timespan"] = Value::String(t.to_string());
        }
        let a = self
            .client
            .post_json(&format!("workspaces/{}/query", self.workspace), body)
            .await?;
        if a.status == 204 {
            return Ok(LogTable::default());
        }
        let json = a.json().unwrap_or(Value::Null);
        if !a.ok() {
            let err = json.get("error");
            let text = |k: &str| {
                err.and_then(|e| e.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let inner = err
                .and_then(|e| e.get("innererror"))
                .and_then(|i| i.get("message"))
                .and_then(Value::as_str)
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            return Err(LogError::Refused {
                status: a.status,
                code: text("code"),
                message: dicomlab_dicom::text::visible(&format!("{}{inner}", text("message")))
                    .into_owned(),
            });
        }
        LogTable::parse(&json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tables_by_column_name_and_dynamic_either_way() {
        let body = serde_json::json!({"tables": [{"name": "PrimaryResult",
            "columns": [{"name": "OperationName", "type": "string"}, {"name": "Identity", "type": "dynamic"}, {"name": "StatusCode", "type": "int"}],
            "rows": [["Store", "{\"claims\":{\"oid\":\"x\"}}", 200], ["Query", {"claims": {"oid": "y"}}, null], ["short"]]}]});
        let t = LogTable::parse(&body).expect("table");
        assert_eq!(t.rows.len(), 2, "a row of the wrong width is dropped");
        assert_eq!(
            t.text(&t.rows[0], "operationname").as_deref(),
            Some("Store")
        );
        assert_eq!(t.dynamic(&t.rows[0], "Identity")["claims"]["oid"], "x");
        assert_eq!(t.dynamic(&t.rows[1], "Identity")["claims"]["oid"], "y");
        assert_eq!(t.text(&t.rows[0], "StatusCode").as_deref(), Some("200"));
        assert_eq!(t.text(&t.rows[1], "StatusCode"), None);
        assert!(LogTable::parse(&serde_json::json!({"error": {}})).is_err());
    }
}
