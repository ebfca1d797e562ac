//! Giving freed memory back to the operating system.
//!
//! A tree-sitter tree of a 2,000-line file is a few megabytes of small allocations. When
//! one is dropped (evicted, or parsed for one request and not kept), glibc keeps the
//! freed pages in its heaps, so the resident size of a server that has parsed fifty
//! files stays near the sum of every tree it ever built (measured: 46 MiB instead of
//! 28 with fifty 2,000-line files open). `malloc_trim(0)` returns whole free pages from
//! every arena. It walks the heap, so it runs off the request path: on a timer, only
//! after something large was freed, and on the indexing thread when it goes idle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often freed memory is given back, at most.
const TRIM_INTERVAL: Duration = Duration::from_secs(1);

static FREED: AtomicBool = AtomicBool::new(false);

/// Notes that something large (a syntax tree) was freed or is about to be.
pub(crate) fn note_freed() {
    FREED.store(true, Ordering::Relaxed);
}

/// Runs until the runtime shuts down: every [`TRIM_INTERVAL`], trims the heap if
/// [`note_freed`] was called since the last time. Needs a Tokio runtime.
pub(crate) fn spawn_trimmer() {
    tokio::spawn(async {
        let mut interval = tokio::time::interval(TRIM_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if FREED.swap(false, Ordering::Relaxed) {
                // A failed or panicked trim only means memory stays resident.
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    });
}

// The one `unsafe` in the workspace (the lint is `deny` elsewhere): a foreign call with
// no arguments to uphold.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn trim() {
    // SAFETY: `malloc_trim` takes no pointers and is thread-safe; it only releases
    // pages glibc's allocator already holds as free.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn trim() {}
