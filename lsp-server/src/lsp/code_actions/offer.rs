//! `textDocument/codeAction`: the actions that make sense for a range, without asking
//! the model anything.
//!
//! - Explain: a selection, or the item (function, type) under the cursor.
//! - Fix: only when the client reports diagnostics in the range; they travel with it.
//! - Document: an item without documentation, in a language whose convention is known.
//! - Generate tests: a function or method, in a language with a test convention.
//! - Simplify: a selection.

use serde_json::json;
use tandem_shared::chat::{doc_convention, test_placement};
use tandem_shared::ChatTask;
use tower_lsp::lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, Command, Range,
};

use super::{ActionData, APPLY_COMMAND, EXPLAIN_COMMAND};
use crate::actions::target::{self, Item};
use crate::document::{position, DocumentSnapshot, PositionEncoding};
use crate::lsp::from_proto::{self, ClientSupport};
use crate::lsp::to_proto;

/// Items longer than this are not offered whole to Fix: the model would have to repeat
/// hundreds of lines to change one; the lines around the problems are sent instead.
const MAX_FIX_ITEM_LINES: usize = 150;
/// Lines around a problem sent to Fix when the item is too long or there is none.
const FIX_CONTEXT_LINES: usize = 3;

/// The actions for `params` on `snapshot`, in the order they are shown.
pub(crate) fn actions(
    snapshot: &DocumentSnapshot,
    path: &str,
    params: &CodeActionParams,
    encoding: PositionEncoding,
    client: ClientSupport,
) -> Vec<CodeActionOrCommand> {
    let text = &snapshot.text;
    let (start, _) =
        position::offset_of_clamped(text, from_proto::position(params.range.start), encoding);
    let (end, _) =
        position::offset_of_clamped(text, from_proto::position(params.range.end), encoding);
    let (start, end) = (start.0.min(end.0), start.0.max(end.0));
    let selected = start < end && !crate::syntax::text_of(text, start..end).trim().is_empty();
    let item = snapshot
        .syntax
        .as_ref()
        .and_then(|syntax| target::item_at(&syntax.tree, text, syntax.language, start))
        // A selection reaching outside the item is about the selection, not the item.
        .filter(|item| !selected || (item.range.start <= start && end <= item.range.end));
    let language_id = snapshot.language_id.as_str();
    let offer = Offer {
        snapshot,
        encoding,
        client,
    };
    let mut offered = Vec::new();
    let wanted = |kind: &CodeActionKind| match &params.context.only {
        None => true,
        Some(only) => only.iter().any(|prefix| {
            kind.as_str() == prefix.as_str()
                || kind.as_str().starts_with(&format!("{}.", prefix.as_str()))
                || prefix.as_str().is_empty()
        }),
    };

    let explained = if selected {
        Some((start..end, "selection".to_owned()))
    } else {
        item.as_ref()
            .map(|item| (item.range.clone(), describe(item)))
    };
    if let Some((range, what)) = &explained {
        if wanted(&CodeActionKind::EMPTY) {
            offered.push(offer.explain(range.clone(), what, &params.context.diagnostics));
        }
    }

    let diagnostics = &params.context.diagnostics;
    if !diagnostics.is_empty() && wanted(&CodeActionKind::QUICKFIX) {
        let range = if selected {
            start..end
        } else {
            match &item {
                Some(item) if lines(snapshot, &item.range) <= MAX_FIX_ITEM_LINES => {
                    item.range.clone()
                }
                _ => around_diagnostics(snapshot, params),
            }
        };
        let title = match (diagnostics.len(), &item) {
            (1, _) => format!("Tandem: Fix \"{}\"", first_line(&diagnostics[0].message)),
            (_, Some(item)) if !selected => {
                format!("Tandem: Fix the problems in {}", describe(item))
            }
            _ => "Tandem: Fix these problems".to_owned(),
        };
        offered.push(offer.lazy(
            ChatTask::Fix,
            CodeActionKind::QUICKFIX,
            title,
            range,
            diagnostics.clone(),
        ));
    }

    if let Some(item) = &item {
        if !item.documented
            && doc_convention(language_id).is_some()
            && wanted(&CodeActionKind::REFACTOR_REWRITE)
        {
            offered.push(offer.lazy(
                ChatTask::Document,
                CodeActionKind::REFACTOR_REWRITE,
                format!("Tandem: Document {}", describe(item)),
                item.range.clone(),
                Vec::new(),
            ));
        }
        if item.is_function()
            && test_placement(language_id, path).is_some()
            && wanted(&CodeActionKind::REFACTOR)
        {
            offered.push(offer.lazy(
                ChatTask::GenerateTests,
                CodeActionKind::REFACTOR,
                format!("Tandem: Generate tests for {}", describe(item)),
                item.range.clone(),
                Vec::new(),
            ));
        }
    }

    if selected && wanted(&CodeActionKind::REFACTOR_REWRITE) {
        offered.push(offer.lazy(
            ChatTask::Simplify,
            CodeActionKind::REFACTOR_REWRITE,
            "Tandem: Simplify selection".to_owned(),
            start..end,
            Vec::new(),
        ));
    }
    offered
}

struct Offer<'a> {
    snapshot: &'a DocumentSnapshot,
    encoding: PositionEncoding,
    client: ClientSupport,
}

impl Offer<'_> {
    fn range(&self, bytes: std::ops::Range<usize>) -> Range {
        let text = &self.snapshot.text;
        Range::new(
            to_proto::position_at(text, bytes.start, self.encoding),
            to_proto::position_at(text, bytes.end, self.encoding),
        )
    }

    /// Explain runs as a command: nothing is asked of the model until it is executed.
    /// The problems reported in the range go along, so the explanation accounts for them.
    fn explain(
        &self,
        range: std::ops::Range<usize>,
        what: &str,
        diagnostics: &[tower_lsp::lsp_types::Diagnostic],
    ) -> CodeActionOrCommand {
        let mut argument = json!({
            "uri": self.snapshot.uri,
            "range": self.range(range),
        });
        if !diagnostics.is_empty() {
            argument["diagnostics"] = json!(diagnostics);
        }
        let command = Command {
            title: format!("Tandem: Explain {what}"),
            command: EXPLAIN_COMMAND.to_owned(),
            arguments: Some(vec![argument]),
        };
        if !self.client.action_literals {
            return CodeActionOrCommand::Command(command);
        }
        CodeActionOrCommand::CodeAction(CodeAction {
            title: command.title.clone(),
            kind: Some(CodeActionKind::EMPTY),
            command: Some(command),
            ..CodeAction::default()
        })
    }

    /// An action whose edit is computed when it is picked: resolved by
    /// `codeAction/resolve`, or through [`APPLY_COMMAND`] when the client cannot resolve
    /// an edit.
    fn lazy(
        &self,
        task: ChatTask,
        kind: CodeActionKind,
        title: String,
        range: std::ops::Range<usize>,
        diagnostics: Vec<tower_lsp::lsp_types::Diagnostic>,
    ) -> CodeActionOrCommand {
        let data = ActionData {
            uri: self.snapshot.uri.clone(),
            version: self.snapshot.version,
            task,
            range: self.range(range),
            diagnostics: diagnostics.clone(),
        };
        let data = serde_json::to_value(&data).unwrap_or_default();
        if !self.client.action_literals {
            return CodeActionOrCommand::Command(Command {
                title,
                command: APPLY_COMMAND.to_owned(),
                arguments: Some(vec![data]),
            });
        }
        let mut action = CodeAction {
            title: title.clone(),
            kind: Some(kind),
            diagnostics: Some(diagnostics).filter(|diagnostics| !diagnostics.is_empty()),
            ..CodeAction::default()
        };
        if self.client.resolve_edit {
            action.data = Some(data);
        } else {
            action.command = Some(Command {
                title,
                command: APPLY_COMMAND.to_owned(),
                arguments: Some(vec![data]),
            });
        }
        CodeActionOrCommand::CodeAction(action)
    }
}

/// `` `name` ``, or what kind of item it is.
fn describe(item: &Item) -> String {
    match &item.name {
        Some(name) => format!("`{name}`"),
        None => format!("this {}", format!("{:?}", item.kind).to_lowercase()),
    }
}

fn lines(snapshot: &DocumentSnapshot, range: &std::ops::Range<usize>) -> usize {
    let text = &snapshot.text;
    let end = range.end.min(text.len_bytes());
    text.byte_to_line(end) - text.byte_to_line(range.start.min(end)) + 1
}

/// Whole lines from a few above the first problem to a few below the last.
fn around_diagnostics(
    snapshot: &DocumentSnapshot,
    params: &CodeActionParams,
) -> std::ops::Range<usize> {
    let text = &snapshot.text;
    let last_line = text.len_lines().saturating_sub(1);
    let first = params
        .context
        .diagnostics
        .iter()
        .map(|diagnostic| diagnostic.range.start.line as usize)
        .min()
        .unwrap_or(0)
        .saturating_sub(FIX_CONTEXT_LINES)
        .min(last_line);
    let last = params
        .context
        .diagnostics
        .iter()
        .map(|diagnostic| diagnostic.range.end.line as usize)
        .max()
        .unwrap_or(0)
        .saturating_add(FIX_CONTEXT_LINES)
        .min(last_line);
    let start = text.line_to_byte(first);
    // Up to the end of the last line, without its line break.
    let end = if last + 1 < text.len_lines() {
        text.line_to_byte(last + 1).saturating_sub(1)
    } else {
        text.len_bytes()
    };
    start..end.max(start)
}

fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line.to_owned()
    }
}
