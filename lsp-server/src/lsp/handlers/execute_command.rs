//! `workspace/executeCommand`: `tandem.explain` (explain with progress, then show the
//! result) and `tandem.applyAction` (an action's edit through `workspace/applyEdit`, for
//! clients that cannot resolve edits).

use serde_json::Value;
use tower_lsp::jsonrpc;
use tower_lsp::lsp_types::request::WorkDoneProgressCreate;
use tower_lsp::lsp_types::{
    ExecuteCommandParams, MessageType, NumberOrString, TextDocumentIdentifier,
    WorkDoneProgressCreateParams,
};

use super::code_action_resolve::report;
use crate::credentials;
use crate::device_login;
use crate::lsp::code_actions::explain::{self, ExplainArgument, ExplainParams};
use crate::lsp::code_actions::progress::Progress;
use crate::lsp::code_actions::{
    apply, ActionData, ActionError, APPLY_COMMAND, COMMANDS, EXPLAIN_COMMAND, SIGN_IN_COMMAND,
    SIGN_OUT_COMMAND,
};
use crate::lsp::sign_in;
use crate::lsp::TandemServer;

pub(crate) async fn handle_execute_command(
    server: &TandemServer,
    params: ExecuteCommandParams,
) -> jsonrpc::Result<Option<Value>> {
    let argument = params.arguments.into_iter().next().unwrap_or(Value::Null);
    match params.command.as_str() {
        EXPLAIN_COMMAND => {
            let argument: ExplainArgument = serde_json::from_value(argument)
                .map_err(|error| ActionError::BadData(error.to_string()).to_jsonrpc())?;
            run_explain(server, argument).await
        }
        APPLY_COMMAND => {
            let data: ActionData = serde_json::from_value(argument)
                .map_err(|error| ActionError::BadData(error.to_string()).to_jsonrpc())?;
            let edit = match apply::edit_for(server, &data).await {
                Ok(edit) => edit,
                Err(error) => return Err(report(server, &data, error).await),
            };
            if apply::needs_missing_support(&edit, server.request_config().client) {
                let error = ActionError::CannotCreateFiles(data.uri.clone());
                return Err(report(server, &data, error).await);
            }
            let applied = server.client.apply_edit(edit).await?;
            if !applied.applied {
                let reason = applied.failure_reason.unwrap_or_default();
                tracing::warn!(%reason, "the client did not apply the edit");
            }
            Ok(Some(Value::Bool(applied.applied)))
        }
        SIGN_IN_COMMAND => {
            // A missing or malformed argument means the server shows the code itself.
            let argument: sign_in::SignInArgument =
                serde_json::from_value(argument).unwrap_or_default();
            let cloud_server = server.request_config().credentials.server;
            match sign_in::start(server, cloud_server, argument.client_shows_code).await {
                Ok(started) => Ok(serde_json::to_value(started).ok()),
                Err(error) => {
                    let message = format!("Tandem: {error}");
                    if !argument.client_shows_code {
                        server
                            .client
                            .show_message(MessageType::ERROR, message.clone())
                            .await;
                    }
                    Err(jsonrpc::Error {
                        code: jsonrpc::ErrorCode::ServerError(-32803),
                        message: message.into(),
                        data: Some(serde_json::json!({"reason": error.reason()})),
                    })
                }
            }
        }
        SIGN_OUT_COMMAND => Ok(Some(sign_out(server).await)),
        other => Err(jsonrpc::Error::invalid_params(format!(
            "unknown command `{other}`; Tandem runs {}",
            COMMANDS.join(", ")
        ))),
    }
}

/// Explains with cancellable work-done progress when the client shows it, then shows the
/// explanation; answers with it too, for plugins that run the command themselves.
async fn run_explain(
    server: &TandemServer,
    argument: ExplainArgument,
) -> jsonrpc::Result<Option<Value>> {
    let token = progress_token(server).await;
    let cancelled = token
        .as_ref()
        .map(|token| server.progress_cancellation(token));
    let params = ExplainParams {
        text_document: TextDocumentIdentifier { uri: argument.uri },
        range: argument.range,
        position: None,
        question: argument.question,
        diagnostics: argument.diagnostics,
        work_done_token: token.clone(),
        partial_result_token: None,
    };
    let mut progress = Progress::new(server.client.clone(), token.clone(), None);
    let result = match &cancelled {
        Some(cancelled) => {
            tokio::select! {
                result = explain::explain(server, &params, &mut progress) => Some(result),
                () = cancelled.notified() => None,
            }
        }
        None => Some(explain::explain(server, &params, &mut progress).await),
    };
    if let Some(token) = &token {
        server.forget_progress(token);
    }
    let Some(result) = result else {
        // Cancelled from the progress UI: the stream was dropped with the future.
        progress.end("cancelled").await;
        return Ok(None);
    };
    match result {
        Ok(explained) => {
            explain::show(server, &explained).await;
            Ok(serde_json::to_value(&explained).ok())
        }
        Err(error) => {
            let answer = error.to_jsonrpc();
            if error.is_worth_showing() {
                server
                    .client
                    .show_message(MessageType::ERROR, answer.message.to_string())
                    .await;
            }
            Err(answer)
        }
    }
}

/// Revokes the key of the credentials file on its server and deletes the file; answers
/// whether anything was signed out. Keys from editor settings or the environment are the
/// user's to remove.
async fn sign_out(server: &TandemServer) -> Value {
    let Some(path) = server.credentials_path() else {
        return Value::Bool(false);
    };
    let saved = credentials::load(&path).ok().flatten().unwrap_or_default();
    let Some((cloud_server, revoked)) = device_login::revoke_saved(&server.cloud, &saved).await
    else {
        return Value::Bool(false);
    };
    let deleted = credentials::delete(&path);
    // Resolving the credentials again tells the status the key is gone (or which one
    // from the settings or the environment is used now).
    server.request_config();
    let message = match (&revoked, &deleted) {
        (Ok(()), Ok(_)) => format!("Tandem: signed out of {cloud_server}"),
        (Err(error), Ok(_)) => format!(
            "Tandem: signed out on this machine; the key could not be revoked on {cloud_server} ({error})"
        ),
        (_, Err(error)) => format!("Tandem: cannot delete the credentials file: {error}"),
    };
    server.client.show_message(MessageType::INFO, message).await;
    Value::Bool(deleted.is_ok())
}

/// A new work-done progress token, when the client supports server-initiated progress.
async fn progress_token(server: &TandemServer) -> Option<NumberOrString> {
    if !server.request_config().client.work_done_progress {
        return None;
    }
    let token = NumberOrString::String(server.next_progress_token());
    let created = server
        .client
        .send_request::<WorkDoneProgressCreate>(WorkDoneProgressCreateParams {
            token: token.clone(),
        })
        .await;
    created.ok().map(|()| token)
}
