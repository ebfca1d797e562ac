//! The cloud's HTTP API spoken to directly, as any client could: statuses and JSON error
//! bodies for every way a request can be wrong.

use reqwest::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use tandem_e2e::{CloudOptions, CloudServer, ProviderConfig, ProviderFixture};
use tandem_shared::{CompletionResponse, ErrorBody, ErrorCode, MeResponse, Tier};

use crate::support::MODEL;

/// Small, so a body over the limit still fits in the socket buffers and the client reads
/// the 413 instead of failing to write.
const MAX_BODY_BYTES: u64 = 4096;

/// Checks status, content type and `{"error":{"code","message"}}`.
#[track_caller]
fn check_error(
    status: u16,
    content_type: Option<&str>,
    text: &str,
    expected: ErrorCode,
    case: &str,
) {
    assert_eq!(status, expected.http_status(), "{case}: body {text}");
    assert!(
        content_type.is_some_and(|value| value.starts_with("application/json")),
        "{case}: content type {content_type:?}"
    );
    let body: ErrorBody = serde_json::from_str(text)
        .unwrap_or_else(|error| panic!("{case}: not an error body ({error}): {text}"));
    assert_eq!(body.error.code, expected.as_str(), "{case}: {text}");
    assert!(!body.error.message.is_empty(), "{case}: empty message");
    // Exactly the two documented fields: clients match on this shape.
    let value: Value = serde_json::from_str(text).unwrap_or_default();
    assert_eq!(
        value.as_object().map(|object| object.len()),
        Some(1),
        "{case}: {text}"
    );
}

async fn expect_error(request: RequestBuilder, expected: ErrorCode, case: &str) {
    let response: Response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("{case}: {error}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    check_error(status, content_type.as_deref(), &text, expected, case);
}

fn valid_body() -> Value {
    json!({"language": "rust", "path": "src/lib.rs", "prefix": "fn add(a: i32, b: i32) -> i32 {\n    ", "suffix": "\n}\n"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_contract_statuses_and_json_bodies() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    provider.reply_with_text("a + b");
    let options = CloudOptions {
        max_body_bytes: Some(MAX_BODY_BYTES),
        tier: Some("pro".to_owned()),
        ..CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL))
    };
    let cloud = CloudServer::start(options).await.expect("tandem-cloud");
    let client = Client::new();
    let url = |path: &str| format!("{}{path}", cloud.url());
    let completions = url("/v1/completions");
    let key = cloud.api_key().to_owned();
    assert!(
        key.starts_with(tandem_shared::API_KEY_PREFIX)
            && key.len() == 4 + 43
            && key[4..].bytes().all(|byte| byte.is_ascii_alphanumeric()),
        "keys are `tdm_` + 43 base62 characters: {key:?}"
    );

    // Liveness and readiness need no key.
    let health: Value = client
        .get(url("/health"))
        .send()
        .await
        .expect("GET /health")
        .json()
        .await
        .expect("JSON");
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["version"].is_string(), "{health}");
    let ready = client.get(url("/ready")).send().await.expect("GET /ready");
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.expect("JSON");
    assert_eq!(ready["status"], "ready", "{ready}");

    // Authentication.
    expect_error(
        client.post(&completions).json(&valid_body()),
        ErrorCode::Unauthorized,
        "no key",
    )
    .await;
    let unknown_key = format!("tdm_{}", "B".repeat(43));
    expect_error(
        client
            .post(&completions)
            .bearer_auth(&unknown_key)
            .json(&valid_body()),
        ErrorCode::Unauthorized,
        "unknown key",
    )
    .await;
    expect_error(
        client
            .post(&completions)
            .bearer_auth("not-a-tandem-key")
            .json(&valid_body()),
        ErrorCode::Unauthorized,
        "malformed key",
    )
    .await;
    expect_error(
        client.get(url("/v1/me")).bearer_auth(&unknown_key),
        ErrorCode::Unauthorized,
        "unknown key on /v1/me",
    )
    .await;

    // Bodies that are not what the endpoint takes.
    let authorized = || client.post(&completions).bearer_auth(&key);
    expect_error(
        authorized()
            .header("content-type", "application/json")
            .body("{\"language\": \"rust\", "),
        ErrorCode::MalformedBody,
        "truncated JSON",
    )
    .await;
    expect_error(
        authorized().json(&json!({"language": 5, "path": "a.rs", "prefix": "", "suffix": ""})),
        ErrorCode::MalformedBody,
        "wrong field type",
    )
    .await;
    expect_error(
        authorized().json(&json!({"language": "rust"})),
        ErrorCode::MalformedBody,
        "missing fields",
    )
    .await;
    expect_error(
        authorized()
            .header("content-type", "text/plain")
            .body(valid_body().to_string()),
        ErrorCode::UnsupportedMediaType,
        "text/plain body",
    )
    .await;
    // On its own connection: the server answers 413 without reading the body and then
    // drops the connection, which would race with the next request on a pooled one.
    let huge =
        json!({"language": "rust", "path": "a.rs", "prefix": "x".repeat(64 * 1024), "suffix": ""});
    expect_error(
        Client::new()
            .post(&completions)
            .bearer_auth(&key)
            .json(&huge),
        ErrorCode::PayloadTooLarge,
        "body over limits.max_body_bytes",
    )
    .await;

    // Bodies that parse but ask for something invalid.
    let invalid_cases = [
        ("empty language", json!({"language": ""})),
        ("absolute path", json!({"path": "/etc/passwd"})),
        (
            "parent directory in path",
            json!({"path": "src/../../secret.rs"}),
        ),
        ("max_tokens 0", json!({"max_tokens": 0})),
        ("max_tokens 4097", json!({"max_tokens": 4097})),
        ("temperature above 2", json!({"temperature": 2.5})),
        ("negative temperature", json!({"temperature": -0.1})),
    ];
    for (case, change) in invalid_cases {
        let mut body = valid_body();
        crate::support::merge(&mut body, change);
        expect_error(authorized().json(&body), ErrorCode::InvalidRequest, case).await;
    }

    // Routes and methods that do not exist.
    expect_error(
        client.get(url("/v1/no-such-route")).bearer_auth(&key),
        ErrorCode::NotFound,
        "unknown route",
    )
    .await;
    expect_error(
        client.get(&completions).bearer_auth(&key),
        ErrorCode::MethodNotAllowed,
        "GET on a POST route",
    )
    .await;

    // None of that reached the provider.
    assert_eq!(provider.request_count(), 0, "{:#?}", provider.requests());

    // And the valid requests work.
    let me = client
        .get(url("/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("GET /v1/me");
    assert_eq!(me.status(), 200);
    let me: MeResponse = me.json().await.expect("MeResponse");
    assert_eq!(me.user.email, tandem_e2e::cloud::TEST_USER_EMAIL);
    assert_eq!(me.tier, Tier::pro());

    let response = authorized().json(&valid_body()).send().await.expect("POST");
    assert_eq!(response.status(), 200, "{}", cloud.stderr());
    let completion: CompletionResponse = response.json().await.expect("CompletionResponse");
    assert!(completion.id.starts_with("cmpl-"), "{completion:?}");
    assert_eq!(completion.provider, "ollama");
    assert_eq!(completion.model, MODEL);
    assert_eq!(completion.choices.len(), 1);
    assert_eq!(completion.choices[0].text, "a + b");
    assert_eq!(
        completion.usage.total_tokens,
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    );
    assert!(
        !cloud.stderr().contains(&key),
        "the API key must never be logged"
    );
}
