//! Reading a QIDO request: the route (what it returns, what it may filter on), the query string's
//! parameters (`fuzzymatching`, `limit`, `offset`, `includefield`, attribute filters) and their
//! refusals in Azure's words, and each filter's condition (exact, fuzzy, range, number).

use std::collections::BTreeSet;

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;

use crate::ApiVersion;
use crate::eqt::EqtDef;
use crate::error::{ApiError, ApiResult};
use crate::index::{self, CORE_ATTRIBUTES, Level, UID_ATTRIBUTES};
use crate::tags::tag_number;
use crate::uids::padless;
use dicomlab_dicom::json::parse_tag_key;
use dicomlab_dicom::tags::resolve;
use dicomlab_dicom::vr;

/// Which route was called: what it returns and which levels it may filter on.
#[derive(Debug, Clone)]
pub(super) struct Route {
    pub(super) result: Level,
    pub(super) filterable: &'static [Level],
    pub(super) study: Option<String>,
    pub(super) series: Option<String>,
}

fn t(key: &str) -> Tag {
    parse_tag_key(key).unwrap_or(Tag(0, 0))
}

fn tag_set(keys: &[&str]) -> Vec<Tag> {
    keys.iter().map(|k| t(k)).collect()
}

/// Contract §5.5 default sets.
pub(super) fn default_set(level: Level, v2: bool) -> Vec<Tag> {
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
pub(super) fn all_set(level: Level) -> Vec<Tag> {
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
pub(super) fn returned_levels(route: &Route) -> Vec<Level> {
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
pub(super) enum Cond {
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
pub(super) struct Query {
    pub(super) conds: Vec<Cond>,
    pub(super) returned: BTreeSet<Tag>,
    pub(super) limit: i64,
    pub(super) offset: i64,
    /// Filters on extended query tags with errors (header `erroneous-dicom-attributes`).
    pub(super) erroneous: Vec<String>,
}

/// Words of one fuzzy name value: each is one LIKE in the query (SQLite's expression depth is bounded).
pub(crate) const MAX_FUZZY_WORDS: usize = 32;
/// Query parameters in one search.
pub(crate) const MAX_QUERY_PARAMETERS: usize = 64;
/// `includefield` values in one search.
pub(crate) const MAX_INCLUDE_FIELDS: usize = 256;

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
pub(super) fn parse_query(
    raw: &str,
    route: &Route,
    version: ApiVersion,
    eqts: &[EqtDef],
) -> ApiResult<Query> {
    let pairs = parameters(raw)?;
    let mut q = Query {
        conds: Vec::new(),
        returned: BTreeSet::new(),
        limit: 100,
        offset: 0,
        erroneous: Vec::new(),
    };
    let (fuzzy, includes) = paging_and_options(&pairs, &mut q)?;
    add_returned(&mut q, route, version, &includes)?;
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
        add_filter(&mut q, route, eqts, fuzzy, (k, v), &mut seen)?;
    }
    Ok(q)
}

/// The query string's parameters: no `<`, parseable, at most [`MAX_QUERY_PARAMETERS`].
fn parameters(raw: &str) -> ApiResult<Vec<(String, String)>> {
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
    Ok(pairs)
}

/// `fuzzymatching`, `limit` and `offset` (into `q`), and the `includefield` values: whether matching is
/// fuzzy, and the values.
fn paging_and_options(pairs: &[(String, String)], q: &mut Query) -> ApiResult<(bool, Vec<String>)> {
    let mut fuzzy = false;
    let mut includes: Vec<String> = Vec::new();
    for (k, v) in pairs {
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
    Ok((fuzzy, includes))
}

/// What the results carry: the default set of each returned level, then `includefield`'s (`all`: every
/// level's whole set).
fn add_returned(
    q: &mut Query,
    route: &Route,
    version: ApiVersion,
    includes: &[String],
) -> ApiResult<()> {
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
    for inc in includes {
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
    Ok(())
}

/// One attribute filter `k=v`: a UID, ModalitiesInStudy, a core attribute or a ready extended query
/// tag, on a level the route may filter on; once per attribute, never empty.
fn add_filter(
    q: &mut Query,
    route: &Route,
    eqts: &[EqtDef],
    fuzzy: bool,
    (k, v): (&String, &String),
    seen: &mut BTreeSet<Tag>,
) -> ApiResult<()> {
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
        return Ok(());
    }
    if attr.tag == tags::MODALITIES_IN_STUDY {
        if !allowed(&Level::Study) {
            return Err(not_queryable(k));
        }
        q.conds
            .push(Cond::ModalitiesInStudy(v.trim().to_lowercase()));
        q.returned.insert(attr.tag);
        return Ok(());
    }
    let (vr, level, name) = if let Some(core) = CORE_ATTRIBUTES.iter().find(|a| a.tag == attr.tag) {
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
    Ok(())
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

/// Which levels a route may filter on.
pub(super) const STUDY: &[Level] = &[Level::Study];
pub(super) const STUDY_SERIES: &[Level] = &[Level::Study, Level::Series];
pub(super) const ALL: &[Level] = &[Level::Study, Level::Series, Level::Instance];
pub(super) const SERIES: &[Level] = &[Level::Series];
pub(super) const SERIES_INSTANCE: &[Level] = &[Level::Series, Level::Instance];
pub(super) const INSTANCE: &[Level] = &[Level::Instance];
