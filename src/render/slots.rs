//! The slot texts of a (length, format) point ([`SlotTexts`]): tool outputs rendered in the
//! variant's format and grown with distractor records, documents grown with filler, built once
//! per probe and point; and which axes can change anything in a probe.

use super::Renderer;
use crate::axes::{AxisLibrary, AxisName, ORIGINAL};
use crate::probe::{Probe, ToolOutputSlot};
use crate::text::json_str;
use crate::tool_output::{self, Record};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The tool outputs and documents of one (length, format) point, shared by every variant at
/// that point (see `Renderer::slot_texts`).
pub struct SlotTexts {
    /// Tool outputs by call id.
    pub tool_outputs: BTreeMap<String, String>,
    /// Documents by name.
    pub documents: BTreeMap<String, String>,
    /// Their JSON-escaped forms, built on first use by the JSON line writer.
    json: OnceLock<(BTreeMap<String, String>, BTreeMap<String, String>)>,
}

impl SlotTexts {
    fn new(tool_outputs: BTreeMap<String, String>, documents: BTreeMap<String, String>) -> Self {
        SlotTexts {
            tool_outputs,
            documents,
            json: OnceLock::new(),
        }
    }

    pub(super) fn json(&self) -> &(BTreeMap<String, String>, BTreeMap<String, String>) {
        self.json.get_or_init(|| {
            let esc = |m: &BTreeMap<String, String>| {
                m.iter()
                    .map(|(k, v)| (k.clone(), json_str(v)))
                    .collect::<BTreeMap<_, _>>()
            };
            (esc(&self.tool_outputs), esc(&self.documents))
        })
    }
}

impl Renderer<'_> {
    /// The tool outputs and documents of a (length, format) point. They depend on those two
    /// axes only, never on persona or phrasing: variants that differ in voice see the very
    /// same data (so attribution to an axis is clean), and each (length, format) is built
    /// once per probe. Distractors and filler are seeded by probe, length and format.
    pub(super) fn slot_texts(
        &self,
        lib: &AxisLibrary,
        length: &str,
        format: &str,
    ) -> Result<Arc<SlotTexts>, String> {
        if let Some(hit) = self
            .slots_memo
            .lock()
            .ok()
            .and_then(|m| m.get(length).and_then(|by| by.get(format)).cloned())
        {
            return Ok(hit);
        }
        let slots = &self.probe.slots;
        let mut tool_outputs: BTreeMap<String, String> = slots
            .tool_outputs
            .iter()
            .map(|(id, slot)| (id.clone(), render_tool_output(slot, format)))
            .collect();
        let mut documents: BTreeMap<String, String> = slots
            .documents
            .iter()
            .map(|(k, d)| (k.clone(), d.text.clone()))
            .collect();
        if let Some((level, position)) = lib.length_value(length) {
            let mut h = blake3::Hasher::new();
            for part in [self.probe.id.as_str(), length, format] {
                h.update(part.as_bytes());
                h.update(b"\0");
            }
            let seed =
                u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"));
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            // The budget counts the request with the incident's own question; voices differ
            // by a few hundred characters at most, well inside the ≈ of "tokens ≈ chars/4".
            let base = self.render_messages(&slots.question, &tool_outputs, &documents)?;
            let base_chars: usize = base.iter().map(|m| m.content_str().len()).sum();
            let room = (level.tokens * 4).saturating_sub(base_chars);
            if room > 0 {
                match primary_slot(self.probe) {
                    Some(Primary::Tool(id)) => {
                        let slot = &slots.tool_outputs[&id];
                        if let Some(text) = grow_tool_output(slot, format, room, position, &mut rng)
                        {
                            tool_outputs.insert(id, text);
                        }
                    }
                    Some(Primary::Document(name)) => {
                        let doc = &slots.documents[&name];
                        let grown = grow_document(
                            &doc.text,
                            &doc.key_phrases,
                            &lib.filler,
                            room,
                            position,
                            &mut rng,
                        );
                        documents.insert(name, grown);
                    }
                    None => {}
                }
            }
        }
        let value = Arc::new(SlotTexts::new(tool_outputs, documents));
        if let Ok(mut m) = self.slots_memo.lock() {
            m.entry(length.to_string())
                .or_default()
                .insert(format.to_string(), value.clone());
        }
        Ok(value)
    }
}

enum Primary {
    Tool(String),
    Document(String),
}

/// The slot the length axis grows: the first structured tool output with key records, else the
/// first document, else the first structured tool output.
fn primary_slot(p: &Probe) -> Option<Primary> {
    let structured = || {
        p.slots
            .tool_outputs
            .iter()
            .filter(|(_, s)| s.data.is_some())
    };
    if let Some((id, _)) = structured().find(|(_, s)| !s.key_records.is_empty()) {
        return Some(Primary::Tool(id.clone()));
    }
    if let Some(name) = p.slots.documents.keys().next() {
        return Some(Primary::Document(name.clone()));
    }
    structured().next().map(|(id, _)| Primary::Tool(id.clone()))
}

/// Which axes can change anything in this probe.
pub fn applicable_axes(p: &Probe) -> Vec<AxisName> {
    let mut v = vec![AxisName::Persona, AxisName::Phrasing];
    // An episode's simulated results take the variant's length and format when structured.
    let episode_data = p
        .episode
        .as_ref()
        .is_some_and(crate::probe::episode::has_structured_results);
    if primary_slot(p).is_some() || episode_data {
        v.push(AxisName::Length);
    }
    if p.slots.tool_outputs.values().any(|s| s.data.is_some()) || episode_data {
        v.push(AxisName::Format);
    }
    if !p.tools.is_empty() {
        v.push(AxisName::Tools);
    }
    v
}

pub(crate) fn render_tool_output(slot: &ToolOutputSlot, format: &str) -> String {
    match (&slot.data, format) {
        (Some(data), f) if f != ORIGINAL => data.render(f),
        _ => slot.original.clone(),
    }
}

/// The values that identify the key records: never copied into a distractor.
pub fn protected_values(slot: &ToolOutputSlot) -> Vec<String> {
    let Some(data) = &slot.data else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for &i in &slot.key_records {
        if let Some(r) = data.records.get(i) {
            for f in &slot.key_fields {
                if let Some(v) = r.get(f) {
                    let s = tool_output::scalar_text(v);
                    if !s.is_empty() && !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
    }
    out
}

pub(crate) fn grow_tool_output(
    slot: &ToolOutputSlot,
    format: &str,
    room: usize,
    position: &str,
    rng: &mut ChaCha8Rng,
) -> Option<String> {
    let data = slot.data.as_ref()?;
    let fmt = if format == ORIGINAL {
        slot.format.as_str()
    } else {
        format
    };
    let fmt = if tool_output::FORMATS.contains(&fmt) {
        fmt
    } else {
        "json"
    };
    let n0 = data.records.len().max(1);
    let sample = data.render_records(&data.records, fmt);
    let per_record = (sample.len() / n0).max(16);
    let n = (room / per_record).min(tool_output::MAX_RECORDS);
    if n == 0 {
        return None;
    }
    let protected = protected_values(slot);
    let mut distractors = tool_output::synthesize(
        &data.records,
        &slot.key_records,
        &slot.key_fields,
        &protected,
        n,
        rng,
    );
    // A copy of a real record distracts from nothing: it repeats the data (an acknowledgement
    // `{"status": "ok"}` has no other value to vary, and would grow into thousands of itself).
    distractors.retain(|d| !data.records.contains(d));
    if distractors.is_empty() {
        return None;
    }
    let (key, rest): (Vec<Record>, Vec<Record>) = {
        let mut k = Vec::new();
        let mut r = Vec::new();
        for (i, rec) in data.records.iter().enumerate() {
            if slot.key_records.contains(&i) {
                k.push(rec.clone())
            } else {
                r.push(rec.clone())
            }
        }
        (k, r)
    };
    let mut all: Vec<Record> = Vec::with_capacity(n + n0);
    match position {
        "start" => {
            all.extend(key);
            all.extend(rest);
            all.extend(distractors);
        }
        "end" => {
            all.extend(distractors);
            all.extend(rest);
            all.extend(key);
        }
        _ => {
            let half = distractors.len() / 2;
            let mut d = distractors.into_iter();
            all.extend(d.by_ref().take(half));
            all.extend(rest);
            all.extend(key);
            all.extend(d);
        }
    }
    Some(data.render_records(&all, fmt))
}

fn grow_document(
    text: &str,
    key_phrases: &[String],
    filler: &[String],
    room: usize,
    position: &str,
    rng: &mut ChaCha8Rng,
) -> String {
    let usable: Vec<&String> = filler
        .iter()
        .filter(|p| {
            !key_phrases
                .iter()
                .any(|k| !k.is_empty() && p.to_lowercase().contains(&k.to_lowercase()))
        })
        .collect();
    if usable.is_empty() {
        return text.to_string();
    }
    let mut paras: Vec<&str> = Vec::new();
    let mut size = 0;
    let mut start = rng.random_range(0..usable.len());
    while size < room {
        let p = usable[start % usable.len()];
        paras.push(p);
        size += p.len() + 2;
        start += 1 + rng.random_range(0..3);
    }
    let (before, after): (Vec<&str>, Vec<&str>) = match position {
        "start" => (vec![], paras),
        "end" => (paras, vec![]),
        _ => {
            let h = paras.len() / 2;
            (paras[..h].to_vec(), paras[h..].to_vec())
        }
    };
    let mut out = String::with_capacity(size + text.len() + 4);
    for p in before {
        out.push_str(p.trim());
        out.push_str("\n\n");
    }
    out.push_str(text.trim_end());
    for p in after {
        out.push_str("\n\n");
        out.push_str(p.trim());
    }
    out
}
