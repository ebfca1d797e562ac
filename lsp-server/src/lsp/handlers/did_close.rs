//! `textDocument/didClose`.

use tower_lsp::lsp_types::DidCloseTextDocumentParams;

use crate::lsp::TandemServer;

/// Synchronous: it must complete in the handler's first poll (see `lsp` on ordering).
pub(crate) fn handle_did_close(server: &TandemServer, params: DidCloseTextDocumentParams) {
    let uri = params.text_document.uri;
    // Requests still running for the document end as superseded.
    server.engine.forget(uri.as_str());
    server.neighbors.forget(uri.as_str());
    server.forget_action_tree(uri.as_str());
    if !server.documents.close(uri.as_str()) {
        tracing::debug!(%uri, "didClose for a document that was not open");
    }
}
