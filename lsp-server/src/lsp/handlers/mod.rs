//! One file per LSP method; the shared path from a cursor to a suggestion lives here.

pub(crate) mod code_action;
pub(crate) mod code_action_resolve;
pub(crate) mod completion;
pub(crate) mod did_change;
pub(crate) mod did_change_configuration;
pub(crate) mod did_close;
pub(crate) mod did_open;
pub(crate) mod execute_command;
pub(crate) mod explain;
pub(crate) mod initialize;
pub(crate) mod inline_completion;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tandem_shared::{CompletionRequest, ErrorCode};

use super::error::HandlerError;
use super::{from_proto, RequestConfig, TandemServer};
use crate::cloud::{CloudError, CloudTarget};
use crate::context::assemble::{self, RecentRegion};
use crate::context::neighbors::{IndexJob, IndexedDocument};
use crate::document::{position, ByteOffset, DocumentSnapshot, LspPosition, PositionEncoding};
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
/// 2. [`build_request`]: the context from this and other open documents, cut to budget;
/// 3. [`local_answer`]: the cache, or typing-through the suggestion on screen;
/// 4. debounce an [`Trigger::Automatic`] request (the pause counts from the request's
///    arrival, so steps 1–3 take none of the user's time);
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
    // The debounce counts from the keystroke's request, so building the context below
    // happens during the pause rather than after it.
    let arrived = tokio::time::Instant::now();
    // Parses if the tree is stale (incrementally, outside the store's lock): scopes,
    // imports and the identifiers to look up need it.
    let snapshot = server.documents.snapshot_with_syntax(uri)?;
    let config = server.request_config();
    let cursor = position::offset_of(&snapshot.text, position, config.encoding)?;
    let mut ticket = server.engine.begin(uri, stream);
    tracing::debug!(uri = %snapshot.uri, version = snapshot.version, "completion context taken");

    let Some(target) = TandemServer::target(&config) else {
        tracing::debug!("no API key configured; no completion");
        server
            .notify_auth_problem(
                "Tandem: not signed in. Use your editor's “Tandem: Sign In” (or run `tandem login` in a terminal), or set an API key in the editor's Tandem settings."
                    .to_owned(),
            )
            .await;
        return Ok(None);
    };

    if server.is_excluded(uri, &config.roots) {
        tracing::debug!("document is excluded by the privacy rules; no completion");
        return Ok(None);
    }

    let prepared = build_request(server, &snapshot, cursor, &config, &target);
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
            () = tokio::time::sleep_until(arrived + config.limits.debounce) => {}
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
            if let CloudError::Server { body, .. } = error.as_ref() {
                if body.code() == Some(ErrorCode::ContextTooLarge) {
                    server
                        .tier_budget
                        .refused(u64::from(prepared.request.estimated_tokens()));
                }
            }
            Ok(None)
        }
    }
}

/// Step 2: the request body for the cloud: the text around the cursor and the context
/// parts from this and other open documents ([`assemble`]), secrets redacted, excluded
/// documents left out, under the budget of the user's tier and settings; and the mode
/// (single- or multi-line) from the syntax at the cursor. Everything the cache key
/// covers is decided here.
fn build_request(
    server: &TandemServer,
    snapshot: &DocumentSnapshot,
    cursor: ByteOffset,
    config: &RequestConfig,
    target: &CloudTarget,
) -> PreparedRequest {
    let uri = snapshot.uri.as_str();
    let limits = config.limits;
    let max_tokens = context_budget(server, config, target);

    let (neighbors, recent_edits) = context_sources(server, uri, &config.roots);

    let mut decided: HashMap<String, bool> = HashMap::new();
    let mut allowed = |candidate: &str| {
        *decided
            .entry(candidate.to_owned())
            .or_insert_with(|| !server.is_excluded(candidate, &config.roots))
    };
    let assembled = assemble::assemble(
        &assemble::Inputs {
            text: &snapshot.text,
            syntax: snapshot.syntax.as_ref(),
            cursor,
            max_prefix_chars: limits.max_prefix_chars,
            max_suffix_chars: limits.max_suffix_chars,
            max_tokens,
            neighbors: &neighbors,
            recent_edits: &recent_edits,
            identifier_lines: assemble::IDENTIFIER_LINES,
        },
        &mut allowed,
    );
    if assembled.redacted > 0 {
        tracing::debug!(
            redacted = assembled.redacted,
            "secrets redacted from the completion context"
        );
    }
    let path = from_proto::document_path(uri, &config.roots);
    let language = Language::detect(&snapshot.language_id, &path);
    let mode = postprocess::completion_mode(language, &assembled.prefix, &assembled.suffix);
    let request = CompletionRequest {
        language: snapshot.language_id.clone(),
        path,
        prefix: assembled.prefix,
        suffix: assembled.suffix,
        max_tokens: Some(mode.max_tokens()),
        temperature: None,
        stop: postprocess::stop_sequences(mode, language),
        context: assembled.context,
        file_size: Some(snapshot.text.len_bytes() as u64),
        stream: false,
    };
    tracing::trace!(
        path = %request.path,
        prefix_chars = request.prefix.chars().count(),
        suffix_chars = request.suffix.chars().count(),
        scopes = request.context.scopes.len(),
        imports = request.context.imports.len(),
        definitions = request.context.definitions.len(),
        similar = request.context.similar.len(),
        recent_edits = request.context.recent_edits.len(),
        estimated_tokens = request.estimated_tokens(),
        max_tokens,
        ?mode,
        "completion request built"
    );
    PreparedRequest {
        request,
        language,
        mode,
    }
}

/// What other open documents offer a request about `uri`: their indexes (definitions,
/// similar code) and the recently edited regions. Queues stale indexes for next time.
pub(crate) fn context_sources(
    server: &TandemServer,
    uri: &str,
    roots: &[std::path::PathBuf],
) -> (Vec<Arc<IndexedDocument>>, Vec<RecentRegion>) {
    let open = server.documents.snapshots();
    index_other_documents(server, uri, &open, roots);
    let open_uris: HashSet<&str> = open.iter().map(|other| other.uri.as_str()).collect();
    let neighbors = server.neighbors.others(uri, &open_uris);
    let recent_edits = recent_regions(server, uri, &open, roots);
    (neighbors, recent_edits)
}

/// The tier's context budget, capped by the settings' own.
pub(crate) fn context_budget(
    server: &TandemServer,
    config: &RequestConfig,
    target: &CloudTarget,
) -> u32 {
    let tier_limit = server
        .tier_budget
        .limit(&server.cloud, target, &config.credentials);
    config
        .limits
        .max_context_tokens
        .map_or(tier_limit, |local| local.min(tier_limit))
}

/// Queues the other open documents whose index is missing or stale. The document being
/// completed is left out: it changes with every keystroke, and it is indexed once the
/// user completes in another one.
fn index_other_documents(
    server: &TandemServer,
    uri: &str,
    open: &[DocumentSnapshot],
    roots: &[std::path::PathBuf],
) {
    for other in open {
        if other.uri != uri && server.neighbors.needs(&other.uri, other.version) {
            server.neighbors.schedule(IndexJob {
                uri: other.uri.clone(),
                version: other.version,
                language_id: other.language_id.clone(),
                path: from_proto::document_path(&other.uri, roots),
                text: other.text.clone(),
            });
        }
    }
}

/// The store's recently edited regions, with the text they are cut from.
fn recent_regions(
    server: &TandemServer,
    uri: &str,
    open: &[DocumentSnapshot],
    roots: &[std::path::PathBuf],
) -> Vec<RecentRegion> {
    server
        .documents
        .recent_edits(RECENT_EDITS_CONSIDERED)
        .into_iter()
        .filter_map(|edit| {
            let document = open.iter().find(|other| other.uri == edit.uri)?;
            Some(RecentRegion {
                path: from_proto::document_path(&edit.uri, roots),
                text: document.text.clone(),
                line: edit.line,
                same_document: edit.uri == uri,
                uri: edit.uri,
            })
        })
        .collect()
}

/// Recent regions looked at per request; most are skipped (inside the prefix window,
/// excluded, or over budget), and a few are sent.
const RECENT_EDITS_CONSIDERED: usize = 8;

/// The request body and what [`build_request`] decided about the code at the cursor,
/// which post-processing needs again: worked out once per request (the mode may parse
/// the window).
struct PreparedRequest {
    request: CompletionRequest,
    language: Option<Language>,
    mode: postprocess::CompletionMode,
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
                    "Tandem: {} rejected the API key. Sign in again with your editor's “Tandem: Sign In” (or `tandem login` in a terminal), or check the API key in the editor's Tandem settings.",
                    target.server
                ))
                .await;
        }
        CloudError::BackingOff(_) => tracing::debug!(%error, "no completion"),
        // A quota or a feature outside the user's tier: say so once, in the cloud's words
        // (which name the limit and when it resets, or the tier that has the feature).
        CloudError::Server {
            status: 403 | 429,
            body,
        } => {
            tracing::warn!(%error, "completion refused by the tier's limits");
            server.notify_limit(body.error.message.clone()).await;
        }
        _ => tracing::warn!(%error, "completion failed"),
    }
}
