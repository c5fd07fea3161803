//! The compare page (two sides, a run and a model each, variant by variant) and the diff page
//! (the two sides' answers to one variant and sample, line by line).

use super::case::{case_json, case_of};
use super::run_of;
use super::template::render_page;
use crate::domain::Tier;
use crate::report::short_id;
use crate::store::{CaseRecord, CompareQuery, Store};
use crate::view::links::{Links, Sides};
use crate::view::{PAGE_SIZE, SCAN_LIMIT, Site, ViewError};
use serde_json::json;

fn side_choices(store: &Store) -> Result<Vec<serde_json::Value>, ViewError> {
    Ok(store
        .runs()?
        .iter()
        .rev()
        .take(50)
        .map(|r| json!({"id": r.id, "models": r.models}))
        .collect())
}

pub(super) fn compare_page(
    site: &Site,
    sides: Option<&Sides>,
    changed: bool,
    after: Option<(String, u32)>,
    links: &Links,
) -> Result<String, ViewError> {
    site.with_store(|store| {
        let choices = side_choices(store)?;
        let Some(sides) = sides else {
            return render_page(
                site,
                "compare.html",
                links,
                "Compare",
                json!({"choices": choices, "sides": null}),
            );
        };
        for (run, model) in [(&sides.run_a, &sides.model_a), (&sides.run_b, &sides.model_b)] {
            let info = run_of(store, run)?;
            if !info.models.contains(model) {
                return Err(ViewError::NotFound(format!("run `{run}` has no model `{model}`")));
            }
        }
        let page = store.compare_cases(&CompareQuery {
            run_a: sides.run_a.clone(),
            model_a: sides.model_a.clone(),
            run_b: sides.run_b.clone(),
            model_b: sides.model_b.clone(),
            changed_only: changed,
            after: after.clone(),
            limit: PAGE_SIZE,
            scan: SCAN_LIMIT,
        })?;
        let base = links.compare(sides, changed).unwrap_or_default();
        let rows: Vec<_> = page
            .rows
            .iter()
            .map(|r| {
                json!({
                    "variant": short_id(&r.variant_id),
                    "sample": r.sample,
                    "probe": r.probe_id,
                    "tier": r.tier.map(Tier::as_str),
                    "axes": r.axes.iter().filter(|(_, v)| v.as_str() != crate::axes::ORIGINAL).map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", "),
                    "a": r.status_a.as_str(),
                    "b": r.status_b.as_str(),
                    "changed": r.status_a != r.status_b,
                    "a_href": links.case(&sides.run_a, &sides.model_a, &r.variant_id, r.sample),
                    "b_href": links.case(&sides.run_b, &sides.model_b, &r.variant_id, r.sample),
                    "diff": links.diff(sides, &r.variant_id, r.sample),
                })
            })
            .collect();
        let next = page.next.as_ref().map(|(v, s)| {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("after", &format!("{v}~{s}"))
                .finish();
            format!("{base}&{q}")
        });
        let label = |run: &str, model: &str| {
            if sides.run_a == sides.run_b {
                model.to_string()
            } else {
                format!("{model}@{run}")
            }
        };
        render_page(
            site,
            "compare.html",
            links,
            "Compare",
            json!({
                "choices": choices,
                "sides": {"a": sides.run_a, "am": sides.model_a, "b": sides.run_b, "bm": sides.model_b},
                "label_a": label(&sides.run_a, &sides.model_a),
                "label_b": label(&sides.run_b, &sides.model_b),
                "changed": changed,
                "toggle": links.compare(sides, !changed),
                "rows": rows,
                "next": next,
                "first": after.is_some().then_some(base.clone()),
                "scanned": page.scanned,
                "stopped_early": page.stopped_early,
            }),
        )
    })
}

pub(super) fn diff_page(
    site: &Site,
    sides: &Sides,
    variant: &str,
    sample: u32,
    links: &Links,
) -> Result<String, ViewError> {
    site.with_store(|store| {
        let a = case_of(store, &sides.run_a, &sides.model_a, variant, sample)?;
        let b = case_of(store, &sides.run_b, &sides.model_b, variant, sample)?;
        let (Some(a), Some(b)) = (a, b) else {
            return Err(ViewError::NotFound(format!(
                "variant `{variant}` sample {sample} was not run on both sides"
            )));
        };
        let v = store.variant_info(variant)?;
        let answer = |c: &CaseRecord| {
            let mut s = c.output.clone();
            for t in &c.tool_calls {
                s.push_str(&format!("\n[tool call] {}({})", t.function.name, t.function.arguments));
            }
            if let Some(e) = &c.error {
                s.push_str(&format!("\n[error] {e}"));
            }
            s
        };
        let lines = crate::view::diff::diff_lines(&answer(&a), &answer(&b));
        render_page(
            site,
            "diff.html",
            links,
            &format!("Diff · {}", short_id(variant)),
            json!({
                "variant": variant,
                "probe": v.as_ref().map(|v| v.probe_id.clone()),
                "axes": v.as_ref().map(|v| v.axes.iter().map(|(a, x)| format!("{a}={x}")).collect::<Vec<_>>().join(", ")),
                "sample": sample,
                "a": case_json(&a),
                "b": case_json(&b),
                "a_label": format!("{} @ {}", sides.model_a, sides.run_a),
                "b_label": format!("{} @ {}", sides.model_b, sides.run_b),
                "a_href": links.case(&sides.run_a, &sides.model_a, variant, sample),
                "b_href": links.case(&sides.run_b, &sides.model_b, variant, sample),
                "compare": links.compare(sides, true),
                "lines": lines,
                "identical": lines.iter().all(|l| l.op == "same"),
            }),
        )
    })
}
