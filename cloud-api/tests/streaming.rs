//! `"stream": true` on `/v1/completions` against the loopback vendor fixture speaking each
//! vendor's streaming format: deltas as the vendor sends them, a final event carrying the
//! usage that was recorded before it, fallback only before the first text, in-stream
//! errors, and a client that hangs up closing the vendor's stream.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use common::{completion_body, fixture_provider, joined_deltas, read_events, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};
use tandem_cloud::db::on;
use tandem_e2e::ProviderFixture;

fn stream_body() -> Value {
    let mut body = completion_body();
    body["stream"] = json!(true);
    body
}

/// The usage row of `request_id`: (status, provider, prompt, completion tokens).
async fn usage_row(app: &TestApp, request_id: &str) -> Option<(i64, Option<String>, i64, i64)> {
    on!(
        &app.state.db,
        sqlx::query_as(
            "SELECT status, provider, prompt_tokens, completion_tokens FROM usage \
             WHERE request_id = $1",
        )
        .bind(request_id),
        fetch_optional
    )
    .unwrap()
}

/// Every usage row's (status, provider), oldest first.
async fn usage_rows(app: &TestApp) -> Vec<(i64, Option<String>)> {
    on!(
        &app.state.db,
        sqlx::query_as("SELECT status, provider FROM usage ORDER BY created_at, id"),
        fetch_all
    )
    .unwrap()
}

#[tokio::test]
async fn every_vendor_streams_deltas_then_the_recorded_answer() {
    // Chat models' fences are stripped as the answer streams; FIM models' text is kept.
    let cases = [
        (
            "ollama",
            "completions",
            "let total = a + b;\n",
            "let total = a + b;\n",
        ),
        (
            "openai",
            "completions",
            "let total = a + b;",
            "let total = a + b;",
        ),
        (
            "openai",
            "chat",
            "```rust\nlet total = a + b;\n```",
            "let total = a + b;",
        ),
        (
            "anthropic",
            "chat",
            "```rust\nlet total = a + b;\n```",
            "let total = a + b;",
        ),
        ("google", "chat", "let total = a + b;", "let total = a + b;"),
    ];
    for (kind, endpoint, reply, expected) in cases {
        let fixture = ProviderFixture::start().await.unwrap();
        fixture.reply_with_text(reply);
        let app = TestApp::new(&fixture_provider("vendor", kind, &fixture, endpoint)).await;
        let response = app.post_unread("/v1/completions", &stream_body()).await;
        assert_eq!(response.status(), 200, "{kind}/{endpoint}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "text/event-stream", "{kind}");
        assert!(headers.contains_key("ratelimit"), "{headers:?}");
        let events = read_events(response).await;

        let deltas = events.iter().filter(|(name, _)| name == "delta").count();
        assert!(deltas >= 2, "{kind}/{endpoint}: pieces as sent, {events:?}");
        assert_eq!(joined_deltas(&events), expected, "{kind}/{endpoint}");
        let (last, done) = events.last().unwrap();
        assert_eq!(last, "done", "{kind}/{endpoint}: {events:?}");
        assert_eq!(done["choices"][0]["text"], expected);
        assert_eq!(done["provider"], "vendor");
        assert_eq!(done["model"], "model-vendor");
        // The vendor's own counts (the fixture counts four characters a token).
        let completion_tokens = (reply.chars().count() as u64).div_ceil(4);
        assert_eq!(
            done["usage"]["completion_tokens"], completion_tokens,
            "{kind}/{endpoint}: {done}"
        );

        // The record was committed before the final event was sent.
        let id = done["id"].as_str().unwrap();
        let (status, provider, prompt, completion) = usage_row(&app, id).await.unwrap();
        assert_eq!((status, provider.as_deref()), (200, Some("vendor")));
        assert_eq!(prompt, done["usage"]["prompt_tokens"].as_i64().unwrap());
        assert_eq!(completion as u64, completion_tokens);

        let sent = fixture.requests().pop().unwrap();
        if kind == "google" {
            assert!(
                sent.path.ends_with(":streamGenerateContent"),
                "{}",
                sent.path
            );
            assert_eq!(sent.query.as_deref(), Some("alt=sse"));
        } else {
            assert_eq!(sent.body["stream"], true, "{kind}");
        }
        if kind == "openai" {
            assert_eq!(sent.body["stream_options"]["include_usage"], true);
        }
    }
}

#[tokio::test]
async fn a_vendor_failing_before_any_text_is_replaced_by_the_next() {
    let first = ProviderFixture::start().await.unwrap();
    let second = ProviderFixture::start().await.unwrap();
    // Anthropic's start events, then its overloaded error: no text yet.
    first.break_streams_after(2);
    second.reply_with_text("from the second");
    let config = format!(
        "{}{}",
        fixture_provider("first", "anthropic", &first, ""),
        fixture_provider("second", "ollama", &second, "")
    );
    let app = TestApp::new(&config).await;
    let events = read_events(app.post_unread("/v1/completions", &stream_body()).await).await;
    assert_eq!(joined_deltas(&events), "from the second");
    let (last, done) = events.last().unwrap();
    assert_eq!(
        (last.as_str(), &done["provider"]),
        ("done", &json!("second"))
    );
    assert_eq!(first.request_count(), 1);

    // Every vendor failing before the stream starts is a plain JSON error.
    second.fail_with(503);
    let response = app.post_unread("/v1/completions", &stream_body()).await;
    // The last vendor's 503 is a provider error (502) to the client.
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["content-type"], "application/json");
    let rows = usage_rows(&app).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1], (502, Some("second".to_owned())));
}

#[tokio::test]
async fn a_stream_broken_after_text_ends_with_an_error_event() {
    for (kind, code) in [
        // Anthropic's in-stream overloaded error, reported as its status (529) would be.
        ("anthropic", "provider_error"),
        // The connection dropped mid-body.
        ("ollama", "provider_unavailable"),
    ] {
        let broken = ProviderFixture::start().await.unwrap();
        let spare = ProviderFixture::start().await.unwrap();
        broken.reply_with_text("a".repeat(64));
        broken.break_streams_after(6);
        let config = format!(
            "{}{}",
            fixture_provider("broken", kind, &broken, ""),
            fixture_provider("spare", "ollama", &spare, "")
        );
        let app = TestApp::new(&config).await;
        let events = read_events(app.post_unread("/v1/completions", &stream_body()).await).await;
        let text = joined_deltas(&events);
        assert!(!text.is_empty() && text.len() < 64, "{kind}: {events:?}");
        let (last, error) = events.last().unwrap();
        assert_eq!(last, "error", "{kind}: {events:?}");
        assert_eq!(error["error"]["code"], code, "{kind}: {error}");
        // Text already reached the client: another vendor cannot take over.
        assert_eq!(spare.request_count(), 0, "{kind}");
        let rows = usage_rows(&app).await;
        assert_eq!(rows.len(), 1);
        assert!(rows[0].0 >= 500, "{kind}: {rows:?}");
        assert_eq!(rows[0].1.as_deref(), Some("broken"));
    }
}

#[tokio::test]
async fn a_client_that_hangs_up_closes_the_vendor_stream() {
    let fixture = ProviderFixture::start().await.unwrap();
    fixture.reply_with_text("x".repeat(400));
    fixture.set_chunk_delay(Duration::from_millis(20));
    let app = TestApp::new(&fixture_provider("slow", "openai", &fixture, "completions")).await;
    let response = app.post_unread("/v1/completions", &stream_body()).await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body().into_data_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(
        std::str::from_utf8(&first)
            .unwrap()
            .contains("event: delta"),
        "{first:?}"
    );
    drop(body);

    fixture
        .wait_for_abandoned_streams(1, Duration::from_secs(5))
        .await
        .unwrap();
    // Recorded as closed by the client, with what was generated until then.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rows = usage_rows(&app).await;
        if let Some(row) = rows.first() {
            assert_eq!(row.0, 499, "{rows:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no usage row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = app
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .text;
    assert!(
        metrics.contains(r#"tandem_streams_total{ending="client_closed"} 1"#),
        "{metrics}"
    );
}
