//! The OpenAPI document (`GET /openapi.json`) and its HTML reference (`GET /docs`): the
//! document is OpenAPI 3.1, names every route the app serves, and describes what the
//! routes really answer; the reference renders every path under a strict CSP.
//!
//! Routes are kept in sync two ways. [`every_registered_route_is_documented`] reads the
//! `.route(…)` calls of the modules `src/http/mod.rs` declares, at test time, so a route
//! added without a `#[utoipa::path]` fails here. [`every_documented_route_is_served`]
//! sends each documented operation through the app and checks the router matched it
//! (the metrics count requests by matched route template), so a documented route that is
//! not merged into the app fails too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use axum::body::Body;
use axum::http::Request;
use common::{Reply, TestApp};
use serde_json::{json, Value};
use tandem_shared::{ErrorBody, ErrorDetail};

/// The path prefixes of the API, as opposed to the browser pages under `src/web`.
const API_PREFIXES: [&str; 9] = [
    "/v1/",
    "/admin/",
    "/oauth/",
    "/health",
    "/ready",
    "/metrics",
    "/.well-known/jwks.json",
    "/openapi.json",
    "/docs",
];

async fn get(app: &TestApp, path: &str) -> Reply {
    app.send(Request::get(path).body(Body::empty()).unwrap())
        .await
}

async fn document(app: &TestApp) -> Value {
    let reply = get(app, "/openapi.json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

/// Every `(METHOD, path)` the document describes.
fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_cacheable() {
    let app = TestApp::new("").await;
    let reply = get(&app, "/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.headers["cache-control"], "public, max-age=300");
    assert!(
        reply.json["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        reply.json["openapi"]
    );
    assert_eq!(reply.json["info"]["version"], env!("CARGO_PKG_VERSION"));
    // No credentials are needed to read it.
    assert!(reply.json["paths"]["/openapi.json"]["get"]["security"] == json!([{}]));

    let etag = reply.headers["etag"].to_str().unwrap().to_owned();
    let again = app
        .send(
            Request::get("/openapi.json")
                .header("if-none-match", &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(again.status, 304);
    assert!(again.text.is_empty());
}

/// The `(METHOD, path)` pairs routed by `.route(…)` calls in the modules `mod.rs`
/// declares. A path may be a string literal or a constant of the same file.
fn registered_routes() -> BTreeSet<(String, String)> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let root = std::fs::read_to_string(directory.join("mod.rs")).unwrap();
    let modules: Vec<&str> = root
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let declaration = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("pub(crate) mod "))
                .or_else(|| line.strip_prefix("mod "))?;
            declaration.strip_suffix(';')
        })
        .collect();
    assert!(modules.contains(&"completions"), "{modules:?}");
    let mut routes = BTreeSet::new();
    for module in modules {
        let source = std::fs::read_to_string(directory.join(format!("{module}.rs"))).unwrap();
        for call in route_calls(&source) {
            let (path, rest) = call.split_once(',').expect("`.route(path, handler)`");
            let path = path.trim();
            let path = match path.strip_prefix('"') {
                Some(literal) => literal.trim_end_matches('"').to_owned(),
                None => constant(&source, path),
            };
            let mut found_method = false;
            for method in ["get", "post", "put", "patch", "delete"] {
                let needle = format!("{method}(");
                let mut rest = rest;
                while let Some(at) = rest.find(&needle) {
                    let before = rest[..at].chars().next_back();
                    if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                        routes.insert((method.to_uppercase(), path.clone()));
                        found_method = true;
                    }
                    rest = &rest[at + needle.len()..];
                }
            }
            assert!(
                found_method,
                "no method router in `.route({call})` of {module}.rs"
            );
        }
    }
    routes
}

/// The argument text of every `.route(` call, parentheses balanced.
fn route_calls(source: &str) -> Vec<String> {
    let mut calls = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        let arguments = &rest[at + ".route(".len()..];
        let mut depth = 1;
        let mut end = arguments.len();
        for (index, c) in arguments.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = index;
                        break;
                    }
                }
                _ => {}
            }
        }
        calls.push(arguments[..end].to_owned());
        rest = &arguments[end..];
    }
    calls
}

/// The value of `const NAME: &str = "…";` in `source`.
fn constant(source: &str, name: &str) -> String {
    let declaration = format!("const {name}: &str = \"");
    let start = source
        .find(&declaration)
        .unwrap_or_else(|| panic!("no `{declaration}` for a route path"))
        + declaration.len();
    let length = source[start..].find('"').unwrap();
    source[start..start + length].to_owned()
}

#[tokio::test]
async fn every_registered_route_is_documented() {
    let app = TestApp::new("").await;
    let documented = documented_operations(&document(&app).await);
    let registered: BTreeSet<_> = registered_routes()
        .into_iter()
        .filter(|(_, path)| API_PREFIXES.iter().any(|prefix| path.starts_with(prefix)))
        .collect();
    assert!(registered.len() >= 20, "{registered:?}");
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes without a `#[utoipa::path]` listed in http/openapi.rs: {undocumented:?}"
    );
    let stale: Vec<_> = documented.difference(&registered).collect();
    assert!(
        stale.is_empty(),
        "documented, but no `.route(…)` serves them: {stale:?}"
    );
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = TestApp::new("").await;
    let (admin, _) = app.admin_key().await;
    let operations = documented_operations(&document(&app).await);
    for (method, path) in &operations {
        // Placeholder parameters: the route matches whatever the handler then says.
        let uri = path
            .replace("{email}", "nobody@example.com")
            .replace("{id}", "k_none");
        let request = Request::builder()
            .method(method.as_str())
            .uri(uri)
            .header("authorization", format!("Bearer {admin}"))
            .body(Body::empty())
            .unwrap();
        let reply = app.send(request).await;
        assert_ne!(reply.status, 405, "{method} {path}: {}", reply.text);
    }
    let metrics = get(&app, "/metrics").await.text;
    for (method, path) in &operations {
        let series = format!("route=\"{path}\",method=\"{method}\"");
        assert!(
            metrics.contains(&series),
            "{method} {path} was not matched by the router (no `{series}` in /metrics)"
        );
    }
}

/// Checks `value` against `schema` (the subset of JSON Schema utoipa writes), strictly:
/// an object may hold no field its schema does not describe. Returns what does not fit.
fn check(document: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap();
        let target = &document["components"]["schemas"][name];
        assert!(!target.is_null(), "dangling reference {reference}");
        return check(document, target, value, at);
    }
    if let Some(parts) = schema.get("oneOf").or(schema.get("anyOf")) {
        let fits = parts
            .as_array()
            .unwrap()
            .iter()
            .any(|part| check(document, part, value, at).is_empty());
        return if fits {
            vec![]
        } else {
            vec![format!("{at}: {value} fits none of {schema}")]
        };
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        // Flattened structs: each part sees only its own fields.
        let mut problems = Vec::new();
        let mut known = BTreeSet::new();
        for part in parts {
            let part = resolve(document, part);
            known.extend(properties(part).keys().cloned());
            let mut only_mine = value.clone();
            if let Some(object) = only_mine.as_object_mut() {
                object.retain(|key, _| properties(part).contains_key(key));
            }
            problems.extend(check(document, part, &only_mine, at));
        }
        if let Some(object) = value.as_object() {
            for key in object.keys().filter(|key| !known.contains(*key)) {
                problems.push(format!("{at}.{key}: not in the schema"));
            }
        }
        return problems;
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.contains(value) {
            return vec![format!("{at}: {value} is not one of {values:?}")];
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => return vec![], // Any value.
    };
    let type_fits = types.iter().any(|name| match *name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown schema type {other}"),
    });
    if !type_fits {
        return vec![format!("{at}: {value} is not {types:?}")];
    }
    let mut problems = Vec::new();
    if let Some(items) = value.as_array() {
        for (index, item) in items.iter().enumerate() {
            problems.extend(check(
                document,
                &schema["items"],
                item,
                &format!("{at}[{index}]"),
            ));
        }
    }
    if let (Some(object), Some(described)) = (value.as_object(), schema.get("properties")) {
        for (key, item) in object {
            match described.get(key) {
                Some(property) => {
                    problems.extend(check(document, property, item, &format!("{at}.{key}")))
                }
                None => problems.push(format!("{at}.{key}: not in the schema")),
            }
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            if !object.contains_key(name) {
                problems.push(format!("{at}.{name}: required but missing"));
            }
        }
    }
    problems
}

fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            &document["components"]["schemas"][reference.rsplit('/').next().unwrap()]
        }
        None => schema,
    }
}

fn properties(schema: &Value) -> serde_json::Map<String, Value> {
    schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Asserts that `reply` to `method path` (the path template) has a documented status
/// and, for JSON, a body that fits the documented schema.
#[track_caller]
fn check_answer(document: &Value, method: &str, path: &str, reply: &Reply) {
    let operation = &document["paths"][path][method.to_lowercase()];
    assert!(!operation.is_null(), "{method} {path} is not documented");
    let status = reply.status.as_u16().to_string();
    let response = &operation["responses"][&status];
    assert!(
        !response.is_null(),
        "{method} {path} answered {status}, which is not documented: {}",
        reply.text
    );
    let content_type = reply
        .headers
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned());
    let Some(content_type) = content_type else {
        assert!(
            response.get("content").is_none(),
            "{method} {path} {status}: no body"
        );
        return;
    };
    let media = response["content"]
        .as_object()
        .and_then(|content| {
            content
                .iter()
                .find(|(documented, _)| content_type.starts_with(documented.as_str()))
        })
        .unwrap_or_else(|| {
            panic!("{method} {path} {status}: content type {content_type} is not documented")
        })
        .1;
    if content_type.starts_with("application/json") {
        let problems = check(document, &media["schema"], &reply.json, "body");
        assert!(
            problems.is_empty(),
            "{method} {path} {status} does not fit its schema:\n{}\nbody: {}",
            problems.join("\n"),
            reply.text
        );
    }
}

#[tokio::test]
async fn live_answers_fit_their_documented_schemas() {
    let app = TestApp::new("").await;
    let document = document(&app).await;
    let (admin, _) = app.admin_key().await;
    let key = app.key.clone();
    let call = |key: &str, method: &'static str, path: &str, body: Option<Value>| {
        let (app, key, path) = (&app, key.to_owned(), path.to_owned());
        async move { app.call(&key, method, &path, body).await }
    };

    for path in ["/health", "/ready", "/metrics", "/openapi.json", "/docs"] {
        check_answer(&document, "GET", path, &get(&app, path).await);
    }
    check_answer(
        &document,
        "GET",
        "/.well-known/jwks.json",
        &get(&app, "/.well-known/jwks.json").await,
    );

    let completion = app.complete(common::completion_body()).await;
    assert_eq!(completion.status, 200, "{}", completion.text);
    check_answer(&document, "POST", "/v1/completions", &completion);
    check_answer(
        &document,
        "POST",
        "/v1/completions",
        &app.complete(json!({})).await,
    );
    let invalid = app
        .complete(json!({"language": "", "path": "", "prefix": "", "suffix": ""}))
        .await;
    check_answer(&document, "POST", "/v1/completions", &invalid);
    let unauthenticated = call("tdm_nope", "POST", "/v1/completions", Some(json!({}))).await;
    check_answer(&document, "POST", "/v1/completions", &unauthenticated);
    // The built-in provider holds no conversations: a documented 503.
    let chat = app
        .chat(json!({"task": "explain", "language": "rust", "path": "a.rs", "code": "fn a() {}"}))
        .await;
    check_answer(&document, "POST", "/v1/chat", &chat);

    for path in ["/v1/me", "/v1/keys", "/v1/usage", "/v1/account/export"] {
        check_answer(&document, "GET", path, &call(&key, "GET", path, None).await);
    }
    check_answer(
        &document,
        "GET",
        "/v1/usage",
        &call(&key, "GET", "/v1/usage?group_by=week", None).await,
    );
    let created = call(&key, "POST", "/v1/keys", Some(json!({"name": "laptop"}))).await;
    assert_eq!(created.status, 201, "{}", created.text);
    check_answer(&document, "POST", "/v1/keys", &created);
    let created_id = created.json["id"].as_str().unwrap().to_owned();
    let revoked = call(&key, "DELETE", &format!("/v1/keys/{created_id}"), None).await;
    check_answer(&document, "DELETE", "/v1/keys/{id}", &revoked);
    let missing = call(&key, "DELETE", "/v1/keys/k_none", None).await;
    check_answer(&document, "DELETE", "/v1/keys/{id}", &missing);

    check_answer(
        &document,
        "GET",
        "/admin/users",
        &call(&admin, "GET", "/admin/users", None).await,
    );
    check_answer(
        &document,
        "GET",
        "/admin/users",
        &call(&key, "GET", "/admin/users", None).await,
    );
    let tier = call(
        &admin,
        "PUT",
        "/admin/users/user@example.com/tier",
        Some(json!({"tier": "enterprise"})),
    )
    .await;
    assert_eq!(tier.status, 200, "{}", tier.text);
    check_answer(&document, "PUT", "/admin/users/{email}/tier", &tier);
    let admin_revoked = call(&admin, "DELETE", &format!("/admin/keys/{created_id}"), None).await;
    check_answer(&document, "DELETE", "/admin/keys/{id}", &admin_revoked);
    let audit = call(&admin, "GET", "/admin/audit", None).await;
    assert!(!audit.json["entries"].as_array().unwrap().is_empty());
    check_answer(&document, "GET", "/admin/audit", &audit);

    let form = |path: &str, body: &str| {
        Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let codes = app
        .send(form("/oauth/device/code", "client_id=tandem-cli"))
        .await;
    assert_eq!(codes.status, 200, "{}", codes.text);
    check_answer(&document, "POST", "/oauth/device/code", &codes);
    let device_code = codes.json["device_code"].as_str().unwrap();
    let pending = app
        .send(form(
            "/oauth/token",
            &format!(
                "grant_type=urn:ietf:params:oauth:grant-type:device_code\
                 &client_id=tandem-cli&device_code={device_code}"
            ),
        ))
        .await;
    assert_eq!(pending.json["error"], "authorization_pending");
    check_answer(&document, "POST", "/oauth/token", &pending);
    let stranger = app.send(form("/oauth/token", "client_id=other")).await;
    check_answer(&document, "POST", "/oauth/token", &stranger);

    let refused = call(
        &key,
        "DELETE",
        "/v1/account",
        Some(json!({"confirm": "someone@example.com"})),
    )
    .await;
    check_answer(&document, "DELETE", "/v1/account", &refused);
    let deleted = call(
        &key,
        "DELETE",
        "/v1/account",
        Some(json!({"confirm": "user@example.com"})),
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    check_answer(&document, "DELETE", "/v1/account", &deleted);
}

#[tokio::test]
async fn stream_events_fit_their_documented_schemas() {
    let app = TestApp::new("").await;
    let document = document(&app).await;
    let mut body = common::completion_body();
    body["stream"] = json!(true);
    let response = app.post_unread("/v1/completions", &body).await;
    assert_eq!(response.status(), 200);
    let documented = &document["paths"]["/v1/completions"]["post"]["responses"]["200"];
    assert!(documented["content"]["text/event-stream"].is_object());
    let events = common::read_events(response).await;
    assert!(events.len() >= 2, "{events:?}");
    let schemas = &document["components"]["schemas"];
    for (name, data) in &events {
        let schema = match name.as_str() {
            "delta" => &schemas["Delta"],
            "done" => &schemas["CompletionResponse"],
            "error" => &schemas["ErrorBody"],
            other => panic!("undocumented event {other}"),
        };
        let problems = check(&document, schema, data, name);
        assert!(problems.is_empty(), "{problems:?}");
    }
    assert_eq!(events.last().unwrap().0, "done");
}

/// The check above is what catches drift, so it must catch it.
#[tokio::test]
async fn the_schema_check_refuses_unknown_and_missing_fields() {
    let app = TestApp::new("").await;
    let document = document(&app).await;
    let schema = json!({"$ref": "#/components/schemas/AdminUsersPage"});
    let fits = json!({"users": [{"id": "u", "email": "e", "tier": "pro", "created_at": "t"}], "total": 1, "offset": 0});
    assert_eq!(
        check(&document, &schema, &fits, "body"),
        Vec::<String>::new()
    );
    let mut extra = fits.clone();
    extra["users"][0]["nickname"] = json!("x");
    assert_eq!(
        check(&document, &schema, &extra, "body"),
        ["body.users[0].nickname: not in the schema"]
    );
    let mut missing = fits.clone();
    missing.as_object_mut().unwrap().remove("offset");
    assert_eq!(
        check(&document, &schema, &missing, "body"),
        ["body.offset: required but missing"]
    );
    let flattened = json!({"$ref": "#/components/schemas/AccountDeleted"});
    assert!(check(
        &document,
        &flattened,
        &json!({"deleted": true, "keys": 1, "usage_rows": 2}),
        "body"
    )
    .is_empty());
    assert_eq!(
        check(
            &document,
            &flattened,
            &json!({"deleted": true, "keys": 1, "usage_rows": 2, "x": 0}),
            "body"
        ),
        ["body.x: not in the schema"]
    );
}

#[tokio::test]
async fn the_error_schema_is_error_body() {
    let app = TestApp::new("").await;
    let document = document(&app).await;
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["ErrorBody"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    assert_eq!(schemas["ErrorBody"]["required"], json!(["error"]));
    // Every field `ErrorDetail` can send, and only those, are described.
    let full = ErrorBody {
        error: ErrorDetail {
            code: "rate_limited".into(),
            message: "m".into(),
            tier: Some("free".into()),
            feature: Some("chat".into()),
            required_tier: Some("pro".into()),
            limit: Some("requests_per_hour".into()),
            limit_value: Some(50),
            reset_at: Some("2026-12-04T00:00:00Z".into()),
            retry_after_secs: Some(60),
        },
    };
    let sent: BTreeSet<String> = serde_json::to_value(&full).unwrap()["error"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let described: BTreeSet<String> = properties(&schemas["ErrorDetail"])
        .keys()
        .cloned()
        .collect();
    assert_eq!(sent, described);
    assert_eq!(
        schemas["ErrorDetail"]["required"],
        json!(["code", "message"])
    );
    let problems = check(
        &document,
        &schemas["ErrorBody"],
        &serde_json::to_value(&full).unwrap(),
        "body",
    );
    assert!(problems.is_empty(), "{problems:?}");
    // Every error code is listed where `code` is described.
    let code_description = schemas["ErrorDetail"]["properties"]["code"]["description"]
        .as_str()
        .unwrap();
    for code in tandem_shared::ErrorCode::ALL {
        assert!(
            code_description.contains(&format!("`{}`", code.as_str())),
            "{code:?}"
        );
    }
    // Every 4xx and 5xx of a JSON route carries an error body.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                let expected = if path.starts_with("/oauth/") {
                    "#/components/schemas/OAuthErrorBody"
                } else {
                    "#/components/schemas/ErrorBody"
                };
                assert_eq!(schema, expected, "{method} {path} {status}");
            }
        }
    }
}

#[tokio::test]
async fn the_reference_page_is_self_contained_and_names_every_path() {
    let app = TestApp::new("").await;
    let document = document(&app).await;
    let reply = get(&app, "/docs").await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let policy = reply.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-inline") && !policy.contains("script-src"));
    assert_eq!(reply.headers["x-frame-options"], "DENY");
    let page = &reply.text;
    assert!(!page.contains("<script"), "no script");
    assert!(
        !page.contains(" style="),
        "no inline style (the CSP would block it)"
    );
    for attribute in ["src=\"http", "href=\"http", "href=\"//", "src=\"//"] {
        assert!(
            !page.contains(attribute),
            "nothing from elsewhere: {attribute}"
        );
    }
    assert!(page.contains("href=\"/assets/tandem.css\""));
    for path in document["paths"].as_object().unwrap().keys() {
        assert!(page.contains(path.as_str()), "{path} is not on the page");
    }
    let schemas: BTreeMap<_, _> = document["components"]["schemas"]
        .as_object()
        .unwrap()
        .clone()
        .into_iter()
        .collect();
    for name in schemas.keys() {
        assert!(page.contains(&format!("id=\"schema-{name}\"")), "{name}");
    }
    // Every link within the page has its target.
    let mut rest = page.as_str();
    while let Some(at) = rest.find("href=\"#") {
        let target = &rest[at + 7..];
        let target = &target[..target.find('"').unwrap()];
        assert!(
            page.contains(&format!("id=\"{target}\"")),
            "dangling #{target}"
        );
        rest = &rest[at + 7..];
    }
}

/// The document also passes an independent validator, `openapi-spec-validator` (PyPI):
/// `pip install openapi-spec-validator`. Without it the test is skipped, unless
/// `TANDEM_REQUIRE_EDITOR_CLIENTS=1` (as in CI) makes a missing tool a failure.
#[tokio::test]
async fn an_independent_validator_accepts_the_document() {
    let check = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output();
    if !check.is_ok_and(|output| output.status.success()) {
        let install = "`pip install openapi-spec-validator`";
        assert!(
            std::env::var("TANDEM_REQUIRE_EDITOR_CLIENTS").as_deref() != Ok("1"),
            "openapi-spec-validator is required (TANDEM_REQUIRE_EDITOR_CLIENTS=1) but missing: {install}"
        );
        eprintln!("skipping: openapi-spec-validator is not installed ({install})");
        return;
    }
    let app = TestApp::new("").await;
    let text = get(&app, "/openapi.json").await.text;
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("openapi.json");
    std::fs::write(&file, text).unwrap();
    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
