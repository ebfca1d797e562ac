//! From a model's answer to the edit the user gets: the answer fitted to the code it
//! replaces (indentation, final line break), its secrets put back, turned into the
//! fewest text edits, and refused when it would break the syntax.

use std::ops::Range;

use super::diff::{self, Replacement};
use super::validate::{self, SyntaxProblem};
use crate::privacy::UnmaskError;
use crate::syntax::Language;

/// Why an answer cannot become an edit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EditError {
    #[error("{0}")]
    Secrets(#[from] UnmaskError),
    #[error("the suggested change would introduce a syntax error ({0})")]
    Syntax(SyntaxProblem),
    #[error("the model gave no code")]
    Empty,
    #[error("the suggested code is the same as the current code")]
    Unchanged,
}

/// The edits replacing `range` of `document` with `answer` (already unmasked). With a
/// language, the result must parse no worse than the document does now.
pub(crate) fn replace_region(
    document: &str,
    range: Range<usize>,
    answer: &str,
    language: Option<Language>,
) -> Result<Vec<Replacement>, EditError> {
    if answer.trim().is_empty() {
        return Err(EditError::Empty);
    }
    let original = &document[range.clone()];
    let replacement = fit_to_region(original, answer);
    let edits: Vec<Replacement> = diff::minimal_edits(original, &replacement)
        .into_iter()
        .map(|edit| Replacement {
            range: edit.range.start + range.start..edit.range.end + range.start,
            text: edit.text,
        })
        .collect();
    if edits.is_empty() {
        return Err(EditError::Unchanged);
    }
    check(document, &edits, language)?;
    Ok(edits)
}

/// The edit appending `answer` to `document` after one blank line (tests appended to the
/// file they test).
pub(crate) fn append(
    document: &str,
    answer: &str,
    language: Option<Language>,
) -> Result<Vec<Replacement>, EditError> {
    let answer = answer.trim_matches('\n');
    if answer.trim().is_empty() {
        return Err(EditError::Empty);
    }
    let separator = if document.is_empty() || document.ends_with("\n\n") {
        ""
    } else if document.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    let edits = vec![Replacement {
        range: document.len()..document.len(),
        text: format!("{separator}{answer}\n"),
    }];
    check(document, &edits, language)?;
    Ok(edits)
}

fn check(
    document: &str,
    edits: &[Replacement],
    language: Option<Language>,
) -> Result<(), EditError> {
    let Some(language) = language else {
        return Ok(());
    };
    let edited = diff::apply(document, edits);
    validate::check_edit(language, document, &edited).map_err(EditError::Syntax)
}

/// `answer` shaped like `original`: models drop the first line's indentation of code
/// cut from inside a block, and the final line break; both are put back so the edit is
/// only what the model changed.
pub(crate) fn fit_to_region(original: &str, answer: &str) -> String {
    let answer = answer.trim_start_matches(['\n', '\r']);
    let indent: &str = {
        let first = original.lines().next().unwrap_or_default();
        &first[..first.len() - first.trim_start().len()]
    };
    let answer_indented = answer
        .lines()
        .find(|line| !line.trim().is_empty())
        .is_some_and(|line| line.starts_with([' ', '\t']));
    let mut fitted = if !indent.is_empty() && !answer_indented {
        let mut out = String::with_capacity(answer.len() + indent.len() * 8);
        for line in answer.split_inclusive('\n') {
            if !line.trim().is_empty() {
                out.push_str(indent);
            }
            out.push_str(line);
        }
        out
    } else {
        answer.to_owned()
    };
    let line_break = if original.ends_with("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    if original.ends_with('\n') {
        if !fitted.ends_with('\n') {
            fitted.push_str(line_break);
        }
    } else {
        while fitted.ends_with('\n') {
            fitted.pop();
            if fitted.ends_with('\r') {
                fitted.pop();
            }
        }
    }
    fitted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_character_fix_is_a_one_character_edit() {
        let document = "fn main() {}\n\nfn add(a: i32, b: i32) -> i32 {\n    a - b\n}\n";
        let start = document.find("fn add").unwrap();
        let end = document.len() - 1;
        let answer = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}";
        let edits = replace_region(document, start..end, answer, Some(Language::Rust)).unwrap();
        assert_eq!(edits.len(), 1, "{edits:?}");
        assert_eq!(&document[edits[0].range.clone()], "-");
        assert_eq!(edits[0].text, "+");
    }

    #[test]
    fn indentation_and_line_breaks_the_model_dropped_are_put_back() {
        let original = "    fn get(&self) -> u8 {\n        1\n    }\n";
        let answer = "/// Returns one.\nfn get(&self) -> u8 {\n    1\n}";
        assert_eq!(
            fit_to_region(original, answer),
            "    /// Returns one.\n    fn get(&self) -> u8 {\n        1\n    }\n"
        );
        // An answer that kept its indentation is left alone.
        assert_eq!(fit_to_region("  x\n", "  y"), "  y\n");
        assert_eq!(fit_to_region("x", "y\n\n"), "y");
    }

    #[test]
    fn an_edit_that_breaks_the_syntax_is_refused() {
        let document = "fn a() -> u8 {\n    1\n}\n";
        let error = replace_region(
            document,
            0..document.len(),
            "fn a() -> u8 {\n    1\n",
            Some(Language::Rust),
        )
        .unwrap_err();
        assert!(matches!(error, EditError::Syntax(_)), "{error:?}");
        assert!(error
            .to_string()
            .starts_with("the suggested change would introduce a syntax error ("));
        // Without a grammar there is nothing to check against.
        assert!(replace_region(document, 0..document.len(), "fn a( {", None).is_ok());
    }

    #[test]
    fn empty_and_unchanged_answers_are_refused() {
        let document = "x = 1\n";
        assert_eq!(
            replace_region(document, 0..5, " \n", None),
            Err(EditError::Empty)
        );
        assert_eq!(
            replace_region(document, 0..5, "x = 1", None),
            Err(EditError::Unchanged)
        );
    }

    #[test]
    fn tests_are_appended_after_a_blank_line() {
        let edits = append(
            "fn a() {}\n",
            "\n#[cfg(test)]\nmod tests {}\n\n",
            Some(Language::Rust),
        )
        .unwrap();
        assert_eq!(edits[0].range, 10..10);
        assert_eq!(edits[0].text, "\n#[cfg(test)]\nmod tests {}\n");
        assert_eq!(
            append("", "def test_a(): pass", None).unwrap()[0].text,
            "def test_a(): pass\n"
        );
        assert!(append("fn a() {}\n", "mod tests {", Some(Language::Rust)).is_err());
    }
}
