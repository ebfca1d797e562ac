//! `GET /health` (the process is up) and `GET /ready` (it can serve: the database answers
//! and at least one provider's circuit breaker is not open; `providers` lists each
//! provider's breaker state, `redis` whether the shared rate limits are reachable).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::db;
use crate::error::AppError;
use crate::routing;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(handle_health))
        .route("/ready", get(handle_ready))
}

/// Liveness: the process is up and answering.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    operation_id = "get_health",
    security(()),
    responses(
        (status = 200, description = "Always, while the process runs.", body = super::openapi::HealthAnswer),
    )
)]
async fn handle_health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// Readiness: the database answers and at least one provider's circuit breaker is not
/// open.
///
/// For load balancers and orchestrators. `providers` lists every provider's breaker.
/// With `[redis]` configured, `redis` is `ok` when Redis answers a PING within
/// `redis.timeout_ms`, `degraded` when it does not. Degraded is still ready: requests are
/// served with each instance enforcing its share of the limits (`redis.instances`), and
/// every instance shares the one Redis, so failing readiness would take the whole
/// deployment out of its load balancer over a cache.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    operation_id = "get_ready",
    security(()),
    responses(
        (status = 200, description = "Ready to serve.", body = super::openapi::ReadyAnswer),
        (status = 503, description = "`provider_unavailable`: the database is not reachable, or every provider's circuit breaker is open (the message says which).", body = tandem_shared::ErrorBody),
    )
)]
async fn handle_ready(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    db::ping(&state.db)
        .await
        .map_err(|error| AppError::NotReady {
            public: "the database is not reachable".to_owned(),
            cause: Box::new(error),
        })?;
    let providers = state.router.provider_health();
    if routing::every_breaker_open(&providers) {
        let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        return Err(AppError::NotReady {
            public: format!(
                "every model provider's circuit breaker is open ({})",
                names.join(", ")
            ),
            cause: "every circuit breaker is open".into(),
        });
    }
    let primary = state.providers.primary();
    let provider = primary.map(|provider| provider.name().to_owned());
    let model = primary.map(|provider| provider.model().to_owned());
    let mut answer = json!({
        "status": "ready",
        "version": env!("CARGO_PKG_VERSION"),
        "database": "ok",
        "provider": provider,
        "model": model,
        "providers": providers,
    });
    if let Some(redis) = state.limits.redis_health().await {
        answer["redis"] = json!(redis.as_str());
    }
    Ok(Json(answer))
}
