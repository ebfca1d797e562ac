//! The built-in offline provider: completes code by repeating what followed the same
//! tokens elsewhere in the file.
//!
//! The last tokens before the cursor (the last one may be half typed) are looked up in
//! the rest of the prefix and in the suffix; the occurrence sharing the longest run of
//! tokens wins (ties go to the one nearest before the cursor), and the text after it, up
//! to the end of its line, is the suggestion. So in
//! `fn add(a: i32) -> i32 { a }\nfn ad` the suggestion is `d(a: i32) -> i32 { a }`.
//! No match gives an empty text. Whitespace between tokens is not compared.

use futures::future::BoxFuture;
use tandem_shared::CompletionRequest;

use super::{max_tokens, Provider, ProviderCompletion, ProviderError};

/// Bytes of prefix searched (the part nearest the cursor): bounds the work per request.
const PREFIX_WINDOW_BYTES: usize = 64 * 1024;
/// Bytes of suffix searched.
const SUFFIX_WINDOW_BYTES: usize = 16 * 1024;
/// Longest token run compared; longer matches do not change the outcome in practice.
const MAX_MATCH_TOKENS: usize = 64;
/// Matches shorter than this many characters are too weak to suggest anything.
const MIN_MATCH_CHARS: usize = 3;

/// A provider of `kind = "local"`, and the built-in one used when none is configured.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    name: String,
    model: String,
}

impl LocalProvider {
    pub fn new(name: String, model: Option<String>) -> LocalProvider {
        LocalProvider {
            name,
            model: model.unwrap_or_else(|| "local".to_owned()),
        }
    }

    /// The provider answering when no `[[providers]]` are configured.
    pub fn builtin() -> LocalProvider {
        LocalProvider::new("local".to_owned(), None)
    }
}

impl Provider for LocalProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<ProviderCompletion, ProviderError>> {
        Box::pin(async move {
            // Character budget from the token budget: four characters per token, the rate
            // the shared estimate charges for words (symbols cost more, so this errs long;
            // the suggestion ends at its line anyway).
            let max_chars = usize::try_from(max_tokens(request))
                .unwrap_or(usize::MAX)
                .saturating_mul(4);
            let text =
                complete_by_repetition(&request.prefix, &request.suffix, &request.stop, max_chars);
            Ok(ProviderCompletion {
                text,
                finish_reason: Some("stop".to_owned()),
                model: self.model.clone(),
                // None: the handler estimates both from the text.
                prompt_tokens: None,
                completion_tokens: None,
            })
        })
    }
}

/// A token: a run of word characters, or one other non-space character. Byte range into
/// the searched document.
#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    word: bool,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn tokenize(text: &str, offset: usize, tokens: &mut Vec<Token>) {
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if is_word_char(c) {
            let mut end = start + c.len_utf8();
            while let Some(&(next_start, next)) = chars.peek() {
                if !is_word_char(next) {
                    break;
                }
                end = next_start + next.len_utf8();
                chars.next();
            }
            tokens.push(Token {
                start: offset + start,
                end: offset + end,
                word: true,
            });
        } else {
            tokens.push(Token {
                start: offset + start,
                end: offset + start + c.len_utf8(),
                word: false,
            });
        }
    }
}

/// The last `max_bytes` of `text`, starting on a char boundary.
fn tail(text: &str, max_bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(max_bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The first `max_bytes` of `text`, ending on a char boundary.
fn head(text: &str, max_bytes: usize) -> &str {
    let mut end = max_bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The suggestion for a cursor between `prefix` and `suffix`, or an empty string.
pub fn complete_by_repetition(
    prefix: &str,
    suffix: &str,
    stop: &[String],
    max_chars: usize,
) -> String {
    let prefix = tail(prefix, PREFIX_WINDOW_BYTES);
    let suffix = head(suffix, SUFFIX_WINDOW_BYTES);
    let document = format!("{prefix}{suffix}");
    let cursor = prefix.len();

    let mut tokens = Vec::new();
    tokenize(prefix, 0, &mut tokens);
    let Some(key_last) = tokens.len().checked_sub(1) else {
        return String::new();
    };
    tokenize(suffix, cursor, &mut tokens);

    let last = tokens[key_last];
    let last_text = &document[last.start..last.end];
    // Whitespace typed after the last token must follow the occurrence too.
    let trailing_whitespace = &document[last.end..cursor];
    // A word right at the cursor may be half typed: it matches longer words.
    let partial = trailing_whitespace.is_empty() && last.word;

    let token_text = |token: Token| &document[token.start..token.end];
    let candidates = (0..key_last).rev().chain(key_last + 1..tokens.len());
    let mut best: Option<(usize, String)> = None;
    for candidate_index in candidates {
        let candidate = tokens[candidate_index];
        let candidate_text = token_text(candidate);
        let continuation_start = if partial {
            if !candidate_text.starts_with(last_text) {
                continue;
            }
            candidate.start + last_text.len()
        } else {
            if candidate_text != last_text
                || !document[candidate.end..].starts_with(trailing_whitespace)
            {
                continue;
            }
            candidate.end + trailing_whitespace.len()
        };

        let mut matched_tokens = 1;
        let mut matched_chars = last_text.chars().count();
        while matched_tokens < MAX_MATCH_TOKENS
            && matched_tokens <= candidate_index
            && matched_tokens <= key_last
        {
            let earlier_candidate = tokens[candidate_index - matched_tokens];
            let earlier_key = tokens[key_last - matched_tokens];
            if token_text(earlier_candidate) != token_text(earlier_key) {
                break;
            }
            matched_chars += token_text(earlier_key).chars().count();
            matched_tokens += 1;
        }
        if matched_chars < MIN_MATCH_CHARS {
            continue;
        }
        if best
            .as_ref()
            .is_some_and(|(best_tokens, _)| *best_tokens >= matched_tokens)
        {
            continue;
        }
        // An occurrence before the cursor may not lend text from the line being typed.
        let end_limit = if candidate.start < cursor {
            cursor
        } else {
            document.len()
        };
        let continuation = &document[continuation_start..end_limit];
        let suggestion = trim_suggestion(continuation, stop, max_chars);
        // Nothing to add, or exactly what already follows the cursor.
        if suggestion.trim().is_empty() || suffix.starts_with(&suggestion) {
            continue;
        }
        best = Some((matched_tokens, suggestion));
    }
    best.map(|(_, suggestion)| suggestion).unwrap_or_default()
}

/// Cuts a continuation to the end of its line (or of the next line when the occurrence
/// ended its own line), the first stop sequence and the character budget.
fn trim_suggestion(continuation: &str, stop: &[String], max_chars: usize) -> String {
    let mut end = continuation.find('\n').unwrap_or(continuation.len());
    if continuation[..end].trim().is_empty() && end < continuation.len() {
        let next_line_start = end + 1;
        end = continuation[next_line_start..]
            .find('\n')
            .map_or(continuation.len(), |offset| next_line_start + offset);
    }
    let mut text = &continuation[..end];
    for sequence in stop.iter().filter(|sequence| !sequence.is_empty()) {
        if let Some(position) = text.find(sequence.as_str()) {
            text = &text[..position];
        }
    }
    let text = match text.char_indices().nth(max_chars) {
        Some((byte, _)) => &text[..byte],
        None => text,
    };
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `$0` marks the cursor.
    #[track_caller]
    fn check(fixture: &str, expected: &str) {
        check_with(fixture, &[], 128, expected);
    }

    #[track_caller]
    fn check_with(fixture: &str, stop: &[&str], max_tokens: usize, expected: &str) {
        let (prefix, suffix) = fixture.split_once("$0").expect("fixture needs $0");
        let stop: Vec<String> = stop.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            complete_by_repetition(prefix, suffix, &stop, max_tokens * 4),
            expected
        );
    }

    #[test]
    fn repeats_a_definition() {
        check(
            "fn add(a: i32) -> i32 { a }\nfn ad$0",
            "d(a: i32) -> i32 { a }",
        );
    }

    #[test]
    fn nothing_matches() {
        check("fn main() {\n    xyz$0", "");
        check("$0", "");
        check("   \n  $0", "");
    }

    #[test]
    fn matches_after_the_cursor() {
        check(
            "let total = compute_$0\nlet y = compute_total(x, y);\n",
            "total(x, y);",
        );
    }

    #[test]
    fn longest_token_run_wins() {
        check("foo.bar(1)\nbaz.bar(2)\nfoo.ba$0", "r(1)");
        check("foo.bar(1)\nbaz.bar(2)\nbaz.ba$0", "r(2)");
    }

    #[test]
    fn nearest_occurrence_wins_a_tie() {
        check("x.push(1);\nx.push(2);\nx.pu$0", "sh(2);");
    }

    #[test]
    fn typed_whitespace_is_not_repeated() {
        check("let x = 1;\nlet $0", "x = 1;");
        check("let x = 1;\nlet$0", " x = 1;");
    }

    #[test]
    fn occurrence_ending_its_line_suggests_the_next_line() {
        check("fn a() {\n    run();\n}\nfn b() {$0", "\n    run();");
    }

    #[test]
    fn stop_sequences_and_budget_cut_the_suggestion() {
        check_with(
            "fn add(a: i32) -> i32 { a }\nfn ad$0",
            &["{"],
            128,
            "d(a: i32) -> i32",
        );
        check_with("fn add(a: i32) -> i32 { a }\nfn ad$0", &[], 1, "d(a:");
    }

    #[test]
    fn text_already_after_the_cursor_is_not_suggested() {
        check("call(a, b);\ncall$0(a, b);", "");
    }

    #[test]
    fn weak_matches_are_ignored() {
        check("ab = 1\na$0", "");
    }

    #[test]
    fn works_on_multibyte_text() {
        check("ré = «un»;\nré =$0", " «un»;");
    }

    #[test]
    fn huge_prefixes_are_windowed() {
        let filler = "x\n".repeat(100_000);
        let prefix = format!("fn add(a: i32) -> i32 {{ a }}\n{filler}fn ad");
        // The definition is outside the window, so nothing is found, quickly.
        assert_eq!(complete_by_repetition(&prefix, "", &[], 512), "");
        let prefix = format!("{filler}fn add(a: i32) -> i32 {{ a }}\nfn ad");
        assert_eq!(
            complete_by_repetition(&prefix, "", &[], 512),
            "d(a: i32) -> i32 { a }"
        );
    }
}
