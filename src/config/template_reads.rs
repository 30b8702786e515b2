//! Reads of droplet answers, checked against their shapes when the configuration loads.
//!
//! A template that reads `health.data.owner` from an answer that has no `owner` fails only when a
//! user asks, with a generic apology. This pass walks each template's syntax tree (minijinja's
//! parser) the way rendering would, knowing for every query result the shape of its outcome
//! (`droplet`, `status`, `ok`, `data`, `error`, …) and, inside `data`, the shape the catalogue
//! declares for the endpoint. Every field read is resolved:
//!
//! - a field the shape does not have is an error ([`Code::UnknownField`]) with "did you mean";
//! - a field an answer may lack, or `data` read where the call may have failed, read without a
//!   guard (`is defined`, `| default`, `if o.ok`, a type test, `"key" in …`) is a warning
//!   ([`Code::UnguardedRead`]) that shows the guard to write;
//! - a field chosen while rendering (`info[key]`) cannot be checked and says so
//!   ([`Code::UncheckedRead`]); reads into an endpoint with no declared shape are listed once.
//!
//! Values follow the template: `{% set s = system.data %}`, loop variables over answer lists,
//! filters that keep a list's items (`selectattr`, `sort`, `first`, …) and arguments passed to
//! macros (the macro's body is walked with them, and problems are reported in the macro's file).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use minijinja::machinery::ast::{self, CallArg, Expr, Stmt};
use minijinja::syntax::SyntaxConfig;
use serde_json::{json, Value};

use super::schema::suggest;
use super::spec::{CallSpec, DropletRefSpec, FanOutSpec, PipelineSpec, StepSpec};
use crate::catalogue::{Catalogue, Droplet, Endpoint};
use crate::diagnostic::{Code, Diagnostic, Position};
use crate::shapes::{Field, Node, Shape};
use crate::statuses::Statuses;

/// Macros are walked with their arguments at most this deep (a macro calling itself stops).
const MAX_MACRO_DEPTH: usize = 6;

/// Marks the synthesised `data` node of an outcome (none when the call brought no data).
const OUTCOME_DATA: &str = "x-outcome-data";
/// Marks the result of a step with `when:` (none when the step did not run).
const SKIPPABLE: &str = "x-skippable";
/// Marks an answer whose endpoint declares no shape; the value names the endpoint.
const UNCHECKED: &str = "x-unchecked";
/// Marks a fan-out's summary; the value names the fan-out.
const SUMMARY_OF: &str = "x-summary-of";

/// What a query result holds, as a schema over its outcome: `answer` is the endpoint's
/// declared `response:` (none: not declared), `label` names it in messages. The fields are the
/// ones `steps/query.rs` (`Finished::template_value`) and [`crate::statuses::Tally`] give
/// templates; the tests below run real query steps and fail when the two differ.
pub struct ResultShape {
    pub outcome: Value,
}

impl ResultShape {
    /// One call's outcome (`as: health`), or a list of them for a fan-out.
    /// The result of a step that may be skipped (`when:`): none then.
    pub fn may_be_none(&mut self) {
        if let Some(Value::String(t)) = self.outcome.get("type").cloned() {
            self.outcome["type"] = json!([t, "null"]);
            self.outcome[SKIPPABLE] = json!(true);
        }
    }

    pub fn outcome(answer: Option<&Value>, label: &str, fan_out: bool) -> ResultShape {
        let data = match answer {
            Some(schema) => {
                let mut data = schema.clone();
                if let Value::Object(map) = &mut data {
                    let node = Node(schema);
                    let mut types = node.types().iter().map(|t| json!(t)).collect::<Vec<_>>();
                    // a schema without `type` still says what it holds through its keywords
                    if types.is_empty() {
                        if node.is_object() {
                            types.push(json!("object"));
                        }
                        if node.is_array() {
                            types.push(json!("array"));
                        }
                    }
                    // none when the call brought no data, whatever the answer's shape
                    if !types.contains(&json!("null")) {
                        types.push(json!("null"));
                        map.insert("type".into(), Value::Array(types));
                    }
                    map.insert(OUTCOME_DATA.into(), json!(label));
                }
                data
            }
            None => json!({ UNCHECKED: label, OUTCOME_DATA: label }),
        };
        let outcome = json!({
            "type": "object",
            "required": ["droplet", "endpoint", "method", "status", "ok", "data", "error", "relay_trace_id", "duration_ms",
                         "state", "icon", "reported", "label", "spoken", "problem"],
            "properties": {
                "droplet": {
                    "type": "object",
                    "required": ["id", "key", "name", "purpose"],
                    "properties": {
                        "id": {"type": "integer"},
                        "key": {"type": ["string", "null"]},
                        "name": {"type": "string"},
                        "purpose": {"type": "string"}
                    }
                },
                "endpoint": {"type": "string"},
                "method": {"type": "string"},
                "status": {"type": "string"},
                "ok": {"type": "boolean"},
                "data": data,
                "error": {
                    "type": ["object", "null"],
                    "required": ["kind", "message"],
                    "properties": {"kind": {"type": "string"}, "message": {"type": "string"}}
                },
                "relay_trace_id": {"type": ["string", "null"]},
                "duration_ms": {"type": "integer"},
                "state": {"type": "string"},
                "icon": {"type": "string"},
                "reported": {"type": "string"},
                "label": {"type": "string"},
                "spoken": {"type": "string"},
                "problem": {"type": ["string", "null"]}
            }
        });
        let outcome = if fan_out { json!({"type": "array", "items": outcome}) } else { outcome };
        ResultShape { outcome }
    }

    /// A fan-out's `<as>_summary` (see [`crate::statuses::Tally`]), given its outcomes' shape.
    pub fn summary(fan_out: &str, outcomes: &ResultShape, statuses: &Statuses) -> ResultShape {
        let names: Vec<&str> = statuses.states().iter().map(|s| s.name.as_str()).collect();
        let counts: serde_json::Map<String, Value> =
            names.iter().map(|n| (n.to_string(), json!({"type": "integer"}))).collect();
        let outcome = json!({
            "type": "object",
            SUMMARY_OF: fan_out,
            "required": ["total", "answered", "counts", "states", "unanswered", "problems"],
            "properties": {
                "total": {"type": "integer"},
                "answered": {"type": "integer"},
                "counts": {"type": "object", "required": names, "properties": counts},
                "states": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "icon", "label", "spoken", "answered", "count", "names"],
                        "properties": {
                            "name": {"type": "string"},
                            "icon": {"type": "string"},
                            "label": {"type": "string"},
                            "spoken": {"type": "string"},
                            "answered": {"type": "boolean"},
                            "count": {"type": "integer"},
                            // a state is listed only when some droplet is in it
                            "names": {"type": "array", "minItems": 1, "items": {"type": "string"}}
                        }
                    }
                },
                // the outcomes that brought no data: the fan-out's own items
                "unanswered": outcomes.outcome.clone(),
                "problems": {"type": "array", "items": {"type": "string"}}
            }
        });
        ResultShape { outcome }
    }
}

/// What the checks found: errors stop loading, warnings are printed by `check`; `unchecked`
/// names the endpoints read without a declared shape.
#[derive(Default)]
pub struct Findings {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    pub unchecked: BTreeSet<String>,
}

impl Findings {
    fn push(&mut self, diagnostic: Diagnostic) {
        let list = if diagnostic.code.is_warning() { &mut self.warnings } else { &mut self.errors };
        if !list
            .iter()
            .any(|d| d.file == diagnostic.file && d.position == diagnostic.position && d.message == diagnostic.message)
        {
            list.push(diagnostic);
        }
    }
}

/// The template files reads may lead into (macro libraries), by path under `templates/`.
pub struct Sources<'f> {
    pub get: &'f dyn Fn(&str) -> Option<&'f str>,
}

/// Every template and `when:` of a pipeline, each checked against the results of the steps
/// before it (a result is none until its step has run). `at` locates a JSON pointer in the
/// pipeline file.
pub fn check_pipeline(
    sources: &Sources<'_>,
    spec: &PipelineSpec,
    catalogue: &Catalogue,
    pipeline_file: &str,
    at: &dyn Fn(&str) -> Position,
    findings: &mut Findings,
) {
    let mut results: BTreeMap<String, ResultShape> = BTreeMap::new();
    // a `format` step with `when: C` ends the turn when C holds, so later steps run only when
    // it does not ("not registered.ok" answered, so `registered.data` is there afterwards)
    let mut answered_unless: Vec<String> = Vec::new();
    for (i, step) in spec.steps.iter().enumerate() {
        let context = Context { results: &results, answered_unless: &answered_unless };
        if let Some(condition) = &step.when {
            check_condition(sources, condition, &context, pipeline_file, at(&format!("/steps/{i}/when")), findings);
        }
        for template in templates_of(step) {
            let mut context = Context { results: &results, answered_unless: &answered_unless };
            // the step's own condition holds while its templates render
            let own: Vec<String>;
            if let Some(condition) = &step.when {
                own = answered_unless.iter().cloned().chain([format!("not ({condition})")]).collect();
                context.answered_unless = &own;
                check_template(sources, &template, &context, pipeline_file, findings);
            } else {
                check_template(sources, &template, &context, pipeline_file, findings);
            }
        }
        if let (Some(condition), Some(_)) = (&step.when, &step.format) {
            answered_unless.push(condition.clone());
        }
        if step.extract.is_some() || step.confirm.is_some() {
            // the turn may stop here and resume on the next message at this step: the steps
            // before do not run again, so their results are none then, and what an earlier
            // reply proved no longer holds
            for shape in results.values_mut() {
                shape.may_be_none();
            }
            answered_unless.clear();
        }
        if let Some(query) = &step.query {
            for (_, call) in query.calls() {
                let mut shape = result_shape(call, catalogue);
                let mut summary =
                    call.droplets.is_some().then(|| ResultShape::summary(&call.name, &shape, &catalogue.statuses));
                if step.when.is_some() {
                    // a query that may not run leaves its name none
                    shape.may_be_none();
                    if let Some(summary) = &mut summary {
                        summary.may_be_none();
                    }
                }
                results.insert(call.name.clone(), shape);
                if let Some(summary) = summary {
                    results.insert(crate::steps::summary_name(&call.name), summary);
                }
            }
        }
    }
}

/// The templates a step renders.
fn templates_of(step: &StepSpec) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(format) = &step.format {
        names.extend([format.chat.clone(), format.voice.clone()]);
    }
    if let Some(confirm) = &step.confirm {
        names.extend([confirm.chat.clone(), confirm.voice.clone()]);
        if let Some(declined) = &confirm.declined {
            names.extend([declined.chat.clone(), declined.voice.clone()]);
        }
    }
    if let Some(ask) = step.extract.as_ref().and_then(|e| e.ask.as_ref()) {
        names.extend([ask.chat.clone(), ask.voice.clone()]);
    }
    // a progress line renders before its own query's results are in
    if let Some(progress) = &step.progress {
        names.extend([progress.chat.clone(), progress.voice.clone()]);
    }
    names
}

/// What a call's result holds: the answer shape of every droplet it may ask (the same for all,
/// or their common fields), or unchecked when one of them declares none.
fn result_shape(call: &CallSpec, catalogue: &Catalogue) -> ResultShape {
    let offers = |d: &&Droplet| d.endpoint(&call.endpoint).is_some();
    let (asked, fan_out): (Vec<&Droplet>, bool) = match (&call.droplet, &call.droplets) {
        (Some(DropletRefSpec::Name(name)), _) if name.starts_with('$') => {
            (catalogue.droplets.iter().filter(offers).collect(), false)
        }
        (Some(DropletRefSpec::Id(id)), _) => (catalogue.by_id(*id).into_iter().collect(), false),
        (Some(DropletRefSpec::Name(name)), _) => (catalogue.by_name(name).into_iter().collect(), false),
        (None, Some(FanOutSpec::All(_))) => (catalogue.droplets.iter().filter(offers).collect(), true),
        (None, Some(FanOutSpec::List(list))) => (
            list.iter()
                .filter_map(|r| match r {
                    DropletRefSpec::Id(id) => catalogue.by_id(*id),
                    DropletRefSpec::Name(name) => catalogue.by_name(name),
                })
                .collect(),
            true,
        ),
        (None, None) => (Vec::new(), false),
    };
    let endpoints: Vec<(&Droplet, &Endpoint)> = asked
        .iter()
        .filter_map(|d| {
            let method = call.method.clone().or_else(|| d.endpoint(&call.endpoint).map(|e| e.method.clone()))?;
            d.endpoint_for(&call.endpoint, &method).map(|e| (*d, e))
        })
        .collect();
    let method = endpoints.first().map(|(_, e)| e.method.as_str()).unwrap_or("GET");
    let whose = match endpoints.as_slice() {
        [(d, _)] => format!("the {}'s", d.name),
        _ => "each droplet's".to_owned(),
    };
    let shapes: Vec<&Shape> = endpoints.iter().filter_map(|(_, e)| e.response.as_ref()).collect();
    if endpoints.is_empty() || shapes.len() < endpoints.len() {
        let missing: Vec<String> = endpoints
            .iter()
            .filter(|(_, e)| e.response.is_none())
            .map(|(d, e)| format!("{} {} {}", d.name, e.method, e.path))
            .collect();
        let label =
            if missing.is_empty() { format!("{whose} answer to {}", call.endpoint) } else { missing.join(", ") };
        return ResultShape::outcome(None, &label, fan_out);
    }
    let names: BTreeSet<Option<&str>> = shapes.iter().map(|s| s.name.as_deref()).collect();
    let shape_note = match names.iter().next() {
        Some(Some(name)) if names.len() == 1 => format!(" (shape `{name}`)"),
        _ => String::new(),
    };
    let label = format!("{whose} answer to {method} {}{shape_note}", call.endpoint);
    let schema = common_shape(&shapes);
    ResultShape::outcome(Some(&schema), &label, fan_out)
}

/// The one schema several droplets' answers share, or an object of the fields they declare,
/// each sure only when every one of them has it.
fn common_shape(shapes: &[&Shape]) -> Value {
    let first = shapes[0].schema();
    if shapes.iter().all(|s| s.schema() == first) {
        return first.clone();
    }
    let mut properties = serde_json::Map::new();
    let mut required: Option<BTreeSet<String>> = None;
    for shape in shapes {
        let root = shape.root();
        for (name, node, _) in root.fields() {
            properties.entry(name.to_owned()).or_insert_with(|| node.0.clone());
        }
        let sure: BTreeSet<String> = root.fields().into_iter().filter(|f| f.2).map(|f| f.0.to_owned()).collect();
        required = Some(match required {
            None => sure,
            Some(before) => before.intersection(&sure).cloned().collect(),
        });
    }
    json!({"type": "object", "properties": properties, "required": required.unwrap_or_default()})
}

/// What a template or condition sees: the results so far, and the conditions known false
/// (earlier replies that would have ended the turn).
pub struct Context<'c> {
    pub results: &'c BTreeMap<String, ResultShape>,
    pub answered_unless: &'c [String],
}

/// Checks one template file against the results a pipeline gives it.
pub fn check_template(
    sources: &Sources<'_>,
    name: &str,
    context: &Context<'_>,
    pipeline_file: &str,
    findings: &mut Findings,
) {
    let Some(source) = (sources.get)(name) else { return };
    let Ok(tree) = minijinja::machinery::parse(source, name, SyntaxConfig::default()) else {
        return; // a template that does not parse is reported by the loader already
    };
    let mut walker = Walker::new(sources, name, source, pipeline_file, findings);
    walker.enter(context);
    walker.stmt(&tree);
}

/// Checks a `when:` condition; problems are located at `at` in the pipeline file.
pub fn check_condition(
    sources: &Sources<'_>,
    condition: &str,
    context: &Context<'_>,
    pipeline_file: &str,
    at: Position,
    findings: &mut Findings,
) {
    let Ok(expr) = minijinja::machinery::parse_expr(condition) else { return };
    let mut walker = Walker::new(sources, pipeline_file, condition, pipeline_file, findings);
    walker.fixed_position = Some(at);
    walker.enter(context);
    let value = walker.expr(&expr);
    walker.use_value(&value, expr.span());
}

/// A value the walk follows: a place inside a result's shape, or something it does not track.
#[derive(Clone)]
enum Abs {
    Untracked,
    Tracked(Rc<Place>),
}

struct Place {
    /// The schema of this place.
    node: Value,
    /// How the template spells it (`health.data.status`), for guards and messages.
    path: String,
    /// The first link on the way here that may be missing or none and was not guarded.
    weak: Option<WeakLink>,
    /// Whose answer this is part of ("the Registry's answer to GET /health"), inside `data`.
    label: Option<Rc<str>>,
    /// How it was spelt before `{% set %}` renamed it (`health.data` for `d`): guards written
    /// on the original hold for the new name too.
    origin: Option<String>,
}

/// Why a read may fail: `path` may be undefined (a guard `path is defined` proves it is not),
/// because `cause` may be missing or none (for a missing field, the two are the same).
#[derive(Clone)]
struct WeakLink {
    path: String,
    cause: String,
    why: Why,
}

#[derive(Clone, PartialEq)]
enum Why {
    /// A field not every answer has.
    MayBeMissing { answer: String },
    /// An outcome's `data` when the call brought none.
    NoDataWhenFailed { result: String },
    /// A field whose type allows none.
    MayBeNone,
    /// The result of a step that has a `when:` and may not have run.
    StepMayNotRun,
    /// An element of a list that may be empty (`[0]`, `| first`).
    MayBeEmpty,
}

/// What a condition being true (or false) proves about a path.
#[derive(Clone, Copy, Default)]
struct Guard {
    /// It exists.
    defined: bool,
    /// It is not none.
    not_none: bool,
    /// It is a list with something in it (it was tested for truth, or its length).
    non_empty: bool,
}

#[derive(Default)]
struct Frame {
    vars: HashMap<String, Abs>,
    guards: HashMap<String, Guard>,
}

/// Where to find a macro: the library file it lives in, or this file.
#[derive(Clone)]
enum MacroHome {
    /// `{% import "file" as alias %}`: the alias's file.
    Module(String),
    /// `{% from "file" import name %}` or a macro defined here: (file, macro name).
    Name(String, String),
}

struct Walker<'s, 'f> {
    sources: &'s Sources<'f>,
    file: String,
    source: &'s str,
    pipeline_file: &'s str,
    /// Conditions are one line of YAML: every problem is reported at the condition.
    fixed_position: Option<Position>,
    /// Names macros and modules are known under in this file.
    macros: HashMap<String, MacroHome>,
    frames: Vec<Frame>,
    depth: usize,
    /// How a macro was reached, for messages: "when droplet_status/chat.md.j2 passes `health`".
    via: Option<String>,
    findings: &'s mut Findings,
}

impl<'s, 'f> Walker<'s, 'f> {
    fn new(
        sources: &'s Sources<'f>,
        file: &str,
        source: &'s str,
        pipeline_file: &'s str,
        findings: &'s mut Findings,
    ) -> Self {
        Walker {
            sources,
            file: file.to_owned(),
            source,
            pipeline_file,
            fixed_position: None,
            macros: HashMap::new(),
            frames: vec![Frame::default()],
            depth: 0,
            via: None,
            findings,
        }
    }

    /// Binds the results and takes the known-false conditions as guards.
    fn enter(&mut self, context: &Context<'_>) {
        for (name, shape) in context.results {
            let place =
                Place { node: shape.outcome.clone(), path: name.clone(), weak: None, label: None, origin: None };
            self.frames[0].vars.insert(name.clone(), Abs::Tracked(Rc::new(place)));
        }
        for condition in context.answered_unless {
            if let Ok(expr) = minijinja::machinery::parse_expr(condition) {
                let guards = self.guards(&expr, false);
                for (path, guard) in guards {
                    let entry = self.frames[0].guards.entry(path).or_default();
                    entry.defined |= guard.defined;
                    entry.not_none |= guard.not_none;
                    entry.non_empty |= guard.non_empty;
                }
            }
        }
    }

    // ---- scopes

    fn lookup(&self, name: &str) -> Abs {
        self.frames.iter().rev().find_map(|f| f.vars.get(name).cloned()).unwrap_or(Abs::Untracked)
    }

    fn bind(&mut self, name: &str, value: Abs) {
        if let Some(frame) = self.frames.last_mut() {
            frame.vars.insert(name.to_owned(), value);
        }
    }

    fn guard_of(&self, path: &str) -> Guard {
        let mut found = Guard::default();
        for frame in &self.frames {
            if let Some(g) = frame.guards.get(path) {
                found.defined |= g.defined;
                found.not_none |= g.not_none;
                found.non_empty |= g.non_empty;
            }
        }
        found
    }

    fn with_guards<R>(&mut self, guards: Vec<(String, Guard)>, walk: impl FnOnce(&mut Self) -> R) -> R {
        let mut frame = Frame::default();
        for (path, guard) in guards {
            let entry = frame.guards.entry(path).or_default();
            entry.defined |= guard.defined;
            entry.not_none |= guard.not_none;
            entry.non_empty |= guard.non_empty;
        }
        self.frames.push(frame);
        let result = walk(self);
        // `{% set %}` inside an `{% if %}` is seen after it (Jinja scoping): keep what it bound
        if let Some(frame) = self.frames.pop() {
            for (name, value) in frame.vars {
                if matches!(value, Abs::Tracked(_)) || self.lookup(&name).is_untracked() {
                    self.bind(&name, value);
                }
            }
        }
        result
    }

    // ---- positions and reports

    fn position(&self, span: ast_span::Span) -> Position {
        if let Some(at) = self.fixed_position {
            return at;
        }
        Position { line: span.start_line as u32, column: span.start_col as u32 + 1 }
    }

    fn context_note(&self) -> String {
        match &self.via {
            Some(via) => format!(" (when {via})"),
            None => String::new(),
        }
    }

    fn report(&mut self, mut diagnostic: Diagnostic) {
        if self.fixed_position.is_none() {
            // templates are named relative to templates/; diagnostics name the file
            diagnostic.file = format!("templates/{}", diagnostic.file);
        }
        self.findings.push(diagnostic);
    }

    // ---- statements

    fn stmts(&mut self, stmts: &[Stmt<'_>]) {
        for stmt in stmts {
            self.stmt(stmt);
        }
    }

    fn stmt(&mut self, stmt: &Stmt<'_>) {
        match stmt {
            Stmt::Template(t) => {
                // macros may be called before they are defined
                for child in &t.children {
                    self.declare_macros(child);
                }
                self.stmts(&t.children);
            }
            Stmt::EmitExpr(e) => {
                let value = self.expr(&e.expr);
                self.use_value(&value, e.expr.span());
            }
            Stmt::EmitRaw(_) => {}
            Stmt::ForLoop(f) => self.for_loop(f),
            Stmt::IfCond(i) => {
                let condition = self.expr(&i.expr);
                self.use_value(&condition, i.expr.span());
                let (yes, no) = (self.guards(&i.expr, true), self.guards(&i.expr, false));
                self.with_guards(yes, |w| w.stmts(&i.true_body));
                self.with_guards(no, |w| w.stmts(&i.false_body));
            }
            Stmt::WithBlock(w) => {
                let values: Vec<(String, Abs)> = w
                    .assignments
                    .iter()
                    .filter_map(|(target, expr)| match target {
                        Expr::Var(v) => Some((v.id.to_owned(), self.expr(expr))),
                        _ => None,
                    })
                    .collect();
                self.frames.push(Frame::default());
                for (name, value) in values {
                    let value = self.renamed(value, &name);
                    self.bind(&name, value);
                }
                self.stmts(&w.body);
                self.frames.pop();
            }
            Stmt::Set(s) => {
                let value = self.expr(&s.expr);
                if let Expr::Var(v) = &s.target {
                    let value = self.renamed(value, v.id);
                    self.bind(v.id, value);
                }
            }
            Stmt::SetBlock(s) => {
                self.stmts(&s.body);
                if let Expr::Var(v) = &s.target {
                    self.bind(v.id, Abs::Untracked);
                }
            }
            Stmt::AutoEscape(a) => self.stmts(&a.body),
            Stmt::FilterBlock(f) => self.stmts(&f.body),
            Stmt::Block(b) => self.stmts(&b.body),
            Stmt::Import(i) => {
                if let (Some(file), Expr::Var(alias)) = (const_str(&i.expr), &i.name) {
                    self.macros.insert(alias.id.to_owned(), MacroHome::Module(file));
                }
            }
            Stmt::FromImport(i) => {
                if let Some(file) = const_str(&i.expr) {
                    for (name, alias) in &i.names {
                        if let Expr::Var(name) = name {
                            let local = match alias {
                                Some(Expr::Var(a)) => a.id,
                                _ => name.id,
                            };
                            self.macros.insert(local.to_owned(), MacroHome::Name(file.clone(), name.id.to_owned()));
                        }
                    }
                }
            }
            Stmt::Extends(_) | Stmt::Include(_) => {}
            Stmt::Macro(_) => {} // walked when called, with what it is given
            Stmt::CallBlock(c) => {
                self.call(&c.call);
                self.stmts(&c.macro_decl.body);
            }
            Stmt::Do(d) => {
                self.call(&d.call);
            }
            // `break` / `continue`, when minijinja is built with loop controls
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    fn declare_macros(&mut self, stmt: &Stmt<'_>) {
        if let Stmt::Macro(m) = stmt {
            self.macros.insert(m.name.to_owned(), MacroHome::Name(self.file.clone(), m.name.to_owned()));
        }
    }

    fn for_loop(&mut self, f: &ast::ForLoop<'_>) {
        let iterated = self.expr(&f.iter);
        self.use_container(&iterated, f.iter.span());
        let item = match &iterated {
            Abs::Tracked(place) => match Node(&place.node).items() {
                Some(items) => Abs::Tracked(Rc::new(Place {
                    node: items.0.clone(),
                    path: String::new(),
                    weak: None,
                    label: place.label.clone(),
                    origin: None,
                })),
                None => Abs::Untracked,
            },
            Abs::Untracked => Abs::Untracked,
        };
        self.frames.push(Frame::default());
        match &f.target {
            Expr::Var(v) => {
                let item = self.renamed(item, v.id);
                self.bind(v.id, item);
            }
            Expr::Tuple(t) => {
                for target in &t.items {
                    if let Expr::Var(v) = target {
                        self.bind(v.id, Abs::Untracked);
                    }
                }
            }
            _ => {}
        }
        let guards = match &f.filter_expr {
            Some(filter) => {
                let value = self.expr(filter);
                self.use_value(&value, filter.span());
                self.guards(filter, true)
            }
            None => Vec::new(),
        };
        self.with_guards(guards, |w| w.stmts(&f.body));
        self.frames.pop();
        self.stmts(&f.else_body);
    }

    /// A value under a new name (`set s = system.data`): reads from `s` are spelled `s.…`, and
    /// what the guards around the assignment proved stays proved.
    fn renamed(&self, value: Abs, name: &str) -> Abs {
        match value {
            Abs::Tracked(place) => {
                let guard = self.guard_of(&place.path);
                let weak = place.weak.as_ref().filter(|w| !self.discharged(w)).map(|w| {
                    let rename = |p: &String| if *p == place.path { name.to_owned() } else { p.clone() };
                    WeakLink { path: rename(&w.path), cause: rename(&w.cause), why: w.why.clone() }
                });
                let origin = place.origin.clone().or_else(|| Some(place.path.clone())).filter(|o| !o.is_empty());
                Abs::Tracked(Rc::new(Place {
                    node: settled(&place.node, guard),
                    path: name.to_owned(),
                    weak,
                    label: place.label.clone(),
                    origin,
                }))
            }
            Abs::Untracked => Abs::Untracked,
        }
    }

    // ---- expressions

    /// What `expr` evaluates to. Reads of unknown fields are reported on the way; whether a
    /// missing value is a problem is for the caller to say (`use_value`, or a lenient test).
    fn expr(&mut self, expr: &Expr<'_>) -> Abs {
        match expr {
            Expr::Var(v) => self.lookup(v.id),
            Expr::Const(_) => Abs::Untracked,
            Expr::GetAttr(g) => {
                let base = self.expr(&g.expr);
                let span = g.span();
                self.field(&base, g.name, span)
            }
            Expr::GetItem(g) => {
                let base = self.expr(&g.expr);
                let key = match &g.subscript_expr {
                    Expr::Const(c) => {
                        c.value.as_str().map(str::to_owned).or_else(|| c.value.as_i64().map(|i| i.to_string()))
                    }
                    _ => None,
                };
                match key {
                    Some(key) if key.parse::<i64>().is_ok() => self.element(&base, &key),
                    Some(key) => self.field(&base, &key, g.span()),
                    None => {
                        let subscript = self.expr(&g.subscript_expr);
                        self.use_value(&subscript, g.subscript_expr.span());
                        if let Abs::Tracked(place) = &base {
                            if Node(&place.node).is_object() && !is_unchecked(&place.node) {
                                let position = self.position(g.span());
                                let note = self.context_note();
                                self.report(
                                    Diagnostic::new(
                                        Code::UncheckedRead,
                                        &self.file,
                                        position,
                                        format!("`{}[…]` reads a field chosen while rendering, so it cannot be checked against the answer's shape{note}", place.path),
                                    )
                                    .with_help(format!("read each field by name, e.g. `{}.{}`", place.path, Node(&place.node).fields().first().map(|f| f.0).unwrap_or("status"))),
                                );
                            } else if Node(&place.node).is_array() {
                                return self.element(&base, "…");
                            }
                        }
                        Abs::Untracked
                    }
                }
            }
            Expr::Slice(s) => {
                let base = self.expr(&s.expr);
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part);
                }
                base
            }
            Expr::UnaryOp(u) => {
                let value = self.expr(&u.expr);
                self.use_value(&value, u.expr.span());
                Abs::Untracked
            }
            Expr::BinOp(b) => self.bin_op(b),
            Expr::Compare(c) => {
                let left = self.expr(&c.expr);
                let mut lenient = vec![(left, c.expr.span())];
                for op in &c.ops {
                    let right = self.expr(&op.expr);
                    if matches!(op.op, ast::CompareOpKind::In | ast::CompareOpKind::NotIn) {
                        self.use_container(&right, op.expr.span());
                    }
                    lenient.push((right, op.expr.span()));
                }
                // strict mode: comparing an undefined value fails
                for (value, span) in &lenient {
                    self.use_value(value, *span);
                }
                Abs::Untracked
            }
            Expr::IfExpr(i) => {
                let test = self.expr(&i.test_expr);
                self.use_value(&test, i.test_expr.span());
                let (yes, no) = (self.guards(&i.test_expr, true), self.guards(&i.test_expr, false));
                let chosen = self.with_guards(yes, |w| w.expr(&i.true_expr));
                let other = match &i.false_expr {
                    Some(e) => self.with_guards(no, |w| w.expr(e)),
                    None => Abs::Untracked,
                };
                if chosen.is_untracked() {
                    other
                } else {
                    chosen
                }
            }
            Expr::Filter(f) => self.filter(f),
            Expr::Test(t) => {
                let value = self.expr(&t.expr);
                self.use_leniently(&value, t.expr.span());
                self.args(&t.args);
                Abs::Untracked
            }
            Expr::Call(c) => self.call(c),
            Expr::List(l) => {
                for item in &l.items {
                    self.expr(item);
                }
                Abs::Untracked
            }
            Expr::Tuple(t) => {
                for item in &t.items {
                    self.expr(item);
                }
                Abs::Untracked
            }
            Expr::Map(m) => {
                for item in m.keys.iter().chain(&m.values) {
                    self.expr(item);
                }
                Abs::Untracked
            }
        }
    }

    fn bin_op(&mut self, b: &ast::BinOp<'_>) -> Abs {
        use ast::BinOpKind as Op;
        match b.op {
            Op::ScAnd => {
                let left = self.expr(&b.left);
                self.use_value(&left, b.left.span());
                let guards = self.guards(&b.left, true);
                let right = self.with_guards(guards, |w| w.expr(&b.right));
                self.use_value(&right, b.right.span());
                Abs::Untracked
            }
            Op::ScOr => {
                let left = self.expr(&b.left);
                self.use_value(&left, b.left.span());
                let guards = self.guards(&b.left, false);
                let right = self.with_guards(guards, |w| w.expr(&b.right));
                self.use_value(&right, b.right.span());
                Abs::Untracked
            }
            Op::In => {
                // `"key" in x`: a missing key is fine, a missing or none `x` is not, and in
                // strict mode neither is a missing needle
                let left = self.expr(&b.left);
                let right = self.expr(&b.right);
                self.use_value(&left, b.left.span());
                self.use_container(&right, b.right.span());
                Abs::Untracked
            }
            Op::Eq | Op::Ne | Op::Lt | Op::Lte | Op::Gt | Op::Gte => {
                // strict mode: comparing an undefined value fails (comparing none does not)
                let left = self.expr(&b.left);
                let right = self.expr(&b.right);
                self.use_value(&left, b.left.span());
                self.use_value(&right, b.right.span());
                Abs::Untracked
            }
            _ => {
                // arithmetic and `~` on none fail or print "none"
                let left = self.expr(&b.left);
                let right = self.expr(&b.right);
                self.use_container(&left, b.left.span());
                self.use_container(&right, b.right.span());
                Abs::Untracked
            }
        }
    }

    fn args(&mut self, args: &[CallArg<'_>]) -> Vec<Abs> {
        args.iter()
            .map(|arg| match arg {
                CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => self.expr(e),
            })
            .collect()
    }

    fn filter(&mut self, f: &ast::Filter<'_>) -> Abs {
        let Some(input_expr) = &f.expr else {
            self.args(&f.args);
            return Abs::Untracked;
        };
        let input = self.expr(input_expr);
        let span = input_expr.span();
        self.args(&f.args);
        match f.name {
            // the guard filter: a missing value becomes the default
            "default" | "d" => {
                self.use_leniently(&input, span);
                match input {
                    Abs::Tracked(place) => Abs::Tracked(Rc::new(Place {
                        node: place.node.clone(),
                        path: place.path.clone(),
                        weak: None,
                        label: place.label.clone(),
                        origin: place.origin.clone(),
                    })),
                    Abs::Untracked => Abs::Untracked,
                }
            }
            // filters that keep the list's items
            "selectattr" | "rejectattr" | "sort" | "unique" | "reverse" | "list" | "batch" | "slice" => {
                self.use_container(&input, span);
                let attribute = match f.name {
                    "selectattr" | "rejectattr" => f.args.first().and_then(pos_const_str),
                    _ => kwarg_const_str(&f.args, "attribute"),
                };
                if let Some(attribute) = &attribute {
                    let item = self.element(&input, "…");
                    self.field_leniently(&item, attribute, span);
                }
                if matches!(f.name, "batch" | "slice") {
                    return Abs::Untracked;
                }
                // `selectattr("name")`, `selectattr("name", "defined")`, `… "equalto", "x")`:
                // every item kept has the field
                let test = f.args.get(1).and_then(pos_const_str);
                let keeps_present = f.name == "selectattr"
                    && !matches!(test.as_deref(), Some("none" | "undefined" | "false" | "falsy" | "sameas"));
                match (&input, attribute) {
                    (Abs::Tracked(place), Some(attribute)) if keeps_present => Abs::Tracked(Rc::new(Place {
                        node: with_field_present(&place.node, &attribute),
                        ..clone_place(place)
                    })),
                    _ => input,
                }
            }
            "first" | "last" | "random" => {
                self.use_container(&input, span);
                self.element(&input, if f.name == "last" { "-1" } else { "0" })
            }
            "map" => {
                self.use_container(&input, span);
                match kwarg_const_str(&f.args, "attribute") {
                    Some(attribute) => {
                        let item = self.element(&input, "…");
                        match self.field(&item, &attribute, span) {
                            Abs::Tracked(field) => Abs::Tracked(Rc::new(Place {
                                node: json!({"type": "array", "items": field.node}),
                                path: format!("{}|map", field.path),
                                weak: None,
                                label: field.label.clone(),
                                origin: None,
                            })),
                            Abs::Untracked => Abs::Untracked,
                        }
                    }
                    None => Abs::Untracked,
                }
            }
            // printing none as JSON or text is fine; a missing value still fails
            "tojson" | "string" | "safe" | "e" | "escape" => {
                self.use_value(&input, span);
                Abs::Untracked
            }
            _ => {
                self.use_container(&input, span);
                Abs::Untracked
            }
        }
    }

    /// A function or macro call; a macro is walked with the values it is given.
    fn call(&mut self, c: &ast::Call<'_>) -> Abs {
        let args = self.args(&c.args);
        let target = match c.identify_call() {
            ast::CallType::Function(name) => match self.macros.get(name) {
                Some(MacroHome::Name(file, name)) => Some((file.clone(), name.clone())),
                _ => None,
            },
            ast::CallType::Method(Expr::Var(module), name) => match self.macros.get(module.id) {
                Some(MacroHome::Module(file)) => Some((file.clone(), name.to_owned())),
                _ => None,
            },
            ast::CallType::Method(base, _) => {
                self.expr(base);
                None
            }
            _ => None,
        };
        let Some((file, name)) = target else { return Abs::Untracked };
        if self.depth >= MAX_MACRO_DEPTH || args.iter().all(Abs::is_untracked) {
            return Abs::Untracked;
        }
        let Some(source) = (self.sources.get)(&file) else { return Abs::Untracked };
        let Ok(tree) = minijinja::machinery::parse(source, &file, SyntaxConfig::default()) else {
            return Abs::Untracked;
        };
        let Stmt::Template(template) = &tree else { return Abs::Untracked };
        let Some(declaration) = template.children.iter().find_map(|s| match s {
            Stmt::Macro(m) if m.name == name => Some(m),
            _ => None,
        }) else {
            return Abs::Untracked;
        };
        let passed: Vec<String> = c
            .args
            .iter()
            .filter_map(|a| match a {
                CallArg::Pos(e) => Some(&self.source[span_range(e.span(), self.source)]),
                _ => None,
            })
            .map(str::to_owned)
            .collect();
        let via =
            self.via.clone().unwrap_or_else(|| format!("{} passes `{}` to `{name}`", self.file, passed.join("`, `")));
        let mut inner = Walker::new(self.sources, &file, source, self.pipeline_file, self.findings);
        inner.depth = self.depth + 1;
        inner.via = Some(via);
        for child in &template.children {
            inner.declare_macros(child);
            if let Stmt::Import(_) | Stmt::FromImport(_) = child {
                inner.stmt(child);
            }
        }
        for (k, param) in declaration.args.iter().enumerate() {
            if let Expr::Var(v) = param {
                let value = args.get(k).cloned().unwrap_or(Abs::Untracked);
                let value = inner.renamed(value, v.id);
                inner.bind(v.id, value);
            }
        }
        inner.stmts(&declaration.body);
        Abs::Untracked
    }

    // ---- reading fields

    fn field(&mut self, base: &Abs, name: &str, span: ast_span::Span) -> Abs {
        self.read(base, name, span, false)
    }

    fn field_leniently(&mut self, base: &Abs, name: &str, span: ast_span::Span) -> Abs {
        self.read(base, name, span, true)
    }

    /// `base.name`: its place in the shape, or an unknown-field error. `lenient` is for names
    /// given to filters (`selectattr("status")`), where a missing field is no error at runtime.
    fn read(&mut self, base: &Abs, name: &str, span: ast_span::Span, lenient: bool) -> Abs {
        let Abs::Tracked(place) = base else { return Abs::Untracked };
        let node = Node(&place.node);
        if let Some(label) = place.node.get(UNCHECKED).and_then(Value::as_str) {
            self.findings.unchecked.insert(label.to_owned());
            return Abs::Untracked;
        }
        let path = join(&place.path, name);
        // reading through something that may be missing or none
        let path_for_weak = path.clone();
        let through = self.weak_here(place, &path_for_weak);
        if !node.is_object() {
            if node.is_typed() && !node.is_array() && !lenient {
                let position = self.position(span);
                let note = self.context_note();
                let kind = node.type_label();
                self.report(
                    Diagnostic::new(
                        Code::UnknownField,
                        &self.file,
                        position,
                        format!(
                            "`{path}` reads a field of `{}`, which is {kind}, not an object with fields{note}",
                            place.path
                        ),
                    )
                    .with_help(format!("print `{}` itself", place.path)),
                );
            }
            return Abs::Untracked;
        }
        let (child, required) = match node.field(name) {
            Field::Declared { node, required } => (node.0.clone(), required),
            Field::Entry(node) => (node.0.clone(), false),
            Field::Unknown => {
                self.unknown_field(place, name, &path, span);
                return Abs::Untracked;
            }
        };
        let guard = self.guard_of(&path);
        let label: Option<Rc<str>> = place.label.clone().or_else(|| answer_label(&child).map(Rc::from));
        let weak = through.or_else(|| {
            if !required && !guard.defined && !lenient {
                let answer = place.label.as_deref().unwrap_or("the answer").to_owned();
                Some(WeakLink { path: path.clone(), cause: path.clone(), why: Why::MayBeMissing { answer } })
            } else {
                None
            }
        });
        Abs::Tracked(Rc::new(Place { node: settled(&child, guard), path, weak, label, origin: None }))
    }

    /// What may go wrong reading `child` from `place`: `place` may itself be undefined (a weak
    /// link on the way, so the read fails), or none (an outcome's data when the call failed, a
    /// nullable field), which makes `child` undefined.
    fn weak_here(&self, place: &Place, child: &str) -> Option<WeakLink> {
        if let Some(weak) = place.weak.as_ref().filter(|w| !self.discharged(w)) {
            return Some(weak.clone());
        }
        self.none_link(place).map(|link| WeakLink { path: child.to_owned(), ..link })
    }

    /// `place` may be none and no guard says it is not.
    fn none_link(&self, place: &Place) -> Option<WeakLink> {
        if !Node(&place.node).may_be_null() || self.guarded(place, |g| g.not_none) {
            return None;
        }
        let cause = place.origin.clone().unwrap_or_else(|| place.path.clone());
        let why = if place.node.get(OUTCOME_DATA).is_some() {
            Why::NoDataWhenFailed { result: cause.trim_end_matches(".data").to_owned() }
        } else if place.node.get(SKIPPABLE).is_some() {
            Why::StepMayNotRun
        } else {
            Why::MayBeNone
        };
        Some(WeakLink { path: place.path.clone(), cause, why })
    }

    /// Whether a guard on `place` (under its name or the one it was read as) proves `what`.
    fn guarded(&self, place: &Place, what: impl Fn(Guard) -> bool) -> bool {
        what(self.guard_of(&place.path)) || place.origin.as_deref().is_some_and(|o| what(self.guard_of(o)))
    }

    /// One element of a list (`items[0]`, a loop variable, `| first`).
    fn element(&mut self, base: &Abs, index: &str) -> Abs {
        let Abs::Tracked(place) = base else { return Abs::Untracked };
        match Node(&place.node).items() {
            Some(items) => {
                let path = format!("{}[{index}]", place.path);
                // `[0]`, `| first` of an empty list is undefined; a loop's item (`…`) is not, nor
                // the first of a list whose shape says it is never empty (`minItems`)
                let never_empty =
                    matches!(index, "0" | "-1") && place.node.get("minItems").and_then(Value::as_u64).unwrap_or(0) >= 1;
                let empty = (index != "…" && !never_empty && !self.guarded(place, |g| g.non_empty)).then(|| WeakLink {
                    path: path.clone(),
                    cause: place.origin.clone().unwrap_or_else(|| place.path.clone()),
                    why: Why::MayBeEmpty,
                });
                let weak = self.weak_here(place, &path).or(empty);
                Abs::Tracked(Rc::new(Place {
                    node: items.0.clone(),
                    path,
                    weak,
                    label: place.label.clone(),
                    origin: None,
                }))
            }
            None => Abs::Untracked,
        }
    }

    fn unknown_field(&mut self, place: &Place, name: &str, path: &str, span: ast_span::Span) {
        let node = Node(&place.node);
        let fields: Vec<&str> = node.fields().into_iter().map(|(n, _, _)| n).collect();
        let what = match place.label.as_deref() {
            Some(label) if place.node.get(OUTCOME_DATA).is_some() => label.to_owned(),
            Some(label) => format!("`{}` in {label}", place.path),
            None if place.path.contains('.') || place.path.contains('[') => format!("`{}`", place.path),
            None => match place.node.get(SUMMARY_OF).and_then(Value::as_str) {
                Some(fan_out) => format!("`{}`, the summary of the fan-out `{fan_out}`,", place.path),
                None => format!("the query result `{}`", place.path),
            },
        };
        let position = self.position_of_field(span, name);
        let note = self.context_note();
        let mut diagnostic = Diagnostic::new(
            Code::UnknownField,
            &self.file,
            position,
            format!("`{path}`: {what} has no field `{name}`{note}"),
        );
        let listing = if fields.is_empty() { "none".to_owned() } else { fields.join(", ") };
        diagnostic = match suggest(name, fields.iter().copied()) {
            Some(best) => diagnostic.with_help(format!("did you mean `{}`? Its fields: {listing}", join(&place.path, best))),
            None if place.node.get(OUTCOME_DATA).is_some() => diagnostic.with_help(format!(
                "its fields: {listing}; if real answers have `{name}`, add it to the endpoint's `response:` in catalogue/droplets.yaml"
            )),
            None if place.node.get("properties").and_then(|p| p.get("data")).is_some() => diagnostic.with_help(format!(
                "a query result has: {listing}; the droplet's answer is under `{}.data`",
                place.path
            )),
            None => diagnostic.with_help(format!("its fields: {listing}")),
        };
        self.report(diagnostic);
    }

    /// Where `name` is written in the expression at `span`: as `.name`, or quoted (a filter's
    /// attribute, a subscript).
    fn position_of_field(&self, span: ast_span::Span, name: &str) -> Position {
        if let Some(at) = self.fixed_position {
            return at;
        }
        let start = (span.start_offset as usize).min(self.source.len());
        let rest = self.source.get(start..).unwrap_or_default();
        let found = [format!(".{name}"), format!("\"{name}\""), format!("'{name}'")]
            .iter()
            .filter_map(|written| rest.find(written.as_str()).map(|at| at + 1))
            .min();
        match found {
            Some(at) => {
                let before = &self.source[..start + at];
                let line = before.matches('\n').count() as u32 + 1;
                let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
                Position { line, column: before[line_start..].chars().count() as u32 + 1 }
            }
            None => self.position(span),
        }
    }

    // ---- uses

    /// `value` is printed, iterated, tested for truth or computed with: a weak link fails here.
    fn use_value(&mut self, value: &Abs, span: ast_span::Span) {
        let Abs::Tracked(place) = value else { return };
        let weak = place.weak.clone().filter(|w| !self.discharged(w));
        if let Some(weak) = weak {
            self.unguarded(&place.path, &weak, span);
        }
    }

    /// `value` is tested (`is defined`, `is string`), compared or given a default: only a weak
    /// link *before* it fails here.
    fn use_leniently(&mut self, value: &Abs, span: ast_span::Span) {
        let Abs::Tracked(place) = value else { return };
        let weak = place.weak.clone().filter(|w| w.path != place.path && !self.discharged(w));
        if let Some(weak) = weak {
            self.unguarded(&place.path, &weak, span);
        }
    }

    fn discharged(&self, weak: &WeakLink) -> bool {
        self.guard_of(&weak.path).defined
            || match weak.why {
                Why::MayBeMissing { .. } => false,
                Why::MayBeEmpty => self.guard_of(&weak.cause).non_empty,
                _ => self.guard_of(&weak.cause).not_none,
            }
    }

    /// `value` is iterated, searched (`in`), computed with or given to a filter: besides a weak
    /// link, it must not be none itself.
    fn use_container(&mut self, value: &Abs, span: ast_span::Span) {
        self.use_value(value, span);
        let Abs::Tracked(place) = value else { return };
        if place.weak.as_ref().is_some_and(|w| !self.discharged(w)) {
            return; // already said
        }
        if let Some(link) = self.none_link(place) {
            self.unguarded(&place.path, &link, span);
        }
    }

    fn unguarded(&mut self, read: &str, weak: &WeakLink, span: ast_span::Span) {
        let position = self.position(span);
        let note = self.context_note();
        let link = &weak.cause;
        let (message, help) = match &weak.why {
            Why::MayBeMissing { answer } => {
                (
                    if read == link {
                        format!("`{read}` may be missing from {answer}, and using it then fails the reply{note}")
                    } else {
                        format!("`{read}` fails when `{link}` is missing from {answer}{note}")
                    },
                    if read == link {
                        format!("guard it: `{{% if {link} is defined %}}…{{% endif %}}`, or write `{link} | default(\"—\")`")
                    } else {
                        format!("guard it: `{{% if {link} is defined %}}…{{% endif %}}`")
                    },
                )
            }
            Why::NoDataWhenFailed { result } => (
                format!("`{read}` is read where the call may have brought no data (`{link}` is none then){note}"),
                format!("read it inside `{{% if {result}.ok %}}…{{% endif %}}`"),
            ),
            Why::MayBeNone => (
                format!("`{read}` fails when `{link}` is none, which its shape allows{note}"),
                format!("guard it: `{{% if {link} is not none %}}…{{% endif %}}`"),
            ),
            Why::MayBeEmpty => (
                format!("`{read}` fails when `{link}` is empty{note}"),
                format!("guard it: `{{% if {link} %}}…{{% endif %}}` is true only when the list has something in it"),
            ),
            Why::StepMayNotRun => (
                format!("`{read}` fails when the step that makes `{link}` did not run (it has a `when:`), because `{link}` is none then{note}"),
                format!("guard it: `{{% if {link} and {read} %}}`, or `{{% if {link} is not none %}}…{{% endif %}}`"),
            ),
        };
        self.report(Diagnostic::new(Code::UnguardedRead, &self.file, position, message).with_help(help));
    }

    // ---- guards

    /// What `expr` being true (`positive`) or false proves about the paths it reads.
    fn guards(&self, expr: &Expr<'_>, positive: bool) -> Vec<(String, Guard)> {
        const BOTH: Guard = Guard { defined: true, not_none: true, non_empty: false };
        const TRUTHY: Guard = Guard { defined: true, not_none: true, non_empty: true };
        const DEFINED: Guard = Guard { defined: true, not_none: false, non_empty: false };
        const NOT_NONE: Guard = Guard { defined: false, not_none: true, non_empty: false };
        let mut out = Vec::new();
        match expr {
            Expr::UnaryOp(u) if matches!(u.op, ast::UnaryOpKind::Not) => return self.guards(&u.expr, !positive),
            Expr::BinOp(b) if matches!(b.op, ast::BinOpKind::ScAnd) && positive => {
                out.extend(self.guards(&b.left, true));
                out.extend(self.guards(&b.right, true));
            }
            Expr::BinOp(b) if matches!(b.op, ast::BinOpKind::ScOr) && !positive => {
                out.extend(self.guards(&b.left, false));
                out.extend(self.guards(&b.right, false));
            }
            Expr::BinOp(b) if matches!(b.op, ast::BinOpKind::In) && positive => {
                if let (Some(key), Some(map)) = (const_str(&b.left), self.path_of(&b.right)) {
                    out.push((map.clone(), BOTH));
                    out.push((join(&map, &key), DEFINED));
                }
            }
            Expr::Compare(c) if positive && c.ops.len() == 1 => {
                let op = &c.ops[0];
                if matches!(op.op, ast::CompareOpKind::In) {
                    if let (Some(key), Some(map)) = (const_str(&c.expr), self.path_of(&op.expr)) {
                        out.push((map.clone(), BOTH));
                        out.push((join(&map, &key), DEFINED));
                    }
                } else if matches!(op.op, ast::CompareOpKind::Eq) {
                    if let (Some(path), Some(value)) = (self.path_of(&c.expr), const_str(&op.expr)) {
                        out.extend(status_guards(path, &value));
                    }
                }
            }
            Expr::BinOp(b) if positive && matches!(b.op, ast::BinOpKind::Eq) => {
                if let (Some(path), Some(value)) = (self.path_of(&b.left), const_str(&b.right)) {
                    out.extend(status_guards(path, &value));
                }
            }
            Expr::Test(t) => {
                if let Some(path) = self.path_of(&t.expr) {
                    let guard = match (t.name, positive) {
                        ("defined", true) | ("undefined", false) => Some(DEFINED),
                        ("none", false) => Some(NOT_NONE),
                        ("none" | "undefined" | "defined", _) => None,
                        (_, true) => Some(BOTH), // a type or value test passes only on a value
                        (_, false) => None,
                    };
                    if let Some(guard) = guard {
                        out.push((path, guard));
                    }
                }
            }
            Expr::Var(_) | Expr::GetAttr(_) | Expr::GetItem(_) if positive => {
                if let Some(path) = self.path_of(expr) {
                    if let Some(result) = path.strip_suffix(".ok") {
                        out.push((format!("{result}.data"), BOTH));
                    }
                    // true: there, not none, and a list with something in it
                    out.push((path, TRUTHY));
                }
            }
            // `x | default(false)` (or none, "", 0) is true only when x is there and true
            Expr::Filter(f) if positive && matches!(f.name, "default" | "d") && falsy_default(&f.args) => {
                if let Some(inner) = &f.expr {
                    return self.guards(inner, true);
                }
            }
            // `x | length > 0`, `x | length >= 1`, `x | length != 0`
            Expr::BinOp(b) if positive && is_length_above_zero(&b.left, b.op, &b.right) => {
                if let Expr::Filter(f) = &b.left {
                    if let Some(path) = f.expr.as_ref().and_then(|e| self.path_of(e)) {
                        out.push((path, TRUTHY));
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// How the template spells the place `expr` reads, when it is a chain of names.
    fn path_of(&self, expr: &Expr<'_>) -> Option<String> {
        match expr {
            Expr::Var(v) => Some(v.id.to_owned()),
            Expr::GetAttr(g) => Some(join(&self.path_of(&g.expr)?, g.name)),
            Expr::GetItem(g) => {
                let key = const_str(&g.subscript_expr)?;
                Some(join(&self.path_of(&g.expr)?, &key))
            }
            Expr::Filter(f) if matches!(f.name, "default" | "d") => None,
            _ => None,
        }
    }
}

impl Abs {
    fn is_untracked(&self) -> bool {
        matches!(self, Abs::Untracked)
    }
}

mod ast_span {
    pub use minijinja::machinery::Span;
}

/// A list's schema whose items all have `field`, not none (what `selectattr(field)` keeps).
fn with_field_present(list: &Value, field: &str) -> Value {
    let mut list = list.clone();
    if let Some(Value::Object(items)) = list.get_mut("items") {
        let required = items.entry("required").or_insert_with(|| json!([]));
        if let Value::Array(names) = required {
            if !names.iter().any(|n| n == field) {
                names.push(json!(field));
            }
        }
        if let Some(Value::Array(types)) =
            items.get_mut("properties").and_then(|p| p.get_mut(field)).and_then(|f| f.get_mut("type"))
        {
            types.retain(|t| t != "null");
        }
    }
    list
}

fn clone_place(place: &Place) -> Place {
    Place {
        node: place.node.clone(),
        path: place.path.clone(),
        weak: place.weak.clone(),
        label: place.label.clone(),
        origin: place.origin.clone(),
    }
}

/// A `default(…)` whose value is false when tested (`false`, `none`, `""`, `0`).
fn falsy_default(args: &[CallArg<'_>]) -> bool {
    match args.first() {
        Some(CallArg::Pos(Expr::Const(c))) => !c.value.is_true(),
        None => true,
        _ => false,
    }
}

/// `x | length > 0` and its spellings (the parser makes a single comparison a `BinOp`).
fn is_length_above_zero(left: &Expr<'_>, op: ast::BinOpKind, right: &Expr<'_>) -> bool {
    let Expr::Filter(f) = left else { return false };
    if !matches!(f.name, "length" | "count") {
        return false;
    }
    let Expr::Const(c) = right else { return false };
    let Some(n) = c.value.as_i64() else { return false };
    matches!((op, n), (ast::BinOpKind::Gt, 0) | (ast::BinOpKind::Gte, 1) | (ast::BinOpKind::Ne, 0))
}

/// `path == value` proves `path` is there; an outcome's `status` being `data` proves its `data`
/// is, and `failed` its `error`.
fn status_guards(path: String, value: &str) -> Vec<(String, Guard)> {
    let both = Guard { defined: true, not_none: true, non_empty: false };
    let mut out = Vec::new();
    if let Some(result) = path.strip_suffix(".status") {
        match value {
            "data" => out.push((format!("{result}.data"), both)),
            "failed" => out.push((format!("{result}.error"), both)),
            _ => {}
        }
    }
    out.push((path, both));
    out
}

/// A schema place once a guard proved it is not none: its type without `null`.
fn settled(node: &Value, guard: Guard) -> Value {
    let mut node = node.clone();
    if guard.not_none {
        if let Some(Value::Array(types)) = node.get_mut("type") {
            types.retain(|t| t != "null");
        }
    }
    node
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}.{name}")
    }
}

fn is_unchecked(node: &Value) -> bool {
    node.get(UNCHECKED).is_some()
}

/// "the Registry's GET /health answer (shape `health`)", kept on the synthesised data node.
fn answer_label(node: &Value) -> Option<String> {
    node.get(OUTCOME_DATA).and_then(Value::as_str).map(str::to_owned)
}

fn const_str(expr: &Expr<'_>) -> Option<String> {
    match expr {
        Expr::Const(c) => c.value.as_str().map(str::to_owned),
        _ => None,
    }
}

fn pos_const_str(arg: &CallArg<'_>) -> Option<String> {
    match arg {
        CallArg::Pos(e) => const_str(e),
        _ => None,
    }
}

fn kwarg_const_str(args: &[CallArg<'_>], key: &str) -> Option<String> {
    args.iter().find_map(|a| match a {
        CallArg::Kwarg(k, e) if *k == key => const_str(e),
        _ => None,
    })
}

fn span_range(span: ast_span::Span, source: &str) -> std::ops::Range<usize> {
    let start = (span.start_offset as usize).min(source.len());
    let end = (span.end_offset as usize).clamp(start, source.len());
    if source.is_char_boundary(start) && source.is_char_boundary(end) {
        start..end
    } else {
        0..0
    }
}

#[cfg(test)]
mod tests {
    //! The shapes `check` reads query results with are written by hand here, while the values
    //! they describe are built by `steps/query.rs` (`Finished::template_value`) and
    //! `statuses::Tally`. These tests run real query steps through the engine and hold the two
    //! to each other in both directions, so a field added to, removed from or retyped in one of
    //! them fails here rather than making `check` wrong.

    use std::collections::BTreeSet;
    use std::time::Duration;

    use futures::future::BoxFuture;
    use serde_json::{json, Map, Value};

    use super::{result_shape, ResultShape, OUTCOME_DATA};
    use crate::backend::{DropletBackend, DropletRequest, FailureKind, Outcome, SampleBackend};
    use crate::config::spec::CallSpec;
    use crate::config::{load, CompiledConfig, ConfigFiles};
    use crate::pipeline::{RunEnv, TurnDialogue, TurnState};
    use crate::session::Channel;
    use crate::steps::{summary_name, Call, QueryStep, Target};
    use crate::trace::TurnTrace;

    /// A droplet the catalogue does not have: `plan` fails the call without making it.
    const NOT_IN_CATALOGUE: i64 = 999;

    /// The bundled samples, except for the calls scripted here: every way a call can end.
    struct Scripted;

    impl DropletBackend for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }

        fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
            let failed =
                |kind: FailureKind| Outcome::Failed { kind, message: format!("{} went wrong.", kind.as_str()) };
            let outcome = match (request.droplet_id, request.endpoint.as_str()) {
                // a status word a state lists, in another case
                (2, "/health") => Outcome::Data(json!({"status": "Degraded"})),
                // one no state lists
                (12, "/health") => Outcome::Data(json!({"status": "sleepy", "name": "Chat Orchestrator"})),
                (16, "/health") => Outcome::Data(json!({"status": "down"})),
                // against the `health` shape (a status is a word): replaced by a failure
                (14, "/health") => Outcome::Data(json!({"status": 5})),
                (6, "/health") => Outcome::Dispatched { relay_trace_id: "relay-1".to_owned() },
                (10, "/health") => Outcome::timeout(&request.droplet_name, Duration::from_secs(5)),
                (2, "/status") => failed(FailureKind::Unreachable),
                (2, "/metrics") => failed(FailureKind::Refused),
                (10, "/capabilities") => failed(FailureKind::NoSampleData),
                (10, "/state") => failed(FailureKind::BadResponse),
                _ => return SampleBackend.call(request),
            };
            Box::pin(async move { outcome })
        }
    }

    /// A call as the pipeline file says it (for the shape `check` gives its result) and as the
    /// compiler makes it (for the step that runs).
    fn call(spec: Value, target: Target) -> (CallSpec, Call) {
        let spec: CallSpec = serde_json::from_value(spec).expect("a call as a pipeline writes it");
        let call = Call {
            target,
            endpoint: spec.endpoint.clone(),
            method: spec.method.clone(),
            params: Map::new(),
            body: None,
            name: spec.name.clone(),
            timeout: Duration::from_secs(5),
        };
        (spec, call)
    }

    /// Runs one query step with every kind of call and returns, by result name, the values
    /// templates see, each with the shape `check` gives it.
    async fn results(config: &CompiledConfig) -> Vec<(String, Value, ResultShape)> {
        let fleet = vec![1, 2, 6, 10, 12, 14, 16, NOT_IN_CATALOGUE];
        let calls = vec![
            // an object answer
            call(json!({"droplet": 1, "endpoint": "/health", "as": "one"}), Target::Droplet(1)),
            // a list answer
            call(json!({"droplet": 1, "endpoint": "/getAll", "as": "list"}), Target::Droplet(1)),
            // the droplet a slot names
            call(json!({"droplet": "$droplet", "endpoint": "/health", "as": "named"}), Target::Slot("droplet".into())),
            call(json!({"droplet": 1, "endpoint": "/nowhere", "as": "nowhere"}), Target::Droplet(1)),
            call(json!({"droplet": 2, "endpoint": "/status", "as": "unreachable"}), Target::Droplet(2)),
            call(json!({"droplet": 2, "endpoint": "/metrics", "as": "refused"}), Target::Droplet(2)),
            call(json!({"droplet": 10, "endpoint": "/capabilities", "as": "no_sample"}), Target::Droplet(10)),
            call(json!({"droplet": 10, "endpoint": "/state", "as": "bad"}), Target::Droplet(10)),
            call(json!({"droplets": fleet, "endpoint": "/health", "as": "fleet"}), Target::FanOut(fleet.clone())),
        ];
        let (specs, calls): (Vec<CallSpec>, Vec<Call>) = calls.into_iter().unzip();
        let step = QueryStep { calls, progress: None };
        let pipeline = config.pipelines.first().expect("the configuration has pipelines");
        let env = RunEnv {
            templates: &config.templates,
            catalogue: &config.catalogue,
            analyzer: config.resolver.analyzer(),
            backend: &Scripted,
            droplets: &config.droplets_value,
            intents: &config.intents_value,
            trace_id: "shapes-test",
            llm: None,
            events: None,
            progress_after: Duration::from_secs(60),
        };
        let mut state = TurnState {
            message: String::new(),
            reading: Default::default(),
            channel: Channel::Chat,
            resumed: false,
            slots: [("droplet".to_owned(), json!(6))].into_iter().collect(),
            results: Default::default(),
            cleared: None,
            llm: Value::Null,
            llm_may_extract: false,
            trace: TurnTrace::default(),
            preview_other_channel: false,
            other_channel_text: None,
            dialogue: TurnDialogue::default(),
            sources: Default::default(),
            answers: Vec::new(),
            understanding: Value::Null,
        };
        step.run(pipeline, &env, &mut state).await.expect("the query step runs");

        let mut out = Vec::new();
        for spec in &specs {
            let shape = result_shape(spec, &config.catalogue);
            if spec.droplets.is_some() {
                let summary = ResultShape::summary(&spec.name, &shape, &config.catalogue.statuses);
                let name = summary_name(&spec.name);
                out.push((name.clone(), template_value(&state, &name), summary));
            }
            out.push((spec.name.clone(), template_value(&state, &spec.name), shape));
        }
        out
    }

    /// A result as templates read it, back in JSON.
    fn template_value(state: &TurnState, name: &str) -> Value {
        let value = state.results.get(name).unwrap_or_else(|| panic!("the step gives `{name}`"));
        serde_json::to_value(value).expect("a template value is JSON")
    }

    /// `schema` refusing any field it does not list: the engine's own fields must all be there.
    /// An answer's `data` is the droplet's, and its shape the catalogue's: left as it is.
    fn closed(schema: &Value) -> Value {
        let mut schema = schema.clone();
        close(&mut schema);
        schema
    }

    fn close(node: &mut Value) {
        let Value::Object(map) = node else { return };
        if map.contains_key(OUTCOME_DATA) {
            return;
        }
        if let Some(Value::Object(properties)) = map.get_mut("properties") {
            properties.values_mut().for_each(close);
            map.insert("additionalProperties".into(), json!(false));
        }
        if let Some(items) = map.get_mut("items") {
            close(items);
        }
    }

    /// Every field a schema lists, as `error.kind` or `states[].names` (not inside `data`).
    fn listed(node: &Value, path: &str, out: &mut BTreeSet<String>) {
        if node.get(OUTCOME_DATA).is_some() {
            return;
        }
        if let Some(Value::Object(properties)) = node.get("properties") {
            for (name, child) in properties {
                let child_path = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                out.insert(child_path.clone());
                listed(child, &child_path, out);
            }
        }
        if let Some(items) = node.get("items") {
            listed(items, &format!("{path}[]"), out);
        }
    }

    /// Every field a value has, spelt as [`listed`] spells them; `filled` only those not none.
    fn present(value: &Value, path: &str, filled: bool, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (name, child) in map {
                    let child_path = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                    if !(filled && child.is_null()) {
                        out.insert(child_path.clone());
                    }
                    present(child, &child_path, filled, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| present(item, &format!("{path}[]"), filled, out)),
            _ => {}
        }
    }

    /// The problems `value` has against `schema`, one line each, located by JSON pointer.
    fn problems(schema: &Value, value: &Value) -> Vec<String> {
        let validator = jsonschema::draft202012::new(schema).expect("the shape compiles");
        validator
            .iter_errors(value)
            .map(|e| match e.instance_path().as_str() {
                "" => format!("the top: {e}"),
                pointer => format!("`{pointer}`: {e}"),
            })
            .collect()
    }

    fn loaded() -> CompiledConfig {
        load(&ConfigFiles::embedded()).expect("the embedded configuration loads")
    }

    #[tokio::test]
    async fn every_outcome_and_summary_the_engine_gives_fits_the_shape_check_reads_with() {
        let config = loaded();
        let results = results(&config).await;
        let mut wrong = Vec::new();
        for (name, value, shape) in &results {
            for problem in problems(&closed(&shape.outcome), value) {
                wrong.push(format!("{name} at {problem}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "a query result or summary the engine gives templates does not fit the shape `check` reads it with \
             (ResultShape in config/template_reads.rs); a field added to or changed in Finished::template_value \
             (steps/query.rs) or Tally::into_value (statuses.rs) must be written there too:\n{}",
            wrong.join("\n")
        );

        // the step did end every way it can, or the test above proves less than it says
        let outcomes: Vec<&Value> = results
            .iter()
            .filter(|(name, ..)| !name.ends_with("_summary"))
            .flat_map(|(_, value, _)| {
                value.as_array().map(|items| items.iter().collect()).unwrap_or_else(|| vec![value])
            })
            .collect();
        let statuses: BTreeSet<&str> = outcomes.iter().filter_map(|o| o["status"].as_str()).collect();
        assert_eq!(statuses, BTreeSet::from(["data", "dispatched", "failed"]));
        let kinds: BTreeSet<&str> = outcomes.iter().filter_map(|o| o["error"]["kind"].as_str()).collect();
        let every_kind: BTreeSet<&str> = <FailureKind as strum::VariantNames>::VARIANTS.iter().copied().collect();
        assert_eq!(kinds, every_kind, "a failure kind the scripted calls do not produce");
        let answers: Vec<&Value> = outcomes.iter().map(|o| &o["data"]).filter(|d| !d.is_null()).collect();
        assert!(answers.iter().any(|d| d.is_object()) && answers.iter().any(|d| d.is_array()));
        let summary = &results.iter().find(|(name, ..)| name == "fleet_summary").expect("a summary").1;
        let states: Vec<&str> =
            summary["states"].as_array().expect("states").iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(states, ["active", "inactive", "error", "unknown", "no_answer"]);
    }

    #[tokio::test]
    async fn every_field_the_shape_check_reads_with_lists_is_one_the_engine_gives() {
        let config = loaded();
        let results = results(&config).await;
        let (summaries, outcomes): (Vec<_>, Vec<_>) = results.iter().partition(|(name, ..)| name.ends_with("_summary"));

        // an outcome's fields, each given with a value (not none) by some call: a nullable
        // field's filled form is then checked against its type as well
        let mut listed_fields = BTreeSet::new();
        let mut given = BTreeSet::new();
        for (_, value, shape) in &outcomes {
            let (schema, items) = match shape.outcome.get("items") {
                Some(item) => (item, value.as_array().cloned().unwrap_or_default()),
                None => (&shape.outcome, vec![value.clone()]),
            };
            listed(schema, "", &mut listed_fields);
            items.iter().for_each(|item| present(item, "", true, &mut given));
        }
        let missing: Vec<&String> = listed_fields.difference(&given).collect();
        assert!(
            missing.is_empty(),
            "ResultShape::outcome (config/template_reads.rs) lists fields no query outcome has (or has only as none): {missing:?}; \
             a field Finished::template_value (steps/query.rs) no longer gives must leave the shape too"
        );

        // a summary's fields, each there (its `unanswered` outcomes never have data)
        let mut listed_fields = BTreeSet::new();
        let mut given = BTreeSet::new();
        for (_, value, shape) in &summaries {
            listed(&shape.outcome, "", &mut listed_fields);
            present(value, "", false, &mut given);
        }
        let missing: Vec<&String> = listed_fields.difference(&given).collect();
        assert!(
            missing.is_empty(),
            "ResultShape::summary (config/template_reads.rs) lists fields no fan-out summary has: {missing:?}; \
             a field Tally::into_value (statuses.rs) no longer gives must leave the shape too"
        );
    }
}
