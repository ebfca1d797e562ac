//! Command-line interface: `tandem lsp|--stdio`, `login`, `logout`, `status`, `version`.

// These commands talk to a person at a terminal and never run alongside the language
// server, so printing to stdout is their job.
#![allow(clippy::print_stdout)]

mod login;
mod logout;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// What `--version` prints after the name: `0.1.0 (1a2b3c4 2025-06-01)`, the version, the
/// git commit (`-dirty` if the tree had changes, `unknown` outside a checkout) and the UTC
/// build date, from `build.rs`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("TANDEM_BUILD_COMMIT"),
    " ",
    env!("TANDEM_BUILD_DATE"),
    ")"
);

/// Tandem: AI code completion for any editor that speaks LSP.
#[derive(Debug, Parser)]
#[command(name = "tandem", version = VERSION_LINE, about)]
pub struct Cli {
    /// Run the language server on stdin/stdout (same as `tandem lsp`).
    #[arg(long)]
    pub stdio: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the language server on stdin/stdout.
    Lsp {
        /// Accepted for editors that always pass it; stdio is the only transport.
        #[arg(long)]
        stdio: bool,
    },
    /// Sign in through the browser (or save an API key) and keep the key for this machine.
    Login(login::LoginArgs),
    /// Revoke the saved key on the server and delete it here (keyring entry and file).
    Logout,
    /// Show which server and key would be used, and check them.
    Status,
    /// Print the version, the git commit and the build date.
    Version {
        /// `text` (one line, as `--version`) or `json`.
        #[arg(long, value_enum, default_value_t = VersionFormat::Text)]
        output: VersionFormat,
    },
}

/// Output format of `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VersionFormat {
    Text,
    Json,
}

/// Runs the command and turns the outcome into an exit code, printing errors to stderr.
pub fn run(cli: Cli) -> ExitCode {
    init_logging();
    let result = match cli.command {
        Some(Command::Lsp { .. }) => crate::lsp::run_stdio().map(ExitCode::from),
        None if cli.stdio => crate::lsp::run_stdio().map(ExitCode::from),
        None => {
            use clap::CommandFactory;
            let help = Cli::command().render_help();
            eprintln!("{help}");
            eprintln!("Editors start the language server with `tandem lsp` or `tandem --stdio`.");
            return ExitCode::from(2);
        }
        Some(Command::Login(args)) => login::run(args),
        Some(Command::Logout) => logout::run(),
        Some(Command::Status) => status::run(),
        Some(Command::Version { output }) => {
            print_version(output);
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_version(output: VersionFormat) {
    match output {
        VersionFormat::Text => println!("tandem {VERSION_LINE}"),
        VersionFormat::Json => println!(
            "{}",
            serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "commit": env!("TANDEM_BUILD_COMMIT"),
                "build_date": env!("TANDEM_BUILD_DATE"),
            })
        ),
    }
}

/// Logs go to stderr (stdout is the protocol), filtered by `TANDEM_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// A current-thread runtime for the one-shot HTTP calls of `login` and `status`.
fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    use anyhow::Context as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn version_line_has_the_version_commit_and_date() {
        let rest = VERSION_LINE
            .strip_prefix(concat!(env!("CARGO_PKG_VERSION"), " ("))
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{VERSION_LINE}"));
        let (commit, date) = rest.split_once(' ').unwrap();
        assert!(!commit.is_empty(), "{VERSION_LINE}");
        let digits: Vec<usize> = date.split('-').map(str::len).collect();
        assert_eq!(digits, [4, 2, 2], "{VERSION_LINE}");
        let cli = Cli::try_parse_from(["tandem", "version", "--output", "json"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Version {
                output: VersionFormat::Json
            })
        ));
    }
}
