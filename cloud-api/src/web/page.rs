//! The frame every page shares, the security headers of HTML answers, and [`PageError`],
//! the pages' error: an HTML page for browsers, the API's JSON error for anyone else.

use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::{html, Markup, DOCTYPE};
use tandem_shared::{ErrorBody, ErrorCode};

/// Pages load nothing but the stylesheet from here, run no script, submit forms only
/// here and cannot be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const STYLESHEET: &str = "\
body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;\
line-height:1.5;color:#1d1d1f}\
header{display:flex;justify-content:space-between;align-items:center;\
border-bottom:1px solid #ddd;margin-bottom:1.5rem}\
header form{margin:0}\
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem}\
.code{font-family:monospace;font-size:1.6rem;letter-spacing:.12em}\
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px;word-break:break-all}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;\
border-bottom:1px solid #eee;vertical-align:top}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dd{margin:0}\
.error{background:#fdecea;border:1px solid #f5c2c0;padding:.6rem .8rem;border-radius:4px}\
.notice{background:#eef6ee;border:1px solid #b9dcb9;padding:.6rem .8rem;border-radius:4px}\
.providers a{display:block;margin:.5rem 0;padding:.6rem 1rem;border:1px solid #ccc;\
border-radius:4px;text-decoration:none;color:inherit;max-width:20rem}\
button{padding:.35rem .9rem;cursor:pointer}\
form.inline{display:inline}\
fieldset{border:1px solid #ddd;border-radius:4px}\
.muted{color:#666}";

/// `GET /assets/tandem.css`.
pub(super) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// A whole page around `body`, with the headers every HTML answer carries.
pub(super) fn render(status: StatusCode, title: &str, body: Markup) -> Response {
    let mut response = (status, document(&format!("{title} · Tandem"), body)).into_response();
    html_headers(response.headers_mut(), CONTENT_SECURITY_POLICY, "no-store");
    response
}

/// The HTML document every page of this server shares (the API reference too): the
/// one stylesheet, no referrer, `body` inside.
pub(crate) fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                link rel="stylesheet" href="/assets/tandem.css";
            }
            body { (body) }
        }
    }
}

/// The headers of an HTML answer: its `policy` and `cache_control` (pages that show keys
/// and CSRF tokens are never stored), no framing, no sniffing, no referrer.
pub(crate) fn html_headers(
    headers: &mut HeaderMap,
    policy: &'static str,
    cache_control: &'static str,
) {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, policy),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, cache_control),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Why a page could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PageError {
    /// A form came without its CSRF token, or with someone else's.
    #[error("this form has expired or did not come from this site; reload the page and try again")]
    Csrf,
    /// The provider's answer does not belong to a sign-in this browser started.
    #[error("this sign-in did not start here, or has expired; start again")]
    SignInMismatch,
    /// The provider said no, or the person cancelled.
    #[error("{provider} did not sign you in: {reason}")]
    SignInRefused { provider: String, reason: String },
    /// The provider vouches for no verified email.
    #[error(
        "{provider} has no verified email address for this account; verify one there and \
         sign in again"
    )]
    NoVerifiedEmail { provider: String },
    /// The provider could not be reached or answered something unusable.
    #[error("{provider} could not complete the sign-in: {reason}")]
    ProviderFailed { provider: String, reason: String },
    /// No such sign-in provider, key or code.
    #[error("{0}")]
    NotFound(String),
    /// A field of a form is missing or invalid.
    #[error("{0}")]
    InvalidForm(String),
    /// Too many sign-ins started from this address.
    #[error(
        "too many sign-ins started from this address (at most {} a minute); wait a minute",
        crate::state::SIGN_INS_PER_MINUTE
    )]
    TooManySignIns,
    /// Sign-in is not set up on this server.
    #[error("signing in through the browser is not set up on this server")]
    SignInOff,
    /// The database or something else failed; logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl PageError {
    pub(super) fn internal(error: impl std::fmt::Display) -> PageError {
        PageError::Internal(error.to_string())
    }

    fn status(&self) -> StatusCode {
        match self {
            PageError::Csrf | PageError::NoVerifiedEmail { .. } => StatusCode::FORBIDDEN,
            PageError::SignInRefused { .. } => StatusCode::FORBIDDEN,
            PageError::SignInMismatch | PageError::InvalidForm(_) => StatusCode::BAD_REQUEST,
            PageError::NotFound(_) | PageError::SignInOff => StatusCode::NOT_FOUND,
            PageError::ProviderFailed { .. } => StatusCode::BAD_GATEWAY,
            PageError::TooManySignIns => StatusCode::TOO_MANY_REQUESTS,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> ErrorCode {
        match self.status() {
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::BAD_REQUEST => ErrorCode::InvalidRequest,
            StatusCode::BAD_GATEWAY => ErrorCode::ProviderError,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
            _ => ErrorCode::Internal,
        }
    }
}

/// The JSON form of a page's error, kept on its HTML answer for [`negotiate`].
#[derive(Debug, Clone)]
struct JsonAlternative(ErrorBody);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let PageError::Internal(cause) = &self {
            tracing::error!(%cause, "page failed");
        }
        let message = self.to_string();
        let title = if status.is_server_error() {
            "Something went wrong"
        } else {
            "That did not work"
        };
        let mut response = render(
            status,
            title,
            html! {
                h1 { (title) }
                p.error { (message) }
                p { a href="/account" { "Back to your account" } }
            },
        );
        response
            .extensions_mut()
            .insert(JsonAlternative(ErrorBody::new(self.code(), message)));
        response
    }
}

/// Gives a client that does not read HTML (a script, `curl`) the API's JSON error
/// instead of an error page.
pub(super) fn negotiate(request_headers: &HeaderMap, mut response: Response) -> Response {
    if wants_html(request_headers) {
        return response;
    }
    match response.extensions_mut().remove::<JsonAlternative>() {
        Some(JsonAlternative(body)) => (response.status(), Json(body)).into_response(),
        None => response,
    }
}

/// Whether the client asked for HTML (browsers always do).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_html_for_browsers_and_json_for_the_rest() {
        let mut browser = HeaderMap::new();
        browser.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml"),
        );
        let response = negotiate(&browser, PageError::Csrf.into_response());
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'"));

        let response = negotiate(&HeaderMap::new(), PageError::Csrf.into_response());
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn interpolated_text_is_escaped() {
        let error = PageError::SignInRefused {
            provider: "x".into(),
            reason: "<script>alert(1)</script>".into(),
        };
        let mut browser = HeaderMap::new();
        browser.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        let response = negotiate(&browser, error.into_response());
        let body = futures::executor::block_on(async {
            http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes()
        });
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("&lt;script&gt;"), "{body}");
        assert!(!body.contains("<script>"), "{body}");
    }
}
