//! Runs a real `tandem-cloud` process against a temporary SQLite database.
//!
//! `CloudServer::start` writes a TOML config whose providers point at loopback fixtures,
//! creates a user and an API key with the binary's own `users create` / `keys create`
//! commands, then starts `serve --bind 127.0.0.1:0` (or [`CloudOptions::bind`]) and waits for
//! its `Listening on` line.
//! The child is killed when the value is dropped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::binaries;
use crate::provider::ProviderFixture;

/// Email of the user the harness creates; its key is [`CloudServer::api_key`].
pub const TEST_USER_EMAIL: &str = "e2e@example.com";

/// Environment variable through which the harness hands provider keys to the cloud.
pub const PROVIDER_KEY_ENV: &str = "TANDEM_E2E_PROVIDER_KEY";

/// How long `serve` may take to print its `Listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// One `[[providers]]` table of the cloud's config.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    /// `ollama`, `openai`, `anthropic`, `google` or `local`.
    pub kind: String,
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// `completions` or `chat` (OpenAI kind only).
    pub endpoint: Option<String>,
    /// Provider key; the harness puts it in [`PROVIDER_KEY_ENV`] and names that variable
    /// in `api_key_env`.
    pub api_key: Option<String>,
    pub timeout_ms: Option<u64>,
}

impl ProviderConfig {
    /// An Ollama provider served by `fixture`.
    pub fn ollama(fixture: &ProviderFixture, model: &str) -> Self {
        ProviderConfig {
            name: "ollama".to_owned(),
            kind: "ollama".to_owned(),
            base_url: Some(fixture.url().to_owned()),
            model: Some(model.to_owned()),
            endpoint: None,
            api_key: None,
            timeout_ms: None,
        }
    }

    /// An OpenAI-compatible provider served by `fixture`, using `endpoint`
    /// (`completions` or `chat`) and sending `api_key` as the bearer token.
    pub fn openai(fixture: &ProviderFixture, model: &str, endpoint: &str, api_key: &str) -> Self {
        ProviderConfig {
            name: "openai".to_owned(),
            kind: "openai".to_owned(),
            base_url: Some(fixture.openai_base_url()),
            model: Some(model.to_owned()),
            endpoint: Some(endpoint.to_owned()),
            api_key: Some(api_key.to_owned()),
            timeout_ms: None,
        }
    }

    /// An Anthropic Messages provider served by `fixture`, sending `api_key` as
    /// `x-api-key`.
    pub fn anthropic(fixture: &ProviderFixture, model: &str, api_key: &str) -> Self {
        ProviderConfig {
            name: "anthropic".to_owned(),
            kind: "anthropic".to_owned(),
            base_url: Some(fixture.vendor_root_url().to_owned()),
            model: Some(model.to_owned()),
            endpoint: None,
            api_key: Some(api_key.to_owned()),
            timeout_ms: None,
        }
    }

    /// A Google Gemini provider served by `fixture`, sending `api_key` as
    /// `x-goog-api-key`.
    pub fn google(fixture: &ProviderFixture, model: &str, api_key: &str) -> Self {
        ProviderConfig {
            name: "google".to_owned(),
            kind: "google".to_owned(),
            base_url: Some(fixture.vendor_root_url().to_owned()),
            model: Some(model.to_owned()),
            endpoint: None,
            api_key: Some(api_key.to_owned()),
            timeout_ms: None,
        }
    }

    pub fn with_timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }
}

/// What to put in the cloud's config.
#[derive(Debug, Clone, Default)]
pub struct CloudOptions {
    /// Empty means the built-in `local` provider answers.
    pub providers: Vec<ProviderConfig>,
    /// `limits.max_body_bytes`, when set.
    pub max_body_bytes: Option<u64>,
    /// `auth.key_cache_ttl_secs`, when set.
    pub key_cache_ttl_secs: Option<u64>,
    /// Tier of the test user (`free`, `pro`, `enterprise`, or one the config adds);
    /// `enterprise` if `None`.
    pub tier: Option<String>,
    /// Extra environment for every `tandem-cloud` invocation.
    pub env: Vec<(String, String)>,
    /// TOML appended verbatim to the generated config (to test its validation).
    pub extra_toml: String,
    /// Create no user or key before `serve`: the first start on an empty database then
    /// creates `dev@localhost` and prints its key, which becomes [`CloudServer::api_key`].
    pub bootstrap: bool,
    /// Address for `serve --bind`; `127.0.0.1:0` (a free port) if `None`. A test whose
    /// config must name the server's own URL (`auth.public_url`) picks the port first.
    pub bind: Option<String>,
    /// A database shared with other instances (`postgres://…`); a SQLite file in the
    /// server's temporary directory if `None`.
    pub database_url: Option<String>,
    /// The key of a user another instance already created in the shared database: no
    /// user or key is created, and this becomes [`CloudServer::api_key`].
    pub existing_key: Option<String>,
}

impl CloudOptions {
    pub fn with_provider(provider: ProviderConfig) -> Self {
        CloudOptions {
            providers: vec![provider],
            ..CloudOptions::default()
        }
    }
}

/// A running `tandem-cloud serve`.
pub struct CloudServer {
    // Field order matters: the child dies before its directory is removed.
    child: Child,
    url: String,
    api_key: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    config_path: PathBuf,
    database_url: String,
    env: Vec<(String, String)>,
    directory: TempDir,
}

impl CloudServer {
    /// Creates the database, a user and a key, then serves on a free loopback port.
    pub async fn start(options: CloudOptions) -> anyhow::Result<Self> {
        let binary = binaries::tandem_cloud()?;
        let directory = tempfile::Builder::new()
            .prefix("tandem-e2e-cloud-")
            .tempdir()
            .context("cannot create the cloud's temporary directory")?;
        let database_url = match &options.database_url {
            Some(url) => url.clone(),
            // `mode=rwc` lets SQLite create the file; the binary would otherwise have to.
            None => format!(
                "sqlite://{}?mode=rwc",
                directory.path().join("tandem.sqlite").display()
            ),
        };
        let config_path = directory.path().join("tandem-cloud.toml");
        std::fs::write(&config_path, config_toml(&options, &database_url))
            .context("cannot write the cloud's config")?;

        let mut env = options.env.clone();
        for provider in &options.providers {
            if let Some(key) = &provider.api_key {
                env.push((PROVIDER_KEY_ENV.to_owned(), key.clone()));
            }
        }
        // `info` unless the caller chose (the workload benchmark logs less).
        if !env.iter().any(|(name, _)| name == "TANDEM_LOG") {
            env.push(("TANDEM_LOG".to_owned(), "info".to_owned()));
        }

        let context = CommandContext {
            binary: &binary,
            directory: directory.path(),
            config_path: &config_path,
            database_url: &database_url,
            env: &env,
        };
        let mut api_key = options.existing_key.clone().unwrap_or_default();
        if !options.bootstrap && options.existing_key.is_none() {
            // The top tier unless the test says otherwise: the default (`free`) does not
            // include inline completion.
            let tier = options.tier.as_deref().unwrap_or("enterprise");
            let users_create = [
                "users",
                "create",
                "--email",
                TEST_USER_EMAIL,
                "--tier",
                tier,
            ];
            context.run(&users_create).await?;
            let key_output = context
                .run(&[
                    "keys",
                    "create",
                    "--email",
                    TEST_USER_EMAIL,
                    "--name",
                    "e2e",
                ])
                .await?;
            api_key = key_output
                .lines()
                .rev()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .context("`tandem-cloud keys create` printed nothing")?
                .to_owned();
        }

        let bind = options.bind.as_deref().unwrap_or("127.0.0.1:0");
        let mut command = context.command(&["serve", "--bind", bind]);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start `{}`", binary.display()))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            tokio::spawn(collect_lines(pipe, stderr.clone(), None));
        }
        let stdout = Arc::new(Mutex::new(String::new()));
        let (listening_sender, listening) = tokio::sync::oneshot::channel();
        if let Some(pipe) = child.stdout.take() {
            tokio::spawn(collect_lines(pipe, stdout.clone(), Some(listening_sender)));
        }
        let url = match tokio::time::timeout(STARTUP_TIMEOUT, listening).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => {
                // Stdout closed without the line: the process most likely exited.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let status = child.try_wait().ok().flatten();
                bail!(
                    "`tandem-cloud serve` closed stdout without printing `Listening on http://…` (exit status {status:?})\nstdout:\n{}\nstderr:\n{}",
                    snapshot(&stdout),
                    snapshot(&stderr)
                );
            }
            Err(_) => bail!(
                "`tandem-cloud serve` printed no `Listening on http://…` line within {STARTUP_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                snapshot(&stdout),
                snapshot(&stderr)
            ),
        };
        if options.bootstrap {
            // The `TANDEM_API_KEY=…` of the printed environment line.
            let printed = snapshot(&stdout);
            api_key = printed
                .split_whitespace()
                .find_map(|word| word.strip_prefix("TANDEM_API_KEY="))
                .with_context(|| {
                    format!("the first start printed no `TANDEM_API_KEY=` setting:\n{printed}")
                })?
                .to_owned();
        }
        Ok(CloudServer {
            child,
            url,
            api_key,
            stdout,
            stderr,
            config_path,
            database_url,
            env,
            directory,
        })
    }

    /// `http://127.0.0.1:PORT`, as printed by `serve`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key `keys create` printed for [`TEST_USER_EMAIL`].
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Everything `serve` wrote to stderr so far (its logs), for failure messages.
    pub fn stderr(&self) -> String {
        snapshot(&self.stderr)
    }

    /// Everything `serve` wrote to stdout so far.
    pub fn stdout(&self) -> String {
        snapshot(&self.stdout)
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// Runs another `tandem-cloud` subcommand against the same config and database
    /// (for example `keys revoke`), returning its stdout; fails on a non-zero exit.
    pub async fn run_command(&self, args: &[&str]) -> anyhow::Result<String> {
        let binary = binaries::tandem_cloud()?;
        CommandContext {
            binary: &binary,
            directory: self.directory.path(),
            config_path: &self.config_path,
            database_url: &self.database_url,
            env: &self.env,
        }
        .run(args)
        .await
    }

    /// Like [`CloudServer::run_command`], but returns the output whatever the exit status.
    pub async fn run_command_output(&self, args: &[&str]) -> anyhow::Result<Output> {
        let binary = binaries::tandem_cloud()?;
        CommandContext {
            binary: &binary,
            directory: self.directory.path(),
            config_path: &self.config_path,
            database_url: &self.database_url,
            env: &self.env,
        }
        .output(args)
        .await
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills `serve` without warning (SIGKILL), as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }

    /// Process id of `serve`, for reading its memory and CPU time from `/proc`;
    /// `None` once it has been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for CloudServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Everything a `tandem-cloud` invocation of this test shares.
struct CommandContext<'a> {
    binary: &'a Path,
    directory: &'a Path,
    config_path: &'a Path,
    database_url: &'a str,
    env: &'a [(String, String)],
}

impl CommandContext<'_> {
    /// `tandem-cloud <args> --config … --database-url …`: the contract puts these flags
    /// on every subcommand, after it.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.binary);
        command
            .args(args)
            .arg("--config")
            .arg(self.config_path)
            .arg("--database-url")
            .arg(self.database_url);
        // The developer's own settings must not leak in, and nothing may fall back to
        // the real platform data directory.
        command
            .env_remove("TANDEM_CONFIG")
            .env_remove("TANDEM_DATABASE_URL")
            .env_remove("TANDEM_BIND")
            .env("XDG_DATA_HOME", self.directory.join("data"))
            .env("XDG_CONFIG_HOME", self.directory.join("config"))
            .env("HOME", self.directory)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (name, value) in self.env {
            command.env(name, value);
        }
        command
    }

    async fn output(&self, args: &[&str]) -> anyhow::Result<Output> {
        tokio::time::timeout(Duration::from_secs(30), self.command(args).output())
            .await
            .with_context(|| format!("`tandem-cloud {}` did not finish in 30 s", args.join(" ")))?
            .with_context(|| format!("cannot run `{}`", self.binary.display()))
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.output(args).await?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "`tandem-cloud {}` failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(stdout)
    }
}

fn toml_string(value: &str) -> String {
    // A TOML basic string has JSON's escapes for everything a test writes here.
    serde_json::to_string(value).unwrap_or_default()
}

fn config_toml(options: &CloudOptions, database_url: &str) -> String {
    let mut toml = String::new();
    let _ = writeln!(toml, "database_url = {}", toml_string(database_url));
    // Top-level keys must come before the first table header.
    let _ = writeln!(toml, "{}", options.extra_toml);
    if let Some(max_body_bytes) = options.max_body_bytes {
        let _ = writeln!(toml, "\n[limits]\nmax_body_bytes = {max_body_bytes}");
    }
    if let Some(ttl) = options.key_cache_ttl_secs {
        let _ = writeln!(toml, "\n[auth]\nkey_cache_ttl_secs = {ttl}");
    }
    for provider in &options.providers {
        let _ = writeln!(toml, "\n[[providers]]");
        let _ = writeln!(toml, "name = {}", toml_string(&provider.name));
        let _ = writeln!(toml, "kind = {}", toml_string(&provider.kind));
        if let Some(base_url) = &provider.base_url {
            let _ = writeln!(toml, "base_url = {}", toml_string(base_url));
        }
        if let Some(model) = &provider.model {
            let _ = writeln!(toml, "model = {}", toml_string(model));
        }
        if let Some(endpoint) = &provider.endpoint {
            let _ = writeln!(toml, "endpoint = {}", toml_string(endpoint));
        }
        if provider.api_key.is_some() {
            let _ = writeln!(toml, "api_key_env = {}", toml_string(PROVIDER_KEY_ENV));
        }
        if let Some(timeout_ms) = provider.timeout_ms {
            let _ = writeln!(toml, "timeout_ms = {timeout_ms}");
        }
    }
    toml
}

/// Appends every line of `pipe` to `sink`; the first `Listening on http://…` line's URL
/// goes to `listening`.
async fn collect_lines(
    pipe: impl AsyncRead + Unpin,
    sink: Arc<Mutex<String>>,
    mut listening: Option<tokio::sync::oneshot::Sender<String>>,
) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        // Recorded before the URL is handed over, so `stdout()` always includes the line.
        {
            let mut sink = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            sink.push_str(&line);
            sink.push('\n');
        }
        if let Some(url) = line.trim().strip_prefix("Listening on ") {
            if let Some(sender) = listening.take() {
                let _ = sender.send(url.trim_end_matches('/').to_owned());
            }
        }
    }
}

fn snapshot(text: &Mutex<String>) -> String {
    text.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}
