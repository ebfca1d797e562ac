//! A circuit breaker per provider, as a pure state machine: the caller passes the time, so
//! tests drive it with made-up instants and nothing here sleeps or locks.
//!
//! Closed: every request passes; `failure_threshold` consecutive failures open it. Open:
//! requests skip the provider until `cooldown` has passed. Half-open: one request at a time
//! (the probe) passes; its success closes the breaker, its failure opens it again for
//! another cool-down. A probe that ends without an outcome (its request was cancelled)
//! frees the slot for the next request.

use std::time::{Duration, Instant};

use serde::Serialize;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker; at least 1.
    pub failure_threshold: u32,
    /// Time an open breaker keeps requests away before letting a probe through.
    pub cooldown: Duration,
}

/// The state as reported (in `/ready`, and later as a metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests pass.
    Closed,
    /// Requests skip the provider until the cool-down has passed.
    Open,
    /// The cool-down has passed: the next request probes the provider (or one is doing so).
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// What [`Breaker::admit`] decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed: go ahead.
    Pass,
    /// The breaker is half-open and this request is its one probe. Its outcome must be
    /// recorded, or the probe released if there is none.
    Probe,
    /// The breaker is open, or another request is probing.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// One provider's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    state: State,
    consecutive_failures: u32,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Breaker {
        Breaker {
            settings: BreakerSettings {
                failure_threshold: settings.failure_threshold.max(1),
                cooldown: settings.cooldown,
            },
            state: State::Closed,
            consecutive_failures: 0,
        }
    }

    /// Whether a request at `now` would be let through, without taking the probe slot.
    pub fn is_available(&self, now: Instant) -> bool {
        match self.state {
            State::Closed => true,
            State::Open { until } => now >= until,
            State::HalfOpen { probing } => !probing,
        }
    }

    /// Decides whether a request at `now` may go to the provider; a half-open breaker
    /// hands out its one probe.
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            State::Closed => Admission::Pass,
            State::Open { until } if now < until => Admission::Refuse,
            State::Open { .. } | State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                Admission::Probe
            }
            State::HalfOpen { probing: true } => Admission::Refuse,
        }
    }

    /// The provider answered: the breaker closes and the failure count starts over.
    pub fn record_success(&mut self) {
        self.state = State::Closed;
        self.consecutive_failures = 0;
    }

    /// The provider failed at `now`. A failed probe, the threshold reached, or a failure
    /// while open (a request that went ahead anyway) opens the breaker for a cool-down.
    pub fn record_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let open = match self.state {
            State::Closed => self.consecutive_failures >= self.settings.failure_threshold,
            State::Open { .. } | State::HalfOpen { .. } => true,
        };
        if open {
            self.state = State::Open {
                until: now + self.settings.cooldown,
            };
        }
    }

    /// A probe ended without telling anything about the provider (its request was
    /// cancelled, or it failed for the request's own reasons): the next request may probe.
    pub fn release_probe(&mut self) {
        if self.state == (State::HalfOpen { probing: true }) {
            self.state = State::HalfOpen { probing: false };
        }
    }

    /// The state at `now`. An open breaker whose cool-down has passed reports `half_open`:
    /// the next request will probe, so the provider is usable again.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    fn breaker(failure_threshold: u32) -> Breaker {
        Breaker::new(BreakerSettings {
            failure_threshold,
            cooldown: COOLDOWN,
        })
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let start = Instant::now();
        let mut breaker = breaker(3);
        breaker.record_failure(start);
        breaker.record_failure(start);
        assert_eq!(breaker.state(start), BreakerState::Closed);
        assert_eq!(breaker.admit(start), Admission::Pass);
        breaker.record_failure(start);
        assert_eq!(breaker.state(start), BreakerState::Open);
        assert_eq!(breaker.consecutive_failures(), 3);
        assert_eq!(breaker.admit(start + COOLDOWN / 2), Admission::Refuse);
        assert!(!breaker.is_available(start + COOLDOWN / 2));
    }

    #[test]
    fn a_success_resets_the_count() {
        let start = Instant::now();
        let mut breaker = breaker(2);
        breaker.record_failure(start);
        breaker.record_success();
        breaker.record_failure(start);
        assert_eq!(breaker.state(start), BreakerState::Closed);
        assert_eq!(breaker.consecutive_failures(), 1);
    }

    #[test]
    fn after_the_cooldown_one_probe_at_a_time() {
        let start = Instant::now();
        let mut breaker = breaker(1);
        breaker.record_failure(start);
        let later = start + COOLDOWN;
        assert_eq!(breaker.state(later), BreakerState::HalfOpen);
        assert!(breaker.is_available(later));
        assert_eq!(breaker.admit(later), Admission::Probe);
        assert_eq!(breaker.state(later), BreakerState::HalfOpen);
        assert!(!breaker.is_available(later));
        assert_eq!(breaker.admit(later), Admission::Refuse);
        breaker.record_success();
        assert_eq!(breaker.state(later), BreakerState::Closed);
        assert_eq!(breaker.consecutive_failures(), 0);
        assert_eq!(breaker.admit(later), Admission::Pass);
    }

    #[test]
    fn a_failed_probe_opens_for_another_cooldown() {
        let start = Instant::now();
        let mut breaker = breaker(5);
        for _ in 0..5 {
            breaker.record_failure(start);
        }
        let probe_at = start + COOLDOWN + Duration::from_secs(1);
        assert_eq!(breaker.admit(probe_at), Admission::Probe);
        breaker.record_failure(probe_at);
        assert_eq!(breaker.state(probe_at), BreakerState::Open);
        assert_eq!(breaker.consecutive_failures(), 6);
        assert_eq!(breaker.admit(probe_at + COOLDOWN / 2), Admission::Refuse);
        assert_eq!(breaker.admit(probe_at + COOLDOWN), Admission::Probe);
    }

    #[test]
    fn a_released_probe_lets_the_next_request_probe() {
        let start = Instant::now();
        let mut breaker = breaker(1);
        breaker.record_failure(start);
        let later = start + COOLDOWN;
        assert_eq!(breaker.admit(later), Admission::Probe);
        breaker.release_probe();
        assert_eq!(breaker.admit(later), Admission::Probe);
        // Releasing does nothing to a closed breaker.
        breaker.record_success();
        breaker.release_probe();
        assert_eq!(breaker.state(later), BreakerState::Closed);
    }

    #[test]
    fn a_failure_while_open_restarts_the_cooldown() {
        let start = Instant::now();
        let mut breaker = breaker(1);
        breaker.record_failure(start);
        let later = start + COOLDOWN / 2;
        breaker.record_failure(later);
        assert_eq!(breaker.state(start + COOLDOWN), BreakerState::Open);
        assert_eq!(breaker.state(later + COOLDOWN), BreakerState::HalfOpen);
    }

    #[test]
    fn a_zero_threshold_acts_as_one() {
        let start = Instant::now();
        let mut breaker = breaker(0);
        assert_eq!(breaker.admit(start), Admission::Pass);
        breaker.record_failure(start);
        assert_eq!(breaker.state(start), BreakerState::Open);
    }
}
