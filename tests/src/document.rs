//! A deliberately naive model of an editor buffer, to predict what the server must see.
//!
//! Tests apply the same edits to this `String` and to the language server, then compare
//! what reached the model provider with the text computed here. It walks characters one
//! by one instead of indexing lines, so it shares no cleverness (and no bugs) with the
//! server's rope. Line breaks are `\n`, `\r\n` and `\r`, as LSP 3.17 defines them.

use tandem_shared::inline_completion::{Position, Range};

/// Unit in which `Position::character` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Bytes of UTF-8 (`positionEncoding: "utf-8"`).
    Utf8,
    /// UTF-16 code units, the LSP default.
    Utf16,
}

impl Encoding {
    /// Name used in `positionEncoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf16 => "utf-16",
        }
    }

    fn width(self, character: char) -> u32 {
        let width = match self {
            Encoding::Utf8 => character.len_utf8(),
            Encoding::Utf16 => character.len_utf16(),
        };
        width as u32
    }
}

/// The text of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextModel {
    text: String,
}

impl TextModel {
    pub fn new(text: impl Into<String>) -> Self {
        TextModel { text: text.into() }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Byte offset of an LSP position. Panics when the position is not in the text or
    /// falls inside a character: the tests build positions, so that is a test bug.
    pub fn offset(&self, position: Position, encoding: Encoding) -> usize {
        let mut line = 0;
        let mut column = 0;
        let mut characters = self.text.char_indices().peekable();
        while let Some((offset, character)) = characters.next() {
            if line == position.line && column == position.character {
                return offset;
            }
            match character {
                '\r' | '\n' => {
                    assert!(
                        line != position.line,
                        "{position:?} is past the end of its line in {:?}",
                        self.text
                    );
                    if character == '\r' && characters.peek().map(|(_, next)| *next) == Some('\n') {
                        characters.next();
                    }
                    line += 1;
                    column = 0;
                }
                _ => {
                    column += encoding.width(character);
                    assert!(
                        line != position.line || column <= position.character,
                        "{position:?} falls inside a character in {:?}",
                        self.text
                    );
                }
            }
        }
        assert!(
            line == position.line && column == position.character,
            "{position:?} is past the end of {:?}",
            self.text
        );
        self.text.len()
    }

    /// LSP position of a byte offset, which must be on a character boundary.
    pub fn position(&self, offset: usize, encoding: Encoding) -> Position {
        assert!(
            self.text.is_char_boundary(offset),
            "offset {offset} is not a character boundary"
        );
        let mut line = 0;
        let mut character = 0;
        let mut previous = None;
        for current in self.text[..offset].chars() {
            match current {
                '\n' if previous == Some('\r') => {}
                '\r' | '\n' => {
                    line += 1;
                    character = 0;
                }
                _ => character += encoding.width(current),
            }
            previous = Some(current);
        }
        // An offset between `\r` and `\n` would split a line break.
        assert!(
            !(previous == Some('\r') && self.text[offset..].starts_with('\n')),
            "offset {offset} splits a CRLF"
        );
        Position { line, character }
    }

    /// Position just after the first occurrence of `needle`.
    pub fn position_after(&self, needle: &str, encoding: Encoding) -> Position {
        let start = self
            .text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is not in {:?}", self.text));
        self.position(start + needle.len(), encoding)
    }

    /// Range covering the first occurrence of `needle`.
    pub fn range_of(&self, needle: &str, encoding: Encoding) -> Range {
        let start = self
            .text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is not in {:?}", self.text));
        Range {
            start: self.position(start, encoding),
            end: self.position(start + needle.len(), encoding),
        }
    }

    /// Position of the end of the text.
    pub fn end(&self, encoding: Encoding) -> Position {
        self.position(self.text.len(), encoding)
    }

    /// Replaces `range` with `new_text`, as an incremental `didChange` does.
    pub fn apply(&mut self, range: Range, new_text: &str, encoding: Encoding) {
        let start = self.offset(range.start, encoding);
        let end = self.offset(range.end, encoding);
        assert!(start <= end, "reversed range {range:?}");
        self.text.replace_range(start..end, new_text);
    }

    /// `(prefix, suffix)` around a cursor.
    pub fn split_at(&self, cursor: Position, encoding: Encoding) -> (&str, &str) {
        self.text.split_at(self.offset(cursor, encoding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn counts_utf16_units_and_utf8_bytes() {
        let model = TextModel::new("a😀b\r\n日本\rx\ny");
        assert_eq!(model.offset(position(0, 3), Encoding::Utf16), 5);
        assert_eq!(model.offset(position(0, 5), Encoding::Utf8), 5);
        assert_eq!(model.offset(position(1, 1), Encoding::Utf16), 11);
        assert_eq!(model.offset(position(1, 3), Encoding::Utf8), 11);
        assert_eq!(model.offset(position(2, 0), Encoding::Utf16), 15);
        assert_eq!(model.offset(position(3, 1), Encoding::Utf16), 18);
        assert_eq!(model.position(18, Encoding::Utf16), position(3, 1));
        assert_eq!(model.position(11, Encoding::Utf8), position(1, 3));
        assert_eq!(model.end(Encoding::Utf16), position(3, 1));
    }

    #[test]
    fn applies_edits_across_lines() {
        let mut model = TextModel::new("one\r\ntwo😀\nthree");
        let range = model.range_of("o😀\nth", Encoding::Utf16);
        model.apply(range, "X", Encoding::Utf16);
        assert_eq!(model.text(), "one\r\ntwXree");
        model.apply(
            Range {
                start: position(0, 3),
                end: position(0, 3),
            },
            "!",
            Encoding::Utf16,
        );
        assert_eq!(model.text(), "one!\r\ntwXree");
    }
}
