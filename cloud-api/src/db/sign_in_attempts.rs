//! The `sign_in_attempts` table: what the server must remember between sending a browser
//! to a sign-in provider and its return (the PKCE verifier, the nonce, where to go next).
//! Keyed by the SHA-256 of the `state` parameter; each row is read once.

use super::{on, Pool};
use chrono::{DateTime, Utc};

use super::DbError;
use crate::keys::KeyHash;

/// A sign-in waiting for the provider's answer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SignInAttempt {
    pub provider: String,
    pub pkce_verifier: String,
    pub nonce: String,
    pub next_path: String,
    pub expires_at: DateTime<Utc>,
}

/// Remembers an attempt under `state`; expired attempts are swept on the way.
pub async fn create(
    pool: &Pool,
    state: &str,
    attempt: &SignInAttempt,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let mut transaction = super::begin_write(pool).await?;
    on!(
        &mut transaction,
        sqlx::query("DELETE FROM sign_in_attempts WHERE expires_at <= $1").bind(now),
        execute
    )?;
    on!(
        &mut transaction,
        sqlx::query(
            "INSERT INTO sign_in_attempts \
             (state_hash, provider, pkce_verifier, nonce, next_path, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&KeyHash::of(state).0[..])
        .bind(&attempt.provider)
        .bind(&attempt.pkce_verifier)
        .bind(&attempt.nonce)
        .bind(&attempt.next_path)
        .bind(now)
        .bind(attempt.expires_at),
        execute
    )?;
    transaction.commit().await?;
    Ok(())
}

/// Takes the live attempt with `state` out of the table: a `state` works once.
pub async fn take(
    pool: &Pool,
    state: &str,
    now: DateTime<Utc>,
) -> Result<Option<SignInAttempt>, DbError> {
    let attempt: Option<SignInAttempt> = on!(
        pool,
        sqlx::query_as(
            "DELETE FROM sign_in_attempts WHERE state_hash = $1 \
             RETURNING provider, pkce_verifier, nonce, next_path, expires_at",
        )
        .bind(&KeyHash::of(state).0[..]),
        fetch_optional
    )?;
    Ok(attempt.filter(|attempt| attempt.expires_at > now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_attempt_is_taken_once_and_not_after_it_expires() {
        let (_db, pool) = crate::db::test_support::temp_db().await;
        let now = crate::db::now();
        let attempt = SignInAttempt {
            provider: "github".into(),
            pkce_verifier: "v".into(),
            nonce: "n".into(),
            next_path: "/account".into(),
            expires_at: now + chrono::Duration::minutes(10),
        };
        create(&pool, "state-1", &attempt, now).await.unwrap();
        assert_eq!(take(&pool, "state-2", now).await.unwrap(), None);
        assert_eq!(
            take(&pool, "state-1", now).await.unwrap(),
            Some(attempt.clone())
        );
        assert_eq!(
            take(&pool, "state-1", now).await.unwrap(),
            None,
            "used once"
        );

        create(&pool, "state-3", &attempt, now).await.unwrap();
        let later = attempt.expires_at + chrono::Duration::seconds(1);
        assert_eq!(
            take(&pool, "state-3", later).await.unwrap(),
            None,
            "expired"
        );
    }
}
