//! The cache and deduplication key: a hash of everything that decides a suggestion.

use std::hash::{BuildHasher, Hasher};

use tandem_shared::CompletionRequest;

/// Identifies a completion request body sent to one server.
///
/// Two requests with the same key would get the same answer from the model, so they
/// may share one upstream call and one cache entry. The body is hashed through its
/// JSON serialisation, so a field added to `CompletionRequest` later is covered without
/// touching this code; serialising into the hasher allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey(pub u128);

impl RequestKey {
    /// Hashes `server` and `request`.
    ///
    /// 128 bits from two independently keyed SipHash states: at most a few thousand
    /// entries are alive at once, so a collision (which would show a suggestion made for
    /// other text) is out of reach.
    pub fn new(server: &str, request: &CompletionRequest) -> RequestKey {
        let mut writer = HashWriter {
            low: fixed_state(0x7461_6e64_656d_0001).build_hasher(),
            high: fixed_state(0x7461_6e64_656d_0002).build_hasher(),
        };
        writer.write_bytes(server.as_bytes());
        writer.write_bytes(&[0xff]);
        // Writing into a hasher cannot fail; a serialisation error (impossible for these
        // plain structs) would only weaken the key, never panic.
        if let Err(error) = serde_json::to_writer(&mut writer, request) {
            tracing::warn!(%error, "cannot hash a completion request");
        }
        let low = writer.low.finish();
        let high = writer.high.finish();
        RequestKey((u128::from(high) << 64) | u128::from(low))
    }
}

/// `std`'s SipHash with fixed keys, so keys are stable within a process run and across
/// the two halves differ.
fn fixed_state(seed: u64) -> FixedState {
    FixedState(seed)
}

#[derive(Clone, Copy)]
struct FixedState(u64);

impl BuildHasher for FixedState {
    #[allow(deprecated)]
    // `SipHasher` is deprecated only in favour of `DefaultHasher`, which cannot be keyed;
    // two differently keyed SipHash-2-4 halves make a 128-bit key.
    type Hasher = std::hash::SipHasher;

    #[allow(deprecated)]
    fn build_hasher(&self) -> Self::Hasher {
        std::hash::SipHasher::new_with_keys(self.0, !self.0)
    }
}

#[allow(deprecated)]
struct HashWriter {
    low: std::hash::SipHasher,
    high: std::hash::SipHasher,
}

impl HashWriter {
    fn write_bytes(&mut self, bytes: &[u8]) {
        self.low.write(bytes);
        self.high.write(bytes);
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.write_bytes(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prefix: &str) -> CompletionRequest {
        CompletionRequest {
            language: "rust".into(),
            path: "src/lib.rs".into(),
            prefix: prefix.into(),
            suffix: "}".into(),
            max_tokens: None,
            temperature: None,
            stop: Vec::new(),
            context: Default::default(),
        }
    }

    #[test]
    fn equal_bodies_and_servers_give_equal_keys() {
        let server = "http://127.0.0.1:1";
        assert_eq!(
            RequestKey::new(server, &request("fn a")),
            RequestKey::new(server, &request("fn a"))
        );
    }

    #[test]
    fn any_difference_changes_the_key() {
        let server = "http://127.0.0.1:1";
        let base = RequestKey::new(server, &request("fn a"));
        assert_ne!(base, RequestKey::new(server, &request("fn b")));
        assert_ne!(
            base,
            RequestKey::new("http://127.0.0.1:2", &request("fn a"))
        );
        let mut with_context = request("fn a");
        with_context.context.imports.push("use std::io;".into());
        assert_ne!(base, RequestKey::new(server, &with_context));
        let mut with_stop = request("fn a");
        with_stop.stop.push("\n".into());
        assert_ne!(base, RequestKey::new(server, &with_stop));
    }
}
