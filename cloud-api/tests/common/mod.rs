//! Shared test support: an app over a real SQLite file, request helpers, and a loopback
//! vendor fixture answering with the vendor bodies each test gives it.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tandem_cloud::db::{self, api_keys, users};
use tandem_cloud::{keys, AppState, Config};
use tandem_e2e::ProviderFixture;
use tandem_shared::Tier;
use tower::ServiceExt;

/// The provider key the fixture config's `api_key_env` resolves to.
pub const PROVIDER_KEY: &str = "sk-fixture-0123456789";
/// The env var name tests pass to `api_key_env`.
pub const PROVIDER_KEY_ENV: &str = "TANDEM_TEST_PROVIDER_KEY";

/// An app over a fresh migrated database with one user and key.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    /// A valid key of `user@example.com` (tier pro).
    pub key: String,
    pub key_id: String,
    /// The database, on the backend `TANDEM_TEST_DATABASE_URL` chooses; removed on drop.
    pub db: db::scratch::ScratchDb,
}

impl TestApp {
    /// `config` is TOML text, as in a `--config` file.
    pub async fn new(config: &str) -> TestApp {
        TestApp::on(config, db::scratch::ScratchDb::new().await.unwrap()).await
    }

    /// Like [`TestApp::new`], on a given scratch database.
    pub async fn on(config: &str, scratch: db::scratch::ScratchDb) -> TestApp {
        let config = Config::parse_str(config).expect("test config is valid");
        let pool = scratch.pool().await.unwrap();
        let user = users::create(&pool, "user@example.com", Tier::pro())
            .await
            .unwrap();
        let key = keys::generate();
        let stored = api_keys::insert(&pool, &user, "test", &key).await.unwrap();
        let state = AppState::with_env(config, pool, &|name| {
            (name == PROVIDER_KEY_ENV).then(|| PROVIDER_KEY.to_owned())
        })
        .expect("providers build");
        TestApp {
            router: tandem_cloud::app(state.clone()),
            state,
            key: key.secret,
            key_id: stored.id,
            db: scratch,
        }
    }

    /// The same database, user and key, served by `state` (another configuration).
    pub fn with_state(self, state: AppState) -> TestApp {
        TestApp {
            router: tandem_cloud::app(state.clone()),
            state,
            ..self
        }
    }

    /// Sends a request through the router, without a socket.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// POST /v1/completions with this app's key and a JSON body.
    pub async fn complete(&self, body: Value) -> Reply {
        self.post("/v1/completions", body).await
    }

    /// POST /v1/chat with this app's key and a JSON body.
    pub async fn chat(&self, body: Value) -> Reply {
        self.post("/v1/chat", body).await
    }

    /// `method path` with `key`, and a JSON body when given.
    pub async fn call(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let builder = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"));
        let request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    /// POST `path` with this app's key and a JSON body; the response unread (streams).
    pub async fn post_unread(&self, path: &str, body: &Value) -> axum::response::Response {
        self.router
            .clone()
            .oneshot(
                Request::post(path)
                    .header("authorization", format!("Bearer {}", self.key))
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap()
    }

    /// POST `path` with this app's key and a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(
            Request::post(path)
                .header("authorization", format!("Bearer {}", self.key))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }
}

impl TestApp {
    /// Creates `root@example.com` (tier enterprise) with a key of the `admin` scope:
    /// the key and the administrator's user id.
    pub async fn admin_key(&self) -> (String, String) {
        let admin = users::create(&self.state.db, "root@example.com", Tier::enterprise())
            .await
            .unwrap();
        let generated = keys::generate();
        let grant = api_keys::KeyGrant {
            name: "admin".into(),
            scopes: vec![tandem_shared::Scope::Admin],
            expires_at: None,
        };
        api_keys::insert_granted(&self.state.db, &admin, &grant, &generated)
            .await
            .unwrap();
        (generated.secret, admin.id)
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// Asserts the status and the shared error shape with this code; returns the message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "body: {}",
            self.text
        );
        assert_eq!(self.json["error"]["code"], code, "body: {}", self.text);
        let object = self.json.as_object().unwrap();
        assert_eq!(object.len(), 1, "only `error` at the top: {}", self.text);
        self.json["error"]["message"]
            .as_str()
            .expect("message is a string")
            .to_owned()
    }
}

/// A small valid completion body.
pub fn completion_body() -> Value {
    json!({
        "language": "rust",
        "path": "src/lib.rs",
        "prefix": "fn add(a: i32) -> i32 { a }\nfn ad",
        "suffix": "\n",
    })
}

/// What the fixture vendor received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The query string without `?`, `None` when the URL had none.
    pub query: Option<String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// Every header, names lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Received {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What the fixture vendor answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    pub delay: Duration,
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body: body.to_string(),
            content_type: "application/json",
            delay: Duration::ZERO,
        }
    }

    pub fn raw(status: u16, body: &str, content_type: &'static str) -> Answer {
        Answer {
            status,
            body: body.to_owned(),
            content_type,
            delay: Duration::ZERO,
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

/// A loopback HTTP server standing in for a model vendor: records every request and
/// answers with a fixed [`Answer`].
pub struct Vendor {
    pub base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Vendor {
    pub async fn start(answer: Answer) -> Vendor {
        let received = Arc::new(Mutex::new(Vec::new()));
        let recorded = received.clone();
        let router = Router::new().fallback(move |request: Request<Body>| {
            let recorded = recorded.clone();
            let answer = answer.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                let header = |name: &str| {
                    parts
                        .headers
                        .get(name)
                        .map(|value| value.to_str().unwrap().to_owned())
                };
                recorded.lock().unwrap().push(Received {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().map(str::to_owned),
                    authorization: header("authorization"),
                    content_type: header("content-type"),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(name, value)| {
                            (
                                name.as_str().to_owned(),
                                String::from_utf8_lossy(value.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                });
                tokio::time::sleep(answer.delay).await;
                axum::response::Response::builder()
                    .status(answer.status)
                    .header("content-type", answer.content_type)
                    .body(Body::from(answer.body))
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Vendor {
            base_url: format!("http://{address}"),
            received,
            task,
        }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The one request received; fails when there were none or several.
    #[track_caller]
    pub fn only_request(&self) -> Received {
        let received = self.received();
        assert_eq!(received.len(), 1, "{received:#?}");
        received.into_iter().next().unwrap()
    }
}

impl Drop for Vendor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A base URL on which nothing listens: the port was bound and released.
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

/// `[[providers]]` TOML for one provider.
pub fn provider_toml(kind: &str, base_url: &str, extra: &str) -> String {
    format!(
        "[[providers]]\nname = \"{kind}\"\nkind = \"{kind}\"\nbase_url = \"{base_url}\"\nmodel = \"test-model\"\n{extra}\n"
    )
}

/// `[[providers]]` for `fixture` as a provider named `name` of `kind`; `endpoint` is the
/// OpenAI endpoint (`completions` or `chat`), ignored for the other kinds.
pub fn fixture_provider(
    name: &str,
    kind: &str,
    fixture: &ProviderFixture,
    endpoint: &str,
) -> String {
    let (base_url, extra) = match kind {
        "ollama" => (fixture.url().to_owned(), String::new()),
        "openai" => (
            fixture.openai_base_url(),
            format!("endpoint = \"{endpoint}\"\n"),
        ),
        _ => (
            fixture.vendor_root_url().to_owned(),
            format!("api_key_env = \"{PROVIDER_KEY_ENV}\"\n"),
        ),
    };
    format!(
        "[[providers]]\nname = \"{name}\"\nkind = \"{kind}\"\nbase_url = \"{base_url}\"\n\
         model = \"model-{name}\"\n{extra}"
    )
}

/// The (event, data) pairs of a whole event stream.
pub fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut name = "message".to_owned();
            let mut data = None;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = value.to_owned();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(value).unwrap());
                }
            }
            // Keep-alive comments carry no data.
            Some((name, data?))
        })
        .collect()
}

pub async fn read_events(response: axum::response::Response) -> Vec<(String, Value)> {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    sse_events(std::str::from_utf8(&bytes).unwrap())
}

/// The deltas' text joined.
pub fn joined_deltas(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "delta")
        .map(|(_, data)| data["text"].as_str().unwrap())
        .collect()
}
