//! A minimal LSP client that drives a real `tandem lsp` process over stdio.
//!
//! Messages use the base protocol's `Content-Length` framing. A reader task routes
//! responses to their requests by id, records notifications (`window/showMessage`,
//! `window/logMessage`, ...) and answers every server-to-client request with a `null`
//! result, as a permissive editor would. Requests can be sent without awaiting their
//! answers ([`LspClient::start_request`]), so tests can pipeline edits and requests
//! exactly as a fast typist's editor does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tandem_shared::inline_completion::{Position, Range};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{oneshot, Notify};

use crate::binaries;
use crate::document::Encoding;
use crate::loopback::lock;

/// JSON-RPC `RequestCancelled`.
pub const REQUEST_CANCELLED: i64 = -32800;
/// LSP `ContentModified`: the document changed before the request finished.
pub const CONTENT_MODIFIED: i64 = -32801;

/// Why a request produced no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RpcError {
    /// The server answered with a JSON-RPC error object.
    #[error("server error {code}: {message}")]
    Response {
        code: i64,
        message: String,
        data: Option<Value>,
    },
    /// No answer arrived in time.
    #[error("`{method}` got no response within {after:?}")]
    Timeout { method: String, after: Duration },
    /// The server's stdout closed before the answer arrived.
    #[error("the server exited before answering `{method}`")]
    Disconnected { method: String },
    /// Writing the request to the server's stdin failed.
    #[error("cannot send `{method}`: {reason}")]
    Send { method: String, reason: String },
}

impl RpcError {
    /// The JSON-RPC error code, for server errors.
    pub fn code(&self) -> Option<i64> {
        match self {
            RpcError::Response { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's error message, for server errors.
    pub fn message(&self) -> Option<&str> {
        match self {
            RpcError::Response { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct LspOptions {
    /// Arguments after the binary: `["lsp"]` by default, or `["--stdio"]`.
    pub args: Vec<String>,
    /// Extra environment. `TANDEM_SERVER`, `TANDEM_API_KEY` and `TANDEM_CONFIG_DIR` of the
    /// test process are never inherited.
    pub env: Vec<(String, String)>,
    /// How long each request may take before the test fails.
    pub request_timeout: Duration,
    /// `TANDEM_CONFIG_DIR` (where `credentials.json` lives); a fresh empty temporary
    /// directory when `None`.
    pub config_directory: Option<PathBuf>,
}

impl Default for LspOptions {
    fn default() -> Self {
        LspOptions {
            args: vec!["lsp".to_owned()],
            env: vec![("TANDEM_LOG".to_owned(), "debug".to_owned())],
            request_timeout: Duration::from_secs(8),
            config_directory: None,
        }
    }
}

/// A notification the server sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub method: String,
    pub params: Value,
}

type ResponseSender = oneshot::Sender<Result<Value, RpcError>>;

struct Connection {
    writer: tokio::sync::Mutex<ChildStdin>,
    pending: Mutex<HashMap<i64, (String, ResponseSender)>>,
    notifications: Mutex<Vec<Notification>>,
    notification_arrived: Notify,
    server_requests: Mutex<Vec<Notification>>,
    stderr: Mutex<String>,
    /// Set once the server's stdout closed; later requests fail at once.
    closed: Mutex<bool>,
}

impl Connection {
    async fn write(&self, message: &Value) -> std::io::Result<()> {
        let body = message.to_string();
        let mut writer = self.writer.lock().await;
        writer
            .write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes())
            .await?;
        writer.write_all(body.as_bytes()).await?;
        writer.flush().await
    }
}

/// A running `tandem lsp` and the client side of its connection.
pub struct LspClient {
    // Field order matters: the child dies before its directories are removed.
    child: Child,
    connection: Arc<Connection>,
    next_id: AtomicI64,
    request_timeout: Duration,
    encoding: Mutex<Encoding>,
    workspace: TempDir,
    config_directory: ConfigDirectory,
}

enum ConfigDirectory {
    Temporary(TempDir),
    Given(PathBuf),
}

impl ConfigDirectory {
    fn path(&self) -> &Path {
        match self {
            ConfigDirectory::Temporary(directory) => directory.path(),
            ConfigDirectory::Given(path) => path,
        }
    }
}

/// A request that was written to the server and whose answer can be awaited later.
pub struct PendingRequest {
    id: i64,
    method: String,
    receiver: oneshot::Receiver<Result<Value, RpcError>>,
    timeout: Duration,
}

impl PendingRequest {
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Waits for the answer (bounded by the client's request timeout).
    pub async fn response(self) -> Result<Value, RpcError> {
        match tokio::time::timeout(self.timeout, self.receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RpcError::Disconnected {
                method: self.method,
            }),
            Err(_) => Err(RpcError::Timeout {
                method: self.method,
                after: self.timeout,
            }),
        }
    }
}

impl LspClient {
    /// Starts the server with an empty credentials directory (`TANDEM_CONFIG_DIR`) and an
    /// empty workspace directory; nothing of the developer's own setup is read.
    pub async fn spawn(options: LspOptions) -> anyhow::Result<Self> {
        let binary = binaries::tandem()?;
        let config_directory = match &options.config_directory {
            Some(path) => ConfigDirectory::Given(path.clone()),
            None => ConfigDirectory::Temporary(
                tempfile::Builder::new()
                    .prefix("tandem-e2e-config-")
                    .tempdir()
                    .context("cannot create the credentials directory")?,
            ),
        };
        let workspace = tempfile::Builder::new()
            .prefix("tandem-e2e-workspace-")
            .tempdir()
            .context("cannot create the workspace directory")?;
        let mut command = Command::new(&binary);
        command
            .args(&options.args)
            .env_remove("TANDEM_SERVER")
            .env_remove("TANDEM_API_KEY")
            .env("TANDEM_CONFIG_DIR", config_directory.path())
            .env("XDG_CONFIG_HOME", config_directory.path())
            .env("HOME", config_directory.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in &options.env {
            command.env(name, value);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start `{}`", binary.display()))?;
        let stdin = child.stdin.take().context("no stdin pipe")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let connection = Arc::new(Connection {
            writer: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(HashMap::new()),
            notifications: Mutex::new(Vec::new()),
            notification_arrived: Notify::new(),
            server_requests: Mutex::new(Vec::new()),
            stderr: Mutex::new(String::new()),
            closed: Mutex::new(false),
        });
        tokio::spawn(read_messages(stdout, connection.clone()));
        tokio::spawn(collect_stderr(stderr, connection.clone()));
        Ok(LspClient {
            child,
            connection,
            next_id: AtomicI64::new(1),
            request_timeout: options.request_timeout,
            encoding: Mutex::new(Encoding::Utf16),
            workspace,
            config_directory,
        })
    }

    /// Root of the (empty, temporary) workspace announced in `initialize`.
    pub fn workspace_root(&self) -> &Path {
        self.workspace.path()
    }

    /// `file://` URI of the workspace root.
    pub fn root_uri(&self) -> String {
        file_uri(self.workspace.path())
    }

    /// `file://` URI of a file in the workspace, from its `/`-separated relative path.
    pub fn uri(&self, relative_path: &str) -> String {
        let mut path = PathBuf::from(self.workspace.path());
        path.extend(relative_path.split('/'));
        file_uri(&path)
    }

    /// The directory given to the server as `TANDEM_CONFIG_DIR`.
    pub fn config_directory(&self) -> &Path {
        self.config_directory.path()
    }

    /// The position encoding the server chose in `initialize` (UTF-16 until then).
    pub fn encoding(&self) -> Encoding {
        *lock(&self.encoding)
    }

    /// Process id of the server, while it runs (to read its memory use).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Writes a request and returns at once; await [`PendingRequest::response`] later.
    pub async fn start_request(
        &self,
        method: &str,
        params: Value,
    ) -> Result<PendingRequest, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        {
            // Checked under the pending lock, so the reader cannot close the connection
            // between the check and the insertion and leave this request hanging.
            let mut pending = lock(&self.connection.pending);
            if *lock(&self.connection.closed) {
                return Err(RpcError::Disconnected {
                    method: method.to_owned(),
                });
            }
            pending.insert(id, (method.to_owned(), sender));
        }
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        if let Err(error) = self.connection.write(&message).await {
            lock(&self.connection.pending).remove(&id);
            return Err(RpcError::Send {
                method: method.to_owned(),
                reason: error.to_string(),
            });
        }
        Ok(PendingRequest {
            id,
            method: method.to_owned(),
            receiver,
            timeout: self.request_timeout,
        })
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        self.start_request(method, params).await?.response().await
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Value) -> anyhow::Result<()> {
        let message = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.connection
            .write(&message)
            .await
            .with_context(|| format!("cannot send `{method}`"))
    }

    /// `initialize` (with the workspace as root) followed by `initialized`. Offers UTF-8
    /// positions in addition to UTF-16 when `offer_utf8`; records the server's choice.
    pub async fn initialize(
        &self,
        initialization_options: Value,
        offer_utf8: bool,
    ) -> anyhow::Result<Value> {
        self.initialize_with(initialization_options, offer_utf8, json!({}))
            .await
    }

    /// [`LspClient::initialize`] announcing `capabilities` on top of the default ones
    /// (objects are merged key by key).
    pub async fn initialize_with(
        &self,
        initialization_options: Value,
        offer_utf8: bool,
        capabilities: Value,
    ) -> anyhow::Result<Value> {
        let encodings = if offer_utf8 {
            json!(["utf-8", "utf-16"])
        } else {
            json!(["utf-16"])
        };
        let root_uri = self.root_uri();
        let mut params = json!({
            "processId": std::process::id(),
            "clientInfo": {"name": "tandem-e2e", "version": "0"},
            "rootUri": root_uri,
            "rootPath": self.workspace.path(),
            "workspaceFolders": [{"uri": root_uri, "name": "workspace"}],
            "initializationOptions": initialization_options,
            "capabilities": {
                "general": {"positionEncodings": encodings},
                "window": {"showMessage": {}, "workDoneProgress": false},
                "workspace": {"workspaceFolders": true, "configuration": false},
                "textDocument": {
                    "synchronization": {"dynamicRegistration": false},
                    "completion": {"completionItem": {"snippetSupport": false}},
                    "inlineCompletion": {"dynamicRegistration": false},
                },
            },
        });
        if let Some(announced) = params.get_mut("capabilities") {
            merge_deep(announced, capabilities);
        }
        self.initialize_with_params(params).await
    }

    /// `initialize` with `params` exactly as given (an editor's own `InitializeParams`),
    /// followed by `initialized`; records the position encoding the server chose.
    pub async fn initialize_with_params(&self, params: Value) -> anyhow::Result<Value> {
        let result = self
            .request("initialize", params)
            .await
            .map_err(|error| anyhow::anyhow!("{error}\nserver stderr:\n{}", self.stderr()))?;
        let encoding = match result
            .pointer("/capabilities/positionEncoding")
            .and_then(Value::as_str)
        {
            Some("utf-8") => Encoding::Utf8,
            // Absent means UTF-16 (LSP 3.17, `positionEncoding`).
            Some("utf-16") | None => Encoding::Utf16,
            Some(other) => bail!("the server chose an encoding it was not offered: {other}"),
        };
        *lock(&self.encoding) = encoding;
        self.notify("initialized", json!({})).await?;
        Ok(result)
    }

    pub async fn did_open(
        &self,
        uri: &str,
        language_id: &str,
        version: i32,
        text: &str,
    ) -> anyhow::Result<()> {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {
                "uri": uri, "languageId": language_id, "version": version, "text": text,
            }}),
        )
        .await
    }

    /// One incremental change: `range` (in the negotiated encoding) becomes `text`.
    pub async fn did_change_incremental(
        &self,
        uri: &str,
        version: i32,
        range: Range,
        text: &str,
    ) -> anyhow::Result<()> {
        self.notify(
            "textDocument/didChange",
            json!({
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": range, "text": text}],
            }),
        )
        .await
    }

    pub async fn did_close(&self, uri: &str) -> anyhow::Result<()> {
        self.notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": uri}}),
        )
        .await
    }

    /// Parameters of `textDocument/inlineCompletion`, explicitly invoked.
    pub fn inline_completion_params(uri: &str, position: Position) -> Value {
        json!({
            "textDocument": {"uri": uri},
            "position": position,
            "context": {"triggerKind": 1},
        })
    }

    pub async fn inline_completion(
        &self,
        uri: &str,
        position: Position,
    ) -> Result<Value, RpcError> {
        self.request(
            "textDocument/inlineCompletion",
            Self::inline_completion_params(uri, position),
        )
        .await
    }

    pub async fn completion(&self, uri: &str, position: Position) -> Result<Value, RpcError> {
        self.request(
            "textDocument/completion",
            json!({
                "textDocument": {"uri": uri},
                "position": position,
                "context": {"triggerKind": 1},
            }),
        )
        .await
    }

    /// Notifications received so far with this method, oldest first (their params).
    pub fn notifications(&self, method: &str) -> Vec<Value> {
        lock(&self.connection.notifications)
            .iter()
            .filter(|notification| notification.method == method)
            .map(|notification| notification.params.clone())
            .collect()
    }

    /// Every notification received so far.
    pub fn all_notifications(&self) -> Vec<Notification> {
        lock(&self.connection.notifications).clone()
    }

    /// Server-to-client requests received so far (each was answered with `null`).
    pub fn server_requests(&self) -> Vec<Notification> {
        lock(&self.connection.server_requests).clone()
    }

    /// Waits until at least `count` notifications with this method arrived.
    pub async fn wait_for_notifications(
        &self,
        method: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.connection.notification_arrived.notified();
            let found = self.notifications(method);
            if found.len() >= count {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                bail!(
                    "{} `{method}` notification(s) within {timeout:?}, expected {count}; all: {:#?}",
                    found.len(),
                    self.all_notifications()
                );
            }
        }
    }

    /// Everything the server wrote to stderr so far (its logs), for failure messages.
    pub fn stderr(&self) -> String {
        lock(&self.connection.stderr).clone()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `shutdown` then `exit`; fails unless the server answers `null` and exits with 0.
    pub async fn shutdown_and_exit(mut self) -> anyhow::Result<()> {
        let result = self
            .request("shutdown", Value::Null)
            .await
            .map_err(|error| anyhow::anyhow!("{error}\nserver stderr:\n{}", self.stderr()))?;
        if !result.is_null() {
            bail!("`shutdown` answered {result}, expected null");
        }
        self.notify("exit", Value::Null).await?;
        let status = self.wait_for_exit(Duration::from_secs(5)).await?;
        if !status.success() {
            bail!(
                "the server exited with {status} after shutdown/exit\nstderr:\n{}",
                self.stderr()
            );
        }
        Ok(())
    }

    /// Waits for the process to end by itself.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => bail!(
                "the server did not exit within {timeout:?}\nstderr:\n{}",
                self.stderr()
            ),
        }
    }
}

impl Drop for LspClient {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `file:///…` for an absolute path; percent-encodes what a URI path may not contain.
pub fn file_uri(path: &Path) -> String {
    let mut uri = String::from("file://");
    let text = path.to_string_lossy();
    if !text.starts_with('/') {
        uri.push('/');
    }
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                uri.push(byte as char)
            }
            b'\\' => uri.push('/'),
            _ => uri.push_str(&format!("%{byte:02X}")),
        }
    }
    uri
}

/// Reads one framed message; `None` at end of stream.
async fn read_message(reader: &mut BufReader<ChildStdout>) -> anyhow::Result<Option<Value>> {
    let mut content_length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("malformed header line {line:?} on the server's stdout"))?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .with_context(|| format!("bad Content-Length {value:?}"))?,
            );
        }
    }
    let length = content_length.context("a message without Content-Length")?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    let value = serde_json::from_slice(&body).with_context(|| {
        format!(
            "the server wrote a body that is not JSON: {:?}",
            String::from_utf8_lossy(&body)
        )
    })?;
    Ok(Some(value))
}

async fn read_messages(stdout: ChildStdout, connection: Arc<Connection>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let message = match read_message(&mut reader).await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(error) => {
                // A protocol violation on stdout (say, a stray print) ends the session;
                // the reason goes where failing tests show it.
                lock(&connection.stderr).push_str(&format!("[tandem-e2e] {error:#}\n"));
                break;
            }
        };
        route(&connection, message).await;
    }
    let pending: Vec<(String, ResponseSender)> = {
        let mut pending = lock(&connection.pending);
        *lock(&connection.closed) = true;
        pending.drain().map(|(_, entry)| entry).collect()
    };
    for (method, sender) in pending {
        let _ = sender.send(Err(RpcError::Disconnected { method }));
    }
}

async fn route(connection: &Connection, message: Value) {
    let method = message.get("method").and_then(Value::as_str);
    let id = message.get("id").filter(|id| !id.is_null());
    match (method, id) {
        (Some(method), Some(id)) => {
            lock(&connection.server_requests).push(Notification {
                method: method.to_owned(),
                params: message.get("params").cloned().unwrap_or(Value::Null),
            });
            // What an editor answers when it did what was asked.
            let result = match method {
                "workspace/applyEdit" => json!({"applied": true}),
                "window/showDocument" => json!({"success": true}),
                _ => Value::Null,
            };
            let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
            let _ = connection.write(&answer).await;
        }
        (Some(method), None) => {
            lock(&connection.notifications).push(Notification {
                method: method.to_owned(),
                params: message.get("params").cloned().unwrap_or(Value::Null),
            });
            connection.notification_arrived.notify_waiters();
        }
        (None, Some(id)) => {
            let Some(id) = id.as_i64() else {
                return;
            };
            let Some((_, sender)) = lock(&connection.pending).remove(&id) else {
                lock(&connection.stderr).push_str(&format!(
                    "[tandem-e2e] response to unknown id {id}: {message}\n"
                ));
                return;
            };
            let result = match message.get("error") {
                Some(error) => Err(RpcError::Response {
                    code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    data: error.get("data").cloned(),
                }),
                None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
            };
            let _ = sender.send(result);
        }
        (None, None) => {
            lock(&connection.stderr)
                .push_str(&format!("[tandem-e2e] unroutable message: {message}\n"));
        }
    }
}

/// Merges `extra` into `target`: objects key by key, anything else replaced.
fn merge_deep(target: &mut Value, extra: Value) {
    match (target, extra) {
        (Value::Object(target), Value::Object(extra)) => {
            for (key, value) in extra {
                match target.get_mut(&key) {
                    Some(existing) => merge_deep(existing, value),
                    None => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (target, extra) => *target = extra,
    }
}

async fn collect_stderr(stderr: tokio::process::ChildStderr, connection: Arc<Connection>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut sink = lock(&connection.stderr);
        sink.push_str(&line);
        sink.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_escape_what_they_must() {
        assert_eq!(
            file_uri(Path::new("/tmp/a b/c#d.rs")),
            "file:///tmp/a%20b/c%23d.rs"
        );
    }
}
