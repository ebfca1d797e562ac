//! Load test of the cloud API's own overhead.
//!
//! Starts a loopback Ollama-format provider that answers at once and the real
//! `tandem-cloud` binary in front of it, with a test user on a `load` tier whose limits
//! are out of reach, then drives `POST /v1/completions` over HTTP/1.1 keep-alive
//! connections. What the API adds (authentication, tier checks and limits, routing,
//! usage accounting) is the difference between calling through `tandem-cloud` and
//! calling the provider directly, at the same load, with the exact body `tandem-cloud`
//! sends it. Run it with `cargo run --release -p tandem-bench --bin cloud_load` (it
//! builds the `tandem-cloud` it drives, in the same profile). Optional arguments pick
//! sections: `throughput`, `latency`, `idle`, `cluster`; none means the first three
//! (`cluster` needs PostgreSQL and Redis, so it runs only when named).
//!
//! - `throughput`: 64 connections sending back-to-back for 10 s after a 2 s warm-up:
//!   requests per second, p50 and p99, errors by status, and CPU time used. The same
//!   against the provider directly gives the ceiling of the load generator and the
//!   provider alone on this machine.
//! - `latency`: an open loop at a fixed 1,000 requests/s for 10 s after a 1 s warm-up.
//!   Requests are scheduled by send time, not by completion, and each latency runs from
//!   the time its request was due, so a stall counts against every request it delays
//!   (no coordinated omission). Through `tandem-cloud`, directly, and the difference.
//! - `idle`: resident memory of `tandem-cloud` after start and after the load.
//! - `cluster`: three `tandem-cloud` instances sharing one PostgreSQL schema and one
//!   Redis, as a scaled-out deployment runs them (the setup of `tests/e2e/cluster.rs`),
//!   and 1,000 keep-alive connections spread evenly over them, sending back-to-back for
//!   10 s after a 3 s warm-up: requests per second, p50, p99 and max, errors by status,
//!   CPU time of every process involved (PostgreSQL's and Redis's too, when they run on
//!   this machine), Redis commands and PostgreSQL commits per request, and whether every
//!   answer has its usage record and its count in Redis. The servers are
//!   `TANDEM_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and
//!   `TANDEM_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`); the run creates a
//!   schema and a Redis key prefix of its own and removes both at the end. Any 5xx
//!   answer or dropped connection fails the run.
//!
//! Answers other than 200 and failed connections are errors and are reported, with the
//! first body of each status. The run exits non-zero when it could not measure: a part
//! does not start, the first request does not come back with the provider's text,
//! `tandem-cloud` exits, or a section gets no successful answer at all.
//!
//! `tandem-cloud` logs at `warn` (as in `lsp_workload`) unless `TANDEM_LOG` is set for
//! this process, which is then passed on.

// A command-line report: stdout is its output.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use axum::http::{HeaderValue, Request};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use redis::aio::MultiplexedConnection;
use serde_json::json;
use sqlx::{Connection as _, PgConnection};
use tandem_cloud::db::scratch::ScratchDb;
use tandem_e2e::{CloudOptions, CloudServer, ProviderConfig};
use tandem_shared::{CodeContext, CompletionRequest, CompletionResponse};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// A model name of the `qwen` family, so `tandem-cloud` renders its fill-in-the-middle
/// template (`template = "auto"`) as it would for a real deployment.
const MODEL: &str = "qwen2.5-coder:1.5b-bench";
/// The completion the provider returns.
const PROVIDER_TEXT: &str = "entry.add(amount);";

/// A tier whose limits no run reaches: the default `enterprise` allows 5,000 requests
/// an hour, fewer than one second of this test. `tokens_per_day` is near the largest
/// TOML integer (a signed 64-bit number, TOML 1.0 "Integer"), not `u64::MAX`.
const LOAD_TIER: &str = "load";
const LOAD_TIER_TOML: &str = r#"
[tiers.load]
requests_per_hour = 4000000000
requests_per_day = 4000000000
burst_per_minute = 0
tokens_per_day = 9000000000000000000
max_file_size_mb = 100
max_context_tokens = 32000
providers = ["*"]
features = ["*"]
"#;

const CONNECTIONS: usize = 64;
const THROUGHPUT_WARM_UP: Duration = Duration::from_secs(2);
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(10);
const LATENCY_RATE: u32 = 1_000;
const LATENCY_WARM_UP: Duration = Duration::from_secs(1);
const LATENCY_WINDOW: Duration = Duration::from_secs(10);
/// Connections the open loop holds ready; it opens more when all are busy.
const LATENCY_CONNECTIONS: usize = 8;
/// Most requests the open loop has in flight (and so connections open): when a server
/// falls this far behind, later requests wait for a connection, still timed from their
/// due time, instead of exhausting file descriptors.
const LATENCY_MAX_IN_FLIGHT: usize = 512;
/// Distinct request bodies, cycled, so no answer could come from a cache keyed by the
/// body (the provider's call count checks that none did).
const BODY_VARIANTS: usize = 256;

/// The `cluster` section: instances sharing one database and one Redis, and the
/// connections spread over them.
const CLUSTER_INSTANCES: usize = 3;
const CLUSTER_CONNECTIONS: usize = 1_000;
/// Longer than `throughput`'s: in its first requests each instance fills its PostgreSQL
/// pool and loads the Redis scripts.
const CLUSTER_WARM_UP: Duration = Duration::from_secs(3);
const CLUSTER_WINDOW: Duration = Duration::from_secs(10);
/// Open files the load generator needs: its connections, and as many again for the
/// instances' connections to the provider, which runs in this process.
const CLUSTER_OPEN_FILES: u64 = 2 * CLUSTER_CONNECTIONS as u64 + 256;
const POSTGRES_URL_VARIABLE: &str = "TANDEM_BENCH_POSTGRES_URL";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL_VARIABLE: &str = "TANDEM_BENCH_REDIS_URL";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// How long PostgreSQL and Redis get to answer before the run gives up on them.
const SERVICE_TIMEOUT: Duration = Duration::from_secs(5);
const SERVICES_HINT: &str = "the `cluster` section needs a PostgreSQL and a Redis server: start them, or point TANDEM_BENCH_POSTGRES_URL and TANDEM_BENCH_REDIS_URL at running ones";

/// About 1 KB of Rust before the cursor, as the language server sends it.
const PREFIX: &str = r#"use std::collections::HashMap;

use crate::catalog::{Product, ProductId};
use crate::money::{Currency, Money};

/// One line of an invoice: a product, how many, and the price agreed for it.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceLine {
    pub product: ProductId,
    pub quantity: u32,
    pub unit_price: Money,
}

/// An invoice as the billing run builds it, before taxes are applied.
#[derive(Debug, Default)]
pub struct Invoice {
    pub customer: String,
    pub currency: Currency,
    pub lines: Vec<InvoiceLine>,
}

impl Invoice {
    /// Totals per product category, for the summary page.
    pub fn totals(&self, catalog: &HashMap<ProductId, Product>) -> HashMap<String, Money> {
        let mut totals = HashMap::new();
        for line in &self.lines {
            let category = catalog[&line.product].category.clone();
            let amount = line.unit_price * line.quantity;
            let entry = totals.entry(category).or_insert(Money::zero(self.currency));
            "#;

/// About 200 bytes after the cursor.
const SUFFIX: &str = r#"
        }
        totals
    }

    /// Whether the invoice has nothing to bill.
    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(|line| line.quantity == 0)
    }
}
"#;

/// The `POST /v1/completions` bodies, one per variant: the prefix starts with a
/// different comment in each.
fn completion_bodies() -> anyhow::Result<Vec<Bytes>> {
    (0..BODY_VARIANTS)
        .map(|variant| {
            let prefix = format!("// Billing, revision {variant}.\n{PREFIX}");
            let request = CompletionRequest {
                language: "rust".to_owned(),
                path: "src/billing/invoice.rs".to_owned(),
                file_size: Some((prefix.len() + SUFFIX.len()) as u64),
                stream: false,
                prefix,
                suffix: SUFFIX.to_owned(),
                max_tokens: Some(64),
                temperature: None,
                stop: Vec::new(),
                context: CodeContext::default(),
            };
            Ok(Bytes::from(serde_json::to_vec(&request)?))
        })
        .collect()
}

/// A poisoned lock only means a request task panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The loopback provider: Ollama's `POST /api/generate`, answered at once with one
/// prepared body. `tandem_e2e::ProviderFixture` is not used here because it records
/// every request (headers, parsed and raw body) in a list behind a mutex, which at
/// 10,000 requests/s is hundreds of MB and a contended lock in the process that also
/// generates the load; only a call count and the first body are kept here.
struct FastProvider {
    address: SocketAddr,
    shared: Arc<ProviderShared>,
}

struct ProviderShared {
    calls: AtomicU64,
    /// The first body received: what `tandem-cloud` sends, replayed for direct calls.
    first_body: OnceLock<Bytes>,
    answer: Bytes,
}

impl FastProvider {
    /// Serves on `127.0.0.1:0` from a thread of its own (one runtime thread), so the
    /// provider's work is not queued behind the load generator's tasks. It serves until
    /// the process exits.
    fn start() -> anyhow::Result<FastProvider> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .context("cannot bind the provider to 127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let answer = json!({
            "model": MODEL,
            "created_at": "2026-01-01T00:00:00.000000000Z",
            "response": PROVIDER_TEXT,
            "done": true,
            "done_reason": "stop",
            "total_duration": 1_000_000u64,
            "prompt_eval_count": 310,
            "eval_count": 5,
        });
        let shared = Arc::new(ProviderShared {
            calls: AtomicU64::new(0),
            first_body: OnceLock::new(),
            answer: Bytes::from(serde_json::to_vec(&answer)?),
        });
        let app = Router::new()
            .route("/api/generate", post(handle_generate))
            .with_state(shared.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build the provider's runtime")?;
        std::thread::Builder::new()
            .name("provider".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let served = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => axum::serve(listener, app).await,
                        Err(error) => Err(error),
                    };
                    if let Err(error) = served {
                        eprintln!("the provider stopped: {error}");
                    }
                });
            })
            .context("cannot start the provider thread")?;
        Ok(FastProvider { address, shared })
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }
}

async fn handle_generate(
    State(shared): State<Arc<ProviderShared>>,
    body: Bytes,
) -> impl IntoResponse {
    shared.calls.fetch_add(1, Ordering::Relaxed);
    shared.first_body.get_or_init(|| body);
    (
        [(CONTENT_TYPE, "application/json; charset=utf-8")],
        shared.answer.clone(),
    )
}

/// Where requests go and what they carry.
struct Target {
    address: SocketAddr,
    host: HeaderValue,
    path: &'static str,
    authorization: Option<HeaderValue>,
    bodies: Vec<Bytes>,
}

impl Target {
    /// The `index`-th request, cycling through the bodies.
    fn request(&self, index: usize) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut builder = Request::post(self.path)
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        let body = self.bodies[index % self.bodies.len()].clone();
        Ok(builder.body(Full::new(body))?)
    }
}

type Connection = SendRequest<Full<Bytes>>;

/// A keep-alive HTTP/1.1 connection, its I/O driven by a task of its own.
async fn connect(address: SocketAddr) -> anyhow::Result<Connection> {
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake failed")?;
    tokio::spawn(async move {
        // A closed connection shows up as an error of the next request on it.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends `request` on `connection` and reads the whole answer: its status and body.
async fn exchange(
    connection: &mut Connection,
    request: Request<Full<Bytes>>,
) -> Result<(u16, Bytes), hyper::Error> {
    connection.ready().await?;
    let response = connection.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    Status(u16),
    Connection,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(status) => write!(f, "HTTP {status}"),
            Failure::Connection => f.write_str("connection failed"),
        }
    }
}

/// What a run of requests got.
#[derive(Default)]
struct Tally {
    /// Latencies of the 200 answers inside the measured window.
    latencies: Vec<Duration>,
    /// Every 200 answer, warm-up included, to compare with the provider's call count.
    ok_total: u64,
    /// Failures, warm-up included, by kind.
    failures: BTreeMap<Failure, u64>,
    /// The first body (or connection error) of each kind of failure.
    examples: BTreeMap<Failure, String>,
}

impl Tally {
    fn record(
        &mut self,
        outcome: &Result<(u16, Bytes), hyper::Error>,
        latency: Duration,
        in_window: bool,
    ) {
        let (failure, example) = match outcome {
            Ok((200, _)) => {
                self.ok_total += 1;
                if in_window {
                    self.latencies.push(latency);
                }
                return;
            }
            Ok((status, body)) => (
                Failure::Status(*status),
                String::from_utf8_lossy(body).into_owned(),
            ),
            Err(error) => (Failure::Connection, error.to_string()),
        };
        *self.failures.entry(failure).or_default() += 1;
        self.examples.entry(failure).or_insert(example);
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.ok_total += other.ok_total;
        for (failure, count) in other.failures {
            *self.failures.entry(failure).or_default() += count;
        }
        for (failure, example) in other.examples {
            self.examples.entry(failure).or_insert(example);
        }
    }

    /// `none`, or each kind of failure with its count.
    fn failure_summary(&self) -> String {
        if self.failures.is_empty() {
            return "none".to_owned();
        }
        self.failures
            .iter()
            .map(|(failure, count)| format!("{failure} × {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line per kind of failure with the first body it came with.
    fn print_failure_examples(&self, what: &str) {
        for (failure, example) in &self.examples {
            let example: String = example.chars().take(300).collect();
            println!("first {failure} {what}: `{}`", example.trim());
        }
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

/// `a - b` in milliseconds, with its sign: noise can make a difference negative.
fn signed_millis(a: Duration, b: Duration) -> String {
    format!("{:+.3} ms", (a.as_secs_f64() - b.as_secs_f64()) * 1000.0)
}

/// Resident memory (`VmRSS`) and its highest value so far (`VmHWM`) of `pid`, in KiB.
fn resident_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc (Linux only)")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} line in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn mebibytes(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// User plus system CPU time of process `pid`, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    // `USER_HZ`, the unit of these fields: 100 on every architecture Linux runs on
    // except alpha and ia64 (proc(5), "utime").
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .context("reading /proc (Linux only)")?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("/proc/{pid}/stat has no field {}", index + 3))
    };
    // `utime` and `stime` are fields 14 and 15; the list starts at field 3.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / USER_HZ))
}

/// Processes whose CPU time a closed loop reports.
#[derive(Debug, Clone, Copy)]
enum Watched {
    /// One process, by id.
    Process(u32),
    /// Every process whose command name (`/proc/<pid>/comm`) is this one: PostgreSQL
    /// runs a process per connection beside its background workers.
    Named(&'static str),
}

impl Watched {
    fn this_process() -> Watched {
        Watched::Process(std::process::id())
    }

    /// CPU time used so far by each process watched, by process id.
    fn cpu_times(self) -> anyhow::Result<BTreeMap<u32, Duration>> {
        match self {
            Watched::Process(pid) => Ok(BTreeMap::from([(pid, cpu_time(pid)?)])),
            Watched::Named(name) => {
                let mut times = BTreeMap::new();
                for entry in std::fs::read_dir("/proc").context("reading /proc (Linux only)")? {
                    let Some(pid) = entry?
                        .file_name()
                        .to_str()
                        .and_then(|name| name.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    // A process may exit between the listing and the reading: skipped.
                    let Ok(command) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
                        continue;
                    };
                    if command.trim_end() == name {
                        if let Ok(time) = cpu_time(pid) {
                            times.insert(pid, time);
                        }
                    }
                }
                Ok(times)
            }
        }
    }
}

/// CPU time used over a stretch of wall-clock time, per [`Watched`] entry.
struct CpuUse {
    wall: Duration,
    used: Vec<Duration>,
    /// How many processes each entry matched at the end.
    processes: Vec<usize>,
}

impl CpuUse {
    fn share(&self, cpu: Duration) -> String {
        format!(
            "{:.0}%",
            cpu.as_secs_f64() / self.wall.as_secs_f64() * 100.0
        )
    }
}

struct CpuReading {
    at: Instant,
    times: Vec<BTreeMap<u32, Duration>>,
}

fn read_cpu(watched: &[Watched]) -> anyhow::Result<CpuReading> {
    Ok(CpuReading {
        at: Instant::now(),
        times: watched
            .iter()
            .map(|entry| entry.cpu_times())
            .collect::<anyhow::Result<_>>()?,
    })
}

/// A process that started in between counts with all its time; one that exited is
/// missed.
fn cpu_between(before: &CpuReading, after: &CpuReading) -> CpuUse {
    let used = before
        .times
        .iter()
        .zip(&after.times)
        .map(|(before, after)| {
            after
                .iter()
                .map(|(pid, time)| {
                    time.saturating_sub(before.get(pid).copied().unwrap_or_default())
                })
                .sum()
        })
        .collect();
    CpuUse {
        wall: after.at - before.at,
        used,
        processes: after.times.iter().map(BTreeMap::len).collect(),
    }
}

struct ClosedLoopResult {
    tally: Tally,
    /// Answers read inside the window, per target.
    answered_per_target: Vec<usize>,
    cpu: CpuUse,
}

/// `connections` connections, spread evenly over `targets`, each sending its next
/// request as soon as the previous answer is read, for `warm_up` and then `window`.
/// Answers read inside the window are the ones counted; the CPU time of `watched` is
/// read at the window's start and end.
async fn closed_loop(
    targets: &[Arc<Target>],
    connections: usize,
    warm_up: Duration,
    window: Duration,
    watched: Vec<Watched>,
) -> anyhow::Result<ClosedLoopResult> {
    let mut opened = Vec::with_capacity(connections);
    for worker in 0..connections {
        let target_index = worker % targets.len();
        let connection = connect(targets[target_index].address).await?;
        opened.push((target_index, connection));
    }
    let start = Instant::now();
    let measure_from = start + warm_up;
    let end = measure_from + window;
    let cpu_probe = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let before = read_cpu(&watched)?;
        tokio::time::sleep_until(end.into()).await;
        let after = read_cpu(&watched)?;
        anyhow::Ok(cpu_between(&before, &after))
    });
    let mut workers = JoinSet::new();
    for (worker, (target_index, mut connection)) in opened.into_iter().enumerate() {
        let target = targets[target_index].clone();
        workers.spawn(async move {
            let mut tally = Tally::default();
            let mut index = worker;
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let request = target.request(index)?;
                index += connections;
                let outcome = exchange(&mut connection, request).await;
                let finished = Instant::now();
                let in_window = finished >= measure_from && finished <= end;
                tally.record(&outcome, finished - started, in_window);
                if outcome.is_err() {
                    connection = connect(target.address).await?;
                }
            }
            anyhow::Ok((target_index, tally))
        });
    }
    let mut tally = Tally::default();
    let mut answered_per_target = vec![0; targets.len()];
    while let Some(joined) = workers.join_next().await {
        let (target_index, worker_tally) = joined.context("a load worker panicked")??;
        answered_per_target[target_index] += worker_tally.latencies.len();
        tally.merge(worker_tally);
    }
    let cpu = cpu_probe.await.context("the CPU probe panicked")??;
    Ok(ClosedLoopResult {
        tally,
        answered_per_target,
        cpu,
    })
}

struct OpenLoopResult {
    tally: Tally,
    /// How late each counted request was sent after its due time.
    send_lags: Vec<Duration>,
    connections: usize,
}

/// Requests due at a fixed `rate` for `warm_up` and then `window`, each sent when due
/// on an idle connection (a new one when none is idle, up to
/// [`LATENCY_MAX_IN_FLIGHT`]), whatever the earlier ones are doing. Latency runs from
/// the due time, not the send time.
async fn open_loop(
    target: Arc<Target>,
    rate: u32,
    warm_up: Duration,
    window: Duration,
) -> anyhow::Result<OpenLoopResult> {
    let idle = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..LATENCY_CONNECTIONS {
        let connection = connect(target.address).await?;
        lock(&idle).push(connection);
    }
    let connections = Arc::new(AtomicUsize::new(LATENCY_CONNECTIONS));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(LATENCY_MAX_IN_FLIGHT));
    let interval = Duration::from_secs(1) / rate;
    let total = ((warm_up + window).as_secs_f64() * f64::from(rate)).round() as u32;
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + warm_up;

    // A thread paces the requests: the runtime's timer has a 1 ms resolution, as coarse
    // as the interval itself, while a thread's sleep is off by tens of microseconds.
    let (schedule, mut due_times) = tokio::sync::mpsc::unbounded_channel();
    let pacer = std::thread::Builder::new()
        .name("pacer".to_owned())
        .spawn(move || {
            for index in 0..total {
                let due = start + interval * index;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if schedule.send((index as usize, due)).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the pacer thread")?;

    let mut tally = Tally::default();
    let mut send_lags = Vec::with_capacity((window.as_secs_f64() * f64::from(rate)) as usize);
    let mut collect = |outcome: RequestOutcome| {
        tally.record(&outcome.answer, outcome.latency, outcome.in_window);
        if outcome.in_window {
            send_lags.push(outcome.send_lag);
        }
    };
    let mut requests = JoinSet::new();
    while let Some((index, due)) = due_times.recv().await {
        let target = target.clone();
        let idle = idle.clone();
        let connections = connections.clone();
        let in_flight = in_flight.clone();
        requests.spawn(async move {
            let _permit = in_flight.acquire_owned().await?;
            let send_lag = due.elapsed();
            let reusable = {
                let mut idle = lock(&idle);
                std::iter::from_fn(|| idle.pop()).find(|connection| !connection.is_closed())
            };
            let mut connection = match reusable {
                Some(connection) => connection,
                None => {
                    connections.fetch_add(1, Ordering::Relaxed);
                    connect(target.address).await?
                }
            };
            let answer = exchange(&mut connection, target.request(index)?).await;
            let latency = due.elapsed();
            if answer.is_ok() {
                lock(&idle).push(connection);
            }
            anyhow::Ok(RequestOutcome {
                answer,
                latency,
                send_lag,
                in_window: due >= measure_from,
            })
        });
        while let Some(finished) = requests.try_join_next() {
            collect(finished.context("a request task panicked")??);
        }
    }
    while let Some(finished) = requests.join_next().await {
        collect(finished.context("a request task panicked")??);
    }
    if pacer.join().is_err() {
        bail!("the pacer thread panicked");
    }
    Ok(OpenLoopResult {
        tally,
        send_lags,
        connections: connections.load(Ordering::Relaxed),
    })
}

struct RequestOutcome {
    answer: Result<(u16, Bytes), hyper::Error>,
    latency: Duration,
    send_lag: Duration,
    in_window: bool,
}

struct Bench {
    provider: FastProvider,
    cloud: CloudServer,
    cloud_pid: u32,
    through_cloud: Arc<Target>,
    direct: Arc<Target>,
}

/// The loopback provider as a `[[providers]]` table.
fn provider_config(provider: &FastProvider) -> ProviderConfig {
    ProviderConfig {
        name: "ollama".to_owned(),
        kind: "ollama".to_owned(),
        base_url: Some(provider.url()),
        model: Some(MODEL.to_owned()),
        endpoint: None,
        api_key: None,
        timeout_ms: None,
    }
}

/// `POST /v1/completions` on `cloud`, with its key.
fn completions_target(cloud: &CloudServer) -> anyhow::Result<Target> {
    let address: SocketAddr = cloud
        .url()
        .strip_prefix("http://")
        .and_then(|address| address.parse().ok())
        .with_context(|| format!("`tandem-cloud` printed an unexpected URL: {}", cloud.url()))?;
    Ok(Target {
        address,
        host: HeaderValue::from_str(&address.to_string())?,
        path: "/v1/completions",
        authorization: Some(HeaderValue::from_str(&format!(
            "Bearer {}",
            cloud.api_key()
        ))?),
        bodies: completion_bodies()?,
    })
}

/// One request to `target` on `cloud`, which must come back with the provider's text.
async fn check_first_answer(target: &Target, cloud: &CloudServer) -> anyhow::Result<()> {
    let mut connection = connect(target.address).await?;
    let (status, body) = exchange(&mut connection, target.request(0)?)
        .await
        .with_context(|| {
            format!(
                "the first request to `tandem-cloud` at {} failed",
                cloud.url()
            )
        })?;
    if status != 200 {
        bail!(
            "the first request to `tandem-cloud` at {} got HTTP {status}: {}\nstderr:\n{}",
            cloud.url(),
            String::from_utf8_lossy(&body),
            cloud.stderr()
        );
    }
    let answer: CompletionResponse = serde_json::from_slice(&body)
        .context("the first answer of `tandem-cloud` is not a completion response")?;
    if answer.choices.first().map(|choice| choice.text.as_str()) != Some(PROVIDER_TEXT) {
        bail!(
            "the first answer of `tandem-cloud` does not carry the provider's text: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

impl Bench {
    async fn start(log_level: &str) -> anyhow::Result<Bench> {
        let provider = FastProvider::start()?;
        let options = CloudOptions {
            providers: vec![provider_config(&provider)],
            tier: Some(LOAD_TIER.to_owned()),
            extra_toml: LOAD_TIER_TOML.to_owned(),
            env: vec![("TANDEM_LOG".to_owned(), log_level.to_owned())],
            ..CloudOptions::default()
        };
        let cloud = CloudServer::start(options).await?;
        let cloud_pid = cloud.pid().context("`tandem-cloud serve` is not running")?;
        let through_cloud = Arc::new(completions_target(&cloud)?);
        // Filled in by `preflight` with the body `tandem-cloud` sent the provider.
        let direct = Arc::new(Target {
            address: provider.address,
            host: HeaderValue::from_str(&provider.address.to_string())?,
            path: "/api/generate",
            authorization: None,
            bodies: Vec::new(),
        });
        Ok(Bench {
            provider,
            cloud,
            cloud_pid,
            through_cloud,
            direct,
        })
    }

    /// One request through `tandem-cloud`, which must come back with the provider's
    /// text; the body the provider received becomes the body of direct calls.
    async fn preflight(&mut self) -> anyhow::Result<()> {
        check_first_answer(&self.through_cloud, &self.cloud).await?;
        let provider_body = self
            .provider
            .shared
            .first_body
            .get()
            .context("`tandem-cloud` answered without calling the provider")?
            .clone();
        let direct = Target {
            address: self.direct.address,
            host: self.direct.host.clone(),
            path: self.direct.path,
            authorization: None,
            bodies: vec![provider_body],
        };
        self.direct = Arc::new(direct);
        let mut connection = connect(self.direct.address).await?;
        let (status, body) = exchange(&mut connection, self.direct.request(0)?).await?;
        if status != 200 {
            bail!(
                "a direct provider call got HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }

    /// Fails when `tandem-cloud` is no longer running.
    fn ensure_cloud_running(&mut self) -> anyhow::Result<()> {
        if !self.cloud.is_running() {
            bail!(
                "`tandem-cloud` exited during the run\nstderr:\n{}",
                self.cloud.stderr()
            );
        }
        Ok(())
    }

    /// Whether every 200 answer through `tandem-cloud` since `calls_before` came from a
    /// provider call, as a report line.
    fn provider_calls_line(&self, calls_before: u64, tally: &Tally) -> String {
        let calls = self.provider.calls() - calls_before;
        if calls >= tally.ok_total {
            format!(
                "provider calls: {calls} for {} successful answers",
                tally.ok_total
            )
        } else {
            format!(
                "WARNING: {} successful answers but only {calls} provider calls: some answers did not come from the provider, so the overhead above is not comparable",
                tally.ok_total
            )
        }
    }
}

fn ensure_some_success(tally: &Tally, what: &str) -> anyhow::Result<()> {
    if tally.latencies.is_empty() {
        bail!(
            "{what}: no successful answer in the measured window (failures: {})",
            tally.failure_summary()
        );
    }
    Ok(())
}

async fn section_throughput(bench: &mut Bench) -> anyhow::Result<()> {
    let calls_before = bench.provider.calls();
    // The server, then the load generator with the provider.
    let watched = vec![Watched::Process(bench.cloud_pid), Watched::this_process()];
    let cloud = closed_loop(
        std::slice::from_ref(&bench.through_cloud),
        CONNECTIONS,
        THROUGHPUT_WARM_UP,
        THROUGHPUT_WINDOW,
        watched.clone(),
    )
    .await?;
    bench.ensure_cloud_running()?;
    let provider_calls = bench.provider_calls_line(calls_before, &cloud.tally);
    let direct = closed_loop(
        std::slice::from_ref(&bench.direct),
        CONNECTIONS,
        THROUGHPUT_WARM_UP,
        THROUGHPUT_WINDOW,
        watched,
    )
    .await?;
    ensure_some_success(&cloud.tally, "throughput through tandem-cloud")?;
    ensure_some_success(&direct.tally, "throughput against the provider")?;

    println!(
        "## throughput: {CONNECTIONS} keep-alive HTTP/1.1 connections, back-to-back, {} s after a {} s warm-up",
        THROUGHPUT_WINDOW.as_secs(),
        THROUGHPUT_WARM_UP.as_secs()
    );
    println!("| | requests/s | p50 | p99 | errors (warm-up included) |");
    println!("|---|---|---|---|---|");
    for (label, result) in [
        ("`POST /v1/completions` through tandem-cloud", &cloud),
        ("`POST /api/generate` to the provider directly", &direct),
    ] {
        let mut latencies = result.tally.latencies.clone();
        latencies.sort();
        println!(
            "| {label} | {:.0} | {} | {} | {} |",
            latencies.len() as f64 / THROUGHPUT_WINDOW.as_secs_f64(),
            millis(percentile(&latencies, 0.5)),
            millis(percentile(&latencies, 0.99)),
            result.tally.failure_summary()
        );
    }
    println!();
    let cpu = &cloud.cpu;
    let served = cloud.tally.latencies.len().max(1) as f64;
    println!(
        "CPU through tandem-cloud (100% = one core): tandem-cloud {} ({:.0} µs per request), load generator and provider {} ({:.0} µs per request)",
        cpu.share(cpu.used[0]),
        cpu.used[0].as_secs_f64() * 1e6 / served,
        cpu.share(cpu.used[1]),
        cpu.used[1].as_secs_f64() * 1e6 / served
    );
    println!(
        "CPU direct: load generator and provider {}",
        direct.cpu.share(direct.cpu.used[1])
    );
    println!("{provider_calls}");
    cloud.tally.print_failure_examples("through tandem-cloud");
    direct.tally.print_failure_examples("from the provider");
    println!();
    Ok(())
}

async fn section_latency(bench: &mut Bench) -> anyhow::Result<()> {
    let calls_before = bench.provider.calls();
    let cloud = open_loop(
        bench.through_cloud.clone(),
        LATENCY_RATE,
        LATENCY_WARM_UP,
        LATENCY_WINDOW,
    )
    .await?;
    bench.ensure_cloud_running()?;
    let provider_calls = bench.provider_calls_line(calls_before, &cloud.tally);
    let direct = open_loop(
        bench.direct.clone(),
        LATENCY_RATE,
        LATENCY_WARM_UP,
        LATENCY_WINDOW,
    )
    .await?;
    ensure_some_success(&cloud.tally, "latency through tandem-cloud")?;
    ensure_some_success(&direct.tally, "latency against the provider")?;

    let sorted = |latencies: &[Duration]| {
        let mut latencies = latencies.to_vec();
        latencies.sort();
        latencies
    };
    let through = sorted(&cloud.tally.latencies);
    let direct_latencies = sorted(&direct.tally.latencies);
    let points = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)];
    println!(
        "## latency: open loop at {LATENCY_RATE} requests/s for {} s after a {} s warm-up, timed from each request's due time",
        LATENCY_WINDOW.as_secs(),
        LATENCY_WARM_UP.as_secs()
    );
    println!("| | answers | p50 | p90 | p99 | max | errors (warm-up included) |");
    println!("|---|---|---|---|---|---|---|");
    for (label, latencies, tally) in [
        ("through tandem-cloud", &through, &cloud.tally),
        ("provider directly", &direct_latencies, &direct.tally),
    ] {
        let cells: Vec<String> = points
            .iter()
            .map(|(_, fraction)| millis(percentile(latencies, *fraction)))
            .collect();
        println!(
            "| {label} | {} | {} | {} |",
            latencies.len(),
            cells.join(" | "),
            tally.failure_summary()
        );
    }
    let overhead: Vec<String> = points
        .iter()
        .map(|(_, fraction)| {
            signed_millis(
                percentile(&through, *fraction),
                percentile(&direct_latencies, *fraction),
            )
        })
        .collect();
    println!(
        "| **API overhead** (difference) | | {} | |",
        overhead.join(" | ")
    );
    println!();
    for (label, result) in [("through tandem-cloud", &cloud), ("direct", &direct)] {
        let lags = sorted(&result.send_lags);
        println!(
            "load generator {label}: sent after the due time by p99 {}, max {}; {} connections used",
            millis(percentile(&lags, 0.99)),
            millis(percentile(&lags, 1.0)),
            result.connections
        );
    }
    println!("{provider_calls}");
    cloud.tally.print_failure_examples("through tandem-cloud");
    direct.tally.print_failure_examples("from the provider");
    println!();
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// `url` with its password, if it has one, masked, for messages.
fn masked_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Fails only for URLs that cannot have a password, and this one has one.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

fn env_or(variable: &str, default: &str) -> String {
    std::env::var(variable)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

async fn connect_postgres(url: &str) -> anyhow::Result<PgConnection> {
    match tokio::time::timeout(SERVICE_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => bail!(
            "PostgreSQL at {} does not answer: {error}\n{SERVICES_HINT}",
            masked_url(url)
        ),
        Err(_) => bail!(
            "PostgreSQL at {} did not answer within {} s\n{SERVICES_HINT}",
            masked_url(url),
            SERVICE_TIMEOUT.as_secs()
        ),
    }
}

async fn connect_redis(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(url).with_context(|| {
        format!(
            "{REDIS_URL_VARIABLE} is not a Redis URL: {}",
            masked_url(url)
        )
    })?;
    let answered = tokio::time::timeout(SERVICE_TIMEOUT, async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        redis::RedisResult::Ok(connection)
    })
    .await;
    match answered {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => bail!(
            "Redis at {} does not answer: {error}\n{SERVICES_HINT}",
            masked_url(url)
        ),
        Err(_) => bail!(
            "Redis at {} did not answer within {} s\n{SERVICES_HINT}",
            masked_url(url),
            SERVICE_TIMEOUT.as_secs()
        ),
    }
}

/// Fails unless this process may open `needed` files: the load generator's connections
/// would otherwise fail part-way, and count as errors of the server.
fn ensure_open_file_limit(needed: u64) -> anyhow::Result<()> {
    let limits =
        std::fs::read_to_string("/proc/self/limits").context("reading /proc (Linux only)")?;
    // `Max open files            20000                20000                files`
    let soft = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|values| values.split_whitespace().next())
        .context("/proc/self/limits has no `Max open files` line")?;
    if soft != "unlimited" && soft.parse::<u64>().is_ok_and(|soft| soft < needed) {
        bail!("the `cluster` section opens about {needed} files, more than this process may (soft limit {soft}): raise it with `ulimit -n {needed}`");
    }
    Ok(())
}

/// The `cluster` section's services, each seen to answer, with a PostgreSQL schema (a
/// [`ScratchDb`], as `tests/e2e/cluster.rs` uses) and a Redis key prefix of this run's
/// own, removed by [`ClusterServices::clean_up`].
struct ClusterServices {
    /// Its `url` (the schema as a database of its own, through `search_path`) is what the
    /// instances are configured with.
    scratch: ScratchDb,
    redis_url: String,
    redis: MultiplexedConnection,
    key_prefix: String,
}

impl ClusterServices {
    async fn connect() -> anyhow::Result<ClusterServices> {
        let postgres_url = env_or(POSTGRES_URL_VARIABLE, DEFAULT_POSTGRES_URL);
        let redis_url = env_or(REDIS_URL_VARIABLE, DEFAULT_REDIS_URL);
        // Seen to answer within the time limit first, for a clear message when it does not.
        let admin = connect_postgres(&postgres_url).await?;
        // The connection served its purpose; how it closes does not matter.
        let _ = admin.close().await;
        let redis = connect_redis(&redis_url).await?;
        let scratch = ScratchDb::postgres(&postgres_url)
            .await
            .with_context(|| format!("cannot create a schema on {}", masked_url(&postgres_url)))?;
        // Two runs on one machine cannot share a process id in the same millisecond.
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let run = format!("{}_{}", std::process::id(), since_epoch.as_millis());
        Ok(ClusterServices {
            scratch,
            redis_url,
            redis,
            key_prefix: format!("tandem-bench-{run}:"),
        })
    }

    /// The keys under this run's prefix that match `pattern` (a Redis glob).
    async fn redis_keys(&mut self, pattern: &str) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}{pattern}", self.key_prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.redis)
                .await
                .context("Redis SCAN failed")?;
            keys.extend(found);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Requests Redis admitted: the day counters of this run's (one) user, summed (two
    /// across midnight).
    async fn redis_admitted(&mut self) -> anyhow::Result<u64> {
        let mut admitted = 0;
        for key in self.redis_keys("limits:*:day:*").await? {
            let count: Option<u64> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut self.redis)
                .await
                .context("Redis GET failed")?;
            admitted += count.unwrap_or(0);
        }
        Ok(admitted)
    }

    /// Calls and microseconds per command since Redis started, every client's (`INFO
    /// commandstats`). The commands a script runs also count under their own names.
    async fn redis_command_stats(&mut self) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.redis)
            .await
            .context("Redis INFO failed")?;
        // `cmdstat_evalsha:calls=107788,usec=1904123,usec_per_call=17.67,…`
        let stats = info
            .lines()
            .filter_map(|line| {
                let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let field = |wanted: &str| {
                    fields
                        .split(',')
                        .filter_map(|field| field.split_once('='))
                        .find(|(key, _)| *key == wanted)
                        .and_then(|(_, value)| value.parse::<u64>().ok())
                };
                Some((name.to_owned(), (field("calls")?, field("usec")?)))
            })
            .collect();
        Ok(stats)
    }

    /// Usage records in all, those with status 200, and the transactions that wrote
    /// them.
    async fn usage_records(&self) -> anyhow::Result<(i64, i64, i64)> {
        let mut connection = connect_postgres(&self.scratch.url).await?;
        // `xmin` is the id of the transaction that inserted a row: one per batch the
        // usage writer committed (`xid` has no ordering, hence the text).
        let counts = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE status = 200), count(DISTINCT xmin::text) \
             FROM usage",
        )
        .fetch_one(&mut connection)
        .await
        .context("cannot read the usage records")?;
        let _ = connection.close().await;
        Ok(counts)
    }

    /// Drops the schema and deletes the keys under the prefix; both are tried.
    async fn clean_up(mut self) -> anyhow::Result<()> {
        let keys = async {
            let keys = self.redis_keys("*").await?;
            if !keys.is_empty() {
                redis::cmd("DEL")
                    .arg(&keys)
                    .query_async::<u64>(&mut self.redis)
                    .await
                    .with_context(|| {
                        format!("cannot delete the Redis keys `{}*`", self.key_prefix)
                    })?;
            }
            anyhow::Ok(())
        }
        .await;
        let schema = self
            .scratch
            .remove()
            .await
            .context("cannot drop the run's PostgreSQL schema");
        schema.and(keys)
    }
}

/// Decisions `tandem-cloud` at `target` made without Redis, from the per-instance
/// fallback (`tandem_rate_limit_fallbacks_total` on `GET /metrics`, all labels).
async fn rate_limit_fallbacks(target: &Target) -> anyhow::Result<u64> {
    let mut connection = connect(target.address).await?;
    let request = Request::get("/metrics")
        .header(HOST, target.host.clone())
        .body(Full::new(Bytes::new()))?;
    let (status, body) = exchange(&mut connection, request)
        .await
        .context("GET /metrics failed")?;
    if status != 200 {
        bail!("GET /metrics got HTTP {status}");
    }
    let total = String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            let name = name.split('{').next()?;
            if name != "tandem_rate_limit_fallbacks_total" {
                return None;
            }
            value.parse::<f64>().ok()
        })
        .sum::<f64>();
    Ok(total as u64)
}

/// Kills every instance and waits (up to 5 s) until they are gone, so that no session
/// of theirs holds a lock when the schema is dropped.
async fn stop_instances(instances: &mut [CloudServer]) {
    for cloud in instances.iter_mut() {
        cloud.kill();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while instances.iter_mut().any(CloudServer::is_running) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn section_cluster(log_level: &str) -> anyhow::Result<()> {
    ensure_open_file_limit(CLUSTER_OPEN_FILES)?;
    let mut services = ClusterServices::connect().await?;
    let mut instances = Vec::with_capacity(CLUSTER_INSTANCES);
    let measured = run_cluster(&mut services, &mut instances, log_level).await;
    stop_instances(&mut instances).await;
    let cleaned = services.clean_up().await;
    if let (Err(_), Err(error)) = (&measured, &cleaned) {
        eprintln!("cleaning up after the cluster section failed too: {error:#}");
    }
    measured?;
    cleaned
}

async fn run_cluster(
    services: &mut ClusterServices,
    instances: &mut Vec<CloudServer>,
    log_level: &str,
) -> anyhow::Result<()> {
    let provider = FastProvider::start()?;
    let options = CloudOptions {
        providers: vec![provider_config(&provider)],
        tier: Some(LOAD_TIER.to_owned()),
        database_url: Some(services.scratch.url.clone()),
        extra_toml: format!(
            r#"{LOAD_TIER_TOML}
[redis]
url = {:?}
key_prefix = {:?}
# The default, as a deployment runs it: a decision that takes longer falls back to the
# per-instance limits, which the report counts (tandem_rate_limit_fallbacks_total).
timeout_ms = 250
instances = {CLUSTER_INSTANCES}
"#,
            services.redis_url, services.key_prefix
        ),
        env: vec![("TANDEM_LOG".to_owned(), log_level.to_owned())],
        ..CloudOptions::default()
    };
    // The first instance migrates the schema and creates the user; the others join with
    // its key.
    let first = CloudServer::start(options.clone())
        .await
        .context("instance 1 does not start")?;
    let key = first.api_key().to_owned();
    instances.push(first);
    for number in 2..=CLUSTER_INSTANCES {
        let joined = CloudServer::start(CloudOptions {
            existing_key: Some(key.clone()),
            ..options.clone()
        })
        .await
        .with_context(|| format!("instance {number} does not start"))?;
        instances.push(joined);
    }
    let targets = instances
        .iter()
        .map(|cloud| completions_target(cloud).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (target, cloud) in targets.iter().zip(instances.iter()) {
        check_first_answer(target, cloud).await?;
    }
    let first_answers = targets.len() as u64;

    // The instances, the load generator with the provider, PostgreSQL, Redis.
    let mut watched = instances
        .iter()
        .map(|cloud| {
            cloud
                .pid()
                .map(Watched::Process)
                .context("`tandem-cloud serve` is not running")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    watched.extend([
        Watched::this_process(),
        Watched::Named("postgres"),
        Watched::Named("redis-server"),
    ]);
    let calls_before = provider.calls();
    let redis_before = services.redis_command_stats().await?;
    let result = closed_loop(
        &targets,
        CLUSTER_CONNECTIONS,
        CLUSTER_WARM_UP,
        CLUSTER_WINDOW,
        watched,
    )
    .await?;
    let redis_after = services.redis_command_stats().await?;
    for (number, cloud) in instances.iter_mut().enumerate() {
        if !cloud.is_running() {
            bail!(
                "instance {} exited during the run\nstderr:\n{}",
                number + 1,
                cloud.stderr()
            );
        }
    }
    let provider_calls = provider.calls() - calls_before;
    let mut fallbacks = 0;
    for target in &targets {
        fallbacks += rate_limit_fallbacks(target).await?;
    }
    let (usage_total, usage_answered, usage_transactions) = services.usage_records().await?;
    let redis_admitted = services.redis_admitted().await?;

    let tally = &result.tally;
    let mut latencies = tally.latencies.clone();
    latencies.sort();
    let window = CLUSTER_WINDOW.as_secs_f64();
    let spread: Vec<String> = (0..targets.len())
        .map(|index| {
            ((CLUSTER_CONNECTIONS + targets.len() - 1 - index) / targets.len()).to_string()
        })
        .collect();
    println!(
        "## cluster: {CLUSTER_INSTANCES} tandem-cloud instances on one PostgreSQL schema and one Redis, {CLUSTER_CONNECTIONS} keep-alive HTTP/1.1 connections ({}), back-to-back, {} s after a {} s warm-up",
        spread.join(" / "),
        CLUSTER_WINDOW.as_secs(),
        CLUSTER_WARM_UP.as_secs()
    );
    println!("| | requests/s | p50 | p99 | max | errors (warm-up included) |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| `POST /v1/completions` over {CLUSTER_INSTANCES} instances | {:.0} | {} | {} | {} | {} |",
        latencies.len() as f64 / window,
        millis(percentile(&latencies, 0.5)),
        millis(percentile(&latencies, 0.99)),
        millis(percentile(&latencies, 1.0)),
        tally.failure_summary()
    );
    println!();
    let per_instance: Vec<String> = result
        .answered_per_target
        .iter()
        .map(|answered| format!("{:.0}", *answered as f64 / window))
        .collect();
    println!("requests/s per instance: {}", per_instance.join(" / "));
    let cpu = &result.cpu;
    let served = latencies.len().max(1) as f64;
    let usage = |index: usize| {
        format!(
            "{} ({:.0} µs per request)",
            cpu.share(cpu.used[index]),
            cpu.used[index].as_secs_f64() * 1e6 / served
        )
    };
    let instances_cpu: Vec<String> = (0..CLUSTER_INSTANCES).map(usage).collect();
    let service_cpu = |index: usize| {
        if cpu.processes[index] == 0 {
            "not on this machine".to_owned()
        } else {
            let processes = cpu.processes[index];
            let noun = if processes == 1 {
                "process"
            } else {
                "processes"
            };
            format!("{}, {processes} {noun}", usage(index))
        }
    };
    let total: Duration = cpu.used.iter().sum();
    println!(
        "CPU in the window (100% = one core): tandem-cloud {}; load generator and provider {}; PostgreSQL {}; Redis {}; all together {}",
        instances_cpu.join(", "),
        usage(CLUSTER_INSTANCES),
        service_cpu(CLUSTER_INSTANCES + 1),
        service_cpu(CLUSTER_INSTANCES + 2),
        cpu.share(total),
    );
    // What Redis did in the run, by command: (calls, microseconds).
    let redis_used = |names: &[&str]| -> (u64, u64) {
        redis_after
            .iter()
            .filter(|(name, _)| names.is_empty() || names.contains(&name.as_str()))
            .map(|(name, (calls, usec))| {
                let (calls_before, usec_before) =
                    redis_before.get(name).copied().unwrap_or_default();
                (calls - calls_before, usec - usec_before)
            })
            .fold((0, 0), |(calls, usec), (more_calls, more_usec)| {
                (calls + more_calls, usec + more_usec)
            })
    };
    let (script_calls, script_usec) = redis_used(&["eval", "evalsha", "eval_ro", "evalsha_ro"]);
    let (all_commands, _) = redis_used(&[]);
    let requests = (tally.ok_total + tally.failures.values().sum::<u64>()).max(1) as f64;
    println!(
        "Redis, warm-up included: {:.2} script calls per request (EVAL/EVALSHA, one round trip each), {:.1} commands in all with the scripts' own, {:.0} µs running scripts per request (INFO commandstats); decisions made without Redis (tandem_rate_limit_fallbacks_total): {fallbacks}",
        script_calls as f64 / requests,
        all_commands as f64 / requests,
        script_usec as f64 / requests,
    );
    let answered = tally.ok_total + first_answers;
    println!(
        "PostgreSQL: {usage_answered} usage records with status 200 for {answered} successful answers (the {first_answers} first requests included), {usage_total} in all, written by {usage_transactions} transactions ({:.0} records per commit)",
        usage_total as f64 / usage_transactions.max(1) as f64
    );
    println!(
        "Redis day counter: {redis_admitted} requests admitted for {answered} successful answers"
    );
    println!(
        "provider calls: {provider_calls} for {} successful answers",
        tally.ok_total
    );
    if usage_answered < answered as i64 {
        println!("WARNING: fewer usage records than successful answers: answers went out unaccounted for");
    }
    if fallbacks > 0 {
        println!("WARNING: some decisions fell back to the per-instance limits, so this did not measure the Redis path alone");
    }
    if redis_admitted != answered {
        println!("WARNING: Redis admitted a different number of requests than were answered");
    }
    if provider_calls < tally.ok_total {
        println!("WARNING: fewer provider calls than successful answers: some answers did not come from the provider");
    }
    tally.print_failure_examples("from the cluster");
    println!();

    ensure_some_success(tally, "cluster")?;
    let server_errors: u64 = tally
        .failures
        .iter()
        .filter(|(failure, _)| matches!(failure, Failure::Status(500..) | Failure::Connection))
        .map(|(_, count)| count)
        .sum();
    if server_errors > 0 {
        bail!(
            "cluster: {server_errors} requests got a 5xx or a dropped connection ({}); none are expected",
            tally.failure_summary()
        );
    }
    Ok(())
}

/// The sections that run one `tandem-cloud` on SQLite.
async fn single_instance(wants: impl Fn(&str) -> bool, log_level: &str) -> anyhow::Result<()> {
    let mut bench = Bench::start(log_level).await?;
    // Read before any request, once start-up work has had a moment to finish.
    let rss_after_start = if wants("idle") {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Some(resident_kib(bench.cloud_pid)?.0)
    } else {
        None
    };
    bench.preflight().await?;
    let mut loaded = false;
    if wants("throughput") {
        section_throughput(&mut bench).await?;
        loaded = true;
    }
    if wants("latency") {
        section_latency(&mut bench).await?;
        loaded = true;
    }
    if let Some(after_start) = rss_after_start {
        println!("## idle: resident memory (VmRSS) of tandem-cloud");
        if loaded {
            // Let connections close and deferred work finish before reading.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (after_load, highest) = resident_kib(bench.cloud_pid)?;
            println!(
                "after start {}; 2 s after the load {}; highest {} (VmHWM)",
                mebibytes(after_start),
                mebibytes(after_load),
                mebibytes(highest)
            );
        } else {
            println!(
                "after start {} (no load section ran)",
                mebibytes(after_start)
            );
        }
        println!();
    }
    bench.ensure_cloud_running()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    const SINGLE_INSTANCE: [&str; 3] = ["throughput", "latency", "idle"];
    let sections: Vec<String> = std::env::args().skip(1).collect();
    for section in &sections {
        if !SINGLE_INSTANCE.contains(&section.as_str()) && section != "cluster" {
            bail!("unknown section `{section}`: expected throughput, latency, idle or cluster");
        }
    }
    let named = |name: &str| sections.iter().any(|section| section == name);
    // None named means every section but `cluster`, which needs PostgreSQL and Redis.
    let wants = |name: &str| sections.is_empty() || named(name);
    let log_level = std::env::var("TANDEM_LOG").unwrap_or_else(|_| "warn".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    println!(
        "# cloud_load: {cores} cores, load average {} at start, TANDEM_LOG={log_level}, request body {} bytes",
        load_average(),
        completion_bodies()?[0].len()
    );
    println!();
    if SINGLE_INSTANCE.iter().any(|section| wants(section)) {
        single_instance(wants, &log_level).await?;
    }
    if named("cluster") {
        section_cluster(&log_level).await?;
    }
    println!("load average at the end: {}", load_average());
    Ok(())
}
