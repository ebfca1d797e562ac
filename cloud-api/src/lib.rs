//! Tandem's cloud API: API-key authentication, users and tiers, and routing completion
//! requests to a model provider.
//!
//! Code map: [`cli`] parses commands, [`serve`] runs the server around [`http::app`],
//! [`extract`] authenticates and validates, [`providers`] talks to model servers,
//! [`routing`] picks and orders them per tier and task (fallback, circuit breakers), and
//! [`db`] holds all SQL. [`web`] serves the browser pages: sign-in, account, device.

pub mod cli;
pub mod config;
pub mod db;
pub mod enterprise;
pub mod error;
pub mod extract;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod prompt;
pub mod providers;
pub mod rate_limit;
pub mod routing;
pub mod serve;
pub mod sessions;
pub mod state;
pub mod tiers;
pub mod usage;
pub mod web;

pub use config::Config;
pub use http::app;
pub use state::AppState;

/// Logs go to stderr (stdout carries the `serve` announcement and command output);
/// filter from `TANDEM_LOG`, default `info`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; they garble log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
}

/// Runs a parsed command line.
pub async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    cli::run(cli).await
}
