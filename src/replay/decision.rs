//! Decision rules: what a logged answer and a candidate's answer *decided*, as one short
//! string compared for equality. A replayed call whose two decisions differ is a flip.

use crate::chat::ChatResponse;
use crate::grade::check::{Check, JsonFieldCheck, TextMatch, ToolCallCheck};
use regex::Regex;
use serde_json::Value;

/// The decision of an answer that has none under the rule (no tool call, no field, no match).
/// A logged answer without a decision is *undecided* and is not replayed; a candidate answer
/// without one decided this: a flip from the logged decision to `(none)`.
pub const NO_DECISION: &str = "(none)";

/// How a decision is read from an answer (`--decision`).
#[derive(Debug, Clone)]
pub enum DecisionRule {
    /// `tool_call`: the name of the final tool call; `tool_call:ARG` adds that argument's
    /// value (`issue_refund(amount=40)`).
    ToolCall {
        /// The argument added to the name.
        arg: Option<String>,
    },
    /// `json_field:POINTER`: the value at a JSON pointer (or dotted path) of the JSON in the
    /// answer text (else of the final tool call's arguments); strings without quotes.
    JsonField {
        /// As written.
        path: String,
        /// As a JSON pointer.
        pointer: String,
    },
    /// `regex:PATTERN`: the first capture group of the first match, else the whole match.
    Regex(Regex),
    /// `label:A|B|C`: the label found first in the answer text (whole word, any case),
    /// written as in the rule.
    Label {
        /// The labels, as written.
        labels: Vec<String>,
        /// Any of them, as whole words, case-insensitive.
        pattern: Regex,
    },
}

impl std::fmt::Display for DecisionRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecisionRule::ToolCall { arg: None } => write!(f, "tool_call"),
            DecisionRule::ToolCall { arg: Some(a) } => write!(f, "tool_call:{a}"),
            DecisionRule::JsonField { path, .. } => write!(f, "json_field:{path}"),
            DecisionRule::Regex(r) => write!(f, "regex:{}", r.as_str()),
            DecisionRule::Label { labels, .. } => write!(f, "label:{}", labels.join("|")),
        }
    }
}

impl std::str::FromStr for DecisionRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k.trim(), Some(a)),
            None => (s.trim(), None),
        };
        match (kind, arg) {
            ("tool_call", None) => Ok(DecisionRule::ToolCall { arg: None }),
            ("tool_call", Some(a)) if !a.trim().is_empty() => Ok(DecisionRule::ToolCall {
                arg: Some(a.trim().to_string()),
            }),
            ("json_field", Some(p)) if !p.trim().is_empty() => Ok(DecisionRule::JsonField {
                path: p.trim().to_string(),
                pointer: crate::grade::to_pointer(p.trim()),
            }),
            ("regex", Some(p)) if !p.is_empty() => Regex::new(p)
                .map(DecisionRule::Regex)
                .map_err(|e| format!("`regex:{p}` is not a valid regular expression: {e}")),
            ("label", Some(l)) => {
                let labels: Vec<String> = l
                    .split('|')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect();
                if labels.is_empty() {
                    return Err("`label:` needs labels: label:approve|deny|escalate".into());
                }
                let alternatives: Vec<String> = labels.iter().map(|l| regex::escape(l)).collect();
                let pattern = Regex::new(&format!(r"(?i)\b(?:{})\b", alternatives.join("|")))
                    .map_err(|e| format!("labels `{l}`: {e}"))?;
                Ok(DecisionRule::Label { labels, pattern })
            }
            _ => Err(format!(
                "`{s}` is not a decision rule; expected tool_call, tool_call:ARG, json_field:POINTER, regex:PATTERN or label:A|B|C"
            )),
        }
    }
}

impl DecisionRule {
    /// The decision of `answer`, or `None` when the rule finds none in it.
    pub fn decide(&self, answer: &ChatResponse) -> Option<String> {
        match self {
            DecisionRule::ToolCall { arg } => {
                let call = answer.tool_calls.last()?;
                let name = call.function.name.clone();
                match arg {
                    None => Some(name),
                    Some(a) => {
                        let args = call.arguments_json().unwrap_or(Value::Null);
                        let v = args
                            .get(a)
                            .map(scalar)
                            .unwrap_or_else(|| NO_DECISION.into());
                        Some(format!("{name}({a}={v})"))
                    }
                }
            }
            DecisionRule::JsonField { pointer, .. } => {
                let from_text = crate::grade::extract_json(&answer.text)
                    .and_then(|v| v.pointer(pointer).map(scalar));
                from_text.or_else(|| {
                    answer
                        .tool_calls
                        .last()?
                        .arguments_json()?
                        .pointer(pointer)
                        .map(scalar)
                })
            }
            DecisionRule::Regex(re) => {
                let caps = re.captures(&answer.text)?;
                let m = caps.get(1).or_else(|| caps.get(0))?;
                Some(m.as_str().trim().to_string())
            }
            DecisionRule::Label { labels, pattern } => {
                let m = pattern.find(&answer.text)?;
                labels
                    .iter()
                    .find(|l| {
                        l.eq_ignore_ascii_case(m.as_str())
                            || l.to_lowercase() == m.as_str().to_lowercase()
                    })
                    .cloned()
            }
        }
    }

    /// Checks a correct answer passes when the right decision is `right` and the wrong one
    /// `wrong`: what an incident made from a flip expects (see `replay::incidents`).
    pub fn checks_for(&self, right: &str, wrong: &str) -> Vec<Check> {
        match self {
            DecisionRule::ToolCall { arg } => {
                let (name, value) = split_call(right, arg.as_deref());
                let mut arguments = indexmap::IndexMap::new();
                if let (Some(a), Some(v)) = (arg, value) {
                    let v: Value = serde_json::from_str(&v).unwrap_or(Value::String(v));
                    arguments.insert(a.clone(), v);
                }
                if name == NO_DECISION {
                    // No check type says "calls no tool": the judge reads it.
                    let (wrong_name, _) = split_call(wrong, arg.as_deref());
                    return vec![Check::Judge(crate::grade::check::JudgeCheck {
                        rubric: format!(
                            "The assistant does not call the tool `{wrong_name}` at this step."
                        ),
                    })];
                }
                vec![Check::ToolCall(ToolCallCheck { name, arguments })]
            }
            DecisionRule::JsonField { path, .. } => {
                let equals: Value = serde_json::from_str(right)
                    .unwrap_or_else(|_| Value::String(right.to_string()));
                vec![Check::JsonField(JsonFieldCheck {
                    path: path.clone(),
                    equals,
                })]
            }
            DecisionRule::Regex(_) | DecisionRule::Label { .. } => {
                // Labels match in any case; a regex decision is compared as found.
                let ignore_case = matches!(self, DecisionRule::Label { .. });
                let text = |v: &str| TextMatch::Options {
                    value: v.to_string(),
                    ignore_case,
                };
                let mut checks = Vec::new();
                if right != NO_DECISION {
                    checks.push(Check::Contains(text(right)));
                }
                if wrong != NO_DECISION && !right.to_lowercase().contains(&wrong.to_lowercase()) {
                    checks.push(Check::NotContains(text(wrong)));
                }
                checks
            }
        }
    }
}

/// `name(arg=value)` back into its name and value.
fn split_call(decision: &str, arg: Option<&str>) -> (String, Option<String>) {
    if let Some(a) = arg
        && let Some(open) = decision.find(&format!("({a}="))
        && decision.ends_with(')')
    {
        let value = &decision[open + a.len() + 2..decision.len() - 1];
        let value = (value != NO_DECISION).then(|| value.to_string());
        return (decision[..open].to_string(), value);
    }
    (decision.to_string(), None)
}

/// A JSON value as decision text: strings bare, everything else as compact JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ToolCall;

    fn text(t: &str) -> ChatResponse {
        ChatResponse {
            text: t.into(),
            ..Default::default()
        }
    }

    fn call(name: &str, args: Value) -> ChatResponse {
        ChatResponse {
            tool_calls: vec![
                ToolCall::new("x", "lookup", &Value::Null),
                ToolCall::new("y", name, &args),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn rules_parse_and_print_back() {
        for s in [
            "tool_call",
            "tool_call:amount",
            "json_field:/decision",
            "regex:Decision: (\\w+)",
            "label:approve|deny",
        ] {
            let r: DecisionRule = s.parse().unwrap();
            assert_eq!(r.to_string(), s);
        }
        for bad in ["", "tool", "json_field:", "regex:(", "label:|", "label"] {
            assert!(bad.parse::<DecisionRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn each_rule_decides() {
        let tc: DecisionRule = "tool_call".parse().unwrap();
        assert_eq!(
            tc.decide(&call("refund", serde_json::json!({"amount": 40})))
                .as_deref(),
            Some("refund")
        );
        assert_eq!(tc.decide(&text("no tools")), None);
        let tca: DecisionRule = "tool_call:amount".parse().unwrap();
        assert_eq!(
            tca.decide(&call("refund", serde_json::json!({"amount": 40})))
                .as_deref(),
            Some("refund(amount=40)")
        );
        assert_eq!(
            tca.decide(&call("refund", serde_json::json!({})))
                .as_deref(),
            Some("refund(amount=(none))")
        );
        let jf: DecisionRule = "json_field:decision.kind".parse().unwrap();
        assert_eq!(
            jf.decide(&text("```json\n{\"decision\": {\"kind\": \"deny\"}}\n```"))
                .as_deref(),
            Some("deny")
        );
        assert_eq!(
            jf.decide(&call("f", serde_json::json!({"decision": {"kind": 3}})))
                .as_deref(),
            Some("3")
        );
        assert_eq!(jf.decide(&text("no json")), None);
        let re: DecisionRule = "regex:(?i)decision: (\\w+)".parse().unwrap();
        assert_eq!(
            re.decide(&text("Thinking... Decision: Approve."))
                .as_deref(),
            Some("Approve")
        );
        let whole: DecisionRule = "regex:[A-Z]{3}-\\d+".parse().unwrap();
        assert_eq!(
            whole.decide(&text("route to ESC-2 now")).as_deref(),
            Some("ESC-2")
        );
        let lb: DecisionRule = "label:approve|deny|escalate".parse().unwrap();
        assert_eq!(
            lb.decide(&text("I would DENY this, not approve it"))
                .as_deref(),
            Some("deny")
        );
        assert_eq!(lb.decide(&text("approved")), None, "whole words only");
    }

    #[test]
    fn checks_for_a_flip_pass_the_right_answer_and_fail_the_wrong_one() {
        let cases: Vec<(&str, ChatResponse, ChatResponse)> = vec![
            (
                "tool_call",
                call("refund", serde_json::json!({})),
                call("deny", serde_json::json!({})),
            ),
            (
                "tool_call:amount",
                call("refund", serde_json::json!({"amount": 40})),
                call("refund", serde_json::json!({"amount": 400})),
            ),
            (
                "json_field:/d",
                text("{\"d\": \"approve\"}"),
                text("{\"d\": \"deny\"}"),
            ),
            ("label:approve|deny", text("Approve."), text("Deny.")),
            (
                "regex:Decision: (\\w+)",
                text("Decision: approve"),
                text("Decision: deny"),
            ),
        ];
        for (rule, good, bad) in cases {
            let r: DecisionRule = rule.parse().unwrap();
            let (right, wrong) = (r.decide(&good).unwrap(), r.decide(&bad).unwrap());
            let checks = r.checks_for(&right, &wrong);
            assert!(!checks.is_empty());
            assert_eq!(
                crate::grade::grade(&checks, &good).0,
                crate::grade::CaseStatus::Pass,
                "{rule}"
            );
            assert_eq!(
                crate::grade::grade(&checks, &bad).0,
                crate::grade::CaseStatus::Fail,
                "{rule}"
            );
        }
    }
}
