//! `textDocument/inlineCompletion` (custom method; LSP 3.18 types from `tandem_shared`).

use tandem_shared::inline_completion::{
    InlineCompletionList, InlineCompletionParams, InlineCompletionTriggerKind,
};
use tower_lsp::jsonrpc;
use tracing::Instrument;

use crate::engine::Stream;
use crate::lsp::handlers::Trigger;
use crate::lsp::{from_proto, handlers, to_proto, TandemServer};

/// Only `triggerKind` 2 is debounced. A request without a context (older clients; the
/// spec makes it mandatory) counts as invoked: it is answered without delay.
pub(crate) async fn handle_inline_completion(
    server: &TandemServer,
    params: InlineCompletionParams,
) -> jsonrpc::Result<InlineCompletionList> {
    let uri = from_proto::document_key(&params.text_document.uri);
    let cursor = from_proto::inline_position(params.position);
    let trigger = match params.context.map(|context| context.trigger_kind) {
        Some(InlineCompletionTriggerKind::Automatic) => Trigger::Automatic,
        Some(InlineCompletionTriggerKind::Invoked) | None => Trigger::Invoked,
    };
    let span =
        tracing::info_span!("textDocument/inlineCompletion", %uri, line = cursor.line, ?trigger);
    let suggestion = handlers::suggest(server, &uri, cursor, Stream::Inline, trigger)
        .instrument(span)
        .await?;
    Ok(match suggestion {
        Some(suggestion) => to_proto::inline_completion_list(cursor, suggestion.text),
        None => InlineCompletionList { items: Vec::new() },
    })
}
