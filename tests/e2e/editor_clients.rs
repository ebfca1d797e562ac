//! What the real-editor-client tests share: they start the cloud and a provider that
//! always answers the same text, and run a client script from `tests/clients/` (or an
//! editor plugin's own test) as a child process. The tests themselves are in
//! `vscode_client.rs` (Microsoft's `vscode-jsonrpc` under Node) and `neovim_client.rs`
//! (headless Neovim with the plugin from `editors/nvim`).
//!
//! A developer without Node's packages or Neovim installed sees these tests skip with a
//! message; CI sets `TANDEM_REQUIRE_EDITOR_CLIENTS=1`, and there a missing client fails.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use tandem_e2e::{binaries, CloudOptions, CloudServer, ProviderConfig, ProviderFixture};

use crate::support::MODEL;

/// Ends with a non-ASCII character so a client that mangles UTF-8 fails visibly.
pub(crate) const EXPECTED_TEXT: &str = "return sum(v * 2 for v in values)  # ✓";

pub(crate) fn clients_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// Whether a missing client is a failure (CI) or a skip (a developer's machine).
pub(crate) fn clients_required() -> bool {
    std::env::var("TANDEM_REQUIRE_EDITOR_CLIENTS").is_ok_and(|value| value == "1")
}

/// Reports a missing client: panics in CI, otherwise says what to install and returns.
pub(crate) fn missing(what: &str, install: &str) {
    assert!(
        !clients_required(),
        "{what} is required (TANDEM_REQUIRE_EDITOR_CLIENTS=1) but missing: {install}"
    );
    eprintln!("skipping: {what} is not installed ({install})");
}

pub(crate) fn command_exists(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A cloud whose provider replies `EXPECTED_TEXT`, and the environment the client scripts
/// read (see `tests/clients/README.md`).
pub(crate) async fn start_cloud(
    reply: &str,
) -> (ProviderFixture, CloudServer, Vec<(String, String)>) {
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

pub(crate) async fn run(mut command: tokio::process::Command, what: &str) -> Output {
    command
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 60 s"))
        .unwrap_or_else(|error| panic!("could not start {what}: {error}"));
    output
}

pub(crate) fn assert_success(output: &Output, what: &str, cloud: &CloudServer) {
    assert!(
        output.status.success(),
        "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- tandem-cloud stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        cloud.stderr()
    );
}
