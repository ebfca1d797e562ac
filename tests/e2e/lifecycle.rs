//! Requests that do not finish normally: cancelled by the editor, overtaken by an edit,
//! or slower than the configured timeout.

use std::time::Duration;

use serde_json::json;
use tandem_e2e::lsp_client::{CONTENT_MODIFIED, REQUEST_CANCELLED};
use tandem_e2e::{CloudOptions, LspClient, ProviderConfig, ProviderFixture, RpcError};

use crate::support::{inline_items, within, Editor, Stack, MODEL};

const SOURCE: &str = "fn main() {\n    let answer = \n}\n";

/// `$/cancelRequest` ends an inline completion waiting on a slow provider at once, with
/// exactly one response: `RequestCancelled` (or, acceptably, an empty list).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_answers_promptly() {
    let stack = Stack::start(|fixture| ProviderConfig::ollama(fixture, MODEL), false).await;
    stack.provider().set_delay(Duration::from_secs(4));
    let editor = Editor::open(&stack.lsp, "src/main.rs", "rust", SOURCE).await;
    let cursor = editor.position_after("let answer = ");
    let pending = stack
        .lsp
        .start_request(
            "textDocument/inlineCompletion",
            LspClient::inline_completion_params(&editor.uri, cursor),
        )
        .await
        .expect("send");
    // Cancel once the provider has the request, so the server really is waiting on it.
    stack
        .provider()
        .wait_for_requests(1, Duration::from_secs(3))
        .await
        .unwrap_or_else(|error| panic!("{error:#}\n{}", stack.logs()));
    stack
        .lsp
        .notify("$/cancelRequest", json!({"id": pending.id()}))
        .await
        .expect("cancel");
    let (response, elapsed) = within(
        Duration::from_secs(2),
        "the answer to a cancelled request",
        pending.response(),
    )
    .await;
    match response {
        Err(RpcError::Response { code, .. }) if code == REQUEST_CANCELLED => {}
        Ok(result) if inline_items(&result).is_empty() => {}
        other => panic!("after {elapsed:?}: {other:?}"),
    }
    stack.shutdown().await;
}

/// A suggestion computed for a document that changed meanwhile would land in the wrong
/// place; it must not reach the editor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestion_for_a_changed_document_is_not_delivered() {
    let stack = Stack::start(|fixture| ProviderConfig::ollama(fixture, MODEL), false).await;
    stack.provider().set_delay(Duration::from_millis(800));
    stack.provider().reply_with_text("stale_suggestion");
    let mut editor = Editor::open(&stack.lsp, "src/main.rs", "rust", SOURCE).await;
    let cursor = editor.position_after("let answer = ");
    let pending = stack
        .lsp
        .start_request(
            "textDocument/inlineCompletion",
            LspClient::inline_completion_params(&editor.uri, cursor),
        )
        .await
        .expect("send");
    stack
        .provider()
        .wait_for_requests(1, Duration::from_secs(3))
        .await
        .unwrap_or_else(|error| panic!("{error:#}\n{}", stack.logs()));
    editor.insert_at(cursor, "4").await;
    match pending.response().await {
        Err(RpcError::Response { code, .. })
            if code == CONTENT_MODIFIED || code == REQUEST_CANCELLED => {}
        Ok(result) if inline_items(&result).is_empty() => {}
        other => panic!(
            "a suggestion for version 1 was delivered after version 2 arrived: {other:?}\n{}",
            stack.logs()
        ),
    }
    stack.shutdown().await;
}

/// `requestTimeoutMs` bounds how long the editor waits, whatever the provider does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_option_bounds_the_wait() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    provider.set_delay(Duration::from_secs(5));
    let stack = Stack::start_with(
        CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL)),
        Some(provider),
        false,
        json!({"requestTimeoutMs": 500}),
    )
    .await;
    let editor = Editor::open(&stack.lsp, "src/main.rs", "rust", SOURCE).await;
    let cursor = editor.position_after("let answer = ");
    let (result, elapsed) = within(
        Duration::from_millis(2500),
        "a completion with requestTimeoutMs = 500 and a 5 s provider",
        stack.lsp.inline_completion(&editor.uri, cursor),
    )
    .await;
    let result = result.unwrap_or_else(|error| panic!("{error}\n{}", stack.logs()));
    assert!(
        inline_items(&result).is_empty(),
        "after {elapsed:?}: {result}"
    );
    assert!(stack.lsp.notifications("window/showMessage").len() <= 1);
    stack.shutdown().await;
}

/// After `didClose` the document is unknown again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_document_is_forgotten() {
    let stack = Stack::start(|fixture| ProviderConfig::ollama(fixture, MODEL), false).await;
    let editor = Editor::open(&stack.lsp, "src/main.rs", "rust", SOURCE).await;
    let cursor = editor.position_after("let answer = ");
    let result = stack
        .lsp
        .inline_completion(&editor.uri, cursor)
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", stack.logs()));
    assert_eq!(inline_items(&result).len(), 1, "{result}");
    stack.lsp.did_close(&editor.uri).await.expect("didClose");
    let error = stack
        .lsp
        .inline_completion(&editor.uri, cursor)
        .await
        .expect_err("a request on a closed document");
    assert!(error.message().is_some_and(|message| !message.is_empty()));
    stack.shutdown().await;
}
