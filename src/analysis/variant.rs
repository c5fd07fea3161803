//! Folding the samples of one variant into one verdict: the unit every rate counts.
//!
//! Repeated samples of one variant are not independent evidence (a temperature-0 model answers
//! the same way every time), so rates, intervals and tests count *variants*. A variant passes
//! for a model when a strict majority of its graded samples pass; a tie is a fail (the
//! conservative reading). Error samples are not graded and are ignored by the vote; a variant
//! with no graded sample is an `error` variant (or `ungraded` when a judge check is pending),
//! shown apart and never in a rate.

use crate::grade::{CaseStatus, CheckVerdict};
use crate::probe::Tier;
use crate::store::CaseRow;
use indexmap::IndexMap;
use serde::Serialize;

/// How many characters of a failing output are kept as evidence.
pub const EXCERPT_CHARS: usize = 400;

/// One variant's outcome for one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// A strict majority of the graded samples passed.
    Pass,
    /// Graded, and no strict majority passed.
    Fail,
    /// Every sample errored: no evidence about the model.
    Error,
    /// No sample failed or errored for sure, but some are still ungraded (judge checks).
    Ungraded,
}

impl Verdict {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
            Verdict::Ungraded => "ungraded",
        }
    }

    /// Pass or fail: counts in a rate.
    pub fn is_graded(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::Fail)
    }
}

/// Sample counts of one variant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Samples {
    /// Passing samples.
    pub pass: u32,
    /// Failing samples.
    pub fail: u32,
    /// Error samples.
    pub error: u32,
    /// Ungraded samples.
    pub ungraded: u32,
}

/// What a reviewer needs to judge a failing (or erroring) variant: from its first such sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// The sample this comes from.
    pub sample: u32,
    /// The checks that failed, with their reasons.
    pub failed_checks: Vec<CheckVerdict>,
    /// The start of the output (at most [`EXCERPT_CHARS`] characters, whitespace kept).
    pub output: String,
    /// True when the output was cut.
    pub truncated: bool,
    /// The error, for error samples.
    pub error: Option<String>,
}

/// One variant of one probe, run against one model: its samples folded into a verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantResult {
    /// Variant id (a content hash: the same in every run while the probe is unchanged).
    pub variant_id: String,
    /// The probe family.
    pub probe_id: String,
    /// Capability class.
    pub capability: String,
    /// Declared tier.
    pub tier: Tier,
    /// True for the variant that reproduces the incident.
    pub canonical: bool,
    /// Axis → value.
    pub axes: IndexMap<String, String>,
    /// Sample counts.
    pub samples: Samples,
    /// The folded verdict.
    pub verdict: Verdict,
    /// From the first failing sample (or the first error sample when none failed).
    pub evidence: Option<Evidence>,
}

impl VariantResult {
    fn new(row: &CaseRow) -> VariantResult {
        VariantResult {
            variant_id: row.case.variant_id.clone(),
            probe_id: row.probe_id.clone(),
            capability: row.capability.clone(),
            tier: row.tier,
            canonical: row.canonical,
            axes: row.axes.clone(),
            samples: Samples::default(),
            verdict: Verdict::Error,
            evidence: None,
        }
    }

    fn add(&mut self, row: &CaseRow) {
        let c = &row.case;
        match c.status {
            CaseStatus::Pass => self.samples.pass += 1,
            CaseStatus::Fail => self.samples.fail += 1,
            CaseStatus::Error => self.samples.error += 1,
            CaseStatus::Ungraded => self.samples.ungraded += 1,
        }
        let better = match (&self.evidence, c.status) {
            (_, CaseStatus::Pass | CaseStatus::Ungraded) => false,
            (None, _) => true,
            // A failing sample is better evidence than an error.
            (Some(e), CaseStatus::Fail) => e.error.is_some() && e.failed_checks.is_empty(),
            (Some(_), CaseStatus::Error) => false,
        };
        if better {
            let truncated = c.output.chars().count() > EXCERPT_CHARS;
            self.evidence = Some(Evidence {
                sample: c.sample,
                failed_checks: c
                    .checks
                    .iter()
                    .filter(|v| v.passed == Some(false))
                    .cloned()
                    .collect(),
                output: c.output.chars().take(EXCERPT_CHARS).collect(),
                truncated,
                error: c.error.clone(),
            });
        }
        self.verdict = fold(&self.samples);
    }

    /// `axis=value, …`, or `canonical` for the canonical variant with no axes.
    pub fn axes_label(&self) -> String {
        if self.axes.is_empty() {
            return if self.canonical {
                "canonical".into()
            } else {
                "-".into()
            };
        }
        let s = self
            .axes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        if self.canonical {
            format!("canonical: {s}")
        } else {
            s
        }
    }
}

/// The majority rule (see the module docs).
pub fn fold(s: &Samples) -> Verdict {
    let graded = s.pass + s.fail;
    if graded == 0 {
        return if s.ungraded > 0 {
            Verdict::Ungraded
        } else {
            Verdict::Error
        };
    }
    if 2 * s.pass > graded {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

/// Every variant of one model in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelResults {
    /// Model name.
    pub model: String,
    /// The run the cases come from.
    pub run_id: String,
    /// Variants, in the store's order (probe, then variant id).
    pub variants: Vec<VariantResult>,
    /// Total samples (cases) read.
    pub cases: u64,
}

impl ModelResults {
    /// The variant with this id.
    pub fn get(&self, variant_id: &str) -> Option<&VariantResult> {
        self.variants.iter().find(|v| v.variant_id == variant_id)
    }
}

/// Builds [`ModelResults`] from the case rows of one run, as the store streams them (ordered by
/// model, probe, variant, sample; any order works, only memory use differs).
#[derive(Debug, Default)]
pub struct Collector {
    models: IndexMap<String, (String, IndexMap<String, VariantResult>, u64)>,
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Collector {
        Collector::default()
    }

    /// Adds one case.
    pub fn push(&mut self, row: &CaseRow) {
        let entry = self
            .models
            .entry(row.case.model.clone())
            .or_insert_with(|| (row.case.run_id.clone(), IndexMap::new(), 0));
        entry.2 += 1;
        entry
            .1
            .entry(row.case.variant_id.clone())
            .or_insert_with(|| VariantResult::new(row))
            .add(row);
    }

    /// The results per model, in the order models were first seen.
    pub fn finish(self) -> IndexMap<String, ModelResults> {
        self.models
            .into_iter()
            .map(|(model, (run_id, variants, cases))| {
                let r = ModelResults {
                    model: model.clone(),
                    run_id,
                    variants: variants.into_values().collect(),
                    cases,
                };
                (model, r)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pass: u32, fail: u32, error: u32, ungraded: u32) -> Samples {
        Samples {
            pass,
            fail,
            error,
            ungraded,
        }
    }

    #[test]
    fn majority_rule() {
        assert_eq!(fold(&s(1, 0, 0, 0)), Verdict::Pass);
        assert_eq!(fold(&s(2, 1, 0, 0)), Verdict::Pass);
        assert_eq!(fold(&s(1, 1, 0, 0)), Verdict::Fail, "a tie is a fail");
        assert_eq!(fold(&s(1, 2, 0, 0)), Verdict::Fail);
        assert_eq!(fold(&s(1, 0, 5, 0)), Verdict::Pass, "errors do not vote");
        assert_eq!(fold(&s(0, 0, 3, 0)), Verdict::Error);
        assert_eq!(fold(&s(0, 0, 1, 1)), Verdict::Ungraded);
    }
}
