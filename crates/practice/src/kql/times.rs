//! Times in queries: how cells write them, `datetime(…)` and KQL timespans (`5m`, `1h`) in the text,
//! and the query API's ISO 8601 `timespan` parameter.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::query::KqlError;

/// Times as Log Analytics writes them: RFC 3339, UTC, `Z`.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    crate::format_utc(t, "Z")
}

/// `5m`, `1h`, `2d`, `30s`, `100ms`.
pub(super) fn timespan(s: &str) -> Result<time::Duration, KqlError> {
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
