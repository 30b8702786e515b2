//! `query`: ask droplets for data, all calls of the step at once, each keeping its own outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::StepError;
use crate::backend::{CallStatus, Declared, DropletRequest, FailureKind, Outcome};
use crate::pipeline::{Pipeline, RunEnv, TurnState};
use crate::shapes::Shape;
use crate::statuses::{State, Statuses, Tally};
use crate::trace::CallTrace;

/// The name a fan-out's summary is given beside its outcomes: `health` → `health_summary`.
pub fn summary_name(result: &str) -> String {
    format!("{result}_summary")
}

/// Used when a call sets no `timeout_ms`.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct QueryStep {
    pub calls: Vec<Call>,
    /// What a listening client is told when the droplets are slow to answer.
    pub progress: Option<Progress>,
}

/// A query's progress line: sent once, only to a client that listens, only when the calls
/// have not all answered after `after` (so never after the reply, and not when they are quick).
#[derive(Debug)]
pub struct Progress {
    pub templates: super::ReplyTemplates,
    /// The step's own wait (`after_ms`); otherwise the server's `PROGRESS_AFTER_MS`.
    pub after: Option<Duration>,
}

#[derive(Debug)]
pub struct Call {
    pub target: Target,
    pub endpoint: String,
    /// Explicit method; otherwise the catalogue's.
    pub method: Option<String>,
    pub params: Map<String, Value>,
    pub body: Option<Value>,
    /// The result's name in the template context.
    pub name: String,
    pub timeout: Duration,
}

#[derive(Debug)]
pub enum Target {
    Droplet(i64),
    /// The droplet a `droplet` slot holds.
    Slot(String),
    /// Several droplets; the result is a list.
    FanOut(Vec<i64>),
}

/// One droplet call about to be made, or already decided without calling anyone.
struct Planned {
    call: usize,
    droplet: Value,
    endpoint: String,
    method: String,
    action: Result<DropletRequest, Outcome>,
    /// The answer's declared shape, when the catalogue gives one.
    shape: Option<Shape>,
}

impl QueryStep {
    /// Makes every call concurrently and stores each outcome under its call's name. Returns a
    /// short note for the trace.
    pub async fn run(&self, pipeline: &Pipeline, env: &RunEnv<'_>, state: &mut TurnState) -> Result<String, StepError> {
        // the context is built only when a call renders params or a body (most ask plainly)
        let renders = self.calls.iter().any(|call| !call.params.is_empty() || call.body.is_some());
        let context = if renders { pipeline.context(env, state, &[]) } else { minijinja::Value::UNDEFINED };
        let mut planned = Vec::new();
        for (index, call) in self.calls.iter().enumerate() {
            let params = call
                .params
                .iter()
                .map(|(key, value)| Ok((key.clone(), env.templates.render_value(value, &context)?)))
                .collect::<Result<Map<String, Value>, StepError>>()?;
            let body = call.body.as_ref().map(|b| env.templates.render_value(b, &context)).transpose()?;
            let ids: Result<Vec<i64>, Outcome> = match &call.target {
                Target::Droplet(id) => Ok(vec![*id]),
                Target::FanOut(ids) => Ok(ids.clone()),
                Target::Slot(slot) => {
                    state.slots.get(slot).and_then(Value::as_i64).map(|id| vec![id]).ok_or_else(|| Outcome::Failed {
                        kind: FailureKind::UnknownTarget,
                        message: "No droplet was named.".to_owned(),
                    })
                }
            };
            match ids {
                Ok(ids) => {
                    for id in ids {
                        planned.push(plan(env, index, call, id, params.clone(), body.clone()));
                    }
                }
                Err(outcome) => planned.push(Planned {
                    call: index,
                    droplet: Value::Null,
                    endpoint: call.endpoint.clone(),
                    method: call.method.clone().unwrap_or_default(),
                    action: Err(outcome),
                    shape: None,
                }),
            }
        }

        // which droplets are still awaited, for the progress line
        let waiting: Vec<(String, AtomicBool)> = planned
            .iter()
            .map(|p| {
                let name = p.droplet.get("name").and_then(Value::as_str).unwrap_or("droplet").to_owned();
                (name, AtomicBool::new(true))
            })
            .collect();
        let waiting = &waiting;
        let calls = join_all(planned.into_iter().enumerate().map(|(i, p)| async move {
            let started = Instant::now();
            let (mut outcome, via) = match p.action {
                Err(outcome) => (outcome, String::new()),
                Ok(ref request) => {
                    let via = env.backend.route(request).to_owned();
                    let limit = env.backend.time_limit(request);
                    let outcome = match tokio::time::timeout(limit, env.backend.call(request.clone())).await {
                        Ok(outcome) => outcome,
                        Err(_) => Outcome::timeout(&request.droplet_name, limit),
                    };
                    (outcome, via)
                }
            };
            let unexpected = match (&outcome, &p.shape) {
                (Outcome::Data(answer), Some(shape)) => shape.first_problem(answer),
                _ => None,
            };
            // the answer as it came, kept only when it is replaced: the turn journal records it
            // (a replay checks it against the candidate configuration's shape)
            let mut as_it_came = None;
            if unexpected.is_some() {
                // an answer templates were not written for: say so rather than fail to render it
                let name = p.droplet.get("name").and_then(Value::as_str).unwrap_or("droplet");
                as_it_came = Some(std::mem::replace(
                    &mut outcome,
                    Outcome::Failed {
                        kind: FailureKind::UnexpectedAnswer,
                        message: format!("The {name} answered in a form I did not expect."),
                    },
                ));
            }
            waiting[i].1.store(false, Ordering::Relaxed);
            Finished {
                call: p.call,
                droplet: p.droplet,
                endpoint: p.endpoint,
                method: p.method,
                outcome,
                via,
                elapsed: started.elapsed(),
                unexpected: unexpected.map(|problem| problem.to_string()),
                as_it_came,
            }
        }));
        let finished = match (&self.progress, env.events) {
            (Some(progress), Some(events)) => {
                let after = progress.after.unwrap_or(env.progress_after);
                tokio::pin!(calls);
                tokio::select! {
                    finished = &mut calls => finished,
                    () = tokio::time::sleep(after) => {
                        let mut names: Vec<&str> = Vec::new();
                        for (name, still) in waiting {
                            if still.load(Ordering::Relaxed) && !names.contains(&name.as_str()) {
                                names.push(name);
                            }
                        }
                        let extra = [("waiting_on", crate::template::to_value(&names))];
                        match progress.templates.render_for(pipeline, env, state, &extra) {
                            Ok(text) => {
                                events.progress(&pipeline.intent, text);
                                state.trace.notes.push(format!("progress line sent after {} ms", after.as_millis()));
                            }
                            // a progress line is a courtesy: the reply still comes
                            Err(error) => state.trace.notes.push(format!("the progress line failed: {error}")),
                        }
                        calls.await
                    }
                }
            }
            _ => calls.await,
        };

        let statuses = &env.catalogue.statuses;
        let mut per_call: Vec<Vec<Value>> = vec![Vec::new(); self.calls.len()];
        // a fan-out's outcomes counted by state, for its `<as>_summary`
        let mut tallies: Vec<Option<Tally>> = self
            .calls
            .iter()
            .map(|call| matches!(call.target, Target::FanOut(_)).then(|| Tally::new(statuses)))
            .collect();
        let mut counts = StatusCounts::default();
        for done in finished {
            state.answers.push(recorded(
                &done.droplet,
                &done.endpoint,
                &done.method,
                done.as_it_came.as_ref().unwrap_or(&done.outcome),
            ));
            counts.add(done.outcome.status());
            done.count();
            let (value, shown, problem) = done.template_value(statuses);
            if let Some(tally) = &mut tallies[done.call] {
                tally.add(shown, done.droplet_name(), &value, problem.as_deref());
            }
            per_call[done.call].push(value);
            state.trace.calls.push(done.into_trace());
        }
        for ((call, outcomes), tally) in self.calls.iter().zip(per_call).zip(tallies) {
            let value = match call.target {
                Target::FanOut(_) => Value::Array(outcomes),
                _ => outcomes.into_iter().next().unwrap_or(Value::Null),
            };
            state.results.insert(call.name.clone(), crate::template::json(value));
            if let Some(tally) = tally {
                state.results.insert(summary_name(&call.name), crate::template::json(tally.into_value()));
            }
        }
        Ok(format!("{} data, {} dispatched, {} failed", counts.data, counts.dispatched, counts.failed))
    }
}

/// One call, made or decided without calling: what it was, what became of it, how long it took.
struct Finished {
    call: usize,
    droplet: Value,
    endpoint: String,
    method: String,
    outcome: Outcome,
    via: String,
    elapsed: Duration,
    /// Where the answer broke its declared shape, when it did (the outcome is then `Failed`).
    unexpected: Option<String>,
    /// The answer as it came, when it was replaced because of that.
    as_it_came: Option<Outcome>,
}

impl Finished {
    fn droplet_name(&self) -> &str {
        self.droplet.get("name").and_then(Value::as_str).unwrap_or("(none)")
    }

    /// The call in the metrics: by droplet, way and outcome; failures by kind; unexpected answers.
    fn count(&self) {
        let droplet = self.droplet_name().to_owned();
        metrics::counter!("droplet_calls_total", "droplet" => droplet.clone(), "via" => self.via.clone(), "outcome" => self.outcome.status().as_str())
            .increment(1);
        if let Outcome::Failed { kind, .. } = &self.outcome {
            metrics::counter!("droplet_call_errors_total", "droplet" => droplet.clone(), "kind" => kind.as_str())
                .increment(1);
        }
        if self.unexpected.is_some() {
            metrics::counter!("droplet_answers_unexpected_total", "droplet" => droplet, "endpoint" => self.endpoint.clone())
                .increment(1);
        }
    }

    /// The outcome as templates read it (see `ResultShape::outcome`, which `check` reads it
    /// with: the tests of `config::template_reads` fail when the two differ), with the state its
    /// answer is in and, without data, the sentence saying why.
    fn template_value<'s>(&self, statuses: &'s Statuses) -> (Value, &'s State, Option<String>) {
        let status = self.outcome.status();
        let (data, error, relay, problem) = match &self.outcome {
            Outcome::Data(data) => (Some(data), Value::Null, Value::Null, None),
            Outcome::Dispatched { relay_trace_id } => (
                None,
                Value::Null,
                json!(relay_trace_id),
                Some(format!("Sent to {}, but no answer came back in time.", self.droplet_name())),
            ),
            Outcome::Failed { kind, message } => {
                (None, json!({"kind": kind.as_str(), "message": message}), Value::Null, Some(message.clone()))
            }
        };
        let (shown, word) = statuses.of_answer(data);
        let (label, spoken) = shown.naming(word);
        let value = json!({
            "droplet": self.droplet,
            "endpoint": self.endpoint,
            "method": self.method,
            "status": status,
            "ok": status == CallStatus::Data,
            "data": data,
            "error": error,
            "relay_trace_id": relay,
            "duration_ms": self.elapsed.as_millis() as u64,
            "state": shown.name,
            "icon": shown.icon,
            "reported": word.unwrap_or(&shown.label),
            "label": label,
            "spoken": spoken,
            "problem": problem,
        });
        (value, shown, problem)
    }

    fn into_trace(self) -> CallTrace {
        let error = match &self.outcome {
            Outcome::Failed { message, .. } => Some(message.clone()),
            _ => None,
        };
        CallTrace {
            droplet_id: self.droplet.get("id").and_then(Value::as_i64).unwrap_or_default(),
            droplet: self.droplet_name().to_owned(),
            endpoint: self.endpoint,
            method: self.method,
            via: self.via,
            duration_ms: self.elapsed.as_millis() as u64,
            outcome: self.outcome.status(),
            error,
            unexpected: self.unexpected,
        }
    }
}

/// A call and its answer as the turn journal keeps them.
fn recorded(droplet: &Value, endpoint: &str, method: &str, outcome: &Outcome) -> crate::session::RecordedCall {
    let (data, kind, message) = match outcome {
        Outcome::Data(data) => (Some(data.clone()), None, None),
        Outcome::Dispatched { .. } => (None, None, None),
        Outcome::Failed { kind, message } => (None, Some(kind.as_str().to_owned()), Some(message.clone())),
    };
    crate::session::RecordedCall {
        droplet: droplet.get("id").and_then(Value::as_i64).unwrap_or_default(),
        endpoint: endpoint.to_owned(),
        method: method.to_owned(),
        outcome: outcome.status(),
        data,
        kind,
        message,
    }
}

impl QueryStep {
    /// One line for `explain`: who is asked what, under which names.
    pub fn describe(&self, catalogue: &crate::catalogue::Catalogue) -> String {
        let calls: Vec<String> = self
            .calls
            .iter()
            .map(|call| {
                let who = match &call.target {
                    Target::Droplet(id) => {
                        let droplet = catalogue.by_id(*id);
                        let method = call
                            .method
                            .clone()
                            .or_else(|| droplet.and_then(|d| d.endpoint(&call.endpoint)).map(|e| e.method.clone()))
                            .unwrap_or_default();
                        let name = droplet.map(|d| d.name.clone()).unwrap_or_else(|| format!("droplet {id}"));
                        format!("{name} {method} {}", call.endpoint)
                    }
                    Target::Slot(slot) => format!("the droplet in slot `{slot}`, {}", call.endpoint),
                    Target::FanOut(ids) => format!("{} droplets at once, {}", ids.len(), call.endpoint),
                };
                format!("{who} as `{}`", call.name)
            })
            .collect();
        format!("query {}", calls.join("; "))
    }
}

fn plan(
    env: &RunEnv<'_>,
    index: usize,
    call: &Call,
    id: i64,
    params: Map<String, Value>,
    body: Option<Value>,
) -> Planned {
    let Some(droplet) = env.catalogue.by_id(id) else {
        return Planned {
            call: index,
            droplet: json!({"id": id, "key": null, "name": format!("droplet {id}"), "purpose": ""}),
            endpoint: call.endpoint.clone(),
            method: call.method.clone().unwrap_or_default(),
            action: Err(Outcome::Failed {
                kind: FailureKind::UnknownTarget,
                message: format!("There is no droplet {id} in the catalogue."),
            }),
            shape: None,
        };
    };
    let described = json!({"id": droplet.id, "key": droplet.key, "name": droplet.name, "purpose": droplet.purpose});
    let Some(endpoint) = droplet.endpoint(&call.endpoint) else {
        return Planned {
            call: index,
            droplet: described,
            endpoint: call.endpoint.clone(),
            method: call.method.clone().unwrap_or_default(),
            action: Err(Outcome::Failed {
                kind: FailureKind::UnknownEndpoint,
                message: format!("The {} has no endpoint {}.", droplet.name, call.endpoint),
            }),
            shape: None,
        };
    };
    let method = call.method.clone().unwrap_or_else(|| endpoint.method.clone());
    // `/tasks` may be both GET and POST: the shape is the one of the method called
    let declared = droplet.endpoint_for(&call.endpoint, &method);
    let shape = declared.and_then(|e| e.response.clone());
    Planned {
        call: index,
        droplet: described,
        endpoint: call.endpoint.clone(),
        method: method.clone(),
        action: Ok(DropletRequest {
            droplet_id: droplet.id,
            droplet_name: droplet.name.clone(),
            endpoint: call.endpoint.clone(),
            method,
            params,
            body,
            timeout: call.timeout,
            trace_id: env.trace_id.to_owned(),
            declared: declared.map(|endpoint| Declared {
                sample: endpoint.sample.clone(),
                native: endpoint.native.clone(),
                templates: env.templates.clone(),
            }),
        }),
        shape,
    }
}

/// How many of a step's calls ended each way.
#[derive(Debug, Default)]
struct StatusCounts {
    data: usize,
    dispatched: usize,
    failed: usize,
}

impl StatusCounts {
    fn add(&mut self, status: CallStatus) {
        match status {
            CallStatus::Data => self.data += 1,
            CallStatus::Dispatched => self.dispatched += 1,
            CallStatus::Failed => self.failed += 1,
        }
    }
}
