//! What a code action is about when nothing is selected: the function, method or type
//! under the cursor, found with tree-sitter, with what decides which actions make sense
//! for it (is it a function, does it already have documentation).

use std::ops::Range;

use ropey::Rope;
use tree_sitter::{Node, Tree};

use crate::syntax::kinds::{self, Kinds};
use crate::syntax::scopes::{scope_kind, ScopeKind};
use crate::syntax::Language;

/// A definition the cursor is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) kind: ScopeKind,
    /// Its name, when the grammar gives it one.
    pub(crate) name: Option<String>,
    /// From the start of its first line (indentation, decorators, `export` and the like
    /// included) to its end, so an answer replacing it keeps the file's layout.
    pub(crate) range: Range<usize>,
    /// It already has a doc comment (or, in Python, a docstring).
    pub(crate) documented: bool,
}

impl Item {
    /// Functions and methods can be tested on their own.
    pub(crate) fn is_function(&self) -> bool {
        matches!(self.kind, ScopeKind::Function | ScopeKind::Method)
    }
}

/// The innermost function, method, class, struct, enum, trait or interface containing
/// `offset` (a cursor on its first line's indentation counts). Modules, namespaces and
/// `impl` blocks are containers, not items: the cursor in one between items finds none.
pub(crate) fn item_at(tree: &Tree, text: &Rope, language: Language, offset: usize) -> Option<Item> {
    let tables = kinds::kinds(language);
    let offset = offset.min(text.len_bytes());
    // On a line's indentation, look at the line's first code.
    let probe = first_code_on_line_from(text, offset);
    // The node found spans the probe (a probe right after an item's last character
    // finds the item), and so do all its ancestors.
    let mut node = tree.root_node().descendant_for_byte_range(probe, probe)?;
    loop {
        if let Some(kind) = scope_kind(tables, language, node) {
            let is_item = !matches!(
                kind,
                ScopeKind::Module | ScopeKind::Namespace | ScopeKind::Impl
            );
            if is_item {
                return Some(describe(tables, language, text, node, kind));
            }
        }
        node = node.parent()?;
    }
}

fn describe(
    tables: &Kinds,
    language: Language,
    text: &Rope,
    node: Node<'_>,
    kind: ScopeKind,
) -> Item {
    let outer = outermost_wrapper(tables, language, node);
    let start = line_start_if_indentation(text, outer.start_byte());
    let kind = if kind == ScopeKind::Function && inside_type(tables, language, node) {
        ScopeKind::Method
    } else {
        kind
    };
    Item {
        kind,
        name: node
            .child_by_field_name("name")
            .or_else(|| node.child_by_field_name("declarator"))
            .map(|name| crate::syntax::text_of(text, name.byte_range()))
            .map(|name| name.split('(').next().unwrap_or_default().trim().to_owned())
            .filter(|name| !name.is_empty()),
        range: start..outer.end_byte(),
        documented: has_docs(language, text, node, outer),
    }
}

/// The node a construct's text starts at: the construct, or the wrappers that belong to
/// it (`export`, `const f = `, `template <…>`, Python decorators).
fn outermost_wrapper<'tree>(tables: &Kinds, language: Language, node: Node<'tree>) -> Node<'tree> {
    let mut current = node;
    while let Some(parent) = current.parent() {
        let wraps = tables.header_wrappers.contains(&parent.kind())
            || (language == Language::Python && parent.kind() == "decorated_definition");
        if !wraps {
            break;
        }
        current = parent;
    }
    current
}

fn inside_type(tables: &Kinds, language: Language, node: Node<'_>) -> bool {
    let mut ancestor = node.parent();
    while let Some(current) = ancestor {
        if let Some(kind) = scope_kind(tables, language, current) {
            return kinds::is_type_scope(kind);
        }
        ancestor = current.parent();
    }
    false
}

/// Whether the construct has documentation where its language puts it: a docstring as
/// the body's first statement in Python, a doc comment right above it elsewhere
/// (attributes and annotations between the two allowed).
fn has_docs(language: Language, text: &Rope, node: Node<'_>, outer: Node<'_>) -> bool {
    if language == Language::Python {
        let Some(body) = node.child_by_field_name("body") else {
            return false;
        };
        let first = body.named_child(0);
        return first.is_some_and(|statement| {
            statement.kind() == "expression_statement"
                && statement
                    .named_child(0)
                    .is_some_and(|expression| expression.kind() == "string")
        });
    }
    let mut previous = outer.prev_sibling();
    while let Some(sibling) = previous {
        let kind = sibling.kind();
        if kind == "attribute_item" || kind == "decorator" || kind == "annotation" {
            previous = sibling.prev_sibling();
            continue;
        }
        if !kind.contains("comment") {
            return false;
        }
        let comment = crate::syntax::text_of(text, sibling.byte_range());
        let comment = comment.trim_start();
        return match language {
            Language::Rust => comment.starts_with("///") || comment.starts_with("/**"),
            // Go documents with any comment directly above the declaration.
            Language::Go => {
                text.byte_to_line(sibling.end_byte().saturating_sub(1)) + 1
                    >= text.byte_to_line(outer.start_byte())
            }
            _ => comment.starts_with("/**"),
        };
    }
    false
}

/// `offset`, or the first non-blank character after it when only indentation lies
/// between the line's start and `offset`.
fn first_code_on_line_from(text: &Rope, offset: usize) -> usize {
    let line = text.byte_to_line(offset);
    let line_start = text.line_to_byte(line);
    let before = text.byte_slice(line_start..offset);
    if before.chars().any(|c| !c.is_whitespace()) {
        return offset;
    }
    let line_end = text.line_to_byte((line + 1).min(text.len_lines()));
    let mut probe = offset;
    for c in text.byte_slice(offset..line_end).chars() {
        if !c.is_whitespace() {
            return probe;
        }
        probe += c.len_utf8();
    }
    offset
}

/// The start of `offset`'s line when only whitespace precedes it there.
fn line_start_if_indentation(text: &Rope, offset: usize) -> usize {
    let line_start = text.line_to_byte(text.byte_to_line(offset));
    let before = text.byte_slice(line_start..offset);
    if before.chars().all(char::is_whitespace) {
        line_start
    } else {
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::test_support::parse_fixture;

    fn item(language: Language, source: &str) -> Option<Item> {
        let fixture = parse_fixture(language, source);
        item_at(&fixture.tree, &fixture.rope, language, fixture.cursor)
    }

    fn text(source: &str, item: &Item) -> String {
        source.replace("$0", "")[item.range.clone()].to_owned()
    }

    #[test]
    fn rust_function_method_and_documentation() {
        let source = "struct S;\n\nimpl S {\n    /// Doc.\n    #[inline]\n    fn get(&self) -> u8 {\n        $01\n    }\n\n    fn bare() {}\n}\n";
        let found = item(Language::Rust, source).unwrap();
        assert_eq!(found.kind, ScopeKind::Method);
        assert_eq!(found.name.as_deref(), Some("get"));
        assert!(found.documented);
        assert!(found.is_function());
        assert_eq!(
            text(source, &found),
            "    fn get(&self) -> u8 {\n        1\n    }"
        );
        let bare = item(
            Language::Rust,
            &source
                .replace("$0", "")
                .replace("fn bare() {}", "fn bare() {$0}"),
        )
        .unwrap();
        assert_eq!(bare.name.as_deref(), Some("bare"));
        assert!(!bare.documented);
        // Between items of an impl there is no item.
        assert_eq!(
            item(Language::Rust, "impl S {\n$0\n    fn a() {}\n}\n"),
            None
        );
        // On the indentation of an item's first line.
        let indented = item(Language::Rust, "mod m {\n$0    fn a() {}\n}\n").unwrap();
        assert_eq!(indented.name.as_deref(), Some("a"));
    }

    #[test]
    fn python_decorators_and_docstrings() {
        let source = "class A:\n    @staticmethod\n    def f(x):\n        \"\"\"Doc.\"\"\"\n        return $0x\n";
        let found = item(Language::Python, source).unwrap();
        assert_eq!(found.kind, ScopeKind::Method);
        assert!(found.documented);
        assert!(text(source, &found).starts_with("    @staticmethod\n    def f(x):"));
        let plain = item(Language::Python, "def g():\n    return $01\n").unwrap();
        assert_eq!(plain.name.as_deref(), Some("g"));
        assert!(!plain.documented);
    }

    #[test]
    fn javascript_exports_and_jsdoc() {
        let source = "/** Adds. */\nexport function add(a, b) {\n  return $0a + b;\n}\n";
        let found = item(Language::JavaScript, source).unwrap();
        assert!(found.documented);
        assert_eq!(found.name.as_deref(), Some("add"));
        assert!(text(source, &found).starts_with("export function add"));
        let arrow = item(
            Language::JavaScript,
            "// plain\nconst f = (x) => {\n  return $0x;\n};\n",
        );
        if let Some(arrow) = arrow {
            assert!(!arrow.documented);
        }
    }

    #[test]
    fn go_comments_above_declarations_document_them() {
        let source = "package p\n\n// Add adds.\nfunc Add(a, b int) int {\n\treturn $0a + b\n}\n";
        let found = item(Language::Go, source).unwrap();
        assert!(found.documented);
        assert_eq!(found.name.as_deref(), Some("Add"));
        let bare = item(
            Language::Go,
            "package p\n\nfunc Sub(a, b int) int {\n\treturn $0a - b\n}\n",
        )
        .unwrap();
        assert!(!bare.documented);
    }

    #[test]
    fn java_typescript_and_cpp_items_have_their_names() {
        let java = "class Calc {\n    /** Adds. */\n    int add(int a, int b) {\n        return $0a + b;\n    }\n}\n";
        let found = item(Language::Java, java).unwrap();
        assert_eq!(
            (found.kind, found.name.as_deref(), found.documented),
            (ScopeKind::Method, Some("add"), true)
        );
        let typescript = "export class Cart {\n  total(items: number[]): number {\n    return $0items.length;\n  }\n}\n";
        let found = item(Language::TypeScript, typescript).unwrap();
        assert_eq!(
            (found.kind, found.name.as_deref()),
            (ScopeKind::Method, Some("total"))
        );
        assert!(!found.documented);
        let cpp = "int area(int w, int h) {\n    return $0w * h;\n}\n";
        let found = item(Language::Cpp, cpp).unwrap();
        assert_eq!(
            (found.kind, found.name.as_deref()),
            (ScopeKind::Function, Some("area"))
        );
    }

    #[test]
    fn outside_any_item_there_is_none() {
        assert_eq!(item(Language::Rust, "use std::io;$0\n"), None);
        assert_eq!(item(Language::Python, "import os\n$0\n"), None);
    }
}
