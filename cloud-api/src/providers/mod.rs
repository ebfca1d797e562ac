//! Model providers: the [`Provider`] trait, its errors, and the registry built from config.
//!
//! Each provider turns a validated [`CompletionRequest`] into text. Network providers share
//! one `reqwest::Client` (connection reuse) and the error mapping in [`HttpTarget`]: clients
//! learn which provider failed and how (status, timeout, unreachable); the vendor's own
//! message goes to the log only, since vendors echo request details and masked keys in it.

pub mod anthropic;
pub mod google;
pub mod local;
pub mod ollama;
pub mod openai;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use reqwest::header::HeaderValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tandem_shared::{CompletionRequest, ErrorCode};

pub use self::stream::{PieceStream, StreamPiece};
use crate::config::{Config, ProviderConfig, ProviderKind};

/// Generated-token budget when the request sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 128;
/// Sampling temperature when the request sets none: low, since completions should be
/// predictable.
pub const DEFAULT_TEMPERATURE: f32 = 0.2;
/// Time to establish a TCP (and TLS) connection to a provider.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest vendor error message written to the log.
const MAX_VENDOR_MESSAGE_CHARS: usize = 500;

/// What a provider produced for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderCompletion {
    /// Text to insert at the cursor.
    pub text: String,
    /// Why generation stopped, when the provider says.
    pub finish_reason: Option<String>,
    /// Model that answered, as the provider reports it (or as configured).
    pub model: String,
    /// Prompt tokens, when the provider counts them.
    pub prompt_tokens: Option<u32>,
    /// Generated tokens, when the provider counts them.
    pub completion_tokens: Option<u32>,
}

/// A conversation for a chat model, built by [`crate::prompt`] for one request: the
/// same for every vendor, each adapter sends it in its own wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatPrompt {
    pub system: String,
    /// In order, starting and ending with the user's.
    pub turns: Vec<Turn>,
    pub max_tokens: u32,
    pub temperature: f32,
    pub stop: Vec<String>,
    /// The answer is bare code: markdown fences the model adds anyway are removed.
    pub bare_code: bool,
}

/// One message of a [`ChatPrompt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

impl Turn {
    pub fn user(content: impl Into<String>) -> Turn {
        Turn {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Turn {
        Turn {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    /// The name OpenAI, Ollama and Anthropic use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message as OpenAI, Ollama and Anthropic take it: `{"role", "content"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct WireMessage<'a> {
    pub(crate) role: &'a str,
    pub(crate) content: &'a str,
}

impl ChatPrompt {
    /// The turns as wire messages, after a `system` message when `with_system` (OpenAI and
    /// Ollama carry it as the first message; Anthropic in a field of its own).
    pub(crate) fn wire_messages(&self, with_system: bool) -> Vec<WireMessage<'_>> {
        let system = with_system.then_some(WireMessage {
            role: "system",
            content: &self.system,
        });
        system
            .into_iter()
            .chain(self.turns.iter().map(|turn| WireMessage {
                role: turn.role.as_str(),
                content: &turn.content,
            }))
            .collect()
    }
}

/// A model server completions can be asked of.
pub trait Provider: Send + Sync {
    /// The configured name, reported as `provider` in answers.
    fn name(&self) -> &str;
    /// The configured model.
    fn model(&self) -> &str;
    /// Completes the code at the cursor. `request` has already passed validation.
    fn complete<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<ProviderCompletion, ProviderError>>;

    /// Completes the code at the cursor, handing out text as the model writes it. The
    /// future resolves once the provider accepted the request; errors before that (a
    /// refused request, an unreachable server) come from the future, errors after it end
    /// the stream. Providers that cannot stream answer with one piece.
    fn stream<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<PieceStream, ProviderError>> {
        Box::pin(async move {
            let completion = self.complete(request).await?;
            let piece: PieceStream =
                futures::stream::once(async move { Ok(StreamPiece::whole(completion)) }).boxed();
            Ok(piece)
        })
    }

    /// Whether the provider holds conversations ([`Provider::chat`]): the network
    /// adapters do; the built-in `local` provider only completes code.
    fn can_chat(&self) -> bool {
        false
    }

    /// Answers a conversation (explanations, code actions, questions). The text is the
    /// model's, cleaned as `prompt.bare_code` asks and cut at its stop sequences.
    fn chat<'a>(
        &'a self,
        _prompt: &'a ChatPrompt,
    ) -> BoxFuture<'a, Result<ProviderCompletion, ProviderError>> {
        Box::pin(async move {
            Err(ProviderError::Unsupported {
                provider: self.name().to_owned(),
            })
        })
    }

    /// Like [`Provider::chat`], handing out text as the model writes it (see
    /// [`Provider::stream`]).
    fn chat_stream<'a>(
        &'a self,
        prompt: &'a ChatPrompt,
    ) -> BoxFuture<'a, Result<PieceStream, ProviderError>> {
        Box::pin(async move {
            let completion = self.chat(prompt).await?;
            let piece: PieceStream =
                futures::stream::once(async move { Ok(StreamPiece::whole(completion)) }).boxed();
            Ok(piece)
        })
    }
}

/// How a provider call failed. `Display` is the message clients see: it names the provider
/// and the kind of failure, never the vendor's message, a key or a transport-level cause.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with a non-2xx status other than 429 (HTTP 502).
    #[error("provider `{provider}` returned HTTP {status}")]
    Status {
        provider: String,
        status: u16,
        message: String,
    },
    /// The provider answered 429 Too Many Requests (HTTP 503).
    #[error("provider `{provider}` is rate limiting requests (HTTP 429)")]
    RateLimited { provider: String, message: String },
    /// No connection could be made, or it broke before an answer (HTTP 503).
    #[error("provider `{provider}` is unreachable")]
    Unreachable {
        provider: String,
        #[source]
        source: reqwest::Error,
    },
    /// No complete answer within the provider's `timeout_ms` (HTTP 504).
    #[error("provider `{provider}` did not answer within {timeout_ms} ms")]
    Timeout { provider: String, timeout_ms: u64 },
    /// A 2xx answer that is not the vendor's documented JSON (HTTP 502).
    #[error("provider `{provider}` returned an unreadable response")]
    InvalidResponse { provider: String, detail: String },
    /// The provider cannot hold a conversation (the built-in `local` provider); routing
    /// leaves such providers out of chat plans, so this is a configuration gap (HTTP 502).
    #[error("provider `{provider}` cannot answer chat requests")]
    Unsupported { provider: String },
}

impl ProviderError {
    /// The shared error code (and so the HTTP status) this failure is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProviderError::Status { .. }
            | ProviderError::InvalidResponse { .. }
            | ProviderError::Unsupported { .. } => ErrorCode::ProviderError,
            ProviderError::RateLimited { .. } | ProviderError::Unreachable { .. } => {
                ErrorCode::ProviderUnavailable
            }
            ProviderError::Timeout { .. } => ErrorCode::ProviderTimeout,
        }
    }

    /// The message for the client.
    pub fn public_message(&self) -> String {
        self.to_string()
    }

    /// The message for the log: the public one plus the cause. Contains no key.
    pub fn log_message(&self) -> String {
        match self {
            ProviderError::Unreachable { source, .. } => {
                format!("{self}: {}", error_chain(source))
            }
            ProviderError::InvalidResponse { detail, .. } => format!("{self}: {detail}"),
            ProviderError::Status { message, .. } | ProviderError::RateLimited { message, .. } => {
                format!("{self}: {message}")
            }
            ProviderError::Timeout { .. } | ProviderError::Unsupported { .. } => self.to_string(),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why the provider registry could not be built at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    /// `api_key_env` names a variable that is not set (or is empty).
    #[error(
        "provider `{provider}`: environment variable `{variable}` (named by api_key_env) is not set"
    )]
    MissingKey { provider: String, variable: String },
    /// The key holds characters an HTTP header cannot carry (a stray control character
    /// from the shell or a secrets file, say). The message never shows the key.
    #[error(
        "provider `{provider}`: environment variable `{variable}` (named by api_key_env) \
         holds characters an HTTP header cannot carry"
    )]
    InvalidKey { provider: String, variable: String },
    /// The HTTP client could not be created (TLS setup).
    #[error("cannot create the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// A provider's API key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderKey(String);

impl ProviderKey {
    pub fn new(key: impl Into<String>) -> ProviderKey {
        ProviderKey(key.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }

    /// The key as a header value marked sensitive, so HTTP libraries never print it;
    /// `None` when it holds characters a header cannot carry.
    fn header_value(&self, prefix: &str) -> Option<HeaderValue> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", self.0)).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// How a provider's API key travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer <key>` (Ollama behind a proxy, OpenAI and compatibles).
    Bearer,
    /// A header of its own carrying the bare key: `x-api-key` (Anthropic),
    /// `x-goog-api-key` (Google; a key in the URL query would end up in logs).
    Named(&'static str),
}

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderKey([redacted])")
    }
}

/// The providers built from config; requests go to the first.
#[derive(Clone)]
pub struct ProviderRegistry {
    providers: Vec<Arc<dyn Provider>>,
}

impl std::fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.providers.iter().map(|provider| provider.name()))
            .finish()
    }
}

impl ProviderRegistry {
    /// Builds every configured provider, reading keys through `env` (the process
    /// environment in production). With none configured, the built-in `local` provider.
    pub fn from_config(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ProviderRegistry, ProviderSetupError> {
        if config.providers.is_empty() {
            return Ok(ProviderRegistry {
                providers: vec![Arc::new(local::LocalProvider::builtin())],
            });
        }
        // One client for all providers: it pools connections per host.
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(ProviderSetupError::Client)?;
        let providers = config
            .providers
            .iter()
            .map(|provider_config| build_provider(provider_config, &client, env))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProviderRegistry { providers })
    }

    /// A registry holding exactly these providers (tests, embedding).
    pub fn from_providers(providers: Vec<Arc<dyn Provider>>) -> ProviderRegistry {
        ProviderRegistry { providers }
    }

    /// The provider requests go to.
    pub fn primary(&self) -> Option<&Arc<dyn Provider>> {
        self.providers.first()
    }

    /// Every provider, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.providers.iter()
    }
}

fn build_provider(
    config: &ProviderConfig,
    client: &reqwest::Client,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Provider>, ProviderSetupError> {
    let api_key = match &config.api_key_env {
        Some(variable) => match env(variable) {
            Some(value) if !value.trim().is_empty() => {
                let key = ProviderKey::new(value.trim());
                // Checked here so a bad key stops the start instead of failing every
                // request as if the provider were unreachable.
                if key.header_value("").is_none() {
                    return Err(ProviderSetupError::InvalidKey {
                        provider: config.name.clone(),
                        variable: variable.clone(),
                    });
                }
                Some(key)
            }
            _ => {
                return Err(ProviderSetupError::MissingKey {
                    provider: config.name.clone(),
                    variable: variable.clone(),
                })
            }
        },
        None => None,
    };
    let key_header = match config.kind {
        ProviderKind::Anthropic => KeyHeader::Named(anthropic::KEY_HEADER),
        ProviderKind::Google => KeyHeader::Named(google::KEY_HEADER),
        ProviderKind::Ollama | ProviderKind::OpenAi | ProviderKind::Local => KeyHeader::Bearer,
    };
    let target = HttpTarget {
        provider: config.name.clone(),
        client: client.clone(),
        api_key,
        key_header,
        extra_headers: Vec::new(),
        timeout: Duration::from_millis(config.timeout_ms()),
    };
    // Validation guarantees a model for the network kinds, and a base_url for those
    // without a default.
    let base_url = config
        .base_url
        .clone()
        .or_else(|| config.kind.default_base_url().map(str::to_owned))
        .unwrap_or_default();
    let model = config.model.clone().unwrap_or_default();
    Ok(match config.kind {
        ProviderKind::Ollama => Arc::new(ollama::OllamaProvider::new(
            target,
            &base_url,
            model,
            config.fim_family(),
        )),
        ProviderKind::OpenAi => Arc::new(openai::OpenAiProvider::new(
            target,
            &base_url,
            model,
            config.endpoint(),
            config.fim_family(),
        )),
        ProviderKind::Anthropic => {
            Arc::new(anthropic::AnthropicProvider::new(target, &base_url, model))
        }
        ProviderKind::Google => Arc::new(google::GoogleProvider::new(target, &base_url, model)),
        ProviderKind::Local => Arc::new(local::LocalProvider::new(
            config.name.clone(),
            config.model.clone(),
        )),
    })
}

/// The max_tokens a provider should use.
pub(crate) fn max_tokens(request: &CompletionRequest) -> u32 {
    request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)
}

/// The temperature a provider should use.
pub(crate) fn temperature(request: &CompletionRequest) -> f32 {
    request.temperature.unwrap_or(DEFAULT_TEMPERATURE)
}

/// Joins a configured base URL and an endpoint path with exactly one `/`.
pub(crate) fn join_url(base_url: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base_url.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// One network provider's connection settings and the shared HTTP error mapping.
#[derive(Debug, Clone)]
pub(crate) struct HttpTarget {
    provider: String,
    client: reqwest::Client,
    api_key: Option<ProviderKey>,
    key_header: KeyHeader,
    /// Headers every request of this provider carries (an API version, say).
    extra_headers: Vec<(&'static str, &'static str)>,
    timeout: Duration,
}

impl HttpTarget {
    /// Sends `name: value` with every request of this provider.
    pub(crate) fn with_header(mut self, name: &'static str, value: &'static str) -> HttpTarget {
        self.extra_headers.push((name, value));
        self
    }

    /// POSTs `body` as JSON to `url` and decodes a 2xx answer as `T`. Non-2xx answers are
    /// mapped to [`ProviderError`], with the vendor message taken from the body by
    /// `vendor_message`.
    pub(crate) async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
        vendor_message: fn(&[u8]) -> Option<String>,
    ) -> Result<T, ProviderError> {
        let response = self
            .send(url, body, Some(self.timeout), vendor_message)
            .await?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(error))?;
        serde_json::from_slice(&bytes).map_err(|error| ProviderError::InvalidResponse {
            provider: self.provider.clone(),
            detail: format!("HTTP {status} body is not the expected JSON: {error}"),
        })
    }

    /// POSTs `body` as JSON to `url` and returns a 2xx answer unread, for streaming.
    /// No timeout applies here: the router bounds the wait for the first text and the
    /// pauses between pieces, which a timeout on the whole answer cannot.
    pub(crate) async fn post_stream<B: Serialize + ?Sized>(
        &self,
        url: &str,
        body: &B,
        vendor_message: fn(&[u8]) -> Option<String>,
    ) -> Result<reqwest::Response, ProviderError> {
        self.send(url, body, None, vendor_message).await
    }

    /// POSTs `body` as JSON with the key; a non-2xx answer becomes the error for its
    /// status, with the vendor's message scrubbed.
    ///
    /// Its span (`provider_request`, an OpenTelemetry client span) names the vendor's host
    /// and the status; never the body, the key or the URL's path (Google's names the model
    /// and method, which the attempt's span has anyway).
    #[tracing::instrument(
        name = "provider_request",
        skip_all,
        fields(
            otel.name = "POST",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            provider = %self.provider,
            http.request.method = "POST",
            server.address = tracing::field::Empty,
            server.port = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        )
    )]
    async fn send<B: Serialize + ?Sized>(
        &self,
        url: &str,
        body: &B,
        timeout: Option<Duration>,
        vendor_message: fn(&[u8]) -> Option<String>,
    ) -> Result<reqwest::Response, ProviderError> {
        let span = tracing::Span::current();
        if let Ok(parsed) = reqwest::Url::parse(url) {
            span.record("server.address", parsed.host_str());
            span.record("server.port", parsed.port_or_known_default());
        }
        let mut builder = self.client.post(url).json(body);
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        for (name, value) in &self.extra_headers {
            builder = builder.header(*name, *value);
        }
        if let Some(key) = &self.api_key {
            let (name, prefix) = match self.key_header {
                KeyHeader::Bearer => (reqwest::header::AUTHORIZATION.as_str(), "Bearer "),
                KeyHeader::Named(name) => (name, ""),
            };
            // `build_provider` checked the key; were it to fail here, the request goes
            // out without it and the vendor answers 401, which names no key.
            if let Some(value) = key.header_value(prefix) {
                builder = builder.header(name, value);
            }
        }
        let response = builder.send().await.map_err(|error| {
            span.record("otel.status_code", "ERROR");
            self.transport_error(error)
        })?;
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_success() {
            return Ok(response);
        }
        span.record("otel.status_code", "ERROR");
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(error))?;
        let message = vendor_message(&bytes)
            .map(|message| self.sanitize(&message))
            .filter(|message| !message.is_empty())
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("no error message")
                    .to_owned()
            });
        Err(self.status_error(status.as_u16(), message))
    }

    /// The error for a non-2xx `status` (or a vendor error event standing for one).
    pub(crate) fn status_error(&self, status: u16, message: String) -> ProviderError {
        let provider = self.provider.clone();
        if status == 429 {
            ProviderError::RateLimited { provider, message }
        } else {
            ProviderError::Status {
                provider,
                status,
                message,
            }
        }
    }

    /// A vendor's message from inside a stream, made safe to log.
    pub(crate) fn vendor_text(&self, message: &str) -> String {
        self.sanitize(message)
    }

    fn transport_error(&self, error: reqwest::Error) -> ProviderError {
        if error.is_timeout() {
            ProviderError::Timeout {
                provider: self.provider.clone(),
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            }
        } else if error.is_decode() || error.is_body() {
            ProviderError::InvalidResponse {
                provider: self.provider.clone(),
                detail: format!("body could not be read: {}", error_chain(&error)),
            }
        } else {
            ProviderError::Unreachable {
                provider: self.provider.clone(),
                source: error.without_url(),
            }
        }
    }

    /// Makes a vendor message safe to log: no key, no control characters, bounded length.
    fn sanitize(&self, message: &str) -> String {
        let mut message = message.to_owned();
        if let Some(key) = &self.api_key {
            message = message.replace(key.expose(), "[redacted]");
        }
        let mut clean: String = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_VENDOR_MESSAGE_CHARS)
            .collect();
        if message.chars().count() > MAX_VENDOR_MESSAGE_CHARS {
            clean.push('…');
        }
        clean.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(key: Option<&str>) -> HttpTarget {
        HttpTarget {
            provider: "p".to_owned(),
            client: reqwest::Client::new(),
            api_key: key.map(ProviderKey::new),
            key_header: KeyHeader::Bearer,
            extra_headers: Vec::new(),
            timeout: Duration::from_millis(10),
        }
    }

    #[test]
    fn urls_join_with_one_slash() {
        assert_eq!(
            join_url("http://h:1/v1/", "/completions"),
            "http://h:1/v1/completions"
        );
        assert_eq!(
            join_url("http://h:1", "api/generate"),
            "http://h:1/api/generate"
        );
    }

    #[test]
    fn vendor_messages_lose_keys_and_control_characters() {
        let target = target(Some("sk-secret"));
        assert_eq!(
            target.sanitize("bad key sk-secret\nretry"),
            "bad key [redacted] retry"
        );
        let long = "x".repeat(1000);
        assert_eq!(target.sanitize(&long).chars().count(), 501);
    }

    #[test]
    fn provider_key_debug_is_redacted() {
        let debug = format!("{:?}", target(Some("sk-secret")));
        assert!(!debug.contains("sk-secret"), "{debug}");
    }

    #[test]
    fn missing_key_variable_stops_the_start() {
        let config = Config::parse_str(
            "[[providers]]\nname=\"openai\"\nkind=\"openai\"\nbase_url=\"http://x\"\nmodel=\"m\"\napi_key_env=\"NOPE\"",
        )
        .unwrap();
        let error = ProviderRegistry::from_config(&config, &|_| None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "provider `openai`: environment variable `NOPE` (named by api_key_env) is not set"
        );
        let registry =
            ProviderRegistry::from_config(&config, &|_| Some("sk-1".to_owned())).unwrap();
        assert_eq!(registry.primary().unwrap().name(), "openai");
    }

    #[test]
    fn key_a_header_cannot_carry_stops_the_start_without_showing_it() {
        let config = Config::parse_str(
            "[[providers]]\nname=\"claude\"\nkind=\"anthropic\"\nmodel=\"m\"\napi_key_env=\"KEY\"",
        )
        .unwrap();
        let error = ProviderRegistry::from_config(&config, &|_| Some("sk-ant\u{7}bell".to_owned()))
            .unwrap_err();
        let message = error.to_string();
        assert_eq!(
            message,
            "provider `claude`: environment variable `KEY` (named by api_key_env) holds \
             characters an HTTP header cannot carry"
        );
        assert!(!message.contains("sk-ant"), "{message}");
    }

    #[test]
    fn anthropic_and_google_build_with_their_default_base_url() {
        let config = Config::parse_str(
            "[[providers]]\nname=\"claude\"\nkind=\"anthropic\"\nmodel=\"claude-x\"\napi_key_env=\"A\"\n\
             [[providers]]\nname=\"gemini\"\nkind=\"google\"\nmodel=\"gemini-x\"\napi_key_env=\"G\"",
        )
        .unwrap();
        let registry =
            ProviderRegistry::from_config(&config, &|_| Some("secret".to_owned())).unwrap();
        assert_eq!(format!("{registry:?}"), r#"["claude", "gemini"]"#);
        assert_eq!(registry.primary().unwrap().model(), "claude-x");
    }

    #[test]
    fn no_provider_means_builtin_local() {
        let registry = ProviderRegistry::from_config(&Config::default(), &|_| None).unwrap();
        assert_eq!(registry.primary().unwrap().name(), "local");
    }

    #[test]
    fn error_codes_follow_the_contract() {
        let status = ProviderError::Status {
            provider: "p".into(),
            status: 404,
            message: "model 'x' not found".into(),
        };
        assert_eq!(status.code(), ErrorCode::ProviderError);
        // The vendor's text is for the operator's log, not for the client.
        assert_eq!(status.public_message(), "provider `p` returned HTTP 404");
        assert_eq!(
            status.log_message(),
            "provider `p` returned HTTP 404: model 'x' not found"
        );
        let limited = ProviderError::RateLimited {
            provider: "p".into(),
            message: "slow down".into(),
        };
        assert_eq!(limited.code(), ErrorCode::ProviderUnavailable);
        let timeout = ProviderError::Timeout {
            provider: "p".into(),
            timeout_ms: 5,
        };
        assert_eq!(timeout.code(), ErrorCode::ProviderTimeout);
    }
}
