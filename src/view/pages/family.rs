//! The family pages: a probe family for a model (its brittleness per axis value, interactions,
//! minimal failing variant, flaky variants, promoted cases), from the run's brittleness
//! analysis, computed once per run and generation.

use super::run_of;
use super::template::render_page;
use crate::brittleness::{Brittleness, ProbeBrittleness};
use crate::grade::CaseStatus;
use crate::report::{html, short_id};
use crate::store::{RunInfo, Store};
use crate::view::links::{CaseFilter, Links};
use crate::view::{Site, ViewError};
use serde_json::json;

fn brittleness_of(
    site: &Site,
    store: &Store,
    run: &RunInfo,
) -> Result<std::sync::Arc<Brittleness>, ViewError> {
    let generation = store.run_generation(&run.id)?;
    site.brittleness.get((run.id.clone(), generation), || {
        Ok(crate::brittleness::analyze(
            store,
            run,
            &crate::brittleness::Filter::default(),
        )?)
    })
}

fn family_json(links: &Links, run: &str, p: &ProbeBrittleness) -> serde_json::Value {
    let base = CaseFilter {
        model: Some(p.model.clone()),
        probe: Some(p.probe.clone()),
        ..Default::default()
    };
    let axes: Vec<_> = p
        .axes
        .iter()
        .map(|(axis, values)| {
            json!({
                "axis": axis,
                "values": values.iter().map(|(value, st)| {
                    let f = CaseFilter { axes: vec![(axis.clone(), value.clone())], ..base.clone() };
                    let failing = CaseFilter { status: Some(CaseStatus::Fail), ..f.clone() };
                    json!({
                        "value": value,
                        "cases": st.cases,
                        "passed": st.passed,
                        "rate": st.pass_rate.map(|r| format!("{:.0}%", 100.0 * r)),
                        "color": st.pass_rate.map(html::heat_color),
                        "significant": st.significant,
                        "p": st.p_value.map(|p| format!("{p:.4}")),
                        "href": links.cases(run, &f),
                        "failing": links.cases(run, &failing),
                    })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "probe": p.probe,
        "model": p.model,
        "class": p.capability,
        "tier": p.tier.as_str(),
        "label": p.label.as_str(),
        "canonical_passed": p.canonical_passed,
        "cases": p.cases,
        "passed": p.passed,
        "rate": p.pass_rate.map(|r| format!("{:.1}%", 100.0 * r)),
        "errors": p.errors,
        "ungraded": p.ungraded,
        "variants": p.variants,
        "failing_variants": p.failing_variants,
        "axes": axes,
        "interactions": p.interactions.iter().take(20).map(|i| json!({
            "axes": i.axes.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", "),
            "cases": i.cases, "passed": i.passed,
        })).collect::<Vec<_>>(),
        "minimal": p.minimal_failing.as_ref().map(|m| m.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", ")),
        "minimal_href": p.minimal_failing_variant.as_ref().and_then(|v| links.case(run, &p.model, v, 0)),
        "minimal_variant": p.minimal_failing_variant.as_deref().map(short_id),
        "flaky": p.flaky.iter().take(20).map(|f| json!({
            "variant": short_id(&f.variant),
            "href": links.case(run, &p.model, &f.variant, 0),
            "axes": f.axes.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", "),
            "cases": f.cases, "passed": f.passed,
        })).collect::<Vec<_>>(),
        "all_cases": links.cases(run, &base),
        "failing_cases": links.cases(run, &CaseFilter { status: Some(CaseStatus::Fail), ..base.clone() }),
        "self": links.family(run, &p.probe, &p.model),
    })
}

/// The promoted cases of `probe`, read from its file in the project (the version the run
/// recorded, when the file is still there): `(axes, failed on, failures, last seen)`.
fn promoted_cases(site: &Site, store: &Store, probe: &str) -> Vec<serde_json::Value> {
    let Ok(paths) = store.probe_paths(probe) else {
        return Vec::new();
    };
    for path in paths {
        let file = site.project.rooted(std::path::PathBuf::from(&path));
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(p) = crate::probe::Probe::parse(&file, &text) else {
            continue;
        };
        return p
            .cases
            .iter()
            .map(|c| {
                json!({
                    "variant": short_id(&c.variant),
                    "axes": c.axes.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", "),
                    "failed_on": c.failed_on.join(", "),
                    "failures": c.failures,
                    "last_seen": c.last_seen,
                })
            })
            .collect();
    }
    Vec::new()
}

pub(super) fn family_page(
    site: &Site,
    run: &str,
    probe: &str,
    model: Option<&str>,
    links: &Links,
) -> Result<String, ViewError> {
    site.with_store(|store| {
        let info = run_of(store, run)?;
        let b = brittleness_of(site, store, &info)?;
        let of_probe: Vec<&ProbeBrittleness> = b.results.iter().filter(|p| p.probe == probe).collect();
        if of_probe.is_empty() {
            if info.probes.iter().any(|p| p == probe) {
                return Err(ViewError::NotFound(format!(
                    "no graded case of probe `{probe}` is stored in run `{run}` yet (status {})",
                    info.status.as_str()
                )));
            }
            return Err(ViewError::NotFound(format!("no probe `{probe}` in run `{run}`")));
        }
        let shown: Vec<&ProbeBrittleness> = match model {
            Some(m) => {
                let v: Vec<_> = of_probe.iter().copied().filter(|p| p.model == m).collect();
                if v.is_empty() {
                    return Err(ViewError::NotFound(format!("model `{m}` did not run probe `{probe}` in run `{run}`")));
                }
                v
            }
            None => of_probe.clone(),
        };
        render_page(
            site,
            "family.html",
            links,
            &format!("{probe} · {}", model.unwrap_or("every model")),
            json!({
                "run": run,
                "run_href": links.run(run, None),
                "probe": probe,
                "model": model,
                "models": of_probe.iter().map(|p| json!({"name": p.model, "href": links.family(run, probe, &p.model), "current": Some(p.model.as_str()) == model})).collect::<Vec<_>>(),
                "families": shown.iter().map(|p| family_json(links, run, p)).collect::<Vec<_>>(),
                "promoted": promoted_cases(site, store, probe),
            }),
        )
    })
}

/// The (probe, model) pairs of a run's brittleness analysis, for a bundle's family pages.
pub(in crate::view) fn families_of(
    site: &Site,
    run: &RunInfo,
) -> Result<Vec<(String, String)>, ViewError> {
    site.with_store(|store| {
        Ok(brittleness_of(site, store, run)?
            .results
            .iter()
            .map(|p| (p.probe.clone(), p.model.clone()))
            .collect())
    })
}
