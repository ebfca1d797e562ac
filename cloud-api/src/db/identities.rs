//! The `identities` table: accounts at sign-in providers, each belonging to one user,
//! and the rule that turns a provider's answer into a user.

use super::{on, Pool};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tandem_shared::Tier;

use super::users::{self, User};
use super::DbError;

/// One linked account at a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: DateTime<Utc>,
}

/// Who signed in, as the provider vouches: its stable subject and a verified email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub provider: String,
    pub subject: String,
    pub email: String,
}

/// How a sign-in found its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    /// The identity was known.
    Existing,
    /// A new identity joined the user who has its verified email.
    NewIdentity,
    /// Neither was known: a user was created.
    NewUser,
}

/// The user `identity` signs in as, linking or creating as needed, in one write
/// transaction (so concurrent first sign-ins of one person make one user): a known
/// (provider, subject) is that identity's user whatever its email says now; otherwise the
/// user with the verified email, or a new user of `new_user_tier`.
pub async fn sign_in(
    pool: &Pool,
    identity: &VerifiedIdentity,
    new_user_tier: &Tier,
    now: DateTime<Utc>,
) -> Result<(User, Linked), DbError> {
    let mut transaction = super::begin_write(pool).await?;
    let known: Option<(String,)> = on!(
        &mut transaction,
        sqlx::query_as("SELECT user_id FROM identities WHERE provider = $1 AND subject = $2")
            .bind(&identity.provider)
            .bind(&identity.subject),
        fetch_optional
    )?;
    let (user, linked) = match known {
        Some((user_id,)) => {
            on!(
                &mut transaction,
                sqlx::query(
                    "UPDATE identities SET email = $1, last_sign_in_at = $2 \
                     WHERE provider = $3 AND subject = $4",
                )
                .bind(users::normalize_email(&identity.email))
                .bind(now)
                .bind(&identity.provider)
                .bind(&identity.subject),
                execute
            )?;
            (
                users::get_by_id(&mut transaction, &user_id).await?,
                Linked::Existing,
            )
        }
        None => {
            let existing = users::find_by_email_in(&mut transaction, &identity.email).await?;
            let (user, linked) = match existing {
                Some(user) => (user, Linked::NewIdentity),
                None => (
                    users::create_in(&mut transaction, &identity.email, new_user_tier.clone())
                        .await?,
                    Linked::NewUser,
                ),
            };
            on!(
                &mut transaction,
                sqlx::query(
                    "INSERT INTO identities \
                     (id, user_id, provider, subject, email, created_at, last_sign_in_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&user.id)
                .bind(&identity.provider)
                .bind(&identity.subject)
                .bind(users::normalize_email(&identity.email))
                .bind(now)
                .bind(now),
                execute
            )?;
            (user, linked)
        }
    };
    transaction.commit().await?;
    Ok((user, linked))
}

/// The identities linked to a user, oldest first.
pub async fn list_for_user(pool: &Pool, user_id: &str) -> Result<Vec<Identity>, DbError> {
    Ok(on!(
        pool,
        sqlx::query_as(
            "SELECT provider, subject, email, created_at, last_sign_in_at FROM identities \
             WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user_id),
        fetch_all
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pool() -> (crate::db::scratch::ScratchDb, Pool) {
        crate::db::test_support::temp_db().await
    }

    fn identity(provider: &str, subject: &str, email: &str) -> VerifiedIdentity {
        VerifiedIdentity {
            provider: provider.into(),
            subject: subject.into(),
            email: email.into(),
        }
    }

    #[tokio::test]
    async fn first_sign_in_creates_later_ones_link_and_the_subject_decides() {
        let (_dir, pool) = pool().await;
        let now = crate::db::now();
        let free = Tier::free();
        let (ada, linked) = sign_in(
            &pool,
            &identity("github", "1", "Ada@Example.com"),
            &free,
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            (linked, ada.email.as_str(), &ada.tier),
            (Linked::NewUser, "ada@example.com", &free)
        );
        // Another provider vouching for the same email joins the same user.
        let (same, linked) = sign_in(
            &pool,
            &identity("google", "g-9", "ada@example.com"),
            &free,
            now,
        )
        .await
        .unwrap();
        assert_eq!((linked, &same.id), (Linked::NewIdentity, &ada.id));
        // The same identity with a changed email is still the same user; the email
        // does not move it.
        let (again, linked) = sign_in(
            &pool,
            &identity("github", "1", "ada@new.example"),
            &free,
            now,
        )
        .await
        .unwrap();
        assert_eq!((linked, &again.id), (Linked::Existing, &ada.id));
        let linked = list_for_user(&pool, &ada.id).await.unwrap();
        assert_eq!(linked.len(), 2);
        assert_eq!(linked[0].email, "ada@new.example");
        // A different subject with an unrelated email is a different user.
        let (bob, linked) = sign_in(
            &pool,
            &identity("github", "2", "bob@example.com"),
            &free,
            now,
        )
        .await
        .unwrap();
        assert_eq!(linked, Linked::NewUser);
        assert_ne!(bob.id, ada.id);
    }

    #[tokio::test]
    async fn deleting_the_user_removes_their_identities() {
        let (_dir, pool) = pool().await;
        let now = crate::db::now();
        let (user, _) = sign_in(
            &pool,
            &identity("github", "1", "a@example.com"),
            &Tier::free(),
            now,
        )
        .await
        .unwrap();
        crate::db::account::delete(&pool, &user, &crate::db::audit::Actor::Cli, "cli", now)
            .await
            .unwrap();
        let left: i64 = on!(
            &pool,
            sqlx::query_scalar("SELECT COUNT(*) FROM identities"),
            fetch_one
        )
        .unwrap();
        assert_eq!(left, 0);
    }
}
