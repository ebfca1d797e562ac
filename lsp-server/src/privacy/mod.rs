//! What never leaves the machine: excluded files and redacted secrets (see `docs/PRIVACY.md`).
//!
//! Two independent guards run before a completion request is sent:
//! - [`exclusion`] decides from a path alone whether a file may be used at all, as the
//!   document being edited or as a snippet from another open document;
//! - [`redaction`] replaces secrets inside whatever text is sent by placeholders such as
//!   `<redacted:aws-access-key>`, and scrubs the model's answer so a placeholder (or a
//!   secret) is never typed into the user's code.
//!
//! Both are plain functions of paths and `&str`, with no knowledge of LSP or the network.

pub(crate) mod exclusion;
pub(crate) mod redaction;

#[cfg(test)]
mod tests;

pub(crate) use exclusion::ExclusionRules;
pub(crate) use redaction::{
    mask, redact, redact_around_cursor, scrub_suggestion, Masked, UnmaskError,
};
