//! The LSP edge: the only module that knows `lsp_types` and tower-lsp.
//!
//! [`TandemServer`] holds the state; each LSP method is one function in
//! [`handlers`]; [`service`] wraps the generated `LspService` for what tower-lsp 0.20
//! cannot express (a raw `inlineCompletionProvider` capability, the exit code).
//!
//! Ordering: tower-lsp polls up to four handler futures at once, but it polls each for
//! the first time in the order the messages arrived. `didOpen`/`didChange`/`didClose`
//! do all their work synchronously in that first poll, and requests take their
//! document snapshot in theirs, so a request always sees every edit sent before it.

mod capabilities;
mod code_actions;
mod error;
mod from_proto;
mod handlers;
mod service;
mod sign_in;
mod status;
mod stdio;
mod tier_budget;
mod to_proto;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures::FutureExt;
use tower_lsp::jsonrpc;
use tower_lsp::lsp_types::{
    CodeAction, CodeActionParams, CodeActionResponse, CompletionParams, CompletionResponse,
    DidChangeConfigurationParams, DidChangeTextDocumentParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, ExecuteCommandParams, InitializeParams, InitializeResult,
    InitializedParams, MessageType, NumberOrString, WorkDoneProgressCancelParams,
};
use tower_lsp::{Client, LanguageServer, LspService};

use crate::cloud::{CloudClient, CloudError, CloudTarget};
use crate::context::neighbors::NeighborIndex;
use crate::credentials::{
    self, CredentialSources, Credentials, CredentialsFileCache, PartialCredentials,
};
use crate::document::{DocumentSnapshot, DocumentStore, PositionEncoding, StoreError, SyntaxTree};
use crate::engine::CompletionEngine;
use crate::privacy::ExclusionRules;
use crate::settings::{Limits, SettingsLayer};
use crate::status::StatusTracker;

pub(crate) use service::run_stdio;

/// Everything fixed at `initialize` or changed by `didChangeConfiguration`.
#[derive(Debug, Default)]
struct Config {
    encoding: PositionEncoding,
    roots: Vec<PathBuf>,
    client: from_proto::ClientSupport,
    initialization: SettingsLayer,
    configuration: SettingsLayer,
    environment: PartialCredentials,
}

/// A copy of the configuration one request needs, taken without awaiting.
#[derive(Debug, Clone)]
struct RequestConfig {
    encoding: PositionEncoding,
    roots: Vec<PathBuf>,
    client: from_proto::ClientSupport,
    limits: Limits,
    credentials: Credentials,
}

/// Where the server's environment-derived inputs come from, so tests can pin them.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `TANDEM_SERVER` / `TANDEM_API_KEY`.
    pub credentials: PartialCredentials,
    /// Path of the credentials file, if there is a config directory.
    pub credentials_file: Option<PathBuf>,
}

impl Environment {
    /// Reads the real process environment.
    pub fn from_process() -> Self {
        let credentials_file = match credentials::credentials_path() {
            Ok(path) => Some(path),
            Err(error) => {
                tracing::warn!(%error, "no credentials file location");
                None
            }
        };
        Environment {
            credentials: credentials::from_environment(),
            credentials_file,
        }
    }
}

/// The language server's state, shared by all handlers.
pub struct TandemServer {
    client: Client,
    documents: DocumentStore,
    /// Shared with upstream calls, which outlive a superseded request while another
    /// identical request still awaits them.
    cloud: Arc<CloudClient>,
    /// Debounce, superseding, deduplication, cache and typing-through.
    engine: CompletionEngine<CloudError>,
    config: RwLock<Config>,
    credentials_file: Mutex<CredentialsFileCache>,
    /// The credentials the last request used; a change re-arms the auth notice.
    last_credentials: Mutex<Option<Credentials>>,
    /// Set once the user was told about a missing or rejected key.
    auth_notice_shown: AtomicBool,
    /// The last limit notice shown (a quota, or a feature outside the tier), so each is
    /// shown once rather than on every keystroke.
    limit_notice: std::sync::Mutex<Option<String>>,
    /// `.tandemignore` plus the built-in exclusions, per workspace root, loaded on first
    /// use and re-read when the file changes.
    exclusions: RwLock<Vec<(Option<PathBuf>, ExclusionRules)>>,
    /// Definitions and similar-snippet windows of the open documents, for cross-file
    /// context; built in the background.
    neighbors: Arc<NeighborIndex>,
    /// The tier's context limit, from `GET /v1/me`.
    tier_budget: tier_budget::TierBudget,
    /// Running `tandem.explain` commands by work-done progress token, so the progress
    /// UI's cancel button can stop them.
    progress_cancellations: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    next_progress: AtomicU64,
    /// The tree of the last document code actions were asked for, when the store keeps
    /// none for it (a large file only read): editors ask for actions on every cursor
    /// move, and one parse per version is enough.
    action_tree: Mutex<Option<(String, i32, SyntaxTree)>>,
    /// A `tandem.signIn` is waiting for its code to be confirmed.
    signing_in: Arc<AtomicBool>,
    /// What the editor's status bar shows (`tandem/status`).
    status: Arc<StatusTracker>,
}

impl TandemServer {
    /// Whether the document at `uri` must never leave the machine (`docs/PRIVACY.md`).
    /// Costs one `stat` of `.tandemignore` per call; no lock is held afterwards.
    fn is_excluded(&self, uri: &str, roots: &[PathBuf]) -> bool {
        let Some(path) = from_proto::file_path(uri) else {
            return false;
        };
        let root = roots
            .iter()
            .find(|root| path.starts_with(root))
            .or(roots.first())
            .cloned();
        {
            let exclusions = self
                .exclusions
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((_, rules)) = exclusions.iter().find(|(r, _)| *r == root) {
                if !rules.is_stale() {
                    return rules.is_excluded(&path);
                }
            }
        }
        let mut exclusions = self
            .exclusions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match exclusions.iter_mut().find(|(r, _)| *r == root) {
            Some((_, rules)) => {
                rules.refresh_if_changed();
                rules.is_excluded(&path)
            }
            None => {
                let rules = ExclusionRules::load(root.as_deref());
                let excluded = rules.is_excluded(&path);
                exclusions.push((root, rules));
                excluded
            }
        }
    }

    fn new(
        client: Client,
        environment: Environment,
        cloud: CloudClient,
        status: Arc<StatusTracker>,
    ) -> Self {
        TandemServer {
            client,
            documents: DocumentStore::new(),
            cloud: Arc::new(cloud),
            engine: CompletionEngine::new(),
            config: RwLock::new(Config {
                environment: environment.credentials,
                ..Config::default()
            }),
            credentials_file: Mutex::new(CredentialsFileCache::new(environment.credentials_file)),
            last_credentials: Mutex::new(None),
            auth_notice_shown: AtomicBool::new(false),
            limit_notice: std::sync::Mutex::new(None),
            exclusions: RwLock::new(Vec::new()),
            neighbors: Arc::new(NeighborIndex::default()),
            tier_budget: tier_budget::TierBudget::new(status.clone()),
            progress_cancellations: Mutex::new(HashMap::new()),
            next_progress: AtomicU64::new(1),
            action_tree: Mutex::new(None),
            signing_in: Arc::new(AtomicBool::new(false)),
            status,
        }
    }

    /// A snapshot with its syntax tree for code actions: the store's tree when it keeps
    /// one, else the one parsed for the previous action on this version.
    fn action_snapshot(&self, uri: &str) -> Result<DocumentSnapshot, StoreError> {
        let snapshot = self.documents.snapshot(uri)?;
        if snapshot.syntax.is_some() {
            return Ok(snapshot);
        }
        {
            let cached = self
                .action_tree
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((cached_uri, version, tree)) = cached.as_ref() {
                if cached_uri == uri && *version == snapshot.version {
                    return Ok(DocumentSnapshot {
                        syntax: Some(tree.clone()),
                        ..snapshot
                    });
                }
            }
        }
        let snapshot = self.documents.snapshot_with_syntax(uri)?;
        let mut cached = self
            .action_tree
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *cached = snapshot
            .syntax
            .clone()
            .map(|tree| (uri.to_owned(), snapshot.version, tree));
        Ok(snapshot)
    }

    /// Drops the code-action tree of a closed document.
    fn forget_action_tree(&self, uri: &str) {
        let mut cached = self
            .action_tree
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cached
            .as_ref()
            .is_some_and(|(cached_uri, _, _)| cached_uri == uri)
        {
            *cached = None;
        }
    }

    /// Where the credentials file is, if there is a config directory.
    fn credentials_path(&self) -> Option<PathBuf> {
        self.credentials_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .path()
            .map(PathBuf::from)
    }

    /// A token for server-initiated work-done progress.
    fn next_progress_token(&self) -> String {
        let number = self.next_progress.fetch_add(1, Ordering::Relaxed);
        format!("tandem-{number}")
    }

    /// What is notified when the client cancels the progress `token`.
    fn progress_cancellation(&self, token: &NumberOrString) -> Arc<tokio::sync::Notify> {
        let notify = Arc::new(tokio::sync::Notify::new());
        self.progress_cancellations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(progress_key(token), notify.clone());
        notify
    }

    fn forget_progress(&self, token: &NumberOrString) {
        self.progress_cancellations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&progress_key(token));
    }

    fn cancel_progress(&self, token: &NumberOrString) {
        let notify = self
            .progress_cancellations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&progress_key(token));
        if let Some(notify) = notify {
            // `notify_one` stores a permit, so a cancel arriving before the run awaits it
            // is not lost.
            notify.notify_one();
        }
    }

    fn encoding(&self) -> PositionEncoding {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .encoding
    }

    /// What the client said it can do, at `initialize`.
    fn client_support(&self) -> from_proto::ClientSupport {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .client
    }

    /// The workspace roots, for documents' relative paths.
    fn request_roots(&self) -> Vec<PathBuf> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .roots
            .clone()
    }

    /// Snapshot of everything a request needs; synchronous, locks released on return.
    fn request_config(&self) -> RequestConfig {
        let file = self
            .credentials_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .current();
        let config = self.config.read().unwrap_or_else(PoisonError::into_inner);
        let settings = config.configuration.or(&config.initialization);
        let credentials = credentials::resolve(&CredentialSources {
            editor_settings: settings.credentials(),
            environment: config.environment.clone(),
            file,
        });
        let mut last = self
            .last_credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.as_ref() != Some(&credentials) {
            if last.is_some() {
                tracing::info!(
                    server = %credentials.server,
                    key_source = %credentials.api_key_source,
                    "credentials changed"
                );
            }
            self.auth_notice_shown.store(false, Ordering::SeqCst);
            self.status
                .set_credentials(&credentials.server, credentials.api_key.as_ref());
            *last = Some(credentials.clone());
        }
        RequestConfig {
            encoding: config.encoding,
            roots: config.roots.clone(),
            client: config.client,
            limits: Limits::from_layer(&settings),
            credentials,
        }
    }

    fn target(config: &RequestConfig) -> Option<CloudTarget> {
        Some(CloudTarget {
            server: config.credentials.server.clone(),
            api_key: config.credentials.api_key.clone()?,
            timeout: config.limits.request_timeout,
        })
    }

    /// Reads the tier's context budget, and with it the account's tier and quota for the
    /// status, in the background: at start, so the first completion has it, and after
    /// the credentials changed.
    fn read_account(&self, config: &RequestConfig) {
        if let Some(target) = Self::target(config) {
            self.tier_budget
                .limit(&self.cloud, &target, &config.credentials);
        }
    }

    /// Tells the user, once until credentials or settings change, that completions
    /// need a (valid) API key. Never includes the key.
    /// Shows what the cloud said about a limit, unless it is the notice shown last.
    async fn notify_limit(&self, message: String) {
        {
            let mut last = self
                .limit_notice
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.as_deref() == Some(message.as_str()) {
                return;
            }
            *last = Some(message.clone());
        }
        self.client
            .show_message(MessageType::WARNING, format!("Tandem: {message}"))
            .await;
    }

    async fn notify_auth_problem(&self, message: String) {
        if !self.auth_notice_shown.swap(true, Ordering::SeqCst) {
            self.client
                .show_message(MessageType::WARNING, message)
                .await;
        }
    }
}

/// Awaits a request handler; a panic becomes an `InternalError` response and a log line
/// instead of taking the whole server down (tower-lsp would let it unwind through the
/// transport).
async fn catch_request_panic<T>(
    method: &'static str,
    handler: impl Future<Output = jsonrpc::Result<T>>,
) -> jsonrpc::Result<T> {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            tracing::error!(
                method,
                panic = panic_message(payload.as_ref()),
                "request handler panicked"
            );
            let mut error = jsonrpc::Error::internal_error();
            error.message = format!("internal error in {method}; see the server log").into();
            Err(error)
        }
    }
}

/// Runs a notification handler synchronously, logging a panic instead of unwinding.
fn catch_notification_panic(method: &'static str, handler: impl FnOnce()) {
    if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(handler)) {
        tracing::error!(
            method,
            panic = panic_message(payload.as_ref()),
            "notification handler panicked"
        );
    }
}

fn progress_key(token: &NumberOrString) -> String {
    match token {
        NumberOrString::Number(number) => format!("n{number}"),
        NumberOrString::String(text) => format!("s{text}"),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

#[tower_lsp::async_trait]
impl LanguageServer for TandemServer {
    async fn initialize(&self, params: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        catch_request_panic("initialize", async {
            Ok(handlers::initialize::handle_initialize(self, params))
        })
        .await
    }

    async fn initialized(&self, _: InitializedParams) {
        let config = self.request_config();
        tracing::info!(
            server = %config.credentials.server,
            key_source = %config.credentials.api_key_source,
            has_key = config.credentials.api_key.is_some(),
            encoding = ?config.encoding,
            "tandem language server ready"
        );
        if config.client.status_notifications {
            status::spawn_notifier(self.client.clone(), self.status.subscribe());
        }
        self.read_account(&config);
    }

    async fn shutdown(&self) -> jsonrpc::Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        // Synchronous on purpose: see the module documentation on ordering.
        catch_notification_panic("textDocument/didOpen", || {
            handlers::did_open::handle_did_open(self, params)
        });
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        catch_notification_panic("textDocument/didChange", || {
            handlers::did_change::handle_did_change(self, params)
        });
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        catch_notification_panic("textDocument/didClose", || {
            handlers::did_close::handle_did_close(self, params)
        });
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        catch_notification_panic("workspace/didChangeConfiguration", || {
            handlers::did_change_configuration::handle_did_change_configuration(self, params)
        });
    }

    async fn completion(
        &self,
        params: CompletionParams,
    ) -> jsonrpc::Result<Option<CompletionResponse>> {
        catch_request_panic(
            "textDocument/completion",
            handlers::completion::handle_completion(self, params),
        )
        .await
    }

    async fn code_action(
        &self,
        params: CodeActionParams,
    ) -> jsonrpc::Result<Option<CodeActionResponse>> {
        catch_request_panic("textDocument/codeAction", async {
            handlers::code_action::handle_code_action(self, params).map_err(Into::into)
        })
        .await
    }

    async fn code_action_resolve(&self, action: CodeAction) -> jsonrpc::Result<CodeAction> {
        catch_request_panic(
            "codeAction/resolve",
            handlers::code_action_resolve::handle_code_action_resolve(self, action),
        )
        .await
    }

    async fn execute_command(
        &self,
        params: ExecuteCommandParams,
    ) -> jsonrpc::Result<Option<serde_json::Value>> {
        catch_request_panic(
            "workspace/executeCommand",
            handlers::execute_command::handle_execute_command(self, params),
        )
        .await
    }
}

impl TandemServer {
    /// Handler of the custom `textDocument/inlineCompletion` method (LSP 3.18, which
    /// tower-lsp's lsp-types predates).
    async fn inline_completion(
        &self,
        params: tandem_shared::inline_completion::InlineCompletionParams,
    ) -> jsonrpc::Result<tandem_shared::inline_completion::InlineCompletionList> {
        catch_request_panic(
            "textDocument/inlineCompletion",
            handlers::inline_completion::handle_inline_completion(self, params),
        )
        .await
    }

    /// Handler of the custom `tandem/explain` request.
    async fn explain(
        &self,
        params: code_actions::explain::ExplainParams,
    ) -> jsonrpc::Result<code_actions::explain::ExplainResult> {
        catch_request_panic(
            "tandem/explain",
            handlers::explain::handle_explain(self, params),
        )
        .await
    }

    /// Handler of the custom `tandem/status` request.
    async fn status(&self) -> jsonrpc::Result<crate::status::Status> {
        catch_request_panic("tandem/status", async { Ok(status::handle_status(self)) }).await
    }

    /// Handler of `window/workDoneProgress/cancel`, which tower-lsp does not route.
    async fn work_done_progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        catch_notification_panic("window/workDoneProgress/cancel", || {
            handlers::explain::handle_work_done_progress_cancel(self, params)
        });
    }

    /// A request that always panics, to test that panics become `InternalError`.
    #[cfg(test)]
    async fn test_panic(&self, _: serde_json::Value) -> jsonrpc::Result<serde_json::Value> {
        catch_request_panic("tandem/testPanic", async {
            panic!("deliberate test panic")
        })
        .await
    }
}

/// Builds the service with the custom methods registered.
pub fn build_service(
    environment: Environment,
) -> Result<(LspService<TandemServer>, tower_lsp::ClientSocket), crate::cloud::CloudError> {
    // Built before `LspService::build`, whose constructor cannot fail.
    let status = Arc::new(StatusTracker::default());
    let cloud = CloudClient::new()?.with_observer(status.clone());
    let builder =
        LspService::build(move |client| TandemServer::new(client, environment, cloud, status))
            .custom_method(
                "textDocument/inlineCompletion",
                TandemServer::inline_completion,
            )
            .custom_method("tandem/explain", TandemServer::explain)
            .custom_method(status::STATUS_METHOD, TandemServer::status)
            .custom_method(
                "window/workDoneProgress/cancel",
                TandemServer::work_done_progress_cancel,
            );
    #[cfg(test)]
    let builder = builder.custom_method("tandem/testPanic", TandemServer::test_panic);
    Ok(builder.finish())
}
