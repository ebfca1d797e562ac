//! `GET /metrics` for Prometheus, and the middleware counting every routed request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use subtle::ConstantTimeEq;

use crate::error::AppError;
use crate::metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;
use crate::state::AppState;

pub(crate) fn router(state: &AppState) -> Router<AppState> {
    if !state.config.metrics.enabled {
        return Router::new();
    }
    Router::new().route("/metrics", get(handle_metrics))
}

/// Prometheus metrics, in the OpenMetrics text format.
///
/// Every metric is prefixed `tandem_`; no label carries a user, a key or request
/// content. Served only with `[metrics] enabled` (the default); with `[metrics]
/// token_env` set, the request must carry that token as `Authorization: Bearer`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "get_metrics",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "The metrics.", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "`unauthorized`: `[metrics] token_env` is set and the request does not carry that token.", body = tandem_shared::ErrorBody),
        (status = 404, description = "`not_found`: metrics are disabled (`[metrics] enabled = false`).", body = tandem_shared::ErrorBody),
    )
)]
async fn handle_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if let Some(token) = &state.metrics_token {
        let sent = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(sent.as_bytes().ct_eq(token.as_bytes())) {
            return Err(AppError::Unauthorized(
                "GET /metrics needs the token named by metrics.token_env, as \
                 `Authorization: Bearer <token>`"
                    .to_owned(),
            ));
        }
    }
    let body = state.metrics.render(
        &state.router.provider_health(),
        state.db.size(),
        state.db.num_idle(),
    );
    Ok(([(CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response())
}

/// Counts the request and its time under its route template (`/v1/completions`), so
/// paths with ids or typos do not each become a series.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    state.metrics.http_request(
        &route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
