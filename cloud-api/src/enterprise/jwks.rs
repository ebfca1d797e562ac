//! The identity provider's signing keys: fetching and caching its JWKS, which of its keys
//! this server verifies with, the token header, and the algorithm each key is pinned to.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::{rejected, EnterpriseError, MAX_ID_BYTES};

/// Age after which the cached JWKS is refetched on the next token, so withdrawn keys
/// stop working (at most once per `jwks_min_refresh_secs`, like any refetch).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// How long a JWKS fetch may take.
pub const JWKS_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The algorithms a token may use, as the error messages list them.
const ACCEPTED: &str = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA";

/// A JWKS key this server will verify with, and the algorithms pinned to it.
pub(super) struct SigningKey {
    pub(super) key: DecodingKey,
    pub(super) algorithms: Vec<Algorithm>,
}

/// The cached JWKS.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<SigningKey>>,
    fetched_at: Option<Instant>,
}

impl KeySet {
    fn is_stale(&self) -> bool {
        self.fetched_at
            .is_none_or(|at| at.elapsed() >= JWKS_MAX_AGE)
    }
}

/// Bookkeeping of JWKS fetches, behind the lock that makes concurrent misses share one.
#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    /// Why the last attempt failed, while it is the last.
    last_error: Option<String>,
}

/// The provider's keys by `kid`, fetched lazily from `url` and refetched on an unknown
/// `kid` or when stale, at most once per `min_refresh`.
pub(super) struct KeyStore {
    url: String,
    http: reqwest::Client,
    min_refresh: Duration,
    keys: RwLock<Arc<KeySet>>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

impl KeyStore {
    /// A store fetching `url` with `http`; nothing is fetched until the first look-up.
    pub(super) fn new(url: String, http: reqwest::Client, min_refresh: Duration) -> Self {
        KeyStore {
            url,
            http,
            min_refresh: min_refresh.max(Duration::from_secs(1)),
            keys: RwLock::new(Arc::new(KeySet::default())),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        }
    }

    fn key_set(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store_keys(&self, keys: HashMap<String, Arc<SigningKey>>) {
        let set = Arc::new(KeySet {
            keys,
            fetched_at: Some(Instant::now()),
        });
        match self.keys.write() {
            Ok(mut slot) => *slot = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }

    /// The key named `kid`: from the cache, or after one refetch of the JWKS.
    pub(super) async fn signing_key(&self, kid: &str) -> Result<Arc<SigningKey>, EnterpriseError> {
        let set = self.key_set();
        if let Some(key) = set.keys.get(kid).filter(|_| !set.is_stale()) {
            return Ok(key.clone());
        }
        // Concurrent misses wait here, and find the keys the first one fetched.
        let mut refresh = self.refresh.lock().await;
        let set = self.key_set();
        let found = set.keys.get(kid).cloned();
        if let Some(key) = found.as_ref().filter(|_| !set.is_stale()) {
            return Ok(key.clone());
        }
        let may_fetch = refresh
            .last_attempt
            .is_none_or(|at| at.elapsed() >= self.min_refresh);
        if !may_fetch {
            return match (found, &refresh.last_error) {
                (Some(key), _) => Ok(key),
                (None, Some(error)) => Err(EnterpriseError::KeysUnavailable(error.clone())),
                (None, None) => Err(unknown_key()),
            };
        }
        refresh.last_attempt = Some(Instant::now());
        match self.fetch_keys().await {
            Ok(keys) => {
                refresh.last_error = None;
                self.store_keys(keys);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot fetch the enterprise JWKS");
                refresh.last_error = Some(error.clone());
                // A stale key still works while the provider cannot be reached.
                return found.ok_or(EnterpriseError::KeysUnavailable(error));
            }
        }
        self.key_set()
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(unknown_key)
    }

    /// Fetches and parses the JWKS; the keys this server can use, by `kid`.
    async fn fetch_keys(&self) -> Result<HashMap<String, Arc<SigningKey>>, String> {
        let url = &self.url;
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(JWKS_TIMEOUT)
            .send()
            .await
            .map_err(|error| format!("GET {url}: {error}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url} answered {status}"));
        }
        let too_large = || format!("GET {url}: the JWKS is over {MAX_JWKS_BYTES} bytes");
        if response
            .content_length()
            .is_some_and(|length| length > MAX_JWKS_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| format!("GET {url}: {error}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_jwks(&body).map_err(|error| format!("GET {url}: {error}"))?;
        tracing::info!(keys = keys.len(), "enterprise JWKS fetched");
        Ok(keys)
    }
}

fn unknown_key() -> EnterpriseError {
    rejected(
        "the token is signed with a key (`kid`) the identity provider does not publish in its \
         JWKS",
    )
}

/// What the token's header says, checked before any key is looked for.
pub(super) struct Header {
    pub(super) alg: Algorithm,
    pub(super) kid: String,
}

impl Header {
    /// The header of `token`, refused unless it names a `kid` and an accepted
    /// public-key algorithm. Keys carried in the header (`jku`, `jwk`, `x5u`) are ignored.
    pub(super) fn parse(token: &str) -> Result<Header, EnterpriseError> {
        let encoded = token.split('.').next().unwrap_or_default();
        // Base64url without padding, as RFC 7515 encodes the parts of a JWS.
        let header: Map<String, Value> = URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| rejected("the token's header is not base64url-encoded JSON"))?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.as_str(),
            _ => return Err(rejected("the token's header names no algorithm (`alg`)")),
        };
        let alg = match alg {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "EdDSA" => Algorithm::EdDSA,
            none if none.eq_ignore_ascii_case("none") => {
                return Err(rejected(format!(
                    "the token is not signed (`alg: none`); tokens must be signed with {ACCEPTED}"
                )))
            }
            hmac @ ("HS256" | "HS384" | "HS512") => {
                return Err(rejected(format!(
                    "the token's algorithm {hmac} is a shared-secret one; only the identity \
                     provider's public-key algorithms are accepted ({ACCEPTED})"
                )))
            }
            _ => {
                return Err(rejected(format!(
                    "the token's algorithm (`alg`) is not accepted; use {ACCEPTED}"
                )))
            }
        };
        if header.contains_key("crit") {
            return Err(rejected(
                "the token's header lists critical extensions (`crit`) this server does not \
                 understand",
            ));
        }
        let kid = match header.get("kid") {
            Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_ID_BYTES => kid.clone(),
            Some(_) => {
                return Err(rejected(format!(
                    "the token's `kid` must be a string of 1 to {MAX_ID_BYTES} bytes"
                )))
            }
            None => {
                return Err(rejected(
                    "the token's header names no signing key (`kid`); the identity provider \
                     must name the JWKS key it signed with",
                ))
            }
        };
        Ok(Header { alg, kid })
    }
}

/// The keys of a JWKS document this server can verify with, by `kid`. Keys it cannot use
/// (no `kid`, symmetric, for encryption, an unknown algorithm or curve) are skipped, not
/// fatal; a document with none left is an error.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<SigningKey>>, String> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<Value>,
    }
    let set: RawSet = serde_json::from_slice(body)
        .map_err(|error| format!("not a JWKS (a JSON object with `keys`): {error}"))?;
    let mut keys = HashMap::new();
    let mut skipped = 0_usize;
    for raw in set.keys {
        match usable_key(raw) {
            Some((kid, key)) => {
                keys.entry(kid).or_insert_with(|| Arc::new(key));
            }
            None => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::debug!(
            skipped,
            "enterprise JWKS: keys this server cannot use skipped"
        );
    }
    if keys.is_empty() {
        return Err(
            "the JWKS holds no usable signing key (RSA, EC P-256/P-384 or Ed25519, with a `kid`)"
                .to_owned(),
        );
    }
    Ok(keys)
}

fn usable_key(raw: Value) -> Option<(String, SigningKey)> {
    let jwk: Jwk = serde_json::from_value(raw).ok()?;
    let kid = jwk.common.key_id.clone().filter(|kid| !kid.is_empty())?;
    if matches!(jwk.common.public_key_use, Some(ref usage) if *usage != PublicKeyUse::Signature) {
        return None;
    }
    if let Some(operations) = &jwk.common.key_operations {
        if !operations.contains(&KeyOperations::Verify) {
            return None;
        }
    }
    let algorithms = pinned_algorithms(&jwk)?;
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, SigningKey { key, algorithms }))
}

/// The algorithms a token signed with `jwk` may name: the JWK's own `alg` when it has
/// one (and it fits the key), otherwise those of its key type. `None` for keys this
/// server does not verify with (symmetric keys, other curves, non-signature algorithms).
fn pinned_algorithms(jwk: &Jwk) -> Option<Vec<Algorithm>> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            EllipticCurve::P521 | EllipticCurve::Ed25519 => return None,
        },
        AlgorithmParameters::OctetKeyPair(params) => match params.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return None,
        },
        AlgorithmParameters::OctetKey(_) => return None,
    };
    let Some(declared) = jwk.common.key_algorithm else {
        return Some(by_type);
    };
    let declared = match declared {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::HS256
        | KeyAlgorithm::HS384
        | KeyAlgorithm::HS512
        | KeyAlgorithm::RSA1_5
        | KeyAlgorithm::RSA_OAEP
        | KeyAlgorithm::RSA_OAEP_256 => return None,
    };
    by_type.contains(&declared).then(|| vec![declared])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::AppError;

    fn jwk(value: Value) -> Jwk {
        serde_json::from_value(value).unwrap()
    }

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn algorithms_are_pinned_to_the_jwk() {
        let rs = jwk(json!({"kty": "RSA", "kid": "r", "alg": "RS256", "n": N, "e": "AQAB"}));
        assert_eq!(pinned_algorithms(&rs), Some(vec![Algorithm::RS256]));
        let ps = jwk(json!({"kty": "RSA", "kid": "r", "alg": "PS384", "n": N, "e": "AQAB"}));
        assert_eq!(pinned_algorithms(&ps), Some(vec![Algorithm::PS384]));
        // No `alg`: the key type decides.
        let rsa = jwk(json!({"kty": "RSA", "kid": "r", "n": N, "e": "AQAB"}));
        let family = pinned_algorithms(&rsa).unwrap();
        assert!(family.contains(&Algorithm::RS512) && family.contains(&Algorithm::PS256));
        assert!(!family.iter().any(|alg| matches!(
            alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 | Algorithm::ES256
        )));
        let ec = jwk(json!({"kty": "EC", "kid": "e", "crv": "P-256", "x": X, "y": Y}));
        assert_eq!(pinned_algorithms(&ec), Some(vec![Algorithm::ES256]));
        let ed = jwk(json!({"kty": "OKP", "kid": "d", "crv": "Ed25519", "x": X}));
        assert_eq!(pinned_algorithms(&ed), Some(vec![Algorithm::EdDSA]));
        // An `alg` that does not fit the key, or is not a signature algorithm: unusable.
        let ec_as_rsa =
            jwk(json!({"kty": "EC", "kid": "e", "alg": "RS256", "crv": "P-256", "x": X, "y": Y}));
        assert_eq!(pinned_algorithms(&ec_as_rsa), None);
        let ec_384_on_256 =
            jwk(json!({"kty": "EC", "kid": "e", "alg": "ES384", "crv": "P-256", "x": X, "y": Y}));
        assert_eq!(pinned_algorithms(&ec_384_on_256), None);
        let rsa_as_hmac =
            jwk(json!({"kty": "RSA", "kid": "r", "alg": "HS256", "n": N, "e": "AQAB"}));
        assert_eq!(pinned_algorithms(&rsa_as_hmac), None);
        let oaep = jwk(json!({"kty": "RSA", "kid": "r", "alg": "RSA-OAEP", "n": N, "e": "AQAB"}));
        assert_eq!(pinned_algorithms(&oaep), None);
        let secret = jwk(json!({"kty": "oct", "kid": "s", "alg": "HS256", "k": "c2VjcmV0"}));
        assert_eq!(pinned_algorithms(&secret), None);
    }

    #[test]
    fn the_jwks_keeps_only_signature_keys_it_can_use() {
        let body = json!({"keys": [
            {"kty": "RSA", "kid": "sig", "use": "sig", "alg": "RS256", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "wrap", "key_ops": ["wrapKey"], "n": N, "e": "AQAB"},
            {"kty": "RSA", "n": N, "e": "AQAB"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": X, "y": Y},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": X, "y": Y},
            {"kty": "RSA", "kid": "sig", "alg": "PS256", "n": N, "e": "AQAB"},
            "not a key",
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["ec", "sig"]);
        // The first key of a `kid` stays.
        assert_eq!(keys["sig"].algorithms, vec![Algorithm::RS256]);
        assert!(parse_jwks(br#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#).is_err());
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"\xff").is_err());
    }

    fn encode(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn header_error(header: &str) -> String {
        let token = format!("{header}.e30.c2ln");
        match Header::parse(&token) {
            Err(EnterpriseError::Rejected(message)) => message,
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("{header} was accepted"),
        }
    }

    #[test]
    fn headers_must_name_a_public_key_algorithm_and_a_kid() {
        let says = |header: Value| header_error(&encode(&header));
        assert!(says(json!({"alg": "none", "kid": "k"})).contains("not signed"));
        assert!(says(json!({"alg": "NONE", "kid": "k"})).contains("not signed"));
        assert!(says(json!({"alg": "HS256", "kid": "k"})).contains("shared-secret"));
        assert!(says(json!({"alg": "HS512", "kid": "k"})).contains("shared-secret"));
        assert!(says(json!({"alg": "ES512", "kid": "k"})).contains("not accepted"));
        assert!(says(json!({"kid": "k"})).contains("no algorithm"));
        assert!(says(json!({"alg": "RS256"})).contains("`kid`"));
        assert!(says(json!({"alg": "RS256", "kid": 5})).contains("`kid`"));
        assert!(says(json!({"alg": "RS256", "kid": "k", "crit": ["b64"]})).contains("crit"));
        let header = Header::parse(&format!(
            "{}.e30.c2ln",
            encode(&json!({"alg": "ES256", "kid": "k", "jku": "https://evil.example/jwks"}))
        ))
        .ok()
        .unwrap();
        assert_eq!((header.alg, header.kid.as_str()), (Algorithm::ES256, "k"));
        // Only unpadded base64url is a header.
        let padded = base64::engine::general_purpose::URL_SAFE
            .encode(json!({"alg": "RS256", "kid": "k"}).to_string());
        assert!(padded.ends_with('='), "{padded}");
        for header in ["!!!", "Z", padded.as_str(), "Z+8/"] {
            assert!(header_error(header).contains("not base64url"), "{header}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_jwks_is_a_503_and_is_not_refetched_within_the_window() {
        // A closed port.
        let store = KeyStore::new(
            "http://127.0.0.1:9/jwks.json".to_owned(),
            reqwest::Client::new(),
            Duration::from_secs(30),
        );
        let first = store.signing_key("k").await.err().unwrap();
        assert!(
            matches!(first, EnterpriseError::KeysUnavailable(_)),
            "{first:?}"
        );
        let app_error = AppError::from(first);
        assert_eq!(app_error.status_code().as_u16(), 503);
        let attempt = store.refresh.lock().await.last_attempt;
        assert!(attempt.is_some());
        let second = store.signing_key("k").await.err().unwrap();
        assert!(matches!(second, EnterpriseError::KeysUnavailable(_)));
        assert_eq!(store.refresh.lock().await.last_attempt, attempt);
    }
}
