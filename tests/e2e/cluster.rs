//! Three `tandem-cloud serve` processes sharing one PostgreSQL database and one Redis, as a
//! scaled-out deployment runs them: a user's quota holds exactly across the instances, and
//! losing an instance mid-load costs neither the others' answers nor a usage record.
//!
//! Needs the machine's PostgreSQL and Redis: `TANDEM_TEST_POSTGRES_URL` and
//! `TANDEM_TEST_REDIS_URL`. Without them the test says so and passes, unless
//! `TANDEM_REQUIRE_SERVICES=1` (CI), where a missing service is a failure.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tandem_cloud::db::scratch::ScratchDb;
use tandem_e2e::services::{service_url, POSTGRES_URL, REDIS_URL};
use tandem_e2e::{CloudOptions, CloudServer, ProviderConfig, ProviderFixture, TEST_USER_EMAIL};

const INSTANCES: usize = 3;
/// The quota test: the user has used `ALREADY_USED` of `DAILY_QUOTA`, then sends
/// `CONCURRENT` requests at once, spread over the instances.
const DAILY_QUOTA: usize = 60;
const ALREADY_USED: usize = 10;
const CONCURRENT: usize = 1000;
/// The failover test: requests paced over a few seconds; one instance is killed after
/// `KILL_AFTER`.
const PACED: usize = 900;
const PACE: Duration = Duration::from_millis(3);
const KILL_AFTER: Duration = Duration::from_secs(1);
const LOAD_USER_EMAIL: &str = "load@example.com";

/// A schema of its own on the PostgreSQL server (a [`ScratchDb`]), which the instances
/// see as their whole database, removed at the end.
struct SharedDatabase {
    /// Its `url` is what the instances are configured with.
    scratch: ScratchDb,
    pool: PgPool,
}

impl SharedDatabase {
    async fn create(server: &str) -> SharedDatabase {
        let scratch = ScratchDb::postgres(server)
            .await
            .expect("the schema is created");
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&scratch.url)
            .await
            .expect("the schema's URL connects");
        SharedDatabase { scratch, pool }
    }

    /// Usage records of `email`'s answered requests, by request id.
    async fn answered_request_ids(&self, email: &str) -> HashSet<String> {
        sqlx::query_scalar(
            "SELECT u.request_id FROM usage u JOIN users s ON s.id = u.user_id \
             WHERE s.email = $1 AND u.status = 200",
        )
        .bind(email)
        .fetch_all(&self.pool)
        .await
        .expect("usage is readable")
        .into_iter()
        .collect()
    }

    async fn drop_schema(self) {
        self.pool.close().await;
        self.scratch.remove().await.expect("the schema is dropped");
    }
}

/// The configuration every instance shares: the database, Redis, and two tiers.
fn shared_options(
    database: &SharedDatabase,
    redis: &str,
    provider: ProviderConfig,
) -> CloudOptions {
    let key_prefix = format!("tandem-cluster-{}:", uuid::Uuid::new_v4().simple());
    CloudOptions {
        providers: vec![provider],
        tier: Some("quota".to_owned()),
        database_url: Some(database.scratch.url.clone()),
        extra_toml: format!(
            r#"
[redis]
url = {redis:?}
key_prefix = {key_prefix:?}
# Generous: an answer that comes after the timeout falls back to the scaled local
# limits, which on a loaded 2-core machine would blur what this test measures.
timeout_ms = 5000
instances = {INSTANCES}

{quota}
{load}"#,
            // The hourly quota may not exceed the daily one; the daily one binds.
            quota = tier_toml("quota", DAILY_QUOTA, DAILY_QUOTA),
            load = tier_toml("load", 1_000_000, 1_000_000),
        ),
        ..CloudOptions::default()
    }
}

/// A tier with these request quotas, no burst limit, and everything else out of reach.
fn tier_toml(name: &str, per_hour: usize, per_day: usize) -> String {
    format!(
        r#"
[tiers.{name}]
requests_per_hour = {per_hour}
requests_per_day = {per_day}
burst_per_minute = 0
tokens_per_day = 1000000000
max_file_size_mb = 10
max_context_tokens = 32000
providers = ["*"]
features = ["*"]
"#
    )
}

/// One completion request: the status and the completion id, or `None` when no whole
/// answer came back (the instance was gone).
async fn complete(client: &reqwest::Client, url: &str, key: &str) -> Option<(u16, Option<String>)> {
    let body = json!({"language": "rust", "path": "src/lib.rs", "prefix": "fn a", "suffix": "}"});
    let response = client
        .post(format!("{url}/v1/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.ok()?;
    let id = answer["id"].as_str().map(str::to_owned);
    Some((status, id))
}

/// Waits out the last half minute of a UTC day: the quota is daily, and a day starting
/// mid-test would hand out a fresh one.
async fn away_from_midnight() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into_day = now.as_secs() % 86_400;
    if into_day > 86_400 - 30 {
        tokio::time::sleep(Duration::from_secs(86_400 - into_day + 1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_quota_exactly_and_survive_losing_one() {
    let (Some(postgres), Some(redis)) = (
        service_url(POSTGRES_URL, "cluster"),
        service_url(REDIS_URL, "cluster"),
    ) else {
        return;
    };
    away_from_midnight().await;
    let database = SharedDatabase::create(&postgres).await;
    let provider = ProviderFixture::start().await.expect("provider starts");
    provider.reply_with_text("entry.add(amount);");
    // Answers take a moment, so the requests really are in flight together.
    provider.set_delay(Duration::from_millis(20));
    let options = shared_options(
        &database,
        &redis,
        ProviderConfig::ollama(&provider, "qwen2.5-coder:1.5b"),
    );

    // The first instance migrates the database and creates the user (through the CLI,
    // on PostgreSQL); the others join with the same key.
    let first = CloudServer::start(options.clone())
        .await
        .expect("instance 1 starts");
    let key = first.api_key().to_owned();
    let mut instances = vec![first];
    for number in 2..=INSTANCES {
        let joined = CloudServer::start(CloudOptions {
            existing_key: Some(key.clone()),
            ..options.clone()
        })
        .await
        .unwrap_or_else(|error| panic!("instance {number} starts: {error:#}"));
        instances.push(joined);
    }
    let urls: Vec<String> = instances
        .iter()
        .map(|cloud| cloud.url().to_owned())
        .collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENT)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client builds");

    // Part of the quota is used already, across the instances.
    for index in 0..ALREADY_USED {
        let answer = complete(&client, &urls[index % INSTANCES], &key).await;
        assert_eq!(
            answer.map(|(status, _)| status),
            Some(200),
            "request {index}"
        );
    }

    // 1,000 requests at once, a third to each instance: exactly what is left is admitted.
    let requests: Vec<_> = (0..CONCURRENT)
        .map(|index| {
            let (client, url, key) = (client.clone(), urls[index % INSTANCES].clone(), key.clone());
            tokio::spawn(async move { complete(&client, &url, &key).await })
        })
        .collect();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for request in requests {
        let (status, _) = request
            .await
            .expect("request task ends")
            .expect("every instance answers every request");
        *statuses.entry(status).or_default() += 1;
    }
    let remaining = DAILY_QUOTA - ALREADY_USED;
    assert_eq!(
        statuses,
        BTreeMap::from([(200, remaining), (429, CONCURRENT - remaining)]),
        "exactly the remaining quota is admitted across the instances, the rest refused"
    );
    assert_eq!(
        database.answered_request_ids(TEST_USER_EMAIL).await.len(),
        DAILY_QUOTA,
        "one usage record per admitted request"
    );

    // A user with room to spare sends a paced load; one instance dies in the middle.
    instances[0]
        .run_command(&[
            "users",
            "create",
            "--email",
            LOAD_USER_EMAIL,
            "--tier",
            "load",
        ])
        .await
        .expect("the load user is created");
    let created = instances[0]
        .run_command(&[
            "keys",
            "create",
            "--email",
            LOAD_USER_EMAIL,
            "--name",
            "load",
        ])
        .await
        .expect("the load user's key is created");
    let load_key = created
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .expect("`keys create` prints the key")
        .to_owned();
    let started = tokio::time::Instant::now();
    let requests: Vec<_> = (0..PACED)
        .map(|index| {
            let instance = index % INSTANCES;
            let (client, url, key) = (client.clone(), urls[instance].clone(), load_key.clone());
            let due = started + PACE * index as u32;
            tokio::spawn(async move {
                tokio::time::sleep_until(due).await;
                (instance, complete(&client, &url, &key).await)
            })
        })
        .collect();
    tokio::time::sleep_until(started + KILL_AFTER).await;
    let killed = INSTANCES - 1;
    instances[killed].kill();

    let mut answered_ids = Vec::new();
    let mut lost_with_the_instance = 0;
    for request in requests {
        let (instance, answer) = request.await.expect("request task ends");
        match answer {
            Some((200, Some(id))) => answered_ids.push(id),
            Some((status, _)) => panic!("instance {} answered {status}", instance + 1),
            None if instance == killed => lost_with_the_instance += 1,
            None => panic!("instance {} did not answer", instance + 1),
        }
    }
    assert!(
        lost_with_the_instance > 0,
        "the instance was killed while requests were still coming"
    );
    let recorded = database.answered_request_ids(LOAD_USER_EMAIL).await;
    let missing: Vec<&String> = answered_ids
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no usage record: {:?}",
        missing.len(),
        answered_ids.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        answered_ids.len() + lost_with_the_instance,
        PACED,
        "every request to a surviving instance was answered"
    );

    drop(instances);
    database.drop_schema().await;
}
