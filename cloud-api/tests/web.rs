//! The browser pages over real SQLite, driven through the router: sessions in cookies
//! (refresh, rotation, sign-out), CSRF on every form, keys on the account page, the
//! device confirmation, and the refusals — a form without its token, another user's key,
//! a provider answer this browser did not ask for. The sign-in round trip through a real
//! OpenID provider and a real browser is in the end-to-end suite (`tests/e2e/sign_in.rs`).

mod common;

use axum::body::Body;
use axum::http::Request;
use chrono::Utc;
use common::{Reply, TestApp};
use tandem_cloud::db::{api_keys, audit, sign_in_attempts, users};
use tandem_cloud::AppState;
use tandem_shared::Tier;

const SECRET_ENV: &str = "TANDEM_TEST_SESSION_SECRET";
const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

/// An app with sessions and one OpenID provider whose issuer is never reached (nothing
/// listens on its port).
async fn app() -> TestApp {
    let issuer = common::closed_port_url().await;
    let config = format!(
        r#"
        [auth]
        public_url = "http://tandem.test"
        [[auth.identity_providers]]
        name = "corp"
        kind = "oidc"
        issuer_url = "{issuer}"
        client_id = "tandem"
        display_name = "Corp SSO"
        [sessions]
        jwt_secret_env = "{SECRET_ENV}"
        "#
    );
    let app = TestApp::new("").await;
    let parsed = tandem_cloud::Config::parse_str(&config).unwrap();
    let state = AppState::with_env(parsed, app.state.db.clone(), &|name| {
        (name == SECRET_ENV).then(|| SECRET.to_owned())
    })
    .unwrap();
    app.with_state(state)
}

/// A browser session of `email`'s user, as the `Cookie` header value.
async fn session_of(app: &TestApp, email: &str) -> String {
    let user = match users::find_by_email(&app.state.db, email).await.unwrap() {
        Some(user) => user,
        None => users::create(&app.state.db, email, Tier::free())
            .await
            .unwrap(),
    };
    let signer = app.state.sessions.as_deref().unwrap();
    let tokens = signer
        .start(&app.state.db, &user, Utc::now())
        .await
        .unwrap();
    format!(
        "tandem_session={}; tandem_refresh={}",
        tokens.access_token, tokens.refresh_token
    )
}

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::get(path).header("accept", "text/html");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

async fn post_form(app: &TestApp, path: &str, cookie: &str, body: &str, html: bool) -> Reply {
    let mut request = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie);
    if html {
        request = request.header("accept", "text/html");
    }
    app.send(request.body(Body::from(body.to_owned())).unwrap())
        .await
}

/// The CSRF token of the first form on a page.
#[track_caller]
fn csrf_of(page: &Reply) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.text.find(marker).expect("a form with a CSRF token") + marker.len();
    let end = start + page.text[start..].find('"').unwrap();
    page.text[start..end].to_owned()
}

fn location(reply: &Reply) -> &str {
    reply.headers["location"].to_str().unwrap()
}

async fn live_keys(app: &TestApp, email: &str) -> Vec<api_keys::ApiKey> {
    let user = users::get_by_email(&app.state.db, email).await.unwrap();
    api_keys::list_for_user(&app.state.db, &user)
        .await
        .unwrap()
        .into_iter()
        .filter(|key| key.revoked_at.is_none())
        .collect()
}

#[tokio::test]
async fn pages_need_a_session_and_come_back_after_sign_in() {
    let app = app().await;
    let reply = get(&app, "/account", None).await;
    assert_eq!(reply.status, 303);
    assert_eq!(location(&reply), "/signin?next=%2Faccount");

    let reply = get(&app, "/device?user_code=bcdf-ghjk", None).await;
    assert_eq!(reply.status, 303);
    assert_eq!(
        location(&reply),
        "/signin?next=%2Fdevice%3Fuser_code%3Dbcdf-ghjk"
    );

    let page = get(&app, "/signin?next=%2Fdevice%3Fuser_code%3Dbcdf-ghjk", None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains(
            "id=\"sign-in-corp\" href=\"/auth/corp/start?next=%2Fdevice%3Fuser_code%3Dbcdf-ghjk\""
        ),
        "{}",
        page.text
    );
    assert!(page.text.contains("Sign in with Corp SSO"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("form-action 'self'"));
    assert_eq!(page.headers["x-frame-options"], "DENY");

    // Another site is never where sign-in leads.
    let page = get(&app, "/signin?next=https%3A%2F%2Fevil.example%2F", None).await;
    assert!(page.text.contains("next=%2Faccount"), "{}", page.text);
    assert!(!page.text.contains("evil.example"), "{}", page.text);
}

#[tokio::test]
async fn the_account_page_shows_the_user_their_quota_and_their_keys() {
    let app = app().await;
    let cookie = session_of(&app, "user@example.com").await;
    let page = get(&app, "/account", Some(&cookie)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("<dd id=\"email\">user@example.com</dd>"));
    assert!(page.text.contains("<dd id=\"tier\">pro</dd>"));
    assert!(page.text.contains("id=\"remaining-day\""));
    assert!(
        page.text
            .contains(&format!("<tr data-key-id=\"{}\">", app.key_id)),
        "{}",
        page.text
    );
    assert_eq!(page.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn keys_are_created_and_revoked_on_the_account_page() {
    let app = app().await;
    let cookie = session_of(&app, "user@example.com").await;
    let csrf = csrf_of(&get(&app, "/account", Some(&cookie)).await);
    let created = post_form(
        &app,
        "/account/keys",
        &cookie,
        &format!("csrf={csrf}&name=laptop&scope=completions&scope=chat&expires_in_days=30"),
        true,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let marker = "<code id=\"new-key\">";
    let start = created.text.find(marker).unwrap() + marker.len();
    let key = &created.text[start..start + created.text[start..].find('<').unwrap()];
    assert!(key.starts_with("tdm_"), "{key}");
    assert_eq!(app.call(key, "GET", "/v1/me", None).await.status, 200);

    let laptop = live_keys(&app, "user@example.com")
        .await
        .into_iter()
        .find(|stored| stored.name == "laptop")
        .unwrap();
    assert!(laptop.expires_at.is_some());
    let revoked = post_form(
        &app,
        &format!("/account/keys/{}/revoke", laptop.id),
        &cookie,
        &format!("csrf={csrf}"),
        true,
    )
    .await;
    assert_eq!(revoked.status, 303);
    assert_eq!(location(&revoked), "/account");
    assert_eq!(app.call(key, "GET", "/v1/me", None).await.status, 401);

    let entries = audit::recent(&app.state.db, None, 10).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|entry| entry.action.as_str()).collect();
    assert!(
        actions.starts_with(&["key.revoke", "key.create"]),
        "{actions:?}"
    );

    // Admin keys are not handed out here.
    let refused = post_form(
        &app,
        "/account/keys",
        &cookie,
        &format!("csrf={csrf}&name=root&scope=admin"),
        true,
    )
    .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.text.contains("cannot be given here"),
        "{}",
        refused.text
    );
}

#[tokio::test]
async fn forms_without_this_sessions_csrf_token_change_nothing() {
    let app = app().await;
    let cookie = session_of(&app, "user@example.com").await;
    let other = session_of(&app, "user@example.com").await;
    let others_token = csrf_of(&get(&app, "/account", Some(&other)).await);
    let before = live_keys(&app, "user@example.com").await.len();

    for body in [
        "name=sneaky&scope=chat".to_owned(),
        "csrf=&name=sneaky&scope=chat".to_owned(),
        // A token of another session of the same person is no better.
        format!("csrf={others_token}&name=sneaky&scope=chat"),
    ] {
        let reply = post_form(&app, "/account/keys", &cookie, &body, true).await;
        assert_eq!(reply.status, 403, "{body}: {}", reply.text);
        assert!(reply.text.contains("did not come from this site"));
    }
    // A script gets the API's JSON error.
    let reply = post_form(&app, "/account/keys", &cookie, "name=x&scope=chat", false).await;
    reply.assert_error(403, "forbidden");

    let revoke = post_form(
        &app,
        &format!("/account/keys/{}/revoke", app.key_id),
        &cookie,
        "",
        true,
    )
    .await;
    assert_eq!(revoke.status, 403);
    let signout = post_form(&app, "/signout", &cookie, "", true).await;
    assert_eq!(signout.status, 403);

    assert_eq!(live_keys(&app, "user@example.com").await.len(), before);
    assert_eq!(app.call(&app.key, "GET", "/v1/me", None).await.status, 200);
    assert_eq!(
        get(&app, "/account", Some(&cookie)).await.status,
        200,
        "still signed in"
    );
}

#[tokio::test]
async fn nobody_revokes_another_users_key() {
    let app = app().await;
    let mallory = session_of(&app, "mallory@example.com").await;
    let csrf = csrf_of(&get(&app, "/account", Some(&mallory)).await);
    let reply = post_form(
        &app,
        &format!("/account/keys/{}/revoke", app.key_id),
        &mallory,
        &format!("csrf={csrf}"),
        true,
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(app.call(&app.key, "GET", "/v1/me", None).await.status, 200);
    // Nor sees it.
    let page = get(&app, "/account", Some(&mallory)).await;
    assert!(!page.text.contains(&app.key_id));
}

#[tokio::test]
async fn a_device_code_is_approved_on_the_device_page_once() {
    let app = app().await;
    let started = app
        .send(
            Request::post("/oauth/device/code")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("client_id=tandem-cli&scope=completions+chat"))
                .unwrap(),
        )
        .await;
    let user_code = started.json["user_code"].as_str().unwrap().to_owned();
    let device_code = started.json["device_code"].as_str().unwrap().to_owned();
    assert_eq!(
        started.json["verification_uri"],
        "http://tandem.test/device"
    );

    let cookie = session_of(&app, "user@example.com").await;
    let entry = get(
        &app,
        &format!("/device?user_code={}", user_code.to_lowercase()),
        Some(&cookie),
    )
    .await;
    assert_eq!(entry.status, 200);
    assert!(
        entry.text.contains(&format!("value=\"{user_code}\"")),
        "{}",
        entry.text
    );
    let csrf = csrf_of(&entry);

    let review = post_form(
        &app,
        "/device",
        &cookie,
        &format!("csrf={csrf}&user_code={user_code}"),
        true,
    )
    .await;
    assert_eq!(review.status, 200, "{}", review.text);
    assert!(review.text.contains("id=\"approve\""));
    assert!(review.text.contains("completions, chat"));

    let confirm_body = format!("csrf={csrf}&user_code={user_code}&decision=approve");
    let done = post_form(&app, "/device/confirm", &cookie, &confirm_body, true).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(
        done.text.contains("data-result=\"approved\""),
        "{}",
        done.text
    );
    let user = users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap();
    let approved = &audit::recent(&app.state.db, None, 1).await.unwrap()[0];
    assert_eq!(
        (approved.action.as_str(), approved.actor.as_str()),
        ("device.approve", format!("user:{}", user.id).as_str())
    );

    let token = app
        .send(
            Request::post("/oauth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=tandem-cli&device_code={device_code}"
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(token.status, 200, "{}", token.text);
    let key = token.json["access_token"].as_str().unwrap();
    let me = app.call(key, "GET", "/v1/me", None).await;
    assert_eq!(me.json["user"]["email"], "user@example.com");

    // The same code again: already decided.
    let again = post_form(&app, "/device/confirm", &cookie, &confirm_body, true).await;
    assert_eq!(again.status, 400, "{}", again.text);
    assert!(again.text.contains("already decided"));
    // A made-up code finds nothing.
    let unknown = post_form(
        &app,
        "/device",
        &cookie,
        &format!("csrf={csrf}&user_code=BCDF-GHJK"),
        true,
    )
    .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.text.contains("No sign-in is waiting"));
}

#[tokio::test]
async fn an_expired_access_cookie_is_refreshed_and_the_old_refresh_token_ends_the_session() {
    let app = app().await;
    let cookie = session_of(&app, "user@example.com").await;
    let refresh_only = cookie.split("; ").nth(1).unwrap().to_owned();
    let page = get(&app, "/account", Some(&refresh_only)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let set: Vec<&str> = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert_eq!(set.len(), 2, "{set:?}");
    for cookie in &set {
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax"), "{cookie}");
        // http://tandem.test is not TLS; Secure would drop the cookie.
        assert!(!cookie.contains("Secure"), "{cookie}");
    }
    assert!(set
        .iter()
        .any(|cookie| cookie.starts_with("tandem_refresh=")));

    // The first refresh token again: someone kept a copy; the session ends.
    let reused = get(&app, "/account", Some(&refresh_only)).await;
    assert_eq!(reused.status, 303);
    let rotated: String = set
        .iter()
        .map(|cookie| cookie.split(';').next().unwrap())
        .collect::<Vec<_>>()
        .join("; ");
    assert_eq!(get(&app, "/account", Some(&rotated)).await.status, 303);
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = app().await;
    let cookie = session_of(&app, "user@example.com").await;
    let csrf = csrf_of(&get(&app, "/account", Some(&cookie)).await);
    let out = post_form(&app, "/signout", &cookie, &format!("csrf={csrf}"), true).await;
    assert_eq!(out.status, 303);
    assert_eq!(location(&out), "/signin");
    let cleared: Vec<&str> = out
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert!(
        cleared.iter().all(|cookie| cookie.contains("Max-Age=0")),
        "{cleared:?}"
    );
    // The cookies a thief copied before sign-out no longer work either.
    assert_eq!(get(&app, "/account", Some(&cookie)).await.status, 303);
    let entries = audit::recent(&app.state.db, None, 1).await.unwrap();
    assert_eq!(entries[0].action, "sign_out");
}

#[tokio::test]
async fn a_provider_answer_this_browser_did_not_ask_for_is_refused() {
    let app = app().await;
    let now = Utc::now();
    let attempt = sign_in_attempts::SignInAttempt {
        provider: "corp".into(),
        pkce_verifier: "verifier".into(),
        nonce: "nonce".into(),
        next_path: "/account".into(),
        expires_at: now + chrono::Duration::minutes(10),
    };
    sign_in_attempts::create(&app.state.db, "the-real-state", &attempt, now)
        .await
        .unwrap();
    let users_before = users::count(&app.state.db).await.unwrap();

    // No cookie (an attacker's link), a cookie of another attempt, no state at all.
    for (query, cookie) in [
        ("code=c&state=the-real-state", None),
        (
            "code=c&state=the-real-state",
            Some("tandem_sign_in=another-state"),
        ),
        ("code=c", Some("tandem_sign_in=the-real-state")),
    ] {
        let reply = get(&app, &format!("/auth/corp/callback?{query}"), cookie).await;
        assert_eq!(reply.status, 400, "{query} {cookie:?}: {}", reply.text);
        assert!(reply.text.contains("did not start here"), "{}", reply.text);
    }
    // A state that matches the cookie but was never issued (or was used up).
    let reply = get(
        &app,
        "/auth/corp/callback?code=c&state=made-up",
        Some("tandem_sign_in=made-up"),
    )
    .await;
    assert_eq!(reply.status, 400);

    // An answer from another issuer than the attempt's (a mix-up, RFC 9207).
    sign_in_attempts::create(&app.state.db, "mixed-up", &attempt, now)
        .await
        .unwrap();
    let reply = get(
        &app,
        "/auth/corp/callback?code=c&state=mixed-up&iss=https%3A%2F%2Fevil.example",
        Some("tandem_sign_in=mixed-up"),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);

    // The real one, reporting that the person cancelled: refused, and used up.
    let reply = get(
        &app,
        "/auth/corp/callback?error=access_denied&state=the-real-state",
        Some("tandem_sign_in=the-real-state"),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert!(reply.text.contains("access_denied"));
    assert_eq!(
        sign_in_attempts::take(&app.state.db, "the-real-state", now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(users::count(&app.state.db).await.unwrap(), users_before);
    assert_eq!(
        get(&app, "/auth/nobody/callback?state=x", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_a_clear_error_page() {
    let app = app().await;
    let reply = get(&app, "/auth/corp/start?next=%2Faccount", None).await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert!(reply
        .text
        .contains("Corp SSO could not complete the sign-in"));
    let reply = get(&app, "/auth/nobody/start", None).await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn without_browser_sign_in_the_device_page_names_the_administrator_command() {
    let app = TestApp::new("").await;
    let page = get(&app, "/device?user_code=bcdf-ghjk", None).await;
    assert_eq!(page.status, 200);
    assert!(page
        .text
        .contains("tandem-cloud device approve --code BCDF-GHJK"));
    let page = get(&app, "/device?user_code=%3Cscript%3E", None).await;
    assert!(!page.text.contains("<script>") && page.text.contains("--code CODE"));
    let signin = get(&app, "/signin", None).await;
    assert!(signin.text.contains("not set up on this server"));
    let account = get(&app, "/account", None).await;
    assert_eq!(account.status, 303);
}

#[tokio::test]
async fn forged_session_cookies_are_strangers() {
    let app = app().await;
    let user = users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap();
    let claims = serde_json::json!({
        "iss": "http://tandem.test", "aud": "tandem-web", "sub": user.id, "sid": "s",
        "iat": Utc::now().timestamp(), "exp": Utc::now().timestamp() + 600, "jti": "j",
    });
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-servers-secret-not-the-servers"),
    )
    .unwrap();
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!(
        "{}.{}.",
        engine.encode(br#"{"alg":"none","typ":"JWT"}"#),
        engine.encode(claims.to_string())
    );
    // Signed with the real secret, but for a session that was never started.
    let no_session = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    for token in [forged, unsigned, no_session, "garbage".to_owned()] {
        let reply = get(&app, "/account", Some(&format!("tandem_session={token}"))).await;
        assert_eq!(reply.status, 303, "{token}: {}", reply.text);
        let reply = post_form(
            &app,
            "/account/keys",
            &format!("tandem_session={token}"),
            "csrf=x&name=evil&scope=chat",
            true,
        )
        .await;
        assert_eq!(reply.status, 303, "{token}");
    }
    assert_eq!(live_keys(&app, "user@example.com").await.len(), 1);
}

#[tokio::test]
async fn one_address_cannot_flood_the_sign_in_attempts() {
    let app = app().await;
    // The issuer is unreachable, so each admitted start is a 502 after its check; the
    // limit answers before anything is stored or fetched.
    let mut statuses = Vec::new();
    for _ in 0..tandem_cloud::state::SIGN_INS_PER_MINUTE + 1 {
        statuses.push(get(&app, "/auth/corp/start", None).await.status.as_u16());
    }
    assert!(
        statuses[..statuses.len() - 1]
            .iter()
            .all(|status| *status == 502),
        "{statuses:?}"
    );
    let flooded = get(&app, "/auth/corp/start", None).await;
    assert_eq!(flooded.status, 429, "{}", flooded.text);
    assert!(flooded.text.contains("too many sign-ins"));
    let script = app
        .send(
            Request::get("/auth/corp/start")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    script.assert_error(429, "rate_limited");
}
