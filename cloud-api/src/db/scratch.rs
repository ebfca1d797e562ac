//! Throwaway databases for tests and load runs: a SQLite file in a temporary directory,
//! or a fresh schema on a PostgreSQL server, so tests run on either backend without
//! seeing each other's rows.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use super::{connect, migrate, options_for_file, ConnectOptions, DbError, Pool};

/// The environment variable naming the PostgreSQL server tests use instead of SQLite
/// (`postgres://USER@HOST/DATABASE`); unset, tests use SQLite files.
pub const TEST_DATABASE_URL: &str = "TANDEM_TEST_DATABASE_URL";

/// A scratch database; dropping it removes it (the directory, or the schema).
#[derive(Debug)]
pub struct ScratchDb {
    /// How to connect to it, for a server or a CLI under test.
    pub options: ConnectOptions,
    /// A URL for it, for processes configured by URL.
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Directory(#[allow(dead_code)] tempfile::TempDir),
    Schema {
        server: Box<PgConnectOptions>,
        schema: String,
    },
    /// Already removed ([`ScratchDb::remove`]).
    Done,
}

impl ScratchDb {
    /// A new empty database on the backend [`TEST_DATABASE_URL`] chooses.
    pub async fn new() -> Result<ScratchDb, DbError> {
        match std::env::var(TEST_DATABASE_URL) {
            Ok(url) if !url.is_empty() => ScratchDb::postgres(&url).await,
            _ => Ok(ScratchDb::sqlite()),
        }
    }

    /// A SQLite file in a new temporary directory.
    pub fn sqlite() -> ScratchDb {
        let directory = tempfile::tempdir().expect("a temporary directory can be created");
        let path = directory.path().join("tandem.sqlite");
        ScratchDb {
            options: options_for_file(&path),
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::Directory(directory),
        }
    }

    /// A new schema on the PostgreSQL server at `url`; connections to it see only it.
    pub async fn postgres(url: &str) -> Result<ScratchDb, DbError> {
        let server = PgConnectOptions::from_str(url)?;
        // A v7 UUID: the name says when it was made, so stale ones can be told apart.
        let schema = format!("{SCHEMA_PREFIX}{}", uuid::Uuid::now_v7().simple());
        let mut connection = server.connect().await?;
        drop_stale_schemas(&mut connection).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut connection)
            .await?;
        connection.close().await?;
        let search_path = [("search_path", schema.as_str())];
        let mut scoped = url::Url::parse(url).map_err(|_| DbError::UnsupportedUrl(url.into()))?;
        scoped
            .query_pairs_mut()
            .append_pair("options", &format!("-c search_path={schema}"));
        Ok(ScratchDb {
            options: ConnectOptions::Postgres(server.clone().options(search_path)),
            url: scoped.to_string(),
            cleanup: Cleanup::Schema {
                server: Box::new(server),
                schema,
            },
        })
    }

    /// Removes it now and says whether that worked, where dropping it only starts the
    /// removal: for a process that ends right after (a load run) or must know the schema
    /// is gone. Close its pools first; PostgreSQL waits for their transactions.
    pub async fn remove(mut self) -> Result<(), DbError> {
        match std::mem::replace(&mut self.cleanup, Cleanup::Done) {
            // Removed as it is dropped, synchronously: nothing to wait for.
            Cleanup::Directory(directory) => drop(directory),
            Cleanup::Schema { server, schema } => {
                let mut connection = server.connect().await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut connection)
                    .await?;
                connection.close().await?;
            }
            Cleanup::Done => {}
        }
        Ok(())
    }

    /// Opens and migrates it.
    pub async fn pool(&self) -> Result<Pool, DbError> {
        let pool = connect(self.options.clone()).await?;
        migrate(&pool).await?;
        Ok(pool)
    }
}

/// What every scratch schema's name starts with.
const SCHEMA_PREFIX: &str = "scratch_";

/// How old a scratch schema must be before another run may drop it: older than any test
/// run, so no running test loses its database.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Drops scratch schemas left behind by processes that exited before their cleanup
/// thread finished (see [`ScratchDb`]'s `Drop`).
async fn drop_stale_schemas(connection: &mut sqlx::PgConnection) -> Result<(), DbError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT schema_name::text FROM information_schema.schemata \
         WHERE starts_with(schema_name, $1)",
    )
    .bind(SCHEMA_PREFIX)
    .fetch_all(&mut *connection)
    .await?;
    let now = std::time::SystemTime::now();
    for name in names {
        let created = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|hex| uuid::Uuid::parse_str(hex).ok())
            .and_then(|id| id.get_timestamp())
            .map(|stamp| {
                let (seconds, nanos) = stamp.to_unix();
                std::time::UNIX_EPOCH + std::time::Duration::new(seconds, nanos)
            });
        // Names that are not ours (no v7 UUID) are left alone.
        let stale = created
            .and_then(|created| now.duration_since(created).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if stale {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&mut *connection)
                .await?;
        }
    }
    Ok(())
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let Cleanup::Schema { server, schema } = &self.cleanup else {
            return;
        };
        let (server, schema) = ((**server).clone(), schema.clone());
        // Drop cannot await, and may run inside a runtime: a thread of its own, not
        // waited for. Waiting would block the runtime whose tasks still have to return
        // the test's connections (and roll back what they left open), which the DROP
        // waits for. A schema left behind by a process that exits first is harmless.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut connection = server.connect().await.ok()?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut connection)
                    .await
                    .ok()?;
                connection.close().await.ok()
            })
        });
    }
}
