//! Router tests without a socket: every error path of the API, `/v1/me`, `/health`,
//! `/ready` and the built-in local provider, over a real SQLite file.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{completion_body, TestApp};
use serde_json::{json, Value};
use tandem_cloud::db::api_keys;
use tandem_cloud::keys;
use tandem_shared::Tier;

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn get_with_auth(path: &str, authorization: &str) -> Request<Body> {
    Request::get(path)
        .header("authorization", authorization)
        .body(Body::empty())
        .unwrap()
}

fn post_completion(key: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder =
        Request::post("/v1/completions").header("authorization", format!("Bearer {key}"));
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(body.into()).unwrap()
}

#[tokio::test]
async fn health_needs_no_auth() {
    let app = TestApp::new("").await;
    let reply = app.send(get("/health")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json,
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );
}

#[tokio::test]
async fn ready_checks_the_database() {
    let app = TestApp::new("").await;
    let reply = app.send(get("/ready")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["status"], "ready");
    assert_eq!(reply.json["database"], "ok");
    assert_eq!(reply.json["provider"], "local");
    assert_eq!(reply.json["model"], "local");

    app.state.db.close().await;
    let reply = app.send(get("/ready")).await;
    let message = reply.assert_error(503, "provider_unavailable");
    assert_eq!(
        message,
        "service is not ready: the database is not reachable"
    );
}

#[tokio::test]
async fn me_describes_the_key_owner() {
    let app = TestApp::new("").await;
    let reply = app
        .send(get_with_auth("/v1/me", &format!("Bearer {}", app.key)))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["user"]["email"], "user@example.com");
    assert_eq!(reply.json["tier"], "pro");
    assert!(reply.json["user"]["id"].as_str().unwrap().len() == 36);
    // The pro tier's default context budget, for the language server to cut to.
    assert_eq!(reply.json["max_context_tokens"], 16_000);
}

#[tokio::test]
async fn me_reports_the_configured_context_budget() {
    let app = TestApp::new("[tiers.pro]\nmax_context_tokens = 1234").await;
    let reply = app
        .send(get_with_auth("/v1/me", &format!("Bearer {}", app.key)))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["max_context_tokens"], 1234);
}

#[tokio::test]
async fn context_over_the_tiers_budget_is_422() {
    // The default body is 25 tokens: one more in context fits a 40-token budget; an import
    // (13) and a definition (21) do not.
    let app = TestApp::new("[tiers.pro]\nmax_context_tokens = 40").await;
    let mut body = completion_body();
    body["context"] = json!({"definitions": [{"path": "src/a.rs", "text": "x"}]});
    let reply = app.complete(body.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    body["context"] = json!({
        "imports": ["use std::collections::HashMap;"],
        "definitions": [{"path": "src/a.rs", "text": "fn helper(a: i32) -> i32 { a }"}],
    });
    let message = app
        .complete(body)
        .await
        .assert_error(422, "context_too_large");
    assert_eq!(
        message,
        "the request's prefix, suffix and context come to about 59 tokens, over the limit \
         of 40 for tier `pro`; cut the context to fit"
    );
}

#[tokio::test]
async fn invalid_context_is_422() {
    let app = TestApp::new("").await;
    let snippet = json!({"path": "src/a.rs", "text": "x"});
    let cases = [
        (
            json!({"similar": vec![snippet.clone(); 65]}),
            "`context.similar` may hold at most 64 snippets, got 65",
        ),
        (
            json!({"definitions": [{"path": "/home/me/.ssh/id_rsa", "text": "x"}]}),
            "`context.definitions[0].path` must be relative to the workspace root",
        ),
        (
            json!({"recent_edits": [{"path": "a.rs", "text": "a\u{0}b"}]}),
            "`context.recent_edits[0].text` must not contain NUL characters",
        ),
        (
            json!({"imports": ["import os", "\u{0}"]}),
            "`context.imports[1]` must not contain NUL characters",
        ),
    ];
    for (context, expected) in cases {
        let mut body = completion_body();
        body["context"] = context.clone();
        let message = app
            .complete(body)
            .await
            .assert_error(422, "invalid_request");
        assert!(message.starts_with(expected), "{context}: `{message}`");
    }
}

#[tokio::test]
async fn missing_authorization_is_401() {
    let app = TestApp::new("").await;
    let message = app
        .send(get("/v1/me"))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(
        message,
        "missing API key: send `Authorization: Bearer tdm_…`"
    );
    let reply = app
        .send(post_completion(
            "",
            Some("application/json"),
            completion_body().to_string(),
        ))
        .await;
    // An empty Bearer value is not a key.
    reply.assert_error(401, "unauthorized");
}

#[tokio::test]
async fn non_bearer_scheme_is_401() {
    let app = TestApp::new("").await;
    for header in [
        format!("Basic {}", app.key),
        app.key.clone(),
        "Bearer".to_owned(),
    ] {
        let message = app
            .send(get_with_auth("/v1/me", &header))
            .await
            .assert_error(401, "unauthorized");
        assert_eq!(
            message, "Authorization header must use the Bearer scheme",
            "{header}"
        );
    }
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let app = TestApp::new("").await;
    let reply = app
        .send(get_with_auth("/v1/me", &format!("bearer {}", app.key)))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn malformed_key_is_401() {
    let app = TestApp::new("").await;
    let truncated = &app.key[..app.key.len() - 1];
    for key in [
        truncated,
        "sk-abc",
        "tdm_",
        "tdm_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    ] {
        let message = app
            .send(get_with_auth("/v1/me", &format!("Bearer {key}")))
            .await
            .assert_error(401, "unauthorized");
        assert_eq!(
            message, "malformed API key: expected `tdm_` followed by 43 letters and digits",
            "{key}"
        );
    }
}

#[tokio::test]
async fn unknown_key_is_401() {
    let app = TestApp::new("").await;
    let stranger = keys::generate().secret;
    let message = app
        .send(get_with_auth("/v1/me", &format!("Bearer {stranger}")))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(message, "unknown API key");
    let reply = app
        .send(post_completion(
            &stranger,
            Some("application/json"),
            completion_body().to_string(),
        ))
        .await;
    reply.assert_error(401, "unauthorized");
}

#[tokio::test]
async fn revoked_key_is_401_once_the_cache_is_off() {
    let app = TestApp::new("[auth]\nkey_cache_ttl_secs = 0").await;
    let authorization = format!("Bearer {}", app.key);
    assert_eq!(
        app.send(get_with_auth("/v1/me", &authorization))
            .await
            .status,
        200
    );
    api_keys::revoke(&app.state.db, &app.key_id).await.unwrap();
    let message = app
        .send(get_with_auth("/v1/me", &authorization))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(message, "API key has been revoked");
}

/// The cache does not outlive a revocation: servers watch the database's auth epoch.
#[tokio::test]
async fn revoked_key_is_401_within_the_epoch_poll_despite_a_long_cache() {
    let app = TestApp::new("[auth]\nkey_cache_ttl_secs = 3600").await;
    let authorization = format!("Bearer {}", app.key);
    assert_eq!(
        app.send(get_with_auth("/v1/me", &authorization))
            .await
            .status,
        200
    );
    api_keys::revoke(&app.state.db, &app.key_id).await.unwrap();
    let revoked = std::time::Instant::now();
    loop {
        let reply = app.send(get_with_auth("/v1/me", &authorization)).await;
        if reply.status == 401 {
            assert_eq!(reply.json["error"]["message"], "API key has been revoked");
            break;
        }
        assert!(
            revoked.elapsed() < tandem_cloud::state::AUTH_EPOCH_POLL * 4,
            "the revoked key still works after {:?}",
            revoked.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A tier change applies as soon, and the new tier's rules with it.
#[tokio::test]
async fn a_tier_change_applies_within_the_epoch_poll() {
    let app = TestApp::new("[auth]\nkey_cache_ttl_secs = 3600").await;
    assert_eq!(app.complete(completion_body()).await.status, 200);
    tandem_cloud::db::users::set_tier(&app.state.db, "user@example.com", &Tier::free())
        .await
        .unwrap();
    let changed = std::time::Instant::now();
    loop {
        let reply = app.complete(completion_body()).await;
        if reply.status == 403 {
            // Free has no inline completions.
            assert_eq!(reply.json["error"]["tier"], "free", "{}", reply.text);
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            changed.elapsed() < tandem_cloud::state::AUTH_EPOCH_POLL * 4,
            "still on the old tier after {:?}",
            changed.elapsed()
        );
        // Slow enough to stay under pro's burst limit until the change applies.
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn key_use_is_recorded() {
    let app = TestApp::new("").await;
    app.send(get_with_auth("/v1/me", &format!("Bearer {}", app.key)))
        .await;
    let user = tandem_cloud::db::users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap();
    // Written with the usage writer's next transaction, moments later.
    for _ in 0..200 {
        let listed = api_keys::list_for_user(&app.state.db, &user).await.unwrap();
        if listed[0].last_used_at.is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("last_used_at was not recorded within 2 s");
}

#[tokio::test]
async fn unknown_path_is_404_json() {
    let app = TestApp::new("").await;
    let message = app
        .send(get("/v2/nothing"))
        .await
        .assert_error(404, "not_found");
    assert_eq!(message, "no route for /v2/nothing");
}

#[tokio::test]
async fn wrong_method_is_405_json() {
    let app = TestApp::new("").await;
    let message = app
        .send(get_with_auth(
            "/v1/completions",
            &format!("Bearer {}", app.key),
        ))
        .await
        .assert_error(405, "method_not_allowed");
    assert_eq!(message, "method GET is not allowed for /v1/completions");
    let reply = app
        .send(Request::post("/health").body(Body::empty()).unwrap())
        .await;
    reply.assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn invalid_json_is_400() {
    let app = TestApp::new("").await;
    let message = app
        .send(post_completion(
            &app.key,
            Some("application/json"),
            "{\"language\": ",
        ))
        .await
        .assert_error(400, "malformed_body");
    assert!(
        message.starts_with("request body is not valid JSON"),
        "{message}"
    );
}

#[tokio::test]
async fn wrong_shape_is_400() {
    let app = TestApp::new("").await;
    let cases = [
        json!([]),
        json!(null),
        json!({"language": 1, "path": "a", "prefix": "", "suffix": ""}),
        json!({"path": "a", "prefix": "", "suffix": ""}),
        json!({"language": "rust", "path": "a", "prefix": "", "suffix": "", "max_tokens": -1}),
        json!({"language": "rust", "path": "a", "prefix": "", "suffix": "", "stop": "x"}),
    ];
    for body in cases {
        let message = app
            .complete(body.clone())
            .await
            .assert_error(400, "malformed_body");
        assert!(
            message.starts_with("request body does not have the expected shape"),
            "{body}: {message}"
        );
    }
    let message = app
        .complete(json!({"path": "a", "prefix": "", "suffix": ""}))
        .await
        .assert_error(400, "malformed_body");
    assert!(message.contains("missing field `language`"), "{message}");
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let app = TestApp::new("[limits]\nmax_body_bytes = 1024").await;
    let mut body = completion_body();
    body["prefix"] = Value::String("x".repeat(2000));
    let body = body.to_string();

    // Declared too large: refused before reading.
    let request = Request::post("/v1/completions")
        .header("authorization", format!("Bearer {}", app.key))
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body.clone()))
        .unwrap();
    let reply = app.send(request).await;
    let message = reply.assert_error(413, "payload_too_large");
    assert_eq!(
        message,
        "request body is larger than the limit of 1024 bytes"
    );
    // The unread rest of the body makes the connection unusable; pooling clients must
    // be told, or their next request on it fails.
    assert_eq!(reply.headers.get("connection").unwrap(), "close");

    // Undeclared (streamed) and too large: refused while reading.
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(body)]);
    let request = post_completion(
        &app.key,
        Some("application/json"),
        Body::from_stream(stream),
    );
    let message = app
        .send(request)
        .await
        .assert_error(413, "payload_too_large");
    assert_eq!(
        message,
        "request body is larger than the limit of 1024 bytes"
    );

    // Just under the limit is fine.
    let reply = app.complete(completion_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let app = TestApp::new("").await;
    let body = completion_body().to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let message = app
            .send(post_completion(&app.key, content_type, body.clone()))
            .await
            .assert_error(415, "unsupported_media_type");
        assert_eq!(
            message,
            "request body must be JSON: send `Content-Type: application/json`"
        );
    }
    // Parameters on the media type are fine.
    let reply = app
        .send(post_completion(
            &app.key,
            Some("application/json; charset=utf-8"),
            body,
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn each_invalid_field_is_422() {
    let app = TestApp::new("").await;
    let cases: [(&str, Value, &str); 11] = [
        ("language", json!(""), "`language` must not be empty"),
        ("language", json!("   "), "`language` must not be empty"),
        (
            "path",
            json!("/etc/passwd"),
            "`path` must be relative to the workspace root, got `/etc/passwd`",
        ),
        ("path", json!("C:\\src\\main.rs"), "`path` must be relative"),
        (
            "path",
            json!("src/../../secret"),
            "`path` must not contain `..`, got `src/../../secret`",
        ),
        (
            "max_tokens",
            json!(0),
            "`max_tokens` must be between 1 and 4096, got 0",
        ),
        (
            "max_tokens",
            json!(4097),
            "`max_tokens` must be between 1 and 4096, got 4097",
        ),
        (
            "temperature",
            json!(-0.5),
            "`temperature` must be between 0 and 2, got -0.5",
        ),
        (
            "temperature",
            json!(2.5),
            "`temperature` must be between 0 and 2, got 2.5",
        ),
        (
            "stop",
            json!(["a", "b", "c", "d", "e"]),
            "`stop` may hold at most 4 sequences, got 5",
        ),
        ("stop", json!([""]), "`stop` sequences must not be empty"),
    ];
    for (field, value, expected) in cases {
        let mut body = completion_body();
        body[field] = value.clone();
        let message = app
            .complete(body)
            .await
            .assert_error(422, "invalid_request");
        assert!(
            message.starts_with(expected),
            "{field}={value}: `{message}` does not start with `{expected}`"
        );
    }
}

#[tokio::test]
async fn local_provider_completes_repetition() {
    let app = TestApp::new("").await;
    let reply = app.complete(completion_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let id = reply.json["id"].as_str().unwrap();
    assert!(id.starts_with("cmpl-") && id.len() == 5 + 36, "{id}");
    let mut answer = reply.json.clone();
    answer["id"] = json!("cmpl-X");
    // By the shared estimate (`tandem_shared::tokens::estimate`), the language server's
    // too: prompt 24 + 1 tokens (every symbol and space run counts one), completion 18.
    assert_eq!(
        answer,
        json!({
            "id": "cmpl-X",
            "choices": [{"index": 0, "text": "d(a: i32) -> i32 { a }", "finish_reason": "stop"}],
            "provider": "local",
            "model": "local",
            "usage": {"prompt_tokens": 25, "completion_tokens": 18, "total_tokens": 43},
        })
    );
}

#[tokio::test]
async fn local_provider_answers_empty_text_without_a_match() {
    let app = TestApp::new("").await;
    let mut body = completion_body();
    body["prefix"] = json!("let unique_name = ");
    body["suffix"] = json!("");
    let reply = app.complete(body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["choices"][0]["text"], "");
    assert_eq!(reply.json["usage"]["completion_tokens"], 0);
}

#[tokio::test]
async fn configured_local_provider_uses_its_name_and_model() {
    let app =
        TestApp::new("[[providers]]\nname = \"offline\"\nkind = \"local\"\nmodel = \"echo\"").await;
    let reply = app.complete(completion_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["provider"], "offline");
    assert_eq!(reply.json["model"], "echo");
}
