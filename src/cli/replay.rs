//! The `replay` command: option handling, the progress line, and the report at the end.

use anyhow::Result;
use cliffprobe::error::Error;
use cliffprobe::probe::{LoadedProbe, Probe};
use cliffprobe::project::Project;
use cliffprobe::replay::log::{Flow, LogItem, read_logs};
use cliffprobe::replay::{ClassRule, DecisionRule, LogFormat, ReplayOptions, ReplayProgress};
use cliffprobe::report::replay::{ReplayReport, write_contested};
use cliffprobe::store::{ReplayInfo, Store};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `replay` options.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Log files: JSONL of OpenAI or Anthropic request/response pairs, or OTLP JSON traces.
    pub logs: Vec<PathBuf>,
    /// The candidate model (`[models.NAME]` in cliffprobe.toml).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// The decision rule: tool_call, tool_call:ARG, json_field:POINTER, regex:PATTERN or
    /// label:A|B|C.
    #[arg(long, value_name = "RULE")]
    pub decision: Option<DecisionRule>,
    /// auto (detected per file, and per line for JSONL), openai, anthropic or otlp.
    #[arg(long, default_value = "auto")]
    pub log_format: LogFormat,
    /// The class of a record: this key of the JSONL `metadata` (dotted for nesting) or span
    /// attribute. Default: the suite's capability classes (see the README), else unclassified.
    #[arg(long, value_name = "KEY")]
    pub class_field: Option<String>,
    /// Requests in flight.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Stop after this many HTTP requests (cache hits are free); resume with --resume.
    #[arg(long)]
    pub budget_requests: Option<u64>,
    /// Stop once this many US dollars are spent (needs prices in the config).
    #[arg(long)]
    pub budget_usd: Option<f64>,
    /// Do not answer from the response cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Resume a replay (default: the latest) with its own logs, model and rule.
    #[arg(long, value_name = "REPLAY", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,
    /// Replay a seeded sample of K decided records on the logged model, for the noise floor.
    #[arg(long, value_name = "K")]
    pub noise: Option<u64>,
    /// The logged model for --noise (default: the configured model whose `model` id the logs name).
    #[arg(long, value_name = "NAME", requires = "noise")]
    pub noise_model: Option<String>,
    /// Seed of the noise sample.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Ask the `[judge]` model, per flip, which answer is right: corrections vs regressions.
    #[arg(long)]
    pub judge: bool,
    /// Write every flipped record here: JSONL, or CSV when the name ends in .csv.
    #[arg(long, value_name = "FILE")]
    pub contested: Option<PathBuf>,
    /// Write each regression (without --judge, each flip) as an incident file for templatize.
    #[arg(long, value_name = "DIR")]
    pub incidents: Option<PathBuf>,
    /// text, json, markdown or html (one page, with the first 500 flipped records).
    #[arg(long, default_value = "text")]
    pub format: String,
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
    /// Probe files or folders whose capability classes classify records (default: the suite).
    #[arg(long = "suite", value_name = "PATH")]
    pub suite: Vec<PathBuf>,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
}

fn input(field: &str, message: impl Into<String>) -> anyhow::Error {
    Error::field("<command line>", field, message).into()
}

/// Runs `cliffprobe replay`.
pub fn replay_cmd(project: &Project, a: &ReplayArgs) -> Result<ExitCode> {
    let cfg = &project.config;
    if !matches!(a.format.as_str(), "text" | "json" | "markdown" | "html") {
        return Err(input(
            "--format",
            format!(
                "unknown format `{}`; expected text, json, markdown or html",
                a.format
            ),
        ));
    }
    let store_url = a.store.clone().unwrap_or_else(|| project.store_url());
    // A PostgreSQL URL is kept whole (the replay opens it with `Store::open_url`).
    let store_path = PathBuf::from(
        store_url
            .strip_prefix("sqlite://")
            .or_else(|| store_url.strip_prefix("sqlite:"))
            .unwrap_or(&store_url),
    );
    let store = Store::open_url(&store_path.to_string_lossy())?;
    let (opts, info) = match &a.resume {
        Some(r) => {
            let info = store
                .replay_info(if r.is_empty() { None } else { Some(r.as_str()) })?
                .ok_or_else(|| {
                    input(
                        "--resume",
                        if r.is_empty() {
                            "no replay in the store to resume".to_string()
                        } else {
                            format!("no replay `{r}` in the store")
                        },
                    )
                })?;
            if !a.logs.is_empty() || a.model.is_some() || a.decision.is_some() {
                eprintln!(
                    "warning: resuming replay {} with its own logs, model and rule; the ones given are ignored",
                    info.id
                );
            }
            let rule: DecisionRule = info
                .rule
                .parse()
                .map_err(|e: String| Error::StoreData(format!("replay {}: {e}", info.id)))?;
            let format: LogFormat = info.log_format.parse().map_err(Error::StoreData)?;
            for l in &info.logs {
                if !std::path::Path::new(l).is_file() {
                    return Err(Error::input(
                        l,
                        format!(
                            "a log of replay {} is not there (relative paths are read from the folder the replay was started in)",
                            info.id
                        ),
                    )
                    .into());
                }
            }
            eprintln!(
                "resuming replay {} ({}, status {})",
                info.id, info.model, info.status
            );
            let opts = ReplayOptions {
                id: info.id.clone(),
                resume: true,
                model: info.model.clone(),
                logs: info.logs.iter().map(PathBuf::from).collect(),
                format,
                rule,
                classes: classes(project, a, info.class_field.clone())?,
                concurrency: a.concurrency.or(cfg.sweep.concurrency).unwrap_or(32).max(1),
                budget_requests: a.budget_requests,
                budget_usd: a.budget_usd,
                no_cache: a.no_cache,
                noise: info.noise,
                noise_model: info.noise_model.clone(),
                seed: info.seed,
            };
            (opts, info)
        }
        None => {
            if a.logs.is_empty() {
                return Err(input(
                    "LOG",
                    "give at least one log file (JSONL or OTLP JSON)",
                ));
            }
            for l in &a.logs {
                if !l.is_file() {
                    return Err(Error::input(l, "no such log file").into());
                }
            }
            let model = a.model.clone().ok_or_else(|| {
                input(
                    "--model",
                    "name the candidate model (a [models.NAME] of cliffprobe.toml)",
                )
            })?;
            let mcfg = cfg.models.get(&model).ok_or_else(|| {
                input(
                    "--model",
                    format!(
                        "no model `{model}` in the configuration; configured: {}",
                        cfg.models.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            let rule = a.decision.clone().ok_or_else(|| input("--decision", "give the decision rule: tool_call, tool_call:ARG, json_field:POINTER, regex:PATTERN or label:A|B|C"))?;
            if a.judge && cfg.judge.is_none() {
                return Err(input(
                    "--judge",
                    "needs a judge model: add a [judge] table to cliffprobe.toml naming one of the [models.NAME] tables",
                ));
            }
            let seed = a.seed.or(cfg.sweep.seed).unwrap_or(0);
            let noise_model = match (a.noise, &a.noise_model) {
                (None, _) => None,
                (Some(_), Some(m)) => {
                    if !cfg.models.contains_key(m) {
                        return Err(input(
                            "--noise-model",
                            format!("no model `{m}` in the configuration"),
                        ));
                    }
                    Some(m.clone())
                }
                (Some(_), None) => logged_model_name(project, &a.logs, a.log_format),
            };
            if a.noise.is_some() && noise_model.is_none() {
                eprintln!(
                    "warning: --noise: no configured model has the logged model's id; pass --noise-model NAME. No noise floor is measured."
                );
            }
            let id = new_replay_id();
            let info = ReplayInfo {
                id: id.clone(),
                started_at: cliffprobe::store::now(),
                finished_at: None,
                status: "running".into(),
                model: model.clone(),
                model_id: mcfg.model.clone(),
                rule: rule.to_string(),
                class_field: a.class_field.clone(),
                logs: a.logs.iter().map(|p| p.display().to_string()).collect(),
                log_format: a.log_format.as_str().into(),
                noise: a.noise.filter(|_| noise_model.is_some()),
                noise_model: noise_model.clone(),
                seed,
                config_digest: cfg.digest(),
                version: env!("CARGO_PKG_VERSION").into(),
            };
            let opts = ReplayOptions {
                id,
                resume: false,
                model,
                logs: a.logs.clone(),
                format: a.log_format,
                rule,
                classes: classes(project, a, a.class_field.clone())?,
                concurrency: a.concurrency.or(cfg.sweep.concurrency).unwrap_or(32).max(1),
                budget_requests: a.budget_requests,
                budget_usd: a.budget_usd,
                no_cache: a.no_cache,
                noise: info.noise,
                noise_model,
                seed,
            };
            store.begin_replay(&info)?;
            (opts, info)
        }
    };
    drop(store);
    let progress = Arc::new(ReplayProgress::default());
    let display = ProgressLine::start(progress.clone(), !a.quiet);
    let result = cliffprobe::replay::run(cfg, &store_path, &opts, progress.clone());
    display.finish();
    let summary = result?;
    let store = Store::open_url(&store_path.to_string_lossy())?;
    let status = if summary.stopped.is_some() {
        "partial"
    } else {
        "complete"
    };
    store.set_replay_status(&info.id, status, Some(&cliffprobe::store::now()))?;
    if let Some(why) = &summary.stopped {
        eprintln!("stopped: {why}");
    }
    if a.judge && summary.stopped.is_none() {
        let pass = cliffprobe::replay::run::judge_flips(cfg, &store_path, &info.id, a.no_cache)?;
        if !a.quiet {
            eprintln!(
                "judge: {} flips judged ({} from the cache), {} without a verdict, {} requests",
                pass.judged, pass.cached, pass.errors, pass.requests
            );
        }
    }
    let info = store.replay_info(Some(&info.id))?.unwrap_or(info);
    let report = ReplayReport::load(&store, info.clone())?;
    if let Some(path) = &a.contested {
        let n = write_contested(&store, &info.id, path)?;
        eprintln!("wrote {n} contested records to {}", path.display());
    }
    if let Some(dir) = &a.incidents {
        let n = cliffprobe::replay::incidents::write_incidents(
            &store,
            &info.id,
            &info.model_id,
            &opts.rule,
            dir,
        )?;
        eprintln!(
            "wrote {n} incidents to {} (turn each into a probe with `cliffprobe templatize FILE`)",
            dir.display()
        );
    }
    let out = match a.format.as_str() {
        "json" => format!("{}\n", serde_json::to_string_pretty(&report.json())?),
        "markdown" => report.markdown(),
        "html" => {
            let mut flips = Vec::new();
            store.for_each_replay_record(
                &info.id,
                cliffprobe::store::ReplayKind::Candidate,
                cliffprobe::store::ReplayOutcome::Flipped,
                |r| {
                    if flips.len() < HTML_FLIPS {
                        flips.push(r);
                    }
                    Ok(())
                },
            )?;
            report.html(&flips)
        }
        _ => report.text(),
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Flipped records listed on the HTML page.
const HTML_FLIPS: usize = 500;

/// `p-YYYYMMDD-HHMMSS-xxxx`.
fn new_replay_id() -> String {
    let run = cliffprobe::sweep::new_run_id();
    format!("p-{}", run.trim_start_matches("r-"))
}

/// The suite's capability classes (unless --class-field decides), from readable probe files.
fn classes(project: &Project, a: &ReplayArgs, field: Option<String>) -> Result<ClassRule> {
    if field.is_some() {
        return Ok(ClassRule {
            field,
            suite: vec![],
        });
    }
    let paths = if a.suite.is_empty() {
        vec![project.suite()]
    } else {
        a.suite.clone()
    };
    if !paths.iter().any(|p| p.exists()) {
        return Ok(ClassRule::default());
    }
    let mut probes = Vec::new();
    for f in cliffprobe::probe::discover(&paths)? {
        match Probe::load(&f) {
            Ok(p) => probes.push(LoadedProbe { path: f, probe: p }),
            Err(e) => eprintln!("warning: {e}: its class is not used to classify records"),
        }
    }
    Ok(ClassRule::from_suite(None, &probes))
}

/// The `[models.NAME]` whose `model` id is the one the first readable record names.
fn logged_model_name(project: &Project, logs: &[PathBuf], format: LogFormat) -> Option<String> {
    let mut id = None;
    let _ = read_logs(logs, format, &mut |item| match item {
        LogItem::Call(c) => {
            id = c.logged_model.clone();
            Flow::Stop
        }
        LogItem::Unreadable(_) => Flow::Continue,
    });
    let id = id?;
    project
        .config
        .models
        .iter()
        .find(|(_, m)| m.model == id)
        .map(|(k, _)| k.clone())
}

/// One status line: redrawn in place on a terminal, printed every five seconds elsewhere.
struct ProgressLine {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    fn start(p: Arc<ReplayProgress>, enabled: bool) -> ProgressLine {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled {
            return ProgressLine { stop, thread: None };
        }
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let tty = std::io::stderr().is_terminal();
            let bar = tty.then(|| {
                let b = indicatif::ProgressBar::new_spinner();
                b.enable_steady_tick(Duration::from_millis(200));
                b
            });
            let started = std::time::Instant::now();
            let mut last_line = std::time::Instant::now();
            loop {
                let done = stop2.load(Ordering::SeqCst);
                let line = status(&p, started.elapsed());
                match &bar {
                    Some(b) => b.set_message(line),
                    None if done || last_line.elapsed() >= Duration::from_secs(5) => {
                        eprintln!("{line}");
                        last_line = std::time::Instant::now();
                    }
                    None => {}
                }
                if done {
                    if let Some(b) = bar {
                        b.finish();
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        ProgressLine {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn status(p: &ReplayProgress, elapsed: Duration) -> String {
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let read = l(&p.read);
    format!(
        "replay: {read} read ({:.0}/s) · {} replayed · {} flipped · {} undecided · {} errors · {} unreadable · {} cached · {} skipped · {} requests",
        read as f64 / elapsed.as_secs_f64().max(0.001),
        l(&p.replayed),
        l(&p.flipped),
        l(&p.undecided),
        l(&p.errors),
        l(&p.unreadable),
        l(&p.cached),
        l(&p.skipped),
        l(&p.requests)
    )
}
