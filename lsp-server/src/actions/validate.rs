//! Refusing an edit that breaks the syntax of the document it applies to.
//!
//! A model's rewrite is parsed next to the document as it is, and refused when it has a
//! syntax error the document did not have. Documents being edited are often broken
//! already, so an existing error is tolerated wherever the edit moved it: error regions
//! of the old text are carried into the new one through the minimal edits between them.

use std::ops::Range;

use ropey::Rope;
use tree_sitter::{Node, Tree};

use super::diff::{minimal_edits, Replacement};
use crate::syntax::{parse_rope, Language, FULL_PARSE_TIMEOUT};

/// The most chars of an erroneous node quoted in a message: enough to find the spot.
const EXCERPT_CHARS: usize = 30;

/// Why an edited text is refused: a syntax error the original text did not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub(crate) struct SyntaxProblem {
    /// 1-based line of the edited text where the error starts.
    pub(crate) line: usize,
    /// What tree-sitter found, such as "syntax error near `->`" or "missing `}`".
    pub(crate) message: String,
}

/// Checks `after` (the document with a model's edit applied) against `before` (the
/// document as it is): `Err` with the first new problem when the edit introduces syntax
/// errors the original did not have.
///
/// A problem is new when it lies outside every error region of `before` (carried over
/// to `after`'s offsets); when there is none, but `after` has more problems than
/// `before`, its first problem is reported. A text that cannot be parsed in time cannot
/// be checked, and passes.
// Wired into the code action handlers next.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn check_edit(
    language: Language,
    before: &str,
    after: &str,
) -> Result<(), SyntaxProblem> {
    let Some(after_tree) = parse(language, after) else {
        return Ok(());
    };
    let mut after_problems = problems(language, &after_tree, after);
    // The common case, and it needs neither the old tree nor a diff.
    if after_problems.is_empty() {
        return Ok(());
    }
    let Some(before_tree) = parse(language, before) else {
        return Ok(());
    };
    let before_problems = problems(language, &before_tree, before);
    let edits = minimal_edits(before, after);
    let old_regions: Vec<Range<usize>> = before_problems
        .iter()
        .map(|found| carry_over(found.bytes.clone(), &edits))
        .collect();
    let first_new = after_problems.iter().position(|found| {
        !old_regions
            .iter()
            .any(|region| found.bytes.start <= region.end && region.start <= found.bytes.end)
    });
    let mut index = match first_new {
        Some(index) => index,
        None if after_problems.len() > before_problems.len() => 0,
        None => return Ok(()),
    };
    // An ERROR node can span whole functions and says little about where the text
    // broke; a problem inside it, which comes next in document order, says more.
    while !after_problems[index].precise
        && after_problems
            .get(index + 1)
            .is_some_and(|next| contains(&after_problems[index].bytes, &next.bytes))
    {
        index += 1;
    }
    Err(after_problems.swap_remove(index).problem)
}

/// A problem found in a tree, with the bytes it covers.
struct Found {
    bytes: Range<usize>,
    problem: SyntaxProblem,
    /// Whether the message names what is wrong (a missing token, an unclosed bracket,
    /// a bad indent) rather than quoting an ERROR node.
    precise: bool,
}

fn parse(language: Language, text: &str) -> Option<Tree> {
    parse_rope(language, &Rope::from_str(text), None, FULL_PARSE_TIMEOUT)
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// The problems of `tree` (parsed from `text`) in document order, outer before inner.
fn problems(language: Language, tree: &Tree, text: &str) -> Vec<Found> {
    let mut found = error_nodes(tree)
        .into_iter()
        .map(|node| describe(node, text))
        .collect::<Vec<_>>();
    if language == Language::Python {
        found.extend(python_indentation(tree, text));
        // Stable, so a node stays ahead of the ones inside it.
        found.sort_by_key(|found| found.bytes.start);
    }
    found
}

/// The ERROR and MISSING nodes of `tree`, in document order, found by descending only
/// into nodes that contain one. Iterative, so a deeply nested tree cannot overflow the
/// stack.
fn error_nodes(tree: &Tree) -> Vec<Node<'_>> {
    let mut nodes = Vec::new();
    let mut cursor = tree.walk();
    loop {
        let node = cursor.node();
        if node.is_error() || node.is_missing() {
            nodes.push(node);
        }
        if node.has_error() && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return nodes;
            }
        }
    }
}

fn describe(node: Node<'_>, text: &str) -> Found {
    let bytes = node.byte_range();
    if node.is_missing() {
        // Tree-sitter puts a missing token where the next one starts, often on a later
        // line (the end of the file for a missing `}`); it belongs after the text before.
        let before = text.get(..bytes.start).unwrap_or_default();
        let gap = &before[before.trim_end().len()..];
        let line = node
            .start_position()
            .row
            .saturating_sub(gap.matches('\n').count())
            + 1;
        let message = format!("missing `{}`", node.kind());
        return found(bytes, line, message, true);
    }
    if let Some(bracket) = unclosed_bracket(node) {
        let line = bracket.start_position().row + 1;
        return found(bytes, line, format!("unclosed `{}`", bracket.kind()), true);
    }
    let excerpt = excerpt(text.get(bytes.clone()).unwrap_or_default());
    let message = if excerpt.is_empty() {
        "syntax error".to_owned()
    } else {
        format!("syntax error near `{excerpt}`")
    };
    found(bytes, node.start_position().row + 1, message, false)
}

fn found(bytes: Range<usize>, line: usize, message: String, precise: bool) -> Found {
    Found {
        bytes,
        problem: SyntaxProblem { line, message },
        precise,
    }
}

/// The first opening bracket among the tokens an ERROR node holds directly that none
/// of them closes. Some grammars (Rust's) recover from a block left open at the end of
/// the file by wrapping everything in one ERROR node, with no MISSING `}`: the bracket
/// is the only clue to where the text broke.
fn unclosed_bracket(error: Node<'_>) -> Option<Node<'_>> {
    let mut open = Vec::new();
    let mut cursor = error.walk();
    for child in error.children(&mut cursor) {
        if child.is_named() || child.is_missing() {
            continue;
        }
        match child.kind() {
            "{" | "(" | "[" => open.push(child),
            "}" | ")" | "]" => {
                open.pop();
            }
            _ => {}
        }
    }
    open.first().copied()
}

/// Indentation errors, which tree-sitter-python does not report: its scanner reads a
/// line indented deeper than its block as a continuation of the block and a header
/// without a body as an empty block, where CPython raises `IndentationError`.
fn python_indentation(tree: &Tree, text: &str) -> Vec<Found> {
    let mut found_problems = Vec::new();
    let mut cursor = tree.walk();
    loop {
        let node = cursor.node();
        match node.kind() {
            "module" => check_statement_columns(node, Some(0), text, &mut found_problems),
            "block" => check_statement_columns(node, None, text, &mut found_problems),
            _ => {}
        }
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return found_problems;
            }
        }
    }
}

/// Checks that the statements of a block (or, with `expected` 0, the module) that start
/// a line all start in the same column. Comments may sit anywhere in Python, and ERROR
/// nodes are reported on their own.
fn check_statement_columns(
    block: Node<'_>,
    mut expected: Option<usize>,
    text: &str,
    out: &mut Vec<Found>,
) {
    let mut cursor = block.walk();
    let mut previous: Option<Node<'_>> = None;
    for statement in block.named_children(&mut cursor) {
        if matches!(statement.kind(), "comment" | "ERROR") {
            continue;
        }
        let start = statement.start_position();
        let previous_statement = previous.replace(statement);
        // `a = 1; b = 2` puts two statements on one line.
        if previous_statement.is_some_and(|node| node.end_position().row == start.row) {
            continue;
        }
        let expected_column = *expected.get_or_insert(start.column);
        if start.column == expected_column {
            continue;
        }
        // CPython's two messages: deeper than the line before, or back out to a depth
        // that no enclosing block has.
        let previous_indent =
            previous_statement.map_or(0, |node| indentation_at(text, node.end_byte()));
        let message = if start.column >= previous_indent {
            "unexpected indent"
        } else {
            "unindent does not match any outer indentation level"
        };
        let at = statement.start_byte();
        out.push(found(at..at, start.row + 1, message.to_owned(), true));
    }
    if previous.is_none() && block.kind() == "block" {
        // An empty block sits at the end of its header, after the `:`.
        let at = block.start_byte();
        let line = block.start_position().row + 1;
        let message = "expected an indented block after this line".to_owned();
        out.push(found(at..at, line, message, true));
    }
}

/// The width in bytes of the indentation of the line holding byte `offset`.
fn indentation_at(text: &str, offset: usize) -> usize {
    let line_start = text
        .get(..offset)
        .and_then(|before| before.rfind('\n'))
        .map_or(0, |newline| newline + 1);
    text.as_bytes()[line_start..]
        .iter()
        .take_while(|&&byte| byte == b' ' || byte == b'\t')
        .count()
}

/// Where `range` of the old text lies in the new one. A region whose text an edit
/// replaced grows to cover the replacement, and so does one at whose edge text was
/// inserted: an edit inside a region that was already broken cannot be judged by it.
fn carry_over(range: Range<usize>, edits: &[Replacement]) -> Range<usize> {
    carry_start(range.start, edits)..carry_end(range.end, edits)
}

fn carry_start(offset: usize, edits: &[Replacement]) -> usize {
    let mut shift = 0isize;
    for edit in edits {
        let Range { start, end } = edit.range;
        if end < offset || (end == offset && start < end) {
            shift += edit.text.len() as isize - (end - start) as isize;
        } else if start <= offset {
            return start.saturating_add_signed(shift);
        } else {
            break;
        }
    }
    offset.saturating_add_signed(shift)
}

fn carry_end(offset: usize, edits: &[Replacement]) -> usize {
    let mut shift = 0isize;
    for edit in edits {
        let Range { start, end } = edit.range;
        if start < offset && end <= offset {
            shift += edit.text.len() as isize - (end - start) as isize;
        } else if start < offset || (start == offset && end == offset) {
            return start.saturating_add_signed(shift) + edit.text.len();
        } else {
            break;
        }
    }
    offset.saturating_add_signed(shift)
}

/// The first [`EXCERPT_CHARS`] chars of `text` on one line: whitespace runs collapsed
/// to a space, an ellipsis marking a cut. Reads no further than it quotes, since an
/// ERROR node can span the rest of a file.
fn excerpt(text: &str) -> String {
    crate::syntax::collapse_whitespace(text, EXCERPT_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the edit from `before` to `after`; `expected` is the problem's display,
    /// or `None` when the edit must pass.
    #[track_caller]
    fn check(language: Language, before: &str, after: &str, expected: Option<&str>) {
        let actual = check_edit(language, before, after)
            .err()
            .map(|p| p.to_string());
        assert_eq!(actual.as_deref(), expected);
    }

    const RUST: &str = "\
fn add(a: i32, b: i32) -> i32 {
    a + b
}

fn main() {
    println!(\"{}\", add(1, 2));
}
";

    #[test]
    fn rust_valid_edit_passes() {
        let after = RUST.replace("a + b", "a.wrapping_add(b)");
        check(Language::Rust, RUST, &after, None);
        let documented = RUST.replace("fn add", "/// Adds.\nfn add");
        check(Language::Rust, RUST, &documented, None);
    }

    #[test]
    fn rust_dropped_brace_fails() {
        let after = RUST.replace("2));\n}", "2));\n");
        // Tree-sitter-rust wraps the whole file in one ERROR node here, with no MISSING
        // `}`; the unclosed bracket inside it is where the text broke.
        check(Language::Rust, RUST, &after, Some("line 5: unclosed `{`"));
        let after = RUST.replace("a + b\n}", "a + b\n");
        check(Language::Rust, RUST, &after, Some("line 1: unclosed `{`"));
    }

    #[test]
    fn rust_dropped_paren_fails() {
        let after = RUST.replace("add(1, 2))", "add(1, 2)");
        check(Language::Rust, RUST, &after, Some("line 6: missing `)`"));
    }

    #[test]
    fn rust_existing_error_elsewhere_is_tolerated() {
        let before = RUST.replace("add(1, 2));", "add(1, 2) +;");
        let after = before.replace("a + b", "a.wrapping_add(b)");
        check(Language::Rust, &before, &after, None);
        // Lines inserted above it move the old error; it is still not new.
        let after = before.replace("fn add", "/// Adds.\n/// Wraps.\nfn add");
        check(Language::Rust, &before, &after, None);
        // A new error elsewhere is still found.
        let after = before.replace("a + b", "a + ");
        check(
            Language::Rust,
            &before,
            &after,
            Some("line 2: missing `identifier`"),
        );
    }

    const PYTHON: &str = "\
def area(width, height):
    return width * height


def main():
    print(area(2, 3))
";

    #[test]
    fn python_valid_edit_passes() {
        let after = PYTHON.replace(
            "return width * height",
            "result = width * height\n    return result",
        );
        check(Language::Python, PYTHON, &after, None);
    }

    #[test]
    fn python_dropped_paren_fails() {
        let after = PYTHON.replace("area(2, 3))", "area(2, 3)");
        check(
            Language::Python,
            PYTHON,
            &after,
            Some("line 6: unclosed `(`"),
        );
    }

    #[test]
    fn python_bad_indentation_fails() {
        let after = PYTHON.replace(
            "return width * height",
            "result = width * height\n      return result",
        );
        check(
            Language::Python,
            PYTHON,
            &after,
            Some("line 3: unexpected indent"),
        );
    }

    #[test]
    fn python_header_without_a_body_fails() {
        let after = PYTHON.replace("    return width * height\n", "return width * height\n");
        check(
            Language::Python,
            PYTHON,
            &after,
            Some("line 1: expected an indented block after this line"),
        );
    }

    #[test]
    fn python_dedent_to_no_enclosing_level_fails() {
        let unindent = "unindent does not match any outer indentation level";
        let before = "class Shape:\n    def area(self):\n        return 0\n";
        let after = format!("{before}\n  def name(self):\n        return 'shape'\n");
        check(
            Language::Python,
            before,
            &after,
            Some(&format!("line 5: {unindent}")),
        );
        let after = "def f():\n        x = 1\n    return x\n";
        check(
            Language::Python,
            before,
            after,
            Some(&format!("line 3: {unindent}")),
        );
        let after = "if x:\n    y = 1\n    if y:\n        z = 1\n      w = 2\n";
        check(
            Language::Python,
            before,
            after,
            Some(&format!("line 5: {unindent}")),
        );
    }

    #[test]
    fn python_indentation_python_accepts_passes() {
        // Statements after `;`, comments at any depth, continued lines, one-line bodies.
        let after = "\
def f(x):
    a = 1; b = 2
# a comment
        # another
    c = [
  1,
        2] + \\
            [3]
    if x: return c
    return a
";
        check(Language::Python, PYTHON, after, None);
    }

    #[test]
    fn python_existing_indentation_error_is_tolerated() {
        let before = PYTHON.replace("    print(", "      print(");
        let after = before.replace("width * height", "height * width");
        check(Language::Python, &before, &after, None);
    }

    #[test]
    fn python_existing_error_elsewhere_is_tolerated() {
        let before = PYTHON.replace("print(area(2, 3))", "print(area(2, 3) +)");
        let after = before.replace("width * height", "height * width");
        check(Language::Python, &before, &after, None);
    }

    const JAVASCRIPT: &str = "\
function greet(name) {
  return `Hello, ${name}!`;
}

console.log(greet(\"world\"));
";

    #[test]
    fn javascript_valid_edit_passes() {
        let after = JAVASCRIPT.replace("function greet(name)", "function greet(name = \"you\")");
        check(Language::JavaScript, JAVASCRIPT, &after, None);
    }

    #[test]
    fn javascript_dropped_brace_fails() {
        let after = JAVASCRIPT.replace("!`;\n}", "!`;\n");
        check(
            Language::JavaScript,
            JAVASCRIPT,
            &after,
            Some("line 5: missing `}`"),
        );
    }

    #[test]
    fn javascript_dropped_paren_fails() {
        let after = JAVASCRIPT.replace("\"world\"))", "\"world\")");
        check(
            Language::JavaScript,
            JAVASCRIPT,
            &after,
            Some("line 5: missing `)`"),
        );
    }

    #[test]
    fn javascript_existing_error_elsewhere_is_tolerated() {
        let before = JAVASCRIPT.replace("greet(\"world\")", "greet(\"world\" +)");
        let after = before.replace("Hello", "Hi");
        check(Language::JavaScript, &before, &after, None);
    }

    const GO: &str = "\
package main

import \"fmt\"

func add(a int, b int) int {
\treturn a + b
}

func main() {
\tfmt.Println(add(1, 2))
}
";

    #[test]
    fn go_valid_edit_passes() {
        let after = GO.replace("\treturn a + b", "\tsum := a + b\n\treturn sum");
        check(Language::Go, GO, &after, None);
    }

    #[test]
    fn go_dropped_brace_fails() {
        let after = GO.replace("2))\n}", "2))\n");
        check(Language::Go, GO, &after, Some("line 10: missing `}`"));
    }

    #[test]
    fn go_dropped_paren_fails() {
        let after = GO.replace("add(1, 2))", "add(1, 2)");
        check(Language::Go, GO, &after, Some("line 10: missing `)`"));
    }

    #[test]
    fn go_existing_error_elsewhere_is_tolerated() {
        let before = GO.replace("add(1, 2))", "add(1, 2) +)");
        let after = before.replace("a + b", "b + a");
        check(Language::Go, &before, &after, None);
    }

    #[test]
    fn an_unparsable_original_accepts_a_valid_rewrite() {
        check(Language::Rust, "fn f( {", "fn f() {}\n", None);
    }

    #[test]
    fn a_missing_node_moved_by_an_insertion_is_not_new() {
        // The unclosed call stays unclosed, and its MISSING `)` moves to the new end.
        check(Language::Rust, "fn f() { g(1", "fn f() { g(1, 2", None);
    }

    #[test]
    fn long_error_text_is_cut_and_collapsed() {
        assert_eq!(excerpt("  a\n\t b  "), "a b");
        assert_eq!(excerpt(&"x".repeat(40)), format!("{}…", "x".repeat(30)));
        assert_eq!(excerpt(""), "");
    }

    #[test]
    fn regions_are_carried_over_edits() {
        let edits = [
            Replacement {
                range: 2..2,
                text: "abc".to_owned(),
            },
            Replacement {
                range: 10..12,
                text: "x".to_owned(),
            },
        ];
        // Before the first edit, between them, across the second, after both.
        assert_eq!(carry_over(0..1, &edits), 0..1);
        assert_eq!(carry_over(4..6, &edits), 7..9);
        assert_eq!(carry_over(5..11, &edits), 8..14);
        assert_eq!(carry_over(12..13, &edits), 14..15);
        // An insertion at a region's edge joins it.
        assert_eq!(carry_over(2..2, &edits), 2..5);
        assert_eq!(carry_over(0..2, &edits), 0..5);
    }
}
