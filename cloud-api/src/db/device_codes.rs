//! The `device_codes` table: the state of each Device Authorization Grant (RFC 8628)
//! from the code's creation to the one time its key is collected.

use super::{on, Executor, Pool};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tandem_shared::Scope;

use super::api_keys::{self, format_scopes, KeyGrant};
use super::audit::{self, Actor};
use super::users::User;
use super::DbError;
use crate::keys::{GeneratedKey, KeyHash};

/// A new grant, as the client is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeviceCode {
    pub user_code: String,
    pub expires_at: DateTime<Utc>,
    pub interval_secs: u32,
}

/// Stores a new grant; the caller made `device_code` and `user_code` (random). Fails
/// with a unique-constraint error if `user_code` is taken by a live grant.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    pool: &Pool,
    device_code: &KeyHash,
    user_code: &str,
    client_id: &str,
    scopes: &[Scope],
    lifetime: Duration,
    interval_secs: u32,
    now: DateTime<Utc>,
) -> Result<NewDeviceCode, DbError> {
    // Housekeeping: grants past their expiry are of no use to anyone.
    on!(
        pool,
        sqlx::query("DELETE FROM device_codes WHERE expires_at < $1").bind(now),
        execute
    )?;
    let expires_at = now + lifetime;
    on!(
        pool,
        sqlx::query(
            "INSERT INTO device_codes (device_code_hash, user_code, client_id, \
             scopes, created_at, \
             expires_at, interval_secs) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&device_code.0[..])
        .bind(user_code)
        .bind(client_id)
        .bind(format_scopes(scopes))
        .bind(now)
        .bind(expires_at)
        .bind(i64::from(interval_secs)),
        execute
    )?;
    Ok(NewDeviceCode {
        user_code: user_code.to_owned(),
        expires_at,
        interval_secs,
    })
}

/// Whether `error` is the user code being taken (the caller draws another).
pub fn is_duplicate_user_code(error: &DbError) -> bool {
    matches!(error, DbError::Sqlx(sqlx::Error::Database(database)) if database.is_unique_violation())
}

/// What a poll of the token endpoint finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// No such device code (or it was already collected and cleaned up).
    Unknown,
    /// Not decided yet.
    Pending,
    /// Polled sooner than the interval allows; the interval is now this.
    SlowDown {
        interval_secs: u32,
    },
    Denied,
    Expired,
    /// The key was already collected: a device code is good for one key.
    AlreadyUsed,
    /// Approved: here is the key, issued now, once.
    Approved {
        key: String,
        scopes: Vec<Scope>,
    },
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    scopes: String,
    expires_at: DateTime<Utc>,
    interval_secs: i64,
    last_polled_at: Option<DateTime<Utc>>,
    status: String,
    user_id: Option<String>,
    client_id: String,
}

/// How much earlier than the interval a poll may come before it is "too fast": clients
/// sleep the interval between polls, and the network jitters.
const POLL_SLACK: Duration = Duration::milliseconds(500);
/// What `slow_down` adds to the interval (RFC 8628 §3.5).
const SLOW_DOWN_SECS: u32 = 5;

/// One poll by the device. An approved grant's key is generated and stored here, in the
/// transaction that marks the grant used, so two racing polls cannot both collect it.
pub async fn poll(
    pool: &Pool,
    device_code: &KeyHash,
    client_id: &str,
    key: &GeneratedKey,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Poll, DbError> {
    let mut transaction = super::begin_write(pool).await?;
    let row: Option<GrantRow> = on!(
        &mut transaction,
        sqlx::query_as(
            "SELECT scopes, expires_at, interval_secs, last_polled_at, status, user_id, \
             client_id \
             FROM device_codes WHERE device_code_hash = $1",
        )
        .bind(&device_code.0[..]),
        fetch_optional
    )?;
    let Some(row) = row.filter(|row| row.client_id == client_id) else {
        return Ok(Poll::Unknown);
    };
    let interval = u32::try_from(row.interval_secs).unwrap_or(u32::MAX);
    let outcome = match row.status.as_str() {
        "used" => Poll::AlreadyUsed,
        _ if row.expires_at <= now => Poll::Expired,
        "denied" => Poll::Denied,
        "approved" => {
            // Claimed first, conditionally: of two racing polls only one changes the row.
            let claimed = on!(
                &mut transaction,
                sqlx::query(
                    "UPDATE device_codes SET status = 'used', last_polled_at = $1 \
                     WHERE device_code_hash = $2 AND status = 'approved'",
                )
                .bind(now)
                .bind(&device_code.0[..]),
                execute
            )?;
            if claimed == 0 {
                return Ok(Poll::AlreadyUsed);
            }
            let user_id = row.user_id.clone().unwrap_or_default();
            let user = super::users::get_by_id(&mut transaction, &user_id).await?;
            let scopes = super::api_keys::parse_scopes(&row.scopes)?;
            let grant = KeyGrant {
                name: format!("device ({client_id})"),
                scopes: scopes.clone(),
                expires_at: None,
            };
            let stored = api_keys::insert_granted(&mut transaction, &user, &grant, key).await?;
            on!(
                &mut transaction,
                sqlx::query("UPDATE device_codes SET key_id = $1 WHERE device_code_hash = $2")
                    .bind(&stored.id)
                    .bind(&device_code.0[..]),
                execute
            )?;
            let actor = Actor::User {
                id: user.id.clone(),
                key_id: None,
            };
            audit::record(
                &mut transaction,
                &actor,
                "key.create",
                Some(&format!("key:{}", stored.id)),
                source,
                &json!({"name": stored.name, "scopes": stored.scopes, "via":
                "device_authorization"}),
            )
            .await?;
            transaction.commit().await?;
            return Ok(Poll::Approved {
                key: key.secret.clone(),
                scopes,
            });
        }
        _ => {
            let too_soon = row.last_polled_at.is_some_and(|last| {
                now - last + POLL_SLACK < Duration::seconds(i64::from(interval))
            });
            let interval = if too_soon {
                interval.saturating_add(SLOW_DOWN_SECS)
            } else {
                interval
            };
            on!(
                &mut transaction,
                sqlx::query(
                    "UPDATE device_codes SET last_polled_at = $1, interval_secs = $2 \
                     WHERE device_code_hash = $3",
                )
                .bind(now)
                .bind(i64::from(interval))
                .bind(&device_code.0[..]),
                execute
            )?;
            if too_soon {
                Poll::SlowDown {
                    interval_secs: interval,
                }
            } else {
                Poll::Pending
            }
        }
    };
    transaction.commit().await?;
    Ok(outcome)
}

/// A grant a person is asked to confirm, found by the code they typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingGrant {
    pub user_code: String,
    pub client_id: String,
    pub scopes: Vec<Scope>,
    pub expires_at: DateTime<Utc>,
}

/// The live, undecided grant with `user_code`, if any.
pub async fn find_pending(
    pool: &Pool,
    user_code: &str,
    now: DateTime<Utc>,
) -> Result<Option<PendingGrant>, DbError> {
    let row: Option<(String, String, String, DateTime<Utc>)> = on!(
        pool,
        sqlx::query_as(
            "SELECT user_code, client_id, scopes, expires_at FROM device_codes \
             WHERE user_code = $1 AND status = 'pending' AND expires_at > $2",
        )
        .bind(user_code)
        .bind(now),
        fetch_optional
    )?;
    row.map(|(user_code, client_id, scopes, expires_at)| {
        Ok(PendingGrant {
            user_code,
            client_id,
            scopes: super::api_keys::parse_scopes(&scopes)?,
            expires_at,
        })
    })
    .transpose()
}

/// Approves (or denies) the live, undecided grant with `user_code` for `user`; whether
/// there was one. The key is issued when the device next polls.
pub async fn decide<'e>(
    executor: impl Into<Executor<'e>>,
    user_code: &str,
    user: &User,
    approve: bool,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let updated = on!(
        executor,
        sqlx::query(
            "UPDATE device_codes SET status = $1, user_id = $2, decided_at = $3 \
             WHERE user_code = $4 AND status = 'pending' AND expires_at > $5",
        )
        .bind(if approve { "approved" } else { "denied" })
        .bind(&user.id)
        .bind(now)
        .bind(user_code)
        .bind(now),
        execute
    )?;
    Ok(updated > 0)
}

/// [`decide`], recording who decided from where in the audit log, in one transaction;
/// whether there was a live, undecided grant with `user_code`.
pub async fn decide_audited(
    pool: &Pool,
    user_code: &str,
    user: &User,
    approve: bool,
    actor: &Actor,
    source: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let mut transaction = super::begin_write(pool).await?;
    if !decide(&mut transaction, user_code, user, approve, now).await? {
        return Ok(false);
    }
    audit::record(
        &mut transaction,
        actor,
        if approve {
            "device.approve"
        } else {
            "device.deny"
        },
        Some(&format!("user:{}", user.id)),
        source,
        &json!({"user_code": user_code}),
    )
    .await?;
    transaction.commit().await?;
    Ok(true)
}
