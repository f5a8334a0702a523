//! QIDO-RS (docs/contract.md §5): six routes, the searchable attributes per level plus ready extended query tags,
//! exact / fuzzy (PN) / range (DA, DT, TM) matching, `includefield`, `limit` / `offset`, 204 on no match,
//! 400 on anything the real service refuses, and its v1 / v2 default attribute sets. A study's (series')
//! attributes are its latest values, in filters and in results, as upstream keeps them per study.

use std::collections::BTreeSet;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use rusqlite::OptionalExtension;
use serde_json::{Map, Value, json};

use super::accept::accepts_dicom_json;
use super::auth::{Action, Caller};
use super::eqt::{self, EqtDef};
use super::error::{ApiError, ApiResult};
use super::index::{self, CORE_ATTRIBUTES, Level, UID_ATTRIBUTES};
use super::tags::tag_number;
use super::uids::padless;
use super::{ApiVersion, Service, SharedService};
use dicomlab_dicom::is_valid_uid;
use dicomlab_dicom::json::{parse_tag_key, tag_key};
use dicomlab_dicom::tags::resolve;
use dicomlab_dicom::vr;

/// Which route was called: what it returns and which levels it may filter on.
#[derive(Debug, Clone)]
struct Route {
    result: Level,
    filterable: &'static [Level],
    study: Option<String>,
    series: Option<String>,
}

fn t(key: &str) -> Tag {
    parse_tag_key(key).unwrap_or(Tag(0, 0))
}

fn tag_set(keys: &[&str]) -> Vec<Tag> {
    keys.iter().map(|k| t(k)).collect()
}

/// Contract §5.5 default sets.
fn default_set(level: Level, v2: bool) -> Vec<Tag> {
    match (level, v2) {
        (Level::Study, false) => tag_set(&[
            "00080005", "00080020", "00080030", "00080050", "00080056", "00080090", "00080201",
            "00100010", "00100020", "00100030", "00100040", "0020000D", "00200010",
        ]),
        (Level::Study, true) => tag_set(&[
            "0020000D", "00080020", "00081030", "00080050", "00080090", "00100010", "00100020",
            "00100030",
        ]),
        (Level::Series, false) => tag_set(&[
            "00080005", "00080060", "00080201", "0008103E", "0020000E", "00400244", "00400245",
            "00400275",
        ]),
        (Level::Series, true) => tag_set(&["0020000E", "00080060", "00400244", "00081090"]),
        (Level::Instance, false) => tag_set(&[
            "00080005", "00080016", "00080018", "00080056", "00080201", "00200013", "00280010",
            "00280011", "00280100", "00280008",
        ]),
        (Level::Instance, true) => tag_set(&["00080018"]),
    }
}

/// Contract §5.5 `includefield=all` sets.
fn all_set(level: Level) -> Vec<Tag> {
    let mut v = default_set(level, false);
    v.extend(match level {
        Level::Study => tag_set(&[
            "00081030", "00080063", "00081032", "00081060", "00081080", "00081110", "00101010",
            "00101020", "00101030", "00102180", "001021B0",
        ]),
        // The computed counts come only when named (upstream's AllStudyTags / AllSeriesTags).
        Level::Series => tag_set(&["00200011", "00200060", "00080021", "00080031"]),
        Level::Instance => Vec::new(),
    });
    v
}

/// Which levels' sets a route returns (docs/contract.md §5.5).
fn returned_levels(route: &Route) -> Vec<Level> {
    match (route.result, route.study.is_some()) {
        (Level::Study, _) => vec![Level::Study],
        (Level::Series, false) => vec![Level::Study, Level::Series],
        (Level::Series, true) => vec![Level::Series],
        (Level::Instance, false) => vec![Level::Study, Level::Series, Level::Instance],
        (Level::Instance, true) if route.series.is_none() => vec![Level::Series, Level::Instance],
        (Level::Instance, true) => vec![Level::Instance],
    }
}

/// One filter of the query.
#[derive(Debug, Clone)]
enum Cond {
    StudyUid(String),
    SeriesUid(String),
    SopUid(String),
    Text(i64, String),
    Range(i64, Option<String>, Option<String>),
    Number(i64, f64),
    Fuzzy(i64, Vec<String>),
    ModalitiesInStudy(String),
    /// An attribute of a study or a series matches on the study's (series') value: the one its latest
    /// instance holding the attribute gave (upstream keeps one row per study and series, "latest wins",
    /// an instance without the attribute leaving it as it was); an instance's attribute on its own value.
    At(Level, Box<Cond>),
}

/// A parsed query.
#[derive(Debug)]
struct Query {
    conds: Vec<Cond>,
    returned: BTreeSet<Tag>,
    limit: i64,
    offset: i64,
    /// Filters on extended query tags with errors (header `erroneous-dicom-attributes`).
    erroneous: Vec<String>,
}

/// Words of one fuzzy name value: each is one LIKE in the query (SQLite's expression depth is bounded).
pub const MAX_FUZZY_WORDS: usize = 32;
/// Query parameters in one search.
pub const MAX_QUERY_PARAMETERS: usize = 64;
/// `includefield` values in one search.
pub const MAX_INCLUDE_FIELDS: usize = 256;

/// What Azure adds to both of its "cannot search on that" answers (its two spaces included).
const CHECK_CASING: &str = "If the parameter is an attribute keyword, check the casing as they are case-sensitive. The conformance statement has a list of supported query parameters, attributes and the levels.";

fn not_queryable(name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid query: AttributeId {name} is not queryable.  {CHECK_CASING}"
    ))
}

fn unknown_parameter(name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid query: unknown query parameter '{name}'. {CHECK_CASING}"
    ))
}

/// Parses the raw query string of a QIDO request against the route and the current tags.
fn parse_query(raw: &str, route: &Route, version: ApiVersion, eqts: &[EqtDef]) -> ApiResult<Query> {
    if raw.contains('<') || raw.to_ascii_lowercase().contains("%3c") {
        return Err(ApiError::bad_request(
            "Invalid query: the query string contains '<', which is not allowed.",
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).map_err(|e| {
        ApiError::bad_request(format!(
            "Invalid query: the query string cannot be parsed: {e}"
        ))
    })?;
    if pairs.len() > MAX_QUERY_PARAMETERS {
        return Err(ApiError::bad_request(format!(
            "Invalid query: {} query parameters; at most {MAX_QUERY_PARAMETERS} are accepted.",
            pairs.len()
        )));
    }
    let mut q = Query {
        conds: Vec::new(),
        returned: BTreeSet::new(),
        limit: 100,
        offset: 0,
        erroneous: Vec::new(),
    };
    let mut fuzzy = false;
    let mut includes: Vec<String> = Vec::new();
    for (k, v) in &pairs {
        match k.to_ascii_lowercase().as_str() {
            "fuzzymatching" => {
                fuzzy = match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::bad_query_param(
                            k,
                            "The value must be true or false.",
                        ));
                    }
                }
            }
            "limit" => {
                q.limit = v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=200).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_query_param("limit", "The value must be between 1 and 200.")
                    })?;
            }
            "offset" => {
                q.offset = v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| {
                        ApiError::bad_query_param("offset", "The value must be 0 or more.")
                    })?;
            }
            "includefield" => includes.extend(v.split(',').map(|s| s.trim().to_string())),
            _ => {}
        }
    }
    if includes.len() > MAX_INCLUDE_FIELDS {
        return Err(ApiError::bad_request(format!(
            "Invalid query: {} includefield values; at most {MAX_INCLUDE_FIELDS} are accepted.",
            includes.len()
        )));
    }
    let levels = returned_levels(route);
    for level in &levels {
        q.returned.extend(default_set(*level, version.v2));
    }
    let has_all = includes.iter().any(|i| i.eq_ignore_ascii_case("all"));
    if has_all && includes.len() > 1 {
        return Err(ApiError::bad_request(
            "Invalid query: 'all' cannot be combined with other includefield values.",
        ));
    }
    for inc in &includes {
        if inc.eq_ignore_ascii_case("all") {
            for level in &levels {
                q.returned.extend(all_set(*level));
            }
        } else {
            let attr = resolve(inc).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid query: unknown includefield value '{inc}'."
                ))
            })?;
            q.returned.insert(attr.tag);
        }
    }
    // Path UIDs are filters too (and are returned).
    if let Some(s) = &route.study {
        q.conds.push(Cond::StudyUid(padless(s).to_string()));
        q.returned.insert(tags::STUDY_INSTANCE_UID);
    }
    if let Some(s) = &route.series {
        q.conds.push(Cond::SeriesUid(padless(s).to_string()));
        q.returned.insert(tags::SERIES_INSTANCE_UID);
    }
    let mut seen: BTreeSet<Tag> = BTreeSet::new();
    for (k, v) in &pairs {
        if matches!(
            k.to_ascii_lowercase().as_str(),
            "fuzzymatching" | "limit" | "offset" | "includefield"
        ) {
            continue;
        }
        let Some(attr) = (if k.contains('.') { None } else { resolve(k) }) else {
            return Err(unknown_parameter(k));
        };
        if !seen.insert(attr.tag) {
            return Err(ApiError::bad_request(format!(
                "Invalid query: Duplicate AttributeId '{k}'."
            )));
        }
        if v.trim().is_empty() {
            return Err(ApiError::bad_request(format!(
                "Invalid query: AttributeId '{k}' has empty string value that is not supported."
            )));
        }
        let allowed = |level: &Level| route.filterable.contains(level);
        // Core attributes.
        if let Some((_, level)) = UID_ATTRIBUTES.iter().find(|(t, _)| *t == attr.tag) {
            if !allowed(level) {
                return Err(not_queryable(k));
            }
            let v = padless(v.trim_start()).to_string();
            q.conds.push(match level {
                Level::Study => Cond::StudyUid(v),
                Level::Series => Cond::SeriesUid(v),
                Level::Instance => Cond::SopUid(v),
            });
            q.returned.insert(attr.tag);
            continue;
        }
        if attr.tag == tags::MODALITIES_IN_STUDY {
            if !allowed(&Level::Study) {
                return Err(not_queryable(k));
            }
            q.conds
                .push(Cond::ModalitiesInStudy(v.trim().to_lowercase()));
            q.returned.insert(attr.tag);
            continue;
        }
        let (vr, level, name) =
            if let Some(core) = CORE_ATTRIBUTES.iter().find(|a| a.tag == attr.tag) {
                if !allowed(&core.level) {
                    return Err(not_queryable(k));
                }
                (core.vr, core.level, k.clone())
            } else if let Some(tag) = eqts.iter().find(|e| e.tag == attr.tag) {
                if tag.status != "ready" || !allowed(&tag.level) {
                    return Err(not_queryable(k));
                }
                if tag.query_status != "enabled" {
                    return Err(ApiError::bad_request(format!(
                        "Query is disabled on specified attribute '{k}'."
                    )));
                }
                if tag.error_count > 0 {
                    q.erroneous.push(k.clone());
                }
                (tag.vr, tag.level, k.clone())
            } else {
                return Err(not_queryable(k));
            };
        let cond = condition(attr.tag, vr, v, fuzzy, &name)?;
        q.conds.push(Cond::At(level, Box::new(cond)));
        q.returned.insert(attr.tag);
    }
    Ok(q)
}

/// Parses a raw QIDO query string as `/instances` would (every level, v1, no extended query tags):
/// how it is refused, if it is. For fuzzing and tests.
pub fn check_query(raw: &str) -> Result<(), String> {
    let route = Route {
        result: Level::Instance,
        filterable: ALL,
        study: None,
        series: None,
    };
    let version = ApiVersion {
        v2: false,
        segment: "v1",
    };
    parse_query(raw, &route, version, &[])
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn invalid_date(v: &str, name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid query: specified Date value '{v}' is invalid for attribute '{name}'. Date should be valid and formatted as yyyyMMdd."
    ))
}

/// The filter for one attribute value, by VR (docs/contract.md §5.3, §8.8).
fn condition(tag: Tag, vr: VR, raw: &str, fuzzy: bool, name: &str) -> ApiResult<Cond> {
    let key = tag_number(tag);
    let v = raw.trim();
    match vr {
        VR::DA | VR::DT | VR::TM => {
            let valid = |s: &str| match vr {
                VR::DA => vr::is_valid_date(s),
                VR::TM => vr::is_valid_time(s),
                _ => vr::is_valid_datetime(s) && !s.contains(['+', '-']),
            };
            let bad = |s: &str| {
                if vr == VR::DA {
                    invalid_date(s, name)
                } else {
                    ApiError::bad_request(format!(
                        "Invalid query: specified value '{s}' is invalid for attribute '{name}'."
                    ))
                }
            };
            // DT values may not carry an offset, so a '-' always means a range.
            if let Some((a, b)) = v.split_once('-') {
                let (a, b) = (a.trim(), b.trim());
                if a.is_empty() && b.is_empty() {
                    return Err(bad(v));
                }
                for s in [a, b] {
                    if !s.is_empty() && !valid(s) {
                        return Err(bad(s));
                    }
                }
                if !a.is_empty() && !b.is_empty() && a > b {
                    return Err(ApiError::bad_request(format!(
                        "Invalid query: the range '{v}' of attribute '{name}' ends before it starts."
                    )));
                }
                let upper = (!b.is_empty()).then(|| {
                    if vr == VR::DA {
                        b.to_string()
                    } else {
                        format!("{b}\u{10FFFF}")
                    }
                });
                Ok(Cond::Range(
                    key,
                    (!a.is_empty()).then(|| a.to_string()),
                    upper,
                ))
            } else if valid(v) {
                Ok(Cond::Text(key, v.to_string()))
            } else {
                Err(bad(v))
            }
        }
        VR::PN if fuzzy => {
            if v.contains('"') {
                return Err(ApiError::bad_request(format!(
                    "Invalid query: the value of '{name}' contains '\"'."
                )));
            }
            let words: Vec<String> = index::fold(v)
                .split(['^', ' ', '='])
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect();
            if words.len() > MAX_FUZZY_WORDS {
                return Err(ApiError::bad_request(format!(
                    "Invalid query: the fuzzy value of '{name}' has {} words; at most {MAX_FUZZY_WORDS} are matched.",
                    words.len()
                )));
            }
            Ok(Cond::Fuzzy(key, words))
        }
        _ if index::is_numeric(vr) => match v.parse::<f64>() {
            Ok(n) => Ok(Cond::Number(key, n)),
            Err(_) => Err(ApiError::bad_request(format!(
                "Invalid query: the value '{v}' of attribute '{name}' is not a number."
            ))),
        },
        _ => match index::normalise(vr, v) {
            (Some(text), _) => Ok(Cond::Text(key, text)),
            _ => Err(ApiError::bad_request(format!(
                "Invalid query: AttributeId '{name}' has empty string value that is not supported."
            ))),
        },
    }
}

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
) -> Result<(), super::db::DbError> {
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
fn run(svc: &Service, route: &Route, q: &Query) -> Result<Vec<Value>, super::db::DbError> {
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
        if q.returned.contains(&tags::MODALITIES_IN_STUDY) {
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
        if q.returned
            .contains(&tags::NUMBER_OF_STUDY_RELATED_INSTANCES)
        {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM instances WHERE study_uid = ?1",
                [&study],
                |r| r.get(0),
            )?;
            out.insert(
                tag_key(tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
                json!({"vr": "IS", "Value": [n]}),
            );
        }
        if q.returned
            .contains(&tags::NUMBER_OF_SERIES_RELATED_INSTANCES)
            && route.result != Level::Study
        {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM instances WHERE study_uid = ?1 AND series_uid = ?2",
                [&study, &series],
                |r| r.get(0),
            )?;
            out.insert(
                tag_key(tags::NUMBER_OF_SERIES_RELATED_INSTANCES),
                json!({"vr": "IS", "Value": [n]}),
            );
        }
        results.push(Value::Object(out));
    }
    Ok(results)
}

async fn search(
    svc: SharedService,
    version: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    raw: Option<String>,
    route: Route,
) -> ApiResult<Response> {
    if !accepts_dicom_json(&headers) {
        return Err(ApiError::empty(StatusCode::NOT_ACCEPTABLE));
    }
    caller.require(&svc, Action::Read)?;
    for (name, uid) in [
        ("StudyInstanceUid", &route.study),
        ("SeriesInstanceUid", &route.series),
    ] {
        if let Some(u) = uid
            && !is_valid_uid(u)
        {
            return Err(ApiError::bad_uid(name, u));
        }
    }
    let eqts = svc.db(eqt::all_tags).await?;
    let q = parse_query(raw.as_deref().unwrap_or(""), &route, version, &eqts)?;
    let erroneous = q.erroneous.join(",");
    let results = svc.db(move |s| run(s, &route, &q)).await?;
    let mut resp = if results.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let mut r = (StatusCode::OK, Value::Array(results).to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/dicom+json"),
        );
        r
    };
    if !erroneous.is_empty()
        && let Ok(v) = HeaderValue::from_str(&erroneous)
    {
        resp.headers_mut().insert("erroneous-dicom-attributes", v);
    }
    Ok(resp)
}

const STUDY: &[Level] = &[Level::Study];
const STUDY_SERIES: &[Level] = &[Level::Study, Level::Series];
const ALL: &[Level] = &[Level::Study, Level::Series, Level::Instance];
const SERIES: &[Level] = &[Level::Series];
const SERIES_INSTANCE: &[Level] = &[Level::Series, Level::Instance];
const INSTANCE: &[Level] = &[Level::Instance];

pub async fn search_studies(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let route = Route {
        result: Level::Study,
        filterable: STUDY,
        study: None,
        series: None,
    };
    search(svc, version, caller, headers, raw, route).await
}

pub async fn search_series(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let route = Route {
        result: Level::Series,
        filterable: STUDY_SERIES,
        study: None,
        series: None,
    };
    search(svc, version, caller, headers, raw, route).await
}

pub async fn search_instances(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let route = Route {
        result: Level::Instance,
        filterable: ALL,
        study: None,
        series: None,
    };
    search(svc, version, caller, headers, raw, route).await
}

pub async fn search_series_in_study(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    Path((_, study)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let route = Route {
        result: Level::Series,
        filterable: SERIES,
        study: Some(study),
        series: None,
    };
    search(svc, version, caller, headers, raw, route).await
}

pub async fn search_instances_in_study(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    Path((_, study)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let route = Route {
        result: Level::Instance,
        filterable: SERIES_INSTANCE,
        study: Some(study),
        series: None,
    };
    search(svc, version, caller, headers, raw, route).await
}

pub async fn search_instances_in_series(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    Path((_, study, series)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let route = Route {
        result: Level::Instance,
        filterable: INSTANCE,
        study: Some(study),
        series: Some(series),
    };
    search(svc, version, caller, headers, raw, route).await
}
