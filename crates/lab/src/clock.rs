//! Times as a learner and an instructor read them: local wall-clock time (the system's time zone,
//! read safely through chrono), and durations in words.

use chrono::{Offset, TimeZone};
use time::{OffsetDateTime, UtcOffset};

/// `t` in the local time zone (UTC when it cannot be told).
pub fn to_local(t: OffsetDateTime) -> OffsetDateTime {
    let secs = chrono::Local
        .timestamp_opt(t.unix_timestamp(), 0)
        .single()
        .map_or(0, |d| d.offset().fix().local_minus_utc());
    UtcOffset::from_whole_seconds(secs)
        .ok()
        .and_then(|o| t.checked_to_offset(o))
        .unwrap_or(t)
}

/// `Mon 30 Nov 14:03` (local).
pub fn human(at: OffsetDateTime) -> String {
    let t = to_local(at);
    let wd = match t.weekday() {
        time::Weekday::Monday => "Mon",
        time::Weekday::Tuesday => "Tue",
        time::Weekday::Wednesday => "Wed",
        time::Weekday::Thursday => "Thu",
        time::Weekday::Friday => "Fri",
        time::Weekday::Saturday => "Sat",
        time::Weekday::Sunday => "Sun",
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][usize::from(u8::from(t.month())).saturating_sub(1).min(11)];
    format!("{wd} {} {month} {:02}:{:02}", t.day(), t.hour(), t.minute())
}

/// `14:03` in local time when it can be told, else the UTC time; `--:--` when the record has no
/// time.
pub(crate) fn local_time(at: Option<OffsetDateTime>) -> String {
    at.map(to_local).map_or_else(
        || "--:--".into(),
        |t| format!("{:02}:{:02}", t.hour(), t.minute()),
    )
}

/// `14:03:22` (local).
pub fn hms(t: OffsetDateTime) -> String {
    let t = to_local(t);
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

/// `45 s`, `12 min`, `1 h 05 min`, `2 d 3 h`.
pub fn duration(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        assert_eq!(duration(time::Duration::seconds(45)), "45 s");
        assert_eq!(duration(time::Duration::seconds(720)), "12 min");
        assert_eq!(duration(time::Duration::seconds(3900)), "1 h 05 min");
        assert_eq!(duration(time::Duration::seconds(-3)), "0 s");
        assert!(human(time::macros::datetime!(2026-11-30 14:03 UTC)).contains("Nov"));
        assert_eq!(local_time(None), "--:--");
    }
}
