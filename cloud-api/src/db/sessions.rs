//! The `sessions` and `session_refresh_tokens` tables: browser sessions, and every
//! refresh token issued for each (hashed) until the session ends.
//!
//! `crate::sessions` decides what a token exchange means; it holds one transaction across
//! [`find_refresh_token`], [`claim_refresh_token`] and what follows, so the claim is
//! conditional on the state it read.

use chrono::{DateTime, Utc};

use super::{on, DbError, Executor};
use crate::keys::KeyHash;

/// Stores a new session of `user_id`, refreshable until `expires_at`.
pub async fn create<'e>(
    executor: impl Into<Executor<'e>>,
    id: &str,
    user_id: &str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    on!(
        executor,
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)"
        )
        .bind(id)
        .bind(user_id)
        .bind(created_at)
        .bind(expires_at),
        execute
    )?;
    Ok(())
}

/// Whether the session `id` of `user_id` is still going at `now`: not ended, not past
/// its refresh window.
pub async fn is_active<'e>(
    executor: impl Into<Executor<'e>>,
    id: &str,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let active: Option<(String,)> = on!(
        executor,
        sqlx::query_as(
            "SELECT id FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND expires_at > $3",
        )
        .bind(id)
        .bind(user_id)
        .bind(now),
        fetch_optional
    )?;
    Ok(active.is_some())
}

/// Ends the session `id` (`because`: `sign_out`, `refresh_reuse`) unless it has ended
/// already: its refresh and access tokens stop working, and caches are told (the
/// `sessions_revoked` trigger moves the auth epoch).
pub async fn end<'e>(
    executor: impl Into<Executor<'e>>,
    id: &str,
    because: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    on!(
        executor,
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_because = $2 WHERE id = $3 \
             AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(because)
        .bind(id),
        execute
    )?;
    Ok(())
}

/// Stores the hash of a refresh token issued for `session_id`.
pub async fn insert_refresh_token<'e>(
    executor: impl Into<Executor<'e>>,
    token_hash: &KeyHash,
    session_id: &str,
    issued_at: DateTime<Utc>,
) -> Result<(), DbError> {
    on!(
        executor,
        sqlx::query(
            "INSERT INTO session_refresh_tokens (token_hash, session_id, issued_at) \
             VALUES ($1, $2, $3)",
        )
        .bind(&token_hash.0[..])
        .bind(session_id)
        .bind(issued_at),
        execute
    )?;
    Ok(())
}

/// A refresh token with its session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshToken {
    pub session_id: String,
    /// When it was exchanged, if it was.
    pub used_at: Option<DateTime<Utc>>,
    /// The session's user.
    pub user_id: String,
    /// The end of the session's refresh window.
    pub expires_at: DateTime<Utc>,
    /// When the session ended, if it did.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The refresh token with this hash, with its session; `None` if none was issued.
pub async fn find_refresh_token<'e>(
    executor: impl Into<Executor<'e>>,
    token_hash: &KeyHash,
) -> Result<Option<RefreshToken>, DbError> {
    let row = on!(
        executor,
        sqlx::query_as(
            "SELECT t.session_id, t.used_at, s.user_id, s.expires_at, s.revoked_at \
             FROM session_refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.token_hash = $1",
        )
        .bind(&token_hash.0[..]),
        fetch_optional
    )?;
    Ok(row)
}

/// Marks the refresh token with this hash used at `now` if it was not; whether this call
/// did. Conditional, so of two racing exchanges only one claims the token.
pub async fn claim_refresh_token<'e>(
    executor: impl Into<Executor<'e>>,
    token_hash: &KeyHash,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let claimed = on!(
        executor,
        sqlx::query(
            "UPDATE session_refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND \
             used_at IS NULL",
        )
        .bind(now)
        .bind(&token_hash.0[..]),
        execute
    )?;
    Ok(claimed > 0)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use tandem_shared::Tier;

    use super::*;
    use crate::db::test_support::temp_db;

    #[tokio::test]
    async fn a_refresh_token_is_claimed_once_and_a_session_ends_once() {
        let (_dir, pool) = temp_db().await;
        let user = crate::db::users::create(&pool, "ada@example.com", Tier::pro())
            .await
            .unwrap();
        let now = crate::db::now();
        create(&pool, "s1", &user.id, now, now + Duration::days(1))
            .await
            .unwrap();
        let hash = KeyHash::of("refresh-token");
        insert_refresh_token(&pool, &hash, "s1", now).await.unwrap();
        assert_eq!(
            find_refresh_token(&pool, &KeyHash::of("another"))
                .await
                .unwrap(),
            None
        );

        assert!(claim_refresh_token(&pool, &hash, now).await.unwrap());
        assert!(!claim_refresh_token(&pool, &hash, now).await.unwrap());
        let found = find_refresh_token(&pool, &hash).await.unwrap().unwrap();
        assert_eq!(
            (found.session_id.as_str(), found.user_id.as_str()),
            ("s1", user.id.as_str())
        );
        assert_eq!((found.used_at, found.revoked_at), (Some(now), None));

        assert!(is_active(&pool, "s1", &user.id, now).await.unwrap());
        assert!(!is_active(&pool, "s1", "someone-else", now).await.unwrap());
        assert!(!is_active(&pool, "s1", &user.id, now + Duration::days(1))
            .await
            .unwrap());
        end(&pool, "s1", "refresh_reuse", now).await.unwrap();
        let epoch = crate::db::auth_epoch(&pool).await.unwrap();
        // A second end keeps the first reason and does not tell the caches again.
        end(&pool, "s1", "sign_out", now + Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(crate::db::auth_epoch(&pool).await.unwrap(), epoch);
        let (because,): (String,) = on!(
            &pool,
            sqlx::query_as("SELECT revoked_because FROM sessions WHERE id = 's1'"),
            fetch_one
        )
        .unwrap();
        assert_eq!(because, "refresh_reuse");
        assert!(!is_active(&pool, "s1", &user.id, now).await.unwrap());
        let found = find_refresh_token(&pool, &hash).await.unwrap().unwrap();
        assert_eq!(found.revoked_at, Some(now));
    }
}
