//! End-to-end tests: the real `tandem` and `tandem-cloud` binaries, a loopback model
//! provider, and nothing in between that is not what a user runs.
//!
//! Every test starts its own processes on their own ports and temporary directories, so
//! the tests run in parallel. The binaries are built on first use (see
//! `tandem_e2e::binaries`).

mod cloud_cli;
mod cloud_http;
mod cluster;
mod code_actions;
mod completion;
mod context;
mod credentials;
mod editor_clients;
mod failures;
mod helix;
mod lifecycle;
mod neovim_client;
mod ordering;
mod privacy;
mod provider_wire;
mod sign_in;
mod status;
mod streaming;
mod support;
mod typing;
mod usage;
mod vscode_client;
