//! The judge of flips (`--judge`): for each flipped decision, the `[judge]` model is asked
//! which of the two answers is right for the conversation, so flips split into
//! *corrections* (the candidate is right, the logged model was not) and *regressions* (the
//! logged answer was right, the candidate's is not); anything else is *unclear*.
//!
//! The request is fixed and documented ([`PROMPT`], [`judge_request`]): answer A is always
//! the logged one and B the candidate's. It goes through the provider's retries and the
//! response cache like every other call, so judging again costs nothing. A reply without a
//! readable verdict is asked again (up to [`crate::sweep::JUDGE_REPLY_ATTEMPTS`] replies),
//! then the flip stays without a verdict and is counted as a judge error, never guessed.

use crate::chat::{ChatRequest, ChatResponse, Message, Role};
use std::fmt::Write as _;

/// The judge's system instructions.
pub const PROMPT: &str = "You compare two answers an AI assistant could give at the same step of \
the same conversation, and decide which one is right for the conversation: the one that takes \
the correct decision or action given the instructions, the user's request and the tool results. \
Judge only by the facts in the conversation; ignore style and length. Reply with one JSON \
object and nothing else: {\"right\": \"A\" | \"B\" | \"both\" | \"neither\", \"reason\": \"one \
or two sentences\"}. \"A\" means answer A is right and answer B is not; \"B\" the reverse.";

/// What the judge said about one flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlipVerdict {
    /// The candidate (B) is right and the logged answer (A) is not.
    Correction,
    /// The logged answer (A) is right and the candidate (B) is not.
    Regression,
    /// Both or neither.
    Unclear,
}

impl FlipVerdict {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FlipVerdict::Correction => "correction",
            FlipVerdict::Regression => "regression",
            FlipVerdict::Unclear => "unclear",
        }
    }
}

/// The judge request for one flip: [`PROMPT`] as the system message, and a user message with
/// the sections `## Conversation`, `## Answer A (logged)`, `## Answer B (candidate)` and
/// `## Your reply`.
pub fn judge_request(
    request: &ChatRequest,
    logged: &ChatResponse,
    candidate: &ChatResponse,
) -> ChatRequest {
    let mut u = String::with_capacity(1024);
    let _ = writeln!(u, "## Conversation");
    crate::grade::judge::write_conversation(&mut u, request);
    for (heading, a) in [
        ("## Answer A (logged)", logged),
        ("## Answer B (candidate)", candidate),
    ] {
        let _ = writeln!(u, "\n{heading}");
        if a.text.trim().is_empty() {
            let _ = writeln!(u, "(no text)");
        } else {
            let _ = writeln!(u, "{}", a.text);
        }
        if !a.tool_calls.is_empty() {
            let _ = writeln!(u, "Tool calls:");
            crate::grade::judge::write_calls(&mut u, &a.tool_calls);
        }
    }
    let _ = write!(
        u,
        "\n## Your reply\nReply with JSON only: {{\"right\": \"A\" | \"B\" | \"both\" | \"neither\", \"reason\": \"…\"}}"
    );
    ChatRequest {
        messages: vec![
            Message::text(Role::System, PROMPT),
            Message::text(Role::User, u),
        ],
        tools: vec![],
    }
}

/// Reads the verdict from a judge reply: the first `"right": …` with a known value, in a JSON
/// object anywhere in the text.
pub fn parse_verdict(text: &str) -> Result<FlipVerdict, String> {
    let re =
        regex::Regex::new(r#"(?i)"right"\s*:\s*"\s*(a|b|both|neither)\s*""#).expect("valid regex");
    let Some(c) = re.captures(text) else {
        return Err(format!(
            "no {{\"right\": …}} in the judge's reply: {}",
            crate::grade::excerpt(text, 200)
        ));
    };
    Ok(match c[1].to_ascii_lowercase().as_str() {
        "a" => FlipVerdict::Regression,
        "b" => FlipVerdict::Correction,
        _ => FlipVerdict::Unclear,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_read_tolerantly() {
        assert_eq!(
            parse_verdict("```json\n{\"right\": \"B\", \"reason\": \"x\"}\n```"),
            Ok(FlipVerdict::Correction)
        );
        assert_eq!(
            parse_verdict("{\"reason\": \"y\", \"right\":\"a\"}"),
            Ok(FlipVerdict::Regression)
        );
        assert_eq!(
            parse_verdict("{\"right\": \"neither\"}"),
            Ok(FlipVerdict::Unclear)
        );
        assert!(parse_verdict("A is right").is_err());
    }

    #[test]
    fn the_request_names_both_answers_in_order() {
        let req = ChatRequest {
            messages: vec![Message::text(Role::User, "refund?")],
            tools: vec![],
        };
        let a = ChatResponse {
            text: "approve".into(),
            ..Default::default()
        };
        let b = ChatResponse {
            text: "deny".into(),
            ..Default::default()
        };
        let j = judge_request(&req, &a, &b);
        let u = j.messages[1].content_str();
        let (ia, ib) = (
            u.find("## Answer A (logged)\napprove").unwrap(),
            u.find("## Answer B (candidate)\ndeny").unwrap(),
        );
        assert!(u.find("refund?").unwrap() < ia && ia < ib);
        assert_eq!(j.messages[0].content_str(), PROMPT);
    }
}
