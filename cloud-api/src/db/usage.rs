//! The `usage` table: one row per request, written in batches, read as summaries.

use chrono::{DateTime, Utc};

use super::{api_keys, on, Backend, DbError, Pool, Timestamp};

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

/// Most rows in one INSERT statement (SQLite allows 32,766 bound parameters,
/// PostgreSQL 65,535; 13 a row).
const ROWS_PER_STATEMENT: usize = 500;

/// Columns of an inserted row.
const COLUMNS: usize = 13;

/// `($1, …, $13), ($14, …)`: the VALUES of an insert of `rows` rows.
fn values_placeholders(rows: usize) -> String {
    (0..rows)
        .map(|row| {
            let columns: Vec<String> = (1..=COLUMNS)
                .map(|column| format!("${}", row * COLUMNS + column))
                .collect();
            format!("({})", columns.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts `records` and moves each `(key id, time)` of `touched` to the key's
/// `last_used_at` (never backwards), in one transaction.
pub async fn write_batch(
    pool: &Pool,
    records: &[UsageRecord],
    touched: &[(String, DateTime<Utc>)],
) -> Result<(), DbError> {
    // Plain inserts and forward-only updates: no need to serialise with other writers.
    let mut transaction = super::begin(pool).await?;
    for (key_id, at) in touched {
        api_keys::touch_last_used(&mut transaction, key_id, *at).await?;
    }
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO usage (request_id, user_id, key_id, endpoint, task, provider, model, \
             prompt_tokens, completion_tokens, latency_ms, status, cost_usd, created_at) \
             VALUES {}",
            values_placeholders(chunk.len())
        );
        on!(
            &mut transaction,
            {
                let mut query = sqlx::query(&sql);
                for record in chunk {
                    query = query
                        .bind(&record.request_id)
                        .bind(&record.user_id)
                        .bind(&record.key_id)
                        .bind(&record.endpoint)
                        .bind(&record.task)
                        .bind(&record.provider)
                        .bind(&record.model)
                        .bind(i64::from(record.prompt_tokens))
                        .bind(i64::from(record.completion_tokens))
                        .bind(i64::try_from(record.latency_ms).unwrap_or(i64::MAX))
                        .bind(i64::from(record.status))
                        .bind(record.cost_usd)
                        .bind(Timestamp(record.created_at));
                }
                query
            },
            execute
        )?;
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
    pool: &Pool,
    user_id: &str,
    hour_start: DateTime<Utc>,
    day_start: DateTime<Utc>,
) -> Result<UsedSince, DbError> {
    // Sums cast to BIGINT: PostgreSQL's SUM of a BIGINT column is NUMERIC.
    let (hour, day, tokens): (i64, i64, i64) = on!(
        pool,
        sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN created_at >= $1 THEN 1 ELSE 0 END), 0) \
             AS BIGINT), \
             COUNT(*), \
             CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT) \
             FROM usage WHERE user_id = $2 AND created_at >= $3 AND status < 400",
        )
        .bind(Timestamp(hour_start))
        .bind(user_id)
        .bind(Timestamp(day_start)),
        fetch_one
    )?;
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
    pool: &Pool,
    user_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group_by: GroupBy,
) -> Result<Vec<UsageGroup>, DbError> {
    let key = match group_by {
        GroupBy::Day => created_day(pool.backend()),
        GroupBy::Model => "COALESCE(model, '-')",
    };
    let sql = format!(
        "SELECT {key} AS key, COUNT(*) AS requests, \
         CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) \
         AS errors, \
         CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
         CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
         CAST(COALESCE(SUM(cost_usd), 0.0) AS DOUBLE PRECISION) AS cost_usd \
         FROM usage WHERE user_id = $1 AND created_at >= $2 AND created_at < $3 \
         GROUP BY 1 ORDER BY 1"
    );
    Ok(on!(
        pool,
        sqlx::query_as(&sql)
            .bind(user_id)
            .bind(Timestamp(from))
            .bind(Timestamp(to)),
        fetch_all
    )?)
}

/// SQL for the UTC day (`YYYY-MM-DD`) of `usage.created_at`.
pub(crate) fn created_day(backend: Backend) -> &'static str {
    match backend {
        // The fixed-width text's first ten characters (see [`Timestamp`]).
        Backend::Sqlite => "substr(created_at, 1, 10)",
        Backend::Postgres => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    }
}

/// Number of rows of a user (tests and administration).
pub async fn count_for_user(pool: &Pool, user_id: &str) -> Result<i64, DbError> {
    Ok(on!(
        pool,
        sqlx::query_scalar("SELECT COUNT(*) FROM usage WHERE user_id = $1").bind(user_id),
        fetch_one
    )?)
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
