//! Extractors: the JSON body wrapper that reports errors in the API's shape, and
//! [`AuthUser`], the authenticated caller.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use tandem_shared::API_KEY_PREFIX;

use crate::db::api_keys;
use crate::db::users::User;
use crate::error::AppError;
use crate::keys::{self, KeyHash};
use crate::state::AppState;

/// Field checks serde cannot express; a failure is a 422 with the returned message.
pub trait Validate {
    fn validate(&self) -> Result<(), String>;
}

/// A JSON body that parsed and passed [`Validate`]. Failures: 415 (not declared JSON),
/// 413 (too large), 400 (not JSON, or not the expected shape), 422 (invalid field).
#[derive(Debug, Clone)]
pub struct ValidJson<T>(pub T);

impl<T> FromRequest<AppState> for ValidJson<T>
where
    T: DeserializeOwned + Validate + Send,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, AppError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => {
                value.validate().map_err(AppError::InvalidRequest)?;
                Ok(ValidJson(value))
            }
            Err(rejection) => Err(from_json_rejection(
                rejection,
                state.config.limits.max_body_bytes,
            )),
        }
    }
}

fn from_json_rejection(rejection: JsonRejection, limit: usize) -> AppError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType(
            "request body must be JSON: send `Content-Type: application/json`".to_owned(),
        ),
        JsonRejection::JsonSyntaxError(error) => AppError::MalformedBody(format!(
            "request body is not valid JSON: {}",
            error.body_text()
        )),
        JsonRejection::JsonDataError(error) => AppError::MalformedBody(format!(
            "request body does not have the expected shape: {}",
            error.body_text()
        )),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge { limit }
        }
        other => AppError::MalformedBody(format!(
            "request body could not be read: {}",
            other.body_text()
        )),
    }
}

/// The caller, authenticated by `Authorization: Bearer tdm_…`.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// Id of the key used.
    pub key_id: String,
    /// The key's owner.
    pub user: User,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            AppError::Unauthorized(format!(
                "missing API key: send `Authorization: Bearer {API_KEY_PREFIX}…`"
            ))
        })?;
        let value = header.to_str().map_err(|_| {
            AppError::Unauthorized("Authorization header is not valid text".to_owned())
        })?;
        let key = match value.trim().split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => key.trim(),
            _ => {
                return Err(AppError::Unauthorized(
                    "Authorization header must use the Bearer scheme".to_owned(),
                ))
            }
        };
        if !keys::is_well_formed(key) {
            return Err(AppError::Unauthorized(format!(
                "malformed API key: expected `{API_KEY_PREFIX}` followed by {} letters and digits",
                keys::KEY_BODY_LEN
            )));
        }
        authenticate(state, key).await
    }
}

/// Checks a well-formed key against the database, through the cache.
async fn authenticate(state: &AppState, key: &str) -> Result<AuthUser, AppError> {
    let hash = KeyHash::of(key);
    if let Some(cache) = &state.key_cache {
        if let Some(user) = cache.get(&hash).await {
            return Ok(user);
        }
    }
    let found = api_keys::find_by_hash(&state.db, &hash)
        .await
        .map_err(AppError::internal)?;
    // The lookup is by hash; the constant-time comparison keeps the final decision
    // independent of how much of the hash matched.
    let Some(found) = found.filter(|found| keys::verify(key, &found.key_hash)) else {
        return Err(AppError::Unauthorized("unknown API key".to_owned()));
    };
    if found.revoked {
        return Err(AppError::Unauthorized(
            "API key has been revoked".to_owned(),
        ));
    }
    if let Err(error) = api_keys::touch_last_used(&state.db, &found.key_id).await {
        // Bookkeeping only; the request itself may go on.
        tracing::warn!(key_id = %found.key_id, error = %error, "cannot record key use");
    }
    let user = AuthUser {
        key_id: found.key_id,
        user: found.user,
    };
    if let Some(cache) = &state.key_cache {
        cache.insert(hash, user.clone()).await;
    }
    Ok(user)
}
