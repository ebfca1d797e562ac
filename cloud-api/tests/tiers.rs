//! Tiers, rate limits and quotas through the HTTP API, on a real SQLite database: every
//! rejection path, the headers, `/v1/me`, and exact admission under concurrency.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{Reply, TestApp};
use serde_json::{json, Value};
use tandem_cloud::db::{api_keys, users};
use tandem_cloud::keys;
use tandem_shared::Tier;

fn body() -> Value {
    json!({"language": "rust", "path": "src/lib.rs", "prefix": "fn a", "suffix": "}"})
}

/// A user on `tier` and a key of theirs.
async fn user_key(app: &TestApp, email: &str, tier: &str) -> String {
    let user = users::create(&app.state.db, email, Tier::new(tier).unwrap())
        .await
        .unwrap();
    let key = keys::generate();
    api_keys::insert(&app.state.db, &user, "test", &key)
        .await
        .unwrap();
    key.secret
}

async fn complete_as(app: &TestApp, key: &str, body: Value) -> Reply {
    app.send(
        Request::post("/v1/completions")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

async fn me(app: &TestApp, key: &str) -> Reply {
    app.send(
        Request::get("/v1/me")
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_feature_outside_the_tier_is_403_naming_a_tier_that_has_it() {
    let app = TestApp::new("").await;
    let free = user_key(&app, "free@example.com", "free").await;
    let reply = complete_as(&app, &free, body()).await;
    let message = reply.assert_error(403, "forbidden");
    assert_eq!(
        message,
        "tier `free` does not include inline_completion; tier `pro` does"
    );
    let error = &reply.json["error"];
    assert_eq!(error["feature"], "inline_completion");
    assert_eq!(error["tier"], "free");
    assert_eq!(error["required_tier"], "pro");
}

#[tokio::test]
async fn a_provider_outside_the_tier_is_403() {
    let config =
        "[[providers]]\nname = \"gpt\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n\
                  model = \"m\"\n[tiers.pro]\nproviders = [\"ollama\", \"local\"]\n";
    let app = TestApp::new(config).await;
    let reply = app.complete(body()).await;
    let message = reply.assert_error(403, "forbidden");
    assert_eq!(
        message,
        "no model provider configured here is available to tier `pro`; tier `enterprise` does"
    );
}

#[tokio::test]
async fn a_file_over_the_tiers_size_is_413_naming_the_limit() {
    let app = TestApp::new("[tiers.pro]\nmax_file_size_mb = 1\n").await;
    let mut request = body();
    request["file_size"] = json!(1024 * 1024 + 1);
    let reply = app.complete(request).await;
    let message = reply.assert_error(413, "file_too_large");
    assert!(message.contains("max_file_size_mb"), "{message}");
    assert_eq!(reply.json["error"]["limit"], "max_file_size_mb");
    assert_eq!(reply.json["error"]["limit_value"], 1);
    // At the limit is fine.
    let mut request = body();
    request["file_size"] = json!(1024 * 1024);
    assert_eq!(app.complete(request).await.status, 200);
}

#[tokio::test]
async fn the_hourly_quota_is_429_with_retry_after_and_ratelimit_headers() {
    let app = TestApp::new("[tiers.pro]\nrequests_per_hour = 2\nburst_per_minute = 0\n").await;
    for remaining in [1, 0] {
        let reply = app.complete(body()).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let ratelimit = reply.headers["ratelimit"].to_str().unwrap();
        assert!(
            ratelimit.starts_with(&format!("\"hour\";r={remaining};t=")),
            "{ratelimit}"
        );
        assert_eq!(
            reply.headers["ratelimit-policy"],
            "\"hour\";q=2;w=3600, \"day\";q=2000;w=86400"
        );
        assert!(reply.headers.contains_key("tandem-tokens-remaining"));
    }
    let reply = app.complete(body()).await;
    let message = reply.assert_error(429, "rate_limited");
    assert!(message.starts_with("hourly quota used: tier `pro` allows 2 requests per hour"));
    let error = &reply.json["error"];
    assert_eq!(error["limit"], "requests_per_hour");
    assert_eq!(error["limit_value"], 2);
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(error["retry_after_secs"], retry_after);
    assert!(error["reset_at"].as_str().unwrap().ends_with(":00:00Z"));
    assert!(reply.headers["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"hour\";r=0;"));
}

#[tokio::test]
async fn the_burst_limit_refuses_fast_repeats() {
    let app = TestApp::new("[tiers.pro]\nburst_per_minute = 2\n").await;
    assert_eq!(app.complete(body()).await.status, 200);
    assert_eq!(app.complete(body()).await.status, 200);
    let reply = app.complete(body()).await;
    let message = reply.assert_error(429, "rate_limited");
    assert!(
        message.starts_with("too many requests in a short time"),
        "{message}"
    );
    assert_eq!(reply.json["error"]["limit"], "burst_per_minute");
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn the_daily_token_budget_is_429() {
    let app = TestApp::new("[tiers.pro]\ntokens_per_day = 30\nburst_per_minute = 0\n").await;
    let mut request = body();
    request["prefix"] = json!("x".repeat(400));
    let reply = app.complete(request).await;
    reply.assert_error(429, "rate_limited");
    assert_eq!(reply.json["error"]["limit"], "tokens_per_day");
    // A small request still fits.
    assert_eq!(app.complete(body()).await.status, 200);
}

#[tokio::test]
async fn me_reports_limits_and_what_remains() {
    let app = TestApp::new("[tiers.pro]\nrequests_per_hour = 10\n").await;
    let before = me(&app, &app.key).await;
    assert_eq!(before.status, 200, "{}", before.text);
    assert_eq!(before.json["limits"]["requests_per_hour"], 10);
    assert_eq!(before.json["limits"]["max_context_tokens"], 16_000);
    assert_eq!(before.json["limits"]["providers"], json!(["local"]));
    assert!(before.json["limits"]["features"]
        .as_array()
        .unwrap()
        .contains(&json!("inline_completion")));
    assert_eq!(before.json["requests_this_hour"]["remaining"], 10);
    app.complete(body()).await;
    let after = me(&app, &app.key).await;
    assert_eq!(after.json["requests_this_hour"]["remaining"], 9);
    assert_eq!(after.json["requests_today"]["remaining"], 1999);
    let tokens = &after.json["tokens_today"];
    assert!(tokens["remaining"].as_u64().unwrap() < tokens["limit"].as_u64().unwrap());
    assert!(after.headers.contains_key("ratelimit"));
}

#[tokio::test]
async fn a_user_on_a_tier_the_configuration_dropped_is_403() {
    let app = TestApp::new("").await;
    let key = user_key(&app, "old@example.com", "legacy").await;
    let reply = complete_as(&app, &key, body()).await;
    let message = reply.assert_error(403, "forbidden");
    assert!(
        message.contains("tier `legacy` is not defined"),
        "{message}"
    );
}

#[tokio::test]
async fn a_deployment_can_add_a_tier() {
    let config =
        "[tiers.team]\nrequests_per_hour = 1\nrequests_per_day = 5\nburst_per_minute = 0\n\
                  tokens_per_day = 100000\nmax_file_size_mb = 2\nmax_context_tokens = 1000\n\
                  providers = [\"*\"]\nfeatures = [\"inline_completion\"]\n";
    let app = TestApp::new(config).await;
    let key = user_key(&app, "team@example.com", "team").await;
    assert_eq!(complete_as(&app, &key, body()).await.status, 200);
    let reply = complete_as(&app, &key, body()).await;
    reply.assert_error(429, "rate_limited");
    assert_eq!(me(&app, &key).await.json["tier"], "team");
}

/// Hundreds of simultaneous requests against a remaining quota of 50 admit exactly 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_admit_exactly_the_remaining_quota() {
    let app = std::sync::Arc::new(
        TestApp::new("[tiers.pro]\nrequests_per_hour = 50\nburst_per_minute = 0\n").await,
    );
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move { app.complete(body()).await.status.as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let admitted = statuses.iter().filter(|status| **status == 200).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!((admitted, refused), (50, 250), "{statuses:?}");
}
