//! A parsed query: its table and pipeline of operators (`where`, `order by`, `take`, `project`), the
//! conditions and literals they hold, the limits on a query, and why one is refused.

use time::OffsetDateTime;

/// Longest query text accepted.
pub(crate) const MAX_QUERY_CHARS: usize = 10_000;

/// Most pipeline operators and conditions in one query.
pub(super) const MAX_OPS: usize = 32;

pub(super) const MAX_CONDITIONS: usize = 64;

/// Most rows one answer may hold (Log Analytics caps answers too).
pub(crate) const MAX_ROWS: usize = 30_000;

/// How a query reads its table (see [`Query::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Newest rows first (else in the order they were written).
    pub newest_first: bool,
    /// Rows that pass the leading `where`s it needs, at most.
    pub wanted: usize,
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum KqlError {
    #[error("Syntax error: {0}")]
    Syntax(String),
    #[error("Semantic error: {0}")]
    Semantic(String),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub table: String,
    pub(super) ops: Vec<Op>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Op {
    /// Alternatives (or) of conjunctions (and).
    Where(Vec<Vec<Cond>>),
    Order {
        column: String,
        desc: bool,
    },
    Take(usize),
    Project(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cond {
    pub(super) column: String,
    /// A path into a dynamic column: `Identity.claims.oid` → ["claims", "oid"].
    pub(super) path: Vec<String>,
    pub(super) op: Cmp,
    pub(super) value: Lit,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Cmp {
    Eq,
    Ne,
    EqCi,
    Lt,
    Le,
    Gt,
    Ge,
    Has,
    NotHas,
    Contains,
    NotContains,
    StartsWith,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Str(String),
    Num(f64),
    Time(OffsetDateTime),
}
