//! Configuration "as written": the shapes of `pipelines/*.yaml` and the droplet catalogue.
//!
//! These types mirror the schemas in `schemas/` one to one and carry no behaviour. The compile
//! pass turns them into the runtime types the engine uses; the engine never sees a `*Spec`.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    pub intent: String,
    pub description: String,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default, rename = "match")]
    pub rules: MatchSpec,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub fallback: bool,
    #[serde(default)]
    pub interrupts: bool,
    #[serde(default = "listed_by_default")]
    pub listed: bool,
    /// In file order (the order slots are asked for).
    #[serde(default)]
    pub slots: IndexMap<String, SlotSpec>,
    pub steps: Vec<StepSpec>,
    #[serde(default)]
    pub tests: Vec<TestSpec>,
}

fn listed_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    #[serde(default)]
    pub any: Vec<String>,
    #[serde(default)]
    pub all: Vec<String>,
    #[serde(default)]
    pub none: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotSpec {
    #[serde(rename = "type")]
    pub kind: SlotKindSpec,
    pub prompt: String,
    #[serde(default)]
    pub example: Option<Value>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Phrases that introduce the value: "called {value}".
    #[serde(default)]
    pub from: Vec<String>,
    /// The question that asks for this slot alone ("What should the service be called?").
    #[serde(default)]
    pub ask: Option<QuestionSpec>,
    #[serde(default)]
    pub schema: Option<serde_json::Map<String, Value>>,
    /// Masked wherever the turn is kept (traces, logs, history, missed messages).
    #[serde(default)]
    pub sensitive: bool,
    /// Whether a follow-up may take the value from what the conversation is about (`None`: on
    /// for droplet slots, off for the rest).
    #[serde(default)]
    pub from_context: Option<bool>,
}

/// A slot's question: one text for both channels, or one each.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QuestionSpec {
    Both(String),
    Channels { chat: String, voice: String },
}

/// `catalogue/vocabulary.yaml` as written: canonical term → what else people say for it, and
/// the mesh's nouns the engine reads by their job.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabularySpec {
    #[serde(default)]
    pub synonyms: IndexMap<String, Vec<String>>,
    /// Words that introduce a droplet's id ("droplet 14"); none when not written.
    #[serde(default)]
    pub droplet_words: Vec<String>,
    /// Words that are never a slot's value on their own ("register a new service"); none when
    /// not written.
    #[serde(default)]
    pub generic_nouns: Vec<String>,
    /// How long what the conversation is about stays in mind for a follow-up.
    #[serde(default)]
    pub focus: FocusSpec,
    /// How sure the rules must be before choosing a command.
    #[serde(default)]
    pub commands: CommandsSpec,
    /// Words that, with no droplet named, mean every droplet ("status of the droplets", "status
    /// of the mesh"); none when not written.
    #[serde(default)]
    pub every_droplet_words: Vec<String>,
}

/// `commands:` in the vocabulary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsSpec {
    /// How far ahead of the next intent a command (an intent that changes something) must score
    /// when examples, not a pattern, choose it.
    #[serde(default = "CommandsSpec::default_lead")]
    pub lead: f64,
}

impl CommandsSpec {
    /// The default when `commands.lead` is not written.
    pub const DEFAULT_LEAD: f64 = 0.05;

    fn default_lead() -> f64 {
        Self::DEFAULT_LEAD
    }
}

impl Default for CommandsSpec {
    fn default() -> Self {
        CommandsSpec { lead: Self::DEFAULT_LEAD }
    }
}

/// `focus:` in the vocabulary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FocusSpec {
    /// For how many of the user's messages after it a value they named can be meant by a
    /// follow-up.
    #[serde(default = "FocusSpec::default_turns")]
    pub turns: u32,
}

impl FocusSpec {
    /// The default when `focus.turns` is not written.
    pub const DEFAULT_TURNS: u32 = 4;

    fn default_turns() -> u32 {
        Self::DEFAULT_TURNS
    }
}

impl Default for FocusSpec {
    fn default() -> Self {
        FocusSpec { turns: Self::DEFAULT_TURNS }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotKindSpec {
    String,
    Integer,
    Number,
    Boolean,
    Droplet,
}

/// One step as written: a mapping with exactly one of `extract`, `query`, `reason`, `format` (checked by
/// the compile pass, which can point at the step) and an optional `when`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub extract: Option<ExtractSpec>,
    #[serde(default)]
    pub query: Option<QuerySpec>,
    #[serde(default)]
    pub reason: Option<ReasonSpec>,
    #[serde(default)]
    pub format: Option<FormatSpec>,
    #[serde(default)]
    pub confirm: Option<ConfirmSpec>,
    /// A `query` step's line for a listening client while its droplets have not answered.
    #[serde(default)]
    pub progress: Option<ProgressSpec>,
}

/// A query's progress line as written: its two templates, and when to send it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressSpec {
    pub chat: String,
    pub voice: String,
    /// Milliseconds to wait for the droplets first (the server's `PROGRESS_AFTER_MS` otherwise).
    #[serde(default)]
    pub after_ms: Option<u64>,
}

/// A `confirm` step as written: the read-back that asks for consent, and what to say on "no".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmSpec {
    pub chat: String,
    pub voice: String,
    #[serde(default)]
    pub declined: Option<FormatSpec>,
}

/// A `reason` step as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonSpec {
    pub prompt: String,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub schema: Option<Value>,
    #[serde(rename = "as")]
    pub name: String,
    /// Whether a text answer is handed to a listening client while it is written (default).
    #[serde(default)]
    pub stream: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractSpec {
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default)]
    pub optional: Vec<String>,
    #[serde(default)]
    pub ask: Option<FormatSpec>,
    /// Ask for every missing slot in one question (chat only; voice asks one at a time).
    #[serde(default)]
    pub together: bool,
    /// How many unusable answers to one question before giving up (3).
    #[serde(default)]
    pub tries: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QuerySpec {
    One(Box<CallSpec>),
    Many(Vec<CallSpec>),
}

impl QuerySpec {
    /// The calls with their JSON pointer suffix relative to the `query` key.
    pub fn calls(&self) -> Vec<(String, &CallSpec)> {
        match self {
            QuerySpec::One(call) => vec![(String::new(), call.as_ref())],
            QuerySpec::Many(calls) => calls.iter().enumerate().map(|(i, c)| (format!("/{i}"), c)).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    #[serde(default)]
    pub droplet: Option<DropletRefSpec>,
    #[serde(default)]
    pub droplets: Option<FanOutSpec>,
    pub endpoint: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(rename = "as")]
    pub name: String,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// A state-changing call that needs no `confirm` step before it (`check` warns otherwise).
    #[serde(default)]
    pub without_consent: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DropletRefSpec {
    Id(i64),
    Name(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FanOutSpec {
    All(AllKeyword),
    List(Vec<DropletRefSpec>),
}

/// The word `all` in `droplets: all`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub enum AllKeyword {
    #[serde(rename = "all")]
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSpec {
    pub chat: String,
    pub voice: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    pub say: String,
    pub expect_intent: String,
    #[serde(default)]
    pub expect_slots: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub expect_reply_contains: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueSpec {
    /// Answer shapes by name (JSON Schemas), for `response: NAME`.
    #[serde(default)]
    pub shapes: IndexMap<String, Value>,
    /// The states droplets report, by name, in the order replies list them.
    #[serde(default)]
    pub statuses: IndexMap<String, StatusSpec>,
    pub droplets: Vec<DropletSpec>,
}

/// One state of `statuses:`: its icon, how replies name it, and the status words that mean it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSpec {
    pub icon: String,
    pub label: Option<String>,
    pub spoken: Option<String>,
    #[serde(default)]
    pub words: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropletSpec {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub purpose: String,
    #[serde(default)]
    pub aliases: Vec<Value>,
    pub endpoints: Vec<EndpointSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    pub path: String,
    pub method: String,
    pub description: String,
    #[serde(default)]
    pub backing: Option<String>,
    /// The answer's shape: a `shapes:` name or a JSON Schema.
    #[serde(default)]
    pub response: Option<ShapeRefSpec>,
    /// The JSON Schema of the body it takes.
    #[serde(default)]
    pub request: Option<Value>,
    #[serde(default)]
    pub sample: Option<Value>,
    #[serde(default)]
    pub native: Option<NativeSpec>,
}

/// An endpoint's `response:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ShapeRefSpec {
    /// One of the catalogue's `shapes:`.
    Named(String),
    /// A JSON Schema written on the endpoint.
    Inline(Value),
}

/// How droplet 10 answers an endpoint itself (`POST /message`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeSpec {
    pub message_type: String,
    pub payload: Value,
}

/// `udc_config.json` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdcConfigSpec {
    /// Only for editors; accepted and ignored.
    #[serde(default, rename = "$schema")]
    pub _schema: Option<String>,
    pub droplet: UdcDropletSpec,
    pub capabilities: UdcCapabilitiesSpec,
    pub dependencies: UdcDependenciesSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdcDropletSpec {
    pub id: i64,
    pub name: String,
    pub steward: String,
    pub endpoint: String,
    pub udc_version: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdcCapabilitiesSpec {
    pub features: Vec<String>,
    pub supported_sources: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdcDependenciesSpec {
    pub required: Vec<i64>,
    pub optional: Vec<i64>,
}
