//! `textDocument/codeAction`: the actions offered for a range (see
//! [`code_actions::offer`](crate::lsp::code_actions::offer)). Nothing is asked of the
//! model here.

use tower_lsp::lsp_types::{CodeActionParams, CodeActionResponse};

use crate::lsp::code_actions::offer;
use crate::lsp::error::HandlerError;
use crate::lsp::{from_proto, TandemServer};

pub(crate) fn handle_code_action(
    server: &TandemServer,
    params: CodeActionParams,
) -> Result<Option<CodeActionResponse>, HandlerError> {
    let uri = params.text_document.uri.as_str();
    let snapshot = server.action_snapshot(uri)?;
    let config = server.request_config();
    // An excluded document is never sent, so nothing can be offered for it.
    if server.is_excluded(uri, &config.roots) {
        return Ok(None);
    }
    let path = from_proto::document_path(uri, &config.roots);
    let actions = offer::actions(&snapshot, &path, &params, config.encoding, config.client);
    Ok(Some(actions).filter(|actions| !actions.is_empty()))
}
