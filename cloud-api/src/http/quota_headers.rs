//! The quota a response leaves, in headers; the format is described (and read back) in
//! [`tandem_shared::quota_headers`].

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Utc};

use crate::rate_limit::QuotaStatus;

use tandem_shared::quota_headers as names;

pub(crate) const RATELIMIT_POLICY: HeaderName = HeaderName::from_static(names::RATELIMIT_POLICY);
pub(crate) const RATELIMIT: HeaderName = HeaderName::from_static(names::RATELIMIT);
pub(crate) const TOKENS_LIMIT: HeaderName = HeaderName::from_static(names::TOKENS_LIMIT);
pub(crate) const TOKENS_REMAINING: HeaderName = HeaderName::from_static(names::TOKENS_REMAINING);
pub(crate) const TOKENS_RESET: HeaderName = HeaderName::from_static(names::TOKENS_RESET);

/// Adds the headers for `status` as of `now`.
pub(crate) fn insert(headers: &mut HeaderMap, status: &QuotaStatus, now: DateTime<Utc>) {
    let policy = format!(
        "\"hour\";q={};w=3600, \"day\";q={};w=86400",
        status.hour.limit, status.day.limit
    );
    let remaining = format!(
        "\"hour\";r={};t={}, \"day\";r={};t={}",
        status.hour.remaining(),
        status.hour.resets_in_secs(now),
        status.day.remaining(),
        status.day.resets_in_secs(now)
    );
    let values = [
        (RATELIMIT_POLICY, policy),
        (RATELIMIT, remaining),
        (TOKENS_LIMIT, status.tokens.limit.to_string()),
        (TOKENS_REMAINING, status.tokens.remaining().to_string()),
        (TOKENS_RESET, status.tokens.resets_in_secs(now).to_string()),
    ];
    for (name, value) in values {
        // Digits, quotes, letters and separators only: always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::Window;

    /// The headers of an answer at 10:29:30 after 1 request this hour, 10 today and
    /// 900 tokens.
    fn example_headers() -> HeaderMap {
        let now: DateTime<Utc> = "2026-12-03T10:29:30Z".parse().unwrap();
        let window = |limit, used, resets: &str| Window {
            limit,
            used,
            resets_at: resets.parse().unwrap(),
        };
        let status = QuotaStatus {
            hour: window(500, 1, "2026-12-03T11:00:00Z"),
            day: window(2000, 10, "2026-12-04T00:00:00Z"),
            tokens: window(8_000_000, 900, "2026-12-04T00:00:00Z"),
        };
        let mut headers = HeaderMap::new();
        insert(&mut headers, &status, now);
        headers
    }

    #[test]
    fn headers_follow_the_draft_syntax() {
        let headers = example_headers();
        assert_eq!(
            headers["ratelimit-policy"],
            "\"hour\";q=500;w=3600, \"day\";q=2000;w=86400"
        );
        assert_eq!(
            headers["ratelimit"],
            "\"hour\";r=499;t=1830, \"day\";r=1990;t=48630"
        );
        assert_eq!(headers["tandem-tokens-remaining"], "7999100");
        assert_eq!(headers["tandem-tokens-reset"], "48630");
    }

    /// The language server reads these headers with the shared parser: what the cloud
    /// writes must read back as the same numbers.
    #[test]
    fn the_shared_parser_reads_what_the_cloud_writes() {
        use tandem_shared::quota_headers::{parse_request_windows, parse_tokens};
        let headers = example_headers();
        let text = |name: &str| headers[name].to_str().unwrap();
        let windows = parse_request_windows(Some(text("ratelimit-policy")), text("ratelimit"));
        let read: Vec<_> = windows
            .iter()
            .map(|window| (window.name.as_str(), window.limit, window.remaining))
            .collect();
        assert_eq!(read, [("hour", Some(500), 499), ("day", Some(2000), 1990)]);
        let tokens = parse_tokens(
            text("tandem-tokens-limit"),
            text("tandem-tokens-remaining"),
            text("tandem-tokens-reset"),
        )
        .unwrap();
        assert_eq!((tokens.limit, tokens.remaining), (8_000_000, 7_999_100));
    }
}
