//! Sharding one sweep over several processes or machines (`cliffprobe sweep --shard I/N`).
//!
//! A run's cases are cut into `N` disjoint *slices* by a stable hash of the variant id: every
//! model and every sample of a variant fall in the same slice, so a shard plans, calls and
//! stores only the cases of its own variants, and the union of the `N` slices is exactly the
//! unsharded run, whatever the strategy (full, pairwise, sample; the plan of each is a pure
//! function of the probes, the seed and the axes filter, so every shard computes the same
//! plan and keeps its part). The adaptive strategy cannot be sharded: its follow-up rounds are
//! planned from the results of every earlier case, which a slice does not see.
//!
//! # The slice hash
//! `slice(variant) = u64::from_le_bytes(blake3("cliffprobe-shard-v1\0" ‖ variant_id)[0..8]) mod N`.
//! The variant id is already a content hash (see [`crate::expand::variant_id`]); hashing it
//! again under a domain tag keeps slices independent of how ids are spelled and balanced for
//! any `N` (the modulo bias of a 64-bit value is below 10⁻¹⁵ for `N` < 1000). The hash depends
//! only on the variant id, so slices are the same on every machine, process and build.
//! Changing it would move cases between slices of runs in flight: a new hash takes a new tag.
//!
//! # Indices
//! `I` counts from 0, as GitHub Actions' `strategy.job-index` does: the slices of 4 are
//! `0/4` … `3/4`. An unsharded run is the single slice `0/1`.
//!
//! # Agreeing on the plan
//! The shards of one run must plan the same cases: [`plan_digest`] hashes everything the plan
//! depends on (configuration digest, each probe's content digest, models, strategy, seed,
//! repeats, axes filter, number of slices). The first shard to arrive records it with the run;
//! a shard that arrives with another digest is refused.

use crate::error::{Error, Result};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The domain tag of the slice hash (version 1).
const SLICE_TAG: &[u8] = b"cliffprobe-shard-v1\0";

/// The most slices a run may be cut into.
pub const MAX_SLICES: u32 = 10_000;

/// One slice of a run: the `index`-th (from 0) of `count`. Written `I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Slice {
    index: u32,
    count: u32,
}

impl Slice {
    /// The whole run: slice `0/1`.
    pub const WHOLE: Slice = Slice { index: 0, count: 1 };

    /// Slice `index/count`, checked: `count` from 1 to [`MAX_SLICES`], `index` below `count`.
    pub fn new(index: u32, count: u32) -> std::result::Result<Slice, String> {
        if count == 0 {
            return Err("N must be at least 1 (N is the number of shards)".into());
        }
        if count > MAX_SLICES {
            return Err(format!("N must be at most {MAX_SLICES}"));
        }
        if index >= count {
            return Err(format!(
                "I must be below N: shard indices count from 0, so the shards of {count} are \
                 0/{count} … {}/{count}",
                count - 1
            ));
        }
        Ok(Slice { index, count })
    }

    /// The index `I`, from 0.
    pub fn index(self) -> u32 {
        self.index
    }

    /// The number of slices `N`.
    pub fn count(self) -> u32 {
        self.count
    }

    /// True for the whole run (`0/1`).
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// Whether the variant with this id belongs to this slice.
    pub fn contains(self, variant_id: &str) -> bool {
        self.count == 1 || slice_of(variant_id, self.count) == self.index
    }
}

impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Slice {
    type Err = String;

    /// `I/N`, e.g. `0/4`.
    fn from_str(s: &str) -> std::result::Result<Slice, String> {
        let Some((i, n)) = s.trim().split_once('/') else {
            return Err(format!(
                "expected I/N (e.g. 0/4: the first of 4 shards, counting from 0), got `{s}`"
            ));
        };
        let parse = |part: &str, what: &str| {
            part.trim().parse::<u32>().map_err(|_| {
                format!("expected I/N with whole numbers (e.g. 0/4), got `{s}`: {what} `{part}` is not a number")
            })
        };
        let (i, n) = (parse(i, "I")?, parse(n, "N")?);
        Slice::new(i, n).map_err(|e| format!("`{s}`: {e}"))
    }
}

/// The slice (from 0, below `count`) the variant with this id belongs to when a run is cut
/// into `count` slices. See the module docs for the hash. `count` must be at least 1.
pub fn slice_of(variant_id: &str, count: u32) -> u32 {
    let mut h = blake3::Hasher::new();
    h.update(SLICE_TAG);
    h.update(variant_id.as_bytes());
    let bytes = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    (u64::from_le_bytes(first) % u64::from(count.max(1))) as u32
}

/// What the shards of a run must agree on, hashed by [`plan_digest`].
#[derive(Debug, Serialize)]
pub struct PlanInputs<'a> {
    /// The configuration digest ([`crate::config::Config::digest`]).
    pub config_digest: &'a str,
    /// Probe id → content digest, for every probe of the run.
    pub probe_digests: &'a indexmap::IndexMap<String, String>,
    /// The models swept, in order.
    pub models: &'a [String],
    /// The strategy, as recorded with the run.
    pub strategy: &'a str,
    /// The seed.
    pub seed: u64,
    /// Samples per variant.
    pub repeats: u32,
    /// The axes filter, as recorded with the run.
    pub axes: &'a str,
    /// The number of slices.
    pub slices: u32,
}

/// A short digest of the plan of a sharded run (see [`PlanInputs`]); probes are hashed in id
/// order, so the order files are found in does not matter.
pub fn plan_digest(p: &PlanInputs<'_>) -> String {
    let mut probes: Vec<(&String, &String)> = p.probe_digests.iter().collect();
    probes.sort();
    let value = serde_json::json!({
        "config": p.config_digest,
        "probes": probes,
        "models": p.models,
        "strategy": p.strategy,
        "seed": p.seed,
        "repeats": p.repeats,
        "axes": p.axes,
        "slices": p.slices,
    });
    let json = serde_json::to_vec(&value).unwrap_or_default();
    blake3::hash(&json).to_hex()[..16].to_string()
}

/// Refuses `--shard` with the adaptive strategy, saying why.
pub fn check_strategy(strategy: crate::expand::Strategy, slice: Slice) -> Result<()> {
    if strategy == crate::expand::Strategy::Adaptive && !slice.is_whole() {
        return Err(Error::Refused(format!(
            "--shard {slice} cannot be used with --strategy adaptive: its follow-up rounds are \
             planned from the results of every earlier case, which one shard does not see. Shard \
             a full, pairwise or sample:N sweep, or run the adaptive sweep unsharded"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> impl Iterator<Item = String> {
        // Ids shaped like real variant ids: 16 hex digits of a content hash.
        (0..n).map(|i| blake3::hash(format!("variant {i}").as_bytes()).to_hex()[..16].to_string())
    }

    #[test]
    fn slices_are_balanced_within_a_few_percent_on_10000_variants() {
        for count in [2u32, 3, 4, 7, 8, 16] {
            let mut sizes = vec![0u32; count as usize];
            for id in ids(10_000) {
                sizes[slice_of(&id, count) as usize] += 1;
            }
            let even = 10_000.0 / f64::from(count);
            let mut worst = 0.0f64;
            for (i, &n) in sizes.iter().enumerate() {
                let off = (f64::from(n) - even).abs() / even;
                worst = worst.max(off);
                assert!(
                    off < 0.05,
                    "slice {i}/{count} holds {n} variants, {:.1}% off the even {even}",
                    100.0 * off
                );
            }
            eprintln!(
                "N = {count}: slices of 10,000 variants {sizes:?}, largest deviation {:.2}%",
                100.0 * worst
            );
        }
    }

    #[test]
    fn the_slice_hash_is_stable() {
        // Fixed values: a change here moves cases between the slices of runs in flight.
        assert_eq!(
            slice_of("0123456789abcdef", 4),
            slice_of("0123456789abcdef", 4)
        );
        let got: Vec<u32> = ["0123456789abcdef", "fedcba9876543210", "a", ""]
            .iter()
            .map(|id| slice_of(id, 1000))
            .collect();
        assert_eq!(got, STABLE);
    }

    /// `slice_of(id, 1000)` of the ids in `the_slice_hash_is_stable`, computed once.
    const STABLE: [u32; 4] = [900, 897, 714, 153];

    #[test]
    fn the_slices_of_n_partition_the_variants() {
        for id in ids(1000) {
            let owners: Vec<u32> = (0..5)
                .filter(|&i| Slice::new(i, 5).unwrap().contains(&id))
                .collect();
            assert_eq!(owners.len(), 1, "{id} belongs to {owners:?}");
        }
        assert!(ids(10).all(|id| Slice::WHOLE.contains(&id)));
    }

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!("2/4".parse::<Slice>().unwrap(), Slice::new(2, 4).unwrap());
        assert_eq!("0/1".parse::<Slice>().unwrap(), Slice::WHOLE);
        assert_eq!(Slice::new(3, 4).unwrap().to_string(), "3/4");
        let e = "4/4".parse::<Slice>().unwrap_err();
        assert!(e.contains("0/4 … 3/4"), "{e}");
        assert!("0/0".parse::<Slice>().unwrap_err().contains("at least 1"));
        assert!("1".parse::<Slice>().unwrap_err().contains("expected I/N"));
        assert!("a/4".parse::<Slice>().unwrap_err().contains("not a number"));
        assert!("-1/4".parse::<Slice>().is_err());
        assert!("0/10001".parse::<Slice>().unwrap_err().contains("at most"));
    }

    #[test]
    fn the_plan_digest_ignores_probe_order_but_not_the_slice_count() {
        let mut a = indexmap::IndexMap::new();
        a.insert("p1".to_string(), "d1".to_string());
        a.insert("p2".to_string(), "d2".to_string());
        let mut b = indexmap::IndexMap::new();
        b.insert("p2".to_string(), "d2".to_string());
        b.insert("p1".to_string(), "d1".to_string());
        let models = vec!["m".to_string()];
        let inputs = |p, slices| PlanInputs {
            config_digest: "c",
            probe_digests: p,
            models: &models,
            strategy: "full",
            seed: 1,
            repeats: 2,
            axes: "",
            slices,
        };
        assert_eq!(plan_digest(&inputs(&a, 4)), plan_digest(&inputs(&b, 4)));
        assert_ne!(plan_digest(&inputs(&a, 4)), plan_digest(&inputs(&a, 3)));
    }
}
