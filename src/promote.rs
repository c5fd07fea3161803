//! Promotion: the suite grows where the models are weakest.
//!
//! Every non-canonical variant of a run that failed at least one graded sample on some model
//! (a failing or a flaky variant) is written back into its probe family file as a
//! [`PromotedCase`]; [`crate::expand::ProbeExpansion::points`] then runs it in every later
//! sweep, next to the strategy's variants. Errors are never failures and never promote.
//!
//! # Rules
//! - **No duplicates.** A variant id already among the probe's cases updates that case: models
//!   are added to `failed_on`, `failures` grows by the run's failed samples, `last_seen`, the
//!   reason and the excerpt come from the run. A run is counted once: it updates a case only when
//!   it is newer than the case's `last_seen` (the run's start time is the "seen" time), so
//!   promoting the same run twice changes nothing; promoting an older run only moves
//!   `first_seen` back.
//! - **Stable order.** Cases are sorted by variant id.
//! - **Atomic writes.** Through [`crate::probe::write_atomic`] (temp file, fsync, rename); a file
//!   is written only when its cases changed, and the new text must load back as a probe first.
//! - **A size cap per probe** (default [`DEFAULT_CAP`]). When a probe would hold more cases than
//!   the cap, the *minimal* cases (fewest axes changed among the probe's cases) and the
//!   *most-failed* (the highest `failures`) are kept; the others are evicted first, oldest
//!   `last_seen` first (ties: fewer failures, then more axes changed, then the larger variant
//!   id). Only if that is not enough are the most-failed-but-not-minimal evicted, then the
//!   minimal-but-not-most-failed, then the rest, each in the same order.
//! - **Probe versions.** Variant ids derive from the probe's content digest; a probe edited
//!   since the run (its ids no longer match the run's) is skipped with a warning, as is a probe
//!   no longer in the suite.

use crate::error::{Error, Result};
use crate::expand::point_id;
use crate::grade::CaseStatus;
use crate::probe::{self, Probe, PromotedCase};
use crate::render::VariantAxes;
use crate::store::{RunInfo, Store};
use indexmap::IndexMap;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Default number of promoted cases kept per probe.
pub const DEFAULT_CAP: usize = 50;

/// Longest excerpt of a failing output kept in a case, in characters.
pub const EXCERPT_CHARS: usize = 200;

/// Longest reason kept in a case, in characters.
const REASON_CHARS: usize = 400;

/// What a run says about one failing or flaky variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Probe id.
    pub probe: String,
    /// Variant id.
    pub variant: String,
    /// The variant's full axes map, as stored.
    pub axes: IndexMap<String, String>,
    /// Models with at least one failed sample.
    pub failed_on: BTreeSet<String>,
    /// Failed samples in the run.
    pub failures: u64,
    /// The failed checks' reasons (of the first failing case).
    pub reason: Option<String>,
    /// A short excerpt of the first failing output.
    pub excerpt: Option<String>,
}

/// Every failing or flaky non-canonical variant of `run`, by probe then variant id.
pub fn candidates(
    store: &Store,
    run: &RunInfo,
) -> Result<BTreeMap<String, BTreeMap<String, Candidate>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Candidate>> = BTreeMap::new();
    store.for_each_case(&run.id, |row| {
        if row.canonical || row.case.status != CaseStatus::Fail {
            return Ok(());
        }
        let c = out
            .entry(row.probe_id.clone())
            .or_default()
            .entry(row.case.variant_id.clone())
            .or_insert_with(|| {
                let mut reasons: Vec<&str> = Vec::new();
                for v in &row.case.checks {
                    if v.passed == Some(false) && !reasons.contains(&v.reason.as_str()) {
                        reasons.push(&v.reason);
                    }
                }
                let reason = crate::term::sanitize(&reasons.join("; "));
                let excerpt = crate::term::sanitize(&row.case.output);
                Candidate {
                    probe: row.probe_id.clone(),
                    variant: row.case.variant_id.clone(),
                    axes: row.axes.clone(),
                    failed_on: BTreeSet::new(),
                    failures: 0,
                    reason: (!reason.trim().is_empty())
                        .then(|| crate::grade::excerpt(&reason, REASON_CHARS)),
                    excerpt: (!excerpt.trim().is_empty())
                        .then(|| crate::grade::excerpt(&excerpt, EXCERPT_CHARS)),
                }
            });
        c.failed_on.insert(row.case.model.clone());
        c.failures += 1;
        Ok(())
    })?;
    Ok(out)
}

/// What a merge did to one probe's cases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeStats {
    /// Variant ids added.
    pub added: Vec<String>,
    /// Variant ids updated.
    pub updated: Vec<String>,
    /// Variant ids evicted by the cap.
    pub evicted: Vec<String>,
}

fn instant(s: Option<&str>) -> Option<jiff::Timestamp> {
    s.and_then(|s| s.parse::<jiff::Timestamp>().ok())
}

/// Orders two optional RFC 3339 times as instants (unparsable or missing: oldest).
fn cmp_time(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    instant(a)
        .cmp(&instant(b))
        .then_with(|| a.unwrap_or("").cmp(b.unwrap_or("")))
}

/// Only the axes that differ from `original`, in axis order: what a reviewer needs to read.
fn changed_map(axes: &IndexMap<String, String>) -> IndexMap<String, String> {
    VariantAxes::from_map(axes)
        .to_map()
        .into_iter()
        .filter(|(_, v)| v != crate::axes::ORIGINAL)
        .collect()
}

/// Merges `cands` (seen at `seen`, RFC 3339) into `cases`, sorts by variant id and applies the
/// cap (see the module docs).
pub fn merge<'a>(
    cases: &[PromotedCase],
    cands: impl IntoIterator<Item = &'a Candidate>,
    seen: &str,
    cap: usize,
) -> (Vec<PromotedCase>, MergeStats) {
    let mut stats = MergeStats::default();
    let mut by_id: BTreeMap<String, PromotedCase> = cases
        .iter()
        .map(|c| (c.variant.clone(), c.clone()))
        .collect();
    for c in cands {
        match by_id.get_mut(&c.variant) {
            Some(e) => {
                let before = e.clone();
                if cmp_time(Some(seen), e.last_seen.as_deref()).is_gt() {
                    e.failures += c.failures;
                    e.last_seen = Some(seen.to_string());
                    e.reason = c.reason.clone().or(e.reason.take());
                    e.excerpt = c.excerpt.clone().or(e.excerpt.take());
                    e.axes = changed_map(&c.axes);
                }
                if e.first_seen.is_none() || cmp_time(Some(seen), e.first_seen.as_deref()).is_lt() {
                    e.first_seen = Some(seen.to_string());
                }
                let mut models: BTreeSet<String> = e.failed_on.iter().cloned().collect();
                models.extend(c.failed_on.iter().cloned());
                e.failed_on = models.into_iter().collect();
                if *e != before {
                    stats.updated.push(c.variant.clone());
                }
            }
            None => {
                by_id.insert(
                    c.variant.clone(),
                    PromotedCase {
                        variant: c.variant.clone(),
                        axes: changed_map(&c.axes),
                        failed_on: c.failed_on.iter().cloned().collect(),
                        first_seen: Some(seen.to_string()),
                        last_seen: Some(seen.to_string()),
                        failures: c.failures,
                        reason: c.reason.clone(),
                        excerpt: c.excerpt.clone(),
                    },
                );
                stats.added.push(c.variant.clone());
            }
        }
    }
    let mut out: Vec<PromotedCase> = by_id.into_values().collect();
    stats.evicted = apply_cap(&mut out, cap);
    stats.added.retain(|v| !stats.evicted.contains(v));
    stats.updated.retain(|v| !stats.evicted.contains(v));
    (out, stats)
}

/// Evicts cases until at most `cap` remain; returns the evicted variant ids, in eviction order.
/// Keeps the order of the others (see the module docs for the rule).
pub fn apply_cap(cases: &mut Vec<PromotedCase>, cap: usize) -> Vec<String> {
    if cases.len() <= cap {
        return Vec::new();
    }
    let changed = |c: &PromotedCase| VariantAxes::from_map(&c.axes).changed();
    let min_changed = cases.iter().map(changed).min().unwrap_or(0);
    let max_failures = cases.iter().map(|c| c.failures).max().unwrap_or(0);
    // Protection class: 0 neither, 1 most-failed only, 2 minimal only, 3 both.
    let class = |c: &PromotedCase| {
        u8::from(c.failures == max_failures) + 2 * u8::from(changed(c) == min_changed)
    };
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (&cases[i], &cases[j]);
        class(a)
            .cmp(&class(b))
            .then_with(|| cmp_time(a.last_seen.as_deref(), b.last_seen.as_deref()))
            .then_with(|| a.failures.cmp(&b.failures))
            .then_with(|| changed(b).cmp(&changed(a)))
            .then_with(|| b.variant.cmp(&a.variant))
    });
    let victims: Vec<usize> = order[..cases.len() - cap].to_vec();
    let evicted = victims.iter().map(|&i| cases[i].variant.clone()).collect();
    let mut k = 0;
    cases.retain(|_| {
        k += 1;
        !victims.contains(&(k - 1))
    });
    evicted
}

/// The planned change to one probe file.
#[derive(Debug, Clone)]
pub struct FilePlan {
    /// The probe file.
    pub path: PathBuf,
    /// Probe id.
    pub probe: String,
    /// Current text.
    pub before: String,
    /// Text after promotion (equal to `before` when nothing changes).
    pub after: String,
    /// What changed.
    pub stats: MergeStats,
    /// Cases in the file afterwards.
    pub cases: usize,
}

impl FilePlan {
    /// Whether the file changes.
    pub fn changes(&self) -> bool {
        self.before != self.after
    }
}

/// The outcome of planning a promotion.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One entry per probe that has candidates and could be mapped to a file.
    pub files: Vec<FilePlan>,
    /// Probes skipped, with why.
    pub warnings: Vec<String>,
    /// Number of candidate variants in the run.
    pub candidates: usize,
}

/// Plans the promotion of `run` into the probe `files` (the suite).
pub fn plan(store: &Store, run: &RunInfo, files: &[PathBuf], cap: usize) -> Result<Plan> {
    let cands = candidates(store, run)?;
    let mut plan = Plan {
        candidates: cands.values().map(BTreeMap::len).sum(),
        ..Plan::default()
    };
    if cands.is_empty() {
        return Ok(plan);
    }
    // Map probe ids to files (only the probes with candidates are kept loaded).
    let mut found: HashMap<String, (PathBuf, String, Probe)> = HashMap::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
        let p = Probe::parse(f, &text)?;
        if !cands.contains_key(&p.id) {
            continue;
        }
        if let Some((prev, _, _)) = found.get(&p.id) {
            return Err(Error::field(
                f,
                "id",
                format!("`{}` is also the id of {}", p.id, prev.display()),
            ));
        }
        found.insert(p.id.clone(), (f.clone(), text, p));
    }
    for (probe_id, vars) in &cands {
        let Some((path, text, p)) = found.remove(probe_id) else {
            plan.warnings.push(format!(
                "probe `{probe_id}` is not in the suite any more: its {} failing variant(s) are \
                 not promoted",
                vars.len()
            ));
            continue;
        };
        let digest = p.digest();
        if let Some(c) = vars
            .values()
            .find(|c| point_id(&p, &digest, &VariantAxes::from_map(&c.axes)) != c.variant)
        {
            plan.warnings.push(format!(
                "{}: probe `{probe_id}` changed since run {} (variant {} no longer matches its \
                 content): skipped; sweep it again to promote",
                path.display(),
                run.id,
                c.variant
            ));
            continue;
        }
        let (cases, stats) = merge(&p.cases, vars.values(), &run.started_at, cap);
        let count = cases.len();
        let after = if cases == p.cases {
            text.clone()
        } else {
            let mut q = p.clone();
            q.cases = cases;
            let yaml = q.to_yaml();
            Probe::parse(&path, &yaml).map_err(|e| {
                Error::Bug(format!(
                    "the promoted probe {} would not load back (a bug: please report it): {e}",
                    path.display()
                ))
            })?;
            yaml
        };
        plan.files.push(FilePlan {
            path,
            probe: probe_id.clone(),
            before: text,
            after,
            stats,
            cases: count,
        });
    }
    Ok(plan)
}

/// Writes every changed file of `plan`, atomically. Returns the number of files written.
pub fn apply(plan: &Plan) -> Result<usize> {
    let mut n = 0;
    for f in plan.files.iter().filter(|f| f.changes()) {
        probe::write_atomic(&f.path, &f.after)?;
        n += 1;
    }
    Ok(n)
}

/// A unified diff (3 lines of context) between two texts, with `path` in the headers; empty
/// when they are equal.
pub fn unified_diff(path: &Path, before: &str, after: &str) -> String {
    if before == after {
        return String::new();
    }
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    // Trim the common prefix and suffix, then LCS on the middle (probe files are small).
    let mut pre = 0;
    while pre < a.len() && pre < b.len() && a[pre] == b[pre] {
        pre += 1;
    }
    let mut suf = 0;
    while suf < a.len() - pre && suf < b.len() - pre && a[a.len() - 1 - suf] == b[b.len() - 1 - suf]
    {
        suf += 1;
    }
    let (am, bm) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let (n, m) = (am.len(), bm.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if am[i] == bm[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    // The edit script over the whole texts: (op, old line no, new line no, text).
    let mut ops: Vec<(char, usize, usize, &str)> = Vec::new();
    for (i, line) in a.iter().enumerate().take(pre) {
        ops.push((' ', i, i, line));
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && am[i] == bm[j] {
            ops.push((' ', pre + i, pre + j, am[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[at(i + 1, j)] >= lcs[at(i, j + 1)]) {
            ops.push(('-', pre + i, pre + j, am[i]));
            i += 1;
        } else {
            ops.push(('+', pre + i, pre + j, bm[j]));
            j += 1;
        }
    }
    for k in 0..suf {
        ops.push((' ', pre + n + k, pre + m + k, a[pre + n + k]));
    }
    // Hunks: changed ops with 3 lines of context, overlapping ones merged.
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &k in &changed {
        let lo = k.saturating_sub(CONTEXT);
        let hi = (k + CONTEXT + 1).min(ops.len());
        match hunks.last_mut() {
            Some(h) if lo <= h.1 => h.1 = hi,
            _ => hunks.push((lo, hi)),
        }
    }
    let mut out = format!("--- a/{0}\n+++ b/{0}\n", path.display());
    for (lo, hi) in hunks {
        let old_len = ops[lo..hi].iter().filter(|o| o.0 != '+').count();
        let new_len = ops[lo..hi].iter().filter(|o| o.0 != '-').count();
        let old_start = ops[lo].1 + usize::from(old_len > 0);
        let new_start = ops[lo].2 + usize::from(new_len > 0);
        out.push_str(&format!(
            "@@ -{old_start},{old_len} +{new_start},{new_len} @@\n"
        ));
        for o in &ops[lo..hi] {
            out.push(o.0);
            out.push_str(o.3);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(variant: &str, axes: &[(&str, &str)], failures: u64, last: &str) -> PromotedCase {
        PromotedCase {
            variant: variant.into(),
            axes: axes
                .iter()
                .map(|(a, v)| (a.to_string(), v.to_string()))
                .collect(),
            failed_on: vec!["m".into()],
            first_seen: Some(last.into()),
            last_seen: Some(last.into()),
            failures,
            reason: None,
            excerpt: None,
        }
    }

    #[test]
    fn cap_keeps_minimal_and_most_failed_and_drops_oldest() {
        let mut cases = vec![
            case("a", &[("format", "xml")], 1, "2026-01-01T00:00:00Z"),
            case(
                "b",
                &[("format", "csv"), ("persona", "terse-expert")],
                9,
                "2026-01-01T00:00:00Z",
            ),
            case(
                "c",
                &[("format", "csv"), ("persona", "phone-typist")],
                1,
                "2026-01-02T00:00:00Z",
            ),
            case(
                "d",
                &[("format", "yaml"), ("persona", "phone-typist")],
                1,
                "2026-01-03T00:00:00Z",
            ),
        ];
        let evicted = apply_cap(&mut cases, 2);
        assert_eq!(evicted, vec!["c".to_string(), "d".to_string()]);
        let kept: Vec<&str> = cases.iter().map(|c| c.variant.as_str()).collect();
        assert_eq!(kept, vec!["a", "b"]);
    }

    #[test]
    fn cap_prefers_minimal_when_every_case_ties_on_failures() {
        let t = "2026-01-01T00:00:00Z";
        let mut cases = vec![
            case("a", &[("format", "xml")], 4, t),
            case("b", &[("format", "csv")], 4, t),
            case(
                "c",
                &[("format", "csv"), ("persona", "x"), ("length", "2k-end")],
                4,
                t,
            ),
            case("d", &[("format", "yaml"), ("persona", "x")], 4, t),
        ];
        assert_eq!(
            apply_cap(&mut cases, 2),
            vec!["c".to_string(), "d".to_string()]
        );
        assert_eq!(apply_cap(&mut cases, 2), Vec::<String>::new());
    }

    #[test]
    fn diff_shows_changes_with_context() {
        let d = unified_diff(Path::new("p.yaml"), "a\nb\nc\nd\n", "a\nb\nx\nd\ne\n");
        assert_eq!(
            d,
            "--- a/p.yaml\n+++ b/p.yaml\n@@ -1,4 +1,5 @@\n a\n b\n-c\n+x\n d\n+e\n"
        );
        assert_eq!(unified_diff(Path::new("p"), "same\n", "same\n"), "");
        let d = unified_diff(Path::new("p"), "", "new\n");
        assert!(d.contains("@@ -0,0 +1,1 @@\n+new\n"), "{d}");
    }
}
