//! The cases list of a run: filtered, one keyset page at a time (and a bundle's fixed list).

use super::run_of;
use super::template::render_page;
use crate::domain::Tier;
use crate::grade::CaseStatus;
use crate::report::short_id;
use crate::store::CaseQuery;
use crate::view::links::{CaseFilter, Links, key_text};
use crate::view::{PAGE_SIZE, SCAN_LIMIT, Site, ViewError};
use serde_json::json;

pub(super) fn cases_page(
    site: &Site,
    run: &str,
    f: &CaseFilter,
    links: &Links,
) -> Result<String, ViewError> {
    site.with_store(|store| {
        let info = run_of(store, run)?;
        let classes = store.classes_of(&info.probes)?;
        check_choice("model", f.model.as_deref(), &info.models, run)?;
        check_choice("class", f.class.as_deref(), &classes, run)?;
        check_choice("probe", f.probe.as_deref(), &info.probes, run)?;
        let q = CaseQuery {
            run: run.to_string(),
            model: f.model.clone(),
            tier: f.tier,
            class: f.class.clone(),
            probe: f.probe.clone(),
            axes: f.axes.clone(),
            status: f.status,
            failed_check: f.check.clone(),
            text: f.text.clone(),
            after: f.after.clone(),
            limit: PAGE_SIZE,
            scan: if links.is_bundle() { usize::MAX >> 1 } else { SCAN_LIMIT },
        };
        let page = store.list_cases(&q)?;
        let items: Vec<_> = page.items.iter().map(|c| case_item_json(links, run, c)).collect();
        let next = page.next.as_ref().and_then(|k| {
            links.cases(run, &CaseFilter { after: Some(k.clone()), ..f.clone() })
        });
        let first = f
            .after
            .is_some()
            .then(|| links.cases(run, &CaseFilter { after: None, ..f.clone() }))
            .flatten();
        render_page(
            site,
            "cases.html",
            links,
            &format!("Cases of {run}"),
            json!({
                "run": run,
                "run_href": links.run(run, None),
                "filter": {
                    "model": f.model, "tier": f.tier.map(Tier::as_str), "class": f.class, "probe": f.probe,
                    "axes": f.axes.iter().map(|(a, v)| format!("{a}:{v}")).collect::<Vec<_>>(),
                    "status": f.status.map(CaseStatus::as_str), "check": f.check, "q": f.text,
                    "active": !f.is_unfiltered(),
                },
                "choices": {
                    "models": info.models,
                    "tiers": Tier::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                    "classes": classes,
                    "probes": info.probes,
                    "statuses": ["pass", "fail", "error", "ungraded"],
                },
                "items": items,
                "next": next,
                "first": first,
                "scanned": page.scanned,
                "stopped_early": page.stopped_early,
                "after": f.after.as_ref().map(key_text),
                "form": !links.is_bundle(),
            }),
        )
    })
}

/// A filter that names a model, class or probe the run does not have is a bad request, not an
/// empty list: the form could not show it as selected, so a refresh would silently drop it.
fn check_choice(
    param: &str,
    value: Option<&str>,
    choices: &[String],
    run: &str,
) -> Result<(), ViewError> {
    match value {
        Some(v) if !choices.iter().any(|c| c == v) => Err(ViewError::BadRequest(format!(
            "query parameter `{param}`: `{v}` is not a {param} of run `{run}` ({})",
            choices.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// One row of a cases list.
fn case_item_json(links: &Links, run: &str, c: &crate::store::CaseListItem) -> serde_json::Value {
    json!({
        "href": links.case(run, &c.key.model, &c.key.variant_id, c.key.sample),
        "variant": short_id(&c.key.variant_id),
        "model": c.key.model,
        "sample": c.key.sample,
        "status": c.status.as_str(),
        "probe": c.probe_id,
        "family": links.family(run, &c.probe_id, &c.key.model),
        "tier": c.tier.as_str(),
        "class": c.capability,
        "canonical": c.canonical,
        "axes": c.axes.iter().filter(|(_, v)| v.as_str() != crate::axes::ORIGINAL).map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", "),
        "failed": c.failed_checks.join(", "),
        "excerpt": c.error.clone().unwrap_or_else(|| c.excerpt.clone()),
        "latency": c.latency_ms,
    })
}

/// The cases page of a bundle: the given cases (those the bundle holds pages for), without
/// the filter form.
pub(in crate::view) fn bundle_cases_page(
    site: &Site,
    run: &str,
    items: &[crate::store::CaseListItem],
    note: &str,
    links: &Links,
) -> Result<String, ViewError> {
    render_page(
        site,
        "cases.html",
        links,
        &format!("Cases of {run}"),
        json!({
            "run": run,
            "run_href": links.run(run, None),
            "filter": {"active": false},
            "items": items.iter().map(|c| case_item_json(links, run, c)).collect::<Vec<_>>(),
            "note": note,
            "form": false,
        }),
    )
}
