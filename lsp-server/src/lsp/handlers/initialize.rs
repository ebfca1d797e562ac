//! `initialize`: negotiate the position encoding, read settings, advertise capabilities.

use std::sync::PoisonError;

use tower_lsp::lsp_types::{InitializeParams, InitializeResult, ServerInfo};

use crate::lsp::{capabilities, from_proto, TandemServer};
use crate::settings::SettingsLayer;

pub(crate) fn handle_initialize(
    server: &TandemServer,
    params: InitializeParams,
) -> InitializeResult {
    let encoding = from_proto::position_encoding(&params.capabilities);
    let roots = from_proto::workspace_roots(&params);
    let client = from_proto::client_support(&params.capabilities);
    let (initialization, warnings) = SettingsLayer::parse(params.initialization_options.as_ref());
    for warning in warnings {
        tracing::warn!(%warning, "initializationOptions");
    }
    {
        let mut config = server
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        config.encoding = encoding;
        config.roots = roots;
        config.client = client;
        config.initialization = initialization;
    }
    tracing::info!(?encoding, ?client, "initialize");
    InitializeResult {
        capabilities: capabilities::server_capabilities(encoding),
        server_info: Some(ServerInfo {
            name: "tandem".to_owned(),
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        }),
    }
}
