//! Ollama's native API: `POST {base_url}/api/generate`, either with `prompt` and `suffix`
//! (Ollama applies the model's own template) or, with a fill-in-the-middle family, the
//! prompt rendered here and `raw: true` so Ollama sends it to the model untouched.
//! Conversations (explanations, code actions) go to `POST {base_url}/api/chat`.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tandem_shared::CompletionRequest;

use super::stream::{self, Step};
use super::{
    join_url, max_tokens, temperature, ChatPrompt, HttpTarget, PieceStream, Provider,
    ProviderCompletion, ProviderError, StreamPiece, WireMessage,
};
use crate::prompt::chat::AnswerCleaner;
use crate::prompt::{self, Family};

/// A provider of `kind = "ollama"`.
#[derive(Debug)]
pub struct OllamaProvider {
    target: HttpTarget,
    generate_url: String,
    /// `/api/chat`, for conversations.
    chat_url: String,
    model: String,
    /// The template prompts are rendered in; `None` uses Ollama's `suffix`.
    family: Option<Family>,
}

impl OllamaProvider {
    pub(crate) fn new(
        target: HttpTarget,
        base_url: &str,
        model: String,
        family: Option<Family>,
    ) -> OllamaProvider {
        OllamaProvider {
            target,
            generate_url: join_url(base_url, "api/generate"),
            chat_url: join_url(base_url, "api/chat"),
            model,
            family,
        }
    }
}

#[derive(Debug, Serialize)]
struct GenerateRequest<'a> {
    model: &'a str,
    prompt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    suffix: Option<&'a str>,
    /// `true` when `prompt` is already the model's full template.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    raw: bool,
    stream: bool,
    options: GenerateOptions<'a>,
}

#[derive(Debug, Serialize)]
struct GenerateOptions<'a> {
    num_predict: u32,
    temperature: f32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
}

#[derive(Debug, Deserialize)]
struct GenerateResponse {
    #[serde(default)]
    model: Option<String>,
    response: String,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u32>,
    #[serde(default)]
    eval_count: Option<u32>,
}

/// Body of `/api/chat`.
#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    options: GenerateOptions<'a>,
}

/// A whole `/api/chat` answer.
#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    message: ChatAnswer,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u32>,
    #[serde(default)]
    eval_count: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct ChatAnswer {
    #[serde(default)]
    content: String,
}

/// Ollama reports errors as `{"error": "<message>"}`.
fn vendor_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorResponse {
        error: String,
    }
    serde_json::from_slice::<ErrorResponse>(body)
        .ok()
        .map(|response| response.error)
}

impl Provider for OllamaProvider {
    fn name(&self) -> &str {
        &self.target.provider
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<ProviderCompletion, ProviderError>> {
        Box::pin(async move {
            let prompt = self.prompt(request);
            // One JSON object instead of a stream of lines.
            let body = prompt.body(self, request, false);
            let response: GenerateResponse = self
                .target
                .post_json(&self.generate_url, &body, vendor_message)
                .await?;
            Ok(ProviderCompletion {
                text: response.response,
                finish_reason: response.done_reason,
                model: response.model.unwrap_or_else(|| self.model.clone()),
                prompt_tokens: response.prompt_eval_count,
                completion_tokens: response.eval_count,
            })
        })
    }

    fn stream<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<PieceStream, ProviderError>> {
        Box::pin(async move {
            let prompt = self.prompt(request);
            let body = prompt.body(self, request, true);
            let response = self
                .target
                .post_stream(&self.generate_url, &body, vendor_message)
                .await?;
            Ok(self.stream_lines(response))
        })
    }

    fn can_chat(&self) -> bool {
        true
    }

    fn chat<'a>(
        &'a self,
        prompt: &'a ChatPrompt,
    ) -> BoxFuture<'a, Result<ProviderCompletion, ProviderError>> {
        Box::pin(self.chat_answer(prompt))
    }

    fn chat_stream<'a>(
        &'a self,
        prompt: &'a ChatPrompt,
    ) -> BoxFuture<'a, Result<PieceStream, ProviderError>> {
        Box::pin(self.chat_stream_answer(prompt))
    }
}

impl OllamaProvider {
    fn chat_body<'a>(&'a self, prompt: &'a ChatPrompt, stream: bool) -> ChatRequest<'a> {
        ChatRequest {
            model: &self.model,
            messages: prompt.wire_messages(true),
            stream,
            options: GenerateOptions {
                num_predict: prompt.max_tokens,
                temperature: prompt.temperature,
                stop: &prompt.stop,
            },
        }
    }

    async fn chat_answer(&self, prompt: &ChatPrompt) -> Result<ProviderCompletion, ProviderError> {
        let body = self.chat_body(prompt, false);
        let response: ChatResponse = self
            .target
            .post_json(&self.chat_url, &body, vendor_message)
            .await?;
        // Ollama applied the stop sequences.
        let (text, _) =
            crate::prompt::chat::finish_answer(&response.message.content, prompt.bare_code, &[]);
        Ok(ProviderCompletion {
            text,
            finish_reason: response.done_reason,
            model: response.model.unwrap_or_else(|| self.model.clone()),
            prompt_tokens: response.prompt_eval_count,
            completion_tokens: response.eval_count,
        })
    }

    async fn chat_stream_answer(&self, prompt: &ChatPrompt) -> Result<PieceStream, ProviderError> {
        let body = self.chat_body(prompt, true);
        let response = self
            .target
            .post_stream(&self.chat_url, &body, vendor_message)
            .await?;
        let pieces = self.stream_lines(response);
        Ok(stream::cleaned(
            pieces,
            AnswerCleaner::new(prompt.bare_code, Vec::new()),
            "stop",
        ))
    }

    fn stream_lines(&self, response: reqwest::Response) -> PieceStream {
        let provider = self.target.provider.clone();
        let lines = stream::ndjson_lines(response, provider.clone());
        let target = self.target.clone();
        stream::pieces(lines, provider, true, move |line| {
            parse_stream_line(&target, &line)
        })
    }

    fn prompt(&self, request: &CompletionRequest) -> PromptParts {
        let (prompt, suffix) = match self.family {
            Some(family) => (family.render(request), None),
            None => (
                format!("{}{}", prompt::preamble(request), request.prefix),
                Some(request.suffix.clone()),
            ),
        };
        PromptParts {
            prompt,
            suffix,
            stop: prompt::stop_sequences(request, self.family),
        }
    }
}

/// What `/api/generate` is sent, before it borrows into the wire shape.
struct PromptParts {
    prompt: String,
    suffix: Option<String>,
    stop: Vec<String>,
}

impl PromptParts {
    fn body<'a>(
        &'a self,
        provider: &'a OllamaProvider,
        request: &CompletionRequest,
        stream: bool,
    ) -> GenerateRequest<'a> {
        GenerateRequest {
            model: &provider.model,
            prompt: &self.prompt,
            suffix: self.suffix.as_deref(),
            raw: provider.family.is_some(),
            stream,
            options: GenerateOptions {
                num_predict: max_tokens(request),
                temperature: temperature(request),
                stop: &self.stop,
            },
        }
    }
}

/// One line of a streamed `/api/generate` or `/api/chat` answer: a piece of text, the last line (with
/// `done` and the counts), or `{"error": "..."}` when generation failed midway.
#[derive(Debug, Deserialize)]
struct StreamLine {
    #[serde(default)]
    model: Option<String>,
    /// `/api/generate` lines.
    #[serde(default)]
    response: String,
    /// `/api/chat` lines.
    #[serde(default)]
    message: Option<ChatAnswer>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u32>,
    #[serde(default)]
    eval_count: Option<u32>,
    #[serde(default)]
    error: Option<String>,
}

fn parse_stream_line(target: &HttpTarget, line: &[u8]) -> Step {
    let line: StreamLine = match serde_json::from_slice(line) {
        Ok(line) => line,
        Err(error) => {
            return Step::Fail(ProviderError::InvalidResponse {
                provider: target.provider.clone(),
                detail: format!("stream line is not the expected JSON: {error}"),
            })
        }
    };
    if let Some(message) = line.error {
        // Ollama reports a failure after the 200 only in the stream.
        return Step::Fail(target.status_error(500, target.vendor_text(&message)));
    }
    let text = match line.message {
        Some(message) => message.content,
        None => line.response,
    };
    let piece = StreamPiece {
        text,
        finish_reason: line.done_reason,
        model: line.model,
        prompt_tokens: line.prompt_eval_count,
        completion_tokens: line.eval_count,
    };
    if line.done {
        Step::End(Some(piece))
    } else {
        Step::Piece(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_message_is_extracted() {
        assert_eq!(
            vendor_message(br#"{"error":"model 'x' not found"}"#).as_deref(),
            Some("model 'x' not found")
        );
        assert_eq!(vendor_message(b"<html>"), None);
    }

    #[test]
    fn request_has_the_wire_shape() {
        let stop = vec!["\n\n".to_owned()];
        let body = GenerateRequest {
            model: "m",
            prompt: "p",
            suffix: Some("s"),
            raw: false,
            stream: false,
            options: GenerateOptions {
                num_predict: 7,
                temperature: 0.5,
                stop: &stop,
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"model":"m","prompt":"p","suffix":"s","stream":false,
                "options":{"num_predict":7,"temperature":0.5,"stop":["\n\n"]}})
        );
    }
}
