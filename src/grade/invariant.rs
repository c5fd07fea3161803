//! Invariance: for an `invariant: true` probe, every variant's answer must agree with the
//! canonical variant's answer (CheckList's INV tests), so brittleness is measurable even where
//! no exact expected answer exists.
//!
//! This module is the pure part: the normalised [`answer_key`] that invariance compares, and
//! the verdicts ([`pending`], [`reference()`], [`compare`]). Answers arrive out of order, so
//! invariance cannot be graded case by case: while the sweep runs, an invariant probe's cases
//! carry a *pending* `invariant` verdict (ungraded, never a pass), and when the sweep (or a
//! `--resume`) ends, the running layer (`sweep::invariance::finalise`) reads the run's cases
//! from the store and regrades them with these functions.
//!
//! When the canonical case is missing or an `error`, the variants' `invariant` verdict is
//! ungraded ("no canonical answer to compare"), never a pass.

use crate::chat::ToolCall;
use crate::grade::{self, CheckVerdict};
use regex::Regex;

/// The check name of invariance verdicts, as stored and exported.
pub const CHECK: &str = "invariant";

/// Longest excerpt of an answer key quoted in a reason (characters).
const EXCERPT_CHARS: usize = 80;

/// The normalised answer that invariance compares:
///
/// 1. when the answer has **tool calls**: each call as `name(arguments)` with the arguments as
///    canonical JSON (keys sorted, `42.0` written `42`), sorted, joined by `; `;
/// 2. else, when the probe has an `answer_pattern` that matches the text: its first capture
///    group (or the whole match), normalised as in 4;
/// 3. else, when the text holds a JSON object or array (whole, fenced, or the outermost
///    `{…}`): that JSON in canonical form;
/// 4. else the text, normalised by [`grade::normalise_answer`] (surrounding whitespace, quotes,
///    backticks, asterisks and a trailing period removed), with runs of whitespace collapsed
///    to one space and letters lowercased.
pub fn answer_key(output: &str, tool_calls: &[ToolCall], pattern: Option<&Regex>) -> String {
    if !tool_calls.is_empty() {
        let mut calls: Vec<String> = tool_calls
            .iter()
            .map(|c| {
                let args = c
                    .arguments_json()
                    .map(|v| canonical_json(&v))
                    .unwrap_or_else(|| c.function.arguments.trim().to_string());
                format!("{}({args})", c.function.name)
            })
            .collect();
        calls.sort();
        return calls.join("; ");
    }
    if let Some(re) = pattern
        && let Some(c) = re.captures(output)
        && let Some(m) = c.get(1).or_else(|| c.get(0))
    {
        return normalise_text(m.as_str());
    }
    if let Some(v) = grade::extract_json(output)
        && (v.is_object() || v.is_array())
    {
        return canonical_json(&v);
    }
    normalise_text(output)
}

fn normalise_text(s: &str) -> String {
    grade::normalise_answer(s)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// JSON with object keys sorted at every level and integral numbers without a fraction, so
/// that `{"b": 1.0, "a": 2}` and `{"a":2,"b":1}` are the same answer.
pub fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// The verdict an invariant probe's variant case carries until the end of the sweep compares
/// it with the canonical's.
pub fn pending() -> CheckVerdict {
    CheckVerdict {
        check: CHECK.to_string(),
        passed: None,
        reason: "pending: compared with the canonical answer when the sweep ends".to_string(),
    }
}

/// The verdict of the canonical case itself: it is the reference.
pub fn reference() -> CheckVerdict {
    CheckVerdict {
        check: CHECK.to_string(),
        passed: Some(true),
        reason: "the canonical answer: the reference the variants are compared with".to_string(),
    }
}

/// The invariance verdict of one variant's answer key against the canonical's (`None`: no
/// canonical answer).
pub fn compare(variant: &str, canonical: Option<&str>) -> CheckVerdict {
    let (passed, reason) = match canonical {
        None => (
            None,
            "no canonical answer to compare (the canonical case is missing or an error)"
                .to_string(),
        ),
        Some(c) if c == variant => (
            Some(true),
            format!(
                "same answer as the canonical: {}",
                grade::excerpt(variant, EXCERPT_CHARS)
            ),
        ),
        Some(c) => (
            Some(false),
            format!(
                "answer differs from canonical: {} (canonical: {})",
                grade::excerpt(variant, EXCERPT_CHARS),
                grade::excerpt(c, EXCERPT_CHARS)
            ),
        ),
    };
    CheckVerdict {
        check: CHECK.to_string(),
        passed,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> String {
        answer_key(text, &[], None)
    }

    #[test]
    fn text_answers_are_normalised() {
        assert_eq!(key("  \"The total is   42.\" "), "the total is 42");
        assert_eq!(key("The total is 42"), key("the total is 42."));
        assert_ne!(key("The total is 42"), key("The total is 43"));
    }

    #[test]
    fn json_answers_compare_by_content() {
        assert_eq!(
            key("Here:\n```json\n{\"b\": 1.0, \"a\": [2, {\"y\": 1, \"x\": 0}]}\n```"),
            key("{\"a\":[2,{\"x\":0,\"y\":1}],\"b\":1}")
        );
        assert_eq!(key("{\"b\": 1, \"a\": 2}"), "{\"a\":2,\"b\":1}");
        // A bare number or string is text, not JSON.
        assert_eq!(key("\"approved\""), key("Approved."));
    }

    #[test]
    fn tool_calls_win_and_ignore_argument_order() {
        let a = ToolCall::new(
            "1",
            "refund",
            &serde_json::json!({"id": "A-1", "amount": 3}),
        );
        let b = ToolCall::new("2", "notify", &serde_json::json!({}));
        let mut a2 = a.clone();
        a2.function.arguments = "{\"amount\": 3.0, \"id\": \"A-1\"}".into();
        assert_eq!(
            answer_key("ignored", &[a.clone(), b.clone()], None),
            answer_key("other text", &[b, a2], None)
        );
        assert_eq!(
            answer_key("", &[a], None),
            "refund({\"amount\":3,\"id\":\"A-1\"})"
        );
    }

    #[test]
    fn the_answer_pattern_picks_the_answer_out_of_free_text() {
        let re = Regex::new(r"(?i)total(?: is|:)\s*\$?([\d.,]*\d)").unwrap();
        assert_eq!(
            answer_key("Sure! The total is $42.50, thanks.", &[], Some(&re)),
            answer_key("Total: 42.50", &[], Some(&re))
        );
        // No match: the whole text is compared.
        assert_eq!(answer_key("I don't know", &[], Some(&re)), "i don't know");
    }

    #[test]
    fn verdicts_never_pass_without_a_canonical() {
        assert_eq!(compare("a", None).passed, None);
        assert_eq!(compare("a", Some("a")).passed, Some(true));
        let v = compare("43", Some("42"));
        assert_eq!(v.passed, Some(false));
        assert!(
            v.reason.starts_with("answer differs from canonical: 43"),
            "{}",
            v.reason
        );
        assert_eq!(pending().passed, None);
        assert_eq!(reference().passed, Some(true));
    }
}
