//! The `audit_log` table: who did what to which account or key, when and from where.
//! Append-only; nothing here updates or deletes a row.

use super::{on, Executor, Pool};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::DbError;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user, through the key with this id (or a session, once there are sessions).
    User { id: String, key_id: Option<String> },
    /// The administration command line on the server machine.
    Cli,
}

impl Actor {
    fn column(&self) -> String {
        match self {
            Actor::User { id, .. } => format!("user:{id}"),
            Actor::Cli => "cli".to_owned(),
        }
    }

    fn key(&self) -> Option<&str> {
        match self {
            Actor::User { key_id, .. } => key_id.as_deref(),
            Actor::Cli => None,
        }
    }
}

/// One recorded action.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// `user:<id>` or `cli`.
    pub actor: String,
    pub actor_key: Option<String>,
    /// `key.create`, `key.revoke`, `user.create`, `user.set_tier`, ...
    pub action: String,
    /// `key:<id>`, `user:<id>`.
    pub target: Option<String>,
    /// The client's address, or `cli`.
    pub source: String,
    pub detail: Value,
}

/// Appends an entry. `executor` may be the transaction that made the change, so the
/// change and its record stand or fall together.
pub async fn record<'e>(
    executor: impl Into<Executor<'e>>,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    source: &str,
    detail: &Value,
) -> Result<(), DbError> {
    on!(
        executor,
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, actor_key, action, target, source, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(crate::db::now())
        .bind(actor.column())
        .bind(actor.key())
        .bind(action)
        .bind(target)
        .bind(source)
        .bind(detail.to_string()),
        execute
    )?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    at: DateTime<Utc>,
    actor: String,
    actor_key: Option<String>,
    action: String,
    target: Option<String>,
    source: String,
    detail: String,
}

/// The latest `limit` entries (newest first) where the user with `user_id` acted or was
/// acted on (directly, or through one of their keys); every entry when `user_id` is
/// `None`.
pub async fn recent(
    pool: &Pool,
    user_id: Option<&str>,
    limit: u32,
) -> Result<Vec<AuditEntry>, DbError> {
    let rows: Vec<AuditRow> = match user_id {
        Some(user_id) => on!(
            pool,
            sqlx::query_as(
                "SELECT at, actor, actor_key, action, target, source, detail \
                 FROM audit_log \
                 WHERE actor = $1 OR target = $1 \
                 OR target IN (SELECT 'key:' || id FROM api_keys WHERE user_id = $2) \
                 ORDER BY at DESC, id DESC LIMIT $3",
            )
            .bind(format!("user:{user_id}"))
            .bind(user_id)
            .bind(i64::from(limit)),
            fetch_all
        )?,
        None => on!(
            pool,
            sqlx::query_as(
                "SELECT at, actor, actor_key, action, target, source, detail \
                 FROM audit_log \
                 ORDER BY at DESC, id DESC LIMIT $1",
            )
            .bind(i64::from(limit)),
            fetch_all
        )?,
    };
    Ok(rows
        .into_iter()
        .map(|row| AuditEntry {
            at: row.at,
            actor: row.actor,
            actor_key: row.actor_key,
            action: row.action,
            target: row.target,
            source: row.source,
            detail: serde_json::from_str(&row.detail).unwrap_or(Value::Null),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tandem_shared::Tier;

    use super::*;
    use crate::db::{api_keys, users};

    #[tokio::test]
    async fn entries_are_found_by_actor_target_and_the_users_keys() {
        let (_db, pool) = crate::db::test_support::temp_db().await;
        let alice = users::create(&pool, "alice@example.com", Tier::free())
            .await
            .unwrap();
        let bob = users::create(&pool, "bob@example.com", Tier::free())
            .await
            .unwrap();
        let key = api_keys::insert(&pool, &alice, "laptop", &crate::keys::generate())
            .await
            .unwrap();
        let cli = Actor::Cli;
        let target = format!("user:{}", alice.id);
        record(
            &pool,
            &cli,
            "user.set_tier",
            Some(&target),
            "cli",
            &json!({"tier": "pro"}),
        )
        .await
        .unwrap();
        let alice_actor = Actor::User {
            id: alice.id.clone(),
            key_id: Some(key.id.clone()),
        };
        let key_target = format!("key:{}", key.id);
        record(
            &pool,
            &alice_actor,
            "key.revoke",
            Some(&key_target),
            "127.0.0.1",
            &json!({}),
        )
        .await
        .unwrap();
        record(
            &pool,
            &cli,
            "key.create",
            Some("key:other"),
            "cli",
            &json!({}),
        )
        .await
        .unwrap();

        let alices = recent(&pool, Some(&alice.id), 10).await.unwrap();
        let actions: Vec<&str> = alices.iter().map(|entry| entry.action.as_str()).collect();
        assert_eq!(actions, ["key.revoke", "user.set_tier"]);
        assert_eq!(alices[0].actor_key.as_deref(), Some(key.id.as_str()));
        assert_eq!(alices[1].detail, json!({"tier": "pro"}));
        assert!(recent(&pool, Some(&bob.id), 10).await.unwrap().is_empty());
        assert_eq!(recent(&pool, None, 2).await.unwrap().len(), 2);
    }
}
