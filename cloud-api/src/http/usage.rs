//! `GET /v1/usage?from=&to=&group_by=day|model`: the caller's own usage, summed per UTC
//! day or per model. `from` and `to` are RFC 3339 instants or `YYYY-MM-DD` dates (UTC
//! midnight); `to` is exclusive. Defaults: the 30 UTC days up to and including today,
//! by day.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, DurationRound, NaiveDate, SecondsFormat, TimeDelta, Utc};
use tandem_shared::{UsageGroupInfo, UsageResponse};

use crate::db::usage::{self, GroupBy, UsageGroup};
use crate::error::AppError;
use crate::extract::AuthUser;
use crate::state::AppState;

/// Longest period one query may cover.
const MAX_DAYS: i64 = 366;
/// The period when `from` is not given.
const DEFAULT_DAYS: i64 = 30;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/usage", get(handle_usage))
}

/// A query's period and grouping, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: GroupBy,
}

impl UsageQuery {
    /// Reads `from`, `to` and `group_by` as of `now`; anything else in the query is an
    /// error too, so a misspelt parameter is not silently ignored.
    pub fn parse(
        params: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<UsageQuery, String> {
        if let Some(unknown) = params
            .keys()
            .find(|name| !["from", "to", "group_by"].contains(&name.as_str()))
        {
            return Err(format!(
                "unknown query parameter `{unknown}` (expected from, to, group_by)"
            ));
        }
        let to = match params.get("to") {
            Some(text) => instant("to", text)?,
            // The end of today (UTC), so records of this very instant are included.
            None => {
                now.duration_trunc(TimeDelta::days(1))
                    .map_err(|error| error.to_string())?
                    + TimeDelta::days(1)
            }
        };
        let from = match params.get("from") {
            Some(text) => instant("from", text)?,
            None => to - TimeDelta::days(DEFAULT_DAYS),
        };
        if from >= to {
            return Err("`from` must be before `to`".to_owned());
        }
        if to - from > TimeDelta::days(MAX_DAYS) {
            return Err(format!("the period may cover at most {MAX_DAYS} days"));
        }
        let group_by = match params.get("group_by").map(String::as_str) {
            None | Some("day") => GroupBy::Day,
            Some("model") => GroupBy::Model,
            Some(other) => {
                return Err(format!(
                    "`group_by` must be `day` or `model`, got `{other}`"
                ))
            }
        };
        Ok(UsageQuery { from, to, group_by })
    }
}

fn instant(name: &str, text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|midnight| midnight.and_utc())
        .ok_or_else(|| {
            format!("`{name}` must be an RFC 3339 time or a YYYY-MM-DD date, got `{text}`")
        })
}

/// The response body for `groups` of `query`.
pub fn response(query: &UsageQuery, groups: Vec<UsageGroup>) -> UsageResponse {
    let count = |value: i64| u64::try_from(value).unwrap_or(0);
    let groups: Vec<UsageGroupInfo> = groups
        .into_iter()
        .map(|group| UsageGroupInfo {
            key: group.key,
            requests: count(group.requests),
            errors: count(group.errors),
            prompt_tokens: count(group.prompt_tokens),
            completion_tokens: count(group.completion_tokens),
            cost_usd: group.cost_usd,
        })
        .collect();
    let mut total = UsageGroupInfo {
        key: "total".to_owned(),
        requests: 0,
        errors: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_usd: 0.0,
    };
    for group in &groups {
        total.requests += group.requests;
        total.errors += group.errors;
        total.prompt_tokens += group.prompt_tokens;
        total.completion_tokens += group.completion_tokens;
        total.cost_usd += group.cost_usd;
    }
    UsageResponse {
        from: query.from.to_rfc3339_opts(SecondsFormat::Secs, true),
        to: query.to.to_rfc3339_opts(SecondsFormat::Secs, true),
        group_by: match query.group_by {
            GroupBy::Day => "day",
            GroupBy::Model => "model",
        }
        .to_owned(),
        groups,
        total,
    }
}

/// The caller's own usage over a period, summed per UTC day or per model.
///
/// Requests, errors, prompt and completion tokens and the estimated cost, per group,
/// with their total. Any other query parameter is refused, so a misspelt one is not
/// silently ignored.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "account",
    operation_id = "get_usage",
    security(("bearer" = [])),
    params(
        ("from" = Option<String>, Query, description = "Start, inclusive: an RFC 3339 time or a `YYYY-MM-DD` date (UTC midnight). Default: 30 days before `to`."),
        ("to" = Option<String>, Query, description = "End, exclusive, in the same forms. Default: the end of today (UTC). At most 366 days after `from`."),
        ("group_by" = Option<String>, Query, description = "`day` (the default) or `model`."),
    ),
    responses(
        (status = 200, description = "The usage per group and in total.", body = tandem_shared::UsageResponse),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 422, description = "`invalid_request`: a parameter is malformed or unknown, `from` is not before `to`, or the period is over 366 days.", body = tandem_shared::ErrorBody),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
    )
)]
async fn handle_usage(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<UsageResponse>, AppError> {
    let query = UsageQuery::parse(&params, Utc::now()).map_err(AppError::InvalidRequest)?;
    let groups = usage::summary(
        &state.db,
        &caller.user.id,
        query.from,
        query.to,
        query.group_by,
    )
    .await
    .map_err(AppError::internal)?;
    Ok(Json(response(&query, groups)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<UsageQuery, String> {
        let params = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        UsageQuery::parse(&params, "2026-12-03T12:00:00Z".parse().unwrap())
    }

    #[test]
    fn defaults_and_dates() {
        let query = parse(&[]).unwrap();
        assert_eq!(
            query.to,
            "2026-12-04T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(query.to - query.from, TimeDelta::days(30));
        assert_eq!(query.group_by, GroupBy::Day);
        let query = parse(&[
            ("from", "2026-12-01"),
            ("to", "2026-12-03T00:00:00Z"),
            ("group_by", "model"),
        ])
        .unwrap();
        assert_eq!(
            query.from,
            "2026-12-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(query.group_by, GroupBy::Model);
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        for (pairs, expected) in [
            (
                &[("from", "yesterday")][..],
                "`from` must be an RFC 3339 time",
            ),
            (
                &[("group_by", "week")][..],
                "`group_by` must be `day` or `model`",
            ),
            (
                &[("from", "2026-12-03"), ("to", "2026-12-01")][..],
                "must be before",
            ),
            (&[("from", "2020-01-01")][..], "at most 366 days"),
            (
                &[("form", "2026-12-01")][..],
                "unknown query parameter `form`",
            ),
        ] {
            let error = parse(pairs).unwrap_err();
            assert!(error.contains(expected), "{pairs:?}: {error}");
        }
    }
}
