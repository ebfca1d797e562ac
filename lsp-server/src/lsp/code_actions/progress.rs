//! `$/progress` for a running explanation: work-done progress (begin, reports, end)
//! for the editor's progress UI, and partial results (the text as it streams) for
//! clients that asked for them with a `partialResultToken`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_lsp::lsp_types::notification::Notification;
use tower_lsp::lsp_types::notification::Progress as ProgressNotification;
use tower_lsp::lsp_types::{
    NumberOrString, ProgressParams, ProgressParamsValue, WorkDoneProgress, WorkDoneProgressBegin,
    WorkDoneProgressEnd, WorkDoneProgressReport,
};
use tower_lsp::Client;

/// Reports closer together than this are dropped (the last one is always sent): a
/// stream of tokens must not become a stream of UI updates.
const REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// `$/progress` carrying a partial result, whose value lsp-types' `ProgressParams`
/// cannot hold.
enum PartialResult {}

impl Notification for PartialResult {
    type Params = PartialResultParams;
    const METHOD: &'static str = "$/progress";
}

#[derive(Debug, Serialize, Deserialize)]
struct PartialResultParams {
    token: NumberOrString,
    value: serde_json::Value,
}

/// Where an explanation's progress goes.
pub(crate) struct Progress {
    client: Client,
    work_done: Option<NumberOrString>,
    partial: Option<NumberOrString>,
    last_report: Option<Instant>,
}

impl Progress {
    pub(crate) fn new(
        client: Client,
        work_done: Option<NumberOrString>,
        partial: Option<NumberOrString>,
    ) -> Progress {
        Progress {
            client,
            work_done,
            partial,
            last_report: None,
        }
    }

    pub(crate) async fn begin(&mut self, title: &str, cancellable: bool) {
        let Some(token) = self.work_done.clone() else {
            return;
        };
        let begin = WorkDoneProgress::Begin(WorkDoneProgressBegin {
            title: title.to_owned(),
            cancellable: Some(cancellable),
            message: Some("asking the model…".to_owned()),
            percentage: None,
        });
        self.send(token, ProgressParamsValue::WorkDone(begin)).await;
    }

    /// New text arrived (`delta`, the end of `so_far`): it goes out as a partial
    /// result; the work-done report shows the end of what is written, at most every
    /// [`REPORT_INTERVAL`], so a client without partial results still sees it stream.
    pub(crate) async fn text(&mut self, delta: &str, so_far: &str) {
        if let Some(token) = self.partial.clone() {
            // Partial results of `tandem/explain` are pieces of its `markdown`, in order.
            self.client
                .send_notification::<PartialResult>(PartialResultParams {
                    token,
                    value: json!({ "markdown": delta }),
                })
                .await;
        }
        let Some(token) = self.work_done.clone() else {
            return;
        };
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|last| now.duration_since(last) < REPORT_INTERVAL)
        {
            return;
        }
        self.last_report = Some(now);
        let report = WorkDoneProgress::Report(WorkDoneProgressReport {
            cancellable: None,
            message: Some(tail(so_far)),
            percentage: None,
        });
        self.send(token, ProgressParamsValue::WorkDone(report))
            .await;
    }

    pub(crate) async fn end(&mut self, message: &str) {
        let Some(token) = self.work_done.take() else {
            return;
        };
        let end = WorkDoneProgress::End(WorkDoneProgressEnd {
            message: Some(message.to_owned()),
        });
        self.send(token, ProgressParamsValue::WorkDone(end)).await;
    }

    async fn send(&self, token: NumberOrString, value: ProgressParamsValue) {
        self.client
            .send_notification::<ProgressNotification>(ProgressParams { token, value })
            .await;
    }
}

/// The end of `text` as one line: what a progress message has room for.
fn tail(text: &str) -> String {
    let collapsed = crate::syntax::collapse_whitespace(text, usize::MAX);
    let count = collapsed.chars().count();
    if count <= TAIL_CHARS {
        return collapsed;
    }
    let kept: String = collapsed.chars().skip(count - TAIL_CHARS).collect();
    format!("…{kept}")
}

/// Characters of the explanation shown in a progress message.
const TAIL_CHARS: usize = 80;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_the_end_of_the_text_on_one_line() {
        assert_eq!(
            tail(
                "It adds

`a` and"
            ),
            "It adds `a` and"
        );
        let long = "word ".repeat(40);
        let shown = tail(&long);
        assert!(shown.starts_with('…'));
        assert_eq!(shown.chars().count(), TAIL_CHARS + 1);
        assert!(shown.ends_with("word"));
    }
}
