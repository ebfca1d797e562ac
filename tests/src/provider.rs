//! A loopback model provider that speaks the Ollama, OpenAI, Anthropic and Gemini wire
//! formats.
//!
//! The cloud is pointed at this server instead of a real vendor. It answers
//! `POST /api/generate` and `POST /api/chat` (Ollama), `POST /v1/completions` and `POST /v1/chat/completions`
//! (OpenAI and compatible servers), `POST /v1/messages` (Anthropic) and
//! `POST /v1beta/models/{model}:generateContent` / `:streamGenerateContent` (Gemini) with
//! the vendors' exact response and error shapes, streaming included, and records every
//! request it receives so tests can check what the cloud actually sent. It can be told to
//! fail, rate-limit, stall or stream slowly. It stands in for a vendor; it never imitates
//! Tandem's own code.

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
    /// The query string without `?` (`alt=sse`), `None` when the URL had none.
    pub query: Option<String>,
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

    /// `model` of the body, or for Gemini (which names it in the path) the `{model}` of
    /// `/v1beta/models/{model}:…`.
    pub fn model(&self) -> Option<&str> {
        self.body
            .get("model")
            .and_then(Value::as_str)
            .or_else(|| gemini_model(&self.path))
    }

    /// `"stream": true` asks for NDJSON (Ollama) or server-sent events (OpenAI,
    /// Anthropic). Gemini streams by path instead (`:streamGenerateContent`).
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

    /// The conversation's turns other than the system prompt, as `(role, text)` in order,
    /// whatever the vendor format: `messages` (OpenAI, Ollama, Anthropic; a content array
    /// counts its text blocks) or Gemini's `contents` (whose `model` role is reported as
    /// `assistant`).
    pub fn turns(&self) -> Vec<(String, String)> {
        let text_of = |content: &Value| -> String {
            match content {
                Value::String(text) => text.clone(),
                Value::Array(blocks) => blocks
                    .iter()
                    .filter_map(|block| block.get("text")?.as_str())
                    .collect(),
                _ => String::new(),
            }
        };
        if let Some(messages) = self.body.get("messages").and_then(Value::as_array) {
            return messages
                .iter()
                .filter_map(|message| {
                    let role = message.get("role")?.as_str()?;
                    (role != "system").then(|| {
                        (
                            role.to_owned(),
                            text_of(message.get("content").unwrap_or(&Value::Null)),
                        )
                    })
                })
                .collect();
        }
        let contents = self.body.get("contents").and_then(Value::as_array);
        contents
            .into_iter()
            .flatten()
            .map(|content| {
                let role = match content.get("role").and_then(Value::as_str) {
                    Some("model") => "assistant",
                    _ => "user",
                };
                let text = content.get("parts").map(text_of).unwrap_or_default();
                (role.to_owned(), text)
            })
            .collect()
    }

    /// Content of the last `user` message of a chat request (OpenAI or Anthropic): the
    /// string, or the first `text` block of an Anthropic content array.
    pub fn chat_user_content(&self) -> Option<&str> {
        let content = self
            .body
            .get("messages")?
            .as_array()?
            .iter()
            .rev()
            .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))?
            .get("content")?;
        content.as_str().or_else(|| {
            content
                .as_array()?
                .iter()
                .find(|block| block.get("type").and_then(Value::as_str) == Some("text"))?
                .get("text")?
                .as_str()
        })
    }

    /// Text of the first part of the last `user` entry of a Gemini `contents` list.
    pub fn gemini_user_text(&self) -> Option<&str> {
        self.body
            .get("contents")?
            .as_array()?
            .iter()
            .rev()
            .find(|content| {
                // Gemini treats a content without a role as the user's.
                matches!(
                    content.get("role").and_then(Value::as_str),
                    Some("user") | None
                )
            })?
            .get("parts")?
            .as_array()?
            .iter()
            .find_map(|part| part.get("text")?.as_str())
    }

    /// The system prompt: Anthropic's `system`, Gemini's `systemInstruction`, or the
    /// first `system` message of an OpenAI chat request.
    pub fn system_prompt(&self) -> Option<&str> {
        if let Some(system) = self.body.get("system").and_then(Value::as_str) {
            return Some(system);
        }
        if let Some(instruction) = self.body.get("systemInstruction") {
            return instruction
                .get("parts")?
                .as_array()?
                .iter()
                .find_map(|part| part.get("text")?.as_str());
        }
        self.body
            .get("messages")?
            .as_array()?
            .iter()
            .find(|message| message.get("role").and_then(Value::as_str) == Some("system"))?
            .get("content")?
            .as_str()
    }

    /// The text the model is asked to continue: `prompt`, or for chat the user message.
    pub fn prompt_or_chat(&self) -> Option<&str> {
        self.prompt()
            .or_else(|| self.chat_user_content())
            .or_else(|| self.gemini_user_text())
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
    /// `retry-after` (whole seconds) sent with a 429.
    retry_after: Option<Duration>,
    /// Never answer: hold every request open until the fixture is dropped.
    stalled: bool,
    /// Pause before each piece of a streamed answer.
    chunk_delay: Duration,
    /// Break every streamed answer off after this many pieces.
    break_after: Option<usize>,
}

struct Shared {
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<RecordedRequest>>,
    request_arrived: Notify,
    next_response_id: AtomicU64,
    /// Streamed answers whose client hung up before the last piece.
    abandoned_streams: AtomicU64,
    stream_abandoned: Notify,
}

/// The running loopback provider. Stops listening when dropped.
pub struct ProviderFixture {
    url: String,
    shared: Arc<Shared>,
    server: LoopbackServer,
}

/// Text the fixture answers with until told otherwise.
pub const DEFAULT_REPLY: &str = "fixture_completion()";

/// Default pause between stream pieces: short, but enough that a client really reads a
/// stream rather than one buffer that happens to contain every line.
const DEFAULT_CHUNK_DELAY: Duration = Duration::from_millis(2);

impl ProviderFixture {
    /// Starts listening on `127.0.0.1:0`; replies [`DEFAULT_REPLY`] with no delay.
    pub async fn start() -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(Behaviour {
                reply: Reply::Fixed(DEFAULT_REPLY.to_owned()),
                delay: Duration::ZERO,
                failure: None,
                retry_after: None,
                stalled: false,
                chunk_delay: DEFAULT_CHUNK_DELAY,
                break_after: None,
            }),
            requests: Mutex::new(Vec::new()),
            request_arrived: Notify::new(),
            next_response_id: AtomicU64::new(1),
            abandoned_streams: AtomicU64::new(0),
            stream_abandoned: Notify::new(),
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

    /// `http://127.0.0.1:PORT`: the base URL Anthropic's and Google's SDKs take (they add
    /// `/v1/messages` and `/v1beta/models/…` themselves).
    pub fn vendor_root_url(&self) -> &str {
        &self.url
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

    /// Answer every later request with this HTTP status and the vendor's error body
    /// (Anthropic's `529` is its "overloaded" answer), without `retry-after`.
    pub fn fail_with(&self, status: u16) {
        let mut behaviour = self.behaviour();
        behaviour.failure = Some(status);
        behaviour.retry_after = None;
    }

    /// Answer every later request with 429, the vendor's rate-limit body and
    /// `retry-after` set to `retry_after` (whole seconds, rounded up).
    pub fn rate_limit(&self, retry_after: Duration) {
        let mut behaviour = self.behaviour();
        behaviour.failure = Some(429);
        behaviour.retry_after = Some(retry_after);
    }

    /// Never answer later requests: each is recorded, then held open without a status
    /// line until the client gives up or the fixture is dropped.
    pub fn stall(&self) {
        self.behaviour().stalled = true;
    }

    /// Pause this long before each piece of every later streamed answer (the status and
    /// headers go out at once), to imitate a slow model.
    pub fn set_chunk_delay(&self, delay: Duration) {
        self.behaviour().chunk_delay = delay;
    }

    /// Break every later streamed answer off after `pieces` pieces (lines or events,
    /// the vendor's start events included): Anthropic sends its `error` event
    /// (`overloaded_error`) as it does when a model fails mid-answer; the others drop the
    /// connection mid-body.
    pub fn break_streams_after(&self, pieces: usize) {
        self.behaviour().break_after = Some(pieces);
    }

    /// Stop failing, rate limiting, stalling (and stop sending raw bodies); answer
    /// normally again. Requests already stalled stay stalled; delays are kept.
    pub fn recover(&self) {
        let mut behaviour = self.behaviour();
        behaviour.failure = None;
        behaviour.retry_after = None;
        behaviour.stalled = false;
        behaviour.break_after = None;
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

    /// How many streamed answers lost their client before the last piece was sent.
    pub fn abandoned_streams(&self) -> u64 {
        self.shared.abandoned_streams.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` streamed answers have lost their client midway.
    pub async fn wait_for_abandoned_streams(
        &self,
        count: u64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let abandoned = self.shared.stream_abandoned.notified();
            if self.abandoned_streams() >= count {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, abandoned).await.is_err() {
                anyhow::bail!(
                    "{} streamed answer(s) were abandoned within {timeout:?}, expected {count}",
                    self.abandoned_streams()
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
    OllamaChat,
    OpenAiCompletions,
    OpenAiChat,
    AnthropicMessages,
    GeminiGenerate,
    /// `:streamGenerateContent`: server-sent events with `alt=sse`, otherwise one JSON
    /// array streamed element by element.
    GeminiStream {
        sse: bool,
    },
}

/// `{model}` of a Gemini path `/v1beta/models/{model}:{method}`.
fn gemini_model(path: &str) -> Option<&str> {
    let (model, _method) = path.strip_prefix("/v1beta/models/")?.rsplit_once(':')?;
    (!model.is_empty()).then_some(model)
}

/// `{method}` of a Gemini path `/v1beta/models/{model}:{method}`.
fn gemini_method(path: &str) -> Option<&str> {
    gemini_model(path)?;
    path.rsplit_once(':').map(|(_, method)| method)
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
        body: parsed.clone().unwrap_or(Value::Null),
        raw_body,
        received_at: std::time::Instant::now(),
    };
    lock(&shared.requests).push(request.clone());
    shared.request_arrived.notify_waiters();

    let api = match (method.as_str(), uri.path(), gemini_method(uri.path())) {
        ("POST", "/api/generate", _) => Api::OllamaGenerate,
        ("POST", "/api/chat", _) => Api::OllamaChat,
        ("POST", "/v1/completions", _) => Api::OpenAiCompletions,
        ("POST", "/v1/chat/completions", _) => Api::OpenAiChat,
        ("POST", "/v1/messages", _) => Api::AnthropicMessages,
        ("POST", _, Some("generateContent")) => Api::GeminiGenerate,
        ("POST", _, Some("streamGenerateContent")) => Api::GeminiStream {
            sse: uri
                .query()
                .is_some_and(|query| query.split('&').any(|pair| pair == "alt=sse")),
        },
        // The vendors answer an unknown route with a plain-text 404.
        _ => return (StatusCode::NOT_FOUND, "404 page not found").into_response(),
    };
    if parsed.is_none() {
        return vendor_error(api, 400, "request body is not valid JSON", None);
    }

    let behaviour = lock(&shared.behaviour).clone();
    if behaviour.stalled {
        // Held until the client hangs up or the server task is dropped with the fixture.
        return std::future::pending().await;
    }
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    if let Some(status) = behaviour.failure {
        return vendor_error(api, status, "", behaviour.retry_after);
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
        chunk_delay: behaviour.chunk_delay,
        break_after: behaviour.break_after,
        shared: shared.clone(),
        include_usage: request
            .body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true),
    };
    match (api, request.wants_stream()) {
        (Api::OllamaGenerate, false) => ollama_answer(&reply, false),
        (Api::OllamaGenerate, true) => ollama_stream(&reply, false),
        (Api::OllamaChat, false) => ollama_answer(&reply, true),
        (Api::OllamaChat, true) => ollama_stream(&reply, true),
        (Api::OpenAiCompletions, false) => openai_completions(&reply),
        (Api::OpenAiCompletions, true) => openai_completions_stream(&reply),
        (Api::OpenAiChat, false) => openai_chat(&reply),
        (Api::OpenAiChat, true) => openai_chat_stream(&reply),
        (Api::AnthropicMessages, false) => anthropic_message(&reply),
        (Api::AnthropicMessages, true) => anthropic_message_stream(&reply),
        (Api::GeminiGenerate, _) => gemini_generate(&reply),
        (Api::GeminiStream { sse }, _) => gemini_stream(&reply, sse),
    }
}

struct ReplyParts {
    model: String,
    text: String,
    prompt_tokens: u64,
    completion_tokens: u64,
    id_number: u64,
    chunk_delay: Duration,
    break_after: Option<usize>,
    /// OpenAI's `stream_options.include_usage`: a last chunk with the token counts.
    include_usage: bool,
    shared: Arc<Shared>,
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

fn streamed(content_type: &'static str, pieces: Vec<String>, reply: &ReplyParts) -> Response {
    streamed_or_broken(content_type, pieces, reply, None)
}

/// Sends `pieces` one by one. Told to break streams, it stops after that many and sends
/// `error_piece` if given (a vendor's in-stream error event), or else fails the body so
/// the connection drops without the chunked encoding's end.
fn streamed_or_broken(
    content_type: &'static str,
    mut pieces: Vec<String>,
    reply: &ReplyParts,
    error_piece: Option<String>,
) -> Response {
    let mut broken = false;
    if let Some(count) = reply.break_after {
        pieces.truncate(count);
        match error_piece {
            Some(piece) => pieces.push(piece),
            None => broken = true,
        }
    }
    let chunk_delay = reply.chunk_delay;
    let sending = Sending {
        pieces: pieces.into_iter(),
        broken,
        shared: reply.shared.clone(),
    };
    // A pause between pieces makes the client really read a stream rather than one
    // buffer that happens to contain every line (and, made long, imitates a slow model).
    let stream = futures::stream::unfold(sending, move |mut sending| async move {
        tokio::time::sleep(chunk_delay).await;
        match sending.pieces.next() {
            Some(piece) => Some((Ok(Bytes::from(piece)), sending)),
            None if sending.broken => {
                sending.broken = false;
                Some((
                    Err(std::io::Error::other("fixture broke the stream off")),
                    sending,
                ))
            }
            None => None,
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A streamed answer being sent; dropped before its end, it counts as abandoned.
struct Sending {
    pieces: std::vec::IntoIter<String>,
    broken: bool,
    shared: Arc<Shared>,
}

impl Drop for Sending {
    fn drop(&mut self) {
        // A stream told to break counts as broken, not abandoned.
        if !self.broken && self.pieces.len() > 0 {
            self.shared.abandoned_streams.fetch_add(1, Ordering::SeqCst);
            self.shared.stream_abandoned.notify_waiters();
        }
    }
}

/// Where an Ollama answer carries its text: `response` (`/api/generate`), or an
/// assistant `message` (`/api/chat`).
fn ollama_text(chat: bool, text: &str) -> (&'static str, Value) {
    if chat {
        ("message", json!({ "role": "assistant", "content": text }))
    } else {
        ("response", json!(text))
    }
}

fn ollama_final(reply: &ReplyParts, chat: bool, text: &str) -> Value {
    let mut value = json!({
        "model": reply.model,
        "created_at": OLLAMA_CREATED_AT,
        "done": true,
        "done_reason": "stop",
        "total_duration": 123_456_789u64,
        "load_duration": 1_234_567u64,
        "prompt_eval_count": reply.prompt_tokens,
        "prompt_eval_duration": 2_345_678u64,
        "eval_count": reply.completion_tokens,
        "eval_duration": 3_456_789u64,
    });
    let (key, text) = ollama_text(chat, text);
    value[key] = text;
    value
}

fn ollama_answer(reply: &ReplyParts, chat: bool) -> Response {
    json_response(StatusCode::OK, &ollama_final(reply, chat, &reply.text))
}

fn ollama_stream(reply: &ReplyParts, chat: bool) -> Response {
    let mut lines: Vec<String> = chunks(&reply.text)
        .into_iter()
        .map(|chunk| {
            let mut line = json!({
                "model": reply.model,
                "created_at": OLLAMA_CREATED_AT,
                "done": false,
            });
            let (key, text) = ollama_text(chat, &chunk);
            line[key] = text;
            format!("{line}\n")
        })
        .collect();
    lines.push(format!("{}\n", ollama_final(reply, chat, "")));
    streamed("application/x-ndjson", lines, reply)
}

fn openai_usage(reply: &ReplyParts) -> Value {
    json!({
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    })
}

/// With `stream_options.include_usage`, OpenAI ends a stream with a chunk whose
/// `choices` is empty and whose `usage` counts the whole answer.
fn openai_usage_chunk(reply: &ReplyParts, id: &str, created: u64, object: &str) -> String {
    sse_event(&json!({
        "id": id,
        "object": object,
        "created": created,
        "model": reply.model,
        "choices": [],
        "usage": openai_usage(reply),
    }))
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
    if reply.include_usage {
        events.push(openai_usage_chunk(reply, &id, created, "text_completion"));
    }
    events.push("data: [DONE]\n\n".to_owned());
    streamed("text/event-stream", events, reply)
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
    if reply.include_usage {
        events.push(openai_usage_chunk(
            reply,
            &id,
            created,
            "chat.completion.chunk",
        ));
    }
    events.push("data: [DONE]\n\n".to_owned());
    streamed("text/event-stream", events, reply)
}

fn anthropic_usage(reply: &ReplyParts) -> Value {
    json!({
        "input_tokens": reply.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": reply.completion_tokens,
    })
}

fn anthropic_message(reply: &ReplyParts) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "id": format!("msg_fixture{}", reply.id_number),
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": anthropic_usage(reply),
        }),
    )
}

/// One Anthropic server-sent event: a named event whose data repeats the name as `type`.
fn anthropic_event(data: &Value) -> String {
    let name = data.get("type").and_then(Value::as_str).unwrap_or("error");
    format!("event: {name}\ndata: {data}\n\n")
}

fn anthropic_message_stream(reply: &ReplyParts) -> Response {
    let mut events = vec![
        anthropic_event(&json!({
            "type": "message_start",
            "message": {
                "id": format!("msg_fixture{}", reply.id_number),
                "type": "message",
                "role": "assistant",
                "model": reply.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                // The start reports the prompt; output tokens arrive with message_delta.
                "usage": {
                    "input_tokens": reply.prompt_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        })),
        anthropic_event(&json!({
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        })),
        anthropic_event(&json!({"type": "ping"})),
    ];
    events.extend(chunks(&reply.text).iter().map(|piece| {
        anthropic_event(&json!({
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": piece},
        }))
    }));
    events.push(anthropic_event(
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(anthropic_event(&json!({
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
        "usage": {"output_tokens": reply.completion_tokens},
    })));
    events.push(anthropic_event(&json!({"type": "message_stop"})));
    let overloaded = anthropic_event(&json!({
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }));
    streamed_or_broken(
        "text/event-stream; charset=utf-8",
        events,
        reply,
        Some(overloaded),
    )
}

/// One Gemini answer (or stream chunk) holding `text`; `finished` adds the finish reason
/// and the full usage, which Gemini only knows at the end.
fn gemini_chunk(reply: &ReplyParts, text: &str, finished: bool) -> Value {
    let mut candidate = json!({
        "content": {"parts": [{"text": text}], "role": "model"},
        "index": 0,
    });
    let mut usage = json!({
        "promptTokenCount": reply.prompt_tokens,
        "totalTokenCount": reply.prompt_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}],
    });
    if finished {
        candidate["finishReason"] = json!("STOP");
        usage["candidatesTokenCount"] = json!(reply.completion_tokens);
        usage["totalTokenCount"] = json!(reply.prompt_tokens + reply.completion_tokens);
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": reply.model,
        "responseId": format!("fixture-response-{}", reply.id_number),
    })
}

fn gemini_generate(reply: &ReplyParts) -> Response {
    json_response(StatusCode::OK, &gemini_chunk(reply, &reply.text, true))
}

/// `:streamGenerateContent`: with `alt=sse`, `data: {…}` events separated by CRLF blank
/// lines and no end marker (the stream just ends); without, one JSON array sent element
/// by element.
fn gemini_stream(reply: &ReplyParts, sse: bool) -> Response {
    let mut pieces = chunks(&reply.text);
    if pieces.is_empty() {
        pieces.push(String::new());
    }
    let last = pieces.len() - 1;
    let values: Vec<Value> = pieces
        .iter()
        .enumerate()
        .map(|(index, piece)| gemini_chunk(reply, piece, index == last))
        .collect();
    if sse {
        let events = values
            .iter()
            .map(|value| format!("data: {value}\r\n\r\n"))
            .collect();
        return streamed("text/event-stream", events, reply);
    }
    let mut elements: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let separator = if index == 0 { "[" } else { ",\r\n" };
            format!("{separator}{value}")
        })
        .collect();
    elements.push("]".to_owned());
    streamed("application/json; charset=UTF-8", elements, reply)
}

/// The error body each vendor sends with a non-2xx status, and `retry-after` (whole
/// seconds, rounded up) with a 429 when one is given.
fn vendor_error(api: Api, status: u16, detail: &str, retry_after: Option<Duration>) -> Response {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let detail_or = |message: &str| {
        if detail.is_empty() {
            message.to_owned()
        } else {
            detail.to_owned()
        }
    };
    let body = match api {
        Api::OllamaGenerate | Api::OllamaChat => {
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
            json!({
                "error": {
                    "message": detail_or(message),
                    "type": kind,
                    "param": null,
                    "code": code,
                }
            })
        }
        Api::AnthropicMessages => {
            let (kind, message) = match status {
                400 => ("invalid_request_error", "Invalid request."),
                401 => ("authentication_error", "invalid x-api-key"),
                403 => (
                    "permission_error",
                    "Your API key does not have permission to use the specified resource.",
                ),
                404 => ("not_found_error", "model: fixture"),
                413 => (
                    "request_too_large",
                    "Request exceeds the maximum allowed number of bytes.",
                ),
                429 => (
                    "rate_limit_error",
                    "Number of requests has exceeded your per-minute rate limit.",
                ),
                529 => ("overloaded_error", "Overloaded"),
                _ => ("api_error", "Internal server error"),
            };
            json!({
                "type": "error",
                "error": {"type": kind, "message": detail_or(message)},
                "request_id": "req_fixture",
            })
        }
        Api::GeminiGenerate | Api::GeminiStream { .. } => {
            let (state, message) = match status {
                400 => (
                    "INVALID_ARGUMENT",
                    "API key not valid. Please pass a valid API key.",
                ),
                401 => (
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials.",
                ),
                403 => (
                    "PERMISSION_DENIED",
                    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
                ),
                404 => (
                    "NOT_FOUND",
                    "models/fixture is not found for API version v1beta, or is not supported for generateContent.",
                ),
                429 => (
                    "RESOURCE_EXHAUSTED",
                    "Resource has been exhausted (e.g. check quota).",
                ),
                503 => ("UNAVAILABLE", "The model is overloaded. Please try again later."),
                504 => ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
                500..=599 => (
                    "INTERNAL",
                    "An internal error has occurred. Please retry or report the problem.",
                ),
                _ => ("UNKNOWN", "Fixture failure."),
            };
            json!({
                "error": {"code": status, "message": detail_or(message), "status": state}
            })
        }
    };
    let mut response = json_response(status_code, &body);
    if let (429, Some(retry_after)) = (status, retry_after) {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
    response
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
    async fn ollama_chat_plain_and_streamed() {
        let fixture = ProviderFixture::start().await.unwrap();
        fixture.reply_with_text("It adds, then returns.");
        let messages = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "explain"},
        ]);
        let body = json!({"model": "m", "messages": messages, "stream": false});
        let response = post(format!("{}/api/chat", fixture.url()), body).await;
        assert_eq!(response.status(), 200);
        let value: Value = response.json().await.unwrap();
        assert_eq!(value["message"]["role"], "assistant");
        assert_eq!(value["message"]["content"], "It adds, then returns.");
        assert!(value.get("response").is_none());
        assert_eq!(value["done"], true);

        let body = json!({"model": "m", "messages": messages, "stream": true});
        let response = post(format!("{}/api/chat", fixture.url()), body).await;
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
        let text = response.text().await.unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let joined: String = lines
            .iter()
            .map(|line| line["message"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(joined, "It adds, then returns.");
        assert_eq!(lines.last().unwrap()["done"], true);
        assert!(lines.last().unwrap()["eval_count"].as_u64().unwrap() > 0);

        let requests = fixture.requests();
        assert_eq!(requests[0].chat_user_content(), Some("explain"));
        assert_eq!(requests[0].system_prompt(), Some("be brief"));
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
    #[tokio::test]
    async fn openai_streams_end_with_usage_when_asked() {
        let fixture = ProviderFixture::start().await.unwrap();
        fixture.reply_with_text("abcdefgh");
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "stream": true, "stream_options": {"include_usage": true}});
        let text = post(format!("{}/v1/chat/completions", fixture.url()), body)
            .await
            .text()
            .await
            .unwrap();
        let data: Vec<&str> = text
            .split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .collect();
        assert_eq!(data.last(), Some(&"[DONE]"));
        let usage: Value = serde_json::from_str(data[data.len() - 2]).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 2);
    }

    #[tokio::test]
    async fn broken_streams_stop_midway() {
        let fixture = ProviderFixture::start().await.unwrap();
        fixture.reply_with_text("a".repeat(40));
        fixture.break_streams_after(4);
        let body = json!({"model": "claude-x", "max_tokens": 16, "stream": true,
            "messages": [{"role": "user", "content": "q"}]});
        let text = post(format!("{}/v1/messages", fixture.url()), body)
            .await
            .text()
            .await
            .unwrap();
        let events = sse_events(&text);
        assert_eq!(events.len(), 5, "{text}");
        assert_eq!(events[4].0.as_deref(), Some("error"));
        assert_eq!(events[4].1["error"]["type"], "overloaded_error");

        // The others lose the connection: the body cannot be read to its end.
        let body = json!({"model": "m", "prompt": "p", "stream": true});
        let response = post(format!("{}/v1/completions", fixture.url()), body).await;
        assert_eq!(response.status(), 200);
        assert!(response.text().await.is_err());
        fixture.recover();
        let body = json!({"model": "m", "prompt": "p", "stream": true});
        let response = post(format!("{}/v1/completions", fixture.url()), body).await;
        assert!(response.text().await.unwrap().ends_with("[DONE]\n\n"));
    }

    /// Splits a server-sent event stream into (event name, data) pairs, accepting LF or
    /// CRLF line ends as the SSE specification does.
    fn sse_events(text: &str) -> Vec<(Option<String>, Value)> {
        text.replace("\r\n", "\n")
            .split("\n\n")
            .filter(|event| !event.trim().is_empty())
            .map(|event| {
                let mut name = None;
                let mut data = None;
                for line in event.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(value).unwrap());
                    }
                }
                (name, data.expect("every event has data"))
            })
            .collect()
    }

    #[tokio::test]
    async fn anthropic_messages_plain_and_streamed() {
        let fixture = ProviderFixture::start().await.unwrap();
        fixture.reply_with(|request| format!("<{}>", request.prompt_or_chat().unwrap_or("?")));
        let url = format!("{}/v1/messages", fixture.vendor_root_url());
        let body = json!({"model": "claude-x", "max_tokens": 16, "system": "fill",
            "messages": [{"role": "user", "content": "abcdef"}]});
        let response = post(url.clone(), body).await;
        assert_eq!(response.status(), 200);
        let value: Value = response.json().await.unwrap();
        assert_eq!(value["type"], "message");
        assert_eq!(value["model"], "claude-x");
        assert_eq!(
            value["content"],
            json!([{"type": "text", "text": "<abcdef>"}])
        );
        assert_eq!(value["stop_reason"], "end_turn");
        assert_eq!(value["usage"]["input_tokens"], 2);
        assert_eq!(value["usage"]["output_tokens"], 2);
        assert_eq!(fixture.requests()[0].system_prompt(), Some("fill"));

        let body = json!({"model": "claude-x", "max_tokens": 16, "stream": true,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "xyz"}]}]});
        let response = post(url, body).await;
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let events = sse_events(&response.text().await.unwrap());
        for (name, data) in &events {
            assert_eq!(name.as_deref(), data["type"].as_str(), "{data}");
        }
        let names: Vec<&str> = events
            .iter()
            .map(|(name, _)| name.as_deref().unwrap())
            .filter(|name| *name != "content_block_delta")
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let joined: String = events
            .iter()
            .filter(|(_, data)| data["type"] == "content_block_delta")
            .map(|(_, data)| {
                assert_eq!(data["delta"]["type"], "text_delta");
                data["delta"]["text"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(joined, "<xyz>");
        let delta = &events[events.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert_eq!(delta["usage"]["output_tokens"], 2);
    }

    #[tokio::test]
    async fn gemini_generate_plain_and_streamed() {
        let fixture = ProviderFixture::start().await.unwrap();
        fixture.reply_with(|request| format!("<{}>", request.prompt_or_chat().unwrap_or("?")));
        let base = format!("{}/v1beta/models/gemini-x", fixture.vendor_root_url());
        let body = json!({
            "contents": [{"role": "user", "parts": [{"text": "abcdef"}]}],
            "systemInstruction": {"parts": [{"text": "fill"}]},
            "generationConfig": {"maxOutputTokens": 16},
        });
        let value: Value = post(format!("{base}:generateContent"), body.clone())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            value["candidates"][0]["content"]["parts"][0]["text"],
            "<abcdef>"
        );
        assert_eq!(value["candidates"][0]["finishReason"], "STOP");
        assert_eq!(value["usageMetadata"]["promptTokenCount"], 2);
        assert_eq!(value["usageMetadata"]["candidatesTokenCount"], 2);
        assert_eq!(value["modelVersion"], "gemini-x");
        let request = &fixture.requests()[0];
        assert_eq!(request.model(), Some("gemini-x"));
        assert_eq!(request.system_prompt(), Some("fill"));

        let response = post(
            format!("{base}:streamGenerateContent?alt=sse"),
            body.clone(),
        )
        .await;
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let text = response.text().await.unwrap();
        assert!(text.ends_with("}\r\n\r\n"), "{text:?}");
        let events = sse_events(&text);
        assert!(events.len() > 1);
        let joined: String = events
            .iter()
            .map(|(_, data)| {
                data["candidates"][0]["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(joined, "<abcdef>");
        let (_, last) = events.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 2);
        assert_eq!(fixture.requests()[1].query.as_deref(), Some("alt=sse"));

        // Without alt=sse, Gemini streams one JSON array.
        let value: Value = post(format!("{base}:streamGenerateContent"), body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(value.as_array().unwrap().len(), events.len());
    }

    #[tokio::test]
    async fn anthropic_and_gemini_errors_have_their_shapes() {
        let fixture = ProviderFixture::start().await.unwrap();
        let anthropic = format!("{}/v1/messages", fixture.vendor_root_url());
        let gemini = format!(
            "{}/v1beta/models/g:generateContent",
            fixture.vendor_root_url()
        );
        fixture.fail_with(529);
        let response = post(anthropic.clone(), json!({})).await;
        assert_eq!(response.status(), 529);
        let value: Value = response.json().await.unwrap();
        assert_eq!(value["type"], "error");
        assert_eq!(value["error"]["type"], "overloaded_error");
        assert_eq!(value["error"]["message"], "Overloaded");

        fixture.rate_limit(Duration::from_millis(1500));
        let response = post(anthropic, json!({})).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "2");
        let value: Value = response.json().await.unwrap();
        assert_eq!(value["error"]["type"], "rate_limit_error");
        let response = post(gemini.clone(), json!({})).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "2");
        let value: Value = response.json().await.unwrap();
        assert_eq!(value["error"]["code"], 429);
        assert_eq!(value["error"]["status"], "RESOURCE_EXHAUSTED");

        fixture.fail_with(429);
        let response = post(gemini.clone(), json!({})).await;
        assert_eq!(response.status(), 429);
        // Only rate_limit sends retry-after; fail_with clears it.
        assert!(response.headers().get("retry-after").is_none());
        fixture.fail_with(503);
        let response = post(gemini.clone(), json!({})).await;
        assert_eq!(response.status(), 503);
        let value: Value = response.json().await.unwrap();
        assert_eq!(value["error"]["status"], "UNAVAILABLE");

        fixture.recover();
        assert_eq!(post(gemini, json!({})).await.status(), 200);
    }

    #[tokio::test]
    async fn stalled_fixture_records_but_never_answers_and_recovers() {
        let fixture = ProviderFixture::start().await.unwrap();
        fixture.stall();
        let url = format!("{}/v1/messages", fixture.vendor_root_url());
        let client = reqwest::Client::new();
        let error = client
            .post(&url)
            .timeout(Duration::from_millis(200))
            .json(&json!({"model": "m", "messages": []}))
            .send()
            .await
            .unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
        assert_eq!(fixture.request_count(), 1);
        fixture.recover();
        assert_eq!(post(url, json!({"model": "m"})).await.status(), 200);
    }

    #[tokio::test]
    async fn slow_streams_pause_between_chunks() {
        let fixture = ProviderFixture::start().await.unwrap();
        fixture.reply_with_text("0123456789ab");
        fixture.set_chunk_delay(Duration::from_millis(60));
        let url = format!(
            "{}/v1beta/models/g:streamGenerateContent?alt=sse",
            fixture.vendor_root_url()
        );
        let started = std::time::Instant::now();
        let mut response = post(url, json!({"contents": []})).await;
        // The head comes at once; each of the three chunks after a pause.
        let head_after = started.elapsed();
        let mut chunks = 0;
        while response.chunk().await.unwrap().is_some() {
            chunks += 1;
        }
        assert!(chunks >= 3, "{chunks} chunks");
        assert!(head_after < Duration::from_millis(150), "{head_after:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(180),
            "{:?}",
            started.elapsed()
        );
    }
}
