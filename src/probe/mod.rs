//! Probe families: one YAML file per templatized incident, the unit of the suite.
//!
//! A probe holds the conversation as a template (message contents are minijinja templates
//! over the slots), the slots themselves (the question, tool outputs parsed into records,
//! documents), the checks, the axes that apply and the promoted cases. Field order in the file
//! is the struct order below, so files diff well in review.

pub mod episode;
pub mod paraphrases;

use crate::chat::{Message, Role, ToolDef};
use crate::domain::Tier;
use crate::error::{Error, Result};
use crate::grade::check::Check;
use crate::tool_output::Records;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where a probe came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `incident`, `openai-capture` or `anthropic-capture`.
    pub kind: String,
    /// The incident file, as given to templatize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The model that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// When it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Severity as recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The output that failed in production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_output: Option<String>,
}

/// A tool output slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolOutputSlot {
    /// The tool that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The format it was captured in: json, yaml, csv, xml, markdown-table or text.
    pub format: String,
    /// The output exactly as captured (the canonical variant uses it unchanged).
    pub original: String,
    /// The parsed records, when the output is structured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Records>,
    /// Indexes (0-based) of the key records in `data.records`: never copied into distractors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_records: Vec<usize>,
    /// Fields whose values identify a key record (no distractor may share them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_fields: Vec<String>,
}

/// A document slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSlot {
    /// The text.
    pub text: String,
    /// Phrases of the key fact (never put into filler).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_phrases: Vec<String>,
}

/// The slots of a probe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slots {
    /// The question: the last user turn (or its question part).
    pub question: String,
    /// Tool outputs by id (`{{ tool_outputs.ID }}` in the template).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub tool_outputs: IndexMap<String, ToolOutputSlot>,
    /// Documents by name (`{{ documents.NAME }}` in the template).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub documents: IndexMap<String, DocumentSlot>,
}

/// One promoted hard-tier case: a variant that broke a model, kept so every later sweep runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotedCase {
    /// The variant id when promoted.
    pub variant: String,
    /// Its axis values.
    pub axes: IndexMap<String, String>,
    /// Models it failed on.
    #[serde(default)]
    pub failed_on: Vec<String>,
    /// First seen (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// Last seen (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// How many times it failed.
    #[serde(default)]
    pub failures: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A short excerpt of the failing output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

/// A probe family file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// Stable id (file stem).
    pub id: String,
    /// One-line title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Capability class.
    pub capability: String,
    /// Declared tier.
    pub tier: Tier,
    /// Invariant probe: every variant's answer must agree with the canonical variant's answer
    /// (same model, same sample) after normalisation (see [`crate::grade::invariant`]). Such a probe
    /// may have no `checks` at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invariant: bool,
    /// For invariant probes with free-text answers: a regex whose first capture group (or whole
    /// match) is the answer compared across variants. Not part of the digest: adding it never
    /// changes variant ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_pattern: Option<String>,
    /// Where it came from.
    #[serde(default)]
    pub source: Source,
    /// The conversation template. String contents are minijinja templates over the slots;
    /// literal incident text is escaped so it renders unchanged.
    pub messages: Vec<Message>,
    /// Tools offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef>,
    /// Slot values.
    pub slots: Slots,
    /// What a correct answer does.
    pub checks: Vec<Check>,
    /// Present for an agent episode: the case is a loop in which the model's tool calls are
    /// answered by the simulator this section describes (see [`crate::episode`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<episode::Episode>,
    /// Axes that apply (`persona`, `phrasing`, `length`, `format`).
    pub axes: Vec<String>,
    /// Frozen LLM paraphrases of the question (phrasing values `llm-1` …), written by
    /// `cliffprobe paraphrase`. Not part of [`Probe::digest`]: the ids of the variants that do
    /// not use them stay the same (see [`crate::expand::point_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paraphrases: Option<paraphrases::Paraphrases>,
    /// Promoted hard-tier cases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<PromotedCase>,
}

/// A probe with the file it was read from.
#[derive(Debug, Clone)]
pub struct LoadedProbe {
    /// The file.
    pub path: PathBuf,
    /// The probe.
    pub probe: Probe,
}

impl Probe {
    /// The content digest that variant ids derive from: everything that shapes a rendered
    /// request (messages, tools, slots, axes), but not the promoted cases or metadata, so that
    /// promotion does not change the ids of the variants it promotes.
    pub fn digest(&self) -> String {
        #[derive(Serialize)]
        struct Content<'a> {
            id: &'a str,
            messages: &'a [Message],
            tools: &'a [ToolDef],
            slots: &'a Slots,
            axes: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            episode: Option<&'a episode::Episode>,
        }
        // Declaring the `tools` axis adds variants and changes no request: it stays out of
        // the digest, so the variants a probe had keep their ids (and their history).
        let axes: Vec<String> = self
            .axes
            .iter()
            .filter(|a| *a != "tools")
            .cloned()
            .collect();
        let json = serde_json::to_vec(&Content {
            id: &self.id,
            messages: &self.messages,
            tools: &self.tools,
            slots: &self.slots,
            axes: &axes,
            episode: self.episode.as_ref(),
        })
        .expect("probe serialises");
        blake3::hash(&json).to_hex().to_string()
    }

    /// Parses and validates a probe file's text.
    pub fn parse(path: &Path, text: &str) -> Result<Probe> {
        if text.len() > crate::limits::MAX_INPUT_BYTES {
            return Err(Error::input(
                path,
                format!(
                    "file is larger than {} MB",
                    crate::limits::MAX_INPUT_BYTES >> 20
                ),
            ));
        }
        let probe: Probe = serde_saphyr::from_str(text).map_err(|e| Error::from_yaml(path, &e))?;
        probe.validate(path, text)?;
        Ok(probe)
    }

    /// Like [`Probe::parse`], but drops the frozen paraphrases before validating: `paraphrase
    /// --force` must be able to replace a set that no longer validates (the question was
    /// edited since, or a text was hand-edited).
    pub fn parse_dropping_paraphrases(path: &Path, text: &str) -> Result<Probe> {
        if text.len() > crate::limits::MAX_INPUT_BYTES {
            return Probe::parse(path, text);
        }
        let mut probe: Probe =
            serde_saphyr::from_str(text).map_err(|e| Error::from_yaml(path, &e))?;
        probe.paraphrases = None;
        probe.validate(path, text)?;
        Ok(probe)
    }

    /// Reads a probe file.
    pub fn load(path: &Path) -> Result<Probe> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Probe::parse(path, &text)
    }

    /// Serialises with stable key order.
    pub fn to_yaml(&self) -> String {
        let mut opts = serde_saphyr::SerializerOptions::default();
        opts.prefer_block_scalars = true;
        serde_saphyr::to_string_with_options(self, opts).expect("probe serialises")
    }

    /// Checks what the types cannot: ids, axes, slot references, template syntax.
    pub fn validate(&self, path: &Path, text: &str) -> Result<()> {
        let err = |field: &str, msg: String| {
            let mut e = Error::field(path, field, msg);
            if let Error::Input { location, .. } = &mut e {
                location.line = find_key_line(text, field.rsplit('.').next().unwrap_or(field));
            }
            e
        };
        if !is_safe_id(&self.id) {
            return Err(err(
                "id",
                format!(
                    "`{}` is not a safe id (letters, digits, `-`, `_`, at most 80)",
                    self.id
                ),
            ));
        }
        if self.checks.is_empty() && !self.invariant {
            return Err(err(
                "checks",
                "must hold at least one check (only an `invariant: true` probe may have none)"
                    .into(),
            ));
        }
        if let Some(p) = &self.answer_pattern {
            if !self.invariant {
                return Err(err(
                    "answer_pattern",
                    "is only used by invariant probes: add `invariant: true`, or remove it".into(),
                ));
            }
            if let Err(e) = regex::Regex::new(p) {
                return Err(err(
                    "answer_pattern",
                    format!("invalid regular expression: {e}"),
                ));
            }
        }
        for (i, c) in self.checks.iter().enumerate() {
            if let Check::Regex(p) = c
                && let Err(e) = regex::Regex::new(p)
            {
                return Err(err(
                    &format!("checks[{i}].regex"),
                    format!("invalid regular expression: {e}"),
                ));
            }
        }
        for a in &self.axes {
            if crate::axes::AxisName::parse(a).is_none() {
                return Err(err(
                    "axes",
                    format!(
                        "unknown axis `{a}`; expected {}",
                        crate::axes::AxisName::EXPECTED
                    ),
                ));
            }
        }
        if !self.messages.iter().any(|m| m.role == Role::User) {
            return Err(err(
                "messages",
                "must hold at least one user message".into(),
            ));
        }
        if !self
            .messages
            .iter()
            .any(|m| m.content_str().contains("{{ question }}"))
        {
            return Err(err(
                "messages",
                "no message uses the `{{ question }}` slot".into(),
            ));
        }
        let looked_up = |id: &str| {
            self.episode.as_ref().is_some_and(|e| {
                e.tools
                    .values()
                    .any(|t| t.records.as_ref().is_some_and(|l| l.slot == id))
            })
        };
        for (id, slot) in &self.slots.tool_outputs {
            let reference = format!("tool_outputs[{:?}]", id);
            if !looked_up(id)
                && !self
                    .messages
                    .iter()
                    .any(|m| m.content_str().contains(&reference))
            {
                return Err(err(
                    &format!("slots.tool_outputs.{id}"),
                    format!("no message uses it (expected `{{{{ {reference} }}}}`)"),
                ));
            }
            if let Some(data) = &slot.data
                && let Some(bad) = slot.key_records.iter().find(|i| **i >= data.records.len())
            {
                return Err(err(
                    &format!("slots.tool_outputs.{id}.key_records"),
                    format!("index {bad} is past the {} records", data.records.len()),
                ));
            }
        }
        for name in self.slots.documents.keys() {
            let reference = format!("documents[{:?}]", name);
            if !self
                .messages
                .iter()
                .any(|m| m.content_str().contains(&reference))
            {
                return Err(err(
                    &format!("slots.documents.{name}"),
                    format!("no message uses it (expected `{{{{ {reference} }}}}`)"),
                ));
            }
        }
        for (i, m) in self.messages.iter().enumerate() {
            if let Some(c) = &m.content {
                check_message_shape(c).map_err(|e| err(&format!("messages[{i}].content"), e))?;
            }
        }
        crate::template::check_message_templates(&self.messages).map_err(|e| err("messages", e))?;
        if let Some(episode) = &self.episode {
            if self.tools.is_empty() {
                return Err(err(
                    "episode",
                    "an episode needs tools to call: add the catalog under `tools`, or remove `episode`".into(),
                ));
            }
            let names: Vec<&str> = self
                .tools
                .iter()
                .map(|t| t.function.name.as_str())
                .collect();
            let slot_records = |id: &str| {
                self.slots
                    .tool_outputs
                    .get(id)
                    .map(|s| s.data.as_ref().is_some_and(|d| !d.records.is_empty()))
            };
            episode
                .validate(&names, &slot_records)
                .map_err(|p| section_err(path, text, "episode", &p.field, p.message))?;
        }
        if let Some(p) = &self.paraphrases {
            if !self.axes.iter().any(|a| a == "phrasing") {
                return Err(err(
                    "paraphrases",
                    "the probe does not vary the `phrasing` axis, so its paraphrases would never run: add `phrasing` to `axes`".into(),
                ));
            }
            p.validate(&self.slots.question)
                .map_err(|(field, msg)| paraphrase_err(path, text, &field, msg))?;
        }
        Ok(())
    }
}

/// An error in a section of the probe file (`episode`), pointing at the line of the innermost
/// key of `field` found after the keys before it (`tools.get_order.records.slot` → the `slot:`
/// line below `get_order:` below `tools:` below `episode:`).
fn section_err(path: &Path, text: &str, section: &str, field: &str, msg: String) -> Error {
    let mut e = Error::field(path, format!("{section}.{field}"), msg);
    if let Error::Input { location, .. } = &mut e {
        let mut line = find_key_line(text, section);
        if let Some(start) = line {
            let mut at = start;
            for key in field.split('.') {
                let key = key.split('[').next().unwrap_or(key);
                let needle = format!("{key}:");
                match text
                    .lines()
                    .enumerate()
                    .skip(at)
                    .find(|(_, l)| l.trim_start().trim_start_matches("- ").starts_with(&needle))
                {
                    Some((i, _)) => {
                        at = i + 1;
                        line = Some(i + 1);
                    }
                    None => break,
                }
            }
        }
        location.line = line;
    }
    e
}

/// An error in the `paraphrases:` section, pointing at the line of the field's key inside it
/// (`personas.terse-expert[1]` → the `terse-expert:` line after `paraphrases:`).
fn paraphrase_err(path: &Path, text: &str, field: &str, msg: String) -> Error {
    let mut e = Error::field(path, format!("paraphrases.{field}"), msg);
    if let Error::Input { location, .. } = &mut e {
        let start = find_key_line(text, "paraphrases").unwrap_or(1);
        let key = field.rsplit('.').next().unwrap_or(field);
        let key = key.split('[').next().unwrap_or(key);
        let needle = format!("{key}:");
        location.line = text
            .lines()
            .enumerate()
            .skip(start - 1)
            .find(|(_, l)| l.trim_start().starts_with(&needle))
            .map(|(i, _)| i + 1)
            .or(Some(start));
    }
    e
}

/// Message templates may only print slots and escaped literal braces: a hand-edited probe must
/// not run loops or grow strings without bound (fuel limits steps, not memory).
fn check_message_shape(content: &str) -> std::result::Result<(), String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let allowed = RE.get_or_init(|| {
        regex::Regex::new(
            r#"^\s*(question|tool_outputs\["[^"\\]*"\]|documents\["[^"\\]*"\]|'\{[{%#]')\s*$"#,
        )
        .expect("static regex")
    });
    let mut rest = content;
    while let Some(pos) = rest.find('{') {
        let tail = &rest[pos..];
        if tail.starts_with("{%") || tail.starts_with("{#") {
            return Err("statements and comments (`{%`, `{#`) are not allowed in message templates; write literal braces as {{ '{%' }}".into());
        }
        if let Some(body) = tail.strip_prefix("{{") {
            let end = body.find("}}").ok_or("an unclosed `{{`")?;
            let expr = &body[..end];
            if !allowed.is_match(expr) {
                return Err(format!(
                    "`{{{{{expr}}}}}` is not allowed: message templates may only use {{{{ question }}}}, {{{{ tool_outputs[\"ID\"] }}}} and {{{{ documents[\"NAME\"] }}}}"
                ));
            }
            rest = &body[end + 2..];
        } else {
            rest = &tail[1..];
        }
    }
    Ok(())
}

/// The 1-based line of the first `key:` in YAML text, to point errors at a line.
pub fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let key = key.split('[').next().unwrap_or(key);
    let needle = format!("{key}:");
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ");
            t.starts_with(&needle)
        })
        .map(|i| i + 1)
}

/// Lists probe files under the given paths (files or folders, recursively), sorted, so every
/// command sees the suite in the same order.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(Error::input(p, "no such file or folder"));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(p);
        }
    }
    Ok(())
}

/// Writes `text` to `path` atomically: a temporary file in the same folder, fsync, rename.
/// A crash leaves the old file or the new one, never half of either.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("probe"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Whether an id is safe as a file name inside the suite (no separators, no `..`).
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 80
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !id.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::check_message_shape;

    #[test]
    fn message_templates_only_print_slots() {
        assert!(
            check_message_shape(
                "Hi {{ question }} and {{ tool_outputs[\"call_1\"] }} {{ '{{' }} x"
            )
            .is_ok()
        );
        assert!(check_message_shape("{% for i in range(9) %}x{% endfor %}").is_err());
        assert!(check_message_shape("{{ question * 1000 }}").is_err());
        assert!(check_message_shape("{{ question").is_err());
        assert!(check_message_shape("plain { braces }").is_ok());
    }
}
