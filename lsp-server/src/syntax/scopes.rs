//! The scopes enclosing a cursor (function, class, impl, module, …) and their headers,
//! so a prompt can carry `impl<T> Printer<T>` and `fn print(&self)` even when their
//! bodies do not fit the budget.

use std::ops::Range;

use ropey::Rope;
use tree_sitter::{Node, Tree};

use super::kinds::{self, is_type_scope, Kinds};
use super::{normalize_whitespace, text_of, Language};

/// What kind of construct a scope is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ScopeKind {
    Function,
    Method,
    Class,
    Struct,
    Enum,
    Impl,
    Trait,
    Interface,
    Module,
    Namespace,
}

/// One scope around the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub(crate) kind: ScopeKind,
    /// The header: from the start of the construct to the start of its body, with
    /// whitespace collapsed, e.g. `async fn load(&self, path: &Path) -> Result<Config>`.
    pub(crate) signature: String,
    pub(crate) byte_range: Range<usize>,
}

/// The scopes containing `cursor`, outermost first.
///
/// A cursor exactly at a scope's end (after its closing brace) is outside it; a cursor
/// in a scope's header counts as inside it.
pub(crate) fn enclosing_scopes(
    tree: &Tree,
    text: &Rope,
    language: Language,
    cursor: usize,
) -> Vec<Scope> {
    let tables = kinds::kinds(language);
    let cursor = cursor.min(text.len_bytes());
    // In Python a block ends with its last statement, so a cursor after trailing
    // whitespace or on a blank line below it is past the node; it is still inside if
    // it is indented deeper than the construct's own line (what a user typing there
    // means). The search then starts from the last code before the cursor.
    let indentation_scoped = language == Language::Python;
    let probe = if indentation_scoped {
        last_code_before(text, cursor)
    } else {
        cursor
    };
    let cursor_column = cursor - text.line_to_byte(text.byte_to_line(cursor));
    let contains = |node: Node<'_>| {
        if node.start_byte() > cursor {
            return false;
        }
        if cursor < node.end_byte() {
            return true;
        }
        indentation_scoped
            && node.end_byte() >= probe
            && cursor_column > column_of(text, node.start_byte())
    };
    let Some(mut node) = tree.root_node().descendant_for_byte_range(probe, probe) else {
        return Vec::new();
    };
    let mut scopes = Vec::new();
    loop {
        if let Some(kind) = scope_kind(tables, language, node) {
            if contains(node) {
                scopes.push(Scope {
                    kind: refine_kind(tables, language, node, kind),
                    signature: header(tables, text, node),
                    byte_range: node.byte_range(),
                });
            }
        }
        match node.parent() {
            Some(parent) => node = parent,
            None => break,
        }
    }
    scopes.reverse();
    scopes
}

/// The start of the last non-whitespace char before `cursor`, or `cursor` if there is
/// none.
fn last_code_before(text: &Rope, cursor: usize) -> usize {
    let mut offset = cursor;
    let mut chars = text.chars_at(text.byte_to_char(cursor));
    while let Some(ch) = chars.prev() {
        offset -= ch.len_utf8();
        if !ch.is_whitespace() {
            return offset;
        }
    }
    cursor
}

/// The byte column of `offset` within its line.
fn column_of(text: &Rope, offset: usize) -> usize {
    let offset = offset.min(text.len_bytes());
    offset - text.line_to_byte(text.byte_to_line(offset))
}

/// The scope kind of `node`, if it opens a scope.
pub(crate) fn scope_kind(tables: &Kinds, language: Language, node: Node<'_>) -> Option<ScopeKind> {
    let kind = node.kind();
    let (_, scope) = tables.scopes.iter().find(|(name, _)| *name == kind)?;
    if language == Language::Go && kind == "type_declaration" {
        // A Go `type` declaration is a scope only when it has a body to be inside of.
        let body = find_body(tables, node)?;
        return Some(if body.kind() == "interface_type" {
            ScopeKind::Interface
        } else {
            ScopeKind::Struct
        });
    }
    Some(*scope)
}

/// A function directly inside a class, impl, trait or interface is a method.
fn refine_kind(tables: &Kinds, language: Language, node: Node<'_>, kind: ScopeKind) -> ScopeKind {
    if kind != ScopeKind::Function {
        return kind;
    }
    let mut ancestor = node.parent();
    while let Some(current) = ancestor {
        if let Some(outer) = scope_kind(tables, language, current) {
            return if is_type_scope(outer) {
                ScopeKind::Method
            } else {
                kind
            };
        }
        ancestor = current.parent();
    }
    kind
}

/// The body of a scope node: its `body` field, or the first body-kind node a few
/// levels down (a Go struct's fields sit in `type_spec` → `struct_type`).
pub(crate) fn find_body<'tree>(tables: &Kinds, node: Node<'tree>) -> Option<Node<'tree>> {
    if let Some(body) = node.child_by_field_name("body") {
        return Some(body);
    }
    if tables.bodies.is_empty() {
        return None;
    }
    let mut frontier = vec![node];
    for _ in 0..3 {
        let mut next = Vec::new();
        for current in frontier {
            let mut cursor = current.walk();
            for child in current.named_children(&mut cursor) {
                if tables.bodies.contains(&child.kind()) {
                    return Some(child);
                }
                next.push(child);
            }
        }
        frontier = next;
    }
    None
}

/// Where a construct's header starts: the node itself, or a wrapper that belongs to it
/// (`template <typename T>`, `export`, `const handler = `).
pub(crate) fn header_start(tables: &Kinds, node: Node<'_>) -> usize {
    let mut start = node.start_byte();
    let mut current = node;
    while let Some(parent) = current.parent() {
        if !tables.header_wrappers.contains(&parent.kind()) {
            break;
        }
        start = start.min(parent.start_byte());
        current = parent;
    }
    start
}

/// The header of a construct: from its (wrapper's) start to its body, whitespace
/// collapsed; the whole construct when it has no body.
pub(crate) fn header(tables: &Kinds, text: &Rope, node: Node<'_>) -> String {
    let start = header_start(tables, node);
    let end = find_body(tables, node)
        .map(|body| body.start_byte())
        .unwrap_or_else(|| node.end_byte());
    // A header never needs more than this many bytes; the cap keeps a huge construct
    // without a body (a 10,000-element array constant) from being copied whole.
    let end = end.min(start + super::MAX_SIGNATURE_CHARS * 4);
    normalize_whitespace(&text_of(text, start..end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::test_support::{parse_fixture, Fixture};

    #[track_caller]
    fn check(language: Language, fixture: &str, expected: &str) {
        let Fixture { rope, tree, cursor } = parse_fixture(language, fixture);
        let scopes = enclosing_scopes(&tree, &rope, language, cursor);
        let actual = scopes
            .iter()
            .map(|scope| format!("{:?}: {}", scope.kind, scope.signature))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(actual.trim(), expected.trim(), "fixture:\n{fixture}");
    }

    #[test]
    fn rust_impl_and_async_method() {
        check(
            Language::Rust,
            r#"
mod config {
    impl<T: Display> Printer<T>
    where
        T: Clone,
    {
        pub async fn load(&self, path: &Path) -> Result<Config> {
            let text = fs::read(path)$0;
        }
    }
}
"#,
            "
Module: mod config
Impl: impl<T: Display> Printer<T> where T: Clone,
Method: pub async fn load(&self, path: &Path) -> Result<Config>
",
        );
    }

    #[test]
    fn rust_trait_default_method_and_nested_fn() {
        check(
            Language::Rust,
            r#"
trait Store {
    fn get(&self, key: &str) -> Option<String> {
        fn helper(x: u8) -> u8 { x$0 }
        None
    }
}
"#,
            "
Trait: trait Store
Method: fn get(&self, key: &str) -> Option<String>
Function: fn helper(x: u8) -> u8
",
        );
    }

    #[test]
    fn rust_cursor_after_a_closing_brace_is_outside() {
        check(Language::Rust, "fn a() {}$0\n", "");
        check(
            Language::Rust,
            "struct Point {\n    x: i32,$0\n}\n",
            "Struct: struct Point",
        );
    }

    #[test]
    fn python_class_and_method() {
        check(
            Language::Python,
            r#"
class Cache(Generic[K, V]):
    @lru
    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        return $0
"#,
            "
Class: class Cache(Generic[K, V]):
Method: def get(self, key: K) -> V | None:
",
        );
    }

    #[test]
    fn python_nested_function_is_not_a_method() {
        check(
            Language::Python,
            "class A:\n    def f(self):\n        async def g(x):\n            pass$0\n",
            "Class: class A:\nMethod: def f(self):\nFunction: async def g(x):",
        );
    }

    #[test]
    fn python_blank_lines_belong_to_the_block_they_are_indented_into() {
        let source = "class A:\n    def f(self):\n        x = 1\n\n";
        check(
            Language::Python,
            &format!("{source}        $0"),
            "Class: class A:\nMethod: def f(self):",
        );
        check(
            Language::Python,
            &format!("{source}    $0"),
            "Class: class A:",
        );
        check(Language::Python, &format!("{source}$0"), "");
    }

    #[test]
    fn go_method_and_closure() {
        check(
            Language::Go,
            r#"
package server

func (s *Server) Handle(w http.ResponseWriter, r *http.Request) {
	go func(ctx context.Context) {
		s.log$0
	}(r.Context())
}
"#,
            "
Method: func (s *Server) Handle(w http.ResponseWriter, r *http.Request)
Function: func(ctx context.Context)
",
        );
    }

    #[test]
    fn go_struct_and_interface() {
        check(
            Language::Go,
            "package a\ntype Server struct {\n\taddr $0string\n}\n",
            "Struct: type Server struct",
        );
        check(
            Language::Go,
            "package a\ntype Store interface {\n\tGet(key string) $0\n}\n",
            "Interface: type Store",
        );
    }

    #[test]
    fn javascript_class_method_and_arrow_function() {
        check(
            Language::JavaScript,
            r#"
export class Client extends Base {
  async fetch(url, { retries = 3 } = {}) {
    const onError = (error) => {
      log(error$0);
    };
  }
}
"#,
            "
Class: export class Client extends Base
Method: async fetch(url, { retries = 3 } = {})
Function: const onError = (error) =>
",
        );
    }

    #[test]
    fn typescript_interface_namespace_and_generic_function() {
        check(
            Language::TypeScript,
            r#"
namespace Api {
  export function request<T extends object>(path: string, body: T): Promise<Response> {
    return fetch($0);
  }
}
"#,
            "
Namespace: namespace Api
Function: export function request<T extends object>(path: string, body: T): Promise<Response>
",
        );
        check(
            Language::TypeScript,
            "interface Repo<T> extends Base {\n  find(id: string): T$0;\n}\n",
            "Interface: interface Repo<T> extends Base",
        );
    }

    #[test]
    fn tsx_component() {
        check(
            Language::Tsx,
            "export function Button({ label }: Props): JSX.Element {\n  return <button>{label$0}</button>;\n}\n",
            "Function: export function Button({ label }: Props): JSX.Element",
        );
    }

    #[test]
    fn java_class_and_annotated_method() {
        check(
            Language::Java,
            r#"
public final class UserService implements Service<User> {
    @Override
    public Optional<User> find(long id) throws IOException {
        return repository.find(id)$0;
    }
}
"#,
            "
Class: public final class UserService implements Service<User>
Method: @Override public Optional<User> find(long id) throws IOException
",
        );
    }

    #[test]
    fn c_function_and_struct() {
        check(
            Language::C,
            "static int parse_header(const char *buf, size_t len, struct header *out) {\n  return $0;\n}\n",
            "Function: static int parse_header(const char *buf, size_t len, struct header *out)",
        );
        check(
            Language::C,
            "struct header {\n  int $0len;\n};\n",
            "Struct: struct header",
        );
    }

    #[test]
    fn cpp_namespace_template_class_and_method() {
        check(
            Language::Cpp,
            r#"
namespace net {
template <typename T>
class Queue : public Base {
 public:
  void push(const T& value) override {
    items_.push_back($0);
  }
};
}
"#,
            "
Namespace: namespace net
Class: template <typename T> class Queue : public Base
Method: void push(const T& value) override
",
        );
    }

    #[test]
    fn signatures_are_bounded() {
        let long = format!("fn f({}) {{ $0 }}", "a: u8, ".repeat(200));
        let Fixture { rope, tree, cursor } = parse_fixture(Language::Rust, &long);
        let scopes = enclosing_scopes(&tree, &rope, Language::Rust, cursor);
        assert_eq!(scopes.len(), 1);
        assert!(scopes[0].signature.chars().count() <= crate::syntax::MAX_SIGNATURE_CHARS + 1);
        assert!(scopes[0].signature.ends_with('…'));
    }
}
