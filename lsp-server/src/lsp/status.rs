//! `tandem/status` and `tandem/didChangeStatus`: the status an editor's status bar
//! shows ([`crate::status`]), asked for or pushed.

use tokio::sync::watch;
use tower_lsp::lsp_types::notification::Notification;
use tower_lsp::Client;

use crate::lsp::TandemServer;
use crate::status::Status;

pub(crate) const STATUS_METHOD: &str = "tandem/status";

/// `tandem/didChangeStatus`, sent only to clients that set
/// `experimental.tandem.statusNotifications`.
pub(crate) enum DidChangeStatus {}

impl Notification for DidChangeStatus {
    type Params = Status;
    const METHOD: &'static str = "tandem/didChangeStatus";
}

/// The status now. The credentials are resolved first, so a key set in the environment
/// or a credentials file written since the last request is reflected.
pub(crate) fn handle_status(server: &TandemServer) -> Status {
    let config = server.request_config();
    if config.credentials.api_key.is_some() {
        server.read_account(&config);
    }
    server.status.current()
}

/// Sends the status once now and then after every change until the server stops. A
/// burst of changes (a call starting and ending) is sent as its latest state: the
/// receiver only keeps the newest value.
pub(crate) fn spawn_notifier(client: Client, mut status: watch::Receiver<Status>) {
    tokio::spawn(async move {
        status.mark_changed();
        while status.changed().await.is_ok() {
            let current = status.borrow_and_update().clone();
            client.send_notification::<DidChangeStatus>(current).await;
        }
    });
}
