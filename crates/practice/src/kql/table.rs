//! The tables a query reads and answers: typed cells (null, text, number, time, dynamic JSON) in named
//! columns.

use time::OffsetDateTime;

use super::query::KqlError;
use super::times::format_time;

/// A cell value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Str(String),
    Int(i64),
    Time(OffsetDateTime),
    Dyn(serde_json::Value),
}

impl Cell {
    /// The JSON a Log Analytics answer carries for this cell.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Str(s) => s.clone().into(),
            Cell::Int(n) => (*n).into(),
            Cell::Time(t) => format_time(*t).into(),
            Cell::Dyn(v) => v.clone(),
        }
    }

    pub(super) fn text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Str(s) => Some(s.clone()),
            Cell::Int(n) => Some(n.to_string()),
            Cell::Time(t) => Some(format_time(*t)),
            Cell::Dyn(serde_json::Value::String(s)) => Some(s.clone()),
            Cell::Dyn(serde_json::Value::Null) => None,
            Cell::Dyn(v) => Some(v.to_string()),
        }
    }
}

/// A column: its name and its Log Analytics type (`datetime`, `string`, `int`, `dynamic`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    pub ty: &'static str,
}

/// A table: what a query reads and what it answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub(super) fn index(&self, name: &str) -> Result<usize, KqlError> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                KqlError::Semantic(format!(
                    "'{name}' could not be resolved: there is no such column (the columns are {})",
                    self.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}
