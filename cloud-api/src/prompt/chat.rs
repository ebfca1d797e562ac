//! Instruction prompts for chat models (OpenAI `endpoint = "chat"`, Anthropic, Google):
//! a system message, a user message holding the file with its hole marked, and the
//! clean-up their answers need before they can be inserted at the cursor.

use tandem_shared::CompletionRequest;

use crate::providers::{max_tokens, temperature, ChatPrompt, Turn};

/// Marks the cursor in the user message.
pub const HOLE_MARKER: &str = "<FILL_HERE>";

/// The system message: chat models must be told to answer with bare code.
pub const SYSTEM_PROMPT: &str = "You are a code completion engine. The user sends a \
file with one hole marked <FILL_HERE>. Reply with only the text that belongs in the hole: \
no explanations, no markdown fences, and nothing that is already before or after the hole.";

/// The user message: other files for reference when the request has context, then the
/// file with the cursor marked (after the imports and enclosing scopes its prefix lost to
/// the budget).
pub fn user_prompt(request: &CompletionRequest) -> String {
    let (other_files, current) = super::chat_context(request);
    let reference = if other_files.is_empty() {
        String::new()
    } else {
        format!("Code from other files of the project, for reference:\n\n{other_files}")
    };
    format!(
        "{reference}Fill in the hole marked {HOLE_MARKER} in this {language} file `{path}`.\n\n{current}{prefix}{HOLE_MARKER}{suffix}",
        language = request.language,
        path = request.path,
        prefix = request.prefix,
        suffix = request.suffix,
    )
}

/// The conversation asking a chat model to fill the hole at the cursor.
pub fn completion_prompt(request: &CompletionRequest) -> ChatPrompt {
    ChatPrompt {
        system: SYSTEM_PROMPT.to_owned(),
        turns: vec![Turn::user(user_prompt(request))],
        max_tokens: max_tokens(request),
        temperature: temperature(request),
        stop: request.stop.clone(),
        bare_code: true,
    }
}

/// Chat models wrap code in markdown fences or echo the marker despite being told not to;
/// the editor must get bare text.
#[cfg(test)]
fn clean_answer(content: &str) -> String {
    clean(content, true, true, &[]).text
}

/// Cleans a whole chat answer: with `bare_code`, fences and hole markers go (as in
/// [`AnswerCleaner`]); then it is cut at the first of `stops`. Whether it was cut.
pub fn finish_answer(raw: &str, bare_code: bool, stops: &[String]) -> (String, bool) {
    if !bare_code && stops.is_empty() {
        // Prose keeps its fences, and nothing else needs doing.
        return (raw.to_owned(), false);
    }
    let cleaned = clean(raw, true, bare_code, stops);
    (cleaned.text, cleaned.stopped)
}

/// Opens and closes a markdown code block.
const FENCE: &str = "```";

/// An answer cleaned so far: `text[..stable]` stays as it is whatever comes next.
#[derive(Debug, PartialEq, Eq)]
struct Cleaned {
    text: String,
    stable: usize,
    /// Cut at a stop sequence: nothing after it counts.
    stopped: bool,
}

/// Cleans `raw`: with `fence`, drops an opening fence line (and its info string) and a
/// closing fence; removes hole markers; cuts at the earliest of `stops`. When `complete`
/// is false more text may follow, and `stable` stops short of anything that text could
/// still change: a partial fence, marker or stop sequence at the end.
fn clean(raw: &str, complete: bool, fence: bool, stops: &[String]) -> Cleaned {
    let (body, stable) = if fence {
        strip_fences(raw, complete)
    } else {
        (raw, raw.len())
    };
    let stable = if complete {
        body.len()
    } else {
        stable - partial_suffix(&body[..stable], HOLE_MARKER)
    };
    let mut text = body.replace(HOLE_MARKER, "");
    let mut stable = body[..stable].replace(HOLE_MARKER, "").len();
    let earliest = stops
        .iter()
        .filter_map(|stop| Some((text.find(stop.as_str())?, stop.len())))
        .min();
    if let Some((index, length)) = earliest {
        // A stop reaching past the stable text may still change (a closing fence can
        // take a line end with it): until it is stable, only the text before it is.
        if complete || index + length <= stable {
            text.truncate(index);
            return Cleaned {
                stable: index,
                text,
                stopped: true,
            };
        }
        stable = stable.min(index);
    }
    if !complete {
        // Measured on the stable text: what follows it may still vanish (a partial
        // marker), joining the stable end to later text.
        let held = stops
            .iter()
            .map(|stop| partial_suffix(&text[..stable], stop))
            .max()
            .unwrap_or(0);
        stable -= held;
    }
    Cleaned {
        text,
        stable,
        stopped: false,
    }
}

/// The code inside a fenced answer, and how much of it is stable. An answer that does
/// not open with a fence is returned whole.
fn strip_fences(raw: &str, complete: bool) -> (&str, usize) {
    let opened = raw.trim_start();
    if !opened.starts_with(FENCE) {
        // Whitespace and up to two backticks may still become an opening fence.
        let stable = if !complete && FENCE.starts_with(opened) {
            0
        } else {
            raw.len()
        };
        return (raw, stable);
    }
    let Some((_info, code)) = opened.split_once('\n') else {
        // Only the fence line so far (or only a fence line at all).
        return ("", 0);
    };
    let trimmed = code.trim_end();
    if complete {
        let code = match trimmed.strip_suffix(FENCE) {
            Some(inner) => strip_line_end(inner),
            None => code,
        };
        return (code, code.len());
    }
    // Hold back what could still turn out to be the closing fence: trailing whitespace,
    // up to three backticks and the line end before them.
    let ticks = trimmed.len() - trimmed.trim_end_matches('`').len();
    let stable = strip_line_end(&trimmed[..trimmed.len() - ticks.min(FENCE.len())]).len();
    (code, stable)
}

/// `text` without one trailing `\n` or `\r\n`.
fn strip_line_end(text: &str) -> &str {
    text.strip_suffix('\n')
        .map(|text| text.strip_suffix('\r').unwrap_or(text))
        .unwrap_or(text)
}

/// Length of the longest end of `text` that is a proper start of `pattern`: text that
/// the next piece could complete into `pattern`.
fn partial_suffix(text: &str, pattern: &str) -> usize {
    (1..pattern.len())
        .rev()
        .find(|&length| pattern.is_char_boundary(length) && text.ends_with(&pattern[..length]))
        .unwrap_or(0)
}

/// Cleans an answer as it streams in, handing out only text the rest of the answer cannot
/// change, so that the pieces joined are exactly what [`clean_answer`] (plus the stop
/// sequences) makes of the whole.
#[derive(Debug, Clone, Default)]
pub struct AnswerCleaner {
    fence: bool,
    stops: Vec<String>,
    raw: String,
    /// Bytes of the cleaned text handed out so far.
    emitted: usize,
    stopped: bool,
}

impl AnswerCleaner {
    /// A cleaner for chat answers (`fence`: strip markdown fences) that also cuts at
    /// `stops`, stop sequences the provider could not apply itself.
    pub fn new(fence: bool, stops: Vec<String>) -> AnswerCleaner {
        AnswerCleaner {
            fence,
            stops,
            ..AnswerCleaner::default()
        }
    }

    /// Adds the next piece of the answer; returns the text now safe to hand out.
    pub fn push(&mut self, piece: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.raw.push_str(piece);
        self.emit(false)
    }

    /// The answer is complete: returns the rest of the text.
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        self.emit(true)
    }

    /// Whether the answer reached a stop sequence: what follows is dropped.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    fn emit(&mut self, complete: bool) -> String {
        let cleaned = clean(&self.raw, complete, self.fence, &self.stops);
        self.stopped = cleaned.stopped;
        let end = if complete || cleaned.stopped {
            cleaned.text.len()
        } else {
            cleaned.stable
        };
        let text = cleaned
            .text
            .get(self.emitted..end)
            .unwrap_or_default()
            .to_owned();
        self.emitted = self.emitted.max(end);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_lose_fences_and_markers() {
        assert_eq!(clean_answer("```rust\nlet x = 1;\n```"), "let x = 1;");
        assert_eq!(clean_answer("```\nx\n```\n"), "x");
        assert_eq!(clean_answer("a + b"), "a + b");
        assert_eq!(clean_answer(" b<FILL_HERE>"), " b");
        // Fences inside the code are kept.
        assert_eq!(clean_answer("x ``` y"), "x ``` y");
        // An answer cut short by max_tokens loses its opening fence all the same.
        assert_eq!(clean_answer("```py\nx = 1\n"), "x = 1\n");
        assert_eq!(clean_answer("```\r\nx\r\n```"), "x");
        assert_eq!(clean_answer("```rust"), "");
    }

    /// The pieces the cleaner hands out when `answer` arrives split at `cuts`.
    fn streamed(answer: &str, cuts: &[usize], stops: &[&str]) -> (Vec<String>, bool) {
        let mut cleaner =
            AnswerCleaner::new(true, stops.iter().map(|stop| (*stop).to_owned()).collect());
        let mut pieces = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain([&answer.len()]) {
            let cut = cut.clamp(start, answer.len());
            if answer.is_char_boundary(cut) {
                pieces.push(cleaner.push(&answer[start..cut]));
                start = cut;
            }
        }
        pieces.push(cleaner.finish());
        (pieces, cleaner.stopped())
    }

    #[test]
    fn streamed_answers_hold_back_only_what_may_change() {
        let (pieces, stopped) =
            streamed("```rust\nlet x = 1;\nlet y = 2;\n```", &[3, 9, 20, 30], &[]);
        assert_eq!(pieces.concat(), "let x = 1;\nlet y = 2;");
        assert!(!stopped);
        // The fence line is held until it ends; code is handed out as it comes, except a
        // line end that could precede the closing fence.
        assert_eq!(pieces[..4], ["", "l", "et x = 1;\nl", "et y = 2;"]);
        let (pieces, _) = streamed("a <FILL_HERE>b", &[5, 9], &[]);
        assert_eq!(pieces, ["a ", "", "b", ""]);
        let (pieces, stopped) = streamed("x = 1\n\ny = 2", &[6, 7, 9], &["\n\n"]);
        assert_eq!(pieces.concat(), "x = 1");
        assert!(stopped);
        assert_eq!(pieces[0], "x = 1");
    }

    proptest::proptest! {
        /// However an answer is split, the pieces joined are what the whole answer
        /// cleans to, and the cleaner never takes back what it handed out.
        #[test]
        fn streaming_matches_cleaning_the_whole(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "```", "`", "``", "rust", "\n", "\r\n", " ", "x", "é", "<FILL_", "HERE>",
                    "<FILL_HERE>", "\n\n", "END",
                ]),
                0..14,
            ),
            cuts in proptest::collection::vec(0usize..80, 0..8),
        ) {
            let answer: String = parts.concat();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let stops = ["\n\n", "END"];
            let (pieces, stopped) = streamed(&answer, &cuts, &stops);
            let whole = clean(&answer, true, true, &stops.map(str::to_owned));
            proptest::prop_assert_eq!(pieces.concat(), whole.text);
            proptest::prop_assert_eq!(stopped, whole.stopped);
        }
    }

    #[test]
    fn user_prompt_contains_prefix_marker_and_suffix() {
        let request: CompletionRequest = serde_json::from_value(serde_json::json!({
            "language": "rust",
            "path": "src/lib.rs",
            "prefix": "fn a() {",
            "suffix": "}",
        }))
        .unwrap();
        assert_eq!(
            user_prompt(&request),
            "Fill in the hole marked <FILL_HERE> in this rust file `src/lib.rs`.\n\nfn a() {<FILL_HERE>}"
        );
    }
}
