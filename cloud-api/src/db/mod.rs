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
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, PgPool, SqliteConnection, SqlitePool};

pub mod scratch;
mod timestamp;

pub use timestamp::Timestamp;

/// The SQLite migrations in `cloud-api/migrations/sqlite/`, compiled into the binary.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");
/// The PostgreSQL migrations in `cloud-api/migrations/postgres/`: the same versions as
/// SQLite's, each saying the same thing in PostgreSQL's dialect.
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a statement waits for another process's write lock (CLI and server share
/// the file).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per PostgreSQL pool. Three instances stay well under PostgreSQL's
/// default of 100 connections, with room for the CLI and backups.
const POSTGRES_MAX_CONNECTIONS: u32 = 16;

/// How long a request waits for a pooled connection before failing (503) rather than
/// queueing behind a database that does not answer.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// The database URL names no backend this build speaks.
    #[error(
        "unsupported database URL `{0}`: use sqlite://PATH, sqlite::memory: or \
         postgres://USER@HOST/DATABASE"
    )]
    UnsupportedUrl(String),
    /// The database could not be opened or a statement failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl DbError {
    /// Whether the database could not be reached (as opposed to a statement failing):
    /// callers answer 503, not 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Sqlx(error) if is_unavailable(error))
    }
}

/// Whether `error` says the database is out of reach: no connection could be had in
/// time, the connection broke, or the server is shutting down or starting
/// (SQLSTATE classes 08 and 57P).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(database) => database
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Which database engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file beside the server: the embedded default.
    Sqlite,
    /// A server shared by several instances.
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How to open the database, for either backend.
#[derive(Debug, Clone)]
pub enum ConnectOptions {
    Sqlite(SqliteConnectOptions),
    Postgres(PgConnectOptions),
}

impl ConnectOptions {
    pub fn backend(&self) -> Backend {
        match self {
            ConnectOptions::Sqlite(_) => Backend::Sqlite,
            ConnectOptions::Postgres(_) => Backend::Postgres,
        }
    }

    /// Where the database is, for logs: the file, or the server and database name
    /// (never a password).
    pub fn describe(&self) -> String {
        match self {
            ConnectOptions::Sqlite(options) => options.get_filename().display().to_string(),
            ConnectOptions::Postgres(options) => format!(
                "postgres://{}@{}:{}/{}",
                options.get_username(),
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or_default()
            ),
        }
    }
}

/// A pool of connections to SQLite or PostgreSQL. Queries are written once (with `$1`
/// placeholders, which both accept) and run on either through [`on!`].
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Pool::Sqlite(pool) => pool.is_closed(),
            Pool::Postgres(pool) => pool.is_closed(),
        }
    }

    /// Waits for checked-out connections to come back, then closes them all.
    pub async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// Open connections (idle or in use).
    pub fn size(&self) -> u32 {
        match self {
            Pool::Sqlite(pool) => pool.size(),
            Pool::Postgres(pool) => pool.size(),
        }
    }

    /// Open connections not in use.
    pub fn num_idle(&self) -> usize {
        match self {
            Pool::Sqlite(pool) => pool.num_idle(),
            Pool::Postgres(pool) => pool.num_idle(),
        }
    }

    /// A pool that connects on first use, to an in-memory SQLite database: for
    /// commands and tests that need a state but never touch the database.
    pub fn unused() -> Pool {
        Pool::Sqlite(SqlitePool::connect_lazy_with(
            SqliteConnectOptions::new().in_memory(true),
        ))
    }
}

/// A transaction on either backend; dropped without [`Transaction::commit`], it rolls
/// back.
#[derive(Debug)]
pub enum Transaction {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Transaction {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Transaction::Sqlite(transaction) => transaction.commit().await,
            Transaction::Postgres(transaction) => transaction.commit().await,
        }
    }
}

/// Where one query runs: a pool, or the connection of a transaction. Functions that run
/// inside callers' transactions as well as alone take `impl Into<Executor>`.
#[derive(Debug)]
pub enum Executor<'c> {
    SqlitePool(&'c SqlitePool),
    Sqlite(&'c mut SqliteConnection),
    PostgresPool(&'c PgPool),
    Postgres(&'c mut PgConnection),
}

impl<'c> From<&'c Pool> for Executor<'c> {
    fn from(pool: &'c Pool) -> Executor<'c> {
        match pool {
            Pool::Sqlite(pool) => Executor::SqlitePool(pool),
            Pool::Postgres(pool) => Executor::PostgresPool(pool),
        }
    }
}

impl<'c> From<&'c mut Transaction> for Executor<'c> {
    fn from(transaction: &'c mut Transaction) -> Executor<'c> {
        match transaction {
            Transaction::Sqlite(transaction) => Executor::Sqlite(transaction),
            Transaction::Postgres(transaction) => Executor::Postgres(transaction),
        }
    }
}

/// Runs one sqlx query on whichever backend an executor (`&Pool`, `&mut Transaction`,
/// an [`Executor`]) is on: the query expression is compiled once per backend, so one SQL
/// text serves both and the row types decode with each backend's own types. `execute`
/// gives the number of rows affected; the `fetch_*` methods give what sqlx gives.
/// (Exported for the integration tests, which read tables directly.)
#[doc(hidden)]
#[macro_export]
macro_rules! __db_on {
    ($executor:expr, $query:expr, execute) => {
        match ::std::convert::Into::<$crate::db::Executor<'_>>::into($executor) {
            $crate::db::Executor::SqlitePool(e) => {
                $query.execute(e).await.map(|done| done.rows_affected())
            }
            $crate::db::Executor::Sqlite(e) => {
                $query.execute(e).await.map(|done| done.rows_affected())
            }
            $crate::db::Executor::PostgresPool(e) => {
                $query.execute(e).await.map(|done| done.rows_affected())
            }
            $crate::db::Executor::Postgres(e) => {
                $query.execute(e).await.map(|done| done.rows_affected())
            }
        }
    };
    ($executor:expr, $query:expr, $method:ident) => {
        match ::std::convert::Into::<$crate::db::Executor<'_>>::into($executor) {
            $crate::db::Executor::SqlitePool(e) => $query.$method(e).await,
            $crate::db::Executor::Sqlite(e) => $query.$method(e).await,
            $crate::db::Executor::PostgresPool(e) => $query.$method(e).await,
            $crate::db::Executor::Postgres(e) => $query.$method(e).await,
        }
    };
}

pub use __db_on as on;

/// The current time at the precision both backends keep: PostgreSQL stores
/// microseconds, so a value written with nanoseconds would not read back equal.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6)
}

/// Fixed key of the PostgreSQL advisory lock [`begin_write`] takes ("tandem" in ASCII).
const WRITE_LOCK: i64 = 0x74_61_6e_64_65_6d;

/// Begins a transaction that will write, serialised with every other such transaction
/// (on PostgreSQL, across instances). The read-then-write steps in them (a refresh token
/// used once, the first sign-in creating the user, a device code approved once) rely on
/// nothing changing between the read and the write.
///
/// SQLite takes its write lock at once (`BEGIN IMMEDIATE`): a deferred transaction that
/// reads first cannot wait for the lock when it comes to write while another connection
/// holds it, and fails with "database is locked" whatever the busy timeout. PostgreSQL
/// takes a transaction-scoped advisory lock, released at commit or rollback; these
/// transactions are a few statements long, so waiting for one another costs little.
/// Writes that need no such guarantee (usage batches) use [`begin`].
pub async fn begin_write(pool: &Pool) -> Result<Transaction, sqlx::Error> {
    match pool {
        Pool::Sqlite(pool) => Ok(Transaction::Sqlite(
            pool.begin_with("BEGIN IMMEDIATE").await?,
        )),
        Pool::Postgres(pool) => {
            let mut transaction = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(WRITE_LOCK)
                .execute(&mut *transaction)
                .await?;
            Ok(Transaction::Postgres(transaction))
        }
    }
}

/// Begins a transaction for writes that do not depend on what they read: on SQLite
/// still the write lock up front (see [`begin_write`]), on PostgreSQL no global lock.
pub async fn begin(pool: &Pool) -> Result<Transaction, sqlx::Error> {
    match pool {
        Pool::Sqlite(pool) => Ok(Transaction::Sqlite(
            pool.begin_with("BEGIN IMMEDIATE").await?,
        )),
        Pool::Postgres(pool) => Ok(Transaction::Postgres(pool.begin().await?)),
    }
}

/// Connection options for a database URL: `sqlite://PATH`, `sqlite::memory:`,
/// `postgres://…` or `postgresql://…`.
pub fn options_from_url(url: &str) -> Result<ConnectOptions, DbError> {
    if url.starts_with("sqlite:") {
        Ok(ConnectOptions::Sqlite(SqliteConnectOptions::from_str(url)?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(ConnectOptions::Postgres(PgConnectOptions::from_str(url)?))
    } else {
        Err(DbError::UnsupportedUrl(mask_url(url)))
    }
}

/// `url` with any password masked, for messages.
pub fn mask_url(url: &str) -> String {
    crate::config::layers::mask_url_password(url).unwrap_or_else(|| url.to_owned())
}

/// Connection options for a database file path (no URL escaping involved).
pub fn options_for_file(path: &Path) -> ConnectOptions {
    ConnectOptions::Sqlite(SqliteConnectOptions::new().filename(path))
}

/// Opens a pool, creating a SQLite database file when missing.
pub async fn connect(options: ConnectOptions) -> Result<Pool, DbError> {
    match options {
        ConnectOptions::Sqlite(options) => connect_sqlite(options).await.map(Pool::Sqlite),
        ConnectOptions::Postgres(options) => {
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            Ok(Pool::Postgres(pool))
        }
    }
}

async fn connect_sqlite(options: SqliteConnectOptions) -> Result<SqlitePool, DbError> {
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

/// The migrations of `backend`.
pub fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    }
}

/// Applies pending migrations; returns how many were applied.
pub async fn migrate(pool: &Pool) -> Result<usize, DbError> {
    let pending = pending_migrations(pool).await?.len();
    match pool {
        Pool::Sqlite(sqlite) => SQLITE_MIGRATOR.run(sqlite).await?,
        Pool::Postgres(postgres) => POSTGRES_MIGRATOR.run(postgres).await?,
    }
    Ok(pending)
}

/// A migration not yet applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMigration {
    pub version: i64,
    pub description: String,
}

/// The embedded migrations the database has not applied, without changing anything.
pub async fn pending_migrations(pool: &Pool) -> Result<Vec<PendingMigration>, DbError> {
    let exists_sql = match pool.backend() {
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
        }
    };
    let table_exists: i64 = on!(pool, sqlx::query_scalar(exists_sql), fetch_one)?;
    let applied: Vec<i64> = if table_exists > 0 {
        on!(
            pool,
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success"),
            fetch_all
        )?
    } else {
        Vec::new()
    };
    Ok(migrator(pool.backend())
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

/// Checkpoints SQLite's WAL every [`CHECKPOINT_INTERVAL`] on a pool connection, outside
/// any request's path. PASSIVE never waits for readers or blocks writers; the WAL is
/// reused from its start once a checkpoint has caught up. PostgreSQL needs nothing of
/// the kind: `None`.
pub fn spawn_checkpointer(pool: &Pool) -> Option<tokio::task::JoinHandle<()>> {
    let Pool::Sqlite(pool) = pool.clone() else {
        return None;
    };
    Some(tokio::spawn(async move {
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
    }))
}

/// The count of changes key caches must not outlive (tier changes, revoked or deleted
/// keys, deleted users), kept by triggers (migration 0004).
pub async fn auth_epoch(pool: &Pool) -> Result<i64, DbError> {
    let epoch = on!(
        pool,
        sqlx::query_scalar("SELECT epoch FROM auth_epoch WHERE id = 1"),
        fetch_one
    )?;
    Ok(epoch)
}

/// Checks that the database answers.
pub async fn ping(pool: &Pool) -> Result<(), DbError> {
    on!(pool, sqlx::query("SELECT 1"), execute)?;
    Ok(())
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A migrated scratch database (see [`scratch`]), removed with the guard.
    pub(crate) async fn temp_db() -> (scratch::ScratchDb, Pool) {
        let db = scratch::ScratchDb::new().await.unwrap();
        let pool = db.pool().await.unwrap();
        (db, pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_apply_once_and_then_nothing_is_pending() {
        let db = scratch::ScratchDb::new().await.unwrap();
        let pool = connect(db.options.clone()).await.unwrap();
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
        let db = scratch::ScratchDb::new().await.unwrap();
        let pool = connect(db.options.clone()).await.unwrap();
        let first_only = Migrator {
            migrations: std::borrow::Cow::Owned(vec![migrator(pool.backend())
                .iter()
                .next()
                .unwrap()
                .clone()]),
            ..Migrator::DEFAULT
        };
        match &pool {
            Pool::Sqlite(sqlite) => first_only.run(sqlite).await.unwrap(),
            Pool::Postgres(postgres) => first_only.run(postgres).await.unwrap(),
        }
        let created = Timestamp("2026-01-01T00:00:00Z".parse().unwrap());
        let later = Timestamp("2026-01-02T00:00:00Z".parse().unwrap());
        on!(
            &pool,
            sqlx::query("INSERT INTO users VALUES ('u1', 'a@example.com', 'pro', $1)")
                .bind(created),
            execute
        )
        .unwrap();
        on!(
            &pool,
            sqlx::query(
                "INSERT INTO api_keys (id, user_id, name, key_hash, key_prefix, created_at) \
                 VALUES ('k1', 'u1', 'laptop', $1, 'tdm_abc', $2)",
            )
            .bind(&[0_u8][..])
            .bind(created),
            execute
        )
        .unwrap();

        assert_eq!(migrate(&pool).await.unwrap(), 7);
        let count_keys = "SELECT COUNT(*) FROM api_keys WHERE user_id = 'u1'";
        let keys: i64 = on!(&pool, sqlx::query_scalar(count_keys), fetch_one).unwrap();
        assert_eq!(keys, 1);
        // Keys from before scopes keep what they could do: everything but administration.
        let (scopes, expires_at): (String, Option<Timestamp>) = on!(
            &pool,
            sqlx::query_as("SELECT scopes, expires_at FROM api_keys WHERE id = 'k1'"),
            fetch_one
        )
        .unwrap();
        assert_eq!((scopes.as_str(), expires_at), ("completions chat", None));
        assert_eq!(auth_epoch(&pool).await.unwrap(), 0);
        // Using a key does not move the auth epoch; revoking it does.
        let set_key = |column: &str| format!("UPDATE api_keys SET {column} = $1");
        on!(
            &pool,
            sqlx::query(&set_key("last_used_at")).bind(later),
            execute
        )
        .unwrap();
        assert_eq!(auth_epoch(&pool).await.unwrap(), 0);
        on!(
            &pool,
            sqlx::query(&set_key("revoked_at")).bind(later),
            execute
        )
        .unwrap();
        assert_eq!(auth_epoch(&pool).await.unwrap(), 1);
        // Any tier name now (and a change moves the epoch); deleting the user still
        // cascades to the keys.
        let set_tier = "UPDATE users SET tier = 'team' WHERE id = 'u1'";
        on!(&pool, sqlx::query(set_tier), execute).unwrap();
        assert_eq!(auth_epoch(&pool).await.unwrap(), 2);
        on!(
            &pool,
            sqlx::query("DELETE FROM users WHERE id = 'u1'"),
            execute
        )
        .unwrap();
        let keys: i64 = on!(
            &pool,
            sqlx::query_scalar("SELECT COUNT(*) FROM api_keys"),
            fetch_one
        )
        .unwrap();
        assert_eq!(keys, 0);
    }
}
