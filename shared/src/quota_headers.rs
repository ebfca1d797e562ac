//! The quota an answer leaves, as the cloud writes it into response headers and clients
//! read it back: the IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers) for
//! the request quotas, and Tandem's own for the token budget, which that draft has no
//! unit for.
//!
//! ```text
//! RateLimit-Policy: "hour";q=500;w=3600, "day";q=2000;w=86400
//! RateLimit: "hour";r=499;t=1830, "day";r=1999;t=48630
//! Tandem-Tokens-Limit: 8000000
//! Tandem-Tokens-Remaining: 7999100
//! Tandem-Tokens-Reset: 48630
//! ```

/// Header names, lower case as HTTP/2 sends them.
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
pub const RATELIMIT: &str = "ratelimit";
pub const TOKENS_LIMIT: &str = "tandem-tokens-limit";
pub const TOKENS_REMAINING: &str = "tandem-tokens-remaining";
pub const TOKENS_RESET: &str = "tandem-tokens-reset";

/// One request quota window as an answer's headers report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowReading {
    /// The policy's name: `hour` or `day`.
    pub name: String,
    /// Requests the window allows, from `RateLimit-Policy` (`None` when that header is
    /// missing or does not name the window).
    pub limit: Option<u64>,
    /// Requests left in the window.
    pub remaining: u64,
    /// Seconds until the window starts over.
    pub resets_in_secs: u64,
}

/// The token budget as an answer's headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokensReading {
    pub limit: u64,
    pub remaining: u64,
    pub resets_in_secs: u64,
}

/// Reads the request windows from the `RateLimit` header and, for their limits, the
/// `RateLimit-Policy` header. Items that do not parse are skipped: a header from a newer
/// cloud (or a proxy) never makes the whole reading fail.
pub fn parse_request_windows(policy: Option<&str>, ratelimit: &str) -> Vec<WindowReading> {
    let limits: Vec<(String, u64)> = policy
        .map(|policy| {
            items(policy)
                .filter_map(|(name, parameters)| Some((name, parameter(&parameters, "q")?)))
                .collect()
        })
        .unwrap_or_default();
    items(ratelimit)
        .filter_map(|(name, parameters)| {
            let remaining = parameter(&parameters, "r")?;
            let resets_in_secs = parameter(&parameters, "t")?;
            let limit = limits
                .iter()
                .find(|(policy_name, _)| *policy_name == name)
                .map(|(_, limit)| *limit);
            Some(WindowReading {
                name,
                limit,
                remaining,
                resets_in_secs,
            })
        })
        .collect()
}

/// Reads the token budget from the three `Tandem-Tokens-*` header values.
pub fn parse_tokens(limit: &str, remaining: &str, reset: &str) -> Option<TokensReading> {
    Some(TokensReading {
        limit: limit.trim().parse().ok()?,
        remaining: remaining.trim().parse().ok()?,
        resets_in_secs: reset.trim().parse().ok()?,
    })
}

/// The members of a structured-field list whose items are quoted strings with
/// parameters: `"hour";r=499;t=1830, "day";r=1999;t=48630`.
fn items(value: &str) -> impl Iterator<Item = (String, Vec<(String, String)>)> + '_ {
    value.split(',').filter_map(|item| {
        let mut parts = item.trim().split(';');
        let name = parts.next()?.trim();
        let name = name.strip_prefix('"')?.strip_suffix('"')?.to_owned();
        let parameters = parts
            .filter_map(|part| {
                let (key, value) = part.trim().split_once('=')?;
                Some((key.trim().to_owned(), value.trim().to_owned()))
            })
            .collect();
        Some((name, parameters))
    })
}

fn parameter(parameters: &[(String, String)], key: &str) -> Option<u64> {
    parameters
        .iter()
        .find(|(name, _)| name == key)
        .and_then(|(_, value)| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_windows_are_read_with_their_limits() {
        let windows = parse_request_windows(
            Some("\"hour\";q=500;w=3600, \"day\";q=2000;w=86400"),
            "\"hour\";r=499;t=1830, \"day\";r=1999;t=48630",
        );
        assert_eq!(
            windows,
            [
                WindowReading {
                    name: "hour".into(),
                    limit: Some(500),
                    remaining: 499,
                    resets_in_secs: 1830,
                },
                WindowReading {
                    name: "day".into(),
                    limit: Some(2000),
                    remaining: 1999,
                    resets_in_secs: 48630,
                },
            ]
        );
    }

    #[test]
    fn without_a_policy_the_limits_are_unknown() {
        let windows = parse_request_windows(None, "\"day\";r=3;t=60");
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0].limit, None);
        assert_eq!(windows[0].remaining, 3);
    }

    #[test]
    fn items_that_do_not_parse_are_skipped() {
        let windows = parse_request_windows(
            Some("garbage"),
            "hour;r=1;t=2, \"day\";r=x;t=2, \"day\";r=5;t=9, \"week\";t=1",
        );
        assert_eq!(windows.len(), 1);
        assert_eq!((windows[0].name.as_str(), windows[0].remaining), ("day", 5));
    }

    #[test]
    fn the_token_budget_needs_all_three_numbers() {
        assert_eq!(
            parse_tokens("8000000", " 7999100", "48630"),
            Some(TokensReading {
                limit: 8_000_000,
                remaining: 7_999_100,
                resets_in_secs: 48_630,
            })
        );
        assert_eq!(parse_tokens("8000000", "-1", "48630"), None);
    }
}
