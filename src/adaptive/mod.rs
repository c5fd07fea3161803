//! The adaptive strategy: a pairwise covering array first, then follow-up rounds inside the
//! same run, each planned from the evidence stored so far, until every axis value is shown a
//! cause or cleared, or the call budget ends.
//!
//! # Decisions
//! Per probe × model, every value `v` of every varying axis is judged on its **clean variants**:
//! the graded variants with `v` whose other changed values are neither decided causes nor
//! suspects (values whose clean variants fail often — cleared ones included when a quarter of
//! them fail, a flaky value's look —, or, before they have any, whose cases fail in at least
//! half) nor `v`'s partner in a shown interaction. A variant fails when most of its samples fail: samples of one variant are
//! not independent evidence. A clean variant of `v` therefore fails because of `v`, or by chance.
//! With `k` of `n` clean variants failing:
//! - **cause** when `P(X ≥ k | n, ½) ≤ α / m`: `v` makes most otherwise-clean variants fail;
//! - **cleared** when `P(X ≤ k | n, ½) ≤ α / m`: most of them pass;
//! - **undecided** otherwise,
//!
//! with `α` = [`ALPHA`] and `m` the number of values judged (Bonferroni over the probe ×
//! model). A value that fails only together with another value is cleared here: a single-value
//! cause is never claimed for half of a pair.
//!
//! # Interactions
//! A pair of values of two axes, each cleared alone, seen failing together in a clean variant
//! (no suspect value besides) — or two values that are suspects only because they keep meeting
//! (neither a cause nor failing in most of its clean variants, the pair failing in most of at
//! least two of its variants with no other suspect) — is tested on more clean variants with both; it is an
//! **interaction** when `P(X ≥ k | n, ½) ≤ α / M`, `M` every possible pair of values of the
//! probe (fixed in advance, not the pairs the data suggested), and dismissed once most of its
//! variants pass. Once every value is decided, the rounds cover each pair of cleared values in
//! some clean variant, so a pair that the covering array only met on a dirty background still
//! gets its chance. Once a pair is shown, a variant with both values is no evidence about
//! either value alone, so each half is judged (and cleared) on its other variants.
//!
//! # Witnesses and 1-minimality
//! For every cause the rounds run the canonical with only the cause's values changed (and, for
//! an interaction, each of its two values alone). A cause is reported **1-minimal** when that
//! variant failed and every variant with one of its values reverted passed (the canonical, for
//! a single value).
//!
//! # Follow-up rounds
//! Every undecided value gets new points with that value and background values drawn from the
//! still undecided (never suspect) and the cleared values of the other axes (not those whose
//! clean variants still fail a quarter of the time: a flaky value's chance failures would be
//! blamed on its neighbours), so one point is clean evidence for up to five values at once,
//! distinct from every point already run. Values still undecided past the decisive number of
//! clean variants (a pass rate near the middle, often a flaky value) and flaky values come
//! last, after the pair coverage.
//!
//! A value is **parked** when it is undecided past the decisive count, a quarter or more of
//! its clean variants fail, and yet `P(X ≤ k | n, ½) ≤` [`FUTILITY`]: more evidence would most
//! likely clear it and almost never make it a cause. It gets new points only in a round in
//! which nothing else asks for any (no open pair, no pair coverage, no other value), so a
//! value failing at random a third of the time no longer eats the budget the causes and the
//! interactions need. Parking decides nothing: the value stays undecided until the test above
//! decides it. A round's points go through the ordinary sweep ([`crate::sweep::run`], resumed, with
//! [`SweepOptions::points`]), so the cache, the limits, the retries and the store are the
//! sweep's. The budget counts the run's cases (a cached answer included), a repeat's new
//! samples included.
//!
//! # Repeats where the model is flaky
//! A round re-runs, with [`REPEAT_SAMPLES`] samples (through the plan's per-point sample
//! count, [`PlannedPoint::samples`]: the sweep keeps the samples already graded and runs the
//! rest), the canonical variant once, and a few failing clean variants of each value still
//! undecided past the decisive count. A prompt that fails for a fixed reason fails again; one
//! that fails at random does not. A value is **flaky** when the samples of one of its
//! variants disagree and no flakier value (one on more disagreeing variants) on that variant
//! explains it; when the canonical's samples disagree, every value is.
//!
//! Further repeats go only where a majority could change a decision: a flaky value whose
//! clean variants fail in at least half has its variants run once topped up to
//! [`REPEAT_SAMPLES`] samples and its new points get as many (a cause is never claimed on
//! single samples of a flaky value), and so does every point once the canonical is flaky. A
//! flaky value passing in most of its clean variants runs its new points once: a single
//! failing sample only makes it harder to clear (the error is on the safe side), and a new
//! variant teaches more than two more samples of an old one. Each variant counts once in the
//! test above, by the majority of its samples (the samples of one variant are not independent
//! evidence about the value), so a value failing at random in fewer than half of the calls is
//! cleared rather than flagged, once enough variants are in, or parked. A flaky value is
//! never background for another value's evidence. The report gives per value the repeats run
//! on its variants and whether it is flaky.
//!
//! # Error rates and looking again
//! The tests are re-run on all the evidence after every round, and a value decided gets no
//! more points: a sequential design with at most [`MAX_ROUNDS`] looks, each at `α / m`. The
//! looks are not separately corrected for; what keeps the repeated looks honest is that a
//! value is only ever looked at again with more variants, that a harmless value's failure
//! rate sits far below the ½ the cause test is against (its chance of ever crossing the bound
//! is far below `α / m` per look), and that the values whose rate sits nearest ½ — where
//! repeated looks would matter — are parked rather than sampled until they cross. The survey
//! in `tests/it/adaptive.rs` (`adaptive_survey`) measures the false alarms that result.

//! # Thresholds
//! An ordered axis whose values from some level on are all causes and below it all cleared is
//! reported as one threshold cause ("length from 8k on, any position"), not as one cause per
//! value. Length is always ordered (levels in library order, the position a second factor);
//! a persona, phrasing or format library file declares its values ordered with
//! `ordered: true` (each value its own level, in file order).

use crate::axes::{AxisLibrary, AxisName, ORIGINAL};
use crate::config::Config;
use crate::error::Result;
use crate::expand::axis_values;
use crate::grade::CaseStatus;
use crate::probe::LoadedProbe;
use crate::render::VariantAxes;
use crate::store::Store;
use crate::sweep::{self, PlannedPoint, PointPlan, SweepOptions};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Family-wise error rate of the per-value decisions of one probe × model.
pub const ALPHA: f64 = 0.05;

/// The default budget, as a fraction of the full product's cases (at least three times the
/// covering array, at most the full product).
pub const DEFAULT_BUDGET_FRACTION: f64 = 0.048;

/// Most follow-up rounds one run makes.
pub const MAX_ROUNDS: usize = 40;

/// Samples a variant gets once its value is shown flaky (its samples disagree) or the
/// canonical is: odd, so a variant's majority is never a tie.
pub const REPEAT_SAMPLES: u32 = 3;

/// The level of the futility test that parks a value (see [`parked`]): not corrected for the
/// number of values, since parking only withholds the budget and never makes a decision.
pub const FUTILITY: f64 = 0.05;

/// Failing clean variants of an undecided value re-run with [`REPEAT_SAMPLES`] samples to
/// see whether the value's failures are flaky (the samples disagree) or fixed by the prompt.
const PROBE_VARIANTS: usize = 1;

/// What was decided about one axis value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Most otherwise-clean variants with this value fail.
    Cause,
    /// Most otherwise-clean variants with this value pass.
    Cleared,
    /// Not yet shown either way.
    Undecided,
}

impl Decision {
    /// The word used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Cause => "cause",
            Decision::Cleared => "cleared",
            Decision::Undecided => "undecided",
        }
    }
}

/// One axis value's decision and the cases it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct ValueDecision {
    /// Axis.
    pub axis: AxisName,
    /// Value.
    pub value: String,
    /// Decision.
    pub decision: Decision,
    /// Clean graded variants (see the module docs).
    pub clean_variants: u64,
    /// Of which failed (in most of their samples).
    pub clean_failed: u64,
    /// Every graded case with this value.
    pub cases: u64,
    /// Of which failed.
    pub failed: u64,
    /// Samples beyond the first of the variants with this value (`--repeats` and the rounds'
    /// repeats together).
    pub repeats: u64,
    /// Samples of one of its variants disagreed (the disagreement not explained by a flakier
    /// value on the same variant), or the canonical's did: its variants get
    /// [`REPEAT_SAMPLES`] samples and each counts by its majority.
    pub flaky: bool,
}

/// A cause on an ordered axis that starts at one level.
#[derive(Debug, Clone, Serialize)]
pub struct Threshold {
    /// Axis.
    pub axis: AxisName,
    /// The first failing level (`8k`).
    pub from: String,
    /// The values it covers.
    pub values: Vec<String>,
}

/// The decisions of one probe × model.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDecisions {
    /// Model.
    pub model: String,
    /// Probe.
    pub probe: String,
    /// The canonical variant's outcome: `pass`, `fail` (then every cause is measured against
    /// an incident that already fails: read them with care) or `not graded`.
    pub canonical: String,
    /// The canonical variant's samples disagreed: every follow-up point of this probe × model
    /// gets [`REPEAT_SAMPLES`] samples.
    pub canonical_flaky: bool,
    /// Samples beyond the first of every variant of this probe × model.
    pub repeats: u64,
    /// Causes in words: per axis a threshold, then the single values it does not cover; then
    /// interactions.
    pub causes: Vec<String>,
    /// Thresholds on ordered axes.
    pub thresholds: Vec<Threshold>,
    /// Every judged value.
    pub values: Vec<ValueDecision>,
    /// Pairs of values that fail together while each alone is cleared.
    pub interactions: Vec<Interaction>,
    /// Per cause (in the order of `causes`): its smallest variant observed to fail, and
    /// whether that variant is shown 1-minimal.
    pub minimal: Vec<MinimalCause>,
}

/// Two values that fail together.
#[derive(Debug, Clone, Serialize)]
pub struct Interaction {
    /// The two values, `axis=value`.
    pub values: [String; 2],
    /// Graded variants with both values and no suspect value besides.
    pub variants: u64,
    /// Of which failed.
    pub failed: u64,
}

/// Whether a cause's smallest failing variant is shown 1-minimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Minimality {
    /// It failed, and every variant with one of its changed values reverted passed (for a
    /// single value: the canonical).
    Shown,
    /// It failed, but some reverted variant failed too or was not run yet.
    NotYetShown,
    /// No variant with only the cause's values changed failed (yet).
    NoFailingWitness,
}

/// A cause's smallest failing variant.
#[derive(Debug, Clone, Serialize)]
pub struct MinimalCause {
    /// The cause, as in `causes`.
    pub cause: String,
    /// The changed values of its smallest observed failing variant (`axis=value`); empty when
    /// none failed.
    pub axes: Vec<String>,
    /// 1-minimality.
    pub one_minimal: Minimality,
}

/// What an adaptive sweep reports.
#[derive(Debug, Clone, Serialize)]
pub struct AdaptiveReport {
    /// Run id.
    pub run: String,
    /// Follow-up rounds made (round 0, the covering array, not counted).
    pub rounds: usize,
    /// Cases in the run.
    pub cases: u64,
    /// The call budget.
    pub budget: u64,
    /// Cases the full product would have run.
    pub full_product: u64,
    /// Why the rounds ended.
    pub ended: String,
    /// Per probe × model.
    pub groups: Vec<GroupDecisions>,
}

/// The number of axes: a variant's value indices fit in a fixed array.
const AXES: usize = AxisName::ALL.len();

/// One variant's graded samples.
#[derive(Debug, Clone, Default)]
struct Obs {
    /// Value index per axis (0 = original), in [`AxisName::ALL`] order.
    idx: [usize; AXES],
    pass: u64,
    fail: u64,
}

impl Obs {
    /// Failed in most of its graded samples: the variant's outcome. The tests count variants,
    /// not samples, since the samples of one variant are not independent evidence.
    fn failing(&self) -> bool {
        2 * self.fail > self.pass + self.fail
    }

    /// Graded samples.
    fn samples(&self) -> u64 {
        self.pass + self.fail
    }

    /// Its samples disagree: the same prompt both passed and failed.
    fn disagrees(&self) -> bool {
        self.pass > 0 && self.fail > 0
    }

    /// The canonical variant: no axis changed.
    fn is_canonical(&self) -> bool {
        self.idx.iter().all(|&i| i == 0)
    }
}

/// The evidence of one probe × model.
#[derive(Debug, Clone)]
struct Group {
    model: String,
    probe: String,
    obs: Vec<Obs>,
}

/// The points already run, per probe.
type Seen = HashMap<String, HashSet<VariantAxes>>;

/// A pair of values: (axis index, value index) × 2, the lower axis first.
type ValuePair = ((usize, usize), (usize, usize));

/// The value lists of a probe, per axis in [`AxisName::ALL`] order.
type Values = Vec<(AxisName, Vec<String>)>;

/// Reads the run's graded cases into per probe × model evidence; returns it and the number of
/// cases stored (errors included).
fn gather(
    store: &Store,
    run: &str,
    values: &HashMap<String, Values>,
) -> Result<(Vec<Group>, u64, Seen)> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut by_variant: HashMap<(usize, String), usize> = HashMap::new();
    let mut seen: HashMap<String, HashSet<VariantAxes>> = HashMap::new();
    let mut total = 0u64;
    store.for_each_case_brief(run, |row| {
        total += 1;
        let Some(vals) = values.get(row.probe_id) else {
            return Ok(());
        };
        let mut idx = [0usize; AXES];
        let mut axes = VariantAxes::default();
        for (k, (axis, list)) in vals.iter().enumerate() {
            let v = row
                .axes
                .get(axis.as_str())
                .map(String::as_str)
                .unwrap_or(ORIGINAL);
            match list.iter().position(|x| x == v) {
                Some(i) => idx[k] = i,
                None => return Ok(()),
            }
            axes.set(*axis, v.to_string());
        }
        seen.entry(row.probe_id.to_string())
            .or_default()
            .insert(axes);
        let key = (row.model.to_string(), row.probe_id.to_string());
        let gi = *index.entry(key).or_insert_with(|| {
            groups.push(Group {
                model: row.model.to_string(),
                probe: row.probe_id.to_string(),
                obs: Vec::new(),
            });
            groups.len() - 1
        });
        let oi = *by_variant
            .entry((gi, row.variant_id.to_string()))
            .or_insert_with(|| {
                groups[gi].obs.push(Obs {
                    idx,
                    ..Obs::default()
                });
                groups[gi].obs.len() - 1
            });
        match row.status {
            CaseStatus::Pass => groups[gi].obs[oi].pass += 1,
            CaseStatus::Fail => groups[gi].obs[oi].fail += 1,
            _ => {}
        }
        Ok(())
    })?;
    Ok((groups, total, seen))
}

/// `ln C(n, k)`.
fn ln_choose(n: u64, k: u64) -> f64 {
    let lf = |x: u64| (1..=x).map(|i| (i as f64).ln()).sum::<f64>();
    lf(n) - lf(k) - lf(n - k)
}

/// `P(X ≥ k)` for `X ~ Binomial(n, ½)`.
pub fn binom_upper_half(n: u64, k: u64) -> f64 {
    (k..=n)
        .map(|i| (ln_choose(n, i) - n as f64 * std::f64::consts::LN_2).exp())
        .sum::<f64>()
        .min(1.0)
}

/// The state of the decisions of one group: per axis, per value index.
#[derive(Debug, Clone)]
struct State {
    decision: Vec<Vec<Decision>>,
    suspect: Vec<Vec<bool>>,
    /// (clean variants, clean failing, cases, failed cases).
    counts: Vec<Vec<[u64; 4]>>,
    /// Pairs of values seen failing together on a clean background, with their evidence.
    pairs: Vec<Pair>,
    /// Per value: shown flaky (see [`ValueDecision::flaky`]).
    flaky: Vec<Vec<bool>>,
    /// The canonical variant's samples disagree.
    canonical_flaky: bool,
}

/// What is known about a pair of values of two axes failing together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairDecision {
    /// Shown: most otherwise-clean variants with both values fail.
    Interaction,
    /// Most of them pass: the failure it was suspected from was chance.
    Dismissed,
    /// Still being asked.
    Open,
}

/// A pair of values (axis index, value index) × 2, and its pair-clean evidence.
#[derive(Debug, Clone, Copy)]
struct Pair {
    a: (usize, usize),
    b: (usize, usize),
    /// Graded cases with both values and no suspect value besides.
    cases: u64,
    failed: u64,
    decision: PairDecision,
}

/// The number of pairs of values of two different axes: the Bonferroni factor of the
/// interaction test (fixed by the probe, not by which pairs the data suggested).
fn possible_pairs(sizes: &[usize]) -> usize {
    let mut n = 0;
    for a in 0..sizes.len() {
        for b in a + 1..sizes.len() {
            n += sizes[a].saturating_sub(1) * sizes[b].saturating_sub(1);
        }
    }
    n
}

/// Pairs of non-suspect values that failed together on a clean background, and their tests.
fn decide_pairs(group: &Group, st: &State, sizes: &[usize]) -> Vec<Pair> {
    let limit = ALPHA / possible_pairs(sizes).max(1) as f64;
    let changed = |o: &Obs| -> Vec<(usize, usize)> {
        (0..sizes.len())
            .filter(|&a| o.idx[a] != 0)
            .map(|a| (a, o.idx[a]))
            .collect()
    };
    let mut candidates: Vec<ValuePair> = Vec::new();
    // A value that may be half of a pair: not a cause, and its clean variants fail in at most
    // half (a value failing in most of them is a single cause or on its way to one).
    let halfway = |(a, i): (usize, usize)| {
        let [n, k, _, _] = st.counts[a][i];
        st.decision[a][i] != Decision::Cause && 2 * k <= n
    };
    // Per pair of suspects that may be halves: its variants with no suspect besides, failing.
    let mut suspect_pairs: HashMap<ValuePair, (u64, u64)> = HashMap::new();
    for o in group.obs.iter().filter(|o| o.samples() > 0) {
        let ch = changed(o);
        let suspects: Vec<(usize, usize)> = ch
            .iter()
            .copied()
            .filter(|&(a, i)| st.suspect[a][i])
            .collect();
        if suspects.is_empty() {
            if o.fail > 0 {
                for x in 0..ch.len() {
                    for y in x + 1..ch.len() {
                        if !candidates.contains(&(ch[x], ch[y])) {
                            candidates.push((ch[x], ch[y]));
                        }
                    }
                }
            }
            continue;
        }
        // One or two suspects, each possibly half of a pair: two values that are suspects only
        // because they keep meeting (each other's usual background) are tested as a pair.
        if suspects.len() > 2 || !suspects.iter().all(|&s| halfway(s)) {
            continue;
        }
        for &x in &ch {
            for &y in &ch {
                if x.0 < y.0 && suspects.iter().all(|s| *s == x || *s == y) {
                    let e = suspect_pairs.entry((x, y)).or_default();
                    e.0 += 1;
                    e.1 += o.failing() as u64;
                }
            }
        }
    }
    let mut more: Vec<ValuePair> = suspect_pairs
        .into_iter()
        .filter(|&(_, (n, k))| k >= 2 && 2 * k > n)
        .map(|(p, _)| p)
        .collect();
    more.sort_unstable();
    for p in more {
        if !candidates.contains(&p) {
            candidates.push(p);
        }
    }
    let mut out = Vec::new();
    for (pa, pb) in candidates {
        let (mut n, mut k) = (0u64, 0u64);
        for o in &group.obs {
            if o.idx[pa.0] != pa.1 || o.idx[pb.0] != pb.1 {
                continue;
            }
            let dirty = changed(o)
                .iter()
                .any(|&(a, i)| a != pa.0 && a != pb.0 && st.suspect[a][i]);
            if !dirty && o.pass + o.fail > 0 {
                n += 1;
                k += o.failing() as u64;
            }
        }
        let decision = if binom_upper_half(n, k) <= limit {
            PairDecision::Interaction
        } else if n >= 2 && 2 * k < n {
            PairDecision::Dismissed
        } else {
            PairDecision::Open
        };
        out.push(Pair {
            a: pa,
            b: pb,
            cases: n,
            failed: k,
            decision,
        });
    }
    out
}

/// Decides every value of one group (see the module docs).
#[allow(clippy::needless_range_loop)] // axes × values are indexed together
fn decide(group: &Group, values: &Values) -> State {
    let sizes: Vec<usize> = values.iter().map(|(_, v)| v.len()).collect();
    let judged: usize = sizes.iter().map(|s| s.saturating_sub(1)).sum();
    let limit = ALPHA / judged.max(1) as f64;
    let mut st = State {
        decision: sizes
            .iter()
            .map(|&s| vec![Decision::Undecided; s])
            .collect(),
        suspect: sizes.iter().map(|&s| vec![false; s]).collect(),
        counts: sizes.iter().map(|&s| vec![[0; 4]; s]).collect(),
        pairs: Vec::new(),
        flaky: sizes.iter().map(|&s| vec![false; s]).collect(),
        canonical_flaky: group.obs.iter().any(|o| o.is_canonical() && o.disagrees()),
    };
    for o in &group.obs {
        for (a, &i) in o.idx.iter().enumerate().take(sizes.len()) {
            st.counts[a][i][2] += o.pass + o.fail;
            st.counts[a][i][3] += o.fail;
        }
    }
    // Before any clean evidence: a value failing in at least half of all its cases is a suspect.
    for a in 0..sizes.len() {
        for i in 1..sizes[a] {
            let c = st.counts[a][i];
            st.suspect[a][i] = c[2] > 0 && 2 * c[3] >= c[2];
        }
    }
    // Pairs shown to fail together: a variant with both values is no evidence about either
    // value alone (the pair explains its failure).
    let mut partners: Vec<ValuePair> = Vec::new();
    for _ in 0..4 {
        for _ in 0..8 {
            let mut next = st.suspect.clone();
            for a in 0..sizes.len() {
                for i in 1..sizes[a] {
                    let (mut n, mut k) = (0u64, 0u64);
                    for o in group.obs.iter().filter(|o| o.idx[a] == i) {
                        let dirty = (0..sizes.len()).any(|b| {
                            b != a
                                && o.idx[b] != 0
                                && (st.suspect[b][o.idx[b]]
                                    || partners.iter().any(|&(x, y)| {
                                        (x == (a, i) && y == (b, o.idx[b]))
                                            || (y == (a, i) && x == (b, o.idx[b]))
                                    }))
                        });
                        if !dirty && o.pass + o.fail > 0 {
                            n += 1;
                            k += o.failing() as u64;
                        }
                    }
                    st.counts[a][i][0] = n;
                    st.counts[a][i][1] = k;
                    st.decision[a][i] = if n > 0 && binom_upper_half(n, k) <= limit {
                        Decision::Cause
                    } else if n > 0 && binom_upper_half(n, n - k) <= limit {
                        Decision::Cleared
                    } else {
                        Decision::Undecided
                    };
                    next[a][i] = match st.decision[a][i] {
                        Decision::Cause => true,
                        // Cleared, yet failing a quarter of the time (a flaky value's
                        // look): its variants are still no clean evidence for the others,
                        // whose clean variants would inherit its chance failures.
                        Decision::Cleared => 4 * k >= n,
                        Decision::Undecided if n > 0 => 10 * k >= 3 * n,
                        Decision::Undecided => st.suspect[a][i],
                    };
                }
            }
            if next == st.suspect {
                break;
            }
            st.suspect = next;
        }
        st.pairs = decide_pairs(group, &st, &sizes);
        let shown: Vec<ValuePair> = st
            .pairs
            .iter()
            .filter(|p| p.decision == PairDecision::Interaction)
            .map(|p| (p.a, p.b))
            .collect();
        if shown == partners {
            break;
        }
        partners = shown;
    }
    st.flaky = flaky_values(group, &sizes);
    st
}

/// Values whose samples disagree on identical prompts. Each variant whose samples disagree is
/// blamed on its flakiest changed value (the one on most disagreeing variants; all of them on
/// a tie), so one flaky value does not make every value it was paired with look flaky.
#[allow(clippy::needless_range_loop)] // axes × values are indexed together
fn flaky_values(group: &Group, sizes: &[usize]) -> Vec<Vec<bool>> {
    let mut disagreeing: Vec<Vec<u64>> = sizes.iter().map(|&s| vec![0; s]).collect();
    for o in group.obs.iter().filter(|o| o.disagrees()) {
        for a in 0..sizes.len() {
            disagreeing[a][o.idx[a]] += 1;
        }
    }
    let mut flaky: Vec<Vec<bool>> = sizes.iter().map(|&s| vec![false; s]).collect();
    for o in group.obs.iter().filter(|o| o.disagrees()) {
        let most = (0..sizes.len())
            .filter(|&a| o.idx[a] != 0)
            .map(|a| disagreeing[a][o.idx[a]])
            .max()
            .unwrap_or(0);
        for a in 0..sizes.len() {
            let i = o.idx[a];
            if i != 0 && disagreeing[a][i] == most {
                flaky[a][i] = true;
            }
        }
    }
    flaky
}

/// A variant counts as clean evidence for axis `a`'s value: no other changed value on it is a
/// suspect.
fn clean_for(st: &State, o: &Obs, a: usize, axes: usize) -> bool {
    !(0..axes).any(|b| b != a && o.idx[b] != 0 && st.suspect[b][o.idx[b]])
}

/// The level of each value of an ordered axis, with its name: for length the level of
/// `8k-middle` is `8k` (levels in library order, positions sharing one); for any other ordered
/// axis every value is its own level. `original` has none.
fn levels_of(axis: AxisName, values: &[String]) -> Vec<Option<(usize, String)>> {
    let mut levels: Vec<String> = Vec::new();
    values
        .iter()
        .map(|v| {
            if v == ORIGINAL {
                return None;
            }
            let level = match axis {
                AxisName::Length => v.rsplit_once('-').map_or(v.as_str(), |(l, _)| l),
                _ => v.as_str(),
            };
            let i = match levels.iter().position(|l| l == level) {
                Some(i) => i,
                None => {
                    levels.push(level.to_string());
                    levels.len() - 1
                }
            };
            Some((i, level.to_string()))
        })
        .collect()
}

/// A threshold on an ordered axis: every value from some level on is a cause, every value
/// below it cleared, and more than one value covered.
fn threshold(axis: AxisName, values: &[String], decisions: &[Decision]) -> Option<Threshold> {
    let levels = levels_of(axis, values);
    let max = levels.iter().flatten().map(|(i, _)| *i).max()?;
    for from in 0..=max {
        let ok = levels.iter().zip(decisions).all(|(l, d)| match l {
            None => true,
            Some((i, _)) if *i >= from => *d == Decision::Cause,
            Some(_) => *d == Decision::Cleared,
        });
        let covered: Vec<String> = values
            .iter()
            .zip(&levels)
            .filter(|(_, l)| l.as_ref().is_some_and(|(i, _)| *i >= from))
            .map(|(v, _)| v.clone())
            .collect();
        if ok && covered.len() > 1 {
            let name = levels
                .iter()
                .flatten()
                .find(|(i, _)| *i == from)
                .map(|(_, n)| n.clone())?;
            return Some(Threshold {
                axis,
                from: name,
                values: covered,
            });
        }
    }
    None
}

fn report_group(
    group: &Group,
    values: &Values,
    st: &State,
    ordered: &[AxisName],
) -> GroupDecisions {
    let mut out = GroupDecisions {
        model: group.model.clone(),
        probe: group.probe.clone(),
        canonical: String::new(),
        canonical_flaky: st.canonical_flaky,
        repeats: group
            .obs
            .iter()
            .map(|o| o.samples().saturating_sub(1))
            .sum(),
        causes: Vec::new(),
        thresholds: Vec::new(),
        values: Vec::new(),
        interactions: Vec::new(),
        minimal: Vec::new(),
    };
    // The outcome of the variant with exactly these values changed: Some(true) failing in
    // most of its graded samples, Some(false) otherwise, None when not graded.
    let outcome_of = |changed: &[(usize, usize)]| -> Option<bool> {
        let o = group.obs.iter().find(|o| {
            (0..values.len()).all(|b| {
                o.idx[b]
                    == changed
                        .iter()
                        .find(|(a, _)| *a == b)
                        .map(|&(_, i)| i)
                        .unwrap_or(0)
            })
        })?;
        (o.samples() > 0).then_some(o.failing())
    };
    let name = |(a, i): (usize, usize)| format!("{}={}", values[a].0.as_str(), values[a].1[i]);
    let canonical_passes = outcome_of(&[]) == Some(false);
    out.canonical = match outcome_of(&[]) {
        Some(false) => "pass",
        Some(true) => "fail",
        None => "not graded",
    }
    .to_string();
    let mut minimal = |cause: String, options: Vec<Vec<(usize, usize)>>| {
        let mut best = MinimalCause {
            cause,
            axes: Vec::new(),
            one_minimal: Minimality::NoFailingWitness,
        };
        for changed in options {
            if outcome_of(&changed) != Some(true) {
                continue;
            }
            let reverted_pass = if changed.len() == 1 {
                canonical_passes
            } else {
                (0..changed.len()).all(|k| {
                    let mut rest = changed.clone();
                    rest.remove(k);
                    outcome_of(&rest) == Some(false)
                })
            };
            best.axes = changed.iter().map(|&c| name(c)).collect();
            best.one_minimal = if reverted_pass {
                Minimality::Shown
            } else {
                Minimality::NotYetShown
            };
            if reverted_pass {
                break;
            }
        }
        out.minimal.push(best);
    };
    for (a, (axis, list)) in values.iter().enumerate() {
        if list.len() < 2 {
            continue;
        }
        let th = ordered
            .contains(axis)
            .then(|| threshold(*axis, list, &st.decision[a]))
            .flatten();
        if let Some(t) = &th {
            let text = if *axis == AxisName::Length {
                format!(
                    "length from {} on, any position ({} values)",
                    t.from,
                    t.values.len()
                )
            } else {
                format!(
                    "{} from {} on ({} values)",
                    axis.as_str(),
                    t.from,
                    t.values.len()
                )
            };
            out.causes.push(text.clone());
            let options = list
                .iter()
                .enumerate()
                .filter(|(_, v)| t.values.contains(v))
                .map(|(i, _)| vec![(a, i)])
                .collect();
            minimal(text, options);
        }
        for (i, v) in list.iter().enumerate().skip(1) {
            let c = st.counts[a][i];
            let d = st.decision[a][i];
            if d == Decision::Cause && th.as_ref().is_none_or(|t| !t.values.contains(v)) {
                let text = format!("{}={v}", axis.as_str());
                out.causes.push(text.clone());
                minimal(text, vec![vec![(a, i)]]);
            }
            out.values.push(ValueDecision {
                axis: *axis,
                value: v.clone(),
                decision: d,
                clean_variants: c[0],
                clean_failed: c[1],
                cases: c[2],
                failed: c[3],
                repeats: group
                    .obs
                    .iter()
                    .filter(|o| o.idx[a] == i)
                    .map(|o| o.samples().saturating_sub(1))
                    .sum(),
                flaky: st.flaky[a][i] || st.canonical_flaky,
            });
        }
        out.thresholds.extend(th);
    }
    for p in st
        .pairs
        .iter()
        .filter(|p| p.decision == PairDecision::Interaction)
    {
        // Only a pair whose values are each cleared alone is an interaction; otherwise the
        // single-value decisions already tell (or have not yet told) the story.
        if st.decision[p.a.0][p.a.1] != Decision::Cleared
            || st.decision[p.b.0][p.b.1] != Decision::Cleared
        {
            continue;
        }
        let text = format!(
            "{} + {} together (each alone cleared)",
            name(p.a),
            name(p.b)
        );
        out.causes.push(text.clone());
        minimal(text, vec![vec![p.a, p.b]]);
        out.interactions.push(Interaction {
            values: [name(p.a), name(p.b)],
            variants: p.cases,
            failed: p.failed,
        });
    }
    out
}

/// The point of a variant's value indices.
fn axes_of(values: &Values, idx: &[usize; AXES]) -> VariantAxes {
    let mut p = VariantAxes::default();
    for (b, (axis, list)) in values.iter().enumerate() {
        p.set(*axis, list[idx[b]].clone());
    }
    p
}

#[allow(clippy::needless_range_loop)] // axes × values are indexed together
#[allow(clippy::too_many_arguments)]
/// Plans the next round's points for one group, added to `out` (new points deduplicated
/// against `seen`; repeats of points already run planned with their new sample count).
/// `max_points` bounds the new samples per model, `base` is the samples of an ordinary point
/// (`--repeats`).
fn plan_group(
    group: &Group,
    values: &Values,
    st: &State,
    rng: &mut ChaCha8Rng,
    seen: &mut HashSet<VariantAxes>,
    max_points: usize,
    base: u32,
    out: &mut Vec<PlannedPoint>,
) -> usize {
    let target = REPEAT_SAMPLES.max(base);
    // A point gets `target` samples where a majority could change a decision: once the
    // canonical is flaky, and for a flaky value whose clean variants fail in at least half
    // (a cause is claimed on majorities, never on single samples of a flaky value). A flaky
    // value leaning the other way gets `base`: a single failing sample only makes it harder
    // to clear, and one new variant teaches more than two more samples of an old one.
    let samples_of = |fixed: &[(usize, usize)]| -> u32 {
        let leans_to_cause = |a: usize, i: usize| {
            let [n, k, _, _] = st.counts[a][i];
            st.flaky[a][i] && 2 * k >= n
        };
        if st.canonical_flaky || fixed.iter().any(|&(a, i)| leans_to_cause(a, i)) {
            target
        } else {
            base
        }
    };
    // Points of this round already planned: a repeat is planned once.
    let mut repeated: HashSet<VariantAxes> = HashSet::new();
    let decisive = decisive_count(values);
    // Per value: how many more clean points it wants this round.
    let mut need: Vec<Vec<u64>> = values
        .iter()
        .enumerate()
        .map(|(a, (_, list))| {
            (0..list.len())
                .map(|i| {
                    if i == 0 || st.decision[a][i] != Decision::Undecided {
                        0
                    } else {
                        let n = st.counts[a][i][0];
                        if n < decisive {
                            decisive.saturating_sub(n).clamp(2, 6)
                        } else {
                            // Past the decisive count and still undecided (a pass rate near
                            // the middle, or a flaky value): grow the evidence by a quarter a
                            // round, so the rounds do not run out a point or two at a time.
                            (n / 4).clamp(2, 24)
                        }
                    }
                })
                .collect()
        })
        .collect();
    let mut made = 0;
    // Witnesses first: each cause with nothing else changed, each interaction's pair alone and
    // each of its values alone (the variants 1-minimality is shown on; cheap and decisive).
    let mut witnesses: Vec<Vec<(usize, usize)>> = Vec::new();
    for (a, row) in st.decision.iter().enumerate() {
        for (i, d) in row.iter().enumerate().skip(1) {
            if *d == Decision::Cause {
                witnesses.push(vec![(a, i)]);
            }
        }
    }
    for p in st
        .pairs
        .iter()
        .filter(|p| p.decision == PairDecision::Interaction)
    {
        witnesses.push(vec![p.a, p.b]);
        witnesses.push(vec![p.a]);
        witnesses.push(vec![p.b]);
    }
    for w in witnesses {
        if made >= max_points {
            return made;
        }
        let mut p = VariantAxes::default();
        for &(a, i) in &w {
            p.set(values[a].0, values[a].1[i].clone());
        }
        let samples = samples_of(&w);
        if made + samples as usize > max_points {
            return made;
        }
        if seen.insert(p.clone()) {
            out.push(PlannedPoint { axes: p, samples });
            made += samples as usize;
        }
    }
    // Flakiness probes: the canonical, and a failing clean variant of every value still
    // undecided past the decisive count with at most half of its clean variants failing (what
    // a value failing at random in fewer than half of the calls looks like), get `target`
    // samples once; another when that variant's majority turned to pass. A prompt
    // that fails for a fixed reason fails again; a flaky one does not (see `flaky_values`).
    let mut probes: Vec<&Obs> = Vec::new();
    if let Some(c) = group.obs.iter().find(|o| o.is_canonical()) {
        probes.push(c);
    }
    for (a, row) in st.decision.iter().enumerate() {
        for (i, d) in row.iter().enumerate().skip(1) {
            let [n, k, _, _] = st.counts[a][i];
            if *d != Decision::Undecided || st.flaky[a][i] || n < decisive || k < 2 || 2 * k > n {
                continue;
            }
            let candidates = group
                .obs
                .iter()
                .filter(|o| o.idx[a] == i && o.failing() && clean_for(st, o, a, values.len()));
            let probed = candidates
                .clone()
                .filter(|o| o.samples() >= target as u64)
                .count();
            probes.extend(
                candidates
                    .filter(|o| o.samples() < target as u64)
                    .take(PROBE_VARIANTS.saturating_sub(probed)),
            );
        }
    }
    for o in probes {
        if made >= max_points {
            return made;
        }
        let have = o.samples();
        let p = axes_of(values, &o.idx);
        if have == 0 || have >= target as u64 || !repeated.insert(p.clone()) {
            continue;
        }
        if made + (target as u64 - have) as usize > max_points {
            return made;
        }
        out.push(PlannedPoint {
            axes: p,
            samples: target,
        });
        made += (target as u64 - have) as usize;
    }
    // Open pairs: points with both values on clean backgrounds.
    let pair_decisive = (ALPHA / possible_pairs(&sizes(values)).max(1) as f64)
        .log2()
        .abs()
        .ceil() as u64;
    for p in st.pairs.iter().filter(|p| p.decision == PairDecision::Open) {
        let want = if p.cases < 3 {
            3 - p.cases
        } else {
            pair_decisive.saturating_sub(p.cases).clamp(2, 6)
        };
        for _ in 0..want {
            if made >= max_points {
                return made;
            }
            let samples = samples_of(&[p.a, p.b]);
            if made + samples as usize > max_points {
                return made;
            }
            match place(values, st, &[p.a, p.b], &need, rng, seen) {
                Some((_, pt)) => {
                    out.push(PlannedPoint { axes: pt, samples });
                    made += samples as usize;
                }
                None => break,
            }
        }
    }
    // Every value decided, or still undecided only past the decisive count (hovering near the
    // middle, often a flaky value) or shown flaky: the pairs go first, and need not wait for
    // those.
    let settled = st.decision.iter().enumerate().all(|(a, row)| {
        row.iter().enumerate().skip(1).all(|(i, d)| {
            *d != Decision::Undecided || st.counts[a][i][0] >= decisive || st.flaky[a][i]
        })
    });
    if settled && made < max_points {
        let mut pts = Vec::new();
        cover_clean_pairs(
            group,
            values,
            st,
            rng,
            seen,
            (max_points - made) / base.max(1) as usize,
            &mut pts,
        );
        made += pts.len() * base as usize;
        out.extend(pts.into_iter().map(|axes| PlannedPoint {
            axes,
            samples: base,
        }));
    }
    // Parked values get points only once nothing else is asked this round: no open pair, no
    // pair coverage, no other value wanting evidence.
    let others_pending = st.pairs.iter().any(|p| p.decision == PairDecision::Open)
        || made > 0
        || need.iter().enumerate().any(|(a, row)| {
            row.iter()
                .enumerate()
                .any(|(i, &n)| n > 0 && !parked(st, a, i, decisive))
        });
    loop {
        if made >= max_points {
            return made;
        }
        // The value wanting most, suspects first (they decide what is clean for the others),
        // values hovering past the decisive count and flaky values (their repeats are dear,
        // and no other value's evidence waits on them) later, parked values last of all.
        // (not parked, short of the decisive count and not flaky, suspect, need).
        type Priority = (bool, bool, bool, u64);
        let mut best: Option<(usize, usize, Priority)> = None;
        for (a, row) in need.iter().enumerate() {
            for (i, &n) in row.iter().enumerate() {
                let park = parked(st, a, i, decisive);
                if park && others_pending {
                    continue;
                }
                let key = (
                    !park,
                    st.counts[a][i][0] < decisive && !st.flaky[a][i],
                    st.suspect[a][i],
                    n,
                );
                if n > 0 && best.is_none_or(|(_, _, k)| key > k) {
                    best = Some((a, i, key));
                }
            }
        }
        let Some((a, i, _)) = best else {
            break;
        };
        let samples = samples_of(&[(a, i)]);
        if made + samples as usize > max_points {
            return made;
        }
        // A flaky value's clean variants run once are repeated before new ones are made: two
        // calls each settle a variant by its majority, where a new point costs three.
        if samples > base {
            let topup = group.obs.iter().find(|o| {
                o.idx[a] == i
                    && (1..samples as u64).contains(&o.samples())
                    && clean_for(st, o, a, values.len())
                    && !repeated.contains(&axes_of(values, &o.idx))
            });
            if let Some(o) = topup {
                repeated.insert(axes_of(values, &o.idx));
                out.push(PlannedPoint {
                    axes: axes_of(values, &o.idx),
                    samples,
                });
                made += (samples as u64 - o.samples()) as usize;
                need[a][i] -= 1;
                continue;
            }
        }
        match place(values, st, &[(a, i)], &need, rng, seen) {
            Some((idx, p)) => {
                for b in 0..values.len() {
                    let j = idx[b];
                    if (b == a || !st.suspect[b][j]) && need[b][j] > 0 {
                        need[b][j] -= 1;
                    }
                }
                out.push(PlannedPoint { axes: p, samples });
                made += samples as usize;
            }
            // No new point left for this value.
            None => need[a][i] = 0,
        }
    }
    made
}

/// Once every value is decided: points covering each pair of cleared values (of two axes) not
/// yet seen together in a clean variant, so an interaction of two values that are harmless
/// alone gets its chance to show. Greedy: each point fixes one uncovered pair and picks the
/// other axes' cleared values that cover most further uncovered pairs.
fn cover_clean_pairs(
    group: &Group,
    values: &Values,
    st: &State,
    rng: &mut ChaCha8Rng,
    seen: &mut HashSet<VariantAxes>,
    max_points: usize,
    out: &mut Vec<VariantAxes>,
) {
    let n = values.len();
    let usable = |a: usize, i: usize| i == 0 || st.decision[a][i] == Decision::Cleared;
    let mut covered: HashSet<ValuePair> = HashSet::new();
    let mark = |idx: &[usize; AXES], covered: &mut HashSet<ValuePair>| {
        for a in 0..n {
            for b in a + 1..n {
                covered.insert(((a, idx[a]), (b, idx[b])));
            }
        }
    };
    for o in &group.obs {
        if (0..n).all(|a| usable(a, o.idx[a])) {
            mark(&o.idx, &mut covered);
        }
    }
    let mut uncovered: Vec<ValuePair> = Vec::new();
    for a in 0..n {
        for b in a + 1..n {
            for i in 1..values[a].1.len() {
                for j in 1..values[b].1.len() {
                    let p = ((a, i), (b, j));
                    if usable(a, i) && usable(b, j) && !covered.contains(&p) {
                        uncovered.push(p);
                    }
                }
            }
        }
    }
    uncovered.shuffle(rng);
    let mut made = 0;
    for &(pa, pb) in &uncovered {
        if made >= max_points {
            return;
        }
        if covered.contains(&(pa, pb)) {
            continue;
        }
        let mut idx = [0usize; AXES];
        idx[pa.0] = pa.1;
        idx[pb.0] = pb.1;
        for c in (0..n).filter(|&c| c != pa.0 && c != pb.0) {
            let gain = |v: usize| {
                (0..n)
                    .filter(|&d| d != c && (d == pa.0 || d == pb.0 || d < c))
                    .filter(|&d| {
                        let key = if d < c {
                            ((d, idx[d]), (c, v))
                        } else {
                            ((c, v), (d, idx[d]))
                        };
                        !covered.contains(&key)
                    })
                    .count()
            };
            let options: Vec<usize> = (1..values[c].1.len())
                .filter(|&v| usable(c, v) && !often_failing(st, c, v))
                .collect();
            idx[c] = options
                .iter()
                .copied()
                .max_by_key(|&v| (gain(v), rng.random_range(0..1024u32)))
                .unwrap_or(0);
        }
        let mut p = VariantAxes::default();
        for (b, (axis, list)) in values.iter().enumerate() {
            p.set(*axis, list[idx[b]].clone());
        }
        mark(&idx, &mut covered);
        if seen.insert(p.clone()) {
            out.push(p);
            made += 1;
        }
    }
}

/// Clean variants that would decide a value if all of them agreed: `⌈log2(m / α)⌉`.
fn decisive_count(values: &Values) -> u64 {
    let judged: usize = values.iter().map(|(_, v)| v.len().saturating_sub(1)).sum();
    (ALPHA / judged.max(1) as f64).log2().abs().ceil() as u64
}

/// An undecided value past the decisive count whose clean variants fail often (a quarter or
/// more: slow to clear, a flaky value's look) yet clearly less than half of the time
/// (`P(X ≤ k | n, ½) ≤` [`FUTILITY`]): more evidence would most likely clear it, never make
/// it a cause, so the rounds spend on it only what nothing else asks for. It stays undecided
/// until the Bonferroni test decides it; parking never claims anything.
fn parked(st: &State, a: usize, i: usize, decisive: u64) -> bool {
    let [n, k, _, _] = st.counts[a][i];
    st.decision[a][i] == Decision::Undecided
        && n >= decisive
        && 4 * k >= n
        && binom_upper_half(n, n - k) <= FUTILITY
}

/// The number of values per axis.
fn sizes(values: &Values) -> Vec<usize> {
    values.iter().map(|(_, v)| v.len()).collect()
}

/// Shown flaky (its samples disagree), or cleared yet a quarter or more of its clean variants
/// failed, as a flaky value not yet repeated looks. Never a background or filler for the
/// others' evidence, where its chance failures would be blamed on them; it is still judged,
/// and still paired, itself.
fn often_failing(st: &State, a: usize, i: usize) -> bool {
    let c = st.counts[a][i];
    (c[0] > 0 && 4 * c[1] >= c[0]) || st.flaky[a][i]
}

/// A background value for axis `a`: mostly a value that still wants evidence (never a
/// suspect), else a cleared value, else `original`.
fn background(
    a: usize,
    values: &Values,
    st: &State,
    need: &[Vec<u64>],
    rng: &mut ChaCha8Rng,
) -> usize {
    let list = &values[a].1;
    let wanted: Vec<usize> = (1..list.len())
        .filter(|&i| need[a][i] > 0 && !st.suspect[a][i] && !st.flaky[a][i])
        .collect();
    if !wanted.is_empty() && rng.random_bool(0.8) {
        return *wanted.choose(rng).expect("non-empty");
    }
    let cleared: Vec<usize> = (1..list.len())
        .filter(|&i| st.decision[a][i] == Decision::Cleared && !often_failing(st, a, i))
        .collect();
    if !cleared.is_empty() && rng.random_bool(0.7) {
        return *cleared.choose(rng).expect("non-empty");
    }
    0
}

#[allow(clippy::needless_range_loop)] // axes × values are indexed together
/// A point not yet run with the `fixed` values and background values elsewhere; marked seen.
fn place(
    values: &Values,
    st: &State,
    fixed: &[(usize, usize)],
    need: &[Vec<u64>],
    rng: &mut ChaCha8Rng,
    seen: &mut HashSet<VariantAxes>,
) -> Option<([usize; AXES], VariantAxes)> {
    for _ in 0..40 {
        let mut idx = [0usize; AXES];
        for b in 0..values.len() {
            idx[b] = match fixed.iter().find(|(a, _)| *a == b) {
                Some(&(_, i)) => i,
                None => background(b, values, st, need, rng),
            };
        }
        let mut p = VariantAxes::default();
        for (b, (axis, list)) in values.iter().enumerate() {
            p.set(*axis, list[idx[b]].clone());
        }
        if seen.insert(p.clone()) {
            return Some((idx, p));
        }
    }
    None
}

/// Runs an adaptive sweep: round 0 with the options as given (strategy `adaptive` plans the
/// covering array), then follow-up rounds. `budget` caps the run's cases; `None` means
/// [`DEFAULT_BUDGET_FRACTION`] of the full product.
pub fn run(
    config: &Config,
    store_path: &str,
    probes: Vec<LoadedProbe>,
    lib: AxisLibrary,
    opts: SweepOptions,
    show_progress: bool,
) -> Result<(sweep::SweepOutcome, AdaptiveReport)> {
    let mut values: HashMap<String, Values> = HashMap::new();
    let mut full: u64 = 0;
    for lp in &probes {
        let v = axis_values(&lp.probe, &lib, &opts.axes)?;
        full += v.iter().map(|(_, l)| l.len() as u64).product::<u64>();
        values.insert(lp.probe.id.clone(), v);
    }
    let per_point = opts.models.len() as u64 * opts.repeats as u64;
    let full_cases = full * per_point;
    // The default: a fraction of the full product, but never less than three covering arrays
    // (a small probe's covering array alone can exceed 4 % of its product), nor more than
    // the full product.
    let round0: u64 = sweep::plan_counts(&probes, &lib, &opts)?
        .iter()
        .map(|(_, n)| n * per_point)
        .sum();
    let budget = opts.budget_requests.unwrap_or_else(|| {
        (((full_cases as f64) * DEFAULT_BUDGET_FRACTION).ceil() as u64)
            .max(3 * round0)
            .min(full_cases)
    });
    // The budget counts cases and the planner sizes every round to fit it, so no round's sweep
    // is cut by a request cap: a cap reached mid-round would keep whichever cases finished
    // first (an episode makes several requests per case), and two runs with one seed would
    // differ. A budget the user gave still caps the covering array's requests.
    let mut outcome = sweep::run(
        config,
        store_path,
        probes.clone(),
        lib.clone(),
        opts.clone(),
        show_progress,
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0xada9_71fe);
    let mut rounds = 0;
    let ended;
    loop {
        let store = Store::open_url(store_path)?;
        let (groups, cases, mut seen) = gather(&store, &outcome.run.id, &values)?;
        drop(store);
        let states: Vec<State> = groups
            .iter()
            .map(|g| decide(g, &values[&g.probe]))
            .collect();
        // The report of this run as it stands, whichever way the rounds end.
        let report = |ended: String| {
            let mut r = finish(
                &groups,
                &states,
                &values,
                &lib.ordered,
                rounds,
                cases,
                budget,
                full_cases,
                ended,
            );
            r.run = outcome.run.id.clone();
            r
        };
        if outcome.stopped.is_some() || !outcome.halted.is_empty() {
            ended = format!(
                "the sweep stopped: {}",
                outcome
                    .stopped
                    .clone()
                    .unwrap_or_else(|| "a model was halted".into())
            );
            let r = report(ended);
            return Ok((outcome, r));
        }
        let undecided = states.iter().any(|s| {
            s.decision
                .iter()
                .any(|row| row.iter().skip(1).any(|d| *d == Decision::Undecided))
                || s.pairs.iter().any(|p| p.decision == PairDecision::Open)
        });
        // Samples per model left: a point's samples run on every model.
        let remaining = budget.saturating_sub(cases) / (opts.models.len() as u64).max(1);
        if remaining == 0 {
            ended = if undecided {
                "budget spent".into()
            } else {
                "every value decided; budget spent".into()
            };
        } else if rounds >= MAX_ROUNDS {
            ended = format!("{MAX_ROUNDS} follow-up rounds made");
        } else {
            let mut plan = PointPlan::new();
            let left = remaining as usize;
            // A round is small enough for the evidence to steer the next one.
            let cap = (left / 2).max(8).min(left);
            let mut taken = 0;
            for (g, s) in groups.iter().zip(&states) {
                if taken >= cap {
                    break;
                }
                let vals = &values[&g.probe];
                let pts = plan.entry(g.probe.clone()).or_default();
                taken += plan_group(
                    g,
                    vals,
                    s,
                    &mut rng,
                    seen.entry(g.probe.clone()).or_default(),
                    cap - taken,
                    opts.repeats,
                    pts,
                );
            }
            // Two models of one probe may ask for the same repeat: each point once, with the
            // most samples asked (the sweep runs a point's samples once, for every model).
            for pts in plan.values_mut() {
                let mut at: HashMap<VariantAxes, usize> = HashMap::new();
                let mut merged: Vec<PlannedPoint> = Vec::with_capacity(pts.len());
                for p in pts.drain(..) {
                    match at.get(&p.axes) {
                        Some(&k) => merged[k].samples = merged[k].samples.max(p.samples),
                        None => {
                            at.insert(p.axes.clone(), merged.len());
                            merged.push(p);
                        }
                    }
                }
                *pts = merged;
            }
            if taken == 0 {
                ended = if undecided && remaining < REPEAT_SAMPLES.max(opts.repeats) as u64 {
                    "budget spent".into()
                } else if undecided {
                    "no new variant left to ask".into()
                } else {
                    "every value decided".into()
                };
            } else {
                rounds += 1;
                if show_progress {
                    let open: usize = states
                        .iter()
                        .map(|s| {
                            s.decision
                                .iter()
                                .flat_map(|row| row.iter().skip(1))
                                .filter(|d| **d == Decision::Undecided)
                                .count()
                        })
                        .sum();
                    eprintln!(
                        "adaptive round {rounds}: {taken} new sample(s) per model; {open} value(s) undecided, {cases} of {budget} cases spent"
                    );
                }
                let mut o = opts.clone();
                o.resume = true;
                o.replan = false;
                o.points = Some(Arc::new(plan));
                o.budget_requests = None;
                outcome = sweep::run(
                    config,
                    store_path,
                    probes.clone(),
                    lib.clone(),
                    o,
                    show_progress,
                )?;
                continue;
            }
        }
        let r = report(ended);
        record_planned(store_path, &r.run, cases)?;
        return Ok((outcome, r));
    }
}

/// Records the run's planned count as the cases the rounds asked for (each round's sweep
/// planned only its own points), so the run reads as complete with what it holds.
fn record_planned(store_path: &str, run: &str, cases: u64) -> Result<()> {
    let store = Store::open_url(store_path)?;
    let _lock = store.acquire_lock(&format!("sweep {run}"))?;
    let Some(mut info) = store.run(run)? else {
        return Ok(());
    };
    if info.planned == cases {
        return Ok(());
    }
    info.planned = cases;
    store.begin_run(&info)?;
    store.finish_run(
        &info.id,
        info.status,
        info.finished_at.as_deref().unwrap_or(""),
        info.note.as_deref(),
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    groups: &[Group],
    states: &[State],
    values: &HashMap<String, Values>,
    ordered: &[AxisName],
    rounds: usize,
    cases: u64,
    budget: u64,
    full_product: u64,
    ended: String,
) -> AdaptiveReport {
    let mut out: BTreeMap<(String, String), GroupDecisions> = BTreeMap::new();
    for (g, s) in groups.iter().zip(states) {
        out.insert(
            (g.probe.clone(), g.model.clone()),
            report_group(g, &values[&g.probe], s, ordered),
        );
    }
    AdaptiveReport {
        run: String::new(),
        rounds,
        cases,
        budget,
        full_product,
        ended,
        groups: out.into_values().collect(),
    }
}

/// The report as text: per probe × model, the causes, then every value's decision and the
/// cases it rests on.
pub fn render_text(r: &AdaptiveReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "adaptive: run {}, {} cases of a {}-case full product ({:.1} %), budget {}, {} follow-up round(s); {}",
        r.run,
        r.cases,
        r.full_product,
        100.0 * r.cases as f64 / r.full_product.max(1) as f64,
        r.budget,
        r.rounds,
        r.ended
    );
    for g in &r.groups {
        let _ = writeln!(s, "\n{} × {}", g.probe, g.model);
        if g.canonical != "pass" {
            let _ = writeln!(
                s,
                "  the canonical variant: {} (causes below are measured against it)",
                g.canonical
            );
        }
        if g.canonical_flaky {
            let _ = writeln!(
                s,
                "  the canonical variant's samples disagree: every follow-up variant runs {REPEAT_SAMPLES} times and counts by its majority"
            );
        }
        if g.causes.is_empty() {
            let _ = writeln!(s, "  causes: none shown");
        } else {
            let _ = writeln!(s, "  causes: {}", g.causes.join("; "));
        }
        for m in &g.minimal {
            let what = match m.one_minimal {
                Minimality::Shown => "1-minimal (every reverted variant passed)",
                Minimality::NotYetShown => "1-minimality not yet shown",
                Minimality::NoFailingWitness => {
                    "no variant with only these values changed failed yet"
                }
            };
            if m.axes.is_empty() {
                let _ = writeln!(s, "  {}: {what}", m.cause);
            } else {
                let _ = writeln!(
                    s,
                    "  {}: fails with only {} changed, {what}",
                    m.cause,
                    m.axes.join(", ")
                );
            }
        }
        let undecided = g
            .values
            .iter()
            .filter(|v| v.decision == Decision::Undecided)
            .count();
        let cleared = g
            .values
            .iter()
            .filter(|v| v.decision == Decision::Cleared)
            .count();
        let flaky = g.values.iter().filter(|v| v.flaky).count();
        let _ = writeln!(
            s,
            "  {} value(s) cleared, {undecided} undecided; {flaky} flaky (each variant counted by its majority), {} repeat(s) run",
            cleared, g.repeats
        );
        let mut t = crate::term::table(&[
            "axis",
            "value",
            "decision",
            "clean variants failed/run",
            "all failed/cases",
            "repeats",
        ]);
        for v in &g.values {
            t.add_row(vec![
                v.axis.as_str().to_string(),
                v.value.clone(),
                v.decision.as_str().to_string(),
                format!("{}/{}", v.clean_failed, v.clean_variants),
                format!("{}/{}", v.failed, v.cases),
                if v.flaky {
                    format!("{} (flaky: by majority)", v.repeats)
                } else {
                    v.repeats.to_string()
                },
            ]);
        }
        let _ = writeln!(s, "{t}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail() {
        assert!((binom_upper_half(10, 10) - 1.0 / 1024.0).abs() < 1e-12);
        assert!((binom_upper_half(4, 0) - 1.0).abs() < 1e-12);
        assert!((binom_upper_half(2, 1) - 0.75).abs() < 1e-12);
    }

    /// A full product of 11 personas × 3 formats, failing exactly on format `x`.
    #[test]
    fn decide_calls_the_failing_value_a_cause_and_clears_the_other() {
        let personas: Vec<String> = std::iter::once(ORIGINAL.to_string())
            .chain((1..=10).map(|i| format!("p{i}")))
            .collect();
        let values: Values = vec![
            (AxisName::Persona, personas),
            (AxisName::Phrasing, vec![ORIGINAL.into()]),
            (AxisName::Length, vec![ORIGINAL.into()]),
            (
                AxisName::Format,
                vec![ORIGINAL.into(), "x".into(), "y".into()],
            ),
        ];
        let mut obs = Vec::new();
        for p in 0..11 {
            for f in 0..3 {
                let fail = (f == 1) as u64;
                obs.push(Obs {
                    idx: [p, 0, 0, f, 0],
                    pass: 1 - fail,
                    fail,
                });
            }
        }
        let g = Group {
            model: "m".into(),
            probe: "p".into(),
            obs,
        };
        let st = decide(&g, &values);
        assert_eq!(st.decision[3][1], Decision::Cause);
        assert_eq!(st.counts[3][1][..2], [11, 11]);
        assert_eq!(st.decision[3][2], Decision::Cleared);
        // A persona's clean variants exclude format x: two each, not enough either way.
        assert_eq!(st.decision[0][1], Decision::Undecided, "{:?}", st.counts[0]);
        assert_eq!(st.counts[0][1][..2], [2, 0]);
        assert!(st.pairs.is_empty());
        let r = report_group(&g, &values, &st, &[AxisName::Length]);
        assert_eq!(r.causes, vec!["format=x"]);
        assert_eq!(r.canonical, "pass");
        assert_eq!(r.minimal[0].one_minimal, Minimality::Shown);
    }

    /// Personas `p1`–`p3` × formats `x`, `y`: `p1`'s variants run three times and their
    /// samples disagree (with format `x` and `y` beside it); `p2 × x` fails three times out of
    /// three.
    fn flaky_group() -> (Group, Values) {
        let values: Values = vec![
            (
                AxisName::Persona,
                vec![ORIGINAL.into(), "p1".into(), "p2".into(), "p3".into()],
            ),
            (AxisName::Phrasing, vec![ORIGINAL.into()]),
            (AxisName::Length, vec![ORIGINAL.into()]),
            (
                AxisName::Format,
                vec![ORIGINAL.into(), "x".into(), "y".into()],
            ),
        ];
        let obs = vec![
            Obs {
                idx: [0, 0, 0, 0, 0],
                pass: 3,
                fail: 0,
            },
            Obs {
                idx: [1, 0, 0, 0, 0],
                pass: 2,
                fail: 1,
            },
            Obs {
                idx: [1, 0, 0, 1, 0],
                pass: 1,
                fail: 2,
            },
            Obs {
                idx: [1, 0, 0, 2, 0],
                pass: 2,
                fail: 1,
            },
            Obs {
                idx: [2, 0, 0, 1, 0],
                pass: 0,
                fail: 3,
            },
            Obs {
                idx: [3, 0, 0, 2, 0],
                pass: 1,
                fail: 0,
            },
        ];
        let g = Group {
            model: "m".into(),
            probe: "p".into(),
            obs,
        };
        (g, values)
    }

    #[test]
    fn disagreeing_samples_are_blamed_on_the_flakiest_value() {
        let (g, values) = flaky_group();
        let flaky = flaky_values(&g, &sizes(&values));
        // p1 is on three disagreeing variants; x and y on one each, always beside p1.
        assert!(flaky[0][1]);
        assert!(!flaky[3][1] && !flaky[3][2]);
        // Samples that agree (p2 × x failing three times) are a fixed failure, not flakiness.
        assert!(!flaky[0][2]);
        let st = decide(&g, &values);
        assert!(!st.canonical_flaky);
        // Each variant counts once, by its majority: both p1 variants clean for it (format x
        // fails in most of its variants, a suspect) pass by majority, though each failed once.
        assert_eq!(st.counts[0][1][..2], [2, 0]);
        let r = report_group(&g, &values, &st, &[]);
        let p1 = r.values.iter().find(|v| v.value == "p1").unwrap();
        assert!(p1.flaky);
        assert_eq!(p1.repeats, 6);
        assert_eq!((p1.cases, p1.failed), (9, 4));
        assert_eq!(r.repeats, 2 + 6 + 2);
    }

    #[test]
    fn a_flaky_canonical_makes_every_value_flaky_and_counts_it_by_majority() {
        let (mut g, values) = flaky_group();
        g.obs[0] = Obs {
            idx: [0; AXES],
            pass: 2,
            fail: 1,
        };
        let st = decide(&g, &values);
        assert!(st.canonical_flaky);
        let r = report_group(&g, &values, &st, &[]);
        assert!(r.canonical_flaky);
        assert_eq!(r.canonical, "pass");
        assert!(r.values.iter().all(|v| v.flaky));
    }

    /// Plans a round for `g` and returns the points and their cost in new samples, checked
    /// against the samples each point already has.
    fn plan_once(g: &Group, values: &Values) -> (State, Vec<PlannedPoint>) {
        let st = decide(g, values);
        let mut seen: HashSet<VariantAxes> =
            g.obs.iter().map(|o| axes_of(values, &o.idx)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut out = Vec::new();
        let made = plan_group(g, values, &st, &mut rng, &mut seen, 40, 1, &mut out);
        // The cost counts only the samples not yet run.
        let cost: usize = out
            .iter()
            .map(|p| {
                let have = g
                    .obs
                    .iter()
                    .find(|o| axes_of(values, &o.idx) == p.axes)
                    .map_or(0, |o| o.samples());
                (p.samples as u64 - have.min(p.samples as u64)) as usize
            })
            .sum();
        assert_eq!(made, cost);
        assert!(made <= 40);
        (st, out)
    }

    #[test]
    fn a_flaky_value_leaning_to_cause_gets_repeats_and_its_single_samples_are_topped_up_first() {
        // p1 is flaky and its clean variants fail by majority: a cause would be claimed on
        // majorities, so a round tops up its variants run once before making new ones, each
        // with three samples.
        let (mut g, values) = flaky_group();
        g.obs[1] = Obs {
            idx: [1, 0, 0, 0, 0],
            pass: 1,
            fail: 2,
        };
        g.obs[3] = Obs {
            idx: [1, 0, 0, 2, 0],
            pass: 0,
            fail: 1,
        };
        let (st, out) = plan_once(&g, &values);
        assert!(st.flaky[0][1]);
        let p1: Vec<&PlannedPoint> = out.iter().filter(|p| p.axes.persona == "p1").collect();
        assert!(!p1.is_empty(), "{out:?}");
        assert!(p1.iter().all(|p| p.samples == REPEAT_SAMPLES), "{out:?}");
        let topped = axes_of(&values, &[1, 0, 0, 2, 0]);
        assert!(p1.iter().any(|p| p.axes == topped), "{out:?}");
    }

    #[test]
    fn a_flaky_value_leaning_to_pass_gets_single_samples() {
        // p1 is flaky but its clean variants pass by majority: a single failing sample only
        // makes it harder to clear, so nothing is topped up and no point runs more than once.
        let (mut g, mut values) = flaky_group();
        g.obs[3] = Obs {
            idx: [1, 0, 0, 2, 0],
            pass: 1,
            fail: 0,
        };
        // A format nobody has met yet: the round has new points to make.
        values[3].1.push("z".into());
        let (st, out) = plan_once(&g, &values);
        assert!(st.flaky[0][1]);
        assert!(!out.is_empty());
        assert!(out.iter().all(|p| p.samples == 1), "{out:?}");
    }

    /// A value past the decisive count, failing in a third of its clean variants: parked
    /// while others want evidence, planned once nothing else is asked.
    #[test]
    fn a_value_clearly_below_half_is_parked_behind_the_others() {
        let personas: Vec<String> = std::iter::once(ORIGINAL.to_string())
            .chain((1..=5).map(|i| format!("p{i}")))
            .collect();
        let phrasings: Vec<String> = std::iter::once(ORIGINAL.to_string())
            .chain((1..=40).map(|i| format!("q{i}")))
            .collect();
        let values: Values = vec![
            (AxisName::Persona, personas),
            (AxisName::Phrasing, phrasings),
            (AxisName::Length, vec![ORIGINAL.into()]),
            (AxisName::Format, vec![ORIGINAL.into()]),
        ];
        // p1 on 39 phrasings, failing on 13 (a third); p2–p5 on the same, passing.
        let mut obs = vec![Obs {
            idx: [0; AXES],
            pass: 1,
            fail: 0,
        }];
        for q in 1..=39 {
            let fail = (q % 3 == 0) as u64;
            obs.push(Obs {
                idx: [1, q, 0, 0, 0],
                pass: 1 - fail,
                fail,
            });
        }
        for q in 1..=39 {
            for p in 2..=5 {
                obs.push(Obs {
                    idx: [p, q, 0, 0, 0],
                    pass: 1,
                    fail: 0,
                });
            }
        }
        let g = Group {
            model: "m".into(),
            probe: "p".into(),
            obs,
        };
        let decisive = decisive_count(&values);
        let st = decide(&g, &values);
        assert_eq!(st.decision[0][1], Decision::Undecided, "{:?}", st.counts[0]);
        assert!(parked(&st, 0, 1, decisive));
        assert!(!parked(&st, 0, 2, decisive));
        // q40 has no variant yet: the round makes points for it.
        let (_, out) = plan_once(&g, &values);
        assert!(!out.is_empty());
        // Its one point is the flakiness probe: a failing variant of it re-run, no new one.
        let run: HashSet<VariantAxes> = g.obs.iter().map(|o| axes_of(&values, &o.idx)).collect();
        assert!(
            out.iter()
                .filter(|p| p.axes.persona == "p1")
                .all(|p| run.contains(&p.axes)),
            "{out:?}"
        );
    }

    #[test]
    fn any_declared_axis_has_thresholds_by_value_order() {
        let vals: Vec<String> = ["original", "mild", "firm", "harsh"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        use Decision::*;
        let t = threshold(
            AxisName::Persona,
            &vals,
            &[Undecided, Cleared, Cause, Cause],
        )
        .expect("a step");
        assert_eq!(t.from, "firm");
        assert_eq!(t.values, vec!["firm", "harsh"]);
    }

    #[test]
    fn threshold_needs_a_clean_step() {
        let vals: Vec<String> = ["original", "2k-start", "2k-end", "8k-start", "8k-end"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        use Decision::*;
        let t = threshold(
            AxisName::Length,
            &vals,
            &[Undecided, Cleared, Cleared, Cause, Cause],
        )
        .expect("a step");
        assert_eq!(t.from, "8k");
        assert_eq!(t.values, vec!["8k-start", "8k-end"]);
        assert!(
            threshold(
                AxisName::Length,
                &vals,
                &[Undecided, Cleared, Cause, Cause, Cause]
            )
            .is_none()
        );
        assert!(
            threshold(
                AxisName::Length,
                &vals,
                &[Undecided, Cleared, Cleared, Cause, Undecided]
            )
            .is_none()
        );
    }
}
