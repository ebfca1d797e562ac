//! Speed and cost: debounce, superseding, cancellation, deduplication, the cache and
//! typing-through, each observed at the loopback cloud.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::fixture::{CloudFixture, Reply};
use super::harness::{wait, TestServer};

const URI: &str = "file:///ws/src/lib.rs";

/// `triggerKind` 1 is invoked by the user, 2 automatic while typing.
fn inline(line: u32, character: u32, trigger_kind: u8) -> Value {
    json!({
        "textDocument": {"uri": URI},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": trigger_kind},
    })
}

fn completion(line: u32, character: u32) -> Value {
    json!({"textDocument": {"uri": URI}, "position": {"line": line, "character": character}})
}

async fn server(cloud: &CloudFixture, debounce_ms: u64) -> TestServer {
    TestServer::start(
        json!({"server": cloud.url, "apiKey": "tdm_test_key_0123456789", "debounceMs": debounce_ms}),
        json!({}),
    )
    .await
}

/// Replaces the whole text (the harness's simplest edit).
async fn set_text(server: &TestServer, version: i32, text: &str) {
    server
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": version}, "contentChanges": [{"text": text}]}),
        )
        .await;
}

fn insert_text(response: &Value) -> Value {
    response["result"]["items"][0]["insertText"].clone()
}

#[tokio::test]
async fn automatic_requests_wait_for_the_debounce_and_invoked_ones_do_not() {
    let cloud = CloudFixture::start(Reply::Text("()")).await;
    let server = server(&cloud, 400).await;
    server.open(URI, "call").await;

    let started = Instant::now();
    let (_, automatic) = server
        .send_request("textDocument/inlineCompletion", inline(0, 4, 2))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        cloud.received().is_empty(),
        "nothing is sent during the debounce"
    );
    assert_eq!(insert_text(&wait(automatic).await), "()");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(cloud.received().len(), 1);

    // Invoked: no debounce. A new position so the cache does not answer.
    server.open("file:///ws/src/other.rs", "x").await;
    let started = Instant::now();
    let response = server
        .request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": "file:///ws/src/other.rs"}, "position": {"line": 0, "character": 1}, "context": {"triggerKind": 1}}),
        )
        .await;
    assert_eq!(insert_text(&response), "()");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

/// `textDocument/completion` is always debounced (editors send it on every keystroke).
#[tokio::test]
async fn completion_requests_are_debounced_and_superseded() {
    let cloud = CloudFixture::start(Reply::Text("_x")).await;
    let server = server(&cloud, 200).await;
    server.open(URI, "ab").await;
    let (_, first) = server
        .send_request("textDocument/completion", completion(0, 1))
        .await;
    let (_, second) = server
        .send_request("textDocument/completion", completion(0, 2))
        .await;
    let first = wait(first).await;
    assert_eq!(first["result"]["items"], json!([]), "{first}");
    let second = wait(second).await;
    assert_eq!(second["result"]["items"][0]["textEdit"]["newText"], "ab_x");
    assert_eq!(cloud.received().len(), 1, "only the newest request is sent");
    assert_eq!(cloud.received()[0].body["prefix"], "ab");
    server.shutdown().await;
}

#[tokio::test]
async fn a_newer_request_supersedes_one_in_the_debounce_without_any_call() {
    let cloud = CloudFixture::start(Reply::EchoLastLine).await;
    let server = server(&cloud, 150).await;
    server.open(URI, "a").await;
    let (_, older) = server
        .send_request("textDocument/inlineCompletion", inline(0, 1, 2))
        .await;
    set_text(&server, 2, "ab").await;
    let (_, newer) = server
        .send_request("textDocument/inlineCompletion", inline(0, 2, 2))
        .await;
    let older = wait(older).await;
    assert_eq!(older["result"], json!({"items": []}), "{older}");
    assert_eq!(insert_text(&wait(newer).await), "ab");
    assert_eq!(cloud.received().len(), 1);
    server.shutdown().await;
}

/// The superseded request's HTTP call is aborted: the cloud sees the connection close
/// before it answered, and the superseded request answers at once, not when the slow
/// cloud would have.
#[tokio::test]
async fn a_newer_request_aborts_the_call_in_flight() {
    let cloud = CloudFixture::start(Reply::DelayedText(Duration::from_secs(10), "stale()")).await;
    let server = server(&cloud, 0).await;
    server.open(URI, "a").await;
    let (_, older) = server
        .send_request("textDocument/inlineCompletion", inline(0, 1, 1))
        .await;
    cloud.wait_for_requests(1).await;
    cloud.set_reply(Reply::Text("fresh()"));
    set_text(&server, 2, "ab").await;
    let started = Instant::now();
    let (_, newer) = server
        .send_request("textDocument/inlineCompletion", inline(0, 2, 1))
        .await;
    let older = wait(older).await;
    assert_eq!(older["result"], json!({"items": []}), "{older}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(insert_text(&wait(newer).await), "fresh()");
    cloud.wait_for_aborted(1).await;
    server.shutdown().await;
}

/// `$/cancelRequest` during the debounce: RequestCancelled, and nothing is sent.
#[tokio::test]
async fn a_cancelled_request_in_the_debounce_never_calls() {
    let cloud = CloudFixture::start(Reply::Text("x")).await;
    let server = server(&cloud, 300).await;
    server.open(URI, "a").await;
    let (id, receiver) = server
        .send_request("textDocument/inlineCompletion", inline(0, 1, 2))
        .await;
    server.notify("$/cancelRequest", json!({"id": id})).await;
    let response = wait(receiver).await;
    assert_eq!(response["error"]["code"], -32800, "{response}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cloud.received().is_empty());
    server.shutdown().await;
}

/// An inline completion and a completion for the same keystroke (as VS Code sends
/// them) build the same request body and share one upstream call.
#[tokio::test]
async fn identical_requests_in_flight_share_one_call() {
    let cloud = CloudFixture::start(Reply::DelayedText(Duration::from_millis(300), "_y")).await;
    let server = server(&cloud, 0).await;
    server.open(URI, "let x").await;
    let (_, inline_answer) = server
        .send_request("textDocument/inlineCompletion", inline(0, 5, 1))
        .await;
    let (_, completion_answer) = server
        .send_request("textDocument/completion", completion(0, 5))
        .await;
    assert_eq!(insert_text(&wait(inline_answer).await), "_y");
    let completion_answer = wait(completion_answer).await;
    assert_eq!(
        completion_answer["result"]["items"][0]["textEdit"]["newText"],
        "x_y"
    );
    assert_eq!(cloud.received().len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn an_identical_request_is_answered_from_the_cache() {
    let cloud = CloudFixture::start(Reply::Text("cached()")).await;
    let server = server(&cloud, 300).await;
    server.open(URI, "fn main() {\n    run\n}").await;
    let first = server
        .request("textDocument/inlineCompletion", inline(1, 7, 1))
        .await;
    assert_eq!(insert_text(&first), "cached()");
    // Automatic, yet answered at once: a cache hit needs no debounce.
    let started = Instant::now();
    let second = server
        .request("textDocument/inlineCompletion", inline(1, 7, 2))
        .await;
    assert_eq!(insert_text(&second), "cached()");
    assert!(started.elapsed() < Duration::from_millis(250));
    assert_eq!(cloud.received().len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn typing_the_start_of_the_suggestion_serves_the_rest_without_a_call() {
    let cloud = CloudFixture::start(Reply::Text("o_bar(1)")).await;
    let server = server(&cloud, 300).await;
    server.open(URI, "let x = fo;").await;
    let response = server
        .request("textDocument/inlineCompletion", inline(0, 10, 1))
        .await;
    assert_eq!(insert_text(&response), "o_bar(1)");

    let mut version = 1;
    for (typed, rest) in [("let x = foo;", "_bar(1)"), ("let x = foo_b;", "ar(1)")] {
        version += 1;
        set_text(&server, version, typed).await;
        let cursor = typed.len() as u32 - 1;
        let started = Instant::now();
        let response = server
            .request("textDocument/inlineCompletion", inline(0, cursor, 2))
            .await;
        assert_eq!(insert_text(&response), rest, "{response}");
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "no debounce"
        );
        assert_eq!(
            response["result"]["items"][0]["range"]["start"]["character"],
            cursor
        );
    }
    assert_eq!(cloud.received().len(), 1, "typing through made no call");

    // A character the suggestion did not predict goes to the cloud again.
    cloud.set_reply(Reply::Text("z()"));
    set_text(&server, version + 1, "let x = foo_bx;").await;
    let response = server
        .request("textDocument/inlineCompletion", inline(0, 14, 1))
        .await;
    assert_eq!(insert_text(&response), "z()");
    assert_eq!(cloud.received().len(), 2);
    server.shutdown().await;
}

/// Deleting back over a typed-through character must not resurrect the suggestion
/// for a text that no longer matches it.
#[tokio::test]
async fn deleting_does_not_type_through() {
    let cloud = CloudFixture::start(Reply::Text("o_bar()")).await;
    let server = server(&cloud, 0).await;
    server.open(URI, "fo").await;
    server
        .request("textDocument/inlineCompletion", inline(0, 2, 1))
        .await;
    cloud.set_reply(Reply::Text("new()"));
    set_text(&server, 2, "f").await;
    let response = server
        .request("textDocument/inlineCompletion", inline(0, 1, 1))
        .await;
    assert_eq!(insert_text(&response), "new()");
    assert_eq!(cloud.received().len(), 2);
    server.shutdown().await;
}

/// A burst of automatic requests each followed by an edit: every request is answered
/// exactly once, only the last reaches the cloud, and no answer names an old version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typing_burst_makes_one_call_and_shows_no_stale_suggestion() {
    let cloud = CloudFixture::start(Reply::EchoLastLine).await;
    let server = server(&cloud, 75).await;
    let mut text = String::from("let word = ");
    server.open(URI, &text).await;
    let mut pending = Vec::new();
    for (index, character) in "abcdefghijklmnopqrst".chars().enumerate() {
        text.push(character);
        set_text(&server, index as i32 + 2, &text).await;
        let (_, receiver) = server
            .send_request(
                "textDocument/inlineCompletion",
                inline(0, text.len() as u32, 2),
            )
            .await;
        pending.push((text.clone(), receiver));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = pending.len() - 1;
    for (index, (text, receiver)) in pending.into_iter().enumerate() {
        let response = wait(receiver).await;
        if index == last {
            assert_eq!(insert_text(&response), json!(text));
        } else {
            assert_eq!(response["result"], json!({"items": []}), "{response}");
        }
    }
    assert_eq!(cloud.received().len(), 1);
    server.shutdown().await;
}
