//! What the model sees: the text around the cursor, the parts of this and other open
//! documents that help ([`assemble`]), all under one token budget, and the file's path.
//!
//! Nothing here knows about LSP. The functions in this file make the first, char-based
//! cut: budgets in chars and cuts on line boundaries, so the model never sees half a
//! line at the far edge of its context (only the cursor's own line may be cut mid-line,
//! when it alone is over budget); [`budget`] then fits the result to tokens.

pub(crate) mod assemble;
pub(crate) mod budget;
pub(crate) mod neighbors;
pub(crate) mod similar;

use std::path::{Component, Path, PathBuf};

use crate::document::ByteOffset;

/// The text before and after the cursor that goes into a completion request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletionContext<'a> {
    pub prefix: &'a str,
    pub suffix: &'a str,
}

/// Cuts the prefix and suffix around `cursor` to their budgets.
///
/// `cursor` must be a char boundary of `text` (positions from the position module are).
pub fn completion_context(
    text: &str,
    cursor: ByteOffset,
    max_prefix_chars: usize,
    max_suffix_chars: usize,
) -> CompletionContext<'_> {
    let cursor = floor_char_boundary(text, cursor.0);
    CompletionContext {
        prefix: prefix_within(&text[..cursor], max_prefix_chars),
        suffix: suffix_within(&text[cursor..], max_suffix_chars),
    }
}

/// The end of `before` that fits in `budget` chars: the cursor line's part, then whole
/// preceding lines (each with its line break) for as long as they fit.
fn prefix_within(before: &str, budget: usize) -> &str {
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let current_line = &before[line_start..];
    let mut used = current_line.chars().count();
    if used >= budget {
        return last_chars(current_line, budget);
    }
    let mut start = line_start;
    while start > 0 {
        // `start - 1` is the `\n` ending the previous line.
        let previous_start = before[..start - 1].rfind('\n').map_or(0, |index| index + 1);
        let length = before[previous_start..start].chars().count();
        if used + length > budget {
            break;
        }
        used += length;
        start = previous_start;
    }
    &before[start..]
}

/// The start of `after` that fits in `budget` chars: the rest of the cursor line (with
/// its line break), then whole following lines for as long as they fit.
pub(crate) fn suffix_within(after: &str, budget: usize) -> &str {
    let line_end = after.find('\n').map_or(after.len(), |index| index + 1);
    let current_line = &after[..line_end];
    let mut used = current_line.chars().count();
    if used >= budget {
        return first_chars(current_line, budget);
    }
    let mut end = line_end;
    while end < after.len() {
        let next_end = after[end..]
            .find('\n')
            .map_or(after.len(), |index| end + index + 1);
        let length = after[end..next_end].chars().count();
        if used + length > budget {
            break;
        }
        used += length;
        end = next_end;
    }
    &after[..end]
}

fn last_chars(text: &str, count: usize) -> &str {
    if count == 0 {
        return "";
    }
    match text.char_indices().rev().nth(count - 1) {
        Some((index, _)) => &text[index..],
        None => text,
    }
}

fn first_chars(text: &str, count: usize) -> &str {
    match text.char_indices().nth(count) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// The start of the identifier-like word that ends at `cursor` (letters, digits, `_`).
pub fn word_start(text: &str, cursor: ByteOffset) -> ByteOffset {
    let cursor = floor_char_boundary(text, cursor.0);
    let start = text[..cursor]
        .char_indices()
        .rev()
        .take_while(|(_, ch)| ch.is_alphanumeric() || *ch == '_')
        .last()
        .map_or(cursor, |(index, _)| index);
    ByteOffset(start)
}

/// The document's path relative to the innermost workspace root containing it,
/// `/`-separated; just the file name when it is in no root (the cloud refuses absolute
/// paths and `..`, and a path outside the workspace says nothing useful anyway).
pub fn workspace_relative_path(document: &Path, roots: &[PathBuf]) -> String {
    let relative = roots
        .iter()
        .filter_map(|root| document.strip_prefix(root).ok())
        .filter(|relative| !relative.as_os_str().is_empty())
        .min_by_key(|relative| relative.components().count())
        .and_then(|relative| {
            let parts: Option<Vec<String>> = relative
                .components()
                .map(|component| match component {
                    Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect();
            parts.map(|parts| parts.join("/"))
        });
    relative.unwrap_or_else(|| file_name_or_untitled(document))
}

/// The last path segment, for documents outside any workspace or without a file path.
pub fn file_name_or_untitled(document: &Path) -> String {
    document
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "untitled".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;
    use ropey::Rope;

    /// `fixture` marks the cursor with `$0`; `expected` is the kept prefix, `$0`, and
    /// the kept suffix.
    #[track_caller]
    fn check(fixture: &str, max_prefix_chars: usize, max_suffix_chars: usize, expected: &str) {
        let cursor = fixture.find("$0").expect("fixture has a $0 cursor");
        let text = fixture.replacen("$0", "", 1);
        let context = completion_context(
            &text,
            ByteOffset(cursor),
            max_prefix_chars,
            max_suffix_chars,
        );
        assert_eq!(format!("{}$0{}", context.prefix, context.suffix), expected);
    }

    #[test]
    fn everything_fits() {
        check("a\nb$0c\nd", 100, 100, "a\nb$0c\nd");
        check("$0", 10, 10, "$0");
    }

    #[test]
    fn whole_preceding_lines_only() {
        check("one\ntwo\nthr$0ee\n", 7, 100, "two\nthr$0ee\n");
        check("one\ntwo\nthr$0ee\n", 8, 100, "two\nthr$0ee\n");
        check("one\ntwo\nthr$0ee\n", 11, 100, "one\ntwo\nthr$0ee\n");
        check("one\ntwo\nthr$0ee\n", 6, 100, "thr$0ee\n");
    }

    #[test]
    fn whole_following_lines_only() {
        check("a$0bc\ndef\ngh", 100, 3, "a$0bc\n");
        check("a$0bc\ndef\ngh", 100, 6, "a$0bc\n");
        check("a$0bc\ndef\ngh", 100, 7, "a$0bc\ndef\n");
        check("a$0bc\ndef\ngh", 100, 9, "a$0bc\ndef\ngh");
    }

    #[test]
    fn an_over_long_current_line_is_cut_at_a_char() {
        check("xx\nabcdef$0ghij\nyy", 3, 2, "def$0gh");
        check("😀😀😀$0中中中", 2, 1, "😀😀$0中");
        check("abc$0def", 0, 0, "$0");
    }

    #[test]
    fn crlf_and_tabs_count_as_chars_and_stay_whole() {
        check("a\r\n\tb\r\nc$0d\r\ne", 6, 3, "\tb\r\nc$0d\r\n");
        check("a\r\n\tb\r\nc$0d\r\ne", 4, 4, "c$0d\r\ne");
    }

    #[test]
    fn cursor_at_the_edges() {
        check("$0abc\ndef", 5, 5, "$0abc\n");
        check("abc\ndef$0", 5, 5, "def$0");
        check("abc\n$0", 5, 5, "abc\n$0");
    }

    proptest! {
        /// Requests only copy a window one char wider than each budget out of the rope;
        /// that must keep exactly what the whole text would.
        #[test]
        fn a_window_keeps_what_the_whole_text_keeps(
            text in "[ab\n😀中\r\t]{0,40}",
            cursor_pick in any::<prop::sample::Index>(),
            max_prefix in 0usize..12,
            max_suffix in 0usize..12,
        ) {
            let boundaries: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            let cursor = ByteOffset(boundaries[cursor_pick.index(boundaries.len())]);
            let whole = completion_context(&text, cursor, max_prefix, max_suffix);
            let window = crate::document::text_window(&Rope::from_str(&text), cursor, max_prefix + 1, max_suffix + 1);
            let windowed = completion_context(&window.text, window.cursor, max_prefix, max_suffix);
            prop_assert_eq!(whole, windowed);
            prop_assert!(whole.prefix.chars().count() <= max_prefix);
            prop_assert!(whole.suffix.chars().count() <= max_suffix);
        }
    }

    #[test]
    fn word_start_finds_identifiers() {
        let check_word = |fixture: &str, expected: &str| {
            let cursor = fixture.find("$0").unwrap();
            let text = fixture.replacen("$0", "", 1);
            let start = word_start(&text, ByteOffset(cursor));
            assert_eq!(&text[start.0..cursor], expected, "{fixture}");
        };
        check_word("let foo_bar$0", "foo_bar");
        check_word("x.$0", "");
        check_word("$0", "");
        check_word("名前$0 x", "名前");
        check_word("(ab1$0)", "ab1");
    }

    #[test]
    fn relative_paths() {
        let roots = vec![PathBuf::from("/ws"), PathBuf::from("/ws/inner")];
        assert_eq!(
            workspace_relative_path(Path::new("/ws/src/main.rs"), &roots),
            "src/main.rs"
        );
        assert_eq!(
            workspace_relative_path(Path::new("/ws/inner/lib.rs"), &roots),
            "lib.rs"
        );
        assert_eq!(
            workspace_relative_path(Path::new("/elsewhere/x.py"), &roots),
            "x.py"
        );
        assert_eq!(
            workspace_relative_path(Path::new("/ws/../etc/passwd"), &roots),
            "passwd"
        );
        assert_eq!(workspace_relative_path(Path::new("/ws"), &roots), "ws");
        assert_eq!(workspace_relative_path(Path::new("/"), &[]), "untitled");
    }
}
