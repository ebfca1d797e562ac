//! The browser side of the hosted endpoint: sign-in through OAuth/OIDC providers, the
//! account page, and the device page that confirms a `tandem login`.
//!
//! Server-rendered HTML (maud escapes everything interpolated), no script, one
//! stylesheet served from here, a strict Content-Security-Policy. Sessions live in
//! HttpOnly, SameSite=Lax cookies ([`session`]); every form carries a CSRF token bound to
//! the session ([`csrf`]).

mod account;
mod csrf;
mod device;
pub(crate) mod page;
pub(crate) mod session;
mod sign_in;
pub(crate) mod sign_in_providers;

use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

pub(crate) use page::PageError;

/// The pages, with the session layer that resolves (and refreshes) the browser session
/// of each request.
pub(crate) fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(sign_in::router())
        .merge(account::router())
        .merge(device::router())
        .route_layer(from_fn_with_state(state.clone(), session::resolve))
        // The stylesheet needs no session.
        .route("/assets/tandem.css", get(page::stylesheet))
}
