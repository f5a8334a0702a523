//! The parser: tokens to a [`Query`] — the table, then `|`-separated operators, each bounded.

use time::OffsetDateTime;

use super::lex::{Tok, lex};
use super::query::{Cmp, Cond, KqlError, Lit, MAX_CONDITIONS, MAX_OPS, MAX_ROWS, Op, Query};
use super::times::{parse_datetime, timespan};

pub(super) struct Parser {
    pub(super) toks: Vec<Tok>,
    pub(super) pos: usize,
    pub(super) now: OffsetDateTime,
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

pub(super) fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "the end of the query".into(),
        Some(Tok::Ident(s)) => format!("'{s}'"),
        Some(Tok::Str(s)) => format!("the string \"{s}\""),
        Some(Tok::Num(n)) => format!("the number {n}"),
        Some(Tok::Sym(s)) => format!("'{s}'"),
    }
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
