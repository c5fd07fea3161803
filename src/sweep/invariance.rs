//! The end-of-sweep invariance regrade: the part of invariance that touches the store.
//!
//! While the sweep runs, an invariant probe's cases carry a *pending* `invariant` verdict
//! (see [`crate::grade::invariant`]). When the sweep (or a `--resume`) ends, [`finalise`] reads
//! the run's cases of the invariant probes from the store and, per probe × model × sample,
//! compares each variant's [`answer_key`] with the canonical's, replaces the `invariant` verdict
//! and folds the status again, writing the changes in one transaction. It is idempotent:
//! running it again replaces the verdicts with the same ones.
//!
//! An `error` case is left alone (no answer arrived).

use crate::domain::Tier;
use crate::error::Result;
use crate::grade::invariant::{CHECK, answer_key, compare, reference};
use crate::grade::{self, CaseStatus, CheckVerdict};
use crate::probe::Probe;
use crate::store::{CaseRow, Regrade, Store};
use regex::Regex;
use std::collections::{BTreeMap, HashMap};

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
    use crate::grade::invariant::pending;

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
}
