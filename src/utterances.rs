//! Utterance corpora: messages as users write and say them, each with the intent(s) and slot
//! values a person means, and conversations whose later messages mean something only after the
//! earlier ones ("and the deck?"). [`evaluate`] runs each message through the engine's
//! understanding (no pipeline runs, nothing is stored), and each conversation turn by turn
//! through whole turns in a session of its own on the bundled sample data; [`Report`] gives the
//! accuracy (per turn and per conversation), a per-intent confusion table, and one line per
//! message, which is kept as a reviewed snapshot: a change in what a message is understood as
//! shows up as a diff, like a changed reply.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::backend::SampleBackend;
use crate::config::CompiledConfig;
use crate::engine::Engine;
use crate::session::{MemoryStore, SessionLimits};

/// One message of a corpus.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utterance {
    pub say: String,
    /// The intent a person means…
    #[serde(default)]
    pub intent: Option<String>,
    /// …or, for a message that asks for several things, each in the order said.
    #[serde(default)]
    pub intents: Option<Vec<String>>,
    /// The slot values the message states (a droplet slot naming several: a list of ids).
    #[serde(default)]
    pub slots: Map<String, Value>,
    /// `voice` for messages written as speech-to-text writes them; informational.
    #[serde(default)]
    pub channel: Option<String>,
    /// In a conversation: this turn sends the command (a call that changes something) with the
    /// turn's `slots`. Every other turn of a conversation must send nothing.
    #[serde(default)]
    pub sends: bool,
}

impl Utterance {
    fn expected(&self) -> Vec<String> {
        self.intents.clone().or_else(|| self.intent.clone().map(|i| vec![i])).unwrap_or_default()
    }
}

/// Turns that mean something only together: each turn's `intent` and `slots` are what the
/// request stands at after it (a value given two turns before included).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    pub conversation: String,
    pub turns: Vec<Utterance>,
    /// `voice` for conversations spoken to the Voice droplet: every turn is a voice turn.
    #[serde(default)]
    pub channel: Option<String>,
}

/// A corpus: single messages, and conversations.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub messages: Vec<Utterance>,
    pub conversations: Vec<Conversation>,
}

/// One entry of a corpus file: a message (`say:`) or a conversation (`conversation:`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Entry {
    Conversation(Conversation),
    Message(Utterance),
}

/// Reads a corpus (a YAML list of messages and conversations); says which entry is wrong.
pub fn parse(text: &str) -> Result<Corpus, String> {
    let entries: Vec<serde_json::Value> = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let mut corpus = Corpus::default();
    for (index, entry) in entries.into_iter().enumerate() {
        let place = format!("entry {}", index + 1);
        let entry: Entry = serde_json::from_value(entry.clone()).map_err(|_| {
            let what = match entry.get("conversation") {
                Some(_) => "a conversation needs `conversation` (its name) and `turns` (each a `say` with its `intent`), and nothing else",
                None => "a message needs `say` and `intent` (or `intents`), optionally `slots` and `channel`, and nothing else",
            };
            format!("{place} is not a message or a conversation: {what}")
        })?;
        match entry {
            Entry::Message(utterance) => {
                if utterance.expected().is_empty() {
                    return Err(format!("{place} ({:?}) names no `intent` or `intents`", utterance.say));
                }
                corpus.messages.push(utterance);
            }
            Entry::Conversation(conversation) => {
                if let Some((turn, said)) = conversation.turns.iter().enumerate().find(|(_, t)| t.expected().is_empty())
                {
                    return Err(format!(
                        "{place} (conversation {:?}), turn {} ({:?}) names no `intent`",
                        conversation.conversation,
                        turn + 1,
                        said.say
                    ));
                }
                corpus.conversations.push(conversation);
            }
        }
    }
    Ok(corpus)
}

/// What the engine made of one message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub utterance: Utterance,
    pub intents: Vec<String>,
    /// The first request's slots (a droplet question naming several: the list of ids).
    pub slots: Map<String, Value>,
    /// With a model configured, the rules would ask it about this message.
    pub asks_model: bool,
    /// A conversation turn: the state-changing calls it sent, as `METHOD path body`.
    pub sent: Option<Vec<String>>,
}

impl Outcome {
    pub fn intent_right(&self) -> bool {
        self.intents == self.utterance.expected()
    }

    /// The right intent(s) and, for one request, exactly the slot values stated: none missing,
    /// none wrong, none invented.
    pub fn right(&self) -> bool {
        self.intent_right()
            && (self.utterance.intents.is_some() || self.slots == self.utterance.slots)
            && self.sent_right()
    }

    /// A conversation turn sent a command exactly when it was meant to, and at most one.
    pub fn sent_right(&self) -> bool {
        self.sent.as_ref().is_none_or(|sent| sent.len() == usize::from(self.utterance.sends))
    }
}

/// Runs every message through the engine's understanding, and every conversation through
/// whole turns (rules only: no model is configured here, whatever the environment says).
pub async fn evaluate(config: Arc<CompiledConfig>, corpus: Corpus) -> Report {
    let sessions = Arc::new(MemoryStore::new(SessionLimits::default()));
    let engine = Engine::new(config, Arc::new(SampleBackend), sessions);
    let mut outcomes = Vec::with_capacity(corpus.messages.len());
    for utterance in corpus.messages {
        let analysis = engine.analyze(&utterance.say).await;
        let asks_model = engine.would_ask_model(&utterance.say);
        let mut intents: Vec<String> = Vec::new();
        let mut slots = Map::new();
        // one droplet question asked of several droplets is one request with a list of them
        let same = analysis.intents.windows(2).all(|w| w[0].why.id == w[1].why.id);
        if same && analysis.intents.len() > 1 {
            intents.push(analysis.intents[0].why.id.clone());
            for analyzed in &analysis.intents {
                for (name, value) in &analyzed.slots {
                    match slots.get_mut(name) {
                        Some(Value::Array(list)) if !list.contains(value) => list.push(value.clone()),
                        Some(Value::Array(_)) => {}
                        _ => {
                            slots.insert(name.clone(), Value::Array(vec![value.clone()]));
                        }
                    }
                }
            }
            for value in slots.values_mut() {
                if let Value::Array(list) = value {
                    if list.len() == 1 {
                        *value = list[0].clone();
                    }
                }
            }
        } else {
            intents = analysis.intents.iter().map(|a| a.why.id.clone()).collect();
            slots = analysis.intents.first().map(|a| a.slots.clone()).unwrap_or_default();
        }
        outcomes.push(Outcome { utterance, intents, slots, asks_model, sent: None });
    }
    let mut conversations = Vec::with_capacity(corpus.conversations.len());
    for conversation in corpus.conversations {
        conversations.push((conversation.conversation.clone(), converse(&engine, conversation).await));
    }
    Report { outcomes, conversations }
}

/// A conversation's turns, each as the engine took it in one session: the intent that answered
/// and the slots its request stood at.
async fn converse(engine: &Engine, conversation: Conversation) -> Vec<Outcome> {
    let session = uuid::Uuid::new_v4().to_string();
    let channel = match conversation.channel.as_deref() {
        Some("voice") => crate::session::Channel::Voice,
        _ => crate::session::Channel::Chat,
    };
    let mut outcomes = Vec::with_capacity(conversation.turns.len());
    for utterance in conversation.turns {
        let turn = crate::engine::Turn {
            session_id: Some(session.clone()),
            channel,
            text: utterance.say.clone(),
            trace_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        let (intents, slots, sent) = match engine.handle(turn).await {
            Ok(reply) => {
                let mut intents = vec![reply.intent];
                // a question asked of several droplets is one request
                for joined in &reply.trace.joined {
                    if !intents.contains(&joined.id) {
                        intents.push(joined.id.clone());
                    }
                }
                let sent: Vec<String> =
                    reply.trace.commands_sent().map(|call| format!("{} {}", call.method, call.endpoint)).collect();
                (intents, reply.trace.slots.as_object().cloned().unwrap_or_default(), sent)
            }
            Err(error) => (vec![format!("error: {error}")], Map::new(), Vec::new()),
        };
        outcomes.push(Outcome { utterance, intents, slots, asks_model: false, sent: Some(sent) });
    }
    outcomes
}

/// The outcomes of a corpus.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    /// Each conversation's name and its turns.
    pub conversations: Vec<(String, Vec<Outcome>)>,
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// A message's line: what it was understood as, and what was meant when that differs.
fn line(o: &Outcome, indent: &str) -> String {
    let sent = match &o.sent {
        Some(sent) if !sent.is_empty() => format!(" — sent {}", sent.join(", ")),
        _ => String::new(),
    };
    let got = format!("{}{}{sent}", o.intents.join(" + "), slots_text(&o.slots));
    if o.right() {
        format!("{indent}✓ {:?} → {got}\n", o.utterance.say)
    } else {
        let sends = match (o.utterance.sends, &o.sent) {
            (true, _) => " — sends it",
            (false, Some(sent)) if !sent.is_empty() => " — sends nothing",
            _ => "",
        };
        let meant = format!("{}{}{sends}", o.utterance.expected().join(" + "), slots_text(&o.utterance.slots));
        format!("{indent}✗ {:?} → {got} (meant {meant})\n", o.utterance.say)
    }
}

fn slots_text(slots: &Map<String, Value>) -> String {
    if slots.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = slots.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(" {{{}}}", pairs.join(", "))
}

impl Report {
    /// Every message and every conversation turn.
    fn all(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().chain(self.conversations.iter().flat_map(|(_, turns)| turns))
    }

    pub fn right(&self) -> usize {
        self.all().filter(|o| o.right()).count()
    }

    pub fn intent_right(&self) -> usize {
        self.all().filter(|o| o.intent_right()).count()
    }

    /// Conversations with every turn right.
    pub fn conversations_right(&self) -> usize {
        self.conversations.iter().filter(|(_, turns)| turns.iter().all(Outcome::right)).count()
    }

    pub fn asking_model(&self) -> usize {
        self.outcomes.iter().filter(|o| o.asks_model).count()
    }

    /// The share of messages and turns with the right intent(s) and slots, in percent.
    pub fn accuracy(&self) -> f64 {
        percent(self.right(), self.all().count())
    }

    /// One line per message, in corpus order: what it was understood as, and what was meant
    /// when that differs. This is the reviewed snapshot.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for o in &self.outcomes {
            out.push_str(&line(o, ""));
        }
        for (name, turns) in &self.conversations {
            let mark = if turns.iter().all(Outcome::right) { '✓' } else { '✗' };
            let _ = writeln!(out, "{mark} conversation {name}:");
            for o in turns {
                out.push_str(&line(o, "    "));
            }
        }
        out
    }

    /// Accuracy, per-intent figures and where each intent's messages went.
    pub fn summary(&self) -> String {
        let total = self.all().count();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{total} messages: intent right {} ({:.1}%), intent and slots right {} ({:.1}%); a model would be asked about {}",
            self.intent_right(),
            percent(self.intent_right(), total),
            self.right(),
            self.accuracy(),
            self.asking_model()
        );
        if !self.conversations.is_empty() {
            let count = self.conversations.len();
            let _ = writeln!(
                out,
                "{count} conversations ({} turns of the messages above): every turn right in {} ({:.1}%)",
                self.conversations.iter().map(|(_, turns)| turns.len()).sum::<usize>(),
                self.conversations_right(),
                percent(self.conversations_right(), count)
            );
        }
        // expected intent → (count, right, got intent → count)
        let mut table: BTreeMap<String, (usize, usize, BTreeMap<String, usize>)> = BTreeMap::new();
        for o in self.all() {
            let row = table.entry(o.utterance.expected().join(" + ")).or_default();
            row.0 += 1;
            row.1 += usize::from(o.right());
            *row.2.entry(o.intents.join(" + ")).or_default() += 1;
        }
        let width = table.keys().map(|k| k.chars().count()).max().unwrap_or(6).max(6);
        let _ = writeln!(out, "\n{:width$}  {:>5}  {:>6}  understood as", "meant", "right", "of");
        for (meant, (count, right, got)) in &table {
            let spread: Vec<String> =
                got.iter().filter(|(intent, _)| *intent != meant).map(|(intent, n)| format!("{intent} {n}")).collect();
            let spread = if spread.is_empty() { String::new() } else { spread.join(", ") };
            let _ = writeln!(out, "{meant:width$}  {right:>5}  {count:>6}  {spread}");
        }
        out
    }
}
