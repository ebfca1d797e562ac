//! What the other open documents offer a completion: their definitions (by name) and
//! their identifier windows for similar-snippet search, indexed once per document
//! version in the background.
//!
//! Indexing parses the document from scratch on its own (the store keeps trees for a
//! few documents only, and indexing must not evict the one being typed in), so it runs
//! on a blocking thread, one document at a time: a burst of fifty `didOpen`s costs one
//! core for a moment instead of fifty parse trees in memory at once. A request uses
//! whatever is indexed when it runs, possibly the previous version of a document that
//! just changed; stale entries are re-indexed for the next request.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use ropey::Rope;

use super::similar::WindowIndex;
use crate::privacy;
use crate::syntax::{self, DefinitionKind, Language};

/// Documents larger than this are generated or data; they are not indexed.
const MAX_INDEXED_BYTES: usize = 1 << 20;
/// A type's whole definition is shown when it is at most this many lines (fields and
/// variants are what the model needs); longer ones, and functions, show their header.
const MAX_DEFINITION_LINES: usize = 30;
const MAX_DEFINITION_CHARS: usize = 2_000;

/// One document's index, for the version it was built from.
#[derive(Debug)]
pub(crate) struct IndexedDocument {
    pub(crate) uri: String,
    pub(crate) version: i32,
    /// Workspace-relative path, as sent in snippets.
    pub(crate) path: String,
    /// The text indexed, to cut similar windows from (shares its chunks with the store's
    /// rope while the document is unchanged).
    pub(crate) text: Rope,
    /// Definitions by name, each as the snippet to send, already redacted.
    pub(crate) definitions: HashMap<String, Vec<String>>,
    pub(crate) windows: WindowIndex,
}

impl IndexedDocument {
    /// Indexes one version. Parses from scratch when the language has a grammar; the
    /// similar-snippet windows need only the text.
    pub(crate) fn build(
        uri: String,
        version: i32,
        language_id: &str,
        path: String,
        text: Rope,
    ) -> IndexedDocument {
        let definitions = Language::detect(language_id, &path)
            .map(|language| definitions_of(language, &text))
            .unwrap_or_default();
        let windows = WindowIndex::build(&text);
        IndexedDocument {
            uri,
            version,
            path,
            text,
            definitions,
            windows,
        }
    }
}

fn definitions_of(language: Language, text: &Rope) -> HashMap<String, Vec<String>> {
    let Some(tree) = syntax::parse_rope(language, text, None, syntax::FULL_PARSE_TIMEOUT) else {
        return HashMap::new();
    };
    let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
    for definition in syntax::definitions(&tree, text, language) {
        let shows_body = matches!(
            definition.kind,
            DefinitionKind::Class
                | DefinitionKind::Struct
                | DefinitionKind::Enum
                | DefinitionKind::Union
                | DefinitionKind::Trait
                | DefinitionKind::Interface
                | DefinitionKind::TypeAlias
                | DefinitionKind::Const
                | DefinitionKind::Static
        );
        let whole = shows_body
            .then(|| syntax::text_of(text, definition.byte_range.clone()))
            .filter(|whole| {
                whole.lines().count() <= MAX_DEFINITION_LINES
                    && whole.chars().count() <= MAX_DEFINITION_CHARS
            });
        let snippet = whole.unwrap_or(definition.signature);
        let snippet = privacy::redact(&snippet).text;
        let entries = by_name.entry(definition.name).or_default();
        if !entries.contains(&snippet) {
            entries.push(snippet);
        }
    }
    by_name
}

/// A document to (re-)index, as the store had it.
pub(crate) struct IndexJob {
    pub(crate) uri: String,
    pub(crate) version: i32,
    pub(crate) language_id: String,
    pub(crate) path: String,
    pub(crate) text: Rope,
}

/// The index of every open document, shared by requests and the indexing thread.
#[derive(Debug, Default)]
pub(crate) struct NeighborIndex {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Arc<IndexedDocument>>,
    /// Versions queued or being indexed, so a document is not queued twice.
    pending: HashMap<String, i32>,
    queue: VecDeque<IndexJob>,
    worker_running: bool,
}

impl std::fmt::Debug for IndexJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexJob")
            .field("uri", &self.uri)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl NeighborIndex {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `uri` at `version` is neither indexed nor queued.
    pub(crate) fn needs(&self, uri: &str, version: i32) -> bool {
        let state = self.state();
        state.entries.get(uri).map(|entry| entry.version) != Some(version)
            && state.pending.get(uri) != Some(&version)
    }

    /// Queues `job` unless that version is indexed or queued already, and starts the
    /// indexing thread if it is idle. Needs a Tokio runtime.
    pub(crate) fn schedule(self: &Arc<Self>, job: IndexJob) {
        if job.text.len_bytes() > MAX_INDEXED_BYTES {
            return;
        }
        let mut state = self.state();
        if state.entries.get(&job.uri).map(|entry| entry.version) == Some(job.version)
            || state.pending.get(&job.uri) == Some(&job.version)
        {
            return;
        }
        state.pending.insert(job.uri.clone(), job.version);
        state.queue.retain(|queued| queued.uri != job.uri);
        state.queue.push_back(job);
        if !state.worker_running {
            state.worker_running = true;
            let index = Arc::clone(self);
            tokio::task::spawn_blocking(move || index.work());
        }
    }

    /// The indexing thread: indexes queued documents until the queue is empty.
    fn work(&self) {
        loop {
            let job = {
                let mut state = self.state();
                match state.queue.pop_front() {
                    Some(job) => job,
                    None => {
                        state.worker_running = false;
                        return;
                    }
                }
            };
            let (uri, version) = (job.uri.clone(), job.version);
            // A bug in a grammar or query must not take the indexing thread down.
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                IndexedDocument::build(job.uri, job.version, &job.language_id, job.path, job.text)
            }));
            let mut state = self.state();
            if state.pending.get(&uri) == Some(&version) {
                state.pending.remove(&uri);
                match built {
                    Ok(entry) => {
                        state.entries.insert(uri, Arc::new(entry));
                    }
                    Err(_) => tracing::error!(%uri, "indexing a document panicked; skipped"),
                }
            }
            // Otherwise the document was closed or a newer version queued meanwhile.
        }
    }

    /// Forgets a closed document.
    pub(crate) fn forget(&self, uri: &str) {
        let mut state = self.state();
        state.entries.remove(uri);
        state.pending.remove(uri);
        state.queue.retain(|queued| queued.uri != uri);
    }

    /// The indexed documents other than `except`, among `open` (a document closed
    /// while being indexed is left out).
    pub(crate) fn others(&self, except: &str, open: &HashSet<&str>) -> Vec<Arc<IndexedDocument>> {
        let state = self.state();
        let mut others: Vec<Arc<IndexedDocument>> = state
            .entries
            .values()
            .filter(|entry| entry.uri != except && open.contains(entry.uri.as_str()))
            .cloned()
            .collect();
        // Stable order, so equal requests build equal context (and share a cache key).
        others.sort_by(|a, b| a.uri.cmp(&b.uri));
        others
    }

    /// Approximate heap bytes of the index (for the memory budget).
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.state()
            .entries
            .values()
            .map(|entry| {
                entry.windows.heap_bytes()
                    + entry
                        .definitions
                        .iter()
                        .map(|(name, snippets)| {
                            name.len() + snippets.iter().map(String::len).sum::<usize>()
                        })
                        .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(language_id: &str, path: &str, text: &str) -> IndexedDocument {
        IndexedDocument::build(
            format!("file:///ws/{path}"),
            1,
            language_id,
            path.to_owned(),
            Rope::from_str(text),
        )
    }

    #[test]
    fn small_types_are_whole_and_functions_are_headers() {
        let entry = build(
            "rust",
            "src/config.rs",
            "pub struct Config {\n    pub path: PathBuf,\n    pub retries: u32,\n}\n\n\
             impl Config {\n    pub fn load(path: &Path) -> Result<Config> {\n        todo()\n    }\n}\n\n\
             pub fn parse_config(text: &str) -> Config {\n    Config::default()\n}\n",
        );
        assert_eq!(
            entry.definitions["Config"],
            ["pub struct Config {\n    pub path: PathBuf,\n    pub retries: u32,\n}"]
        );
        assert_eq!(
            entry.definitions["load"],
            ["pub fn load(path: &Path) -> Result<Config>"]
        );
        assert_eq!(
            entry.definitions["parse_config"],
            ["pub fn parse_config(text: &str) -> Config"]
        );
    }

    #[test]
    fn python_and_typescript_definitions() {
        let entry = build(
            "python",
            "app/models.py",
            "class User:\n    name: str\n    email: str\n\n    def greet(self, other: 'User') -> str:\n        return ''\n",
        );
        assert!(entry.definitions["User"][0].starts_with("class User:\n    name: str"));
        assert_eq!(
            entry.definitions["greet"],
            ["def greet(self, other: 'User') -> str:"]
        );
        let entry = build(
            "typescript",
            "src/api.ts",
            "export interface Session { id: string; expires: number }\nexport function openSession(id: string): Session { return null as any }\n",
        );
        assert_eq!(
            entry.definitions["Session"],
            ["interface Session { id: string; expires: number }"]
        );
        assert_eq!(
            entry.definitions["openSession"],
            ["export function openSession(id: string): Session"]
        );
    }

    #[test]
    fn secrets_in_definitions_are_redacted_at_index_time() {
        let entry = build(
            "python",
            "settings.py",
            "class Settings:\n    api_key = \"sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c\"\n",
        );
        let snippet = &entry.definitions["Settings"][0];
        assert!(!snippet.contains("4f9a8b7c6d5e"), "{snippet}");
        assert!(snippet.contains("<redacted:"), "{snippet}");
    }

    #[test]
    fn languages_without_a_grammar_still_get_windows() {
        let entry = build("markdown", "README.md", "# Title\nsome words here\n");
        assert!(entry.definitions.is_empty());
    }

    #[tokio::test]
    async fn scheduled_documents_are_indexed_once_per_version_and_forgotten_on_close() {
        let index = Arc::new(NeighborIndex::default());
        let job = |version: i32, text: &str| IndexJob {
            uri: "file:///ws/a.rs".into(),
            version,
            language_id: "rust".into(),
            path: "a.rs".into(),
            text: Rope::from_str(text),
        };
        assert!(index.needs("file:///ws/a.rs", 1));
        index.schedule(job(1, "fn one() {}\n"));
        assert!(!index.needs("file:///ws/a.rs", 1), "queued counts");
        let open: HashSet<&str> = ["file:///ws/a.rs", "file:///ws/b.rs"].into();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while index.others("file:///ws/b.rs", &open).is_empty() {
            assert!(std::time::Instant::now() < deadline, "never indexed");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let others = index.others("file:///ws/b.rs", &open);
        assert!(others[0].definitions.contains_key("one"));
        assert!(
            index.others("file:///ws/a.rs", &open).is_empty(),
            "never itself"
        );
        assert!(index.needs("file:///ws/a.rs", 2));
        assert!(index.heap_bytes() > 0);
        index.forget("file:///ws/a.rs");
        assert!(index.others("file:///ws/b.rs", &open).is_empty());
    }
}
