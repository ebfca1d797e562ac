//! Server-sent events of a streamed answer (`"stream": true`).
//!
//! A stream is zero or more [`EVENT_DELTA`] events, each a [`Delta`] carrying text to
//! append, then exactly one final event: [`EVENT_DONE`] with the whole answer as a
//! [`CompletionResponse`](crate::CompletionResponse) (from `/v1/completions`) or a
//! [`ChatResponse`](crate::ChatResponse) (from `/v1/chat`) (its text is the deltas joined, and
//! its usage was recorded before the event was sent), or [`EVENT_ERROR`] with an
//! [`ErrorBody`](crate::ErrorBody) when the answer broke off. A stream that ends without
//! either was cut by the network. Errors found before the first delta (authentication,
//! limits, every provider failing) are ordinary JSON error answers, not streams.

use serde::{Deserialize, Serialize};

/// Event name of a piece of text.
pub const EVENT_DELTA: &str = "delta";
/// Event name of the final answer, usage included.
pub const EVENT_DONE: &str = "done";
/// Event name of an error that ended the stream.
pub const EVENT_ERROR: &str = "error";

/// Data of an [`EVENT_DELTA`] event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delta {
    /// The choice the text belongs to (always 0 today).
    pub index: u32,
    /// Text to append to what came before.
    pub text: String,
}
