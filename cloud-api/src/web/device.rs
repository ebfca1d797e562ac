//! `/device`: where `tandem login` sends people to confirm its code. Signed in, they
//! enter (or find prefilled) the code, see which client asks for what, and approve or
//! deny it; the waiting `tandem login` then receives its key, or the refusal.
//!
//! On a server without browser sign-in the page says how the code gets confirmed there:
//! by an administrator with `tandem-cloud device approve`.

use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::Form;
use chrono::{SecondsFormat, Utc};
use maud::html;
use serde::Deserialize;

use super::page::render;
use super::session::{self, MaybeSignedIn, SignedIn};
use super::{csrf, PageError};
use crate::db::audit::Actor;
use crate::db::device_codes;
use crate::extract::ClientAddress;
use crate::http::oauth::normalize_user_code;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/device", get(entry).post(review))
        .route("/device/confirm", post(confirm))
}

#[derive(Debug, Deserialize)]
struct CodeQuery {
    user_code: Option<String>,
}

/// Whether people can sign in here to confirm codes themselves.
fn browser_sign_in(state: &AppState) -> bool {
    state.sessions.is_some() && !state.sign_in.is_empty()
}

async fn entry(
    State(state): State<AppState>,
    MaybeSignedIn(signed_in): MaybeSignedIn,
    uri: Uri,
    Query(query): Query<CodeQuery>,
) -> Result<Response, PageError> {
    let code = query.user_code.as_deref().and_then(normalize_user_code);
    if !browser_sign_in(&state) {
        return Ok(administrator_page(code.as_deref()));
    }
    let Some(signed_in) = signed_in else {
        // To sign in and back here, code and all.
        return Ok(session::sign_in_redirect(
            uri.path_and_query().map_or("/device", |path| path.as_str()),
        ));
    };
    entry_page(&state, Some(&signed_in), code.as_deref(), None)
}

/// The form to type the code into.
fn entry_page(
    state: &AppState,
    signed_in: Option<&SignedIn>,
    code: Option<&str>,
    error: Option<&str>,
) -> Result<Response, PageError> {
    let csrf = match signed_in {
        Some(signed_in) => csrf::token(state, signed_in)?,
        None => String::new(),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = html! {
        h1 { "Connect a device" }
        @if let Some(signed_in) = signed_in {
            p { "Signed in as " strong { (signed_in.user.email) } "." }
        }
        @if let Some(error) = error { p.error { (error) } }
        p { "Enter the code " code { "tandem login" } " shows in your terminal." }
        form #device-code method="post" action="/device" {
            input type="hidden" name="csrf" value=(csrf);
            p {
                input.code name="user_code" value=[code] required autocomplete="off"
                    autocapitalize="characters" spellcheck="false" placeholder="BCDF-GHJK" maxlength="20";
            }
            button type="submit" { "Continue" }
        }
    };
    Ok(render(status, "Connect a device", body))
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    csrf: Option<String>,
    #[serde(default)]
    user_code: String,
}

/// Shows what the code would grant, with approve and deny buttons.
async fn review(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<CodeForm>,
) -> Result<Response, PageError> {
    csrf::check(&state, &signed_in, form.csrf.as_deref())?;
    let Some(code) = normalize_user_code(&form.user_code) else {
        return entry_page(
            &state,
            Some(&signed_in),
            None,
            Some("That is not a code: codes are eight letters, like BCDF-GHJK."),
        );
    };
    let Some(grant) = device_codes::find_pending(&state.db, &code, Utc::now())
        .await
        .map_err(PageError::internal)?
    else {
        return entry_page(
            &state,
            Some(&signed_in),
            Some(&code),
            Some(
                "No sign-in is waiting for this code: it expired, was already used, or was \
                 mistyped. Run `tandem login` again for a new one.",
            ),
        );
    };
    let csrf = csrf::token(&state, &signed_in)?;
    let scopes: Vec<&str> = grant.scopes.iter().map(|scope| scope.as_str()).collect();
    let client = if grant.client_id == "tandem-cli" {
        "the Tandem command line (tandem login)".to_owned()
    } else {
        grant.client_id.clone()
    };
    let body = html! {
        h1 { "Connect this device?" }
        p { "Code " strong.code { (grant.user_code) } }
        p { (client) " asks for an API key for " strong { (signed_in.user.email) }
            " with the scopes " strong { (scopes.join(", ")) } "." }
        p.muted { "Only approve if you started this yourself and the code matches your terminal. \
                   The request expires at "
                  (grant.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)) "." }
        form #device-confirm method="post" action="/device/confirm" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="user_code" value=(grant.user_code);
            button #approve type="submit" name="decision" value="approve" { "Approve" }
            " "
            button #deny type="submit" name="decision" value="deny" { "Deny" }
        }
    };
    Ok(render(StatusCode::OK, "Connect this device?", body))
}

#[derive(Debug, Deserialize)]
struct ConfirmForm {
    csrf: Option<String>,
    #[serde(default)]
    user_code: String,
    #[serde(default)]
    decision: String,
}

async fn confirm(
    State(state): State<AppState>,
    signed_in: SignedIn,
    ClientAddress(source): ClientAddress,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, PageError> {
    csrf::check(&state, &signed_in, form.csrf.as_deref())?;
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(PageError::InvalidForm(format!(
                "decision must be `approve` or `deny`, not `{other}`"
            )))
        }
    };
    let code = normalize_user_code(&form.user_code)
        .ok_or_else(|| PageError::InvalidForm("that is not a code".to_owned()))?;
    let actor = Actor::User {
        id: signed_in.user.id.clone(),
        key_id: None,
    };
    let decided = device_codes::decide_audited(
        &state.db,
        &code,
        &signed_in.user,
        approve,
        &actor,
        &source,
        Utc::now(),
    )
    .await
    .map_err(PageError::internal)?;
    if !decided {
        return entry_page(
            &state,
            Some(&signed_in),
            Some(&code),
            Some("This code was already decided or has expired. Run `tandem login` again."),
        );
    }
    let (result, title, message) = if approve {
        (
            "approved",
            "Device connected",
            "Return to your terminal: tandem login finishes by itself in a few seconds.",
        )
    } else {
        (
            "denied",
            "Request denied",
            "No key was issued. tandem login in that terminal stops with an error.",
        )
    };
    let body = html! {
        h1 { (title) }
        p #device-result data-result=(result) { (message) }
        p { a href="/account" { "Your account" } }
    };
    Ok(render(StatusCode::OK, title, body).into_response())
}

/// The page of a server without browser sign-in: an administrator confirms the code.
fn administrator_page(code: Option<&str>) -> Response {
    let command = format!(
        "tandem-cloud device approve --code {} --email YOUR-EMAIL",
        code.unwrap_or("CODE")
    );
    let body = html! {
        h1 { "Confirm your Tandem sign-in" }
        @if let Some(code) = code {
            p { "Your code is " strong.code { (code) } "." }
        }
        p { "Signing in through the browser is not set up on this server. \
             Ask an administrator of this server to confirm the code for your account:" }
        p { code { (command) } }
        p { code { "tandem login" } " is waiting and finishes by itself once the code is \
            confirmed. Codes expire after a few minutes; run " code { "tandem login" } " again \
            for a new one." }
    };
    render(StatusCode::OK, "Confirm your Tandem sign-in", body)
}
