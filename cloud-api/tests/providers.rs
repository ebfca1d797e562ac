//! The network providers against a loopback vendor fixture speaking the real wire formats:
//! the exact JSON each vendor receives, and how each vendor failure reaches the client.

mod common;

use std::time::Duration;

use common::{
    closed_port_url, completion_body, provider_toml, Answer, TestApp, Vendor, PROVIDER_KEY,
    PROVIDER_KEY_ENV,
};
use serde_json::json;

fn ollama_success() -> Answer {
    Answer::json(
        200,
        json!({
            "model": "test-model",
            "created_at": "2026-01-01T00:00:00Z",
            "response": "d(a: i32) -> i32 { a }",
            "done": true,
            "done_reason": "stop",
            "prompt_eval_count": 21,
            "eval_count": 9
        }),
    )
}

fn openai_completions_success() -> Answer {
    Answer::json(
        200,
        json!({
            "id": "cmpl-vendor",
            "object": "text_completion",
            "created": 1,
            "model": "test-model-2024",
            "choices": [{"text": " + b", "index": 0, "logprobs": null, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        }),
    )
}

fn openai_chat_success(content: &str) -> Answer {
    Answer::json(
        200,
        json!({
            "id": "chatcmpl-vendor",
            "object": "chat.completion",
            "created": 1,
            "model": "test-model",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 40, "completion_tokens": 4, "total_tokens": 44}
        }),
    )
}

fn openai_error(status: u16, message: &str) -> Answer {
    Answer::json(
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
    )
}

#[tokio::test]
async fn ollama_receives_the_generate_wire_format() {
    let vendor = Vendor::start(ollama_success()).await;
    let app = TestApp::new(&provider_toml("ollama", &vendor.base_url, "")).await;
    let mut body = completion_body();
    body["max_tokens"] = json!(64);
    body["temperature"] = json!(0.5);
    body["stop"] = json!(["\n\n"]);
    let reply = app.complete(body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let received = vendor.only_request();
    assert_eq!(received.method, "POST");
    assert_eq!(received.path, "/api/generate");
    assert_eq!(received.authorization, None);
    assert_eq!(received.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        received.body,
        json!({
            "model": "test-model",
            "prompt": "fn add(a: i32) -> i32 { a }\nfn ad",
            "suffix": "\n",
            "stream": false,
            "options": {"num_predict": 64, "temperature": 0.5, "stop": ["\n\n"]}
        })
    );

    let mut answer = reply.json.clone();
    answer["id"] = json!("cmpl-X");
    assert_eq!(
        answer,
        json!({
            "id": "cmpl-X",
            "choices": [{"index": 0, "text": "d(a: i32) -> i32 { a }", "finish_reason": "stop"}],
            "provider": "ollama",
            "model": "test-model",
            "usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}
        })
    );
}

#[tokio::test]
async fn ollama_gets_server_defaults_and_no_empty_stop() {
    let vendor = Vendor::start(ollama_success()).await;
    let app = TestApp::new(&provider_toml(
        "ollama",
        &format!("{}/", vendor.base_url),
        "",
    ))
    .await;
    assert_eq!(app.complete(completion_body()).await.status, 200);
    let received = vendor.only_request();
    assert_eq!(received.path, "/api/generate");
    assert_eq!(
        received.body["options"],
        json!({"num_predict": 128, "temperature": 0.2})
    );
}

#[tokio::test]
async fn ollama_counts_missing_are_estimated() {
    let vendor = Vendor::start(Answer::json(
        200,
        json!({"model": "test-model", "response": "abcde", "done": true}),
    ))
    .await;
    let app = TestApp::new(&provider_toml("ollama", &vendor.base_url, "")).await;
    let reply = app.complete(completion_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["usage"],
        json!({"prompt_tokens": 25, "completion_tokens": 2, "total_tokens": 27})
    );
    assert!(reply.json["choices"][0].get("finish_reason").is_none());
}

#[tokio::test]
async fn ollama_error_is_502_without_the_vendor_text() {
    let vendor = Vendor::start(Answer::json(404, json!({"error": "model 'x' not found"}))).await;
    let app = TestApp::new(&provider_toml("ollama", &vendor.base_url, "")).await;
    let reply = app.complete(completion_body()).await;
    let message = reply.assert_error(502, "provider_error");
    assert_eq!(message, "provider `ollama` returned HTTP 404");
    // Vendor messages echo request details; they go to the operator's log only.
    assert!(!reply.text.contains("not found"));
}

#[tokio::test]
async fn openai_completions_receive_prompt_suffix_and_the_provider_key() {
    let vendor = Vendor::start(openai_completions_success()).await;
    let app = TestApp::new(&provider_toml(
        "openai",
        &format!("{}/v1", vendor.base_url),
        &format!("api_key_env = \"{PROVIDER_KEY_ENV}\""),
    ))
    .await;
    let mut body = completion_body();
    body["max_tokens"] = json!(16);
    let reply = app.complete(body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let received = vendor.only_request();
    assert_eq!(received.path, "/v1/completions");
    assert_eq!(
        received.authorization.as_deref(),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(
        received.body,
        json!({
            "model": "test-model",
            "prompt": "fn add(a: i32) -> i32 { a }\nfn ad",
            "suffix": "\n",
            "max_tokens": 16,
            "temperature": 0.2
        })
    );
    let mut answer = reply.json.clone();
    answer["id"] = json!("cmpl-X");
    assert_eq!(
        answer,
        json!({
            "id": "cmpl-X",
            "choices": [{"index": 0, "text": " + b", "finish_reason": "length"}],
            "provider": "openai",
            "model": "test-model-2024",
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        })
    );
}

#[tokio::test]
async fn openai_chat_receives_a_fill_in_the_middle_prompt() {
    let vendor = Vendor::start(openai_chat_success("```rust\nd(a: i32) -> i32 { a }\n```")).await;
    let app = TestApp::new(&provider_toml(
        "openai",
        &format!("{}/v1/", vendor.base_url),
        &format!("endpoint = \"chat\"\napi_key_env = \"{PROVIDER_KEY_ENV}\""),
    ))
    .await;
    let mut body = completion_body();
    body["stop"] = json!(["\n\n"]);
    let reply = app.complete(body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let received = vendor.only_request();
    assert_eq!(received.path, "/v1/chat/completions");
    assert_eq!(
        received.authorization.as_deref(),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(
        received.body,
        json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": tandem_cloud::prompt::chat::SYSTEM_PROMPT},
                {"role": "user", "content": "Fill in the hole marked <FILL_HERE> in this rust file `src/lib.rs`.\n\nfn add(a: i32) -> i32 { a }\nfn ad<FILL_HERE>\n"}
            ],
            "max_tokens": 128,
            "temperature": 0.2,
            "stop": ["\n\n"]
        })
    );
    // The markdown fence the model added is gone.
    assert_eq!(reply.json["choices"][0]["text"], "d(a: i32) -> i32 { a }");
    assert_eq!(reply.json["usage"]["total_tokens"], 44);
}

#[tokio::test]
async fn openai_error_message_is_passed_on_without_the_key() {
    let vendor = Vendor::start(openai_error(
        401,
        &format!("Incorrect API key provided: {PROVIDER_KEY}."),
    ))
    .await;
    let app = TestApp::new(&provider_toml(
        "openai",
        &vendor.base_url,
        &format!("api_key_env = \"{PROVIDER_KEY_ENV}\""),
    ))
    .await;
    let reply = app.complete(completion_body()).await;
    let message = reply.assert_error(502, "provider_error");
    assert_eq!(message, "provider `openai` returned HTTP 401");
    assert!(!reply.text.contains("Incorrect API key"));
    assert!(!reply.text.contains(PROVIDER_KEY));
}

#[tokio::test]
async fn openai_model_not_found_is_502() {
    let vendor = Vendor::start(openai_error(404, "The model `nope` does not exist")).await;
    let app = TestApp::new(&provider_toml("openai", &vendor.base_url, "")).await;
    let message = app
        .complete(completion_body())
        .await
        .assert_error(502, "provider_error");
    assert_eq!(message, "provider `openai` returned HTTP 404");
    // No key configured, no Authorization header.
    assert_eq!(vendor.only_request().authorization, None);
}

#[tokio::test]
async fn provider_rate_limit_is_503() {
    let vendor = Vendor::start(openai_error(429, "Rate limit reached")).await;
    let app = TestApp::new(&provider_toml("openai", &vendor.base_url, "")).await;
    let message = app
        .complete(completion_body())
        .await
        .assert_error(503, "provider_unavailable");
    assert_eq!(
        message,
        "provider `openai` is rate limiting requests (HTTP 429)"
    );
}

#[tokio::test]
async fn refused_connection_is_503() {
    let base_url = closed_port_url().await;
    let app = TestApp::new(&provider_toml("ollama", &base_url, "")).await;
    let reply = app.complete(completion_body()).await;
    let message = reply.assert_error(503, "provider_unavailable");
    assert_eq!(message, "provider `ollama` is unreachable");
    // The transport error (with its address) is logged, not echoed.
    assert!(!reply.text.contains("127.0.0.1"));
}

#[tokio::test]
async fn stalled_provider_is_504() {
    let vendor = Vendor::start(ollama_success().delayed(Duration::from_secs(10))).await;
    let app = TestApp::new(&provider_toml(
        "ollama",
        &vendor.base_url,
        "timeout_ms = 200",
    ))
    .await;
    let started = std::time::Instant::now();
    let message = app
        .complete(completion_body())
        .await
        .assert_error(504, "provider_timeout");
    assert_eq!(message, "provider `ollama` did not answer within 200 ms");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn request_timeout_backstop_is_504() {
    let vendor = Vendor::start(ollama_success().delayed(Duration::from_secs(10))).await;
    let app = TestApp::new(&format!(
        "[limits]\nrequest_timeout_ms = 200\n{}",
        provider_toml("ollama", &vendor.base_url, "")
    ))
    .await;
    let message = app
        .complete(completion_body())
        .await
        .assert_error(504, "provider_timeout");
    assert_eq!(message, "request took longer than the server's limit");
}

#[tokio::test]
async fn invalid_json_from_the_provider_is_502() {
    let vendor = Vendor::start(Answer::raw(200, "{\"response\": tru", "application/json")).await;
    let app = TestApp::new(&provider_toml("ollama", &vendor.base_url, "")).await;
    let reply = app.complete(completion_body()).await;
    let message = reply.assert_error(502, "provider_error");
    assert_eq!(message, "provider `ollama` returned an unreadable response");
}

#[tokio::test]
async fn wrong_json_shape_from_the_provider_is_502() {
    let vendor = Vendor::start(Answer::json(200, json!({"choices": "none"}))).await;
    let app = TestApp::new(&provider_toml("openai", &vendor.base_url, "")).await;
    app.complete(completion_body())
        .await
        .assert_error(502, "provider_error");
}

#[tokio::test]
async fn html_error_page_is_502() {
    let vendor = Vendor::start(Answer::raw(500, "<html>oops</html>", "text/html")).await;
    let app = TestApp::new(&provider_toml("openai", &vendor.base_url, "")).await;
    let message = app
        .complete(completion_body())
        .await
        .assert_error(502, "provider_error");
    assert_eq!(message, "provider `openai` returned HTTP 500");
}

#[tokio::test]
async fn first_listed_provider_answers() {
    let first = Vendor::start(ollama_success()).await;
    let second = Vendor::start(ollama_success()).await;
    let config = format!(
        "[[providers]]\nname = \"first\"\nkind = \"ollama\"\nbase_url = \"{}\"\nmodel = \"m\"\n\
         [[providers]]\nname = \"second\"\nkind = \"ollama\"\nbase_url = \"{}\"\nmodel = \"m\"\n",
        first.base_url, second.base_url
    );
    let app = TestApp::new(&config).await;
    let reply = app.complete(completion_body()).await;
    assert_eq!(reply.json["provider"], "first");
    assert_eq!(first.received().len(), 1);
    assert!(second.received().is_empty());
}

/// `AppState::new` reads the real process environment; the variable name is unique to
/// this test so no other test can observe it.
#[tokio::test]
async fn provider_key_comes_from_the_process_environment() {
    const VARIABLE: &str = "TANDEM_CLOUD_TEST_PROCESS_ENV_KEY";
    std::env::set_var(VARIABLE, "sk-from-process-env");
    let vendor = Vendor::start(openai_completions_success()).await;
    let config = tandem_cloud::Config::parse_str(&provider_toml(
        "openai",
        &vendor.base_url,
        &format!("api_key_env = \"{VARIABLE}\""),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool = tandem_cloud::db::connect(tandem_cloud::db::options_for_file(
        &dir.path().join("db.sqlite"),
    ))
    .await
    .unwrap();
    tandem_cloud::db::migrate(&pool).await.unwrap();
    let state = tandem_cloud::AppState::new(config.clone(), pool.clone()).unwrap();
    let provider = state.providers.primary().unwrap().clone();
    let request: tandem_shared::CompletionRequest =
        serde_json::from_value(completion_body()).unwrap();
    provider.complete(&request).await.unwrap();
    assert_eq!(
        vendor.only_request().authorization.as_deref(),
        Some("Bearer sk-from-process-env")
    );

    let mut missing = config;
    missing.providers[0].api_key_env = Some("TANDEM_CLOUD_TEST_SURELY_UNSET".to_owned());
    let error = tandem_cloud::AppState::new(missing, pool).unwrap_err();
    assert_eq!(
        error.to_string(),
        "provider `openai`: environment variable `TANDEM_CLOUD_TEST_SURELY_UNSET` (named by api_key_env) is not set"
    );
}

/// A completion body with context: an import the prefix lacks and a definition from
/// another file.
fn body_with_context() -> serde_json::Value {
    let mut body = completion_body();
    body["context"] = json!({
        "imports": ["use std::fmt;"],
        "definitions": [{"path": "src/math.rs", "text": "pub fn double(x: i32) -> i32 { x * 2 }\n"}],
    });
    body
}

/// `body_with_context` in Qwen2.5-Coder's repository-level FIM format.
const QWEN_PROMPT: &str = "<|repo_name|>workspace\n\
    <|file_sep|>src/math.rs\n\
    pub fn double(x: i32) -> i32 { x * 2 }\n\
    <|file_sep|>src/lib.rs\n\
    <|fim_prefix|>use std::fmt;\n\
    fn add(a: i32) -> i32 { a }\n\
    fn ad<|fim_suffix|>\n\
    <|fim_middle|>";

fn qwen_stop() -> serde_json::Value {
    json!([
        "<|endoftext|>",
        "<|file_sep|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|fim_prefix|>",
        "<|im_end|>"
    ])
}

#[tokio::test]
async fn ollama_with_a_template_receives_the_rendered_prompt_raw() {
    let vendor = Vendor::start(ollama_success()).await;
    let app = TestApp::new(&provider_toml(
        "ollama",
        &vendor.base_url,
        "template = \"qwen\"",
    ))
    .await;
    let reply = app.complete(body_with_context()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        vendor.only_request().body,
        json!({
            "model": "test-model",
            "prompt": QWEN_PROMPT,
            "raw": true,
            "stream": false,
            "options": {"num_predict": 128, "temperature": 0.2, "stop": qwen_stop()}
        })
    );
}

#[tokio::test]
async fn openai_completions_with_a_template_receive_the_rendered_prompt_without_suffix() {
    let vendor = Vendor::start(openai_completions_success()).await;
    let app = TestApp::new(&provider_toml(
        "openai",
        &format!("{}/v1", vendor.base_url),
        "template = \"qwen\"",
    ))
    .await;
    let mut body = body_with_context();
    body["stop"] = json!(["\n\n"]);
    let reply = app.complete(body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut stop = vec![json!("\n\n")];
    stop.extend(qwen_stop().as_array().unwrap().iter().cloned());
    assert_eq!(
        vendor.only_request().body,
        json!({
            "model": "test-model",
            "prompt": QWEN_PROMPT,
            "max_tokens": 128,
            "temperature": 0.2,
            "stop": stop
        })
    );
}

#[tokio::test]
async fn template_is_detected_from_the_model_name() {
    let vendor = Vendor::start(ollama_success()).await;
    let config = format!(
        "[[providers]]\nname = \"ollama\"\nkind = \"ollama\"\nbase_url = \"{}\"\nmodel = \"codellama:7b-code\"\n",
        vendor.base_url
    );
    let app = TestApp::new(&config).await;
    assert_eq!(app.complete(completion_body()).await.status, 200);
    let received = vendor.only_request().body;
    assert_eq!(
        received["prompt"],
        "<PRE> fn add(a: i32) -> i32 { a }\nfn ad <SUF>\n <MID>"
    );
    assert_eq!(received["raw"], true);
    assert!(received.get("suffix").is_none(), "{received}");
    assert_eq!(received["options"]["stop"], json!(["<EOT>"]));
}

#[tokio::test]
async fn without_a_template_context_becomes_a_commented_preamble() {
    let vendor = Vendor::start(ollama_success()).await;
    let app = TestApp::new(&provider_toml(
        "ollama",
        &vendor.base_url,
        "template = \"none\"",
    ))
    .await;
    assert_eq!(app.complete(body_with_context()).await.status, 200);
    let received = vendor.only_request().body;
    assert_eq!(
        received["prompt"],
        "// Path: src/math.rs\npub fn double(x: i32) -> i32 { x * 2 }\n\n\
         // Path: src/lib.rs\nuse std::fmt;\nfn add(a: i32) -> i32 { a }\nfn ad"
    );
    assert_eq!(received["suffix"], "\n");
    assert!(received.get("raw").is_none(), "{received}");
}

#[tokio::test]
async fn openai_chat_includes_the_context() {
    let vendor = Vendor::start(openai_chat_success("d(a: i32) -> i32 { a }")).await;
    let app = TestApp::new(&provider_toml(
        "openai",
        &vendor.base_url,
        "endpoint = \"chat\"",
    ))
    .await;
    assert_eq!(app.complete(body_with_context()).await.status, 200);
    let received = vendor.only_request().body;
    assert_eq!(
        received["messages"][1]["content"],
        "Code from other files of the project, for reference:\n\n\
         // Path: src/math.rs\npub fn double(x: i32) -> i32 { x * 2 }\n\n\
         Fill in the hole marked <FILL_HERE> in this rust file `src/lib.rs`.\n\n\
         use std::fmt;\nfn add(a: i32) -> i32 { a }\nfn ad<FILL_HERE>\n"
    );
    assert!(received.get("suffix").is_none(), "{received}");
}

/// `[[providers]]` TOML for a provider whose key is [`PROVIDER_KEY`].
fn keyed_provider_toml(kind: &str, base_url: &str) -> String {
    provider_toml(
        kind,
        base_url,
        &format!("api_key_env = \"{PROVIDER_KEY_ENV}\""),
    )
}

/// The user message every chat provider receives for [`completion_body`].
const CHAT_USER_PROMPT: &str = "Fill in the hole marked <FILL_HERE> in this rust file `src/lib.rs`.\n\nfn add(a: i32) -> i32 { a }\nfn ad<FILL_HERE>\n";

/// The provider error for [`completion_body`], called without the HTTP layer so the
/// log message (which clients never see) can be checked too.
async fn provider_error(config: &str) -> tandem_cloud::providers::ProviderError {
    let app = TestApp::new(config).await;
    let provider = app.state.providers.primary().unwrap().clone();
    let request: tandem_shared::CompletionRequest =
        serde_json::from_value(completion_body()).unwrap();
    provider
        .complete(&request)
        .await
        .expect_err("the provider call fails")
}

fn anthropic_success(text: &str) -> Answer {
    Answer::json(
        200,
        json!({
            "id": "msg_vendor",
            "type": "message",
            "role": "assistant",
            "model": "test-model-20250101",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 40,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 7
            }
        }),
    )
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> Answer {
    Answer::json(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_vendor"}),
    )
}

#[tokio::test]
async fn anthropic_receives_the_messages_wire_format() {
    let vendor = Vendor::start(anthropic_success("```rust\nd(a: i32) -> i32 { a }\n```")).await;
    let app = TestApp::new(&keyed_provider_toml("anthropic", &vendor.base_url)).await;
    let mut body = completion_body();
    body["max_tokens"] = json!(64);
    body["temperature"] = json!(0.5);
    body["stop"] = json!(["}"]);
    let reply = app.complete(body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let received = vendor.only_request();
    assert_eq!(received.method, "POST");
    assert_eq!(received.path, "/v1/messages");
    assert_eq!(received.header("x-api-key"), Some(PROVIDER_KEY));
    assert_eq!(received.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(received.content_type.as_deref(), Some("application/json"));
    // The key travels in x-api-key only.
    assert_eq!(received.authorization, None);
    assert_eq!(
        received.body,
        json!({
            "model": "test-model",
            "max_tokens": 64,
            "temperature": 0.5,
            "system": tandem_cloud::prompt::chat::SYSTEM_PROMPT,
            "messages": [{"role": "user", "content": CHAT_USER_PROMPT}],
            "stop_sequences": ["}"]
        })
    );

    let mut answer = reply.json.clone();
    answer["id"] = json!("cmpl-X");
    assert_eq!(
        answer,
        json!({
            "id": "cmpl-X",
            // The markdown fence the model added is gone.
            "choices": [{"index": 0, "text": "d(a: i32) -> i32 { a }", "finish_reason": "end_turn"}],
            "provider": "anthropic",
            "model": "test-model-20250101",
            "usage": {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47}
        })
    );
}

#[tokio::test]
async fn anthropic_gets_defaults_and_no_empty_stop_sequences() {
    let vendor = Vendor::start(anthropic_success("x")).await;
    let app = TestApp::new(&keyed_provider_toml(
        "anthropic",
        &format!("{}/", vendor.base_url),
    ))
    .await;
    assert_eq!(app.complete(body_with_context()).await.status, 200);
    let received = vendor.only_request().body;
    assert_eq!(received["max_tokens"], 128);
    assert_close(&received["temperature"], 0.2);
    assert!(received.get("stop_sequences").is_none(), "{received}");
    assert!(received.get("stream").is_none(), "{received}");
    // Context reaches Anthropic as it reaches OpenAI's chat endpoint.
    assert_eq!(
        received["messages"][0]["content"],
        "Code from other files of the project, for reference:\n\n\
         // Path: src/math.rs\npub fn double(x: i32) -> i32 { x * 2 }\n\n\
         Fill in the hole marked <FILL_HERE> in this rust file `src/lib.rs`.\n\n\
         use std::fmt;\nfn add(a: i32) -> i32 { a }\nfn ad<FILL_HERE>\n"
    );
}

/// Anthropic refuses whitespace-only stop sequences with a 400 ("each stop sequence must
/// contain non-whitespace"), yet `"\n"` and `"\n\n"` are what editors send for code; the
/// cloud keeps them back and cuts the answer itself.
#[tokio::test]
async fn anthropic_whitespace_stop_sequences_are_applied_by_the_cloud() {
    let vendor = Vendor::start(anthropic_success("a + b\n\nfn next() {}\n")).await;
    let app = TestApp::new(&keyed_provider_toml("anthropic", &vendor.base_url)).await;
    let mut body = completion_body();
    body["stop"] = json!(["\n\n", "\t", "fn "]);
    // Anthropic's temperature ends at 1; the cloud API's at 2.
    body["temperature"] = json!(1.5);
    let reply = app.complete(body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let received = vendor.only_request().body;
    assert_eq!(received["stop_sequences"], json!(["fn "]));
    assert_close(&received["temperature"], 1.0);
    assert_eq!(reply.json["choices"][0]["text"], "a + b");
    assert_eq!(reply.json["choices"][0]["finish_reason"], "stop_sequence");
}

#[tokio::test]
async fn anthropic_usage_missing_is_estimated() {
    let vendor = Vendor::start(Answer::json(
        200,
        json!({"type": "message", "role": "assistant", "content": [{"type": "text", "text": "abcde"}]}),
    ))
    .await;
    let app = TestApp::new(&keyed_provider_toml("anthropic", &vendor.base_url)).await;
    let reply = app.complete(completion_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["usage"],
        json!({"prompt_tokens": 25, "completion_tokens": 2, "total_tokens": 27})
    );
    // Without a model in the answer, the configured one is reported.
    assert_eq!(reply.json["model"], "test-model");
    assert!(reply.json["choices"][0].get("finish_reason").is_none());
}

#[tokio::test]
async fn anthropic_rate_limit_is_503() {
    let vendor = Vendor::start(anthropic_error(
        429,
        "rate_limit_error",
        "Number of requests has exceeded your per-minute rate limit",
    ))
    .await;
    let config = keyed_provider_toml("anthropic", &vendor.base_url);
    let app = TestApp::new(&config).await;
    let message = app
        .complete(completion_body())
        .await
        .assert_error(503, "provider_unavailable");
    assert_eq!(
        message,
        "provider `anthropic` is rate limiting requests (HTTP 429)"
    );
    let error = provider_error(&config).await;
    assert_eq!(
        error.log_message(),
        "provider `anthropic` is rate limiting requests (HTTP 429): rate_limit_error: \
         Number of requests has exceeded your per-minute rate limit"
    );
}

#[tokio::test]
async fn anthropic_overloaded_and_server_errors_are_502() {
    for (status, kind, message) in [
        (529, "overloaded_error", "Overloaded"),
        (500, "api_error", "Internal server error"),
        (404, "not_found_error", "model: test-model"),
    ] {
        let vendor = Vendor::start(anthropic_error(status, kind, message)).await;
        let config = keyed_provider_toml("anthropic", &vendor.base_url);
        let reply = TestApp::new(&config)
            .await
            .complete(completion_body())
            .await;
        let public = reply.assert_error(502, "provider_error");
        assert_eq!(
            public,
            format!("provider `anthropic` returned HTTP {status}")
        );
        // The vendor's words go to the log only.
        assert!(!reply.text.contains(message), "{}", reply.text);
        let error = provider_error(&config).await;
        assert_eq!(
            error.log_message(),
            format!("provider `anthropic` returned HTTP {status}: {kind}: {message}")
        );
    }
}

/// A vendor echoing the key in its error body: the key reaches neither the client nor
/// any form of the error, and the log keeps the vendor's words with the key redacted.
async fn assert_key_is_never_echoed(kind: &str, echo: Answer, status: u16, log_ending: &str) {
    let vendor = Vendor::start(echo).await;
    let config = keyed_provider_toml(kind, &vendor.base_url);
    let reply = TestApp::new(&config)
        .await
        .complete(completion_body())
        .await;
    assert_eq!(
        reply.assert_error(502, "provider_error"),
        format!("provider `{kind}` returned HTTP {status}")
    );
    assert!(!reply.text.contains(PROVIDER_KEY));
    let error = provider_error(&config).await;
    for text in [
        error.public_message(),
        error.log_message(),
        format!("{error:?}"),
    ] {
        assert!(!text.contains(PROVIDER_KEY), "{text}");
    }
    assert!(
        error.log_message().ends_with(log_ending),
        "{}",
        error.log_message()
    );
}

#[tokio::test]
async fn anthropic_key_never_appears_in_errors() {
    let echo = anthropic_error(
        401,
        "authentication_error",
        &format!("invalid x-api-key {PROVIDER_KEY}"),
    );
    assert_key_is_never_echoed("anthropic", echo, 401, "invalid x-api-key [redacted]").await;
}

#[tokio::test]
async fn anthropic_unreadable_answers_are_502() {
    for answer in [
        Answer::json(200, json!({"unexpected": true})),
        Answer::json(200, json!({"content": "not a list"})),
        Answer::raw(200, "{\"content\": [", "application/json"),
        Answer::raw(200, "<html>gateway</html>", "text/html"),
    ] {
        let vendor = Vendor::start(answer).await;
        let app = TestApp::new(&keyed_provider_toml("anthropic", &vendor.base_url)).await;
        let message = app
            .complete(completion_body())
            .await
            .assert_error(502, "provider_error");
        assert_eq!(
            message,
            "provider `anthropic` returned an unreadable response"
        );
    }
}

fn google_success(text: &str) -> Answer {
    Answer::json(
        200,
        json!({
            "candidates": [{
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "avgLogprobs": -0.05,
                "index": 0
            }],
            "usageMetadata": {
                "promptTokenCount": 38,
                "candidatesTokenCount": 6,
                "totalTokenCount": 44,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 38}]
            },
            "modelVersion": "test-model-001",
            "responseId": "vendor-response"
        }),
    )
}

fn google_error(status: u16, state: &str, message: &str) -> Answer {
    Answer::json(
        status,
        json!({"error": {"code": status, "message": message, "status": state}}),
    )
}

#[tokio::test]
async fn google_receives_the_generate_content_wire_format() {
    let vendor = Vendor::start(google_success("d(a: i32) -> i32 { a }<FILL_HERE>")).await;
    let app = TestApp::new(&keyed_provider_toml("google", &vendor.base_url)).await;
    let mut body = completion_body();
    body["max_tokens"] = json!(64);
    body["temperature"] = json!(1.5);
    body["stop"] = json!(["\n\n"]);
    let reply = app.complete(body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let received = vendor.only_request();
    assert_eq!(received.method, "POST");
    assert_eq!(received.path, "/v1beta/models/test-model:generateContent");
    // The key never goes in the URL, where logs would keep it.
    assert_eq!(received.query, None);
    assert_eq!(received.header("x-goog-api-key"), Some(PROVIDER_KEY));
    assert_eq!(received.authorization, None);
    assert_eq!(received.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        received.body,
        json!({
            "contents": [{"role": "user", "parts": [{"text": CHAT_USER_PROMPT}]}],
            "systemInstruction": {"parts": [{"text": tandem_cloud::prompt::chat::SYSTEM_PROMPT}]},
            "generationConfig": {"maxOutputTokens": 64, "temperature": 1.5, "stopSequences": ["\n\n"]}
        })
    );

    let mut answer = reply.json.clone();
    answer["id"] = json!("cmpl-X");
    assert_eq!(
        answer,
        json!({
            "id": "cmpl-X",
            // The echoed hole marker is gone.
            "choices": [{"index": 0, "text": "d(a: i32) -> i32 { a }", "finish_reason": "STOP"}],
            "provider": "google",
            "model": "test-model-001",
            "usage": {"prompt_tokens": 38, "completion_tokens": 6, "total_tokens": 44}
        })
    );
}

#[tokio::test]
async fn google_model_may_be_named_with_its_models_prefix() {
    let vendor = Vendor::start(google_success("x")).await;
    let config = format!(
        "[[providers]]\nname = \"gemini\"\nkind = \"google\"\nbase_url = \"{}/\"\n\
         model = \"models/gemini-test\"\napi_key_env = \"{PROVIDER_KEY_ENV}\"\n",
        vendor.base_url
    );
    let app = TestApp::new(&config).await;
    assert_eq!(app.complete(completion_body()).await.status, 200);
    let received = vendor.only_request();
    assert_eq!(received.path, "/v1beta/models/gemini-test:generateContent");
    assert_eq!(
        received.body["generationConfig"],
        json!({"maxOutputTokens": 128, "temperature": 0.2})
    );
}

#[tokio::test]
async fn google_usage_missing_is_estimated() {
    let vendor = Vendor::start(Answer::json(
        200,
        json!({"candidates": [{"content": {"parts": [{"text": "abc"}, {"text": "de"}], "role": "model"}}]}),
    ))
    .await;
    let app = TestApp::new(&keyed_provider_toml("google", &vendor.base_url)).await;
    let reply = app.complete(completion_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["choices"][0]["text"], "abcde");
    assert_eq!(
        reply.json["usage"],
        json!({"prompt_tokens": 25, "completion_tokens": 2, "total_tokens": 27})
    );
    assert_eq!(reply.json["model"], "test-model");
}

#[tokio::test]
async fn google_blocked_prompt_is_an_empty_completion() {
    let vendor = Vendor::start(Answer::json(
        200,
        json!({
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 30, "totalTokenCount": 30}
        }),
    ))
    .await;
    let app = TestApp::new(&keyed_provider_toml("google", &vendor.base_url)).await;
    let reply = app.complete(completion_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["choices"],
        json!([{"index": 0, "text": "", "finish_reason": "SAFETY"}])
    );
    assert_eq!(
        reply.json["usage"],
        json!({"prompt_tokens": 30, "completion_tokens": 0, "total_tokens": 30})
    );
}

#[tokio::test]
async fn google_rate_limit_is_503() {
    let vendor = Vendor::start(google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
    ))
    .await;
    let config = keyed_provider_toml("google", &vendor.base_url);
    let message = TestApp::new(&config)
        .await
        .complete(completion_body())
        .await
        .assert_error(503, "provider_unavailable");
    assert_eq!(
        message,
        "provider `google` is rate limiting requests (HTTP 429)"
    );
    assert_eq!(
        provider_error(&config).await.log_message(),
        "provider `google` is rate limiting requests (HTTP 429): RESOURCE_EXHAUSTED: \
         Resource has been exhausted (e.g. check quota)."
    );
}

#[tokio::test]
async fn google_server_errors_are_502() {
    for (status, state, message) in [
        (
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
        ),
        (500, "INTERNAL", "An internal error has occurred."),
        (
            404,
            "NOT_FOUND",
            "models/test-model is not found for API version v1beta",
        ),
    ] {
        let vendor = Vendor::start(google_error(status, state, message)).await;
        let config = keyed_provider_toml("google", &vendor.base_url);
        let reply = TestApp::new(&config)
            .await
            .complete(completion_body())
            .await;
        assert_eq!(
            reply.assert_error(502, "provider_error"),
            format!("provider `google` returned HTTP {status}")
        );
        assert!(!reply.text.contains(message), "{}", reply.text);
        assert_eq!(
            provider_error(&config).await.log_message(),
            format!("provider `google` returned HTTP {status}: {state}: {message}")
        );
    }
}

#[tokio::test]
async fn google_key_never_appears_in_errors() {
    let echo = google_error(
        400,
        "INVALID_ARGUMENT",
        &format!("API key not valid: {PROVIDER_KEY}"),
    );
    assert_key_is_never_echoed("google", echo, 400, "API key not valid: [redacted]").await;
}

#[tokio::test]
async fn google_unreadable_answers_are_502() {
    for answer in [
        // Neither candidates nor the feedback explaining their absence.
        Answer::json(200, json!({"unexpected": true})),
        Answer::json(200, json!({"candidates": "none"})),
        Answer::raw(200, "{\"candidates\": [", "application/json"),
    ] {
        let vendor = Vendor::start(answer).await;
        let app = TestApp::new(&keyed_provider_toml("google", &vendor.base_url)).await;
        let message = app
            .complete(completion_body())
            .await
            .assert_error(502, "provider_error");
        assert_eq!(message, "provider `google` returned an unreadable response");
    }
}

#[tokio::test]
async fn anthropic_and_google_stall_past_their_timeout_is_504() {
    for kind in ["anthropic", "google"] {
        let vendor = Vendor::start(anthropic_success("x").delayed(Duration::from_secs(10))).await;
        let app = TestApp::new(&format!(
            "{}timeout_ms = 200\n",
            keyed_provider_toml(kind, &vendor.base_url)
        ))
        .await;
        let message = app
            .complete(completion_body())
            .await
            .assert_error(504, "provider_timeout");
        assert_eq!(
            message,
            format!("provider `{kind}` did not answer within 200 ms")
        );
    }
}

/// A missing key stops the start (naming the provider and the variable, never a value),
/// and a config without `api_key_env` is refused before that.
#[test]
fn anthropic_and_google_need_their_key() {
    for kind in ["anthropic", "google"] {
        let config =
            tandem_cloud::Config::parse_str(&keyed_provider_toml(kind, "http://x")).unwrap();
        let error =
            tandem_cloud::providers::ProviderRegistry::from_config(&config, &|_| None).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "provider `{kind}`: environment variable `{PROVIDER_KEY_ENV}` (named by \
                 api_key_env) is not set"
            )
        );
        let error =
            tandem_cloud::Config::parse_str(&provider_toml(kind, "http://x", "")).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "invalid config: provider `{kind}`: api_key_env is required for kind \
                 `{kind}`: set it to the NAME of the environment variable holding the API key"
            )
        );
    }
}

#[track_caller]
fn assert_close(value: &serde_json::Value, expected: f64) {
    let actual = value.as_f64().expect("a number");
    assert!((actual - expected).abs() < 1e-6, "{actual} != {expected}");
}
