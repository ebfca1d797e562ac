//! Streamed completions from the real `tandem-cloud` binary over a socket: events leave
//! the server as the vendor sends its pieces, not once the answer is complete.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tandem_e2e::{CloudOptions, CloudServer, ProviderConfig, ProviderFixture};
use tandem_shared::stream::{Delta, EVENT_DELTA, EVENT_DONE};
use tandem_shared::CompletionResponse;

use crate::support::{MODEL, PROVIDER_KEY};

/// Pause the vendor makes before each piece.
const PIECE_DELAY: Duration = Duration::from_millis(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_arrive_while_the_vendor_is_still_writing() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    // Ten pieces of four characters, then Anthropic's closing events.
    provider.reply_with_text("0123456789".repeat(4));
    provider.set_chunk_delay(PIECE_DELAY);
    let options =
        CloudOptions::with_provider(ProviderConfig::anthropic(&provider, MODEL, PROVIDER_KEY));
    let cloud = CloudServer::start(options).await.expect("tandem-cloud");
    let started = Instant::now();
    let mut response = reqwest::Client::new()
        .post(format!("{}/v1/completions", cloud.url()))
        .bearer_auth(cloud.api_key())
        .json(
            &json!({"language": "rust", "path": "src/lib.rs", "prefix": "fn a() {",
            "suffix": "}", "stream": true}),
        )
        .send()
        .await
        .expect("POST /v1/completions");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");

    // Each read returns what the server flushed; note when the first text arrived.
    let mut text = String::new();
    let mut first_delta_after = None;
    while let Some(chunk) = response.chunk().await.expect("the stream reads to its end") {
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        if first_delta_after.is_none() && text.contains("event: delta") {
            first_delta_after = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let first = first_delta_after.expect("a delta event");
    // The vendor needs 14 pauses for its whole answer; the first text leaves after 4.
    assert!(
        first * 2 < total,
        "first delta after {first:?}, whole answer after {total:?}: buffered?"
    );

    let mut joined = String::new();
    let mut done = None;
    for block in text.split("\n\n").filter(|block| !block.is_empty()) {
        let name = block.lines().find_map(|line| line.strip_prefix("event: "));
        let data = block.lines().find_map(|line| line.strip_prefix("data: "));
        match (name, data) {
            (Some(EVENT_DELTA), Some(data)) => {
                let delta: Delta = serde_json::from_str(data).expect("a delta");
                joined.push_str(&delta.text);
            }
            (Some(EVENT_DONE), Some(data)) => {
                done = Some(serde_json::from_str::<CompletionResponse>(data).expect("done"));
            }
            other => panic!("unexpected event {other:?} in {text}"),
        }
    }
    let done = done.expect("a done event");
    assert_eq!(joined, "0123456789".repeat(4));
    assert_eq!(done.choices[0].text, joined);
    assert_eq!(done.usage.completion_tokens, 10);
    let sent: Value = provider.requests().pop().expect("one request").body;
    assert_eq!(sent["stream"], true);
}
