//! `POST /v1/chat`: explanations, code actions and questions about code.
//!
//! The language server sends the structured context (the code the task is about, the text
//! around it, definitions, diagnostics) and the cloud builds the prompt, so prompts can
//! improve without a client release. With `"stream": true` the answer comes as the
//! server-sent events of [`crate::stream`], the final `done` event carrying a
//! [`ChatResponse`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::api::{CodeContext, Usage};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChatTask {
    /// Explain the code, in Markdown.
    Explain,
    /// Fix the problems the diagnostics name; the answer replaces the code.
    Fix,
    /// Add a doc comment in the language's convention; the answer replaces the code.
    Document,
    /// Write tests in the language's convention ([`test_placement`]); the answer is the
    /// tests' code.
    GenerateTests,
    /// Simplify the code without changing what it does; the answer replaces the code.
    Simplify,
    /// Answer `question` about the code, in Markdown.
    Ask,
}

impl ChatTask {
    pub const ALL: [ChatTask; 6] = [
        ChatTask::Explain,
        ChatTask::Fix,
        ChatTask::Document,
        ChatTask::GenerateTests,
        ChatTask::Simplify,
        ChatTask::Ask,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatTask::Explain => "explain",
            ChatTask::Fix => "fix",
            ChatTask::Document => "document",
            ChatTask::GenerateTests => "generate_tests",
            ChatTask::Simplify => "simplify",
            ChatTask::Ask => "ask",
        }
    }

    /// Whether the answer is code (to be put into a document) rather than Markdown prose.
    pub fn answers_with_code(self) -> bool {
        !matches!(self, ChatTask::Explain | ChatTask::Ask)
    }
}

impl fmt::Display for ChatTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of `POST /v1/chat`. Every text has been redacted of secrets by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatRequest {
    pub task: ChatTask,
    /// LSP language id of the document.
    pub language: String,
    /// Path of the document relative to the workspace root, `/`-separated.
    pub path: String,
    /// The code the task is about: the selection, or the function or item under the
    /// cursor. Answers of code tasks replace exactly this text (tests aside).
    pub code: String,
    /// 1-based line of the document on which `code` starts, so the prompt can number
    /// lines as the editor and the diagnostics do.
    #[serde(default = "first_line")]
    pub start_line: u32,
    /// Text of the document before `code`, cut to budget (nearest text kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Text of the document after `code`, cut to budget.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suffix: String,
    /// Enclosing scopes, imports, definitions of identifiers used, similar code.
    #[serde(default, skip_serializing_if = "CodeContext::is_empty")]
    pub context: CodeContext,
    /// Problems the editor reports in or next to `code` (required for [`ChatTask::Fix`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<ChatDiagnostic>,
    /// The user's question (required for [`ChatTask::Ask`]; optional focus for
    /// [`ChatTask::Explain`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// A previous answer the client refused and why, to be corrected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryNote>,
    /// Upper bound on generated tokens; the server's default for the task when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature; the server applies its default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Size of the whole document in bytes, for the tier's file-size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// Answer as server-sent events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

fn first_line() -> u32 {
    1
}

impl ChatRequest {
    /// A request for `task` on `code` with nothing else set.
    pub fn new(
        task: ChatTask,
        language: impl Into<String>,
        path: impl Into<String>,
        code: impl Into<String>,
    ) -> ChatRequest {
        ChatRequest {
            task,
            language: language.into(),
            path: path.into(),
            code: code.into(),
            start_line: 1,
            prefix: String::new(),
            suffix: String::new(),
            context: CodeContext::default(),
            diagnostics: Vec::new(),
            question: None,
            retry: None,
            max_tokens: None,
            temperature: None,
            file_size: None,
            stream: false,
        }
    }

    /// Estimated size of what the request asks the model to read, by the shared
    /// [`estimate`](crate::tokens::estimate): every text it carries, summed. The cloud
    /// checks the tier's context limit with it; clients cut their context to fit it.
    pub fn estimated_tokens(&self) -> u32 {
        let retry = self
            .retry
            .iter()
            .flat_map(|retry| [retry.answer.as_str(), retry.problem.as_str()]);
        crate::tokens::estimate_all(
            [
                self.code.as_str(),
                self.prefix.as_str(),
                self.suffix.as_str(),
            ]
            .into_iter()
            .chain(self.question.as_deref())
            .chain(self.context.texts())
            .chain(self.diagnostics.iter().map(|d| d.message.as_str()))
            .chain(retry),
        )
    }
}

/// A problem the editor reports, as the model is told about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatDiagnostic {
    /// 1-based first line of the problem in the document.
    pub line: u32,
    /// 1-based last line (the same as `line` for one-line problems).
    pub end_line: u32,
    /// `error`, `warning`, `information` or `hint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    pub message: String,
    /// Who reported it (`rustc`, `pyright`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The reporter's code for it (`E0308`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// An answer the client could not use, sent back once so the model can correct it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetryNote {
    /// The refused answer, as the model gave it.
    pub answer: String,
    /// What was wrong with it (`line 4: syntax error near "}"`).
    pub problem: String,
}

/// Answer of `POST /v1/chat` (and the data of a stream's `done` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatResponse {
    /// Unique id of this answer (`chat-…`).
    pub id: String,
    pub task: ChatTask,
    /// Markdown for [`ChatTask::Explain`] and [`ChatTask::Ask`]; bare code (no fences)
    /// for the others.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Name of the provider that answered.
    pub provider: String,
    pub model: String,
    pub usage: Usage,
}

/// Where generated tests go, by the language's convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestPlacement {
    /// Appended to the end of the document itself (Rust's `#[cfg(test)] mod tests`).
    EndOfFile,
    /// In a test file of its own, at this workspace-relative path (appended to it when it
    /// already exists).
    File(String),
}

/// Where tests for the document at `path` (workspace-relative, `/`-separated) in
/// `language` go; `None` when the language has no convention Tandem knows (C, C++).
pub fn test_placement(language: &str, path: &str) -> Option<TestPlacement> {
    let (directory, file) = match path.rfind('/') {
        Some(index) => (&path[..=index], &path[index + 1..]),
        None => ("", path),
    };
    let (stem, extension) = match file.rfind('.') {
        Some(index) if index > 0 => (&file[..index], &file[index + 1..]),
        _ => (file, ""),
    };
    let sibling = |name: String| Some(TestPlacement::File(format!("{directory}{name}")));
    match language {
        "rust" => Some(TestPlacement::EndOfFile),
        "python" => sibling(format!("test_{stem}.py")),
        "go" => sibling(format!("{stem}_test.go")),
        "javascript" | "javascriptreact" | "typescript" | "typescriptreact" => {
            let extension = if extension.is_empty() {
                "js"
            } else {
                extension
            };
            sibling(format!("{stem}.test.{extension}"))
        }
        "java" => {
            let name = format!("{stem}Test.java");
            // Maven and Gradle keep tests in a parallel tree.
            match directory.find("src/main/java/") {
                Some(index) => Some(TestPlacement::File(format!(
                    "{}src/test/java/{}{name}",
                    &directory[..index],
                    &directory[index + "src/main/java/".len()..]
                ))),
                None => sibling(name),
            }
        }
        _ => None,
    }
}

/// How the language documents code, in words for the model; `None` when Tandem does not
/// know the language's convention.
pub fn doc_convention(language: &str) -> Option<&'static str> {
    Some(match language {
        "rust" => "Rust doc comments: `///` lines directly above the item, Markdown inside, \
                   with `# Errors` / `# Panics` sections where they apply",
        "python" => "a PEP 257 docstring: a triple-quoted string as the first statement of \
                     the function or class body, summary line first",
        "javascript" | "javascriptreact" | "typescript" | "typescriptreact" => {
            "a JSDoc block comment (`/** ... */`) directly above, with `@param` and `@returns` tags"
        }
        "java" => {
            "a Javadoc comment (`/** ... */`) directly above, with `@param`, `@return` and `@throws` tags"
        }
        "go" => "Go doc comments: `//` lines directly above the declaration, the first \
                 sentence starting with the declared name",
        "c" | "cpp" => {
            "a Doxygen comment (`/** ... */`) directly above, with `@param` and `@return`"
        }
        _ => return None,
    })
}

/// How tests are written for `language`, in words for the model.
pub fn test_convention(language: &str) -> Option<&'static str> {
    Some(match language {
        "rust" => "a `#[cfg(test)] mod tests` module with `use super::*;` and `#[test]` functions",
        "python" => {
            "a pytest module: plain `test_*` functions with `assert`, importing what \
                     they test from the module under test"
        }
        "go" => {
            "a `_test.go` file in the same package, with `func TestXxx(t *testing.T)` \
                 functions (table-driven where it helps)"
        }
        "javascript" | "javascriptreact" | "typescript" | "typescriptreact" => {
            "a test file with `describe`/`it`/`expect` (Jest and Vitest style), importing \
             what it tests from the module under test"
        }
        "java" => {
            "a JUnit 5 test class with `@Test` methods and `org.junit.jupiter.api.Assertions`"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_request_parses_with_defaults() {
        let request: ChatRequest = serde_json::from_str(
            r#"{"task":"generate_tests","language":"go","path":"a.go","code":"func A() {}"}"#,
        )
        .unwrap();
        assert_eq!(request.task, ChatTask::GenerateTests);
        assert_eq!(request.start_line, 1);
        assert_eq!(
            request,
            ChatRequest::new(ChatTask::GenerateTests, "go", "a.go", "func A() {}")
        );
        let unknown = serde_json::from_str::<ChatRequest>(
            r#"{"task":"dance","language":"go","path":"","code":""}"#,
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn task_names_round_trip() {
        for task in ChatTask::ALL {
            let json = serde_json::to_string(&task).unwrap();
            assert_eq!(json, format!("\"{}\"", task.as_str()));
            assert_eq!(serde_json::from_str::<ChatTask>(&json).unwrap(), task);
        }
        assert!(ChatTask::Fix.answers_with_code());
        assert!(!ChatTask::Explain.answers_with_code());
    }

    #[test]
    fn estimate_counts_every_text() {
        let mut request = ChatRequest::new(ChatTask::Fix, "rust", "a.rs", "fn a() {}");
        let base = request.estimated_tokens();
        assert!(base > 0);
        request.diagnostics.push(ChatDiagnostic {
            line: 1,
            end_line: 1,
            severity: None,
            message: "mismatched types".into(),
            source: None,
            code: None,
        });
        request.retry = Some(RetryNote {
            answer: "fn a( {}".into(),
            problem: "syntax error".into(),
        });
        request.question = Some("why".into());
        let expected = base
            + crate::tokens::estimate("mismatched types")
            + crate::tokens::estimate("fn a( {}")
            + crate::tokens::estimate("syntax error")
            + crate::tokens::estimate("why");
        assert_eq!(request.estimated_tokens(), expected);
    }

    #[test]
    fn tests_go_where_each_language_keeps_them() {
        use TestPlacement::*;
        assert_eq!(test_placement("rust", "src/lib.rs"), Some(EndOfFile));
        assert_eq!(
            test_placement("python", "pkg/util.py"),
            Some(File("pkg/test_util.py".into()))
        );
        assert_eq!(
            test_placement("go", "server/handler.go"),
            Some(File("server/handler_test.go".into()))
        );
        assert_eq!(
            test_placement("typescriptreact", "ui/Button.tsx"),
            Some(File("ui/Button.test.tsx".into()))
        );
        assert_eq!(
            test_placement("javascript", "index.js"),
            Some(File("index.test.js".into()))
        );
        assert_eq!(
            test_placement("java", "core/src/main/java/org/x/Parser.java"),
            Some(File("core/src/test/java/org/x/ParserTest.java".into()))
        );
        assert_eq!(
            test_placement("java", "Parser.java"),
            Some(File("ParserTest.java".into()))
        );
        assert_eq!(test_placement("c", "main.c"), None);
        assert_eq!(test_placement("cpp", "main.cpp"), None);
    }

    #[test]
    fn conventions_exist_exactly_where_placements_do() {
        for language in [
            "rust",
            "python",
            "go",
            "javascript",
            "typescript",
            "java",
            "c",
        ] {
            assert_eq!(
                test_convention(language).is_some(),
                test_placement(language, "x").is_some(),
                "{language}"
            );
        }
        assert!(doc_convention("c").is_some());
        assert!(doc_convention("haskell").is_none());
    }
}
