//! Where the language server gets its server and key, and how much context it sends.

use std::process::Output;

use serde_json::{json, Value};
use tandem_e2e::{
    CloudOptions, CloudServer, LspClient, LspOptions, ProviderConfig, ProviderFixture,
};

use crate::support::{inline_items, tandem_command, Editor, Stack, MODEL};

const SOURCE: &str = "fn main() {\n    let answer = \n}\n";
const REPLY: &str = "6 * 7;";

async fn tandem_cli(config_directory: &std::path::Path, args: &[&str]) -> Output {
    tandem_command(config_directory, args)
        .output()
        .await
        .expect("run tandem")
}

/// The status `GET /v1/me` answers `key` with.
async fn me_status(cloud: &CloudServer, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/v1/me", cloud.url()))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /v1/me")
        .status()
        .as_u16()
}

/// Waits for the server to refuse `key` (a revocation reaches its key cache through the
/// auth epoch, within a quarter of a second).
async fn wait_until_refused(cloud: &CloudServer, key: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while me_status(cloud, key).await != 401 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key still works"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn provider_and_cloud() -> (ProviderFixture, CloudServer) {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    provider.reply_with_text(REPLY);
    let cloud = CloudServer::start(CloudOptions::with_provider(ProviderConfig::ollama(
        &provider, MODEL,
    )))
    .await
    .expect("tandem-cloud");
    (provider, cloud)
}

/// Opens a document and checks a completion comes back with the fixture's text.
async fn assert_completes(lsp: &LspClient, context: &str) {
    let editor = Editor::open(lsp, "src/main.rs", "rust", SOURCE).await;
    let cursor = editor.position_after("let answer = ");
    let result = lsp
        .inline_completion(&editor.uri, cursor)
        .await
        .unwrap_or_else(|error| panic!("{context}: {error}\n{}", lsp.stderr()));
    let items = inline_items(&result);
    assert_eq!(items.len(), 1, "{context}: {result}\n{}", lsp.stderr());
    assert_eq!(items[0]["insertText"], REPLY, "{context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_writes_private_credentials_that_the_server_uses() {
    let (_provider, cloud) = provider_and_cloud().await;
    let config_directory = tempfile::tempdir().expect("tempdir");
    let credentials_path = config_directory.path().join("credentials.json");

    // A key the cloud rejects is not saved.
    let unknown_key = format!("tdm_{}", "C".repeat(43));
    let output = tandem_cli(
        config_directory.path(),
        &["login", "--api-key", &unknown_key, "--server", cloud.url()],
    )
    .await;
    assert!(
        !output.status.success(),
        "login with an unknown key succeeded"
    );
    assert!(!credentials_path.exists(), "a rejected key was saved");

    let output = tandem_cli(
        config_directory.path(),
        &[
            "login",
            "--api-key",
            cloud.api_key(),
            "--server",
            cloud.url(),
        ],
    )
    .await;
    assert!(
        output.status.success(),
        "login failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(&credentials_path).expect("credentials.json written"),
    )
    .expect("credentials.json is JSON");
    assert_eq!(saved["server"], cloud.url());
    assert_eq!(saved["api_key"], cloud.api_key());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&credentials_path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "credentials must be private");
    }
    let status = tandem_cli(config_directory.path(), &["status"]).await;
    assert!(
        status.status.success(),
        "status: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status_text = format!(
        "{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        !status_text.contains(cloud.api_key()),
        "`tandem status` must not print the whole key: {status_text}"
    );
    // Who, which tier, and what is left of each quota.
    assert!(
        status_text.contains(&format!(
            "Account:          {}",
            tandem_e2e::TEST_USER_EMAIL
        )),
        "{status_text}"
    );
    for label in ["Requests (hour):", "Requests (day):", "Tokens (day):"] {
        let line = status_text
            .lines()
            .find(|line| line.starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` line in {status_text}"));
        assert!(line.contains(" left, resets 20"), "{line}");
    }

    // No initializationOptions, no environment: the saved credentials are used.
    let lsp = LspClient::spawn(LspOptions {
        config_directory: Some(config_directory.path().to_path_buf()),
        ..LspOptions::default()
    })
    .await
    .expect("spawn");
    lsp.initialize(json!({}), false).await.expect("initialize");
    assert_completes(&lsp, "credentials file").await;
    lsp.shutdown_and_exit().await.expect("clean shutdown");

    let output = tandem_cli(config_directory.path(), &["logout"]).await;
    assert!(output.status.success());
    assert!(
        !credentials_path.exists(),
        "logout leaves the credentials file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_credentials_work_and_initialization_options_win() {
    let (_provider, cloud) = provider_and_cloud().await;

    let lsp = LspClient::spawn(LspOptions {
        env: vec![
            ("TANDEM_SERVER".to_owned(), cloud.url().to_owned()),
            ("TANDEM_API_KEY".to_owned(), cloud.api_key().to_owned()),
        ],
        ..LspOptions::default()
    })
    .await
    .expect("spawn");
    lsp.initialize(json!({}), false).await.expect("initialize");
    assert_completes(&lsp, "environment credentials").await;
    lsp.shutdown_and_exit().await.expect("clean shutdown");

    // The environment names a dead server and a bad key; initializationOptions win.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("port")
        .port();
    let lsp = LspClient::spawn(LspOptions {
        env: vec![
            (
                "TANDEM_SERVER".to_owned(),
                format!("http://127.0.0.1:{dead_port}"),
            ),
            (
                "TANDEM_API_KEY".to_owned(),
                format!("tdm_{}", "D".repeat(43)),
            ),
        ],
        ..LspOptions::default()
    })
    .await
    .expect("spawn");
    lsp.initialize(
        json!({"server": cloud.url(), "apiKey": cloud.api_key()}),
        false,
    )
    .await
    .expect("initialize");
    assert_completes(&lsp, "initializationOptions over environment").await;
    lsp.shutdown_and_exit().await.expect("clean shutdown");
}

/// Ten lines of 17 characters each.
fn numbered_lines() -> String {
    (0..10)
        .map(|line| format!("line_{line}_abcdefghij\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_is_cut_to_budget_at_line_boundaries() {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    let stack = Stack::start_with(
        CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL)),
        Some(provider),
        false,
        json!({"maxPrefixChars": 50, "maxSuffixChars": 30}),
    )
    .await;
    let text = numbered_lines();
    let editor = Editor::open(&stack.lsp, "src/lines.txt", "plaintext", &text).await;
    let cursor = editor.position_after("line_5_abcd");

    let result = stack
        .lsp
        .inline_completion(&editor.uri, cursor)
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", stack.logs()));
    assert_eq!(inline_items(&result).len(), 1, "{result}\n{}", stack.logs());

    // Prefix: the current line up to the cursor (11) plus whole lines 4 and 3 (18 each)
    // is 47 ≤ 50; line 2 would make 65.
    let expected_prefix = "line_3_abcdefghij\nline_4_abcdefghij\nline_5_abcd";
    // Suffix: the rest of line 5 and all of line 6 is 24 or 25 characters, depending on
    // whether the final line break counts; line 7 would exceed 30 either way.
    let suffixes = ["efghij\nline_6_abcdefghij", "efghij\nline_6_abcdefghij\n"];
    let requests = stack.proxy.completions();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].body["prefix"], expected_prefix);
    let suffix = requests[0].body["suffix"].as_str().unwrap_or_default();
    assert!(suffixes.contains(&suffix), "suffix {suffix:?}");
    let provider_requests = stack.provider().requests();
    assert_eq!(provider_requests[0].prompt(), Some(expected_prefix));
    assert_eq!(provider_requests[0].suffix(), Some(suffix));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_through_the_device_flow_and_logout_revokes_the_key() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let (_provider, cloud) = provider_and_cloud().await;
    let config_directory = tempfile::tempdir().expect("tempdir");
    let credentials_path = config_directory.path().join("credentials.json");
    let mut login = tandem_command(
        config_directory.path(),
        &["login", "--server", cloud.url(), "--no-browser"],
    )
    .spawn()
    .expect("run tandem login");

    // The page to open and the code to type, as a person would read them.
    let mut lines = BufReader::new(login.stdout.take().expect("stdout")).lines();
    let mut printed = String::new();
    let mut code = None;
    while code.is_none() {
        let line = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
            .await
            .expect("tandem login prints its code")
            .expect("stdout")
            .expect("a line");
        printed.push_str(&line);
        printed.push('\n');
        let trimmed = line.trim();
        if trimmed.len() == 9 && trimmed.as_bytes()[4] == b'-' {
            code = Some(trimmed.to_owned());
        }
    }
    assert!(
        printed.contains(&format!("open {}/device and enter the code", cloud.url())),
        "{printed}"
    );
    let code = code.unwrap();
    // Nothing is saved before the code is confirmed.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!credentials_path.exists());

    let approved = cloud
        .run_command(&[
            "device",
            "approve",
            "--code",
            &code,
            "--email",
            tandem_e2e::TEST_USER_EMAIL,
        ])
        .await
        .expect("device approve");
    assert!(
        approved.starts_with(&format!("approved login code {code}")),
        "{approved}"
    );
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), login.wait())
        .await
        .expect("tandem login finishes after the approval")
        .expect("exit status");
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    assert!(status.success(), "{printed}{rest}");
    assert!(
        rest.contains(&format!("Logged in to {}", cloud.url())),
        "{rest}"
    );

    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(&credentials_path).expect("credentials.json written"),
    )
    .expect("credentials.json is JSON");
    let key = saved["api_key"].as_str().expect("a key").to_owned();
    assert!(key.starts_with("tdm_") && key != cloud.api_key());
    assert_eq!(me_status(&cloud, &key).await, 200);

    // Logout revokes this device's key on the server, then deletes the file.
    let output = tandem_cli(config_directory.path(), &["logout"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("Revoked the key"), "{stdout}");
    assert!(!credentials_path.exists());
    wait_until_refused(&cloud, &key).await;
    // The cloud's other key is untouched.
    assert_eq!(me_status(&cloud, cloud.api_key()).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_language_server_signs_in_and_out_itself() {
    let (_provider, cloud) = provider_and_cloud().await;
    let config_directory = tempfile::tempdir().expect("tempdir");
    let credentials_path = config_directory.path().join("credentials.json");
    let lsp = LspClient::spawn(LspOptions {
        config_directory: Some(config_directory.path().to_path_buf()),
        ..LspOptions::default()
    })
    .await
    .expect("spawn");
    lsp.initialize_with(
        json!({"server": cloud.url()}),
        false,
        json!({"window": {"showDocument": {"support": true}}}),
    )
    .await
    .expect("initialize");

    let started = lsp
        .request(
            "workspace/executeCommand",
            json!({"command": "tandem.signIn"}),
        )
        .await
        .unwrap_or_else(|error| panic!("tandem.signIn: {error}\n{}", lsp.stderr()));
    let code = started["userCode"]
        .as_str()
        .expect("a user code")
        .to_owned();
    assert_eq!(
        started["verificationUri"],
        format!("{}/device", cloud.url())
    );
    // The page opens in the browser and the code is shown.
    let opened: Vec<Value> = lsp
        .server_requests()
        .into_iter()
        .filter(|request| request.method == "window/showDocument")
        .map(|request| request.params)
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0]["external"], true);
    assert_eq!(
        opened[0]["uri"],
        format!("{}/device?user_code={code}", cloud.url())
    );
    let shown = lsp.notifications("window/showMessage");
    assert!(
        shown
            .iter()
            .any(|note| note["message"].as_str().unwrap_or_default().contains(&code)),
        "{shown:?}"
    );
    // A second sign-in while this one waits is refused.
    let again = lsp
        .request(
            "workspace/executeCommand",
            json!({"command": "tandem.signIn"}),
        )
        .await
        .unwrap_err();
    assert!(
        again
            .message()
            .unwrap_or_default()
            .contains("already waiting"),
        "{again}"
    );

    cloud
        .run_command(&[
            "device",
            "approve",
            "--code",
            &code,
            "--email",
            tandem_e2e::TEST_USER_EMAIL,
        ])
        .await
        .expect("device approve");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let signed_in = lsp.notifications("window/showMessage").iter().any(|note| {
            note["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!(
                    "signed in to {} as {}",
                    cloud.url(),
                    tandem_e2e::TEST_USER_EMAIL
                ))
        });
        if signed_in {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not signed in\n{}",
            lsp.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&credentials_path).unwrap()).unwrap();
    let key = saved["api_key"].as_str().unwrap().to_owned();
    // The running server uses the new key at once.
    assert_completes(&lsp, "after tandem.signIn").await;

    let signed_out = lsp
        .request(
            "workspace/executeCommand",
            json!({"command": "tandem.signOut"}),
        )
        .await
        .unwrap_or_else(|error| panic!("tandem.signOut: {error}\n{}", lsp.stderr()));
    assert_eq!(signed_out, true);
    assert!(!credentials_path.exists());
    wait_until_refused(&cloud, &key).await;
    lsp.shutdown_and_exit().await.expect("clean shutdown");
}
