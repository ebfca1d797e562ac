//! Prompts for the tasks of `POST /v1/chat` (explain, fix, document, generate tests,
//! simplify, ask), built here from the structured request so they can improve without a
//! client release.
//!
//! The user message shows other files for reference, then the document with the code
//! the task is about between `<selection>` tags, then the editor's diagnostics, then
//! the instruction. Code answers replace exactly the selection (tests aside), so the
//! instruction says so and the answer's fences are removed; a refused answer comes back
//! as an assistant turn followed by what was wrong with it.

use tandem_shared::chat::{doc_convention, test_convention, test_placement, TestPlacement};
use tandem_shared::{ChatRequest, ChatTask};

use super::parts;
use crate::providers::{ChatPrompt, Turn};

/// Sampling temperature when the request sets none.
pub const DEFAULT_TEMPERATURE: f32 = 0.2;

/// Opens the code the task is about.
pub const SELECTION_START: &str = "<selection>";
/// Closes it.
pub const SELECTION_END: &str = "</selection>";

const PROSE_SYSTEM_PROMPT: &str = "You are Tandem, an assistant for programmers, answering \
inside their editor. You are accurate and concise, you say so when the code alone does not \
tell, and you format answers as Markdown.";

const CODE_SYSTEM_PROMPT: &str = "You are Tandem, a coding assistant that edits code in the \
user's editor. Your answer is inserted into the file exactly as you write it, so it contains \
only code: no explanations, no markdown fences.";

/// What every answer that replaces the selection must look like.
const REPLACEMENT_RULES: &str = "Reply with only the code that replaces the selection, \
from its first character to its last: no explanations, no markdown fences, no selection \
tags, and none of the code before or after the selection. Keep the selection's indentation \
and the file's style.";

/// Generated-token budget for `task` when the request sets none: tests are long, the
/// rest fit in a page.
pub fn default_max_tokens(task: ChatTask) -> u32 {
    match task {
        ChatTask::GenerateTests => 2048,
        ChatTask::Explain
        | ChatTask::Fix
        | ChatTask::Document
        | ChatTask::Simplify
        | ChatTask::Ask => 1024,
    }
}

/// The conversation for `request`.
pub fn build(request: &ChatRequest) -> ChatPrompt {
    let task = request.task;
    let system = if task.answers_with_code() {
        CODE_SYSTEM_PROMPT
    } else {
        PROSE_SYSTEM_PROMPT
    };
    let mut turns = vec![Turn::user(user_message(request))];
    if let Some(retry) = &request.retry {
        turns.push(Turn::assistant(retry.answer.clone()));
        turns.push(Turn::user(format!(
            "That answer cannot be used: {}. Answer again with this corrected, in the same \
             form as asked before.",
            retry.problem.trim_end_matches('.')
        )));
    }
    ChatPrompt {
        system: system.to_owned(),
        turns,
        max_tokens: request
            .max_tokens
            .unwrap_or_else(|| default_max_tokens(task)),
        temperature: request.temperature.unwrap_or(DEFAULT_TEMPERATURE),
        stop: Vec::new(),
        bare_code: task.answers_with_code(),
    }
}

fn user_message(request: &ChatRequest) -> String {
    let language = request.language.as_str();
    let parts = parts::collect_around(
        &request.context,
        &request.prefix,
        &request.suffix,
        &request.path,
    );
    let mut out = String::new();
    if !parts.files.is_empty() {
        out.push_str("Code from other files of the project, for reference:\n\n");
        for block in &parts.files {
            out.push_str(&format!("`{}`:\n", block.path));
            out.push_str(&fenced(language, block.text));
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "The file `{path}` ({language}), with the code this is about between {SELECTION_START} \
         and {SELECTION_END} (it starts on line {line}):\n\n",
        path = parts.path,
        line = request.start_line,
    ));
    let document = format!(
        "{current}{prefix}{SELECTION_START}{code}{SELECTION_END}{suffix}",
        current = parts.current,
        prefix = request.prefix,
        code = request.code,
        suffix = request.suffix,
    );
    out.push_str(&fenced(language, &document));
    if !request.diagnostics.is_empty() {
        out.push_str("\nProblems the editor reports:\n");
        for diagnostic in &request.diagnostics {
            out.push_str(&format!("- {}\n", describe_diagnostic(diagnostic)));
        }
    }
    out.push('\n');
    out.push_str(&instruction(request));
    out
}

fn describe_diagnostic(diagnostic: &tandem_shared::ChatDiagnostic) -> String {
    let lines = if diagnostic.end_line > diagnostic.line {
        format!("lines {}-{}", diagnostic.line, diagnostic.end_line)
    } else {
        format!("line {}", diagnostic.line)
    };
    let origin: Vec<&str> = [
        diagnostic.severity.as_deref(),
        diagnostic.source.as_deref(),
        diagnostic.code.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let origin = if origin.is_empty() {
        String::new()
    } else {
        format!(" ({})", origin.join(" "))
    };
    format!("{lines}{origin}: {}", diagnostic.message.trim())
}

fn instruction(request: &ChatRequest) -> String {
    let language = request.language.as_str();
    let question = request
        .question
        .as_deref()
        .map(str::trim)
        .filter(|question| !question.is_empty());
    match request.task {
        ChatTask::Explain => {
            let mut text = "Explain the selected code to a developer reading it for the first \
                time: what it is for, how it works where that is not obvious, and anything \
                surprising (edge cases, error handling, performance, concurrency). Use the \
                surrounding code and the other files only as far as they help. Be concise, \
                and do not repeat the code back in full."
                .to_owned();
            if let Some(question) = question {
                text.push_str(&format!("\n\nIn particular: {question}"));
            }
            text
        }
        ChatTask::Ask => format!(
            "Answer this question about the selected code: {}",
            question.unwrap_or("what does it do?")
        ),
        ChatTask::Fix => format!(
            "Fix the problems listed above in the selected code, changing only what the fix \
             needs. {REPLACEMENT_RULES}"
        ),
        ChatTask::Document => format!(
            "Add documentation to the selected code as {}. Say what it does, its parameters \
             and result, and the errors or panics it can raise, without stating the obvious. \
             Do not change the code itself. {REPLACEMENT_RULES}",
            doc_convention(language).unwrap_or("the language's usual documentation comments")
        ),
        ChatTask::Simplify => format!(
            "Simplify the selected code: make it shorter and clearer without changing its \
             behaviour (same results, same errors, same side effects), and keep every name \
             other code may use. {REPLACEMENT_RULES}"
        ),
        ChatTask::GenerateTests => {
            let convention = test_convention(language).unwrap_or("the language's usual test style");
            let form = match test_placement(language, &request.path) {
                Some(TestPlacement::EndOfFile) => {
                    "Reply with only the test code, which is appended to the end of this file \
                     (if the file already has a module of that name, name yours differently)"
                        .to_owned()
                }
                Some(TestPlacement::File(path)) => format!(
                    "Reply with only the complete content of the test file `{path}`, imports \
                     included"
                ),
                None => "Reply with only the test code".to_owned(),
            };
            format!(
                "Write unit tests for the selected code as {convention}, covering its normal \
                 cases, edge cases and errors. {form}: no explanations, no markdown fences."
            )
        }
    }
}

/// `text` in a fenced code block whose fence is longer than any run of backticks in it,
/// so code holding fences cannot close the block early (CommonMark).
fn fenced(language: &str, text: &str) -> String {
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    let text = text.strip_suffix('\n').unwrap_or(text);
    format!("{fence}{language}\n{text}\n{fence}\n")
}

#[cfg(test)]
mod tests {
    use tandem_shared::chat::RetryNote;
    use tandem_shared::{ChatDiagnostic, CodeContext, Snippet};

    use super::*;
    use crate::providers::Role;

    fn request(task: ChatTask) -> ChatRequest {
        let mut request =
            ChatRequest::new(task, "rust", "src/math.rs", "fn add(a: i32) -> i32 { a }");
        request.start_line = 3;
        request.prefix = "use std::fmt;\n\n".into();
        request.suffix = "\n\nfn main() {}\n".into();
        request
    }

    #[test]
    fn the_selection_is_marked_inside_the_whole_document() {
        let prompt = build(&request(ChatTask::Explain));
        assert_eq!(prompt.turns.len(), 1);
        let user = &prompt.turns[0].content;
        assert!(
            user.contains(
                "```rust\nuse std::fmt;\n\n<selection>fn add(a: i32) -> i32 { a }</selection>\n\nfn main() {}\n```"
            ),
            "{user}"
        );
        assert!(user.contains("The file `src/math.rs` (rust)"), "{user}");
        assert!(user.contains("starts on line 3"), "{user}");
        assert!(
            user.ends_with("do not repeat the code back in full."),
            "{user}"
        );
        assert!(!prompt.bare_code);
        assert_eq!(prompt.system, PROSE_SYSTEM_PROMPT);
        assert_eq!(prompt.max_tokens, 1024);
    }

    #[test]
    fn code_tasks_ask_for_bare_replacements() {
        for task in [ChatTask::Fix, ChatTask::Document, ChatTask::Simplify] {
            let prompt = build(&request(task));
            assert!(prompt.bare_code, "{task}");
            assert_eq!(prompt.system, CODE_SYSTEM_PROMPT);
            assert!(
                prompt.turns[0].content.ends_with(REPLACEMENT_RULES),
                "{task}"
            );
        }
        let document = build(&request(ChatTask::Document));
        assert!(document.turns[0]
            .content
            .contains("`///` lines directly above the item"));
    }

    #[test]
    fn fixes_list_the_diagnostics() {
        let mut request = request(ChatTask::Fix);
        request.diagnostics = vec![
            ChatDiagnostic {
                line: 3,
                end_line: 3,
                severity: Some("error".into()),
                message: "mismatched types\n".into(),
                source: Some("rustc".into()),
                code: Some("E0308".into()),
            },
            ChatDiagnostic {
                line: 4,
                end_line: 6,
                severity: None,
                message: "unused".into(),
                source: None,
                code: None,
            },
        ];
        let user = &build(&request).turns[0].content;
        assert!(
            user.contains(
                "Problems the editor reports:\n- line 3 (error rustc E0308): mismatched types\n- lines 4-6: unused\n"
            ),
            "{user}"
        );
    }

    #[test]
    fn tests_follow_the_language_convention_and_placement() {
        let rust = build(&request(ChatTask::GenerateTests));
        let user = &rust.turns[0].content;
        assert!(user.contains("#[cfg(test)] mod tests"), "{user}");
        assert!(user.contains("appended to the end of this file"), "{user}");
        assert_eq!(rust.max_tokens, 2048);
        let mut python = ChatRequest::new(
            ChatTask::GenerateTests,
            "python",
            "pkg/util.py",
            "def f(): pass",
        );
        python.max_tokens = Some(300);
        let prompt = build(&python);
        assert!(prompt.turns[0]
            .content
            .contains("complete content of the test file `pkg/test_util.py`"));
        assert_eq!(prompt.max_tokens, 300);
        let c = build(&ChatRequest::new(
            ChatTask::GenerateTests,
            "c",
            "main.c",
            "int f(void);",
        ));
        assert!(c.turns[0]
            .content
            .contains("the language's usual test style"));
    }

    #[test]
    fn a_refused_answer_comes_back_with_its_problem() {
        let mut request = request(ChatTask::Simplify);
        request.retry = Some(RetryNote {
            answer: "fn add(a: i32 -> i32 { a }".into(),
            problem: "line 3: syntax error near `->`.".into(),
        });
        let prompt = build(&request);
        let roles: Vec<Role> = prompt.turns.iter().map(|turn| turn.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
        assert_eq!(prompt.turns[1].content, "fn add(a: i32 -> i32 { a }");
        assert!(prompt.turns[2].content.starts_with(
            "That answer cannot be used: line 3: syntax error near `->`. Answer again"
        ));
    }

    #[test]
    fn other_files_come_first_and_the_question_last() {
        let mut request = request(ChatTask::Ask);
        request.question = Some("  Why i32?  ".into());
        request.context = CodeContext {
            definitions: vec![Snippet {
                path: "src/num.rs".into(),
                text: "pub type Num = i32;".into(),
            }],
            ..CodeContext::default()
        };
        let user = &build(&request).turns[0].content;
        assert!(user.starts_with(
            "Code from other files of the project, for reference:\n\n`src/num.rs`:\n```rust\npub type Num = i32;\n```\n"
        ), "{user}");
        assert!(
            user.ends_with("Answer this question about the selected code: Why i32?"),
            "{user}"
        );
    }

    #[test]
    fn fences_outgrow_the_code_they_hold() {
        assert_eq!(fenced("md", "a\n"), "```md\na\n```\n");
        assert_eq!(fenced("md", "```x```"), "````md\n```x```\n````\n");
    }
}
