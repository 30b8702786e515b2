//! The minijinja environment every reply, condition and templated value is rendered with.
//!
//! One environment per compiled configuration holds all of `templates/`. It is strict (an
//! undefined variable is an error, never an empty string, so a typo cannot silently drop part
//! of a reply) and fuelled (a runaway loop in a steward's template stops instead of hanging a
//! worker).

use std::sync::{Arc, OnceLock};

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use regex::Regex;

use crate::speech;
use crate::statuses::Statuses;

mod json;
pub use json::json;

/// Instructions one render may execute before it is stopped.
const FUEL_PER_RENDER: u64 = 200_000;

/// The auto-escape mode of chat templates (`*.md.j2`) and shared macros.
const MARKDOWN: &str = "markdown";

/// Characters a printed value has backslash-escaped in a chat reply.
const ESCAPED: &[char] = &['\\', '`', '*', '_', '[', ']', '<', '>', '|', '~', '#'];

/// Whether [`escape_markdown`] would change `text`.
fn needs_escape(text: &str) -> bool {
    text.contains(|c| ESCAPED.contains(&c) || c == '\n' || c == '\r')
}

/// A value as markdown text: every character markdown or HTML could read as markup is
/// backslash-escaped (CommonMark: any ASCII punctuation may be), and line breaks become spaces,
/// so a value cannot start a heading, list or block of its own.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if ESCAPED.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Names the engine provides to every template, condition and templated value.
pub const CONTEXT_NAMES: &[&str] =
    &["message", "channel", "intent", "slots", "droplets", "intents", "pending", "backend", "llm", "understanding"];

/// Names available to the welcome templates (sent before any turn).
pub const WELCOME_CONTEXT_NAMES: &[&str] = &["channel", "droplets", "intents", "backend"];

/// Extra names inside an `ask` template: the slot asked now, every slot still missing, whether
/// they are asked together, whether this is the action's first question, and whether it comes
/// back after something else was answered.
pub const ASK_CONTEXT_NAMES: &[&str] = &["asking", "missing", "ask_together", "first_question", "asking_again"];

/// Extra names inside a `confirm` read-back: whether the last answer was neither yes nor no.
pub const CONFIRM_CONTEXT_NAMES: &[&str] = &["unclear_answer"];

/// Extra names inside a give-up reply: `{name, prompt, …}` of the slot (or `{question: consent}`).
pub const GIVE_UP_CONTEXT_NAMES: &[&str] = &["gave_up"];

/// Extra names inside a query's `progress:` line: the names of the droplets not answered yet.
pub const PROGRESS_CONTEXT_NAMES: &[&str] = &["waiting_on"];

/// Names available to templated values in the catalogue's sample answers.
pub const SAMPLE_CONTEXT_NAMES: &[&str] = &["body", "params"];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template `{name}` failed: {source:#}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("expression `{expr}` failed: {source:#}")]
    Expression {
        expr: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("value of `{expr}` cannot be turned into JSON: {source}")]
    NotJson {
        expr: String,
        #[source]
        source: serde_json::Error,
    },
}

/// All templates of one configuration.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("count", &self.env.templates().count()).finish()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL_PER_RENDER));
        env.add_filter("speak", |text: String| speech::to_speech(&text));
        env.add_filter("humanize_list", humanize_list);
        env.add_filter("short_time", short_time);
        env.add_filter("code", code_span);
        // Chat replies are markdown: a value printed into a chat template (`.md.j2`) or a macro
        // library (`macros.j2`, shared with voice, whose replies go through the speech rules,
        // which drop the escapes) is text, never markup, so a user's `[click](https://evil…)` or
        // `<img onerror=…>` arrives as the characters typed; `| safe` prints trusted markdown as
        // it is. Voice templates and model prompts are plain text and stay as written.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".md.j2") || name.ends_with("macros.j2") {
                AutoEscape::Custom(MARKDOWN.into())
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(|out, state, value| {
            if matches!(state.auto_escape(), AutoEscape::Custom(name) if name == MARKDOWN) {
                use minijinja::value::ValueKind;
                let written = match value.kind() {
                    ValueKind::Undefined => Ok(()),
                    // numbers, booleans and none have nothing to escape; trusted text is as is
                    ValueKind::Number | ValueKind::Bool | ValueKind::None => write!(out, "{value}"),
                    _ if value.is_safe() => write!(out, "{value}"),
                    // most values need no escape: write them without a copy
                    _ => match value.as_str() {
                        Some(text) if !needs_escape(text) => out.write_str(text),
                        Some(text) => out.write_str(&escape_markdown(text)),
                        None => out.write_str(&escape_markdown(&value.to_string())),
                    },
                };
                return written.map_err(minijinja::Error::from);
            }
            minijinja::escape_formatter(out, state, value)
        });
        let mut templates = Templates { env };
        // until the catalogue's statuses are known, every word reads as unknown
        templates.use_statuses(Arc::default());
        templates
    }

    /// Reads status words with the catalogue's `statuses:`: `{{ e.status | status_icon }}` is
    /// the icon of the state a word means (for statuses inside an answer; a query outcome
    /// carries its own `icon`).
    pub fn use_statuses(&mut self, statuses: Arc<Statuses>) {
        self.env.add_filter("status_icon", move |word: Value| statuses.icon_of(word.as_str()).to_owned());
    }

    /// Adds a template; the error carries the template's name and line.
    pub fn add(&mut self, name: &str, source: &str) -> Result<(), minijinja::Error> {
        self.env.add_template_owned(name.to_owned(), source.to_owned())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// Variables a template reads that it does not define itself, e.g. `slots.name`, `result`.
    pub fn undeclared_variables(&self, name: &str) -> Vec<String> {
        let mut vars: Vec<String> =
            self.env.get_template(name).map(|t| t.undeclared_variables(true).into_iter().collect()).unwrap_or_default();
        vars.sort();
        vars
    }

    /// Checks an expression's syntax and returns the variables it reads.
    pub fn expression_variables(&self, expr: &str) -> Result<Vec<String>, minijinja::Error> {
        let compiled = self.env.compile_expression(expr)?;
        let mut vars: Vec<String> = compiled.undeclared_variables(true).into_iter().collect();
        vars.sort();
        Ok(vars)
    }

    /// Checks a template string's syntax and returns the variables it reads.
    pub fn inline_variables(&self, source: &str) -> Result<Vec<String>, minijinja::Error> {
        let template = self.env.template_from_str(source)?;
        let mut vars: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        vars.sort();
        Ok(vars)
    }

    pub fn render(&self, name: &str, context: &Value) -> Result<String, RenderError> {
        let wrap = |source| RenderError::Template { name: name.to_owned(), source };
        let template = self.env.get_template(name).map_err(wrap)?;
        let text = template.render(context).map_err(wrap)?;
        Ok(text.trim().to_owned())
    }

    /// Evaluates a `when:` condition with Jinja truthiness.
    pub fn condition(&self, expr: &str, context: &Value) -> Result<bool, RenderError> {
        Ok(self.evaluate(expr, context)?.is_true())
    }

    fn evaluate(&self, expr: &str, context: &Value) -> Result<Value, RenderError> {
        let wrap = |source| RenderError::Expression { expr: expr.to_owned(), source };
        let compiled = self.env.compile_expression(expr).map_err(wrap)?;
        compiled.eval(context).map_err(wrap)
    }

    /// Renders a templated JSON value: every string inside is a template, and a string that is
    /// exactly one `{{ expression }}` becomes the expression's value with its own type, so
    /// `id: "{{ slots.id }}"` sends the number 123, not the text "123".
    pub fn render_value(&self, value: &serde_json::Value, context: &Value) -> Result<serde_json::Value, RenderError> {
        use serde_json::Value as Json;
        Ok(match value {
            Json::String(text) => match single_expression(text) {
                Some(expr) => {
                    let result = self.evaluate(expr, context)?;
                    serde_json::to_value(&result)
                        .map_err(|source| RenderError::NotJson { expr: expr.to_owned(), source })?
                }
                None if text.contains("{{") || text.contains("{%") => Json::String(
                    self.env
                        .render_str(text, context)
                        .map_err(|source| RenderError::Expression { expr: text.clone(), source })?,
                ),
                None => Json::String(text.clone()),
            },
            Json::Array(items) => {
                Json::Array(items.iter().map(|v| self.render_value(v, context)).collect::<Result<_, _>>()?)
            }
            Json::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_value(v, context)?)))
                    .collect::<Result<_, RenderError>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Every templated string inside a JSON value, for the compile pass to check.
    pub fn templated_strings(value: &serde_json::Value, pointer: String, out: &mut Vec<(String, String)>) {
        match value {
            serde_json::Value::String(s) if s.contains("{{") || s.contains("{%") => out.push((pointer, s.clone())),
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    Self::templated_strings(v, format!("{pointer}/{i}"), out);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    Self::templated_strings(v, format!("{pointer}/{key}"), out);
                }
            }
            _ => {}
        }
    }
}

/// Any serialisable value as a template value.
pub fn to_value<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// The expression inside `"{{ expr }}"` when that is the whole string.
pub fn single_expression(text: &str) -> Option<&str> {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    let pattern = PATTERN.get_or_init(|| Regex::new(r"^\s*\{\{(.*)\}\}\s*$").expect("static regex"));
    let inner = pattern.captures(text)?.get(1)?.as_str();
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then_some(inner.trim())
}

/// A timestamp as `2025-11-20 14:10 UTC`; anything that is not a timestamp is given back as it
/// is. A filter rather than a macro: a macro call costs a fresh template state, and every chat
/// reply about a droplet prints one.
fn short_time(value: Value) -> Value {
    let Some(text) = value.as_str() else { return value };
    let chars: Vec<char> = text.chars().take(16).collect();
    if chars.len() < 16 || chars[10] != 'T' {
        return value;
    }
    let date: String = chars[..10].iter().collect();
    let time: String = chars[11..16].iter().collect();
    Value::from(format!("{date} {time} UTC"))
}

/// `["a", "b", "c"]` → `"a, b and c"`.
/// `{{ value | tojson | code }}`: the text as a markdown code span that nothing in it can close
/// (fenced by one backtick more than its longest run of them, padded where it starts or ends
/// with one), on one line. A backtick in a user's value stays a character, never markup.
fn code_span(text: String) -> Value {
    let text = text.replace(['\n', '\r'], " ");
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    Value::from_safe_string(format!("{fence}{pad}{text}{pad}{fence}"))
}

fn humanize_list(items: Vec<Value>) -> String {
    let words: Vec<String> = items.iter().map(|v| v.to_string()).collect();
    match words.len() {
        0 => String::new(),
        1 => words[0].clone(),
        n => format!("{} and {}", words[..n - 1].join(", "), words[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_expressions_keep_their_type() {
        let t = Templates::new();
        let ctx = to_value(json!({"slots": {"id": 123, "name": "My Service"}}));
        let body = json!({"id": "{{ slots.id }}", "label": "svc-{{ slots.name }}", "fixed": true});
        assert_eq!(
            t.render_value(&body, &ctx).expect("renders"),
            json!({"id": 123, "label": "svc-My Service", "fixed": true})
        );
    }

    #[test]
    fn a_code_span_cannot_be_closed_by_what_it_holds() {
        let mut t = Templates::new();
        t.add("x.chat.md.j2", "with {{ body | tojson | code }}").expect("parses");
        let render =
            |name: &str| t.render("x.chat.md.j2", &to_value(json!({"body": {"name": name}}))).expect("renders");
        assert_eq!(render("Billing"), r#"with `{"name": "Billing"}`"#);
        // a backtick in the value: the fence is longer than any run inside
        assert_eq!(render("a`[x](https://evil)`"), r#"with ``{"name": "a`[x](https://evil)`"}``"#);
        assert_eq!(code_span("`x".to_owned()).to_string(), "`` `x ``");
    }

    #[test]
    fn undefined_variables_are_errors_not_blanks() {
        let mut t = Templates::new();
        t.add("x.j2", "Hello {{ nmae }}").expect("parses");
        let err = t.render("x.j2", &to_value(json!({"name": "a"}))).expect_err("strict");
        assert!(err.to_string().contains("undefined"), "{err}");
    }

    #[test]
    fn runaway_loops_run_out_of_fuel() {
        let mut t = Templates::new();
        t.add("loop.j2", "{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}")
            .expect("parses");
        let err = t.render("loop.j2", &Value::from(())).expect_err("out of fuel");
        assert!(err.to_string().contains("fuel"), "{err}");
    }

    #[test]
    fn chat_templates_print_values_as_text_not_markup() {
        let mut templates = Templates::new();
        let source = "**{{ name }}** {{ trusted | safe }} {{ id }}";
        templates.add("t/chat.md.j2", source).expect("template");
        templates.add("t/voice.txt.j2", source).expect("template");
        let context = minijinja::context! {
            name => "<img src=x onerror=alert(1)> [click](https://evil.example/x)\n# Heading",
            trusted => "*fine*",
            id => 7,
        };
        assert_eq!(
            templates.render("t/chat.md.j2", &context).expect("renders"),
            "**\\<img src=x onerror=alert(1)\\> \\[click\\](https://evil.example/x) \\# Heading** *fine* 7"
        );
        assert!(templates.render("t/voice.txt.j2", &context).expect("renders").contains("<img"), "voice: speech rules");
    }

    #[test]
    fn status_icons_follow_the_catalogues_statuses() {
        use crate::statuses::State;
        let mut t = Templates::new();
        let source = "{{ 'up' | status_icon }} {{ none | status_icon }} {{ 3 | status_icon }}";
        assert_eq!(
            t.env.render_str(source, ()).expect("renders"),
            "⚪ ⚪ ⚪",
            "without statuses every word is unknown"
        );
        t.use_statuses(Arc::new(Statuses::new(vec![State::named("active", "🟢", &["up"])])));
        assert_eq!(t.env.render_str(source, ()).expect("renders"), "🟢 ⚪ ⚪");
    }

    #[test]
    fn short_times_keep_the_minute_and_leave_other_values_alone() {
        let t = Templates::new();
        let out = t
            .env
            .render_str(
                "{{ '2025-11-20T14:10:33.5Z' | short_time }}|{{ '—' | short_time }}|{{ 'yesterday at noon' | short_time }}|{{ 7 | short_time }}|{{ none | short_time }}",
                (),
            )
            .expect("renders");
        assert_eq!(out, "2025-11-20 14:10 UTC|—|yesterday at noon|7|None");
    }

    #[test]
    fn humanizes_lists() {
        let t = Templates::new();
        let out = t.env.render_str("{{ ['a','b','c'] | humanize_list }}", ()).expect("renders");
        assert_eq!(out, "a, b and c");
    }
}
