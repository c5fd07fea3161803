//! The mock judge: a deterministic, clearly labelled verdict on a `[judge]` request, so the
//! offline demo runs end to end.

use super::{NOT_FOUND, REFUSAL};
use crate::chat::{ChatRequest, ChatResponse, Usage};

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
