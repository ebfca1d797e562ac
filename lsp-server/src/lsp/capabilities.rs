//! What the server tells the client it can do: only what actually works.

use serde_json::{json, Value};
use tower_lsp::lsp_types::{
    CodeActionOptions, CodeActionProviderCapability, CompletionOptions, ExecuteCommandOptions,
    ServerCapabilities, TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
    WorkDoneProgressOptions,
};

use super::{code_actions, to_proto};
use crate::document::PositionEncoding;

/// Capabilities as lsp-types 0.94 can express them.
///
/// Inline completion (LSP 3.18) has no field in this lsp-types, so it is advertised in
/// `experimental` here, and [`add_inline_completion_provider`] adds the real
/// `inlineCompletionProvider` key to the serialized `initialize` result.
pub(crate) fn server_capabilities(encoding: PositionEncoding) -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(to_proto::position_encoding(encoding)),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                ..TextDocumentSyncOptions::default()
            },
        )),
        completion_provider: Some(CompletionOptions {
            resolve_provider: Some(false),
            ..CompletionOptions::default()
        }),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(code_actions::KINDS.to_vec()),
            resolve_provider: Some(true),
            work_done_progress_options: WorkDoneProgressOptions::default(),
        })),
        execute_command_provider: Some(ExecuteCommandOptions {
            commands: code_actions::COMMANDS
                .iter()
                .map(|command| (*command).to_owned())
                .collect(),
            work_done_progress_options: WorkDoneProgressOptions::default(),
        }),
        experimental: Some(json!({ "inlineCompletionProvider": true })),
        ..ServerCapabilities::default()
    }
}

/// Adds `capabilities.inlineCompletionProvider: true` to a serialized `InitializeResult`.
pub(crate) fn add_inline_completion_provider(initialize_result: &mut Value) {
    if let Some(capabilities) = initialize_result
        .get_mut("capabilities")
        .and_then(Value::as_object_mut)
    {
        capabilities.insert("inlineCompletionProvider".to_owned(), Value::Bool(true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_incremental_sync_completion_and_inline_completion() {
        let mut result = json!({ "capabilities": server_capabilities(PositionEncoding::Utf8) });
        add_inline_completion_provider(&mut result);
        let capabilities = &result["capabilities"];
        assert_eq!(capabilities["positionEncoding"], "utf-8");
        assert_eq!(capabilities["textDocumentSync"]["change"], 2);
        assert_eq!(capabilities["textDocumentSync"]["openClose"], true);
        assert_eq!(capabilities["completionProvider"]["resolveProvider"], false);
        assert_eq!(capabilities["inlineCompletionProvider"], true);
        assert_eq!(capabilities["codeActionProvider"]["resolveProvider"], true);
        assert_eq!(
            capabilities["executeCommandProvider"]["commands"],
            json!([
                "tandem.explain",
                "tandem.applyAction",
                "tandem.signIn",
                "tandem.signOut"
            ])
        );
        assert_eq!(
            capabilities["experimental"]["inlineCompletionProvider"],
            true
        );
        // Nothing we do not implement.
        assert!(capabilities.get("hoverProvider").is_none());
        assert!(capabilities.get("definitionProvider").is_none());
    }
}
