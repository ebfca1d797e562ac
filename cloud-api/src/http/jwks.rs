//! `GET /.well-known/jwks.json`: the public key that signs browser sessions, for services
//! that check session tokens themselves. Only with `[sessions] algorithm` RS256 or ES256;
//! an HS256 key is secret, so then (and without sessions) there is no such path.

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::error::AppError;
use crate::state::AppState;

/// The path keys are served at.
const PATH: &str = "/.well-known/jwks.json";

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(PATH, get(handle_jwks))
}

/// The public key browser sessions are signed with, as a JSON Web Key Set (RFC 7517).
///
/// For services that check session tokens themselves. Served only with `[sessions]
/// algorithm` RS256 or ES256: an HS256 key is secret, so then (and without sessions)
/// the path answers 404. Cacheable for five minutes.
#[utoipa::path(
    get,
    path = PATH,
    tag = "operations",
    operation_id = "get_jwks",
    security(()),
    responses(
        (status = 200, description = "The key set.", body = super::openapi::JwkSet,
            headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
        (status = 404, description = "`not_found`: sessions are off or signed with HS256.", body = tandem_shared::ErrorBody),
    )
)]
async fn handle_jwks(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    let jwks = state
        .sessions
        .as_ref()
        .and_then(|signer| signer.jwks())
        .ok_or_else(|| AppError::NotFound(PATH.to_owned()))?;
    // Short enough that a new key is picked up soon after a rotation.
    Ok(([(CACHE_CONTROL, "public, max-age=300")], Json(jwks)))
}
