//! Rendering one variant of a probe into a chat request: pure and deterministic.
//!
//! Order: phrasing rewrites the question, persona gives it a voice, length and format reshape
//! the tool outputs and documents, then the probe's message templates are rendered with the
//! slot values as *variables*, never as template code: whatever an incident contains,
//! including `{{`, `{%` or `{#`, reaches the model literally. minijinja runs sandboxed: strict
//! undefined behaviour, fuel and recursion limits, no file or environment access.

use crate::axes::{AxisLibrary, AxisName, ORIGINAL};
use crate::chat::{ChatRequest, Message};
use crate::plain_template::{PlainTemplate, SlotValues};
use crate::probe::{Probe, ToolOutputSlot};
use crate::template;
use crate::text::json_str;
use crate::tool_output::{self, Record};
use indexmap::IndexMap;
use minijinja::{Environment, Value};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Largest rendered question (a persona template that explodes is an error, not a hang).
const MAX_QUESTION_CHARS: usize = 64 * 1024;

/// The axis values of one variant, `original` where unchanged.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct VariantAxes {
    /// Persona value.
    pub persona: String,
    /// Phrasing value.
    pub phrasing: String,
    /// Length value (`8k-middle`).
    pub length: String,
    /// Format value.
    pub format: String,
    /// Tools value (see [`crate::tool_catalog`]); `original` when absent from the JSON read,
    /// as in what was written before the axis existed.
    #[serde(default = "original")]
    pub tools: String,
}

fn original() -> String {
    ORIGINAL.to_string()
}

impl Default for VariantAxes {
    fn default() -> Self {
        VariantAxes {
            persona: ORIGINAL.into(),
            phrasing: ORIGINAL.into(),
            length: ORIGINAL.into(),
            format: ORIGINAL.into(),
            tools: ORIGINAL.into(),
        }
    }
}

impl VariantAxes {
    /// The value of one axis.
    pub fn get(&self, axis: AxisName) -> &str {
        match axis {
            AxisName::Persona => &self.persona,
            AxisName::Phrasing => &self.phrasing,
            AxisName::Length => &self.length,
            AxisName::Format => &self.format,
            AxisName::Tools => &self.tools,
        }
    }

    /// Sets the value of one axis.
    pub fn set(&mut self, axis: AxisName, v: String) {
        match axis {
            AxisName::Persona => self.persona = v,
            AxisName::Phrasing => self.phrasing = v,
            AxisName::Length => self.length = v,
            AxisName::Format => self.format = v,
            AxisName::Tools => self.tools = v,
        }
    }

    /// True when every axis is `original`.
    pub fn is_canonical(&self) -> bool {
        AxisName::ALL.iter().all(|a| self.get(*a) == ORIGINAL)
    }

    /// How many axes differ from `original`.
    pub fn changed(&self) -> usize {
        AxisName::ALL
            .iter()
            .filter(|a| self.get(**a) != ORIGINAL)
            .count()
    }

    /// As an ordered map, for files and the store. `tools` is left out when `original` (as
    /// in JSON): a variant's stored axes read as they did before the axis existed.
    pub fn to_map(&self) -> IndexMap<String, String> {
        AxisName::ALL
            .iter()
            .filter(|a| **a != AxisName::Tools || self.tools != ORIGINAL)
            .map(|a| (a.as_str().to_string(), self.get(*a).to_string()))
            .collect()
    }

    /// From a map; missing axes are `original`.
    pub fn from_map(m: &IndexMap<String, String>) -> VariantAxes {
        let mut v = VariantAxes::default();
        for a in AxisName::ALL {
            if let Some(x) = m.get(a.as_str()) {
                v.set(a, x.clone());
            }
        }
        v
    }
}

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

    fn json(&self) -> &(BTreeMap<String, String>, BTreeMap<String, String>) {
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

/// A rendered question and its JSON-escaped form (built on first use).
struct Question {
    text: String,
    json: OnceLock<String>,
}

/// Questions per persona, then phrasing (looked up without allocating a key).
type QuestionMemo =
    std::collections::HashMap<String, std::collections::HashMap<String, Arc<Question>>>;

/// Slot texts per length, then format.
type SlotMemo =
    std::collections::HashMap<String, std::collections::HashMap<String, Arc<SlotTexts>>>;

/// A probe compiled for rendering: its message templates and the question rewrites.
pub struct Renderer<'p> {
    probe: &'p Probe,
    env: Environment<'static>,
    /// The message templates compiled to the plain fast path, when every one of them has the
    /// shape `templatize` writes and renders as minijinja does (see [`crate::plain_template`]).
    plain: Option<Vec<Option<PlainTemplate>>>,
    /// The library templates whose output depends on the render seed (they use `typos`):
    /// a question through one of them is rendered per variant, any other once per
    /// (persona, phrasing).
    seeded_personas: std::collections::HashSet<String>,
    /// Likewise for phrasings.
    seeded_phrasings: std::collections::HashSet<String>,
    /// Questions of seed-independent (persona, phrasing) pairs.
    questions: std::sync::Mutex<QuestionMemo>,
    /// Slot texts per (length, format), built once per probe (see `slot_texts`).
    /// Keyed by length, then format (looked up without allocating a key).
    slots_memo: std::sync::Mutex<SlotMemo>,
    /// The JSON frame of the request, for the JSON line writer (see `write_request_json`).
    frame: OnceLock<Option<RequestFrame>>,
    /// The tool catalog per `tools` value, built once per probe (see [`Self::catalog`]).
    catalogs: std::sync::Mutex<std::collections::HashMap<String, Arc<RenderedCatalog>>>,
}

/// The catalog of one `tools` value, and the JSON tail of a request that offers it.
pub struct RenderedCatalog {
    /// The tools and the added-tool map.
    pub catalog: crate::tool_catalog::Catalog,
    /// `],"tools":[…]}`.
    tail: Vec<u8>,
}

/// What serde_json writes for a request, cut around the message contents: everything but
/// the contents is the same for every variant of a probe.
struct RequestFrame {
    /// Per message: the JSON before and after its content string (inside the quotes), or
    /// the whole message when it has no content.
    messages: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// `],"tools":[…]}`.
    tail: Vec<u8>,
}

/// Stands for a message's content while the frame is cut.
const CONTENT_SENTINEL: &str = "\u{2}cliffprobe:content\u{3}";

impl RequestFrame {
    fn new(probe: &Probe) -> Option<RequestFrame> {
        let marker = serde_json::to_string(CONTENT_SENTINEL).ok()?;
        let mut messages = Vec::with_capacity(probe.messages.len());
        for m in &probe.messages {
            let mut m = m.clone();
            let has_content = m.content.is_some();
            if has_content {
                m.content = Some(CONTENT_SENTINEL.to_string());
            }
            let json = serde_json::to_string(&m).ok()?;
            if has_content {
                let at = json.find(&marker)?;
                let (before, after) = (&json[..at + 1], &json[at + marker.len() - 1..]);
                if after[1..].contains(&marker) {
                    return None;
                }
                messages.push((before.as_bytes().to_vec(), Some(after.as_bytes().to_vec())));
            } else {
                messages.push((json.into_bytes(), None));
            }
        }
        let mut tail = b"],\"tools\":".to_vec();
        serde_json::to_writer(&mut tail, &probe.tools).ok()?;
        tail.push(b'}');
        Some(RequestFrame { messages, tail })
    }
}

impl<'p> Renderer<'p> {
    /// Compiles the probe's message templates; an error names the template problem.
    pub fn new(probe: &'p Probe) -> Result<Renderer<'p>, String> {
        let mut env = template::sandbox();
        template::add_message_templates(&mut env, &probe.messages)?;
        let mut r = Renderer {
            probe,
            env,
            plain: None,
            seeded_personas: Default::default(),
            seeded_phrasings: Default::default(),
            questions: Default::default(),
            slots_memo: Default::default(),
            frame: OnceLock::new(),
            catalogs: Default::default(),
        };
        r.plain = r.compile_plain();
        Ok(r)
    }

    /// Compiles every message template to the fast path, and checks each against minijinja
    /// on sentinel slot values (every slot the probe has, so a template naming another slot
    /// fails in minijinja and stays there). `None`: the probe renders through minijinja.
    fn compile_plain(&self) -> Option<Vec<Option<PlainTemplate>>> {
        let sentinel = |kind: &str, k: &str| format!("\u{2}{kind}:{k}\u{3}{{{{ x }}}}\n");
        let slots = &self.probe.slots;
        let tool_outputs: BTreeMap<String, String> = slots
            .tool_outputs
            .keys()
            .map(|k| (k.clone(), sentinel("tool", k)))
            .collect();
        let documents: BTreeMap<String, String> = slots
            .documents
            .keys()
            .map(|k| (k.clone(), sentinel("doc", k)))
            .collect();
        let question = sentinel("question", "");
        let values = SlotValues {
            question: &question,
            tool_outputs: &tool_outputs,
            documents: &documents,
        };
        let slow = self
            .render_messages_minijinja(&question, &tool_outputs, &documents)
            .ok()?;
        let mut out = Vec::with_capacity(self.probe.messages.len());
        for (m, reference) in self.probe.messages.iter().zip(&slow) {
            match &m.content {
                None => out.push(None),
                Some(c) => {
                    let t = PlainTemplate::compile(c)?;
                    if t.render(&values).as_deref() != reference.content.as_deref() {
                        return None;
                    }
                    out.push(Some(t));
                }
            }
        }
        Some(out)
    }

    /// Adds a library's persona and phrasing templates.
    pub fn with_library(mut self, lib: &AxisLibrary) -> Result<Self, String> {
        for p in &lib.personas {
            if template::uses_seed(&p.template) {
                self.seeded_personas.insert(p.name.clone());
            }
            self.env
                .add_template_owned(format!("persona:{}", p.name), p.template.clone())
                .map_err(|e| format!("persona {}: {e}", p.name))?;
        }
        for p in &lib.phrasings {
            if template::uses_seed(&p.template) {
                self.seeded_phrasings.insert(p.name.clone());
            }
            self.env
                .add_template_owned(format!("phrasing:{}", p.name), p.template.clone())
                .map_err(|e| format!("phrasing {}: {e}", p.name))?;
        }
        Ok(self)
    }

    /// The question after phrasing and persona. A phrasing `llm-i` selects a frozen
    /// paraphrase instead of a template (see [`crate::paraphrase`]): the persona's own, asked
    /// verbatim, else the neutral one with the persona template applied.
    pub fn question(&self, axes: &VariantAxes, seed: u64) -> Result<String, String> {
        self.question_memo(axes, &|| seed).map(|q| q.text.clone())
    }

    /// [`Self::question`], memoised per (persona, phrasing) unless a template reads the seed.
    /// `seed` is only asked for when the question is rendered.
    fn question_memo(
        &self,
        axes: &VariantAxes,
        seed: &dyn Fn() -> u64,
    ) -> Result<Arc<Question>, String> {
        let seeded = self.seeded_personas.contains(axes.persona.as_str())
            || self.seeded_phrasings.contains(axes.phrasing.as_str());
        if !seeded
            && let Some(hit) = self.questions.lock().ok().and_then(|m| {
                m.get(axes.persona.as_str())
                    .and_then(|by| by.get(axes.phrasing.as_str()))
                    .cloned()
            })
        {
            return Ok(hit);
        }
        let q = Arc::new(Question {
            text: self.render_question(axes, seed())?,
            json: OnceLock::new(),
        });
        if !seeded && let Ok(mut m) = self.questions.lock() {
            m.entry(axes.persona.clone())
                .or_default()
                .insert(axes.phrasing.clone(), q.clone());
        }
        Ok(q)
    }

    fn render_question(&self, axes: &VariantAxes, seed: u64) -> Result<String, String> {
        let mut base = self.probe.slots.question.as_str();
        let mut frozen = false;
        if let Some(i) = crate::axes::phrasing_index(&axes.phrasing) {
            let (text, in_voice) = self
                .probe
                .paraphrases
                .as_ref()
                .and_then(|p| p.text_for(&axes.persona, i))
                .ok_or_else(|| {
                    format!(
                        "unknown phrasing `{}`: the probe has no such frozen paraphrase",
                        axes.phrasing
                    )
                })?;
            if in_voice {
                return Ok(text.trim().to_string());
            }
            base = text;
            frozen = true;
        }
        let (mut q, spans) = template::mask_quoted(base);
        for (axis, value) in [("phrasing", &axes.phrasing), ("persona", &axes.persona)] {
            if value == ORIGINAL || (frozen && axis == "phrasing") {
                continue;
            }
            let t = self
                .env
                .get_template(&format!("{axis}:{value}"))
                .map_err(|_| format!("unknown {axis} `{value}`"))?;
            q = t
                .render(minijinja::context! { question => q, seed => seed })
                .map_err(|e| format!("{axis} `{value}`: {e}"))?;
            if q.len() > MAX_QUESTION_CHARS {
                return Err(format!(
                    "{axis} `{value}` produced more than {MAX_QUESTION_CHARS} characters"
                ));
            }
        }
        Ok(template::unmask_quoted(q.trim(), &spans))
    }

    /// Renders a variant. `seed` drives every random choice (typos, distractors, filler).
    pub fn render(
        &self,
        lib: &AxisLibrary,
        axes: &VariantAxes,
        seed: u64,
    ) -> Result<ChatRequest, String> {
        let question = self.question_memo(axes, &|| seed)?;
        let slots = self.slot_texts(lib, &axes.length, &axes.format)?;
        let messages =
            self.render_messages(&question.text, &slots.tool_outputs, &slots.documents)?;
        let tools = if axes.tools == ORIGINAL {
            self.probe.tools.clone()
        } else {
            self.catalog(&axes.tools)?.catalog.tools.clone()
        };
        Ok(ChatRequest { messages, tools })
    }

    /// The tool catalog of a `tools` value: the same for every variant of the probe at that
    /// value (seeded by probe id and value, see [`crate::tool_catalog`]), built once.
    pub fn catalog(&self, value: &str) -> Result<Arc<RenderedCatalog>, String> {
        if let Some(hit) = self
            .catalogs
            .lock()
            .ok()
            .and_then(|m| m.get(value).cloned())
        {
            return Ok(hit);
        }
        let protected = crate::tool_catalog::protected_names(&self.probe.checks, &self.probe.tools);
        let catalog = crate::tool_catalog::transform(
            &self.probe.tools,
            value,
            &protected,
            crate::tool_catalog::catalog_seed(&self.probe.id, value),
        )?;
        let mut tail = b"],\"tools\":".to_vec();
        serde_json::to_writer(&mut tail, &catalog.tools).map_err(|e| e.to_string())?;
        tail.push(b'}');
        let value_memo = Arc::new(RenderedCatalog { catalog, tail });
        if let Ok(mut m) = self.catalogs.lock() {
            m.insert(value.to_string(), value_memo.clone());
        }
        Ok(value_memo)
    }

    /// True when the message templates render through the plain fast path.
    pub fn has_fast_path(&self) -> bool {
        self.plain.is_some()
    }

    /// Appends the rendered request as serde_json writes it (`{"messages":[…],"tools":[…]}`,
    /// byte for byte) without building it: constant JSON is cut once per probe, literal text
    /// escaped once per probe, slot texts once per (length, format), the question once per
    /// (persona, phrasing). `Ok(false)` (nothing written) when the probe's templates are not
    /// all on the plain fast path or a template names a missing slot: serialise
    /// [`Self::render`]'s request instead. `seed` (the render seed, as for `render`) is only
    /// computed when the question has to be rendered.
    pub fn write_request_json(
        &self,
        lib: &AxisLibrary,
        axes: &VariantAxes,
        seed: &dyn Fn() -> u64,
        out: &mut Vec<u8>,
    ) -> Result<bool, String> {
        let Some(plain) = &self.plain else {
            return Ok(false);
        };
        let Some(frame) = self
            .frame
            .get_or_init(|| RequestFrame::new(self.probe))
            .as_ref()
        else {
            return Ok(false);
        };
        let question = self.question_memo(axes, seed)?;
        let slots = self.slot_texts(lib, &axes.length, &axes.format)?;
        let (tool_outputs, documents) = slots.json();
        let values = SlotValues {
            question: question.json.get_or_init(|| json_str(&question.text)),
            tool_outputs,
            documents,
        };
        let start = out.len();
        out.extend_from_slice(b"{\"messages\":[");
        for (i, ((before, after), t)) in frame.messages.iter().zip(plain).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(before);
            if let (Some(after), Some(t)) = (after, t) {
                if !t.render_json(&values, out) {
                    out.truncate(start);
                    return Ok(false);
                }
                out.extend_from_slice(after);
            }
        }
        if axes.tools == ORIGINAL {
            out.extend_from_slice(&frame.tail);
        } else {
            out.extend_from_slice(&self.catalog(&axes.tools)?.tail);
        }
        Ok(true)
    }

    /// The tool outputs and documents of a (length, format) point. They depend on those two
    /// axes only, never on persona or phrasing: variants that differ in voice see the very
    /// same data (so attribution to an axis is clean), and each (length, format) is built
    /// once per probe. Distractors and filler are seeded by probe, length and format.
    fn slot_texts(
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

    /// The probe's messages with the slot values filled in: through the plain fast path
    /// when the probe has one, else (or when a template names a missing slot, so that the
    /// error is minijinja's) through minijinja.
    fn render_messages(
        &self,
        question: &str,
        tool_outputs: &BTreeMap<String, String>,
        documents: &BTreeMap<String, String>,
    ) -> Result<Vec<Message>, String> {
        if let Some(plain) = &self.plain {
            let values = SlotValues {
                question,
                tool_outputs,
                documents,
            };
            let fast: Option<Vec<Message>> = self
                .probe
                .messages
                .iter()
                .zip(plain)
                .map(|(m, t)| {
                    let content = match t {
                        Some(t) => Some(t.render(&values)?),
                        None => None,
                    };
                    Some(Message {
                        role: m.role,
                        content,
                        tool_calls: m.tool_calls.clone(),
                        tool_call_id: m.tool_call_id.clone(),
                        name: m.name.clone(),
                    })
                })
                .collect();
            if let Some(messages) = fast {
                return Ok(messages);
            }
        }
        self.render_messages_minijinja(question, tool_outputs, documents)
    }

    fn render_messages_minijinja(
        &self,
        question: &str,
        tool_outputs: &BTreeMap<String, String>,
        documents: &BTreeMap<String, String>,
    ) -> Result<Vec<Message>, String> {
        let ctx = minijinja::context! {
            question => question,
            tool_outputs => Value::from(tool_outputs.clone()),
            documents => Value::from(documents.clone()),
        };
        let mut out = Vec::with_capacity(self.probe.messages.len());
        for (i, m) in self.probe.messages.iter().enumerate() {
            let mut m2 = m.clone();
            if m.content.is_some() {
                let t = self
                    .env
                    .get_template(&template::message_template_name(i))
                    .map_err(|e| e.to_string())?;
                m2.content = Some(t.render(&ctx).map_err(|e| format!("message {i}: {e}"))?);
            }
            out.push(m2);
        }
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text;

    proptest::proptest! {
        /// Incident text as `templatize` escapes it, around slot references: the plain fast
        /// path compiles it and renders what minijinja renders, whatever the text holds.
        #[test]
        fn plain_templates_render_as_minijinja_does(
            parts in proptest::collection::vec("(\\{|\\}|%|#|'|\"|\\\\|\r|\n|\t| |x|é|\u{1}|-){0,24}", 1..5),
            question in "(\\{|\\}|%|x|\n|'|\"){0,12}",
            tool in "(\\{|\\}|%|#|x|\n){0,12}",
        ) {
            let refs = ["{{ question }}", "{{ tool_outputs[\"call_1\"] }}", "{{question}}"];
            let mut source = String::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    source.push_str(refs[i % refs.len()]);
                }
                source.push_str(&text::template_literal(p));
            }
            // A literal `{` right before a reference reads as `{{{`: minijinja's business.
            let Some(t) = PlainTemplate::compile(&source) else {
                proptest::prop_assert!(source.contains("{{{"), "not compiled: {:?}", source);
                return Ok(());
            };
            let tools: BTreeMap<String, String> = [("call_1".to_string(), tool.clone())].into();
            let docs = BTreeMap::new();
            let fast = t.render(&SlotValues { question: &question, tool_outputs: &tools, documents: &docs });
            let mut env = crate::template::sandbox();
            env.add_template_owned("t", source.clone()).unwrap();
            let slow = env.get_template("t").unwrap().render(minijinja::context! {
                question => question,
                tool_outputs => Value::from(tools.clone()),
                documents => Value::from(docs),
            }).unwrap();
            proptest::prop_assert_eq!(fast, Some(slow));
        }
    }
}
