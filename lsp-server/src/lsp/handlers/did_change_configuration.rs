//! `workspace/didChangeConfiguration`: the `tandem` section, same keys as
//! initializationOptions.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use tower_lsp::lsp_types::DidChangeConfigurationParams;

use crate::lsp::TandemServer;
use crate::settings::SettingsLayer;

pub(crate) fn handle_did_change_configuration(
    server: &TandemServer,
    params: DidChangeConfigurationParams,
) {
    let (layer, warnings) = SettingsLayer::parse_configuration(&params.settings);
    for warning in warnings {
        tracing::warn!(%warning, "workspace/didChangeConfiguration");
    }
    server
        .config
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .configuration = layer;
    // New settings may fix a missing or rejected key; tell the user again if not.
    server.auth_notice_shown.store(false, Ordering::SeqCst);
    // A new server or key: the status shows it now, and the account is read again.
    let config = server.request_config();
    server.read_account(&config);
    tracing::info!("settings updated");
}
