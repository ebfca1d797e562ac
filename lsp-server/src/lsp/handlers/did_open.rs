//! `textDocument/didOpen`.

use tower_lsp::lsp_types::DidOpenTextDocumentParams;

use crate::lsp::TandemServer;

/// Synchronous: it must complete in the handler's first poll (see `lsp` on ordering).
pub(crate) fn handle_did_open(server: &TandemServer, params: DidOpenTextDocumentParams) {
    let document = params.text_document;
    tracing::debug!(uri = %document.uri, version = document.version, "didOpen");
    server.documents.open(
        document.uri.as_str(),
        &document.language_id,
        document.version,
        &document.text,
    );
}
