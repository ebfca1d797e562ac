//! Wire types spoken between the `tandem` language server and the `tandem-cloud` API.
//!
//! This crate depends on serde and nothing else: both sides (and third-party clients)
//! can use it without pulling in tokio, axum or tower-lsp.

pub mod api;
pub mod chat;
pub mod error;
pub mod inline_completion;
pub mod keys;
pub mod quota_headers;
pub mod stream;
pub mod tier;
pub mod tokens;

pub use api::{
    Choice, CodeContext, CompletionRequest, CompletionResponse, MeResponse, QuotaInfo, Snippet,
    TierLimitsInfo, Usage, UsageGroupInfo, UsageResponse, UserInfo,
};
pub use chat::{ChatDiagnostic, ChatRequest, ChatResponse, ChatTask, RetryNote};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use keys::{CreateKeyRequest, CreatedKey, KeyInfo, KeysResponse, Scope};
pub use tier::Tier;

/// Prefix of every Tandem API key, so leaked keys are recognisable by secret scanners.
pub const API_KEY_PREFIX: &str = "tdm_";
