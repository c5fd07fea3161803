//! From a multi-step incident to an episode: what `templatize` records of the turns after the
//! question (see [`from_incident`]).

use crate::chat::{FunctionDef, Message, Role, ToolDef};
use crate::incident::Incident;
use crate::probe::ToolOutputSlot;
use crate::probe::episode::{Episode, RecordedAnswer, RecordsLookup, ToolSim};
use crate::tool_output::{self, Record, Records};
use crate::trajectory::{Step, ToolResult, Trajectory};

/// Whether an incident is multi-step after its question turn `q_index`: its recorded
/// trajectory holds two or more tool rounds, or its bad output is a tool call made after a
/// tool result (the agent went wrong mid-way). One look-up and a wrong final answer is not.
pub fn is_multi_step(incident: &Incident, q_index: usize) -> bool {
    let after = &incident.conversation[q_index + 1..];
    let rounds = after
        .iter()
        .filter(|m| m.role == Role::Assistant && !m.tool_calls.is_empty())
        .count();
    let results = after.iter().any(|m| m.role == Role::Tool);
    let bad_calls = incident
        .bad_output
        .as_ref()
        .is_some_and(|b| !b.tool_calls.is_empty());
    rounds >= 2 || (bad_calls && results)
}

/// What an incident's recorded turns make of an episode.
#[derive(Debug, Clone)]
pub struct FromIncident {
    /// The `episode` section: each called tool's recorded results (by arguments), `mutating`
    /// for every tool that does not read as a look-up, a plain acknowledgement as the `static`
    /// result of an acting tool the incident never saw answered.
    pub episode: Episode,
    /// The recorded trajectory, the bad output as its last step: what the checks must fail.
    pub trajectory: Trajectory,
    /// Tools the agent called that the captured catalog lacks (a capture without `tools`),
    /// with a schema read off their arguments.
    pub added_tools: Vec<ToolDef>,
    /// Every record the incident's structured results hold, as the tool-output slot
    /// [`RECORDS_SLOT`] that the look-up tools' `records` answers read (so a careful agent's
    /// look-up of a record the incident only listed is answered too). `None` when no result
    /// is structured or no look-up tool takes a record field as an argument.
    pub records_slot: Option<ToolOutputSlot>,
}

/// The slot id of the incident's records (see [`FromIncident::records_slot`]).
pub const RECORDS_SLOT: &str = "incident_records";

/// The result an acting tool gets when the incident never recorded one.
pub const ACK: &str = r#"{"status": "ok"}"#;

/// Builds the episode of an incident from its question turn `q_index` on: the turns after it
/// (assistant tool calls and their results, matched by call id, else in order) and the bad
/// output.
pub fn from_incident(incident: &Incident, q_index: usize) -> FromIncident {
    let after = &incident.conversation[q_index + 1..];
    let mut episode = Episode::default();
    let mut trajectory = Trajectory::default();
    let mut used: Vec<usize> = Vec::new();
    for (i, m) in after.iter().enumerate() {
        if m.role != Role::Assistant {
            continue;
        }
        let mut step = Step {
            text: m.content_str().to_string(),
            tool_calls: m.tool_calls.clone(),
            ..Default::default()
        };
        for c in &m.tool_calls {
            let answer = after
                .iter()
                .enumerate()
                .skip(i + 1)
                .find(|(j, t)| {
                    t.role == Role::Tool
                        && !used.contains(j)
                        && t.tool_call_id.as_deref() == Some(c.id.as_str())
                })
                .or_else(|| {
                    after.iter().enumerate().skip(i + 1).find(|(j, t)| {
                        t.role == Role::Tool && !used.contains(j) && t.tool_call_id.is_none()
                    })
                });
            let Some((j, result)) = answer else { continue };
            used.push(j);
            let content = result.content_str().to_string();
            let sim = episode
                .tools
                .entry(c.function.name.clone())
                .or_insert_with(ToolSim::default);
            sim.mutating = !crate::tool_catalog::looks_read_only(&c.function.name);
            let arguments = c
                .arguments_json()
                .filter(|a| a.is_object())
                .unwrap_or_else(|| serde_json::json!({}));
            let norm = crate::probe::episode::normalise(&arguments);
            if !sim
                .recorded
                .iter()
                .any(|r| crate::probe::episode::normalise(&r.arguments) == norm)
            {
                sim.recorded.push(RecordedAnswer {
                    arguments,
                    result: content.clone(),
                });
            }
            step.results.push(ToolResult {
                call_id: c.id.clone(),
                tool: c.function.name.clone(),
                content,
                source: "recorded".into(),
                mutating: sim.mutating,
                answered_as: None,
            });
        }
        trajectory.steps.push(step);
    }
    if let Some(b) = &incident.bad_output {
        trajectory.steps.push(Step {
            text: b.text.clone(),
            tool_calls: b.tool_calls.clone(),
            ..Default::default()
        });
    }
    // The catalog, with any tool called but not offered in the capture.
    let mut added_tools: Vec<ToolDef> = Vec::new();
    for c in trajectory.calls() {
        let name = &c.function.name;
        if incident.tools.iter().any(|t| t.function.name == *name)
            || added_tools.iter().any(|t| t.function.name == *name)
        {
            continue;
        }
        let properties: serde_json::Map<String, serde_json::Value> = match c.arguments_json() {
            Some(serde_json::Value::Object(m)) => m
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!({"type": json_type(v)})))
                .collect(),
            _ => Default::default(),
        };
        added_tools.push(ToolDef {
            kind: "function".into(),
            function: FunctionDef {
                name: name.clone(),
                description: None,
                parameters: serde_json::json!({"type": "object", "properties": properties}),
            },
        });
    }
    // Every acting tool answers every call: its recorded result when the arguments match one,
    // else an acknowledgement (the agent's action is what the checks grade, not what the tool
    // said; a careful agent acting on other arguments than production's must not be told its
    // action failed). Look-ups never recorded get the `on_miss` answer.
    for t in incident.tools.iter().chain(&added_tools) {
        let name = &t.function.name;
        if crate::tool_catalog::looks_read_only(name) {
            continue;
        }
        let sim = episode.tools.entry(name.clone()).or_default();
        sim.mutating = true;
        if sim.static_result.is_none() {
            sim.static_result = Some(ACK.to_string());
        }
    }
    // A look-up over every record the results hold, for the look-up tools whose parameters
    // name a record field (`get_order(order_id)` over the orders a search listed).
    let mut all: Vec<Record> = Vec::new();
    for s in &trajectory.steps {
        for r in &s.results {
            if let Some((_, data)) = tool_output::parse_structured(&r.content) {
                for rec in data.records {
                    if !all.contains(&rec) {
                        all.push(rec);
                    }
                }
            }
        }
    }
    let mut records_slot = None;
    if !all.is_empty() {
        for t in incident.tools.iter().chain(&added_tools) {
            let name = &t.function.name;
            if !crate::tool_catalog::looks_read_only(name) {
                continue;
            }
            let params: Vec<String> = t
                .function
                .parameters
                .get("properties")
                .and_then(|p| p.as_object())
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            let Some(key) = params
                .iter()
                .find(|p| all.iter().any(|r| r.contains_key(p.as_str())))
            else {
                continue;
            };
            let sim = episode.tools.entry(name.clone()).or_default();
            sim.records = Some(RecordsLookup {
                slot: RECORDS_SLOT.to_string(),
                key: key.clone(),
                argument: None,
            });
            if records_slot.is_none() {
                let data = Records {
                    records: all.clone(),
                    ..Default::default()
                };
                records_slot = Some(ToolOutputSlot {
                    tool: None,
                    format: "json".into(),
                    original: data.render("json"),
                    data: Some(data),
                    key_records: vec![],
                    key_fields: vec![],
                });
            }
        }
    }
    // Room for the recorded trajectory and a careful agent's extra look-ups.
    let calls = trajectory.calls().count() as u32;
    let steps = trajectory.steps.len() as u32;
    episode.budget.max_tool_calls = episode.budget.max_tool_calls.max(calls * 2 + 4);
    episode.budget.max_turns = episode.budget.max_turns.max(steps * 2 + 2);
    FromIncident {
        episode,
        trajectory,
        added_tools,
        records_slot,
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
        _ => "string",
    }
}

/// The messages of an incident up to and including its question turn: an episode starts there.
pub fn opening(incident: &Incident, q_index: usize) -> &[Message] {
    &incident.conversation[..=q_index]
}
