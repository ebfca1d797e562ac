//! Conversions from the server's own types to LSP types.

use tower_lsp::lsp_types::{
    CompletionItem, CompletionItemKind, CompletionList, CompletionResponse, CompletionTextEdit,
    InsertTextFormat, Position, PositionEncodingKind, Range, TextEdit,
};

use crate::document::{LspPosition, PositionEncoding};

pub(crate) fn position(position: LspPosition) -> Position {
    Position::new(position.line, position.character)
}

/// The position of a byte offset the server computed itself (an edit's bounds); an
/// offset inside a character or a CRLF moves back to the nearest position before it.
pub(crate) fn position_at(
    rope: &ropey::Rope,
    offset: usize,
    encoding: PositionEncoding,
) -> Position {
    let mut offset = offset.min(rope.len_bytes());
    loop {
        match crate::document::position::position_of(
            rope,
            crate::document::ByteOffset(offset),
            encoding,
        ) {
            Ok(found) => return position(found),
            Err(_) if offset > 0 => offset -= 1,
            Err(_) => return Position::default(),
        }
    }
}

pub(crate) fn inline_position(position: LspPosition) -> tandem_shared::inline_completion::Position {
    tandem_shared::inline_completion::Position {
        line: position.line,
        character: position.character,
    }
}

pub(crate) fn position_encoding(encoding: PositionEncoding) -> PositionEncodingKind {
    match encoding {
        PositionEncoding::Utf8 => PositionEncodingKind::UTF8,
        PositionEncoding::Utf16 => PositionEncodingKind::UTF16,
    }
}

/// An empty, incomplete list: the client asks again on the next keystroke.
pub(crate) fn empty_completion_list() -> CompletionResponse {
    CompletionResponse::List(CompletionList {
        is_incomplete: true,
        items: Vec::new(),
    })
}

/// One item replacing the word being typed (from `word_start` to `cursor`) with
/// `word + suggestion`, so clients filter it against what the user typed.
pub(crate) fn completion_list(
    word_start: LspPosition,
    cursor: LspPosition,
    word: &str,
    suggestion: &str,
) -> CompletionResponse {
    let new_text = format!("{word}{suggestion}");
    let first_line = new_text.lines().next().unwrap_or_default().trim_end();
    let label = if first_line.chars().count() > 80 {
        format!("{}…", first_line.chars().take(80).collect::<String>())
    } else {
        first_line.to_owned()
    };
    let item = CompletionItem {
        label,
        kind: Some(CompletionItemKind::TEXT),
        detail: Some("Tandem".to_owned()),
        filter_text: Some(word.to_owned()).filter(|word| !word.is_empty()),
        insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
        text_edit: Some(CompletionTextEdit::Edit(TextEdit {
            range: Range::new(position(word_start), position(cursor)),
            new_text,
        })),
        ..CompletionItem::default()
    };
    CompletionResponse::List(CompletionList {
        is_incomplete: true,
        items: vec![item],
    })
}

/// `{"items":[{"insertText": text, "range": {cursor, cursor}}]}`.
pub(crate) fn inline_completion_list(
    cursor: LspPosition,
    text: String,
) -> tandem_shared::inline_completion::InlineCompletionList {
    use tandem_shared::inline_completion::{InlineCompletionItem, InlineCompletionList, Range};
    let cursor = inline_position(cursor);
    InlineCompletionList {
        items: vec![InlineCompletionItem {
            insert_text: text,
            filter_text: None,
            range: Some(Range {
                start: cursor,
                end: cursor,
            }),
        }],
    }
}
