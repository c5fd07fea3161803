//! Incidents: one observed failure, read from a native record or a captured API request.
//!
//! Three inputs are detected automatically: the native incident record (YAML or JSON, with a
//! `conversation` in the OpenAI chat shape), a captured OpenAI chat-completions request body,
//! and a captured Anthropic Messages request body; a capture may be alone or wrapped as
//! `{"request": …, "response": …}` (what proxy logs write). All become one [`Incident`] in the
//! neutral chat shape.

use crate::chat::{ChatResponse, FunctionCall, FunctionDef, Message, Role, ToolCall, ToolDef};
use crate::domain::Tier;
use crate::error::{Error, Result};
use crate::grade::check::Check;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// What kind of file an incident came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentKind {
    /// The native record.
    Native,
    /// A captured OpenAI chat-completions request.
    OpenaiCapture,
    /// A captured Anthropic Messages request.
    AnthropicCapture,
}

impl IncidentKind {
    /// Name written into probe files.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Native => "incident",
            IncidentKind::OpenaiCapture => "openai-capture",
            IncidentKind::AnthropicCapture => "anthropic-capture",
        }
    }
}

/// A document the model was given.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Name (slot key).
    pub name: String,
    /// Text; appears verbatim in one of the messages.
    pub text: String,
}

/// One observed failure, normalised.
#[derive(Debug, Clone)]
pub struct Incident {
    /// The incident's own id, when it has one.
    pub id: Option<String>,
    /// Input kind.
    pub kind: IncidentKind,
    /// Short title.
    pub title: Option<String>,
    /// Capability class.
    pub capability: Option<String>,
    /// Severity.
    pub severity: Option<String>,
    /// The model that failed.
    pub model: Option<String>,
    /// When.
    pub date: Option<String>,
    /// Declared tier.
    pub tier: Option<Tier>,
    /// The conversation up to the failing turn.
    pub conversation: Vec<Message>,
    /// Tools offered.
    pub tools: Vec<ToolDef>,
    /// Documents given.
    pub documents: Vec<Document>,
    /// The output that failed.
    pub bad_output: Option<ChatResponse>,
    /// Checks a correct answer passes.
    pub expected: Vec<Check>,
    /// The probe is invariant: every variant's answer must agree with the canonical's (it may
    /// then have no `expected` checks). Native records only.
    pub invariant: bool,
    /// For an invariant probe with free-text answers: the regex whose first capture group is
    /// the answer compared (see [`crate::grade::invariant::answer_key`]).
    pub answer_pattern: Option<String>,
    /// Free text.
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeIncident {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    capability: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    tier: Option<Tier>,
    conversation: Vec<Message>,
    #[serde(default)]
    tools: Vec<ToolDef>,
    #[serde(default)]
    documents: Vec<Document>,
    #[serde(default)]
    bad_output: Option<BadOutput>,
    #[serde(default)]
    expected: Vec<Check>,
    #[serde(default)]
    invariant: bool,
    #[serde(default)]
    answer_pattern: Option<String>,
    #[serde(default)]
    notes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum BadOutput {
    Text(String),
    Message {
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        tool_calls: Vec<ToolCall>,
    },
}

impl Incident {
    /// Reads an incident file of any supported kind.
    pub fn load(path: &Path) -> Result<Incident> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.len() as usize > crate::limits::MAX_INPUT_BYTES {
            return Err(Error::input(
                path,
                format!(
                    "file is {} MB; incidents are limited to {} MB",
                    meta.len() >> 20,
                    crate::limits::MAX_INPUT_BYTES >> 20
                ),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Incident::parse(path, &text)
    }

    /// Parses incident text; `path` names the file in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Incident> {
        let is_json = text.trim_start().starts_with('{');
        crate::limits::check_nesting(path, text)?;
        let value: Value = if is_json {
            serde_json::from_str(text).map_err(|e| Error::from_json(path, &e))?
        } else {
            serde_saphyr::from_str(text).map_err(|e| Error::from_yaml(path, &e))?
        };
        let Value::Object(obj) = &value else {
            return Err(Error::input(
                path,
                "expected a mapping: a native incident (with `conversation`) or a captured request (with `messages`)",
            ));
        };
        if obj.contains_key("conversation") {
            let native: NativeIncident = if is_json {
                serde_json::from_str(text).map_err(|e| Error::from_json(path, &e))?
            } else {
                serde_saphyr::from_str(text).map_err(|e| Error::from_yaml(path, &e))?
            };
            return Ok(Incident {
                id: native.id,
                kind: IncidentKind::Native,
                title: native.title,
                capability: native.capability,
                severity: native.severity,
                model: native.model,
                date: native.date,
                tier: native.tier,
                conversation: native.conversation,
                tools: native.tools,
                documents: native.documents,
                bad_output: native.bad_output.map(|b| match b {
                    BadOutput::Text(t) => ChatResponse {
                        text: t,
                        ..Default::default()
                    },
                    BadOutput::Message {
                        content,
                        tool_calls,
                    } => ChatResponse {
                        text: content.unwrap_or_default(),
                        tool_calls,
                        ..Default::default()
                    },
                }),
                expected: native.expected,
                invariant: native.invariant,
                answer_pattern: native.answer_pattern,
                notes: native.notes,
            });
        }
        let (request, response) = match (obj.get("request"), obj.get("messages")) {
            (Some(req), _) => (req.clone(), obj.get("response").cloned()),
            (None, Some(_)) => (value.clone(), None),
            (None, None) => {
                return Err(Error::input(
                    path,
                    "not an incident: expected `conversation` (native record), `messages` (captured request) or `request` (captured request + response)",
                ));
            }
        };
        let anthropic = looks_anthropic(&request, response.as_ref());
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string);
        let (conversation, tools) = if anthropic {
            anthropic_request(path, &request)?
        } else {
            openai_request(path, &request)?
        };
        let bad_output = match &response {
            Some(r) if anthropic => Some(anthropic_response(r)),
            Some(r) => openai_response(r),
            None => None,
        };
        Ok(Incident {
            id: None,
            kind: if anthropic {
                IncidentKind::AnthropicCapture
            } else {
                IncidentKind::OpenaiCapture
            },
            title: None,
            capability: None,
            severity: None,
            model,
            date: None,
            tier: None,
            conversation,
            tools,
            documents: Vec::new(),
            bad_output,
            expected: Vec::new(),
            invariant: false,
            answer_pattern: None,
            notes: None,
        })
    }
}

/// The wire format of a captured call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// OpenAI chat completions.
    Openai,
    /// Anthropic Messages.
    Anthropic,
}

/// A captured call (request and, when logged, its response) in the neutral chat shape.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The format it was read as.
    pub format: CaptureFormat,
    /// The request's `model`, when it names one.
    pub model: Option<String>,
    /// The conversation sent.
    pub messages: Vec<Message>,
    /// The tools offered.
    pub tools: Vec<ToolDef>,
    /// The answer, when the response was logged and holds one.
    pub response: Option<ChatResponse>,
}

/// Reads one captured request/response pair (a proxy log line, a replay log record) in the
/// given format, or the detected one when `format` is `None` (the same detection as
/// [`Incident::parse`]). `place` names the record in error messages (`log.jsonl:17`).
pub fn parse_capture(
    place: &Path,
    request: &Value,
    response: Option<&Value>,
    format: Option<CaptureFormat>,
) -> Result<Capture> {
    let format = format.unwrap_or(if looks_anthropic(request, response) {
        CaptureFormat::Anthropic
    } else {
        CaptureFormat::Openai
    });
    let (messages, tools) = match format {
        CaptureFormat::Anthropic => anthropic_request(place, request)?,
        CaptureFormat::Openai => openai_request(place, request)?,
    };
    let response = match response {
        Some(r) if format == CaptureFormat::Anthropic => Some(anthropic_response(r)),
        Some(r) => openai_response(r),
        None => None,
    };
    Ok(Capture {
        format,
        model: request
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string),
        messages,
        tools,
        response,
    })
}

fn looks_anthropic(req: &Value, resp: Option<&Value>) -> bool {
    if req.get("system").is_some() || req.get("anthropic_version").is_some() {
        return true;
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array)
        && tools.iter().any(|t| t.get("input_schema").is_some())
    {
        return true;
    }
    if let Some(msgs) = req.get("messages").and_then(Value::as_array) {
        for m in msgs {
            if let Some(blocks) = m.get("content").and_then(Value::as_array)
                && blocks.iter().any(|b| {
                    matches!(
                        b.get("type").and_then(Value::as_str),
                        Some("tool_use" | "tool_result" | "image" | "document")
                    )
                })
            {
                return true;
            }
        }
    }
    resp.is_some_and(|r| {
        r.get("type").and_then(Value::as_str) == Some("message") || r.get("stop_reason").is_some()
    })
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.clone()),
                _ => p.get("text").and_then(Value::as_str).map(str::to_string),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn openai_request(path: &Path, req: &Value) -> Result<(Vec<Message>, Vec<ToolDef>)> {
    let msgs = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::field(path, "messages", "expected a list of chat messages"))?;
    let mut out = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = match m.get("role").and_then(Value::as_str) {
            Some("system") | Some("developer") => Role::System,
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("tool") | Some("function") => Role::Tool,
            other => {
                return Err(Error::field(
                    path,
                    format!("messages[{i}].role"),
                    format!(
                        "expected system, user, assistant or tool, found {}",
                        other.map_or("no role".to_string(), |r| format!("`{r}`"))
                    ),
                ));
            }
        };
        let tool_calls: Vec<ToolCall> = match m.get("tool_calls") {
            Some(tc) => serde_json::from_value(tc.clone()).map_err(|e| {
                Error::field(path, format!("messages[{i}].tool_calls"), e.to_string())
            })?,
            None => Vec::new(),
        };
        let content = m
            .get("content")
            .map(text_of)
            .filter(|s| !s.is_empty() || tool_calls.is_empty());
        out.push(Message {
            role,
            content,
            tool_calls,
            tool_call_id: m
                .get("tool_call_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            name: m.get("name").and_then(Value::as_str).map(str::to_string),
        });
    }
    let tools = match req.get("tools") {
        Some(t) => serde_json::from_value(t.clone()).map_err(|e| {
            Error::field(
                path,
                "tools",
                format!("expected OpenAI tool definitions: {e}"),
            )
        })?,
        None => Vec::new(),
    };
    Ok((out, tools))
}

fn openai_response(resp: &Value) -> Option<ChatResponse> {
    let msg = resp.get("choices")?.get(0)?.get("message")?;
    Some(ChatResponse {
        text: msg.get("content").map(text_of).unwrap_or_default(),
        tool_calls: msg
            .get("tool_calls")
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default(),
        ..Default::default()
    })
}

fn anthropic_request(path: &Path, req: &Value) -> Result<(Vec<Message>, Vec<ToolDef>)> {
    let mut out = Vec::new();
    if let Some(sys) = req.get("system") {
        let s = text_of(sys);
        if !s.is_empty() {
            out.push(Message::text(Role::System, s));
        }
    }
    let msgs = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::field(path, "messages", "expected a list of messages"))?;
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        let content = m.get("content").cloned().unwrap_or(Value::Null);
        match (role, content) {
            (Some("user"), Value::String(s)) => out.push(Message::text(Role::User, s)),
            (Some("assistant"), Value::String(s)) => out.push(Message::text(Role::Assistant, s)),
            (Some(r @ ("user" | "assistant")), Value::Array(blocks)) => {
                let mut texts = Vec::new();
                let mut calls = Vec::new();
                for b in &blocks {
                    match b.get("type").and_then(Value::as_str) {
                        Some("text") => texts.push(
                            b.get("text")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                        ),
                        Some("tool_use") => calls.push(ToolCall {
                            id: b
                                .get("id")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            kind: "function".into(),
                            function: FunctionCall {
                                name: b
                                    .get("name")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                                arguments: b
                                    .get("input")
                                    .map(Value::to_string)
                                    .unwrap_or_else(|| "{}".into()),
                            },
                        }),
                        Some("tool_result") => {
                            let mut tm = Message::text(
                                Role::Tool,
                                b.get("content").map(text_of).unwrap_or_default(),
                            );
                            tm.tool_call_id = b
                                .get("tool_use_id")
                                .and_then(Value::as_str)
                                .map(str::to_string);
                            out.push(tm);
                        }
                        _ => {}
                    }
                }
                if !texts.is_empty() || !calls.is_empty() {
                    let role = if r == "user" {
                        Role::User
                    } else {
                        Role::Assistant
                    };
                    out.push(Message {
                        role,
                        content: (!texts.is_empty()).then(|| texts.join("\n")),
                        tool_calls: calls,
                        tool_call_id: None,
                        name: None,
                    });
                }
            }
            (other, _) => {
                return Err(Error::field(
                    path,
                    format!("messages[{i}]"),
                    format!(
                        "expected role user or assistant with text or content blocks, found {}",
                        other.map_or("no role".to_string(), |r| format!("role `{r}`"))
                    ),
                ));
            }
        }
    }
    let mut tools = Vec::new();
    if let Some(ts) = req.get("tools").and_then(Value::as_array) {
        for (i, t) in ts.iter().enumerate() {
            let name = t
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::field(path, format!("tools[{i}].name"), "missing"))?;
            tools.push(ToolDef {
                kind: "function".into(),
                function: FunctionDef {
                    name: name.to_string(),
                    description: t
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    parameters: t
                        .get("input_schema")
                        .cloned()
                        .unwrap_or_else(|| serde_json::json!({"type": "object"})),
                },
            });
        }
    }
    Ok((out, tools))
}

fn anthropic_response(resp: &Value) -> ChatResponse {
    let mut r = ChatResponse::default();
    if let Some(blocks) = resp.get("content").and_then(Value::as_array) {
        let mut texts = Vec::new();
        for b in blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => texts.push(
                    b.get("text")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ),
                Some("tool_use") => r.tool_calls.push(ToolCall::new(
                    b.get("id").and_then(Value::as_str).unwrap_or(""),
                    b.get("name").and_then(Value::as_str).unwrap_or(""),
                    b.get("input").unwrap_or(&Value::Null),
                )),
                _ => {}
            }
        }
        r.text = texts.join("\n");
    }
    r
}
