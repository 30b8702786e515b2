//! Sensitive slot values (`sensitive: true`), masked wherever a turn is kept.
//!
//! The value is used for the action (it is in the slots the pipeline runs with, in the pending
//! action until it is done, and in the reply the user reads), but nothing that outlives the turn
//! holds it: the trace's slots, the stored history (what the user said and what was answered),
//! a retried request's stored answer, and the missed messages show [`MASK`] instead.

use serde_json::{Map, Value};

use crate::slots::SlotDef;

/// What a masked value reads as.
pub const MASK: &str = "•••";

/// The values of sensitive slots in this turn.
#[derive(Debug, Default)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    /// Adds the sensitive values among `slots`.
    pub(super) fn add(&mut self, defs: &[SlotDef], slots: &Map<String, Value>) {
        for def in defs.iter().filter(|d| d.sensitive) {
            let text = match slots.get(&def.name) {
                Some(Value::String(s)) => s.trim().to_owned(),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            if !text.is_empty() && !self.0.contains(&text) {
                self.0.push(text);
            }
        }
        // longest first, so a value containing another is masked whole
        self.0.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every sensitive value in it masked (ignoring case; a short value only where
    /// it is a whole word, so masking "42" leaves "1425" alone).
    pub(super) fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.0 {
            let escaped = regex::escape(secret);
            // a word edge only where the value has a word character to have one
            let edge = |c: Option<char>| if c.is_some_and(|c| c.is_alphanumeric() || c == '_') { r"\b" } else { "" };
            let pattern = if secret.chars().count() < 4 {
                format!("(?i){}{escaped}{}", edge(secret.chars().next()), edge(secret.chars().last()))
            } else {
                format!("(?i){escaped}")
            };
            if let Ok(pattern) = regex::Regex::new(&pattern) {
                out = pattern.replace_all(&out, MASK).into_owned();
            }
        }
        out
    }
}

impl Secrets {
    /// Masks the sensitive values in every string of `value` (a droplet's answer may echo them).
    pub(crate) fn mask_json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(text) => *text = self.mask(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.mask_json(item)),
            Value::Object(map) => map.values_mut().for_each(|item| self.mask_json(item)),
            _ => {}
        }
    }
}

/// `slots` with the sensitive ones masked, for the trace.
pub(crate) fn masked_slots(defs: &[SlotDef], slots: &Map<String, Value>) -> Map<String, Value> {
    let mut out = slots.clone();
    for def in defs.iter().filter(|d| d.sensitive) {
        if let Some(value) = out.get_mut(&def.name) {
            if !value.is_null() {
                *value = Value::String(MASK.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::slots::SlotKind;

    fn defs() -> Vec<SlotDef> {
        vec![
            SlotDef::new("token", SlotKind::String, "the token", None, &[], None).expect("slot").with_sensitive(true),
            SlotDef::new("pin", SlotKind::Integer, "the pin", None, &[], None).expect("slot").with_sensitive(true),
            SlotDef::new("name", SlotKind::String, "the name", None, &[], None).expect("slot"),
        ]
    }

    #[test]
    fn sensitive_values_are_masked_in_text_whatever_their_case() {
        let mut secrets = Secrets::default();
        let slots = json!({"token": "Abc-Secret-99", "pin": 42, "name": "Billing"});
        secrets.add(&defs(), slots.as_object().expect("map"));
        assert_eq!(
            secrets.mask("token abc-secret-99 for Billing, pin 42 (not 1425)"),
            "token ••• for Billing, pin ••• (not 1425)"
        );
        let mut short = Secrets::default();
        short.add(&defs(), json!({"token": "x9!"}).as_object().expect("map"));
        assert_eq!(short.mask("token x9! now"), "token ••• now", "no word edge after `!` to wait for");
    }

    #[test]
    fn the_trace_shows_which_slots_were_given_but_not_their_values() {
        let slots = json!({"token": "Abc-Secret-99", "pin": null, "name": "Billing"});
        let masked = masked_slots(&defs(), slots.as_object().expect("map"));
        assert_eq!(Value::Object(masked), json!({"token": "•••", "pin": null, "name": "Billing"}));
    }
}
