//! `codeAction/resolve`: the model is asked for an action's edit only now, when the
//! user picked it.

use tower_lsp::jsonrpc;
use tower_lsp::lsp_types::{CodeAction, MessageType};

use crate::lsp::code_actions::{apply, ActionData, ActionError};
use crate::lsp::TandemServer;

pub(crate) async fn handle_code_action_resolve(
    server: &TandemServer,
    mut action: CodeAction,
) -> jsonrpc::Result<CodeAction> {
    let Some(data) = action.data.clone() else {
        // Nothing to resolve (an Explain action carries its command already).
        return Ok(action);
    };
    let data: ActionData = match serde_json::from_value(data) {
        Ok(data) => data,
        Err(error) => return Err(ActionError::BadData(error.to_string()).to_jsonrpc()),
    };
    let result = apply::edit_for(server, &data).await.and_then(|edit| {
        if apply::needs_missing_support(&edit, server.request_config().client) {
            return Err(ActionError::CannotCreateFiles(action.title.clone()));
        }
        Ok(edit)
    });
    match result {
        Ok(edit) => {
            action.edit = Some(edit);
            Ok(action)
        }
        Err(error) => Err(report(server, &data, error).await),
    }
}

/// Logs the failure, tells the user (clients show a failed resolve inconsistently), and
/// gives the JSON-RPC error to answer with.
pub(crate) async fn report(
    server: &TandemServer,
    data: &ActionData,
    error: ActionError,
) -> jsonrpc::Error {
    let answer = error.to_jsonrpc();
    if error.is_worth_showing() {
        tracing::warn!(task = %data.task, %error, "code action failed");
        server
            .client
            .show_message(MessageType::ERROR, answer.message.to_string())
            .await;
    }
    answer
}
