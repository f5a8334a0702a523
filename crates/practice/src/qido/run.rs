//! Running a parsed QIDO query on the index: its filters as SQL, the page of matches, and each result's
//! attributes — a study's (series') as their latest values, and the computed ones (ModalitiesInStudy,
//! the related-instance counts).

use std::collections::BTreeSet;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use rusqlite::OptionalExtension;
use serde_json::{Map, Value, json};

use super::query::{Cond, Query, Route};
use crate::Service;
use crate::db::DbError;
use crate::index::{CORE_ATTRIBUTES, Level};
use crate::tags::tag_number;
use dicomlab_dicom::json::tag_key;

/// The predicate on an `attr_index` row `a` for an attribute condition, its tag and its arguments.
fn attr_predicate(c: &Cond) -> Option<(i64, String, Vec<rusqlite::types::Value>)> {
    use rusqlite::types::Value as V;
    Some(match c {
        Cond::Text(tag, v) => (*tag, "a.value = ?".into(), vec![V::Text(v.clone())]),
        Cond::Number(tag, n) => (*tag, "a.num = ?".into(), vec![V::Real(*n)]),
        Cond::Range(tag, lo, hi) => {
            let mut inner = vec!["a.value IS NOT NULL".to_string()];
            let mut args = Vec::new();
            if let Some(lo) = lo {
                inner.push("a.value >= ?".into());
                args.push(V::Text(lo.clone()));
            }
            if let Some(hi) = hi {
                inner.push("a.value <= ?".into());
                args.push(V::Text(hi.clone()));
            }
            (*tag, inner.join(" AND "), args)
        }
        Cond::Fuzzy(tag, words) => {
            let mut inner = vec!["1=1".to_string()];
            let mut args = Vec::new();
            for w in words {
                inner.push(
                    "(' ' || replace(replace(a.value, '^', ' '), '=', ' ')) LIKE ? ESCAPE '\\'"
                        .into(),
                );
                let escaped = w
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                args.push(V::Text(format!("% {escaped}%")));
            }
            (*tag, inner.join(" AND "), args)
        }
        _ => return None,
    })
}

/// SQL for the conditions, with its arguments.
fn where_clause(conds: &[Cond]) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut sql = vec!["1=1".to_string()];
    let mut args: Vec<V> = Vec::new();
    for c in conds {
        let (level, c) = match c {
            Cond::At(level, inner) => (*level, inner.as_ref()),
            other => (Level::Instance, other),
        };
        if let Some((tag, inner, more)) = attr_predicate(c) {
            // Driven from the (tag, value) index: an IN over matching rows, never a scan of every
            // instance. A study's (series') row counts only when it is the latest of that study (series)
            // for the tag: found walking its instances newest first (the (study, watermark) index).
            sql.push(match level {
                Level::Instance => format!(
                    "i.watermark IN (SELECT a.watermark FROM attr_index a WHERE a.tag = ? AND {inner})"
                ),
                Level::Study => format!(
                    "i.study_uid IN (SELECT j.study_uid FROM attr_index a CROSS JOIN instances j
                      ON j.watermark = a.watermark WHERE a.tag = ? AND {inner}
                      AND a.watermark = (SELECT j2.watermark FROM instances j2 CROSS JOIN attr_index a2
                        ON a2.watermark = j2.watermark AND a2.tag = a.tag
                        WHERE j2.study_uid = j.study_uid ORDER BY j2.watermark DESC LIMIT 1))"
                ),
                Level::Series => format!(
                    "(i.study_uid, i.series_uid) IN (SELECT j.study_uid, j.series_uid FROM attr_index a
                      CROSS JOIN instances j ON j.watermark = a.watermark WHERE a.tag = ? AND {inner}
                      AND a.watermark = (SELECT j2.watermark FROM instances j2 CROSS JOIN attr_index a2
                        ON a2.watermark = j2.watermark AND a2.tag = a.tag
                        WHERE j2.series_uid = j.series_uid AND j2.study_uid = j.study_uid
                        ORDER BY j2.watermark DESC LIMIT 1))"
                ),
            });
            args.push(V::Integer(tag));
            args.extend(more);
            continue;
        }
        match c {
            Cond::StudyUid(u) => {
                sql.push("i.study_uid = ?".into());
                args.push(V::Text(u.clone()));
            }
            Cond::SeriesUid(u) => {
                sql.push("i.series_uid = ?".into());
                args.push(V::Text(u.clone()));
            }
            Cond::SopUid(u) => {
                sql.push("i.sop_uid = ?".into());
                args.push(V::Text(u.clone()));
            }
            Cond::ModalitiesInStudy(m) => {
                sql.push(
                    "i.study_uid IN (SELECT j.study_uid FROM attr_index a CROSS JOIN instances j
                      ON j.watermark = a.watermark WHERE a.tag = ? AND a.value = ?)"
                        .into(),
                );
                args.push(V::Integer(tag_number(tags::MODALITY)));
                args.push(V::Text(m.clone()));
            }
            _ => {}
        }
    }
    (sql.join(" AND "), args)
}

/// The study attributes upstream keeps per study (its `StudyResult`), and the series ones per series.
const STUDY_COMPUTED: &[Tag] = &[
    tags::STUDY_INSTANCE_UID,
    tags::PATIENT_ID,
    tags::PATIENT_NAME,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_DATE,
    tags::STUDY_DESCRIPTION,
    tags::ACCESSION_NUMBER,
    tags::PATIENT_BIRTH_DATE,
    tags::MODALITIES_IN_STUDY,
    tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
];
const SERIES_COMPUTED: &[Tag] = &[
    tags::SERIES_INSTANCE_UID,
    tags::MODALITY,
    tags::PERFORMED_PROCEDURE_STEP_START_DATE,
    tags::MANUFACTURER_MODEL_NAME,
    tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
];

/// Where a result's study and series attributes come from, as upstream decides it: when every returned
/// attribute is one it keeps per study or series, the result is made of those values only (`only`);
/// otherwise from the instance's metadata, with the study's (series') values laid over it only when a
/// computed attribute of the result's own level is asked for.
#[derive(Debug, Clone, Copy)]
struct Overlay {
    study: bool,
    series: bool,
    only: bool,
}

impl Overlay {
    fn for_query(route: &Route, returned: &BTreeSet<Tag>) -> Overlay {
        let kept = |t: &Tag| STUDY_COMPUTED.contains(t) || SERIES_COMPUTED.contains(t);
        let asked = |set: &[Tag]| returned.iter().any(|t| set.contains(t));
        if returned.iter().all(kept) {
            return Overlay {
                study: asked(STUDY_COMPUTED),
                series: asked(SERIES_COMPUTED),
                only: true,
            };
        }
        Overlay {
            study: route.result == Level::Study
                && asked(&[
                    tags::MODALITIES_IN_STUDY,
                    tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
                ]),
            series: route.result == Level::Series
                && asked(&[tags::NUMBER_OF_SERIES_RELATED_INSTANCES]),
            only: false,
        }
    }
}

/// A study, or a series of it.
#[derive(Debug, Clone, Copy)]
struct Group<'a> {
    level: Level,
    study: &'a str,
    series: &'a str,
}

/// Lays the group's current value of each returned core attribute of its level over a result: the
/// element of its latest instance that holds the attribute (an instance without it leaves the value as
/// it was, as upstream's "latest wins" update does). With `only`, an attribute no instance holds is
/// left out, as upstream's computed results leave it. `held` is the result's own instance, parsed.
fn apply_current_values(
    c: &rusqlite::Connection,
    group: Group<'_>,
    returned: &BTreeSet<Tag>,
    held: (i64, &Map<String, Value>),
    only: bool,
    out: &mut Map<String, Value>,
) -> Result<(), DbError> {
    let mut latest = c.prepare_cached(
        "SELECT j.watermark FROM instances j CROSS JOIN attr_index a
           ON a.watermark = j.watermark AND a.tag = ?3
         WHERE j.study_uid = ?1 AND (?2 IS NULL OR j.series_uid = ?2)
         ORDER BY j.watermark DESC LIMIT 1",
    )?;
    let series = (group.level == Level::Series).then_some(group.series);
    // Other instances' metadata, parsed once each (at most one per attribute).
    let mut others: Vec<(i64, Map<String, Value>)> = Vec::new();
    for attr in CORE_ATTRIBUTES.iter().filter(|a| a.level == group.level) {
        if !returned.contains(&attr.tag) {
            continue;
        }
        let key = tag_key(attr.tag);
        let found: Option<i64> = latest
            .query_row(
                rusqlite::params![group.study, series, tag_number(attr.tag)],
                |r| r.get(0),
            )
            .optional()?;
        let Some(w) = found else {
            // Upstream's study row keeps PatientID even when empty (a NOT NULL column); the others are
            // NULL, and a computed result leaves them out.
            if only && attr.tag != tags::PATIENT_ID {
                out.remove(&key);
            }
            continue;
        };
        let element = if w == held.0 {
            held.1.get(&key).cloned()
        } else {
            if !others.iter().any(|(o, _)| *o == w) {
                let text: String = c.query_row(
                    "SELECT metadata FROM instances WHERE watermark = ?1",
                    [w],
                    |r| r.get(0),
                )?;
                if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&text) {
                    others.push((w, m));
                }
            }
            others
                .iter()
                .find(|(o, _)| *o == w)
                .and_then(|(_, m)| m.get(&key).cloned())
        };
        if let Some(e) = element {
            out.insert(key, e);
        }
    }
    Ok(())
}

/// Runs a parsed query and builds the result objects.
pub(super) fn run(svc: &Service, route: &Route, q: &Query) -> Result<Vec<Value>, DbError> {
    let (filter, mut args) = where_clause(&q.conds);
    args.push(rusqlite::types::Value::Integer(q.limit));
    args.push(rusqlite::types::Value::Integer(q.offset));
    let c = svc.db.lock()?;
    let sql = match route.result {
        Level::Study => format!(
            "SELECT i.study_uid, MAX(i.watermark), COUNT(*) FROM instances i WHERE {filter}
             GROUP BY i.study_uid ORDER BY MIN(i.watermark) DESC LIMIT ? OFFSET ?"
        ),
        Level::Series => format!(
            "SELECT i.series_uid, MAX(i.watermark), COUNT(*) FROM instances i WHERE {filter}
             GROUP BY i.study_uid, i.series_uid ORDER BY MIN(i.watermark) DESC LIMIT ? OFFSET ?"
        ),
        Level::Instance => format!(
            "SELECT i.sop_uid, i.watermark, 1 FROM instances i WHERE {filter}
             ORDER BY i.watermark DESC LIMIT ? OFFSET ?"
        ),
    };
    let mut stmt = c.prepare_cached(&sql)?;
    let hits: Vec<(String, i64)> = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut meta_stmt = c.prepare_cached(
        "SELECT metadata, study_uid, series_uid FROM instances WHERE watermark = ?1",
    )?;
    let overlay = Overlay::for_query(route, &q.returned);
    let mut results = Vec::with_capacity(hits.len());
    for (_, watermark) in hits {
        let (metadata, study, series): (String, String, String) =
            meta_stmt.query_row([watermark], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let Ok(Value::Object(meta)) = serde_json::from_str::<Value>(&metadata) else {
            continue;
        };
        let mut out = Map::new();
        for tag in &q.returned {
            let key = tag_key(*tag);
            if let Some(v) = meta.get(&key) {
                out.insert(key, v.clone());
            }
        }
        for (level, wanted) in [
            (Level::Study, overlay.study),
            (Level::Series, overlay.series),
        ] {
            if wanted {
                let group = Group {
                    level,
                    study: &study,
                    series: &series,
                };
                let held = (watermark, &meta);
                apply_current_values(&c, group, &q.returned, held, overlay.only, &mut out)?;
            }
        }
        computed_values(&c, route, &q.returned, (&study, &series), &mut out)?;
        results.push(Value::Object(out));
    }
    Ok(results)
}

/// The computed attributes a result asked for: ModalitiesInStudy (every modality of the study), and
/// the study's and the series' related-instance counts.
fn computed_values(
    c: &rusqlite::Connection,
    route: &Route,
    returned: &BTreeSet<Tag>,
    (study, series): (&String, &String),
    out: &mut Map<String, Value>,
) -> Result<(), DbError> {
    if returned.contains(&tags::MODALITIES_IN_STUDY) {
        let mut s = c.prepare_cached(
            // CROSS JOIN keeps SQLite from starting at every Modality row of the (tag, value) index.
            "SELECT DISTINCT a.value FROM instances j CROSS JOIN attr_index a ON a.watermark = j.watermark
             WHERE j.study_uid = ?1 AND a.tag = ?2 ORDER BY a.value",
        )?;
        let mods: Vec<String> = s
            .query_map(rusqlite::params![study, tag_number(tags::MODALITY)], |r| {
                r.get::<_, String>(0)
            })?
            .filter_map(Result::ok)
            .map(|m| m.to_uppercase())
            .collect();
        if !mods.is_empty() {
            out.insert(
                tag_key(tags::MODALITIES_IN_STUDY),
                json!({"vr": "CS", "Value": mods}),
            );
        }
    }
    if returned.contains(&tags::NUMBER_OF_STUDY_RELATED_INSTANCES) {
        let n: i64 = c.query_row(
            "SELECT COUNT(*) FROM instances WHERE study_uid = ?1",
            [study],
            |r| r.get(0),
        )?;
        out.insert(
            tag_key(tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
            json!({"vr": "IS", "Value": [n]}),
        );
    }
    if returned.contains(&tags::NUMBER_OF_SERIES_RELATED_INSTANCES) && route.result != Level::Study
    {
        let n: i64 = c.query_row(
            "SELECT COUNT(*) FROM instances WHERE study_uid = ?1 AND series_uid = ?2",
            [study, series],
            |r| r.get(0),
        )?;
        out.insert(
            tag_key(tags::NUMBER_OF_SERIES_RELATED_INSTANCES),
            json!({"vr": "IS", "Value": [n]}),
        );
    }
    Ok(())
}
