//! Real editor clients against the real binaries: Microsoft's `vscode-jsonrpc` (the
//! JSON-RPC layer of VS Code's LSP client) under Node, and Neovim's built-in LSP client,
//! headless. The scripts live in `tests/clients/`; here we start the cloud and a provider
//! that always answers the same text, and run each client as a child process.
//!
//! A developer without Node's packages or Neovim installed sees these tests skip with a
//! message; CI sets `TANDEM_REQUIRE_EDITOR_CLIENTS=1`, and there a missing client fails.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use tandem_e2e::{binaries, CloudOptions, CloudServer, ProviderConfig, ProviderFixture};

use crate::support::MODEL;

/// Ends with a non-ASCII character so a client that mangles UTF-8 fails visibly.
const EXPECTED_TEXT: &str = "return sum(v * 2 for v in values)  # ✓";

fn clients_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// Whether a missing client is a failure (CI) or a skip (a developer's machine).
fn clients_required() -> bool {
    std::env::var("TANDEM_REQUIRE_EDITOR_CLIENTS").is_ok_and(|value| value == "1")
}

/// Reports a missing client: panics in CI, otherwise says what to install and returns.
fn missing(what: &str, install: &str) {
    assert!(
        !clients_required(),
        "{what} is required (TANDEM_REQUIRE_EDITOR_CLIENTS=1) but missing: {install}"
    );
    eprintln!("skipping: {what} is not installed ({install})");
}

fn command_exists(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A cloud whose provider replies `EXPECTED_TEXT`, and the environment the client scripts
/// read (see `tests/clients/README.md`).
async fn start_cloud(reply: &str) -> (ProviderFixture, CloudServer, Vec<(String, String)>) {
    let provider = ProviderFixture::start().await.expect("provider fixture");
    provider.reply_with_text(reply);
    let cloud = CloudServer::start(CloudOptions::with_provider(ProviderConfig::ollama(
        &provider, MODEL,
    )))
    .await
    .expect("tandem-cloud");
    let tandem = binaries::tandem().expect("tandem binary");
    let environment = vec![
        ("TANDEM_BIN".to_owned(), tandem.display().to_string()),
        ("TANDEM_SERVER".to_owned(), cloud.url().to_owned()),
        ("TANDEM_API_KEY".to_owned(), cloud.api_key().to_owned()),
        ("EXPECTED_TEXT".to_owned(), reply.to_owned()),
        ("TANDEM_LOG".to_owned(), "info".to_owned()),
    ];
    (provider, cloud, environment)
}

async fn run(mut command: tokio::process::Command, what: &str) -> Output {
    command
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 60 s"))
        .unwrap_or_else(|error| panic!("could not start {what}: {error}"));
    output
}

fn assert_success(output: &Output, what: &str, cloud: &CloudServer) {
    assert!(
        output.status.success(),
        "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- tandem-cloud stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        cloud.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vscode_jsonrpc_client_gets_the_suggestion() {
    let directory = clients_directory().join("vscode-jsonrpc");
    if !directory.join("node_modules/vscode-jsonrpc").is_dir() || !command_exists("node") {
        return missing(
            "the vscode-jsonrpc client",
            "install Node.js, then `npm ci --prefix tests/clients/vscode-jsonrpc`",
        );
    }
    let (provider, cloud, environment) = start_cloud(EXPECTED_TEXT).await;
    let config_directory = tempfile::tempdir().unwrap();

    let mut command = tokio::process::Command::new("node");
    command
        .arg("test.mjs")
        .current_dir(&directory)
        .envs(environment)
        .env("TANDEM_CONFIG_DIR", config_directory.path());
    let output = run(command, "the vscode-jsonrpc client").await;
    assert_success(&output, "the vscode-jsonrpc client", &cloud);
    // The suggestion really came from the provider, through the cloud.
    assert!(provider.request_count() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neovim_client_gets_the_suggestion() {
    if !command_exists("nvim") {
        return missing("Neovim", "`apt-get install neovim`");
    }
    let (provider, cloud, environment) = start_cloud(EXPECTED_TEXT).await;
    let scratch = tempfile::tempdir().unwrap();
    let script = clients_directory().join("neovim/test.lua");

    let mut command = tokio::process::Command::new("nvim");
    command
        .args(["--headless", "--clean", "-u", "NONE", "-c"])
        .arg(format!("luafile {}", script.display()))
        .envs(environment)
        // Keep Neovim's state and the server's credentials lookup out of the home directory.
        .env("TANDEM_CONFIG_DIR", scratch.path().join("config"))
        .env("XDG_STATE_HOME", scratch.path().join("state"))
        .env("XDG_CACHE_HOME", scratch.path().join("cache"))
        .env("XDG_DATA_HOME", scratch.path().join("data"));
    let output = run(command, "headless Neovim").await;
    assert_success(&output, "headless Neovim", &cloud);
    assert!(provider.request_count() >= 1);
}
