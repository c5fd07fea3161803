//! Folding the samples of one variant into one verdict: the unit every rate counts.
//!
//! Repeated samples of one variant are not independent evidence (a temperature-0 model answers
//! the same way every time), so rates, intervals and tests count *variants*. A variant passes
//! for a model when a strict majority of its graded samples pass; a tie is a fail (the
//! conservative reading). Error samples are not graded and are ignored by the vote; a variant
//! with no graded sample is an `error` variant (or `ungraded` when a judge check is pending),
//! shown apart and never in a rate.

use crate::domain::Tier;
use crate::grade::{CaseStatus, CheckVerdict};
use crate::store::{CaseBrief, CaseRecord, CaseRow, SharedAxes};
use foldhash::HashMap;
use indexmap::IndexMap;
use serde::Serialize;
use std::sync::Arc;

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
    /// For a case of an episode: its trajectory (every step) and why it stopped.
    pub trajectory: Option<(
        crate::trajectory::Trajectory,
        Option<crate::trajectory::StopReason>,
    )>,
}

/// One variant of one probe, run against one model: its samples folded into a verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantResult {
    /// Variant id (a content hash: the same in every run while the probe is unchanged).
    pub variant_id: String,
    /// The probe family (shared by the probe's variants).
    pub probe_id: Arc<str>,
    /// Capability class (shared).
    pub capability: Arc<str>,
    /// Declared tier.
    pub tier: Tier,
    /// True for the variant that reproduces the incident.
    pub canonical: bool,
    /// Axis → value (shared by the variants with the same axes).
    pub axes: SharedAxes,
    /// Sample counts.
    pub samples: Samples,
    /// The folded verdict.
    pub verdict: Verdict,
    /// From the first failing sample (or the first error sample when none failed). Boxed: most
    /// variants have none, and a million results must stay small.
    ///
    /// Filled while collecting with [`Collector::new`]; a `Collector::brief` leaves it empty
    /// and the caller fetches it ([`VariantResult::take_evidence`]) for the variants it shows.
    pub evidence: Option<Box<Evidence>>,
}

impl VariantResult {
    /// Counts one sample of this variant, and takes it as evidence when it is the best so far.
    fn add(&mut self, c: &CaseRecord) {
        self.count(c.status);
        self.take_evidence(c);
    }

    /// Counts one sample.
    fn count(&mut self, status: CaseStatus) {
        match status {
            CaseStatus::Pass => self.samples.pass += 1,
            CaseStatus::Fail => self.samples.fail += 1,
            CaseStatus::Error => self.samples.error += 1,
            CaseStatus::Ungraded => self.samples.ungraded += 1,
        }
        self.verdict = fold(&self.samples);
    }

    /// Considers one sample (offered in sample order) as the variant's evidence: the first
    /// failing sample, else the first error sample. Does not count it: after a brief walk, the
    /// counts are already there and the samples are offered again only for their evidence.
    pub fn take_evidence(&mut self, c: &CaseRecord) {
        let better = match (&self.evidence, c.status) {
            (_, CaseStatus::Pass | CaseStatus::Ungraded) => false,
            (None, _) => true,
            // A failing sample is better evidence than an error.
            (Some(e), CaseStatus::Fail) => e.error.is_some() && e.failed_checks.is_empty(),
            (Some(_), CaseStatus::Error) => false,
        };
        if better {
            let truncated = c.output.chars().count() > EXCERPT_CHARS;
            self.evidence = Some(Box::new(Evidence {
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
                trajectory: c.trajectory.clone().map(|t| (t, c.stop_reason)),
            }));
        }
    }

    /// Whether a sample can be evidence: a failing or error sample.
    pub fn has_evidence_samples(&self) -> bool {
        self.samples.fail + self.samples.error > 0
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

/// Builds [`ModelResults`] from the case rows of one run, as the store streams them: the full
/// walk ordered by model, probe, variant, sample ([`Collector::push`]), the brief walk by
/// variant, model, sample ([`Collector::push_brief`]). Any order gives the same results (models
/// by name, variants by probe then variant id); in the store's orders no per-variant index is
/// kept at all (a run of a million cases must stay small in memory).
///
/// Probe ids, classes and axes maps are interned: each variant holds shared references.
#[derive(Debug, Default)]
pub struct Collector {
    models: IndexMap<String, ModelAcc, foldhash::fast::RandomState>,
    strings: HashMap<String, Arc<str>>,
    axes: HashMap<Vec<(String, String)>, SharedAxes>,
}

/// One model's variants while collecting.
#[derive(Debug)]
struct ModelAcc {
    run_id: String,
    variants: Vec<VariantResult>,
    cases: u64,
    /// Variant id → position, built only once a variant arrives out of the store's order.
    index: Option<HashMap<String, usize>>,
}

impl ModelAcc {
    /// The position of variant `id` of probe `probe`, if already seen. `by_id`: the walk is
    /// ordered by variant id (brief) rather than by probe and variant id (full).
    fn find(&mut self, probe: &str, id: &str, by_id: bool) -> Option<usize> {
        if let Some(index) = &self.index {
            return index.get(id).copied();
        }
        let last = self.variants.last()?;
        if last.variant_id == id {
            return Some(self.variants.len() - 1);
        }
        // In the store's order every new variant sorts after the previous one: then it is new.
        let after = if by_id {
            last.variant_id.as_str() < id
        } else {
            (&*last.probe_id, last.variant_id.as_str()) < (probe, id)
        };
        if after {
            return None;
        }
        let index: HashMap<String, usize> = self
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| (v.variant_id.clone(), i))
            .collect();
        let found = index.get(id).copied();
        self.index = Some(index);
        found
    }

    fn push(&mut self, v: VariantResult) -> usize {
        if let Some(index) = &mut self.index {
            index.insert(v.variant_id.clone(), self.variants.len());
        }
        self.variants.push(v);
        self.variants.len() - 1
    }
}

/// Where a case belongs, whichever walk it came from.
struct Key<'a> {
    run_id: &'a str,
    model: &'a str,
    variant_id: &'a str,
    probe_id: &'a str,
    capability: &'a str,
    tier: Tier,
    canonical: bool,
    /// The walk is ordered by variant id.
    by_id: bool,
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Collector {
        Collector::default()
    }

    fn intern(strings: &mut HashMap<String, Arc<str>>, s: &str) -> Arc<str> {
        match strings.get(s) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = Arc::from(s);
                strings.insert(s.to_string(), a.clone());
                a
            }
        }
    }

    /// The result of the variant `k` names (created, with `axes`, when new); counts the case.
    fn slot(
        &mut self,
        k: &Key<'_>,
        axes: impl FnOnce(&mut Self) -> SharedAxes,
    ) -> &mut VariantResult {
        if !self.models.contains_key(k.model) {
            self.models.insert(
                k.model.to_string(),
                ModelAcc {
                    run_id: k.run_id.to_string(),
                    variants: Vec::new(),
                    cases: 0,
                    index: None,
                },
            );
        }
        let found = {
            let m = self.models.get_mut(k.model).expect("inserted above");
            m.cases += 1;
            m.find(k.probe_id, k.variant_id, k.by_id)
        };
        let i = match found {
            Some(i) => i,
            None => {
                let v = VariantResult {
                    variant_id: k.variant_id.to_string(),
                    probe_id: Self::intern(&mut self.strings, k.probe_id),
                    capability: Self::intern(&mut self.strings, k.capability),
                    tier: k.tier,
                    canonical: k.canonical,
                    axes: axes(self),
                    samples: Samples::default(),
                    verdict: Verdict::Error,
                    evidence: None,
                };
                self.models
                    .get_mut(k.model)
                    .expect("inserted above")
                    .push(v)
            }
        };
        &mut self
            .models
            .get_mut(k.model)
            .expect("inserted above")
            .variants[i]
    }

    /// Adds one case, with its evidence.
    pub fn push(&mut self, row: &CaseRow) {
        let k = Key {
            run_id: &row.case.run_id,
            model: &row.case.model,
            variant_id: &row.case.variant_id,
            probe_id: &row.probe_id,
            capability: &row.capability,
            tier: row.tier,
            canonical: row.canonical,
            by_id: false,
        };
        self.slot(&k, |c| {
            let pairs: Vec<(String, String)> = row
                .axes
                .iter()
                .map(|(a, v)| (a.clone(), v.clone()))
                .collect();
            c.axes
                .entry(pairs)
                .or_insert_with(|| Arc::new(row.axes.clone()))
                .clone()
        })
        .add(&row.case);
    }

    /// Adds one case of run `run` from a brief walk: counted, but without evidence (the caller
    /// fetches it for the variants it shows, see [`VariantResult::take_evidence`]).
    pub fn push_brief(&mut self, run: &str, row: &CaseBrief<'_>) {
        let k = Key {
            run_id: run,
            model: row.model,
            variant_id: row.variant_id,
            probe_id: row.probe_id,
            capability: row.capability,
            tier: row.tier,
            canonical: row.canonical,
            by_id: true,
        };
        self.slot(&k, |_| row.axes.clone()).count(row.status);
    }

    /// The results per model, models by name; each model's variants by probe, then variant id
    /// (the full walk's order, whatever order the cases came in).
    pub fn finish(mut self) -> IndexMap<String, ModelResults> {
        self.models.sort_keys();
        self.models
            .into_iter()
            .map(|(model, mut m)| {
                sort_by_probe_then_id(&mut m.variants);
                let r = ModelResults {
                    model: model.clone(),
                    run_id: m.run_id,
                    variants: m.variants,
                    cases: m.cases,
                };
                (model, r)
            })
            .collect()
    }
}

/// Sorts a model's variants by probe id, then variant id.
///
/// Both walks deliver each probe's variants in variant-id order (the brief walk interleaves the
/// probes). Then the sort only has to group them by probe, keeping the order within: a stable
/// sort on a small key, the probe's rank, looked up once per variant by the address of the
/// shared probe string (the collector interns them: one address per probe id). Comparing the
/// strings instead was a tenth of a million-case report. Any other arrival order gets the
/// comparison sort; ids are unique within a model, so both give the one order.
fn sort_by_probe_then_id(vs: &mut [VariantResult]) {
    let addr = |v: &VariantResult| Arc::as_ptr(&v.probe_id) as *const u8 as usize;
    let rank: Option<HashMap<usize, u32>> = {
        // Probe string address → (probe id, its last variant id so far).
        let mut probes: HashMap<usize, (&str, &str)> = HashMap::default();
        let mut in_order = true;
        for v in vs.iter() {
            let e = probes.entry(addr(v)).or_insert((&v.probe_id, ""));
            in_order &= e.1 < v.variant_id.as_str();
            e.1 = &v.variant_id;
        }
        let mut distinct: Vec<(&str, usize)> = probes.iter().map(|(&a, &(p, _))| (p, a)).collect();
        distinct.sort_unstable();
        let one_address_each = distinct.windows(2).all(|w| w[0].0 != w[1].0);
        (in_order && one_address_each).then(|| {
            distinct
                .iter()
                .enumerate()
                .map(|(i, &(_, a))| (a, i as u32))
                .collect()
        })
    };
    match rank {
        // Stable: the key sort breaks ties by position.
        Some(rank) => vs.sort_by_cached_key(|v| rank[&addr(v)]),
        None => vs.sort_unstable_by(|a, b| {
            (&*a.probe_id, a.variant_id.as_str()).cmp(&(&*b.probe_id, b.variant_id.as_str()))
        }),
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

    fn brief<'a>(
        model: &'a str,
        probe: &'a str,
        id: &'a str,
        status: CaseStatus,
        axes: &'a SharedAxes,
    ) -> CaseBrief<'a> {
        CaseBrief {
            model,
            variant_id: id,
            sample: 0,
            status,
            probe_id: probe,
            capability: "c",
            tier: Tier::Hard,
            canonical: false,
            axes,
        }
    }

    fn shape(r: &IndexMap<String, ModelResults>) -> Vec<(String, String, String, Samples)> {
        r.values()
            .flat_map(|m| {
                m.variants.iter().map(|v| {
                    (
                        m.model.clone(),
                        v.probe_id.to_string(),
                        v.variant_id.clone(),
                        v.samples,
                    )
                })
            })
            .collect()
    }

    #[test]
    fn the_collector_gives_the_same_results_in_any_order() {
        let axes = SharedAxes::default();
        let rows = [
            ("prod", "p-b", "a1", CaseStatus::Pass),
            ("cand", "p-b", "a1", CaseStatus::Fail),
            ("cand", "p-a", "c3", CaseStatus::Pass),
            ("prod", "p-a", "c3", CaseStatus::Pass),
            ("prod", "p-a", "c3", CaseStatus::Fail),
            ("cand", "p-b", "d4", CaseStatus::Error),
        ];
        // The brief walk's order (variant id, model) …
        let mut by_id = Collector::new();
        for (m, p, v, st) in rows {
            by_id.push_brief("r1", &brief(m, p, v, st, &axes));
        }
        // … and a scrambled one (the index kicks in).
        let mut scrambled = Collector::new();
        for i in [5, 2, 0, 4, 1, 3] {
            let (m, p, v, st) = rows[i];
            scrambled.push_brief("r1", &brief(m, p, v, st, &axes));
        }
        let a = by_id.finish();
        let b = scrambled.finish();
        assert_eq!(shape(&a), shape(&b));
        // Models by name; variants by probe, then id.
        assert_eq!(a.keys().collect::<Vec<_>>(), ["cand", "prod"]);
        let cand: Vec<&str> = a["cand"]
            .variants
            .iter()
            .map(|v| v.variant_id.as_str())
            .collect();
        assert_eq!(cand, ["c3", "a1", "d4"]);
        assert_eq!(a["prod"].variants[0].samples, s(1, 1, 0, 0));
        assert_eq!(a["prod"].variants[0].verdict, Verdict::Fail);
        assert_eq!(a["prod"].cases, 3);
        assert!(a["cand"].variants.iter().all(|v| v.evidence.is_none()));
    }

    #[test]
    fn grouping_by_probe_gives_the_comparison_sorts_order() {
        let probes: Vec<Arc<str>> = (0..13).map(|i| Arc::from(format!("p-{i:02}"))).collect();
        let make = |ids: &mut dyn Iterator<Item = u32>| -> Vec<VariantResult> {
            ids.map(|i| VariantResult {
                variant_id: format!("{i:016x}"),
                probe_id: probes[(i as usize * 7) % 13].clone(),
                capability: Arc::from("c"),
                tier: Tier::Hard,
                canonical: false,
                axes: SharedAxes::default(),
                samples: Samples::default(),
                verdict: Verdict::Pass,
                evidence: None,
            })
            .collect()
        };
        let order = |vs: &[VariantResult]| -> Vec<String> {
            vs.iter()
                .map(|v| format!("{}/{}", v.probe_id, v.variant_id))
                .collect()
        };
        let mut want = make(&mut (0..1000));
        want.sort_by(|a, b| (&*a.probe_id, &a.variant_id).cmp(&(&*b.probe_id, &b.variant_id)));
        // In id order (the brief walk's): the grouping path.
        let mut in_order = make(&mut (0..1000));
        sort_by_probe_then_id(&mut in_order);
        assert_eq!(order(&in_order), order(&want));
        // Any other order: the comparison sort.
        let mut reversed = make(&mut (0..1000).rev());
        sort_by_probe_then_id(&mut reversed);
        assert_eq!(order(&reversed), order(&want));
        // Two addresses for one probe id (not interned): still one group, in id order.
        let mut split = make(&mut (0..1000));
        for v in split.iter_mut().step_by(2) {
            v.probe_id = Arc::from(&*v.probe_id);
        }
        sort_by_probe_then_id(&mut split);
        assert_eq!(order(&split), order(&want));
    }
}
