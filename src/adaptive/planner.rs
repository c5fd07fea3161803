//! The round planner: from one probe × model's decisions, the next round's points — witnesses
//! of the causes, repeats where the model may be flaky, points for open pairs and undecided
//! values on clean backgrounds, the coverage of pairs of cleared values, parked values last.

use super::decision::{Decision, PairDecision, State, clean_for, possible_pairs};
use super::evidence::{Group, Obs};
use super::statistics::binom_upper_half;
use super::{ALPHA, AXES, FUTILITY, REPEAT_SAMPLES, ValuePair, Values};
use crate::render::VariantAxes;
use crate::sweep::PlannedPoint;
use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// Failing clean variants of an undecided value re-run with [`REPEAT_SAMPLES`] samples to
/// see whether the value's failures are flaky (the samples disagree) or fixed by the prompt.
const PROBE_VARIANTS: usize = 1;

/// The point of a variant's value indices.
pub(super) fn axes_of(values: &Values, idx: &[usize; AXES]) -> VariantAxes {
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
pub(super) fn plan_group(
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
pub(super) fn decisive_count(values: &Values) -> u64 {
    let judged: usize = values.iter().map(|(_, v)| v.len().saturating_sub(1)).sum();
    (ALPHA / judged.max(1) as f64).log2().abs().ceil() as u64
}

/// An undecided value past the decisive count whose clean variants fail often (a quarter or
/// more: slow to clear, a flaky value's look) yet clearly less than half of the time
/// (`P(X ≤ k | n, ½) ≤` [`FUTILITY`]): more evidence would most likely clear it, never make
/// it a cause, so the rounds spend on it only what nothing else asks for. It stays undecided
/// until the Bonferroni test decides it; parking never claims anything.
pub(super) fn parked(st: &State, a: usize, i: usize, decisive: u64) -> bool {
    let [n, k, _, _] = st.counts[a][i];
    !st.noisy
        && st.decision[a][i] == Decision::Undecided
        && n >= decisive
        && 4 * k >= n
        && binom_upper_half(n, n - k) <= FUTILITY
}

/// The number of values per axis.
pub(super) fn sizes(values: &Values) -> Vec<usize> {
    values.iter().map(|(_, v)| v.len()).collect()
}

/// Shown flaky (its samples disagree), or cleared yet a quarter or more of its clean variants
/// failed, as a flaky value not yet repeated looks. Never a background or filler for the
/// others' evidence, where its chance failures would be blamed on them; it is still judged,
/// and still paired, itself.
fn often_failing(st: &State, a: usize, i: usize) -> bool {
    let c = st.counts[a][i];
    (!st.noisy && c[0] > 0 && 4 * c[1] >= c[0]) || st.flaky[a][i]
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
