//! Failure paths: a bad key, a provider or cloud that is down, requests the server cannot
//! honour. The editor gets empty answers or JSON-RPC errors, never a dead server.

use std::time::Duration;

use serde_json::json;
use tandem_e2e::{
    CloudOptions, CloudServer, LspClient, LspOptions, ProviderConfig, ProviderFixture,
};
use tandem_shared::ErrorBody;

use crate::support::{
    check_error_answer, inline_items, within, Editor, Stack, MODEL, PROVIDER_KEY,
};

const SOURCE: &str = "fn main() {\n    let answer = \n}\n";

/// A key of the right shape (`tdm_` + 43 base62 characters) that the cloud never issued.
fn unknown_key() -> String {
    format!("{}{}", tandem_shared::API_KEY_PREFIX, "A".repeat(43))
}

fn show_message_count(lsp: &LspClient) -> usize {
    lsp.notifications("window/showMessage").len()
        + lsp
            .server_requests()
            .iter()
            .filter(|request| request.method == "window/showMessageRequest")
            .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_api_key_gives_empty_results_and_exactly_one_message() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    let cloud = CloudServer::start(CloudOptions::with_provider(ProviderConfig::ollama(
        &provider, MODEL,
    )))
    .await
    .expect("tandem-cloud");
    let lsp = LspClient::spawn(LspOptions::default())
        .await
        .expect("spawn");
    lsp.initialize(
        json!({"server": cloud.url(), "apiKey": unknown_key()}),
        false,
    )
    .await
    .expect("initialize");
    let editor = Editor::open(&lsp, "src/main.rs", "rust", SOURCE).await;
    let cursor = editor.position_after("let answer = ");

    for attempt in 0..4 {
        let result = lsp
            .inline_completion(&editor.uri, cursor)
            .await
            .unwrap_or_else(|error| panic!("attempt {attempt}: {error}\n{}", lsp.stderr()));
        assert!(
            inline_items(&result).is_empty(),
            "attempt {attempt}: {result}"
        );
    }
    let result = lsp
        .completion(&editor.uri, cursor)
        .await
        .expect("completion");
    let items = crate::support::completion_items(&result);
    assert!(items.is_empty(), "{result}");

    // The message may trail the last response; give it time to arrive (and a second
    // one time to show up, if the server wrongly sends one per request).
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        show_message_count(&lsp),
        1,
        "exactly one message about the rejected key, not one per request: {:#?}\n{}",
        lsp.all_notifications(),
        lsp.stderr()
    );
    let messages = lsp.notifications("window/showMessage");
    if let Some(message) = messages.first() {
        assert!(
            message["message"]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
            "{message}"
        );
    }
    assert_eq!(
        provider.request_count(),
        0,
        "a rejected key must not reach the provider"
    );
    lsp.shutdown_and_exit().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_gives_empty_result_quickly_and_server_survives() {
    let mut stack = Stack::start(|fixture| ProviderConfig::ollama(fixture, MODEL), false).await;
    if let Some(provider) = stack.provider.as_mut() {
        provider.go_down().await;
    }
    let editor = Editor::open(&stack.lsp, "src/main.rs", "rust", SOURCE).await;
    let cursor = editor.position_after("let answer = ");

    for attempt in 0..2 {
        let (result, _) = within(
            Duration::from_secs(3),
            "a completion with the provider down",
            stack.lsp.inline_completion(&editor.uri, cursor),
        )
        .await;
        let result =
            result.unwrap_or_else(|error| panic!("attempt {attempt}: {error}\n{}", stack.logs()));
        assert!(inline_items(&result).is_empty(), "{result}");
    }

    // The cloud reports the refused connection as the contract says.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/completions", stack.cloud.url()))
        .bearer_auth(stack.cloud.api_key())
        .json(&json!({"language": "rust", "path": "a.rs", "prefix": "x", "suffix": ""}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 503);
    let body: ErrorBody = response.json().await.expect("error body");
    assert_eq!(body.error.code, "provider_unavailable");

    assert!(stack.lsp.is_running());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_down_gives_empty_result_and_backs_off_without_network() {
    // A port nothing listens on: bind, note the port, close.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let lsp = LspClient::spawn(LspOptions::default())
        .await
        .expect("spawn");
    lsp.initialize(
        json!({
            "server": format!("http://127.0.0.1:{port}"),
            "apiKey": unknown_key(),
            "requestTimeoutMs": 2000,
        }),
        false,
    )
    .await
    .expect("initialize");
    let editor = Editor::open(&lsp, "src/main.rs", "rust", SOURCE).await;
    let cursor = editor.position_after("let answer = ");

    let (result, _) = within(
        Duration::from_secs(3),
        "a completion with the cloud down",
        lsp.inline_completion(&editor.uri, cursor),
    )
    .await;
    let result = result.unwrap_or_else(|error| panic!("{error}\n{}", lsp.stderr()));
    assert!(inline_items(&result).is_empty(), "{result}");

    // Now something listens on that port and counts connections: a request within the
    // backoff window must be answered without connecting at all.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("re-bind the cloud's port");
    let (accepted_sender, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let acceptor = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // Closing at once makes a client that did connect fail fast, not time out.
            drop(stream);
            let _ = accepted_sender.send(());
        }
    });
    let (result, elapsed) = within(
        Duration::from_secs(3),
        "a completion inside the backoff window",
        lsp.inline_completion(&editor.uri, cursor),
    )
    .await;
    let result = result.unwrap_or_else(|error| panic!("{error}\n{}", lsp.stderr()));
    assert!(inline_items(&result).is_empty(), "{result}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        accepted.try_recv().is_err(),
        "the request inside the backoff window connected to the cloud (answered in {elapsed:?})\n{}",
        lsp.stderr()
    );
    assert!(
        elapsed < Duration::from_millis(500),
        "backed-off requests answer at once, took {elapsed:?}"
    );
    acceptor.abort();

    let result = lsp
        .request(
            "textDocument/completion",
            json!({
                "textDocument": {"uri": editor.uri}, "position": cursor,
            }),
        )
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", lsp.stderr()));
    assert!(
        crate::support::completion_items(&result).is_empty(),
        "{result}"
    );
    lsp.shutdown_and_exit().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_document_and_out_of_range_position_are_rpc_errors() {
    let stack = Stack::start(|fixture| ProviderConfig::ollama(fixture, MODEL), false).await;
    stack.provider().reply_with_text("42;");
    let never_opened = stack.lsp.uri("src/never_opened.rs");
    let position = tandem_shared::inline_completion::Position {
        line: 0,
        character: 0,
    };
    for method in ["textDocument/inlineCompletion", "textDocument/completion"] {
        let error = stack
            .lsp
            .request(
                method,
                json!({"textDocument": {"uri": never_opened}, "position": position}),
            )
            .await
            .expect_err("a request on a document that was never opened");
        assert!(
            error.message().is_some_and(|message| !message.is_empty()),
            "{method}: {error:?}"
        );
    }

    let editor = Editor::open(&stack.lsp, "src/main.rs", "rust", SOURCE).await;
    let beyond_last_line = tandem_shared::inline_completion::Position {
        line: 40,
        character: 0,
    };
    let error = stack
        .lsp
        .inline_completion(&editor.uri, beyond_last_line)
        .await
        .expect_err("a position past the last line");
    assert!(
        error.message().is_some_and(|message| !message.is_empty()),
        "{error:?}"
    );

    // Still serving.
    let cursor = editor.position_after("let answer = ");
    let result = stack
        .lsp
        .inline_completion(&editor.uri, cursor)
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", stack.logs()));
    assert_eq!(inline_items(&result)[0]["insertText"], "42;", "{result}");
    stack.shutdown().await;
}

/// Provider failures become the contract's statuses, and 5xx bodies leak nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failures_map_to_contract_statuses() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    let cloud = CloudServer::start(CloudOptions::with_provider(
        ProviderConfig::openai(&provider, MODEL, "completions", PROVIDER_KEY).with_timeout_ms(500),
    ))
    .await
    .expect("tandem-cloud");
    let client = reqwest::Client::new();
    let complete = || {
        client
            .post(format!("{}/v1/completions", cloud.url()))
            .bearer_auth(cloud.api_key())
            .json(&json!({"language": "rust", "path": "a.rs", "prefix": "fn", "suffix": ""}))
            .send()
    };

    // Every case runs and the test reports all deviations at once.
    let mut problems = Vec::new();
    for (provider_status, expected_status, expected_code) in [
        (500, 502, "provider_error"),
        (401, 502, "provider_error"),
        (429, 503, "provider_unavailable"),
    ] {
        provider.fail_with(provider_status);
        let response = complete().await.expect("POST");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let case = format!("provider status {provider_status}");
        check_error_answer(
            &mut problems,
            &case,
            status,
            &text,
            expected_status,
            expected_code,
        );
        if text.contains(PROVIDER_KEY) {
            problems.push(format!("{case}: the provider key leaked: {text}"));
        }
        // The vendor's message is an internal detail (and OpenAI's 401 message quotes
        // part of the key): it belongs in the log, not in the 5xx body.
        if text.contains("Sorry about that")
            || text.contains("Incorrect API key")
            || text.contains("Rate limit reached")
        {
            problems.push(format!(
                "{case}: the provider's own message is echoed: {text}"
            ));
        }
    }
    assert!(
        !cloud.stderr().contains(PROVIDER_KEY),
        "the provider key must never be logged"
    );

    provider.recover();
    provider.set_delay(Duration::from_secs(3));
    let (response, elapsed) = within(
        Duration::from_secs(3),
        "a request to a provider slower than timeout_ms",
        complete(),
    )
    .await;
    let response = response.expect("POST");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    if status != 504 || !text.contains("\"provider_timeout\"") {
        problems.push(format!(
            "provider slower than timeout_ms: {status} after {elapsed:?}: {text}"
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A tier's limits reach the user once, in the cloud's words, and a used-up quota stops
/// the calls until it resets instead of earning a 429 per keystroke.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_quota_is_shown_once_and_pauses_the_calls() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    let mut options = CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL));
    options.tier = Some("pro".to_owned());
    options.extra_toml = "[tiers.pro]\nrequests_per_hour = 2\nburst_per_minute = 0\n".to_owned();
    let stack = Stack::start_with(options, Some(provider), false, json!({})).await;
    let mut editor = Editor::open(&stack.lsp, "src/main.rs", "rust", SOURCE).await;
    for attempt in 0..5 {
        // A character more each time, so no answer comes from the cache.
        editor.insert_after("let answer = ", "x").await;
        let cursor = editor.position_after("let answer = x");
        let result = stack
            .lsp
            .inline_completion(&editor.uri, cursor)
            .await
            .unwrap_or_else(|error| panic!("attempt {attempt}: {error}\n{}", stack.logs()));
        if attempt >= 2 {
            assert!(
                inline_items(&result).is_empty(),
                "attempt {attempt}: {result}"
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = stack.lsp.notifications("window/showMessage");
    assert_eq!(messages.len(), 1, "{messages:#?}\n{}", stack.logs());
    let text = messages[0]["message"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("Tandem: hourly quota used: tier `pro` allows 2 requests per hour"),
        "{text}"
    );
    // Two served, one refused; the rest never left the editor's machine.
    assert_eq!(stack.proxy.completions().len(), 3, "{}", stack.logs());
    assert_eq!(stack.provider().request_count(), 2);
}
