//! The context budget the user's tier allows, read from `GET /v1/me` once per set of
//! credentials, in the background: a completion never waits for it. The same answer
//! gives the status its account, tier and quota.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::cloud::{CloudClient, CloudTarget};
use crate::credentials::Credentials;
use crate::status::StatusTracker;

/// The smallest default tier's context limit (free: 4,000 tokens). Until the server has
/// said what the user's tier allows, staying under it means no tier refuses a request.
pub(crate) const FALLBACK_MAX_CONTEXT_TOKENS: u32 = 4_000;

/// How long to wait before asking again after `/v1/me` failed.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// What the cloud said about the tier's limit, and for which credentials.
#[derive(Debug, Default)]
pub(crate) struct TierBudget {
    state: Arc<Mutex<State>>,
    status: Arc<StatusTracker>,
}

#[derive(Debug, Default)]
struct State {
    /// The credentials `limit` was read with (or is being read with).
    credentials: Option<Credentials>,
    limit: Option<u32>,
    fetching: bool,
    retry_at: Option<Instant>,
}

impl TierBudget {
    pub(crate) fn new(status: Arc<StatusTracker>) -> TierBudget {
        TierBudget {
            state: Arc::default(),
            status,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tier's limit for `credentials` if known, or the fallback; starts reading it
    /// in the background when it is not known for these credentials. Needs a Tokio
    /// runtime.
    pub(crate) fn limit(
        &self,
        cloud: &Arc<CloudClient>,
        target: &CloudTarget,
        credentials: &Credentials,
    ) -> u32 {
        let mut state = self.state();
        if state.credentials.as_ref() != Some(credentials) {
            *state = State {
                credentials: Some(credentials.clone()),
                ..State::default()
            };
        }
        if let Some(limit) = state.limit {
            return limit;
        }
        let may_fetch = state.retry_at.is_none_or(|at| Instant::now() >= at);
        if !state.fetching && may_fetch {
            state.fetching = true;
            let (shared, cloud, target, status) = (
                Arc::clone(&self.state),
                Arc::clone(cloud),
                target.clone(),
                Arc::clone(&self.status),
            );
            let credentials = credentials.clone();
            tokio::spawn(async move {
                let result = cloud.me(&target).await;
                let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
                if state.credentials.as_ref() != Some(&credentials) {
                    return; // The credentials changed meanwhile; this answer is moot.
                }
                state.fetching = false;
                match result {
                    Ok(me) => {
                        let limit = me.max_context_tokens.unwrap_or(FALLBACK_MAX_CONTEXT_TOKENS);
                        tracing::info!(tier = %me.tier, max_context_tokens = limit, "tier context budget");
                        state.limit = Some(limit);
                        status.record_me(&target.server, &target.api_key, &me);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "cannot read the tier's context budget; using the fallback");
                        state.retry_at = Some(Instant::now() + RETRY_AFTER);
                    }
                }
            });
        }
        FALLBACK_MAX_CONTEXT_TOKENS
    }

    /// The cloud refused a request of `refused_tokens` as too large. When the limit
    /// known now would have allowed it, the tier changed: forget the limit so the next
    /// request reads it again. A request built before the limit arrived (with the
    /// fallback) says nothing about the limit, and forgetting it then would loop: read,
    /// refused, forget, read again.
    pub(crate) fn refused(&self, refused_tokens: u64) {
        let mut state = self.state();
        match state.limit {
            Some(limit) if u64::from(limit) >= refused_tokens => state.limit = None,
            Some(_) => {}
            None => state.retry_at = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget_knowing(limit: Option<u32>) -> TierBudget {
        let budget = TierBudget::default();
        budget.state().limit = limit;
        budget.state().retry_at = Some(Instant::now() + RETRY_AFTER);
        budget
    }

    #[test]
    fn a_refusal_of_a_request_built_before_the_limit_arrived_keeps_the_limit() {
        // The request used the fallback (4,000) and the real limit (300) arrived while it
        // was in flight: the refusal is explained, the limit stays.
        let budget = budget_knowing(Some(300));
        budget.refused(3_900);
        assert_eq!(budget.state().limit, Some(300));
    }

    #[test]
    fn a_refusal_within_the_known_limit_means_the_tier_changed() {
        let budget = budget_knowing(Some(300));
        budget.refused(280);
        assert_eq!(budget.state().limit, None);
    }

    #[test]
    fn a_refusal_without_a_known_limit_allows_asking_again_now() {
        let budget = budget_knowing(None);
        budget.refused(3_900);
        assert_eq!(budget.state().retry_at, None);
    }
}
