//! The connection's state as an editor shows it (a status bar, `:TandemStatus`): signed
//! in or not, as whom, the tier, the quota left, whether a call is running, and what
//! went wrong last. Fed by the cloud client ([`CallObserver`]), `GET /v1/me` and sign-in;
//! read with `tandem/status` and pushed with `tandem/didChangeStatus`
//! (docs/editors/PROTOCOL.md).

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tandem_shared::quota_headers::{TokensReading, WindowReading};
use tandem_shared::{MeResponse, QuotaInfo};
use tokio::sync::watch;

use crate::cloud::{AnswerQuota, CallObserver, CloudError};
use crate::credentials::ApiKey;

/// What `tandem/status` answers and `tandem/didChangeStatus` carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub state: State,
    /// A call to the cloud is running.
    pub busy: bool,
    /// The cloud the server talks to.
    pub server: String,
    pub email: Option<String>,
    pub tier: Option<String>,
    /// The request quota closest to running out.
    pub quota: Option<RequestQuota>,
    /// The daily token budget.
    pub tokens: Option<Quota>,
    /// For any state but `ready`: one sentence for the user.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// No API key anywhere.
    SignedOut,
    /// A `tandem.signIn` waits for its code to be confirmed.
    SigningIn,
    /// A key is set and the last call (if any) worked.
    Ready,
    /// The cloud rejected the key.
    Unauthorized,
    /// A quota or rate limit was hit, or the feature is outside the tier.
    Limited,
    /// The cloud cannot be reached or answers with server errors.
    Offline,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestQuota {
    /// `hour` or `day`.
    pub window: String,
    #[serde(flatten)]
    pub quota: Quota,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// `None` when only the remainder is known (an answer without `RateLimit-Policy`).
    pub limit: Option<u64>,
    pub remaining: u64,
    /// RFC 3339, UTC.
    pub resets_at: String,
}

/// Keeps the status and publishes every change.
#[derive(Debug)]
pub struct StatusTracker {
    inner: Mutex<Inner>,
    published: watch::Sender<Status>,
}

/// Which credentials the account facts belong to: a new key or server forgets them.
type Identity = (String, Option<ApiKey>);

#[derive(Debug)]
struct Inner {
    identity: Identity,
    signing_in: bool,
    connection: Connection,
    email: Option<String>,
    tier: Option<String>,
    hour: Option<Window>,
    day: Option<Window>,
    tokens: Option<Window>,
    in_flight: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Connection {
    Ready,
    Unauthorized,
    Limited(String),
    Offline(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    limit: Option<u64>,
    remaining: u64,
    resets_at: DateTime<Utc>,
}

impl Window {
    fn quota(&self) -> Quota {
        Quota {
            limit: self.limit,
            remaining: self.remaining,
            resets_at: self.resets_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

impl Default for StatusTracker {
    fn default() -> Self {
        let inner = Inner {
            identity: (String::new(), None),
            signing_in: false,
            connection: Connection::Ready,
            email: None,
            tier: None,
            hour: None,
            day: None,
            tokens: None,
            in_flight: 0,
        };
        let (published, _) = watch::channel(inner.status());
        StatusTracker {
            inner: Mutex::new(inner),
            published,
        }
    }
}

impl StatusTracker {
    /// The status now.
    pub fn current(&self) -> Status {
        self.published.borrow().clone()
    }

    /// A receiver that sees every later change (the latest one, when several come at
    /// once).
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.published.subscribe()
    }

    /// Applies `change` and publishes the result if the status changed.
    fn update(&self, change: impl FnOnce(&mut Inner)) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut inner);
        let status = inner.status();
        // Published under the lock, so two updates cannot publish out of order.
        self.published.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }

    /// The credentials requests use now. Different ones forget what was known about the
    /// account and the last call.
    pub fn set_credentials(&self, server: &str, api_key: Option<&ApiKey>) {
        self.update(|inner| inner.set_identity((server.to_owned(), api_key.cloned())));
    }

    /// A sign-in started (`true`) or ended without a key (`false`).
    pub fn set_signing_in(&self, signing_in: bool) {
        self.update(|inner| inner.signing_in = signing_in);
    }

    /// A sign-in saved `api_key` for `server`, for `email`.
    pub fn signed_in(&self, server: &str, api_key: &ApiKey, email: &str) {
        self.update(|inner| {
            inner.set_identity((server.to_owned(), Some(api_key.clone())));
            inner.signing_in = false;
            inner.email = Some(email.to_owned());
        });
    }

    /// What `GET /v1/me` said, when it was asked with the credentials in use.
    pub fn record_me(&self, server: &str, api_key: &ApiKey, me: &MeResponse) {
        let now = Utc::now();
        self.update(|inner| {
            if inner.identity.0 != server || inner.identity.1.as_ref() != Some(api_key) {
                return;
            }
            inner.email = Some(me.user.email.clone());
            inner.tier = Some(me.tier.to_string());
            let read =
                |info: &Option<QuotaInfo>| info.as_ref().and_then(|info| window_of(info, now));
            inner.hour = read(&me.requests_this_hour).or(inner.hour.take());
            inner.day = read(&me.requests_today).or(inner.day.take());
            inner.tokens = read(&me.tokens_today).or(inner.tokens.take());
        });
    }
}

impl CallObserver for StatusTracker {
    fn call_started(&self) {
        self.update(|inner| inner.in_flight += 1);
    }

    fn call_ended(&self) {
        self.update(|inner| inner.in_flight = inner.in_flight.saturating_sub(1));
    }

    fn answered(&self, server: &str, result: Result<(), &CloudError>, quota: Option<&AnswerQuota>) {
        let now = Utc::now();
        self.update(|inner| {
            if inner.identity.0 != server {
                return; // An answer from before the server changed.
            }
            if let Some(quota) = quota {
                inner.record_quota(quota, now);
            }
            match result {
                Ok(()) => inner.connection = Connection::Ready,
                Err(error) => {
                    if let Some(connection) = connection_after(error) {
                        inner.connection = connection;
                    }
                }
            }
        });
    }
}

/// How a failed call changes the connection's state; `None` for failures that say
/// nothing about it (a request the cloud found malformed or too large).
fn connection_after(error: &CloudError) -> Option<Connection> {
    match error {
        CloudError::Unauthorized => Some(Connection::Unauthorized),
        CloudError::Server {
            status: 403 | 429,
            body,
        } => Some(Connection::Limited(body.error.message.clone())),
        CloudError::Server { status, .. } if *status >= 500 => {
            Some(Connection::Offline(error.to_string()))
        }
        CloudError::Unreachable { .. } | CloudError::Timeout(_) => {
            Some(Connection::Offline(error.to_string()))
        }
        CloudError::Server { .. } | CloudError::BadResponse(_) | CloudError::BackingOff(_) => None,
    }
}

fn window_of(info: &QuotaInfo, now: DateTime<Utc>) -> Option<Window> {
    let resets_at = DateTime::parse_from_rfc3339(&info.resets_at)
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or(now);
    Some(Window {
        limit: Some(info.limit),
        remaining: info.remaining,
        resets_at,
    })
}

impl Inner {
    fn set_identity(&mut self, identity: Identity) {
        if self.identity == identity {
            return;
        }
        self.identity = identity;
        self.connection = Connection::Ready;
        self.email = None;
        self.tier = None;
        self.hour = None;
        self.day = None;
        self.tokens = None;
    }

    fn record_quota(&mut self, quota: &AnswerQuota, now: DateTime<Utc>) {
        for reading in &quota.windows {
            let slot = match reading.name.as_str() {
                "hour" => &mut self.hour,
                "day" => &mut self.day,
                _ => continue,
            };
            *slot = Some(window_from_reading(reading, slot.as_ref(), now));
        }
        if let Some(tokens) = quota.tokens {
            self.tokens = Some(window_from_tokens(tokens, now));
        }
    }

    fn status(&self) -> Status {
        let (server, api_key) = &self.identity;
        let (state, message) = if self.signing_in {
            (
                State::SigningIn,
                Some("Waiting for the sign-in code to be confirmed in the browser.".to_owned()),
            )
        } else if api_key.is_none() {
            (
                State::SignedOut,
                Some("Not signed in: sign in, or set an API key.".to_owned()),
            )
        } else {
            match &self.connection {
                Connection::Ready => (State::Ready, None),
                Connection::Unauthorized => (
                    State::Unauthorized,
                    Some(format!("{server} rejected the API key: sign in again.")),
                ),
                Connection::Limited(message) => (State::Limited, Some(message.clone())),
                Connection::Offline(message) => (State::Offline, Some(message.clone())),
            }
        };
        let quota = [("hour", &self.hour), ("day", &self.day)]
            .into_iter()
            .filter_map(|(name, window)| Some((name, window.as_ref()?)))
            // The fewest left; on a tie the one that resets later keeps the user waiting.
            .min_by_key(|(_, window)| (window.remaining, std::cmp::Reverse(window.resets_at)))
            .map(|(name, window)| RequestQuota {
                window: name.to_owned(),
                quota: window.quota(),
            });
        Status {
            state,
            busy: self.in_flight > 0,
            server: server.clone(),
            email: self.email.clone(),
            tier: self.tier.clone(),
            quota,
            tokens: self.tokens.as_ref().map(Window::quota),
            message,
        }
    }
}

/// A window from an answer's headers; the limit is kept from before when the answer
/// did not repeat it.
fn window_from_reading(
    reading: &WindowReading,
    before: Option<&Window>,
    now: DateTime<Utc>,
) -> Window {
    Window {
        limit: reading.limit.or(before.and_then(|window| window.limit)),
        remaining: reading.remaining,
        resets_at: reset_time(now, reading.resets_in_secs),
    }
}

fn window_from_tokens(tokens: TokensReading, now: DateTime<Utc>) -> Window {
    Window {
        limit: Some(tokens.limit),
        remaining: tokens.remaining,
        resets_at: reset_time(now, tokens.resets_in_secs),
    }
}

/// `now + seconds`, to the second, so the same reset read twice is the same instant
/// (a status that did not change is not published again).
fn reset_time(now: DateTime<Utc>, seconds: u64) -> DateTime<Utc> {
    let seconds = i64::try_from(seconds).unwrap_or(i64::MAX).min(400 * 86_400);
    let at = now + chrono::Duration::seconds(seconds);
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use tandem_shared::{ErrorBody, Tier, UserInfo};

    use super::*;

    const SERVER: &str = "http://127.0.0.1:8787";

    fn key(text: &str) -> ApiKey {
        ApiKey::new(text).unwrap()
    }

    fn signed_in() -> StatusTracker {
        let tracker = StatusTracker::default();
        tracker.set_credentials(SERVER, Some(&key("tdm_one")));
        tracker
    }

    fn me(hour_left: u64, day_left: u64) -> MeResponse {
        let quota = |limit, remaining, resets_at: &str| QuotaInfo {
            limit,
            remaining,
            resets_at: resets_at.to_owned(),
        };
        MeResponse {
            user: UserInfo {
                id: "u1".into(),
                email: "ada@example.com".into(),
            },
            tier: Tier::pro(),
            max_context_tokens: Some(16_000),
            limits: None,
            requests_this_hour: Some(quota(500, hour_left, "2026-12-06T03:00:00Z")),
            requests_today: Some(quota(2000, day_left, "2026-12-07T00:00:00Z")),
            tokens_today: Some(quota(8_000_000, 7_000_000, "2026-12-07T00:00:00Z")),
        }
    }

    fn refused(status: u16, message: &str) -> CloudError {
        let body: ErrorBody = serde_json::from_value(serde_json::json!({
            "error": {"code": "quota_exceeded", "message": message}
        }))
        .unwrap();
        CloudError::Server {
            status,
            body: Box::new(body),
        }
    }

    #[test]
    fn without_a_key_the_status_is_signed_out_whatever_else_happened() {
        let tracker = StatusTracker::default();
        tracker.set_credentials(SERVER, None);
        tracker.answered(SERVER, Err(&CloudError::Unauthorized), None);
        let status = tracker.current();
        assert_eq!(status.state, State::SignedOut);
        assert!(status.message.is_some());
    }

    #[test]
    fn the_account_fills_in_and_the_quota_closest_to_running_out_is_shown() {
        let tracker = signed_in();
        tracker.record_me(SERVER, &key("tdm_one"), &me(400, 100));
        let status = tracker.current();
        assert_eq!(status.state, State::Ready);
        assert_eq!(status.email.as_deref(), Some("ada@example.com"));
        assert_eq!(status.tier.as_deref(), Some("pro"));
        let quota = status.quota.unwrap();
        assert_eq!((quota.window.as_str(), quota.quota.remaining), ("day", 100));
        assert_eq!(quota.quota.resets_at, "2026-12-07T00:00:00Z");
        assert_eq!(status.tokens.unwrap().remaining, 7_000_000);
    }

    #[test]
    fn an_account_read_with_other_credentials_is_ignored() {
        let tracker = signed_in();
        tracker.record_me(SERVER, &key("tdm_two"), &me(400, 100));
        tracker.record_me("http://elsewhere", &key("tdm_one"), &me(400, 100));
        assert_eq!(tracker.current().email, None);
    }

    #[test]
    fn new_credentials_forget_the_account_and_the_last_failure() {
        let tracker = signed_in();
        tracker.record_me(SERVER, &key("tdm_one"), &me(400, 100));
        tracker.answered(SERVER, Err(&CloudError::Unauthorized), None);
        assert_eq!(tracker.current().state, State::Unauthorized);
        tracker.set_credentials(SERVER, Some(&key("tdm_two")));
        let status = tracker.current();
        assert_eq!(status.state, State::Ready);
        assert_eq!((status.email, status.quota), (None, None));
    }

    #[test]
    fn answers_set_the_state_and_their_headers_the_quota() {
        let tracker = signed_in();
        tracker.record_me(SERVER, &key("tdm_one"), &me(400, 1000));
        let headers = AnswerQuota {
            windows: vec![WindowReading {
                name: "hour".into(),
                limit: None,
                remaining: 3,
                resets_in_secs: 60,
            }],
            tokens: None,
        };
        tracker.answered(
            SERVER,
            Err(&refused(429, "Hourly quota reached; resets at 03:00 UTC.")),
            Some(&headers),
        );
        let status = tracker.current();
        assert_eq!(status.state, State::Limited);
        assert_eq!(
            status.message.as_deref(),
            Some("Hourly quota reached; resets at 03:00 UTC.")
        );
        let quota = status.quota.unwrap();
        // The limit is kept from `/v1/me` when the answer did not repeat it.
        assert_eq!(
            (
                quota.window.as_str(),
                quota.quota.limit,
                quota.quota.remaining
            ),
            ("hour", Some(500), 3)
        );

        tracker.answered(SERVER, Ok(()), None);
        assert_eq!(tracker.current().state, State::Ready);
        tracker.answered(
            SERVER,
            Err(&CloudError::Unreachable {
                server: SERVER.into(),
                reason: "connection refused".into(),
            }),
            None,
        );
        let status = tracker.current();
        assert_eq!(status.state, State::Offline);
        assert!(status.message.unwrap().contains("connection refused"));
    }

    #[test]
    fn a_refusal_that_says_nothing_about_the_connection_keeps_the_state() {
        let tracker = signed_in();
        tracker.answered(SERVER, Err(&refused(422, "context too large")), None);
        assert_eq!(tracker.current().state, State::Ready);
    }

    #[test]
    fn busy_while_any_call_runs_and_signing_in_comes_first() {
        let tracker = signed_in();
        tracker.call_started();
        tracker.call_started();
        tracker.call_ended();
        assert!(tracker.current().busy);
        tracker.call_ended();
        tracker.call_ended(); // One too many never wraps around.
        assert!(!tracker.current().busy);

        tracker.set_signing_in(true);
        assert_eq!(tracker.current().state, State::SigningIn);
        tracker.signed_in(SERVER, &key("tdm_new"), "ada@example.com");
        let status = tracker.current();
        assert_eq!(status.state, State::Ready);
        assert_eq!(status.email.as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn only_changes_are_published() {
        let tracker = signed_in();
        let mut receiver = tracker.subscribe();
        receiver.borrow_and_update();
        tracker.answered(SERVER, Ok(()), None);
        assert!(!receiver.has_changed().unwrap());
        tracker.call_started();
        assert!(receiver.has_changed().unwrap());
    }

    #[test]
    fn the_wire_form_is_the_documented_one() {
        let tracker = signed_in();
        tracker.record_me(SERVER, &key("tdm_one"), &me(499, 1999));
        let json = serde_json::to_value(tracker.current()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "state": "ready",
                "busy": false,
                "server": SERVER,
                "email": "ada@example.com",
                "tier": "pro",
                "quota": {"window": "hour", "limit": 500, "remaining": 499, "resetsAt": "2026-12-06T03:00:00Z"},
                "tokens": {"limit": 8_000_000, "remaining": 7_000_000, "resetsAt": "2026-12-07T00:00:00Z"},
                "message": null,
            })
        );
    }
}
