//! `textDocument/didChange`.

use tower_lsp::lsp_types::DidChangeTextDocumentParams;

use crate::lsp::{from_proto, TandemServer};

/// Synchronous: it must complete in the handler's first poll (see `lsp` on ordering).
/// Invalid edit positions are clamped and logged, since a notification cannot answer.
pub(crate) fn handle_did_change(server: &TandemServer, params: DidChangeTextDocumentParams) {
    let uri = params.text_document.uri;
    let version = params.text_document.version;
    let changes: Vec<_> = params
        .content_changes
        .into_iter()
        .map(from_proto::content_change)
        .collect();
    match server
        .documents
        .change(uri.as_str(), version, &changes, server.encoding())
    {
        Ok(warnings) => {
            for warning in warnings {
                tracing::warn!(%uri, version, %warning, "didChange adjusted");
            }
        }
        Err(error) => tracing::warn!(%error, "didChange ignored"),
    }
}
