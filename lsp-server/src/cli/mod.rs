//! Command-line interface: `tandem lsp|--stdio`, `login`, `logout`, `status`.

// These commands talk to a person at a terminal and never run alongside the language
// server, so printing to stdout is their job.
#![allow(clippy::print_stdout)]

mod login;
mod logout;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tandem: AI code completion for any editor that speaks LSP.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about)]
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
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
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
