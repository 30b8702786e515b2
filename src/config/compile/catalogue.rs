//! The droplet catalogue (droplets, endpoints, their answer shapes and samples) and this
//! droplet's identity, whose droplet numbers must be in it.

use std::collections::BTreeMap;
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::Value;

use super::{Compiler, Document, Scope};
use crate::catalogue::{Catalogue, Droplet, Endpoint, NativeForm};
use crate::config::answer_shapes;
use crate::config::files::{CATALOGUE_FILE, UDC_CONFIG_FILE};
use crate::config::schema::Schema;
use crate::config::spec::{CatalogueSpec, StatusSpec, UdcConfigSpec};
use crate::diagnostic::{Code, Diagnostic, Position};
use crate::identity::Identity;
use crate::statuses::{self, State, Statuses};
use crate::template::{Templates, SAMPLE_CONTEXT_NAMES};

impl Compiler<'_> {
    pub(super) fn catalogue(&mut self, schema: &Schema, templates: &Templates) -> Option<Catalogue> {
        let Some(text) = self.files.get(CATALOGUE_FILE) else {
            self.report(
                Diagnostic::new(Code::Io, CATALOGUE_FILE, Position::default(), "the droplet catalogue is missing")
                    .with_help("create catalogue/droplets.yaml listing the droplets of the mesh"),
            );
            return None;
        };
        let (document, spec) = self.parse::<CatalogueSpec>(CATALOGUE_FILE, text, schema)?;
        let shapes = answer_shapes::named(&document, &spec.shapes, &mut |d| self.report(d));
        // samples and native payloads are rendered with a call's `body` and `params`, outside any
        // pipeline, so no slots
        let no_slots = IndexMap::new();
        let known = SAMPLE_CONTEXT_NAMES.iter().map(|s| s.to_string()).collect();
        let samples = Scope::new(&document, templates, known, &no_slots);
        let mut seen_ids: BTreeMap<i64, String> = BTreeMap::new();
        let mut seen_names: BTreeMap<String, String> = BTreeMap::new();
        let mut droplets = Vec::new();
        for (i, d) in spec.droplets.iter().enumerate() {
            let here = format!("/droplets/{i}");
            // every number and name this droplet answers to, with where it is written
            let mut numbers = vec![(d.id, format!("{here}/id"))];
            // the display name and key are matched in free text too (see `Catalogue::recognize`)
            let mut names =
                vec![(d.key.clone(), format!("{here}/key")), (d.name.to_lowercase(), format!("{here}/name"))];
            for (j, alias) in d.aliases.iter().enumerate() {
                let pointer = format!("{here}/aliases/{j}");
                match alias {
                    Value::Number(n) => numbers.extend(n.as_i64().map(|id| (id, pointer))),
                    Value::String(s) => names.push((s.to_lowercase(), pointer)),
                    _ => {}
                }
            }
            let alias_ids: Vec<i64> = numbers.iter().skip(1).map(|(id, _)| *id).collect();
            let aliases: Vec<String> = names.iter().skip(2).map(|(name, _)| name.clone()).collect();
            for (id, pointer) in &numbers {
                let id = *id;
                if let Some(owner) = seen_ids.insert(id, d.name.clone()) {
                    self.report(
                        Diagnostic::new(
                            Code::DuplicateDroplet,
                            CATALOGUE_FILE,
                            document.at(pointer),
                            format!("droplet number {id} is used twice ({owner} and {})", d.name),
                        )
                        .with_help("give every droplet its own number"),
                    );
                }
            }
            for (name, pointer) in names {
                if let Some(owner) = seen_names.get(&name) {
                    if owner != &d.name {
                        self.report(
                            Diagnostic::new(
                                Code::DuplicateDroplet,
                                CATALOGUE_FILE,
                                document.at(&pointer),
                                format!("the name `{name}` is used by both {owner} and {}", d.name),
                            )
                            .with_help("remove the alias from one of them, so users' words point at one droplet"),
                        );
                    }
                } else {
                    seen_names.insert(name, d.name.clone());
                }
            }
            let mut endpoints = Vec::new();
            for (j, e) in d.endpoints.iter().enumerate() {
                let at = format!("{here}/endpoints/{j}");
                let response = e.response.as_ref().and_then(|written| {
                    answer_shapes::response(&document, &format!("{at}/response"), written, &shapes, &mut |d| {
                        self.report(d)
                    })
                });
                let request = e.request.as_ref().and_then(|schema| {
                    answer_shapes::request(&document, &format!("{at}/request"), schema, &mut |d| self.report(d))
                });
                if let (Some(sample), Some(shape)) = (&e.sample, &response) {
                    answer_shapes::check_sample(&document, &format!("{at}/sample"), sample, shape, &mut |d| {
                        self.report(d)
                    });
                }
                if let Some(sample) = &e.sample {
                    self.check_templated(&samples, &format!("{here}/endpoints/{j}/sample"), sample);
                }
                if let Some(native) = &e.native {
                    if d.id != crate::droplet_ids::ORCHESTRATOR {
                        self.report(
                            Diagnostic::new(
                                Code::NativeTarget,
                                CATALOGUE_FILE,
                                document.at(&format!("{here}/endpoints/{j}/native")),
                                format!(
                                    "`native` on the {} would never be used: only the Orchestrator (droplet {}) answers questions itself",
                                    d.name,
                                    crate::droplet_ids::ORCHESTRATOR
                                ),
                            )
                            .with_help("remove `native` here; calls to this droplet go the way MESH_MODE says"),
                        );
                    }
                    self.check_templated(&samples, &format!("{here}/endpoints/{j}/native/payload"), &native.payload);
                }
                endpoints.push(Endpoint {
                    path: e.path.clone(),
                    method: e.method.clone(),
                    description: e.description.clone(),
                    backing: e.backing.clone().unwrap_or_else(|| "source".to_owned()),
                    response,
                    request,
                    sample: e.sample.clone().map(Arc::new),
                    native: e.native.as_ref().map(|n| {
                        Arc::new(NativeForm { message_type: n.message_type.clone(), payload: n.payload.clone() })
                    }),
                });
            }
            droplets.push(Droplet {
                id: d.id,
                key: d.key.clone(),
                name: d.name.clone(),
                purpose: d.purpose.clone(),
                aliases,
                alias_ids,
                endpoints,
            });
        }
        let statuses = self.statuses(&document, &spec.statuses);
        if !spec.statuses.is_empty() {
            self.unlisted_sample_statuses(&document, &spec, &statuses);
        }
        Some(Catalogue::new(droplets).with_statuses(Arc::new(statuses)))
    }

    /// A warning for each sample answer of a GET whose `status` word no state lists: the real
    /// droplet presumably says it too, and replies would call it unknown. (A POST's `status` is
    /// the state of what it made, a task or an onboarding, not the droplet's.)
    fn unlisted_sample_statuses(&mut self, document: &Document, spec: &CatalogueSpec, statuses: &Statuses) {
        for (i, d) in spec.droplets.iter().enumerate() {
            for (j, e) in d.endpoints.iter().enumerate().filter(|(_, e)| e.method.eq_ignore_ascii_case("GET")) {
                let Some(word) = e.sample.as_ref().and_then(|s| s.get("status")).and_then(Value::as_str) else {
                    continue;
                };
                // a templated word is only known when a call renders it
                if word.contains("{{") || statuses.of_word(Some(word)).name != statuses::UNKNOWN {
                    continue;
                }
                self.warnings.push(
                    Diagnostic::new(
                        Code::UnlistedStatus,
                        CATALOGUE_FILE,
                        document.at(&format!("/droplets/{i}/endpoints/{j}/sample/status")),
                        format!(
                            "the {}'s sample answer to {} {} reports the status `{word}`, which no state of `statuses:` lists, so replies call it unknown",
                            d.name, e.method, e.path
                        ),
                    )
                    .with_help(format!("add `{word}` to the `words` of the state it means, under `statuses:` at the top of this file")),
                );
            }
        }
    }

    /// `statuses:`: each word means one state, and the engine's own states (`unknown`,
    /// `no_answer`) are reached without words, so listing words for them would mislead.
    fn statuses(&mut self, document: &Document, spec: &IndexMap<String, StatusSpec>) -> Statuses {
        // each word with the state that lists it and where
        let mut owners: BTreeMap<String, (&str, u32)> = BTreeMap::new();
        let mut states = Vec::new();
        for (name, status) in spec {
            let here = format!("/statuses/{name}");
            if (name == statuses::UNKNOWN || name == statuses::NO_ANSWER) && !status.words.is_empty() {
                let meaning = if name == statuses::UNKNOWN {
                    "any status word no other state lists"
                } else {
                    "a call that brought no data back"
                };
                self.report(
                    Diagnostic::new(
                        Code::BadStatus,
                        CATALOGUE_FILE,
                        document.at(&format!("{here}/words")),
                        format!("`{name}` is the engine's state for {meaning}; it takes no words"),
                    )
                    .with_help("remove `words` here, or list them under a state of your own"),
                );
            }
            let mut words = Vec::new();
            for (i, word) in status.words.iter().enumerate() {
                let word = word.trim().to_lowercase();
                let at = document.at(&format!("{here}/words/{i}"));
                match owners.get(&word) {
                    Some((owner, line)) => self.report(
                        Diagnostic::new(
                            Code::BadStatus,
                            CATALOGUE_FILE,
                            at,
                            format!(
                                "the status word `{word}` is listed under both `{owner}` (line {line}) and `{name}`"
                            ),
                        )
                        .with_help("a word means one state: keep it under one of them"),
                    ),
                    None => {
                        owners.insert(word.clone(), (name, at.line));
                        words.push(word);
                    }
                }
            }
            let label = status.label.clone().unwrap_or_else(|| name.replace('_', " "));
            states.push(State {
                name: name.clone(),
                icon: status.icon.clone(),
                spoken: status.spoken.clone().unwrap_or_else(|| label.clone()),
                label,
                words,
            });
        }
        Statuses::new(states)
    }

    /// `udc_config.json`: schema, and every droplet number it names must be in the catalogue.
    pub(super) fn identity(&mut self, schema: &Schema, catalogue: &Catalogue) -> Option<Identity> {
        let Some(text) = self.files.get(UDC_CONFIG_FILE) else {
            self.report(
                Diagnostic::new(Code::Io, UDC_CONFIG_FILE, Position::default(), "udc_config.json is missing")
                    .with_help(
                    "create udc_config.json at the root with this droplet's identity, capabilities and dependencies",
                ),
            );
            return None;
        };
        let (document, spec) = self.parse::<UdcConfigSpec>(UDC_CONFIG_FILE, text, schema)?;
        let named = std::iter::once((spec.droplet.id, "/droplet/id".to_owned()))
            .chain(
                spec.dependencies
                    .required
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (*id, format!("/dependencies/required/{i}"))),
            )
            .chain(
                spec.dependencies
                    .optional
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (*id, format!("/dependencies/optional/{i}"))),
            );
        let mut ok = true;
        for (id, pointer) in named {
            if catalogue.by_id(id).is_none() {
                ok = false;
                self.report(
                    Diagnostic::new(
                        Code::UnknownDroplet,
                        UDC_CONFIG_FILE,
                        document.at(&pointer),
                        format!("droplet {id} is not in the catalogue"),
                    )
                    .with_help(format!("known droplets: {}", catalogue.names().join(", "))),
                );
            }
        }
        ok.then_some(Identity {
            id: spec.droplet.id,
            name: spec.droplet.name,
            steward: spec.droplet.steward,
            endpoint: spec.droplet.endpoint,
            udc_version: spec.droplet.udc_version,
            features: spec.capabilities.features,
            supported_sources: spec.capabilities.supported_sources,
            required: spec.dependencies.required,
            optional: spec.dependencies.optional,
        })
    }
}
