//! The `users` table.

use super::{on, Executor, Pool};
use chrono::{DateTime, Utc};
use tandem_shared::Tier;

use super::{is_unique_violation, DbError};

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// UUID v7, as text.
    pub id: String,
    /// Normalised (trimmed, lower-case) email; unique.
    pub email: String,
    pub tier: Tier,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    email: String,
    tier: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = DbError;

    fn try_from(row: UserRow) -> Result<User, DbError> {
        let tier = row.tier.parse().map_err(|error| DbError::Corrupt {
            table: "users",
            detail: format!("{error}"),
        })?;
        Ok(User {
            id: row.id,
            email: row.email,
            tier,
            created_at: row.created_at,
        })
    }
}

/// The stored form of an email: trimmed and lower-case.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Creates a user; [`DbError::DuplicateUser`] when the email is taken.
pub async fn create(pool: &Pool, email: &str, tier: Tier) -> Result<User, DbError> {
    create_in(pool, email, tier).await
}

/// [`create`] on any executor, such as the transaction of a first sign-in.
pub async fn create_in<'e>(
    executor: impl Into<Executor<'e>>,
    email: &str,
    tier: Tier,
) -> Result<User, DbError> {
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        email: normalize_email(email),
        tier,
        created_at: crate::db::now(),
    };
    let result = on!(
        executor,
        sqlx::query("INSERT INTO users (id, email, tier, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&user.id)
            .bind(&user.email)
            .bind(user.tier.as_str())
            .bind(user.created_at),
        execute
    );
    match result {
        Ok(_) => Ok(user),
        Err(error) if is_unique_violation(&error) => Err(DbError::DuplicateUser(user.email)),
        Err(error) => Err(error.into()),
    }
}

/// The user with this email, if any.
pub async fn find_by_email(pool: &Pool, email: &str) -> Result<Option<User>, DbError> {
    find_by_email_in(pool, email).await
}

/// [`find_by_email`] on any executor.
pub async fn find_by_email_in<'e>(
    executor: impl Into<Executor<'e>>,
    email: &str,
) -> Result<Option<User>, DbError> {
    let row: Option<UserRow> = on!(
        executor,
        sqlx::query_as("SELECT id, email, tier, created_at FROM users WHERE email = $1")
            .bind(normalize_email(email)),
        fetch_optional
    )?;
    row.map(User::try_from).transpose()
}

/// The user with this id; [`DbError::UnknownUser`] (naming the id) when there is none.
pub async fn get_by_id<'e>(executor: impl Into<Executor<'e>>, id: &str) -> Result<User, DbError> {
    let row: Option<UserRow> = on!(
        executor,
        sqlx::query_as("SELECT id, email, tier, created_at FROM users WHERE id = $1").bind(id),
        fetch_optional
    )?;
    row.map(User::try_from)
        .transpose()?
        .ok_or_else(|| DbError::UnknownUser(id.to_owned()))
}

/// Like [`find_by_email`], but a missing user is [`DbError::UnknownUser`].
pub async fn get_by_email(pool: &Pool, email: &str) -> Result<User, DbError> {
    find_by_email(pool, email)
        .await?
        .ok_or_else(|| DbError::UnknownUser(normalize_email(email)))
}

/// Moves the user with this email to `tier`; returns the user as now stored.
pub async fn set_tier(pool: &Pool, email: &str, tier: &Tier) -> Result<User, DbError> {
    let result = on!(
        pool,
        sqlx::query("UPDATE users SET tier = $1 WHERE email = $2")
            .bind(tier.as_str())
            .bind(normalize_email(email)),
        execute
    )?;
    if result == 0 {
        return Err(DbError::UnknownUser(normalize_email(email)));
    }
    get_by_email(pool, email).await
}

/// Number of users.
/// Users in creation order, `limit` of them after the first `offset`.
pub async fn list(pool: &Pool, offset: u32, limit: u32) -> Result<Vec<User>, DbError> {
    let rows: Vec<UserRow> = on!(
        pool,
        sqlx::query_as(
            "SELECT id, email, tier, created_at FROM users ORDER BY created_at, id \
             LIMIT $1 OFFSET $2",
        )
        .bind(i64::from(limit))
        .bind(i64::from(offset)),
        fetch_all
    )?;
    rows.into_iter().map(User::try_from).collect()
}

pub async fn count(pool: &Pool) -> Result<i64, DbError> {
    Ok(on!(
        pool,
        sqlx::query_scalar("SELECT COUNT(*) FROM users"),
        fetch_one
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_support::temp_db;

    #[tokio::test]
    async fn create_find_and_refuse_duplicates() {
        let (_dir, pool) = temp_db().await;
        assert_eq!(count(&pool).await.unwrap(), 0);
        let user = create(&pool, " Ada@Example.com ", Tier::pro())
            .await
            .unwrap();
        assert_eq!(user.email, "ada@example.com");
        let found = find_by_email(&pool, "ADA@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found, user);
        let error = create(&pool, "ada@example.com", Tier::free())
            .await
            .unwrap_err();
        assert!(
            matches!(error, DbError::DuplicateUser(ref email) if email ==
        "ada@example.com")
        );
        assert!(matches!(
            get_by_email(&pool, "bob@example.com").await.unwrap_err(),
            DbError::UnknownUser(_)
        ));
        assert_eq!(count(&pool).await.unwrap(), 1);
    }
}
