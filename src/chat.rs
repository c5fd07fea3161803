//! The neutral chat shape every stage speaks: OpenAI chat-completions messages and tools.
//!
//! Incidents are normalised into it, variants are rendered into it, and providers translate
//! *from* it into their wire formats (and parse responses back into [`ChatResponse`]). Keeping one
//! neutral form means a new provider never needs to know how variants were made.

use serde::{Deserialize, Serialize};

/// Who speaks a message, as in the OpenAI chat format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the operator.
    System,
    /// The end user.
    User,
    /// The model (text and/or tool calls).
    Assistant,
    /// A tool's result, answering one tool call.
    Tool,
}

impl Role {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One function call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id, echoed by the tool message that answers it.
    #[serde(default)]
    pub id: String,
    /// Always `function` today.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// Name and JSON-encoded arguments.
    pub function: FunctionCall,
}

fn function_kind() -> String {
    "function".to_string()
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON string (the OpenAI convention), possibly not valid JSON. Logs written
    /// by SDKs and gateways often hold the arguments already parsed (an object): those are read
    /// too and kept as their JSON text, so a logged call is never lost over its encoding.
    #[serde(default, deserialize_with = "arguments_text")]
    pub arguments: String,
}

/// Reads `arguments` given as a JSON string (kept verbatim) or as any other JSON value (kept as
/// its JSON text; `null` as empty).
fn arguments_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

impl ToolCall {
    /// Builds a call from a name and a JSON value of arguments.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: &serde_json::Value,
    ) -> Self {
        ToolCall {
            id: id.into(),
            kind: function_kind(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.to_string(),
            },
        }
    }

    /// The arguments parsed as JSON, or `None` when the model sent something that is not JSON.
    pub fn arguments_json(&self) -> Option<serde_json::Value> {
        if self.function.arguments.trim().is_empty() {
            return Some(serde_json::Value::Object(Default::default()));
        }
        serde_json::from_str(&self.function.arguments).ok()
    }
}

/// One chat message in the OpenAI shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Text content (absent on assistant turns that only call tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls made on an assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// On a tool turn: the call this result answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Optional participant or tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// A message with text only.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// The text content, or "" when there is none.
    pub fn content_str(&self) -> &str {
        self.content.as_deref().unwrap_or("")
    }
}

/// A tool offered to the model (OpenAI `{"type": "function", "function": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    /// Always `function` today.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// Name, description and JSON-schema parameters.
    pub function: FunctionDef,
}

/// The function part of a [`ToolDef`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    /// Function name.
    pub name: String,
    /// What the tool does, as told to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the arguments.
    #[serde(default = "empty_schema")]
    pub parameters: serde_json::Value,
}

fn empty_schema() -> serde_json::Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// A rendered request: what one variant sends to a model, before provider translation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools offered (may be empty).
    #[serde(default)]
    pub tools: Vec<ToolDef>,
}

/// Token counts reported by the endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

/// What a model answered, in the neutral form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Text of the answer ("" when it only called tools).
    pub text: String,
    /// Tool calls in the answer.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, …) as the endpoint said.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Token usage, when reported.
    #[serde(default)]
    pub usage: Usage,
    /// The model id the endpoint says answered.
    #[serde(default)]
    pub model: Option<String>,
}
