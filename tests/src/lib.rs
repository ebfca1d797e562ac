//! Harness for end-to-end tests that drive the real `tandem` and `tandem-cloud` binaries.
//!
//! Everything here runs across process boundaries: the cloud is a child process with its
//! own SQLite database, the language server a child process spoken to over stdio, and
//! the model provider a loopback HTTP server speaking the vendors' wire formats. Nothing
//! in this crate links against the code under test, so a test here fails exactly when a
//! user would see the failure.

pub mod binaries;
pub mod cloud;
pub mod document;
mod loopback;
pub mod lsp_client;
pub mod provider;
pub mod proxy;
pub mod services;

pub use cloud::{CloudOptions, CloudServer, ProviderConfig, TEST_USER_EMAIL};
pub use document::{Encoding, TextModel};
pub use lsp_client::{LspClient, LspOptions, PendingRequest, RpcError};
pub use provider::{ProviderFixture, RecordedRequest};
pub use proxy::RecordingProxy;
