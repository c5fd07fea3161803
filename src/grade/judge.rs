//! Judge checks: the request a judge model is asked, and how its verdict is read back.
//!
//! A `judge` check is a rubric in words. The sweep asks the configured judge model
//! (`[judge]` in `cliffprobe.toml`) one fixed, documented question per judge check: the
//! rubric, the conversation exactly as the graded model saw it, and the graded model's answer
//! (text and tool calls), with a request to reply with `{"verdict": "pass"|"fail", "reason": …}`.
//! This module is pure (building the request, reading the reply); calling the judge, retrying,
//! caching and counting its tokens belong to [`crate::sweep`].
//!
//! Reading is tolerant, because judge models wrap JSON in prose and code fences: the first JSON
//! object holding a `verdict` wins, wherever it is in the reply. A reply without one is
//! unparseable ([`VerdictError`]), and after the retries the case is an `error` whose message is
//! a [`JudgeError`] ("judge: …"), never a pass.

use crate::chat::{ChatRequest, ChatResponse, Message, Role, ToolCall};
use std::fmt::Write as _;

/// The judge's system instructions unless `[judge] prompt` replaces them.
pub const DEFAULT_PROMPT: &str = "You are a strict, impartial grader of an AI assistant's answer. \
You are given a rubric, the conversation exactly as the assistant saw it, and the assistant's \
answer (its text and any tool calls). Decide whether the answer satisfies the rubric. Judge only \
against the rubric and the facts in the conversation; do not reward length or politeness. \
Reply with one JSON object and nothing else: {\"verdict\": \"pass\" or \"fail\", \"reason\": \
\"one or two sentences explaining the verdict\"}.";

/// Heading of the rubric section in the judge's user message.
pub const RUBRIC_HEADING: &str = "## Rubric";
/// Heading of the conversation section.
pub const CONVERSATION_HEADING: &str = "## Conversation (as the assistant saw it)";
/// Heading of the answer section; the answer runs from here to [`REPLY_HEADING`].
pub const ANSWER_HEADING: &str = "## The assistant's answer to grade";
/// Heading of the closing instruction.
pub const REPLY_HEADING: &str = "## Your reply";

/// The longest judge reason kept in a check verdict (characters).
const MAX_REASON_CHARS: usize = 500;

/// The request sent to the judge for one judge check: a system message (the prompt) and one
/// user message with four sections, in this order:
///
/// ```text
/// ## Rubric
/// <rubric>
///
/// ## Conversation (as the assistant saw it)
/// [system]
/// …
/// [user]
/// …
/// [assistant → tool calls]
/// lookup_orders({"customer_id":"C-5531"})
/// [tool call_1]
/// …
///
/// ## The assistant's answer to grade
/// <text, or "(no text)">
/// Tool calls:
/// cancel_order({"order_id":"A-1"})
///
/// ## Your reply
/// Reply with JSON only: {"verdict": "pass" | "fail", "reason": "…"}
/// ```
///
/// Tools offered to the assistant are listed by name after the conversation. The request is
/// deterministic, so its wire body is a stable response-cache key.
pub fn judge_request(
    prompt: Option<&str>,
    rubric: &str,
    request: &ChatRequest,
    answer: &ChatResponse,
) -> ChatRequest {
    let mut u = String::with_capacity(1024);
    let _ = writeln!(u, "{RUBRIC_HEADING}\n{}\n", rubric.trim());
    let _ = writeln!(u, "{CONVERSATION_HEADING}");
    write_conversation(&mut u, request);
    let _ = writeln!(u, "\n{ANSWER_HEADING}");
    if answer.text.trim().is_empty() {
        let _ = writeln!(u, "(no text)");
    } else {
        let _ = writeln!(u, "{}", answer.text);
    }
    if !answer.tool_calls.is_empty() {
        let _ = writeln!(u, "Tool calls:");
        write_calls(&mut u, &answer.tool_calls);
    }
    let _ = write!(
        u,
        "\n{REPLY_HEADING}\nReply with JSON only: {{\"verdict\": \"pass\" | \"fail\", \"reason\": \"…\"}}"
    );
    ChatRequest {
        messages: vec![
            Message::text(Role::System, prompt.unwrap_or(DEFAULT_PROMPT)),
            Message::text(Role::User, u),
        ],
        tools: vec![],
    }
}

/// The conversation as a judge reads it: each turn labelled with its role (tool results with
/// their call id), tool calls as `name(arguments)`, and the names of the tools offered. Shared
/// by the judge of checks and the replay's judge of flips, so both see a conversation alike.
pub(crate) fn write_conversation(u: &mut String, request: &ChatRequest) {
    for m in &request.messages {
        let label = match (&m.role, &m.tool_call_id) {
            (Role::Tool, Some(id)) => format!("[tool {id}]"),
            (role, _) => format!("[{}]", role.as_str()),
        };
        if m.content.is_some() || m.tool_calls.is_empty() {
            let _ = writeln!(u, "{label}\n{}", m.content_str());
        }
        if !m.tool_calls.is_empty() {
            let _ = writeln!(u, "[{} → tool calls]", m.role.as_str());
            write_calls(u, &m.tool_calls);
        }
    }
    if !request.tools.is_empty() {
        let names: Vec<&str> = request
            .tools
            .iter()
            .map(|t| t.function.name.as_str())
            .collect();
        let _ = writeln!(u, "(tools offered: {})", names.join(", "));
    }
}

/// Tool calls as `name(arguments)`, one a line.
pub(crate) fn write_calls(out: &mut String, calls: &[ToolCall]) {
    for c in calls {
        let _ = writeln!(out, "{}({})", c.function.name, c.function.arguments);
    }
}

/// A judge's verdict on one judge check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgeVerdict {
    /// True for `"pass"`.
    pub passed: bool,
    /// The judge's reason (shortened to 500 characters; may be empty).
    pub reason: String,
}

/// Why a judge reply holds no usable verdict (its message quotes an excerpt of the reply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    /// No JSON object in the reply has a `verdict` field.
    #[error("no JSON object with a \"verdict\" in the judge's reply: {excerpt:?}")]
    Missing {
        /// The start of the reply.
        excerpt: String,
    },
    /// The first `verdict` found is neither `pass` nor `fail`.
    #[error("verdict {verdict} is neither \"pass\" nor \"fail\" in the judge's reply: {excerpt:?}")]
    NotPassOrFail {
        /// The `verdict` value, as JSON.
        verdict: String,
        /// The start of the reply.
        excerpt: String,
    },
}

/// Why a judge check got no verdict. The case becomes an `error` whose message is this
/// error's text, always starting `judge: ` so a reader can tell the judge's failure from the
/// graded model's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JudgeError {
    /// The judge's reply held no verdict (and was not asked again: the offline mock judge).
    #[error("judge: {0}")]
    Unreadable(VerdictError),
    /// Every reply, asked again up to `replies` times, held no verdict.
    #[error("judge: {last} (after {replies} replies)")]
    NoVerdict {
        /// What was wrong with the last reply.
        last: VerdictError,
        /// Replies read.
        replies: u32,
    },
    /// The judge model could not be called (a permanent error, or the retries ran out).
    #[error("judge: {0}")]
    Call(String),
    /// The response-cache look-up failed.
    #[error("judge: judge cache look-up: {0}")]
    Cache(String),
    /// The sweep stopped before the judge answered (the reason it stopped).
    #[error("judge: {0}")]
    Stopped(String),
}

/// Reads a verdict from a judge reply: the first JSON object with a `verdict` field, whether the
/// reply is bare JSON, JSON in a code fence, or JSON inside prose. `verdict` is `pass` or `fail`
/// (any case; `passed`/`failed` too); `reason` is optional. `Err` says what was wrong, with an
/// excerpt of the reply.
pub fn parse_verdict(text: &str) -> Result<JudgeVerdict, VerdictError> {
    let mut problem: Option<String> = None;
    for obj in json_objects(text) {
        let Some(v) = obj.get("verdict") else {
            continue;
        };
        let word = v.as_str().map(|s| s.trim().to_ascii_lowercase());
        let passed = match word.as_deref() {
            Some("pass" | "passed") => true,
            Some("fail" | "failed") => false,
            _ => {
                problem.get_or_insert_with(|| v.to_string());
                continue;
            }
        };
        let reason = match obj.get("reason") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        return Ok(JudgeVerdict {
            passed,
            reason: crate::grade::excerpt(&reason, MAX_REASON_CHARS),
        });
    }
    let excerpt = crate::grade::excerpt(text, 120);
    Err(match problem {
        Some(verdict) => VerdictError::NotPassOrFail { verdict, excerpt },
        None => VerdictError::Missing { excerpt },
    })
}

/// Every JSON object in `text`, by the position of its `{`: an outer object comes before the
/// objects nested in it (serde's streaming reader finds where each ends).
fn json_objects(text: &str) -> impl Iterator<Item = serde_json::Map<String, serde_json::Value>> {
    let mut rest_from = 0usize;
    std::iter::from_fn(move || {
        while let Some(off) = text[rest_from..].find('{') {
            let start = rest_from + off;
            let mut stream = serde_json::Deserializer::from_str(&text[start..])
                .into_iter::<serde_json::Map<String, serde_json::Value>>();
            match stream.next() {
                Some(Ok(obj)) => {
                    rest_from = start + 1;
                    return Some(obj);
                }
                _ => rest_from = start + 1,
            }
        }
        None
    })
}

/// The answer section of a judge request built by [`judge_request`] (for the mock judge, which
/// reads what a real judge would read).
pub fn answer_section(request: &ChatRequest) -> Option<&str> {
    let user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)?;
    let text = user.content_str();
    let start = text.rfind(ANSWER_HEADING)? + ANSWER_HEADING.len();
    let end = text[start..]
        .rfind(REPLY_HEADING)
        .map(|i| start + i)
        .unwrap_or(text.len());
    Some(text[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ToolDef;

    fn conversation() -> ChatRequest {
        let mut call = Message::text(Role::Assistant, "");
        call.content = None;
        call.tool_calls = vec![ToolCall::new(
            "call_1",
            "lookup_orders",
            &serde_json::json!({"customer_id": "C-5531"}),
        )];
        let mut tool = Message::text(Role::Tool, "order_id,status\nA-1,delayed");
        tool.tool_call_id = Some("call_1".into());
        ChatRequest {
            messages: vec![
                Message::text(Role::System, "You are support."),
                call,
                tool,
                Message::text(Role::User, "Status of A-1?"),
            ],
            tools: vec![ToolDef {
                kind: "function".into(),
                function: crate::chat::FunctionDef {
                    name: "lookup_orders".into(),
                    description: None,
                    parameters: serde_json::json!({}),
                },
            }],
        }
    }

    #[test]
    fn the_request_has_rubric_conversation_and_answer_in_order() {
        let answer = ChatResponse {
            text: "A-1 is delayed.".into(),
            tool_calls: vec![ToolCall::new(
                "c9",
                "notify",
                &serde_json::json!({"order_id": "A-1"}),
            )],
            ..Default::default()
        };
        let req = judge_request(None, "Says the order is delayed.", &conversation(), &answer);
        assert_eq!(req.messages.len(), 2);
        assert_eq!(req.messages[0].content_str(), DEFAULT_PROMPT);
        let u = req.messages[1].content_str();
        let pos = |s: &str| {
            u.find(s)
                .unwrap_or_else(|| panic!("{s:?} missing in:\n{u}"))
        };
        assert!(pos("Says the order is delayed.") < pos(CONVERSATION_HEADING));
        assert!(
            pos("[system]\nYou are support.") < pos("lookup_orders({\"customer_id\":\"C-5531\"})")
        );
        assert!(pos("[tool call_1]\norder_id,status") < pos("[user]\nStatus of A-1?"));
        assert!(pos("(tools offered: lookup_orders)") < pos(ANSWER_HEADING));
        assert!(
            pos(ANSWER_HEADING)
                < pos("A-1 is delayed.\nTool calls:\nnotify({\"order_id\":\"A-1\"})")
        );
        assert_eq!(
            answer_section(&req),
            Some("A-1 is delayed.\nTool calls:\nnotify({\"order_id\":\"A-1\"})")
        );
        let custom = judge_request(Some("Be kind."), "r", &conversation(), &answer);
        assert_eq!(custom.messages[0].content_str(), "Be kind.");
    }

    #[test]
    fn verdicts_are_found_in_prose_and_fences() {
        let v = parse_verdict(r#"{"verdict": "pass", "reason": "states the delay"}"#).unwrap();
        assert_eq!(
            v,
            JudgeVerdict {
                passed: true,
                reason: "states the delay".into()
            }
        );
        let fenced = "Sure! Here is my grade:\n```json\n{\"verdict\": \"FAIL\", \"reason\": \"says shipped\"}\n```\nThanks.";
        assert!(!parse_verdict(fenced).unwrap().passed);
        let prose = "I think {this} is fine. {\"note\": 1} then {\"verdict\":\"pass\"} and more }";
        let v = parse_verdict(prose).unwrap();
        assert!(v.passed);
        assert_eq!(v.reason, "");
        let nested = r#"{"grade": {"verdict": "fail", "reason": {"why": "x"}}}"#;
        let v = parse_verdict(nested).unwrap();
        assert!(!v.passed);
        assert_eq!(v.reason, r#"{"why":"x"}"#);
    }

    #[test]
    fn replies_without_a_verdict_are_errors() {
        for bad in [
            "",
            "The answer passes.",
            "{\"verdict\": \"maybe\"}",
            "{\"verdict\": true}",
            "{\"result\": \"pass\"}",
            "{\"verdict\": \"pass\"",
        ] {
            let err = parse_verdict(bad).unwrap_err().to_string();
            assert!(err.contains("judge's reply"), "{bad:?} → {err}");
        }
        assert_eq!(
            parse_verdict("{\"verdict\": \"maybe\"}")
                .unwrap_err()
                .to_string(),
            "verdict \"maybe\" is neither \"pass\" nor \"fail\" in the judge's reply: \"{\\\"verdict\\\": \\\"maybe\\\"}\""
        );
        assert_eq!(
            JudgeError::NoVerdict {
                last: parse_verdict("no").unwrap_err(),
                replies: 3
            }
            .to_string(),
            "judge: no JSON object with a \"verdict\" in the judge's reply: \"no\" (after 3 replies)"
        );
    }
}
