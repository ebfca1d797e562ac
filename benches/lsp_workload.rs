//! The end-to-end LSP workload behind `docs/PERFORMANCE.md`.
//!
//! Drives the real `tandem` and `tandem-cloud` release binaries as a user runs them:
//! the editor side speaks LSP over stdio, `tandem-cloud` serves on loopback with an
//! Ollama-format provider fixture behind it. Run it with
//! `cargo run --release -p tandem-bench --bin lsp_workload` (it builds the binaries it
//! drives, in the same profile). Optional arguments pick sections: `burst`, `latency`,
//! `cache`, `cold`, `rss`, `sweep`; none means all but `sweep`.
//!
//! Measures: (a) a 40-keystroke burst at 30 ms; (b) explicitly invoked completion
//! latency with a 0 ms provider through server, cloud and provider; (c) cache hits;
//! (d) cold start to the `initialize` response; (e) resident memory with 50 open
//! 2,000-line files; and `sweep`, upstream calls per burst for several typing speeds and
//! debounce delays (how the default debounce was chosen).

// A command-line report: stdout is its output.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tandem_e2e::{
    CloudOptions, CloudServer, LspClient, LspOptions, ProviderConfig, ProviderFixture,
    RecordedRequest,
};
use tandem_shared::inline_completion::Position;

const MODEL: &str = "qwen2.5-coder:1.5b-bench";
const ANCHOR: &str = "let total = ";

/// Quiet logs: the stderr pipes are drained, but formatting log lines is work a user
/// with default settings would not see per request either.
fn quiet() -> Vec<(String, String)> {
    vec![("TANDEM_LOG".to_owned(), "warn".to_owned())]
}

struct Bench {
    provider: ProviderFixture,
    cloud: CloudServer,
}

impl Bench {
    async fn start() -> anyhow::Result<Bench> {
        let provider = ProviderFixture::start().await?;
        let mut options = CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL));
        options.env = quiet();
        let cloud = CloudServer::start(options).await?;
        Ok(Bench { provider, cloud })
    }

    async fn lsp(&self, extra: Value) -> anyhow::Result<LspClient> {
        let lsp = LspClient::spawn(LspOptions {
            env: quiet(),
            request_timeout: Duration::from_secs(30),
            ..LspOptions::default()
        })
        .await?;
        let mut options = json!({"server": self.cloud.url(), "apiKey": self.cloud.api_key()});
        if let (Some(options), Value::Object(extra)) = (options.as_object_mut(), extra) {
            options.extend(extra);
        }
        lsp.initialize(options, true).await?;
        Ok(lsp)
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

/// UTF-8 is negotiated, and the documents are ASCII, so columns are byte offsets.
fn position(line: u32, character: usize) -> Position {
    Position {
        line,
        character: character as u32,
    }
}

fn inline_params(uri: &str, position: Position, trigger_kind: u8) -> Value {
    json!({"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": trigger_kind}})
}

fn items(result: &Value) -> Vec<Value> {
    result["items"].as_array().cloned().unwrap_or_default()
}

/// The provider names the word after [`ANCHOR`] in its prompt.
fn reply_for(prompt: &str) -> String {
    let typed = prompt
        .rfind(ANCHOR)
        .map(|at| &prompt[at + ANCHOR.len()..])
        .unwrap_or_default();
    let word: String = typed
        .chars()
        .take_while(|character| character.is_alphanumeric() || *character == '_')
        .collect();
    format!("/* after {word} */")
}

struct BurstOutcome {
    upstream_calls: usize,
    /// From the last keystroke's request being sent to the final suggestion.
    final_latency: Duration,
    /// From the last keystroke's request being sent to the provider receiving its call.
    to_provider: Duration,
    stale: usize,
}

/// `keystrokes` characters at `interval`, each a didChange and an automatic inline
/// completion, cancelling the previous request.
async fn burst(
    bench: &Bench,
    lsp: &LspClient,
    uri: &str,
    keystrokes: usize,
    interval: Duration,
) -> anyhow::Result<BurstOutcome> {
    let text = format!("fn main() {{\n    {ANCHOR}\n}}\n");
    lsp.did_open(uri, "rust", 1, &text).await?;
    let word: String = "accumulated_values_of_every_item_in_the_list_"
        .chars()
        .cycle()
        .take(keystrokes)
        .collect();
    let calls_before = bench.provider.request_count();
    let column = 4 + ANCHOR.len();
    let mut pending = Vec::new();
    let mut previous_id = None;
    let mut next = Instant::now();
    let mut last_sent = Instant::now();
    for (index, character) in word.char_indices() {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let at = position(1, column + index);
        let range = tandem_shared::inline_completion::Range { start: at, end: at };
        lsp.did_change_incremental(uri, index as i32 + 2, range, &character.to_string())
            .await?;
        if let Some(id) = previous_id {
            lsp.notify("$/cancelRequest", json!({"id": id})).await?;
        }
        last_sent = Instant::now();
        let request = lsp
            .start_request(
                "textDocument/inlineCompletion",
                inline_params(uri, position(1, column + index + 1), 2),
            )
            .await?;
        previous_id = Some(request.id());
        pending.push((word[..=index].to_owned(), request));
    }
    let last = pending.len() - 1;
    let mut stale = 0;
    let mut final_latency = Duration::ZERO;
    for (index, (typed, request)) in pending.into_iter().enumerate() {
        let answer = request.response().await;
        if index == last {
            final_latency = last_sent.elapsed();
        }
        match answer {
            Ok(result) => {
                for item in items(&result) {
                    if item["insertText"] != reply_for(&format!("{ANCHOR}{typed}")) {
                        stale += 1;
                    }
                }
                if index == last && items(&result).is_empty() {
                    bail!("the final request of the burst got no suggestion");
                }
            }
            Err(error) if index != last && error.code() == Some(-32800) => {}
            Err(error) => bail!("keystroke {index}: {error}"),
        }
    }
    lsp.did_close(uri).await?;
    let calls = bench.provider.requests();
    let to_provider = calls
        .last()
        .map(|call| call.received_at.saturating_duration_since(last_sent))
        .unwrap_or_default();
    Ok(BurstOutcome {
        upstream_calls: calls.len() - calls_before,
        final_latency,
        to_provider,
        stale,
    })
}

async fn section_burst(bench: &Bench) -> anyhow::Result<()> {
    const RUNS: usize = 11;
    const DEBOUNCE: Duration = Duration::from_millis(75);
    const PROVIDER: Duration = Duration::from_millis(20);
    bench.provider.set_delay(PROVIDER);
    let lsp = bench
        .lsp(json!({"debounceMs": DEBOUNCE.as_millis() as u64}))
        .await?;
    let mut calls = Vec::new();
    let mut overheads = Vec::new();
    // The overhead split at the provider: before it (LSP, debounce timer, cloud) and after.
    let mut before_provider = Vec::new();
    let mut after_provider = Vec::new();
    let mut stale = 0;
    for run in 0..RUNS {
        let uri = lsp.uri(&format!("src/burst_{run}.rs"));
        let outcome = burst(bench, &lsp, &uri, 40, Duration::from_millis(30)).await?;
        calls.push(outcome.upstream_calls);
        overheads.push(outcome.final_latency.saturating_sub(DEBOUNCE + PROVIDER));
        before_provider.push(outcome.to_provider.saturating_sub(DEBOUNCE));
        after_provider.push(
            outcome
                .final_latency
                .saturating_sub(outcome.to_provider + PROVIDER),
        );
        stale += outcome.stale;
    }
    bench.provider.set_delay(Duration::ZERO);
    overheads.sort();
    before_provider.sort();
    after_provider.sort();
    calls.sort();
    println!("## (a) 40-keystroke burst at 30 ms ({RUNS} runs, debounce 75 ms, provider 20 ms)");
    println!(
        "upstream calls per burst: min {} median {} max {}",
        calls[0],
        calls[RUNS / 2],
        calls[RUNS - 1]
    );
    println!(
        "last keystroke to final suggestion, minus debounce and provider: median {} max {}",
        millis(percentile(&overheads, 0.5)),
        millis(overheads[RUNS - 1])
    );
    println!(
        "of which before the provider (minus debounce): median {}; after it (minus its delay): median {}",
        millis(percentile(&before_provider, 0.5)),
        millis(percentile(&after_provider, 0.5))
    );
    println!("stale suggestions shown: {stale}");
    lsp.shutdown_and_exit().await?;
    Ok(())
}

async fn section_latency(bench: &Bench) -> anyhow::Result<()> {
    const REQUESTS: usize = 2000;
    const WARM_UP: usize = 100;
    bench.provider.set_delay(Duration::ZERO);
    bench.provider.reply_with_text("compute(1)");
    let lsp = bench.lsp(json!({})).await?;
    let uri = lsp.uri("src/latency.rs");
    let line = format!("    {ANCHOR}");
    lsp.did_open(&uri, "rust", 1, &format!("fn main() {{\n{line}\n}}\n"))
        .await?;
    let mut latencies = Vec::with_capacity(REQUESTS);
    for index in 0..WARM_UP + REQUESTS {
        // A new digit each time: a new request body (no cache hit), and never the start
        // of the suggestion (no typing-through), so every request goes upstream.
        let at = position(1, line.len() + index);
        let range = tandem_shared::inline_completion::Range { start: at, end: at };
        lsp.did_change_incremental(&uri, index as i32 + 2, range, &(index % 10).to_string())
            .await?;
        let params = inline_params(&uri, position(1, line.len() + index + 1), 1);
        let started = Instant::now();
        let result = lsp.request("textDocument/inlineCompletion", params).await?;
        let elapsed = started.elapsed();
        if items(&result).is_empty() {
            bail!("request {index} got no suggestion: {result}");
        }
        if index >= WARM_UP {
            latencies.push(elapsed);
        }
    }
    latencies.sort();
    println!("## (b) explicit completion, 0 ms provider, tandem → tandem-cloud → provider ({REQUESTS} requests)");
    println!(
        "p50 {}  p90 {}  p99 {}  max {}",
        millis(percentile(&latencies, 0.5)),
        millis(percentile(&latencies, 0.9)),
        millis(percentile(&latencies, 0.99)),
        millis(latencies[latencies.len() - 1])
    );
    lsp.shutdown_and_exit().await?;
    Ok(())
}

async fn section_cache(bench: &Bench) -> anyhow::Result<()> {
    const REQUESTS: usize = 2000;
    let lsp = bench.lsp(json!({})).await?;
    let uri = lsp.uri("src/cache.rs");
    let line = format!("    {ANCHOR}value");
    lsp.did_open(&uri, "rust", 1, &format!("fn main() {{\n{line}\n}}\n"))
        .await?;
    let params = inline_params(&uri, position(1, line.len()), 1);
    lsp.request("textDocument/inlineCompletion", params.clone())
        .await?;
    let calls = bench.provider.request_count();
    let mut latencies = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let started = Instant::now();
        let result = lsp
            .request("textDocument/inlineCompletion", params.clone())
            .await?;
        latencies.push(started.elapsed());
        if items(&result).is_empty() {
            bail!("a cache hit without a suggestion: {result}");
        }
    }
    if bench.provider.request_count() != calls {
        bail!("cache hits went upstream");
    }
    latencies.sort();
    println!(
        "## (c) cache hit, explicit request ({REQUESTS} requests, client round trip included)"
    );
    println!(
        "p50 {}  p99 {}  max {}",
        millis(percentile(&latencies, 0.5)),
        millis(percentile(&latencies, 0.99)),
        millis(latencies[latencies.len() - 1])
    );
    lsp.shutdown_and_exit().await?;
    Ok(())
}

async fn section_cold(bench: &Bench) -> anyhow::Result<()> {
    const RUNS: usize = 30;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let lsp = LspClient::spawn(LspOptions {
            env: quiet(),
            ..LspOptions::default()
        })
        .await?;
        lsp.request(
            "initialize",
            json!({"processId": null, "rootUri": lsp.root_uri(), "capabilities": {},
                   "initializationOptions": {"server": bench.cloud.url(), "apiKey": bench.cloud.api_key()}}),
        )
        .await?;
        times.push(started.elapsed());
        lsp.notify("initialized", json!({})).await?;
        lsp.shutdown_and_exit().await?;
    }
    times.sort();
    println!("## (d) cold start: spawn to initialize response ({RUNS} runs)");
    println!(
        "median {}  min {}  max {}",
        millis(percentile(&times, 0.5)),
        millis(times[0]),
        millis(times[RUNS - 1])
    );
    Ok(())
}

/// A 2,000-line Rust file of realistic shape (about 70 KB).
fn rust_file(seed: usize) -> String {
    let mut text = String::with_capacity(80_000);
    text.push_str("use std::collections::HashMap;\n\n");
    let mut line = 2;
    let mut function = 0;
    while line < 2000 {
        text.push_str(&format!(
            "pub fn handler_{seed}_{function}(input: &HashMap<String, u64>) -> u64 {{\n"
        ));
        line += 1;
        for step in 0..8 {
            text.push_str(&format!(
                "    let value_{step} = input.get(\"key_{seed}_{function}_{step}\").copied().unwrap_or({step});\n"
            ));
            line += 1;
        }
        text.push_str("    value_0 + value_1 + value_2 + value_3\n}\n\n");
        line += 3;
        function += 1;
    }
    text
}

fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc (Linux only)")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

async fn section_rss(bench: &Bench) -> anyhow::Result<()> {
    let lsp = bench.lsp(json!({})).await?;
    let pid = lsp.pid().context("the server is not running")?;
    let idle = resident_kib(pid)?;
    for index in 0..50 {
        let uri = lsp.uri(&format!("src/file_{index}.rs"));
        lsp.did_open(&uri, "rust", 1, &rust_file(index)).await?;
        // One completion per file: the request path (and any per-document state it
        // builds) is part of what a user's session holds.
        lsp.request(
            "textDocument/inlineCompletion",
            inline_params(&uri, position(1000, 4), 1),
        )
        .await?;
    }
    // Let deferred work (indexing the other documents for cross-file context, one at a
    // time in the background, and giving freed memory back once a second) settle: wait
    // 2 s, then read until two readings 500 ms apart agree within 1%, for at most 20 s.
    let mut peak = resident_kib(pid)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut loaded = resident_kib(pid)?;
    peak = peak.max(loaded);
    for _ in 0..36 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = resident_kib(pid)?;
        peak = peak.max(now);
        let settled = now.abs_diff(loaded) * 100 <= loaded;
        loaded = now;
        if settled {
            break;
        }
    }
    println!("## (e) resident memory");
    println!(
        "after initialize {:.1} MiB; with 50 open 2,000-line files {:.1} MiB (highest reading {:.1} MiB)",
        idle as f64 / 1024.0,
        loaded as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    lsp.shutdown_and_exit().await?;
    Ok(())
}

/// Upstream calls per 20-keystroke burst for typing intervals × debounce delays.
async fn section_sweep(bench: &Bench) -> anyhow::Result<()> {
    const PROVIDER: Duration = Duration::from_millis(20);
    bench.provider.set_delay(PROVIDER);
    bench
        .provider
        .reply_with(|request: &RecordedRequest| reply_for(request.prompt().unwrap_or_default()));
    let intervals = [30u64, 60, 100, 150, 200];
    let debounces = [0u64, 50, 75, 100, 150];
    println!("## sweep: upstream calls per 20-keystroke burst (rows: debounce ms, columns: ms between keystrokes)");
    println!(
        "| debounce | {} |",
        intervals.map(|ms| ms.to_string()).join(" | ")
    );
    println!("|---|{}", "---|".repeat(intervals.len()));
    for debounce in debounces {
        let lsp = bench.lsp(json!({"debounceMs": debounce})).await?;
        let mut row = Vec::new();
        for interval in intervals {
            let uri = lsp.uri(&format!("src/sweep_{debounce}_{interval}.rs"));
            let outcome = burst(bench, &lsp, &uri, 20, Duration::from_millis(interval)).await?;
            row.push(outcome.upstream_calls.to_string());
        }
        println!("| {debounce} | {} |", row.join(" | "));
        lsp.shutdown_and_exit().await?;
    }
    bench.provider.set_delay(Duration::ZERO);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let sections: Vec<String> = std::env::args().skip(1).collect();
    let wants = |name: &str| {
        if sections.is_empty() {
            name != "sweep"
        } else {
            sections.iter().any(|section| section == name)
        }
    };
    let bench = Bench::start().await?;
    bench
        .provider
        .reply_with(|request: &RecordedRequest| reply_for(request.prompt().unwrap_or_default()));
    if wants("burst") {
        section_burst(&bench).await?;
    }
    if wants("latency") {
        section_latency(&bench).await?;
    }
    if wants("cache") {
        section_cache(&bench).await?;
    }
    if wants("cold") {
        section_cold(&bench).await?;
    }
    if wants("rss") {
        section_rss(&bench).await?;
    }
    if wants("sweep") {
        section_sweep(&bench).await?;
    }
    Ok(())
}
