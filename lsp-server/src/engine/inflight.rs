//! In-flight deduplication: identical requests share one upstream call.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};

use super::RequestKey;

type CallInner<E> = BoxFuture<'static, Result<Arc<str>, Arc<E>>>;
type CallFuture<E> = Shared<CallInner<E>>;
type CallMap<E> = HashMap<RequestKey, (u64, WeakShared<CallInner<E>>)>;

/// Calls currently running, by request key.
///
/// The map holds only weak handles: the call future lives as long as some request
/// awaits it, so when every interested request is superseded or cancelled the future is
/// dropped and its HTTP request aborted. An entry is removed by the request that sees
/// the call finish; entries whose waiters all left are swept on the next insertion.
/// `E` is the call's error, shared by every waiter behind an `Arc`.
pub struct InFlight<E> {
    calls: Mutex<CallMap<E>>,
    next_id: AtomicU64,
}

impl<E> Default for InFlight<E> {
    fn default() -> Self {
        InFlight {
            calls: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }
}

impl<E: Send + Sync + 'static> InFlight<E> {
    fn calls(&self) -> std::sync::MutexGuard<'_, CallMap<E>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the running call for `key`, or starts `start()` as that call.
    pub async fn join<F, Fut>(&self, key: RequestKey, start: F) -> Result<Arc<str>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Arc<str>, E>> + Send + 'static,
    {
        let (id, call) = self.join_or_start(key, start);
        let result = call.await;
        let mut calls = self.calls();
        if calls.get(&key).is_some_and(|(entry_id, _)| *entry_id == id) {
            calls.remove(&key);
        }
        result
    }

    /// Synchronous, so the lock is never held across an await.
    fn join_or_start<F, Fut>(&self, key: RequestKey, start: F) -> (u64, CallFuture<E>)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Arc<str>, E>> + Send + 'static,
    {
        let mut calls = self.calls();
        if let Some((id, weak)) = calls.get(&key) {
            if let Some(call) = weak.upgrade() {
                tracing::debug!("joining an identical request in flight");
                return (*id, call);
            }
        }
        let call: CallFuture<E> = start()
            .map(|result| result.map_err(Arc::new))
            .boxed()
            .shared();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Sweep calls nobody awaits any more, so the map stays as small as the number of
        // live calls.
        if calls.len() >= 16 {
            calls.retain(|_, (_, weak)| weak.upgrade().is_some());
        }
        if let Some(weak) = call.downgrade() {
            calls.insert(key, (id, weak));
        }
        (id, call)
    }

    /// Calls that still have a waiter.
    pub fn len(&self) -> usize {
        self.calls()
            .values()
            .filter(|(_, weak)| weak.upgrade().is_some())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
