//! A transparent recording proxy, to see what the language server sends to the cloud.
//!
//! The language server talks to the real cloud through this proxy, which forwards every
//! request unchanged and records it. Tests use it to check the fields that never reach a
//! model provider (language, workspace-relative path, the Tandem key) without replacing
//! the cloud by an imitation.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

use crate::loopback::{lock, LoopbackServer};
use crate::provider::RecordedRequest;

struct Shared {
    upstream: String,
    client: reqwest::Client,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// A running proxy in front of `upstream`. Stops listening when dropped.
pub struct RecordingProxy {
    url: String,
    shared: Arc<Shared>,
    // Held for its Drop, which stops the proxy.
    _server: LoopbackServer,
}

impl RecordingProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(forward).with_state(shared.clone());
        let server = LoopbackServer::start(app, "recording proxy").await?;
        Ok(RecordingProxy {
            url: server.url(),
            shared,
            _server: server,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request forwarded so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The `POST /v1/completions` requests forwarded so far, oldest first (the language
    /// server also reads `GET /v1/me` at start, for its context budget).
    pub fn completions(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.method == "POST" && request.path == "/v1/completions")
            .collect()
    }
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    lock(&shared.requests).push(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw_body: String::from_utf8_lossy(&body).into_owned(),
        received_at: std::time::Instant::now(),
    });
    let path_and_query = uri
        .path_and_query()
        .map(|path| path.as_str())
        .unwrap_or("/");
    let mut request = shared
        .client
        .request(method, format!("{}{path_and_query}", shared.upstream))
        .body(body);
    for (name, value) in &headers {
        // reqwest sets these itself for the upstream connection.
        if name != header::HOST && name != header::CONTENT_LENGTH && name != header::CONNECTION {
            request = request.header(name, value);
        }
    }
    let upstream_response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("recording proxy: upstream failed: {error}"),
            )
                .into_response()
        }
    };
    let status = upstream_response.status();
    let upstream_headers = upstream_response.headers().clone();
    // Passed through as it arrives, so streamed answers stay streamed; the client
    // hanging up drops the upstream connection too, as it would without the proxy.
    let mut response = Response::new(Body::from_stream(upstream_response.bytes_stream()));
    *response.status_mut() = status;
    // Every end-to-end header (content type, quota headers, request id); the hop-by-hop
    // ones describe the upstream connection, and the length is the stream's to set.
    for (name, value) in &upstream_headers {
        let hop_by_hop = [
            header::CONNECTION,
            header::TRANSFER_ENCODING,
            header::CONTENT_LENGTH,
        ]
        .contains(name)
            || name.as_str() == "keep-alive";
        if !hop_by_hop {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}
