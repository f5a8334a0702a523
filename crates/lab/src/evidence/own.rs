//! The checks' own requests (dicomlab's exchange ledger): their rows in the audit log are left out,
//! one for one, so that a check's request is never taken for the learner's.

use super::{Attempt, Source};
use dicomlab_dicomweb::ledger::{OwnRequest, route_key};
use std::collections::HashMap;
use time::OffsetDateTime;

/// How far apart a check's request and its audit row may be (the row is written when it ends).
const OWN_WINDOW_SECS: i64 = 120;

/// Takes out of `attempts` the log rows of the checks' own requests: each request matches at most
/// one row, of the same method and route, within [`OWN_WINDOW_SECS`] after it was sent.
pub(super) fn leave_out_own(attempts: &mut Vec<Attempt>, own: &[OwnRequest]) {
    if own.is_empty() {
        return;
    }
    // Per route, the rows with a time, in time order: each request looks only at its window.
    let mut by_route: HashMap<(String, String), Vec<(OffsetDateTime, usize)>> = HashMap::new();
    for (i, a) in attempts.iter().enumerate() {
        if a.source == Source::AuditLog
            && let Some(t) = a.time()
        {
            by_route
                .entry((a.method.to_ascii_uppercase(), route_key(&a.url)))
                .or_default()
                .push((t, i));
        }
    }
    for rows in by_route.values_mut() {
        rows.sort_unstable();
    }
    let mut drop = vec![false; attempts.len()];
    for o in own {
        let sent = o.at;
        let Some(rows) = by_route.get(&(o.method.clone(), o.path.clone())) else {
            continue;
        };
        let (Some(lo), Some(hi)) = (
            sent.checked_sub(time::Duration::seconds(5)),
            sent.checked_add(time::Duration::seconds(OWN_WINDOW_SECS)),
        ) else {
            continue;
        };
        let start = rows.partition_point(|(t, _)| *t < lo);
        // The nearest row in the window not yet matched.
        let best = rows[start..]
            .iter()
            .take_while(|(t, _)| *t <= hi)
            .filter(|(_, i)| !drop[*i])
            .min_by_key(|(t, _)| (*t - sent).abs());
        if let Some((_, i)) = best {
            drop[*i] = true;
        }
    }
    let mut i = 0;
    attempts.retain(|_| {
        let keep = !drop[i];
        i += 1;
        keep
    });
}
