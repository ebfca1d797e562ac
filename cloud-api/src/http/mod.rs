//! The HTTP API: [`app`] assembles the feature routers and the layers around them.

mod account;
mod admin;
mod chat;
mod completions;
mod health;
mod jwks;
mod keys;
mod me;
mod metrics;
pub(crate) mod oauth;
pub(crate) mod quota_headers;
mod streaming;
pub mod usage;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{from_fn_with_state, map_response_with_state};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::AppError;
use crate::state::AppState;

/// The whole API as a router, ready for `axum::serve` or `oneshot` in tests.
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .merge(health::router())
        .merge(jwks::router())
        .merge(me::router())
        .merge(keys::router())
        .merge(account::router())
        .merge(admin::router())
        .merge(oauth::router())
        .merge(crate::web::router(&state))
        .merge(completions::router())
        .merge(chat::router())
        .merge(usage::router())
        .merge(metrics::router(&state));
    with_layers(routes, state)
}

/// Fallbacks and layers around the routes: JSON 404/405, body limit, request timeout,
/// panic catching, JSON errors for layer answers, tracing.
fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    let limits = &state.config.limits;
    let max_body_bytes = limits.max_body_bytes;
    let request_timeout = Duration::from_millis(limits.request_timeout_ms);
    routes
        // A route layer, so the matched route template is known; unmatched paths are
        // answered by the fallback below and not counted.
        .route_layer(from_fn_with_state(state.clone(), metrics::track))
        .fallback(handle_not_found)
        .method_not_allowed_fallback(handle_method_not_allowed)
        // axum's own limit (2 MB by default) would otherwise undercut the configured one.
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            request_timeout,
        ))
        .layer(CatchPanicLayer::new())
        // Outside the layers above, so their bare-status answers get the JSON shape too.
        .layer(map_response_with_state(state.clone(), ensure_json_error))
        // Headers are not recorded: they carry API keys.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                // AppError already logs every 5xx with its cause; no second, vaguer line.
                .on_failure(()),
        )
        .with_state(state)
}

/// The span of a request: method and path only. Query strings carry what must not reach
/// a log (an OAuth code and state, a device's user code).
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    tracing::span!(
        Level::INFO,
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        version = ?request.version(),
    )
}

async fn handle_not_found(uri: Uri) -> AppError {
    AppError::NotFound(uri.path().to_owned())
}

async fn handle_method_not_allowed(method: Method, uri: Uri) -> AppError {
    AppError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// Gives error responses made outside our handlers (body limit, timeout, panic) the
/// API's JSON error shape.
async fn ensure_json_error(State(state): State<AppState>, response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            // The pages answer their own errors: HTML to browsers, JSON to the rest.
            value.starts_with("application/json") || value.starts_with("text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge {
            limit: state.config.limits.max_body_bytes,
        },
        StatusCode::GATEWAY_TIMEOUT => AppError::RequestTimeout,
        StatusCode::NOT_FOUND => AppError::NotFound("this path".to_owned()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            AppError::UnsupportedMediaType("unsupported content type".to_owned())
        }
        status if status.is_client_error() => {
            AppError::MalformedBody(format!("request refused with HTTP {}", status.as_u16()))
        }
        status => AppError::internal(format!("a layer answered HTTP {}", status.as_u16())),
    };
    error.into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Config;
    use crate::providers::ProviderRegistry;

    fn state() -> AppState {
        let pool = sqlx::SqlitePool::connect_lazy("sqlite::memory:").unwrap();
        AppState::with_providers(
            Config::default(),
            pool,
            ProviderRegistry::from_providers(vec![]),
        )
    }

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn handle_panic() -> &'static str {
        panic!("secret detail")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_without_details() {
        let routes = Router::new().route("/panic", get(handle_panic));
        let response = with_layers(routes, state())
            .oneshot(Request::get("/panic").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body_json(response).await,
            serde_json::json!({"error": {"code": "internal", "message": "internal error"}})
        );
    }

    #[tokio::test]
    async fn bare_layer_errors_get_the_json_shape() {
        let bare = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let response = ensure_json_error(State(state()), bare).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            body_json(response).await["error"]["code"],
            "payload_too_large"
        );
        let ok = (StatusCode::OK, "fine").into_response();
        let response = ensure_json_error(State(state()), ok).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}
