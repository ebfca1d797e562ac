//! `GET/POST/DELETE /v1/keys` over real SQLite: scopes, expiry, revocation, the audit
//! log, and one user unable to see or touch another's keys.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{completion_body, Reply, TestApp};
use serde_json::{json, Value};
use tandem_cloud::db::api_keys::{self, KeyGrant};
use tandem_cloud::db::on;
use tandem_cloud::db::{audit, users};
use tandem_cloud::keys;
use tandem_shared::{Scope, Tier};

async fn get(app: &TestApp, key: &str, path: &str) -> Reply {
    app.call(key, "GET", path, None).await
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> Reply {
    app.call(key, "POST", path, Some(body)).await
}

async fn delete(app: &TestApp, key: &str, path: &str) -> Reply {
    app.call(key, "DELETE", path, None).await
}

fn chat_body() -> Value {
    json!({"task": "explain", "language": "rust", "path": "a.rs", "code": "fn a() {}"})
}

/// A key for `email` (created if need be) with `scopes`, optionally expired.
async fn key_with(app: &TestApp, email: &str, scopes: &[Scope], expired: bool) -> String {
    let user = match users::find_by_email(&app.state.db, email).await.unwrap() {
        Some(user) => user,
        None => users::create(&app.state.db, email, Tier::pro())
            .await
            .unwrap(),
    };
    let generated = keys::generate();
    let grant = KeyGrant {
        name: "test".into(),
        scopes: scopes.to_vec(),
        expires_at: expired.then(|| Utc::now() - chrono::Duration::seconds(1)),
    };
    api_keys::insert_granted(&app.state.db, &user, &grant, &generated)
        .await
        .unwrap();
    generated.secret
}

/// Waits until `key` is refused: revocation reaches the key cache through the auth epoch.
async fn wait_until_refused(app: &TestApp, key: &str) -> Reply {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let reply = get(app, key, "/v1/me").await;
        if reply.status == 401 || tokio::time::Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_user_lists_creates_and_revokes_their_keys() {
    let app = TestApp::new("").await;
    let listed = get(&app, &app.key, "/v1/keys").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let keys = listed.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["current"], true);
    assert_eq!(keys[0]["scopes"], json!(["completions", "chat"]));

    let created = post(
        &app,
        &app.key,
        "/v1/keys",
        json!({"name": "  laptop ", "scopes": ["completions"], "expires_in_days": 30}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let secret = created.json["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tdm_"));
    assert_eq!(created.json["name"], "laptop");
    assert_eq!(created.json["scopes"], json!(["completions"]));
    assert!(created.json["expires_at"].as_str().unwrap() > Utc::now().to_rfc3339().as_str());
    assert!(created.json.get("current").is_none());
    let id = created.json["id"].as_str().unwrap().to_owned();

    // The new key works for what it was given, and only that.
    assert_eq!(app.complete(completion_body()).await.status, 200);
    let reply = post(&app, &secret, "/v1/completions", completion_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let refused = post(&app, &secret, "/v1/chat", chat_body()).await;
    let message = refused.assert_error(403, "forbidden");
    assert!(
        message.contains("does not have the `chat` scope"),
        "{message}"
    );
    // Nor can it give itself more.
    let escalated = post(
        &app,
        &secret,
        "/v1/keys",
        json!({"name": "x", "scopes": ["chat"]}),
    )
    .await;
    escalated.assert_error(403, "forbidden");
    let admin = post(
        &app,
        &app.key,
        "/v1/keys",
        json!({"name": "x", "scopes": ["admin"]}),
    )
    .await;
    assert!(admin
        .assert_error(403, "forbidden")
        .contains("`admin` scope"));

    // The secret is shown once and stored only hashed.
    let listed = get(&app, &app.key, "/v1/keys").await;
    assert_eq!(listed.json["keys"].as_array().unwrap().len(), 2);
    assert!(!listed.text.contains(&secret));
    let hashed: i64 = on!(
        &app.state.db,
        sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE key_hash = $1")
            .bind(&keys::KeyHash::of(&secret).0[..]),
        fetch_one
    )
    .unwrap();
    assert_eq!(hashed, 1, "stored as its SHA-256");
    let in_clear: i64 = on!(
        &app.state.db,
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys \
         WHERE id || name || key_prefix || scopes LIKE '%' || $1 || '%'",
        )
        .bind(&secret),
        fetch_one
    )
    .unwrap();
    assert_eq!(in_clear, 0, "and nowhere in clear");

    let revoked = delete(&app, &app.key, &format!("/v1/keys/{id}")).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert!(revoked.json["revoked_at"].is_string());
    let refused = wait_until_refused(&app, &secret).await;
    assert!(refused
        .assert_error(401, "unauthorized")
        .contains("revoked"));
    // Revoking again changes nothing and says so the same way.
    let again = delete(&app, &app.key, &format!("/v1/keys/{id}")).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json["revoked_at"], revoked.json["revoked_at"]);

    // Every change is in the audit log, with who did it.
    let user = users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap();
    let entries = audit::recent(&app.state.db, Some(&user.id), 10)
        .await
        .unwrap();
    let actions: Vec<&str> = entries.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["key.revoke", "key.create"]);
    assert!(entries
        .iter()
        .all(|entry| entry.actor == format!("user:{}", user.id)));
    assert_eq!(entries[1].detail["scopes"], json!(["completions"]));
    assert_eq!(
        entries[0].target.as_deref(),
        Some(format!("key:{id}").as_str())
    );
}

#[tokio::test]
async fn one_user_cannot_see_or_revoke_anothers_keys() {
    let app = TestApp::new("").await;
    let mallory = key_with(&app, "mallory@example.com", &Scope::DEFAULT, false).await;
    let victim = get(&app, &app.key, "/v1/keys").await;
    let victim_id = victim.json["keys"][0]["id"].as_str().unwrap().to_owned();

    let listed = get(&app, &mallory, "/v1/keys").await;
    assert_eq!(listed.json["keys"].as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&victim_id));
    // Answered exactly as a key that does not exist.
    let theirs = delete(&app, &mallory, &format!("/v1/keys/{victim_id}")).await;
    let nobodys = delete(&app, &mallory, "/v1/keys/01234567-no-such-key").await;
    assert_eq!(
        theirs
            .assert_error(404, "not_found")
            .replace(&victim_id, "ID"),
        nobodys
            .assert_error(404, "not_found")
            .replace("01234567-no-such-key", "ID")
    );
    // Nothing changed.
    assert_eq!(app.complete(completion_body()).await.status, 200);
    let after = get(&app, &app.key, "/v1/keys").await;
    assert!(after.json["keys"][0]["revoked_at"].is_null());
}

#[tokio::test]
async fn logout_revokes_the_current_key_and_expired_keys_stop_working() {
    let app = TestApp::new("").await;
    let device = key_with(&app, "user@example.com", &Scope::DEFAULT, false).await;
    let revoked = delete(&app, &device, "/v1/keys/current").await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(revoked.json["current"], true);
    wait_until_refused(&app, &device)
        .await
        .assert_error(401, "unauthorized");
    // The other key is untouched.
    assert_eq!(get(&app, &app.key, "/v1/me").await.status, 200);

    let expired = key_with(&app, "user@example.com", &Scope::DEFAULT, true).await;
    let message = get(&app, &expired, "/v1/me")
        .await
        .assert_error(401, "unauthorized");
    assert!(message.starts_with("API key expired at"), "{message}");
}

#[tokio::test]
async fn bad_key_requests_are_named() {
    let app = TestApp::new("").await;
    for (body, fragment) in [
        (json!({"name": " "}), "`name` must say what the key is for"),
        (json!({"name": "a\u{7}b"}), "without control characters"),
        (
            json!({"name": "ci", "scopes": []}),
            "`scopes` must name at least one scope",
        ),
        (
            json!({"name": "ci", "expires_in_days": 0}),
            "`expires_in_days` must be between 1 and 3650",
        ),
    ] {
        let message = post(&app, &app.key, "/v1/keys", body)
            .await
            .assert_error(422, "invalid_request");
        assert!(message.contains(fragment), "{message}");
    }
    let message = post(
        &app,
        &app.key,
        "/v1/keys",
        json!({"name": "ci", "scopes": ["root"]}),
    )
    .await
    .assert_error(400, "malformed_body");
    assert!(message.contains("unknown variant `root`"), "{message}");
    let listed = get(&app, &app.key, "/v1/keys").await;
    assert_eq!(
        listed.json["keys"].as_array().unwrap().len(),
        1,
        "nothing was created"
    );
}

#[tokio::test]
async fn a_session_secret_shorter_than_256_bits_stops_the_start() {
    use tandem_cloud::{AppState, Config};
    let app = TestApp::new("").await;
    let config =
        Config::parse_str("[sessions]\njwt_secret_env = \"TANDEM_TEST_SESSION_SECRET\"\n").unwrap();
    let with = |secret: Option<&'static str>| {
        AppState::with_env(config.clone(), app.state.db.clone(), &move |name| {
            (name == "TANDEM_TEST_SESSION_SECRET")
                .then_some(secret)
                .flatten()
                .map(str::to_owned)
        })
    };
    let short = with(Some("31-bytes-is-one-byte-too-short!")).unwrap_err();
    assert_eq!(
        short.to_string(),
        "environment variable `TANDEM_TEST_SESSION_SECRET` (named by sessions.jwt_secret_env): \
         the session secret is 31 bytes; it must be at least 32 bytes (256 bits) of random data"
    );
    let missing = with(None).unwrap_err();
    assert!(missing.to_string().contains("is not set"), "{missing}");
    let state = with(Some("a-32-byte-secret-of-random-data!")).unwrap();
    assert!(state.sessions.is_some());
    assert!(app.state.sessions.is_none(), "no sessions without a secret");
}
