//! `GET /v1/keys`, `POST /v1/keys` and `DELETE /v1/keys/{id}`: a user manages their own
//! API keys with one of them. A key can only give a new key scopes it has itself, and
//! another user's key is answered exactly like a key that does not exist. Creation and
//! revocation are written to the audit log in the same transaction.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use tandem_shared::{CreateKeyRequest, CreatedKey, KeyInfo, KeysResponse, Scope};

use crate::db::api_keys::{self, ApiKey, KeyGrant};
use crate::db::audit::Actor;
use crate::error::AppError;
use crate::extract::{AuthUser, ClientAddress, ValidJson, Validate};
use crate::keys;
use crate::state::AppState;

/// Longest key name, in characters.
const MAX_NAME_CHARS: usize = 100;
/// Longest lifetime a key can be given, in days (ten years).
const MAX_EXPIRY_DAYS: u32 = 3650;
/// The id `DELETE /v1/keys/{id}` takes for the key making the request (`tandem logout`).
const CURRENT: &str = "current";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/keys", get(list).post(create))
        .route("/v1/keys/{id}", delete(revoke))
}

impl Validate for CreateKeyRequest {
    fn validate(&self) -> Result<(), String> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err("`name` must say what the key is for (`laptop`, `CI`)".to_owned());
        }
        if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(format!(
                "`name` must be at most {MAX_NAME_CHARS} characters, without control characters"
            ));
        }
        if self.scopes.as_ref().is_some_and(Vec::is_empty) {
            return Err("`scopes` must name at least one scope, or be left out".to_owned());
        }
        if let Some(days) = self.expires_in_days {
            if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
                return Err(format!(
                    "`expires_in_days` must be between 1 and {MAX_EXPIRY_DAYS}, got {days}"
                ));
            }
        }
        Ok(())
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn info(key: &ApiKey, caller: &AuthUser) -> KeyInfo {
    KeyInfo {
        id: key.id.clone(),
        name: key.name.clone(),
        prefix: key.key_prefix.clone(),
        scopes: key.scopes.clone(),
        created_at: timestamp(key.created_at),
        last_used_at: key.last_used_at.map(timestamp),
        expires_at: key.expires_at.map(timestamp),
        revoked_at: key.revoked_at.map(timestamp),
        current: key.id == caller.key_id,
    }
}

fn actor(caller: &AuthUser) -> Actor {
    Actor::User {
        id: caller.user.id.clone(),
        key_id: Some(caller.key_id.clone()),
    }
}

/// Lists the caller's API keys, oldest first, revoked ones included; never a secret.
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "keys",
    operation_id = "list_keys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's keys; `current` marks the one the request used.", body = tandem_shared::KeysResponse),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
async fn list(State(state): State<AppState>, caller: AuthUser) -> Result<Response, AppError> {
    let keys = api_keys::list_for_user(&state.db, &caller.user)
        .await
        .map_err(AppError::internal)?;
    let keys = keys.iter().map(|key| info(key, &caller)).collect();
    Ok(Json(KeysResponse { keys }).into_response())
}

/// Creates an API key for the caller; the secret is in this answer only.
///
/// A key can only give scopes it has itself. Without `scopes` the new key gets
/// `completions` and `chat` (those of them the calling key has). Audited.
#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "keys",
    operation_id = "create_key",
    security(("bearer" = [])),
    request_body(content = tandem_shared::CreateKeyRequest),
    responses(
        (status = 201, description = "The new key: `key` is the whole secret (`tdm_…`), shown this once.", body = tandem_shared::CreatedKey),
        (status = 400, description = super::openapi::describe::MALFORMED_BODY, body = tandem_shared::ErrorBody),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 403, description = super::openapi::describe::KEY_SCOPE_FORBIDDEN, body = tandem_shared::ErrorBody),
        (status = 415, description = super::openapi::describe::UNSUPPORTED_MEDIA_TYPE, body = tandem_shared::ErrorBody),
        (status = 422, description = super::openapi::describe::KEY_INVALID, body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    ClientAddress(source): ClientAddress,
    ValidJson(request): ValidJson<CreateKeyRequest>,
) -> Result<Response, AppError> {
    // A key cannot hand out more than it has.
    let scopes = match request.scopes {
        Some(scopes) => {
            for scope in &scopes {
                caller.require(*scope)?;
            }
            // An identity provider user's admin scope follows their roles; a key would
            // keep it after the role is gone.
            if caller.api_key_id().is_none() && scopes.contains(&Scope::Admin) {
                return Err(AppError::Forbidden(
                    "admin rights of identity-provider users follow their roles, so a key \
                     made with an identity provider token cannot have the `admin` scope; an \
                     administrator can create an admin key with `tandem-cloud keys create \
                     --email <email> --scopes admin`"
                        .to_owned(),
                ));
            }
            scopes
        }
        None => Scope::DEFAULT
            .into_iter()
            .filter(|scope| caller.scopes.contains(scope))
            .collect(),
    };
    if scopes.is_empty() {
        return Err(AppError::InvalidRequest(
            "this key has none of the default scopes to give; name the `scopes` it may give"
                .to_owned(),
        ));
    }
    let grant = KeyGrant {
        name: request.name.trim().to_owned(),
        scopes,
        expires_at: request
            .expires_in_days
            .map(|days| Utc::now() + chrono::Duration::days(i64::from(days))),
    };
    let generated = keys::generate();
    let key = api_keys::create_audited(
        &state.db,
        &caller.user,
        &grant,
        &generated,
        &actor(&caller),
        &source,
    )
    .await
    .map_err(AppError::internal)?;
    tracing::info!(user_id = %caller.user.id, key_id = %key.id, "API key created");
    let created = CreatedKey {
        key: generated.secret,
        info: info(&key, &caller),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Revokes one of the caller's API keys (idempotent).
///
/// `id` may be `current`: the key making the request (what `tandem logout` does).
/// Another user's key is answered exactly like a key that does not exist. Audited.
#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    tag = "keys",
    operation_id = "revoke_key",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id, or `current` for the key making the request.")),
    responses(
        (status = 200, description = "The revoked key.", body = tandem_shared::KeyInfo),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 404, description = "`not_found`: the caller has no key with this id.", body = tandem_shared::ErrorBody),
        (status = 422, description = "`invalid_request`: `current` with an identity provider token, which is no API key.", body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
async fn revoke(
    State(state): State<AppState>,
    caller: AuthUser,
    ClientAddress(source): ClientAddress,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = if id == CURRENT {
        let Some(current) = caller.api_key_id() else {
            // `tandem logout` with an identity provider token: no key to revoke.
            return Err(AppError::InvalidRequest(
                "this request is authenticated by your identity provider's token, not an API \
                 key, so there is no current API key to revoke: sign out at your identity \
                 provider, or revoke a key by its id (DELETE /v1/keys/{id})"
                    .to_owned(),
            ));
        };
        current.to_owned()
    } else {
        id
    };
    let Some(key) = api_keys::find_for_user(&state.db, &caller.user.id, &id)
        .await
        .map_err(AppError::internal)?
    else {
        return Err(AppError::NoSuchResource(format!(
            "you have no API key with id `{id}`"
        )));
    };
    let was_active = key.revoked_at.is_none();
    let key = api_keys::revoke_audited(&state.db, &key, &actor(&caller), &source)
        .await
        .map_err(AppError::internal)?;
    state.forget_cached_keys();
    if was_active {
        tracing::info!(user_id = %caller.user.id, key_id = %key.id, "API key revoked");
    }
    Ok(Json(info(&key, &caller)).into_response())
}
