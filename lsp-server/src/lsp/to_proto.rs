//! Conversions from the server's own types to LSP types.

use tower_lsp::lsp_types::{
    CompletionItem, CompletionItemKind, CompletionList, CompletionResponse, CompletionTextEdit,
    Documentation, InsertTextFormat, MarkupContent, MarkupKind, Position, PositionEncodingKind,
    Range, TextEdit,
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

/// What a completion item says about the suggestion it inserts.
pub(crate) struct CompletionDocumentation<'a> {
    /// The document's language id, for the code block's highlighting.
    pub(crate) language_id: &'a str,
    /// Whether the client renders Markdown documentation.
    pub(crate) markdown: bool,
}

/// One item replacing the word being typed (from `word_start` to `cursor`) with
/// `word + suggestion`, so clients filter it against what the user typed. Clients
/// without inline completion (Helix) show only the label in the menu, so the whole
/// suggestion is in `documentation`, the preview beside it.
pub(crate) fn completion_list(
    word_start: LspPosition,
    cursor: LspPosition,
    word: &str,
    suggestion: &str,
    documentation: &CompletionDocumentation<'_>,
) -> CompletionResponse {
    let new_text = format!("{word}{suggestion}");
    let documentation = if documentation.markdown {
        Documentation::MarkupContent(MarkupContent {
            kind: MarkupKind::Markdown,
            value: markdown_code_block(documentation.language_id, &new_text),
        })
    } else {
        Documentation::String(new_text.clone())
    };
    let first_line = new_text.lines().next().unwrap_or_default().trim_end();
    // At most 80 characters, the ellipsis included.
    let label = if first_line.chars().count() > 80 {
        format!("{}…", first_line.chars().take(79).collect::<String>())
    } else {
        first_line.to_owned()
    };
    let item = CompletionItem {
        label,
        kind: Some(CompletionItemKind::TEXT),
        // Plain: Helix shows `detail` as a code block in the document's language.
        detail: Some("Tandem".to_owned()),
        documentation: Some(documentation),
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

/// `code` fenced for Markdown: the fence is longer than any run of backticks inside, and
/// the info string is the language id when it is a plain word.
fn markdown_code_block(language_id: &str, code: &str) -> String {
    let longest_run = code
        .split(|character| character != '`')
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    let plain_word = language_id
        .chars()
        .all(|character| character.is_ascii_alphanumeric() || "+-_.#".contains(character));
    let info = if plain_word { language_id } else { "" };
    let newline = if code.ends_with('\n') { "" } else { "\n" };
    format!("{fence}{info}\n{code}{newline}{fence}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suggestion_is_fenced_with_its_language() {
        assert_eq!(
            markdown_code_block("python", "return a + b"),
            "```python\nreturn a + b\n```"
        );
        assert_eq!(markdown_code_block("rust", "x\n"), "```rust\nx\n```");
    }

    #[test]
    fn the_fence_is_longer_than_backticks_in_the_suggestion() {
        let code = "doc = \"\"\"```sh\nls\n```\"\"\"";
        assert_eq!(
            markdown_code_block("python", code),
            format!("````python\n{code}\n````")
        );
    }

    #[test]
    fn a_language_id_that_is_not_a_word_is_left_out_of_the_info_string() {
        assert_eq!(markdown_code_block("my lang`", "x"), "```\nx\n```");
    }
}
