//! `GET /device`: where `tandem login` sends people. Browser sign-in (OAuth/OIDC with the
//! account pages) is not built yet, so the page says how the code gets confirmed on this
//! server today — by an administrator — instead of a JSON 404. Plain HTML, no script, no
//! external assets, a strict Content-Security-Policy.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::oauth::normalize_user_code;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/device", get(page))
}

async fn page(Query(query): Query<HashMap<String, String>>) -> Response {
    let code = query
        .get("user_code")
        .and_then(|typed| normalize_user_code(typed));
    let code_part = match &code {
        // Only the eight letters of a valid code ever reach the page.
        Some(code) => format!("<p>Your code is <strong class=\"code\">{code}</strong>.</p>"),
        None => String::new(),
    };
    let command = format!(
        "tandem-cloud device approve --code {} --email YOUR-EMAIL",
        code.as_deref().unwrap_or("CODE")
    );
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Confirm your Tandem sign-in</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;\
         padding:0 1rem;line-height:1.5}}.code{{font-family:monospace;font-size:1.5rem;\
         letter-spacing:.1em}}code{{background:#f3f3f3;padding:.1rem .3rem}}</style>\
         </head><body><h1>Confirm your Tandem sign-in</h1>{code_part}\
         <p>Signing in through the browser is not set up on this server yet. \
         Ask an administrator of this server to confirm the code for your account:</p>\
         <p><code>{command}</code></p>\
         <p><code>tandem login</code> is waiting and finishes by itself once the code is \
         confirmed. Codes expire after a few minutes; run <code>tandem login</code> again \
         for a new one.</p></body></html>\n"
    );
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get_page(uri: &str) -> (Response, String) {
        let app: Router = Router::new().route("/device", get(page));
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            Response::from_parts(parts, Body::empty()),
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_page_shows_a_valid_code_and_nothing_else_from_the_query() {
        let (response, html) = get_page("/device?user_code=bcdf-ghjk").await;
        assert_eq!(response.status(), 200);
        assert!(
            html.contains("<strong class=\"code\">BCDF-GHJK</strong>"),
            "{html}"
        );
        assert!(
            html.contains("tandem-cloud device approve --code BCDF-GHJK"),
            "{html}"
        );
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        // Anything that is not a code is not echoed.
        let (_, html) = get_page("/device?user_code=%3Cscript%3Ealert(1)%3C/script%3E").await;
        assert!(
            !html.contains("<script>") && !html.contains("alert"),
            "{html}"
        );
        assert!(html.contains("--code CODE"), "{html}");
    }
}
