//! The `episode` section of a probe file: how each tool is simulated, what a call that matches
//! nothing gets, and the budget. Plain data, reviewable YAML; [`Episode::validate`] checks what
//! the types cannot (tools that exist, slots that exist, sensible budgets) and names the field.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Default for [`Budget::max_tool_calls`]: generous for a look-up-then-act task, small enough
/// that an agent calling tools in a loop is stopped after a few seconds of a real endpoint.
pub const DEFAULT_MAX_TOOL_CALLS: u32 = 16;
/// Default for [`Budget::max_turns`] (model calls per episode).
pub const DEFAULT_MAX_TURNS: u32 = 8;

/// What the simulator answers a call of a tool that matches nothing, when neither the tool nor
/// the episode says otherwise.
pub const DEFAULT_MISS_MESSAGE: &str = "error: no result for these arguments (not found)";

/// How a probe's case runs as an episode (see the crate's `episode` module).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Episode {
    /// Per tool (by name, as offered in the probe's `tools`), how the simulator answers it.
    #[serde(default)]
    pub tools: IndexMap<String, ToolSim>,
    /// What a call gets that no tool entry answers: a call of an unknown tool, of a tool
    /// without an entry here, or a miss of a tool without its own `on_miss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_miss: Option<OnMiss>,
    /// Limits on the episode.
    #[serde(default)]
    pub budget: Budget,
}

/// How one tool is answered. Answers are tried in order: `recorded` (on the normalised
/// arguments), then `records`, then `static`; a call none of them answers gets `on_miss`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSim {
    /// The tool changes the world (refund, cancel, send): its calls are marked in the
    /// trajectory, so a reviewer sees every action the agent took.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mutating: bool,
    /// The incident's results, each for the arguments it was called with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recorded: Vec<RecordedAnswer>,
    /// A look-up over a slot's records: a call naming a key value gets that record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<RecordsLookup>,
    /// A fixed result for any call.
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_result: Option<String>,
    /// What a call of this tool that matches nothing gets (default: the episode's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_miss: Option<OnMiss>,
}

/// One recorded result of a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedAnswer {
    /// The arguments of the recorded call (an object). A call matches when its arguments
    /// equal these after normalisation (key order, whitespace, number formats).
    #[serde(default = "empty_object")]
    pub arguments: serde_json::Value,
    /// The result text as recorded.
    pub result: String,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A look-up over the records of a tool-output slot (`slots.tool_outputs.ID.data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsLookup {
    /// The slot whose records are looked up.
    pub slot: String,
    /// The record field holding the key (`order_id`).
    pub key: String,
    /// The call argument holding the key value (default: the argument named like `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argument: Option<String>,
}

/// What a call that matches nothing gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OnMiss {
    /// `off-script`: the episode stops there, recorded as off-script (a `fail`, never an
    /// `error`): the agent did something the incident cannot answer.
    Keyword(OnMissKeyword),
    /// `{error: MESSAGE}`: the tool answers with this error text and the episode goes on.
    Error {
        /// The error message the agent sees as the tool's result.
        error: String,
    },
}

/// The keyword form of [`OnMiss`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnMissKeyword {
    /// Stop the episode.
    #[serde(rename = "off-script")]
    OffScript,
}

impl OnMiss {
    /// The `off-script` policy.
    pub const OFF_SCRIPT: OnMiss = OnMiss::Keyword(OnMissKeyword::OffScript);

    /// The default policy: a not-found error message.
    pub fn default_error() -> OnMiss {
        OnMiss::Error {
            error: DEFAULT_MISS_MESSAGE.to_string(),
        }
    }
}

/// Limits on one episode. An agent that exhausts one fails with the reason `budget: …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Most tool calls in all (default [`DEFAULT_MAX_TOOL_CALLS`]).
    #[serde(default = "default_max_tool_calls")]
    pub max_tool_calls: u32,
    /// Most model calls (default [`DEFAULT_MAX_TURNS`]).
    #[serde(default = "default_max_turns")]
    pub max_turns: u32,
    /// Most tokens (input + output, summed over the model calls); no limit by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
}

fn default_max_tool_calls() -> u32 {
    DEFAULT_MAX_TOOL_CALLS
}

fn default_max_turns() -> u32 {
    DEFAULT_MAX_TURNS
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_tool_calls: DEFAULT_MAX_TOOL_CALLS,
            max_turns: DEFAULT_MAX_TURNS,
            max_tokens: None,
        }
    }
}

/// A problem in the `episode` section: the field (dotted, below `episode`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// The field, e.g. `tools.get_order.records.slot`.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Episode {
    /// Checks the section against the probe's tools and slots. `tools` are the names the probe
    /// offers; `slot_records` says whether a tool-output slot exists and holds records.
    pub fn validate(
        &self,
        tools: &[&str],
        slot_records: &dyn Fn(&str) -> Option<bool>,
    ) -> Result<(), SpecProblem> {
        let problem = |field: String, message: String| Err(SpecProblem { field, message });
        if self.budget.max_turns == 0 {
            return problem(
                "budget.max_turns".into(),
                "must be at least 1 (the model is called at least once)".into(),
            );
        }
        if self.budget.max_tokens == Some(0) {
            return problem(
                "budget.max_tokens".into(),
                "must be at least 1, or left out for no limit".into(),
            );
        }
        if let Some(OnMiss::Error { error }) = &self.on_miss
            && error.trim().is_empty()
        {
            return problem(
                "on_miss.error".into(),
                "is empty; write the message the agent sees".into(),
            );
        }
        for (name, sim) in &self.tools {
            let at = |f: &str| format!("tools.{name}{f}");
            if !tools.contains(&name.as_str()) {
                return problem(
                    at(""),
                    format!(
                        "the probe offers no tool `{name}`; expected one of: {}",
                        tools.join(", ")
                    ),
                );
            }
            for (i, r) in sim.recorded.iter().enumerate() {
                if !r.arguments.is_object() {
                    return problem(
                        at(&format!(".recorded[{i}].arguments")),
                        "must be a mapping of argument names to values".into(),
                    );
                }
            }
            if let Some(l) = &sim.records {
                match slot_records(&l.slot) {
                    None => {
                        return problem(
                            at(".records.slot"),
                            format!("no tool-output slot `{}` in `slots.tool_outputs`", l.slot),
                        );
                    }
                    Some(false) => {
                        return problem(
                            at(".records.slot"),
                            format!(
                                "slot `{}` holds no records (its output is not structured)",
                                l.slot
                            ),
                        );
                    }
                    Some(true) => {}
                }
                if l.key.trim().is_empty() {
                    return problem(at(".records.key"), "is empty; name a record field".into());
                }
            }
            if sim.recorded.is_empty() && sim.records.is_none() && sim.static_result.is_none() {
                return problem(
                    at(""),
                    "answers nothing: give `recorded`, `records` or `static`".into(),
                );
            }
            if let Some(OnMiss::Error { error }) = &sim.on_miss
                && error.trim().is_empty()
            {
                return problem(
                    at(".on_miss.error"),
                    "is empty; write the message the agent sees".into(),
                );
            }
        }
        Ok(())
    }
}

/// Whether some result the simulator may return is structured (records), so the `format`
/// and `length` axes change what the agent sees.
pub fn has_structured_results(e: &Episode) -> bool {
    e.tools.values().any(|t| {
        t.records.is_some()
            || t.recorded
                .iter()
                .any(|r| crate::tool_output::parse_structured(&r.result).is_some())
            || t.static_result
                .as_deref()
                .is_some_and(|s| crate::tool_output::parse_structured(s).is_some())
    })
}

/// Arguments in a normal form, so that a call matches its recorded twin however it was
/// written: object keys sorted, `null` fields dropped (an absent optional argument), strings
/// trimmed with inner whitespace collapsed, numbers compared by value (`1e3`, `1000`, `1000.0`
/// are one number).
pub fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> = m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, normalise(v)))
                .collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        Value::String(s) => Value::String(collapse(s)),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Value::from(f as i64)
            }
            Some(f) => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or_else(|| v.clone()),
            None => v.clone(),
        },
        other => other.clone(),
    }
}

/// Trims and collapses runs of whitespace to one space.
pub(crate) fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_yaml_form_reads_with_defaults() {
        let e: Episode = serde_saphyr::from_str(
            "tools:\n  get_order:\n    recorded:\n      - arguments: {order_id: B-1}\n        result: '{\"status\": \"authorized\"}'\n    on_miss: off-script\n  refund:\n    mutating: true\n    static: ok\non_miss: {error: nope}\nbudget:\n  max_tool_calls: 3\n",
        )
        .unwrap();
        assert_eq!(e.budget.max_tool_calls, 3);
        assert_eq!(e.budget.max_turns, DEFAULT_MAX_TURNS);
        assert_eq!(e.tools["get_order"].on_miss, Some(OnMiss::OFF_SCRIPT));
        assert!(e.tools["refund"].mutating);
        assert_eq!(e.tools["refund"].static_result.as_deref(), Some("ok"));
        assert_eq!(
            e.on_miss,
            Some(OnMiss::Error {
                error: "nope".into()
            })
        );
        let again: Episode = serde_saphyr::from_str(&serde_saphyr::to_string(&e).unwrap()).unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn validation_names_the_field() {
        let e: Episode = serde_saphyr::from_str("tools:\n  nope:\n    static: x\n").unwrap();
        let p = e.validate(&["get_order"], &|_| None).unwrap_err();
        assert_eq!(p.field, "tools.nope");
        let e: Episode = serde_saphyr::from_str(
            "tools:\n  get_order:\n    records: {slot: call_9, key: order_id}\n",
        )
        .unwrap();
        let p = e.validate(&["get_order"], &|_| None).unwrap_err();
        assert_eq!(p.field, "tools.get_order.records.slot");
        let e: Episode = serde_saphyr::from_str("tools:\n  get_order: {}\n").unwrap();
        assert!(
            e.validate(&["get_order"], &|_| None)
                .unwrap_err()
                .message
                .contains("answers nothing")
        );
        let e: Episode = serde_saphyr::from_str("budget: {max_turns: 0}\n").unwrap();
        assert_eq!(
            e.validate(&[], &|_| None).unwrap_err().field,
            "budget.max_turns"
        );
        assert!(serde_saphyr::from_str::<Episode>("on_miss: sometimes\n").is_err());
    }
}
