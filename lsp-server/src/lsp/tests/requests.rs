//! Requests end to end: results, errors, encodings, auth notices, back-off, panics.

use std::time::Duration;

use serde_json::{json, Value};

use super::fixture::{CloudFixture, Reply};
use super::harness::TestServer;

const URI: &str = "file:///ws/src/main.rs";

fn at(line: u32, character: u32) -> Value {
    json!({"textDocument": {"uri": URI}, "position": {"line": line, "character": character}})
}

#[tokio::test]
async fn initialize_advertises_what_works() {
    let server = TestServer::start(json!(null), json!({})).await;
    let capabilities = &server.initialize_result["capabilities"];
    assert_eq!(capabilities["positionEncoding"], "utf-16");
    assert_eq!(capabilities["inlineCompletionProvider"], true);
    assert_eq!(
        capabilities["experimental"]["inlineCompletionProvider"],
        true
    );
    assert_eq!(capabilities["textDocumentSync"]["change"], 2);
    assert_eq!(server.initialize_result["serverInfo"]["name"], "tandem");
    server.shutdown().await;
}

#[tokio::test]
async fn utf8_is_negotiated_when_offered() {
    let cloud = CloudFixture::start(Reply::Text("!")).await;
    let server = TestServer::start(
        json!({"server": cloud.url, "apiKey": "tdm_test_key_0123456789"}),
        json!({"general": {"positionEncodings": ["utf-16", "utf-8"]}}),
    )
    .await;
    assert_eq!(
        server.initialize_result["capabilities"]["positionEncoding"],
        "utf-8"
    );
    server.open(URI, "😀中x").await;
    // After the emoji (4 bytes) and the CJK char (3 bytes): byte column 7.
    let response = server
        .request("textDocument/inlineCompletion", at(0, 7))
        .await;
    assert_eq!(
        response["result"]["items"][0]["range"]["start"],
        json!({"line": 0, "character": 7})
    );
    assert_eq!(cloud.received()[0].body["prefix"], "😀中");
    assert_eq!(cloud.received()[0].body["suffix"], "x");
    // Column 2 in UTF-8 is inside the emoji.
    let response = server
        .request("textDocument/inlineCompletion", at(0, 2))
        .await;
    assert_eq!(response["error"]["code"], -32602, "{response}");
    server.shutdown().await;
}

#[tokio::test]
async fn completion_request_carries_context_and_credentials() {
    let cloud = CloudFixture::start(Reply::Text("o_bar()")).await;
    let server = TestServer::start(
        json!({"server": cloud.url, "apiKey": "tdm_test_key_0123456789", "maxPrefixChars": 12, "maxSuffixChars": 6}),
        json!({}),
    )
    .await;
    server
        .open(URI, "one\r\ntwo\r\nlet fo\r\nafter\r\nmore")
        .await;
    let response = server.request("textDocument/completion", at(2, 6)).await;
    let list = &response["result"];
    assert_eq!(list["isIncomplete"], true);
    let edit = &list["items"][0]["textEdit"];
    assert_eq!(edit["newText"], "foo_bar()");
    assert_eq!(edit["range"]["start"], json!({"line": 2, "character": 4}));
    assert_eq!(edit["range"]["end"], json!({"line": 2, "character": 6}));

    let received = &cloud.received()[0];
    assert_eq!(
        received.authorization.as_deref(),
        Some("Bearer tdm_test_key_0123456789")
    );
    assert_eq!(received.body["language"], "rust");
    assert_eq!(received.body["path"], "src/main.rs");
    // 12 chars: "let fo" (6) + "two\r\n" (5) fits, "one\r\n" would not.
    assert_eq!(received.body["prefix"], "two\r\nlet fo");
    // 6 chars: "\r\n" (2) fits, "after\r\n" (7) would not.
    assert_eq!(received.body["suffix"], "\r\n");
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_documents_and_bad_positions_are_invalid_params() {
    let cloud = CloudFixture::start(Reply::Text("x")).await;
    let server = TestServer::with_cloud(&cloud.url).await;
    for method in ["textDocument/inlineCompletion", "textDocument/completion"] {
        let response = server
            .request(method, json!({"textDocument": {"uri": "file:///nope.rs"}, "position": {"line": 0, "character": 0}}))
            .await;
        assert_eq!(response["error"]["code"], -32602, "{response}");
        assert_eq!(
            response["error"]["message"],
            "document not open: file:///nope.rs"
        );
    }
    server.open(URI, "a😀\nb").await;
    let cases = [
        (
            at(0, 2),
            "invalid position: column 2 of line 0 is inside a character",
        ),
        (
            at(0, 4),
            "invalid position: column 4 is past the end of line 0 (3 columns)",
        ),
        (
            at(5, 0),
            "invalid position: line 5 is past the end of the document (2 lines)",
        ),
    ];
    for (params, message) in cases {
        let response = server
            .request("textDocument/inlineCompletion", params)
            .await;
        assert_eq!(response["error"]["code"], -32602, "{response}");
        assert_eq!(response["error"]["message"], message);
    }
    assert!(
        cloud.received().is_empty(),
        "invalid requests never reach the network"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn out_of_range_edits_are_clamped_not_fatal() {
    let cloud = CloudFixture::start(Reply::EchoLastLine).await;
    let server = TestServer::with_cloud(&cloud.url).await;
    server.open(URI, "ab\ncd").await;
    server
        .notify(
            "textDocument/didChange",
            json!({
                "textDocument": {"uri": URI, "version": 2},
                "contentChanges": [{"range": {"start": {"line": 1, "character": 1}, "end": {"line": 9, "character": 0}}, "text": "Z"}],
            }),
        )
        .await;
    let response = server
        .request("textDocument/inlineCompletion", at(1, 2))
        .await;
    assert_eq!(response["result"]["items"][0]["insertText"], "cZ");
    server.shutdown().await;
}

#[tokio::test]
async fn a_rejected_key_is_reported_once_until_settings_change() {
    let cloud = CloudFixture::start(Reply::Status(401)).await;
    let server = TestServer::with_cloud(&cloud.url).await;
    server.open(URI, "abc").await;
    for _ in 0..3 {
        let response = server
            .request("textDocument/inlineCompletion", at(0, 3))
            .await;
        assert_eq!(response["result"], json!({"items": []}));
    }
    let message = server
        .next_notification("window/showMessage", Duration::from_secs(5))
        .await
        .expect("one showMessage");
    assert_eq!(message["params"]["type"], 2, "a warning");
    let text = message["params"]["message"].as_str().unwrap();
    assert!(
        text.contains("Tandem: Sign In") && text.contains("tandem login"),
        "{text}"
    );
    assert!(!text.contains("tdm_test_key"), "never the key: {text}");
    assert!(
        server
            .next_notification("window/showMessage", Duration::from_millis(300))
            .await
            .is_none(),
        "only one message for repeated 401s"
    );

    server
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"tandem": {"server": cloud.url, "apiKey": "tdm_another_key_0000000"}}}),
        )
        .await;
    server
        .request("textDocument/inlineCompletion", at(0, 3))
        .await;
    assert!(server
        .next_notification("window/showMessage", Duration::from_secs(5))
        .await
        .is_some());
    assert_eq!(
        cloud.received().last().unwrap().authorization.as_deref(),
        Some("Bearer tdm_another_key_0000000"),
        "didChangeConfiguration settings are used"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn no_key_means_empty_results_and_one_notice() {
    let cloud = CloudFixture::start(Reply::Text("x")).await;
    let server = TestServer::start(json!({"server": cloud.url}), json!({})).await;
    server.open(URI, "abc").await;
    for _ in 0..2 {
        let response = server.request("textDocument/completion", at(0, 3)).await;
        assert_eq!(response["result"]["items"], json!([]));
    }
    let message = server
        .next_notification("window/showMessage", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(message["params"]["message"]
        .as_str()
        .unwrap()
        .contains("not signed in"));
    assert!(server
        .next_notification("window/showMessage", Duration::from_millis(300))
        .await
        .is_none());
    assert!(cloud.received().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn server_errors_back_off_without_calling_the_network() {
    let cloud = CloudFixture::start(Reply::Status(503)).await;
    let server = TestServer::with_cloud(&cloud.url).await;
    server.open(URI, "abc").await;
    for _ in 0..3 {
        let response = server
            .request("textDocument/inlineCompletion", at(0, 3))
            .await;
        assert_eq!(response["result"], json!({"items": []}));
    }
    assert_eq!(
        cloud.received().len(),
        1,
        "later requests were skipped during back-off"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_error_and_the_server_lives_on() {
    let cloud = CloudFixture::start(Reply::Text("ok")).await;
    let server = TestServer::with_cloud(&cloud.url).await;
    let response = server.request("tandem/testPanic", json!({})).await;
    assert_eq!(response["error"]["code"], -32603, "{response}");
    server.open(URI, "abc").await;
    let response = server
        .request("textDocument/inlineCompletion", at(0, 3))
        .await;
    assert_eq!(response["result"]["items"][0]["insertText"], "ok");
    server.shutdown().await;
}

#[tokio::test]
async fn closed_documents_are_forgotten() {
    let cloud = CloudFixture::start(Reply::Text("x")).await;
    let server = TestServer::with_cloud(&cloud.url).await;
    server.open(URI, "abc").await;
    server
        .notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": URI}}),
        )
        .await;
    let response = server
        .request("textDocument/inlineCompletion", at(0, 3))
        .await;
    assert_eq!(
        response["error"]["message"],
        format!("document not open: {URI}")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_tier_budget_is_read_at_start_and_the_local_cap_applies() {
    let cloud = CloudFixture::start(Reply::Text("x")).await;
    let server = TestServer::start(
        json!({"server": cloud.url, "apiKey": "tdm_test_key_0123456789", "maxContextTokens": 40}),
        json!({}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cloud.me_requests() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET /v1/me never came"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut text = String::new();
    for line in 0..100 {
        text.push_str(&format!("let value_{line} = compute({line});\n"));
    }
    server.open(URI, &text).await;
    server
        .request("textDocument/inlineCompletion", at(100, 0))
        .await;
    let received = &cloud.received()[0].body;
    let request: tandem_shared::CompletionRequest =
        serde_json::from_value(received.clone()).unwrap();
    // The tier allows 16,000; the user's own cap of 40 is lower and wins.
    assert!(request.estimated_tokens() <= 40, "{request:?}");
    assert!(
        request.prefix.starts_with("let value_"),
        "{:?}",
        request.prefix
    );
    assert_eq!(cloud.me_requests(), 1, "read once per credentials");
    server.shutdown().await;
}
