//! The runs page: every run with its counts per model and status, and the trend of one model
//! over the runs.

use super::template::render_page;
use super::{status_counts, status_index};
use crate::report::{html, rate_text};
use crate::store::{RunInfo, Store};
use crate::view::links::{CaseFilter, Links};
use crate::view::{Site, ViewError};
use indexmap::IndexMap;
use serde_json::json;

pub(in crate::view) fn runs_page(
    site: &Site,
    model: Option<&str>,
    links: &Links,
) -> Result<String, ViewError> {
    site.with_store(|store| {
        let mut runs = store.runs()?;
        // A bundle lists its own run, and draws the trend up to it: the runs before it and
        // that run (the later ones had not happened when it was the run under review).
        let trend_runs = match links {
            Links::Bundle { run, .. } => {
                let upto = runs.iter().position(|r| &r.id == run).map_or(0, |i| i + 1);
                let earlier = runs[..upto].to_vec();
                runs.retain(|r| &r.id == run);
                earlier
            }
            _ => runs.clone(),
        };
        let mut rows = Vec::new();
        let mut all_models: Vec<String> = Vec::new();
        for r in runs.iter().rev() {
            let counts = status_counts(site, store, &r.id)?;
            let mut per: IndexMap<&str, [u64; 4]> = IndexMap::new();
            for (m, s, n) in counts.iter() {
                per.entry(m.as_str()).or_default()[status_index(*s)] += n;
            }
            let generation = store.run_generation(&r.id)?;
            let gate = site
                .run_pages
                .peek(&(r.id.clone(), None, generation))
                .and_then(|s| s.gate.clone());
            for m in &r.models {
                if !all_models.contains(m) {
                    all_models.push(m.clone());
                }
            }
            rows.push(json!({
                "id": r.id,
                "href": links.run(&r.id, None),
                "cases_href": links.cases(&r.id, &CaseFilter::default()),
                "started": r.started_at,
                "finished": r.finished_at,
                "status": r.status.as_str(),
                "planned": r.planned,
                "note": r.note,
                "models": r.models.iter().map(|m| {
                    let c = per.get(m.as_str()).copied().unwrap_or_default();
                    json!({"name": m, "id": r.model_ids.get(m), "pass": c[0], "fail": c[1], "error": c[2], "ungraded": c[3]})
                }).collect::<Vec<_>>(),
                "stored": per.values().map(|c| c.iter().sum::<u64>()).sum::<u64>(),
                "gate": gate,
            }));
        }
        if let Some(m) = model
            && !all_models.iter().any(|x| x == m)
        {
            return Err(ViewError::BadRequest(format!(
                "query parameter `model`: `{m}` is not a model of any run ({})",
                all_models.join(", ")
            )));
        }
        // The trend's model: asked for, else the first configured model any run has.
        let focus = model.map(str::to_string).or_else(|| {
            site.project
                .config
                .models
                .keys()
                .find(|m| all_models.contains(m))
                .cloned()
                .or_else(|| all_models.first().cloned())
        });
        let trend = match &focus {
            Some(m) if !trend_runs.is_empty() => {
                let key: Vec<(String, Option<i64>)> = trend_runs
                    .iter()
                    .map(|r| Ok((r.id.clone(), store.run_generation(&r.id)?)))
                    .collect::<Result<_, crate::Error>>()?;
                let t = site.trends.get((m.clone(), key), || {
                    let points = trend_points(site, store, &trend_runs, m)?;
                    Ok(crate::analysis::Trend::new(
                        m.clone(),
                        points,
                        crate::analysis::trend::DEFAULT_WINDOW,
                    ))
                })?;
                Some(json!({
                    "model": m,
                    "svg": (!t.points.is_empty()).then(|| html::trend_chart(&t)),
                    "warning": t.warning.as_ref().map(|w| w.message.clone()),
                    "points": t.points.iter().rev().map(|p| json!({
                        "run": p.run_id,
                        "href": links.run(&p.run_id, None),
                        "aggregate": rate_text(&p.aggregate),
                        "hard": rate_text(&p.hard),
                        "gap": p.gap.map(|g| format!("{:.1} pts", 100.0 * g)),
                    })).collect::<Vec<_>>(),
                }))
            }
            _ => None,
        };
        let model_links: Vec<_> = all_models
            .iter()
            .map(|m| json!({"name": m, "href": links.runs_for_model(m), "current": Some(m) == focus.as_ref()}))
            .collect();
        render_page(
            site,
            "runs.html",
            links,
            "Runs",
            json!({"runs": rows, "trend": trend, "models": model_links, "store": crate::store::engine::redact(&site.store_path.display().to_string())}),
        )
    })
}

/// How many of the latest runs the server computes in the background from its start.
pub(in crate::view) const WARM_RUNS: usize = 3;

/// The trend points of `model` over `runs`. A run's point comes from its run page when that is
/// computed already, else from the run summary `report` keeps in the store, else from a walk
/// of the run (of that model only).
fn trend_points(
    site: &Site,
    store: &Store,
    runs: &[RunInfo],
    model: &str,
) -> Result<Vec<crate::analysis::TrendPoint>, ViewError> {
    let mut points = Vec::new();
    for run in runs.iter().filter(|r| r.models.iter().any(|m| m == model)) {
        let generation = store.run_generation(&run.id)?;
        if let Some(p) = site.run_pages.peek(&(run.id.clone(), None, generation))
            && let Some((_, aggregate, hard)) = p.trend.iter().find(|(m, _, _)| m == model)
        {
            points.push(crate::analysis::TrendPoint::new(
                run.id.clone(),
                run.started_at.clone(),
                *aggregate,
                *hard,
            ));
            continue;
        }
        points.extend(
            crate::report::build::trend_points(store, std::slice::from_ref(run), model, None)
                .map_err(|e| ViewError::Internal(crate::view::chain_text(&e)))?,
        );
    }
    Ok(points)
}
