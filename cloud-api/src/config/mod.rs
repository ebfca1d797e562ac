//! The server's typed configuration, checked once at start-up.
//!
//! Every key comes from the highest of four layers: built-in default < the `--config` TOML
//! file < `TANDEM_<SECTION>__<KEY>` environment variables < command-line flags. The types
//! here describe the file; [`layers`] merges the layers into them.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use url::Url;

use crate::prompt::Family;
use crate::tiers::Tiers;

pub mod http;
mod identity;
pub mod layers;
pub mod redis;
pub mod telemetry;

pub use identity::{
    EnterpriseConfig, IdentityProviderConfig, IdentityProviderKind, RoleGrant, SessionAlgorithm,
    SessionsConfig,
};

/// Address `serve` listens on when neither flag, environment nor file names one.
pub const DEFAULT_BIND: &str = "127.0.0.1:8787";
/// Default cap on request bodies: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default lifetime of a cached API-key check, in seconds.
pub const DEFAULT_KEY_CACHE_TTL_SECS: u64 = 5;
/// Default time a provider gets to answer one completion, in milliseconds.
pub const DEFAULT_PROVIDER_TIMEOUT_MS: u64 = 30_000;
/// Default time a whole request may take, in milliseconds.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 60_000;
/// Default time one inline completion may spend on all its provider attempts, in ms.
pub const DEFAULT_COMPLETION_BUDGET_MS: u64 = 10_000;
/// Default time one chat request may spend on all its provider attempts, in ms.
pub const DEFAULT_CHAT_BUDGET_MS: u64 = 60_000;
/// Default number of consecutive failures that open a provider's circuit breaker.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// Default time an open circuit breaker waits before letting one probe through, in ms.
pub const DEFAULT_BREAKER_COOLDOWN_MS: u64 = 30_000;

/// Everything the `--config` file can say. Every section and field is optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Socket address to listen on, `IP:PORT` (port 0 picks a free one). Not secret.
    #[serde(default)]
    pub bind: Option<SocketAddr>,
    /// The database: a SQLite URL (`sqlite://tandem.sqlite`, the embedded default) or a
    /// PostgreSQL URL (`postgres://USER@HOST/DATABASE`) for several instances. A password
    /// in the URL is masked wherever the URL is shown; `PGPASSWORD` or a `.pgpass` file
    /// keep it out of the configuration. Defaults to `tandem.sqlite` in the platform data
    /// directory.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Request size and time limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// API-key authentication settings.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Model providers. Each tier's requests go to the providers it may use, in this
    /// order unless `[routing.<tier>]` says otherwise, falling back on failure; with none
    /// configured, the built-in `local` provider answers.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// Tiers, `[tiers.<name>]`: the defaults `free`, `pro` and `enterprise`, whose keys
    /// left out keep their default values, and any tier the deployment adds.
    #[serde(default)]
    pub tiers: BTreeMap<String, TierConfig>,
    /// Which providers serve each tier and task, in what order, and how hard to try:
    /// `[routing]` and its `[routing.<tier>]` tables (see [`RoutingConfig`]).
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Prices per model, `[prices."<model>"]`, for the cost estimate of each usage record;
    /// a model without a price costs 0.
    #[serde(default)]
    pub prices: BTreeMap<String, PriceConfig>,
    /// The Prometheus endpoint, `GET /metrics`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Browser sessions of the account pages.
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// Bearer JWTs from the organisation's own identity provider; off without it.
    #[serde(default)]
    pub enterprise: Option<EnterpriseConfig>,
    /// `[http]`: CORS, allowed hosts, trusted proxies, header and stream limits.
    #[serde(default)]
    pub http: http::HttpConfig,
    /// `[logging]`: the log format.
    #[serde(default)]
    pub logging: http::LoggingConfig,
    /// `[redis]`: rate limits and quotas shared between instances; per instance without.
    #[serde(default)]
    pub redis: redis::RedisConfig,
    /// `[telemetry]`: OpenTelemetry traces over OTLP/HTTP; off without an endpoint.
    #[serde(default)]
    pub telemetry: telemetry::TelemetryConfig,
}

/// `[metrics]`: whether `GET /metrics` is served, and to whom.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `GET /metrics`. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Name of an environment variable holding a token scrapers must send as
    /// `Authorization: Bearer <token>`. Without it the endpoint is open to anyone who can
    /// reach the port: it shows request counts, provider names and breaker states, never
    /// users, keys or code, but a public deployment should set this or block the path at
    /// its proxy.
    #[serde(default)]
    pub token_env: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            token_env: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// One `[prices."<model>"]` table: US dollars per million tokens.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Per million prompt (input) tokens.
    #[serde(default)]
    pub prompt_per_million_usd: f64,
    /// Per million completion (output) tokens.
    #[serde(default)]
    pub completion_per_million_usd: f64,
}

/// One `[tiers.<name>]` table (see [`crate::tiers`]): every key is optional for the
/// default tiers (`free`, `pro`, `enterprise`), whose defaults fill the rest, and required
/// for a tier the deployment adds.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Requests per clock hour (UTC). Defaults: free 50, pro 500, enterprise 5000.
    #[serde(default)]
    pub requests_per_hour: Option<u32>,
    /// Requests per day (UTC). Defaults: free 200, pro 2000, enterprise 20000.
    #[serde(default)]
    pub requests_per_day: Option<u32>,
    /// Requests per minute at the fastest (a GCRA burst limit); 0 = none.
    /// Defaults: free 20, pro 120, enterprise 0.
    #[serde(default)]
    pub burst_per_minute: Option<u32>,
    /// Prompt plus completion tokens per day (UTC).
    /// Defaults: free 400000, pro 8000000, enterprise 100000000.
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    /// Largest document a request may be about, in MiB. Defaults: 1, 10, 100.
    #[serde(default)]
    pub max_file_size_mb: Option<u32>,
    /// Most context a completion request may carry, in tokens as estimated by
    /// `tandem_shared::tokens::estimate` over the prefix, the suffix and every context
    /// part. Larger requests are refused; `GET /v1/me` reports it so the language server
    /// cuts its context to fit. Defaults: free 4000, pro 16000, enterprise 32000.
    #[serde(default)]
    pub max_context_tokens: Option<u32>,
    /// `[[providers]]` names or provider kinds (`ollama`, `local`, `openai`, `anthropic`,
    /// `google`) this tier may use; `["*"]` for all.
    #[serde(default)]
    pub providers: Option<Vec<String>>,
    /// Features this tier may use (`inline_completion`, `chat`, `explanation`,
    /// `code_actions`); `["*"]` for all.
    #[serde(default)]
    pub features: Option<Vec<String>>,
}

/// `[routing]`: how a request reaches a provider. The keys here apply to every tier; each
/// `[routing.<tier>]` table ([`TierRoutingConfig`]) orders the providers of one tier. A tier
/// without a table uses every provider it is allowed, in `[[providers]]` order.
///
/// A request tries its providers in order and moves on when one is unreachable, times out,
/// answers 5xx, 429 or another status that says the provider (not the request) is at fault,
/// or answers something unreadable, until one answers or the task's budget is spent. See
/// [`crate::routing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Longest one inline completion may spend on all its provider attempts (fallbacks and
    /// the retry included), in milliseconds. Each attempt gets the lower of its provider's
    /// `timeout_ms` and what is left of the budget. Default 10000.
    pub completion_budget_ms: u64,
    /// The same for chat, explanations and code actions, in milliseconds. Default 60000.
    /// Either budget is in turn cut short by `limits.request_timeout_ms`.
    pub chat_budget_ms: u64,
    /// Consecutive failures after which a provider's circuit breaker opens: requests skip
    /// the provider until the cool-down has passed. Default 5.
    pub breaker_failures: u32,
    /// How long an open breaker keeps its provider out, in milliseconds. After it, one
    /// request at a time probes the provider: a success closes the breaker, a failure opens
    /// it for another cool-down. Default 30000.
    pub breaker_cooldown_ms: u64,
    /// The `[routing.<tier>]` tables, by tier name.
    pub tiers: BTreeMap<String, TierRoutingConfig>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            completion_budget_ms: DEFAULT_COMPLETION_BUDGET_MS,
            chat_budget_ms: DEFAULT_CHAT_BUDGET_MS,
            breaker_failures: DEFAULT_BREAKER_FAILURES,
            breaker_cooldown_ms: DEFAULT_BREAKER_COOLDOWN_MS,
            tiers: BTreeMap::new(),
        }
    }
}

/// One `[routing.<tier>]` table: the providers of one tier for each task, most preferred
/// first. Every name must be a `[[providers]]` name the tier allows
/// (`tiers.<tier>.providers`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TierRoutingConfig {
    /// Providers for inline completions, e.g. `["ollama", "openai"]`: the first is asked
    /// first, the next when it fails, and so on. Left out: every provider the tier allows,
    /// in `[[providers]]` order.
    #[serde(default)]
    pub completion: Option<Vec<String>>,
    /// Providers for chat, explanations and code actions, as `completion`.
    #[serde(default)]
    pub chat: Option<Vec<String>>,
    /// Spreads load over the first choice: `{ "a" = 3, "b" = 1 }` asks `a` first three
    /// times as often as `b`; the rest of the list stays in order behind it as fallbacks.
    /// In a list that names any weighted provider, the unweighted ones are never asked
    /// first. Weights are whole numbers of at least 1. Default: no weights, list order.
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
}

// `[routing]` mixes its own keys with `[routing.<tier>]` tables, and serde's `flatten`
// does not work with `deny_unknown_fields`; so the keys are matched by hand, and any other
// key must hold a tier table.
impl<'de> Deserialize<'de> for RoutingConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RoutingVisitor)
    }
}

struct RoutingVisitor;

impl<'de> Visitor<'de> for RoutingVisitor {
    type Value = RoutingConfig;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a [routing] table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RoutingConfig, A::Error> {
        let mut routing = RoutingConfig::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "completion_budget_ms" => routing.completion_budget_ms = map.next_value()?,
                "chat_budget_ms" => routing.chat_budget_ms = map.next_value()?,
                "breaker_failures" => routing.breaker_failures = map.next_value()?,
                "breaker_cooldown_ms" => routing.breaker_cooldown_ms = map.next_value()?,
                _ => {
                    let TierTable(table) = map.next_value()?;
                    routing.tiers.insert(key, table);
                }
            }
        }
        Ok(routing)
    }
}

/// A `[routing.<tier>]` table, whose "expected" message lists the `[routing]` keys too, so
/// a misspelt key (`completion_budget = 5`) is explained rather than taken for a tier.
struct TierTable(TierRoutingConfig);

impl<'de> Deserialize<'de> for TierTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TierTableVisitor)
    }
}

struct TierTableVisitor;

impl<'de> Visitor<'de> for TierTableVisitor {
    type Value = TierTable;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(
            "a [routing.<tier>] table; the keys of [routing] itself are completion_budget_ms, \
             chat_budget_ms, breaker_failures and breaker_cooldown_ms",
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TierTable, A::Error> {
        TierRoutingConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            .map(TierTable)
    }
}

impl RoutingConfig {
    /// Checks the budgets and breaker settings, and that every `[routing.<tier>]` table
    /// names an existing tier and only providers that tier may use.
    fn validate(&self, tiers: &Tiers, providers: &[ProviderConfig]) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        let durations = [
            ("completion_budget_ms", self.completion_budget_ms),
            ("chat_budget_ms", self.chat_budget_ms),
            ("breaker_cooldown_ms", self.breaker_cooldown_ms),
        ];
        for (key, value) in durations {
            if value == 0 {
                return invalid(format!("routing.{key} must be at least 1"));
            }
        }
        if self.breaker_failures == 0 {
            return invalid("routing.breaker_failures must be at least 1".to_owned());
        }
        for (tier_name, table) in &self.tiers {
            let at = format!("routing.{tier_name}");
            let policy = tandem_shared::Tier::new(tier_name)
                .ok()
                .and_then(|tier| tiers.get(&tier));
            let Some(policy) = policy else {
                let known: Vec<&str> = tiers.all().map(|policy| policy.name.as_str()).collect();
                return invalid(format!(
                    "{at}: there is no tier `{tier_name}` (tiers: {})",
                    known.join(", ")
                ));
            };
            let allowed: Vec<&str> = providers
                .iter()
                .filter(|provider| policy.allows_provider(&provider.name, provider.kind.as_str()))
                .map(|provider| provider.name.as_str())
                .collect();
            for (task, list) in [("completion", &table.completion), ("chat", &table.chat)] {
                let Some(list) = list else { continue };
                if list.is_empty() {
                    return invalid(format!(
                        "{at}.{task} must name at least one provider; leave it out to use \
                         every provider the tier allows"
                    ));
                }
                for (index, name) in list.iter().enumerate() {
                    check_routed_provider(&format!("{at}.{task}"), name, policy, providers)?;
                    if list[..index].contains(name) {
                        return invalid(format!("{at}.{task}: provider `{name}` is listed twice"));
                    }
                }
            }
            for (name, weight) in &table.weights {
                check_routed_provider(&format!("{at}.weights"), name, policy, providers)?;
                if *weight == 0 {
                    return invalid(format!(
                        "{at}.weights: `{name}` must weigh at least 1; leave a provider out \
                         of weights to keep it as a fallback only"
                    ));
                }
                let listed = [&table.completion, &table.chat]
                    .into_iter()
                    .any(|list| match list {
                        Some(list) => list.contains(name),
                        None => allowed.contains(&name.as_str()),
                    });
                if !listed {
                    return invalid(format!(
                        "{at}.weights: provider `{name}` is in neither {at}.completion nor \
                         {at}.chat"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Checks that a routing list names a configured provider that `policy` allows.
fn check_routed_provider(
    at: &str,
    name: &str,
    policy: &crate::tiers::TierPolicy,
    providers: &[ProviderConfig],
) -> Result<(), ConfigError> {
    let Some(provider) = providers.iter().find(|provider| provider.name == name) else {
        let known: Vec<&str> = providers
            .iter()
            .map(|provider| provider.name.as_str())
            .collect();
        let known = if known.is_empty() {
            "none are configured".to_owned()
        } else {
            format!("configured: {}", known.join(", "))
        };
        return Err(ConfigError::Invalid(format!(
            "{at}: `{name}` is not a [[providers]] name ({known})"
        )));
    };
    if !policy.allows_provider(&provider.name, provider.kind.as_str()) {
        let tier = &policy.name;
        return Err(ConfigError::Invalid(format!(
            "{at}: provider `{name}` is not allowed for tier `{tier}`; add it to \
             tiers.{tier}.providers or remove it here"
        )));
    }
    Ok(())
}

/// `[limits]`: what a single request may cost the server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted request body in bytes; bigger bodies get 413. Default 4 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Longest a whole request may take in milliseconds before the server answers 504.
    /// A backstop behind each provider's own `timeout_ms`. Default 60000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
        }
    }
}

/// `[auth]`: API-key checks.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// How long, in seconds, a successful key check is remembered. Revocations and tier
    /// changes empty the cache within a quarter of a second (servers watch the database's
    /// auth epoch); this lifetime is the bound only while the database cannot be read.
    /// 0 disables the cache. Default 5.
    #[serde(default = "default_key_cache_ttl_secs")]
    pub key_cache_ttl_secs: u64,
    /// The address users reach this server at (`https://tandem.example.com`), for the
    /// links it hands out, such as the device sign-in page of `tandem login`. By default
    /// the request's own `Host`, over http.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How long a `tandem login` code stays valid, in seconds. Default 900.
    #[serde(default = "default_device_code_ttl_secs")]
    pub device_code_ttl_secs: u64,
    /// How often, in seconds, `tandem login` may poll for its key. Default 5.
    #[serde(default = "default_device_poll_interval_secs")]
    pub device_poll_interval_secs: u32,
    /// Ways to sign in on the account pages, `[[auth.identity_providers]]`. They need
    /// `public_url` and `[sessions]`.
    #[serde(default)]
    pub identity_providers: Vec<IdentityProviderConfig>,
    /// The tier of a user created by their first browser sign-in. Default `free`.
    #[serde(default = "default_new_user_tier")]
    pub new_user_tier: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            key_cache_ttl_secs: DEFAULT_KEY_CACHE_TTL_SECS,
            public_url: None,
            device_code_ttl_secs: default_device_code_ttl_secs(),
            device_poll_interval_secs: default_device_poll_interval_secs(),
            identity_providers: Vec::new(),
            new_user_tier: default_new_user_tier(),
        }
    }
}

fn default_new_user_tier() -> String {
    "free".to_owned()
}

fn default_device_code_ttl_secs() -> u64 {
    900
}

fn default_device_poll_interval_secs() -> u32 {
    5
}

/// One `[[providers]]` entry: a model server completions are sent to.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name, reported as `provider` in answers and in error messages.
    pub name: String,
    /// Which wire format the provider speaks.
    pub kind: ProviderKind,
    /// Base URL as the vendor's SDK takes it: `http://localhost:11434` for Ollama,
    /// `https://api.openai.com/v1` for OpenAI, `https://api.anthropic.com` for Anthropic,
    /// `https://generativelanguage.googleapis.com` for Google. Required for `ollama` and
    /// `openai`; `anthropic` and `google` default to the vendor's public endpoint; not
    /// allowed for `local`. Not secret; must not carry credentials.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Model name sent to the provider. Required for every kind but `local`, where it is
    /// only a label (default `local`).
    #[serde(default)]
    pub model: Option<String>,
    /// OpenAI endpoint family; only for `kind = "openai"`. Default `completions`.
    #[serde(default)]
    pub endpoint: Option<OpenAiEndpoint>,
    /// NAME of the environment variable holding the provider's API key (the key itself
    /// never goes in this file). Read once at start; a missing variable stops the start.
    /// Sent as `Authorization: Bearer <key>` (`ollama`, `openai`), `x-api-key`
    /// (`anthropic`) or `x-goog-api-key` (`google`, never in the URL). Required for
    /// `anthropic` and `google`; not for `local`.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Time the provider gets to answer one completion, in milliseconds. Default 30000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Fill-in-the-middle template for `ollama` and `openai` (`completions`) providers:
    /// `auto` (default: the family detected from `model`, none for unknown models),
    /// `none` (prefix as the prompt, suffix in the vendor's `suffix` field), or a family:
    /// `starcoder`, `starcoder2`, `codellama`, `deepseek-coder`, `qwen`, `codestral`.
    /// With a family the whole prompt is rendered here and sent raw. Not for `local`,
    /// `anthropic`, `google` or `endpoint = "chat"` (chat models get an instruction prompt).
    #[serde(default)]
    pub template: Option<TemplateSetting>,
}

/// `template` of a provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TemplateSetting {
    /// Detect the family from the model name.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// No template: the vendor's own `suffix` field.
    #[serde(rename = "none")]
    None,
    #[serde(rename = "starcoder")]
    StarCoder,
    #[serde(rename = "starcoder2")]
    StarCoder2,
    #[serde(rename = "codellama")]
    CodeLlama,
    #[serde(rename = "deepseek-coder")]
    DeepSeekCoder,
    #[serde(rename = "qwen", alias = "qwen2.5-coder")]
    Qwen,
    #[serde(rename = "codestral")]
    Codestral,
}

impl TemplateSetting {
    /// The family this setting names, `None` for `auto` and `none`.
    fn family(self) -> Option<Family> {
        match self {
            TemplateSetting::Auto | TemplateSetting::None => None,
            TemplateSetting::StarCoder => Some(Family::StarCoder),
            TemplateSetting::StarCoder2 => Some(Family::StarCoder2),
            TemplateSetting::CodeLlama => Some(Family::CodeLlama),
            TemplateSetting::DeepSeekCoder => Some(Family::DeepSeekCoder),
            TemplateSetting::Qwen => Some(Family::Qwen),
            TemplateSetting::Codestral => Some(Family::Codestral),
        }
    }
}

impl ProviderConfig {
    /// The provider's timeout, default applied.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_PROVIDER_TIMEOUT_MS)
    }

    /// The OpenAI endpoint, default applied.
    pub fn endpoint(&self) -> OpenAiEndpoint {
        self.endpoint.unwrap_or_default()
    }

    /// The fill-in-the-middle family prompts are rendered in, `None` to send the prefix
    /// and suffix in the vendor's own fields (or an instruction prompt, for chat).
    pub fn fim_family(&self) -> Option<Family> {
        let templated = match self.kind {
            ProviderKind::Local | ProviderKind::Anthropic | ProviderKind::Google => false,
            ProviderKind::Ollama => true,
            ProviderKind::OpenAi => self.endpoint() == OpenAiEndpoint::Completions,
        };
        if !templated {
            return None;
        }
        match self.template.unwrap_or_default() {
            TemplateSetting::Auto => self.model.as_deref().and_then(Family::detect),
            setting => setting.family(),
        }
    }
}

/// `kind` of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Ollama's native `/api/generate`.
    Ollama,
    /// Any OpenAI-compatible server (`/completions` or `/chat/completions`).
    OpenAi,
    /// Anthropic's Messages API (`/v1/messages`).
    Anthropic,
    /// Google's Gemini API (`/v1beta/models/{model}:generateContent`).
    Google,
    /// The built-in, offline repetition completer.
    Local,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 5] = [
        ProviderKind::Ollama,
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Google,
        ProviderKind::Local,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Ollama => "ollama",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Google => "google",
            ProviderKind::Local => "local",
        }
    }

    /// The vendor's public endpoint, used when `base_url` is left out; `None` for kinds
    /// that have no single public endpoint (Ollama and OpenAI-compatible servers run
    /// anywhere) or no network at all.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::Google => Some("https://generativelanguage.googleapis.com"),
            ProviderKind::Ollama | ProviderKind::OpenAi | ProviderKind::Local => None,
        }
    }

    /// Whether the vendor refuses every request without a key, so a provider of this kind
    /// without `api_key_env` is a configuration mistake caught at start-up.
    pub fn requires_api_key(self) -> bool {
        matches!(self, ProviderKind::Anthropic | ProviderKind::Google)
    }

    /// Whether the provider is asked over the network (everything but `local`).
    fn is_network(self) -> bool {
        self != ProviderKind::Local
    }

    /// Whether the provider gets a chat instruction prompt whatever its settings, so a
    /// fill-in-the-middle `template` means nothing to it.
    fn is_chat_only(self) -> bool {
        matches!(self, ProviderKind::Anthropic | ProviderKind::Google)
    }
}

/// Which OpenAI endpoint to call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenAiEndpoint {
    /// `POST {base_url}/completions` with `prompt` and `suffix`.
    #[default]
    Completions,
    /// `POST {base_url}/chat/completions` with a fill-in-the-middle instruction.
    Chat,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    /// The file parsed but a value is unusable.
    #[error("invalid config: {0}")]
    Invalid(String),
    /// An environment variable or flag set a value its key cannot take.
    #[error("invalid config: {key} from {origin}: {message}")]
    Override {
        origin: layers::Origin,
        key: String,
        message: String,
    },
    /// An environment variable looks like a setting (`TANDEM_<SECTION>__<KEY>`) but names
    /// no key, or a key only the file can set.
    #[error("invalid config: {origin} names no config key ({key}): {message}")]
    UnknownKey {
        origin: layers::Origin,
        key: String,
        message: String,
    },
}

fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

fn default_request_timeout_ms() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_MS
}

fn default_key_cache_ttl_secs() -> u64 {
    DEFAULT_KEY_CACHE_TTL_SECS
}

impl Config {
    /// The deployment's tiers: the `[tiers.<name>]` tables over the defaults.
    pub fn tiers(&self) -> Result<Tiers, ConfigError> {
        Tiers::resolve(&self.tiers, &self.providers)
    }

    /// Reads, parses and validates a config file, without the environment and flags (see
    /// [`Config::load_layered`] for those).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        layers::Layers::new().with_file(path)?.resolve()
    }

    /// Parses and validates config text.
    pub fn parse_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: "<text>".to_owned(),
            message: layers::located_message(text, &error),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks sessions, sign-in providers and enterprise tokens.
    fn validate_identity(&self, tiers: &Tiers) -> Result<(), ConfigError> {
        self.sessions.validate()?;
        identity::validate_identity_providers(
            &self.auth.identity_providers,
            self.auth.public_url.as_deref(),
        )?;
        if !self.auth.identity_providers.is_empty() && !self.sessions.enabled() {
            return Err(ConfigError::Invalid(
                "auth.identity_providers need [sessions] (jwt_secret_env, or a private key) \
                 to keep people signed in"
                    .to_owned(),
            ));
        }
        let known = tandem_shared::Tier::new(&self.auth.new_user_tier)
            .ok()
            .is_some_and(|tier| tiers.get(&tier).is_some());
        if !known {
            return Err(ConfigError::Invalid(format!(
                "auth.new_user_tier `{}` is not a tier",
                self.auth.new_user_tier
            )));
        }
        if let Some(enterprise) = &self.enterprise {
            enterprise.validate(tiers)?;
        }
        Ok(())
    }

    /// Checks what serde cannot: limits in range, provider entries consistent.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if self.limits.max_body_bytes == 0 {
            return invalid("limits.max_body_bytes must be at least 1".to_owned());
        }
        if self.limits.request_timeout_ms == 0 {
            return invalid("limits.request_timeout_ms must be at least 1".to_owned());
        }
        if let Some(url) = &self.database_url {
            match crate::db::options_from_url(url) {
                Ok(_) => {}
                Err(crate::db::DbError::UnsupportedUrl(url)) => {
                    return invalid(format!(
                        "database_url must be a SQLite URL (sqlite://PATH) or a PostgreSQL \
                         URL (postgres://USER@HOST/DATABASE), got `{url}`"
                    ));
                }
                // Masked: the URL may carry a password.
                Err(error) => {
                    let url = crate::db::mask_url(url);
                    return invalid(format!("database_url `{url}` is not usable: {error}"));
                }
            }
        }
        self.http.validate()?;
        self.redis.validate()?;
        self.telemetry.validate()?;
        let tiers = self.tiers()?;
        self.validate_identity(&tiers)?;
        for (model, price) in &self.prices {
            let valid = |value: f64| value.is_finite() && value >= 0.0;
            if !valid(price.prompt_per_million_usd) || !valid(price.completion_per_million_usd) {
                return invalid(format!(
                    "prices.\"{model}\": prices must be finite and not negative"
                ));
            }
        }
        let mut names = HashSet::new();
        for (index, provider) in self.providers.iter().enumerate() {
            let at = format!("providers[{index}]");
            let name = provider.name.trim();
            if name.is_empty() {
                return invalid(format!("{at}.name must not be empty"));
            }
            if !names.insert(name.to_owned()) {
                return invalid(format!("provider name `{name}` is used more than once"));
            }
            let at = format!("provider `{name}`");
            let network = provider.kind.is_network();
            match (&provider.base_url, network) {
                (None, true) if provider.kind.default_base_url().is_none() => {
                    return invalid(format!(
                        "{at}: base_url is required for kind `{}`",
                        provider.kind.as_str()
                    ))
                }
                (Some(_), false) => {
                    return invalid(format!("{at}: base_url is not used by kind `local`"))
                }
                (Some(base_url), true) => validate_base_url(&at, base_url)?,
                (None, _) => {}
            }
            match &provider.model {
                Some(model) if model.trim().is_empty() => {
                    return invalid(format!("{at}: model must not be empty"))
                }
                None if network => {
                    return invalid(format!(
                        "{at}: model is required for kind `{}`",
                        provider.kind.as_str()
                    ))
                }
                _ => {}
            }
            if provider.endpoint.is_some() && provider.kind != ProviderKind::OpenAi {
                return invalid(format!(
                    "{at}: endpoint is only allowed for kind `openai` (this one is `{}`)",
                    provider.kind.as_str()
                ));
            }
            if provider.api_key_env.is_none() && provider.kind.requires_api_key() {
                return invalid(format!(
                    "{at}: api_key_env is required for kind `{}`: set it to the NAME of the \
                     environment variable holding the API key",
                    provider.kind.as_str()
                ));
            }
            if let Some(variable) = &provider.api_key_env {
                if !network {
                    return invalid(format!("{at}: api_key_env is not used by kind `local`"));
                }
                let well_formed = !variable.is_empty()
                    && variable
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !well_formed {
                    return invalid(format!(
                        "{at}: api_key_env must be the NAME of an environment variable \
                         (letters, digits, `_`), not the key itself"
                    ));
                }
            }
            if provider.timeout_ms == Some(0) {
                return invalid(format!("{at}: timeout_ms must be at least 1"));
            }
            if let Some(family) = provider.template.and_then(TemplateSetting::family) {
                if !network {
                    return invalid(format!("{at}: template is not used by kind `local`"));
                }
                if provider.kind.is_chat_only() {
                    return invalid(format!(
                        "{at}: template `{}` is not used by kind `{}` (its models get an \
                         instruction prompt); remove it",
                        family.as_str(),
                        provider.kind.as_str()
                    ));
                }
                if provider.kind == ProviderKind::OpenAi
                    && provider.endpoint() == OpenAiEndpoint::Chat
                {
                    return invalid(format!(
                        "{at}: template `{}` is not used by endpoint `chat` (chat models get \
                         an instruction prompt); use endpoint `completions` or remove it",
                        family.as_str()
                    ));
                }
            }
        }
        // Last: routing names providers, whose names are unique only once checked above.
        self.routing.validate(&tiers, &self.providers)?;
        Ok(())
    }
}

fn validate_base_url(at: &str, base_url: &str) -> Result<(), ConfigError> {
    let url = Url::parse(base_url).map_err(|error| {
        ConfigError::Invalid(format!("{at}: base_url `{base_url}` is not a URL: {error}"))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ConfigError::Invalid(format!(
            "{at}: base_url must start with http:// or https://, got `{base_url}`"
        )));
    }
    if url.host_str().is_none() {
        return Err(ConfigError::Invalid(format!(
            "{at}: base_url `{base_url}` has no host"
        )));
    }
    // Credentials in URLs end up in logs and process listings; they belong in api_key_env.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::Invalid(format!(
            "{at}: base_url must not contain credentials; use api_key_env"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::Invalid(format!(
            "{at}: base_url must not have a query or fragment"
        )));
    }
    Ok(())
}

/// What the sections' tests share: the message a refused configuration gets.
#[cfg(test)]
pub(crate) mod test_support {
    use super::Config;

    /// The error message for `text`, which must be refused.
    #[track_caller]
    pub(crate) fn refused(text: &str) -> String {
        Config::parse_str(text)
            .expect_err("config should be refused")
            .to_string()
    }

    /// Checks that `text` is refused with a message containing `expected_fragment`.
    #[track_caller]
    pub(crate) fn check_invalid(text: &str, expected_fragment: &str) {
        let message = refused(text);
        assert!(
            message.contains(expected_fragment),
            "`{message}` does not contain `{expected_fragment}`"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_support::check_invalid;

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::parse_str("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.limits.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(config.auth.key_cache_ttl_secs, 5);
        assert!(config.providers.is_empty());
    }

    #[test]
    fn full_example_parses() {
        let config = Config::parse_str(
            r#"
            bind = "127.0.0.1:9000"
            database_url = "sqlite://tandem.sqlite"
            [limits]
            max_body_bytes = 1024
            [auth]
            key_cache_ttl_secs = 0
            [[providers]]
            name = "ollama"
            kind = "ollama"
            base_url = "http://localhost:11434"
            model = "qwen2.5-coder:1.5b"
            timeout_ms = 1000
            [[providers]]
            name = "openai"
            kind = "openai"
            base_url = "https://api.openai.com/v1"
            model = "gpt-4o-mini"
            endpoint = "chat"
            api_key_env = "OPENAI_API_KEY"
            [[providers]]
            name = "offline"
            kind = "local"
            "#,
        )
        .unwrap();
        assert_eq!(config.bind, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(config.limits.max_body_bytes, 1024);
        assert_eq!(config.auth.key_cache_ttl_secs, 0);
        assert_eq!(config.providers.len(), 3);
        assert_eq!(config.providers[0].timeout_ms(), 1000);
        assert_eq!(config.providers[0].endpoint(), OpenAiEndpoint::Completions);
        assert_eq!(config.providers[1].endpoint(), OpenAiEndpoint::Chat);
        assert_eq!(config.providers[1].timeout_ms(), 30_000);
        assert_eq!(config.providers[2].kind, ProviderKind::Local);
    }

    #[test]
    fn shipped_example_is_valid() {
        let config = Config::parse_str(include_str!("../../config.example.toml")).unwrap();
        let kinds: Vec<ProviderKind> = config
            .providers
            .iter()
            .map(|provider| provider.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                ProviderKind::Ollama,
                ProviderKind::OpenAi,
                ProviderKind::Anthropic,
                ProviderKind::Google,
                ProviderKind::Local
            ]
        );
        assert_eq!(config.providers[0].name, "ollama");
    }

    #[test]
    fn unknown_keys_are_refused() {
        check_invalid("bnid = \"127.0.0.1:1\"", "unknown field `bnid`");
        check_invalid("[limits]\nmax_body = 1", "unknown field `max_body`");
        check_invalid("[auth]\nttl = 1", "line 2: unknown field `ttl`");
        check_invalid(
            "[[providers]]\nname=\"a\"\nkind=\"ollama\"\nbase_url=\"http://x\"\nmodel=\"m\"\napi_key=\"sk\"",
            "unknown field `api_key`",
        );
    }

    #[test]
    fn mistyped_values_are_refused() {
        check_invalid("bind = \"localhost\"", "invalid socket address");
        check_invalid(
            "[[providers]]\nname=\"a\"\nkind=\"mistral\"",
            "unknown variant `mistral`",
        );
        check_invalid("[limits]\nmax_body_bytes = -1", "invalid value");
    }

    #[test]
    fn provider_names_must_be_unique_and_present() {
        check_invalid(
            "[[providers]]\nname=\"a\"\nkind=\"local\"\n[[providers]]\nname=\"a\"\nkind=\"local\"",
            "provider name `a` is used more than once",
        );
        check_invalid(
            "[[providers]]\nname=\" \"\nkind=\"local\"",
            "providers[0].name must not be empty",
        );
    }

    #[test]
    fn base_url_is_checked() {
        let provider = |base_url: &str| {
            format!(
                "[[providers]]\nname=\"p\"\nkind=\"ollama\"\nmodel=\"m\"\nbase_url=\"{base_url}\""
            )
        };
        check_invalid(&provider("localhost:11434"), "must start with http");
        check_invalid(&provider("not a url"), "is not a URL");
        check_invalid(&provider("ftp://host"), "must start with http");
        check_invalid(
            &provider("http://user:secret@host"),
            "must not contain credentials",
        );
        check_invalid(&provider("http://host/?a=b"), "query or fragment");
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"ollama\"\nmodel=\"m\"",
            "base_url is required",
        );
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"local\"\nbase_url=\"http://x\"",
            "base_url is not used by kind `local`",
        );
    }

    #[test]
    fn endpoint_only_for_openai() {
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"ollama\"\nmodel=\"m\"\nbase_url=\"http://x\"\nendpoint=\"chat\"",
            "endpoint is only allowed for kind `openai`",
        );
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"openai\"\nmodel=\"m\"\nbase_url=\"http://x\"\nendpoint=\"embeddings\"",
            "unknown variant `embeddings`",
        );
    }

    #[test]
    fn model_required_for_network_kinds() {
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"openai\"\nbase_url=\"http://x\"",
            "model is required",
        );
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"openai\"\nbase_url=\"http://x\"\nmodel=\"\"",
            "model must not be empty",
        );
    }

    #[test]
    fn anthropic_and_google_default_their_base_url_and_need_a_key() {
        for kind in [ProviderKind::Anthropic, ProviderKind::Google] {
            let kind_name = kind.as_str();
            let config = Config::parse_str(&format!(
                "[[providers]]\nname=\"p\"\nkind=\"{kind_name}\"\nmodel=\"m\"\napi_key_env=\"KEY\""
            ))
            .unwrap();
            assert_eq!(config.providers[0].kind, kind);
            assert_eq!(config.providers[0].base_url, None);
            assert!(kind.default_base_url().is_some());
            // Chat models: no fill-in-the-middle template, whatever the model is called.
            assert_eq!(config.providers[0].fim_family(), None);
            check_invalid(
                &format!("[[providers]]\nname=\"claude\"\nkind=\"{kind_name}\"\nmodel=\"m\""),
                &format!("provider `claude`: api_key_env is required for kind `{kind_name}`"),
            );
            check_invalid(
                &format!("[[providers]]\nname=\"p\"\nkind=\"{kind_name}\"\napi_key_env=\"KEY\""),
                &format!("model is required for kind `{kind_name}`"),
            );
            check_invalid(
                &format!(
                    "[[providers]]\nname=\"p\"\nkind=\"{kind_name}\"\nmodel=\"m\"\napi_key_env=\"KEY\"\nbase_url=\"http://u:p@x\""
                ),
                "must not contain credentials",
            );
            check_invalid(
                &format!(
                    "[[providers]]\nname=\"p\"\nkind=\"{kind_name}\"\nmodel=\"m\"\napi_key_env=\"KEY\"\ntemplate=\"qwen\""
                ),
                &format!("template `qwen` is not used by kind `{kind_name}`"),
            );
            check_invalid(
                &format!(
                    "[[providers]]\nname=\"p\"\nkind=\"{kind_name}\"\nmodel=\"m\"\napi_key_env=\"KEY\"\nendpoint=\"chat\""
                ),
                "endpoint is only allowed for kind `openai`",
            );
        }
        assert_eq!(ProviderKind::Ollama.default_base_url(), None);
    }

    #[test]
    fn api_key_env_must_be_a_variable_name() {
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"openai\"\nbase_url=\"http://x\"\nmodel=\"m\"\napi_key_env=\"sk-abc def\"",
            "NAME of an environment variable",
        );
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"local\"\napi_key_env=\"KEY\"",
            "api_key_env is not used",
        );
    }

    #[test]
    fn limits_are_checked() {
        check_invalid(
            "[limits]\nmax_body_bytes = 0",
            "max_body_bytes must be at least 1",
        );
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"ollama\"\nmodel=\"m\"\nbase_url=\"http://x\"\ntimeout_ms=0",
            "timeout_ms must be at least 1",
        );
        check_invalid("database_url = \"mysql://x\"", "must be a SQLite URL");
        check_invalid(
            "database_url = \"postgres://u:hunter2@h/db?sslmode=sometimes\"",
            "postgres://u:***@h/db",
        );
        Config::parse_str("database_url = \"postgres://u@h/db\"").unwrap();
    }

    fn provider(kind: &str, extra: &str) -> ProviderConfig {
        let base_url = if kind == "local" {
            ""
        } else {
            "base_url = \"http://x\"\n"
        };
        let config = Config::parse_str(&format!(
            "[[providers]]\nname=\"p\"\nkind=\"{kind}\"\n{base_url}{extra}"
        ))
        .unwrap();
        config.providers[0].clone()
    }

    #[test]
    fn template_defaults_to_detection_from_the_model() {
        let ollama = |extra: &str| provider("ollama", extra).fim_family();
        assert_eq!(
            ollama("model=\"qwen2.5-coder:7b-base\""),
            Some(Family::Qwen)
        );
        assert_eq!(ollama("model=\"llama3.1:8b\""), None);
        assert_eq!(
            ollama("model=\"qwen2.5-coder:7b\"\ntemplate=\"auto\""),
            Some(Family::Qwen)
        );
        assert_eq!(
            ollama("model=\"qwen2.5-coder:7b\"\ntemplate=\"none\""),
            None
        );
        assert_eq!(
            ollama("model=\"my-finetune\"\ntemplate=\"deepseek-coder\""),
            Some(Family::DeepSeekCoder)
        );
        assert_eq!(
            ollama("model=\"m\"\ntemplate=\"qwen2.5-coder\""),
            Some(Family::Qwen)
        );
        let openai = |extra: &str| provider("openai", extra).fim_family();
        assert_eq!(
            openai("model=\"codestral-latest\""),
            Some(Family::Codestral)
        );
        // Chat models get an instruction prompt whatever their name.
        assert_eq!(
            openai("model=\"qwen2.5-coder-32b-instruct\"\nendpoint=\"chat\""),
            None
        );
        assert_eq!(provider("local", "model=\"starcoder2\"").fim_family(), None);
        for family in Family::ALL {
            let setting = format!("model=\"m\"\ntemplate=\"{}\"", family.as_str());
            assert_eq!(ollama(&setting), Some(family));
        }
    }

    #[test]
    fn template_is_checked() {
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"ollama\"\nbase_url=\"http://x\"\nmodel=\"m\"\ntemplate=\"gpt\"",
            "unknown variant `gpt`",
        );
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"local\"\ntemplate=\"qwen\"",
            "template is not used by kind `local`",
        );
        check_invalid(
            "[[providers]]\nname=\"p\"\nkind=\"openai\"\nbase_url=\"http://x\"\nmodel=\"m\"\nendpoint=\"chat\"\ntemplate=\"qwen\"",
            "template `qwen` is not used by endpoint `chat`",
        );
        // `auto` and `none` are fine everywhere.
        provider(
            "openai",
            "model=\"m\"\nendpoint=\"chat\"\ntemplate=\"none\"",
        );
        provider("local", "template=\"auto\"");
    }

    #[test]
    fn tiers_default_and_override_one_key_at_a_time() {
        let context = |config: &Config, tier: tandem_shared::Tier| {
            config
                .tiers()
                .unwrap()
                .get(&tier)
                .unwrap()
                .max_context_tokens
        };
        use tandem_shared::Tier;
        let config = Config::default();
        assert_eq!(context(&config, Tier::free()), 4_000);
        assert_eq!(context(&config, Tier::pro()), 16_000);
        assert_eq!(context(&config, Tier::enterprise()), 32_000);
        let config =
            Config::parse_str("[tiers.free]\nmax_context_tokens = 2000\n[tiers.pro]\n").unwrap();
        assert_eq!(context(&config, Tier::free()), 2_000);
        assert_eq!(context(&config, Tier::pro()), 16_000);
        assert_eq!(context(&config, Tier::enterprise()), 32_000);
    }

    #[test]
    fn tiers_are_checked() {
        check_invalid(
            "[tiers.gold]\nmax_context_tokens = 1",
            "tiers.gold.requests_per_hour is missing",
        );
        check_invalid(
            "[tiers.free]\nmax_context_tokens = 0",
            "tiers.free.max_context_tokens must be at least 1",
        );
        check_invalid(
            "[tiers.free]\nrequests_per_minute = 5",
            "unknown field `requests_per_minute`",
        );
        check_invalid("[tiers.free]\nmax_context_tokens = -1", "invalid value");
        check_invalid(
            "[tiers.free]\nproviders = [\"gpt\"]",
            "`gpt` is neither a [[providers]] name",
        );
        // A tier may name a configured provider.
        Config::parse_str(
            "[[providers]]\nname=\"gpt\"\nkind=\"openai\"\nbase_url=\"http://x\"\nmodel=\"m\"\n\
             [tiers.free]\nproviders = [\"gpt\"]",
        )
        .unwrap();
    }
}
