//! Edits and requests are processed in the order the client sent them.

use std::collections::BTreeMap;

use serde_json::json;

use super::fixture::{CloudFixture, Reply};
use super::harness::{wait, TestServer};

const URI: &str = "file:///ws/src/lib.rs";

/// tower-lsp 0.20 runs up to four handlers concurrently (tower-lsp issue #284). A
/// completion sent right after a `didChange` must still see that change: here each
/// change appends `line N` and the completion right after it asks at the end of that
/// line. The fixture echoes the last prefix line, so every request it receives names
/// the version it was computed on; if a completion ran before its change, its position
/// would not exist yet (InvalidParams) or the echo would name an older line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_changes_and_completions_stay_in_order() {
    let cloud = CloudFixture::start(Reply::EchoLastLine).await;
    let server = TestServer::with_cloud(&cloud.url).await;
    server.open(URI, "line 0").await;

    const PAIRS: u32 = 100;
    let mut receivers = Vec::new();
    for number in 1..=PAIRS {
        let previous = format!("line {}", number - 1);
        let end_of_previous = json!({"line": number - 1, "character": previous.len()});
        server
            .notify(
                "textDocument/didChange",
                json!({
                    "textDocument": {"uri": URI, "version": number + 1},
                    "contentChanges": [{
                        "range": {"start": end_of_previous, "end": end_of_previous},
                        "text": format!("\nline {number}"),
                    }],
                }),
            )
            .await;
        let cursor = json!({"line": number, "character": format!("line {number}").len()});
        // Alternate the two completion methods; both share the same path.
        let method = if number % 2 == 0 {
            "textDocument/inlineCompletion"
        } else {
            "textDocument/completion"
        };
        let (_, receiver) = server
            .send_request(
                method,
                json!({"textDocument": {"uri": URI}, "position": cursor}),
            )
            .await;
        receivers.push((number, method, receiver));
    }

    let mut answered = 0;
    for (number, method, receiver) in receivers {
        let response = wait(receiver).await;
        let expected = format!("line {number}");
        if let Some(error) = response.get("error") {
            // A completion overtaken by the next change is stale, and says so.
            assert_eq!(error["code"], -32801, "request {number}: {response}");
            assert_ne!(
                number, PAIRS,
                "nothing follows the last request, it must be answered"
            );
            continue;
        }
        let items = &response["result"]["items"];
        if items.as_array().is_some_and(Vec::is_empty) {
            // Superseded by the next request of its method before its answer came.
            assert!(
                number + 2 <= PAIRS,
                "only a request followed by another of its method is superseded: {number}"
            );
            continue;
        }
        answered += 1;
        let text = if method == "textDocument/inlineCompletion" {
            items[0]["insertText"].clone()
        } else {
            // The completion item inserts the word being typed plus the suggestion.
            let new_text = items[0]["textEdit"]["newText"].as_str().unwrap().to_owned();
            json!(new_text
                .strip_prefix(&number.to_string())
                .unwrap_or(&new_text))
        };
        assert_eq!(text, json!(expected), "request {number}: {response}");
    }
    assert!(answered >= 1);

    // Every request that reached the cloud carried exactly its own version's text, and
    // no version was asked twice.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for received in cloud.received() {
        let prefix = received.body["prefix"].as_str().unwrap().to_owned();
        let last = prefix.rsplit('\n').next().unwrap().to_owned();
        let number: u32 = last.strip_prefix("line ").unwrap().parse().unwrap();
        assert_eq!(
            prefix.lines().count() as u32,
            number + 1,
            "prefix of {last} holds every earlier line"
        );
        *seen.entry(last).or_default() += 1;
    }
    assert!(seen.values().all(|count| *count == 1), "{seen:?}");
    assert!(
        seen.contains_key(&format!("line {PAIRS}")),
        "the last request reached the cloud: {seen:?}"
    );
    server.shutdown().await;
}

/// An answer computed for a version the user has already typed past is dropped with
/// ContentModified rather than inserted at a stale position.
#[tokio::test]
async fn a_change_during_the_network_call_gives_content_modified() {
    let cloud =
        CloudFixture::start(Reply::DelayedEcho(std::time::Duration::from_millis(300))).await;
    let server = TestServer::with_cloud(&cloud.url).await;
    server.open(URI, "abc").await;
    let (_, receiver) = server
        .send_request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": URI}, "position": {"line": 0, "character": 3}}),
        )
        .await;
    // Give the request time to reach the fixture before typing on.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    server
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": 2}, "contentChanges": [{"text": "abcd"}]}),
        )
        .await;
    let response = wait(receiver).await;
    assert_eq!(response["error"]["code"], -32801, "{response}");
    server.shutdown().await;
}

/// `$/cancelRequest` aborts the handler (and its HTTP call) and answers RequestCancelled.
#[tokio::test]
async fn cancelled_requests_answer_request_cancelled() {
    let cloud = CloudFixture::start(Reply::DelayedEcho(std::time::Duration::from_secs(5))).await;
    let server = TestServer::with_cloud(&cloud.url).await;
    server.open(URI, "abc").await;
    let (id, receiver) = server
        .send_request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": URI}, "position": {"line": 0, "character": 3}}),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    server.notify("$/cancelRequest", json!({"id": id})).await;
    let response = wait(receiver).await;
    assert_eq!(response["error"]["code"], -32800, "{response}");
    // The server is still fine afterwards.
    cloud.set_reply(Reply::EchoLastLine);
    let response = server
        .request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": URI}, "position": {"line": 0, "character": 3}}),
        )
        .await;
    assert_eq!(response["result"]["items"][0]["insertText"], "abc");
    server.shutdown().await;
}
