//! The one place that converts between byte offsets, char indices and LSP positions.
//!
//! Every unit has its own type so a UTF-16 column can never be passed where a byte
//! offset is expected. Lines are broken exactly where LSP breaks them (`\n`, `\r\n`, `\r`;
//! ropey is built without `unicode_lines` for that reason). The encoding of LSP columns
//! is negotiated once at `initialize` and carried as [`PositionEncoding`].
//!
//! Strict conversions ([`offset_of`]) are for requests, which can answer with an error;
//! the clamping one ([`offset_of_clamped`]) is for `didChange`, which cannot.

use ropey::{Rope, RopeSlice};

/// A byte offset into a document's UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteOffset(pub usize);

/// An index counted in Unicode scalar values (ropey's native unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CharIndex(pub usize);

/// The unit LSP columns are counted in, as negotiated with the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PositionEncoding {
    /// Columns count UTF-8 bytes.
    Utf8,
    /// Columns count UTF-16 code units: the LSP default, and what VS Code speaks.
    #[default]
    Utf16,
}

impl PositionEncoding {
    /// How many columns `ch` occupies in this encoding.
    fn width(self, ch: char) -> usize {
        match self {
            PositionEncoding::Utf8 => ch.len_utf8(),
            PositionEncoding::Utf16 => ch.len_utf16(),
        }
    }
}

/// A zero-based line and a column counted in the negotiated [`PositionEncoding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LspPosition {
    pub line: u32,
    pub character: u32,
}

impl LspPosition {
    pub fn new(line: u32, character: u32) -> Self {
        LspPosition { line, character }
    }
}

/// Why a position or offset does not name a place in the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    /// The line number is at or beyond the number of lines.
    #[error("line {line} is past the end of the document ({line_count} lines)")]
    LinePastEnd { line: u32, line_count: usize },
    /// The column is beyond the end of its line.
    #[error("column {character} is past the end of line {line} ({line_length} columns)")]
    ColumnPastLineEnd {
        line: u32,
        character: u32,
        line_length: usize,
    },
    /// The column falls between the units of one character (a surrogate pair in
    /// UTF-16, or a multi-byte sequence in UTF-8).
    #[error("column {character} of line {line} is inside a character")]
    InsideCharacter { line: u32, character: u32 },
    /// The byte offset is beyond the end of the text.
    #[error("byte offset {offset} is past the end of the document ({len} bytes)")]
    OffsetPastEnd { offset: usize, len: usize },
    /// The byte offset is not on a character boundary.
    #[error("byte offset {offset} is inside a character")]
    OffsetInsideCharacter { offset: usize },
    /// The byte offset is between the `\r` and `\n` of one line break.
    #[error("byte offset {offset} is inside a CRLF line break")]
    OffsetInsideLineBreak { offset: usize },
}

/// The text of `line` without its line break.
fn line_content(rope: &Rope, line: usize) -> RopeSlice<'_> {
    let slice = rope.line(line);
    let mut end = slice.len_chars();
    if end > 0 && slice.char(end - 1) == '\n' {
        end -= 1;
    }
    if end > 0 && slice.char(end - 1) == '\r' {
        end -= 1;
    }
    slice.slice(..end)
}

/// Converts a position to a byte offset, failing on anything that does not name a
/// character boundary inside the document.
pub fn offset_of(
    rope: &Rope,
    position: LspPosition,
    encoding: PositionEncoding,
) -> Result<ByteOffset, PositionError> {
    let line = position.line as usize;
    let line_count = rope.len_lines();
    if line >= line_count {
        return Err(PositionError::LinePastEnd {
            line: position.line,
            line_count,
        });
    }
    let line_start = rope.line_to_byte(line);
    let wanted = position.character as usize;
    let mut columns = 0usize;
    let mut bytes = 0usize;
    for ch in line_content(rope, line).chars() {
        if columns == wanted {
            return Ok(ByteOffset(line_start + bytes));
        }
        columns += encoding.width(ch);
        bytes += ch.len_utf8();
        if columns > wanted {
            return Err(PositionError::InsideCharacter {
                line: position.line,
                character: position.character,
            });
        }
    }
    if columns == wanted {
        Ok(ByteOffset(line_start + bytes))
    } else {
        Err(PositionError::ColumnPastLineEnd {
            line: position.line,
            character: position.character,
            line_length: columns,
        })
    }
}

/// Like [`offset_of`], but always yields an offset: a line past the end clamps to the
/// end of the document, a column past the line end to the line end, a column inside a
/// character to that character's start. The error says what was clamped, for logging.
pub fn offset_of_clamped(
    rope: &Rope,
    position: LspPosition,
    encoding: PositionEncoding,
) -> (ByteOffset, Option<PositionError>) {
    match offset_of(rope, position, encoding) {
        Ok(offset) => (offset, None),
        Err(error) => {
            let offset = match error {
                PositionError::LinePastEnd { .. } => ByteOffset(rope.len_bytes()),
                _ => {
                    // The line exists (only `LinePastEnd` says otherwise), so walk it and
                    // stop before the character that would overshoot.
                    let line = position.line as usize;
                    let line_start = rope.line_to_byte(line);
                    let wanted = position.character as usize;
                    let mut columns = 0usize;
                    let mut bytes = 0usize;
                    for ch in line_content(rope, line).chars() {
                        let width = encoding.width(ch);
                        if columns + width > wanted {
                            break;
                        }
                        columns += width;
                        bytes += ch.len_utf8();
                    }
                    ByteOffset(line_start + bytes)
                }
            };
            (offset, Some(error))
        }
    }
}

/// Converts a byte offset to a position in `encoding`.
pub fn position_of(
    rope: &Rope,
    offset: ByteOffset,
    encoding: PositionEncoding,
) -> Result<LspPosition, PositionError> {
    let len = rope.len_bytes();
    if offset.0 > len {
        return Err(PositionError::OffsetPastEnd {
            offset: offset.0,
            len,
        });
    }
    let char_index = rope.byte_to_char(offset.0);
    if rope.char_to_byte(char_index) != offset.0 {
        return Err(PositionError::OffsetInsideCharacter { offset: offset.0 });
    }
    if char_index > 0
        && char_index < rope.len_chars()
        && rope.char(char_index - 1) == '\r'
        && rope.char(char_index) == '\n'
    {
        return Err(PositionError::OffsetInsideLineBreak { offset: offset.0 });
    }
    let line = rope.char_to_line(char_index);
    let line_start = rope.line_to_char(line);
    let character: usize = rope
        .slice(line_start..char_index)
        .chars()
        .map(|ch| encoding.width(ch))
        .sum();
    Ok(LspPosition {
        line: saturating_u32(line),
        character: saturating_u32(character),
    })
}

/// The tree-sitter point of a byte offset: a row and a column counted in bytes.
///
/// Rows are the store's (LSP's) lines, which break at `\n`, `\r\n` and `\r`; tree-sitter
/// itself only counts `\n`, so the two disagree after a lone `\r`. That is harmless:
/// tree-sitter reuses subtrees by byte offset, and Tandem never reads a node's row or
/// column, only its byte range. Offsets past the end clamp to the end.
pub fn tree_sitter_point(rope: &Rope, offset: ByteOffset) -> tree_sitter::Point {
    let offset = offset.0.min(rope.len_bytes());
    let row = rope.byte_to_line(offset);
    tree_sitter::Point {
        row,
        column: offset - rope.line_to_byte(row),
    }
}

/// Converts a byte offset (already known to be a boundary) to a char index.
pub fn char_index_of(rope: &Rope, offset: ByteOffset) -> CharIndex {
    CharIndex(rope.byte_to_char(offset.0.min(rope.len_bytes())))
}

fn saturating_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    use PositionEncoding::{Utf16, Utf8};

    #[track_caller]
    fn check_offset(
        text: &str,
        line: u32,
        character: u32,
        encoding: PositionEncoding,
        expected: usize,
    ) {
        let rope = Rope::from_str(text);
        let position = LspPosition::new(line, character);
        let offset = offset_of(&rope, position, encoding).unwrap();
        assert_eq!(
            offset,
            ByteOffset(expected),
            "offset of {position:?} in {text:?}"
        );
        assert_eq!(
            position_of(&rope, offset, encoding).unwrap(),
            position,
            "round trip"
        );
    }

    #[track_caller]
    fn check_error(
        text: &str,
        line: u32,
        character: u32,
        encoding: PositionEncoding,
        expected: PositionError,
    ) {
        let rope = Rope::from_str(text);
        let error = offset_of(&rope, LspPosition::new(line, character), encoding).unwrap_err();
        assert_eq!(error, expected);
    }

    #[test]
    fn ascii_is_the_same_in_both_encodings() {
        for encoding in [Utf8, Utf16] {
            check_offset("abc\ndef", 0, 0, encoding, 0);
            check_offset("abc\ndef", 0, 3, encoding, 3);
            check_offset("abc\ndef", 1, 0, encoding, 4);
            check_offset("abc\ndef", 1, 3, encoding, 7);
        }
    }

    #[test]
    fn crlf_is_one_line_break_and_not_addressable() {
        check_offset("ab\r\ncd", 0, 2, Utf16, 2);
        check_offset("ab\r\ncd", 1, 0, Utf16, 4);
        check_offset("ab\r\ncd", 1, 2, Utf16, 6);
        check_error(
            "ab\r\ncd",
            0,
            3,
            Utf16,
            PositionError::ColumnPastLineEnd {
                line: 0,
                character: 3,
                line_length: 2,
            },
        );
        let rope = Rope::from_str("ab\r\ncd");
        assert_eq!(
            position_of(&rope, ByteOffset(3), Utf16),
            Err(PositionError::OffsetInsideLineBreak { offset: 3 })
        );
    }

    #[test]
    fn lone_cr_breaks_a_line_as_lsp_says() {
        check_offset("ab\rcd", 1, 1, Utf16, 4);
        assert_eq!(Rope::from_str("ab\rcd").len_lines(), 2);
    }

    #[test]
    fn unicode_line_separators_do_not_break_lines() {
        // LSP only knows \n, \r\n and \r; U+2028 and form feed are ordinary characters.
        let text = "a\u{2028}b\u{c}c";
        check_offset(text, 0, 7, Utf8, text.len());
        check_offset(text, 0, 5, Utf16, text.len());
    }

    #[test]
    fn tabs_are_one_column() {
        check_offset("\t\tx", 0, 2, Utf16, 2);
        check_offset("\t\tx", 0, 2, Utf8, 2);
    }

    #[test]
    fn emoji_is_two_utf16_units_and_four_bytes() {
        let text = "a😀b";
        check_offset(text, 0, 3, Utf16, 5);
        check_offset(text, 0, 5, Utf8, 5);
        check_offset(text, 0, 4, Utf16, 6);
        check_error(
            text,
            0,
            2,
            Utf16,
            PositionError::InsideCharacter {
                line: 0,
                character: 2,
            },
        );
        check_error(
            text,
            0,
            3,
            Utf8,
            PositionError::InsideCharacter {
                line: 0,
                character: 3,
            },
        );
    }

    #[test]
    fn cjk_is_one_utf16_unit_and_three_bytes() {
        let text = "中文x";
        check_offset(text, 0, 2, Utf16, 6);
        check_offset(text, 0, 6, Utf8, 6);
        check_error(
            text,
            0,
            1,
            Utf8,
            PositionError::InsideCharacter {
                line: 0,
                character: 1,
            },
        );
    }

    #[test]
    fn past_the_end_is_an_error() {
        check_error(
            "ab\ncd",
            0,
            3,
            Utf16,
            PositionError::ColumnPastLineEnd {
                line: 0,
                character: 3,
                line_length: 2,
            },
        );
        check_error(
            "ab\ncd",
            2,
            0,
            Utf16,
            PositionError::LinePastEnd {
                line: 2,
                line_count: 2,
            },
        );
        // A trailing newline opens an empty last line that positions may point at.
        check_offset("ab\n", 1, 0, Utf16, 3);
        check_offset("", 0, 0, Utf16, 0);
    }

    #[test]
    fn clamping_never_fails() {
        let rope = Rope::from_str("a😀\r\nxyz");
        let clamp =
            |line, character| offset_of_clamped(&rope, LspPosition::new(line, character), Utf16).0;
        assert_eq!(
            clamp(0, 2),
            ByteOffset(1),
            "inside a surrogate pair clamps to its start"
        );
        assert_eq!(
            clamp(0, 99),
            ByteOffset(5),
            "past the line end clamps before the CRLF"
        );
        assert_eq!(
            clamp(7, 0),
            ByteOffset(10),
            "past the last line clamps to the end"
        );
        assert_eq!(clamp(1, 1), ByteOffset(8));
    }

    #[test]
    fn offsets_that_are_not_boundaries_are_errors() {
        let rope = Rope::from_str("é");
        assert_eq!(
            position_of(&rope, ByteOffset(1), Utf16),
            Err(PositionError::OffsetInsideCharacter { offset: 1 })
        );
        assert_eq!(
            position_of(&rope, ByteOffset(3), Utf16),
            Err(PositionError::OffsetPastEnd { offset: 3, len: 2 })
        );
    }
}
