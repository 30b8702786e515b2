//! Located, steward-readable configuration problems.
//!
//! Every problem the loader finds becomes one [`Diagnostic`]: a stable [`Code`] (tools and tests
//! match on it, never on the text), the file, line and column, one line saying what is wrong and
//! one line saying how to fix it. [`Diagnostics::render`] prints them the way minijinja prints
//! template errors: location first, then the offending source line with a caret under it.

use std::fmt::Write as _;

/// Stable identifiers of configuration problems. The text of a message may improve; a code
/// never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// A file could not be read.
    Io,
    /// The YAML itself is malformed.
    YamlSyntax,
    /// A key the schema does not know (usually a typo).
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value has the wrong type (text where a number is expected, …).
    WrongType,
    /// A value has the right type but is not allowed (pattern, enum, range).
    InvalidValue,
    /// The `intent` field and the file name disagree.
    IntentName,
    /// Two pipelines declare the same intent.
    DuplicateIntent,
    /// No pipeline is marked `fallback: true`.
    NoFallback,
    /// More than one pipeline is marked `fallback: true`.
    ManyFallbacks,
    /// A regular expression does not compile.
    BadRegex,
    /// A step names zero or several of `extract`, `query`, `format`.
    StepKind,
    /// A step or template refers to a slot the pipeline does not declare.
    UnknownSlot,
    /// A slot's extra JSON Schema rules are not a valid schema.
    SlotSchema,
    /// A query names a droplet the catalogue does not know.
    UnknownDroplet,
    /// A query names an endpoint the droplet does not offer.
    UnknownEndpoint,
    /// A query's method disagrees with the catalogue.
    MethodMismatch,
    /// Two droplets share an id, key or alias.
    DuplicateDroplet,
    /// Two query results share a name.
    DuplicateResult,
    /// A referenced template file does not exist.
    MissingTemplate,
    /// A template (or a templated value) does not parse.
    TemplateSyntax,
    /// A template or condition uses a variable that will not exist.
    UndefinedVariable,
    /// A `when` condition does not parse.
    BadCondition,
    /// The last step is not an unconditional `format`, so some turns would get no reply.
    NoReply,
    /// Steps after an unconditional `format` can never run.
    UnreachableStep,
    /// A pipeline's `tests:` entry names an intent that does not exist.
    UnknownTestIntent,
    /// A catalogue endpoint has a `native` form but its droplet is not the Orchestrator.
    NativeTarget,
    /// A slot's `from:` phrase cannot be used (no `{value}`, or nothing around it).
    BadPhrase,
    /// `catalogue/vocabulary.yaml` has a synonym cycle, a phrase with two meanings or an empty one.
    BadVocabulary,
    /// `statuses:` lists a word under two states, or gives the engine's own states words.
    BadStatus,
    /// A file under `pipelines/` that would not be read (`.yml`, or in a subfolder).
    FileName,
    /// A catalogue shape (`shapes:`, `response:`, `request:`) is not a valid JSON Schema.
    BadShape,
    /// An endpoint's `response:` names a shape `shapes:` does not declare.
    UnknownShape,
    /// A bundled sample answer breaks its endpoint's shape.
    SampleShape,
    /// A template or condition reads a field a droplet's answer does not have.
    UnknownField,
    /// A call's body does not fit the endpoint's `request:`: a field it does not take, one it
    /// needs and the body lacks, or a value of the wrong kind.
    BodyField,
    /// A `match:` pattern that YAML's double quotes changed (`"\b"` is a backspace).
    QuotedPattern,
    /// Warning: an intent's example resolves to another intent.
    ExampleClaimed,
    /// Warning: a state-changing call is not preceded by a `confirm` step.
    NoConsent,
    /// Warning: a template reads a field an answer may lack (or an answer that may be missing)
    /// without a guard.
    UnguardedRead,
    /// Warning: a template reads a droplet answer whose fields cannot be checked.
    UncheckedRead,
    /// Warning: a bundled sample answer reports a status word no state of `statuses:` lists.
    UnlistedStatus,
}

impl Code {
    /// The identifier printed in messages, e.g. `E_UNKNOWN_KEY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Io => "E_IO",
            Code::YamlSyntax => "E_YAML_SYNTAX",
            Code::UnknownKey => "E_UNKNOWN_KEY",
            Code::MissingKey => "E_MISSING_KEY",
            Code::WrongType => "E_WRONG_TYPE",
            Code::InvalidValue => "E_INVALID_VALUE",
            Code::IntentName => "E_INTENT_NAME",
            Code::DuplicateIntent => "E_DUPLICATE_INTENT",
            Code::NoFallback => "E_NO_FALLBACK",
            Code::ManyFallbacks => "E_MANY_FALLBACKS",
            Code::BadRegex => "E_BAD_REGEX",
            Code::NativeTarget => "E_NATIVE_TARGET",
            Code::StepKind => "E_STEP_KIND",
            Code::UnknownSlot => "E_UNKNOWN_SLOT",
            Code::SlotSchema => "E_SLOT_SCHEMA",
            Code::UnknownDroplet => "E_UNKNOWN_DROPLET",
            Code::UnknownEndpoint => "E_UNKNOWN_ENDPOINT",
            Code::MethodMismatch => "E_METHOD_MISMATCH",
            Code::DuplicateDroplet => "E_DUPLICATE_DROPLET",
            Code::DuplicateResult => "E_DUPLICATE_RESULT",
            Code::MissingTemplate => "E_MISSING_TEMPLATE",
            Code::TemplateSyntax => "E_TEMPLATE_SYNTAX",
            Code::UndefinedVariable => "E_UNDEFINED_VARIABLE",
            Code::BadCondition => "E_BAD_CONDITION",
            Code::NoReply => "E_NO_REPLY",
            Code::UnreachableStep => "E_UNREACHABLE_STEP",
            Code::UnknownTestIntent => "E_UNKNOWN_TEST_INTENT",
            Code::BadPhrase => "E_BAD_PHRASE",
            Code::BadVocabulary => "E_BAD_VOCABULARY",
            Code::BadStatus => "E_BAD_STATUS",
            Code::FileName => "E_FILE_NAME",
            Code::BadShape => "E_BAD_SHAPE",
            Code::UnknownShape => "E_UNKNOWN_SHAPE",
            Code::SampleShape => "E_SAMPLE_SHAPE",
            Code::UnknownField => "E_UNKNOWN_FIELD",
            Code::BodyField => "E_BODY_FIELD",
            Code::QuotedPattern => "E_QUOTED_PATTERN",
            Code::UnguardedRead => "W_UNGUARDED_READ",
            Code::UncheckedRead => "W_UNCHECKED_READ",
            Code::UnlistedStatus => "W_UNLISTED_STATUS",
            Code::ExampleClaimed => "W_EXAMPLE_CLAIMED",
            Code::NoConsent => "W_NO_CONSENT",
        }
    }

    /// A warning does not stop a configuration from loading; `check` prints it.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            Code::ExampleClaimed | Code::NoConsent | Code::UnguardedRead | Code::UncheckedRead | Code::UnlistedStatus
        )
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A position in a configuration file. Lines and columns start at 1; 0 means "whole file".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub code: Code,
    /// Path relative to the configuration root, e.g. `pipelines/register_service.yaml`.
    pub file: String,
    pub position: Position,
    /// What is wrong, in one line.
    pub message: String,
    /// How to fix it, in one line.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, file: impl Into<String>, position: Position, message: impl Into<String>) -> Self {
        Diagnostic { code, file: file.into(), position, message: message.into(), help: None }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:column`, or just `file` when the problem concerns the whole file.
    pub fn location(&self) -> String {
        if self.position.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}:{}", self.file, self.position.line, self.position.column)
        }
    }
}

/// All problems found in one load, sorted by file and position.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| (&a.file, a.position, a.code).cmp(&(&b.file, b.position, b.code)));
        self.0.dedup();
    }

    /// Renders every problem with a source snippet. `source_of` returns a file's text by path.
    pub fn render<'a>(&self, source_of: impl Fn(&str) -> Option<&'a str>) -> String {
        let mut out = String::new();
        for diagnostic in &self.0 {
            render_one(&mut out, diagnostic, source_of(&diagnostic.file));
            out.push('\n');
        }
        let files: std::collections::BTreeSet<&str> = self.0.iter().map(|d| d.file.as_str()).collect();
        let warnings = self.0.iter().filter(|d| d.code.is_warning()).count();
        let problems = self.0.len() - warnings;
        let (count, noun) = if problems == 0 { (warnings, "warning") } else { (problems, "problem") };
        let _ = write!(out, "{count} {noun}{} in {} file{}", plural(count), files.len(), plural(files.len()));
        if problems > 0 && warnings > 0 {
            let _ = write!(out, ", and {warnings} warning{}", plural(warnings));
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn render_one(out: &mut String, d: &Diagnostic, source: Option<&str>) {
    let severity = if d.code.is_warning() { "warning" } else { "error" };
    let _ = writeln!(out, "{}: {severity}[{}]: {}", d.location(), d.code.as_str(), d.message);
    if let Some(line_text) = source.and_then(|text| text.lines().nth(d.position.line.saturating_sub(1) as usize)) {
        if d.position.line > 0 {
            let number = d.position.line.to_string();
            let gutter = " ".repeat(number.len());
            let caret_pad: String = line_text
                .chars()
                .take(d.position.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, "{gutter} |");
            let _ = writeln!(out, "{number} | {line_text}");
            let _ = writeln!(out, "{gutter} | {caret_pad}^");
        }
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "  = help: {help}");
    }
}
