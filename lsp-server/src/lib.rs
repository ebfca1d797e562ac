//! Tandem's language server and command-line client.
//!
//! Code map: [`cli`] parses arguments and runs commands; [`lsp`] is the LSP edge (the
//! only module that knows `lsp_types`); [`document`] stores open documents and owns all
//! position arithmetic; [`context`] cuts the text around the cursor to budget;
//! [`cloud`] talks HTTP to the Tandem cloud API; [`credentials`] and [`settings`] decide
//! where the server URL, API key and limits come from; [`status`] keeps what an
//! editor's status bar shows.
//!
//! Invariants: only `lsp/` knows `lsp_types` and tower-lsp (feature code takes `&str`
//! and byte offsets); every position conversion goes through `document::position`;
//! notification handlers mutate the document store synchronously, and no lock is held
//! across an `.await`.

// Stdout carries the LSP protocol; a stray print corrupts the stream. The CLI
// commands, which never run alongside the server, opt back in explicitly.
#![deny(clippy::print_stdout)]

pub(crate) mod actions;
mod cli;
pub(crate) mod cloud;
pub(crate) mod context;
pub(crate) mod credentials;
pub(crate) mod device_login;
pub(crate) mod document;
// Public (hidden) only so the criterion benches can time the completion engine.
#[doc(hidden)]
pub mod engine;
// Public (hidden) only so the criterion benches can time edits and re-parses.
#[doc(hidden)]
pub mod bench_api {
    //! Entry points for `benches/document.rs` and `benches/actions.rs`; not an API.
    pub use crate::actions::bench::ActionsBench;
    pub use crate::document::bench::DocumentBench;
}
pub(crate) mod lsp;
pub(crate) mod memory;
pub(crate) mod postprocess;
pub(crate) mod privacy;
pub(crate) mod settings;
pub(crate) mod status;
pub(crate) mod syntax;

pub use cli::{run, Cli};
