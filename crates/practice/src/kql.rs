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

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Longest query text accepted.
pub(crate) const MAX_QUERY_CHARS: usize = 10_000;
/// Most pipeline operators and conditions in one query.
const MAX_OPS: usize = 32;
const MAX_CONDITIONS: usize = 64;
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

    fn text(&self) -> Option<String> {
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

/// Times as Log Analytics writes them: RFC 3339, UTC, `Z`.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    super::format_utc(t, "Z")
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
    fn index(&self, name: &str) -> Result<usize, KqlError> {
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
    ops: Vec<Op>,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
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
struct Cond {
    column: String,
    /// A path into a dynamic column: `Identity.claims.oid` → ["claims", "oid"].
    path: Vec<String>,
    op: Cmp,
    value: Lit,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
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
enum Lit {
    Str(String),
    Num(f64),
    Time(OffsetDateTime),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
}

fn lex(text: &str) -> Result<Vec<Tok>, KqlError> {
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(KqlError::Syntax(format!(
            "the query is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(KqlError::Syntax("a string is not closed".into())),
                    Some('\\') => {
                        if let Some(n) = chars.get(i + 1) {
                            s.push(*n);
                        }
                        i += 2;
                    }
                    Some(q) if *q == c => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        s.push(*other);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s
                .parse::<f64>()
                .map_err(|_| KqlError::Syntax(format!("'{s}' is not a number")))?;
            // A unit right after a number (ago(5m)) stays with it as an identifier.
            if i < chars.len() && chars[i].is_ascii_alphabetic() {
                let ustart = i;
                while i < chars.len() && chars[i].is_ascii_alphabetic() {
                    i += 1;
                }
                let unit: String = chars[ustart..i].iter().collect();
                out.push(Tok::Ident(format!("{s}{unit}")));
            } else {
                out.push(Tok::Num(n));
            }
            continue;
        }
        if c.is_alphabetic()
            || c == '_'
            || c == '!' && chars.get(i + 1).is_some_and(|n| n.is_alphabetic())
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let is_datetime = word.eq_ignore_ascii_case("datetime");
            out.push(Tok::Ident(word));
            // datetime(2026-11-30T14:00:00Z): the text inside is taken as written.
            if is_datetime {
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                if chars.get(j) == Some(&'(') {
                    let close = chars[j..]
                        .iter()
                        .position(|c| *c == ')')
                        .ok_or_else(|| KqlError::Syntax("datetime( is not closed".into()))?;
                    let raw: String = chars[j + 1..j + close].iter().collect();
                    let raw = raw.trim().trim_matches(['"', '\'']).to_string();
                    out.push(Tok::Sym("("));
                    out.push(Tok::Str(raw));
                    out.push(Tok::Sym(")"));
                    i = j + close + 1;
                }
            }
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let sym = match two.as_str() {
            "==" => Some("=="),
            "!=" => Some("!="),
            "=~" => Some("=~"),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(s) = sym {
            out.push(Tok::Sym(s));
            i += 2;
            continue;
        }
        let one = match c {
            '|' => "|",
            '<' => "<",
            '>' => ">",
            '(' => "(",
            ')' => ")",
            ',' => ",",
            '.' => ".",
            _ => {
                return Err(KqlError::Syntax(format!(
                    "unexpected character '{}'",
                    c.escape_default()
                )));
            }
        };
        out.push(Tok::Sym(one));
        i += 1;
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    now: OffsetDateTime,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn sym(&mut self, s: &str) -> Result<(), KqlError> {
        match self.next() {
            Some(Tok::Sym(x)) if x == s => Ok(()),
            other => Err(KqlError::Syntax(format!(
                "expected '{s}', found {}",
                describe(other.as_ref())
            ))),
        }
    }
    fn ident(&mut self) -> Result<String, KqlError> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            other => Err(KqlError::Syntax(format!(
                "expected a name, found {}",
                describe(other.as_ref())
            ))),
        }
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(k))
    }

    fn query(&mut self) -> Result<Query, KqlError> {
        let table = self.ident()?;
        let mut ops = Vec::new();
        let mut conditions = 0;
        while self.peek().is_some() {
            self.sym("|")?;
            if ops.len() >= MAX_OPS {
                return Err(KqlError::Syntax(format!("more than {MAX_OPS} operators")));
            }
            let op = self.ident()?.to_ascii_lowercase();
            ops.push(match op.as_str() {
                "where" => {
                    let w = self.where_expr()?;
                    conditions += w.iter().map(Vec::len).sum::<usize>();
                    if conditions > MAX_CONDITIONS {
                        return Err(KqlError::Syntax(format!(
                            "more than {MAX_CONDITIONS} conditions"
                        )));
                    }
                    Op::Where(w)
                }
                "order" | "sort" => {
                    let by = self.ident()?;
                    if !by.eq_ignore_ascii_case("by") {
                        return Err(KqlError::Syntax(format!("expected 'by' after '{op}'")));
                    }
                    let column = self.ident()?;
                    let desc = if self.keyword("asc") {
                        self.pos += 1;
                        false
                    } else if self.keyword("desc") {
                        self.pos += 1;
                        true
                    } else {
                        true // Kusto's default order is descending.
                    };
                    Op::Order { column, desc }
                }
                "take" | "limit" => match self.next() {
                    Some(Tok::Num(n)) if n >= 0.0 && n.fract() == 0.0 => {
                        Op::Take((n as usize).min(MAX_ROWS))
                    }
                    other => {
                        return Err(KqlError::Syntax(format!(
                            "'{op}' needs a whole number, found {}",
                            describe(other.as_ref())
                        )));
                    }
                },
                "project" => {
                    let mut cols = vec![self.ident()?];
                    while matches!(self.peek(), Some(Tok::Sym(","))) {
                        self.pos += 1;
                        cols.push(self.ident()?);
                    }
                    Op::Project(cols)
                }
                other => {
                    return Err(KqlError::Syntax(format!(
                        "the operator '{other}' is not supported by the practice workspace (it reads where, order by, sort by, take, limit and project)"
                    )));
                }
            });
        }
        Ok(Query { table, ops })
    }

    fn where_expr(&mut self) -> Result<Vec<Vec<Cond>>, KqlError> {
        let mut alternatives = vec![vec![self.cond()?]];
        loop {
            if self.keyword("and") {
                self.pos += 1;
                let c = self.cond()?;
                if let Some(last) = alternatives.last_mut() {
                    last.push(c);
                }
            } else if self.keyword("or") {
                self.pos += 1;
                alternatives.push(vec![self.cond()?]);
            } else {
                return Ok(alternatives);
            }
        }
    }

    fn column_ref(&mut self) -> Result<(String, Vec<String>), KqlError> {
        let first = self.ident()?;
        if first.eq_ignore_ascii_case("tostring") {
            self.sym("(")?;
            let inner = self.column_ref()?;
            self.sym(")")?;
            return Ok(inner);
        }
        let mut path = Vec::new();
        while matches!(self.peek(), Some(Tok::Sym("."))) {
            self.pos += 1;
            path.push(self.ident()?);
        }
        Ok((first, path))
    }

    fn cond(&mut self) -> Result<Cond, KqlError> {
        let (column, path) = self.column_ref()?;
        let op = match self.next() {
            Some(Tok::Sym("==")) => Cmp::Eq,
            Some(Tok::Sym("!=")) => Cmp::Ne,
            Some(Tok::Sym("=~")) => Cmp::EqCi,
            Some(Tok::Sym("<")) => Cmp::Lt,
            Some(Tok::Sym("<=")) => Cmp::Le,
            Some(Tok::Sym(">")) => Cmp::Gt,
            Some(Tok::Sym(">=")) => Cmp::Ge,
            Some(Tok::Ident(s)) => match s.to_ascii_lowercase().as_str() {
                "has" => Cmp::Has,
                "!has" => Cmp::NotHas,
                "contains" => Cmp::Contains,
                "!contains" => Cmp::NotContains,
                "startswith" => Cmp::StartsWith,
                other => {
                    return Err(KqlError::Syntax(format!(
                        "the comparison '{other}' is not supported by the practice workspace"
                    )));
                }
            },
            other => {
                return Err(KqlError::Syntax(format!(
                    "expected a comparison after '{column}', found {}",
                    describe(other.as_ref())
                )));
            }
        };
        let value = self.literal()?;
        Ok(Cond {
            column,
            path,
            op,
            value,
        })
    }

    fn literal(&mut self) -> Result<Lit, KqlError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Num(n)) => Ok(Lit::Num(n)),
            Some(Tok::Ident(f)) => {
                let f = f.to_ascii_lowercase();
                match f.as_str() {
                    "now" => {
                        self.sym("(")?;
                        self.sym(")")?;
                        Ok(Lit::Time(self.now))
                    }
                    "ago" => {
                        self.sym("(")?;
                        let span = match self.next() {
                            Some(Tok::Ident(s)) => timespan(&s)?,
                            other => {
                                return Err(KqlError::Syntax(format!(
                                    "ago() needs a timespan such as 5m or 1h, found {}",
                                    describe(other.as_ref())
                                )));
                            }
                        };
                        self.sym(")")?;
                        self.now.checked_sub(span).map(Lit::Time).ok_or_else(|| {
                            KqlError::Syntax("ago() reaches before the calendar".into())
                        })
                    }
                    "datetime" => {
                        self.sym("(")?;
                        // The text between the parentheses, as written (it is lexed in pieces).
                        let mut raw = String::new();
                        loop {
                            match self.next() {
                                Some(Tok::Sym(")")) => break,
                                Some(Tok::Str(s) | Tok::Ident(s)) => raw.push_str(&s),
                                Some(Tok::Num(n)) => raw.push_str(&n.to_string()),
                                Some(Tok::Sym(s)) => raw.push_str(s),
                                None => {
                                    return Err(KqlError::Syntax("datetime( is not closed".into()));
                                }
                            }
                            if raw.len() > 64 {
                                return Err(KqlError::Syntax("datetime() is too long".into()));
                            }
                        }
                        parse_datetime(&raw).map(Lit::Time).ok_or_else(|| {
                            KqlError::Syntax(format!(
                                "'{raw}' is not a datetime (use datetime(\"2026-11-30T14:00:00Z\"))"
                            ))
                        })
                    }
                    other => Err(KqlError::Syntax(format!(
                        "expected a value, found '{other}'"
                    ))),
                }
            }
            other => Err(KqlError::Syntax(format!(
                "expected a value, found {}",
                describe(other.as_ref())
            ))),
        }
    }
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "the end of the query".into(),
        Some(Tok::Ident(s)) => format!("'{s}'"),
        Some(Tok::Str(s)) => format!("the string \"{s}\""),
        Some(Tok::Num(n)) => format!("the number {n}"),
        Some(Tok::Sym(s)) => format!("'{s}'"),
    }
}

/// `5m`, `1h`, `2d`, `30s`, `100ms`.
fn timespan(s: &str) -> Result<time::Duration, KqlError> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| KqlError::Syntax(format!("'{s}' is not a timespan")))?;
    let secs = match unit {
        "d" => n * 86_400.0,
        "h" => n * 3_600.0,
        "m" => n * 60.0,
        "s" => n,
        "ms" => n / 1000.0,
        _ => {
            return Err(KqlError::Syntax(format!(
                "'{s}' is not a timespan (use d, h, m, s or ms)"
            )));
        }
    };
    if !(0.0..=3.2e9).contains(&secs) {
        return Err(KqlError::Syntax(format!(
            "the timespan '{s}' is out of range"
        )));
    }
    Ok(time::Duration::seconds_f64(secs))
}

/// A datetime as Kusto reads it: RFC 3339, or without a zone (UTC).
pub(crate) fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .or_else(|| OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339).ok())
        .or_else(|| OffsetDateTime::parse(&format!("{s}T00:00:00Z"), &Rfc3339).ok())
}

/// Parses a query. `now` anchors `ago()` and `now()`.
pub(crate) fn parse(text: &str, now: OffsetDateTime) -> Result<Query, KqlError> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err(KqlError::Syntax("the query is empty".into()));
    }
    let mut p = Parser { toks, pos: 0, now };
    p.query()
}

impl Query {
    /// The earliest time its first `where` lets through on `column` (to narrow what is read).
    pub(crate) fn lower_bound(&self, column: &str) -> Option<OffsetDateTime> {
        let Op::Where(alternatives) = self.ops.first()? else {
            return None;
        };
        // Only a bound every alternative shares is safe.
        let mut bound: Option<OffsetDateTime> = None;
        for conj in alternatives {
            let b = conj
                .iter()
                .filter(|c| c.column.eq_ignore_ascii_case(column) && c.path.is_empty())
                .filter_map(|c| match (c.op, &c.value) {
                    (Cmp::Gt | Cmp::Ge, Lit::Time(t)) => Some(*t),
                    _ => None,
                })
                .max()?;
            bound = Some(bound.map_or(b, |x: OffsetDateTime| x.min(b)));
        }
        bound
    }

    /// How the query can be read a page at a time, stopping once it has what it returns: its
    /// leading `where`s filter each page as it is read; a `take` right after them (or after an order
    /// on `TimeGenerated`) says how many rows it needs, and in which order to read. Any other
    /// query reads (filtered) rows up to [`MAX_ROWS`] — what an answer may hold anyway.
    pub(crate) fn plan(&self) -> Plan {
        let rest = self
            .ops
            .iter()
            .skip_while(|o| matches!(o, Op::Where(_)))
            .collect::<Vec<_>>();
        let (newest_first, wanted) = match rest.as_slice() {
            [Op::Order { column, desc }, Op::Take(n), ..]
                if column.eq_ignore_ascii_case("TimeGenerated") =>
            {
                (*desc, *n)
            }
            [Op::Take(n), ..] => (false, *n),
            _ => (false, MAX_ROWS),
        };
        Plan {
            newest_first,
            wanted: wanted.min(MAX_ROWS),
        }
    }

    /// Keeps the rows of `table` its leading `where`s let through (a page, as it is read).
    pub(crate) fn prefilter(&self, table: &mut Table) -> Result<(), KqlError> {
        for op in self.ops.iter().take_while(|o| matches!(o, Op::Where(_))) {
            if let Op::Where(alternatives) = op {
                keep_where(table, alternatives)?;
            }
        }
        Ok(())
    }

    /// Runs the query over `table`'s rows.
    pub(crate) fn run(&self, mut table: Table) -> Result<Table, KqlError> {
        for op in &self.ops {
            match op {
                Op::Where(alternatives) => keep_where(&mut table, alternatives)?,
                Op::Order { column, desc } => {
                    let i = table.index(column)?;
                    table.rows.sort_by(|a, b| {
                        let o = compare_cells(&a[i], &b[i]);
                        if *desc { o.reverse() } else { o }
                    });
                }
                Op::Take(n) => table.rows.truncate(*n),
                Op::Project(cols) => {
                    let idx: Vec<usize> = cols
                        .iter()
                        .map(|c| table.index(c))
                        .collect::<Result<_, _>>()?;
                    table.columns = idx.iter().map(|i| table.columns[*i].clone()).collect();
                    table.rows = table
                        .rows
                        .into_iter()
                        .map(|r| idx.iter().map(|i| r[*i].clone()).collect())
                        .collect();
                }
            }
        }
        table.rows.truncate(MAX_ROWS);
        Ok(table)
    }
}

/// Keeps the rows one of `alternatives` (each a conjunction) lets through.
fn keep_where(table: &mut Table, alternatives: &[Vec<Cond>]) -> Result<(), KqlError> {
    let mut compiled = Vec::new();
    for conj in alternatives {
        let mut cs = Vec::new();
        for c in conj {
            cs.push((table.index(&c.column)?, c));
        }
        compiled.push(cs);
    }
    table.rows.retain(|row| {
        compiled
            .iter()
            .any(|conj| conj.iter().all(|(i, c)| matches(&row[*i], c)))
    });
    Ok(())
}

fn compare_cells(a: &Cell, b: &Cell) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Cell::Time(x), Cell::Time(y)) => x.cmp(y),
        (Cell::Int(x), Cell::Int(y)) => x.cmp(y),
        (Cell::Null, Cell::Null) => Ordering::Equal,
        (Cell::Null, _) => Ordering::Less,
        (_, Cell::Null) => Ordering::Greater,
        (x, y) => x.text().cmp(&y.text()),
    }
}

fn matches(cell: &Cell, c: &Cond) -> bool {
    let cell = if c.path.is_empty() {
        cell.clone()
    } else {
        let Cell::Dyn(v) = cell else {
            return false;
        };
        let mut cur = v;
        for p in &c.path {
            match cur.get(p.as_str()) {
                Some(next) => cur = next,
                None => return matches!(c.op, Cmp::Ne | Cmp::NotHas | Cmp::NotContains),
            }
        }
        Cell::Dyn(cur.clone())
    };
    match (&cell, &c.value) {
        (Cell::Time(t), Lit::Time(v)) => ordered(t.cmp(v), c.op),
        (Cell::Int(n), Lit::Num(v)) => match (*n as f64).partial_cmp(v) {
            Some(o) => ordered(o, c.op),
            None => false,
        },
        (Cell::Null, _) => matches!(c.op, Cmp::Ne | Cmp::NotHas | Cmp::NotContains),
        (_, Lit::Str(v)) => {
            let text = cell.text().unwrap_or_default();
            let (lt, lv) = (text.to_lowercase(), v.to_lowercase());
            match c.op {
                Cmp::Eq => text == *v,
                Cmp::Ne => text != *v,
                Cmp::EqCi => lt == lv,
                Cmp::Has => has_term(&lt, &lv),
                Cmp::NotHas => !has_term(&lt, &lv),
                Cmp::Contains => lt.contains(&lv),
                Cmp::NotContains => !lt.contains(&lv),
                Cmp::StartsWith => lt.starts_with(&lv),
                Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge => {
                    ordered(text.as_str().cmp(v.as_str()), c.op)
                }
            }
        }
        (_, Lit::Num(v)) => match cell.text().and_then(|t| t.parse::<f64>().ok()) {
            Some(n) => n.partial_cmp(v).is_some_and(|o| ordered(o, c.op)),
            None => false,
        },
        (_, Lit::Time(v)) => match cell.text().and_then(|t| parse_datetime(&t)) {
            Some(t) => ordered(t.cmp(v), c.op),
            None => false,
        },
    }
}

/// `has`: a whole term (letters and digits) of the text, without case.
fn has_term(text: &str, term: &str) -> bool {
    if term.is_empty() {
        return true;
    }
    text.match_indices(term).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + term.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

fn ordered(o: std::cmp::Ordering, op: Cmp) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Cmp::Eq | Cmp::EqCi => o == Equal,
        Cmp::Ne => o != Equal,
        Cmp::Lt => o == Less,
        Cmp::Le => o != Greater,
        Cmp::Gt => o == Greater,
        Cmp::Ge => o != Less,
        _ => false,
    }
}

/// An ISO 8601 `timespan` of the query API: a duration (`PT1H`, `P1D`, `PT30M`) back from now, or
/// `start/end` (either may be a duration). Returns the window it allows.
pub(crate) fn parse_timespan(
    s: &str,
    now: OffsetDateTime,
) -> Option<(OffsetDateTime, OffsetDateTime)> {
    fn duration(d: &str) -> Option<time::Duration> {
        let d = d.trim();
        let rest = d.strip_prefix('P')?;
        let (days, t) = match rest.split_once('T') {
            Some((days, t)) => (days, t),
            None => (rest, ""),
        };
        let mut secs = 0f64;
        let num = |s: &str, unit: char| -> Option<f64> {
            s.strip_suffix(unit).and_then(|n| n.parse::<f64>().ok())
        };
        if !days.is_empty() {
            secs += num(days, 'D')? * 86_400.0;
        }
        let mut cur = String::new();
        for c in t.chars() {
            if c.is_ascii_digit() || c == '.' {
                cur.push(c);
            } else {
                let n: f64 = cur.parse().ok()?;
                secs += match c {
                    'H' => n * 3600.0,
                    'M' => n * 60.0,
                    'S' => n,
                    _ => return None,
                };
                cur.clear();
            }
        }
        (cur.is_empty() && (0.0..=3.2e9).contains(&secs)).then(|| time::Duration::seconds_f64(secs))
    }
    match s.split_once('/') {
        None => duration(s).and_then(|d| Some((now.checked_sub(d)?, now))),
        Some((a, b)) => {
            let start = parse_datetime(a);
            let end = parse_datetime(b);
            // Checked: a datetime near the end of the calendar plus a long duration is no panic.
            match (start, end) {
                (Some(x), Some(y)) => Some((x, y)),
                (Some(x), None) => duration(b).and_then(|d| Some((x, x.checked_add(d)?))),
                (None, Some(y)) => duration(a).and_then(|d| Some((y.checked_sub(d)?, y))),
                (None, None) => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let t = run(
            "T | where OperationName has \"store\" or StatusCode == 400 | sort by TimeGenerated",
        )
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
        assert!(
            matches!(run("T | where Nope == 1"), Err(KqlError::Semantic(m)) if m.contains("Nope"))
        );
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
        let q =
            parse("T | where TimeGenerated >= ago(12m) or StatusCode > 0", now).expect("parses");
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
}
