//! The smallest edits that turn a document into a rewrite of it.
//!
//! A model answers a code action with the rewritten text; sending that back as one
//! whole-range replacement would move the user's cursor, drop folds and marks, and show
//! the whole range as changed in review. So the rewrite is compared line by line, and
//! each changed run of lines is narrowed to the characters that differ.
//!
//! Edit boundaries always fall on char boundaries and never between the `\r` and `\n`
//! of a line break, where an LSP position would not exist.

use std::ops::Range;
use std::time::{Duration, Instant};

use similar::algorithms::{Capture, Replace};
use similar::{Algorithm, DiffOp, DiffTag};

/// How long the line diff may search for the smallest alignment. Past it `similar`
/// settles for a coarser one, which is still exact, so a pathological rewrite costs
/// larger edits instead of a stalled request.
const DIFF_TIMEOUT: Duration = Duration::from_millis(100);

/// One replacement in the old text: `range` is a byte range of `old`, `text` replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replacement {
    pub(crate) range: Range<usize>,
    pub(crate) text: String,
}

/// The edits that turn `old` into `new`, as few and as small as a line diff refined
/// within changed lines allows: sorted by position, non-overlapping, never touching
/// unchanged lines, and applying all of them to `old` gives exactly `new`.
// Wired into the code action handlers next.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn minimal_edits(old: &str, new: &str) -> Vec<Replacement> {
    if old == new {
        return Vec::new();
    }
    let old_lines = split_lines(old);
    let new_lines = split_lines(new);
    let old_starts = line_starts(&old_lines);
    let new_starts = line_starts(&new_lines);
    let ops = line_diff(&old_lines, &new_lines);

    let mut edits = Vec::new();
    // The changed run being collected, as line ranges of `old` and `new`: a delete next
    // to an insert is one change to the user, so it becomes one edit.
    let mut hunk: Option<(Range<usize>, Range<usize>)> = None;
    let mut flush = |hunk: (Range<usize>, Range<usize>)| {
        let old_bytes = old_starts[hunk.0.start]..old_starts[hunk.0.end];
        let new_bytes = new_starts[hunk.1.start]..new_starts[hunk.1.end];
        edits.push(narrow(old, old_bytes, new, new_bytes));
    };
    for op in ops {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        if tag == DiffTag::Equal {
            if let Some(hunk) = hunk.take() {
                flush(hunk);
            }
            continue;
        }
        hunk = Some(match hunk {
            Some((old_run, new_run)) => {
                (old_run.start..old_range.end, new_run.start..new_range.end)
            }
            None => (old_range, new_range),
        });
    }
    if let Some(hunk) = hunk {
        flush(hunk);
    }
    edits
}

/// The line diff, as runs of equal and changed lines in order.
///
/// Without `similar`'s `Compact` pass (which `capture_diff_slices` runs): in 2.7.0 it can
/// shift a deletion past equal lines and leave the ops out of order, with wrong
/// `new_index`es (mitsuhiko/similar#78, #80); the proptests below found one. Compaction only
/// moves a change to a nicer-looking spot, and the narrowing below does not need it.
fn line_diff(old_lines: &[&str], new_lines: &[&str]) -> Vec<DiffOp> {
    let deadline = Instant::now() + DIFF_TIMEOUT;
    let mut hook = Replace::new(Capture::new());
    let Ok(()) = similar::algorithms::diff_slices_deadline(
        Algorithm::Myers,
        &mut hook,
        old_lines,
        new_lines,
        Some(deadline),
    );
    hook.into_inner().into_ops()
}

/// `old` with `edits` applied.
///
/// Panics unless the edits are sorted, non-overlapping and on char boundaries of `old`,
/// as [`minimal_edits`] makes them: anything else is a bug in the caller.
// Wired into the code action handlers next.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn apply(old: &str, edits: &[Replacement]) -> String {
    let inserted: usize = edits.iter().map(|edit| edit.text.len()).sum();
    let mut result = String::with_capacity(old.len() + inserted);
    let mut copied = 0;
    for edit in edits {
        result.push_str(&old[copied..edit.range.start]);
        result.push_str(&edit.text);
        copied = edit.range.end;
    }
    result.push_str(&old[copied..]);
    result
}

/// The lines of `text`, each with its line break: `\n`, `\r\n`, or a lone `\r` (the
/// breaks LSP and the document store count). Concatenated, they are `text`.
fn split_lines(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let ends_line = byte == b'\n' || (byte == b'\r' && bytes.get(index + 1) != Some(&b'\n'));
        if ends_line {
            lines.push(&text[start..=index]);
            start = index + 1;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// The byte offset where each line starts, plus the end of the text.
fn line_starts(lines: &[&str]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(lines.len() + 1);
    let mut offset = 0;
    starts.push(offset);
    for line in lines {
        offset += line.len();
        starts.push(offset);
    }
    starts
}

/// The replacement of `old[old_bytes]` by `new[new_bytes]` without the text both
/// share at its start and end. A pure insertion or deletion of lines has nothing to
/// trim, so it stays whole lines (an insertion sits at the start of a line).
fn narrow(old: &str, old_bytes: Range<usize>, new: &str, new_bytes: Range<usize>) -> Replacement {
    let old_text = &old[old_bytes.clone()];
    let new_text = &new[new_bytes];
    let (old_side, new_side) = (old_text.as_bytes(), new_text.as_bytes());

    let mut prefix = old_side
        .iter()
        .zip(new_side)
        .take_while(|(a, b)| a == b)
        .count();
    while !is_cut(old_text, prefix) || !is_cut(new_text, prefix) {
        prefix -= 1;
    }
    let longest_suffix = old_side.len().min(new_side.len()) - prefix;
    let mut suffix = old_side
        .iter()
        .rev()
        .zip(new_side.iter().rev())
        .take(longest_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    while !is_cut(old_text, old_text.len() - suffix) || !is_cut(new_text, new_text.len() - suffix) {
        suffix -= 1;
    }
    Replacement {
        range: old_bytes.start + prefix..old_bytes.end - suffix,
        text: new_text[prefix..new_text.len() - suffix].to_owned(),
    }
}

/// Whether an edit may start or end at byte `index` of `text`: a char boundary that
/// does not split a `\r\n`. Both ends of `text` always qualify.
fn is_cut(text: &str, index: usize) -> bool {
    let bytes = text.as_bytes();
    let splits_crlf = index > 0 && bytes[index - 1] == b'\r' && bytes.get(index) == Some(&b'\n');
    text.is_char_boundary(index) && !splits_crlf
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Checks the edits from `old` to `new` against `expected` (byte range, text), and
    /// that they produce `new`.
    #[track_caller]
    fn check(old: &str, new: &str, expected: &[(Range<usize>, &str)]) {
        let edits = minimal_edits(old, new);
        let actual: Vec<(Range<usize>, &str)> = edits
            .iter()
            .map(|edit| (edit.range.clone(), edit.text.as_str()))
            .collect();
        assert_eq!(actual, expected);
        assert_eq!(apply(old, &edits), new);
    }

    #[test]
    fn identical_texts_need_no_edits() {
        check("", "", &[]);
        check("fn f() {}\n", "fn f() {}\n", &[]);
    }

    #[test]
    fn a_changed_operator_is_one_character() {
        check(
            "fn f(a: i32, b: i32) -> i32 {\n    a - b\n}\n",
            "fn f(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
            &[(36..37, "+")],
        );
    }

    #[test]
    fn inserted_lines_are_one_insertion_at_a_line_start() {
        check(
            "use std::io;\n\nfn f() {}\n",
            "use std::io;\n\n/// Does nothing.\n/// Really.\nfn f() {}\n",
            &[(14..14, "/// Does nothing.\n/// Really.\n")],
        );
        check("b\n", "a\nb\n", &[(0..0, "a\n")]);
    }

    #[test]
    fn deleted_lines_are_removed_whole() {
        check("a\nb\nc\n", "a\nc\n", &[(2..4, "")]);
    }

    #[test]
    fn separate_changes_are_separate_edits() {
        check(
            "let a = 1;\nlet b = 2;\nlet c = 3;\n",
            "let a = 10;\nlet b = 2;\nlet d = 3;\n",
            &[(9..9, "0"), (26..27, "d")],
        );
    }

    #[test]
    fn adjacent_changed_lines_are_one_edit() {
        check("x = 1\ny = 2\n", "x = 3\ny = 4\n", &[(4..11, "3\ny = 4")]);
    }

    #[test]
    fn empty_sides() {
        check("", "a\nb", &[(0..0, "a\nb")]);
        check("a\nb", "", &[(0..3, "")]);
    }

    #[test]
    fn missing_final_newline_on_either_side() {
        check("a\nb", "a\nb\n", &[(3..3, "\n")]);
        check("a\nb\n", "a\nb", &[(3..4, "")]);
        check("a\nb", "a\nc", &[(2..3, "c")]);
        check("a", "a\nb", &[(1..1, "\nb")]);
    }

    #[test]
    fn crlf_line_breaks_are_never_split() {
        check("a\r\nb\r\n", "a\r\nc\r\n", &[(3..4, "c")]);
        // The `\r` alone differs, but an edit ending between `\r` and `\n` would have
        // no LSP position: the whole break is replaced.
        check("a\r\n", "a\n", &[(1..3, "\n")]);
        check("a\n", "a\r\n", &[(1..2, "\r\n")]);
        check("a\r\nb\r\n", "a\r\nx\r\nb\r\n", &[(3..3, "x\r\n")]);
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line() {
        check("a\rb\rc\r", "a\rB\rc\r", &[(2..3, "B")]);
    }

    #[test]
    fn multibyte_chars_are_never_split() {
        // `é` is C3 A9 and `è` C3 A8: they share a first byte.
        check("café\n", "cafè\n", &[(3..5, "è")]);
        check("🦀 crab\n", "🦐 crab\n", &[(0..4, "🦐")]);
        check("x = \"日本\"\n", "x = \"日本語\"\n", &[(11..11, "語")]);
    }

    /// A text from pieces chosen to collide: repeated lines, shared prefixes, chars
    /// sharing their leading bytes, and every kind of line break.
    fn text() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "a", "b", " ", "é", "è", "日", "🦀", "🦐", "\n", "\r\n", "\r", "x = 1;\n", "}\n",
        ]);
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    /// `old` and a text made from it by a few insertions, deletions and replacements of
    /// pieces, which shares far more with it than an unrelated text.
    fn related_texts() -> impl Strategy<Value = (String, String)> {
        let edit = (any::<prop::sample::Index>(), 0..3usize, text());
        (text(), prop::collection::vec(edit, 0..4)).prop_map(|(old, edits)| {
            let mut new: Vec<char> = old.chars().collect();
            for (at, removed, inserted) in edits {
                let start = at.index(new.len() + 1);
                let end = (start + removed).min(new.len());
                new.splice(start..end, inserted.chars());
            }
            (old, new.into_iter().collect())
        })
    }

    fn check_edit_invariants(old: &str, new: &str) -> Result<(), TestCaseError> {
        let edits = minimal_edits(old, new);
        prop_assert_eq!(apply(old, &edits), new);
        for pair in edits.windows(2) {
            // Strictly apart: edits that touch would have been one.
            prop_assert!(pair[0].range.end < pair[1].range.start, "{:?}", edits);
        }
        for edit in &edits {
            prop_assert!(edit.range.start <= edit.range.end && edit.range.end <= old.len());
            prop_assert!(is_cut(old, edit.range.start) && is_cut(old, edit.range.end));
            prop_assert_ne!(&old[edit.range.clone()], edit.text.as_str(), "{:?}", edits);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn edits_of_unrelated_texts_are_exact(old in text(), new in text()) {
            check_edit_invariants(&old, &new)?;
        }

        #[test]
        fn edits_of_related_texts_are_exact((old, new) in related_texts()) {
            check_edit_invariants(&old, &new)?;
        }
    }
}
