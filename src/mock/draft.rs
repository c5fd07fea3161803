//! An answer under construction ([`Draft`]): one that satisfies every check, then, for a
//! failing answer, one check broken the way models get things wrong (a look-alike token, a
//! wrong number, the wrong tool, a refusal that complies).

use super::features::lookalike_of;
use super::{NOT_FOUND, REFUSAL, is_lookup};
use crate::chat::{ChatRequest, Role, ToolCall};
use crate::grade::check::{Check, TextMatch, format_number};
use regex::Regex;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;

/// An answer under construction.
#[derive(Debug, Default)]
pub(super) struct Draft {
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
    pub(super) tool_calls: Vec<ToolCall>,
}

impl Draft {
    pub(super) fn passing(checks: &[Check], req: &ChatRequest, digest: &[u8; 32]) -> Draft {
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
    pub(super) fn break_one(&mut self, checks: &[Check], req: &ChatRequest, digest: &[u8; 32]) {
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

    pub(super) fn render(&self) -> String {
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
pub(super) fn wrong_number(value: f64, tolerance: f64, req: &ChatRequest, pick: u64) -> f64 {
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
