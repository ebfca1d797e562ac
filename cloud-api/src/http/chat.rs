//! `POST /v1/chat`: explanations, code actions (fix, document, generate tests, simplify)
//! and questions about code. The prompt is built here from the structured request
//! ([`crate::prompt::tasks`]); admission, routing, usage accounting and streaming are
//! those of `/v1/completions`, with the task's own feature and the `chat` routes.

use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use tandem_shared::{ChatDiagnostic, ChatRequest, ChatTask};

use super::completions::{
    check_no_nul, serve, usage_record, validate_context, validate_language, validate_path,
    validate_sampling, Ask, Reply,
};
use super::streaming::Answer;
use crate::error::AppError;
use crate::extract::{AuthUser, ValidJson, Validate};
use crate::prompt::tasks;
use crate::routing::ModelRequest;
use crate::state::AppState;
use crate::tiers::Feature;

/// The route's path, as usage records name it.
const ENDPOINT: &str = "/v1/chat";
/// Most diagnostics a request may carry.
const MAX_DIAGNOSTICS: usize = 64;
/// Longest diagnostic message, in characters.
const MAX_DIAGNOSTIC_CHARS: usize = 4_000;
/// Longest question, in characters.
const MAX_QUESTION_CHARS: usize = 8_000;
/// Longest short field of a diagnostic (severity, source, code), in characters.
const MAX_LABEL_CHARS: usize = 64;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(ENDPOINT, post(handle_chat))
}

/// The tier feature a task's requests use.
pub(crate) fn feature_of(task: ChatTask) -> Feature {
    match task {
        ChatTask::Explain => Feature::Explanation,
        ChatTask::Ask => Feature::Chat,
        ChatTask::Fix | ChatTask::Document | ChatTask::GenerateTests | ChatTask::Simplify => {
            Feature::CodeActions
        }
    }
}

impl Validate for ChatRequest {
    fn validate(&self) -> Result<(), String> {
        validate_language(&self.language)?;
        validate_path("`path`", &self.path)?;
        validate_sampling(self.max_tokens, self.temperature)?;
        if self.code.trim().is_empty() {
            return Err(format!(
                "`code` must hold the code to {} (a selection, or the item under the cursor)",
                self.task
            ));
        }
        if self.start_line == 0 {
            return Err("`start_line` is 1-based and must be at least 1".to_owned());
        }
        for (field, text) in [
            ("`code`", &self.code),
            ("`prefix`", &self.prefix),
            ("`suffix`", &self.suffix),
        ] {
            check_no_nul(field, text)?;
        }
        validate_context(&self.context)?;
        validate_diagnostics(&self.diagnostics)?;
        if let Some(question) = &self.question {
            if question.chars().count() > MAX_QUESTION_CHARS {
                return Err(format!(
                    "`question` must be at most {MAX_QUESTION_CHARS} characters"
                ));
            }
            check_no_nul("`question`", question)?;
        }
        if let Some(retry) = &self.retry {
            check_no_nul("`retry.answer`", &retry.answer)?;
            check_no_nul("`retry.problem`", &retry.problem)?;
            if retry.problem.trim().is_empty() {
                return Err("`retry.problem` must say what was wrong with the answer".to_owned());
            }
        }
        match self.task {
            ChatTask::Fix if self.diagnostics.is_empty() => {
                Err("task `fix` needs `diagnostics`: the problems to fix in `code`".to_owned())
            }
            ChatTask::Ask
                if self
                    .question
                    .as_deref()
                    .is_none_or(|question| question.trim().is_empty()) =>
            {
                Err("task `ask` needs a `question`".to_owned())
            }
            _ => Ok(()),
        }
    }
}

fn validate_diagnostics(diagnostics: &[ChatDiagnostic]) -> Result<(), String> {
    if diagnostics.len() > MAX_DIAGNOSTICS {
        return Err(format!(
            "`diagnostics` may hold at most {MAX_DIAGNOSTICS} entries, got {}",
            diagnostics.len()
        ));
    }
    for (index, diagnostic) in diagnostics.iter().enumerate() {
        let field = |name: &str| format!("`diagnostics[{index}].{name}`");
        if diagnostic.line == 0 || diagnostic.end_line < diagnostic.line {
            return Err(format!(
                "{} and {} are 1-based lines, the end not before the start",
                field("line"),
                field("end_line")
            ));
        }
        if diagnostic.message.chars().count() > MAX_DIAGNOSTIC_CHARS {
            return Err(format!(
                "{} must be at most {MAX_DIAGNOSTIC_CHARS} characters",
                field("message")
            ));
        }
        check_no_nul(&field("message"), &diagnostic.message)?;
        let labels = [
            ("severity", &diagnostic.severity),
            ("source", &diagnostic.source),
            ("code", &diagnostic.code),
        ];
        for (name, label) in labels {
            let Some(label) = label else { continue };
            if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
                return Err(format!(
                    "{} must be at most {MAX_LABEL_CHARS} characters, without control characters",
                    field(name)
                ));
            }
        }
    }
    Ok(())
}

/// Explains code, applies a code action (fix, document, generate tests, simplify) or
/// answers a question about code.
///
/// The prompt is built on the server from the structured request. Admission, limits,
/// fallback and streaming are those of `POST /v1/completions`, with the task's tier
/// feature (`explanation` for `explain`, `chat` for `ask`, `code_actions` for the rest),
/// the `chat` scope and the tier's `chat` routes. With `"stream": true` the answer is
/// `text/event-stream`: `delta` events, then one `done` event whose data is this
/// response (or `error` with an `ErrorBody`).
#[utoipa::path(
    post,
    path = ENDPOINT,
    tag = "model",
    operation_id = "create_chat_answer",
    security(("bearer" = ["chat"])),
    request_body(content = ChatRequest, description = "The task and the code it is about, with the context the client gathered."),
    responses(
        (status = 200, description = "The answer, with what is left of the caller's quotas in the headers.",
            headers(
                ("RateLimit-Policy" = String, description = "The request quotas, as in the IETF RateLimit draft: `\"hour\";q=500;w=3600, \"day\";q=2000;w=86400`."),
                ("RateLimit" = String, description = "What is left of each request quota and the seconds until it resets: `\"hour\";r=499;t=1830, \"day\";r=1999;t=48630`."),
                ("Tandem-Tokens-Limit" = u64, description = "The daily token budget (prompt plus completion tokens)."),
                ("Tandem-Tokens-Remaining" = u64, description = "Tokens left of the daily budget."),
                ("Tandem-Tokens-Reset" = u64, description = "Seconds until the token budget resets."),
            ),
            content(
                (tandem_shared::ChatResponse = "application/json"),
                (String = "text/event-stream", example = json!(super::openapi::describe::CHAT_STREAM_EXAMPLE)),
            )),
        (status = 400, description = super::openapi::describe::MALFORMED_BODY, body = tandem_shared::ErrorBody),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 403, description = super::openapi::describe::CHAT_FORBIDDEN, body = tandem_shared::ErrorBody),
        (status = 413, description = super::openapi::describe::MODEL_TOO_LARGE, body = tandem_shared::ErrorBody),
        (status = 415, description = super::openapi::describe::UNSUPPORTED_MEDIA_TYPE, body = tandem_shared::ErrorBody),
        (status = 422, description = super::openapi::describe::CHAT_INVALID, body = tandem_shared::ErrorBody),
        (status = 429, description = super::openapi::describe::RATE_LIMITED, body = tandem_shared::ErrorBody,
            headers(
                ("Retry-After" = u64, description = "Seconds until a retry can succeed."),
                ("RateLimit-Policy" = String, description = "The request quotas, as in the IETF RateLimit draft: `\"hour\";q=500;w=3600, \"day\";q=2000;w=86400`."),
                ("RateLimit" = String, description = "What is left of each request quota and the seconds until it resets: `\"hour\";r=499;t=1830, \"day\";r=1999;t=48630`."),
                ("Tandem-Tokens-Limit" = u64, description = "The daily token budget (prompt plus completion tokens)."),
                ("Tandem-Tokens-Remaining" = u64, description = "Tokens left of the daily budget."),
                ("Tandem-Tokens-Reset" = u64, description = "Seconds until the token budget resets."),
            )),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
        (status = 502, description = super::openapi::describe::PROVIDER_ERROR, body = tandem_shared::ErrorBody),
        (status = 503, description = super::openapi::describe::CHAT_UNAVAILABLE, body = tandem_shared::ErrorBody),
        (status = 504, description = super::openapi::describe::PROVIDER_TIMEOUT, body = tandem_shared::ErrorBody),
    )
)]
async fn handle_chat(
    State(state): State<AppState>,
    caller: AuthUser,
    ValidJson(request): ValidJson<ChatRequest>,
) -> Result<Response, AppError> {
    let started = Instant::now();
    let record = usage_record(
        &caller,
        format!("chat-{}", uuid::Uuid::new_v4()),
        ENDPOINT,
        request.task.as_str(),
    );
    let ask = Ask {
        feature: feature_of(request.task),
        request_tokens: request.estimated_tokens(),
        file_size: request.file_size,
    };
    let prompt = tasks::build(&request);
    let reply = Reply {
        answer: Answer::Chat(request.task),
        stream: request.stream,
    };
    serve(
        &state,
        &caller,
        ask,
        ModelRequest::Chat(&prompt),
        reply,
        record,
        started,
    )
    .await
}

#[cfg(test)]
mod tests {
    use tandem_shared::chat::RetryNote;

    use super::*;

    fn diagnostic(line: u32) -> ChatDiagnostic {
        ChatDiagnostic {
            line,
            end_line: line,
            severity: Some("error".into()),
            message: "expected `;`".into(),
            source: Some("rustc".into()),
            code: None,
        }
    }

    #[track_caller]
    fn check_invalid(task: ChatTask, change: impl FnOnce(&mut ChatRequest), expected: &str) {
        let mut request = ChatRequest::new(task, "rust", "src/lib.rs", "fn a() {}");
        request.diagnostics = vec![diagnostic(1)];
        request.question = Some("why?".into());
        request.validate().expect("the base request is valid");
        change(&mut request);
        let message = request.validate().expect_err("request should be invalid");
        assert!(
            message.contains(expected),
            "`{message}` does not contain `{expected}`"
        );
    }

    #[test]
    fn each_task_is_valid_with_what_it_needs() {
        for task in ChatTask::ALL {
            let mut request = ChatRequest::new(task, "python", "", "def f(): pass");
            match task {
                ChatTask::Fix => request.diagnostics = vec![diagnostic(3)],
                ChatTask::Ask => request.question = Some("what is f?".into()),
                _ => {}
            }
            request
                .validate()
                .unwrap_or_else(|error| panic!("{task}: {error}"));
        }
    }

    #[test]
    fn invalid_fields_are_named() {
        check_invalid(
            ChatTask::Explain,
            |r| r.code = " \n".into(),
            "`code` must hold the code to explain",
        );
        check_invalid(
            ChatTask::Explain,
            |r| r.start_line = 0,
            "`start_line` is 1-based",
        );
        check_invalid(
            ChatTask::Explain,
            |r| r.path = "../x".into(),
            "must not contain `..`",
        );
        check_invalid(
            ChatTask::Explain,
            |r| r.language = "a b".into(),
            "LSP language id",
        );
        check_invalid(
            ChatTask::Explain,
            |r| r.max_tokens = Some(0),
            "`max_tokens`",
        );
        check_invalid(
            ChatTask::Explain,
            |r| r.prefix = "\0".into(),
            "`prefix` must not contain NUL",
        );
        check_invalid(
            ChatTask::Fix,
            |r| r.diagnostics.clear(),
            "task `fix` needs `diagnostics`",
        );
        check_invalid(
            ChatTask::Ask,
            |r| r.question = Some("  ".into()),
            "task `ask` needs a `question`",
        );
        check_invalid(
            ChatTask::Ask,
            |r| r.question = Some("x".repeat(8_001)),
            "`question` must be at most 8000",
        );
        check_invalid(
            ChatTask::Fix,
            |r| r.diagnostics = vec![diagnostic(1); 65],
            "`diagnostics` may hold at most 64 entries, got 65",
        );
        check_invalid(
            ChatTask::Fix,
            |r| r.diagnostics[0].end_line = 0,
            "`diagnostics[0].line` and `diagnostics[0].end_line` are 1-based",
        );
        check_invalid(
            ChatTask::Fix,
            |r| r.diagnostics[0].source = Some("a\nb".into()),
            "`diagnostics[0].source` must be at most 64 characters",
        );
        check_invalid(
            ChatTask::Fix,
            |r| r.diagnostics[0].message = "x".repeat(4_001),
            "`diagnostics[0].message` must be at most 4000",
        );
        check_invalid(
            ChatTask::Simplify,
            |r| {
                r.retry = Some(RetryNote {
                    answer: "x".into(),
                    problem: String::new(),
                })
            },
            "`retry.problem` must say what was wrong",
        );
    }

    #[test]
    fn tasks_map_to_the_tier_features() {
        assert_eq!(feature_of(ChatTask::Explain), Feature::Explanation);
        assert_eq!(feature_of(ChatTask::Ask), Feature::Chat);
        for task in [
            ChatTask::Fix,
            ChatTask::Document,
            ChatTask::GenerateTests,
            ChatTask::Simplify,
        ] {
            assert_eq!(feature_of(task), Feature::CodeActions);
        }
    }
}
