//! `GET /.well-known/jwks.json`: the public key of RS256/ES256 browser sessions, which
//! verifies the session tokens the server makes; a JSON 404 for HS256 or no sessions.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use common::{Reply, TestApp};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tandem_cloud::db::users;
use tandem_cloud::sessions::{AccessClaims, AUDIENCE};
use tandem_cloud::{AppState, Config};
use tandem_shared::Tier;

// Test-only keys, generated for these tests with `openssl genpkey` (PKCS#8 PEM). They are
// public: never sign anything real with them.
const RSA_2048: &str = include_str!("fixtures/sessions/rsa-2048.pem");
const EC_P256: &str = include_str!("fixtures/sessions/ec-p256.pem");

const KEY_ENV: &str = "TANDEM_TEST_SESSION_KEY";
const SECRET_ENV: &str = "TANDEM_TEST_SESSION_SECRET";

/// The app of `TestApp` with `[sessions]` from `sessions_toml`, the key or secret in the
/// environment as `value`.
async fn app_with_sessions(sessions_toml: &str, value: &'static str) -> TestApp {
    let app = TestApp::new("").await;
    let config = Config::parse_str(&format!("[sessions]\n{sessions_toml}")).unwrap();
    let state = AppState::with_env(config, app.state.db.clone(), &|name| {
        (name == KEY_ENV || name == SECRET_ENV).then(|| value.to_owned())
    })
    .unwrap();
    app.with_state(state)
}

/// `GET /.well-known/jwks.json`, through the router without a socket.
async fn get_jwks(app: &TestApp) -> Reply {
    app.send(
        Request::get("/.well-known/jwks.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn the_jwks_of_rs256_and_es256_sessions_verifies_their_tokens() {
    for (algorithm, key, alg) in [
        ("RS256", RSA_2048, Algorithm::RS256),
        ("ES256", EC_P256, Algorithm::ES256),
    ] {
        let app = app_with_sessions(
            &format!("algorithm = \"{algorithm}\"\nprivate_key_env = \"{KEY_ENV}\"\n"),
            key,
        )
        .await;
        let reply = get_jwks(&app).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(
            reply.headers["cache-control"].to_str().unwrap(),
            "public, max-age=300"
        );
        assert!(reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let keys = reply.json["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{}", reply.text);
        let jwk = &keys[0];
        assert_eq!(jwk["alg"], algorithm);
        assert_eq!(jwk["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(jwk.get(private).is_none(), "{private} in {}", reply.text);
        }

        // A session token of this server, checked by someone holding only the JWKS.
        let signer = app.state.sessions.clone().unwrap();
        let user = users::create(&app.state.db, "jwks@example.com", Tier::pro())
            .await
            .unwrap();
        let issued = signer
            .start(&app.state.db, &user, Utc::now())
            .await
            .unwrap();
        let set: JwkSet = serde_json::from_value(reply.json.clone()).unwrap();
        let kid = jsonwebtoken::decode_header(&issued.access_token)
            .unwrap()
            .kid
            .unwrap();
        let key = DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap();
        let mut validation = Validation::new(alg);
        validation.set_issuer(&["tandem-cloud"]);
        validation.set_audience(&[AUDIENCE]);
        let claims = jsonwebtoken::decode::<AccessClaims>(&issued.access_token, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(
            (claims.sub.as_str(), claims.sid.as_str()),
            (user.id.as_str(), issued.session_id.as_str())
        );
    }
}

#[tokio::test]
async fn hs256_or_no_sessions_has_no_jwks() {
    let hs256 = app_with_sessions(
        &format!("jwt_secret_env = \"{SECRET_ENV}\"\n"),
        "a-32-byte-secret-of-random-data!",
    )
    .await;
    assert!(hs256.state.sessions.is_some());
    let message = get_jwks(&hs256).await.assert_error(404, "not_found");
    assert!(message.contains("/.well-known/jwks.json"), "{message}");

    let none = TestApp::new("").await;
    assert!(none.state.sessions.is_none());
    get_jwks(&none).await.assert_error(404, "not_found");
}

#[tokio::test]
async fn a_key_of_the_wrong_type_stops_the_start() {
    let app = TestApp::new("").await;
    let config = Config::parse_str(&format!(
        "[sessions]\nalgorithm = \"RS256\"\nprivate_key_env = \"{KEY_ENV}\"\n"
    ))
    .unwrap();
    let error = AppState::with_env(config, app.state.db.clone(), &|name| {
        (name == KEY_ENV).then(|| EC_P256.to_owned())
    })
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "environment variable `{KEY_ENV}` (named by sessions.private_key_env): this is an EC \
             key on P-256, but algorithm RS256 needs an RSA key (at least 2048 bits)"
        )
    );
}
