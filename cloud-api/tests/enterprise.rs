//! Bearer JWTs from the organisation's identity provider (`[enterprise]`), against a
//! loopback provider serving its JWKS: valid tokens sign in as the identity
//! `enterprise`/`sub` and map to users and tiers, and forged, expired, misaddressed and
//! algorithm-confused tokens are refused with 401 without touching the users table.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{completion_body, Reply, TestApp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tandem_cloud::db::identities::{self, Linked, VerifiedIdentity};
use tandem_cloud::db::on;
use tandem_cloud::db::{audit, users};

const ISSUER: &str = "https://idp.example.com/realms/acme";
const AUDIENCE: &str = "tandem-cloud";

const RSA_PEM: &[u8] = include_bytes!("fixtures/enterprise/rsa.pem");
const RSA_PUBLIC_PEM: &[u8] = include_bytes!("fixtures/enterprise/rsa.pub.pem");
const RSA_ROTATED_PEM: &[u8] = include_bytes!("fixtures/enterprise/rsa-rotated.pem");
const RSA_FORGER_PEM: &[u8] = include_bytes!("fixtures/enterprise/rsa-forger.pem");
const EC_PEM: &[u8] = include_bytes!("fixtures/enterprise/ec.pem");
const ED_PEM: &[u8] = include_bytes!("fixtures/enterprise/ed25519.pem");

/// A JWK of the fixtures with `kid` (and `alg` when given) added.
fn jwk(file: &str, kid: &str, alg: Option<&str>) -> Value {
    let path = format!(
        "{}/tests/fixtures/enterprise/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut jwk: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    if let Some(alg) = alg {
        jwk["alg"] = json!(alg);
    }
    jwk
}

/// The keys the provider publishes at first: RSA with `alg`, EC P-256 without one (its
/// curve pins ES256), Ed25519.
fn published_keys() -> Vec<Value> {
    vec![
        jwk("rsa.jwk.json", "rsa-1", Some("RS256")),
        jwk("ec.jwk.json", "ec-1", None),
        jwk("ed25519.jwk.json", "ed-1", Some("EdDSA")),
    ]
}

/// The organisation's identity provider: serves `/jwks.json` and counts fetches.
struct IdentityProvider {
    jwks_url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<Mutex<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl IdentityProvider {
    async fn start() -> IdentityProvider {
        let keys = Arc::new(Mutex::new(published_keys()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(Mutex::new(false));
        let (served, counted, fails) = (keys.clone(), fetches.clone(), failing.clone());
        let router = Router::new().route(
            "/jwks.json",
            get(move || {
                let (served, counted, fails) = (served.clone(), counted.clone(), fails.clone());
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    if *fails.lock().unwrap() {
                        return Err(StatusCode::INTERNAL_SERVER_ERROR);
                    }
                    let keys = served.lock().unwrap().clone();
                    Ok(Json(json!({ "keys": keys })))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        IdentityProvider {
            jwks_url: format!("http://{address}/jwks.json"),
            keys,
            fetches,
            failing,
            task,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn publish(&self, key: Value) {
        self.keys.lock().unwrap().push(key);
    }

    fn fail(&self, failing: bool) {
        *self.failing.lock().unwrap() = failing;
    }
}

impl Drop for IdentityProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `[enterprise]` section for `idp`; `extra` goes inside it, before the roles.
fn config(idp: &IdentityProvider, extra: &str) -> String {
    format!(
        r#"
[enterprise]
jwks_url = "{}"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
roles_claim = "realm_access.roles"
{extra}

[enterprise.roles]
developer = "pro"
lead = "enterprise"
"tandem-admin" = "admin"
"#,
        idp.jwks_url
    )
}

async fn app_for(idp: &IdentityProvider, extra: &str) -> TestApp {
    TestApp::new(&config(idp, extra)).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims of a valid token for `sub` with `roles`.
fn claims(sub: &str, email: &str, roles: &[&str]) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "email": email,
        "email_verified": true,
        "iat": now(),
        "exp": now() + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
        "realm_access": { "roles": roles },
    })
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rsa_token(claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        "rsa-1",
        &EncodingKey::from_rsa_pem(RSA_PEM).unwrap(),
        claims,
    )
}

/// A token assembled by hand: any header, any signature.
fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn users_count(app: &TestApp) -> i64 {
    users::count(&app.state.db).await.unwrap()
}

/// The audit log about the user of `email`, newest first.
async fn audit_of(app: &TestApp, email: &str) -> Vec<audit::AuditEntry> {
    let user = users::get_by_email(&app.state.db, email).await.unwrap();
    audit::recent(&app.state.db, Some(&user.id), 50)
        .await
        .unwrap()
}

fn actions(entries: &[audit::AuditEntry]) -> Vec<&str> {
    entries.iter().map(|entry| entry.action.as_str()).collect()
}

async fn me(app: &TestApp, token: &str) -> Reply {
    app.call(token, "GET", "/v1/me", None).await
}

/// Asserts a 401 in the API's error shape that says `says` and does not echo the token.
#[track_caller]
fn assert_refused(reply: &Reply, token: &str, says: &str) {
    let message = reply.assert_error(401, "unauthorized");
    assert!(message.contains(says), "`{message}` should say `{says}`");
    assert!(
        !reply.text.contains(token),
        "the token is echoed: {}",
        reply.text
    );
    let signature = token.rsplit('.').next().unwrap_or_default();
    if signature.len() > 8 {
        assert!(!reply.text.contains(signature), "{}", reply.text);
    }
}

#[tokio::test]
async fn a_valid_token_creates_the_user_with_the_mapped_tier() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "").await;
    assert_eq!(users_count(&app).await, 1);

    let token = rsa_token(&claims(
        "u-ada",
        "Ada@Acme.example",
        &["developer", "staff"],
    ));
    let reply = me(&app, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["user"]["email"], "ada@acme.example");
    assert_eq!(reply.json["tier"], "pro");
    assert_eq!(users_count(&app).await, 2);
    let ada = users::get_by_email(&app.state.db, "ada@acme.example")
        .await
        .unwrap();
    assert_eq!(ada.tier.as_str(), "pro");

    // The same token again (cached), and completions through it.
    assert_eq!(me(&app, &token).await.status, 200);
    let completion = app
        .call(&token, "POST", "/v1/completions", Some(completion_body()))
        .await;
    assert_eq!(completion.status, 200, "{}", completion.text);
    // Usage is recorded under the stand-in key id `jwt:<sub>`.
    let key_ids: Vec<String> = on!(
        &app.state.db,
        sqlx::query_scalar("SELECT key_id FROM usage WHERE user_id = $1").bind(&ada.id),
        fetch_all
    )
    .unwrap();
    assert_eq!(key_ids, ["jwt:u-ada"]);

    // EC (ES256 pinned by the curve) and Ed25519 tokens are accepted too.
    let ec = sign(
        Algorithm::ES256,
        "ec-1",
        &EncodingKey::from_ec_pem(EC_PEM).unwrap(),
        &claims("u-ada", "ada@acme.example", &["developer"]),
    );
    assert_eq!(me(&app, &ec).await.status, 200);
    let ed = sign(
        Algorithm::EdDSA,
        "ed-1",
        &EncodingKey::from_ed_pem(ED_PEM).unwrap(),
        &claims("u-ada", "ada@acme.example", &["developer"]),
    );
    assert_eq!(me(&app, &ed).await.status, 200);

    // A role change at the provider moves the user, audited once; creation was audited
    // once however many tokens came.
    let promoted = rsa_token(&claims("u-ada", "ada@acme.example", &["developer", "lead"]));
    let reply = me(&app, &promoted).await;
    assert_eq!(reply.json["tier"], "enterprise", "{}", reply.text);
    assert_eq!(me(&app, &promoted).await.json["tier"], "enterprise");
    let entries = audit_of(&app, "ada@acme.example").await;
    assert_eq!(actions(&entries), ["user.set_tier", "sign_in.enterprise"]);
    assert_eq!(entries[0].actor_key.as_deref(), Some("jwt:u-ada"));
    assert_eq!(entries[0].detail["from"], "pro");
    assert_eq!(entries[0].detail["to"], "enterprise");
    assert_eq!(entries[1].detail["tier"], "pro");
    assert_eq!(entries[1].detail["linked"], "new_user");
    assert_eq!(entries[1].detail["subject"], "u-ada");
    assert_eq!(users_count(&app).await, 2);
    // One JWKS fetch served every key.
    assert_eq!(idp.fetches(), 1);

    // API keys still work beside tokens.
    assert_eq!(me(&app, &app.key).await.status, 200);
}

#[tokio::test]
async fn an_existing_user_is_joined_by_email_and_takes_the_providers_tier() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "").await;
    // `user@example.com` exists on tier pro; the provider says enterprise.
    let token = rsa_token(&claims("u-user", "user@example.com", &["lead"]));
    let reply = me(&app, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["tier"], "enterprise");
    assert_eq!(users_count(&app).await, 1);
    let user = users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap();
    let entries = audit_of(&app, "user@example.com").await;
    // The subject joined the user (once), then moved them.
    assert_eq!(actions(&entries), ["user.set_tier", "sign_in.enterprise"]);
    assert_eq!(entries[1].detail["linked"], "new_identity");
    assert_eq!(entries[1].detail["tier"], "pro");
    let linked = identities::list_for_user(&app.state.db, &user.id)
        .await
        .unwrap();
    assert_eq!(linked.len(), 1);
    assert_eq!(
        (linked[0].provider.as_str(), linked[0].subject.as_str()),
        ("enterprise", "u-user")
    );
    // Later tokens of the subject audit nothing more.
    let again = rsa_token(&claims("u-user", "user@example.com", &["lead"]));
    assert_eq!(me(&app, &again).await.status, 200);
    assert_eq!(audit_of(&app, "user@example.com").await.len(), 2);
}

#[tokio::test]
async fn a_known_subject_stays_its_user_when_the_email_changes() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "").await;
    let first = rsa_token(&claims("u-ada", "ada@acme.example", &["developer"]));
    assert_eq!(me(&app, &first).await.status, 200);
    let ada = users::get_by_email(&app.state.db, "ada@acme.example")
        .await
        .unwrap();

    // The provider now says another email for the same subject.
    let renamed = rsa_token(&claims(
        "u-ada",
        "ada.lovelace@acme.example",
        &["developer"],
    ));
    let reply = me(&app, &renamed).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["user"]["id"], ada.id.as_str(), "{}", reply.text);
    assert_eq!(reply.json["user"]["email"], "ada@acme.example");
    assert_eq!(users_count(&app).await, 2);
    assert!(
        users::find_by_email(&app.state.db, "ada.lovelace@acme.example")
            .await
            .unwrap()
            .is_none(),
        "no user was created for the new email"
    );
    // The identity remembers the email last given; nothing more was audited.
    let linked = identities::list_for_user(&app.state.db, &ada.id)
        .await
        .unwrap();
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0].email, "ada.lovelace@acme.example");
    let entries = audit_of(&app, "ada@acme.example").await;
    assert_eq!(actions(&entries), ["sign_in.enterprise"]);
}

/// A sign-in on the account pages, as `provider`'s account `subject` vouching for `email`.
async fn browser_sign_in(
    app: &TestApp,
    provider: &str,
    subject: &str,
    email: &str,
) -> (users::User, Linked) {
    let identity = VerifiedIdentity {
        provider: provider.to_owned(),
        subject: subject.to_owned(),
        email: email.to_owned(),
    };
    let tier = tandem_shared::Tier::free();
    identities::sign_in(&app.state.db, &identity, &tier, chrono::Utc::now())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_browser_identity_and_a_token_with_the_same_email_are_one_user() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "").await;
    // Grace signed in on the account pages first; her token joins her.
    let (grace, _) = browser_sign_in(&app, "github", "4242", "grace@acme.example").await;
    let token = rsa_token(&claims("u-grace", "Grace@Acme.example", &["developer"]));
    let reply = me(&app, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["user"]["id"], grace.id.as_str());
    assert_eq!(reply.json["tier"], "pro");
    let mut providers: Vec<String> = identities::list_for_user(&app.state.db, &grace.id)
        .await
        .unwrap()
        .into_iter()
        .map(|identity| identity.provider)
        .collect();
    providers.sort();
    assert_eq!(providers, ["enterprise", "github"]);
    assert_eq!(
        audit_of(&app, "grace@acme.example").await[1].detail["linked"],
        "new_identity"
    );

    // Hopper came with a token first; her browser sign-in joins her.
    let token = rsa_token(&claims("u-hopper", "hopper@acme.example", &["developer"]));
    let reply = me(&app, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (hopper, linked) = browser_sign_in(&app, "github", "7", "hopper@acme.example").await;
    assert_eq!(reply.json["user"]["id"], hopper.id.as_str());
    assert_eq!(linked, Linked::NewIdentity);
    assert_eq!(users_count(&app).await, 3);
}

#[tokio::test]
async fn concurrent_first_requests_make_one_user() {
    let idp = IdentityProvider::start().await;
    let app = Arc::new(app_for(&idp, "").await);
    let token = rsa_token(&claims("u-rush", "rush@acme.example", &["developer"]));
    let replies = futures::future::join_all((0..8).map(|_| {
        let (app, token) = (app.clone(), token.clone());
        async move { me(&app, &token).await }
    }))
    .await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(users_count(&app).await, 2);
    let entries = audit_of(&app, "rush@acme.example").await;
    assert_eq!(actions(&entries), ["sign_in.enterprise"]);
}

#[tokio::test]
async fn the_admin_role_gives_the_admin_scope() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "").await;
    let admin = rsa_token(&claims(
        "u-root",
        "root@acme.example",
        &["developer", "tandem-admin"],
    ));
    let reply = app.call(&admin, "GET", "/admin/users", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let developer = rsa_token(&claims("u-dev", "dev@acme.example", &["developer"]));
    let reply = app.call(&developer, "GET", "/admin/users", None).await;
    let message = reply.assert_error(403, "forbidden");
    assert!(message.contains("`admin`"), "{message}");
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_refused() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "").await;
    let good = claims("u-eve", "eve@acme.example", &["developer", "tandem-admin"]);
    let with = |key: &str, value: Value| {
        let mut claims = good.clone();
        claims[key] = value;
        claims
    };

    let forged = sign(
        Algorithm::RS256,
        "rsa-1",
        &EncodingKey::from_rsa_pem(RSA_FORGER_PEM).unwrap(),
        &good,
    );
    let expired = rsa_token(&with("exp", json!(now() - 3600)));
    let not_yet = rsa_token(&with("nbf", json!(now() + 3600)));
    let wrong_audience = rsa_token(&with("aud", json!("someone-else")));
    let wrong_issuer = rsa_token(&with("iss", json!("https://evil.example")));
    let unverified = rsa_token(&with("email_verified", json!(false)));
    let mut no_email = good.clone();
    no_email.as_object_mut().unwrap().remove("email");
    let no_email = rsa_token(&no_email);
    let mut no_sub = good.clone();
    no_sub.as_object_mut().unwrap().remove("sub");
    let no_sub = rsa_token(&no_sub);
    // The payload of a valid token under a header it was not signed with.
    let valid = rsa_token(&good);
    let mut parts = valid.split('.');
    let (_, payload, signature) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
    let swapped_header = format!(
        "{}.{payload}.{signature}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}).to_string())
    );
    let tampered = {
        let mut claims = good.clone();
        claims["realm_access"]["roles"] = json!(["lead", "tandem-admin"]);
        format!(
            "{}.{}.{signature}",
            valid.split('.').next().unwrap(),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    };

    let cases = [
        (forged, "signature does not verify"),
        (expired, "expired"),
        (not_yet, "not valid yet"),
        (wrong_audience, "audience"),
        (wrong_issuer, "issuer"),
        (unverified, "not verified"),
        (no_email, "no `email` claim"),
        (no_sub, "`sub`"),
        (swapped_header, "signature does not verify"),
        (tampered, "signature does not verify"),
        (rsa_token(&json!(["not", "claims"])), "JSON objects"),
    ];
    for (token, says) in &cases {
        for path in ["/v1/me", "/admin/users"] {
            let reply = app.call(token, "GET", path, None).await;
            assert_refused(&reply, token, says);
        }
        let reply = app
            .call(token, "POST", "/v1/completions", Some(completion_body()))
            .await;
        assert_refused(&reply, token, says);
    }
    assert_eq!(users_count(&app).await, 1, "no refusal created a user");
    let usage: i64 = on!(
        &app.state.db,
        sqlx::query_scalar("SELECT COUNT(*) FROM usage"),
        fetch_one
    )
    .unwrap();
    assert_eq!(usage, 0);
}

#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "").await;
    let claims = claims("u-mal", "mal@acme.example", &["developer", "tandem-admin"]);

    // `alg: none`, with and without a signature.
    let none = raw_token(&json!({"alg": "none", "kid": "rsa-1"}), &claims, b"");
    let none_signed = raw_token(&json!({"alg": "none", "kid": "rsa-1"}), &claims, b"sig");
    // HS256 "signed" with the RSA public key as the shared secret.
    let hs256_public_pem = sign(
        Algorithm::HS256,
        "rsa-1",
        &EncodingKey::from_secret(RSA_PUBLIC_PEM),
        &claims,
    );
    // And with the JWK's modulus, another form of the public key.
    let modulus = jwk("rsa.jwk.json", "rsa-1", None)["n"]
        .as_str()
        .unwrap()
        .to_owned();
    let hs256_modulus = sign(
        Algorithm::HS256,
        "rsa-1",
        &EncodingKey::from_secret(modulus.as_bytes()),
        &claims,
    );
    // RS256 under the EC key's `kid` (signed with an RSA key, as an attacker would).
    let rs256_on_ec = sign(
        Algorithm::RS256,
        "ec-1",
        &EncodingKey::from_rsa_pem(RSA_FORGER_PEM).unwrap(),
        &claims,
    );
    // PS256 on a key published for RS256 only.
    let ps256_on_rs256 = sign(
        Algorithm::PS256,
        "rsa-1",
        &EncodingKey::from_rsa_pem(RSA_PEM).unwrap(),
        &claims,
    );
    // ES384 on the P-256 key.
    let es384_on_p256 = raw_token(&json!({"alg": "ES384", "kid": "ec-1"}), &claims, &[7; 96]);
    // An algorithm this server does not know at all.
    let unknown = raw_token(&json!({"alg": "ES512", "kid": "ec-1"}), &claims, &[7; 132]);
    // A key carried in the token itself is never used.
    let embedded_jwk = raw_token(
        &json!({"alg": "RS256", "kid": "attacker", "jwk": jwk("rsa-rotated.jwk.json", "attacker", None)}),
        &claims,
        b"sig",
    );

    let cases = [
        (none, "not signed"),
        (none_signed, "not signed"),
        (hs256_public_pem, "shared-secret"),
        (hs256_modulus, "shared-secret"),
        (rs256_on_ec, "algorithm"),
        (ps256_on_rs256, "algorithm"),
        (es384_on_p256, "algorithm"),
        (unknown, "not accepted"),
        (embedded_jwk, "does not publish"),
    ];
    for (token, says) in &cases {
        let reply = me(&app, token).await;
        assert_refused(&reply, token, says);
        let reply = app.call(token, "GET", "/admin/users", None).await;
        assert_refused(&reply, token, says);
    }
    assert_eq!(users_count(&app).await, 1, "no refusal created a user");
}

#[tokio::test]
async fn a_token_without_a_mapped_role_or_default_tier_is_forbidden() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "").await;
    let token = rsa_token(&claims(
        "u-guest",
        "guest@acme.example",
        &["visitor", "tandem-admin"],
    ));
    let reply = me(&app, &token).await;
    let message = reply.assert_error(403, "forbidden");
    assert!(message.contains("`realm_access.roles`"), "{message}");
    assert!(message.contains("`visitor`"), "{message}");
    assert!(message.contains("default_tier"), "{message}");
    assert!(!reply.text.contains(&token));
    assert_eq!(users_count(&app).await, 1);

    // With a default tier, the same token is accepted on it.
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "default_tier = \"free\"").await;
    let reply = me(&app, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["tier"], "free");
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_once_per_window() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "jwks_min_refresh_secs = 1").await;
    let rotated_key = EncodingKey::from_rsa_pem(RSA_ROTATED_PEM).unwrap();
    let rotated = sign(
        Algorithm::RS256,
        "rsa-2",
        &rotated_key,
        &claims("u-rot", "rot@acme.example", &["developer"]),
    );

    // Not published yet: the first miss fetches, and the key is not there.
    assert_refused(&me(&app, &rotated).await, &rotated, "does not publish");
    assert_eq!(idp.fetches(), 1);
    // The provider rotates; within the window the cache stands.
    idp.publish(jwk("rsa-rotated.jwk.json", "rsa-2", Some("RS256")));
    assert_refused(&me(&app, &rotated).await, &rotated, "does not publish");
    assert_eq!(idp.fetches(), 1);
    // After the window, one refetch finds it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = me(&app, &rotated).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(idp.fetches(), 2);
    // Old keys keep working; nothing more is fetched.
    let old = rsa_token(&claims("u-old", "old@acme.example", &["developer"]));
    assert_eq!(me(&app, &old).await.status, 200);
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_costs_one_fetch() {
    let idp = IdentityProvider::start().await;
    let app = Arc::new(app_for(&idp, "jwks_min_refresh_secs = 3600").await);
    let key = EncodingKey::from_rsa_pem(RSA_FORGER_PEM).unwrap();
    let claims = claims("u-flood", "flood@acme.example", &["developer"]);
    let tokens: Vec<String> = (0..40)
        .map(|i| sign(Algorithm::RS256, &format!("kid-{i}"), &key, &claims))
        .collect();
    let replies = futures::future::join_all(tokens.iter().map(|token| {
        let app = app.clone();
        async move { me(&app, token).await }
    }))
    .await;
    for (reply, token) in replies.iter().zip(&tokens) {
        assert_refused(reply, token, "does not publish");
    }
    for token in &tokens[..5] {
        assert_refused(&me(&app, token).await, token, "does not publish");
    }
    assert_eq!(
        idp.fetches(),
        1,
        "concurrent and later misses share one fetch"
    );
    // The keys that one fetch brought serve valid tokens.
    let valid = rsa_token(&claims);
    assert_eq!(me(&app, &valid).await.status, 200);
    assert_eq!(idp.fetches(), 1);
    assert_eq!(users_count(&app).await, 2);
}

#[tokio::test]
async fn a_failing_jwks_is_a_503_while_cached_keys_keep_working() {
    let idp = IdentityProvider::start().await;
    idp.fail(true);
    let app = app_for(&idp, "jwks_min_refresh_secs = 1").await;
    let token = rsa_token(&claims("u-out", "out@acme.example", &["developer"]));
    let reply = me(&app, &token).await;
    let message = reply.assert_error(503, "provider_unavailable");
    assert!(message.contains("signing keys"), "{message}");
    assert_eq!(users_count(&app).await, 1);

    // The provider recovers: after the window the keys are fetched.
    idp.fail(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(me(&app, &token).await.status, 200);
    let fetched = idp.fetches();

    // It fails again: a new kid cannot be checked (503), known keys still work.
    idp.fail(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new_kid = sign(
        Algorithm::RS256,
        "rsa-3",
        &EncodingKey::from_rsa_pem(RSA_ROTATED_PEM).unwrap(),
        &claims("u-new", "new@acme.example", &["developer"]),
    );
    me(&app, &new_kid)
        .await
        .assert_error(503, "provider_unavailable");
    assert_eq!(idp.fetches(), fetched + 1);
    let another = rsa_token(&claims("u-out", "out@acme.example", &["developer"]));
    assert_eq!(me(&app, &another).await.status, 200);
}

#[tokio::test]
async fn logout_with_a_token_is_refused_clearly_and_keys_are_untouched() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "").await;
    let token = rsa_token(&claims("u-user", "user@example.com", &["developer"]));
    let reply = app.call(&token, "DELETE", "/v1/keys/current", None).await;
    let message = reply.assert_error(422, "invalid_request");
    assert!(message.contains("identity provider"), "{message}");
    assert!(message.contains("no current API key"), "{message}");
    // The user's API key was not revoked.
    assert_eq!(me(&app, &app.key).await.status, 200);
    // Listing keys works; none is "current".
    let keys = app.call(&token, "GET", "/v1/keys", None).await;
    assert_eq!(keys.status, 200, "{}", keys.text);
    let listed = keys.json["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("current").is_none());
    // A key is revoked by its id.
    let path = format!("/v1/keys/{}", app.key_id);
    let reply = app.call(&token, "DELETE", &path, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json["revoked_at"].is_string(), "{}", reply.text);
    me(&app, &app.key).await.assert_error(401, "unauthorized");
}

#[tokio::test]
async fn verified_tokens_are_forgotten_when_the_auth_epoch_moves() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "").await;
    let token = rsa_token(&claims("u-gone", "gone@acme.example", &["developer"]));
    let first = me(&app, &token).await;
    assert_eq!(first.status, 200, "{}", first.text);
    // The user is deleted (the epoch moves); the cached token must not outlive them.
    let user = users::get_by_email(&app.state.db, "gone@acme.example")
        .await
        .unwrap();
    tandem_cloud::db::account::delete(
        &app.state.db,
        &user,
        &audit::Actor::Cli,
        "cli",
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    tokio::time::sleep(tandem_cloud::state::AUTH_EPOCH_POLL * 3).await;
    let again = me(&app, &token).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_ne!(again.json["user"]["id"], first.json["user"]["id"]);
    assert_eq!(users_count(&app).await, 2);
}

#[tokio::test]
async fn a_token_cannot_make_an_admin_key() {
    let idp = IdentityProvider::start().await;
    let app = app_for(&idp, "").await;
    let admin = rsa_token(&claims(
        "u-root",
        "root@acme.example",
        &["developer", "tandem-admin"],
    ));
    // The admin scope would outlive the role at the provider: refused.
    for scopes in [json!(["admin"]), json!(["completions", "admin"])] {
        let body = json!({"name": "ops", "scopes": scopes});
        let reply = app.call(&admin, "POST", "/v1/keys", Some(body)).await;
        let message = reply.assert_error(403, "forbidden");
        assert!(message.contains("follow their roles"), "{message}");
        assert!(
            message.contains("tandem-cloud keys create") && message.contains("--scopes admin"),
            "{message}"
        );
    }
    // Other scopes are fine, and the default ones.
    let body = json!({"name": "laptop", "scopes": ["completions", "chat"]});
    let reply = app.call(&admin, "POST", "/v1/keys", Some(body)).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json["scopes"], json!(["completions", "chat"]));
    let reply = app
        .call(&admin, "POST", "/v1/keys", Some(json!({"name": "ci"})))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let root = users::get_by_email(&app.state.db, "root@acme.example")
        .await
        .unwrap();
    let keys: i64 = on!(
        &app.state.db,
        sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE user_id = $1").bind(&root.id),
        fetch_one
    )
    .unwrap();
    assert_eq!(keys, 2, "no admin key was made");
    // A caller without the role is refused the scope it lacks, as before.
    let developer = rsa_token(&claims("u-dev", "dev@acme.example", &["developer"]));
    let body = json!({"name": "ops", "scopes": ["admin"]});
    let reply = app.call(&developer, "POST", "/v1/keys", Some(body)).await;
    let message = reply.assert_error(403, "forbidden");
    assert!(message.contains("`admin`"), "{message}");
}

#[tokio::test]
async fn without_enterprise_a_jwt_is_a_malformed_api_key() {
    let idp = IdentityProvider::start().await;
    let app = TestApp::new("").await;
    let token = rsa_token(&claims("u-ada", "ada@acme.example", &["developer"]));
    let reply = me(&app, &token).await;
    let message = reply.assert_error(401, "unauthorized");
    assert!(message.starts_with("malformed API key"), "{message}");
    assert!(!message.contains("identity provider"), "{message}");
    assert_eq!(idp.fetches(), 0);

    // With it, a value that is neither says both forms.
    let app = app_for(&idp, "").await;
    let message = me(&app, "not-a-key")
        .await
        .assert_error(401, "unauthorized");
    assert!(message.contains("identity provider"), "{message}");
    assert_eq!(idp.fetches(), 0);
}
