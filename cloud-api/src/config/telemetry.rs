//! `[telemetry]`: OpenTelemetry traces, exported over OTLP/HTTP. The keys and their checks;
//! [`crate::telemetry`] completes them from the standard `OTEL_*` variables and exports.

use serde::Deserialize;
use url::Url;

use super::ConfigError;

/// `service.name` of the spans when neither `telemetry.service_name` nor
/// `OTEL_SERVICE_NAME` names one.
pub const DEFAULT_SERVICE_NAME: &str = "tandem-cloud";
/// Share of requests traced by default: all of them.
pub const DEFAULT_SAMPLING_RATIO: f64 = 1.0;

/// `[telemetry]`: where traces go and how many. Off unless an OTLP endpoint is set here or
/// in the environment.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver, e.g.
    /// `http://otel-collector:4318`; spans are sent as protobuf to
    /// `<otlp_endpoint>/v1/traces` (a URL already ending in `/v1/traces` is taken as it is).
    /// Unset: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` if the
    /// environment has one, else no traces. Not secret; must not carry credentials (they
    /// go in `headers_env`).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans. Unset: `OTEL_SERVICE_NAME`, else `tandem-cloud`.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Share of requests traced, from 0.0 to 1.0, drawn from the trace id so that every
    /// service of a trace decides alike. A request whose `traceparent` says its caller
    /// recorded the trace is always traced. Default 1.0.
    #[serde(default = "default_sampling_ratio")]
    pub sampling_ratio: f64,
    /// NAME of an environment variable holding headers for the collector, such as its API
    /// key: `name=value` pairs separated by commas, values percent-encoded where needed
    /// (the format of `OTEL_EXPORTER_OTLP_HEADERS`, which is read as well). Secret: the
    /// headers are never logged or shown.
    #[serde(default)]
    pub headers_env: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: None,
            sampling_ratio: DEFAULT_SAMPLING_RATIO,
            headers_env: None,
        }
    }
}

fn default_sampling_ratio() -> f64 {
    DEFAULT_SAMPLING_RATIO
}

impl TelemetryConfig {
    /// Checks the endpoint, the name, the ratio and the variable name; errors name the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if let Some(endpoint) = &self.otlp_endpoint {
            if let Err(reason) = check_endpoint(endpoint) {
                return invalid(format!("telemetry.otlp_endpoint: {reason}"));
            }
        }
        if self
            .service_name
            .as_ref()
            .is_some_and(|name| name.trim().is_empty())
        {
            return invalid(
                "telemetry.service_name must not be empty; leave it out for the default".to_owned(),
            );
        }
        let ratio = self.sampling_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return invalid(format!(
                "telemetry.sampling_ratio must be between 0.0 and 1.0, got {ratio}"
            ));
        }
        if let Some(variable) = &self.headers_env {
            let well_formed = !variable.is_empty()
                && variable
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !well_formed {
                return invalid(
                    "telemetry.headers_env must be the NAME of an environment variable \
                     (letters, digits, `_`), not the headers themselves"
                        .to_owned(),
                );
            }
        }
        Ok(())
    }
}

/// Why `endpoint` cannot receive traces, for a message that names where it came from.
/// Never repeats a URL that carries credentials.
pub(crate) fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = Url::parse(endpoint.trim())
        .map_err(|error| format!("`{endpoint}` is not a URL: {error}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "the URL must not contain credentials; put them in telemetry.headers_env".to_owned(),
        );
    }
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "the URL must start with http:// or https:// (OTLP over HTTP), got `{endpoint}`"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{endpoint}` has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{endpoint}` must not have a query or fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// Checks that `text` is refused with exactly `expected`.
    #[track_caller]
    fn check_invalid(text: &str, expected: &str) {
        let message = crate::config::test_support::refused(text);
        assert_eq!(message, format!("invalid config: {expected}"));
    }

    #[test]
    fn off_by_default() {
        let config = Config::parse_str("").unwrap();
        assert_eq!(config.telemetry, TelemetryConfig::default());
        assert_eq!(config.telemetry.otlp_endpoint, None);
        assert_eq!(config.telemetry.sampling_ratio, 1.0);
    }

    #[test]
    fn every_key_parses() {
        let config = Config::parse_str(
            r#"
            [telemetry]
            otlp_endpoint = "http://otel-collector:4318"
            service_name = "tandem-cloud-eu"
            sampling_ratio = 0.25
            headers_env = "TANDEM_OTLP_HEADERS"
            "#,
        )
        .unwrap();
        let telemetry = config.telemetry;
        assert_eq!(
            telemetry.otlp_endpoint.as_deref(),
            Some("http://otel-collector:4318")
        );
        assert_eq!(telemetry.service_name.as_deref(), Some("tandem-cloud-eu"));
        assert_eq!(telemetry.sampling_ratio, 0.25);
        assert_eq!(
            telemetry.headers_env.as_deref(),
            Some("TANDEM_OTLP_HEADERS")
        );
        // Whole numbers are ratios too.
        let config = Config::parse_str("[telemetry]\nsampling_ratio = 0").unwrap();
        assert_eq!(config.telemetry.sampling_ratio, 0.0);
    }

    #[test]
    fn bad_endpoints_are_refused_naming_the_key() {
        check_invalid(
            "[telemetry]\notlp_endpoint = \"otel-collector:4318\"",
            "telemetry.otlp_endpoint: the URL must start with http:// or https:// (OTLP over \
             HTTP), got `otel-collector:4318`",
        );
        check_invalid(
            "[telemetry]\notlp_endpoint = \"not a url\"",
            "telemetry.otlp_endpoint: `not a url` is not a URL: relative URL without a base",
        );
        check_invalid(
            "[telemetry]\notlp_endpoint = \"grpc://otel-collector:4317\"",
            "telemetry.otlp_endpoint: the URL must start with http:// or https:// (OTLP over \
             HTTP), got `grpc://otel-collector:4317`",
        );
        check_invalid(
            "[telemetry]\notlp_endpoint = \"http://otel-collector:4318/?token=x\"",
            "telemetry.otlp_endpoint: `http://otel-collector:4318/?token=x` must not have a \
             query or fragment",
        );
        // The password is not repeated.
        check_invalid(
            "[telemetry]\notlp_endpoint = \"https://user:hunter2@collector.example.com\"",
            "telemetry.otlp_endpoint: the URL must not contain credentials; put them in \
             telemetry.headers_env",
        );
    }

    #[test]
    fn other_keys_are_checked() {
        check_invalid(
            "[telemetry]\nsampling_ratio = 1.5",
            "telemetry.sampling_ratio must be between 0.0 and 1.0, got 1.5",
        );
        check_invalid(
            "[telemetry]\nsampling_ratio = -0.1",
            "telemetry.sampling_ratio must be between 0.0 and 1.0, got -0.1",
        );
        check_invalid(
            "[telemetry]\nsampling_ratio = nan",
            "telemetry.sampling_ratio must be between 0.0 and 1.0, got NaN",
        );
        check_invalid(
            "[telemetry]\nservice_name = \" \"",
            "telemetry.service_name must not be empty; leave it out for the default",
        );
        check_invalid(
            "[telemetry]\nheaders_env = \"Authorization=Bearer abc\"",
            "telemetry.headers_env must be the NAME of an environment variable (letters, \
             digits, `_`), not the headers themselves",
        );
        let message = Config::parse_str("[telemetry]\nendpoint = \"http://x\"")
            .unwrap_err()
            .to_string();
        assert!(message.contains("unknown field `endpoint`"), "{message}");
    }
}
