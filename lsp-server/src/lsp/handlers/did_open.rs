//! `textDocument/didOpen`.

use tower_lsp::lsp_types::DidOpenTextDocumentParams;

use crate::context::neighbors::IndexJob;
use crate::lsp::{from_proto, TandemServer};

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
    // Index it for other documents' cross-file context, in the background.
    if let Ok(snapshot) = server.documents.snapshot(document.uri.as_str()) {
        let roots = server.request_roots();
        server.neighbors.schedule(IndexJob {
            path: from_proto::document_path(&snapshot.uri, &roots),
            uri: snapshot.uri,
            version: snapshot.version,
            language_id: snapshot.language_id,
            text: snapshot.text,
        });
    }
}
