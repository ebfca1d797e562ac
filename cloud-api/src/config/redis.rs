//! `[redis]`: where rate limits and quotas are shared between instances, and what each
//! instance does while Redis does not answer.

use serde::Deserialize;
use url::Url;

use super::layers::mask_url_password;
use super::ConfigError;

/// Default prefix of every key the server writes to Redis.
pub const DEFAULT_KEY_PREFIX: &str = "tandem:";
/// Default time one Redis call may take before the request is decided without it, in ms.
pub const DEFAULT_TIMEOUT_MS: u64 = 250;
/// Longest `timeout_ms` accepted: a limiter call slower than this holds up every request.
pub const MAX_TIMEOUT_MS: u64 = 10_000;

/// `[redis]`: rate limits and quotas in Redis, exact across instances. Without `url` each
/// instance keeps its own limits in memory (see `docs/RATE_LIMITS_AND_TIERS.md`).
/// `Debug` masks the URL's password, so a logged configuration never shows it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// The Redis server: `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`, `rediss://…` for
    /// TLS, or `unix:///PATH/redis.sock`. Secret when it carries a password: `config show`
    /// masks the password and it is never logged. Also `TANDEM_REDIS_URL`. Default none.
    #[serde(default)]
    pub url: Option<String>,
    /// Prefix of every key written, so deployments can share one Redis. Default `tandem:`.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Longest one Redis call may take, in milliseconds, before the request it serves is
    /// decided by the per-instance fallback instead. Default 250.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many instances are expected to share the load. While Redis does not answer,
    /// each instance enforces every limit divided by this (never below 1), so the
    /// deployment as a whole stays near its limits. Default 1.
    #[serde(default = "default_instances")]
    pub instances: u32,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.masked_url())
            .field("key_prefix", &self.key_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("instances", &self.instances)
            .finish()
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            key_prefix: default_key_prefix(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            instances: default_instances(),
        }
    }
}

fn default_key_prefix() -> String {
    DEFAULT_KEY_PREFIX.to_owned()
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_instances() -> u32 {
    1
}

impl RedisConfig {
    /// The URL with its password masked, for messages.
    pub fn masked_url(&self) -> Option<String> {
        self.url
            .as_deref()
            .map(|url| mask_url_password(url).unwrap_or_else(|| url.to_owned()))
    }

    /// Checks the URL's form (not whether Redis answers: an instance starts without it and
    /// uses it once it does) and the ranges of the other keys.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if let Some(url) = &self.url {
            let shown = self.masked_url().unwrap_or_default();
            let parsed = match Url::parse(url) {
                Ok(parsed) => parsed,
                // The parser's message never repeats the URL, so it cannot leak a password.
                Err(error) => {
                    return invalid(format!("redis.url `{shown}` is not a URL: {error}"));
                }
            };
            if !matches!(parsed.scheme(), "redis" | "rediss" | "unix" | "redis+unix") {
                return invalid(format!(
                    "redis.url must start with redis://, rediss:// or unix://, got `{shown}`"
                ));
            }
            if matches!(parsed.scheme(), "redis" | "rediss") && parsed.host_str().is_none() {
                return invalid(format!("redis.url `{shown}` has no host"));
            }
            // The client's own parser decides the rest (port, database number); its
            // messages are fixed texts that do not repeat the URL.
            if let Err(error) = redis::Client::open(url.as_str()) {
                return invalid(format!(
                    "redis.url `{shown}` is not a usable Redis URL: {error}"
                ));
            }
        }
        let prefix_ok = !self.key_prefix.is_empty()
            && self.key_prefix.len() <= 64
            && self
                .key_prefix
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '{' && c != '}');
        if !prefix_ok {
            return invalid(format!(
                "redis.key_prefix must be 1 to 64 printable ASCII characters without spaces, \
                 `{{` or `}}`, got `{}`",
                self.key_prefix
            ));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return invalid(format!(
                "redis.timeout_ms must be between 1 and {MAX_TIMEOUT_MS}, got {}",
                self.timeout_ms
            ));
        }
        if self.instances == 0 {
            return invalid(
                "redis.instances must be at least 1 (the number of instances sharing the load)"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use crate::config::test_support::refused;

    #[test]
    fn defaults_keep_limits_per_instance() {
        let config = Config::parse_str("").unwrap();
        assert_eq!(config.redis.url, None);
        assert_eq!(config.redis.key_prefix, "tandem:");
        assert_eq!(config.redis.timeout_ms, 250);
        assert_eq!(config.redis.instances, 1);
        let config = Config::parse_str(
            "[redis]\nurl = \"redis://:pw@cache.internal:6380/2\"\nkey_prefix = \"t1:\"\n\
             timeout_ms = 100\ninstances = 3\n",
        )
        .unwrap();
        assert_eq!(
            config.redis.masked_url().as_deref(),
            Some("redis://:***@cache.internal:6380/2")
        );
        assert_eq!(config.redis.instances, 3);
        let debug = format!("{config:?}");
        assert!(
            debug.contains("redis://:***@cache.internal:6380/2"),
            "{debug}"
        );
        assert!(!debug.contains("pw@"), "{debug}");
        Config::parse_str("[redis]\nurl = \"unix:///run/redis/redis.sock\"\n").unwrap();
    }

    #[test]
    fn each_invalid_key_is_named() {
        let message = refused("[redis]\nurl = \"http://:hunter2@cache:6379\"\n");
        assert_eq!(
            message,
            "invalid config: redis.url must start with redis://, rediss:// or unix://, got \
             `http://:***@cache:6379`"
        );
        let message = refused("[redis]\nurl = \"redis://:hunter2@cache:port\"\n");
        assert!(message.contains("redis.url"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let message = refused("[redis]\nurl = \"redis://:hunter2@cache/notadb\"\n");
        assert!(message.contains("not a usable Redis URL"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(refused("[redis]\nurl = \"cache:6379\"\n").contains("redis.url"));
        assert!(refused("[redis]\nkey_prefix = \"\"\n").contains("redis.key_prefix"));
        assert!(refused("[redis]\nkey_prefix = \"a b\"\n").contains("redis.key_prefix"));
        assert!(refused("[redis]\nkey_prefix = \"{t}\"\n").contains("redis.key_prefix"));
        assert!(refused("[redis]\ntimeout_ms = 0\n").contains("redis.timeout_ms"));
        assert!(refused("[redis]\ntimeout_ms = 60000\n").contains("redis.timeout_ms"));
        assert!(refused("[redis]\ninstances = 0\n").contains("redis.instances must be"));
        assert!(refused("[redis]\nhost = \"x\"\n").contains("unknown field `host`"));
    }
}
