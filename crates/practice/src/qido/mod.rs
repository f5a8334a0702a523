//! QIDO-RS (docs/contract.md §5): six routes, the searchable attributes per level plus ready extended query tags,
//! exact / fuzzy (PN) / range (DA, DT, TM) matching, `includefield`, `limit` / `offset`, 204 on no match,
//! 400 on anything the real service refuses, and its v1 / v2 default attribute sets. A study's (series')
//! attributes are its latest values, in filters and in results, as upstream keeps them per study.
//!
//! `query.rs` reads the request, `run.rs` answers it from the index; this file holds the six routes.

mod query;
mod run;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use self::query::{
    ALL, INSTANCE, Route, SERIES, SERIES_INSTANCE, STUDY, STUDY_SERIES, parse_query,
};
use self::run::run;
use crate::accept::accepts_dicom_json;
use crate::auth::{Action, Caller};
use crate::eqt;
use crate::error::{ApiError, ApiResult};
use crate::index::Level;
use crate::{ApiVersion, SharedService};
use dicomlab_dicom::is_valid_uid;

pub use self::query::check_query;

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
    // The tags as kept, without a trip to the blocking pool (a search makes one, for its query).
    let eqts = match eqt::kept_tags(&svc) {
        Some(tags) => tags,
        None => svc.db(eqt::all_tags).await?,
    };
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
