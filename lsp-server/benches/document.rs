//! Criterion benches of a keystroke in a large document: the edit itself (rope plus
//! `Tree::edit`, what every `didChange` costs) and the lazy incremental re-parse a
//! completion request then pays, on a 20,000-line Rust file.
//!
//! Run: `cargo bench -p tandem-lsp --bench document -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tandem_lsp::bench_api::DocumentBench;

const LINES: usize = 20_000;

/// Realistic Rust: structs, impls, generics, closures, strings and comments, each block
/// with its own names so the tree has no repetitive shortcuts.
fn rust_source() -> String {
    let mut source = String::from("use std::collections::HashMap;\nuse std::fmt;\n\n");
    let mut block = 0;
    while source.lines().count() < LINES {
        source.push_str(&format!(
            r#"/// A record of kind {block}.
#[derive(Debug, Clone)]
pub struct Record{block} {{
    id: u64,
    name: String,
    tags: Vec<String>,
}}

impl Record{block} {{
    pub fn new(id: u64, name: &str) -> Self {{
        Self {{ id, name: name.to_owned(), tags: Vec::new() }}
    }}

    pub fn score(&self, weights: &HashMap<String, f64>) -> f64 {{
        // Sum the weights of every known tag.
        self.tags.iter().filter_map(|tag| weights.get(tag)).sum::<f64>() * {block}.0
    }}
}}

impl fmt::Display for Record{block} {{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {{
        write!(f, "{{}}: {{}} ({{}} tags)", self.id, self.name, self.tags.len())
    }}
}}

"#
        ));
        block += 1;
    }
    source.lines().take(LINES).collect::<Vec<_>>().join("\n") + "\n"
}

/// The middle line and a column inside its first identifier-ish text.
fn middle_of(source: &str) -> (u32, u32) {
    let line = LINES / 2;
    let text = source.lines().nth(line).unwrap_or_default();
    let indent = text.len() - text.trim_start().len();
    (line as u32, (indent + 2).min(text.len()) as u32)
}

fn benches(criterion: &mut Criterion) {
    let source = rust_source();
    let (line, column) = middle_of(&source);
    let mut group = criterion.benchmark_group("document_20k_lines");

    // One keystroke, alternately typing a char and deleting it so the document stays
    // the same size; the tree was parsed once before and is only edited here.
    let mut document = DocumentBench::open("rust", "big.rs", &source);
    assert!(document.syntax_tree_root_children().is_some());
    let mut inserted = false;
    group.bench_function("edit_single_char", |bencher| {
        bencher.iter(|| {
            let result = if inserted {
                document.edit((line, column), (line, column + 1), "")
            } else {
                document.edit((line, column), (line, column), "x")
            };
            inserted = !inserted;
            black_box(result)
        })
    });

    // The re-parse a request pays after one keystroke (the edit is not timed).
    let mut document = DocumentBench::open("rust", "big.rs", &source);
    assert!(document.syntax_tree_root_children().is_some());
    let mut inserted = false;
    group.bench_function("reparse_after_single_char_edit", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let edit = if inserted {
                    document.edit((line, column), (line, column + 1), "")
                } else {
                    document.edit((line, column), (line, column), "x")
                };
                inserted = !inserted;
                black_box(edit).ok();
                let start = Instant::now();
                black_box(document.syntax_tree_root_children());
                total += start.elapsed();
            }
            total
        })
    });

    // For scale: parsing the whole file from scratch, what a first request (or one
    // after the tree was evicted) pays.
    group.sample_size(10);
    group.bench_function("first_parse", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let document = DocumentBench::open("rust", "big.rs", &source);
                let start = Instant::now();
                black_box(document.syntax_tree_root_children());
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(document, benches);
criterion_main!(document);
