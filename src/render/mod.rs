//! Rendering one variant of a probe into a chat request: pure and deterministic.
//!
//! Order: phrasing rewrites the question, persona gives it a voice, length and format reshape
//! the tool outputs and documents, then the probe's message templates are rendered with the
//! slot values as *variables*, never as template code: whatever an incident contains,
//! including `{{`, `{%` or `{#`, reaches the model literally. minijinja runs sandboxed: strict
//! undefined behaviour, fuel and recursion limits, no file or environment access.

mod slots;
mod variant_axes;

pub use slots::{SlotTexts, applicable_axes, protected_values};
pub(crate) use slots::{grow_tool_output, render_tool_output};
pub use variant_axes::VariantAxes;

use crate::axes::{AxisLibrary, ORIGINAL};
use crate::chat::{ChatRequest, Message};
use crate::plain_template::{PlainTemplate, SlotValues};
use crate::probe::Probe;
use crate::template;
use crate::text::json_str;
use minijinja::{Environment, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Largest rendered question (a persona template that explodes is an error, not a hang).
const MAX_QUESTION_CHARS: usize = 64 * 1024;

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
