//! OpenAI-compatible servers: `POST {base_url}/completions` (prompt + suffix, or with a
//! fill-in-the-middle family the prompt rendered here and no suffix) or
//! `POST {base_url}/chat/completions` with a fill-in-the-middle instruction.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tandem_shared::CompletionRequest;

use super::{
    join_url, max_tokens, temperature, HttpTarget, Provider, ProviderCompletion, ProviderError,
};
use crate::config::OpenAiEndpoint;
use crate::prompt::{self, Family};

/// A provider of `kind = "openai"`.
#[derive(Debug)]
pub struct OpenAiProvider {
    target: HttpTarget,
    url: String,
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
            model,
            endpoint,
            family,
        }
    }

    async fn complete_text(
        &self,
        request: &CompletionRequest,
    ) -> Result<ProviderCompletion, ProviderError> {
        let (prompt, suffix) = match self.family {
            Some(family) => (family.render(request), None),
            None => (
                format!("{}{}", prompt::preamble(request), request.prefix),
                Some(request.suffix.as_str()),
            ),
        };
        let stop = prompt::stop_sequences(request, self.family);
        let body = CompletionsRequest {
            model: &self.model,
            prompt: &prompt,
            suffix,
            max_tokens: max_tokens(request),
            temperature: temperature(request),
            stop: &stop,
        };
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

    async fn complete_chat(
        &self,
        request: &CompletionRequest,
    ) -> Result<ProviderCompletion, ProviderError> {
        let user_prompt = prompt::chat::user_prompt(request);
        let body = ChatRequest {
            model: &self.model,
            messages: [
                ChatMessage {
                    role: "system",
                    content: prompt::chat::SYSTEM_PROMPT,
                },
                ChatMessage {
                    role: "user",
                    content: &user_prompt,
                },
            ],
            max_tokens: max_tokens(request),
            temperature: temperature(request),
            stop: &request.stop,
        };
        let response: ChatResponse = self
            .target
            .post_json(&self.url, &body, vendor_message)
            .await?;
        let choice = response.choices.into_iter().next();
        let content = choice
            .as_ref()
            .and_then(|choice| choice.message.as_ref())
            .and_then(|message| message.content.clone())
            .unwrap_or_default();
        Ok(ProviderCompletion {
            text: prompt::chat::clean_answer(&content),
            finish_reason: choice.and_then(|choice| choice.finish_reason),
            model: response.model.unwrap_or_else(|| self.model.clone()),
            prompt_tokens: response.usage.and_then(|usage| usage.prompt_tokens),
            completion_tokens: response.usage.and_then(|usage| usage.completion_tokens),
        })
    }
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
}

#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [ChatMessage<'a>; 2],
    max_tokens: u32,
    temperature: f32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
}

#[derive(Debug, Serialize)]
struct ChatMessage<'a> {
    role: &'a str,
    content: &'a str,
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
                OpenAiEndpoint::Chat => self.complete_chat(request).await,
            }
        })
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
