//! `[http]` (what the server accepts and how it answers: CORS, hosts, proxies, header
//! size, stream and shutdown timeouts, compression, HSTS) and `[logging]` (log format).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::Deserialize;
use url::Url;

use super::ConfigError;

/// Default cap on the request headers taken together: 16 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default time an event stream (`"stream": true`) may stay open, in milliseconds.
pub const DEFAULT_STREAM_TIMEOUT_MS: u64 = 300_000;
/// Default time in-flight requests and streams get to finish after SIGTERM, in ms.
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 30_000;

/// `[http]`: what the server accepts from the network and how it answers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Origins browsers may call the API from (CORS), exactly as a browser sends them in
    /// `Origin`: `scheme://host[:port]`, e.g. `https://tandem.example.com` or an editor
    /// webview's `vscode-webview://…`. Only methods GET, POST, PUT and DELETE and headers
    /// `Authorization`, `Content-Type` and `X-Request-Id` are allowed. Default empty: no
    /// CORS headers at all, so browsers refuse every cross-origin call.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Host names this server answers for (the `Host` header, port ignored), e.g.
    /// `["tandem.example.com"]`; `.example.com` also matches every subdomain. Requests for
    /// other hosts get 400, which stops DNS-rebinding attacks on a server bound to a
    /// private address. `GET /health` answers whatever the host, for probes. Default
    /// empty: any host.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed, as IP addresses or CIDR
    /// blocks (`10.0.0.0/8`, `::1`). When the TCP peer is one of them the client address
    /// (per-address limits, the audit log) is the right-most address of
    /// `X-Forwarded-For` that is not itself a trusted proxy; otherwise it is the peer and
    /// the header is ignored. Default empty: the header is never believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Largest total size of a request's headers in bytes (names, values and separators);
    /// bigger requests get 431. Default 16384.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Longest an event stream (`"stream": true` on `/v1/completions` and `/v1/chat`) may
    /// stay open, in milliseconds, counted from the request's arrival; the stream then
    /// ends with an `error` event. Other requests keep `limits.request_timeout_ms`, which
    /// also bounds the wait for a stream's first event. Default 300000.
    #[serde(default = "default_stream_timeout_ms")]
    pub stream_timeout_ms: u64,
    /// After SIGTERM or Ctrl-C, how long requests and streams in flight get to finish, in
    /// milliseconds; streams still open then are ended (and recorded) and the server
    /// stops. Default 30000.
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    /// Gzip answers of 1 KiB and more when the client accepts it. Event streams are never
    /// compressed (it would hold events back). Default true.
    #[serde(default = "default_true")]
    pub compression: bool,
    /// Send `Strict-Transport-Security` (one year), telling browsers to use only HTTPS.
    /// Default: on when `auth.public_url` starts with `https://`, off otherwise.
    #[serde(default)]
    pub hsts: Option<bool>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            stream_timeout_ms: DEFAULT_STREAM_TIMEOUT_MS,
            shutdown_timeout_ms: DEFAULT_SHUTDOWN_TIMEOUT_MS,
            compression: true,
            hsts: None,
        }
    }
}

fn default_max_header_bytes() -> usize {
    DEFAULT_MAX_HEADER_BYTES
}

fn default_stream_timeout_ms() -> u64 {
    DEFAULT_STREAM_TIMEOUT_MS
}

fn default_shutdown_timeout_ms() -> u64 {
    DEFAULT_SHUTDOWN_TIMEOUT_MS
}

fn default_true() -> bool {
    true
}

impl HttpConfig {
    /// Checks every origin, host and proxy entry and the limits; errors name the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        for (index, origin) in self.cors_origins.iter().enumerate() {
            if let Err(reason) = check_origin(origin) {
                return invalid(format!(
                    "http.cors_origins[{index}]: `{origin}` is not an origin: {reason}"
                ));
            }
        }
        for (index, host) in self.allowed_hosts.iter().enumerate() {
            if let Err(reason) = check_host_pattern(host) {
                return invalid(format!(
                    "http.allowed_hosts[{index}]: `{host}` is not a host name: {reason}"
                ));
            }
        }
        for (index, proxy) in self.trusted_proxies.iter().enumerate() {
            if let Err(reason) = IpNetwork::from_str(proxy) {
                return invalid(format!(
                    "http.trusted_proxies[{index}]: `{proxy}` is not an IP address or CIDR \
                     block: {reason}"
                ));
            }
        }
        let durations = [
            ("max_header_bytes", self.max_header_bytes as u64),
            ("stream_timeout_ms", self.stream_timeout_ms),
            ("shutdown_timeout_ms", self.shutdown_timeout_ms),
        ];
        for (key, value) in durations {
            if value == 0 {
                return invalid(format!("http.{key} must be at least 1"));
            }
        }
        Ok(())
    }

    /// Whether to send HSTS: the setting, or whether `public_url` is HTTPS.
    pub fn hsts_enabled(&self, public_url: Option<&str>) -> bool {
        self.hsts.unwrap_or_else(|| {
            public_url.is_some_and(|url| {
                url.get(..8)
                    .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
            })
        })
    }

    /// The CORS origins as browsers send them: without a trailing slash.
    pub fn cors_origins(&self) -> impl Iterator<Item = &str> {
        self.cors_origins
            .iter()
            .map(|origin| origin.trim().trim_end_matches('/'))
    }

    /// The trusted proxies, parsed. Entries were checked by `validate`; one that does not
    /// parse (a config built in code) is left out.
    pub fn trusted_proxy_networks(&self) -> Vec<IpNetwork> {
        self.trusted_proxies
            .iter()
            .filter_map(|proxy| IpNetwork::from_str(proxy).ok())
            .collect()
    }
}

/// `scheme://host[:port]` and nothing else: what a browser sends as `Origin`.
fn check_origin(origin: &str) -> Result<(), String> {
    let trimmed = origin.trim().trim_end_matches('/');
    if trimmed == "*" || trimmed == "null" {
        return Err("list each origin; `*` and `null` would let any page in".to_owned());
    }
    let url = Url::parse(trimmed).map_err(|error| error.to_string())?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it must not contain credentials".to_owned());
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err("it must not have a path, query or fragment".to_owned());
    }
    Ok(())
}

/// A host name or IP address, optionally with a leading `.` for subdomains, or `*`.
fn check_host_pattern(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let name = pattern.strip_prefix('.').unwrap_or(pattern);
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid {
        return Err("give the name alone, without scheme, port or path".to_owned());
    }
    Ok(())
}

/// An IP address or CIDR block (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Whether `ip` is in this block. An IPv4 address written as IPv6 (`::ffff:a.b.c.d`)
    /// counts as the IPv4 address, as dual-stack sockets report IPv4 peers that way.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<IpNetwork, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("`{address}` is not an IP address"))?;
        let address = address.to_canonical();
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(prefix) if prefix <= bits => prefix,
                _ => return Err(format!("the prefix length must be 0 to {bits}")),
            },
        };
        Ok(IpNetwork { address, prefix })
    }
}

/// Parses one `X-Forwarded-For` entry: an IP address, possibly with a port
/// (`192.0.2.1:5000`, `[2001:db8::1]:80`) as some proxies write it.
pub fn parse_forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .map(|ip| ip.to_canonical())
}

/// `[logging]`: how log lines are written (to stderr).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `auto` (default: human-readable text when stderr is a terminal, JSON lines
    /// otherwise), `json` (one JSON object a line, for log collectors) or `text`. The
    /// `TANDEM_LOG_FORMAT` environment variable, read first, wins over this key; which
    /// lines are written is `TANDEM_LOG` (default `info`).
    #[serde(default)]
    pub format: LogFormat,
}

/// `logging.format`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<LogFormat, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!(
                "unknown log format `{other}` (expected auto, json or text)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    use crate::config::test_support::check_invalid;

    #[test]
    fn defaults_are_off_but_safe() {
        let config = Config::parse_str("").unwrap();
        assert_eq!(config.http, HttpConfig::default());
        assert_eq!(config.http.max_header_bytes, 16 * 1024);
        assert_eq!(config.http.stream_timeout_ms, 300_000);
        assert_eq!(config.http.shutdown_timeout_ms, 30_000);
        assert!(config.http.compression);
        assert_eq!(config.logging.format, LogFormat::Auto);
    }

    #[test]
    fn every_key_parses() {
        let config = Config::parse_str(
            r#"
            [http]
            cors_origins = ["https://tandem.example.com/", "vscode-webview://abc123"]
            allowed_hosts = ["tandem.example.com", ".internal.example", "127.0.0.1"]
            trusted_proxies = ["10.0.0.0/8", "::1", "192.0.2.7"]
            max_header_bytes = 8192
            stream_timeout_ms = 1000
            shutdown_timeout_ms = 2000
            compression = false
            hsts = true
            [logging]
            format = "json"
            "#,
        )
        .unwrap();
        let origins: Vec<&str> = config.http.cors_origins().collect();
        assert_eq!(
            origins,
            ["https://tandem.example.com", "vscode-webview://abc123"]
        );
        assert_eq!(config.http.trusted_proxy_networks().len(), 3);
        assert!(config.http.hsts_enabled(None));
        assert_eq!(config.logging.format, LogFormat::Json);
    }

    #[test]
    fn bad_entries_are_refused_naming_the_key() {
        check_invalid(
            "[http]\ncors_origins = [\"tandem.example.com\"]",
            "http.cors_origins[0]: `tandem.example.com` is not an origin",
        );
        check_invalid(
            "[http]\ncors_origins = [\"https://a.example\", \"https://b.example/app\"]",
            "http.cors_origins[1]: `https://b.example/app` is not an origin: it must not have a path",
        );
        check_invalid("[http]\ncors_origins = [\"*\"]", "list each origin");
        check_invalid(
            "[http]\nallowed_hosts = [\"https://tandem.example.com\"]",
            "http.allowed_hosts[0]: `https://tandem.example.com` is not a host name",
        );
        check_invalid(
            "[http]\ntrusted_proxies = [\"10.0.0.0/33\"]",
            "http.trusted_proxies[0]: `10.0.0.0/33` is not an IP address or CIDR block: the \
             prefix length must be 0 to 32",
        );
        check_invalid(
            "[http]\ntrusted_proxies = [\"proxy.internal\"]",
            "http.trusted_proxies[0]: `proxy.internal` is not an IP address",
        );
        check_invalid(
            "[http]\nmax_header_bytes = 0",
            "http.max_header_bytes must be at least 1",
        );
        check_invalid(
            "[http]\nstream_timeout_ms = 0",
            "http.stream_timeout_ms must be at least 1",
        );
        check_invalid("[http]\ncors = []", "unknown field `cors`");
        check_invalid("[logging]\nformat = \"xml\"", "unknown variant `xml`");
    }

    #[test]
    fn hsts_follows_the_public_url_unless_set() {
        let http = HttpConfig::default();
        assert!(http.hsts_enabled(Some("https://tandem.example.com")));
        assert!(http.hsts_enabled(Some("HTTPS://tandem.example.com")));
        assert!(!http.hsts_enabled(Some("http://localhost:8787")));
        assert!(!http.hsts_enabled(None));
        let off = HttpConfig {
            hsts: Some(false),
            ..HttpConfig::default()
        };
        assert!(!off.hsts_enabled(Some("https://tandem.example.com")));
    }

    #[test]
    fn networks_contain_their_addresses() {
        let network = |text: &str| IpNetwork::from_str(text).unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(network("10.0.0.0/8").contains(ip("10.200.1.2")));
        assert!(!network("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(network("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!network("192.0.2.7").contains(ip("192.0.2.8")));
        assert!(network("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(network("fd00::/8").contains(ip("fd12::1")));
        assert!(!network("fd00::/8").contains(ip("fe80::1")));
        assert!(network("::/0").contains(ip("2001:db8::1")));
        // Dual-stack sockets report IPv4 peers as IPv4-mapped IPv6 addresses.
        assert!(network("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(!network("10.0.0.0/8").contains(ip("fd00::1")));
    }

    #[test]
    fn forwarded_entries_may_carry_ports() {
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        assert_eq!(parse_forwarded_address(" 192.0.2.1 "), ip("192.0.2.1"));
        assert_eq!(parse_forwarded_address("192.0.2.1:5000"), ip("192.0.2.1"));
        assert_eq!(
            parse_forwarded_address("[2001:db8::1]:80"),
            ip("2001:db8::1")
        );
        assert_eq!(parse_forwarded_address("2001:db8::1"), ip("2001:db8::1"));
        assert_eq!(parse_forwarded_address("unknown"), None);
        assert_eq!(parse_forwarded_address(""), None);
    }

    #[test]
    fn log_formats_parse_from_the_environment() {
        assert_eq!("JSON".parse(), Ok(LogFormat::Json));
        assert_eq!(" text".parse(), Ok(LogFormat::Text));
        assert_eq!("auto".parse(), Ok(LogFormat::Auto));
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}
