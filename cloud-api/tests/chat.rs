//! `POST /v1/chat` against the loopback vendor fixture: each vendor's chat format, the
//! prompt built from the structured request, prose kept and code unfenced, streaming,
//! the tier's features, retries with the refused answer, and servers with no provider
//! that can chat.

mod common;

use common::{fixture_provider, joined_deltas, read_events, TestApp};
use serde_json::{json, Value};
use tandem_cloud::db::on;
use tandem_cloud::db::{api_keys, users};
use tandem_cloud::keys;
use tandem_e2e::ProviderFixture;
use tandem_shared::Tier;

fn chat_body(task: &str) -> Value {
    let mut body = json!({
        "task": task,
        "language": "rust",
        "path": "src/math.rs",
        "code": "fn add(a: i32, b: i32) -> i32 { a - b }",
        "start_line": 4,
        "prefix": "use std::ops::Add;\n\n/// Sums.\n",
        "suffix": "\n",
    });
    if task == "fix" {
        body["diagnostics"] = json!([{
            "line": 4, "end_line": 4, "severity": "error", "source": "clippy",
            "message": "`add` subtracts",
        }]);
    }
    if task == "ask" {
        body["question"] = json!("Is this overflow-safe?");
    }
    body
}

/// The usage row of `request_id`: (endpoint, task, status, provider).
async fn usage_row(app: &TestApp, request_id: &str) -> (String, String, i64, Option<String>) {
    on!(
        &app.state.db,
        sqlx::query_as("SELECT endpoint, task, status, provider FROM usage WHERE request_id = $1")
            .bind(request_id),
        fetch_one
    )
    .unwrap()
}

#[tokio::test]
async fn every_vendor_answers_prose_as_is_and_code_without_fences() {
    // (kind, OpenAI endpoint, path the conversation must go to)
    let vendors = [
        ("ollama", "", "/api/chat"),
        // A completions-endpoint provider still holds conversations at chat/completions.
        ("openai", "completions", "/v1/chat/completions"),
        ("anthropic", "", "/v1/messages"),
        ("google", "", "/v1beta/models/model-vendor:generateContent"),
    ];
    for (kind, endpoint, path) in vendors {
        let fixture = ProviderFixture::start().await.unwrap();
        let app = TestApp::new(&fixture_provider("vendor", kind, &fixture, endpoint)).await;

        let prose = "It **subtracts**:\n\n```rust\nadd(2, 1) == 1\n```";
        fixture.reply_with_text(prose);
        let reply = app.chat(chat_body("explain")).await;
        assert_eq!(reply.status, 200, "{kind}: {}", reply.text);
        assert_eq!(reply.json["text"], prose, "{kind}: prose keeps its fences");
        assert_eq!(reply.json["task"], "explain");
        assert_eq!(reply.json["provider"], "vendor");
        assert!(reply.json["id"].as_str().unwrap().starts_with("chat-"));
        assert!(reply.json["usage"]["completion_tokens"].as_u64().unwrap() > 0);
        assert!(reply.headers.contains_key("ratelimit"), "{kind}");

        let sent = fixture.requests().pop().unwrap();
        assert_eq!(sent.path, path, "{kind}");
        let system = sent.system_prompt().unwrap_or_default();
        assert!(system.starts_with("You are Tandem"), "{kind}: {system}");
        let turns = sent.turns();
        assert_eq!(turns.len(), 1, "{kind}: {turns:?}");
        let (role, user) = &turns[0];
        assert_eq!(role, "user");
        assert!(
            user.contains(
                "/// Sums.\n<selection>fn add(a: i32, b: i32) -> i32 { a - b }</selection>\n"
            ),
            "{kind}: {user}"
        );
        assert!(user.contains("starts on line 4"), "{kind}: {user}");

        fixture.reply_with_text("```rust\nfn add(a: i32, b: i32) -> i32 { a + b }\n```");
        let reply = app.chat(chat_body("fix")).await;
        assert_eq!(reply.status, 200, "{kind}: {}", reply.text);
        assert_eq!(
            reply.json["text"], "fn add(a: i32, b: i32) -> i32 { a + b }",
            "{kind}: code loses its fences"
        );
        let sent = fixture.requests().pop().unwrap();
        let (_, user) = &sent.turns()[0];
        assert!(
            user.contains("- line 4 (error clippy): `add` subtracts"),
            "{kind}: {user}"
        );
        let (endpoint, task, status, provider) =
            usage_row(&app, reply.json["id"].as_str().unwrap()).await;
        assert_eq!(
            (
                endpoint.as_str(),
                task.as_str(),
                status,
                provider.as_deref()
            ),
            ("/v1/chat", "fix", 200, Some("vendor"))
        );
    }
}

#[tokio::test]
async fn streamed_answers_end_with_the_chat_response() {
    for kind in ["ollama", "openai", "anthropic", "google"] {
        let fixture = ProviderFixture::start().await.unwrap();
        fixture.reply_with_text("```rust\n/// Adds.\nfn add(a: i32, b: i32) -> i32 { a + b }\n```");
        let app = TestApp::new(&fixture_provider("vendor", kind, &fixture, "chat")).await;
        let mut body = chat_body("document");
        body["stream"] = json!(true);
        let response = app.post_unread("/v1/chat", &body).await;
        assert_eq!(response.status(), 200, "{kind}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let events = read_events(response).await;
        let expected = "/// Adds.\nfn add(a: i32, b: i32) -> i32 { a + b }";
        assert_eq!(joined_deltas(&events), expected, "{kind}: {events:?}");
        let (last, done) = events.last().unwrap();
        assert_eq!(last, "done", "{kind}");
        assert_eq!(done["task"], "document");
        assert_eq!(done["text"], expected);
        let (endpoint, task, status, _) = usage_row(&app, done["id"].as_str().unwrap()).await;
        assert_eq!(
            (endpoint.as_str(), task.as_str(), status),
            ("/v1/chat", "document", 200)
        );
    }
}

#[tokio::test]
async fn each_task_needs_its_tier_feature() {
    let fixture = ProviderFixture::start().await.unwrap();
    fixture.reply_with_text("answer");
    let mut app = TestApp::new(&fixture_provider("local-ollama", "ollama", &fixture, "")).await;
    // The default free tier has chat and explanation, not code actions.
    let user = users::create(&app.state.db, "free@example.com", Tier::free())
        .await
        .unwrap();
    let key = keys::generate();
    api_keys::insert(&app.state.db, &user, "free", &key)
        .await
        .unwrap();
    app.key = key.secret;
    for task in ["explain", "ask"] {
        let reply = app.chat(chat_body(task)).await;
        assert_eq!(reply.status, 200, "{task}: {}", reply.text);
    }
    for task in ["fix", "document", "generate_tests", "simplify"] {
        let reply = app.chat(chat_body(task)).await;
        let message = reply.assert_error(403, "forbidden");
        assert_eq!(reply.json["error"]["feature"], "code_actions", "{task}");
        assert_eq!(reply.json["error"]["tier"], "free");
        assert_eq!(reply.json["error"]["required_tier"], "pro");
        assert!(message.contains("code_actions"), "{message}");
    }
    assert_eq!(fixture.request_count(), 2);
}

#[tokio::test]
async fn bad_requests_are_named_and_reach_no_vendor() {
    let fixture = ProviderFixture::start().await.unwrap();
    let app = TestApp::new(&fixture_provider("vendor", "ollama", &fixture, "")).await;
    let mut fix = chat_body("fix");
    fix.as_object_mut().unwrap().remove("diagnostics");
    let message = app.chat(fix).await.assert_error(422, "invalid_request");
    assert!(
        message.contains("task `fix` needs `diagnostics`"),
        "{message}"
    );
    let mut unknown = chat_body("explain");
    unknown["task"] = json!("dance");
    let message = app.chat(unknown).await.assert_error(400, "malformed_body");
    assert!(
        message.contains("unknown variant `dance`, expected one of `explain`"),
        "{message}"
    );
    let mut huge = chat_body("explain");
    huge["code"] = json!("x ".repeat(20_000));
    let reply = app.chat(huge).await;
    reply.assert_error(422, "context_too_large");
    assert_eq!(reply.json["error"]["limit"], "max_context_tokens");
    assert_eq!(fixture.request_count(), 0);
}

#[tokio::test]
async fn a_retry_shows_the_model_its_refused_answer() {
    let fixture = ProviderFixture::start().await.unwrap();
    fixture.reply_with_text("fn add(a: i32, b: i32) -> i32 { a + b }");
    let app = TestApp::new(&fixture_provider("vendor", "anthropic", &fixture, "")).await;
    let mut body = chat_body("simplify");
    body["retry"] = json!({
        "answer": "fn add(a: i32, b: i32 -> i32 { a + b }",
        "problem": "line 4: syntax error near `->`",
    });
    let reply = app.chat(body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let turns = fixture.requests().pop().unwrap().turns();
    let roles: Vec<&str> = turns.iter().map(|(role, _)| role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(turns[1].1, "fn add(a: i32, b: i32 -> i32 { a + b }");
    assert!(
        turns[2].1.contains("line 4: syntax error near `->`"),
        "{}",
        turns[2].1
    );
}

#[tokio::test]
async fn providers_that_cannot_chat_are_passed_over() {
    // Only the built-in provider: nothing can explain, and the answer says what to do.
    let app = TestApp::new("").await;
    let message = app
        .chat(chat_body("explain"))
        .await
        .assert_error(503, "provider_unavailable");
    assert!(message.contains("add a model provider"), "{message}");
    // Completions still work there.
    assert_eq!(app.complete(common::completion_body()).await.status, 200);

    // A `local` provider listed first is skipped for chat, not tried and failed.
    let fixture = ProviderFixture::start().await.unwrap();
    fixture.reply_with_text("It adds.");
    let config = format!(
        "[[providers]]\nname = \"offline\"\nkind = \"local\"\n\n{}",
        fixture_provider("vendor", "ollama", &fixture, "")
    );
    let app = TestApp::new(&config).await;
    let reply = app.chat(chat_body("explain")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["provider"], "vendor");
    let completion = app.complete(common::completion_body()).await;
    assert_eq!(completion.json["provider"], "offline");
}
