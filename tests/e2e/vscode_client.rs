//! Microsoft's `vscode-jsonrpc` (the JSON-RPC layer of VS Code's LSP client) under Node,
//! against the real `tandem` binary: `tests/clients/vscode-jsonrpc/`.

use crate::editor_clients::{
    assert_success, clients_directory, command_exists, missing, run, start_cloud, EXPECTED_TEXT,
};

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
