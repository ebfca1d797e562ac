//! Fitting the text around the cursor into a token budget, by the estimate the cloud
//! checks with ([`tandem_shared::tokens::estimate`]).
//!
//! Whole lines go first, from the far end of the prefix, then from the far end of the
//! suffix: the lines nearest the cursor matter most, and text before the cursor more than
//! text after it. The estimate is additive across line breaks, so each line is measured
//! once and the fit is linear in the text.

use tandem_shared::tokens::estimate;

use crate::syntax::{text_boundary_after, text_boundary_before};

/// How much of `prefix` and `suffix` to keep so that both fit `max_tokens`: the byte
/// offset in `prefix` where the kept prefix starts and the byte length of the kept
/// suffix.
///
/// Cuts fall on line boundaries; only when the cursor's own line is over budget on its
/// own is it cut inside the line, and then between tokens, never inside one (the
/// identifier or operator at the cut is dropped whole).
pub(crate) fn fit(prefix: &str, suffix: &str, max_tokens: u32) -> (usize, usize) {
    // Prefix lines from the far end: each ends with its `\n`, the cursor line does not.
    let prefix_lines: Vec<(usize, u32)> = prefix
        .split_inclusive('\n')
        .scan(0usize, |start, line| {
            let at = *start;
            *start += line.len();
            Some((at, estimate(line)))
        })
        .collect();
    let suffix_lines: Vec<(usize, u32)> = suffix
        .split_inclusive('\n')
        .scan(0usize, |end, line| {
            *end += line.len();
            Some((*end, estimate(line)))
        })
        .collect();
    let mut total: u32 = prefix_lines
        .iter()
        .chain(&suffix_lines)
        .fold(0u32, |sum, (_, tokens)| sum.saturating_add(*tokens));

    // Whole prefix lines before the cursor's line, farthest first.
    let mut prefix_start = 0;
    let mut first_kept = 0;
    while total > max_tokens && first_kept + 1 < prefix_lines.len() {
        total -= prefix_lines[first_kept].1;
        first_kept += 1;
        prefix_start = prefix_lines[first_kept].0;
    }
    // Whole suffix lines after the cursor's line, farthest first.
    let mut kept_suffix_lines = suffix_lines.len();
    while total > max_tokens && kept_suffix_lines > 1 {
        kept_suffix_lines -= 1;
        total -= suffix_lines[kept_suffix_lines].1;
    }
    let mut suffix_end = match kept_suffix_lines {
        0 => 0,
        kept => suffix_lines[kept - 1].0,
    };
    if total <= max_tokens {
        return (prefix_start, suffix_end);
    }

    // The cursor's line alone is over budget: keep the text nearest the cursor, split
    // between both sides in proportion to the budget, and cut between tokens.
    let cursor_line = &prefix[prefix_start..];
    let rest_of_line = &suffix[..suffix_end];
    let prefix_budget = max_tokens.div_ceil(2);
    let start_in_line = keep_end_within(cursor_line, prefix_budget);
    prefix_start += start_in_line;
    let prefix_tokens = estimate(&prefix[prefix_start..]);
    suffix_end = keep_start_within(rest_of_line, max_tokens.saturating_sub(prefix_tokens));
    (prefix_start, suffix_end)
}

/// The start of the longest end of `text` that fits `budget`, at a token boundary.
fn keep_end_within(text: &str, budget: u32) -> usize {
    // Binary search on char boundaries: the estimate only grows as the start moves left.
    let boundaries: Vec<usize> = text.char_indices().map(|(index, _)| index).collect();
    let (mut low, mut high) = (0, boundaries.len());
    while low < high {
        let middle = (low + high) / 2;
        if estimate(&text[boundaries[middle]..]) <= budget {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let start = boundaries.get(low).copied().unwrap_or(text.len());
    // Moving to the end of the token the cut falls in only shortens the text.
    text_boundary_after(text, start)
}

/// The end of the longest start of `text` that fits `budget`, at a token boundary.
fn keep_start_within(text: &str, budget: u32) -> usize {
    let mut ends: Vec<usize> = text.char_indices().map(|(index, _)| index).collect();
    ends.push(text.len());
    let (mut low, mut high) = (0, ends.len() - 1);
    while low < high {
        let middle = (low + high).div_ceil(2);
        if estimate(&text[..ends[middle]]) <= budget {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    text_boundary_before(text, ends[low])
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[track_caller]
    fn check(prefix: &str, suffix: &str, max_tokens: u32, expected: &str) {
        let (start, end) = fit(prefix, suffix, max_tokens);
        let (prefix, suffix) = (&prefix[start..], &suffix[..end]);
        assert!(estimate(prefix) + estimate(suffix) <= max_tokens);
        assert_eq!(format!("{prefix}$0{suffix}"), expected);
    }

    #[test]
    fn fitting_context_is_untouched() {
        check(
            "let a = 1;\nlet b",
            " = 2;\n",
            100,
            "let a = 1;\nlet b$0 = 2;\n",
        );
        check("", "", 0, "$0");
    }

    #[test]
    fn far_prefix_lines_go_first_then_far_suffix_lines() {
        // Each `xxxx;\n` line is 3 tokens; `cc` is 1, `dd;\n` 3.
        let (prefix, suffix) = ("aaaa;\nbbbb;\ncc", "dd;\neeee;\n");
        check(prefix, suffix, 10, "bbbb;\ncc$0dd;\neeee;\n");
        check(prefix, suffix, 9, "cc$0dd;\neeee;\n");
        check(prefix, suffix, 4, "cc$0dd;\n");
    }

    #[test]
    fn a_single_huge_line_is_cut_between_tokens_nearest_the_cursor() {
        // Words of 8 chars are 2 tokens each, spaces 1.
        let prefix = "alphabet ".repeat(50);
        let suffix = " bravoman".repeat(50);
        let (start, end) = fit(&prefix, &suffix, 20);
        let (kept_prefix, kept_suffix) = (&prefix[start..], &suffix[..end]);
        assert!(estimate(kept_prefix) + estimate(kept_suffix) <= 20);
        assert!(kept_prefix.starts_with("alphabet") || kept_prefix.starts_with(' '));
        assert!(kept_suffix.ends_with("bravoman") || kept_suffix.ends_with(' '));
        assert!(estimate(kept_prefix) >= 8, "{kept_prefix:?}");
        assert!(estimate(kept_suffix) >= 6, "{kept_suffix:?}");
    }

    proptest! {
        #[test]
        fn always_within_budget_and_at_char_boundaries(
            prefix in "[a-z_ (){}\n\t😀]{0,80}",
            suffix in "[a-z_ (){}\n\t中]{0,80}",
            max_tokens in 0u32..60,
        ) {
            let (start, end) = fit(&prefix, &suffix, max_tokens);
            prop_assert!(prefix.is_char_boundary(start) && suffix.is_char_boundary(end));
            prop_assert!(estimate(&prefix[start..]) + estimate(&suffix[..end]) <= max_tokens);
            if estimate(&prefix) + estimate(&suffix) <= max_tokens {
                prop_assert_eq!((start, end), (0, suffix.len()));
            }
        }
    }
}
