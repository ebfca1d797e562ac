//! The API's OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]`
//! attributes and the wire types' `ToSchema` derives: `GET /openapi.json` serves it and
//! `GET /docs` renders it as a readable HTML reference on the server (no script, nothing
//! loaded from elsewhere, the pages' strict Content-Security-Policy).
//!
//! `tests/openapi.rs` keeps the document honest: every route registered under
//! `cloud-api/src/http` must be in it, and live answers must fit their schemas.

use std::sync::LazyLock;

use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tandem_shared::ErrorCode;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(handle_openapi_json))
        .route("/docs", get(handle_docs))
}

/// What the reference says before its operations.
const OVERVIEW: &str = "\
Tandem's cloud API: completions and chat for the Tandem language server, API keys, \
account data, the device sign-in of `tandem login`, administration, and operations \
endpoints.

Authentication: `Authorization: Bearer tdm_…` with an API key (`tandem-cloud keys create`, \
`POST /v1/keys`, `tandem login`), or, on servers with `[enterprise]`, a JWT from the \
organisation's identity provider. A key has scopes: `completions`, `chat` and `admin`; a \
route that needs one says so. When the identity provider's keys cannot be fetched, \
authenticated routes answer 503.

Errors are `{\"error\": {\"code\": \"…\", \"message\": \"…\"}}` (`ErrorBody`): `code` is \
stable and for programs, `message` is for people. Besides what each operation lists, any \
path may answer 404 `not_found` (no such route), 405 `method_not_allowed`, 413 \
`payload_too_large` (a body over `[limits] max_body_bytes`), 500 `internal` and 504 \
`provider_timeout` (the request took longer than `[limits] request_timeout_ms`). The \
`/oauth` endpoints answer errors as OAuth does instead (`OAuthErrorBody`).

Model requests (`/v1/completions`, `/v1/chat`) and `/v1/me` carry what is left of the \
caller's quotas in `RateLimit-Policy`, `RateLimit` and `Tandem-Tokens-*` headers; a 429 \
adds `Retry-After`.

Not part of this API: the browser pages `/signin`, `/auth/{provider}/start`, \
`/auth/{provider}/callback`, `/signout`, `/account`, `/account/keys`, \
`/account/keys/{id}/revoke`, `/device`, `/device/confirm` and their stylesheet \
`/assets/tandem.css`.";

/// The document: every API operation, its bodies and the security schemes.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tandem cloud API", description = OVERVIEW),
    paths(
        super::completions::handle_completions,
        super::chat::handle_chat,
        super::me::handle_me,
        super::usage::handle_usage,
        super::account::export,
        super::account::delete_account,
        super::keys::list,
        super::keys::create,
        super::keys::revoke,
        super::oauth::device_code,
        super::oauth::token,
        super::admin::list_users,
        super::admin::set_tier,
        super::admin::revoke_key,
        super::admin::read_audit,
        super::stats::handle_stats,
        super::health::handle_health,
        super::health::handle_ready,
        super::metrics::handle_metrics,
        super::jwks::handle_jwks,
        handle_openapi_json,
        handle_docs,
    ),
    components(schemas(tandem_shared::stream::Delta, tandem_shared::ErrorDetail)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "model", description = "Completions, explanations, code actions and questions: the requests that reach a model provider."),
        (name = "account", description = "The caller: who they are, their quotas and usage, their data."),
        (name = "keys", description = "The caller's own API keys."),
        (name = "device-login", description = "The OAuth 2.0 Device Authorization Grant (RFC 8628) that `tandem login` uses. Bodies are forms; errors are OAuth's."),
        (name = "admin", description = "Administration, for keys with the `admin` scope. Every change is audited."),
        (name = "operations", description = "Health, readiness, metrics and the session signing key."),
        (name = "reference", description = "This description of the API."),
    )
)]
struct ApiDoc;

/// Adds the security schemes the operations name.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tdm_ API key, or an identity provider JWT")
                    .description(Some(
                        "An API key (`tdm_` and 43 letters and digits), or with `[enterprise]` a \
                         JWT from the organisation's identity provider. The names listed with an \
                         operation are the key scopes it needs.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token in the environment variable named by `[metrics] token_env`, \
                         when that is set.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Descriptions several operations share, so one error reads the same everywhere.
pub(super) mod describe {
    pub(crate) const UNAUTHORIZED: &str = "`unauthorized`: no `Authorization: Bearer` header, \
        or a key that is malformed, unknown, revoked or expired, or an identity provider \
        token that was refused; the message says which.";
    pub(crate) const MALFORMED_BODY: &str =
        "`malformed_body`: the body is not JSON, or not the expected shape.";
    pub(crate) const UNSUPPORTED_MEDIA_TYPE: &str =
        "`unsupported_media_type`: the body is not declared as `application/json`.";
    pub(crate) const INTERNAL: &str = "`internal`: an unexpected failure; the cause is in the \
        server's log, never in the body.";
    pub(crate) const UNKNOWN_TIER: &str = "`forbidden`: the caller's tier is not defined on \
        this server, or an identity provider token whose roles map to no tier.";
    pub(crate) const ADMIN_FORBIDDEN: &str =
        "`forbidden`: the credential does not have the `admin` scope.";
    pub(crate) const KEY_SCOPE_FORBIDDEN: &str = "`forbidden`: a scope the calling key does \
        not have itself, or `admin` asked for with an identity provider token.";
    pub(crate) const KEY_INVALID: &str = "`invalid_request`: `name` is empty or too long, \
        `scopes` is empty, `expires_in_days` is out of 1..=3650, or the calling key has none \
        of the default scopes to give.";
    pub(crate) const MODEL_FORBIDDEN: &str = "`forbidden`: the key lacks the `completions` \
        scope, or the tier does not include `inline_completion` or any configured provider \
        (the body names `feature`, `tier` and a `required_tier` that does), or the tier is \
        not defined here.";
    pub(crate) const CHAT_FORBIDDEN: &str = "`forbidden`: the key lacks the `chat` scope, or \
        the tier does not include the task's feature (`explanation`, `chat` or \
        `code_actions`) or any configured provider (the body names `feature`, `tier` and a \
        `required_tier` that does), or the tier is not defined here.";
    pub(crate) const MODEL_TOO_LARGE: &str = "`file_too_large`: `file_size` is over the tier's \
        `max_file_size_mb` (`limit`, `limit_value`); or `payload_too_large`: the body is over \
        `[limits] max_body_bytes`.";
    pub(crate) const MODEL_INVALID: &str = "`invalid_request`: a field is invalid (the message \
        names it: `language`, `path`, `max_tokens`, `temperature`, `stop`, `context.…`); or \
        `context_too_large`: prefix, suffix and context are estimated at more tokens than the \
        tier's `max_context_tokens` (`limit`, `limit_value`).";
    pub(crate) const CHAT_INVALID: &str = "`invalid_request`: a field is invalid (the message \
        names it), `fix` without `diagnostics` or `ask` without a `question`; or \
        `context_too_large`: the request's texts are estimated at more tokens than the tier's \
        `max_context_tokens`.";
    pub(crate) const RATE_LIMITED: &str = "`rate_limited`: the burst limit, the hourly or \
        daily request quota or the daily token budget is used up. The body names the `limit` \
        (`burst_per_minute`, `requests_per_hour`, `requests_per_day`, `tokens_per_day`), its \
        `limit_value`, `reset_at` and `retry_after_secs`.";
    pub(crate) const PROVIDER_ERROR: &str = "`provider_error`: the model provider answered \
        with an error or an unreadable body; the message names the provider.";
    pub(crate) const PROVIDER_UNAVAILABLE: &str = "`provider_unavailable`: no model provider \
        could be reached (or each said 429), or the usage record could not be written.";
    pub(crate) const CHAT_UNAVAILABLE: &str = "`provider_unavailable`: no model provider could \
        be reached, the server has no provider that holds conversations (only the built-in \
        `local` one), or the usage record could not be written.";
    pub(crate) const PROVIDER_TIMEOUT: &str = "`provider_timeout`: no provider answered within \
        the task's budget, or the request took longer than `[limits] request_timeout_ms`.";
    pub(crate) const COMPLETION_STREAM_EXAMPLE: &str = "event: delta\n\
        data: {\"index\":0,\"text\":\"let total\"}\n\n\
        event: delta\n\
        data: {\"index\":0,\"text\":\" = a + b;\"}\n\n\
        event: done\n\
        data: {\"id\":\"cmpl-…\",\"choices\":[{\"index\":0,\"text\":\"let total = a + b;\",\
        \"finish_reason\":\"stop\"}],\"provider\":\"ollama\",\"model\":\"…\",\"usage\":\
        {\"prompt_tokens\":12,\"completion_tokens\":6,\"total_tokens\":18}}\n";
    pub(crate) const CHAT_STREAM_EXAMPLE: &str = "event: delta\n\
        data: {\"index\":0,\"text\":\"This function \"}\n\n\
        event: delta\n\
        data: {\"index\":0,\"text\":\"adds two numbers.\"}\n\n\
        event: done\n\
        data: {\"id\":\"chat-…\",\"task\":\"explain\",\"text\":\"This function adds two numbers.\",\
        \"provider\":\"ollama\",\"model\":\"…\",\"usage\":{\"prompt_tokens\":40,\
        \"completion_tokens\":6,\"total_tokens\":46}}\n";
}

// Bodies that handlers build with `json!` or from database rows, described here because
// they have no type of their own to derive a schema from. `tests/openapi.rs` checks live
// answers against them, so a change to a handler that forgets its schema fails there.

/// Answer of `GET /health`.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct HealthAnswer {
    /// Always `ok`.
    status: String,
    /// The server's version.
    version: String,
}

/// Answer of `GET /ready`.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct ReadyAnswer {
    /// Always `ready`.
    status: String,
    /// The server's version.
    version: String,
    /// Always `ok`.
    database: String,
    /// The first configured provider, by name.
    provider: Option<String>,
    /// Its model.
    model: Option<String>,
    /// Every provider and its circuit breaker.
    providers: Vec<ProviderHealthInfo>,
    /// With `[redis]` only: `ok`, or `degraded` while Redis does not answer (still ready:
    /// each instance then enforces its share of the limits).
    redis: Option<String>,
}

/// A provider's health, as `GET /ready` reports it.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct ProviderHealthInfo {
    /// The provider's name (`[[providers]] name`, or `local`).
    name: String,
    /// Its kind (`ollama`, `openai`, `anthropic`, `google`, `local`).
    kind: String,
    breaker: BreakerStateInfo,
    /// Failures since the provider last answered.
    consecutive_failures: u32,
}

/// The state of a provider's circuit breaker.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(super) enum BreakerStateInfo {
    /// Requests pass.
    Closed,
    /// Requests skip the provider until the cool-down has passed.
    Open,
    /// The cool-down has passed: the next request probes the provider.
    HalfOpen,
}

/// Answer of `GET /admin/users`.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct AdminUsersPage {
    users: Vec<AdminUser>,
    /// How many users there are in all.
    total: u64,
    /// The `offset` of this page.
    offset: u32,
}

/// A user, as administrators see it.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct AdminUser {
    id: String,
    email: String,
    /// The user's tier.
    tier: String,
    /// RFC 3339, UTC.
    created_at: String,
}

/// Answer of `PUT /admin/users/{email}/tier`: the user as now stored.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct TierChanged {
    id: String,
    email: String,
    /// The new tier.
    tier: String,
}

/// Answer of `DELETE /admin/keys/{id}`.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct AdminKeyRevoked {
    /// The key's id.
    id: String,
    /// Always `true`.
    revoked: bool,
    /// Whether the key had been revoked before this request.
    already_revoked: bool,
}

/// Answer of `GET /admin/audit`.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct AuditPage {
    /// Newest first.
    entries: Vec<AuditEntry>,
}

/// One entry of the audit log.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct AuditEntry {
    /// When (RFC 3339, UTC, milliseconds).
    at: String,
    /// Who: `user:<id>`, or `cli` for the server's command line.
    actor: String,
    /// The key the actor used, if any.
    actor_key: Option<String>,
    /// What: `user.create`, `user.set_tier`, `key.create`, `key.revoke`, `sign_in`,
    /// `device.approve`, `account.delete`, ...
    action: String,
    /// What it was done to: `user:<id>`, `key:<id>`.
    target: Option<String>,
    /// The client's address, or `cli`.
    source: String,
    /// Details, such as the old and new tier.
    #[schema(value_type = Object)]
    detail: Value,
}

/// A linked sign-in identity, as exported.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct ExportedIdentity {
    /// The sign-in provider's name (`github`, `enterprise`, ...).
    provider: String,
    /// The account's stable id at the provider.
    subject: String,
    /// The email the provider vouched for.
    email: String,
    /// First sign-in (RFC 3339, UTC).
    created_at: String,
    /// Latest sign-in (RFC 3339, UTC).
    last_sign_in_at: String,
}

/// A usage record, as exported.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct ExportedUsageRow {
    request_id: String,
    key_id: String,
    /// `/v1/completions` or `/v1/chat`.
    endpoint: String,
    /// `inline_completion`, or the chat task.
    task: String,
    provider: Option<String>,
    model: Option<String>,
    prompt_tokens: i64,
    completion_tokens: i64,
    latency_ms: i64,
    /// The HTTP status answered (499: the client went away mid-stream).
    status: i64,
    /// Estimated from the configured prices, in US dollars.
    cost_usd: f64,
    /// RFC 3339, UTC.
    created_at: String,
}

/// What deleting an account removed.
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct DeletedCounts {
    /// API keys deleted.
    keys: u64,
    /// Usage records deleted.
    usage_rows: u64,
}

/// A JSON Web Key Set (RFC 7517 §5).
#[allow(dead_code)] // Documentation only.
#[derive(ToSchema)]
pub(super) struct JwkSet {
    /// The public keys (RFC 7517 §4): `kty`, `kid`, `use` (`sig`), `alg` and the key's
    /// own parameters.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<Value>,
}

/// The document as served, made once.
struct Published {
    json: String,
    etag: HeaderValue,
    html: String,
}

static PUBLISHED: LazyLock<Published> = LazyLock::new(|| {
    let document = document();
    let json = serde_json::to_string_pretty(&document).unwrap_or_else(|error| {
        // Values made from a utoipa document always serialize; this is unreachable.
        tracing::error!(%error, "the OpenAPI document could not be serialized");
        "{}".to_owned()
    });
    let digest = Sha256::digest(json.as_bytes());
    let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..16])))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    let html = render_docs(&document).into_string();
    Published { json, etag, html }
});

/// The OpenAPI document as JSON, tidied for readers: rustdoc links become plain code
/// spans, and the error codes are listed where `ErrorDetail.code` is described.
fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    tidy_descriptions(&mut document);
    let codes: Vec<String> = ErrorCode::ALL
        .into_iter()
        .map(|code| format!("`{}` ({})", code.as_str(), code.http_status()))
        .collect();
    if let Some(code) = document.pointer_mut("/components/schemas/ErrorDetail/properties/code") {
        code["description"] = Value::String(format!(
            "Stable and meant for programs; new codes may be added. Today: {}.",
            codes.join(", ")
        ));
    }
    document
}

/// Rewrites rustdoc's intra-doc links (``[`Scope::DEFAULT`]``, ``[`x`](crate::y)``) in
/// every `description` and `summary` as code spans, which any reader understands.
fn tidy_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match item {
                    Value::String(text) if key == "description" => {
                        *text = without_doc_links(text);
                    }
                    // A summary is one line: the doc comment's first sentence, unwrapped.
                    Value::String(text) if key == "summary" => {
                        *text = without_doc_links(text).replace('\n', " ");
                    }
                    other => tidy_descriptions(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy_descriptions),
        _ => {}
    }
}

fn without_doc_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[`") {
        let Some(end) = rest[start + 2..].find("`]") else {
            break;
        };
        let code = &rest[start + 2..start + 2 + end];
        out.push_str(&rest[..start]);
        out.push('`');
        out.push_str(code.strip_prefix("crate::").unwrap_or(code));
        out.push('`');
        rest = &rest[start + 2 + end + 2..];
        // A link target, `(crate::path)`, goes too.
        if rest.starts_with('(') {
            if let Some(close) = rest.find(')') {
                rest = &rest[close + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The reference's text is not secret and changes only with a new build, so clients and
/// proxies may keep it a while.
const CACHE_CONTROL: &str = "public, max-age=300";

/// Like the pages' policy: nothing but this server's stylesheet, no script, no forms, no
/// framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// This description of the API, as OpenAPI 3.1 JSON.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "reference",
    operation_id = "get_openapi",
    security(()),
    responses(
        (status = 200, description = "This document.", content_type = "application/json", body = Object,
            headers(("ETag" = String, description = "Changes when the document does; `If-None-Match` gets 304."))),
        (status = 304, description = "The document has not changed since the `ETag` sent in `If-None-Match`."),
    )
)]
async fn handle_openapi_json(request_headers: HeaderMap) -> Response {
    let published = &*PUBLISHED;
    let headers = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
        (header::ETAG, published.etag.clone()),
    ];
    if not_modified(&request_headers, &published.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(header::CONTENT_TYPE, "application/json")],
        published.json.clone(),
    )
        .into_response()
}

/// This description of the API, as a readable HTML page.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "reference",
    operation_id = "get_docs",
    security(()),
    responses(
        (status = 200, description = "The reference, rendered from this document.", content_type = "text/html; charset=utf-8", body = String),
    )
)]
async fn handle_docs() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        PUBLISHED.html.clone(),
    )
        .into_response();
    crate::web::page::html_headers(
        response.headers_mut(),
        CONTENT_SECURITY_POLICY,
        CACHE_CONTROL,
    );
    response
}

/// Whether `If-None-Match` names the current `etag` (or is `*`).
fn not_modified(request_headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(wanted) = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let current = etag.to_str().unwrap_or_default();
    wanted
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == current)
}

// The HTML reference. It reads the same JSON clients get, so the two cannot disagree.

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn object(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// The whole page.
fn render_docs(document: &Value) -> Markup {
    let info = &document["info"];
    let title = text(info, "title");
    let operations = operations(document);
    let tags: Vec<&Value> = document["tags"]
        .as_array()
        .map(|tags| tags.iter().collect())
        .unwrap_or_default();
    let schemas = object(&document["components"]["schemas"]);
    let schemes = object(&document["components"]["securitySchemes"]);
    let body = html! {
                header {
                    h1 { (title) }
                    span.muted { "version " (text(info, "version")) " · OpenAPI " (text(document, "openapi")) }
                }
                (prose(text(info, "description")))
                p {
                    "The same description as OpenAPI 3.1 JSON, for client generators and "
                    "validators: " a href="/openapi.json" { code { "/openapi.json" } } "."
                }
                nav {
                    h2 { "Contents" }
                    @for tag in &tags {
                        @let name = text(tag, "name");
                        h3 { a href={ "#tag-" (name) } { (name) } }
                        ul {
                            @for operation in operations.iter().filter(|operation| operation.tag == name) {
                                li {
                                    a href={ "#" (operation.id) } {
                                        code { (operation.method.to_uppercase()) " " (operation.path) }
                                    }
                                    " " (inline(operation.summary()))
                                }
                            }
                        }
                    }
                    p { a href="#schemas" { "Schemas" } " · " a href="#security" { "Authentication" } }
                }
                @for tag in &tags {
                    @let name = text(tag, "name");
                    section id={ "tag-" (name) } {
                        h2 { (name) }
                        (prose(text(tag, "description")))
                        @for operation in operations.iter().filter(|operation| operation.tag == name) {
                            (render_operation(operation))
                        }
                    }
                }
                section id="security" {
                    h2 { "Authentication" }
                    dl {
                        @for (name, scheme) in &schemes {
                            dt { code { (name) } }
                            dd {
                                "HTTP " (text(scheme, "scheme")) " authentication. "
                                (inline(text(scheme, "description")))
                            }
                        }
                    }
                }
                section id="schemas" {
                    h2 { "Schemas" }
                    @for (name, schema) in &schemas {
                        (render_schema(name, schema))
                    }
                }
    };
    crate::web::page::document(&format!("{title} · API reference"), body)
}

/// One operation of the document.
struct Operation<'a> {
    id: String,
    method: &'static str,
    path: &'a str,
    tag: String,
    value: &'a Value,
}

impl Operation<'_> {
    fn summary(&self) -> &str {
        text(self.value, "summary")
    }
}

/// Every operation, in path order.
fn operations(document: &Value) -> Vec<Operation<'_>> {
    let mut found = Vec::new();
    let Some(paths) = document["paths"].as_object() else {
        return found;
    };
    for (path, item) in paths {
        for method in METHODS {
            let Some(value) = item.get(method) else {
                continue;
            };
            let id = match text(value, "operationId") {
                "" => format!("{method}-{path}"),
                id => id.to_owned(),
            };
            let tag = value["tags"][0].as_str().unwrap_or("other").to_owned();
            found.push(Operation {
                id,
                method,
                path,
                tag,
                value,
            });
        }
    }
    found
}

fn render_operation(operation: &Operation<'_>) -> Markup {
    let value = operation.value;
    let parameters = value["parameters"].as_array().cloned().unwrap_or_default();
    let responses = object(&value["responses"]);
    html! {
        article id=(operation.id) {
            h3 { code { (operation.method.to_uppercase()) " " (operation.path) } }
            p { strong { (inline(operation.summary())) } }
            (prose(text(value, "description")))
            p { "Authentication: " (security(value)) }
            @if !parameters.is_empty() {
                h4 { "Parameters" }
                table {
                    tr { th { "Name" } th { "In" } th { "Type" } th { "Description" } }
                    @for parameter in &parameters {
                        tr {
                            td {
                                code { (text(parameter, "name")) }
                                @if parameter["required"] == Value::Bool(true) { " (required)" }
                            }
                            td { (text(parameter, "in")) }
                            td { (type_of(&parameter["schema"])) }
                            td { (inline(text(parameter, "description"))) }
                        }
                    }
                }
            }
            @if let Some(body) = value.get("requestBody") {
                h4 { "Request body" }
                (prose(text(body, "description")))
                (contents(&body["content"]))
            }
            h4 { "Responses" }
            @for (status, response) in &responses {
                p { strong { code { (status) } } " " (inline(text(response, "description"))) }
                @let headers = object(&response["headers"]);
                @if !headers.is_empty() {
                    ul {
                        @for (name, header) in &headers {
                            li { "Header " code { (name) } ": " (inline(text(header, "description"))) }
                        }
                    }
                }
                (contents(&response["content"]))
            }
        }
    }
}

/// Who may call an operation, in words.
fn security(operation: &Value) -> Markup {
    let Some(requirements) = operation["security"].as_array() else {
        return html! { "none" };
    };
    let choices: Vec<Markup> = requirements
        .iter()
        .map(|requirement| {
            let requirement = object(requirement);
            match requirement.iter().next() {
                None => html! { "none" },
                Some((scheme, scopes)) => {
                    let scopes: Vec<&str> = scopes
                        .as_array()
                        .map(|scopes| scopes.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    html! {
                        a href="#security" { code { (scheme) } }
                        @if !scopes.is_empty() {
                            " with scope "
                            @for (index, scope) in scopes.iter().enumerate() {
                                @if index > 0 { ", " }
                                code { (scope) }
                            }
                        }
                    }
                }
            }
        })
        .collect();
    html! {
        @for (index, choice) in choices.iter().enumerate() {
            @if index > 0 { ", or " }
            (choice)
        }
    }
}

/// The media types of a request or response body and their schemas.
fn contents(content: &Value) -> Markup {
    let content = object(content);
    if content.is_empty() {
        return html! {};
    }
    html! {
        ul {
            @for (media_type, body) in &content {
                li {
                    "Body " code { (media_type) } ": " (type_of(&body["schema"]))
                    @if let Some(example) = body.get("example").and_then(Value::as_str) {
                        details {
                            summary { "Example" }
                            pre { code { (example) } }
                        }
                    }
                }
            }
        }
    }
}

/// A schema in a few words, with links to named schemas.
fn type_of(schema: &Value) -> Markup {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return html! { a href={ "#schema-" (name) } { (name) } };
    }
    for (key, joiner) in [("oneOf", " or "), ("anyOf", " or "), ("allOf", " and ")] {
        if let Some(parts) = schema.get(key).and_then(Value::as_array) {
            return html! {
                @for (index, part) in parts.iter().enumerate() {
                    @if index > 0 { (joiner) }
                    (type_of(part))
                }
            };
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return html! {
            "one of "
            @for (index, value) in values.iter().enumerate() {
                @if index > 0 { ", " }
                code { (value.as_str().map_or_else(|| value.to_string(), str::to_owned)) }
            }
        };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.is_empty() {
        return html! { "any JSON value" };
    }
    html! {
        @for (index, name) in types.iter().enumerate() {
            @if index > 0 { " or " }
            @if *name == "array" {
                "array of " (type_of(&schema["items"]))
            } @else {
                (name)
                @if let (false, Some(format)) = (*name == "null", schema.get("format").and_then(Value::as_str)) {
                    " (" (format) ")"
                }
            }
        }
    }
}

fn render_schema(name: &str, schema: &Value) -> Markup {
    html! {
        article id={ "schema-" (name) } {
            h3 { (name) }
            (prose(text(schema, "description")))
            @if schema.get("properties").is_some() {
                (properties(schema))
            } @else if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
                p { "All the fields of:" }
                @for part in parts {
                    @if part.get("properties").is_some() {
                        (properties(part))
                    } @else {
                        p { (type_of(part)) }
                    }
                }
            } @else {
                p { (type_of(schema)) }
            }
        }
    }
}

/// The fields of an object schema, as a table.
fn properties(schema: &Value) -> Markup {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fields = object(&schema["properties"]);
    html! {
        table {
            tr { th { "Field" } th { "Type" } th { "Description" } }
            @for (field, property) in &fields {
                tr {
                    td {
                        code { (field) }
                        @if required.contains(&field.as_str()) { " (required)" }
                    }
                    td { (type_of(property)) }
                    td { (inline(description_of(property))) }
                }
            }
        }
    }
}

/// A property's description: its own, or for an optional reference (`oneOf` null or a
/// schema) the one utoipa puts beside the reference.
fn description_of(schema: &Value) -> &str {
    let own = text(schema, "description");
    if !own.is_empty() {
        return own;
    }
    ["oneOf", "anyOf", "allOf"]
        .into_iter()
        .filter_map(|key| schema.get(key).and_then(Value::as_array))
        .flatten()
        .map(|part| text(part, "description"))
        .find(|description| !description.is_empty())
        .unwrap_or_default()
}

/// Paragraphs (blank-line separated) with `code spans`.
fn prose(text: &str) -> Markup {
    html! {
        @for paragraph in text.split("\n\n").filter(|paragraph| !paragraph.trim().is_empty()) {
            p { (inline(paragraph)) }
        }
    }
}

/// One paragraph: line breaks become spaces and `` `text` `` becomes code. Everything
/// else is escaped by maud.
fn inline(text: &str) -> Markup {
    let joined = text.replace('\n', " ");
    html! {
        @for (index, part) in joined.split('`').enumerate() {
            @if index % 2 == 1 {
                code { (part) }
            } @else {
                (part)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_links_become_code_spans() {
        assert_eq!(
            without_doc_links("see [`Scope::DEFAULT`] and [`estimate`](crate::tokens::estimate)."),
            "see `Scope::DEFAULT` and `estimate`."
        );
        assert_eq!(without_doc_links("[`crate::stream`]"), "`stream`");
        assert_eq!(without_doc_links("a [link] stays"), "a [link] stays");
    }

    #[test]
    fn if_none_match_is_honoured() {
        let etag = HeaderValue::from_static("\"abc\"");
        let mut headers = HeaderMap::new();
        assert!(!not_modified(&headers, &etag));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(not_modified(&headers, &etag));
    }
}
