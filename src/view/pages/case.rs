//! The case page: one case (answer, tool calls, check verdicts, trajectory), the other models'
//! answers to the same variant, and the conversation the model saw, re-rendered from the probe
//! file.

use super::run_of;
use super::template::render_page;
use crate::domain::Tier;
use crate::report::short_id;
use crate::store::{CaseRecord, Store};
use crate::view::links::{Links, Sides};
use crate::view::{Site, ViewError};
use serde_json::json;

pub(super) fn case_of(
    store: &Store,
    run: &str,
    model: &str,
    variant: &str,
    sample: u32,
) -> Result<Option<CaseRecord>, ViewError> {
    Ok(store
        .variant_cases(run, model, variant)?
        .into_iter()
        .find(|c| c.sample == sample))
}

pub(super) fn case_json(c: &CaseRecord) -> serde_json::Value {
    json!({
        "model": c.model,
        "sample": c.sample,
        "status": c.status.as_str(),
        "output": c.output,
        "tool_calls": c.tool_calls.iter().map(|t| json!({"name": t.function.name, "arguments": t.function.arguments, "id": t.id})).collect::<Vec<_>>(),
        "checks": c.checks.iter().map(|v| json!({
            "check": v.check,
            "verdict": match v.passed { Some(true) => "pass", Some(false) => "fail", None => "ungraded" },
            "reason": v.reason,
        })).collect::<Vec<_>>(),
        "latency": c.latency_ms,
        "input_tokens": c.input_tokens,
        "output_tokens": c.output_tokens,
        "cost": c.cost_usd.map(|x| format!("${x:.6}")),
        "error": c.error,
        "cached": c.cached,
        "attempts": c.attempts,
        "finish_reason": c.finish_reason,
        "finished_at": c.finished_at,
        "stop_reason": c.stop_reason.map(|s| s.as_str()),
        "trajectory": c.trajectory.as_ref().map(|t| t.steps.iter().enumerate().map(|(i, s)| json!({
            "step": i + 1,
            "text": s.text,
            "calls": s.tool_calls.iter().map(|t| json!({"name": t.function.name, "arguments": t.function.arguments, "id": t.id})).collect::<Vec<_>>(),
            "results": s.results.iter().map(|r| json!({"call_id": r.call_id, "tool": r.tool, "content": r.content, "source": r.source, "mutating": r.mutating})).collect::<Vec<_>>(),
            "tokens": s.input_tokens + s.output_tokens,
            "cached": s.cached,
        })).collect::<Vec<_>>()),
    })
}

/// The conversation the model saw for a variant: re-rendered from the probe file the run
/// recorded, when that file still holds the same probe version (its digest) and renders to the
/// same variant id; otherwise a sentence saying why it cannot be shown.
fn conversation(site: &Site, v: &crate::store::VariantInfo) -> Result<serde_json::Value, String> {
    let path = v
        .path
        .as_ref()
        .ok_or("the run did not record the probe file")?;
    let file = site.project.rooted(std::path::PathBuf::from(path));
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("the probe file {} cannot be read ({e})", file.display()))?;
    let probe = crate::probe::Probe::parse(&file, &text)
        .map_err(|e| format!("the probe file {} does not parse: {e}", file.display()))?;
    if probe.digest() != v.probe_digest {
        return Err(format!(
            "the probe file {} has changed since this run (digest {} now, {} then)",
            file.display(),
            short_id(&probe.digest()),
            short_id(&v.probe_digest)
        ));
    }
    let lib = site
        .library
        .get_or_init(|| {
            site.project
                .library()
                .map_err(|e| crate::view::chain_text(&e))
        })
        .as_ref()
        .map_err(|e| format!("the axis library cannot be loaded: {e}"))?;
    let x = crate::expand::ProbeExpansion::new(&probe, lib).map_err(|e| e.to_string())?;
    let variant = x
        .variant(crate::render::VariantAxes::from_map(&v.axes))
        .map_err(|e| e.to_string())?;
    if variant.variant != v.id {
        return Err(format!(
            "rendering the probe file now gives variant {} for these axes, not {}: the axis \
             library (templates/) has changed since this run",
            short_id(&variant.variant),
            short_id(&v.id)
        ));
    }
    Ok(json!({
        "messages": variant.request.messages.iter().map(|m| json!({
            "role": m.role,
            "content": m.content,
            "name": m.name,
            "tool_call_id": m.tool_call_id,
            "tool_calls": m.tool_calls.iter().map(|t| json!({"name": t.function.name, "arguments": t.function.arguments, "id": t.id})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "tools": variant.request.tools.iter().map(|t| serde_json::to_string_pretty(t).unwrap_or_default()).collect::<Vec<_>>(),
    }))
}

pub(super) fn case_page(
    site: &Site,
    run: &str,
    model: &str,
    variant: &str,
    sample: u32,
    links: &Links,
) -> Result<String, ViewError> {
    site.with_store(|store| {
        let info = run_of(store, run)?;
        let case = case_of(store, run, model, variant, sample)?.ok_or_else(|| {
            ViewError::NotFound(format!(
                "no case of model `{model}`, variant `{variant}`, sample {sample} in run `{run}`"
            ))
        })?;
        let v = store.variant_info(variant)?.ok_or_else(|| {
            ViewError::NotFound(format!("no variant `{variant}` in the store"))
        })?;
        let mut others = Vec::new();
        for m in info.models.iter().filter(|m| *m != model) {
            if let Some(c) = case_of(store, run, m, variant, sample)? {
                let sides = Sides {
                    run_a: run.to_string(),
                    model_a: model.to_string(),
                    run_b: run.to_string(),
                    model_b: m.clone(),
                };
                let mut j = case_json(&c);
                if let Some(o) = j.as_object_mut() {
                    o.insert("href".into(), json!(links.case(run, m, variant, sample)));
                    o.insert("diff".into(), json!(links.diff(&sides, variant, sample)));
                }
                others.push(j);
            }
        }
        let samples: Vec<_> = (0..info.repeats.max(1))
            .map(|s| json!({"n": s, "href": links.case(run, model, variant, s), "current": s == sample}))
            .collect();
        let (conv, conv_missing) = match conversation(site, &v) {
            Ok(c) => (Some(c), None),
            Err(why) => (None, Some(why)),
        };
        render_page(
            site,
            "case.html",
            links,
            &format!("{} · {model} · {}", v.probe_id, short_id(variant)),
            json!({
                "run": run,
                "run_href": links.run(run, None),
                "variant": v.id,
                "probe": v.probe_id,
                "family": links.family(run, &v.probe_id, model),
                "class": v.capability,
                "tier": v.tier.map(Tier::as_str),
                "canonical": v.canonical,
                "axes": v.axes.iter().map(|(a, x)| json!({"axis": a, "value": x})).collect::<Vec<_>>(),
                "case": case_json(&case),
                "samples": if info.repeats > 1 { samples } else { Vec::new() },
                "others": others,
                "conversation": conv,
                "conversation_missing": conv_missing,
            }),
        )
    })
}
