//! `cliffprobe paraphrase`, and the `--paraphrase-with` step of `templatize`: ask a configured
//! model for paraphrases of each probe's question and freeze them into the probe file.

use anyhow::{Context, Result};
use cliffprobe::axes::{AxisLibrary, ORIGINAL};
use cliffprobe::error::Error;
use cliffprobe::paraphrase::ask::{self, AskOptions};
use cliffprobe::probe::paraphrases::Paraphrases;
use cliffprobe::probe::{self, Probe};
use cliffprobe::project::Project;
use cliffprobe::provider::Provider;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `paraphrase` options.
#[derive(Debug, clap::Args)]
pub struct ParaphraseArgs {
    /// Probe files or folders.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The model that writes the paraphrases: a `[models.NAME]` of cliffprobe.toml.
    #[arg(long = "with", value_name = "MODEL")]
    pub with: String,
    /// Paraphrases per persona (the phrasing values `llm-1` … `llm-N`).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub paraphrases: u32,
    /// Personas to write for: `a,b` or `all` (default: the library's personas when the probe
    /// varies the persona axis). The neutral voice (`original`) is always written.
    #[arg(long, value_name = "LIST")]
    pub personas: Option<String>,
    /// Replace paraphrases a probe already has.
    #[arg(long)]
    pub force: bool,
    /// Print the section that would be frozen instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `cliffprobe paraphrase`.
pub fn paraphrase_cmd(project: &Project, a: &ParaphraseArgs) -> Result<ExitCode> {
    let lib = project.library()?;
    let files = probe::discover(&a.paths)?;
    // Everything that can be refused is checked before the first (paid) call.
    let mut probes = Vec::with_capacity(files.len());
    for f in &files {
        // With --force the old set is replaced, so it need not validate (a stale set must be
        // replaceable); without, a broken set is reported as such.
        let p = if a.force {
            let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
            Probe::parse_dropping_paraphrases(f, &text)?
        } else {
            Probe::load(f)?
        };
        let personas = personas_for(&p, &lib, a.personas.as_deref())?;
        if p.paraphrases.is_some() && !a.force && !a.dry_run {
            return Err(Error::Refused(format!(
                "{}: probe `{}` already has frozen paraphrases; use --force to replace them (review the diff afterwards)",
                f.display(),
                p.id
            ))
            .into());
        }
        require_phrasing(&p, f)?;
        probes.push((f.clone(), p, personas));
    }
    let provider = provider_for(project, &a.with)?;
    let mut out = std::io::stdout().lock();
    for (path, mut p, personas) in probes {
        // With --dry-run stdout holds only the YAML; progress goes to stderr.
        let progress: &mut dyn Write = if a.dry_run {
            &mut std::io::stderr()
        } else {
            &mut out
        };
        freeze(
            &provider,
            &lib,
            &mut p,
            a.paraphrases as usize,
            personas,
            progress,
        )?;
        let yaml = p.to_yaml();
        Probe::parse(&path, &yaml)
            .context("the probe would not load back (a bug: please report it)")?;
        if a.dry_run {
            if let Some(set) = &p.paraphrases {
                write!(out, "{}", section_yaml(set))?;
            }
        } else {
            probe::write_atomic(&path, &yaml)?;
            writeln!(out, "  wrote       {}", path.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `paraphrases:` section alone, as it appears in a probe file.
pub fn section_yaml(set: &Paraphrases) -> String {
    #[derive(serde::Serialize)]
    struct Section<'a> {
        paraphrases: &'a Paraphrases,
    }
    let mut opts = serde_saphyr::SerializerOptions::default();
    opts.prefer_block_scalars = true;
    serde_saphyr::to_string_with_options(&Section { paraphrases: set }, opts)
        .expect("paraphrases serialise")
}

/// Refuses a probe whose `phrasing` axis does not vary: its paraphrases would never run.
pub fn require_phrasing(p: &Probe, path: &std::path::Path) -> Result<()> {
    if !p.axes.iter().any(|x| x == "phrasing") {
        return Err(Error::field(
            path,
            "axes",
            format!(
                "probe `{}` does not vary the `phrasing` axis, so paraphrases would never run: add `phrasing` to `axes`",
                p.id
            ),
        )
        .into());
    }
    Ok(())
}

/// The personas to ask for: `all`, a list (each must be in the library), or by default the
/// library's personas when the probe varies the persona axis. `original` is added by
/// [`ask::paraphrase`].
pub fn personas_for(p: &Probe, lib: &AxisLibrary, spec: Option<&str>) -> Result<Vec<String>> {
    let known: Vec<String> = lib.personas.iter().map(|x| x.name.clone()).collect();
    Ok(match spec.map(str::trim) {
        None if p.axes.iter().any(|a| a == "persona") => known,
        None => Vec::new(),
        Some("all") => known,
        Some(list) => {
            let mut v = Vec::new();
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if name != ORIGINAL && !known.iter().any(|k| k == name) {
                    return Err(Error::field(
                        "<command line>",
                        "--personas",
                        format!(
                            "unknown persona `{name}`; expected `all` or some of: original, {}",
                            known.join(", ")
                        ),
                    )
                    .into());
                }
                if !v.iter().any(|x| x == name) {
                    v.push(name.to_string());
                }
            }
            v
        }
    })
}

/// The provider for `--with MODEL`, with the paraphrasing temperature (the model's, else
/// [`ask::DEFAULT_TEMPERATURE`]; none for a reasoning model that takes `max_completion_tokens`
/// unless configured) and room for several texts in the reply.
pub fn provider_for(project: &Project, model: &str) -> Result<Arc<Provider>> {
    let cfg = project.config.models.get(model).ok_or_else(|| {
        let known: Vec<&str> = project.config.models.keys().map(String::as_str).collect();
        Error::field(
            project
                .config_path
                .clone()
                .unwrap_or_else(|| PathBuf::from("cliffprobe.toml")),
            "models",
            format!(
                "no model `{model}` is configured{}",
                if known.is_empty() {
                    String::new()
                } else {
                    format!("; configured: {}", known.join(", "))
                }
            ),
        )
    })?;
    let mut cfg = cfg.clone();
    // Reasoning models (max_completion_tokens) reject any temperature but their own default.
    if !cfg.uses_max_completion_tokens() {
        cfg.temperature = Some(cfg.temperature.unwrap_or(ask::DEFAULT_TEMPERATURE));
    }
    cfg.max_tokens = Some(cfg.max_tokens.unwrap_or(2048));
    Ok(Arc::new(Provider::new(model, &cfg)?))
}

/// Asks `provider` for `count` paraphrases per persona of `p`'s question and sets
/// `p.paraphrases`, printing a line per persona to `out`.
pub fn freeze(
    provider: &Arc<Provider>,
    lib: &AxisLibrary,
    p: &mut Probe,
    count: usize,
    personas: Vec<String>,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    writeln!(
        out,
        "paraphrasing {} with {} ({} × {} voices)",
        p.id,
        provider.name(),
        count,
        1 + personas.iter().filter(|x| *x != ORIGINAL).count()
    )?;
    let opts = AskOptions { count, personas };
    let (set, outcomes) = rt.block_on(ask::paraphrase(provider, p, lib, &opts, |o| {
        // A line per voice as it completes; a closed pipe surfaces at the next write below.
        let _ = writeln!(
            out,
            "  {:<26}{}",
            o.persona,
            cliffprobe::term::sanitize(&o.summary())
        );
        let _ = out.flush();
    }))?;
    let rejected: usize = outcomes.iter().map(|o| o.rejected.len()).sum();
    let values = set.phrasing_values();
    writeln!(
        out,
        "  frozen      {} paraphrases in {} voices; phrasing values {}; {} rejected",
        set.personas.values().map(Vec::len).sum::<usize>(),
        set.personas.len(),
        match (values.first(), values.last()) {
            (Some(a), Some(b)) if a != b => format!("{a} … {b}"),
            (Some(a), _) => a.clone(),
            _ => "none".into(),
        },
        rejected
    )?;
    p.paraphrases = Some(set);
    Ok(())
}
