//! Anthropic's Messages API: `POST {base_url}/v1/messages` with the chat instruction
//! prompt of [`prompt::chat`], the key in `x-api-key` and a pinned `anthropic-version`.
//!
//! Two limits of the API are bridged here rather than surfaced as vendor errors: it
//! refuses stop sequences made only of whitespace (`"\n"`, `"\n\n"`, the usual ones for
//! code), so those are applied to the answer instead; and it takes temperatures up to 1
//! where the cloud API accepts up to 2, so higher values are clamped.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tandem_shared::CompletionRequest;

use eventsource_stream::Event;

use super::stream::{self, Step};
use super::{
    join_url, ChatPrompt, HttpTarget, PieceStream, Provider, ProviderCompletion, ProviderError,
    StreamPiece, WireMessage,
};
use crate::prompt;
use crate::prompt::chat::AnswerCleaner;

/// Header carrying the API key.
pub(crate) const KEY_HEADER: &str = "x-api-key";
/// The API version every request asks for; the response shapes read here are this
/// version's.
pub(crate) const API_VERSION: &str = "2023-06-01";
/// Highest temperature the Messages API accepts.
const MAX_TEMPERATURE: f32 = 1.0;
/// `stop_reason` reported when the answer was cut at a stop sequence applied here, the
/// value Anthropic uses when it stops at one itself.
const STOP_SEQUENCE_REASON: &str = "stop_sequence";

/// A provider of `kind = "anthropic"`.
#[derive(Debug)]
pub struct AnthropicProvider {
    target: HttpTarget,
    url: String,
    model: String,
}

impl AnthropicProvider {
    pub(crate) fn new(target: HttpTarget, base_url: &str, model: String) -> AnthropicProvider {
        AnthropicProvider {
            target: target.with_header("anthropic-version", API_VERSION),
            url: join_url(base_url, "v1/messages"),
            model,
        }
    }

    fn body<'a>(
        &'a self,
        prompt: &'a ChatPrompt,
        sent_stops: &'a [&'a str],
        stream: bool,
    ) -> MessagesRequest<'a> {
        MessagesRequest {
            model: &self.model,
            max_tokens: prompt.max_tokens,
            temperature: prompt.temperature.min(MAX_TEMPERATURE),
            system: &prompt.system,
            messages: prompt.wire_messages(false),
            stop_sequences: sent_stops,
            stream,
        }
    }

    async fn messages(&self, prompt: &ChatPrompt) -> Result<ProviderCompletion, ProviderError> {
        let (sent_stops, local_stops) = split_stop_sequences(&prompt.stop);
        let body = self.body(prompt, &sent_stops, false);
        let response: MessagesResponse = self
            .target
            .post_json(&self.url, &body, vendor_message)
            .await?;
        let (mut text, _) =
            crate::prompt::chat::finish_answer(&response.text(), prompt.bare_code, &[]);
        let mut finish_reason = response.stop_reason;
        if cut_at_first_stop(&mut text, &local_stops) {
            finish_reason = Some(STOP_SEQUENCE_REASON.to_owned());
        }
        let usage = response.usage.unwrap_or_default();
        Ok(ProviderCompletion {
            text,
            finish_reason,
            model: response.model.unwrap_or_else(|| self.model.clone()),
            prompt_tokens: usage.prompt_tokens(),
            completion_tokens: usage.output_tokens,
        })
    }

    async fn stream_messages(&self, prompt: &ChatPrompt) -> Result<PieceStream, ProviderError> {
        let (sent_stops, local_stops) = split_stop_sequences(&prompt.stop);
        let body = self.body(prompt, &sent_stops, true);
        let response = self
            .target
            .post_stream(&self.url, &body, vendor_message)
            .await?;
        let provider = self.target.provider.clone();
        let events = stream::sse_events(response, provider.clone());
        let target = self.target.clone();
        let pieces = stream::pieces(events, provider, true, move |event| {
            parse_stream_event(&target, &event)
        });
        let local_stops = local_stops.into_iter().map(str::to_owned).collect();
        Ok(stream::cleaned(
            pieces,
            AnswerCleaner::new(prompt.bare_code, local_stops),
            STOP_SEQUENCE_REASON,
        ))
    }
}

/// The data of a streamed answer's events; which fields are set depends on `type`.
#[derive(Debug, Deserialize)]
struct StreamEvent {
    #[serde(rename = "type")]
    kind: String,
    /// `message_start`: the message so far, with the model and the prompt's usage.
    #[serde(default)]
    message: Option<StartedMessage>,
    /// `content_block_start`: a block, possibly with text already.
    #[serde(default)]
    content_block: Option<ContentBlock>,
    /// `content_block_delta` (`text_delta`) and `message_delta` (`stop_reason`).
    #[serde(default)]
    delta: Option<StreamDelta>,
    /// `message_delta`: output tokens so far.
    #[serde(default)]
    usage: Option<WireUsage>,
    /// `error`: what went wrong after the 200.
    #[serde(default)]
    error: Option<StreamError>,
}

#[derive(Debug, Deserialize)]
struct StartedMessage {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct StreamDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StreamError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The HTTP status Anthropic documents for each error type, so an error inside a stream
/// is handled as the same error before it would be.
fn error_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

fn parse_stream_event(target: &HttpTarget, event: &Event) -> Step {
    let data: StreamEvent = match serde_json::from_str(&event.data) {
        Ok(data) => data,
        Err(error) => {
            return Step::Fail(ProviderError::InvalidResponse {
                provider: target.provider.clone(),
                detail: format!(
                    "stream event `{}` is not the expected JSON: {error}",
                    event.event
                ),
            })
        }
    };
    match data.kind.as_str() {
        "message_start" => {
            let message = data.message;
            let usage = message.as_ref().and_then(|message| message.usage.as_ref());
            Step::Piece(StreamPiece {
                model: message.as_ref().and_then(|message| message.model.clone()),
                prompt_tokens: usage.and_then(WireUsage::prompt_tokens),
                ..StreamPiece::default()
            })
        }
        "content_block_start" => match data.content_block {
            Some(block) if block.kind == "text" => {
                Step::Piece(StreamPiece::text(block.text.unwrap_or_default()))
            }
            _ => Step::Skip,
        },
        "content_block_delta" => match data.delta {
            Some(StreamDelta {
                kind: Some(kind),
                text: Some(text),
                ..
            }) if kind == "text_delta" => Step::Piece(StreamPiece::text(text)),
            // Thinking, signatures, tool input: not text for the editor.
            _ => Step::Skip,
        },
        "message_delta" => Step::Piece(StreamPiece {
            finish_reason: data.delta.and_then(|delta| delta.stop_reason),
            completion_tokens: data.usage.and_then(|usage| usage.output_tokens),
            ..StreamPiece::default()
        }),
        "message_stop" => Step::End(None),
        "error" => {
            let error = data.error;
            let kind = error
                .as_ref()
                .and_then(|error| error.kind.clone())
                .unwrap_or_default();
            let message = error.and_then(|error| error.message).unwrap_or_default();
            let message = target.vendor_text(&format!("{kind}: {message}"));
            Step::Fail(target.status_error(error_status(&kind), message))
        }
        // `ping`, `content_block_stop`, and event types added after this version.
        _ => Step::Skip,
    }
}

/// Splits the request's stop sequences into those the API accepts and those made only of
/// whitespace, which it refuses with a 400 ("each stop sequence must contain
/// non-whitespace") and which are applied to the answer instead.
fn split_stop_sequences(stop: &[String]) -> (Vec<&str>, Vec<&str>) {
    stop.iter()
        .map(String::as_str)
        .filter(|sequence| !sequence.is_empty())
        .partition(|sequence| !sequence.trim().is_empty())
}

/// Cuts `text` before the earliest occurrence of any of `stops`, as the API would have;
/// whether it cut.
fn cut_at_first_stop(text: &mut String, stops: &[&str]) -> bool {
    let earliest = stops.iter().filter_map(|stop| text.find(stop)).min();
    match earliest {
        Some(index) => {
            text.truncate(index);
            true
        }
        None => false,
    }
}

#[derive(Debug, Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    temperature: f32,
    system: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "<[&str]>::is_empty")]
    stop_sequences: &'a [&'a str],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Debug, Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    model: Option<String>,
    /// Text blocks carry the answer; other kinds (thinking, tool use) are skipped.
    content: Vec<ContentBlock>,
    /// `end_turn`, `max_tokens`, `stop_sequence`, ...
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

impl MessagesResponse {
    /// The text blocks, joined.
    fn text(&self) -> String {
        self.content
            .iter()
            .filter(|block| block.kind == "text")
            .filter_map(|block| block.text.as_deref())
            .collect()
    }
}

#[derive(Debug, Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u32>,
    /// Prompt tokens written to, or read from, the prompt cache: not part of
    /// `input_tokens` but read by the model all the same.
    #[serde(default)]
    cache_creation_input_tokens: Option<u32>,
    #[serde(default)]
    cache_read_input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
}

impl WireUsage {
    /// Every prompt token the model read; `None` when the answer counted none.
    fn prompt_tokens(&self) -> Option<u32> {
        let input = self.input_tokens?;
        Some(
            input
                .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
                .saturating_add(self.cache_read_input_tokens.unwrap_or(0)),
        )
    }
}

/// Anthropic reports errors as
/// `{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}`.
fn vendor_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorResponse {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    struct ErrorDetail {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        message: String,
    }
    let error = serde_json::from_slice::<ErrorResponse>(body).ok()?.error;
    Some(match error.kind {
        Some(kind) => format!("{kind}: {}", error.message),
        None => error.message,
    })
}

impl Provider for AnthropicProvider {
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
            self.messages(&prompt::chat::completion_prompt(request))
                .await
        })
    }

    fn stream<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<PieceStream, ProviderError>> {
        Box::pin(async move {
            self.stream_messages(&prompt::chat::completion_prompt(request))
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
        Box::pin(self.messages(prompt))
    }

    fn chat_stream<'a>(
        &'a self,
        prompt: &'a ChatPrompt,
    ) -> BoxFuture<'a, Result<PieceStream, ProviderError>> {
        Box::pin(self.stream_messages(prompt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_message_is_extracted() {
        assert_eq!(
            vendor_message(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#
            )
            .as_deref(),
            Some("overloaded_error: Overloaded")
        );
        assert_eq!(
            vendor_message(br#"{"error":{"message":"no type"}}"#).as_deref(),
            Some("no type")
        );
        assert_eq!(vendor_message(b"<html>"), None);
        assert_eq!(vendor_message(br#"{"error":"flat"}"#), None);
    }

    #[test]
    fn whitespace_stop_sequences_are_kept_back() {
        let stop = ["\n\n".to_owned(), "}".to_owned(), " \t".to_owned()];
        let (sent, local) = split_stop_sequences(&stop);
        assert_eq!(sent, ["}"]);
        assert_eq!(local, ["\n\n", " \t"]);
    }

    #[test]
    fn answers_are_cut_at_the_earliest_local_stop() {
        let mut text = "a + b\n\nfn next() {}\n".to_owned();
        assert!(cut_at_first_stop(&mut text, &["\n\n", "\n"]));
        assert_eq!(text, "a + b");
        let mut text = "a + b".to_owned();
        assert!(!cut_at_first_stop(&mut text, &["\n"]));
        assert_eq!(text, "a + b");
    }

    #[test]
    fn request_has_the_wire_shape() {
        let body = MessagesRequest {
            model: "claude-x",
            max_tokens: 7,
            temperature: 0.5,
            system: "sys",
            messages: vec![WireMessage {
                role: "user",
                content: "hole",
            }],
            stop_sequences: &[],
            stream: false,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"model":"claude-x","max_tokens":7,"temperature":0.5,
                "system":"sys","messages":[{"role":"user","content":"hole"}]})
        );
    }

    #[test]
    fn response_text_blocks_are_joined_and_others_skipped() {
        let response: MessagesResponse = serde_json::from_value(serde_json::json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "a + "},
                {"type": "text", "text": "b"}
            ],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 2}
        }))
        .unwrap();
        assert_eq!(response.text(), "a + b");
        let usage = response.usage.unwrap();
        assert_eq!(usage.prompt_tokens(), Some(15));
        assert_eq!(usage.output_tokens, Some(2));
        assert_eq!(WireUsage::default().prompt_tokens(), None);
    }
}
