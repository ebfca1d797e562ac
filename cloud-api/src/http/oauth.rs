//! The OAuth 2.0 Device Authorization Grant (RFC 8628) that `tandem login` uses:
//! `POST /oauth/device/code` hands out a device code and a short user code, the user
//! confirms the code in a browser (`/device`), and `POST /oauth/token` polled with the
//! device code answers the RFC's errors until then and the API key after.
//!
//! Bodies are `application/x-www-form-urlencoded` and errors are OAuth's
//! `{"error", "error_description"}` (RFC 6749 §5.2), as OAuth client libraries expect.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use chrono::Utc;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tandem_shared::Scope;

use crate::db::device_codes::{self, Poll};
use crate::extract::ClientAddress;
use crate::keys::{self, KeyHash};
use crate::state::{AppState, DEVICE_CODES_PER_MINUTE};

/// The `grant_type` of a device poll.
pub const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The clients allowed to ask for device codes.
pub const CLIENTS: [&str; 1] = ["tandem-cli"];
/// Letters of a user code: consonants only, so no word can be spelt and nothing is
/// mistaken for a digit (RFC 8628 §6.1); 20^8 codes.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LETTERS: usize = 8;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/device/code", post(device_code))
        .route("/oauth/token", post(token))
}

/// An OAuth error answer: `{"error", "error_description"}` with its status.
#[derive(Debug)]
struct OAuthFailure {
    status: StatusCode,
    error: &'static str,
    description: String,
}

/// An OAuth error (RFC 6749 §5.2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct OAuthErrorBody<'a> {
    /// The OAuth error code (`authorization_pending`, `slow_down`, `invalid_client`, ...).
    error: &'a str,
    /// What went wrong, in words.
    error_description: &'a str,
}

impl OAuthFailure {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthFailure {
            status,
            error,
            description: description.into(),
        }
    }

    fn bad(error: &'static str, description: impl Into<String>) -> Self {
        OAuthFailure::new(StatusCode::BAD_REQUEST, error, description)
    }

    fn unavailable(description: &str) -> Self {
        OAuthFailure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            description,
        )
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.error,
            error_description: &self.description,
        };
        no_store((self.status, Json(body)).into_response())
    }
}

/// RFC 6749 §5.1: answers carrying or about credentials are never cached.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

fn bad_form(rejection: FormRejection) -> OAuthFailure {
    OAuthFailure::bad(
        "invalid_request",
        format!(
            "the body must be application/x-www-form-urlencoded: {}",
            rejection.body_text()
        ),
    )
}

/// Form body of `POST /oauth/device/code`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct DeviceCodeForm {
    /// `tandem-cli`.
    client_id: Option<String>,
    /// Space-separated scopes (`completions chat`, the default); never `admin`.
    scope: Option<String>,
}

/// Answer of `POST /oauth/device/code` (RFC 8628 §3.2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct DeviceCodeAnswer {
    /// The secret to poll `POST /oauth/token` with.
    device_code: String,
    /// What the person confirms in the browser: eight consonants, `BCDF-GHJK`.
    user_code: String,
    /// Where to confirm it: `<public_url>/device`.
    verification_uri: String,
    /// The same with the code filled in.
    verification_uri_complete: String,
    /// Seconds until the codes expire (`[auth] device_code_ttl_secs`, default 900).
    expires_in: u64,
    /// Seconds to wait between polls (`[auth] device_poll_interval_secs`, default 5).
    interval: u32,
}

/// The scopes asked for: the default ones when none are; `admin` is never given this way.
fn requested_scopes(scope: Option<&str>) -> Result<Vec<Scope>, OAuthFailure> {
    let Some(scope) = scope.filter(|scope| !scope.trim().is_empty()) else {
        return Ok(Scope::DEFAULT.to_vec());
    };
    let mut scopes = Vec::new();
    for name in scope.split_whitespace() {
        let scope: Scope = name
            .parse()
            .map_err(|message: String| OAuthFailure::bad("invalid_scope", message))?;
        if scope == Scope::Admin {
            return Err(OAuthFailure::bad(
                "invalid_scope",
                "the `admin` scope is not given to devices; an administrator creates admin keys",
            ));
        }
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

fn client_allowed(client_id: Option<&str>) -> Result<String, OAuthFailure> {
    match client_id {
        Some(client) if CLIENTS.contains(&client) => Ok(client.to_owned()),
        _ => Err(OAuthFailure::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!(
                "unknown client; the device flow serves {}",
                CLIENTS.join(", ")
            ),
        )),
    }
}

/// Where people confirm codes: the configured public URL, else this request's host.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.auth.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("127.0.0.1:8787");
    format!("http://{host}")
}

fn new_user_code() -> String {
    let mut bytes = [0u8; USER_CODE_LETTERS];
    OsRng.fill_bytes(&mut bytes);
    // 256 is not a multiple of 20; rejection would remove the slight bias, which at 8
    // letters costs an attacker nothing measurable; the codes live minutes.
    let letters: String = bytes
        .iter()
        .map(|byte| char::from(USER_CODE_ALPHABET[usize::from(*byte) % USER_CODE_ALPHABET.len()]))
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// A user code as typed: case, spaces and dashes do not matter.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let letters: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = letters.len() == USER_CODE_LETTERS
        && letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    valid.then(|| format!("{}-{}", &letters[..4], &letters[4..]))
}

/// Starts a device sign-in (RFC 8628 §3.2): a device code to poll with and a short user
/// code for the person to confirm in a browser.
///
/// What `tandem login` calls first. At most 10 codes a minute per client address. Errors
/// are OAuth's `{"error", "error_description"}` with `Cache-Control: no-store`.
#[utoipa::path(
    post,
    path = "/oauth/device/code",
    tag = "device-login",
    operation_id = "oauth_device_code",
    security(()),
    request_body(content = DeviceCodeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The codes and where to confirm them.", body = DeviceCodeAnswer),
        (status = 400, description = "`invalid_request` (the body is not a form) or `invalid_scope` (an unknown scope, or `admin`).", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`: `client_id` is not `tandem-cli`.", body = OAuthErrorBody),
        (status = 429, description = "`slow_down`: more than 10 codes a minute from this address.", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`: the server cannot store codes right now.", body = OAuthErrorBody),
    )
)]
async fn device_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddress(source): ClientAddress,
    form: Result<Form<DeviceCodeForm>, FormRejection>,
) -> Result<Response, OAuthFailure> {
    let Form(form) = form.map_err(bad_form)?;
    limit_codes(&state, source)?;
    let client_id = client_allowed(form.client_id.as_deref())?;
    let scopes = requested_scopes(form.scope.as_deref())?;
    let auth = &state.config.auth;
    let lifetime =
        chrono::Duration::seconds(i64::try_from(auth.device_code_ttl_secs).unwrap_or(900));
    let device_code = keys::generate_secret();
    let hash = KeyHash::of(&device_code);
    let now = Utc::now();
    let mut created = None;
    // A user code is drawn again in the rare case a live grant has it.
    for _ in 0..5 {
        let user_code = new_user_code();
        let grant = device_codes::create(
            &state.db,
            &hash,
            &user_code,
            &client_id,
            &scopes,
            lifetime,
            auth.device_poll_interval_secs,
            now,
        )
        .await;
        match grant {
            Ok(grant) => {
                created = Some(grant);
                break;
            }
            Err(error) if device_codes::is_duplicate_user_code(&error) => continue,
            Err(error) => {
                tracing::error!(%error, "cannot store a device code");
                return Err(OAuthFailure::unavailable(
                    "the server cannot store codes right now; try again",
                ));
            }
        }
    }
    let grant = created.ok_or_else(|| OAuthFailure::unavailable("no free user code; try again"))?;
    let verification_uri = format!("{}/device", base_url(&state, &headers));
    let complete = format!("{verification_uri}?user_code={}", grant.user_code);
    let answer = DeviceCodeAnswer {
        device_code,
        user_code: grant.user_code,
        verification_uri,
        verification_uri_complete: complete,
        expires_in: auth.device_code_ttl_secs,
        interval: grant.interval_secs,
    };
    Ok(no_store(Json(answer).into_response()))
}

/// Keeps one address from asking for more than [`DEVICE_CODES_PER_MINUTE`] codes.
fn limit_codes(state: &AppState, source: String) -> Result<(), OAuthFailure> {
    if state.device_code_limiter.allow(&source) {
        return Ok(());
    }
    Err(OAuthFailure::new(
        StatusCode::TOO_MANY_REQUESTS,
        "slow_down",
        format!(
            "too many sign-in codes asked for from this address (at most \
                 {DEVICE_CODES_PER_MINUTE} a minute); wait a minute"
        ),
    ))
}

/// Form body of `POST /oauth/token`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct TokenForm {
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    grant_type: Option<String>,
    /// The `device_code` of `POST /oauth/device/code`.
    device_code: Option<String>,
    /// `tandem-cli`.
    client_id: Option<String>,
}

/// Answer of `POST /oauth/token` once the code is approved.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TokenAnswer {
    /// The API key (`tdm_…`).
    access_token: String,
    /// `Bearer`.
    token_type: &'static str,
    /// The key's scopes, space-separated.
    scope: String,
}

/// Polls for the result of a device sign-in (RFC 8628 §3.4): the API key once the code
/// is approved, an OAuth error until then.
///
/// Poll no sooner than `interval` seconds apart; `slow_down` adds 5 seconds to it. An
/// approved code gives exactly one key (a new key of the approving user, named
/// `device (tandem-cli)`), even to racing polls.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "device-login",
    operation_id = "oauth_token",
    security(()),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The code was approved: the new API key.", body = TokenAnswer),
        (status = 400, description = "Not (yet) a key: `authorization_pending`, `slow_down`, `access_denied`, `expired_token`, `invalid_grant` (unknown or already used), `unsupported_grant_type` or `invalid_request`.", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`: `client_id` is not `tandem-cli`.", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`: the server cannot check codes right now.", body = OAuthErrorBody),
    )
)]
async fn token(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, OAuthFailure> {
    let Form(form) = form.map_err(bad_form)?;
    if form.grant_type.as_deref() != Some(DEVICE_GRANT_TYPE) {
        return Err(OAuthFailure::bad(
            "unsupported_grant_type",
            format!("this endpoint serves grant_type={DEVICE_GRANT_TYPE}"),
        ));
    }
    let client_id = client_allowed(form.client_id.as_deref())?;
    let device_code = form
        .device_code
        .filter(|code| !code.is_empty())
        .ok_or_else(|| OAuthFailure::bad("invalid_request", "`device_code` is missing"))?;
    let key = keys::generate();
    let polled = device_codes::poll(
        &state.db,
        &KeyHash::of(&device_code),
        &client_id,
        &key,
        &source,
        Utc::now(),
    )
    .await
    .map_err(|error| {
        tracing::error!(%error, "device poll failed");
        OAuthFailure::unavailable("the server cannot check codes right now; try again")
    })?;
    let refused = |error, description: String| Err(OAuthFailure::bad(error, description));
    match polled {
        Poll::Approved { key, scopes } => {
            let scope = scopes
                .iter()
                .map(|scope| scope.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let answer = TokenAnswer {
                access_token: key,
                token_type: "Bearer",
                scope,
            };
            Ok(no_store(Json(answer).into_response()))
        }
        Poll::Pending => refused(
            "authorization_pending",
            "the code has not been confirmed yet".to_owned(),
        ),
        Poll::SlowDown { interval_secs } => refused(
            "slow_down",
            format!("polling too fast; wait {interval_secs} seconds between polls"),
        ),
        Poll::Denied => refused("access_denied", "the sign-in was declined".to_owned()),
        Poll::Expired => refused(
            "expired_token",
            "the code expired; run `tandem login` again".to_owned(),
        ),
        Poll::AlreadyUsed => refused(
            "invalid_grant",
            "this device code was already used".to_owned(),
        ),
        Poll::Unknown => refused("invalid_grant", "unknown device code".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_consonants_typed_any_way() {
        for _ in 0..100 {
            let code = new_user_code();
            assert_eq!(code.len(), 9);
            assert_eq!(normalize_user_code(&code).as_deref(), Some(code.as_str()));
        }
        assert_eq!(
            normalize_user_code(" bcdf - ghjk ").as_deref(),
            Some("BCDF-GHJK")
        );
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(
            normalize_user_code("BCDF-GHJA"),
            None,
            "vowels are never in a code"
        );
        assert_eq!(normalize_user_code("BCDF-GHJK-L"), None);
    }

    #[test]
    fn scopes_default_and_admin_is_never_given() {
        assert_eq!(requested_scopes(None).unwrap(), Scope::DEFAULT);
        assert_eq!(requested_scopes(Some("chat chat")).unwrap(), [Scope::Chat]);
        assert!(requested_scopes(Some("completions admin")).is_err());
        assert!(requested_scopes(Some("root")).is_err());
    }
}
