//! `TestServer`: drives the real service over LSP framing on an in-memory pipe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tower_lsp::Server;

use crate::lsp::service::TandemService;
use crate::lsp::Environment;

const TIMEOUT: Duration = Duration::from_secs(20);

type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<Value>>>>;

pub(crate) struct TestServer {
    writer: tokio::sync::Mutex<Option<DuplexStream>>,
    pending: Pending,
    notifications: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    next_id: AtomicI64,
    server_task: JoinHandle<()>,
    reader_task: JoinHandle<()>,
    exit_code: Option<oneshot::Receiver<u8>>,
    pub(crate) initialize_result: Value,
}

impl TestServer {
    /// Starts a server with these initializationOptions and client capabilities, with
    /// no environment credentials and no credentials file, and initializes it.
    pub(crate) async fn start(initialization_options: Value, capabilities: Value) -> TestServer {
        let (service, socket, exit_code) = TandemService::new(Environment::default()).unwrap();
        // Two one-way pipes, like stdin and stdout, so closing ours ends the server's input.
        let (client_write, server_stdin) = tokio::io::duplex(1 << 20);
        let (server_stdout, client_read) = tokio::io::duplex(1 << 20);
        let server_task =
            tokio::spawn(Server::new(server_stdin, server_stdout, socket).serve(service));
        let pending: Pending = Arc::default();
        let (notification_sender, notifications) = mpsc::unbounded_channel();
        let reader_task = tokio::spawn(read_messages(
            BufReader::new(client_read),
            pending.clone(),
            notification_sender,
        ));
        let mut server = TestServer {
            writer: tokio::sync::Mutex::new(Some(client_write)),
            pending,
            notifications: tokio::sync::Mutex::new(notifications),
            next_id: AtomicI64::new(1),
            server_task,
            reader_task,
            exit_code: Some(exit_code),
            initialize_result: Value::Null,
        };
        let response = server
            .request(
                "initialize",
                json!({
                    "processId": null,
                    "rootUri": "file:///ws",
                    "capabilities": capabilities,
                    "initializationOptions": initialization_options,
                }),
            )
            .await;
        server.initialize_result = response["result"].clone();
        assert!(
            server.initialize_result.is_object(),
            "initialize failed: {response}"
        );
        server.notify("initialized", json!({})).await;
        server
    }

    /// A server talking to `cloud_url` with a valid-looking key, UTF-16 positions.
    pub(crate) async fn with_cloud(cloud_url: &str) -> TestServer {
        TestServer::start(
            json!({"server": cloud_url, "apiKey": "tdm_test_key_0123456789"}),
            json!({}),
        )
        .await
    }

    async fn write(&self, message: Value) {
        let body = message.to_string();
        let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        let mut writer = self.writer.lock().await;
        let writer = writer.as_mut().expect("the pipe is closed after shutdown");
        writer.write_all(frame.as_bytes()).await.unwrap();
        writer.flush().await.unwrap();
    }

    /// Sends a request and returns a receiver for its response, without waiting.
    pub(crate) async fn send_request(
        &self,
        method: &str,
        params: Value,
    ) -> (i64, oneshot::Receiver<Value>) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (sender, receiver) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, sender);
        self.write(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        (id, receiver)
    }

    /// Sends a request and waits for the whole response message.
    pub(crate) async fn request(&self, method: &str, params: Value) -> Value {
        let (_, receiver) = self.send_request(method, params).await;
        wait(receiver).await
    }

    pub(crate) async fn notify(&self, method: &str, params: Value) {
        self.write(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    pub(crate) async fn open(&self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "rust", "version": 1, "text": text}}),
        )
        .await;
    }

    /// The next notification with this method, skipping others; `None` after `within`.
    pub(crate) async fn next_notification(&self, method: &str, within: Duration) -> Option<Value> {
        let mut notifications = self.notifications.lock().await;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, notifications.recv()).await {
                Ok(Some(message)) if message["method"] == method => return Some(message),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// `shutdown`, `exit`, and checks that the server stops with exit code 0.
    pub(crate) async fn shutdown(mut self) {
        // `params: null` on purpose: tower-lsp alone rejects it with InvalidParams;
        // `TandemService` strips it, and every test exercises that.
        let response = self.request("shutdown", Value::Null).await;
        assert_eq!(
            response["result"],
            Value::Null,
            "shutdown failed: {response}"
        );
        assert!(
            response.get("error").is_none(),
            "shutdown failed: {response}"
        );
        self.notify("exit", Value::Null).await;
        let exit_code = tokio::time::timeout(TIMEOUT, self.exit_code.take().unwrap())
            .await
            .expect("no exit within the timeout")
            .expect("exit code sender dropped");
        assert_eq!(exit_code, 0);
        // Closing the pipe ends the server's read loop, as an editor closing stdin does.
        drop(self.writer.lock().await.take());
        tokio::time::timeout(TIMEOUT, &mut self.server_task)
            .await
            .expect("server did not stop after exit")
            .expect("server task panicked");
        self.reader_task.abort();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that failed before `shutdown` must not leave the server running.
        self.server_task.abort();
        self.reader_task.abort();
    }
}

pub(crate) async fn wait(receiver: oneshot::Receiver<Value>) -> Value {
    tokio::time::timeout(TIMEOUT, receiver)
        .await
        .expect("no response within the timeout")
        .expect("response channel closed")
}

async fn read_messages(
    mut reader: BufReader<DuplexStream>,
    pending: Pending,
    notifications: mpsc::UnboundedSender<Value>,
) {
    loop {
        let mut content_length = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some(value) = header.strip_prefix("Content-Length:") {
                content_length = value.trim().parse::<usize>().ok();
            }
        }
        let mut body = vec![0u8; content_length.expect("frame without Content-Length")];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let message: Value = serde_json::from_slice(&body).expect("server sent invalid JSON");
        let is_response = message.get("method").is_none();
        if is_response {
            let id = message["id"].as_i64().expect("response with a numeric id");
            if let Some(sender) = pending.lock().unwrap().remove(&id) {
                let _ = sender.send(message);
            }
        } else {
            let _ = notifications.send(message);
        }
    }
}
