//! HTTP hygiene: security headers, CORS, allowed hosts, header size, compression, request
//! ids (echoed and in every log line), trusted proxies, stream timeouts, and a graceful
//! shutdown of the real binary on SIGTERM.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{completion_body, fixture_provider, read_events, Reply, TestApp};
use serde_json::{json, Value};
use tandem_cloud::db::on;
use tandem_e2e::ProviderFixture;
use tower::ServiceExt as _;

const CSP_OF_JSON: &str = "default-src 'none'; frame-ancestors 'none'";

fn get(path: &str) -> axum::http::request::Builder {
    Request::get(path).header("host", "localhost:8787")
}

#[track_caller]
fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn json_answers_carry_the_security_headers() {
    let app = TestApp::new("").await;
    for request in [
        get("/health").body(Body::empty()).unwrap(),
        // Errors too, including the layers' own.
        get("/no/such/path").body(Body::empty()).unwrap(),
        get("/v1/me").body(Body::empty()).unwrap(),
    ] {
        let reply = app.send(request).await;
        assert_eq!(header(&reply, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&reply, "x-frame-options"), Some("DENY"));
        assert_eq!(header(&reply, "referrer-policy"), Some("no-referrer"));
        assert_eq!(header(&reply, "content-security-policy"), Some(CSP_OF_JSON));
        // Without an HTTPS public URL, HSTS would tell browsers nothing true.
        assert_eq!(header(&reply, "strict-transport-security"), None);
    }
}

#[tokio::test]
async fn pages_keep_their_own_policy() {
    let app = TestApp::new("").await;
    let reply = app
        .send(
            get("/device")
                .header("accept", "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(
        header(&reply, "content-type").is_some_and(|value| value.starts_with("text/html")),
        "{reply:?}"
    );
    let policy = header(&reply, "content-security-policy").unwrap();
    assert!(policy.contains("style-src 'self'"), "{policy}");
    assert_eq!(
        reply
            .headers
            .get_all("content-security-policy")
            .iter()
            .count(),
        1
    );
    assert_eq!(header(&reply, "x-frame-options"), Some("DENY"));
    assert_eq!(header(&reply, "cache-control"), Some("no-store"));
}

#[tokio::test]
async fn hsts_follows_an_https_public_url() {
    let app = TestApp::new("[auth]\npublic_url = \"https://tandem.example.com\"").await;
    let reply = app.send(get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(
        header(&reply, "strict-transport-security"),
        Some("max-age=31536000")
    );
    let app =
        TestApp::new("[auth]\npublic_url = \"https://tandem.example.com\"\n[http]\nhsts = false")
            .await;
    let reply = app.send(get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(header(&reply, "strict-transport-security"), None);
}

fn preflight(origin: &str) -> Request<Body> {
    Request::options("/v1/completions")
        .header("host", "localhost")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn cors_answers_only_listed_origins() {
    let app =
        TestApp::new("[http]\ncors_origins = [\"vscode-webview://abc\", \"https://app.example/\"]")
            .await;
    let reply = app.send(preflight("https://app.example")).await;
    assert!(reply.status.is_success(), "{reply:?}");
    assert_eq!(
        header(&reply, "access-control-allow-origin"),
        Some("https://app.example")
    );
    let methods = header(&reply, "access-control-allow-methods").unwrap();
    assert_eq!(methods, "GET,POST,PUT,DELETE");
    let headers = header(&reply, "access-control-allow-headers").unwrap();
    assert_eq!(headers, "authorization,content-type,x-request-id");
    let reply = app.send(preflight("vscode-webview://abc")).await;
    assert_eq!(
        header(&reply, "access-control-allow-origin"),
        Some("vscode-webview://abc")
    );

    let reply = app.send(preflight("https://evil.example")).await;
    assert_eq!(header(&reply, "access-control-allow-origin"), None);

    // A real request from a listed origin can read the answer and its request id.
    let reply = app
        .send(
            get("/health")
                .header("origin", "https://app.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        header(&reply, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(header(&reply, "access-control-expose-headers")
        .unwrap()
        .contains("x-request-id"));
}

#[tokio::test]
async fn no_cors_headers_by_default() {
    let app = TestApp::new("").await;
    let reply = app.send(preflight("https://app.example")).await;
    assert!(
        !reply
            .headers
            .keys()
            .any(|name| name.as_str().starts_with("access-control-")),
        "{reply:?}"
    );
}

#[tokio::test]
async fn hosts_not_listed_are_refused() {
    let app =
        TestApp::new("[http]\nallowed_hosts = [\"tandem.example.com\", \".corp.example\"]").await;
    let with_host = |host: &str, path: &str| {
        Request::get(path)
            .header("host", host)
            .body(Body::empty())
            .unwrap()
    };
    let reply = app.send(with_host("evil.example", "/v1/me")).await;
    let message = reply.assert_error(400, "malformed_body");
    assert_eq!(
        message,
        "host `evil.example` is not served here (http.allowed_hosts)"
    );
    // DNS rebinding: a name that resolves here, but is not ours.
    let reply = app.send(with_host("127.0.0.1:8787", "/v1/me")).await;
    reply.assert_error(400, "malformed_body");
    for host in [
        "tandem.example.com",
        "TANDEM.example.com:443",
        "corp.example",
        "eu.corp.example",
    ] {
        let reply = app.send(with_host(host, "/v1/me")).await;
        // Past the host check: refused for the missing key instead.
        reply.assert_error(401, "unauthorized");
    }
    // Probes ask by address.
    let reply = app.send(with_host("10.1.2.3:8787", "/health")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(header(&reply, "x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn oversized_headers_get_431_in_the_error_shape() {
    let app = TestApp::new("[http]\nmax_header_bytes = 4096").await;
    let reply = app
        .send(
            get("/health")
                .header("x-padding", "a".repeat(5000))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(
        reply.json["error"]["code"], "payload_too_large",
        "{reply:?}"
    );
    assert!(reply.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 4096"));
    assert_eq!(header(&reply, "content-type"), Some("application/json"));
    assert!(header(&reply, "x-request-id").is_some());
    let reply = app
        .send(
            get("/health")
                .header("x-padding", "a".repeat(3000))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// Creates keys until `GET /v1/keys` is a few KiB of JSON.
async fn app_with_many_keys(config: &str) -> TestApp {
    let app = TestApp::new(config).await;
    for index in 0..12 {
        let reply = app
            .post("/v1/keys", json!({"name": format!("key number {index}")}))
            .await;
        assert!(reply.status.is_success(), "{reply:?}");
    }
    app
}

fn list_keys(app: &TestApp, accept_encoding: Option<&str>) -> Request<Body> {
    let mut request = get("/v1/keys").header("authorization", format!("Bearer {}", app.key));
    if let Some(encoding) = accept_encoding {
        request = request.header("accept-encoding", encoding);
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn large_json_answers_are_gzipped_when_asked() {
    let app = app_with_many_keys("").await;
    let plain = app.send(list_keys(&app, None)).await;
    assert_eq!(plain.status, StatusCode::OK, "{plain:?}");
    assert!(plain.text.len() > 1024, "{}", plain.text.len());
    assert_eq!(header(&plain, "content-encoding"), None);

    let response = app
        .router
        .clone()
        .oneshot(list_keys(&app, Some("gzip")))
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(
        compressed.len() < plain.text.len() / 2,
        "{}",
        compressed.len()
    );
    assert_eq!(&compressed[..2], [0x1f, 0x8b], "gzip magic");

    let app = app_with_many_keys("[http]\ncompression = false").await;
    let reply = app.send(list_keys(&app, Some("gzip"))).await;
    assert_eq!(header(&reply, "content-encoding"), None);
}

fn stream_request(app: &TestApp) -> Request<Body> {
    let mut body = completion_body();
    body["stream"] = json!(true);
    Request::post("/v1/completions")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", app.key))
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip, br")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn event_streams_are_never_compressed() {
    let fixture = ProviderFixture::start().await.unwrap();
    // Long enough that size alone would call for compression.
    fixture.reply_with_text("let total = a + b; ".repeat(200));
    let app = TestApp::new(&fixture_provider("vendor", "ollama", &fixture, "")).await;
    let response = app
        .router
        .clone()
        .oneshot(stream_request(&app))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(!response.headers().contains_key("content-encoding"));
    let events = read_events(response).await;
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
}

#[tokio::test]
async fn streams_end_with_an_error_event_at_the_stream_timeout() {
    let fixture = ProviderFixture::start().await.unwrap();
    fixture.reply_with_text("word ".repeat(100));
    fixture.set_chunk_delay(Duration::from_millis(50));
    let config = format!(
        "{}\n[http]\nstream_timeout_ms = 400",
        fixture_provider("vendor", "ollama", &fixture, "")
    );
    let app = TestApp::new(&config).await;
    let started = std::time::Instant::now();
    let response = app
        .router
        .clone()
        .oneshot(stream_request(&app))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = read_events(response).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{events:?}");
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert_eq!(data["error"]["code"], "provider_timeout");
    assert!(events.iter().any(|(name, _)| name == "delta"), "{events:?}");
    // The relay saw the stream close: the provider is no longer read and the request is
    // recorded (as a client that went away).
    fixture
        .wait_for_abandoned_streams(1, Duration::from_secs(5))
        .await
        .unwrap();
    let recorded = async {
        loop {
            let statuses: Vec<i64> = on!(
                &app.state.db,
                sqlx::query_scalar("SELECT status FROM usage"),
                fetch_all
            )
            .unwrap();
            if !statuses.is_empty() {
                return statuses;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let statuses = tokio::time::timeout(Duration::from_secs(5), recorded)
        .await
        .unwrap();
    assert_eq!(statuses, [499]);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = TestApp::new("").await;
    let with_id = |id: &str| {
        get("/health")
            .header("x-request-id", id)
            .body(Body::empty())
    };
    let reply = app.send(with_id("lsp-1234_abc").unwrap()).await;
    assert_eq!(header(&reply, "x-request-id"), Some("lsp-1234_abc"));

    let reply = app.send(get("/health").body(Body::empty()).unwrap()).await;
    let made = header(&reply, "x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");

    // Too long, or not visible ASCII (it would go into every log line): replaced.
    for bad in [
        "a".repeat(65),
        "two words".to_owned(),
        "tab\there".to_owned(),
    ] {
        let reply = app.send(with_id(&bad).unwrap()).await;
        let made = header(&reply, "x-request-id").unwrap();
        assert!(uuid::Uuid::parse_str(made).is_ok(), "{bad:?} became {made}");
    }
    let longest = "b".repeat(64);
    let reply = app.send(with_id(&longest).unwrap()).await;
    assert_eq!(header(&reply, "x-request-id"), Some(longest.as_str()));

    // Error answers of the layers carry it too.
    let reply = app
        .send(
            get("/nowhere")
                .header("x-request-id", "req-404")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(header(&reply, "x-request-id"), Some("req-404"));
}

/// Log lines written while the test runs, whatever thread writes them.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON log lines one request writes under a subscriber of this thread only.
fn log_of_one_request() -> String {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_span_list(true)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let app = TestApp::new("").await;
            let reply = app
                .send(
                    get("/v1/me?secret_query=1")
                        .header("x-request-id", "trace-me-42")
                        .header("authorization", "Bearer tdm_not_a_real_key")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await;
            reply.assert_error(401, "unauthorized");
        });
    });
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    text
}

#[test]
fn every_log_line_of_a_request_carries_its_id_and_no_secret() {
    let is_of_request = |line: &Value| {
        line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|span| span["name"] == "request"))
    };
    // Tests of this binary running at the same time register the same call sites with no
    // subscriber of theirs, and tracing's interest cache can then miss this thread's
    // subscriber for a call site (the span, or a line). A new subscriber rebuilds the
    // cache, so a later attempt sees every line; the real binary, with one subscriber,
    // is checked in `sigterm_lets_the_request_in_flight_finish_and_records_it`.
    let mut text = String::new();
    for _ in 0..5 {
        text = log_of_one_request();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let complete = lines.iter().any(|line| {
            is_of_request(line) && line["fields"]["message"] == "finished processing request"
        });
        if complete {
            break;
        }
    }
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(lines.iter().any(is_of_request), "{text}");
    for line in lines
        .iter()
        .filter(|line| line.to_string().contains("/v1/me"))
    {
        assert!(is_of_request(line), "{line}");
    }
    for line in lines.iter().filter(|line| is_of_request(line)) {
        let request = line["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|span| span["name"] == "request")
            .unwrap();
        assert_eq!(request["request_id"], "trace-me-42", "{line}");
        // The route template, never the path or its query: spans are exported as traces.
        assert_eq!(request["http.route"], "/v1/me", "{line}");
        assert_eq!(request["http.request.method"], "GET", "{line}");
    }
    assert!(!text.contains("tdm_not_a_real_key"), "{text}");
    assert!(!text.contains("secret_query"), "{text}");
}

fn device_code_from(peer: &str, forwarded: &str) -> Request<Body> {
    let mut request = Request::post("/oauth/device/code")
        .header("host", "localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", forwarded)
        .body(Body::from("client_id=tandem-cli&scope=completions"))
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// Regression: the per-address limits saw the reverse proxy's address, so ten people
/// behind one proxy shared one budget (and one person could not be told from another).
#[tokio::test]
async fn per_address_limits_see_the_client_behind_a_trusted_proxy() {
    let app = TestApp::new("[http]\ntrusted_proxies = [\"10.0.0.0/8\"]").await;
    for index in 0..15 {
        let client = format!("198.51.100.{index}");
        let reply = app.send(device_code_from("10.0.0.2:40000", &client)).await;
        assert_eq!(reply.status, StatusCode::OK, "{index}: {reply:?}");
    }
    // One client behind the proxy still has its own limit (10 a minute).
    let statuses: Vec<u16> = futures::future::join_all(
        (0..11).map(|_| app.send(device_code_from("10.0.0.2:40000", "203.0.113.9"))),
    )
    .await
    .iter()
    .map(|reply| reply.status.as_u16())
    .collect();
    assert_eq!(statuses.iter().filter(|status| **status == 429).count(), 1);
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_untrusted_peers() {
    let app = TestApp::new("").await;
    let mut statuses = Vec::new();
    for index in 0..11 {
        // A client cannot escape its limit by claiming to be someone else.
        let spoofed = format!("198.51.100.{index}");
        let reply = app
            .send(device_code_from("203.0.113.7:40000", &spoofed))
            .await;
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

// The real binary: SIGTERM while a request is in flight.

const BINARY: &str = env!("CARGO_BIN_EXE_tandem-cloud");

/// A `tandem-cloud serve` child, killed if the test fails before it stops.
struct Server {
    child: std::process::Child,
    address: String,
    key: String,
    stderr: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(config: &str) -> Server {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("tandem.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Self::command(dir.path())
            .args(["serve", "--bind", "127.0.0.1:0", "--config"])
            .arg(&config_path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut key = String::new();
        let address = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("no Listening line: {}", stderr.lock().unwrap()))
                .unwrap();
            if let Some(printed) = line.strip_prefix("API key (shown only once): ") {
                key = printed.to_owned();
            }
            if let Some(address) = line.strip_prefix("Listening on http://") {
                break address.to_owned();
            }
        };
        // Keep reading, so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            address,
            key,
            stderr,
            dir,
        }
    }

    fn command(dir: &std::path::Path) -> std::process::Command {
        let mut command = std::process::Command::new(BINARY);
        command
            .env_remove("TANDEM_CONFIG")
            .env_remove("TANDEM_BIND")
            .env(
                "TANDEM_DATABASE_URL",
                format!("sqlite://{}", dir.join("tandem.sqlite").display()),
            )
            .env("TANDEM_LOG", "info")
            .env_remove("TANDEM_LOG_FORMAT");
        command
    }

    fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not stop:\n{}", self.stderr());
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `tandem-cloud usage` for the development user: its `total` line.
    fn usage_total(&self) -> String {
        let output = Self::command(self.dir.path())
            .args(["usage", "--email", "dev@localhost"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let report = String::from_utf8(output.stdout).unwrap();
        report
            .lines()
            .find(|line| line.starts_with("total"))
            .unwrap_or_else(|| panic!("no total in {report}"))
            .to_owned()
    }
}

fn completion(server: &Server, stream: bool) -> reqwest::RequestBuilder {
    let mut body = completion_body();
    body["stream"] = json!(stream);
    reqwest::Client::new()
        .post(format!("http://{}/v1/completions", server.address))
        .bearer_auth(&server.key)
        .header("x-request-id", "sigterm-test-1")
        .json(&body)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_and_records_it() {
    let fixture = ProviderFixture::start().await.unwrap();
    fixture.set_delay(Duration::from_millis(1500));
    let config = format!(
        "{}\n[logging]\nformat = \"json\"",
        fixture_provider("vendor", "ollama", &fixture, "")
    );
    let mut server = Server::start(&config);
    let pending = tokio::spawn(completion(&server, false).send());
    fixture
        .wait_for_requests(1, Duration::from_secs(10))
        .await
        .unwrap();
    server.terminate();

    // New connections are refused at once while the request is still being answered.
    let mut refused = false;
    for _ in 0..40 {
        if std::net::TcpStream::connect(&server.address).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        refused,
        "still accepting after SIGTERM:\n{}",
        server.stderr()
    );
    assert!(!pending.is_finished());

    let response = pending.await.unwrap().expect("the answer arrives");
    assert_eq!(response.status(), 200, "{}", server.stderr());
    assert_eq!(response.headers()["x-request-id"], "sigterm-test-1");
    let answer: Value = response.json().await.unwrap();
    assert!(answer["choices"][0]["text"].is_string(), "{answer}");
    let status = server.wait_for_exit().await;
    assert!(status.success(), "{status:?}\n{}", server.stderr());

    let log = server.stderr();
    // JSON lines, each of the request carrying its id: the answer's line and the
    // provider's (what follows a completion from the editor to the provider).
    let of_request: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("{line}")))
        .filter(|line| line.to_string().contains("sigterm-test-1"))
        .collect();
    assert!(
        of_request
            .iter()
            .any(|line| line["fields"]["message"] == "finished processing request"),
        "{log}"
    );
    for line in &of_request {
        assert_eq!(line["spans"][0]["request_id"], "sigterm-test-1", "{line}");
    }
    assert!(log.contains("requests in flight finished"), "{log}");
    assert!(log.contains("usage records flushed"), "{log}");
    let total = server.usage_total();
    assert!(
        total.split_whitespace().nth(1) == Some("1"),
        "one request recorded: {total}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_still_open_at_the_shutdown_timeout() {
    let fixture = ProviderFixture::start().await.unwrap();
    fixture.reply_with_text("word ".repeat(200));
    fixture.set_chunk_delay(Duration::from_millis(50));
    let config = format!(
        "{}\n[http]\nshutdown_timeout_ms = 500\n[logging]\nformat = \"text\"",
        fixture_provider("vendor", "ollama", &fixture, "")
    );
    let mut server = Server::start(&config);
    let response = completion(&server, true).send().await.unwrap();
    assert_eq!(response.status(), 200);
    server.terminate();
    let text = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .expect("the stream ends")
        .unwrap();
    let events = common::sse_events(&text);
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{text}");
    assert_eq!(data["error"]["code"], "provider_unavailable", "{text}");
    let status = server.wait_for_exit().await;
    assert!(status.success(), "{status:?}\n{}", server.stderr());
    let log = server.stderr();
    // `[logging] format = "text"` replaced the JSON lines a pipe gets by default.
    let ending = log
        .lines()
        .find(|line| line.contains("ending open streams"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(ending.contains(" WARN "), "{ending}");
    assert!(!ending.starts_with('{'), "{ending}");
    assert!(log.contains("usage records flushed"), "{log}");
    // The stream's record was written after its connection closed, before the exit.
    let total = server.usage_total();
    assert_eq!(total.split_whitespace().nth(1), Some("1"), "{total}");
}
