//! Criterion benches of a keystroke in a large document: the edit itself (rope plus
//! `Tree::edit`, what every `didChange` costs) and the lazy incremental re-parse a
//! completion request then pays, on a 20,000-line Rust file, on the same file cut off
//! mid-item (so it ends in unclosed braces), and on an ordinary 2,000-line file.
//!
//! Run: `cargo bench -p tandem-lsp --bench document -- --warm-up-time 1 --measurement-time 3`
//!
//! The re-parse grows with the number of top-level items, not with the edit: tree-sitter
//! cannot reuse the nodes that group top-level items (every repetition node is built by a
//! parse-table entry with two actions, which marks it "fragile"), so it steps over every
//! item of the file, one by one, and rebuilds and rebalances that list; see
//! `syntax::parse::PARSE_TIMEOUT`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tandem_lsp::bench_api::DocumentBench;

/// One block of realistic Rust (25 lines): a doc comment, a struct, impls with generics,
/// a closure, a string, a float and a comment, with its own names so the tree has no
/// repetitive shortcuts.
fn block(number: usize) -> String {
    format!(
        r#"/// A record of kind {number}.
#[derive(Debug, Clone)]
pub struct Record{number} {{
    id: u64,
    name: String,
    tags: Vec<String>,
}}

impl Record{number} {{
    pub fn new(id: u64, name: &str) -> Self {{
        Self {{ id, name: name.to_owned(), tags: Vec::new() }}
    }}

    pub fn score(&self, weights: &HashMap<String, f64>) -> f64 {{
        // Sum the weights of every known tag.
        self.tags.iter().filter_map(|tag| weights.get(tag)).sum::<f64>() * {number}.0
    }}
}}

impl fmt::Display for Record{number} {{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {{
        write!(f, "{{}}: {{}} ({{}} tags)", self.id, self.name, self.tags.len())
    }}
}}

"#
    )
}

const HEADER: &str = "use std::collections::HashMap;\nuse std::fmt;\n\n";

/// Valid Rust of whole blocks, at least `lines` lines long.
fn rust_source(lines: usize) -> String {
    let mut source = String::from(HEADER);
    let mut line_count = HEADER.lines().count();
    let mut number = 0;
    while line_count < lines {
        let block = block(number);
        line_count += block.lines().count();
        source.push_str(&block);
        number += 1;
    }
    source
}

/// Exactly `lines` lines, the last block cut off inside `impl fmt::Display`: the file
/// ends in two unclosed braces, and tree-sitter's error recovery then makes the whole
/// file one ERROR node, its slowest case to re-parse.
fn unclosed_rust_source(lines: usize) -> String {
    let source = rust_source(lines + 25);
    let mut cut: Vec<&str> = source.lines().take(lines).collect();
    while cut
        .last()
        .is_some_and(|line| !line.starts_with("        write!"))
    {
        cut.pop();
    }
    cut.join("\n") + "\n"
}

/// A keystroke inside a field name (`i|d: u64`) near the middle of the file: valid
/// before and after, so the re-parse measures reuse, not error recovery.
fn middle_of(source: &str) -> (u32, u32) {
    let middle = source.lines().count() / 2;
    source
        .lines()
        .enumerate()
        .skip(middle)
        .find_map(|(line, text)| {
            let indent = text.len() - text.trim_start().len();
            text.trim_start()
                .starts_with("id: ")
                .then_some((line as u32, indent as u32 + 1))
        })
        .unwrap_or((0, 0))
}

/// Times only the re-parse each request pays after a keystroke, alternately typing a
/// char and deleting it so the document stays the same.
fn bench_reparse(
    criterion_group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    source: &str,
) {
    let (line, column) = middle_of(source);
    let mut document = DocumentBench::open("rust", "big.rs", source);
    assert!(document.syntax_tree_root_children().is_some());
    let mut inserted = false;
    criterion_group.bench_function(name, |bencher| {
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
}

fn benches(criterion: &mut Criterion) {
    let source = rust_source(20_000);
    let unclosed = unclosed_rust_source(20_000);
    let small = rust_source(2_000);
    for (text, has_error) in [(&source, false), (&unclosed, true), (&small, false)] {
        let document = DocumentBench::open("rust", "check.rs", text);
        assert_eq!(document.syntax_tree_has_error(), Some(has_error));
    }
    let (line, column) = middle_of(&source);
    assert!(line > 0, "the source has a field near its middle");

    let mut group = criterion.benchmark_group("document_20k_lines");

    // One keystroke; the tree was parsed once before and is only edited here.
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

    bench_reparse(&mut group, "reparse_after_single_char_edit", &source);
    bench_reparse(
        &mut group,
        "reparse_after_single_char_edit_unclosed_braces",
        &unclosed,
    );

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

    let mut group = criterion.benchmark_group("document_2k_lines");
    bench_reparse(&mut group, "reparse_after_single_char_edit", &small);
    group.finish();
}

criterion_group!(document, benches);
criterion_main!(document);
