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
mod openapi;
pub(crate) mod quota_headers;
mod stats;
mod streaming;
pub mod usage;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{self, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{from_fn_with_state, map_response_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use futures::StreamExt;
use tandem_shared::{ErrorBody, ErrorCode};
use tokio::sync::watch;
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, OnResponse, TraceLayer};
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};
use tracing::Level;

use crate::error::AppError;
use crate::extract::TrustedProxies;
use crate::state::AppState;

/// The header a request id travels in, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest request id taken from a client; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 64;
/// Answers smaller than this are not worth compressing.
const MIN_COMPRESSED_BYTES: u16 = 1024;
/// `Content-Security-Policy` of answers that set none (JSON): nothing may be loaded or
/// framed. Pages set their own, less strict one.
const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";
/// `Strict-Transport-Security` when `http.hsts` is on: a year.
const HSTS: &str = "max-age=31536000";
/// Paths that answer whatever the `Host`: load balancers probe by address.
const ANY_HOST_PATHS: [&str; 2] = ["/health", "/ready"];

/// The whole API as a router, ready for `axum::serve` or `oneshot` in tests.
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .merge(health::router())
        .merge(jwks::router())
        .merge(me::router())
        .merge(keys::router())
        .merge(account::router())
        .merge(admin::router())
        .merge(stats::router())
        .merge(oauth::router())
        .merge(crate::web::router(&state))
        .merge(completions::router())
        .merge(chat::router())
        .merge(usage::router())
        .merge(metrics::router(&state))
        .merge(openapi::router());
    with_layers(routes, state)
}

/// Fallbacks and layers around the routes: JSON 404/405, body limit, request and stream
/// timeouts, panic catching, compression, request checks (host, header size), JSON errors
/// for layer answers, CORS, security headers, request ids and tracing.
///
/// Listed innermost first: each `.layer` wraps everything above it.
fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    let limits = &state.config.limits;
    let http = &state.config.http;
    let max_body_bytes = limits.max_body_bytes;
    let request_timeout = Duration::from_millis(limits.request_timeout_ms);
    let trusted_proxies = TrustedProxies(http.trusted_proxy_networks().into());
    let hsts = http
        .hsts_enabled(state.config.auth.public_url.as_deref())
        .then(|| HeaderValue::from_static(HSTS));
    let compression = http.compression;
    routes
        // A route layer, so the matched route template is known; unmatched paths are
        // answered by the fallback below and not counted.
        .route_layer(from_fn_with_state(state.clone(), metrics::track))
        .fallback(handle_not_found)
        .method_not_allowed_fallback(handle_method_not_allowed)
        .layer(Extension(trusted_proxies))
        // axum's own limit (2 MB by default) would otherwise undercut the configured one.
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        // Bounds the wait for the answer's head: a whole JSON answer, or a stream's first
        // event. The stream itself is bounded by `limit_streams`.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            request_timeout,
        ))
        .layer(from_fn_with_state(state.clone(), limit_streams))
        .layer(CatchPanicLayer::new())
        // Event streams are never compressed: a compressor holds events back until it
        // has a block's worth. Pages neither: they show CSRF tokens and keys next to text
        // from the query string, what BREACH needs to read a secret from sizes.
        .layer(
            CompressionLayer::new().compress_when(
                SizeAbove::new(MIN_COMPRESSED_BYTES)
                    .and(NotForContentType::SSE)
                    .and(NotForContentType::const_new("text/html"))
                    .and(NotForContentType::IMAGES)
                    .and(move |_: StatusCode, _: _, _: &_, _: &_| compression),
            ),
        )
        .layer(ValidateRequestHeaderLayer::custom(RequestChecks::new(
            &state,
        )))
        // Outside the layers above, so their bare-status answers get the JSON shape too.
        .layer(map_response_with_state(state.clone(), ensure_json_error))
        .layer(tower::util::option_layer(cors_layer(http)))
        // Pages set stricter values of their own; these fill in for everything else.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            hsts,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        // Headers are not recorded: they carry API keys.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(RecordResponse)
                // AppError already logs every 5xx with its cause; no second, vaguer line.
                .on_failure(()),
        )
        // Before the span is made, so every line of the request carries the id.
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(MapRequestLayer::new(drop_malformed_request_id))
        // Redacted wherever headers are printed with `Debug`.
        .layer(SetSensitiveHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            header::SET_COOKIE,
        ]))
        .with_state(state)
}

/// The span of a request: method, route template, request id, then the status. Never
/// the path itself (`/admin/users/{email}/tier` holds an address) nor the query string
/// (an OAuth code and state, a device's user code). Named and typed for OpenTelemetry
/// (`otel.*`, HTTP semantic conventions); it continues the caller's trace when the request
/// carries a `traceparent`. A stream's span ends with the stream.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let method = request.method();
    // Known here: `Router::layer` runs the layers after routing.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::span!(
        Level::INFO,
        "request",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        network.protocol.version = ?request.version(),
        request_id,
    );
    crate::telemetry::continue_caller_trace(&span, request.headers());
    span
}

/// Records the status on the request's span (an error, to tracing backends, when it is a
/// 5xx), then logs the answer as tower-http's default does.
#[derive(Debug, Clone, Copy)]
struct RecordResponse;

impl<B> OnResponse<B> for RecordResponse {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &tracing::Span) {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        DefaultOnResponse::new()
            .level(Level::INFO)
            .on_response(response, latency, span);
    }
}

/// Removes an `X-Request-Id` that is too long or not visible ASCII, so a new one is made:
/// the id goes into every log line, where a client must not be able to inject anything.
fn drop_malformed_request_id(mut request: Request) -> Request {
    let malformed = request
        .headers()
        .get_all(REQUEST_ID)
        .iter()
        .enumerate()
        .any(|(index, value)| index > 0 || !is_well_formed_request_id(value.as_bytes()));
    if malformed {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

fn is_well_formed_request_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.iter().all(u8::is_ascii_graphic)
}

/// CORS for the configured origins only; `None` (no CORS headers at all) without any.
fn cors_layer(http: &crate::config::http::HttpConfig) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = http
        .cors_origins()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
            .expose_headers([REQUEST_ID, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// Checks made before a request reaches any route: the `Host` (`http.allowed_hosts`)
/// and the size of the headers (`http.max_header_bytes`).
#[derive(Debug, Clone)]
struct RequestChecks {
    /// Lowercase host patterns; empty allows any host.
    allowed_hosts: Arc<[String]>,
    max_header_bytes: usize,
}

impl RequestChecks {
    fn new(state: &AppState) -> RequestChecks {
        let http = &state.config.http;
        RequestChecks {
            allowed_hosts: http
                .allowed_hosts
                .iter()
                .map(|host| host.trim().to_ascii_lowercase())
                .collect(),
            max_header_bytes: http.max_header_bytes,
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.allowed_hosts.iter().any(|pattern| {
            pattern == "*"
                || *pattern == host
                || pattern
                    .strip_prefix('.')
                    .is_some_and(|domain| host == domain || host.ends_with(pattern.as_str()))
        })
    }
}

impl<B> ValidateRequest<B> for RequestChecks {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut axum::http::Request<B>) -> Result<(), Response> {
        // Names, values and the `: ` and CRLF around each, as on the wire.
        let header_bytes: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if header_bytes > self.max_header_bytes {
            return Err(refusal(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!(
                    "request headers are {header_bytes} bytes; this server accepts at most {}",
                    self.max_header_bytes
                ),
            ));
        }
        if self.allowed_hosts.is_empty() || ANY_HOST_PATHS.contains(&request.uri().path()) {
            return Ok(());
        }
        let host = request_host(request);
        let Some(host) = host else {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                ErrorCode::MalformedBody,
                "the request names no host (`Host` header)".to_owned(),
            ));
        };
        if self.host_allowed(&host) {
            return Ok(());
        }
        Err(refusal(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedBody,
            format!("host `{host}` is not served here (http.allowed_hosts)"),
        ))
    }
}

/// The host a request is for, without the port: the URI's authority (HTTP/2, absolute
/// form) or the `Host` header. Shown in refusals, so only printable ASCII is kept.
fn request_host<B>(request: &axum::http::Request<B>) -> Option<String> {
    let authority = match request.uri().authority() {
        Some(authority) => authority.host().to_owned(),
        None => {
            let value = request.headers().get(header::HOST)?.to_str().ok()?;
            let authority: axum::http::uri::Authority = value.parse().ok()?;
            authority.host().to_owned()
        }
    };
    let host = authority.trim_start_matches('[').trim_end_matches(']');
    Some(
        host.chars()
            .filter(char::is_ascii_graphic)
            .take(255)
            .collect(),
    )
}

/// An answer of the layers in the API's error shape, with a status the error codes have
/// none for (431), logged as refusals are.
fn refusal(status: StatusCode, code: ErrorCode, message: String) -> Response {
    tracing::debug!(status = status.as_u16(), error = %message, "request refused");
    (status, Json(ErrorBody::new(code, message))).into_response()
}

/// Tells open event streams to end: `serve` cuts them when the shutdown grace period is
/// over. A request extension; streams of a router without it end only by their timeout.
#[derive(Debug, Clone)]
pub struct StreamCutoff(watch::Receiver<bool>);

/// The sending side of [`StreamCutoff`].
#[derive(Debug)]
pub struct CutStreams(watch::Sender<bool>);

impl StreamCutoff {
    /// A cutoff and the handle that triggers it.
    pub fn channel() -> (CutStreams, StreamCutoff) {
        let (sender, receiver) = watch::channel(false);
        (CutStreams(sender), StreamCutoff(receiver))
    }

    /// Completes once streams are to end; never, if the sender is gone without cutting.
    async fn cut(mut self) {
        if self.0.wait_for(|cut| *cut).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl CutStreams {
    /// Ends every open event stream with an `error` event.
    pub fn cut(&self) {
        self.0.send_replace(true);
    }
}

/// Why a stream was ended by the server.
#[derive(Debug, Clone, Copy)]
enum StreamEnd {
    Timeout,
    Shutdown,
}

/// Ends an event stream after `http.stream_timeout_ms` (from the request's arrival), or
/// when the server shuts down, with a last `error` event saying so. Closing the body ends
/// the relay behind it, which stops reading the provider and records the request.
async fn limit_streams(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(state.config.http.stream_timeout_ms);
    let cutoff = request.extensions().get::<StreamCutoff>().cloned();
    let response = next.run(request).await;
    let is_stream = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
    if !is_stream {
        return response;
    }
    let stop: Pin<Box<dyn std::future::Future<Output = StreamEnd> + Send>> = Box::pin(async move {
        let cut = async {
            match cutoff {
                Some(cutoff) => cutoff.cut().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => StreamEnd::Timeout,
            () = cut => StreamEnd::Shutdown,
        }
    });
    let (parts, body) = response.into_parts();
    let events = body.into_data_stream();
    let limited = futures::stream::unfold((events, Some(stop)), |(mut events, stop)| async move {
        let mut stop = stop?;
        tokio::select! {
            // The stop first: a chatty provider must not outrun the deadline.
            biased;
            end = &mut stop => Some((Ok(last_event(end)), (events, None))),
            chunk = events.next() => Some((chunk?, (events, Some(stop)))),
        }
    });
    Response::from_parts(parts, Body::from_stream(limited))
}

/// The `error` event that ends a stream the server cut.
fn last_event(end: StreamEnd) -> bytes::Bytes {
    let body = match end {
        StreamEnd::Timeout => {
            tracing::info!("stream ended: open longer than http.stream_timeout_ms");
            ErrorBody::new(
                ErrorCode::ProviderTimeout,
                "the answer took longer than the server allows for a stream",
            )
        }
        StreamEnd::Shutdown => {
            tracing::info!("stream ended: the server is shutting down");
            ErrorBody::new(
                ErrorCode::ProviderUnavailable,
                "the server is restarting; ask again",
            )
        }
    };
    let data = serde_json::to_string(&body).unwrap_or_default();
    let event = tandem_shared::stream::EVENT_ERROR;
    bytes::Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
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
        let pool = crate::db::Pool::unused();
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

    #[test]
    fn request_ids_are_short_visible_ascii() {
        assert!(is_well_formed_request_id(b"0b7e2f3c-lsp-17"));
        assert!(is_well_formed_request_id(&[b'a'; 64]));
        assert!(!is_well_formed_request_id(&[b'a'; 65]));
        assert!(!is_well_formed_request_id(b""));
        assert!(!is_well_formed_request_id(b"a b"));
        assert!(!is_well_formed_request_id(b"line\nbreak"));
        assert!(!is_well_formed_request_id("caf\u{e9}".as_bytes()));
    }

    #[tokio::test]
    async fn host_patterns_match_names_and_subdomains() {
        let mut config = Config::default();
        config.http.allowed_hosts = vec!["Tandem.example.com".into(), ".corp.example".into()];
        let pool = crate::db::Pool::unused();
        let state =
            AppState::with_providers(config, pool, ProviderRegistry::from_providers(vec![]));
        let checks = RequestChecks::new(&state);
        for allowed in [
            "tandem.example.com",
            "TANDEM.EXAMPLE.COM",
            "corp.example",
            "a.corp.example",
        ] {
            assert!(checks.host_allowed(allowed), "{allowed}");
        }
        for refused in [
            "example.com",
            "tandem.example.com.evil",
            "evilcorp.example",
            "127.0.0.1",
        ] {
            assert!(!checks.host_allowed(refused), "{refused}");
        }
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
