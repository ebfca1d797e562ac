//! The real `tandem` binary: LSP over stdio with Content-Length framing, exit codes,
//! and the credential commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A `tandem` command with a private config dir and no credentials from the environment.
fn tandem(config_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    command
        .env("TANDEM_CONFIG_DIR", config_dir)
        .env_remove("TANDEM_API_KEY")
        .env_remove("TANDEM_SERVER")
        .env("TANDEM_LOG", "warn");
    command
}

struct LspProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: mpsc::Receiver<Value>,
}

impl LspProcess {
    fn spawn(args: &[&str], config_dir: &std::path::Path) -> LspProcess {
        let mut child = tandem(config_dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tandem");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (sender, messages) = mpsc::channel();
        // Reading on a thread lets every wait below have a timeout.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut content_length = None;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        return;
                    }
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    if let Some(value) = header.strip_prefix("Content-Length:") {
                        content_length = value.trim().parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; content_length.expect("Content-Length header")];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let message = serde_json::from_slice(&body).expect("stdout carries only JSON-RPC");
                if sender.send(message).is_err() {
                    return;
                }
            }
        });
        LspProcess {
            child,
            stdin,
            messages,
        }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        let stdin = self.stdin.as_mut().expect("stdin open");
        write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        stdin.flush().unwrap();
    }

    /// The response to request `id`, skipping notifications.
    fn response(&self, id: i64) -> Value {
        loop {
            let message = self
                .messages
                .recv_timeout(TIMEOUT)
                .expect("a response in time");
            if message["id"] == id && message.get("method").is_none() {
                return message;
            }
        }
    }

    fn initialize(&mut self, capabilities: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"processId": null, "rootUri": null, "capabilities": capabilities}}));
        let response = self.response(1);
        self.send(json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
        response
    }

    /// Sends `exit`, keeps stdin open (the server must not wait for EOF), returns the code.
    fn exit(mut self) -> i32 {
        self.send(json!({"jsonrpc": "2.0", "method": "exit"}));
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().expect("exited normally");
            }
            assert!(std::time::Instant::now() < deadline, "tandem did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn shutdown_and_exit(mut self) -> i32 {
        self.send(json!({"jsonrpc": "2.0", "id": 99, "method": "shutdown"}));
        let response = self.response(99);
        assert_eq!(response["result"], Value::Null, "{response}");
        self.exit()
    }
}

impl Drop for LspProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn lsp_negotiates_utf8_when_offered_and_exits_zero() {
    let config = tempfile::tempdir().unwrap();
    let mut server = LspProcess::spawn(&["lsp"], config.path());
    let response =
        server.initialize(json!({"general": {"positionEncodings": ["utf-8", "utf-16"]}}));
    let capabilities = &response["result"]["capabilities"];
    assert_eq!(capabilities["positionEncoding"], "utf-8", "{response}");
    assert_eq!(capabilities["inlineCompletionProvider"], true);
    assert_eq!(server.shutdown_and_exit(), 0);
}

#[test]
fn stdio_flag_runs_the_server_with_utf16_by_default() {
    let config = tempfile::tempdir().unwrap();
    let mut server = LspProcess::spawn(&["--stdio"], config.path());
    let response = server.initialize(json!({}));
    assert_eq!(
        response["result"]["capabilities"]["positionEncoding"], "utf-16",
        "{response}"
    );
    assert_eq!(server.shutdown_and_exit(), 0);
}

#[test]
fn lsp_subcommand_accepts_the_stdio_flag() {
    let config = tempfile::tempdir().unwrap();
    let mut server = LspProcess::spawn(&["lsp", "--stdio"], config.path());
    let response = server.initialize(json!({"general": {"positionEncodings": ["utf-16"]}}));
    assert_eq!(
        response["result"]["capabilities"]["positionEncoding"], "utf-16",
        "{response}"
    );
    assert_eq!(server.shutdown_and_exit(), 0);
}

/// The LSP spec: `exit` without a prior `shutdown` exits with code 1.
#[test]
fn exit_without_shutdown_is_code_one() {
    let config = tempfile::tempdir().unwrap();
    let mut server = LspProcess::spawn(&["lsp"], config.path());
    server.initialize(json!({}));
    assert_eq!(server.exit(), 1);
}

#[test]
fn version_flag_prints_the_version_commit_and_build_date() {
    let config = tempfile::tempdir().unwrap();
    let output = tandem(config.path()).arg("--version").output().unwrap();
    assert!(output.status.success());
    // `tandem 0.1.0 (0a42eb1 2026-12-05)`: the commit is `unknown` outside a checkout.
    let text = String::from_utf8(output.stdout).unwrap();
    let text = text.trim();
    let rest = text
        .strip_prefix(&format!("tandem {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{text}"));
    let (commit, date) = rest.split_once(' ').unwrap_or_else(|| panic!("{text}"));
    assert!(!commit.is_empty(), "{text}");
    let digits: Vec<&str> = date.split('-').collect();
    assert!(
        digits.len() == 3
            && [4, 2, 2]
                .iter()
                .zip(&digits)
                .all(|(len, part)| part.len() == *len && part.bytes().all(|b| b.is_ascii_digit())),
        "a YYYY-MM-DD build date: {text}"
    );

    let output = tandem(config.path())
        .args(["version", "--output", "json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["commit"], commit);
    assert_eq!(json["build_date"], date);
}

#[test]
fn no_arguments_prints_help_on_stderr() {
    let config = tempfile::tempdir().unwrap();
    let output = tandem(config.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("tandem lsp"));
}

/// Answers every HTTP request with `status` and `body`; records Authorization headers.
fn http_fixture(status: u16, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let authorizations = Arc::new(Mutex::new(Vec::new()));
    let seen = authorizations.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("authorization") {
                        seen.lock().unwrap().push(value.trim().to_owned());
                    }
                }
            }
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = reader.get_mut().write_all(response.as_bytes());
        }
    });
    (url, authorizations)
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn login_status_logout() {
    const KEY: &str = "tdm_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
    let (url, authorizations) = http_fixture(
        200,
        r#"{"user":{"id":"u1","email":"dev@localhost"},"tier":"enterprise"}"#,
    );
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("credentials.json");

    let output = tandem(config.path())
        .args(["login", "--api-key", KEY, "--server", &url])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("dev@localhost") && stdout.contains("enterprise"),
        "{stdout}"
    );
    assert_eq!(
        authorizations.lock().unwrap().as_slice(),
        [format!("Bearer {KEY}")]
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved, json!({"server": url, "api_key": KEY}));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let output = tandem(config.path()).arg("status").output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&url) && stdout.contains("dev@localhost"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(KEY) && !stderr.contains(KEY),
        "the key is never printed in full"
    );

    let output = tandem(config.path()).arg("logout").output().unwrap();
    assert!(output.status.success());
    assert!(!file.exists());
    let output = tandem(config.path()).arg("status").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).0.contains("API key:          none"));
}

#[test]
fn login_with_a_rejected_key_saves_nothing() {
    let (url, _) = http_fixture(
        401,
        r#"{"error":{"code":"unauthorized","message":"unknown key"}}"#,
    );
    let config = tempfile::tempdir().unwrap();
    let output = tandem(config.path())
        .args([
            "login",
            "--api-key",
            "tdm_rejected_rejected_rejected",
            "--server",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).1.contains("rejected this API key"),
        "{:?}",
        text(&output)
    );
    assert!(!config.path().join("credentials.json").exists());

    let output = tandem(config.path())
        .args([
            "login",
            "--api-key",
            "sk-not-a-tandem-key",
            "--server",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).1.contains("start with `tdm_`"));
}
