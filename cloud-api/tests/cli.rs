//! The real `tandem-cloud` binary against a temporary SQLite file: admin commands, their
//! output formats and exit codes, and `serve` answering over a socket.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_tandem-cloud");

fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("tandem.sqlite").display())
}

/// A command with no inherited Tandem settings, pointed at the test database.
fn command(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_remove("TANDEM_CONFIG")
        .env_remove("TANDEM_BIND")
        .env("TANDEM_DATABASE_URL", database_url(dir))
        .env("TANDEM_LOG", "warn");
    // Configuration variables (`TANDEM_<SECTION>__<KEY>`) of whoever runs the tests, and
    // their OpenTelemetry settings, which `serve` reads when `[telemetry]` leaves them.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("TANDEM_") && name.contains("__") || name.starts_with("OTEL_") {
            command.env_remove(&*name);
        }
    }
    command
}

#[track_caller]
fn run_ok(dir: &Path, args: &[&str]) -> String {
    let output = command(dir).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[track_caller]
fn run_failing(dir: &Path, args: &[&str]) -> Output {
    let output = command(dir).args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
    output
}

#[test]
fn users_and_keys_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    let created = run_ok(
        dir,
        &[
            "users",
            "create",
            "--email",
            "Ada@Example.com",
            "--tier",
            "pro",
        ],
    );
    assert!(
        created.starts_with("created user ada@example.com (tier pro, id "),
        "{created}"
    );

    let output = run_ok(
        dir,
        &[
            "keys",
            "create",
            "--email",
            "ada@example.com",
            "--name",
            "laptop",
        ],
    );
    let key = output.lines().last().unwrap();
    assert!(key.starts_with("tdm_") && key.len() == 47, "{output}");
    assert!(
        output.contains("(\"laptop\") for ada@example.com"),
        "{output}"
    );
    let key_id = output
        .strip_prefix("created key ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();

    let listing = run_ok(dir, &["keys", "list", "--email", "ada@example.com"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(lines[0].starts_with("ID"), "{listing}");
    assert!(lines[1].starts_with(&key_id), "{listing}");
    assert!(lines[1].contains("laptop"), "{listing}");
    assert!(lines[1].contains(&key[..10]), "{listing}");
    assert!(lines[1].contains("never"), "{listing}");
    assert!(lines[1].trim_end().ends_with("active"), "{listing}");
    // The secret part never appears in a listing.
    assert!(!listing.contains(&key[10..]), "{listing}");

    assert_eq!(
        run_ok(dir, &["keys", "revoke", &key_id]),
        format!("revoked key {key_id}\n")
    );
    let listing = run_ok(dir, &["keys", "list", "--email", "ada@example.com"]);
    assert!(listing.contains("revoked 20"), "{listing}");
    assert_eq!(
        run_ok(dir, &["keys", "revoke", &key_id]),
        format!("key {key_id} was already revoked\n")
    );
}

#[test]
fn admin_errors_exit_1_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    run_ok(dir, &["users", "create", "--email", "a@example.com"]);

    let output = run_failing(dir, &["users", "create", "--email", "a@example.com"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: user `a@example.com` already exists"
    );
    assert!(output.stdout.is_empty());

    let output = run_failing(
        dir,
        &[
            "users",
            "create",
            "--email",
            "b@example.com",
            "--tier",
            "gold",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: unknown tier `gold`: the configuration defines enterprise, free, pro"
    );

    // Moving a user checks the tier the same way, and needs the user.
    assert_eq!(
        run_ok(
            dir,
            &[
                "users",
                "set-tier",
                "--email",
                "a@example.com",
                "--tier",
                "pro"
            ]
        ),
        "user a@example.com is now on tier pro\n"
    );
    let output = run_failing(
        dir,
        &[
            "users",
            "set-tier",
            "--email",
            "a@example.com",
            "--tier",
            "gold",
        ],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown tier `gold`"));
    let output = run_failing(
        dir,
        &[
            "users",
            "set-tier",
            "--email",
            "nobody@example.com",
            "--tier",
            "pro",
        ],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("no user with email"));

    let output = run_failing(dir, &["keys", "create", "--email", "nobody@example.com"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: no user with email `nobody@example.com`"
    );
    let output = run_failing(dir, &["keys", "list", "--email", "nobody@example.com"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no user with email"));
    let output = run_failing(dir, &["keys", "revoke", "no-such-id"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: no API key with id `no-such-id`"
    );
}

#[test]
fn migrate_dry_run_lists_then_migrate_applies() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let pending = "pending 0001 init\npending 0002 tiers as data\npending 0003 usage\n\
                   pending 0004 auth epoch\npending 0005 key scopes and audit\n\
                   pending 0006 device authorization\npending 0007 sessions\n\
                   pending 0008 identities\n";
    assert_eq!(run_ok(dir, &["migrate", "--dry-run"]), pending);
    // A dry run changes nothing.
    assert_eq!(run_ok(dir, &["migrate", "--dry-run"]), pending);
    assert_eq!(
        run_ok(dir, &["migrate"]),
        "applied 0001 init\napplied 0002 tiers as data\napplied 0003 usage\n\
         applied 0004 auth epoch\napplied 0005 key scopes and audit\n\
         applied 0006 device authorization\napplied 0007 sessions\n\
         applied 0008 identities\n"
    );
    assert_eq!(
        run_ok(dir, &["migrate", "--dry-run"]),
        "no pending migrations\n"
    );
    assert_eq!(run_ok(dir, &["migrate"]), "database is up to date\n");
}

#[test]
fn flag_beats_environment_for_the_database() {
    let env_dir = tempfile::tempdir().unwrap();
    let flag_dir = tempfile::tempdir().unwrap();
    let output = command(env_dir.path())
        .args(["migrate", "--database-url", &database_url(flag_dir.path())])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(flag_dir.path().join("tandem.sqlite").exists());
    assert!(!env_dir.path().join("tandem.sqlite").exists());
}

#[test]
fn missing_database_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b");
    let output = command(dir.path())
        .env("TANDEM_DATABASE_URL", database_url(&nested))
        .args(["migrate"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(nested.join("tandem.sqlite").exists());
}

#[test]
fn environment_beats_config_file_for_the_database() {
    let env_dir = tempfile::tempdir().unwrap();
    let file_dir = tempfile::tempdir().unwrap();
    let config = file_dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        format!("database_url = \"{}\"\n", database_url(file_dir.path())),
    )
    .unwrap();
    let output = command(env_dir.path())
        .args(["migrate", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(env_dir.path().join("tandem.sqlite").exists());
    assert!(!file_dir.path().join("tandem.sqlite").exists());

    // Without the environment variable, the file's setting applies.
    let output = command(env_dir.path())
        .env_remove("TANDEM_DATABASE_URL")
        .env("TANDEM_CONFIG", &config)
        .args(["migrate"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(file_dir.path().join("tandem.sqlite").exists());
}

#[test]
fn bad_config_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tandem.toml");
    std::fs::write(&config, "[limits]\nmax_body = 1\n").unwrap();
    let output = command(dir.path())
        .args(["migrate", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid config file"), "{stderr}");
    assert!(stderr.contains("unknown field `max_body`"), "{stderr}");
}

#[test]
fn missing_provider_key_variable_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        "[[providers]]\nname = \"openai\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\nmodel = \"m\"\napi_key_env = \"TANDEM_CLI_TEST_UNSET_KEY\"\n",
    )
    .unwrap();
    let output = command(dir.path())
        .env_remove("TANDEM_CLI_TEST_UNSET_KEY")
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: provider `openai`: environment variable `TANDEM_CLI_TEST_UNSET_KEY` (named by api_key_env) is not set"
    );
}

/// Kills the server even when an assertion fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads stdout lines on a thread, so the test can wait with a timeout.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

fn wait_for_listening(lines: &mpsc::Receiver<String>) -> (Vec<String>, String) {
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no Listening line; stdout so far: {seen:#?}"));
        if let Some(address) = line.strip_prefix("Listening on http://") {
            return (seen, address.to_owned());
        }
        seen.push(line);
    }
}

/// A bare HTTP/1.1 GET, so the test needs no HTTP client.
fn http_get(address: &str, path: &str, authorization: Option<&str>) -> (u16, String) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_prints_the_dev_key_then_listens() {
    let dir = tempfile::tempdir().unwrap();
    let child = command(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = KillOnDrop(child);
    let lines = stdout_lines(&mut server.0);
    let (before, address) = wait_for_listening(&lines);
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    assert_ne!(address, "127.0.0.1:0");

    let text = before.join("\n");
    let key_line = before
        .iter()
        .find_map(|line| line.strip_prefix("API key (shown only once): "))
        .unwrap_or_else(|| panic!("no key line in {text}"));
    assert!(
        key_line.starts_with("tdm_") && key_line.len() == 47,
        "{text}"
    );
    let server_url = format!("http://{address}");
    for expected in [
        "Created development user dev@localhost (tier enterprise).".to_owned(),
        format!("  \"tandem.server\": \"{server_url}\","),
        format!("  \"tandem.apiKey\": \"{key_line}\""),
        format!(
            "  require(\"tandem\").setup{{ server = \"{server_url}\", api_key = \"{key_line}\" }}"
        ),
        format!("  TANDEM_SERVER={server_url} TANDEM_API_KEY={key_line}"),
    ] {
        assert!(
            before.contains(&expected),
            "missing `{expected}` in:\n{text}"
        );
    }

    let (status, body) = http_get(&address, "/health", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");

    let (status, body) = http_get(&address, "/v1/me", Some(&format!("Bearer {key_line}")));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"email\":\"dev@localhost\""), "{body}");
    assert!(body.contains("\"tier\":\"enterprise\""), "{body}");
    drop(server);

    // A second start finds the user and prints only the Listening line.
    let child = command(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = KillOnDrop(child);
    let lines = stdout_lines(&mut server.0);
    let (before, _address) = wait_for_listening(&lines);
    assert!(before.is_empty(), "{before:#?}");
}

/// Regression: SIGTERM sent right after the Listening line used to kill the process with
/// the default signal action, because the handler was only registered once the server
/// future was first polled. Handlers are now registered before the line is printed.
#[cfg(unix)]
#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let child = command(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = KillOnDrop(child);
    let lines = stdout_lines(&mut server.0);
    wait_for_listening(&lines);
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "server did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn keys_carry_scopes_and_expiry_and_admin_actions_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    run_ok(
        dir,
        &[
            "users",
            "create",
            "--email",
            "grace@example.com",
            "--tier",
            "free",
        ],
    );
    let output = run_ok(
        dir,
        &[
            "keys",
            "create",
            "--email",
            "grace@example.com",
            "--name",
            "ci",
            "--scopes",
            "completions,admin",
            "--expires-in-days",
            "7",
        ],
    );
    let key_id = output
        .strip_prefix("created key ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let listing = run_ok(dir, &["keys", "list", "--email", "grace@example.com"]);
    let line = listing.lines().nth(1).unwrap();
    assert!(line.contains("completions,admin expires 20"), "{listing}");
    assert!(line.trim_end().ends_with("active"), "{listing}");
    // Bad arguments are usage errors (exit 2) naming the problem, and create nothing.
    for (flag, value, fragment) in [
        ("--scopes", "root", "unknown scope `root`"),
        ("--expires-in-days", "0", "0 is not in 1..=3650"),
    ] {
        let output = command(dir)
            .args([
                "keys",
                "create",
                "--email",
                "grace@example.com",
                flag,
                value,
            ])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(fragment), "{stderr}");
    }
    let listing = run_ok(dir, &["keys", "list", "--email", "grace@example.com"]);
    assert_eq!(listing.lines().count(), 2, "{listing}");

    run_ok(
        dir,
        &[
            "users",
            "set-tier",
            "--email",
            "grace@example.com",
            "--tier",
            "pro",
        ],
    );
    run_ok(dir, &["keys", "revoke", &key_id]);
    let log = run_ok(dir, &["audit", "--email", "grace@example.com"]);
    let actions: Vec<&str> = log
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        actions,
        ["key.revoke", "user.set_tier", "key.create", "user.create"],
        "{log}"
    );
    assert!(log.contains(r#"{"from":"free","to":"pro"}"#), "{log}");
    assert!(
        log.lines().skip(1).all(|line| line.contains(" cli ")),
        "{log}"
    );
    assert_eq!(run_ok(dir, &["audit", "--limit", "1"]).lines().count(), 2);
}

#[tokio::test]
async fn device_codes_are_approved_or_declined_from_the_server() {
    use tandem_cloud::db::{self, device_codes};
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    run_ok(dir, &["users", "create", "--email", "lin@example.com"]);
    let pool = db::connect(db::options_for_file(&dir.join("tandem.sqlite")))
        .await
        .unwrap();
    let now = chrono::Utc::now();
    for (code, secret) in [("BCDF-GHJK", "one"), ("LMNP-QRST", "two")] {
        device_codes::create(
            &pool,
            &tandem_cloud::keys::KeyHash::of(secret),
            code,
            "tandem-cli",
            &tandem_shared::Scope::DEFAULT,
            chrono::Duration::minutes(5),
            5,
            now,
        )
        .await
        .unwrap();
    }
    pool.close().await;

    assert_eq!(
        run_ok(
            dir,
            &[
                "device",
                "approve",
                "--code",
                "bcdf ghjk",
                "--email",
                "lin@example.com"
            ]
        ),
        "approved login code BCDF-GHJK for lin@example.com\n"
    );
    assert_eq!(
        run_ok(
            dir,
            &[
                "device",
                "deny",
                "--code",
                "LMNP-QRST",
                "--email",
                "lin@example.com"
            ]
        ),
        "declined login code LMNP-QRST for lin@example.com\n"
    );
    // Decided codes cannot be decided again; malformed ones are named.
    let output = run_failing(
        dir,
        &[
            "device",
            "approve",
            "--code",
            "BCDF-GHJK",
            "--email",
            "lin@example.com",
        ],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("no pending login code BCDF-GHJK"));
    let output = run_failing(
        dir,
        &[
            "device",
            "approve",
            "--code",
            "hello",
            "--email",
            "lin@example.com",
        ],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("`hello` is not a login code"));
    let log = run_ok(dir, &["audit", "--email", "lin@example.com"]);
    assert!(
        log.contains("device.approve") && log.contains("device.deny"),
        "{log}"
    );
}

/// Writes `text` as `tandem.toml` in `dir`; its path.
fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("tandem.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `config show --output json` as JSON.
#[track_caller]
fn shown_config(command: &mut Command) -> serde_json::Value {
    let output = command
        .args(["config", "show", "--output", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn config_layers_are_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file_url = database_url(&dir.path().join("file"));
    let config = write_config(
        dir.path(),
        &format!(
            "database_url = \"{file_url}\"\nbind = \"127.0.0.1:1\"\n\
             [limits]\nmax_body_bytes = 10\nrequest_timeout_ms = 7\n"
        ),
    );
    let file_only = shown_config(
        command(dir.path())
            .env_remove("TANDEM_DATABASE_URL")
            .env("TANDEM_CONFIG", &config),
    );
    assert_eq!(file_only["database_url"], file_url.as_str());
    assert_eq!(file_only["limits"]["max_body_bytes"], 10);
    assert_eq!(file_only["bind"], "127.0.0.1:1");

    // The environment beats the file, key by key.
    let with_environment = shown_config(
        command(dir.path())
            .env("TANDEM_CONFIG", &config)
            .env("TANDEM_BIND", "127.0.0.1:2")
            .env("TANDEM_LIMITS__MAX_BODY_BYTES", "20")
            .env("TANDEM_METRICS__ENABLED", "false"),
    );
    assert_eq!(
        with_environment["database_url"],
        database_url(dir.path()).as_str()
    );
    assert_eq!(with_environment["bind"], "127.0.0.1:2");
    assert_eq!(with_environment["limits"]["max_body_bytes"], 20);
    assert_eq!(with_environment["limits"]["request_timeout_ms"], 7);
    assert_eq!(with_environment["metrics"]["enabled"], false);

    // A flag beats both.
    let flag_url = database_url(&dir.path().join("flag"));
    let with_flag = shown_config(
        command(dir.path())
            .env("TANDEM_CONFIG", &config)
            .args(["--database-url", &flag_url]),
    );
    assert_eq!(with_flag["database_url"], flag_url.as_str());
}

#[test]
fn invalid_environment_setting_stops_every_command() {
    // Every command loads the same layers; a bad value stops it before the database is
    // opened, naming the key and the variable.
    let dir = tempfile::tempdir().unwrap();
    for args in [&["config", "validate"][..], &["migrate"]] {
        let output = command(dir.path())
            .env("TANDEM_LIMITS__MAX_BODY_BYTES", "0")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr).trim_end(),
            "error: invalid config: limits.max_body_bytes must be at least 1 (set by \
             environment variable TANDEM_LIMITS__MAX_BODY_BYTES)"
        );
    }
    assert!(!dir.path().join("tandem.sqlite").exists());
}

#[test]
fn unknown_configuration_variable_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .env("TANDEM_LIMITS__MAX_BODY", "1000")
        .args(["config", "validate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: invalid config: environment variable TANDEM_LIMITS__MAX_BODY names no config \
         key (limits.max_body): unknown field `max_body`, expected `max_body_bytes` or \
         `request_timeout_ms`"
    );
    // The project's other variables are not configuration, `__` or not.
    let output = command(dir.path())
        .env("TANDEM_SERVER", "http://127.0.0.1:1")
        .env("TANDEM_API_KEY", "tdm_not_a_setting")
        .env("TANDEM_CONFIG_DIR", dir.path())
        .args(["config", "validate"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn config_validate_checks_what_serve_checks_without_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    assert_eq!(
        run_ok(dir, &["config", "validate"]),
        "configuration is valid\n"
    );

    let config = write_config(dir, "[limits]\nmax_body = 1\n");
    let output = run_failing(dir, &["config", "validate", "--config", &config]);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        format!(
            "error: invalid config file {config}: line 2: unknown field `max_body`, expected \
             `max_body_bytes` or `request_timeout_ms`"
        )
    );

    // Variables the configuration names must be set, as `serve` requires.
    let config = write_config(
        dir,
        "[metrics]\ntoken_env = \"TANDEM_CLI_TEST_UNSET_TOKEN\"\n",
    );
    let output = command(dir)
        .env_remove("TANDEM_CLI_TEST_UNSET_TOKEN")
        .args(["config", "validate", "--config", &config])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: environment variable `TANDEM_CLI_TEST_UNSET_TOKEN` (named by \
         metrics.token_env) is not set"
    );

    // A session secret shorter than 256 bits is refused.
    let config = write_config(
        dir,
        "[sessions]\njwt_secret_env = \"TANDEM_CLI_TEST_SESSION_SECRET\"\n",
    );
    let validate = |secret: &str| {
        command(dir)
            .env("TANDEM_CLI_TEST_SESSION_SECRET", secret)
            .args(["config", "validate", "--config", &config])
            .output()
            .unwrap()
    };
    let output = validate(&"s".repeat(31));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: environment variable `TANDEM_CLI_TEST_SESSION_SECRET` (named by \
         sessions.jwt_secret_env): the session secret is 31 bytes; it must be at least 32 \
         bytes (256 bits) of random data"
    );
    let output = validate(&"s".repeat(32));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "configuration is valid\n"
    );

    // Checking opened no database.
    assert!(!dir.join("tandem.sqlite").exists());
}

#[test]
fn config_show_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";
    let with_password = "sqlite://admin:hunter2@localhost/tandem.sqlite";
    let config = write_config(
        dir.path(),
        &format!(
            "database_url = \"{with_password}\"\n\
             [sessions]\njwt_secret_env = \"TANDEM_CLI_TEST_SHOWN_SECRET\"\n"
        ),
    );
    let output = command(dir.path())
        .env_remove("TANDEM_DATABASE_URL")
        .env("TANDEM_CLI_TEST_SHOWN_SECRET", secret)
        .args(["config", "show", "--config", &config])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let shown = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        shown,
        "# Defaults < config file < TANDEM_* environment < flags; keys left out take their \
         defaults. Secrets are masked.\n\
         database_url = \"sqlite://admin:***@localhost/tandem.sqlite\"\n\
         \n\
         [sessions]\n\
         jwt_secret_env = \"TANDEM_CLI_TEST_SHOWN_SECRET\"\n"
    );
    assert!(!shown.contains("hunter2") && !shown.contains(secret));
}

#[test]
fn telemetry_settings_stop_the_start_naming_them_and_headers_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let config = write_config(dir, "[telemetry]\notlp_endpoint = \"collector:4318\"\n");
    let output = run_failing(
        dir,
        &["serve", "--bind", "127.0.0.1:0", "--config", &config],
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: invalid config: telemetry.otlp_endpoint: the URL must start with http:// or \
         https:// (OTLP over HTTP), got `collector:4318`"
    );

    // The standard variable stands in for the key, and is checked as strictly.
    let output = command(dir)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: environment variable OTEL_EXPORTER_OTLP_ENDPOINT (read because \
         telemetry.otlp_endpoint is not set): the URL must start with http:// or https:// \
         (OTLP over HTTP), got `collector:4318`"
    );
    let output = command(dir)
        .env("TANDEM_TELEMETRY__SAMPLING_RATIO", "2")
        .args(["config", "validate"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: invalid config: telemetry.sampling_ratio must be between 0.0 and 1.0, got 2 \
         (set by environment variable TANDEM_TELEMETRY__SAMPLING_RATIO)"
    );

    // The collector's headers come from the variable `headers_env` names, which must be
    // set; neither `config show` nor an error shows them.
    let secret = "Authorization=Bearer%20otlp-s3cr3t";
    let config = write_config(
        dir,
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n\
         headers_env = \"TANDEM_CLI_TEST_OTLP_HEADERS\"\n",
    );
    let validate = |headers: Option<&str>| {
        let mut command = command(dir);
        match headers {
            Some(headers) => command.env("TANDEM_CLI_TEST_OTLP_HEADERS", headers),
            None => command.env_remove("TANDEM_CLI_TEST_OTLP_HEADERS"),
        };
        command
            .args(["config", "validate", "--config", &config])
            .output()
            .unwrap()
    };
    let output = validate(None);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: environment variable `TANDEM_CLI_TEST_OTLP_HEADERS` (named by \
         telemetry.headers_env) is not set"
    );
    let output = validate(Some("Authorization Bearer otlp-s3cr3t"));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("entry 1 has no `=`") && !message.contains("s3cr3t"),
        "{message}"
    );
    let output = validate(Some(secret));
    assert!(output.status.success(), "{output:?}");
    let shown = shown_config(
        command(dir)
            .env("TANDEM_CLI_TEST_OTLP_HEADERS", secret)
            .args(["--config", &config]),
    );
    assert_eq!(
        shown["telemetry"]["headers_env"],
        "TANDEM_CLI_TEST_OTLP_HEADERS"
    );
    assert!(!shown.to_string().contains("s3cr3t"), "{shown}");
}

/// `version` and `--version`: `tandem-cloud 0.1.0 (1a2b3c4 2025-06-01)`, and the same
/// fields as JSON. The commit is a short hash (with `-dirty` when the tree had changes), or
/// `unknown` when built outside a git checkout.
#[test]
fn version_prints_version_commit_and_build_date() {
    let dir = tempfile::tempdir().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(dir.path(), &["version", "--output", "json"])).unwrap();
    let fields: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["build_date", "commit", "version"], "{json}");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    let commit = json["commit"].as_str().unwrap();
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        commit == "unknown" || hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{commit}"
    );
    let date = json["build_date"].as_str().unwrap();
    assert!(
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
        "{date}"
    );

    let text = format!(
        "tandem-cloud {} ({commit} {date})\n",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(run_ok(dir.path(), &["version"]), text);
    assert_eq!(run_ok(dir.path(), &["--version"]), text);
    // No configuration is read: a broken one does not stop it.
    let output = command(dir.path())
        .env("TANDEM_LIMITS__NOPE", "1")
        .arg("version")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), text);
}
