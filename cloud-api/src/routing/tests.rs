//! The router against scripted in-process providers: ordering, weights, what falls back,
//! retries, budgets and breakers. The `[routing]` configuration's parsing and validation
//! are checked here too. Loopback tests over the real vendor wire formats are in
//! `tests/routing.rs`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use tandem_shared::Tier;

use super::*;
use crate::config::ConfigError;

/// What a scripted provider does with one request.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Answer,
    Status(u16),
    RateLimited,
    Unreachable,
    Invalid,
    /// Answers after this long.
    Slow(Duration),
    /// Never answers.
    Stall,
}

/// A provider that follows its script, then repeats `then` forever.
struct Scripted {
    name: String,
    script: Mutex<VecDeque<Behaviour>>,
    then: Mutex<Behaviour>,
    calls: AtomicUsize,
}

impl Scripted {
    fn new(name: &str, then: Behaviour) -> Arc<Scripted> {
        Arc::new(Scripted {
            name: name.to_owned(),
            script: Mutex::new(VecDeque::new()),
            then: Mutex::new(then),
            calls: AtomicUsize::new(0),
        })
    }

    fn with_script(name: &str, script: &[Behaviour], then: Behaviour) -> Arc<Scripted> {
        let provider = Scripted::new(name, then);
        provider
            .script
            .lock()
            .unwrap()
            .extend(script.iter().copied());
        provider
    }

    fn set(&self, behaviour: Behaviour) {
        *self.then.lock().unwrap() = behaviour;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Provider for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    fn model(&self) -> &str {
        "scripted"
    }

    fn complete<'a>(
        &'a self,
        _request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<ProviderCompletion, ProviderError>> {
        self.next_answer()
    }

    fn can_chat(&self) -> bool {
        true
    }

    fn chat<'a>(
        &'a self,
        _prompt: &'a ChatPrompt,
    ) -> BoxFuture<'a, Result<ProviderCompletion, ProviderError>> {
        self.next_answer()
    }
}

impl Scripted {
    /// Answers as the script says, for a completion or a conversation alike.
    fn next_answer(&self) -> BoxFuture<'static, Result<ProviderCompletion, ProviderError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let behaviour = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(*self.then.lock().unwrap());
        let provider = self.name.clone();
        Box::pin(async move {
            match behaviour {
                Behaviour::Answer => {}
                Behaviour::Slow(delay) => tokio::time::sleep(delay).await,
                Behaviour::Stall => std::future::pending::<()>().await,
                Behaviour::Status(status) => {
                    return Err(ProviderError::Status {
                        provider,
                        status,
                        message: "scripted".to_owned(),
                    })
                }
                Behaviour::RateLimited => {
                    return Err(ProviderError::RateLimited {
                        provider,
                        message: "scripted".to_owned(),
                    })
                }
                Behaviour::Unreachable => {
                    let source = reqwest::Client::new()
                        .get("not a url")
                        .build()
                        .expect_err("a relative URL cannot be requested");
                    return Err(ProviderError::Unreachable { provider, source });
                }
                Behaviour::Invalid => {
                    return Err(ProviderError::InvalidResponse {
                        provider,
                        detail: "scripted".to_owned(),
                    })
                }
            }
            Ok(ProviderCompletion {
                text: format!("from {provider}"),
                finish_reason: Some("stop".to_owned()),
                model: "scripted".to_owned(),
                prompt_tokens: None,
                completion_tokens: None,
            })
        })
    }
}

/// `[[providers]]` entries for `names` (kind `local`, so nothing needs a URL), then
/// `extra` TOML.
fn config(names: &[&str], extra: &str) -> Config {
    let mut text = String::new();
    for name in names {
        text.push_str(&format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"local\"\n"
        ));
    }
    text.push_str(extra);
    Config::parse_str(&text).unwrap_or_else(|error| panic!("{error}\n{text}"))
}

fn router(config: &Config, providers: &[&Arc<Scripted>]) -> ProviderRouter {
    let providers = providers
        .iter()
        .map(|provider| Arc::clone(provider) as Arc<dyn Provider>)
        .collect();
    ProviderRouter::from_config(config, &ProviderRegistry::from_providers(providers))
}

fn policy(config: &Config, tier: &str) -> TierPolicy {
    config
        .tiers()
        .unwrap()
        .get(&Tier::new(tier).unwrap())
        .unwrap()
        .clone()
}

fn enterprise(config: &Config) -> TierPolicy {
    policy(config, "enterprise")
}

fn request() -> CompletionRequest {
    CompletionRequest {
        language: "rust".into(),
        path: "src/lib.rs".into(),
        prefix: "fn ad".into(),
        suffix: String::new(),
        max_tokens: None,
        temperature: None,
        stop: vec![],
        context: Default::default(),
        file_size: None,
        stream: false,
    }
}

fn outcomes(attempts: &[Attempt]) -> Vec<(&str, AttemptOutcome)> {
    attempts
        .iter()
        .map(|attempt| (attempt.provider.as_str(), attempt.outcome))
        .collect()
}

fn health_of(router: &ProviderRouter, name: &str) -> ProviderHealth {
    router
        .provider_health()
        .into_iter()
        .find(|health| health.name == name)
        .unwrap()
}

/// A clock tests move by hand.
fn manual_clock() -> (Arc<Mutex<Instant>>, Clock) {
    let now = Arc::new(Mutex::new(Instant::now()));
    let read = now.clone();
    (now, Arc::new(move || *read.lock().unwrap()))
}

async fn complete(
    router: &ProviderRouter,
    policy: &TierPolicy,
    task: Task,
) -> Result<RoutedCompletion, RoutingFailure> {
    let plan = router
        .plan(policy, task)
        .expect("the tier may use a provider");
    router
        .complete_with_fallback(&plan, &request(), plan.budget())
        .await
}

#[test]
fn tasks_follow_features() {
    assert_eq!(
        Task::for_feature(Feature::InlineCompletion),
        Task::Completion
    );
    for feature in [Feature::Chat, Feature::Explanation, Feature::CodeActions] {
        assert_eq!(Task::for_feature(feature), Task::Chat);
    }
}

#[test]
fn without_a_table_a_tier_uses_its_allowed_providers_in_config_order() {
    let config = Config::parse_str(
        "[[providers]]\nname = \"gpt\"\nkind = \"openai\"\nbase_url = \"http://x\"\nmodel = \"m\"\n\
         [[providers]]\nname = \"ollama\"\nkind = \"ollama\"\nbase_url = \"http://x\"\nmodel = \"m\"\n\
         [[providers]]\nname = \"offline\"\nkind = \"local\"\n",
    )
    .unwrap();
    let providers = ["gpt", "ollama", "offline"].map(|name| Scripted::new(name, Behaviour::Answer));
    let router = router(&config, &providers.iter().collect::<Vec<_>>());
    let plan = router.plan(&enterprise(&config), Task::Completion).unwrap();
    assert_eq!(plan.provider_names(), ["gpt", "ollama", "offline"]);
    assert_eq!(plan.task(), Task::Completion);
    assert_eq!(plan.budget(), Duration::from_millis(10_000));
    // The free tier may use ollama and local kinds only.
    let plan = router.plan(&policy(&config, "free"), Task::Chat).unwrap();
    assert_eq!(plan.provider_names(), ["ollama", "offline"]);
    assert_eq!(plan.budget(), Duration::from_millis(60_000));
    assert!(!plan.every_breaker_open());
}

#[test]
fn a_table_orders_each_task_and_a_missing_list_falls_back_to_config_order() {
    let config = config(
        &["a", "b", "c"],
        "[routing.enterprise]\ncompletion = [\"c\", \"a\"]\n",
    );
    let providers = ["a", "b", "c"].map(|name| Scripted::new(name, Behaviour::Answer));
    let router = router(&config, &providers.iter().collect::<Vec<_>>());
    let enterprise = enterprise(&config);
    let names = |task| {
        router
            .plan(&enterprise, task)
            .unwrap()
            .provider_names()
            .join(",")
    };
    assert_eq!(names(Task::Completion), "c,a");
    assert_eq!(names(Task::Chat), "a,b,c");
    // Another tier has no table.
    let pro = policy(&config, "pro");
    assert_eq!(
        router
            .plan(&pro, Task::Completion)
            .unwrap()
            .provider_names(),
        ["a", "b", "c"]
    );
}

#[test]
fn no_plan_when_the_tier_may_use_no_provider() {
    let config = Config::parse_str(
        "[[providers]]\nname = \"gpt\"\nkind = \"openai\"\nbase_url = \"http://x\"\nmodel = \"m\"\n",
    )
    .unwrap();
    let gpt = Scripted::new("gpt", Behaviour::Answer);
    let router = router(&config, &[&gpt]);
    assert!(router.plan(&policy(&config, "free"), Task::Chat).is_none());
}

#[test]
fn weights_draw_the_first_target_and_keep_the_rest_in_order() {
    let config = config(
        &["a", "b", "c"],
        "[routing.enterprise]\ncompletion = [\"a\", \"b\", \"c\"]\nweights = { b = 3, c = 1 }\n",
    );
    let providers = ["a", "b", "c"].map(|name| Scripted::new(name, Behaviour::Answer));
    let router = router(&config, &providers.iter().collect::<Vec<_>>());
    let enterprise = enterprise(&config);
    let first_for = |roll: u64| {
        let plan = router
            .plan_with_draw(&enterprise, Task::Completion, |total| {
                assert_eq!(total, 4);
                roll
            })
            .unwrap();
        plan.provider_names().join(",")
    };
    assert_eq!(first_for(0), "b,a,c");
    assert_eq!(first_for(2), "b,a,c");
    assert_eq!(first_for(3), "c,a,b");
    // Over many real draws the split follows the weights.
    let mut firsts = HashMap::new();
    for _ in 0..4000 {
        let plan = router.plan(&enterprise, Task::Completion).unwrap();
        *firsts
            .entry(plan.provider_names()[0].to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(firsts.get("a"), None);
    let b = firsts["b"];
    assert!((2700..=3300).contains(&b), "{firsts:?}");
}

#[test]
fn weighted_pick_walks_the_weights() {
    let weighted = [(0, 1), (1, 0), (2, 2)];
    assert_eq!(weighted_pick(&weighted, |_| 0), Some(0));
    assert_eq!(weighted_pick(&weighted, |_| 1), Some(2));
    assert_eq!(weighted_pick(&weighted, |_| 2), Some(2));
    // A draw out of range is clamped rather than trusted.
    assert_eq!(weighted_pick(&weighted, |_| 99), Some(2));
    assert_eq!(weighted_pick(&[], |_| 0), None);
    assert_eq!(weighted_pick(&[(0, 0)], |_| 0), None);
}

#[tokio::test]
async fn provider_faults_fall_back_in_order() {
    let config = config(&["a", "b", "c", "d", "e", "f", "g"], "");
    let a = Scripted::new("a", Behaviour::Status(503));
    let b = Scripted::new("b", Behaviour::RateLimited);
    let c = Scripted::new("c", Behaviour::Unreachable);
    let d = Scripted::new("d", Behaviour::Invalid);
    let e = Scripted::new("e", Behaviour::Status(401));
    let f = Scripted::new("f", Behaviour::Status(404));
    let g = Scripted::new("g", Behaviour::Answer);
    let router = router(&config, &[&a, &b, &c, &d, &e, &f, &g]);
    let routed = complete(&router, &enterprise(&config), Task::Completion)
        .await
        .unwrap();
    assert_eq!(routed.provider, "g");
    assert_eq!(routed.completion.text, "from g");
    assert_eq!(
        outcomes(&routed.attempts),
        [
            ("a", AttemptOutcome::Status(503)),
            ("b", AttemptOutcome::Status(429)),
            ("c", AttemptOutcome::Unreachable),
            ("d", AttemptOutcome::InvalidResponse),
            ("e", AttemptOutcome::Status(401)),
            ("f", AttemptOutcome::Status(404)),
            ("g", AttemptOutcome::Answered),
        ]
    );
    // With another target left, none was retried.
    for provider in [&a, &b, &c, &d, &e, &f, &g] {
        assert_eq!(provider.calls(), 1, "{}", provider.name);
    }
    assert_eq!(health_of(&router, "a").consecutive_failures, 1);
    assert_eq!(health_of(&router, "g").consecutive_failures, 0);
}

#[tokio::test]
async fn request_faults_end_the_request_without_blaming_the_provider() {
    for status in [400, 413, 422] {
        let config = config(&["a", "b"], "[routing]\nbreaker_failures = 1\n");
        let a = Scripted::new("a", Behaviour::Status(status));
        let b = Scripted::new("b", Behaviour::Answer);
        let router = router(&config, &[&a, &b]);
        let failure = complete(&router, &enterprise(&config), Task::Completion)
            .await
            .unwrap_err();
        assert!(
            matches!(failure.error, ProviderError::Status { status: got, .. } if got == status),
            "{:?}",
            failure.error
        );
        assert_eq!(
            outcomes(&failure.attempts),
            [("a", AttemptOutcome::Status(status))]
        );
        assert_eq!(b.calls(), 0);
        assert_eq!(health_of(&router, "a").breaker, BreakerState::Closed);
    }
}

#[tokio::test]
async fn the_last_target_is_retried_once_after_a_transient_failure() {
    let config = config(&["a", "b"], "");
    let a = Scripted::new("a", Behaviour::Status(500));
    let b = Scripted::with_script("b", &[Behaviour::Status(503)], Behaviour::Answer);
    let router = router(&config, &[&a, &b]);
    let routed = complete(&router, &enterprise(&config), Task::Completion)
        .await
        .unwrap();
    assert_eq!(
        outcomes(&routed.attempts),
        [
            ("a", AttemptOutcome::Status(500)),
            ("b", AttemptOutcome::Status(503)),
            ("b", AttemptOutcome::Answered),
        ]
    );

    // Never more than one retry.
    b.set(Behaviour::RateLimited);
    let failure = complete(&router, &enterprise(&config), Task::Completion)
        .await
        .unwrap_err();
    assert!(matches!(failure.error, ProviderError::RateLimited { .. }));
    assert_eq!(b.calls(), 4);
}

#[tokio::test]
async fn timeouts_and_unreadable_answers_are_not_retried() {
    for behaviour in [Behaviour::Invalid, Behaviour::Stall] {
        let config = config(
            &[],
            "[[providers]]\nname = \"a\"\nkind = \"local\"\ntimeout_ms = 20\n",
        );
        let a = Scripted::new("a", behaviour);
        let router = router(&config, &[&a]);
        let failure = complete(&router, &enterprise(&config), Task::Completion)
            .await
            .unwrap_err();
        assert_eq!(a.calls(), 1, "{behaviour:?}");
        assert_eq!(failure.attempts.len(), 1);
    }
}

#[tokio::test]
async fn no_retry_without_room_in_the_budget() {
    let config = config(&["a"], "");
    let a = Scripted::new("a", Behaviour::Status(503));
    let router = router(&config, &[&a]);
    let plan = router.plan(&enterprise(&config), Task::Completion).unwrap();
    // The shortest back-off (50 ms) and the least useful window (250 ms) do not fit in
    // 299 ms, so even an instant failure is not retried.
    router
        .complete_with_fallback(&plan, &request(), Duration::from_millis(299))
        .await
        .unwrap_err();
    assert_eq!(a.calls(), 1);
    // With room, it is.
    router
        .complete_with_fallback(&plan, &request(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(a.calls(), 3);
}

#[tokio::test]
async fn the_budget_cuts_a_stalled_provider_off() {
    let config = config(&["a", "b"], "[routing]\ncompletion_budget_ms = 100\n");
    let a = Scripted::new("a", Behaviour::Stall);
    let b = Scripted::new("b", Behaviour::Answer);
    let router = router(&config, &[&a, &b]);
    let started = Instant::now();
    let failure = complete(&router, &enterprise(&config), Task::Completion)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(
        matches!(
            failure.error,
            ProviderError::Timeout { ref provider, timeout_ms: 90..=100 } if provider == "a"
        ),
        "{:?}",
        failure.error
    );
    assert_eq!(
        outcomes(&failure.attempts),
        [("a", AttemptOutcome::OutOfBudget)]
    );
    assert_eq!(b.calls(), 0);
    // It had the whole budget, so it is blamed.
    assert_eq!(health_of(&router, "a").consecutive_failures, 1);
}

#[tokio::test]
async fn a_provider_timeout_falls_back_within_the_budget() {
    let config = config(
        &["b"],
        "[[providers]]\nname = \"a\"\nkind = \"local\"\ntimeout_ms = 30\n\
         [routing.enterprise]\ncompletion = [\"a\", \"b\"]\n",
    );
    let a = Scripted::new("a", Behaviour::Stall);
    let b = Scripted::new("b", Behaviour::Answer);
    let router = router(&config, &[&a, &b]);
    let routed = complete(&router, &enterprise(&config), Task::Completion)
        .await
        .unwrap();
    assert_eq!(
        outcomes(&routed.attempts),
        [
            ("a", AttemptOutcome::Timeout),
            ("b", AttemptOutcome::Answered)
        ]
    );
    assert!(routed.attempts[0].elapsed >= Duration::from_millis(30));
}

#[tokio::test]
async fn a_provider_left_only_the_end_of_the_budget_is_not_blamed() {
    let config = config(
        &["b"],
        "[[providers]]\nname = \"a\"\nkind = \"local\"\ntimeout_ms = 80\n\
         [routing]\ncompletion_budget_ms = 100\n\
         [routing.enterprise]\ncompletion = [\"a\", \"b\"]\n",
    );
    let a = Scripted::new("a", Behaviour::Stall);
    let b = Scripted::new("b", Behaviour::Stall);
    let router = router(&config, &[&a, &b]);
    let failure = complete(&router, &enterprise(&config), Task::Completion)
        .await
        .unwrap_err();
    assert_eq!(
        outcomes(&failure.attempts),
        [
            ("a", AttemptOutcome::Timeout),
            ("b", AttemptOutcome::OutOfBudget)
        ]
    );
    assert!(
        matches!(failure.error, ProviderError::Timeout { ref provider, .. } if provider == "b")
    );
    assert_eq!(health_of(&router, "a").consecutive_failures, 1);
    assert_eq!(health_of(&router, "b").consecutive_failures, 0);
}

#[tokio::test]
async fn an_open_breaker_takes_its_provider_out_of_plans() {
    let config = config(&["a", "b"], "[routing]\nbreaker_failures = 2\n");
    let a = Scripted::new("a", Behaviour::Status(502));
    let b = Scripted::new("b", Behaviour::Answer);
    let router = router(&config, &[&a, &b]);
    let enterprise = enterprise(&config);
    for _ in 0..2 {
        let routed = complete(&router, &enterprise, Task::Completion)
            .await
            .unwrap();
        assert_eq!(routed.provider, "b");
    }
    assert_eq!(
        health_of(&router, "a"),
        ProviderHealth {
            name: "a".into(),
            kind: "local".into(),
            breaker: BreakerState::Open,
            consecutive_failures: 2,
        }
    );
    let plan = router.plan(&enterprise, Task::Completion).unwrap();
    assert_eq!(plan.provider_names(), ["b"]);
    complete(&router, &enterprise, Task::Completion)
        .await
        .unwrap();
    assert_eq!(a.calls(), 2);
}

#[tokio::test]
async fn after_the_cooldown_a_probe_closes_the_breaker() {
    let (now, clock) = manual_clock();
    let config = config(
        &["a", "b"],
        "[routing]\nbreaker_failures = 1\nbreaker_cooldown_ms = 30000\n",
    );
    let a = Scripted::new("a", Behaviour::Unreachable);
    let b = Scripted::new("b", Behaviour::Answer);
    let router = router(&config, &[&a, &b]).with_clock(clock);
    let enterprise = enterprise(&config);
    complete(&router, &enterprise, Task::Completion)
        .await
        .unwrap();
    assert_eq!(health_of(&router, "a").breaker, BreakerState::Open);

    a.set(Behaviour::Answer);
    *now.lock().unwrap() += Duration::from_secs(29);
    assert_eq!(
        complete(&router, &enterprise, Task::Completion)
            .await
            .unwrap()
            .provider,
        "b"
    );
    *now.lock().unwrap() += Duration::from_secs(1);
    assert_eq!(health_of(&router, "a").breaker, BreakerState::HalfOpen);
    let routed = complete(&router, &enterprise, Task::Completion)
        .await
        .unwrap();
    assert_eq!(routed.provider, "a");
    assert_eq!(
        health_of(&router, "a"),
        ProviderHealth {
            name: "a".into(),
            kind: "local".into(),
            breaker: BreakerState::Closed,
            consecutive_failures: 0,
        }
    );
}

#[tokio::test]
async fn a_failed_probe_reopens_the_breaker() {
    let (now, clock) = manual_clock();
    let config = config(&["a", "b"], "[routing]\nbreaker_failures = 1\n");
    let a = Scripted::new("a", Behaviour::Status(503));
    let b = Scripted::new("b", Behaviour::Answer);
    let router = router(&config, &[&a, &b]).with_clock(clock);
    let enterprise = enterprise(&config);
    complete(&router, &enterprise, Task::Completion)
        .await
        .unwrap();
    *now.lock().unwrap() += Duration::from_secs(30);
    let routed = complete(&router, &enterprise, Task::Completion)
        .await
        .unwrap();
    assert_eq!(
        outcomes(&routed.attempts),
        [
            ("a", AttemptOutcome::Status(503)),
            ("b", AttemptOutcome::Answered)
        ]
    );
    assert_eq!(health_of(&router, "a").breaker, BreakerState::Open);
    assert_eq!(health_of(&router, "a").consecutive_failures, 2);
}

#[tokio::test]
async fn one_probe_at_a_time() {
    let (now, clock) = manual_clock();
    let config = config(&["a", "b"], "[routing]\nbreaker_failures = 1\n");
    let a = Scripted::with_script(
        "a",
        &[
            Behaviour::Status(503),
            Behaviour::Slow(Duration::from_millis(100)),
        ],
        Behaviour::Answer,
    );
    let b = Scripted::new("b", Behaviour::Answer);
    let router = router(&config, &[&a, &b]).with_clock(clock);
    let enterprise = enterprise(&config);
    complete(&router, &enterprise, Task::Completion)
        .await
        .unwrap();
    *now.lock().unwrap() += Duration::from_secs(30);
    // The first request takes the probe and waits on the slow answer; the second, planned
    // meanwhile, goes to `b`.
    let probe = complete(&router, &enterprise, Task::Completion);
    let other = async {
        tokio::task::yield_now().await;
        complete(&router, &enterprise, Task::Completion).await
    };
    let (probe, other) = tokio::join!(probe, other);
    assert_eq!(probe.unwrap().provider, "a");
    assert_eq!(other.unwrap().provider, "b");
    assert_eq!(health_of(&router, "a").breaker, BreakerState::Closed);
}

#[tokio::test]
async fn a_cancelled_probe_frees_the_slot() {
    let (now, clock) = manual_clock();
    let config = config(&["a", "b"], "[routing]\nbreaker_failures = 1\n");
    let a = Scripted::with_script(
        "a",
        &[Behaviour::Status(503), Behaviour::Stall],
        Behaviour::Answer,
    );
    let b = Scripted::new("b", Behaviour::Answer);
    let router = router(&config, &[&a, &b]).with_clock(clock);
    let enterprise = enterprise(&config);
    complete(&router, &enterprise, Task::Completion)
        .await
        .unwrap();
    *now.lock().unwrap() += Duration::from_secs(30);
    let cancelled = tokio::time::timeout(
        Duration::from_millis(20),
        complete(&router, &enterprise, Task::Completion),
    )
    .await;
    assert!(cancelled.is_err());
    assert_eq!(health_of(&router, "a").breaker, BreakerState::HalfOpen);
    let routed = complete(&router, &enterprise, Task::Completion)
        .await
        .unwrap();
    assert_eq!(routed.provider, "a");
}

#[tokio::test]
async fn when_every_breaker_is_open_the_targets_are_tried_anyway() {
    let config = config(&["a", "b"], "[routing]\nbreaker_failures = 1\n");
    let a = Scripted::new("a", Behaviour::Status(503));
    let b = Scripted::new("b", Behaviour::Status(503));
    let router = router(&config, &[&a, &b]);
    let enterprise = enterprise(&config);
    complete(&router, &enterprise, Task::Completion)
        .await
        .unwrap_err();
    assert!(every_breaker_open(&router.provider_health()));
    a.set(Behaviour::Answer);
    let plan = router.plan(&enterprise, Task::Completion).unwrap();
    assert!(plan.every_breaker_open());
    assert_eq!(plan.provider_names(), ["a", "b"]);
    let routed = router
        .complete_with_fallback(&plan, &request(), plan.budget())
        .await
        .unwrap();
    assert_eq!(routed.provider, "a");
    assert_eq!(health_of(&router, "a").breaker, BreakerState::Closed);
}

#[tokio::test]
async fn a_target_whose_breaker_opened_after_planning_is_skipped() {
    let config = config(&["a", "b"], "[routing]\nbreaker_failures = 1\n");
    let a = Scripted::new("a", Behaviour::Status(503));
    let b = Scripted::new("b", Behaviour::Answer);
    let router = router(&config, &[&a, &b]);
    let enterprise = enterprise(&config);
    let stale_plan = router.plan(&enterprise, Task::Completion).unwrap();
    complete(&router, &enterprise, Task::Completion)
        .await
        .unwrap();
    let routed = router
        .complete_with_fallback(&stale_plan, &request(), stale_plan.budget())
        .await
        .unwrap();
    assert_eq!(
        outcomes(&routed.attempts),
        [
            ("a", AttemptOutcome::Skipped),
            ("b", AttemptOutcome::Answered)
        ]
    );
    assert_eq!(a.calls(), 1);
}

#[tokio::test]
async fn a_zero_budget_fails_with_a_timeout_naming_the_first_target() {
    let config = config(&["a"], "");
    let a = Scripted::new("a", Behaviour::Answer);
    let router = router(&config, &[&a]);
    let plan = router.plan(&enterprise(&config), Task::Chat).unwrap();
    let failure = router
        .complete_with_fallback(&plan, &request(), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(failure.error, ProviderError::Timeout { ref provider, timeout_ms: 0 } if provider == "a")
    );
    assert!(failure.attempts.is_empty());
    assert_eq!(a.calls(), 0);
}

#[test]
fn routing_config_parses_with_defaults() {
    let config = config(&["a", "b"], "");
    assert_eq!(config.routing, crate::config::RoutingConfig::default());
    assert_eq!(config.routing.breaker_failures, 5);
    assert_eq!(config.routing.breaker_cooldown_ms, 30_000);
    let config = self::config(
        &["a", "b"],
        "[routing]\ncompletion_budget_ms = 2000\nchat_budget_ms = 9000\n\
         breaker_failures = 3\nbreaker_cooldown_ms = 500\n\
         [routing.pro]\ncompletion = [\"b\", \"a\"]\nchat = [\"a\"]\nweights = { b = 2 }\n",
    );
    let routing = &config.routing;
    assert_eq!(
        (
            routing.completion_budget_ms,
            routing.chat_budget_ms,
            routing.breaker_failures,
            routing.breaker_cooldown_ms
        ),
        (2000, 9000, 3, 500)
    );
    let pro = &routing.tiers["pro"];
    assert_eq!(
        pro.completion.as_deref(),
        Some(&["b".to_owned(), "a".to_owned()][..])
    );
    assert_eq!(pro.chat.as_deref(), Some(&["a".to_owned()][..]));
    assert_eq!(pro.weights["b"], 2);
}

#[track_caller]
fn check_invalid(text: &str, expected: &str) {
    let providers = "[[providers]]\nname = \"a\"\nkind = \"local\"\n\
                     [[providers]]\nname = \"gpt\"\nkind = \"openai\"\nbase_url = \"http://x\"\nmodel = \"m\"\n";
    let error = match Config::parse_str(&format!("{providers}{text}")) {
        Ok(_) => panic!("accepted: {text}"),
        Err(ConfigError::Parse { message, .. }) => message,
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains(expected),
        "`{error}` does not contain `{expected}`"
    );
}

#[test]
fn bad_routing_names_the_key() {
    for (text, expected) in [
        ("[routing]\ncompletion_budget_ms = 0\n", "routing.completion_budget_ms must be at least 1"),
        ("[routing]\nchat_budget_ms = 0\n", "routing.chat_budget_ms must be at least 1"),
        ("[routing]\nbreaker_failures = 0\n", "routing.breaker_failures must be at least 1"),
        ("[routing]\nbreaker_cooldown_ms = 0\n", "routing.breaker_cooldown_ms must be at least 1"),
        ("[routing]\ncompletion_budget_ms = -1\n", "invalid value"),
        (
            "[routing]\ncompletion_budget = 5\n",
            "expected a [routing.<tier>] table; the keys of [routing] itself are",
        ),
        ("[routing.pro]\ncompletoin = [\"a\"]\n", "unknown field `completoin`"),
        ("[routing.gold]\ncompletion = [\"a\"]\n", "routing.gold: there is no tier `gold` (tiers: enterprise, free, pro)"),
        ("[routing.pro]\ncompletion = []\n", "routing.pro.completion must name at least one provider"),
        (
            "[routing.pro]\nchat = [\"a\", \"nope\"]\n",
            "routing.pro.chat: `nope` is not a [[providers]] name (configured: a, gpt)",
        ),
        (
            "[routing.free]\ncompletion = [\"gpt\"]\n",
            "routing.free.completion: provider `gpt` is not allowed for tier `free`; add it to tiers.free.providers",
        ),
        ("[routing.pro]\ncompletion = [\"a\", \"a\"]\n", "routing.pro.completion: provider `a` is listed twice"),
        ("[routing.pro]\nweights = { a = 0 }\n", "routing.pro.weights: `a` must weigh at least 1"),
        ("[routing.pro]\nweights = { nope = 1 }\n", "routing.pro.weights: `nope` is not a [[providers]] name"),
        (
            "[routing.pro]\ncompletion = [\"a\"]\nchat = [\"a\"]\nweights = { gpt = 1 }\n",
            "routing.pro.weights: provider `gpt` is in neither routing.pro.completion nor routing.pro.chat",
        ),
        (
            "[routing.free]\nweights = { gpt = 1 }\n",
            "routing.free.weights: provider `gpt` is not allowed for tier `free`",
        ),
    ] {
        check_invalid(text, expected);
    }
    // A tier the deployment adds may have a table too; weights may name a provider the
    // lists leave to config order.
    Config::parse_str(
        "[[providers]]\nname = \"a\"\nkind = \"local\"\n\
         [tiers.team]\nrequests_per_hour = 1\nrequests_per_day = 1\nburst_per_minute = 0\n\
         tokens_per_day = 1\nmax_file_size_mb = 1\nmax_context_tokens = 1\nproviders = [\"*\"]\n\
         features = [\"*\"]\n[routing.team]\nweights = { a = 1 }\n",
    )
    .unwrap();
}

#[tokio::test]
async fn a_breaker_past_its_cooldown_counts_as_usable_for_readiness() {
    let (now, clock) = manual_clock();
    let config = config(&["a"], "[routing]\nbreaker_failures = 1\n");
    let a = Scripted::new("a", Behaviour::Status(503));
    let router = router(&config, &[&a]).with_clock(clock);
    assert!(!every_breaker_open(&router.provider_health()));
    complete(&router, &enterprise(&config), Task::Completion)
        .await
        .unwrap_err();
    assert!(every_breaker_open(&router.provider_health()));
    // Were it still reported as open, a server taken out of rotation for it would never
    // get the request that probes the provider.
    *now.lock().unwrap() += Duration::from_secs(30);
    assert!(!every_breaker_open(&router.provider_health()));
    assert!(!every_breaker_open(&[]));
}

/// Streams one piece of text, then falls silent.
struct Trickle;

impl Provider for Trickle {
    fn name(&self) -> &str {
        "trickle"
    }

    fn model(&self) -> &str {
        "trickle"
    }

    fn complete<'a>(
        &'a self,
        _request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<ProviderCompletion, ProviderError>> {
        Box::pin(std::future::pending())
    }

    fn stream<'a>(
        &'a self,
        _request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<PieceStream, ProviderError>> {
        Box::pin(async {
            let first = futures::stream::iter([Ok(StreamPiece::text("a"))]);
            let stream: PieceStream = first.chain(futures::stream::pending()).boxed();
            Ok(stream)
        })
    }
}

#[tokio::test]
async fn a_stream_that_falls_silent_ends_with_a_timeout_against_its_provider() {
    let config = config(&["trickle"], "");
    let mut config = config;
    config.providers[0].timeout_ms = Some(50);
    let providers: Vec<Arc<dyn Provider>> = vec![Arc::new(Trickle)];
    let router = ProviderRouter::from_config(&config, &ProviderRegistry::from_providers(providers));
    let plan = router.plan(&enterprise(&config), Task::Completion).unwrap();
    let mut routed = router
        .stream_with_fallback(&plan, ModelRequest::Completion(&request()), plan.budget())
        .await
        .unwrap();
    assert_eq!(routed.head, [StreamPiece::text("a")]);
    assert_eq!(health_of(&router, "trickle").consecutive_failures, 0);
    let error = routed.rest.next().await.unwrap().unwrap_err();
    assert!(
        matches!(error, ProviderError::Timeout { timeout_ms: 50, .. }),
        "{error:?}"
    );
    assert!(routed.rest.next().await.is_none());
    assert_eq!(health_of(&router, "trickle").consecutive_failures, 1);
}

#[tokio::test]
async fn conversations_pass_over_providers_that_cannot_chat_and_fall_back() {
    let config = config(&["offline", "a", "b"], "");
    let offline: Arc<dyn Provider> = Arc::new(crate::providers::local::LocalProvider::new(
        "offline".to_owned(),
        None,
    ));
    let a = Scripted::new("a", Behaviour::Status(503));
    let b = Scripted::new("b", Behaviour::Answer);
    let providers = vec![
        offline,
        a.clone() as Arc<dyn Provider>,
        b.clone() as Arc<dyn Provider>,
    ];
    let router = ProviderRouter::from_config(&config, &ProviderRegistry::from_providers(providers));
    let top = enterprise(&config);
    // Completions may use the offline provider; conversations may not.
    let completion = router.plan(&top, Task::Completion).unwrap();
    assert_eq!(completion.provider_names(), ["offline", "a", "b"]);
    let plan = router.plan(&top, Task::Chat).unwrap();
    assert_eq!(plan.provider_names(), ["a", "b"]);

    let prompt = ChatPrompt {
        system: "system".into(),
        turns: vec![crate::providers::Turn::user("explain")],
        max_tokens: 64,
        temperature: 0.2,
        stop: Vec::new(),
        bare_code: false,
    };
    let routed = router
        .answer_with_fallback(&plan, ModelRequest::Chat(&prompt), plan.budget())
        .await
        .unwrap();
    assert_eq!(routed.provider, "b");
    assert_eq!(routed.completion.text, "from b");
    assert_eq!(
        routed
            .attempts
            .iter()
            .map(|attempt| attempt.outcome)
            .collect::<Vec<_>>(),
        [AttemptOutcome::Status(503), AttemptOutcome::Answered]
    );
    assert_eq!((a.calls(), b.calls()), (1, 1));

    // With only the offline provider there is no plan for conversations at all.
    let only_offline = Config::default();
    let offline: Arc<dyn Provider> = Arc::new(crate::providers::local::LocalProvider::builtin());
    let router = ProviderRouter::from_config(
        &only_offline,
        &ProviderRegistry::from_providers(vec![offline]),
    );
    assert!(router
        .plan(&enterprise(&only_offline), Task::Chat)
        .is_none());
}
