//! Whether to ask the model for one line or a block, decided from the code at the cursor,
//! and the stop sequences that go with the decision.

use super::{lexer, syntax_window, text, SyntaxBudget};
use crate::syntax::Language;

/// How much the model is asked to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompletionMode {
    /// The rest of the current line: mid-expression, inside an argument list, a string or a
    /// comment, or between existing statements.
    SingleLine,
    /// A block: an empty body, a line that opens one (`{`, `:`, `=>`, `(`), or the end of a
    /// block the user is still writing.
    MultiLine,
}

impl CompletionMode {
    /// The generation budget for the request. A line rarely needs more than 64 tokens; a
    /// block is cut at its end by post-processing, so 256 bounds cost rather than shape.
    pub(crate) fn max_tokens(self) -> u32 {
        match self {
            CompletionMode::SingleLine => 64,
            CompletionMode::MultiLine => 256,
        }
    }
}

/// At most this many stop sequences, each at most [`MAX_STOP_LEN`] bytes: the limits the
/// cloud accepts (OpenAI-compatible providers reject more than four).
pub(crate) const MAX_STOP_SEQUENCES: usize = 4;
pub(crate) const MAX_STOP_LEN: usize = 64;

/// Stop sequences for a request. Single-line completions stop at the line break; blocks at
/// two blank lines or at a new top-level item, which always ends the block being written.
/// Post-processing cuts precisely; these only save the tokens the cut would drop.
pub(crate) fn stop_sequences(mode: CompletionMode, language: Option<Language>) -> Vec<String> {
    let sequences: &[&str] = match mode {
        CompletionMode::SingleLine => &["\n"],
        CompletionMode::MultiLine => match language {
            Some(Language::Rust) => &["\n\n\n", "\nfn ", "\npub ", "\nimpl "],
            Some(Language::Python) => &["\n\n\n", "\ndef ", "\nclass ", "\n@"],
            Some(Language::JavaScript | Language::TypeScript | Language::Tsx) => {
                &["\n\n\n", "\nfunction ", "\nexport ", "\nclass "]
            }
            Some(Language::Go) => &["\n\n\n", "\nfunc ", "\ntype ", "\nvar "],
            Some(Language::Java) => &["\n\n\n", "\npublic ", "\nclass ", "\ninterface "],
            Some(Language::C) => &["\n\n\n", "\nstatic ", "\nvoid ", "\nint "],
            Some(Language::Cpp) => &["\n\n\n", "\nnamespace ", "\ntemplate ", "\nclass "],
            None => &["\n\n\n"],
        },
    };
    sequences
        .iter()
        .take(MAX_STOP_SEQUENCES)
        .filter(|sequence| sequence.len() <= MAX_STOP_LEN)
        .map(|sequence| (*sequence).to_owned())
        .collect()
}

/// Decides single-line or multi-line from the text around the cursor.
///
/// Multi-line: the cursor line is blank and the line before opens a block, or the block
/// around the cursor ends right after it or the file ends (the user is writing the rest
/// of a body); the
/// cursor ends a line that opens a block (`{`, `=>`, `(` or `[` at the line end, `:` in
/// Python outside brackets, a `case …:` label); or the cursor sits in an empty `{}` body.
/// Single-line: anything else, in particular text after the cursor on its line, a string
/// or comment around the cursor, an argument list, and a blank line between statements,
/// where one statement is what users accept.
pub(crate) fn completion_mode(
    language: Option<Language>,
    prefix: &str,
    suffix: &str,
) -> CompletionMode {
    let rest_of_line = text::rest_of_line(suffix).trim();
    // Text after the cursor is the common case while typing, and needs no lexing.
    if !rest_of_line.is_empty() && !rest_of_line.starts_with('}') {
        return CompletionMode::SingleLine;
    }
    let prefix_lexed = lexer::lex(prefix, language);
    let multi_line_by_text = opens_multi_line(language, prefix, suffix, &prefix_lexed);
    // Only a multi-line answer needs the string-or-comment check (and its parse): every
    // other case is single-line already.
    if multi_line_by_text && !cursor_in_literal(language, prefix, suffix, &prefix_lexed) {
        CompletionMode::MultiLine
    } else {
        CompletionMode::SingleLine
    }
}

/// The text rules of [`completion_mode`], strings and comments aside.
fn opens_multi_line(
    language: Option<Language>,
    prefix: &str,
    suffix: &str,
    prefix_lexed: &lexer::Lexed,
) -> bool {
    let line_before = text::line_before_cursor(prefix);
    let before = line_before.trim_end();
    let rest_of_line = text::rest_of_line(suffix).trim();
    if !rest_of_line.is_empty() {
        // `fn f() {|}`: editors close the brace as it is typed; the body is still to write.
        return before.ends_with('{') && rest_of_line.starts_with('}');
    }
    let innermost_open = innermost_open_bracket(prefix, prefix_lexed);
    if !before.is_empty() {
        return opens_block(language, before, innermost_open);
    }
    let previous_line = prefix
        .get(..prefix.len() - line_before.len())
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty());
    previous_line.is_some_and(|line| opens_block(language, line.trim_end(), innermost_open))
        || at_block_end(language, line_before, suffix, innermost_open)
}

/// Whether a line ending like `line` (trimmed) opens a block or a multi-line list.
fn opens_block(language: Option<Language>, line: &str, innermost_open: Option<u8>) -> bool {
    if line.ends_with('{') || line.ends_with("=>") || line.ends_with('(') || line.ends_with('[') {
        return true;
    }
    if !line.ends_with(':') {
        return false;
    }
    if language == Some(Language::Python) {
        // `{'key':` or a lambda inside a call is not a block.
        return innermost_open.is_none();
    }
    let label = line.trim_start();
    label.starts_with("case ") || label.starts_with("default")
}

/// The cursor is on a blank line whose block ends on the next non-blank line.
fn at_block_end(
    language: Option<Language>,
    line_before: &str,
    suffix: &str,
    innermost_open: Option<u8>,
) -> bool {
    let next_line = suffix.lines().skip(1).find(|line| !line.trim().is_empty());
    if language == Some(Language::Python) {
        let indent = line_before.len();
        return innermost_open.is_none()
            && indent > 0
            && next_line.is_none_or(|line| text::indent_of(line) < indent);
    }
    innermost_open == Some(b'{') && next_line.is_none_or(|line| line.trim_start().starts_with('}'))
}

/// The innermost bracket left open at the end of `prefix`.
fn innermost_open_bracket(prefix: &str, lexed: &lexer::Lexed) -> Option<u8> {
    let partners = lexer::pair(prefix, &lexed.brackets);
    lexed
        .brackets
        .iter()
        .zip(&partners)
        .rev()
        .find(|(bracket, partner)| bracket.is_opener() && partner.is_none())
        .map(|(bracket, _)| bracket.byte)
}

/// Whether the cursor is inside a string or a comment: the tree decides where there is a
/// grammar (it knows regex literals, nested quotes and raw strings); the lexer covers
/// languages without one and strings the user has not closed yet, which the tree only
/// sees as an error.
fn cursor_in_literal(
    language: Option<Language>,
    prefix: &str,
    suffix: &str,
    prefix_lexed: &lexer::Lexed,
) -> bool {
    let lexer_says = prefix_lexed.in_literal(prefix.len());
    let Some(language) = language else {
        return lexer_says;
    };
    // A string or comment around the cursor shows in a few lines around it.
    let budget = SyntaxBudget {
        prefix_bytes: 1024,
        suffix_bytes: 256,
    };
    let (window, cursor, window_start) = syntax_window(prefix, "", suffix, budget);
    if prefix_lexed.in_literal(window_start) {
        // The window starts inside a long string or comment, which the tree would read
        // as code.
        return lexer_says;
    }
    let Some(tree) = language.parser().parse(&window, None) else {
        return lexer_says;
    };
    let root = tree.root_node();
    let probe_start = cursor.saturating_sub(1);
    let mut node = root.descendant_for_byte_range(probe_start, cursor);
    while let Some(current) = node {
        let kind = current.kind();
        let is_comment = kind.contains("comment");
        let is_string = kind.contains("string")
            || matches!(kind, "char_literal" | "character_literal" | "rune_literal");
        if (is_comment || is_string) && current.start_byte() < cursor {
            if cursor < current.end_byte() {
                return true;
            }
            let is_line_comment = is_comment
                && window
                    .get(current.start_byte()..current.end_byte())
                    .is_some_and(|comment| !comment.starts_with("/*"));
            if cursor == current.end_byte() && is_line_comment {
                return true;
            }
        }
        node = current.parent();
    }
    lexer_says && root.has_error()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postprocess::tests::split_cursor;

    #[track_caller]
    fn check(language: Option<Language>, fixture: &str, expected: CompletionMode) {
        let (prefix, suffix) = split_cursor(fixture);
        assert_eq!(
            completion_mode(language, prefix, suffix),
            expected,
            "{fixture}"
        );
    }

    use CompletionMode::{MultiLine, SingleLine};

    #[test]
    fn rust() {
        let rust = Some(Language::Rust);
        check(rust, "fn main() {\n    $0\n}\n", MultiLine);
        check(rust, "fn main() {$0}\n", MultiLine);
        check(rust, "fn main() {$0\n}\n", MultiLine);
        check(rust, "fn main() {\n    let x = foo($0);\n}\n", SingleLine);
        check(rust, "fn main() {\n    let x = $0\n}\n", SingleLine);
        check(rust, "fn main() {\n    // explain$0\n}\n", SingleLine);
        check(rust, "fn main() {\n    let s = \"{$0\n}\n", SingleLine);
        check(rust, "fn main() {\n    let s = \"abc$0\";\n}\n", SingleLine);
        check(rust, "fn f<'a>(x: &'a str) {\n    $0\n}\n", MultiLine);
        check(
            rust,
            "fn main() {\n    let a = 1;\n    $0\n    let b = 2;\n}\n",
            SingleLine,
        );
        check(rust, "fn main() {\n    let a = 1;\n    $0\n}\n", MultiLine);
        check(rust, "fn main() {\n    let v = vec![$0\n}\n", MultiLine);
        check(
            rust,
            "fn main() {\n    match x {\n        Some(y) =>$0\n",
            MultiLine,
        );
    }

    #[test]
    fn python() {
        let python = Some(Language::Python);
        check(python, "def f(x):$0\n", MultiLine);
        check(
            python,
            "def f(x):\n    $0\n\ndef g():\n    pass\n",
            MultiLine,
        );
        check(python, "class A:\n    def f(self):\n        $0", MultiLine);
        check(python, "d = {'a':$0\n", SingleLine);
        check(python, "x = foo(a,\n        $0\n", SingleLine);
        check(python, "# a comment:$0\n", SingleLine);
        check(python, "def f():\n    \"\"\"Docs:$0\"\"\"\n", SingleLine);
        check(
            python,
            "def f():\n    x = 1\n    $0\n    return x\n",
            SingleLine,
        );
        check(python, "def f():\n    x = 1\n    $0\n", MultiLine);
        check(python, "x = 1\n$0\n", SingleLine);
    }

    #[test]
    fn brace_languages() {
        let js = Some(Language::JavaScript);
        check(js, "const f = (x) =>$0\n", MultiLine);
        check(js, "items.map((x) => {$0})\n", MultiLine);
        check(js, "const re = /[{(]/; f($0)\n", SingleLine);
        check(js, "const s = `${a} {$0`;\n", SingleLine);
        let ts = Some(Language::TypeScript);
        check(ts, "interface A {\n  $0\n}\n", MultiLine);
        check(ts, "let x: number = $0;\n", SingleLine);
        let go = Some(Language::Go);
        check(
            go,
            "func main() {\n\tswitch x {\n\tcase 1:$0\n\t}\n}\n",
            MultiLine,
        );
        check(go, "func main() {\n\tfmt.Println($0)\n}\n", SingleLine);
        let java = Some(Language::Java);
        check(java, "class A {\n    void f() {$0\n    }\n}\n", MultiLine);
        check(java, "class A {\n    int x = $0\n}\n", SingleLine);
        let c = Some(Language::C);
        check(c, "int main(void) {\n    $0\n}\n", MultiLine);
        check(
            c,
            "int main(void) {\n    printf(\"%d\\n\", $0);\n}\n",
            SingleLine,
        );
        let cpp = Some(Language::Cpp);
        check(cpp, "namespace a {\nclass B {$0\n};\n}\n", MultiLine);
        check(cpp, "auto x = 1'000 + $0;\n", SingleLine);
    }

    #[test]
    fn languages_without_a_grammar() {
        check(None, "fn main() {\n    $0\n}\n", MultiLine);
        check(None, "x = compute($0)\n", SingleLine);
        check(None, "\"{$0\n", SingleLine);
        check(None, "$0", SingleLine);
    }

    #[test]
    fn stop_sequences_stay_within_the_cloud_limits() {
        for mode in [SingleLine, MultiLine] {
            for language in Language::ALL.into_iter().map(Some).chain([None]) {
                let stops = stop_sequences(mode, language);
                assert!(!stops.is_empty() && stops.len() <= MAX_STOP_SEQUENCES);
                assert!(stops
                    .iter()
                    .all(|s| !s.is_empty() && s.len() <= MAX_STOP_LEN));
            }
        }
        assert_eq!(stop_sequences(SingleLine, Some(Language::Rust)), ["\n"]);
        assert_eq!(
            stop_sequences(MultiLine, Some(Language::Python)),
            ["\n\n\n", "\ndef ", "\nclass ", "\n@"]
        );
    }
}
