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

/// The environment variable that picks the log format (`auto`, `json`, `text`); it wins
/// over `[logging] format`.
pub const LOG_FORMAT_ENV: &str = "TANDEM_LOG_FORMAT";

/// The log-line layer, swappable once the config file is read.
type FormatLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Set by [`init_logging`]: how to change the format later, and whether the environment
/// already chose it.
static LOG_FORMAT: std::sync::OnceLock<(
    tracing_subscriber::reload::Handle<FormatLayer, tracing_subscriber::Registry>,
    bool,
)> = std::sync::OnceLock::new();

/// Logs go to stderr (stdout carries the `serve` announcement and command output);
/// filter from `TANDEM_LOG`, default `info`; format from `TANDEM_LOG_FORMAT`, else
/// `auto` until [`apply_log_format`] applies the config file's `[logging] format`
/// (logging starts before the file is read, so its errors are logged too).
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let from_env = std::env::var(LOG_FORMAT_ENV)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .map(|value| value.parse::<config::http::LogFormat>());
    let format = match &from_env {
        Some(Ok(format)) => *format,
        _ => config::http::LogFormat::Auto,
    };
    let (layer, handle) = tracing_subscriber::reload::Layer::new(format_layer(format));
    // A second call (tests) keeps the first subscriber.
    let installed = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init()
        .is_ok();
    if !installed {
        return;
    }
    let _ = LOG_FORMAT.set((handle, matches!(from_env, Some(Ok(_)))));
    if let Some(Err(error)) = from_env {
        tracing::warn!(%error, variable = LOG_FORMAT_ENV, "ignoring the log format");
    }
}

/// Switches to the config file's `[logging] format`, unless `TANDEM_LOG_FORMAT` chose one
/// (environment beats file) or logging was not set up by [`init_logging`].
pub fn apply_log_format(format: config::http::LogFormat) {
    let Some((handle, chosen_by_env)) = LOG_FORMAT.get() else {
        return;
    };
    if *chosen_by_env {
        return;
    }
    if let Err(error) = handle.reload(format_layer(format)) {
        tracing::warn!(%error, "cannot change the log format");
    }
}

/// Lines for `format`: JSON objects (with the fields of every enclosing span, so each
/// line of a request carries its `request_id`) or text (the same, as `span{field=…}:`).
fn format_layer(format: config::http::LogFormat) -> FormatLayer {
    use config::http::LogFormat;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    if json {
        Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .with_span_list(true)
                .with_writer(std::io::stderr),
        )
    } else {
        Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only help a person at a terminal; they garble log files.
                .with_ansi(terminal),
        )
    }
}

/// Runs a parsed command line.
pub async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    cli::run(cli).await
}
