//! Explanations: the code under the cursor (or the selection) explained in Markdown,
//! streamed from the cloud with progress, and shown the way the client can show it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tandem_shared::ChatTask;
use tower_lsp::lsp_types::{
    Diagnostic, MessageType, NumberOrString, Position, Range, ShowDocumentParams,
    TextDocumentIdentifier, Url,
};

use super::apply::{byte_range, ActionContext};
use super::progress::Progress;
use super::ActionError;
use crate::actions::target;
use crate::cloud::ChatEvent;
use crate::document::position;
use crate::lsp::{from_proto, TandemServer};

/// Params of the `tandem/explain` request (and the argument of `tandem.explain`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExplainParams {
    pub(crate) text_document: TextDocumentIdentifier,
    /// The code to explain; an empty range (or none) means the item at `position` (or at
    /// the range's start).
    #[serde(default)]
    pub(crate) range: Option<Range>,
    #[serde(default)]
    pub(crate) position: Option<Position>,
    /// What to focus on.
    #[serde(default)]
    pub(crate) question: Option<String>,
    /// Problems the editor reports in the code, for the explanation to account for.
    #[serde(default)]
    pub(crate) diagnostics: Vec<Diagnostic>,
    #[serde(default)]
    pub(crate) work_done_token: Option<NumberOrString>,
    /// When set, the text is sent as it streams: `$/progress` with `{"markdown": piece}`.
    #[serde(default)]
    pub(crate) partial_result_token: Option<NumberOrString>,
}

/// The `tandem.explain` command's argument: `{"uri", "range", "question"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExplainArgument {
    pub(crate) uri: Url,
    #[serde(default)]
    pub(crate) range: Option<Range>,
    #[serde(default)]
    pub(crate) question: Option<String>,
    #[serde(default)]
    pub(crate) diagnostics: Vec<Diagnostic>,
}

/// The result of `tandem/explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExplainResult {
    /// What was explained (`` Explanation of `add` ``).
    pub(crate) title: String,
    pub(crate) markdown: String,
    pub(crate) provider: String,
    pub(crate) model: String,
}

/// Explains what `params` points at, reporting progress to `progress`. Dropping the
/// future (a cancelled request) drops the stream, which closes the connection to the
/// cloud and, through it, to the model.
pub(crate) async fn explain(
    server: &TandemServer,
    params: &ExplainParams,
    progress: &mut Progress,
) -> Result<ExplainResult, ActionError> {
    let context = ActionContext::new(server, params.text_document.uri.as_str())?;
    let ActionContext {
        snapshot,
        config,
        target,
        path,
    } = &context;
    let text = &snapshot.text;
    let selection = params
        .range
        .as_ref()
        .map(|range| byte_range(text, range, config.encoding))
        .filter(|range| {
            !range.is_empty()
                && !crate::syntax::text_of(text, range.clone())
                    .trim()
                    .is_empty()
        });
    let item_at = |offset: usize| {
        snapshot
            .syntax
            .as_ref()
            .and_then(|syntax| target::item_at(&syntax.tree, text, syntax.language, offset))
    };
    let item_title = |item: &target::Item| {
        let name = item
            .name
            .clone()
            .map_or_else(|| "the code".to_owned(), |name| format!("`{name}`"));
        format!("Explanation of {name}")
    };
    // The range of an item (the Explain action's own argument) is the item.
    let selected_item = selection
        .as_ref()
        .and_then(|range| item_at(range.start).filter(|item| item.range == *range));
    let (range, title) = match (selection, selected_item) {
        (Some(range), Some(item)) => (range, item_title(&item)),
        (Some(range), None) => {
            let first = text.byte_to_line(range.start) + 1;
            let last = text.byte_to_line(range.end.saturating_sub(1).max(range.start)) + 1;
            let lines = if first == last {
                format!("line {first}")
            } else {
                format!("lines {first}–{last}")
            };
            (range, format!("Explanation of {path}, {lines}"))
        }
        (None, _) => {
            let at = params
                .position
                .or(params.range.map(|range| range.start))
                .unwrap_or_default();
            let (offset, _) =
                position::offset_of_clamped(text, from_proto::position(at), config.encoding);
            let item = item_at(offset.0).ok_or(ActionError::NothingSelected(ChatTask::Explain))?;
            let title = item_title(&item);
            (item.range, title)
        }
    };
    let question = params
        .question
        .clone()
        .filter(|question| !question.trim().is_empty());
    let prepared = context.chat_request(
        server,
        ChatTask::Explain,
        range,
        &params.diagnostics,
        question,
    )?;

    progress.begin(&title, true).await;
    let result = stream_answer(server, target, &prepared.request, progress).await;
    match &result {
        Ok(_) => progress.end("done").await,
        Err(error) => progress.end(&format!("failed: {error}")).await,
    }
    let answer = result?;
    Ok(ExplainResult {
        title,
        markdown: answer.text,
        provider: answer.provider,
        model: answer.model,
    })
}

async fn stream_answer(
    server: &TandemServer,
    target: &crate::cloud::CloudTarget,
    request: &tandem_shared::ChatRequest,
    progress: &mut Progress,
) -> Result<tandem_shared::ChatResponse, ActionError> {
    let mut events = server.cloud.chat_stream(target, request).await?;
    let mut written = String::new();
    while let Some(event) = events.next().await {
        match event? {
            ChatEvent::Delta(text) => {
                written.push_str(&text);
                progress.text(&text, &written).await;
            }
            ChatEvent::Done(answer) => return Ok(answer),
        }
    }
    Err(
        crate::cloud::CloudError::BadResponse("the answer ended without its text".to_owned())
            .into(),
    )
}

/// Shows an explanation: as a Markdown document the client opens (`window/showDocument`)
/// when it can, else as a message.
pub(crate) async fn show(server: &TandemServer, explained: &ExplainResult) {
    let client = server.request_config().client;
    if client.show_document {
        match write_markdown(explained) {
            Ok(path) => {
                if let Ok(uri) = Url::from_file_path(&path) {
                    let shown = server
                        .client
                        .show_document(ShowDocumentParams {
                            uri,
                            external: Some(false),
                            take_focus: Some(true),
                            selection: None,
                        })
                        .await;
                    if matches!(shown, Ok(true)) {
                        return;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot write the explanation to a file"),
        }
    }
    server
        .client
        .show_message(
            MessageType::INFO,
            format!("{}\n\n{}", explained.title, explained.markdown),
        )
        .await;
}

/// Writes the explanation to a private temporary Markdown file.
fn write_markdown(explained: &ExplainResult) -> std::io::Result<PathBuf> {
    let directory = std::env::temp_dir().join(format!("tandem-explanations-{}", user_tag()));
    std::fs::create_dir_all(&directory)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o700))?;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    let path = directory.join(format!("explanation-{stamp}.md"));
    std::fs::write(
        &path,
        format!(
            "# {}\n\n{}\n\n---\n*{} ({})*\n",
            explained.title, explained.markdown, explained.model, explained.provider
        ),
    )?;
    Ok(path)
}

/// Keeps users of a shared machine in directories of their own.
fn user_tag() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "user".to_owned())
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}
