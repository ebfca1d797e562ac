//! A fast typist, end to end: a burst of keystrokes, each an edit and an automatic
//! inline completion request, the editor cancelling each request the next keystroke
//! supersedes. The language server must debounce and abort so the provider sees at
//! most two calls (llm-ls and lsp-ai make one per keystroke), answer every request
//! exactly once, and never show a suggestion made for text that is gone.

use std::time::{Duration, Instant};

use serde_json::json;
use tandem_e2e::lsp_client::REQUEST_CANCELLED;
use tandem_e2e::{CloudOptions, ProviderConfig, ProviderFixture, RecordedRequest, RpcError};

use crate::support::{inline_items, Editor, Stack, MODEL};

const KEYSTROKES: usize = 40;
const INTERVAL: Duration = Duration::from_millis(30);
const PROVIDER_DELAY: Duration = Duration::from_millis(50);
const DEBOUNCE_MS: u64 = 75;
const ANCHOR: &str = "let total = ";

/// The provider's reply names the word typed after [`ANCHOR`] in what it was given,
/// whatever template the cloud wrapped the prefix in, so every answer says which text
/// it was made for.
fn reply_for(prompt: &str) -> String {
    let typed = prompt
        .rfind(ANCHOR)
        .map(|at| &prompt[at + ANCHOR.len()..])
        .unwrap_or_default();
    let word: String = typed
        .chars()
        .take_while(|character| character.is_alphanumeric() || *character == '_')
        .collect();
    format!("/* after {word} */")
}

/// Automatic (`triggerKind` 2), as editors send while the user types.
fn automatic(uri: &str, position: tandem_shared::inline_completion::Position) -> serde_json::Value {
    json!({"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 2}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typing_burst_makes_at_most_two_upstream_calls_and_shows_nothing_stale() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    let stack = Stack::start_with(
        CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL)),
        Some(provider),
        false,
        json!({"debounceMs": DEBOUNCE_MS}),
    )
    .await;
    stack.provider().set_delay(PROVIDER_DELAY);
    stack
        .provider()
        .reply_with(|request: &RecordedRequest| reply_for(request.prompt().unwrap_or_default()));

    let mut editor = Editor::open(
        &stack.lsp,
        "src/burst.rs",
        "rust",
        &format!("fn main() {{\n    {ANCHOR}\n}}\n"),
    )
    .await;
    let word = "accumulated_values_of_every_item_in_list";
    assert_eq!(word.len(), KEYSTROKES);

    let mut pending = Vec::new();
    let mut previous_id = None;
    let mut next_keystroke = Instant::now();
    let mut last_keystroke = Instant::now();
    for (index, character) in word.char_indices() {
        tokio::time::sleep_until(next_keystroke.into()).await;
        next_keystroke += INTERVAL;
        let cursor = editor.position_after(&format!("{ANCHOR}{}", &word[..index]));
        editor.insert_at(cursor, &character.to_string()).await;
        last_keystroke = Instant::now();
        // The editor cancels the request the new keystroke made obsolete.
        if let Some(id) = previous_id {
            stack
                .lsp
                .notify("$/cancelRequest", json!({"id": id}))
                .await
                .expect("cancel");
        }
        let cursor = editor.position_after(&format!("{ANCHOR}{}", &word[..=index]));
        let request = stack
            .lsp
            .start_request(
                "textDocument/inlineCompletion",
                automatic(&editor.uri, cursor),
            )
            .await
            .expect("send inlineCompletion");
        previous_id = Some(request.id());
        pending.push((word[..=index].to_owned(), request));
    }

    let mut cancelled = 0;
    let mut empty = 0;
    let last = pending.len() - 1;
    let mut final_latency = Duration::ZERO;
    for (index, (typed, request)) in pending.into_iter().enumerate() {
        let answer = request.response().await;
        if index == last {
            final_latency = last_keystroke.elapsed();
        }
        match answer {
            Ok(result) => {
                let items = inline_items(&result);
                if index == last {
                    assert_eq!(
                        items.len(),
                        1,
                        "the final request is answered: {result}\n{}",
                        stack.logs()
                    );
                }
                for item in items {
                    // Whatever is shown was made for exactly the text it is shown on.
                    assert_eq!(
                        item["insertText"],
                        reply_for(&format!("{ANCHOR}{typed}")),
                        "keystroke {index}: a stale suggestion\n{}",
                        stack.logs()
                    );
                }
                if index != last && inline_items(&result).is_empty() {
                    empty += 1;
                }
            }
            Err(RpcError::Response { code, .. }) if code == REQUEST_CANCELLED && index != last => {
                cancelled += 1;
            }
            Err(error) => panic!("keystroke {index}: {error}\n{}", stack.logs()),
        }
    }
    // Every request was answered exactly once: a second answer to an id would be logged
    // by the client as a response to an unknown id.
    assert!(
        !stack.lsp.stderr().contains("response to unknown id"),
        "{}",
        stack.logs()
    );
    let calls = stack.provider().request_count();
    assert!(calls <= 2, "{calls} upstream calls\n{}", stack.logs());
    assert!(calls >= 1);
    // Generous on a loaded test machine; docs/PERFORMANCE.md has the measured numbers.
    assert!(
        final_latency
            < Duration::from_millis(DEBOUNCE_MS) + PROVIDER_DELAY + Duration::from_secs(1),
        "{final_latency:?}"
    );
    eprintln!(
        "typing burst: {calls} upstream calls, {cancelled} cancelled, {empty} empty, final suggestion {final_latency:?} after the last keystroke"
    );
    stack.shutdown().await;
}
