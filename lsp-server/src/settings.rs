//! Editor settings: initializationOptions and the `tandem` section of
//! `workspace/didChangeConfiguration`, which take the same keys.
//!
//! Keys: `server`, `apiKey`, `maxPrefixChars`, `maxSuffixChars`, `maxContextTokens`,
//! `requestTimeoutMs`, `debounceMs`.
//! Unknown keys are ignored (editors send whatever else the user configured); `null`
//! and empty strings count as unset; a value of the wrong type is skipped with a
//! warning rather than failing `initialize`.

use std::time::Duration;

use serde_json::Value;

use crate::credentials::PartialCredentials;

pub const DEFAULT_MAX_PREFIX_CHARS: usize = 8000;
pub const DEFAULT_MAX_SUFFIX_CHARS: usize = 2000;
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(10_000);
/// How long an automatically triggered completion waits for the next keystroke before
/// calling the cloud. Chosen from measurements in `docs/PERFORMANCE.md`: well above the
/// 30 ms between keystrokes of a burst plus scheduling jitter on a loaded 2-core machine,
/// and at the low end of what peers use, since it is added to every suggestion's latency.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(75);

/// What one settings object says; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsLayer {
    pub server: Option<String>,
    pub api_key: Option<String>,
    pub max_prefix_chars: Option<usize>,
    pub max_suffix_chars: Option<usize>,
    pub request_timeout: Option<Duration>,
    pub debounce: Option<Duration>,
    pub max_context_tokens: Option<u32>,
}

/// A settings value that was present but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsWarning {
    /// The settings themselves were not a JSON object.
    #[error("settings must be an object, got {0}")]
    NotAnObject(&'static str),
    /// A known key had a value of the wrong type or range.
    #[error("ignoring `{key}`: expected {expected}")]
    InvalidValue {
        key: &'static str,
        expected: &'static str,
    },
}

impl SettingsLayer {
    /// Parses one settings object. `null` or a missing object is an empty layer.
    pub fn parse(value: Option<&Value>) -> (SettingsLayer, Vec<SettingsWarning>) {
        let mut warnings = Vec::new();
        let object = match value {
            None | Some(Value::Null) => return (SettingsLayer::default(), warnings),
            Some(Value::Object(object)) => object,
            Some(other) => {
                warnings.push(SettingsWarning::NotAnObject(json_type(other)));
                return (SettingsLayer::default(), warnings);
            }
        };
        let mut string = |key: &'static str| match object.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                Some(text.trim().to_owned()).filter(|text| !text.is_empty())
            }
            Some(_) => {
                warnings.push(SettingsWarning::InvalidValue {
                    key,
                    expected: "a string",
                });
                None
            }
        };
        let server = string("server");
        let api_key = string("apiKey");
        let mut count = |key: &'static str, minimum: u64| match object.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_u64().filter(|number| *number >= minimum) {
                Some(number) => Some(number),
                None => {
                    warnings.push(SettingsWarning::InvalidValue {
                        key,
                        expected: if minimum == 0 {
                            "a non-negative integer"
                        } else {
                            "a positive integer"
                        },
                    });
                    None
                }
            },
        };
        let to_usize = |number: u64| usize::try_from(number).unwrap_or(usize::MAX);
        let max_prefix_chars = count("maxPrefixChars", 0).map(to_usize);
        let max_suffix_chars = count("maxSuffixChars", 0).map(to_usize);
        let request_timeout = count("requestTimeoutMs", 1).map(Duration::from_millis);
        // 0 is allowed: no debounce, every automatic request calls at once.
        let debounce = count("debounceMs", 0).map(Duration::from_millis);
        // At least 1: a budget of nothing would send empty requests.
        let max_context_tokens =
            count("maxContextTokens", 1).map(|number| u32::try_from(number).unwrap_or(u32::MAX));
        let layer = SettingsLayer {
            server,
            api_key,
            max_prefix_chars,
            max_suffix_chars,
            request_timeout,
            debounce,
            max_context_tokens,
        };
        (layer, warnings)
    }

    /// Extracts and parses the `tandem` section of a `didChangeConfiguration` payload.
    /// A payload without one (some clients send `{}` or `null` to mean "pull it") is
    /// an empty layer.
    pub fn parse_configuration(settings: &Value) -> (SettingsLayer, Vec<SettingsWarning>) {
        SettingsLayer::parse(settings.get("tandem"))
    }

    /// The server and key this layer names, for credential resolution.
    pub fn credentials(&self) -> PartialCredentials {
        PartialCredentials::new(self.server.as_deref(), self.api_key.as_deref())
    }

    /// `self`, with `fallback` filling in what `self` leaves unset.
    pub fn or(&self, fallback: &SettingsLayer) -> SettingsLayer {
        SettingsLayer {
            server: self.server.clone().or_else(|| fallback.server.clone()),
            api_key: self.api_key.clone().or_else(|| fallback.api_key.clone()),
            max_prefix_chars: self.max_prefix_chars.or(fallback.max_prefix_chars),
            max_suffix_chars: self.max_suffix_chars.or(fallback.max_suffix_chars),
            request_timeout: self.request_timeout.or(fallback.request_timeout),
            debounce: self.debounce.or(fallback.debounce),
            max_context_tokens: self.max_context_tokens.or(fallback.max_context_tokens),
        }
    }
}

/// The knobs that are not credentials, with defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_prefix_chars: usize,
    pub max_suffix_chars: usize,
    pub request_timeout: Duration,
    /// Delay before an automatically triggered completion calls the cloud.
    pub debounce: Duration,
    /// The user's own cap on the estimated tokens of a request; the tier's limit from
    /// `GET /v1/me` applies as well, whichever is lower.
    pub max_context_tokens: Option<u32>,
}

impl Limits {
    pub fn from_layer(layer: &SettingsLayer) -> Limits {
        Limits {
            max_prefix_chars: layer.max_prefix_chars.unwrap_or(DEFAULT_MAX_PREFIX_CHARS),
            max_suffix_chars: layer.max_suffix_chars.unwrap_or(DEFAULT_MAX_SUFFIX_CHARS),
            request_timeout: layer.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            debounce: layer.debounce.unwrap_or(DEFAULT_DEBOUNCE),
            max_context_tokens: layer.max_context_tokens,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_layer(&SettingsLayer::default())
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    #[test]
    fn every_key_parses() {
        let (layer, warnings) = SettingsLayer::parse(Some(&json!({
            "server": "http://localhost:9000/",
            "apiKey": "tdm_x",
            "maxPrefixChars": 100,
            "maxSuffixChars": 0,
            "requestTimeoutMs": 2500,
            "debounceMs": 0,
            "maxContextTokens": 2000,
        })));
        assert!(warnings.is_empty());
        assert_eq!(layer.server.as_deref(), Some("http://localhost:9000/"));
        assert_eq!(layer.api_key.as_deref(), Some("tdm_x"));
        assert_eq!(
            Limits::from_layer(&layer),
            Limits {
                max_prefix_chars: 100,
                max_suffix_chars: 0,
                request_timeout: Duration::from_millis(2500),
                debounce: Duration::ZERO,
                max_context_tokens: Some(2000),
            }
        );
        assert_eq!(
            layer.credentials().server.as_deref(),
            Some("http://localhost:9000")
        );
    }

    #[test]
    fn absent_null_and_unknown_keys_mean_defaults() {
        for value in [
            None,
            Some(json!(null)),
            Some(json!({})),
            Some(json!({"other": 1, "apiKey": null, "server": ""})),
        ] {
            let (layer, warnings) = SettingsLayer::parse(value.as_ref());
            assert!(warnings.is_empty(), "{value:?}");
            assert_eq!(layer, SettingsLayer::default());
            assert_eq!(
                Limits::from_layer(&layer),
                Limits {
                    max_prefix_chars: 8000,
                    max_suffix_chars: 2000,
                    request_timeout: Duration::from_millis(10_000),
                    debounce: Duration::from_millis(75),
                    max_context_tokens: None,
                }
            );
        }
    }

    #[test]
    fn wrong_types_are_skipped_with_warnings() {
        let (layer, warnings) = SettingsLayer::parse(Some(&json!({
            "server": 5,
            "maxPrefixChars": -1,
            "maxSuffixChars": "many",
            "requestTimeoutMs": 0,
            "debounceMs": 1.5,
            "maxContextTokens": 0,
        })));
        assert_eq!(layer, SettingsLayer::default());
        let messages: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "ignoring `server`: expected a string",
                "ignoring `maxPrefixChars`: expected a non-negative integer",
                "ignoring `maxSuffixChars`: expected a non-negative integer",
                "ignoring `requestTimeoutMs`: expected a positive integer",
                "ignoring `debounceMs`: expected a non-negative integer",
                "ignoring `maxContextTokens`: expected a positive integer",
            ]
        );
        let (_, warnings) = SettingsLayer::parse(Some(&json!([1])));
        assert_eq!(warnings, [SettingsWarning::NotAnObject("an array")]);
    }

    #[test]
    fn configuration_section_overrides_initialization_options() {
        let (initialization, _) =
            SettingsLayer::parse(Some(&json!({"apiKey": "tdm_init", "maxPrefixChars": 10})));
        let (configuration, _) = SettingsLayer::parse_configuration(
            &json!({"tandem": {"apiKey": "tdm_new"}, "editor": {}}),
        );
        let merged = configuration.or(&initialization);
        assert_eq!(merged.api_key.as_deref(), Some("tdm_new"));
        assert_eq!(merged.max_prefix_chars, Some(10));
        let (empty, warnings) = SettingsLayer::parse_configuration(&json!(null));
        assert_eq!((empty, warnings), (SettingsLayer::default(), vec![]));
    }
}
