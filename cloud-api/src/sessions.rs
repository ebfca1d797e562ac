//! Browser sessions for the account pages: a short-lived access token and a long-lived
//! refresh token.
//!
//! - The access token is a JWT signed with HS256 and a secret of at least 256 bits. On
//!   verification the algorithm is pinned (a token naming `none`, RS256 or anything else
//!   is refused, whatever its signature), and issuer, audience and expiry are checked.
//! - The refresh token is 256 random bits, stored only hashed, and exchanged on every
//!   use for a new pair (rotation). Every refresh token issued is remembered until its
//!   session ends, so one presented a second time (someone kept a copy) ends the whole
//!   session for everyone holding it.
//! - Signing out ends the session: its refresh tokens stop working at once, and access
//!   tokens are checked against the session on use ([`SessionSigner::authenticate`]).
//!
//! Nothing serves these to a browser yet: the sign-in and account pages of issue 6 will.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use crate::db::users::User;
use crate::db::DbError;
use crate::keys::{self, KeyHash};

/// Shortest secret accepted: 256 bits, as HS256 needs to be as strong as its hash.
pub const MIN_SECRET_BYTES: usize = 32;
/// The audience of access tokens: the account pages of this server.
pub const AUDIENCE: &str = "tandem-web";
/// How long an access token is good for.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::minutes(15);
/// How long a session can be refreshed for.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::days(30);

/// Why a session token was not accepted, or sessions cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the session secret is {got} bytes; it must be at least {MIN_SECRET_BYTES} bytes (256 bits) of random data")]
    WeakSecret { got: usize },
    #[error("the access token is not valid: {0}")]
    InvalidToken(String),
    #[error("the session has ended; sign in again")]
    Ended,
    #[error("unknown refresh token")]
    UnknownRefreshToken,
    #[error("this refresh token was already used; the session was ended to protect it")]
    RefreshReused,
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<sqlx::Error> for SessionError {
    fn from(error: sqlx::Error) -> Self {
        SessionError::Database(error.into())
    }
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user's id.
    pub sub: String,
    /// The session's id.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token.
    pub jti: String,
}

/// A fresh pair of tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    pub session_id: String,
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("session_id", &self.session_id)
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

/// Signs and checks session tokens; one per server, from its configuration.
pub struct SessionSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl std::fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSigner")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl SessionSigner {
    /// HS256 with `secret` (at least [`MIN_SECRET_BYTES`]); tokens name `issuer`.
    pub fn hs256(secret: &[u8], issuer: &str) -> Result<SessionSigner, SessionError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SessionError::WeakSecret { got: secret.len() });
        }
        Ok(SessionSigner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer: issuer.to_owned(),
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
        })
    }

    /// Starts a session for `user` (after they signed in).
    pub async fn start(
        &self,
        pool: &SqlitePool,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<IssuedTokens, SessionError> {
        let session_id = uuid::Uuid::now_v7().to_string();
        let mut transaction = pool.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&session_id)
        .bind(&user.id)
        .bind(now)
        .bind(now + self.refresh_ttl)
        .execute(&mut *transaction)
        .await?;
        let refresh_token = issue_refresh_token(&mut transaction, &session_id, now).await?;
        transaction.commit().await?;
        let (access_token, access_expires_at) = self.access_token(&user.id, &session_id, now)?;
        Ok(IssuedTokens {
            session_id,
            access_token,
            access_expires_at,
            refresh_token,
        })
    }

    fn access_token(
        &self,
        user_id: &str,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), SessionError> {
        let expires_at = now + self.access_ttl;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| SessionError::InvalidToken(error.to_string()))?;
        Ok((token, expires_at))
    }

    /// The claims of a well-signed, current access token of this server. Says nothing
    /// about whether its session has ended: see [`SessionSigner::authenticate`].
    pub fn verify(&self, token: &str) -> Result<AccessClaims, SessionError> {
        // Pinned: the header's `alg` must be HS256; `none` and the others are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|error| SessionError::InvalidToken(error.to_string()))
    }

    /// A verified access token whose session is still going.
    pub async fn authenticate(
        &self,
        pool: &SqlitePool,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, SessionError> {
        let claims = self.verify(token)?;
        let active: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM sessions WHERE id = ? AND user_id = ? AND revoked_at IS NULL \
             AND expires_at > ?",
        )
        .bind(&claims.sid)
        .bind(&claims.sub)
        .bind(now)
        .fetch_optional(pool)
        .await?;
        active.map(|_| claims).ok_or(SessionError::Ended)
    }

    /// Exchanges a refresh token for a new pair. A token used before ends its session.
    pub async fn refresh(
        &self,
        pool: &SqlitePool,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedTokens, SessionError> {
        let hash = KeyHash::of(refresh_token);
        let mut transaction = pool.begin().await?;
        let row: Option<RefreshRow> = sqlx::query_as(
            "SELECT t.session_id, t.used_at, s.user_id, s.expires_at, s.revoked_at \
                 FROM session_refresh_tokens t JOIN sessions s ON s.id = t.session_id \
                 WHERE t.token_hash = ?",
        )
        .bind(&hash.0[..])
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(RefreshRow {
            session_id,
            used_at,
            user_id,
            expires_at,
            revoked_at,
        }) = row
        else {
            return Err(SessionError::UnknownRefreshToken);
        };
        if revoked_at.is_some() || expires_at <= now {
            return Err(SessionError::Ended);
        }
        // Claimed conditionally, so two racing exchanges cannot both win.
        let claimed = sqlx::query(
            "UPDATE session_refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(&hash.0[..])
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if used_at.is_some() || claimed == 0 {
            end_session(&mut *transaction, &session_id, "refresh_reuse", now).await?;
            transaction.commit().await?;
            tracing::warn!(%session_id, "refresh token used twice; session ended");
            return Err(SessionError::RefreshReused);
        }
        let refresh_token = issue_refresh_token(&mut transaction, &session_id, now).await?;
        transaction.commit().await?;
        let (access_token, access_expires_at) = self.access_token(&user_id, &session_id, now)?;
        Ok(IssuedTokens {
            session_id,
            access_token,
            access_expires_at,
            refresh_token,
        })
    }
}

/// A refresh token with its session.
#[derive(sqlx::FromRow)]
struct RefreshRow {
    session_id: String,
    used_at: Option<DateTime<Utc>>,
    user_id: String,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

/// Ends a session (sign-out): its refresh tokens and access tokens stop working.
pub async fn sign_out(
    pool: &SqlitePool,
    session_id: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    end_session(pool, session_id, "sign_out", now).await
}

async fn end_session<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    session_id: &str,
    because: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = ?, revoked_because = ? WHERE id = ? AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(because)
    .bind(session_id)
    .execute(executor)
    .await?;
    Ok(())
}

async fn issue_refresh_token(
    transaction: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    session_id: &str,
    now: DateTime<Utc>,
) -> Result<String, DbError> {
    let token = keys::generate_secret();
    sqlx::query(
        "INSERT INTO session_refresh_tokens (token_hash, session_id, issued_at) VALUES (?, ?, ?)",
    )
    .bind(&KeyHash::of(&token).0[..])
    .bind(session_id)
    .bind(now)
    .execute(&mut **transaction)
    .await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use tandem_shared::Tier;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    async fn pool_with_user() -> (tempfile::TempDir, SqlitePool, User) {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::connect(crate::db::options_for_file(&dir.path().join("s.db")))
            .await
            .unwrap();
        crate::db::migrate(&pool).await.unwrap();
        let user = crate::db::users::create(&pool, "ada@example.com", Tier::pro())
            .await
            .unwrap();
        (dir, pool, user)
    }

    fn signer() -> SessionSigner {
        SessionSigner::hs256(SECRET, "https://tandem.test").unwrap()
    }

    /// A token with `claims`, signed as `header` says with `secret`.
    fn forge(header: &Header, claims: &AccessClaims, secret: &[u8]) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn claims(now: DateTime<Utc>) -> AccessClaims {
        AccessClaims {
            iss: "https://tandem.test".into(),
            aud: AUDIENCE.into(),
            sub: "u1".into(),
            sid: "s1".into(),
            iat: now.timestamp(),
            exp: (now + Duration::minutes(5)).timestamp(),
            jti: "j".into(),
        }
    }

    #[test]
    fn a_short_secret_is_refused() {
        let error = SessionSigner::hs256(b"short", "x").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the session secret is 5 bytes; it must be at least 32 bytes (256 bits) of random data"
        );
    }

    #[test]
    fn forged_expired_misaddressed_and_alg_confused_tokens_are_refused() {
        let signer = signer();
        let now = Utc::now();
        let good = forge(&Header::new(Algorithm::HS256), &claims(now), SECRET);
        assert_eq!(signer.verify(&good).unwrap().sub, "u1");

        let other_secret = forge(
            &Header::new(Algorithm::HS256),
            &claims(now),
            b"another-secret-another-secret-00",
        );
        assert!(signer.verify(&other_secret).is_err(), "forged");

        let mut expired = claims(now);
        expired.exp = (now - Duration::minutes(1)).timestamp();
        assert!(signer
            .verify(&forge(&Header::new(Algorithm::HS256), &expired, SECRET))
            .is_err());

        let mut audience = claims(now);
        audience.aud = "someone-else".into();
        assert!(signer
            .verify(&forge(&Header::new(Algorithm::HS256), &audience, SECRET))
            .is_err());

        let mut issuer = claims(now);
        issuer.iss = "https://evil.test".into();
        assert!(signer
            .verify(&forge(&Header::new(Algorithm::HS256), &issuer, SECRET))
            .is_err());

        // Another HMAC strength with the same secret is still not HS256.
        let hs512 = forge(&Header::new(Algorithm::HS512), &claims(now), SECRET);
        assert!(signer.verify(&hs512).is_err(), "alg pinned");

        // `alg: none` with no signature.
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = engine.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = engine.encode(serde_json::to_vec(&claims(now)).unwrap());
        assert!(
            signer.verify(&format!("{header}.{payload}.")).is_err(),
            "alg none"
        );
        // An RS256 header over an HMAC made with the secret (the classic confusion).
        let rs_header = engine.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let signing_input = format!("{rs_header}.{payload}");
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        assert!(
            signer
                .verify(&format!("{signing_input}.{signature}"))
                .is_err(),
            "alg confusion"
        );
    }

    #[tokio::test]
    async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session() {
        let (_dir, pool, user) = pool_with_user().await;
        let signer = signer();
        let now = Utc::now();
        let first = signer.start(&pool, &user, now).await.unwrap();
        let claims = signer
            .authenticate(&pool, &first.access_token, now)
            .await
            .unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.sid.as_str()),
            (user.id.as_str(), first.session_id.as_str())
        );

        let second = signer
            .refresh(&pool, &first.refresh_token, now)
            .await
            .unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_eq!(second.session_id, first.session_id);
        // The first refresh token again: someone kept a copy. The session ends for both.
        assert!(matches!(
            signer.refresh(&pool, &first.refresh_token, now).await,
            Err(SessionError::RefreshReused)
        ));
        assert!(matches!(
            signer.refresh(&pool, &second.refresh_token, now).await,
            Err(SessionError::Ended)
        ));
        assert!(matches!(
            signer.authenticate(&pool, &second.access_token, now).await,
            Err(SessionError::Ended)
        ));
        assert!(matches!(
            signer.refresh(&pool, "made-up", now).await,
            Err(SessionError::UnknownRefreshToken)
        ));
    }

    #[tokio::test]
    async fn signing_out_ends_access_and_refresh() {
        let (_dir, pool, user) = pool_with_user().await;
        let signer = signer();
        let now = Utc::now();
        let issued = signer.start(&pool, &user, now).await.unwrap();
        let epoch = crate::db::auth_epoch(&pool).await.unwrap();
        sign_out(&pool, &issued.session_id, now).await.unwrap();
        assert!(
            crate::db::auth_epoch(&pool).await.unwrap() > epoch,
            "caches are told"
        );
        assert!(matches!(
            signer.authenticate(&pool, &issued.access_token, now).await,
            Err(SessionError::Ended)
        ));
        assert!(matches!(
            signer.refresh(&pool, &issued.refresh_token, now).await,
            Err(SessionError::Ended)
        ));
        // Past the refresh window a session cannot be refreshed either.
        let other = signer.start(&pool, &user, now).await.unwrap();
        let later = now + DEFAULT_REFRESH_TTL + Duration::seconds(1);
        assert!(matches!(
            signer.refresh(&pool, &other.refresh_token, later).await,
            Err(SessionError::Ended)
        ));
    }
}
