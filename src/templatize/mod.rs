//! Templatize: from one incident to a probe family.
//!
//! Finds the slots (the question = the last user turn or its question part, each tool output,
//! each document), the key records a question is about (so that distractors never copy them),
//! turns the conversation into a template whose literal text is escaped, and checks that the
//! checks really reproduce the failure: checks that pass the very output that failed in
//! production would make a probe that can never catch the bug.

pub mod episode;

use crate::chat::{Message, Role};
use crate::domain::Tier;
use crate::error::{Error, Result};
use crate::grade::check::Check;
use crate::grade::{self, CaseStatus};
use crate::incident::Incident;
use crate::probe::{DocumentSlot, Probe, Slots, Source, ToolOutputSlot, is_safe_id};
use crate::text::template_literal;
use crate::tool_output::{self, Records};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// Options of `cliffprobe templatize`.
#[derive(Debug, Clone, Default)]
pub struct TemplatizeOptions {
    /// Extra checks from `--expect`.
    pub expect: Vec<Check>,
    /// Capability class override.
    pub capability: Option<String>,
    /// Tier (default hard).
    pub tier: Option<Tier>,
    /// Probe id override.
    pub id: Option<String>,
    /// Values that identify the key records (`--key`), overriding detection.
    pub keys: Vec<String>,
    /// Write even when the checks pass the bad output.
    pub force: bool,
    /// Make the probe invariant (`--invariant`), as the incident's `invariant: true` does.
    pub invariant: bool,
    /// The invariant probe's `answer_pattern` (`--answer-pattern`), overriding the incident's.
    pub answer_pattern: Option<String>,
    /// Whether the probe is an agent episode (`--episode`, `--no-episode`).
    pub episode: EpisodeMode,
}

/// When `templatize` makes an agent episode (see [`crate::episode`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EpisodeMode {
    /// For a multi-step incident ([`crate::templatize::episode::is_multi_step`]): two or more
    /// tool rounds after the question, or a bad tool call made after a tool result. One
    /// look-up and a wrong final answer stays single-turn (it probes reading, at one call).
    #[default]
    Auto,
    /// `--episode`: any incident with tools (its recorded results answer the calls).
    Always,
    /// `--no-episode`: the recorded turns are frozen into the prompt.
    Never,
}

/// The result: a probe and what was found, for the summary.
#[derive(Debug, Clone)]
pub struct Templatized {
    /// The probe family.
    pub probe: Probe,
    /// Warnings for the reviewer.
    pub warnings: Vec<String>,
    /// How the bad output grades (None when the incident has none).
    pub bad_output_status: Option<CaseStatus>,
}

/// How a probe file must look when an incident has no checks.
pub const EXPECTED_HELP: &str = "add an `expected` list to the incident, for example:\n\n  expected:\n    - contains: delayed\n    - not_contains: shipped\n    - numeric: {value: 1234.5, tolerance: 0.01}\n    - tool_call: {name: cancel_order, arguments: {order_id: A-10442}}\n    - judge: {rubric: \"Says the order is delayed; never that it shipped.\"}\n\nor pass checks on the command line: --expect contains=delayed --expect not_contains=shipped; or, when there is no single right answer but every variant must answer like the incident's canonical one, make the probe invariant: `invariant: true` in the incident (or --invariant)";

/// A slug for folder and file names: lowercase ASCII letters, digits and `-`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.len() <= 48 {
        return out.to_string();
    }
    // Cut at a word boundary so folder names stay readable.
    let cut = &out[..48];
    cut.rfind('-').map(|i| &cut[..i]).unwrap_or(cut).to_string()
}

/// The file a probe is written to: `SUITE/<capability-slug>/<id>.yaml`.
pub fn probe_path(suite: &Path, probe: &Probe) -> PathBuf {
    let cap = slug(&probe.capability);
    suite
        .join(if cap.is_empty() {
            "uncategorized".to_string()
        } else {
            cap
        })
        .join(format!("{}.yaml", probe.id))
}

/// Builds a probe family from an incident.
pub fn templatize(
    incident: &Incident,
    incident_path: &Path,
    opts: &TemplatizeOptions,
) -> Result<Templatized> {
    let mut warnings = Vec::new();
    let mut checks = incident.expected.clone();
    checks.extend(opts.expect.iter().cloned());
    let invariant = incident.invariant || opts.invariant;
    let answer_pattern = opts
        .answer_pattern
        .clone()
        .or_else(|| incident.answer_pattern.clone());
    if checks.is_empty() && !invariant {
        return Err(Error::field(
            incident_path,
            "expected",
            format!("the incident has no checks, so no variant could ever fail; {EXPECTED_HELP}"),
        ));
    }
    if let Some(p) = &answer_pattern {
        let field = if opts.answer_pattern.is_some() {
            "--answer-pattern"
        } else {
            "answer_pattern"
        };
        if !invariant {
            return Err(Error::field(
                incident_path,
                field,
                "is only used by invariant probes: add `invariant: true` (or --invariant), or remove it",
            ));
        }
        if let Err(e) = regex::Regex::new(p) {
            return Err(Error::field(
                incident_path,
                field,
                format!("is not a valid regex: {e}"),
            ));
        }
    }
    let Some(q_index) = incident
        .conversation
        .iter()
        .rposition(|m| m.role == Role::User)
    else {
        return Err(Error::field(
            incident_path,
            "conversation",
            "has no user turn: the last user turn is the question",
        ));
    };
    if incident.conversation[q_index]
        .content_str()
        .trim()
        .is_empty()
    {
        return Err(Error::field(
            incident_path,
            format!("conversation[{q_index}].content"),
            "the last user turn is empty",
        ));
    }

    let has_tools = !incident.tools.is_empty()
        || incident
            .conversation
            .iter()
            .any(|m| !m.tool_calls.is_empty());
    let as_episode = match opts.episode {
        EpisodeMode::Never => false,
        EpisodeMode::Always if !has_tools => {
            return Err(Error::field(
                incident_path,
                "tools",
                "--episode needs an incident whose agent had tools (a `tools` catalog or tool calls in the conversation)",
            ));
        }
        EpisodeMode::Always => true,
        EpisodeMode::Auto => {
            has_tools && crate::templatize::episode::is_multi_step(incident, q_index)
        }
    };
    let recorded = as_episode.then(|| crate::templatize::episode::from_incident(incident, q_index));
    let conversation: &[Message] = if as_episode {
        crate::templatize::episode::opening(incident, q_index)
    } else {
        &incident.conversation
    };

    // Documents: given explicitly (must appear verbatim) or found in a long last user turn.
    let mut documents: Vec<(String, String)> = incident
        .documents
        .iter()
        .map(|d| (d.name.clone(), d.text.clone()))
        .collect();
    for (name, text) in &documents {
        let needle = text.trim();
        if needle.is_empty()
            || !incident
                .conversation
                .iter()
                .any(|m| m.content_str().contains(needle))
        {
            return Err(Error::field(
                incident_path,
                format!("documents.{name}"),
                "does not appear verbatim in any message of the conversation",
            ));
        }
    }
    if documents.is_empty()
        && let Some(doc) = split_long_turn(incident.conversation[q_index].content_str())
    {
        warnings.push(
            "the last user turn is long: its leading part was taken as document `context`"
                .to_string(),
        );
        documents.push(("context".to_string(), doc));
    }

    // Messages → template; slots.
    let mut slots = Slots::default();
    let mut messages = Vec::with_capacity(conversation.len());
    let mut question = String::new();
    for (i, m) in conversation.iter().enumerate() {
        let mut t = Message {
            content: None,
            ..m.clone()
        };
        let content = m.content.clone();
        if m.role == Role::Tool {
            let id = unique_slot_id(&slots.tool_outputs, m.tool_call_id.as_deref(), i);
            let raw = content.clone().unwrap_or_default();
            let tool = m.tool_call_id.as_deref().and_then(|cid| {
                incident
                    .conversation
                    .iter()
                    .flat_map(|x| &x.tool_calls)
                    .find(|c| c.id == cid)
                    .map(|c| c.function.name.clone())
            });
            let (format, data) = match tool_output::parse_structured(&raw) {
                Some((f, r)) => (f.to_string(), Some(r)),
                None => ("text".to_string(), None),
            };
            slots.tool_outputs.insert(
                id.clone(),
                ToolOutputSlot {
                    tool,
                    format,
                    original: raw,
                    data,
                    key_records: vec![],
                    key_fields: vec![],
                },
            );
            t.content = Some(format!("{{{{ tool_outputs[{id:?}] }}}}"));
        } else if let Some(c) = content {
            let (tmpl, q) = template_text(&c, &documents, i == q_index);
            if let Some(q) = q {
                question = q;
            }
            t.content = Some(tmpl);
        }
        messages.push(t);
    }
    if question.trim().is_empty() {
        return Err(Error::field(
            incident_path,
            format!("conversation[{q_index}].content"),
            "no question text left in the last user turn after taking out documents",
        ));
    }
    for (name, text) in &documents {
        slots.documents.insert(
            name.clone(),
            DocumentSlot {
                text: text.trim().to_string(),
                key_phrases: vec![],
            },
        );
    }
    slots.question = question;

    // Key records and key phrases.
    let sought: Vec<String> = checks.iter().flat_map(Check::sought_values).collect();
    for (id, slot) in slots.tool_outputs.iter_mut() {
        if let Some(data) = &slot.data {
            let (recs, fields) = find_keys(data, &slots.question, &sought, &opts.keys);
            if recs.is_empty() {
                warnings.push(format!("tool output `{id}`: no key record found (use --key VALUE to name one); distractors may resemble any record"));
            }
            slot.key_records = recs;
            slot.key_fields = fields;
        }
    }
    if let Some(slot) = recorded.as_ref().and_then(|r| r.records_slot.clone()) {
        slots
            .tool_outputs
            .insert(crate::templatize::episode::RECORDS_SLOT.to_string(), slot);
    }
    for doc in slots.documents.values_mut() {
        doc.key_phrases = sought
            .iter()
            .filter(|s| s.len() >= 2 && doc.text.contains(s.as_str()))
            .cloned()
            .collect();
    }

    let title = incident.title.clone();
    let capability = opts
        .capability
        .clone()
        .or_else(|| incident.capability.clone())
        .unwrap_or_else(|| {
            warnings.push(
                "no capability class given (use --capability): filed under `uncategorized`".into(),
            );
            "uncategorized".to_string()
        });
    // The id: --id, the incident's own id, else the incident file's name (short, and what the
    // on-call engineer chose when saving it).
    let id = match (&opts.id, &incident.id) {
        (Some(id), _) => id.clone(),
        (None, Some(id)) => slug(id),
        (None, None) => slug(
            incident_path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("incident"),
        ),
    };
    if !is_safe_id(&id) {
        return Err(Error::Refused(format!(
            "probe id `{id}` is not safe as a file name: use letters, digits, `-` and `_` only (at most 80)"
        )));
    }
    let mut probe = Probe {
        id,
        title,
        capability,
        tier: opts.tier.or(incident.tier).unwrap_or(Tier::Hard),
        invariant,
        answer_pattern,
        source: Source {
            kind: incident.kind.as_str().to_string(),
            file: Some(incident_path.display().to_string()),
            model: incident.model.clone(),
            date: incident.date.clone(),
            severity: incident.severity.clone(),
            bad_output: match &recorded {
                Some(r) => Some(r.trajectory.compact_whole()),
                None => incident.bad_output.as_ref().map(|b| {
                    if b.tool_calls.is_empty() {
                        b.text.clone()
                    } else {
                        format!(
                            "{}{}",
                            b.text,
                            b.tool_calls
                                .iter()
                                .map(|c| format!(
                                    "\n[tool call] {}({})",
                                    c.function.name, c.function.arguments
                                ))
                                .collect::<String>()
                        )
                    }
                }),
            },
        },
        messages,
        tools: incident
            .tools
            .iter()
            .chain(recorded.iter().flat_map(|r| &r.added_tools))
            .cloned()
            .collect(),
        slots,
        checks,
        episode: recorded.as_ref().map(|r| r.episode.clone()),
        axes: vec![],
        paraphrases: None,
        cases: vec![],
    };
    probe.axes = crate::render::applicable_axes(&probe)
        .iter()
        .map(|a| a.as_str().to_string())
        .collect();

    // An invariant probe without checks has no expected answer to grade the bad output with.
    // An episode's bad output is its whole recorded trajectory: `tool_call` sees every call of
    // it, the trajectory checks its order and count, answer checks its final text.
    let bad_output_status = match &recorded {
        Some(r) if !probe.checks.is_empty() && !r.trajectory.steps.is_empty() => {
            let stop = crate::trajectory::Stop {
                reason: crate::trajectory::StopReason::Answered,
                detail: "answered".into(),
            };
            Some(crate::trajectory::grade(&probe.checks, &r.trajectory, &stop).0)
        }
        Some(_) => None,
        None => incident
            .bad_output
            .as_ref()
            .filter(|_| !probe.checks.is_empty())
            .map(|b| grade::grade(&probe.checks, b).0),
    };
    if bad_output_status == Some(CaseStatus::Pass) {
        let msg = if recorded.is_some() {
            "the checks PASS the recorded trajectory that failed in production, so they do not reproduce the failure: tighten them (e.g. add a no_tool_call for the wrong action, or a tool_sequence)"
        } else {
            "the checks PASS the output that failed in production, so they do not reproduce the failure: tighten them (e.g. add a not_contains for the wrong answer)"
        };
        if !opts.force {
            return Err(Error::Refused(format!(
                "{}: {msg}; use --force to write the probe anyway",
                incident_path.display()
            )));
        }
        warnings.push(msg.to_string());
    }
    probe
        .validate(Path::new("<templatized probe>"), "")
        .map_err(|e| Error::Bug(format!("internal: the templatized probe is invalid: {e}")))?;
    Ok(Templatized {
        probe,
        warnings,
        bad_output_status,
    })
}

fn unique_slot_id(
    existing: &IndexMap<String, ToolOutputSlot>,
    call_id: Option<&str>,
    index: usize,
) -> String {
    let base = call_id
        .map(|c| {
            c.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("tool_{index}"));
    let mut id = base.clone();
    let mut n = 2;
    while existing.contains_key(&id) {
        id = format!("{base}_{n}");
        n += 1;
    }
    id
}

/// Turns message text into template text: documents become slot references, the question
/// (in the question turn) becomes `{{ question }}`, everything else is escaped literal text.
/// Returns the template and, for the question turn, the question text.
fn template_text(
    content: &str,
    documents: &[(String, String)],
    is_question: bool,
) -> (String, Option<String>) {
    // Split the content into literal segments and document references.
    enum Seg {
        Lit(String),
        Doc(String),
    }
    let mut segs = vec![Seg::Lit(content.to_string())];
    for (name, text) in documents {
        let needle = text.trim();
        let mut next = Vec::new();
        for s in segs {
            match s {
                Seg::Lit(l) if l.contains(needle) => {
                    let mut rest = l.as_str();
                    while let Some(pos) = rest.find(needle) {
                        next.push(Seg::Lit(rest[..pos].to_string()));
                        next.push(Seg::Doc(name.clone()));
                        rest = &rest[pos + needle.len()..];
                    }
                    next.push(Seg::Lit(rest.to_string()));
                }
                other => next.push(other),
            }
        }
        segs = next;
    }
    let mut question = None;
    if is_question {
        // The question is the last literal segment with text in it.
        if let Some(pos) = segs
            .iter()
            .rposition(|s| matches!(s, Seg::Lit(l) if !l.trim().is_empty()))
            && let Seg::Lit(l) = &segs[pos]
        {
            {
                let lead = l[..l.len() - l.trim_start().len()].to_string();
                let trail = l[l.trim_end().len()..].to_string();
                question = Some(l.trim().to_string());
                segs[pos] = Seg::Lit(String::new());
                segs.insert(pos + 1, Seg::Lit(format!("\u{0}{lead}\u{1}{trail}")));
            }
        }
    }
    let mut out = String::new();
    for s in segs {
        match s {
            Seg::Doc(n) => out.push_str(&format!("{{{{ documents[{n:?}] }}}}")),
            Seg::Lit(l) if l.starts_with('\u{0}') => {
                let (lead, trail) = l[1..].split_once('\u{1}').unwrap_or(("", ""));
                out.push_str(&template_literal(lead));
                out.push_str("{{ question }}");
                out.push_str(&template_literal(trail));
            }
            Seg::Lit(l) => out.push_str(&template_literal(&l)),
        }
    }
    (out, question)
}

/// A long last user turn (a pasted document then a question) split at its last paragraph
/// break: returns the document part, when the turn is over 2,000 characters and the last
/// paragraph is short enough to be the question.
fn split_long_turn(content: &str) -> Option<String> {
    if content.len() < 2000 {
        return None;
    }
    let trimmed = content.trim_end();
    let cut = trimmed.rfind("\n\n")?;
    let (doc, q) = (trimmed[..cut].trim(), trimmed[cut..].trim());
    (q.len() < 1000 && !q.is_empty() && doc.len() > q.len()).then(|| doc.to_string())
}

/// Whether a value looks like an identifier a question could name: it has a digit, a capital
/// letter, `@` or `_`. Plain lowercase words (`shipped`) are statuses, not identities.
fn identifier_like(s: &str) -> bool {
    s.len() >= 3
        && s.chars()
            .any(|c| c.is_ascii_digit() || c.is_uppercase() || c == '@' || c == '_')
}

/// `needle` occurs in `hay` as a whole token (not inside a longer alphanumeric run).
fn contains_token(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let hay_l = hay.to_lowercase();
    let needle_l = needle.to_lowercase();
    let mut start = 0;
    while let Some(pos) = hay_l[start..].find(&needle_l) {
        let a = start + pos;
        let b = a + needle_l.len();
        let before = hay_l[..a].chars().next_back();
        let after = hay_l[b..].chars().next();
        if !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric) {
            return true;
        }
        start = a + needle_l.len().max(1);
        if start >= hay_l.len() {
            break;
        }
    }
    false
}

/// Finds the key records and their identifying fields: records with a value that `--key`
/// names, else an identifier-like value the question names, else a value the checks look for
/// that only one record holds.
pub fn find_keys(
    data: &Records,
    question: &str,
    sought: &[String],
    keys: &[String],
) -> (Vec<usize>, Vec<String>) {
    let mut recs = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut mark = |i: usize, f: &str, recs: &mut Vec<usize>| {
        if !recs.contains(&i) {
            recs.push(i);
        }
        if !fields.iter().any(|x| x == f) {
            fields.push(f.to_string());
        }
    };
    for (i, r) in data.records.iter().enumerate() {
        for (f, v) in r {
            let s = tool_output::scalar_text(v);
            let hit = if keys.is_empty() {
                identifier_like(&s) && contains_token(question, &s)
            } else {
                keys.iter().any(|k| k == &s)
            };
            if hit {
                mark(i, f, &mut recs);
            }
        }
    }
    if recs.is_empty() && keys.is_empty() {
        for want in sought {
            let holders: Vec<(usize, &String)> = data
                .records
                .iter()
                .enumerate()
                .flat_map(|(i, r)| {
                    r.iter()
                        .filter(|(_, v)| tool_output::scalar_text(v).eq_ignore_ascii_case(want))
                        .map(move |(f, _)| (i, f))
                })
                .collect();
            if holders.len() == 1 {
                let (i, f) = holders[0];
                if identifier_like(want) {
                    mark(i, f, &mut recs);
                } else if !recs.contains(&i) {
                    recs.push(i);
                }
            }
        }
    }
    recs.sort_unstable();
    (recs, fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_ids() {
        assert_eq!(
            slug("Reading a status from a tool's table output"),
            "reading-a-status-from-a-tool-s-table-output"
        );
        assert!(!is_safe_id("../etc"));
        assert!(!is_safe_id("a/b"));
        assert!(is_safe_id("order-status_2"));
    }

    #[test]
    fn tokens_match_whole() {
        assert!(contains_token("status of A-10442?", "A-10442"));
        assert!(!contains_token("status of A-104421?", "A-10442"));
    }

    #[test]
    fn question_turn_becomes_slot() {
        let (t, q) = template_text("Hi {{x}}!\n\nWhat about A-1?", &[], true);
        assert_eq!(q.as_deref(), Some("Hi {{x}}!\n\nWhat about A-1?"));
        assert_eq!(t, "{{ question }}");
        let docs = vec![("d".to_string(), "DOC TEXT".to_string())];
        let (t, q) = template_text("Read this:\nDOC TEXT\n\nWhat is it?", &docs, true);
        assert_eq!(q.as_deref(), Some("What is it?"));
        assert_eq!(t, "Read this:\n{{ documents[\"d\"] }}\n\n{{ question }}");
    }
}
