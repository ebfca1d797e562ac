//! Browser sessions as cookies: the access token (a short-lived JWT) in `tandem_session`
//! and the rotating refresh token in `tandem_refresh`, both HttpOnly and SameSite=Lax,
//! and Secure when the server's public address is https.
//!
//! [`resolve`] runs before every page: it checks the access token, or, once that has
//! expired, exchanges the refresh token for a new pair and sets them on the answer. The
//! page then asks for a [`SignedIn`] (sending the visitor to sign in when there is none)
//! or a [`MaybeSignedIn`].

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use chrono::Utc;

use crate::db::users::{self, User};
use crate::sessions::{IssuedTokens, SessionError};
use crate::state::AppState;

pub(super) const ACCESS_COOKIE: &str = "tandem_session";
pub(super) const REFRESH_COOKIE: &str = "tandem_refresh";

/// The signed-in person of a page request.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    pub user: User,
    pub session_id: String,
}

/// What [`resolve`] found, for the extractors.
#[derive(Debug, Clone)]
struct Resolved(Option<SignedIn>);

/// Whether cookies get the Secure attribute: when browsers reach us over https.
pub(super) fn secure_cookies(state: &AppState) -> bool {
    state
        .config
        .auth
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"))
}

/// A cookie with the attributes every cookie of ours has.
pub(super) fn cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    path: &'static str,
    max_age: time::Duration,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure_cookies(state))
        .path(path)
        .max_age(max_age)
        .build()
}

/// The removal of cookie `name` set at `path`.
pub(super) fn removal(state: &AppState, name: &'static str, path: &'static str) -> Cookie<'static> {
    cookie(state, name, String::new(), path, time::Duration::ZERO)
}

/// Adds the cookies of a fresh token pair to `jar`.
pub(super) fn with_tokens(state: &AppState, jar: CookieJar, tokens: &IssuedTokens) -> CookieJar {
    let now = Utc::now();
    let access_secs = (tokens.access_expires_at - now).num_seconds().max(0);
    let refresh_days = i64::from(state.config.sessions.refresh_ttl_days);
    jar.add(cookie(
        state,
        ACCESS_COOKIE,
        tokens.access_token.clone(),
        "/",
        time::Duration::seconds(access_secs),
    ))
    .add(cookie(
        state,
        REFRESH_COOKIE,
        tokens.refresh_token.clone(),
        "/",
        time::Duration::days(refresh_days),
    ))
}

/// Removes both session cookies.
pub(super) fn without_tokens(state: &AppState, jar: CookieJar) -> CookieJar {
    jar.add(removal(state, ACCESS_COOKIE, "/"))
        .add(removal(state, REFRESH_COOKIE, "/"))
}

/// Middleware of the pages: finds the session (refreshing it when its access token has
/// expired), and gives non-browser clients JSON errors.
pub(super) async fn resolve(
    State(state): State<AppState>,
    jar: CookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    let request_headers = request.headers().clone();
    let (signed_in, jar) = match find_session(&state, jar).await {
        Ok(found) => found,
        Err(error) => return super::PageError::internal(error).into_response(),
    };
    request.extensions_mut().insert(Resolved(signed_in));
    let response = next.run(request).await;
    let response = super::page::negotiate(&request_headers, response);
    (jar, response).into_response()
}

/// The session of these cookies, and the cookies to send back (new ones after a
/// refresh, none after a failed one).
async fn find_session(
    state: &AppState,
    jar: CookieJar,
) -> Result<(Option<SignedIn>, CookieJar), crate::db::DbError> {
    let Some(signer) = state.sessions.as_deref() else {
        return Ok((None, jar));
    };
    let now = Utc::now();
    if let Some(access) = jar.get(ACCESS_COOKIE) {
        match signer.authenticate(&state.db, access.value(), now).await {
            Ok(claims) => {
                let user = users::get_by_id(&state.db, &claims.sub).await;
                return match user {
                    Ok(user) => Ok((
                        Some(SignedIn {
                            user,
                            session_id: claims.sid,
                        }),
                        jar,
                    )),
                    // Deleted meanwhile: the session died with the account.
                    Err(crate::db::DbError::UnknownUser(_)) => {
                        Ok((None, without_tokens(state, jar)))
                    }
                    Err(error) => Err(error),
                };
            }
            Err(SessionError::Database(error)) => return Err(error),
            // Expired or ended: the refresh token decides.
            Err(_) => {}
        }
    }
    let Some(refresh) = jar
        .get(REFRESH_COOKIE)
        .map(|cookie| cookie.value().to_owned())
    else {
        return Ok((None, jar));
    };
    match signer.refresh(&state.db, &refresh, now).await {
        Ok(tokens) => {
            let claims = signer.verify(&tokens.access_token).map_err(|error| {
                crate::db::DbError::Corrupt {
                    table: "sessions",
                    detail: error.to_string(),
                }
            })?;
            match users::get_by_id(&state.db, &claims.sub).await {
                Ok(user) => {
                    let jar = with_tokens(state, jar, &tokens);
                    Ok((
                        Some(SignedIn {
                            user,
                            session_id: tokens.session_id,
                        }),
                        jar,
                    ))
                }
                Err(crate::db::DbError::UnknownUser(_)) => Ok((None, without_tokens(state, jar))),
                Err(error) => Err(error),
            }
        }
        Err(SessionError::Database(error)) => Err(error),
        Err(_) => Ok((None, without_tokens(state, jar))),
    }
}

/// A page that needs a signed-in person; anyone else is sent to sign in and brought
/// back.
impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        match parts.extensions.get::<Resolved>() {
            Some(Resolved(Some(signed_in))) => Ok(signed_in.clone()),
            _ => {
                // After signing in, a GET comes back where it was; a form post cannot be
                // replayed, so it comes back to the page that showed the form.
                let next = if parts.method == Method::GET {
                    parts
                        .uri
                        .path_and_query()
                        .map_or("/account", |path| path.as_str())
                        .to_owned()
                } else {
                    referring_path(&parts.headers).unwrap_or_else(|| "/account".to_owned())
                };
                Err(sign_in_redirect(&next))
            }
        }
    }
}

/// Sends the visitor to sign in, and back to `next` after.
pub(super) fn sign_in_redirect(next: &str) -> Response {
    Redirect::to(&format!("/signin?next={}", urlencode(next))).into_response()
}

/// A page anyone may see, which shows more to a signed-in person.
#[derive(Debug, Clone)]
pub(crate) struct MaybeSignedIn(pub Option<SignedIn>);

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(MaybeSignedIn(
            parts
                .extensions
                .get::<Resolved>()
                .and_then(|Resolved(found)| found.clone()),
        ))
    }
}

fn referring_path(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let url = url::Url::parse(referer).ok()?;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    safe_next(&path)
}

/// `next` if it is a path on this server (`/account`), never another site
/// (`//evil.example`, `https://…`, `/\evil.example`).
pub(super) fn safe_next(next: &str) -> Option<String> {
    let bytes = next.as_bytes();
    let local = bytes.first() == Some(&b'/')
        && bytes.get(1) != Some(&b'/')
        && bytes.get(1) != Some(&b'\\')
        && !next.chars().any(|c| c.is_control())
        && next.len() <= 512;
    local.then(|| next.to_owned())
}

pub(super) fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `Location` headers must be ASCII; [`safe_next`] paths from a query string are.
pub(super) fn redirect_to(path: &str) -> Response {
    match HeaderValue::from_str(path) {
        Ok(_) => Redirect::to(path).into_response(),
        Err(_) => Redirect::to("/account").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/account").as_deref(), Some("/account"));
        assert_eq!(
            safe_next("/device?user_code=BCDF-GHJK").as_deref(),
            Some("/device?user_code=BCDF-GHJK")
        );
        for outside in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "account",
            "",
            "/a\nb",
        ] {
            assert_eq!(safe_next(outside), None, "{outside:?}");
        }
    }
}
