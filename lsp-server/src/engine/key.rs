//! The cache and deduplication key: a hash of everything that decides a suggestion.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use tandem_shared::{CodeContext, CompletionRequest, Snippet};
use xxhash_rust::xxh3::Xxh3;

/// Identifies a completion request body sent to one server.
///
/// Two requests with the same key would get the same answer from the model, so they
/// may share one upstream call and one cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey(pub u128);

impl RequestKey {
    /// Hashes `server` and every field of `request`, context included.
    ///
    /// The fields are fed to a 128-bit XXH3 in a fixed order, each string and list
    /// after its length and each option after a presence tag, so the byte stream is a
    /// one-to-one encoding of the request: `("ab", "c")` and `("a", "bc")` differ, and
    /// so does a snippet's path from its text. The structs are destructured without
    /// `..`, so a field added to them later fails to compile here instead of being left
    /// out of the key.
    ///
    /// At most a few thousand entries are alive at once, so a collision (which would
    /// show a suggestion made for other text) is out of reach of 128 bits. The seed is
    /// drawn once per process: keys are stable within a run, never stored, and text in
    /// a workspace cannot be crafted in advance to collide.
    pub fn new(server: &str, request: &CompletionRequest) -> RequestKey {
        let CompletionRequest {
            language,
            path,
            prefix,
            suffix,
            max_tokens,
            temperature,
            stop,
            context,
            // Only checked against the tier's limit; the answer does not depend on it,
            // and an edit far from the cursor should not miss the cache.
            file_size: _,
            // Streamed or not, the text is the same.
            stream: _,
        } = request;
        let CodeContext {
            scopes,
            imports,
            definitions,
            similar,
            recent_edits,
        } = context;

        let mut hasher = KeyHasher(seeded().clone());
        hasher.str(server);
        hasher.str(language);
        hasher.str(path);
        hasher.str(prefix);
        hasher.str(suffix);
        hasher.option(max_tokens.map(u32::to_le_bytes));
        // The bits, not the value: -0.0 and 0.0 (or two NaNs) get different keys, which
        // at worst costs a cache miss.
        hasher.option(temperature.map(|temperature| temperature.to_bits().to_le_bytes()));
        hasher.strings(stop);
        hasher.strings(scopes);
        hasher.strings(imports);
        hasher.snippets(definitions);
        hasher.snippets(similar);
        hasher.snippets(recent_edits);
        RequestKey(hasher.0.digest128())
    }
}

/// The XXH3 state after seeding, made once: seeding derives a 192-byte secret, and
/// cloning it is cheaper than deriving it again for every key.
fn seeded() -> &'static Xxh3 {
    static SEEDED: OnceLock<Xxh3> = OnceLock::new();
    SEEDED.get_or_init(|| {
        // `RandomState` is seeded from the operating system's randomness.
        let seed = std::hash::RandomState::new().hash_one(0x7461_6e64_656d_u64);
        Xxh3::with_seed(seed)
    })
}

/// Writes values so that the sequence of values can be read back from the bytes.
struct KeyHasher(Xxh3);

impl KeyHasher {
    fn len(&mut self, len: usize) {
        // `usize` is at most 64 bits on every supported target.
        self.0.update(&(len as u64).to_le_bytes());
    }

    fn str(&mut self, text: &str) {
        self.len(text.len());
        self.0.update(text.as_bytes());
    }

    fn option<const N: usize>(&mut self, value: Option<[u8; N]>) {
        match value {
            None => self.0.update(&[0]),
            Some(bytes) => {
                self.0.update(&[1]);
                self.0.update(&bytes);
            }
        }
    }

    fn strings(&mut self, texts: &[String]) {
        self.len(texts.len());
        for text in texts {
            self.str(text);
        }
    }

    fn snippets(&mut self, snippets: &[Snippet]) {
        self.len(snippets.len());
        for snippet in snippets {
            let Snippet { path, text } = snippet;
            self.str(path);
            self.str(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "http://127.0.0.1:1";

    fn snippet(path: &str, text: &str) -> Snippet {
        Snippet {
            path: path.into(),
            text: text.into(),
        }
    }

    /// A request with every field set, so each can be changed on its own.
    fn full() -> CompletionRequest {
        CompletionRequest {
            language: "rust".into(),
            path: "src/lib.rs".into(),
            prefix: "fn a".into(),
            suffix: "}".into(),
            max_tokens: Some(64),
            temperature: Some(0.2),
            stop: vec!["\n\n".into()],
            context: CodeContext {
                scopes: vec!["impl Parser".into()],
                imports: vec!["use std::io;".into()],
                definitions: vec![snippet("src/tree.rs", "struct Tree;")],
                similar: vec![snippet("src/other.rs", "fn b() {}")],
                recent_edits: vec![snippet("src/lib.rs", "let x = 1;")],
            },
            file_size: Some(4096),
            stream: false,
        }
    }

    fn key(request: &CompletionRequest) -> RequestKey {
        RequestKey::new(SERVER, request)
    }

    #[test]
    fn equal_bodies_and_servers_give_equal_keys() {
        assert_eq!(key(&full()), key(&full()));
        let empty = CompletionRequest {
            context: CodeContext::default(),
            max_tokens: None,
            temperature: None,
            stop: Vec::new(),
            ..full()
        };
        assert_eq!(key(&empty), key(&empty.clone()));
    }

    #[test]
    fn the_file_size_is_not_covered() {
        let grown = CompletionRequest {
            file_size: Some(8192),
            ..full()
        };
        assert_eq!(key(&full()), key(&grown));
    }

    #[test]
    fn the_server_is_covered() {
        assert_ne!(
            RequestKey::new("http://127.0.0.1:1", &full()),
            RequestKey::new("http://127.0.0.1:2", &full())
        );
    }

    #[test]
    fn changing_any_single_field_changes_the_key() {
        type Change = fn(&mut CompletionRequest);
        let changes: [(&str, Change); 23] = [
            ("language", |r| r.language = "python".into()),
            ("path", |r| r.path = "src/main.rs".into()),
            ("prefix", |r| r.prefix = "fn b".into()),
            ("suffix", |r| r.suffix = "};".into()),
            ("max_tokens value", |r| r.max_tokens = Some(65)),
            ("max_tokens absent", |r| r.max_tokens = None),
            ("temperature value", |r| r.temperature = Some(0.3)),
            ("temperature absent", |r| r.temperature = None),
            ("stop text", |r| r.stop[0] = "\n".into()),
            ("stop added", |r| r.stop.push("\n".into())),
            ("stop removed", |r| r.stop.clear()),
            ("scopes", |r| r.context.scopes[0] = "impl Lexer".into()),
            ("scopes added", |r| {
                r.context.scopes.push("fn parse()".into())
            }),
            ("imports", |r| r.context.imports[0] = "use std::fs;".into()),
            ("imports removed", |r| r.context.imports.clear()),
            ("definition path", |r| {
                r.context.definitions[0].path = "src/forest.rs".into()
            }),
            ("definition text", |r| {
                r.context.definitions[0].text = "struct Forest;".into()
            }),
            ("similar path", |r| {
                r.context.similar[0].path = "src/x.rs".into()
            }),
            ("similar text", |r| {
                r.context.similar[0].text = "fn c() {}".into()
            }),
            ("recent edit path", |r| {
                r.context.recent_edits[0].path = "src/main.rs".into()
            }),
            ("recent edit text", |r| {
                r.context.recent_edits[0].text = "let x = 2;".into()
            }),
            ("recent edits added", |r| {
                r.context.recent_edits.push(Snippet::default())
            }),
            ("context cleared", |r| r.context = CodeContext::default()),
        ];
        let base = key(&full());
        let mut seen = vec![base];
        for (name, change) in changes {
            let mut request = full();
            change(&mut request);
            let changed = key(&request);
            assert_ne!(base, changed, "changing {name} kept the key");
            assert!(!seen.contains(&changed), "changing {name} gave a seen key");
            seen.push(changed);
        }
    }

    #[test]
    fn the_same_text_in_another_list_changes_the_key() {
        const TEXT: &str = "use std::io;";
        let mut base = full();
        base.stop = Vec::new();
        base.context = CodeContext::default();
        type Put = fn(&mut CompletionRequest);
        let lists: [Put; 6] = [
            |r| r.stop = vec![TEXT.into()],
            |r| r.context.scopes = vec![TEXT.into()],
            |r| r.context.imports = vec![TEXT.into()],
            |r| r.context.definitions = vec![snippet("", TEXT)],
            |r| r.context.similar = vec![snippet("", TEXT)],
            |r| r.context.recent_edits = vec![snippet("", TEXT)],
        ];
        let mut seen = vec![key(&base)];
        for (index, put) in lists.into_iter().enumerate() {
            let mut request = base.clone();
            put(&mut request);
            let changed = key(&request);
            assert!(!seen.contains(&changed), "list {index} gave a seen key");
            seen.push(changed);
        }
    }

    #[test]
    fn framing_is_unambiguous() {
        let mut a = full();
        let mut b = full();
        // Text moved across the boundary of two adjacent strings.
        (a.prefix, a.suffix) = ("ab".into(), "c".into());
        (b.prefix, b.suffix) = ("a".into(), "bc".into());
        assert_ne!(key(&a), key(&b));
        // ... of a snippet's path and text.
        let (mut a, mut b) = (full(), full());
        a.context.similar = vec![snippet("src/a.rs", "fn x")];
        b.context.similar = vec![snippet("src/a.rsfn", " x")];
        assert_ne!(key(&a), key(&b));
        // ... of the server and the language.
        let mut b = full();
        b.language = "ust".into();
        assert_ne!(
            RequestKey::new("http://h", &full()),
            RequestKey::new("http://hr", &b)
        );
        // One list item versus two, and a snippet moved from one list to the next.
        let (mut a, mut b) = (full(), full());
        a.context.scopes = vec!["ab".into()];
        b.context.scopes = vec!["a".into(), "b".into()];
        assert_ne!(key(&a), key(&b));
        let (mut a, mut b) = (full(), full());
        a.context.definitions = vec![snippet("p", "t")];
        a.context.similar = Vec::new();
        b.context.definitions = Vec::new();
        b.context.similar = vec![snippet("p", "t")];
        assert_ne!(key(&a), key(&b));
        // An empty item versus none.
        let (mut a, mut b) = (full(), full());
        a.stop = Vec::new();
        b.stop = vec![String::new()];
        assert_ne!(key(&a), key(&b));
        // An absent option versus a present zero.
        let (mut a, mut b) = (full(), full());
        a.max_tokens = None;
        b.max_tokens = Some(0);
        assert_ne!(key(&a), key(&b));
        let (mut a, mut b) = (full(), full());
        a.temperature = None;
        b.temperature = Some(0.0);
        assert_ne!(key(&a), key(&b));
    }
}
