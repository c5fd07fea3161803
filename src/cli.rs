//! The command line: argument parsing and printing, over the library's stages.
//!
//! Exit statuses: 0 success; 1 a failed run (store, network) or a failed gate; 2 bad input
//! (a file, a field, an option), with nothing written. A closed stdout pipe is success.

use crate::axes::AxisLibrary;
use crate::check::Check;
use crate::config::Config;
use crate::domain::Tier;
use crate::error::Error;
use crate::expand::{AxisFilter, ProbeExpansion, Strategy};
use crate::incident::Incident;
use crate::probe::{self, Probe};
use crate::templatize::{self, TemplatizeOptions};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Turn LLM production incidents into families of variants, sweep them against models, and
/// report pass rates per difficulty tier and capability class.
#[derive(Debug, Parser)]
#[command(name = "cliffprobe", version, about, max_term_width = 100)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "cliffprobe.toml")]
    pub config: PathBuf,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands, in pipeline order.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write cliffprobe.toml, templates/ and an empty probes/ for a new project.
    Init(InitArgs),
    /// Turn an incident (native record, or captured OpenAI/Anthropic request) into a probe family.
    Templatize(TemplatizeArgs),
    /// Ask a model for paraphrases of probe questions, per persona, and freeze them into the files.
    Paraphrase(crate::cli_paraphrase::ParaphraseArgs),
    /// Check probe files; report every problem with file, line and field.
    Validate(ValidateArgs),
    /// Stream the variants of probe families as JSON lines.
    Expand(ExpandArgs),
    /// Run the variants against the configured models, grade them and store every case.
    Sweep(crate::cli_sweep::SweepArgs),
    /// Stream every case of a run as JSON lines or CSV.
    Export(crate::cli_sweep::ExportArgs),
    /// Pass rates per tier and capability class, deltas, regressions and the floors gate.
    Report(crate::cli_report::ReportArgs),
    /// Aggregate vs hard-tier pass rate across runs, and whether the gap is widening.
    Trend(crate::cli_report::TrendArgs),
    /// Declared vs measured tier per probe (pass fraction over the panel), and what moved.
    Tiers(crate::cli_tiers::TiersArgs),
    /// Per probe × model: which variants break the model, along which axis, the minimal change.
    Brittleness(crate::cli_brittle::BrittlenessArgs),
    /// Write the failing and flaky variants of a run back into their probe files as hard cases.
    Promote(crate::cli_brittle::PromoteArgs),
    /// Shrink a failing variant to its minimal cause (delta debugging over axes, calling the model).
    Shrink(crate::cli_shrink::ShrinkArgs),
    /// List a probe's promoted cases with their history.
    Cases(crate::cli_brittle::CasesArgs),
    /// Re-run logged production calls on a candidate model and report the decisions that flip.
    Replay(crate::cli_replay::ReplayArgs),
    /// Browse runs, families, cases and comparisons in a local, read-only web viewer.
    View(crate::cli_view::ViewArgs),
    /// Show who holds the store's sweep lock; remove a lock its process left behind.
    Unlock(crate::cli_unlock::UnlockArgs),
    /// List the configured models; with --check, find out whether each can be swept.
    Models(crate::cli_models::ModelsArgs),
    /// Operations on a whole store: `store copy --from SQLITE --to POSTGRES` (and back).
    Store(crate::cli_store::StoreArgs),
}

/// `init` options.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Folder to initialise (default: the current one).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// `templatize` options.
#[derive(Debug, clap::Args)]
pub struct TemplatizeArgs {
    /// The incident file (YAML/JSON record, or a captured request, optionally with its response).
    pub incident: PathBuf,
    /// A check, as TYPE=VALUE (repeatable): contains=approved, not_contains=denied,
    /// numeric=42, 'numeric={value: 4.2, tolerance: 0.1}', 'tool_call={name: refund}', refusal=true,
    /// 'judge={rubric: Says the order is delayed}'.
    #[arg(long = "expect", value_name = "TYPE=VALUE")]
    pub expect: Vec<String>,
    /// A value that identifies the key record in tool outputs (repeatable; overrides detection).
    #[arg(long = "key", value_name = "VALUE")]
    pub keys: Vec<String>,
    /// The suite folder (default: from cliffprobe.toml, else `probes`).
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// Capability class (default: the incident's).
    #[arg(long)]
    pub capability: Option<String>,
    /// Declared tier.
    #[arg(long, value_parser = parse_tier)]
    pub tier: Option<Tier>,
    /// Probe id (default: from the title or the file name).
    #[arg(long)]
    pub id: Option<String>,
    /// Print the probe instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite an existing probe; write even if the checks pass the bad output.
    #[arg(long)]
    pub force: bool,
    /// Make the probe invariant: every variant's answer must agree with the canonical's (the
    /// incident may then have no checks). A native incident can say `invariant: true` instead.
    #[arg(long)]
    pub invariant: bool,
    /// For an invariant probe with free-text answers: the regex whose first capture group is
    /// the answer compared (e.g. '(?i)status is (\w+)').
    #[arg(long, value_name = "REGEX")]
    pub answer_pattern: Option<String>,
    /// Make an agent episode of any incident with tools: the model is driven in a loop and its
    /// tool calls answered from the incident's recorded results (default: only multi-step
    /// incidents are episodes).
    #[arg(long, conflicts_with = "no_episode")]
    pub episode: bool,
    /// Never make an episode: freeze the recorded tool turns into the prompt.
    #[arg(long)]
    pub no_episode: bool,
    /// Also freeze paraphrases of the question written by this model (see `paraphrase`).
    #[arg(long, value_name = "MODEL")]
    pub paraphrase_with: Option<String>,
    /// Paraphrases per persona with --paraphrase-with.
    #[arg(long, default_value_t = 3, requires = "paraphrase_with",
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub paraphrases: u32,
}

/// `validate` options.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Probe files or folders (default: the suite).
    pub paths: Vec<PathBuf>,
}

/// `expand` options.
#[derive(Debug, clap::Args)]
pub struct ExpandArgs {
    /// Probe files or folders (default: the suite).
    pub paths: Vec<PathBuf>,
    /// full | pairwise | adaptive (its first round: pairwise) | sample:N | one-at-a-time (default: from config, else pairwise).
    #[arg(long)]
    pub strategy: Option<Strategy>,
    /// Seed for every random choice (default: from config, else 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Axes that vary, optionally with values: `persona,format=xml|csv`.
    #[arg(long)]
    pub axes: Option<AxisFilter>,
    /// Only count the variants per probe.
    #[arg(long)]
    pub count: bool,
    /// Allow expansions larger than the safety limit.
    #[arg(long)]
    pub yes: bool,
}

/// `--format text|json` of the analysis commands: true for JSON; anything else is an input
/// error naming the flag.
pub(crate) fn wants_json(format: &str) -> std::result::Result<bool, Error> {
    match format {
        "text" => Ok(false),
        "json" => Ok(true),
        other => Err(Error::field(
            "<command line>",
            "--format",
            format!("unknown format `{other}`; expected text or json"),
        )),
    }
}

fn parse_tier(s: &str) -> std::result::Result<Tier, String> {
    Tier::parse(s)
        .ok_or_else(|| format!("unknown tier `{s}`; expected easy, medium, hard or frontier"))
}

/// Entry point: parse, run, map errors to exit statuses.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let input = e
                .chain()
                .any(|c| c.downcast_ref::<Error>().is_some_and(Error::is_input));
            eprintln!("error: {}", crate::term::sanitize(&chain_message(&e)));
            ExitCode::from(if input { 2 } else { 1 })
        }
    }
}

/// A closed stdout (`cliffprobe expand | head`) is success, whether the write failed directly
/// or inside serde_json (which wraps the io error without exposing it as a source).
/// The error and its causes joined by `: ` (as `{:#}` does), skipping a cause whose text the
/// message already ends with: `Error::Io` shows its io error itself, which is also its source,
/// so `{:#}` printed "No such file or directory (os error 2)" twice.
fn chain_message(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for c in e.chain() {
        let part = c.to_string();
        if msg.ends_with(&part) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&part);
    }
    msg
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// The project context every command starts from: the config and where things live.
pub struct Project {
    /// The configuration (defaults when there is no file).
    pub config: Config,
    /// The config file, when there is one.
    pub config_path: Option<PathBuf>,
    /// The folder the config file is in (paths in it are relative to it).
    pub root: PathBuf,
}

impl Project {
    /// Loads `cliffprobe.toml` when present.
    pub fn load(path: &Path) -> Result<Project> {
        if path.exists() {
            let config = Config::load(path)?;
            let root = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            Ok(Project {
                config,
                config_path: Some(path.to_path_buf()),
                root,
            })
        } else {
            Ok(Project {
                config: Config::default(),
                config_path: None,
                root: PathBuf::from("."),
            })
        }
    }

    /// The suite folder.
    pub fn suite(&self) -> PathBuf {
        self.rooted(
            self.config
                .suite
                .clone()
                .unwrap_or_else(|| PathBuf::from("probes")),
        )
    }

    /// The axis library: `templates/` when present, else the embedded defaults.
    pub fn library(&self) -> Result<AxisLibrary> {
        let dir = self.rooted(
            self.config
                .templates
                .clone()
                .unwrap_or_else(|| PathBuf::from("templates")),
        );
        Ok(if dir.is_dir() {
            AxisLibrary::load(&dir)?
        } else {
            AxisLibrary::embedded()
        })
    }

    /// The strategy: the option when given, else `[sweep] strategy`, else pairwise.
    pub fn strategy(&self, given: Option<Strategy>) -> Result<Strategy> {
        if let Some(s) = given {
            return Ok(s);
        }
        let configured = self.config.sweep.strategy.as_deref().unwrap_or("pairwise");
        Ok(configured.parse().map_err(|e: String| {
            Error::field(
                self.config_path.clone().unwrap_or_default(),
                "sweep.strategy",
                e,
            )
        })?)
    }

    /// A path from the config, relative to the config file's folder.
    pub fn rooted(&self, p: PathBuf) -> PathBuf {
        if self.root == Path::new(".") || p.is_absolute() {
            p
        } else {
            self.root.join(p)
        }
    }

    /// The store location: the variable named by `store_env` when set, else `store`, else the
    /// default file. A `store_env` variable that is unset becomes `env://NAME`, which the store
    /// refuses to open with a message naming the variable.
    pub fn store_url(&self) -> String {
        if let Some(var) = &self.config.store_env {
            return match std::env::var(var) {
                Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
                _ => format!("env://{var}"),
            };
        }
        match &self.config.store {
            Some(s) if s.contains("://") => s.clone(),
            Some(s) => self.rooted(PathBuf::from(s)).display().to_string(),
            None => self
                .rooted(PathBuf::from(".cliffprobe/cliffprobe.db"))
                .display()
                .to_string(),
        }
    }

    /// Opens the store named by a `--store` option, else the configured one.
    ///
    /// For the commands that read results: a SQLite store that does not exist is refused (exit
    /// 2) instead of being created empty, so a mistyped `--store` leaves no file behind.
    pub fn open_store(&self, option: Option<&str>) -> Result<crate::store::Store> {
        let url = option
            .map(str::to_string)
            .unwrap_or_else(|| self.store_url());
        let file = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(&url);
        if !file.contains("://") && !Path::new(file).exists() {
            return Err(Error::field(
                "<command line>",
                "--store",
                format!(
                    "no store at {file}: nothing has been swept with it yet (run `cliffprobe sweep` first, or pass --store PATH)"
                ),
            )
            .into());
        }
        Ok(crate::store::Store::open_url(&url)?)
    }

    /// Probe files under `paths`, or the whole suite.
    pub fn probe_files(&self, paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
        if paths.is_empty() && !self.suite().exists() {
            return Err(Error::Refused(format!(
                "no suite at {}: run `cliffprobe init` for a new project, or `cliffprobe templatize INCIDENT` to make the first probe family",
                self.suite().display()
            ))
            .into());
        }
        let paths = if paths.is_empty() {
            vec![self.suite()]
        } else {
            paths.to_vec()
        };
        Ok(probe::discover(&paths)?)
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    // Without a cliffprobe.toml the defaults apply; a --config that names a missing file is a
    // typo, not a wish for defaults.
    if !matches!(cli.command, Command::Init(_))
        && cli.config != Path::new("cliffprobe.toml")
        && !cli.config.exists()
    {
        return Err(Error::field(
            "<command line>",
            "--config",
            format!("no configuration file at {}", cli.config.display()),
        )
        .into());
    }
    match cli.command {
        Command::Init(a) => init(&a),
        Command::Templatize(a) => templatize_cmd(&Project::load(&cli.config)?, &a),
        Command::Paraphrase(a) => {
            crate::cli_paraphrase::paraphrase_cmd(&Project::load(&cli.config)?, &a)
        }
        Command::Validate(a) => validate(&Project::load(&cli.config)?, &a),
        Command::Expand(a) => expand(&Project::load(&cli.config)?, &a),
        Command::Sweep(a) => crate::cli_sweep::sweep(&Project::load(&cli.config)?, &a),
        Command::Export(a) => crate::cli_sweep::export(&Project::load(&cli.config)?, &a),
        Command::Report(a) => crate::cli_report::report(&Project::load(&cli.config)?, &a),
        Command::Trend(a) => crate::cli_report::trend(&Project::load(&cli.config)?, &a),
        Command::Tiers(a) => crate::cli_tiers::tiers_cmd(&Project::load(&cli.config)?, &a),
        Command::Brittleness(a) => {
            crate::cli_brittle::brittleness_cmd(&Project::load(&cli.config)?, &a)
        }
        Command::Promote(a) => crate::cli_brittle::promote_cmd(&Project::load(&cli.config)?, &a),
        Command::Shrink(a) => crate::cli_shrink::shrink_cmd(&Project::load(&cli.config)?, &a),
        Command::Cases(a) => crate::cli_brittle::cases_cmd(&Project::load(&cli.config)?, &a),
        Command::Replay(a) => crate::cli_replay::replay_cmd(&Project::load(&cli.config)?, &a),
        Command::View(a) => crate::cli_view::view_cmd(Project::load(&cli.config)?, &a),
        Command::Unlock(a) => crate::cli_unlock::unlock_cmd(&Project::load(&cli.config)?, &a),
        Command::Models(a) => crate::cli_models::models_cmd(&Project::load(&cli.config)?, &a),
        Command::Store(a) => crate::cli_store::store_cmd(&a),
    }
}

fn init(a: &InitArgs) -> Result<ExitCode> {
    let mut files: Vec<(PathBuf, &str)> =
        vec![(a.dir.join("cliffprobe.toml"), crate::config::DEFAULT_CONFIG)];
    for (name, text) in AxisLibrary::default_files() {
        files.push((a.dir.join("templates").join(name), text));
    }
    if !a.force {
        let existing: Vec<String> = files
            .iter()
            .filter(|(p, _)| p.exists())
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(Error::Refused(format!(
                "{} already exist; use --force to overwrite",
                existing.join(", ")
            ))
            .into());
        }
    }
    for (p, text) in &files {
        probe::write_atomic(p, text)?;
        println!("wrote {}", p.display());
    }
    let probes = a.dir.join("probes");
    std::fs::create_dir_all(&probes).with_context(|| format!("creating {}", probes.display()))?;
    println!("created {}/", probes.display());
    println!(
        "\nnext: cliffprobe templatize INCIDENT.yaml   (turn an incident into a probe family)"
    );
    println!(
        "      cliffprobe sweep                      (run the suite against the models in cliffprobe.toml)"
    );
    Ok(ExitCode::SUCCESS)
}

fn templatize_cmd(project: &Project, a: &TemplatizeArgs) -> Result<ExitCode> {
    let mut expect = Vec::new();
    for e in &a.expect {
        expect
            .push(Check::parse_cli(e).map_err(|m| Error::field("<command line>", "--expect", m))?);
    }
    let incident = Incident::load(&a.incident)?;
    let opts = TemplatizeOptions {
        expect,
        capability: a.capability.clone(),
        tier: a.tier,
        id: a.id.clone(),
        keys: a.keys.clone(),
        force: a.force,
        invariant: a.invariant,
        answer_pattern: a.answer_pattern.clone(),
        episode: if a.episode {
            templatize::EpisodeMode::Always
        } else if a.no_episode {
            templatize::EpisodeMode::Never
        } else {
            templatize::EpisodeMode::Auto
        },
    };
    let mut t = templatize::templatize(&incident, &a.incident, &opts)?;
    let suite = a.suite.clone().unwrap_or_else(|| project.suite());
    let path = templatize::probe_path(&suite, &t.probe);
    let lib = project.library()?;
    if let Some(model) = &a.paraphrase_with {
        // Refuse before the (paid) calls, not after.
        if path.exists() && !a.force && !a.dry_run {
            return Err(Error::Refused(format!(
                "{} exists; use --force to overwrite it (review the diff afterwards)",
                path.display()
            ))
            .into());
        }
        crate::cli_paraphrase::require_phrasing(&t.probe, &path)?;
        let provider = crate::cli_paraphrase::provider_for(project, model)?;
        let personas = crate::cli_paraphrase::personas_for(&t.probe, &lib, None)?;
        crate::cli_paraphrase::freeze(
            &provider,
            &lib,
            &mut t.probe,
            a.paraphrases as usize,
            personas,
            &mut std::io::stderr(),
        )?;
    }
    let p = &t.probe;
    let yaml = p.to_yaml();
    if a.dry_run {
        print!("{yaml}");
        return Ok(ExitCode::SUCCESS);
    }
    if path.exists() && !a.force {
        return Err(Error::Refused(format!(
            "{} exists; use --force to overwrite it (review the diff afterwards)",
            path.display()
        ))
        .into());
    }
    // Round-trip before writing: the file we write must load.
    Probe::parse(&path, &yaml)
        .context("the probe would not load back (a bug: please report it)")?;
    probe::write_atomic(&path, &yaml)?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "templatized {} ({})",
        a.incident.display(),
        incident.kind.as_str()
    )?;
    writeln!(
        out,
        "  probe       {}  (tier {}, capability \"{}\")",
        p.id,
        p.tier.as_str(),
        crate::term::sanitize(&p.capability)
    )?;
    writeln!(
        out,
        "  question    {:?}",
        crate::grade::excerpt(&p.slots.question, 100)
    )?;
    for (id, s) in &p.slots.tool_outputs {
        match &s.data {
            Some(d) => {
                let keys: Vec<String> =
                    s.key_records
                        .iter()
                        .map(|i| {
                            let ids: Vec<String> =
                                s.key_fields
                                    .iter()
                                    .filter_map(|f| {
                                        d.records.get(*i).and_then(|r| r.get(f)).map(|v| {
                                            format!("{f}={}", crate::records::scalar_text(v))
                                        })
                                    })
                                    .collect();
                            format!(
                                "#{i}{}",
                                if ids.is_empty() {
                                    String::new()
                                } else {
                                    format!(" ({})", ids.join(", "))
                                }
                            )
                        })
                        .collect();
                writeln!(
                    out,
                    "  tool output {}: {} with {} records; key record{} {}",
                    crate::term::sanitize(id),
                    s.format,
                    d.records.len(),
                    if keys.len() == 1 { "" } else { "s" },
                    if keys.is_empty() {
                        "none found".to_string()
                    } else {
                        keys.join(", ")
                    }
                )?;
            }
            None => writeln!(
                out,
                "  tool output {}: text ({} chars, not structured)",
                crate::term::sanitize(id),
                s.original.len()
            )?,
        }
    }
    for (name, d) in &p.slots.documents {
        writeln!(
            out,
            "  document    {}: {} chars; key phrases {:?}",
            crate::term::sanitize(name),
            d.text.len(),
            d.key_phrases
        )?;
    }
    writeln!(
        out,
        "  checks      {}",
        if p.checks.is_empty() {
            "none".to_string()
        } else {
            p.checks
                .iter()
                .map(describe_check)
                .collect::<Vec<_>>()
                .join(", ")
        }
    )?;
    if let Some(e) = &p.episode {
        let recorded: usize = e.tools.values().map(|t| t.recorded.len()).sum();
        writeln!(
            out,
            "  episode     {} simulated tools ({recorded} recorded results); budget {} tool calls, {} turns{}",
            e.tools.len(),
            e.budget.max_tool_calls,
            e.budget.max_turns,
            e.budget
                .max_tokens
                .map(|t| format!(", {t} tokens"))
                .unwrap_or_default()
        )?;
        if let Some(b) = &p.source.bad_output {
            writeln!(
                out,
                "  trajectory  {}",
                crate::term::sanitize(&crate::grade::excerpt(b, 300))
            )?;
        }
    }
    if p.invariant {
        writeln!(
            out,
            "  invariant   every variant's answer must agree with the canonical's{}",
            match &p.answer_pattern {
                Some(re) => format!(" (answer_pattern {:?})", crate::term::sanitize(re)),
                None => String::new(),
            }
        )?;
    }
    match t.bad_output_status {
        Some(crate::grade::CaseStatus::Pass) => writeln!(
            out,
            "  bad output  PASSES the checks: they do not reproduce the failure (written because of --force)"
        )?,
        Some(crate::grade::CaseStatus::Ungraded) => writeln!(
            out,
            "  bad output  ungraded here (judge checks are graded by the [judge] model during a sweep): cannot confirm the checks reproduce the failure"
        )?,
        Some(s) => writeln!(
            out,
            "  bad output  grades `{}`: the checks reproduce the failure",
            s.as_str()
        )?,
        None if p.checks.is_empty() && incident.bad_output.is_some() => writeln!(
            out,
            "  bad output  recorded; no checks to grade it with: the variants are compared with the canonical answer"
        )?,
        None => writeln!(
            out,
            "  bad output  none recorded: cannot confirm the checks reproduce the failure"
        )?,
    }
    if let Some(set) = &p.paraphrases {
        writeln!(
            out,
            "  paraphrases {} voices from {} (phrasing llm-1 … llm-{})",
            set.personas.len(),
            crate::term::sanitize(&set.model),
            set.phrasing_values().len()
        )?;
    }
    let values = crate::expand::axis_values(p, &lib, &AxisFilter::default())?;
    writeln!(
        out,
        "  axes        {}",
        values
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(a, v)| format!("{} ({})", a.as_str(), v.len()))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    // The same seed `expand` and `sweep` plan with (see `ProbeExpansion::points`), so the
    // pairwise count shown is the count that runs.
    let seed = project.config.sweep.seed.unwrap_or(0) ^ crate::expand::variant_seed(&p.digest());
    writeln!(
        out,
        "  variants    {}",
        crate::expand::strategy_counts(&values, seed)
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(" · ")
    )?;
    for w in &t.warnings {
        writeln!(out, "  warning     {}", crate::term::sanitize(w))?;
    }
    writeln!(out, "  wrote       {}", path.display())?;
    Ok(ExitCode::SUCCESS)
}

/// A one-line description of a check.
pub fn describe_check(c: &Check) -> String {
    let v = serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_object().and_then(|o| o.values().next().cloned()))
        .unwrap_or_default();
    let short = match &v {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    format!("{} {}", c.kind(), crate::grade::excerpt(&short, 60))
}

fn validate(project: &Project, a: &ValidateArgs) -> Result<ExitCode> {
    let files = project.probe_files(&a.paths)?;
    let lib = project.library()?;
    let mut bad = 0;
    let mut ids: std::collections::HashMap<String, PathBuf> = std::collections::HashMap::new();
    for f in &files {
        match Probe::load(f) {
            Ok(p) => {
                if let Some(prev) = ids.insert(p.id.clone(), f.clone()) {
                    bad += 1;
                    eprintln!(
                        "{}: field `id`: `{}` is also the id of {}",
                        f.display(),
                        p.id,
                        prev.display()
                    );
                    continue;
                }
                if let Err(e) = ProbeExpansion::new(&p, &lib)
                    .and_then(|x| x.variant(crate::render::VariantAxes::default()))
                {
                    bad += 1;
                    eprintln!("{}: {e}", f.display());
                    continue;
                }
                if let Some(set) = &p.paraphrases
                    && let Some(unknown) = set.personas.keys().find(|k| {
                        *k != crate::axes::ORIGINAL && !lib.personas.iter().any(|x| &x.name == *k)
                    })
                {
                    bad += 1;
                    eprintln!(
                        "{}: field `paraphrases.personas.{unknown}`: unknown persona (not in the axis library): remove it or add the persona to templates/persona.yaml",
                        f.display()
                    );
                }
            }
            Err(e) => {
                bad += 1;
                eprintln!("{}", crate::term::sanitize(&e.to_string()));
            }
        }
    }
    if bad > 0 {
        eprintln!("{bad} of {} probe files have problems", files.len());
        return Ok(ExitCode::from(2));
    }
    println!("{} probe files OK", files.len());
    Ok(ExitCode::SUCCESS)
}

fn expand(project: &Project, a: &ExpandArgs) -> Result<ExitCode> {
    let strategy = project.strategy(a.strategy)?;
    let seed = a.seed.or(project.config.sweep.seed).unwrap_or(0);
    let filter = a.axes.clone().unwrap_or_default();
    let lib = project.library()?;
    let files = project.probe_files(&a.paths)?;
    // Load every probe first: a bad file fails before anything is printed.
    let mut probes = Vec::with_capacity(files.len());
    for f in &files {
        probes.push(Probe::load(f)?);
    }
    if strategy == Strategy::Full && !a.yes {
        let mut total: u64 = 0;
        for p in &probes {
            let v = crate::expand::axis_values(p, &lib, &filter)?;
            total += v.iter().map(|(_, x)| x.len() as u64).product::<u64>();
        }
        if total > crate::limits::MAX_VARIANTS_WITHOUT_YES {
            return Err(Error::Refused(format!("`full` would create {total} variants (limit {} without --yes); use --yes, or --strategy pairwise / sample:N", crate::limits::MAX_VARIANTS_WITHOUT_YES)).into());
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    for p in &probes {
        let x = ProbeExpansion::new(p, &lib)?;
        if a.count {
            let n = x.points(strategy, seed, &filter)?.count();
            writeln!(out, "{}\t{n}", p.id)?;
            continue;
        }
        let mut line = Vec::new();
        for axes in x.points(strategy, seed, &filter)? {
            line.clear();
            x.write_json_line(axes, &mut line)?;
            out.write_all(&line)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
