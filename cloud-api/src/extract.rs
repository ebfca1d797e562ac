//! Extractors: the JSON body wrapper that reports errors in the API's shape, and
//! [`AuthUser`], the authenticated caller.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderName;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use tandem_shared::{Scope, API_KEY_PREFIX};

use crate::config::http::{parse_forwarded_address, IpNetwork};
use crate::db::api_keys;
use crate::db::users::User;
use crate::enterprise::{self, JWT_KEY_ID_PREFIX};
use crate::error::AppError;
use crate::keys::{self, KeyHash};
use crate::state::AppState;

/// `X-Forwarded-For`, which `http` has no constant for.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Field checks serde cannot express; a failure is a 422 with the returned message.
pub trait Validate {
    fn validate(&self) -> Result<(), String>;
}

/// A JSON body that parsed and passed [`Validate`]. Failures: 415 (not declared JSON),
/// 413 (too large), 400 (not JSON, or not the expected shape), 422 (invalid field).
#[derive(Debug, Clone)]
pub struct ValidJson<T>(pub T);

impl<T> FromRequest<AppState> for ValidJson<T>
where
    T: DeserializeOwned + Validate + Send,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, AppError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => {
                value.validate().map_err(AppError::InvalidRequest)?;
                Ok(ValidJson(value))
            }
            Err(rejection) => Err(from_json_rejection(
                rejection,
                state.config.limits.max_body_bytes,
            )),
        }
    }
}

fn from_json_rejection(rejection: JsonRejection, limit: usize) -> AppError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType(
            "request body must be JSON: send `Content-Type: application/json`".to_owned(),
        ),
        JsonRejection::JsonSyntaxError(error) => AppError::MalformedBody(format!(
            "request body is not valid JSON: {}",
            error.body_text()
        )),
        JsonRejection::JsonDataError(error) => AppError::MalformedBody(format!(
            "request body does not have the expected shape: {}",
            error.body_text()
        )),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge { limit }
        }
        other => AppError::MalformedBody(format!(
            "request body could not be read: {}",
            other.body_text()
        )),
    }
}

/// The caller, authenticated by `Authorization: Bearer tdm_…`, or, with `[enterprise]`,
/// by a bearer JWT of the organisation's identity provider.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// Id of the key used; for an identity provider token, `jwt:<sub>` (no API key has
    /// such an id), which usage records and the audit log carry in its place.
    pub key_id: String,
    /// The key's owner.
    pub user: User,
    /// What the key may be used for.
    pub scopes: Vec<Scope>,
}

impl AuthUser {
    /// Refuses (403) a key without `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(AppError::MissingScope { scope })
        }
    }

    /// The id of the API key the request was made with; `None` for an identity provider
    /// token.
    pub fn api_key_id(&self) -> Option<&str> {
        (!self.key_id.starts_with(JWT_KEY_ID_PREFIX)).then_some(self.key_id.as_str())
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        // With `[enterprise]`, refusals say a token of the identity provider works too.
        let or_token = if state.enterprise.is_some() {
            " (or a JWT from your organisation's identity provider)"
        } else {
            ""
        };
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            AppError::Unauthorized(format!(
                "missing API key: send `Authorization: Bearer {API_KEY_PREFIX}…`{or_token}"
            ))
        })?;
        let value = header.to_str().map_err(|_| {
            AppError::Unauthorized("Authorization header is not valid text".to_owned())
        })?;
        let key = match value.trim().split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => key.trim(),
            _ => {
                return Err(AppError::Unauthorized(
                    "Authorization header must use the Bearer scheme".to_owned(),
                ))
            }
        };
        if !key.starts_with(API_KEY_PREFIX) && enterprise::looks_like_jwt(key) {
            if let Some(verifier) = &state.enterprise {
                let source = client_address(parts);
                return enterprise::users::authenticate(state, verifier, key, &source).await;
            }
        }
        if !keys::is_well_formed(key) {
            return Err(AppError::Unauthorized(format!(
                "malformed API key: expected `{API_KEY_PREFIX}` followed by {} letters and \
                 digits{or_token}",
                keys::KEY_BODY_LEN
            )));
        }
        authenticate(state, key).await
    }
}

/// Checks a well-formed key against the database, through the cache. Concurrent
/// requests with the same uncached key share one database look-up.
async fn authenticate(state: &AppState, key: &str) -> Result<AuthUser, AppError> {
    let hash = KeyHash::of(key);
    let result = match &state.key_cache {
        Some(cache) => {
            // Set when this request's look-up ran (or waited on another's).
            let missed = AtomicBool::new(false);
            let result = cache
                .try_get_with(hash, async {
                    missed.store(true, Ordering::Relaxed);
                    look_up(state, key, hash).await
                })
                .await
                .map_err(|failure| (*failure).clone());
            state.metrics.key_cache(!missed.load(Ordering::Relaxed));
            result
        }
        None => look_up(state, key, hash).await,
    };
    result
        .and_then(CachedKey::check)
        .map_err(|failure| match failure {
            AuthFailure::Unknown => AppError::Unauthorized("unknown API key".to_owned()),
            AuthFailure::Revoked => AppError::Unauthorized("API key has been revoked".to_owned()),
            AuthFailure::Expired(at) => AppError::Unauthorized(format!(
                "API key expired at {}; create a new one",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
            AuthFailure::Database(message) => AppError::internal(message),
            AuthFailure::Unavailable(message) => AppError::NotReady {
                public: "the database is not reachable; try again shortly".to_owned(),
                cause: message.into(),
            },
        })
}

/// Why a key was not accepted; cloneable so a shared look-up can fail every waiter.
#[derive(Debug, Clone)]
enum AuthFailure {
    Unknown,
    Revoked,
    Expired(chrono::DateTime<chrono::Utc>),
    Database(String),
    /// The database could not be reached (503, not 500).
    Unavailable(String),
}

async fn look_up(state: &AppState, key: &str, hash: KeyHash) -> Result<CachedKey, AuthFailure> {
    let found = api_keys::find_by_hash(&state.db, &hash)
        .await
        .map_err(|error| {
            if error.is_unavailable() {
                AuthFailure::Unavailable(error.to_string())
            } else {
                AuthFailure::Database(error.to_string())
            }
        })?;
    // The lookup is by hash; the constant-time comparison keeps the final decision
    // independent of how much of the hash matched.
    let Some(found) = found.filter(|found| keys::verify(key, &found.key_hash)) else {
        return Err(AuthFailure::Unknown);
    };
    if found.revoked {
        return Err(AuthFailure::Revoked);
    }
    // Bookkeeping, folded into the usage writer's next transaction: a write here would
    // contend with it for SQLite's one write lock on the request's path.
    state.usage.touch_key(&found.key_id, chrono::Utc::now());
    Ok(CachedKey {
        user: AuthUser {
            key_id: found.key_id,
            user: found.user,
            scopes: found.scopes,
        },
        expires_at: found.expires_at,
    })
}

/// What the key cache holds: the caller, and when the key stops working, checked on
/// every use (a cached key must not outlive its expiry).
#[derive(Debug, Clone)]
pub struct CachedKey {
    user: AuthUser,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl CachedKey {
    fn check(self) -> Result<AuthUser, AuthFailure> {
        match self.expires_at {
            Some(at) if at <= chrono::Utc::now() => Err(AuthFailure::Expired(at)),
            _ => Ok(self.user),
        }
    }
}

/// Where a request came from, for the audit log and the per-address limits: the peer's
/// IP address or, when the peer is a trusted proxy (`http.trusted_proxies`), the
/// right-most `X-Forwarded-For` address that is not itself a trusted proxy; `unknown` when
/// the server was not given the peer (a router driven without a socket, as in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(parts)))
    }
}

/// The proxies whose `X-Forwarded-For` is believed; a request extension the HTTP layers
/// add, so [`ClientAddress`] works with any router state. Without it no proxy is trusted.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub std::sync::Arc<[IpNetwork]>);

impl TrustedProxies {
    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(ip))
    }
}

fn client_address(parts: &Parts) -> String {
    let Some(peer) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_canonical())
    else {
        return "unknown".to_owned();
    };
    let proxies = parts.extensions.get::<TrustedProxies>();
    match proxies {
        Some(proxies) if proxies.contains(peer) => {
            let forwarded = parts
                .headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .filter_map(|value| value.to_str().ok());
            forwarded_client(peer, forwarded, proxies).to_string()
        }
        _ => peer.to_string(),
    }
}

/// Walks `X-Forwarded-For` from the right, starting at the trusted `peer`: each entry was
/// written by the hop after it, so it is believed only while that hop is a trusted proxy.
/// The first address that is not a trusted proxy is the client. An entry that is not an
/// address (a trusted proxy would not write one) stops the walk at the last trusted hop,
/// so garbage never becomes a client address (and a per-address limit key).
fn forwarded_client<'a>(
    peer: IpAddr,
    headers: impl Iterator<Item = &'a str>,
    proxies: &TrustedProxies,
) -> IpAddr {
    // Several headers count as one list, in order (RFC 9110 §5.3).
    let entries: Vec<&str> = headers.flat_map(|value| value.split(',')).collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(address) = parse_forwarded_address(entry) else {
            return client;
        };
        client = address;
        if !proxies.contains(address) {
            return client;
        }
    }
    // Every hop is a trusted proxy: the left-most is as far as anyone can tell.
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies(
            networks
                .iter()
                .map(|network| network.parse().unwrap())
                .collect(),
        )
    }

    #[track_caller]
    fn check(peer: &str, forwarded: &[&str], trusted: &[&str], expected: &str) {
        let mut request = axum::http::Request::builder();
        for value in forwarded {
            request = request.header("x-forwarded-for", *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(axum::extract::ConnectInfo::<std::net::SocketAddr>(
                peer.parse().unwrap(),
            ));
        parts.extensions.insert(proxies(trusted));
        assert_eq!(client_address(&parts), expected);
    }

    #[test]
    fn the_peer_is_the_client_unless_it_is_a_trusted_proxy() {
        // No trusted proxies: the header is anyone's to write.
        check("203.0.113.5:1000", &["198.51.100.1"], &[], "203.0.113.5");
        // A peer that is not trusted cannot speak for anyone else.
        check(
            "203.0.113.5:1000",
            &["198.51.100.1"],
            &["10.0.0.0/8"],
            "203.0.113.5",
        );
        // A trusted proxy without the header is itself the client.
        check("10.0.0.2:1000", &[], &["10.0.0.0/8"], "10.0.0.2");
    }

    #[test]
    fn the_right_most_untrusted_forwarded_address_is_the_client() {
        check(
            "10.0.0.2:1000",
            &["198.51.100.1"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
        // The left-most entry is whatever the client sent: spoofable, never used while a
        // later, untrusted address exists.
        check(
            "10.0.0.2:1000",
            &["1.2.3.4, 198.51.100.1, 10.0.0.7"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
        // Several headers are one list.
        check(
            "10.0.0.2:1000",
            &["1.2.3.4", "198.51.100.1", "10.0.0.7:8080"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
        // Every hop trusted: the left-most.
        check(
            "10.0.0.2:1000",
            &["10.1.1.1, 10.0.0.7"],
            &["10.0.0.0/8"],
            "10.1.1.1",
        );
        check("[::1]:1000", &["2001:db8::7"], &["::1"], "2001:db8::7");
        // A dual-stack socket's IPv4 peer matches an IPv4 proxy entry.
        check(
            "[::ffff:10.0.0.2]:1000",
            &["198.51.100.1"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
    }

    #[test]
    fn garbage_in_the_header_never_becomes_the_client_address() {
        check(
            "10.0.0.2:1000",
            &["not-an-address"],
            &["10.0.0.0/8"],
            "10.0.0.2",
        );
        check(
            "10.0.0.2:1000",
            &["198.51.100.1, junk, 10.0.0.7"],
            &["10.0.0.0/8"],
            "10.0.0.7",
        );
    }

    #[test]
    fn without_a_socket_the_address_is_unknown() {
        let (parts, ()) = axum::http::Request::new(()).into_parts();
        assert_eq!(client_address(&parts), "unknown");
    }
}
