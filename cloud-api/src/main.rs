//! The `tandem-cloud` binary: parses arguments and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = tandem_cloud::cli::Cli::parse();
    // Logging starts once the configuration is read (`cli::run`).
    match tandem_cloud::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
