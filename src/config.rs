//! `cliffprobe.toml`: the models, the sweep defaults and the pre-committed floors.
//!
//! Unknown keys are errors (with line and column), because a misspelt `max_concurency`
//! silently ignored would make a nightly sweep hammer an endpoint. API keys are never in this
//! file: only the *name* of the environment variable that holds one.

use crate::domain::Tier;
use crate::error::{Error, Location, Result, line_col};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the suite lives (default `probes`).
    #[serde(default)]
    pub suite: Option<PathBuf>,
    /// Where the axis libraries live (default `templates`; embedded defaults when absent).
    #[serde(default)]
    pub templates: Option<PathBuf>,
    /// The store URL or path (default `.cliffprobe/cliffprobe.db`): a SQLite file, or
    /// `postgresql://USER@HOST[:PORT]/DB` for a team store on PostgreSQL.
    #[serde(default)]
    pub store: Option<String>,
    /// The name of an environment variable holding the store URL (so a PostgreSQL password
    /// never sits in this file); when set, it wins over `store`, and its absence is an error.
    #[serde(default)]
    pub store_env: Option<String>,
    /// Models by name.
    #[serde(default)]
    pub models: IndexMap<String, ModelConfig>,
    /// Sweep defaults.
    #[serde(default)]
    pub sweep: SweepDefaults,
    /// Pre-committed minimum pass rate per tier (`hard = 0.45`).
    #[serde(default)]
    pub floors: IndexMap<String, f64>,
    /// The judge model that grades `judge` checks (`[judge]`); none: judge checks are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeConfig>,
    /// Thresholds of the measured tiers (`[tiers] easy = 0.98, medium = 0.5`). Left out of the
    /// digest while at their defaults, so configs without `[tiers]` keep their digest.
    #[serde(default, skip_serializing_if = "TiersConfig::is_default")]
    pub tiers: TiersConfig,
}

/// `[judge]`: which configured model grades `judge` checks, and how.
///
/// The judge is one of the `[models.NAME]` tables, so its provider, endpoint, key variable,
/// timeout, retries, rate limits and prices are configured once, in the usual place. It is
/// not swept as a graded model unless named with `--model`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeConfig {
    /// The `[models.NAME]` that judges.
    pub model: String,
    /// Judge calls in flight at once (default: the judge model's `max_concurrency`, else 8).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Instructions that replace the default judge prompt ([`crate::grade::judge::DEFAULT_PROMPT`]);
    /// the rubric, conversation and answer are still given in the documented layout.
    #[serde(default)]
    pub prompt: Option<String>,
}

/// `[tiers]`: the pass fractions that separate the measured tiers (see
/// [`crate::analysis::tiers`] for the rule). `easy` > `medium` > 0, both at most 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TiersConfig {
    /// Lowest pass fraction of an `easy` variant (default 0.98).
    #[serde(default = "default_easy")]
    pub easy: f64,
    /// Lowest pass fraction of a `medium` variant (default 0.5).
    #[serde(default = "default_medium")]
    pub medium: f64,
}

fn default_easy() -> f64 {
    DEFAULT_EASY
}

fn default_medium() -> f64 {
    DEFAULT_MEDIUM
}

impl Default for TiersConfig {
    fn default() -> Self {
        TiersConfig {
            easy: default_easy(),
            medium: default_medium(),
        }
    }
}

impl TiersConfig {
    fn is_default(&self) -> bool {
        *self == TiersConfig::default()
    }

    /// As the analysis' thresholds.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            easy: self.easy,
            medium: self.medium,
        }
    }
}

/// Which wire protocol a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible chat-completions server.
    Openai,
    /// The Anthropic Messages API.
    Anthropic,
    /// The built-in, offline, simulated model (demos and tests only).
    Mock,
}

impl ProviderKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Mock => "mock",
        }
    }
}

/// `max_tokens_field`: the name of the output-token limit in an OpenAI chat-completions body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_completion_tokens` for OpenAI reasoning model ids, else `max_tokens`.
    #[default]
    Auto,
    /// Always `max_tokens` (most OpenAI-compatible servers).
    MaxTokens,
    /// Always `max_completion_tokens` (OpenAI's o-series and gpt-5 models).
    MaxCompletionTokens,
}

/// Whether a model id names one of OpenAI's reasoning model families (o1, o3, o4, gpt-5),
/// which reject `max_tokens` and sampling temperatures. A routing prefix (`openai/o3-mini` on
/// OpenRouter or LiteLLM) is ignored.
pub fn is_openai_reasoning_model(model: &str) -> bool {
    let id = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let family = |f: &str| {
        id.strip_prefix(f)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    };
    family("o1") || family("o3") || family("o4") || id.starts_with("gpt-5")
}

/// One `[models.NAME]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Wire protocol.
    pub provider: ProviderKind,
    /// Base URL (`https://api.openai.com/v1`, `http://localhost:11434/v1`, …).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The pinned model id sent to the endpoint.
    pub model: String,
    /// Name of the environment variable holding the API key (never the key itself).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Extra HTTP headers.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// Sampling temperature (default: 0).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Maximum output tokens (default 1024).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Which request field carries `max_tokens` for the `openai` provider: `max_tokens`,
    /// `max_completion_tokens` (OpenAI's reasoning models reject `max_tokens`), or `auto`
    /// (the default: `max_completion_tokens` for the o1/o3/o4/gpt-5 model ids, see
    /// [`ModelConfig::uses_max_completion_tokens`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<MaxTokensField>,
    /// Per-request timeout in seconds (default 60).
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Maximum requests in flight for this model.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Tokens per minute (estimated as characters / 4 before the call).
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Retries for transient errors (default 4).
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// USD per million input tokens.
    #[serde(default)]
    pub price_input: Option<f64>,
    /// USD per million output tokens.
    #[serde(default)]
    pub price_output: Option<f64>,
    /// Wire-format choices for servers that disagree on what they accept (`[models.NAME.compat]`).
    /// Left out of the digest while at their defaults.
    #[serde(default, skip_serializing_if = "Compat::is_default")]
    pub compat: Compat,
}

/// `[models.NAME.compat]`: the few places where real servers disagree on the request shape.
/// The defaults are what the widest set of servers accepts; a server that wants the other
/// shape gets it here instead of from a fork (see the README's table of servers tested).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compat {
    /// `openai` provider: the `content` of an assistant turn that only calls tools.
    #[serde(default)]
    pub tool_call_content: ToolCallContent,
    /// `anthropic` provider: how a turn made of one text block is sent.
    #[serde(default)]
    pub text_content: TextContent,
}

impl Compat {
    /// True when every choice is the default.
    pub fn is_default(&self) -> bool {
        *self == Compat::default()
    }
}

/// `compat.tool_call_content`: what an assistant turn with `tool_calls` and no text carries as
/// `content` in an OpenAI chat-completions body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallContent {
    /// `"content": ""` (the default): accepted by OpenAI, vLLM, Ollama, llama.cpp's server,
    /// llama-cpp-python (whose chat templates read `message.content`) and LiteLLM.
    #[default]
    Empty,
    /// `"content": null`, for a server that rejects an empty string there.
    Null,
    /// No `content` key at all, for a server that rejects both.
    Omit,
}

/// `compat.text_content`: how an Anthropic Messages turn holding only one text block is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextContent {
    /// A plain string (the default): the API allows it, and gateways that translate to the
    /// OpenAI shape (LiteLLM's `/v1/messages`) pass it on as a string, which every backend's
    /// chat template can concatenate.
    #[default]
    String,
    /// A list of content blocks, always.
    Blocks,
}

impl ModelConfig {
    /// Warns when the model id looks like a floating alias, which makes results unrepeatable.
    pub fn floating_alias_warning(&self, name: &str) -> Option<String> {
        let m = self.model.to_lowercase();
        let floating = m.ends_with("-latest")
            || m.ends_with(":latest")
            || m == "latest"
            || m.ends_with("-preview");
        floating.then(|| {
            format!(
                "model `{name}` uses `{}`, which looks like a floating alias: pin a dated id so runs stay comparable",
                self.model
            )
        })
    }

    /// Whether the OpenAI body carries `max_completion_tokens` instead of `max_tokens` (and
    /// leaves `temperature` out unless it is configured): `max_tokens_field`, or with `auto`
    /// (the default) when the model id is a reasoning model's ([`is_openai_reasoning_model`]).
    pub fn uses_max_completion_tokens(&self) -> bool {
        match self.max_tokens_field.unwrap_or_default() {
            MaxTokensField::MaxTokens => false,
            MaxTokensField::MaxCompletionTokens => true,
            MaxTokensField::Auto => is_openai_reasoning_model(&self.model),
        }
    }

    /// Timeout in seconds.
    pub fn timeout_secs(&self) -> f64 {
        self.timeout.unwrap_or(60.0)
    }

    /// Cost in USD of one call with these token counts, when prices are configured.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> Option<f64> {
        if self.price_input.is_none() && self.price_output.is_none() {
            return None;
        }
        Some(
            self.price_input.unwrap_or(0.0) * input_tokens as f64 / 1e6
                + self.price_output.unwrap_or(0.0) * output_tokens as f64 / 1e6,
        )
    }
}

/// `[sweep]` defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepDefaults {
    /// Expansion strategy (`pairwise` by default).
    #[serde(default)]
    pub strategy: Option<String>,
    /// Seed for every random choice.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Samples per variant.
    #[serde(default)]
    pub repeats: Option<u32>,
    /// Requests in flight across all models.
    #[serde(default)]
    pub concurrency: Option<usize>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Config::parse(path, &text)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        Config::parse_inner(path, text).map_err(|e| match e {
            // Point a `judge.*` problem at the `[judge]` table's line.
            Error::Input {
                mut location,
                message,
            } if location.line.is_none()
                && location
                    .field
                    .as_deref()
                    .is_some_and(|f| f.starts_with("judge")) =>
            {
                location.line = text
                    .lines()
                    .position(|l| l.trim() == "[judge]")
                    .map(|i| i + 1);
                Error::Input { location, message }
            }
            other => other,
        })
    }

    fn parse_inner(path: &Path, text: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_col(text, s.start))
                .map(|(l, c)| (Some(l), Some(c)))
                .unwrap_or((None, None));
            Error::Input {
                location: Location {
                    path: path.to_path_buf(),
                    line,
                    column,
                    field: e.span().and_then(|s| field_at(text, s.start)),
                },
                message: e.message().to_string(),
            }
        })?;
        cfg.validate(path)?;
        cfg.validate_limits(path, text)?;
        cfg.validate_tiers(path, text)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        for (name, m) in &self.models {
            let field = |f: &str| format!("models.{name}.{f}");
            if m.model.trim().is_empty() {
                return Err(Error::field(
                    path,
                    field("model"),
                    "must name the pinned model id",
                ));
            }
            if m.provider != ProviderKind::Mock
                && m.base_url.is_none()
                && m.provider == ProviderKind::Openai
            {
                return Err(Error::field(
                    path,
                    field("base_url"),
                    "is required for provider `openai` (e.g. https://api.openai.com/v1)",
                ));
            }
            if let Some(env) = &m.api_key_env
                && (env.is_empty() || env.starts_with("sk-") || env.contains(char::is_whitespace))
            {
                return Err(Error::field(
                    path,
                    field("api_key_env"),
                    "must be the *name* of an environment variable (e.g. OPENAI_API_KEY), never the key itself",
                ));
            }
            if m.max_tokens_field.is_some() && m.provider == ProviderKind::Anthropic {
                return Err(Error::field(
                    path,
                    field("max_tokens_field"),
                    "is for the openai provider only (the Anthropic Messages API always takes max_tokens): remove it",
                ));
            }
            if m.compat.tool_call_content != ToolCallContent::default()
                && m.provider == ProviderKind::Anthropic
            {
                return Err(Error::field(
                    path,
                    field("compat.tool_call_content"),
                    "is for the openai provider only (Anthropic tool calls are tool_use blocks): remove it",
                ));
            }
            if m.compat.text_content != TextContent::default() && m.provider == ProviderKind::Openai
            {
                return Err(Error::field(
                    path,
                    field("compat.text_content"),
                    "is for the anthropic provider only (OpenAI bodies always carry plain strings): remove it",
                ));
            }
        }
        if let Some(j) = &self.judge {
            if !self.models.contains_key(&j.model) {
                return Err(Error::field(
                    path,
                    "judge.model",
                    format!(
                        "`{}` is not a configured model; expected one of the [models.NAME] tables: {}",
                        j.model,
                        if self.models.is_empty() {
                            "(none configured)".to_string()
                        } else {
                            self.models.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ),
                ));
            }
            if j.prompt.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return Err(Error::field(
                    path,
                    "judge.prompt",
                    "is empty: remove it to use the default judge prompt",
                ));
            }
        }
        for (tier, floor) in &self.floors {
            if Tier::parse(tier).is_none() {
                return Err(Error::field(
                    path,
                    format!("floors.{tier}"),
                    "unknown tier; expected easy, medium, hard or frontier",
                ));
            }
            if !(0.0..=1.0).contains(floor) {
                return Err(Error::field(
                    path,
                    format!("floors.{tier}"),
                    "must be a pass rate between 0 and 1",
                ));
            }
        }
        Ok(())
    }

    /// The sweep's limits and prices: each must be a number the sweep can act on. Zero, negative,
    /// NaN or absurd values are refused naming the file, line and field (an `rpm = 0` once
    /// made the rate bucket divide by zero and the sweep wait for ever).
    fn validate_limits(&self, path: &Path, text: &str) -> Result<()> {
        let err = |table: &str, key: &str, message: String| Error::Input {
            location: Location {
                path: path.to_path_buf(),
                line: table_key_line(text, table, key),
                column: None,
                field: Some(format!("{table}.{key}")),
            },
            message,
        };
        let count = |table: &str, key: &str, v: Option<u64>, max: u64, what: &str| match v {
            Some(v) if v == 0 || v > max => Err(err(
                table,
                key,
                format!("is {v}; expected {what} from 1 to {max}"),
            )),
            _ => Ok(()),
        };
        for (name, m) in &self.models {
            let table = format!("models.{name}");
            let t = table.as_str();
            count(
                t,
                "rpm",
                m.rpm.map(u64::from),
                LIMIT_MAX_RPM,
                "requests per minute",
            )?;
            count(t, "tpm", m.tpm, LIMIT_MAX_TPM, "tokens per minute")?;
            count(
                t,
                "max_tokens",
                m.max_tokens.map(u64::from),
                LIMIT_MAX_TOKENS,
                "answer tokens",
            )?;
            count(
                t,
                "max_concurrency",
                m.max_concurrency.map(|n| n as u64),
                LIMIT_MAX_CONCURRENCY,
                "requests in flight",
            )?;
            if let Some(n) = m.max_retries
                && n > LIMIT_MAX_RETRIES
            {
                return Err(err(
                    t,
                    "max_retries",
                    format!(
                        "is {n}; expected at most {LIMIT_MAX_RETRIES} retries of a transient fault"
                    ),
                ));
            }
            if let Some(v) = m.timeout
                && !(v.is_finite() && v > 0.0 && v <= LIMIT_MAX_TIMEOUT_SECS)
            {
                return Err(err(
                    t,
                    "timeout",
                    format!(
                        "is {v}; expected a number of seconds above 0 and at most {LIMIT_MAX_TIMEOUT_SECS}"
                    ),
                ));
            }
            for (key, price) in [
                ("price_input", m.price_input),
                ("price_output", m.price_output),
            ] {
                if let Some(v) = price
                    && !(v.is_finite() && (0.0..=LIMIT_MAX_PRICE).contains(&v))
                {
                    return Err(err(
                        t,
                        key,
                        format!(
                            "is {v}; expected US dollars per million tokens, from 0 to {LIMIT_MAX_PRICE}"
                        ),
                    ));
                }
            }
            if let Some(v) = m.temperature
                && !(v.is_finite() && (0.0..=2.0).contains(&v))
            {
                return Err(err(t, "temperature", format!("is {v}; expected 0 to 2")));
            }
        }
        count(
            "sweep",
            "concurrency",
            self.sweep.concurrency.map(|n| n as u64),
            LIMIT_MAX_CONCURRENCY,
            "requests in flight",
        )?;
        count(
            "judge",
            "concurrency",
            self.judge
                .as_ref()
                .and_then(|j| j.concurrency)
                .map(|n| n as u64),
            LIMIT_MAX_CONCURRENCY,
            "judge requests in flight",
        )?;
        count(
            "sweep",
            "repeats",
            self.sweep.repeats.map(u64::from),
            LIMIT_MAX_REPEATS,
            "samples per variant",
        )?;
        Ok(())
    }

    /// `[tiers]`: each threshold in (0, 1], `easy` above `medium`; errors name the line.
    fn validate_tiers(&self, path: &Path, text: &str) -> Result<()> {
        let t = &self.tiers;
        let err = |key: &str, message: String| Error::Input {
            location: Location {
                path: path.to_path_buf(),
                line: table_key_line(text, "tiers", key),
                column: None,
                field: Some(format!("tiers.{key}")),
            },
            message,
        };
        for (key, v) in [("easy", t.easy), ("medium", t.medium)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(err(
                    key,
                    format!("is {v}; expected a pass fraction above 0 and at most 1"),
                ));
            }
        }
        if t.medium >= t.easy {
            return Err(err(
                "medium",
                format!(
                    "is {}, not below easy ({}); the thresholds must decrease: easy > medium > 0",
                    t.medium, t.easy
                ),
            ));
        }
        Ok(())
    }

    /// A digest of the configuration without secrets (keys are never here; header values are
    /// dropped because they may carry tokens).
    pub fn digest(&self) -> String {
        let mut redacted = self.clone();
        for m in redacted.models.values_mut() {
            for v in m.headers.values_mut() {
                *v = "<redacted>".to_string();
            }
        }
        let json = serde_json::to_vec(&redacted).unwrap_or_default();
        blake3::hash(&json).to_hex()[..16].to_string()
    }
}

/// Largest `rpm` accepted (a million requests a minute is beyond any endpoint).
pub const LIMIT_MAX_RPM: u64 = 1_000_000;
/// Largest `tpm` accepted.
pub const LIMIT_MAX_TPM: u64 = 10_000_000_000;
/// Largest `max_concurrency`, `[sweep] concurrency` and `[judge] concurrency` accepted.
pub const LIMIT_MAX_CONCURRENCY: u64 = 10_000;
/// Largest `[sweep] repeats` (and `--repeats`) accepted.
pub const LIMIT_MAX_REPEATS: u64 = 10_000;
/// Largest `max_tokens` accepted (no model answers ten million tokens).
pub const LIMIT_MAX_TOKENS: u64 = 10_000_000;
/// Largest `max_retries` accepted.
pub const LIMIT_MAX_RETRIES: u32 = 100;
/// Longest `timeout` accepted, in seconds (a day).
pub const LIMIT_MAX_TIMEOUT_SECS: f64 = 86_400.0;
/// Largest price accepted, in US dollars per million tokens.
pub const LIMIT_MAX_PRICE: f64 = 10_000.0;

/// The 1-based line of `key = …` inside the `[table]` of a TOML text (a plain scan: enough for
/// pointing at a line in an error message).
fn table_key_line(text: &str, table: &str, key: &str) -> Option<usize> {
    let header = format!("[{table}]");
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l.split('#').next().is_some_and(|h| h.trim() == header);
            continue;
        }
        if inside
            && let Some(rest) = l.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return Some(i + 1);
        }
    }
    None
}

/// The dotted field (`models.a.rpm`) whose `key = value` line holds a byte offset, so a value
/// of the wrong type (`rpm = -1`, `timeout = "5"`) is reported with its field as well as its
/// line. `None` when the line is not a key/value pair (a header, a syntax error).
fn field_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    let table = text[..start].lines().rev().find_map(|l| {
        let l = l.split('#').next().unwrap_or("").trim();
        (l.starts_with('[') && !l.starts_with("[[") && l.ends_with(']'))
            .then(|| l[1..l.len() - 1].trim().to_string())
    });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

/// Default lowest pass fraction of an `easy` variant.
pub const DEFAULT_EASY: f64 = 0.98;
/// Default lowest pass fraction of a `medium` variant.
pub const DEFAULT_MEDIUM: f64 = 0.5;

/// The thresholds of the measured-tier rule (see `analysis::tiers`), as `[tiers]` sets them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Lowest pass fraction of `easy`.
    pub easy: f64,
    /// Lowest pass fraction of `medium`.
    pub medium: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            easy: DEFAULT_EASY,
            medium: DEFAULT_MEDIUM,
        }
    }
}

impl Thresholds {
    /// The measured tier of `passed` of `graded` samples; `None` without graded samples.
    pub fn tier(&self, passed: u64, graded: u64) -> Option<Tier> {
        if graded == 0 {
            return None;
        }
        let p = passed as f64 / graded as f64;
        Some(if p >= self.easy {
            Tier::Easy
        } else if p >= self.medium {
            Tier::Medium
        } else if passed > 0 {
            Tier::Hard
        } else {
            Tier::Frontier
        })
    }
}

/// The file `cliffprobe init` writes.
pub const DEFAULT_CONFIG: &str = include_str!("../examples/cliffprobe.toml");

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a config of one model `m` with the extra `lines`, expecting an input error.
    fn limit_error(lines: &str) -> (Option<usize>, Option<String>, String) {
        let text = format!(
            "[sweep]\nseed = 1\n\n[models.m]\nprovider = \"mock\"\nmodel = \"m-1\"\n{lines}\n"
        );
        match Config::parse(Path::new("cliffprobe.toml"), &text) {
            Err(Error::Input { location, message }) => (location.line, location.field, message),
            other => panic!("{lines}: expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn zero_negative_nan_and_absurd_limits_name_file_line_and_field() {
        for (lines, field, line) in [
            ("rpm = 0", "models.m.rpm", 7),
            ("tpm = 0", "models.m.tpm", 7),
            ("tpm = 99999999999999", "models.m.tpm", 7),
            ("max_concurrency = 0", "models.m.max_concurrency", 7),
            ("max_concurrency = 1000000", "models.m.max_concurrency", 7),
            ("timeout = 0", "models.m.timeout", 7),
            ("timeout = -1.5", "models.m.timeout", 7),
            ("timeout = nan", "models.m.timeout", 7),
            ("timeout = inf", "models.m.timeout", 7),
            ("max_retries = 100000", "models.m.max_retries", 7),
            ("rpm = 60\nprice_input = -1", "models.m.price_input", 8),
            ("price_output = nan", "models.m.price_output", 7),
            ("max_tokens = 0", "models.m.max_tokens", 7),
        ] {
            let (l, f, message) = limit_error(lines);
            assert_eq!(f.as_deref(), Some(field), "{lines}: {message}");
            assert_eq!(l, Some(line), "{lines}: {message}");
            assert!(message.starts_with("is "), "{lines}: {message}");
        }
        // Negative counts are not numbers of that type: TOML's own error, with the line.
        // It names the field too.
        for (lines, field) in [
            ("rpm = -5", "models.m.rpm"),
            ("tpm = nan", "models.m.tpm"),
            ("max_concurrency = 1e30", "models.m.max_concurrency"),
            ("timeout = \"5\"", "models.m.timeout"),
            ("max_retries = -1", "models.m.max_retries"),
            ("price_input = \"1\"", "models.m.price_input"),
        ] {
            let (l, f, message) = limit_error(lines);
            assert_eq!(l, Some(7), "{lines}: {message}");
            assert_eq!(f.as_deref(), Some(field), "{lines}: {message}");
        }
        let text = "[sweep]\nconcurrency = -1 # all models\n";
        let e = Config::parse(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.toml:2:") && e.contains("field `sweep.concurrency`"),
            "{e}"
        );
        let text = "[sweep]\nconcurrency = 0\n";
        let e = Config::parse(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.toml") && e.contains("sweep.concurrency"),
            "{e}"
        );
        assert!(e.contains(":2"), "{e}");
        let e = Config::parse(Path::new("c.toml"), "[sweep]\nseed = 3\nrepeats = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:3: field `sweep.repeats`"), "{e}");
    }

    #[test]
    fn sensible_limits_are_accepted() {
        let text = "[models.m]\nprovider = \"mock\"\nmodel = \"m-1\"\nrpm = 1\ntpm = 2000\nmax_concurrency = 1\ntimeout = 0.5\nmax_retries = 0\nprice_input = 0\nprice_output = 15\n";
        Config::parse(Path::new("c.toml"), text).unwrap();
    }

    #[test]
    fn unknown_key_names_line() {
        let err = Config::parse(
            Path::new("c.toml"),
            "[models.a]\nprovider = \"mock\"\nmodel = \"m\"\nmax_concurency = 3\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("c.toml:4:"), "{msg}");
        assert!(msg.contains("max_concurency"), "{msg}");
    }

    #[test]
    fn default_config_parses() {
        Config::parse(Path::new("default"), DEFAULT_CONFIG).unwrap();
    }

    #[test]
    fn reasoning_model_ids_are_recognised() {
        for id in [
            "o1",
            "o1-2024-12-17",
            "o3-mini-2025-01-31",
            "O4-mini",
            "gpt-5",
            "gpt-5-mini-2025-08-07",
            "openai/o3",
        ] {
            assert!(is_openai_reasoning_model(id), "{id}");
        }
        for id in [
            "gpt-4o-2024-08-06",
            "o10x",
            "llama3:8b",
            "qwen-o1",
            "gpt-4.1",
        ] {
            assert!(!is_openai_reasoning_model(id), "{id}");
        }
    }

    #[test]
    fn max_tokens_field_is_for_openai_only() {
        let anthropic = "[models.c]\nprovider = \"anthropic\"\nmodel = \"claude-x\"\nmax_tokens_field = \"max_completion_tokens\"\n";
        let msg = Config::parse(Path::new("c.toml"), anthropic)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("models.c.max_tokens_field"), "{msg}");
        let bad = "[models.g]\nprovider = \"openai\"\nbase_url = \"http://x\"\nmodel = \"m\"\nmax_tokens_field = \"completion\"\n";
        let msg = Config::parse(Path::new("c.toml"), bad)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("c.toml:5"), "{msg}");
        assert!(msg.contains("max_completion_tokens"), "{msg}");
    }

    #[test]
    fn judge_names_a_configured_model() {
        let base = "[models.a]\nprovider = \"mock\"\nmodel = \"m\"\n\n";
        let ok = Config::parse(
            Path::new("c.toml"),
            &format!("{base}[judge]\nmodel = \"a\"\nconcurrency = 2\n"),
        )
        .unwrap();
        assert_eq!(ok.judge.unwrap().model, "a");
        let err = Config::parse(
            Path::new("c.toml"),
            &format!("{base}[judge]\nmodel = \"nope\"\n"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("c.toml:5: field `judge.model`"), "{msg}");
        assert!(msg.contains("nope") && msg.contains("a"), "{msg}");
        let err = Config::parse(
            Path::new("c.toml"),
            &format!("{base}[judge]\nmodel = \"a\"\ntemperature = 1\n"),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("c.toml:7:"), "{err}");
    }

    #[test]
    fn tiers_thresholds_default_and_are_checked_with_their_line() {
        let cfg = Config::parse(Path::new("c.toml"), "").unwrap();
        assert_eq!(cfg.tiers, TiersConfig::default());
        assert_eq!((cfg.tiers.easy, cfg.tiers.medium), (0.98, 0.5));
        // No [tiers]: the digest is what it was before the table existed.
        assert!(!serde_json::to_string(&cfg).unwrap().contains("tiers"));
        let cfg = Config::parse(Path::new("c.toml"), "[tiers]\neasy = 0.9\n").unwrap();
        assert_eq!((cfg.tiers.easy, cfg.tiers.medium), (0.9, 0.5));

        let err = |text: &str| {
            Config::parse(Path::new("c.toml"), text)
                .unwrap_err()
                .to_string()
        };
        let e = err("[sweep]\nseed = 1\n\n[tiers]\neasy = 0.9\nmedium = 0.95\n");
        assert!(e.starts_with("c.toml:6: field `tiers.medium`"), "{e}");
        assert!(e.contains("must decrease"), "{e}");
        let e = err("[tiers]\neasy = 1.5\n");
        assert!(e.starts_with("c.toml:2: field `tiers.easy`"), "{e}");
        let e = err("[tiers]\nmedium = 0\n");
        assert!(e.starts_with("c.toml:2: field `tiers.medium`"), "{e}");
        let e = err("[tiers]\nhard = 0.1\n");
        assert!(e.contains("hard"), "{e}");
    }

    #[test]
    fn floating_alias_warns() {
        let cfg = Config::parse(
            Path::new("c"),
            "[models.a]\nprovider=\"openai\"\nbase_url=\"http://x\"\nmodel=\"gpt-4o-latest\"\n",
        )
        .unwrap();
        assert!(cfg.models["a"].floating_alias_warning("a").is_some());
    }
}
