//! Flips as incidents (`--incidents DIR`): each regression (or, when no judge ran, each flip)
//! becomes a native incident record that `cliffprobe templatize` takes, so the replay feeds
//! the hard-tier suite.
//!
//! The record holds the logged conversation and tools; `bad_output` is the candidate's answer
//! (a regression: the logged decision was right); `expected` is a check derived from the
//! decision rule that the logged decision passes and the candidate's fails
//! ([`DecisionRule::checks_for`]); `capability` is the record's class. Flips the judge called
//! corrections or unclear are not incidents. One JSON file per record, named after the record
//! id (its position is added when two ids make the same name).

use super::decision::DecisionRule;
use super::run::stored_request;
use crate::error::{Error, Result};
use crate::store::{ReplayKind, ReplayOutcome, ReplayRecord, Store};
use serde_json::{Value, json};
use std::path::Path;

/// Writes the incidents of `replay` into `dir` (created if needed). Returns how many files
/// were written. A flip judged a correction or unclear is not an incident.
pub fn write_incidents(
    store: &Store,
    replay: &str,
    model_id: &str,
    rule: &DecisionRule,
    dir: &Path,
) -> Result<u64> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut n = 0u64;
    let mut used = std::collections::HashSet::new();
    store.for_each_replay_record(replay, ReplayKind::Candidate, ReplayOutcome::Flipped, |r| {
        if matches!(r.verdict.as_deref(), Some("correction") | Some("unclear")) {
            return Ok(());
        }
        let Some(doc) = incident(&r, model_id, rule) else {
            return Ok(());
        };
        let mut name = file_stem(&r.record_id);
        if !used.insert(name.clone()) {
            name = format!("{name}-{}", r.seq);
            used.insert(name.clone());
        }
        let path = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Error::Encode(format!("cannot encode an incident: {e}")))?;
        crate::probe::write_atomic(&path, &format!("{text}\n"))?;
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// The incident of one flip treated as a regression: the candidate's answer is the bad output
/// and the logged decision is expected.
pub fn incident(r: &ReplayRecord, model_id: &str, rule: &DecisionRule) -> Option<Value> {
    let request = stored_request(r)?;
    let (old, new) = (r.old.as_deref()?, r.new.as_deref()?);
    let bad = r.candidate_answer.as_ref()?;
    let expected = rule.checks_for(old, new);
    let mut bad_output = json!({"content": bad.text});
    if !bad.tool_calls.is_empty() {
        bad_output["tool_calls"] = json!(bad.tool_calls);
    }
    Some(json!({
        "id": format!("replay-{}", file_stem(&r.record_id)),
        "title": format!("replay flip {old} → {new}"),
        "capability": r.class,
        "model": model_id,
        "date": r.timestamp,
        "conversation": request.messages,
        "tools": request.tools,
        "bad_output": bad_output,
        "expected": expected,
        "notes": format!(
            "Replayed from {} (record {}): the logged model decided `{old}`, the candidate `{new}`{}.",
            r.place,
            r.record_id,
            r.verdict.as_deref().map(|v| format!("; the judge called it a {v}")).unwrap_or_default()
        ),
    }))
}

/// A record id as a safe file name.
fn file_stem(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "record".into() } else { s }
}
