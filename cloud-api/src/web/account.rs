//! `GET /account`: who is signed in, their tier and what remains of its quotas, their
//! usage over the last 30 days, the identities they sign in with, and their API keys,
//! with forms to create (`POST /account/keys`) and revoke
//! (`POST /account/keys/{id}/revoke`) keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::Form;
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use tandem_shared::{CreateKeyRequest, Scope};

use super::page::render;
use super::session::SignedIn;
use super::{csrf, PageError};
use crate::db::api_keys::{self, KeyGrant};
use crate::db::audit::Actor;
use crate::db::identities;
use crate::db::usage::{self, GroupBy};
use crate::extract::{ClientAddress, Validate};
use crate::rate_limit::Window;
use crate::state::AppState;

/// Scopes a key made on the account page may have; admin keys are an administrator's
/// to hand out.
const PAGE_SCOPES: [Scope; 2] = [Scope::Completions, Scope::Chat];
/// Days of usage the page sums.
const USAGE_DAYS: i64 = 30;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(show))
        .route("/account/keys", post(create_key))
        .route("/account/keys/{id}/revoke", post(revoke_key))
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn show(State(state): State<AppState>, signed_in: SignedIn) -> Result<Response, PageError> {
    account_page(&state, &signed_in, None, StatusCode::OK).await
}

/// The account page, with `notice` (a new key, an error) above the keys.
async fn account_page(
    state: &AppState,
    signed_in: &SignedIn,
    notice: Option<Markup>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let user = &signed_in.user;
    let csrf = csrf::token(state, signed_in)?;
    let now = Utc::now();
    let quota = match state.policy(&user.tier) {
        Ok(policy) => Some(state.limits.status(&user.id, policy, now).await),
        Err(_) => None,
    };
    let usage = usage::summary(
        &state.db,
        &user.id,
        now - chrono::Duration::days(USAGE_DAYS),
        now + chrono::Duration::seconds(1),
        GroupBy::Model,
    )
    .await
    .map_err(PageError::internal)?;
    let linked = identities::list_for_user(&state.db, &user.id)
        .await
        .map_err(PageError::internal)?;
    let keys = api_keys::list_for_user(&state.db, user)
        .await
        .map_err(PageError::internal)?;
    let (live, ended): (Vec<_>, Vec<_>) = keys.into_iter().partition(|key| {
        key.revoked_at.is_none() && key.expires_at.is_none_or(|expires| expires > now)
    });
    let quota_row = |label: &str, id: &str, window: Window| {
        html! {
            dt { (label) }
            dd id=(id) { (window.remaining()) " of " (window.limit) " left, resets " (time(window.resets_at)) }
        }
    };
    let body = html! {
        header {
            p { strong { "Tandem" } }
            form #sign-out method="post" action="/signout" {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Sign out" }
            }
        }
        h1 { "Your account" }
        dl {
            dt { "Email" } dd #email { (user.email) }
            dt { "Tier" } dd #tier { (user.tier) }
            @if let Some(quota) = quota {
                (quota_row("Requests this hour", "remaining-hour", quota.hour))
                (quota_row("Requests today", "remaining-day", quota.day))
                (quota_row("Tokens today", "remaining-tokens", quota.tokens))
            } @else {
                dt { "Quota" } dd { "Tier " (user.tier) " is not defined on this server; ask an administrator." }
            }
        }
        h2 { "Usage, last " (USAGE_DAYS) " days" }
        @if usage.is_empty() {
            p.muted { "No requests yet." }
        } @else {
            table #usage {
                thead { tr { th { "Model" } th { "Requests" } th { "Errors" } th { "Tokens in" } th { "Tokens out" } th { "Estimated cost" } } }
                tbody {
                    @for group in &usage {
                        tr {
                            td { (group.key) } td { (group.requests) } td { (group.errors) }
                            td { (group.prompt_tokens) } td { (group.completion_tokens) }
                            td { "$" (format!("{:.4}", group.cost_usd)) }
                        }
                    }
                }
            }
        }
        h2 { "API keys" }
        @if let Some(notice) = notice { (notice) }
        @if live.is_empty() {
            p.muted { "No active keys. Create one below, or run " code { "tandem login" } "." }
        } @else {
            table #keys {
                thead { tr { th { "Name" } th { "Key" } th { "Scopes" } th { "Last used" } th { "Expires" } th {} } }
                tbody {
                    @for key in &live {
                        tr data-key-id=(key.id) {
                            td.key-name { (key.name) }
                            td { code { (key.key_prefix) "…" } }
                            td { (api_keys::format_scopes(&key.scopes)) }
                            td { (key.last_used_at.map_or_else(|| "never".to_owned(), time)) }
                            td { (key.expires_at.map_or_else(|| "never".to_owned(), time)) }
                            td {
                                form.revoke-key.inline method="post" action={ "/account/keys/" (key.id) "/revoke" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !ended.is_empty() {
            p.muted { (ended.len()) " revoked or expired key(s) not shown." }
        }
        form #create-key method="post" action="/account/keys" {
            fieldset {
                legend { "Create a key" }
                input type="hidden" name="csrf" value=(csrf);
                p { label { "Name " input name="name" required maxlength="100" placeholder="laptop"; } }
                p {
                    "Scopes: "
                    @for scope in PAGE_SCOPES {
                        label { input type="checkbox" name="scope" value=(scope.as_str()) checked; " " (scope.as_str()) " " }
                    }
                }
                p { label { "Expires after " input name="expires_in_days" type="number" min="1" max="3650" placeholder="never"; " days" } }
                button type="submit" { "Create key" }
            }
        }
        h2 { "Sign-in identities" }
        ul {
            @for identity in &linked {
                li { (identity.provider) " — " (identity.email) span.muted { " (last sign-in " (time(identity.last_sign_in_at)) ")" } }
            }
        }
    };
    Ok(render(status, "Your account", body))
}

#[derive(Debug, Deserialize)]
struct CreateKeyForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: Vec<String>,
    #[serde(default)]
    expires_in_days: Option<String>,
}

async fn create_key(
    State(state): State<AppState>,
    signed_in: SignedIn,
    ClientAddress(source): ClientAddress,
    Form(form): Form<CreateKeyForm>,
) -> Result<Response, PageError> {
    csrf::check(&state, &signed_in, form.csrf.as_deref())?;
    let invalid = |message: String| invalid_form(&state, &signed_in, message);
    let mut scopes = Vec::new();
    for name in &form.scope {
        match name.parse::<Scope>() {
            Ok(scope) if PAGE_SCOPES.contains(&scope) => scopes.push(scope),
            _ => {
                return invalid(format!(
                    "scope `{name}` cannot be given here; keys made on this page may have \
                     completions and chat"
                ))
                .await
            }
        }
    }
    if scopes.is_empty() {
        return invalid("choose at least one scope".to_owned()).await;
    }
    let expires_in_days = match form.expires_in_days.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(days) => match days.parse::<u32>() {
            Ok(days) => Some(days),
            Err(_) => {
                return invalid(format!("`{days}` is not a number of days")).await;
            }
        },
    };
    let request = CreateKeyRequest {
        name: form.name.trim().to_owned(),
        scopes: Some(scopes.clone()),
        expires_in_days,
    };
    if let Err(message) = request.validate() {
        return invalid(message).await;
    }
    let grant = KeyGrant {
        name: request.name,
        scopes,
        expires_at: expires_in_days
            .map(|days| Utc::now() + chrono::Duration::days(i64::from(days))),
    };
    let generated = crate::keys::generate();
    let key = api_keys::create_audited(
        &state.db,
        &signed_in.user,
        &grant,
        &generated,
        &actor(&signed_in),
        &source,
    )
    .await
    .map_err(PageError::internal)?;
    tracing::info!(user_id = %signed_in.user.id, key_id = %key.id, "API key created on the account page");
    let notice = html! {
        div.notice {
            p { "Your new key " strong { (key.name) } ". Copy it now: it is not shown again." }
            p { code #new-key { (generated.secret) } }
        }
    };
    account_page(&state, &signed_in, Some(notice), StatusCode::CREATED).await
}

/// The account page again, saying what was wrong with the form.
async fn invalid_form(
    state: &AppState,
    signed_in: &SignedIn,
    message: String,
) -> Result<Response, PageError> {
    let notice = html! { p.error { (message) } };
    account_page(
        state,
        signed_in,
        Some(notice),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

#[derive(Debug, Deserialize)]
struct RevokeForm {
    csrf: Option<String>,
}

async fn revoke_key(
    State(state): State<AppState>,
    signed_in: SignedIn,
    ClientAddress(source): ClientAddress,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, PageError> {
    csrf::check(&state, &signed_in, form.csrf.as_deref())?;
    // Another user's key is answered like a key that does not exist.
    let key = api_keys::find_for_user(&state.db, &signed_in.user.id, &id)
        .await
        .map_err(PageError::internal)?
        .ok_or_else(|| PageError::NotFound(format!("you have no API key with id `{id}`")))?;
    api_keys::revoke_audited(&state.db, &key, &actor(&signed_in), &source)
        .await
        .map_err(PageError::internal)?;
    state.forget_cached_keys();
    tracing::info!(user_id = %signed_in.user.id, key_id = %key.id, "API key revoked on the account page");
    Ok(Redirect::to("/account").into_response())
}

fn actor(signed_in: &SignedIn) -> Actor {
    Actor::User {
        id: signed_in.user.id.clone(),
        key_id: None,
    }
}
