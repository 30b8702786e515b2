//! What a turn tells a listening client while it works, before its reply: a progress line when
//! droplets are slow to answer, and the pieces of a model's answer as it is written.
//!
//! The engine only ever *offers* an event (`try_send`): a client that reads slowly never holds a
//! turn up, and the server never queues more than [`EVENTS_QUEUED`] events for it. Pieces of
//! an answer that do not fit wait in one string and go out together with the next piece that
//! does (so memory is bounded by the answer itself, which the turn keeps anyway). Whatever a
//! client misses is in the reply, which always comes last and whole. When the client has gone
//! (the receiver is dropped), a streamed model call is cancelled; the turn still finishes and
//! keeps what the user said.

use std::sync::Mutex;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::llm::TokenSink;
use crate::session::Channel;

/// Events waiting for a slow client, at most.
pub const EVENTS_QUEUED: usize = 32;

/// One thing a client is told before the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEvent {
    /// A query has not answered yet: the step's `progress:` template, in the turn's channel.
    Progress { intent: String, text: String },
    /// The next piece of a streamed model answer. `name` is the `reason` step's `as:`; on the
    /// voice channel a piece is a whole sentence, already in speech form.
    Partial { intent: String, name: String, text: String },
}

/// The sending side, given to a turn by a client that listens.
#[derive(Clone)]
pub struct TurnEvents {
    sender: mpsc::Sender<TurnEvent>,
}

impl std::fmt::Debug for TurnEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnEvents").field("listening", &!self.sender.is_closed()).finish()
    }
}

impl TurnEvents {
    /// A listener's pair: give the first to the turn, read events from the second.
    pub fn channel() -> (TurnEvents, mpsc::Receiver<TurnEvent>) {
        let (sender, receiver) = mpsc::channel(EVENTS_QUEUED);
        (TurnEvents { sender }, receiver)
    }

    /// Offers a progress line; a full queue or a client that left drops it.
    pub fn progress(&self, intent: &str, text: String) {
        let _ = self.sender.try_send(TurnEvent::Progress { intent: intent.to_owned(), text });
    }

    /// Whether nobody listens any more.
    pub fn is_gone(&self) -> bool {
        self.sender.is_closed()
    }

    /// The sink for one streamed answer of `intent`'s reason step `name`.
    pub fn partials(&self, intent: &str, name: &str, channel: Channel) -> Partials<'_> {
        Partials {
            events: self,
            intent: intent.to_owned(),
            name: name.to_owned(),
            channel,
            unsent: Mutex::new(Unsent::default()),
        }
    }
}

/// Text not handed on yet.
#[derive(Default)]
struct Unsent {
    /// Ready to go out (it did not fit in the queue yet).
    ready: String,
    /// Voice: the sentence being written.
    sentence: String,
    /// How much of `sentence` was looked at without finding its end: the next piece is read from
    /// there, so a long answer with no sentence end is read once, not once per piece.
    scanned: usize,
}

/// Hands a streamed answer on as `partial` events: as it comes on the chat channel, in whole
/// spoken sentences on the voice channel.
pub struct Partials<'e> {
    events: &'e TurnEvents,
    intent: String,
    name: String,
    channel: Channel,
    unsent: Mutex<Unsent>,
}

impl Partials<'_> {
    /// After a complete answer: the last sentence (voice), and anything still waiting, if the
    /// queue has room. After a failed one, a sentence left half-written is never said.
    pub fn finish(&self, complete: bool) {
        let mut unsent = self.unsent.lock().unwrap_or_else(|p| p.into_inner());
        if complete && !unsent.sentence.trim().is_empty() {
            let sentence = std::mem::take(&mut unsent.sentence);
            push_spoken(&mut unsent.ready, &sentence);
        }
        self.offer(&mut unsent);
    }

    fn offer(&self, unsent: &mut Unsent) {
        if unsent.ready.is_empty() {
            return;
        }
        let event = TurnEvent::Partial {
            intent: self.intent.clone(),
            name: self.name.clone(),
            text: std::mem::take(&mut unsent.ready),
        };
        if let Err(mpsc::error::TrySendError::Full(TurnEvent::Partial { text, .. })) =
            self.events.sender.try_send(event)
        {
            // the client is behind: this text goes out with the next piece that fits
            unsent.ready = text;
        }
    }
}

impl TokenSink for Partials<'_> {
    fn text(&self, piece: &str) {
        let mut unsent = self.unsent.lock().unwrap_or_else(|p| p.into_inner());
        match self.channel {
            Channel::Chat => unsent.ready.push_str(piece),
            Channel::Voice => {
                unsent.sentence.push_str(piece);
                loop {
                    let Unsent { sentence, scanned, .. } = &mut *unsent;
                    let end = sentence_end(sentence, *scanned).or_else(|| long_sentence_end(sentence));
                    let Some(end) = end else {
                        // the last character may end a sentence once the next one comes
                        unsent.scanned = last_char_start(&unsent.sentence);
                        break;
                    };
                    let rest = unsent.sentence.split_off(end);
                    let sentence = std::mem::replace(&mut unsent.sentence, rest.trim_start().to_owned());
                    unsent.scanned = 0;
                    push_spoken(&mut unsent.ready, &sentence);
                }
            }
        }
        self.offer(&mut unsent);
    }

    fn gone(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.events.sender.closed())
    }
}

/// A spoken sentence after those already waiting.
fn push_spoken(ready: &mut String, sentence: &str) {
    let spoken = crate::speech::to_speech(sentence.trim());
    if spoken.is_empty() {
        return;
    }
    if !ready.is_empty() {
        ready.push(' ');
    }
    ready.push_str(&spoken);
}

/// A spoken sentence longer than this (in bytes) with no end in sight is said up to its last
/// space: the voice droplet speaks sentences, and an answer may never end one.
const LONGEST_SENTENCE: usize = 2000;

/// Where the first finished sentence of `text` ends, looking from byte `from` on (a character
/// boundary): after `.`, `!` or `?` followed by white space, or at a line break. "37.5" and
/// "e.g.x" do not end one; the last sentence waits for the answer's end.
fn sentence_end(text: &str, from: usize) -> Option<usize> {
    let mut chars = text.get(from..)?.char_indices().map(|(i, c)| (from + i, c)).peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\n' && !text[..i].trim().is_empty() {
            return Some(i + 1);
        }
        if matches!(c, '.' | '!' | '?') {
            if let Some((next, after)) = chars.peek() {
                if after.is_whitespace() {
                    return Some(*next);
                }
            }
        }
    }
    None
}

/// Past [`LONGEST_SENTENCE`], the end of the sentence's last whole word.
fn long_sentence_end(text: &str) -> Option<usize> {
    if text.len() <= LONGEST_SENTENCE {
        return None;
    }
    let cut = (0..=LONGEST_SENTENCE).rev().find(|i| text.is_char_boundary(*i))?;
    text[..cut].rfind(char::is_whitespace).map(|space| space + 1).filter(|end| *end > 1).or(Some(cut))
}

/// Where the last character of `text` starts (0 when it is empty).
fn last_char_start(text: &str) -> usize {
    text.char_indices().next_back().map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_answer_with_no_sentence_end_is_read_once_and_said_in_pieces() {
        let (events, mut receiver) = TurnEvents::channel();
        let partials = events.partials("system_overview", "summary", Channel::Voice);
        for _ in 0..1000 {
            partials.text("word ");
            let unsent = partials.unsent.lock().expect("lock");
            // what was looked at is not looked at again
            assert!(unsent.scanned + 1 >= unsent.sentence.len(), "{} of {}", unsent.scanned, unsent.sentence.len());
        }
        let said = texts(&mut receiver);
        assert_eq!(said.len(), 2, "4000 bytes with no end: two pieces of at most {LONGEST_SENTENCE}");
        assert!(said.iter().all(|s| s.len() <= LONGEST_SENTENCE && s.ends_with("word.")), "{said:?}");
        // a dot at the end of one piece ends the sentence when the next piece starts with a space
        partials.text("end.");
        partials.text(" Next");
        assert_eq!(texts(&mut receiver).last().map(|s| s.ends_with("word end.")), Some(true));
    }

    fn texts(receiver: &mut mpsc::Receiver<TurnEvent>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(event) = receiver.try_recv() {
            if let TurnEvent::Partial { text, .. } = event {
                out.push(text);
            }
        }
        out
    }

    #[test]
    fn voice_pieces_are_whole_spoken_sentences() {
        let (events, mut receiver) = TurnEvents::channel();
        let partials = events.partials("system_overview", "summary", Channel::Voice);
        for piece in ["CPU is at 37", ".5% — **fine**", ". Memory", " is low! All", " good"] {
            partials.text(piece);
        }
        assert_eq!(texts(&mut receiver).len(), 2);
        partials.finish(true);
        assert_eq!(texts(&mut receiver), ["All good."]);
        // a sentence cut midway is never said
        partials.text("The Regis");
        partials.finish(false);
        assert!(texts(&mut receiver).is_empty());
    }

    #[test]
    fn chat_pieces_go_out_as_they_come() {
        let (events, mut receiver) = TurnEvents::channel();
        let partials = events.partials("system_overview", "summary", Channel::Chat);
        partials.text("All ");
        partials.text("fine.");
        assert_eq!(texts(&mut receiver), ["All ", "fine."]);
    }

    #[test]
    fn a_client_that_does_not_read_holds_at_most_the_queue_and_the_answer() {
        let (events, mut receiver) = TurnEvents::channel();
        let partials = events.partials("system_overview", "summary", Channel::Chat);
        let mut written = String::new();
        for i in 0..10_000 {
            let piece = format!("word{i} ");
            written.push_str(&piece);
            partials.text(&piece);
        }
        // never more than the queue's events, and the rest waits as one string
        assert_eq!(receiver.len(), EVENTS_QUEUED);
        partials.finish(true);
        let mut received = texts(&mut receiver).concat();
        // room again: what waited goes out with the next offer
        partials.finish(true);
        received.push_str(&texts(&mut receiver).concat());
        assert_eq!(received, written, "nothing is lost or reordered, only joined");
    }

    #[tokio::test]
    async fn a_client_that_left_is_seen() {
        let (events, receiver) = TurnEvents::channel();
        let partials = events.partials("x", "y", Channel::Chat);
        drop(receiver);
        tokio::time::timeout(std::time::Duration::from_secs(1), partials.gone()).await.expect("gone at once");
        assert!(events.is_gone());
    }

    #[test]
    fn sentences_end_at_punctuation_before_a_space() {
        assert_eq!(sentence_end("CPU is 37.5% now. Next", 0), Some(17));
        assert_eq!(sentence_end("CPU is 37.5", 0), None);
        assert_eq!(sentence_end("One line\nTwo", 0), Some(9));
    }
}
