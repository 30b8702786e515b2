//! A query's calls: the droplets they name, the endpoint and method, and the body against the
//! endpoint's `request:`.

use std::time::Duration;

use indexmap::IndexMap;
use serde_json::Value;

use super::{Compiler, Document, Scope};
use crate::catalogue::{Catalogue, Droplet};
use crate::config::schema::suggest;
use crate::config::spec::{CallSpec, DropletRefSpec, FanOutSpec, SlotKindSpec, SlotSpec};
use crate::diagnostic::{Code, Diagnostic};
use crate::steps::{Call, Target, DEFAULT_CALL_TIMEOUT};
use crate::template::Templates;

impl Compiler<'_> {
    pub(super) fn call(&mut self, scope: &Scope, here: &str, call: &CallSpec, catalogue: &Catalogue) -> Option<Call> {
        let doc = scope.doc;
        let target = match (&call.droplet, &call.droplets) {
            (Some(_), Some(_)) | (None, None) => {
                self.report(
                    Diagnostic::new(Code::InvalidValue, &doc.file, doc.at(here), "a call needs exactly one of `droplet` (one droplet) or `droplets` (several)")
                        .with_help("write `droplet: 1` for one droplet, or `droplets: all` to ask every droplet that offers the endpoint"),
                );
                return None;
            }
            (Some(DropletRefSpec::Name(name)), None) if name.starts_with('$') => {
                let slot = &name[1..];
                match scope.slots.get(slot) {
                    Some(spec) if spec.kind == SlotKindSpec::Droplet => Target::Slot(slot.to_owned()),
                    Some(_) => {
                        self.report(
                            Diagnostic::new(
                                Code::UnknownSlot,
                                &doc.file,
                                doc.at(&format!("{here}/droplet")),
                                format!("slot `{slot}` is not a droplet slot"),
                            )
                            .with_help(format!("declare it with `type: droplet` to use it as `{name}`")),
                        );
                        return None;
                    }
                    None => {
                        self.unknown_slot(scope, doc.at(&format!("{here}/droplet")), slot);
                        return None;
                    }
                }
            }
            (Some(reference), None) => {
                let droplet = self.droplet(doc, &format!("{here}/droplet"), reference, catalogue)?;
                self.endpoint(doc, here, droplet, call)?;
                Target::Droplet(droplet.id)
            }
            (None, Some(FanOutSpec::All(_))) => {
                let ids: Vec<i64> =
                    catalogue.droplets.iter().filter(|d| d.endpoint(&call.endpoint).is_some()).map(|d| d.id).collect();
                if ids.is_empty() {
                    self.report(
                        Diagnostic::new(
                            Code::UnknownEndpoint,
                            &doc.file,
                            doc.at(&format!("{here}/endpoint")),
                            format!("no droplet in the catalogue offers `{}`", call.endpoint),
                        )
                        .with_help("check the endpoint path against catalogue/droplets.yaml"),
                    );
                    return None;
                }
                Target::FanOut(ids)
            }
            (None, Some(FanOutSpec::List(references))) => {
                // check every entry, so one run reports every unknown droplet in the list
                let mut ids = Vec::new();
                let mut ok = true;
                for (k, reference) in references.iter().enumerate() {
                    let found = self.droplet(doc, &format!("{here}/droplets/{k}"), reference, catalogue);
                    match found.and_then(|droplet| self.endpoint(doc, here, droplet, call).map(|()| droplet.id)) {
                        Some(id) => ids.push(id),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                Target::FanOut(ids)
            }
        };
        if let (Target::Droplet(id), Some(body)) = (&target, &call.body) {
            self.body_fields(scope, here, *id, call, body, catalogue);
        }
        let mut templated = Vec::new();
        for (key, value) in &call.params {
            let key = key.replace('~', "~0").replace('/', "~1");
            Templates::templated_strings(value, format!("{here}/params/{key}"), &mut templated);
        }
        if let Some(body) = &call.body {
            Templates::templated_strings(body, format!("{here}/body"), &mut templated);
        }
        for (pointer, source) in templated {
            self.check_template_string(scope, &pointer, &source);
        }
        Some(Call {
            target,
            endpoint: call.endpoint.clone(),
            method: call.method.clone(),
            params: call.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: call.body.clone(),
            name: call.name.clone(),
            timeout: call.timeout_ms.map(Duration::from_millis).unwrap_or(DEFAULT_CALL_TIMEOUT),
        })
    }

    /// The fields of a call's body against the endpoint's `request:`: one it does not take, one
    /// it requires and the body lacks, or a value of the wrong kind would be refused by the
    /// droplet (and the refusal read as the droplet's fault).
    fn body_fields(
        &mut self,
        scope: &Scope,
        here: &str,
        id: i64,
        call: &CallSpec,
        body: &Value,
        catalogue: &Catalogue,
    ) {
        let doc = scope.doc;
        let Some(droplet) = catalogue.by_id(id) else { return };
        let method = call.method.clone().or_else(|| droplet.endpoint(&call.endpoint).map(|e| e.method.clone()));
        let Some(endpoint) = method.and_then(|m| droplet.endpoint_for(&call.endpoint, &m)) else { return };
        let (Some(shape), Value::Object(fields)) = (&endpoint.request, body) else { return };
        let root = shape.root();
        let declared: Vec<(&str, bool)> =
            root.fields().into_iter().map(|(name, _, required)| (name, required)).collect();
        let taken: Vec<&str> = declared.iter().map(|(name, _)| *name).collect();
        let what = format!("{} {} {}", droplet.name, endpoint.method, endpoint.path);
        if !root.open() {
            for key in fields.keys().filter(|k| !taken.contains(&k.as_str())) {
                let pointer = format!("{here}/body/{}", key.replace('~', "~0").replace('/', "~1"));
                let mut diagnostic = Diagnostic::new(
                    Code::BodyField,
                    &doc.file,
                    doc.at(&pointer),
                    format!("{what} does not take a body field `{key}`"),
                );
                diagnostic = match suggest(key, taken.iter().copied()) {
                    Some(best) => diagnostic.with_help(format!("did you mean `{best}`? It takes: {}", taken.join(", "))),
                    None => diagnostic.with_help(format!(
                        "it takes: {}; if it really takes `{key}`, add it to the endpoint's `request:` in catalogue/droplets.yaml",
                        taken.join(", ")
                    )),
                };
                self.report(diagnostic);
            }
        }
        for (key, value) in fields {
            let crate::shapes::Field::Declared { node, .. } = root.field(key) else { continue };
            let expected = node.types();
            let Some((sent, from)) = sent_type(value, scope.slots) else { continue };
            let fits =
                expected.is_empty() || expected.contains(&sent) || (sent == "integer" && expected.contains(&"number"));
            if !fits {
                let pointer = format!("{here}/body/{}", key.replace('~', "~0").replace('/', "~1"));
                self.report(
                    Diagnostic::new(Code::BodyField, &doc.file, doc.at(&pointer), {
                        let label = node.type_label();
                        let article = if label.starts_with("text") || label.starts_with("list") { "" } else { "a " };
                        format!("`{key}` must be {article}{label} for {what}, but this body sends {from}")
                    })
                    .with_help(format!(
                        "send a slot of that kind (`type: {}`), or fix the endpoint's `request:` if it takes this",
                        expected.first().copied().unwrap_or("string")
                    )),
                );
            }
        }
        for (name, _) in declared.iter().filter(|(name, required)| *required && !fields.contains_key(*name)) {
            self.report(
                Diagnostic::new(
                    Code::BodyField,
                    &doc.file,
                    doc.at(&format!("{here}/body")),
                    format!("{what} needs a body field `{name}`, and this body has none"),
                )
                .with_help(format!(
                    "add `{name}: \"{{{{ slots.{name} }}}}\"` (or the value it should carry) to the body"
                )),
            );
        }
    }

    fn droplet<'c>(
        &mut self,
        doc: &Document,
        pointer: &str,
        reference: &DropletRefSpec,
        catalogue: &'c Catalogue,
    ) -> Option<&'c Droplet> {
        let (found, written) = match reference {
            DropletRefSpec::Id(id) => (catalogue.by_id(*id), id.to_string()),
            DropletRefSpec::Name(name) => (catalogue.by_name(name), name.clone()),
        };
        if found.is_none() {
            let keys: Vec<&str> = catalogue.droplets.iter().map(|d| d.key.as_str()).collect();
            let mut diagnostic = Diagnostic::new(
                Code::UnknownDroplet,
                &doc.file,
                doc.at(pointer),
                format!("there is no droplet `{written}` in the catalogue"),
            );
            diagnostic = match suggest(&written, keys.iter().copied()) {
                Some(best) => diagnostic
                    .with_help(format!("did you mean `{best}`? Known droplets: {}", catalogue.names().join(", "))),
                None => diagnostic.with_help(format!("known droplets: {}", catalogue.names().join(", "))),
            };
            self.report(diagnostic);
        }
        found
    }

    fn endpoint(&mut self, doc: &Document, here: &str, droplet: &Droplet, call: &CallSpec) -> Option<()> {
        let Some(endpoint) = droplet.endpoint(&call.endpoint) else {
            let offered: Vec<&str> = droplet.endpoints.iter().map(|e| e.path.as_str()).collect();
            let mut diagnostic = Diagnostic::new(
                Code::UnknownEndpoint,
                &doc.file,
                doc.at(&format!("{here}/endpoint")),
                format!("the {} (droplet {}) has no endpoint `{}`", droplet.name, droplet.id, call.endpoint),
            );
            let listing =
                droplet.endpoints.iter().map(|e| format!("{} {}", e.method, e.path)).collect::<Vec<_>>().join(", ");
            diagnostic = match suggest(&call.endpoint, offered.iter().copied()) {
                Some(best) => diagnostic.with_help(format!("did you mean `{best}`? It offers: {listing}")),
                None => diagnostic.with_help(format!("it offers: {listing}")),
            };
            self.report(diagnostic);
            return None;
        };
        if let Some(method) = &call.method {
            if *method != endpoint.method {
                self.report(
                    Diagnostic::new(
                        Code::MethodMismatch,
                        &doc.file,
                        doc.at(&format!("{here}/method")),
                        format!("{} {} is a {} endpoint, not {method}", droplet.name, endpoint.path, endpoint.method),
                    )
                    .with_help(format!("write `method: {}` or leave `method` out", endpoint.method)),
                );
                return None;
            }
        }
        Some(())
    }
}

/// The JSON type a body value will have, and where it comes from in words: a literal, or a
/// `"{{ slots.x }}"` (a whole expression keeps its type).
fn sent_type(value: &Value, slot_specs: &IndexMap<String, SlotSpec>) -> Option<(&'static str, String)> {
    match value {
        Value::String(text) => {
            let expr = crate::template::single_expression(text)?.trim();
            let slot = expr.strip_prefix("slots.")?;
            let spec = slot_specs.get(slot)?;
            let (json, words) = match spec.kind {
                SlotKindSpec::String => ("string", "text"),
                SlotKindSpec::Integer => ("integer", "a whole number"),
                SlotKindSpec::Number => ("number", "a number"),
                SlotKindSpec::Boolean => ("boolean", "true/false"),
                SlotKindSpec::Droplet => ("integer", "a droplet number"),
            };
            Some((json, format!("slot `{slot}`, which is {words}")))
        }
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(("integer", format!("the number {n}"))),
        Value::Number(n) => Some(("number", format!("the number {n}"))),
        Value::Bool(b) => Some(("boolean", format!("`{b}`"))),
        _ => None,
    }
}
