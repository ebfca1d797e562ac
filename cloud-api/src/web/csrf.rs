//! CSRF tokens for the pages' forms: an HMAC of the session id under a key derived from
//! the session signing key, so every instance computes the same token and a token from
//! one session is worthless in another. SameSite=Lax cookies already keep other sites'
//! form posts from carrying the session; the token is the second, independent lock.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::session::SignedIn;
use super::PageError;
use crate::state::AppState;

/// The label of the derived key, so it is never the key of anything else.
const KEY_LABEL: &str = "tandem csrf v1";

/// The token the forms of `signed_in`'s pages carry in their `csrf` field.
pub(super) fn token(state: &AppState, signed_in: &SignedIn) -> Result<String, PageError> {
    let signer = state.sessions.as_deref().ok_or(PageError::SignInOff)?;
    let key = signer.derived_secret(KEY_LABEL);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(PageError::internal)?;
    mac.update(signed_in.session_id.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// Refuses a form whose token is missing or is not this session's.
pub(super) fn check(
    state: &AppState,
    signed_in: &SignedIn,
    submitted: Option<&str>,
) -> Result<(), PageError> {
    let expected = token(state, signed_in)?;
    let submitted = submitted.unwrap_or_default();
    if bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) {
        Ok(())
    } else {
        tracing::warn!(user_id = %signed_in.user.id, "form refused: CSRF token missing or wrong");
        Err(PageError::Csrf)
    }
}
