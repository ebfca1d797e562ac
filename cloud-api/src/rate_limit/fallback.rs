//! What an instance does while Redis does not answer: decides requests with its own
//! limiter and each limit divided by the expected number of instances, warns (at most
//! every [`WARNING_INTERVAL`]), counts the fallbacks, and leaves Redis alone for
//! [`RETRY_INTERVAL`] after a failure so a hung Redis costs one timeout a second, not one
//! per request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::local::RateLimiter;
use super::redis::StoreError;
use crate::metrics::Metrics;
use crate::tiers::TierPolicy;

/// How long after a failure requests go straight to the fallback before Redis is asked
/// again.
pub(super) const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Least time between two warnings that Redis does not answer.
pub(super) const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The fallback's state, shared by every request of the instance.
pub(super) struct Fallback {
    instances: u32,
    metrics: Arc<Metrics>,
    /// Whether Redis answered the last call; the fast path reads only this.
    up: AtomicBool,
    outage: Mutex<Outage>,
    /// Fallbacks since the last warning, told in the next one.
    unwarned: AtomicU64,
}

#[derive(Debug, Default)]
struct Outage {
    /// Until when Redis is left alone.
    retry_at: Option<Instant>,
    last_warning: Option<Instant>,
}

impl Fallback {
    pub(super) fn new(instances: u32, metrics: Arc<Metrics>) -> Fallback {
        // Up until a call says otherwise: the first requests try Redis.
        metrics.redis_up(true);
        Fallback {
            instances: instances.max(1),
            metrics,
            up: AtomicBool::new(true),
            outage: Mutex::new(Outage::default()),
            unwarned: AtomicU64::new(0),
        }
    }

    pub(super) fn instances(&self) -> u32 {
        self.instances
    }

    /// `policy` with every limit divided by the number of instances, so the deployment
    /// as a whole stays near its limits while each instance counts alone. A limit never
    /// drops below 1 (0, which refuses everything or means no burst limit, stays 0).
    pub(super) fn scaled(&self, policy: &TierPolicy) -> TierPolicy {
        let divide = |limit: u64| match limit {
            0 => 0,
            limit => (limit / u64::from(self.instances)).max(1),
        };
        let divide_u32 = |limit: u32| u32::try_from(divide(u64::from(limit))).unwrap_or(limit);
        TierPolicy {
            requests_per_hour: divide_u32(policy.requests_per_hour),
            requests_per_day: divide_u32(policy.requests_per_day),
            burst_per_minute: divide_u32(policy.burst_per_minute),
            tokens_per_day: divide(policy.tokens_per_day),
            ..policy.clone()
        }
    }

    fn outage(&self) -> std::sync::MutexGuard<'_, Outage> {
        self.outage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether to ask Redis now: always while it answers, once a [`RETRY_INTERVAL`]
    /// while it does not.
    pub(super) fn should_try_redis(&self) -> bool {
        if self.up.load(Ordering::Acquire) {
            return true;
        }
        let mut outage = self.outage();
        let now = Instant::now();
        match outage.retry_at {
            Some(retry_at) if now < retry_at => false,
            _ => {
                // This request probes; the others keep to the fallback meanwhile.
                outage.retry_at = Some(now + RETRY_INTERVAL);
                true
            }
        }
    }

    /// Redis answered. After an outage, the fallback's counters are dropped: the next
    /// outage starts them again from the usage records, which know what Redis counted.
    pub(super) fn redis_answered(&self, local: &RateLimiter) {
        // A load first: the common case writes nothing shared.
        if self.up.load(Ordering::Acquire) || self.up.swap(true, Ordering::AcqRel) {
            return;
        }
        self.metrics.redis_up(true);
        local.forget_counters();
        let mut outage = self.outage();
        outage.retry_at = None;
        outage.last_warning = None;
        let missed = self.unwarned.swap(0, Ordering::Relaxed);
        tracing::info!(
            fallbacks_since_last_warning = missed,
            "Redis answers again: rate limits are shared across instances again"
        );
    }

    /// A Redis call of `operation` failed: this request is decided by the fallback
    /// (`admit`, `status`) or its adjustment is dropped (`settle`, `refund`).
    pub(super) fn redis_failed(&self, operation: &'static str, error: &StoreError) {
        self.metrics.rate_limit_fallback(operation);
        self.went_down(error);
    }

    /// Redis was not asked (it failed less than [`RETRY_INTERVAL`] ago): the fallback
    /// decides.
    pub(super) fn redis_skipped(&self, operation: &'static str) {
        self.metrics.rate_limit_fallback(operation);
        self.unwarned.fetch_add(1, Ordering::Relaxed);
    }

    /// A health check found Redis unreachable; no request was decided by it.
    pub(super) fn redis_unreachable(&self, error: &StoreError) {
        self.went_down(error);
    }

    fn went_down(&self, error: &StoreError) {
        self.up.store(false, Ordering::Release);
        self.metrics.redis_up(false);
        let now = Instant::now();
        let mut outage = self.outage();
        outage.retry_at = Some(now + RETRY_INTERVAL);
        let due = outage
            .last_warning
            .is_none_or(|last| now.duration_since(last) >= WARNING_INTERVAL);
        if !due {
            self.unwarned.fetch_add(1, Ordering::Relaxed);
            return;
        }
        outage.last_warning = Some(now);
        drop(outage);
        let missed = self.unwarned.swap(0, Ordering::Relaxed);
        // `error` never holds the URL, so never the password.
        tracing::warn!(
            %error,
            instances = self.instances,
            fallbacks_since_last_warning = missed,
            "Redis does not answer: rate limits fall back to this instance's share \
             (every limit divided by [redis] instances)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiers::Tiers;

    #[test]
    fn scaled_limits_divide_by_instances_but_never_below_one() {
        let fallback = Fallback::new(3, Arc::new(Metrics::new()));
        let mut policy = Tiers::default()
            .get(&tandem_shared::Tier::free())
            .unwrap()
            .clone();
        policy.requests_per_hour = 50;
        policy.requests_per_day = 2;
        policy.burst_per_minute = 0;
        policy.tokens_per_day = 1_000;
        let scaled = fallback.scaled(&policy);
        assert_eq!(
            (
                scaled.requests_per_hour,
                scaled.requests_per_day,
                scaled.burst_per_minute,
                scaled.tokens_per_day
            ),
            (16, 1, 0, 333)
        );
        assert_eq!(scaled.max_context_tokens, policy.max_context_tokens);
        let one = Fallback::new(1, Arc::new(Metrics::new()));
        assert_eq!(one.scaled(&policy), policy);
    }

    #[test]
    fn after_a_failure_redis_is_left_alone_for_a_while() {
        let fallback = Fallback::new(2, Arc::new(Metrics::new()));
        let local = RateLimiter::new(&Tiers::default());
        assert!(fallback.should_try_redis());
        fallback.redis_failed("admit", &StoreError::Timeout(250));
        assert!(!fallback.should_try_redis());
        fallback.redis_skipped("admit");
        fallback.redis_answered(&local);
        assert!(fallback.should_try_redis());
    }
}
