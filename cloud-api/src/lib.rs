//! Tandem's cloud API: API-key authentication, users and tiers, and routing completion
//! requests to a model provider.
//!
//! Code map: [`cli`] parses commands, [`serve`] runs the server around [`http::app`],
//! [`extract`] authenticates and validates, [`providers`] talks to model servers,
//! [`routing`] picks and orders them per tier and task (fallback, circuit breakers), and
//! [`db`] holds all SQL. [`web`] serves the browser pages: sign-in, account, device.
//! [`telemetry`] exports the spans of requests as OpenTelemetry traces.

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
pub mod telemetry;
pub mod tiers;
pub mod usage;
pub mod web;

pub use config::Config;
pub use http::app;
pub use state::AppState;

/// The environment variable that picks the log format (`auto`, `json`, `text`); it wins
/// over `[logging] format`.
pub const LOG_FORMAT_ENV: &str = "TANDEM_LOG_FORMAT";

/// The log-line layer.
type FormatLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Logs go to stderr (stdout carries the `serve` announcement and command output);
/// filter from `TANDEM_LOG`, default `info`; format from `TANDEM_LOG_FORMAT`, else `format`
/// (the config file's `[logging] format`). With `telemetry`, spans are exported as traces
/// too, whatever `TANDEM_LOG` filters out of the log.
///
/// Called once the configuration is read, since the exporter cannot be added to a
/// subscriber later: the OpenTelemetry layer must be found by downcasting to continue a
/// caller's trace, which a `reload` layer does not allow. Nothing logs before that; the
/// configuration's own errors are printed by `main`.
pub fn init_logging(format: config::http::LogFormat, telemetry: Option<&telemetry::Telemetry>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let from_env = std::env::var(LOG_FORMAT_ENV)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .map(|value| value.parse::<config::http::LogFormat>());
    let format = match &from_env {
        Some(Ok(format)) => *format,
        _ => format,
    };
    // The filter is the log's alone, so the traces keep the spans it leaves out.
    let installed = tracing_subscriber::registry()
        .with(format_layer(format).with_filter(filter))
        .with(telemetry.map(telemetry::Telemetry::layer))
        .try_init()
        .is_ok();
    // A second call (tests) keeps the first subscriber.
    if !installed {
        return;
    }
    if let Some(Err(error)) = from_env {
        tracing::warn!(%error, variable = LOG_FORMAT_ENV, "ignoring the log format");
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
