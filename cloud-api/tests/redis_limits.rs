//! Rate limits in Redis through the HTTP API: several app states (instances) over one
//! SQLite database and the test Redis (`TANDEM_TEST_REDIS_URL`; skipped with a note when
//! unset, failed with `TANDEM_REQUIRE_SERVICES=1`), and `/ready` and `/metrics` when Redis
//! does not answer.

mod common;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use chrono::Utc;
use common::{TestApp, PROVIDER_KEY, PROVIDER_KEY_ENV};
use serde_json::{json, Value};
use tandem_cloud::db::usage::{self, UsageRecord};
use tandem_cloud::{AppState, Config};
use tower::ServiceExt;

/// The test Redis, or `None` after a note when the environment names none.
fn test_redis_url(test: &str) -> Option<String> {
    tandem_e2e::services::service_url(tandem_e2e::services::REDIS_URL, test)
}

/// Deletes every key under `prefix`.
async fn delete_keys(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

fn body() -> Value {
    json!({"language": "rust", "path": "src/lib.rs", "prefix": "fn a", "suffix": "}"})
}

/// Another instance of `app`: its own state and router over the same database.
fn instance(app: &TestApp, config: &str) -> Router {
    let config = Config::parse_str(config).unwrap();
    let state = AppState::with_env(config, app.state.db.clone(), &|name| {
        (name == PROVIDER_KEY_ENV).then(|| PROVIDER_KEY.to_owned())
    })
    .unwrap();
    tandem_cloud::app(state)
}

async fn complete(router: Router, key: String) -> u16 {
    let request = Request::post("/v1/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body().to_string()))
        .unwrap();
    router.oneshot(request).await.unwrap().status().as_u16()
}

/// `count` successful requests of the app's user this hour, in the usage records.
async fn recorded_requests(app: &TestApp, user_id: &str, count: usize) {
    let records: Vec<UsageRecord> = (0..count)
        .map(|index| UsageRecord {
            request_id: format!("cmpl-earlier-{index}"),
            user_id: user_id.to_owned(),
            key_id: app.key_id.clone(),
            endpoint: "/v1/completions".to_owned(),
            task: "inline_completion".to_owned(),
            provider: Some("local".to_owned()),
            model: Some("local".to_owned()),
            prompt_tokens: 5,
            completion_tokens: 5,
            latency_ms: 1,
            status: 200,
            cost_usd: 0.0,
            created_at: Utc::now(),
        })
        .collect();
    usage::write_batch(&app.state.db, &records, &[])
        .await
        .unwrap();
}

/// The CI scenario in small: three instances share the database and Redis; the user's
/// usage records already hold 10 of the hour's 60 requests; of 300 simultaneous requests
/// spread over the instances exactly the remaining 50 are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_sharing_redis_serve_exactly_the_remaining_quota() {
    let Some(url) = test_redis_url("instances_sharing_redis_serve_exactly_the_remaining_quota")
    else {
        return;
    };
    let prefix = format!("tandem-test:http:{}:", uuid::Uuid::new_v4().simple());
    // A generous timeout: on a busy machine a slow answer must not become a fallback.
    let config = format!(
        "[redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\ntimeout_ms = 5000\ninstances = 3\n\
         [tiers.pro]\nrequests_per_hour = 60\nburst_per_minute = 0\n"
    );
    let app = TestApp::new(&config).await;
    let me = app.call(&app.key, "GET", "/v1/me", None).await;
    let user_id = me.json["user"]["id"].as_str().unwrap().to_owned();
    recorded_requests(&app, &user_id, 10).await;
    let routers = [
        app.router.clone(),
        instance(&app, &config),
        instance(&app, &config),
    ];
    let tasks: Vec<_> = (0..300)
        .map(|index| tokio::spawn(complete(routers[index % 3].clone(), app.key.clone())))
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let served = statuses.iter().filter(|status| **status == 200).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!((served, refused), (50, 250), "{statuses:?}");
    // Every instance reports the shared quota.
    let me = app.call(&app.key, "GET", "/v1/me", None).await;
    assert_eq!(me.json["requests_this_hour"]["remaining"], 0, "{}", me.text);
    let metrics = app
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert!(
        metrics.text.contains("tandem_redis_up 1"),
        "{}",
        metrics.text
    );
    assert!(
        !metrics.text.contains("tandem_rate_limit_fallbacks_total{"),
        "{}",
        metrics.text
    );
    let ready = app
        .send(Request::get("/ready").body(Body::empty()).unwrap())
        .await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json["redis"], "ok");
    delete_keys(&url, &prefix).await;
}

/// Redis down is not a reason to stop serving: `/ready` stays 200 with `redis:
/// degraded`, and requests are decided by the instance's share of the limits.
#[tokio::test]
async fn without_redis_the_instance_serves_its_share_and_stays_ready() {
    // Nothing listens on port 1.
    let app = TestApp::new(
        "[redis]\nurl = \"redis://:hunter2@127.0.0.1:1\"\ninstances = 2\n\
         [tiers.pro]\nrequests_per_hour = 6\nburst_per_minute = 0\n",
    )
    .await;
    let ready = app
        .send(Request::get("/ready").body(Body::empty()).unwrap())
        .await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json["redis"], "degraded");
    for _ in 0..3 {
        let reply = app.complete(body()).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let reply = app.complete(body()).await;
    reply.assert_error(429, "rate_limited");
    assert_eq!(reply.json["error"]["limit_value"], 3);
    let metrics = app
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert!(
        metrics.text.contains("tandem_redis_up 0"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains(r#"tandem_rate_limit_fallbacks_total{operation="admit"} 4"#),
        "{}",
        metrics.text
    );
    assert!(!metrics.text.contains("hunter2"));
}

/// Without `[redis]`, `/ready` says nothing of it and there is no Redis gauge.
#[tokio::test]
async fn without_redis_configured_ready_and_metrics_do_not_mention_it() {
    let app = TestApp::new("").await;
    let ready = app
        .send(Request::get("/ready").body(Body::empty()).unwrap())
        .await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert!(ready.json.get("redis").is_none(), "{}", ready.text);
    let metrics = app
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert!(
        !metrics.text.contains("tandem_redis_up"),
        "{}",
        metrics.text
    );
}
