//! Prometheus metrics, served at `GET /metrics` in the OpenMetrics text format.
//!
//! Counters and histograms are updated as requests run; the gauges of things that have a
//! state of their own (provider breakers, database connections) are read when scraped.
//! No label holds a user, a key or anything from a request body: label values are route
//! templates, methods, statuses, provider names and fixed words, so the number of series
//! stays bounded.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::routing::{Attempt, AttemptOutcome, BreakerState, ProviderHealth};

/// The `Content-Type` of a scrape.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    provider: String,
    /// `answered`, `status_<code>`, `unreachable`, `timeout`, `out_of_budget`,
    /// `invalid_response`, `skipped`.
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    provider: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    /// `admit`, `status`, `settle` or `refund`.
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: String,
    /// `prompt` or `completion`.
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndingLabels {
    /// `complete`, `failed` or `client_closed`.
    ending: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    /// `idle` or `in_use`.
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// HTTP handling time: 0.25 ms to 16 s.
fn http_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 17))
}

/// Provider attempt time: 5 ms to 82 s.
fn provider_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Every metric of one instance.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    provider_attempts: Family<AttemptLabels, Counter>,
    provider_duration: HistogramFamily<ProviderLabels>,
    breaker_state: Family<BreakerLabels, Gauge>,
    consecutive_failures: Family<ProviderLabels, Gauge>,
    rate_limited: Family<LimitLabels, Counter>,
    rate_limit_fallbacks: Family<OperationLabels, Counter>,
    /// Registered only when `[redis]` is configured ([`Metrics::register_redis`]): a 0
    /// from a server without Redis would read as an outage.
    redis_up: Gauge,
    tokens: Family<TokenLabels, Counter>,
    streams: Family<EndingLabels, Counter>,
    key_cache: Family<ResultLabels, Counter>,
    usage_records: Family<ResultLabels, Counter>,
    db_connections: Family<PoolLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("tandem"),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_histogram),
            provider_attempts: Family::default(),
            provider_duration: Family::new_with_constructor(provider_histogram),
            breaker_state: Family::default(),
            consecutive_failures: Family::default(),
            rate_limited: Family::default(),
            rate_limit_fallbacks: Family::default(),
            redis_up: Gauge::default(),
            tokens: Family::default(),
            streams: Family::default(),
            key_cache: Family::default(),
            usage_records: Family::default(),
            db_connections: Family::default(),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to the first byte for streams)",
            metrics.http_duration.clone(),
        );
        registry.register(
            "provider_attempts",
            "Provider attempts, by provider and outcome",
            metrics.provider_attempts.clone(),
        );
        registry.register(
            "provider_attempt_duration_seconds",
            "Time of each provider attempt that was made (skipped ones excluded)",
            metrics.provider_duration.clone(),
        );
        registry.register(
            "provider_breaker_state",
            "1 for the state each provider's circuit breaker is in (closed, half_open, open)",
            metrics.breaker_state.clone(),
        );
        registry.register(
            "provider_consecutive_failures",
            "Failures of each provider since it last answered",
            metrics.consecutive_failures.clone(),
        );
        registry.register(
            "rate_limit_rejections",
            "Requests refused with 429, by the limit that refused them",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "rate_limit_fallbacks",
            "Rate-limit calls to Redis that failed or timed out, by operation: admit and status \
             were decided by the per-instance fallback, settle and refund were dropped",
            metrics.rate_limit_fallbacks.clone(),
        );
        registry.register(
            "usage_tokens",
            "Tokens of answered requests, by provider and kind (prompt, completion)",
            metrics.tokens.clone(),
        );
        registry.register(
            "streams",
            "Streamed answers, by how they ended (complete, failed, client_closed)",
            metrics.streams.clone(),
        );
        registry.register(
            "key_cache_lookups",
            "API key checks, by whether the key cache answered (hit) or the database (miss)",
            metrics.key_cache.clone(),
        );
        registry.register(
            "usage_records",
            "Usage records written, by result (committed, failed)",
            metrics.usage_records.clone(),
        );
        registry.register(
            "db_connections",
            "Database pool connections, by state (idle, in_use)",
            metrics.db_connections.clone(),
        );
        metrics
    }

    /// One answered HTTP request; `route` is the matched route template.
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Every attempt one request made of the providers.
    pub fn provider_attempts(&self, attempts: &[Attempt]) {
        for attempt in attempts {
            let outcome = attempt.outcome.to_string();
            self.provider_attempts
                .get_or_create(&AttemptLabels {
                    provider: attempt.provider.clone(),
                    outcome,
                })
                .inc();
            if attempt.outcome != AttemptOutcome::Skipped {
                self.provider_duration
                    .get_or_create(&ProviderLabels {
                        provider: attempt.provider.clone(),
                    })
                    .observe(attempt.elapsed.as_secs_f64());
            }
        }
    }

    /// A request refused by `limit` (`burst_per_minute`, `requests_per_hour`, ...).
    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// Adds `tandem_redis_up`, for a server whose limits are in Redis.
    pub fn register_redis(&mut self) {
        self.registry.register(
            "redis_up",
            "1 while Redis answers the rate limiter, 0 while it does not (limits per instance)",
            self.redis_up.clone(),
        );
    }

    /// A Redis call of the rate limiter failed or timed out during `operation` (`admit`,
    /// `status`, `settle`, `refund`).
    pub fn rate_limit_fallback(&self, operation: &'static str) {
        self.rate_limit_fallbacks
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// Whether Redis answered the last call.
    pub fn redis_up(&self, up: bool) {
        self.redis_up.set(i64::from(up));
    }

    /// The tokens of an answered request.
    pub fn tokens(&self, provider: &str, prompt: u32, completion: u32) {
        for (kind, count) in [("prompt", prompt), ("completion", completion)] {
            self.tokens
                .get_or_create(&TokenLabels {
                    provider: provider.to_owned(),
                    kind,
                })
                .inc_by(u64::from(count));
        }
    }

    /// A streamed answer ended: `complete`, `failed` or `client_closed`.
    pub fn stream_ended(&self, ending: &'static str) {
        self.streams.get_or_create(&EndingLabels { ending }).inc();
    }

    /// A key check answered by the cache (`hit`) or the database (`miss`).
    pub fn key_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.key_cache.get_or_create(&ResultLabels { result }).inc();
    }

    /// `count` usage records committed, or failed to commit.
    pub fn usage_records(&self, count: u64, committed: bool) {
        let result = if committed { "committed" } else { "failed" };
        self.usage_records
            .get_or_create(&ResultLabels { result })
            .inc_by(count);
    }

    /// The scrape: every metric, with the breaker and pool gauges read now.
    pub fn render(&self, providers: &[ProviderHealth], pool_size: u32, pool_idle: usize) -> String {
        for health in providers {
            for (state, name) in [
                (BreakerState::Closed, "closed"),
                (BreakerState::HalfOpen, "half_open"),
                (BreakerState::Open, "open"),
            ] {
                self.breaker_state
                    .get_or_create(&BreakerLabels {
                        provider: health.name.clone(),
                        state: name,
                    })
                    .set(i64::from(health.breaker == state));
            }
            self.consecutive_failures
                .get_or_create(&ProviderLabels {
                    provider: health.name.clone(),
                })
                .set(i64::from(health.consecutive_failures));
        }
        let idle = i64::try_from(pool_idle).unwrap_or(i64::MAX);
        let size = i64::from(pool_size);
        self.db_connections
            .get_or_create(&PoolLabels { state: "idle" })
            .set(idle);
        self.db_connections
            .get_or_create(&PoolLabels { state: "in_use" })
            .set((size - idle).max(0));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_shows_what_was_counted() {
        let metrics = Metrics::new();
        metrics.http_request("/v1/completions", "POST", 200, Duration::from_millis(2));
        metrics.provider_attempts(&[
            Attempt {
                provider: "ollama".into(),
                outcome: AttemptOutcome::Status(503),
                elapsed: Duration::from_millis(5),
            },
            Attempt {
                provider: "claude".into(),
                outcome: AttemptOutcome::Answered,
                elapsed: Duration::from_millis(40),
            },
        ]);
        metrics.rate_limited("requests_per_hour");
        metrics.tokens("claude", 12, 3);
        let health = [ProviderHealth {
            name: "ollama".into(),
            kind: "ollama".into(),
            breaker: BreakerState::Open,
            consecutive_failures: 5,
        }];
        let text = metrics.render(&health, 4, 3);
        for line in [
            r#"tandem_http_requests_total{route="/v1/completions",method="POST",status="200"} 1"#,
            r#"tandem_provider_attempts_total{provider="ollama",outcome="status_503"} 1"#,
            r#"tandem_provider_attempts_total{provider="claude",outcome="answered"} 1"#,
            r#"tandem_rate_limit_rejections_total{limit="requests_per_hour"} 1"#,
            r#"tandem_usage_tokens_total{provider="claude",kind="prompt"} 12"#,
            r#"tandem_provider_breaker_state{provider="ollama",state="open"} 1"#,
            r#"tandem_provider_breaker_state{provider="ollama",state="closed"} 0"#,
            r#"tandem_provider_consecutive_failures{provider="ollama"} 5"#,
            r#"tandem_db_connections{state="in_use"} 1"#,
        ] {
            assert!(text.contains(line), "`{line}` missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Without Redis configured there is no Redis gauge to read as an outage.
        assert!(!text.contains("tandem_redis_up"), "{text}");
    }

    #[test]
    fn redis_gauge_and_fallbacks_once_redis_is_configured() {
        let mut metrics = Metrics::new();
        metrics.register_redis();
        metrics.redis_up(true);
        let text = metrics.render(&[], 1, 1);
        assert!(text.contains("tandem_redis_up 1"), "{text}");
        metrics.redis_up(false);
        metrics.rate_limit_fallback("admit");
        metrics.rate_limit_fallback("admit");
        let text = metrics.render(&[], 1, 1);
        assert!(text.contains("tandem_redis_up 0"), "{text}");
        assert!(
            text.contains(r#"tandem_rate_limit_fallbacks_total{operation="admit"} 2"#),
            "{text}"
        );
    }
}
