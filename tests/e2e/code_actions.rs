//! Code actions and explanations through the real binaries: offered only where they
//! make sense, resolved lazily (no model call until picked), edits that turn the
//! document into the expected text, invalid edits retried once and then refused, and
//! explanations that stream progress and can be cancelled with the upstream stream
//! closed.

use std::time::Duration;

use serde_json::{json, Value};
use tandem_e2e::{CloudOptions, Encoding, ProviderConfig, ProviderFixture, RpcError, TextModel};
use tandem_shared::inline_completion::Range;

use crate::support::{Stack, MODEL};

/// What a capable editor (VS Code, say) announces for code actions.
fn capabilities() -> Value {
    json!({
        "window": {"workDoneProgress": true, "showDocument": {"support": true}},
        "workspace": {
            "applyEdit": true,
            "workspaceEdit": {"documentChanges": true, "resourceOperations": ["create"]},
        },
        "textDocument": {"codeAction": {
            "codeActionLiteralSupport": {"codeActionKind": {"valueSet":
                ["", "quickfix", "refactor", "refactor.rewrite"]}},
            "resolveSupport": {"properties": ["edit"]},
            "dataSupport": true,
        }},
    })
}

async fn stack() -> Stack {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    let options = CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL));
    Stack::start_with_capabilities(options, Some(provider), true, json!({}), capabilities()).await
}

const RUST: &str = "use std::fmt;\n\n/// Adds one.\npub fn documented(a: i32) -> i32 {\n    a + 1\n}\n\npub fn add(a: i32, b: i32) -> i32 {\n    a - b\n}\n";

/// `textDocument/codeAction` for `range` with `diagnostics`, optionally only `kinds`.
async fn code_actions(
    stack: &Stack,
    uri: &str,
    range: Range,
    diagnostics: Value,
    only: Option<Value>,
) -> Vec<Value> {
    let mut context = json!({"diagnostics": diagnostics, "triggerKind": 1});
    if let Some(only) = only {
        context["only"] = only;
    }
    let result = stack
        .lsp
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": range, "context": context}),
        )
        .await
        .unwrap_or_else(|error| panic!("codeAction: {error}\n{}", stack.logs()));
    result.as_array().cloned().unwrap_or_default()
}

/// The actions with the cursor after `needle` in `model` and no diagnostics.
async fn actions_at(stack: &Stack, uri: &str, model: &TextModel, needle: &str) -> Vec<Value> {
    let range = range_at(model, needle, stack.lsp.encoding());
    code_actions(stack, uri, range, json!([]), None).await
}

fn titles(actions: &[Value]) -> Vec<&str> {
    actions
        .iter()
        .map(|action| action["title"].as_str().unwrap())
        .collect()
}

fn find<'a>(actions: &'a [Value], prefix: &str) -> &'a Value {
    actions
        .iter()
        .find(|action| action["title"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` action in {:?}", titles(actions)))
}

fn range_at(model: &TextModel, needle: &str, encoding: Encoding) -> Range {
    let start = model.position_after(needle, encoding);
    Range { start, end: start }
}

/// The problem an editor would report on `a - b`.
fn diagnostic(model: &TextModel, encoding: Encoding) -> Value {
    json!([{
        "range": model.range_of("a - b", encoding),
        "severity": 1,
        "source": "clippy",
        "code": "suspicious_arithmetic_impl",
        "message": "`add` subtracts its arguments",
    }])
}

/// Applies a `TextDocumentEdit`'s edits (from the end, so positions stay valid).
fn apply(model: &mut TextModel, edits: &[Value], encoding: Encoding) {
    let mut edits: Vec<(Range, String)> = edits
        .iter()
        .map(|edit| {
            (
                serde_json::from_value(edit["range"].clone()).unwrap(),
                edit["newText"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    edits.sort_by_key(|(range, _)| (range.start.line, range.start.character));
    for (range, text) in edits.into_iter().rev() {
        model.apply(range, &text, encoding);
    }
}

/// Every `$/progress` so far, once one of `kind` for `token` has arrived (notifications
/// may arrive just after the response they belong to).
async fn wait_for_progress(stack: &Stack, token: &Value, kind: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let progress = stack.lsp.notifications("$/progress");
        if progress
            .iter()
            .any(|note| note["token"] == *token && note["value"]["kind"] == kind)
        {
            return progress;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{kind}` progress for {token}: {progress:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn open(stack: &Stack, path: &str, language: &str, text: &str) -> String {
    let uri = stack.lsp.uri(path);
    stack.lsp.did_open(&uri, language, 1, text).await.unwrap();
    uri
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_offered_only_where_they_make_sense_and_ask_nothing() {
    let stack = stack().await;
    let encoding = stack.lsp.encoding();
    let uri = open(&stack, "src/math.rs", "rust", RUST).await;
    let model = TextModel::new(RUST);

    // In an undocumented function: explain, document, tests; nothing to fix or simplify.
    let actions = actions_at(&stack, &uri, &model, "    a -").await;
    assert_eq!(
        titles(&actions),
        [
            "Tandem: Explain `add`",
            "Tandem: Document `add`",
            "Tandem: Generate tests for `add`"
        ]
    );
    // Lazy: no edit, no command, only data to resolve later.
    let document = find(&actions, "Tandem: Document");
    assert!(
        document.get("edit").is_none() && document.get("command").is_none(),
        "{document}"
    );
    assert_eq!(document["data"]["task"], "document");
    assert_eq!(document["kind"], "refactor.rewrite");
    // Explain runs as a command.
    let explain = find(&actions, "Tandem: Explain");
    assert_eq!(explain["command"]["command"], "tandem.explain");

    // A documented function is not offered Document.
    let actions = actions_at(&stack, &uri, &model, "    a +").await;
    assert_eq!(
        titles(&actions),
        [
            "Tandem: Explain `documented`",
            "Tandem: Generate tests for `documented`"
        ]
    );
    // Outside any item, nothing.
    let actions = actions_at(&stack, &uri, &model, "use std").await;
    assert!(actions.is_empty(), "{actions:?}");

    // A selection with a problem in it: fix and simplify join in; the fix carries it.
    let selection = model.range_of("a - b", encoding);
    let problems = diagnostic(&model, encoding);
    let actions = code_actions(&stack, &uri, selection, problems.clone(), None).await;
    assert_eq!(
        titles(&actions),
        [
            "Tandem: Explain selection",
            "Tandem: Fix \"`add` subtracts its arguments\"",
            "Tandem: Document `add`",
            "Tandem: Generate tests for `add`",
            "Tandem: Simplify selection",
        ]
    );
    let fix = find(&actions, "Tandem: Fix");
    assert_eq!(fix["kind"], "quickfix");
    assert_eq!(fix["diagnostics"], problems);
    // Asked for quick fixes only.
    let actions = code_actions(&stack, &uri, selection, problems, Some(json!(["quickfix"]))).await;
    assert_eq!(
        titles(&actions),
        ["Tandem: Fix \"`add` subtracts its arguments\""]
    );

    // Test conventions per language: Python has one, C has none.
    let python = "def area(w, h):\n    return w * h\n";
    let uri = open(&stack, "pkg/geometry.py", "python", python).await;
    let actions = actions_at(&stack, &uri, &TextModel::new(python), "    return").await;
    assert!(
        titles(&actions).contains(&"Tandem: Generate tests for `area`"),
        "{actions:?}"
    );
    let c = "int area(int w, int h) {\n    return w * h;\n}\n";
    let uri = open(&stack, "src/area.c", "c", c).await;
    let actions = actions_at(&stack, &uri, &TextModel::new(c), "    return").await;
    assert_eq!(
        titles(&actions),
        ["Tandem: Explain `area`", "Tandem: Document `area`"]
    );

    assert_eq!(
        stack.provider().request_count(),
        0,
        "offering asks the model nothing"
    );
    stack.shutdown().await;
}

/// Resolves the action of `actions` whose title starts with `prefix`.
async fn resolve(stack: &Stack, actions: &[Value], prefix: &str) -> Result<Value, RpcError> {
    let action = find(actions, prefix).clone();
    stack.lsp.request("codeAction/resolve", action).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_actions_edit_only_what_changed() {
    let stack = stack().await;
    let encoding = stack.lsp.encoding();
    let uri = open(&stack, "src/math.rs", "rust", RUST).await;
    let model = TextModel::new(RUST);
    let provider = stack.provider();

    // Fix: the model answers the whole function, fenced; the edit is one character.
    provider.reply_with_text("```rust\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n```");
    let actions = code_actions(
        &stack,
        &uri,
        range_at(&model, "    a -", encoding),
        diagnostic(&model, encoding),
        None,
    )
    .await;
    let resolved = resolve(&stack, &actions, "Tandem: Fix")
        .await
        .unwrap_or_else(|error| panic!("resolve: {error}\n{}", stack.logs()));
    let change = &resolved["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"]["uri"], uri.as_str());
    assert_eq!(change["textDocument"]["version"], 1);
    let edits = change["edits"].as_array().unwrap();
    assert_eq!(edits.len(), 1, "{edits:?}");
    assert_eq!(edits[0]["newText"], "+");
    let mut fixed = model.clone();
    apply(&mut fixed, edits, encoding);
    assert_eq!(fixed.text(), RUST.replace("a - b", "a + b"));
    // What the model was asked: the function marked, and the problem.
    let sent = provider.requests().pop().unwrap();
    assert_eq!(sent.path, "/api/chat");
    let (_, user) = &sent.turns()[0];
    assert!(
        user.contains("<selection>pub fn add(a: i32, b: i32) -> i32 {\n    a - b\n}</selection>"),
        "{user}"
    );
    assert!(
        user.contains("(error clippy suspicious_arithmetic_impl): `add` subtracts its arguments"),
        "{user}"
    );

    // Document: a doc comment inserted above, nothing else touched.
    provider.reply_with_text(
        "/// Adds `a` and `b`.\npub fn add(a: i32, b: i32) -> i32 {\n    a - b\n}",
    );
    let actions = actions_at(&stack, &uri, &model, "    a -").await;
    let resolved = resolve(&stack, &actions, "Tandem: Document").await.unwrap();
    let edits = resolved["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(edits.len(), 1, "{edits:?}");
    let mut documented = model.clone();
    apply(&mut documented, &edits, encoding);
    assert_eq!(
        documented.text(),
        RUST.replace("pub fn add", "/// Adds `a` and `b`.\npub fn add")
    );

    // Tests for Rust go to the end of the file.
    let tests = "#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n    fn adds() {\n        assert_eq!(add(1, 2), 3);\n    }\n}";
    provider.reply_with_text(tests);
    let resolved = resolve(&stack, &actions, "Tandem: Generate tests")
        .await
        .unwrap();
    let edits = resolved["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap()
        .clone();
    let mut tested = model.clone();
    apply(&mut tested, &edits, encoding);
    assert_eq!(tested.text(), format!("{RUST}\n{tests}\n"));

    // Tests for Python go to a new `test_<module>.py` beside it.
    let python = "def area(w, h):\n    return w * h\n";
    let python_uri = open(&stack, "pkg/geometry.py", "python", python).await;
    let test_file =
        "from pkg.geometry import area\n\n\ndef test_area():\n    assert area(2, 3) == 6";
    provider.reply_with_text(test_file);
    let actions = actions_at(&stack, &python_uri, &TextModel::new(python), "    return").await;
    let resolved = resolve(&stack, &actions, "Tandem: Generate tests")
        .await
        .unwrap();
    let operations = resolved["edit"]["documentChanges"].as_array().unwrap();
    let new_uri = stack.lsp.uri("pkg/test_geometry.py");
    assert_eq!(operations[0]["kind"], "create");
    assert_eq!(operations[0]["uri"], new_uri.as_str());
    assert_eq!(operations[1]["textDocument"]["uri"], new_uri.as_str());
    assert_eq!(
        operations[1]["edits"][0]["newText"],
        format!("{test_file}\n")
    );

    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_that_breaks_the_syntax_is_retried_once_then_refused() {
    let stack = stack().await;
    let encoding = stack.lsp.encoding();
    let uri = open(&stack, "src/math.rs", "rust", RUST).await;
    let model = TextModel::new(RUST);
    let provider = stack.provider();
    let selection = model.range_of("a - b", encoding);

    // The first answer drops a parenthesis; told so, the model corrects it.
    provider.reply_with(|request| {
        if request.turns().len() > 1 {
            "(a + b)".to_owned()
        } else {
            "(a + b".to_owned()
        }
    });
    let actions = code_actions(&stack, &uri, selection, json!([]), None).await;
    let resolved = resolve(&stack, &actions, "Tandem: Simplify").await.unwrap();
    let edits = resolved["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap()
        .clone();
    let mut simplified = model.clone();
    apply(&mut simplified, &edits, encoding);
    assert_eq!(simplified.text(), RUST.replace("a - b", "(a + b)"));
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    let turns = requests[1].turns();
    assert_eq!(turns.len(), 3, "{turns:?}");
    assert_eq!(turns[1], ("assistant".to_owned(), "(a + b".to_owned()));
    assert!(turns[2].1.contains("syntax error"), "{}", turns[2].1);

    // Broken twice: refused, with a message, and the document is untouched.
    provider.reply_with_text("a + b {");
    let error = resolve(&stack, &actions, "Tandem: Simplify")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(-32803), "{error}");
    let message = error.message().unwrap_or_default().to_owned();
    assert!(
        message.starts_with("Tandem: the suggested change would introduce a syntax error (line "),
        "{message}"
    );
    assert!(message.ends_with("nothing was changed"), "{message}");
    assert_eq!(provider.request_count(), 4);
    let shown = stack
        .lsp
        .wait_for_notifications("window/showMessage", 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        shown
            .iter()
            .any(|note| note["message"].as_str() == Some(message.as_str())),
        "{shown:?}"
    );

    // Typing after the actions were offered makes them stale.
    stack
        .lsp
        .did_change_incremental(
            &uri,
            2,
            model.range_of("use std::fmt;", encoding),
            "use std::io;",
        )
        .await
        .unwrap();
    let error = resolve(&stack, &actions, "Tandem: Simplify")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(-32801), "{error}");
    assert_eq!(provider.request_count(), 4, "a stale action asks nothing");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explanations_stream_and_stop_when_cancelled() {
    let stack = stack().await;
    let encoding = stack.lsp.encoding();
    let uri = open(&stack, "src/math.rs", "rust", RUST).await;
    let model = TextModel::new(RUST);
    let provider = stack.provider();

    // A whole explanation: progress begins and ends, the pieces join to the answer.
    let markdown = "`add` **subtracts** `b` from `a`, despite its name.";
    provider.reply_with_text(markdown);
    let result = stack
        .lsp
        .request(
            "tandem/explain",
            json!({
                "textDocument": {"uri": uri},
                "position": model.position_after("    a -", encoding),
                "workDoneToken": "work-1",
                "partialResultToken": "partial-1",
            }),
        )
        .await
        .unwrap_or_else(|error| panic!("tandem/explain: {error}\n{}", stack.logs()));
    assert_eq!(result["markdown"], markdown);
    assert_eq!(result["title"], "Explanation of `add`");
    let progress = wait_for_progress(&stack, &json!("work-1"), "end").await;
    let pieces: String = progress
        .iter()
        .filter(|note| note["token"] == "partial-1")
        .map(|note| note["value"]["markdown"].as_str().unwrap())
        .collect();
    assert_eq!(pieces, markdown);
    let work: Vec<&str> = progress
        .iter()
        .filter(|note| note["token"] == "work-1")
        .map(|note| note["value"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(work.first(), Some(&"begin"));
    assert_eq!(work.last(), Some(&"end"));
    let sent = provider.requests().pop().unwrap();
    assert_eq!(sent.body["stream"], true);

    // A long, slow one, cancelled midway: the request ends and the model's stream closes.
    provider.reply_with_text("word ".repeat(400));
    provider.set_chunk_delay(Duration::from_millis(20));
    let pending = stack
        .lsp
        .start_request(
            "tandem/explain",
            json!({
                "textDocument": {"uri": uri},
                "range": model.range_of("a - b", encoding),
                "partialResultToken": "partial-2",
            }),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stack
        .lsp
        .notifications("$/progress")
        .iter()
        .filter(|note| note["token"] == "partial-2")
        .count()
        < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no streamed text\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stack
        .lsp
        .notify("$/cancelRequest", json!({"id": pending.id()}))
        .await
        .unwrap();
    let error = pending.response().await.unwrap_err();
    assert_eq!(error.code(), Some(-32800), "{error}");
    provider
        .wait_for_abandoned_streams(1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", stack.logs()));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explain_command_shows_a_markdown_document() {
    let stack = stack().await;
    let uri = open(&stack, "src/math.rs", "rust", RUST).await;
    let model = TextModel::new(RUST);
    stack.provider().reply_with_text("It subtracts.");
    let actions = actions_at(&stack, &uri, &model, "    a -").await;
    let command = find(&actions, "Tandem: Explain")["command"].clone();
    let result = stack
        .lsp
        .request(
            "workspace/executeCommand",
            json!({"command": command["command"], "arguments": command["arguments"]}),
        )
        .await
        .unwrap_or_else(|error| panic!("executeCommand: {error}\n{}", stack.logs()));
    assert_eq!(result["markdown"], "It subtracts.");
    let shown: Vec<Value> = stack
        .lsp
        .server_requests()
        .into_iter()
        .filter(|request| request.method == "window/showDocument")
        .map(|request| request.params)
        .collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    // A temporary directory's path, which needs no percent-decoding.
    let path = std::path::PathBuf::from(
        shown[0]["uri"]
            .as_str()
            .unwrap()
            .strip_prefix("file://")
            .unwrap(),
    );
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("md"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# Explanation of `add`\n\nIt subtracts."),
        "{text}"
    );
    // Progress was created by the server and used.
    assert!(stack
        .lsp
        .server_requests()
        .iter()
        .any(|request| request.method == "window/workDoneProgress/create"));
    std::fs::remove_file(path).ok();
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_cannot_resolve_edits_get_them_through_apply_edit() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    let options = CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL));
    // Code action literals, but no `resolveSupport` and no `documentChanges`.
    let capabilities = json!({
        "workspace": {"applyEdit": true},
        "textDocument": {"codeAction": {"codeActionLiteralSupport": {"codeActionKind":
            {"valueSet": ["", "quickfix", "refactor", "refactor.rewrite"]}}}},
    });
    let stack =
        Stack::start_with_capabilities(options, Some(provider), false, json!({}), capabilities)
            .await;
    let encoding = stack.lsp.encoding();
    let uri = open(&stack, "src/math.rs", "rust", RUST).await;
    let model = TextModel::new(RUST);
    stack
        .provider()
        .reply_with_text("pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}");
    let problems = diagnostic(&model, encoding);
    let range = range_at(&model, "    a -", encoding);
    let actions = code_actions(&stack, &uri, range, problems.clone(), None).await;
    let fix = find(&actions, "Tandem: Fix");
    assert!(fix.get("data").is_none(), "{fix}");
    let command = &fix["command"];
    assert_eq!(command["command"], "tandem.applyAction");
    assert_eq!(stack.provider().request_count(), 0);

    let applied = stack
        .lsp
        .request(
            "workspace/executeCommand",
            json!({"command": command["command"], "arguments": command["arguments"]}),
        )
        .await
        .unwrap_or_else(|error| panic!("executeCommand: {error}\n{}", stack.logs()));
    assert_eq!(applied, true);
    let edits: Vec<Value> = stack
        .lsp
        .server_requests()
        .into_iter()
        .filter(|request| request.method == "workspace/applyEdit")
        .map(|request| request.params["edit"]["changes"][uri.as_str()].clone())
        .collect();
    assert_eq!(edits.len(), 1, "{edits:?}");
    let mut fixed = model.clone();
    apply(&mut fixed, edits[0].as_array().unwrap(), encoding);
    assert_eq!(fixed.text(), RUST.replace("a - b", "a + b"));

    // Explain carries the problems in its range along to the model.
    stack
        .provider()
        .reply_with_text("It subtracts, which the lint flags.");
    let explain = find(&actions, "Tandem: Explain")["command"].clone();
    assert_eq!(explain["arguments"][0]["diagnostics"], problems);
    stack
        .lsp
        .request(
            "workspace/executeCommand",
            json!({"command": explain["command"], "arguments": explain["arguments"]}),
        )
        .await
        .unwrap_or_else(|error| panic!("executeCommand: {error}\n{}", stack.logs()));
    let sent = stack.provider().requests().pop().unwrap();
    let (_, user) = &sent.turns()[0];
    assert!(user.contains("`add` subtracts its arguments"), "{user}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explain_command_stops_when_its_progress_is_cancelled() {
    let stack = stack().await;
    let encoding = stack.lsp.encoding();
    let uri = open(&stack, "src/math.rs", "rust", RUST).await;
    let model = TextModel::new(RUST);
    let provider = stack.provider();
    provider.reply_with_text("word ".repeat(400));
    provider.set_chunk_delay(Duration::from_millis(20));
    let pending = stack
        .lsp
        .start_request(
            "workspace/executeCommand",
            json!({"command": "tandem.explain", "arguments": [{
                "uri": uri, "range": model.range_of("a - b", encoding),
            }]}),
        )
        .await
        .unwrap();
    // The server created a progress token and reports the text as it is written.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let token = loop {
        let reports: Vec<Value> = stack
            .lsp
            .notifications("$/progress")
            .into_iter()
            .filter(|note| note["value"]["kind"] == "report")
            .collect();
        if let Some(report) = reports.last() {
            let message = report["value"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("word"), "{report}");
            break report["token"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let begin = stack
        .lsp
        .notifications("$/progress")
        .into_iter()
        .find(|note| note["token"] == token && note["value"]["kind"] == "begin")
        .expect("a begin");
    assert_eq!(begin["value"]["cancellable"], true);

    stack
        .lsp
        .notify("window/workDoneProgress/cancel", json!({"token": token}))
        .await
        .unwrap();
    assert_eq!(pending.response().await.unwrap(), Value::Null);
    provider
        .wait_for_abandoned_streams(1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", stack.logs()));
    wait_for_progress(&stack, &token, "end").await;
    assert!(
        !stack
            .lsp
            .server_requests()
            .iter()
            .any(|request| request.method == "window/showDocument"),
        "nothing is shown for a cancelled explanation"
    );
    stack.shutdown().await;
}
