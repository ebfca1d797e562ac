//! PostgreSQL going away under a running server: `/ready` fails, requests that need the
//! database answer 503 with the JSON error, and nothing is half written.
//!
//! Needs the machine's PostgreSQL (`TANDEM_TEST_POSTGRES_URL`); without it the test says
//! so and passes, unless `TANDEM_REQUIRE_SERVICES=1`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{completion_body, fixture_provider, TestApp};
use tandem_cloud::db::scratch::ScratchDb;
use tandem_cloud::db::{self, on};
use tandem_e2e::services::{service_url, POSTGRES_URL};
use tandem_e2e::ProviderFixture;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A TCP relay to `target` that can be cut: then every relayed connection is closed and
/// new ones are refused, as when the database host goes away.
struct Relay {
    address: SocketAddr,
    cut: Arc<Notify>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cut = Arc::new(Notify::new());
        let stop = Arc::clone(&cut);
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { return };
                        connections.spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                    // Dropping the listener and the tasks closes everything.
                    () = stop.notified() => return,
                }
            }
        });
        Relay { address, cut }
    }

    fn cut(&self) {
        self.cut.notify_one();
    }
}

#[tokio::test]
async fn without_its_database_the_server_is_not_ready_and_answers_503() {
    let Some(url) = service_url(POSTGRES_URL, "database_down") else {
        return;
    };
    let parsed = reqwest::Url::parse(&url).unwrap();
    let host = parsed.host_str().unwrap_or("127.0.0.1");
    let port = parsed.port().unwrap_or(5432);
    let target = tokio::net::lookup_host((host, port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = Relay::start(target).await;
    let mut through_relay = parsed.clone();
    through_relay.set_host(Some("127.0.0.1")).unwrap();
    through_relay.set_port(Some(relay.address.port())).unwrap();

    let provider = ProviderFixture::start().await.unwrap();
    provider.reply_with_text("x");
    let config = fixture_provider("vendor", "ollama", &provider, "");
    let app = TestApp::on(
        &config,
        ScratchDb::postgres(through_relay.as_str()).await.unwrap(),
    )
    .await;
    assert_eq!(app.complete(completion_body()).await.status, 200);
    assert_eq!(app.call("", "GET", "/ready", None).await.status, 200);
    let recorded = db::usage::count_for_user(&app.state.db, &user_id(&app).await)
        .await
        .unwrap();
    assert_eq!(recorded, 1);

    relay.cut();
    let ready = app.call("", "GET", "/ready", None).await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(
        ready.text.contains("database is not reachable"),
        "{}",
        ready.text
    );
    // Whether the key is still cached (then the usage record cannot be written) or not
    // (then it cannot be looked up), the answer is 503, never an answer without a record.
    let refused = app.complete(completion_body()).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(
        refused.json["error"]["message"].is_string(),
        "{}",
        refused.text
    );

    // Back on a direct connection: the refused request left no row behind.
    let direct = db::connect(db::options_from_url(&url).unwrap())
        .await
        .unwrap();
    let schema_rows: i64 = on!(
        &direct,
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}.usage", schema_of(&app))),
        fetch_one
    )
    .unwrap();
    assert_eq!(schema_rows, 1, "only the answered request is recorded");
}

async fn user_id(app: &TestApp) -> String {
    db::users::get_by_email(&app.state.db, "user@example.com")
        .await
        .unwrap()
        .id
}

/// The scratch schema's name, from its URL's `search_path` option.
fn schema_of(app: &TestApp) -> String {
    let url = reqwest::Url::parse(&app.db.url).unwrap();
    let options = url
        .query_pairs()
        .find(|(name, _)| name == "options")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    options.trim_start_matches("-c search_path=").to_owned()
}
