//! What an adaptive sweep reports ([`AdaptiveReport`], serialized as the `--adaptive-json`
//! file): per probe × model the causes, thresholds, interactions, each cause's smallest
//! failing variant and its 1-minimality, and every value's decision; and its text rendering.

use super::decision::{Decision, PairDecision, State};
use super::evidence::Group;
use super::threshold::{Threshold, threshold};
use super::{REPEAT_SAMPLES, Values};
use crate::axes::AxisName;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

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

pub(super) fn report_group(
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

#[allow(clippy::too_many_arguments)]
pub(super) fn finish(
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
