//! The mock's answer to a `cliffprobe paraphrase` request: obviously mock texts, one per asked
//! paraphrase, every identifier of the question kept.

use crate::chat::{ChatRequest, ChatResponse, Role, Usage};

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
