//! The service's own state as a record: its change feed (read whole, v1 by sequence windows, v2 by
//! rows) and its extended query tags.

use super::{FeedEntry, ReadError, TagEntry};
use dicomlab_dicomweb::{DicomWebClient, get_ci, parse_timestamp};
use serde_json::Value;

/// Most change-feed entries read in one check run.
const MAX_FEED: usize = 50_000;
/// Most change-feed pages read for one check (100 entries or sequences each).
const MAX_FEED_PAGES: usize = MAX_FEED / 100 + 10;

/// Reads the whole change feed (v1 by sequence windows, v2 by rows), oldest first. None: no change feed.
pub(super) async fn read_feed(
    client: &DicomWebClient,
) -> Result<Option<Vec<FeedEntry>>, ReadError> {
    let latest = client.change_feed_latest().await?;
    if latest.status == 404 {
        return Ok(None);
    }
    if latest.status == 204 {
        return Ok(Some(Vec::new()));
    }
    if !latest.ok() {
        return Err(ReadError::Answer(Box::new(latest)));
    }
    let last = latest
        .json()
        .and_then(|v| get_ci(&v, "sequence").and_then(Value::as_u64))
        .unwrap_or(0);
    let v2 = client.base_url().is_v2();
    let mut out = Vec::new();
    let limit = 100u32;
    // v1's offset is a sequence cursor: start at the newest MAX_FEED sequences (what the lab's steps
    // look for is recent). v2's is a count of rows to skip, from the oldest.
    let mut offset = if v2 {
        0
    } else {
        last.saturating_sub(MAX_FEED as u64)
    };
    for _ in 0..MAX_FEED_PAGES {
        let a = client.change_feed(offset, limit, false).await?;
        if !a.ok() {
            return Err(ReadError::Answer(Box::new(a)));
        }
        let page = a
            .json()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        for e in &page {
            let s = |k: &str| {
                get_ci(e, k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            out.push(FeedEntry {
                sequence: get_ci(e, "sequence").and_then(Value::as_u64).unwrap_or(0),
                action: s("action"),
                study: s("studyInstanceUid"),
                series: s("seriesInstanceUid"),
                sop: s("sopInstanceUid"),
                timestamp: parse_timestamp(&s("timestamp")),
            });
        }
        if out.len() >= MAX_FEED {
            break;
        }
        if v2 {
            offset += page.len() as u64;
            if page.is_empty() || page.len() < limit as usize {
                break;
            }
        } else {
            let max = page
                .iter()
                .filter_map(|e| get_ci(e, "sequence").and_then(Value::as_u64))
                .max();
            // A cursor that does not move ahead (a page of older or no sequences) moves by the
            // window instead: the loop always ends.
            offset = match max {
                Some(m) if m > offset => m,
                _ => offset.saturating_add(u64::from(limit)),
            };
            if offset >= last {
                break;
            }
        }
    }
    out.sort_by_key(|e| e.sequence);
    Ok(Some(out))
}

/// Reads the extended query tags. None: the server has none.
pub(super) async fn read_tags(client: &DicomWebClient) -> Result<Option<Vec<TagEntry>>, ReadError> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let a = client.tags(200, offset).await?;
        match a.status {
            404 | 405 if offset == 0 => return Ok(None),
            s if (200..300).contains(&s) => {}
            _ => return Err(ReadError::Answer(Box::new(a))),
        }
        let page = a
            .json()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        for t in &page {
            let s = |k: &str| {
                get_ci(t, k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            out.push(TagEntry {
                path: s("path"),
                status: s("status"),
                query_status: s("queryStatus"),
                operation: get_ci(t, "operation")
                    .and_then(|o| get_ci(o, "id"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        }
        if page.len() < 200 || out.len() >= 1000 {
            break;
        }
        offset += 200;
    }
    Ok(Some(out))
}
