//! Shared set-up for the end-to-end tests: provider fixture → cloud → proxy → language server.

use std::time::Duration;

use serde_json::{json, Value};
use tandem_e2e::{
    CloudOptions, CloudServer, Encoding, LspClient, LspOptions, ProviderConfig, ProviderFixture,
    RecordingProxy, TextModel,
};
use tandem_shared::inline_completion::{Position, Range};

/// Model name the cloud is configured with; the fixture must receive it verbatim. It
/// names no model family the cloud knows a fill-in-the-middle template for, so the
/// provider receives the prefix and suffix as they are (`template = "none"`).
pub const MODEL: &str = "e2e-code-model:1.5b";

/// Key of the OpenAI-compatible provider, sent by the cloud as a bearer token.
pub const PROVIDER_KEY: &str = "sk-e2e-provider-secret-0123456789";

/// Everything one test runs: each test gets its own processes, ports and directories.
pub struct Stack {
    pub lsp: LspClient,
    pub proxy: RecordingProxy,
    pub cloud: CloudServer,
    pub provider: Option<ProviderFixture>,
}

impl Stack {
    /// Fixture + cloud with `provider_config(fixture)` + proxy + initialized server.
    pub async fn start(
        provider_config: impl FnOnce(&ProviderFixture) -> ProviderConfig,
        offer_utf8: bool,
    ) -> Stack {
        let provider = ProviderFixture::start().await.expect("provider fixture");
        let options = CloudOptions::with_provider(provider_config(&provider));
        Stack::start_with(options, Some(provider), offer_utf8, json!({})).await
    }

    /// Cloud with `options` + proxy + a server initialized with the cloud's URL and key
    /// plus `extra_options`.
    pub async fn start_with(
        options: CloudOptions,
        provider: Option<ProviderFixture>,
        offer_utf8: bool,
        extra_options: Value,
    ) -> Stack {
        Stack::start_with_capabilities(options, provider, offer_utf8, extra_options, json!({}))
            .await
    }

    /// [`Stack::start_with`], the client announcing `capabilities` on top of the defaults.
    pub async fn start_with_capabilities(
        options: CloudOptions,
        provider: Option<ProviderFixture>,
        offer_utf8: bool,
        extra_options: Value,
        capabilities: Value,
    ) -> Stack {
        let cloud = CloudServer::start(options).await.expect("tandem-cloud");
        let proxy = RecordingProxy::start(cloud.url()).await.expect("proxy");
        let lsp = LspClient::spawn(LspOptions::default())
            .await
            .expect("tandem lsp");
        let mut initialization_options = json!({"server": proxy.url(), "apiKey": cloud.api_key()});
        merge(&mut initialization_options, extra_options);
        let stack = Stack {
            lsp,
            proxy,
            cloud,
            provider,
        };
        let result = stack
            .lsp
            .initialize_with(initialization_options, offer_utf8, capabilities)
            .await;
        if let Err(error) = result {
            panic!("initialize failed: {error:#}\n{}", stack.logs());
        }
        stack
    }

    pub fn provider(&self) -> &ProviderFixture {
        self.provider
            .as_ref()
            .expect("this stack has a provider fixture")
    }

    /// Both processes' logs, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- tandem stderr ---\n{}\n--- tandem-cloud stderr ---\n{}",
            self.lsp.stderr(),
            self.cloud.stderr()
        )
    }

    /// Shuts the language server down and checks it exits with 0, and that neither
    /// process ever logged a secret (the Tandem key or the provider key).
    pub async fn shutdown(self) {
        let logs = self.logs();
        let tandem_key = self.cloud.api_key().to_owned();
        let lsp_stderr = self.lsp.stderr();
        if let Err(error) = self.lsp.shutdown_and_exit().await {
            panic!("clean shutdown failed: {error:#}\n{logs}");
        }
        for secret in [tandem_key.as_str(), PROVIDER_KEY] {
            assert!(
                !lsp_stderr.contains(secret),
                "tandem logged a secret:\n{lsp_stderr}"
            );
            assert!(
                !self.cloud.stderr().contains(secret),
                "tandem-cloud logged a secret:\n{}",
                self.cloud.stderr()
            );
        }
    }
}

/// Adds the keys of `extra` (an object) to `target` (an object).
pub fn merge(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

pub fn empty_range_at(position: Position) -> Range {
    Range {
        start: position,
        end: position,
    }
}

/// `items[0].insertText` of an inline completion result, checking the result's shape.
pub fn inline_items(result: &Value) -> Vec<Value> {
    result
        .get("items")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("inline completion result has no `items` array: {result}"))
        .clone()
}

/// Items of a `textDocument/completion` result (a `CompletionList` or a bare array).
pub fn completion_items(result: &Value) -> Vec<Value> {
    let items = match result {
        Value::Array(items) => items,
        _ => result
            .get("items")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("completion result has no items: {result}")),
    };
    items.clone()
}

/// `(range, newText)` of a completion item's `textEdit`, plain or insert/replace.
pub fn text_edit(item: &Value) -> (Range, String) {
    let edit = item
        .get("textEdit")
        .unwrap_or_else(|| panic!("completion item without textEdit: {item}"));
    let range = edit
        .get("range")
        .or_else(|| edit.get("insert"))
        .unwrap_or_else(|| panic!("textEdit without a range: {edit}"));
    let range: Range = serde_json::from_value(range.clone()).expect("range shape");
    let new_text = edit
        .get("newText")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("textEdit without newText: {edit}"))
        .to_owned();
    (range, new_text)
}

/// Runs `future`, failing the test if it takes longer than `limit`; returns the elapsed time.
pub async fn within<T>(
    limit: Duration,
    what: &str,
    future: impl std::future::Future<Output = T>,
) -> (T, Duration) {
    let started = tokio::time::Instant::now();
    match tokio::time::timeout(limit, future).await {
        Ok(value) => (value, started.elapsed()),
        Err(_) => panic!("{what} took longer than {limit:?}"),
    }
}

/// An open document: edits go to the server and to a naive model of the same text.
pub struct Editor<'a> {
    pub lsp: &'a LspClient,
    pub uri: String,
    pub model: TextModel,
    pub version: i32,
    pub encoding: Encoding,
}

impl<'a> Editor<'a> {
    /// Opens `relative_path` (in the workspace) with `text`, version 1.
    pub async fn open(
        lsp: &'a LspClient,
        relative_path: &str,
        language_id: &str,
        text: &str,
    ) -> Editor<'a> {
        let uri = lsp.uri(relative_path);
        lsp.did_open(&uri, language_id, 1, text)
            .await
            .expect("didOpen");
        Editor {
            lsp,
            uri,
            model: TextModel::new(text),
            version: 1,
            encoding: lsp.encoding(),
        }
    }

    /// Sends one incremental change replacing `range` by `text`.
    pub async fn replace(&mut self, range: Range, text: &str) {
        self.version += 1;
        self.lsp
            .did_change_incremental(&self.uri, self.version, range, text)
            .await
            .expect("didChange");
        self.model.apply(range, text, self.encoding);
    }

    /// Replaces the first occurrence of `needle` by `text`.
    pub async fn replace_text(&mut self, needle: &str, text: &str) {
        let range = self.model.range_of(needle, self.encoding);
        self.replace(range, text).await;
    }

    /// Inserts `text` right after the first occurrence of `needle`.
    pub async fn insert_after(&mut self, needle: &str, text: &str) {
        let position = self.model.position_after(needle, self.encoding);
        self.replace(empty_range_at(position), text).await;
    }

    /// Inserts `text` at `position`.
    pub async fn insert_at(&mut self, position: Position, text: &str) {
        self.replace(empty_range_at(position), text).await;
    }

    pub fn position_after(&self, needle: &str) -> Position {
        self.model.position_after(needle, self.encoding)
    }

    pub fn end(&self) -> Position {
        self.model.end(self.encoding)
    }

    /// The text before and after `cursor`, as the model sees it.
    pub fn split_at(&self, cursor: Position) -> (String, String) {
        let (prefix, suffix) = self.model.split_at(cursor, self.encoding);
        (prefix.to_owned(), suffix.to_owned())
    }
}

/// Adds to `problems` what is wrong with an error answer: its status, or its body, which
/// must be the shared error shape with `expected_code`.
pub fn check_error_answer(
    problems: &mut Vec<String>,
    case: &str,
    status: u16,
    text: &str,
    expected_status: u16,
    expected_code: &str,
) {
    if status != expected_status {
        problems.push(format!(
            "{case}: status {status}, expected {expected_status}: {text}"
        ));
    }
    match serde_json::from_str::<tandem_shared::ErrorBody>(text) {
        Ok(body) if body.error.code == expected_code => {}
        Ok(body) => problems.push(format!(
            "{case}: code {}, expected {expected_code}",
            body.error.code
        )),
        Err(error) => problems.push(format!("{case}: not an error body ({error}): {text}")),
    }
}

/// `tandem <args>` with a private config directory (`credentials.json` there, never in
/// the OS keyring) and no credentials from the environment; output piped, killed on drop.
pub fn tandem_command(
    config_directory: &std::path::Path,
    args: &[&str],
) -> tokio::process::Command {
    let mut command =
        tokio::process::Command::new(tandem_e2e::binaries::tandem().expect("tandem binary"));
    command
        .args(args)
        .env_remove("TANDEM_SERVER")
        .env_remove("TANDEM_API_KEY")
        .env("TANDEM_CONFIG_DIR", config_directory)
        .env("TANDEM_CREDENTIAL_STORE", "file")
        .env("HOME", config_directory)
        .env("XDG_CONFIG_HOME", config_directory)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}
