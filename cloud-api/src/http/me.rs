//! `GET /v1/me`: who the API key belongs to, and the limits of their tier that the
//! language server needs (the context budget).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tandem_shared::{MeResponse, UserInfo};

use crate::extract::AuthUser;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/me", get(handle_me))
}

async fn handle_me(State(state): State<AppState>, caller: AuthUser) -> Json<MeResponse> {
    let limits = state.config.tier_limits(caller.user.tier);
    Json(MeResponse {
        user: UserInfo {
            id: caller.user.id,
            email: caller.user.email,
        },
        tier: caller.user.tier,
        max_context_tokens: Some(limits.max_context_tokens),
    })
}
