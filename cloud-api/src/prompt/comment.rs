//! Comment syntax per language, for the `Path: …` headers of context blocks in prompt
//! families that have no file-separator token.

/// How a one-line comment is written in a language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommentSyntax {
    /// A line comment: `// text`, `# text`, `-- text`.
    Line(&'static str),
    /// A language with only block comments: `<!-- text -->`, `/* text */`.
    Block(&'static str, &'static str),
}

impl CommentSyntax {
    /// The comment syntax of the document: from its LSP language id, else from the
    /// extension of `path`, else `//` (the most common one among code models' languages).
    pub(crate) fn detect(language_id: &str, path: &str) -> CommentSyntax {
        from_language_id(language_id)
            .or_else(|| from_path(path))
            .unwrap_or(CommentSyntax::Line("//"))
    }

    /// `text` as a one-line comment, without a line break.
    pub(crate) fn comment(self, text: &str) -> String {
        match self {
            CommentSyntax::Line(start) => format!("{start} {text}"),
            CommentSyntax::Block(start, end) => format!("{start} {text} {end}"),
        }
    }
}

const SLASHES: CommentSyntax = CommentSyntax::Line("//");
const HASH: CommentSyntax = CommentSyntax::Line("#");
const DASHES: CommentSyntax = CommentSyntax::Line("--");
const SEMICOLON: CommentSyntax = CommentSyntax::Line(";");
const PERCENT: CommentSyntax = CommentSyntax::Line("%");
const MARKUP: CommentSyntax = CommentSyntax::Block("<!--", "-->");
const C_BLOCK: CommentSyntax = CommentSyntax::Block("/*", "*/");
const ML_BLOCK: CommentSyntax = CommentSyntax::Block("(*", "*)");

fn from_language_id(language_id: &str) -> Option<CommentSyntax> {
    Some(match language_id.to_ascii_lowercase().as_str() {
        "rust" | "c" | "cpp" | "cuda-cpp" | "csharp" | "java" | "javascript"
        | "javascriptreact" | "typescript" | "typescriptreact" | "go" | "kotlin" | "swift"
        | "scala" | "php" | "dart" | "objective-c" | "objective-cpp" | "groovy" | "fsharp"
        | "zig" | "jsonc" | "proto" | "solidity" | "verilog" | "systemverilog" | "scss"
        | "less" | "hlsl" | "glsl" | "odin" | "v" | "gleam" => SLASHES,
        "python" | "ruby" | "shellscript" | "bash" | "sh" | "zsh" | "fish" | "perl" | "r"
        | "yaml" | "toml" | "dockerfile" | "makefile" | "elixir" | "powershell" | "julia"
        | "coffeescript" | "nim" | "cmake" | "graphql" | "nix" | "terraform" | "hcl"
        | "gdscript" | "crystal" | "tcl" | "starlark" | "properties" => HASH,
        "lua" | "sql" | "haskell" | "elm" | "ada" | "vhdl" | "purescript" | "agda" => DASHES,
        "clojure" | "lisp" | "commonlisp" | "scheme" | "racket" | "ini" | "asm" => SEMICOLON,
        "latex" | "tex" | "bibtex" | "erlang" | "matlab" | "prolog" | "octave" => PERCENT,
        "vim" | "viml" => CommentSyntax::Line("\""),
        "vb" => CommentSyntax::Line("'"),
        "fortran" | "fortran-modern" => CommentSyntax::Line("!"),
        "html" | "xml" | "xsl" | "markdown" | "vue" | "svelte" | "astro" => MARKUP,
        "css" => C_BLOCK,
        "ocaml" | "reason" | "sml" => ML_BLOCK,
        _ => return None,
    })
}

fn from_path(path: &str) -> Option<CommentSyntax> {
    let file_name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    match file_name {
        "Dockerfile" | "Makefile" | "CMakeLists.txt" | "BUILD" | "WORKSPACE" => return Some(HASH),
        _ => {}
    }
    let (_, extension) = file_name.rsplit_once('.')?;
    Some(match extension.to_ascii_lowercase().as_str() {
        "rs" | "c" | "h" | "cc" | "cpp" | "cxx" | "hpp" | "hh" | "cu" | "cs" | "java" | "js"
        | "mjs" | "cjs" | "jsx" | "ts" | "mts" | "cts" | "tsx" | "go" | "kt" | "kts" | "swift"
        | "scala" | "php" | "dart" | "m" | "mm" | "groovy" | "fs" | "zig" | "proto" | "sol"
        | "sv" | "scss" | "less" | "glsl" | "hlsl" => SLASHES,
        "py" | "pyi" | "rb" | "sh" | "bash" | "zsh" | "fish" | "pl" | "r" | "yaml" | "yml"
        | "toml" | "ex" | "exs" | "ps1" | "jl" | "nim" | "cmake" | "nix" | "tf" | "gd" | "cr"
        | "bzl" => HASH,
        "lua" | "sql" | "hs" | "elm" | "adb" | "ads" | "vhd" => DASHES,
        "clj" | "cljs" | "lisp" | "el" | "scm" | "rkt" | "ini" => SEMICOLON,
        "tex" | "erl" | "hrl" => PERCENT,
        "vim" => CommentSyntax::Line("\""),
        "html" | "htm" | "xml" | "md" | "vue" | "svelte" => MARKUP,
        "css" => C_BLOCK,
        "ml" | "mli" => ML_BLOCK,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(language_id: &str, path: &str, expected: &str) {
        assert_eq!(
            CommentSyntax::detect(language_id, path).comment("Path: x"),
            expected
        );
    }

    #[test]
    fn comments_follow_the_language() {
        check("rust", "src/lib.rs", "// Path: x");
        check("python", "utils.py", "# Path: x");
        check("typescriptreact", "App.tsx", "// Path: x");
        check("lua", "init.lua", "-- Path: x");
        check("html", "index.html", "<!-- Path: x -->");
        check("css", "site.css", "/* Path: x */");
        check("ocaml", "main.ml", "(* Path: x *)");
        check("clojure", "core.clj", "; Path: x");
    }

    #[test]
    fn unknown_ids_fall_back_to_the_extension_then_slashes() {
        check("plaintext", "scripts/build.py", "# Path: x");
        check("mystery", "Dockerfile", "# Path: x");
        check("RUST", "", "// Path: x");
        check("mystery", "notes", "// Path: x");
        check("", "", "// Path: x");
    }
}
