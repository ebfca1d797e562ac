//! The happy paths: edits in the editor reach the model provider exactly, and its text
//! comes back as an inline completion and as a completion item.

use serde_json::{json, Value};
use tandem_e2e::{CloudOptions, Encoding, LspClient, ProviderConfig, RecordedRequest};
use tandem_shared::CompletionResponse;

use crate::support::{
    completion_items, empty_range_at, inline_items, text_edit, Editor, Stack, MODEL, PROVIDER_KEY,
};

/// Emoji (surrogate pairs in UTF-16, four bytes in UTF-8), CJK (one UTF-16 unit, three
/// bytes) and CRLF line ends: the three ways positions and offsets drift apart.
const INITIAL_RUST: &str =
    "// 日本語のコメント 😀\r\nfn main() {\r\n    let greeting = \"héllo\";\r\n}\r\n";

const REPLY: &str = "compute_total(&message) + 1;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_sees_exact_context_after_incremental_utf16_edits() {
    edits_reach_the_provider_exactly(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_sees_exact_context_after_incremental_utf8_edits() {
    edits_reach_the_provider_exactly(true).await;
}

async fn edits_reach_the_provider_exactly(offer_utf8: bool) {
    let stack = Stack::start(|fixture| ProviderConfig::ollama(fixture, MODEL), offer_utf8).await;
    let expected_encoding = if offer_utf8 {
        Encoding::Utf8
    } else {
        Encoding::Utf16
    };
    assert_eq!(
        stack.lsp.encoding(),
        expected_encoding,
        "the server must choose utf-8 when offered, and utf-16 otherwise"
    );
    stack.provider().reply_with_text(REPLY);

    let mut editor = Editor::open(&stack.lsp, "src/main.rs", "rust", INITIAL_RUST).await;
    // Insertion of a new line after a non-ASCII character.
    editor
        .insert_after("\"héllo\";", "\r\n    let emoji = \"🎉🎉\";")
        .await;
    // Deletion of a surrogate pair at the end of a line.
    editor.replace_text(" 😀", "").await;
    // Multi-line replacement across a CRLF.
    editor
        .replace_text(
            "main() {\r\n    let greeting",
            "run() {\r\n    // 変更\r\n    let message",
        )
        .await;
    // Insertion between two surrogate pairs.
    editor.insert_after("🎉", "✨x").await;
    // Deletion of a whole line, terminator included.
    editor.replace_text("    // 変更\r\n", "").await;
    // The line being typed, with code after it.
    editor
        .insert_after(
            "\"🎉✨x🎉\";",
            "\r\n    let total = \r\n    println!(\"{total}\");",
        )
        .await;
    // A trailing line with a bare LF, so line ends are mixed.
    let end = editor.end();
    editor.insert_at(end, "// 終わり 😀\n").await;
    // Typing a character just before the cursor position, then deleting it again.
    editor.insert_after("let total =", "!").await;
    editor.replace_text("=!", "=").await;

    assert_eq!(
        editor.model.text(),
        "// 日本語のコメント\r\nfn run() {\r\n    let message = \"héllo\";\r\n    let emoji = \"🎉✨x🎉\";\r\n    let total = \r\n    println!(\"{total}\");\r\n}\r\n// 終わり 😀\n",
        "the test's own model of the edits"
    );
    let cursor = editor.position_after("let total = ");
    let (prefix, suffix) = editor.split_at(cursor);

    let result = stack
        .lsp
        .inline_completion(&editor.uri, cursor)
        .await
        .unwrap_or_else(|error| panic!("inlineCompletion failed: {error}\n{}", stack.logs()));
    let items = inline_items(&result);
    assert_eq!(items.len(), 1, "{result}\n{}", stack.logs());
    assert_eq!(items[0]["insertText"], REPLY, "{result}");
    assert_eq!(
        items[0]["range"],
        serde_json::to_value(empty_range_at(cursor)).unwrap(),
        "the inline completion must be anchored at the cursor: {result}"
    );

    let provider_requests = stack.provider().requests();
    assert_eq!(
        provider_requests.len(),
        1,
        "{provider_requests:#?}\n{}",
        stack.logs()
    );
    let provider_request = &provider_requests[0];
    assert_eq!(provider_request.method, "POST");
    assert_eq!(provider_request.path, "/api/generate");
    assert_eq!(provider_request.model(), Some(MODEL));
    assert_eq!(provider_request.prompt(), Some(prefix.as_str()));
    assert_eq!(provider_request.suffix(), Some(suffix.as_str()));
    assert_eq!(
        provider_request.body.get("stream"),
        Some(&Value::Bool(false)),
        "the contract asks Ollama for a single JSON answer: {}",
        provider_request.body
    );

    let cloud_requests = stack.proxy.completions();
    assert_eq!(cloud_requests.len(), 1, "{cloud_requests:#?}");
    assert_cloud_request(
        &cloud_requests[0],
        &stack,
        "rust",
        "src/main.rs",
        &prefix,
        &suffix,
    );

    // The same suggestion as a completion item; no word is being typed at the cursor.
    let result = stack
        .lsp
        .completion(&editor.uri, cursor)
        .await
        .unwrap_or_else(|error| panic!("completion failed: {error}\n{}", stack.logs()));
    let items = completion_items(&result);
    assert_eq!(items.len(), 1, "{result}");
    assert_eq!(
        result.get("isIncomplete"),
        Some(&Value::Bool(true)),
        "{result}"
    );
    let (range, new_text) = text_edit(&items[0]);
    assert!(new_text.ends_with(REPLY), "{result}");
    assert_eq!(range, empty_range_at(cursor), "{result}");

    // Typing a word: the completion item replaces the word typed so far.
    editor.insert_at(cursor, "comp").await;
    let word_cursor = editor.position_after("let total = comp");
    stack.provider().reply_with_text("ute_total(&message) + 1;");
    let requests_before = stack.provider().request_count();
    let result = stack
        .lsp
        .completion(&editor.uri, word_cursor)
        .await
        .unwrap_or_else(|error| panic!("completion failed: {error}\n{}", stack.logs()));
    let items = completion_items(&result);
    assert_eq!(items.len(), 1, "{result}\n{}", stack.logs());
    let (range, new_text) = text_edit(&items[0]);
    assert_eq!(new_text, "compute_total(&message) + 1;", "{result}");
    assert_eq!(
        range.start, cursor,
        "the edit starts where the word does: {result}"
    );
    assert_eq!(range.end, word_cursor, "{result}");
    let (prefix, suffix) = editor.split_at(word_cursor);
    for request in &stack.provider().requests()[requests_before..] {
        assert_eq!(request.prompt(), Some(prefix.as_str()));
        assert_eq!(request.suffix(), Some(suffix.as_str()));
    }

    stack.shutdown().await;
}

/// What the language server sent to the cloud (seen through the proxy).
fn assert_cloud_request(
    request: &RecordedRequest,
    stack: &Stack,
    language: &str,
    path: &str,
    prefix: &str,
    suffix: &str,
) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {}", stack.cloud.api_key()).as_str())
    );
    assert_eq!(request.body["language"], language, "{}", request.body);
    assert_eq!(request.body["path"], path, "{}", request.body);
    assert_eq!(request.body["prefix"], prefix, "{}", request.body);
    assert_eq!(request.body["suffix"], suffix, "{}", request.body);
}

const PYTHON: &str =
    "import math\n\ndef hypotenuse(a, b):\n    return \n\nprint(hypotenuse(3, 4))\n";

async fn openai_round_trip(endpoint: &str) -> (Stack, RecordedRequest, String, String) {
    let stack = Stack::start(
        |fixture| ProviderConfig::openai(fixture, MODEL, endpoint, PROVIDER_KEY),
        false,
    )
    .await;
    stack.provider().reply_with_text("math.sqrt(a * a + b * b)");
    let editor = Editor::open(&stack.lsp, "pkg/geometry.py", "python", PYTHON).await;
    let cursor = editor.position_after("    return ");
    let (prefix, suffix) = editor.split_at(cursor);

    let result = stack
        .lsp
        .inline_completion(&editor.uri, cursor)
        .await
        .unwrap_or_else(|error| panic!("inlineCompletion failed: {error}\n{}", stack.logs()));
    let items = inline_items(&result);
    assert_eq!(items.len(), 1, "{result}\n{}", stack.logs());
    assert_eq!(items[0]["insertText"], "math.sqrt(a * a + b * b)");
    assert_eq!(
        items[0]["range"],
        serde_json::to_value(empty_range_at(cursor)).unwrap()
    );

    let cloud_requests = stack.proxy.completions();
    assert_eq!(cloud_requests.len(), 1, "{cloud_requests:#?}");
    assert_cloud_request(
        &cloud_requests[0],
        &stack,
        "python",
        "pkg/geometry.py",
        &prefix,
        &suffix,
    );

    let provider_requests = stack.provider().requests();
    assert_eq!(provider_requests.len(), 1, "{provider_requests:#?}");
    let request = provider_requests[0].clone();
    assert_eq!(request.method, "POST");
    assert_eq!(request.model(), Some(MODEL));
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str()),
        "the provider key goes in the Authorization header"
    );
    assert!(
        !request.wants_stream(),
        "the contract's answer is a single JSON document: {}",
        request.body
    );
    assert!(
        request.body.get("max_tokens").is_some_and(Value::is_u64),
        "{}",
        request.body
    );
    (stack, request, prefix, suffix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_completions_endpoint_gets_prompt_suffix_and_key() {
    let (stack, request, prefix, suffix) = openai_round_trip("completions").await;
    assert_eq!(request.path, "/v1/completions");
    assert_eq!(request.prompt(), Some(prefix.as_str()));
    assert_eq!(request.suffix(), Some(suffix.as_str()));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_endpoint_gets_fill_in_the_middle_messages_and_key() {
    let (stack, request, prefix, suffix) = openai_round_trip("chat").await;
    assert_eq!(request.path, "/v1/chat/completions");
    let messages = request.body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages array: {}", request.body));
    assert_eq!(messages[0]["role"], "system", "{}", request.body);
    let user = request
        .chat_user_content()
        .unwrap_or_else(|| panic!("no user message: {}", request.body));
    let prefix_at = user
        .find(&prefix)
        .unwrap_or_else(|| panic!("the user message lacks the prefix: {user:?}"));
    let suffix_at = user
        .rfind(&suffix)
        .unwrap_or_else(|| panic!("the user message lacks the suffix: {user:?}"));
    assert!(
        prefix_at + prefix.len() < suffix_at,
        "a hole marker must sit between prefix and suffix: {user:?}"
    );
    stack.shutdown().await;
}

const REPETITIVE_RUST: &str = "fn main() {\n    println!(\"step one\");\n    println!(\"step two\");\n    println!(\"step three\");\n    println!(\n}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_provider_answers_without_configured_providers() {
    let stack = Stack::start_with(CloudOptions::default(), None, false, json!({})).await;
    let editor = Editor::open(&stack.lsp, "src/main.rs", "rust", REPETITIVE_RUST).await;
    let cursor = {
        let model = &editor.model;
        let last = model.text().rfind("println!(").expect("cursor line") + "println!(".len();
        model.position(last, editor.encoding)
    };
    let (prefix, suffix) = editor.split_at(cursor);

    let result = stack
        .lsp
        .inline_completion(&editor.uri, cursor)
        .await
        .unwrap_or_else(|error| panic!("inlineCompletion failed: {error}\n{}", stack.logs()));
    let items = inline_items(&result);
    assert_eq!(items.len(), 1, "{result}\n{}", stack.logs());
    let text = items[0]["insertText"].as_str().unwrap_or_default();
    assert!(!text.is_empty(), "{result}");

    // The cloud itself says who answered.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/completions", stack.cloud.url()))
        .bearer_auth(stack.cloud.api_key())
        .json(
            &json!({"language": "rust", "path": "src/main.rs", "prefix": prefix, "suffix": suffix}),
        )
        .send()
        .await
        .expect("POST /v1/completions");
    assert_eq!(response.status(), 200, "{}", stack.cloud.stderr());
    let body: CompletionResponse = response.json().await.expect("CompletionResponse");
    assert_eq!(body.provider, "local");
    assert!(body.id.starts_with("cmpl-"), "{body:?}");
    assert!(!body.choices.is_empty(), "{body:?}");
    assert!(!body.choices[0].text.is_empty(), "{body:?}");
    stack.shutdown().await;
}

/// `tandem --stdio` and `tandem lsp --stdio` are the same server as `tandem lsp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_flag_spellings_start_the_server() {
    for args in [vec!["--stdio"], vec!["lsp", "--stdio"]] {
        let lsp = LspClient::spawn(tandem_e2e::LspOptions {
            args: args.iter().map(|arg| arg.to_string()).collect(),
            ..Default::default()
        })
        .await
        .expect("spawn");
        let result = lsp
            .initialize(json!({}), false)
            .await
            .unwrap_or_else(|error| panic!("{args:?}: {error:#}"));
        assert!(result.get("capabilities").is_some(), "{args:?}: {result}");
        lsp.shutdown_and_exit()
            .await
            .unwrap_or_else(|error| panic!("{args:?}: {error:#}"));
    }
}
