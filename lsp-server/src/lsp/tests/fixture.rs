//! A loopback stand-in for the Tandem cloud: answers `POST /v1/completions` with the
//! shared `CompletionResponse` JSON and records what it received, and `GET /v1/me` with
//! a pro-tier user (counted apart, so tests about completions see only completions).
//!
//! Minimal HTTP/1.1 on a raw `TcpListener` (keep-alive, `Content-Length` bodies only),
//! which is all reqwest sends it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the fixture answers.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// 200 with the last line of the received prefix as the completion, so each
    /// answer proves which document version the server used.
    EchoLastLine,
    /// 200 with this completion text.
    Text(&'static str),
    /// This status with a Tandem error body.
    Status(u16),
    /// Like `EchoLastLine`, after a pause.
    DelayedEcho(Duration),
    /// Like `Text`, after a pause.
    DelayedText(Duration, &'static str),
}

/// One request as received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) authorization: Option<String>,
    pub(crate) body: Value,
}

#[derive(Clone)]
pub(crate) struct CloudFixture {
    pub(crate) url: String,
    reply: Arc<Mutex<Reply>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// Requests whose connection the client dropped before the answer was sent.
    aborted: Arc<Mutex<usize>>,
    me_requests: Arc<Mutex<usize>>,
}

impl CloudFixture {
    pub(crate) async fn start(reply: Reply) -> CloudFixture {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fixture = CloudFixture {
            url: format!("http://{}", listener.local_addr().unwrap()),
            reply: Arc::new(Mutex::new(reply)),
            received: Arc::new(Mutex::new(Vec::new())),
            aborted: Arc::new(Mutex::new(0)),
            me_requests: Arc::new(Mutex::new(0)),
        };
        let serving = fixture.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serving.clone().serve_connection(socket));
            }
        });
        fixture
    }

    pub(crate) fn set_reply(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// How many `GET /v1/me` requests arrived.
    pub(crate) fn me_requests(&self) -> usize {
        *self.me_requests.lock().unwrap()
    }

    /// How many requests were abandoned by the client mid-answer (connection closed).
    pub(crate) fn aborted(&self) -> usize {
        *self.aborted.lock().unwrap()
    }

    /// Waits until `count` requests arrived; panics after five seconds.
    pub(crate) async fn wait_for_requests(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.received().len() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fixture saw {} requests, expected {count}",
                self.received().len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until `count` requests were aborted; panics after five seconds.
    pub(crate) async fn wait_for_aborted(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.aborted() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fixture saw {} aborted requests, expected {count}",
                self.aborted()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sleeps `delay`, or returns false early when the client closes the connection.
    async fn pause(&self, socket: &mut BufReader<TcpStream>, delay: Duration) -> bool {
        let mut probe = [0u8; 1];
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            _ = socket.read(&mut probe) => {
                *self.aborted.lock().unwrap() += 1;
                false
            }
        }
    }

    async fn serve_connection(self, socket: TcpStream) {
        let mut socket = BufReader::new(socket);
        loop {
            let mut content_length = 0usize;
            let mut authorization = None;
            let mut request_line = String::new();
            if socket.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                return;
            }
            loop {
                let mut header = String::new();
                if socket.read_line(&mut header).await.unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    match name.trim().to_ascii_lowercase().as_str() {
                        "content-length" => content_length = value.trim().parse().unwrap_or(0),
                        "authorization" => authorization = Some(value.trim().to_owned()),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0u8; content_length];
            if socket.read_exact(&mut body).await.is_err() {
                return;
            }
            if request_line.starts_with("GET /v1/me ") {
                *self.me_requests.lock().unwrap() += 1;
                let me = json!({
                    "user": {"id": "u1", "email": "dev@localhost"},
                    "tier": "pro",
                    "max_context_tokens": 16_000,
                });
                if !write_json(&mut socket, 200, &me).await {
                    return;
                }
                continue;
            }
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            self.received.lock().unwrap().push(Received {
                authorization,
                body: body.clone(),
            });
            let reply = self.reply.lock().unwrap().clone();
            let last_line = || {
                let prefix = body["prefix"].as_str().unwrap_or_default();
                prefix.rsplit('\n').next().unwrap_or_default().to_owned()
            };
            let (status, json) = match reply {
                Reply::EchoLastLine => (200, completion(&last_line())),
                Reply::Text(text) => (200, completion(text)),
                Reply::DelayedEcho(delay) => {
                    if !self.pause(&mut socket, delay).await {
                        return;
                    }
                    (200, completion(&last_line()))
                }
                Reply::DelayedText(delay, text) => {
                    if !self.pause(&mut socket, delay).await {
                        return;
                    }
                    (200, completion(text))
                }
                Reply::Status(status) => (
                    status,
                    json!({"error": {"code": "fixture", "message": format!("fixture status {status}")}}),
                ),
            };
            if !write_json(&mut socket, status, &json).await {
                return;
            }
        }
    }
}

/// Writes one JSON response; false when the client has gone.
async fn write_json(socket: &mut BufReader<TcpStream>, status: u16, json: &Value) -> bool {
    let json = json.to_string();
    let response = format!(
        "HTTP/1.1 {status} Fixture\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
        json.len()
    );
    socket
        .get_mut()
        .write_all(response.as_bytes())
        .await
        .is_ok()
}

fn completion(text: &str) -> Value {
    json!({
        "id": "cmpl-fixture",
        "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
        "provider": "fixture",
        "model": "echo",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    })
}
