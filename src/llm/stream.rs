//! Streamed answers: the model's text handed on piece by piece while it is written.
//!
//! A provider opens a stream ([`LanguageModel::stream`]) and yields [`Piece`]s read from its
//! server-sent events; [`Llm::ask_streaming`] hands each piece of text to a [`TokenSink`] and
//! keeps the same rules as a whole answer: one overall timeout, retries of 429/503 (and of a
//! stream that broke before its first piece) — but never after the first piece, because the
//! listener has already seen it. A stream that stops after that is `interrupted`, counted, and
//! never presented as the answer; a listener that goes away cancels the call (the stream is
//! dropped, which closes the connection to the provider).

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::time::Instant;

use super::{timed_out, Attempt, Llm, LlmAnswer, LlmError, LlmErrorKind, LlmRequest, Retries, Usage};
use crate::trace::{LlmCallTrace, StreamTrace};

/// What one event of a streamed answer says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Piece {
    /// The next piece of the answer (often empty in the last event).
    pub text: String,
    /// Token counts, when this event reports them (usually the last one).
    pub usage: Option<Usage>,
    /// The model that answers, as the provider names it.
    pub model: Option<String>,
    /// The provider said the answer is complete (Gemini's `finishReason: STOP`, OpenAI's
    /// `finish_reason: stop` or `[DONE]`).
    pub done: bool,
}

/// A stream of pieces, ending after the last one (or with the error that stopped it).
pub type Pieces<'a> = BoxStream<'a, Result<Piece, LlmError>>;

/// How opening a stream went.
pub enum StreamStart<'a> {
    Started(Pieces<'a>),
    /// As [`Attempt::Retry`]: nothing was received, trying again may work.
    Retry {
        after: Option<Duration>,
        error: LlmError,
    },
    Failed(LlmError),
}

impl<'a> From<Attempt> for StreamStart<'a> {
    /// A whole answer as a stream of one piece: what a provider that cannot stream gives.
    fn from(attempt: Attempt) -> StreamStart<'a> {
        match attempt {
            Attempt::Answer(answer) => StreamStart::Started(Box::pin(futures::stream::once(async move {
                Ok(Piece { text: answer.text, usage: Some(answer.usage), model: Some(answer.model), done: true })
            }))),
            Attempt::Retry { after, error } => StreamStart::Retry { after, error },
            Attempt::Failed(error) => StreamStart::Failed(error),
        }
    }
}

/// Who listens to a streamed answer.
pub trait TokenSink: Send + Sync {
    /// The next piece of the answer's text.
    fn text(&self, piece: &str);
    /// Resolves when nobody listens any more: the call is then cancelled.
    fn gone(&self) -> BoxFuture<'_, ()>;
}

/// The SSE events of a provider's answer as pieces. `read` turns one event into a piece (`None`
/// skips it, e.g. a keep-alive); a broken connection ends the stream with an `unreachable` error.
pub(crate) fn sse_pieces<'a>(
    response: reqwest::Response,
    mut read: impl FnMut(&Event) -> Option<Result<Piece, LlmError>> + Send + 'a,
) -> Pieces<'a> {
    Box::pin(response.bytes_stream().eventsource().filter_map(move |event| {
        let piece = match event {
            Ok(event) => read(&event),
            Err(error) => Some(Err(LlmError::new(
                LlmErrorKind::Unreachable,
                format!("The connection to the language model broke: {error}."),
            ))),
        };
        futures::future::ready(piece)
    }))
}

/// How one attempt at a stream ended.
enum Streamed {
    Answer(LlmAnswer),
    /// Failed before any text was handed on: may be tried again.
    BeforeText {
        retry: bool,
        error: LlmError,
    },
    /// Failed after text was handed on (or the listener left): final.
    Final(LlmError),
}

impl Llm {
    /// Asks the model for a free-text answer, handing its text to `sink` as it arrives.
    /// Returns the whole answer (or why there is none) and the call's trace, like [`Llm::ask`].
    pub async fn ask_streaming(
        &self,
        request: &LlmRequest,
        sink: &dyn TokenSink,
    ) -> (Result<LlmAnswer, LlmError>, LlmCallTrace) {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut retries = Retries::new(deadline, self.max_retries);
        let mut trace = StreamTrace::default();
        let result = loop {
            let left = retries.next_attempt();
            let start = tokio::select! {
                start = tokio::time::timeout(left, self.model.stream(request, left)) => match start {
                    Ok(start) => start,
                    Err(_) => StreamStart::Failed(timed_out(self.timeout)),
                },
                () = sink.gone() => break Err(cancelled()),
            };
            let (after, error) = match start {
                StreamStart::Failed(error) if error.kind == LlmErrorKind::Timeout => {
                    break Err(timed_out(self.timeout))
                }
                StreamStart::Failed(error) => break Err(error),
                StreamStart::Retry { after, error } => (after, error),
                StreamStart::Started(pieces) => {
                    match self.read_stream(pieces, deadline, started, sink, &mut trace).await {
                        Streamed::Answer(answer) => break Ok(answer),
                        Streamed::Final(error) => break Err(error),
                        Streamed::BeforeText { retry: false, error } => break Err(error),
                        Streamed::BeforeText { retry: true, error } => (None, error),
                    }
                }
            };
            let Some(pause) = retries.pause(after) else { break Err(error) };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = sink.gone() => break Err(cancelled()),
            }
        };
        if let Err(error) = &result {
            if matches!(error.kind, LlmErrorKind::Interrupted | LlmErrorKind::Cancelled) {
                let how = if error.kind == LlmErrorKind::Interrupted { "interrupted" } else { "cancelled" };
                metrics::counter!("llm_streams_stopped_total", "purpose" => request.purpose.as_str(), "provider" => self.provider(), "how" => how)
                    .increment(1);
            }
        }
        let mut call = self.trace(request, &result, started, retries.attempts);
        call.stream = Some(trace);
        self.record(request.purpose, &result, started.elapsed());
        (result, call)
    }

    /// Reads one opened stream to its end, handing text on as it comes.
    async fn read_stream(
        &self,
        mut pieces: Pieces<'_>,
        deadline: Instant,
        started: Instant,
        sink: &dyn TokenSink,
        trace: &mut StreamTrace,
    ) -> Streamed {
        let mut text = String::new();
        let mut usage = Usage::default();
        let mut model = None;
        let mut complete = false;
        // after the first piece is handed on, any stop is final and said as such
        let stopped = |text: &str, error: LlmError| -> Streamed {
            if text.is_empty() {
                let retry = matches!(error.kind, LlmErrorKind::Unreachable | LlmErrorKind::OverQuota);
                Streamed::BeforeText { retry, error }
            } else {
                Streamed::Final(LlmError::new(
                    LlmErrorKind::Interrupted,
                    format!("The language model's answer stopped midway. {}", error.message),
                ))
            }
        };
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout_at(deadline, pieces.next()) => next,
                () = sink.gone() => return Streamed::Final(cancelled()),
            };
            match next {
                Err(_) => return stopped(&text, timed_out(self.timeout)),
                Ok(None) if complete => break,
                Ok(None) => {
                    let error =
                        LlmError::new(LlmErrorKind::Unreachable, "The stream closed before the answer was complete.");
                    return stopped(&text, error);
                }
                // an error after the provider said the answer was complete changes nothing
                Ok(Some(Err(_))) if complete => break,
                Ok(Some(Err(error))) => return stopped(&text, error),
                Ok(Some(Ok(piece))) => {
                    if !piece.text.is_empty() {
                        if trace.first_piece_ms.is_none() {
                            trace.first_piece_ms = Some(started.elapsed().as_millis() as u64);
                        }
                        trace.pieces += 1;
                        text.push_str(&piece.text);
                        sink.text(&piece.text);
                    }
                    usage = piece.usage.unwrap_or(usage);
                    model = piece.model.or(model);
                    complete |= piece.done;
                }
            }
        }
        if text.trim().is_empty() {
            return Streamed::BeforeText {
                retry: false,
                error: LlmError::new(LlmErrorKind::BadResponse, "The language model gave an empty answer."),
            };
        }
        Streamed::Answer(LlmAnswer { text, model: model.unwrap_or_else(|| self.model().to_owned()), usage })
    }
}

fn cancelled() -> LlmError {
    LlmError::new(LlmErrorKind::Cancelled, "Nobody was listening any more, so the answer was not finished.")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::llm::{LanguageModel, Purpose};

    /// Streams a script of pieces (`Err` entries stop it there).
    struct Scripted(Mutex<Vec<Vec<Result<Piece, LlmError>>>>);

    impl LanguageModel for Scripted {
        fn provider(&self) -> &'static str {
            "scripted"
        }
        fn model(&self) -> &str {
            "script-1"
        }
        fn attempt<'a>(&'a self, _: &'a LlmRequest, _: Duration) -> BoxFuture<'a, Attempt> {
            unreachable!("only streamed here")
        }
        fn stream<'a>(&'a self, _: &'a LlmRequest, _: Duration) -> BoxFuture<'a, StreamStart<'a>> {
            let next = self.0.lock().expect("lock").remove(0);
            Box::pin(async move { StreamStart::Started(Box::pin(futures::stream::iter(next))) })
        }
    }

    #[derive(Default)]
    struct Collect(Mutex<Vec<String>>);

    impl TokenSink for Collect {
        fn text(&self, piece: &str) {
            self.0.lock().expect("lock").push(piece.to_owned());
        }
        fn gone(&self) -> BoxFuture<'_, ()> {
            Box::pin(futures::future::pending())
        }
    }

    fn text(t: &str) -> Result<Piece, LlmError> {
        Ok(Piece { text: t.to_owned(), ..Piece::default() })
    }

    fn done() -> Result<Piece, LlmError> {
        Ok(Piece {
            usage: Some(Usage { prompt_tokens: 9, output_tokens: 3, total_tokens: 12 }),
            done: true,
            ..Piece::default()
        })
    }

    fn broken() -> Result<Piece, LlmError> {
        Err(LlmError::new(LlmErrorKind::Unreachable, "The connection broke."))
    }

    fn request() -> LlmRequest {
        LlmRequest {
            purpose: Purpose::Reason,
            system: String::new(),
            history: Vec::new(),
            prompt: "hi".into(),
            schema: None,
            schema_name: "answer",
        }
    }

    fn llm(script: Vec<Vec<Result<Piece, LlmError>>>) -> Llm {
        Llm::new(Arc::new(Scripted(Mutex::new(script))), Duration::from_secs(5), 2, 0.6)
    }

    #[tokio::test]
    async fn pieces_are_handed_on_in_order_and_make_the_answer() {
        let sink = Collect::default();
        let (answer, trace) =
            llm(vec![vec![text("All "), text("fine."), done()]]).ask_streaming(&request(), &sink).await;
        let answer = answer.expect("answer");
        assert_eq!((answer.text.as_str(), answer.usage.output_tokens), ("All fine.", 3));
        assert_eq!(*sink.0.lock().expect("lock"), ["All ", "fine."]);
        assert_eq!((trace.outcome.as_str(), trace.stream.map(|s| s.pieces)), ("ok", Some(2)));
    }

    #[tokio::test]
    async fn a_stream_broken_before_its_first_piece_is_tried_again() {
        let sink = Collect::default();
        let (answer, trace) =
            llm(vec![vec![broken()], vec![text("Second try."), done()]]).ask_streaming(&request(), &sink).await;
        assert_eq!(answer.expect("answer").text, "Second try.");
        assert_eq!(trace.attempts, 2);
    }

    #[tokio::test]
    async fn a_stream_broken_after_a_piece_is_interrupted_and_not_retried() {
        let sink = Collect::default();
        let (answer, trace) = llm(vec![vec![text("The Regis"), broken()], vec![text("never asked"), done()]])
            .ask_streaming(&request(), &sink)
            .await;
        let error = answer.expect_err("interrupted");
        assert_eq!(error.kind, LlmErrorKind::Interrupted);
        assert!(error.message.contains("stopped midway"), "{}", error.message);
        assert_eq!((trace.attempts, trace.outcome.as_str()), (1, "failed"));
        assert_eq!(*sink.0.lock().expect("lock"), ["The Regis"]);
    }

    #[tokio::test]
    async fn a_stream_that_ends_without_saying_it_is_complete_is_interrupted() {
        let sink = Collect::default();
        let (answer, _) = llm(vec![vec![text("Half an")]]).ask_streaming(&request(), &sink).await;
        assert_eq!(answer.expect_err("cut").kind, LlmErrorKind::Interrupted);
    }
}
