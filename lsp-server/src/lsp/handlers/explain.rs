//! `tandem/explain`, for editor plugins that show the explanation themselves: progress
//! through the client's `workDoneToken`, the text as it streams through its
//! `partialResultToken`, the whole Markdown as the result. `$/cancelRequest` stops it
//! and closes the stream upstream. Also `window/workDoneProgress/cancel`, which cancels
//! a `tandem.explain` command's run.

use tower_lsp::jsonrpc;
use tower_lsp::lsp_types::WorkDoneProgressCancelParams;

use crate::lsp::code_actions::explain::{self, ExplainParams, ExplainResult};
use crate::lsp::code_actions::progress::Progress;
use crate::lsp::TandemServer;

pub(crate) async fn handle_explain(
    server: &TandemServer,
    params: ExplainParams,
) -> jsonrpc::Result<ExplainResult> {
    let mut progress = Progress::new(
        server.client.clone(),
        params.work_done_token.clone(),
        params.partial_result_token.clone(),
    );
    explain::explain(server, &params, &mut progress)
        .await
        .map_err(|error| {
            if error.is_worth_showing() {
                tracing::warn!(%error, "explanation failed");
            }
            error.to_jsonrpc()
        })
}

pub(crate) fn handle_work_done_progress_cancel(
    server: &TandemServer,
    params: WorkDoneProgressCancelParams,
) {
    server.cancel_progress(&params.token);
}
