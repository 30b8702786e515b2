//! What the tests reach: `chat-orchestrator test --coverage`.
//!
//! While pipeline `tests:` and conversation fixtures run, the engine reports each pipeline run
//! here (the steps it ran or skipped, the templates it rendered, the outcome of each droplet
//! call). The report lists what no test reached, each with its file and line: an intent never
//! chosen, a step never run, a `when:` never true (or never false), a template never rendered,
//! a query whose answer never came back as data, or never failed or went unanswered — the
//! replies a steward has never seen.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::config::CompiledConfig;
use crate::pipeline::Pipeline;
use crate::steps::Step;
use crate::trace::TurnTrace;

/// One thing a test made happen.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Reached {
    Intent(String),
    /// A step ran (`true`) or was skipped by its `when:` (`false`).
    Step {
        intent: String,
        index: usize,
        ran: bool,
    },
    Template(String),
    /// A call to `endpoint` ended as `data`, `dispatched` or `failed`.
    Outcome {
        intent: String,
        endpoint: String,
        status: String,
    },
}

/// Collects what the runs reached; shared by every engine of one `test` run.
#[derive(Debug, Default)]
pub struct Coverage {
    reached: Mutex<BTreeSet<Reached>>,
}

/// Something no test reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// `pipelines/x.yaml:12`, or the template's path.
    pub at: String,
    pub what: String,
}

/// How much was reached, by kind: (reached, of).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub intents: (usize, usize),
    pub steps: (usize, usize),
    pub branches: (usize, usize),
    pub templates: (usize, usize),
    pub outcomes: (usize, usize),
}

impl Coverage {
    /// Notes one pipeline run of a turn (its own trace, before replies are joined).
    pub fn record(&self, pipeline: &Pipeline, trace: &TurnTrace) {
        let mut reached = self.reached.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        reached.insert(Reached::Intent(pipeline.intent.clone()));
        for step in &trace.steps {
            reached.insert(Reached::Step {
                intent: pipeline.intent.clone(),
                index: step.index as usize,
                ran: step.ran,
            });
        }
        for template in &trace.templates {
            reached.insert(Reached::Template(template.clone()));
        }
        for call in &trace.calls {
            reached.insert(Reached::Outcome {
                intent: pipeline.intent.clone(),
                endpoint: call.endpoint.clone(),
                status: call.outcome.as_str().to_owned(),
            });
        }
    }

    /// What no run reached in `config`, in file order, and the totals.
    pub fn report(&self, config: &CompiledConfig) -> (Vec<Gap>, Summary) {
        let reached = self.reached.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut gaps = Vec::new();
        let mut summary = Summary::default();
        let mut seen_templates = BTreeSet::new();
        let count = |pair: &mut (usize, usize), hit: bool| {
            pair.1 += 1;
            if hit {
                pair.0 += 1;
            }
        };
        for pipeline in &config.pipelines {
            let intent = &pipeline.intent;
            let file = &pipeline.file;
            let chosen = reached.contains(&Reached::Intent(intent.clone()));
            count(&mut summary.intents, chosen);
            if !chosen {
                gaps.push(Gap { at: format!("{file}:1"), what: format!("intent `{intent}` is never chosen") });
            }
            for (index, guarded) in pipeline.steps.iter().enumerate() {
                let at = format!("{file}:{}", pipeline.step_lines.get(index).copied().unwrap_or(1));
                let ran = reached.contains(&Reached::Step { intent: intent.clone(), index, ran: true });
                count(&mut summary.steps, ran);
                if !ran {
                    gaps.push(Gap {
                        at: at.clone(),
                        what: format!("step {} ({}) never runs", index + 1, guarded.step.kind()),
                    });
                }
                if let Some(condition) = &guarded.when {
                    let skipped = reached.contains(&Reached::Step { intent: intent.clone(), index, ran: false });
                    count(&mut summary.branches, ran);
                    count(&mut summary.branches, skipped);
                    if !skipped {
                        gaps.push(Gap { at: at.clone(), what: format!("`when: {condition}` is never false") });
                    }
                }
                for template in templates_of(&guarded.step) {
                    if seen_templates.insert(template.clone()) {
                        let rendered = reached.contains(&Reached::Template(template.clone()));
                        count(&mut summary.templates, rendered);
                        if !rendered {
                            gaps.push(Gap { at: format!("templates/{template}"), what: "never rendered".to_owned() });
                        }
                    }
                }
                if let Step::Query(query) = &guarded.step {
                    for call in &query.calls {
                        for status in ["data", "dispatched", "failed"] {
                            let hit = reached.contains(&Reached::Outcome {
                                intent: intent.clone(),
                                endpoint: call.endpoint.clone(),
                                status: status.to_owned(),
                            });
                            count(&mut summary.outcomes, hit);
                            if !hit {
                                gaps.push(Gap {
                                    at: at.clone(),
                                    what: format!("`{}` ({}) never ends `{status}`", call.name, call.endpoint),
                                });
                            }
                        }
                    }
                }
            }
        }
        (gaps, summary)
    }
}

/// The pipeline's own reply templates a step renders (the shared give-up replies aside).
fn templates_of(step: &Step) -> Vec<String> {
    match step {
        Step::Format(format) => vec![format.templates.chat.clone(), format.templates.voice.clone()],
        Step::Confirm(confirm) => vec![
            confirm.ask.chat.clone(),
            confirm.ask.voice.clone(),
            confirm.declined.chat.clone(),
            confirm.declined.voice.clone(),
        ],
        Step::Extract(extract) => vec![extract.ask.chat.clone(), extract.ask.voice.clone()],
        Step::Reason(_) | Step::Query(_) => Vec::new(),
    }
}

impl Summary {
    /// "intents 14/14 · steps 40/42 · …".
    pub fn line(&self) -> String {
        let part = |name: &str, (hit, of): (usize, usize)| format!("{name} {hit}/{of}");
        [
            part("intents", self.intents),
            part("steps", self.steps),
            part("when: branches", self.branches),
            part("templates", self.templates),
            part("call outcomes", self.outcomes),
        ]
        .join(" · ")
    }
}
