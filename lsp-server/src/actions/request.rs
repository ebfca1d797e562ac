//! The `/v1/chat` request for an action: the code it is about (secrets masked, to be
//! restored in the answer), the text after it, and — through the completion context
//! builder — the text before it, the enclosing scopes, imports, definitions from other
//! open documents and similar code, all under the tier's token budget.

use std::ops::Range;
use std::sync::Arc;

use ropey::Rope;
use tandem_shared::tokens::{estimate, estimate_all};
use tandem_shared::{ChatDiagnostic, ChatRequest, ChatTask};

use crate::context::assemble::{self, RecentRegion};
use crate::context::neighbors::IndexedDocument;
use crate::context::suffix_within;
use crate::document::{ByteOffset, SyntaxTree};
use crate::privacy::{self, Masked};

/// What one action's request is built from. Nothing here knows about LSP.
pub(crate) struct ChatInputs<'a> {
    pub(crate) task: ChatTask,
    pub(crate) text: &'a Rope,
    pub(crate) syntax: Option<&'a SyntaxTree>,
    pub(crate) language_id: &'a str,
    /// Workspace-relative path of the document.
    pub(crate) path: String,
    /// The code the action is about, in bytes of `text`.
    pub(crate) range: Range<usize>,
    pub(crate) diagnostics: Vec<ChatDiagnostic>,
    pub(crate) question: Option<String>,
    /// Estimated tokens the request may carry in all (the tier's and the settings' limit).
    pub(crate) max_tokens: u32,
    pub(crate) max_prefix_chars: usize,
    pub(crate) max_suffix_chars: usize,
    pub(crate) neighbors: &'a [Arc<IndexedDocument>],
    pub(crate) recent_edits: &'a [RecentRegion],
}

/// A request ready to send, and the masked code its answer is an edit of.
#[derive(Debug)]
pub(crate) struct PreparedChat {
    pub(crate) request: ChatRequest,
    pub(crate) code: Masked,
}

/// Why no request can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChatInputError {
    #[error(
        "the code is about {tokens} tokens, more than the {limit} allowed in one request; \
         select a smaller part"
    )]
    TooLarge { tokens: u32, limit: u32 },
    #[error("there is no code to {0}")]
    Empty(ChatTask),
}

/// Builds the request. `allowed` says whether another document may contribute context
/// (the exclusion rules).
pub(crate) fn chat_request(
    inputs: &ChatInputs<'_>,
    allowed: &mut dyn FnMut(&str) -> bool,
) -> Result<PreparedChat, ChatInputError> {
    let text = inputs.text;
    let start = inputs.range.start.min(text.len_bytes());
    let end = inputs.range.end.clamp(start, text.len_bytes());
    let code = crate::syntax::text_of(text, start..end);
    if code.trim().is_empty() {
        return Err(ChatInputError::Empty(inputs.task));
    }
    let code = privacy::mask(&code);
    if code.count() > 0 {
        tracing::debug!(secrets = code.count(), "secrets masked in the code sent");
    }
    // What the request carries whatever the budget, counted as the cloud counts it.
    let fixed_tokens = estimate_all(
        [code.text.as_str()]
            .into_iter()
            .chain(inputs.question.as_deref())
            .chain(inputs.diagnostics.iter().map(|d| d.message.as_str())),
    );
    if fixed_tokens > inputs.max_tokens {
        return Err(ChatInputError::TooLarge {
            tokens: fixed_tokens,
            limit: inputs.max_tokens,
        });
    }
    // The text after the code: whole lines, as far as the settings allow and a quarter
    // of what is left fits; the rest goes to the text before and the context.
    let after = crate::syntax::text_of(
        text,
        end..text
            .len_bytes()
            .min(end.saturating_add(inputs.max_suffix_chars.saturating_mul(4))),
    );
    let mut suffix = privacy::redact(suffix_within(&after, inputs.max_suffix_chars)).text;
    let left = inputs.max_tokens - fixed_tokens;
    while !suffix.is_empty() && estimate(&suffix) > left / 4 {
        let keep = suffix[..suffix.len() - 1]
            .rfind('\n')
            .map_or(0, |index| index + 1);
        suffix.truncate(keep);
    }
    let assembled = assemble::assemble(
        &assemble::Inputs {
            text,
            syntax: inputs.syntax,
            cursor: ByteOffset(start),
            max_prefix_chars: inputs.max_prefix_chars,
            max_suffix_chars: 0,
            max_tokens: left - estimate(&suffix),
            neighbors: inputs.neighbors,
            recent_edits: inputs.recent_edits,
            // Definitions of what the code uses, all of it (nearest the top first).
            identifier_lines: (text.byte_to_line(end) - text.byte_to_line(start))
                .max(assemble::IDENTIFIER_LINES),
        },
        allowed,
    );
    let mut request = ChatRequest::new(
        inputs.task,
        inputs.language_id,
        inputs.path.clone(),
        code.text.clone(),
    );
    request.start_line = u32::try_from(text.byte_to_line(start) + 1).unwrap_or(u32::MAX);
    request.prefix = assembled.prefix;
    request.suffix = suffix;
    request.context = assembled.context;
    request.diagnostics = inputs.diagnostics.clone();
    request.question = inputs.question.clone();
    request.file_size = Some(text.len_bytes() as u64);
    Ok(PreparedChat { request, code })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(text: &'a Rope, range: Range<usize>, max_tokens: u32) -> ChatInputs<'a> {
        ChatInputs {
            task: ChatTask::Explain,
            text,
            syntax: None,
            language_id: "rust",
            path: "src/lib.rs".into(),
            range,
            diagnostics: Vec::new(),
            question: None,
            max_tokens,
            max_prefix_chars: 4_000,
            max_suffix_chars: 1_000,
            neighbors: &[],
            recent_edits: &[],
        }
    }

    #[test]
    fn the_code_is_cut_out_with_the_text_around_it() {
        let source = "use std::io;\n\nfn a() {}\nfn b() -> u8 { 1 }\nfn c() {}\n";
        let text = Rope::from_str(source);
        let start = source.find("fn b").unwrap();
        let end = source.find("fn c").unwrap() - 1;
        let prepared = chat_request(&inputs(&text, start..end, 4_000), &mut |_| true).unwrap();
        let request = &prepared.request;
        assert_eq!(request.code, "fn b() -> u8 { 1 }");
        assert_eq!(request.start_line, 4);
        assert_eq!(request.prefix, "use std::io;\n\nfn a() {}\n");
        assert_eq!(request.suffix, "\nfn c() {}\n");
        assert_eq!(request.file_size, Some(source.len() as u64));
        assert!(request.estimated_tokens() <= 4_000);
    }

    #[test]
    fn secrets_are_masked_and_the_budget_holds() {
        let key = format!("ghp_{}", "a1B2c3D4e5".repeat(4).get(..36).unwrap());
        let source = format!(
            "fn key() -> &'static str {{ \"{key}\" }}\n{}",
            "// filler line\n".repeat(200)
        );
        let text = Rope::from_str(&source);
        let end = source.find('\n').unwrap();
        let prepared = chat_request(&inputs(&text, 0..end, 60), &mut |_| true).unwrap();
        assert!(
            !prepared.request.code.contains(&key),
            "{}",
            prepared.request.code
        );
        assert_eq!(prepared.code.count(), 1);
        assert!(
            prepared.request.estimated_tokens() <= 60,
            "{}",
            prepared.request.estimated_tokens()
        );
        assert!(!prepared.request.suffix.is_empty());
    }

    #[test]
    fn code_over_budget_and_blank_code_are_refused() {
        let source = "fn big() { ".to_owned() + &"x + ".repeat(500) + "}";
        let text = Rope::from_str(&source);
        let error = chat_request(&inputs(&text, 0..source.len(), 100), &mut |_| true).unwrap_err();
        assert!(
            matches!(error, ChatInputError::TooLarge { limit: 100, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("select a smaller part"));
        let blank = Rope::from_str("\n   \n");
        let error = chat_request(&inputs(&blank, 0..4, 100), &mut |_| true).unwrap_err();
        assert_eq!(error, ChatInputError::Empty(ChatTask::Explain));
    }
}
