//! The HTTP client for the Tandem cloud API, with back-off when it is down.
//!
//! One `reqwest::Client` is built at start-up and reused, so connections are pooled.
//! After the server is unreachable or answers 5xx, completions are skipped without
//! touching the network for an exponentially growing window (1 s doubling to 60 s):
//! a down server must not add a connect timeout to every keystroke. Any success resets
//! the window.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use tandem_shared::quota_headers::{self, TokensReading, WindowReading};
use tandem_shared::stream::{Delta, EVENT_DELTA, EVENT_DONE, EVENT_ERROR};
use tandem_shared::{
    ChatRequest, ChatResponse, CompletionRequest, CompletionResponse, ErrorBody, ErrorCode,
    MeResponse,
};

use crate::credentials::ApiKey;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long completions pause after a 429 that says nothing about when to retry.
pub const RATE_LIMIT_PAUSE_DEFAULT: Duration = Duration::from_secs(10);
/// The longest pause after a 429, whatever the server says.
pub const RATE_LIMIT_PAUSE_MAX: Duration = Duration::from_secs(15 * 60);

/// Where and as whom to call, taken fresh from the settings for every request.
#[derive(Debug, Clone)]
pub struct CloudTarget {
    pub server: String,
    pub api_key: ApiKey,
    pub timeout: Duration,
}

/// Why a call to the cloud API did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The server rejected the API key (401).
    #[error("the server rejected the API key")]
    Unauthorized,
    /// No connection could be made, or it broke before an answer came.
    #[error("cannot reach {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// No answer within the request timeout.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// The server answered with an error status.
    #[error("the server answered {status}: {}", .body.error.message)]
    Server { status: u16, body: Box<ErrorBody> },
    /// The server answered 2xx with a body that is not the expected JSON.
    #[error("unreadable answer from the server: {0}")]
    BadResponse(String),
    /// A recent failure put the client in back-off; the network was not used.
    #[error("skipped: backing off after a failure or a rate limit, for another {0:?}")]
    BackingOff(Duration),
}

/// Exponential back-off state. Time is passed in so tests need no sleeping.
#[derive(Debug, Default)]
pub struct Backoff {
    consecutive_failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    /// How long calls are still to be skipped at `now`, if at all.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|remaining| !remaining.is_zero())
    }

    /// Skips calls for `delay` from `now` (or longer, if a back-off already does), without
    /// counting a failure: the server asked to wait.
    pub fn pause(&mut self, now: Instant, delay: Duration) {
        let until = now + delay;
        self.until = Some(self.until.map_or(until, |current| current.max(until)));
    }

    /// Records a failure and returns the window it opens.
    pub fn record_failure(&mut self, now: Instant) -> Duration {
        let exponent = self.consecutive_failures.min(16);
        let delay = BACKOFF_INITIAL
            .saturating_mul(1u32 << exponent)
            .min(BACKOFF_MAX);
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.until = Some(now + delay);
        delay
    }

    pub fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.until = None;
    }
}

/// The quota an answer's headers report ([`tandem_shared::quota_headers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerQuota {
    pub windows: Vec<WindowReading>,
    pub tokens: Option<TokensReading>,
}

impl AnswerQuota {
    /// `None` when the answer carries no quota headers (a proxy's error page, an older
    /// cloud, an anonymous call).
    fn from_headers(headers: &reqwest::header::HeaderMap) -> Option<AnswerQuota> {
        let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let windows = text(quota_headers::RATELIMIT)
            .map(|ratelimit| {
                quota_headers::parse_request_windows(
                    text(quota_headers::RATELIMIT_POLICY),
                    ratelimit,
                )
            })
            .unwrap_or_default();
        let tokens = match (
            text(quota_headers::TOKENS_LIMIT),
            text(quota_headers::TOKENS_REMAINING),
            text(quota_headers::TOKENS_RESET),
        ) {
            (Some(limit), Some(remaining), Some(reset)) => {
                quota_headers::parse_tokens(limit, remaining, reset)
            }
            _ => None,
        };
        (!windows.is_empty() || tokens.is_some()).then_some(AnswerQuota { windows, tokens })
    }
}

/// Told about every call made with an API key, for the status an editor shows.
pub trait CallObserver: Send + Sync + std::fmt::Debug {
    /// A call went out.
    fn call_started(&self);
    /// A call (a streamed answer: its stream) is over, however it ended.
    fn call_ended(&self);
    /// The head of the answer came (`Ok`), or the call failed; with the quota the
    /// answer's headers report.
    fn answered(&self, server: &str, result: Result<(), &CloudError>, quota: Option<&AnswerQuota>);
}

/// Ends a call for the observer when dropped: after the body was read, or when a
/// streamed answer is dropped.
#[derive(Debug)]
struct CallGuard(Option<Arc<dyn CallObserver>>);

impl CallGuard {
    fn start(observer: Option<&Arc<dyn CallObserver>>) -> CallGuard {
        if let Some(observer) = observer {
            observer.call_started();
        }
        CallGuard(observer.cloned())
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(observer) = &self.0 {
            observer.call_ended();
        }
    }
}

/// The cloud API client.
#[derive(Debug)]
pub struct CloudClient {
    http: reqwest::Client,
    backoff: Mutex<Backoff>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl CloudClient {
    pub fn new() -> Result<CloudClient, CloudError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CloudError::Unreachable {
                server: String::new(),
                reason: format!("cannot build an HTTP client: {error}"),
            })?;
        Ok(CloudClient {
            http,
            backoff: Mutex::new(Backoff::default()),
            observer: None,
        })
    }

    /// Reports every keyed call to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> CloudClient {
        self.observer = Some(observer);
        self
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `POST {server}/v1/completions`, unless backing off.
    pub async fn complete(
        &self,
        target: &CloudTarget,
        request: &CompletionRequest,
    ) -> Result<CompletionResponse, CloudError> {
        // The guard is a temporary of this statement: the lock is gone before any await.
        if let Some(remaining) = self.backoff().remaining(Instant::now()) {
            return Err(CloudError::BackingOff(remaining));
        }
        let url = format!("{}/v1/completions", target.server);
        let result = self.send(target, self.http.post(&url).json(request)).await;
        match &result {
            Ok(_) => self.backoff().record_success(),
            Err(CloudError::Unreachable { .. }) => {
                let delay = self.backoff().record_failure(Instant::now());
                tracing::warn!(server = %target.server, ?delay, "cloud unreachable; backing off");
            }
            Err(CloudError::Server { status: 429, body }) => {
                // Asking again before the limit resets only earns another 429. Capped, so
                // a user whose tier was raised meanwhile is not kept waiting for hours.
                let wait = body
                    .error
                    .retry_after_secs
                    .map_or(RATE_LIMIT_PAUSE_DEFAULT, Duration::from_secs)
                    .min(RATE_LIMIT_PAUSE_MAX);
                self.backoff().pause(Instant::now(), wait);
                tracing::warn!(server = %target.server, ?wait, "rate limited; pausing completions");
            }
            Err(CloudError::Server { status, .. }) if *status >= 500 => {
                let delay = self.backoff().record_failure(Instant::now());
                tracing::warn!(server = %target.server, status, ?delay, "cloud server error; backing off");
            }
            Err(_) => {}
        }
        result
    }

    /// `GET {server}/v1/me`: who the key belongs to. Not subject to back-off.
    pub async fn me(&self, target: &CloudTarget) -> Result<MeResponse, CloudError> {
        let url = format!("{}/v1/me", target.server);
        self.send(target, self.http.get(&url)).await
    }

    /// `POST {server}/oauth/device/code`: starts a Device Authorization Grant (RFC 8628).
    pub async fn start_device_authorization(
        &self,
        server: &str,
        timeout: Duration,
    ) -> Result<DeviceAuthorization, CloudError> {
        let form = [
            ("client_id", DEVICE_CLIENT_ID),
            ("scope", "completions chat"),
        ];
        let (status, bytes) = self
            .post_form(server, "oauth/device/code", &form, timeout)
            .await?;
        if !status.is_success() {
            return Err(oauth_failure(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|error| CloudError::BadResponse(error.to_string()))
    }

    /// `POST {server}/oauth/token`: one poll for the key of a device grant.
    pub async fn poll_device_token(
        &self,
        server: &str,
        device_code: &str,
        timeout: Duration,
    ) -> Result<DevicePoll, CloudError> {
        let form = [
            ("grant_type", DEVICE_GRANT_TYPE),
            ("device_code", device_code),
            ("client_id", DEVICE_CLIENT_ID),
        ];
        let (status, bytes) = self
            .post_form(server, "oauth/token", &form, timeout)
            .await?;
        if status.is_success() {
            #[derive(serde::Deserialize)]
            struct Granted {
                access_token: String,
            }
            let granted: Granted = serde_json::from_slice(&bytes)
                .map_err(|error| CloudError::BadResponse(error.to_string()))?;
            return Ok(DevicePoll::Granted(granted.access_token));
        }
        let error = serde_json::from_slice::<OAuthErrorBody>(&bytes).ok();
        Ok(match error.as_ref().map(|body| body.error.as_str()) {
            Some("authorization_pending") => DevicePoll::Pending,
            Some("slow_down") => DevicePoll::SlowDown,
            Some("access_denied") => DevicePoll::Denied,
            Some("expired_token") => DevicePoll::Expired,
            _ => return Err(oauth_failure(status.as_u16(), &bytes)),
        })
    }

    /// POSTs a form to `{server}/{path}` without a key; the status and body, whatever
    /// the status (OAuth endpoints answer errors in their own shape).
    async fn post_form(
        &self,
        server: &str,
        path: &str,
        form: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), CloudError> {
        let classify = |error| classify_anonymous(server, timeout, error);
        let request_id = new_request_id();
        let traceparent = traceparent(&request_id);
        tracing::debug!(%request_id, %traceparent, path, "calling the cloud");
        let response = self
            .http
            .post(format!("{server}/{path}"))
            .header(REQUEST_ID, &request_id)
            .header(TRACEPARENT, &traceparent)
            .form(form)
            .timeout(timeout)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(classify)?;
        Ok((status, bytes.to_vec()))
    }

    /// `DELETE {server}/v1/keys/current`: revokes the key making the request.
    pub async fn revoke_current_key(&self, target: &CloudTarget) -> Result<(), CloudError> {
        let url = format!("{}/v1/keys/current", target.server);
        let _: serde_json::Value = self.send(target, self.http.delete(&url)).await?;
        Ok(())
    }

    /// `POST {server}/v1/chat`, the whole answer at once. Not subject to back-off: the
    /// user asked for it, and a failure is reported to them.
    pub async fn chat(
        &self,
        target: &CloudTarget,
        request: &ChatRequest,
    ) -> Result<ChatResponse, CloudError> {
        let url = format!("{}/v1/chat", target.server);
        self.send(target, self.http.post(&url).json(request)).await
    }

    /// `POST {server}/v1/chat` with `"stream": true`: the answer's text as it is written,
    /// then the whole answer. `target.timeout` bounds the wait for the answer to start and
    /// each pause within it, not the whole answer. Dropping the stream closes the
    /// connection, which stops the model upstream.
    pub async fn chat_stream(
        &self,
        target: &CloudTarget,
        request: &ChatRequest,
    ) -> Result<ChatEvents, CloudError> {
        let url = format!("{}/v1/chat", target.server);
        let mut request = request.clone();
        request.stream = true;
        let busy = CallGuard::start(self.observer.as_ref());
        let response = self
            .open(target, self.http.post(&url).json(&request), None)
            .await?;
        let is_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        if !is_stream {
            // A server or proxy that answered in one piece.
            let bytes = response
                .bytes()
                .await
                .map_err(|error| classify(target, error))?;
            let answer: ChatResponse = serde_json::from_slice(&bytes)
                .map_err(|error| CloudError::BadResponse(error.to_string()))?;
            return Ok(ChatEvents::whole(answer, target.timeout));
        }
        Ok(ChatEvents {
            events: Some(response.bytes_stream().eventsource().boxed()),
            pending: None,
            idle: target.timeout,
            _busy: busy,
        })
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        target: &CloudTarget,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CloudError> {
        let _busy = CallGuard::start(self.observer.as_ref());
        let response = self.open(target, request, Some(target.timeout)).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|error| classify(target, error))?;
        serde_json::from_slice(&bytes).map_err(|error| CloudError::BadResponse(error.to_string()))
    }

    /// Sends `request` with the key and returns a 2xx response unread; other statuses
    /// become errors with the server's error body. The observer hears how it went.
    async fn open(
        &self,
        target: &CloudTarget,
        request: reqwest::RequestBuilder,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, CloudError> {
        let mut quota = None;
        let result = self
            .open_unobserved(target, request, timeout, &mut quota)
            .await;
        if let Some(observer) = &self.observer {
            observer.answered(&target.server, result.as_ref().map(|_| ()), quota.as_ref());
        }
        result
    }

    /// [`Self::open`] without the observer; sets `quota` from the answer's headers.
    async fn open_unobserved(
        &self,
        target: &CloudTarget,
        request: reqwest::RequestBuilder,
        timeout: Option<Duration>,
        quota: &mut Option<AnswerQuota>,
    ) -> Result<reqwest::Response, CloudError> {
        let request_id = new_request_id();
        let traceparent = traceparent(&request_id);
        let mut request = request
            .bearer_auth(target.api_key.expose())
            .header(REQUEST_ID, &request_id)
            .header(TRACEPARENT, &traceparent);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let (client, request) = request.build_split();
        let request = request.map_err(|error| classify(target, error))?;
        let (method, path) = (request.method().clone(), request.url().path().to_owned());
        tracing::debug!(%request_id, %traceparent, %method, path, "calling the cloud");
        let started = Instant::now();
        let sent = client.execute(request);
        // Without a whole-request timeout the wait for the answer's head is still bounded.
        let response = tokio::time::timeout(target.timeout, sent)
            .await
            .map_err(|_| {
                tracing::info!(%request_id, %method, path, "no answer from the cloud in time");
                CloudError::Timeout(target.timeout)
            })?
            .map_err(|error| classify(target, error))?;
        let status = response.status();
        *quota = AnswerQuota::from_headers(response.headers());
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if status.is_success() {
            tracing::debug!(%request_id, status = status.as_u16(), elapsed_ms, "cloud answered");
        } else {
            // The id the cloud logged the request under: what an operator searches for.
            tracing::info!(%request_id, %method, path, status = status.as_u16(), elapsed_ms, "cloud refused");
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(CloudError::Unauthorized);
        }
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| classify(target, error))?;
        let body = serde_json::from_slice::<ErrorBody>(&bytes)
            .unwrap_or_else(|_| unreadable_error_body(status.as_u16()));
        Err(CloudError::Server {
            status: status.as_u16(),
            body: Box::new(body),
        })
    }
}

/// The header naming a request, logged by the cloud on every line about it: the same id
/// in this server's log and the cloud's follows one completion from editor to provider.
pub const REQUEST_ID: &str = "x-request-id";

/// The W3C Trace Context header (<https://www.w3.org/TR/trace-context/>): a cloud that
/// exports traces continues this trace, so the editor's request and the cloud's spans
/// share one trace id.
pub const TRACEPARENT: &str = "traceparent";

/// `traceparent` for a request: `00-<trace id>-<parent id>-00`, both ids hashes (XXH3) of
/// the request id, so the trace of a request in this server's log is known from its id
/// alone. The sampled flag is off: nothing is recorded here, so the cloud's sampling
/// ratio decides. Hashes rather than the UUID's own bits: samplers take a trace id's low
/// bits as random, and a version 4 UUID's variant bits are fixed.
pub fn traceparent(request_id: &str) -> String {
    use xxhash_rust::xxh3::{xxh3_128, xxh3_64_with_seed};
    // All-zero ids are invalid (§3.2.2.3, §3.2.2.4); a hash of zero is one in 2^64.
    let trace_id = xxh3_128(request_id.as_bytes()).max(1);
    let parent_id = xxh3_64_with_seed(request_id.as_bytes(), 1).max(1);
    format!("00-{trace_id:032x}-{parent_id:016x}-00")
}

/// A fresh request id: a random (version 4) UUID. The bits come from the standard
/// library's randomly keyed SipHash, so no random-number crate is needed; a counter
/// keeps two ids of one process apart even if the keys were to repeat.
pub fn new_request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let keys = std::collections::hash_map::RandomState::new();
    let half = |salt: u64| {
        let mut hasher = keys.build_hasher();
        hasher.write_u64(count);
        hasher.write_u64(salt);
        hasher.finish()
    };
    let bits = (u128::from(half(1)) << 64) | u128::from(half(2));
    // Version 4, variant 10 (RFC 9562 §5.4).
    let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The OAuth client the CLI is to the server.
pub const DEVICE_CLIENT_ID: &str = "tandem-cli";
const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The answer that starts a device grant (RFC 8628 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// Seconds the codes stay valid.
    pub expires_in: u64,
    /// Seconds between polls (RFC 8628 §3.2: 5 when absent).
    #[serde(default = "default_poll_interval")]
    pub interval: u64,
}

fn default_poll_interval() -> u64 {
    5
}

/// One poll's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    Granted(String),
    Pending,
    /// Poll less often: 5 seconds more between polls (RFC 8628 §3.5).
    SlowDown,
    Denied,
    Expired,
}

#[derive(Debug, serde::Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// An OAuth error answer as a server error carrying its description.
fn oauth_failure(status: u16, bytes: &[u8]) -> CloudError {
    let message = match serde_json::from_slice::<OAuthErrorBody>(bytes) {
        Ok(body) => match body.error_description {
            Some(description) => format!("{}: {description}", body.error),
            None => body.error,
        },
        Err(_) => format!("HTTP {status}"),
    };
    CloudError::Server {
        status,
        body: Box::new(ErrorBody::new(
            ErrorCode::ALL
                .into_iter()
                .find(|code| code.http_status() == status)
                .unwrap_or(ErrorCode::Internal),
            message,
        )),
    }
}

fn classify_anonymous(server: &str, timeout: Duration, error: reqwest::Error) -> CloudError {
    if error.is_timeout() {
        CloudError::Timeout(timeout)
    } else if error.is_decode() || error.is_body() {
        CloudError::BadResponse(error.without_url().to_string())
    } else {
        CloudError::Unreachable {
            server: server.to_owned(),
            reason: source_chain(&error.without_url()),
        }
    }
}

/// What a transport error means to the user.
fn classify(target: &CloudTarget, error: reqwest::Error) -> CloudError {
    classify_anonymous(&target.server, target.timeout, error)
}

/// One event of a streamed chat answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// Text to append.
    Delta(String),
    /// The whole answer, usage included; the last event.
    Done(ChatResponse),
}

type SseEvents = futures::stream::BoxStream<
    'static,
    Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>,
>;

/// The events of a streamed chat answer ([`CloudClient::chat_stream`]).
pub struct ChatEvents {
    events: Option<SseEvents>,
    /// An answer that came whole, handed out as its only event.
    pending: Option<ChatResponse>,
    /// Longest pause between events.
    idle: Duration,
    /// Keeps the call counted as running until the stream is dropped.
    _busy: CallGuard,
}

impl std::fmt::Debug for ChatEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatEvents")
            .field("streaming", &self.events.is_some())
            .finish_non_exhaustive()
    }
}

impl ChatEvents {
    fn whole(answer: ChatResponse, idle: Duration) -> ChatEvents {
        ChatEvents {
            events: None,
            pending: Some(answer),
            idle,
            _busy: CallGuard(None),
        }
    }

    /// The next event; `None` after [`ChatEvent::Done`]. A stream that ends without its
    /// final event, an `error` event, or a pause longer than the timeout is an error.
    pub async fn next(&mut self) -> Option<Result<ChatEvent, CloudError>> {
        if let Some(answer) = self.pending.take() {
            return Some(Ok(ChatEvent::Done(answer)));
        }
        let events = self.events.as_mut()?;
        loop {
            let next = match tokio::time::timeout(self.idle, events.next()).await {
                Ok(next) => next,
                Err(_) => {
                    self.events = None;
                    return Some(Err(CloudError::Timeout(self.idle)));
                }
            };
            let event = match next {
                Some(Ok(event)) => event,
                Some(Err(error)) => {
                    self.events = None;
                    return Some(Err(CloudError::BadResponse(format!(
                        "the answer's stream broke off: {error}"
                    ))));
                }
                None => {
                    self.events = None;
                    return Some(Err(CloudError::BadResponse(
                        "the answer's stream ended before its final event".to_owned(),
                    )));
                }
            };
            let parsed = match event.event.as_str() {
                EVENT_DELTA => serde_json::from_str::<Delta>(&event.data)
                    .map(|delta| ChatEvent::Delta(delta.text)),
                EVENT_DONE => {
                    self.events = None;
                    serde_json::from_str::<ChatResponse>(&event.data).map(ChatEvent::Done)
                }
                EVENT_ERROR => {
                    self.events = None;
                    let body = serde_json::from_str::<ErrorBody>(&event.data)
                        .unwrap_or_else(|_| unreadable_error_body(500));
                    let status = body.code().map_or(500, ErrorCode::http_status);
                    return Some(Err(CloudError::Server {
                        status,
                        body: Box::new(body),
                    }));
                }
                // Comments, keep-alives, and event kinds added later.
                _ => continue,
            };
            return Some(parsed.map_err(|error| {
                self.events = None;
                CloudError::BadResponse(format!("unreadable stream event: {error}"))
            }));
        }
    }
}

/// Stands in for the JSON error body when a proxy or a crashed server sent something else.
fn unreadable_error_body(status: u16) -> ErrorBody {
    let code = ErrorCode::ALL
        .into_iter()
        .find(|code| code.http_status() == status)
        .unwrap_or(ErrorCode::Internal);
    ErrorBody::new(code, format!("HTTP {status} without a Tandem error body"))
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute() {
        let mut backoff = Backoff::default();
        let start = Instant::now();
        assert_eq!(backoff.remaining(start), None);
        let delays: Vec<u64> = (0..9)
            .map(|_| backoff.record_failure(start).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff.remaining(start), Some(Duration::from_secs(60)));
        assert_eq!(backoff.remaining(start + Duration::from_secs(61)), None);
        backoff.record_success();
        assert_eq!(backoff.remaining(start), None);
        assert_eq!(
            backoff.record_failure(start),
            Duration::from_secs(1),
            "reset on success"
        );
    }

    #[test]
    fn backoff_survives_many_failures() {
        let mut backoff = Backoff::default();
        for _ in 0..1000 {
            backoff.record_failure(Instant::now());
        }
        assert_eq!(backoff.record_failure(Instant::now()), BACKOFF_MAX);
    }

    #[test]
    fn a_pause_never_shortens_a_longer_back_off() {
        let now = Instant::now();
        let mut backoff = Backoff::default();
        backoff.pause(now, Duration::from_secs(30));
        backoff.pause(now, Duration::from_secs(5));
        assert_eq!(backoff.remaining(now), Some(Duration::from_secs(30)));
        // A pause is not a failure: the next failure starts at the initial delay.
        assert_eq!(backoff.record_failure(now), BACKOFF_INITIAL);
    }

    #[tokio::test]
    async fn a_rate_limit_pauses_completions_for_as_long_as_the_server_says() {
        let (server, hits) = fixed_server(
            429,
            r#"{"error":{"code":"rate_limited","message":"hourly quota used","limit":"requests_per_hour","retry_after_secs":120}}"#,
        )
        .await;
        let client = CloudClient::new().unwrap();
        let target = target(server);
        match client.complete(&target, &request()).await {
            Err(CloudError::Server { status: 429, body }) => {
                assert_eq!(body.error.retry_after_secs, Some(120));
            }
            other => panic!("expected a 429, got {other:?}"),
        }
        match client.complete(&target, &request()).await {
            Err(CloudError::BackingOff(remaining)) => {
                assert!(remaining > Duration::from_secs(100), "{remaining:?}");
            }
            other => panic!("expected to be paused, got {other:?}"),
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1, "the pause used no network");
    }

    /// A one-shot HTTP server answering every request with `status` and `body`,
    /// counting the requests it sees.
    async fn fixed_server(status: u16, body: &'static str) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buffer = vec![0u8; 65536];
                let _ = socket.read(&mut buffer).await;
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        (format!("http://{address}"), hits)
    }

    fn target(server: String) -> CloudTarget {
        CloudTarget {
            server,
            api_key: ApiKey::new("tdm_test_key_123456").unwrap(),
            timeout: Duration::from_secs(5),
        }
    }

    fn request() -> CompletionRequest {
        CompletionRequest {
            language: "rust".into(),
            path: "a.rs".into(),
            prefix: "fn".into(),
            suffix: String::new(),
            max_tokens: None,
            temperature: None,
            stop: vec![],
            context: Default::default(),
            file_size: None,
            stream: false,
        }
    }

    #[tokio::test]
    async fn server_errors_open_a_backoff_window_that_skips_the_network() {
        let (server, hits) = fixed_server(
            503,
            r#"{"error":{"code":"provider_unavailable","message":"down"}}"#,
        )
        .await;
        let client = CloudClient::new().unwrap();
        let target = target(server);
        match client.complete(&target, &request()).await {
            Err(CloudError::Server { status: 503, body }) => {
                assert_eq!(body.code(), Some(ErrorCode::ProviderUnavailable));
            }
            other => panic!("expected a 503, got {other:?}"),
        }
        assert!(matches!(
            client.complete(&target, &request()).await,
            Err(CloudError::BackingOff(_))
        ));
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "the second call never reached the network"
        );
    }

    #[tokio::test]
    async fn unreachable_server_backs_off() {
        // Bind and drop a listener to get a port nobody listens on.
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = CloudClient::new().unwrap();
        let target = target(format!("http://{address}"));
        assert!(matches!(
            client.complete(&target, &request()).await,
            Err(CloudError::Unreachable { .. })
        ));
        assert!(matches!(
            client.complete(&target, &request()).await,
            Err(CloudError::BackingOff(_))
        ));
    }

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let ids: Vec<String> = (0..100).map(|_| new_request_id()).collect();
        for id in &ids {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
            assert!(
                id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
                "{id}"
            );
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn traceparents_are_valid_and_follow_the_request_id() {
        let id = "3f2c8a4e-1b7d-4c5e-9a0f-6d8e2b1c4a7f";
        let header = traceparent(id);
        assert_eq!(header, traceparent(id));
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts.len(), 4, "{header}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1].len(), 32, "{header}");
        assert_eq!(parts[2].len(), 16, "{header}");
        assert_eq!(parts[3], "00", "not sampled: the cloud's ratio decides");
        for id in [parts[1], parts[2]] {
            assert!(
                id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
                "{header}"
            );
            assert!(id.chars().any(|c| c != '0'), "{header}");
        }
        assert_ne!(traceparent(&new_request_id()), header);
    }

    /// The cloud logs every line of a request with this id; without it a completion
    /// could not be followed from the editor's log to the provider.
    #[tokio::test]
    async fn every_call_sends_a_request_id() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (heads, mut received) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = vec![0u8; 65536];
                let read = socket.read(&mut buffer).await.unwrap_or(0);
                let _ = heads.send(String::from_utf8_lossy(&buffer[..read]).into_owned());
                let body = r#"{"error":{"code":"internal","message":"x"}}"#;
                let response = format!(
                    "HTTP/1.1 500 X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        let client = CloudClient::new().unwrap();
        let target = target(format!("http://{address}"));
        let _ = client.me(&target).await;
        let _ = client.me(&target).await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let head = received.recv().await.unwrap();
            let id = head
                .lines()
                .find_map(|line| line.strip_prefix("x-request-id: "))
                .unwrap_or_else(|| panic!("no request id in:\n{head}"))
                .to_owned();
            assert_eq!(id.len(), 36, "{id}");
            // The cloud's trace of the request continues the one named after its id.
            let trace = head
                .lines()
                .find_map(|line| line.strip_prefix("traceparent: "))
                .unwrap_or_else(|| panic!("no traceparent in:\n{head}"));
            assert_eq!(trace, traceparent(&id));
            ids.push(id);
        }
        assert_ne!(ids[0], ids[1]);
    }

    #[tokio::test]
    async fn unauthorized_is_its_own_error_and_does_not_back_off() {
        let (server, hits) = fixed_server(
            401,
            r#"{"error":{"code":"unauthorized","message":"bad key"}}"#,
        )
        .await;
        let client = CloudClient::new().unwrap();
        let target = target(server);
        for _ in 0..2 {
            assert!(matches!(
                client.complete(&target, &request()).await,
                Err(CloudError::Unauthorized)
            ));
        }
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn garbage_bodies_are_typed_errors() {
        let (server, _) = fixed_server(200, "not json").await;
        let client = CloudClient::new().unwrap();
        assert!(matches!(
            client.complete(&target(server), &request()).await,
            Err(CloudError::BadResponse(_))
        ));
        let (server, _) = fixed_server(502, "<html>bad gateway</html>").await;
        match client.me(&target(server)).await {
            Err(CloudError::Server { status: 502, body }) => {
                assert_eq!(body.code(), Some(ErrorCode::ProviderError));
            }
            other => panic!("expected a 502, got {other:?}"),
        }
    }
}
