//! `textDocument/inlineCompletion` (LSP 3.18) types.
//!
//! tower-lsp 0.20 is built on an lsp-types that predates 3.18, so the language server
//! registers this method as a custom one and (de)serialises these types. They mirror
//! the specification field for field; positions are in the negotiated encoding.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDocumentIdentifier {
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineCompletionParams {
    pub text_document: TextDocumentIdentifier,
    pub position: Position,
    /// Absent from some clients; the spec makes it mandatory, we do not insist.
    #[serde(default)]
    pub context: Option<InlineCompletionContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_done_token: Option<serde_json_value::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineCompletionContext {
    pub trigger_kind: InlineCompletionTriggerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_completion_info: Option<SelectedCompletionInfo>,
}

/// 1 = invoked explicitly by the user, 2 = triggered automatically while typing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "u8", into = "u8")]
pub enum InlineCompletionTriggerKind {
    Invoked,
    Automatic,
}

impl From<u8> for InlineCompletionTriggerKind {
    fn from(value: u8) -> Self {
        if value == 1 {
            InlineCompletionTriggerKind::Invoked
        } else {
            InlineCompletionTriggerKind::Automatic
        }
    }
}

impl From<InlineCompletionTriggerKind> for u8 {
    fn from(kind: InlineCompletionTriggerKind) -> u8 {
        match kind {
            InlineCompletionTriggerKind::Invoked => 1,
            InlineCompletionTriggerKind::Automatic => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedCompletionInfo {
    pub range: Range,
    pub text: String,
}

/// The result: a list of items (the spec also allows a bare array; we always send this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineCompletionList {
    pub items: Vec<InlineCompletionItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineCompletionItem {
    /// Text to insert; a plain string (the spec also allows a snippet, which we never send).
    pub insert_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
}

/// A tiny stand-in so this crate needs no serde_json: work-done tokens are either an
/// integer or a string and we never look inside them.
pub mod serde_json_value {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Value {
        Number(i64),
        String(String),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_params_as_vscode_sends_them() {
        let params: InlineCompletionParams = serde_json::from_str(
            r#"{"textDocument":{"uri":"file:///a.rs"},"position":{"line":1,"character":2},
                "context":{"triggerKind":2,"selectedCompletionInfo":null}}"#,
        )
        .unwrap();
        assert_eq!(
            params.position,
            Position {
                line: 1,
                character: 2
            }
        );
        assert_eq!(
            params.context.unwrap().trigger_kind,
            InlineCompletionTriggerKind::Automatic
        );
    }

    #[test]
    fn list_serialises_in_spec_shape() {
        let list = InlineCompletionList {
            items: vec![InlineCompletionItem {
                insert_text: "x + 1".into(),
                filter_text: None,
                range: Some(Range {
                    start: Position {
                        line: 0,
                        character: 4,
                    },
                    end: Position {
                        line: 0,
                        character: 4,
                    },
                }),
            }],
        };
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"items":[{"insertText":"x + 1","range":{"start":{"line":0,"character":4},"end":{"line":0,"character":4}}}]}"#
        );
    }
}
