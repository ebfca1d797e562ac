//! OpenTelemetry traces: the `tracing` spans of each request (the HTTP request, its routing,
//! each provider attempt and HTTP call) exported over OTLP/HTTP (protobuf) to a collector,
//! continuing the caller's W3C trace (`traceparent`).
//!
//! Off unless an endpoint is set (`[telemetry] otlp_endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`). Only spans of this
//! crate at `info` and above are exported, never events: log lines stay in the log, and the
//! log filter (`TANDEM_LOG`) does not thin the traces. Span fields are chosen to carry no
//! prompt, code, key or token; the collector's headers (often an API key) are never logged.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Link, SamplingDecision, SpanKind, TraceContextExt, TraceId};
use opentelemetry::trace::{SamplingResult, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, ShouldSample};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::config::telemetry::{check_endpoint, TelemetryConfig, DEFAULT_SERVICE_NAME};

/// The standard variable naming the whole URL traces are sent to.
pub const TRACES_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// The standard variable naming the collector's base URL (`/v1/traces` is appended).
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard variable naming the service.
pub const SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";
/// Path of the OTLP/HTTP traces receiver under a collector's base URL.
const TRACES_PATH: &str = "/v1/traces";
/// The W3C header a caller's trace arrives in.
const TRACEPARENT: &str = "traceparent";
/// The instrumentation scope the spans are reported under.
const TRACER_NAME: &str = "tandem-cloud";
/// How long a stopping server waits for the collector to take the last spans.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why traces cannot be exported as configured.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A standard endpoint variable, read because `telemetry.otlp_endpoint` is unset, holds
    /// no usable URL.
    #[error(
        "environment variable {variable} (read because telemetry.otlp_endpoint is not set): \
         {reason}"
    )]
    Endpoint {
        variable: &'static str,
        reason: String,
    },
    /// `telemetry.headers_env` names a variable that is not set (or is empty).
    #[error("environment variable `{variable}` (named by telemetry.headers_env) is not set")]
    MissingHeaders { variable: String },
    /// The headers variable is not `name=value` pairs; the message never shows a value.
    #[error(
        "environment variable `{variable}` (named by telemetry.headers_env): entry {entry} \
         {reason}; write name=value pairs separated by commas"
    )]
    InvalidHeaders {
        variable: String,
        /// Which pair, counting from 1.
        entry: usize,
        reason: String,
    },
    /// The OTLP exporter refused its settings.
    #[error("cannot set up the OTLP trace exporter: {0}")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// Where and how traces are exported: `[telemetry]` completed from the environment.
#[derive(Clone, PartialEq)]
pub struct ExportSettings {
    /// The URL spans are POSTed to, ending in `/v1/traces` unless a traces URL was given.
    pub endpoint: String,
    /// `service.name` of the spans.
    pub service_name: String,
    /// Share of requests traced, 0.0 to 1.0.
    pub sampling_ratio: f64,
    /// Sent to the collector with every export. Secret: never logged.
    headers: HashMap<String, String>,
}

impl fmt::Debug for ExportSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut header_names: Vec<&str> = self.headers.keys().map(String::as_str).collect();
        header_names.sort_unstable();
        formatter
            .debug_struct("ExportSettings")
            .field("endpoint", &self.endpoint)
            .field("service_name", &self.service_name)
            .field("sampling_ratio", &self.sampling_ratio)
            .field("header_names", &header_names)
            .finish()
    }
}

impl ExportSettings {
    /// Completes `config` from the standard `OTEL_*` variables (read through `env`) where
    /// it leaves a key unset, and reads the headers `headers_env` names. `None` when no
    /// endpoint is set anywhere: traces are off.
    pub fn resolve(
        config: &TelemetryConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<ExportSettings>, TelemetryError> {
        let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let endpoint = if let Some(endpoint) = &config.otlp_endpoint {
            traces_url(endpoint)
        } else if let Some(url) = set(TRACES_ENDPOINT_ENV) {
            check_variable(TRACES_ENDPOINT_ENV, &url)?;
            url.trim().to_owned()
        } else if let Some(url) = set(ENDPOINT_ENV) {
            check_variable(ENDPOINT_ENV, &url)?;
            traces_url(&url)
        } else {
            return Ok(None);
        };
        let service_name = config
            .service_name
            .clone()
            .or_else(|| set(SERVICE_NAME_ENV))
            .map_or_else(
                || DEFAULT_SERVICE_NAME.to_owned(),
                |name| name.trim().to_owned(),
            );
        let headers = match &config.headers_env {
            Some(variable) => match set(variable) {
                Some(text) => parse_headers(variable, &text)?,
                None => {
                    return Err(TelemetryError::MissingHeaders {
                        variable: variable.clone(),
                    })
                }
            },
            None => HashMap::new(),
        };
        Ok(Some(ExportSettings {
            endpoint,
            service_name,
            sampling_ratio: config.sampling_ratio,
            headers,
        }))
    }
}

fn check_variable(variable: &'static str, url: &str) -> Result<(), TelemetryError> {
    check_endpoint(url).map_err(|reason| TelemetryError::Endpoint { variable, reason })
}

/// The traces URL under a collector's base URL; a URL that is already one stays as it is.
fn traces_url(base: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        base.to_owned()
    } else {
        format!("{base}{TRACES_PATH}")
    }
}

/// `name=value,name=value` as `OTEL_EXPORTER_OTLP_HEADERS` writes them: values
/// percent-decoded (`Authorization=Basic%20abc`), names lowercase.
fn parse_headers(variable: &str, text: &str) -> Result<HashMap<String, String>, TelemetryError> {
    let invalid = |entry: usize, reason: String| TelemetryError::InvalidHeaders {
        variable: variable.to_owned(),
        entry,
        reason,
    };
    let mut headers = HashMap::new();
    for (index, pair) in text.split(',').enumerate() {
        let entry = index + 1;
        if pair.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once('=') else {
            return Err(invalid(entry, "has no `=`".to_owned()));
        };
        let name = name.trim().to_ascii_lowercase();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(invalid(entry, format!("`{name}` is not a header name")));
        }
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| invalid(entry, "holds a value that is not UTF-8".to_owned()))?;
        if HeaderValue::from_str(&value).is_err() {
            return Err(invalid(
                entry,
                format!("holds a value for `{name}` that a header cannot carry"),
            ));
        }
        headers.insert(name, value.into_owned());
    }
    Ok(headers)
}

/// The exporter while traces are on. [`Telemetry::shutdown`] sends the spans still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    settings: ExportSettings,
}

impl Telemetry {
    /// `[telemetry]` completed from the process environment, started; `None` when no
    /// endpoint is set.
    pub fn from_config(config: &TelemetryConfig) -> Result<Option<Telemetry>, TelemetryError> {
        ExportSettings::resolve(config, &|name| std::env::var(name).ok())?
            .map(Telemetry::start)
            .transpose()
    }

    /// Builds the exporter and its batch span processor, a task on the current Tokio
    /// runtime that sends spans every few seconds, in batches.
    pub fn start(settings: ExportSettings) -> Result<Telemetry, TelemetryError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(settings.endpoint.clone())
            .with_headers(settings.headers.clone())
            .build()
            .map_err(TelemetryError::Exporter)?;
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(RequestSampler {
                ratio: settings.sampling_ratio,
            })
            .with_resource(resource)
            .build();
        Ok(Telemetry { provider, settings })
    }

    /// What is exported where, for the start-up log line.
    pub fn settings(&self) -> &ExportSettings {
        &self.settings
    }

    /// The layer turning this crate's spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync + 'static,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer(TRACER_NAME))
            .with_filter(tracing_subscriber::filter::filter_fn(is_exported))
    }

    /// Sends the spans still queued and stops the exporter, waiting for the collector at
    /// most a few seconds: a server that is stopping must not hang on it.
    pub async fn shutdown(self) {
        let provider = self.provider;
        // The SDK waits for its export task by blocking the calling thread.
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, stopped).await {
            Ok(Ok(Ok(()))) => tracing::info!("traces flushed"),
            Ok(Ok(Err(error))) => tracing::warn!(%error, "cannot flush the last traces"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot flush the last traces"),
            Err(_) => tracing::warn!(
                timeout_s = SHUTDOWN_TIMEOUT.as_secs(),
                "the collector did not take the last traces in time; they are lost"
            ),
        }
    }
}

/// Spans of this crate at `info` and above. Events are left out: they are the log's, and
/// may quote what a span must not carry (a vendor's error message).
fn is_exported(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span()
        && *metadata.level() <= tracing::Level::INFO
        && metadata.target().starts_with("tandem_cloud")
}

/// Makes `span`, a request's, continue the caller's trace when the request carries a valid
/// W3C `traceparent` (and `tracestate`). Does nothing while traces are off.
pub fn continue_caller_trace(span: &tracing::Span, headers: &HeaderMap) {
    if span.is_disabled() || !headers.contains_key(TRACEPARENT) {
        return;
    }
    let caller = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if caller.span().span_context().is_valid() {
        // Fails only without the OpenTelemetry layer: traces are off.
        let _ = span.set_parent(caller);
    }
}

/// Request headers as the propagator reads them.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Follows a sampled caller, and a local parent either way; a trace that starts here, or
/// whose caller did not record it (the language server sends `traceparent` with the
/// sampled flag off: it records nothing itself), is traced at the configured ratio,
/// decided from the trace id.
#[derive(Debug, Clone)]
struct RequestSampler {
    ratio: f64,
}

impl ShouldSample for RequestSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let parent = parent_context
            .filter(|context| context.has_active_span())
            .map(|context| context.span().span_context().clone());
        match parent {
            Some(parent) if parent.is_sampled() || !parent.is_remote() => SamplingResult {
                decision: if parent.is_sampled() {
                    SamplingDecision::RecordAndSample
                } else {
                    SamplingDecision::Drop
                },
                attributes: Vec::new(),
                trace_state: parent.trace_state().clone(),
            },
            _ => Sampler::TraceIdRatioBased(self.ratio).should_sample(
                parent_context,
                trace_id,
                name,
                span_kind,
                attributes,
                links,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};

    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[track_caller]
    fn resolve(config: &str, variables: &'static [(&'static str, &'static str)]) -> ExportSettings {
        try_resolve(config, variables)
            .unwrap_or_else(|error| panic!("{error}"))
            .expect("traces are on")
    }

    fn try_resolve(
        config: &str,
        variables: &'static [(&'static str, &'static str)],
    ) -> Result<Option<ExportSettings>, TelemetryError> {
        let config = crate::Config::parse_str(config).unwrap();
        ExportSettings::resolve(&config.telemetry, &env(variables))
    }

    #[test]
    fn off_without_an_endpoint() {
        assert_eq!(try_resolve("", &[]).unwrap(), None);
        assert_eq!(
            try_resolve("", &[(ENDPOINT_ENV, " "), (SERVICE_NAME_ENV, "x")]).unwrap(),
            None
        );
    }

    #[test]
    fn the_config_wins_over_the_standard_variables() {
        let settings = resolve(
            "[telemetry]\notlp_endpoint = \"http://collector:4318/\"\nservice_name = \"eu\"",
            &[
                (ENDPOINT_ENV, "http://other:4318"),
                (SERVICE_NAME_ENV, "from-env"),
            ],
        );
        assert_eq!(settings.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(settings.service_name, "eu");
        assert_eq!(settings.sampling_ratio, 1.0);
    }

    #[test]
    fn the_standard_variables_fill_what_the_config_leaves_out() {
        let settings = resolve(
            "[telemetry]\nsampling_ratio = 0.5",
            &[
                (ENDPOINT_ENV, "https://collector.example.com:4318"),
                (SERVICE_NAME_ENV, "tandem-staging"),
            ],
        );
        assert_eq!(
            settings.endpoint,
            "https://collector.example.com:4318/v1/traces"
        );
        assert_eq!(settings.service_name, "tandem-staging");
        assert_eq!(settings.sampling_ratio, 0.5);
        // The traces URL is taken whole, and before the base URL.
        let settings = resolve(
            "",
            &[
                (TRACES_ENDPOINT_ENV, "http://collector:4318/custom/traces"),
                (ENDPOINT_ENV, "http://other:4318"),
            ],
        );
        assert_eq!(settings.endpoint, "http://collector:4318/custom/traces");
        assert_eq!(settings.service_name, "tandem-cloud");
        // A full traces URL in the config is not extended.
        let settings = resolve(
            "[telemetry]\notlp_endpoint = \"http://collector:4318/v1/traces\"",
            &[],
        );
        assert_eq!(settings.endpoint, "http://collector:4318/v1/traces");
    }

    #[test]
    fn bad_endpoint_variables_are_refused_naming_them() {
        let message = try_resolve("", &[(ENDPOINT_ENV, "collector:4318")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "environment variable OTEL_EXPORTER_OTLP_ENDPOINT (read because \
             telemetry.otlp_endpoint is not set): the URL must start with http:// or https:// \
             (OTLP over HTTP), got `collector:4318`"
        );
        let message = try_resolve("", &[(TRACES_ENDPOINT_ENV, "http://u:secret@collector")])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(TRACES_ENDPOINT_ENV) && !message.contains("secret"),
            "{message}"
        );
    }

    #[test]
    fn headers_come_from_the_named_variable_and_are_never_shown() {
        let config = "[telemetry]\notlp_endpoint = \"http://collector:4318\"\n\
                      headers_env = \"COLLECTOR_HEADERS\"";
        let settings = resolve(
            config,
            &[(
                "COLLECTOR_HEADERS",
                "Authorization=Basic%20dXNlcjpzM2NyM3Q=, X-Scope-OrgID = tenant-1,",
            )],
        );
        assert_eq!(
            settings.headers,
            HashMap::from([
                (
                    "authorization".to_owned(),
                    "Basic dXNlcjpzM2NyM3Q=".to_owned()
                ),
                ("x-scope-orgid".to_owned(), "tenant-1".to_owned()),
            ])
        );
        let shown = format!("{settings:?}");
        assert!(!shown.contains("dXNlcjpzM2NyM3Q"), "{shown}");
        assert!(shown.contains("authorization"), "{shown}");

        let message = try_resolve(config, &[]).unwrap_err().to_string();
        assert_eq!(
            message,
            "environment variable `COLLECTOR_HEADERS` (named by telemetry.headers_env) is not \
             set"
        );
        let message = try_resolve(config, &[("COLLECTOR_HEADERS", "a=1,Bearer s3cr3t")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "environment variable `COLLECTOR_HEADERS` (named by telemetry.headers_env): entry \
             2 has no `=`; write name=value pairs separated by commas"
        );
        let message = try_resolve(config, &[("COLLECTOR_HEADERS", "x=s3cr3t%0A")])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("entry 1 holds a value for `x` that a header cannot carry")
                && !message.contains("s3cr3t"),
            "{message}"
        );
        let message = try_resolve(config, &[("COLLECTOR_HEADERS", "bad name=1")])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`bad name` is not a header name"),
            "{message}"
        );
    }

    fn parent(sampled: bool, remote: bool) -> Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let span = SpanContext::new(
            TraceId::from_bytes(7u128.to_be_bytes()),
            SpanId::from_bytes(9u64.to_be_bytes()),
            flags,
            remote,
            TraceState::default(),
        );
        Context::new().with_remote_span_context(span)
    }

    fn decide(ratio: f64, parent_context: Option<&Context>, trace_id: u128) -> SamplingDecision {
        RequestSampler { ratio }
            .should_sample(
                parent_context,
                TraceId::from_bytes(trace_id.to_be_bytes()),
                "request",
                &SpanKind::Server,
                &[],
                &[],
            )
            .decision
    }

    #[test]
    fn sampled_callers_are_followed_and_others_sampled_at_the_ratio() {
        // The ratio reads the trace id's low 63 bits: 1 is traced at any ratio above 0,
        // u128::MAX only at 1.0.
        let (low, high) = (1, u128::MAX);
        assert_eq!(decide(0.0, None, low), SamplingDecision::Drop);
        assert_eq!(decide(0.5, None, low), SamplingDecision::RecordAndSample);
        assert_eq!(decide(0.5, None, high), SamplingDecision::Drop);
        assert_eq!(decide(1.0, None, high), SamplingDecision::RecordAndSample);
        let sampled_caller = parent(true, true);
        assert_eq!(
            decide(0.0, Some(&sampled_caller), high),
            SamplingDecision::RecordAndSample
        );
        // A caller that did not record (the language server) gets the ratio.
        let unrecorded_caller = parent(false, true);
        assert_eq!(
            decide(0.5, Some(&unrecorded_caller), low),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(
            decide(0.5, Some(&unrecorded_caller), high),
            SamplingDecision::Drop
        );
        // Children follow their span in this process.
        let dropped_parent = parent(false, false);
        assert_eq!(
            decide(1.0, Some(&dropped_parent), low),
            SamplingDecision::Drop
        );
    }
}
