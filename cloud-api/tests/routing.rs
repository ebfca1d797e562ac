//! Provider routing against loopback vendors speaking the real wire formats: providers are
//! built from configuration exactly as at start-up, one fixture per provider, each told to
//! fail with 503, rate-limit, stall or answer. Calls the router's public API directly.

mod common;

use std::time::{Duration, Instant};

use common::{completion_body, PROVIDER_KEY, PROVIDER_KEY_ENV};
use tandem_cloud::providers::{ProviderError, ProviderRegistry};
use tandem_cloud::routing::{
    AttemptOutcome, BreakerState, ProviderRouter, RoutedCompletion, RoutingFailure, Task,
};
use tandem_cloud::tiers::TierPolicy;
use tandem_cloud::Config;
use tandem_e2e::ProviderFixture;
use tandem_shared::{CompletionRequest, Tier};

/// Four vendors of different kinds, each behind its own fixture: `failing` (Ollama) answers
/// 503, `limited` (OpenAI) 429, `stalled` (Anthropic) never answers, `healthy` (Gemini)
/// answers.
struct Vendors {
    failing: ProviderFixture,
    limited: ProviderFixture,
    stalled: ProviderFixture,
    healthy: ProviderFixture,
}

impl Vendors {
    async fn start() -> Vendors {
        let vendors = Vendors {
            failing: ProviderFixture::start().await.unwrap(),
            limited: ProviderFixture::start().await.unwrap(),
            stalled: ProviderFixture::start().await.unwrap(),
            healthy: ProviderFixture::start().await.unwrap(),
        };
        vendors.failing.fail_with(503);
        vendors.limited.rate_limit(Duration::from_secs(1));
        vendors.stalled.stall();
        vendors
    }

    /// The `[[providers]]` for the four vendors, then `routing` (TOML).
    fn config(&self, stalled_timeout_ms: u64, routing: &str) -> Config {
        let text = format!(
            "[[providers]]\nname = \"failing\"\nkind = \"ollama\"\nbase_url = \"{}\"\nmodel = \"m\"\n\
             [[providers]]\nname = \"limited\"\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"m\"\n\
             [[providers]]\nname = \"stalled\"\nkind = \"anthropic\"\nbase_url = \"{}\"\n\
             model = \"m\"\napi_key_env = \"{PROVIDER_KEY_ENV}\"\ntimeout_ms = {stalled_timeout_ms}\n\
             [[providers]]\nname = \"healthy\"\nkind = \"google\"\nbase_url = \"{}\"\n\
             model = \"m\"\napi_key_env = \"{PROVIDER_KEY_ENV}\"\n\
             {routing}",
            self.failing.url(),
            self.limited.openai_base_url(),
            self.stalled.vendor_root_url(),
            self.healthy.vendor_root_url(),
        );
        Config::parse_str(&text).unwrap_or_else(|error| panic!("{error}\n{text}"))
    }
}

/// The router, built as at start-up, and the enterprise tier's policy (which allows every
/// provider; `[routing.enterprise]` orders them).
fn router(config: &Config) -> (ProviderRouter, TierPolicy) {
    let registry = ProviderRegistry::from_config(config, &|name| {
        (name == PROVIDER_KEY_ENV).then(|| PROVIDER_KEY.to_owned())
    })
    .unwrap();
    let policy = config
        .tiers()
        .unwrap()
        .get(&Tier::enterprise())
        .unwrap()
        .clone();
    (ProviderRouter::from_config(config, &registry), policy)
}

fn request() -> CompletionRequest {
    serde_json::from_value(completion_body()).unwrap()
}

async fn complete(
    router: &ProviderRouter,
    policy: &TierPolicy,
    task: Task,
) -> Result<RoutedCompletion, RoutingFailure> {
    let plan = router
        .plan(policy, task)
        .expect("enterprise may use every provider");
    router
        .complete_with_fallback(&plan, &request(), plan.budget())
        .await
}

fn providers_tried(attempts: &[tandem_cloud::routing::Attempt]) -> Vec<(&str, AttemptOutcome)> {
    attempts
        .iter()
        .map(|attempt| (attempt.provider.as_str(), attempt.outcome))
        .collect()
}

fn breaker_of(router: &ProviderRouter, name: &str) -> (BreakerState, u32) {
    let health = router
        .provider_health()
        .into_iter()
        .find(|health| health.name == name)
        .unwrap();
    (health.breaker, health.consecutive_failures)
}

#[tokio::test]
async fn a_503_and_a_429_fall_back_to_the_next_provider_in_order() {
    let vendors = Vendors::start().await;
    let config = vendors.config(
        30_000,
        "[routing.enterprise]\ncompletion = [\"failing\", \"limited\", \"healthy\"]\n",
    );
    let (router, policy) = router(&config);
    let routed = complete(&router, &policy, Task::Completion).await.unwrap();
    assert_eq!(routed.provider, "healthy");
    assert_eq!(routed.completion.text, tandem_e2e::provider::DEFAULT_REPLY);
    assert_eq!(
        providers_tried(&routed.attempts),
        [
            ("failing", AttemptOutcome::Status(503)),
            ("limited", AttemptOutcome::Status(429)),
            ("healthy", AttemptOutcome::Answered),
        ]
    );
    // One request each: a provider with a successor is not retried.
    assert_eq!(vendors.failing.request_count(), 1);
    assert_eq!(vendors.limited.request_count(), 1);
    assert_eq!(vendors.healthy.request_count(), 1);
    assert_eq!(vendors.stalled.request_count(), 0);
    // The Gemini fixture got the request in its own format, key in its header.
    let received = &vendors.healthy.requests()[0];
    assert_eq!(received.path, "/v1beta/models/m:generateContent");
    assert_eq!(received.header("x-goog-api-key"), Some(PROVIDER_KEY));
}

#[tokio::test]
async fn a_400_ends_the_request_without_trying_another_provider() {
    let vendors = Vendors::start().await;
    vendors.failing.fail_with(400);
    let config = vendors.config(
        30_000,
        "[routing]\nbreaker_failures = 1\n\
         [routing.enterprise]\ncompletion = [\"failing\", \"healthy\"]\n",
    );
    let (router, policy) = router(&config);
    let failure = complete(&router, &policy, Task::Completion)
        .await
        .unwrap_err();
    assert!(
        matches!(failure.error, ProviderError::Status { status: 400, .. }),
        "{:?}",
        failure.error
    );
    assert_eq!(
        failure.error.to_string(),
        "provider `failing` returned HTTP 400"
    );
    assert_eq!(vendors.healthy.request_count(), 0);
    // The provider answered: its breaker stays closed even at a threshold of 1.
    assert_eq!(breaker_of(&router, "failing"), (BreakerState::Closed, 0));
}

#[tokio::test]
async fn the_budget_cuts_a_stalled_provider_off() {
    let vendors = Vendors::start().await;
    let config = vendors.config(
        30_000,
        "[routing]\ncompletion_budget_ms = 300\n\
         [routing.enterprise]\ncompletion = [\"stalled\", \"healthy\"]\n",
    );
    let (router, policy) = router(&config);
    let started = Instant::now();
    let failure = complete(&router, &policy, Task::Completion)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert!(
        matches!(failure.error, ProviderError::Timeout { ref provider, .. } if provider == "stalled"),
        "{:?}",
        failure.error
    );
    assert_eq!(
        providers_tried(&failure.attempts),
        [("stalled", AttemptOutcome::OutOfBudget)]
    );
    assert_eq!(vendors.stalled.request_count(), 1);
    assert_eq!(vendors.healthy.request_count(), 0);
}

#[tokio::test]
async fn a_provider_timeout_moves_on_within_the_budget() {
    let vendors = Vendors::start().await;
    let config = vendors.config(
        200,
        "[routing.enterprise]\ncompletion = [\"stalled\", \"healthy\"]\n",
    );
    let (router, policy) = router(&config);
    let started = Instant::now();
    let routed = complete(&router, &policy, Task::Completion).await.unwrap();
    assert_eq!(
        providers_tried(&routed.attempts),
        [
            ("stalled", AttemptOutcome::Timeout),
            ("healthy", AttemptOutcome::Answered)
        ]
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn a_rate_limited_last_provider_is_retried_once() {
    let vendors = Vendors::start().await;
    let config = vendors.config(30_000, "[routing.enterprise]\ncompletion = [\"limited\"]\n");
    let (router, policy) = router(&config);
    let failure = complete(&router, &policy, Task::Completion)
        .await
        .unwrap_err();
    assert!(matches!(failure.error, ProviderError::RateLimited { .. }));
    assert_eq!(vendors.limited.request_count(), 2);
    let requests = vendors.limited.requests();
    // The retry waited its back-off (at least half of 100 ms).
    let gap = requests[1].received_at - requests[0].received_at;
    assert!(gap >= Duration::from_millis(50), "{gap:?}");
}

#[tokio::test]
async fn after_n_failures_the_breaker_opens_and_the_provider_is_skipped() {
    let vendors = Vendors::start().await;
    let config = vendors.config(
        30_000,
        "[routing]\nbreaker_failures = 3\n\
         [routing.enterprise]\ncompletion = [\"failing\", \"healthy\"]\n",
    );
    let (router, policy) = router(&config);
    for round in 1..=3 {
        let routed = complete(&router, &policy, Task::Completion).await.unwrap();
        assert_eq!(routed.provider, "healthy");
        let expected = if round < 3 {
            BreakerState::Closed
        } else {
            BreakerState::Open
        };
        assert_eq!(breaker_of(&router, "failing"), (expected, round));
    }
    let plan = router.plan(&policy, Task::Completion).unwrap();
    assert_eq!(plan.provider_names(), ["healthy"]);
    let routed = complete(&router, &policy, Task::Completion).await.unwrap();
    assert_eq!(
        providers_tried(&routed.attempts),
        [("healthy", AttemptOutcome::Answered)]
    );
    assert_eq!(vendors.failing.request_count(), 3);
    let health = router.provider_health();
    let states: Vec<(&str, &str, BreakerState)> = health
        .iter()
        .map(|health| (health.name.as_str(), health.kind.as_str(), health.breaker))
        .collect();
    assert_eq!(
        states,
        [
            ("failing", "ollama", BreakerState::Open),
            ("limited", "openai", BreakerState::Closed),
            ("stalled", "anthropic", BreakerState::Closed),
            ("healthy", "google", BreakerState::Closed),
        ]
    );
}

#[tokio::test]
async fn after_the_cooldown_a_probe_closes_the_breaker() {
    let vendors = Vendors::start().await;
    let config = vendors.config(
        30_000,
        "[routing]\nbreaker_failures = 1\nbreaker_cooldown_ms = 300\n\
         [routing.enterprise]\ncompletion = [\"failing\", \"healthy\"]\n",
    );
    let (router, policy) = router(&config);
    complete(&router, &policy, Task::Completion).await.unwrap();
    assert_eq!(breaker_of(&router, "failing"), (BreakerState::Open, 1));

    // Back, but within the cool-down nobody asks it.
    vendors.failing.recover();
    let routed = complete(&router, &policy, Task::Completion).await.unwrap();
    assert_eq!(routed.provider, "healthy");
    assert_eq!(vendors.failing.request_count(), 1);

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(breaker_of(&router, "failing"), (BreakerState::HalfOpen, 1));
    let routed = complete(&router, &policy, Task::Completion).await.unwrap();
    assert_eq!(routed.provider, "failing");
    assert_eq!(vendors.failing.request_count(), 2);
    assert_eq!(breaker_of(&router, "failing"), (BreakerState::Closed, 0));
}

#[tokio::test]
async fn each_task_follows_its_own_list() {
    let vendors = Vendors::start().await;
    let config = vendors.config(
        30_000,
        "[routing.enterprise]\ncompletion = [\"failing\", \"healthy\"]\nchat = [\"healthy\"]\n",
    );
    let (router, policy) = router(&config);
    let routed = complete(&router, &policy, Task::Chat).await.unwrap();
    assert_eq!(
        providers_tried(&routed.attempts),
        [("healthy", AttemptOutcome::Answered)]
    );
    assert_eq!(vendors.failing.request_count(), 0);
    // Without a list for the tier, every provider in configuration order.
    let pro = config.tiers().unwrap().get(&Tier::pro()).unwrap().clone();
    let plan = router.plan(&pro, Task::Chat).unwrap();
    assert_eq!(
        plan.provider_names(),
        ["failing", "limited", "stalled", "healthy"]
    );
}

/// Through the whole API: the pro tier's routing table sends completions to `failing`
/// first; the answer comes from `healthy`, the usage record names it, and `/ready` shows
/// the breaker of `failing` opening after repeated failures while staying ready.
#[tokio::test]
async fn the_api_falls_back_records_the_answering_provider_and_reports_breakers() {
    let vendors = Vendors::start().await;
    let config = format!(
        "[[providers]]\nname = \"failing\"\nkind = \"ollama\"\nbase_url = \"{}\"\nmodel = \"m\"\n\
         [[providers]]\nname = \"healthy\"\nkind = \"google\"\nbase_url = \"{}\"\n\
         model = \"gemini-x\"\napi_key_env = \"{PROVIDER_KEY_ENV}\"\n\
         [routing]\nbreaker_failures = 2\n\
         [routing.pro]\ncompletion = [\"failing\", \"healthy\"]\n",
        vendors.failing.url(),
        vendors.healthy.vendor_root_url(),
    );
    let app = common::TestApp::new(&config).await;
    for _ in 0..3 {
        let reply = app.complete(completion_body()).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["provider"], "healthy");
    }
    // Two failures opened the breaker: the third request did not try `failing`.
    assert_eq!(vendors.failing.request_count(), 2);

    let user = tandem_cloud::db::users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap();
    let day = chrono::Utc::now();
    let models = tandem_cloud::db::usage::summary(
        &app.state.db,
        &user.id,
        day - chrono::TimeDelta::hours(1),
        day + chrono::TimeDelta::hours(1),
        tandem_cloud::db::usage::GroupBy::Model,
    )
    .await
    .unwrap();
    assert_eq!(models.len(), 1, "{models:?}");
    assert_eq!(
        (models[0].key.as_str(), models[0].requests),
        ("gemini-x", 3)
    );

    let ready = app
        .send(
            axum::http::Request::get("/ready")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let providers = ready.json["providers"].as_array().unwrap();
    let breaker = |name: &str| {
        providers
            .iter()
            .find(|provider| provider["name"] == name)
            .map(|provider| provider["breaker"].clone())
    };
    assert_eq!(breaker("failing"), Some(serde_json::json!("open")));
    assert_eq!(breaker("healthy"), Some(serde_json::json!("closed")));
}
