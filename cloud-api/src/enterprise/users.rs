//! The user a verified identity provider token speaks for.
//!
//! A token signs in as the identity `enterprise`/`sub` of the `identities` table, as a
//! browser sign-in does with its provider's account ([`identities::sign_in`]): a known
//! subject is its user whatever email the token carries now; a new subject joins the user
//! with its verified email (whichever way that user signed up), or creates one on the
//! token's tier. The identity provider is then the source of truth for the user's tier:
//! a user on another tier is moved to the token's. Linking and moving are audited, once
//! each, not on every request.

use crate::db::Pool;
use serde_json::json;
use tandem_shared::Tier;

use super::{EnterpriseIdentity, EnterpriseVerifier};
use crate::db::audit::{self, Actor};
use crate::db::identities::{self, Linked, VerifiedIdentity};
use crate::db::users::{self, User};
use crate::error::AppError;
use crate::extract::AuthUser;
use crate::state::AppState;

/// The `provider` of the identities that tokens of `[enterprise]` sign in as.
pub const PROVIDER: &str = "enterprise";

/// The caller a bearer JWT speaks for, through the verifier's cache of verified tokens:
/// the first time a token is seen it is verified and its user found, linked or created
/// ([`user_for`]); `source` is the client's address, for the audit log.
pub(crate) async fn authenticate(
    state: &AppState,
    verifier: &EnterpriseVerifier,
    token: &str,
    source: &str,
) -> Result<AuthUser, AppError> {
    if let Some(cached) = verifier.cached_caller(token).await {
        return Ok(caller(cached.user, &cached.identity));
    }
    let identity = verifier.verify(token).await?;
    let user = user_for(&state.db, &verifier.config().issuer, &identity, source).await?;
    verifier
        .remember_caller(token, user.clone(), identity.clone())
        .await;
    Ok(caller(user, &identity))
}

fn caller(user: User, identity: &EnterpriseIdentity) -> AuthUser {
    AuthUser {
        key_id: identity.key_id(),
        user,
        scopes: identity.scopes(),
    }
}

/// The user `identity` (verified, from the provider whose `iss` is `issuer`) speaks for:
/// signed in through the identities table, then moved to the token's tier if on another.
pub async fn user_for(
    db: &Pool,
    issuer: &str,
    identity: &EnterpriseIdentity,
    source: &str,
) -> Result<User, AppError> {
    let verified = VerifiedIdentity {
        provider: PROVIDER.to_owned(),
        subject: identity.subject.clone(),
        email: identity.email.clone(),
    };
    let (user, linked) = sign_in(db, &verified, &identity.tier).await?;
    let linked = match linked {
        Linked::Existing => None,
        Linked::NewIdentity => Some("new_identity"),
        Linked::NewUser => Some("new_user"),
    };
    if let Some(linked) = linked {
        record(
            db,
            identity,
            &user,
            "sign_in.enterprise",
            source,
            json!({
                "linked": linked,
                "created": linked == "new_user",
                "email": identity.email,
                "tier": user.tier.as_str(),
                "subject": identity.subject,
                "issuer": issuer,
                "roles": identity.roles,
            }),
        )
        .await?;
        tracing::info!(user_id = %user.id, linked, "identity provider token linked to a user");
    }
    if user.tier == identity.tier {
        return Ok(user);
    }
    let moved = users::set_tier(db, &user.email, &identity.tier)
        .await
        .map_err(AppError::internal)?;
    record(
        db,
        identity,
        &user,
        "user.set_tier",
        source,
        json!({
            "from": user.tier.as_str(),
            "to": moved.tier.as_str(),
            "via": "enterprise",
            "roles": identity.roles,
        }),
    )
    .await?;
    tracing::info!(
        user_id = %user.id,
        from = %user.tier,
        to = %moved.tier,
        "tier set by the identity provider"
    );
    Ok(moved)
}

/// [`identities::sign_in`] at this moment. Concurrent first requests of a new user (an
/// editor opening several files) are serialised by its write transaction: one creates the
/// user, the others find it.
async fn sign_in(
    db: &Pool,
    identity: &VerifiedIdentity,
    new_user_tier: &Tier,
) -> Result<(User, Linked), AppError> {
    identities::sign_in(db, identity, new_user_tier, chrono::Utc::now())
        .await
        .map_err(AppError::internal)
}

/// Appends an audit entry about `user`, acted on through their identity provider token.
async fn record(
    db: &Pool,
    identity: &EnterpriseIdentity,
    user: &User,
    action: &str,
    source: &str,
    detail: serde_json::Value,
) -> Result<(), AppError> {
    let actor = Actor::User {
        id: user.id.clone(),
        key_id: Some(identity.key_id()),
    };
    audit::record(
        db,
        &actor,
        action,
        Some(&format!("user:{}", user.id)),
        source,
        &detail,
    )
    .await
    .map_err(AppError::internal)
}
