//! Criterion benches of the code-action pieces that run without a model, on a
//! 2,000-line Rust file and a 2,000-line Python file: finding the item under the cursor
//! (what every `textDocument/codeAction` pays, and editors send one on every cursor
//! move), the minimal edits of a model's rewrite of a 25-line method, the whole-file
//! syntax check of the edited document, and the three together as the apply command
//! runs them.
//!
//! Run: `cargo bench -p tandem-lsp --bench actions -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tandem_lsp::bench_api::ActionsBench;

/// One block of realistic Rust (45 lines): a doc comment, a struct, an impl whose
/// `settle` method is 25 lines (a loop, closures, early returns, format
/// strings, a float), and a `Display` impl, with its own names so the tree has no
/// repetitive shortcuts. `settle` has no doc comment, so Document would be offered.
fn rust_block(number: usize) -> String {
    format!(
        r#"/// A ledger of kind {number}.
#[derive(Debug, Clone, Default)]
pub struct Ledger{number} {{
    entries: Vec<(String, i64)>,
    limit: i64,
}}

impl Ledger{number} {{
    pub fn new(limit: i64) -> Self {{
        Self {{ entries: Vec::new(), limit }}
    }}

    pub fn settle(&self, accounts: &HashMap<String, i64>) -> Result<Vec<(String, i64)>, String> {{
        let mut totals: HashMap<&str, i64> = HashMap::new();
        for (account, amount) in &self.entries {{
            if !accounts.contains_key(account) {{
                return Err(format!("unknown account {{account}} in ledger {number}"));
            }}
            *totals.entry(account.as_str()).or_default() += amount;
        }}
        let mut settled: Vec<(String, i64)> = totals
            .into_iter()
            .filter(|(_, total)| total.abs() <= self.limit)
            .map(|(account, total)| {{
                let opening = accounts[account];
                (account.to_owned(), opening - total)
            }})
            .collect();
        settled.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        // Ledgers of kind {number} keep at most {number} + 16 accounts.
        settled.truncate({number} + 16);
        if settled.is_empty() {{
            return Err(String::from("nothing to settle"));
        }}
        let scale = {number}.5_f64;
        Ok(settled)
    }}
}}

impl fmt::Display for Ledger{number} {{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {{
        write!(f, "ledger {number}: {{}} entries, limit {{}}", self.entries.len(), self.limit)
    }}
}}

"#
    )
}

/// The same ledger in Python (47 lines): a class with a docstring, a property, a
/// 25-line `settle` method (a comprehension, a lambda, f-strings, `with`, `try`) without
/// a docstring, and a frozen dataclass.
fn python_block(number: usize) -> String {
    format!(
        r#"class Ledger{number}:
    """A ledger of kind {number}."""

    def __init__(self, limit: int) -> None:
        self.entries: list[tuple[str, int]] = []
        self.limit = limit

    @property
    def size(self) -> int:
        return len(self.entries)

    def settle(self, accounts: dict[str, int]) -> list[tuple[str, int]]:
        totals: dict[str, int] = {{}}
        for account, amount in self.entries:
            if account not in accounts:
                raise KeyError(f"unknown account {{account}} in ledger {number}")
            totals[account] = totals.get(account, 0) + amount
        settled = [
            (account, accounts[account] - total)
            for account, total in totals.items()
            if abs(total) <= self.limit
        ]
        settled.sort(key=lambda pair: (-pair[1], pair[0]))
        # Ledgers of kind {number} keep at most {number} + 16 accounts.
        del settled[{number} + 16 :]
        if not settled:
            raise ValueError("nothing to settle")
        scale = {number}.5
        with open(os.devnull, "w") as sink:
            for account, balance in settled:
                print(f"{{account}}: {{balance * scale:.2f}}", file=sink)
        try:
            checksum = sum(balance for _, balance in settled) % 97
        except OverflowError:
            checksum = 0
        return settled

    def __repr__(self) -> str:
        return f"Ledger{number}(limit={{self.limit}}, entries={{len(self.entries)}})"


@dataclass(frozen=True)
class Entry{number}:
    account: str
    amount: int = 0


"#
    )
}

/// Source of whole blocks after `header`, at least `lines` lines long.
fn source(header: &str, block: fn(usize) -> String, lines: usize) -> String {
    let mut source = String::from(header);
    let mut line_count = header.lines().count();
    let mut number = 0;
    while line_count < lines {
        let block = block(number);
        line_count += block.lines().count();
        source.push_str(&block);
        number += 1;
    }
    source
}

/// A language's file and the changes a model's answer makes to one `settle` method.
struct Case {
    group: &'static str,
    language_id: &'static str,
    source: String,
    /// Text inside `settle` that the one-character fix changes (`-` to `+`), ...
    fix_from: &'static str,
    fix_to: &'static str,
    /// ... and the same text with its closing parenthesis deleted: a broken edit.
    broken_to: &'static str,
    /// Documentation a Document action adds, and whether it goes after the signature
    /// (a docstring) rather than above it.
    doc: &'static str,
    doc_after_signature: bool,
}

fn cases() -> [Case; 2] {
    [
        Case {
            group: "actions_rust_2k_lines",
            language_id: "rust",
            source: source(
                "use std::collections::HashMap;\nuse std::fmt;\n\n",
                rust_block,
                2_000,
            ),
            fix_from: "opening - total)",
            fix_to: "opening + total)",
            broken_to: "opening - total",
            doc: "    /// Totals the entries per account, dropping the ones over the limit.\n",
            doc_after_signature: false,
        },
        Case {
            group: "actions_python_2k_lines",
            language_id: "python",
            source: source(
                "import os\nfrom dataclasses import dataclass\n\n\n",
                python_block,
                2_000,
            ),
            fix_from: "accounts[account] - total)",
            fix_to: "accounts[account] + total)",
            broken_to: "accounts[account] - total",
            doc: "        \"\"\"Totals the entries per account, dropping the ones over the limit.\"\"\"\n",
            doc_after_signature: true,
        },
    ]
}

/// `source` with `range` replaced by `text`.
fn spliced(source: &str, range: std::ops::Range<usize>, text: &str) -> String {
    let mut result = String::with_capacity(source.len() + text.len());
    result.push_str(&source[..range.start]);
    result.push_str(text);
    result.push_str(&source[range.end..]);
    result
}

/// `text` with the first line's indentation removed from every line, as models answer
/// code cut from inside a block.
fn dedented(text: &str) -> String {
    let indent = text.len() - text.trim_start().len();
    text.lines()
        .map(|line| line.get(indent..).unwrap_or(line.trim_start()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn bench_case(criterion: &mut Criterion, case: &Case) {
    let source = &case.source;
    let bench = ActionsBench::new(case.language_id, source).expect("the source parses");
    assert!(
        !bench.has_syntax_error(),
        "{}: the source is valid",
        case.group
    );

    // The cursor on the `-` of the fix, in the method at the middle and in the last one.
    let minus = case.fix_from.find('-').expect("the fix changes a minus");
    let middle = source.len() / 2 + source[source.len() / 2..].find(case.fix_from).unwrap();
    let end = source.rfind(case.fix_from).unwrap();
    let (cursor_middle, cursor_end) = (middle + minus, end + minus);

    let (start, stop) = bench
        .item_at(cursor_middle)
        .expect("the cursor is in a method");
    let method = &source[start..stop];
    assert!(method.trim_start().contains("settle("), "{method}");
    assert_eq!(method.lines().count(), 25, "{method}");
    let fixed_method = method.replacen(case.fix_from, case.fix_to, 1);
    let documented_method = if case.doc_after_signature {
        let signature_end = method.find('\n').unwrap() + 1;
        spliced(method, signature_end..signature_end, case.doc)
    } else {
        format!("{}{method}", case.doc)
    };
    let fixed_source = spliced(source, start..stop, &fixed_method);
    let broken_source = spliced(source, middle..middle + case.fix_from.len(), case.broken_to);
    let answer = dedented(&fixed_method);

    assert!(bench.item_at(cursor_end).is_some());
    assert_eq!(bench.minimal_edits(method, &fixed_method), 1);
    assert_eq!(bench.minimal_edits(method, &documented_method), 1);
    assert_eq!(bench.check_edit(source, &fixed_source), Ok(()));
    assert!(bench.check_edit(source, &broken_source).is_err());
    assert_eq!(bench.replace_region(start, stop, &answer), Ok(1));

    let mut group = criterion.benchmark_group(case.group);
    group.bench_function("item_at_middle", |bencher| {
        bencher.iter(|| bench.item_at(black_box(cursor_middle)))
    });
    group.bench_function("item_at_end", |bencher| {
        bencher.iter(|| bench.item_at(black_box(cursor_end)))
    });
    group.bench_function("minimal_edits_one_char_fix", |bencher| {
        bencher.iter(|| bench.minimal_edits(black_box(method), black_box(&fixed_method)))
    });
    group.bench_function("minimal_edits_doc_comment", |bencher| {
        bencher.iter(|| bench.minimal_edits(black_box(method), black_box(&documented_method)))
    });
    // The whole-file benches take 7-20 ms each: fewer samples, so that they fit in a
    // 3 s measurement time.
    group.sample_size(10);
    // For scale: one parse from scratch of the edited file.
    group.bench_function("full_parse", |bencher| {
        bencher.iter(|| bench.full_parse(black_box(&fixed_source)))
    });
    // The common case: the edited file parses cleanly, so only it is parsed.
    group.bench_function("check_edit_one_char_fix", |bencher| {
        bencher.iter(|| bench.check_edit(black_box(source), black_box(&fixed_source)))
    });
    // An edit that breaks the syntax: both files are parsed, and their errors compared
    // through a whole-file diff.
    group.bench_function("check_edit_broken_edit", |bencher| {
        bencher.iter(|| bench.check_edit(black_box(source), black_box(&broken_source)))
    });
    group.bench_function("replace_region_one_char_fix", |bencher| {
        bencher.iter(|| bench.replace_region(start, stop, black_box(&answer)))
    });
    group.finish();
}

fn benches(criterion: &mut Criterion) {
    for case in cases() {
        bench_case(criterion, &case);
    }
}

criterion_group!(actions, benches);
criterion_main!(actions);
