//! A droplet's answer (or any JSON) as a template value, read where it lies.
//!
//! Converting a JSON tree into minijinja values copies every key and string into maps of its
//! own before a template reads a single field, and a reply reads a few fields of an answer. A
//! [`Json`] value holds the tree once and answers each read from it: a field that is a scalar
//! becomes a value when it is read, one that is an object or a list becomes another view into
//! the same tree. Templates see what they saw before: objects are mappings whose keys iterate
//! in sorted order (as minijinja's own maps do), lists are sequences, `null` is none.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use serde_json::Value as JsonValue;

/// `value` as a template value. Scalars convert at once; objects and lists are read lazily.
pub fn json(value: JsonValue) -> Value {
    match value {
        JsonValue::Object(_) | JsonValue::Array(_) => {
            Value::from_object(Json { root: Arc::new(value), path: Vec::new() })
        }
        scalar => scalar_value(&scalar),
    }
}

/// A view of one object or list inside a JSON tree: the tree, and the keys (text for objects,
/// numbers for lists) that lead to it from the root.
#[derive(Debug)]
struct Json {
    root: Arc<JsonValue>,
    path: Vec<Value>,
}

impl Json {
    /// The object or list this view stands for (the path was valid when the view was made, and
    /// the tree never changes).
    fn node(&self) -> &JsonValue {
        let mut node = &*self.root;
        for step in &self.path {
            node = match (node, step.as_str(), step.as_usize()) {
                (JsonValue::Object(map), Some(key), _) => &map[key],
                (JsonValue::Array(items), _, Some(index)) => &items[index],
                _ => &JsonValue::Null,
            };
        }
        node
    }

    fn child(&self, node: &JsonValue, step: Value) -> Value {
        match node {
            JsonValue::Object(_) | JsonValue::Array(_) => {
                let mut path = Vec::with_capacity(self.path.len() + 1);
                path.extend(self.path.iter().cloned());
                path.push(step);
                Value::from_object(Json { root: self.root.clone(), path })
            }
            scalar => scalar_value(scalar),
        }
    }
}

/// A JSON scalar as the value serde conversion would give (integers as integers, `null` as none).
fn scalar_value(value: &JsonValue) -> Value {
    match value {
        JsonValue::Null => Value::from(()),
        JsonValue::Bool(b) => Value::from(*b),
        JsonValue::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        JsonValue::String(s) => Value::from(s.as_str()),
        // containers are views, never converted here
        JsonValue::Array(_) | JsonValue::Object(_) => Value::from(()),
    }
}

impl Object for Json {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.node() {
            JsonValue::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match self.node() {
            JsonValue::Object(map) => {
                let field = map.get(key.as_str()?)?;
                Some(self.child(field, key.clone()))
            }
            JsonValue::Array(items) => {
                let index = key.as_usize()?;
                let item = items.get(index)?;
                Some(self.child(item, Value::from(index)))
            }
            _ => None,
        }
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        match self.node() {
            JsonValue::Object(map) => {
                let field = map.get(key)?;
                Some(self.child(field, Value::from(key)))
            }
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.node() {
            JsonValue::Object(map) => {
                // minijinja's own maps keep their keys sorted: so do these
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Enumerator::Values(keys.into_iter().map(|k| Value::from(k.as_str())).collect())
            }
            JsonValue::Array(items) => Enumerator::Seq(items.len()),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.node() {
            JsonValue::Object(map) => Some(map.len()),
            JsonValue::Array(items) => Some(items.len()),
            _ => Some(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::Environment;
    use serde_json::json as j;

    /// Every way a template reads an answer gives what the converted value gives.
    #[test]
    fn templates_read_a_view_as_they_read_the_converted_value() {
        let answer = j!({
            "status": "active", "version": "2.1", "uptime_seconds": 93780, "load": 0.25, "delta": -3,
            "ok": true, "owner": null, "zeta": 1, "alpha": 2,
            "services": [{"name": "b", "at": "2"}, {"name": "a", "at": "1"}], "empty": [], "nested": {}
        });
        let env = Environment::new();
        let probes = [
            "{{ a.status }} {{ a.version }} {{ a.uptime_seconds // 86400 }} {{ a.load * 2 }} {{ a.delta }}",
            "{{ a.ok }} {{ a.owner is none }} {{ a.missing is defined }} {{ a.owner | default('x') }}",
            "{{ a is mapping }} {{ a.services is sequence }} {{ a | length }} {{ a.services | length }}",
            "{% for k in a %}{{ k }},{% endfor %} {% for k, v in a | items %}{{ k }}={{ v }};{% endfor %}",
            "{{ a | tojson }}",
            "{{ a.services | tojson }} {{ a.services[1].name }} {{ (a.services | first).name }}",
            "{{ a.services | sort(attribute='at') | map(attribute='name') | join(',') }}",
            "{{ a.services | selectattr('name', 'equalto', 'a') | list | length }}",
            "{{ 'status' in a }} {{ 'nope' in a }} {{ a.empty | length }} {{ a.nested is mapping }}",
            "{% if a.empty %}full{% else %}empty{% endif %} {% if a.nested %}n{% else %}no{% endif %}",
            "{{ a }} {{ a.services[0] }}",
            "{{ a.services[0] == a.services[0] }} {{ a.status == 'active' }} {{ a.services | reverse | first | tojson }}",
        ];
        for probe in probes {
            let lazy = env.render_str(probe, minijinja::context! { a => json(answer.clone()) }).expect(probe);
            let converted =
                env.render_str(probe, minijinja::context! { a => crate::template::to_value(&answer) }).expect(probe);
            assert_eq!(lazy, converted, "{probe}");
        }
        assert!(json(j!(null)).is_none());
        assert_eq!(json(j!("x")).as_str(), Some("x"));
    }

    /// Back to JSON (a templated value that is one expression keeps its type) with the same
    /// content.
    #[test]
    fn a_view_serialises_as_the_json_it_reads() {
        let answer = j!({"b": [1, {"c": null}], "a": "x"});
        let back = serde_json::to_value(json(answer.clone())).expect("serialises");
        assert_eq!(back, answer);
    }
}
