//! `/admin/*` over real SQLite: only keys with the `admin` scope get in; tier changes
//! and revocations apply and are audited with the administrator as actor.

mod common;

use std::time::Duration;

use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn only_admin_keys_get_in() {
    let app = TestApp::new("").await;
    let user_key_id = app.call(&app.key, "GET", "/v1/keys", None).await.json["keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path, body) in [
        ("GET", "/admin/users".to_owned(), None),
        (
            "PUT",
            "/admin/users/user@example.com/tier".to_owned(),
            Some(json!({"tier": "enterprise"})),
        ),
        ("DELETE", format!("/admin/keys/{user_key_id}"), None),
        ("GET", "/admin/audit".to_owned(), None),
        ("GET", "/admin/stats".to_owned(), None),
    ] {
        let reply = app.call(&app.key, method, &path, body).await;
        let message = reply.assert_error(403, "forbidden");
        assert!(message.contains("`admin` scope"), "{path}: {message}");
    }
    // Nothing changed.
    let me = app.call(&app.key, "GET", "/v1/me", None).await;
    assert_eq!(
        (me.status.as_u16(), me.json["tier"].as_str()),
        (200, Some("pro"))
    );
}

#[tokio::test]
async fn an_admin_changes_tiers_revokes_keys_and_reads_the_log() {
    let app = TestApp::new("").await;
    let (admin, admin_id) = app.admin_key().await;

    let listed = app.call(&admin, "GET", "/admin/users?limit=10", None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["total"], 2);
    let emails: Vec<&str> = listed.json["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["user@example.com", "root@example.com"]);
    app.call(&admin, "GET", "/admin/users?limit=5000", None)
        .await
        .assert_error(422, "invalid_request");

    let changed = app
        .call(
            &admin,
            "PUT",
            "/admin/users/USER@example.com/tier",
            Some(json!({"tier": "free"})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.json["tier"], "free");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let me = app.call(&app.key, "GET", "/v1/me", None).await;
        if me.json["tier"] == "free" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", me.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unknown = app
        .call(
            &admin,
            "PUT",
            "/admin/users/user@example.com/tier",
            Some(json!({"tier": "platinum"})),
        )
        .await;
    assert!(unknown
        .assert_error(422, "invalid_request")
        .contains("unknown tier `platinum`"));
    app.call(
        &admin,
        "PUT",
        "/admin/users/nobody@example.com/tier",
        Some(json!({"tier": "pro"})),
    )
    .await
    .assert_error(404, "not_found");

    let user_key_id = app.call(&app.key, "GET", "/v1/keys", None).await.json["keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = app
        .call(
            &admin,
            "DELETE",
            &format!("/admin/keys/{user_key_id}"),
            None,
        )
        .await;
    assert_eq!(
        revoked.json,
        json!({"id": user_key_id, "revoked": true, "already_revoked": false})
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.call(&app.key, "GET", "/v1/me", None).await.status != 401 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key still works"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.call(&admin, "DELETE", "/admin/keys/no-such-key", None)
        .await
        .assert_error(404, "not_found");

    let log = app
        .call(&admin, "GET", "/admin/audit?email=user@example.com", None)
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    let entries = log.json["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.revoke", "user.set_tier"]);
    assert!(entries
        .iter()
        .all(|entry| entry["actor"] == format!("user:{admin_id}")));
    assert_eq!(entries[1]["detail"], json!({"from": "pro", "to": "free"}));
}

#[tokio::test]
async fn an_admin_reads_the_deployments_figures() {
    let app = TestApp::new("").await;
    let (admin, _) = app.admin_key().await;
    // One served completion of the test user.
    assert_eq!(app.complete(common::completion_body()).await.status, 200);
    let stats = app.call(&admin, "GET", "/admin/stats", None).await;
    assert_eq!(stats.status, 200, "{}", stats.text);
    assert_eq!(stats.json["users"], 2, "{}", stats.text);
    assert_eq!(stats.json["active_users"], 1, "{}", stats.text);
    assert_eq!(stats.json["requests"], 1, "{}", stats.text);
    assert_eq!(stats.json["by_feature"][0]["key"], "inline_completion");
    assert!(
        stats.json["latency_ms"]["p99"].is_number(),
        "{}",
        stats.text
    );
    // A period the wrong way round, and an unknown parameter.
    let reply = app
        .call(
            &admin,
            "GET",
            "/admin/stats?from=2026-02-01&to=2026-01-01",
            None,
        )
        .await;
    reply.assert_error(422, "invalid_request");
    let reply = app
        .call(&admin, "GET", "/admin/stats?group_by=day", None)
        .await;
    reply.assert_error(422, "invalid_request");
}
