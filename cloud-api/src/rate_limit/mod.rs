//! Per-user rate limits and quotas: a burst limit (GCRA) and hourly, daily and daily-token
//! quotas over UTC clock windows, behind one async facade, [`Limits`].
//!
//! Without `[redis] url` every instance keeps its own counters in memory (`local.rs`).
//! With it the counters live in Redis (`redis.rs`), and one Lua script checks and counts
//! each request atomically, so limits hold exactly across any number of instances.
//!
//! While Redis does not answer (an error, or no answer within `[redis] timeout_ms`), each
//! request is decided by the instance's in-memory limiter with every limit divided by
//! `[redis] instances` (`fallback.rs`), with a rate-limited warning and the metrics
//! `tandem_rate_limit_fallbacks_total` and `tandem_redis_up`. Serving with scaled limits
//! beats refusing everyone, or admitting everyone, while a cache is down. Redis is asked
//! again a second after a failure, and used again as soon as it answers.
//!
//! Tokens are reserved at admission (the request's estimated prompt) and settled with the
//! provider's count when the answer is in ([`Limits::settle`]), so concurrent requests
//! cannot overdraw the token budget by more than their completions. A user's counters
//! start from the usage records of the current hour and day whenever the limiter does not
//! know them (first request on an instance, a new day in Redis, Redis restarted empty).

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::config::redis::RedisConfig;
use crate::metrics::Metrics;
use crate::tiers::{TierPolicy, Tiers};

mod fallback;
mod local;
mod redis;
#[cfg(test)]
mod tests;

pub use local::{RateLimiter, SHRINK_INTERVAL};
pub use redis::RedisSetupError;

use fallback::Fallback;
use redis::{Decision, RedisStore};

/// A quota window: what it allows, what is used, and when it starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub used: u64,
    pub resets_at: DateTime<Utc>,
}

impl Window {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Whole seconds from `now` until the reset, at least 1.
    pub fn resets_in_secs(&self, now: DateTime<Utc>) -> u64 {
        let millis = (self.resets_at - now).num_milliseconds().max(0) as u64;
        millis.div_ceil(1000).max(1)
    }
}

/// A user's quotas as they stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStatus {
    pub hour: Window,
    pub day: Window,
    pub tokens: Window,
}

impl QuotaStatus {
    /// `policy`'s quotas in the windows of `now`, with what is used of each.
    fn new(
        policy: &TierPolicy,
        now: DateTime<Utc>,
        hour_requests: u64,
        day_requests: u64,
        day_tokens: u64,
    ) -> QuotaStatus {
        let (hour, day) = window_starts(now);
        QuotaStatus {
            hour: Window {
                limit: u64::from(policy.requests_per_hour),
                used: hour_requests,
                resets_at: hour + TimeDelta::hours(1),
            },
            day: Window {
                limit: u64::from(policy.requests_per_day),
                used: day_requests,
                resets_at: day + TimeDelta::days(1),
            },
            tokens: Window {
                limit: policy.tokens_per_day,
                used: day_tokens,
                resets_at: day + TimeDelta::days(1),
            },
        }
    }

    /// The first quota, in the order hour, day, tokens, with no room for one more request
    /// reserving `tokens`.
    fn exhausted(&self, tokens: u64) -> Option<(Limit, Window)> {
        if self.hour.remaining() == 0 {
            return Some((Limit::RequestsPerHour, self.hour));
        }
        if self.day.remaining() == 0 {
            return Some((Limit::RequestsPerDay, self.day));
        }
        if self.tokens.remaining() < tokens.max(1) {
            return Some((Limit::TokensPerDay, self.tokens));
        }
        None
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Burst,
    RequestsPerHour,
    RequestsPerDay,
    TokensPerDay,
}

impl Limit {
    /// The configuration key of the limit.
    pub fn key(self) -> &'static str {
        match self {
            Limit::Burst => "burst_per_minute",
            Limit::RequestsPerHour => "requests_per_hour",
            Limit::RequestsPerDay => "requests_per_day",
            Limit::TokensPerDay => "tokens_per_day",
        }
    }
}

/// A refused request: which limit, its value, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub limit: Limit,
    pub limit_value: u64,
    pub retry_after_secs: u64,
    pub reset_at: DateTime<Utc>,
    /// The quotas as they stand (nothing was counted for the refused request).
    pub status: QuotaStatus,
}

impl Rejection {
    /// Refused by the quota `limit`, whose `window` is full until it resets.
    fn quota(
        limit: Limit,
        window: Window,
        status: QuotaStatus,
        now: DateTime<Utc>,
    ) -> Box<Rejection> {
        Box::new(Rejection {
            limit,
            limit_value: window.limit,
            retry_after_secs: window.resets_in_secs(now),
            reset_at: window.resets_at,
            status,
        })
    }

    /// Refused by `policy`'s burst limit for `retry_after_secs`.
    fn burst(
        policy: &TierPolicy,
        retry_after_secs: u64,
        status: QuotaStatus,
        now: DateTime<Utc>,
    ) -> Box<Rejection> {
        Box::new(Rejection {
            limit: Limit::Burst,
            limit_value: u64::from(policy.burst_per_minute),
            retry_after_secs,
            reset_at: now + TimeDelta::seconds(retry_after_secs as i64),
            status,
        })
    }
}

/// The UTC hour and day `now` falls in.
pub fn window_starts(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
    let day = now.duration_trunc(TimeDelta::days(1)).unwrap_or(now);
    (hour, day)
}

/// What the usage records say a user used in the current hour and day: where their
/// counters start when the limiter does not know them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seed {
    pub hour_requests: u64,
    pub day_requests: u64,
    pub day_tokens: u64,
}

/// Where an admitted request was counted, so that settling and refunding adjust the same
/// counters even when Redis came or went in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ledger {
    /// The instance's own counters.
    Local,
    /// Redis, shared by every instance.
    Shared,
}

/// What admission took, kept by the request to settle or refund it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// Tokens taken from the daily budget until the answer says how many were used.
    pub reserved: u64,
    /// When the request was admitted: its counters are those of this hour and day.
    pub admitted_at: DateTime<Utc>,
    ledger: Ledger,
}

/// An admitted request: the quotas after counting it, and its receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    pub status: QuotaStatus,
    pub receipt: Receipt,
}

/// Why a request was not admitted.
#[derive(Debug)]
pub enum AdmitError<E> {
    /// A limit refuses it.
    Limited(Box<Rejection>),
    /// The usage records to start the user's counters from could not be read.
    Seeding(E),
}

/// How the shared limits stand, for `GET /ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisHealth {
    /// Redis answers: limits are exact across instances.
    Ok,
    /// Redis does not answer: requests are still served, each instance enforcing its
    /// share of the limits (`[redis] instances`).
    Degraded,
}

impl RedisHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisHealth::Ok => "ok",
            RedisHealth::Degraded => "degraded",
        }
    }
}

/// The rate limits and quotas of the deployment (see the module documentation).
pub struct Limits {
    /// Without Redis, the limiter; with it, the fallback, whose tiers have every limit
    /// divided by `[redis] instances`.
    local: RateLimiter,
    shared: Option<Shared>,
}

/// The Redis store and what to do without it.
struct Shared {
    store: RedisStore,
    fallback: Fallback,
}

impl std::fmt::Debug for Limits {
    // Not the store: its connection's `Debug` would show the URL, password included.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("redis", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// Per-instance limits, in memory.
    pub fn local(tiers: &Tiers) -> Limits {
        Limits {
            local: RateLimiter::new(tiers),
            shared: None,
        }
    }

    /// Limits in Redis when `config` names a URL, per instance otherwise. Connects lazily,
    /// so an instance starts (with the fallback) while Redis is down. Needs a Tokio
    /// runtime.
    pub fn from_config(
        tiers: &Tiers,
        config: &RedisConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Limits, RedisSetupError> {
        let Some(url) = &config.url else {
            return Ok(Limits::local(tiers));
        };
        let store = RedisStore::connect_lazily(url, &config.key_prefix, config.timeout_ms)?;
        let fallback = Fallback::new(config.instances, metrics);
        let scaled: Vec<TierPolicy> = tiers.all().map(|policy| fallback.scaled(policy)).collect();
        Ok(Limits {
            local: RateLimiter::for_policies(&scaled),
            shared: Some(Shared { store, fallback }),
        })
    }

    /// Admits one request of `user_id` on `policy` that reserves `tokens`, or says which
    /// limit refuses it. `usage` reads what the usage records say the user used this hour
    /// and day; it is called (once) only when the limiter does not know the user.
    pub async fn admit<F, Fut, E>(
        &self,
        user_id: &str,
        policy: &TierPolicy,
        tokens: u64,
        now: DateTime<Utc>,
        usage: F,
    ) -> Result<Admitted, AdmitError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Seed, E>>,
    {
        let mut usage = Usage::new(usage);
        let Some(shared) = &self.shared else {
            return self
                .admit_locally(user_id, policy, tokens, now, &mut usage, 1)
                .await;
        };
        if shared.fallback.should_try_redis() {
            let mut decision = shared.store.admit(user_id, policy, tokens, now, None).await;
            if let Ok(Decision::Unseeded) = decision {
                let seed = usage.read().await.map_err(AdmitError::Seeding)?;
                decision = shared
                    .store
                    .admit(user_id, policy, tokens, now, Some(&seed))
                    .await;
            }
            match decision {
                Ok(Decision::Admitted(status)) => {
                    shared.fallback.redis_answered(&self.local);
                    return Ok(Admitted {
                        status,
                        receipt: Receipt {
                            reserved: tokens,
                            admitted_at: now,
                            ledger: Ledger::Shared,
                        },
                    });
                }
                Ok(Decision::Refused(rejection)) => {
                    shared.fallback.redis_answered(&self.local);
                    return Err(AdmitError::Limited(rejection));
                }
                Ok(Decision::Unseeded) => {
                    // Seeded and admitted in one script: only a key evicted in between.
                    shared
                        .fallback
                        .redis_failed("admit", &redis::StoreError::StillUnseeded);
                }
                Err(error) => shared.fallback.redis_failed("admit", &error),
            }
        } else {
            shared.fallback.redis_skipped("admit");
        }
        let scaled = shared.fallback.scaled(policy);
        let instances = shared.fallback.instances();
        self.admit_locally(user_id, &scaled, tokens, now, &mut usage, instances)
            .await
    }

    /// Admission by the in-memory limiter, seeding an unknown user with their share
    /// (`1/instances`) of what the usage records say.
    async fn admit_locally<F, Fut, E>(
        &self,
        user_id: &str,
        policy: &TierPolicy,
        tokens: u64,
        now: DateTime<Utc>,
        usage: &mut Usage<F>,
        instances: u32,
    ) -> Result<Admitted, AdmitError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Seed, E>>,
    {
        if !self.local.knows(user_id) {
            let seed = usage.read().await.map_err(AdmitError::Seeding)?;
            let share = |used: u64| used.div_ceil(u64::from(instances.max(1)));
            self.local.seed(
                user_id,
                share(seed.hour_requests),
                share(seed.day_requests),
                share(seed.day_tokens),
                now,
            );
        }
        let status = self
            .local
            .admit(user_id, policy, tokens, now)
            .map_err(AdmitError::Limited)?;
        Ok(Admitted {
            status,
            receipt: Receipt {
                reserved: tokens,
                admitted_at: now,
                ledger: Ledger::Local,
            },
        })
    }

    /// Replaces the tokens `receipt` reserved with what the request `used`, in the day it
    /// was admitted. Never fails the request: a settle Redis does not take is logged and
    /// counted, and the reservation stays charged (the safe side) until the day ends.
    pub async fn settle(&self, user_id: &str, receipt: &Receipt, used: u64) {
        match (receipt.ledger, &self.shared) {
            (Ledger::Shared, Some(shared)) => {
                if !shared.fallback.should_try_redis() {
                    shared.fallback.redis_skipped("settle");
                    return;
                }
                match shared.store.settle(user_id, receipt, used).await {
                    Ok(()) => shared.fallback.redis_answered(&self.local),
                    Err(error) => shared.fallback.redis_failed("settle", &error),
                }
            }
            _ => self
                .local
                .settle_tokens(user_id, receipt.reserved, used, receipt.admitted_at),
        }
    }

    /// Gives back what an admitted request took when it could not be served (every
    /// provider failed): the user is not charged for the server's failure. Like
    /// [`Limits::settle`], never fails the request.
    pub async fn refund(&self, user_id: &str, receipt: &Receipt) {
        match (receipt.ledger, &self.shared) {
            (Ledger::Shared, Some(shared)) => {
                if !shared.fallback.should_try_redis() {
                    shared.fallback.redis_skipped("refund");
                    return;
                }
                match shared.store.refund(user_id, receipt).await {
                    Ok(()) => shared.fallback.redis_answered(&self.local),
                    Err(error) => shared.fallback.redis_failed("refund", &error),
                }
            }
            _ => self
                .local
                .refund(user_id, receipt.reserved, receipt.admitted_at),
        }
    }

    /// A user's quotas without counting anything: from Redis, or while it does not
    /// answer, the instance's share that the fallback enforces.
    pub async fn status(
        &self,
        user_id: &str,
        policy: &TierPolicy,
        now: DateTime<Utc>,
    ) -> QuotaStatus {
        let Some(shared) = &self.shared else {
            return self.local.status(user_id, policy, now);
        };
        if shared.fallback.should_try_redis() {
            match shared.store.status(user_id, policy, now).await {
                Ok(status) => {
                    shared.fallback.redis_answered(&self.local);
                    return status;
                }
                Err(error) => shared.fallback.redis_failed("status", &error),
            }
        } else {
            shared.fallback.redis_skipped("status");
        }
        self.local
            .status(user_id, &shared.fallback.scaled(policy), now)
    }

    /// Whether Redis answers a PING within the timeout; `None` without `[redis]`.
    pub async fn redis_health(&self) -> Option<RedisHealth> {
        let shared = self.shared.as_ref()?;
        Some(match shared.store.ping().await {
            Ok(()) => {
                shared.fallback.redis_answered(&self.local);
                RedisHealth::Ok
            }
            Err(error) => {
                shared.fallback.redis_unreachable(&error);
                RedisHealth::Degraded
            }
        })
    }

    /// Forgets burst state of users idle for a while; call now and then.
    pub fn shrink(&self) {
        self.local.shrink();
    }
}

/// The usage records of one user, read at most once per admission.
struct Usage<F> {
    read: Option<F>,
    seed: Option<Seed>,
}

impl<F, Fut, E> Usage<F>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Seed, E>>,
{
    fn new(read: F) -> Usage<F> {
        Usage {
            read: Some(read),
            seed: None,
        }
    }

    async fn read(&mut self) -> Result<Seed, E> {
        if let Some(seed) = self.seed {
            return Ok(seed);
        }
        // `read` is only gone once `seed` is set.
        let seed = match self.read.take() {
            Some(read) => read().await?,
            None => Seed::default(),
        };
        self.seed = Some(seed);
        Ok(seed)
    }
}
