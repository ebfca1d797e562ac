//! The Device Authorization Grant (RFC 8628) over real SQLite: codes, the RFC's polling
//! errors, one key per approved code, and the refusals (unknown client, wrong grant,
//! expired, declined, used twice).

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use common::{Reply, TestApp};
use serde_json::Value;
use tandem_cloud::db::on;
use tandem_cloud::db::{audit, device_codes, users};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn form(app: &TestApp, path: &str, body: &str) -> Reply {
    app.send(
        Request::post(path)
            .header("host", "tandem.test:8787")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap(),
    )
    .await
}

async fn start(app: &TestApp) -> Value {
    let reply = form(
        app,
        "/oauth/device/code",
        "client_id=tandem-cli&scope=completions+chat",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["cache-control"], "no-store");
    reply.json
}

async fn poll(app: &TestApp, device_code: &str) -> Reply {
    form(
        app,
        "/oauth/token",
        &format!("grant_type={GRANT}&client_id=tandem-cli&device_code={device_code}"),
    )
    .await
}

#[track_caller]
fn assert_oauth_error(reply: &Reply, status: u16, error: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert_eq!(reply.json["error"], error, "{}", reply.text);
    assert!(
        reply.json["error_description"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "{}",
        reply.text
    );
}

async fn approve(app: &TestApp, user_code: &str, yes: bool) {
    let user = users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap();
    assert!(
        device_codes::decide(&app.state.db, user_code, &user, yes, chrono::Utc::now())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_approved_code_gives_one_key_once() {
    let app = TestApp::new("[auth]\ndevice_poll_interval_secs = 0\n").await;
    let started = start(&app).await;
    let user_code = started["user_code"].as_str().unwrap();
    let device_code = started["device_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9, "{started}");
    assert_eq!(
        started["verification_uri"],
        "http://tandem.test:8787/device"
    );
    assert_eq!(
        started["verification_uri_complete"],
        format!("http://tandem.test:8787/device?user_code={user_code}")
    );
    assert_eq!(started["expires_in"], 900);
    assert_eq!(started["interval"], 0);

    assert_oauth_error(&poll(&app, device_code).await, 400, "authorization_pending");
    approve(&app, user_code, true).await;
    let granted = poll(&app, device_code).await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    assert_eq!(granted.json["token_type"], "Bearer");
    assert_eq!(granted.json["scope"], "completions chat");
    let key = granted.json["access_token"].as_str().unwrap().to_owned();
    let me = app
        .send(
            Request::get("/v1/me")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["user"]["email"], "user@example.com");

    // A device code is good for one key.
    assert_oauth_error(&poll(&app, device_code).await, 400, "invalid_grant");
    let keys: i64 = on!(
        &app.state.db,
        sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE name = 'device (tandem-cli)'"),
        fetch_one
    )
    .unwrap();
    assert_eq!(keys, 1);
    let user = users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap();
    let entries = audit::recent(&app.state.db, Some(&user.id), 5)
        .await
        .unwrap();
    assert_eq!(entries[0].action, "key.create");
    assert_eq!(entries[0].detail["via"], "device_authorization");
}

#[tokio::test]
async fn polling_too_fast_slows_the_client_down() {
    let app = TestApp::new("[auth]\ndevice_poll_interval_secs = 5\n").await;
    let started = start(&app).await;
    let device_code = started["device_code"].as_str().unwrap();
    assert_oauth_error(&poll(&app, device_code).await, 400, "authorization_pending");
    let fast = poll(&app, device_code).await;
    assert_oauth_error(&fast, 400, "slow_down");
    assert!(
        fast.json["error_description"]
            .as_str()
            .unwrap()
            .contains("wait 10 seconds"),
        "{}",
        fast.text
    );
}

#[tokio::test]
async fn declined_expired_and_unknown_codes_are_refused() {
    let app =
        TestApp::new("[auth]\ndevice_poll_interval_secs = 0\ndevice_code_ttl_secs = 1\n").await;
    let declined = start(&app).await;
    approve(&app, declined["user_code"].as_str().unwrap(), false).await;
    assert_oauth_error(
        &poll(&app, declined["device_code"].as_str().unwrap()).await,
        400,
        "access_denied",
    );

    let late = start(&app).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_oauth_error(
        &poll(&app, late["device_code"].as_str().unwrap()).await,
        400,
        "expired_token",
    );
    // An expired code cannot be approved either.
    let user = users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap();
    let decided = device_codes::decide(
        &app.state.db,
        late["user_code"].as_str().unwrap(),
        &user,
        true,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert!(!decided);

    assert_oauth_error(&poll(&app, "made-up").await, 400, "invalid_grant");
}

#[tokio::test]
async fn malformed_requests_get_the_rfc_errors() {
    let app = TestApp::new("").await;
    assert_oauth_error(
        &form(&app, "/oauth/device/code", "client_id=someone-else").await,
        401,
        "invalid_client",
    );
    assert_oauth_error(
        &form(&app, "/oauth/device/code", "scope=chat").await,
        401,
        "invalid_client",
    );
    assert_oauth_error(
        &form(
            &app,
            "/oauth/device/code",
            "client_id=tandem-cli&scope=completions+admin",
        )
        .await,
        400,
        "invalid_scope",
    );
    assert_oauth_error(
        &form(
            &app,
            "/oauth/token",
            "grant_type=password&client_id=tandem-cli",
        )
        .await,
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        &form(
            &app,
            "/oauth/token",
            &format!("grant_type={GRANT}&client_id=tandem-cli"),
        )
        .await,
        400,
        "invalid_request",
    );
    let json = app
        .send(
            Request::post("/oauth/device/code")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"client_id":"tandem-cli"}"#))
                .unwrap(),
        )
        .await;
    assert_oauth_error(&json, 400, "invalid_request");
    // Another client's device code is not this client's.
    let started = start(&app).await;
    let other = form(
        &app,
        "/oauth/token",
        &format!(
            "grant_type={GRANT}&client_id=someone-else&device_code={}",
            started["device_code"].as_str().unwrap()
        ),
    )
    .await;
    assert_oauth_error(&other, 401, "invalid_client");
}

#[tokio::test]
async fn racing_polls_collect_one_key() {
    let app = TestApp::new("[auth]\ndevice_poll_interval_secs = 0\n").await;
    let started = start(&app).await;
    approve(&app, started["user_code"].as_str().unwrap(), true).await;
    let device_code = started["device_code"].as_str().unwrap();
    let polls = (0..8).map(|_| poll(&app, device_code));
    let replies = futures::future::join_all(polls).await;
    let granted = replies.iter().filter(|reply| reply.status == 200).count();
    assert_eq!(
        granted,
        1,
        "{:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    // The others were refused (or asked to retry), never given a key.
    assert!(replies
        .iter()
        .filter(|reply| reply.status != 200)
        .all(|reply| reply.json.get("access_token").is_none() && reply.json["error"].is_string()));
    let keys: i64 = on!(
        &app.state.db,
        sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE name = 'device (tandem-cli)'"),
        fetch_one
    )
    .unwrap();
    assert_eq!(keys, 1);
}

#[tokio::test]
async fn one_address_cannot_flood_the_code_table() {
    let app = TestApp::new("").await;
    for _ in 0..10 {
        start(&app).await;
    }
    let flooded = form(&app, "/oauth/device/code", "client_id=tandem-cli").await;
    assert_oauth_error(&flooded, 429, "slow_down");
    let rows: i64 = on!(
        &app.state.db,
        sqlx::query_scalar("SELECT COUNT(*) FROM device_codes"),
        fetch_one
    )
    .unwrap();
    assert_eq!(rows, 10);
}
