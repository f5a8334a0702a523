//! A small subset of the Kusto Query Language, enough to read the practice service's logs the way a
//! learner reads Azure's in Log Analytics:
//!
//! ```text
//! AHDSDicomAuditLogs
//! | where TimeGenerated >= ago(1h) and ResultType != "Started" and Identity.claims.appid == "…"
//! | order by TimeGenerated asc
//! | take 500
//! | project TimeGenerated, OperationName, StatusCode, Uri
//! ```
//!
//! `where` takes comparisons (`==`, `!=`, `=~`, `<`, `<=`, `>`, `>=`, `has`, `!has`, `contains`,
//! `!contains`, `startswith`) joined by `and` / `or` (`and` binds tighter), on a column or a path into a
//! dynamic column (`Identity.claims.oid`, optionally inside `tostring(…)`); values are strings, numbers,
//! `datetime(…)`, `ago(…)` and `now()`. Also `order by` / `sort by`, `take` / `limit`, `project`.
//! Everything else is refused with the reason, like Log Analytics' `SyntaxError`. Input is bounded:
//! the text, the number of operators and conditions, and the rows a query may return.
//!
//! [`lex`] turns the text into tokens, [`parse`] the tokens into a [`Query`] ([`query`]), [`eval`] runs
//! it on a [`Table`] ([`table`]); [`times`] reads and writes the times in both.

mod eval;
mod lex;
mod parse;
mod query;
mod table;
mod times;

pub(crate) use self::parse::parse;
pub(crate) use self::query::{KqlError, Plan, Query};
pub(crate) use self::table::{Cell, Column, Table};
pub(crate) use self::times::{format_time, parse_datetime, parse_timespan};

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
