//! Rate limits and quotas in Redis, exact across instances.
//!
//! Each user has, under `[redis] key_prefix` (default `tandem:`):
//!
//! - `limits:{USER}:hour:<start>`, `limits:{USER}:day:<start>` and
//!   `limits:{USER}:tokens:<start>`: the requests of the UTC hour and day starting at the
//!   Unix time `<start>`, and the day's tokens. They expire an hour after their window
//!   ends (late settles still find them; nothing reads them after that).
//! - `limits:{USER}:burst`: the burst limit's theoretical arrival time (GCRA), in Unix
//!   milliseconds, expiring when it is in the past.
//!
//! The braces are a Redis Cluster hash tag: a user's keys share a slot, as a script's keys
//! must. One script ([`ADMIT`]) checks the limits in the local limiter's order (hour,
//! day, tokens, burst) and counts the request only when all pass, atomically: N requests
//! against a remaining quota of k admit exactly k whatever the number of instances. A
//! missing day key means the counters are unknown (a new day, or Redis restarted and kept
//! nothing); the script then says so, the caller reads the usage records and calls again
//! with them, and the script sets each counter only where none exists (`SET NX`), so
//! instances seeding at once cannot count a user twice.
//!
//! Window boundaries and the GCRA use the instance's clock (`now`), as the in-memory
//! limiter does; instances are expected to keep time (NTP), and skew of a few
//! milliseconds only moves a burst decision by as much.

use std::future::Future;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisResult, Script};
use chrono::{DateTime, TimeDelta, Utc};

use super::{window_starts, Limit, QuotaStatus, Receipt, Rejection, Seed};
use crate::tiers::TierPolicy;

/// How long counters outlive their window, in seconds: time for late settles and refunds.
const EXPIRY_GRACE_SECS: i64 = 3600;
/// Least time a connection attempt gets, whatever `timeout_ms`: a TLS handshake may need
/// more than one call's timeout, and the attempt goes on while requests use the fallback.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Checks a request against every limit and counts it when all pass. The outcome is
/// `{0}` admitted, `{1, limit, retry_after_ms}` refused (limit 1 hour, 2 day, 3 tokens,
/// 4 burst), `{2}` unknown counters; each followed by the hour's, the day's requests and
/// the day's tokens as they stand.
///
/// KEYS: hour requests, day requests, day tokens, burst arrival time.
/// ARGV: now (Unix ms), requests per hour, per day, tokens per day, tokens to reserve,
/// burst per minute (0: none), seconds the hour's and the day's keys live, seed given
/// (1 or 0), seed hour requests, day requests, day tokens.
const ADMIT: &str = r"
local now = tonumber(ARGV[1])
local hour_ttl = tonumber(ARGV[7])
local day_ttl = tonumber(ARGV[8])
if redis.call('EXISTS', KEYS[2]) == 0 then
  if ARGV[9] ~= '1' then
    return {2, 0, 0, 0, 0, 0}
  end
  redis.call('SET', KEYS[2], ARGV[11], 'NX', 'EX', day_ttl)
  redis.call('SET', KEYS[3], ARGV[12], 'NX', 'EX', day_ttl)
  redis.call('SET', KEYS[1], ARGV[10], 'NX', 'EX', hour_ttl)
end
local hour_used = tonumber(redis.call('GET', KEYS[1]) or '0')
local day_used = tonumber(redis.call('GET', KEYS[2]) or '0')
local tokens_used = tonumber(redis.call('GET', KEYS[3]) or '0')
local function refuse(limit, retry_ms)
  return {1, limit, retry_ms, hour_used, day_used, tokens_used}
end
if hour_used >= tonumber(ARGV[2]) then return refuse(1, 0) end
if day_used >= tonumber(ARGV[3]) then return refuse(2, 0) end
local tokens = tonumber(ARGV[5])
if tonumber(ARGV[4]) - tokens_used < math.max(tokens, 1) then return refuse(3, 0) end
local burst = tonumber(ARGV[6])
if burst > 0 then
  local interval = 60000 / burst
  local tat = tonumber(redis.call('GET', KEYS[4]) or '0')
  if tat < now then tat = now end
  local allowed_at = tat - interval * (burst - 1)
  if allowed_at > now then return refuse(4, math.ceil(allowed_at - now)) end
  local next_tat = tat + interval
  redis.call('SET', KEYS[4], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now))
end
hour_used = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], hour_ttl)
day_used = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], day_ttl)
tokens_used = redis.call('INCRBY', KEYS[3], tokens)
redis.call('EXPIRE', KEYS[3], day_ttl)
return {0, 0, 0, hour_used, day_used, tokens_used}
";

/// Replaces a request's reserved tokens with those it used, never below 0; a counter that
/// is gone (expired, Redis restarted) is left alone. The expiry is kept (INCRBY).
///
/// KEYS: day tokens. ARGV: tokens reserved, tokens used.
const SETTLE: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
current = tonumber(current)
local settled = math.max(current - tonumber(ARGV[1]), 0) + tonumber(ARGV[2])
redis.call('INCRBY', KEYS[1], settled - current)
return 1
";

/// Takes back one request and its reserved tokens, never below 0, from counters that
/// still exist.
///
/// KEYS: hour requests, day requests, day tokens. ARGV: tokens reserved.
const REFUND: &str = r"
local amounts = {1, 1, tonumber(ARGV[1])}
for i = 1, 3 do
  local current = redis.call('GET', KEYS[i])
  if current then
    local take = math.min(tonumber(current), amounts[i])
    if take > 0 then redis.call('DECRBY', KEYS[i], take) end
  end
end
return 1
";

/// `[redis] url` cannot be used (it passed validation, so only a configuration built in
/// code gets here).
#[derive(Debug, thiserror::Error)]
#[error("redis.url `{url}` cannot be used: {source}")]
pub struct RedisSetupError {
    /// The URL, password masked.
    url: String,
    source: ::redis::RedisError,
}

/// Why a Redis call gave no decision. None of these holds the URL, so none the password.
#[derive(Debug, thiserror::Error)]
pub(super) enum StoreError {
    /// No answer within `[redis] timeout_ms`.
    #[error("no answer within {0} ms (redis.timeout_ms)")]
    Timeout(u64),
    /// The connection or the command failed.
    #[error("{0}")]
    Redis(#[from] ::redis::RedisError),
    /// The script answered something this server does not understand.
    #[error("unexpected answer from the rate-limit script: {0}")]
    Unexpected(String),
    /// The counters were gone right after the script seeded them (evicted at once?).
    #[error("the user's counters were missing even after seeding them")]
    StillUnseeded,
}

/// What Redis decided about one request.
#[derive(Debug)]
pub(super) enum Decision {
    Admitted(QuotaStatus),
    Refused(Box<Rejection>),
    /// The user's counters for this day are unknown: seed them and ask again.
    Unseeded,
}

/// The keys of one user's counters for the windows of one moment.
struct Keys {
    hour: String,
    day: String,
    tokens: String,
    burst: String,
}

/// The limits in Redis (see the module documentation).
pub(super) struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    admit: Script,
    settle: Script,
    refund: Script,
}

impl RedisStore {
    /// A store for the Redis at `url` that connects on first use, and reconnects by itself
    /// after losing the connection. Needs a Tokio runtime.
    pub(super) fn connect_lazily(
        url: &str,
        prefix: &str,
        timeout_ms: u64,
    ) -> Result<RedisStore, RedisSetupError> {
        let setup_error = |source| RedisSetupError {
            url: crate::config::layers::mask_url_password(url).unwrap_or_else(|| url.to_owned()),
            source,
        };
        let timeout = Duration::from_millis(timeout_ms);
        let client = Client::open(url).map_err(setup_error)?;
        // Few retries inside the client: while Redis is down the fallback serves, and every
        // call after `RETRY_INTERVAL` starts a new attempt anyway.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(MIN_CONNECT_TIMEOUT)))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(setup_error)?;
        Ok(RedisStore {
            connection,
            prefix: prefix.to_owned(),
            timeout,
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
            refund: Script::new(REFUND),
        })
    }

    fn keys(&self, user_id: &str, at: DateTime<Utc>) -> Keys {
        let (hour, day) = window_starts(at);
        let user = format!("{}limits:{{{user_id}}}", self.prefix);
        Keys {
            hour: format!("{user}:hour:{}", hour.timestamp()),
            day: format!("{user}:day:{}", day.timestamp()),
            tokens: format!("{user}:tokens:{}", day.timestamp()),
            burst: format!("{user}:burst"),
        }
    }

    /// Runs one call with the timeout.
    async fn call<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError::Timeout(self.timeout.as_millis() as u64)),
        }
    }

    /// Admits one request of `user_id` on `policy` reserving `tokens`, refuses it, or says
    /// the counters are unknown (only without `seed`).
    pub(super) async fn admit(
        &self,
        user_id: &str,
        policy: &TierPolicy,
        tokens: u64,
        now: DateTime<Utc>,
        seed: Option<&Seed>,
    ) -> Result<Decision, StoreError> {
        let keys = self.keys(user_id, now);
        let (hour, day) = window_starts(now);
        // Relative lifetimes, so a key lives as long whatever Redis's own clock says.
        let ttl = |window_end: DateTime<Utc>| (window_end - now).num_seconds() + EXPIRY_GRACE_SECS;
        let seed = seed.copied();
        let mut invocation = self.admit.key(&keys.hour);
        invocation
            .key(&keys.day)
            .key(&keys.tokens)
            .key(&keys.burst)
            .arg(now.timestamp_millis())
            .arg(policy.requests_per_hour)
            .arg(policy.requests_per_day)
            .arg(policy.tokens_per_day)
            .arg(tokens)
            .arg(policy.burst_per_minute)
            .arg(ttl(hour + TimeDelta::hours(1)))
            .arg(ttl(day + TimeDelta::days(1)))
            .arg(u8::from(seed.is_some()))
            .arg(seed.unwrap_or_default().hour_requests)
            .arg(seed.unwrap_or_default().day_requests)
            .arg(seed.unwrap_or_default().day_tokens);
        let mut connection = self.connection.clone();
        let reply: Vec<i64> = self.call(invocation.invoke_async(&mut connection)).await?;
        let &[outcome, limit, retry_after_ms, hour_used, day_used, tokens_used] = &reply[..] else {
            return Err(StoreError::Unexpected(format!("{reply:?}")));
        };
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        let status = QuotaStatus::new(
            policy,
            now,
            count(hour_used),
            count(day_used),
            count(tokens_used),
        );
        let decision = match (outcome, limit) {
            (0, _) => Decision::Admitted(status),
            (1, 1) => Decision::Refused(Rejection::quota(
                Limit::RequestsPerHour,
                status.hour,
                status,
                now,
            )),
            (1, 2) => Decision::Refused(Rejection::quota(
                Limit::RequestsPerDay,
                status.day,
                status,
                now,
            )),
            (1, 3) => Decision::Refused(Rejection::quota(
                Limit::TokensPerDay,
                status.tokens,
                status,
                now,
            )),
            (1, 4) => {
                let retry_after_secs = count(retry_after_ms).div_ceil(1000).max(1);
                Decision::Refused(Rejection::burst(policy, retry_after_secs, status, now))
            }
            (2, _) => Decision::Unseeded,
            _ => return Err(StoreError::Unexpected(format!("{reply:?}"))),
        };
        Ok(decision)
    }

    /// Settles the tokens of the request `receipt` admitted, in its day's counter.
    pub(super) async fn settle(
        &self,
        user_id: &str,
        receipt: &Receipt,
        used: u64,
    ) -> Result<(), StoreError> {
        let keys = self.keys(user_id, receipt.admitted_at);
        let mut invocation = self.settle.key(&keys.tokens);
        invocation.arg(receipt.reserved).arg(used);
        let mut connection = self.connection.clone();
        self.call(invocation.invoke_async::<i64>(&mut connection))
            .await?;
        Ok(())
    }

    /// Takes back the request `receipt` admitted from its hour's and day's counters.
    pub(super) async fn refund(&self, user_id: &str, receipt: &Receipt) -> Result<(), StoreError> {
        let keys = self.keys(user_id, receipt.admitted_at);
        let mut invocation = self.refund.key(&keys.hour);
        invocation
            .key(&keys.day)
            .key(&keys.tokens)
            .arg(receipt.reserved);
        let mut connection = self.connection.clone();
        self.call(invocation.invoke_async::<i64>(&mut connection))
            .await?;
        Ok(())
    }

    /// A user's quotas without counting anything (0 used for counters not there yet).
    pub(super) async fn status(
        &self,
        user_id: &str,
        policy: &TierPolicy,
        now: DateTime<Utc>,
    ) -> Result<QuotaStatus, StoreError> {
        let keys = self.keys(user_id, now);
        let mut connection = self.connection.clone();
        let counts: Vec<Option<u64>> = self
            .call(
                ::redis::cmd("MGET")
                    .arg(&keys.hour)
                    .arg(&keys.day)
                    .arg(&keys.tokens)
                    .query_async(&mut connection),
            )
            .await?;
        let &[hour, day, tokens] = &counts[..] else {
            return Err(StoreError::Unexpected(format!("{counts:?}")));
        };
        Ok(QuotaStatus::new(
            policy,
            now,
            hour.unwrap_or(0),
            day.unwrap_or(0),
            tokens.unwrap_or(0),
        ))
    }

    /// Whether Redis answers a PING within the timeout.
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: String = self
            .call(::redis::cmd("PING").query_async(&mut connection))
            .await?;
        Ok(())
    }
}
