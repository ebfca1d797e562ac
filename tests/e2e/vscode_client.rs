//! VS Code against the real `tandem` binary, through Microsoft's packages under Node
//! (`tests/clients/vscode-jsonrpc/`): `vscode-jsonrpc`, the JSON-RPC layer of VS Code's
//! LSP client, on its own (`test.mjs`), and the requests of the extension in
//! `editors/vscode`, built by its own core module and sent with
//! `vscode-languageserver-protocol` (`extension.test.mjs`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

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

/// What the provider answers an explanation with: long enough that its stream (four
/// characters a piece, see `ProviderFixture::set_chunk_delay`) is still running when the
/// test cancels the second explanation after its first piece. Ends with a non-ASCII
/// character so a client that mangles UTF-8 fails visibly.
const EXPLANATION: &str = "`mean` adds the numbers in `values` with the built-in `sum` and \
divides the total by how many there are (`len`).\n\n- An empty list raises \
`ZeroDivisionError`, because `len(values)` is 0.\n- The result is a `float`, even for a list \
of integers, since `/` is true division in Python 3.\n\nTo accept empty input, check \
`if not values:` first and return whatever fits the caller, such as `0.0` or `None`. ✓";

/// Pause between the pieces of every streamed answer: about a second for
/// [`EXPLANATION`], a few hundredths for [`EXPECTED_TEXT`].
const CHUNK_DELAY: Duration = Duration::from_millis(10);

/// How long the whole extension test may take: the device flow polls every 5 s.
const EXTENSION_TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn extension_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../editors/vscode")
}

/// Bundles the extension's `src/core` into `directory` (with the extension's own esbuild
/// setup), so the test runs the core as it is in the tree, not a build left from before.
async fn build_extension_core(directory: &Path) -> PathBuf {
    let core = directory.join("core.mjs");
    let mut command = tokio::process::Command::new("node");
    command
        .arg("esbuild.mjs")
        .arg("--core-only")
        .arg(format!("--core-out={}", core.display()))
        .current_dir(extension_directory());
    let output = run(command, "the extension's core build").await;
    assert!(
        output.status.success() && core.is_file(),
        "`node esbuild.mjs --core-only` failed in editors/vscode ({})\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    core
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vscode_extension_signs_in_suggests_explains_and_signs_out() {
    let client_directory = clients_directory().join("vscode-jsonrpc");
    if !command_exists("node")
        || !client_directory
            .join("node_modules/vscode-languageserver-protocol")
            .is_dir()
        || !extension_directory().join("node_modules/esbuild").is_dir()
    {
        return missing(
            "the VS Code extension's test",
            "install Node.js, then `npm ci --prefix tests/clients/vscode-jsonrpc` and `npm ci --prefix editors/vscode`",
        );
    }
    let scratch = tempfile::tempdir().unwrap();
    let core = build_extension_core(scratch.path()).await;
    let (provider, cloud, environment) = start_cloud(EXPECTED_TEXT).await;
    // Chat requests (the explanation) get the explanation; completions the suggestion.
    provider.reply_with(|request| {
        if request.turns().is_empty() {
            EXPECTED_TEXT.to_owned()
        } else {
            EXPLANATION.to_owned()
        }
    });
    provider.set_chunk_delay(CHUNK_DELAY);

    let mut command = tokio::process::Command::new("node");
    command
        .arg("extension.test.mjs")
        .current_dir(&client_directory)
        // The key stays out: the extension's user starts signed out and signs in.
        .envs(
            environment
                .into_iter()
                .filter(|(name, _)| name != "TANDEM_API_KEY"),
        )
        .env("TANDEM_CONFIG_DIR", scratch.path().join("config"))
        .env("TANDEM_VSCODE_CORE", &core)
        .env("EXPECTED_EXPLANATION", EXPLANATION)
        .env("EXPECTED_EMAIL", tandem_e2e::TEST_USER_EMAIL)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("start node extension.test.mjs");
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    // The test prints `SIGN_IN_CODE <code>` when the server waits for the code; approving
    // it with `tandem-cloud device approve` is what the user's click in the browser does.
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stdout = String::new();
    let mut approved = None;
    let finished = tokio::time::timeout(EXTENSION_TEST_TIMEOUT, async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(code) = line.trim().strip_prefix("SIGN_IN_CODE ") {
                let answer = cloud
                    .run_command(&[
                        "device",
                        "approve",
                        "--code",
                        code,
                        "--email",
                        tandem_e2e::TEST_USER_EMAIL,
                    ])
                    .await
                    .expect("device approve");
                approved = Some(answer);
            }
            stdout.push_str(&line);
            stdout.push('\n');
        }
        child.wait().await.expect("node exit status")
    })
    .await;
    let stderr = stderr_task.await.unwrap_or_default();
    let status = finished.unwrap_or_else(|_| {
        panic!(
            "extension.test.mjs did not finish within {EXTENSION_TEST_TIMEOUT:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- tandem-cloud stderr ---\n{}",
            cloud.stderr()
        )
    });
    assert!(
        status.success(),
        "extension.test.mjs failed ({status})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- tandem-cloud stderr ---\n{}",
        cloud.stderr()
    );
    // The conversation, for `--nocapture` (docs/editors/vscode.md shows one).
    eprintln!("{stderr}");
    let approved = approved.expect("the test printed no SIGN_IN_CODE line");
    assert!(approved.starts_with("approved login code"), "{approved}");
    // Both kinds of answer came from the provider, through the cloud.
    let requests = provider.requests();
    assert!(
        requests.iter().any(|request| request.turns().is_empty()),
        "no completion reached the provider"
    );
    assert!(
        requests.iter().any(|request| !request.turns().is_empty()),
        "no explanation reached the provider"
    );
}
