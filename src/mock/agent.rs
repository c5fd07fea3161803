//! The mock playing an agent in an episode: one step at a time, look-ups first, then the
//! actions, then an answer in text, each turn planned from the single-turn [`answer`].

use super::answer::answer;
use super::is_lookup;
use crate::chat::{ChatRequest, ChatResponse, Role, ToolCall};
use crate::grade::check::Check;
use serde_json::{Map, Value};

/// The mock playing an agent in an episode (an [`crate::call::Ask::AgentStep`]): a sensible one, that
/// looks up first, then acts, then answers.
///
/// The *plan* of a turn is what [`answer`] would reply to the request (so the pass draw, the
/// penalties and the way a failing answer goes wrong are the single-turn mock's), split in two
/// phases: the look-up calls, then the other calls. When the plan has no look-up but the
/// catalog offers one whose parameters the first action shares (`get_order_by_id(order_id)`
/// before `void_authorization(order_id)`), that look-up is added with those arguments. Turn 1
/// makes the look-ups (or acts when there are none); the next turn acts on the plan drawn from
/// the request as it then is (with the look-up's result in it, so the result's format and
/// length count); the turn after answers in text. Calls already made are not repeated.
pub fn agent_answer(
    model_id: &str,
    req: &ChatRequest,
    checks: &[Check],
    sample: u32,
) -> ChatResponse {
    let start = req
        .messages
        .iter()
        .rposition(|m| m.role == Role::User)
        .unwrap_or(0);
    let since = &req.messages[start + 1..];
    let turn = since.iter().filter(|m| m.role == Role::Assistant).count();
    let called: Vec<&str> = since
        .iter()
        .flat_map(|m| m.tool_calls.iter().map(|c| c.function.name.as_str()))
        .collect();
    let opening = ChatRequest {
        messages: req.messages[..=start.min(req.messages.len().saturating_sub(1))].to_vec(),
        tools: req.tools.clone(),
    };
    let first_plan = agent_plan(model_id, &opening, checks, sample);
    let looked_up = !first_plan.0.is_empty();
    let (lookups, actions, mut reply) = if turn == 0 {
        first_plan
    } else {
        agent_plan(model_id, req, checks, sample)
    };
    let mut calls = match turn {
        0 if looked_up => lookups,
        0 => actions,
        1 if looked_up => actions,
        _ => Vec::new(),
    };
    calls.retain(|c| !called.contains(&c.function.name.as_str()));
    for (i, c) in calls.iter_mut().enumerate() {
        c.id = format!("call_m{}_{}", turn + 1, i + 1);
    }
    if calls.is_empty() {
        if reply.text.trim().is_empty() {
            let acted: Vec<&str> = called.iter().copied().filter(|n| !is_lookup(n)).collect();
            reply.text = if acted.is_empty() {
                "I have looked into it.".to_string()
            } else {
                format!("Done: I called {} for you.", acted.join(", "))
            };
        }
        reply.finish_reason = Some("stop".into());
    } else {
        reply.text = String::new();
        reply.finish_reason = Some("tool_calls".into());
    }
    reply.tool_calls = calls;
    reply
}

/// One turn's plan: the look-up calls, the other calls, and the reply they came with.
fn agent_plan(
    model_id: &str,
    req: &ChatRequest,
    checks: &[Check],
    sample: u32,
) -> (Vec<ToolCall>, Vec<ToolCall>, ChatResponse) {
    let reply = answer(model_id, req, checks, sample);
    let (mut lookups, actions): (Vec<ToolCall>, Vec<ToolCall>) = reply
        .tool_calls
        .iter()
        .cloned()
        .partition(|c| is_lookup(&c.function.name));
    if lookups.is_empty()
        && let Some(first) = actions.first()
        && let Some(Value::Object(args)) = first.arguments_json()
    {
        let named: Vec<&str> = checks.iter().flat_map(|c| c.named_tools()).collect();
        let lookup = req.tools.iter().find_map(|t| {
            let name = &t.function.name;
            if !is_lookup(name) || named.contains(&name.as_str()) {
                return None;
            }
            let props = t.function.parameters.get("properties")?.as_object()?;
            let shared: Map<String, Value> = args
                .iter()
                .filter(|(k, _)| props.contains_key(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (!shared.is_empty()).then(|| ToolCall::new("", name.clone(), &Value::Object(shared)))
        });
        lookups.extend(lookup);
    }
    (lookups, actions, reply)
}
