//! Browser sessions for the account pages: a short-lived access token and a long-lived
//! refresh token, served as cookies by the account pages in `crate::web`.
//!
//! - The access token is a JWT signed with the algorithm `[sessions] algorithm` names:
//!   - HS256 (the default): HMAC with a secret of at least 256 bits, shared by every
//!     instance (`jwt_secret_env`).
//!   - RS256 (RSA of at least 2048 bits) or ES256 (ECDSA on P-256): a PKCS#8 PEM private
//!     key (`private_key_env` or `private_key_file`). Tokens name the key in their `kid`
//!     header (its RFC 7638 thumbprint), and the public key is served as a JWKS at
//!     `/.well-known/jwks.json` ([`SessionSigner::jwks`]), so other services can check
//!     session tokens without holding anything that can make them.
//!
//!   On verification the algorithm is pinned to the configured one (a token naming
//!   `none`, another algorithm, or an HMAC made with the public key is refused, whatever
//!   its signature), and issuer, audience, expiry and (for RS256/ES256) the `kid` are
//!   checked.
//! - The refresh token is 256 random bits, stored only hashed, and exchanged on every
//!   use for a new pair (rotation). Every refresh token issued is remembered until its
//!   session ends, so one presented a second time (someone kept a copy) ends the whole
//!   session for everyone holding it.
//! - Signing out ends the session: its refresh tokens stop working at once, and access
//!   tokens are checked against the session on use ([`SessionSigner::authenticate`]).
//! - [`SessionSigner::derived_secret`] derives further secrets (CSRF token keys) from the
//!   signing material, the same on every instance sharing it.
//!
//! This module is the signer: issuing, verifying, refreshing and ending sessions.
//! Reading and checking the private key, and building its JWK, are in `key_material.rs`
//! (its [`KeyOrigin`], [`KeyProblem`] and [`MIN_RSA_BITS`] are re-exported here); the SQL
//! of the `sessions` and `session_refresh_tokens` tables is in [`crate::db::sessions`].

mod key_material;

use crate::db::{Executor, Pool};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::elliptic_curve::zeroize::Zeroizing;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use self::key_material::{keyed_hmac, read_private_key, AsymmetricKey, PublicJwk};
pub use self::key_material::{KeyOrigin, KeyProblem, MIN_RSA_BITS};
use crate::config::{SessionAlgorithm, SessionsConfig};
use crate::db::users::User;
use crate::db::{self, DbError};
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
    /// The HS256 secret is shorter than [`MIN_SECRET_BYTES`].
    #[error("the session secret is {got} bytes; it must be at least {MIN_SECRET_BYTES} bytes (256 bits) of random data")]
    WeakSecret { got: usize },
    /// `[sessions]` names an environment variable that is not set (or is empty).
    #[error("{origin} is not set")]
    Missing { origin: KeyOrigin },
    /// `[sessions] private_key_file` cannot be read.
    #[error("cannot read the {origin}: {error}")]
    Unreadable {
        origin: KeyOrigin,
        error: std::io::Error,
    },
    /// The secret or key `[sessions]` points at cannot sign.
    #[error("{origin}: {problem}")]
    Key {
        origin: KeyOrigin,
        problem: KeyProblem,
    },
    /// `[sessions]` settings that do not go together (`Config::load` refuses them).
    #[error("[sessions]: {0}")]
    Misconfigured(String),
    /// The access token is not one of this server's, or no longer current.
    #[error("the access token is not valid: {0}")]
    InvalidToken(String),
    /// The session was signed out, ended for a reused refresh token, or expired.
    #[error("the session has ended; sign in again")]
    Ended,
    /// No refresh token with this value was ever issued.
    #[error("unknown refresh token")]
    UnknownRefreshToken,
    /// The refresh token was exchanged before: its session was ended.
    #[error("this refresh token was already used; the session was ended to protect it")]
    RefreshReused,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
}

impl SessionError {
    /// The `[sessions]` setting a set-up error is about (`sessions` when it is several).
    pub fn setting(&self) -> &'static str {
        match self {
            SessionError::Missing { origin }
            | SessionError::Unreadable { origin, .. }
            | SessionError::Key { origin, .. } => origin.setting(),
            _ => "sessions",
        }
    }
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
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// RS256/ES256: the public key as a JWK, with its `kid`.
    public: Option<PublicJwk>,
    /// HMAC-SHA256 keyed with the signing material, for [`SessionSigner::derived_secret`].
    derive: Hmac<Sha256>,
    issuer: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl std::fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSigner")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.public.as_ref().map(|public| &public.kid))
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
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            public: None,
            derive: keyed_hmac(secret),
            issuer: issuer.to_owned(),
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
        })
    }

    /// The signer `[sessions]` describes, reading secrets through `env`; `None` when
    /// browser sessions are not configured. Tokens name `issuer`.
    pub fn from_config(
        config: &SessionsConfig,
        issuer: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<SessionSigner>, SessionError> {
        if !config.enabled() {
            return Ok(None);
        }
        let mut signer = match config.algorithm {
            SessionAlgorithm::HS256 => {
                let Some(variable) = &config.jwt_secret_env else {
                    return Err(SessionError::Misconfigured(
                        "algorithm HS256 signs with jwt_secret_env; a private key needs \
                         algorithm = \"RS256\" or \"ES256\""
                            .to_owned(),
                    ));
                };
                let origin = KeyOrigin::SecretEnv(variable.clone());
                let secret = Zeroizing::new(
                    env(variable)
                        .filter(|secret| !secret.is_empty())
                        .ok_or_else(|| SessionError::Missing {
                            origin: origin.clone(),
                        })?,
                );
                SessionSigner::hs256(secret.as_bytes(), issuer).map_err(|error| match error {
                    SessionError::WeakSecret { got } => SessionError::Key {
                        origin,
                        problem: KeyProblem::WeakSecret { got },
                    },
                    other => other,
                })?
            }
            algorithm @ (SessionAlgorithm::RS256 | SessionAlgorithm::ES256) => {
                if config.jwt_secret_env.is_some() {
                    return Err(SessionError::Misconfigured(format!(
                        "jwt_secret_env is for HS256; algorithm {algorithm:?} signs with the \
                         private key"
                    )));
                }
                let (origin, pem) = read_private_key(config, env)?;
                SessionSigner::asymmetric(algorithm, &pem, issuer)
                    .map_err(|problem| SessionError::Key { origin, problem })?
            }
        };
        signer.access_ttl = lifetime(
            i64::try_from(config.access_ttl_secs)
                .ok()
                .and_then(Duration::try_seconds),
            "access_ttl_secs",
        )?;
        signer.refresh_ttl = lifetime(
            Duration::try_days(i64::from(config.refresh_ttl_days)),
            "refresh_ttl_days",
        )?;
        Ok(Some(signer))
    }

    /// RS256 or ES256 with the PKCS#8 PEM private key `pem`.
    fn asymmetric(
        algorithm: SessionAlgorithm,
        pem: &str,
        issuer: &str,
    ) -> Result<SessionSigner, KeyProblem> {
        let key = AsymmetricKey::from_pem(algorithm, pem)?;
        Ok(SessionSigner {
            algorithm: key.algorithm,
            encoding: key.encoding,
            decoding: key.decoding,
            public: Some(key.public),
            derive: key.derive,
            issuer: issuer.to_owned(),
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
        })
    }

    /// The public signing key as a JSON Web Key Set (`{"keys": [...]}`), for
    /// `/.well-known/jwks.json`; `None` for HS256, whose key is secret.
    pub fn jwks(&self) -> Option<serde_json::Value> {
        self.public
            .as_ref()
            .map(|public| json!({"keys": [public.jwk]}))
    }

    /// A secret for `label` (say, the key of CSRF tokens): HMAC-SHA256 of `label` keyed
    /// with the signing material (the HS256 secret, or the private key's PKCS#8 DER), so
    /// every instance sharing the key derives the same one.
    pub fn derived_secret(&self, label: &str) -> [u8; 32] {
        let mut mac = self.derive.clone();
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// How long an access token is good for.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// How long a session can be kept alive by refreshing.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// Starts a session for `user` (after they signed in).
    pub async fn start(
        &self,
        pool: &Pool,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<IssuedTokens, SessionError> {
        let session_id = uuid::Uuid::now_v7().to_string();
        let mut transaction = crate::db::begin_write(pool).await?;
        db::sessions::create(
            &mut transaction,
            &session_id,
            &user.id,
            now,
            now + self.refresh_ttl,
        )
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
        let mut header = Header::new(self.algorithm);
        header.kid = self.public.as_ref().map(|public| public.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|error| SessionError::InvalidToken(error.to_string()))?;
        Ok((token, expires_at))
    }

    /// The claims of a well-signed, current access token of this server. Says nothing
    /// about whether its session has ended: see [`SessionSigner::authenticate`].
    pub fn verify(&self, token: &str) -> Result<AccessClaims, SessionError> {
        // Pinned: the header's `alg` must be the configured one; `none` and the others
        // are refused.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| SessionError::InvalidToken(error.to_string()))?;
        if header.alg != self.algorithm {
            return Err(SessionError::InvalidToken(format!(
                "it is signed with {:?}; this server signs with {:?}",
                header.alg, self.algorithm
            )));
        }
        if let (Some(public), Some(kid)) = (&self.public, &header.kid) {
            if *kid != public.kid {
                return Err(SessionError::InvalidToken(
                    "it names another signing key (kid)".to_owned(),
                ));
            }
        }
        let mut validation = Validation::new(self.algorithm);
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
        pool: &Pool,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, SessionError> {
        let claims = self.verify(token)?;
        if db::sessions::is_active(pool, &claims.sid, &claims.sub, now).await? {
            Ok(claims)
        } else {
            Err(SessionError::Ended)
        }
    }

    /// Exchanges a refresh token for a new pair. A token used before ends its session.
    pub async fn refresh(
        &self,
        pool: &Pool,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedTokens, SessionError> {
        let hash = KeyHash::of(refresh_token);
        let mut transaction = crate::db::begin_write(pool).await?;
        let row = db::sessions::find_refresh_token(&mut transaction, &hash).await?;
        let Some(db::sessions::RefreshToken {
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
        let claimed = db::sessions::claim_refresh_token(&mut transaction, &hash, now).await?;
        if used_at.is_some() || !claimed {
            db::sessions::end(&mut transaction, &session_id, "refresh_reuse", now).await?;
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

/// A positive lifetime, or the error naming its setting.
fn lifetime(value: Option<Duration>, setting: &str) -> Result<Duration, SessionError> {
    value
        .filter(|duration| *duration > Duration::zero())
        .ok_or_else(|| SessionError::Misconfigured(format!("{setting} is out of range")))
}

/// Ends a session (sign-out): its refresh tokens and access tokens stop working.
pub async fn sign_out(pool: &Pool, session_id: &str, now: DateTime<Utc>) -> Result<(), DbError> {
    db::sessions::end(pool, session_id, "sign_out", now).await
}

/// Makes a refresh token for `session_id` and stores its hash.
async fn issue_refresh_token<'e>(
    executor: impl Into<Executor<'e>>,
    session_id: &str,
    now: DateTime<Utc>,
) -> Result<String, DbError> {
    let token = keys::generate_secret();
    db::sessions::insert_refresh_token(executor, &KeyHash::of(&token), session_id, now).await?;
    Ok(token)
}

/// Fixtures and signers shared by the tests of this module and of [`key_material`].
#[cfg(test)]
mod test_support {
    use super::*;

    pub(super) const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    // Test-only keys, generated for these tests with `openssl genpkey` (PKCS#8 PEM). They
    // are public: never sign anything real with them.
    pub(super) const RSA_2048: &str = include_str!("../../tests/fixtures/sessions/rsa-2048.pem");
    pub(super) const RSA_1024: &str = include_str!("../../tests/fixtures/sessions/rsa-1024.pem");
    pub(super) const EC_P256: &str = include_str!("../../tests/fixtures/sessions/ec-p256.pem");
    pub(super) const EC_P256_OTHER: &str =
        include_str!("../../tests/fixtures/sessions/ec-p256-other.pem");
    pub(super) const EC_P384: &str = include_str!("../../tests/fixtures/sessions/ec-p384.pem");

    pub(super) const ISSUER: &str = "https://tandem.test";
    pub(super) const KEY_ENV: &str = "TANDEM_TEST_SESSION_KEY";

    pub(super) fn key_config(algorithm: SessionAlgorithm) -> SessionsConfig {
        SessionsConfig {
            algorithm,
            private_key_env: Some(KEY_ENV.to_owned()),
            ..SessionsConfig::default()
        }
    }

    /// The signer for `algorithm` with the PEM `pem` in [`KEY_ENV`].
    pub(super) fn try_keyed(
        algorithm: SessionAlgorithm,
        pem: &str,
    ) -> Result<SessionSigner, SessionError> {
        let pem = pem.to_owned();
        SessionSigner::from_config(&key_config(algorithm), ISSUER, &move |name| {
            (name == KEY_ENV).then(|| pem.clone())
        })
        .map(|signer| signer.expect("sessions are configured"))
    }

    pub(super) fn keyed(algorithm: SessionAlgorithm, pem: &str) -> SessionSigner {
        try_keyed(algorithm, pem).unwrap()
    }

    pub(super) fn rs256() -> SessionSigner {
        keyed(SessionAlgorithm::RS256, RSA_2048)
    }

    pub(super) fn es256() -> SessionSigner {
        keyed(SessionAlgorithm::ES256, EC_P256)
    }

    pub(super) fn kid_of(signer: &SessionSigner) -> String {
        signer.public.as_ref().unwrap().kid.clone()
    }

    pub(super) fn signer() -> SessionSigner {
        SessionSigner::hs256(SECRET, ISSUER).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    use tandem_shared::Tier;

    use super::test_support::*;
    use super::*;

    /// A token with `claims`, signed with the PEM key `pem` as `header` says.
    fn forge_with_key(header: &Header, claims: &AccessClaims, pem: &str) -> String {
        let key = match header.alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            other => panic!("no key for {other:?}"),
        };
        jsonwebtoken::encode(header, claims, &key).unwrap()
    }

    fn header_with_kid(alg: Algorithm, kid: Option<&str>) -> Header {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        header
    }

    async fn pool_with_user() -> (crate::db::scratch::ScratchDb, Pool, User) {
        let (dir, pool) = crate::db::test_support::temp_db().await;
        let user = crate::db::users::create(&pool, "ada@example.com", Tier::pro())
            .await
            .unwrap();
        (dir, pool, user)
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

    #[test]
    fn without_a_secret_or_key_there_are_no_sessions() {
        let signer =
            SessionSigner::from_config(&SessionsConfig::default(), ISSUER, &|_| None).unwrap();
        assert!(signer.is_none());
    }

    #[test]
    fn hs256_comes_from_the_variable_with_the_configured_lifetimes() {
        let config = SessionsConfig {
            jwt_secret_env: Some("TANDEM_TEST_SESSION_SECRET".to_owned()),
            access_ttl_secs: 120,
            refresh_ttl_days: 2,
            ..SessionsConfig::default()
        };
        let env = |name: &str| {
            (name == "TANDEM_TEST_SESSION_SECRET")
                .then(|| String::from_utf8(SECRET.to_vec()).unwrap())
        };
        let signer = SessionSigner::from_config(&config, ISSUER, &env)
            .unwrap()
            .unwrap();
        assert_eq!(signer.access_ttl(), Duration::seconds(120));
        assert_eq!(signer.refresh_ttl(), Duration::days(2));
        assert!(signer.jwks().is_none(), "an HMAC key is never published");
        let now = Utc::now();
        let (token, expires_at) = signer.access_token("u1", "s1", now).unwrap();
        assert_eq!(expires_at, now + Duration::seconds(120));
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!((header.alg, header.kid), (Algorithm::HS256, None));
        assert_eq!(signer.verify(&token).unwrap().sub, "u1");
        // The same tokens as the plain constructor makes.
        let plain = SessionSigner::hs256(SECRET, ISSUER).unwrap();
        assert_eq!(plain.verify(&token).unwrap().sid, "s1");

        let short = |value: &'static str| {
            SessionSigner::from_config(&config, ISSUER, &move |_| Some(value.to_owned()))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            short("too-short"),
            "environment variable `TANDEM_TEST_SESSION_SECRET` (named by \
             sessions.jwt_secret_env): the session secret is 9 bytes; it must be at least 32 \
             bytes (256 bits) of random data"
        );
        let missing = SessionSigner::from_config(&config, ISSUER, &|_| None).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "environment variable `TANDEM_TEST_SESSION_SECRET` (named by \
             sessions.jwt_secret_env) is not set"
        );
        assert_eq!(missing.setting(), "sessions.jwt_secret_env");
    }

    #[tokio::test]
    async fn rs256_and_es256_sessions_round_trip_with_the_key_id() {
        let (_dir, pool, user) = pool_with_user().await;
        for (signer, alg) in [(rs256(), Algorithm::RS256), (es256(), Algorithm::ES256)] {
            let now = Utc::now();
            let issued = signer.start(&pool, &user, now).await.unwrap();
            let header = jsonwebtoken::decode_header(&issued.access_token).unwrap();
            assert_eq!(header.alg, alg);
            assert_eq!(header.kid.as_deref(), Some(kid_of(&signer).as_str()));
            let claims = signer
                .authenticate(&pool, &issued.access_token, now)
                .await
                .unwrap();
            assert_eq!(
                (
                    claims.sub.as_str(),
                    claims.sid.as_str(),
                    claims.iss.as_str()
                ),
                (user.id.as_str(), issued.session_id.as_str(), ISSUER)
            );
            let refreshed = signer
                .refresh(&pool, &issued.refresh_token, now)
                .await
                .unwrap();
            assert_eq!(
                signer.verify(&refreshed.access_token).unwrap().sid,
                issued.session_id
            );
            // Another instance with the same key accepts it.
            let twin = keyed(
                signer_algorithm(&signer),
                if alg == Algorithm::RS256 {
                    RSA_2048
                } else {
                    EC_P256
                },
            );
            assert_eq!(twin.verify(&refreshed.access_token).unwrap().sub, user.id);
        }
    }

    fn signer_algorithm(signer: &SessionSigner) -> SessionAlgorithm {
        match signer.algorithm {
            Algorithm::RS256 => SessionAlgorithm::RS256,
            Algorithm::ES256 => SessionAlgorithm::ES256,
            _ => SessionAlgorithm::HS256,
        }
    }

    #[test]
    fn tokens_of_another_algorithm_or_key_are_refused() {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = Utc::now();
        let rs = rs256();
        let es = es256();
        let rs_kid = kid_of(&rs);
        let es_kid = kid_of(&es);
        let good = forge_with_key(
            &header_with_kid(Algorithm::RS256, Some(&rs_kid)),
            &claims(now),
            RSA_2048,
        );
        assert_eq!(rs.verify(&good).unwrap().sub, "u1");
        let refused = |signer: &SessionSigner, token: &str, what: &str| {
            let error = signer.verify(token).unwrap_err();
            assert!(
                matches!(error, SessionError::InvalidToken(_)),
                "{what}: {error}"
            );
        };

        // The classic confusion: HS256 with the public key (as PEM, DER or JWK) as the
        // HMAC secret.
        let public = rsa::RsaPrivateKey::from_pkcs8_pem(RSA_2048)
            .unwrap()
            .to_public_key();
        let public_pem =
            rsa::pkcs8::EncodePublicKey::to_public_key_pem(&public, rsa::pkcs8::LineEnding::LF)
                .unwrap();
        let public_der = rsa::pkcs8::EncodePublicKey::to_public_key_der(&public).unwrap();
        let public_jwk = rs.jwks().unwrap()["keys"][0].to_string();
        for secret in [
            public_pem.as_bytes(),
            public_der.as_bytes(),
            public_jwk.as_bytes(),
        ] {
            for kid in [None, Some(rs_kid.as_str())] {
                let token = jsonwebtoken::encode(
                    &header_with_kid(Algorithm::HS256, kid),
                    &claims(now),
                    &EncodingKey::from_secret(secret),
                )
                .unwrap();
                refused(&rs, &token, "HS256 keyed with the public key");
            }
        }

        // ES256 to an RS256 signer and RS256 to an ES256 one, even naming their kid.
        let es_token = forge_with_key(
            &header_with_kid(Algorithm::ES256, Some(&rs_kid)),
            &claims(now),
            EC_P256,
        );
        refused(&rs, &es_token, "ES256 to RS256");
        let rs_token = forge_with_key(
            &header_with_kid(Algorithm::RS256, Some(&es_kid)),
            &claims(now),
            RSA_2048,
        );
        refused(&es, &rs_token, "RS256 to ES256");

        // `alg: none`, with and without the right kid.
        let payload = engine.encode(serde_json::to_vec(&claims(now)).unwrap());
        for header in [
            json!({"alg": "none", "typ": "JWT"}),
            json!({"alg": "none", "typ": "JWT", "kid": rs_kid}),
            json!({"alg": "None", "kid": rs_kid}),
        ] {
            let header = engine.encode(header.to_string());
            refused(&rs, &format!("{header}.{payload}."), "alg none");
        }
        // An RS256 signature over an ES256 header (the header names the wrong algorithm).
        let es_header = engine.encode(json!({"alg": "ES256", "kid": es_kid}).to_string());
        let signing_input = format!("{es_header}.{payload}");
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_rsa_pem(RSA_2048.as_bytes()).unwrap(),
            Algorithm::RS256,
        )
        .unwrap();
        refused(
            &rs,
            &format!("{signing_input}.{signature}"),
            "header says ES256",
        );
        // Another EC key, claiming the right kid: the signature does not verify.
        let other = forge_with_key(
            &header_with_kid(Algorithm::ES256, Some(&es_kid)),
            &claims(now),
            EC_P256_OTHER,
        );
        refused(&es, &other, "another key");
        // Expiry, audience and issuer are checked as for HS256.
        let mut expired = claims(now);
        expired.exp = (now - Duration::minutes(1)).timestamp();
        let expired = forge_with_key(&header_with_kid(Algorithm::ES256, None), &expired, EC_P256);
        refused(&es, &expired, "expired");
        let mut issuer = claims(now);
        issuer.iss = "https://evil.test".into();
        let issuer = forge_with_key(&header_with_kid(Algorithm::ES256, None), &issuer, EC_P256);
        refused(&es, &issuer, "issuer");
    }

    #[test]
    fn a_token_naming_another_key_id_is_refused() {
        let now = Utc::now();
        let es = es256();
        let wrong = forge_with_key(
            &header_with_kid(Algorithm::ES256, Some("another-key")),
            &claims(now),
            EC_P256,
        );
        let error = es.verify(&wrong).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the access token is not valid: it names another signing key (kid)"
        );
        // Without a kid the signature alone decides.
        let bare = forge_with_key(
            &header_with_kid(Algorithm::ES256, None),
            &claims(now),
            EC_P256,
        );
        assert_eq!(es.verify(&bare).unwrap().sub, "u1");
    }

    #[test]
    fn debug_output_shows_no_key() {
        let debug = format!("{:?}", es256());
        assert!(debug.contains("ES256") && debug.contains(ISSUER), "{debug}");
        assert!(!debug.contains("derive") && !debug.contains("encoding"));
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
