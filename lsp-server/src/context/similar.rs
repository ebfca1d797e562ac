//! Snippets of other open documents that look like the code around the cursor.
//!
//! The model only sees what is in its prompt, and code the user has open in other tabs is
//! often what the line being written calls or imitates. GitHub Copilot's "neighbouring
//! tabs" finds it without any language knowledge: it slides a window of lines over each
//! open file and scores every window by the Jaccard similarity (shared / distinct in
//! either) between the window's identifiers and those around the cursor. This module
//! does the same, text only, so it works for every language.
//!
//! Identifiers are runs of letters, digits and `_` not starting with a digit. Keywords and
//! primitive types of the supported languages are dropped, and so are one-letter names
//! (`i`, `x`): they occur in nearly every window, so keeping them makes unrelated code
//! look alike and drowns the names that carry meaning. Matching is case-sensitive.
//!
//! Cost: a document is indexed once per version ([`WindowIndex::build`], about a
//! millisecond and 25 KB for 2,000 lines) as an inverted index from identifier hashes to
//! the windows holding them. A query then touches only the windows sharing an identifier
//! with it: over 20 documents of 2,000 lines that takes tens of microseconds, where
//! intersecting the query with every window's sorted set takes about a millisecond.
//! Indexing is capped in lines, bytes per line and postings, so neither time nor memory
//! grows without bound on generated or minified files; beyond the caps only the start of
//! a document is searched.

use std::ops::Range;

use ropey::{Rope, RopeSlice};

/// Lines per window. About one function: long enough to carry the names that identify
/// what the code does, short enough to fit a prompt next to the cursor's own context.
/// (Copilot's are reported to be 60 lines; our snippets share a smaller token budget.)
pub(crate) const WINDOW_LINES: usize = 20;

/// Lines between the starts of consecutive windows. Half a window means every run of up
/// to `WINDOW_LINES - WINDOW_STEP + 1` lines lies whole inside some window, at twice the
/// index size of disjoint windows; sliding by single lines would cost ten times more.
const WINDOW_STEP: usize = WINDOW_LINES / 2;

/// Lines indexed per document; the rest of a longer document is never matched.
const MAX_LINES: usize = 10_000;

/// Bytes scanned per line. Longer lines are mostly generated or minified data whose
/// tokens would bloat the index without making better snippets.
const MAX_LINE_BYTES: usize = 512;

/// (identifier, window) pairs indexed per document: bounds [`WindowIndex::heap_bytes`]
/// (about 10 bytes a posting at worst) whatever the text. A typical 2,000-line source
/// file needs well under half of it.
const MAX_POSTINGS: usize = 32_768;

const _: () = assert!(MAX_LINES / WINDOW_STEP < u16::MAX as usize);

/// Identifier windows of one document version, built once per version and cached by the
/// caller.
#[derive(Debug, Clone, Default)]
pub(crate) struct WindowIndex {
    /// Distinct identifier hashes in the indexed windows, ascending.
    ids: Vec<u32>,
    /// `postings[starts[i]..starts[i + 1]]` are the windows holding `ids[i]`, ascending.
    starts: Vec<u32>,
    /// Window numbers (`MAX_LINES / WINDOW_STEP` windows at most fit a `u16`).
    postings: Vec<u16>,
    /// The number of distinct identifiers of each indexed window, by window number.
    sizes: Vec<u32>,
    /// Lines the windows are laid over (window ranges depend on it).
    lines: usize,
}

impl WindowIndex {
    pub(crate) fn build(text: &Rope) -> WindowIndex {
        let lines = indexed_lines(text);
        let windows = window_count(lines);
        let mut copy = String::new();
        // Identifiers of the lines in `first..next`, flat; `ends[k]` is where line
        // `first + k` ends in `buffer`. Lines are dropped once no later window needs them,
        // so this holds at most one window's worth.
        let mut buffer: Vec<u32> = Vec::new();
        let mut ends: Vec<usize> = Vec::new();
        let mut first = 0;
        let mut next = 0;
        let mut source = text.lines();
        let mut window_ids: Vec<u32> = Vec::new();
        let mut pairs: Vec<(u32, u16)> = Vec::new();
        let mut sizes: Vec<u32> = Vec::with_capacity(windows);
        for window in 0..windows {
            let range = window_lines(window, lines);
            let dropped = range.start.saturating_sub(first).min(ends.len());
            if dropped > 0 {
                let cut = ends[dropped - 1];
                buffer.drain(..cut);
                ends.drain(..dropped);
                ends.iter_mut().for_each(|end| *end -= cut);
                first += dropped;
            }
            while next < range.end {
                if let Some(line) = source.next() {
                    scan_line(line_text(line, &mut copy), |id| buffer.push(id));
                }
                ends.push(buffer.len());
                next += 1;
            }
            let Ok(number) = u16::try_from(window) else {
                break;
            };
            window_ids.clear();
            window_ids.extend_from_slice(&buffer);
            window_ids.sort_unstable();
            window_ids.dedup();
            if pairs.len() + window_ids.len() > MAX_POSTINGS {
                break;
            }
            pairs.extend(window_ids.iter().map(|&id| (id, number)));
            sizes.push(u32::try_from(window_ids.len()).unwrap_or(u32::MAX));
        }
        sizes.shrink_to_fit();
        let (ids, starts, postings) = invert(pairs);
        WindowIndex {
            ids,
            starts,
            postings,
            sizes,
            lines,
        }
    }

    /// Approximate heap bytes held (the server has a memory budget of 22 MiB with 50 open
    /// 2,000-line files). Checked by tests; the server does not report it yet.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.ids.capacity() * size_of::<u32>()
            + self.starts.capacity() * size_of::<u32>()
            + self.postings.capacity() * size_of::<u16>()
            + self.sizes.capacity() * size_of::<u32>()
    }

    /// The 0-based line range of window `window`.
    fn window_lines(&self, window: usize) -> Range<usize> {
        window_lines(window, self.lines)
    }

    /// The window most similar to `query` (sorted, deduplicated) with its score, the
    /// earliest on ties; `None` when no window shares an identifier with it. `counts` is
    /// scratch space reused across documents.
    fn best_window(&self, query: &[u32], counts: &mut Vec<u32>) -> Option<(usize, f32)> {
        counts.clear();
        counts.resize(self.sizes.len(), 0);
        // Both lists are sorted, so each search resumes where the previous one stopped.
        let mut from = 0;
        for &id in query {
            let Some(rest) = self.ids.get(from..) else {
                break;
            };
            match rest.binary_search(&id) {
                Ok(found) => {
                    let at = from + found;
                    for &window in self.postings_of(at) {
                        if let Some(count) = counts.get_mut(usize::from(window)) {
                            *count += 1;
                        }
                    }
                    from = at + 1;
                }
                Err(insert) => from += insert,
            }
        }

        let query_size = query.len() as u64;
        // (window, shared, union); compared as exact fractions so equal scores tie exactly.
        let mut best: Option<(usize, u64, u64)> = None;
        for (window, (&shared, &size)) in counts.iter().zip(&self.sizes).enumerate() {
            if shared == 0 {
                continue;
            }
            let shared = u64::from(shared);
            let union = (query_size + u64::from(size))
                .saturating_sub(shared)
                .max(shared);
            match best {
                Some((_, best_shared, best_union))
                    if shared * best_union <= best_shared * union => {}
                _ => best = Some((window, shared, union)),
            }
        }
        best.map(|(window, shared, union)| (window, shared as f32 / union as f32))
    }

    fn postings_of(&self, id_index: usize) -> &[u16] {
        let start = self.starts.get(id_index).map_or(0, |&start| start as usize);
        let end = self
            .starts
            .get(id_index + 1)
            .map_or(start, |&end| end as usize);
        self.postings.get(start..end).unwrap_or_default()
    }
}

/// Turns (identifier, window) pairs into the postings of [`WindowIndex`]: the distinct
/// identifiers ascending, where each one's windows start, and the windows.
fn invert(mut pairs: Vec<(u32, u16)>) -> (Vec<u32>, Vec<u32>, Vec<u16>) {
    pairs.sort_unstable();
    let distinct = pairs.chunk_by(|a, b| a.0 == b.0).count();
    let mut ids = Vec::with_capacity(distinct);
    let mut starts = Vec::with_capacity(distinct + 1);
    let mut postings = Vec::with_capacity(pairs.len());
    for (position, &(id, window)) in pairs.iter().enumerate() {
        if ids.last() != Some(&id) {
            ids.push(id);
            // Fits: the pairs are capped at `MAX_POSTINGS`.
            starts.push(u32::try_from(position).unwrap_or(u32::MAX));
        }
        postings.push(window);
    }
    starts.push(u32::try_from(pairs.len()).unwrap_or(u32::MAX));
    (ids, starts, postings)
}

/// The identifier set of the code around the cursor.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    /// Identifier hashes, sorted and deduplicated.
    ids: Vec<u32>,
}

impl Query {
    /// `text` is the code near the cursor (the caller passes the last ~[`WINDOW_LINES`]
    /// lines of the prefix plus a few of the suffix).
    pub(crate) fn new(text: &str) -> Query {
        let mut ids = Vec::new();
        // Line by line, so the per-line cap applies exactly as when indexing.
        for line in split_lines(text) {
            scan_line(line, |id| ids.push(id));
        }
        ids.sort_unstable();
        ids.dedup();
        Query { ids }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Match {
    /// Index into the `documents` slice given to `best_matches`.
    pub(crate) document: usize,
    /// 0-based line range [start, end) of the window in that document.
    pub(crate) lines: Range<usize>,
    /// Jaccard similarity in 0..=1.
    pub(crate) score: f32,
}

/// The best windows over all documents, best first, at most `max`, each with score >=
/// `min_score`.
///
/// At most one window per document, its best, as Copilot does: the snippets share a
/// small prompt budget, and a second window of the same file is usually the first one's
/// neighbour, so a snippet from another file adds more. A window sharing no identifier
/// with the query is never a match, even with `min_score` 0.
///
/// Ties go to the lower document index, and within a document to the earlier window.
/// The caller leaves the cursor's own document out of `documents`: its windows would
/// match the query itself.
pub(crate) fn best_matches(
    query: &Query,
    documents: &[&WindowIndex],
    max: usize,
    min_score: f32,
) -> Vec<Match> {
    if query.is_empty() || max == 0 {
        return Vec::new();
    }
    let mut counts = Vec::new();
    let mut matches: Vec<Match> = documents
        .iter()
        .enumerate()
        .filter_map(|(document, index)| {
            let (window, score) = index.best_window(&query.ids, &mut counts)?;
            (score >= min_score).then(|| Match {
                document,
                lines: index.window_lines(window),
                score,
            })
        })
        .collect();
    matches.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.document.cmp(&b.document))
    });
    matches.truncate(max);
    matches
}

/// The lines windows are laid over: at most `MAX_LINES`, leaving out the empty line
/// after a final line break (it holds nothing).
fn indexed_lines(text: &Rope) -> usize {
    let mut lines = text.len_lines();
    if lines > 1 && text.line(lines - 1).len_chars() == 0 {
        lines -= 1;
    }
    lines.min(MAX_LINES)
}

/// Windows start every `WINDOW_STEP` lines until one reaches the last line; a document
/// shorter than a window gets one window.
fn window_count(lines: usize) -> usize {
    if lines <= WINDOW_LINES {
        1
    } else {
        (lines - WINDOW_LINES).div_ceil(WINDOW_STEP) + 1
    }
}

fn window_lines(window: usize, lines: usize) -> Range<usize> {
    let start = window.saturating_mul(WINDOW_STEP).min(lines);
    start..start.saturating_add(WINDOW_LINES).min(lines)
}

/// Lines as ropey (built with `cr_lines`) and LSP break them: after `\n`, `\r\n` or a
/// lone `\r`; each line keeps its break.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let mut end = start;
        while end < bytes.len() {
            match bytes[end] {
                b'\n' => {
                    end += 1;
                    break;
                }
                b'\r' => {
                    end += if bytes.get(end + 1) == Some(&b'\n') {
                        2
                    } else {
                        1
                    };
                    break;
                }
                _ => end += 1,
            }
        }
        // Breaks are ASCII, so `start` and `end` are char boundaries.
        let line = text.get(start..end);
        start = end;
        line
    })
}

/// Calls `emit` with the hash of each kept identifier of one line, looking at its first
/// `MAX_LINE_BYTES` bytes only (an identifier cut by that limit is dropped).
fn scan_line(line: &str, mut emit: impl FnMut(u32)) {
    // The start of the identifier being read, if any.
    let mut word: Option<usize> = None;
    // Inside a run that began with a digit: a number such as `0x1f` or `10u8`.
    let mut number = false;
    for (at, c) in line.char_indices() {
        let word_char = c == '_' || c.is_alphanumeric();
        if at + c.len_utf8() > MAX_LINE_BYTES {
            if !word_char {
                keep(line, word, at, &mut emit);
            }
            return;
        }
        if word_char {
            if word.is_none() && !number {
                if c.is_numeric() {
                    number = true;
                } else {
                    word = Some(at);
                }
            }
        } else {
            keep(line, word.take(), at, &mut emit);
            number = false;
        }
    }
    keep(line, word, line.len(), &mut emit);
}

/// Emits the hash of `line[start..end]` unless it is one letter long or a keyword.
fn keep(line: &str, start: Option<usize>, end: usize, emit: &mut impl FnMut(u32)) {
    let Some(word) = start.and_then(|start| line.get(start..end)) else {
        return;
    };
    if word.chars().nth(1).is_none() {
        return;
    }
    let hash = fnv1a(word);
    if !is_keyword(word, hash) {
        emit(hash);
    }
}

/// The `MAX_LINE_BYTES` and a little more of a rope line, as one `&str`: borrowed when
/// the line lies in one chunk (most do), else copied into `buffer`.
fn line_text<'a>(line: RopeSlice<'a>, buffer: &'a mut String) -> &'a str {
    if let Some(text) = line.as_str() {
        return text;
    }
    buffer.clear();
    for chunk in line.chunks() {
        if buffer.len() > MAX_LINE_BYTES {
            break;
        }
        buffer.push_str(chunk);
    }
    buffer
}

/// 32-bit FNV-1a: fixed, so indexes and queries agree across runs and builds. A
/// collision merely makes two names count as one.
const fn fnv1a(word: &str) -> u32 {
    let bytes = word.as_bytes();
    let mut hash: u32 = 0x811c_9dc5;
    let mut at = 0;
    while at < bytes.len() {
        hash = (hash ^ bytes[at] as u32).wrapping_mul(0x0100_0193);
        at += 1;
    }
    hash
}

/// Slots of [`KEYWORD_TABLE`]: a power of two, well over twice the keywords, so probes
/// stay short.
const KEYWORD_SLOTS: usize = 512;

/// The hashes of [`KEYWORDS`] with their index in it, in an open-addressing table
/// (`None` marks an empty slot), built at compile time: a load or two and at most one
/// string comparison per identifier, where a binary search of the keywords takes eight.
const KEYWORD_TABLE: [Option<(u32, u8)>; KEYWORD_SLOTS] = {
    assert!(KEYWORDS.len() * 2 < KEYWORD_SLOTS && KEYWORDS.len() <= 256);
    let mut table = [None; KEYWORD_SLOTS];
    let mut at = 0;
    while at < KEYWORDS.len() {
        let hash = fnv1a(KEYWORDS[at]);
        let mut slot = hash as usize % KEYWORD_SLOTS;
        while table[slot].is_some() {
            slot = (slot + 1) % KEYWORD_SLOTS;
        }
        table[slot] = Some((hash, at as u8));
        at += 1;
    }
    table
};

/// Whether `word`, whose hash is `hash`, is one of [`KEYWORDS`].
fn is_keyword(word: &str, hash: u32) -> bool {
    let mut slot = hash as usize % KEYWORD_SLOTS;
    // Ends: the table has empty slots.
    while let Some(Some((found, index))) = KEYWORD_TABLE.get(slot) {
        if *found == hash && KEYWORDS.get(usize::from(*index)) == Some(&word) {
            return true;
        }
        slot = (slot + 1) % KEYWORD_SLOTS;
    }
    false
}

/// Keywords, primitive types and ubiquitous names of Rust, Python, JavaScript/TypeScript,
/// Go, Java, C and C++ (one-letter ones are dropped anyway). Kept sorted, which a test checks, so
/// duplicates and omissions are easy to see.
// One row per name would run to 180 lines.
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "Err", "False", "None", "Ok", "Self", "Some", "True", "abstract", "and", "any", "as",
    "assert", "async", "auto", "await", "bool", "boolean", "break", "byte", "case", "catch",
    "chan", "char", "class", "cls", "const", "const_cast", "continue", "crate", "debugger",
    "declare", "def", "default", "defer", "define", "del", "delete", "do", "double", "dyn",
    "dynamic_cast", "elif", "else", "endif", "enum", "error", "except", "explicit",
    "export", "extends", "extern", "f32", "f64", "fallthrough", "false", "final", "finally",
    "float", "float32", "float64", "fn", "for", "friend", "from", "func", "function",
    "global", "go", "goto", "i128", "i16", "i32", "i64", "i8", "if", "ifdef", "ifndef",
    "impl", "implements", "import", "in", "include", "inline", "instanceof", "int", "int16",
    "int32", "int64", "int8", "interface", "is", "isize", "keyof", "lambda", "let", "long",
    "loop", "map", "match", "mod", "move", "mut", "mutable", "namespace", "native", "new",
    "nil", "nonlocal", "not", "null", "nullptr", "number", "of", "operator", "or",
    "package", "pass", "private", "protected", "pub", "public", "raise", "range",
    "readonly", "ref", "register", "reinterpret_cast", "return", "rune", "self", "short",
    "signed", "sizeof", "static", "static_cast", "std", "str", "string", "struct", "super",
    "switch", "synchronized", "template", "this", "throw", "throws", "trait", "true", "try",
    "type", "typedef", "typename", "typeof", "u128", "u16", "u32", "u64", "u8", "uint",
    "uint16", "uint32", "uint64", "uint8", "undefined", "union", "unsafe", "unsigned",
    "use", "using", "usize", "var", "virtual", "void", "volatile", "where", "while", "with",
    "yield",
];

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn index(text: &str) -> WindowIndex {
        WindowIndex::build(&Rope::from_str(text))
    }

    impl WindowIndex {
        /// Each indexed window's identifier set, rebuilt from the postings.
        fn window_sets(&self) -> Vec<Vec<u32>> {
            let mut sets = vec![Vec::new(); self.sizes.len()];
            for (at, &id) in self.ids.iter().enumerate() {
                for &window in self.postings_of(at) {
                    sets[usize::from(window)].push(id);
                }
            }
            sets
        }
    }

    /// The obvious, slow scoring: every window against the query by sorted merge.
    fn reference_matches(
        query: &Query,
        documents: &[&WindowIndex],
        max: usize,
        min_score: f32,
    ) -> Vec<Match> {
        let sets: Vec<_> = documents.iter().map(|index| index.window_sets()).collect();
        reference_matches_in(query, documents, &sets, max, min_score)
    }

    /// [`reference_matches`] with each document's window sets given.
    fn reference_matches_in(
        query: &Query,
        documents: &[&WindowIndex],
        sets: &[Vec<Vec<u32>>],
        max: usize,
        min_score: f32,
    ) -> Vec<Match> {
        let mut matches = Vec::new();
        for (document, (index, sets)) in documents.iter().zip(sets).enumerate() {
            let mut best: Option<(usize, f32)> = None;
            for (window, set) in sets.iter().enumerate() {
                let (mut a, mut b, mut shared) = (0, 0, 0usize);
                while a < query.ids.len() && b < set.len() {
                    let (x, y) = (query.ids[a], set[b]);
                    shared += usize::from(x == y);
                    a += usize::from(x <= y);
                    b += usize::from(y <= x);
                }
                if shared == 0 {
                    continue;
                }
                let score = shared as f32 / (query.ids.len() + set.len() - shared) as f32;
                if best.is_none_or(|(_, best_score)| score > best_score) {
                    best = Some((window, score));
                }
            }
            if let Some((window, score)) = best.filter(|&(_, score)| score >= min_score) {
                matches.push(Match {
                    document,
                    lines: index.window_lines(window),
                    score,
                });
            }
        }
        matches.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.document.cmp(&b.document))
        });
        matches.truncate(max);
        matches
    }

    const PYTHON_CLIENT: &str = r#"import json
import urllib.request

class ApiClient:
    def __init__(self, base_url, token):
        self.base_url = base_url
        self.token = token

    def get(self, endpoint):
        request = urllib.request.Request(self.base_url + endpoint)
        request.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())
"#;

    const CONFIG_RS: &str = r#"use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::Path;

/// Errors from loading the settings file.
#[derive(Debug)]
pub enum ConfigError {
    Io(std::io::Error),
    Syntax { line: usize, message: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io(inner) => write!(formatter, "cannot read: {inner}"),
            ConfigError::Syntax { line, message } => {
                write!(formatter, "line {line}: {message}")
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Config {
    pub server_url: String,
    pub timeout_ms: u64,
    pub retries: u32,
}

pub fn parse_config(path: &Path) -> Result<Config, ConfigError> {
    let text = fs::read_to_string(path).map_err(ConfigError::Io)?;
    let mut config = Config::default();
    for (number, raw) in text.lines().enumerate() {
        let Some((key, value)) = raw.split_once('=') else {
            continue;
        };
        match key.trim() {
            "server_url" => config.server_url = value.trim().to_owned(),
            "timeout_ms" => config.timeout_ms = parse_number(value, number)?,
            "retries" => config.retries = parse_number(value, number)?,
            other => {
                let message = format!("unknown key {other}");
                return Err(ConfigError::Syntax { line: number, message });
            }
        }
    }
    Ok(config)
}

fn parse_number<T: std::str::FromStr>(value: &str, line: usize) -> Result<T, ConfigError> {
    let message = "not a number".to_owned();
    value.trim().parse().map_err(|_| ConfigError::Syntax { line, message })
}

/// Least-recently-used cache of rendered pages.
pub struct PageCache {
    capacity: usize,
    pages: HashMap<String, (u64, Vec<u8>)>,
    clock: u64,
}

impl PageCache {
    pub fn insert(&mut self, key: String, page: Vec<u8>) {
        self.clock += 1;
        if self.pages.len() >= self.capacity {
            let oldest = self.pages.iter().min_by_key(|(_, (stamp, _))| *stamp);
            if let Some(oldest) = oldest.map(|(key, _)| key.clone()) {
                self.pages.remove(&oldest);
            }
        }
        self.pages.insert(key, (self.clock, page));
    }
}
"#;

    const BUTTONS_JS: &str = r#"export function renderButtons(container, labels) {
  container.innerHTML = "";
  for (const label of labels) {
    const button = document.createElement("button");
    button.textContent = label;
    button.addEventListener("click", () => console.log(label));
    container.appendChild(button);
  }
}
"#;

    const LOGGING_RS: &str = r#"use std::io::Write;

pub struct Logger<W: Write> {
    sink: W,
    level: u8,
}

impl<W: Write> Logger<W> {
    pub fn log(&mut self, level: u8, message: &str) {
        if level >= self.level {
            let _ = writeln!(self.sink, "[{level}] {message}");
        }
    }
}
"#;

    /// The line of `text` (0-based) holding `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|line| line.contains(needle))
            .expect("needle in text")
    }

    #[test]
    fn the_window_with_the_called_function_wins() {
        let documents = [
            index(PYTHON_CLIENT),
            index(CONFIG_RS),
            index(BUTTONS_JS),
            index(LOGGING_RS),
        ];
        let documents: Vec<&WindowIndex> = documents.iter().collect();
        let query = Query::new(
            "fn start_server(settings_path: &Path) -> Result<Server, ConfigError> {\n\
             \x20   let config = parse_config(settings_path)?;\n\
             \x20   let mut attempts = 0;\n\
             \x20   while attempts < config.retries {\n\
             \x20       match connect(&config.server_url, config.timeout_ms) {\n",
        );
        let matches = best_matches(&query, &documents, 3, 0.05);
        assert_eq!(
            matches.first().map(|found| found.document),
            Some(1),
            "{matches:?}"
        );
        // The window holds the signature of `parse_config` (and the fields it sets), not
        // the error type or the cache.
        let signature = line_of(CONFIG_RS, "pub fn parse_config");
        assert!(matches[0].lines.contains(&signature), "{matches:?}");
        // Best first, one per document, all above the floor.
        assert!(matches
            .windows(2)
            .all(|pair| pair[0].score >= pair[1].score));
        assert!(matches.iter().all(|found| found.score >= 0.05));
        assert!(matches.iter().skip(1).all(|found| found.document != 1));
    }

    #[test]
    fn identical_text_scores_one() {
        let documents = [index(LOGGING_RS)];
        let matches = best_matches(&Query::new(LOGGING_RS), &[&documents[0]], 5, 1.0);
        assert_eq!(
            matches,
            [Match {
                document: 0,
                lines: 0..LOGGING_RS.lines().count(),
                score: 1.0,
            }]
        );

        // A window inside a longer document, queried with exactly its own lines.
        let long = CONFIG_RS;
        let window = 1;
        let lines = window_lines(window, long.lines().count());
        let text: String = long
            .split_inclusive('\n')
            .skip(lines.start)
            .take(lines.len())
            .collect();
        let documents = [index(long)];
        let matches = best_matches(&Query::new(&text), &[&documents[0]], 5, 0.0);
        assert_eq!(matches.len(), 1);
        assert_eq!(matches[0].score, 1.0);
        assert_eq!(matches[0].lines, lines);
    }

    #[test]
    fn disjoint_text_is_never_a_match() {
        let documents = [index("gamma delta\nepsilon zeta\n")];
        let documents = [&documents[0]];
        let query = Query::new("alpha beta\n");
        assert!(!query.is_empty());
        assert!(best_matches(&query, &documents, 5, 0.0).is_empty());
        assert_eq!(reference_matches(&query, &documents, 5, 0.0), []);

        // Sharing one name of five scores 1/5: kept at 0.2, excluded above.
        let query = Query::new("alpha gamma\n");
        assert_eq!(best_matches(&query, &documents, 5, 0.2)[0].score, 0.2);
        assert!(best_matches(&query, &documents, 5, 0.21).is_empty());
    }

    #[test]
    fn keywords_numbers_and_single_letters_make_an_empty_query() {
        let text = "if else for while return let const fn def function var self this true false\n\
                    null None int void public static class import from use struct\n\
                    x = 0x1f + 10u8 * i; j -= 2.5e3 // _ 1abc ²a";
        let query = Query::new(text);
        assert!(query.is_empty(), "{:?}", query.ids);
        let documents = [index(text)];
        assert!(best_matches(&query, &[&documents[0]], 5, 0.0).is_empty());
        assert!(Query::new("").is_empty());
    }

    #[test]
    fn identifiers_are_case_sensitive_and_unicode() {
        assert_eq!(Query::new("Config config").ids.len(), 2);
        assert_eq!(Query::new("größe größe _größe").ids.len(), 2);
        assert_eq!(Query::new("名前 x1 名前").ids.len(), 2);
        assert_eq!(
            Query::new("parse_config(path)").ids,
            Query::new("path parse_config").ids
        );
    }

    /// 50 lines, with names found nowhere else on lines 41 to 44: only the window
    /// [30, 50) holds them.
    fn marked_document(line_break: &str) -> String {
        (0..50)
            .map(|line| {
                let code = if (41..=44).contains(&line) {
                    format!("marker_{line} = common_{line}")
                } else {
                    format!("common_{line} = other_{line}")
                };
                code + line_break
            })
            .collect()
    }

    #[test]
    fn line_ranges_count_crlf_and_cr_as_one_break() {
        let query = Query::new("marker_41 marker_42 marker_43 marker_44");
        for line_break in ["\n", "\r\n", "\r"] {
            let text = marked_document(line_break);
            let rope = Rope::from_str(&text);
            let documents = [WindowIndex::build(&rope)];
            let matches = best_matches(&query, &[&documents[0]], 5, 0.0);
            assert_eq!(matches.len(), 1, "{line_break:?}");
            assert_eq!(matches[0].lines, 30..50, "{line_break:?}");
            // The caller can cut the snippet with ropey's own line numbers.
            let start = rope.line_to_char(matches[0].lines.start);
            assert!(rope
                .slice(start..)
                .to_string()
                .starts_with("common_30 = other_30"));
        }
    }

    #[test]
    fn windows_cover_every_line_and_short_documents_get_one() {
        assert_eq!(window_count(1), 1);
        assert_eq!(window_count(WINDOW_LINES), 1);
        for lines in 1..200 {
            let windows: Vec<_> = (0..window_count(lines))
                .map(|w| window_lines(w, lines))
                .collect();
            assert_eq!(windows[0].start, 0);
            assert_eq!(windows.last().map(|range| range.end), Some(lines));
            assert!(windows.iter().all(|range| range.start < range.end));
            assert!(windows.iter().all(|range| range.len() <= WINDOW_LINES));
            // Consecutive windows overlap, so no line falls between them.
            assert!(windows.windows(2).all(|pair| pair[1].start < pair[0].end));
        }
        // The empty line after a final break is not a line of any window.
        let documents = [index("alpha beta\n")];
        let matches = best_matches(&Query::new("alpha beta"), &[&documents[0]], 5, 0.0);
        assert_eq!(matches[0].lines, 0..1);
    }

    #[test]
    fn ties_go_to_the_first_document_then_the_first_window() {
        let block = "let total = price * quantity;\nsubmit_order(customer, total);\n";
        let filler: String = (0..WINDOW_LINES)
            .map(|line| format!("unrelated_{line}\n"))
            .collect();
        // The block twice, in windows that do not overlap.
        let twice = format!("{block}{filler}{filler}{block}{filler}");
        let documents = [
            index("price quantity\n"),
            index(&twice),
            index(block),
            index(&twice),
        ];
        let documents: Vec<&WindowIndex> = documents.iter().collect();
        let query = Query::new(block);
        let first = best_matches(&query, &documents, 10, 0.0);
        assert_eq!(first, best_matches(&query, &documents, 10, 0.0));
        let order: Vec<usize> = first.iter().map(|found| found.document).collect();
        assert_eq!(order, [2, 0, 1, 3], "{first:?}");
        // Documents 1 and 3 tie, each on its first window of two equal ones.
        assert_eq!(first[2].score, first[3].score);
        assert_eq!(first[2].lines, 0..WINDOW_LINES);
        assert_eq!(first[3].lines, 0..WINDOW_LINES);
        assert_eq!(best_matches(&query, &documents, 2, 0.0), first[..2]);
        assert!(best_matches(&query, &documents, 0, 0.0).is_empty());
    }

    #[test]
    fn keywords_are_sorted_unique_and_longer_than_one_char() {
        assert!(KEYWORDS.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(KEYWORDS.iter().all(|word| word.len() > 1));
        assert!(KEYWORDS.iter().all(|word| is_keyword(word, fnv1a(word))));
        for word in [
            "parse_config",
            "Self_",
            "selfish",
            "IF",
            "Fn",
            "returns",
            "string_",
        ] {
            assert!(!is_keyword(word, fnv1a(word)), "{word}");
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(""), 0x811c_9dc5);
        assert_eq!(fnv1a("a"), 0xe40c_292c);
        assert_eq!(fnv1a("foobar"), 0xbf9c_f968);
    }

    /// Code-like text of `lines` lines: names from a per-document vocabulary drawn with a
    /// skew, as real code reuses a few names a lot; deterministic for a given `seed`.
    fn synthetic_document(seed: u64, lines: usize) -> String {
        const PARTS: &[&str] = &[
            "load", "parse", "config", "server", "request", "cache", "token", "buffer", "index",
            "window", "reader", "writer", "client", "handle", "state", "kind", "path", "value",
            "count", "offset", "line", "query", "score", "match", "range", "text", "node", "tree",
            "edit", "cursor", "prefix", "suffix",
        ];
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut random = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        let vocabulary: Vec<String> = (0..400)
            .map(|_| {
                let (a, b) = (PARTS[random(PARTS.len())], PARTS[random(PARTS.len())]);
                match random(3) {
                    0 => format!("{a}_{b}"),
                    1 => format!("{a}{}{}", b[..1].to_uppercase(), &b[1..]),
                    _ => format!("{a}_{b}_{}", PARTS[random(PARTS.len())]),
                }
            })
            .collect();
        let mut text = String::new();
        for _ in 0..lines {
            if random(10) == 0 {
                text.push('\n');
                continue;
            }
            text.push_str(&"    "[..random(4)]);
            for token in 0..1 + random(7) {
                if token > 0 {
                    text.push_str([" = ", ".", "(", ", ", " + ", ") {", "::"][random(7)]);
                }
                if random(5) == 0 {
                    text.push_str(["let", "if", "return", "fn", "self", "for"][random(6)]);
                } else {
                    // Squaring skews towards the start of the vocabulary.
                    let pick = random(1000);
                    text.push_str(&vocabulary[pick * pick * vocabulary.len() / 1_000_000]);
                }
            }
            text.push_str(";\n");
        }
        text
    }

    #[test]
    fn index_sizes_stay_within_the_memory_budget() {
        // A 2,000-line document: 50 of them with the rest of the server in 22 MiB.
        let typical = index(&synthetic_document(7, 2_000));
        assert!(typical.heap_bytes() < 64 * 1024, "{}", typical.heap_bytes());
        assert!(typical.postings.len() < MAX_POSTINGS / 2);

        // Minified-style text: long lines of names found nowhere else hit the caps.
        let mut dense = String::new();
        let mut name = 0;
        for _ in 0..MAX_LINES + 100 {
            while dense.len() % 1_000 < 990 {
                dense.push_str(&format!("n{name} "));
                name += 1;
            }
            dense.push('\n');
        }
        let dense = index(&dense);
        assert!(dense.postings.len() <= MAX_POSTINGS);
        assert!(dense.heap_bytes() <= 10 * MAX_POSTINGS + 4 * (MAX_LINES / WINDOW_STEP + 1) + 16);
        assert!(!dense.sizes.is_empty());
    }

    #[test]
    fn huge_and_empty_inputs_do_not_panic() {
        let long_line = "identifier_".repeat(100_000);
        for text in ["", "\n", "\r\n\r\n", "\r", "😀", long_line.as_str()] {
            let documents = [index(text)];
            let query = Query::new(text);
            for found in best_matches(&query, &[&documents[0]], 3, 0.0) {
                assert!(found.lines.start < found.lines.end);
            }
        }
        let documents = [index("alpha beta")];
        assert!(best_matches(&Query::new("alpha"), &[&documents[0]], 3, f32::NAN).is_empty());
        assert!(best_matches(&Query::new("alpha"), &[], 3, 0.0).is_empty());
    }

    /// Checks each window's identifiers against those of its lines read back from the rope.
    fn assert_windows_match_their_lines(rope: &Rope) {
        let index = WindowIndex::build(rope);
        let sets = index.window_sets();
        assert_eq!(sets.len(), window_count(index.lines));
        for (window, set) in sets.iter().enumerate() {
            let lines = index.window_lines(window);
            let slice = rope.slice(rope.line_to_char(lines.start)..rope.line_to_char(lines.end));
            assert_eq!(set, &Query::new(&slice.to_string()).ids, "window {window}");
            assert_eq!(set.len(), index.sizes[window] as usize);
        }
    }

    #[test]
    fn windows_match_their_lines_across_rope_chunks() {
        // CRLF, non-ASCII, and lines over the byte cap that span several rope chunks.
        let mut text = synthetic_document(3, 3_000).replace('\n', "\r\n");
        for (at, long) in [(100, 300), (2_000, 1_500), (40_000, 700)] {
            let long_line = format!("\r\n{}\r\n", "größe_名前 alpha_beta ".repeat(long / 20));
            let at = (at..text.len())
                .find(|&at| text.is_char_boundary(at))
                .unwrap_or(0);
            text.insert_str(at, &long_line);
        }
        assert_windows_match_their_lines(&Rope::from_str(&text));
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "alpha",
            "beta_gamma",
            "Delta",
            "delta",
            "x",
            "if",
            "return",
            " ",
            "(",
            ".",
            "\n",
            "\n",
            "\n",
            "\r\n",
            "\r",
            "é",
            "中文",
            "😀",
            "1abc",
            "_",
            "größe",
            "\t",
        ]);
        prop::collection::vec(pieces, 0..400).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn best_matches_agrees_with_the_reference_and_stays_in_range(
            texts in prop::collection::vec(text_strategy(), 0..5),
            query in text_strategy(),
            max in 0usize..6,
            min_score in 0.0f32..=1.0,
        ) {
            let ropes: Vec<Rope> = texts.iter().map(|text| Rope::from_str(text)).collect();
            let indexes: Vec<WindowIndex> = ropes.iter().map(WindowIndex::build).collect();
            let documents: Vec<&WindowIndex> = indexes.iter().collect();
            let query = Query::new(&query);
            let matches = best_matches(&query, &documents, max, min_score);

            prop_assert_eq!(&matches, &reference_matches(&query, &documents, max, min_score));
            prop_assert!(matches.len() <= max);
            prop_assert!(matches.windows(2).all(|pair| pair[0].score >= pair[1].score));
            for (position, found) in matches.iter().enumerate() {
                prop_assert!(found.document < documents.len());
                prop_assert!(matches[..position].iter().all(|other| other.document != found.document));
                prop_assert!(found.lines.start < found.lines.end);
                prop_assert!(found.lines.end <= ropes[found.document].len_lines());
                prop_assert!(found.score > 0.0 && found.score <= 1.0);
                prop_assert!(found.score >= min_score);
            }
        }

        #[test]
        fn each_window_holds_the_identifiers_of_its_lines(text in text_strategy()) {
            assert_windows_match_their_lines(&Rope::from_str(&text));
        }
    }

    /// Timing for the report, not a pass/fail check:
    /// `cargo test --release -p tandem-lsp --lib context::similar -- --ignored --nocapture`
    #[test]
    #[ignore = "timing printout"]
    fn time_best_matches_over_twenty_documents() {
        use std::time::Instant;

        fn median(mut samples: Vec<f64>) -> f64 {
            samples.sort_by(f64::total_cmp);
            samples[samples.len() / 2]
        }
        fn per_call(runs: usize, mut call: impl FnMut()) -> (f64, f64) {
            let mut samples: Vec<f64> = (0..runs)
                .map(|_| {
                    let start = Instant::now();
                    call();
                    start.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            samples.sort_by(f64::total_cmp);
            (samples[runs / 2], samples[runs * 99 / 100])
        }

        let texts: Vec<String> = (0..21)
            .map(|seed| synthetic_document(seed, 2_000))
            .collect();
        let ropes: Vec<Rope> = texts.iter().map(|text| Rope::from_str(text)).collect();
        let build_us = median(
            ropes
                .iter()
                .map(|rope| {
                    let start = Instant::now();
                    std::hint::black_box(WindowIndex::build(rope));
                    start.elapsed().as_secs_f64() * 1e6
                })
                .collect(),
        );
        let indexes: Vec<WindowIndex> = ropes[..20].iter().map(WindowIndex::build).collect();
        let documents: Vec<&WindowIndex> = indexes.iter().collect();
        // The cursor's own document (not searched): 25 lines of it around line 1,000.
        let around: String = texts[20]
            .split_inclusive('\n')
            .skip(1_000)
            .take(25)
            .collect();
        let query = Query::new(&around);
        let (median_us, p99_us) = per_call(2_000, || {
            std::hint::black_box(best_matches(&query, &documents, 3, 0.1));
        });
        let sets: Vec<_> = documents.iter().map(|index| index.window_sets()).collect();
        let (reference_us, _) = per_call(200, || {
            std::hint::black_box(reference_matches_in(&query, &documents, &sets, 3, 0.1));
        });
        let heap: Vec<usize> = indexes.iter().map(WindowIndex::heap_bytes).collect();
        let source: String = include_str!("similar.rs")
            .lines()
            .cycle()
            .take(2_000)
            .map(|line| format!("{line}\n"))
            .collect();
        let own = index(&source);
        eprintln!(
            "query ids {}, windows/doc {}, postings/doc {}",
            query.ids.len(),
            indexes[0].sizes.len(),
            indexes[0].postings.len()
        );
        eprintln!(
            "heap bytes per 2,000-line doc: synthetic median {}, this file cycled to 2,000 lines {} ({} postings)",
            median(heap.iter().map(|&bytes| bytes as f64).collect()),
            own.heap_bytes(),
            own.postings.len()
        );
        eprintln!("build per 2,000-line doc: median {build_us:.0} µs");
        eprintln!("best_matches over 20 docs: median {median_us:.1} µs, p99 {p99_us:.1} µs");
        eprintln!("sorted-merge reference over the same: median {reference_us:.1} µs");
    }
}
