//! Streamed answers: the [`StreamPiece`]s a provider yields as its model writes, and the
//! wire decoding the adapters share (server-sent events, newline-delimited JSON), with a
//! size limit on everything read.

use bytes::Bytes;
use eventsource_stream::{Event, Eventsource};
use futures::stream::{BoxStream, Stream, StreamExt};

use super::{ProviderCompletion, ProviderError};
use crate::prompt::chat::AnswerCleaner;

/// Most bytes read from one streamed answer: far above any `max_tokens` the API accepts,
/// so only a broken or hostile server reaches it.
const MAX_STREAM_BYTES: usize = 8 * 1024 * 1024;

/// One piece of a streamed answer: text to append and whatever the provider reported with
/// it. Later values of the optional fields replace earlier ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamPiece {
    pub text: String,
    pub finish_reason: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
}

impl StreamPiece {
    /// A piece holding only text.
    pub fn text(text: impl Into<String>) -> StreamPiece {
        StreamPiece {
            text: text.into(),
            ..StreamPiece::default()
        }
    }

    /// The whole of a completion as one piece, for providers that do not stream.
    pub fn whole(completion: ProviderCompletion) -> StreamPiece {
        StreamPiece {
            text: completion.text,
            finish_reason: completion.finish_reason,
            model: Some(completion.model),
            prompt_tokens: completion.prompt_tokens,
            completion_tokens: completion.completion_tokens,
        }
    }
}

/// A streamed answer. It ends after the last piece, or with an error when the answer
/// broke off.
pub type PieceStream = BoxStream<'static, Result<StreamPiece, ProviderError>>;

/// The pieces of one answer folded together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamTotals {
    pub text: String,
    pub finish_reason: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
}

impl StreamTotals {
    pub fn add(&mut self, piece: &StreamPiece) {
        self.text.push_str(&piece.text);
        if piece.finish_reason.is_some() {
            self.finish_reason.clone_from(&piece.finish_reason);
        }
        if piece.model.is_some() {
            self.model.clone_from(&piece.model);
        }
        self.prompt_tokens = piece.prompt_tokens.or(self.prompt_tokens);
        self.completion_tokens = piece.completion_tokens.or(self.completion_tokens);
    }

    /// The completion the pieces make; `model` when the provider named none.
    pub fn into_completion(self, model: &str) -> ProviderCompletion {
        ProviderCompletion {
            text: self.text,
            finish_reason: self.finish_reason,
            model: self.model.unwrap_or_else(|| model.to_owned()),
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
        }
    }
}

/// What one item of the wire stream means.
pub(crate) enum Step {
    /// A piece of the answer.
    Piece(StreamPiece),
    /// Nothing for the client (a ping, a start marker without data).
    Skip,
    /// The documented end of the answer, with a last piece when the end carries one.
    End(Option<StreamPiece>),
    /// The provider reported an error inside the stream.
    Fail(ProviderError),
}

/// Turns `items` into pieces with `parse`. With `end_marker`, a stream that stops without
/// `parse` having seen the vendor's end (OpenAI's `[DONE]`, Anthropic's `message_stop`,
/// Ollama's `done`) was cut off and ends with an error rather than passing for complete.
pub(crate) fn pieces<S, T, F>(items: S, provider: String, end_marker: bool, parse: F) -> PieceStream
where
    S: Stream<Item = Result<T, ProviderError>> + Send + 'static,
    T: Send + 'static,
    F: FnMut(T) -> Step + Send + 'static,
{
    struct State<S, F> {
        items: S,
        parse: F,
        provider: String,
        end_marker: bool,
        done: bool,
    }
    let state = State {
        items: Box::pin(items),
        parse,
        provider,
        end_marker,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            let item = match state.items.next().await {
                Some(Ok(item)) => item,
                Some(Err(error)) => {
                    state.done = true;
                    return Some((Err(error), state));
                }
                None if state.end_marker => {
                    state.done = true;
                    let error = ProviderError::InvalidResponse {
                        provider: state.provider.clone(),
                        detail: "the stream ended before the answer did".to_owned(),
                    };
                    return Some((Err(error), state));
                }
                None => return None,
            };
            match (state.parse)(item) {
                Step::Piece(piece) => return Some((Ok(piece), state)),
                Step::Skip => continue,
                Step::End(piece) => {
                    state.done = true;
                    return piece.map(|piece| (Ok(piece), state));
                }
                Step::Fail(error) => {
                    state.done = true;
                    return Some((Err(error), state));
                }
            }
        }
    })
    .boxed()
}

/// The body of a 2xx answer as a stream of byte chunks, cut off with an error past
/// [`MAX_STREAM_BYTES`].
fn body_chunks(
    response: reqwest::Response,
    provider: String,
) -> impl Stream<Item = Result<Bytes, ProviderError>> + Send + 'static {
    let mut total = 0usize;
    response.bytes_stream().map(move |chunk| {
        let chunk = chunk.map_err(|error| body_error(&provider, error))?;
        total = total.saturating_add(chunk.len());
        if total > MAX_STREAM_BYTES {
            return Err(ProviderError::InvalidResponse {
                provider: provider.clone(),
                detail: format!("the stream exceeded {MAX_STREAM_BYTES} bytes"),
            });
        }
        Ok(chunk)
    })
}

/// A failure reading the body after the 200: the connection broke mid-answer
/// (compression, which could fail to decode, is not enabled).
fn body_error(provider: &str, error: reqwest::Error) -> ProviderError {
    ProviderError::Unreachable {
        provider: provider.to_owned(),
        source: error.without_url(),
    }
}

/// The server-sent events of a 2xx answer.
pub(crate) fn sse_events(
    response: reqwest::Response,
    provider: String,
) -> impl Stream<Item = Result<Event, ProviderError>> + Send + 'static {
    body_chunks(response, provider.clone())
        .eventsource()
        .map(move |event| {
            event.map_err(|error| match error {
                eventsource_stream::EventStreamError::Transport(error) => error,
                other => ProviderError::InvalidResponse {
                    provider: provider.clone(),
                    detail: format!("not a server-sent event stream: {other}"),
                },
            })
        })
}

/// The lines of a newline-delimited JSON answer (Ollama), without their line ends; blank
/// lines are skipped.
pub(crate) fn ndjson_lines(
    response: reqwest::Response,
    provider: String,
) -> impl Stream<Item = Result<Bytes, ProviderError>> + Send + 'static {
    struct State<S> {
        chunks: S,
        buffer: Vec<u8>,
        ended: bool,
    }
    let state = State {
        chunks: Box::pin(body_chunks(response, provider)),
        buffer: Vec::new(),
        ended: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(end) = state.buffer.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = state.buffer.drain(..=end).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                return Some((Ok(Bytes::copy_from_slice(line)), state));
            }
            if state.ended {
                let rest = std::mem::take(&mut state.buffer);
                let rest = rest.trim_ascii();
                if rest.is_empty() {
                    return None;
                }
                return Some((Ok(Bytes::copy_from_slice(rest)), state));
            }
            match state.chunks.next().await {
                Some(Ok(chunk)) => state.buffer.extend_from_slice(&chunk),
                Some(Err(error)) => {
                    state.ended = true;
                    state.buffer.clear();
                    return Some((Err(error), state));
                }
                None => state.ended = true,
            }
        }
    })
}

/// Passes `stream`'s text through `cleaner` (fences, hole markers, stop sequences the
/// provider could not apply), handing out only text the rest of the answer cannot
/// change. A cut at a stop sequence ends the stream with `stop_reason` as finish reason.
pub(crate) fn cleaned(
    stream: PieceStream,
    cleaner: AnswerCleaner,
    stop_reason: &'static str,
) -> PieceStream {
    struct State {
        stream: PieceStream,
        cleaner: AnswerCleaner,
        finished: bool,
    }
    let state = State {
        stream,
        cleaner,
        finished: false,
    };
    futures::stream::unfold(state, move |mut state| async move {
        if state.finished {
            return None;
        }
        match state.stream.next().await {
            Some(Ok(mut piece)) => {
                piece.text = state.cleaner.push(&piece.text);
                if state.cleaner.stopped() {
                    // What the model wrote after the stop is not wanted; neither is
                    // waiting for it.
                    state.finished = true;
                    piece.finish_reason = Some(stop_reason.to_owned());
                }
                Some((Ok(piece), state))
            }
            Some(Err(error)) => {
                state.finished = true;
                Some((Err(error), state))
            }
            None => {
                state.finished = true;
                let rest = state.cleaner.finish();
                Some((Ok(StreamPiece::text(rest)), state))
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(text: &str) -> Result<StreamPiece, ProviderError> {
        Ok(StreamPiece::text(text))
    }

    #[tokio::test]
    async fn a_stream_without_its_end_marker_is_an_error() {
        let items = futures::stream::iter([Ok::<_, ProviderError>("a"), Ok("b")]);
        let collected: Vec<_> = pieces(items, "p".into(), true, |item: &str| {
            Step::Piece(StreamPiece::text(item))
        })
        .collect()
        .await;
        assert_eq!(collected.len(), 3);
        assert!(matches!(
            &collected[2],
            Err(ProviderError::InvalidResponse { detail, .. }) if detail.contains("ended before")
        ));
        let items = futures::stream::iter([Ok::<_, ProviderError>("a"), Ok("END"), Ok("c")]);
        let collected: Vec<_> = pieces(items, "p".into(), true, |item: &str| match item {
            "END" => Step::End(None),
            text => Step::Piece(StreamPiece::text(text)),
        })
        .map(|piece| piece.unwrap().text)
        .collect()
        .await;
        assert_eq!(collected, ["a"]);
    }

    #[tokio::test]
    async fn cleaning_ends_the_stream_at_a_stop_sequence() {
        let stream = futures::stream::iter([piece("```\nx"), piece(" = 1\n\ny"), piece("z")]);
        let cleaner = AnswerCleaner::new(true, vec!["\n\n".to_owned()]);
        let pieces: Vec<StreamPiece> = cleaned(stream.boxed(), cleaner, "stop_sequence")
            .map(Result::unwrap)
            .collect()
            .await;
        let text: String = pieces.iter().map(|piece| piece.text.as_str()).collect();
        assert_eq!(text, "x = 1");
        assert_eq!(
            pieces.last().unwrap().finish_reason.as_deref(),
            Some("stop_sequence")
        );
    }

    #[test]
    fn totals_keep_the_latest_report() {
        let mut totals = StreamTotals::default();
        totals.add(&StreamPiece {
            model: Some("m".into()),
            prompt_tokens: Some(5),
            ..StreamPiece::text("a")
        });
        totals.add(&StreamPiece {
            completion_tokens: Some(2),
            finish_reason: Some("stop".into()),
            ..StreamPiece::text("b")
        });
        let completion = totals.into_completion("configured");
        assert_eq!(completion.text, "ab");
        assert_eq!(completion.model, "m");
        assert_eq!(completion.prompt_tokens, Some(5));
        assert_eq!(completion.completion_tokens, Some(2));
        assert_eq!(completion.finish_reason.as_deref(), Some("stop"));
    }
}
