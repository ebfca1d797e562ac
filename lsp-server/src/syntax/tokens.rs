//! Tokens: the identifiers around the cursor (to look up their definitions in other
//! documents) and the token boundaries nearest an offset (to cut the prefix and suffix
//! without splitting a token).

use std::collections::HashSet;

use ropey::Rope;
use tree_sitter::{Node, Tree};

use super::text_of;

/// Most identifiers returned by [`identifiers_near`]; the nearest are kept.
const MAX_IDENTIFIERS: usize = 256;

/// The distinct identifiers on the lines within `max_lines` of the cursor's line,
/// nearest line first (the cursor's own line, then the line above, the line below, two
/// above, …), in source order within a line.
///
/// Any named leaf whose kind ends in `identifier` counts (`type_identifier`,
/// `field_identifier`, `property_identifier`, …), so this needs no per-language table.
pub(crate) fn identifiers_near(
    tree: &Tree,
    text: &Rope,
    cursor: usize,
    max_lines: usize,
) -> Vec<String> {
    let cursor = cursor.min(text.len_bytes());
    let cursor_line = text.byte_to_line(cursor);
    let first_line = cursor_line.saturating_sub(max_lines);
    let last_line = cursor_line
        .saturating_add(max_lines)
        .min(text.len_lines().saturating_sub(1));
    let start = text.line_to_byte(first_line);
    let end = text.line_to_byte((last_line + 1).min(text.len_lines()));

    let mut by_line: Vec<(usize, usize, String)> = Vec::new();
    collect_identifiers(tree.root_node(), start..end, &mut |node| {
        let line = text.byte_to_line(node.start_byte().min(text.len_bytes()));
        by_line.push((line, node.start_byte(), text_of(text, node.byte_range())));
    });
    // Stable: ties (same distance) keep the line above before the line below.
    by_line.sort_by_key(|(line, offset, _)| {
        let distance = line.abs_diff(cursor_line);
        (distance, *line > cursor_line, *offset)
    });
    let mut seen = HashSet::new();
    by_line
        .into_iter()
        .map(|(_, _, name)| name)
        .filter(|name| !name.is_empty() && seen.insert(name.clone()))
        .take(MAX_IDENTIFIERS)
        .collect()
}

/// Calls `found` for every identifier leaf overlapping `range`, descending only into
/// nodes that overlap it (so the cost is the depth of the tree plus the nodes in range).
fn collect_identifiers<'tree>(
    node: Node<'tree>,
    range: std::ops::Range<usize>,
    found: &mut impl FnMut(Node<'tree>),
) {
    let mut cursor = node.walk();
    let mut stack = vec![node];
    while let Some(current) = stack.pop() {
        if current.end_byte() <= range.start || current.start_byte() >= range.end {
            continue;
        }
        if current.child_count() == 0 {
            if current.is_named() && current.kind().ends_with("identifier") {
                found(current);
            }
            continue;
        }
        cursor.reset(current);
        let children: Vec<Node<'tree>> = current.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
}

/// The greatest token boundary at or before `offset`: `offset` itself unless it falls
/// strictly inside a token (an identifier, a literal, a comment), then that token's
/// start. For cutting the end of a suffix.
pub(crate) fn token_boundary_before(tree: &Tree, offset: usize) -> usize {
    match token_around(tree, offset) {
        Some(token) => token.start_byte(),
        None => offset,
    }
}

/// The least token boundary at or after `offset`: `offset` itself unless it falls
/// strictly inside a token, then that token's end. For cutting the start of a prefix.
pub(crate) fn token_boundary_after(tree: &Tree, offset: usize) -> usize {
    match token_around(tree, offset) {
        Some(token) => token.end_byte(),
        None => offset,
    }
}

/// The leaf (or the string or comment) that strictly contains `offset`.
fn token_around(tree: &Tree, offset: usize) -> Option<Node<'_>> {
    let node = tree.root_node().descendant_for_byte_range(offset, offset)?;
    let strictly_inside = |node: Node<'_>| node.start_byte() < offset && offset < node.end_byte();
    if !strictly_inside(node) {
        return None;
    }
    if node.child_count() == 0 {
        // A string's content or a comment's text is a leaf inside the token a reader
        // sees: cut around the whole literal, never between its quote and its text.
        let mut token = node;
        while let Some(parent) = token.parent() {
            if !(strictly_inside(parent) && is_literal_kind(parent.kind())) {
                break;
            }
            token = parent;
        }
        return Some(token);
    }
    // Between the children of a node: whitespace, a boundary, unless the node is one
    // token to a reader (a string whose grammar does not make its content a node).
    is_literal_kind(node.kind()).then_some(node)
}

fn is_literal_kind(kind: &str) -> bool {
    kind.contains("string") || kind.contains("comment") || kind.ends_with("literal")
}

/// Like [`token_boundary_before`], for text without a tree: an offset inside a run of
/// identifier characters (letters, digits, `_`) or of other non-space characters moves
/// back to the run's start. `offset` is clamped to `text` and to a char boundary.
pub(crate) fn text_boundary_before(text: &str, offset: usize) -> usize {
    let offset = floor_char_boundary(text, offset);
    let Some(after) = text[offset..].chars().next() else {
        return offset;
    };
    let mut start = offset;
    for ch in text[..offset].chars().rev() {
        if !same_run(ch, after) {
            break;
        }
        start -= ch.len_utf8();
    }
    start
}

/// Like [`token_boundary_after`], for text without a tree.
pub(crate) fn text_boundary_after(text: &str, offset: usize) -> usize {
    let offset = floor_char_boundary(text, offset);
    let Some(before) = text[..offset].chars().next_back() else {
        return offset;
    };
    let mut end = offset;
    for ch in text[offset..].chars() {
        if !same_run(before, ch) {
            break;
        }
        end += ch.len_utf8();
    }
    end
}

/// Whether two adjacent chars belong to one token: both identifier chars, or both
/// punctuation (so `->` and `::` are not split; `)` `;` are harmless to keep together).
fn same_run(left: char, right: char) -> bool {
    let is_word = |ch: char| ch.is_alphanumeric() || ch == '_';
    if left.is_whitespace() || right.is_whitespace() {
        return false;
    }
    is_word(left) == is_word(right)
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::test_support::{parse_fixture, Fixture};
    use crate::syntax::Language;

    #[track_caller]
    fn check_identifiers(language: Language, fixture: &str, max_lines: usize, expected: &str) {
        let Fixture { rope, tree, cursor } = parse_fixture(language, fixture);
        let actual = identifiers_near(&tree, &rope, cursor, max_lines).join(" ");
        assert_eq!(actual, expected, "fixture:\n{fixture}");
    }

    #[test]
    fn identifiers_nearest_line_first() {
        check_identifiers(
            Language::Rust,
            r#"
fn far_away() {}
fn load(config: &Config) -> Result<Store> {
    let path = config.path.join("store");
    let store = Store::open(&path)?$0;
    store.migrate(&MIGRATIONS)?;
    Ok(store)
}
"#,
            1,
            "store Store open path config join migrate MIGRATIONS",
        );
    }

    #[test]
    fn identifiers_in_python_and_typescript() {
        check_identifiers(
            Language::Python,
            "import os\n\ndef main(argv):\n    path = os.path.join(argv[0], $0)\n",
            0,
            "path os join argv",
        );
        check_identifiers(
            Language::TypeScript,
            "const user: User = await repo.find(id$0);\n",
            0,
            "user User repo find id",
        );
    }

    #[test]
    fn identifiers_in_go_java_and_c() {
        check_identifiers(
            Language::Go,
            "package a\nfunc (s *Server) Handle(w http.ResponseWriter) {\n\ts.mux.ServeHTTP(w$0)\n}\n",
            0,
            "s mux ServeHTTP w",
        );
        check_identifiers(
            Language::Java,
            "class A {\n  void f() {\n    List<User> users = repo.findAll($0);\n  }\n}\n",
            0,
            "List User users repo findAll",
        );
        check_identifiers(
            Language::C,
            "int main(void) {\n  struct header h;\n  parse_header(buf, &h$0);\n}\n",
            1,
            "parse_header buf h header",
        );
    }

    #[track_caller]
    fn check_boundaries(language: Language, fixture: &str, before: &str, after: &str) {
        let Fixture { rope, tree, cursor } = parse_fixture(language, fixture);
        let text = rope.to_string();
        let shown = |offset: usize| format!("{}|{}", &text[..offset], &text[offset..]);
        assert_eq!(
            shown(token_boundary_before(&tree, cursor)),
            before,
            "before, tree"
        );
        assert_eq!(
            shown(token_boundary_after(&tree, cursor)),
            after,
            "after, tree"
        );
    }

    #[test]
    fn tree_boundaries_never_split_a_token() {
        check_boundaries(
            Language::Rust,
            "let value = compu$0te(1);",
            "let value = |compute(1);",
            "let value = compute|(1);",
        );
        check_boundaries(
            Language::Rust,
            "let value =$0 compute(1);",
            "let value =| compute(1);",
            "let value =| compute(1);",
        );
        check_boundaries(
            Language::Python,
            "x = \"hello wo$0rld\"\n",
            "x = |\"hello world\"\n",
            "x = \"hello world\"|\n",
        );
        check_boundaries(
            Language::Rust,
            "/* first line\n sec$0ond line */ fn a() {}",
            "|/* first line\n second line */ fn a() {}",
            "/* first line\n second line */| fn a() {}",
        );
        check_boundaries(
            Language::Go,
            "package a\n// a long com$0ment\n",
            "package a\n|// a long comment\n",
            "package a\n// a long comment|\n",
        );
    }

    #[test]
    fn text_boundaries_never_split_a_word() {
        let text = "let résumé = a->b;";
        assert_eq!(text_boundary_before(text, 7), 4);
        assert_eq!(text_boundary_after(text, 7), 12);
        // Inside `é` (a two-byte char): clamped back to its start first.
        assert_eq!(text_boundary_after(text, 6), 12);
        assert_eq!(text_boundary_before(text, 3), 3);
        assert_eq!(text_boundary_after(text, 3), 3);
        // `->` is one token.
        assert_eq!(text_boundary_before(text, 17), 16);
        assert_eq!(text_boundary_after(text, 17), 18);
        assert_eq!(text_boundary_after(text, 99), text.len());
    }
}
