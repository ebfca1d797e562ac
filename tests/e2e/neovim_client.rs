//! Headless Neovim against the real `tandem` binary: Neovim's built-in LSP client on its
//! own (`tests/clients/neovim/test.lua`), and the plugin from `editors/nvim` driven by keys
//! typed into Neovim's input queue (`tests/clients/neovim/plugin_test.lua`).

use std::process::Output;

use tandem_e2e::{CloudServer, ProviderFixture};

use crate::editor_clients::{
    assert_success, clients_directory, command_exists, missing, run, start_cloud, EXPECTED_TEXT,
};

/// A block the provider answers for an empty line in a function body; the plugin shows it
/// as ghost text over several lines. Ends with a non-ASCII character like `EXPECTED_TEXT`.
const MULTI_LINE_TEXT: &str =
    "total = 0\n    for v in values:\n        total += v\n    return total  # ✓";

/// Runs `script` (under `tests/clients/neovim/`) in headless Neovim against a cloud whose
/// provider answers `reply`; `None` when Neovim is missing and the test may skip.
async fn run_neovim(script: &str, reply: &str) -> Option<(ProviderFixture, CloudServer, Output)> {
    if !command_exists("nvim") {
        missing("Neovim", "`apt-get install neovim`");
        return None;
    }
    let (provider, cloud, environment) = start_cloud(reply).await;
    let scratch = tempfile::tempdir().unwrap();
    let script = clients_directory().join("neovim").join(script);

    let mut command = tokio::process::Command::new("nvim");
    command
        .args(["--headless", "--clean", "-u", "NONE", "-c"])
        .arg(format!("luafile {}", script.display()))
        .envs(environment)
        // Keep Neovim's state and the server's credentials lookup out of the home directory.
        .env("TANDEM_CONFIG_DIR", scratch.path().join("config"))
        .env("XDG_STATE_HOME", scratch.path().join("state"))
        .env("XDG_CACHE_HOME", scratch.path().join("cache"))
        .env("XDG_DATA_HOME", scratch.path().join("data"))
        .env("XDG_CONFIG_HOME", scratch.path().join("config-home"));
    let output = run(command, "headless Neovim").await;
    // What the script logged, for `cargo test -- --nocapture`.
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    Some((provider, cloud, output))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neovim_client_gets_the_suggestion() {
    let Some((provider, cloud, output)) = run_neovim("test.lua", EXPECTED_TEXT).await else {
        return;
    };
    assert_success(&output, "headless Neovim", &cloud);
    assert!(provider.request_count() >= 1);
}

/// The plugin shows the suggestion as ghost text; accept-word, `<Tab>`, dismiss, the
/// `<Tab>` fallback, `:TandemToggle`, `:TandemStatus` and the statusline,
/// `:TandemExplain`, `:TandemSignIn` and `:TandemSignOut` work as typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neovim_plugin_accepts_ghost_text_and_runs_its_commands() {
    let Some((provider, cloud, output)) = run_neovim("plugin_test.lua", EXPECTED_TEXT).await else {
        return;
    };
    assert_success(&output, "headless Neovim with the plugin", &cloud);
    assert!(provider.request_count() >= 2);
}

/// A suggestion of several lines is shown with virtual lines and accepted whole, the
/// cursor ending after its last character.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neovim_plugin_accepts_a_multi_line_suggestion() {
    let Some((provider, cloud, output)) = run_neovim("plugin_test.lua", MULTI_LINE_TEXT).await
    else {
        return;
    };
    assert_success(&output, "headless Neovim with the plugin", &cloud);
    assert!(provider.request_count() >= 1);
}
