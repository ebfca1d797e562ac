//! The token estimate both sides use for budgets and usage, so a request the language
//! server cut to fit a budget is measured the same way by the cloud.
//!
//! Real tokenizers differ per model; this approximates byte-pair encodings of code
//! closely enough for budgets and never needs a vocabulary: a run of letters and digits
//! costs one token per four characters (rounded up), every other non-space character
//! costs one, a line break costs one, and a run of spaces or tabs costs one per four.

/// Estimated number of tokens in `text`.
pub fn estimate(text: &str) -> u32 {
    let mut tokens: u64 = 0;
    let mut word = 0u64;
    let mut blank = 0u64;
    let flush = |run: &mut u64, tokens: &mut u64| {
        *tokens += run.div_ceil(4);
        *run = 0;
    };
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            flush(&mut blank, &mut tokens);
            word += 1;
        } else if c == ' ' || c == '\t' {
            flush(&mut word, &mut tokens);
            blank += 1;
        } else {
            flush(&mut word, &mut tokens);
            flush(&mut blank, &mut tokens);
            if c != '\r' {
                tokens += 1;
            }
        }
    }
    flush(&mut word, &mut tokens);
    flush(&mut blank, &mut tokens);
    u32::try_from(tokens).unwrap_or(u32::MAX)
}

/// The [`estimate`] of every text, summed (saturating).
pub fn estimate_all<'a>(texts: impl IntoIterator<Item = &'a str>) -> u32 {
    texts
        .into_iter()
        .fold(0u32, |total, text| total.saturating_add(estimate(text)))
}

#[cfg(test)]
mod tests {
    use super::estimate;

    #[test]
    fn counts_words_symbols_and_space() {
        assert_eq!(estimate(""), 0);
        assert_eq!(estimate("fn"), 1);
        assert_eq!(estimate("identifier"), 3);
        assert_eq!(estimate("a + b"), 5);
        // indent, `return` (6 chars: 2), space, `x`, `;`, line break; `\r` is free.
        assert_eq!(estimate("    return x;\r\n"), 7);
        assert_eq!(estimate("日本語"), 1);
    }

    #[test]
    fn is_additive_across_line_breaks() {
        // Budgets are filled line by line; splitting after a newline must not change the sum.
        let text = "fn main() {\n    let total = a + b;\n}\n";
        let (head, tail) = text.split_at(12);
        assert_eq!(estimate(text), estimate(head) + estimate(tail));
    }
}
