//! Expansion: from a probe family to its variants, by strategy, as a stream.
//!
//! Each probe yields its canonical variant first, then the strategy's points in axis space,
//! then its promoted cases (so a known hard case is always re-run). A variant id is a hash of
//! the probe's content digest and the axis values: stable across runs and machines, changed
//! when the probe's content changes. Rendering is seeded by the variant id, so the same id
//! always means the same bytes.

use crate::axes::{AxisLibrary, AxisName, ORIGINAL};
use crate::chat::ChatRequest;
use crate::error::{Error, Result};
use crate::probe::Probe;
use crate::render::{Renderer, VariantAxes};
use indexmap::{IndexMap, IndexSet};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// How points in axis space are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Strategy {
    /// Every combination.
    Full,
    /// A covering array of strength 2: every pair of values of any two axes at least once.
    Pairwise,
    /// N distinct random combinations (the canonical included).
    Sample(usize),
    /// The canonical, then each value of each axis changed alone.
    OneAtATime,
    /// A pairwise covering array first, then follow-up rounds planned from the evidence
    /// (`crate::adaptive`): the points of the first round are the pairwise ones.
    Adaptive,
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "full" => Ok(Strategy::Full),
            "pairwise" => Ok(Strategy::Pairwise),
            "one-at-a-time" => Ok(Strategy::OneAtATime),
            "adaptive" => Ok(Strategy::Adaptive),
            other => match other.strip_prefix("sample:").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(Strategy::Sample(n)),
                _ => Err(format!(
                    "unknown strategy `{other}`; expected full, pairwise, adaptive, sample:N (N ≥ 1) or one-at-a-time"
                )),
            },
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Full => write!(f, "full"),
            Strategy::Pairwise => write!(f, "pairwise"),
            Strategy::Sample(n) => write!(f, "sample:{n}"),
            Strategy::OneAtATime => write!(f, "one-at-a-time"),
            Strategy::Adaptive => write!(f, "adaptive"),
        }
    }
}

/// `--axes`: which axes vary, optionally restricted to some values (`format=xml|csv`).
#[derive(Debug, Clone, Default)]
pub struct AxisFilter {
    /// None: all axes vary. Some: only these, with an optional value allow-list.
    pub only: Option<IndexMap<AxisName, Option<Vec<String>>>>,
}

impl FromStr for AxisFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut only = IndexMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, values) = match part.split_once('=') {
                Some((n, v)) => (
                    n,
                    Some(v.split('|').map(|x| x.trim().to_string()).collect()),
                ),
                None => (part, None),
            };
            let axis = AxisName::parse(name)
                .ok_or_else(|| format!("unknown axis `{name}`; expected {}", AxisName::EXPECTED))?;
            only.insert(axis, values);
        }
        Ok(AxisFilter { only: Some(only) })
    }
}

/// The `--axes` text that parses back to this filter (empty for "all axes vary"): how a run
/// records its filter, so a resume expands the same plan.
impl std::fmt::Display for AxisFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(only) = &self.only else {
            return Ok(());
        };
        for (i, (axis, values)) in only.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(axis.as_str())?;
            if let Some(vs) = values {
                write!(f, "={}", vs.join("|"))?;
            }
        }
        Ok(())
    }
}

/// One variant: a point in axis space for one probe, rendered.
#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    /// Probe id.
    pub probe: String,
    /// Variant id.
    pub variant: String,
    /// True for the incident as it happened.
    pub canonical: bool,
    /// Axis values.
    pub axes: VariantAxes,
    /// The rendered request.
    pub request: ChatRequest,
    /// Tools the `tools` axis added (`overlapping`): added name → the catalog tool it
    /// duplicates, so a consumer that answers tool calls can answer a look-alike as it answers
    /// the original. Empty otherwise.
    pub added_tools: BTreeMap<String, String>,
}

/// The variant id of a point of a probe: 16 hex digits of blake3(probe digest, axes). The
/// `tools` axis is hashed only when it is not `original`, so the axis renamed no variant that
/// existed before it (and declaring it on a probe renames none either: see `Probe::digest`).
pub fn variant_id(probe_digest: &str, axes: &VariantAxes) -> String {
    let mut h = blake3::Hasher::new();
    h.update(probe_digest.as_bytes());
    for a in AxisName::ALL {
        if a == AxisName::Tools && axes.tools == ORIGINAL {
            continue;
        }
        h.update(b"\x00");
        h.update(a.as_str().as_bytes());
        h.update(b"=");
        h.update(axes.get(a).as_bytes());
    }
    h.finalize().to_hex()[..16].to_string()
}

/// The id of a point of this probe: [`variant_id`], except that a frozen paraphrase's text is
/// folded into the id of the variants that ask it (`llm-i` phrasings). Paraphrases are not in
/// [`Probe::digest`], so freezing them changes no other variant's id, while a re-written
/// paraphrase gives its variants new ids (they ask a different question).
pub fn point_id(probe: &Probe, digest: &str, axes: &VariantAxes) -> String {
    let frozen = crate::axes::phrasing_index(&axes.phrasing)
        .and_then(|i| probe.paraphrases.as_ref()?.text_for(&axes.persona, i));
    match frozen {
        Some((text, in_voice)) => {
            let mut h = blake3::Hasher::new();
            h.update(digest.as_bytes());
            let kind = if in_voice { "in-voice" } else { "neutral" };
            h.update(format!("\0paraphrase:{kind}\0").as_bytes());
            h.update(text.as_bytes());
            variant_id(&h.finalize().to_hex(), axes)
        }
        None => variant_id(digest, axes),
    }
}

/// The render seed of a variant id.
pub fn variant_seed(id: &str) -> u64 {
    let h = blake3::hash(id.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// The values each axis takes for a probe under a filter (`original` first; a single
/// `original` for axes that do not vary). An axis varies when the probe declares it and it
/// can change something in the probe ([`crate::render::applicable_axes`]: `tools` needs a
/// tool catalog); a `tools` value that would offer the very catalog of the incident (`shuffled`
/// with one tool, `terse` when every description is already one short sentence) is left out
/// for that probe, named in `--axes` or not.
pub fn axis_values(
    probe: &Probe,
    lib: &AxisLibrary,
    filter: &AxisFilter,
) -> Result<Vec<(AxisName, Vec<String>)>> {
    let applicable = crate::render::applicable_axes(probe);
    let mut out = Vec::new();
    for axis in AxisName::ALL {
        let declared = probe.axes.iter().any(|a| a == axis.as_str());
        let mut values = vec![ORIGINAL.to_string()];
        let allowed = match &filter.only {
            None => Some(None),
            Some(m) => m.get(&axis).cloned().map(Some).unwrap_or(None),
        };
        if declared
            && applicable.contains(&axis)
            && let Some(allow) = allowed
        {
            {
                let mut all = lib.values(axis);
                if axis == AxisName::Phrasing
                    && let Some(p) = &probe.paraphrases
                {
                    all.extend(p.phrasing_values());
                }
                let changes = |v: &str| {
                    axis != AxisName::Tools
                        || v == ORIGINAL
                        || crate::tool_catalog::changes_catalog(
                            &probe.id,
                            &probe.checks,
                            &probe.tools,
                            v,
                        )
                };
                match allow {
                    None => values = all.into_iter().filter(|v| changes(v)).collect(),
                    Some(list) => {
                        // `llm-N` is per probe (its frozen paraphrases): a suite-wide
                        // `--axes phrasing=llm-1` skips the probes that do not have it.
                        let per_probe = |v: &str| {
                            axis == AxisName::Phrasing && crate::axes::phrasing_index(v).is_some()
                        };
                        for v in &list {
                            if !all.contains(v) && !per_probe(v) {
                                return Err(Error::Refused(format!(
                                    "unknown {} value `{v}`; known: {}",
                                    axis.as_str(),
                                    all.join(", ")
                                )));
                            }
                        }
                        values.extend(
                            list.into_iter()
                                .filter(|v| v != ORIGINAL && all.contains(v) && changes(v)),
                        );
                    }
                }
            }
        }
        out.push((axis, values));
    }
    Ok(out)
}

/// The points of a probe under a strategy, canonical first, no duplicates.
pub fn plan_points(
    values: &[(AxisName, Vec<String>)],
    strategy: Strategy,
    seed: u64,
) -> Box<dyn Iterator<Item = VariantAxes> + Send> {
    let sizes: Vec<usize> = values.iter().map(|(_, v)| v.len()).collect();
    let values_axes: Vec<AxisName> = values.iter().map(|(a, _)| *a).collect();
    let values = values.to_vec();
    let point = move |idx: &[usize]| {
        let mut a = VariantAxes::default();
        for (k, (axis, vals)) in values.iter().enumerate() {
            a.set(*axis, vals[idx[k]].clone());
        }
        a
    };
    match strategy {
        Strategy::Full => {
            let total: usize = sizes.iter().product();
            Box::new((0..total).map(move |mut n| {
                let mut idx = vec![0; sizes.len()];
                for k in (0..sizes.len()).rev() {
                    idx[k] = n % sizes[k];
                    n /= sizes[k];
                }
                point(&idx)
            }))
        }
        Strategy::OneAtATime => {
            let mut pts = vec![vec![0; sizes.len()]];
            for (k, n) in sizes.iter().enumerate() {
                for v in 1..*n {
                    let mut idx = vec![0; sizes.len()];
                    idx[k] = v;
                    pts.push(idx);
                }
            }
            Box::new(pts.into_iter().map(move |i| point(&i)))
        }
        Strategy::Pairwise | Strategy::Adaptive => {
            let rows = covering_rows(&values_axes, &sizes, seed);
            Box::new(rows.into_iter().map(move |i| point(&i)))
        }
        Strategy::Sample(n) => {
            let total: usize = sizes.iter().product();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut chosen: IndexSet<usize> = IndexSet::new();
            chosen.insert(0);
            let want = n.min(total);
            while chosen.len() < want {
                chosen.insert(rng.random_range(0..total));
            }
            let sizes2 = sizes.clone();
            Box::new(chosen.into_iter().map(move |mut n| {
                let mut idx = vec![0; sizes2.len()];
                for k in (0..sizes2.len()).rev() {
                    idx[k] = n % sizes2[k];
                    n /= sizes2[k];
                }
                point(&idx)
            }))
        }
    }
}

/// The pairwise rows of a probe's value lists. A `tools` axis with one value (the probe offers
/// no tools or does not declare the axis) is left out of the array and set to `original`, so
/// such a probe gets, seed for seed, the array it had before the axis existed.
fn covering_rows(axes: &[AxisName], sizes: &[usize], seed: u64) -> Vec<Vec<usize>> {
    let Some(fixed) = axes
        .iter()
        .zip(sizes)
        .position(|(a, n)| *a == AxisName::Tools && *n == 1)
    else {
        return pairwise(sizes, seed);
    };
    let mut core = sizes.to_vec();
    core.remove(fixed);
    let mut rows = pairwise(&core, seed);
    for r in &mut rows {
        r.insert(fixed, 0);
    }
    rows
}

/// A strength-2 covering array (AETG-style greedy): the all-zero row first, then rows that
/// each cover the most still-uncovered pairs among seeded candidates. Deterministic per seed.
pub fn pairwise(sizes: &[usize], seed: u64) -> Vec<Vec<usize>> {
    let k = sizes.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // uncovered[i][j] is a matrix sizes[i] × sizes[j] for i < j.
    let mut uncovered: Vec<Vec<Vec<bool>>> = (0..k)
        .map(|i| {
            (0..k)
                .map(|j| {
                    if j > i {
                        vec![true; sizes[i] * sizes[j]]
                    } else {
                        Vec::new()
                    }
                })
                .collect()
        })
        .collect();
    let mut remaining: usize = (0..k)
        .flat_map(|i| ((i + 1)..k).map(move |j| (i, j)))
        .map(|(i, j)| sizes[i] * sizes[j])
        .sum();
    let mut rows = Vec::new();
    let cover = |row: &[usize], uncovered: &mut Vec<Vec<Vec<bool>>>, remaining: &mut usize| {
        for i in 0..k {
            for j in (i + 1)..k {
                let cell = &mut uncovered[i][j][row[i] * sizes[j] + row[j]];
                if *cell {
                    *cell = false;
                    *remaining -= 1;
                }
            }
        }
    };
    let zero = vec![0; k];
    cover(&zero, &mut uncovered, &mut remaining);
    rows.push(zero);
    let mut order: Vec<usize> = (0..k).collect();
    while remaining > 0 {
        let mut best: Option<(usize, Vec<usize>)> = None;
        for _ in 0..24 {
            // Seed the candidate with one uncovered pair, chosen at random.
            let mut pick = rng.random_range(0..remaining);
            let mut row = vec![usize::MAX; k];
            'find: for i in 0..k {
                for j in (i + 1)..k {
                    for (c, &u) in uncovered[i][j].iter().enumerate() {
                        if u {
                            if pick == 0 {
                                row[i] = c / sizes[j];
                                row[j] = c % sizes[j];
                                break 'find;
                            }
                            pick -= 1;
                        }
                    }
                }
            }
            order.shuffle(&mut rng);
            for &f in &order {
                if row[f] != usize::MAX {
                    continue;
                }
                let mut best_v = Vec::new();
                let mut best_gain = -1i64;
                for v in 0..sizes[f] {
                    let mut gain = 0i64;
                    for (g, &rg) in row.iter().enumerate() {
                        if g == f || rg == usize::MAX {
                            continue;
                        }
                        let (i, j, vi, vj) = if g < f { (g, f, rg, v) } else { (f, g, v, rg) };
                        if uncovered[i][j][vi * sizes[j] + vj] {
                            gain += 1;
                        }
                    }
                    if gain > best_gain {
                        best_gain = gain;
                        best_v.clear();
                    }
                    if gain == best_gain {
                        best_v.push(v);
                    }
                }
                row[f] = best_v[rng.random_range(0..best_v.len())];
            }
            let gain = (0..k)
                .flat_map(|i| ((i + 1)..k).map(move |j| (i, j)))
                .filter(|&(i, j)| uncovered[i][j][row[i] * sizes[j] + row[j]])
                .count();
            if best.as_ref().is_none_or(|(g, _)| gain > *g) {
                best = Some((gain, row));
            }
        }
        let (_, row) = best.expect("at least one candidate");
        cover(&row, &mut uncovered, &mut remaining);
        rows.push(row);
    }
    rows
}

/// Variant counts of a probe under each strategy (for templatize and `--dry-run`).
pub fn strategy_counts(values: &[(AxisName, Vec<String>)], seed: u64) -> Vec<(String, usize)> {
    let sizes: Vec<usize> = values.iter().map(|(_, v)| v.len()).collect();
    let axes: Vec<AxisName> = values.iter().map(|(a, _)| *a).collect();
    let full: usize = sizes.iter().product();
    vec![
        ("full".into(), full),
        ("pairwise".into(), covering_rows(&axes, &sizes, seed).len()),
        (
            "one-at-a-time".into(),
            1 + sizes.iter().map(|n| n - 1).sum::<usize>(),
        ),
    ]
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Render(format!("serialising a variant: {e}"))
}

/// A prepared probe: everything needed to render its variants.
pub struct ProbeExpansion<'a> {
    probe: &'a Probe,
    lib: &'a AxisLibrary,
    renderer: Renderer<'a>,
    digest: String,
    /// The probe id as a JSON string, for [`Self::write_json_line`].
    probe_json: String,
}

impl<'a> ProbeExpansion<'a> {
    /// Compiles a probe against a library.
    pub fn new(probe: &'a Probe, lib: &'a AxisLibrary) -> Result<ProbeExpansion<'a>> {
        let renderer = Renderer::new(probe)
            .and_then(|r| r.with_library(lib))
            .map_err(|e| Error::Render(format!("probe {}: {e}", probe.id)))?;
        let probe_json = serde_json::to_string(&probe.id).map_err(json_error)?;
        Ok(ProbeExpansion {
            probe,
            lib,
            renderer,
            digest: probe.digest(),
            probe_json,
        })
    }

    /// True when [`Self::write_json_line`] writes from the pre-serialised frame (every
    /// message template has the plain shape `templatize` writes).
    pub fn has_fast_path(&self) -> bool {
        self.renderer.has_fast_path()
    }

    /// The axis library the variants are rendered with.
    pub fn library(&self) -> &AxisLibrary {
        self.lib
    }

    /// The probe's content digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The points to run: the strategy's, then promoted cases not already among them.
    pub fn points(
        &self,
        strategy: Strategy,
        seed: u64,
        filter: &AxisFilter,
    ) -> Result<Box<dyn Iterator<Item = VariantAxes> + Send>> {
        let values = axis_values(self.probe, self.lib, filter)?;
        let main = plan_points(&values, strategy, seed ^ variant_seed(&self.digest));
        if self.probe.cases.is_empty() {
            return Ok(main);
        }
        // Promoted cases are few, but the strategy's points must be known to skip duplicates.
        let pts: Vec<VariantAxes> = main.collect();
        let mut seen: std::collections::HashSet<VariantAxes> = pts.iter().cloned().collect();
        let extra: Vec<VariantAxes> = self
            .probe
            .cases
            .iter()
            .map(|c| VariantAxes::from_map(&c.axes))
            .filter(|p| seen.insert(p.clone()))
            .collect();
        Ok(Box::new(pts.into_iter().chain(extra)))
    }

    /// Renders one point.
    pub fn variant(&self, axes: VariantAxes) -> Result<Variant> {
        let id = point_id(self.probe, &self.digest, &axes);
        let request = self
            .renderer
            .render(self.lib, &axes, variant_seed(&id))
            .map_err(|e| Error::Render(format!("probe {} variant {id}: {e}", self.probe.id)))?;
        let added_tools = self.added_tools(&axes)?;
        Ok(Variant {
            probe: self.probe.id.clone(),
            canonical: axes.is_canonical(),
            variant: id,
            axes,
            request,
            added_tools,
        })
    }

    /// The tools a point's `tools` value adds: added name → the catalog tool it duplicates.
    pub fn added_tools(&self, axes: &VariantAxes) -> Result<BTreeMap<String, String>> {
        if axes.tools == ORIGINAL {
            return Ok(BTreeMap::new());
        }
        self.renderer
            .catalog(&axes.tools)
            .map(|c| c.catalog.added.clone())
            .map_err(|e| Error::Render(format!("probe {}: {e}", self.probe.id)))
    }

    /// Appends one point as the JSON line `cliffprobe expand` writes: the bytes of
    /// `serde_json::to_writer(&self.variant(axes)?)` and a newline, written from the
    /// renderer's pre-serialised frame where the probe has one (see
    /// [`Renderer::write_request_json`]), else by serialising the variant.
    pub fn write_json_line(&self, axes: VariantAxes, out: &mut Vec<u8>) -> Result<()> {
        let id = point_id(self.probe, &self.digest, &axes);
        let start = out.len();
        out.extend_from_slice(b"{\"probe\":");
        out.extend_from_slice(self.probe_json.as_bytes());
        out.extend_from_slice(b",\"variant\":");
        serde_json::to_writer(&mut *out, &id).map_err(json_error)?;
        out.extend_from_slice(if axes.is_canonical() {
            b",\"canonical\":true,\"axes\":"
        } else {
            b",\"canonical\":false,\"axes\":"
        });
        serde_json::to_writer(&mut *out, &axes).map_err(json_error)?;
        out.extend_from_slice(b",\"request\":");
        let written = self
            .renderer
            .write_request_json(self.lib, &axes, &|| variant_seed(&id), out)
            .map_err(|e| Error::Render(format!("probe {} variant {id}: {e}", self.probe.id)))?;
        if written {
            out.extend_from_slice(b",\"added_tools\":");
            serde_json::to_writer(&mut *out, &self.added_tools(&axes)?).map_err(json_error)?;
            out.extend_from_slice(b"}\n");
        } else {
            out.truncate(start);
            serde_json::to_writer(&mut *out, &self.variant(axes)?).map_err(json_error)?;
            out.push(b'\n');
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_covers_every_pair_and_is_small() {
        let sizes = [11, 11, 10, 9];
        let rows = pairwise(&sizes, 42);
        assert_eq!(rows[0], vec![0, 0, 0, 0]);
        for i in 0..4 {
            for j in (i + 1)..4 {
                for a in 0..sizes[i] {
                    for b in 0..sizes[j] {
                        assert!(
                            rows.iter().any(|r| r[i] == a && r[j] == b),
                            "pair ({i}={a},{j}={b}) uncovered"
                        );
                    }
                }
            }
        }
        assert!(
            rows.len() <= 150,
            "{} rows against a lower bound of 121",
            rows.len()
        );
        assert_eq!(rows, pairwise(&sizes, 42));
    }

    #[test]
    fn frozen_paraphrases_rename_only_the_variants_that_ask_them() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/probes/reading-a-status-from-a-tool-s-table-output/order-status-table.yaml"
        ));
        let plain = Probe::load(path).unwrap();
        let mut personas = IndexMap::new();
        personas.insert(
            ORIGINAL.to_string(),
            vec!["Where is order A-10442?".to_string()],
        );
        let mut with = plain.clone();
        with.paraphrases = Some(crate::probe::paraphrases::Paraphrases {
            model: "m".into(),
            model_id: "m-1".into(),
            date: "d".into(),
            prompt_version: 1,
            question_digest: crate::probe::paraphrases::question_digest(&plain.slots.question),
            personas,
        });
        assert_eq!(plain.digest(), with.digest());
        let lib = AxisLibrary::embedded();
        let before = ProbeExpansion::new(&plain, &lib).unwrap();
        let after = ProbeExpansion::new(&with, &lib).unwrap();
        let all = |x: &ProbeExpansion<'_>| -> Vec<Variant> {
            x.points(Strategy::OneAtATime, 0, &AxisFilter::default())
                .unwrap()
                .map(|a| x.variant(a).unwrap())
                .collect()
        };
        let (b, a) = (all(&before), all(&after));
        assert_eq!(a.len(), b.len() + 1);
        for v in &b {
            assert!(a.iter().any(|w| w.variant == v.variant && w.axes == v.axes));
        }
        let llm = a.iter().find(|v| v.axes.phrasing == "llm-1").unwrap();
        let mut changed = with.clone();
        if let Some(p) = &mut changed.paraphrases {
            p.personas[ORIGINAL][0] = "Status of A-10442?".into();
        }
        let digest = changed.digest();
        assert_ne!(point_id(&changed, &digest, &llm.axes), llm.variant);
        assert_eq!(point_id(&with, &digest, &llm.axes), llm.variant);
    }

    /// Every shipped probe, and variants of one with a frozen paraphrase, a template off the
    /// fast path and incident text full of template syntax and JSON escapes: the JSON line
    /// writer gives the bytes serde_json gives for the rendered variant.
    #[test]
    fn json_lines_are_the_serialised_variants() {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/probes"));
        let mut probes = Vec::new();
        for cap in std::fs::read_dir(dir).unwrap() {
            for f in std::fs::read_dir(cap.unwrap().path()).unwrap() {
                probes.push(Probe::load(&f.unwrap().path()).unwrap());
            }
        }
        probes.sort_by(|a, b| a.id.cmp(&b.id));
        assert!(probes.len() >= 7);
        let base = probes
            .iter()
            .find(|p| p.id == "order-status-table")
            .unwrap()
            .clone();
        let mut hostile = base.clone();
        let escaped = crate::text::template_literal(
            "Say \"{{ hi }}\" {% raw %} {# c #}\r\n\ttab \u{1} é ✓ \\ back}}slash\n",
        );
        hostile.messages[0].content = Some(escaped.clone() + "{{ question }}\n");
        let mut off_path = base.clone();
        off_path.messages[0].content = Some(escaped + "{{ question | upper }}");
        let mut frozen = base.clone();
        let mut personas = IndexMap::new();
        personas.insert(
            ORIGINAL.to_string(),
            vec!["Status of A-10442, \"please\"?".into()],
        );
        frozen.paraphrases = Some(crate::probe::paraphrases::Paraphrases {
            model: "m".into(),
            model_id: "m-1".into(),
            date: "d".into(),
            prompt_version: 1,
            question_digest: crate::probe::paraphrases::question_digest(&base.slots.question),
            personas,
        });
        hostile.id = "hostile".into();
        off_path.id = "off-path".into();
        frozen.id = "frozen".into();
        probes.extend([hostile, off_path, frozen]);
        let lib = AxisLibrary::embedded();
        let short: AxisFilter = "persona,phrasing,format".parse().unwrap();
        let mut lines = 0;
        for p in &probes {
            let x = ProbeExpansion::new(p, &lib).unwrap();
            assert_eq!(x.has_fast_path(), p.id != "off-path", "{}", p.id);
            let plans = [
                (Strategy::OneAtATime, AxisFilter::default()),
                (Strategy::Sample(60), AxisFilter::default()),
                (Strategy::Sample(200), short.clone()),
            ];
            for (strategy, filter) in plans {
                let mut out = Vec::new();
                let mut want = Vec::new();
                for axes in x.points(strategy, 7, &filter).unwrap() {
                    x.write_json_line(axes.clone(), &mut out).unwrap();
                    serde_json::to_writer(&mut want, &x.variant(axes).unwrap()).unwrap();
                    want.push(b'\n');
                    lines += 1;
                }
                if out != want {
                    let (o, w) = (
                        String::from_utf8_lossy(&out),
                        String::from_utf8_lossy(&want),
                    );
                    let (o, w): (Vec<&str>, Vec<&str>) = (o.lines().collect(), w.lines().collect());
                    let i = (0..w.len()).find(|&i| o.get(i) != w.get(i)).unwrap_or(0);
                    panic!(
                        "probe {} {strategy}: line {i} differs\nfast: {:?}\nwant: {:?}",
                        p.id,
                        o.get(i),
                        w.get(i)
                    );
                }
            }
        }
        assert!(lines > 1000, "{lines}");
    }

    /// A probe that does not vary `tools` gets, seed for seed, the covering array it had before
    /// the axis existed; one that does gets an array covering the tools values too.
    #[test]
    fn a_tools_axis_that_does_not_vary_leaves_the_covering_array_as_it_was() {
        let vals = |n: usize, prefix: &str| -> Vec<String> {
            std::iter::once(ORIGINAL.to_string())
                .chain((1..n).map(|i| format!("{prefix}{i}")))
                .collect()
        };
        let four = vec![
            (AxisName::Persona, vals(13, "p")),
            (AxisName::Phrasing, vals(13, "q")),
            (AxisName::Length, vals(10, "l")),
            (AxisName::Format, vals(9, "f")),
        ];
        let mut five = four.clone();
        five.push((AxisName::Tools, vals(1, "t")));
        for seed in [0, 7, 99] {
            let a: Vec<VariantAxes> = plan_points(&four, Strategy::Pairwise, seed).collect();
            let b: Vec<VariantAxes> = plan_points(&five, Strategy::Pairwise, seed).collect();
            assert_eq!(a, b);
            assert_eq!(strategy_counts(&four, seed), strategy_counts(&five, seed));
        }
        five[4].1 = vals(5, "t");
        let rows: Vec<VariantAxes> = plan_points(&five, Strategy::Pairwise, 7).collect();
        for t in &five[4].1 {
            for f in &five[3].1 {
                assert!(rows.iter().any(|r| &r.tools == t && &r.format == f));
            }
        }
    }

    #[test]
    fn strategies_parse() {
        assert_eq!("sample:5".parse::<Strategy>().unwrap(), Strategy::Sample(5));
        assert!("sample:0".parse::<Strategy>().is_err());
        assert!("bogus".parse::<Strategy>().is_err());
    }
}
