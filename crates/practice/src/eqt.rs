//! Extended query tags and operations (docs/contract.md §8): add (202 + operation), a background re-index over the
//! stored instances, list / get / PATCH QueryStatus / delete / errors, and `GET /operations/{id}`.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dicom_core::{Tag, VR};
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value, json};

use super::auth::{Action, Caller};
use super::changefeed::Params;
use super::db::{Db, DbError};
use super::error::{ApiError, ApiResult};
use super::index::{self, Level};
use super::tags::tag_number;
use super::{ApiVersion, Service, SharedService, now_timestamp, versioned_base};
use dicomlab_dicom::json::{parse_tag_key, tag_key};
use dicomlab_dicom::tags::{self as dtags, resolve};
use dicomlab_dicom::vr::{EQT_VRS, check_str};

/// The most tags the service holds (docs/contract.md §8.3).
pub(crate) const MAX_TAGS: i64 = 128;

/// An extended query tag as the index holds it.
#[derive(Debug, Clone)]
pub(crate) struct EqtDef {
    pub key: i64,
    pub tag: Tag,
    pub vr: VR,
    pub private_creator: Option<String>,
    pub level: Level,
    /// `adding`, `ready` or `deleting`.
    pub status: String,
    /// `enabled` or `disabled`.
    pub query_status: String,
    pub error_count: i64,
    pub operation_id: Option<String>,
}

const SELECT_TAGS: &str = "SELECT key, path, vr, private_creator, level, status, query_status, error_count, operation_id FROM eqt";

fn read_tags(
    c: &rusqlite::Connection,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<EqtDef>> {
    let mut stmt = c.prepare_cached(&format!("{SELECT_TAGS} {filter}"))?;
    let rows = stmt.query_map(args, |r| {
        let path: String = r.get(1)?;
        let vr: String = r.get(2)?;
        let level: String = r.get(4)?;
        Ok(EqtDef {
            key: r.get(0)?,
            tag: parse_tag_key(&path).unwrap_or(Tag(0, 0)),
            vr: vr.parse().unwrap_or(VR::LO),
            private_creator: r.get(3)?,
            level: Level::parse(&level).unwrap_or(Level::Instance),
            status: r.get(5)?,
            query_status: r.get(6)?,
            error_count: r.get(7)?,
            operation_id: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// Tags as last read from the index, with the count of the table's writes ([`Db::eqt_writes`]) they
/// were read at: good until the table is written again.
#[derive(Default)]
pub(crate) struct KeptTags(std::sync::Mutex<Option<(u64, std::sync::Arc<[EqtDef]>)>>);

impl KeptTags {
    /// The tags kept, unless the table was written since they were read.
    fn fresh(&self, db: &Db) -> Option<std::sync::Arc<[EqtDef]>> {
        let writes = db.eqt_writes();
        let kept = self.0.lock().ok()?;
        match &*kept {
            Some((at, tags)) if *at == writes => Some(tags.clone()),
            _ => None,
        }
    }

    /// The tags kept, or else the tags `filter` selects, read from the index and kept.
    fn get(&self, db: &Db, filter: &str) -> Result<std::sync::Arc<[EqtDef]>, DbError> {
        if let Some(tags) = self.fresh(db) {
            return Ok(tags);
        }
        let c = db.lock()?;
        // Under the lock no write is under way: what is read now is what this count dates.
        let at = db.eqt_writes();
        let tags: std::sync::Arc<[EqtDef]> = read_tags(&c, filter, &[])?.into();
        if let Ok(mut kept) = self.0.lock() {
            *kept = Some((at, tags.clone()));
        }
        Ok(tags)
    }
}

/// The tags a store indexes and a search reads, each kept between the table's writes: every store
/// and every search asks, tags rarely change.
#[derive(Default)]
pub(crate) struct TagCache {
    /// Adding or ready (what new instances are indexed on).
    active: KeptTags,
    /// Every tag, in creation order (what a search may name).
    all: KeptTags,
}

/// Every tag, in creation order, as kept: `None` when the table was written since (then
/// [`all_tags`] reads them on the blocking pool). A search's first look, on the runtime's thread.
pub(crate) fn kept_tags(svc: &Service) -> Option<std::sync::Arc<[EqtDef]>> {
    svc.tag_cache.all.fresh(&svc.db)
}

/// Every tag, in creation order.
pub(crate) fn all_tags(svc: &Service) -> Result<std::sync::Arc<[EqtDef]>, DbError> {
    svc.tag_cache.all.get(&svc.db, "ORDER BY key")
}

/// Tags that new instances are indexed on (adding or ready, docs/contract.md §8.7). Read from the index
/// only when its `eqt` table was written since the last read.
pub(crate) fn active_tags(svc: &Service) -> Result<std::sync::Arc<[EqtDef]>, DbError> {
    svc.tag_cache
        .active
        .get(&svc.db, "WHERE status IN ('adding', 'ready') ORDER BY key")
}

/// At start-up: operations a previous run left running have failed; their tags are abandoned `adding`
/// rows that a new add may replace (docs/contract.md §8.3).
pub(crate) fn recover_interrupted(db: &Db) -> Result<(), DbError> {
    let mut c = db.lock()?;
    let tx = c.transaction()?;
    tx.execute(
        "UPDATE operations SET status = 'failed', updated = ?1 WHERE status IN ('notStarted', 'running')",
        [now_timestamp()],
    )?;
    tx.execute(
        "UPDATE eqt SET operation_id = NULL WHERE status = 'adding'",
        [],
    )?;
    drop_abandoned_values(&tx)?;
    tx.commit()?;
    Ok(())
}

/// Removes what an interrupted or failed re-index wrote for its (abandoned, `adding`) tags, so that a
/// later add of the same tag starts clean instead of indexing its instances twice.
fn drop_abandoned_values(tx: &rusqlite::Transaction<'_>) -> Result<(), DbError> {
    let paths: Vec<String> = tx
        .prepare("SELECT path FROM eqt WHERE status = 'adding' AND operation_id IS NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for tag in paths.iter().filter_map(|p| parse_tag_key(p)) {
        tx.execute("DELETE FROM attr_index WHERE tag = ?1", [tag_number(tag)])?;
    }
    Ok(())
}

fn entry_json(t: &EqtDef, base: &str) -> Value {
    let path = tag_key(t.tag);
    let mut e = Map::new();
    e.insert("path".into(), json!(path));
    e.insert("vr".into(), json!(t.vr.to_string()));
    if let Some(pc) = &t.private_creator {
        e.insert("privateCreator".into(), json!(pc));
    }
    e.insert("level".into(), json!(t.level.name()));
    e.insert("status".into(), json!(t.status));
    e.insert("queryStatus".into(), json!(t.query_status));
    if t.error_count > 0 {
        e.insert("errors".into(), json!({"count": t.error_count, "href": format!("{base}/extendedquerytags/{path}/errors")}));
    }
    if let Some(op) = &t.operation_id {
        e.insert(
            "operation".into(),
            json!({"id": op, "href": format!("{base}/operations/{op}")}),
        );
    }
    Value::Object(e)
}

fn require_json_body(headers: &HeaderMap) -> ApiResult<()> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json")
        || media.to_ascii_lowercase().ends_with("+json")
    {
        Ok(())
    } else {
        Err(ApiError::unsupported_media())
    }
}

fn field_error(path: &str, reason: &str) -> ApiError {
    ApiError::bad_request(format!(
        "The field '{path}' in request body is invalid: {reason}"
    ))
}

/// Reads a property of a request object without regard to case.
fn prop<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// A validated tag of an add request.
#[derive(Debug)]
struct NewTag {
    tag: Tag,
    vr: VR,
    private_creator: Option<String>,
    level: Level,
}

fn parse_add(body: &[u8]) -> ApiResult<Vec<NewTag>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("The syntax of the request body is invalid."))?;
    let Value::Array(items) = value else {
        return Err(field_error(
            "$",
            "The request body must be a JSON array of extended query tags.",
        ));
    };
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "The extended query tag(s) is missing.",
        ));
    }
    let mut out: Vec<NewTag> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(field_error(
                &format!("$[{i}]"),
                "Each extended query tag must be a JSON object.",
            ));
        };
        let text = |name: &str| -> ApiResult<Option<String>> {
            match prop(obj, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
                Some(_) => Err(field_error(
                    &format!("$[{i}].{name}"),
                    &format!("The value of {name} must be a string."),
                )),
            }
        };
        let missing = |name: &str| {
            field_error(
                &format!("[{i}].{name}"),
                &format!(
                    "The Dicom Tag Property {name} must be specified and must not be null, empty or whitespace"
                ),
            )
        };
        let path = text("Path")?.ok_or_else(|| missing("Path"))?;
        let level_text = text("Level")?.ok_or_else(|| missing("Level"))?;
        let level = Level::parse(&level_text).ok_or_else(|| {
            field_error(
                &format!("$[{i}].Level"),
                &format!("Expected value '{level_text}' to be one of the following values: ['Instance', 'Series', 'Study']"),
            )
        })?;
        let attr = (!path.contains('.')).then(|| resolve(&path)).flatten().ok_or_else(|| {
            ApiError::bad_request(format!(
                "The extended query tag '{path}' is invalid as it cannot be parsed into a valid Dicom Tag."
            ))
        })?;
        if index::is_core_searchable(attr.tag) {
            return Err(ApiError::bad_request(format!(
                "The query tag '{path}' is already supported."
            )));
        }
        let private = dtags::is_private(attr.tag);
        let vr = vr_of(text("VR")?, attr.vr, private, &path)?;
        let private_creator = text("PrivateCreator")?;
        check_private_creator(attr.tag, private, private_creator.as_deref(), &path)?;
        if out.iter().any(|t| t.tag == attr.tag) {
            return Err(ApiError::bad_request(format!(
                "The extended query tag '{path}' has been specified before."
            )));
        }
        out.push(NewTag {
            tag: attr.tag,
            vr,
            private_creator,
            level,
        });
    }
    Ok(out)
}

/// The VR of a new tag: the one given (supported, and the dictionary's when it has one), else the
/// dictionary's (never for a private tag).
fn vr_of(given: Option<String>, dict_vr: Option<VR>, private: bool, path: &str) -> ApiResult<VR> {
    match given {
        Some(v) => {
            let upper = v.to_ascii_uppercase();
            let vr: VR = upper.parse().map_err(|_| {
                ApiError::bad_request(format!("The VR code '{v}' for tag '{path}' is invalid."))
            })?;
            if !EQT_VRS.contains(&vr) {
                return Err(ApiError::bad_request(format!(
                    "The VR code '{upper}' for tag '{path}' is not supported."
                )));
            }
            if let Some(dict) = dict_vr
                && dict != vr
            {
                return Err(ApiError::bad_request(format!(
                    "The VR code '{upper}' is incorrectly specified for '{path}'. The expected VR code for it is '{dict}'."
                )));
            }
            Ok(vr)
        }
        None => match dict_vr {
            Some(dict) if !private => {
                if !EQT_VRS.contains(&dict) {
                    return Err(ApiError::bad_request(format!(
                        "The VR code '{dict}' for tag '{path}' is not supported."
                    )));
                }
                Ok(dict)
            }
            _ => Err(ApiError::bad_request(format!(
                "The vr for tag '{path}' is missing."
            ))),
        },
    }
}

/// A private data element names its private creator (a valid LO); no other tag has one.
fn check_private_creator(
    tag: Tag,
    private: bool,
    private_creator: Option<&str>,
    path: &str,
) -> ApiResult<()> {
    if private && !dtags::is_private_creator(tag) {
        match private_creator {
            None => {
                return Err(ApiError::bad_request(format!(
                    "The private creator for private tag '{path}' is missing."
                )));
            }
            Some(pc) if check_str(VR::LO, pc).is_err() => {
                return Err(ApiError::bad_request(format!(
                    "The private creator for private tag '{path}' is not a valid LO value."
                )));
            }
            Some(_) => {}
        }
    } else if private_creator.is_some() {
        return Err(ApiError::bad_request(format!(
            "The private creator for tag '{path}' must be empty: only private data elements have one."
        )));
    }
    Ok(())
}

/// What the index said to an add.
enum AddResult {
    Started(String),
    Exists,
    Busy(String),
    TooMany,
}

fn insert_tags(svc: &Service, tags: &[NewTag]) -> Result<AddResult, DbError> {
    let mut c = svc.db.lock()?;
    let tx = c.transaction()?;
    let active: Option<String> = tx
        .query_row(
            "SELECT id FROM operations WHERE status IN ('notStarted', 'running') LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = active {
        return Ok(AddResult::Busy(id));
    }
    // Abandoned `adding` rows (their operation failed or vanished) may be replaced.
    drop_abandoned_values(&tx)?;
    tx.execute(
        "DELETE FROM eqt WHERE status = 'adding' AND operation_id IS NULL",
        [],
    )?;
    for t in tags {
        let exists: Option<i64> = tx
            .query_row(
                "SELECT key FROM eqt WHERE path = ?1",
                [tag_key(t.tag)],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_some() {
            return Ok(AddResult::Exists);
        }
    }
    let count: i64 = tx.query_row("SELECT COUNT(*) FROM eqt", [], |r| r.get(0))?;
    if count + tags.len() as i64 > MAX_TAGS {
        return Ok(AddResult::TooMany);
    }
    let op = uuid::Uuid::new_v4().simple().to_string();
    for t in tags {
        tx.execute(
            "INSERT INTO eqt(path, vr, private_creator, level, status, query_status, operation_id)
             VALUES(?1, ?2, ?3, ?4, 'adding', 'enabled', ?5)",
            params![
                tag_key(t.tag),
                t.vr.to_string(),
                t.private_creator,
                t.level.name(),
                op
            ],
        )?;
    }
    let resources: Vec<String> = tags.iter().map(|t| tag_key(t.tag)).collect();
    let now = now_timestamp();
    tx.execute(
        "INSERT INTO operations(id, type, status, created, updated, percent, resources)
         VALUES(?1, 'reindex', 'running', ?2, ?2, 0, ?3)",
        params![
            op,
            now,
            serde_json::to_string(&resources).unwrap_or_else(|_| "[]".into())
        ],
    )?;
    tx.commit()?;
    Ok(AddResult::Started(op))
}

/// `POST /v{n}/extendedquerytags`
pub(crate) async fn add(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    require_json_body(&headers)?;
    caller.require(&svc, Action::ManageExtendedQueryTags)?;
    let tags = parse_add(&body)?;
    let base = versioned_base(&headers, &svc, version);
    let _gate = svc.reindex_gate.lock().await;
    match svc.db(move |s| insert_tags(s, &tags)).await? {
        AddResult::Started(op) => {
            let href = format!("{base}/operations/{op}");
            tokio::spawn(reindex(svc.clone(), op.clone()));
            let mut resp =
                (StatusCode::ACCEPTED, Json(json!({"id": op, "href": href}))).into_response();
            if let Ok(v) = href.parse() {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Ok(resp)
        }
        AddResult::Exists => Err(ApiError::conflict(
            "One or more extended query tags already exist.",
        )),
        AddResult::Busy(id) => Err(ApiError::conflict(format!(
            "There is already an active re-index operation with ID '{id}'."
        ))
        .with_header(header::LOCATION, format!("{base}/operations/{id}"))),
        AddResult::TooMany => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Extended query tags exceeds max allowed count '{MAX_TAGS}'."),
        )),
    }
}

/// Indexes the stored instances on the operation's tags, then marks them ready (docs/contract.md §8.7).
async fn reindex(svc: SharedService, op: String) {
    let started = Instant::now();
    let min = svc.config.reindex_min_duration;
    let result = reindex_inner(&svc, &op, started, min).await;
    let status = if result.is_ok() {
        "succeeded"
    } else {
        "failed"
    };
    if let Err(e) = &result {
        tracing::error!(op, "re-index failed: {e}");
    }
    let op2 = op.clone();
    let done = svc
        .db(move |s| {
            let c = s.db.lock()?;
            if status == "succeeded" {
                c.execute("UPDATE eqt SET status = 'ready', operation_id = NULL WHERE operation_id = ?1", [&op2])?;
            } else {
                c.execute("UPDATE eqt SET operation_id = NULL WHERE operation_id = ?1", [&op2])?;
            }
            c.execute(
                "UPDATE operations SET status = ?1, percent = CASE WHEN ?1 = 'succeeded' THEN 100 ELSE percent END,
                 updated = ?2 WHERE id = ?3",
                params![status, now_timestamp(), op2],
            )?;
            Ok(())
        })
        .await;
    if let Err(e) = done {
        tracing::error!(op, "could not finish the operation: {e}");
    }
    tracing::info!(
        op,
        status,
        ms = started.elapsed().as_millis() as u64,
        "re-index finished"
    );
}

async fn reindex_inner(
    svc: &SharedService,
    op: &str,
    started: Instant,
    min: Duration,
) -> ApiResult<()> {
    const BATCH: i64 = 200;
    let op_id = op.to_string();
    let (tags, total) = svc
        .db(move |s| {
            let c = s.db.lock()?;
            let tags = read_tags(&c, "WHERE operation_id = ?1", &[&op_id])?;
            let total: i64 = c.query_row("SELECT COUNT(*) FROM instances", [], |r| r.get(0))?;
            Ok((tags, total))
        })
        .await?;
    let mut after = 0i64;
    let mut done = 0i64;
    loop {
        let tags = tags.clone();
        let (last, n) = svc
            .db(move |s| {
                let mut c = s.db.lock()?;
                let tx = c.transaction()?;
                let rows: Vec<(i64, String, String, String, String)> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT watermark, metadata, study_uid, series_uid, sop_uid FROM instances
                         WHERE watermark > ?1 ORDER BY watermark LIMIT ?2",
                    )?;
                    stmt.query_map(params![after, BATCH], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                        .collect::<Result<_, _>>()?
                };
                for (watermark, metadata, study, series, sop) in &rows {
                    let Ok(Value::Object(meta)) = serde_json::from_str::<Value>(metadata) else { continue };
                    for t in &tags {
                        let Some(raw) = dicomlab_dicom::json::first_value_str(&meta, t.tag) else { continue };
                        let invalid = if index::is_numeric(t.vr) && !matches!(t.vr, VR::IS | VR::DS) {
                            raw.trim().parse::<f64>().is_err().then(|| format!("Value '{raw}' is not a number."))
                        } else {
                            check_str(t.vr, &raw).err().map(|why| {
                                format!("Dicom element '{}' failed validation for VR '{}': {why}", tag_key(t.tag), t.vr)
                            })
                        };
                        if let Some(message) = invalid {
                            tx.execute(
                                "INSERT INTO eqt_errors(tag_key, study_uid, series_uid, sop_uid, created, message)
                                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                                params![t.key, study, series, sop, now_timestamp(), message],
                            )?;
                            tx.execute(
                                "UPDATE eqt SET error_count = error_count + 1, query_status = 'disabled' WHERE key = ?1",
                                [t.key],
                            )?;
                            continue;
                        }
                        let (text, num) = index::normalise(t.vr, &raw);
                        if text.is_some() || num.is_some() {
                            tx.execute(
                                "INSERT INTO attr_index(watermark, tag, value, num) VALUES(?1, ?2, ?3, ?4)",
                                params![watermark, tag_number(t.tag), text, num],
                            )?;
                        }
                    }
                }
                tx.commit()?;
                Ok((rows.last().map(|r| r.0), rows.len() as i64))
            })
            .await?;
        done += n;
        let percent = if total == 0 {
            100
        } else {
            (done * 100 / total.max(1)).min(99)
        };
        let op_id = op.to_string();
        svc.db(move |s| {
            s.db.lock()?.execute(
                "UPDATE operations SET percent = ?1, updated = ?2 WHERE id = ?3",
                params![percent, now_timestamp(), op_id],
            )?;
            Ok(())
        })
        .await?;
        match last {
            Some(w) if n == BATCH => after = w,
            _ => break,
        }
    }
    // Let a learner see the operation running, as on Azure (configurable; zero in tests).
    if let Some(rest) = min.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    Ok(())
}

fn resolve_path(path: &str) -> ApiResult<String> {
    match (!path.contains('.')).then(|| resolve(path)).flatten() {
        Some(a) => Ok(tag_key(a.tag)),
        None => Err(ApiError::bad_request(format!(
            "The extended query tag '{path}' is invalid as it cannot be parsed into a valid Dicom Tag."
        ))),
    }
}

fn tag_not_found(path: &str) -> ApiError {
    ApiError::not_found(format!(
        "The specified extended query tag with tag path {path} cannot be found."
    ))
}

fn find_tag(svc: &Service, key: &str) -> Result<Option<EqtDef>, DbError> {
    Ok(read_tags(&*svc.db.lock()?, "WHERE path = ?1", &[&key])?.pop())
}

/// `GET /v{n}/extendedquerytags`
pub(crate) async fn list(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    caller.require(&svc, Action::Read)?;
    let p = Params::new(q);
    let limit = p.int("limit", 100, 1, 200)?;
    let offset = p.int("offset", 0, 0, i64::MAX)?;
    let base = versioned_base(&headers, &svc, version);
    let tags = svc
        .db(move |s| {
            Ok(read_tags(
                &*s.db.lock()?,
                "ORDER BY key LIMIT ?1 OFFSET ?2",
                &[&limit, &offset],
            )?)
        })
        .await?;
    Ok(Json(
        tags.iter()
            .map(|t| entry_json(t, &base))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

/// `GET /v{n}/extendedquerytags/{path}`
pub(crate) async fn get_one(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.require(&svc, Action::Read)?;
    let key = resolve_path(&path)?;
    let base = versioned_base(&headers, &svc, version);
    match svc.db(move |s| find_tag(s, &key)).await? {
        Some(t) => Ok(Json(entry_json(&t, &base)).into_response()),
        None => Err(tag_not_found(&path)),
    }
}

/// `PATCH /v{n}/extendedquerytags/{path}` with `{"QueryStatus": "Enabled" | "Disabled"}`.
pub(crate) async fn update(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, path)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    require_json_body(&headers)?;
    caller.require(&svc, Action::ManageExtendedQueryTags)?;
    let key = resolve_path(&path)?;
    let invalid = || {
        ApiError::bad_request(
            "The value is not valid. It need to be one of \"Disabled\",\"Enabled\".",
        )
    };
    let value: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("The syntax of the request body is invalid."))?;
    let Value::Object(obj) = value else {
        return Err(invalid());
    };
    if let Some(extra) = obj.keys().find(|k| !k.eq_ignore_ascii_case("QueryStatus")) {
        return Err(ApiError::bad_request(format!(
            "The field is not supported: \"{extra}\"."
        )));
    }
    let status = match prop(&obj, "QueryStatus")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
    {
        Some(s) if s == "enabled" || s == "disabled" => s,
        _ => return Err(invalid()),
    };
    let base = versioned_base(&headers, &svc, version);
    let k2 = key.clone();
    let updated = svc
        .db(move |s| {
            let n = s.db.lock()?.execute(
                "UPDATE eqt SET query_status = ?1 WHERE path = ?2",
                params![status, k2],
            )?;
            if n == 0 { Ok(None) } else { find_tag(s, &k2) }
        })
        .await?;
    match updated {
        Some(t) => Ok(Json(entry_json(&t, &base)).into_response()),
        None => Err(tag_not_found(&path)),
    }
}

/// `DELETE /v{n}/extendedquerytags/{path}`
pub(crate) async fn delete(
    State(svc): State<SharedService>,
    _version: ApiVersion,
    caller: Caller,
    Path((_, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.require(&svc, Action::ManageExtendedQueryTags)?;
    let key = resolve_path(&path)?;
    let deleted = svc
        .db(move |s| {
            let mut c = s.db.lock()?;
            let tx = c.transaction()?;
            let Some(tag) = parse_tag_key(&key) else {
                return Ok(false);
            };
            let n = tx.execute("DELETE FROM eqt WHERE path = ?1", [&key])?;
            if n > 0 {
                tx.execute("DELETE FROM attr_index WHERE tag = ?1", [tag_number(tag)])?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
        .await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(tag_not_found(&path))
    }
}

/// `GET /v{n}/extendedquerytags/{path}/errors`
pub(crate) async fn errors(
    State(svc): State<SharedService>,
    _version: ApiVersion,
    caller: Caller,
    Path((_, path)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    caller.require(&svc, Action::Read)?;
    let p = Params::new(q);
    let limit = p.int("limit", 100, 1, 200)?;
    let offset = p.int("offset", 0, 0, i64::MAX)?;
    let key = resolve_path(&path)?;
    let result = svc
        .db(move |s| {
            let Some(tag) = find_tag(s, &key)? else { return Ok(None) };
            let c = s.db.lock()?;
            let mut stmt = c.prepare_cached(
                "SELECT study_uid, series_uid, sop_uid, created, message FROM eqt_errors WHERE tag_key = ?1
                 ORDER BY id LIMIT ?2 OFFSET ?3",
            )?;
            let items: Vec<Value> = stmt
                .query_map(params![tag.key, limit, offset], |r| {
                    let created: String = r.get(3)?;
                    Ok(json!({
                        "studyInstanceUid": r.get::<_, String>(0)?,
                        "seriesInstanceUid": r.get::<_, String>(1)?,
                        "sopInstanceUid": r.get::<_, String>(2)?,
                        // Contract §8.5: no zone suffix; the value is UTC.
                        "createdTime": created.trim_end_matches("+00:00"),
                        "errorMessage": r.get::<_, String>(4)?,
                        "partitionName": "Microsoft.Default",
                    }))
                })?
                .collect::<Result<_, _>>()?;
            Ok(Some(items))
        })
        .await?;
    match result {
        Some(items) => Ok(Json(items).into_response()),
        None => Err(tag_not_found(&path)),
    }
}

/// `GET /v{n}/operations/{id}`
pub(crate) async fn operation(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.require(&svc, Action::Read)?;
    // A non-GUID id binds as the all-zero GUID: unknown, 404 with an empty body (docs/contract.md §8.6).
    let Ok(guid) = uuid::Uuid::parse_str(id.trim()) else {
        return Err(ApiError::empty(StatusCode::NOT_FOUND));
    };
    let key = guid.simple().to_string();
    let row = svc
        .db(move |s| {
            Ok(s.db
                .lock()?
                .query_row(
                    "SELECT type, status, created, updated, percent, resources FROM operations WHERE id = ?1",
                    [&key],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, i64>(4)?,
                            r.get::<_, String>(5)?,
                        ))
                    },
                )
                .optional()?)
        })
        .await?;
    let Some((kind, status, created, updated, percent, resources)) = row else {
        return Err(ApiError::empty(StatusCode::NOT_FOUND));
    };
    let base = versioned_base(&headers, &svc, version);
    let paths: Vec<String> = serde_json::from_str(&resources).unwrap_or_default();
    let shown = match status.as_str() {
        "succeeded" if !version.v2 => "completed",
        s => s,
    };
    let utc = |t: &str| format!("{}Z", t.trim_end_matches("+00:00"));
    let body = json!({
        "operationId": guid.hyphenated().to_string(),
        "type": kind,
        "createdTime": utc(&created),
        "lastUpdatedTime": utc(&updated),
        "status": shown,
        "percentComplete": percent,
        "resources": paths.iter().map(|p| format!("{base}/extendedquerytags/{p}")).collect::<Vec<_>>(),
    });
    let running = matches!(status.as_str(), "notStarted" | "running");
    let mut resp = (
        if running {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        },
        Json(body),
    )
        .into_response();
    if running && let Ok(v) = format!("{base}/operations/{}", guid.simple()).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tags a search and a store use are kept until the table is written, by any statement, and
    /// then read again.
    #[tokio::test]
    async fn kept_tags_last_until_the_table_is_written() {
        let svc = crate::build(crate::ServiceConfig::default(), "http://127.0.0.1")
            .expect("service")
            .service;
        assert!(kept_tags(&svc).is_none(), "nothing read yet");
        assert_eq!(all_tags(&svc).expect("all").len(), 0);
        assert_eq!(active_tags(&svc).expect("active").len(), 0);
        assert_eq!(kept_tags(&svc).expect("kept").len(), 0);
        svc.db
            .lock()
            .expect("index")
            .execute_batch(
                "INSERT INTO eqt(path, vr, level, status, query_status) VALUES('00101002', 'SQ', 'Study', 'deleting', 'enabled');",
            )
            .expect("a tag");
        assert!(kept_tags(&svc).is_none(), "the table was written");
        assert_eq!(all_tags(&svc).expect("all").len(), 1);
        assert_eq!(kept_tags(&svc).expect("kept").len(), 1);
        assert_eq!(active_tags(&svc).expect("active").len(), 0, "deleting");
        svc.db
            .lock()
            .expect("index")
            .execute_batch("UPDATE eqt SET status = 'ready';")
            .expect("ready");
        assert!(kept_tags(&svc).is_none());
        assert_eq!(active_tags(&svc).expect("active").len(), 1);
        assert_eq!(all_tags(&svc).expect("all")[0].status, "ready");
    }
}
