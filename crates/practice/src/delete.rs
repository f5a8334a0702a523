//! DELETE of a study, series or instance (docs/contract.md §6): 204, then 404; each deleted instance adds a
//! `Delete` change-feed entry; files are removed after the index commits.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use rusqlite::params;

use super::auth::{Action, Caller};
use super::error::ApiResult;
use super::uids::UidPath as Target;
use super::{ApiVersion, Service, SharedService, now_timestamp};

/// Deletes the target's instances; returns how many were removed.
pub(crate) fn delete_instances(
    svc: &Service,
    target: &Target,
) -> Result<usize, super::db::DbError> {
    let target = &target.compared();
    let mut conn = svc.db.lock()?;
    let tx = conn.transaction()?;
    let rows: Vec<(i64, String, String, String, String, i64)> = {
        let mut stmt = tx.prepare(
            "SELECT watermark, study_uid, series_uid, sop_uid, blob, size FROM instances
             WHERE study_uid = ?1 AND (?2 IS NULL OR series_uid = ?2) AND (?3 IS NULL OR sop_uid = ?3)",
        )?;
        stmt.query_map(params![target.study, target.series, target.sop], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?
    };
    for (watermark, study, series, sop, _, _) in &rows {
        tx.execute("DELETE FROM instances WHERE watermark = ?1", [watermark])?;
        tx.execute(
            "INSERT INTO changefeed(study_uid, series_uid, sop_uid, action, timestamp, watermark)
             VALUES(?1, ?2, ?3, 'Delete', ?4, ?5)",
            params![study, series, sop, now_timestamp(), watermark],
        )?;
    }
    tx.commit()?;
    let freed = rows.iter().map(|r| u64::try_from(r.5).unwrap_or(0)).sum();
    svc.db.stored_changed(0, freed);
    drop(conn);
    // A file being retrieved is removed when its retrieve is done (see `blobs::Lease`).
    for (_, _, _, _, blob, _) in &rows {
        svc.blobs.remove(blob);
    }
    Ok(rows.len())
}

async fn run(svc: SharedService, caller: Caller, target: Target) -> ApiResult<StatusCode> {
    target.validate()?;
    caller.require(&svc, Action::Delete)?;
    let t = target.clone();
    let n = svc.db(move |s| delete_instances(s, &t)).await?;
    if n == 0 {
        Err(target.not_found())
    } else {
        Ok(StatusCode::NO_CONTENT)
    }
}

pub(crate) async fn delete_study(
    State(svc): State<SharedService>,
    _version: ApiVersion,
    caller: Caller,
    Path((_, study)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    run(
        svc,
        caller,
        Target {
            study,
            series: None,
            sop: None,
        },
    )
    .await
}

pub(crate) async fn delete_series(
    State(svc): State<SharedService>,
    _version: ApiVersion,
    caller: Caller,
    Path((_, study, series)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    run(
        svc,
        caller,
        Target {
            study,
            series: Some(series),
            sop: None,
        },
    )
    .await
}

pub(crate) async fn delete_instance(
    State(svc): State<SharedService>,
    _version: ApiVersion,
    caller: Caller,
    Path((_, study, series, sop)): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    run(
        svc,
        caller,
        Target {
            study,
            series: Some(series),
            sop: Some(sop),
        },
    )
    .await
}
