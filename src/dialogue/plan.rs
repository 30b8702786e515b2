//! Planning a turn: which pipeline(s) answer a message, from which step, on which words — an
//! interrupt, the pending action's continuation (an answer, a yes or no, a correction), a
//! digression that leaves the action waiting, or something new (one plan per request of a
//! compound message, one per droplet of a several-droplet question). Pure: free functions over
//! the compiled configuration and the pending question; nothing is called.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::answers::{self, ConsentAnswer};
use super::focus::{self, InFocus};
use crate::config::capabilities::Unsupported;
use crate::config::CompiledConfig;
use crate::intent::{Evidence, Resolution};
use crate::nlu::answers::YesNo;
use crate::nlu::Reading;
use crate::pipeline::{Pipeline, TurnDialogue};
use crate::session::Pending;
use crate::slots::fill::Said;
use crate::slots::SlotKind;
use crate::steps::Step;
use crate::trace::{AnswerReading, CandidateTrace, IntentSource, IntentTrace};

/// Which pipeline runs, from where, on which words, and why.
#[derive(Clone)]
pub struct Plan {
    pub intent: String,
    /// The words this plan reads its slots from, as read once: the whole message, or its
    /// clause when the message asked for several things.
    pub reading: Arc<Reading>,
    /// The rules were sure (a pattern, or a close and clear example); otherwise a configured
    /// model gets a say.
    pub confident: bool,
    pub start: usize,
    pub slots: Map<String, Value>,
    pub resumed: bool,
    pub cleared: Option<Value>,
    pub why: IntentTrace,
    pub notes: Vec<String>,
    /// Where the conversation about the pending action stands, for the steps that ask.
    pub dialogue: TurnDialogue,
    /// Parts of the message no intent reads, to be said after the replies.
    pub unread: Vec<String>,
    /// Where the slots it starts with came from (`earlier`, `focus, turn 3`).
    pub sources: std::collections::BTreeMap<String, String>,
    /// Why the fallback answers, for its reply (`understanding` in templates): the action no
    /// intent serves, what it can do instead, or the two intents the message is torn between.
    pub understanding: Option<Value>,
}

impl Plan {
    /// A plan that runs `pipeline` from its first step on `reading`, for the reason `why`.
    pub fn new(pipeline: &Pipeline, reading: Arc<Reading>, why: IntentTrace) -> Plan {
        Plan {
            intent: pipeline.intent.clone(),
            reading,
            confident: true,
            start: 0,
            slots: Map::new(),
            resumed: false,
            cleared: None,
            why,
            notes: Vec::new(),
            dialogue: TurnDialogue::default(),
            unread: Vec::new(),
            sources: Default::default(),
            understanding: None,
        }
    }
}

/// The plans for a turn, and the action that waits while they answer something else.
pub struct Planned {
    pub plans: Vec<Plan>,
    /// A pending question the message did not answer (a digression): it stays pending and is
    /// asked again after the reply, unless the plans ask a question of their own.
    pub kept: Option<Pending>,
}

/// Decides which pipeline(s) handle the message: an interrupting intent, the pending
/// action's continuation (an answer, a yes or no, a correction), or the resolver's choice —
/// one per request when the message asks for several, and one per droplet when a droplet
/// question names several. A message that answers something else while an action waits
/// keeps the action (`Planned::kept`).
pub fn plan(config: &CompiledConfig, reading: &Arc<Reading>, pending: Option<Pending>, focus: &InFocus<'_>) -> Planned {
    let just = |plans: Vec<Plan>| Planned { plans, kept: None };
    let text = reading.text.as_str();
    let Some(pending) = pending else {
        // "the first one", "remove it": the intent picked from the two the last reply offered,
        // run on the message that was torn between them
        if let Some(plans) = focus.picks(config, reading).map(|(intent, torn)| picked(config, &intent, torn)) {
            if !plans.is_empty() {
                return just(plans);
            }
        }
        // "the other one": the droplet it points at, as if named — never into a command that
        // does not read its values back first
        if let Some(pointed) = focus::point_at_other(config, reading, focus).map(Arc::new) {
            let plans = fresh_plans(config, &pointed, Vec::new(), focus);
            if plans.iter().all(|plan| config.pipeline(&plan.intent).is_none_or(focus::may_take_focus)) {
                return just(plans);
            }
        }
        return just(fresh_plans(config, reading, Vec::new(), focus));
    };
    let Some(pipeline) = config.pipeline(&pending.intent) else {
        let note = format!("dropped the pending `{}` action: that intent no longer exists", pending.intent);
        return just(fresh_plans(config, reading, vec![note], focus));
    };
    if let Some(interrupt) = config.resolver.resolve_interrupt(reading) {
        let cleared = json!({"intent": pipeline.intent, "description": pipeline.description});
        return just(vec![fresh_plan(config, interrupt, reading.clone(), Vec::new(), Some(cleared))]);
    }
    let step = pipeline.steps.get(pending.step).map(|s| &s.step).filter(|_| pipeline.fits(&pending.fingerprint));
    let waiting = TurnDialogue { waiting: Some(pending.clone()), ..TurnDialogue::default() };
    match step {
        Some(Step::Extract(extract)) => {
            let analyzer = config.resolver.analyzer();
            let asked = pending.asking.as_deref().and_then(|name| pipeline.slot(name));
            let elsewhere = AnotherRequest::of(config, &pending.intent, reading);
            // "status of the registry" at "Which droplet do you mean?" is a question of its own
            if asked.is_some_and(|slot| slot.kind != SlotKind::String)
                && elsewhere.as_ref().is_some_and(|other| other.stands_alone(config, reading))
            {
                return digression(config, reading, focus, pending);
            }
            // "check the deck snapshots" at "What should the task be called?" is the title, even
            // though it names a droplet; a question there is not ("what does the registry list?")
            if asked.is_some_and(|slot| slot.kind == SlotKind::String) {
                if answers::plainly_asks(reading) {
                    return digression(config, reading, focus, pending);
                }
                return just(vec![answering(pipeline, &pending, reading, waiting)]);
            }
            let bare = asked.is_some_and(|slot| answers::is_bare_answer(slot, text, &config.catalogue));
            if !bare
                && !extract.reader(pipeline, &config.catalogue, analyzer).answers(reading)
                && elsewhere.as_ref().is_some_and(AnotherRequest::is_digression)
            {
                return digression(config, reading, focus, pending);
            }
            just(vec![answering(pipeline, &pending, reading, waiting)])
        }
        Some(Step::Confirm(_)) => answer_to_consent(config, pipeline, pending, reading, waiting, focus),
        _ => {
            let note =
                format!("dropped the pending `{}` action: its pipeline changed since the question", pending.intent);
            just(fresh_plans(config, reading, vec![note], focus))
        }
    }
}

/// The plans for a message that asks something else while `pending` waits: it is answered, and
/// the action's question comes back after it.
fn digression(config: &CompiledConfig, reading: &Arc<Reading>, focus: &InFocus<'_>, pending: Pending) -> Planned {
    Planned { plans: fresh_plans(config, reading, Vec::new(), focus), kept: Some(pending) }
}

/// The plans for a message that starts something new: one per request it makes, and one
/// per droplet when a droplet question names several.
fn fresh_plans(config: &CompiledConfig, reading: &Arc<Reading>, notes: Vec<String>, focus: &InFocus<'_>) -> Vec<Plan> {
    let parts = config.resolver.resolve_parts(&reading.text);
    let plans: Vec<Plan> = if parts.is_empty() {
        vec![fresh_plan(config, config.resolver.resolve_reading(reading), reading.clone(), notes, None)]
    } else {
        let analyzer = config.resolver.analyzer();
        let mut notes = Some(notes);
        parts
            .into_iter()
            .map(|part| {
                let clause = Arc::new(analyzer.read(&part.text));
                let mut plan = fresh_plan(config, part.resolution, clause, notes.take().unwrap_or_default(), None);
                plan.unread = part.unread;
                plan
            })
            .collect()
    };
    let plans = focus::follow_up(config, reading, plans, focus);
    plans.into_iter().flat_map(|plan| per_droplet(config, plan)).collect()
}

/// The plan for an answer to a read-back: go ahead, decline, ask again with corrected
/// values (or for a corrected value that is not acceptable), answer another request while the
/// action waits (or, said with a no, decline it and start the other), or ask for a clear yes or
/// no.
fn answer_to_consent(
    config: &CompiledConfig,
    pipeline: &Pipeline,
    pending: Pending,
    reading: &Arc<Reading>,
    waiting: TurnDialogue,
    focus: &InFocus<'_>,
) -> Planned {
    let just = |plan: Plan| Planned { plans: vec![plan], kept: None };
    let another_request = AnotherRequest::of(config, &pending.intent, reading).is_some_and(|o| o.is_digression());
    let at = answers::AtReadBack {
        pipeline,
        step: pending.step,
        slots: &pending.slots,
        catalogue: &config.catalogue,
        analyzer: config.resolver.analyzer(),
        another_request,
        follows_up: focus.follows_up(reading),
    };
    let answer = answers::read_consent(&at, &reading.text);
    let read = Some(answer.reading());
    match answer {
        ConsentAnswer::Yes | ConsentAnswer::No => {
            let consent = if answer == ConsentAnswer::Yes { YesNo::Yes } else { YesNo::No };
            let dialogue = TurnDialogue { consent: Some(consent), answer: read, ..waiting };
            just(answering(pipeline, &pending, reading, dialogue))
        }
        ConsentAnswer::Corrected { slots, changed, invalid, rest } => {
            let before = pending.slots.clone();
            let notes = vec![format!("changed {}", changed.join(", "))];
            let dialogue = TurnDialogue { changed, answer: read, ..TurnDialogue::default() };
            match (invalid, answers::collecting_step(pipeline, pending.step)) {
                // a corrected value that is not acceptable is asked for again, with why
                (Some(slot), Some((extract_step, _))) => {
                    let asked = Pending { asking: Some(slot), tries: 0, answered: None, ..pending };
                    let dialogue = TurnDialogue { waiting: Some(asked), ..dialogue };
                    let rest = Arc::new(config.resolver.analyzer().read(&rest));
                    just(resumed_plan(pipeline, extract_step, &before, slots, rest, dialogue, notes))
                }
                _ => just(resumed_plan(pipeline, pending.step, &before, slots, reading.clone(), dialogue, notes)),
            }
        }
        // "no, register a new one with id 42 instead": the waiting action is declined first
        ConsentAnswer::Another { refused: true } => {
            let dialogue = TurnDialogue { consent: Some(YesNo::No), answer: read, ..waiting };
            let mut declined = answering(pipeline, &pending, reading, dialogue);
            declined.notes.push("declined: the user asked for something else instead".to_owned());
            let mut plans = vec![declined];
            plans.extend(fresh_plans(config, reading, Vec::new(), focus));
            Planned { plans, kept: None }
        }
        ConsentAnswer::Another { refused: false } => digression(config, reading, focus, pending),
        // "hold on", "not yet": the read-back again, with no complaint and no try used
        ConsentAnswer::Unclear(AnswerReading::Wait) => {
            let dialogue = TurnDialogue { answer: read, ..waiting };
            just(answering(pipeline, &pending, reading, dialogue))
        }
        ConsentAnswer::Unclear(_) => {
            let dialogue = TurnDialogue { unclear: true, answer: read, ..waiting };
            just(answering(pipeline, &pending, reading, dialogue))
        }
    }
}

/// The plans for the message that was torn between two intents, run as the one the user picked.
fn picked(config: &CompiledConfig, intent: &str, torn: &str) -> Vec<Plan> {
    let Some(pipeline) = config.pipeline(intent) else { return Vec::new() };
    let reading = Arc::new(config.resolver.analyzer().read(torn));
    let why = IntentTrace {
        id: intent.to_owned(),
        source: IntentSource::Rules,
        score: 1.0,
        reason: format!("picked by the user for {torn:?}, between the intents the last reply offered"),
        runner_up: None,
    };
    // the user chose it: no second guessing of its verb
    per_droplet(config, Plan::new(pipeline, reading, why))
}

/// A droplet question that names several droplets ("status of the registry and the
/// orchestrator") becomes one plan per droplet, each with its droplet given; their replies
/// are joined like any several requests.
pub fn per_droplet(config: &CompiledConfig, plan: Plan) -> Vec<Plan> {
    let Some(pipeline) = config.pipeline(&plan.intent) else { return vec![plan] };
    let Some(extract) = pipeline.first_extract() else { return vec![plan] };
    let Some(slot) = pipeline.slots.iter().find(|s| s.kind == crate::slots::SlotKind::Droplet) else {
        return vec![plan];
    };
    let mut probe = Map::new();
    let reader = extract.reader(pipeline, &config.catalogue, config.resolver.analyzer());
    let filled = reader.fill(&plan.reading, Said::Fresh, &mut probe);
    if filled.droplets.len() < 2 {
        return vec![plan];
    }
    filled
        .droplets
        .iter()
        .map(|id| {
            let mut slots = plan.slots.clone();
            slots.insert(slot.name.clone(), json!(id));
            Plan { slots, ..plan.clone() }
        })
        .collect()
}

/// A plan for a message that starts something new, from the resolver's choice.
fn fresh_plan(
    config: &CompiledConfig,
    resolution: Resolution,
    reading: Arc<Reading>,
    notes: Vec<String>,
    cleared: Option<Value>,
) -> Plan {
    let cannot = if cleared.is_some() { None } else { cannot_serve(config, &resolution, &reading) };
    let understanding = understanding(config, &resolution, cannot.as_ref());
    let resolution = match &cannot {
        Some(cannot) => Resolution {
            intent: config.resolver.fallback().to_owned(),
            evidence: None,
            // the rules know no intent serves it: a model would only pick the nearest one
            confident: true,
            reason: format!("no intent serves \"{}\" in \"{}\" ({})", cannot.word, cannot.request, resolution.reason),
            ..resolution
        },
        None => resolution,
    };
    let source = if cleared.is_some() {
        IntentSource::Interrupt
    } else if resolution.intent == config.resolver.fallback() {
        IntentSource::Fallback
    } else {
        IntentSource::Rules
    };
    Plan {
        understanding,
        intent: resolution.intent.clone(),
        reading,
        confident: resolution.confident,
        start: 0,
        slots: Map::new(),
        resumed: false,
        cleared,
        why: intent_trace(&resolution, source),
        notes,
        dialogue: TurnDialogue::default(),
        unread: Vec::new(),
        sources: Default::default(),
    }
}

/// "reboot the orchestrator": the request the chosen intent does not serve, whatever else it
/// shares with it. Interrupts are never second-guessed, and neither is a command the steward's
/// pattern chose (it reads its values back before anything is sent); with the fallback chosen,
/// any intent's actions count.
fn cannot_serve(config: &CompiledConfig, resolution: &Resolution, reading: &Reading) -> Option<Unsupported> {
    let pipeline = config.pipeline(&resolution.intent)?;
    let patterned_command = pipeline.changes_state && resolution.evidence == Some(Evidence::Pattern);
    if pipeline.interrupts || patterned_command {
        return None;
    }
    let chosen = Some(pipeline).filter(|p| !p.fallback);
    config.capabilities.unsupported(chosen, reading, &config.catalogue, config.resolver.analyzer())
}

/// What the fallback says about a message it answers: the request no intent serves and the word
/// that asks it (`cannot`, `action`), the nearest thing that is served (`nearest`), or the
/// intents the message is torn between (`choices`). `None` when another intent answers.
fn understanding(config: &CompiledConfig, resolution: &Resolution, cannot: Option<&Unsupported>) -> Option<Value> {
    let fallback = config.resolver.fallback();
    if cannot.is_none() && resolution.intent != fallback {
        return None;
    }
    let describe = |intent: &str| {
        config
            .pipeline(intent)
            .map(|p| json!({"id": p.intent, "description": p.description, "example": p.examples.first()}))
    };
    // what it can do about the same thing: the closest intent (a suggestion, never run)
    let nearest = resolution
        .candidates
        .iter()
        .filter(|c| c.intent != fallback)
        .find(|c| config.pipeline(&c.intent).is_some_and(|p| !p.interrupts))
        .and_then(|c| describe(&c.intent));
    let choices: Vec<Value> = resolution.tied.iter().filter_map(|intent| describe(intent)).collect();
    Some(json!({
        "cannot": cannot.map(|c| &c.request),
        "action": cannot.map(|c| &c.word),
        "nearest": nearest.filter(|_| cannot.is_some()),
        "choices": choices,
    }))
}

/// A plan that answers the pending action's question with this message.
fn answering(pipeline: &Pipeline, pending: &Pending, reading: &Arc<Reading>, dialogue: TurnDialogue) -> Plan {
    resumed_plan(pipeline, pending.step, &pending.slots, pending.slots.clone(), reading.clone(), dialogue, Vec::new())
}

/// A plan that continues the pending action at `start`.
fn resumed_plan(
    pipeline: &Pipeline,
    start: usize,
    before: &Map<String, Value>,
    slots: Map<String, Value>,
    reading: Arc<Reading>,
    dialogue: TurnDialogue,
    notes: Vec<String>,
) -> Plan {
    Plan {
        intent: pipeline.intent.clone(),
        reading,
        confident: true,
        start,
        resumed: true,
        cleared: None,
        why: IntentTrace {
            id: pipeline.intent.clone(),
            source: IntentSource::Resumed,
            score: 0.0,
            reason: "answering the question asked in the previous turn".to_owned(),
            runner_up: None,
        },
        // a value the action had before this message (not one it corrects)
        sources: slots
            .iter()
            .filter(|(name, value)| before.get(*name) == Some(*value))
            .map(|(name, _)| (name.clone(), "earlier".to_owned()))
            .collect(),
        slots,
        notes,
        dialogue,
        unread: Vec::new(),
        understanding: None,
    }
}

/// While an action waits for an answer, the message read as a request for another intent (not
/// the waiting one, the fallback or an interrupt, which is checked before this), resolved once.
struct AnotherRequest<'c> {
    resolution: Resolution,
    pipeline: &'c Pipeline,
}

impl<'c> AnotherRequest<'c> {
    fn of(config: &'c CompiledConfig, waiting: &str, reading: &Reading) -> Option<Self> {
        let resolution = config.resolver.resolve_reading(reading);
        let pipeline = config.pipeline(&resolution.intent)?;
        let other = resolution.intent != waiting && resolution.intent != config.resolver.fallback();
        (other && !pipeline.interrupts).then_some(AnotherRequest { resolution, pipeline })
    }

    /// A reply and nothing else (a greeting, a thank-you).
    fn is_pleasantry(&self) -> bool {
        self.pipeline.steps.iter().all(|s| matches!(s.step, Step::Format(_)))
    }

    /// The message plainly asks for it: a pattern, or a confident example that is not a
    /// pleasantry ("maybe later" is no goodbye in the middle of a registration).
    fn is_digression(&self) -> bool {
        self.resolution.evidence == Some(Evidence::Pattern) || (self.resolution.confident && !self.is_pleasantry())
    }

    /// A request of its own even where a value is awaited: it says what it wants in words of its
    /// own (not just a value), resolves confidently, and gives what its intent needs.
    fn stands_alone(&self, config: &CompiledConfig, reading: &Reading) -> bool {
        if focus::names_only_values(reading) || !self.resolution.confident || self.is_pleasantry() {
            return false;
        }
        self.pipeline.first_extract().is_none_or(|extract| {
            let mut probe = Map::new();
            let reader = extract.reader(self.pipeline, &config.catalogue, config.resolver.analyzer());
            reader.fill(reading, Said::Fresh, &mut probe).missing.is_empty()
        })
    }
}

/// The model is asked only about one fresh request the rules were not sure of: not about an
/// answer to a pending question, an interrupt, or a message the rules split into several.
pub fn model_may_decide(plans: &[Plan]) -> bool {
    match plans {
        [only] => !only.confident && matches!(only.why.source, IntentSource::Fallback | IntentSource::Rules),
        _ => false,
    }
}

fn intent_trace(resolution: &Resolution, source: IntentSource) -> IntentTrace {
    IntentTrace {
        id: resolution.intent.clone(),
        source,
        score: resolution.score,
        reason: resolution.reason.clone(),
        runner_up: resolution.runner_up.as_ref().map(|c| CandidateTrace {
            id: c.intent.clone(),
            score: c.score,
            reason: c.reason.clone(),
        }),
    }
}
