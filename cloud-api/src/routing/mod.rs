//! Provider routing: which providers a request may go to and in what order, falling back to
//! the next when one fails, within a latency budget per task, with a circuit breaker per
//! provider.
//!
//! A handler asks [`ProviderRouter::plan`] for the targets of the caller's tier and task,
//! then [`ProviderRouter::complete_with_fallback`] for the completion. The order comes from
//! the tier's `[routing.<tier>]` list for the task, or else every provider the tier allows
//! in `[[providers]]` order; with `weights`, the first target is drawn by weight and the rest
//! follow in order.
//!
//! What ends a request and what moves it on:
//! - The next target is tried when a provider is unreachable, times out, answers 5xx or 429,
//!   answers something unreadable, or answers a 4xx that says the provider itself is at
//!   fault (401, 403 and 404 mean a revoked key, a missing permission or a misspelt model:
//!   every request would fail there, and the next provider does not share the problem).
//! - 400, 413 and 422 end the request: they say the request is unacceptable, and another
//!   provider would refuse it too. The provider answered, so its breaker counts a success.
//! - A target that failed in a way that may pass (unreachable, 5xx, 408, 429) is retried
//!   once, after a jittered back-off, only when no other target is left and the budget
//!   leaves room for the back-off and a useful attempt. With another target left, moving on
//!   at once is faster than waiting.
//! - Each attempt gets the lower of its provider's `timeout_ms` and what is left of the
//!   budget. When the budget runs out the request ends with the last error: a `Timeout`
//!   when the budget cut an attempt short.
//!
//! Breakers: every failure that moves the request on counts against the provider, except an
//! attempt the budget cut short after it had less than half of the budget: the providers
//! tried before it used the time, so it is not blamed. Targets whose breaker is open are
//! skipped; after the cool-down one request probes. When every target's breaker is open the
//! request still tries them in order rather than failing at once: a provider may be back
//! before its cool-down ends, and the budget bounds what the attempt costs.

pub mod breaker;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;
use rand::Rng;
use serde::Serialize;
use tandem_shared::{CompletionRequest, Tier};
use tracing::field::Empty;
use tracing::Instrument;

pub use self::breaker::BreakerState;
use self::breaker::{Admission, Breaker, BreakerSettings};
use crate::config::{Config, ProviderConfig, DEFAULT_PROVIDER_TIMEOUT_MS};
use crate::providers::{
    ChatPrompt, PieceStream, Provider, ProviderCompletion, ProviderError, ProviderRegistry,
    StreamPiece,
};
use crate::tiers::{Feature, TierPolicy};

/// Statuses that say the request, not the provider, is at fault: no fallback.
const REQUEST_FAULT_STATUSES: [u16; 3] = [400, 413, 422];
/// Mean back-off before the one retry of the last target; the actual wait is drawn
/// between half and one and a half times this, so clients failing together do not retry
/// together.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Least time a retry must have left after its back-off to be worth making.
const RETRY_MIN_WINDOW: Duration = Duration::from_millis(250);

/// What a request asks of a provider. Each task has its own provider order and budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Inline completions: short answers, typed against.
    Completion,
    /// Chat, explanations and code actions: longer answers a person waits for.
    Chat,
}

impl Task {
    /// The task a feature's requests are.
    pub fn for_feature(feature: Feature) -> Task {
        match feature {
            Feature::InlineCompletion => Task::Completion,
            Feature::Chat | Feature::Explanation | Feature::CodeActions => Task::Chat,
        }
    }

    /// The key naming the task's list in `[routing.<tier>]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Completion => "completion",
            Task::Chat => "chat",
        }
    }
}

/// The clock breakers are read with; tests replace it to pass cool-downs without waiting.
type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// One provider as the router sees it.
struct Target {
    provider: Arc<dyn Provider>,
    /// `ollama`, `openai`, ... (`local` for the built-in provider).
    kind: String,
    /// The provider's `timeout_ms`.
    timeout: Duration,
    /// Never held across an `.await`.
    breaker: Mutex<Breaker>,
}

impl Target {
    fn name(&self) -> &str {
        self.provider.name()
    }

    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        // No breaker method panics, so a poisoned lock still holds a consistent state.
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A tier's `[routing.<tier>]` table, with names resolved to indices into the targets.
#[derive(Debug, Default)]
struct TierRoutes {
    completion: Option<Vec<usize>>,
    chat: Option<Vec<usize>>,
    weights: HashMap<usize, u32>,
}

impl TierRoutes {
    fn list(&self, task: Task) -> Option<&Vec<usize>> {
        match task {
            Task::Completion => self.completion.as_ref(),
            Task::Chat => self.chat.as_ref(),
        }
    }
}

/// Orders providers per tier and task, runs requests through them with fallback, and
/// keeps each provider's circuit breaker. Built once at start-up; shared by every request.
pub struct ProviderRouter {
    /// Every provider of the registry, in configuration order.
    targets: Vec<Arc<Target>>,
    /// `[routing.<tier>]` tables by tier name.
    routes: HashMap<String, TierRoutes>,
    completion_budget: Duration,
    chat_budget: Duration,
    clock: Clock,
}

impl std::fmt::Debug for ProviderRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderRouter")
            .field(
                "targets",
                &self
                    .targets
                    .iter()
                    .map(|target| target.name())
                    .collect::<Vec<_>>(),
            )
            .field("routes", &self.routes)
            .field("completion_budget", &self.completion_budget)
            .field("chat_budget", &self.chat_budget)
            .finish_non_exhaustive()
    }
}

/// The targets one request will try, in order, and its budget.
#[derive(Clone)]
pub struct RoutePlan {
    task: Task,
    /// The tier planned for, named in the routing span.
    tier: Tier,
    budget: Duration,
    targets: Vec<Arc<Target>>,
    every_breaker_open: bool,
}

impl std::fmt::Debug for RoutePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutePlan")
            .field("task", &self.task)
            .field("tier", &self.tier)
            .field("budget", &self.budget)
            .field("targets", &self.provider_names())
            .field("every_breaker_open", &self.every_breaker_open)
            .finish()
    }
}

impl RoutePlan {
    /// The task planned for.
    pub fn task(&self) -> Task {
        self.task
    }

    /// The task's configured budget (`routing.completion_budget_ms` or `chat_budget_ms`).
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The providers in the order they will be tried; never empty.
    pub fn providers(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.targets.iter().map(|target| &target.provider)
    }

    /// The providers' names, in order.
    pub fn provider_names(&self) -> Vec<&str> {
        self.targets.iter().map(|target| target.name()).collect()
    }

    /// Whether every target's breaker was open when the plan was made, so the targets are
    /// tried anyway.
    pub fn every_breaker_open(&self) -> bool {
        self.every_breaker_open
    }
}

/// A completion and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedCompletion {
    pub completion: ProviderCompletion,
    /// Name of the provider that answered.
    pub provider: String,
    /// Every attempt, the successful one last.
    pub attempts: Vec<Attempt>,
}

/// A streamed answer and how it was obtained.
pub struct RoutedStream {
    /// Name of the provider that answered.
    pub provider: String,
    /// Every attempt, the successful one last.
    pub attempts: Vec<Attempt>,
    /// The pieces read before the answer was taken: up to and including the first with
    /// text.
    pub head: Vec<StreamPiece>,
    /// The rest of the answer.
    pub rest: PieceStream,
}

impl std::fmt::Debug for RoutedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedStream")
            .field("provider", &self.provider)
            .field("attempts", &self.attempts)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// What an attempt that succeeded produced, and where.
struct Routed<T> {
    value: T,
    target: Arc<Target>,
    attempts: Vec<Attempt>,
    /// The successful attempt's span: a stream keeps it open until it ends.
    span: tracing::Span,
}

/// Why no provider answered.
#[derive(Debug)]
pub struct RoutingFailure {
    /// What the client is told: the last attempt's error, or a `Timeout` when the budget
    /// ran out before any attempt could be made.
    pub error: ProviderError,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

impl From<RoutingFailure> for ProviderError {
    fn from(failure: RoutingFailure) -> ProviderError {
        failure.error
    }
}

/// One provider asked (or passed over) for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The provider's name.
    pub provider: String,
    pub outcome: AttemptOutcome,
    /// Time from sending to the answer, failure or cut-off; zero when skipped.
    pub elapsed: Duration,
}

/// What a provider is asked for: a completion at the cursor, or a conversation.
#[derive(Debug, Clone, Copy)]
pub enum ModelRequest<'a> {
    Completion(&'a CompletionRequest),
    Chat(&'a ChatPrompt),
}

impl<'a> ModelRequest<'a> {
    /// The whole answer of `provider`.
    fn ask(
        self,
        provider: &'a dyn Provider,
    ) -> BoxFuture<'a, Result<ProviderCompletion, ProviderError>> {
        match self {
            ModelRequest::Completion(request) => provider.complete(request),
            ModelRequest::Chat(prompt) => provider.chat(prompt),
        }
    }

    /// The answer of `provider`, piece by piece.
    fn stream(
        self,
        provider: &'a dyn Provider,
    ) -> BoxFuture<'a, Result<PieceStream, ProviderError>> {
        match self {
            ModelRequest::Completion(request) => provider.stream(request),
            ModelRequest::Chat(prompt) => provider.chat_stream(prompt),
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The provider answered with a completion.
    Answered,
    /// The provider answered with this non-2xx status (429 included).
    Status(u16),
    /// No connection, or it broke before an answer.
    Unreachable,
    /// No answer within the provider's `timeout_ms`.
    Timeout,
    /// No answer within what was left of the budget.
    OutOfBudget,
    /// A 2xx answer that could not be read.
    InvalidResponse,
    /// Not asked: its breaker was open, or another request was probing it.
    Skipped,
    /// The provider cannot do what the task needs (chat, for the `local` provider).
    Unsupported,
}

/// The outcome's label in metrics and traces: `answered`, `status_<code>`, `unreachable`,
/// `timeout`, `out_of_budget`, `invalid_response`, `skipped`, `unsupported`.
impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = match self {
            AttemptOutcome::Answered => "answered",
            AttemptOutcome::Status(status) => return write!(formatter, "status_{status}"),
            AttemptOutcome::Unreachable => "unreachable",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::OutOfBudget => "out_of_budget",
            AttemptOutcome::InvalidResponse => "invalid_response",
            AttemptOutcome::Skipped => "skipped",
            AttemptOutcome::Unsupported => "unsupported",
        };
        formatter.write_str(label)
    }
}

impl AttemptOutcome {
    fn of(error: &ProviderError) -> AttemptOutcome {
        match error {
            ProviderError::Status { status, .. } => AttemptOutcome::Status(*status),
            ProviderError::RateLimited { .. } => AttemptOutcome::Status(429),
            ProviderError::Unreachable { .. } => AttemptOutcome::Unreachable,
            ProviderError::Timeout { .. } => AttemptOutcome::Timeout,
            ProviderError::InvalidResponse { .. } => AttemptOutcome::InvalidResponse,
            ProviderError::Unsupported { .. } => AttemptOutcome::Unsupported,
        }
    }
}

/// One provider's health, as `/ready` reports it (and, later, metrics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderHealth {
    pub name: String,
    pub kind: String,
    pub breaker: BreakerState,
    /// Failures since the provider last answered.
    pub consecutive_failures: u32,
}

/// What a failed attempt means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The request is at fault: stop with this error.
    Final,
    /// The provider is at fault: try the next target. `retryable` when asking the same
    /// provider again a moment later may work.
    Fallback { retryable: bool },
}

fn verdict(error: &ProviderError) -> Verdict {
    match error {
        ProviderError::Status { status, .. } if REQUEST_FAULT_STATUSES.contains(status) => {
            Verdict::Final
        }
        ProviderError::Status { status, .. } => Verdict::Fallback {
            retryable: *status >= 500 || *status == 408,
        },
        ProviderError::RateLimited { .. } | ProviderError::Unreachable { .. } => {
            Verdict::Fallback { retryable: true }
        }
        // A timed-out provider already had its time; an unreadable answer is rarely fixed
        // a moment later.
        ProviderError::Timeout { .. }
        | ProviderError::InvalidResponse { .. }
        | ProviderError::Unsupported { .. } => Verdict::Fallback { retryable: false },
    }
}

/// Settles one attempt's effect on its provider's breaker. Dropped unsettled (the request
/// was cancelled mid-attempt), it releases a probe so the next request may probe.
struct BreakerGuard<'a> {
    target: &'a Target,
    probe: bool,
    settled: bool,
}

impl BreakerGuard<'_> {
    fn succeeded(mut self) {
        self.target.breaker().record_success();
        self.settled = true;
    }

    fn failed(mut self, now: Instant) {
        self.target.breaker().record_failure(now);
        self.settled = true;
    }
}

impl Drop for BreakerGuard<'_> {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.target.breaker().release_probe();
        }
    }
}

impl ProviderRouter {
    /// Builds the router over `providers` (the registry built from the same `config`),
    /// with `config.routing`'s tables, budgets and breaker settings. Names `Config::load`
    /// would have refused (a routing list naming no configured provider) are left out with
    /// an error in the log.
    pub fn from_config(config: &Config, providers: &ProviderRegistry) -> ProviderRouter {
        let routing = &config.routing;
        let settings = BreakerSettings {
            failure_threshold: routing.breaker_failures,
            cooldown: Duration::from_millis(routing.breaker_cooldown_ms),
        };
        let targets: Vec<Arc<Target>> = providers
            .iter()
            .map(|provider| {
                let provider_config = config
                    .providers
                    .iter()
                    .find(|candidate| candidate.name == provider.name());
                Arc::new(Target {
                    provider: provider.clone(),
                    kind: provider_config
                        .map_or("local", |provider_config| provider_config.kind.as_str())
                        .to_owned(),
                    timeout: Duration::from_millis(
                        provider_config
                            .map_or(DEFAULT_PROVIDER_TIMEOUT_MS, ProviderConfig::timeout_ms),
                    ),
                    breaker: Mutex::new(Breaker::new(settings)),
                })
            })
            .collect();
        let index_of = |tier: &str, name: &str| {
            let index = targets.iter().position(|target| target.name() == name);
            if index.is_none() {
                tracing::error!(
                    tier,
                    provider = name,
                    "[routing] names a provider that is not configured; it is left out"
                );
            }
            index
        };
        let resolve = |tier: &str, names: &Option<Vec<String>>| {
            names.as_ref().map(|names| {
                names
                    .iter()
                    .filter_map(|name| index_of(tier, name))
                    .collect::<Vec<_>>()
            })
        };
        let routes = routing
            .tiers
            .iter()
            .map(|(tier, table)| {
                let routes = TierRoutes {
                    completion: resolve(tier, &table.completion),
                    chat: resolve(tier, &table.chat),
                    weights: table
                        .weights
                        .iter()
                        .filter_map(|(name, weight)| Some((index_of(tier, name)?, *weight)))
                        .collect(),
                };
                (tier.clone(), routes)
            })
            .collect();
        ProviderRouter {
            targets,
            routes,
            completion_budget: Duration::from_millis(routing.completion_budget_ms),
            chat_budget: Duration::from_millis(routing.chat_budget_ms),
            clock: Arc::new(Instant::now),
        }
    }

    /// Replaces the clock breakers are read with.
    #[cfg(test)]
    fn with_clock(mut self, clock: Clock) -> ProviderRouter {
        self.clock = clock;
        self
    }

    /// The configured budget of `task`.
    pub fn budget(&self, task: Task) -> Duration {
        match task {
            Task::Completion => self.completion_budget,
            Task::Chat => self.chat_budget,
        }
    }

    /// The targets a request of `policy`'s tier for `task` tries, in order: the tier's
    /// routing list for the task, or every provider it allows in configuration order;
    /// with weights, the first drawn by weight. Providers whose breaker is open are left
    /// out, unless all are. `None` when the tier may use none of the providers.
    pub fn plan(&self, policy: &TierPolicy, task: Task) -> Option<RoutePlan> {
        self.plan_with_draw(policy, task, |total| rand::thread_rng().gen_range(0..total))
    }

    /// [`ProviderRouter::plan`] with the weighted draw supplied: `draw(total)` returns a
    /// number below `total`.
    fn plan_with_draw(
        &self,
        policy: &TierPolicy,
        task: Task,
        draw: impl FnOnce(u64) -> u64,
    ) -> Option<RoutePlan> {
        let routes = self.routes.get(policy.name.as_str());
        let mut order: Vec<usize> = match routes.and_then(|routes| routes.list(task)) {
            Some(list) => list.clone(),
            None => (0..self.targets.len()).collect(),
        };
        // Validation keeps lists to allowed providers; this also covers configurations
        // built in code and never validated.
        order.retain(|&index| {
            let target = &self.targets[index];
            policy.allows_provider(target.name(), &target.kind)
                && (task != Task::Chat || target.provider.can_chat())
        });
        if order.is_empty() {
            return None;
        }
        let now = (self.clock)();
        let available: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&index| self.targets[index].breaker().is_available(now))
            .collect();
        let every_breaker_open = available.is_empty();
        if !every_breaker_open {
            order = available;
        }
        if let Some(routes) = routes {
            let weighted: Vec<(usize, u32)> = order
                .iter()
                .enumerate()
                .filter_map(|(position, index)| Some((position, *routes.weights.get(index)?)))
                .collect();
            if let Some(position) = weighted_pick(&weighted, draw) {
                let first = order.remove(position);
                order.insert(0, first);
            }
        }
        Some(RoutePlan {
            task,
            tier: policy.name.clone(),
            budget: self.budget(task),
            targets: order
                .into_iter()
                .map(|index| self.targets[index].clone())
                .collect(),
            every_breaker_open,
        })
    }

    /// Asks the plan's targets in order until one answers, within `budget` (normally
    /// [`RoutePlan::budget`]; less if the request already spent some). See the module
    /// documentation for what moves a request to the next target.
    pub async fn complete_with_fallback(
        &self,
        plan: &RoutePlan,
        request: &CompletionRequest,
        budget: Duration,
    ) -> Result<RoutedCompletion, RoutingFailure> {
        self.answer_with_fallback(plan, ModelRequest::Completion(request), budget)
            .await
    }

    /// [`ProviderRouter::complete_with_fallback`] for a completion or a conversation.
    pub async fn answer_with_fallback(
        &self,
        plan: &RoutePlan,
        request: ModelRequest<'_>,
        budget: Duration,
    ) -> Result<RoutedCompletion, RoutingFailure> {
        let routed = self
            .with_fallback(plan, budget, |target| {
                Box::pin(async move { request.ask(target.provider.as_ref()).await })
            })
            .await?;
        Ok(RoutedCompletion {
            completion: routed.value,
            provider: routed.target.name().to_owned(),
            attempts: routed.attempts,
        })
    }

    /// Like [`ProviderRouter::complete_with_fallback`], streaming: a target counts as
    /// having answered once its first text arrives (or its answer ends empty), and only
    /// until then may the request move on to the next. After that, the stream's errors
    /// end the answer, and a pause between pieces longer than the provider's
    /// `timeout_ms` ends it with a `Timeout`.
    pub async fn stream_with_fallback(
        &self,
        plan: &RoutePlan,
        request: ModelRequest<'_>,
        budget: Duration,
    ) -> Result<RoutedStream, RoutingFailure> {
        let routed = self
            .with_fallback(plan, budget, |target| {
                Box::pin(async move {
                    let mut stream = request.stream(target.provider.as_ref()).await?;
                    let mut head = Vec::new();
                    while let Some(piece) = stream.next().await {
                        let piece = piece?;
                        let has_text = !piece.text.is_empty();
                        head.push(piece);
                        if has_text {
                            break;
                        }
                    }
                    Ok((head, stream))
                })
            })
            .await?;
        let (head, rest) = routed.value;
        Ok(RoutedStream {
            provider: routed.target.name().to_owned(),
            attempts: routed.attempts,
            head,
            rest: watch_stream(rest, routed.target, self.clock.clone(), routed.span),
        })
    }

    /// The fallback loop: runs `attempt` on the plan's targets in order until one
    /// succeeds, within `budget`, keeping each target's breaker. Its span (`route`) holds one
    /// `provider_attempt` span per target tried or skipped.
    #[tracing::instrument(
        name = "route",
        skip_all,
        fields(
            task = plan.task.as_str(),
            tier = %plan.tier,
            plan = %plan.provider_names().join(","),
            budget_ms = whole_millis(budget),
            provider = Empty,
            attempts = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
        )
    )]
    async fn with_fallback<'r, T>(
        &self,
        plan: &RoutePlan,
        budget: Duration,
        mut attempt: impl FnMut(Arc<Target>) -> BoxFuture<'r, Result<T, ProviderError>>,
    ) -> Result<Routed<T>, RoutingFailure> {
        let deadline = tokio::time::Instant::now() + budget;
        let mut attempts = Vec::new();
        let mut last_error: Option<ProviderError> = None;
        let count = plan.targets.len();
        'targets: for (index, target) in plan.targets.iter().enumerate() {
            let is_last = index + 1 == count;
            let mut retried = false;
            loop {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                if remaining.is_zero() {
                    break 'targets;
                }
                // When nothing has been tried by the last target, it is tried whatever its
                // breaker says, as when every breaker is open.
                let force = plan.every_breaker_open || (is_last && last_error.is_none());
                let Some(guard) = self.admit(target, force) else {
                    record_attempt(
                        &attempt_span(target, retried),
                        AttemptOutcome::Skipped,
                        Duration::ZERO,
                    );
                    attempts.push(Attempt {
                        provider: target.name().to_owned(),
                        outcome: AttemptOutcome::Skipped,
                        elapsed: Duration::ZERO,
                    });
                    continue 'targets;
                };
                let allotted = remaining.min(target.timeout);
                let span = attempt_span(target, retried);
                let started = tokio::time::Instant::now();
                let result = tokio::time::timeout(
                    allotted,
                    attempt(target.clone()).instrument(span.clone()),
                )
                .await;
                let elapsed = started.elapsed();
                let (error, outcome, blame) = match result {
                    Ok(Ok(value)) => {
                        guard.succeeded();
                        record_attempt(&span, AttemptOutcome::Answered, elapsed);
                        attempts.push(Attempt {
                            provider: target.name().to_owned(),
                            outcome: AttemptOutcome::Answered,
                            elapsed,
                        });
                        let route = tracing::Span::current();
                        route.record("provider", target.name());
                        route.record("attempts", attempts.len());
                        return Ok(Routed {
                            value,
                            target: target.clone(),
                            attempts,
                            span,
                        });
                    }
                    Ok(Err(error)) => {
                        let outcome = AttemptOutcome::of(&error);
                        (error, outcome, true)
                    }
                    Err(_) => {
                        let cut_by_budget = allotted < target.timeout;
                        let outcome = if cut_by_budget {
                            AttemptOutcome::OutOfBudget
                        } else {
                            AttemptOutcome::Timeout
                        };
                        let error = ProviderError::Timeout {
                            provider: target.name().to_owned(),
                            timeout_ms: whole_millis(allotted),
                        };
                        (error, outcome, !cut_by_budget || allotted >= budget / 2)
                    }
                };
                record_attempt(&span, outcome, elapsed);
                drop(span);
                attempts.push(Attempt {
                    provider: target.name().to_owned(),
                    outcome,
                    elapsed,
                });
                let retryable = match verdict(&error) {
                    Verdict::Final => {
                        // The provider answered; only the request was wrong.
                        guard.succeeded();
                        return Err(routing_failed(error, attempts));
                    }
                    Verdict::Fallback { retryable } => retryable,
                };
                if blame {
                    guard.failed((self.clock)());
                } else {
                    // Not blamed: a probe it held goes to the next request.
                    drop(guard);
                }
                let backoff = jittered(RETRY_BACKOFF);
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                let retry =
                    retryable && is_last && !retried && remaining >= backoff + RETRY_MIN_WINDOW;
                // The request's final error is logged by whoever reports it; these are the
                // failures it recovered from, or tried to.
                if retry || !is_last {
                    tracing::warn!(
                        provider = target.name(),
                        task = plan.task.as_str(),
                        error = %error.log_message(),
                        next = if retry { "retry" } else { "next provider" },
                        "provider attempt failed"
                    );
                }
                last_error = Some(error);
                if retry {
                    tokio::time::sleep(backoff).await;
                    retried = true;
                    continue;
                }
                continue 'targets;
            }
        }
        let error = last_error.unwrap_or_else(|| ProviderError::Timeout {
            provider: plan
                .targets
                .first()
                .map_or_else(String::new, |target| target.name().to_owned()),
            timeout_ms: whole_millis(budget),
        });
        Err(routing_failed(error, attempts))
    }

    /// Takes `target`'s breaker admission, or `None` when it refuses and `force` is off.
    fn admit<'a>(&self, target: &'a Target, force: bool) -> Option<BreakerGuard<'a>> {
        let now = (self.clock)();
        let probe = match target.breaker().admit(now) {
            Admission::Pass => false,
            Admission::Probe => true,
            Admission::Refuse if force => false,
            Admission::Refuse => return None,
        };
        Some(BreakerGuard {
            target,
            probe,
            settled: false,
        })
    }

    /// Every provider with its breaker state, in configuration order.
    pub fn provider_health(&self) -> Vec<ProviderHealth> {
        let now = (self.clock)();
        self.targets
            .iter()
            .map(|target| {
                let breaker = target.breaker();
                ProviderHealth {
                    name: target.name().to_owned(),
                    kind: target.kind.clone(),
                    breaker: breaker.state(now),
                    consecutive_failures: breaker.consecutive_failures(),
                }
            })
            .collect()
    }
}

/// The failure of a request no provider answered, noted on the current (`route`) span with
/// the message clients get, which names the provider and the failure, not the vendor's
/// words.
fn routing_failed(error: ProviderError, attempts: Vec<Attempt>) -> RoutingFailure {
    let route = tracing::Span::current();
    route.record("attempts", attempts.len());
    route.record("otel.status_code", "ERROR");
    route.record(
        "otel.status_description",
        tracing::field::display(error.public_message()),
    );
    RoutingFailure { error, attempts }
}

/// The span of one attempt at `target`: which provider and model, and, once it is over,
/// how it ended (`outcome`, the provider's `status` when it answered non-2xx, `latency_ms`).
/// A stream's adds `stream_end` when the stream ends. Nothing of the request is recorded.
fn attempt_span(target: &Target, retry: bool) -> tracing::Span {
    tracing::info_span!(
        "provider_attempt",
        otel.status_code = Empty,
        provider = target.name(),
        provider.kind = %target.kind,
        model = target.provider.model(),
        retry,
        outcome = Empty,
        status = Empty,
        latency_ms = Empty,
        stream_end = Empty,
    )
}

/// Notes how an attempt ended on its span; an error, to tracing backends, unless it
/// answered or was skipped.
fn record_attempt(span: &tracing::Span, outcome: AttemptOutcome, elapsed: Duration) {
    span.record("outcome", tracing::field::display(outcome));
    span.record(
        "latency_ms",
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    );
    if let AttemptOutcome::Status(status) = outcome {
        span.record("status", status);
    }
    if !matches!(outcome, AttemptOutcome::Answered | AttemptOutcome::Skipped) {
        span.record("otel.status_code", "ERROR");
    }
}

/// Whether no provider can take requests: every breaker is open and none has reached its
/// probe. `/ready` answers 503 then. False without providers.
pub fn every_breaker_open(health: &[ProviderHealth]) -> bool {
    !health.is_empty()
        && health
            .iter()
            .all(|provider| provider.breaker == BreakerState::Open)
}

/// Draws the position of one weighted entry: `weighted` holds (position, weight) pairs,
/// `draw(total)` a number below the total weight. `None` without a positive weight.
fn weighted_pick(weighted: &[(usize, u32)], draw: impl FnOnce(u64) -> u64) -> Option<usize> {
    let total: u64 = weighted.iter().map(|(_, weight)| u64::from(*weight)).sum();
    if total == 0 {
        return None;
    }
    let mut point = draw(total).min(total - 1);
    for (position, weight) in weighted {
        let weight = u64::from(*weight);
        if point < weight {
            return Some(*position);
        }
        point -= weight;
    }
    None
}

/// `duration` in milliseconds, rounded up: the time left when an attempt starts is a
/// hair under the budget, and the message should still say the budget.
fn whole_millis(duration: Duration) -> u64 {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    u64::try_from(millis).unwrap_or(u64::MAX)
}

/// The rest of a streamed answer, with a limit on the pause before each piece (the
/// provider's `timeout_ms`) and a breaker failure for the provider when the answer breaks
/// off. `span`, the attempt's, stays open until the stream ends or is dropped, and says how
/// it ended.
fn watch_stream(
    stream: PieceStream,
    target: Arc<Target>,
    clock: Clock,
    span: tracing::Span,
) -> PieceStream {
    futures::stream::unfold(Some(stream), move |stream| {
        let target = target.clone();
        let clock = clock.clone();
        let span = span.clone();
        async move {
            let mut stream = stream?;
            let item = match tokio::time::timeout(target.timeout, stream.next()).await {
                Ok(Some(Ok(piece))) => return Some((Ok(piece), Some(stream))),
                Ok(None) => {
                    span.record("stream_end", "complete");
                    return None;
                }
                Ok(Some(Err(error))) => error,
                Err(_) => ProviderError::Timeout {
                    provider: target.name().to_owned(),
                    timeout_ms: whole_millis(target.timeout),
                },
            };
            span.record(
                "stream_end",
                tracing::field::display(AttemptOutcome::of(&item)),
            );
            span.record("otel.status_code", "ERROR");
            if verdict(&item) != Verdict::Final {
                target.breaker().record_failure(clock());
            }
            // Nothing follows an error; dropping the stream closes the connection.
            Some((Err(item), None))
        }
    })
    .boxed()
}

/// `base` scaled by a random factor between 0.5 and 1.5.
fn jittered(base: Duration) -> Duration {
    base.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
}
