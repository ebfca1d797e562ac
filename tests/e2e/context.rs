//! Cross-file context and the tier's budget, seen where they matter: in the request the
//! cloud receives and in the prompt the provider receives.

use std::time::Duration;

use serde_json::Value;
use tandem_e2e::{CloudOptions, ProviderConfig, ProviderFixture};

use crate::support::{inline_items, Editor, Stack, MODEL};

const CONFIG_RS: &str = "use std::path::PathBuf;\n\n\
pub struct ServerConfig {\n    pub listen: String,\n    pub data_dir: PathBuf,\n    pub workers: usize,\n}\n\n\
pub fn load_server_config(path: &str) -> std::io::Result<ServerConfig> {\n    let text = std::fs::read_to_string(path)?;\n    parse(&text)\n}\n";

/// Defines an identifier the main file uses, but sits under a `.tandemignore` rule.
const PRIVATE_RS: &str = "pub fn rotate_signing_keys(vault: &Vault) -> KeyPair {\n    vault.rotate(\"internal-only\")\n}\n";

const MAIN_RS: &str = "mod config;\n\nfn main() {\n    let config = load_server_config(\"tandem.toml\").unwrap();\n    let keys = rotate_signing_keys(&vault);\n    let server = Server::bind(config.";

/// The completion requests the cloud received, as JSON.
fn completion_bodies(stack: &Stack) -> Vec<Value> {
    stack
        .proxy
        .completions()
        .into_iter()
        .map(|request| request.body)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_from_other_open_documents_reach_the_provider_and_excluded_ones_do_not() {
    let stack = Stack::start(|fixture| ProviderConfig::ollama(fixture, MODEL), false).await;
    stack.provider().reply_with_text("listen)");
    std::fs::write(
        stack.lsp.workspace_root().join(".tandemignore"),
        "# keys never leave the machine\nsrc/secret/\n",
    )
    .expect("write .tandemignore");
    Editor::open(&stack.lsp, "src/config.rs", "rust", CONFIG_RS).await;
    Editor::open(&stack.lsp, "src/secret/keys.rs", "rust", PRIVATE_RS).await;
    let main = Editor::open(&stack.lsp, "src/main.rs", "rust", MAIN_RS).await;
    let cursor = main.end();

    // Other documents are indexed in the background after `didOpen`; ask until the
    // definition arrives (a request without it is answered too, just with less context).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let body = loop {
        let result = stack
            .lsp
            .inline_completion(&main.uri, cursor)
            .await
            .unwrap_or_else(|error| panic!("inlineCompletion failed: {error}\n{}", stack.logs()));
        assert_eq!(inline_items(&result).len(), 1, "{result}\n{}", stack.logs());
        let bodies = completion_bodies(&stack);
        let last = bodies.last().cloned().unwrap_or(Value::Null);
        if last["context"]["definitions"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
        {
            break last;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no definitions after 10 s: {bodies:#?}\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let definitions = body["context"]["definitions"].as_array().unwrap();
    let texts: Vec<&str> = definitions
        .iter()
        .map(|snippet| snippet["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&"pub fn load_server_config(path: &str) -> std::io::Result<ServerConfig>"),
        "{texts:#?}"
    );
    assert!(definitions
        .iter()
        .all(|snippet| snippet["path"] == "src/config.rs"));
    // Nothing of the excluded document, under any field.
    let everything = body.to_string();
    assert!(
        !everything.contains("rotate_signing_keys(vault"),
        "{body:#}"
    );
    assert!(!everything.contains("internal-only"), "{body:#}");

    // The provider saw the definition above the prefix (no template: comment-headed).
    let prompts: Vec<String> = stack
        .provider()
        .requests()
        .iter()
        .filter_map(|request| request.prompt().map(str::to_owned))
        .collect();
    let prompt = prompts.last().expect("the provider was called");
    assert!(
        prompt.contains("pub fn load_server_config(path: &str)"),
        "{prompt}"
    );
    assert!(prompt.contains("src/config.rs"), "{prompt}");
    assert!(prompt.ends_with("config."), "{prompt}");
    assert!(!prompt.contains("internal-only"), "{prompt}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fit_the_budget_the_tier_announces() {
    const TIER_LIMIT: u64 = 300;
    let provider = ProviderFixture::start().await.expect("provider fixture");
    provider.reply_with_text("value");
    let options = CloudOptions {
        tier: Some("pro".into()),
        extra_toml: format!("\n[tiers.pro]\nmax_context_tokens = {TIER_LIMIT}\n"),
        ..CloudOptions::with_provider(ProviderConfig::ollama(&provider, MODEL))
    };
    let stack = Stack::start_with(options, Some(provider), false, serde_json::json!({})).await;
    let mut text = String::from("def compute(values):\n    total = 0\n");
    for index in 0..400 {
        text.push_str(&format!("    total += values[{index}] * weight_{index}\n"));
    }
    text.push_str("    return ");
    let editor = Editor::open(&stack.lsp, "stats.py", "python", &text).await;
    let cursor = editor.end();

    // The tier's budget is read from `GET /v1/me` in the background after `initialized`;
    // until it arrives the server uses the smallest tier's (4,000), which this cloud
    // refuses. Every answer after that one must be a suggestion.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let result = stack
            .lsp
            .inline_completion(&editor.uri, cursor)
            .await
            .unwrap_or_else(|error| panic!("inlineCompletion failed: {error}\n{}", stack.logs()));
        if !inline_items(&result).is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never got a suggestion: {:#?}\n{}",
            completion_bodies(&stack),
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let me_calls = stack
        .proxy
        .requests()
        .iter()
        .filter(|request| request.path == "/v1/me")
        .count();
    assert!(me_calls >= 1, "the server never asked for its budget");

    let bodies = completion_bodies(&stack);
    let last = bodies.last().expect("a completion was sent");
    let request: tandem_shared::CompletionRequest =
        serde_json::from_value(last.clone()).expect("a completion request");
    let tokens = u64::from(request.estimated_tokens());
    assert!(
        tokens <= TIER_LIMIT,
        "{tokens} tokens over the tier's {TIER_LIMIT}"
    );
    // The budget was used, not just respected: most of it went to the prefix, which kept
    // the lines nearest the cursor and started on a line boundary.
    assert!(
        tokens > TIER_LIMIT / 2,
        "only {tokens} tokens of {TIER_LIMIT} used"
    );
    assert!(
        request.prefix.ends_with("    return "),
        "{}",
        request.prefix
    );
    assert!(
        request.prefix.starts_with("    total += values["),
        "{}",
        request.prefix
    );
    assert_eq!(request.context.scopes, ["def compute(values):"]);
    stack.shutdown().await;
}
