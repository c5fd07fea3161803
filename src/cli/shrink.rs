//! The `shrink` command: the minimal cause of a failing variant, by asking the model.
//!
//! Starts from a failing variant (`--variant ID`, else the minimal failing variant of the probe
//! × model in a run), runs [`cliffprobe::shrink::shrink`] with the library's oracle
//! ([`cliffprobe::shrink::oracle::Oracle`]: renders, calls through the one call path, grades as the
//! sweep does, caches under the sweep's keys), prints one line per configuration asked, and
//! reports the minimal cause (text or JSON), promoting it into the probe file on request.
//! Nothing random is drawn: each variant renders with the seed derived from its id (listed per
//! configuration in the JSON output).
//!
//! Exit status: 0 when the search concluded (a minimal cause, a broken probe, a failure that
//! did not reproduce); 1 when errors left the canonical or the start unresolved; 2 bad input.

use cliffprobe::axes::{AxisName, ORIGINAL};
use cliffprobe::brittleness::{self, Filter};

use crate::cli::output::{axes_text, right, table};
use cliffprobe::error::Error;
use cliffprobe::expand::{AxisFilter, ProbeExpansion, variant_id};
use cliffprobe::project::Project;

use anyhow::Result;
use cliffprobe::probe::{self, Probe};
use cliffprobe::promote::{self, Candidate};
use cliffprobe::provider::Provider;
use cliffprobe::render::VariantAxes;
use cliffprobe::shrink::oracle::{Asked, Oracle, grading};
use cliffprobe::shrink::{self, Outcome, Verdict};
use cliffprobe::store::Store;
use cliffprobe::term::sanitize;
use comfy_table::Cell;
use indexmap::IndexMap;
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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

fn is_zero64(n: &u64) -> bool {
    *n == 0
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
    let json = crate::cli::output::wants_json(&a.format)?;
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
    cliffprobe::provider::install_crypto_provider();
    let grading = grading(&project.config, &path, &probe)?;
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

    cliffprobe::provider::install_crypto_provider();
    let provider = Provider::new(&a.model, cfg)?;
    let max_retries = cfg.max_retries.unwrap_or(4);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("tokio runtime: {e}")))?;

    let mut asker = Oracle {
        expansion: &x,
        probe: &probe,
        provider: &provider,
        store: &mut store,
        runtime: &rt,
        repeats: a.repeats,
        max_retries,
        grading,
    };
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
        match asker.ask(axes) {
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
                fatal = Some(e.into());
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
        judge: asker.grading.judge.as_ref().map(|j| j.name.clone()),
        judge_mock: asker
            .grading
            .judge
            .as_ref()
            .is_some_and(|j| j.provider.kind() == cliffprobe::config::ProviderKind::Mock),
        judge_calls: asked.iter().map(|q| u64::from(q.judge_calls)).sum(),
        judge_cache_hits: asked.iter().map(|q| u64::from(q.judge_cached)).sum(),
        invariant: asker.grading.invariant.is_some(),
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
    lib: &cliffprobe::axes::AxisLibrary,
    digest: &str,
    id: &str,
) -> Result<VariantAxes> {
    let values = cliffprobe::expand::axis_values(probe, lib, &AxisFilter::default())?;
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

/// Writes the minimal failing variant into the probe file as a promoted case (merge rules and
/// atomic write of [`cliffprobe::promote`]). Returns what happened, for the output.
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
        &cliffprobe::store::now(),
        promote::DEFAULT_CAP,
    );
    if cases == current.cases {
        return Ok(format!("{}: unchanged", path.display()));
    }
    let mut q = current.clone();
    q.cases = cases;
    let yaml = q.to_yaml();
    Probe::parse(path, &yaml).map_err(|e| {
        Error::Bug(format!(
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
