//! `tandem/status` and `tandem/didChangeStatus` (docs/editors/PROTOCOL.md): what an
//! editor's status bar shows, from the real cloud's `/v1/me` and quota headers.

use std::time::Duration;

use serde_json::{json, Value};
use tandem_e2e::{CloudOptions, LspClient, LspOptions, ProviderConfig, ProviderFixture};

use crate::support::{inline_items, Editor, Stack, MODEL};

const DID_CHANGE_STATUS: &str = "tandem/didChangeStatus";

fn wants_status() -> Value {
    json!({"experimental": {"tandem": {"statusNotifications": true}}})
}

/// Waits for a status notification that satisfies `accept`, and returns it.
async fn status_where(lsp: &LspClient, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = lsp
            .notifications(DID_CHANGE_STATUS)
            .into_iter()
            .find(&accept)
        {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no status notification {what}: {:#?}\n{}",
            lsp.notifications(DID_CHANGE_STATUS),
            lsp.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_follows_the_account_and_every_call() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    provider.reply_with_text("total");
    let options = CloudOptions {
        tier: Some("pro".into()),
        ..CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL))
    };
    let stack =
        Stack::start_with_capabilities(options, Some(provider), false, json!({}), wants_status())
            .await;

    // The account is read at start and pushed without being asked for.
    let pushed = status_where(&stack.lsp, "with the account", |status| {
        status["email"].is_string()
    })
    .await;
    assert_eq!(pushed["state"], "ready", "{pushed:#}");
    assert_eq!(pushed["tier"], "pro", "{pushed:#}");

    // The request answers the same, with `{}` as params as some clients send.
    let status = stack
        .lsp
        .request("tandem/status", json!({}))
        .await
        .expect("tandem/status");
    let me: Value = reqwest::Client::new()
        .get(format!("{}/v1/me", stack.cloud.url()))
        .bearer_auth(stack.cloud.api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["email"], me["user"]["email"], "{status:#}");
    assert_eq!(status["server"], stack.proxy.url(), "{status:#}");
    assert_eq!(status["busy"], false);
    assert_eq!(status["message"], Value::Null);
    let window = status["quota"]["window"].as_str().expect("a quota window");
    let me_window = if window == "hour" {
        &me["requests_this_hour"]
    } else {
        &me["requests_today"]
    };
    assert_eq!(status["quota"]["limit"], me_window["limit"], "{status:#}");
    assert_eq!(status["tokens"]["limit"], me["tokens_today"]["limit"]);
    let remaining_before = status["quota"]["remaining"].as_u64().unwrap();

    // A completion shows as busy while it runs (the provider takes 300 ms, so the status
    // cannot skip it), and its answer's headers update the quota.
    stack.provider().set_delay(Duration::from_millis(300));
    let text = "def add(a, b):\n    return ";
    let editor = Editor::open(&stack.lsp, "add.py", "python", text).await;
    let seen_before = stack.lsp.notifications(DID_CHANGE_STATUS).len();
    let result = stack
        .lsp
        .inline_completion(&editor.uri, editor.end())
        .await
        .expect("inlineCompletion");
    assert_eq!(inline_items(&result).len(), 1, "{result:#}");
    let during = &stack.lsp.notifications(DID_CHANGE_STATUS)[seen_before..];
    assert!(
        during.iter().any(|status| status["busy"] == true),
        "the call never showed as running: {during:#?}"
    );
    let after = status_where(&stack.lsp, "with the quota one request lower", |status| {
        status["busy"] == false && status["quota"]["remaining"] == remaining_before - 1
    })
    .await;
    assert_eq!(after["state"], "ready", "{after:#}");
    let tokens_left = after["tokens"]["remaining"].as_u64().unwrap();
    assert!(tokens_left < me["tokens_today"]["remaining"].as_u64().unwrap());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_shows_in_the_status_and_a_good_one_clears_it() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    let options = CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL));
    let stack =
        Stack::start_with_capabilities(options, Some(provider), false, json!({}), wants_status())
            .await;
    status_where(&stack.lsp, "with the account", |status| {
        status["email"].is_string()
    })
    .await;

    // A key the cloud does not know, from the settings: the account is read again with
    // it at once, and the cloud's 401 shows.
    let settings = |key: &str| json!({"settings": {"tandem": {"apiKey": key}}});
    stack
        .lsp
        .notify(
            "workspace/didChangeConfiguration",
            settings("tdm_not_a_key_the_cloud_knows_0123456789"),
        )
        .await
        .unwrap();
    let rejected = status_where(&stack.lsp, "saying the key was rejected", |status| {
        status["state"] == "unauthorized"
    })
    .await;
    let message = rejected["message"].as_str().unwrap_or_default();
    assert!(message.contains("rejected the API key"), "{rejected:#}");
    assert!(
        !message.contains("tdm_"),
        "the key must never be shown: {message}"
    );
    assert_eq!(
        rejected["email"],
        Value::Null,
        "the account was someone else's"
    );

    // The right key again: ready, with the account.
    stack
        .lsp
        .notify(
            "workspace/didChangeConfiguration",
            settings(stack.cloud.api_key()),
        )
        .await
        .unwrap();
    let count = stack.lsp.notifications(DID_CHANGE_STATUS).len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let statuses = stack.lsp.notifications(DID_CHANGE_STATUS);
        if statuses[count..]
            .iter()
            .any(|status| status["state"] == "ready" && status["email"].is_string())
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{statuses:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_did_not_ask_gets_no_status_notifications() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    provider.reply_with_text("x");
    let options = CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL));
    let stack = Stack::start_with(options, Some(provider), false, json!({})).await;
    let editor = Editor::open(&stack.lsp, "a.py", "python", "x = ").await;
    stack
        .lsp
        .inline_completion(&editor.uri, editor.end())
        .await
        .expect("inlineCompletion");
    // The request works without the capability.
    let status = stack
        .lsp
        .request("tandem/status", Value::Null)
        .await
        .expect("tandem/status");
    assert_eq!(status["state"], "ready", "{status:#}");
    assert!(stack.lsp.notifications(DID_CHANGE_STATUS).is_empty());
    stack.shutdown().await;
}

/// The server with no credentials at all says so, without any cloud.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_key_the_status_is_signed_out() {
    let lsp = LspClient::spawn(LspOptions::default())
        .await
        .expect("tandem lsp");
    lsp.initialize_with(json!({}), false, wants_status())
        .await
        .expect("initialize");
    let status = lsp.request("tandem/status", json!({})).await.unwrap();
    assert_eq!(status["state"], "signedOut", "{status:#}");
    assert_eq!(status["server"], "http://127.0.0.1:8787");
    assert!(status["message"].as_str().is_some_and(|m| !m.is_empty()));
    lsp.shutdown_and_exit().await.unwrap();
}
