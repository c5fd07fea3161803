//! The `models` command (list the configured models; `--check` them against their servers) and
//! the check `sweep` runs first for models it has not reached before.
//!
//! Which models were reached is kept in `.cliffprobe/models-checked.json` beside the default
//! store: per model name, a fingerprint of what decides whether the check still holds (provider,
//! base URL, model id, key variable name, `compat`), never a key or a header value. A changed
//! fingerprint is a model not reached before.

use crate::cli::output::table;
use crate::cli::output::wants_json;
use anyhow::{Context, Result};
use cliffprobe::config::{ModelConfig, ProviderKind};
use cliffprobe::error::Error;
use cliffprobe::expand::{AxisFilter, Strategy};
use cliffprobe::model_check::{self, LongestVariant, ModelCheck};
use cliffprobe::probe::{LoadedProbe, Probe};
use cliffprobe::project::Project;
use comfy_table::Cell;
use indexmap::IndexMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `models` options.
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Models to list or check (default: every configured model).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Check each model: a minimal request, a one-tool round trip (call → result → answer) and
    /// the suite's longest variant; reachable, key, tool calls, context window, latency.
    #[arg(long)]
    pub check: bool,
    /// text or json.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// With --check: the strategy whose longest variant is sent (default: from config).
    #[arg(long)]
    pub strategy: Option<Strategy>,
    /// With --check: the axes (and values) of that plan, as for `sweep --axes`.
    #[arg(long)]
    pub axes: Option<AxisFilter>,
    /// With --check: probe files or folders to take the longest variant from (default: the
    /// suite, when there is one).
    #[arg(long = "suite", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Runs `cliffprobe models`.
pub fn models_cmd(project: &Project, a: &ModelsArgs) -> Result<ExitCode> {
    let json = wants_json(&a.format)?;
    let names = selected(project, &a.names)?;
    if !a.check {
        return list(project, &names, json);
    }
    let longest = suite_longest(
        project,
        &a.paths,
        a.strategy,
        &a.axes.clone().unwrap_or_default(),
    )?;
    let checks = run_checks(project, &names, longest)?;
    record(project, &checks)?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &checks)?;
        writeln!(out)?;
    } else {
        let mut t = table(&ModelCheck::TABLE_HEADERS);
        for c in &checks {
            t.add_row(c.table_row().into_iter().map(Cell::new).collect::<Vec<_>>());
        }
        writeln!(out, "{t}")?;
        for c in &checks {
            write_findings(&mut out, c)?;
        }
        let failed = checks.iter().filter(|c| !c.passed()).count();
        writeln!(
            out,
            "{} of {} model(s) passed the check",
            checks.len() - failed,
            checks.len(),
        )?;
    }
    Ok(if checks.iter().all(ModelCheck::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The models named (each must be configured), or all of them.
fn selected(project: &Project, names: &[String]) -> Result<Vec<String>> {
    let cfg = &project.config;
    if cfg.models.is_empty() {
        return Err(Error::Refused(
            "no models configured: add [models.NAME] to cliffprobe.toml (`cliffprobe init` writes an example)".into(),
        )
        .into());
    }
    for n in names {
        if !cfg.models.contains_key(n) {
            return Err(Error::field(
                "<command line>",
                "NAME",
                format!(
                    "no model `{n}` in the configuration; configured: {}",
                    cfg.models.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
            .into());
        }
    }
    Ok(if names.is_empty() {
        cfg.models.keys().cloned().collect()
    } else {
        names.to_vec()
    })
}

fn list(project: &Project, names: &[String], json: bool) -> Result<ExitCode> {
    let cfg = &project.config;
    let reached = CheckedModels::load(project);
    let judge = cfg.judge.as_ref().map(|j| j.model.as_str());
    let rows: Vec<serde_json::Value> = names
        .iter()
        .map(|n| {
            let m = &cfg.models[n];
            serde_json::json!({
                "name": n,
                "provider": m.provider.as_str(),
                "model": m.model,
                "base_url": m.base_url,
                "api_key_env": m.api_key_env,
                "judge": judge == Some(n.as_str()),
                "compat": (!m.compat.is_default()).then(|| serde_json::to_value(m.compat).unwrap_or_default()),
                "checked": m.provider == ProviderKind::Mock || reached.holds(n, m),
            })
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "name", "provider", "model", "base url", "key from", "compat", "checked",
    ]);
    for (n, r) in names.iter().zip(&rows) {
        let m = &cfg.models[n];
        let mut name = n.clone();
        if judge == Some(n.as_str()) {
            name.push_str(" (judge)");
        }
        t.add_row(vec![
            Cell::new(name),
            Cell::new(if m.provider == ProviderKind::Mock {
                "mock (simulated)"
            } else {
                m.provider.as_str()
            }),
            Cell::new(&m.model),
            Cell::new(
                m.base_url
                    .as_deref()
                    .unwrap_or(if m.provider == ProviderKind::Anthropic {
                        cliffprobe::provider::anthropic::DEFAULT_BASE_URL
                    } else {
                        "–"
                    }),
            ),
            Cell::new(
                m.api_key_env
                    .as_deref()
                    .map(|v| format!("${v}"))
                    .unwrap_or_else(|| "–".into()),
            ),
            Cell::new(compat_text(m)),
            Cell::new(if r["checked"] == true { "yes" } else { "no" }),
        ]);
    }
    writeln!(out, "{t}")?;
    Ok(ExitCode::SUCCESS)
}

fn compat_text(m: &ModelConfig) -> String {
    if m.compat.is_default() {
        return "–".into();
    }
    let v = serde_json::to_value(m.compat).unwrap_or_default();
    let defaults = serde_json::to_value(cliffprobe::config::Compat::default()).unwrap_or_default();
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, val)| defaults.get(k.as_str()) != Some(val))
                .map(|(k, val)| format!("{k}={}", val.as_str().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The problems (with the server's words and the fix) and warnings of one check.
fn write_findings(out: &mut impl Write, c: &ModelCheck) -> std::io::Result<()> {
    for p in &c.problems {
        writeln!(
            out,
            "✗ {} [{}]: {}",
            c.model,
            p.step.as_str(),
            cliffprobe::term::sanitize(&p.server_said)
        )?;
        writeln!(out, "    fix: {}", p.fix)?;
    }
    for w in &c.warnings {
        writeln!(out, "! {}: {}", c.model, cliffprobe::term::sanitize(w))?;
    }
    Ok(())
}

/// The longest variant of the suite (or of `paths`) under the strategy (default: the
/// configured one) and axes; `None` without a suite.
fn suite_longest(
    project: &Project,
    paths: &[PathBuf],
    strategy: Option<Strategy>,
    axes: &AxisFilter,
) -> Result<Option<LongestVariant>> {
    if paths.is_empty() && !project.suite().exists() {
        return Ok(None);
    }
    let files = project.probe_files(paths)?;
    let mut probes = Vec::with_capacity(files.len());
    for f in files {
        let probe = Probe::load(&f)?;
        probes.push(LoadedProbe { path: f, probe });
    }
    let lib = project.library()?;
    let seed = project.config.sweep.seed.unwrap_or(0);
    Ok(model_check::longest_variant(
        &probes,
        &lib,
        project.strategy(strategy)?,
        seed,
        axes,
    )?)
}

/// Checks the models concurrently (one task each), in the order given.
fn run_checks(
    project: &Project,
    names: &[String],
    longest: Option<LongestVariant>,
) -> Result<Vec<ModelCheck>> {
    cliffprobe::provider::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let longest = Arc::new(longest);
    let tasks: Vec<_> = names
        .iter()
        .map(|n| {
            let name = n.clone();
            let cfg = project.config.models[n].clone();
            let longest = longest.clone();
            rt.spawn(
                async move { model_check::check_model(&name, &cfg, (*longest).as_ref()).await },
            )
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(
            rt.block_on(t)
                .map_err(|e| Error::Runtime(format!("model check task: {e}")))?,
        );
    }
    Ok(out)
}

/// Remembers the models that passed, so `sweep` does not check them again.
fn record(project: &Project, checks: &[ModelCheck]) -> Result<()> {
    let mut reached = CheckedModels::load(project);
    let mut changed = false;
    for c in checks.iter().filter(|c| c.passed() && !c.mock) {
        if let Some(m) = project.config.models.get(&c.model) {
            reached.insert(&c.model, m);
            changed = true;
        }
    }
    if changed {
        reached.save(project)?;
    }
    Ok(())
}

/// The check `sweep` runs first, for the models it has not reached before (the mock never needs
/// one). Prints one line per model checked, and each problem with its fix, on stderr. Returns
/// false when a model failed: the sweep must not start.
pub fn check_before_sweep(
    project: &Project,
    models: &[String],
    probes: &[LoadedProbe],
    lib: &cliffprobe::axes::AxisLibrary,
    strategy: Strategy,
    seed: u64,
    axes: &AxisFilter,
) -> Result<bool> {
    let reached = CheckedModels::load(project);
    let pending: Vec<String> = models
        .iter()
        .filter(|n| {
            project
                .config
                .models
                .get(*n)
                .is_some_and(|m| m.provider != ProviderKind::Mock && !reached.holds(n, m))
        })
        .cloned()
        .collect();
    if pending.is_empty() {
        return Ok(true);
    }
    eprintln!(
        "checking {} before the sweep (first sweep with {}; --no-check skips this)…",
        pending.join(", "),
        if pending.len() == 1 { "it" } else { "them" }
    );
    let longest = model_check::longest_variant(probes, lib, strategy, seed, axes)?;
    let checks = run_checks(project, &pending, longest)?;
    record(project, &checks)?;
    let mut err = std::io::stderr().lock();
    for c in &checks {
        writeln!(
            err,
            "  {}: {}{}",
            c.model,
            if c.passed() { "ok" } else { "FAILED" },
            c.latency_ms
                .map(|ms| format!(" ({ms} ms)"))
                .unwrap_or_default()
        )?;
        write_findings(&mut err, c)?;
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| c.model.as_str())
        .collect();
    if !failed.is_empty() {
        writeln!(
            err,
            "error: the check of {} failed: no sweep started (fix it and rerun, or sweep with --no-check)",
            failed.join(", ")
        )?;
        return Ok(false);
    }
    Ok(true)
}

/// `.cliffprobe/models-checked.json`: model name → fingerprint of the configuration it passed
/// with.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct CheckedModels {
    models: IndexMap<String, CheckedModel>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CheckedModel {
    fingerprint: String,
    checked_at: String,
}

impl CheckedModels {
    fn path(project: &Project) -> PathBuf {
        project.rooted(PathBuf::from(".cliffprobe/models-checked.json"))
    }

    /// The file, or nothing when it is missing or unreadable (then every model is checked).
    fn load(project: &Project) -> CheckedModels {
        std::fs::read(Self::path(project))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn holds(&self, name: &str, m: &ModelConfig) -> bool {
        self.models
            .get(name)
            .is_some_and(|c| c.fingerprint == fingerprint(m))
    }

    fn insert(&mut self, name: &str, m: &ModelConfig) {
        self.models.insert(
            name.to_string(),
            CheckedModel {
                fingerprint: fingerprint(m),
                checked_at: jiff::Timestamp::now().to_string(),
            },
        );
    }

    /// Written to a temporary file and renamed.
    fn save(&self, project: &Project) -> Result<()> {
        let path = Self::path(project);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self)?;
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        Ok(())
    }
}

/// What decides whether a check still holds: never a key or a header value.
fn fingerprint(m: &ModelConfig) -> String {
    let v = serde_json::json!({
        "provider": m.provider.as_str(),
        "base_url": m.base_url,
        "model": m.model,
        "api_key_env": m.api_key_env,
        "compat": m.compat,
    });
    blake3::hash(v.to_string().as_bytes()).to_hex()[..16].to_string()
}
