//! Neovim's built-in LSP client, headless, against the real `tandem` binary:
//! `tests/clients/neovim/`.

use crate::editor_clients::{
    assert_success, clients_directory, command_exists, missing, run, start_cloud, EXPECTED_TEXT,
};

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
