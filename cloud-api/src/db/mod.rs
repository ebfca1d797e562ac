//! The database: connection, embedded migrations, and one module per table.
//!
//! All SQL of the crate lives under this module.

pub mod account;
pub mod api_keys;
pub mod audit;
pub mod device_codes;
pub mod identities;
pub mod sessions;
pub mod sign_in_attempts;
pub mod stats;
pub mod usage;
pub mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// The migrations in `cloud-api/migrations/`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another process's write lock (CLI and server share
/// the file).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A database failure, with the cases callers act on named.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A user with this email already exists.
    #[error("user `{0}` already exists")]
    DuplicateUser(String),
    /// No user has this email.
    #[error("no user with email `{0}`")]
    UnknownUser(String),
    /// No API key has this id.
    #[error("no API key with id `{0}`")]
    UnknownKey(String),
    /// A stored value is not what the schema promises.
    #[error("corrupt row in `{table}`: {detail}")]
    Corrupt { table: &'static str, detail: String },
    /// The database could not be opened or a statement failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Begins a transaction that will write, taking SQLite's write lock at once
/// (`BEGIN IMMEDIATE`). A deferred transaction that reads first cannot wait for the lock
/// when it comes to write while another connection holds it: SQLite fails it at once
/// with "database is locked" instead, whatever the busy timeout. Taking the lock up front
/// makes it wait like any other writer.
pub async fn begin_write(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Connection options for a sqlx SQLite URL (`sqlite://PATH`, `sqlite::memory:`).
pub fn options_from_url(url: &str) -> Result<SqliteConnectOptions, DbError> {
    Ok(SqliteConnectOptions::from_str(url)?)
}

/// Connection options for a database file path (no URL escaping involved).
pub fn options_for_file(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new().filename(path)
}

/// Opens a pool, creating the database file when missing.
pub async fn connect(options: SqliteConnectOptions) -> Result<SqlitePool, DbError> {
    let options = options
        .create_if_missing(true)
        .foreign_keys(true)
        // WAL lets the CLI write while the server reads.
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode, NORMAL makes a commit durable against the process dying (the
        // commit is in the WAL file before `COMMIT` returns) without an fsync per
        // commit; only a power loss or OS crash can roll back the last transactions.
        // Usage records rely on the former (an answered request has its record even
        // after `kill -9`); fsync per commit tripled the API's p99 overhead.
        .synchronous(SqliteSynchronous::Normal)
        // No checkpoint inside a commit: it would stall every request waiting on that
        // commit. `serve` checkpoints in the background ([`spawn_checkpointer`]); a
        // process that only ran CLI commands checkpoints when its last connection closes.
        .pragma("wal_autocheckpoint", "0")
        // 1 MiB of page cache per connection instead of SQLite's 2 MiB: the hot pages
        // (keys, users, the tail of `usage`) fit, and eight pooled connections stay small.
        .pragma("cache_size", "-1024")
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Applies pending migrations; returns how many were applied.
pub async fn migrate(pool: &SqlitePool) -> Result<usize, DbError> {
    let pending = pending_migrations(pool).await?.len();
    MIGRATOR.run(pool).await?;
    Ok(pending)
}

/// A migration not yet applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMigration {
    pub version: i64,
    pub description: String,
}

/// The embedded migrations the database has not applied, without changing anything.
pub async fn pending_migrations(pool: &SqlitePool) -> Result<Vec<PendingMigration>, DbError> {
    let (table_exists,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await?;
    let applied: Vec<i64> = if table_exists > 0 {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(MIGRATOR
        .iter()
        .filter(|migration| !migration.migration_type.is_down_migration())
        .filter(|migration| !applied.contains(&migration.version))
        .map(|migration| PendingMigration {
            version: migration.version,
            description: migration.description.to_string(),
        })
        .collect())
}

/// How often `serve` copies the WAL back into the database file.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Checkpoints the WAL every [`CHECKPOINT_INTERVAL`] on a pool connection, outside any
/// request's path. PASSIVE never waits for readers or blocks writers; the WAL is reused
/// from its start once a checkpoint has caught up.
pub fn spawn_checkpointer(pool: SqlitePool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(CHECKPOINT_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if pool.is_closed() {
                return;
            }
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::warn!(%error, "WAL checkpoint failed");
            }
        }
    })
}

/// The count of changes key caches must not outlive (tier changes, revoked or deleted
/// keys, deleted users), kept by triggers (migration 0004).
pub async fn auth_epoch(pool: &SqlitePool) -> Result<i64, DbError> {
    let epoch = sqlx::query_scalar("SELECT epoch FROM auth_epoch WHERE id = 1")
        .fetch_one(pool)
        .await?;
    Ok(epoch)
}

/// Checks that the database answers.
pub async fn ping(pool: &SqlitePool) -> Result<(), DbError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A migrated database in a fresh temporary directory (kept alive by the guard).
    pub(crate) async fn temp_db() -> (tempfile::TempDir, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(options_for_file(&dir.path().join("test.sqlite")))
            .await
            .unwrap();
        migrate(&pool).await.unwrap();
        (dir, pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_apply_once_and_then_nothing_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(options_for_file(&dir.path().join("db.sqlite")))
            .await
            .unwrap();
        let pending = pending_migrations(&pool).await.unwrap();
        assert_eq!(
            pending,
            vec![
                PendingMigration {
                    version: 1,
                    description: "init".to_owned()
                },
                PendingMigration {
                    version: 2,
                    description: "tiers as data".to_owned()
                },
                PendingMigration {
                    version: 3,
                    description: "usage".to_owned()
                },
                PendingMigration {
                    version: 4,
                    description: "auth epoch".to_owned()
                },
                PendingMigration {
                    version: 5,
                    description: "key scopes and audit".to_owned()
                },
                PendingMigration {
                    version: 6,
                    description: "device authorization".to_owned()
                },
                PendingMigration {
                    version: 7,
                    description: "sessions".to_owned()
                },
                PendingMigration {
                    version: 8,
                    description: "identities".to_owned()
                }
            ]
        );
        assert_eq!(migrate(&pool).await.unwrap(), 8);
        assert!(pending_migrations(&pool).await.unwrap().is_empty());
        assert_eq!(migrate(&pool).await.unwrap(), 0);
        ping(&pool).await.unwrap();
    }

    /// Rebuilding `users` must not cascade to the keys of existing users.
    #[tokio::test]
    async fn the_tiers_migration_keeps_users_and_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(options_for_file(&dir.path().join("db.sqlite")))
            .await
            .unwrap();
        let first_only = Migrator {
            migrations: std::borrow::Cow::Owned(vec![MIGRATOR.iter().next().unwrap().clone()]),
            ..Migrator::DEFAULT
        };
        first_only.run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO users VALUES ('u1', 'a@example.com', 'pro', '2026-01-01T00:00:00Z')",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, key_hash, key_prefix, created_at) \
             VALUES ('k1', 'u1', 'laptop', x'00', 'tdm_abc', '2026-01-01T00:00:00Z')",
        )
        .execute(&pool)
        .await
        .unwrap();

        assert_eq!(migrate(&pool).await.unwrap(), 7);
        let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE user_id = 'u1'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(keys, 1);
        // Keys from before scopes keep what they could do: everything but administration.
        let (scopes, expires_at): (String, Option<String>) =
            sqlx::query_as("SELECT scopes, expires_at FROM api_keys WHERE id = 'k1'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!((scopes.as_str(), expires_at), ("completions chat", None));
        assert_eq!(auth_epoch(&pool).await.unwrap(), 0);
        // Using a key does not move the auth epoch; revoking it does.
        sqlx::query("UPDATE api_keys SET last_used_at = '2026-01-02T00:00:00Z'")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(auth_epoch(&pool).await.unwrap(), 0);
        sqlx::query("UPDATE api_keys SET revoked_at = '2026-01-02T00:00:00Z'")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(auth_epoch(&pool).await.unwrap(), 1);
        // Any tier name now (and a change moves the epoch); deleting the user still
        // cascades to the keys.
        sqlx::query("UPDATE users SET tier = 'team' WHERE id = 'u1'")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(auth_epoch(&pool).await.unwrap(), 2);
        sqlx::query("DELETE FROM users WHERE id = 'u1'")
            .execute(&pool)
            .await
            .unwrap();
        let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(keys, 0);
    }
}
