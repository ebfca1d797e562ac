//! Conversions from LSP types to the server's own.

use std::path::PathBuf;

use tower_lsp::lsp_types::{
    ClientCapabilities, InitializeParams, MarkupKind, Position, PositionEncodingKind,
    ResourceOperationKind, TextDocumentContentChangeEvent, Url,
};

use crate::context;
use crate::document::{ContentChange, LspPosition, PositionEncoding};

pub(crate) fn position(position: Position) -> LspPosition {
    LspPosition::new(position.line, position.character)
}

pub(crate) fn inline_position(position: tandem_shared::inline_completion::Position) -> LspPosition {
    LspPosition::new(position.line, position.character)
}

pub(crate) fn content_change(change: TextDocumentContentChangeEvent) -> ContentChange {
    ContentChange {
        range: change
            .range
            .map(|range| (self::position(range.start), self::position(range.end))),
        text: change.text,
    }
}

/// UTF-8 when the client offers it (no transcoding needed), else the mandatory UTF-16.
pub(crate) fn position_encoding(capabilities: &ClientCapabilities) -> PositionEncoding {
    let offers_utf8 = capabilities
        .general
        .as_ref()
        .and_then(|general| general.position_encodings.as_ref())
        .is_some_and(|encodings| encodings.contains(&PositionEncodingKind::UTF8));
    if offers_utf8 {
        PositionEncoding::Utf8
    } else {
        PositionEncoding::Utf16
    }
}

/// What the client can do with the server's code actions and explanations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClientSupport {
    /// `codeAction/resolve` may fill in `edit`: actions are offered without one.
    pub(crate) resolve_edit: bool,
    /// Code action literals (otherwise only commands can be offered).
    pub(crate) action_literals: bool,
    /// Versioned `documentChanges` in a `WorkspaceEdit`.
    pub(crate) document_changes: bool,
    /// `CreateFile` operations in a `WorkspaceEdit` (a new test file).
    pub(crate) create_files: bool,
    /// `window/workDoneProgress/create`.
    pub(crate) work_done_progress: bool,
    /// `window/showDocument`.
    pub(crate) show_document: bool,
    /// Markdown in a completion item's `documentation`.
    pub(crate) completion_markdown: bool,
    /// `experimental.tandem.statusNotifications`: the client handles
    /// `tandem/didChangeStatus` (docs/editors/PROTOCOL.md).
    pub(crate) status_notifications: bool,
}

pub(crate) fn client_support(capabilities: &ClientCapabilities) -> ClientSupport {
    let code_action = capabilities
        .text_document
        .as_ref()
        .and_then(|text| text.code_action.as_ref());
    let workspace_edit = capabilities
        .workspace
        .as_ref()
        .and_then(|workspace| workspace.workspace_edit.as_ref());
    let window = capabilities.window.as_ref();
    ClientSupport {
        resolve_edit: code_action
            .and_then(|action| action.resolve_support.as_ref())
            .is_some_and(|support| support.properties.iter().any(|name| name == "edit")),
        action_literals: code_action
            .is_some_and(|action| action.code_action_literal_support.is_some()),
        document_changes: workspace_edit
            .and_then(|edit| edit.document_changes)
            .unwrap_or(false),
        create_files: workspace_edit
            .and_then(|edit| edit.resource_operations.as_ref())
            .is_some_and(|operations| operations.contains(&ResourceOperationKind::Create)),
        work_done_progress: window
            .and_then(|window| window.work_done_progress)
            .unwrap_or(false),
        show_document: window
            .and_then(|window| window.show_document.as_ref())
            .is_some_and(|show| show.support),
        // Markdown unless the client lists formats without it: Helix lists none yet
        // renders completion documentation as Markdown, and a fenced block still reads
        // well as plain text.
        completion_markdown: capabilities
            .text_document
            .as_ref()
            .and_then(|text| text.completion.as_ref())
            .and_then(|completion| completion.completion_item.as_ref())
            .and_then(|item| item.documentation_format.as_ref())
            .is_none_or(|formats| formats.contains(&MarkupKind::Markdown)),
        status_notifications: capabilities
            .experimental
            .as_ref()
            .and_then(|experimental| experimental.get("tandem"))
            .and_then(|tandem| tandem.get("statusNotifications"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
    }
}

/// Workspace roots as file paths: the workspace folders, else the deprecated `rootUri`.
pub(crate) fn workspace_roots(params: &InitializeParams) -> Vec<PathBuf> {
    let folders: Vec<PathBuf> = params
        .workspace_folders
        .iter()
        .flatten()
        .filter_map(|folder| folder.uri.to_file_path().ok())
        .collect();
    if !folders.is_empty() {
        return folders;
    }
    #[allow(deprecated)]
    // `rootUri` is deprecated in favour of folders, but clients still send only it.
    params
        .root_uri
        .iter()
        .filter_map(|uri| uri.to_file_path().ok())
        .collect()
}

/// The `path` of a completion request: workspace-relative for files, the last path
/// segment for anything else (`untitled:Untitled-1`).
pub(crate) fn document_path(uri: &str, roots: &[PathBuf]) -> String {
    match Url::parse(uri) {
        Ok(url) => match url.to_file_path() {
            Ok(path) => context::workspace_relative_path(&path, roots),
            Err(()) => {
                let last = url.path().rsplit('/').next().unwrap_or_default();
                context::file_name_or_untitled(std::path::Path::new(last))
            }
        },
        Err(_) => "untitled".to_owned(),
    }
}

/// The file-system path of a `file:` URI; `None` for unsaved buffers and other schemes.
pub(crate) fn file_path(uri: &str) -> Option<PathBuf> {
    Url::parse(uri).ok()?.to_file_path().ok()
}

/// The store key for a URI string: the same normalisation `lsp_types::Url` applies to
/// the standard methods, so the custom method finds the same document.
pub(crate) fn document_key(uri: &str) -> String {
    Url::parse(uri).map_or_else(|_| uri.to_owned(), String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_documents() {
        let roots = vec![PathBuf::from("/ws")];
        assert_eq!(
            document_path("file:///ws/src/a%20b.rs", &roots),
            "src/a b.rs"
        );
        assert_eq!(document_path("file:///other/x.py", &roots), "x.py");
        assert_eq!(document_path("untitled:Untitled-1", &roots), "Untitled-1");
        assert_eq!(document_path("not a uri", &roots), "untitled");
    }

    #[test]
    fn document_keys_match_url_normalisation() {
        assert_eq!(document_key("FILE:///a.rs"), "file:///a.rs");
        assert_eq!(
            document_key("file:///a.rs"),
            Url::parse("file:///a.rs").unwrap().to_string()
        );
    }
}
