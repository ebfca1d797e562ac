//! A loopback model provider that speaks the Ollama and OpenAI wire formats.
//!
//! The cloud is pointed at this server instead of a real vendor. It answers
//! `POST /api/generate` (Ollama), `POST /v1/completions` and `POST /v1/chat/completions`
//! (OpenAI and compatible servers) with the vendors' exact response and error shapes,
//! streaming included, and records every request it receives so tests can check what the
//! cloud actually sent. It stands in for a vendor; it never imitates Tandem's own code.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::loopback::{lock, LoopbackServer};

/// One HTTP request the fixture received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query string, e.g. `/v1/completions`.
    pub path: String,
    /// Header names are lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or `Value::Null` when it was not JSON.
    pub body: Value,
    /// The body as received, lossily decoded.
    pub raw_body: String,
    /// When the request (head and body) had arrived, for latency breakdowns.
    pub received_at: std::time::Instant,
}

impl RecordedRequest {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }

    /// `"stream": true` asks for NDJSON (Ollama) or server-sent events (OpenAI).
    pub fn wants_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }

    /// `prompt` of an Ollama or OpenAI completions request: the text before the cursor.
    pub fn prompt(&self) -> Option<&str> {
        self.body.get("prompt").and_then(Value::as_str)
    }

    /// `suffix` of an Ollama or OpenAI completions request: the text after the cursor.
    pub fn suffix(&self) -> Option<&str> {
        self.body.get("suffix").and_then(Value::as_str)
    }

    /// Content of the last `user` message of a chat request.
    pub fn chat_user_content(&self) -> Option<&str> {
        self.body
            .get("messages")?
            .as_array()?
            .iter()
            .rev()
            .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))?
            .get("content")?
            .as_str()
    }

    /// The text the model is asked to continue: `prompt`, or for chat the user message.
    pub fn prompt_or_chat(&self) -> Option<&str> {
        self.prompt().or_else(|| self.chat_user_content())
    }
}

/// Computes the reply text from the request, for fixtures that echo what they received.
pub type ReplyFn = Arc<dyn Fn(&RecordedRequest) -> String + Send + Sync>;

#[derive(Clone)]
enum Reply {
    Fixed(String),
    Computed(ReplyFn),
    /// Exactly this status and body, whatever the vendor format.
    Raw {
        status: u16,
        body: String,
    },
}

#[derive(Clone)]
struct Behaviour {
    reply: Reply,
    delay: Duration,
    /// Answer every request with this status and the vendor's error body.
    failure: Option<u16>,
}

struct Shared {
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<RecordedRequest>>,
    request_arrived: Notify,
    next_response_id: AtomicU64,
}

/// The running loopback provider. Stops listening when dropped.
pub struct ProviderFixture {
    url: String,
    shared: Arc<Shared>,
    server: LoopbackServer,
}

/// Text the fixture answers with until told otherwise.
pub const DEFAULT_REPLY: &str = "fixture_completion()";

impl ProviderFixture {
    /// Starts listening on `127.0.0.1:0`; replies [`DEFAULT_REPLY`] with no delay.
    pub async fn start() -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(Behaviour {
                reply: Reply::Fixed(DEFAULT_REPLY.to_owned()),
                delay: Duration::ZERO,
                failure: None,
            }),
            requests: Mutex::new(Vec::new()),
            request_arrived: Notify::new(),
            next_response_id: AtomicU64::new(1),
        });
        // One fallback handler sees every path, so a request to a wrong path is recorded
        // (and visible in a failing test) instead of vanishing into a router 404.
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = LoopbackServer::start(app, "provider fixture").await?;
        Ok(ProviderFixture {
            url: server.url(),
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: Ollama's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `http://127.0.0.1:PORT/v1`: the base URL an OpenAI SDK takes.
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.url)
    }

    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    /// Answer every later request with this text.
    pub fn reply_with_text(&self, text: impl Into<String>) {
        self.behaviour().reply = Reply::Fixed(text.into());
    }

    /// Answer every later request with a text computed from that request.
    pub fn reply_with(&self, reply: impl Fn(&RecordedRequest) -> String + Send + Sync + 'static) {
        self.behaviour().reply = Reply::Computed(Arc::new(reply));
    }

    /// Answer every later request with exactly this status and body, to imitate a
    /// vendor (or a proxy in front of it) that sends something unreadable.
    pub fn reply_raw(&self, status: u16, body: impl Into<String>) {
        self.behaviour().reply = Reply::Raw {
            status,
            body: body.into(),
        };
    }

    /// Wait this long before answering (after recording the request).
    pub fn set_delay(&self, delay: Duration) {
        self.behaviour().delay = delay;
    }

    /// Answer every later request with this HTTP status and the vendor's error body.
    pub fn fail_with(&self, status: u16) {
        self.behaviour().failure = Some(status);
    }

    /// Stop failing (and stop sending raw bodies); answer normally again.
    pub fn recover(&self) {
        let mut behaviour = self.behaviour();
        behaviour.failure = None;
        if matches!(behaviour.reply, Reply::Raw { .. }) {
            behaviour.reply = Reply::Fixed(DEFAULT_REPLY.to_owned());
        }
    }

    /// Stops listening and closes every connection, so later connects are refused.
    pub async fn go_down(&mut self) {
        self.server.stop().await;
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Waits until at least `count` requests have arrived and returns all of them.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<RecordedRequest>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.request_arrived.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return Ok(requests);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                anyhow::bail!(
                    "the provider fixture received {} request(s) within {timeout:?}, expected {count}: {:#?}",
                    requests.len(),
                    requests
                );
            }
        }
    }

    fn behaviour(&self) -> MutexGuard<'_, Behaviour> {
        lock(&self.shared.behaviour)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    OllamaGenerate,
    OpenAiCompletions,
    OpenAiChat,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let request = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: parsed.clone().unwrap_or(Value::Null),
        raw_body,
        received_at: std::time::Instant::now(),
    };
    lock(&shared.requests).push(request.clone());
    shared.request_arrived.notify_waiters();

    let api = match (method.as_str(), uri.path()) {
        ("POST", "/api/generate") => Api::OllamaGenerate,
        ("POST", "/v1/completions") => Api::OpenAiCompletions,
        ("POST", "/v1/chat/completions") => Api::OpenAiChat,
        // Both vendors answer an unknown route with a plain-text 404.
        _ => return (StatusCode::NOT_FOUND, "404 page not found").into_response(),
    };
    if parsed.is_none() {
        return vendor_error(api, 400, "request body is not valid JSON");
    }

    let behaviour = lock(&shared.behaviour).clone();
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    if let Some(status) = behaviour.failure {
        return vendor_error(api, status, "");
    }
    let text = match &behaviour.reply {
        Reply::Fixed(text) => text.clone(),
        Reply::Computed(reply) => reply(&request),
        Reply::Raw { status, body } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            return (status, body.clone()).into_response();
        }
    };
    let model = request.model().unwrap_or("unknown-model").to_owned();
    let prompt_tokens = estimate_tokens(request.prompt_or_chat().unwrap_or_default());
    let completion_tokens = estimate_tokens(&text);
    let response_number = shared.next_response_id.fetch_add(1, Ordering::Relaxed);
    let reply = ReplyParts {
        model,
        text,
        prompt_tokens,
        completion_tokens,
        id_number: response_number,
    };
    match (api, request.wants_stream()) {
        (Api::OllamaGenerate, false) => ollama_generate(&reply),
        (Api::OllamaGenerate, true) => ollama_generate_stream(&reply),
        (Api::OpenAiCompletions, false) => openai_completions(&reply),
        (Api::OpenAiCompletions, true) => openai_completions_stream(&reply),
        (Api::OpenAiChat, false) => openai_chat(&reply),
        (Api::OpenAiChat, true) => openai_chat_stream(&reply),
    }
}

struct ReplyParts {
    model: String,
    text: String,
    prompt_tokens: u64,
    completion_tokens: u64,
    id_number: u64,
}

/// Vendors count tokens; a rough four characters per token keeps the numbers plausible.
fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}

/// Ollama's `created_at` is RFC 3339 with nanoseconds; the value itself does not matter.
const OLLAMA_CREATED_AT: &str = "2026-01-01T00:00:00.000000000Z";

/// Splits a reply into a few stream chunks on character boundaries.
fn chunks(text: &str) -> Vec<String> {
    let characters: Vec<char> = text.chars().collect();
    characters
        .chunks(4)
        .map(|chunk| chunk.iter().collect())
        .collect()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn streamed(content_type: &'static str, pieces: Vec<String>) -> Response {
    // A short pause between pieces makes the client really read a stream rather than
    // one buffer that happens to contain every line.
    let stream = futures::stream::unfold(pieces.into_iter(), |mut pieces| async move {
        let piece = pieces.next()?;
        tokio::time::sleep(Duration::from_millis(2)).await;
        Some((Ok::<Bytes, std::io::Error>(Bytes::from(piece)), pieces))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn ollama_final(reply: &ReplyParts, text: &str) -> Value {
    json!({
        "model": reply.model,
        "created_at": OLLAMA_CREATED_AT,
        "response": text,
        "done": true,
        "done_reason": "stop",
        "total_duration": 123_456_789u64,
        "load_duration": 1_234_567u64,
        "prompt_eval_count": reply.prompt_tokens,
        "prompt_eval_duration": 2_345_678u64,
        "eval_count": reply.completion_tokens,
        "eval_duration": 3_456_789u64,
    })
}

fn ollama_generate(reply: &ReplyParts) -> Response {
    json_response(StatusCode::OK, &ollama_final(reply, &reply.text))
}

fn ollama_generate_stream(reply: &ReplyParts) -> Response {
    let mut lines: Vec<String> = chunks(&reply.text)
        .into_iter()
        .map(|chunk| {
            let line = json!({
                "model": reply.model,
                "created_at": OLLAMA_CREATED_AT,
                "response": chunk,
                "done": false,
            });
            format!("{line}\n")
        })
        .collect();
    lines.push(format!("{}\n", ollama_final(reply, "")));
    streamed("application/x-ndjson", lines)
}

fn openai_usage(reply: &ReplyParts) -> Value {
    json!({
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    })
}

fn openai_completions(reply: &ReplyParts) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "id": format!("cmpl-fixture{}", reply.id_number),
            "object": "text_completion",
            "created": unix_seconds(),
            "model": reply.model,
            "choices": [{
                "text": reply.text,
                "index": 0,
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": openai_usage(reply),
        }),
    )
}

fn sse_event(data: &Value) -> String {
    format!("data: {data}\n\n")
}

fn openai_completions_stream(reply: &ReplyParts) -> Response {
    let id = format!("cmpl-fixture{}", reply.id_number);
    let created = unix_seconds();
    let chunk = |text: &str, finish_reason: Value| {
        sse_event(&json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": reply.model,
            "choices": [{
                "text": text,
                "index": 0,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        }))
    };
    let mut events: Vec<String> = chunks(&reply.text)
        .iter()
        .map(|piece| chunk(piece, Value::Null))
        .collect();
    events.push(chunk("", json!("stop")));
    events.push("data: [DONE]\n\n".to_owned());
    streamed("text/event-stream", events)
}

fn openai_chat(reply: &ReplyParts) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "id": format!("chatcmpl-fixture{}", reply.id_number),
            "object": "chat.completion",
            "created": unix_seconds(),
            "model": reply.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply.text, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": openai_usage(reply),
            "system_fingerprint": "fp_fixture",
        }),
    )
}

fn openai_chat_stream(reply: &ReplyParts) -> Response {
    let id = format!("chatcmpl-fixture{}", reply.id_number);
    let created = unix_seconds();
    let chunk = |delta: Value, finish_reason: Value| {
        sse_event(&json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "system_fingerprint": "fp_fixture",
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        }))
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    events.extend(
        chunks(&reply.text)
            .iter()
            .map(|piece| chunk(json!({"content": piece}), Value::Null)),
    );
    events.push(chunk(json!({}), json!("stop")));
    events.push("data: [DONE]\n\n".to_owned());
    streamed("text/event-stream", events)
}

/// The error body each vendor sends with a non-2xx status.
fn vendor_error(api: Api, status: u16, detail: &str) -> Response {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match api {
        Api::OllamaGenerate => {
            let message = match status {
                _ if !detail.is_empty() => detail.to_owned(),
                404 => "model \"fixture\" not found, try pulling it first".to_owned(),
                429 => {
                    "server busy, please try again.  maximum pending requests exceeded".to_owned()
                }
                _ => format!("fixture failure with status {status}"),
            };
            json!({ "error": message })
        }
        Api::OpenAiCompletions | Api::OpenAiChat => {
            let (message, kind, code) = match status {
                400 => ("Invalid request.", "invalid_request_error", Value::Null),
                401 => (
                    "Incorrect API key provided: sk-fixt****. You can find your API key in your account settings.",
                    "invalid_request_error",
                    json!("invalid_api_key"),
                ),
                404 => (
                    "The model `fixture` does not exist or you do not have access to it.",
                    "invalid_request_error",
                    json!("model_not_found"),
                ),
                429 => (
                    "Rate limit reached for requests. Please try again later.",
                    "requests",
                    json!("rate_limit_exceeded"),
                ),
                500..=599 => (
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error",
                    Value::Null,
                ),
                _ => ("Fixture failure.", "api_error", Value::Null),
            };
            let message = if detail.is_empty() {
                message.to_owned()
            } else {
                detail.to_owned()
            };
            json!({
                "error": {
                    "message": message,
                    "type": kind,
                    "param": null,
                    "code": code,
                }
            })
        }
    };
    json_response(status_code, &body)
}

#[cfg(test)]
mod tests {
    //! The fixture is itself checked with a plain HTTP client, so a failing end-to-end test
    //! points at the binaries, not at a fixture that drifted from the vendors' formats.

    use super::*;

    async fn post(url: String, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(url)
            .header("authorization", "Bearer sk-test")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn ollama_generate_plain_and_streamed() {
        let fixture = ProviderFixture::start().await.unwrap();
        fixture.reply_with_text("hello world, more");
        let body = json!({"model": "m", "prompt": "p", "suffix": "s", "stream": false});
        let response = post(format!("{}/api/generate", fixture.url()), body).await;
        assert_eq!(response.status(), 200);
        let value: Value = response.json().await.unwrap();
        assert_eq!(value["response"], "hello world, more");
        assert_eq!(value["done"], true);
        assert_eq!(value["model"], "m");

        let body = json!({"model": "m", "prompt": "p", "stream": true});
        let response = post(format!("{}/api/generate", fixture.url()), body).await;
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
        let text = response.text().await.unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let joined: String = lines
            .iter()
            .map(|line| line["response"].as_str().unwrap())
            .collect();
        assert_eq!(joined, "hello world, more");
        assert_eq!(lines.last().unwrap()["done"], true);
        assert!(lines[..lines.len() - 1]
            .iter()
            .all(|line| line["done"] == false));

        let requests = fixture.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].prompt(), Some("p"));
        assert_eq!(requests[0].suffix(), Some("s"));
        assert_eq!(requests[0].header("Authorization"), Some("Bearer sk-test"));
    }

    #[tokio::test]
    async fn openai_completions_and_chat_streams_end_with_done() {
        let fixture = ProviderFixture::start().await.unwrap();
        fixture.reply_with(|request| format!("<{}>", request.prompt_or_chat().unwrap_or("?")));
        let body = json!({"model": "m", "prompt": "abc", "stream": true});
        let text = post(format!("{}/v1/completions", fixture.url()), body)
            .await
            .text()
            .await
            .unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
        let joined: String = text
            .split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .filter(|data| *data != "[DONE]")
            .map(|data| {
                let value: Value = serde_json::from_str(data).unwrap();
                value["choices"][0]["text"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(joined, "<abc>");

        let body = json!({"model": "m", "messages": [
            {"role": "system", "content": "fill"}, {"role": "user", "content": "xyz"}]});
        let value: Value = post(format!("{}/v1/chat/completions", fixture.url()), body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(value["choices"][0]["message"]["content"], "<xyz>");
        assert_eq!(value["object"], "chat.completion");
    }

    #[tokio::test]
    async fn failures_use_vendor_error_bodies_and_going_down_refuses_connections() {
        let mut fixture = ProviderFixture::start().await.unwrap();
        fixture.fail_with(401);
        let response = post(format!("{}/v1/completions", fixture.url()), json!({})).await;
        assert_eq!(response.status(), 401);
        let value: Value = response.json().await.unwrap();
        assert_eq!(value["error"]["code"], "invalid_api_key");
        let response = post(format!("{}/api/generate", fixture.url()), json!({})).await;
        let value: Value = response.json().await.unwrap();
        assert!(value["error"].is_string());

        let url = format!("{}/api/generate", fixture.url());
        fixture.go_down().await;
        let error = reqwest::Client::new()
            .post(url)
            .json(&json!({}))
            .send()
            .await
            .unwrap_err();
        assert!(error.is_connect(), "{error:?}");
    }
}
