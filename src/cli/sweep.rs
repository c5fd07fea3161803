//! The `sweep` command: option handling and the end-of-run summary.

use crate::cli::output::{right, table};
use anyhow::Result;
use cliffprobe::config::ProviderKind;
use cliffprobe::domain::Tier;
use cliffprobe::error::Error;
use cliffprobe::expand::{AxisFilter, Strategy};
use cliffprobe::probe::{LoadedProbe, Probe};
use cliffprobe::project::Project;
use cliffprobe::store::Store;
use cliffprobe::sweep::{self, SweepOptions};
use comfy_table::{Cell, CellAlignment};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// `sweep` options.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Models to run (repeatable; default: all configured but the `[judge]` model).
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
    /// Only probes whose id or capability contains this text (repeatable).
    #[arg(long = "probe", value_name = "TEXT")]
    pub probes: Vec<String>,
    /// full | pairwise | adaptive | sample:N | one-at-a-time.
    #[arg(long)]
    pub strategy: Option<Strategy>,
    /// With `--strategy adaptive`: also write the per-value decisions as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub adaptive_json: Option<PathBuf>,
    /// Seed for every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Samples per variant (1 to 10,000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=cliffprobe::config::LIMIT_MAX_REPEATS as i64))]
    pub repeats: Option<u32>,
    /// Requests in flight across all models (1 to 10,000).
    #[arg(long, value_parser = parse_concurrency)]
    pub concurrency: Option<usize>,
    /// Axes that vary, optionally with values: `persona,format=xml|csv`.
    #[arg(long)]
    pub axes: Option<AxisFilter>,
    /// Stop after this many HTTP requests (every attempt counts: retries, 429s and judge
    /// requests included; cache hits are free); the run is recorded as partial.
    #[arg(long)]
    pub budget_requests: Option<u64>,
    /// Stop once this many US dollars are spent (needs prices in the config).
    #[arg(long, value_parser = parse_budget_usd)]
    pub budget_usd: Option<f64>,
    /// Do not answer from the response cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Resume a run (default: the latest) with its own plan. Refused (exit 2, with the list)
    /// when a probe of the run was edited or deleted since; see --replan.
    #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,
    /// With --resume: resume even though probes of the run were edited or deleted. Every
    /// stored case is kept; the current probes are planned into the run (an edited probe's new
    /// variants are added beside its old cases); a deleted probe's cases stay as stored and
    /// nothing more is planned for it.
    #[arg(long, requires = "resume")]
    pub replan: bool,
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
    /// Sweep only the I-th of N disjoint slices of the run's cases (I counts from 0, as
    /// GitHub Actions' `strategy.job-index`), by a stable hash of the variant id. Needs
    /// --run-id (or --resume RUN): the shards join one run.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<cliffprobe::shard::Slice>,
    /// The run's id (any string, e.g. a CI pipeline id): the first process to arrive creates
    /// the run, the others join it; a slice whose cases are already stored continues where
    /// it stopped.
    #[arg(long, value_name = "ID", value_parser = parse_run_id, conflicts_with = "resume")]
    pub run_id: Option<String>,
    /// Print the plan and counts; make no calls.
    #[arg(long)]
    pub dry_run: bool,
    /// Probe files or folders (default: the suite).
    #[arg(long = "suite", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
    /// Allow plans larger than the safety limit.
    #[arg(long)]
    pub yes: bool,
    /// After the sweep, promote failing and flaky variants into their probe files.
    #[arg(long)]
    pub promote: bool,
    /// Skip the check (`models --check`) a sweep runs first for models it has not reached
    /// (also: CLIFFPROBE_NO_CHECK=1).
    #[arg(long)]
    pub no_check: bool,
}

/// `--concurrency`: the range `[sweep] concurrency` accepts.
fn parse_concurrency(s: &str) -> std::result::Result<usize, String> {
    let max = cliffprobe::config::LIMIT_MAX_CONCURRENCY;
    match s.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n as usize),
        _ => Err(format!("expected requests in flight from 1 to {max}")),
    }
}

/// `--run-id`: a name a person or a CI job can type and every output can carry as is (file
/// names, URLs, shell commands): 1 to 128 of `A-Z a-z 0-9 . _ - : + @`, such as a pipeline id
/// (`4711`, `nightly-2026-03-01`, a UUID).
fn parse_run_id(s: &str) -> std::result::Result<String, String> {
    if s.is_empty() || s.len() > 128 {
        return Err("expected a run id of 1 to 128 characters".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-:+@".contains(*c)))
    {
        return Err(format!(
            "a run id is made of letters, digits and . _ - : + @ only (found {c:?})"
        ));
    }
    Ok(s.to_string())
}

/// `--budget-usd`: a finite, non-negative amount (NaN or infinity would never stop the sweep).
fn parse_budget_usd(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("expected US dollars: a number of 0 or more".into()),
    }
}

fn load_probes(
    project: &Project,
    paths: &[PathBuf],
    filters: &[String],
) -> Result<Vec<LoadedProbe>> {
    let files = project.probe_files(paths)?;
    let mut out = Vec::new();
    let mut ids = std::collections::HashMap::new();
    for f in files {
        let p = Probe::load(&f)?;
        if let Some(prev) = ids.insert(p.id.clone(), f.clone()) {
            return Err(Error::field(
                &f,
                "id",
                format!("`{}` is also the id of {}", p.id, prev.display()),
            )
            .into());
        }
        if filters.is_empty()
            || filters
                .iter()
                .any(|x| p.id.contains(x.as_str()) || p.capability.contains(x.as_str()))
        {
            out.push(LoadedProbe { path: f, probe: p });
        }
    }
    if out.is_empty() {
        if ids.is_empty() || filters.is_empty() {
            return Err(Error::Refused(format!(
                "no probe families to run in {} (templatize an incident first)",
                project.suite().display()
            ))
            .into());
        }
        let mut known: Vec<&str> = ids.keys().map(String::as_str).collect();
        known.sort_unstable();
        let wanted: Vec<String> = filters.iter().map(|f| format!("`{f}`")).collect();
        return Err(Error::field(
            "<command line>",
            "--probe",
            format!(
                "no probe id or capability contains {}; the probes are: {}",
                wanted.join(" or "),
                known.join(", ")
            ),
        )
        .into());
    }
    Ok(out)
}

/// The suite's probes for a resume: none at all is not an error here (every probe of the run
/// may have been deleted, which [`changed_probes`] reports).
fn load_probes_for_resume(project: &Project, paths: &[PathBuf]) -> Result<Vec<LoadedProbe>> {
    let mut out = Vec::new();
    for f in project.probe_files(paths)? {
        let probe = Probe::load(&f)?;
        out.push(LoadedProbe { path: f, probe });
    }
    Ok(out)
}

/// A probe of a run that is not as the run planned it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ProbeChange {
    /// Its content changed: it would plan other variant ids.
    Edited { id: String, path: PathBuf },
    /// No probe file has its id any more.
    Deleted { id: String },
}

impl std::fmt::Display for ProbeChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeChange::Edited { id, path } => write!(f, "edited: {id} ({})", path.display()),
            ProbeChange::Deleted { id } => write!(f, "deleted: {id}"),
        }
    }
}

/// The probes of `run` that were edited (their digest is not the one the run recorded when it
/// was planned; for a run recorded before it kept them, none its cases were planned from) or
/// deleted (no probe file has their id) since it started.
fn changed_probes(
    store: &Store,
    run: &cliffprobe::store::RunInfo,
    probes: &[LoadedProbe],
    lib: &cliffprobe::axes::AxisLibrary,
) -> Result<Vec<ProbeChange>> {
    let mut recorded: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    for (id, digest) in store.run_probe_digests(&run.id)? {
        recorded.entry(id).or_default().push(digest);
    }
    let mut out = Vec::new();
    for id in &run.probes {
        let Some(lp) = probes.iter().find(|lp| &lp.probe.id == id) else {
            out.push(ProbeChange::Deleted { id: id.clone() });
            continue;
        };
        let digest = cliffprobe::expand::ProbeExpansion::new(&lp.probe, lib)?
            .digest()
            .to_string();
        let edited = match run.probe_digests.as_ref().and_then(|d| d.get(id)) {
            Some(planned) => *planned != digest,
            None => recorded
                .get(id)
                .is_some_and(|known| !known.contains(&digest)),
        };
        if edited {
            out.push(ProbeChange::Edited {
                id: id.clone(),
                path: lp.path.clone(),
            });
        }
    }
    Ok(out)
}

/// Runs `cliffprobe sweep`.
pub fn sweep(project: &Project, a: &SweepArgs) -> Result<ExitCode> {
    let cfg = &project.config;
    let store_url = a.store.clone().unwrap_or_else(|| project.store_url());
    for (name, m) in &cfg.models {
        if let Some(w) = m.floating_alias_warning(name) {
            eprintln!("warning: {w}");
        }
    }
    let mut opts = SweepOptions {
        models: if a.models.is_empty() {
            // The judge grades; it is swept only when named with --model.
            let judge = cfg.judge.as_ref().map(|j| j.model.as_str());
            let graded: Vec<String> = cfg
                .models
                .keys()
                .filter(|m| Some(m.as_str()) != judge)
                .cloned()
                .collect();
            if graded.is_empty() {
                cfg.models.keys().cloned().collect()
            } else {
                graded
            }
        } else {
            a.models.clone()
        },
        strategy: project.strategy(a.strategy)?,
        seed: a.seed.or(cfg.sweep.seed).unwrap_or(0),
        repeats: a.repeats.or(cfg.sweep.repeats).unwrap_or(1).max(1),
        concurrency: a.concurrency.or(cfg.sweep.concurrency).unwrap_or(32).max(1),
        budget_requests: a.budget_requests,
        budget_usd: a.budget_usd,
        no_cache: a.no_cache,
        axes: a.axes.clone().unwrap_or_default(),
        run_id: sweep::new_run_id(),
        resume: false,
        replan: false,
        points: None,
        shard: a.shard,
    };
    if let Some(id) = &a.run_id {
        opts.run_id = id.clone();
    }
    if let Some(slice) = a.shard {
        if a.run_id.is_none() && a.resume.as_deref().is_none_or(str::is_empty) && !a.dry_run {
            return Err(Error::field(
                "<command line>",
                "--shard",
                format!(
                    "--shard {slice} needs the run the shards share: --run-id ID (the same on \
                     every shard, e.g. the CI pipeline id), or --resume ID to continue a slice"
                ),
            )
            .into());
        }
        if a.promote && !slice.is_whole() {
            return Err(Error::field(
                "<command line>",
                "--promote",
                format!(
                    "--promote cannot be used with --shard {slice}: one shard sees only its \
                     slice, and editing probes/ under the other shards changes their plan. \
                     Promote once every shard is done: `cliffprobe promote RUN`"
                ),
            )
            .into());
        }
        if a.replan {
            return Err(Error::field(
                "<command line>",
                "--replan",
                "--replan cannot be used with --shard: the shards of a run must agree on \
                 one plan; start a new run id instead",
            )
            .into());
        }
    }
    if a.run_id.is_some() && a.shard.is_none() {
        // A named, unsharded run: the single slice 0/1 of that id.
        opts.shard = Some(cliffprobe::shard::Slice::WHOLE);
    }
    if let Some(slice) = opts.shard {
        cliffprobe::shard::check_strategy(opts.strategy, slice)?;
    }
    if a.run_id.is_some() && opts.strategy == Strategy::Adaptive {
        return Err(Error::field(
            "<command line>",
            "--run-id",
            "--run-id cannot be used with --strategy adaptive: its rounds are planned from the \
             results of the earlier ones, so no other process can join its run",
        )
        .into());
    }
    let mut probe_filter = a.probes.clone();
    if let Some(r) = &a.resume {
        let store = Store::open_url(&store_url)?;
        let run = store.resolve_run(if r.is_empty() { None } else { Some(r.as_str()) })?;
        // A sharded run is resumed one slice at a time, with the run's own N.
        match (store.run_plan(&run.id)?, a.shard) {
            (Some(plan), None) if plan.slices > 1 => {
                return Err(Error::field(
                    "<command line>",
                    "--shard",
                    format!(
                        "run {} is sharded into {} slices: resume one with --resume {} --shard \
                         I/{} (I from 0 to {})",
                        run.id,
                        plan.slices,
                        run.id,
                        plan.slices,
                        plan.slices - 1
                    ),
                )
                .into());
            }
            (Some(_), None) => opts.shard = Some(cliffprobe::shard::Slice::WHOLE),
            (None, Some(slice)) => {
                return Err(Error::field(
                    "<command line>",
                    "--shard",
                    format!(
                        "run {} is not sharded: resume it without --shard {slice}",
                        run.id
                    ),
                )
                .into());
            }
            _ => {}
        }
        if run.config_digest != project.config.digest() {
            eprintln!(
                "warning: cliffprobe.toml changed since run {} started (config digest {} → {}): the resumed cases use the current settings",
                run.id,
                run.config_digest,
                project.config.digest()
            );
        }
        opts.run_id = run.id.clone();
        opts.resume = true;
        opts.models = run.models.clone();
        opts.strategy = run.strategy.parse().map_err(Error::StoreData)?;
        opts.seed = run.seed;
        opts.repeats = run.repeats;
        // The plan is the run's: its axes filter too (another filter would plan other cases
        // and leave the run with more cases than it planned).
        // Runs recorded before the filter was (schema version < 3) keep the old rule: the
        // --axes given now.
        let recorded = match run.axes.as_deref() {
            Some("") => cliffprobe::expand::AxisFilter::default(),
            Some(text) => text.parse().map_err(|e: String| {
                Error::StoreData(format!(
                    "run `{}` records an unreadable --axes `{text}`: {e}",
                    run.id
                ))
            })?,
            None => a.axes.clone().unwrap_or_default(),
        };
        if let Some(given) = &a.axes
            && given.to_string() != recorded.to_string()
        {
            eprintln!(
                "warning: run {} was planned with --axes {}; resuming with that, not with --axes {given}",
                run.id,
                run.axes
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("(every axis)")
            );
        }
        opts.axes = recorded;
        probe_filter.clear();
        eprintln!(
            "resuming run {} ({}, {} planned cases, status {})",
            run.id, run.strategy, run.planned, run.status
        );
        let lib = project.library()?;
        let probes: Vec<LoadedProbe> = load_probes_for_resume(project, &a.paths)?
            .into_iter()
            .filter(|p| run.probes.contains(&p.probe.id))
            .collect();
        let changed = changed_probes(&store, &run, &probes, &lib)?;
        if !changed.is_empty() {
            if !a.replan {
                return Err(Error::Refused(format!(
                    "run {} cannot be resumed as planned: {} of its probes changed since it started:\n{}\n\
                     `cliffprobe sweep --resume {} --replan` resumes it anyway: every stored case is kept, \
                     the current probes are planned into the run (an edited probe's new variants beside \
                     its old cases) and a deleted probe's cases stay as stored. Or start a new run.",
                    run.id,
                    changed.len(),
                    changed
                        .iter()
                        .map(|c| format!("  {c}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    run.id
                ))
                .into());
            }
            eprintln!(
                "replanning run {}: {}",
                run.id,
                changed
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        drop(store);
        opts.replan = a.replan;
        return finish(project, a, opts, probes, lib, &store_url);
    }
    let lib = project.library()?;
    let probes = load_probes(project, &a.paths, &probe_filter)?;
    finish(project, a, opts, probes, lib, &store_url)
}

fn finish(
    project: &Project,
    a: &SweepArgs,
    opts: SweepOptions,
    probes: Vec<LoadedProbe>,
    lib: cliffprobe::axes::AxisLibrary,
    store_url: &str,
) -> Result<ExitCode> {
    let cfg = &project.config;
    for m in &opts.models {
        if !cfg.models.contains_key(m) {
            return Err(Error::Refused(format!(
                "no model `{m}` in {}; configured: {}",
                project
                    .config_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the configuration (no cliffprobe.toml found)".into()),
                cfg.models.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
            .into());
        }
    }
    if opts.models.is_empty() {
        return Err(Error::Refused("no models configured: add [models.NAME] to cliffprobe.toml (`cliffprobe init` writes an example)".into()).into());
    }
    sweep::check_judge(cfg, &probes)?;
    // The shipped config judges with the mock (the offline demo): say so loudly once real
    // models are swept, since its verdicts are simulated.
    if let Some(j) = &cfg.judge
        && cfg.models.get(&j.model).map(|m| m.provider) == Some(ProviderKind::Mock)
        && opts.models.iter().any(|m| {
            cfg.models
                .get(m)
                .is_some_and(|m| m.provider != ProviderKind::Mock)
        })
        && probes.iter().any(|lp| {
            lp.probe
                .checks
                .iter()
                .any(|c| matches!(c, cliffprobe::grade::check::Check::Judge(_)))
        })
    {
        eprintln!(
            "warning: [judge] model `{}` is the built-in mock: judge checks get simulated verdicts, not grades; point [judge] at a real model",
            j.model
        );
    }
    let counts = sweep::plan_counts(&probes, &lib, &opts)?;
    let variants: u64 = counts.iter().map(|(_, n)| n).sum();
    let planned = variants * opts.repeats as u64 * opts.models.len() as u64;
    if planned > cliffprobe::limits::MAX_VARIANTS_WITHOUT_YES && !a.yes && !a.dry_run {
        return Err(Error::Refused(format!("this sweep plans {planned} cases (limit {} without --yes): use --yes, or a smaller strategy (--strategy sample:N)", cliffprobe::limits::MAX_VARIANTS_WITHOUT_YES)).into());
    }
    let mock: Vec<&String> = opts
        .models
        .iter()
        .filter(|m| cfg.models[*m].provider == ProviderKind::Mock)
        .collect();
    if a.dry_run {
        let mut t = table(&["probe", "tier", "variants"]);
        for (lp, (_, n)) in probes.iter().zip(&counts) {
            t.add_row(vec![
                Cell::new(&lp.probe.id),
                Cell::new(lp.probe.tier.as_str()),
                Cell::new(n).set_alignment(CellAlignment::Right),
            ]);
        }
        println!("{t}");
        println!(
            "plan: {} probes, {variants} variants × {} sample(s) × {} model(s) = {planned} cases (strategy {}, seed {}{})",
            probes.len(),
            opts.repeats,
            opts.models.len(),
            opts.strategy,
            opts.seed,
            match opts.shard {
                Some(s) if !s.is_whole() => format!(", shard {s}: this slice only"),
                _ => String::new(),
            }
        );
        for m in &opts.models {
            let c = &cfg.models[m];
            println!(
                "  {m}: {} {}{}",
                c.provider.as_str(),
                c.model,
                if c.provider == ProviderKind::Mock {
                    "  (built-in mock: simulated answers, no network)"
                } else {
                    ""
                }
            );
        }
        println!("dry run: no calls made, nothing stored");
        return Ok(ExitCode::SUCCESS);
    }
    if !mock.is_empty() {
        eprintln!(
            "note: {} use{} the built-in mock provider: simulated, offline answers for demos and tests, not a real model",
            mock.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if mock.len() == 1 { "s" } else { "" }
        );
    }
    // CLIFFPROBE_NO_CHECK=1 is --no-check for scripts and test harnesses that sweep scripted
    // servers.
    let no_check = a.no_check || std::env::var_os("CLIFFPROBE_NO_CHECK").is_some_and(|v| v == "1");
    if !no_check
        && !crate::cli::models::check_before_sweep(
            project,
            &opts.models,
            &probes,
            &lib,
            opts.strategy,
            opts.seed,
            &opts.axes,
        )?
    {
        return Ok(ExitCode::from(1));
    }
    let show = !a.quiet;
    let outcome = if opts.strategy == Strategy::Adaptive {
        let (outcome, report) =
            cliffprobe::adaptive::run(cfg, store_url, probes, lib, opts.clone(), show)?;
        print!("{}", cliffprobe::adaptive::render_text(&report));
        if let Some(path) = &a.adaptive_json {
            let text = serde_json::to_string_pretty(&report)?;
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, text + "\n")?;
            std::fs::rename(&tmp, path)?;
        }
        outcome
    } else {
        let outcome = sweep::run(cfg, store_url, probes, lib, opts.clone(), show)?;
        print_summary(cfg, &outcome);
        if let Some(slice) = opts.shard.filter(|s| !s.is_whole())
            && let Some(progress) = Store::open_url(store_url)?.shard_progress(&outcome.run.id)?
        {
            println!(
                "shard {slice} of run {}: {}",
                outcome.run.id,
                progress.summary()
            );
        }
        outcome
    };
    if a.promote {
        crate::cli::promote::promote_after_sweep(project, store_url, &outcome.run.id, &a.paths)?;
    }
    if let Some(reason) = &outcome.stopped {
        eprintln!(
            "stopped early: {reason}; resume with `cliffprobe sweep --resume {}`",
            outcome.run.id
        );
    }
    for why in &outcome.halted {
        eprintln!("{}", cliffprobe::term::sanitize(why));
    }
    if outcome.run.status == cliffprobe::store::RunStatus::Interrupted {
        return Ok(ExitCode::from(130));
    }
    // A sweep where nothing could be graded is a broken endpoint or config, not a result.
    let graded: u64 = outcome
        .progress
        .iter()
        .map(|(_, p)| p.pass.load(Ordering::Relaxed) + p.fail.load(Ordering::Relaxed))
        .sum();
    let errors: u64 = outcome
        .progress
        .iter()
        .map(|(_, p)| p.error.load(Ordering::Relaxed))
        .sum();
    if graded == 0 && errors > 0 {
        let store = Store::open_url(store_url)?;
        let mut first = None;
        store.for_each_case(&outcome.run.id, |row| {
            if first.is_none() {
                first = row.case.error.clone();
            }
            Ok(())
        })?;
        eprintln!(
            "error: every case of run {} is an error (no answer could be graded); first reason: {}",
            outcome.run.id,
            cliffprobe::term::sanitize(first.as_deref().unwrap_or("unknown"))
        );
        return Ok(ExitCode::from(1));
    }
    // A model stopped for answering every request with the same error is a broken endpoint:
    // the other models' results are stored, but the job did not do what it was asked.
    if !outcome.halted.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn rate(pass: u64, fail: u64) -> String {
    if pass + fail == 0 {
        "–".into()
    } else {
        format!("{:.1}%", 100.0 * pass as f64 / (pass + fail) as f64)
    }
}

fn print_summary(cfg: &cliffprobe::config::Config, o: &sweep::SweepOutcome) {
    let mut headers = vec!["model", "cases", "pass", "fail", "error", "pass rate"];
    let tiers: Vec<Tier> = Tier::ALL
        .iter()
        .copied()
        .filter(|t| o.tiers.keys().any(|(_, x)| x == t))
        .collect();
    let tier_names: Vec<String> = tiers
        .iter()
        .map(|t| format!("{} pass", t.as_str()))
        .collect();
    headers.extend(tier_names.iter().map(String::as_str));
    headers.extend(["cached", "tokens in/out", "cost"]);
    let mut t = table(&headers);
    for (name, p) in &o.progress {
        let (pass, fail, err) = (
            p.pass.load(Ordering::Relaxed),
            p.fail.load(Ordering::Relaxed),
            p.error.load(Ordering::Relaxed),
        );
        let done = p.done.load(Ordering::Relaxed) - p.skipped.load(Ordering::Relaxed);
        let m = &cfg.models[name];
        let label = if m.provider == ProviderKind::Mock {
            format!("{name} (mock)")
        } else {
            name.clone()
        };
        let mut row = vec![
            Cell::new(label),
            right(done.to_string()),
            right(pass.to_string()),
            right(fail.to_string()),
            right(err.to_string()),
            Cell::new(rate(pass, fail)).set_alignment(CellAlignment::Right),
        ];
        for tier in &tiers {
            let c = o
                .tiers
                .get(&(name.clone(), *tier))
                .copied()
                .unwrap_or_default();
            row.push(Cell::new(rate(c.pass, c.fail)).set_alignment(CellAlignment::Right));
        }
        let sweep::ModelUsage {
            input_tokens: tin,
            output_tokens: tout,
            cost_usd: cost,
        } = o.usage.get(name).copied().unwrap_or_default();
        row.push(right(p.cached.load(Ordering::Relaxed).to_string()));
        row.push(Cell::new(format!("{tin}/{tout}")).set_alignment(CellAlignment::Right));
        row.push(
            Cell::new(if m.price_input.is_some() || m.price_output.is_some() {
                format!("${cost:.4}")
            } else {
                "–".into()
            })
            .set_alignment(CellAlignment::Right),
        );
        t.add_row(row);
    }
    println!("{t}");
    if o.progress
        .iter()
        .any(|(_, p)| p.episodes.load(Ordering::Relaxed) > 0)
    {
        let calls: Vec<String> = o
            .progress
            .iter()
            .map(|(name, p)| {
                format!(
                    "{name} {} ({} episodes)",
                    p.model_calls.load(Ordering::Relaxed),
                    p.episodes.load(Ordering::Relaxed)
                )
            })
            .collect();
        println!(
            "model calls: {} (an episode makes one per step; steps answered by the cache make none)",
            calls.join(", ")
        );
    }
    for (name, p) in &o.progress {
        let n = p.context_overflow.load(Ordering::Relaxed);
        if n > 0 {
            println!(
                "{name}: {n} error case{}: {} (never a fail, not retried)",
                if n == 1 { "" } else { "s" },
                cliffprobe::sweep::CONTEXT_OVERFLOW
            );
        }
    }
    if let Some(j) = &o.judge {
        let m = &cfg.models[&j.model];
        println!(
            "judge {}{}: {} verdicts ({} cached, {} requests), {} without a verdict (those cases are errors); tokens in/out {}/{}, cost {} — not counted in the models' rows",
            j.model,
            if m.provider == ProviderKind::Mock {
                " (mock: simulated verdicts)"
            } else {
                ""
            },
            j.verdicts,
            j.cached,
            j.requests,
            j.errors,
            j.input_tokens,
            j.output_tokens,
            j.cost_usd
                .map(|c| format!("${c:.4}"))
                .unwrap_or_else(|| "–".into())
        );
    }
    println!(
        "run {} ({}) — {} planned cases, wall {:.1}s; errors are not failures and are outside the pass rates",
        o.run.id,
        o.run.status,
        o.run.planned,
        o.wall.as_secs_f64()
    );
}
