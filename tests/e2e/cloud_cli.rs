//! The `tandem-cloud` command line: first start, key management, configuration checks.

use std::time::Duration;

use reqwest::Client;
use tandem_e2e::{CloudOptions, CloudServer};
use tandem_shared::{ErrorBody, MeResponse, Tier};

async fn me_status(client: &Client, cloud: &CloudServer, key: &str) -> u16 {
    client
        .get(format!("{}/v1/me", cloud.url()))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /v1/me")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_creates_dev_user_and_prints_key_and_editor_settings() {
    let cloud = CloudServer::start(CloudOptions {
        bootstrap: true,
        ..CloudOptions::default()
    })
    .await
    .expect("tandem-cloud");
    let stdout = cloud.stdout();
    let key = cloud.api_key();
    let url = cloud.url();
    assert!(
        key.starts_with("tdm_") && key.len() == 47,
        "{key:?}\n{stdout}"
    );
    for expected in [
        "tandem.server".to_owned(),
        "tandem.apiKey".to_owned(),
        "require(\"tandem\").setup".to_owned(),
        format!("TANDEM_SERVER={url}"),
        format!("TANDEM_API_KEY={key}"),
        // The settings carry the real bound address, not the requested port 0.
        format!("\"{url}\""),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let last_line = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        last_line,
        format!("Listening on {url}"),
        "the Listening line comes after the settings"
    );

    let response = Client::new()
        .get(format!("{url}/v1/me"))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /v1/me");
    assert_eq!(response.status(), 200);
    let me: MeResponse = response.json().await.expect("MeResponse");
    assert_eq!(me.user.email, "dev@localhost");
    assert_eq!(me.tier, Tier::enterprise());
}

/// The ID of the harness's key, from `keys list` (the row named `e2e`).
async fn harness_key_id(cloud: &CloudServer) -> String {
    let listing = cloud
        .run_command(&[
            "keys",
            "list",
            "--email",
            tandem_e2e::cloud::TEST_USER_EMAIL,
        ])
        .await
        .expect("keys list");
    assert!(
        !listing.contains(cloud.api_key()),
        "`keys list` must not print secrets:\n{listing}"
    );
    listing
        .lines()
        .find(|line| line.split_whitespace().any(|word| word == "e2e"))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no row for the key named e2e in:\n{listing}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_tier_changes_apply_within_a_second() {
    let client = Client::new();
    // TTL 0: no cache, the very next request is refused.
    let cloud = CloudServer::start(CloudOptions {
        key_cache_ttl_secs: Some(0),
        ..CloudOptions::default()
    })
    .await
    .expect("tandem-cloud");
    let key = cloud.api_key().to_owned();
    assert_eq!(me_status(&client, &cloud, &key).await, 200);
    let id = harness_key_id(&cloud).await;
    cloud
        .run_command(&["keys", "revoke", &id])
        .await
        .expect("keys revoke");
    let response = client
        .get(format!("{}/v1/me", cloud.url()))
        .bearer_auth(&key)
        .send()
        .await
        .expect("GET /v1/me");
    assert_eq!(response.status(), 401, "with key_cache_ttl_secs = 0");
    let body: ErrorBody = response.json().await.expect("error body");
    assert_eq!(body.error.code, "unauthorized");

    // A long-lived cache does not outlive changes made by another process: the server
    // watches the database's auth epoch.
    let cloud = CloudServer::start(CloudOptions {
        key_cache_ttl_secs: Some(3600),
        ..CloudOptions::default()
    })
    .await
    .expect("tandem-cloud");
    let key = cloud.api_key().to_owned();
    let complete = || async {
        client
            .post(format!("{}/v1/completions", cloud.url()))
            .bearer_auth(&key)
            .json(
                &serde_json::json!({"language": "rust", "path": "a.rs", "prefix": "fn a",
                "suffix": ""}),
            )
            .send()
            .await
            .expect("POST /v1/completions")
            .status()
            .as_u16()
    };
    assert_eq!(complete().await, 200);
    cloud
        .run_command(&[
            "users",
            "set-tier",
            "--email",
            tandem_e2e::cloud::TEST_USER_EMAIL,
            "--tier",
            "free",
        ])
        .await
        .expect("users set-tier");
    let changed_at = tokio::time::Instant::now();
    // Free has no inline completions.
    while complete().await != 403 {
        assert!(
            changed_at.elapsed() < Duration::from_secs(1),
            "the old tier still applies {:?} after set-tier",
            changed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let id = harness_key_id(&cloud).await;
    cloud
        .run_command(&["keys", "revoke", &id])
        .await
        .expect("keys revoke");
    let revoked_at = tokio::time::Instant::now();
    while me_status(&client, &cloud, &key).await != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "a revoked key still works {:?} after revocation",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_exit_1_with_a_message() {
    let cloud = CloudServer::start(CloudOptions::default())
        .await
        .expect("tandem-cloud");
    let cases: [(&str, Vec<&str>); 3] = [
        (
            "duplicate user",
            vec![
                "users",
                "create",
                "--email",
                tandem_e2e::cloud::TEST_USER_EMAIL,
            ],
        ),
        (
            "unknown email",
            vec!["keys", "create", "--email", "nobody@example.com"],
        ),
        (
            "bad tier",
            vec![
                "users",
                "create",
                "--email",
                "new@example.com",
                "--tier",
                "gold",
            ],
        ),
    ];
    for (case, args) in cases {
        let output = cloud.run_command_output(&args).await.expect(case);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{case}: stderr {stderr}");
        assert!(!stderr.trim().is_empty(), "{case}: no message on stderr");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_config_key_is_rejected_at_start() {
    let error = match CloudServer::start(CloudOptions {
        extra_toml: "surprise_setting = true".to_owned(),
        ..CloudOptions::default()
    })
    .await
    {
        Ok(_) => panic!("a config with an unknown key was accepted"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("surprise_setting"),
        "the error names the unknown key: {error}"
    );
}

/// Flag beats environment: a broken `TANDEM_BIND` does not matter when `--bind` is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_flag_beats_environment() {
    let cloud = CloudServer::start(CloudOptions {
        env: vec![("TANDEM_BIND".to_owned(), "256.0.0.1:99999".to_owned())],
        ..CloudOptions::default()
    })
    .await
    .expect("tandem-cloud with --bind and a bad TANDEM_BIND");
    assert!(
        cloud.url().starts_with("http://127.0.0.1:"),
        "{}",
        cloud.url()
    );
}
