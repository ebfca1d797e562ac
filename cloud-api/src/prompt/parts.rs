//! The pieces every template is assembled from: other files' snippets as file blocks,
//! and the current file's imports and scope signatures that the prefix lost to its budget.

use tandem_shared::{CodeContext, CompletionRequest, Snippet};

use super::comment::CommentSyntax;

/// Path shown for a document that has none (an unsaved buffer).
const UNTITLED: &str = "untitled";

/// A snippet of another file (or of a distant part of this one), shown as a file block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileBlock<'a> {
    pub(crate) path: &'a str,
    /// The snippet without trailing whitespace; renderers end it with one line break.
    pub(crate) text: &'a str,
}

/// The request's context, ready to be placed by a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parts<'a> {
    /// Snippets in prompt order: least useful first, so the most useful one ends up
    /// nearest the cursor, where models attend most.
    pub(crate) files: Vec<FileBlock<'a>>,
    /// Imports, then enclosing scope signatures, that are not already in the prefix, one
    /// per line, to be placed right before the prefix. Empty when there are none.
    pub(crate) current: String,
    /// The current document's path for headers (`untitled` when it has none).
    pub(crate) path: &'a str,
}

/// Shown path of a document: its path, or `untitled`.
pub(crate) fn display_path(path: &str) -> &str {
    if path.is_empty() {
        UNTITLED
    } else {
        path
    }
}

pub(crate) fn collect(request: &CompletionRequest) -> Parts<'_> {
    collect_around(
        &request.context,
        &request.prefix,
        &request.suffix,
        &request.path,
    )
}

/// [`collect`] for any request with a context around a prefix and a suffix.
pub(crate) fn collect_around<'a>(
    context: &'a CodeContext,
    prefix: &str,
    suffix: &str,
    path: &'a str,
) -> Parts<'a> {
    // Lists arrive most useful first; definitions matter most, recent edits least. The
    // prompt reads in the opposite order so that the best snippet is nearest the cursor.
    let ordered = context
        .recent_edits
        .iter()
        .rev()
        .chain(context.similar.iter().rev())
        .chain(context.definitions.iter().rev());
    let mut files: Vec<FileBlock<'_>> = Vec::new();
    for snippet in ordered {
        if let Some(block) = file_block(prefix, suffix, snippet) {
            // The same region can be both a definition and a similar snippet.
            if !files
                .iter()
                .any(|seen| seen.path == block.path && seen.text == block.text)
            {
                files.push(block);
            }
        }
    }

    let mut current = String::new();
    let missing = |item: &&String| {
        let item = item.trim();
        !item.is_empty() && !prefix.contains(item)
    };
    let imports: Vec<&String> = context.imports.iter().filter(missing).collect();
    for import in &imports {
        current.push_str(import.trim_end());
        current.push('\n');
    }
    let scopes: Vec<&String> = context.scopes.iter().filter(missing).collect();
    if !imports.is_empty() && !scopes.is_empty() {
        current.push('\n');
    }
    for scope in &scopes {
        current.push_str(scope.trim_end());
        current.push('\n');
    }

    Parts {
        files,
        current,
        path: display_path(path),
    }
}

/// A snippet as a block, or `None` when it adds nothing: blank, or text the prefix or
/// suffix already shows the model (a recent edit right around the cursor).
fn file_block<'a>(prefix: &str, suffix: &str, snippet: &'a Snippet) -> Option<FileBlock<'a>> {
    let trimmed = snippet.text.trim();
    if trimmed.is_empty() || prefix.contains(trimmed) || suffix.contains(trimmed) {
        return None;
    }
    // Leading blank lines carry nothing; trailing ones would split the block from its header.
    let text = snippet.text.trim_start_matches(['\n', '\r']).trim_end();
    Some(FileBlock {
        path: display_path(&snippet.path),
        text,
    })
}

/// Other files as comment-headed blocks, then a header for the current file and its
/// missing imports and scopes: what goes before the prefix in families without
/// file-separator tokens (and for `template = "none"`). Empty without context.
pub(crate) fn commented_preamble(request: &CompletionRequest, parts: &Parts<'_>) -> String {
    let comment = CommentSyntax::detect(&request.language, &request.path);
    let mut out = commented_files(comment, parts);
    if !parts.files.is_empty() {
        out.push_str(&comment.comment(&format!("Path: {}", parts.path)));
        out.push('\n');
    }
    out.push_str(&parts.current);
    out
}

/// Only the other files, each as `<comment> Path: p` + text + a blank line.
pub(crate) fn commented_files(comment: CommentSyntax, parts: &Parts<'_>) -> String {
    let mut out = String::new();
    for block in &parts.files {
        out.push_str(&comment.comment(&format!("Path: {}", block.path)));
        out.push('\n');
        out.push_str(block.text);
        out.push_str("\n\n");
    }
    out
}
