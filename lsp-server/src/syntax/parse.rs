//! Parsing a rope with tree-sitter: incrementally when given the edited old tree, read
//! chunk by chunk (the document is never copied into a `String`), and bounded in time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use ropey::Rope;
use tree_sitter::{ParseOptions, ParseState, Parser, Point, Tree};

use super::Language;

/// How long an incremental re-parse (with the edited old tree) may take before it is
/// abandoned. After a keystroke one takes about 0.1 ms in a 2,000-line Rust file and
/// 1.5 ms in a 20,000-line one (`benches/document.rs` on an idle machine, about twice
/// that while builds compete for the CPU; a parse from scratch of the latter takes about
/// 50 ms): only a pathological edit gets near this, and its request then goes on with
/// text-only context.
///
/// The cost grows with the number of top-level items, not with the edit, and is
/// tree-sitter's own (reading the rope is under 1% of a profile, the store's clones and
/// locks do not show at all; freeing the replaced tree's nodes is about 5%): it
/// cannot reuse the nodes that group a repetition such as a file's items, because the
/// parse-table entry that builds one has two actions (reduce, or shift another item),
/// which marks the node fragile. So it steps over every top-level item one by one,
/// walks down each one holding an external-scanner token (Rust's strings, floats and
/// doc comments) to its last such token, and rebuilds and rebalances the whole list.
pub(crate) const PARSE_TIMEOUT: Duration = Duration::from_millis(50);

/// How long a parse from scratch may take: the first request on a document, or one
/// after its tree was evicted or replaced wholesale. Paid once per document, and it
/// grows with the file (about 50 ms for 20,000 lines of Rust, `benches/document.rs`
/// `first_parse`, and up to three times that on a slower machine), so it gets a larger
/// bound than an incremental one; a file too large for it gets text-only context.
pub(crate) const FULL_PARSE_TIMEOUT: Duration = Duration::from_millis(500);

/// The bound for a parse with or without an old tree.
pub(crate) fn timeout_for(old_tree: Option<&Tree>) -> Duration {
    if old_tree.is_some() {
        PARSE_TIMEOUT
    } else {
        FULL_PARSE_TIMEOUT
    }
}

thread_local! {
    // A parser allocates its stacks once and reuses them; keeping one per language and
    // thread saves that on every request. Parsers are not `Sync`, hence per thread.
    static PARSERS: RefCell<HashMap<Language, Parser>> = RefCell::new(HashMap::new());
}

/// Parses `rope` as `language`, reusing `old_tree` (which must already have been
/// edited to match `rope`) when given. `None` when the parse took longer than
/// `timeout` or the grammar could not be loaded.
pub(crate) fn parse_rope(
    language: Language,
    rope: &Rope,
    old_tree: Option<&Tree>,
    timeout: Duration,
) -> Option<Tree> {
    PARSERS.with(|parsers| match parsers.try_borrow_mut() {
        Ok(mut parsers) => {
            let parser = parsers.entry(language).or_insert_with(|| language.parser());
            parse_with(parser, rope, old_tree, timeout)
        }
        // Only reachable if a parse re-entered this function, which nothing does; a
        // fresh parser keeps even that case correct.
        Err(_) => parse_with(&mut language.parser(), rope, old_tree, timeout),
    })
}

fn parse_with(
    parser: &mut Parser,
    rope: &Rope,
    old_tree: Option<&Tree>,
    timeout: Duration,
) -> Option<Tree> {
    // A parser stopped by the progress callback would otherwise resume that old parse.
    parser.reset();
    let deadline = Instant::now() + timeout;
    let mut progress = |_: &ParseState| {
        if Instant::now() >= deadline {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let len = rope.len_bytes();
    let mut read = |byte: usize, _: Point| -> &[u8] {
        if byte >= len {
            return &[];
        }
        let (chunk, chunk_start, _, _) = rope.chunk_at_byte(byte);
        chunk
            .as_bytes()
            .get(byte - chunk_start..)
            .unwrap_or_default()
    };
    let tree = parser.parse_with_options(
        &mut read,
        old_tree,
        Some(ParseOptions::new().progress_callback(&mut progress)),
    );
    if tree.is_none() {
        parser.reset();
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rope_of_many_chunks_parses_like_a_string() {
        let source = "fn f() { let x = 1; }\n".repeat(2_000);
        let rope = Rope::from_str(&source);
        assert!(rope.chunks().count() > 1);
        // Generous: unoptimised test builds parse far slower than the server does.
        let tree = parse_rope(Language::Rust, &rope, None, Duration::from_secs(30)).unwrap();
        let expected = Language::Rust.parser().parse(&source, None).unwrap();
        assert_eq!(tree.root_node().to_sexp(), expected.root_node().to_sexp());
    }

    #[test]
    fn a_parse_past_its_deadline_gives_up() {
        let source = "fn f() { let x = [1, 2, 3]; }\n".repeat(20_000);
        let rope = Rope::from_str(&source);
        assert!(parse_rope(Language::Rust, &rope, None, Duration::ZERO).is_none());
        // The abandoned parse does not leak into the next one.
        let small = Rope::from_str("fn g() {}");
        let tree = parse_rope(Language::Rust, &small, None, PARSE_TIMEOUT).unwrap();
        assert_eq!(tree.root_node().end_byte(), small.len_bytes());
    }
}
