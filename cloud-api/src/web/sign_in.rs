//! Signing in and out: `GET /signin` lists the providers, `GET /auth/{provider}/start`
//! sends the browser to one, `GET /auth/{provider}/callback` takes it back, checks the
//! answer belongs to the attempt this browser started, finds or creates the user and
//! starts a session; `POST /signout` ends it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::{CookieJar, Form};
use chrono::Utc;
use maud::html;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::page::render;
use super::session::{self, MaybeSignedIn, SignedIn};
use super::sign_in_providers::SignInFailure;
use super::{csrf, PageError};
use crate::db::audit::{self, Actor};
use crate::db::identities::{self, Linked};
use crate::db::sign_in_attempts::{self, SignInAttempt};
use crate::extract::ClientAddress;
use crate::state::AppState;

/// The cookie that ties a provider's answer to the browser that asked for it.
const ATTEMPT_COOKIE: &str = "tandem_sign_in";
/// Where the attempt cookie is sent: only to the callbacks.
const ATTEMPT_COOKIE_PATH: &str = "/auth";
/// How long a person has at the provider before the attempt is forgotten.
const ATTEMPT_TTL_MINUTES: i64 = 10;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/signin", get(sign_in_page))
        .route("/auth/{provider}/start", get(start))
        .route("/auth/{provider}/callback", get(callback))
        .route("/signout", post(sign_out))
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn next_path(next: Option<&str>) -> String {
    next.and_then(session::safe_next)
        .unwrap_or_else(|| "/account".to_owned())
}

async fn sign_in_page(
    State(state): State<AppState>,
    MaybeSignedIn(signed_in): MaybeSignedIn,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = next_path(query.next.as_deref());
    if signed_in.is_some() {
        return session::redirect_to(&next);
    }
    let enabled = state.sessions.is_some() && !state.sign_in.is_empty();
    let body = html! {
        h1 { "Sign in to Tandem" }
        @if enabled {
            p { "Sign in with an account you already have. The first sign-in creates your \
                 Tandem account from its verified email address." }
            div.providers {
                @for provider in state.sign_in.iter() {
                    a id={ "sign-in-" (provider.config.name) }
                      href={ "/auth/" (provider.config.name) "/start?next=" (session::urlencode(&next)) } {
                        "Sign in with " (provider.config.label())
                    }
                }
            }
        } @else {
            p.notice { "Signing in through the browser is not set up on this server. \
                        An administrator can create your account and keys with "
                        code { "tandem-cloud users create" } " and " code { "tandem-cloud keys create" } "." }
        }
    };
    render(StatusCode::OK, "Sign in", body)
}

async fn start(
    State(state): State<AppState>,
    Path(provider_name): Path<String>,
    Query(query): Query<NextQuery>,
    ClientAddress(source): ClientAddress,
    jar: CookieJar,
) -> Result<Response, PageError> {
    if state.sessions.is_none() {
        return Err(PageError::SignInOff);
    }
    let provider = state.sign_in.get(&provider_name).ok_or_else(|| {
        PageError::NotFound(format!(
            "there is no sign-in provider `{provider_name}` here"
        ))
    })?;
    if !state.sign_in_limiter.allow(&source) {
        return Err(PageError::TooManySignIns);
    }
    let authorization = state
        .sign_in
        .authorize(provider)
        .await
        .map_err(|failure| provider_failure(&provider.config.label(), failure))?;
    let now = Utc::now();
    let attempt = SignInAttempt {
        provider: provider.config.name.clone(),
        pkce_verifier: authorization.pkce_verifier,
        nonce: authorization.nonce,
        next_path: next_path(query.next.as_deref()),
        expires_at: now + chrono::Duration::minutes(ATTEMPT_TTL_MINUTES),
    };
    sign_in_attempts::create(&state.db, &authorization.state, &attempt, now)
        .await
        .map_err(PageError::internal)?;
    let jar = jar.add(session::cookie(
        &state,
        ATTEMPT_COOKIE,
        authorization.state,
        ATTEMPT_COOKIE_PATH,
        time::Duration::minutes(ATTEMPT_TTL_MINUTES),
    ));
    Ok((jar, Redirect::to(authorization.url.as_str())).into_response())
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// The issuer that answered (RFC 9207), when the provider says.
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn provider_failure(label: &str, failure: SignInFailure) -> PageError {
    match failure {
        SignInFailure::NoVerifiedEmail => PageError::NoVerifiedEmail {
            provider: label.to_owned(),
        },
        SignInFailure::Provider(reason) => {
            tracing::warn!(provider = label, %reason, "sign-in provider failed");
            PageError::ProviderFailed {
                provider: label.to_owned(),
                reason,
            }
        }
    }
}

async fn callback(
    State(state): State<AppState>,
    Path(provider_name): Path<String>,
    Query(query): Query<CallbackQuery>,
    ClientAddress(source): ClientAddress,
    jar: CookieJar,
) -> Result<Response, PageError> {
    let signer = state.sessions.clone().ok_or(PageError::SignInOff)?;
    let provider = state.sign_in.get(&provider_name).ok_or_else(|| {
        PageError::NotFound(format!(
            "there is no sign-in provider `{provider_name}` here"
        ))
    })?;
    let label = provider.config.label();
    // The answer must carry the state this browser was given: otherwise someone is
    // trying to sign this browser in to their own account (login CSRF), or replaying.
    let cookie_state = jar
        .get(ATTEMPT_COOKIE)
        .map(|cookie| cookie.value().to_owned());
    let jar = jar.add(session::removal(
        &state,
        ATTEMPT_COOKIE,
        ATTEMPT_COOKIE_PATH,
    ));
    let Some(returned_state) = query.state.as_deref() else {
        return Err(PageError::SignInMismatch);
    };
    let matches = cookie_state
        .as_deref()
        .is_some_and(|expected| bool::from(expected.as_bytes().ct_eq(returned_state.as_bytes())));
    if !matches {
        tracing::warn!(provider = %provider_name, "sign-in refused: state does not match this browser's");
        return Err(PageError::SignInMismatch);
    }
    let now = Utc::now();
    let attempt = sign_in_attempts::take(&state.db, returned_state, now)
        .await
        .map_err(PageError::internal)?
        .filter(|attempt| attempt.provider == provider.config.name)
        .ok_or(PageError::SignInMismatch)?;
    // An answer naming another issuer than the one this attempt went to is a mix-up
    // attack (RFC 9207): refuse it before its code is sent anywhere.
    if let (Some(answered), Some(expected)) = (query.iss.as_deref(), provider.config.issuer()) {
        if answered.trim_end_matches('/') != expected.trim_end_matches('/') {
            tracing::warn!(provider = %provider_name, "sign-in refused: the answer names another issuer");
            return Err(PageError::SignInMismatch);
        }
    }
    if let Some(error) = query.error {
        let reason = match query.error_description {
            Some(description) => format!("{error} ({description})"),
            None => error,
        };
        return Err(PageError::SignInRefused {
            provider: label,
            reason,
        });
    }
    let code = query.code.ok_or_else(|| {
        PageError::InvalidForm("the provider sent back neither a code nor an error".to_owned())
    })?;
    let identity = state
        .sign_in
        .finish(provider, &code, &attempt.pkce_verifier, &attempt.nonce)
        .await
        .map_err(|failure| provider_failure(&label, failure))?;
    let tier = tandem_shared::Tier::new(&state.config.auth.new_user_tier)
        .map_err(|error| PageError::internal(format!("auth.new_user_tier: {error}")))?;
    let (user, linked) = identities::sign_in(&state.db, &identity, &tier, now)
        .await
        .map_err(PageError::internal)?;
    let tokens = signer
        .start(&state.db, &user, now)
        .await
        .map_err(PageError::internal)?;
    audit::record(
        &state.db,
        &Actor::User {
            id: user.id.clone(),
            key_id: None,
        },
        "sign_in",
        Some(&format!("user:{}", user.id)),
        &source,
        &json!({
            "provider": identity.provider,
            "linked": match linked {
                Linked::Existing => "existing",
                Linked::NewIdentity => "new_identity",
                Linked::NewUser => "new_user",
            },
            "session": tokens.session_id,
        }),
    )
    .await
    .map_err(PageError::internal)?;
    tracing::info!(user_id = %user.id, provider = %identity.provider, "signed in");
    let jar = session::with_tokens(&state, jar, &tokens);
    Ok((jar, session::redirect_to(&attempt.next_path)).into_response())
}

#[derive(Debug, Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

async fn sign_out(
    State(state): State<AppState>,
    signed_in: SignedIn,
    ClientAddress(source): ClientAddress,
    jar: CookieJar,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    csrf::check(&state, &signed_in, form.csrf.as_deref())?;
    crate::sessions::sign_out(&state.db, &signed_in.session_id, Utc::now())
        .await
        .map_err(PageError::internal)?;
    audit::record(
        &state.db,
        &Actor::User {
            id: signed_in.user.id.clone(),
            key_id: None,
        },
        "sign_out",
        Some(&format!("user:{}", signed_in.user.id)),
        &source,
        &json!({"session": signed_in.session_id}),
    )
    .await
    .map_err(PageError::internal)?;
    let jar = session::without_tokens(&state, jar);
    Ok((jar, Redirect::to("/signin")).into_response())
}
