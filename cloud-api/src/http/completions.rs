//! `POST /v1/completions`: validate the request, check it against the caller's tier
//! (feature, context and file size, provider, rate limits and quotas), ask the first
//! provider the tier allows, report usage and the quota left.

use std::path::Component;
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use tandem_shared::tokens::estimate;
use tandem_shared::{CodeContext, CompletionRequest, Scope, Snippet, Usage};

use super::quota_headers;
use super::streaming::{self, Answer};
use crate::db::usage::UsageRecord;
use crate::error::AppError;
use crate::extract::{AuthUser, ValidJson, Validate};
use crate::providers::ProviderCompletion;
use crate::rate_limit::{AdmitError, Receipt, Seed};
use crate::routing::{Attempt, ModelRequest, RoutePlan, RoutedCompletion, RoutingFailure, Task};
use crate::state::AppState;
use crate::tiers::{Feature, TierPolicy};
use crate::usage::cost_usd;

/// Largest `max_tokens` a request may ask for.
pub(crate) const MAX_TOKENS_LIMIT: u32 = 4096;
/// Most stop sequences a request may send (OpenAI's limit).
const MAX_STOP_SEQUENCES: usize = 4;
/// Longest stop sequence, in characters.
const MAX_STOP_CHARS: usize = 64;
/// Longest language id.
const MAX_LANGUAGE_CHARS: usize = 64;
/// Longest path.
const MAX_PATH_CHARS: usize = 4096;
/// Most entries in each list of `context` (scopes, imports, definitions, similar,
/// recent edits): far more than fits any tier's budget, so only a broken or hostile
/// client reaches it.
const MAX_CONTEXT_ITEMS: usize = 64;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/completions", post(handle_completions))
}

impl Validate for CompletionRequest {
    fn validate(&self) -> Result<(), String> {
        validate_language(&self.language)?;
        validate_path("`path`", &self.path)?;
        validate_sampling(self.max_tokens, self.temperature)?;
        if self.stop.len() > MAX_STOP_SEQUENCES {
            return Err(format!(
                "`stop` may hold at most {MAX_STOP_SEQUENCES} sequences, got {}",
                self.stop.len()
            ));
        }
        for sequence in &self.stop {
            if sequence.is_empty() {
                return Err("`stop` sequences must not be empty".to_owned());
            }
            if sequence.chars().count() > MAX_STOP_CHARS {
                return Err(format!(
                    "`stop` sequences must be at most {MAX_STOP_CHARS} characters"
                ));
            }
        }
        validate_context(&self.context)
    }
}

/// An LSP language id: not empty, bounded, no spaces.
pub(super) fn validate_language(language: &str) -> Result<(), String> {
    let language = language.trim();
    if language.is_empty() {
        return Err("`language` must not be empty".to_owned());
    }
    if language.chars().count() > MAX_LANGUAGE_CHARS
        || language
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`language` must be an LSP language id (at most {MAX_LANGUAGE_CHARS} characters, no spaces)"
        ));
    }
    Ok(())
}

/// `max_tokens` and `temperature` within what every provider accepts.
pub(super) fn validate_sampling(
    max_tokens: Option<u32>,
    temperature: Option<f32>,
) -> Result<(), String> {
    if let Some(max_tokens) = max_tokens {
        if !(1..=MAX_TOKENS_LIMIT).contains(&max_tokens) {
            return Err(format!(
                "`max_tokens` must be between 1 and {MAX_TOKENS_LIMIT}, got {max_tokens}"
            ));
        }
    }
    if let Some(temperature) = temperature {
        if !(0.0..=2.0).contains(&temperature) {
            return Err(format!(
                "`temperature` must be between 0 and 2, got {temperature}"
            ));
        }
    }
    Ok(())
}

/// Bounded lists, no NUL (it ends strings in some model servers and is never code), and
/// snippet paths held to the same rules as `path`.
pub(super) fn validate_context(context: &CodeContext) -> Result<(), String> {
    let lines = [
        ("context.scopes", &context.scopes),
        ("context.imports", &context.imports),
    ];
    for (field, items) in lines {
        check_count(field, items.len(), "entries")?;
        for (index, item) in items.iter().enumerate() {
            check_no_nul(&format!("`{field}[{index}]`"), item)?;
        }
    }
    let snippets = [
        ("context.definitions", &context.definitions),
        ("context.similar", &context.similar),
        ("context.recent_edits", &context.recent_edits),
    ];
    for (field, items) in snippets {
        check_count(field, items.len(), "snippets")?;
        for (index, Snippet { path, text }) in items.iter().enumerate() {
            validate_path(&format!("`{field}[{index}].path`"), path)?;
            check_no_nul(&format!("`{field}[{index}].text`"), text)?;
        }
    }
    Ok(())
}

fn check_count(field: &str, count: usize, what: &str) -> Result<(), String> {
    if count > MAX_CONTEXT_ITEMS {
        return Err(format!(
            "`{field}` may hold at most {MAX_CONTEXT_ITEMS} {what}, got {count}"
        ));
    }
    Ok(())
}

pub(super) fn check_no_nul(field: &str, text: &str) -> Result<(), String> {
    if text.contains('\0') {
        return Err(format!("{field} must not contain NUL characters"));
    }
    Ok(())
}

/// Paths are workspace-relative and `/`-separated; anything that could name a file
/// outside the workspace is refused. An empty path (an unsaved buffer) is allowed.
/// `field` is the name used in messages, quoted: `` `path` ``.
pub(super) fn validate_path(field: &str, path: &str) -> Result<(), String> {
    if path.chars().count() > MAX_PATH_CHARS {
        return Err(format!(
            "{field} must be at most {MAX_PATH_CHARS} characters"
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    let looks_absolute = path.starts_with('/')
        || path.starts_with('\\')
        // Windows drive (`C:`) paths, checked on every platform.
        || path.as_bytes().get(1) == Some(&b':')
        || std::path::Path::new(path).has_root();
    if looks_absolute {
        return Err(format!(
            "{field} must be relative to the workspace root, got `{path}`"
        ));
    }
    let has_parent = path.split(['/', '\\']).any(|segment| segment == "..")
        || std::path::Path::new(path)
            .components()
            .any(|component| component == Component::ParentDir);
    if has_parent {
        return Err(format!("{field} must not contain `..`, got `{path}`"));
    }
    Ok(())
}

/// Estimated size of what the request asks the model to read; the language server
/// measures its budget with the same shared function.
pub(crate) fn estimated_prompt_tokens(request: &CompletionRequest) -> u32 {
    request.estimated_tokens()
}

/// The tier's context limit: the one place a too-large request is refused.
fn check_context_budget(request_tokens: u32, policy: &TierPolicy) -> Result<(), AppError> {
    if request_tokens > policy.max_context_tokens {
        return Err(AppError::ContextTooLarge {
            estimated_tokens: request_tokens,
            limit: policy.max_context_tokens,
            tier: policy.name.clone(),
        });
    }
    Ok(())
}

/// The tier's file-size limit, for clients that say how large the document is.
fn check_file_size(file_size: Option<u64>, policy: &TierPolicy) -> Result<(), AppError> {
    match file_size {
        Some(size) if size > policy.max_file_size_bytes() => Err(AppError::FileTooLarge {
            size,
            limit_mb: policy.max_file_size_mb,
            tier: policy.name.clone(),
        }),
        _ => Ok(()),
    }
}

/// Refuses a feature the tier does not include, naming a tier that does.
pub(crate) fn require_feature(
    state: &AppState,
    policy: &TierPolicy,
    feature: Feature,
) -> Result<(), AppError> {
    if policy.allows_feature(feature) {
        return Ok(());
    }
    Err(AppError::FeatureNotAllowed {
        feature,
        tier: policy.name.clone(),
        required_tier: state
            .tiers
            .cheapest_with_feature(feature)
            .map(|tier| tier.name.clone()),
    })
}

/// The providers that answer this tier's requests for `task`, in order of preference:
/// its `[routing.<tier>]` list, or the providers it may use in configuration order.
fn plan_route(state: &AppState, policy: &TierPolicy, task: Task) -> Result<RoutePlan, AppError> {
    if let Some(plan) = state.router.plan(policy, task) {
        return Ok(plan);
    }
    if task == Task::Chat && !state.providers.iter().any(|provider| provider.can_chat()) {
        return Err(AppError::NoChatProvider);
    }
    // Name a tier that could use one of the configured providers.
    let required_tier = state.providers.iter().find_map(|provider| {
        let kind = state.provider_kind(provider.name());
        state
            .tiers
            .cheapest_with_provider(provider.name(), kind)
            .map(|tier| tier.name.clone())
    });
    Err(AppError::ProviderNotAllowed {
        tier: policy.name.clone(),
        required_tier,
    })
}

/// Completes the code at the cursor.
///
/// The request is checked against the caller's tier in this order: the `completions`
/// scope and the `inline_completion` feature (403), the context and file size (422, 413),
/// a provider the tier may use (403), then the burst limit and the quotas (429). The first
/// provider of the tier's route answers; a failing one is replaced by the next within the
/// completion budget. With `"stream": true` the answer is `text/event-stream`: `delta`
/// events with text as the model writes it, then one `done` event whose data is this
/// response (or `error` with an `ErrorBody` if the answer broke off).
#[utoipa::path(
    post,
    path = "/v1/completions",
    tag = "model",
    operation_id = "create_completion",
    security(("bearer" = ["completions"])),
    request_body(content = CompletionRequest, description = "The code around the cursor, cut to budget by the client."),
    responses(
        (status = 200, description = "The completion, with what is left of the caller's quotas in the headers.",
            headers(
                ("RateLimit-Policy" = String, description = "The request quotas, as in the IETF RateLimit draft: `\"hour\";q=500;w=3600, \"day\";q=2000;w=86400`."),
                ("RateLimit" = String, description = "What is left of each request quota and the seconds until it resets: `\"hour\";r=499;t=1830, \"day\";r=1999;t=48630`."),
                ("Tandem-Tokens-Limit" = u64, description = "The daily token budget (prompt plus completion tokens)."),
                ("Tandem-Tokens-Remaining" = u64, description = "Tokens left of the daily budget."),
                ("Tandem-Tokens-Reset" = u64, description = "Seconds until the token budget resets."),
            ),
            content(
                (tandem_shared::CompletionResponse = "application/json"),
                (String = "text/event-stream", example = json!(super::openapi::describe::COMPLETION_STREAM_EXAMPLE)),
            )),
        (status = 400, description = super::openapi::describe::MALFORMED_BODY, body = tandem_shared::ErrorBody),
        (status = 401, description = super::openapi::describe::UNAUTHORIZED, body = tandem_shared::ErrorBody),
        (status = 403, description = super::openapi::describe::MODEL_FORBIDDEN, body = tandem_shared::ErrorBody),
        (status = 413, description = super::openapi::describe::MODEL_TOO_LARGE, body = tandem_shared::ErrorBody),
        (status = 415, description = super::openapi::describe::UNSUPPORTED_MEDIA_TYPE, body = tandem_shared::ErrorBody),
        (status = 422, description = super::openapi::describe::MODEL_INVALID, body = tandem_shared::ErrorBody),
        (status = 429, description = super::openapi::describe::RATE_LIMITED, body = tandem_shared::ErrorBody,
            headers(
                ("Retry-After" = u64, description = "Seconds until a retry can succeed."),
                ("RateLimit-Policy" = String, description = "The request quotas, as in the IETF RateLimit draft: `\"hour\";q=500;w=3600, \"day\";q=2000;w=86400`."),
                ("RateLimit" = String, description = "What is left of each request quota and the seconds until it resets: `\"hour\";r=499;t=1830, \"day\";r=1999;t=48630`."),
                ("Tandem-Tokens-Limit" = u64, description = "The daily token budget (prompt plus completion tokens)."),
                ("Tandem-Tokens-Remaining" = u64, description = "Tokens left of the daily budget."),
                ("Tandem-Tokens-Reset" = u64, description = "Seconds until the token budget resets."),
            )),
        (status = 500, description = super::openapi::describe::INTERNAL, body = tandem_shared::ErrorBody),
        (status = 502, description = super::openapi::describe::PROVIDER_ERROR, body = tandem_shared::ErrorBody),
        (status = 503, description = super::openapi::describe::PROVIDER_UNAVAILABLE, body = tandem_shared::ErrorBody),
        (status = 504, description = super::openapi::describe::PROVIDER_TIMEOUT, body = tandem_shared::ErrorBody),
    )
)]
async fn handle_completions(
    State(state): State<AppState>,
    caller: AuthUser,
    ValidJson(request): ValidJson<CompletionRequest>,
) -> Result<Response, AppError> {
    let started = Instant::now();
    let record = usage_record(
        &caller,
        format!("cmpl-{}", uuid::Uuid::new_v4()),
        ENDPOINT,
        Feature::InlineCompletion.as_str(),
    );
    let ask = Ask {
        feature: Feature::InlineCompletion,
        request_tokens: estimated_prompt_tokens(&request),
        file_size: request.file_size,
    };
    let model_request = ModelRequest::Completion(&request);
    let reply = Reply {
        answer: Answer::Completion,
        stream: request.stream,
    };
    serve(&state, &caller, ask, model_request, reply, record, started).await
}

/// How a request wants its answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reply {
    pub answer: Answer,
    /// As server-sent events.
    pub stream: bool,
}

/// The course of every model request: admission, the providers' answer (streamed or
/// whole), and its usage record, committed before a whole answer leaves (a stream
/// commits its own when it ends).
pub(super) async fn serve(
    state: &AppState,
    caller: &AuthUser,
    ask: Ask,
    request: ModelRequest<'_>,
    reply: Reply,
    mut record: UsageRecord,
    started: Instant,
) -> Result<Response, AppError> {
    let result = match admit(state, caller, ask).await {
        Ok(admitted) if reply.stream => {
            match streaming::start(state, caller, request, reply.answer, admitted, &mut record)
                .await
            {
                Ok(response) => return Ok(response),
                Err(error) => Err(error),
            }
        }
        Ok(admitted) => whole(state, caller, request, reply.answer, admitted, &mut record).await,
        Err(error) => Err(error),
    };
    settle(state, record, started, result).await
}

/// Asks the providers for the whole answer and fills in `record` with what happened.
async fn whole(
    state: &AppState,
    caller: &AuthUser,
    request: ModelRequest<'_>,
    answer: Answer,
    admitted: Admitted<'_>,
    record: &mut UsageRecord,
) -> Result<Response, AppError> {
    let plan = &admitted.plan;
    let routed = state
        .router
        .answer_with_fallback(plan, request, plan.budget())
        .await;
    let (routed, usage) = accounted(state, caller, &admitted, record, routed).await?;
    let body = answer.body(
        record.request_id.clone(),
        routed.provider,
        routed.completion,
        usage,
    );
    Ok(with_quota(state, caller, &admitted, Json(body)).await)
}

/// The usage record of a request to `endpoint`, before anything is known of its answer.
pub(super) fn usage_record(
    caller: &AuthUser,
    request_id: String,
    endpoint: &str,
    task: &str,
) -> UsageRecord {
    UsageRecord {
        request_id,
        user_id: caller.user.id.clone(),
        key_id: caller.key_id.clone(),
        endpoint: endpoint.to_owned(),
        task: task.to_owned(),
        provider: None,
        model: None,
        prompt_tokens: 0,
        completion_tokens: 0,
        latency_ms: 0,
        status: 200,
        cost_usd: 0.0,
        created_at: Utc::now(),
    }
}

/// Commits `record` with the answer's status and latency, then lets the answer go:
/// durable before it leaves, so an answered request is always accounted for.
pub(super) async fn settle(
    state: &AppState,
    mut record: UsageRecord,
    started: Instant,
    result: Result<Response, AppError>,
) -> Result<Response, AppError> {
    record.latency_ms = started.elapsed().as_millis() as u64;
    record.status = match &result {
        Ok(_) => 200,
        Err(error) => error.status_code().as_u16(),
    };
    state
        .usage
        .record(record)
        .await
        .map_err(|error| AppError::NotReady {
            public: "usage could not be recorded".to_owned(),
            cause: Box::new(error),
        })?;
    result
}

/// The route's path, as usage records name it.
const ENDPOINT: &str = "/v1/completions";

/// A request that passed the tier's checks and was counted against its limits.
pub(super) struct Admitted<'a> {
    pub policy: &'a TierPolicy,
    pub plan: RoutePlan,
    /// The estimated prompt size, used when the provider reports none.
    pub request_tokens: u32,
    /// What admission took (the estimated prompt's tokens, one request), to settle or
    /// refund.
    pub receipt: Receipt,
}

impl Admitted<'_> {
    pub fn reservation(&self) -> Reservation {
        Reservation {
            request_tokens: self.request_tokens,
            receipt: self.receipt,
        }
    }
}

/// What admission took from the token budget, settled when the answer is complete.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reservation {
    /// The estimated prompt size, used when the provider reports none.
    pub request_tokens: u32,
    /// The tokens taken from the daily budget until the answer says how many were used.
    pub receipt: Receipt,
}

/// What admission checks a request by.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ask {
    pub feature: Feature,
    /// The estimated prompt size ([`CompletionRequest::estimated_tokens`] and the like).
    pub request_tokens: u32,
    /// The document's size, when the client says it.
    pub file_size: Option<u64>,
}

/// Checks a request against the caller's tier (feature, context, file size, providers)
/// and counts it against their limits.
pub(super) async fn admit<'a>(
    state: &'a AppState,
    caller: &AuthUser,
    ask: Ask,
) -> Result<Admitted<'a>, AppError> {
    caller.require(match ask.feature {
        Feature::InlineCompletion => Scope::Completions,
        Feature::Chat | Feature::Explanation | Feature::CodeActions => Scope::Chat,
    })?;
    let policy = state.policy(&caller.user.tier)?;
    require_feature(state, policy, ask.feature)?;
    let request_tokens = ask.request_tokens;
    check_context_budget(request_tokens, policy)?;
    check_file_size(ask.file_size, policy)?;
    let plan = plan_route(state, policy, Task::for_feature(ask.feature))?;

    let now = Utc::now();
    let user_id = &caller.user.id;
    let admitted = state
        .limits
        .admit(user_id, policy, u64::from(request_tokens), now, || {
            used_this_hour_and_day(state, user_id, now)
        })
        .await
        .map_err(|error| match error {
            AdmitError::Limited(rejection) => {
                state.metrics.rate_limited(rejection.limit.key());
                AppError::RateLimited {
                    rejection,
                    tier: policy.name.clone(),
                }
            }
            AdmitError::Seeding(error) => error,
        })?;
    Ok(Admitted {
        policy,
        plan,
        request_tokens,
        receipt: admitted.receipt,
    })
}

/// The outcome of asking the providers for a whole answer, accounted for: attempts
/// counted, the usage worked out and settled, `record` filled in; on failure, what
/// admission took is given back.
async fn accounted(
    state: &AppState,
    caller: &AuthUser,
    admitted: &Admitted<'_>,
    record: &mut UsageRecord,
    routed: Result<RoutedCompletion, RoutingFailure>,
) -> Result<(RoutedCompletion, Usage), AppError> {
    let routed = match routed {
        Ok(routed) => routed,
        Err(failure) => return Err(routing_failed(state, caller, admitted, record, failure).await),
    };
    note_routed(state, &routed.attempts, &routed.provider);
    record.provider = Some(routed.provider.clone());
    let usage = account(
        state,
        caller,
        admitted.reservation(),
        &routed.completion,
        record,
    )
    .await;
    Ok((routed, usage))
}

/// `answer` as a response carrying what is left of the caller's quotas.
pub(super) async fn with_quota(
    state: &AppState,
    caller: &AuthUser,
    admitted: &Admitted<'_>,
    answer: impl IntoResponse,
) -> Response {
    let mut response = answer.into_response();
    let now = Utc::now();
    let status = state
        .limits
        .status(&caller.user.id, admitted.policy, now)
        .await;
    quota_headers::insert(response.headers_mut(), &status, now);
    response
}

/// Counts a routed request's attempts, and logs a fallback.
pub(super) fn note_routed(state: &AppState, attempts: &[Attempt], provider: &str) {
    state.metrics.provider_attempts(attempts);
    if attempts.len() > 1 {
        tracing::info!(
            attempts = attempts.len(),
            provider,
            "answered after falling back"
        );
    }
}

/// No provider answered: counts the attempts, notes the last provider tried in `record`,
/// and gives back what admission took (the user is not charged for the server's
/// failure).
pub(super) async fn routing_failed(
    state: &AppState,
    caller: &AuthUser,
    admitted: &Admitted<'_>,
    record: &mut UsageRecord,
    failure: RoutingFailure,
) -> AppError {
    state.metrics.provider_attempts(&failure.attempts);
    record.provider = failure
        .attempts
        .last()
        .map(|attempt| attempt.provider.clone());
    state
        .limits
        .refund(&caller.user.id, &admitted.receipt)
        .await;
    failure.error.into()
}

/// Works out the answer's usage (the provider's counts, or estimates), settles the
/// tokens reserved at admission, and fills in `record`'s model, tokens and cost.
pub(super) async fn account(
    state: &AppState,
    caller: &AuthUser,
    reservation: Reservation,
    completion: &ProviderCompletion,
    record: &mut UsageRecord,
) -> Usage {
    let prompt_tokens = completion
        .prompt_tokens
        .unwrap_or(reservation.request_tokens);
    let completion_tokens = completion
        .completion_tokens
        .unwrap_or_else(|| estimate(&completion.text));
    let usage = Usage::new(prompt_tokens, completion_tokens);
    state
        .limits
        .settle(
            &caller.user.id,
            &reservation.receipt,
            u64::from(usage.prompt_tokens) + u64::from(usage.completion_tokens),
        )
        .await;
    if let Some(provider) = &record.provider {
        state
            .metrics
            .tokens(provider, usage.prompt_tokens, usage.completion_tokens);
    }
    record.model = Some(completion.model.clone());
    record.prompt_tokens = usage.prompt_tokens;
    record.completion_tokens = usage.completion_tokens;
    record.cost_usd = cost_usd(
        &state.config.prices,
        &completion.model,
        usage.prompt_tokens,
        usage.completion_tokens,
    );
    tracing::info!(
        user_id = %caller.user.id,
        key_id = %caller.key_id,
        provider = record.provider.as_deref().unwrap_or_default(),
        model = %completion.model,
        prompt_tokens = usage.prompt_tokens,
        completion_tokens = usage.completion_tokens,
        "completion served"
    );
    usage
}

/// What the usage records say `user_id` used in the hour and day of `now`: where the
/// limiter starts their counters when it does not know them (their first request on this
/// instance, or a new day or an emptied Redis), so a restart does not reset quotas.
async fn used_this_hour_and_day(
    state: &AppState,
    user_id: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Seed, AppError> {
    let (hour, day) = crate::rate_limit::window_starts(now);
    let used = crate::db::usage::used_since(&state.db, user_id, hour, day)
        .await
        .map_err(AppError::internal)?;
    Ok(Seed {
        hour_requests: used.requests_since_hour,
        day_requests: used.requests_since_day,
        day_tokens: used.tokens_since_day,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CompletionRequest {
        CompletionRequest {
            language: "rust".into(),
            path: "src/main.rs".into(),
            prefix: "fn main() {".into(),
            suffix: "}".into(),
            max_tokens: None,
            temperature: None,
            stop: vec![],
            context: Default::default(),
            file_size: None,
            stream: false,
        }
    }

    #[track_caller]
    fn check_invalid(change: impl FnOnce(&mut CompletionRequest), expected_fragment: &str) {
        let mut request = request();
        change(&mut request);
        let message = request.validate().expect_err("request should be invalid");
        assert!(
            message.contains(expected_fragment),
            "`{message}` does not contain `{expected_fragment}`"
        );
    }

    #[test]
    fn a_plain_request_is_valid() {
        request().validate().unwrap();
        let mut edge = request();
        edge.path = String::new();
        edge.max_tokens = Some(4096);
        edge.temperature = Some(0.0);
        edge.stop = vec!["\n\n".into(); 4];
        edge.validate().unwrap();
        edge.max_tokens = Some(1);
        edge.temperature = Some(2.0);
        edge.path = "a/b..c/d.rs".into();
        edge.validate().unwrap();
    }

    #[test]
    fn each_invalid_field_is_named() {
        check_invalid(
            |r| r.language = String::new(),
            "`language` must not be empty",
        );
        check_invalid(|r| r.language = "  ".into(), "`language` must not be empty");
        check_invalid(|r| r.language = "ru st".into(), "`language` must be an LSP");
        check_invalid(|r| r.path = "/etc/passwd".into(), "must be relative");
        check_invalid(|r| r.path = "\\\\server\\share".into(), "must be relative");
        check_invalid(|r| r.path = "C:/x.rs".into(), "must be relative");
        check_invalid(|r| r.path = "../x.rs".into(), "must not contain `..`");
        check_invalid(|r| r.path = "a/../../x.rs".into(), "must not contain `..`");
        check_invalid(|r| r.path = "a\\..\\x.rs".into(), "must not contain `..`");
        check_invalid(|r| r.path = "a\0b".into(), "control characters");
        check_invalid(
            |r| r.max_tokens = Some(0),
            "`max_tokens` must be between 1 and 4096",
        );
        check_invalid(|r| r.max_tokens = Some(4097), "`max_tokens`");
        check_invalid(
            |r| r.temperature = Some(-0.1),
            "`temperature` must be between 0 and 2",
        );
        check_invalid(|r| r.temperature = Some(2.5), "`temperature`");
        check_invalid(|r| r.temperature = Some(f32::NAN), "`temperature`");
        check_invalid(|r| r.stop = vec!["a".into(); 5], "at most 4 sequences");
        check_invalid(|r| r.stop = vec![String::new()], "must not be empty");
        check_invalid(|r| r.stop = vec!["x".repeat(65)], "at most 64 characters");
    }

    fn snippet(path: &str, text: &str) -> Snippet {
        Snippet {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn context_within_bounds_is_valid() {
        let mut full = request();
        full.context = CodeContext {
            scopes: vec!["impl Parser".into(); 64],
            imports: vec!["use std::io;".into(); 64],
            definitions: vec![snippet("src/a.rs", "fn a() {}"); 64],
            similar: vec![snippet("", "fn b() {}")],
            recent_edits: vec![snippet("src/x..y.rs", "let x = 1;")],
        };
        full.validate().unwrap();
    }

    #[test]
    fn each_invalid_context_field_is_named() {
        check_invalid(
            |r| r.context.scopes = vec!["fn a()".into(); 65],
            "`context.scopes` may hold at most 64 entries, got 65",
        );
        check_invalid(
            |r| r.context.imports = vec!["import os".into(); 65],
            "`context.imports` may hold at most 64 entries, got 65",
        );
        check_invalid(
            |r| r.context.definitions = vec![snippet("a.rs", "x"); 65],
            "`context.definitions` may hold at most 64 snippets, got 65",
        );
        check_invalid(
            |r| r.context.similar = vec![snippet("a.rs", "x"); 65],
            "`context.similar` may hold at most 64 snippets, got 65",
        );
        check_invalid(
            |r| r.context.recent_edits = vec![snippet("a.rs", "x"); 65],
            "`context.recent_edits` may hold at most 64 snippets, got 65",
        );
        check_invalid(
            |r| r.context.imports = vec!["ok".into(), "a\0b".into()],
            "`context.imports[1]` must not contain NUL characters",
        );
        check_invalid(
            |r| r.context.scopes = vec!["\0".into()],
            "`context.scopes[0]` must not contain NUL",
        );
        check_invalid(
            |r| r.context.definitions = vec![snippet("a.rs", "x\0")],
            "`context.definitions[0].text` must not contain NUL characters",
        );
        check_invalid(
            |r| r.context.similar = vec![snippet("a.rs", "x"), snippet("/etc/passwd", "root")],
            "`context.similar[1].path` must be relative to the workspace root, got `/etc/passwd`",
        );
        check_invalid(
            |r| r.context.recent_edits = vec![snippet("src/../../k.pem", "x")],
            "`context.recent_edits[0].path` must not contain `..`",
        );
        check_invalid(
            |r| r.context.definitions = vec![snippet("a\0.rs", "x")],
            "`context.definitions[0].path` must not contain control characters",
        );
    }

    #[test]
    fn prompt_estimate_sums_every_part_with_the_shared_estimate() {
        let mut request = request();
        // `fn main() {` is 7 tokens (`fn`, ` `, `main`, `(`, `)`, ` `, `{`), `}` 1.
        assert_eq!(estimated_prompt_tokens(&request), 8);
        request.context = CodeContext {
            scopes: vec!["impl A".into()],
            imports: vec!["use b;".into()],
            definitions: vec![snippet("a/very/long/path.rs", "x")],
            similar: vec![snippet("s.rs", "y z")],
            recent_edits: vec![snippet("r.rs", "w")],
        };
        let parts = ["impl A", "use b;", "x", "y z", "w"]
            .iter()
            .map(|text| estimate(text))
            .sum::<u32>();
        assert_eq!(estimated_prompt_tokens(&request), 8 + parts);
    }

    #[test]
    fn context_budget_is_the_tiers() {
        let mut policy = crate::tiers::Tiers::default()
            .get(&tandem_shared::Tier::free())
            .unwrap()
            .clone();
        policy.max_context_tokens = 10;
        check_context_budget(10, &policy).unwrap();
        let error = check_context_budget(11, &policy).unwrap_err();
        assert_eq!(
            error.status_code(),
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            error.to_string(),
            "the request's prefix, suffix and context come to about 11 tokens, over the \
             limit of 10 for tier `free`; cut the context to fit"
        );
    }

    #[test]
    fn file_size_is_checked_when_the_client_says_it() {
        let policy = crate::tiers::Tiers::default()
            .get(&tandem_shared::Tier::free())
            .unwrap()
            .clone();
        check_file_size(None, &policy).unwrap();
        check_file_size(Some(1024 * 1024), &policy).unwrap();
        let error = check_file_size(Some(1024 * 1024 + 1), &policy).unwrap_err();
        assert_eq!(
            error.status_code(),
            axum::http::StatusCode::PAYLOAD_TOO_LARGE
        );
        assert!(error.to_string().contains("max_file_size_mb"), "{error}");
    }
}
