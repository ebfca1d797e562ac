//! What never leaves the machine, checked where it matters: at the model provider.

use crate::support::{inline_items, Editor, Stack, MODEL};
use tandem_e2e::ProviderConfig;

/// An AWS access key id of the documented shape, built at run time so the repository
/// holds nothing a secret scanner would flag.
fn aws_access_key_id() -> String {
    format!("AKIA{}", "QX7Z".repeat(4))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_redacted_before_the_provider_sees_them() {
    let stack = Stack::start(|fixture| ProviderConfig::ollama(fixture, MODEL), false).await;
    stack.provider().reply_with_text("region_name=REGION)");
    let key = aws_access_key_id();
    let text = format!(
        "import boto3\n\nACCESS_KEY_ID = \"{key}\"\n\nclient = boto3.client(\"s3\", aws_access_key_id=ACCESS_KEY_ID, \n"
    );
    let editor = Editor::open(&stack.lsp, "app/storage.py", "python", &text).await;
    let cursor = editor.position_after("ACCESS_KEY_ID, ");

    let result = stack
        .lsp
        .inline_completion(&editor.uri, cursor)
        .await
        .unwrap_or_else(|error| panic!("inlineCompletion failed: {error}\n{}", stack.logs()));
    assert_eq!(inline_items(&result).len(), 1, "{result}\n{}", stack.logs());

    let requests = stack.provider().requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let prompt = requests[0].prompt().unwrap_or_default().to_owned();
    assert!(
        !prompt.contains(&key),
        "the key reached the provider: {prompt}"
    );
    assert!(
        prompt.contains("ACCESS_KEY_ID = \"<redacted:aws-access-key>\""),
        "the model should still see where the key was: {prompt}"
    );
    // Nothing around the secret changed.
    assert!(prompt.starts_with("import boto3\n\n"), "{prompt}");
    assert!(
        prompt.ends_with("aws_access_key_id=ACCESS_KEY_ID, "),
        "{prompt}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_files_are_never_sent() {
    let stack = Stack::start(|fixture| ProviderConfig::ollama(fixture, MODEL), false).await;
    stack.provider().reply_with_text("should never be asked");
    let editor = Editor::open(&stack.lsp, ".env", "dotenv", "DATABASE_URL=postgres://").await;
    let cursor = editor.end();

    let result = stack
        .lsp
        .inline_completion(&editor.uri, cursor)
        .await
        .unwrap_or_else(|error| panic!("inlineCompletion failed: {error}\n{}", stack.logs()));
    assert!(inline_items(&result).is_empty(), "{result}");
    assert_eq!(stack.provider().request_count(), 0);
    assert!(stack.proxy.completions().is_empty(), "the cloud was asked");
    stack.shutdown().await;
}
