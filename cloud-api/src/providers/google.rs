//! Google's Gemini API: `POST {base_url}/v1beta/models/{model}:generateContent` with the
//! chat instruction prompt of [`prompt::chat`] and the key in `x-goog-api-key`.
//!
//! The key goes in a header, never in the `?key=` query parameter Google also accepts:
//! URLs end up in access logs, proxies' logs and error messages.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tandem_shared::CompletionRequest;

use eventsource_stream::Event;

use super::stream::{self, Step};
use super::{
    join_url, ChatPrompt, HttpTarget, PieceStream, Provider, ProviderCompletion, ProviderError,
    Role, StreamPiece,
};
use crate::prompt;
use crate::prompt::chat::AnswerCleaner;

/// Header carrying the API key.
pub(crate) const KEY_HEADER: &str = "x-goog-api-key";

/// A provider of `kind = "google"`.
#[derive(Debug)]
pub struct GoogleProvider {
    target: HttpTarget,
    url: String,
    /// `:streamGenerateContent` as server-sent events.
    stream_url: String,
    model: String,
}

impl GoogleProvider {
    pub(crate) fn new(target: HttpTarget, base_url: &str, model: String) -> GoogleProvider {
        // Google names models `models/gemini-…` in its own listings; either spelling works.
        let model_id = model.strip_prefix("models/").unwrap_or(&model);
        GoogleProvider {
            target,
            url: join_url(
                base_url,
                &format!("v1beta/models/{model_id}:generateContent"),
            ),
            stream_url: join_url(
                base_url,
                &format!("v1beta/models/{model_id}:streamGenerateContent?alt=sse"),
            ),
            model,
        }
    }

    fn body(prompt: &ChatPrompt) -> GenerateContentRequest<'_> {
        GenerateContentRequest {
            contents: prompt
                .turns
                .iter()
                .map(|turn| Content {
                    // Gemini calls the assistant `model`.
                    role: Some(match turn.role {
                        Role::User => "user",
                        Role::Assistant => "model",
                    }),
                    parts: [Part {
                        text: &turn.content,
                    }],
                })
                .collect(),
            system_instruction: Content {
                role: None,
                parts: [Part {
                    text: &prompt.system,
                }],
            },
            generation_config: GenerationConfig {
                max_output_tokens: prompt.max_tokens,
                temperature: prompt.temperature,
                stop_sequences: &prompt.stop,
            },
        }
    }

    async fn generate_content(
        &self,
        prompt: &ChatPrompt,
    ) -> Result<ProviderCompletion, ProviderError> {
        let body = GoogleProvider::body(prompt);
        let response: GenerateContentResponse = self
            .target
            .post_json(&self.url, &body, vendor_message)
            .await?;
        // Every answer has candidates, or prompt feedback saying why there are none; an
        // object with neither is not Gemini's.
        let Some(candidates) = response.candidates else {
            let Some(feedback) = response.prompt_feedback else {
                return Err(ProviderError::InvalidResponse {
                    provider: self.target.provider.clone(),
                    detail: "HTTP 200 body has neither `candidates` nor `promptFeedback`"
                        .to_owned(),
                });
            };
            // The prompt itself was blocked: no text, and the reason as finish reason.
            return Ok(ProviderCompletion {
                text: String::new(),
                finish_reason: feedback.block_reason,
                model: response.model_version.unwrap_or_else(|| self.model.clone()),
                prompt_tokens: response
                    .usage_metadata
                    .as_ref()
                    .and_then(|usage| usage.prompt_token_count),
                completion_tokens: None,
            });
        };
        let candidate = candidates.into_iter().next();
        let content = candidate.as_ref().map(Candidate::text).unwrap_or_default();
        let usage = response.usage_metadata.unwrap_or_default();
        Ok(ProviderCompletion {
            // Gemini applies the stop sequences itself.
            text: crate::prompt::chat::finish_answer(&content, prompt.bare_code, &[]).0,
            finish_reason: candidate.and_then(|candidate| candidate.finish_reason),
            model: response.model_version.unwrap_or_else(|| self.model.clone()),
            prompt_tokens: usage.prompt_token_count,
            completion_tokens: usage.candidates_token_count,
        })
    }

    async fn stream_content(&self, prompt: &ChatPrompt) -> Result<PieceStream, ProviderError> {
        let body = GoogleProvider::body(prompt);
        let response = self
            .target
            .post_stream(&self.stream_url, &body, vendor_message)
            .await?;
        let provider = self.target.provider.clone();
        let events = stream::sse_events(response, provider.clone());
        let target = self.target.clone();
        // Gemini sends no end marker: the chunk with a finish reason is the last.
        let pieces = stream::pieces(events, provider, true, move |event| {
            parse_stream_event(&target, &event)
        });
        // Gemini applies the stop sequences itself.
        Ok(stream::cleaned(
            pieces,
            AnswerCleaner::new(prompt.bare_code, Vec::new()),
            "STOP",
        ))
    }
}

/// One event of `:streamGenerateContent?alt=sse`: a whole `GenerateContentResponse`
/// holding the next text, or `{"error": {...}}` when generation failed after the 200.
fn parse_stream_event(target: &HttpTarget, event: &Event) -> Step {
    if event.data.trim().is_empty() {
        return Step::Skip;
    }
    if let Some(message) = vendor_message(event.data.as_bytes()) {
        #[derive(Deserialize)]
        struct Code {
            error: CodeOnly,
        }
        #[derive(Deserialize)]
        struct CodeOnly {
            #[serde(default)]
            code: Option<u16>,
        }
        let status = serde_json::from_str::<Code>(&event.data)
            .ok()
            .and_then(|code| code.error.code)
            .unwrap_or(500);
        return Step::Fail(target.status_error(status, target.vendor_text(&message)));
    }
    let chunk: GenerateContentResponse = match serde_json::from_str(&event.data) {
        Ok(chunk) => chunk,
        Err(error) => {
            return Step::Fail(ProviderError::InvalidResponse {
                provider: target.provider.clone(),
                detail: format!("stream event is not the expected JSON: {error}"),
            })
        }
    };
    let usage = chunk.usage_metadata.unwrap_or_default();
    let mut piece = StreamPiece {
        model: chunk.model_version,
        prompt_tokens: usage.prompt_token_count,
        completion_tokens: usage.candidates_token_count,
        ..StreamPiece::default()
    };
    match chunk
        .candidates
        .and_then(|candidates| candidates.into_iter().next())
    {
        Some(candidate) => {
            piece.text = candidate.text();
            piece.finish_reason = candidate.finish_reason;
        }
        None => match chunk.prompt_feedback {
            // The prompt was blocked: no text will come.
            Some(feedback) => {
                piece.finish_reason = Some(feedback.block_reason.unwrap_or_default());
            }
            None => return Step::Piece(piece),
        },
    }
    if piece.finish_reason.is_some() {
        Step::End(Some(piece))
    } else {
        Step::Piece(piece)
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentRequest<'a> {
    contents: Vec<Content<'a>>,
    system_instruction: Content<'a>,
    generation_config: GenerationConfig<'a>,
}

#[derive(Debug, Serialize)]
struct Content<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    parts: [Part<'a>; 1],
}

#[derive(Debug, Serialize)]
struct Part<'a> {
    text: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    max_output_tokens: u32,
    temperature: f32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Option<Vec<Candidate>>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    /// Absent when the candidate was blocked before any text.
    #[serde(default)]
    content: Option<AnswerContent>,
    /// `STOP`, `MAX_TOKENS`, `SAFETY`, ...
    #[serde(default)]
    finish_reason: Option<String>,
}

impl Candidate {
    /// The text parts, joined; thought summaries (parts marked `thought`) are skipped.
    fn text(&self) -> String {
        self.content
            .iter()
            .flat_map(|content| &content.parts)
            .filter(|part| part.thought != Some(true))
            .filter_map(|part| part.text.as_deref())
            .collect()
    }
}

#[derive(Debug, Deserialize)]
struct AnswerContent {
    #[serde(default)]
    parts: Vec<AnswerPart>,
}

#[derive(Debug, Deserialize)]
struct AnswerPart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: Option<u32>,
    /// Absent when the answer is empty.
    #[serde(default)]
    candidates_token_count: Option<u32>,
}

/// Google reports errors as
/// `{"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED"}}`, and on
/// some endpoints as a one-element array of that.
fn vendor_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorResponse {
        Object { error: ErrorDetail },
        List([ErrorDetailWrapper; 1]),
    }
    #[derive(Deserialize)]
    struct ErrorDetailWrapper {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    struct ErrorDetail {
        message: String,
        #[serde(default)]
        status: Option<String>,
    }
    let error = match serde_json::from_slice::<ErrorResponse>(body).ok()? {
        ErrorResponse::Object { error } => error,
        ErrorResponse::List([wrapper]) => wrapper.error,
    };
    Some(match error.status {
        Some(status) => format!("{status}: {}", error.message),
        None => error.message,
    })
}

impl Provider for GoogleProvider {
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
            self.generate_content(&prompt::chat::completion_prompt(request))
                .await
        })
    }

    fn stream<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<PieceStream, ProviderError>> {
        Box::pin(async move {
            self.stream_content(&prompt::chat::completion_prompt(request))
                .await
        })
    }

    fn can_chat(&self) -> bool {
        true
    }

    fn chat<'a>(
        &'a self,
        prompt: &'a ChatPrompt,
    ) -> BoxFuture<'a, Result<ProviderCompletion, ProviderError>> {
        Box::pin(self.generate_content(prompt))
    }

    fn chat_stream<'a>(
        &'a self,
        prompt: &'a ChatPrompt,
    ) -> BoxFuture<'a, Result<PieceStream, ProviderError>> {
        Box::pin(self.stream_content(prompt))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn error_body_message_is_extracted() {
        assert_eq!(
            vendor_message(
                br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#
            )
            .as_deref(),
            Some("RESOURCE_EXHAUSTED: Resource has been exhausted (e.g. check quota).")
        );
        assert_eq!(
            vendor_message(br#"[{"error":{"code":503,"message":"The model is overloaded."}}]"#)
                .as_deref(),
            Some("The model is overloaded.")
        );
        assert_eq!(vendor_message(b"<html>"), None);
    }

    #[test]
    fn request_has_the_wire_shape() {
        let stop = vec!["\n\n".to_owned()];
        let body = GenerateContentRequest {
            contents: vec![Content {
                role: Some("user"),
                parts: [Part { text: "hole" }],
            }],
            system_instruction: Content {
                role: None,
                parts: [Part { text: "sys" }],
            },
            generation_config: GenerationConfig {
                max_output_tokens: 7,
                temperature: 0.5,
                stop_sequences: &stop,
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({
                "contents": [{"role": "user", "parts": [{"text": "hole"}]}],
                "systemInstruction": {"parts": [{"text": "sys"}]},
                "generationConfig": {"maxOutputTokens": 7, "temperature": 0.5, "stopSequences": ["\n\n"]}
            })
        );
    }

    #[test]
    fn candidate_text_skips_thoughts() {
        let candidate: Candidate = serde_json::from_value(json!({
            "content": {"role": "model", "parts": [
                {"text": "thinking about it", "thought": true},
                {"text": "a + "},
                {"text": "b"}
            ]},
            "finishReason": "STOP",
            "index": 0
        }))
        .unwrap();
        assert_eq!(candidate.text(), "a + b");
        let blocked: Candidate = serde_json::from_value(json!({"finishReason": "SAFETY"})).unwrap();
        assert_eq!(blocked.text(), "");
    }
}
