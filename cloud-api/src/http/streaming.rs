//! `POST /v1/completions` and `POST /v1/chat` with `"stream": true`: the answer as
//! server-sent events ([`tandem_shared::stream`]).
//!
//! The response starts only once a provider has sent its first text, so until then a
//! failing provider is replaced by the next one and errors are ordinary JSON answers.
//! After that a task relays each piece as the provider sends it (a small channel, so a
//! slow client slows the read from the provider instead of filling memory), and when the
//! answer ends it settles the tokens and commits the usage record before sending the
//! final event. A client that goes away mid-answer closes the provider's stream too, and
//! its request is recorded with status 499.

use std::convert::Infallible;
use std::time::Instant;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use futures::StreamExt;
use serde::Serialize;
use tandem_shared::stream::{Delta, EVENT_DELTA, EVENT_DONE, EVENT_ERROR};
use tandem_shared::{
    ChatResponse, ChatTask, Choice, CompletionResponse, ErrorBody, ErrorCode, Usage,
};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::completions::{account, note_routed, routing_failed, with_quota, Admitted, Reservation};
use crate::db::usage::UsageRecord;
use crate::error::AppError;
use crate::extract::AuthUser;
use crate::providers::stream::StreamTotals;
use crate::providers::ProviderCompletion;
use crate::routing::{ModelRequest, RoutedStream};
use crate::state::AppState;

/// Events waiting for a slow client before the provider's stream is no longer read.
const CHANNEL_EVENTS: usize = 16;
/// Status recorded for an answer the client stopped reading (nginx's "client closed
/// request").
const CLIENT_CLOSED: u16 = 499;

/// Asks the providers for a streamed answer and, once one has sent its first text,
/// answers with the event stream. A routing failure is returned for the caller to record
/// and answer like any error.
pub(super) async fn start(
    state: &AppState,
    caller: &AuthUser,
    request: ModelRequest<'_>,
    answer: Answer,
    admitted: Admitted<'_>,
    record: &mut UsageRecord,
) -> Result<Response, AppError> {
    let started = Instant::now();
    let plan = &admitted.plan;
    let routed = state
        .router
        .stream_with_fallback(plan, request, plan.budget())
        .await;
    let routed = match routed {
        Ok(routed) => routed,
        Err(failure) => return Err(routing_failed(state, caller, &admitted, record, failure).await),
    };
    note_routed(state, &routed.attempts, &routed.provider);
    let mut record = record.clone();
    record.provider = Some(routed.provider.clone());
    let relay = Relay {
        state: state.clone(),
        caller: caller.clone(),
        reservation: admitted.reservation(),
        record,
        default_model: default_model(state, &routed.provider),
        started,
        answer,
    };
    let (events, receiver) = mpsc::channel(CHANNEL_EVENTS);
    tokio::spawn(
        relay
            .run(routed, events)
            .instrument(tracing::Span::current()),
    );
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        Some((Ok::<Event, Infallible>(event), receiver))
    });
    let sse = Sse::new(body).keep_alive(KeepAlive::default());
    let mut response = with_quota(state, caller, &admitted, sse).await;
    // Proxies that buffer answers (nginx by default) would hold the events back.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// The configured model of the provider named `provider`, for answers that name none.
fn default_model(state: &AppState, provider: &str) -> String {
    state
        .providers
        .iter()
        .find(|candidate| candidate.name() == provider)
        .map_or_else(String::new, |provider| provider.model().to_owned())
}

/// Which endpoint's answer a request gets.
#[derive(Debug, Clone, Copy)]
pub(super) enum Answer {
    /// A [`CompletionResponse`] (`/v1/completions`).
    Completion,
    /// A [`ChatResponse`] for this task (`/v1/chat`).
    Chat(ChatTask),
}

/// The whole answer as its endpoint sends it: the JSON response, or a stream's final
/// event.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum AnswerBody {
    Completion(CompletionResponse),
    Chat(ChatResponse),
}

impl Answer {
    pub(super) fn body(
        self,
        id: String,
        provider: String,
        completion: ProviderCompletion,
        usage: Usage,
    ) -> AnswerBody {
        match self {
            Answer::Completion => AnswerBody::Completion(CompletionResponse {
                id,
                choices: vec![Choice {
                    index: 0,
                    text: completion.text,
                    finish_reason: completion.finish_reason,
                }],
                provider,
                model: completion.model,
                usage,
            }),
            Answer::Chat(task) => AnswerBody::Chat(ChatResponse {
                id,
                task,
                text: completion.text,
                finish_reason: completion.finish_reason,
                provider,
                model: completion.model,
                usage,
            }),
        }
    }
}

/// Relays one answer from the provider to the client and accounts for it.
struct Relay {
    answer: Answer,
    state: AppState,
    caller: AuthUser,
    reservation: Reservation,
    record: UsageRecord,
    default_model: String,
    started: Instant,
}

/// How the relay ended.
enum Ending {
    /// The provider's answer ended.
    Complete,
    /// The provider's stream broke off.
    Failed(AppError),
    /// The client stopped reading.
    ClientGone,
}

impl Relay {
    async fn run(mut self, routed: RoutedStream, events: mpsc::Sender<Event>) {
        let provider = routed.provider;
        let mut rest = routed.rest;
        let mut totals = StreamTotals::default();
        let mut ending = Ending::Complete;
        for piece in &routed.head {
            totals.add(piece);
            if !piece.text.is_empty() && events.send(delta(&piece.text)).await.is_err() {
                ending = Ending::ClientGone;
            }
        }
        while matches!(ending, Ending::Complete) {
            let next = tokio::select! {
                next = rest.next() => next,
                () = events.closed() => {
                    ending = Ending::ClientGone;
                    break;
                }
            };
            match next {
                Some(Ok(piece)) => {
                    totals.add(&piece);
                    if !piece.text.is_empty() && events.send(delta(&piece.text)).await.is_err() {
                        ending = Ending::ClientGone;
                    }
                }
                Some(Err(error)) => ending = Ending::Failed(error.into()),
                None => break,
            }
        }
        // Closes the connection to the provider: nothing more is read or paid for.
        drop(rest);

        let completion = totals.into_completion(&self.default_model);
        let usage = account(
            &self.state,
            &self.caller,
            self.reservation,
            &completion,
            &mut self.record,
        )
        .await;
        self.record.latency_ms = self.started.elapsed().as_millis() as u64;
        let (status, name) = match &ending {
            Ending::Complete => (200, "complete"),
            Ending::Failed(error) => (error.status_code().as_u16(), "failed"),
            Ending::ClientGone => (CLIENT_CLOSED, "client_closed"),
        };
        self.record.status = status;
        self.state.metrics.stream_ended(name);
        let recorded = self.state.usage.record(self.record.clone()).await;
        let last = match (ending, recorded) {
            (Ending::ClientGone, _) => {
                tracing::info!("client closed the stream before the answer ended");
                return;
            }
            (_, Err(error)) => {
                let error = AppError::NotReady {
                    public: "usage could not be recorded".to_owned(),
                    cause: Box::new(error),
                };
                error_event(&error)
            }
            (Ending::Failed(error), Ok(())) => error_event(&error),
            (Ending::Complete, Ok(())) => {
                let id = self.record.request_id.clone();
                event(
                    EVENT_DONE,
                    &self.answer.body(id, provider, completion, usage),
                )
            }
        };
        // The client may be gone by now; the record is written either way.
        let _ = events.send(last).await;
    }
}

fn delta(text: &str) -> Event {
    event(
        EVENT_DELTA,
        &Delta {
            index: 0,
            text: text.to_owned(),
        },
    )
}

fn error_event(error: &AppError) -> Event {
    error.log();
    event(EVENT_ERROR, &error.body())
}

/// A named event with `data` as JSON. Our types always serialize; were one not to, the
/// client gets an error event rather than a malformed one.
fn event(name: &'static str, data: &impl Serialize) -> Event {
    match serde_json::to_string(data) {
        Ok(json) => Event::default().event(name).data(json),
        Err(error) => {
            tracing::error!(%error, event = name, "stream event could not be serialized");
            let body = ErrorBody::new(ErrorCode::Internal, "internal error");
            let json = serde_json::to_string(&body).unwrap_or_default();
            Event::default().event(EVENT_ERROR).data(json)
        }
    }
}
