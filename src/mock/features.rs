//! What the mock notices in a request: its length, the hardest data format in it, the persona
//! and phrasing penalties of the last user message, the tools and their look-alikes, and the
//! hashes (of the model and request, and of the probe's identity) its draws are made from.

use crate::chat::{ChatRequest, Role};
use crate::grade::check::Check;

/// The rendering of structured data found in a request, from easiest to hardest for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DataFormat {
    /// JSON (or no structured data).
    Json,
    /// A markdown table.
    MarkdownTable,
    /// Comma-separated values.
    Csv,
    /// A YAML list of mappings.
    Yaml,
    /// `field: value` lines.
    KeyValue,
    /// An XML document.
    Xml,
    /// An HTML table.
    HtmlTable,
}

impl DataFormat {
    pub(super) fn penalty(self) -> f64 {
        match self {
            DataFormat::Json => 0.0,
            DataFormat::MarkdownTable => 0.02,
            DataFormat::Csv => 0.03,
            DataFormat::Yaml => 0.05,
            DataFormat::KeyValue => 0.08,
            DataFormat::Xml => 0.12,
            DataFormat::HtmlTable => 0.15,
        }
    }
}

/// What the mock notices about a request (all cheap to compute in one pass).
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Total characters (bytes) of message contents, tool calls and tool definitions.
    pub chars: usize,
    /// The hardest data format in a tool output or user message.
    pub format: DataFormat,
    /// Persona penalty at full scale.
    pub persona: f64,
    /// Phrasing penalty at full scale.
    pub phrasing: f64,
    /// Tools offered.
    pub tools: usize,
    /// Tools that `tool_call` checks expect and that have a look-alike in the catalog.
    pub lookalikes: usize,
}

/// Everything one request contributes to a verdict: its features and the hashes.
pub(super) struct Analysis {
    pub(super) features: Features,
    /// Hash of model id + request.
    pub(super) digest: [u8; 32],
    /// Hash of the probe identity (checks + system prompt), model-independent.
    pub(super) probe: [u8; 32],
}

pub(super) fn analyse(model_id: &str, req: &ChatRequest, checks: &[Check]) -> Analysis {
    let mut h = blake3::Hasher::new();
    let mut probe = blake3::Hasher::new();
    feed(&mut h, model_id.as_bytes());
    let mut chars = 0usize;
    let mut format = DataFormat::Json;
    let mut last_user: Option<&str> = None;
    for m in &req.messages {
        let content = m.content_str();
        chars += content.len();
        if m.role == Role::System {
            // Hashed once, into the probe identity, which the digest includes below.
            feed(&mut probe, content.as_bytes());
            continue;
        }
        h.update(&[m.role as u8]);
        feed(&mut h, content.as_bytes());
        feed(&mut h, m.tool_call_id.as_deref().unwrap_or("").as_bytes());
        for c in &m.tool_calls {
            chars += c.function.name.len() + c.function.arguments.len();
            feed(&mut h, c.function.name.as_bytes());
            feed(&mut h, c.function.arguments.as_bytes());
        }
        match m.role {
            Role::Tool => format = format.max(detect_format(content)),
            Role::User => {
                format = format.max(detect_format(content));
                last_user = Some(content);
            }
            Role::Assistant | Role::System => {}
        }
    }
    for t in &req.tools {
        let d = t.function.description.as_deref().unwrap_or("");
        chars += t.function.name.len() + d.len();
        feed(&mut h, t.function.name.as_bytes());
        feed(&mut h, d.as_bytes());
    }
    for c in checks {
        feed_check(&mut probe, c);
    }
    let (persona, phrasing) = last_user.map(voice_penalties).unwrap_or((0.0, 0.0));
    let probe = *probe.finalize().as_bytes();
    h.update(&probe);
    Analysis {
        features: Features {
            chars,
            format,
            persona,
            phrasing,
            tools: req.tools.len(),
            lookalikes: checks
                .iter()
                .filter(|c| matches!(c, Check::ToolCall(t) if lookalike_of(&t.name, req).is_some()))
                .count(),
        },
        digest: *h.finalize().as_bytes(),
        probe,
    }
}

/// Length-prefixed, so `("ab","c")` and `("a","bc")` hash differently.
fn feed(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn feed_check(h: &mut blake3::Hasher, c: &Check) {
    feed(h, c.kind().as_bytes());
    match c {
        Check::Contains(t) | Check::NotContains(t) | Check::Equals(t) => {
            feed(h, t.value().as_bytes())
        }
        Check::Regex(r) => feed(h, r.as_bytes()),
        Check::OneOf(v) => v.iter().for_each(|s| feed(h, s.as_bytes())),
        Check::Numeric(n) => feed(h, &n.value.to_le_bytes()),
        Check::JsonField(j) => {
            feed(h, j.path.as_bytes());
            feed(h, j.equals.to_string().as_bytes());
        }
        Check::ToolCall(t) => {
            feed(h, t.name.as_bytes());
            for (k, v) in &t.arguments {
                feed(h, k.as_bytes());
                feed(h, v.to_string().as_bytes());
            }
        }
        Check::NoToolCall(t) => {
            feed(h, t.name.as_bytes());
            for (k, v) in &t.arguments {
                feed(h, k.as_bytes());
                feed(h, v.to_string().as_bytes());
            }
        }
        Check::ToolSequence(names) => names.iter().for_each(|n| feed(h, n.as_bytes())),
        Check::MaxToolCalls(n) => feed(h, &n.to_le_bytes()),
        Check::Refusal(b) => feed(h, &[*b as u8]),
        Check::Judge(j) => feed(h, j.rubric.as_bytes()),
    }
}

/// A uniform number in [0, 1) from 8 bytes of a hash.
pub(super) fn unit(bytes: &[u8]) -> f64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Guesses how structured data in a message is rendered. Cheap and bounded: only the first
/// 4 KiB are read (the structure shows in the first records).
pub fn detect_format(text: &str) -> DataFormat {
    let t = head(text.trim_start(), 4096);
    if t.starts_with('{') || t.starts_with('[') {
        return DataFormat::Json;
    }
    if t.contains("<table") || t.contains("<TABLE") || t.contains("<td") {
        return DataFormat::HtmlTable;
    }
    if t.contains("</") && (t.starts_with('<') || t.contains("/>\n") || t.contains(">\n  <")) {
        return DataFormat::Xml;
    }
    if !t.contains('\n') {
        return DataFormat::Json;
    }
    let (mut lines, mut pipes, mut kv, mut yaml, mut commas) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut first_commas = None;
    for line in t.lines().map(str::trim).filter(|l| !l.is_empty()) {
        lines += 1;
        if line.starts_with('|') {
            pipes += 1;
        }
        let item = line.strip_prefix("- ");
        if item.is_some_and(is_key_value) {
            yaml += 1;
        } else if is_key_value(line) {
            kv += 1;
        }
        let n = line.bytes().filter(|b| *b == b',').count();
        let first = *first_commas.get_or_insert(n);
        if n >= 2 && n == first {
            commas += 1;
        }
    }
    let most = |n: usize| n >= 3 && n * 10 >= lines * 6;
    if most(pipes) {
        DataFormat::MarkdownTable
    } else if yaml >= 2 && most(yaml + kv) {
        DataFormat::Yaml
    } else if most(kv) {
        DataFormat::KeyValue
    } else if most(commas) {
        DataFormat::Csv
    } else {
        DataFormat::Json
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let end = (0..=max)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    &s[..end]
}

/// `field: value` or `field = value` with a short identifier-like field.
fn is_key_value(line: &str) -> bool {
    let Some(pos) = line.find([':', '=']) else {
        return false;
    };
    let (key, rest) = (&line[..pos], line[pos + 1..].trim());
    pos > 0
        && pos <= 40
        && !rest.is_empty()
        && key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ' | '.'))
}

/// Persona and phrasing penalties (full scale) of the last user message.
fn voice_penalties(text: &str) -> (f64, f64) {
    // Persona and phrasing wrap the question: they show at the start and the end, and a
    // document pasted in the middle must not make this slow.
    let window = if text.len() <= 3072 {
        text.to_lowercase()
    } else {
        let tail_start = (text.len() - 1024..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        format!("{}\n{}", head(text, 2048), &text[tail_start..]).to_lowercase()
    };
    let lower = window.as_str();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    let letters = lower.chars().filter(|c| c.is_alphabetic()).count();
    let upper = head(text, 3072).chars().any(char::is_uppercase);
    let mut persona: f64 = 0.0;
    if has(&["sent from my"]) {
        persona += 0.06;
    }
    if (letters >= 20 && !upper) || has(&[" thx", " rn ", " pls ", " plz ", " u ", " ur "]) {
        persona += 0.06;
    }
    if has(&["ridiculous", "patience", "runaround"]) {
        persona += 0.03;
    }
    if has(&["english is not so good", "my english", "sorry for mistakes"]) {
        persona += 0.03;
    }
    let mut phrasing: f64 = 0.0;
    if has(&[
        "i'm pretty sure",
        "already sorted",
        "i think i already know",
        "i believe this was",
    ]) {
        phrasing += 0.08;
    }
    if lower.matches('?').count() >= 2 {
        phrasing += 0.05;
    }
    if text.len() > 600 {
        phrasing += 0.05;
    }
    if has(&[
        "i was wondering",
        "if you have the information",
        "could you possibly",
        "would it be possible",
    ]) {
        phrasing += 0.04;
    }
    (persona.min(0.15), phrasing.min(0.15))
}

/// Lowercase words of a text, for description similarity.
fn word_set(text: &str) -> std::collections::HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether tool `b` is a look-alike of tool `a`: names one word apart (a word swapped, or one
/// added or dropped) and descriptions sharing at least half of the shorter one's words (or
/// both without a description). How a model confuses near-duplicate tools.
pub fn is_lookalike(a: &crate::chat::ToolDef, b: &crate::chat::ToolDef) -> bool {
    let (na, nb) = (
        crate::tool_catalog::name_words(&a.function.name),
        crate::tool_catalog::name_words(&b.function.name),
    );
    if na == nb || na.len().abs_diff(nb.len()) > 1 {
        return false;
    }
    let shared = na.iter().filter(|w| nb.contains(w)).count();
    if shared + 1 < na.len().max(nb.len()) {
        return false;
    }
    let (da, db) = (
        word_set(a.function.description.as_deref().unwrap_or("")),
        word_set(b.function.description.as_deref().unwrap_or("")),
    );
    let smaller = da.len().min(db.len());
    smaller == 0 && da.len() == db.len() || 2 * da.intersection(&db).count() >= smaller.max(1)
}

/// The first look-alike (see [`is_lookalike`]) of the offered tool named `name`.
pub(super) fn lookalike_of<'r>(name: &str, req: &'r ChatRequest) -> Option<&'r String> {
    let expected = req.tools.iter().find(|t| t.function.name == name)?;
    req.tools
        .iter()
        .find(|t| t.function.name != name && is_lookalike(expected, t))
        .map(|t| &t.function.name)
}

/// The features the mock sees in a request.
pub fn features(req: &ChatRequest) -> Features {
    analyse("", req, &[]).features
}
