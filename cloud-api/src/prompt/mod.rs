//! Fill-in-the-middle prompts: a [`CompletionRequest`] (prefix, suffix, path, language and
//! the structured context) rendered in the template a model family was trained on.
//!
//! Families with file-separator tokens (StarCoder, StarCoder2, Qwen2.5-Coder) get other
//! files as separate file blocks; the others (CodeLlama, DeepSeek-Coder, Codestral) get
//! them as blocks headed by a `Path:` comment in the document's language, the form
//! DeepSeek-Coder's repository-level examples use. Without context every family renders
//! its plain published template, byte for byte.

pub mod chat;
mod comment;
mod parts;
pub mod tasks;
#[cfg(test)]
mod tests;

use tandem_shared::CompletionRequest;

use comment::CommentSyntax;

/// The repository name Qwen2.5-Coder's repository-level format starts with. The request
/// does not carry the workspace's name; the format needs a name line, and a neutral one
/// reads as "some project" to the model.
const REPOSITORY_NAME: &str = "workspace";

/// A family of models sharing one fill-in-the-middle template and its special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// StarCoder / StarCoderBase (and models trained on its tokens: CodeQwen1.5,
    /// StableCode): `<fim_prefix>…<fim_suffix>…<fim_middle>`, `<filename>` headers.
    StarCoder,
    /// StarCoder2: StarCoder's FIM tokens plus `<file_sep>` between repository files.
    StarCoder2,
    /// Code Llama: `<PRE> {prefix} <SUF>{suffix} <MID>`, ends with `<EOT>`.
    CodeLlama,
    /// DeepSeek-Coder (v1 and v2): `<｜fim▁begin｜>…<｜fim▁hole｜>…<｜fim▁end｜>`.
    DeepSeekCoder,
    /// Qwen2.5-Coder: `<|fim_prefix|>…<|fim_suffix|>…<|fim_middle|>`, repository level
    /// with `<|repo_name|>` and `<|file_sep|>`.
    Qwen,
    /// Codestral: suffix first, `[SUFFIX]{suffix}[PREFIX]{prefix}`.
    Codestral,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::StarCoder,
        Family::StarCoder2,
        Family::CodeLlama,
        Family::DeepSeekCoder,
        Family::Qwen,
        Family::Codestral,
    ];

    /// The name used for `template` in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::StarCoder => "starcoder",
            Family::StarCoder2 => "starcoder2",
            Family::CodeLlama => "codellama",
            Family::DeepSeekCoder => "deepseek-coder",
            Family::Qwen => "qwen",
            Family::Codestral => "codestral",
        }
    }

    /// The family of a model, from its name as a provider knows it (`qwen2.5-coder:7b-base`,
    /// `bigcode/starcoder2-15b`, `codestral-latest`); `None` when it is not a known
    /// fill-in-the-middle family, so the request goes out without a template.
    pub fn detect(model: &str) -> Option<Family> {
        let name = model.to_ascii_lowercase().replace(['_', ' '], "-");
        let has = |needle: &str| name.contains(needle);
        // Order matters: `codeqwen` and `starcoder2` contain other families' names.
        if has("codestral") {
            Some(Family::Codestral)
        } else if has("starcoder2") {
            Some(Family::StarCoder2)
        } else if has("starcoder") || has("codeqwen") || has("stable-code") || has("stablecode") {
            // CodeQwen1.5 and StableCode were trained with StarCoder's FIM tokens.
            Some(Family::StarCoder)
        } else if has("codellama") || has("code-llama") {
            Some(Family::CodeLlama)
        } else if has("deepseek-coder") {
            Some(Family::DeepSeekCoder)
        } else if has("qwen") && has("coder") {
            // Only the Coder models were trained to fill in the middle; plain Qwen chat
            // models have the tokens in their vocabulary but not the skill.
            Some(Family::Qwen)
        } else {
            None
        }
    }

    /// Stop sequences the family needs upstream: its end-of-text token and the tokens a
    /// model emits when it runs on into another file or another FIM section.
    pub fn stop_tokens(self) -> &'static [&'static str] {
        match self {
            Family::StarCoder => &["<|endoftext|>", "<filename>", "<fim_prefix>"],
            Family::StarCoder2 => &["<|endoftext|>", "<file_sep>", "<fim_prefix>", "<repo_name>"],
            Family::CodeLlama => &["<EOT>"],
            Family::DeepSeekCoder => &[
                "<｜end▁of▁sentence｜>",
                "<｜fim▁begin｜>",
                "<｜fim▁hole｜>",
                "<｜fim▁end｜>",
            ],
            Family::Qwen => &[
                "<|endoftext|>",
                "<|file_sep|>",
                "<|fim_pad|>",
                "<|repo_name|>",
                "<|fim_prefix|>",
                "<|im_end|>",
            ],
            Family::Codestral => &["</s>", "[PREFIX]", "[SUFFIX]"],
        }
    }

    /// The whole prompt, sent as-is (Ollama `raw`, OpenAI `prompt` without `suffix`).
    pub fn render(self, request: &CompletionRequest) -> String {
        let parts = parts::collect(request);
        let prefix = &request.prefix;
        let suffix = &request.suffix;
        let current = &parts.current;
        match self {
            Family::StarCoder => {
                let mut head = String::new();
                if !parts.files.is_empty() {
                    for block in &parts.files {
                        head.push_str(&format!("<filename>{}\n{}\n", block.path, block.text));
                    }
                    head.push_str(&format!("<filename>{}\n", parts.path));
                }
                format!("<fim_prefix>{head}{current}{prefix}<fim_suffix>{suffix}<fim_middle>")
            }
            Family::StarCoder2 => {
                if parts.files.is_empty() {
                    return format!(
                        "<fim_prefix>{current}{prefix}<fim_suffix>{suffix}<fim_middle>"
                    );
                }
                // StarCoder2's repository format: the FIM file's path follows <fim_prefix>.
                let mut out = String::new();
                for block in &parts.files {
                    out.push_str(&format!("<file_sep>{}\n{}\n", block.path, block.text));
                }
                out.push_str(&format!(
                    "<file_sep><fim_prefix>{}\n{current}{prefix}<fim_suffix>{suffix}<fim_middle>",
                    parts.path
                ));
                out
            }
            Family::Qwen => {
                if parts.files.is_empty() {
                    return format!(
                        "<|fim_prefix|>{current}{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
                    );
                }
                let mut out = format!("<|repo_name|>{REPOSITORY_NAME}\n");
                for block in &parts.files {
                    out.push_str(&format!("<|file_sep|>{}\n{}\n", block.path, block.text));
                }
                out.push_str(&format!(
                    "<|file_sep|>{}\n<|fim_prefix|>{current}{prefix}<|fim_suffix|>{suffix}<|fim_middle|>",
                    parts.path
                ));
                out
            }
            Family::CodeLlama => {
                let preamble = parts::commented_preamble(request, &parts);
                format!("<PRE> {preamble}{prefix} <SUF>{suffix} <MID>")
            }
            Family::DeepSeekCoder => {
                let preamble = parts::commented_preamble(request, &parts);
                format!("<｜fim▁begin｜>{preamble}{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>")
            }
            Family::Codestral => {
                let preamble = parts::commented_preamble(request, &parts);
                format!("[SUFFIX]{suffix}[PREFIX]{preamble}{prefix}")
            }
        }
    }
}

/// What goes before the prefix when no template is used (`template = "none"`): other
/// files as comment-headed blocks, then the imports and scopes the prefix lacks. Empty
/// when the request has no context, so such requests go out exactly as before.
pub fn preamble(request: &CompletionRequest) -> String {
    let parts = parts::collect(request);
    parts::commented_preamble(request, &parts)
}

/// For instruction (chat) prompts: other files as comment-headed blocks (empty without
/// any), and the current file's missing imports and scopes (to go before the prefix).
pub fn chat_context(request: &CompletionRequest) -> (String, String) {
    let parts = parts::collect(request);
    let comment = CommentSyntax::detect(&request.language, &request.path);
    (parts::commented_files(comment, &parts), parts.current)
}

/// The stop list sent upstream: the request's own sequences first, then the family's,
/// each once.
pub fn stop_sequences(request: &CompletionRequest, family: Option<Family>) -> Vec<String> {
    let mut stop = request.stop.clone();
    for token in family.map(Family::stop_tokens).unwrap_or_default() {
        if !stop.iter().any(|sequence| sequence == token) {
            stop.push((*token).to_owned());
        }
    }
    stop
}
