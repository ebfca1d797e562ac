//! An axum app served on a free loopback port for the length of a test: the provider
//! fixture and the recording proxy both run on it.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server. Stops listening when dropped.
pub(crate) struct LoopbackServer {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    /// Serves `app` on `127.0.0.1:0`; `what` names it in the error if binding fails.
    pub(crate) async fn start(app: Router, what: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .with_context(|| format!("cannot bind the {what} to 127.0.0.1:0"))?;
        let address = listener.local_addr()?;
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = shutdown_signal.await;
                })
                .await;
        });
        Ok(LoopbackServer {
            address,
            shutdown: Some(shutdown),
            server: Some(server),
        })
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops listening and closes every connection, so later connects are refused.
    pub(crate) async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(mut server) = self.server.take() {
            // Graceful shutdown closes idle keep-alive connections at once but waits for
            // requests in flight; a delayed reply must not keep the server "up".
            if tokio::time::timeout(Duration::from_secs(2), &mut server)
                .await
                .is_err()
            {
                server.abort();
                let _ = server.await;
            }
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
