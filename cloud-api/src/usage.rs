//! Usage accounting with group commit: every request's record is durable before its
//! response is sent, without a transaction per request.
//!
//! Handlers hand their record to [`UsageRecorder::record`] and wait. One writer task takes
//! whatever records are waiting (up to [`MAX_BATCH`]), inserts them in one transaction,
//! and answers every waiter once it committed; records that arrive meanwhile form the next
//! batch. Under load, batches grow and the cost of a commit (an fsync of the WAL) is
//! shared; when idle, a record is committed alone at once. A process killed after
//! answering has therefore already committed the answered request's record.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::db::Pool;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::PriceConfig;
use crate::db::usage::{write_batch, UsageRecord};
use crate::metrics::Metrics;

/// Most records committed in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Records that may wait for the writer before `record` waits to enqueue.
const QUEUE: usize = 16 * 1024;

/// Why a record could not be stored. The request it describes must not be answered as
/// if it had been.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UsageError {
    /// The batch's transaction failed; the cause was logged.
    #[error("usage could not be recorded: {0}")]
    Database(String),
    /// The writer task is gone (the server is stopping).
    #[error("usage recording has stopped")]
    Stopped,
}

enum Job {
    Record {
        record: UsageRecord,
        done: oneshot::Sender<Result<(), UsageError>>,
    },
    /// A key was used: its `last_used_at`, written with the next batch.
    Touch { key_id: String, at: DateTime<Utc> },
}

/// The handle handlers use; cheap to clone.
#[derive(Clone)]
pub struct UsageRecorder {
    jobs: mpsc::Sender<Job>,
    /// Closed when the writer task ends; see [`UsageRecorder::finished`].
    writer_running: watch::Receiver<()>,
}

/// Waits for the usage writer to end, without keeping it running (a [`UsageRecorder`]
/// would).
#[derive(Debug)]
pub struct UsageFinished(watch::Receiver<()>);

impl UsageFinished {
    /// Returns once every [`UsageRecorder`] is gone and the writer committed what was
    /// queued: on shutdown, every record of a request that ran is then stored.
    pub async fn wait(mut self) {
        while self.0.changed().await.is_ok() {}
    }
}

impl std::fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageRecorder").finish_non_exhaustive()
    }
}

impl UsageRecorder {
    /// Starts the writer task on the current Tokio runtime. It ends when every handle is
    /// dropped, after committing what was queued.
    pub fn spawn(pool: Pool, metrics: Arc<Metrics>) -> UsageRecorder {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let (running, writer_running) = watch::channel(());
        tokio::spawn(async move {
            write_batches(pool, queue, metrics).await;
            drop(running);
        });
        UsageRecorder {
            jobs,
            writer_running,
        }
    }

    /// A handle that waits for the writer to finish.
    pub fn finished(&self) -> UsageFinished {
        UsageFinished(self.writer_running.clone())
    }

    /// Stores `record`; returns once it is committed.
    pub async fn record(&self, record: UsageRecord) -> Result<(), UsageError> {
        let (done, committed) = oneshot::channel();
        self.jobs
            .send(Job::Record { record, done })
            .await
            .map_err(|_| UsageError::Stopped)?;
        committed.await.map_err(|_| UsageError::Stopped)?
    }

    /// Notes that `key_id` was used at `at`, for the key's `last_used_at`; written with
    /// the next batch, never waited for (dropped, with a log line, if the queue is full).
    pub fn touch_key(&self, key_id: &str, at: DateTime<Utc>) {
        let job = Job::Touch {
            key_id: key_id.to_owned(),
            at,
        };
        if self.jobs.try_send(job).is_err() {
            tracing::debug!(key_id, "usage queue full; last_used_at not updated");
        }
    }
}

async fn write_batches(pool: Pool, mut queue: mpsc::Receiver<Job>, metrics: Arc<Metrics>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        if queue.recv_many(&mut jobs, MAX_BATCH).await == 0 {
            return; // Every handle is gone and the queue is empty.
        }
        let mut records = Vec::with_capacity(jobs.len());
        let mut waiters = Vec::with_capacity(jobs.len());
        // The latest use of each key in the batch.
        let mut touched: HashMap<String, DateTime<Utc>> = HashMap::new();
        for job in jobs.drain(..) {
            match job {
                Job::Record { record, done } => {
                    records.push(record);
                    waiters.push(done);
                }
                Job::Touch { key_id, at } => {
                    let latest = touched.entry(key_id).or_insert(at);
                    *latest = (*latest).max(at);
                }
            }
        }
        // In key order, so two instances updating the same keys take their row locks
        // in the same order and cannot deadlock (PostgreSQL).
        let mut touched: Vec<(String, DateTime<Utc>)> = touched.into_iter().collect();
        touched.sort_unstable();
        let outcome = write_batch(&pool, &records, &touched)
            .await
            .map_err(|error| {
                tracing::error!(%error, rows = records.len(), "cannot record usage");
                UsageError::Database(error.to_string())
            });
        metrics.usage_records(records.len() as u64, outcome.is_ok());
        for done in waiters {
            // A waiter that went away (its request was cancelled) needs no answer.
            let _ = done.send(outcome.clone());
        }
    }
}

/// The estimated cost of a request from the configured `[prices]`, in US dollars.
pub fn cost_usd(
    prices: &BTreeMap<String, PriceConfig>,
    model: &str,
    prompt_tokens: u32,
    completion_tokens: u32,
) -> f64 {
    let Some(price) = prices.get(model) else {
        return 0.0;
    };
    (f64::from(prompt_tokens) * price.prompt_per_million_usd
        + f64::from(completion_tokens) * price.completion_per_million_usd)
        / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tandem_shared::Tier;

    use super::*;
    use crate::db::test_support::temp_db;
    use crate::db::{usage, users};

    fn record(user_id: &str, index: usize) -> UsageRecord {
        UsageRecord {
            request_id: format!("cmpl-{index}"),
            user_id: user_id.into(),
            key_id: "k".into(),
            endpoint: "/v1/completions".into(),
            task: "inline_completion".into(),
            provider: None,
            model: None,
            prompt_tokens: 1,
            completion_tokens: 1,
            latency_ms: 1,
            status: 200,
            cost_usd: 0.0,
            created_at: chrono::Utc::now(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_acknowledged_record_is_stored() {
        let (_dir, pool) = temp_db().await;
        let user = users::create(&pool, "a@example.com", Tier::pro())
            .await
            .unwrap();
        let recorder = Arc::new(UsageRecorder::spawn(pool.clone(), Arc::default()));
        let tasks: Vec<_> = (0..2000)
            .map(|index| {
                let (recorder, id) = (Arc::clone(&recorder), user.id.clone());
                tokio::spawn(async move { recorder.record(record(&id, index)).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(usage::count_for_user(&pool, &user.id).await.unwrap(), 2000);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_its_waiters() {
        let (_dir, pool) = temp_db().await;
        let recorder = UsageRecorder::spawn(pool.clone(), Arc::default());
        // No such user: the foreign key refuses the row.
        let error = recorder.record(record("nobody", 0)).await.unwrap_err();
        assert!(matches!(error, UsageError::Database(_)), "{error:?}");
    }

    #[tokio::test]
    async fn finished_waits_for_the_last_handle_and_the_queue() {
        let (_dir, pool) = temp_db().await;
        let user = users::create(&pool, "a@example.com", Tier::pro())
            .await
            .unwrap();
        let recorder = UsageRecorder::spawn(pool.clone(), Arc::default());
        let finished = recorder.finished();
        let (clone, user_id) = (recorder.clone(), user.id.clone());
        let late = tokio::spawn(async move { clone.record(record(&user_id, 1)).await });
        drop(recorder);
        tokio::time::timeout(std::time::Duration::from_secs(10), finished.wait())
            .await
            .expect("the writer ends once every handle is gone");
        late.await.unwrap().unwrap();
        assert_eq!(usage::count_for_user(&pool, &user.id).await.unwrap(), 1);
    }

    #[test]
    fn cost_follows_the_configured_prices() {
        let mut prices = BTreeMap::new();
        prices.insert(
            "gpt".to_owned(),
            PriceConfig {
                prompt_per_million_usd: 2.0,
                completion_per_million_usd: 8.0,
            },
        );
        assert!((cost_usd(&prices, "gpt", 500_000, 250_000) - 3.0).abs() < 1e-9);
        assert_eq!(cost_usd(&prices, "other", 1, 1), 0.0);
    }
}
