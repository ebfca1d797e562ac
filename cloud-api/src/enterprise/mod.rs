//! Bearer JWTs issued by the organisation's own identity provider (`[enterprise]`).
//!
//! [`EnterpriseVerifier::verify`] turns a token into an [`EnterpriseIdentity`]: who (the
//! `sub` and the email claim), which tier, whether an administrator. What it checks:
//!
//! - **The key.** The token's header must name a `kid`; the key comes from the provider's
//!   JWKS (`jwks_url`), fetched lazily and cached by `kid`. A `kid` not in the cache
//!   triggers one refetch, at most once per `jwks_min_refresh_secs` however many unknown
//!   `kid`s arrive (concurrent misses share that one fetch); the set is also refetched
//!   when older than [`JWKS_MAX_AGE`], so a key the provider withdraws stops working. A
//!   JWKS that cannot be fetched is a 503 for tokens it would have to answer for, while
//!   the keys already cached keep working. Keys named in the token itself (`jku`, `jwk`,
//!   `x5u`) are never used.
//! - **The algorithm.** Only public-key algorithms: RS256/384/512, PS256/384/512,
//!   ES256/384 and EdDSA. The algorithm is pinned to the JWK's own `alg`, or, when the JWK
//!   has none, to its key type (RSA: the RS and PS families; EC P-256: ES256; EC P-384:
//!   ES384; OKP Ed25519: EdDSA). A header `alg` that differs, `none`, or any HMAC
//!   algorithm is refused (algorithm confusion). Symmetric (`oct`) keys and encryption
//!   keys in the JWKS are ignored.
//! - **The claims.** `iss` and `aud` must be the configured ones; `exp` must be in the
//!   future and `nbf`, when present, in the past ([`LEEWAY_SECS`] of clock skew allowed);
//!   `sub` and the email claim are required, and a token saying `email_verified: false` is
//!   refused.
//! - **The tier.** The roles claim (`roles_claim`) may hold a string or an array of
//!   strings, and may be a dotted path into nested objects (`realm_access.roles`, as
//!   Keycloak puts it); a claim whose literal name contains dots (`https://example.com/roles`)
//!   is found first. Each role is looked up in `[enterprise.roles]`: `admin` adds the
//!   admin scope, a tier name is a candidate. The user gets the **highest** candidate
//!   tier, ranked as the rest of the server ranks tiers: by daily request quota, then daily
//!   tokens, then hourly requests, then name. Without a candidate, `default_tier`; without
//!   that, the token is refused (403) naming the roles it carries.
//!
//! Verified callers are cached by a hash of the token for at most [`CALLER_CACHE_TTL`] and
//! never past the token's `exp`; the state's auth-epoch watcher empties the cache when the
//! database's auth epoch moves (a tier changed, a user deleted), with the API-key cache.
//!
//! The parts: `jwks` (the provider's keys and the token header), `claims`
//! (reading the claims) and [`users`] (the user a verified token speaks for).

mod claims;
mod jwks;
pub mod users;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::Validation;
use moka::future::Cache;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tandem_shared::{Scope, Tier};

pub use self::jwks::{JWKS_MAX_AGE, JWKS_TIMEOUT, MAX_JWKS_BYTES};
use crate::config::{EnterpriseConfig, RoleGrant};
use crate::db::users::User;
use crate::error::AppError;
use crate::tiers::Tiers;

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// Longest a verified token is remembered (never past its `exp`).
pub const CALLER_CACHE_TTL: Duration = Duration::from_secs(60);
/// Longest bearer token considered.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// How `AuthUser::key_id` starts for a caller authenticated by an enterprise token; API
/// key ids are UUIDs, so the two never meet.
pub const JWT_KEY_ID_PREFIX: &str = "jwt:";

/// Most verified tokens remembered.
const CALLER_CACHE_CAPACITY: u64 = 10_000;
/// Longest `kid` and `sub` accepted, in bytes.
const MAX_ID_BYTES: usize = 255;

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterpriseIdentity {
    /// The token's `sub`.
    pub subject: String,
    /// The verified email (normalised: trimmed, lower-case).
    pub email: String,
    /// Every role the roles claim held, mapped or not.
    pub roles: Vec<String>,
    /// The tier the roles (or `default_tier`) give.
    pub tier: Tier,
    /// Whether a role maps to `admin`.
    pub admin: bool,
    /// The token's `exp`, in seconds since the Unix epoch.
    pub expires_at: i64,
}

impl EnterpriseIdentity {
    /// The stable id standing in for an API key id (`jwt:<sub>`): in usage records, the
    /// audit log's `actor_key`, and `AuthUser::key_id`.
    pub fn key_id(&self) -> String {
        format!("{JWT_KEY_ID_PREFIX}{}", self.subject)
    }

    /// What the caller may do: completions and chat, and administration for an admin.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes = Scope::DEFAULT.to_vec();
        if self.admin {
            scopes.push(Scope::Admin);
        }
        scopes
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnterpriseError {
    /// Not a valid token from the configured provider (401). The message says what was
    /// wrong, never what the token held.
    #[error("{0}")]
    Rejected(String),
    /// A valid token whose roles map to no tier, with no `default_tier` (403).
    #[error(
        "none of the roles in your token's `{claim}` claim ({}) is mapped to a tier in \
         [enterprise.roles], and the server has no enterprise default_tier: ask an \
         administrator to map one of your roles to a tier",
        describe_roles(.roles)
    )]
    NoTier { claim: String, roles: Vec<String> },
    /// The JWKS could not be fetched, so the token's key cannot be known (503).
    #[error("the identity provider's signing keys (JWKS) could not be fetched: {0}")]
    KeysUnavailable(String),
}

fn rejected(message: impl Into<String>) -> EnterpriseError {
    EnterpriseError::Rejected(message.into())
}

/// The roles as a refusal names them: a few, each shortened, without control characters.
fn describe_roles(roles: &[String]) -> String {
    const SHOWN: usize = 10;
    const CHARS: usize = 64;
    if roles.is_empty() {
        return "it holds none".to_owned();
    }
    let mut shown: Vec<String> = roles
        .iter()
        .take(SHOWN)
        .map(|role| {
            let clean: String = role
                .chars()
                .filter(|c| !c.is_control())
                .take(CHARS)
                .collect();
            format!("`{clean}`")
        })
        .collect();
    if roles.len() > SHOWN {
        shown.push(format!("and {} more", roles.len() - SHOWN));
    }
    format!("it holds {}", shown.join(", "))
}

impl From<EnterpriseError> for AppError {
    fn from(error: EnterpriseError) -> AppError {
        match error {
            EnterpriseError::Rejected(reason) => {
                AppError::Unauthorized(format!("identity provider token refused: {reason}"))
            }
            EnterpriseError::NoTier { .. } => AppError::Forbidden(error.to_string()),
            EnterpriseError::KeysUnavailable(_) => AppError::NotReady {
                public: "the identity provider's signing keys (JWKS) cannot be fetched, so \
                         its tokens cannot be checked; try again shortly"
                    .to_owned(),
                cause: Box::new(error),
            },
        }
    }
}

/// Whether a bearer value has the shape of a JWS compact serialisation: three base64url
/// parts separated by dots, the first two non-empty (the signature is empty for
/// `alg: none`, which [`EnterpriseVerifier::verify`] refuses with a clear message).
pub fn looks_like_jwt(value: &str) -> bool {
    let mut parts = value.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !header.is_empty()
        && !payload.is_empty()
        && [header, payload, signature].iter().all(|part| {
            part.bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        })
}

/// A verified caller, as the token cache holds it.
#[derive(Debug, Clone)]
pub struct VerifiedCaller {
    /// The user the token maps to, as stored when the token was first seen.
    pub user: User,
    pub identity: EnterpriseIdentity,
    valid_until: Instant,
}

/// Entries live until their own `valid_until`.
struct UntilValid;

impl moka::Expiry<[u8; 32], VerifiedCaller> for UntilValid {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &VerifiedCaller,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.valid_until.saturating_duration_since(created_at))
    }
}

/// Checks bearer JWTs against the organisation's identity provider; one per server.
pub struct EnterpriseVerifier {
    config: EnterpriseConfig,
    /// The rank of every tier of the deployment; higher is better.
    ranks: HashMap<Tier, TierRank>,
    /// The provider's signing keys.
    keys: jwks::KeyStore,
    callers: Cache<[u8; 32], VerifiedCaller>,
}

/// How tiers compare: daily requests, daily tokens, hourly requests, then the name (as
/// [`Tiers::top`] and the `cheapest_with_*` helpers rank them by daily quota).
type TierRank = (u32, u64, u32, Tier);

impl std::fmt::Debug for EnterpriseVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnterpriseVerifier")
            .field("jwks_url", &self.config.jwks_url)
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .finish_non_exhaustive()
    }
}

impl EnterpriseVerifier {
    /// A verifier for `config`, ranking the deployment's `tiers`, fetching the JWKS with
    /// `http`. Nothing is fetched until the first token.
    pub fn new(config: EnterpriseConfig, tiers: &Tiers, http: reqwest::Client) -> Self {
        let ranks = tiers
            .all()
            .map(|policy| {
                let rank = (
                    policy.requests_per_day,
                    policy.tokens_per_day,
                    policy.requests_per_hour,
                    policy.name.clone(),
                );
                (policy.name.clone(), rank)
            })
            .collect();
        EnterpriseVerifier {
            keys: jwks::KeyStore::new(
                config.jwks_url.clone(),
                http,
                Duration::from_secs(config.jwks_min_refresh_secs),
            ),
            config,
            ranks,
            callers: Cache::builder()
                .max_capacity(CALLER_CACHE_CAPACITY)
                .expire_after(UntilValid)
                .build(),
        }
    }

    /// The verifier the server runs with, fetching the JWKS with its own HTTP client.
    /// The server's auth-epoch watcher ([`AppState`](crate::state::AppState)) calls
    /// [`forget_callers`](Self::forget_callers) when tiers or users change.
    pub fn from_config(config: EnterpriseConfig, tiers: &Tiers) -> Self {
        let http = reqwest::Client::builder()
            .timeout(JWKS_TIMEOUT)
            .connect_timeout(JWKS_TIMEOUT)
            .build()
            .unwrap_or_else(|error| {
                tracing::error!(%error, "cannot build the JWKS client; using the defaults");
                reqwest::Client::new()
            });
        EnterpriseVerifier::new(config, tiers, http)
    }

    /// The configuration this verifier checks against.
    pub fn config(&self) -> &EnterpriseConfig {
        &self.config
    }

    /// Verifies `token` and says who it speaks for. Never panics on any input.
    pub async fn verify(&self, token: &str) -> Result<EnterpriseIdentity, EnterpriseError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(rejected(format!(
                "the token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        if !looks_like_jwt(token) {
            return Err(rejected(
                "the token is not a JWT (three base64url parts separated by dots)",
            ));
        }
        let header = jwks::Header::parse(token)?;
        let signing = self.keys.signing_key(&header.kid).await?;
        if !signing.algorithms.contains(&header.alg) {
            return Err(rejected(format!(
                "the token's algorithm {:?} is not the one its key (`kid`) is published for ({})",
                header.alg,
                signing
                    .algorithms
                    .iter()
                    .map(|alg| format!("{alg:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&[&self.config.audience]);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &signing.key, &validation)
            .map_err(|error| rejected(describe_jwt_error(error.kind())))?
            .claims;
        self.identity(&claims)
    }

    /// The caller remembered for `token`, if it was verified recently and has not expired.
    pub async fn cached_caller(&self, token: &str) -> Option<VerifiedCaller> {
        let caller = self.callers.get(&token_hash(token)).await?;
        (caller.valid_until > Instant::now()).then_some(caller)
    }

    /// Remembers that `token` speaks for `user`, for at most [`CALLER_CACHE_TTL`] and not
    /// past the token's `exp`.
    pub async fn remember_caller(&self, token: &str, user: User, identity: EnterpriseIdentity) {
        let left = identity
            .expires_at
            .saturating_sub(chrono::Utc::now().timestamp());
        let Ok(left) = u64::try_from(left) else {
            return;
        };
        let ttl = CALLER_CACHE_TTL.min(Duration::from_secs(left));
        if ttl.is_zero() {
            return;
        }
        let caller = VerifiedCaller {
            user,
            identity,
            valid_until: Instant::now() + ttl,
        };
        self.callers.insert(token_hash(token), caller).await;
    }

    /// Forgets every verified token (tiers or users changed).
    pub fn forget_callers(&self) {
        self.callers.invalidate_all();
    }

    /// The identity a verified token's claims describe.
    fn identity(&self, claims: &Map<String, Value>) -> Result<EnterpriseIdentity, EnterpriseError> {
        let claims = claims::read(claims, &self.config)?;
        let (tier, admin) = self.grant(&claims.roles)?;
        Ok(EnterpriseIdentity {
            subject: claims.subject,
            email: claims.email,
            roles: claims.roles,
            tier,
            admin,
            expires_at: claims.expires_at,
        })
    }

    /// The tier and admin flag `roles` give (see the module's docs for the rule).
    fn grant(&self, roles: &[String]) -> Result<(Tier, bool), EnterpriseError> {
        let mut admin = false;
        let mut best: Option<&TierRank> = None;
        for role in roles {
            match self.config.grant(role) {
                Some(RoleGrant::Admin) => admin = true,
                Some(RoleGrant::Tier(tier)) => {
                    // A tier the deployment does not have cannot be served; skip it.
                    if let Some(rank) = self.ranks.get(&tier) {
                        if best.is_none_or(|best| rank > best) {
                            best = Some(rank);
                        }
                    }
                }
                None => {}
            }
        }
        if let Some((.., tier)) = best {
            return Ok((tier.clone(), admin));
        }
        match self
            .config
            .default_tier
            .as_deref()
            .and_then(|name| Tier::new(name).ok())
        {
            Some(tier) => Ok((tier, admin)),
            None => Err(EnterpriseError::NoTier {
                claim: self.config.roles_claim.clone(),
                roles: roles.to_vec(),
            }),
        }
    }
}

/// Says what was wrong, in words, for a verification failure of `jsonwebtoken`.
fn describe_jwt_error(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Crypto(_) => {
            "the token's signature does not verify with the identity provider's key".to_owned()
        }
        ErrorKind::ExpiredSignature => {
            "the token has expired (`exp`); get a new one from your identity provider".to_owned()
        }
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)".to_owned(),
        ErrorKind::InvalidAudience => {
            "the token is meant for another audience (`aud` is not this server's)".to_owned()
        }
        ErrorKind::InvalidIssuer => {
            "the token was issued by another issuer (`iss` is not the configured one)".to_owned()
        }
        ErrorKind::MissingRequiredClaim(name) => format!("the token has no `{name}` claim"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "the token's algorithm does not match its key".to_owned()
        }
        ErrorKind::Json(_) => {
            "the token's header or claims are not the JSON objects a JWT holds".to_owned()
        }
        _ => "the token is not a well-formed JWT".to_owned(),
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    pub(super) fn config(roles: &[(&str, &str)], default_tier: Option<&str>) -> EnterpriseConfig {
        EnterpriseConfig {
            jwks_url: "http://127.0.0.1:9/jwks.json".to_owned(),
            issuer: "https://idp.example.com".to_owned(),
            audience: "tandem".to_owned(),
            roles_claim: "realm_access.roles".to_owned(),
            email_claim: "email".to_owned(),
            roles: roles
                .iter()
                .map(|(role, target)| ((*role).to_owned(), (*target).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            default_tier: default_tier.map(str::to_owned),
            jwks_min_refresh_secs: 30,
        }
    }

    fn verifier(config: EnterpriseConfig) -> EnterpriseVerifier {
        EnterpriseVerifier::new(config, &Tiers::default(), reqwest::Client::new())
    }

    pub(super) fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    pub(super) fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn the_highest_mapped_tier_wins_and_admin_adds_the_scope() {
        let verifier = verifier(config(
            &[
                ("dev", "pro"),
                ("lead", "enterprise"),
                ("intern", "free"),
                ("ops", "admin"),
                ("ghost", "no-such-tier"),
            ],
            None,
        ));
        let grant = |items: &[&str]| verifier.grant(&strings(items));
        assert_eq!(
            grant(&["intern", "lead", "dev"]),
            Ok((Tier::enterprise(), false))
        );
        assert_eq!(grant(&["dev", "intern"]), Ok((Tier::pro(), false)));
        assert_eq!(grant(&["ops", "intern"]), Ok((Tier::free(), true)));
        // A role mapped to a tier the deployment lacks counts for nothing.
        assert!(matches!(
            grant(&["ghost"]),
            Err(EnterpriseError::NoTier { .. })
        ));
        // Admin alone gives no tier.
        let error = grant(&["ops", "visitor"]).unwrap_err();
        assert_eq!(
            error,
            EnterpriseError::NoTier {
                claim: "realm_access.roles".to_owned(),
                roles: strings(&["ops", "visitor"]),
            }
        );
        let message = error.to_string();
        assert!(message.contains("`realm_access.roles`"), "{message}");
        assert!(message.contains("`visitor`"), "{message}");
        assert!(message.contains("default_tier"), "{message}");
    }

    #[test]
    fn the_default_tier_applies_without_a_tier_role() {
        let verifier = verifier(config(&[("ops", "admin")], Some("pro")));
        assert_eq!(verifier.grant(&strings(&["ops"])), Ok((Tier::pro(), true)));
        assert_eq!(verifier.grant(&[]), Ok((Tier::pro(), false)));
    }

    #[test]
    fn custom_tiers_rank_by_daily_quota() {
        let config_text = r#"
            [tiers.team]
            requests_per_hour = 1000
            requests_per_day = 10000
            burst_per_minute = 0
            tokens_per_day = 20000000
            max_file_size_mb = 20
            max_context_tokens = 16000
            providers = ["*"]
            features = ["*"]
        "#;
        let tiers = crate::Config::parse_str(config_text)
            .unwrap()
            .tiers()
            .unwrap();
        let verifier = EnterpriseVerifier::new(
            config(
                &[("dev", "pro"), ("team", "team"), ("lead", "enterprise")],
                None,
            ),
            &tiers,
            reqwest::Client::new(),
        );
        let team = Tier::new("team").unwrap();
        assert_eq!(
            verifier.grant(&strings(&["dev", "team"])),
            Ok((team.clone(), false))
        );
        assert_eq!(
            verifier.grant(&strings(&["team", "lead"])),
            Ok((Tier::enterprise(), false))
        );
    }

    #[test]
    fn an_identity_carries_the_claims_and_the_granted_tier() {
        let verifier = verifier(config(&[("dev", "pro")], None));
        let claims = object(json!({
            "sub": "u-1",
            "email": " Ada@Example.com ",
            "exp": 4_102_444_800_i64,
            "realm_access": {"roles": ["dev"]},
        }));
        let identity = verifier.identity(&claims).unwrap();
        assert_eq!(identity.email, "ada@example.com");
        assert_eq!(identity.tier, Tier::pro());
        assert_eq!(identity.key_id(), "jwt:u-1");
        assert_eq!(identity.scopes(), vec![Scope::Completions, Scope::Chat]);
        assert_eq!(identity.expires_at, 4_102_444_800);
        // Refusals of the claims reach the caller.
        let mut no_email = claims.clone();
        no_email.remove("email");
        assert!(matches!(
            verifier.identity(&no_email),
            Err(EnterpriseError::Rejected(_))
        ));
    }

    #[test]
    fn only_jwt_shaped_values_look_like_jwts() {
        assert!(looks_like_jwt("eyJh.eyJi.c2ln"));
        assert!(looks_like_jwt("eyJh.eyJi."));
        assert!(!looks_like_jwt("tdm_abc"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt(".b.c"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b+.c"));
        assert!(!looks_like_jwt("a.b.c="));
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused_without_a_fetch() {
        // The JWKS URL is a closed port: a fetch would be a 503, not these 401s.
        let verifier = verifier(config(&[("dev", "pro")], None));
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        for token in ["", "abc", "a.b", "a.b.c.d", "Zg.Zg.Zg", &long] {
            assert!(
                matches!(
                    verifier.verify(token).await,
                    Err(EnterpriseError::Rejected(_))
                ),
                "{token:.20}"
            );
        }
    }

    #[test]
    fn refusals_map_to_401_403_and_503() {
        let status = |error: EnterpriseError| AppError::from(error).status_code().as_u16();
        assert_eq!(status(rejected("x")), 401);
        assert_eq!(
            status(EnterpriseError::NoTier {
                claim: "roles".to_owned(),
                roles: Vec::new()
            }),
            403
        );
        assert_eq!(
            status(EnterpriseError::KeysUnavailable("x".to_owned())),
            503
        );
        let many: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
        let message = describe_roles(&many);
        assert!(message.contains("and 20 more"), "{message}");
    }
}
