//! The context budget the user's tier allows, read from `GET /v1/me` once per set of
//! credentials, in the background: a completion never waits for it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::cloud::{CloudClient, CloudTarget};
use crate::credentials::Credentials;

/// The smallest default tier's context limit (free: 4,000 tokens). Until the server has
/// said what the user's tier allows, staying under it means no tier refuses a request.
pub(crate) const FALLBACK_MAX_CONTEXT_TOKENS: u32 = 4_000;

/// How long to wait before asking again after `/v1/me` failed.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// What the cloud said about the tier's limit, and for which credentials.
#[derive(Debug, Default)]
pub(crate) struct TierBudget {
    state: Arc<Mutex<State>>,
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
            let (shared, cloud, target) =
                (Arc::clone(&self.state), Arc::clone(cloud), target.clone());
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

    /// Forgets the limit, so the next request reads it again: the cloud refused a
    /// request as too large, so the tier changed.
    pub(crate) fn forget(&self) {
        let mut state = self.state();
        state.limit = None;
        state.retry_at = None;
    }
}
