//! Everything a completion request carries, chosen under one token budget.
//!
//! In priority order (issue 3):
//! 1. the text before and after the cursor, cut at line boundaries and never inside a
//!    token;
//! 2. the signatures of the enclosing scopes whose headers the prefix lost;
//! 3. the file's imports the prefix lost;
//! 4. definitions, from other open documents, of identifiers used near the cursor;
//! 5. the snippets of other open documents most similar to the code before the cursor,
//!    and recently edited regions.
//!
//! The cursor's text is served first but not greedily: it may take at most three
//! quarters of the budget while other parts exist, so a large prefix cannot starve the
//! parts that tell the model what lives outside this file; whatever the parts leave
//! unused goes back to it. Every part is redacted before it is measured, and the
//! request's total by [`CompletionRequest::estimated_tokens`] never exceeds the budget,
//! so the cloud never refuses it for size.
//!
//! [`CompletionRequest::estimated_tokens`]: tandem_shared::CompletionRequest::estimated_tokens

use std::sync::Arc;

use ropey::Rope;
use tandem_shared::tokens::estimate;
use tandem_shared::{CodeContext, Snippet};

use super::neighbors::IndexedDocument;
use super::similar::{self, Query, WindowIndex};
use super::{budget, completion_context};
use crate::document::{self, ByteOffset, SyntaxTree};
use crate::privacy;
use crate::syntax;

/// Lines around the cursor whose identifiers are looked up in other documents.
pub(crate) const IDENTIFIER_LINES: usize = 8;
const MAX_DEFINITIONS: usize = 8;
const MAX_SIMILAR: usize = 3;
/// Windows less similar than this are noise (Copilot's neighbouring tabs use a similar
/// floor): they cost tokens and can mislead the model.
const MIN_SIMILARITY: f32 = 0.2;
const MAX_RECENT_EDITS: usize = 3;
/// Lines shown above and below a recently edited line.
const RECENT_EDIT_RADIUS: usize = 3;

/// What one request needs to build its context. Nothing here knows about LSP.
pub(crate) struct Inputs<'a> {
    pub(crate) text: &'a Rope,
    /// The tree of exactly `text`, when the language has a grammar and it parsed.
    pub(crate) syntax: Option<&'a SyntaxTree>,
    pub(crate) cursor: ByteOffset,
    pub(crate) max_prefix_chars: usize,
    pub(crate) max_suffix_chars: usize,
    /// Estimated tokens the request may carry in all.
    pub(crate) max_tokens: u32,
    /// Other open documents, indexed.
    pub(crate) neighbors: &'a [Arc<IndexedDocument>],
    /// Recently edited regions, most recent first.
    pub(crate) recent_edits: &'a [RecentRegion],
    /// Lines above and below the cursor whose identifiers are looked up in other
    /// documents: [`IDENTIFIER_LINES`] for a completion, the whole function for an action
    /// on it.
    pub(crate) identifier_lines: usize,
}

/// A recently edited line of an open document.
pub(crate) struct RecentRegion {
    pub(crate) uri: String,
    pub(crate) path: String,
    pub(crate) text: Rope,
    pub(crate) line: usize,
    /// The region is in the document being completed.
    pub(crate) same_document: bool,
}

/// The request's text parts, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assembled {
    pub(crate) prefix: String,
    pub(crate) suffix: String,
    pub(crate) context: CodeContext,
    /// Secrets replaced by placeholders in the prefix, suffix and parts picked here
    /// (definitions were redacted when indexed).
    pub(crate) redacted: usize,
}

/// Builds the request's text under `inputs.max_tokens`. `allowed` says whether a
/// document may contribute (the exclusion rules); it is asked only about documents that
/// would, so its cost does not grow with the number of open documents.
pub(crate) fn assemble(inputs: &Inputs<'_>, allowed: &mut dyn FnMut(&str) -> bool) -> Assembled {
    let window = document::text_window(
        inputs.text,
        inputs.cursor,
        inputs.max_prefix_chars.saturating_add(1),
        inputs.max_suffix_chars.saturating_add(1),
    );
    let raw = completion_context(
        &window.text,
        window.cursor,
        inputs.max_prefix_chars,
        inputs.max_suffix_chars,
    );
    // `raw` is a contiguous copy of the document, so offsets map by subtraction.
    let cursor = inputs.cursor.0.min(inputs.text.len_bytes());
    let window_start = cursor.saturating_sub(raw.prefix.len());

    let cursor_tokens = estimate(raw.prefix).saturating_add(estimate(raw.suffix));
    let reserve = cursor_tokens.min(inputs.max_tokens / 4 * 3);
    let mut parts = Parts {
        remaining: inputs.max_tokens - reserve,
        context: CodeContext::default(),
        redacted: 0,
    };
    // Scopes and imports are taken whether or not the prefix will show them: which it
    // shows is only known once the parts have taken their share. The ones it shows are
    // dropped at the end, which leaves their few tokens unused rather than over budget.
    let mut scope_starts = Vec::new();
    let mut raw_imports = Vec::new();
    if let Some(syntax) = inputs.syntax {
        scope_starts = add_scopes(&mut parts, inputs.text, syntax, cursor);
        raw_imports = add_imports(&mut parts, inputs.text, syntax);
        add_definitions(&mut parts, inputs, syntax, cursor, raw.prefix, allowed);
    }
    add_similar(&mut parts, inputs.neighbors, raw.prefix, allowed);
    add_recent_edits(
        &mut parts,
        inputs,
        window_start,
        cursor + raw.suffix.len(),
        allowed,
    );
    let parts_tokens = inputs.max_tokens - reserve - parts.remaining;

    // The text around the cursor gets everything the parts left.
    let cursor_budget = inputs.max_tokens - parts_tokens;
    let (mut start, mut end) = budget::fit(raw.prefix, raw.suffix, cursor_budget);
    if let Some(syntax) = inputs.syntax {
        // A cut at a line break can still fall inside a multi-line comment or string.
        let start_in_document = window_start + start;
        let moved = syntax::token_boundary_after(&syntax.tree, start_in_document);
        if moved > start_in_document && moved <= cursor {
            start += moved - start_in_document;
        }
        let end_in_document = cursor + end;
        let moved = syntax::token_boundary_before(&syntax.tree, end_in_document);
        if moved < end_in_document && moved >= cursor {
            end -= end_in_document - moved;
        }
    }
    let kept_prefix = &raw.prefix[start..];
    let prefix_start = window_start + start;
    let mut context = parts.context;
    let mut index = 0;
    context.scopes.retain(|_| {
        index += 1;
        scope_starts[index - 1] < prefix_start
    });
    let mut index = 0;
    context.imports.retain(|_| {
        index += 1;
        !kept_prefix.contains(raw_imports[index - 1].as_str())
    });

    let (mut prefix, mut suffix, redacted) =
        privacy::redact_around_cursor(kept_prefix, &raw.suffix[..end]);
    if estimate(&prefix).saturating_add(estimate(&suffix)) > cursor_budget {
        // Placeholders can be longer than the short secrets they replace.
        let (start, end) = budget::fit(&prefix, &suffix, cursor_budget);
        prefix.drain(..start);
        suffix.truncate(end);
    }
    Assembled {
        prefix,
        suffix,
        context,
        redacted: parts.redacted + redacted,
    }
}

/// The parts picked so far and what is left of their share of the budget.
struct Parts {
    remaining: u32,
    context: CodeContext,
    redacted: usize,
}

impl Parts {
    /// Redacts `text` and reserves its tokens; `None` if it does not fit (the caller
    /// goes on with smaller parts: a big one skipped does not end the list).
    fn take(&mut self, text: &str) -> Option<String> {
        let redacted = privacy::redact(text);
        self.take_redacted(redacted.text, redacted.count)
    }

    fn take_redacted(&mut self, text: String, redacted: usize) -> Option<String> {
        let tokens = estimate(&text);
        if text.trim().is_empty() || tokens > self.remaining {
            return None;
        }
        self.remaining -= tokens;
        self.redacted += redacted;
        Some(text)
    }

    fn has_snippet(&self, text: &str) -> bool {
        let context = &self.context;
        context
            .definitions
            .iter()
            .chain(&context.similar)
            .chain(&context.recent_edits)
            .any(|snippet| snippet.text == text)
    }
}

/// Headers of the enclosing scopes, outermost first; returns where each taken one starts.
fn add_scopes(parts: &mut Parts, text: &Rope, syntax: &SyntaxTree, cursor: usize) -> Vec<usize> {
    let mut starts = Vec::new();
    for scope in syntax::enclosing_scopes(&syntax.tree, text, syntax.language, cursor) {
        if scope.signature.is_empty() {
            continue;
        }
        if let Some(signature) = parts.take(&scope.signature) {
            parts.context.scopes.push(signature);
            starts.push(scope.byte_range.start);
        }
    }
    starts
}

/// The file's imports; returns the text of each taken one as it is in the file.
fn add_imports(parts: &mut Parts, text: &Rope, syntax: &SyntaxTree) -> Vec<String> {
    let mut taken = Vec::new();
    for import in syntax::imports(&syntax.tree, text, syntax.language) {
        if let Some(redacted) = parts.take(&import) {
            parts.context.imports.push(redacted);
            taken.push(import);
        }
    }
    taken
}

/// Definitions in other documents of the identifiers nearest the cursor, nearest first.
fn add_definitions(
    parts: &mut Parts,
    inputs: &Inputs<'_>,
    syntax: &SyntaxTree,
    cursor: usize,
    prefix: &str,
    allowed: &mut dyn FnMut(&str) -> bool,
) {
    if inputs.neighbors.is_empty() {
        return;
    }
    let identifiers =
        syntax::identifiers_near(&syntax.tree, inputs.text, cursor, inputs.identifier_lines);
    for identifier in identifiers {
        for neighbor in inputs.neighbors {
            let snippets = neighbor.definitions.get(&identifier);
            if snippets.is_empty() || !allowed(&neighbor.uri) {
                continue;
            }
            for snippet in snippets {
                if parts.context.definitions.len() >= MAX_DEFINITIONS {
                    return;
                }
                // Already redacted when indexed; visible in the prefix means no news.
                if prefix.contains(snippet) || parts.has_snippet(snippet) {
                    continue;
                }
                if let Some(text) = parts.take_redacted(snippet.to_owned(), 0) {
                    parts.context.definitions.push(Snippet {
                        path: neighbor.path.clone(),
                        text,
                    });
                }
            }
        }
    }
}

/// The windows of other documents most like the last lines before the cursor.
fn add_similar(
    parts: &mut Parts,
    neighbors: &[Arc<IndexedDocument>],
    prefix: &str,
    allowed: &mut dyn FnMut(&str) -> bool,
) {
    if neighbors.is_empty() {
        return;
    }
    let query_start = prefix
        .char_indices()
        .rev()
        .filter(|(_, ch)| *ch == '\n')
        .nth(similar::WINDOW_LINES - 1)
        .map_or(0, |(index, _)| index + 1);
    let query = Query::new(&prefix[query_start..]);
    if query.is_empty() {
        return;
    }
    let windows: Vec<&WindowIndex> = neighbors.iter().map(|entry| &entry.windows).collect();
    // A few extra candidates, in case some are excluded or do not fit.
    for found in similar::best_matches(&query, &windows, MAX_SIMILAR * 2, MIN_SIMILARITY) {
        if parts.context.similar.len() >= MAX_SIMILAR {
            break;
        }
        let Some(neighbor) = neighbors.get(found.document) else {
            continue;
        };
        if !allowed(&neighbor.uri) {
            continue;
        }
        let text = lines(&neighbor.text, found.lines.start, found.lines.end);
        let redacted = privacy::redact(&text);
        if parts.has_snippet(&redacted.text) {
            continue;
        }
        if let Some(text) = parts.take_redacted(redacted.text, redacted.count) {
            parts.context.similar.push(Snippet {
                path: neighbor.path.clone(),
                text,
            });
        }
    }
}

/// A few lines around each recent edit that the prefix and suffix do not already show.
fn add_recent_edits(
    parts: &mut Parts,
    inputs: &Inputs<'_>,
    window_start: usize,
    window_end: usize,
    allowed: &mut dyn FnMut(&str) -> bool,
) {
    let window_lines = {
        let text = inputs.text;
        let len = text.len_bytes();
        text.byte_to_line(window_start.min(len))..=text.byte_to_line(window_end.min(len))
    };
    for region in inputs.recent_edits {
        if parts.context.recent_edits.len() >= MAX_RECENT_EDITS {
            break;
        }
        let first = region.line.saturating_sub(RECENT_EDIT_RADIUS);
        let last = region.line.saturating_add(RECENT_EDIT_RADIUS);
        if region.same_document
            && window_lines.contains(&first.max(*window_lines.start()))
            && window_lines.contains(&last.min(*window_lines.end()))
        {
            continue;
        }
        if !allowed(&region.uri) {
            continue;
        }
        let text = lines(&region.text, first, last + 1);
        let redacted = privacy::redact(&text);
        if parts.has_snippet(&redacted.text) {
            continue;
        }
        if let Some(text) = parts.take_redacted(redacted.text, redacted.count) {
            parts.context.recent_edits.push(Snippet {
                path: region.path.clone(),
                text,
            });
        }
    }
}

/// Lines `[first, end)` of `text`, clamped to the text.
fn lines(text: &Rope, first: usize, end: usize) -> String {
    let count = text.len_lines();
    let first = first.min(count);
    let end = end.clamp(first, count);
    text.slice(text.line_to_char(first)..text.line_to_char(end))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashSet;

    use crate::syntax::{parse_rope, Language, PARSE_TIMEOUT};

    struct Fixture {
        text: Rope,
        syntax: Option<SyntaxTree>,
        cursor: ByteOffset,
    }

    fn fixture(language: Option<Language>, source: &str) -> Fixture {
        let cursor = source.find("$0").expect("fixture has a $0 cursor");
        let text = Rope::from_str(&source.replacen("$0", "", 1));
        let syntax = language.map(|language| SyntaxTree {
            tree: parse_rope(language, &text, None, PARSE_TIMEOUT).unwrap(),
            language,
        });
        Fixture {
            text,
            syntax,
            cursor: ByteOffset(cursor),
        }
    }

    fn neighbor(uri: &str, language_id: &str, source: &str) -> Arc<IndexedDocument> {
        let path = uri.rsplit('/').next().unwrap().to_owned();
        Arc::new(IndexedDocument::build(
            uri.to_owned(),
            1,
            language_id,
            path,
            Rope::from_str(source),
        ))
    }

    fn run(
        fixture: &Fixture,
        max_tokens: u32,
        neighbors: &[Arc<IndexedDocument>],
        recent_edits: &[RecentRegion],
        excluded: &[&str],
    ) -> (Assembled, HashSet<String>) {
        let mut asked = HashSet::new();
        let assembled = assemble(
            &Inputs {
                text: &fixture.text,
                syntax: fixture.syntax.as_ref(),
                cursor: fixture.cursor,
                max_prefix_chars: 8_000,
                max_suffix_chars: 2_000,
                max_tokens,
                neighbors,
                recent_edits,
                identifier_lines: IDENTIFIER_LINES,
            },
            &mut |uri| {
                asked.insert(uri.to_owned());
                !excluded.contains(&uri)
            },
        );
        let total = tandem_shared::CompletionRequest {
            language: String::new(),
            path: String::new(),
            prefix: assembled.prefix.clone(),
            suffix: assembled.suffix.clone(),
            max_tokens: None,
            temperature: None,
            stop: Vec::new(),
            context: assembled.context.clone(),
            file_size: None,
            stream: false,
        }
        .estimated_tokens();
        assert!(
            total <= max_tokens,
            "{total} tokens over a budget of {max_tokens}"
        );
        (assembled, asked)
    }

    const CONFIG_RS: &str =
        "pub struct Config {\n    pub path: PathBuf,\n    pub retries: u32,\n}\n\n\
        pub fn load_config(path: &Path) -> Result<Config, Error> {\n    todo!()\n}\n";

    #[test]
    fn definitions_of_identifiers_near_the_cursor_come_from_other_documents() {
        let main = fixture(
            Some(Language::Rust),
            "use std::path::Path;\n\nfn start(path: &Path) {\n    let config = load_config(path).unwrap();\n    config.$0\n}\n",
        );
        let neighbors = [
            neighbor("file:///ws/src/config.rs", "rust", CONFIG_RS),
            neighbor("file:///ws/src/other.rs", "rust", "fn unrelated() {}\n"),
        ];
        let (assembled, asked) = run(&main, 4_000, &neighbors, &[], &[]);
        let definitions: Vec<&str> = assembled
            .context
            .definitions
            .iter()
            .map(|snippet| snippet.text.as_str())
            .collect();
        assert_eq!(
            definitions,
            ["pub fn load_config(path: &Path) -> Result<Config, Error>"]
        );
        assert_eq!(assembled.context.definitions[0].path, "config.rs");
        // Everything fits, so the prefix is the whole text before the cursor, and the
        // imports and scopes it shows are not repeated.
        assert!(assembled.prefix.starts_with("use std::path::Path;"));
        assert!(assembled.context.imports.is_empty());
        assert!(assembled.context.scopes.is_empty());
        assert!(asked.contains("file:///ws/src/config.rs"));
        assert!(
            !asked.contains("file:///ws/src/other.rs"),
            "only contributors are checked"
        );
    }

    #[test]
    fn cross_file_definitions_in_every_language() {
        // (language, language id, file defining `compute_total`, file calling it, expected)
        let cases = [
            (
                Language::Rust,
                "rust",
                "pub fn compute_total(items: &[Item]) -> u64 {\n    0\n}\n",
                "fn main() {\n    let total = compute_total(&items);\n    $0\n}\n",
                "pub fn compute_total(items: &[Item]) -> u64",
            ),
            (
                Language::Python,
                "python",
                "def compute_total(items: list[Item]) -> int:\n    return 0\n",
                "def main():\n    total = compute_total(items)\n    $0\n",
                "def compute_total(items: list[Item]) -> int:",
            ),
            (
                Language::JavaScript,
                "javascript",
                "export function computeTotal(items, taxRate) {\n  return 0;\n}\n",
                "function main() {\n  const total = computeTotal(items, 0.2);\n  $0\n}\n",
                "export function computeTotal(items, taxRate)",
            ),
            (
                Language::TypeScript,
                "typescript",
                "export type Total = { amount: number; currency: string };\n",
                "function main(): void {\n  const total: Total = build();\n  $0\n}\n",
                "type Total = { amount: number; currency: string };",
            ),
            (
                Language::Tsx,
                "typescriptreact",
                "export function PriceTag(props: { amount: number }) {\n  return <span>{props.amount}</span>;\n}\n",
                "export function Cart() {\n  return <PriceTag amount={3} />;$0\n}\n",
                "export function PriceTag(props: { amount: number })",
            ),
            (
                Language::Go,
                "go",
                "package billing\n\nfunc ComputeTotal(items []Item) int {\n\treturn 0\n}\n",
                "package main\n\nfunc main() {\n\ttotal := billing.ComputeTotal(items)\n\t$0\n}\n",
                "func ComputeTotal(items []Item) int",
            ),
            (
                Language::Java,
                "java",
                "public class Billing {\n    public static int computeTotal(List<Item> items) {\n        return 0;\n    }\n}\n",
                "class Main {\n    void run() {\n        int total = Billing.computeTotal(items);\n        $0\n    }\n}\n",
                "public static int computeTotal(List<Item> items)",
            ),
            (
                Language::C,
                "c",
                "int compute_total(const struct item *items, size_t count);\n",
                "int main(void) {\n    int total = compute_total(items, 3);\n    $0\n}\n",
                "int compute_total(const struct item *items, size_t count);",
            ),
            (
                Language::Cpp,
                "cpp",
                "namespace billing {\nint compute_total(const std::vector<Item>& items) {\n    return 0;\n}\n}\n",
                "int main() {\n    int total = billing::compute_total(items);\n    $0\n}\n",
                "int compute_total(const std::vector<Item>& items)",
            ),
        ];
        for (language, language_id, defining, calling, expected) in cases {
            let main = fixture(Some(language), calling);
            let neighbors = [neighbor("file:///ws/defs", language_id, defining)];
            let (assembled, _) = run(&main, 4_000, &neighbors, &[], &[]);
            let found: Vec<&str> = assembled
                .context
                .definitions
                .iter()
                .map(|snippet| snippet.text.as_str())
                .collect();
            assert!(found.contains(&expected), "{language:?}: {found:#?}");
        }
    }

    #[test]
    fn excluded_documents_contribute_nothing() {
        let main = fixture(
            Some(Language::Rust),
            "fn start() {\n    let config = load_config(path);\n    $0\n}\n",
        );
        let neighbors = [neighbor("file:///ws/src/config.rs", "rust", CONFIG_RS)];
        let recent = [RecentRegion {
            uri: "file:///ws/src/config.rs".into(),
            path: "src/config.rs".into(),
            text: Rope::from_str(CONFIG_RS),
            line: 2,
            same_document: false,
        }];
        let (assembled, _) = run(
            &main,
            4_000,
            &neighbors,
            &recent,
            &["file:///ws/src/config.rs"],
        );
        assert_eq!(assembled.context, CodeContext::default());
        let (assembled, _) = run(&main, 4_000, &neighbors, &recent, &[]);
        assert!(!assembled.context.definitions.is_empty());
        assert_eq!(assembled.context.recent_edits.len(), 1);
        assert!(assembled.context.recent_edits[0]
            .text
            .contains("pub retries: u32,"));
    }

    #[test]
    fn a_tight_budget_keeps_scopes_and_imports_the_prefix_lost() {
        let mut source =
            String::from("import os\nimport sys\n\nclass Loader:\n    def load(self, path):\n");
        for line in 0..400 {
            source.push_str(&format!("        value_{line} = compute(path, {line})\n"));
        }
        source.push_str("        return $0\n");
        let main = fixture(Some(Language::Python), &source);
        let (assembled, _) = run(&main, 300, &[], &[], &[]);
        assert_eq!(assembled.context.imports, ["import os", "import sys"]);
        assert_eq!(
            assembled.context.scopes,
            ["class Loader:", "def load(self, path):"]
        );
        assert!(assembled.prefix.ends_with("        return "));
        assert!(
            assembled.prefix.starts_with("        value_"),
            "{:?}",
            &assembled.prefix[..40]
        );
    }

    #[test]
    fn similar_snippets_from_other_documents() {
        let neighbor_source = "def unrelated():\n    pass\n\n\ndef send_invoice(customer, invoice, mailer):\n    body = render_invoice(invoice)\n    mailer.send(customer.email, body)\n";
        let main = fixture(
            Some(Language::Python),
            "def send_receipt(customer, receipt, mailer):\n    body = render_receipt(receipt)\n    mailer.$0\n",
        );
        let neighbors = [neighbor("file:///ws/billing.py", "python", neighbor_source)];
        let (assembled, _) = run(&main, 4_000, &neighbors, &[], &[]);
        assert_eq!(
            assembled.context.similar.len(),
            1,
            "{:?}",
            assembled.context
        );
        assert!(assembled.context.similar[0]
            .text
            .contains("mailer.send(customer.email, body)"));
    }

    #[test]
    fn secrets_in_every_part_are_redacted() {
        let neighbor_source = "AWS_KEY = \"AKIAIOSFODNN7EXAMPLE\"\ndef upload(bucket, key):\n    client.put(bucket, key)\n";
        let main = fixture(
            Some(Language::Python),
            "password = \"hunter2hunter2\"\ndef upload_all(bucket, key):\n    client.put(bucket, $0\n",
        );
        let neighbors = [neighbor("file:///ws/s3.py", "python", neighbor_source)];
        let recent = [RecentRegion {
            uri: "file:///ws/s3.py".into(),
            path: "s3.py".into(),
            text: Rope::from_str(neighbor_source),
            line: 0,
            same_document: false,
        }];
        let (assembled, _) = run(&main, 4_000, &neighbors, &recent, &[]);
        let everything = format!("{assembled:?}");
        assert!(!everything.contains("AKIAIOSFODNN7EXAMPLE"), "{everything}");
        assert!(!everything.contains("hunter2hunter2"), "{everything}");
        assert!(assembled.redacted >= 2);
    }

    #[test]
    fn the_prefix_never_starts_inside_a_multi_line_comment() {
        let mut source = String::from("/* licence text\n");
        for _ in 0..50 {
            source.push_str("   more licence words here\n");
        }
        source.push_str("*/\nfn main() {\n    let total = 1;\n    $0\n}\n");
        let main = fixture(Some(Language::Rust), &source);
        let (assembled, _) = run(&main, 30, &[], &[], &[]);
        assert!(
            !assembled.prefix.contains("licence"),
            "prefix starts inside the comment: {:?}",
            assembled.prefix
        );
        assert!(assembled.prefix.ends_with("    "));
    }

    #[test]
    fn documents_without_a_grammar_get_text_context() {
        let main = fixture(None, "# Notes\n\nsend the invoice to $0\n");
        let (assembled, _) = run(&main, 100, &[], &[], &[]);
        assert_eq!(assembled.prefix, "# Notes\n\nsend the invoice to ");
        assert_eq!(assembled.suffix, "\n");
    }

    #[test]
    fn recent_edits_inside_the_window_are_not_repeated() {
        let source = "fn a() {\n    let x = 1;\n    $0\n}\n";
        let main = fixture(Some(Language::Rust), source);
        let recent = [RecentRegion {
            uri: "file:///ws/a.rs".into(),
            path: "a.rs".into(),
            text: main.text.clone(),
            line: 1,
            same_document: true,
        }];
        let (assembled, _) = run(&main, 4_000, &[], &recent, &[]);
        assert!(assembled.context.recent_edits.is_empty());
    }
}
