//! `GET /admin/stats`: users, active users, requests and errors by feature and provider,
//! and latency percentiles over a period — for the dashboard and for operators without
//! Prometheus. Needs the `admin` scope.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use tandem_shared::Scope;

use super::usage::UsageQuery;
use crate::db::stats::{self, Stats};
use crate::error::AppError;
use crate::extract::AuthUser;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/admin/stats", get(handle_stats))
}

/// Figures of the period `[from, to)`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StatsResponse {
    /// Start of the period, RFC 3339.
    from: String,
    /// End of the period (excluded), RFC 3339.
    to: String,
    #[serde(flatten)]
    stats: Stats,
}

#[utoipa::path(
    get,
    path = "/admin/stats",
    tag = "admin",
    operation_id = "admin_stats",
    security(("bearer" = ["admin"])),
    params(
        ("from" = Option<String>, Query, description = "Start, RFC 3339 or YYYY-MM-DD; default 30 days before `to`."),
        ("to" = Option<String>, Query, description = "End (excluded), RFC 3339 or YYYY-MM-DD; default the end of today (UTC). At most 366 days after `from`."),
    ),
    responses(
        (status = 200, description = "Users, active users, requests and errors by feature and provider, latency percentiles.", body = StatsResponse),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 403, description = super::openapi::describe::ADMIN_FORBIDDEN, body = tandem_shared::ErrorBody),
        (status = 422, description = "`invalid_request`: a bad or unknown query parameter, or a period the wrong way round or too long.", body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
pub(crate) async fn handle_stats(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Response, AppError> {
    caller.require(Scope::Admin)?;
    // The usage period rules (RFC 3339 or YYYY-MM-DD, default the last 30 days, at most
    // 366); grouping is not a parameter here.
    if params.contains_key("group_by") {
        return Err(AppError::InvalidRequest(
            "unknown query parameter `group_by` (expected from, to)".to_owned(),
        ));
    }
    let period = UsageQuery::parse(&params, Utc::now()).map_err(AppError::InvalidRequest)?;
    let stats = stats::over(&state.db, period.from, period.to)
        .await
        .map_err(AppError::internal)?;
    Ok(Json(StatsResponse {
        from: period.from.to_rfc3339_opts(SecondsFormat::Secs, true),
        to: period.to.to_rfc3339_opts(SecondsFormat::Secs, true),
        stats,
    })
    .into_response())
}
