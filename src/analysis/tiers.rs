//! Measured tiers: how hard a variant actually is, from how many models (and samples) pass it.
//!
//! A probe declares its tier; a run over a panel of models *measures* one. The measure pools
//! every graded sample of every model: a variant's **pass fraction** is passed samples / graded
//! samples (pass + fail) over all models × samples of the run. Errors and ungraded samples are
//! outside it; a variant with no graded sample has no measured tier.
//!
//! # The rule (thresholds from `[tiers]` in `cliffprobe.toml`)
//! With pass fraction `p`, `easy` (default 0.98) and `medium` (default 0.5):
//! - `easy` when `p >= easy`;
//! - `medium` when `medium <= p < easy`;
//! - `hard` when `0 < p < medium`;
//! - `frontier` when `p = 0`: no model in the panel passed it, in any sample.
//!
//! A probe's measured tier applies the same rule to its pooled pass fraction (all samples of all
//! its variants); the distribution of its variants over the measured tiers is shown beside it.
//!
//! # Moved since the last run
//! A probe's measured tier is compared with its measured tier in the most recent earlier run of
//! the same store that has graded results for it. Probes whose tier changed are listed with the
//! direction (`easier`, `harder`) and a word for the notable cases (`solved`: it was frontier;
//! `now failing`: it was easy; `unsolved`: it became frontier). Variants are compared by id
//! (ids are content hashes, so only the variants present in both runs are compared).
//!
//! Memory: one small tally per variant (three counters), never a case.

use crate::config::Thresholds;
use crate::domain::Tier;
use crate::grade::CaseStatus;
use crate::store::CaseBrief;
use indexmap::IndexMap;
use serde::Serialize;

/// Samples of one variant over every model of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleTally {
    /// Passed samples.
    pub passed: u64,
    /// Passed + failed samples.
    pub graded: u64,
    /// Error and ungraded samples (outside the fraction).
    pub errors: u64,
}

impl SampleTally {
    fn push(&mut self, status: CaseStatus) {
        match status {
            CaseStatus::Pass => {
                self.passed += 1;
                self.graded += 1;
            }
            CaseStatus::Fail => self.graded += 1,
            CaseStatus::Error | CaseStatus::Ungraded => self.errors += 1,
        }
    }

    fn add(&mut self, o: &SampleTally) {
        self.passed += o.passed;
        self.graded += o.graded;
        self.errors += o.errors;
    }
}

/// One probe of one run: its variants' tallies.
#[derive(Debug, Clone, Default)]
pub struct ProbeSamples {
    /// Capability class.
    pub capability: String,
    /// Declared tier (of the version that ran).
    pub declared: Option<Tier>,
    /// Variant id → samples over every model.
    pub variants: VariantTallies,
}

/// Variant → samples over every model, as one vector sorted by variant key: half the memory
/// of a hash map (a report over a million cases holds one entry per variant, next to its
/// results), and filled without hashing, because both ways of folding a run meet a probe's
/// variants in id order (a brief walk goes by variant id; a report's results are sorted by
/// probe, then id) and a variant already seen is found by binary search.
#[derive(Debug, Clone, Default)]
pub struct VariantTallies {
    entries: Vec<(VariantKey, SampleTally)>,
    /// False once a new variant arrived out of key order; [`VariantTallies::normalize`]
    /// restores the invariant (sorted, one entry per key) before anything reads it.
    sorted: bool,
}

impl VariantTallies {
    /// The tally of `key`, added (empty) when new.
    fn tally_mut(&mut self, key: VariantKey) -> &mut SampleTally {
        let e = &mut self.entries;
        if e.is_empty() {
            self.sorted = true;
        }
        let at = match e.last() {
            Some((last, _)) if *last == key => e.len() - 1,
            Some((last, _)) if self.sorted && *last > key => {
                match e.binary_search_by(|(k, _)| k.cmp(&key)) {
                    Ok(i) => i,
                    Err(_) => {
                        self.sorted = false;
                        e.push((key, SampleTally::default()));
                        e.len() - 1
                    }
                }
            }
            _ => {
                e.push((key, SampleTally::default()));
                e.len() - 1
            }
        };
        &mut e[at].1
    }

    /// Sorts and merges entries of the same key if out-of-order arrivals left any, and gives
    /// back the spare capacity.
    fn normalize(&mut self) {
        if !self.sorted {
            self.entries.sort_by(|a, b| a.0.cmp(&b.0));
            self.entries.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    kept.1.add(&later.1);
                }
                same
            });
            self.sorted = true;
        }
        self.entries.shrink_to_fit();
    }

    /// The tally of `key`, if the variant ran.
    pub fn get(&self, key: &VariantKey) -> Option<&SampleTally> {
        self.entries
            .binary_search_by(|(k, _)| k.cmp(key))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// Every variant and its tally, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&VariantKey, &SampleTally)> {
        self.entries.iter().map(|(k, t)| (k, t))
    }

    /// Every tally, in key order.
    pub fn values(&self) -> impl Iterator<Item = &SampleTally> {
        self.entries.iter().map(|(_, t)| t)
    }

    /// Number of variants.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no variant ran.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(VariantKey, SampleTally)> for VariantTallies {
    /// Tallies of the same key are added up.
    fn from_iter<I: IntoIterator<Item = (VariantKey, SampleTally)>>(iter: I) -> Self {
        let mut t = VariantTallies {
            entries: iter.into_iter().collect(),
            sorted: false,
        };
        t.normalize();
        t
    }
}

/// A variant id as a map key, compact and exact: the ids cliffprobe writes (16 hex digits) are
/// kept as the number they spell, without an allocation; any other id as its text. A report
/// over a million cases holds one per variant.
///
/// Keys order hex ids by their number (which is their text's order) before any other id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VariantKey {
    /// A 16-hex-digit (lowercase) id.
    Hex(u64),
    /// Any other id.
    Text(Box<str>),
}

impl VariantKey {
    /// The key of variant id `id`.
    pub fn of(id: &str) -> VariantKey {
        // One pass over the bytes: a report keys a million variants.
        let hex = || -> Option<u64> {
            if id.len() != 16 {
                return None;
            }
            id.bytes().try_fold(0u64, |n, b| {
                let digit = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    _ => return None,
                };
                Some(n << 4 | u64::from(digit))
            })
        };
        match hex() {
            Some(n) => VariantKey::Hex(n),
            None => VariantKey::Text(id.into()),
        }
    }
}

impl ProbeSamples {
    /// Every sample of the probe, pooled.
    pub fn pooled(&self) -> SampleTally {
        let mut t = SampleTally::default();
        for v in self.variants.values() {
            t.add(v);
        }
        t
    }
}

/// Folds the cases of one run into per-variant tallies, probe by probe.
#[derive(Debug, Default)]
pub struct TierCollector {
    probes: IndexMap<String, ProbeSamples>,
}

impl TierCollector {
    /// An empty collector.
    pub fn new() -> TierCollector {
        TierCollector::default()
    }

    /// The tallies of probe `id`, created (with its class and declared tier) when new.
    fn probe(&mut self, id: &str, capability: &str, tier: Tier) -> &mut ProbeSamples {
        let i = match self.probes.get_index_of(id) {
            Some(i) => i,
            None => {
                let p = ProbeSamples {
                    capability: capability.to_string(),
                    declared: Some(tier),
                    variants: VariantTallies::default(),
                };
                self.probes.insert_full(id.to_string(), p).0
            }
        };
        &mut self.probes[i]
    }

    /// Adds one case.
    pub fn push(&mut self, row: &CaseBrief<'_>) {
        self.probe(row.probe_id, row.capability, row.tier)
            .variants
            .tally_mut(VariantKey::of(row.variant_id))
            .push(row.status);
    }

    /// Adds the samples of one variant of one model, as the report has already folded them
    /// (so a report measures tiers without reading the run a second time).
    pub fn push_variant(&mut self, v: &crate::analysis::VariantResult) {
        let t = self
            .probe(&v.probe_id, &v.capability, v.tier)
            .variants
            .tally_mut(VariantKey::of(&v.variant_id));
        let s = &v.samples;
        t.passed += u64::from(s.pass);
        t.graded += u64::from(s.pass) + u64::from(s.fail);
        t.errors += u64::from(s.error) + u64::from(s.ungraded);
    }

    /// The tallies, by probe id (sorted).
    pub fn finish(mut self) -> IndexMap<String, ProbeSamples> {
        for p in self.probes.values_mut() {
            p.variants.normalize();
        }
        self.probes.sort_keys();
        self.probes
    }
}

/// Variants per measured tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TierCounts {
    /// Easy variants.
    pub easy: u64,
    /// Medium variants.
    pub medium: u64,
    /// Hard variants.
    pub hard: u64,
    /// Frontier variants (no model passed).
    pub frontier: u64,
    /// Variants with no graded sample (only errors).
    pub unmeasured: u64,
}

impl TierCounts {
    fn add(&mut self, t: Option<Tier>) {
        match t {
            Some(Tier::Easy) => self.easy += 1,
            Some(Tier::Medium) => self.medium += 1,
            Some(Tier::Hard) => self.hard += 1,
            Some(Tier::Frontier) => self.frontier += 1,
            None => self.unmeasured += 1,
        }
    }

    /// The count of one tier.
    pub fn get(&self, t: Tier) -> u64 {
        match t {
            Tier::Easy => self.easy,
            Tier::Medium => self.medium,
            Tier::Hard => self.hard,
            Tier::Frontier => self.frontier,
        }
    }
}

/// Which way a measured tier moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Towards easy: more models (or samples) pass.
    Easier,
    /// Towards frontier: fewer pass.
    Harder,
}

/// How difficult a tier is: easy 0 … frontier 3.
fn rank(t: Tier) -> usize {
    Tier::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

/// The direction of a move, and its word: `solved` (from frontier), `now failing` (from easy),
/// `unsolved` (to frontier), else `easier` / `harder`. `None` when the tier did not change.
pub fn movement(from: Tier, to: Tier) -> Option<(Direction, &'static str)> {
    if from == to {
        return None;
    }
    let dir = if rank(to) < rank(from) {
        Direction::Easier
    } else {
        Direction::Harder
    };
    let word = match (from, to, dir) {
        (Tier::Frontier, _, _) => "solved",
        (Tier::Easy, _, _) => "now failing",
        (_, Tier::Frontier, _) => "unsolved",
        (_, _, Direction::Easier) => "easier",
        (_, _, Direction::Harder) => "harder",
    };
    Some((dir, word))
}

/// The comparison of a probe with its last earlier run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Previous {
    /// The earlier run.
    pub run: String,
    /// The probe's measured tier there.
    pub measured: Tier,
    /// Its pass fraction there.
    pub pass_fraction: f64,
    /// Variants measured in both runs.
    pub variants_compared: u64,
    /// Of which changed tier.
    pub variants_moved: u64,
    /// Of which got easier.
    pub variants_easier: u64,
    /// Of which got harder.
    pub variants_harder: u64,
}

/// One probe's declared and measured tiers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeTier {
    /// Probe id.
    pub probe: String,
    /// Capability class.
    pub capability: String,
    /// Declared tier.
    pub declared: Option<Tier>,
    /// Measured tier from the pooled pass fraction; `None` without graded samples.
    pub measured: Option<Tier>,
    /// Pooled pass fraction.
    pub pass_fraction: Option<f64>,
    /// Passed samples (all models).
    pub passed: u64,
    /// Graded samples (all models).
    pub graded: u64,
    /// Error and ungraded samples.
    pub errors: u64,
    /// Its variants over the measured tiers.
    pub variants: TierCounts,
    /// The last earlier run with graded results for the probe, when there is one.
    pub previous: Option<Previous>,
}

/// A probe whose measured tier changed since its last earlier run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moved {
    /// Probe id.
    pub probe: String,
    /// Measured tier in the earlier run.
    pub from: Tier,
    /// Measured tier now.
    pub to: Tier,
    /// Easier or harder.
    pub direction: Direction,
    /// `solved`, `now failing`, `unsolved`, `easier` or `harder`.
    pub what: &'static str,
    /// The earlier run.
    pub since_run: String,
    /// Variants compared / moved (see [`Previous`]).
    pub variants_compared: u64,
    /// Variants whose tier changed.
    pub variants_moved: u64,
}

impl Moved {
    /// The sentence reports print for it, with the probe id as given (sanitised or not by
    /// the caller): `id: medium → hard (harder) since run R; 3 of 9 shared variants changed tier`.
    pub fn sentence(&self, probe: &str) -> String {
        format!(
            "{probe}: {} → {} ({}) since run {}; {} of {} shared variants changed tier",
            self.from.as_str(),
            self.to.as_str(),
            self.what,
            self.since_run,
            self.variants_moved,
            self.variants_compared
        )
    }
}

/// Measured tiers of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasuredTiers {
    /// Run id.
    pub run: String,
    /// The thresholds used.
    pub thresholds: Thresholds,
    /// The rule, in one sentence.
    pub rule: String,
    /// Every variant of the run over the measured tiers.
    pub variants: TierCounts,
    /// Per probe, by id.
    pub probes: Vec<ProbeTier>,
    /// Probes whose measured tier changed since their last earlier run.
    pub moved: Vec<Moved>,
    /// Variants (over all probes) measured both now and in their probe's last earlier run.
    pub variants_compared: u64,
    /// Of which changed tier.
    pub variants_moved: u64,
}

fn fraction(t: &SampleTally) -> Option<f64> {
    (t.graded > 0).then(|| t.passed as f64 / t.graded as f64)
}

/// The rule as one sentence, with these thresholds.
pub fn rule_text(th: &Thresholds) -> String {
    format!(
        "pass fraction over all models × samples (errors excluded): easy ≥ {}, medium ≥ {}, hard > 0, frontier = no model passes",
        th.easy, th.medium
    )
}

/// Measures `current` (probe id → tallies of the run `run`) and compares each probe with
/// `previous` (probe id → the earlier run's id and tallies, for the probes that have one).
pub fn measure(
    run: &str,
    th: &Thresholds,
    current: &IndexMap<String, ProbeSamples>,
    previous: &std::collections::HashMap<String, (String, ProbeSamples)>,
) -> MeasuredTiers {
    let mut all = TierCounts::default();
    let mut probes = Vec::with_capacity(current.len());
    let mut moved = Vec::new();
    let mut variants_moved = 0;
    let mut variants_compared = 0;
    for (id, p) in current {
        let pooled = p.pooled();
        let measured = th.tier(pooled.passed, pooled.graded);
        let mut counts = TierCounts::default();
        for v in p.variants.values() {
            counts.add(th.tier(v.passed, v.graded));
        }
        all.unmeasured += counts.unmeasured;
        for t in Tier::ALL {
            all.add_n(t, counts.get(t));
        }
        let prev = previous.get(id).and_then(|(run, q)| {
            let pq = q.pooled();
            let was = th.tier(pq.passed, pq.graded)?;
            let mut c = Previous {
                run: run.clone(),
                measured: was,
                pass_fraction: fraction(&pq).unwrap_or(0.0),
                variants_compared: 0,
                variants_moved: 0,
                variants_easier: 0,
                variants_harder: 0,
            };
            for (vid, v) in p.variants.iter() {
                let (Some(now), Some(then)) = (
                    th.tier(v.passed, v.graded),
                    q.variants
                        .get(vid)
                        .and_then(|w| th.tier(w.passed, w.graded)),
                ) else {
                    continue;
                };
                c.variants_compared += 1;
                match movement(then, now) {
                    Some((Direction::Easier, _)) => {
                        c.variants_moved += 1;
                        c.variants_easier += 1;
                    }
                    Some((Direction::Harder, _)) => {
                        c.variants_moved += 1;
                        c.variants_harder += 1;
                    }
                    None => {}
                }
            }
            Some(c)
        });
        if let Some(c) = &prev {
            variants_moved += c.variants_moved;
            variants_compared += c.variants_compared;
            if let Some(now) = measured
                && let Some((direction, what)) = movement(c.measured, now)
            {
                moved.push(Moved {
                    probe: id.clone(),
                    from: c.measured,
                    to: now,
                    direction,
                    what,
                    since_run: c.run.clone(),
                    variants_compared: c.variants_compared,
                    variants_moved: c.variants_moved,
                });
            }
        }
        probes.push(ProbeTier {
            probe: id.clone(),
            capability: p.capability.clone(),
            declared: p.declared,
            measured,
            pass_fraction: fraction(&pooled),
            passed: pooled.passed,
            graded: pooled.graded,
            errors: pooled.errors,
            variants: counts,
            previous: prev,
        });
    }
    MeasuredTiers {
        run: run.to_string(),
        thresholds: *th,
        rule: rule_text(th),
        variants: all,
        probes,
        moved,
        variants_compared,
        variants_moved,
    }
}

impl TierCounts {
    fn add_n(&mut self, t: Tier, n: u64) {
        match t {
            Tier::Easy => self.easy += n,
            Tier::Medium => self.medium += n,
            Tier::Hard => self.hard += n,
            Tier::Frontier => self.frontier += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_at_its_edges() {
        let th = Thresholds::default();
        assert_eq!(th.tier(0, 0), None);
        assert_eq!(th.tier(98, 100), Some(Tier::Easy));
        assert_eq!(th.tier(100, 100), Some(Tier::Easy));
        assert_eq!(th.tier(97, 100), Some(Tier::Medium));
        assert_eq!(th.tier(50, 100), Some(Tier::Medium));
        assert_eq!(th.tier(49, 100), Some(Tier::Hard));
        assert_eq!(th.tier(1, 100), Some(Tier::Hard));
        assert_eq!(th.tier(0, 100), Some(Tier::Frontier));
        let strict = Thresholds {
            easy: 1.0,
            medium: 0.9,
        };
        assert_eq!(strict.tier(99, 100), Some(Tier::Medium));
        assert_eq!(strict.tier(89, 100), Some(Tier::Hard));
    }

    #[test]
    fn movement_words() {
        assert_eq!(
            movement(Tier::Frontier, Tier::Hard),
            Some((Direction::Easier, "solved"))
        );
        assert_eq!(
            movement(Tier::Easy, Tier::Medium),
            Some((Direction::Harder, "now failing"))
        );
        assert_eq!(
            movement(Tier::Hard, Tier::Frontier),
            Some((Direction::Harder, "unsolved"))
        );
        assert_eq!(
            movement(Tier::Hard, Tier::Medium),
            Some((Direction::Easier, "easier"))
        );
        assert_eq!(
            movement(Tier::Medium, Tier::Hard),
            Some((Direction::Harder, "harder"))
        );
        assert_eq!(movement(Tier::Hard, Tier::Hard), None);
    }

    fn probe(variants: &[(&str, u64, u64, u64)]) -> ProbeSamples {
        ProbeSamples {
            capability: "c".into(),
            declared: Some(Tier::Hard),
            variants: variants
                .iter()
                .map(|(id, passed, graded, errors)| {
                    (
                        VariantKey::of(id),
                        SampleTally {
                            passed: *passed,
                            graded: *graded,
                            errors: *errors,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn measure_pools_samples_skips_errors_and_finds_moves() {
        let th = Thresholds::default();
        let mut current = IndexMap::new();
        // v1 solved by everyone, v2 by nobody, v3 only errors.
        current.insert(
            "p".to_string(),
            probe(&[("v1", 3, 3, 0), ("v2", 0, 3, 0), ("v3", 0, 0, 3)]),
        );
        let mut previous = std::collections::HashMap::new();
        previous.insert(
            "p".to_string(),
            ("r0".to_string(), probe(&[("v1", 0, 3, 0), ("v2", 0, 3, 0)])),
        );
        let m = measure("r1", &th, &current, &previous);
        let p = &m.probes[0];
        assert_eq!(p.pass_fraction, Some(0.5));
        assert_eq!(p.measured, Some(Tier::Medium));
        assert_eq!(p.errors, 3);
        assert_eq!(
            p.variants,
            TierCounts {
                easy: 1,
                medium: 0,
                hard: 0,
                frontier: 1,
                unmeasured: 1
            }
        );
        let prev = p.previous.as_ref().unwrap();
        assert_eq!(prev.measured, Tier::Frontier);
        assert_eq!((prev.variants_compared, prev.variants_moved), (2, 1));
        assert_eq!(prev.variants_easier, 1);
        assert_eq!(m.moved.len(), 1);
        assert_eq!(m.moved[0].what, "solved");
        assert_eq!(m.moved[0].direction, Direction::Easier);
        assert_eq!((m.variants_compared, m.variants_moved), (2, 1));
        assert_eq!(m.variants.unmeasured, 1);

        // Nothing earlier: no previous, nothing moved.
        let m = measure("r1", &th, &current, &std::collections::HashMap::new());
        assert!(m.moved.is_empty());
        assert!(m.probes[0].previous.is_none());
    }

    #[test]
    fn variant_keys_are_exact() {
        assert_eq!(
            VariantKey::of("0000469e07578040"),
            VariantKey::Hex(0x0000_469e_0757_8040)
        );
        assert_eq!(
            VariantKey::of("ffffffffffffffff"),
            VariantKey::Hex(u64::MAX)
        );
        // Not the 16 lowercase hex digits cliffprobe writes: kept as text, never confused.
        for id in [
            "0000469E07578040",
            "469e07578040",
            "0000469e07578040x",
            "+000469e07578040",
            "0000469e0757804g",
            "éééééééé",
        ] {
            assert_eq!(VariantKey::of(id), VariantKey::Text(id.into()), "{id}");
        }
        assert_ne!(VariantKey::of("00000000000000ff"), VariantKey::of("ff"));
    }

    /// Whatever order variants arrive in (the walk's id order, a second model's pass over
    /// the same ids, ids out of key order, repeats), the tallies are those of a plain map.
    #[test]
    fn variant_tallies_add_up_like_a_map_in_any_arrival_order() {
        let ids = [
            "00000000000000a1",
            "00000000000000b2",
            "zz-text",
            "00000000000000c3",
            "aa-text",
            "00000000000000b2",
            "00000000000000a1",
            "zz-text",
            "0000000000000001",
        ];
        let statuses = [CaseStatus::Pass, CaseStatus::Fail, CaseStatus::Error];
        let mut expected: std::collections::BTreeMap<VariantKey, SampleTally> =
            std::collections::BTreeMap::new();
        let mut t = VariantTallies::default();
        for (i, id) in ids.iter().enumerate() {
            let status = statuses[i % 3];
            t.tally_mut(VariantKey::of(id)).push(status);
            expected.entry(VariantKey::of(id)).or_default().push(status);
        }
        t.normalize();
        let got: Vec<(VariantKey, SampleTally)> = t.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let want: Vec<(VariantKey, SampleTally)> = expected.into_iter().collect();
        assert_eq!(got, want);
        assert_eq!(t.len(), 6);
        assert_eq!(
            t.get(&VariantKey::of("00000000000000b2")),
            Some(&SampleTally {
                passed: 0,
                graded: 1,
                errors: 1
            })
        );
        assert_eq!(t.get(&VariantKey::of("nope")), None);
        // In order, then a second pass over the same ids: found, not added.
        let mut t = VariantTallies::default();
        for _ in 0..2 {
            for id in ["0000000000000001", "0000000000000002", "0000000000000003"] {
                t.tally_mut(VariantKey::of(id)).push(CaseStatus::Pass);
            }
        }
        assert!(t.sorted);
        assert_eq!(t.entries.len(), 3);
        assert!(t.values().all(|v| v.passed == 2));
    }
}
