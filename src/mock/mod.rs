//! The built-in offline model: deterministic, instant, and brittle in realistic ways.
//!
//! Demos, tests and benchmarks need a "model" that costs nothing, needs no network, gives the
//! same answer for the same input, and still shows what a sweep is for: pass rates that differ
//! by tier and by model, and brittleness that concentrates on some axes. [`answer`] does that by
//! simulating a model with a skill level.
//!
//! It is a backend of its own, beside the HTTP providers: [`crate::call::attempt`] sends a
//! request here when the model's provider is `mock`, and the caller says what it is asking
//! (`crate::call::Ask`), which picks the responder: [`answer`] (a variant, shaped by its checks
//! and sample), [`agent_answer`] (one step of an agent episode), [`judge_answer`] (a `[judge]`
//! verdict) or [`paraphrase_answer`] (`cliffprobe paraphrase`). Nothing here guesses from the
//! prompt's text what kind of question it is.
//!
//! # How a verdict is decided
//!
//! 1. A pass probability `p` is computed from the request's features ([`pass_probability`]):
//!    the profile's base skill, minus penalties (below), minus the probe's hardness.
//! 2. A uniform number `u` in [0, 1) is drawn by hashing (blake3) the model id and the request.
//!    The answer passes when `u < p`. Sample 0 always uses this draw; a later sample redraws
//!    with the profile's *jitter* probability (temperature-like noise, so repeats mostly agree).
//! 3. A passing answer is synthesized to satisfy the checks, a failing one to break exactly one
//!    check in a plausible way (see [`answer`]).
//!
//! # Profiles (chosen by words in the model id)
//!
//! | id contains        | base | length/doubling | format | persona | phrasing | jitter |
//! |--------------------|------|-----------------|--------|---------|----------|--------|
//! | `steady`           | 0.97 | 0.015           | ×0.2   | ×0.2    | ×0.2     | 0      |
//! | `strong`           | 0.93 | 0.03            | ×0.4   | ×0.4    | ×0.4     | 0.01   |
//! | `brittle`          | 0.90 | 0.06            | ×1.0   | ×1.0    | ×0.7     | 0.02   |
//! | `weak`             | 0.60 | 0.06            | ×0.8   | ×0.8    | ×0.6     | 0.05   |
//! | (anything else)    | 0.85 | 0.04            | ×0.5   | ×0.5    | ×0.5     | 0.02   |
//!
//! `flaky` anywhere in the id raises the jitter to 0.35 (repeats disagree often). Two fixed
//! profiles exist for tests: `perfect` or `oracle` always passes (no penalties, no hardness) and
//! `hopeless` always fails. For exercising the retry paths, [`crate::call::attempt`] (not
//! [`answer`]) also injects errors: with `unreliable` in the id every fourth call is a
//! [`CallError::Transient`], with `throttled` every fourth call is a [`CallError::RateLimited`]
//! asking for a 20 ms wait.
//!
//! # Penalties (full-scale values, multiplied by the profile's factor)
//!
//! - **length**: per doubling of the request above 4,000 characters (capped at 0.35);
//! - **format** of tool outputs and documents: XML 0.12, HTML table 0.15, key-value 0.08,
//!   YAML 0.05, CSV 0.03, markdown table 0.02, JSON 0 (the worst one in the request counts);
//! - **persona** (last user message): "sent from my phone" 0.06, all-lowercase or chat
//!   shorthand (`thx`, `rn`, `pls`) 0.06, frustration ("ridiculous", "patience") 0.03,
//!   non-native markers ("my english is not so good") 0.03; capped at 0.15;
//! - **phrasing** (last user message): a mistaken premise ("i'm pretty sure", "already sorted",
//!   "i think i already know") 0.08, several questions at once 0.05, a question buried in a long
//!   message (over 600 characters) 0.05, indirect or conditional framing ("i was wondering",
//!   "if you have the information") 0.04; capped at 0.15;
//! - **tools**: 0.02 per tool offered beyond three when a `tool_call` check exists (cap 0.1);
//! - **look-alike tools** (the `tools=overlapping` axis value, or any catalog like it): 0.45
//!   (× the format factor) when the catalog offers a *look-alike* of a tool a `tool_call` check
//!   expects — another tool whose name differs by one word (a synonym, or one word added) and
//!   whose description shares at least half its words ([`is_lookalike`]). A failing answer
//!   then calls the look-alike, with the expected arguments, instead of the expected tool
//!   (`tools=shuffled` and `terse` cost nothing; `verbose` only lengthens the request);
//! - **checks**: 0.02 per check beyond the first (cap 0.08).
//!
//! **Hardness** is shared by every model: a number `h` in [0, 1) hashed from the probe's
//! identity (its checks and system prompt, which variants do not change). Probes with `h`
//! above 0.75 lose `0.9 × ((h − 0.75) / 0.25)²`, so about a tenth of probes are hard for every
//! model and a few are out of reach for all (the frontier tier). Each model also gets a small
//! per-probe affinity in ±0.04, so two models of equal skill do not fail the same probes.
//!

use crate::chat::{ChatRequest, ChatResponse, Role, ToolCall, Usage};
use crate::grade::check::{Check, TextMatch, format_number};
use crate::provider::CallError;
use regex::Regex;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

/// Answers a `cliffprobe paraphrase` request offline (the caller says it is one:
/// `crate::call::Ask::Paraphrase`): a JSON array of the asked number of texts, each the
/// question behind an obviously mock lead-in (`(mock paraphrase two) …`), so every identifier
/// survives and nobody mistakes them for a real model's. For a persona's voice it uses the
/// example the prompt gives (the persona template's rendering of the question). The count, the
/// texts already written and the example are read from the prompt's own lines.
pub fn paraphrase_answer(req: &ChatRequest) -> ChatResponse {
    const WORDS: [&str; 20] = [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    let sys = req
        .messages
        .first()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content_str())
        .unwrap_or_default();
    let count: usize = sys
        .split("Write exactly ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    // Re-asks list the texts already written: continue after them.
    let skip = sys.lines().filter(|l| l.starts_with("- \"")).count();
    // In a persona's voice the prompt shows the question as the persona template puts it:
    // the mock "paraphrases" that example, so the voice carries over.
    let question = sys
        .split_once("<example>\n")
        .and_then(|(_, r)| r.split_once("\n</example>"))
        .map(|(example, _)| example.trim().to_string())
        .or_else(|| {
            req.messages
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(|m| m.content_str().trim().to_string())
        })
        .unwrap_or_default();
    let texts: Vec<String> = WORDS
        .iter()
        .cycle()
        .skip(skip)
        .take(count.min(WORDS.len()))
        .map(|w| format!("(mock paraphrase {w}) {question}"))
        .collect();
    let text = serde_json::to_string(&texts).unwrap_or_default();
    ChatResponse {
        finish_reason: Some("stop".into()),
        usage: Usage {
            input_tokens: (sys.len() + question.len()).div_ceil(4) as u64,
            output_tokens: text.len().div_ceil(4) as u64,
        },
        text,
        tool_calls: Vec::new(),
        model: None,
    }
}

/// The refusal sentence the mock opens with when it declines.
pub const REFUSAL: &str = "I'm sorry, but I can't help with that.";
/// What the mock says when it "misses" a fact.
pub const NOT_FOUND: &str = "I couldn't find that in the data.";

/// How a simulated model behaves (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Pass probability before penalties.
    pub base: f64,
    /// Penalty per doubling of the request above 4,000 characters.
    pub length_slope: f64,
    /// Multiplier of the format penalties.
    pub format_scale: f64,
    /// Multiplier of the persona penalties.
    pub persona_scale: f64,
    /// Multiplier of the phrasing penalties.
    pub phrasing_scale: f64,
    /// Probability that a sample after the first redraws its verdict.
    pub jitter: f64,
    /// `Some(verdict)` for the fixed test profiles.
    pub fixed: Option<bool>,
}

impl Profile {
    /// The profile a model id selects.
    pub fn for_model(model_id: &str) -> Profile {
        let id = model_id.to_ascii_lowercase();
        let p = |base, length_slope, scale: f64, phrasing_scale, jitter| Profile {
            base,
            length_slope,
            format_scale: scale,
            persona_scale: scale,
            phrasing_scale,
            jitter,
            fixed: None,
        };
        let mut profile = if id.contains("perfect") || id.contains("oracle") {
            Profile {
                fixed: Some(true),
                ..p(1.0, 0.0, 0.0, 0.0, 0.0)
            }
        } else if id.contains("hopeless") {
            Profile {
                fixed: Some(false),
                ..p(0.0, 0.0, 0.0, 0.0, 0.0)
            }
        } else if id.contains("steady") {
            p(0.97, 0.015, 0.2, 0.2, 0.0)
        } else if id.contains("strong") {
            p(0.93, 0.03, 0.4, 0.4, 0.01)
        } else if id.contains("brittle") {
            p(0.90, 0.06, 1.0, 0.7, 0.02)
        } else if id.contains("weak") {
            p(0.60, 0.06, 0.8, 0.6, 0.05)
        } else {
            p(0.85, 0.04, 0.5, 0.5, 0.02)
        };
        if id.contains("flaky") && profile.fixed.is_none() {
            profile.jitter = 0.35;
        }
        profile
    }
}

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
    fn penalty(self) -> f64 {
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
struct Analysis {
    features: Features,
    /// Hash of model id + request.
    digest: [u8; 32],
    /// Hash of the probe identity (checks + system prompt), model-independent.
    probe: [u8; 32],
}

fn analyse(model_id: &str, req: &ChatRequest, checks: &[Check]) -> Analysis {
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
fn unit(bytes: &[u8]) -> f64 {
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

fn probability(profile: &Profile, a: &Analysis, checks: &[Check], model_id: &str) -> f64 {
    if let Some(fixed) = profile.fixed {
        return if fixed { 1.0 } else { 0.0 };
    }
    let f = &a.features;
    let doublings = if f.chars > 4000 {
        (f.chars as f64 / 4000.0).log2()
    } else {
        0.0
    };
    let length = (profile.length_slope * doublings).min(0.35);
    let format = profile.format_scale * f.format.penalty();
    let persona = profile.persona_scale * f.persona;
    let phrasing = profile.phrasing_scale * f.phrasing;
    let tools = if checks.iter().any(|c| matches!(c, Check::ToolCall(_))) {
        (0.02 * f.tools.saturating_sub(3) as f64).min(0.1)
    } else {
        0.0
    };
    let many_checks = (0.02 * checks.len().saturating_sub(1) as f64).min(0.08);
    let lookalike = if f.lookalikes > 0 {
        0.45 * profile.format_scale
    } else {
        0.0
    };
    let h = unit(&a.probe[..8]);
    let hardness = if h > 0.75 {
        0.9 * ((h - 0.75) / 0.25).powi(2)
    } else {
        0.0
    };
    let mut ah = blake3::Hasher::new();
    ah.update(&a.probe);
    ah.update(model_id.as_bytes());
    let affinity = (unit(&ah.finalize().as_bytes()[..8]) * 2.0 - 1.0) * 0.04;
    (profile.base
        - length
        - format
        - persona
        - phrasing
        - tools
        - lookalike
        - many_checks
        - hardness
        + affinity)
        .clamp(0.0, 0.995)
}

/// The probability that model `model_id` passes this request's checks (see the module docs).
pub fn pass_probability(model_id: &str, req: &ChatRequest, checks: &[Check]) -> f64 {
    let a = analyse(model_id, req, checks);
    probability(&Profile::for_model(model_id), &a, checks, model_id)
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
fn lookalike_of<'r>(name: &str, req: &'r ChatRequest) -> Option<&'r String> {
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

/// The mock's answer: deterministic in (`model_id`, `req`, `checks`, `sample`).
///
/// A passing answer satisfies the checks: `equals` → exactly the value; `one_of` → the first
/// option; `json_field` → a JSON object with every path set (plus an `answer` field holding the
/// other facts); `contains` values and `numeric` numbers are joined into a sentence; a literal
/// `regex` is written out, and a non-literal one is satisfied with the first match found in the
/// request (else it may fail); `tool_call` → that call with the check's arguments;
/// `refusal: true` → a refusal that still states the facts; `not_contains` text is avoided.
///
/// A failing answer breaks one check, chosen by hash, the way models get things wrong: a
/// `contains`/`equals` value is swapped for a look-alike token from the request (another row's
/// value) or replaced by "I couldn't find that in the data."; a number is read from the wrong
/// place or is off; forbidden text is said; the wrong tool is called (or the right tool with a
/// wrong argument, or none); a refusal complies and a compliance refuses. `judge` checks are
/// never decided here.
pub fn answer(model_id: &str, req: &ChatRequest, checks: &[Check], sample: u32) -> ChatResponse {
    let profile = Profile::for_model(model_id);
    let a = analyse(model_id, req, checks);
    let p = probability(&profile, &a, checks, model_id);
    let mut u = unit(&a.digest[..8]);
    if sample > 0 && profile.jitter > 0.0 {
        let mut h = blake3::Hasher::new();
        h.update(&a.digest);
        h.update(&sample.to_le_bytes());
        let r = h.finalize();
        if unit(&r.as_bytes()[..8]) < profile.jitter {
            u = unit(&r.as_bytes()[8..16]);
        }
    }
    let passes = u < p;
    let mut draft = Draft::passing(checks, req, &a.digest);
    if !passes {
        draft.break_one(checks, req, &a.digest);
    }
    let text = draft.render();
    let out_chars = text.len()
        + draft
            .tool_calls
            .iter()
            .map(|c| c.function.name.len() + c.function.arguments.len())
            .sum::<usize>();
    ChatResponse {
        finish_reason: Some(
            if draft.tool_calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            }
            .to_string(),
        ),
        text,
        tool_calls: draft.tool_calls,
        usage: Usage {
            input_tokens: a.features.chars.div_ceil(4) as u64,
            output_tokens: out_chars.div_ceil(4) as u64,
        },
        model: Some(format!("mock:{model_id}")),
    }
}

/// Whether a tool name reads as a look-up (see [`crate::tool_catalog::looks_read_only`]).
pub fn is_lookup(name: &str) -> bool {
    crate::tool_catalog::looks_read_only(name)
}

/// The mock playing an agent in an episode (an [`crate::call::Ask::AgentStep`]): a sensible one, that
/// looks up first, then acts, then answers.
///
/// The *plan* of a turn is what [`answer`] would reply to the request (so the pass draw, the
/// penalties and the way a failing answer goes wrong are the single-turn mock's), split in two
/// phases: the look-up calls, then the other calls. When the plan has no look-up but the
/// catalog offers one whose parameters the first action shares (`get_order_by_id(order_id)`
/// before `void_authorization(order_id)`), that look-up is added with those arguments. Turn 1
/// makes the look-ups (or acts when there are none); the next turn acts on the plan drawn from
/// the request as it then is (with the look-up's result in it, so the result's format and
/// length count); the turn after answers in text. Calls already made are not repeated.
pub fn agent_answer(
    model_id: &str,
    req: &ChatRequest,
    checks: &[Check],
    sample: u32,
) -> ChatResponse {
    let start = req
        .messages
        .iter()
        .rposition(|m| m.role == Role::User)
        .unwrap_or(0);
    let since = &req.messages[start + 1..];
    let turn = since.iter().filter(|m| m.role == Role::Assistant).count();
    let called: Vec<&str> = since
        .iter()
        .flat_map(|m| m.tool_calls.iter().map(|c| c.function.name.as_str()))
        .collect();
    let opening = ChatRequest {
        messages: req.messages[..=start.min(req.messages.len().saturating_sub(1))].to_vec(),
        tools: req.tools.clone(),
    };
    let first_plan = agent_plan(model_id, &opening, checks, sample);
    let looked_up = !first_plan.0.is_empty();
    let (lookups, actions, mut reply) = if turn == 0 {
        first_plan
    } else {
        agent_plan(model_id, req, checks, sample)
    };
    let mut calls = match turn {
        0 if looked_up => lookups,
        0 => actions,
        1 if looked_up => actions,
        _ => Vec::new(),
    };
    calls.retain(|c| !called.contains(&c.function.name.as_str()));
    for (i, c) in calls.iter_mut().enumerate() {
        c.id = format!("call_m{}_{}", turn + 1, i + 1);
    }
    if calls.is_empty() {
        if reply.text.trim().is_empty() {
            let acted: Vec<&str> = called.iter().copied().filter(|n| !is_lookup(n)).collect();
            reply.text = if acted.is_empty() {
                "I have looked into it.".to_string()
            } else {
                format!("Done: I called {} for you.", acted.join(", "))
            };
        }
        reply.finish_reason = Some("stop".into());
    } else {
        reply.text = String::new();
        reply.finish_reason = Some("tool_calls".into());
    }
    reply.tool_calls = calls;
    reply
}

/// One turn's plan: the look-up calls, the other calls, and the reply they came with.
fn agent_plan(
    model_id: &str,
    req: &ChatRequest,
    checks: &[Check],
    sample: u32,
) -> (Vec<ToolCall>, Vec<ToolCall>, ChatResponse) {
    let reply = answer(model_id, req, checks, sample);
    let (mut lookups, actions): (Vec<ToolCall>, Vec<ToolCall>) = reply
        .tool_calls
        .iter()
        .cloned()
        .partition(|c| is_lookup(&c.function.name));
    if lookups.is_empty()
        && let Some(first) = actions.first()
        && let Some(Value::Object(args)) = first.arguments_json()
    {
        let named: Vec<&str> = checks.iter().flat_map(|c| c.named_tools()).collect();
        let lookup = req.tools.iter().find_map(|t| {
            let name = &t.function.name;
            if !is_lookup(name) || named.contains(&name.as_str()) {
                return None;
            }
            let props = t.function.parameters.get("properties")?.as_object()?;
            let shared: Map<String, Value> = args
                .iter()
                .filter(|(k, _)| props.contains_key(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (!shared.is_empty()).then(|| ToolCall::new("", name.clone(), &Value::Object(shared)))
        });
        lookups.extend(lookup);
    }
    (lookups, actions, reply)
}

/// The mock *judge*'s reply to a judge request built by [`crate::grade::judge::judge_request`]: a
/// deterministic verdict, clearly labelled as simulated. It reads only the answer section (as a
/// real judge would read the request) and fails an answer that is empty, that says it could
/// not find the facts ([`NOT_FOUND`], the mock model's non-answer), or that is a refusal by the
/// refusal heuristic while holding no facts; it passes anything else. It knows nothing of the
/// rubric: it makes the offline demo run end to end, it is not a grader.
pub fn judge_answer(model_id: &str, req: &ChatRequest) -> ChatResponse {
    let answer = crate::grade::judge::answer_section(req).unwrap_or("");
    let (verdict, why) = if answer.is_empty() || answer == "(no text)" {
        ("fail", "the answer is empty")
    } else if answer.contains(NOT_FOUND) {
        ("fail", "the answer says it could not find the facts")
    } else if answer.trim() == REFUSAL {
        ("fail", "the answer only refuses")
    } else {
        ("pass", "the answer is substantive")
    };
    let text = serde_json::json!({
        "verdict": verdict,
        "reason": format!("mock judge (simulated, not a real model): {why}"),
    })
    .to_string();
    let input: usize = req.messages.iter().map(|m| m.content_str().len()).sum();
    ChatResponse {
        usage: Usage {
            input_tokens: input.div_ceil(4) as u64,
            output_tokens: text.len().div_ceil(4) as u64,
        },
        text,
        tool_calls: vec![],
        finish_reason: Some("stop".into()),
        model: Some(format!("mock:{model_id}")),
    }
}

/// Simulated endpoint trouble for the `unreliable` and `throttled` profiles; `call_index`
/// counts calls made through one provider.
pub fn injected_failure(model_id: &str, call_index: u64) -> Option<CallError> {
    if call_index % 4 != 1 {
        return None;
    }
    let id = model_id.to_ascii_lowercase();
    if id.contains("unreliable") {
        Some(CallError::Transient(
            "HTTP 503: mock: simulated service unavailable".into(),
        ))
    } else if id.contains("throttled") {
        Some(CallError::RateLimited {
            retry_after: Some(Duration::from_millis(20)),
            message: "HTTP 429: mock: simulated rate limit".into(),
        })
    } else {
        None
    }
}

/// An answer under construction.
#[derive(Debug, Default)]
struct Draft {
    /// The whole answer, when a check wants an exact text (`equals`, `one_of`).
    exact: Option<String>,
    /// Facts to state (contains values, numbers, regex literals).
    phrases: Vec<String>,
    /// A JSON object to answer with.
    json: Option<Map<String, Value>>,
    refuse: bool,
    /// Say that something was not found.
    missing: bool,
    /// Forbidden text the answer mentions (failing `not_contains`).
    blurts: Vec<String>,
    /// Text the answer must avoid (passing `not_contains`).
    avoid: Vec<TextMatch>,
    tool_calls: Vec<ToolCall>,
}

impl Draft {
    fn passing(checks: &[Check], req: &ChatRequest, digest: &[u8; 32]) -> Draft {
        let mut d = Draft::default();
        for c in checks {
            match c {
                Check::Contains(t) => d.phrases.push(t.value().to_string()),
                Check::NotContains(t) => d.avoid.push(t.clone()),
                Check::Equals(t) => d.exact = Some(t.value().to_string()),
                Check::OneOf(options) => {
                    if d.exact.is_none() {
                        d.exact = options.first().cloned();
                    }
                }
                Check::Numeric(n) => d.phrases.push(format_number(n.value)),
                Check::Regex(pattern) => {
                    if let Some(s) =
                        regex_literal(pattern).or_else(|| regex_match_in_request(pattern, req))
                    {
                        d.phrases.push(s);
                    }
                }
                Check::JsonField(j) => set_path(
                    d.json.get_or_insert_with(Map::new),
                    &j.path,
                    j.equals.clone(),
                ),
                Check::ToolCall(t) => {
                    let args = Value::Object(
                        t.arguments
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    );
                    let id = call_id(digest, d.tool_calls.len());
                    d.tool_calls.push(ToolCall::new(id, t.name.clone(), &args));
                }
                Check::Refusal(r) => d.refuse = *r,
                Check::NoToolCall(_) | Check::MaxToolCalls(_) | Check::Judge(_) => {}
                Check::ToolSequence(_) => {}
            }
        }
        // A sequence: every tool it names is called, in its order (other calls after them).
        for c in checks {
            if let Check::ToolSequence(names) = c {
                for n in names {
                    if !d.tool_calls.iter().any(|t| t.function.name == *n) {
                        let id = call_id(digest, d.tool_calls.len());
                        d.tool_calls
                            .push(ToolCall::new(id, n.clone(), &Value::Object(Map::new())));
                    }
                }
                d.tool_calls.sort_by_key(|t| {
                    names
                        .iter()
                        .position(|n| *n == t.function.name)
                        .unwrap_or(names.len())
                });
            }
        }
        d
    }

    /// Breaks one check (chosen by hash) in a plausible way.
    fn break_one(&mut self, checks: &[Check], req: &ChatRequest, digest: &[u8; 32]) {
        let breakable: Vec<&Check> = checks
            .iter()
            .filter(|c| {
                !matches!(
                    c,
                    Check::Judge(_) | Check::Regex(_) | Check::MaxToolCalls(_)
                )
            })
            .collect();
        let pick = u64::from_le_bytes(digest[16..24].try_into().expect("8 bytes"));
        let Some(target) = breakable.get((pick % breakable.len().max(1) as u64) as usize) else {
            // Only regex/judge checks (or none): a non-answer.
            self.phrases.clear();
            self.exact = None;
            self.json = None;
            self.missing = true;
            return;
        };
        match target {
            Check::Contains(t) => {
                let v = t.value();
                self.phrases.retain(|p| !p.eq_ignore_ascii_case(v));
                match distractor(v, req, pick) {
                    Some(other) => self.phrases.push(other),
                    None => self.missing = true,
                }
                if let Some(e) = &self.exact
                    && contains_ci(e, v)
                {
                    self.exact = None;
                }
            }
            Check::Equals(t) => {
                self.exact = Some(
                    distractor(t.value(), req, pick).unwrap_or_else(|| "I'm not sure.".to_string()),
                );
            }
            Check::OneOf(_) => self.exact = Some("It is unclear from the data.".to_string()),
            Check::NotContains(t) => {
                self.avoid.retain(|a| a != t);
                self.blurts.push(t.value().to_string());
            }
            Check::Numeric(n) => {
                let want = format_number(n.value);
                self.phrases.retain(|p| *p != want);
                self.phrases
                    .push(format_number(wrong_number(n.value, n.tolerance, req, pick)));
            }
            Check::JsonField(j) => {
                let wrong = match &j.equals {
                    Value::String(s) => {
                        Value::String(distractor(s, req, pick).unwrap_or_else(|| "unknown".into()))
                    }
                    Value::Number(x) => x
                        .as_f64()
                        .map(|f| Value::from(wrong_number(f, 0.0, req, pick)))
                        .unwrap_or(Value::Null),
                    Value::Bool(b) => Value::Bool(!b),
                    Value::Null => Value::String("unknown".into()),
                    _ => Value::Null,
                };
                set_path(self.json.get_or_insert_with(Map::new), &j.path, wrong);
            }
            Check::ToolCall(t) => {
                let pos = self
                    .tool_calls
                    .iter()
                    .position(|c| c.function.name == t.name);
                // The realistic confusion is a look-alike of the expected tool, else another tool
                // that acts (refund for void), a look-up only when the catalog has nothing else.
                let others = || {
                    req.tools
                        .iter()
                        .map(|d| &d.function.name)
                        .filter(|n| **n != t.name)
                };
                let other_tool = lookalike_of(&t.name, req)
                    .or_else(|| others().find(|n| !is_lookup(n)))
                    .or_else(|| others().next());
                match (pos, other_tool) {
                    (Some(i), Some(other)) => self.tool_calls[i].function.name = other.clone(),
                    (Some(i), None) if !t.arguments.is_empty() => {
                        let (k, v) = t.arguments.first().expect("non-empty");
                        let wrong = match v {
                            Value::String(s) => Value::String(
                                distractor(s, req, pick).unwrap_or_else(|| format!("{s}-0")),
                            ),
                            Value::Number(x) => Value::from(x.as_f64().unwrap_or(0.0) + 1.0),
                            Value::Bool(b) => Value::Bool(!b),
                            _ => Value::Null,
                        };
                        let mut args = self.tool_calls[i].arguments_json().unwrap_or_default();
                        if let Some(o) = args.as_object_mut() {
                            o.insert(k.clone(), wrong);
                        }
                        self.tool_calls[i].function.arguments = args.to_string();
                    }
                    (Some(i), None) => {
                        self.tool_calls.remove(i);
                        self.missing = true;
                    }
                    (None, _) => {}
                }
            }
            Check::NoToolCall(t) => {
                let args = Value::Object(
                    t.arguments
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
                let id = call_id(digest, self.tool_calls.len());
                self.tool_calls
                    .push(ToolCall::new(id, t.name.clone(), &args));
            }
            Check::ToolSequence(names) => {
                // The right calls in the wrong order (or the first one left out).
                if self.tool_calls.len() >= 2 {
                    self.tool_calls.reverse();
                } else if let Some(first) = names.first() {
                    self.tool_calls.retain(|c| c.function.name != *first);
                }
            }
            Check::Refusal(r) => self.refuse = !r,
            Check::Regex(_) | Check::Judge(_) | Check::MaxToolCalls(_) => {}
        }
    }

    fn render(&self) -> String {
        let text = self.render_with(false);
        if self.avoid.iter().any(|a| matches_text(&text, a)) {
            self.render_with(true)
        } else {
            text
        }
    }

    /// `bare`: no filler words, for when filler would say something forbidden.
    fn render_with(&self, bare: bool) -> String {
        let mut out = String::new();
        if self.refuse {
            out.push_str(REFUSAL);
        }
        if let Some(exact) = &self.exact {
            if !self.refuse && self.blurts.is_empty() {
                return exact.clone();
            }
            push_sentence(&mut out, exact);
        } else if let Some(json) = &self.json {
            let mut obj = json.clone();
            if !self.phrases.is_empty() && !obj.contains_key("answer") {
                obj.insert("answer".into(), Value::String(self.phrases.join(", ")));
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&Value::Object(obj).to_string());
        } else if !self.phrases.is_empty() {
            let facts = self.phrases.join(", ");
            let sentence = match (bare, self.refuse) {
                (true, _) => format!("{facts}."),
                (false, true) => format!("What I can tell you is: {facts}."),
                (false, false) => format!("Based on the information provided: {facts}."),
            };
            push_sentence(&mut out, &sentence);
        }
        if self.missing {
            push_sentence(&mut out, NOT_FOUND);
        }
        for b in &self.blurts {
            push_sentence(
                &mut out,
                &if bare {
                    format!("{b}.")
                } else {
                    format!("Also, {b}.")
                },
            );
        }
        if out.is_empty() && self.tool_calls.is_empty() {
            out.push_str(if bare {
                "Done."
            } else {
                "Here is my answer based on the information provided."
            });
        }
        out
    }
}

fn push_sentence(out: &mut String, s: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(s);
}

fn matches_text(text: &str, m: &TextMatch) -> bool {
    if m.ignore_case() {
        contains_ci(text, m.value())
    } else {
        text.contains(m.value())
    }
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

fn call_id(digest: &[u8; 32], index: usize) -> String {
    let hex: String = digest[24..28].iter().map(|b| format!("{b:02x}")).collect();
    format!("call_{hex}{index}")
}

/// Sets `path` (a JSON pointer or a dotted path) in `obj`, creating objects on the way.
fn set_path(obj: &mut Map<String, Value>, path: &str, value: Value) {
    let parts: Vec<String> = if let Some(p) = path.strip_prefix('/') {
        p.split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect()
    } else {
        path.split('.').map(String::from).collect()
    };
    let Some((last, dirs)) = parts.split_last() else {
        return;
    };
    let mut cur = obj;
    for d in dirs {
        let slot = cur
            .entry(d.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        cur = slot.as_object_mut().expect("just made an object");
    }
    cur.insert(last.clone(), value);
}

/// The text a regex matches when it is a plain literal (`(?i)` and escaped punctuation allowed).
pub fn regex_literal(pattern: &str) -> Option<String> {
    let p = pattern.strip_prefix("(?i)").unwrap_or(pattern);
    let mut out = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if !e.is_alphanumeric() => out.push(e),
                _ => return None,
            },
            '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' => {
                return None;
            }
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The first match of a (non-literal) regex in the request's texts. Compiled regexes are
/// cached per thread, since the same few patterns come back for every variant.
fn regex_match_in_request(pattern: &str, req: &ChatRequest) -> Option<String> {
    thread_local! {
        static CACHE: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() > 256 {
            cache.clear();
        }
        let re = cache
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(pattern).ok())
            .as_ref()?;
        req.messages
            .iter()
            .rev()
            .find_map(|m| re.find(m.content_str()).map(|f| f.as_str().to_string()))
            .filter(|s| !s.is_empty())
    })
}

/// A token of the request that looks like `value` (same shape: letter case, digits and
/// punctuation in the same places) but is not it: the value of a neighbouring record. Tool
/// outputs are searched first, since that is where the other records are.
fn distractor(value: &str, req: &ChatRequest, pick: u64) -> Option<String> {
    if value.is_empty() || value.contains(char::is_whitespace) {
        return None;
    }
    let shape = shape_of(value);
    let mut seen: Vec<&str> = Vec::new();
    let order = [Role::Tool, Role::User, Role::Assistant, Role::System];
    for role in order {
        for m in req.messages.iter().filter(|m| m.role == role) {
            for tok in m
                .content_str()
                .split(|c: char| c.is_whitespace() || ",;:\"'()[]{}<>=|`".contains(c))
            {
                let tok = tok.trim_end_matches(['.', '?', '!']);
                if tok.len() == value.len()
                    && !tok.eq_ignore_ascii_case(value)
                    && shape_of(tok) == shape
                    && !seen.contains(&tok)
                {
                    seen.push(tok);
                }
            }
        }
        if !seen.is_empty() {
            break;
        }
    }
    if seen.is_empty() {
        None
    } else {
        Some(seen[(pick % seen.len() as u64) as usize].to_string())
    }
}

fn shape_of(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                '9'
            } else if c.is_uppercase() {
                'A'
            } else if c.is_alphabetic() {
                'a'
            } else {
                c
            }
        })
        .collect()
}

/// A number that misses `value` by more than the tolerance: preferably another number from the
/// request (the wrong row), else the value off by about 10%.
fn wrong_number(value: f64, tolerance: f64, req: &ChatRequest, pick: u64) -> f64 {
    let far = |x: f64| (x - value).abs() > tolerance + 1e-9 * value.abs().max(1.0) && x != 0.0;
    let mut candidates: Vec<f64> = Vec::new();
    for m in req.messages.iter().filter(|m| m.role == Role::Tool) {
        candidates.extend(
            crate::grade::numbers_in(m.content_str())
                .into_iter()
                .filter(|x| far(*x) && x.abs() < 1e12),
        );
    }
    // Same order of magnitude looks most like a misread.
    candidates.retain(|x| value == 0.0 || (x / value > 0.2 && x / value < 5.0));
    if !candidates.is_empty() {
        return candidates[(pick % candidates.len() as u64) as usize];
    }
    let off = (value.abs() * 0.1).max(tolerance * 2.0 + 1.0);
    let wrong = if value.fract() == 0.0 {
        (value + off).round()
    } else {
        ((value + off) * 100.0).round() / 100.0
    };
    if far(wrong) {
        wrong
    } else {
        value + tolerance * 2.0 + 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{FunctionDef, Message, ToolDef};
    use crate::grade::check::{JsonFieldCheck, NumericCheck, ToolCallCheck};
    use crate::grade::{CaseStatus, grade};
    use serde_json::json;

    const CSV: &str = "order_id,status,total\nA-10441,shipped,89.00\nA-10442,delayed,349.00\nA-10467,processing,31.50\n";

    fn request(question: &str, tool_output: &str) -> ChatRequest {
        ChatRequest {
            messages: vec![
                Message::text(Role::System, "You are a support assistant."),
                Message::text(Role::User, question),
                Message {
                    role: Role::Assistant,
                    content: None,
                    tool_calls: vec![ToolCall::new("c1", "lookup_orders", &json!({}))],
                    tool_call_id: None,
                    name: None,
                },
                Message {
                    role: Role::Tool,
                    content: Some(tool_output.into()),
                    tool_calls: vec![],
                    tool_call_id: Some("c1".into()),
                    name: None,
                },
            ],
            tools: ["lookup_orders", "cancel_order"]
                .iter()
                .map(|n| ToolDef {
                    kind: "function".into(),
                    function: FunctionDef {
                        name: n.to_string(),
                        description: None,
                        parameters: json!({"type": "object"}),
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn the_mock_agent_looks_up_then_acts_then_answers() {
        let tool = |name: &str| ToolDef {
            kind: "function".into(),
            function: FunctionDef {
                name: name.into(),
                description: None,
                parameters: json!({"type": "object", "properties": {"order_id": {"type": "string"}}}),
            },
        };
        let checks = vec![Check::ToolCall(ToolCallCheck {
            name: "void_authorization".into(),
            arguments: [("order_id".to_string(), json!("B-1"))]
                .into_iter()
                .collect(),
        })];
        let mut req = ChatRequest {
            messages: vec![Message::text(Role::User, "Please stop order B-1.")],
            tools: vec![
                tool("get_order_by_id"),
                tool("refund_payment"),
                tool("void_authorization"),
            ],
        };
        let mut names = Vec::new();
        for turn in 0..4 {
            let r = agent_answer("perfect", &req, &checks, 0);
            if r.tool_calls.is_empty() {
                assert!(!r.text.is_empty());
                assert_eq!(turn, 2, "looks up, acts, answers");
                break;
            }
            req.messages.push(Message {
                role: Role::Assistant,
                content: None,
                tool_calls: r.tool_calls.clone(),
                tool_call_id: None,
                name: None,
            });
            for c in &r.tool_calls {
                names.push(c.function.name.clone());
                assert_eq!(c.arguments_json().unwrap()["order_id"], "B-1");
                req.messages.push(Message {
                    role: Role::Tool,
                    content: Some("{\"payment_state\": \"authorized\"}".into()),
                    tool_calls: vec![],
                    tool_call_id: Some(c.id.clone()),
                    name: None,
                });
            }
        }
        assert_eq!(names, ["get_order_by_id", "void_authorization"]);
        // A hopeless agent acts wrongly: another acting tool, not a look-up.
        let r = agent_answer("hopeless", &req.clone(), &checks, 0);
        assert!(r.tool_calls.is_empty(), "past its action turn it answers");
        let opening = ChatRequest {
            messages: vec![req.messages[0].clone()],
            tools: req.tools.clone(),
        };
        let first = agent_answer("hopeless", &opening, &checks, 0);
        assert_eq!(first.tool_calls[0].function.name, "get_order_by_id");
        assert!(
            is_lookup("get_order_by_id")
                && is_lookup("searchOrders")
                && !is_lookup("refund_payment")
        );
    }

    fn check_sets() -> Vec<Vec<Check>> {
        let tm = |s: &str| TextMatch::Plain(s.into());
        vec![
            vec![
                Check::Contains(TextMatch::Options {
                    value: "delayed".into(),
                    ignore_case: true,
                }),
                Check::NotContains(TextMatch::Options {
                    value: "has shipped".into(),
                    ignore_case: true,
                }),
            ],
            vec![Check::Equals(tm("A-10442"))],
            vec![Check::OneOf(vec!["yes".into(), "y".into()])],
            vec![Check::Numeric(NumericCheck {
                value: 349.0,
                tolerance: 0.01,
            })],
            vec![
                Check::JsonField(JsonFieldCheck {
                    path: "order.status".into(),
                    equals: json!("delayed"),
                }),
                Check::Contains(tm("A-10442")),
            ],
            vec![Check::ToolCall(ToolCallCheck {
                name: "cancel_order".into(),
                arguments: [("order_id".to_string(), json!("A-10442"))]
                    .into_iter()
                    .collect(),
            })],
            vec![Check::Refusal(true), Check::Contains(tm("advisor"))],
            vec![Check::Refusal(false), Check::Regex(r"(?i)delayed".into())],
            vec![Check::Regex(r"A-\d{5}".into())],
            vec![Check::NotContains(tm("shipped"))],
        ]
    }

    #[test]
    fn the_mock_judge_fails_non_answers_and_passes_facts() {
        let ask = |text: &str| {
            let answer = ChatResponse {
                text: text.into(),
                ..Default::default()
            };
            let req =
                crate::grade::judge::judge_request(None, "rubric", &request("q?", "x"), &answer);
            crate::grade::judge::parse_verdict(&judge_answer("mock-judge", &req).text).unwrap()
        };
        assert!(ask("Order A-1 is delayed.").passed);
        let v = ask(NOT_FOUND);
        assert!(!v.passed);
        assert!(
            v.reason.starts_with("mock judge (simulated"),
            "{}",
            v.reason
        );
        assert!(!ask("").passed);
        assert!(!ask(REFUSAL).passed);
    }

    #[test]
    fn deterministic() {
        let req = request("What is the status of order A-10442?", CSV);
        for checks in check_sets() {
            for model in ["mock-steady-1", "mock-weak-flaky"] {
                for sample in 0..3 {
                    assert_eq!(
                        answer(model, &req, &checks, sample),
                        answer(model, &req, &checks, sample)
                    );
                }
            }
        }
    }

    #[test]
    fn passing_answers_pass_and_failing_answers_fail() {
        let req = request("What is the status of order A-10442?", CSV);
        for checks in check_sets() {
            let good = answer("mock-perfect", &req, &checks, 0);
            let (status, verdicts) = grade(&checks, &good);
            assert_eq!(
                status,
                CaseStatus::Pass,
                "{checks:?}\n{good:?}\n{verdicts:?}"
            );
            assert_eq!(good.model.as_deref(), Some("mock:mock-perfect"));
            // Every possible broken check, not just the one the hash picks.
            for model in [
                "mock-hopeless",
                "mock-hopeless-2",
                "mock-hopeless-3",
                "hopeless-x",
            ] {
                let bad = answer(model, &req, &checks, 0);
                let (status, verdicts) = grade(&checks, &bad);
                assert_eq!(
                    status,
                    CaseStatus::Fail,
                    "{model} {checks:?}\n{bad:?}\n{verdicts:?}"
                );
            }
        }
    }

    #[test]
    fn every_check_kind_can_be_broken() {
        let req = request("What is the status of order A-10442?", CSV);
        for checks in check_sets() {
            for c in &checks {
                if matches!(c, Check::Regex(_) | Check::Judge(_)) {
                    continue;
                }
                let one = std::slice::from_ref(c);
                let mut d = Draft::passing(one, &req, &[7; 32]);
                d.break_one(one, &req, &[7; 32]);
                let r = ChatResponse {
                    text: d.render(),
                    tool_calls: d.tool_calls.clone(),
                    ..Default::default()
                };
                assert_eq!(grade(one, &r).0, CaseStatus::Fail, "{c:?} -> {r:?}");
            }
        }
    }

    #[test]
    fn wrong_answers_are_plausible() {
        let req = request("What is the status of order A-10442?", CSV);
        let mut d = Draft::passing(&[], &req, &[0; 32]);
        let c = [Check::Contains(TextMatch::Plain("delayed".into()))];
        d.break_one(&c, &req, &[0; 32]);
        // The neighbouring row's status, not a made-up word.
        assert_eq!(d.render(), "Based on the information provided: shipped.");
        assert_eq!(wrong_number(349.0, 0.0, &req, 0), 89.0);
    }

    #[test]
    fn formats_are_detected() {
        assert_eq!(detect_format(CSV), DataFormat::Csv);
        assert_eq!(detect_format("[{\"a\": 1}]"), DataFormat::Json);
        assert_eq!(
            detect_format("<orders>\n  <order><id>1</id></order>\n</orders>"),
            DataFormat::Xml
        );
        assert_eq!(
            detect_format("<table><tr><td>1</td></tr></table>"),
            DataFormat::HtmlTable
        );
        assert_eq!(
            detect_format(
                "order_id: A-1\nstatus: shipped\ntotal: 3\n\norder_id: A-2\nstatus: delayed\ntotal: 4"
            ),
            DataFormat::KeyValue
        );
        assert_eq!(
            detect_format("- order_id: A-1\n  status: shipped\n- order_id: A-2\n  status: delayed"),
            DataFormat::Yaml
        );
        assert_eq!(
            detect_format("| id | status |\n|---|---|\n| A-1 | shipped |"),
            DataFormat::MarkdownTable
        );
        assert_eq!(
            detect_format("Hi! Can you check on my orders? Thanks."),
            DataFormat::Json
        );
    }

    #[test]
    fn penalties_order_the_profiles() {
        let plain = request("What is the status of order A-10442?", CSV);
        let xml = request(
            "What is the status of order A-10442?",
            "<orders>\n  <order><id>A-10441</id><status>shipped</status></order>\n  <order><id>A-10442</id><status>delayed</status></order>\n</orders>",
        );
        let phone = request(
            "hey quick one, on the go rn what is the status of order A-10442 thx\n\nsent from my phone",
            CSV,
        );
        let checks = [Check::Contains(TextMatch::Plain("delayed".into()))];
        let p = |m: &str, r: &ChatRequest| pass_probability(m, r, &checks);
        for r in [&plain, &xml, &phone] {
            assert!(p("mock-steady", r) > p("mock-brittle", r));
            assert!(p("mock-brittle", r) > p("mock-weak", r));
        }
        let drop = |m: &str, r: &ChatRequest| p(m, &plain) - p(m, r);
        assert!(drop("mock-brittle", &xml) > 0.08 && drop("mock-steady", &xml) < 0.03);
        assert!(
            drop("mock-brittle", &phone) > 0.1,
            "{} {:?}",
            drop("mock-brittle", &phone),
            features(&phone)
        );
        let long = request("What is the status of order A-10442?", &CSV.repeat(1000));
        assert!(
            drop("mock-brittle", &long) > 0.2,
            "{}",
            drop("mock-brittle", &long)
        );
        assert_eq!(p("mock-perfect", &xml), 1.0);
        assert_eq!(p("mock-hopeless", &plain), 0.0);
    }

    /// Over many distinct requests, pass rates land near the profile's skill and order the
    /// profiles; flaky models disagree across samples and steady ones never do.
    #[test]
    fn realistic_spread_and_flakiness() {
        let checks = [Check::Contains(TextMatch::Plain("delayed".into()))];
        let n = 2000;
        let rate = |model: &str, sample: u32| {
            (0..n)
                .filter(|i| {
                    let req = request(&format!("Status of order A-10442? (ticket {i})"), CSV);
                    grade(&checks, &answer(model, &req, &checks, sample)).0 == CaseStatus::Pass
                })
                .count() as f64
                / n as f64
        };
        let (steady, brittle, weak) = (
            rate("mock-steady-1", 0),
            rate("mock-brittle-1", 0),
            rate("mock-weak-1", 0),
        );
        assert!(
            steady > brittle && brittle > weak,
            "{steady} {brittle} {weak}"
        );
        assert!(steady > 0.8 && weak < 0.7, "{steady} {weak}");
        let flips = |model: &str| {
            (0..n)
                .filter(|i| {
                    let req = request(&format!("Status of order A-10442? (ticket {i})"), CSV);
                    answer(model, &req, &checks, 0).text != answer(model, &req, &checks, 1).text
                })
                .count()
        };
        assert_eq!(flips("mock-steady-1"), 0);
        assert!(
            flips("mock-brittle-flaky") > n / 50,
            "{}",
            flips("mock-brittle-flaky")
        );
    }

    #[test]
    fn usage_and_shape() {
        let req = request("What is the status of order A-10442?", CSV);
        let checks = [Check::ToolCall(ToolCallCheck {
            name: "cancel_order".into(),
            arguments: Default::default(),
        })];
        let r = answer("mock-perfect", &req, &checks, 0);
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.text, "");
        assert!(r.usage.input_tokens > 10);
        assert!(injected_failure("mock-unreliable", 1).is_some());
        assert!(injected_failure("mock-unreliable", 2).is_none());
        assert!(injected_failure("mock-steady", 1).is_none());
    }

    #[test]
    fn regex_literals() {
        assert_eq!(regex_literal("(?i)approved"), Some("approved".into()));
        assert_eq!(regex_literal(r"A\-1\.5"), Some("A-1.5".into()));
        assert_eq!(regex_literal(r"\d+"), None);
        assert_eq!(regex_literal("a|b"), None);
    }
}

#[cfg(test)]
mod lookalike_tests {
    use super::*;
    use crate::axes::AxisLibrary;
    use crate::expand::ProbeExpansion;
    use crate::probe::Probe;
    use crate::render::VariantAxes;

    /// The shipped overlapping-tools probe: under `tools=overlapping` the catalog offers a
    /// look-alike of `void_authorization`, the pass probability drops by 0.45 × the format
    /// factor, and a failing answer calls the look-alike; the other tools values cost nothing.
    #[test]
    fn a_lookalike_of_the_expected_tool_confuses_the_mock() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/probes/tool-selection-with-overlapping-catalogs/overlapping-tools.yaml"
        ));
        let probe = Probe::load(path).unwrap();
        let lib = AxisLibrary::embedded();
        let x = ProbeExpansion::new(&probe, &lib).unwrap();
        let at = |tools: &str| {
            let axes = VariantAxes {
                tools: tools.into(),
                ..VariantAxes::default()
            };
            x.variant(axes).unwrap()
        };
        let model = "mock-brittle-1";
        let base = pass_probability(model, &at("original").request, &probe.checks);
        for v in ["shuffled", "terse"] {
            let p = pass_probability(model, &at(v).request, &probe.checks);
            assert!((p - base).abs() < 1e-9, "{v}: {p} against {base}");
        }
        let over = at("overlapping");
        let p = pass_probability(model, &over.request, &probe.checks);
        // 0.45 for the look-alike, 0.02 for each of the two added tools beyond three.
        assert!((base - p - 0.49).abs() < 1e-9, "{p} against {base}");
        let mut wrong = 0;
        for sample in 0..200 {
            let mut req = over.request.clone();
            req.messages[1].content = Some(format!("{sample}"));
            let a = answer(model, &req, &probe.checks, 0);
            let called = &a.tool_calls[0].function.name;
            if called != "void_authorization" {
                assert_eq!(
                    over.added_tools.get(called).map(String::as_str),
                    Some("void_authorization"),
                    "{called}"
                );
                wrong += 1;
            }
        }
        assert!(wrong > 40, "{wrong} of 200 picked the look-alike");
    }
}
