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

/// Who the credential belongs to, their tier's limits, and what is left of their quotas.
///
/// The language server reads its context budget (`max_context_tokens`) here; editors
/// show the rest. Any valid credential may call it, whatever its scopes.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "account",
    operation_id = "get_me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller, their tier and quotas; the quota headers too.", body = tandem_shared::MeResponse,
            headers(
                ("RateLimit-Policy" = String, description = "The request quotas, as in the IETF RateLimit draft: `\"hour\";q=500;w=3600, \"day\";q=2000;w=86400`."),
                ("RateLimit" = String, description = "What is left of each request quota and the seconds until it resets: `\"hour\";r=499;t=1830, \"day\";r=1999;t=48630`."),
                ("Tandem-Tokens-Limit" = u64, description = "The daily token budget (prompt plus completion tokens)."),
                ("Tandem-Tokens-Remaining" = u64, description = "Tokens left of the daily budget."),
                ("Tandem-Tokens-Reset" = u64, description = "Seconds until the token budget resets."),
            )),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 403, description = super::openapi::describe::UNKNOWN_TIER, body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
async fn handle_me(State(state): State<AppState>, caller: AuthUser) -> Result<Response, AppError> {
    let policy = state.policy(&caller.user.tier)?;
    let now = Utc::now();
    let status = state.limits.status(&caller.user.id, policy, now).await;
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
