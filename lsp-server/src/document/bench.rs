//! A thin handle on a [`DocumentStore`] for the criterion benchmarks, which can only
//! reach `pub` items of the library; it exposes plain numbers and strings, never the
//! store's own types, so nothing crate-private leaks into the public API.

use super::{ContentChange, DocumentStore, LspPosition, PositionEncoding};

/// One open document in a store of its own.
#[derive(Debug)]
pub struct DocumentBench {
    store: DocumentStore,
    uri: String,
    version: i32,
}

impl DocumentBench {
    /// Opens `text` as a document of `language_id` (e.g. `rust`).
    pub fn open(language_id: &str, file_name: &str, text: &str) -> Self {
        let store = DocumentStore::new();
        let uri = format!("file:///bench/{file_name}");
        store.open(&uri, language_id, 0, text);
        DocumentBench {
            store,
            uri,
            version: 0,
        }
    }

    /// Replaces the UTF-16 range from (`start_line`, `start_character`) to
    /// (`end_line`, `end_character`) with `text`, as one `didChange` would.
    pub fn edit(&mut self, start: (u32, u32), end: (u32, u32), text: &str) -> Result<(), String> {
        self.version += 1;
        self.store
            .change(
                &self.uri,
                self.version,
                &[ContentChange {
                    range: Some((
                        LspPosition::new(start.0, start.1),
                        LspPosition::new(end.0, end.1),
                    )),
                    text: text.to_owned(),
                }],
                PositionEncoding::Utf16,
            )
            .map(drop)
            .map_err(|error| error.to_string())
    }

    /// Brings the syntax tree up to date (a no-op if it is) and returns its node count
    /// at the root, or `None` if the document could not be parsed.
    pub fn syntax_tree_root_children(&self) -> Option<u32> {
        let (tree, _) = self.store.syntax_tree(&self.uri)?;
        Some(tree.root_node().child_count())
    }

    /// Whether the up-to-date syntax tree has a syntax error anywhere (O(1): the root
    /// knows), so a bench can check it measures the file it means to.
    pub fn syntax_tree_has_error(&self) -> Option<bool> {
        let (tree, _) = self.store.syntax_tree(&self.uri)?;
        Some(tree.root_node().has_error())
    }
}
