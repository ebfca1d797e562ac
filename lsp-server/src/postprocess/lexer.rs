//! A small lexer that finds the brackets of a text outside its strings and comments, and
//! pairs them the way a reader would.
//!
//! Post-processing needs bracket depth on text that is often not valid code (a window cut
//! out of a file, with a model's answer spliced in), for every language including those
//! without a grammar. A byte scanner that knows each language's quotes and comments is
//! robust there and linear in time; the tree answers the questions it is better at.

use crate::syntax::Language;

/// A bracket outside strings and comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bracket {
    /// Byte offset of the bracket in the lexed text.
    pub(super) offset: usize,
    /// One of `(`, `)`, `[`, `]`, `{`, `}`.
    pub(super) byte: u8,
}

impl Bracket {
    pub(super) fn is_opener(self) -> bool {
        matches!(self.byte, b'(' | b'[' | b'{')
    }
}

/// The opener a closer closes.
fn opener_of(closer: u8) -> u8 {
    match closer {
        b')' => b'(',
        b']' => b'[',
        _ => b'{',
    }
}

/// A string or comment, in which brackets do not count.
#[derive(Debug, Clone, Copy)]
struct Literal {
    start: usize,
    end: usize,
    /// Whether a cursor at `end` is still inside: a line comment before its newline, or a
    /// string or comment the text ends in without closing it.
    open_end: bool,
}

/// The brackets and literals of a text.
#[derive(Debug, Default)]
pub(super) struct Lexed {
    pub(super) brackets: Vec<Bracket>,
    literals: Vec<Literal>,
}

impl Lexed {
    /// Whether a cursor at byte `offset` is inside a string or a comment.
    pub(super) fn in_literal(&self, offset: usize) -> bool {
        let after = self
            .literals
            .partition_point(|literal| literal.start < offset);
        after
            .checked_sub(1)
            .and_then(|index| self.literals.get(index))
            .is_some_and(|literal| {
                offset < literal.end || (offset == literal.end && literal.open_end)
            })
    }
}

/// How one language writes strings and comments.
struct Rules {
    line_comments: &'static [&'static str],
    block_comments: bool,
    /// Quote characters; strings of the others end at a line break (invalid code, but the
    /// scan must recover on the next line rather than swallow the rest of the window).
    quotes: &'static [u8],
    /// Quote characters whose strings may span lines.
    multiline_quotes: &'static [u8],
    /// `"""` and `'''` (Python; `"""` text blocks in Java).
    triple_quotes: bool,
    /// Lifetimes (`'a`) next to char literals, and raw strings `r#"…"#`.
    rust: bool,
    /// Digit separators (`1'000'000`) are not quotes.
    digit_separators: bool,
}

fn rules(language: Option<Language>) -> Rules {
    const C_COMMENTS: &[&str] = &["//"];
    let c_like = Rules {
        line_comments: C_COMMENTS,
        block_comments: true,
        quotes: b"\"'",
        multiline_quotes: b"",
        triple_quotes: false,
        rust: false,
        digit_separators: false,
    };
    match language {
        Some(Language::Rust) => Rules {
            quotes: b"\"",
            multiline_quotes: b"\"",
            rust: true,
            ..c_like
        },
        Some(Language::Python) => Rules {
            line_comments: &["#"],
            block_comments: false,
            triple_quotes: true,
            ..c_like
        },
        Some(Language::JavaScript | Language::TypeScript | Language::Tsx) => Rules {
            quotes: b"\"'`",
            multiline_quotes: b"`",
            ..c_like
        },
        Some(Language::Go) => Rules {
            quotes: b"\"'`",
            multiline_quotes: b"`",
            ..c_like
        },
        Some(Language::Java) => Rules {
            triple_quotes: true,
            ..c_like
        },
        Some(Language::Cpp) => Rules {
            digit_separators: true,
            ..c_like
        },
        Some(Language::C) | None => c_like,
    }
}

/// Finds the brackets and literals of `text`.
pub(super) fn lex(text: &str, language: Option<Language>) -> Lexed {
    let rules = rules(language);
    let bytes = text.as_bytes();
    let mut lexed = Lexed::default();
    let mut index = 0;
    // Only ASCII bytes are ever compared, and UTF-8 continuation bytes are never ASCII, so
    // every offset recorded here is a character boundary.
    while let Some(&byte) = bytes.get(index) {
        let rest = &bytes[index..];
        if rules
            .line_comments
            .iter()
            .any(|marker| rest.starts_with(marker.as_bytes()))
        {
            let end = line_end(bytes, index);
            lexed.literals.push(Literal {
                start: index,
                end,
                open_end: true,
            });
            index = end;
            continue;
        }
        if rules.block_comments && rest.starts_with(b"/*") {
            let (end, open_end) = match find(bytes, index + 2, b"*/") {
                Some(close) => (close + 2, false),
                None => (bytes.len(), true),
            };
            lexed.literals.push(Literal {
                start: index,
                end,
                open_end,
            });
            index = end;
            continue;
        }
        if rules.rust {
            if let Some(end) = rust_raw_string_end(bytes, index) {
                lexed.literals.push(Literal {
                    start: index,
                    end: end.unwrap_or(bytes.len()),
                    open_end: end.is_none(),
                });
                index = end.unwrap_or(bytes.len());
                continue;
            }
            if byte == b'\'' {
                match rust_char_end(text, index) {
                    Some(end) => {
                        lexed.literals.push(Literal {
                            start: index,
                            end,
                            open_end: false,
                        });
                        index = end;
                    }
                    // A lifetime or a loop label.
                    None => index += 1,
                }
                continue;
            }
        }
        if rules.quotes.contains(&byte) {
            let after_digit = index
                .checked_sub(1)
                .and_then(|previous| bytes.get(previous))
                .is_some_and(u8::is_ascii_alphanumeric);
            if !(rules.digit_separators && byte == b'\'' && after_digit) {
                let (end, open_end) = if rules.triple_quotes && rest.starts_with(&[byte; 3]) {
                    match find_unescaped(bytes, index + 3, &[byte; 3]) {
                        Some(close) => (close + 3, false),
                        None => (bytes.len(), true),
                    }
                } else {
                    string_end(bytes, index, byte, rules.multiline_quotes.contains(&byte))
                };
                lexed.literals.push(Literal {
                    start: index,
                    end,
                    open_end,
                });
                index = end;
                continue;
            }
        }
        if matches!(byte, b'(' | b')' | b'[' | b']' | b'{' | b'}') {
            lexed.brackets.push(Bracket {
                offset: index,
                byte,
            });
        }
        index += 1;
    }
    lexed
}

/// The offset of the line break ending the line at `index`, or the text's end.
fn line_end(bytes: &[u8], index: usize) -> usize {
    bytes
        .get(index..)
        .and_then(|rest| rest.iter().position(|&byte| byte == b'\n'))
        .map_or(bytes.len(), |position| index + position)
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let haystack = bytes.get(from..)?;
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|position| from + position)
}

/// Like [`find`], skipping backslash escapes.
fn find_unescaped(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let mut index = from;
    while index < bytes.len() {
        if bytes[index] == b'\\' {
            index += 2;
        } else if bytes[index..].starts_with(needle) {
            return Some(index);
        } else {
            index += 1;
        }
    }
    None
}

/// The end of the string opened by `quote` at `start`, and whether it is left open.
fn string_end(bytes: &[u8], start: usize, quote: u8, multiline: bool) -> (usize, bool) {
    let mut index = start + 1;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'\\' => index += 2,
            b'\n' if !multiline => return (index, true),
            _ if byte == quote => return (index + 1, false),
            _ => index += 1,
        }
    }
    (bytes.len(), true)
}

/// For a Rust raw string (`r"…"`, `br#"…"#`) starting at `start`: `Some(Some(end))`, or
/// `Some(None)` when it runs to the end of the text; `None` when there is none there.
fn rust_raw_string_end(bytes: &[u8], start: usize) -> Option<Option<usize>> {
    let starts_word = start
        .checked_sub(1)
        .and_then(|previous| bytes.get(previous))
        .is_none_or(|&byte| !(byte.is_ascii_alphanumeric() || byte == b'_'));
    if !starts_word {
        return None;
    }
    let mut index = start;
    if bytes.get(index) == Some(&b'b') || bytes.get(index) == Some(&b'c') {
        index += 1;
    }
    if bytes.get(index) != Some(&b'r') {
        return None;
    }
    index += 1;
    let hashes = bytes
        .get(index..)?
        .iter()
        .take_while(|&&byte| byte == b'#')
        .count();
    index += hashes;
    if bytes.get(index) != Some(&b'"') {
        return None;
    }
    let mut closing = vec![b'"'];
    closing.extend(std::iter::repeat_n(b'#', hashes));
    Some(find(bytes, index + 1, &closing).map(|close| close + closing.len()))
}

/// The end of a Rust char literal at `start`, or `None` for a lifetime or label.
fn rust_char_end(text: &str, start: usize) -> Option<usize> {
    let rest = text.get(start + 1..)?;
    if rest.starts_with('\\') {
        let close = rest.get(2..)?.find(['\'', '\n'])? + 2;
        return (rest.as_bytes().get(close) == Some(&b'\'')).then_some(start + 1 + close + 1);
    }
    let character = rest.chars().next()?;
    let after = start + 1 + character.len_utf8();
    (text.as_bytes().get(after) == Some(&b'\'') && character != '\n').then_some(after + 1)
}

/// The indentation (bytes of spaces and tabs) of the line containing `offset`.
pub(super) fn line_indent(text: &str, offset: usize) -> usize {
    let start = line_start(text, offset);
    text.get(start..).map_or(0, |line| {
        line.bytes()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count()
    })
}

fn line_start(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .and_then(|before| before.rfind('\n'))
        .map_or(0, |newline| newline + 1)
}

/// The indentation of the line at `offset` when only whitespace precedes `offset` on it.
fn leading_indent(text: &str, offset: usize) -> Option<usize> {
    let start = line_start(text, offset);
    let before = text.get(start..offset)?;
    before
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t'))
        .then_some(offset - start)
}

/// For each bracket, the index of its partner.
///
/// A closer pairs with the nearest open bracket of its kind, except that a closer first on
/// its line pairs with the open bracket whose line has the same indentation when there is
/// one: in `impl A {` / `    fn f() {` / `}` the brace closes the `impl`, and the function
/// is the one left open. Windows of real files are often unbalanced this way.
pub(super) fn pair(text: &str, brackets: &[Bracket]) -> Vec<Option<usize>> {
    let mut partners = vec![None; brackets.len()];
    let mut open: Vec<usize> = Vec::new();
    for (index, bracket) in brackets.iter().enumerate() {
        if bracket.is_opener() {
            open.push(index);
            continue;
        }
        let wanted = opener_of(bracket.byte);
        let by_indent = leading_indent(text, bracket.offset).and_then(|indent| {
            let top = *open.last()?;
            if line_indent(text, brackets[top].offset) <= indent {
                return None;
            }
            open.iter().rposition(|&opener| {
                brackets[opener].byte == wanted
                    && line_indent(text, brackets[opener].offset) == indent
            })
        });
        let position = by_indent.or_else(|| {
            open.iter()
                .rposition(|&opener| brackets[opener].byte == wanted)
        });
        if let Some(position) = position {
            let opener = open[position];
            open.truncate(position);
            partners[opener] = Some(index);
            partners[index] = Some(opener);
        }
    }
    partners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brackets(text: &str, language: Option<Language>) -> String {
        let lexed = lex(text, language);
        lexed.brackets.iter().map(|b| b.byte as char).collect()
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let rust = Some(Language::Rust);
        assert_eq!(brackets(r#"f("(", '{', b'}') // )"#, rust), "()");
        assert_eq!(brackets(r##"f(r#"(")"#) /* { */ [x]"##, rust), "()[]");
        assert_eq!(brackets("fn f<'a>(x: &'a [u8]) {}", rust), "([]){}");
        let python = Some(Language::Python);
        assert_eq!(brackets("f('''(\n''', \"[\") # {", python), "()");
        let javascript = Some(Language::JavaScript);
        assert_eq!(brackets("f(`${a}\n(`)", javascript), "()");
        assert_eq!(brackets("int x = 1'000; f(x)", Some(Language::Cpp)), "()");
        // An unterminated string ends at its line.
        assert_eq!(brackets("f(\"abc\n)", Some(Language::C)), "()");
    }

    #[test]
    fn cursor_inside_literals() {
        let lexed = lex("x = \"ab // c", Some(Language::Go));
        assert!(lexed.in_literal(6));
        assert!(lexed.in_literal(12));
        assert!(!lexed.in_literal(2));
        let lexed = lex("x // note\ny", Some(Language::Java));
        assert!(lexed.in_literal(9));
        assert!(!lexed.in_literal(10));
        let lexed = lex("s = \"done\"", Some(Language::Python));
        assert!(!lexed.in_literal(10));
    }

    #[test]
    fn indentation_decides_which_brace_a_closer_closes() {
        let text = "impl A {\n    fn f() {\n}";
        let lexed = lex(text, Some(Language::Rust));
        let partners = pair(text, &lexed.brackets);
        // `impl {` pairs with the last brace; `fn f() {` stays open.
        assert_eq!(partners[0], Some(4));
        assert_eq!(partners[3], None);
        assert_eq!(partners[1], Some(2));
    }
}
