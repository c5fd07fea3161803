//! The per-value decisions of one probe × model ([`decide`], see the module docs of
//! [`crate::adaptive`]): the clean-variant counts, suspects, the interaction test on pairs of
//! values, and the values shown flaky.

use super::evidence::{Group, Obs};
use super::statistics::binom_upper_half;
use super::{ALPHA, ValuePair, Values};
use serde::Serialize;
use std::collections::HashMap;

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

/// The state of the decisions of one group: per axis, per value index.
#[derive(Debug, Clone)]
pub(super) struct State {
    pub(super) decision: Vec<Vec<Decision>>,
    pub(super) suspect: Vec<Vec<bool>>,
    /// (clean variants, clean failing, cases, failed cases).
    pub(super) counts: Vec<Vec<[u64; 4]>>,
    /// Pairs of values seen failing together on a clean background, with their evidence.
    pub(super) pairs: Vec<Pair>,
    /// Per value: shown flaky (see [`crate::adaptive::ValueDecision::flaky`]).
    pub(super) flaky: Vec<Vec<bool>>,
    /// The canonical variant's samples disagree.
    pub(super) canonical_flaky: bool,
    /// The model fails often everywhere: with the strict suspect rule most values were
    /// suspects (see [`decide`]), so the lenient one decides this group.
    pub(super) noisy: bool,
}

/// What is known about a pair of values of two axes failing together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PairDecision {
    /// Shown: most otherwise-clean variants with both values fail.
    Interaction,
    /// Most of them pass: the failure it was suspected from was chance.
    Dismissed,
    /// Still being asked.
    Open,
}

/// A pair of values (axis index, value index) × 2, and its pair-clean evidence.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pair {
    pub(super) a: (usize, usize),
    pub(super) b: (usize, usize),
    /// Graded cases with both values and no suspect value besides.
    pub(super) cases: u64,
    pub(super) failed: u64,
    pub(super) decision: PairDecision,
}

/// The number of pairs of values of two different axes: the Bonferroni factor of the
/// interaction test (fixed by the probe, not by which pairs the data suggested).
pub(super) fn possible_pairs(sizes: &[usize]) -> usize {
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
///
/// The strict suspect rule (a cleared value failing a quarter of the time, an undecided one
/// failing 30 %, stays a suspect) keeps a flaky value's chance failures off its neighbours on a
/// model that rarely fails. On a model that fails a third of its prompts whatever the values,
/// it makes nearly every value a suspect, leaves no clean variant and decides nothing; when
/// it leaves half the values or more suspect, the group is decided with the lenient rule
/// (a suspect fails in at least half of its clean variants) and marked `noisy`.
pub(super) fn decide(group: &Group, values: &Values) -> State {
    let st = decide_with(group, values, true);
    let (suspects, judged) = st
        .suspect
        .iter()
        .flat_map(|row| row.iter().skip(1))
        .fold((0usize, 0usize), |(s, n), &x| (s + x as usize, n + 1));
    if 2 * suspects >= judged {
        let mut lenient = decide_with(group, values, false);
        lenient.noisy = true;
        lenient
    } else {
        st
    }
}

#[allow(clippy::needless_range_loop)] // axes × values are indexed together
fn decide_with(group: &Group, values: &Values, strict: bool) -> State {
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
        noisy: false,
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
                        Decision::Cleared => strict && 4 * k >= n,
                        Decision::Undecided if n > 0 && strict => 10 * k >= 3 * n,
                        Decision::Undecided if n > 0 => 2 * k >= n,
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
pub(super) fn flaky_values(group: &Group, sizes: &[usize]) -> Vec<Vec<bool>> {
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
pub(super) fn clean_for(st: &State, o: &Obs, a: usize, axes: usize) -> bool {
    !(0..axes).any(|b| b != a && o.idx[b] != 0 && st.suspect[b][o.idx[b]])
}
