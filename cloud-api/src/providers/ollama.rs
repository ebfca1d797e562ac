//! Ollama's native API: `POST {base_url}/api/generate`, either with `prompt` and `suffix`
//! (Ollama applies the model's own template) or, with a fill-in-the-middle family, the
//! prompt rendered here and `raw: true` so Ollama sends it to the model untouched.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tandem_shared::CompletionRequest;

use super::{
    join_url, max_tokens, temperature, HttpTarget, Provider, ProviderCompletion, ProviderError,
};
use crate::prompt::{self, Family};

/// A provider of `kind = "ollama"`.
#[derive(Debug)]
pub struct OllamaProvider {
    target: HttpTarget,
    generate_url: String,
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
            let (prompt, suffix) = match self.family {
                Some(family) => (family.render(request), None),
                None => (
                    format!("{}{}", prompt::preamble(request), request.prefix),
                    Some(request.suffix.as_str()),
                ),
            };
            let stop = prompt::stop_sequences(request, self.family);
            let body = GenerateRequest {
                model: &self.model,
                prompt: &prompt,
                suffix,
                raw: self.family.is_some(),
                // One JSON object instead of a stream of lines.
                stream: false,
                options: GenerateOptions {
                    num_predict: max_tokens(request),
                    temperature: temperature(request),
                    stop: &stop,
                },
            };
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
