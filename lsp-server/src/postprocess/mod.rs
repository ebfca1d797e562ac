//! Shaping what the model returns into what the editor shows: one line or one block,
//! no text that repeats what follows the cursor, brackets balanced with the suffix.
//!
//! Before the request, [`completion_mode`] decides from the code at the cursor whether to
//! ask for a line or a block, which sets the request's [`stop_sequences`] and
//! [`CompletionMode::max_tokens`]. After it, [`postprocess`] cuts the answer. Everything
//! here takes `&str` and byte offsets; it knows nothing about LSP.
//!
//! Post-processing only ever cuts: its output is the suggestion's first lines, the last
//! one possibly shortened, with trailing whitespace removed. It never writes text of its
//! own, so it can never re-insert anything (a redacted secret, say) the model did not write.

mod block;
mod lexer;
mod mode;
mod text;

pub(crate) use mode::{completion_mode, stop_sequences, CompletionMode};

use crate::syntax::Language;
use lexer::Lexed;

/// What [`postprocess`] needs: the text around the cursor as it was sent, and the answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PostprocessInput<'a> {
    pub(crate) language: Option<Language>,
    /// The text before the cursor, as sent to the model.
    pub(crate) prefix: &'a str,
    /// The text after the cursor, as sent to the model.
    pub(crate) suffix: &'a str,
    /// The model's answer, to insert at the cursor.
    pub(crate) suggestion: &'a str,
    /// The mode the request was made in.
    pub(crate) mode: CompletionMode,
}

/// The text to show, or `None` when nothing useful is left.
///
/// In order: keep the first line (single-line) or the part inside the cursor's block
/// (multi-line); cut before a line that repeats the suffix's next line; cut at a closing
/// bracket the suffix already has; drop the end when it repeats the start of the suffix;
/// remove trailing whitespace. The result ends with a line break only for a multi-line
/// suggestion whose last line the model ended, when text follows the cursor on its line
/// (`{|}`): that text then starts its own line, as the model wrote, indented as the model
/// indented the closer it repeated. Otherwise the suffix supplies what follows, and a
/// trailing line break would leave an empty line behind.
pub(crate) fn postprocess(input: &PostprocessInput<'_>) -> Option<String> {
    let PostprocessInput {
        language,
        prefix,
        suffix,
        suggestion,
        mode,
    } = *input;
    if suggestion.trim().is_empty() {
        return None;
    }
    let spliced = Spliced::new(language, prefix, suggestion);
    let mut end = match mode {
        CompletionMode::SingleLine => suggestion.find('\n').unwrap_or(suggestion.len()),
        CompletionMode::MultiLine => {
            block::block_end(language, prefix, suggestion, suffix, &spliced)
        }
    };
    end = end.min(repeated_suffix_line(slice(suggestion, end), suffix));
    end = end.min(duplicate_closer(language, prefix, suffix, &spliced, end));
    end = end.min(suffix_overlap(slice(suggestion, end), suffix, &spliced));

    let kept = slice(suggestion, end);
    let line_ending = if suggestion.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let keep_final_newline = mode == CompletionMode::MultiLine
        && kept.trim_end_matches([' ', '\t', '\r']).ends_with('\n')
        && !text::rest_of_line(suffix).trim().is_empty();
    let mut tidied = tidy(kept, keep_final_newline, line_ending);
    if keep_final_newline && !tidied.is_empty() {
        // The indentation the model gave the closer that was cut: the suffix's closer
        // lands where the model put its own.
        let last_line = kept.rsplit('\n').next().unwrap_or_default();
        if last_line.bytes().all(|byte| matches!(byte, b' ' | b'\t')) {
            tidied.push_str(last_line);
        }
    }
    let content = tidied.trim();
    if content.is_empty() || suffix.trim_start().starts_with(content) {
        return None;
    }
    Some(tidied)
}

/// `text[..end]`, with `end` moved back to a character boundary if it were inside one
/// (never the case by construction: every cut is at an ASCII byte or a line start).
fn slice(text: &str, end: usize) -> &str {
    let end = (0..=end.min(text.len()))
        .rev()
        .find(|&index| text.is_char_boundary(index))
        .unwrap_or(0);
    text.get(..end).unwrap_or_default()
}

/// How much text around the cursor tree-sitter parses. Parsing runs on every request, at
/// about 4 MB/s on a small machine, while the questions asked of the tree are about the
/// code near the cursor; the bracket lexer, which is cheap, sees the whole window.
#[derive(Debug, Clone, Copy)]
struct SyntaxBudget {
    prefix_bytes: usize,
    suffix_bytes: usize,
}

/// The text tree-sitter parses: the end of the prefix, `middle`, the start of the suffix,
/// each side cut at a line boundary within `budget`, the offset of the cursor in it, and
/// the offset in the prefix where the window starts.
fn syntax_window(
    prefix: &str,
    middle: &str,
    suffix: &str,
    budget: SyntaxBudget,
) -> (String, usize, usize) {
    let prefix_start = match prefix.len().checked_sub(budget.prefix_bytes) {
        None | Some(0) => 0,
        Some(from) => match prefix.as_bytes()[from..].iter().position(|&b| b == b'\n') {
            Some(newline) => from + newline + 1,
            None => (from..prefix.len())
                .find(|&index| prefix.is_char_boundary(index))
                .unwrap_or(prefix.len()),
        },
    };
    let suffix_end = if suffix.len() <= budget.suffix_bytes {
        suffix.len()
    } else {
        match suffix.as_bytes()[..budget.suffix_bytes]
            .iter()
            .rposition(|&b| b == b'\n')
        {
            Some(newline) => newline,
            None => (0..=budget.suffix_bytes)
                .rev()
                .find(|&index| suffix.is_char_boundary(index))
                .unwrap_or(0),
        }
    };
    let head = prefix.get(prefix_start..).unwrap_or_default();
    let tail = suffix.get(..suffix_end).unwrap_or_default();
    (format!("{head}{middle}{tail}"), head.len(), prefix_start)
}

/// Brackets of a text with the cursor in it, paired. Pairing runs left to right, so the
/// pairs seen before any offset are those of the text cut there: lexing once serves every
/// cut of the suggestion.
struct Paired {
    cursor: usize,
    lexed: Lexed,
    partners: Vec<Option<usize>>,
}

impl Paired {
    fn new(language: Option<Language>, before: &str, after: &str) -> Paired {
        let text = format!("{before}{after}");
        let lexed = lexer::lex(&text, language);
        let partners = lexer::pair(&text, &lexed.brackets);
        Paired {
            cursor: before.len(),
            lexed,
            partners,
        }
    }

    /// Closers after the cursor that close an opener before it, or nothing visible, with
    /// the offset of that opener.
    fn closers_of_the_prefix(&self) -> impl Iterator<Item = (usize, Option<usize>)> + '_ {
        self.lexed
            .brackets
            .iter()
            .zip(&self.partners)
            .filter(move |(bracket, partner)| {
                !bracket.is_opener()
                    && bracket.offset >= self.cursor
                    && partner.is_none_or(|partner| {
                        self.lexed
                            .brackets
                            .get(partner)
                            .is_some_and(|opener| opener.offset < self.cursor)
                    })
            })
            .map(|(bracket, partner)| {
                let opener = partner
                    .and_then(|partner| self.lexed.brackets.get(partner))
                    .map(|opener| opener.offset);
                (bracket.offset - self.cursor, opener)
            })
    }
}

/// The prefix followed by the whole suggestion. Offsets in its methods count from the
/// cursor, i.e. they are offsets into the suggestion.
struct Spliced(Paired);

impl Spliced {
    fn new(language: Option<Language>, prefix: &str, suggestion: &str) -> Spliced {
        Spliced(Paired::new(language, prefix, suggestion))
    }

    /// The first closer in the suggestion that closes a bracket opened before the cursor.
    pub(super) fn first_closer_of_prefix(&self) -> Option<usize> {
        self.0
            .closers_of_the_prefix()
            .next()
            .map(|(offset, _)| offset)
    }

    /// Openers minus closers in the suggestion before `offset`.
    pub(super) fn depth_at(&self, offset: usize) -> isize {
        let end = self.0.cursor + offset;
        self.0
            .lexed
            .brackets
            .iter()
            .filter(|bracket| bracket.offset >= self.0.cursor && bracket.offset < end)
            .map(|bracket| if bracket.is_opener() { 1 } else { -1 })
            .sum()
    }

    /// Whether `offset` in the suggestion is inside a string or comment.
    pub(super) fn in_literal(&self, offset: usize) -> bool {
        self.0.lexed.in_literal(self.0.cursor + offset)
    }

    /// Whether a bracket in `start..end` of the suggestion pairs with one in `..start`.
    fn pairs_across(&self, start: usize, end: usize) -> bool {
        let (cursor, brackets) = (self.0.cursor, &self.0.lexed.brackets);
        let region = cursor + start..cursor + end;
        let before = cursor..cursor + start;
        brackets
            .iter()
            .zip(&self.0.partners)
            .filter(|(bracket, _)| region.contains(&bracket.offset))
            .filter_map(|(_, partner)| brackets.get((*partner)?))
            .any(|partner| before.contains(&partner.offset))
    }
}

/// Where to cut so the suggestion closes no bracket that the suffix closes already: the
/// model re-emitting the `)` after an argument or the `}` of the body it was asked for.
///
/// A closer in the suggestion closes an opener of the prefix; if the document as it is
/// (prefix + suffix) closes that opener in the suffix, the suggestion's closer is a
/// duplicate, and so is all that follows it. Closers whose opener lies before the window
/// are matched by count with the suffix's own such closers.
fn duplicate_closer(
    language: Option<Language>,
    prefix: &str,
    suffix: &str,
    spliced: &Spliced,
    end: usize,
) -> usize {
    let document = Paired::new(language, prefix, suffix);
    let closed_in_suffix: Vec<Option<usize>> = document
        .closers_of_the_prefix()
        .map(|(_, opener)| opener)
        .collect();
    let unseen_closed_in_suffix = closed_in_suffix.iter().filter(|o| o.is_none()).count();
    let mut unseen_closed_in_suggestion = 0;
    for (offset, opener) in spliced.0.closers_of_the_prefix() {
        if offset >= end {
            break;
        }
        let duplicate = match opener {
            Some(opener) => closed_in_suffix.contains(&Some(opener)),
            None => {
                unseen_closed_in_suggestion += 1;
                unseen_closed_in_suggestion <= unseen_closed_in_suffix
            }
        };
        if duplicate {
            return offset;
        }
    }
    end
}

/// Where to cut before a later line of the suggestion that repeats the first non-blank
/// line of the suffix: the model has caught up with code that is already there.
fn repeated_suffix_line(suggestion: &str, suffix: &str) -> usize {
    let rest_of_line = text::rest_of_line(suffix).trim();
    // The rest of the cursor line is a partial line: compare without indentation. Lines
    // below it are whole, as are the suggestion's lines after its first: compare exactly,
    // so a `}` closing an inner block does not match the `}` of an outer one.
    let (target, whole_line) = if rest_of_line.is_empty() {
        match suffix
            .split('\n')
            .skip(1)
            .find(|line| !line.trim().is_empty())
        {
            Some(line) => (line.trim_end(), true),
            None => return suggestion.len(),
        }
    } else {
        (rest_of_line, false)
    };
    for line_start in text::line_starts(suggestion).skip(1) {
        let line = suggestion
            .get(line_start..)
            .and_then(|rest| rest.split('\n').next())
            .unwrap_or_default();
        if whole_line && line.trim_end() == target {
            return line_start;
        }
        if !whole_line && line.trim() == target {
            // Keep the line's indentation: the rest of the cursor line lands after it.
            return line_start + text::indent_of(line);
        }
    }
    suggestion.len()
}

/// Where to cut when the suggestion ends with the start of the suffix (`foo(a, b)` before
/// `)`, or the whole rest of the line). Overlaps made of letters or digits count only when
/// they cover the rest of the cursor line and start at a token boundary, so `x = a` before
/// `a + b` stays as written; an overlap whose brackets pair with earlier ones of the
/// suggestion (`bar(` + `foo(x)` before `)`) is the suggestion's own text and stays too.
fn suffix_overlap(suggestion: &str, suffix: &str, spliced: &Spliced) -> usize {
    // Longer overlaps than this are whole lines, which `repeated_suffix_line` handles.
    const MAX_OVERLAP: usize = 512;
    let content = suggestion.trim_end();
    let rest_of_line = text::rest_of_line(suffix).trim_end();
    let longest = content.len().min(suffix.len()).min(MAX_OVERLAP);
    for length in (1..=longest).rev() {
        let start = content.len() - length;
        let (Some(overlap), Some(before)) = (suffix.get(..length), content.get(..start)) else {
            continue;
        };
        if !content.ends_with(overlap) || overlap.trim().is_empty() {
            continue;
        }
        let symbols_only = !overlap.bytes().any(text::is_word_byte);
        let covers_line = !rest_of_line.trim().is_empty() && length >= rest_of_line.len();
        let splits_word = overlap.bytes().next().is_some_and(text::is_word_byte)
            && before.bytes().last().is_some_and(text::is_word_byte);
        if (symbols_only || covers_line)
            && !splits_word
            && !spliced.pairs_across(start, content.len())
        {
            return start;
        }
    }
    suggestion.len()
}

/// Trailing whitespace off every line, trailing blank lines off the end.
fn tidy(text: &str, keep_final_newline: bool, line_ending: &str) -> String {
    let mut lines: Vec<&str> = text.split('\n').map(str::trim_end).collect();
    while lines.last().is_some_and(|line| line.is_empty()) {
        lines.pop();
    }
    let mut tidied = lines.join(line_ending);
    if keep_final_newline && !tidied.is_empty() {
        tidied.push_str(line_ending);
    }
    tidied
}

#[cfg(test)]
pub(super) mod tests;
