//! Open documents: their text, versions, and the position arithmetic over them.

#[doc(hidden)]
pub mod bench;
pub mod position;
pub mod store;

use ropey::Rope;

pub(crate) use position::{ByteOffset, LspPosition, PositionEncoding, PositionError};
pub(crate) use store::{ContentChange, DocumentSnapshot, DocumentStore, StoreError, SyntaxTree};

/// A piece of a document around a cursor, small enough to hand to [`crate::context`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextWindow {
    pub text: String,
    /// Where the cursor is inside `text`.
    pub cursor: ByteOffset,
}

/// Copies at most `chars_before` chars before and `chars_after` chars after `cursor`.
///
/// Context budgets never keep more than their budget, so a window one char wider than
/// each budget holds everything [`crate::context::completion_context`] could keep: the
/// extra char makes a line cut by the window's edge too long to count as a whole line.
/// This keeps each request O(budget) instead of copying the whole document.
pub fn text_window(
    rope: &Rope,
    cursor: ByteOffset,
    chars_before: usize,
    chars_after: usize,
) -> TextWindow {
    let cursor_char = position::char_index_of(rope, cursor).0;
    let start = cursor_char.saturating_sub(chars_before);
    let end = cursor_char
        .saturating_add(chars_after)
        .min(rope.len_chars());
    let before = rope.slice(start..cursor_char).to_string();
    let after = rope.slice(cursor_char..end);
    let mut text = before;
    let cursor_in_window = ByteOffset(text.len());
    text.extend(after.chunks());
    TextWindow {
        text,
        cursor: cursor_in_window,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_bounded_on_both_sides() {
        let rope = Rope::from_str("😀abc|def中");
        let window = text_window(&rope, ByteOffset(7), 2, 2);
        assert_eq!(window.text, "bc|d");
        assert_eq!(window.cursor, ByteOffset(2));
        let window = text_window(&rope, ByteOffset(7), 100, 100);
        assert_eq!(window.text, "😀abc|def中");
        assert_eq!(window.cursor, ByteOffset(7));
    }
}
