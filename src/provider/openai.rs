//! The OpenAI chat-completions wire format (`POST {base_url}/chat/completions`), spoken by
//! OpenAI and by most self-hosted servers (vLLM, Ollama, llama.cpp, LiteLLM, OpenRouter…).
//!
//! The neutral form *is* this format, so the request is the messages and tools as rendered,
//! with one edit for the servers people run: an assistant turn that only calls tools carries
//! `"content": ""` (llama-cpp-python's chat templates read `message.content` and fail with a
//! 500 when the key is missing or null; OpenAI, vLLM, Ollama, llama.cpp and LiteLLM accept the
//! empty string). `compat.tool_call_content` picks `null` or no key instead. The rest of the
//! work is in reading answers tolerantly, since "compatible" servers differ: content may be a
//! string, an array of text parts or null (with a `refusal` string instead), and tool-call
//! arguments may arrive as a JSON string or as an object.

use super::{
    CallError, DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, as_count, classify_status, parse_json_body,
};
use crate::chat::{ChatRequest, ChatResponse, FunctionCall, Message, Role, ToolCall, Usage};
use crate::config::{ModelConfig, ToolCallContent};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

/// The request URL for a base URL such as `http://host/v1` (a trailing slash is ignored).
pub fn endpoint(base_url: &str) -> String {
    format!("{}/chat/completions", base_url.trim().trim_end_matches('/'))
}

/// One message as sent: the neutral [`Message`] with the `content` of a tool-call-only
/// assistant turn decided by `compat.tool_call_content`. Keys in the neutral form's order.
#[derive(serde::Serialize)]
struct WireMessage<'a> {
    role: Role,
    #[serde(skip_serializing_if = "WireContent::is_omitted")]
    content: WireContent<'a>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tool_calls: &'a [ToolCall],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// The `content` of a [`WireMessage`].
enum WireContent<'a> {
    Text(&'a str),
    Null,
    Omitted,
}

impl WireContent<'_> {
    fn is_omitted(&self) -> bool {
        matches!(self, WireContent::Omitted)
    }
}

impl serde::Serialize for WireContent<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WireContent::Text(t) => s.serialize_str(t),
            WireContent::Null | WireContent::Omitted => s.serialize_none(),
        }
    }
}

fn wire_message<'a>(m: &'a Message, tool_call_content: ToolCallContent) -> WireMessage<'a> {
    let content = match (&m.content, m.role, m.tool_calls.is_empty()) {
        (Some(text), _, _) => WireContent::Text(text),
        (None, Role::Assistant, false) => match tool_call_content {
            ToolCallContent::Empty => WireContent::Text(""),
            ToolCallContent::Null => WireContent::Null,
            ToolCallContent::Omit => WireContent::Omitted,
        },
        (None, _, _) => WireContent::Omitted,
    };
    WireMessage {
        role: m.role,
        content,
        tool_calls: &m.tool_calls,
        tool_call_id: m.tool_call_id.as_deref(),
        name: m.name.as_deref(),
    }
}

fn wire_messages<'a>(cfg: &ModelConfig, req: &'a ChatRequest) -> Vec<WireMessage<'a>> {
    let mode = cfg.compat.tool_call_content;
    req.messages.iter().map(|m| wire_message(m, mode)).collect()
}

/// [`request_body`] serialised directly, key for key in the same order.
pub fn encode_body(cfg: &ModelConfig, req: &ChatRequest) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        model: &'a str,
        messages: Vec<WireMessage<'a>>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        tools: &'a [crate::chat::ToolDef],
        #[serde(skip_serializing_if = "Option::is_none")]
        temperature: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_tokens: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_completion_tokens: Option<u32>,
    }
    let limit = cfg.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let completion = cfg.uses_max_completion_tokens();
    let body = Body {
        model: &cfg.model,
        messages: wire_messages(cfg, req),
        tools: &req.tools,
        temperature: temperature(cfg),
        max_tokens: (!completion).then_some(limit),
        max_completion_tokens: completion.then_some(limit),
    };
    let mut out = Vec::with_capacity(
        512 + req
            .messages
            .iter()
            .map(|m| m.content_str().len())
            .sum::<usize>(),
    );
    serde_json::to_writer(&mut out, &body).unwrap_or_default();
    out
}

/// The temperature sent: the configured one, else 0; for a model that takes
/// `max_completion_tokens` (a reasoning model) only a configured one, since those models reject
/// any temperature but their default.
fn temperature(cfg: &ModelConfig) -> Option<f64> {
    if cfg.uses_max_completion_tokens() {
        cfg.temperature
    } else {
        Some(cfg.temperature.unwrap_or(DEFAULT_TEMPERATURE))
    }
}

/// The request body: model, messages (see the module docs for the one edit) and tools in the
/// neutral form, temperature (default 0)
/// and `max_tokens` (default 1024). `tools` is omitted when empty, because some servers reject
/// an empty list. For reasoning models ([`ModelConfig::uses_max_completion_tokens`]) the limit
/// is sent as `max_completion_tokens` and `temperature` only when configured.
pub fn request_body(cfg: &ModelConfig, req: &ChatRequest) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("model".into(), json!(cfg.model));
    body.insert(
        "messages".into(),
        serde_json::to_value(wire_messages(cfg, req)).unwrap_or_else(|_| json!([])),
    );
    if !req.tools.is_empty() {
        body.insert(
            "tools".into(),
            serde_json::to_value(&req.tools).unwrap_or_else(|_| json!([])),
        );
    }
    if let Some(t) = temperature(cfg) {
        body.insert("temperature".into(), json!(t));
    }
    body.insert(
        if cfg.uses_max_completion_tokens() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        }
        .into(),
        json!(cfg.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    Value::Object(body)
}

/// `Authorization: Bearer KEY` when there is a key (marked sensitive so it is never logged).
pub fn headers(api_key: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(key) = api_key
        && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {key}"))
    {
        v.set_sensitive(true);
        h.insert(AUTHORIZATION, v);
    }
    h
}

/// Sorts a non-2xx answer, quoting the server's `error.message` when it sent one.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> CallError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| error_message(&v));
    classify_status(status, headers, body, message)
}

/// `{"error": {"message": ...}}` or `{"error": "..."}`, as OpenAI-compatible servers send, or
/// the flat `{"object": "error", "message": ..., "type": ...}` of vLLM's OpenAI server.
fn error_message(v: &Value) -> Option<String> {
    let e = match v.get("error") {
        Some(e) => e,
        None if v.get("object").and_then(Value::as_str) == Some("error") => v,
        None => return None,
    };
    let msg = e
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| e.as_str())?;
    let kind = e
        .get("type")
        .or_else(|| e.get("code"))
        .and_then(Value::as_str);
    Some(match kind {
        Some(k) => format!("{k}: {}", crate::grade::excerpt(msg, 300)),
        None => crate::grade::excerpt(msg, 300),
    })
}

/// Parses a chat.completion body. No `choices` (or an empty list) is permanent: the same
/// request would get the same non-answer. `finish_reason: "length"` is still an answer (the
/// sweep grades the truncated text).
pub fn parse_response(body: &[u8]) -> Result<ChatResponse, CallError> {
    let v = parse_json_body(body)?;
    let Some(choices) = v.get("choices") else {
        return Err(CallError::Permanent(match error_message(&v) {
            Some(m) => format!("error in a 2xx response: {m}"),
            None => format!("response has no `choices`: {:?}", super::body_excerpt(body)),
        }));
    };
    let Some(choice) = choices.as_array().and_then(|c| c.first()) else {
        return Err(CallError::Permanent("empty choice list".into()));
    };
    let message = choice.get("message").unwrap_or(&Value::Null);
    let text = content_text(message.get("content"))
        .or_else(|| {
            message
                .get("refusal")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .unwrap_or_default();
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .enumerate()
                .filter_map(|(i, c)| tool_call(i, c))
                .collect()
        })
        .unwrap_or_default();
    let usage = v.get("usage").unwrap_or(&Value::Null);
    Ok(ChatResponse {
        text,
        tool_calls,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(String::from),
        usage: Usage {
            input_tokens: as_count(usage.get("prompt_tokens")),
            output_tokens: as_count(usage.get("completion_tokens")),
        },
        model: v.get("model").and_then(Value::as_str).map(String::from),
    })
}

/// A string, or an array of parts whose text parts are joined; `None` for null/absent.
fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| match p {
                    Value::String(s) => Some(s.as_str()),
                    _ => p.get("text").and_then(Value::as_str),
                })
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

fn tool_call(index: usize, c: &Value) -> Option<ToolCall> {
    let f = c.get("function")?;
    let name = f.get("name").and_then(Value::as_str)?.to_string();
    let arguments = match f.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    };
    Some(ToolCall {
        id: c
            .get("id")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| format!("call_{index}")),
        kind: c
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function")
            .to_string(),
        function: FunctionCall { name, arguments },
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn encode_body_is_the_wire_body_byte_for_byte() {
        let cfg: ModelConfig = toml::from_str(
            "provider = \"openai\"\nbase_url = \"http://x\"\nmodel = \"m\"\ntemperature = 0.3\n",
        )
        .unwrap();
        let mut req = ChatRequest {
            messages: vec![crate::chat::Message::text(
                crate::chat::Role::User,
                "hi \"there\" {{x}}",
            )],
            tools: vec![],
        };
        assert_eq!(
            super::encode_body(&cfg, &req),
            serde_json::to_vec(&super::request_body(&cfg, &req)).unwrap()
        );
        let reasoning: ModelConfig =
            toml::from_str("provider = \"openai\"\nbase_url = \"http://x\"\nmodel = \"o3\"\n")
                .unwrap();
        assert_eq!(
            super::encode_body(&reasoning, &req),
            serde_json::to_vec(&super::request_body(&reasoning, &req)).unwrap()
        );
        req.tools = vec![serde_json::from_value(serde_json::json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}})).unwrap()];
        assert_eq!(
            super::encode_body(&cfg, &req),
            serde_json::to_vec(&super::request_body(&cfg, &req)).unwrap()
        );
    }

    use super::*;
    use crate::chat::{FunctionDef, Message, Role, ToolDef};
    use crate::config::ProviderKind;

    fn cfg() -> ModelConfig {
        crate::provider::tests::cfg(ProviderKind::Openai, Some("http://h/v1/"))
    }

    #[test]
    fn endpoint_trims_slash() {
        assert_eq!(endpoint("http://h/v1/"), "http://h/v1/chat/completions");
        assert_eq!(
            endpoint("https://api.openai.com/v1"),
            "https://api.openai.com/v1/chat/completions"
        );
    }

    #[test]
    fn body_is_the_neutral_form() {
        let req = ChatRequest {
            messages: vec![
                Message::text(Role::System, "sys"),
                Message::text(Role::User, "hi"),
                Message {
                    role: Role::Assistant,
                    content: None,
                    tool_calls: vec![ToolCall::new("c1", "lookup", &json!({"id": 7}))],
                    tool_call_id: None,
                    name: None,
                },
                Message {
                    role: Role::Tool,
                    content: Some("{\"ok\":true}".into()),
                    tool_calls: vec![],
                    tool_call_id: Some("c1".into()),
                    name: None,
                },
            ],
            tools: vec![ToolDef {
                kind: "function".into(),
                function: FunctionDef {
                    name: "lookup".into(),
                    description: Some("d".into()),
                    parameters: json!({"type": "object"}),
                },
            }],
        };
        let body = request_body(&cfg(), &req);
        assert_eq!(
            body,
            json!({
                "model": "m-1",
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\":7}"}}]},
                    {"role": "tool", "content": "{\"ok\":true}", "tool_call_id": "c1"}
                ],
                "tools": [{"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}}}],
                "temperature": 0.0,
                "max_tokens": 1024
            })
        );
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["model", "messages", "tools", "temperature", "max_tokens"]
        );
        let no_tools = request_body(
            &cfg(),
            &ChatRequest {
                messages: vec![],
                tools: vec![],
            },
        );
        assert!(no_tools.get("tools").is_none());
    }

    #[test]
    fn tool_call_only_turns_carry_the_compat_content() {
        let req = ChatRequest {
            messages: vec![
                Message::text(Role::User, "hi"),
                Message {
                    role: Role::Assistant,
                    content: None,
                    tool_calls: vec![ToolCall::new("c1", "lookup", &json!({}))],
                    tool_call_id: None,
                    name: None,
                },
                Message {
                    role: Role::Assistant,
                    content: None,
                    tool_calls: vec![],
                    tool_call_id: None,
                    name: None,
                },
            ],
            tools: vec![],
        };
        let mut c = cfg();
        let content = |c: &ModelConfig| {
            let body = request_body(c, &req);
            assert_eq!(encode_body(c, &req), serde_json::to_vec(&body).unwrap());
            // A turn with neither text nor calls keeps no content key in every mode.
            assert!(body["messages"][2].get("content").is_none());
            body["messages"][1].get("content").cloned()
        };
        assert_eq!(content(&c), Some(json!("")));
        c.compat.tool_call_content = ToolCallContent::Null;
        assert_eq!(content(&c), Some(Value::Null));
        c.compat.tool_call_content = ToolCallContent::Omit;
        assert_eq!(content(&c), None);
    }

    #[test]
    fn parses_text_parts_tools_and_usage() {
        let body = json!({
            "model": "gpt-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}],
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
                    {"function": {"name": "g", "arguments": {"y": 2}}}
                ]
            }}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3}
        });
        let r = parse_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.text, "Hello there");
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.tool_calls[1].id, "call_1");
        assert_eq!(r.tool_calls[1].function.arguments, "{\"y\":2}");
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 3
            }
        );
        assert_eq!(r.model.as_deref(), Some("gpt-x"));
    }

    #[test]
    fn refusal_field_and_errors() {
        let body = json!({"choices": [{"message": {"content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]});
        assert_eq!(
            parse_response(body.to_string().as_bytes()).unwrap().text,
            "I can't help with that."
        );
        assert_eq!(
            parse_response(b"{\"choices\": []}"),
            Err(CallError::Permanent("empty choice list".into()))
        );
        let e = parse_response(
            b"{\"error\": {\"message\": \"model overloaded\", \"type\": \"server_error\"}}",
        )
        .unwrap_err();
        assert!(e.message().contains("model overloaded"), "{e}");
        assert!(matches!(
            parse_response(b"not json"),
            Err(CallError::Permanent(_))
        ));
    }

    #[test]
    fn classify_quotes_server_message() {
        let e = classify(
            400,
            &HeaderMap::new(),
            br#"{"error": {"message": "bad field", "type": "invalid_request_error"}}"#,
        );
        assert_eq!(
            e,
            CallError::Permanent("HTTP 400: invalid_request_error: bad field".into())
        );
    }

    #[test]
    fn classify_quotes_vllm_s_flat_error_object() {
        let e = classify(
            500,
            &HeaderMap::new(),
            br#"{"object": "error", "message": "cannot template", "type": "InternalServerError", "param": null, "code": 500}"#,
        );
        assert_eq!(
            e,
            CallError::Transient("HTTP 500: InternalServerError: cannot template".into())
        );
    }
}
