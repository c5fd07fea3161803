//! Replay: logged production calls re-run on a candidate model, and the decisions that flip.
//!
//! The pieces: [`log`] streams the records out of JSONL and OTLP logs; [`decision`] reads a
//! decision out of an answer by one rule; [`ClassRule`] gives each record its class; [`run`]
//! replays the records through the provider, the response cache and the store (resumable,
//! with rate limits, retries and budgets), then the noise-floor sample and the judge;
//! [`crate::report::replay`] reads the counts back from the store and renders them; [`incidents`] writes
//! flips as incident files `templatize` takes.

pub mod decision;
pub mod incidents;
pub mod judge;
pub mod log;
pub mod run;

pub use decision::{DecisionRule, NO_DECISION};
pub use log::{LogFormat, LoggedCall};
pub use run::{ReplayOptions, ReplayProgress, ReplaySummary, run};

use crate::probe::LoadedProbe;
use serde_json::{Map, Value};

/// The class of a record nothing else classifies.
pub const UNCLASSIFIED: &str = "unclassified";

/// How a record gets its class.
///
/// 1. `--class-field KEY`: the value at KEY in the record's metadata (JSONL `metadata`, or the
///    span's attributes): the exact key first (span attribute keys hold dots), else KEY read
///    as a dotted path into nested objects. A missing or empty value is "unclassified".
/// 2. Without it, the suite's capability classes: a record whose metadata has a string value
///    (at any depth) equal to a capability class (case-insensitive) belongs to it; else a record that offers
///    every tool one probe family's `tool_call` checks name belongs to the first such probe's
///    class (suite order).
/// 3. Else "unclassified".
#[derive(Debug, Clone, Default)]
pub struct ClassRule {
    /// `--class-field`.
    pub field: Option<String>,
    /// The suite's capability classes, with the tools their probes' checks name.
    pub suite: Vec<SuiteClass>,
}

/// A capability class of the suite, for rule 2 of [`ClassRule`].
#[derive(Debug, Clone)]
pub struct SuiteClass {
    /// The capability class.
    pub capability: String,
    /// Tools one probe of that class names in its `tool_call` checks (empty: none).
    pub tools: Vec<String>,
}

impl ClassRule {
    /// The suite's classes from loaded probes (one entry per probe, in suite order).
    pub fn from_suite(field: Option<String>, probes: &[LoadedProbe]) -> ClassRule {
        let suite = probes
            .iter()
            .map(|lp| SuiteClass {
                capability: lp.probe.capability.clone(),
                tools: lp
                    .probe
                    .checks
                    .iter()
                    .filter_map(|c| match c {
                        crate::grade::check::Check::ToolCall(t) => Some(t.name.clone()),
                        _ => None,
                    })
                    .collect(),
            })
            .collect();
        ClassRule { field, suite }
    }

    /// The class of `call`.
    pub fn class_of(&self, call: &LoggedCall) -> String {
        if let Some(field) = &self.field {
            return lookup(&call.metadata, field)
                .and_then(class_text)
                .unwrap_or_else(|| UNCLASSIFIED.to_string());
        }
        if let Some(c) = call.metadata.values().find_map(|v| self.class_named_in(v)) {
            return c.capability.clone();
        }
        let offered: Vec<&str> = call
            .request
            .tools
            .iter()
            .map(|t| t.function.name.as_str())
            .collect();
        self.suite
            .iter()
            .find(|c| !c.tools.is_empty() && c.tools.iter().all(|t| offered.contains(&t.as_str())))
            .map(|c| c.capability.clone())
            .unwrap_or_else(|| UNCLASSIFIED.to_string())
    }
}

impl ClassRule {
    /// The first suite class a string in `v` names, looking into nested objects and lists in
    /// document order (JSONL metadata is often nested: `{"team": {"queue": "refunds"}}`).
    fn class_named_in(&self, v: &Value) -> Option<&SuiteClass> {
        match v {
            Value::String(s) => self
                .suite
                .iter()
                .find(|c| c.capability.eq_ignore_ascii_case(s.trim())),
            Value::Object(o) => o.values().find_map(|v| self.class_named_in(v)),
            Value::Array(a) => a.iter().find_map(|v| self.class_named_in(v)),
            _ => None,
        }
    }
}

/// `key` in `map`: the exact key, else a dotted path into nested objects.
fn lookup<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(key) {
        return Some(v);
    }
    let mut parts = key.split('.');
    let mut cur = map.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Value::Object(o) => o.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn class_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.trim().to_string()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatRequest, ChatResponse, ToolDef};

    fn call(meta: Value, tools: &[&str]) -> LoggedCall {
        LoggedCall {
            place: "x:1".into(),
            seq: 0,
            id: "1".into(),
            timestamp: None,
            metadata: meta.as_object().cloned().unwrap_or_default(),
            request: ChatRequest {
                messages: vec![],
                tools: tools
                    .iter()
                    .map(|t| ToolDef {
                        kind: "function".into(),
                        function: crate::chat::FunctionDef {
                            name: t.to_string(),
                            description: None,
                            parameters: Value::Null,
                        },
                    })
                    .collect(),
            },
            logged: ChatResponse::default(),
            logged_model: None,
        }
    }

    #[test]
    fn class_field_exact_then_dotted() {
        let rule = ClassRule {
            field: Some("app.class".into()),
            suite: vec![],
        };
        assert_eq!(
            rule.class_of(&call(serde_json::json!({"app.class": "refunds"}), &[])),
            "refunds"
        );
        assert_eq!(
            rule.class_of(&call(serde_json::json!({"app": {"class": "billing"}}), &[])),
            "billing"
        );
        assert_eq!(
            rule.class_of(&call(serde_json::json!({"app": {}}), &[])),
            UNCLASSIFIED
        );
        assert_eq!(
            rule.class_of(&call(serde_json::json!({"app.class": 3}), &[])),
            "3"
        );
    }

    #[test]
    fn suite_classes_by_metadata_value_then_tools() {
        let rule = ClassRule {
            field: None,
            suite: vec![
                SuiteClass {
                    capability: "refund-triage".into(),
                    tools: vec!["issue_refund".into(), "deny_refund".into()],
                },
                SuiteClass {
                    capability: "lookup".into(),
                    tools: vec![],
                },
            ],
        };
        assert_eq!(
            rule.class_of(&call(serde_json::json!({"flow": "Lookup"}), &[])),
            "lookup"
        );
        assert_eq!(
            rule.class_of(&call(
                serde_json::json!({}),
                &["deny_refund", "issue_refund", "x"]
            )),
            "refund-triage"
        );
        // A class named in nested metadata wins over the tools offered.
        assert_eq!(
            rule.class_of(&call(
                serde_json::json!({"tenant": "acme", "team": {"queue": "LOOKUP"}}),
                &["deny_refund", "issue_refund"]
            )),
            "lookup"
        );
        assert_eq!(
            rule.class_of(&call(serde_json::json!({"tags": [1, "lookup"]}), &[])),
            "lookup"
        );
        assert_eq!(
            rule.class_of(&call(serde_json::json!({}), &["issue_refund"])),
            UNCLASSIFIED
        );
    }
}
