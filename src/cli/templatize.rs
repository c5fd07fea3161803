//! The `templatize` command: an incident (a native record, or a captured OpenAI/Anthropic
//! request) into a probe family file, and what it found in it.

use anyhow::{Context, Result};
use cliffprobe::domain::Tier;
use cliffprobe::error::Error;
use cliffprobe::expand::AxisFilter;
use cliffprobe::grade::check::Check;
use cliffprobe::incident::Incident;
use cliffprobe::probe::{self, Probe};
use cliffprobe::project::Project;
use cliffprobe::templatize::{self, TemplatizeOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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

fn parse_tier(s: &str) -> std::result::Result<Tier, String> {
    Tier::parse(s)
        .ok_or_else(|| format!("unknown tier `{s}`; expected easy, medium, hard or frontier"))
}

pub(crate) fn templatize_cmd(project: &Project, a: &TemplatizeArgs) -> Result<ExitCode> {
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
        crate::cli::paraphrase::require_phrasing(&t.probe, &path)?;
        let provider = crate::cli::paraphrase::provider_for(project, model)?;
        let personas = crate::cli::paraphrase::personas_for(&t.probe, &lib, None)?;
        crate::cli::paraphrase::freeze(
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
        cliffprobe::term::sanitize(&p.capability)
    )?;
    writeln!(
        out,
        "  question    {:?}",
        cliffprobe::grade::excerpt(&p.slots.question, 100)
    )?;
    for (id, s) in &p.slots.tool_outputs {
        match &s.data {
            Some(d) => {
                let keys: Vec<String> = s
                    .key_records
                    .iter()
                    .map(|i| {
                        let ids: Vec<String> = s
                            .key_fields
                            .iter()
                            .filter_map(|f| {
                                d.records.get(*i).and_then(|r| r.get(f)).map(|v| {
                                    format!("{f}={}", cliffprobe::tool_output::scalar_text(v))
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
                    cliffprobe::term::sanitize(id),
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
                cliffprobe::term::sanitize(id),
                s.original.len()
            )?,
        }
    }
    for (name, d) in &p.slots.documents {
        writeln!(
            out,
            "  document    {}: {} chars; key phrases {:?}",
            cliffprobe::term::sanitize(name),
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
                cliffprobe::term::sanitize(&cliffprobe::grade::excerpt(b, 300))
            )?;
        }
    }
    if p.invariant {
        writeln!(
            out,
            "  invariant   every variant's answer must agree with the canonical's{}",
            match &p.answer_pattern {
                Some(re) => format!(" (answer_pattern {:?})", cliffprobe::term::sanitize(re)),
                None => String::new(),
            }
        )?;
    }
    match t.bad_output_status {
        Some(cliffprobe::grade::CaseStatus::Pass) => writeln!(
            out,
            "  bad output  PASSES the checks: they do not reproduce the failure (written because of --force)"
        )?,
        Some(cliffprobe::grade::CaseStatus::Ungraded) => writeln!(
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
            cliffprobe::term::sanitize(&set.model),
            set.phrasing_values().len()
        )?;
    }
    let values = cliffprobe::expand::axis_values(p, &lib, &AxisFilter::default())?;
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
    let seed =
        project.config.sweep.seed.unwrap_or(0) ^ cliffprobe::expand::variant_seed(&p.digest());
    writeln!(
        out,
        "  variants    {}",
        cliffprobe::expand::strategy_counts(&values, seed)
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(" · ")
    )?;
    for w in &t.warnings {
        writeln!(out, "  warning     {}", cliffprobe::term::sanitize(w))?;
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
    format!("{} {}", c.kind(), cliffprobe::grade::excerpt(&short, 60))
}
