//! Reading logged production calls, streamed: JSONL request/response logs (OpenAI or
//! Anthropic, detected per line) and OpenTelemetry traces as OTLP JSON following the GenAI
//! semantic conventions.
//!
//! Nothing here holds a whole log: JSONL is read line by line, and an OTLP file (one object,
//! however large, or one object per line as the collector's file exporter writes) is walked
//! with a streaming deserializer that hands over one span at a time. A line or span that
//! cannot be read becomes a [`LogItem::Unreadable`] naming its place (`file:line`, or the file
//! and span id) and the reading goes on.

use crate::chat::{ChatRequest, ChatResponse, FunctionCall, Message, Role, ToolCall, ToolDef};
use crate::error::{Error, Result};
use crate::incident::{CaptureFormat, parse_capture};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The format of a log file (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Detected: OTLP when the file starts with `resourceSpans`, else JSONL with the wire
    /// format detected per line.
    Auto,
    /// JSONL of OpenAI chat-completions request/response pairs.
    Openai,
    /// JSONL of Anthropic Messages request/response pairs.
    Anthropic,
    /// OTLP JSON traces (GenAI semantic conventions).
    Otlp,
}

impl LogFormat {
    /// The option's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Openai => "openai",
            LogFormat::Anthropic => "anthropic",
            LogFormat::Otlp => "otlp",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(LogFormat::Auto),
            "openai" => Ok(LogFormat::Openai),
            "anthropic" => Ok(LogFormat::Anthropic),
            "otlp" => Ok(LogFormat::Otlp),
            _ => Err(format!(
                "unknown log format `{s}`; expected auto, openai, anthropic or otlp"
            )),
        }
    }
}

/// One logged call: what was asked, what the logged model answered, and what is known of it.
#[derive(Debug, Clone)]
pub struct LoggedCall {
    /// Where it was read (`file:line`, or `file: span ID`).
    pub place: String,
    /// Its position in the stream of all records of all logs (0-based; unreadable ones count).
    pub seq: u64,
    /// The record's own id (JSONL `id`, the span id), else its place.
    pub id: String,
    /// When it happened (RFC 3339 when it could be read as a time; else as logged).
    pub timestamp: Option<String>,
    /// JSONL `metadata`, or the span's attributes (and its resource's).
    pub metadata: Map<String, Value>,
    /// The request, in the neutral shape.
    pub request: ChatRequest,
    /// The logged answer.
    pub logged: ChatResponse,
    /// The model the request named (`model`, `gen_ai.request.model`).
    pub logged_model: Option<String>,
}

/// A record that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    /// Where (`file:line`, or `file: span ID`).
    pub place: String,
    /// Its position in the stream (see [`LoggedCall::seq`]).
    pub seq: u64,
    /// What was wrong.
    pub message: String,
}

/// What the reader hands over, one at a time.
#[derive(Debug)]
pub enum LogItem {
    /// A readable call.
    Call(Box<LoggedCall>),
    /// A record that could not be read.
    Unreadable(Unreadable),
}

/// What the consumer says after each item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on reading.
    Continue,
    /// Stop reading (budget spent, interrupted).
    Stop,
}

/// Longest JSONL line read (longer lines are reported unreadable, not held).
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Reads every log in order, handing each record to `sink`. Only a file that cannot be opened
/// or read is an error; a bad record is an [`LogItem::Unreadable`].
pub fn read_logs(
    paths: &[PathBuf],
    format: LogFormat,
    sink: &mut dyn FnMut(LogItem) -> Flow,
) -> Result<()> {
    let mut seq = 0u64;
    for path in paths {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let otlp = match format {
            LogFormat::Otlp => true,
            LogFormat::Openai | LogFormat::Anthropic => false,
            LogFormat::Auto => {
                let head = reader.fill_buf().map_err(|e| Error::io(path, e))?;
                looks_otlp(head)
            }
        };
        let flow = if otlp {
            read_otlp(path, reader, &mut seq, sink)?
        } else {
            let wire = match format {
                LogFormat::Openai => Some(CaptureFormat::Openai),
                LogFormat::Anthropic => Some(CaptureFormat::Anthropic),
                _ => None,
            };
            read_jsonl(path, reader, wire, &mut seq, sink)?
        };
        if flow == Flow::Stop {
            break;
        }
    }
    Ok(())
}

/// An OTLP export starts with `resourceSpans` (or has it in its first object).
fn looks_otlp(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    let t = text.trim_start();
    t.starts_with('{') && {
        let first = t.find('\n').map_or(t, |i| &t[..i]);
        first.contains("\"resourceSpans\"")
            || first.trim() == "{" && t.contains("\"resourceSpans\"")
    }
}

fn read_jsonl(
    path: &Path,
    mut reader: impl BufRead,
    wire: Option<CaptureFormat>,
    seq: &mut u64,
    sink: &mut dyn FnMut(LogItem) -> Flow,
) -> Result<Flow> {
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(Flow::Continue);
        }
        line_no += 1;
        let place = format!("{}:{line_no}", path.display());
        if buf.len() > MAX_LINE_BYTES && !buf.ends_with(b"\n") {
            // Skip the rest of the over-long line without holding it.
            let mut sink_bytes = std::io::sink();
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let m = (&mut reader)
                    .take(1 << 20)
                    .read_until(b'\n', &mut rest)
                    .map_err(|e| Error::io(path, e))?;
                let _ = std::io::copy(&mut rest.as_slice(), &mut sink_bytes);
                if m == 0 || rest.ends_with(b"\n") {
                    break;
                }
            }
            let item = LogItem::Unreadable(Unreadable {
                place,
                seq: *seq,
                message: format!("line longer than {} MB", MAX_LINE_BYTES >> 20),
            });
            *seq += 1;
            if sink(item) == Flow::Stop {
                return Ok(Flow::Stop);
            }
            continue;
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim(),
            Err(e) => {
                let item = LogItem::Unreadable(Unreadable {
                    place,
                    seq: *seq,
                    message: format!("not UTF-8 text: {e}"),
                });
                *seq += 1;
                if sink(item) == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let item = match jsonl_record(&place, *seq, text, wire) {
            Ok(call) => LogItem::Call(Box::new(call)),
            Err(message) => LogItem::Unreadable(Unreadable {
                place,
                seq: *seq,
                message,
            }),
        };
        *seq += 1;
        if sink(item) == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
}

/// One JSONL line: `{"request": …, "response": …, "id"?, "timestamp"?, "metadata"?}`.
pub fn jsonl_record(
    place: &str,
    seq: u64,
    text: &str,
    wire: Option<CaptureFormat>,
) -> std::result::Result<LoggedCall, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err("expected a JSON object with `request` and `response`".into());
    };
    let request = obj
        .remove("request")
        .ok_or("no `request` (expected {\"request\": …, \"response\": …})")?;
    let response = obj
        .remove("response")
        .ok_or("no `response`: the logged answer is needed to know the logged decision")?;
    let capture = parse_capture(Path::new(place), &request, Some(&response), wire)
        .map_err(|e| strip_place(&e.to_string(), place))?;
    answer_is_well_formed(capture.format, &response)?;
    let logged = capture.response.ok_or_else(|| {
        match capture.format {
            CaptureFormat::Openai => "`response` holds no answer (expected choices[0].message)",
            CaptureFormat::Anthropic => "`response` holds no answer",
        }
        .to_string()
    })?;
    let id = match obj.get("id") {
        None | Some(Value::Null) => place.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err("`id` must be a string or a number".into()),
    };
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(normalise_time(s)),
        Some(Value::Number(n)) => Some(
            n.as_f64()
                .and_then(epoch_to_rfc3339)
                .ok_or("`timestamp` is a number out of range")?,
        ),
        Some(_) => return Err("`timestamp` must be a string or a number".into()),
    };
    let metadata = match obj.remove("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("`metadata` must be an object".into()),
    };
    Ok(LoggedCall {
        place: place.to_string(),
        seq,
        id,
        timestamp,
        metadata,
        request: ChatRequest {
            messages: capture.messages,
            tools: capture.tools,
        },
        logged,
        logged_model: capture.model,
    })
}

/// Refuses a logged answer the capture reader would read leniently as an empty one: a record
/// whose answer is malformed must be reported unreadable, not counted as undecided.
fn answer_is_well_formed(
    format: CaptureFormat,
    response: &Value,
) -> std::result::Result<(), String> {
    match format {
        CaptureFormat::Anthropic => {
            if !response.get("content").is_some_and(Value::is_array) {
                return Err(
                    "`response.content` must be a list of content blocks (the logged answer)"
                        .into(),
                );
            }
        }
        CaptureFormat::Openai => {
            if let Some(calls) = response
                .pointer("/choices/0/message/tool_calls")
                .filter(|c| !c.is_null())
                && let Err(e) = serde_json::from_value::<Vec<ToolCall>>(calls.clone())
            {
                return Err(format!(
                    "field `response.choices[0].message.tool_calls`: {e}"
                ));
            }
        }
    }
    Ok(())
}

/// Error messages from the capture reader start with the place already.
fn strip_place(msg: &str, place: &str) -> String {
    msg.strip_prefix(place)
        .map(|m| m.trim_start_matches(':').trim_start().to_string())
        .unwrap_or_else(|| msg.to_string())
}

/// An RFC 3339 time as UTC with milliseconds (so times sort as text); other text as logged.
pub fn normalise_time(s: &str) -> String {
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => format_time(t),
        Err(_) => s.to_string(),
    }
}

fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A Unix time in seconds, milliseconds, microseconds or nanoseconds (told apart by size).
fn epoch_to_rfc3339(x: f64) -> Option<String> {
    let secs = if x.abs() < 1e11 {
        x
    } else if x.abs() < 1e14 {
        x / 1e3
    } else if x.abs() < 1e17 {
        x / 1e6
    } else {
        x / 1e9
    };
    let nanos = (secs * 1e9) as i128;
    jiff::Timestamp::from_nanosecond(nanos)
        .ok()
        .map(format_time)
}

// ---- OTLP ----

fn read_otlp(
    path: &Path,
    mut reader: impl BufRead,
    seq: &mut u64,
    sink: &mut dyn FnMut(LogItem) -> Flow,
) -> Result<Flow> {
    let mut object = 0u64;
    loop {
        // Skip the whitespace between objects; stop at the end of the file.
        loop {
            let buf = reader.fill_buf().map_err(|e| Error::io(path, e))?;
            if buf.is_empty() {
                return Ok(Flow::Continue);
            }
            let ws = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            let all = ws == buf.len();
            reader.consume(ws);
            if !all {
                break;
            }
        }
        object += 1;
        let mut state = OtlpState {
            path,
            seq,
            sink,
            stopped: false,
            spans: 0,
        };
        // An object on one line of at most OTLP_LINE_BYTES (the collector's file exporter
        // writes one per line) is parsed from memory, several times faster than the streaming
        // parser; a longer line, or an object spread over lines, is streamed from the bytes
        // already read onwards. A line is checked whole before any span of it is handed over,
        // so an object that turns out to continue on the next line is never read twice.
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(OTLP_LINE_BYTES)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(path, e))?;
        let whole_line = line.ends_with(b"\n") || (n as u64) < OTLP_LINE_BYTES;
        let checked = if whole_line {
            Some(serde_json::from_slice::<IgnoredAny>(&line))
        } else {
            None
        };
        let (result, at_next_line) = match checked {
            Some(Ok(_)) => {
                let mut de = serde_json::Deserializer::from_slice(&line);
                (TopSeed(&mut state).deserialize(&mut de), true)
            }
            Some(Err(e)) if !e.is_eof() => (Err(e), true),
            _ => {
                let mut src = std::io::Read::chain(line.as_slice(), &mut reader);
                let mut de = serde_json::Deserializer::from_reader(&mut src);
                (TopSeed(&mut state).deserialize(&mut de), false)
            }
        };
        if state.stopped {
            return Ok(Flow::Stop);
        }
        if let Err(e) = result {
            let place = format!("{}: object {object}", path.display());
            let item = LogItem::Unreadable(Unreadable {
                place,
                seq: *state.seq,
                message: format!(
                    "not OTLP JSON ({e}; line and column counted from the object's start); the rest of this object is skipped"
                ),
            });
            *state.seq += 1;
            if (state.sink)(item) == Flow::Stop {
                return Ok(Flow::Stop);
            }
            // One object per line (the collector's file exporter): go on at the next line.
            if !at_next_line {
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    let m = (&mut reader)
                        .take(1 << 20)
                        .read_until(b'\n', &mut rest)
                        .map_err(|e| Error::io(path, e))?;
                    if m == 0 || rest.ends_with(b"\n") {
                        break;
                    }
                }
            }
        }
    }
}

/// The longest OTLP line parsed from memory; longer ones are streamed.
const OTLP_LINE_BYTES: u64 = 8 << 20;

struct OtlpState<'a, 'b> {
    path: &'a Path,
    seq: &'a mut u64,
    sink: &'b mut dyn FnMut(LogItem) -> Flow,
    stopped: bool,
    spans: u64,
}

impl OtlpState<'_, '_> {
    /// Returns false when the consumer asked to stop.
    fn span(&mut self, span: Value, resource: &Map<String, Value>) -> bool {
        self.spans += 1;
        let Some(item) = span_item(self.path, *self.seq, self.spans, span, resource) else {
            return true;
        };
        *self.seq += 1;
        if (self.sink)(item) == Flow::Stop {
            self.stopped = true;
            return false;
        }
        true
    }
}

const STOPPED: &str = "cliffprobe: reading stopped";

struct TopSeed<'s, 'a, 'b>(&'s mut OtlpState<'a, 'b>);

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OTLP traces object with `resourceSpans`")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "resourceSpans" {
                map.next_value_seed(ListSeed(self.0, Level::Resource, &Map::new()))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Level {
    Resource,
    Scope,
    Span,
}

/// A list of resource spans, scope spans or spans.
struct ListSeed<'s, 'a, 'b, 'r>(&'s mut OtlpState<'a, 'b>, Level, &'r Map<String, Value>);

impl<'de> DeserializeSeed<'de> for ListSeed<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let ListSeed(state, level, resource) = self;
        match level {
            Level::Span => {
                while let Some(span) = seq.next_element::<Value>()? {
                    if !state.span(span, resource) {
                        return Err(serde::de::Error::custom(STOPPED));
                    }
                }
            }
            Level::Resource | Level::Scope => {
                while seq
                    .next_element_seed(GroupSeed(&mut *state, level, resource))?
                    .is_some()
                {}
            }
        }
        Ok(())
    }
}

/// One `resourceSpans[]` or `scopeSpans[]` entry.
struct GroupSeed<'s, 'a, 'b, 'r>(&'s mut OtlpState<'a, 'b>, Level, &'r Map<String, Value>);

impl<'de> DeserializeSeed<'de> for GroupSeed<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for GroupSeed<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OTLP resourceSpans or scopeSpans entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let GroupSeed(state, level, parent) = self;
        let mut resource = parent.clone();
        while let Some(key) = map.next_key::<String>()? {
            match (level, key.as_str()) {
                (Level::Resource, "resource") => {
                    let v: Value = map.next_value()?;
                    if let Some(attrs) = v.get("attributes") {
                        resource = attributes(attrs);
                    }
                }
                (Level::Resource, "scopeSpans" | "instrumentationLibrarySpans") => {
                    map.next_value_seed(ListSeed(&mut *state, Level::Scope, &resource))?;
                }
                (Level::Scope, "spans") => {
                    map.next_value_seed(ListSeed(&mut *state, Level::Span, &resource))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// OTLP `attributes` (a list of `{key, value: AnyValue}`) as a JSON object.
pub fn attributes(list: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(items) = list.as_array() {
        for kv in items {
            if let Some(k) = kv.get("key").and_then(Value::as_str) {
                out.insert(
                    k.to_string(),
                    kv.get("value").map(any_value).unwrap_or(Value::Null),
                );
            }
        }
    }
    out
}

/// An OTLP `AnyValue` as plain JSON.
pub fn any_value(v: &Value) -> Value {
    let Some(obj) = v.as_object() else {
        return v.clone();
    };
    if let Some(s) = obj.get("stringValue") {
        return s.clone();
    }
    if let Some(b) = obj.get("boolValue") {
        return b.clone();
    }
    if let Some(i) = obj.get("intValue") {
        return match i {
            Value::String(s) => s
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| i.clone()),
            other => other.clone(),
        };
    }
    if let Some(d) = obj.get("doubleValue") {
        return d.clone();
    }
    if let Some(b) = obj.get("bytesValue") {
        return b.clone();
    }
    if let Some(a) = obj.get("arrayValue") {
        return Value::Array(
            a.get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().map(any_value).collect())
                .unwrap_or_default(),
        );
    }
    if let Some(kv) = obj.get("kvlistValue") {
        return Value::Object(attributes(kv.get("values").unwrap_or(&Value::Null)));
    }
    if obj.is_empty() {
        return Value::Null;
    }
    v.clone()
}

/// A span as a logged call: `None` for spans that are not GenAI model calls (HTTP, tool or
/// agent spans), which are not records. `generate_content` is the operation name the Gemini
/// instrumentations give the same multimodal chat call, so it counts as `chat` does.
fn span_item(
    path: &Path,
    seq: u64,
    index: u64,
    span: Value,
    resource: &Map<String, Value>,
) -> Option<LogItem> {
    let mut attrs = span.get("attributes").map(attributes).unwrap_or_default();
    let op = attrs.get("gen_ai.operation.name").and_then(Value::as_str);
    if !matches!(op, Some("chat" | "generate_content")) {
        return None;
    }
    // Content may be recorded on an event instead of the span (the conventions allow both).
    if let Some(events) = span.get("events").and_then(Value::as_array) {
        for ev in events {
            if let Some(ea) = ev.get("attributes") {
                for (k, v) in attributes(ea) {
                    if k.starts_with("gen_ai.") && !attrs.contains_key(&k) {
                        attrs.insert(k, v);
                    }
                }
            }
        }
    }
    let span_id = span
        .get("spanId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let place = match &span_id {
        Some(id) => format!("{}: span {id}", path.display()),
        None => format!("{}: span #{index} (no spanId)", path.display()),
    };
    let timestamp = span
        .get("startTimeUnixNano")
        .and_then(|t| match t {
            Value::String(s) => s.parse::<i128>().ok(),
            Value::Number(n) => n.as_u64().map(i128::from),
            _ => None,
        })
        .and_then(|n| jiff::Timestamp::from_nanosecond(n).ok())
        .map(format_time);
    for (k, v) in resource {
        if !attrs.contains_key(k) {
            attrs.insert(k.clone(), v.clone());
        }
    }
    let item = match span_call(&attrs) {
        Ok((request, logged, model)) => LogItem::Call(Box::new(LoggedCall {
            id: span_id.unwrap_or_else(|| place.clone()),
            place,
            seq,
            timestamp,
            metadata: attrs,
            request,
            logged,
            logged_model: model,
        })),
        Err(message) => LogItem::Unreadable(Unreadable {
            place,
            seq,
            message,
        }),
    };
    Some(item)
}

/// A message attribute: a JSON string or the structured form.
fn structured(attrs: &Map<String, Value>, key: &str) -> std::result::Result<Option<Value>, String> {
    match attrs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v) => Ok(Some(v)),
            Err(_) if key == "gen_ai.system_instructions" => Ok(Some(Value::String(s.clone()))),
            Err(e) => Err(format!("`{key}` is a string but not JSON: {e}")),
        },
        Some(v) => Ok(Some(v.clone())),
    }
}

fn span_call(
    attrs: &Map<String, Value>,
) -> std::result::Result<(ChatRequest, ChatResponse, Option<String>), String> {
    let input = structured(attrs, "gen_ai.input.messages")?.ok_or(
        "chat span without `gen_ai.input.messages` (is content capture turned on in the instrumentation?)",
    )?;
    let output = structured(attrs, "gen_ai.output.messages")?
        .ok_or("chat span without `gen_ai.output.messages`: the logged answer is needed")?;
    let mut messages = Vec::new();
    if let Some(sys) = structured(attrs, "gen_ai.system_instructions")? {
        let text = match &sys {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts_text(parts),
            other => {
                return Err(format!(
                    "`gen_ai.system_instructions`: expected a list of parts, found {}",
                    kind(other)
                ));
            }
        };
        if !text.is_empty() {
            messages.push(Message::text(Role::System, text));
        }
    }
    let Value::Array(input) = input else {
        return Err(format!(
            "`gen_ai.input.messages`: expected a list of messages, found {}",
            kind(&input)
        ));
    };
    for (i, m) in input.iter().enumerate() {
        messages.extend(otel_message(m).map_err(|e| format!("`gen_ai.input.messages[{i}]`: {e}"))?);
    }
    let first = match &output {
        Value::Array(list) => list.first().ok_or("`gen_ai.output.messages` is empty")?,
        Value::Object(_) => &output,
        other => {
            return Err(format!(
                "`gen_ai.output.messages`: expected a list of messages, found {}",
                kind(other)
            ));
        }
    };
    let mut logged = ChatResponse::default();
    for msg in otel_message(first).map_err(|e| format!("`gen_ai.output.messages[0]`: {e}"))? {
        if msg.role == Role::Assistant {
            if let Some(t) = msg.content {
                if !logged.text.is_empty() {
                    logged.text.push('\n');
                }
                logged.text.push_str(&t);
            }
            logged.tool_calls.extend(msg.tool_calls);
        }
    }
    logged.finish_reason = first
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    logged.usage.input_tokens = attrs
        .get("gen_ai.usage.input_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    logged.usage.output_tokens = attrs
        .get("gen_ai.usage.output_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let model = attrs
        .get("gen_ai.request.model")
        .or_else(|| attrs.get("gen_ai.response.model"))
        .and_then(Value::as_str)
        .map(str::to_string);
    logged.model = attrs
        .get("gen_ai.response.model")
        .and_then(Value::as_str)
        .map(str::to_string);
    let tools = match structured(attrs, "gen_ai.tool.definitions")? {
        Some(Value::Array(defs)) => defs.iter().filter_map(tool_def).collect(),
        _ => Vec::new(),
    };
    Ok((ChatRequest { messages, tools }, logged, model))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn parts_text(parts: &[Value]) -> String {
    let texts: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            Value::String(s) => Some(s.as_str()),
            _ if p.get("type").and_then(Value::as_str) == Some("text") => {
                p.get("content").and_then(Value::as_str)
            }
            _ => None,
        })
        .collect();
    texts.join("\n")
}

/// One role/parts message as neutral messages (tool results become tool messages).
fn otel_message(m: &Value) -> std::result::Result<Vec<Message>, String> {
    let role = match m.get("role").and_then(Value::as_str) {
        Some("system") | Some("developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") | Some("model") => Role::Assistant,
        Some("tool") => Role::Tool,
        Some(other) => return Err(format!("unknown role `{other}`")),
        None => return Err("no `role`".into()),
    };
    let parts = match m.get("parts") {
        Some(Value::Array(p)) => p.as_slice(),
        Some(other) => return Err(format!("`parts`: expected a list, found {}", kind(other))),
        None => return Err("no `parts`".into()),
    };
    let mut out = Vec::new();
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for p in parts {
        match p.get("type").and_then(Value::as_str) {
            Some("text") => texts.push(
                p.get("content")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            Some("tool_call") => {
                let name = p
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("a tool_call part without `name`")?;
                let arguments = match p.get("arguments") {
                    None | Some(Value::Null) => "{}".to_string(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                };
                calls.push(ToolCall {
                    id: p
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: name.to_string(),
                        arguments,
                    },
                });
            }
            Some("tool_call_response") => {
                // `response` in the conventions; `result` in some earlier instrumentations.
                let content = match p.get("response").or_else(|| p.get("result")) {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                };
                let mut tm = Message::text(Role::Tool, content);
                tm.tool_call_id = p.get("id").and_then(Value::as_str).map(str::to_string);
                out.push(tm);
            }
            // Reasoning, blobs, files and URIs carry nothing a replayed text request can send.
            _ => {}
        }
    }
    if !texts.is_empty() || !calls.is_empty() {
        let role = if role == Role::Tool { Role::User } else { role };
        out.insert(
            0,
            Message {
                role,
                content: (!texts.is_empty()).then(|| texts.join("\n")),
                tool_calls: calls,
                tool_call_id: None,
                name: m.get("name").and_then(Value::as_str).map(str::to_string),
            },
        );
    }
    Ok(out)
}

/// A `gen_ai.tool.definitions` entry: `{type, name, description, parameters}`, or the OpenAI
/// form with a `function` object.
fn tool_def(v: &Value) -> Option<ToolDef> {
    let f = v.get("function").unwrap_or(v);
    let name = f.get("name").and_then(Value::as_str)?;
    Some(ToolDef {
        kind: "function".into(),
        function: crate::chat::FunctionDef {
            name: name.to_string(),
            description: f
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            parameters: f
                .get("parameters")
                .or_else(|| f.get("input_schema"))
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(path: &Path, format: LogFormat) -> Vec<LogItem> {
        let mut out = Vec::new();
        read_logs(&[path.to_path_buf()], format, &mut |i| {
            out.push(i);
            Flow::Continue
        })
        .unwrap();
        out
    }

    #[test]
    fn jsonl_openai_and_anthropic_lines_with_a_bad_line_between() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.jsonl");
        let lines = [
            r#"{"id":"a","timestamp":"2026-01-02T03:04:05+01:00","metadata":{"team":{"name":"refunds"}},"request":{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]},"response":{"choices":[{"message":{"role":"assistant","content":"APPROVE"}}]}}"#,
            "{not json",
            "",
            r#"{"timestamp":1767225600,"request":{"model":"claude","system":"be brief","messages":[{"role":"user","content":"refund?"}]},"response":{"type":"message","content":[{"type":"tool_use","id":"t1","name":"deny","input":{"reason":"late"}}]}}"#,
        ];
        std::fs::write(&p, lines.join("\n")).unwrap();
        let items = collect(&p, LogFormat::Auto);
        assert_eq!(items.len(), 3);
        let LogItem::Call(a) = &items[0] else {
            panic!()
        };
        assert_eq!(a.id, "a");
        assert_eq!(a.timestamp.as_deref(), Some("2026-01-02T02:04:05.000Z"));
        assert_eq!(a.logged.text, "APPROVE");
        assert_eq!(a.logged_model.as_deref(), Some("gpt-x"));
        let LogItem::Unreadable(u) = &items[1] else {
            panic!()
        };
        assert!(u.place.ends_with("log.jsonl:2"), "{}", u.place);
        let LogItem::Call(c) = &items[2] else {
            panic!()
        };
        assert!(c.place.ends_with(":4"));
        assert_eq!(c.seq, 2);
        assert_eq!(c.timestamp.as_deref(), Some("2026-01-01T00:00:00.000Z"));
        assert_eq!(c.request.messages[0].role, Role::System);
        assert_eq!(c.logged.tool_calls[0].function.name, "deny");
    }

    #[test]
    fn a_malformed_logged_answer_is_unreadable_not_undecided() {
        let req = r#""request":{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        for (response, said) in [
            (r#"{"type":"message","content":"oops"}"#, "response.content"),
            (r#"{"type":"message"}"#, "response.content"),
            (
                r#"{"choices":[{"message":{"role":"assistant","tool_calls":[{"id":"x"}]}}]}"#,
                "tool_calls",
            ),
        ] {
            let line = format!(r#"{{{req},"response":{response}}}"#);
            let e = jsonl_record("log.jsonl:1", 0, &line, None).unwrap_err();
            assert!(e.contains(said), "{response}: {e}");
        }
        let ok = format!(
            r#"{{{req},"response":{{"choices":[{{"message":{{"role":"assistant","content":null,"tool_calls":null}}}}]}}}}"#
        );
        assert!(jsonl_record("log.jsonl:1", 0, &ok, None).is_ok());
    }

    fn otlp_span(id: &str, structured_form: bool) -> Value {
        let input = serde_json::json!([
            {"role": "user", "parts": [{"type": "text", "content": "Refund order 7?"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "lookup", "arguments": {"order": 7}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"status": "late"}}]}
        ]);
        let output = serde_json::json!([
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c2", "name": "deny", "arguments": {"reason": "late"}}], "finish_reason": "tool_call"}
        ]);
        let sys = serde_json::json!([{"type": "text", "content": "You triage refunds."}]);
        let attr = |k: &str, v: &Value| {
            if structured_form {
                serde_json::json!({"key": k, "value": {"arrayValue": {"values": v.as_array().unwrap().iter().map(to_any).collect::<Vec<_>>()}}})
            } else {
                serde_json::json!({"key": k, "value": {"stringValue": v.to_string()}})
            }
        };
        serde_json::json!({
            "traceId": "t", "spanId": id, "name": "chat gpt-x", "startTimeUnixNano": "1767225600000000000",
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-x"}},
                {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                {"key": "app.class", "value": {"stringValue": "refunds"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                attr("gen_ai.input.messages", &input),
                attr("gen_ai.output.messages", &output),
                attr("gen_ai.system_instructions", &sys),
            ]
        })
    }

    fn to_any(v: &Value) -> Value {
        match v {
            Value::String(s) => serde_json::json!({"stringValue": s}),
            Value::Number(n) => serde_json::json!({"intValue": n.to_string()}),
            Value::Bool(b) => serde_json::json!({"boolValue": b}),
            Value::Array(a) => {
                serde_json::json!({"arrayValue": {"values": a.iter().map(to_any).collect::<Vec<_>>()}})
            }
            Value::Object(o) => {
                serde_json::json!({"kvlistValue": {"values": o.iter().map(|(k, v)| serde_json::json!({"key": k, "value": to_any(v)})).collect::<Vec<_>>()}})
            }
            Value::Null => serde_json::json!({}),
        }
    }

    #[test]
    fn otlp_one_object_and_json_lines_both_read() {
        let dir = tempfile::tempdir().unwrap();
        let other = serde_json::json!({"spanId": "h", "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}}]});
        let doc = |spans: Vec<Value>| serde_json::json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "triage"}}]}, "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}]}]});
        let pretty = dir.path().join("t.json");
        std::fs::write(
            &pretty,
            serde_json::to_string_pretty(&doc(vec![
                otlp_span("s1", false),
                other.clone(),
                otlp_span("s2", true),
            ]))
            .unwrap(),
        )
        .unwrap();
        let items = collect(&pretty, LogFormat::Auto);
        assert_eq!(items.len(), 2);
        for (item, id) in items.iter().zip(["s1", "s2"]) {
            let LogItem::Call(c) = item else {
                panic!("{item:?}")
            };
            assert_eq!(c.id, id);
            assert_eq!(c.request.messages.len(), 4, "{:?}", c.request.messages);
            assert_eq!(c.request.messages[0].content_str(), "You triage refunds.");
            assert_eq!(c.request.messages[3].role, Role::Tool);
            assert_eq!(c.logged.tool_calls[0].function.name, "deny");
            assert_eq!(c.metadata["app.class"], "refunds");
            assert_eq!(c.metadata["service.name"], "triage");
            assert_eq!(c.logged.usage.input_tokens, 12);
            assert_eq!(c.timestamp.as_deref(), Some("2026-01-01T00:00:00.000Z"));
        }
        let lines = dir.path().join("t.jsonl");
        let text = format!(
            "{}\n{{\"resourceSpans\": [oops\n{}\n",
            serde_json::to_string(&doc(vec![otlp_span("a", false)])).unwrap(),
            serde_json::to_string(&doc(vec![otlp_span("b", true)])).unwrap()
        );
        std::fs::write(&lines, text).unwrap();
        let items = collect(&lines, LogFormat::Auto);
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(matches!(&items[0], LogItem::Call(c) if c.id == "a"));
        assert!(matches!(&items[1], LogItem::Unreadable(u) if u.place.contains("object 2")));
        assert!(matches!(&items[2], LogItem::Call(c) if c.id == "b"));
    }

    #[test]
    fn an_object_with_a_span_per_line_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        let spans: Vec<String> = (0..3)
            .map(|i| otlp_span(&format!("x{i}"), i == 1).to_string())
            .collect();
        let text = format!(
            "{{\"resourceSpans\": [{{\"scopeSpans\": [{{\"spans\": [\n{}\n]}}]}}]}}\n",
            spans.join(",\n")
        );
        std::fs::write(&p, text).unwrap();
        let ids: Vec<String> = collect(&p, LogFormat::Auto)
            .into_iter()
            .map(|i| match i {
                LogItem::Call(c) => c.id,
                LogItem::Unreadable(u) => panic!("{u:?}"),
            })
            .collect();
        assert_eq!(ids, ["x0", "x1", "x2"]);
    }

    #[test]
    fn a_chat_span_without_output_is_unreadable_with_its_span_id() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        let span = serde_json::json!({"spanId": "bad1", "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.input.messages", "value": {"stringValue": "[]"}}]});
        std::fs::write(
            &p,
            serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).to_string(),
        )
        .unwrap();
        let items = collect(&p, LogFormat::Otlp);
        let [LogItem::Unreadable(u)] = items.as_slice() else {
            panic!("{items:?}")
        };
        assert!(u.place.ends_with("span bad1"));
        assert!(u.message.contains("gen_ai.output.messages"));
    }

    #[test]
    fn generate_content_spans_are_calls_and_other_operations_are_not_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        let span = |id: &str, op: &str| {
            serde_json::json!({"spanId": id, "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": op}},
                {"key": "gen_ai.input.messages", "value": {"stringValue":
                    r#"[{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#}},
                {"key": "gen_ai.output.messages", "value": {"stringValue":
                    r#"[{"role":"assistant","parts":[{"type":"text","content":"approve"}],"finish_reason":"stop"}]"#}}]})
        };
        let spans = [
            span("a1", "generate_content"),
            span("b2", "execute_tool"),
            span("c3", "chat"),
        ];
        std::fs::write(
            &p,
            serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string(),
        )
        .unwrap();
        let ids: Vec<String> = collect(&p, LogFormat::Otlp)
            .iter()
            .map(|i| match i {
                LogItem::Call(c) => c.id.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["a1", "c3"]);
    }
}
