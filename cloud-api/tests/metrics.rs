//! `GET /metrics`: what requests, providers, limits and breakers show up as, and who may
//! scrape it.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{closed_port_url, completion_body, provider_toml, Reply, TestApp};
use tandem_cloud::{AppState, Config};

async fn scrape(app: &TestApp, token: Option<&str>) -> Reply {
    let mut request = Request::get("/metrics");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn requests_providers_limits_and_breakers_are_counted() {
    // `down` refuses connections and opens its breaker at the first failure; `local`
    // answers after it. Two requests an hour.
    let config = format!(
        "{}[[providers]]\nname = \"local\"\nkind = \"local\"\n\
         [routing]\nbreaker_failures = 1\n\
         [tiers.pro]\nrequests_per_hour = 2\nburst_per_minute = 0\n",
        provider_toml("ollama", &closed_port_url().await, "")
    );
    let app = TestApp::new(&config).await;
    for _ in 0..2 {
        assert_eq!(app.complete(completion_body()).await.status, 200);
    }
    assert_eq!(app.complete(completion_body()).await.status, 429);

    let reply = scrape(&app, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = reply.text;
    for line in [
        r#"tandem_http_requests_total{route="/v1/completions",method="POST",status="200"} 2"#,
        r#"tandem_http_requests_total{route="/v1/completions",method="POST",status="429"} 1"#,
        // The first request found `ollama` down, which opened its breaker; the second was
        // planned without it.
        r#"tandem_provider_attempts_total{provider="ollama",outcome="unreachable"} 1"#,
        r#"tandem_provider_attempts_total{provider="local",outcome="answered"} 2"#,
        r#"tandem_provider_breaker_state{provider="ollama",state="open"} 1"#,
        r#"tandem_provider_breaker_state{provider="local",state="closed"} 1"#,
        r#"tandem_rate_limit_rejections_total{limit="requests_per_hour"} 1"#,
        r#"tandem_usage_records_total{result="committed"} 3"#,
    ] {
        assert!(text.contains(line), "`{line}` missing from:\n{text}");
    }
    assert!(
        text.contains(r#"tandem_usage_tokens_total{provider="local",kind="prompt"}"#),
        "{text}"
    );
    // Three key checks; the cache answers some (how many depends on when the server
    // first read the auth epoch, which empties the cache).
    let value = |series: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series))
            .map_or(0, |value| value.trim().parse().unwrap())
    };
    let hits = value(r#"tandem_key_cache_lookups_total{result="hit"}"#);
    let misses = value(r#"tandem_key_cache_lookups_total{result="miss"}"#);
    assert_eq!((hits + misses, misses >= 1), (3, true), "{text}");
    // Nothing about who asked.
    assert!(!text.contains("user@example.com") && !text.contains(&app.key_id));
}

#[tokio::test]
async fn a_configured_token_guards_the_scrape() {
    let app = TestApp::new("").await;
    let config =
        Config::parse_str("[metrics]\ntoken_env = \"TANDEM_TEST_METRICS_TOKEN\"\n").unwrap();
    let state = AppState::with_env(config.clone(), app.state.db.clone(), &|name| {
        (name == "TANDEM_TEST_METRICS_TOKEN").then(|| "scrape-secret".to_owned())
    })
    .unwrap();
    let guarded = app.with_state(state);
    scrape(&guarded, None)
        .await
        .assert_error(401, "unauthorized");
    scrape(&guarded, Some("wrong"))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(scrape(&guarded, Some("scrape-secret")).await.status, 200);

    // A token variable that is not set stops the start.
    let error = AppState::with_env(config, guarded.state.db.clone(), &|_| None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable `TANDEM_TEST_METRICS_TOKEN` (named by metrics.token_env) is not set"
    );

    let disabled = Config::parse_str("[metrics]\nenabled = false\n").unwrap();
    let state = AppState::with_env(disabled, guarded.state.db.clone(), &|_| None).unwrap();
    let off = guarded.with_state(state);
    scrape(&off, None).await.assert_error(404, "not_found");
}
