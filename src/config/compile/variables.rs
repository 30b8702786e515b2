//! The names templates, conditions and templated values read, checked against what they are
//! given where they are rendered. One rule decides (`unresolved`); a read in a template file
//! and one in the YAML are located and worded differently, because the steward fixes them in
//! different files.

use regex::Regex;
use serde_json::Value;

use super::syntax_errors::error_detail;
use super::{Compiler, Scope};
use crate::config::schema::suggest;
use crate::diagnostic::{Code, Diagnostic, Position};
use crate::template::Templates;

/// Names minijinja provides itself; a template may read them without us defining them.
const JINJA_GLOBALS: &[&str] = &[
    "range",
    "dict",
    "debug",
    "namespace",
    "lipsum",
    "cycler",
    "joiner",
    "loop",
    "self",
    "super",
    "caller",
    "varargs",
    "kwargs",
];

impl Compiler<'_> {
    /// A `when:` condition: it parses, and reads only what the scope has.
    pub(super) fn check_expression(&mut self, scope: &Scope, pointer: &str, expr: &str) {
        let doc = scope.doc;
        match scope.templates.expression_variables(expr) {
            Ok(variables) => self.check_variables(scope, pointer, expr, &variables),
            Err(error) => self.report(
                Diagnostic::new(
                    Code::BadCondition,
                    &doc.file,
                    doc.at(pointer),
                    format!("condition `{expr}` does not parse: {}", error_detail(&error)),
                )
                .with_help("write a minijinja expression such as `not result.ok` or `slots.id is none`"),
            ),
        }
    }

    /// One templated string in a YAML value: it parses, and reads only what the scope has.
    pub(super) fn check_template_string(&mut self, scope: &Scope, pointer: &str, source: &str) {
        let doc = scope.doc;
        let parsed = match crate::template::single_expression(source) {
            Some(expr) => scope.templates.expression_variables(expr),
            None => scope.templates.inline_variables(source),
        };
        match parsed {
            Ok(variables) => self.check_variables(scope, pointer, source, &variables),
            Err(error) => self.report(
                Diagnostic::new(
                    Code::TemplateSyntax,
                    &doc.file,
                    doc.at(pointer),
                    format!("`{source}` does not parse: {}", error_detail(&error)),
                )
                .with_help("close every `{{ … }}`; write values like \"{{ slots.name }}\""),
            ),
        }
    }

    /// Every templated string inside a JSON value (a sample, a native payload).
    pub(super) fn check_templated(&mut self, scope: &Scope, pointer: &str, value: &Value) {
        let mut found = Vec::new();
        Templates::templated_strings(value, pointer.to_owned(), &mut found);
        for (pointer, source) in found {
            self.check_template_string(scope, &pointer, &source);
        }
    }

    /// The reads of a condition or templated value in YAML, located at its pointer.
    fn check_variables(&mut self, scope: &Scope, pointer: &str, written: &str, variables: &[String]) {
        let doc = scope.doc;
        for variable in variables {
            // a value is one string, not a file a steward structures with `{% set %}`: it gets no
            // allowance for names it sets, so one set inside `{% if %}` and read after is refused
            match unresolved(variable, &scope.known, &scope.slot_names, |_| false) {
                None => {}
                Some(Unresolved::Name(head)) => {
                    let diagnostic = Diagnostic::new(
                        Code::UndefinedVariable,
                        &doc.file,
                        doc.at(pointer),
                        format!("`{written}` uses `{head}`, which does not exist here"),
                    );
                    self.report(with_variable_help(diagnostic, head, &scope.known));
                }
                Some(Unresolved::Slot(slot)) => self.unknown_slot(scope, doc.at(pointer), slot),
            }
        }
    }

    pub(super) fn unknown_slot(&mut self, scope: &Scope, at: Position, name: &str) {
        let (doc, slot_names) = (scope.doc, &scope.slot_names);
        let mut diagnostic = Diagnostic::new(
            Code::UnknownSlot,
            &doc.file,
            at,
            format!("slot `{name}` is not declared in this pipeline"),
        );
        diagnostic = match suggest(name, slot_names.iter().map(String::as_str)) {
            Some(best) => diagnostic.with_help(format!("did you mean `{best}`?")),
            None if slot_names.is_empty() => diagnostic
                .with_help(format!("declare it under `slots:`, e.g. `{name}: {{ type: string, prompt: \"…\" }}`")),
            None => diagnostic
                .with_help(format!("declared slots: {}; or declare `{name}` under `slots:`", slot_names.join(", "))),
        };
        self.report(diagnostic);
    }
}

/// A read that does not resolve where it is rendered.
enum Unresolved<'v> {
    /// Its first name (`slot` of `slot.name`) is given to nothing rendered there.
    Name(&'v str),
    /// It reads `slots.x`, and the pipeline declares no slot `x`.
    Slot(&'v str),
}

/// The one rule for what a template, condition or templated value may read (`slots.name.first`):
/// minijinja's own globals, a name it is given (`known`) or sets itself (`sets`), and of `slots`
/// only the declared ones. `sets` is asked only when the answer matters, because for a template
/// it compiles a pattern.
fn unresolved<'v>(
    variable: &'v str,
    known: &[String],
    slots: &[String],
    sets: impl Fn(&str) -> bool,
) -> Option<Unresolved<'v>> {
    let mut parts = variable.splitn(3, '.');
    let head = parts.next().unwrap_or_default();
    if JINJA_GLOBALS.contains(&head) {
        return None;
    }
    let given = known.iter().any(|k| k == head);
    if (!given || head == "slots") && sets(head) {
        return None;
    }
    if !given {
        return Some(Unresolved::Name(head));
    }
    match parts.next() {
        Some(slot) if head == "slots" && !slots.iter().any(|s| s == slot) => Some(Unresolved::Slot(slot)),
        _ => None,
    }
}

fn with_variable_help(diagnostic: Diagnostic, head: &str, known: &[String]) -> Diagnostic {
    match suggest(head, known.iter().map(String::as_str)) {
        Some(best) => diagnostic.with_help(format!("did you mean `{best}`? Available: {}", known.join(", "))),
        None => diagnostic.with_help(format!("available here: {}", known.join(", "))),
    }
}

/// One read of a template file (`path`, rendered by `renderer`), located at its first use in the
/// template.
pub(super) fn check_template_variable(
    path: &str,
    source: &str,
    variable: &str,
    allowed: &[String],
    slot_names: &[String],
    renderer: &str,
) -> Option<Diagnostic> {
    match unresolved(variable, allowed, slot_names, |name| assigns(source, name))? {
        Unresolved::Name(head) => {
            let diagnostic = Diagnostic::new(
                Code::UndefinedVariable,
                path,
                first_use(source, head),
                format!("`{head}` is not defined when {renderer} renders this template"),
            );
            Some(with_variable_help(diagnostic, head, allowed))
        }
        Unresolved::Slot(slot) => {
            let diagnostic = Diagnostic::new(
                Code::UnknownSlot,
                path,
                first_use(source, &format!("slots.{slot}")),
                format!("slot `{slot}` is not declared in {renderer}"),
            );
            Some(match suggest(slot, slot_names.iter().map(String::as_str)) {
                Some(best) => diagnostic.with_help(format!("did you mean `slots.{best}`?")),
                None => diagnostic.with_help(format!(
                    "declared slots: {}",
                    if slot_names.is_empty() { "none".to_owned() } else { slot_names.join(", ") }
                )),
            })
        }
    }
}

/// Whether the template assigns `name` itself. minijinja's `undeclared_variables` reports a
/// name set inside an `{% if %}` branch and read after it; such a template is fine (and strict
/// undefined still catches a branch that forgets to set it), so it must not be reported.
fn assigns(source: &str, name: &str) -> bool {
    let name = regex::escape(name);
    crate::util::cached_regex(&format!(r"\{{%-?\s*(set\s+{name}\b|for\s+([\w\s,]*,\s*)?{name}\b)"), false)
        .map(|pattern| pattern.is_match(source))
        .unwrap_or(false)
}

/// Line and column of the first whole-word occurrence of `word` that does not follow a dot (a
/// field of the same name is another read); the template's own text is searched too.
fn first_use(source: &str, word: &str) -> Position {
    let Ok(pattern) = Regex::new(&format!(r"(^|[^\w.]){}\b", regex::escape(word))) else { return Position::default() };
    for (n, line) in source.lines().enumerate() {
        if let Some(m) = pattern.find(line) {
            let offset = line[m.start()..].find(word).map(|o| o + m.start()).unwrap_or(m.start());
            return Position { line: n as u32 + 1, column: line[..offset].chars().count() as u32 + 1 };
        }
    }
    Position::default()
}
