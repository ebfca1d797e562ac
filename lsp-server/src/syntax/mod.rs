//! Syntax: tree-sitter grammars, per-document trees, and the facts about code that
//! context building and post-processing ask for. Knows nothing about LSP.
//!
//! Every query takes a `&tree_sitter::Tree`, the document's `&Rope` and byte offsets,
//! and returns plain structs; none of them panics on a tree that does not match its
//! text (offsets are clamped), so a bug elsewhere degrades context instead of a request.

pub(crate) mod definitions;
pub(crate) mod imports;
pub(crate) mod kinds;
pub(crate) mod language;
pub(crate) mod parse;
pub(crate) mod scopes;
pub(crate) mod tokens;

pub(crate) use definitions::{definitions, DefinitionKind};
pub(crate) use imports::imports;
pub(crate) use language::Language;
#[cfg(test)]
pub(crate) use parse::PARSE_TIMEOUT;
pub(crate) use parse::{parse_rope, timeout_for, FULL_PARSE_TIMEOUT};
pub(crate) use scopes::enclosing_scopes;
pub(crate) use tokens::{
    identifiers_near, text_boundary_after, text_boundary_before, token_boundary_after,
    token_boundary_before,
};

use ropey::Rope;

/// The longest signature kept, in chars: a header longer than this is a generated or
/// pathological one, and scopes are only a hint for the model.
pub(crate) const MAX_SIGNATURE_CHARS: usize = 240;

/// The text of `range` in `rope`, clamped to the text and to char boundaries, so a tree
/// that does not match the text can never make this panic.
pub(crate) fn text_of(rope: &Rope, range: std::ops::Range<usize>) -> String {
    let len = rope.len_bytes();
    let start = rope.byte_to_char(range.start.min(len));
    let end = rope.byte_to_char(range.end.min(len));
    if end <= start {
        return String::new();
    }
    rope.slice(start..end).to_string()
}

/// `text` with every run of whitespace collapsed to one space, trimmed, and cut to
/// [`MAX_SIGNATURE_CHARS`] (an ellipsis marks the cut).
pub(crate) fn normalize_whitespace(text: &str) -> String {
    collapse_whitespace(text, MAX_SIGNATURE_CHARS)
}

/// `text` with every run of whitespace collapsed to one space, trimmed, and cut to
/// `max_chars` (an ellipsis marks the cut). Reads no further than it keeps.
pub(crate) fn collapse_whitespace(text: &str, max_chars: usize) -> String {
    let mut normalized = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut chars = 0;
    for word in text.split_whitespace() {
        if !normalized.is_empty() {
            normalized.push(' ');
            chars += 1;
        }
        for ch in word.chars() {
            if chars >= max_chars {
                normalized.push('…');
                return normalized;
            }
            normalized.push(ch);
            chars += 1;
        }
    }
    normalized
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Fixtures for the query tests: source with `$0` marking the cursor.

    use ropey::Rope;

    use super::{parse_rope, Language, PARSE_TIMEOUT};

    pub(crate) struct Fixture {
        pub(crate) rope: Rope,
        pub(crate) tree: tree_sitter::Tree,
        pub(crate) cursor: usize,
    }

    /// Parses `fixture` without its `$0`, the cursor being where `$0` was (or the end).
    #[track_caller]
    pub(crate) fn parse_fixture(language: Language, fixture: &str) -> Fixture {
        let cursor = fixture.find("$0").unwrap_or(fixture.len());
        let source = fixture.replacen("$0", "", 1);
        let rope = Rope::from_str(&source);
        let tree = parse_rope(language, &rope, None, PARSE_TIMEOUT).expect("fixture parses");
        Fixture { rope, tree, cursor }
    }
}
