//! `GET /v1/me`: who the API key belongs to, their tier's limits, and what remains of
//! their quotas (the language server reads its context budget here; editors show the rest).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use tandem_shared::{MeResponse, QuotaInfo, TierLimitsInfo, UserInfo};

use super::quota_headers;
use crate::error::AppError;
use crate::extract::AuthUser;
use crate::rate_limit::Window;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/me", get(handle_me))
}

async fn handle_me(State(state): State<AppState>, caller: AuthUser) -> Result<Response, AppError> {
    let policy = state.policy(&caller.user.tier)?;
    let now = Utc::now();
    let status = state.limiter.status(&caller.user.id, policy, now);
    let quota = |window: Window| QuotaInfo {
        limit: window.limit,
        remaining: window.remaining(),
        resets_at: window.resets_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    let mut response = Json(MeResponse {
        user: UserInfo {
            id: caller.user.id.clone(),
            email: caller.user.email.clone(),
        },
        tier: caller.user.tier.clone(),
        max_context_tokens: Some(policy.max_context_tokens),
        limits: Some(TierLimitsInfo {
            requests_per_hour: policy.requests_per_hour,
            requests_per_day: policy.requests_per_day,
            burst_per_minute: policy.burst_per_minute,
            tokens_per_day: policy.tokens_per_day,
            max_file_size_mb: policy.max_file_size_mb,
            max_context_tokens: policy.max_context_tokens,
            providers: state
                .allowed_providers(policy)
                .map(|provider| provider.name().to_owned())
                .collect(),
            features: crate::tiers::Feature::ALL
                .into_iter()
                .filter(|feature| policy.allows_feature(*feature))
                .map(|feature| feature.as_str().to_owned())
                .collect(),
        }),
        requests_this_hour: Some(quota(status.hour)),
        requests_today: Some(quota(status.day)),
        tokens_today: Some(quota(status.tokens)),
    })
    .into_response();
    quota_headers::insert(response.headers_mut(), &status, now);
    Ok(response)
}
