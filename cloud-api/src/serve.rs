//! `tandem-cloud serve`: open the database, build the state, bind, announce, serve until
//! ctrl-c or SIGTERM, then shut down gracefully: stop accepting, let requests and streams
//! in flight finish (up to `http.shutdown_timeout_ms`, then end the streams still open),
//! wait for their usage records to be committed, close the database, send the last traces.

use std::future::IntoFuture;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tandem_shared::Tier;

use crate::tiers::Tiers;

use crate::config::Config;
use crate::db::{self, api_keys, users, DbError};
use crate::http::{app, StreamCutoff};
use crate::keys;
use crate::state::AppState;
use crate::telemetry::Telemetry;

/// How long connections get to close after open streams were ended at the shutdown
/// timeout, before the server stops without them.
const CLOSE_AFTER_CUT: Duration = Duration::from_secs(5);
/// How long the usage writer gets to commit the last records once the server stopped.
const USAGE_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The user created on first start with an empty database.
pub const DEV_USER_EMAIL: &str = "dev@localhost";

/// Everything `serve` needs, already resolved from flags, environment and file.
#[derive(Debug)]
pub struct ServeOptions {
    pub config: Config,
    pub bind: SocketAddr,
    pub database: crate::db::ConnectOptions,
    /// The trace exporter, when `[telemetry]` turned it on; already installed in logging.
    pub telemetry: Option<Telemetry>,
}

/// Runs the server until a shutdown signal, then sends the traces still queued (after a
/// failed start too).
pub async fn serve(mut options: ServeOptions) -> anyhow::Result<()> {
    let telemetry = options.telemetry.take();
    if let Some(telemetry) = &telemetry {
        let settings = telemetry.settings();
        tracing::info!(
            endpoint = %settings.endpoint,
            service_name = %settings.service_name,
            sampling_ratio = settings.sampling_ratio,
            "exporting traces over OTLP/HTTP"
        );
    }
    let result = serve_until_stopped(options).await;
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    result
}

async fn serve_until_stopped(options: ServeOptions) -> anyhow::Result<()> {
    tracing::info!(database = %options.database.describe(), "opening database");
    let pool = db::connect(options.database)
        .await
        .context("cannot open the database")?;
    let applied = db::migrate(&pool)
        .await
        .context("cannot apply database migrations")?;
    if applied > 0 {
        tracing::info!(applied, "applied database migrations");
    }
    let checkpointer = db::spawn_checkpointer(&pool);
    // Provider keys are read here, so a missing one stops the start before binding.
    let state = AppState::new(options.config, pool.clone())?;
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .with_context(|| format!("cannot listen on {}", options.bind))?;
    let address = listener
        .local_addr()
        .context("cannot read the bound address")?;

    let shutdown = shutdown_signal()?;
    let dev_key = create_dev_user_if_empty(&pool, &state.tiers).await?;
    {
        let mut stdout = std::io::stdout().lock();
        if let Some((key, tier)) = dev_key {
            write!(
                stdout,
                "{}",
                dev_settings(&editor_url(address), &key, &tier)
            )?;
        }
        writeln!(stdout, "Listening on http://{address}")?;
        stdout.flush()?;
    }
    tracing::info!(%address, provider = ?state.providers, "serving");

    let shutdown_timeout = Duration::from_millis(state.config.http.shutdown_timeout_ms);
    let usage_finished = state.usage.finished();
    let (cut_streams, cutoff) = StreamCutoff::channel();
    // The peer's address reaches handlers for the audit log.
    let service = app(state)
        .layer(axum::Extension(cutoff))
        .into_make_service_with_connect_info::<SocketAddr>();
    let (stopping, stopping_seen) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        shutdown.await;
        stopping.send_replace(true);
    });
    let mut server = std::pin::pin!(server.into_future());
    let finished_in_time = tokio::select! {
        result = &mut server => {
            result.context("server failed")?;
            true
        }
        () = grace_period_over(stopping_seen, shutdown_timeout) => false,
    };
    if finished_in_time {
        tracing::info!("requests in flight finished");
    } else {
        tracing::warn!(
            timeout_ms = shutdown_timeout.as_millis() as u64,
            "requests still in flight at the shutdown timeout; ending open streams"
        );
        cut_streams.cut();
        match tokio::time::timeout(CLOSE_AFTER_CUT, &mut server).await {
            Ok(result) => result.context("server failed")?,
            Err(_) => tracing::warn!("connections still open; stopping without them"),
        }
    }
    // Every request's record is committed before its answer is sent; a stream's is
    // committed by its relay as the stream ends, maybe after the connection closed.
    match tokio::time::timeout(USAGE_FLUSH_TIMEOUT, usage_finished.wait()).await {
        Ok(()) => tracing::info!("usage records flushed"),
        Err(_) => tracing::warn!(
            "usage records still being written at shutdown; the last ones may be lost"
        ),
    }
    if let Some(checkpointer) = checkpointer {
        checkpointer.abort();
    }
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Completes `timeout` after the shutdown signal.
async fn grace_period_over(mut stopping: tokio::sync::watch::Receiver<bool>, timeout: Duration) {
    if stopping.wait_for(|stopping| *stopping).await.is_err() {
        // The signal's task is gone without a signal: no shutdown to time.
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(timeout).await;
}

/// On first start (no users at all) creates `dev@localhost` with the top tier (so the
/// quickstart can use every feature) and a key, returned with the tier so it can be
/// printed once.
async fn create_dev_user_if_empty(
    pool: &crate::db::Pool,
    tiers: &Tiers,
) -> anyhow::Result<Option<(String, Tier)>> {
    if users::count(pool).await? > 0 {
        return Ok(None);
    }
    let tier = tiers
        .top()
        .map_or_else(Tier::enterprise, |policy| policy.name.clone());
    let user = match users::create(pool, DEV_USER_EMAIL, tier.clone()).await {
        Ok(user) => user,
        // Another instance starting on the same database got there first.
        Err(DbError::DuplicateUser(_)) => return Ok(None),
        Err(error) => return Err(error).context("cannot create the development user"),
    };
    let key = keys::generate();
    api_keys::insert(pool, &user, "dev", &key)
        .await
        .context("cannot create the development key")?;
    tracing::info!(email = DEV_USER_EMAIL, "created the development user");
    Ok(Some((key.secret, tier)))
}

/// The URL editors should use: the bound address, with a wildcard IP replaced by loopback
/// since nobody can connect to 0.0.0.0.
fn editor_url(address: SocketAddr) -> String {
    let ip = match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, address.port()))
}

/// The first-start announcement: the key and how to configure each editor with it.
pub fn dev_settings(server: &str, key: &str, tier: &Tier) -> String {
    format!(
        "Created development user {DEV_USER_EMAIL} (tier {tier}).\n\
         API key (shown only once): {key}\n\
         \n\
         VS Code (settings.json):\n\
         \x20 \"tandem.server\": \"{server}\",\n\
         \x20 \"tandem.apiKey\": \"{key}\"\n\
         \n\
         Neovim:\n\
         \x20 require(\"tandem\").setup{{ server = \"{server}\", api_key = \"{key}\" }}\n\
         \n\
         Helix and other editors (environment):\n\
         \x20 TANDEM_SERVER={server} TANDEM_API_KEY={key}\n\
         \n"
    )
}

/// Registers for ctrl-c and SIGTERM now, and returns the future that completes on either.
/// Registering before the Listening line matters: a supervisor (or test) may send SIGTERM
/// as soon as it reads that line, and an unregistered signal would kill the process
/// without a graceful shutdown.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for ctrl-c")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    })
}

/// See the unix version; elsewhere only ctrl-c exists.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_become_loopback_for_editors() {
        assert_eq!(
            editor_url("0.0.0.0:8787".parse().unwrap()),
            "http://127.0.0.1:8787"
        );
        assert_eq!(editor_url("[::]:1".parse().unwrap()), "http://[::1]:1");
        assert_eq!(
            editor_url("192.168.1.2:80".parse().unwrap()),
            "http://192.168.1.2:80"
        );
    }

    #[test]
    fn dev_settings_name_every_editor() {
        let text = dev_settings("http://127.0.0.1:1", "tdm_k", &Tier::enterprise());
        assert_eq!(
            text,
            "Created development user dev@localhost (tier enterprise).\n\
             API key (shown only once): tdm_k\n\
             \n\
             VS Code (settings.json):\n\
             \x20 \"tandem.server\": \"http://127.0.0.1:1\",\n\
             \x20 \"tandem.apiKey\": \"tdm_k\"\n\
             \n\
             Neovim:\n\
             \x20 require(\"tandem\").setup{ server = \"http://127.0.0.1:1\", api_key = \"tdm_k\" }\n\
             \n\
             Helix and other editors (environment):\n\
             \x20 TANDEM_SERVER=http://127.0.0.1:1 TANDEM_API_KEY=tdm_k\n\
             \n"
        );
    }
}
