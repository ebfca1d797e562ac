//! When to call the cloud, and when not to: debounce, superseding, in-flight
//! deduplication, the suggestion cache and typing-through.
//!
//! Plain data in, plain data out: nothing here knows LSP. The `lsp` edge asks, in the
//! handler's first (synchronous) poll, for a [`Ticket`] per request; a newer ticket for
//! the same document and method supersedes the older one, whose handler then stops
//! waiting (dropping its share of the HTTP call, which aborts the call when nobody else
//! wants it). Identical request bodies share one upstream call ([`inflight`]); answers
//! are cached by [`RequestKey`]; and while the user types the start of the suggestion
//! last shown for a document, the rest is served without any call ([`Shown`]).
//!
//! This module is public only so the criterion benches can reach it.

mod inflight;
mod key;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

pub use inflight::InFlight;
pub use key::RequestKey;

/// Entries kept in the suggestion cache. A suggestion is a few hundred bytes, so this
/// bounds the cache to about a megabyte.
pub const CACHE_CAPACITY: u64 = 2048;
/// How long a cached suggestion stays usable: long enough for undo/redo and for
/// returning to a spot, short enough that a changed model or prompt is seen.
pub const CACHE_TIME_TO_LIVE: Duration = Duration::from_secs(10 * 60);

/// Which request stream a ticket belongs to. Editors such as VS Code send a
/// `textDocument/completion` and a `textDocument/inlineCompletion` for the same
/// keystroke; they must not supersede each other (they share the upstream call through
/// deduplication instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Inline,
    Completion,
}

/// The suggestion last shown for a document, with what it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// Byte offset of the cursor in the document when it was shown.
    pub cursor: usize,
    /// The prefix and suffix of the request the suggestion answers.
    pub prefix: String,
    pub suffix: String,
    /// The suggestion text.
    pub text: Arc<str>,
}

#[derive(Debug)]
struct DocumentState {
    generations: HashMap<Stream, watch::Sender<u64>>,
    shown: Option<Shown>,
}

/// Held by one running request; tells it when a newer request replaced it.
#[derive(Debug)]
pub struct Ticket {
    generation: u64,
    receiver: watch::Receiver<u64>,
}

impl Ticket {
    /// Resolves once a newer request for the same document and stream has begun, or the
    /// document was closed. Resolves at once if that already happened.
    pub async fn superseded(&mut self) {
        let generation = self.generation;
        // An error means the sender is gone: the document was closed.
        let _ = self
            .receiver
            .wait_for(|current| *current != generation)
            .await;
    }

    /// Whether a newer request has begun (non-blocking).
    pub fn is_superseded(&self) -> bool {
        self.receiver.has_changed().is_err() || *self.receiver.borrow() != self.generation
    }
}

/// The completion engine: one per server. `E` is the error of an upstream call.
pub struct CompletionEngine<E> {
    cache: moka::sync::Cache<RequestKey, Arc<str>>,
    in_flight: InFlight<E>,
    documents: Mutex<HashMap<String, DocumentState>>,
}

impl<E: Send + Sync + 'static> Default for CompletionEngine<E> {
    fn default() -> Self {
        CompletionEngine::new()
    }
}

impl<E: Send + Sync + 'static> CompletionEngine<E> {
    pub fn new() -> CompletionEngine<E> {
        CompletionEngine {
            cache: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(CACHE_TIME_TO_LIVE)
                .build(),
            in_flight: InFlight::default(),
            documents: Mutex::new(HashMap::new()),
        }
    }

    fn documents(&self) -> std::sync::MutexGuard<'_, HashMap<String, DocumentState>> {
        self.documents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a request for `uri`: every older request of the same stream for that
    /// document is superseded. Synchronous, so tickets are ordered like the requests.
    pub fn begin(&self, uri: &str, stream: Stream) -> Ticket {
        let mut documents = self.documents();
        let state = documents
            .entry(uri.to_owned())
            .or_insert_with(|| DocumentState {
                generations: HashMap::new(),
                shown: None,
            });
        let sender = state
            .generations
            .entry(stream)
            .or_insert_with(|| watch::channel(0).0);
        let mut generation = 0;
        sender.send_modify(|current| {
            *current = current.wrapping_add(1);
            generation = *current;
        });
        let mut receiver = sender.subscribe();
        receiver.mark_unchanged();
        Ticket {
            generation,
            receiver,
        }
    }

    /// Forgets a closed document; its running requests count as superseded.
    pub fn forget(&self, uri: &str) {
        self.documents().remove(uri);
    }

    /// A cached suggestion for exactly this request.
    pub fn cached(&self, key: RequestKey) -> Option<Arc<str>> {
        self.cache.get(&key)
    }

    /// Caches `text` as the answer to `key`.
    pub fn remember(&self, key: RequestKey, text: Arc<str>) {
        self.cache.insert(key, text);
    }

    /// Records the suggestion shown for `uri`, for typing-through.
    pub fn shown(&self, uri: &str, shown: Shown) {
        if let Some(state) = self.documents().get_mut(uri) {
            state.shown = Some(shown);
        }
    }

    /// The rest of the suggestion last shown for `uri`, if the user has since typed
    /// only characters that start it; see [`type_through`].
    pub fn type_through(
        &self,
        uri: &str,
        cursor: usize,
        prefix: &str,
        suffix: &str,
    ) -> Option<Arc<str>> {
        let documents = self.documents();
        let shown = documents.get(uri)?.shown.as_ref()?;
        type_through(shown, cursor, prefix, suffix).map(Arc::from)
    }

    /// Runs `call` for `key`, unless an identical call is already running, in which
    /// case its result is shared. A successful answer is cached. Dropping the returned
    /// future gives up this request's share; the call is dropped (its HTTP request
    /// aborted) when no request wants it any more.
    pub async fn call<F, Fut>(&self, key: RequestKey, call: F) -> Result<Arc<str>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
    {
        let cache = self.cache.clone();
        self.in_flight
            .join(key, || {
                let call = call();
                async move {
                    let text: Arc<str> = Arc::from(call.await?);
                    cache.insert(key, text.clone());
                    Ok(text)
                }
            })
            .await
    }

    /// Number of calls currently in flight (for tests and benchmarks).
    pub fn calls_in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// The part of `shown`'s suggestion still to type, given the new request's cursor
/// (document byte offset), prefix and suffix.
///
/// The user typed `cursor - shown.cursor` bytes; they must be the end of the new
/// prefix and the start of the suggestion, the prefix before them must be what the
/// model saw (the window may have moved forward, so a suffix of the old prefix), and
/// the suffix must be unchanged. Anything else (a deletion, an edit after the cursor, a
/// typed character the model did not predict) is a miss.
pub fn type_through<'a>(
    shown: &'a Shown,
    cursor: usize,
    prefix: &str,
    suffix: &str,
) -> Option<&'a str> {
    let typed_len = cursor.checked_sub(shown.cursor).filter(|len| *len > 0)?;
    if suffix != shown.suffix {
        return None;
    }
    let split = prefix.len().checked_sub(typed_len)?;
    let kept = prefix.get(..split)?;
    let typed = prefix.get(split..)?;
    if !shown.prefix.ends_with(kept) {
        return None;
    }
    let rest = shown.text.strip_prefix(typed)?;
    Some(rest).filter(|rest| !rest.is_empty())
}

#[cfg(test)]
mod tests;
