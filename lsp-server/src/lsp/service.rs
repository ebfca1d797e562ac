//! The tower service around tower-lsp's `LspService`, and running it on stdio.
//!
//! The wrapper adds what tower-lsp 0.20 cannot: the raw `inlineCompletionProvider`
//! capability (its lsp-types has no such field), and an exit code per the spec
//! (0 after `shutdown`, 1 otherwise) as soon as `exit` arrives, instead of waiting for
//! stdin to close.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::oneshot;
use tower::Service;
use tower_lsp::jsonrpc::{Request, Response};
use tower_lsp::{ExitedError, LspService, Server};

use super::{build_service, capabilities, Environment, TandemServer};

/// `LspService<TandemServer>` plus the initialize patch and exit tracking.
pub struct TandemService {
    inner: LspService<TandemServer>,
    shutdown_requested: Arc<AtomicBool>,
    exit: Arc<Mutex<Option<oneshot::Sender<u8>>>>,
}

impl TandemService {
    /// The service, the client socket for `Server::new`, and a receiver that yields
    /// the process exit code when `exit` arrives.
    pub fn new(
        environment: Environment,
    ) -> Result<
        (
            TandemService,
            tower_lsp::ClientSocket,
            oneshot::Receiver<u8>,
        ),
        crate::cloud::CloudError,
    > {
        let (inner, socket) = build_service(environment)?;
        let (exit_sender, exit_receiver) = oneshot::channel();
        let service = TandemService {
            inner,
            shutdown_requested: Arc::new(AtomicBool::new(false)),
            exit: Arc::new(Mutex::new(Some(exit_sender))),
        };
        Ok((service, socket, exit_receiver))
    }

    /// Whether `shutdown` was received, shared for use after the service is moved.
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shutdown_requested.clone()
    }
}

impl Service<Request> for TandemService {
    type Response = Option<Response>;
    type Error = ExitedError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let request = without_null_params(request);
        match request.method() {
            "initialize" => self
                .inner
                .call(request)
                .map(|result| result.map(|response| response.map(add_inline_completion_capability)))
                .boxed(),
            "shutdown" => {
                self.shutdown_requested.store(true, Ordering::SeqCst);
                self.inner.call(request)
            }
            "exit" => {
                let future = self.inner.call(request);
                let code = if self.shutdown_requested.load(Ordering::SeqCst) {
                    0
                } else {
                    1
                };
                if let Some(sender) = self
                    .exit
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                {
                    let _ = sender.send(code);
                }
                future
            }
            _ => self.inner.call(request),
        }
    }
}

/// tower-lsp rejects `"params": null` on parameterless methods (`shutdown`) with
/// InvalidParams, but JSON-RPC 2.0 clients may send it; treat it as absent. So are any
/// params of `tandem/status`, which takes none: clients send `{}` as often as nothing.
fn without_null_params(request: Request) -> Request {
    let ignored = matches!(request.params(), Some(serde_json::Value::Null))
        || (request.method() == super::status::STATUS_METHOD && request.params().is_some());
    if !ignored {
        return request;
    }
    let (method, id, _) = request.into_parts();
    let builder = Request::build(method);
    match id {
        Some(id) => builder.id(id).finish(),
        None => builder.finish(),
    }
}

fn add_inline_completion_capability(response: Response) -> Response {
    let (id, result) = response.into_parts();
    let result = result.map(|mut value| {
        capabilities::add_inline_completion_provider(&mut value);
        value
    });
    Response::from_parts(id, result)
}

/// Runs the language server on stdin/stdout until `exit` (or stdin closes) and returns
/// the process exit code.
pub fn run_stdio() -> anyhow::Result<u8> {
    use anyhow::Context as _;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let code = runtime.block_on(async {
        crate::memory::spawn_trimmer();
        let (service, socket, exit) = TandemService::new(Environment::from_process())
            .context("cannot start the language server")?;
        let shutdown_requested = service.shutdown_flag();
        let server =
            Server::new(super::stdio::input(), super::stdio::output(), socket).serve(service);
        let code = tokio::select! {
            () = server => {
                // stdin closed without `exit`: fine after `shutdown`, abnormal before.
                if shutdown_requested.load(Ordering::SeqCst) { 0 } else { 1 }
            }
            code = exit => code.unwrap_or(1),
        };
        anyhow::Ok(code)
    })?;
    // When stdin is not a pipe or socket, tokio's reader is a blocking thread stuck in
    // `read`; do not wait for it.
    runtime.shutdown_background();
    tracing::info!(code, "language server stopped");
    Ok(code)
}
