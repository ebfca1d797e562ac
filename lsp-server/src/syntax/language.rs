//! The languages Tandem parses, and how an LSP `languageId` (or a file name) maps to one.
//!
//! Documents in any other language still get suggestions, with text-only context.

use std::path::Path;

/// A language with a tree-sitter grammar compiled into the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Language {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    Java,
    C,
    Cpp,
}

impl Language {
    #[cfg(test)]
    pub(crate) const ALL: [Language; 9] = [
        Language::Rust,
        Language::Python,
        Language::JavaScript,
        Language::TypeScript,
        Language::Tsx,
        Language::Go,
        Language::Java,
        Language::C,
        Language::Cpp,
    ];

    /// The language of a document, from the client's `languageId` first and the file
    /// extension second (clients send ids like `plaintext` for files they do not know).
    pub(crate) fn detect(language_id: &str, path: &str) -> Option<Language> {
        Language::from_language_id(language_id).or_else(|| {
            let extension = Path::new(path).extension()?.to_str()?;
            Language::from_extension(extension)
        })
    }

    /// Language ids as VS Code, Neovim and Helix send them.
    pub(crate) fn from_language_id(language_id: &str) -> Option<Language> {
        Some(match language_id {
            "rust" => Language::Rust,
            "python" => Language::Python,
            "javascript" | "javascriptreact" | "jsx" => Language::JavaScript,
            "typescript" => Language::TypeScript,
            "typescriptreact" | "tsx" => Language::Tsx,
            "go" => Language::Go,
            "java" => Language::Java,
            "c" => Language::C,
            "cpp" | "c++" | "cuda-cpp" => Language::Cpp,
            _ => return None,
        })
    }

    pub(crate) fn from_extension(extension: &str) -> Option<Language> {
        Some(match extension.to_ascii_lowercase().as_str() {
            "rs" => Language::Rust,
            "py" | "pyi" | "pyw" => Language::Python,
            "js" | "mjs" | "cjs" | "jsx" => Language::JavaScript,
            "ts" | "mts" | "cts" => Language::TypeScript,
            "tsx" => Language::Tsx,
            "go" => Language::Go,
            "java" => Language::Java,
            "c" | "h" => Language::C,
            "cc" | "cpp" | "cxx" | "c++" | "hh" | "hpp" | "hxx" | "h++" | "ipp" => Language::Cpp,
            _ => return None,
        })
    }

    /// The compiled grammar.
    pub(crate) fn grammar(self) -> tree_sitter::Language {
        match self {
            Language::Rust => tree_sitter_rust::LANGUAGE.into(),
            Language::Python => tree_sitter_python::LANGUAGE.into(),
            Language::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Language::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Language::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Language::Go => tree_sitter_go::LANGUAGE.into(),
            Language::Java => tree_sitter_java::LANGUAGE.into(),
            Language::C => tree_sitter_c::LANGUAGE.into(),
            Language::Cpp => tree_sitter_cpp::LANGUAGE.into(),
        }
    }

    /// A parser for this language.
    pub(crate) fn parser(self) -> tree_sitter::Parser {
        let mut parser = tree_sitter::Parser::new();
        // Only fails when the grammar was generated for an ABI this tree-sitter does not
        // support, which the test below catches for every grammar at build time.
        if let Err(error) = parser.set_language(&self.grammar()) {
            tracing::error!(language = ?self, %error, "grammar is incompatible with tree-sitter");
        }
        parser
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grammar_loads_and_parses() {
        let samples = [
            (Language::Rust, "fn main() { let x = 1; }"),
            (Language::Python, "def f(x):\n    return x\n"),
            (Language::JavaScript, "function f(x) { return <a/>; }"),
            (
                Language::TypeScript,
                "function f(x: number): number { return x; }",
            ),
            (Language::Tsx, "const a = <div>{x as number}</div>;"),
            (Language::Go, "package main\nfunc main() {}\n"),
            (Language::Java, "class A { int f() { return 1; } }"),
            (Language::C, "int main(void) { return 0; }"),
            (
                Language::Cpp,
                "template <typename T> T f(T x) { return x; }",
            ),
        ];
        assert_eq!(samples.len(), Language::ALL.len());
        for (language, source) in samples {
            let mut parser = tree_sitter::Parser::new();
            parser
                .set_language(&language.grammar())
                .unwrap_or_else(|error| panic!("{language:?}: {error}"));
            let tree = parser.parse(source, None).unwrap();
            assert!(
                !tree.root_node().has_error(),
                "{language:?} failed to parse {source:?}: {}",
                tree.root_node().to_sexp()
            );
        }
    }

    #[test]
    fn detection_prefers_the_language_id_then_the_extension() {
        assert_eq!(Language::detect("rust", "x.txt"), Some(Language::Rust));
        assert_eq!(
            Language::detect("typescriptreact", "a.js"),
            Some(Language::Tsx)
        );
        assert_eq!(
            Language::detect("plaintext", "src/a.hpp"),
            Some(Language::Cpp)
        );
        assert_eq!(Language::detect("markdown", "README.md"), None);
        assert_eq!(Language::detect("", "Makefile"), None);
    }
}
