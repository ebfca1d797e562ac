//! Request and response bodies of the cloud API's `/v1` endpoints.

use serde::{Deserialize, Serialize};

use crate::tier::Tier;

/// Body of `POST /v1/completions`: the code around the cursor, already cut to budget
/// and cleaned by the language server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompletionRequest {
    /// LSP language id of the document (`rust`, `python`, `typescriptreact`, ...).
    pub language: String,
    /// Path of the document relative to the workspace root, `/`-separated.
    pub path: String,
    /// Text before the cursor.
    pub prefix: String,
    /// Text after the cursor.
    pub suffix: String,
    /// Upper bound on generated tokens; the server applies its default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature; the server applies its default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Extra stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Code from elsewhere that helps the model, as structured parts so the cloud can
    /// render each provider's own fill-in-the-middle template.
    #[serde(default, skip_serializing_if = "CodeContext::is_empty")]
    pub context: CodeContext,
    /// Size of the whole document in bytes, so the cloud can apply the tier's file-size
    /// limit; absent from older clients, then only the body size limit applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// Answer as server-sent events ([`crate::stream`]): text as the model writes it,
    /// then a final event with the whole answer and its usage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

impl CompletionRequest {
    /// Estimated size of what the request asks the model to read: the shared
    /// [`estimate`](crate::tokens::estimate) of the prefix, the suffix and the text of
    /// every context part (scopes, imports, snippet texts; not snippet paths, nor a
    /// template's own tokens), summed. The language server fills its budget by this
    /// sum and the cloud checks the tier's limit with it, so a request cut to fit is
    /// never refused.
    pub fn estimated_tokens(&self) -> u32 {
        crate::tokens::estimate_all(
            [self.prefix.as_str(), self.suffix.as_str()]
                .into_iter()
                .chain(self.context.texts()),
        )
    }
}

/// Context beyond the text around the cursor, already redacted and cut to budget by the
/// language server, each list in priority order (most useful first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CodeContext {
    /// Signatures of the scopes enclosing the cursor, outermost first
    /// (`impl Parser`, `fn parse(&mut self) -> Result<Tree>`), kept even when their
    /// bodies do not fit in the prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The document's import statements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
    /// Definitions, from other open documents, of identifiers used near the cursor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub definitions: Vec<Snippet>,
    /// Code from other open documents most similar to the code around the cursor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub similar: Vec<Snippet>,
    /// Regions the user edited recently, in this or other documents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_edits: Vec<Snippet>,
}

impl CodeContext {
    /// Every text the context shows the model: scopes, imports and the snippets' texts
    /// (not their paths), what request size estimates count.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        let snippets = self
            .definitions
            .iter()
            .chain(&self.similar)
            .chain(&self.recent_edits)
            .map(|snippet| snippet.text.as_str());
        self.scopes
            .iter()
            .chain(&self.imports)
            .map(String::as_str)
            .chain(snippets)
    }

    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
            && self.imports.is_empty()
            && self.definitions.is_empty()
            && self.similar.is_empty()
            && self.recent_edits.is_empty()
    }
}

/// A piece of code from a document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snippet {
    /// Workspace-relative, `/`-separated path of the document it comes from.
    pub path: String,
    pub text: String,
}

/// Answer of `POST /v1/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompletionResponse {
    /// Unique id of this completion (`cmpl-…`), for logs and feedback.
    pub id: String,
    pub choices: Vec<Choice>,
    /// Name of the provider that answered (`local`, or a `[[providers]]` name).
    pub provider: String,
    /// Model that produced the text.
    pub model: String,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Choice {
    pub index: u32,
    /// Text to insert at the cursor.
    pub text: String,
    /// Why generation stopped (`stop`, `length`), when the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// Token counts, as reported by the provider or estimated where it gives none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }
}

/// Answer of `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeResponse {
    pub user: UserInfo,
    pub tier: Tier,
    /// Most context, in estimated tokens ([`crate::tokens::estimate`]), a completion
    /// request may carry for this user's tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_context_tokens: Option<u32>,
    /// Everything the tier allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<TierLimitsInfo>,
    /// The hourly request quota and what is left of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_this_hour: Option<QuotaInfo>,
    /// The daily request quota and what is left of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_today: Option<QuotaInfo>,
    /// The daily token budget (prompt plus completion) and what is left of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_today: Option<QuotaInfo>,
}

/// A tier's limits and permissions, as `GET /v1/me` reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierLimitsInfo {
    pub requests_per_hour: u32,
    pub requests_per_day: u32,
    /// 0 when there is no burst limit.
    pub burst_per_minute: u32,
    pub tokens_per_day: u64,
    pub max_file_size_mb: u32,
    pub max_context_tokens: u32,
    /// The configured providers this tier may use, by name.
    pub providers: Vec<String>,
    /// The features this tier may use.
    pub features: Vec<String>,
}

/// `GET /v1/usage`: the caller's usage over `[from, to)`, grouped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageResponse {
    /// RFC 3339, UTC.
    pub from: String,
    /// RFC 3339, UTC (exclusive).
    pub to: String,
    /// `day` or `model`.
    pub group_by: String,
    /// In key order: days as `YYYY-MM-DD`, or model names (`-` for none).
    pub groups: Vec<UsageGroupInfo>,
    /// All groups summed; `key` is `total`.
    pub total: UsageGroupInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageGroupInfo {
    pub key: String,
    pub requests: u64,
    /// Requests answered with an error status (refusals included).
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Estimated from the configured prices, in US dollars.
    pub cost_usd: f64,
}

/// One quota window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaInfo {
    pub limit: u64,
    pub remaining: u64,
    /// When the window starts over (RFC 3339, UTC).
    pub resets_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    pub id: String,
    pub email: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_completion_request_parses() {
        let request: CompletionRequest = serde_json::from_str(
            r#"{"language":"rust","path":"src/main.rs","prefix":"fn main() {","suffix":"}"}"#,
        )
        .unwrap();
        assert_eq!(request.language, "rust");
        assert_eq!(request.max_tokens, None);
        assert!(request.stop.is_empty());
        // Optional fields are left out on the wire when unset.
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"language":"rust","path":"src/main.rs","prefix":"fn main() {","suffix":"}"}"#
        );
    }

    #[test]
    fn usage_total_saturates() {
        assert_eq!(Usage::new(u32::MAX, 1).total_tokens, u32::MAX);
        assert_eq!(Usage::new(3, 4).total_tokens, 7);
    }
}
