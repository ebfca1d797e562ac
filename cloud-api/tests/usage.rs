//! Usage accounting through the HTTP API on a real SQLite database: records for served
//! and refused requests, `GET /v1/usage`, costs, and quotas carried over a restart.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::TestApp;
use serde_json::{json, Value};
use tandem_cloud::db::{usage, users};
use tandem_cloud::{AppState, Config};

fn body() -> Value {
    json!({"language": "rust", "path": "src/lib.rs", "prefix": "fn a", "suffix": "}"})
}

async fn get_usage(app: &TestApp, query: &str) -> common::Reply {
    app.send(
        Request::get(format!("/v1/usage{query}"))
            .header("authorization", format!("Bearer {}", app.key))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

const CONFIG: &str = "[tiers.pro]\nrequests_per_hour = 3\nburst_per_minute = 0\n\
                      [prices.\"local\"]\nprompt_per_million_usd = 1000000.0\n\
                      completion_per_million_usd = 0.0\n";

#[tokio::test]
async fn served_and_refused_requests_are_recorded_and_summed() {
    let app = TestApp::new(CONFIG).await;
    for _ in 0..3 {
        assert_eq!(app.complete(body()).await.status, 200);
    }
    assert_eq!(app.complete(body()).await.status, 429);

    let user = users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap();
    assert_eq!(
        usage::count_for_user(&app.state.db, &user.id)
            .await
            .unwrap(),
        4
    );

    let reply = get_usage(&app, "").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let total = &reply.json["total"];
    assert_eq!(
        (total["requests"].as_u64(), total["errors"].as_u64()),
        (Some(4), Some(1))
    );
    assert!(total["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(reply.json["group_by"], "day");
    assert_eq!(reply.json["groups"].as_array().unwrap().len(), 1);

    let by_model = get_usage(&app, "?group_by=model").await;
    let groups = by_model.json["groups"].as_array().unwrap();
    // The refusal has no model; the served requests name the local model.
    let keys: Vec<&str> = groups
        .iter()
        .map(|group| group["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"-"), "{keys:?}");
    let served = groups.iter().find(|group| group["key"] != "-").unwrap();
    assert_eq!(served["requests"], 3);
    // A dollar per prompt token, as configured for the model that answered.
    assert_eq!(
        served["cost_usd"].as_f64().unwrap(),
        served["prompt_tokens"].as_f64().unwrap()
    );

    let bad = get_usage(&app, "?group_by=week").await;
    bad.assert_error(422, "invalid_request");
}

#[tokio::test]
async fn a_restarted_instance_keeps_the_quota_used_so_far() {
    let app = TestApp::new(CONFIG).await;
    for _ in 0..3 {
        assert_eq!(app.complete(body()).await.status, 200);
    }
    // A new instance over the same database: its counters start from the records.
    let config = Config::parse_str(CONFIG).unwrap();
    let state = AppState::with_env(config, app.state.db.clone(), &|_| None).unwrap();
    let restarted = tandem_cloud::app(state);
    let reply = tower::ServiceExt::oneshot(
        restarted,
        Request::post("/v1/completions")
            .header("authorization", format!("Bearer {}", app.key))
            .header("content-type", "application/json")
            .body(Body::from(body().to_string()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status(), 429);
}
