//! Per-user rate limits and quotas of one instance, in memory: a burst limit (GCRA, from
//! `governor`) and hourly, daily and daily-token quotas over clock windows (UTC hour and
//! day). The limiter of a server without Redis, and the fallback of one whose Redis does
//! not answer.
//!
//! One mutex guards every user's counters, and admission checks and counts under it, so
//! N simultaneous requests against a remaining quota of k admit exactly k. The critical
//! section is a hash lookup and a few comparisons; a single lock serves well past the
//! request rates one instance can answer. Rejected requests count against nothing.
//!
//! Tokens are reserved at admission (the request's estimated prompt) and settled with
//! the provider's count when the answer is in ([`RateLimiter::settle_tokens`]), so
//! concurrent requests cannot overdraw the token budget by more than their completions.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::{window_starts, QuotaStatus, Rejection};
use crate::tiers::{TierPolicy, Tiers};

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    hour_start: i64,
    hour_requests: u64,
    day_start: i64,
    day_requests: u64,
    day_tokens: u64,
}

impl Counters {
    /// Starts new windows when `now` is past the current ones.
    fn roll(&mut self, now: DateTime<Utc>) {
        let (hour, day) = window_starts(now);
        if self.hour_start != hour.timestamp() {
            self.hour_start = hour.timestamp();
            self.hour_requests = 0;
        }
        if self.day_start != day.timestamp() {
            self.day_start = day.timestamp();
            self.day_requests = 0;
            self.day_tokens = 0;
        }
    }

    fn status(&self, policy: &TierPolicy, now: DateTime<Utc>) -> QuotaStatus {
        QuotaStatus::new(
            policy,
            now,
            self.hour_requests,
            self.day_requests,
            self.day_tokens,
        )
    }
}

/// The limits of one instance (see the module documentation).
pub struct RateLimiter {
    counters: Mutex<HashMap<String, Counters>>,
    /// One keyed GCRA limiter per tier with a burst limit, keyed by user id.
    bursts: HashMap<String, DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(tiers: &Tiers) -> RateLimiter {
        RateLimiter::for_policies(tiers.all())
    }

    /// The limiter of `policies`, whose burst limits it keeps (the quotas come with each
    /// request's policy).
    pub fn for_policies<'a>(policies: impl IntoIterator<Item = &'a TierPolicy>) -> RateLimiter {
        let bursts = policies
            .into_iter()
            .filter_map(|policy| {
                let per_minute = NonZeroU32::new(policy.burst_per_minute)?;
                // The whole minute's allowance may come at once, then one request per
                // 60/n seconds.
                let limiter = DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute));
                Some((policy.name.as_str().to_owned(), limiter))
            })
            .collect();
        RateLimiter {
            counters: Mutex::new(HashMap::new()),
            bursts,
            clock: DefaultClock::default(),
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, HashMap<String, Counters>> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits one request of `user_id` on `policy` that reserves `tokens`, or says which
    /// limit refuses it.
    pub fn admit(
        &self,
        user_id: &str,
        policy: &TierPolicy,
        tokens: u64,
        now: DateTime<Utc>,
    ) -> Result<QuotaStatus, Box<Rejection>> {
        let mut all = self.counters();
        let counters = all.entry(user_id.to_owned()).or_default();
        counters.roll(now);
        let status = counters.status(policy, now);
        if let Some((limit, window)) = status.exhausted(tokens) {
            return Err(Rejection::quota(limit, window, status, now));
        }
        if let Some(burst) = self.bursts.get(policy.name.as_str()) {
            if let Err(not_until) = burst.check_key(&user_id.to_owned()) {
                let wait = not_until.wait_time_from(self.clock.now());
                let retry_after_secs = wait.as_millis().div_ceil(1000).max(1) as u64;
                return Err(Rejection::burst(policy, retry_after_secs, status, now));
            }
        }
        counters.hour_requests += 1;
        counters.day_requests += 1;
        counters.day_tokens += tokens;
        Ok(counters.status(policy, now))
    }

    /// Replaces the `reserved` tokens of an admitted request with what it `used`.
    pub fn settle_tokens(&self, user_id: &str, reserved: u64, used: u64, now: DateTime<Utc>) {
        let mut all = self.counters();
        if let Some(counters) = all.get_mut(user_id) {
            let day_start = window_starts(now).1.timestamp();
            // A request admitted yesterday settles into nothing today.
            if counters.day_start == day_start {
                counters.day_tokens = counters.day_tokens.saturating_sub(reserved) + used;
            }
        }
    }

    /// Gives back what an admitted request took when it could not be served (every
    /// provider failed): the user is not charged for the server's failure.
    pub fn refund(&self, user_id: &str, reserved: u64, admitted_at: DateTime<Utc>) {
        let mut all = self.counters();
        if let Some(counters) = all.get_mut(user_id) {
            let (hour, day) = window_starts(admitted_at);
            if counters.hour_start == hour.timestamp() {
                counters.hour_requests = counters.hour_requests.saturating_sub(1);
            }
            if counters.day_start == day.timestamp() {
                counters.day_requests = counters.day_requests.saturating_sub(1);
                counters.day_tokens = counters.day_tokens.saturating_sub(reserved);
            }
        }
    }

    /// Sets a user's counters for the current windows unless they are known already:
    /// how a restarted instance picks up what the usage records say was used.
    pub fn seed(
        &self,
        user_id: &str,
        hour_requests: u64,
        day_requests: u64,
        day_tokens: u64,
        now: DateTime<Utc>,
    ) {
        let mut all = self.counters();
        all.entry(user_id.to_owned()).or_insert_with(|| {
            let (hour, day) = window_starts(now);
            Counters {
                hour_start: hour.timestamp(),
                hour_requests,
                day_start: day.timestamp(),
                day_requests,
                day_tokens,
            }
        });
    }

    /// Forgets every user's counters, so each is seeded again on their next request.
    pub fn forget_counters(&self) {
        self.counters().clear();
    }

    /// Whether `user_id` has counters (seeded or counted) on this instance.
    pub fn knows(&self, user_id: &str) -> bool {
        self.counters().contains_key(user_id)
    }

    /// A user's quotas without counting anything.
    pub fn status(&self, user_id: &str, policy: &TierPolicy, now: DateTime<Utc>) -> QuotaStatus {
        let mut all = self.counters();
        let mut counters = all.get(user_id).copied().unwrap_or_default();
        counters.roll(now);
        if let Some(stored) = all.get_mut(user_id) {
            *stored = counters;
        }
        counters.status(policy, now)
    }

    /// Forgets burst state of users idle for a while; call now and then.
    pub fn shrink(&self) {
        for limiter in self.bursts.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// How long a burst limiter may keep idle users before [`RateLimiter::shrink`].
pub const SHRINK_INTERVAL: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::rate_limit::tests::policy;
    use crate::rate_limit::Limit;

    fn limiter_for(policy: &TierPolicy) -> RateLimiter {
        let mut limiter = RateLimiter::new(&Tiers::default());
        limiter.bursts.clear();
        if let Some(per_minute) = NonZeroU32::new(policy.burst_per_minute) {
            limiter.bursts.insert(
                policy.name.as_str().to_owned(),
                DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute)),
            );
        }
        limiter
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn hourly_quota_refuses_until_the_next_hour() {
        let policy = policy(3, 100, 0, 1_000_000);
        let limiter = limiter_for(&policy);
        let now = at("2026-12-03T10:59:30Z");
        for used in 1..=3 {
            let status = limiter.admit("u", &policy, 10, now).unwrap();
            assert_eq!(status.hour.used, used);
        }
        let rejection = limiter.admit("u", &policy, 10, now).unwrap_err();
        assert_eq!(rejection.limit, Limit::RequestsPerHour);
        assert_eq!(rejection.retry_after_secs, 30);
        assert_eq!(rejection.reset_at, at("2026-12-03T11:00:00Z"));
        assert_eq!(rejection.status.hour.used, 3, "a refusal counts nothing");
        // Another user is not affected; the next hour starts over.
        limiter.admit("v", &policy, 10, now).unwrap();
        let status = limiter
            .admit("u", &policy, 10, at("2026-12-03T11:00:00Z"))
            .unwrap();
        assert_eq!((status.hour.used, status.day.used), (1, 4));
    }

    #[test]
    fn daily_and_token_quotas() {
        let policy = policy(100, 2, 0, 100);
        let limiter = limiter_for(&policy);
        let now = at("2026-12-03T10:00:00Z");
        limiter.admit("u", &policy, 40, now).unwrap();
        let refused = limiter.admit("u", &policy, 70, now).unwrap_err();
        assert_eq!(
            (refused.limit, refused.limit_value),
            (Limit::TokensPerDay, 100)
        );
        assert_eq!(refused.reset_at, at("2026-12-04T00:00:00Z"));
        // The first used fewer tokens than reserved: room for the second.
        limiter.settle_tokens("u", 40, 25, now);
        limiter.admit("u", &policy, 70, now).unwrap();
        let refused = limiter.admit("u", &policy, 1, now).unwrap_err();
        assert_eq!(refused.limit, Limit::RequestsPerDay);
        assert_eq!(limiter.status("u", &policy, now).tokens.used, 95);
    }

    #[test]
    fn burst_limit_allows_a_minute_at_once_then_spaces_requests() {
        let policy = policy(1000, 1000, 6, 1_000_000);
        let limiter = limiter_for(&policy);
        let now = Utc::now();
        for _ in 0..6 {
            limiter.admit("u", &policy, 1, now).unwrap();
        }
        let refused = limiter.admit("u", &policy, 1, now).unwrap_err();
        assert_eq!(refused.limit, Limit::Burst);
        assert!((1..=10).contains(&refused.retry_after_secs), "{refused:?}");
        assert_eq!(limiter.status("u", &policy, now).hour.used, 6);
    }

    #[test]
    fn seeded_counters_carry_over_a_restart() {
        let policy = policy(5, 100, 0, 1_000_000);
        let limiter = limiter_for(&policy);
        let now = at("2026-12-03T10:10:00Z");
        limiter.seed("u", 4, 40, 500, now);
        assert!(limiter.knows("u"));
        assert_eq!(limiter.admit("u", &policy, 1, now).unwrap().hour.used, 5);
        assert!(limiter.admit("u", &policy, 1, now).is_err());
    }

    #[test]
    fn concurrent_requests_admit_exactly_the_remaining_quota() {
        let policy = Arc::new(policy(1000, 37, 0, 1_000_000));
        let limiter = Arc::new(limiter_for(&policy));
        let now = Utc::now();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (limiter, policy) = (Arc::clone(&limiter), Arc::clone(&policy));
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|_| limiter.admit("u", &policy, 1, now).is_ok())
                        .count()
                })
            })
            .collect();
        let admitted: usize = threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .sum();
        assert_eq!(admitted, 37);
    }
}
