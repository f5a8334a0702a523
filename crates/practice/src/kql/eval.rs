//! Running a query on a table: how it reads its table (its plan and leading filter), then each operator
//! in turn; comparisons as Kusto makes them (case-insensitive `=~`, `has` on whole terms).

use time::OffsetDateTime;

use super::query::{Cmp, Cond, KqlError, Lit, MAX_ROWS, Op, Plan, Query};
use super::table::{Cell, Table};
use super::times::parse_datetime;

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
pub(super) fn keep_where(table: &mut Table, alternatives: &[Vec<Cond>]) -> Result<(), KqlError> {
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

pub(super) fn compare_cells(a: &Cell, b: &Cell) -> std::cmp::Ordering {
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

pub(super) fn matches(cell: &Cell, c: &Cond) -> bool {
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
pub(super) fn has_term(text: &str, term: &str) -> bool {
    if term.is_empty() {
        return true;
    }
    text.match_indices(term).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + term.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

pub(super) fn ordered(o: std::cmp::Ordering, op: Cmp) -> bool {
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
