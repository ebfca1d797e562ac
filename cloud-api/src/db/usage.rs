//! The `usage` table: one row per request, written in batches, read as summaries.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::{api_keys, DbError};

/// One request, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub request_id: String,
    pub user_id: String,
    pub key_id: String,
    pub endpoint: String,
    pub task: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub latency_ms: u64,
    pub status: u16,
    pub cost_usd: f64,
    pub created_at: DateTime<Utc>,
}

/// The fixed-width text form stored, so rows sort and compare as text.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Most rows in one INSERT statement (SQLite allows 32,766 bound parameters; 13 a row).
const ROWS_PER_STATEMENT: usize = 500;

/// Inserts `records` and moves each `(key id, time)` of `touched` to the key's
/// `last_used_at` (never backwards), in one transaction.
pub async fn write_batch(
    pool: &SqlitePool,
    records: &[UsageRecord],
    touched: &[(String, DateTime<Utc>)],
) -> Result<(), DbError> {
    let mut transaction = super::begin_write(pool).await?;
    for (key_id, at) in touched {
        api_keys::touch_last_used(&mut *transaction, key_id, *at).await?;
    }
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO usage (request_id, user_id, key_id, endpoint, task, provider, model, \
             prompt_tokens, completion_tokens, latency_ms, status, cost_usd, created_at) ",
        );
        query.push_values(chunk, |mut row, record| {
            row.push_bind(&record.request_id)
                .push_bind(&record.user_id)
                .push_bind(&record.key_id)
                .push_bind(&record.endpoint)
                .push_bind(&record.task)
                .push_bind(&record.provider)
                .push_bind(&record.model)
                .push_bind(i64::from(record.prompt_tokens))
                .push_bind(i64::from(record.completion_tokens))
                .push_bind(i64::try_from(record.latency_ms).unwrap_or(i64::MAX))
                .push_bind(i64::from(record.status))
                .push_bind(record.cost_usd)
                .push_bind(timestamp(record.created_at));
        });
        query.build().execute(&mut *transaction).await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// What a user's successful requests used since two instants (the starts of the current
/// hour and day), to seed the rate limiter of an instance that just started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsedSince {
    pub requests_since_hour: u64,
    pub requests_since_day: u64,
    pub tokens_since_day: u64,
}

pub async fn used_since(
    pool: &SqlitePool,
    user_id: &str,
    hour_start: DateTime<Utc>,
    day_start: DateTime<Utc>,
) -> Result<UsedSince, DbError> {
    let (hour, day, tokens): (i64, i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(created_at >= ?), 0), COUNT(*), \
                COALESCE(SUM(prompt_tokens + completion_tokens), 0) \
         FROM usage WHERE user_id = ? AND created_at >= ? AND status < 400",
    )
    .bind(timestamp(hour_start))
    .bind(user_id)
    .bind(timestamp(day_start))
    .fetch_one(pool)
    .await?;
    let count = |value: i64| u64::try_from(value).unwrap_or(0);
    Ok(UsedSince {
        requests_since_hour: count(hour),
        requests_since_day: count(day),
        tokens_since_day: count(tokens),
    })
}

/// How [`summary`] groups rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// By UTC day, `YYYY-MM-DD`.
    Day,
    /// By model (`-` for requests no model answered).
    Model,
}

/// One group of a summary.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UsageGroup {
    pub key: String,
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
}

/// A user's usage in `[from, to)`, grouped, in key order.
pub async fn summary(
    pool: &SqlitePool,
    user_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group_by: GroupBy,
) -> Result<Vec<UsageGroup>, DbError> {
    let key = match group_by {
        GroupBy::Day => "substr(created_at, 1, 10)",
        GroupBy::Model => "COALESCE(model, '-')",
    };
    let sql = format!(
        "SELECT {key} AS key, COUNT(*) AS requests, \
                COALESCE(SUM(status >= 400), 0) AS errors, \
                COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens, \
                COALESCE(SUM(completion_tokens), 0) AS completion_tokens, \
                COALESCE(SUM(cost_usd), 0.0) AS cost_usd \
         FROM usage WHERE user_id = ? AND created_at >= ? AND created_at < ? \
         GROUP BY key ORDER BY key"
    );
    Ok(sqlx::query_as(&sql)
        .bind(user_id)
        .bind(timestamp(from))
        .bind(timestamp(to))
        .fetch_all(pool)
        .await?)
}

/// Number of rows of a user (tests and administration).
pub async fn count_for_user(pool: &SqlitePool, user_id: &str) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM usage WHERE user_id = ?")
            .bind(user_id)
            .fetch_one(pool)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use tandem_shared::Tier;

    use super::*;
    use crate::db::test_support::temp_db;
    use crate::db::users;

    fn record(user_id: &str, at: &str, model: &str, status: u16) -> UsageRecord {
        UsageRecord {
            request_id: "cmpl-1".into(),
            user_id: user_id.into(),
            key_id: "k".into(),
            endpoint: "/v1/completions".into(),
            task: "inline_completion".into(),
            provider: Some("p".into()),
            model: Some(model.into()),
            prompt_tokens: 10,
            completion_tokens: 5,
            latency_ms: 3,
            status,
            cost_usd: 0.5,
            created_at: at.parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn batches_are_summarised_by_day_and_model() {
        let (_dir, pool) = temp_db().await;
        let user = users::create(&pool, "a@example.com", Tier::pro())
            .await
            .unwrap();
        let id = user.id.as_str();
        let rows: Vec<UsageRecord> = (0..1200)
            .map(|index| {
                let day = if index < 1000 { "02" } else { "03" };
                let model = if index % 2 == 0 { "m1" } else { "m2" };
                let status = if index == 5 { 502 } else { 200 };
                record(id, &format!("2026-12-{day}T10:00:00Z"), model, status)
            })
            .collect();
        write_batch(&pool, &rows, &[]).await.unwrap();
        assert_eq!(count_for_user(&pool, id).await.unwrap(), 1200);

        let from = "2026-12-01T00:00:00Z".parse().unwrap();
        let to = "2026-12-04T00:00:00Z".parse().unwrap();
        let days = summary(&pool, id, from, to, GroupBy::Day).await.unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(
            (days[0].key.as_str(), days[0].requests, days[0].errors),
            ("2026-12-02", 1000, 1)
        );
        assert_eq!(days[1].prompt_tokens, 2000);
        let models = summary(&pool, id, from, to, GroupBy::Model).await.unwrap();
        assert_eq!(models.iter().map(|g| g.requests).sum::<i64>(), 1200);
        assert!((models[0].cost_usd - 300.0).abs() < 1e-6);

        let used = used_since(
            &pool,
            id,
            "2026-12-03T10:00:00Z".parse().unwrap(),
            "2026-12-03T00:00:00Z".parse().unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(
            used,
            UsedSince {
                requests_since_hour: 200,
                requests_since_day: 200,
                tokens_since_day: 3000
            }
        );
    }
}
