//! Tandem API keys: generation, hashing and constant-time comparison.
//!
//! A key is `tdm_` followed by 43 base62 characters encoding 32 bytes from the OS random
//! number generator. Only the SHA-256 of the whole key is stored.

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tandem_shared::API_KEY_PREFIX;

/// Number of base62 characters after the prefix: the fewest that hold 256 bits.
pub const KEY_BODY_LEN: usize = 43;
/// Characters of a key kept in clear (in listings) so people can tell keys apart.
pub const DISPLAY_PREFIX_LEN: usize = API_KEY_PREFIX.len() + 6;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key. Its `Debug` output hides the secret.
#[derive(Clone)]
pub struct GeneratedKey {
    /// The whole key, to be shown once to its owner.
    pub secret: String,
    /// SHA-256 of `secret`, the only form stored.
    pub hash: KeyHash,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("secret", &"[redacted]")
            .field("hash", &self.hash)
            .finish()
    }
}

impl GeneratedKey {
    /// The first characters of the key, safe to store and list.
    pub fn display_prefix(&self) -> &str {
        &self.secret[..DISPLAY_PREFIX_LEN]
    }
}

/// SHA-256 of a key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes of high-entropy keys are not secret, but nobody needs all of one in a log.
        write!(f, "KeyHash({}…)", hex::encode(&self.0[..4]))
    }
}

impl KeyHash {
    /// Hashes a key as presented by a client.
    pub fn of(key: &str) -> KeyHash {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }

    /// Compares two hashes in time independent of where they differ.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// Generates a new key from the OS random number generator.
pub fn generate() -> GeneratedKey {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let secret = format!("{API_KEY_PREFIX}{}", encode_base62(bytes));
    let hash = KeyHash::of(&secret);
    GeneratedKey { secret, hash }
}

/// A random bearer secret that is not an API key (a device code): 32 random bytes, in
/// base62.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    encode_base62(bytes)
}

/// Whether `key` has the shape of a Tandem key (prefix, length, alphabet). Says nothing
/// about whether it exists.
pub fn is_well_formed(key: &str) -> bool {
    match key.strip_prefix(API_KEY_PREFIX) {
        Some(body) => body.len() == KEY_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric()),
        None => false,
    }
}

/// Checks a presented key against a stored hash in constant time.
pub fn verify(presented: &str, stored: &KeyHash) -> bool {
    KeyHash::of(presented).ct_eq(stored)
}

/// Encodes 32 bytes (a big-endian number) as exactly 43 base62 digits, zero-padded.
fn encode_base62(bytes: [u8; 32]) -> String {
    let mut number = bytes;
    let mut digits = [b'0'; KEY_BODY_LEN];
    // Schoolbook long division by 62, least significant digit first; 62^43 > 2^256 so
    // 43 digits always suffice.
    for digit in digits.iter_mut().rev() {
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = (value / 62) as u8;
            remainder = value % 62;
        }
        *digit = BASE62[remainder as usize];
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_format() {
        for _ in 0..100 {
            let key = generate();
            assert!(key.secret.starts_with("tdm_"));
            assert_eq!(key.secret.len(), 4 + 43);
            assert!(is_well_formed(&key.secret), "{}", key.secret);
            assert_eq!(key.hash, KeyHash::of(&key.secret));
            assert_eq!(key.display_prefix(), &key.secret[..10]);
        }
    }

    #[test]
    fn generated_keys_differ() {
        let keys: std::collections::HashSet<String> = (0..100).map(|_| generate().secret).collect();
        assert_eq!(keys.len(), 100);
    }

    #[test]
    fn base62_encoding_is_exact_at_the_edges() {
        assert_eq!(encode_base62([0; 32]), "0".repeat(43));
        let mut one = [0u8; 32];
        one[31] = 61;
        assert_eq!(encode_base62(one), format!("{}z", "0".repeat(42)));
        one[31] = 62;
        assert_eq!(encode_base62(one), format!("{}10", "0".repeat(41)));
        // 2^256 - 1 in base 62, computed independently.
        assert_eq!(
            encode_base62([0xff; 32]),
            "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1"
        );
    }

    #[test]
    fn hash_is_sha256_of_the_whole_key() {
        // The FIPS 180-2 test vector for "abc".
        assert_eq!(
            hex::encode(KeyHash::of("abc").0),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(KeyHash::of("tdm_abc"), KeyHash::of("tdm_abd"));
    }

    #[test]
    fn verify_accepts_only_the_same_key() {
        let key = generate();
        assert!(verify(&key.secret, &key.hash));
        let mut other = key.secret.clone();
        other.pop();
        other.push(if key.secret.ends_with('a') { 'b' } else { 'a' });
        assert!(!verify(&other, &key.hash));
        assert!(!verify("", &key.hash));
    }

    #[test]
    fn malformed_keys_are_recognised() {
        let body = "a".repeat(43);
        assert!(is_well_formed(&format!("tdm_{body}")));
        assert!(!is_well_formed(&format!("tdx_{body}")));
        assert!(!is_well_formed(&format!("tdm_{}", "a".repeat(42))));
        assert!(!is_well_formed(&format!("tdm_{}", "a".repeat(44))));
        assert!(!is_well_formed(&format!("tdm_{}-", "a".repeat(42))));
        assert!(!is_well_formed(&format!("tdm_{}é", "a".repeat(41))));
        assert!(!is_well_formed("tdm_"));
        assert!(!is_well_formed(""));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let key = generate();
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.secret[4..]), "{debug}");
        assert!(debug.contains("[redacted]"));
    }
}
