//! Brittleness per probe × model, computed from the store for one run: which variants break a
//! model, along which axis, and the smallest change that breaks it.
//!
//! The cases of the run are streamed briefly ([`Store::for_each_case_brief`]: no outputs or
//! check verdicts are read) and folded into one small summary per variant (passed / failed /
//! error samples, the shared axes); nothing else is kept in memory. An
//! `error` (and an `ungraded` case) is never a fail: it is left out of every count and rate
//! below and reported on its own.
//!
//! # Variants
//! A variant's graded samples make it **passing** (every sample passed), **failing** (every
//! sample failed) or **flaky** (both). A variant whose samples are all errors is untested.
//!
//! # Labels (first rule that matches wins)
//! 1. `untested` — no graded case at all (every case was an error).
//! 2. `broken` — the canonical did not pass (a failed sample, or no graded sample) and at least
//!    half of the graded variants failed in the majority of their samples.
//! 3. `brittle` — at least one variant fails in every sample and at least one variant passes in
//!    every sample: the outcome depends on the variant, not on chance.
//! 4. `flaky` — some variant (the canonical included) both passed and failed across its
//!    samples, and no variant fails deterministically.
//! 5. `solid` — every graded sample passed.
//!
//! # Per-axis attribution
//! For every value of every axis that varies in the run: graded cases, passed, pass rate, and
//! `significant`: whether the value fails significantly more often than the other values of the
//! same axis together. The test is a one-sided Fisher exact test on the 2×2 table (this value /
//! the rest of the axis × fail / pass), i.e. the upper tail of the hypergeometric distribution,
//! computed in log space; the p-values of all values of all axes of one probe × model are
//! corrected with Holm's step-down method, and a value is significant when its adjusted p-value
//! is at most [`ALPHA`] (0.05). A value with no graded case, or whose axis has no other graded
//! value, is not tested.
//!
//! # Interactions
//! A pair of values of two axes fails together although each alone passes: the variant with
//! exactly those two axes changed is failing, while the variant with only the first changed and
//! the variant with only the second changed are both passing. Only pairs whose three variants
//! were all run are reported (one-at-a-time plus full or pairwise designs provide them).
//!
//! # Minimal failing variant
//! Among the non-canonical variants that failed in the majority of their samples, the one with
//! the fewest axes changed from the canonical. Ties go to the most common failure: the variant
//! whose changed values occur most often among the failing variants, then the one with most
//! failed samples, then the smallest variant id.
//!
//! # Repeats
//! With `repeats = k > 1`: pass@1 is the mean over variants of c/n, and pass^k is τ-bench's
//! unbiased estimator C(c, k) / C(n, k), averaged over the variants with at least k graded
//! samples (n graded samples, c of them passed).

use crate::axes::{AxisName, ORIGINAL};
use crate::domain::Tier;
use crate::error::Result;
use crate::grade::CaseStatus;
use crate::store::{CaseBrief, RunInfo, SharedAxes, Store};
use foldhash::{HashMap, HashMapExt};
use indexmap::IndexMap;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Significance level of the per-axis test (after Holm's correction).
pub const ALPHA: f64 = 0.05;

/// Which probes and models to analyse.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only probes whose id or capability contains this text.
    pub probe: Option<String>,
    /// Only this model (exact name).
    pub model: Option<String>,
}

impl Filter {
    fn keeps(&self, row: &CaseBrief<'_>) -> bool {
        self.model.as_ref().is_none_or(|m| *m == row.model)
            && self.probe.as_ref().is_none_or(|p| {
                row.probe_id.contains(p.as_str()) || row.capability.contains(p.as_str())
            })
    }
}

/// The brittleness label of a probe × model (see the module docs for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Every graded sample passed.
    Solid,
    /// Some variants fail deterministically while others pass.
    Brittle,
    /// The canonical fails and so do most variants.
    Broken,
    /// Some variant both passes and fails across samples.
    Flaky,
    /// No graded case (only errors).
    Untested,
}

impl Label {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Solid => "solid",
            Label::Brittle => "brittle",
            Label::Broken => "broken",
            Label::Flaky => "flaky",
            Label::Untested => "untested",
        }
    }
}

/// Counts for one axis value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AxisValueStats {
    /// Graded cases (pass + fail) with this value.
    pub cases: u64,
    /// Of which passed.
    pub passed: u64,
    /// passed / cases; `None` without graded cases.
    pub pass_rate: Option<f64>,
    /// Significantly worse than the rest of the axis (Fisher, Holm-corrected, α = 0.05).
    pub significant: bool,
    /// Holm-adjusted one-sided p-value; `None` when not tested.
    pub p_value: Option<f64>,
}

/// Two axis values that fail together although each alone passes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interaction {
    /// The two changed axes and their values.
    pub axes: IndexMap<String, String>,
    /// Graded cases of the pair's variant.
    pub cases: u64,
    /// Of which passed (0: it fails in every sample).
    pub passed: u64,
}

/// A variant that both passed and failed across its samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlakyVariant {
    /// Variant id.
    pub variant: String,
    /// Changed axes (empty for the canonical).
    pub axes: IndexMap<String, String>,
    /// Graded samples.
    pub cases: u64,
    /// Of which passed.
    pub passed: u64,
}

/// Brittleness of one probe for one model in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeBrittleness {
    /// Probe id.
    pub probe: String,
    /// Model name.
    pub model: String,
    /// Capability class.
    pub capability: String,
    /// Declared tier.
    pub tier: Tier,
    /// The label.
    pub label: Label,
    /// Whether the canonical variant passed in every graded sample; `None` when it was not run
    /// or only errored.
    pub canonical_passed: Option<bool>,
    /// Graded cases (errors excluded).
    pub cases: u64,
    /// Passed cases.
    pub passed: u64,
    /// passed / cases.
    pub pass_rate: Option<f64>,
    /// Error cases (outside every rate).
    pub errors: u64,
    /// Ungraded cases (outside every rate).
    pub ungraded: u64,
    /// Variants with at least one graded sample.
    pub variants: u64,
    /// Variants that failed in the majority of their samples.
    pub failing_variants: u64,
    /// Axis → value → counts, for the axes that vary.
    pub axes: IndexMap<String, IndexMap<String, AxisValueStats>>,
    /// Value pairs that fail together although each alone passes.
    pub interactions: Vec<Interaction>,
    /// The changed axes of the minimal failing variant, or `None`.
    pub minimal_failing: Option<IndexMap<String, String>>,
    /// Its variant id.
    pub minimal_failing_variant: Option<String>,
    /// Samples per variant, when above 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    /// Mean pass rate per variant, when repeats > 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_at_1: Option<f64>,
    /// τ-bench pass^k, when repeats > 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_hat_k: Option<f64>,
    /// Variants with mixed samples.
    pub flaky: Vec<FlakyVariant>,
}

/// The whole analysis of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Brittleness {
    /// Run id.
    pub run: String,
    /// Samples per variant in the run.
    pub repeats: u32,
    /// One entry per probe × model, ordered by probe id, then model in panel order.
    pub results: Vec<ProbeBrittleness>,
}

/// Per-variant fold of the samples.
#[derive(Debug, Clone)]
struct VariantAcc {
    id: String,
    canonical: bool,
    /// Changed axes only, in axis order.
    changed: Changed,
    pass: u64,
    fail: u64,
    error: u64,
    ungraded: u64,
}

impl VariantAcc {
    fn graded(&self) -> u64 {
        self.pass + self.fail
    }
    fn passing(&self) -> bool {
        self.graded() > 0 && self.fail == 0
    }
    fn failing(&self) -> bool {
        self.graded() > 0 && self.pass == 0
    }
    fn flaky(&self) -> bool {
        self.pass > 0 && self.fail > 0
    }
    fn majority_fail(&self) -> bool {
        self.fail > self.pass
    }
}

/// Axis names in a stable order: the known axes first in their order, then others sorted.
fn axis_rank(name: &str) -> (usize, String) {
    let i = AxisName::ALL
        .iter()
        .position(|a| a.as_str() == name)
        .unwrap_or(AxisName::ALL.len());
    (i, name.to_string())
}

fn changed_axes(axes: &IndexMap<String, String>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = axes
        .iter()
        .filter(|(_, val)| val.as_str() != ORIGINAL)
        .map(|(a, val)| (a.clone(), val.clone()))
        .collect();
    v.sort_by_key(|(a, _)| axis_rank(a));
    v
}

fn rate(passed: u64, cases: u64) -> Option<f64> {
    (cases > 0).then(|| passed as f64 / cases as f64)
}

/// The group being folded: one probe × model.
struct Group {
    model: String,
    probe: String,
    capability: String,
    tier: Tier,
    variants: Vec<VariantAcc>,
    /// Per variant: axis → value (full map), for the attribution.
    axes: Vec<SharedAxes>,
}

/// The changed axes of each distinct axes map met in the walk, computed once per map: keyed by
/// the address of the shared map, which the entry keeps alive.
#[derive(Default)]
struct ChangedCache(HashMap<usize, (SharedAxes, Changed)>);

/// The changed axes of a variant, in axis order: shared by the variants with the same axes.
type Changed = Arc<Vec<(String, String)>>;

impl ChangedCache {
    fn get(&mut self, axes: &SharedAxes) -> Changed {
        let key = std::sync::Arc::as_ptr(axes) as usize;
        let e = self
            .0
            .entry(key)
            .or_insert_with(|| (axes.clone(), Arc::new(changed_axes(axes))));
        e.1.clone()
    }
}

/// Analyses run `run` in `store`.
pub fn analyze(store: &Store, run: &RunInfo, filter: &Filter) -> Result<Brittleness> {
    // The brief walk comes in variant-id order, so every probe × model group stays open until
    // the end: one small accumulator per variant (counts and shared axes).
    let mut groups: Vec<Group> = Vec::new();
    // model → probe → position in `groups` (looked up with borrowed keys: no allocation per case).
    let mut index: HashMap<String, HashMap<String, usize>> = HashMap::new();
    // The same, by the addresses of the walk's shared model and probe-id strings: the walk
    // alternates models and jumps between probes at every variant, and two integers hash for a
    // fraction of two strings. Only an accelerator: a hit is checked against the group's names.
    let mut by_address: HashMap<(usize, usize), usize> = HashMap::new();
    let mut changed = ChangedCache::default();
    store.for_each_case_brief(&run.id, |row| {
        if !filter.keeps(row) {
            return Ok(());
        }
        let address = (row.model.as_ptr() as usize, row.probe_id.as_ptr() as usize);
        let same = by_address
            .get(&address)
            .copied()
            .filter(|&i| groups[i].model == row.model && groups[i].probe == row.probe_id);
        let gi = match same {
            Some(i) => i,
            None => match index.get(row.model).and_then(|m| m.get(row.probe_id)) {
                Some(&i) => {
                    by_address.insert(address, i);
                    i
                }
                None => {
                    groups.push(Group {
                        model: row.model.to_string(),
                        probe: row.probe_id.to_string(),
                        capability: row.capability.to_string(),
                        tier: row.tier,
                        variants: Vec::new(),
                        axes: Vec::new(),
                    });
                    index
                        .entry(row.model.to_string())
                        .or_default()
                        .insert(row.probe_id.to_string(), groups.len() - 1);
                    by_address.insert(address, groups.len() - 1);
                    groups.len() - 1
                }
            },
        };
        let g = &mut groups[gi];
        // Within a group the variants come in id order, each one's samples together.
        if g.variants.last().is_none_or(|v| v.id != row.variant_id) {
            g.variants.push(VariantAcc {
                id: row.variant_id.to_string(),
                canonical: row.canonical,
                changed: changed.get(row.axes),
                pass: 0,
                fail: 0,
                error: 0,
                ungraded: 0,
            });
            g.axes.push(row.axes.clone());
        }
        let v = g.variants.last_mut().expect("just pushed");
        match row.status {
            CaseStatus::Pass => v.pass += 1,
            CaseStatus::Fail => v.fail += 1,
            CaseStatus::Error => v.error += 1,
            CaseStatus::Ungraded => v.ungraded += 1,
        }
        Ok(())
    })?;
    // The groups are independent: finished on two threads (the tests and attribution of a
    // million cases take about as long as reading them).
    let repeats = run.repeats;
    let half = groups.len() / 2;
    let second: Vec<Group> = groups.split_off(half);
    let mut results: Vec<ProbeBrittleness> = std::thread::scope(|scope| {
        let other = scope.spawn(move || {
            second
                .into_iter()
                .map(|g| finish(g, repeats))
                .collect::<Vec<_>>()
        });
        let mut first: Vec<ProbeBrittleness> =
            groups.into_iter().map(|g| finish(g, repeats)).collect();
        first.extend(other.join().expect("a brittleness thread panicked"));
        first
    });
    let model_rank = |m: &str| {
        run.models
            .iter()
            .position(|x| x == m)
            .unwrap_or(run.models.len())
    };
    results.sort_by(|a, b| {
        (a.probe.as_str(), model_rank(&a.model), a.model.as_str()).cmp(&(
            b.probe.as_str(),
            model_rank(&b.model),
            b.model.as_str(),
        ))
    });
    Ok(Brittleness {
        run: run.id.clone(),
        repeats: run.repeats,
        results,
    })
}

fn finish(g: Group, repeats: u32) -> ProbeBrittleness {
    let vs = &g.variants;
    let passed: u64 = vs.iter().map(|v| v.pass).sum();
    let cases: u64 = vs.iter().map(VariantAcc::graded).sum();
    let errors: u64 = vs.iter().map(|v| v.error).sum();
    let ungraded: u64 = vs.iter().map(|v| v.ungraded).sum();
    let graded: Vec<&VariantAcc> = vs.iter().filter(|v| v.graded() > 0).collect();
    let canonical = vs.iter().find(|v| v.canonical && v.graded() > 0);
    let canonical_passed = canonical.map(|c| c.fail == 0);
    let majority_failing = graded.iter().filter(|v| v.majority_fail()).count() as u64;

    let label = if cases == 0 {
        Label::Untested
    } else if canonical_passed != Some(true)
        && majority_failing > 0
        && majority_failing * 2 >= graded.len() as u64
    {
        Label::Broken
    } else if graded.iter().any(|v| v.failing()) && graded.iter().any(|v| v.passing()) {
        Label::Brittle
    } else if graded.iter().any(|v| v.flaky()) {
        Label::Flaky
    } else if graded.iter().any(|v| v.fail > 0) {
        // Every graded variant fails but the canonical was not run: nothing passes.
        Label::Broken
    } else {
        Label::Solid
    };

    let axes = attribution(vs, &g.axes);
    let interactions = interactions(&graded);

    // Minimal failing variant.
    let failing: Vec<&&VariantAcc> = graded
        .iter()
        .filter(|v| !v.canonical && v.majority_fail())
        .collect();
    // Counted per shared changed-axes set first, then per value.
    let per_set = per_shared(
        failing.iter().copied(),
        |v| &v.changed,
        |n: &mut u64, _| *n += 1,
    );
    let mut value_count: HashMap<(&str, &str), u64> = HashMap::new();
    for (set, n) in per_set {
        for (a, x) in set.iter() {
            *value_count.entry((a.as_str(), x.as_str())).or_default() += n;
        }
    }
    // How common a variant's changed values are among the failing ones: computed once per
    // shared changed-axes set (a probe has thousands of variants and a few dozen sets).
    let mut commonness: HashMap<usize, u64> = HashMap::new();
    let mut commonness_of = |v: &VariantAcc| -> u64 {
        *commonness
            .entry(Arc::as_ptr(&v.changed) as usize)
            .or_insert_with(|| {
                v.changed
                    .iter()
                    .map(|(a, x)| value_count[&(a.as_str(), x.as_str())])
                    .sum()
            })
    };
    let minimal = failing
        .iter()
        .map(|v| (v, commonness_of(v)))
        .min_by(|(a, ca), (b, cb)| {
            a.changed
                .len()
                .cmp(&b.changed.len())
                .then_with(|| cb.cmp(ca))
                .then_with(|| b.fail.cmp(&a.fail))
                .then_with(|| a.id.cmp(&b.id))
        })
        .map(|(v, _)| v);

    // Repeats.
    let (k, pass_at_1, pass_hat_k) = if repeats > 1 {
        let k = u64::from(repeats);
        let p1: Vec<f64> = graded
            .iter()
            .map(|v| v.pass as f64 / v.graded() as f64)
            .collect();
        let pk: Vec<f64> = graded
            .iter()
            .filter(|v| v.graded() >= k)
            .map(|v| pass_hat(v.graded(), v.pass, k))
            .collect();
        (Some(repeats), mean(&p1), mean(&pk))
    } else {
        (None, None, None)
    };

    let flaky = graded
        .iter()
        .filter(|v| v.flaky())
        .map(|v| FlakyVariant {
            variant: v.id.clone(),
            axes: v.changed.iter().cloned().collect(),
            cases: v.graded(),
            passed: v.pass,
        })
        .collect();

    ProbeBrittleness {
        probe: g.probe,
        model: g.model,
        capability: g.capability,
        tier: g.tier,
        label,
        canonical_passed,
        cases,
        passed,
        pass_rate: rate(passed, cases),
        errors,
        ungraded,
        variants: graded.len() as u64,
        failing_variants: majority_failing,
        axes,
        interactions,
        minimal_failing: minimal.map(|v| v.changed.iter().cloned().collect()),
        minimal_failing_variant: minimal.map(|v| v.id.clone()),
        k,
        pass_at_1,
        pass_hat_k,
        flaky,
    }
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// τ-bench's pass^k estimator for one variant: C(c, k) / C(n, k) (needs n ≥ k).
pub fn pass_hat(n: u64, c: u64, k: u64) -> f64 {
    if c < k || n < k {
        return 0.0;
    }
    (0..k).map(|i| (c - i) as f64 / (n - i) as f64).product()
}

/// Axis key: (rank in axis order, name).
type AxisKey = (usize, String);
/// Value key: (changed from `original`, value), so `original` sorts first.
type ValueKey = (bool, String);

fn attribution(
    vs: &[VariantAcc],
    axes: &[SharedAxes],
) -> IndexMap<String, IndexMap<String, AxisValueStats>> {
    // Summed per distinct axes map first, then per axis value.
    let per_map = per_shared(
        vs.iter().zip(axes),
        |(_, map)| map,
        |s: &mut (u64, u64), (v, _)| {
            s.0 += v.graded();
            s.1 += v.pass;
        },
    );
    // (axis, value) → (cases, passed), with borrowed keys: a probe has as many distinct maps
    // as variants when its variants are sampled, and only a few dozen axis values.
    let mut sums: HashMap<(&str, &str), (u64, u64)> = HashMap::new();
    // Stored maps leave out `tools` when it is `original` (see `VariantAxes::to_map`): when
    // some variant has the axis, a map without it is at `tools=original`.
    let tools = AxisName::Tools.as_str();
    let named: BTreeSet<&str> = per_map
        .iter()
        .flat_map(|(map, _)| map.keys().map(String::as_str))
        .filter(|a| *a == tools)
        .collect();
    for (map, (graded, pass)) in &per_map {
        for (axis, value) in map.iter() {
            let e = sums.entry((axis.as_str(), value.as_str())).or_default();
            e.0 += graded;
            e.1 += pass;
        }
        for axis in named.iter().filter(|a| !map.contains_key(**a)) {
            let e = sums.entry((axis, ORIGINAL)).or_default();
            e.0 += graded;
            e.1 += pass;
        }
    }
    // axis → value → (cases, passed), in report order.
    let mut counts: BTreeMap<AxisKey, BTreeMap<ValueKey, (u64, u64)>> = BTreeMap::new();
    for ((axis, value), c) in sums {
        counts
            .entry(axis_rank(axis))
            .or_default()
            .insert((value != ORIGINAL, value.to_string()), c);
    }
    counts.retain(|_, values| values.len() > 1);
    // One-sided Fisher p-values for every testable value.
    let mut lf = LnFactorial::default();
    let mut tests: Vec<(AxisKey, ValueKey, f64)> = Vec::new();
    for (axis, values) in &counts {
        let total: u64 = values.values().map(|c| c.0).sum();
        let total_fail: u64 = values.values().map(|c| c.0 - c.1).sum();
        for (value, &(n, p)) in values {
            if n == 0 || n == total {
                continue;
            }
            let pv = fisher_greater(&mut lf, n - p, n, total_fail, total);
            tests.push((axis.clone(), value.clone(), pv));
        }
    }
    let adjusted = holm(&tests.iter().map(|t| t.2).collect::<Vec<_>>());
    let adj: HashMap<(&AxisKey, &ValueKey), f64> = tests
        .iter()
        .zip(&adjusted)
        .map(|(t, a)| ((&t.0, &t.1), *a))
        .collect();
    counts
        .iter()
        .map(|(axis, values)| {
            let inner = values
                .iter()
                .map(|(value, &(n, p))| {
                    let p_value = adj.get(&(axis, value)).copied();
                    (
                        value.1.clone(),
                        AxisValueStats {
                            cases: n,
                            passed: p,
                            pass_rate: rate(p, n),
                            significant: p_value.is_some_and(|x| x <= ALPHA),
                            p_value,
                        },
                    )
                })
                .collect();
            (axis.1.clone(), inner)
        })
        .collect()
}

fn interactions(graded: &[&VariantAcc]) -> Vec<Interaction> {
    // Changed-axes set → (passes, fails), summed over variants with that set.
    // Summed per shared set first, then by content.
    type Set<'a> = &'a [(String, String)];
    let per_set = per_shared(
        graded.iter().copied(),
        |v| &v.changed,
        |s: &mut (u64, u64), v| {
            s.0 += v.pass;
            s.1 += v.fail;
        },
    );
    let mut by_set: HashMap<Set<'_>, (u64, u64)> = HashMap::new();
    for (set, (pass, fail)) in per_set {
        let e = by_set.entry(set.as_slice()).or_default();
        e.0 += pass;
        e.1 += fail;
    }
    let passing = |set: &[(String, String)]| by_set.get(set).is_some_and(|&(p, f)| p > 0 && f == 0);
    // The pairs that always fail, in set order (the output's order).
    let mut pairs: Vec<(Set<'_>, u64, u64)> = by_set
        .iter()
        .map(|(set, &(p, f))| (*set, p, f))
        .filter(|&(set, p, f)| set.len() == 2 && p == 0 && f > 0)
        .collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (set, p, f) in pairs {
        if passing(&set[..1]) && passing(&set[1..]) {
            out.push(Interaction {
                axes: set.iter().cloned().collect(),
                cases: p + f,
                passed: p,
            });
        }
    }
    out
}

/// Sums `add` over `items` per shared `Arc` (told apart by address): a probe's variants share
/// a few axes maps and changed-axes sets, so whatever is then done per axis value is done once
/// per distinct one instead of once per variant. In no particular order.
fn per_shared<'a, T, I: Copy, S: Default>(
    items: impl IntoIterator<Item = I>,
    shared: impl Fn(I) -> &'a Arc<T>,
    add: impl Fn(&mut S, I),
) -> Vec<(&'a Arc<T>, S)> {
    let mut by: HashMap<usize, (&'a Arc<T>, S)> = HashMap::new();
    for item in items {
        let a = shared(item);
        let e = by
            .entry(Arc::as_ptr(a) as usize)
            .or_insert_with(|| (a, S::default()));
        add(&mut e.1, item);
    }
    by.into_values().collect()
}

/// ln(n!) with a table grown on demand.
#[derive(Debug, Default)]
pub struct LnFactorial {
    table: Vec<f64>,
}

impl LnFactorial {
    /// ln(n!).
    pub fn get(&mut self, n: u64) -> f64 {
        let n = n as usize;
        if self.table.is_empty() {
            self.table.push(0.0);
        }
        while self.table.len() <= n {
            let i = self.table.len();
            let prev = self.table[i - 1];
            self.table.push(prev + (i as f64).ln());
        }
        self.table[n]
    }

    /// ln C(n, k).
    pub fn ln_choose(&mut self, n: u64, k: u64) -> f64 {
        if k > n {
            return f64::NEG_INFINITY;
        }
        self.get(n) - self.get(k) - self.get(n - k)
    }
}

/// One-sided Fisher exact test: the probability of seeing at least `x` failures among `n`
/// cases drawn from `total` cases of which `total_fail` failed (hypergeometric upper tail),
/// summed in log space.
pub fn fisher_greater(lf: &mut LnFactorial, x: u64, n: u64, total_fail: u64, total: u64) -> f64 {
    let hi = n.min(total_fail);
    let lo = x.max((n + total_fail).saturating_sub(total));
    if lo > hi {
        return 0.0;
    }
    let denom = lf.ln_choose(total, n);
    let terms: Vec<f64> = (lo..=hi)
        .map(|i| lf.ln_choose(total_fail, i) + lf.ln_choose(total - total_fail, n - i) - denom)
        .collect();
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return 0.0;
    }
    let s: f64 = terms.iter().map(|t| (t - m).exp()).sum();
    (m + s.ln()).exp().min(1.0)
}

/// Holm's step-down adjusted p-values, in input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_by(|a, b| p[*a].total_cmp(&p[*b]).then(a.cmp(b)));
    let mut out = vec![1.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in idx.iter().enumerate() {
        let adj = ((m - rank) as f64 * p[i]).min(1.0);
        running = running.max(adj);
        out[i] = running;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_matches_known_values() {
        let mut lf = LnFactorial::default();
        // Lady tasting tea: 3 of 4 right, one-sided p = 17/70.
        let p = fisher_greater(&mut lf, 3, 4, 4, 8);
        assert!((p - 17.0 / 70.0).abs() < 1e-12, "{p}");
        // All 9 failures in the 9 cases of one value, out of 36: 1 / C(36, 9).
        let p = fisher_greater(&mut lf, 9, 9, 9, 36);
        assert!((p - 1.0 / 94_143_280.0).abs() < 1e-15, "{p}");
        // No failure in the group: p = 1.
        assert!((fisher_greater(&mut lf, 0, 9, 9, 36) - 1.0).abs() < 1e-12);
        // Large tables stay finite.
        let p = fisher_greater(&mut lf, 5000, 5000, 5000, 100_000);
        assert!((0.0..1e-300).contains(&p));
    }

    #[test]
    fn holm_adjusts_step_down() {
        let adj = holm(&[0.01, 0.04, 0.03, 0.5]);
        for (got, want) in adj.iter().zip([0.04, 0.09, 0.09, 0.5]) {
            assert!((got - want).abs() < 1e-12, "{adj:?}");
        }
    }

    #[test]
    fn pass_hat_k_is_tau_bench() {
        assert_eq!(pass_hat(4, 4, 4), 1.0);
        assert_eq!(pass_hat(4, 3, 4), 0.0);
        assert!((pass_hat(4, 3, 2) - 0.5).abs() < 1e-12);
    }
}
