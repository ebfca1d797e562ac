//! Deployment-wide figures over a period, from the `users` and `usage` tables: for the
//! dashboard and for operators without Prometheus (`GET /admin/stats`).

use super::{on, DbError, Pool, Timestamp};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Requests and errors of one feature or provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Breakdown {
    /// The feature (`inline_completion`, `chat`, ...) or the provider (`-`: none answered).
    pub key: String,
    pub requests: i64,
    /// Answers with a status of 400 or more.
    pub errors: i64,
}

/// Latency percentiles in milliseconds (nearest rank); `None` without requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Latency {
    pub p50: Option<i64>,
    pub p90: Option<i64>,
    pub p99: Option<i64>,
    pub max: Option<i64>,
}

/// Figures of `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Every user, whenever created.
    pub users: i64,
    /// Users with at least one request in the period.
    pub active_users: i64,
    pub requests: i64,
    pub errors: i64,
    pub by_feature: Vec<Breakdown>,
    pub by_provider: Vec<Breakdown>,
    pub latency_ms: Latency,
}

pub async fn over(pool: &Pool, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Stats, DbError> {
    let (from, to) = (Timestamp(from), Timestamp(to));
    let users: i64 = on!(
        pool,
        sqlx::query_scalar("SELECT COUNT(*) FROM users"),
        fetch_one
    )?;
    // Sums cast to BIGINT: PostgreSQL's SUM of integers is NUMERIC.
    let (active_users, requests, errors): (i64, i64, i64) = on!(
        pool,
        sqlx::query_as(
            "SELECT COUNT(DISTINCT user_id), COUNT(*), \
             CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM usage WHERE created_at >= $1 AND created_at < $2",
        )
        .bind(from)
        .bind(to),
        fetch_one
    )?;
    let breakdown = |column: &str| {
        format!(
            "SELECT {column} AS key, COUNT(*) AS requests, \
             CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) \
             AS BIGINT) AS errors \
             FROM usage WHERE created_at >= $1 AND created_at < $2 \
             GROUP BY 1 ORDER BY 2 DESC, 1"
        )
    };
    let by_feature: Vec<Breakdown> = on!(
        pool,
        sqlx::query_as(&breakdown("task")).bind(from).bind(to),
        fetch_all
    )?;
    let by_provider: Vec<Breakdown> = on!(
        pool,
        sqlx::query_as(&breakdown("COALESCE(provider, '-')"))
            .bind(from)
            .bind(to),
        fetch_all
    )?;
    // Nearest rank: the value at position ceil(p * n) of the sorted latencies.
    let rank = |fraction: f64| -> i64 {
        let position = (fraction * requests as f64).ceil() as i64;
        position.clamp(1, requests.max(1)) - 1
    };
    let mut percentiles = Vec::with_capacity(4);
    for fraction in [0.5, 0.9, 0.99, 1.0] {
        let value: Option<i64> = if requests == 0 {
            None
        } else {
            on!(
                pool,
                sqlx::query_scalar(
                    "SELECT latency_ms FROM usage WHERE created_at >= $1 AND created_at < $2 \
                     ORDER BY latency_ms LIMIT 1 OFFSET $3",
                )
                .bind(from)
                .bind(to)
                .bind(rank(fraction)),
                fetch_optional
            )?
        };
        percentiles.push(value);
    }
    Ok(Stats {
        users,
        active_users,
        requests,
        errors,
        by_feature,
        by_provider,
        latency_ms: Latency {
            p50: percentiles[0],
            p90: percentiles[1],
            p99: percentiles[2],
            max: percentiles[3],
        },
    })
}

#[cfg(test)]
mod tests {
    use tandem_shared::Tier;

    use super::*;

    #[tokio::test]
    async fn figures_of_a_period() {
        let (_db, pool) = crate::db::test_support::temp_db().await;
        let ada = crate::db::users::create(&pool, "ada@example.com", Tier::pro())
            .await
            .unwrap();
        crate::db::users::create(&pool, "bob@example.com", Tier::free())
            .await
            .unwrap();
        let at = "2026-12-01T10:00:00.000Z";
        for (index, (task, provider, status)) in [
            ("inline_completion", Some("ollama"), 200),
            ("inline_completion", Some("ollama"), 200),
            ("inline_completion", None, 503),
            ("chat", Some("openai"), 200),
        ]
        .into_iter()
        .enumerate()
        {
            on!(
                &pool,
                sqlx::query(
                    "INSERT INTO usage (request_id, user_id, key_id, endpoint, task, provider, \
                     latency_ms, status, created_at) VALUES ($1, $2, 'k', '/v1/x', $3, $4, \
                     $5, $6, $7)",
                )
                .bind(format!("r{index}"))
                .bind(&ada.id)
                .bind(task)
                .bind(provider)
                .bind(10 * (index as i64 + 1))
                .bind(i64::from(status))
                .bind(Timestamp(at.parse().unwrap())),
                execute
            )
            .unwrap();
        }
        let from = "2026-12-01T00:00:00Z".parse().unwrap();
        let to = "2026-12-02T00:00:00Z".parse().unwrap();
        let stats = over(&pool, from, to).await.unwrap();
        assert_eq!(
            (
                stats.users,
                stats.active_users,
                stats.requests,
                stats.errors
            ),
            (2, 1, 4, 1)
        );
        assert_eq!(
            stats.by_feature,
            vec![
                Breakdown {
                    key: "inline_completion".into(),
                    requests: 3,
                    errors: 1
                },
                Breakdown {
                    key: "chat".into(),
                    requests: 1,
                    errors: 0
                },
            ]
        );
        assert_eq!(stats.by_provider[0].key, "ollama");
        assert!(stats.by_provider.iter().any(|group| group.key == "-"));
        assert_eq!(
            stats.latency_ms,
            Latency {
                p50: Some(20),
                p90: Some(40),
                p99: Some(40),
                max: Some(40)
            }
        );
        let empty = over(&pool, to, to + chrono::Duration::days(1))
            .await
            .unwrap();
        assert_eq!((empty.requests, empty.latency_ms.p50), (0, None));
    }
}
