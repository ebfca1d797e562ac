//! Administration over HTTP, apart from the user endpoints and only for keys with the
//! `admin` scope: list users, change a user's tier, revoke any key, read the audit log.
//! Every change is audited with the administrator as actor.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tandem_shared::{Scope, Tier};

use crate::db::audit::{self, Actor};
use crate::db::{api_keys, users, DbError};
use crate::error::AppError;
use crate::extract::{AuthUser, ClientAddress, ValidJson, Validate};
use crate::state::AppState;

/// Most users or audit entries one page holds.
const MAX_PAGE: u32 = 1_000;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list_users))
        .route("/admin/users/{email}/tier", put(set_tier))
        .route("/admin/keys/{id}", delete(revoke_key))
        .route("/admin/audit", get(read_audit))
}

/// The administrator behind the request.
fn admin(caller: &AuthUser) -> Result<Actor, AppError> {
    caller.require(Scope::Admin)?;
    Ok(Actor::User {
        id: caller.user.id.clone(),
        key_id: Some(caller.key_id.clone()),
    })
}

/// `name` from the query as a number at most `max`, or `default`.
fn number(
    query: &HashMap<String, String>,
    name: &str,
    default: u32,
    max: u32,
) -> Result<u32, AppError> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => match text.parse::<u32>() {
            Ok(value) if value <= max => Ok(value),
            _ => Err(AppError::InvalidRequest(format!(
                "`{name}` must be a whole number from 0 to {max}, got `{text}`"
            ))),
        },
    }
}

#[derive(Debug, Serialize)]
struct UserEntry {
    id: String,
    email: String,
    tier: String,
    created_at: String,
}

/// Lists users, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    operation_id = "admin_list_users",
    security(("bearer" = ["admin"])),
    params(
        ("offset" = Option<u32>, Query, description = "Users to skip; default 0."),
        ("limit" = Option<u32>, Query, description = "Most users to return, 0 to 1000; default 100."),
    ),
    responses(
        (status = 200, description = "One page of users and how many there are.", body = super::openapi::AdminUsersPage),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 403, description = super::openapi::describe::ADMIN_FORBIDDEN, body = tandem_shared::ErrorBody),
        (status = 422, description = "`invalid_request`: `offset` or `limit` is not a whole number in range.", body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
async fn list_users(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    admin(&caller)?;
    let offset = number(&query, "offset", 0, u32::MAX)?;
    let limit = number(&query, "limit", 100, MAX_PAGE)?;
    let found = users::list(&state.db, offset, limit)
        .await
        .map_err(AppError::internal)?;
    let total = users::count(&state.db).await.map_err(AppError::internal)?;
    let users: Vec<UserEntry> = found
        .into_iter()
        .map(|user| UserEntry {
            id: user.id,
            email: user.email,
            tier: user.tier.to_string(),
            created_at: user.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
        .collect();
    Ok(Json(json!({"users": users, "total": total, "offset": offset})).into_response())
}

/// Body of `PUT /admin/users/{email}/tier`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = SetTierRequest)]
struct SetTier {
    /// A tier this server defines (`free`, `pro`, `enterprise`, or one of its own).
    tier: String,
}

impl Validate for SetTier {
    fn validate(&self) -> Result<(), String> {
        self.tier
            .parse::<Tier>()
            .map(drop)
            .map_err(|error| format!("`tier`: {error}"))
    }
}

/// Moves a user to another tier.
///
/// Applies to their keys within about a quarter of a second on every instance sharing
/// the database. Audited as `user.set_tier` with the old and new tier.
#[utoipa::path(
    put,
    path = "/admin/users/{email}/tier",
    tag = "admin",
    operation_id = "admin_set_tier",
    security(("bearer" = ["admin"])),
    params(("email" = String, Path, description = "The user's email address.")),
    request_body(content = SetTier),
    responses(
        (status = 200, description = "The user as now stored.", body = super::openapi::TierChanged),
        (status = 400, description = super::openapi::describe::MALFORMED_BODY, body = tandem_shared::ErrorBody),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 403, description = super::openapi::describe::ADMIN_FORBIDDEN, body = tandem_shared::ErrorBody),
        (status = 404, description = "`not_found`: no user has this email.", body = tandem_shared::ErrorBody),
        (status = 415, description = super::openapi::describe::UNSUPPORTED_MEDIA_TYPE, body = tandem_shared::ErrorBody),
        (status = 422, description = "`invalid_request`: `tier` is not a tier name, or not one this server defines (the message lists them).", body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
async fn set_tier(
    State(state): State<AppState>,
    caller: AuthUser,
    ClientAddress(source): ClientAddress,
    Path(email): Path<String>,
    ValidJson(request): ValidJson<SetTier>,
) -> Result<Response, AppError> {
    let actor = admin(&caller)?;
    let tier: Tier = request
        .tier
        .parse()
        .map_err(|error| AppError::InvalidRequest(format!("`tier`: {error}")))?;
    if state.tiers.get(&tier).is_none() {
        let known: Vec<&str> = state
            .tiers
            .all()
            .map(|policy| policy.name.as_str())
            .collect();
        return Err(AppError::InvalidRequest(format!(
            "unknown tier `{tier}`: this server defines {}",
            known.join(", ")
        )));
    }
    let before = match users::get_by_email(&state.db, &email).await {
        Ok(user) => user,
        Err(DbError::UnknownUser(email)) => {
            return Err(AppError::NoSuchResource(format!(
                "no user with email `{email}`"
            )))
        }
        Err(error) => return Err(AppError::internal(error)),
    };
    let user = users::set_tier(&state.db, &email, &tier)
        .await
        .map_err(AppError::internal)?;
    audit::record(
        &state.db,
        &actor,
        "user.set_tier",
        Some(&format!("user:{}", user.id)),
        &source,
        &json!({"from": before.tier.as_str(), "to": user.tier.as_str()}),
    )
    .await
    .map_err(AppError::internal)?;
    Ok(
        Json(json!({"id": user.id, "email": user.email, "tier": user.tier.as_str()}))
            .into_response(),
    )
}

/// Revokes any user's API key (idempotent). Audited as `key.revoke`.
#[utoipa::path(
    delete,
    path = "/admin/keys/{id}",
    tag = "admin",
    operation_id = "admin_revoke_key",
    security(("bearer" = ["admin"])),
    params(("id" = String, Path, description = "The key's id (`tandem-cloud keys list`, `GET /v1/keys`).")),
    responses(
        (status = 200, description = "The key is revoked; `already_revoked` says whether it was before.", body = super::openapi::AdminKeyRevoked),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 403, description = super::openapi::describe::ADMIN_FORBIDDEN, body = tandem_shared::ErrorBody),
        (status = 404, description = "`not_found`: no key has this id.", body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
async fn revoke_key(
    State(state): State<AppState>,
    caller: AuthUser,
    ClientAddress(source): ClientAddress,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let actor = admin(&caller)?;
    let outcome = match api_keys::revoke(&state.db, &id).await {
        Ok(outcome) => outcome,
        Err(DbError::UnknownKey(id)) => {
            return Err(AppError::NoSuchResource(format!(
                "no API key with id `{id}`"
            )))
        }
        Err(error) => return Err(AppError::internal(error)),
    };
    let revoked = outcome == api_keys::RevokeOutcome::Revoked;
    if revoked {
        audit::record(
            &state.db,
            &actor,
            "key.revoke",
            Some(&format!("key:{id}")),
            &source,
            &json!({}),
        )
        .await
        .map_err(AppError::internal)?;
    }
    Ok(Json(json!({"id": id, "revoked": true, "already_revoked": !revoked})).into_response())
}

#[derive(Debug, Serialize)]
struct AuditLine {
    at: String,
    actor: String,
    actor_key: Option<String>,
    action: String,
    target: Option<String>,
    source: String,
    detail: Value,
}

/// Reads the audit log, newest first: everything, or what concerns one user.
#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "admin",
    operation_id = "admin_read_audit",
    security(("bearer" = ["admin"])),
    params(
        ("email" = Option<String>, Query, description = "Only entries about this user and their keys."),
        ("limit" = Option<u32>, Query, description = "Most entries to return, 0 to 1000; default 100."),
    ),
    responses(
        (status = 200, description = "The entries, newest first.", body = super::openapi::AuditPage),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 403, description = super::openapi::describe::ADMIN_FORBIDDEN, body = tandem_shared::ErrorBody),
        (status = 404, description = "`not_found`: no user has this email.", body = tandem_shared::ErrorBody),
        (status = 422, description = "`invalid_request`: `limit` is not a whole number in range.", body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
async fn read_audit(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    admin(&caller)?;
    let limit = number(&query, "limit", 100, MAX_PAGE)?;
    let user_id = match query.get("email") {
        Some(email) => match users::find_by_email(&state.db, email)
            .await
            .map_err(AppError::internal)?
        {
            Some(user) => Some(user.id),
            None => {
                return Err(AppError::NoSuchResource(format!(
                    "no user with email `{email}`"
                )))
            }
        },
        None => None,
    };
    let entries = audit::recent(&state.db, user_id.as_deref(), limit)
        .await
        .map_err(AppError::internal)?;
    let entries: Vec<AuditLine> = entries
        .into_iter()
        .map(|entry| AuditLine {
            at: entry.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            actor: entry.actor,
            actor_key: entry.actor_key,
            action: entry.action,
            target: entry.target,
            source: entry.source,
            detail: entry.detail,
        })
        .collect();
    Ok(Json(json!({"entries": entries})).into_response())
}
