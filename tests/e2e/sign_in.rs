//! The browser sign-in pages end to end: a real OpenID provider (the certified
//! `oidc-provider` package under Node) on loopback, the real `tandem-cloud` configured to
//! sign in through it, and headless Chromium clicking through the pages as a person would
//! (`tests/clients/browser/`). The device flow runs the real `tandem login` binary, the
//! browser confirming or declining its code.
//!
//! Without the client's `node_modules` or Chromium these tests skip with a message; CI sets
//! `TANDEM_REQUIRE_EDITOR_CLIENTS=1`, and there a missing tool fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tandem_e2e::{CloudOptions, CloudServer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::support::tandem_command;

/// The provider's name in the cloud's config: URLs and button ids carry it.
const PROVIDER_NAME: &str = "test-oidc";
const CLIENT_ID: &str = "tandem-e2e";
const CLIENT_SECRET: &str = "e2e-oidc-client-secret-0123456789";
const CLIENT_SECRET_ENV: &str = "TANDEM_E2E_OIDC_SECRET";
const SESSION_SECRET: &str = "e2e-session-secret-0123456789abcdef0123456789";
const SESSION_SECRET_ENV: &str = "TANDEM_E2E_SESSION_SECRET";
/// Who the browser signs in as; the provider makes the address `<login>@example.test`.
const LOGIN: &str = "alice";
const EMAIL: &str = "alice@example.test";

/// How long one browser scenario may take, sign-in included.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `node provider.mjs` may take to print `READY`.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(20);

/// Chromium is the heaviest process here: at most two at once on a two-core machine.
static BROWSERS: Semaphore = Semaphore::const_new(2);

fn client_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/browser")
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether a missing tool is a failure (CI) or a skip (a developer's machine).
fn tools_required() -> bool {
    std::env::var("TANDEM_REQUIRE_EDITOR_CLIENTS").is_ok_and(|value| value == "1")
}

/// Whether Node, the client's packages and Chromium are there; if not, panics in CI and
/// otherwise says what to install.
fn tools_present() -> bool {
    let directory = client_directory();
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    let missing = if !node {
        Some(("Node.js", "install Node.js 20 or later"))
    } else if !directory.join("node_modules/oidc-provider").is_dir()
        || !directory.join("node_modules/playwright-core").is_dir()
    {
        Some((
            "the browser client's packages",
            "`npm ci --prefix tests/clients/browser`",
        ))
    } else if !chromium_path().is_file() {
        Some(("Chromium", "`apt-get install chromium`"))
    } else {
        None
    };
    let Some((what, install)) = missing else {
        return true;
    };
    assert!(
        !tools_required(),
        "{what} is required (TANDEM_REQUIRE_EDITOR_CLIENTS=1) but missing: {install}"
    );
    eprintln!("skipping: {what} is not installed ({install})");
    false
}

/// Appends every line of `pipe` to `sink`.
fn collect(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    sink: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut sink = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            sink.push_str(&line);
            sink.push('\n');
        }
    })
}

fn snapshot(text: &Mutex<String>) -> String {
    text.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// A free loopback port, released for the cloud to bind.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// `node provider.mjs`: an OpenID provider whose one client is the cloud.
struct OidcProvider {
    _child: Child,
    issuer: String,
    stderr: Arc<Mutex<String>>,
}

impl OidcProvider {
    /// `claims` says where the provider puts the email: in the ID token, or (as the
    /// spec reads when an access token is issued) only behind the userinfo endpoint.
    async fn start(redirect_uri: &str, claims: EmailClaims) -> OidcProvider {
        let mut command = Command::new("node");
        if claims == EmailClaims::UserInfoOnly {
            command.arg("provider.mjs").arg("--conform-id-token-claims");
        } else {
            command.arg("provider.mjs");
        }
        let mut child = command
            .args(["--port", "0", "--client-id", CLIENT_ID])
            // Another site than the cloud's 127.0.0.1 (cookies ignore ports), so the
            // return from the provider is a cross-site navigation, as in production: a
            // cookie the sign-in needs must survive it (SameSite=Lax, not Strict).
            .args(["--issuer-host", "localhost"])
            .args([
                "--client-secret",
                CLIENT_SECRET,
                "--redirect-uri",
                redirect_uri,
            ])
            .current_dir(client_directory())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node provider.mjs");
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().expect("stderr"), stderr.clone());
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = tokio::time::timeout(PROVIDER_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(issuer) = line.trim().strip_prefix("READY ") {
                    return Some(issuer.trim_end_matches('/').to_owned());
                }
            }
            None
        })
        .await;
        let Ok(Some(issuer)) = ready else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            panic!(
                "provider.mjs printed no READY line within {PROVIDER_TIMEOUT:?}\n{}",
                snapshot(&stderr)
            );
        };
        // Nothing more is printed on stdout, but keep the pipe drained all the same.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        OidcProvider {
            _child: child,
            issuer,
            stderr,
        }
    }
}

/// Where the provider gives the email claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmailClaims {
    InIdToken,
    UserInfoOnly,
}

/// The OpenID provider and a cloud that signs people in through it.
struct SignInStack {
    // The cloud goes first: it talks to the provider, not the other way round.
    cloud: CloudServer,
    oidc: OidcProvider,
}

impl SignInStack {
    async fn start() -> SignInStack {
        SignInStack::start_with(EmailClaims::InIdToken).await
    }

    async fn start_with(claims: EmailClaims) -> SignInStack {
        let mut last_error = None;
        // The cloud's port is chosen before it starts (the redirect URI the provider
        // registers names it); another process may take it meanwhile, so try again.
        for _ in 0..3 {
            let port = free_port();
            let public_url = format!("http://127.0.0.1:{port}");
            let oidc = OidcProvider::start(
                &format!("{public_url}/auth/{PROVIDER_NAME}/callback"),
                claims,
            )
            .await;
            let extra_toml = format!(
                r#"
[auth]
public_url = "{public_url}"
device_poll_interval_secs = 1

[[auth.identity_providers]]
name = "{PROVIDER_NAME}"
kind = "oidc"
issuer_url = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret_env = "{CLIENT_SECRET_ENV}"

[sessions]
jwt_secret_env = "{SESSION_SECRET_ENV}"
"#,
                issuer = oidc.issuer,
            );
            let options = CloudOptions {
                bind: Some(format!("127.0.0.1:{port}")),
                extra_toml,
                env: vec![
                    (CLIENT_SECRET_ENV.to_owned(), CLIENT_SECRET.to_owned()),
                    (SESSION_SECRET_ENV.to_owned(), SESSION_SECRET.to_owned()),
                ],
                ..CloudOptions::default()
            };
            match CloudServer::start(options).await {
                Ok(cloud) => {
                    assert_eq!(cloud.url(), public_url, "the cloud listens elsewhere");
                    return SignInStack { cloud, oidc };
                }
                Err(error) => {
                    let error = format!("{error:#}");
                    if !error.to_lowercase().contains("in use") {
                        panic!(
                            "tandem-cloud did not start: {error}\n--- provider.mjs stderr ---\n{}",
                            snapshot(&oidc.stderr)
                        );
                    }
                    last_error = Some(error);
                }
            }
        }
        panic!(
            "no free port for tandem-cloud: {}",
            last_error.unwrap_or_default()
        );
    }

    /// Both servers' logs, for failure messages.
    fn logs(&self) -> String {
        format!(
            "--- tandem-cloud stderr ---\n{}\n--- provider.mjs stderr ---\n{}",
            self.cloud.stderr(),
            snapshot(&self.oidc.stderr)
        )
    }

    /// Starts `node browser.mjs SCENARIO --cloud URL --login alice ARGS…`.
    async fn browser(&self, scenario: &str, args: &[&str]) -> BrowserRun {
        let permit = BROWSERS.acquire().await.expect("semaphore");
        let screenshot = screenshot_path(scenario);
        let mut child = Command::new("node")
            .arg("browser.mjs")
            .arg(scenario)
            .args(["--cloud", self.cloud.url(), "--login", LOGIN])
            .args(["--provider", PROVIDER_NAME])
            .arg("--screenshot")
            .arg(&screenshot)
            .args(args)
            .env("CHROMIUM", chromium_path())
            .current_dir(client_directory())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node browser.mjs");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_task = collect(child.stderr.take().expect("stderr"), stderr.clone());
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        BrowserRun {
            what: format!("browser scenario `{scenario} {}`", args.join(" ")),
            child,
            lines,
            stdout: String::new(),
            stderr,
            stderr_task: Some(stderr_task),
            screenshot,
            deadline: tokio::time::Instant::now() + SCENARIO_TIMEOUT,
            _permit: permit,
        }
    }

    /// Runs a scenario to its end and returns the JSON it printed.
    async fn scenario(&self, scenario: &str, args: &[&str]) -> Value {
        self.browser(scenario, args).await.finish(self).await
    }
}

/// Where a scenario's last screen goes: kept under the target directory for a look after
/// a failure.
fn screenshot_path(scenario: &str) -> PathBuf {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sign-in-screenshots");
    let _ = std::fs::create_dir_all(&directory);
    let test = std::thread::current()
        .name()
        .unwrap_or("test")
        .rsplit("::")
        .next()
        .unwrap_or("test")
        .to_owned();
    directory.join(format!("{test}-{scenario}.png"))
}

/// One running `browser.mjs`.
struct BrowserRun {
    what: String,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stdout: String,
    stderr: Arc<Mutex<String>>,
    stderr_task: Option<JoinHandle<()>>,
    screenshot: PathBuf,
    deadline: tokio::time::Instant,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl BrowserRun {
    /// The next line the scenario prints, parsed as JSON.
    async fn next_json(&mut self, stack: &SignInStack) -> Value {
        loop {
            let line = match tokio::time::timeout_at(self.deadline, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(_) => self.fail(stack, "ended without printing its result").await,
                Err(_) => {
                    self.fail(stack, &format!("took longer than {SCENARIO_TIMEOUT:?}"))
                        .await
                }
            };
            self.stdout.push_str(&line);
            self.stdout.push('\n');
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(value) => return value,
                Err(_) => self.fail(stack, "printed a line that is not JSON").await,
            }
        }
    }

    /// Lets a paused scenario go on.
    async fn resume(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(b"go on\n")
            .await
            .expect("write to browser.mjs");
        stdin.flush().await.expect("flush");
    }

    /// Waits for the scenario's result line and a zero exit.
    async fn finish(mut self, stack: &SignInStack) -> Value {
        let result = self.next_json(stack).await;
        match tokio::time::timeout_at(self.deadline, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => result,
            Ok(Ok(status)) => self.fail(stack, &format!("exited with {status}")).await,
            Ok(Err(error)) => {
                self.fail(stack, &format!("cannot be waited for: {error}"))
                    .await
            }
            Err(_) => {
                self.fail(stack, &format!("did not exit within {SCENARIO_TIMEOUT:?}"))
                    .await
            }
        }
    }

    async fn fail(&mut self, stack: &SignInStack, problem: &str) -> ! {
        // The exit status and whatever it said on the way out.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.start_kill();
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_millis(200), self.lines.next_line()).await
        {
            self.stdout.push_str(&line);
            self.stdout.push('\n');
        }
        panic!(
            "{} {problem}\nscreenshot: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n{}",
            self.what,
            self.screenshot.display(),
            self.stdout,
            snapshot(&self.stderr),
            stack.logs()
        );
    }
}

/// The status and body `GET /v1/me` answers `key` with.
async fn me(cloud: &CloudServer, key: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/me", cloud.url()))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /v1/me");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Waits for the server to refuse `key` (revocations reach its key cache within a
/// quarter of a second).
async fn wait_until_refused(cloud: &CloudServer, key: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while me(cloud, key).await.0 != 401 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revoked key still works after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running `tandem login --no-browser` and the code it shows.
struct Login {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    printed: String,
    stderr: Arc<Mutex<String>>,
    stderr_task: JoinHandle<()>,
    code: String,
}

impl Login {
    async fn start(cloud: &CloudServer, config_directory: &Path) -> Login {
        let mut child = tandem_command(
            config_directory,
            &["login", "--no-browser", "--server", cloud.url()],
        )
        .spawn()
        .expect("run tandem login");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_task = collect(child.stderr.take().expect("stderr"), stderr.clone());
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut printed = String::new();
        // The page to open and the code to type, as a person reads them.
        let code = loop {
            let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await;
            let Ok(Ok(Some(line))) = line else {
                panic!(
                    "tandem login showed no code:\n{printed}\n--- stderr ---\n{}\n--- tandem-cloud stderr ---\n{}",
                    snapshot(&stderr),
                    cloud.stderr()
                );
            };
            printed.push_str(&line);
            printed.push('\n');
            let trimmed = line.trim();
            if trimmed.len() == 9 && trimmed.as_bytes()[4] == b'-' {
                break trimmed.to_owned();
            }
        };
        assert!(
            printed.contains(&format!("open {}/device and enter the code", cloud.url())),
            "{printed}"
        );
        Login {
            child,
            lines,
            printed,
            stderr,
            stderr_task,
            code,
        }
    }

    /// Waits for the exit; returns whether it succeeded and everything it printed.
    async fn wait(mut self) -> (bool, String) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "tandem login still waits 30 s after the browser answered:\n{}",
                    self.printed
                )
            })
            .expect("exit status");
        while let Ok(Some(line)) = self.lines.next_line().await {
            self.printed.push_str(&line);
            self.printed.push('\n');
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stderr_task).await;
        let output = format!("{}--- stderr ---\n{}", self.printed, snapshot(&self.stderr));
        (status.success(), output)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_creates_the_user_and_shows_the_account_page() {
    if !tools_present() {
        return;
    }
    let stack = SignInStack::start().await;
    let result = stack.scenario("sign-in", &[]).await;
    assert_eq!(
        result["url"],
        format!("{}/account", stack.cloud.url()),
        "{result}"
    );
    assert_eq!(result["email"], EMAIL, "{result}");
    // A first sign-in creates the user on `auth.new_user_tier`, `free` by default.
    assert_eq!(result["tier"], "free", "{result}");

    // `audit --email` fails for an unknown user: the sign-in created alice.
    let audit = stack
        .cloud
        .run_command(&["audit", "--email", EMAIL])
        .await
        .unwrap_or_else(|error| panic!("{error:#}\n{}", stack.logs()));
    let signed_in = audit
        .lines()
        .skip(1)
        .any(|line| line.split_whitespace().nth(1) == Some("sign_in"));
    assert!(signed_in, "no sign-in in the audit log:\n{audit}");

    // The provider's answer (code and state in the callback's query) never reaches the
    // cloud's log.
    // Requests are logged by route template (`http.route`), never by their raw path.
    let log = stack.cloud.stderr();
    assert!(log.contains("/auth/{provider}/callback"), "{log}");
    assert!(
        !log.contains("code=") && !log.contains("state="),
        "the callback's query was logged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_created_on_the_account_page_work_and_revoked_ones_stop() {
    if !tools_present() {
        return;
    }
    let stack = SignInStack::start().await;
    let mut run = stack
        .browser("create-and-revoke-key", &["--pause-before-revoke"])
        .await;
    let created = run.next_json(&stack).await;
    let key = created["created"]
        .as_str()
        .unwrap_or_else(|| panic!("no key in {created}"))
        .to_owned();
    assert!(key.starts_with("tdm_"), "{key}");
    let (status, body) = me(&stack.cloud, &key).await;
    assert_eq!(
        status,
        200,
        "the new key is refused: {body}\n{}",
        stack.logs()
    );
    assert_eq!(body["user"]["email"], EMAIL, "{body}");

    run.resume().await;
    let result = run.finish(&stack).await;
    assert_eq!(result["key"], key.as_str(), "{result}");
    assert_eq!(
        result["revoked"], true,
        "the key's row is still there: {result}"
    );
    assert_eq!(result["rows_after"], 0, "{result}");
    wait_until_refused(&stack.cloud, &key).await;
    // The harness's own user and key are untouched.
    assert_eq!(me(&stack.cloud, stack.cloud.api_key()).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tandem_login_is_confirmed_in_the_browser() {
    if !tools_present() {
        return;
    }
    // This provider keeps the email for userinfo: the cloud must fetch it there.
    let stack = SignInStack::start_with(EmailClaims::UserInfoOnly).await;
    let config_directory = tempfile::tempdir().expect("tempdir");
    let credentials_path = config_directory.path().join("credentials.json");
    let login = Login::start(&stack.cloud, config_directory.path()).await;
    let code = login.code.clone();
    assert!(
        !credentials_path.exists(),
        "saved before the code was confirmed"
    );

    let result = stack.scenario("approve-device", &["--code", &code]).await;
    assert_eq!(result["result"], "approved", "{result}");

    let (success, output) = login.wait().await;
    assert!(success, "tandem login failed:\n{output}\n{}", stack.logs());
    assert!(
        output.contains(&format!("Logged in to {} as {EMAIL}", stack.cloud.url())),
        "{output}"
    );
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(&credentials_path).expect("credentials.json written"),
    )
    .expect("credentials.json is JSON");
    let key = saved["api_key"]
        .as_str()
        .expect("a key in credentials.json");
    let (status, body) = me(&stack.cloud, key).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["email"], EMAIL, "{body}");

    let status = tandem_command(config_directory.path(), &["status"])
        .output()
        .await
        .expect("run tandem status");
    let status_text = format!(
        "{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(status.status.success(), "{status_text}");
    assert!(status_text.contains(EMAIL), "{status_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denying_in_the_browser_fails_tandem_login() {
    if !tools_present() {
        return;
    }
    let stack = SignInStack::start().await;
    let config_directory = tempfile::tempdir().expect("tempdir");
    let login = Login::start(&stack.cloud, config_directory.path()).await;
    let code = login.code.clone();

    let result = stack
        .scenario("approve-device", &["--code", &code, "--deny"])
        .await;
    assert_eq!(result["result"], "denied", "{result}");

    let (success, output) = login.wait().await;
    assert!(!success, "tandem login succeeded after a denial:\n{output}");
    let lowered = output.to_lowercase();
    assert!(
        lowered.contains("denied") || lowered.contains("declined"),
        "tandem login does not say access was denied:\n{output}"
    );
    assert!(!config_directory.path().join("credentials.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_browser_session() {
    if !tools_present() {
        return;
    }
    let stack = SignInStack::start().await;
    let result = stack.scenario("sign-out", &[]).await;
    assert_eq!(result["redirected_to_signin"], true, "{result}");
}
