//! Invariance: for an `invariant: true` probe, every variant's answer must agree with the
//! canonical variant's answer (CheckList's INV tests), so brittleness is measurable even where
//! no exact expected answer exists.
//!
//! Answers arrive out of order, so invariance cannot be graded case by case. While the sweep
//! runs, an invariant probe's cases carry a *pending* `invariant` verdict (ungraded, never a
//! pass); when the sweep (or a `--resume`) ends, [`finalise`] reads the run's cases of the
//! invariant probes from the store and, per probe × model × sample, compares each variant's
//! [`answer_key`] with the canonical's, replaces the `invariant` verdict and folds the status
//! again. It is idempotent: running it again replaces the verdicts with the same ones.
//!
//! An `error` case is left alone (no answer arrived). When the canonical case is missing or an
//! `error`, the variants' `invariant` verdict is ungraded ("no canonical answer to compare"),
//! never a pass.

use crate::chat::ToolCall;
use crate::domain::Tier;
use crate::error::Result;
use crate::grade::{self, CaseStatus, CheckVerdict};
use crate::probe::Probe;
use crate::store::{CaseRow, Regrade, Store};
use regex::Regex;
use std::collections::{BTreeMap, HashMap};

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

/// The verdict an invariant probe's variant case carries until [`finalise`] compares it.
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

/// A case whose status [`finalise`] changed (for the sweep's counters).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Model name.
    pub model: String,
    /// The probe's tier.
    pub tier: Tier,
    /// Status before.
    pub from: CaseStatus,
    /// Status after.
    pub to: CaseStatus,
}

/// What [`finalise`] needs of an invariant probe.
#[derive(Debug, Clone)]
pub struct InvariantProbe {
    /// Probe id.
    pub id: String,
    /// Its compiled `answer_pattern`, if any.
    pub answer_pattern: Option<Regex>,
}

impl InvariantProbe {
    /// `Some` for an `invariant: true` probe. The pattern was validated when the probe was
    /// loaded; one that no longer compiles is ignored.
    pub fn of(p: &Probe) -> Option<InvariantProbe> {
        p.invariant.then(|| InvariantProbe {
            id: p.id.clone(),
            answer_pattern: p.answer_pattern.as_deref().and_then(|s| Regex::new(s).ok()),
        })
    }
}

/// Grades invariance for these invariant probes in run `run_id` (see the module docs),
/// writing the verdicts in one transaction. Returns the status changes.
pub fn finalise(
    store: &mut Store,
    run_id: &str,
    probes: &[InvariantProbe],
) -> Result<Vec<Transition>> {
    let patterns: HashMap<&str, Option<&Regex>> = probes
        .iter()
        .map(|p| (p.id.as_str(), p.answer_pattern.as_ref()))
        .collect();
    if patterns.is_empty() {
        return Ok(vec![]);
    }
    // Per probe × model × sample: the canonical row and the others.
    type Group = (Option<CaseRow>, Vec<CaseRow>);
    let mut groups: BTreeMap<(String, String, u32), Group> = BTreeMap::new();
    store.for_each_case(run_id, |row| {
        if patterns.contains_key(row.probe_id.as_str()) {
            let g = groups
                .entry((
                    row.probe_id.clone(),
                    row.case.model.clone(),
                    row.case.sample,
                ))
                .or_default();
            if row.canonical && g.0.is_none() {
                g.0 = Some(row);
            } else {
                g.1.push(row);
            }
        }
        Ok(())
    })?;
    let mut updates = Vec::new();
    let mut transitions = Vec::new();
    for ((probe_id, _, _), (canonical, others)) in groups {
        let pattern = patterns.get(probe_id.as_str()).copied().flatten();
        let canonical_key = canonical
            .as_ref()
            .filter(|c| c.case.status != CaseStatus::Error)
            .map(|c| answer_key(&c.case.output, &c.case.tool_calls, pattern));
        let rows = canonical
            .iter()
            .map(|c| (c, reference()))
            .chain(others.iter().map(|r| {
                let key = answer_key(&r.case.output, &r.case.tool_calls, pattern);
                (r, compare(&key, canonical_key.as_deref()))
            }));
        for (row, verdict) in rows {
            if row.case.status == CaseStatus::Error {
                continue;
            }
            let mut checks: Vec<CheckVerdict> = row
                .case
                .checks
                .iter()
                .filter(|v| v.check != CHECK)
                .cloned()
                .collect();
            checks.push(verdict);
            let status = grade::fold_status(&checks);
            if checks == row.case.checks && status == row.case.status {
                continue;
            }
            if status != row.case.status {
                transitions.push(Transition {
                    model: row.case.model.clone(),
                    tier: row.tier,
                    from: row.case.status,
                    to: status,
                });
            }
            updates.push(Regrade {
                run_id: run_id.to_string(),
                model: row.case.model.clone(),
                variant_id: row.case.variant_id.clone(),
                sample: row.case.sample,
                status,
                checks,
            });
        }
    }
    store.regrade_cases(&updates)?;
    Ok(transitions)
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
    fn finalise_compares_per_model_and_sample_and_is_idempotent() {
        use crate::store::WriteOp;
        use crate::store::tests::{case, probe, run_info, variant};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let run = run_info("r1", "2026-11-21T23:05:01Z");
        store.begin_run(&run).unwrap();
        let mut ops = vec![
            WriteOp::Probe(probe("inv", Tier::Hard)),
            WriteOp::Probe(probe("other", Tier::Easy)),
            WriteOp::Variant(variant("c", "inv", &[])),
            WriteOp::Variant(variant("a", "inv", &[("format", "xml")])),
            WriteOp::Variant(variant("b", "inv", &[("format", "csv")])),
            WriteOp::Variant(variant("o", "other", &[("format", "csv")])),
        ];
        // prod: canonical says 42, a says 43, b says 42. candidate: canonical errored.
        for (model, v, status, output) in [
            ("prod", "c", CaseStatus::Pass, "It is 42."),
            ("prod", "a", CaseStatus::Ungraded, "It is 43."),
            ("prod", "b", CaseStatus::Ungraded, "it is 42"),
            ("prod", "o", CaseStatus::Fail, "whatever"),
            ("candidate", "c", CaseStatus::Error, ""),
            ("candidate", "a", CaseStatus::Ungraded, "It is 42."),
        ] {
            let mut c = case("r1", model, v, 0, status);
            c.output = output.into();
            c.tool_calls = vec![];
            c.checks = if status == CaseStatus::Error {
                vec![]
            } else if v == "c" {
                vec![reference()]
            } else if v == "o" {
                vec![CheckVerdict {
                    check: "contains".into(),
                    passed: Some(false),
                    reason: "x".into(),
                }]
            } else {
                vec![pending()]
            };
            ops.push(WriteOp::Case(c));
        }
        store.write_batch(&ops).unwrap();
        let probes = [InvariantProbe {
            id: "inv".into(),
            answer_pattern: None,
        }];
        let t = finalise(&mut store, "r1", &probes).unwrap();
        let mut moved: Vec<(String, CaseStatus)> =
            t.iter().map(|t| (t.model.clone(), t.to)).collect();
        moved.sort();
        assert_eq!(
            moved,
            vec![
                ("prod".to_string(), CaseStatus::Pass),
                ("prod".to_string(), CaseStatus::Fail)
            ]
        );
        let mut got = BTreeMap::new();
        store
            .for_each_case("r1", |r| {
                got.insert(
                    (r.case.model.clone(), r.case.variant_id.clone()),
                    (r.case.status, r.case.checks.last().cloned()),
                );
                Ok(())
            })
            .unwrap();
        let status = |m: &str, v: &str| got[&(m.to_string(), v.to_string())].0;
        assert_eq!(status("prod", "c"), CaseStatus::Pass);
        assert_eq!(status("prod", "a"), CaseStatus::Fail);
        assert_eq!(status("prod", "b"), CaseStatus::Pass);
        assert_eq!(
            status("prod", "o"),
            CaseStatus::Fail,
            "not an invariant probe"
        );
        assert_eq!(status("candidate", "c"), CaseStatus::Error);
        // No canonical answer: ungraded, never a pass.
        assert_eq!(status("candidate", "a"), CaseStatus::Ungraded);
        let why = got[&("candidate".to_string(), "a".to_string())]
            .1
            .clone()
            .unwrap();
        assert!(why.reason.starts_with("no canonical answer"), "{why:?}");
        // Idempotent: a second pass changes nothing.
        assert!(finalise(&mut store, "r1", &probes).unwrap().is_empty());
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
