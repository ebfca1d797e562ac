//! The edit behind a picked action: build the request, ask the cloud, turn the answer
//! into minimal edits, and validate them; an answer that breaks the syntax is sent back
//! once with the problem, then refused.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tandem_shared::chat::{test_placement, RetryNote, TestPlacement};
use tandem_shared::{ChatDiagnostic, ChatTask};
use tower_lsp::lsp_types::{
    CreateFile, CreateFileOptions, Diagnostic, DiagnosticSeverity, DocumentChangeOperation,
    DocumentChanges, NumberOrString, OneOf, OptionalVersionedTextDocumentIdentifier, ResourceOp,
    TextDocumentEdit, TextEdit, Url, WorkspaceEdit,
};

use super::{ActionData, ActionError};
use crate::actions::diff::Replacement;
use crate::actions::edit::{self, EditError};
use crate::actions::request::{chat_request, ChatInputs, PreparedChat};
use crate::cloud::CloudTarget;
use crate::document::{position, DocumentSnapshot, PositionEncoding};
use crate::lsp::error::HandlerError;
use crate::lsp::handlers::{context_budget, context_sources};
use crate::lsp::{from_proto, to_proto, RequestConfig, TandemServer};
use crate::syntax::Language;

/// How long a chat answer may take: these are answers a person waits for, written by
/// larger models than completions use.
pub(crate) const CHAT_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest existing test file read to append to.
const MAX_TEST_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// The cloud target for chat requests: the configured server and key, a longer timeout.
fn chat_target(config: &RequestConfig) -> Result<CloudTarget, ActionError> {
    let mut target = TandemServer::target(config).ok_or(ActionError::NoKey)?;
    target.timeout = target.timeout.max(CHAT_TIMEOUT);
    Ok(target)
}

/// A document an action or an explanation works on, with the request's configuration
/// and cloud target: there is a key, and the privacy rules let the document go out.
pub(super) struct ActionContext {
    pub(super) snapshot: DocumentSnapshot,
    pub(super) config: RequestConfig,
    pub(super) target: CloudTarget,
    /// Workspace-relative path of the document.
    pub(super) path: String,
}

impl ActionContext {
    pub(super) fn new(server: &TandemServer, uri: &str) -> Result<ActionContext, ActionError> {
        let snapshot = server.documents.snapshot_with_syntax(uri)?;
        let config = server.request_config();
        let target = chat_target(&config)?;
        if server.is_excluded(uri, &config.roots) {
            return Err(ActionError::Excluded);
        }
        let path = from_proto::document_path(uri, &config.roots);
        Ok(ActionContext {
            snapshot,
            config,
            target,
            path,
        })
    }

    /// The `/v1/chat` request for `task` on `range` of the document, with context from
    /// the other open documents under the tier's budget.
    pub(super) fn chat_request(
        &self,
        server: &TandemServer,
        task: ChatTask,
        range: std::ops::Range<usize>,
        diagnostics: &[Diagnostic],
        question: Option<String>,
    ) -> Result<PreparedChat, ActionError> {
        let (snapshot, config) = (&self.snapshot, &self.config);
        let (neighbors, recent_edits) = context_sources(server, &snapshot.uri, &config.roots);
        let mut allowed = |candidate: &str| !server.is_excluded(candidate, &config.roots);
        let inputs = ChatInputs {
            task,
            text: &snapshot.text,
            syntax: snapshot.syntax.as_ref(),
            language_id: &snapshot.language_id,
            path: self.path.clone(),
            range,
            diagnostics: diagnostics.iter().map(chat_diagnostic).collect(),
            question,
            max_tokens: context_budget(server, config, &self.target),
            max_prefix_chars: config.limits.max_prefix_chars,
            max_suffix_chars: config.limits.max_suffix_chars,
            neighbors: &neighbors,
            recent_edits: &recent_edits,
        };
        Ok(chat_request(&inputs, &mut allowed)?)
    }
}

/// Computes the workspace edit of the action described by `data`.
pub(crate) async fn edit_for(
    server: &TandemServer,
    data: &ActionData,
) -> Result<WorkspaceEdit, ActionError> {
    let context = ActionContext::new(server, &data.uri)?;
    let ActionContext {
        snapshot,
        config,
        target,
        path,
    } = &context;
    if snapshot.version != data.version {
        return Err(HandlerError::ContentModified.into());
    }
    let encoding = config.encoding;
    let text = &snapshot.text;
    let range = byte_range(text, &data.range, encoding);
    let language = Language::detect(&snapshot.language_id, path);
    let PreparedChat { mut request, code } =
        context.chat_request(server, data.task, range.clone(), &data.diagnostics, None)?;

    // Where the answer goes.
    let document = text.to_string();
    let placement = match data.task {
        ChatTask::GenerateTests => match test_placement(&snapshot.language_id, path) {
            Some(TestPlacement::File(relative)) => {
                Placement::File(test_file(server, config, &relative)?)
            }
            _ => Placement::EndOfDocument,
        },
        _ => Placement::Replace(range),
    };

    let mut retried = false;
    let edits = loop {
        let answer = server.cloud.chat(target, &request).await?;
        let result = code
            .unmask(&answer.text)
            .map_err(EditError::from)
            .and_then(|unmasked| placement.edits(&document, &unmasked, language));
        match result {
            Ok(edits) => break edits,
            Err(EditError::Syntax(problem)) if !retried => {
                tracing::info!(task = %data.task, %problem, "answer refused; asking once more");
                retried = true;
                request.retry = Some(RetryNote {
                    answer: answer.text,
                    problem: format!("it introduces a syntax error ({problem})"),
                });
            }
            Err(error) => return Err(error.into()),
        }
    };
    // The user may have typed while the model wrote.
    if server.documents.version(&data.uri) != Some(data.version) {
        return Err(HandlerError::ContentModified.into());
    }
    Ok(workspace_edit(
        &snapshot.uri,
        data.version,
        text,
        &placement,
        edits,
        encoding,
        config.client,
    ))
}

/// Where an answer goes.
enum Placement {
    /// It replaces this byte range of the document.
    Replace(std::ops::Range<usize>),
    /// It is appended to the document.
    EndOfDocument,
    /// It is appended to another file, created if need be.
    File(TestFile),
}

/// The file tests go to.
struct TestFile {
    uri: Url,
    /// Its text, when it exists (open in the editor or on disk), with its version when
    /// open.
    existing: Option<(String, Option<i32>)>,
}

impl Placement {
    fn edits(
        &self,
        document: &str,
        answer: &str,
        language: Option<Language>,
    ) -> Result<Vec<Replacement>, EditError> {
        match self {
            Placement::Replace(range) => {
                edit::replace_region(document, range.clone(), answer, language)
            }
            Placement::EndOfDocument => edit::append(document, answer, language),
            Placement::File(file) => {
                let existing = file.existing.as_ref().map_or("", |(text, _)| text.as_str());
                edit::append(existing, answer, language)
            }
        }
    }
}

/// The test file at `relative` (workspace-relative): its text if the editor has it open
/// or it exists on disk.
fn test_file(
    server: &TandemServer,
    config: &RequestConfig,
    relative: &str,
) -> Result<TestFile, ActionError> {
    let root = config.roots.first().cloned().unwrap_or_default();
    let path = root.join(relative);
    let uri = Url::from_file_path(&path).map_err(|()| ActionError::ReadFile {
        path: relative.to_owned(),
        reason: "not an absolute path (no workspace folder?)".to_owned(),
    })?;
    if let Ok(open) = server.documents.snapshot(uri.as_str()) {
        return Ok(TestFile {
            uri,
            existing: Some((open.text.to_string(), Some(open.version))),
        });
    }
    let existing = read_if_exists(&path).map_err(|reason| ActionError::ReadFile {
        path: relative.to_owned(),
        reason,
    })?;
    Ok(TestFile {
        uri,
        existing: existing.map(|text| (text, None)),
    })
}

fn read_if_exists(path: &Path) -> Result<Option<String>, String> {
    match std::fs::metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.to_string()),
        Ok(metadata) if metadata.len() > MAX_TEST_FILE_BYTES => Err(format!(
            "it is larger than {} MiB",
            MAX_TEST_FILE_BYTES >> 20
        )),
        Ok(_) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|error| error.to_string()),
    }
}

fn workspace_edit(
    uri: &str,
    version: i32,
    text: &ropey::Rope,
    placement: &Placement,
    edits: Vec<Replacement>,
    encoding: PositionEncoding,
    client: from_proto::ClientSupport,
) -> WorkspaceEdit {
    let Placement::File(file) = placement else {
        let edits = text_edits(text, edits, encoding);
        let Ok(uri) = Url::parse(uri) else {
            return WorkspaceEdit::default();
        };
        if client.document_changes {
            return WorkspaceEdit {
                document_changes: Some(DocumentChanges::Edits(vec![TextDocumentEdit {
                    text_document: OptionalVersionedTextDocumentIdentifier {
                        uri,
                        version: Some(version),
                    },
                    edits: edits.into_iter().map(OneOf::Left).collect(),
                }])),
                ..WorkspaceEdit::default()
            };
        }
        return WorkspaceEdit {
            changes: Some(HashMap::from([(uri, edits)])),
            ..WorkspaceEdit::default()
        };
    };
    let existing = file.existing.as_ref();
    let rope = ropey::Rope::from_str(existing.map_or("", |(text, _)| text.as_str()));
    let edits = text_edits(&rope, edits, encoding);
    if !client.document_changes {
        return WorkspaceEdit {
            changes: Some(HashMap::from([(file.uri.clone(), edits)])),
            ..WorkspaceEdit::default()
        };
    }
    let mut operations = Vec::new();
    if existing.is_none() {
        operations.push(DocumentChangeOperation::Op(ResourceOp::Create(
            CreateFile {
                uri: file.uri.clone(),
                options: Some(CreateFileOptions {
                    overwrite: Some(false),
                    ignore_if_exists: Some(true),
                }),
                annotation_id: None,
            },
        )));
    }
    operations.push(DocumentChangeOperation::Edit(TextDocumentEdit {
        text_document: OptionalVersionedTextDocumentIdentifier {
            uri: file.uri.clone(),
            version: existing.and_then(|(_, version)| *version),
        },
        edits: edits.into_iter().map(OneOf::Left).collect(),
    }));
    WorkspaceEdit {
        document_changes: Some(DocumentChanges::Operations(operations)),
        ..WorkspaceEdit::default()
    }
}

/// Whether `edit` needs the client to create a file it cannot.
pub(crate) fn needs_missing_support(
    edit: &WorkspaceEdit,
    client: from_proto::ClientSupport,
) -> bool {
    let creates = matches!(
        &edit.document_changes,
        Some(DocumentChanges::Operations(operations))
            if operations.iter().any(|operation| matches!(operation, DocumentChangeOperation::Op(ResourceOp::Create(_))))
    );
    creates && !client.create_files
}

fn text_edits(
    text: &ropey::Rope,
    edits: Vec<Replacement>,
    encoding: PositionEncoding,
) -> Vec<TextEdit> {
    edits
        .into_iter()
        .map(|edit| TextEdit {
            range: tower_lsp::lsp_types::Range::new(
                to_proto::position_at(text, edit.range.start, encoding),
                to_proto::position_at(text, edit.range.end, encoding),
            ),
            new_text: edit.text,
        })
        .collect()
}

/// The byte range of an LSP range, clamped to the document.
pub(crate) fn byte_range(
    text: &ropey::Rope,
    range: &tower_lsp::lsp_types::Range,
    encoding: PositionEncoding,
) -> std::ops::Range<usize> {
    let (start, _) = position::offset_of_clamped(text, from_proto::position(range.start), encoding);
    let (end, _) = position::offset_of_clamped(text, from_proto::position(range.end), encoding);
    start.0.min(end.0)..start.0.max(end.0)
}

fn chat_diagnostic(diagnostic: &Diagnostic) -> ChatDiagnostic {
    let severity = diagnostic.severity.map(|severity| {
        match severity {
            DiagnosticSeverity::ERROR => "error",
            DiagnosticSeverity::WARNING => "warning",
            DiagnosticSeverity::INFORMATION => "information",
            _ => "hint",
        }
        .to_owned()
    });
    let clip = |text: &str, limit: usize| {
        text.chars()
            .filter(|c| !c.is_control())
            .take(limit)
            .collect::<String>()
    };
    ChatDiagnostic {
        line: diagnostic.range.start.line.saturating_add(1),
        end_line: diagnostic
            .range
            .end
            .line
            .max(diagnostic.range.start.line)
            .saturating_add(1),
        severity,
        message: diagnostic.message.chars().take(4_000).collect(),
        source: diagnostic.source.as_deref().map(|source| clip(source, 64)),
        code: diagnostic.code.as_ref().map(|code| match code {
            NumberOrString::Number(number) => number.to_string(),
            NumberOrString::String(text) => clip(text, 64),
        }),
    }
}
