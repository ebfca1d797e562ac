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
    pub(crate) definitions: DefinitionTable,
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

fn definitions_of(language: Language, text: &Rope) -> DefinitionTable {
    let Some(tree) = syntax::parse_rope(language, text, None, syntax::FULL_PARSE_TIMEOUT) else {
        return DefinitionTable::default();
    };
    let mut found: Vec<(String, String)> = Vec::new();
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
        found.push((definition.name, privacy::redact(&snippet).text));
    }
    // The table is built after the tree is gone, in two allocations: built while the tree
    // was alive, thousands of small strings would sit between its freed nodes and keep
    // those pages resident (measured: 20 MiB over 50 files).
    drop(tree);
    DefinitionTable::new(found)
}

/// Definitions by name, packed: every name and snippet in one string, and a sorted
/// table of ranges into it. Looked up by binary search.
#[derive(Debug, Default)]
pub(crate) struct DefinitionTable {
    text: String,
    /// (name start, name end, snippet start, snippet end), sorted by name then source
    /// order, without repeated (name, snippet) pairs.
    entries: Vec<(u32, u32, u32, u32)>,
}

impl DefinitionTable {
    fn new(mut found: Vec<(String, String)>) -> DefinitionTable {
        // Overloads and `#ifdef` branches repeat a definition word for word.
        let mut seen = HashSet::new();
        let keep: Vec<bool> = found
            .iter()
            .map(|(name, snippet)| seen.insert((name.as_str(), snippet.as_str())))
            .collect();
        drop(seen);
        let mut keep = keep.into_iter();
        found.retain(|_| keep.next().unwrap_or(false));
        // Stable: snippets of one name stay in source order.
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let length: usize = found
            .iter()
            .map(|(name, snippet)| name.len() + snippet.len())
            .sum();
        // Offsets are u32; a table over 4 GiB cannot come from a 1 MiB document.
        if u32::try_from(length).is_err() {
            return DefinitionTable::default();
        }
        let mut text = String::with_capacity(length);
        let mut entries = Vec::with_capacity(found.len());
        let offset = |text: &String| text.len() as u32;
        for (name, snippet) in found {
            let name_start = offset(&text);
            text.push_str(&name);
            let snippet_start = offset(&text);
            text.push_str(&snippet);
            entries.push((name_start, snippet_start, snippet_start, offset(&text)));
        }
        DefinitionTable { text, entries }
    }

    fn slice(&self, start: u32, end: u32) -> &str {
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// The snippets of the definitions named `name`, in source order.
    pub(crate) fn get(&self, name: &str) -> Vec<&str> {
        let first = self
            .entries
            .partition_point(|&(start, end, _, _)| self.slice(start, end) < name);
        self.entries[first..]
            .iter()
            .take_while(|&&(start, end, _, _)| self.slice(start, end) == name)
            .map(|&(_, _, start, end)| self.slice(start, end))
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.entries.capacity() * std::mem::size_of::<(u32, u32, u32, u32)>()
    }
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
                        drop(state);
                        // Each document's parse tree was dropped; this thread is idle, so
                        // give the pages back now rather than on the next timer tick.
                        crate::memory::trim();
                        return;
                    }
                }
            };
            let (uri, version) = (job.uri.clone(), job.version);
            // A bug in a grammar or query must not take the indexing thread down.
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                IndexedDocument::build(job.uri, job.version, &job.language_id, job.path, job.text)
            }));
            // The parse tree of a whole document was just dropped.
            crate::memory::note_freed();
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
            .map(|entry| entry.windows.heap_bytes() + entry.definitions.heap_bytes())
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
            entry.definitions.get("Config"),
            ["pub struct Config {\n    pub path: PathBuf,\n    pub retries: u32,\n}"]
        );
        assert_eq!(
            entry.definitions.get("load"),
            ["pub fn load(path: &Path) -> Result<Config>"]
        );
        assert_eq!(
            entry.definitions.get("parse_config"),
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
        assert!(entry.definitions.get("User")[0].starts_with("class User:\n    name: str"));
        assert_eq!(
            entry.definitions.get("greet"),
            ["def greet(self, other: 'User') -> str:"]
        );
        let entry = build(
            "typescript",
            "src/api.ts",
            "export interface Session { id: string; expires: number }\nexport function openSession(id: string): Session { return null as any }\n",
        );
        assert_eq!(
            entry.definitions.get("Session"),
            ["interface Session { id: string; expires: number }"]
        );
        assert_eq!(
            entry.definitions.get("openSession"),
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
        let snippet = &entry.definitions.get("Settings")[0];
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
        assert!(!others[0].definitions.get("one").is_empty());
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
