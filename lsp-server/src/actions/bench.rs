//! A thin handle on the code-action pieces for the criterion benchmarks, which can only
//! reach `pub` items of the library; like `document::bench`, it exposes plain numbers
//! and strings, never the crate's own types, so nothing crate-private leaks into the
//! public API.

use ropey::Rope;
use tree_sitter::Tree;

use super::{diff, edit, target, validate};
use crate::syntax::{parse_rope, Language, FULL_PARSE_TIMEOUT};

/// One document, parsed once, as a code action sees it.
#[derive(Debug)]
pub struct ActionsBench {
    language: Language,
    text: String,
    rope: Rope,
    tree: Tree,
}

impl ActionsBench {
    /// Parses `text` as a document of `language_id` (e.g. `rust`); `None` for a language
    /// without a grammar or a text that cannot be parsed in time.
    pub fn new(language_id: &str, text: &str) -> Option<Self> {
        let language = Language::from_language_id(language_id)?;
        let rope = Rope::from_str(text);
        let tree = parse_rope(language, &rope, None, FULL_PARSE_TIMEOUT)?;
        Some(ActionsBench {
            language,
            text: text.to_owned(),
            rope,
            tree,
        })
    }

    /// Whether the document as parsed has a syntax error anywhere, so a bench can check
    /// it measures the file it means to.
    pub fn has_syntax_error(&self) -> bool {
        self.tree.root_node().has_error()
    }

    /// The byte range of the function or type under the cursor at byte `offset`, as
    /// every `textDocument/codeAction` looks it up.
    pub fn item_at(&self, offset: usize) -> Option<(usize, usize)> {
        let item = target::item_at(&self.tree, &self.rope, self.language, offset)?;
        Some((item.range.start, item.range.end))
    }

    /// Replaces bytes `start..end` of the document with a model's `answer`, fitted and
    /// validated as the apply command does; the number of edits, or why it was refused.
    pub fn replace_region(&self, start: usize, end: usize, answer: &str) -> Result<usize, String> {
        edit::replace_region(&self.text, start..end, answer, Some(self.language))
            .map(|edits| edits.len())
            .map_err(|error| error.to_string())
    }

    /// The number of minimal edits turning `old` into `new`.
    pub fn minimal_edits(&self, old: &str, new: &str) -> usize {
        diff::minimal_edits(old, new).len()
    }

    /// Whether `after` parses no worse than `before` in the document's language.
    pub fn check_edit(&self, before: &str, after: &str) -> Result<(), String> {
        validate::check_edit(self.language, before, after).map_err(|problem| problem.to_string())
    }

    /// Parses `text` from scratch in the document's language, for scale: whether it
    /// parsed in time.
    pub fn full_parse(&self, text: &str) -> bool {
        parse_rope(
            self.language,
            &Rope::from_str(text),
            None,
            FULL_PARSE_TIMEOUT,
        )
        .is_some()
    }
}
