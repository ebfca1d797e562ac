//! The material session tokens are signed with: the PKCS#8 PEM private key of RS256 and
//! ES256 read from `private_key_env` or `private_key_file`, checked and named for the
//! operator when unusable ([`KeyOrigin`], [`KeyProblem`]), and its public half as a JWK
//! whose `kid` is its RFC 7638 thumbprint; also the HMAC keyed with the signing material
//! that [`SessionSigner::derived_secret`] derives secrets with.
//!
//! Nothing here quotes a key, in errors or in `Debug` output.
//!
//! [`SessionSigner::derived_secret`]: super::SessionSigner::derived_secret

use std::borrow::Cow;
use std::path::PathBuf;

use hmac::Hmac;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use p256::elliptic_curve::sec1::ToSec1Point as _;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rsa::pkcs8::der::SecretDocument;
use rsa::pkcs8::{DecodePrivateKey as _, ObjectIdentifier, PrivateKeyInfo};
use rsa::traits::PublicKeyParts as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::{SessionError, MIN_SECRET_BYTES};
use crate::config::{SessionAlgorithm, SessionsConfig};

/// Smallest RSA modulus accepted for RS256, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The hint for PEM blocks that are private keys, but not unencrypted PKCS#8.
const CONVERT_TO_PKCS8: &str =
    "write it as unencrypted PKCS#8 with `openssl pkey -in <key> -out <new key>`";

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const CURVE_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const CURVE_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const CURVE_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const CURVE_SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");

/// Where `[sessions]` says the signing secret or key is (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The environment variable named by `jwt_secret_env`.
    SecretEnv(String),
    /// The environment variable named by `private_key_env`.
    KeyEnv(String),
    /// The file named by `private_key_file`.
    KeyFile(PathBuf),
}

impl KeyOrigin {
    /// The `[sessions]` setting that points there.
    pub fn setting(&self) -> &'static str {
        match self {
            KeyOrigin::SecretEnv(_) => "sessions.jwt_secret_env",
            KeyOrigin::KeyEnv(_) => "sessions.private_key_env",
            KeyOrigin::KeyFile(_) => "sessions.private_key_file",
        }
    }
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOrigin::SecretEnv(variable) | KeyOrigin::KeyEnv(variable) => write!(
                f,
                "environment variable `{variable}` (named by {})",
                self.setting()
            ),
            KeyOrigin::KeyFile(path) => write!(
                f,
                "private key file `{}` (named by {})",
                path.display(),
                self.setting()
            ),
        }
    }
}

/// What is wrong with a signing secret or key. Never quotes the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// The HS256 secret is shorter than [`MIN_SECRET_BYTES`].
    #[error("the session secret is {got} bytes; it must be at least {MIN_SECRET_BYTES} bytes (256 bits) of random data")]
    WeakSecret { got: usize },
    /// The text is not a PEM block.
    #[error("this is not a PEM private key ({detail}); expected PKCS#8 PEM text starting with `-----BEGIN PRIVATE KEY-----`")]
    NotPem { detail: String },
    /// A PEM block, but not an unencrypted PKCS#8 private key.
    #[error("this is a `{label}` PEM block, not an unencrypted PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`); {hint}")]
    NotPkcs8 { label: String, hint: &'static str },
    /// A private key of another type than the algorithm signs with.
    #[error("this is {found}, but algorithm {algorithm:?} needs {wanted}")]
    WrongKeyType {
        found: String,
        algorithm: SessionAlgorithm,
        wanted: &'static str,
    },
    /// An RSA key shorter than [`MIN_RSA_BITS`].
    #[error("this RSA key is {bits} bits; RS256 needs at least {MIN_RSA_BITS} (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072`)")]
    RsaTooShort { bits: usize },
    /// The key's encoding is damaged.
    #[error("this {kind} private key cannot be decoded: {detail}")]
    Malformed { kind: &'static str, detail: String },
    /// The key decodes but cannot sign and verify a token.
    #[error("this key cannot sign session tokens: {detail}")]
    CannotSign { detail: String },
}

/// The public half of an RS256/ES256 key.
pub(super) struct PublicJwk {
    /// The RFC 7638 thumbprint.
    pub(super) kid: String,
    /// The JWK, with `use`, `alg` and `kid`.
    pub(super) jwk: serde_json::Value,
}

/// An RS256 or ES256 key, checked and ready to sign.
pub(super) struct AsymmetricKey {
    pub(super) algorithm: Algorithm,
    pub(super) encoding: EncodingKey,
    pub(super) decoding: DecodingKey,
    pub(super) public: PublicJwk,
    /// HMAC-SHA256 keyed with the private key's PKCS#8 DER.
    pub(super) derive: Hmac<Sha256>,
}

impl AsymmetricKey {
    /// The key for RS256 or ES256 in the PKCS#8 PEM text `pem`, once it has signed and
    /// verified a probe.
    pub(super) fn from_pem(
        algorithm: SessionAlgorithm,
        pem: &str,
    ) -> Result<AsymmetricKey, KeyProblem> {
        let document = decode_pem(pem)?;
        let info = PrivateKeyInfo::try_from(document.as_bytes()).map_err(|error| {
            KeyProblem::Malformed {
                kind: "PKCS#8",
                detail: error.to_string(),
            }
        })?;
        let found = key_type(&info);
        let (jwt_algorithm, encoding, decoding, jwk) = match algorithm {
            SessionAlgorithm::RS256 if info.algorithm.oid == RSA_ENCRYPTION => {
                let key =
                    rsa::RsaPrivateKey::from_pkcs8_der(document.as_bytes()).map_err(|error| {
                        KeyProblem::Malformed {
                            kind: "RSA",
                            detail: error.to_string(),
                        }
                    })?;
                let bits = key.n().bits();
                if bits < MIN_RSA_BITS {
                    return Err(KeyProblem::RsaTooShort { bits });
                }
                let n = key.n().to_bytes_be();
                let e = key.e().to_bytes_be();
                let jwk = json!({"kty": "RSA", "n": base64url(&n), "e": base64url(&e)});
                (
                    Algorithm::RS256,
                    // The PKCS#8 payload of an rsaEncryption key is its PKCS#1 form.
                    EncodingKey::from_rsa_der(info.private_key),
                    DecodingKey::from_rsa_raw_components(&n, &e),
                    jwk,
                )
            }
            SessionAlgorithm::ES256
                if info.algorithm.oid == EC_PUBLIC_KEY
                    && info.algorithm.parameters_oid().ok() == Some(CURVE_P256) =>
            {
                let key =
                    p256::SecretKey::from_pkcs8_der(document.as_bytes()).map_err(|error| {
                        KeyProblem::Malformed {
                            kind: "EC P-256",
                            detail: error.to_string(),
                        }
                    })?;
                let point = key.public_key().to_sec1_point(false);
                let (Some(x), Some(y)) = (point.x(), point.y()) else {
                    return Err(KeyProblem::Malformed {
                        kind: "EC P-256",
                        detail: "the public point is not on the curve".to_owned(),
                    });
                };
                let (x, y) = (base64url(x), base64url(y));
                // Encoded again, so the public key the signer wants is always included.
                let der = key.to_pkcs8_der().map_err(|error| KeyProblem::Malformed {
                    kind: "EC P-256",
                    detail: error.to_string(),
                })?;
                let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|error| {
                    KeyProblem::Malformed {
                        kind: "EC P-256",
                        detail: error.to_string(),
                    }
                })?;
                let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y});
                (
                    Algorithm::ES256,
                    EncodingKey::from_ec_der(der.as_bytes()),
                    decoding,
                    jwk,
                )
            }
            SessionAlgorithm::RS256 => {
                return Err(KeyProblem::WrongKeyType {
                    found,
                    algorithm,
                    wanted: "an RSA key (at least 2048 bits)",
                })
            }
            SessionAlgorithm::ES256 | SessionAlgorithm::HS256 => {
                return Err(KeyProblem::WrongKeyType {
                    found,
                    algorithm,
                    wanted: "an EC key on the P-256 curve (prime256v1)",
                })
            }
        };
        let kid = thumbprint(&jwk);
        let mut jwk = jwk;
        if let Some(fields) = jwk.as_object_mut() {
            fields.insert("use".to_owned(), json!("sig"));
            fields.insert("alg".to_owned(), json!(format!("{jwt_algorithm:?}")));
            fields.insert("kid".to_owned(), json!(kid));
        }
        let key = AsymmetricKey {
            algorithm: jwt_algorithm,
            encoding,
            decoding,
            public: PublicJwk { kid, jwk },
            derive: keyed_hmac(document.as_bytes()),
        };
        key.check_signs()?;
        Ok(key)
    }

    /// Signs and verifies a probe, so a key the signing library cannot use stops the
    /// start rather than the first sign-in.
    fn check_signs(&self) -> Result<(), KeyProblem> {
        let cannot = |detail: String| KeyProblem::CannotSign { detail };
        let message = b"tandem session key check";
        let signature = jsonwebtoken::crypto::sign(message, &self.encoding, self.algorithm)
            .map_err(|error| cannot(error.to_string()))?;
        let verified =
            jsonwebtoken::crypto::verify(&signature, message, &self.decoding, self.algorithm)
                .map_err(|error| cannot(error.to_string()))?;
        if verified {
            Ok(())
        } else {
            Err(cannot(
                "a signature made with it does not verify with its public key".to_owned(),
            ))
        }
    }
}

/// Reads the PEM text `private_key_env` or `private_key_file` points at.
pub(super) fn read_private_key(
    config: &SessionsConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(KeyOrigin, Zeroizing<String>), SessionError> {
    match (&config.private_key_env, &config.private_key_file) {
        (Some(variable), None) => {
            let origin = KeyOrigin::KeyEnv(variable.clone());
            match env(variable).filter(|pem| !pem.trim().is_empty()) {
                Some(pem) => Ok((origin, Zeroizing::new(pem))),
                None => Err(SessionError::Missing { origin }),
            }
        }
        (None, Some(path)) => {
            let origin = KeyOrigin::KeyFile(path.clone());
            let bytes =
                Zeroizing::new(
                    std::fs::read(path).map_err(|error| SessionError::Unreadable {
                        origin: origin.clone(),
                        error,
                    })?,
                );
            match std::str::from_utf8(&bytes) {
                Ok(pem) => Ok((origin, Zeroizing::new(pem.to_owned()))),
                Err(_) => Err(SessionError::Key {
                    origin,
                    problem: KeyProblem::NotPem {
                        detail: "the file is not text; a DER key can be written as PEM with \
                                 `openssl pkey -inform DER -in <key> -out <new key>`"
                            .to_owned(),
                    },
                }),
            }
        }
        (Some(_), Some(_)) => Err(SessionError::Misconfigured(
            "set private_key_env or private_key_file, not both".to_owned(),
        )),
        (None, None) => Err(SessionError::Misconfigured(format!(
            "algorithm {:?} needs private_key_env or private_key_file",
            config.algorithm
        ))),
    }
}

/// The DER inside the PEM text of an unencrypted PKCS#8 private key. Tolerates what
/// environment variables do to PEM: surrounding whitespace, lines joined with spaces, or
/// newlines written as `\n`.
fn decode_pem(text: &str) -> Result<SecretDocument, KeyProblem> {
    let not_pem = |detail: &str| KeyProblem::NotPem {
        detail: detail.to_owned(),
    };
    let text = text.trim();
    let text: Cow<'_, str> = if !text.contains('\n') && text.contains("\\n") {
        Cow::Owned(text.replace("\\n", "\n"))
    } else {
        Cow::Borrowed(text)
    };
    const BEGIN: &str = "-----BEGIN ";
    let begin = text
        .find(BEGIN)
        .ok_or_else(|| not_pem("there is no `-----BEGIN` line"))?;
    let after_begin = &text[begin + BEGIN.len()..];
    let label_end = after_begin
        .find("-----")
        .ok_or_else(|| not_pem("the `-----BEGIN` line is not closed"))?;
    let label = after_begin[..label_end].trim();
    let rest = &after_begin[label_end + "-----".len()..];
    let end = rest
        .find(&format!("-----END {label}-----"))
        .ok_or_else(|| not_pem(&format!("there is no `-----END {label}-----` line")))?;
    if label != "PRIVATE KEY" {
        let hint = match label {
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => CONVERT_TO_PKCS8,
            _ => "the server needs the private key",
        };
        return Err(KeyProblem::NotPkcs8 {
            label: label.chars().take(40).collect(),
            hint,
        });
    }
    let body: Zeroizing<String> =
        Zeroizing::new(rest[..end].chars().filter(|c| !c.is_whitespace()).collect());
    if body.is_empty() || !body.is_ascii() {
        return Err(not_pem(
            "the text between the BEGIN and END lines is not base64",
        ));
    }
    // Wrapped again at 64 columns, the only layout the PEM decoder accepts.
    let mut pem = Zeroizing::new(String::with_capacity(body.len() + body.len() / 64 + 64));
    pem.push_str("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let (_, document) = SecretDocument::from_pem(&pem).map_err(|_| {
        not_pem("the text between the BEGIN and END lines is not base64 of a DER structure")
    })?;
    Ok(document)
}

/// What kind of key a PKCS#8 structure holds, for error messages.
fn key_type(info: &PrivateKeyInfo<'_>) -> String {
    let oid = info.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        "an RSA key".to_owned()
    } else if oid == RSASSA_PSS {
        "an RSA-PSS key (RS256 needs a plain RSA key: `openssl genpkey -algorithm RSA`)".to_owned()
    } else if oid == EC_PUBLIC_KEY {
        match info.algorithm.parameters_oid().ok() {
            Some(curve) if curve == CURVE_P256 => "an EC key on P-256".to_owned(),
            Some(curve) if curve == CURVE_P384 => "an EC key on P-384".to_owned(),
            Some(curve) if curve == CURVE_P521 => "an EC key on P-521".to_owned(),
            Some(curve) if curve == CURVE_SECP256K1 => "an EC key on secp256k1".to_owned(),
            Some(curve) => format!("an EC key on the curve {curve}"),
            None => "an EC key with no named curve".to_owned(),
        }
    } else if oid == ED25519 {
        "an Ed25519 key".to_owned()
    } else if oid == ED448 {
        "an Ed448 key".to_owned()
    } else {
        format!("a key of type {oid}")
    }
}

/// HMAC-SHA256 keyed with `key`. Keyed through the block-sized form RFC 2104 defines
/// (shorter keys padded with zeros, longer ones hashed first), which cannot fail.
pub(super) fn keyed_hmac(key: &[u8]) -> Hmac<Sha256> {
    let mut block = Zeroizing::new([0u8; 64]);
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&(*block).into())
}

/// The RFC 7638 thumbprint of a public JWK: base64url SHA-256 of its required members,
/// in lexicographic order, without whitespace.
fn thumbprint(jwk: &serde_json::Value) -> String {
    let member = |name: &str| {
        jwk.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    // `json!` of a string escapes as RFC 7638 asks; base64url needs no escaping anyway.
    let canonical = if member("kty") == "EC" {
        format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            json!(member("crv")),
            json!(member("x")),
            json!(member("y"))
        )
    } else {
        format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            json!(member("e")),
            json!(member("n"))
        )
    };
    base64url(&Sha256::digest(canonical.as_bytes()))
}

/// Base64url without padding (RFC 7515, appendix C).
fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use chrono::Utc;
    use hmac::Mac as _;
    use jsonwebtoken::Validation;

    use super::*;
    use crate::sessions::test_support::*;
    use crate::sessions::{AccessClaims, SessionSigner, AUDIENCE};

    /// The message for `pem` given to `algorithm`; it never quotes the key.
    fn key_error(algorithm: SessionAlgorithm, pem: &str) -> String {
        let message = try_keyed(algorithm, pem).unwrap_err().to_string();
        for line in pem.lines().filter(|line| !line.starts_with("-----")) {
            assert!(!message.contains(line.trim()), "{message} quotes the key");
        }
        message
    }

    #[test]
    fn the_jwks_has_only_the_public_key_and_verifies_the_tokens() {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for (signer, alg) in [(rs256(), Algorithm::RS256), (es256(), Algorithm::ES256)] {
            let jwks = signer.jwks().unwrap();
            let keys = jwks["keys"].as_array().unwrap();
            assert_eq!(keys.len(), 1);
            let jwk = &keys[0];
            let mut members: Vec<&str> = jwk
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            members.sort_unstable();
            if alg == Algorithm::RS256 {
                assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
                assert_eq!(
                    (jwk["kty"].as_str(), jwk["alg"].as_str()),
                    (Some("RSA"), Some("RS256"))
                );
                assert_eq!(jwk["e"], "AQAB");
                assert_eq!(
                    engine.decode(jwk["n"].as_str().unwrap()).unwrap().len(),
                    256
                );
            } else {
                assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
                assert_eq!(
                    (jwk["kty"].as_str(), jwk["alg"].as_str()),
                    (Some("EC"), Some("ES256"))
                );
                assert_eq!(jwk["crv"], "P-256");
                for coordinate in ["x", "y"] {
                    let bytes = engine.decode(jwk[coordinate].as_str().unwrap()).unwrap();
                    assert_eq!(bytes.len(), 32, "{coordinate} is fixed-length");
                }
            }
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["kid"].as_str().unwrap(), kid_of(&signer));

            // A consumer's view: find the key by `kid`, check the token with it.
            let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
            let (token, _) = signer.access_token("u1", "s1", Utc::now()).unwrap();
            let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
            let key = DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap();
            let mut validation = Validation::new(alg);
            validation.set_issuer(&[ISSUER]);
            validation.set_audience(&[AUDIENCE]);
            let claims = jsonwebtoken::decode::<AccessClaims>(&token, &key, &validation)
                .unwrap()
                .claims;
            assert_eq!(claims.sub, "u1");
        }
    }

    #[test]
    fn the_key_id_is_the_rfc_7638_thumbprint() {
        // The example of RFC 7638, section 3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // An EC key: the members crv, kty, x, y.
        let signer = es256();
        let jwk = &signer.jwks().unwrap()["keys"][0];
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        assert_eq!(kid_of(&signer), engine.encode(Sha256::digest(canonical)));
    }

    #[test]
    fn unusable_keys_are_refused_with_what_to_do() {
        let at =
            "environment variable `TANDEM_TEST_SESSION_KEY` (named by sessions.private_key_env)";
        let missing = try_keyed(SessionAlgorithm::RS256, "  \n").unwrap_err();
        assert_eq!(missing.to_string(), format!("{at} is not set"));
        assert_eq!(missing.setting(), "sessions.private_key_env");
        let unset =
            SessionSigner::from_config(&key_config(SessionAlgorithm::ES256), ISSUER, &|_| None)
                .unwrap_err();
        assert_eq!(unset.to_string(), format!("{at} is not set"));

        assert_eq!(
            key_error(SessionAlgorithm::RS256, "not a key at all"),
            format!(
                "{at}: this is not a PEM private key (there is no `-----BEGIN` line); expected \
                 PKCS#8 PEM text starting with `-----BEGIN PRIVATE KEY-----`"
            )
        );
        let truncated = &RSA_2048[..RSA_2048.len() - 30];
        assert!(key_error(SessionAlgorithm::RS256, truncated)
            .contains("there is no `-----END PRIVATE KEY-----` line"));
        let garbled = RSA_2048.replacen("MII", "M*I", 1);
        assert!(key_error(SessionAlgorithm::RS256, &garbled).contains("is not base64"));

        assert_eq!(
            key_error(SessionAlgorithm::RS256, EC_P256),
            format!(
                "{at}: this is an EC key on P-256, but algorithm RS256 needs an RSA key (at \
                 least 2048 bits)"
            )
        );
        assert_eq!(
            key_error(SessionAlgorithm::ES256, RSA_2048),
            format!(
                "{at}: this is an RSA key, but algorithm ES256 needs an EC key on the P-256 \
                 curve (prime256v1)"
            )
        );
        assert!(key_error(SessionAlgorithm::ES256, EC_P384).contains("this is an EC key on P-384"));
        assert!(matches!(
            try_keyed(SessionAlgorithm::RS256, RSA_1024),
            Err(SessionError::Key {
                problem: KeyProblem::RsaTooShort { bits: 1024 },
                ..
            })
        ));
        assert!(key_error(SessionAlgorithm::RS256, RSA_1024)
            .contains("this RSA key is 1024 bits; RS256 needs at least 2048"));

        let pkcs1 = RSA_2048.replace("PRIVATE KEY", "RSA PRIVATE KEY");
        assert_eq!(
            key_error(SessionAlgorithm::RS256, &pkcs1),
            format!(
                "{at}: this is a `RSA PRIVATE KEY` PEM block, not an unencrypted PKCS#8 private \
                 key (`-----BEGIN PRIVATE KEY-----`); {CONVERT_TO_PKCS8}"
            )
        );
        let public = RSA_2048.replace("PRIVATE KEY", "PUBLIC KEY");
        assert!(key_error(SessionAlgorithm::RS256, &public)
            .contains("the server needs the private key"));
    }

    #[test]
    fn keys_survive_what_environment_variables_do_to_them() {
        let kid = kid_of(&rs256());
        let escaped = RSA_2048.trim().replace('\n', "\\n");
        assert_eq!(kid_of(&keyed(SessionAlgorithm::RS256, &escaped)), kid);
        let joined = RSA_2048.trim().replace('\n', " ");
        assert_eq!(kid_of(&keyed(SessionAlgorithm::RS256, &joined)), kid);
        let crlf = format!("\n  {}\r\n", RSA_2048.replace('\n', "\r\n"));
        assert_eq!(kid_of(&keyed(SessionAlgorithm::RS256, &crlf)), kid);
    }

    #[test]
    fn a_key_file_is_read_and_a_missing_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session-key.pem");
        std::fs::write(&path, EC_P256).unwrap();
        let config = SessionsConfig {
            algorithm: SessionAlgorithm::ES256,
            private_key_file: Some(path.clone()),
            ..SessionsConfig::default()
        };
        let signer = SessionSigner::from_config(&config, ISSUER, &|_| None)
            .unwrap()
            .unwrap();
        assert_eq!(kid_of(&signer), kid_of(&es256()));

        let gone = dir.path().join("gone.pem");
        let config = SessionsConfig {
            private_key_file: Some(gone.clone()),
            ..config
        };
        let error = SessionSigner::from_config(&config, ISSUER, &|_| None).unwrap_err();
        assert_eq!(error.setting(), "sessions.private_key_file");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "cannot read the private key file `{}` (named by sessions.private_key_file): ",
                gone.display()
            )),
            "{message}"
        );

        std::fs::write(&path, [0x30, 0x82, 0xff, 0xfe]).unwrap();
        let config = SessionsConfig {
            private_key_file: Some(path),
            ..config
        };
        let message = SessionSigner::from_config(&config, ISSUER, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(message.contains("the file is not text"), "{message}");
    }

    #[test]
    fn derived_secrets_are_stable_per_key_and_differ_between_keys_and_labels() {
        let hs = SessionSigner::hs256(SECRET, ISSUER).unwrap();
        let rs = rs256();
        let es = es256();
        assert_eq!(hs.derived_secret("csrf"), signer().derived_secret("csrf"));
        assert_eq!(rs.derived_secret("csrf"), rs256().derived_secret("csrf"));
        assert_eq!(es.derived_secret("csrf"), es256().derived_secret("csrf"));
        assert_ne!(hs.derived_secret("csrf"), hs.derived_secret("csrf2"));
        assert_ne!(rs.derived_secret("csrf"), rs.derived_secret("other"));
        let all = [
            hs.derived_secret("csrf"),
            rs.derived_secret("csrf"),
            es.derived_secret("csrf"),
            keyed(SessionAlgorithm::ES256, EC_P256_OTHER).derived_secret("csrf"),
            SessionSigner::hs256(b"another-secret-another-secret-00", ISSUER)
                .unwrap()
                .derived_secret("csrf"),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Plain HMAC-SHA256 of the label, for short keys and for ones beyond a block.
        let reference = |key: &[u8], label: &str| -> [u8; 32] {
            let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
            mac.update(label.as_bytes());
            mac.finalize().into_bytes().into()
        };
        assert_eq!(hs.derived_secret("csrf"), reference(SECRET, "csrf"));
        let der = decode_pem(RSA_2048).unwrap();
        assert!(der.as_bytes().len() > 64);
        assert_eq!(rs.derived_secret("csrf"), reference(der.as_bytes(), "csrf"));
    }
}
