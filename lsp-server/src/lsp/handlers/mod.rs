//! One file per LSP method; the shared path from a cursor to a suggestion lives here.

pub(crate) mod completion;
pub(crate) mod did_change;
pub(crate) mod did_change_configuration;
pub(crate) mod did_close;
pub(crate) mod did_open;
pub(crate) mod initialize;
pub(crate) mod inline_completion;

use std::sync::Arc;

use tandem_shared::{tokens, CompletionRequest};

use super::error::HandlerError;
use super::{from_proto, RequestConfig, TandemServer};
use crate::cloud::{CloudError, CloudTarget};
use crate::context;
use crate::document::{
    self, position, ByteOffset, DocumentSnapshot, LspPosition, PositionEncoding,
};
use crate::engine::{RequestKey, Shown, Stream};
use crate::postprocess::{self, PostprocessInput};
use crate::privacy;
use crate::syntax::Language;

/// A suggestion for one cursor, with what the caller needs to place it.
pub(crate) struct Suggestion {
    pub(crate) text: String,
    pub(crate) snapshot: DocumentSnapshot,
    pub(crate) cursor: ByteOffset,
    pub(crate) encoding: PositionEncoding,
}

/// How a request was triggered, which decides whether it is debounced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// The user asked (inline `triggerKind` 1): answered as fast as possible.
    Invoked,
    /// Sent by the editor while the user types: waits for typing to pause.
    Automatic,
}

/// Asks for a completion at `position` of `uri`, as a pipeline:
///
/// 1. snapshot the document and supersede older requests of `stream` for it;
/// 2. [`build_request`]: cut the context to budget;
/// 3. [`local_answer`]: the cache, or typing-through the suggestion on screen;
/// 4. debounce an [`Trigger::Automatic`] request;
/// 5. [`call_cloud`], shared with identical requests in flight;
/// 6. [`finish_suggestion`]: drop a stale answer, remember what is shown.
///
/// Everything up to step 3 is synchronous, so the snapshot and the superseding happen
/// in the handler's first poll, after every edit and request the client sent before
/// this one; no lock is held across an await. A superseded request answers `Ok(None)`
/// at once and drops its share of the HTTP call (aborting it when nobody else wants
/// it); a request cancelled by `$/cancelRequest` is dropped by tower-lsp, to the same
/// effect. `Ok(None)` also means "nothing to suggest" (no key, back-off, a cloud
/// error — all logged, none worth an error popup).
pub(crate) async fn suggest(
    server: &TandemServer,
    uri: &str,
    position: LspPosition,
    stream: Stream,
    trigger: Trigger,
) -> Result<Option<Suggestion>, HandlerError> {
    let snapshot = server.documents.snapshot(uri)?;
    let config = server.request_config();
    let cursor = position::offset_of(&snapshot.text, position, config.encoding)?;
    let mut ticket = server.engine.begin(uri, stream);
    tracing::debug!(uri = %snapshot.uri, version = snapshot.version, "completion context taken");

    let Some(target) = TandemServer::target(&config) else {
        tracing::debug!("no API key configured; no completion");
        server
            .notify_auth_problem(
                "Tandem: no API key is configured. Run `tandem login` in a terminal or set `tandem.apiKey` in the editor settings."
                    .to_owned(),
            )
            .await;
        return Ok(None);
    };

    if server.is_excluded(uri, &config.roots) {
        tracing::debug!("document is excluded by the privacy rules; no completion");
        return Ok(None);
    }

    let prepared = build_request(&snapshot, cursor, &config, uri);
    let request = &prepared.request;
    let key = RequestKey::new(&target.server, request);

    if let Some(text) = local_answer(server, uri, key, cursor, request) {
        tracing::debug!("answered locally");
        return finish_suggestion(server, uri, &text, snapshot, cursor, &prepared, &config);
    }

    if trigger == Trigger::Automatic && !config.limits.debounce.is_zero() {
        tokio::select! {
            biased;
            () = ticket.superseded() => {
                tracing::debug!("superseded while debouncing");
                return Ok(None);
            }
            () = tokio::time::sleep(config.limits.debounce) => {}
        }
        // Typed on without asking again: the answer would be stale, so do not ask.
        if server.documents.version(uri) != Some(snapshot.version) {
            return Err(HandlerError::ContentModified);
        }
    }

    let result = tokio::select! {
        biased;
        () = ticket.superseded() => {
            tracing::debug!("superseded while in flight; call abandoned");
            return Ok(None);
        }
        result = call_cloud(server, key, &target, request) => result,
    };

    match result {
        Ok(text) => finish_suggestion(server, uri, &text, snapshot, cursor, &prepared, &config),
        Err(error) => {
            if server.documents.version(uri) != Some(snapshot.version) {
                return Err(HandlerError::ContentModified);
            }
            report_cloud_error(server, &target, &config, &error).await;
            Ok(None)
        }
    }
}

/// Step 2: the request body for the cloud: the text around the cursor cut to budget,
/// secrets redacted, and the mode (single- or multi-line) set from the syntax at the
/// cursor. Everything the cache key covers is decided here.
fn build_request(
    snapshot: &DocumentSnapshot,
    cursor: ByteOffset,
    config: &RequestConfig,
    uri: &str,
) -> PreparedRequest {
    let limits = config.limits;
    let window = document::text_window(
        &snapshot.text,
        cursor,
        limits.max_prefix_chars.saturating_add(1),
        limits.max_suffix_chars.saturating_add(1),
    );
    let context = context::completion_context(
        &window.text,
        window.cursor,
        limits.max_prefix_chars,
        limits.max_suffix_chars,
    );
    let path = from_proto::document_path(uri, &config.roots);
    let (prefix, suffix, redacted) = privacy::redact_around_cursor(context.prefix, context.suffix);
    if redacted > 0 {
        tracing::debug!(redacted, "secrets redacted from the completion context");
    }
    let (prefix, suffix) = fit_token_budget(prefix, suffix, FALLBACK_MAX_CONTEXT_TOKENS);
    let language = Language::detect(&snapshot.language_id, &path);
    let mode = postprocess::completion_mode(language, &prefix, &suffix);
    let request = CompletionRequest {
        language: snapshot.language_id.clone(),
        path,
        prefix,
        suffix,
        max_tokens: Some(mode.max_tokens()),
        temperature: None,
        stop: postprocess::stop_sequences(mode, language),
        context: Default::default(),
    };
    tracing::trace!(
        path = %request.path,
        prefix_chars = request.prefix.chars().count(),
        suffix_chars = request.suffix.chars().count(),
        ?mode,
        "completion request built"
    );
    PreparedRequest {
        request,
        language,
        mode,
    }
}

/// The request body and what [`build_request`] decided about the code at the cursor,
/// which post-processing needs again: worked out once per request (the mode may parse
/// the window).
struct PreparedRequest {
    request: CompletionRequest,
    language: Option<Language>,
    mode: postprocess::CompletionMode,
}

/// The smallest tier's context limit (free: 4,000 tokens). Until the server reads the
/// user's own limit from `/v1/me`, staying under it means no tier refuses the request.
const FALLBACK_MAX_CONTEXT_TOKENS: u32 = 4_000;

/// Drops whole lines, first from the far end of the prefix, then from the far end of
/// the suffix, until the pair fits `max_tokens` by the estimate the cloud checks with.
fn fit_token_budget(mut prefix: String, mut suffix: String, max_tokens: u32) -> (String, String) {
    let mut total = tokens::estimate(&prefix).saturating_add(tokens::estimate(&suffix));
    while total > max_tokens {
        if let Some(newline) = prefix.find('\n') {
            prefix.drain(..=newline);
        } else if let Some(newline) = suffix.rfind('\n') {
            suffix.truncate(newline);
        } else {
            // One huge line on each side: keep the text nearest the cursor.
            let keep = |text: &str| text.chars().count() / 2;
            let prefix_chars = keep(&prefix);
            prefix = prefix.chars().skip(prefix_chars).collect();
            suffix = suffix.chars().take(keep(&suffix)).collect();
            if prefix.is_empty() && suffix.is_empty() {
                break;
            }
        }
        total = tokens::estimate(&prefix).saturating_add(tokens::estimate(&suffix));
    }
    (prefix, suffix)
}

/// Step 3: an answer without the network: the cache for exactly this request, or the
/// rest of the suggestion on screen when the user typed its first characters. A
/// typed-through remainder is cached under the new request, so asking again hits.
fn local_answer(
    server: &TandemServer,
    uri: &str,
    key: RequestKey,
    cursor: ByteOffset,
    request: &CompletionRequest,
) -> Option<Arc<str>> {
    if let Some(text) = server.engine.cached(key) {
        return Some(text);
    }
    let rest = server
        .engine
        .type_through(uri, cursor.0, &request.prefix, &request.suffix)?;
    server.engine.remember(key, rest.clone());
    Some(rest)
}

/// Step 5: the model's text for `request`, from the cache (an identical request may
/// have finished while this one was debounced) or from one upstream call shared with
/// identical requests in flight.
async fn call_cloud(
    server: &TandemServer,
    key: RequestKey,
    target: &CloudTarget,
    request: &CompletionRequest,
) -> Result<Arc<str>, Arc<CloudError>> {
    if let Some(text) = server.engine.cached(key) {
        return Ok(text);
    }
    server
        .engine
        .call(key, || {
            let cloud = server.cloud.clone();
            let target = target.clone();
            let request = request.clone();
            async move {
                let response = cloud.complete(&target, &request).await?;
                Ok(response
                    .choices
                    .into_iter()
                    .next()
                    .map(|choice| choice.text)
                    .unwrap_or_default())
            }
        })
        .await
}

/// Step 6: the suggestion to show, unless the document moved on (a suggestion for text
/// the user has already changed would be inserted in the wrong place; the client asks
/// again for the new version) or there is nothing to show. Post-processing belongs
/// here, before the text is remembered as shown.
fn finish_suggestion(
    server: &TandemServer,
    uri: &str,
    text: &str,
    snapshot: DocumentSnapshot,
    cursor: ByteOffset,
    prepared: &PreparedRequest,
    config: &RequestConfig,
) -> Result<Option<Suggestion>, HandlerError> {
    let request = &prepared.request;
    if server.documents.version(uri) != Some(snapshot.version) {
        return Err(HandlerError::ContentModified);
    }
    // A model may echo a redaction placeholder; it must never reach the user's code.
    let Some(scrubbed) = privacy::scrub_suggestion(text) else {
        return Ok(None);
    };
    let Some(text) = postprocess::postprocess(&PostprocessInput {
        language: prepared.language,
        prefix: &request.prefix,
        suffix: &request.suffix,
        suggestion: &scrubbed,
        mode: prepared.mode,
    }) else {
        return Ok(None);
    };
    let text = text.as_str();
    server.engine.shown(
        uri,
        Shown {
            cursor: cursor.0,
            prefix: request.prefix.clone(),
            suffix: request.suffix.clone(),
            text: Arc::from(text),
        },
    );
    Ok(Some(Suggestion {
        text: text.to_owned(),
        snapshot,
        cursor,
        encoding: config.encoding,
    }))
}

/// Logs a failed call; tells the user (once) about a rejected key.
async fn report_cloud_error(
    server: &TandemServer,
    target: &CloudTarget,
    config: &RequestConfig,
    error: &CloudError,
) {
    match error {
        CloudError::Unauthorized => {
            tracing::warn!(server = %target.server, key_source = %config.credentials.api_key_source, "API key rejected");
            server
                .notify_auth_problem(format!(
                    "Tandem: {} rejected the API key. Run `tandem login` in a terminal or set `tandem.apiKey` in the editor settings.",
                    target.server
                ))
                .await;
        }
        CloudError::BackingOff(_) => tracing::debug!(%error, "no completion"),
        _ => tracing::warn!(%error, "completion failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(prefix: &str, suffix: &str, max_tokens: u32, expected: &str) {
        let (prefix, suffix) = fit_token_budget(prefix.to_owned(), suffix.to_owned(), max_tokens);
        assert!(tokens::estimate(&prefix) + tokens::estimate(&suffix) <= max_tokens);
        assert_eq!(format!("{prefix}$0{suffix}"), expected);
    }

    #[test]
    fn fitting_context_is_untouched() {
        check(
            "let a = 1;\nlet b",
            " = 2;\n",
            100,
            "let a = 1;\nlet b$0 = 2;\n",
        );
    }

    #[test]
    fn far_prefix_lines_go_first_then_far_suffix_lines() {
        // Each `xxxx;\n` line is 3 tokens; `cc` is 1, `dd;\n` 3.
        let (prefix, suffix) = ("aaaa;\nbbbb;\ncc", "dd;\neeee;\n");
        check(prefix, suffix, 10, "bbbb;\ncc$0dd;\neeee;\n");
        check(prefix, suffix, 9, "cc$0dd;\neeee;\n");
        check(prefix, suffix, 4, "cc$0dd;");
    }

    #[test]
    fn a_single_huge_line_keeps_the_text_nearest_the_cursor() {
        let prefix = "x".repeat(400);
        let (kept, suffix) = fit_token_budget(prefix, "y".repeat(400), 20);
        assert!(tokens::estimate(&kept) + tokens::estimate(&suffix) <= 20);
        assert!(kept.chars().all(|c| c == 'x') && suffix.chars().all(|c| c == 'y'));
    }
}
