//! Traces from the real `tandem-cloud` binary: `serve` with `[telemetry]` pointing at a
//! loopback OTLP/HTTP collector that decodes every `POST /v1/traces`, and two loopback
//! providers speaking Ollama's and OpenAI's wire formats (the first failing, so the
//! request falls back). The requests carry an `x-request-id` and a W3C `traceparent`; the
//! spans must continue that trace from the HTTP request through routing to each provider
//! call, reach the collector by the time a SIGTERM'd server exits, and carry none of the
//! prompt, the keys or the collector's secret header.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::json;
use tandem_e2e::ProviderFixture;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const BINARY: &str = env!("CARGO_BIN_EXE_tandem-cloud");
/// The providers' API key, read through `api_key_env`.
const PROVIDER_KEY: &str = "sk-telemetry-provider-key-0123456789";
const PROVIDER_KEY_ENV: &str = "TANDEM_TEST_TELEMETRY_PROVIDER_KEY";
/// The collector's secret header, read through `telemetry.headers_env`.
const COLLECTOR_SECRET: &str = "collector-s3cr3t-4242";
const COLLECTOR_HEADERS_ENV: &str = "TANDEM_TEST_COLLECTOR_HEADERS";
/// Appears only in the code of the completion request.
const PROMPT_MARKER: &str = "tandem_prompt_marker_7d1c";
/// The caller's trace: W3C Trace Context's own example ids.
const CALLER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// What the collector received: each export's headers and spans.
#[derive(Default)]
struct Received {
    headers: Vec<HeaderMap>,
    exports: Vec<ExportTraceServiceRequest>,
}

/// A loopback OTLP/HTTP receiver: `POST /v1/traces` with a protobuf body.
struct Collector {
    url: String,
    received: Arc<Mutex<Received>>,
}

impl Collector {
    async fn start() -> Collector {
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
        let app = Router::new().route(
            "/v1/traces",
            post(move |headers: HeaderMap, body: Bytes| {
                let shared = shared.clone();
                async move {
                    let Ok(export) = ExportTraceServiceRequest::decode(body) else {
                        return (StatusCode::BAD_REQUEST, Vec::new());
                    };
                    let mut received = shared.lock().unwrap();
                    received.headers.push(headers);
                    received.exports.push(export);
                    (
                        StatusCode::OK,
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector { url, received }
    }

    fn spans(&self) -> Vec<ExportedSpan> {
        let received = self.received.lock().unwrap();
        let mut spans = Vec::new();
        for export in &received.exports {
            for resource_spans in &export.resource_spans {
                let resource = resource_spans
                    .resource
                    .as_ref()
                    .map(|resource| attributes(&resource.attributes))
                    .unwrap_or_default();
                for scope_spans in &resource_spans.scope_spans {
                    for span in &scope_spans.spans {
                        spans.push(ExportedSpan {
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent_span_id: hex(&span.parent_span_id),
                            name: span.name.clone(),
                            kind: span.kind,
                            error: span.status.as_ref().is_some_and(|status| status.code == 2),
                            attributes: attributes(&span.attributes),
                            event_attributes: span
                                .events
                                .iter()
                                .flat_map(|event| attributes(&event.attributes))
                                .map(|(key, value)| format!("{key}={value}"))
                                .collect(),
                            resource: resource.clone(),
                        });
                    }
                }
            }
        }
        spans
    }
}

/// One span as the collector got it, attribute values as text.
#[derive(Debug, Clone)]
struct ExportedSpan {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i32,
    /// Status `ERROR`.
    error: bool,
    attributes: BTreeMap<String, String>,
    event_attributes: Vec<String>,
    resource: BTreeMap<String, String>,
}

impl ExportedSpan {
    #[track_caller]
    fn attribute(&self, key: &str) -> &str {
        self.attributes
            .get(key)
            .unwrap_or_else(|| panic!("span `{}` has no `{key}`: {self:#?}", self.name))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|pair| (pair.key.clone(), value_text(pair.value.as_ref())))
        .collect()
}

fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::ArrayValue(array)) => array
            .values
            .iter()
            .map(|value| value_text(Some(value)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// The spans of `trace_id` below `ancestor` (children, their children, ...).
fn descendants<'a>(spans: &'a [ExportedSpan], ancestor: &ExportedSpan) -> Vec<&'a ExportedSpan> {
    let by_id: HashMap<&str, &ExportedSpan> = spans
        .iter()
        .filter(|span| span.trace_id == ancestor.trace_id)
        .map(|span| (span.span_id.as_str(), span))
        .collect();
    spans
        .iter()
        .filter(|span| span.trace_id == ancestor.trace_id)
        .filter(|span| {
            let mut parent = span.parent_span_id.as_str();
            while let Some(next) = by_id.get(parent) {
                if next.span_id == ancestor.span_id {
                    return true;
                }
                parent = next.parent_span_id.as_str();
            }
            false
        })
        .collect()
}

/// The `request` span of the request with this `x-request-id`.
#[track_caller]
fn request_span<'a>(spans: &'a [ExportedSpan], request_id: &str) -> &'a ExportedSpan {
    spans
        .iter()
        .find(|span| span.attributes.get("request_id").map(String::as_str) == Some(request_id))
        .unwrap_or_else(|| panic!("no span with request_id {request_id} in {spans:#?}"))
}

fn write_config(dir: &Path, collector: &Collector, failing: &str, answering: &str) -> String {
    let path = dir.join("tandem.toml");
    std::fs::write(
        &path,
        format!(
            "[[providers]]\nname = \"primary\"\nkind = \"ollama\"\nbase_url = \"{failing}\"\n\
             model = \"qwen2.5-coder:1.5b\"\napi_key_env = \"{PROVIDER_KEY_ENV}\"\n\
             [[providers]]\nname = \"backup\"\nkind = \"openai\"\nbase_url = \"{answering}\"\n\
             model = \"gpt-test\"\napi_key_env = \"{PROVIDER_KEY_ENV}\"\n\
             [telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"tandem-cloud-test\"\n\
             headers_env = \"{COLLECTOR_HEADERS_ENV}\"\n",
            collector.url
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// `serve` on a free port with the test's config, an empty database (so it prints a
/// development key) and none of the runner's Tandem or OpenTelemetry settings.
fn serve_command(dir: &Path, config: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BINARY);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("TANDEM_") || name.starts_with("OTEL_") {
            command.env_remove(&*name);
        }
    }
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--config", config])
        .env(
            "TANDEM_DATABASE_URL",
            format!("sqlite://{}", dir.join("tandem.sqlite").display()),
        )
        .env("TANDEM_LOG", "info")
        .env(PROVIDER_KEY_ENV, PROVIDER_KEY)
        .env(
            COLLECTOR_HEADERS_ENV,
            format!("x-collector-key={COLLECTOR_SECRET}"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn completion_body(stream: bool) -> serde_json::Value {
    json!({
        "language": "rust",
        "path": "src/lib.rs",
        "prefix": format!("fn {PROMPT_MARKER}(a: i32) -> i32 {{ a }}\nfn ad"),
        "suffix": "\n",
        "stream": stream,
    })
}

#[tokio::test]
async fn spans_follow_the_request_from_the_caller_to_each_provider() {
    let collector = Collector::start().await;
    let failing = ProviderFixture::start().await.unwrap();
    failing.fail_with(503);
    let answering = ProviderFixture::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &collector,
        failing.url(),
        &answering.openai_base_url(),
    );

    let mut server = serve_command(dir.path(), &config).spawn().unwrap();
    let mut stderr = server.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut stdout = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut api_key = None;
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if let Some(key) = line.strip_prefix("API key (shown only once): ") {
                api_key = Some(key.to_owned());
            }
            if let Some(address) = line.strip_prefix("Listening on ") {
                return address.to_owned();
            }
        }
        panic!("serve exited before listening");
    })
    .await
    .expect("serve printed no Listening line");
    let api_key = api_key.expect("the first start prints a development key");

    let client = reqwest::Client::new();
    let traceparent = format!("00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01");
    let response = client
        .post(format!("{address}/v1/completions"))
        .bearer_auth(&api_key)
        .header("x-request-id", "req-abc")
        .header("traceparent", &traceparent)
        .json(&completion_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["provider"], "backup", "{answer}");

    // A stream without a `traceparent`: a trace of its own, whose provider span lasts
    // until the stream ends.
    let streamed = client
        .post(format!("{address}/v1/completions"))
        .bearer_auth(&api_key)
        .header("x-request-id", "req-stream")
        .json(&completion_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 200);
    let events = streamed.text().await.unwrap();
    assert!(events.contains("event: done"), "{events}");

    // The last spans are sent on the way out, well before the batch interval.
    let pid = server.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("serve stops after SIGTERM")
        .unwrap();
    let logs = logs.await.unwrap();
    assert!(status.success(), "{status:?}\n{logs}");
    let spans = collector.spans();

    // The HTTP request's span continues the caller's trace.
    let request = request_span(&spans, "req-abc");
    assert_eq!(request.name, "POST /v1/completions");
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(request.trace_id, CALLER_TRACE_ID);
    assert_eq!(request.parent_span_id, CALLER_SPAN_ID);
    assert_eq!(request.attribute("http.request.method"), "POST");
    assert_eq!(request.attribute("http.route"), "/v1/completions");
    assert_eq!(request.attribute("http.response.status_code"), "200");
    assert!(!request.error);
    assert_eq!(request.resource["service.name"], "tandem-cloud-test");

    // Routing, then one span per provider attempt, each with its HTTP call.
    let below_request = descendants(&spans, request);
    let route = below_request
        .iter()
        .find(|span| span.name == "route")
        .unwrap_or_else(|| panic!("no route span below the request: {below_request:#?}"));
    assert_eq!(route.attribute("task"), "completion");
    assert_eq!(route.attribute("tier"), "enterprise");
    assert_eq!(route.attribute("plan"), "primary,backup");
    assert_eq!(route.attribute("provider"), "backup");
    assert_eq!(route.attribute("attempts"), "2");
    let below_route = descendants(&spans, route);
    let attempt = |provider: &str| {
        below_route
            .iter()
            .find(|span| {
                span.name == "provider_attempt"
                    && span.attributes.get("provider").map(String::as_str) == Some(provider)
            })
            .unwrap_or_else(|| panic!("no attempt at {provider}: {below_route:#?}"))
    };
    let primary = attempt("primary");
    assert_eq!(primary.attribute("provider.kind"), "ollama");
    assert_eq!(primary.attribute("model"), "qwen2.5-coder:1.5b");
    assert_eq!(primary.attribute("outcome"), "status_503");
    assert_eq!(primary.attribute("status"), "503");
    assert!(primary.error);
    let backup = attempt("backup");
    assert_eq!(backup.attribute("provider.kind"), "openai");
    assert_eq!(backup.attribute("model"), "gpt-test");
    assert_eq!(backup.attribute("outcome"), "answered");
    assert!(backup.attribute("latency_ms").parse::<u64>().is_ok());
    assert!(!backup.error);
    for (attempt, status) in [(primary, "503"), (backup, "200")] {
        let calls = descendants(&spans, attempt);
        assert_eq!(calls.len(), 1, "{calls:#?}");
        assert_eq!(calls[0].name, "POST");
        assert_eq!(calls[0].kind, SpanKind::Client as i32);
        assert_eq!(calls[0].attribute("server.address"), "127.0.0.1");
        assert_eq!(calls[0].attribute("http.response.status_code"), status);
    }

    // The stream's trace is its own, and its answering attempt saw the stream end.
    let stream_request = request_span(&spans, "req-stream");
    assert_ne!(stream_request.trace_id, CALLER_TRACE_ID);
    assert!(stream_request.parent_span_id.is_empty());
    let stream_attempt = descendants(&spans, stream_request)
        .into_iter()
        .find(|span| {
            span.name == "provider_attempt"
                && span.attributes.get("outcome").map(String::as_str) == Some("answered")
        })
        .unwrap_or_else(|| panic!("no answering attempt for the stream: {spans:#?}"));
    assert_eq!(stream_attempt.attribute("stream_end"), "complete");

    // Nothing the request or the configuration holds in confidence is in any span.
    for span in &spans {
        let text = format!(
            "{} {:?} {:?} {:?}",
            span.name, span.attributes, span.event_attributes, span.resource
        );
        for secret in [
            PROMPT_MARKER,
            PROVIDER_KEY,
            api_key.as_str(),
            COLLECTOR_SECRET,
        ] {
            assert!(!text.contains(secret), "`{secret}` in span {span:#?}");
        }
    }
    // The collector got its header; the log never shows it.
    let received = collector.received.lock().unwrap();
    assert!(received
        .headers
        .iter()
        .all(|headers| headers["x-collector-key"] == COLLECTOR_SECRET));
    assert!(!logs.contains(COLLECTOR_SECRET), "{logs}");
    assert!(logs.contains("exporting traces over OTLP/HTTP"), "{logs}");
}
