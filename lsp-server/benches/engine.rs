//! Criterion benches of the completion engine's per-keystroke work: the request key
//! (without and with context), a cache hit, typing-through and starting a request
//! (superseding the last one).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use tandem_lsp::engine::{type_through, CompletionEngine, RequestKey, Shown, Stream};
use tandem_shared::{CodeContext, CompletionRequest, Snippet};

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
        file_size: None,
        stream: false,
    }
}

/// [`request`] plus context: scopes, imports and 10 snippets of 1,500 chars spread
/// over the three snippet lists, about 26k chars in all.
fn request_with_context() -> CompletionRequest {
    let line = "fn helper(input: &str) -> Option<usize> { input.find(':') }\n";
    let text: String = line
        .repeat(1500 / line.len() + 1)
        .chars()
        .take(1500)
        .collect();
    let snippets = |count: usize, dir: &str| -> Vec<Snippet> {
        (0..count)
            .map(|index| Snippet {
                path: format!("src/{dir}/file_{index}.rs"),
                text: text.clone(),
            })
            .collect()
    };
    CompletionRequest {
        context: CodeContext {
            scopes: vec![
                "impl Engine".into(),
                "fn complete(&self, request: &CompletionRequest) -> Result<String>".into(),
            ],
            imports: (0..20)
                .map(|index| format!("use crate::module_{index}::Item{index};"))
                .collect(),
            definitions: snippets(4, "definitions"),
            similar: snippets(3, "similar"),
            recent_edits: snippets(3, "recent"),
        },
        ..request()
    }
}

fn benches(criterion: &mut Criterion) {
    let request = request();
    let server = "http://127.0.0.1:8080";
    criterion.bench_function("request_key_10k_chars", |bencher| {
        bencher.iter(|| RequestKey::new(black_box(server), black_box(&request)))
    });

    let with_context = request_with_context();
    criterion.bench_function("request_key_10k_chars_and_context", |bencher| {
        bencher.iter(|| RequestKey::new(black_box(server), black_box(&with_context)))
    });

    let engine = CompletionEngine::<std::io::Error>::new();
    let key = RequestKey::new(server, &request);
    engine.remember(key, Arc::from("suggestion()"));
    criterion.bench_function("cache_hit_with_key", |bencher| {
        bencher.iter(|| engine.cached(RequestKey::new(black_box(server), black_box(&request))))
    });
    engine.remember(
        RequestKey::new(server, &with_context),
        Arc::from("suggestion()"),
    );
    criterion.bench_function("cache_hit_with_context", |bencher| {
        bencher.iter(|| engine.cached(RequestKey::new(black_box(server), black_box(&with_context))))
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
