//! Code actions and explanations at the LSP edge: which actions a range is offered
//! ([`offer`]), the model call and the validated edit behind one ([`apply`]), and
//! explanations streamed with progress ([`explain`]).
//!
//! Actions are lazy: `textDocument/codeAction` only looks at the document and carries
//! what is needed in `data`; the model is asked when the user picks one
//! (`codeAction/resolve`, or the `tandem.applyAction` command for clients that cannot
//! resolve edits). Explain is a command (`tandem.explain`) and a request
//! (`tandem/explain`) for plugins that render the streamed text themselves.

pub(crate) mod apply;
pub(crate) mod explain;
pub(crate) mod offer;
pub(crate) mod progress;

use serde::{Deserialize, Serialize};
use tandem_shared::ChatTask;
use tower_lsp::jsonrpc;
use tower_lsp::lsp_types::{CodeActionKind, Diagnostic, Range};

use crate::actions::edit::EditError;
use crate::actions::request::ChatInputError;
use crate::cloud::CloudError;
use crate::lsp::error::HandlerError;

/// Runs an explanation: arguments `[{"uri", "range", "question"?}]`.
pub(crate) const EXPLAIN_COMMAND: &str = "tandem.explain";
/// Computes and applies an action's edit through `workspace/applyEdit`: arguments
/// `[data of the action]`; for clients that cannot resolve an action's edit.
pub(crate) const APPLY_COMMAND: &str = "tandem.applyAction";
/// Signs in with the device flow (see `lsp::sign_in`); no arguments.
pub(crate) const SIGN_IN_COMMAND: &str = "tandem.signIn";
/// Revokes the saved key on the server and deletes the credentials file; no arguments.
pub(crate) const SIGN_OUT_COMMAND: &str = "tandem.signOut";
/// Every command the server executes.
pub(crate) const COMMANDS: [&str; 4] = [
    EXPLAIN_COMMAND,
    APPLY_COMMAND,
    SIGN_IN_COMMAND,
    SIGN_OUT_COMMAND,
];

/// The kinds of the actions offered, for `codeActionProvider`.
pub(crate) const KINDS: [CodeActionKind; 4] = [
    CodeActionKind::EMPTY,
    CodeActionKind::QUICKFIX,
    CodeActionKind::REFACTOR,
    CodeActionKind::REFACTOR_REWRITE,
];

/// What an offered action carries until it is resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActionData {
    pub(crate) uri: String,
    /// The document version the action was offered for; resolving a later one fails
    /// with `ContentModified` and the client asks again.
    pub(crate) version: i32,
    pub(crate) task: ChatTask,
    /// The code the action is about.
    pub(crate) range: Range,
    /// The problems a fix is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) diagnostics: Vec<Diagnostic>,
}

/// Why an action or an explanation produced nothing; the message is shown to the user.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ActionError {
    #[error(transparent)]
    Handler(#[from] HandlerError),
    #[error(
        "not signed in; use your editor's “Tandem: Sign In” (or run `tandem login` in a terminal), or set an API key in the editor's Tandem settings"
    )]
    NoKey,
    #[error("this file is excluded from Tandem by the privacy rules (.tandemignore), so it is never sent")]
    Excluded,
    #[error("put the cursor in a function or select the code to {0}")]
    NothingSelected(ChatTask),
    #[error("{0}")]
    Input(#[from] ChatInputError),
    #[error("{}", cloud_message(.0))]
    Cloud(#[from] CloudError),
    #[error("{0}; nothing was changed")]
    Edit(#[from] EditError),
    #[error("the editor cannot create files through the language server, so the tests for `{0}` cannot be written")]
    CannotCreateFiles(String),
    #[error("cannot read `{path}`: {reason}")]
    ReadFile { path: String, reason: String },
    #[error("the action's data is not Tandem's: {0}")]
    BadData(String),
}

impl From<crate::document::StoreError> for ActionError {
    fn from(error: crate::document::StoreError) -> Self {
        ActionError::Handler(error.into())
    }
}

fn cloud_message(error: &CloudError) -> String {
    match error {
        // The cloud's own words name the limit, the tier or what to configure.
        CloudError::Server { body, .. } => body.error.message.clone(),
        other => other.to_string(),
    }
}

impl ActionError {
    /// The JSON-RPC error answered for this, its message meant for the user.
    pub(crate) fn to_jsonrpc(&self) -> jsonrpc::Error {
        match self {
            ActionError::Handler(error) => error.to_jsonrpc(),
            ActionError::BadData(_) => jsonrpc::Error {
                code: jsonrpc::ErrorCode::InvalidParams,
                message: format!("Tandem: {self}").into(),
                data: None,
            },
            // LSP's RequestFailed: the request was valid but could not be carried out.
            _ => jsonrpc::Error {
                code: jsonrpc::ErrorCode::ServerError(-32803),
                message: format!("Tandem: {self}").into(),
                data: None,
            },
        }
    }

    /// Whether the user should be told (a stale document is not their problem: the
    /// client asks again).
    pub(crate) fn is_worth_showing(&self) -> bool {
        !matches!(self, ActionError::Handler(HandlerError::ContentModified))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_data_round_trips_in_camel_case() {
        let data = ActionData {
            uri: "file:///w/a.rs".into(),
            version: 3,
            task: ChatTask::GenerateTests,
            range: Range::default(),
            diagnostics: Vec::new(),
        };
        let value = serde_json::to_value(&data).unwrap();
        assert_eq!(value["task"], "generate_tests");
        assert!(value.get("diagnostics").is_none());
        assert_eq!(serde_json::from_value::<ActionData>(value).unwrap(), data);
    }

    #[test]
    fn errors_become_request_failed_with_the_users_message() {
        let error = ActionError::NothingSelected(ChatTask::Explain).to_jsonrpc();
        assert_eq!(error.code.code(), -32803);
        assert_eq!(
            error.message,
            "Tandem: put the cursor in a function or select the code to explain"
        );
        let stale = ActionError::Handler(HandlerError::ContentModified);
        assert_eq!(stale.to_jsonrpc().code.code(), -32801);
        assert!(!stale.is_worth_showing());
    }
}
