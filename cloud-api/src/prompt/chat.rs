//! Instruction prompts for chat models (OpenAI `endpoint = "chat"`, Anthropic, Google):
//! a system message, a user message holding the file with its hole marked, and the
//! clean-up their answers need before they can be inserted at the cursor.

use tandem_shared::CompletionRequest;

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

/// Chat models wrap code in markdown fences or echo the marker despite being told not to;
/// the editor must get bare text.
pub fn clean_answer(content: &str) -> String {
    let mut text = content;
    let trimmed = text.trim();
    if let Some(rest) = trimmed.strip_prefix("```") {
        if let Some(body) = rest.strip_suffix("```") {
            // Drop the info string (`rust`) on the opening fence line.
            text = match body.split_once('\n') {
                Some((_info, code)) => code.strip_suffix('\n').unwrap_or(code),
                None => body,
            };
        }
    }
    text.replace(HOLE_MARKER, "")
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
