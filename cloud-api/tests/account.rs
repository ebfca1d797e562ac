//! Data rights over real SQLite: `GET /v1/account/export` holds everything stored about
//! the caller and nothing about anyone else; `DELETE /v1/account` removes it all once
//! confirmed, revokes every key, and leaves other accounts alone.

mod common;

use std::time::Duration;

use common::{completion_body, TestApp};
use serde_json::json;
use tandem_cloud::db::audit::{self, Actor};
use tandem_cloud::db::on;
use tandem_cloud::db::{api_keys, users};
use tandem_cloud::keys;
use tandem_shared::Tier;

async fn count(app: &TestApp, sql: &str, user_id: &str) -> i64 {
    on!(
        &app.state.db,
        sqlx::query_scalar(sql).bind(user_id),
        fetch_one
    )
    .unwrap()
}

#[tokio::test]
async fn export_then_delete_an_account() {
    let app = TestApp::new("").await;
    let user = users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap();
    // Someone else, whose data must be neither exported nor deleted.
    let other = users::create(&app.state.db, "other@example.com", Tier::pro())
        .await
        .unwrap();
    let other_key = keys::generate();
    api_keys::insert(&app.state.db, &other, "theirs", &other_key)
        .await
        .unwrap();
    let cli = Actor::Cli;
    let target = format!("user:{}", user.id);
    audit::record(
        &app.state.db,
        &cli,
        "user.create",
        Some(&target),
        "cli",
        &json!({"email": user.email, "tier": "pro"}),
    )
    .await
    .unwrap();
    assert_eq!(app.complete(completion_body()).await.status, 200);
    let other_reply = app
        .call(
            &other_key.secret,
            "POST",
            "/v1/completions",
            Some(completion_body()),
        )
        .await;
    assert_eq!(other_reply.status, 200);

    let export = app.call(&app.key, "GET", "/v1/account/export", None).await;
    assert_eq!(export.status, 200, "{}", export.text);
    assert_eq!(
        export.headers["content-disposition"],
        format!("attachment; filename=\"tandem-account-{}.json\"", user.id).as_str()
    );
    let document = &export.json;
    assert_eq!(document["user"]["email"], "user@example.com");
    assert_eq!(document["user"]["tier"], "pro");
    assert_eq!(document["keys"].as_array().unwrap().len(), 1);
    assert_eq!(document["usage"].as_array().unwrap().len(), 1);
    assert_eq!(document["usage"][0]["endpoint"], "/v1/completions");
    assert_eq!(document["audit"][0]["action"], "user.create");
    assert!(
        !export.text.contains("other@example.com"),
        "{}",
        export.text
    );
    assert!(!export.text.contains(&app.key), "no secret is exported");

    // Deleting needs the account's email.
    let refused = app
        .call(
            &app.key,
            "DELETE",
            "/v1/account",
            Some(json!({"confirm": "other@example.com"})),
        )
        .await;
    assert!(refused
        .assert_error(422, "invalid_request")
        .contains("nothing was deleted"));
    let missing = app.call(&app.key, "DELETE", "/v1/account", None).await;
    assert_eq!(missing.status, 415, "{}", missing.text);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM users WHERE id = $1", &user.id).await,
        1
    );

    let deleted = app
        .call(
            &app.key,
            "DELETE",
            "/v1/account",
            Some(json!({"confirm": " User@Example.com "})),
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(
        deleted.json,
        json!({"deleted": true, "keys": 1, "usage_rows": 1})
    );
    for sql in [
        "SELECT COUNT(*) FROM users WHERE id = $1",
        "SELECT COUNT(*) FROM api_keys WHERE user_id = $1",
        "SELECT COUNT(*) FROM usage WHERE user_id = $1",
    ] {
        assert_eq!(count(&app, sql, &user.id).await, 0, "{sql}");
    }
    // Every key stops working.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let reply = app.call(&app.key, "GET", "/v1/me", None).await;
        if reply.status == 401 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key still works"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The audit log keeps what happened, without the email.
    let entries = audit::recent(&app.state.db, None, 10).await.unwrap();
    assert_eq!(entries[0].action, "account.delete");
    assert_eq!(entries[0].target.as_deref(), Some(target.as_str()));
    let created = entries
        .iter()
        .find(|entry| entry.action == "user.create")
        .unwrap();
    assert_eq!(created.detail, json!({"tier": "pro"}));

    // The other account is untouched.
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM usage WHERE user_id = $1",
            &other.id
        )
        .await,
        1
    );
    let theirs = app.call(&other_key.secret, "GET", "/v1/me", None).await;
    assert_eq!(theirs.status, 200);
}
