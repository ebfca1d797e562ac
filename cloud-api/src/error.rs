//! The one error type of the HTTP layer and its mapping to status codes and JSON bodies.
//!
//! 4xx bodies say exactly what was wrong with the request. 5xx bodies say only what a client
//! can act on (which provider failed and how); causes are logged, never echoed.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{SecondsFormat, Utc};
use tandem_shared::{ErrorBody, ErrorCode, Tier};

use crate::providers::ProviderError;
use crate::rate_limit::{Limit, Rejection};
use crate::tiers::Feature;

fn upgrade_hint(required_tier: Option<&Tier>) -> String {
    match required_tier {
        Some(tier) => format!("; tier `{tier}` does"),
        None => String::new(),
    }
}

fn rate_limit_message(rejection: &Rejection, tier: &Tier) -> String {
    let when = rejection
        .reset_at
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    match rejection.limit {
        Limit::Burst => format!(
            "too many requests in a short time: tier `{tier}` allows {} per minute; retry in {} s",
            rejection.limit_value, rejection.retry_after_secs
        ),
        Limit::RequestsPerHour => format!(
            "hourly quota used: tier `{tier}` allows {} requests per hour; it resets at {when}",
            rejection.limit_value
        ),
        Limit::RequestsPerDay => format!(
            "daily quota used: tier `{tier}` allows {} requests per day; it resets at {when}",
            rejection.limit_value
        ),
        Limit::TokensPerDay => format!(
            "daily token budget used: tier `{tier}` allows {} tokens per day; it resets at {when}",
            rejection.limit_value
        ),
    }
}

/// Everything a handler or extractor can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The body is not JSON or not the expected shape.
    #[error("{0}")]
    MalformedBody(String),
    /// No key, a key of the wrong form, or one that is unknown or revoked.
    #[error("{0}")]
    Unauthorized(String),
    /// No route matches the path.
    #[error("no route for {0}")]
    NotFound(String),
    /// The route exists but the thing it names does not (or is not the caller's).
    #[error("{0}")]
    NoSuchResource(String),
    /// The path exists, but not with this method.
    #[error("method {method} is not allowed for {path}")]
    MethodNotAllowed { method: String, path: String },
    /// The body is larger than `limits.max_body_bytes`.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body is not declared as `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body parsed, but a field is invalid.
    #[error("{0}")]
    InvalidRequest(String),
    /// The request's prefix, suffix and context are estimated at more tokens than the
    /// caller's tier allows.
    #[error(
        "the request's prefix, suffix and context come to about {estimated_tokens} tokens, \
         over the limit of {limit} for tier `{tier}`; cut the context to fit"
    )]
    ContextTooLarge {
        estimated_tokens: u32,
        limit: u32,
        tier: Tier,
    },
    /// The caller's tier does not include the feature the endpoint serves.
    #[error(
        "tier `{tier}` does not include {feature}{}",
        upgrade_hint(required_tier.as_ref())
    )]
    FeatureNotAllowed {
        feature: Feature,
        tier: Tier,
        required_tier: Option<Tier>,
    },
    /// None of the providers that would answer is allowed for the caller's tier.
    #[error("no model provider configured here is available to tier `{tier}`{}", upgrade_hint(required_tier.as_ref()))]
    ProviderNotAllowed {
        tier: Tier,
        required_tier: Option<Tier>,
    },
    /// The document the request is about is over the tier's `max_file_size_mb`.
    #[error(
        "the document is {size} bytes, over the limit of {limit_mb} MiB (max_file_size_mb) \
         for tier `{tier}`"
    )]
    FileTooLarge {
        size: u64,
        limit_mb: u32,
        tier: Tier,
    },
    /// The user's tier is not defined by this server's configuration.
    #[error("tier `{0}` is not defined on this server; ask an administrator to move the account to another tier")]
    UnknownTier(Tier),
    /// A rate limit or quota refused the request.
    #[error("{}", rate_limit_message(.rejection, tier))]
    RateLimited {
        rejection: Box<Rejection>,
        tier: Tier,
    },
    /// The model provider failed; the variant decides 502, 503 or 504.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The service cannot serve yet (database down); the cause is logged.
    #[error("service is not ready: {public}")]
    NotReady {
        public: String,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The whole request took longer than `limits.request_timeout_ms`.
    #[error("request took longer than the server's limit")]
    RequestTimeout,
    /// Explanations, code actions and questions need a model that holds a conversation,
    /// and the only providers configured (the built-in `local` one) complete code.
    #[error(
        "no provider configured on this server can answer explanations, code actions or \
         questions: the built-in `local` provider only completes code; an administrator can \
         add a model provider (`[[providers]]`, e.g. Ollama) to the server's configuration"
    )]
    NoChatProvider,
    /// The key is valid but was not given the scope this needs.
    #[error(
        "this API key does not have the `{scope}` scope; use a key that does, or create one \
         with it (POST /v1/keys)"
    )]
    MissingScope { scope: tandem_shared::Scope },
    /// The caller is authenticated but may not use this server at all (an identity
    /// provider token whose roles map to no tier); the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// A bug or unexpected failure; the cause is logged, the client sees "internal error".
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    /// Wraps any unexpected failure (database errors, mostly). A database that cannot be
    /// reached is not a bug: that is 503 (try again), not 500.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> AppError {
        let error = error.into();
        let unreachable = error
            .downcast_ref::<crate::db::DbError>()
            .is_some_and(crate::db::DbError::is_unavailable)
            || error
                .downcast_ref::<sqlx::Error>()
                .is_some_and(crate::db::is_unavailable);
        if unreachable {
            return AppError::NotReady {
                public: "the database is not reachable; try again shortly".to_owned(),
                cause: error,
            };
        }
        AppError::Internal(error)
    }

    /// The stable code this error is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::MalformedBody(_) => ErrorCode::MalformedBody,
            AppError::Unauthorized(_) => ErrorCode::Unauthorized,
            AppError::NotFound(_) | AppError::NoSuchResource(_) => ErrorCode::NotFound,
            AppError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            AppError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            AppError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            AppError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            AppError::ContextTooLarge { .. } => ErrorCode::ContextTooLarge,
            AppError::FeatureNotAllowed { .. }
            | AppError::ProviderNotAllowed { .. }
            | AppError::MissingScope { .. }
            | AppError::Forbidden(_)
            | AppError::UnknownTier(_) => ErrorCode::Forbidden,
            AppError::FileTooLarge { .. } => ErrorCode::FileTooLarge,
            AppError::RateLimited { .. } => ErrorCode::RateLimited,
            AppError::Provider(error) => error.code(),
            // The shared code for "the service is not ready" (see ErrorCode's docs).
            AppError::NotReady { .. } | AppError::NoChatProvider => ErrorCode::ProviderUnavailable,
            AppError::RequestTimeout => ErrorCode::ProviderTimeout,
            AppError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Logs the error at the level it deserves: server errors with their cause, refusals
    /// at debug.
    pub fn log(&self) {
        let status = self.status_code();
        match self {
            AppError::Provider(error) => {
                tracing::warn!(error = %error.log_message(), "provider request failed");
            }
            AppError::NotReady { cause, .. } => {
                tracing::error!(error = %cause, "not ready");
            }
            AppError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
            }
            other if status.is_server_error() => {
                tracing::error!(error = %other, "server error");
            }
            other => {
                tracing::debug!(status = status.as_u16(), error = %other, "request refused");
            }
        }
    }

    /// The JSON body clients get: the code, the public message and the details of a
    /// limit or tier.
    pub fn body(&self) -> ErrorBody {
        let mut body = ErrorBody::new(self.code(), self.public_message());
        let detail = &mut body.error;
        match self {
            AppError::ContextTooLarge { limit, tier, .. } => {
                detail.tier = Some(tier.to_string());
                detail.limit = Some("max_context_tokens".to_owned());
                detail.limit_value = Some(u64::from(*limit));
            }
            AppError::FeatureNotAllowed {
                feature,
                tier,
                required_tier,
            } => {
                detail.tier = Some(tier.to_string());
                detail.feature = Some(feature.as_str().to_owned());
                detail.required_tier = required_tier.as_ref().map(Tier::to_string);
            }
            AppError::ProviderNotAllowed {
                tier,
                required_tier,
            } => {
                detail.tier = Some(tier.to_string());
                detail.required_tier = required_tier.as_ref().map(Tier::to_string);
            }
            AppError::FileTooLarge { limit_mb, tier, .. } => {
                detail.tier = Some(tier.to_string());
                detail.limit = Some("max_file_size_mb".to_owned());
                detail.limit_value = Some(u64::from(*limit_mb));
            }
            AppError::RateLimited { rejection, tier } => {
                detail.tier = Some(tier.to_string());
                detail.limit = Some(rejection.limit.key().to_owned());
                detail.limit_value = Some(rejection.limit_value);
                detail.retry_after_secs = Some(rejection.retry_after_secs);
                detail.reset_at = Some(
                    rejection
                        .reset_at
                        .to_rfc3339_opts(SecondsFormat::Secs, true),
                );
            }
            _ => {}
        }
        body
    }

    /// The HTTP status this error is sent with.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The message a client sees. For 5xx this is never the underlying cause.
    fn public_message(&self) -> String {
        match self {
            AppError::Provider(error) => error.public_message(),
            AppError::NotReady { public, .. } => format!("service is not ready: {public}"),
            AppError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        self.log();
        let body = self.body();
        let mut response = (status, Json(body)).into_response();
        if let AppError::RateLimited { rejection, .. } = &self {
            let headers = response.headers_mut();
            headers.insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(rejection.retry_after_secs),
            );
            crate::http::quota_headers::insert(headers, &rejection.status, Utc::now());
        }
        if matches!(self, AppError::PayloadTooLarge { .. }) {
            // The rest of the oversized body is never read, so this connection cannot carry
            // another request; saying so stops pooling clients from reusing it and failing.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_echo_their_cause() {
        let error = AppError::internal(std::io::Error::other("disk /secret/path is on fire"));
        assert_eq!(error.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.public_message(), "internal error");
    }

    #[test]
    fn an_unreachable_database_is_503_and_a_failed_statement_500() {
        let down = AppError::internal(crate::db::DbError::Sqlx(sqlx::Error::PoolTimedOut));
        assert_eq!(down.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            down.to_string().contains("database is not reachable"),
            "{down}"
        );
        let broken = AppError::internal(sqlx::Error::RowNotFound);
        assert_eq!(broken.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn not_ready_reports_503_without_the_cause() {
        let error = AppError::NotReady {
            public: "database is not reachable".to_owned(),
            cause: Box::new(std::io::Error::other("unable to open /var/lib/x")),
        };
        assert_eq!(error.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!error.public_message().contains("/var/lib"));
    }

    #[test]
    fn client_errors_keep_their_message() {
        let error = AppError::InvalidRequest("`language` must not be empty".to_owned());
        assert_eq!(error.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.public_message(), "`language` must not be empty");
    }
}
