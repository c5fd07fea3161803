//! The Anthropic Messages API (`POST {base_url}/v1/messages`).
//!
//! The neutral form is OpenAI-shaped, so this module translates, as faithfully as the two
//! formats allow:
//!
//! - `system` messages are hoisted into the top-level `system` string (joined by blank lines,
//!   in order), since Anthropic has no system turns;
//! - assistant `tool_calls` become `tool_use` blocks after the turn's text; arguments are
//!   parsed into the `input` object (`{}` when they are not a JSON object: the API rejects
//!   anything else);
//! - `tool` messages become `tool_result` blocks in a `user` turn; consecutive turns of the same
//!   role are merged into one (the API requires alternation), and in a merged user turn the
//!   `tool_result` blocks come first, as the API demands;
//! - tool-call ids are kept when they fit the API's `[A-Za-z0-9_-]` pattern and otherwise have
//!   the offending characters replaced by `_` (consistently on both sides); a tool message with
//!   no `tool_call_id` answers the oldest unanswered call;
//! - a turn that is one text block is sent as a plain string (`"content": "…"`), which the API
//!   allows and which gateways translating to the OpenAI shape (LiteLLM's `/v1/messages`) pass
//!   on as a string, as every backend's chat template expects; `compat.text_content = "blocks"`
//!   sends lists always;
//! - empty text is dropped (the API rejects empty text blocks), and a conversation opening with
//!   an assistant turn gets a placeholder user turn `"(conversation start)"` in front, because
//!   the API requires the first turn to be the user's. These two are the only edits to content.
//!
//! Answers are read back into the neutral form: text blocks joined, `tool_use` blocks as tool
//! calls, `stop_reason` mapped to OpenAI finish reasons (`end_turn`/`stop_sequence` → `stop`,
//! `tool_use` → `tool_calls`, `max_tokens` → `length`; others pass through).

use super::{
    CallError, DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, as_count, classify_status, parse_json_body,
};
use crate::chat::{ChatRequest, ChatResponse, Role, ToolCall, Usage};
use crate::config::{ModelConfig, TextContent};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::collections::VecDeque;

/// The API version header value this translation is written against.
pub const API_VERSION: &str = "2023-06-01";
/// The public endpoint's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The user turn put in front of a conversation that opens with the assistant.
pub const OPENING_PLACEHOLDER: &str = "(conversation start)";

/// The request URL: `{base}/v1/messages`, without doubling a `/v1` the base already ends with.
pub fn endpoint(base_url: Option<&str>) -> String {
    let base = base_url
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or(DEFAULT_BASE_URL)
        .trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

/// `x-api-key` (marked sensitive) when there is a key, and `anthropic-version`.
pub fn headers(api_key: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(key) = api_key
        && let Ok(mut v) = HeaderValue::from_str(key)
    {
        v.set_sensitive(true);
        h.insert(HeaderName::from_static("x-api-key"), v);
    }
    h.insert(
        HeaderName::from_static("anthropic-version"),
        HeaderValue::from_static(API_VERSION),
    );
    h
}

/// The request body (see the module docs for the translation rules). Deterministic.
pub fn request_body(cfg: &ModelConfig, req: &ChatRequest) -> Value {
    let (system, mut messages) = translate_messages(req);
    if cfg.compat.text_content == TextContent::String {
        for m in &mut messages {
            plain_text_content(m);
        }
    }
    let mut body = serde_json::Map::new();
    body.insert("model".into(), json!(cfg.model));
    body.insert(
        "max_tokens".into(),
        json!(cfg.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    if let Some(system) = system {
        body.insert("system".into(), json!(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        body.insert("tools".into(), Value::Array(translate_tools(req)));
    }
    body.insert(
        "temperature".into(),
        json!(cfg.temperature.unwrap_or(DEFAULT_TEMPERATURE)),
    );
    Value::Object(body)
}

/// Turns `{"content": [{"type": "text", "text": T}]}` into `{"content": T}`; any other turn
/// (several blocks, tool blocks) is left as it is.
fn plain_text_content(message: &mut Value) {
    let Some(content) = message.get_mut("content") else {
        return;
    };
    let text = match content.as_array().map(Vec::as_slice) {
        Some([block]) if block.get("type").and_then(Value::as_str) == Some("text") => {
            block.get("text").cloned()
        }
        _ => None,
    };
    if let Some(text @ Value::String(_)) = text {
        *content = text;
    }
}

/// Tools as `{name, description, input_schema}`.
pub fn translate_tools(req: &ChatRequest) -> Vec<Value> {
    req.tools
        .iter()
        .map(|t| {
            let mut o = serde_json::Map::new();
            o.insert("name".into(), json!(t.function.name));
            if let Some(d) = &t.function.description {
                o.insert("description".into(), json!(d));
            }
            o.insert("input_schema".into(), t.function.parameters.clone());
            Value::Object(o)
        })
        .collect()
}

/// The hoisted system prompt (if any) and the alternating `messages` array.
pub fn translate_messages(req: &ChatRequest) -> (Option<String>, Vec<Value>) {
    let mut system: Vec<&str> = Vec::new();
    // (role, blocks), merged as they are pushed.
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut unanswered: VecDeque<String> = VecDeque::new();
    let mut call_ordinal = 0usize;
    for m in &req.messages {
        match m.role {
            Role::System => {
                if !m.content_str().trim().is_empty() {
                    system.push(m.content_str());
                }
            }
            Role::User => push(
                "user",
                text_block(m.content_str()).into_iter().collect(),
                &mut turns,
            ),
            Role::Assistant => {
                let mut blocks: Vec<Value> = text_block(m.content_str()).into_iter().collect();
                for call in &m.tool_calls {
                    let id = if call.id.trim().is_empty() {
                        format!("call_{call_ordinal}")
                    } else {
                        sanitize_id(&call.id)
                    };
                    call_ordinal += 1;
                    unanswered.push_back(id.clone());
                    let input = match call.arguments_json() {
                        Some(v @ Value::Object(_)) => v,
                        _ => json!({}),
                    };
                    blocks.push(json!({"type": "tool_use", "id": id, "name": call.function.name, "input": input}));
                }
                push("assistant", blocks, &mut turns);
            }
            Role::Tool => {
                let id = match m
                    .tool_call_id
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    Some(id) => {
                        let id = sanitize_id(id);
                        if let Some(pos) = unanswered.iter().position(|u| *u == id) {
                            unanswered.remove(pos);
                        }
                        id
                    }
                    None => unanswered
                        .pop_front()
                        .unwrap_or_else(|| "call_unknown".to_string()),
                };
                let mut block = serde_json::Map::new();
                block.insert("type".into(), json!("tool_result"));
                block.insert("tool_use_id".into(), json!(id));
                if !m.content_str().is_empty() {
                    block.insert("content".into(), json!(m.content_str()));
                }
                push("user", vec![Value::Object(block)], &mut turns);
            }
        }
    }
    if turns.first().is_some_and(|(r, _)| *r == "assistant") {
        turns.insert(
            0,
            (
                "user",
                vec![json!({"type": "text", "text": OPENING_PLACEHOLDER})],
            ),
        );
    }
    let messages = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            if role == "user" {
                // Stable: tool results first, then the rest in their order.
                blocks
                    .sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            }
            json!({"role": role, "content": blocks})
        })
        .collect();
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    (system, messages)
}

/// Appends blocks as a turn, merging them into the previous turn when it has the same role.
fn push(role: &'static str, blocks: Vec<Value>, turns: &mut Vec<(&'static str, Vec<Value>)>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((r, b)) if *r == role => b.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

fn text_block(text: &str) -> Option<Value> {
    (!text.trim().is_empty()).then(|| json!({"type": "text", "text": text}))
}

/// Ids must match `^[a-zA-Z0-9_-]+$`.
fn sanitize_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `{"type": "error", "error": {"type": ..., "message": ...}}`.
fn error_info(v: &Value) -> Option<(String, String)> {
    let e = v.get("error")?;
    let kind = e
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("error")
        .to_string();
    let msg = e
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| e.as_str())
        .unwrap_or("");
    Some((kind, crate::grade::excerpt(msg, 300)))
}

/// Sorts a non-2xx answer: 429 and 529 (overloaded) are rate limits, 5xx transient, other 4xx
/// permanent; the error's `type` and `message` are quoted.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> CallError {
    let info = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| error_info(&v));
    let message = info.as_ref().map(|(k, m)| {
        if m.is_empty() {
            k.clone()
        } else {
            format!("{k}: {m}")
        }
    });
    if let Some((kind, _)) = &info
        && matches!(kind.as_str(), "overloaded_error" | "rate_limit_error")
        && !(status == 429 || status == 529)
    {
        // Some gateways relay these with another status; the error type is what counts.
        return classify_status(429, headers, body, message);
    }
    classify_status(status, headers, body, message)
}

/// Maps `stop_reason` to the OpenAI finish reasons the rest of the pipeline speaks.
pub fn finish_reason(stop_reason: &str) -> String {
    match stop_reason {
        "end_turn" | "stop_sequence" => "stop",
        "tool_use" => "tool_calls",
        "max_tokens" => "length",
        other => other,
    }
    .to_string()
}

/// Parses a `message` body.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse, CallError> {
    let v = parse_json_body(body)?;
    if v.get("type").and_then(Value::as_str) == Some("error") {
        let (kind, msg) = error_info(&v).unwrap_or_else(|| ("error".into(), String::new()));
        let message = format!("{kind}: {msg}");
        return Err(match kind.as_str() {
            "overloaded_error" | "rate_limit_error" => CallError::RateLimited {
                retry_after: None,
                message,
            },
            "api_error" => CallError::Transient(message),
            _ => CallError::Permanent(message),
        });
    }
    let Some(blocks) = v.get("content").and_then(Value::as_array) else {
        return Err(CallError::Permanent(format!(
            "response has no `content` list: {:?}",
            super::body_excerpt(body)
        )));
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => {
                let id = b
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let name = b
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(ToolCall::new(id, name, &input));
            }
            // thinking, redacted_thinking, server tool blocks: not part of the answer.
            _ => {}
        }
    }
    let usage = v.get("usage").unwrap_or(&Value::Null);
    // Cache reads/writes are prompt tokens too; they are zero unless caching is on.
    let input_tokens = as_count(usage.get("input_tokens"))
        + as_count(usage.get("cache_creation_input_tokens"))
        + as_count(usage.get("cache_read_input_tokens"));
    Ok(ChatResponse {
        text,
        tool_calls,
        finish_reason: v
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(finish_reason),
        usage: Usage {
            input_tokens,
            output_tokens: as_count(usage.get("output_tokens")),
        },
        model: v.get("model").and_then(Value::as_str).map(String::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{FunctionDef, Message, ToolDef};
    use crate::config::ProviderKind;

    fn tool_msg(id: Option<&str>, content: &str) -> Message {
        Message {
            role: Role::Tool,
            content: Some(content.into()),
            tool_calls: vec![],
            tool_call_id: id.map(String::from),
            name: None,
        }
    }

    fn assistant_calls(text: Option<&str>, calls: Vec<ToolCall>) -> Message {
        Message {
            role: Role::Assistant,
            content: text.map(String::from),
            tool_calls: calls,
            tool_call_id: None,
            name: None,
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(endpoint(None), "https://api.anthropic.com/v1/messages");
        assert_eq!(endpoint(Some("http://h:1/")), "http://h:1/v1/messages");
        assert_eq!(endpoint(Some("http://h:1/v1/")), "http://h:1/v1/messages");
    }

    #[test]
    fn translation_hoists_system_merges_and_orders() {
        let req = ChatRequest {
            messages: vec![
                Message::text(Role::System, "Be brief."),
                Message::text(Role::User, "Find order 7."),
                Message::text(Role::System, "Use tools."),
                Message::text(Role::User, "Please."),
                assistant_calls(
                    Some("Looking."),
                    vec![
                        ToolCall::new("call:1", "lookup", &json!({"id": 7})),
                        ToolCall {
                            id: "c2".into(),
                            kind: "function".into(),
                            function: crate::chat::FunctionCall {
                                name: "audit".into(),
                                arguments: "not json".into(),
                            },
                        },
                    ],
                ),
                tool_msg(Some("call:1"), "{\"status\":\"shipped\"}"),
                tool_msg(None, "ok"),
                Message::text(Role::User, "And?"),
                Message::text(Role::Assistant, ""),
            ],
            tools: vec![ToolDef {
                kind: "function".into(),
                function: FunctionDef {
                    name: "lookup".into(),
                    description: None,
                    parameters: json!({"type": "object"}),
                },
            }],
        };
        let (system, messages) = translate_messages(&req);
        assert_eq!(system.as_deref(), Some("Be brief.\n\nUse tools."));
        assert_eq!(
            Value::Array(messages),
            json!([
                {"role": "user", "content": [{"type": "text", "text": "Find order 7."}, {"type": "text", "text": "Please."}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Looking."},
                    {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"id": 7}},
                    {"type": "tool_use", "id": "c2", "name": "audit", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "{\"status\":\"shipped\"}"},
                    {"type": "tool_result", "tool_use_id": "c2", "content": "ok"},
                    {"type": "text", "text": "And?"}
                ]}
            ])
        );
        let cfg = crate::provider::tests::cfg(ProviderKind::Anthropic, None);
        let body = request_body(&cfg, &req);
        assert_eq!(
            body["tools"],
            json!([{"name": "lookup", "input_schema": {"type": "object"}}])
        );
        assert_eq!(body["max_tokens"], json!(1024));
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "model",
                "max_tokens",
                "system",
                "messages",
                "tools",
                "temperature"
            ]
        );
    }

    #[test]
    fn single_text_turns_are_plain_strings_unless_compat_says_blocks() {
        let req = ChatRequest {
            messages: vec![
                Message::text(Role::User, "Where is order 7?"),
                assistant_calls(None, vec![ToolCall::new("c1", "lookup", &json!({"id": 7}))]),
                tool_msg(Some("c1"), "shipped"),
                Message::text(Role::Assistant, "It shipped."),
                Message::text(Role::User, "Thanks."),
                Message::text(Role::User, "Bye."),
            ],
            tools: vec![],
        };
        let mut cfg = crate::provider::tests::cfg(ProviderKind::Anthropic, None);
        let body = request_body(&cfg, &req);
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "Where is order 7?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "lookup", "input": {"id": 7}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "shipped"}]},
                {"role": "assistant", "content": "It shipped."},
                {"role": "user", "content": [{"type": "text", "text": "Thanks."}, {"type": "text", "text": "Bye."}]}
            ])
        );
        cfg.compat.text_content = crate::config::TextContent::Blocks;
        let body = request_body(&cfg, &req);
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"type": "text", "text": "Where is order 7?"}])
        );
        assert_eq!(
            body["messages"][3]["content"],
            json!([{"type": "text", "text": "It shipped."}])
        );
    }

    #[test]
    fn opening_assistant_turn_gets_a_user_placeholder() {
        let req = ChatRequest {
            messages: vec![
                Message::text(Role::Assistant, "Hi! How can I help?"),
                Message::text(Role::User, "Refund."),
            ],
            tools: vec![],
        };
        let (system, messages) = translate_messages(&req);
        assert!(system.is_none());
        assert_eq!(
            messages[0]["content"][0]["text"],
            json!(OPENING_PLACEHOLDER)
        );
        assert_eq!(messages.len(), 3);
        let roles: Vec<&str> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
    }

    #[test]
    fn parses_blocks_and_stop_reasons() {
        let body = json!({
            "type": "message", "model": "claude-x", "stop_reason": "tool_use",
            "content": [
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "Checking "},
                {"type": "text", "text": "now."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"id": 7}}
            ],
            "usage": {"input_tokens": 20, "output_tokens": 5, "cache_read_input_tokens": 2}
        });
        let r = parse_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.text, "Checking now.");
        assert_eq!(r.tool_calls[0].function.name, "lookup");
        assert_eq!(r.tool_calls[0].arguments_json(), Some(json!({"id": 7})));
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 22,
                output_tokens: 5
            }
        );
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("refusal"), "refusal");
    }

    #[test]
    fn errors_sort_by_type() {
        let overloaded =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert!(matches!(
            classify(529, &HeaderMap::new(), overloaded),
            CallError::RateLimited { .. }
        ));
        assert!(matches!(
            parse_response(overloaded),
            Err(CallError::RateLimited { .. })
        ));
        let bad = br#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}"#;
        let e = classify(400, &HeaderMap::new(), bad);
        assert_eq!(
            e,
            CallError::Permanent(
                "HTTP 400: invalid_request_error: messages: roles must alternate".into()
            )
        );
        assert!(matches!(
            classify(502, &HeaderMap::new(), b"bad gateway"),
            CallError::Transient(_)
        ));
        assert!(matches!(
            parse_response(b"{\"type\":\"message\"}"),
            Err(CallError::Permanent(_))
        ));
    }
}
