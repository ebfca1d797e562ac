//! The `api_keys` table: hashed keys, their owners, and revocation.

use super::{on, Executor, Pool};
use chrono::{DateTime, Utc};

use tandem_shared::Scope;

use serde_json::json;

use super::audit::{self, Actor};
use super::users::User;
use super::DbError;
use crate::keys::{GeneratedKey, KeyHash};

/// A stored key, without any secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// UUID v7, as text; what `keys revoke` takes.
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the key (`tdm_AbC123`), for telling keys apart.
    pub key_prefix: String,
    /// What the key may be used for, in [`Scope::ALL`] order.
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the key stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    user_id: String,
    name: String,
    key_prefix: String,
    scopes: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = DbError;

    fn try_from(row: ApiKeyRow) -> Result<ApiKey, DbError> {
        Ok(ApiKey {
            scopes: parse_scopes(&row.scopes)?,
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            key_prefix: row.key_prefix,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

/// The columns [`ApiKeyRow`] reads.
const KEY_COLUMNS: &str =
    "id, user_id, name, key_prefix, scopes, created_at, last_used_at, expires_at, revoked_at";

/// Scopes as stored: space-separated, in [`Scope::ALL`] order.
pub fn format_scopes(scopes: &[Scope]) -> String {
    Scope::ALL
        .into_iter()
        .filter(|scope| scopes.contains(scope))
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn parse_scopes(text: &str) -> Result<Vec<Scope>, DbError> {
    let mut scopes = text
        .split_whitespace()
        .map(|name| {
            name.parse::<Scope>().map_err(|detail| DbError::Corrupt {
                table: "api_keys",
                detail,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

/// What a new key may do and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl KeyGrant {
    /// A key named `name` with the default scopes and no expiry.
    pub fn named(name: &str) -> KeyGrant {
        KeyGrant {
            name: name.to_owned(),
            scopes: Scope::DEFAULT.to_vec(),
            expires_at: None,
        }
    }
}

/// Stores a freshly generated key for a user, with the default scopes and no expiry.
pub async fn insert(
    pool: &Pool,
    user: &User,
    name: &str,
    key: &GeneratedKey,
) -> Result<ApiKey, DbError> {
    insert_granted(pool, user, &KeyGrant::named(name), key).await
}

/// Stores a freshly generated key for a user, as `grant` says.
pub async fn insert_granted<'e>(
    executor: impl Into<Executor<'e>>,
    user: &User,
    grant: &KeyGrant,
    key: &GeneratedKey,
) -> Result<ApiKey, DbError> {
    let mut scopes = grant.scopes.clone();
    scopes.sort();
    scopes.dedup();
    let api_key = ApiKey {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: user.id.clone(),
        name: grant.name.clone(),
        key_prefix: key.display_prefix().to_owned(),
        scopes,
        created_at: crate::db::now(),
        last_used_at: None,
        expires_at: grant.expires_at,
        revoked_at: None,
    };
    on!(
        executor,
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, key_hash, key_prefix, scopes, \
             created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&api_key.id)
        .bind(&api_key.user_id)
        .bind(&api_key.name)
        .bind(&key.hash.0[..])
        .bind(&api_key.key_prefix)
        .bind(format_scopes(&api_key.scopes))
        .bind(api_key.created_at)
        .bind(api_key.expires_at),
        execute
    )?;
    Ok(api_key)
}

/// A user's keys, oldest first, revoked ones included.
pub async fn list_for_user(pool: &Pool, user: &User) -> Result<Vec<ApiKey>, DbError> {
    let rows: Vec<ApiKeyRow> = on!(
        pool,
        sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(&user.id),
        fetch_all
    )?;
    rows.into_iter().map(ApiKey::try_from).collect()
}

/// The key `id` if it belongs to `user_id`; `None` for another user's key as for no key,
/// so nobody learns which ids exist.
pub async fn find_for_user(
    pool: &Pool,
    user_id: &str,
    id: &str,
) -> Result<Option<ApiKey>, DbError> {
    let row: Option<ApiKeyRow> = on!(
        pool,
        sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND user_id = $2"
        ))
        .bind(id)
        .bind(user_id),
        fetch_optional
    )?;
    row.map(ApiKey::try_from).transpose()
}

/// What `revoke` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The key was active and is now revoked.
    Revoked,
    /// The key had been revoked before; nothing changed.
    AlreadyRevoked,
}

/// Revokes a key by id; [`DbError::UnknownKey`] when there is none.
pub async fn revoke(pool: &Pool, id: &str) -> Result<RevokeOutcome, DbError> {
    if mark_revoked(pool, id).await? {
        return Ok(RevokeOutcome::Revoked);
    }
    let exists: i64 = on!(
        pool,
        sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE id = $1").bind(id),
        fetch_one
    )?;
    if exists > 0 {
        Ok(RevokeOutcome::AlreadyRevoked)
    } else {
        Err(DbError::UnknownKey(id.to_owned()))
    }
}

/// Revokes the key `id` if it is active; whether it was.
pub async fn mark_revoked<'e>(
    executor: impl Into<Executor<'e>>,
    id: &str,
) -> Result<bool, DbError> {
    let updated = on!(
        executor,
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(crate::db::now())
            .bind(id),
        execute
    )?;
    Ok(updated > 0)
}

/// Stores a new key for `user` as `grant` says and records who created it from where,
/// in one transaction.
pub async fn create_audited(
    pool: &Pool,
    user: &User,
    grant: &KeyGrant,
    key: &GeneratedKey,
    actor: &Actor,
    source: &str,
) -> Result<ApiKey, DbError> {
    let mut transaction = super::begin_write(pool).await?;
    let created = insert_granted(&mut transaction, user, grant, key).await?;
    audit::record(
        &mut transaction,
        actor,
        "key.create",
        Some(&format!("key:{}", created.id)),
        source,
        &json!({"name": created.name, "scopes": created.scopes, "expires_at":
        created.expires_at}),
    )
    .await?;
    transaction.commit().await?;
    Ok(created)
}

/// Revokes `key` if it is active, recording who revoked it from where, in one
/// transaction; the key as now stored.
pub async fn revoke_audited(
    pool: &Pool,
    key: &ApiKey,
    actor: &Actor,
    source: &str,
) -> Result<ApiKey, DbError> {
    let mut transaction = super::begin_write(pool).await?;
    if mark_revoked(&mut transaction, &key.id).await? {
        audit::record(
            &mut transaction,
            actor,
            "key.revoke",
            Some(&format!("key:{}", key.id)),
            source,
            &json!({"name": key.name}),
        )
        .await?;
    }
    let row: ApiKeyRow = on!(
        &mut transaction,
        sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = \
             $1"
        ))
        .bind(&key.id),
        fetch_one
    )?;
    transaction.commit().await?;
    ApiKey::try_from(row)
}

/// A key found by its hash, with its owner.
#[derive(Debug, Clone)]
pub struct KeyWithOwner {
    pub key_id: String,
    pub key_hash: KeyHash,
    pub revoked: bool,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<DateTime<Utc>>,
    pub user: User,
}

#[derive(sqlx::FromRow)]
struct KeyWithOwnerRow {
    key_id: String,
    key_hash: Vec<u8>,
    revoked_at: Option<DateTime<Utc>>,
    scopes: String,
    expires_at: Option<DateTime<Utc>>,
    user_id: String,
    email: String,
    tier: String,
    user_created_at: DateTime<Utc>,
}

/// The key with this hash and its owner, if any.
pub async fn find_by_hash(pool: &Pool, hash: &KeyHash) -> Result<Option<KeyWithOwner>, DbError> {
    let row: Option<KeyWithOwnerRow> = on!(
        pool,
        sqlx::query_as(
            "SELECT k.id AS key_id, k.key_hash, k.revoked_at, k.scopes, k.expires_at, \
             u.id AS user_id, u.email, u.tier, u.created_at AS user_created_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.key_hash = $1",
        )
        .bind(&hash.0[..]),
        fetch_optional
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let key_hash: [u8; 32] = row.key_hash.try_into().map_err(|_| DbError::Corrupt {
        table: "api_keys",
        detail: "key_hash is not 32 bytes".to_owned(),
    })?;
    let tier = row.tier.parse().map_err(|error| DbError::Corrupt {
        table: "users",
        detail: format!("{error}"),
    })?;
    Ok(Some(KeyWithOwner {
        key_id: row.key_id,
        key_hash: KeyHash(key_hash),
        revoked: row.revoked_at.is_some(),
        scopes: parse_scopes(&row.scopes)?,
        expires_at: row.expires_at,
        user: User {
            id: row.user_id,
            email: row.email,
            tier,
            created_at: row.user_created_at,
        },
    }))
}

/// Records that a key was used at `at`; `last_used_at` never moves backwards, so uses
/// written out of order (in batches) keep the latest.
pub async fn touch_last_used<'e>(
    executor: impl Into<Executor<'e>>,
    key_id: &str,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    on!(
        executor,
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(at)
        .bind(key_id),
        execute
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_support::temp_db;
    use crate::db::users;
    use crate::keys;
    use tandem_shared::Tier;

    #[tokio::test]
    async fn insert_find_list_revoke() {
        let (_dir, pool) = temp_db().await;
        let user = users::create(&pool, "a@example.com", Tier::free())
            .await
            .unwrap();
        let key = keys::generate();
        let stored = insert(&pool, &user, "laptop", &key).await.unwrap();
        assert_eq!(stored.key_prefix, &key.secret[..10]);

        let found = find_by_hash(&pool, &key.hash).await.unwrap().unwrap();
        assert_eq!(found.key_id, stored.id);
        assert_eq!(found.user, user);
        assert!(!found.revoked);
        assert!(find_by_hash(&pool, &keys::generate().hash)
            .await
            .unwrap()
            .is_none());

        touch_last_used(&pool, &stored.id, crate::db::now())
            .await
            .unwrap();
        let listed = list_for_user(&pool, &user).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].last_used_at.is_some());

        assert_eq!(
            revoke(&pool, &stored.id).await.unwrap(),
            RevokeOutcome::Revoked
        );
        assert_eq!(
            revoke(&pool, &stored.id).await.unwrap(),
            RevokeOutcome::AlreadyRevoked
        );
        assert!(matches!(
            revoke(&pool, "nope").await.unwrap_err(),
            DbError::UnknownKey(_)
        ));
        assert!(
            find_by_hash(&pool, &key.hash)
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
    }
}
