//! The open documents, mutated in notification order and read through snapshots.
//!
//! All mutation happens under a std `RwLock` in plain synchronous functions: the LSP
//! handlers call them before their first `.await`, so edits apply in the order the
//! client sent them. Requests call [`DocumentStore::snapshot`], which clones the rope
//! (a cheap, reference-counted copy) and releases the lock at once, so nothing ever
//! waits on the network while holding it.
//!
//! Documents in a language with a grammar ([`Language::detect`]) also get a tree-sitter
//! tree, kept up to date incrementally: an edit only calls `Tree::edit` on it (a few
//! microseconds, whatever the file size) and marks it stale; the re-parse, which reuses
//! the subtrees the edit did not touch, happens when a request asks for the tree
//! ([`DocumentStore::snapshot_with_syntax`]). Trees are kept only for the
//! [`DEFAULT_TREE_CAPACITY`] most recently edited or requested documents; the others are
//! parsed from scratch again when next asked for.
//!
//! The store also remembers the recently edited regions of all documents
//! ([`DocumentStore::recent_edits`]), kept up to date by the same edits under the same
//! lock, for the completion context.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ropey::Rope;

use super::position::{self, ByteOffset, LspPosition, PositionEncoding, PositionError};
use crate::syntax::{self, Language};

/// How many *edited* documents keep a syntax tree by default.
///
/// A tree pays for itself where the user types: the next request re-parses incrementally
/// in well under a millisecond instead of from scratch. Elsewhere it is only memory, and
/// a lot of it: about 5 MiB for a 2,000-line, 105 KB Rust file (measured with the
/// workload's `rss` section), against the issue's budget of 22 MiB for 50 such files open,
/// server included. So edited documents keep their trees, the four most recent of them;
/// of the documents only read, just the latest one asked about, and only when it is small
/// ([`UNEDITED_TREE_MAX_BYTES`]). Any other request parses from scratch, uses the tree
/// and drops it; a document's first edit then starts a kept tree.
pub const DEFAULT_TREE_CAPACITY: usize = 4;

/// How many documents that were never edited keep a tree, besides the edited ones.
const UNEDITED_TREE_CAPACITY: usize = 1;

/// The largest document that keeps a tree without being edited. Repeated requests in a
/// small file (a cache hit is a fraction of a millisecond) should not pay a parse each,
/// while a tree costs about 50 bytes per byte of source: this one about 800 KiB at most.
const UNEDITED_TREE_MAX_BYTES: usize = 16 * 1024;

/// How many recently edited regions the store remembers, over all documents.
const RECENT_EDITS_CAPACITY: usize = 16;

/// An edit this many lines or fewer from a region of the same document moves that
/// region instead of adding one, so typing a word or a few lines makes one region.
const RECENT_EDIT_MERGE_LINES: usize = 3;

/// A recently edited region of an open document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentEdit {
    pub uri: String,
    /// 0-based line of the edited region in the document's current text, kept up to
    /// date as later edits insert or delete lines above it.
    pub line: usize,
}

/// A syntax tree that matches a snapshot's text exactly.
#[derive(Debug, Clone)]
pub struct SyntaxTree {
    /// Cloning a tree is O(1): tree-sitter trees are reference counted.
    pub tree: tree_sitter::Tree,
    pub language: Language,
}

/// A read-only copy of a document taken at one version.
#[derive(Debug, Clone)]
pub struct DocumentSnapshot {
    pub uri: String,
    pub language_id: String,
    pub version: i32,
    pub text: Rope,
    /// The tree of exactly `text`, when one was up to date when the snapshot was taken
    /// ([`DocumentStore::snapshot`]) or was parsed for it
    /// ([`DocumentStore::snapshot_with_syntax`]). `None` for languages without a grammar,
    /// and when parsing failed or timed out: the request then uses text-only context.
    pub syntax: Option<SyntaxTree>,
}

/// One open document as the store keeps it.
#[derive(Debug)]
struct Document {
    uri: String,
    language_id: String,
    version: i32,
    text: Rope,
    /// `None` when the language has no grammar: such documents never get a tree.
    language: Option<Language>,
    /// The last parsed tree, edited (not re-parsed) by every change since when `stale`.
    tree: Option<tree_sitter::Tree>,
    stale: bool,
    /// Set when parsing this revision failed (it timed out), so requests do not pay
    /// the parse timeout again and again until the text changes.
    parse_failed: bool,
    /// Bumped by every mutation; a parse done outside the lock is stored only if the
    /// document is still at the revision it parsed.
    revision: u64,
    /// Whether the document was changed since it was opened: only edited documents
    /// keep trees beyond [`UNEDITED_TREE_CAPACITY`].
    edited: bool,
    /// When the document was last edited or had its tree requested, for the LRU.
    /// Atomic so a request can touch it under the read lock.
    last_used: AtomicU64,
}

impl Document {
    fn snapshot(&self, syntax: Option<SyntaxTree>) -> DocumentSnapshot {
        DocumentSnapshot {
            uri: self.uri.clone(),
            language_id: self.language_id.clone(),
            version: self.version,
            text: self.text.clone(),
            syntax,
        }
    }

    fn fresh_tree(&self) -> Option<SyntaxTree> {
        match (&self.tree, self.language) {
            (Some(tree), Some(language)) if !self.stale => Some(SyntaxTree {
                tree: tree.clone(),
                language,
            }),
            _ => None,
        }
    }
}

/// One change of a `didChange` notification: a replacement of `range`, or of the whole
/// text when `range` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentChange {
    pub range: Option<(LspPosition, LspPosition)>,
    pub text: String,
}

/// Something about a change that had to be adjusted to apply it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeWarning {
    /// A range end was not a valid position and was clamped.
    #[error("clamped an edit position: {0}")]
    ClampedPosition(PositionError),
    /// A range ended before it started; it was treated as empty at its start.
    #[error("edit range ends before it starts; treated as an insertion")]
    ReversedRange,
    /// The new version is not greater than the one the store has.
    #[error("version went from {previous} to {new}")]
    VersionNotIncreasing { previous: i32, new: i32 },
}

/// Why a store operation could not be done at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No document with this URI is open.
    #[error("document not open: {0}")]
    NotOpen(String),
}

/// Everything behind the store's one lock.
#[derive(Debug, Default)]
struct Documents {
    open: HashMap<String, Document>,
    recent: RecentEdits,
}

#[derive(Debug)]
pub struct DocumentStore {
    documents: RwLock<Documents>,
    /// The source of revisions and LRU ticks; only ever increases.
    clock: AtomicU64,
    tree_capacity: usize,
}

impl Default for DocumentStore {
    fn default() -> Self {
        Self::with_tree_capacity(DEFAULT_TREE_CAPACITY)
    }
}

impl DocumentStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that keeps syntax trees for at most `tree_capacity` documents.
    pub fn with_tree_capacity(tree_capacity: usize) -> Self {
        DocumentStore {
            documents: RwLock::default(),
            clock: AtomicU64::new(0),
            tree_capacity,
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    // A panic in a handler while holding the lock must not wedge every later
    // request; documents are replaced wholesale or edited by ropey, which does not
    // leave a rope half-edited, so the data behind a poisoned lock is still usable.
    fn read(&self) -> RwLockReadGuard<'_, Documents> {
        self.documents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Documents> {
        self.documents
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens (or re-opens, replacing) a document. Nothing is parsed yet: the first
    /// request that wants the tree parses it. Opening records no recent edit; re-opening
    /// forgets the old text's, whose lines no longer mean anything.
    pub fn open(&self, uri: &str, language_id: &str, version: i32, text: &str) {
        let tick = self.tick();
        let document = Document {
            uri: uri.to_owned(),
            language_id: language_id.to_owned(),
            version,
            text: Rope::from_str(text),
            language: Language::detect(language_id, uri),
            tree: None,
            stale: false,
            parse_failed: false,
            revision: tick,
            edited: false,
            last_used: AtomicU64::new(tick),
        };
        let mut documents = self.write();
        documents.recent.forget(uri);
        documents.open.insert(uri.to_owned(), document);
    }

    /// Applies `changes` in order and sets the version.
    ///
    /// Each ranged change also edits the syntax tree (`Tree::edit`, no parsing) and
    /// records a recent edit; a full-text change drops the tree, since nothing of it can
    /// be reused, and forgets the document's recent edits.
    pub fn change(
        &self,
        uri: &str,
        version: i32,
        changes: &[ContentChange],
        encoding: PositionEncoding,
    ) -> Result<Vec<ChangeWarning>, StoreError> {
        let tick = self.tick();
        let mut documents = self.write();
        let Documents { open, recent } = &mut *documents;
        let document = open
            .get_mut(uri)
            .ok_or_else(|| StoreError::NotOpen(uri.to_owned()))?;
        let mut warnings = Vec::new();
        if version <= document.version {
            warnings.push(ChangeWarning::VersionNotIncreasing {
                previous: document.version,
                new: version,
            });
        }
        for change in changes {
            match apply_change(&mut document.text, change, encoding, &mut warnings) {
                AppliedChange::Edit(edit) => {
                    recent.record(
                        uri,
                        edit.start_position.row,
                        edit.old_end_position.row,
                        edit.new_end_position.row,
                    );
                    if let Some(tree) = &mut document.tree {
                        tree.edit(&edit);
                        document.stale = true;
                    }
                }
                AppliedChange::FullText => {
                    recent.forget(uri);
                    if document.tree.take().is_some() {
                        crate::memory::note_freed();
                    }
                    document.stale = false;
                }
            }
        }
        document.version = version;
        document.revision = tick;
        document.edited = true;
        document.parse_failed = false;
        document.last_used.store(tick, Ordering::Relaxed);
        Ok(warnings)
    }

    /// Forgets a document and its recent edits; closing one that is not open is not an
    /// error.
    pub fn close(&self, uri: &str) -> bool {
        let mut documents = self.write();
        documents.recent.forget(uri);
        crate::memory::note_freed();
        documents.open.remove(uri).is_some()
    }

    /// Distinct recently edited regions over all open documents, most recent first, at
    /// most `max`.
    pub fn recent_edits(&self, max: usize) -> Vec<RecentEdit> {
        self.read()
            .recent
            .regions
            .iter()
            .take(max)
            .cloned()
            .collect()
    }

    /// A copy of the document as it is now; the lock is released on return.
    ///
    /// Never parses: `syntax` is filled only if the tree is already up to date.
    pub fn snapshot(&self, uri: &str) -> Result<DocumentSnapshot, StoreError> {
        let documents = self.read();
        let document = documents
            .open
            .get(uri)
            .ok_or_else(|| StoreError::NotOpen(uri.to_owned()))?;
        Ok(document.snapshot(document.fresh_tree()))
    }

    /// A snapshot whose `syntax` is the tree of exactly its text, parsing if needed.
    ///
    /// The parse reuses the edited old tree, so after a keystroke it re-lexes only
    /// around the edit, though tree-sitter still steps over every top-level item (about
    /// 0.1 ms for a 2,000-line file, 1.5 ms for a 20,000-line one, whose first parse
    /// takes about 50 ms; see [`syntax::PARSE_TIMEOUT`]). It runs on a copy of the rope
    /// *outside* the lock, so typing never waits for it, and gives up after
    /// [`syntax::PARSE_TIMEOUT`] ([`syntax::FULL_PARSE_TIMEOUT`] without an old tree),
    /// so a pathological file costs a request at most that;
    /// such a document then has `syntax: None` (text-only context) until it changes.
    /// The caller blocks for the parse: acceptable on an async task because it is
    /// bounded CPU work, never I/O. The result is stored for the next request only if
    /// no edit arrived meanwhile.
    pub fn snapshot_with_syntax(&self, uri: &str) -> Result<DocumentSnapshot, StoreError> {
        let tick = self.tick();
        let (snapshot, language, old_tree, revision) = {
            let documents = self.read();
            let document = documents
                .open
                .get(uri)
                .ok_or_else(|| StoreError::NotOpen(uri.to_owned()))?;
            document.last_used.store(tick, Ordering::Relaxed);
            let fresh = document.fresh_tree();
            let Some(language) = document.language else {
                return Ok(document.snapshot(None));
            };
            if fresh.is_some() || document.parse_failed {
                return Ok(document.snapshot(fresh));
            }
            let old_tree = if document.stale {
                document.tree.clone()
            } else {
                None
            };
            (
                document.snapshot(None),
                language,
                old_tree,
                document.revision,
            )
        };

        let parsed = syntax::parse_rope(
            language,
            &snapshot.text,
            old_tree.as_ref(),
            syntax::timeout_for(old_tree.as_ref()),
        );

        let mut documents = self.write();
        if let Some(document) = documents.open.get_mut(uri) {
            if document.revision == revision {
                match &parsed {
                    Some(tree)
                        if document.edited
                            || document.text.len_bytes() <= UNEDITED_TREE_MAX_BYTES =>
                    {
                        document.tree = Some(tree.clone());
                        document.stale = false;
                    }
                    // Used by this request only, then dropped.
                    Some(_) => crate::memory::note_freed(),
                    None => {
                        tracing::debug!(uri, "parse failed or timed out; text-only context");
                        document.parse_failed = true;
                    }
                }
            }
        }
        evict_least_recently_used(&mut documents.open, self.tree_capacity);
        drop(documents);

        Ok(DocumentSnapshot {
            syntax: parsed.map(|tree| SyntaxTree { tree, language }),
            ..snapshot
        })
    }

    /// The up-to-date syntax tree of a document, parsing if needed (see
    /// [`DocumentStore::snapshot_with_syntax`]). `None` if the document is not open,
    /// has no grammar, or failed to parse.
    pub fn syntax_tree(&self, uri: &str) -> Option<(tree_sitter::Tree, Language)> {
        let syntax = self.snapshot_with_syntax(uri).ok()?.syntax?;
        Some((syntax.tree, syntax.language))
    }

    /// Snapshots of every open document (O(1) rope clones), for cross-file context.
    ///
    /// Never parses: `syntax` is filled where the tree is up to date, so looking for
    /// definitions in other documents costs no parse and does not disturb which trees
    /// the LRU keeps.
    pub fn snapshots(&self) -> Vec<DocumentSnapshot> {
        self.read()
            .open
            .values()
            .map(|document| document.snapshot(document.fresh_tree()))
            .collect()
    }

    /// The current version of a document, if open.
    pub fn version(&self, uri: &str) -> Option<i32> {
        self.read().open.get(uri).map(|document| document.version)
    }

    /// How many documents hold a syntax tree (fresh or stale) right now.
    #[cfg(test)]
    pub fn tree_count(&self) -> usize {
        self.read()
            .open
            .values()
            .filter(|document| document.tree.is_some())
            .count()
    }
}

/// The recently edited regions of all documents, most recent first; regions of one
/// document are always more than [`RECENT_EDIT_MERGE_LINES`] lines apart. An edit costs
/// one pass over the (at most [`RECENT_EDITS_CAPACITY`]) regions, plus, for the few
/// regions next to the edit's start, a look at the newer ones.
#[derive(Debug, Default)]
struct RecentEdits {
    regions: Vec<RecentEdit>,
}

impl RecentEdits {
    /// Records an edit of `uri` that replaced lines `start..=old_end` with text now
    /// spanning `start..=new_end`: shifts the document's regions to the new text, then
    /// puts a region at `new_end` first, moving the nearby one if there is one.
    fn record(&mut self, uri: &str, start: usize, old_end: usize, new_end: usize) {
        let mut moved = None;
        let mut index = 0;
        while index < self.regions.len() {
            let region = &mut self.regions[index];
            if region.uri != uri {
                index += 1;
                continue;
            }
            region.line = shift_line(region.line, start, old_end, new_end);
            let line = region.line;
            let near = |other: usize| other.abs_diff(line) <= RECENT_EDIT_MERGE_LINES;
            // Regions inside the replaced range all land on its start, maybe next to
            // another region there (any other pair brought together is next to the
            // edit's end, so merged below): of such a pair keep the newer.
            let near_newer = near(start)
                && self.regions[..index]
                    .iter()
                    .any(|newer| newer.uri == uri && near(newer.line));
            if near(new_end) || near_newer {
                let removed = self.regions.remove(index);
                if moved.is_none() && near(new_end) {
                    moved = Some(removed);
                }
            } else {
                index += 1;
            }
        }
        let mut region = moved.unwrap_or_else(|| RecentEdit {
            uri: uri.to_owned(),
            line: new_end,
        });
        region.line = new_end;
        self.regions.insert(0, region);
        self.regions.truncate(RECENT_EDITS_CAPACITY);
    }

    fn forget(&mut self, uri: &str) {
        self.regions.retain(|region| region.uri != uri);
    }
}

/// Where `line` is after lines `start..=old_end` became `start..=new_end`: lines below
/// the edit move by the change in line count, lines inside the replaced range move to
/// its start, and the range's last line (whose tail survives) to its new last line.
fn shift_line(line: usize, start: usize, old_end: usize, new_end: usize) -> usize {
    if line <= start {
        line
    } else if line < old_end {
        start
    } else {
        // `line >= old_end`, so this cannot underflow.
        line - old_end + new_end
    }
}

/// Drops the trees of the least recently used documents until at most `capacity` keep
/// one. Linear in the number of open documents, which is small (tens), and only run
/// after a parse, never on a keystroke.
fn evict_least_recently_used(documents: &mut HashMap<String, Document>, capacity: usize) {
    evict_beyond(documents, capacity, true);
    evict_beyond(documents, UNEDITED_TREE_CAPACITY, false);
}

/// Drops the trees of the least recently used documents with `edited` as given until at
/// most `capacity` of them hold one.
fn evict_beyond(documents: &mut HashMap<String, Document>, capacity: usize, edited: bool) {
    loop {
        let with_trees = documents
            .values()
            .filter(|document| document.tree.is_some() && document.edited == edited);
        if with_trees.clone().count() <= capacity {
            return;
        }
        let Some(oldest) = with_trees
            .min_by_key(|document| document.last_used.load(Ordering::Relaxed))
            .map(|document| document.uri.clone())
        else {
            return;
        };
        if let Some(document) = documents.get_mut(&oldest) {
            document.tree = None;
            document.stale = false;
            crate::memory::note_freed();
        }
    }
}

/// What one applied change means for the syntax tree.
enum AppliedChange {
    /// A replacement of a range, described the way `Tree::edit` wants it.
    Edit(tree_sitter::InputEdit),
    /// The whole text was replaced.
    FullText,
}

/// Applies one change to `text`, clamping invalid positions, and says how the text
/// changed for the syntax tree.
fn apply_change(
    text: &mut Rope,
    change: &ContentChange,
    encoding: PositionEncoding,
    warnings: &mut Vec<ChangeWarning>,
) -> AppliedChange {
    let Some((start, end)) = change.range else {
        *text = Rope::from_str(&change.text);
        return AppliedChange::FullText;
    };
    let mut resolve = |position| {
        let (offset, error) = position::offset_of_clamped(text, position, encoding);
        if let Some(error) = error {
            warnings.push(ChangeWarning::ClampedPosition(error));
        }
        offset
    };
    let start = resolve(start);
    let mut end = resolve(end);
    if end < start {
        warnings.push(ChangeWarning::ReversedRange);
        end = start;
    }
    // Points of the start and old end come from the text before the edit, the new
    // end's from the text after it: each O(log n) in the rope.
    let start_position = position::tree_sitter_point(text, start);
    let old_end_position = position::tree_sitter_point(text, end);
    replace(text, start, end, &change.text);
    let new_end = ByteOffset(start.0 + change.text.len());
    AppliedChange::Edit(tree_sitter::InputEdit {
        start_byte: start.0,
        old_end_byte: end.0,
        new_end_byte: new_end.0,
        start_position,
        old_end_position,
        new_end_position: position::tree_sitter_point(text, new_end),
    })
}

fn replace(text: &mut Rope, start: ByteOffset, end: ByteOffset, replacement: &str) {
    let start_char = position::char_index_of(text, start);
    let end_char = position::char_index_of(text, end);
    if end_char.0 > start_char.0 {
        text.remove(start_char.0..end_char.0);
    }
    if !replacement.is_empty() {
        text.insert(start_char.0, replacement);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    use crate::syntax::Language;

    use PositionEncoding::{Utf16, Utf8};

    /// The obvious, slow model: a `String` and LSP line rules spelled out by hand.
    struct NaiveDocument {
        text: String,
    }

    impl NaiveDocument {
        /// Byte offsets where each line starts, breaking at `\n`, `\r\n` and `\r`.
        fn line_starts(&self) -> Vec<usize> {
            let bytes = self.text.as_bytes();
            let mut starts = vec![0];
            let mut index = 0;
            while index < bytes.len() {
                match bytes[index] {
                    b'\n' => starts.push(index + 1),
                    b'\r' if bytes.get(index + 1) == Some(&b'\n') => {
                        starts.push(index + 2);
                        index += 1;
                    }
                    b'\r' => starts.push(index + 1),
                    _ => {}
                }
                index += 1;
            }
            starts
        }

        fn line_content(&self, line: usize) -> &str {
            let starts = self.line_starts();
            let start = starts[line];
            let end = starts.get(line + 1).copied().unwrap_or(self.text.len());
            self.text[start..end].trim_end_matches(['\n', '\r'])
        }

        fn position_of(&self, offset: usize, encoding: PositionEncoding) -> LspPosition {
            let starts = self.line_starts();
            let line = starts
                .iter()
                .rposition(|&start| start <= offset)
                .unwrap_or(0);
            let prefix = &self.text[starts[line]..offset];
            let character = match encoding {
                Utf8 => prefix.len(),
                Utf16 => prefix.encode_utf16().count(),
            };
            LspPosition::new(line as u32, character as u32)
        }

        /// Valid edit boundaries: char boundaries that are not inside a CRLF.
        fn boundaries(&self) -> Vec<usize> {
            let bytes = self.text.as_bytes();
            (0..=self.text.len())
                .filter(|&offset| self.text.is_char_boundary(offset))
                .filter(|&offset| {
                    !(offset > 0 && bytes[offset - 1] == b'\r' && bytes.get(offset) == Some(&b'\n'))
                })
                .collect()
        }
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a", "bc", "\t", "\n", "\r\n", "\r", "😀", "中文", "é", " ", "fn x() {", "}", "🦀\t",
        ]);
        prop::collection::vec(pieces, 0..12).prop_map(|pieces| pieces.concat())
    }

    #[derive(Debug, Clone)]
    struct Edit {
        start_pick: prop::sample::Index,
        length_pick: prop::sample::Index,
        text: String,
    }

    fn edit_strategy() -> impl Strategy<Value = Edit> {
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            text_strategy(),
        )
            .prop_map(|(start_pick, length_pick, text)| Edit {
                start_pick,
                length_pick,
                text,
            })
    }

    fn run_edits(
        initial: &str,
        edits: &[Edit],
        encoding: PositionEncoding,
    ) -> Result<(), TestCaseError> {
        let store = DocumentStore::new();
        let uri = "file:///model.txt";
        store.open(uri, "plaintext", 0, initial);
        let mut model = NaiveDocument {
            text: initial.to_owned(),
        };
        for (number, edit) in edits.iter().enumerate() {
            let boundaries = model.boundaries();
            let start_index = edit.start_pick.index(boundaries.len());
            let end_index = start_index + edit.length_pick.index(boundaries.len() - start_index);
            let (start, end) = (boundaries[start_index], boundaries[end_index]);
            let range = (
                model.position_of(start, encoding),
                model.position_of(end, encoding),
            );
            let warnings = store
                .change(
                    uri,
                    number as i32 + 1,
                    &[ContentChange {
                        range: Some(range),
                        text: edit.text.clone(),
                    }],
                    encoding,
                )
                .unwrap();
            prop_assert!(
                warnings.is_empty(),
                "valid edit produced warnings: {warnings:?}"
            );
            model.text.replace_range(start..end, &edit.text);

            let snapshot = store.snapshot(uri).unwrap();
            prop_assert_eq!(snapshot.text.to_string(), model.text.clone());
            prop_assert_eq!(snapshot.text.len_lines(), model.line_starts().len());
            for line in 0..model.line_starts().len() {
                prop_assert_eq!(
                    super::super::position::offset_of(
                        &snapshot.text,
                        LspPosition::new(line as u32, 0),
                        encoding
                    )
                    .unwrap(),
                    ByteOffset(model.line_starts()[line])
                );
            }
            for offset in model.boundaries() {
                let expected = model.position_of(offset, encoding);
                let position =
                    position::position_of(&snapshot.text, ByteOffset(offset), encoding).unwrap();
                prop_assert_eq!(position, expected);
                let back = position::offset_of(&snapshot.text, position, encoding).unwrap();
                prop_assert_eq!(back, ByteOffset(offset));
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn incremental_edits_match_a_naive_model_utf16(
            initial in text_strategy(),
            edits in prop::collection::vec(edit_strategy(), 1..8),
        ) {
            run_edits(&initial, &edits, Utf16)?;
        }

        #[test]
        fn incremental_edits_match_a_naive_model_utf8(
            initial in text_strategy(),
            edits in prop::collection::vec(edit_strategy(), 1..8),
        ) {
            run_edits(&initial, &edits, Utf8)?;
        }

        #[test]
        fn line_ends_match_the_naive_model(text in text_strategy()) {
            let model = NaiveDocument { text: text.clone() };
            let rope = Rope::from_str(&text);
            for line in 0..model.line_starts().len() {
                let width = model.line_content(line).encode_utf16().count() as u32;
                let end = position::offset_of(&rope, LspPosition::new(line as u32, width), Utf16).unwrap();
                prop_assert_eq!(end.0, model.line_starts()[line] + model.line_content(line).len());
            }
        }
    }

    /// Snippets a random edit inserts: code-shaped so the trees have real structure,
    /// plus broken fragments so error recovery is exercised too.
    fn code_strategy(language: Language) -> impl Strategy<Value = String> {
        let pieces: Vec<&'static str> = match language {
            Language::Python => vec![
                "def f(x):\n",
                "    return x\n",
                "class A:\n",
                "    pass\n",
                "\n",
                "(",
                ")",
                "x = [1, 2]\n",
                "if a:\n",
                "\"s\"",
                "é",
                "# c\n",
                "  ",
                ":",
                "\r\n",
            ],
            _ => vec![
                "fn f(x: u8) {",
                "}",
                "let a = 1;",
                "\n",
                "(",
                ")",
                "struct S { a: u8 }",
                "impl S {",
                "\"s\"",
                "é😀",
                "// c\n",
                "  ",
                "::",
                "\r\n",
                "/*",
                "*/",
            ],
        };
        prop::collection::vec(prop::sample::select(pieces), 0..10)
            .prop_map(|pieces| pieces.concat())
    }

    fn syntax_edits(
        language: Language,
    ) -> impl Strategy<
        Value = (
            String,
            Vec<(prop::sample::Index, prop::sample::Index, String, bool)>,
        ),
    > {
        (
            code_strategy(language),
            prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    any::<prop::sample::Index>(),
                    code_strategy(language),
                    any::<bool>(),
                ),
                1..12,
            ),
        )
    }

    /// Applies random edits through the store, asking for the tree after some of them
    /// (so several edits can pile up on one stale tree), and checks every re-parsed tree
    /// against a parse from scratch of the same text.
    fn incremental_matches_fresh(
        language: Language,
        language_id: &str,
        initial: &str,
        edits: &[(prop::sample::Index, prop::sample::Index, String, bool)],
    ) -> Result<(), TestCaseError> {
        let store = DocumentStore::new();
        let uri = "file:///model";
        store.open(uri, language_id, 0, initial);
        prop_assert!(store.syntax_tree(uri).is_some());
        let mut model = NaiveDocument {
            text: initial.to_owned(),
        };
        for (number, (start_pick, length_pick, text, ask)) in edits.iter().enumerate() {
            let boundaries = model.boundaries();
            let start_index = start_pick.index(boundaries.len());
            let end_index = start_index + length_pick.index(boundaries.len() - start_index);
            let (start, end) = (boundaries[start_index], boundaries[end_index]);
            let range = (
                model.position_of(start, Utf16),
                model.position_of(end, Utf16),
            );
            store
                .change(
                    uri,
                    number as i32 + 1,
                    &[ContentChange {
                        range: Some(range),
                        text: text.clone(),
                    }],
                    Utf16,
                )
                .unwrap();
            model.text.replace_range(start..end, text);
            if *ask || number + 1 == edits.len() {
                let snapshot = store.snapshot_with_syntax(uri).unwrap();
                prop_assert_eq!(snapshot.text.to_string(), model.text.clone());
                let syntax = snapshot.syntax.expect("small documents always parse");
                let fresh = language.parser().parse(&model.text, None).unwrap();
                if fresh.root_node().has_error() {
                    // Error recovery is a heuristic: tree-sitter does not promise the
                    // same recovery from a reused tree as from scratch (e.g. an edit
                    // closing a `/*` comment ahead of a stray `)`). What must hold is
                    // that invalid text is never reported as valid.
                    prop_assert!(
                        syntax.tree.root_node().has_error(),
                        "text: {:?}",
                        model.text
                    );
                } else {
                    prop_assert_eq!(
                        syntax.tree.root_node().to_sexp(),
                        fresh.root_node().to_sexp(),
                        "text: {:?}",
                        model.text
                    );
                }
                prop_assert_eq!(
                    syntax.tree.root_node().byte_range(),
                    fresh.root_node().byte_range()
                );
                // A second request reuses the stored tree without parsing.
                prop_assert!(store.snapshot(uri).unwrap().syntax.is_some());
            } else {
                prop_assert!(
                    store.snapshot(uri).unwrap().syntax.is_none(),
                    "stale tree leaked"
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn incremental_rust_trees_equal_fresh_parses((initial, edits) in syntax_edits(Language::Rust)) {
            incremental_matches_fresh(Language::Rust, "rust", &initial, &edits)?;
        }

        #[test]
        fn incremental_python_trees_equal_fresh_parses((initial, edits) in syntax_edits(Language::Python)) {
            incremental_matches_fresh(Language::Python, "python", &initial, &edits)?;
        }
    }

    /// Replaces the range from `start` to `end` (line, UTF-16 column) with `text`.
    fn edit(store: &DocumentStore, uri: &str, start: (u32, u32), end: (u32, u32), text: &str) {
        let version = store.version(uri).unwrap() + 1;
        let range = (
            LspPosition::new(start.0, start.1),
            LspPosition::new(end.0, end.1),
        );
        store
            .change(
                uri,
                version,
                &[ContentChange {
                    range: Some(range),
                    text: text.into(),
                }],
                Utf16,
            )
            .unwrap();
    }

    fn recent(uri: &str, line: usize) -> RecentEdit {
        RecentEdit {
            uri: uri.into(),
            line,
        }
    }

    fn lines(count: usize) -> String {
        (0..count).map(|line| format!("line {line}\n")).collect()
    }

    #[test]
    fn typing_a_word_makes_one_recent_edit() {
        let store = DocumentStore::new();
        store.open("file:///a.rs", "rust", 1, &lines(20));
        assert_eq!(store.recent_edits(8), vec![], "opening records nothing");
        for (column, char) in "hello".chars().enumerate() {
            let column = column as u32;
            edit(
                &store,
                "file:///a.rs",
                (5, column),
                (5, column),
                &char.to_string(),
            );
        }
        // A newline and a few more lines stay the same region, which follows the end.
        edit(&store, "file:///a.rs", (5, 5), (5, 5), "\nworld\n");
        assert_eq!(store.recent_edits(8), vec![recent("file:///a.rs", 7)]);
    }

    #[test]
    fn edits_far_apart_make_separate_regions_most_recent_first() {
        let store = DocumentStore::new();
        store.open("file:///a.rs", "rust", 1, &lines(40));
        store.open("file:///b.rs", "rust", 1, &lines(40));
        edit(&store, "file:///a.rs", (2, 0), (2, 0), "x");
        edit(&store, "file:///a.rs", (30, 0), (30, 0), "y");
        edit(&store, "file:///b.rs", (2, 0), (2, 0), "z");
        assert_eq!(
            store.recent_edits(8),
            vec![
                recent("file:///b.rs", 2),
                recent("file:///a.rs", 30),
                recent("file:///a.rs", 2),
            ]
        );
        assert_eq!(store.recent_edits(1), vec![recent("file:///b.rs", 2)]);
        // Editing near an old region moves it to the front.
        edit(&store, "file:///a.rs", (4, 0), (4, 0), "w");
        assert_eq!(
            store.recent_edits(8),
            vec![
                recent("file:///a.rs", 4),
                recent("file:///b.rs", 2),
                recent("file:///a.rs", 30),
            ]
        );
    }

    #[test]
    fn inserting_lines_above_shifts_a_region() {
        let store = DocumentStore::new();
        store.open("file:///a.rs", "rust", 1, &lines(40));
        edit(&store, "file:///a.rs", (30, 2), (30, 2), "x");
        edit(&store, "file:///a.rs", (3, 0), (3, 0), "a\nb\nc\n");
        assert_eq!(
            store.recent_edits(8),
            vec![recent("file:///a.rs", 6), recent("file:///a.rs", 33)]
        );
        let text = store.snapshot("file:///a.rs").unwrap().text;
        assert_eq!(text.line(33).to_string(), "lixne 30\n");
        // Deleting lines above moves it back; an edit below it does not move it.
        edit(&store, "file:///a.rs", (20, 0), (22, 0), "");
        edit(&store, "file:///a.rs", (39, 0), (39, 0), "\n\n");
        assert_eq!(
            store.recent_edits(8),
            vec![
                recent("file:///a.rs", 41),
                recent("file:///a.rs", 20),
                recent("file:///a.rs", 6),
                recent("file:///a.rs", 31),
            ]
        );
    }

    #[test]
    fn deleting_a_regions_lines_moves_it_to_the_edit_start() {
        let store = DocumentStore::new();
        store.open("file:///a.rs", "rust", 1, &lines(60));
        edit(&store, "file:///a.rs", (20, 0), (20, 0), "x");
        edit(&store, "file:///a.rs", (30, 0), (30, 0), "y");
        edit(&store, "file:///a.rs", (50, 0), (50, 0), "z");
        // Lines 10 to 39 go, replaced by ten new ones: the regions at 20 and 30 were
        // inside, so they land on line 10 as one region; 50 moves up by 20.
        let replacement = "new\n".repeat(10);
        edit(&store, "file:///a.rs", (10, 0), (40, 0), &replacement);
        assert_eq!(
            store.recent_edits(8),
            vec![
                recent("file:///a.rs", 20),
                recent("file:///a.rs", 30),
                recent("file:///a.rs", 10),
            ]
        );
        let text = store.snapshot("file:///a.rs").unwrap().text;
        assert_eq!(text.line(30).to_string(), "zline 50\n");
    }

    #[test]
    fn closing_or_replacing_a_document_forgets_its_regions() {
        let store = DocumentStore::new();
        store.open("file:///a.rs", "rust", 1, &lines(10));
        store.open("file:///b.rs", "rust", 1, &lines(10));
        edit(&store, "file:///a.rs", (1, 0), (1, 0), "x");
        edit(&store, "file:///b.rs", (1, 0), (1, 0), "x");
        assert!(store.close("file:///a.rs"));
        assert_eq!(store.recent_edits(8), vec![recent("file:///b.rs", 1)]);
        store
            .change(
                "file:///b.rs",
                9,
                &[ContentChange {
                    range: None,
                    text: "new text".into(),
                }],
                Utf16,
            )
            .unwrap();
        assert_eq!(store.recent_edits(8), vec![]);
        edit(&store, "file:///b.rs", (0, 0), (0, 0), "x");
        store.open("file:///b.rs", "rust", 1, "reopened");
        assert_eq!(store.recent_edits(8), vec![]);
    }

    #[test]
    fn at_most_sixteen_regions_are_kept() {
        let store = DocumentStore::new();
        store.open("file:///a.rs", "rust", 1, &lines(200));
        for region in 0..20 {
            edit(
                &store,
                "file:///a.rs",
                (region * 10, 0),
                (region * 10, 0),
                "x",
            );
        }
        let regions = store.recent_edits(100);
        assert_eq!(regions.len(), RECENT_EDITS_CAPACITY);
        assert_eq!(regions[0], recent("file:///a.rs", 190));
        assert_eq!(regions[15], recent("file:///a.rs", 40));
    }

    proptest! {
        /// Whatever the edits, regions are distinct (more than the merge distance
        /// apart within a document), at most the capacity, and inside the text.
        #[test]
        fn recent_edits_stay_distinct_and_in_range(
            initial in text_strategy(),
            edits in prop::collection::vec(edit_strategy(), 1..24),
        ) {
            let store = DocumentStore::new();
            let uri = "file:///model.txt";
            store.open(uri, "plaintext", 0, &initial);
            let mut model = NaiveDocument { text: initial.clone() };
            for (number, edit) in edits.iter().enumerate() {
                let boundaries = model.boundaries();
                let start_index = edit.start_pick.index(boundaries.len());
                let end_index = start_index + edit.length_pick.index(boundaries.len() - start_index);
                let (start, end) = (boundaries[start_index], boundaries[end_index]);
                let range = (model.position_of(start, Utf16), model.position_of(end, Utf16));
                store
                    .change(
                        uri,
                        number as i32 + 1,
                        &[ContentChange { range: Some(range), text: edit.text.clone() }],
                        Utf16,
                    )
                    .unwrap();
                model.text.replace_range(start..end, &edit.text);
                let new_end = model.position_of(start + edit.text.len(), Utf16).line as usize;
                let regions = store.recent_edits(usize::MAX);
                prop_assert!(regions.len() <= RECENT_EDITS_CAPACITY);
                prop_assert_eq!(&regions[0], &recent(uri, new_end));
                let line_count = model.line_starts().len();
                for (index, region) in regions.iter().enumerate() {
                    prop_assert!(region.line < line_count, "{regions:?}");
                    for other in &regions[..index] {
                        prop_assert!(other.line.abs_diff(region.line) > RECENT_EDIT_MERGE_LINES, "{regions:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_edit_only_marks_the_tree_stale_and_the_next_request_reparses() {
        let store = DocumentStore::new();
        store.open("file:///a.rs", "rust", 1, "fn a() {}\n");
        assert!(
            store.snapshot("file:///a.rs").unwrap().syntax.is_none(),
            "parsed lazily"
        );
        let (tree, language) = store.syntax_tree("file:///a.rs").unwrap();
        assert_eq!(language, Language::Rust);
        assert_eq!(tree.root_node().to_sexp(), "(source_file (function_item name: (identifier) parameters: (parameters) body: (block)))");
        store
            .change(
                "file:///a.rs",
                2,
                &[ContentChange {
                    range: Some((LspPosition::new(1, 0), LspPosition::new(1, 0))),
                    text: "fn b() {}\n".into(),
                }],
                Utf16,
            )
            .unwrap();
        assert!(store.snapshot("file:///a.rs").unwrap().syntax.is_none());
        let snapshot = store.snapshot_with_syntax("file:///a.rs").unwrap();
        assert_eq!(snapshot.version, 2);
        let tree = snapshot.syntax.unwrap().tree;
        assert_eq!(tree.root_node().named_child_count(), 2);
    }

    #[test]
    fn full_text_changes_drop_the_tree() {
        let store = DocumentStore::new();
        store.open("file:///a.py", "python", 1, "x = 1\n");
        type_a_line(&store, "file:///a.py", 2);
        assert!(store.syntax_tree("file:///a.py").is_some());
        assert_eq!(store.tree_count(), 1);
        store
            .change(
                "file:///a.py",
                3,
                &[ContentChange {
                    range: None,
                    text: "def f():\n    pass\n".into(),
                }],
                Utf16,
            )
            .unwrap();
        assert_eq!(store.tree_count(), 0);
        let (tree, _) = store.syntax_tree("file:///a.py").unwrap();
        assert_eq!(
            tree.root_node().child(0).unwrap().kind(),
            "function_definition"
        );
    }

    #[test]
    fn documents_without_a_grammar_have_no_tree() {
        let store = DocumentStore::new();
        store.open("file:///notes.md", "markdown", 1, "# Notes\n");
        assert!(store.syntax_tree("file:///notes.md").is_none());
        let snapshot = store.snapshot_with_syntax("file:///notes.md").unwrap();
        assert_eq!(snapshot.text.to_string(), "# Notes\n");
        // The extension decides when the language id is unknown.
        store.open("file:///src/main.rs", "plaintext", 1, "fn main() {}");
        assert!(store.syntax_tree("file:///src/main.rs").is_some());
        assert_eq!(
            store.snapshot_with_syntax("file:///nope.rs").unwrap_err(),
            StoreError::NotOpen("file:///nope.rs".into())
        );
    }

    fn type_a_line(store: &DocumentStore, uri: &str, version: i32) {
        store
            .change(
                uri,
                version,
                &[ContentChange {
                    range: Some((LspPosition::new(0, 0), LspPosition::new(0, 0))),
                    text: "\n".into(),
                }],
                Utf16,
            )
            .unwrap();
    }

    #[test]
    fn edited_documents_keep_trees_and_small_read_ones_only_the_latest() {
        let store = DocumentStore::with_tree_capacity(3);
        let has_tree = |uri: &str| store.snapshot(uri).unwrap().syntax.is_some();
        // Read only: each request parses, and only the latest keeps its tree.
        for number in 0..3 {
            let uri = format!("file:///read{number}.rs");
            store.open(&uri, "rust", 1, "fn f() {}\n");
            assert!(store.syntax_tree(&uri).is_some());
            assert_eq!(store.tree_count(), 1);
        }
        assert!(has_tree("file:///read2.rs") && !has_tree("file:///read0.rs"));
        // A large read document is parsed for the request, and the tree dropped.
        let large = "fn f() { let x = 1; }\n".repeat(UNEDITED_TREE_MAX_BYTES / 20);
        store.open("file:///large.rs", "rust", 1, &large);
        assert!(store.syntax_tree("file:///large.rs").is_some());
        assert!(!has_tree("file:///large.rs") && has_tree("file:///read2.rs"));

        // Edited: the three most recently used keep theirs.
        for number in 0..5 {
            let uri = format!("file:///{number}.rs");
            store.open(&uri, "rust", 1, "fn f() {}\n");
            type_a_line(&store, &uri, 2);
            assert!(store.syntax_tree(&uri).is_some());
            assert!(store.tree_count() <= 3 + 1);
        }
        assert!(!has_tree("file:///0.rs") && !has_tree("file:///1.rs"));
        assert!(has_tree("file:///2.rs") && has_tree("file:///3.rs") && has_tree("file:///4.rs"));
        assert!(has_tree("file:///read2.rs"), "the read pool is separate");

        // Editing 2 makes it the most recent; asking for 0 then evicts 3, the oldest.
        type_a_line(&store, "file:///2.rs", 3);
        assert!(store.syntax_tree("file:///0.rs").is_some());
        assert!(!has_tree("file:///3.rs"));
        assert!(has_tree("file:///0.rs") && has_tree("file:///4.rs"));
        // An evicted document is parsed again on demand, from scratch.
        assert!(store.syntax_tree("file:///1.rs").is_some());
        assert_eq!(store.tree_count(), 3 + 1);

        // An edited large document keeps its tree.
        type_a_line(&store, "file:///large.rs", 2);
        assert!(store.syntax_tree("file:///large.rs").is_some());
        assert!(has_tree("file:///large.rs"));
    }

    #[test]
    fn snapshots_of_all_documents_carry_only_fresh_trees() {
        let store = DocumentStore::new();
        store.open("file:///a.rs", "rust", 1, "fn a() {}");
        store.open("file:///b.rs", "rust", 1, "fn b() {}");
        type_a_line(&store, "file:///a.rs", 2);
        assert!(store.syntax_tree("file:///a.rs").is_some());
        let mut snapshots = store.snapshots();
        snapshots.sort_by(|left, right| left.uri.cmp(&right.uri));
        assert_eq!(snapshots.len(), 2);
        assert!(snapshots[0].syntax.is_some());
        assert!(snapshots[1].syntax.is_none(), "never parses");
    }

    #[test]
    fn closing_a_document_frees_its_tree() {
        let store = DocumentStore::new();
        store.open("file:///a.go", "go", 1, "package a\n");
        type_a_line(&store, "file:///a.go", 2);
        assert!(store.syntax_tree("file:///a.go").is_some());
        assert_eq!(store.tree_count(), 1);
        assert!(store.close("file:///a.go"));
        assert_eq!(store.tree_count(), 0);
    }

    #[test]
    fn full_text_change_replaces_everything() {
        let store = DocumentStore::new();
        store.open("file:///a", "rust", 1, "old");
        store
            .change(
                "file:///a",
                2,
                &[ContentChange {
                    range: None,
                    text: "new".into(),
                }],
                Utf16,
            )
            .unwrap();
        let snapshot = store.snapshot("file:///a").unwrap();
        assert_eq!(snapshot.text.to_string(), "new");
        assert_eq!(snapshot.version, 2);
        assert!(snapshot.syntax.is_none());
    }

    #[test]
    fn out_of_range_edits_are_clamped_with_a_warning() {
        let store = DocumentStore::new();
        store.open("file:///a", "rust", 1, "ab\ncd");
        let warnings = store
            .change(
                "file:///a",
                2,
                &[ContentChange {
                    range: Some((LspPosition::new(1, 1), LspPosition::new(9, 9))),
                    text: "X".into(),
                }],
                Utf16,
            )
            .unwrap();
        assert_eq!(
            store.snapshot("file:///a").unwrap().text.to_string(),
            "ab\ncX"
        );
        assert_eq!(
            warnings,
            vec![ChangeWarning::ClampedPosition(PositionError::LinePastEnd {
                line: 9,
                line_count: 2
            })]
        );
    }

    #[test]
    fn changing_an_unknown_document_is_an_error() {
        let store = DocumentStore::new();
        assert_eq!(
            store.change("file:///nope", 1, &[], Utf16),
            Err(StoreError::NotOpen("file:///nope".into()))
        );
        assert_eq!(
            store.snapshot("file:///nope").unwrap_err().to_string(),
            "document not open: file:///nope"
        );
        assert!(!store.close("file:///nope"));
    }

    #[test]
    fn snapshots_do_not_see_later_edits() {
        let store = DocumentStore::new();
        store.open("file:///a", "rust", 1, "one");
        let before = store.snapshot("file:///a").unwrap();
        store
            .change(
                "file:///a",
                2,
                &[ContentChange {
                    range: Some((LspPosition::new(0, 3), LspPosition::new(0, 3))),
                    text: " two".into(),
                }],
                Utf16,
            )
            .unwrap();
        assert_eq!(before.text.to_string(), "one");
        assert_eq!(
            store.snapshot("file:///a").unwrap().text.to_string(),
            "one two"
        );
        assert_eq!(store.version("file:///a"), Some(2));
    }
}
