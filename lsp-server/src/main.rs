//! The `tandem` binary: parse arguments, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tandem_lsp::run(tandem_lsp::Cli::parse())
}
