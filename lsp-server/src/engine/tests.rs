//! Unit tests of the engine without a server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

/// `fixture` is the old request's prefix with `$0` where the user's cursor was and the
/// text typed since; `check` types it through `suggestion`.
#[track_caller]
fn check(old_prefix: &str, suggestion: &str, new_prefix: &str, expected: Option<&str>) {
    let shown = Shown {
        cursor: 1000 + old_prefix.len(),
        prefix: old_prefix.to_owned(),
        suffix: "\n}".to_owned(),
        text: Arc::from(suggestion),
    };
    let cursor = 1000
        + old_prefix.len()
        + (new_prefix.len() as isize - old_prefix.len() as isize).max(0) as usize;
    assert_eq!(type_through(&shown, cursor, new_prefix, "\n}"), expected);
}

#[test]
fn typing_through() {
    // Typed the start of the suggestion: the rest is served.
    check("let x = fo", "o_bar()", "let x = foo", Some("_bar()"));
    check("let x = fo", "o_bar()", "let x = foo_b", Some("ar()"));
    check("fn 中", "文字()", "fn 中文", Some("字()"));
    // Typed something else.
    check("let x = fo", "o_bar()", "let x = fox", None);
    // Typed all of it: nothing left to show, ask the model again.
    check("let x = fo", "o_bar()", "let x = foo_bar()", None);
    // Nothing typed (the cache answers identical requests) or deleted.
    check("let x = fo", "o_bar()", "let x = fo", None);
    check("let x = fo", "o_bar()", "let x = f", None);
}

#[test]
fn typing_through_tolerates_a_window_that_moved_forward() {
    // The prefix budget dropped the first line once the new character made it too long.
    let shown = Shown {
        cursor: 10,
        prefix: "line one\nab".to_owned(),
        suffix: String::new(),
        text: Arc::from("cdef"),
    };
    assert_eq!(type_through(&shown, 11, "abc", ""), Some("def"));
    // An edit elsewhere in what the model saw is a miss.
    assert_eq!(type_through(&shown, 11, "aXc", ""), None);
    // A changed suffix is a miss.
    assert_eq!(type_through(&shown, 11, "abc", ")"), None);
    // A cursor that does not fall on a character boundary of the prefix is a miss.
    assert_eq!(type_through(&shown, 11, "é", ""), None);
}

#[test]
fn the_engine_types_through_the_last_shown_suggestion() {
    let engine = CompletionEngine::<std::io::Error>::new();
    let _ticket = engine.begin("file:///a.rs", Stream::Inline);
    engine.shown(
        "file:///a.rs",
        Shown {
            cursor: 2,
            prefix: "fo".into(),
            suffix: String::new(),
            text: Arc::from("o()"),
        },
    );
    assert_eq!(
        engine.type_through("file:///a.rs", 3, "foo", "").as_deref(),
        Some("()")
    );
    assert_eq!(engine.type_through("file:///b.rs", 3, "foo", ""), None);
    engine.forget("file:///a.rs");
    assert_eq!(engine.type_through("file:///a.rs", 3, "foo", ""), None);
}

#[tokio::test]
async fn a_newer_ticket_supersedes_older_ones_of_its_stream_only() {
    let engine = CompletionEngine::<std::io::Error>::new();
    let mut first = engine.begin("file:///a.rs", Stream::Inline);
    let completion = engine.begin("file:///a.rs", Stream::Completion);
    let other_document = engine.begin("file:///b.rs", Stream::Inline);
    assert!(!first.is_superseded());
    let second = engine.begin("file:///a.rs", Stream::Inline);
    assert!(first.is_superseded());
    tokio::time::timeout(Duration::from_secs(1), first.superseded())
        .await
        .expect("resolves at once");
    assert!(!second.is_superseded());
    assert!(!completion.is_superseded());
    assert!(!other_document.is_superseded());
    engine.forget("file:///a.rs");
    assert!(
        second.is_superseded(),
        "closing the document ends its requests"
    );
}

#[tokio::test]
async fn identical_calls_share_one_upstream_call_and_fill_the_cache() {
    let engine = Arc::new(CompletionEngine::<std::io::Error>::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let key = RequestKey(7);
    let make = |calls: Arc<AtomicUsize>| {
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, std::io::Error>("answer".to_owned())
        }
    };
    let (first, second) = tokio::join!(
        engine.call(key, make(calls.clone())),
        engine.call(key, make(calls.clone()))
    );
    assert_eq!(first.unwrap().as_ref(), "answer");
    assert_eq!(second.unwrap().as_ref(), "answer");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(engine.cached(key).as_deref(), Some("answer"));
    assert_eq!(engine.calls_in_flight(), 0, "removed on completion");
    // A different key is a different call.
    engine
        .call(RequestKey(8), make(calls.clone()))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_call_nobody_waits_for_is_dropped() {
    struct SetOnDrop(Arc<AtomicUsize>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let engine = CompletionEngine::<std::io::Error>::new();
    let dropped = Arc::new(AtomicUsize::new(0));
    let guard = SetOnDrop(dropped.clone());
    let call = engine.call(RequestKey(1), move || async move {
        let _guard = guard;
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, std::io::Error>(String::new())
    });
    let timed_out = tokio::time::timeout(Duration::from_millis(20), call).await;
    assert!(timed_out.is_err());
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the call future was dropped"
    );
    assert_eq!(engine.calls_in_flight(), 0);
    assert_eq!(engine.cached(RequestKey(1)), None);
}
