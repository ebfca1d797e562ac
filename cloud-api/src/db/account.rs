//! Data rights: everything stored about a user, and deleting it.
//!
//! Deletion removes the user, their identities, sessions, keys, usage rows and device
//! grants (the foreign keys cascade) in one transaction; the audit log keeps its entries about them
//! (who did what to the account stays accountable) but loses the email address they held,
//! and gains one saying the account was deleted. Usage is deleted, not anonymised: the
//! deployment's totals shrink by what the user used.

use super::{on, Backend, Pool, Timestamp};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::api_keys::{self, ApiKey};
use super::audit::{self, Actor, AuditEntry};
use super::identities::{self, Identity};
use super::users::User;
use super::DbError;

/// One usage row, as exported.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ExportedUsage {
    pub request_id: String,
    pub key_id: String,
    pub endpoint: String,
    pub task: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub latency_ms: i64,
    pub status: i64,
    pub cost_usd: f64,
    pub created_at: Timestamp,
}

/// Everything stored about a user.
#[derive(Debug, Clone)]
pub struct AccountData {
    pub identities: Vec<Identity>,
    pub keys: Vec<ApiKey>,
    pub usage: Vec<ExportedUsage>,
    pub audit: Vec<AuditEntry>,
}

/// Most audit entries exported: far more than an account gathers in normal use.
const MAX_AUDIT_ENTRIES: u32 = 100_000;

pub async fn export(pool: &Pool, user: &User) -> Result<AccountData, DbError> {
    let identities = identities::list_for_user(pool, &user.id).await?;
    let keys = api_keys::list_for_user(pool, user).await?;
    let usage: Vec<ExportedUsage> = on!(
        pool,
        sqlx::query_as(
            "SELECT request_id, key_id, endpoint, task, provider, model, prompt_tokens, \
             completion_tokens, latency_ms, status, cost_usd, created_at \
             FROM usage WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(&user.id),
        fetch_all
    )?;
    let audit = audit::recent(pool, Some(&user.id), MAX_AUDIT_ENTRIES).await?;
    Ok(AccountData {
        identities,
        keys,
        usage,
        audit,
    })
}

/// What deleting an account removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Deleted {
    pub keys: u64,
    pub usage_rows: u64,
}

/// Deletes `user` and everything that is theirs, recording who did it.
pub async fn delete(
    pool: &Pool,
    user: &User,
    actor: &Actor,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Deleted, DbError> {
    let mut transaction = super::begin_write(pool).await?;
    let keys: i64 = on!(
        &mut transaction,
        sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE user_id = $1").bind(&user.id),
        fetch_one
    )?;
    let usage_rows: i64 = on!(
        &mut transaction,
        sqlx::query_scalar("SELECT COUNT(*) FROM usage WHERE user_id = $1").bind(&user.id),
        fetch_one
    )?;
    // The email goes from the audit details; the entries themselves stay.
    let without_email = match pool.backend() {
        Backend::Sqlite => "json_remove(detail, '$.email')",
        Backend::Postgres => "(detail::jsonb - 'email')::text",
    };
    let forget_email = format!(
        "UPDATE audit_log SET detail = {without_email} WHERE target = $1 OR actor \
         = $1"
    );
    on!(
        &mut transaction,
        sqlx::query(&forget_email).bind(format!("user:{}", user.id)),
        execute
    )?;
    // Identities, keys, sessions, usage and device grants cascade.
    let removed = on!(
        &mut transaction,
        sqlx::query("DELETE FROM users WHERE id = $1").bind(&user.id),
        execute
    )?;
    if removed == 0 {
        return Err(DbError::UnknownUser(user.id.clone()));
    }
    audit::record(
        &mut transaction,
        actor,
        "account.delete",
        Some(&format!("user:{}", user.id)),
        source,
        &json!({"keys": keys, "usage_rows": usage_rows, "at": now}),
    )
    .await?;
    transaction.commit().await?;
    Ok(Deleted {
        keys: u64::try_from(keys).unwrap_or(0),
        usage_rows: u64::try_from(usage_rows).unwrap_or(0),
    })
}
