//! `textDocument/completion`: the suggestion as one completion item.

use tower_lsp::jsonrpc;
use tower_lsp::lsp_types::{CompletionParams, CompletionResponse};
use tracing::Instrument;

use crate::context;
use crate::document::{position, ByteOffset};
use crate::engine::Stream;
use crate::lsp::error::HandlerError;
use crate::lsp::handlers::Trigger;
use crate::lsp::{from_proto, handlers, to_proto, TandemServer};

/// Always debounced: editors send `textDocument/completion` on nearly every keystroke
/// in a word, with `triggerKind` 1 (VS Code marks identifier typing as "invoked"), so
/// its trigger kind cannot tell a deliberate request from typing.
pub(crate) async fn handle_completion(
    server: &TandemServer,
    params: CompletionParams,
) -> jsonrpc::Result<Option<CompletionResponse>> {
    let document = params.text_document_position;
    let uri = document.text_document.uri;
    let cursor_position = from_proto::position(document.position);
    let span = tracing::info_span!("textDocument/completion", %uri, line = cursor_position.line);
    let Some(suggestion) = handlers::suggest(
        server,
        uri.as_str(),
        cursor_position,
        Stream::Completion,
        Trigger::Automatic,
    )
    .instrument(span)
    .await?
    else {
        return Ok(Some(to_proto::empty_completion_list()));
    };

    // The item replaces the word being typed, so only the cursor's line is needed.
    let rope = &suggestion.snapshot.text;
    let cursor = suggestion.cursor;
    let line_start = rope.line_to_byte(rope.byte_to_line(cursor.0));
    let line_before_cursor = rope.byte_slice(line_start..cursor.0).to_string();
    let word_start_in_line =
        context::word_start(&line_before_cursor, ByteOffset(line_before_cursor.len()));
    let word = &line_before_cursor[word_start_in_line.0..];
    let word_start = ByteOffset(line_start + word_start_in_line.0);
    let word_start_position =
        position::position_of(rope, word_start, suggestion.encoding).map_err(HandlerError::from)?;
    Ok(Some(to_proto::completion_list(
        word_start_position,
        cursor_position,
        word,
        &suggestion.text,
        &to_proto::CompletionDocumentation {
            language_id: &suggestion.snapshot.language_id,
            markdown: server.client_support().completion_markdown,
        },
    )))
}
