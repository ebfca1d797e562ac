//! Edits and requests sent back to back, as a fast typist's editor sends them: every
//! answer must come from the document exactly as it was when its request was sent.

use std::collections::HashSet;

use tandem_e2e::lsp_client::{CONTENT_MODIFIED, REQUEST_CANCELLED};
use tandem_e2e::{LspClient, ProviderConfig, RecordedRequest, RpcError};

use crate::support::{empty_range_at, inline_items, Editor, Stack, MODEL};

const ROUNDS: usize = 50;

/// The fixture's reply: names the state of the document it was given.
fn echo(prefix: &str) -> String {
    let last_line = prefix.rsplit('\n').next().unwrap_or_default();
    format!("echo({}|{})", prefix.lines().count(), last_line.trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_edits_and_requests_see_exactly_the_preceding_edits() {
    let stack = Stack::start(|fixture| ProviderConfig::ollama(fixture, MODEL), false).await;
    stack
        .provider()
        .reply_with(|request: &RecordedRequest| echo(request.prompt().unwrap_or_default()));
    let mut editor = Editor::open(&stack.lsp, "src/steps.rs", "rust", "let step_0 = ").await;

    let mut states = vec![editor.model.text().to_owned()];
    let mut pending = Vec::new();
    for round in 1..=ROUNDS {
        // Mostly typing a new line at the end; every third edit deletes the first line,
        // so the document also shrinks and shifts under later requests.
        if round % 3 == 0 {
            let first_line_end = editor.model.text().find('\n').map(|at| at + 1);
            if let Some(first_line_end) = first_line_end {
                let end = editor.model.position(first_line_end, editor.encoding);
                let start = editor.model.position(0, editor.encoding);
                editor
                    .replace(tandem_shared::inline_completion::Range { start, end }, "")
                    .await;
            }
        } else {
            let end = editor.end();
            editor
                .insert_at(end, &format!("\nlet step_{round} = "))
                .await;
        }
        let cursor = editor.end();
        let expected = echo(editor.model.text());
        states.push(editor.model.text().to_owned());
        let request = stack
            .lsp
            .start_request(
                "textDocument/inlineCompletion",
                LspClient::inline_completion_params(&editor.uri, cursor),
            )
            .await
            .expect("send inlineCompletion");
        pending.push((round, cursor, expected, request));
    }

    let mut answered = 0;
    let mut empty = 0;
    let mut cancelled = 0;
    for (round, cursor, expected, request) in pending {
        match request.response().await {
            Ok(result) => {
                let items = inline_items(&result);
                if items.is_empty() {
                    empty += 1;
                    assert_ne!(
                        round,
                        ROUNDS,
                        "the last request has no later edit and must be answered: {result}\n{}",
                        stack.logs()
                    );
                    continue;
                }
                answered += 1;
                assert_eq!(
                    items[0]["insertText"], expected,
                    "round {round}: the answer reflects a different document state"
                );
                assert_eq!(
                    items[0]["range"],
                    serde_json::to_value(empty_range_at(cursor)).unwrap(),
                    "round {round}"
                );
            }
            // A request overtaken by a later edit may be cancelled instead (LSP 3.17,
            // `ContentModified`), but never the last one.
            Err(RpcError::Response { code, .. })
                if (code == CONTENT_MODIFIED || code == REQUEST_CANCELLED) && round != ROUNDS =>
            {
                cancelled += 1;
            }
            Err(error) => panic!("round {round}: {error}\n{}", stack.logs()),
        }
    }
    assert!(answered >= 1, "at least the last request is answered");

    // Whatever the provider was asked, it was asked about a document state that existed:
    // never a half-applied edit.
    let states: HashSet<String> = states.into_iter().collect();
    for request in stack.provider().requests() {
        let prompt = request.prompt().unwrap_or_default();
        assert!(
            states.contains(prompt),
            "the provider saw a document that never existed: {prompt:?}"
        );
        assert_eq!(request.suffix(), Some(""));
    }
    eprintln!("pipelined: {answered} answered, {empty} empty, {cancelled} cancelled");
    stack.shutdown().await;
}

/// An edit and the request after it leave back to back, and nothing later overtakes the
/// request, so it must be answered, and from the edited text. A server that handles
/// notifications and requests concurrently (tower-lsp issue #284) fails this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_sent_right_after_an_edit_sees_that_edit() {
    let stack = Stack::start(|fixture| ProviderConfig::ollama(fixture, MODEL), false).await;
    stack
        .provider()
        .reply_with(|request: &RecordedRequest| echo(request.prompt().unwrap_or_default()));
    let mut editor = Editor::open(&stack.lsp, "src/steps.rs", "rust", "let step_0 = ").await;
    for round in 1..=25 {
        if round % 4 == 0 {
            // Replace the whole last line: a multi-character deletion and insertion.
            let last_line_start = editor.model.text().rfind('\n').map_or(0, |at| at + 1);
            let start = editor.model.position(last_line_start, editor.encoding);
            let end = editor.end();
            editor
                .replace(
                    tandem_shared::inline_completion::Range { start, end },
                    &format!("let replaced_{round} = "),
                )
                .await;
        } else {
            let end = editor.end();
            editor
                .insert_at(end, &format!("\nlet step_{round} = "))
                .await;
        }
        let cursor = editor.end();
        let result = stack
            .lsp
            .inline_completion(&editor.uri, cursor)
            .await
            .unwrap_or_else(|error| panic!("round {round}: {error}\n{}", stack.logs()));
        let items = inline_items(&result);
        assert_eq!(items.len(), 1, "round {round}: {result}\n{}", stack.logs());
        assert_eq!(
            items[0]["insertText"],
            echo(editor.model.text()),
            "round {round}: the answer does not reflect the edit sent just before it"
        );
    }
    stack.shutdown().await;
}
