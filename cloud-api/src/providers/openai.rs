//! OpenAI-compatible servers: `POST {base_url}/completions` (prompt + suffix, or with a
//! fill-in-the-middle family the prompt rendered here and no suffix) or
//! `POST {base_url}/chat/completions` with a fill-in-the-middle instruction; conversations
//! (explanations, code actions) always go to `chat/completions`.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tandem_shared::CompletionRequest;

use eventsource_stream::Event;

use super::stream::{self, Step};
use super::{
    join_url, max_tokens, temperature, ChatPrompt, HttpTarget, PieceStream, Provider,
    ProviderCompletion, ProviderError, StreamPiece, WireMessage,
};
use crate::config::OpenAiEndpoint;
use crate::prompt::chat::AnswerCleaner;
use crate::prompt::{self, Family};

/// A provider of `kind = "openai"`.
#[derive(Debug)]
pub struct OpenAiProvider {
    target: HttpTarget,
    /// Where completions go: `completions` or `chat/completions` by `endpoint`.
    url: String,
    /// Where conversations go, whatever `endpoint` says.
    chat_url: String,
    model: String,
    endpoint: OpenAiEndpoint,
    /// The template `completions` prompts are rendered in; `None` uses `suffix`.
    family: Option<Family>,
}

impl OpenAiProvider {
    pub(crate) fn new(
        target: HttpTarget,
        base_url: &str,
        model: String,
        endpoint: OpenAiEndpoint,
        family: Option<Family>,
    ) -> OpenAiProvider {
        let path = match endpoint {
            OpenAiEndpoint::Completions => "completions",
            OpenAiEndpoint::Chat => "chat/completions",
        };
        OpenAiProvider {
            target,
            url: join_url(base_url, path),
            chat_url: join_url(base_url, "chat/completions"),
            model,
            endpoint,
            family,
        }
    }

    /// The prompt, suffix and stop sequences of a `completions` request.
    fn text_prompt(&self, request: &CompletionRequest) -> (String, Option<String>, Vec<String>) {
        let (prompt, suffix) = match self.family {
            Some(family) => (family.render(request), None),
            None => (
                format!("{}{}", prompt::preamble(request), request.prefix),
                Some(request.suffix.clone()),
            ),
        };
        (prompt, suffix, prompt::stop_sequences(request, self.family))
    }

    fn completions_body<'a>(
        &'a self,
        request: &CompletionRequest,
        prompt: &'a str,
        suffix: Option<&'a str>,
        stop: &'a [String],
        stream: Option<StreamFlags>,
    ) -> CompletionsRequest<'a> {
        CompletionsRequest {
            model: &self.model,
            prompt,
            suffix,
            max_tokens: max_tokens(request),
            temperature: temperature(request),
            stop,
            stream,
        }
    }

    async fn complete_text(
        &self,
        request: &CompletionRequest,
    ) -> Result<ProviderCompletion, ProviderError> {
        let (prompt, suffix, stop) = self.text_prompt(request);
        let body = self.completions_body(request, &prompt, suffix.as_deref(), &stop, None);
        let response: CompletionsResponse = self
            .target
            .post_json(&self.url, &body, vendor_message)
            .await?;
        let choice = response.choices.into_iter().next();
        Ok(ProviderCompletion {
            text: choice
                .as_ref()
                .and_then(|choice| choice.text.clone())
                .unwrap_or_default(),
            finish_reason: choice.and_then(|choice| choice.finish_reason),
            model: response.model.unwrap_or_else(|| self.model.clone()),
            prompt_tokens: response.usage.and_then(|usage| usage.prompt_tokens),
            completion_tokens: response.usage.and_then(|usage| usage.completion_tokens),
        })
    }

    fn chat_body<'a>(
        &'a self,
        prompt: &'a ChatPrompt,
        stream: Option<StreamFlags>,
    ) -> ChatRequest<'a> {
        ChatRequest {
            model: &self.model,
            messages: prompt.wire_messages(true),
            max_tokens: prompt.max_tokens,
            temperature: prompt.temperature,
            stop: &prompt.stop,
            stream,
        }
    }

    async fn chat_answer(&self, prompt: &ChatPrompt) -> Result<ProviderCompletion, ProviderError> {
        let body = self.chat_body(prompt, None);
        let response: ChatResponse = self
            .target
            .post_json(&self.chat_url, &body, vendor_message)
            .await?;
        let choice = response.choices.into_iter().next();
        let content = choice
            .as_ref()
            .and_then(|choice| choice.message.as_ref())
            .and_then(|message| message.content.clone())
            .unwrap_or_default();
        // The server applied the stop sequences.
        let (text, _) = crate::prompt::chat::finish_answer(&content, prompt.bare_code, &[]);
        Ok(ProviderCompletion {
            text,
            finish_reason: choice.and_then(|choice| choice.finish_reason),
            model: response.model.unwrap_or_else(|| self.model.clone()),
            prompt_tokens: response.usage.and_then(|usage| usage.prompt_tokens),
            completion_tokens: response.usage.and_then(|usage| usage.completion_tokens),
        })
    }

    fn stream_pieces(&self, response: reqwest::Response) -> PieceStream {
        let provider = self.target.provider.clone();
        let events = stream::sse_events(response, provider.clone());
        let target = self.target.clone();
        stream::pieces(events, provider, true, move |event| {
            parse_stream_event(&target, &event)
        })
    }

    async fn chat_stream_answer(&self, prompt: &ChatPrompt) -> Result<PieceStream, ProviderError> {
        let body = self.chat_body(prompt, Some(StreamFlags::WITH_USAGE));
        let response = self
            .target
            .post_stream(&self.chat_url, &body, vendor_message)
            .await?;
        let pieces = self.stream_pieces(response);
        // The stop sequences went to the server; only fences and markers are left.
        Ok(stream::cleaned(
            pieces,
            AnswerCleaner::new(prompt.bare_code, Vec::new()),
            "stop",
        ))
    }

    async fn stream_answer(
        &self,
        request: &CompletionRequest,
    ) -> Result<PieceStream, ProviderError> {
        match self.endpoint {
            OpenAiEndpoint::Completions => {
                let (prompt, suffix, stop) = self.text_prompt(request);
                let flags = Some(StreamFlags::WITH_USAGE);
                let body = self.completions_body(request, &prompt, suffix.as_deref(), &stop, flags);
                let response = self
                    .target
                    .post_stream(&self.url, &body, vendor_message)
                    .await?;
                Ok(self.stream_pieces(response))
            }
            OpenAiEndpoint::Chat => {
                self.chat_stream_answer(&prompt::chat::completion_prompt(request))
                    .await
            }
        }
    }
}

/// `"stream": true` and the option that makes the last event carry the token counts.
#[derive(Debug, Clone, Copy, Serialize)]
struct StreamFlags {
    stream: bool,
    stream_options: StreamOptions,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl StreamFlags {
    const WITH_USAGE: StreamFlags = StreamFlags {
        stream: true,
        stream_options: StreamOptions {
            include_usage: true,
        },
    };
}

/// One event of a streamed answer: `data: {chunk}`, or `data: [DONE]` at the end. With
/// `include_usage` the last chunk has no choices and the token counts.
#[derive(Debug, Deserialize)]
struct StreamChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<StreamChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Set instead of the rest when generation failed after the 200.
    #[serde(default)]
    error: Option<StreamError>,
}

#[derive(Debug, Deserialize)]
struct StreamChoice {
    /// `completions` chunks.
    #[serde(default)]
    text: Option<String>,
    /// `chat/completions` chunks.
    #[serde(default)]
    delta: Option<ChatAnswer>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StreamError {
    #[serde(default)]
    message: Option<String>,
}

fn parse_stream_event(target: &HttpTarget, event: &Event) -> Step {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Step::End(None);
    }
    if data.is_empty() {
        return Step::Skip;
    }
    let chunk: StreamChunk = match serde_json::from_str(data) {
        Ok(chunk) => chunk,
        Err(error) => {
            return Step::Fail(ProviderError::InvalidResponse {
                provider: target.provider.clone(),
                detail: format!("stream event is not the expected JSON: {error}"),
            })
        }
    };
    if let Some(error) = chunk.error {
        let message = error.message.unwrap_or_default();
        return Step::Fail(target.status_error(500, target.vendor_text(&message)));
    }
    let choice = chunk.choices.into_iter().next();
    let (text, finish_reason) = match choice {
        Some(choice) => (
            choice
                .text
                .or_else(|| choice.delta.and_then(|delta| delta.content))
                .unwrap_or_default(),
            choice.finish_reason,
        ),
        None => (String::new(), None),
    };
    Step::Piece(StreamPiece {
        text,
        finish_reason,
        model: chunk.model,
        prompt_tokens: chunk.usage.and_then(|usage| usage.prompt_tokens),
        completion_tokens: chunk.usage.and_then(|usage| usage.completion_tokens),
    })
}

#[derive(Debug, Serialize)]
struct CompletionsRequest<'a> {
    model: &'a str,
    prompt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    suffix: Option<&'a str>,
    max_tokens: u32,
    temperature: f32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    stream: Option<StreamFlags>,
}

#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    max_tokens: u32,
    temperature: f32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    stream: Option<StreamFlags>,
}

#[derive(Debug, Deserialize)]
struct CompletionsResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<CompletionsChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct CompletionsChoice {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct ChatChoice {
    #[serde(default)]
    message: Option<ChatAnswer>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChatAnswer {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

/// OpenAI reports errors as `{"error": {"message": "...", "type": ..., ...}}`.
fn vendor_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorResponse {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    struct ErrorDetail {
        message: String,
    }
    serde_json::from_slice::<ErrorResponse>(body)
        .ok()
        .map(|response| response.error.message)
}

impl Provider for OpenAiProvider {
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
            match self.endpoint {
                OpenAiEndpoint::Completions => self.complete_text(request).await,
                OpenAiEndpoint::Chat => {
                    self.chat_answer(&prompt::chat::completion_prompt(request))
                        .await
                }
            }
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

    fn stream<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<PieceStream, ProviderError>> {
        Box::pin(self.stream_answer(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_message_is_extracted() {
        assert_eq!(
            vendor_message(
                br#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#
            )
            .as_deref(),
            Some("Incorrect API key")
        );
        assert_eq!(vendor_message(br#"{"error":"flat"}"#), None);
    }
}
