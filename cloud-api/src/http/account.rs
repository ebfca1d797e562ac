//! Data rights: `GET /v1/account/export` (everything stored about the caller, as one JSON
//! document) and `DELETE /v1/account` (the caller's account and all that is theirs; see
//! [`crate::db::account`] for what goes and what stays). Deleting needs the account's
//! email in the body, so a key alone — a leaked one, say — cannot do it by accident.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::account::{self, Deleted, ExportedUsage};
use crate::db::audit::Actor;
use crate::db::users;
use crate::error::AppError;
use crate::extract::{AuthUser, ClientAddress, ValidJson, Validate};
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/account/export", get(export))
        .route("/v1/account", delete(delete_account))
}

/// Everything stored about one user, as `GET /v1/account/export` answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AccountExport)]
struct Export {
    /// When the export was made (RFC 3339, UTC).
    exported_at: String,
    user: ExportedUser,
    /// The sign-in identities linked to the account.
    #[schema(value_type = Vec<super::openapi::ExportedIdentity>)]
    identities: Vec<crate::db::identities::Identity>,
    /// The user's keys, revoked ones included; never a secret.
    keys: Vec<tandem_shared::KeyInfo>,
    /// Every usage record of the user.
    #[schema(value_type = Vec<super::openapi::ExportedUsageRow>)]
    usage: Vec<ExportedUsage>,
    /// The audit entries about the user and their keys.
    audit: Vec<ExportedAudit>,
}

/// The user, as exported.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ExportedUser {
    id: String,
    email: String,
    tier: String,
    created_at: String,
}

/// An audit entry, as exported.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ExportedAudit {
    at: String,
    actor: String,
    action: String,
    target: Option<String>,
    source: String,
    #[schema(value_type = Object)]
    detail: Value,
}

fn time(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Everything stored about the caller, as one JSON document (a download).
///
/// The user, their linked sign-in identities, their keys (never secrets), every usage
/// row and the audit entries about them. Sent with `Content-Disposition: attachment`
/// and `Cache-Control: no-store`.
#[utoipa::path(
    get,
    path = "/v1/account/export",
    tag = "account",
    operation_id = "export_account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's data.", body = Export,
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"tandem-account-<user id>.json\"`"))),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
async fn export(State(state): State<AppState>, caller: AuthUser) -> Result<Response, AppError> {
    let data = account::export(&state.db, &caller.user)
        .await
        .map_err(AppError::internal)?;
    let user = &caller.user;
    let document = Export {
        exported_at: time(Utc::now()),
        user: ExportedUser {
            id: user.id.clone(),
            email: user.email.clone(),
            tier: user.tier.to_string(),
            created_at: time(user.created_at),
        },
        identities: data.identities,
        keys: data
            .keys
            .iter()
            .map(|key| super::keys::info(key, &caller))
            .collect(),
        usage: data.usage,
        audit: data
            .audit
            .into_iter()
            .map(|entry| ExportedAudit {
                at: time(entry.at),
                actor: entry.actor,
                action: entry.action,
                target: entry.target,
                source: entry.source,
                detail: entry.detail,
            })
            .collect(),
    };
    let disposition = format!("attachment; filename=\"tandem-account-{}.json\"", user.id);
    let mut response = Json(document).into_response();
    if let Ok(value) = header::HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// Body of `DELETE /v1/account`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = DeleteAccountRequest)]
struct DeleteAccount {
    /// The account's email, to confirm.
    confirm: String,
}

impl Validate for DeleteAccount {
    fn validate(&self) -> Result<(), String> {
        if self.confirm.trim().is_empty() {
            return Err("`confirm` must be the account's email address".to_owned());
        }
        Ok(())
    }
}

/// Answer of `DELETE /v1/account`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AccountDeleted)]
struct DeletedAnswer {
    /// Always `true`.
    deleted: bool,
    #[serde(flatten)]
    #[schema(value_type = super::openapi::DeletedCounts)]
    removed: Deleted,
}

/// Deletes the caller's account and everything that is theirs, in one transaction.
///
/// The user, their identities, sessions, keys (so every key stops working), usage rows
/// and device grants. The audit log keeps its entries about the account but loses the
/// email they held, and records `account.delete`. The body must repeat the account's
/// email, so a key alone cannot do this by accident.
#[utoipa::path(
    delete,
    path = "/v1/account",
    tag = "account",
    operation_id = "delete_account",
    security(("bearer" = [])),
    request_body(content = DeleteAccount),
    responses(
        (status = 200, description = "The account is gone; how many keys and usage rows went with it.", body = DeletedAnswer),
        (status = 400, description = super::openapi::describe::MALFORMED_BODY, body = tandem_shared::ErrorBody),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 415, description = super::openapi::describe::UNSUPPORTED_MEDIA_TYPE, body = tandem_shared::ErrorBody),
        (status = 422, description = "`invalid_request`: `confirm` is empty or is not the account's email; nothing was deleted.", body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
async fn delete_account(
    State(state): State<AppState>,
    caller: AuthUser,
    ClientAddress(source): ClientAddress,
    ValidJson(request): ValidJson<DeleteAccount>,
) -> Result<Response, AppError> {
    if users::normalize_email(&request.confirm) != caller.user.email {
        return Err(AppError::InvalidRequest(
            "`confirm` does not match this account's email address; nothing was deleted".to_owned(),
        ));
    }
    let actor = Actor::User {
        id: caller.user.id.clone(),
        key_id: Some(caller.key_id.clone()),
    };
    let removed = account::delete(&state.db, &caller.user, &actor, &source, Utc::now())
        .await
        .map_err(AppError::internal)?;
    tracing::info!(user_id = %caller.user.id, keys = removed.keys, usage_rows = removed.usage_rows, "account deleted");
    Ok(Json(DeletedAnswer {
        deleted: true,
        removed,
    })
    .into_response())
}
