//! The `shrink` command: the minimal cause of a failing variant, by asking the model.
//!
//! Starts from a failing variant (`--variant ID`, else the minimal failing variant of the probe
//! × model in a run), and runs [`crate::shrink::shrink`] with an oracle that renders the variant
//! with only some axes changed, calls the model (sequentially, with the sweep's retry rules:
//! 429s wait, transient faults back off, at most `max_retries`), and grades the answer the way
//! the sweep does: the probe's checks; each `judge` check by asking the `[judge]` model the
//! request of [`crate::judge::judge_request`] (a reply without a verdict is asked again, up to
//! [`crate::sweep::JUDGE_REPLY_ATTEMPTS`]; no verdict makes the sample an error); and, for an
//! `invariant: true` probe, the answer key ([`crate::invariant::answer_key`]) against the
//! canonical's answer key of the same sample (the canonical is always asked first; a sample
//! whose canonical answer errored cannot be compared and counts as an error, never a pass).
//! Answers and judge replies come from, and go to, the response cache under the sweep's own
//! cache keys, so configurations the sweep already ran (and judged) cost nothing and a second
//! shrink makes no call.
//! Nothing random is drawn: each variant renders with the seed derived from its id (listed per
//! configuration in the JSON output).
//!
//! Exit status: 0 when the search concluded (a minimal cause, a broken probe, a failure that
//! did not reproduce); 1 when errors left the canonical or the start unresolved; 2 bad input.

use crate::axes::{AxisName, ORIGINAL};
use crate::brittleness::{self, Filter};
use crate::chat::{ChatRequest, ChatResponse};
use crate::check::Check;
use crate::cli::Project;
use crate::cli_brittle::{axes_text, right, table};
use crate::error::Error;
use crate::expand::{AxisFilter, ProbeExpansion, variant_id, variant_seed};
use crate::grade::{self, CaseStatus};
use crate::probe::{self, Probe};
use crate::promote::{self, Candidate};
use crate::provider::Provider;
use crate::render::VariantAxes;
use crate::shrink::{self, Outcome, Verdict};
use crate::store::{Store, WriteOp};
use crate::term::sanitize;
use anyhow::Result;
use comfy_table::Cell;
use indexmap::IndexMap;
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `shrink` options.
#[derive(Debug, clap::Args)]
pub struct ShrinkArgs {
    /// Probe id (or a probe file).
    pub probe: String,
    /// The model (a name from cliffprobe.toml).
    #[arg(long)]
    pub model: String,
    /// Run to take the starting variant from (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
    /// Start from this failing variant (an id of the probe's current content) instead.
    #[arg(long, conflicts_with = "run")]
    pub variant: Option<String>,
    /// Samples per configuration; a configuration fails when a strict majority fails.
    #[arg(long, default_value_t = 1)]
    pub repeats: u32,
    /// text or json.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Write the minimal failing variant into the probe file as a promoted case.
    #[arg(long)]
    pub promote: bool,
    /// No progress lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
    /// Probe files or folders to look in (default: the suite).
    #[arg(long = "suite", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Most samples per configuration.
const MAX_REPEATS: u32 = 100;
/// Most 429s waited out for one sample before it is an error.
const MAX_RATE_LIMITS: u32 = 30;

/// One configuration as asked: what the JSON output lists.
#[derive(Debug, Clone, Serialize)]
struct Asked {
    variant: String,
    axes: IndexMap<String, String>,
    canonical: bool,
    /// The render seed (derived from the variant id).
    seed: u64,
    outcome: Outcome,
    passed: u32,
    failed: u32,
    errors: u32,
    /// Samples answered from the response cache.
    cached: u32,
    /// HTTP attempts made for it (retries included).
    calls: u32,
    /// Judge verdicts read from the response cache (probes with `judge` checks).
    #[serde(skip_serializing_if = "is_zero")]
    judge_cached: u32,
    /// HTTP attempts made to the judge model (retries and re-asks included).
    #[serde(skip_serializing_if = "is_zero")]
    judge_calls: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip)]
    reason: Option<String>,
    #[serde(skip)]
    excerpt: Option<String>,
}

#[derive(Debug, Serialize)]
struct Start {
    variant: String,
    axes: IndexMap<String, String>,
    /// Where it came from: `--variant`, or `run <id>`.
    from: String,
}

#[derive(Debug, Serialize)]
struct MinimalOut {
    variant: String,
    axes: IndexMap<String, String>,
    one_minimal: bool,
    /// Changes whose removal could not be tested (errors).
    unresolved_without: IndexMap<String, String>,
}

#[derive(Debug, Serialize)]
struct Report {
    probe: String,
    model: String,
    run: Option<String>,
    start: Start,
    repeats: u32,
    verdict: &'static str,
    message: String,
    minimal: Option<MinimalOut>,
    tested: Vec<Asked>,
    calls: u64,
    cache_hits: u64,
    /// The `[judge]` model, when the probe has `judge` checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    judge: Option<String>,
    /// The judge is the built-in mock: simulated verdicts, no calls.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    judge_mock: bool,
    #[serde(skip_serializing_if = "is_zero64")]
    judge_calls: u64,
    #[serde(skip_serializing_if = "is_zero64")]
    judge_cache_hits: u64,
    /// True for an `invariant: true` probe (each configuration is compared with the canonical).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    invariant: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    promoted: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero64(n: &u64) -> bool {
    *n == 0
}

/// How one configuration's answers are graded beyond the probe's own checks: the judge model
/// (for `judge` checks) and invariance against the canonical (for `invariant: true` probes).
struct Grading {
    judge: Option<JudgeSide>,
    /// `Some(answer_pattern)` for an invariant probe.
    invariant: Option<Option<regex::Regex>>,
    /// The canonical's answer key per sample (`None`: that sample errored), once asked.
    canonical_keys: Vec<Option<String>>,
}

/// The `[judge]` model as shrink calls it: sequentially, with the sweep's cache keys.
struct JudgeSide {
    name: String,
    provider: Provider,
    prompt: Option<String>,
    max_retries: u32,
}

/// Finds a probe by id in the suite (or loads it from a file path): its file, text and content.
pub(crate) fn find_probe(
    project: &Project,
    probe: &str,
    paths: &[PathBuf],
) -> Result<(PathBuf, String, Probe)> {
    let as_path = PathBuf::from(probe);
    if as_path.is_file() {
        let text = std::fs::read_to_string(&as_path).map_err(|e| Error::io(&as_path, e))?;
        let p = Probe::parse(&as_path, &text)?;
        return Ok((as_path, text, p));
    }
    for f in project.probe_files(paths)? {
        let text = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
        let p = Probe::parse(&f, &text)?;
        if p.id == probe {
            return Ok((f, text, p));
        }
    }
    Err(Error::field(
        "<command line>",
        "PROBE",
        format!("no probe `{probe}` in {}", project.suite().display()),
    )
    .into())
}

/// Runs `cliffprobe shrink`.
pub fn shrink_cmd(project: &Project, a: &ShrinkArgs) -> Result<ExitCode> {
    let cmdline = "<command line>";
    let json = crate::cli::wants_json(&a.format)?;
    if a.repeats == 0 || a.repeats > MAX_REPEATS {
        return Err(Error::field(
            cmdline,
            "--repeats",
            format!("must be between 1 and {MAX_REPEATS}"),
        )
        .into());
    }
    let Some(cfg) = project.config.models.get(&a.model) else {
        return Err(Error::field(
            cmdline,
            "--model",
            format!(
                "no model `{}` in the configuration; configured: {}",
                a.model,
                project
                    .config
                    .models
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into());
    };
    let (path, _, probe) = find_probe(project, &a.probe, &a.paths)?;
    crate::provider::install_crypto_provider();
    let mut grading = grading(project, &path, &probe)?;
    let lib = project.library()?;
    let x = ProbeExpansion::new(&probe, &lib)?;
    // Not `open_store`: shrink --variant needs no earlier sweep, and it caches what it asks.
    let mut store = Store::open_url(&a.store.clone().unwrap_or_else(|| project.store_url()))?;

    // The starting variant.
    let (start_axes, from, run_id) = match &a.variant {
        Some(id) => (
            find_variant(&probe, &lib, x.digest(), id)?,
            "--variant".to_string(),
            None,
        ),
        None => {
            let (axes, run) = run_minimal_failing(&store, a, &probe.id)?;
            (axes, format!("run {run}"), Some(run))
        }
    };
    let changes: Vec<(AxisName, String)> = AxisName::ALL
        .iter()
        .filter(|ax| start_axes.get(**ax) != ORIGINAL)
        .map(|ax| (*ax, start_axes.get(*ax).to_string()))
        .collect();
    if changes.is_empty() {
        return Err(Error::field(
            cmdline,
            "--variant",
            "is the canonical variant: nothing to shrink (a failing canonical means the probe is \
             broken, not brittle)",
        )
        .into());
    }

    crate::provider::install_crypto_provider();
    let provider = Provider::new(&a.model, cfg)?;
    let max_retries = cfg.max_retries.unwrap_or(4);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("tokio runtime: {e}")))?;

    let mut asked: Vec<Asked> = Vec::new();
    let mut fatal: Option<anyhow::Error> = None;
    let oracle = |cfg: &[(AxisName, String)]| -> Outcome {
        if fatal.is_some() {
            return Outcome::Unresolved;
        }
        let mut axes = VariantAxes::default();
        for (ax, v) in cfg {
            axes.set(*ax, v.clone());
        }
        match ask(
            &x,
            &provider,
            &mut store,
            &rt,
            axes,
            a.repeats,
            max_retries,
            &probe,
            &mut grading,
        ) {
            Ok(r) => {
                if !a.quiet {
                    // One line per configuration: shrink is short, sequential work.
                    eprintln!(
                        "shrink: {} [{}]: {} ({}{})",
                        asked.len() + 1,
                        axes_text(&r.axes),
                        r.outcome.as_str(),
                        if r.calls == 0 {
                            "cache".to_string()
                        } else {
                            format!("{} call{}", r.calls, plural(r.calls))
                        },
                        if r.judge_calls > 0 {
                            format!(", {} judge call{}", r.judge_calls, plural(r.judge_calls))
                        } else {
                            String::new()
                        }
                    );
                }
                let o = r.outcome;
                asked.push(r);
                o
            }
            Err(e) => {
                fatal = Some(e);
                Outcome::Unresolved
            }
        }
    };
    let s = shrink::shrink(&changes, oracle);
    if let Some(e) = fatal {
        return Err(e);
    }

    let by_changes = |idx: &[usize]| -> IndexMap<String, String> {
        idx.iter()
            .map(|&i| (changes[i].0.as_str().to_string(), changes[i].1.clone()))
            .collect()
    };
    let find = |idx: &[usize]| -> &Asked {
        let pos = s
            .tested
            .iter()
            .position(|t| t.changes == idx)
            .expect("every minimal set was asked");
        &asked[pos]
    };
    let model = sanitize(&a.model);
    let (verdict, message, minimal, code) = match &s.verdict {
        Verdict::CanonicalFails => (
            "canonical-fails",
            format!(
                "the canonical variant fails on {model}: probe {} is broken (or its checks are \
                 wrong), not brittle; nothing to shrink",
                probe.id
            ),
            None,
            ExitCode::SUCCESS,
        ),
        Verdict::CanonicalUnresolved => (
            "canonical-unresolved",
            format!(
                "unresolved: the canonical variant's calls errored on {model} ({}); nothing \
                 concluded",
                asked[0].error.as_deref().unwrap_or("error")
            ),
            None,
            ExitCode::FAILURE,
        ),
        Verdict::NotReproduced => (
            "not-reproduced",
            format!(
                "the start variant passed on {model} when asked: no failure to shrink (a flaky \
                 one? try --repeats 5)"
            ),
            None,
            ExitCode::SUCCESS,
        ),
        Verdict::StartUnresolved => (
            "start-unresolved",
            format!(
                "unresolved: the start variant's calls errored on {model} ({}); nothing concluded",
                asked[1].error.as_deref().unwrap_or("error")
            ),
            None,
            ExitCode::FAILURE,
        ),
        Verdict::Minimal(m) => {
            let axes = by_changes(&m.changes);
            let hit = find(&m.changes);
            let mut message = describe(&axes);
            if !m.one_minimal {
                message += &format!(
                    "; not proven minimal: without {} it could not be tested (errors)",
                    axes_text(&by_changes(&m.unresolved_removals)).replace(", ", " or without ")
                );
            }
            (
                "minimal",
                message,
                Some(MinimalOut {
                    variant: hit.variant.clone(),
                    axes,
                    one_minimal: m.one_minimal,
                    unresolved_without: by_changes(&m.unresolved_removals),
                }),
                ExitCode::SUCCESS,
            )
        }
    };

    let promoted = match (&minimal, a.promote) {
        (Some(m), true) => Some(promote_minimal(
            &path,
            &probe,
            &a.model,
            m,
            find_asked(&asked, &m.variant),
        )?),
        _ => None,
    };
    let report = Report {
        probe: probe.id.clone(),
        model: a.model.clone(),
        run: run_id,
        start: Start {
            variant: variant_id(x.digest(), &start_axes),
            axes: by_changes(&(0..changes.len()).collect::<Vec<_>>()),
            from,
        },
        repeats: a.repeats,
        verdict,
        message,
        minimal,
        calls: asked.iter().map(|q| u64::from(q.calls)).sum(),
        cache_hits: asked.iter().map(|q| u64::from(q.cached)).sum(),
        judge: grading.judge.as_ref().map(|j| j.name.clone()),
        judge_mock: grading
            .judge
            .as_ref()
            .is_some_and(|j| j.provider.kind() == crate::config::ProviderKind::Mock),
        judge_calls: asked.iter().map(|q| u64::from(q.judge_calls)).sum(),
        judge_cache_hits: asked.iter().map(|q| u64::from(q.judge_cached)).sum(),
        invariant: grading.invariant.is_some(),
        tested: asked,
        promoted,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &report)?;
    }
    out.flush()?;
    Ok(code)
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// What grading needs beyond the checks: the `[judge]` model when the probe has `judge`
/// checks (refused like the sweep refuses it when `cliffprobe.toml` has no `[judge]`), and the
/// answer pattern of an invariant probe.
fn grading(project: &Project, path: &std::path::Path, probe: &Probe) -> Result<Grading> {
    let lp = [probe::LoadedProbe {
        path: path.to_path_buf(),
        probe: probe.clone(),
    }];
    crate::sweep::check_judge(&project.config, &lp)?;
    let has_judge = probe.checks.iter().any(|c| matches!(c, Check::Judge(_)));
    let judge = match (&project.config.judge, has_judge) {
        (Some(j), true) => {
            // The configuration was validated: `judge.model` names a configured model.
            let Some(m) = project.config.models.get(&j.model) else {
                return Err(
                    Error::Other(format!("judge model `{}` not configured", j.model)).into(),
                );
            };
            Some(JudgeSide {
                name: j.model.clone(),
                provider: Provider::new(&j.model, m)?,
                prompt: j.prompt.clone(),
                max_retries: m.max_retries.unwrap_or(4),
            })
        }
        _ => None,
    };
    Ok(Grading {
        judge,
        invariant: crate::invariant::InvariantProbe::of(probe).map(|p| p.answer_pattern),
        canonical_keys: Vec::new(),
    })
}

fn find_asked<'a>(asked: &'a [Asked], variant: &str) -> &'a Asked {
    asked
        .iter()
        .find(|q| q.variant == variant)
        .expect("the minimal variant was asked")
}

/// "fails when format=xml alone" / "… and … together; each alone passes".
fn describe(axes: &IndexMap<String, String>) -> String {
    let parts: Vec<String> = axes
        .iter()
        .map(|(a, v)| sanitize(&format!("{a}={v}")))
        .collect();
    match parts.len() {
        1 => format!("fails when {} alone", parts[0]),
        2 => format!(
            "fails when {} and {} together; each alone passes",
            parts[0], parts[1]
        ),
        n => format!(
            "fails when {} and {} together; without any one of them it passes",
            parts[..n - 1].join(", "),
            parts[n - 1]
        ),
    }
}

/// The axes of variant `id` of the probe's current content (every point of the full design is
/// hashed until one matches: a few thousand blake3 hashes at most).
fn find_variant(
    probe: &Probe,
    lib: &crate::axes::AxisLibrary,
    digest: &str,
    id: &str,
) -> Result<VariantAxes> {
    let values = crate::expand::axis_values(probe, lib, &AxisFilter::default())?;
    let sizes: Vec<usize> = values.iter().map(|(_, v)| v.len()).collect();
    let mut idx = vec![0usize; values.len()];
    loop {
        let mut axes = VariantAxes::default();
        for (k, (ax, vals)) in values.iter().enumerate() {
            axes.set(*ax, vals[idx[k]].clone());
        }
        if variant_id(digest, &axes) == id {
            return Ok(axes);
        }
        // Next point (odometer).
        let mut k = 0;
        loop {
            if k == idx.len() {
                return Err(Error::field(
                    "<command line>",
                    "--variant",
                    format!(
                        "no variant `{id}` of probe {} as it is now (variant ids change when a \
                         probe is edited; `cliffprobe expand` lists the current ones)",
                        probe.id
                    ),
                )
                .into());
            }
            idx[k] += 1;
            if idx[k] < sizes[k] {
                break;
            }
            idx[k] = 0;
            k += 1;
        }
    }
}

/// The minimal failing variant of the probe × model in the run, and the run id.
fn run_minimal_failing(
    store: &Store,
    a: &ShrinkArgs,
    probe: &str,
) -> Result<(VariantAxes, String)> {
    let run = store.resolve_run(a.run.as_deref())?;
    if !run.models.contains(&a.model) {
        return Err(Error::field(
            "<command line>",
            "--model",
            format!(
                "run {} has no model `{}`; its models are {}",
                run.id,
                a.model,
                run.models.join(", ")
            ),
        )
        .into());
    }
    let b = brittleness::analyze(
        store,
        &run,
        &Filter {
            probe: Some(probe.to_string()),
            model: Some(a.model.clone()),
        },
    )?;
    let Some(r) = b
        .results
        .iter()
        .find(|r| r.probe == probe && r.model == a.model)
    else {
        return Err(Error::Refused(format!(
            "run {} has no cases of probe {} on model {}",
            run.id, probe, a.model
        ))
        .into());
    };
    match &r.minimal_failing {
        Some(m) => Ok((VariantAxes::from_map(m), run.id.clone())),
        None => Err(Error::Refused(format!(
            "run {}: no variant of probe {} failed on model {} (label {}{}); nothing to shrink \
             (pass --variant ID to start from a variant of your choice)",
            run.id,
            probe,
            a.model,
            r.label.as_str(),
            if r.canonical_passed == Some(false) {
                ", and the canonical fails: the probe is broken, not brittle"
            } else {
                ""
            }
        ))
        .into()),
    }
}

/// Renders one configuration, runs its samples (cache first), grades them (checks, judge,
/// invariance: see the module docs).
#[allow(clippy::too_many_arguments)]
fn ask(
    x: &ProbeExpansion<'_>,
    provider: &Provider,
    store: &mut Store,
    rt: &tokio::runtime::Runtime,
    axes: VariantAxes,
    repeats: u32,
    max_retries: u32,
    probe: &Probe,
    grading: &mut Grading,
) -> Result<Asked> {
    let v = x.variant(axes)?;
    let mock = provider.kind() == crate::config::ProviderKind::Mock;
    let body = if mock {
        bytes::Bytes::new()
    } else {
        provider.encode(&v.request)
    };
    let mut q = Asked {
        seed: variant_seed(&v.variant),
        variant: v.variant.clone(),
        axes: v
            .axes
            .to_map()
            .into_iter()
            .filter(|(_, x)| x != ORIGINAL)
            .collect(),
        canonical: v.canonical,
        outcome: Outcome::Unresolved,
        passed: 0,
        failed: 0,
        errors: 0,
        cached: 0,
        calls: 0,
        judge_cached: 0,
        judge_calls: 0,
        error: None,
        reason: None,
        excerpt: None,
    };
    if v.canonical {
        grading.canonical_keys = vec![None; repeats as usize];
    }
    // An episode probe's samples are episodes, run step by step as the sweep runs them.
    let sim = probe.episode.clone().map(|e| {
        std::sync::Arc::new(
            crate::episode::simulator_for(
                &probe.id,
                std::sync::Arc::new(probe.slots.tool_outputs.clone()),
                std::sync::Arc::new(e),
                &v.request,
                x.library(),
                &v.axes,
            )
            .with_aliases(v.added_tools.clone()),
        )
    });
    for sample in 0..repeats {
        let mut episode = None;
        if let Some(sim) = &sim {
            let mut run = crate::episode::EpisodeRun::new(v.request.clone(), sim.clone());
            while let Some(req) = run.next_request() {
                let req = req.clone();
                let step = run.trajectory().steps.len() + 1;
                let body = if mock {
                    bytes::Bytes::new()
                } else {
                    provider.encode(&req)
                };
                let key = crate::sweep::cache_key(provider, &body, sample);
                if let Some(r) = (!mock)
                    .then(|| store.cache_get(&key))
                    .transpose()?
                    .flatten()
                {
                    run.feed(r, true);
                    continue;
                }
                let (r, attempts) = if mock {
                    let ask = crate::call::Ask::AgentStep {
                        checks: &probe.checks,
                        sample,
                    };
                    let r = rt.block_on(crate::call::attempt(
                        provider,
                        &bytes::Bytes::new(),
                        &req,
                        ask,
                    ));
                    (r.map_err(|e| e.to_string()), 1)
                } else {
                    rt.block_on(call_with_retries(
                        provider,
                        &body,
                        &req,
                        crate::call::Ask::AgentStep {
                            checks: &probe.checks,
                            sample,
                        },
                        max_retries,
                    ))
                };
                q.calls += attempts;
                match r {
                    Ok(resp) => {
                        if !mock {
                            store.write_batch(&[WriteOp::Cache {
                                key,
                                response: resp.clone(),
                            }])?;
                        }
                        run.feed(resp, false);
                    }
                    Err(e) => run.fail(format!("step {step}: {e}")),
                }
            }
            if run.fresh_steps() == 0 {
                q.cached += 1;
            }
            episode = Some(run);
        }
        let key = crate::sweep::cache_key(provider, &body, sample);
        let resp = if let Some(run) = &episode {
            match run.stop() {
                Some(stop) if stop.reason == crate::episode::StopReason::Error => {
                    Err(stop.detail.clone())
                }
                _ => Ok(run.final_response()),
            }
        } else {
            match (!mock)
                .then(|| store.cache_get(&key))
                .transpose()?
                .flatten()
            {
                Some(r) => {
                    q.cached += 1;
                    Ok(r)
                }
                None => {
                    let (r, attempts) = rt.block_on(call_with_retries(
                        provider,
                        &body,
                        &v.request,
                        crate::call::Ask::Answer {
                            checks: &probe.checks,
                            sample,
                        },
                        max_retries,
                    ));
                    q.calls += attempts;
                    if let Ok(resp) = &r
                        && !mock
                    {
                        store.write_batch(&[WriteOp::Cache {
                            key,
                            response: resp.clone(),
                        }])?;
                    }
                    r
                }
            }
        };
        let resp = match resp {
            Ok(resp) => resp,
            Err(e) => {
                q.errors += 1;
                q.error.get_or_insert_with(|| sanitize(&e));
                continue;
            }
        };
        let (mut status, mut verdicts) = match &episode {
            Some(run) => match run.stop() {
                Some(stop) => crate::episode::run::grade(&probe.checks, run.trajectory(), stop),
                None => grade::grade(&probe.checks, &resp),
            },
            None => grade::grade(&probe.checks, &resp),
        };
        if let Some(j) = &grading.judge {
            // As the sweep does: the judge reads the answer's text and tool calls only (an
            // episode's whole trajectory).
            let answer = match &episode {
                Some(run) => run.judge_view(),
                None => ChatResponse {
                    text: resp.text.clone(),
                    tool_calls: resp.tool_calls.clone(),
                    ..Default::default()
                },
            };
            let mut judge_error = None;
            for (i, c) in probe.checks.iter().enumerate() {
                let Check::Judge(jc) = c else { continue };
                let req = crate::judge::judge_request(
                    j.prompt.as_deref(),
                    &jc.rubric,
                    &v.request,
                    &answer,
                );
                match judge_one(j, store, rt, &req, &mut q)? {
                    Ok(jv) => {
                        verdicts[i] = grade::CheckVerdict {
                            check: c.kind().to_string(),
                            passed: Some(jv.passed),
                            reason: jv.reason,
                        };
                    }
                    Err(e) => {
                        judge_error = Some(format!("judge: {e}"));
                        break;
                    }
                }
            }
            if let Some(e) = judge_error {
                // The answer arrived but could not be graded: an error, never a pass or a
                // fail (and, for the canonical, no reference to compare with).
                q.errors += 1;
                q.error
                    .get_or_insert_with(|| format!("sample {sample}: {}", sanitize(&e)));
                continue;
            }
            status = grade::fold_status(&verdicts);
        }
        if let Some(pattern) = &grading.invariant {
            let k = crate::invariant::answer_key(&resp.text, &resp.tool_calls, pattern.as_ref());
            if v.canonical {
                verdicts.push(crate::invariant::reference());
                grading.canonical_keys[sample as usize] = Some(k);
            } else {
                let canonical = grading
                    .canonical_keys
                    .get(sample as usize)
                    .cloned()
                    .flatten();
                verdicts.push(crate::invariant::compare(&k, canonical.as_deref()));
            }
            status = grade::fold_status(&verdicts);
        }
        match status {
            CaseStatus::Pass => q.passed += 1,
            CaseStatus::Fail => {
                q.failed += 1;
                if q.reason.is_none() {
                    let mut reasons: Vec<&str> = Vec::new();
                    for c in &verdicts {
                        if c.passed == Some(false) && !reasons.contains(&c.reason.as_str()) {
                            reasons.push(&c.reason);
                        }
                    }
                    q.reason = Some(grade::excerpt(&sanitize(&reasons.join("; ")), 400));
                    q.excerpt = Some(grade::excerpt(
                        &sanitize(&resp.text),
                        promote::EXCERPT_CHARS,
                    ))
                    .filter(|e| !e.trim().is_empty());
                }
            }
            CaseStatus::Error | CaseStatus::Ungraded => {
                q.errors += 1;
                let why = verdicts
                    .iter()
                    .find(|c| c.passed.is_none())
                    .map(|c| format!("{}: {}", c.check, c.reason))
                    .unwrap_or_else(|| status.as_str().to_string());
                q.error
                    .get_or_insert_with(|| format!("sample {sample}: {}", sanitize(&why)));
            }
        }
    }
    q.outcome = Outcome::of_samples(q.passed, q.failed, q.errors);
    Ok(q)
}

/// One judge verdict, as the sweep gets it: the mock judge offline; else the response cache
/// (the sweep's key: judge provider, endpoint, model id, encoded judge request, sample 0), else
/// the judge model with the retry rules of [`call_with_retries`], re-asked when its reply holds
/// no verdict, at most [`crate::sweep::JUDGE_REPLY_ATTEMPTS`] replies. A reply with a verdict
/// is cached. The outer `Err` is a store failure; the inner one why no verdict could be had.
fn judge_one(
    j: &JudgeSide,
    store: &mut Store,
    rt: &tokio::runtime::Runtime,
    req: &ChatRequest,
    q: &mut Asked,
) -> Result<std::result::Result<crate::judge::JudgeVerdict, String>> {
    if j.provider.kind() == crate::config::ProviderKind::Mock {
        let ask = crate::call::Ask::Judge;
        return Ok(rt
            .block_on(crate::call::attempt(
                &j.provider,
                &bytes::Bytes::new(),
                req,
                ask,
            ))
            .map_err(|e| e.to_string())
            .and_then(|r| crate::judge::parse_verdict(&r.text)));
    }
    let body = j.provider.encode(req);
    let key = crate::sweep::cache_key(&j.provider, &body, 0);
    if let Some(r) = store.cache_get(&key)?
        && let Ok(v) = crate::judge::parse_verdict(&r.text)
    {
        q.judge_cached += 1;
        return Ok(Ok(v));
    }
    let mut last = String::new();
    for _ in 0..crate::sweep::JUDGE_REPLY_ATTEMPTS {
        let (r, attempts) = rt.block_on(call_with_retries(
            &j.provider,
            &body,
            req,
            crate::call::Ask::Judge,
            j.max_retries,
        ));
        q.judge_calls += attempts;
        let r = match r {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        match crate::judge::parse_verdict(&r.text) {
            Ok(v) => {
                store.write_batch(&[WriteOp::Cache { key, response: r }])?;
                return Ok(Ok(v));
            }
            Err(e) => last = e,
        }
    }
    Ok(Err(format!(
        "{last} (after {} replies)",
        crate::sweep::JUDGE_REPLY_ATTEMPTS
    )))
}

/// One sample, with the sweep's retry rules: a 429 waits as the server says (at most
/// [`MAX_RATE_LIMITS`] times, at most 120 s each), a transient fault backs off with the sweep's
/// jittered backoff (at most `max_retries` times), a permanent one is an error at once.
async fn call_with_retries(
    provider: &Provider,
    body: &bytes::Bytes,
    req: &crate::chat::ChatRequest,
    ask: crate::call::Ask<'_>,
    max_retries: u32,
) -> (std::result::Result<crate::chat::ChatResponse, String>, u32) {
    let policy = crate::call::RetryPolicy {
        max_retries,
        max_rate_limits: MAX_RATE_LIMITS,
        // Bounded by the count alone, not by the sweep's total patience.
        patience: Duration::MAX,
        ..crate::call::RetryPolicy::default()
    };
    let c = crate::call::with_retries(provider, body, req, ask, &policy, &mut crate::call::Unpaced)
        .await;
    let attempts = c.attempts;
    (c.into_result(), attempts)
}

/// Writes the minimal failing variant into the probe file as a promoted case (merge rules and
/// atomic write of [`crate::promote`]). Returns what happened, for the output.
fn promote_minimal(
    path: &std::path::Path,
    probe: &Probe,
    model: &str,
    m: &MinimalOut,
    hit: &Asked,
) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let current = Probe::parse(path, &text)?;
    if current.digest() != probe.digest() {
        return Err(Error::Refused(format!(
            "{} changed while shrinking; not promoted (run shrink again)",
            path.display()
        ))
        .into());
    }
    let cand = Candidate {
        probe: probe.id.clone(),
        variant: m.variant.clone(),
        axes: VariantAxes::from_map(&m.axes).to_map(),
        failed_on: BTreeSet::from([model.to_string()]),
        failures: u64::from(hit.failed),
        reason: hit.reason.clone().filter(|r| !r.trim().is_empty()),
        excerpt: hit.excerpt.clone(),
    };
    let (cases, stats) = promote::merge(
        &current.cases,
        [&cand],
        &crate::sweep::now(),
        promote::DEFAULT_CAP,
    );
    if cases == current.cases {
        return Ok(format!("{}: unchanged", path.display()));
    }
    let mut q = current.clone();
    q.cases = cases;
    let yaml = q.to_yaml();
    Probe::parse(path, &yaml).map_err(|e| {
        Error::Other(format!(
            "the promoted probe {} would not load back (a bug: please report it): {e}",
            path.display()
        ))
    })?;
    probe::write_atomic(path, &yaml)?;
    Ok(format!(
        "{}: {} new, {} updated, {} evicted",
        path.display(),
        stats.added.len(),
        stats.updated.len(),
        stats.evicted.len()
    ))
}

fn print_text(out: &mut impl Write, r: &Report) -> Result<()> {
    writeln!(
        out,
        "shrink probe {} on {}: start variant {} [{}] ({} axes changed; from {})",
        sanitize(&r.probe),
        sanitize(&r.model),
        r.start.variant,
        axes_text(&r.start.axes),
        r.start.axes.len(),
        sanitize(&r.start.from)
    )?;
    let mut t = table(&[
        "#",
        "configuration",
        "variant",
        "outcome",
        "samples",
        "source",
    ]);
    for (i, q) in r.tested.iter().enumerate() {
        let samples = format!(
            "{}/{} failed{}",
            q.failed,
            q.passed + q.failed + q.errors,
            if q.errors > 0 {
                format!(", {} error", q.errors)
            } else {
                String::new()
            }
        );
        let source = match (q.cached, q.calls) {
            (c, 0) => format!("cache ({c})"),
            (0, n) => format!("{n} call{}", if n == 1 { "" } else { "s" }),
            (c, n) => format!("cache ({c}), {n} call{}", if n == 1 { "" } else { "s" }),
        };
        t.add_row(vec![
            right((i + 1).to_string()),
            Cell::new(axes_text(&q.axes)),
            Cell::new(&q.variant),
            Cell::new(q.outcome.as_str()),
            right(samples),
            Cell::new(source),
        ]);
    }
    writeln!(out, "{t}")?;
    for q in r.tested.iter().filter(|q| q.error.is_some()) {
        writeln!(
            out,
            "  [{}] {}: {}",
            axes_text(&q.axes),
            q.outcome.as_str(),
            sanitize(q.error.as_deref().unwrap_or(""))
        )?;
    }
    match &r.minimal {
        Some(m) => writeln!(out, "minimal cause: {} (variant {})", r.message, m.variant)?,
        None => writeln!(out, "{}", r.message)?,
    }
    writeln!(
        out,
        "{} configuration{} tested; {} call{} made, {} answer{} from the cache{}{}{}",
        r.tested.len(),
        if r.tested.len() == 1 { "" } else { "s" },
        r.calls,
        if r.calls == 1 { "" } else { "s" },
        r.cache_hits,
        if r.cache_hits == 1 { "" } else { "s" },
        match &r.judge {
            Some(j) if r.judge_mock => format!(
                "; judge {}: the built-in mock (simulated verdicts, not a real model)",
                sanitize(j)
            ),
            Some(j) => format!(
                "; judge {}: {} call{}, {} verdict{} from the cache",
                sanitize(j),
                r.judge_calls,
                if r.judge_calls == 1 { "" } else { "s" },
                r.judge_cache_hits,
                if r.judge_cache_hits == 1 { "" } else { "s" }
            ),
            None => String::new(),
        },
        if r.invariant {
            "; invariant probe: each configuration's answer is compared with the canonical's"
        } else {
            ""
        },
        if r.repeats > 1 {
            format!(
                "; {} samples each: a configuration fails when a strict majority of them fail",
                r.repeats
            )
        } else {
            String::new()
        }
    )?;
    if let Some(p) = &r.promoted {
        writeln!(out, "promote: {p}")?;
    }
    Ok(())
}
