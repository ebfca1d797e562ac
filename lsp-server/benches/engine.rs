//! Criterion benches of the completion engine's per-keystroke work: the request key,
//! a cache hit, typing-through and starting a request (superseding the last one).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use tandem_lsp::engine::{type_through, CompletionEngine, RequestKey, Shown, Stream};
use tandem_shared::CompletionRequest;

/// A request with full default budgets: 8,000 chars of prefix, 2,000 of suffix.
fn request() -> CompletionRequest {
    let line = "    let value = compute(first_argument, second_argument);\n";
    let prefix: String = line
        .repeat(8000 / line.len() + 1)
        .chars()
        .take(8000)
        .collect();
    let suffix: String = line
        .repeat(2000 / line.len() + 1)
        .chars()
        .take(2000)
        .collect();
    CompletionRequest {
        language: "rust".into(),
        path: "src/engine.rs".into(),
        prefix,
        suffix,
        max_tokens: None,
        temperature: None,
        stop: Vec::new(),
        context: Default::default(),
    }
}

fn benches(criterion: &mut Criterion) {
    let request = request();
    let server = "http://127.0.0.1:8080";
    criterion.bench_function("request_key_10k_chars", |bencher| {
        bencher.iter(|| RequestKey::new(black_box(server), black_box(&request)))
    });

    let engine = CompletionEngine::<std::io::Error>::new();
    let key = RequestKey::new(server, &request);
    engine.remember(key, Arc::from("suggestion()"));
    criterion.bench_function("cache_hit_with_key", |bencher| {
        bencher.iter(|| engine.cached(RequestKey::new(black_box(server), black_box(&request))))
    });

    let shown = Shown {
        cursor: 8000,
        prefix: request.prefix.clone(),
        suffix: request.suffix.clone(),
        text: Arc::from("_argument, third_argument);"),
    };
    let mut typed = request.prefix.clone();
    typed.push_str("_arg");
    criterion.bench_function("type_through_10k_chars", |bencher| {
        bencher.iter(|| type_through(black_box(&shown), 8004, black_box(&typed), &request.suffix))
    });

    criterion.bench_function("begin_request_superseding", |bencher| {
        bencher.iter(|| engine.begin(black_box("file:///src/engine.rs"), Stream::Inline))
    });
}

criterion_group!(engine, benches);
criterion_main!(engine);
