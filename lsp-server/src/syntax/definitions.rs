//! The definitions a file makes (functions, methods, types, constants), with their
//! headers, so the context builder can show the model what an identifier used near the
//! cursor but defined in another open document looks like.

use std::ops::Range;

use ropey::Rope;
use tree_sitter::{Node, Tree};

use super::kinds::{self, Kinds};
use super::scopes::{find_body, header};
use super::{normalize_whitespace, text_of, Language, MAX_SIGNATURE_CHARS};

/// What a definition defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DefinitionKind {
    Function,
    Method,
    Class,
    Struct,
    Enum,
    Union,
    Trait,
    Interface,
    TypeAlias,
    Const,
    Static,
    Variable,
    Module,
    Macro,
}

/// One definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Definition {
    pub(crate) name: String,
    pub(crate) kind: DefinitionKind,
    /// The header (up to the body), or the whole definition when it has no body
    /// (constants, type aliases, prototypes), whitespace collapsed and bounded.
    pub(crate) signature: String,
    /// The whole definition, body included.
    pub(crate) byte_range: Range<usize>,
}

/// More than this many definitions are generated code.
const MAX_DEFINITIONS: usize = 1_024;
/// How deep members are searched: `namespace` → `class` → method is 2.
const MAX_DEPTH: usize = 4;

/// The top-level and member definitions of the file, in source order.
pub(crate) fn definitions(tree: &Tree, text: &Rope, language: Language) -> Vec<Definition> {
    let mut collector = Collector {
        tables: kinds::kinds(language),
        language,
        text,
        found: Vec::new(),
    };
    collector.collect(tree.root_node(), 0, false);
    collector.found
}

struct Collector<'a> {
    tables: &'static Kinds,
    language: Language,
    text: &'a Rope,
    found: Vec<Definition>,
}

impl Collector<'_> {
    /// Visits the named children of `node`; `in_type` says they are members of a type,
    /// which makes functions methods.
    fn collect(&mut self, node: Node<'_>, depth: usize, in_type: bool) {
        let mut cursor = node.walk();
        let children: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
        for child in children {
            if self.found.len() >= MAX_DEFINITIONS {
                return;
            }
            self.visit(child, depth, in_type);
        }
    }

    fn visit(&mut self, node: Node<'_>, depth: usize, in_type: bool) {
        let kind = node.kind();
        if self.tables.transparent.contains(&kind) {
            if depth >= MAX_DEPTH {
                return;
            }
            // Some wrappers hold their item in a field (Python's decorated definition,
            // `export`), others in a body (Rust's `impl`, C++'s namespace).
            let is_impl = kind == "impl_item";
            let inner = node
                .child_by_field_name("definition")
                .or_else(|| node.child_by_field_name("declaration"));
            match (inner, find_body(self.tables, node)) {
                (Some(inner), _) => self.visit(inner, depth, in_type),
                (None, Some(body)) => self.collect(body, depth + 1, is_impl || in_type),
                (None, None) => self.collect(node, depth + 1, in_type),
            }
            return;
        }
        if let Some((_, definition_kind)) = self
            .tables
            .definitions
            .iter()
            .find(|(name, _)| *name == kind)
        {
            let mut definition_kind = *definition_kind;
            if in_type && definition_kind == DefinitionKind::Function {
                definition_kind = DefinitionKind::Method;
            }
            // `struct header;` and `struct header *p` in C mention a type, they do not
            // define one.
            let is_c_type_mention = matches!(self.language, Language::C | Language::Cpp)
                && matches!(
                    kind,
                    "struct_specifier" | "union_specifier" | "enum_specifier" | "class_specifier"
                )
                && node.child_by_field_name("body").is_none();
            if !is_c_type_mention {
                if let Some(name) = self.name_of(node) {
                    self.push(
                        name,
                        definition_kind,
                        node,
                        header(self.tables, self.text, node),
                    );
                }
            }
            if depth < MAX_DEPTH && is_container(definition_kind) {
                if let Some(body) = find_body(self.tables, node) {
                    let members_are_methods = definition_kind != DefinitionKind::Module;
                    self.collect(body, depth + 1, members_are_methods);
                }
            }
            return;
        }
        self.visit_special(node, depth, in_type);
    }

    /// Definitions whose shape is not "a node with a name": declarations with
    /// declarators, Go's grouped `type`/`const`, top-level assignments.
    fn visit_special(&mut self, node: Node<'_>, depth: usize, in_type: bool) {
        match (self.language, node.kind()) {
            (
                Language::JavaScript | Language::TypeScript | Language::Tsx,
                "lexical_declaration" | "variable_declaration",
            ) => self.javascript_declaration(node, depth),
            (Language::Go, "type_declaration") => {
                let mut cursor = node.walk();
                let specs: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
                for spec in specs {
                    let kind = match spec.child_by_field_name("type").map(|t| t.kind()) {
                        Some("struct_type") => DefinitionKind::Struct,
                        Some("interface_type") => DefinitionKind::Interface,
                        _ => DefinitionKind::TypeAlias,
                    };
                    if let Some(name) = self.name_of(spec) {
                        let signature = format!("type {}", header(self.tables, self.text, spec));
                        self.push(name, kind, spec, signature);
                    }
                }
            }
            (Language::Go, "const_declaration" | "var_declaration") => {
                let (keyword, kind) = if node.kind() == "const_declaration" {
                    ("const", DefinitionKind::Const)
                } else {
                    ("var", DefinitionKind::Variable)
                };
                let mut cursor = node.walk();
                let specs: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
                for spec in specs {
                    let Some(name) = self.name_of(spec) else {
                        continue;
                    };
                    let signature = format!("{keyword} {}", self.whole(spec));
                    self.push(name, kind, spec, signature);
                }
            }
            (Language::Python, "expression_statement") if depth == 0 || in_type => {
                let Some(assignment) = node.named_child(0).filter(|n| n.kind() == "assignment")
                else {
                    return;
                };
                let Some(left) = assignment
                    .child_by_field_name("left")
                    .filter(|left| left.kind() == "identifier")
                else {
                    return;
                };
                let name = text_of(self.text, left.byte_range());
                let signature = self.whole(node);
                self.push(name, DefinitionKind::Variable, node, signature);
            }
            (Language::Java, "field_declaration" | "constant_declaration") => {
                let signature = self.whole(node);
                let is_constant = node.kind() == "constant_declaration"
                    || signature.contains("static final")
                    || signature.contains("final static");
                if !is_constant {
                    return;
                }
                let mut cursor = node.walk();
                let names: Vec<String> = node
                    .children_by_field_name("declarator", &mut cursor)
                    .filter_map(|declarator| self.name_of(declarator))
                    .collect();
                for name in names {
                    self.push(name, DefinitionKind::Const, node, signature.clone());
                }
            }
            (Language::C | Language::Cpp, "declaration" | "field_declaration") => {
                // Prototypes (`int parse(const char *s);`) and method declarations in a
                // class body; plain variables are left out.
                let Some(declarator) = node.child_by_field_name("declarator") else {
                    return;
                };
                if !has_function_declarator(declarator) {
                    return;
                }
                let Some(name) = declarator_name(self.text, declarator) else {
                    return;
                };
                let kind = if in_type || node.kind() == "field_declaration" {
                    DefinitionKind::Method
                } else {
                    DefinitionKind::Function
                };
                let signature = self.whole(node);
                self.push(name, kind, node, signature);
            }
            _ => {}
        }
    }

    fn javascript_declaration(&mut self, node: Node<'_>, depth: usize) {
        let is_const = node
            .child(0)
            .is_some_and(|keyword| keyword.kind() == "const");
        let mut cursor = node.walk();
        let declarators: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
        for declarator in declarators {
            let Some(name_node) = declarator
                .child_by_field_name("name")
                .filter(|name| name.kind() == "identifier")
            else {
                continue;
            };
            let name = text_of(self.text, name_node.byte_range());
            let value = declarator.child_by_field_name("value");
            match value.map(|value| value.kind()) {
                Some(
                    "arrow_function" | "function_expression" | "function" | "generator_function",
                ) => {
                    let value = value.unwrap_or(declarator);
                    let signature = header(self.tables, self.text, value);
                    self.push(name, DefinitionKind::Function, node, signature);
                }
                Some("class") => {
                    let value = value.unwrap_or(declarator);
                    let signature = header(self.tables, self.text, value);
                    self.push(name, DefinitionKind::Class, node, signature);
                }
                _ if is_const && depth == 0 => {
                    let signature = self.whole(node);
                    self.push(name, DefinitionKind::Const, node, signature);
                }
                _ => {}
            }
        }
    }

    fn push(&mut self, name: String, kind: DefinitionKind, node: Node<'_>, signature: String) {
        if name.is_empty() {
            return;
        }
        self.found.push(Definition {
            name,
            kind,
            signature,
            byte_range: node.byte_range(),
        });
    }

    /// A whole (body-less) node, whitespace collapsed and bounded.
    fn whole(&self, node: Node<'_>) -> String {
        let range = node.byte_range();
        let end = range.end.min(range.start + MAX_SIGNATURE_CHARS * 4);
        normalize_whitespace(&text_of(self.text, range.start..end))
    }

    fn name_of(&self, node: Node<'_>) -> Option<String> {
        if let Some(name) = node.child_by_field_name("name") {
            return Some(text_of(self.text, name.byte_range()));
        }
        let declarator = node.child_by_field_name("declarator")?;
        declarator_name(self.text, declarator)
    }
}

fn is_container(kind: DefinitionKind) -> bool {
    matches!(
        kind,
        DefinitionKind::Class
            | DefinitionKind::Struct
            | DefinitionKind::Trait
            | DefinitionKind::Interface
            | DefinitionKind::Module
    )
}

/// The name a C or C++ declarator declares: `*parse(const char *s)` → `parse`,
/// `Queue<T>::push(...)` → `Queue<T>::push`.
fn declarator_name(text: &Rope, declarator: Node<'_>) -> Option<String> {
    let mut current = declarator;
    for _ in 0..8 {
        match current.kind() {
            "identifier"
            | "field_identifier"
            | "type_identifier"
            | "qualified_identifier"
            | "destructor_name"
            | "operator_name" => {
                return Some(text_of(text, current.byte_range()));
            }
            _ => {
                current = current
                    .child_by_field_name("declarator")
                    .or_else(|| current.child_by_field_name("name"))?;
            }
        }
    }
    None
}

fn has_function_declarator(declarator: Node<'_>) -> bool {
    let mut current = Some(declarator);
    for _ in 0..8 {
        let Some(node) = current else { return false };
        if node.kind() == "function_declarator" {
            return true;
        }
        current = node.child_by_field_name("declarator");
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::test_support::parse_fixture;

    #[track_caller]
    fn check(language: Language, source: &str, expected: &str) {
        let fixture = parse_fixture(language, source);
        let actual = definitions(&fixture.tree, &fixture.rope, language)
            .iter()
            .map(|definition| {
                format!(
                    "{:?} {}: {}",
                    definition.kind, definition.name, definition.signature
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(actual.trim(), expected.trim(), "source:\n{source}");
    }

    #[test]
    fn rust_items_and_members() {
        check(
            Language::Rust,
            r#"
use std::fmt::Display;

pub const MAX_RETRIES: u32 = 3;
static NAME: &str = "x";
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
}

pub enum Mode { Fast, Slow }

pub trait Loader {
    fn load(&self, path: &Path) -> Result<Config>;
    fn name(&self) -> &str { "loader" }
}

impl<T: Display> Printer<T> {
    pub const WIDTH: usize = 80;
    pub async fn print(&self, value: T) -> io::Result<()> {
        todo_later()
    }
}

mod inner {
    fn helper() {}
}

macro_rules! square { ($x:expr) => { $x * $x }; }

fn main() {
    fn local() {}
}
"#,
            r#"
Const MAX_RETRIES: pub const MAX_RETRIES: u32 = 3;
Static NAME: static NAME: &str = "x";
TypeAlias Result: pub type Result<T> = std::result::Result<T, Error>;
Struct Config: pub struct Config
Enum Mode: pub enum Mode
Trait Loader: pub trait Loader
Method load: fn load(&self, path: &Path) -> Result<Config>;
Method name: fn name(&self) -> &str
Const WIDTH: pub const WIDTH: usize = 80;
Method print: pub async fn print(&self, value: T) -> io::Result<()>
Module inner: mod inner
Function helper: fn helper()
Macro square: macro_rules! square { ($x:expr) => { $x * $x }; }
Function main: fn main()
"#,
        );
    }

    #[test]
    fn python_classes_functions_and_module_constants() {
        check(
            Language::Python,
            r#"
import os

DEFAULT_TIMEOUT = 30

class Cache(Generic[K, V]):
    max_size: int = 128

    @property
    def size(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        return None

@dataclass
class Point:
    x: int

async def fetch(url: str, *, retries: int = 3) -> bytes:
    def inner():
        pass
"#,
            r#"
Variable DEFAULT_TIMEOUT: DEFAULT_TIMEOUT = 30
Class Cache: class Cache(Generic[K, V]):
Variable max_size: max_size: int = 128
Method size: def size(self) -> int:
Method get: def get(self, key: K) -> V | None:
Class Point: class Point:
Variable x: x: int
Function fetch: async def fetch(url: str, *, retries: int = 3) -> bytes:
"#,
        );
    }

    #[test]
    fn javascript_functions_classes_and_consts() {
        check(
            Language::JavaScript,
            r#"
const API_URL = "https://example.test";
let counter = 0;
export function request(path, options = {}) { return fetch(path); }
export const handler = async (event) => { return event; };
export default class Client {
  constructor(base) { this.base = base; }
  get(path) { return request(this.base + path); }
}
"#,
            r#"
Const API_URL: const API_URL = "https://example.test";
Function request: export function request(path, options = {})
Function handler: export const handler = async (event) =>
Class Client: export default class Client
Method constructor: constructor(base)
Method get: get(path)
"#,
        );
    }

    #[test]
    fn typescript_interfaces_types_enums_and_classes() {
        check(
            Language::TypeScript,
            r#"
export interface User {
  id: string;
  rename(name: string): Promise<void>;
}
export type Id = string | number;
enum Color { Red, Green }
declare function greet(name: string): void;
export abstract class Repo<T> implements Store<T> {
  abstract find(id: Id): Promise<T>;
  async save(item: T): Promise<void> {}
}
namespace Util {
  export function clamp(x: number): number { return x; }
}
"#,
            r#"
Interface User: export interface User
Method rename: rename(name: string): Promise<void>
TypeAlias Id: export type Id = string | number;
Enum Color: enum Color
Function greet: declare function greet(name: string): void;
Class Repo: export abstract class Repo<T> implements Store<T>
Method find: abstract find(id: Id): Promise<T>
Method save: async save(item: T): Promise<void>
Module Util: namespace Util
Function clamp: export function clamp(x: number): number
"#,
        );
    }

    #[test]
    fn go_functions_methods_types_and_consts() {
        check(
            Language::Go,
            r#"
package server

const DefaultPort = 8080

type Server struct {
	addr string
}

type Handler interface {
	Serve(ctx context.Context) error
}

type ID = string

func New(addr string) *Server { return &Server{addr: addr} }

func (s *Server) Handle(w http.ResponseWriter, r *http.Request) {}
"#,
            r#"
Const DefaultPort: const DefaultPort = 8080
Struct Server: type Server struct
Interface Handler: type Handler
TypeAlias ID: type ID = string
Function New: func New(addr string) *Server
Method Handle: func (s *Server) Handle(w http.ResponseWriter, r *http.Request)
"#,
        );
    }

    #[test]
    fn java_classes_methods_and_constants() {
        check(
            Language::Java,
            r#"
package app;

public class UserService {
    public static final int MAX = 10;
    private final Repo repo;

    public UserService(Repo repo) { this.repo = repo; }

    public Optional<User> find(long id) { return repo.find(id); }

    interface Listener { void onChange(User user); }
}

enum Role { ADMIN, USER }
"#,
            r#"
Class UserService: public class UserService
Const MAX: public static final int MAX = 10;
Method UserService: public UserService(Repo repo)
Method find: public Optional<User> find(long id)
Interface Listener: interface Listener
Method onChange: void onChange(User user);
Enum Role: enum Role
"#,
        );
    }

    #[test]
    fn c_functions_prototypes_structs_typedefs_and_macros() {
        check(
            Language::C,
            r#"
#ifndef PARSER_H
#define PARSER_H
#define MAX(a, b) ((a) > (b) ? (a) : (b))

struct header {
  size_t len;
};

typedef struct header header_t;

int parse(const char *buf, struct header *out);

static char *next_token(char *s) {
  return s;
}
#endif
"#,
            r#"
Macro PARSER_H: #define PARSER_H
Macro MAX: #define MAX(a, b) ((a) > (b) ? (a) : (b))
Struct header: struct header
TypeAlias header_t: typedef struct header header_t;
Function parse: int parse(const char *buf, struct header *out);
Function next_token: static char *next_token(char *s)
"#,
        );
    }

    #[test]
    fn cpp_namespaces_templates_and_methods() {
        check(
            Language::Cpp,
            r#"
namespace net {
template <typename T>
class Queue {
 public:
  void push(const T& value);
  size_t size() const { return items_.size(); }
};

using Bytes = std::vector<uint8_t>;

void Queue<int>::push(const int& value) {}
}
"#,
            r#"
Class Queue: template <typename T> class Queue
Method push: void push(const T& value);
Method size: size_t size() const
TypeAlias Bytes: using Bytes = std::vector<uint8_t>;
Function Queue<int>::push: void Queue<int>::push(const int& value)
"#,
        );
    }
}
