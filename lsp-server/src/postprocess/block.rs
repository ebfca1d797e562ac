//! Where the block the cursor is in ends inside a multi-line suggestion.
//!
//! Models write the body they were asked for, close it, and keep going with the next
//! function. Brace languages end the block at the closer of the innermost bracketed node
//! around the cursor, found in the tree of prefix + suggestion + suffix (the bracket lexer
//! when there is no grammar or the tree is too broken to say). Every language, Python above
//! all, also ends it at the first line dedented below the body's indentation.

use super::text::{self, indent_of};
use super::{syntax_window, Spliced, SyntaxBudget};
use crate::syntax::Language;

/// The length of the part of the suggestion that stays inside the cursor's block.
pub(super) fn block_end(
    language: Option<Language>,
    prefix: &str,
    suggestion: &str,
    suffix: &str,
    spliced: &Spliced,
) -> usize {
    let from_tree = match language {
        // Python blocks have no closers; indentation below decides.
        Some(Language::Python) | None => None,
        Some(language) => tree_block_end(language, prefix, suggestion, suffix),
    };
    let closer_end =
        from_tree.unwrap_or_else(|| spliced.first_closer_of_prefix().map(|end| end + 1));
    let end = closer_end.map_or(suggestion.len(), |end| extend_over_closers(suggestion, end));
    end.min(dedent_end(language, prefix, suggestion, spliced))
}

/// `Some(Some(end))`: the tree's innermost bracketed node around the cursor closes inside
/// the suggestion, `end` bytes in; `Some(None)`: it closes in the suffix or not at all;
/// `None`: the tree shows no such node.
fn tree_block_end(
    language: Language,
    prefix: &str,
    suggestion: &str,
    suffix: &str,
) -> Option<Option<usize>> {
    // The innermost block usually opens within a screenful above the cursor; when it
    // opens further up, the tree shows no enclosing node and the lexer decides.
    let budget = SyntaxBudget {
        prefix_bytes: 2048,
        suffix_bytes: 512,
    };
    let (window, cursor, _) = syntax_window(prefix, suggestion, suffix, budget);
    let suggestion_end = cursor + suggestion.len();
    let tree = language.parser().parse(&window, None)?;
    let mut node = tree.root_node().descendant_for_byte_range(cursor, cursor);
    while let Some(current) = node {
        if let Some(closer) = enclosing_closer(current, cursor) {
            return Some(closer.and_then(|closer| {
                (closer.end_byte() <= suggestion_end).then(|| closer.end_byte() - cursor)
            }));
        }
        node = current.parent();
    }
    None
}

/// For a node delimited by brackets, opened before `cursor` and closed after it: its
/// closer, or `Some(None)` when the parser had to invent the closer.
fn enclosing_closer(
    node: tree_sitter::Node<'_>,
    cursor: usize,
) -> Option<Option<tree_sitter::Node<'_>>> {
    let count = node.child_count();
    if count < 2 {
        return None;
    }
    let first = node.child(0)?;
    let last = node.child(count - 1)?;
    let closer = match first.kind() {
        "{" => "}",
        "(" => ")",
        "[" => "]",
        _ => return None,
    };
    if first.end_byte() > cursor || last.kind() != closer || last.start_byte() < cursor {
        return None;
    }
    Some((!last.is_missing()).then_some(last))
}

/// Moves a cut made right after a block's closer over the closers and separators that
/// follow it on its line (`});`), which belong to the same construct; the bracket balance
/// step drops any the suffix already has.
fn extend_over_closers(suggestion: &str, end: usize) -> usize {
    let bytes = suggestion.as_bytes();
    let mut extended = end.min(bytes.len());
    while let Some(&byte) = bytes.get(extended) {
        if !matches!(byte, b')' | b']' | b'}' | b';' | b',' | b' ' | b'\t') {
            break;
        }
        extended += 1;
    }
    extended
}

/// The start of the first suggestion line (after the first) indented less than the
/// block's body, outside brackets and strings; the suggestion's length when there is none.
fn dedent_end(
    language: Option<Language>,
    prefix: &str,
    suggestion: &str,
    spliced: &Spliced,
) -> usize {
    let line_before = text::line_before_cursor(prefix);
    let cursor_line = format!(
        "{line_before}{}",
        suggestion.split('\n').next().unwrap_or_default()
    );
    let later_line_indent = || {
        suggestion
            .split('\n')
            .skip(1)
            .find(|line| !line.trim().is_empty())
            .map(indent_of)
    };
    let content = cursor_line.trim_end();
    let cursor_indent = indent_of(&cursor_line);
    let opens_block = [":", "{", "(", "[", "=>"]
        .iter()
        .any(|opener| line_before.trim_end().ends_with(opener));
    let body_indent = if opens_block && !line_before.trim().is_empty() {
        match later_line_indent() {
            Some(indent) if indent > cursor_indent => indent,
            _ => cursor_indent + 1,
        }
    } else if content.trim().is_empty() {
        match later_line_indent() {
            Some(indent) => indent,
            None => return suggestion.len(),
        }
    } else {
        cursor_indent
    };

    let c_preprocessor = matches!(language, Some(Language::C | Language::Cpp));
    for line_start in text::line_starts(suggestion).skip(1) {
        let line = suggestion
            .get(line_start..)
            .and_then(|rest| rest.split('\n').next())
            .unwrap_or_default();
        let code = line.trim_start();
        if code.trim_end().is_empty()
            || indent_of(line) >= body_indent
            || code.starts_with([')', ']', '}'])
            || (c_preprocessor && code.starts_with('#'))
        {
            continue;
        }
        if spliced.depth_at(line_start) <= 0 && !spliced.in_literal(line_start) {
            return line_start;
        }
    }
    suggestion.len()
}
