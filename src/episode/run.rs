//! One episode as a state machine: the request of the next model call, fed each answer, until
//! the model answers, a budget runs out, a call goes off-script, or a call fails.
//!
//! The caller owns the model calls (the sweep's dispatcher with its retries, rate limits and
//! cache; shrink's oracle), so there is one call path per caller and no second retry loop:
//! `while let Some(req) = run.next_request() { … run.feed(answer, cached) }`, or
//! [`EpisodeRun::fail`] when a call got no answer. The run itself is pure and deterministic.

use super::simulator::{SimAnswer, Simulator};
use crate::chat::{ChatRequest, ChatResponse, Message, Role};

use crate::probe::episode::Budget;
use crate::trajectory::{Step, Stop, StopReason, Trajectory, final_response};
use std::sync::Arc;

/// An episode in progress (or finished).
#[derive(Debug, Clone)]
pub struct EpisodeRun {
    request: ChatRequest,
    sim: Arc<Simulator>,
    budget: Budget,
    trajectory: Trajectory,
    stop: Option<Stop>,
    tool_calls: u64,
    tokens: u64,
}

impl EpisodeRun {
    /// Starts an episode at the variant's rendered request.
    pub fn new(request: ChatRequest, sim: Arc<Simulator>) -> EpisodeRun {
        let budget = sim.episode().budget;
        EpisodeRun {
            request,
            sim,
            budget,
            trajectory: Trajectory::default(),
            stop: None,
            tool_calls: 0,
            tokens: 0,
        }
    }

    /// The request of the next model call, or `None` once the episode has stopped. Running out
    /// of turns stops it here.
    pub fn next_request(&mut self) -> Option<&ChatRequest> {
        if self.stop.is_some() {
            return None;
        }
        if self.trajectory.steps.len() >= self.budget.max_turns as usize {
            self.stop = Some(Stop {
                reason: StopReason::Budget,
                detail: format!(
                    "budget: {} model calls (max_turns) without a final answer",
                    self.budget.max_turns
                ),
            });
            return None;
        }
        Some(&self.request)
    }

    /// Takes the answer to the request [`Self::next_request`] gave: records the step, and
    /// answers its tool calls through the simulator (or stops).
    pub fn feed(&mut self, resp: ChatResponse, cached: bool) {
        if self.stop.is_some() {
            return;
        }
        let n = self.trajectory.steps.len();
        let mut calls = resp.tool_calls;
        for i in 0..calls.len() {
            // Endpoints that send no call id still need one (the results refer to it), and one
            // that repeats an id (some servers count from 0 on every turn) gets a fresh one, so
            // each result answers exactly one call in the conversation sent back.
            let taken = calls[i].id.is_empty()
                || calls[..i].iter().any(|c| c.id == calls[i].id)
                || self.trajectory.calls().any(|c| c.id == calls[i].id);
            if taken {
                calls[i].id = format!("call_{}_{}", n + 1, i + 1);
            }
        }
        self.tokens += resp.usage.input_tokens + resp.usage.output_tokens;
        self.tool_calls += calls.len() as u64;
        let mut step = Step {
            text: resp.text,
            tool_calls: calls,
            results: Vec::new(),
            input_tokens: resp.usage.input_tokens,
            output_tokens: resp.usage.output_tokens,
            cached,
            finish_reason: resp.finish_reason,
        };
        if step.tool_calls.is_empty() {
            self.trajectory.steps.push(step);
            self.stop = Some(Stop {
                reason: StopReason::Answered,
                detail: "answered".into(),
            });
            return;
        }
        if self.tool_calls > u64::from(self.budget.max_tool_calls) {
            self.trajectory.steps.push(step);
            self.stop = Some(Stop {
                reason: StopReason::Budget,
                detail: format!(
                    "budget: {} tool calls, more than max_tool_calls = {}",
                    self.tool_calls, self.budget.max_tool_calls
                ),
            });
            return;
        }
        if let Some(max) = self.budget.max_tokens
            && self.tokens > max
        {
            self.trajectory.steps.push(step);
            self.stop = Some(Stop {
                reason: StopReason::Budget,
                detail: format!(
                    "budget: {} tokens, more than max_tokens = {max}",
                    self.tokens
                ),
            });
            return;
        }
        let mut tool_messages = Vec::with_capacity(step.tool_calls.len());
        for c in &step.tool_calls {
            match self.sim.answer(c) {
                SimAnswer::Result(r) => {
                    tool_messages.push(Message {
                        role: Role::Tool,
                        content: Some(r.content.clone()),
                        tool_calls: Vec::new(),
                        tool_call_id: Some(c.id.clone()),
                        name: None,
                    });
                    step.results.push(r);
                }
                SimAnswer::OffScript(r) => {
                    self.stop = Some(Stop {
                        reason: StopReason::OffScript,
                        detail: format!("off-script: {}", r.content),
                    });
                    step.results.push(r);
                    break;
                }
            }
        }
        if self.stop.is_none() {
            self.request.messages.push(Message {
                role: Role::Assistant,
                content: Some(step.text.clone()).filter(|t| !t.is_empty()),
                tool_calls: step.tool_calls.clone(),
                tool_call_id: None,
                name: None,
            });
            self.request.messages.extend(tool_messages);
        }
        self.trajectory.steps.push(step);
    }

    /// A model call got no answer (after the caller's retries): the episode is an `error`.
    pub fn fail(&mut self, error: impl Into<String>) {
        if self.stop.is_none() {
            self.stop = Some(Stop {
                reason: StopReason::Error,
                detail: error.into(),
            });
        }
    }

    /// The episode has stopped.
    pub fn is_finished(&self) -> bool {
        self.stop.is_some()
    }

    /// Why it stopped, once it has.
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// The steps so far.
    pub fn trajectory(&self) -> &Trajectory {
        &self.trajectory
    }

    /// Steps answered over HTTP (not from the cache).
    pub fn fresh_steps(&self) -> usize {
        self.trajectory.steps.iter().filter(|s| !s.cached).count()
    }

    /// The episode as one answer, for grading: the final answer's text (the last step's, when
    /// it called no tool), every tool call of the episode in order, tokens summed over the
    /// steps, the last finish reason.
    pub fn final_response(&self) -> ChatResponse {
        final_response(&self.trajectory)
    }

    /// The episode's answer and trajectory as the judge should read them: the whole
    /// trajectory as text, then the final answer.
    pub fn judge_view(&self) -> ChatResponse {
        let mut r = self.final_response();
        r.text = format!(
            "{}[final answer]\n{}",
            self.trajectory.transcript(),
            if r.text.is_empty() { "(none)" } else { &r.text }
        );
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ToolCall, Usage};
    use crate::episode::ResultStyle;
    use crate::grade::CaseStatus;
    use crate::grade::check::Check;
    use crate::probe::episode::Episode;
    use serde_json::json;

    fn run(yaml: &str) -> EpisodeRun {
        let ep: Episode = serde_saphyr::from_str(yaml).unwrap();
        let sim = Simulator::new(
            Arc::new(ep),
            Arc::new(Default::default()),
            vec!["get_order".into(), "refund".into()],
            ResultStyle::original(),
        );
        EpisodeRun::new(
            ChatRequest {
                messages: vec![Message::text(Role::User, "refund B-1")],
                tools: vec![],
            },
            Arc::new(sim),
        )
    }

    fn calls(names: &[&str]) -> ChatResponse {
        ChatResponse {
            tool_calls: names
                .iter()
                .map(|n| ToolCall::new("", *n, &json!({"order_id": "B-1"})))
                .collect(),
            usage: Usage {
                input_tokens: 10,
                output_tokens: 2,
            },
            ..Default::default()
        }
    }

    const EP: &str = "tools:\n  get_order:\n    static: '{\"status\": \"captured\"}'\n  refund:\n    mutating: true\n    static: done\n";

    #[test]
    fn look_up_then_act_then_answer() {
        let mut r = run(EP);
        assert_eq!(r.next_request().unwrap().messages.len(), 1);
        r.feed(calls(&["get_order"]), false);
        let req = r.next_request().unwrap();
        assert_eq!(req.messages.len(), 3);
        assert_eq!(req.messages[1].tool_calls[0].id, "call_1_1");
        assert_eq!(req.messages[2].tool_call_id.as_deref(), Some("call_1_1"));
        assert_eq!(
            req.messages[2].content.as_deref(),
            Some("{\"status\": \"captured\"}")
        );
        r.feed(calls(&["refund"]), true);
        r.feed(
            ChatResponse {
                text: "Refunded B-1.".into(),
                ..Default::default()
            },
            false,
        );
        assert!(r.next_request().is_none());
        assert_eq!(r.stop().unwrap().reason, StopReason::Answered);
        let f = r.final_response();
        assert_eq!(f.text, "Refunded B-1.");
        assert_eq!(f.tool_calls.len(), 2);
        assert_eq!(f.usage.input_tokens, 20);
        assert_eq!(r.fresh_steps(), 2);
        let checks: Vec<Check> =
            serde_saphyr::from_str("- tool_sequence: [get_order, refund]\n- contains: B-1\n")
                .unwrap();
        let (status, _) = crate::trajectory::grade(&checks, r.trajectory(), r.stop().unwrap());
        assert_eq!(status, CaseStatus::Pass);
        assert!(r.judge_view().text.contains("[step 2]"));
    }

    #[test]
    fn budgets_stop_a_looping_agent_as_a_fail() {
        let mut r = run(&format!("{EP}budget: {{max_turns: 3}}\n"));
        while r.next_request().is_some() {
            r.feed(calls(&["get_order"]), false);
        }
        let stop = r.stop().unwrap().clone();
        assert_eq!(stop.reason, StopReason::Budget);
        assert!(
            stop.detail.starts_with("budget: 3 model calls"),
            "{}",
            stop.detail
        );
        let checks: Vec<Check> =
            serde_saphyr::from_str("- tool_call: {name: get_order}\n").unwrap();
        let (status, verdicts) = crate::trajectory::grade(&checks, r.trajectory(), &stop);
        assert_eq!(status, CaseStatus::Fail);
        assert_eq!(verdicts.last().unwrap().check, "budget");

        // A repeated call id gets a fresh one: every result answers one call.
        let mut r = run(EP);
        r.next_request();
        let mut twice = calls(&["get_order", "get_order"]);
        for c in &mut twice.tool_calls {
            c.id = "same".into();
        }
        r.feed(twice, false);
        let ids: Vec<&str> = r.trajectory().steps[0]
            .tool_calls
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids, ["same", "call_1_2"]);

        let mut r = run(&format!("{EP}budget: {{max_tool_calls: 2}}\n"));
        r.next_request();
        r.feed(calls(&["get_order", "get_order", "get_order"]), false);
        assert!(r.stop().unwrap().detail.contains("max_tool_calls = 2"));

        let mut r = run(&format!("{EP}budget: {{max_tokens: 15}}\n"));
        r.next_request();
        r.feed(calls(&["get_order"]), false);
        assert!(r.next_request().is_some());
        r.feed(calls(&["get_order"]), false);
        assert!(r.stop().unwrap().detail.contains("max_tokens = 15"));
    }

    #[test]
    fn off_script_and_errors_stop_the_episode() {
        let mut r = run(&format!("{EP}on_miss: off-script\n"));
        r.next_request();
        r.feed(calls(&["wipe_disk", "get_order"]), false);
        assert_eq!(r.stop().unwrap().reason, StopReason::OffScript);
        assert_eq!(r.trajectory().steps[0].results.len(), 1);
        assert!(r.next_request().is_none());

        let mut r = run(EP);
        r.next_request();
        r.feed(calls(&["get_order"]), false);
        r.fail("HTTP 500: boom");
        assert_eq!(r.stop().unwrap().reason, StopReason::Error);
        assert!(r.next_request().is_none());
    }
}
