//! The trajectory of an episode: every model call (its text, tool calls and tokens) and every
//! simulated result, in order, and why the episode stopped. Stored with the case, exported as
//! JSON, shown compactly in reports (`get_order_by_id(B-20931) → refund_payment(B-20931)`).

use crate::chat::{ChatResponse, ToolCall, Usage};
use crate::grade::check::Check;
use crate::grade::{self, CaseStatus, CheckVerdict};
use serde::{Deserialize, Serialize};

/// Why an episode stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The model answered without calling a tool.
    Answered,
    /// A budget ran out (a `fail`).
    Budget,
    /// The model made a call the simulator stops on (`on_miss: off-script`; a `fail`).
    OffScript,
    /// A model call got no answer (an `error`, never a `fail`).
    Error,
}

impl StopReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Answered => "answered",
            StopReason::Budget => "budget",
            StopReason::OffScript => "off-script",
            StopReason::Error => "error",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<StopReason> {
        Some(match s {
            "answered" => StopReason::Answered,
            "budget" => StopReason::Budget,
            "off-script" => StopReason::OffScript,
            "error" => StopReason::Error,
            _ => return None,
        })
    }
}

/// One simulated tool result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The call it answers.
    pub call_id: String,
    /// The tool called.
    pub tool: String,
    /// What the agent was given.
    pub content: String,
    /// How the simulator answered: `recorded`, `records`, `static`, `miss` or `off-script`.
    pub source: String,
    /// The tool changes the world (marked so every action is visible).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mutating: bool,
    /// The catalog tool the call was answered as, when the called tool is an added
    /// near-duplicate (see [`crate::episode::ToolAliases`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_as: Option<String>,
}

/// One model call of an episode and the results the simulator gave its tool calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The model's text.
    #[serde(default)]
    pub text: String,
    /// The tool calls the model made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The simulated results, one per answered call, in call order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ToolResult>,
    /// Prompt tokens of this call.
    #[serde(default)]
    pub input_tokens: u64,
    /// Completion tokens of this call.
    #[serde(default)]
    pub output_tokens: u64,
    /// Answered from the response cache (no HTTP).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// Why generation stopped, as the endpoint said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// Every step of an episode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Trajectory {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Trajectory {
    /// Every tool call of the episode, in order.
    pub fn calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.steps.iter().flat_map(|s| s.tool_calls.iter())
    }

    /// Model calls made.
    pub fn model_calls(&self) -> usize {
        self.steps.len()
    }

    /// The compact form for reports: `get_order_by_id(B-20931) → refund_payment(B-20931)`,
    /// each call with its argument values (strings unquoted), mutating calls marked `!`, the
    /// final answer as `"…"` when there is one. At most `max_chars` characters.
    pub fn compact(&self, max_chars: usize) -> String {
        self.compact_with(max_chars, 30)
    }

    /// [`Self::compact`] with every argument value whole (for the probe file's
    /// `source.bad_output`, which records what happened).
    pub fn compact_whole(&self) -> String {
        self.compact_with(usize::MAX, usize::MAX)
    }

    fn compact_with(&self, max_chars: usize, arg_chars: usize) -> String {
        let mut parts: Vec<String> = Vec::new();
        for s in &self.steps {
            for c in &s.tool_calls {
                let mutating = s.results.iter().any(|r| r.call_id == c.id && r.mutating);
                parts.push(format!(
                    "{}{}({})",
                    c.function.name,
                    if mutating { "!" } else { "" },
                    argument_values(c, arg_chars)
                ));
            }
        }
        if let Some(last) = self.steps.last()
            && last.tool_calls.is_empty()
            && !last.text.trim().is_empty()
        {
            parts.push(format!(
                "\"{}\"",
                crate::grade::excerpt(last.text.trim(), 60)
            ));
        }
        let joined = parts.join(" → ");
        if max_chars == usize::MAX {
            return joined;
        }
        crate::grade::excerpt(&joined, max_chars)
    }

    /// The whole trajectory as plain text, for the judge and the HTML report: each step's text,
    /// calls and results.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.steps.iter().enumerate() {
            out.push_str(&format!("[step {}]\n", i + 1));
            if !s.text.trim().is_empty() {
                out.push_str(&format!("assistant: {}\n", s.text.trim()));
            }
            for c in &s.tool_calls {
                out.push_str(&format!(
                    "call {}({})\n",
                    c.function.name, c.function.arguments
                ));
                if let Some(r) = s.results.iter().find(|r| r.call_id == c.id) {
                    out.push_str(&format!("result ({}): {}\n", r.source, r.content));
                }
            }
        }
        out
    }
}

/// A call's argument values, comma-separated, strings unquoted: `B-20931, wrong artwork`.
fn argument_values(c: &ToolCall, max_chars: usize) -> String {
    let cut = |s: &str| {
        if max_chars == usize::MAX {
            s.to_string()
        } else {
            crate::grade::excerpt(s, max_chars)
        }
    };
    match c.arguments_json() {
        Some(serde_json::Value::Object(m)) => m
            .values()
            .map(|v| match v {
                serde_json::Value::String(s) => cut(s),
                other => cut(&other.to_string()),
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => crate::grade::excerpt(&c.function.arguments, 40),
    }
}

/// Why and where an episode stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The kind.
    pub reason: StopReason,
    /// In words (`budget: 8 model calls (max_turns) without a final answer`).
    pub detail: String,
}

/// The episode's answer as one response: the last step's text when it called no tool, every
/// tool call of the episode in order, tokens summed over the steps, the last finish reason.
pub fn final_response(t: &Trajectory) -> ChatResponse {
    let last = t.steps.last();
    ChatResponse {
        text: last
            .filter(|s| s.tool_calls.is_empty())
            .map(|s| s.text.clone())
            .unwrap_or_default(),
        tool_calls: t.calls().cloned().collect(),
        finish_reason: last.and_then(|s| s.finish_reason.clone()),
        usage: Usage {
            input_tokens: t.steps.iter().map(|s| s.input_tokens).sum(),
            output_tokens: t.steps.iter().map(|s| s.output_tokens).sum(),
        },
        model: None,
    }
}

/// Grades a finished episode: the checks on [`final_response`] (`tool_call` and the trajectory
/// checks see every call; answer checks the final answer), plus a failed `budget` or
/// `off-script` verdict when the episode stopped that way. Not for an `error` stop (no answer
/// to grade: the caller records the error).
/// Grades a finished episode: the checks on [`final_response`] (`tool_call` and the trajectory
/// checks see every call; answer checks the final answer), plus a failed `budget` or
/// `off-script` verdict when the episode stopped that way. Not for an `error` stop (no answer
/// to grade: the caller records the error).
pub fn grade(
    checks: &[Check],
    trajectory: &Trajectory,
    stop: &Stop,
) -> (CaseStatus, Vec<CheckVerdict>) {
    let (_, mut verdicts) = grade::grade(checks, &final_response(trajectory));
    match stop.reason {
        StopReason::Budget => verdicts.push(CheckVerdict {
            check: "budget".into(),
            passed: Some(false),
            reason: stop.detail.clone(),
        }),
        StopReason::OffScript => verdicts.push(CheckVerdict {
            check: "off-script".into(),
            passed: Some(false),
            reason: stop.detail.clone(),
        }),
        StopReason::Answered | StopReason::Error => {}
    }
    (grade::fold_status(&verdicts), verdicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_form_reads_like_the_calls() {
        let t = Trajectory {
            steps: vec![
                Step {
                    tool_calls: vec![ToolCall::new(
                        "c1",
                        "get_order_by_id",
                        &json!({"order_id": "B-20931"}),
                    )],
                    ..Default::default()
                },
                Step {
                    tool_calls: vec![ToolCall::new(
                        "c2",
                        "refund_payment",
                        &json!({"order_id": "B-20931"}),
                    )],
                    results: vec![ToolResult {
                        call_id: "c2".into(),
                        tool: "refund_payment".into(),
                        content: "ok".into(),
                        source: "static".into(),
                        mutating: true,
                        answered_as: None,
                    }],
                    ..Default::default()
                },
                Step {
                    text: "Refunded.".into(),
                    ..Default::default()
                },
            ],
        };
        assert_eq!(
            t.compact(200),
            "get_order_by_id(B-20931) → refund_payment!(B-20931) → \"Refunded.\""
        );
        assert_eq!(t.calls().count(), 2);
        assert!(t.transcript().contains("result (static): ok"));
        let back: Trajectory = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        assert_eq!(StopReason::parse("off-script"), Some(StopReason::OffScript));
    }
}
