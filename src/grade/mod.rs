//! Grading: the verdict of each check on one model answer, and the case status they add up to.
//!
//! Grading is pure and deterministic: this module and its submodules import only the leaves
//! (`chat`, `error`), never the probe, the store or anything that calls a model, so the probe
//! and the store can use them. What a probe expects is [`check`]; the verdicts and the folding
//! into a [`CaseStatus`] are here; the judge's question and the reading of its reply are
//! [`judge`]; the invariance answer key and its verdicts are [`invariant`]. Calling the judge and
//! regrading a run's invariant probes in the store belong to the running layer (`sweep`).
//!
//! A case passes when every check passes; a `judge` check is never graded here (it needs a
//! model), so here it leaves the case `ungraded` rather than passed.
//! An `error` status never comes from here: it belongs to the sweep, for answers that never
//! arrived, and no check is graded on a broken response.

pub mod check;
pub mod invariant;
pub mod judge;

use crate::chat::ChatResponse;
use check::{Check, JsonFieldCheck, TextMatch, ToolCallCheck};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The outcome of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    /// Every check passed.
    Pass,
    /// At least one check failed.
    Fail,
    /// The answer never arrived (timeout, 5xx, malformed body…): not a model failure.
    Error,
    /// No check failed, but some could not be graded (a judge check outside a sweep, an
    /// invariance check without a canonical answer): not a pass.
    Ungraded,
}

impl CaseStatus {
    /// Lowercase name as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Pass => "pass",
            CaseStatus::Fail => "fail",
            CaseStatus::Error => "error",
            CaseStatus::Ungraded => "ungraded",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<CaseStatus> {
        Some(match s {
            "pass" => CaseStatus::Pass,
            "fail" => CaseStatus::Fail,
            "error" => CaseStatus::Error,
            "ungraded" => CaseStatus::Ungraded,
            _ => return None,
        })
    }
}

/// The verdict of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckVerdict {
    /// Check type (`contains`, …).
    pub check: String,
    /// `Some(true)` passed, `Some(false)` failed, `None` ungraded.
    pub passed: Option<bool>,
    /// Why, in words a reviewer can act on.
    pub reason: String,
}

/// Grades every check and folds the verdicts into a status.
pub fn grade(checks: &[Check], response: &ChatResponse) -> (CaseStatus, Vec<CheckVerdict>) {
    let verdicts: Vec<CheckVerdict> = checks.iter().map(|c| grade_one(c, response)).collect();
    (fold_status(&verdicts), verdicts)
}

/// Folds verdicts: any failure fails; otherwise any ungraded leaves the case ungraded.
pub fn fold_status(verdicts: &[CheckVerdict]) -> CaseStatus {
    if verdicts.iter().any(|v| v.passed == Some(false)) {
        CaseStatus::Fail
    } else if verdicts.iter().any(|v| v.passed.is_none()) {
        CaseStatus::Ungraded
    } else {
        CaseStatus::Pass
    }
}

fn verdict(check: &Check, passed: bool, reason: String) -> CheckVerdict {
    CheckVerdict {
        check: check.kind().to_string(),
        passed: Some(passed),
        reason,
    }
}

/// Grades one check against one answer.
pub fn grade_one(check: &Check, response: &ChatResponse) -> CheckVerdict {
    let text = response.text.as_str();
    match check {
        Check::Contains(m) => {
            let ok = contains(text, m);
            verdict(
                check,
                ok,
                format!(
                    "{} {:?}",
                    if ok { "contains" } else { "does not contain" },
                    m.value()
                ),
            )
        }
        Check::NotContains(m) => {
            let ok = !contains(text, m);
            verdict(
                check,
                ok,
                format!(
                    "{} {:?}",
                    if ok {
                        "does not contain"
                    } else {
                        "contains forbidden"
                    },
                    m.value()
                ),
            )
        }
        Check::Equals(m) => {
            let got = normalise_answer(text);
            let want = normalise_answer(m.value());
            let ok = if m.ignore_case() {
                got.to_lowercase() == want.to_lowercase()
            } else {
                got == want
            };
            verdict(
                check,
                ok,
                if ok {
                    format!("equals {:?}", m.value())
                } else {
                    format!("expected {:?}, got {:?}", m.value(), excerpt(&got, 80))
                },
            )
        }
        Check::Regex(pattern) => match Regex::new(pattern) {
            Ok(re) => {
                let ok = re.is_match(text);
                verdict(
                    check,
                    ok,
                    format!(
                        "{} /{pattern}/",
                        if ok { "matches" } else { "does not match" }
                    ),
                )
            }
            Err(e) => verdict(check, false, format!("invalid regex /{pattern}/: {e}")),
        },
        Check::OneOf(options) => {
            let got = normalise_answer(text).to_lowercase();
            let ok = options
                .iter()
                .any(|o| normalise_answer(o).to_lowercase() == got);
            verdict(
                check,
                ok,
                if ok {
                    format!("answer {:?} is one of the options", excerpt(&got, 60))
                } else {
                    format!("answer {:?} is none of {options:?}", excerpt(&got, 60))
                },
            )
        }
        Check::Numeric(n) => {
            let numbers = numbers_in(text);
            let hit = numbers
                .iter()
                .find(|x| (**x - n.value).abs() <= n.tolerance + 1e-9 * n.value.abs().max(1.0));
            match hit {
                Some(x) => verdict(
                    check,
                    true,
                    format!("found {x} (expected {} ± {})", n.value, n.tolerance),
                ),
                None if numbers.is_empty() => verdict(
                    check,
                    false,
                    format!(
                        "no number in the answer (expected {} ± {})",
                        n.value, n.tolerance
                    ),
                ),
                None => verdict(
                    check,
                    false,
                    format!(
                        "numbers {:?} are not {} ± {}",
                        &numbers[..numbers.len().min(5)],
                        n.value,
                        n.tolerance
                    ),
                ),
            }
        }
        Check::JsonField(j) => grade_json_field(check, j, text),
        Check::ToolCall(t) => grade_tool_call(check, t, response),
        Check::NoToolCall(t) => {
            let hit = response.tool_calls.iter().find(|c| {
                c.function.name == t.name
                    && (t.arguments.is_empty()
                        || c.arguments_json().is_some_and(|args| {
                            t.arguments.iter().all(|(k, want)| {
                                args.get(k.as_str()).is_some_and(|got| json_equal(got, want))
                            })
                        }))
            });
            match hit {
                Some(c) => verdict(
                    check,
                    false,
                    format!(
                        "called {}({}), which it must not",
                        c.function.name,
                        excerpt(&c.function.arguments, 80)
                    ),
                ),
                None => verdict(check, true, format!("never called {}", t.name)),
            }
        }
        Check::ToolSequence(names) => {
            let called: Vec<&str> = response
                .tool_calls
                .iter()
                .map(|c| c.function.name.as_str())
                .collect();
            let mut next = 0;
            for c in &called {
                if next < names.len() && *c == names[next] {
                    next += 1;
                }
            }
            let ok = next == names.len();
            verdict(
                check,
                ok,
                if ok {
                    format!("called {} in order", names.join(" → "))
                } else {
                    format!(
                        "expected {} in order, missing {} (called: {})",
                        names.join(" → "),
                        names[next],
                        if called.is_empty() {
                            "nothing".to_string()
                        } else {
                            called.join(" → ")
                        }
                    )
                },
            )
        }
        Check::MaxToolCalls(max) => {
            let n = response.tool_calls.len() as u64;
            let ok = n <= *max;
            verdict(
                check,
                ok,
                format!(
                    "{n} tool call{} ({} {max})",
                    if n == 1 { "" } else { "s" },
                    if ok { "at most" } else { "more than" }
                ),
            )
        }
        Check::Refusal(expected) => {
            let refused = is_refusal(text);
            let ok = refused == *expected;
            let reason = match (refused, expected) {
                (true, true) => "refused, as expected".to_string(),
                (false, false) => "did not refuse, as expected".to_string(),
                (true, false) => "refused, but should have answered".to_string(),
                (false, true) => "answered, but should have refused".to_string(),
            };
            verdict(check, ok, reason)
        }
        Check::Judge(_) => CheckVerdict {
            check: check.kind().to_string(),
            passed: None,
            reason: "judge checks are graded by the judge model during a sweep (ungraded here, not passed)"
                .to_string(),
        },
    }
}

fn contains(text: &str, m: &TextMatch) -> bool {
    if m.ignore_case() {
        text.to_lowercase().contains(&m.value().to_lowercase())
    } else {
        text.contains(m.value())
    }
}

/// Trims whitespace, surrounding quotes or backticks and one trailing period: `"Approved."` and
/// `Approved` are the same answer.
pub fn normalise_answer(s: &str) -> String {
    let mut t = s.trim();
    for (open, close) in [('"', '"'), ('\'', '\''), ('`', '`'), ('*', '*')] {
        while t.len() >= 2 && t.starts_with(open) && t.ends_with(close) {
            t = t[1..t.len() - 1].trim();
        }
    }
    t.trim_end_matches('.').trim().to_string()
}

/// A short, single-line excerpt for reasons and reports.
pub fn excerpt(s: &str, max_chars: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let cut: String = flat.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

/// Every number written in the text: `1,234.50`, `-3`, `$12`, `45%` (as 45).
pub fn numbers_in(text: &str) -> Vec<f64> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?").expect("static regex")
    });
    re.find_iter(text)
        .filter_map(|m| m.as_str().replace(',', "").parse::<f64>().ok())
        .collect()
}

fn grade_json_field(check: &Check, j: &JsonFieldCheck, text: &str) -> CheckVerdict {
    let Some(doc) = extract_json(text) else {
        return verdict(check, false, "the answer holds no JSON".to_string());
    };
    let pointer = to_pointer(&j.path);
    match doc.pointer(&pointer) {
        Some(v) if json_equal(v, &j.equals) => verdict(check, true, format!("{} = {}", j.path, v)),
        Some(v) => verdict(
            check,
            false,
            format!("{} = {}, expected {}", j.path, v, j.equals),
        ),
        None => verdict(
            check,
            false,
            format!("{} not found in the JSON answer", j.path),
        ),
    }
}

/// Finds JSON in an answer: the whole text, a fenced ```json block, or the outermost `{…}`.
pub fn extract_json(text: &str) -> Option<serde_json::Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    if let Some(start) = t.find("```") {
        let rest = &t[start + 3..];
        let body_start = rest.find('\n').map(|i| i + 1).unwrap_or(0);
        if let Some(end) = rest[body_start..].find("```")
            && let Ok(v) = serde_json::from_str(rest[body_start..body_start + end].trim())
        {
            return Some(v);
        }
    }
    let (a, b) = (t.find('{')?, t.rfind('}')?);
    if b > a {
        serde_json::from_str(&t[a..=b]).ok()
    } else {
        None
    }
}

/// Converts a dotted path (`a.b.0`) into a JSON pointer; pointers pass through.
pub fn to_pointer(path: &str) -> String {
    if path.starts_with('/') || path.is_empty() {
        return path.to_string();
    }
    path.split('.')
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// JSON equality where numbers compare by value and a string answer equals a number written
/// the same way (`"42"` = `42`), since models often quote numbers.
pub fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => x.as_f64() == y.as_f64(),
        (String(s), Number(n)) | (Number(n), String(s)) => {
            s.trim().parse::<f64>().ok() == n.as_f64()
        }
        _ => a == b,
    }
}

fn grade_tool_call(check: &Check, t: &ToolCallCheck, response: &ChatResponse) -> CheckVerdict {
    if response.tool_calls.is_empty() {
        return verdict(check, false, format!("no tool call (expected {})", t.name));
    }
    let mut reasons = Vec::new();
    for call in &response.tool_calls {
        if call.function.name != t.name {
            reasons.push(format!("called {}", call.function.name));
            continue;
        }
        let Some(args) = call.arguments_json() else {
            reasons.push(format!("{} with arguments that are not JSON", t.name));
            continue;
        };
        let missing: Vec<String> = t
            .arguments
            .iter()
            .filter(|(k, want)| {
                !args
                    .get(k.as_str())
                    .is_some_and(|got| json_equal(got, want))
            })
            .map(|(k, want)| {
                format!(
                    "{k}={want} (got {})",
                    args.get(k.as_str())
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "nothing".into())
                )
            })
            .collect();
        if missing.is_empty() {
            return verdict(
                check,
                true,
                format!("called {} with the expected arguments", t.name),
            );
        }
        reasons.push(format!("called {} but {}", t.name, missing.join(", ")));
    }
    verdict(
        check,
        false,
        format!("expected {}: {}", t.name, reasons.join("; ")),
    )
}

/// The refusal heuristic (documented in README.md): an answer is a refusal when its first 400
/// characters contain a declining phrase ("I can't", "I cannot help", "I'm unable to",
/// "I won't", "I must decline", "not able to provide", "I'm sorry, but") and it does not go on
/// to answer with a tool call.
pub fn is_refusal(text: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(
            r"(?i)\b(i\s*(?:can(?:'|’)?t|cannot|can\s+not|won(?:'|’)t|will\s+not|am\s+(?:not\s+able|unable)|(?:'|’)m\s+(?:not\s+able|unable))\s+(?:help|assist|provide|give|offer|do|answer|share|recommend|advise|comply|fulfil|fulfill|support)|i\s+must\s+(?:decline|refuse)|not\s+able\s+to\s+(?:provide|give|help|assist|offer)|unable\s+to\s+(?:provide|give|help|assist|offer)|i(?:'|’)m\s+sorry,?\s+but\s+i|as\s+an\s+ai[^.]{0,40}\s+(?:can(?:'|’)?t|cannot))",
        )
        .expect("static regex")
    });
    let head: String = text.chars().take(400).collect();
    re.is_match(&head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ToolCall;
    use crate::grade::check::NumericCheck;

    fn answer(s: &str) -> ChatResponse {
        ChatResponse {
            text: s.into(),
            ..Default::default()
        }
    }

    #[test]
    fn numeric_reads_formatted_numbers() {
        assert_eq!(
            numbers_in("Total: $1,234.50 and -3 items, 45%"),
            vec![1234.5, -3.0, 45.0]
        );
        let c = Check::Numeric(NumericCheck {
            value: 1234.5,
            tolerance: 0.0,
        });
        assert_eq!(
            grade_one(&c, &answer("It is 1,234.50 USD")).passed,
            Some(true)
        );
        assert_eq!(
            grade_one(&c, &answer("It is 1,234.60 USD")).passed,
            Some(false)
        );
    }

    #[test]
    fn equals_and_one_of_normalise() {
        let c = Check::Equals(TextMatch::Plain("Approved".into()));
        assert_eq!(
            grade_one(&c, &answer("  \"Approved.\" ")).passed,
            Some(true)
        );
        let c = Check::OneOf(vec!["yes".into(), "y".into()]);
        assert_eq!(grade_one(&c, &answer("Yes.")).passed, Some(true));
        assert_eq!(grade_one(&c, &answer("No")).passed, Some(false));
    }

    #[test]
    fn json_field_paths() {
        let c = Check::JsonField(JsonFieldCheck {
            path: "order.status".into(),
            equals: serde_json::json!("shipped"),
        });
        assert_eq!(
            grade_one(
                &c,
                &answer("Here:\n```json\n{\"order\": {\"status\": \"shipped\"}}\n```")
            )
            .passed,
            Some(true)
        );
        assert_eq!(
            grade_one(&c, &answer("{\"order\": {\"status\": \"lost\"}}")).passed,
            Some(false)
        );
        assert_eq!(grade_one(&c, &answer("no json")).passed, Some(false));
    }

    #[test]
    fn tool_call_subset() {
        let c = Check::ToolCall(ToolCallCheck {
            name: "refund".into(),
            arguments: [("order_id".to_string(), serde_json::json!("A-1"))]
                .into_iter()
                .collect(),
        });
        let mut r = answer("");
        r.tool_calls = vec![ToolCall::new(
            "c1",
            "refund",
            &serde_json::json!({"order_id": "A-1", "amount": 3}),
        )];
        assert_eq!(grade_one(&c, &r).passed, Some(true));
        r.tool_calls = vec![ToolCall::new(
            "c1",
            "refund",
            &serde_json::json!({"order_id": "A-2"}),
        )];
        assert_eq!(grade_one(&c, &r).passed, Some(false));
    }

    #[test]
    fn refusal_heuristic() {
        assert!(is_refusal("I'm sorry, but I can't help with that."));
        assert!(is_refusal(
            "I cannot provide personalised investment advice."
        ));
        assert!(!is_refusal("The order A-1042 shipped on Monday."));
        assert!(!is_refusal("You can't go wrong with the blue one."));
    }

    #[test]
    fn judge_is_ungraded_not_passed() {
        let (status, v) = grade(
            &[Check::Judge(crate::grade::check::JudgeCheck {
                rubric: "x".into(),
            })],
            &answer("y"),
        );
        assert_eq!(status, CaseStatus::Ungraded);
        assert_eq!(v[0].passed, None);
    }
}
