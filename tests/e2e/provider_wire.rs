//! What the cloud sends each vendor, field by field, and how it reads their answers.

use std::time::Duration;

use serde_json::{json, Value};
use tandem_e2e::{CloudOptions, CloudServer, ProviderConfig, ProviderFixture, RecordedRequest};
use tandem_shared::{CompletionResponse, ErrorBody};

use crate::support::{check_error_answer, within, MODEL, PROVIDER_KEY};

const PREFIX: &str = "def area(radius):\n    return ";
const SUFFIX: &str = "\n\nprint(area(2))\n";
const REPLY: &str = "3.14159 * radius ** 2";

fn request_body() -> Value {
    json!({
        "language": "python",
        "path": "geometry/area.py",
        "prefix": PREFIX,
        "suffix": SUFFIX,
        "max_tokens": 77,
        "temperature": 0.25,
        "stop": ["\n\n"],
    })
}

/// The fixture's token estimate, which the cloud must pass on as the provider's count.
fn fixture_tokens(text: &str) -> u32 {
    (text.chars().count() as u32).div_ceil(4).max(1)
}

async fn post(cloud: &CloudServer, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/completions", cloud.url()))
        .bearer_auth(cloud.api_key())
        .json(body)
        .send()
        .await
        .expect("POST /v1/completions")
}

async fn start(
    config: impl FnOnce(&ProviderFixture) -> ProviderConfig,
) -> (ProviderFixture, CloudServer) {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    provider.reply_with_text(REPLY);
    let cloud = CloudServer::start(CloudOptions::with_provider(config(&provider)))
        .await
        .expect("tandem-cloud");
    (provider, cloud)
}

#[track_caller]
fn assert_close(value: &Value, expected: f64, what: &str) {
    let actual = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value}"));
    assert!(
        (actual - expected).abs() < 1e-6,
        "{what}: {actual} != {expected}"
    );
}

fn assert_stop_contains_blank_line(stop: &Value, what: &str) {
    let stop = stop
        .as_array()
        .unwrap_or_else(|| panic!("{what} has no stop array: {stop}"));
    assert!(
        stop.contains(&json!("\n\n")),
        "{what}: the request's stop sequence is lost: {stop:?}"
    );
}

/// Posts [`request_body`], checks the answer, and returns the single provider request.
async fn check_answer(
    cloud: &CloudServer,
    provider: &ProviderFixture,
    provider_name: &str,
) -> RecordedRequest {
    let response = post(cloud, &request_body()).await;
    assert_eq!(response.status(), 200, "{}", cloud.stderr());
    let completion: CompletionResponse = response.json().await.expect("CompletionResponse");
    assert_eq!(completion.provider, provider_name);
    assert_eq!(completion.model, MODEL);
    assert_eq!(completion.choices[0].text, REPLY);
    let requests = provider.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let request = requests[0].clone();
    assert_eq!(
        completion.usage.prompt_tokens,
        fixture_tokens(request.prompt_or_chat().unwrap_or_default()),
        "usage as the provider reported it"
    );
    assert_eq!(completion.usage.completion_tokens, fixture_tokens(REPLY));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_generate_request_carries_every_field() {
    let (provider, cloud) = start(|fixture| ProviderConfig::ollama(fixture, MODEL)).await;
    let request = check_answer(&cloud, &provider, "ollama").await;
    let body = &request.body;
    assert_eq!(request.path, "/api/generate");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["prompt"], PREFIX);
    assert_eq!(body["suffix"], SUFFIX);
    assert_eq!(body["stream"], false);
    assert_eq!(body["options"]["num_predict"], 77, "{body}");
    assert_close(&body["options"]["temperature"], 0.25, "options.temperature");
    assert_stop_contains_blank_line(&body["options"]["stop"], "options.stop");
    assert_eq!(
        request.header("authorization"),
        None,
        "no key configured, none sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_completions_request_carries_every_field() {
    let (provider, cloud) =
        start(|fixture| ProviderConfig::openai(fixture, MODEL, "completions", PROVIDER_KEY)).await;
    let request = check_answer(&cloud, &provider, "openai").await;
    let body = &request.body;
    assert_eq!(request.path, "/v1/completions");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["prompt"], PREFIX);
    assert_eq!(body["suffix"], SUFFIX);
    assert_eq!(body["max_tokens"], 77, "{body}");
    assert_close(&body["temperature"], 0.25, "temperature");
    assert_stop_contains_blank_line(&body["stop"], "stop");
    assert_ne!(body.get("stream"), Some(&json!(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_request_carries_every_field() {
    let (provider, cloud) =
        start(|fixture| ProviderConfig::openai(fixture, MODEL, "chat", PROVIDER_KEY)).await;
    let request = check_answer(&cloud, &provider, "openai").await;
    let body = &request.body;
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["messages"][0]["role"], "system", "{body}");
    assert_eq!(body["messages"][1]["role"], "user", "{body}");
    assert_eq!(body["max_tokens"], 77, "{body}");
    assert_close(&body["temperature"], 0.25, "temperature");
    assert_stop_contains_blank_line(&body["stop"], "stop");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
}

/// A 200 whose body is not the vendor's JSON, or a vendor error status: both are 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_or_failed_provider_answers_are_provider_errors() {
    let (ollama, ollama_cloud) = start(|fixture| ProviderConfig::ollama(fixture, MODEL)).await;
    let (openai, openai_cloud) =
        start(|fixture| ProviderConfig::openai(fixture, MODEL, "completions", PROVIDER_KEY)).await;
    // Each case breaks both fixtures its own way.
    type Breaker<'a> = &'a dyn Fn();
    let cases: [(&str, Breaker, Breaker, &str); 4] = [
        (
            "HTML instead of JSON",
            &|| ollama.reply_raw(200, "<html>gateway</html>"),
            &|| openai.reply_raw(200, "<html>gateway</html>"),
            "provider_error",
        ),
        (
            "JSON of the wrong shape",
            &|| ollama.reply_raw(200, "{\"unexpected\": true}"),
            &|| openai.reply_raw(200, "{\"choices\": \"none\"}"),
            "provider_error",
        ),
        (
            "model not found",
            &|| ollama.fail_with(404),
            &|| openai.fail_with(404),
            "provider_error",
        ),
        (
            "server error",
            &|| ollama.fail_with(500),
            &|| openai.fail_with(500),
            "provider_error",
        ),
    ];
    for (case, break_ollama, break_openai, expected_code) in cases {
        break_ollama();
        break_openai();
        for (name, cloud) in [("ollama", &ollama_cloud), ("openai", &openai_cloud)] {
            let response = post(cloud, &request_body()).await;
            let status = response.status().as_u16();
            let text = response.text().await.expect("body");
            assert_eq!(status, 502, "{name}, {case}: {text}");
            let body: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|error| {
                panic!("{name}, {case}: not an error body ({error}): {text}")
            });
            assert_eq!(body.error.code, expected_code, "{name}, {case}");
        }
        ollama.recover();
        openai.recover();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_messages_request_carries_every_field() {
    let (provider, cloud) =
        start(|fixture| ProviderConfig::anthropic(fixture, MODEL, PROVIDER_KEY)).await;
    let request = check_answer(&cloud, &provider, "anthropic").await;
    let body = &request.body;
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(PROVIDER_KEY));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        request.header("authorization"),
        None,
        "the key goes in x-api-key"
    );
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["max_tokens"], 77, "{body}");
    assert_close(&body["temperature"], 0.25, "temperature");
    assert!(request.system_prompt().is_some(), "{body}");
    assert_eq!(body["messages"][0]["role"], "user", "{body}");
    let user = request.chat_user_content().expect("a user message");
    assert!(
        user.contains(&format!("{PREFIX}<FILL_HERE>{SUFFIX}")),
        "{user}"
    );
    // Anthropic refuses whitespace-only stop sequences; the cloud applies "\n\n" itself.
    assert!(body.get("stop_sequences").is_none(), "{body}");
    assert_ne!(body.get("stream"), Some(&json!(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_generate_content_request_carries_every_field() {
    let (provider, cloud) =
        start(|fixture| ProviderConfig::google(fixture, MODEL, PROVIDER_KEY)).await;
    let request = check_answer(&cloud, &provider, "google").await;
    let body = &request.body;
    assert_eq!(
        request.path,
        format!("/v1beta/models/{MODEL}:generateContent")
    );
    assert_eq!(request.query, None, "the key must never be in the URL");
    assert_eq!(request.header("x-goog-api-key"), Some(PROVIDER_KEY));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(body["contents"][0]["role"], "user", "{body}");
    let user = request.gemini_user_text().expect("a user part");
    assert!(
        user.contains(&format!("{PREFIX}<FILL_HERE>{SUFFIX}")),
        "{user}"
    );
    assert!(request.system_prompt().is_some(), "{body}");
    let generation = &body["generationConfig"];
    assert_eq!(generation["maxOutputTokens"], 77, "{body}");
    assert_close(
        &generation["temperature"],
        0.25,
        "generationConfig.temperature",
    );
    assert_stop_contains_blank_line(&generation["stopSequences"], "generationConfig");
}

/// Anthropic and Google failures reach the client as the contract's statuses; the
/// vendor's message reaches the operator's log; the key reaches neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_and_google_provider_failures_map_to_contract_statuses() {
    let (anthropic, anthropic_cloud) = start(|fixture| {
        ProviderConfig::anthropic(fixture, MODEL, PROVIDER_KEY).with_timeout_ms(500)
    })
    .await;
    let (google, google_cloud) =
        start(|fixture| ProviderConfig::google(fixture, MODEL, PROVIDER_KEY).with_timeout_ms(500))
            .await;
    let vendors = [
        (
            "anthropic",
            &anthropic,
            &anthropic_cloud,
            529,
            "overloaded_error: Overloaded",
        ),
        (
            "google",
            &google,
            &google_cloud,
            503,
            "UNAVAILABLE: The model is overloaded.",
        ),
    ];
    // Every case runs and the test reports all deviations at once.
    let mut problems = Vec::new();
    for (name, fixture, cloud, overloaded, logged) in vendors {
        type Breaker<'a> = Box<dyn Fn() + 'a>;
        let cases: [(&str, Breaker, u16, &str); 5] = [
            (
                "server error",
                Box::new(|| fixture.fail_with(500)),
                502,
                "provider_error",
            ),
            (
                "overloaded",
                Box::new(|| fixture.fail_with(overloaded)),
                502,
                "provider_error",
            ),
            (
                "rate limited",
                Box::new(|| fixture.rate_limit(Duration::from_secs(7))),
                503,
                "provider_unavailable",
            ),
            (
                "HTML instead of JSON",
                Box::new(|| fixture.reply_raw(200, "<html>gateway</html>")),
                502,
                "provider_error",
            ),
            (
                "stalled",
                Box::new(|| fixture.stall()),
                504,
                "provider_timeout",
            ),
        ];
        for (case, break_fixture, expected_status, expected_code) in cases {
            break_fixture();
            let (response, _) = within(
                Duration::from_secs(5),
                "a request to a failing provider",
                post(cloud, &request_body()),
            )
            .await;
            let status = response.status().as_u16();
            let text = response.text().await.expect("body");
            let case = format!("{name}, {case}");
            check_error_answer(
                &mut problems,
                &case,
                status,
                &text,
                expected_status,
                expected_code,
            );
            if text.contains(PROVIDER_KEY) || text.contains("verloaded") {
                problems.push(format!(
                    "{case}: the key or the vendor's text leaked: {text}"
                ));
            }
            fixture.recover();
        }
        let stderr = cloud.stderr();
        if stderr.contains(PROVIDER_KEY) {
            problems.push(format!("{name}: the provider key was logged"));
        }
        if !stderr.contains(logged) {
            problems.push(format!(
                "{name}: the vendor's message `{logged}` is not logged"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
