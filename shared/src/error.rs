//! The error body every non-2xx response of the cloud API carries.
//!
//! `{"error": {"code": "unauthorized", "message": "..."}}`: `code` is stable and meant
//! for programs, `message` is for people.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// One of the [`ErrorCode`] strings.
    pub code: String,
    /// What went wrong, in words a user can act on.
    pub message: String,
    /// The caller's tier, on errors about what the tier allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The feature refused (`inline_completion`, `chat`, `explanation`, `code_actions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// A tier that would allow what was refused, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_tier: Option<String>,
    /// The limit that was hit, by its configuration key (`requests_per_hour`,
    /// `tokens_per_day`, `max_file_size_mb`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The limit's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_value: Option<u64>,
    /// When the limit resets (RFC 3339, UTC), for quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_at: Option<String>,
    /// Seconds until a retry can succeed (also in the `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.as_str().to_owned(),
                message: message.into(),
                ..ErrorDetail::default()
            },
        }
    }

    /// The code as a known variant, if this side knows it.
    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::from_str(&self.error.code)
    }
}

/// Stable, machine-readable error codes and the HTTP status each goes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: the body is not valid JSON or not the expected shape.
    MalformedBody,
    /// 401: no API key, or one that is unknown or revoked.
    Unauthorized,
    /// 403: the key is valid but may not do this (a feature or provider the caller's tier
    /// does not include: the body names the feature and a tier that has it).
    Forbidden,
    /// 404: no such route or resource.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 413: the body is larger than the server accepts.
    PayloadTooLarge,
    /// 413: the document the request is about is larger than the caller's tier allows
    /// (`max_file_size_mb`).
    FileTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 422: the body parsed but a field is invalid.
    InvalidRequest,
    /// 422: the request's prefix, suffix and context are estimated at more tokens than
    /// the caller's tier allows (`GET /v1/me` says how many it does).
    ContextTooLarge,
    /// 429: a rate limit or quota was hit.
    RateLimited,
    /// 500: a bug or an unexpected failure on the server; details are in its log.
    Internal,
    /// 502: the model provider answered with an error or an unreadable body.
    ProviderError,
    /// 503: no model provider could be reached, or the service is not ready.
    ProviderUnavailable,
    /// 504: the model provider did not answer in time.
    ProviderTimeout,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::MalformedBody,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::FileTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::InvalidRequest,
        ErrorCode::ContextTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::ProviderError,
        ErrorCode::ProviderUnavailable,
        ErrorCode::ProviderTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedBody => "malformed_body",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::FileTooLarge => "file_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ContextTooLarge => "context_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::ProviderError => "provider_error",
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::ProviderTimeout => "provider_timeout",
        }
    }

    /// The HTTP status code this error is sent with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedBody => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::PayloadTooLarge | ErrorCode::FileTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::InvalidRequest | ErrorCode::ContextTooLarge => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::ProviderError => 502,
            ErrorCode::ProviderUnavailable => 503,
            ErrorCode::ProviderTimeout => 504,
        }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn from_str(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape_is_stable() {
        let body = ErrorBody::new(ErrorCode::Unauthorized, "missing API key");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"unauthorized","message":"missing API key"}}"#
        );
        assert_eq!(body.code(), Some(ErrorCode::Unauthorized));
    }

    #[test]
    fn every_code_round_trips_and_has_an_error_status() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_str(code.as_str()), Some(code));
            assert!(code.http_status() >= 400);
        }
    }
}
