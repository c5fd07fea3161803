//! The built-in offline model: deterministic, instant, and brittle in realistic ways.
//!
//! Demos, tests and benchmarks need a "model" that costs nothing, needs no network, gives the
//! same answer for the same input, and still shows what a sweep is for: pass rates that differ
//! by tier and by model, and brittleness that concentrates on some axes. [`answer`] does that by
//! simulating a model with a skill level.
//!
//! It is a backend of its own, beside the HTTP providers: [`crate::call::attempt`] sends a
//! request here when the model's provider is `mock`, and the caller says what it is asking
//! (`crate::call::Ask`), which picks the responder: [`answer`] (a variant, shaped by its checks
//! and sample), [`agent_answer`] (one step of an agent episode), [`judge_answer`] (a `[judge]`
//! verdict) or [`paraphrase_answer`] (`cliffprobe paraphrase`). Nothing here guesses from the
//! prompt's text what kind of question it is.
//!
//! # How a verdict is decided
//!
//! 1. A pass probability `p` is computed from the request's features ([`pass_probability`]):
//!    the profile's base skill, minus penalties (below), minus the probe's hardness.
//! 2. A uniform number `u` in [0, 1) is drawn by hashing (blake3) the model id and the request.
//!    The answer passes when `u < p`. Sample 0 always uses this draw; a later sample redraws
//!    with the profile's *jitter* probability (temperature-like noise, so repeats mostly agree).
//! 3. A passing answer is synthesized to satisfy the checks, a failing one to break exactly one
//!    check in a plausible way (see [`answer`]).
//!
//! # Profiles (chosen by words in the model id)
//!
//! | id contains        | base | length/doubling | format | persona | phrasing | jitter |
//! |--------------------|------|-----------------|--------|---------|----------|--------|
//! | `steady`           | 0.97 | 0.015           | ×0.2   | ×0.2    | ×0.2     | 0      |
//! | `strong`           | 0.93 | 0.03            | ×0.4   | ×0.4    | ×0.4     | 0.01   |
//! | `brittle`          | 0.90 | 0.06            | ×1.0   | ×1.0    | ×0.7     | 0.02   |
//! | `weak`             | 0.60 | 0.06            | ×0.8   | ×0.8    | ×0.6     | 0.05   |
//! | (anything else)    | 0.85 | 0.04            | ×0.5   | ×0.5    | ×0.5     | 0.02   |
//!
//! `flaky` anywhere in the id raises the jitter to 0.35 (repeats disagree often). Two fixed
//! profiles exist for tests: `perfect` or `oracle` always passes (no penalties, no hardness) and
//! `hopeless` always fails. For exercising the retry paths, [`crate::call::attempt`] (not
//! [`answer`]) also injects errors: with `unreliable` in the id every fourth call is a
//! [`CallError::Transient`](crate::provider::CallError::Transient), with `throttled` every
//! fourth call is a [`CallError::RateLimited`](crate::provider::CallError::RateLimited) asking
//! for a 20 ms wait.
//!
//! # Penalties (full-scale values, multiplied by the profile's factor)
//!
//! - **length**: per doubling of the request above 4,000 characters (capped at 0.35);
//! - **format** of tool outputs and documents: XML 0.12, HTML table 0.15, key-value 0.08,
//!   YAML 0.05, CSV 0.03, markdown table 0.02, JSON 0 (the worst one in the request counts);
//! - **persona** (last user message): "sent from my phone" 0.06, all-lowercase or chat
//!   shorthand (`thx`, `rn`, `pls`) 0.06, frustration ("ridiculous", "patience") 0.03,
//!   non-native markers ("my english is not so good") 0.03; capped at 0.15;
//! - **phrasing** (last user message): a mistaken premise ("i'm pretty sure", "already sorted",
//!   "i think i already know") 0.08, several questions at once 0.05, a question buried in a long
//!   message (over 600 characters) 0.05, indirect or conditional framing ("i was wondering",
//!   "if you have the information") 0.04; capped at 0.15;
//! - **tools**: 0.02 per tool offered beyond three when a `tool_call` check exists (cap 0.1);
//! - **look-alike tools** (the `tools=overlapping` axis value, or any catalog like it): 0.45
//!   (× the format factor) when the catalog offers a *look-alike* of a tool a `tool_call` check
//!   expects — another tool whose name differs by one word (a synonym, or one word added) and
//!   whose description shares at least half its words ([`is_lookalike`]). A failing answer
//!   then calls the look-alike, with the expected arguments, instead of the expected tool
//!   (`tools=shuffled` and `terse` cost nothing; `verbose` only lengthens the request);
//! - **checks**: 0.02 per check beyond the first (cap 0.08).
//!
//! **Hardness** is shared by every model: a number `h` in [0, 1) hashed from the probe's
//! identity (its checks and system prompt, which variants do not change). Probes with `h`
//! above 0.75 lose `0.9 × ((h − 0.75) / 0.25)²`, so about a tenth of probes are hard for every
//! model and a few are out of reach for all (the frontier tier). Each model also gets a small
//! per-probe affinity in ±0.04, so two models of equal skill do not fail the same probes.
//!

mod agent;
mod answer;
mod draft;
mod failure;
mod features;
mod judge;
mod paraphrase;
mod profile;

pub use agent::agent_answer;
pub use answer::{answer, pass_probability};
pub use draft::regex_literal;
pub use failure::injected_failure;
pub use features::{DataFormat, Features, detect_format, features, is_lookalike};
pub use judge::judge_answer;
pub use paraphrase::paraphrase_answer;
pub use profile::Profile;

/// The refusal sentence the mock opens with when it declines.
pub const REFUSAL: &str = "I'm sorry, but I can't help with that.";
/// What the mock says when it "misses" a fact.
pub const NOT_FOUND: &str = "I couldn't find that in the data.";

/// Whether a tool name reads as a look-up (see [`crate::tool_catalog::looks_read_only`]).
pub fn is_lookup(name: &str) -> bool {
    crate::tool_catalog::looks_read_only(name)
}

#[cfg(test)]
mod tests {
    use super::draft::{Draft, wrong_number};
    use super::*;
    use crate::chat::{ChatRequest, ChatResponse, Role, ToolCall};
    use crate::chat::{FunctionDef, Message, ToolDef};
    use crate::grade::check::{Check, TextMatch};
    use crate::grade::check::{JsonFieldCheck, NumericCheck, ToolCallCheck};
    use crate::grade::{CaseStatus, grade};
    use serde_json::json;

    const CSV: &str = "order_id,status,total\nA-10441,shipped,89.00\nA-10442,delayed,349.00\nA-10467,processing,31.50\n";

    fn request(question: &str, tool_output: &str) -> ChatRequest {
        ChatRequest {
            messages: vec![
                Message::text(Role::System, "You are a support assistant."),
                Message::text(Role::User, question),
                Message {
                    role: Role::Assistant,
                    content: None,
                    tool_calls: vec![ToolCall::new("c1", "lookup_orders", &json!({}))],
                    tool_call_id: None,
                    name: None,
                },
                Message {
                    role: Role::Tool,
                    content: Some(tool_output.into()),
                    tool_calls: vec![],
                    tool_call_id: Some("c1".into()),
                    name: None,
                },
            ],
            tools: ["lookup_orders", "cancel_order"]
                .iter()
                .map(|n| ToolDef {
                    kind: "function".into(),
                    function: FunctionDef {
                        name: n.to_string(),
                        description: None,
                        parameters: json!({"type": "object"}),
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn the_mock_agent_looks_up_then_acts_then_answers() {
        let tool = |name: &str| ToolDef {
            kind: "function".into(),
            function: FunctionDef {
                name: name.into(),
                description: None,
                parameters: json!({"type": "object", "properties": {"order_id": {"type": "string"}}}),
            },
        };
        let checks = vec![Check::ToolCall(ToolCallCheck {
            name: "void_authorization".into(),
            arguments: [("order_id".to_string(), json!("B-1"))]
                .into_iter()
                .collect(),
        })];
        let mut req = ChatRequest {
            messages: vec![Message::text(Role::User, "Please stop order B-1.")],
            tools: vec![
                tool("get_order_by_id"),
                tool("refund_payment"),
                tool("void_authorization"),
            ],
        };
        let mut names = Vec::new();
        for turn in 0..4 {
            let r = agent_answer("perfect", &req, &checks, 0);
            if r.tool_calls.is_empty() {
                assert!(!r.text.is_empty());
                assert_eq!(turn, 2, "looks up, acts, answers");
                break;
            }
            req.messages.push(Message {
                role: Role::Assistant,
                content: None,
                tool_calls: r.tool_calls.clone(),
                tool_call_id: None,
                name: None,
            });
            for c in &r.tool_calls {
                names.push(c.function.name.clone());
                assert_eq!(c.arguments_json().unwrap()["order_id"], "B-1");
                req.messages.push(Message {
                    role: Role::Tool,
                    content: Some("{\"payment_state\": \"authorized\"}".into()),
                    tool_calls: vec![],
                    tool_call_id: Some(c.id.clone()),
                    name: None,
                });
            }
        }
        assert_eq!(names, ["get_order_by_id", "void_authorization"]);
        // A hopeless agent acts wrongly: another acting tool, not a look-up.
        let r = agent_answer("hopeless", &req.clone(), &checks, 0);
        assert!(r.tool_calls.is_empty(), "past its action turn it answers");
        let opening = ChatRequest {
            messages: vec![req.messages[0].clone()],
            tools: req.tools.clone(),
        };
        let first = agent_answer("hopeless", &opening, &checks, 0);
        assert_eq!(first.tool_calls[0].function.name, "get_order_by_id");
        assert!(
            is_lookup("get_order_by_id")
                && is_lookup("searchOrders")
                && !is_lookup("refund_payment")
        );
    }

    fn check_sets() -> Vec<Vec<Check>> {
        let tm = |s: &str| TextMatch::Plain(s.into());
        vec![
            vec![
                Check::Contains(TextMatch::Options {
                    value: "delayed".into(),
                    ignore_case: true,
                }),
                Check::NotContains(TextMatch::Options {
                    value: "has shipped".into(),
                    ignore_case: true,
                }),
            ],
            vec![Check::Equals(tm("A-10442"))],
            vec![Check::OneOf(vec!["yes".into(), "y".into()])],
            vec![Check::Numeric(NumericCheck {
                value: 349.0,
                tolerance: 0.01,
            })],
            vec![
                Check::JsonField(JsonFieldCheck {
                    path: "order.status".into(),
                    equals: json!("delayed"),
                }),
                Check::Contains(tm("A-10442")),
            ],
            vec![Check::ToolCall(ToolCallCheck {
                name: "cancel_order".into(),
                arguments: [("order_id".to_string(), json!("A-10442"))]
                    .into_iter()
                    .collect(),
            })],
            vec![Check::Refusal(true), Check::Contains(tm("advisor"))],
            vec![Check::Refusal(false), Check::Regex(r"(?i)delayed".into())],
            vec![Check::Regex(r"A-\d{5}".into())],
            vec![Check::NotContains(tm("shipped"))],
        ]
    }

    #[test]
    fn the_mock_judge_fails_non_answers_and_passes_facts() {
        let ask = |text: &str| {
            let answer = ChatResponse {
                text: text.into(),
                ..Default::default()
            };
            let req =
                crate::grade::judge::judge_request(None, "rubric", &request("q?", "x"), &answer);
            crate::grade::judge::parse_verdict(&judge_answer("mock-judge", &req).text).unwrap()
        };
        assert!(ask("Order A-1 is delayed.").passed);
        let v = ask(NOT_FOUND);
        assert!(!v.passed);
        assert!(
            v.reason.starts_with("mock judge (simulated"),
            "{}",
            v.reason
        );
        assert!(!ask("").passed);
        assert!(!ask(REFUSAL).passed);
    }

    #[test]
    fn deterministic() {
        let req = request("What is the status of order A-10442?", CSV);
        for checks in check_sets() {
            for model in ["mock-steady-1", "mock-weak-flaky"] {
                for sample in 0..3 {
                    assert_eq!(
                        answer(model, &req, &checks, sample),
                        answer(model, &req, &checks, sample)
                    );
                }
            }
        }
    }

    #[test]
    fn passing_answers_pass_and_failing_answers_fail() {
        let req = request("What is the status of order A-10442?", CSV);
        for checks in check_sets() {
            let good = answer("mock-perfect", &req, &checks, 0);
            let (status, verdicts) = grade(&checks, &good);
            assert_eq!(
                status,
                CaseStatus::Pass,
                "{checks:?}\n{good:?}\n{verdicts:?}"
            );
            assert_eq!(good.model.as_deref(), Some("mock:mock-perfect"));
            // Every possible broken check, not just the one the hash picks.
            for model in [
                "mock-hopeless",
                "mock-hopeless-2",
                "mock-hopeless-3",
                "hopeless-x",
            ] {
                let bad = answer(model, &req, &checks, 0);
                let (status, verdicts) = grade(&checks, &bad);
                assert_eq!(
                    status,
                    CaseStatus::Fail,
                    "{model} {checks:?}\n{bad:?}\n{verdicts:?}"
                );
            }
        }
    }

    #[test]
    fn every_check_kind_can_be_broken() {
        let req = request("What is the status of order A-10442?", CSV);
        for checks in check_sets() {
            for c in &checks {
                if matches!(c, Check::Regex(_) | Check::Judge(_)) {
                    continue;
                }
                let one = std::slice::from_ref(c);
                let mut d = Draft::passing(one, &req, &[7; 32]);
                d.break_one(one, &req, &[7; 32]);
                let r = ChatResponse {
                    text: d.render(),
                    tool_calls: d.tool_calls.clone(),
                    ..Default::default()
                };
                assert_eq!(grade(one, &r).0, CaseStatus::Fail, "{c:?} -> {r:?}");
            }
        }
    }

    #[test]
    fn wrong_answers_are_plausible() {
        let req = request("What is the status of order A-10442?", CSV);
        let mut d = Draft::passing(&[], &req, &[0; 32]);
        let c = [Check::Contains(TextMatch::Plain("delayed".into()))];
        d.break_one(&c, &req, &[0; 32]);
        // The neighbouring row's status, not a made-up word.
        assert_eq!(d.render(), "Based on the information provided: shipped.");
        assert_eq!(wrong_number(349.0, 0.0, &req, 0), 89.0);
    }

    #[test]
    fn formats_are_detected() {
        assert_eq!(detect_format(CSV), DataFormat::Csv);
        assert_eq!(detect_format("[{\"a\": 1}]"), DataFormat::Json);
        assert_eq!(
            detect_format("<orders>\n  <order><id>1</id></order>\n</orders>"),
            DataFormat::Xml
        );
        assert_eq!(
            detect_format("<table><tr><td>1</td></tr></table>"),
            DataFormat::HtmlTable
        );
        assert_eq!(
            detect_format(
                "order_id: A-1\nstatus: shipped\ntotal: 3\n\norder_id: A-2\nstatus: delayed\ntotal: 4"
            ),
            DataFormat::KeyValue
        );
        assert_eq!(
            detect_format("- order_id: A-1\n  status: shipped\n- order_id: A-2\n  status: delayed"),
            DataFormat::Yaml
        );
        assert_eq!(
            detect_format("| id | status |\n|---|---|\n| A-1 | shipped |"),
            DataFormat::MarkdownTable
        );
        assert_eq!(
            detect_format("Hi! Can you check on my orders? Thanks."),
            DataFormat::Json
        );
    }

    #[test]
    fn penalties_order_the_profiles() {
        let plain = request("What is the status of order A-10442?", CSV);
        let xml = request(
            "What is the status of order A-10442?",
            "<orders>\n  <order><id>A-10441</id><status>shipped</status></order>\n  <order><id>A-10442</id><status>delayed</status></order>\n</orders>",
        );
        let phone = request(
            "hey quick one, on the go rn what is the status of order A-10442 thx\n\nsent from my phone",
            CSV,
        );
        let checks = [Check::Contains(TextMatch::Plain("delayed".into()))];
        let p = |m: &str, r: &ChatRequest| pass_probability(m, r, &checks);
        for r in [&plain, &xml, &phone] {
            assert!(p("mock-steady", r) > p("mock-brittle", r));
            assert!(p("mock-brittle", r) > p("mock-weak", r));
        }
        let drop = |m: &str, r: &ChatRequest| p(m, &plain) - p(m, r);
        assert!(drop("mock-brittle", &xml) > 0.08 && drop("mock-steady", &xml) < 0.03);
        assert!(
            drop("mock-brittle", &phone) > 0.1,
            "{} {:?}",
            drop("mock-brittle", &phone),
            features(&phone)
        );
        let long = request("What is the status of order A-10442?", &CSV.repeat(1000));
        assert!(
            drop("mock-brittle", &long) > 0.2,
            "{}",
            drop("mock-brittle", &long)
        );
        assert_eq!(p("mock-perfect", &xml), 1.0);
        assert_eq!(p("mock-hopeless", &plain), 0.0);
    }

    /// Over many distinct requests, pass rates land near the profile's skill and order the
    /// profiles; flaky models disagree across samples and steady ones never do.
    #[test]
    fn realistic_spread_and_flakiness() {
        let checks = [Check::Contains(TextMatch::Plain("delayed".into()))];
        let n = 2000;
        let rate = |model: &str, sample: u32| {
            (0..n)
                .filter(|i| {
                    let req = request(&format!("Status of order A-10442? (ticket {i})"), CSV);
                    grade(&checks, &answer(model, &req, &checks, sample)).0 == CaseStatus::Pass
                })
                .count() as f64
                / n as f64
        };
        let (steady, brittle, weak) = (
            rate("mock-steady-1", 0),
            rate("mock-brittle-1", 0),
            rate("mock-weak-1", 0),
        );
        assert!(
            steady > brittle && brittle > weak,
            "{steady} {brittle} {weak}"
        );
        assert!(steady > 0.8 && weak < 0.7, "{steady} {weak}");
        let flips = |model: &str| {
            (0..n)
                .filter(|i| {
                    let req = request(&format!("Status of order A-10442? (ticket {i})"), CSV);
                    answer(model, &req, &checks, 0).text != answer(model, &req, &checks, 1).text
                })
                .count()
        };
        assert_eq!(flips("mock-steady-1"), 0);
        assert!(
            flips("mock-brittle-flaky") > n / 50,
            "{}",
            flips("mock-brittle-flaky")
        );
    }

    #[test]
    fn usage_and_shape() {
        let req = request("What is the status of order A-10442?", CSV);
        let checks = [Check::ToolCall(ToolCallCheck {
            name: "cancel_order".into(),
            arguments: Default::default(),
        })];
        let r = answer("mock-perfect", &req, &checks, 0);
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.text, "");
        assert!(r.usage.input_tokens > 10);
        assert!(injected_failure("mock-unreliable", 1).is_some());
        assert!(injected_failure("mock-unreliable", 2).is_none());
        assert!(injected_failure("mock-steady", 1).is_none());
    }

    #[test]
    fn regex_literals() {
        assert_eq!(regex_literal("(?i)approved"), Some("approved".into()));
        assert_eq!(regex_literal(r"A\-1\.5"), Some("A-1.5".into()));
        assert_eq!(regex_literal(r"\d+"), None);
        assert_eq!(regex_literal("a|b"), None);
    }
}

#[cfg(test)]
mod lookalike_tests {
    use super::*;
    use crate::axes::AxisLibrary;
    use crate::expand::ProbeExpansion;
    use crate::probe::Probe;
    use crate::render::VariantAxes;

    /// The shipped overlapping-tools probe: under `tools=overlapping` the catalog offers a
    /// look-alike of `void_authorization`, the pass probability drops by 0.45 × the format
    /// factor, and a failing answer calls the look-alike; the other tools values cost nothing.
    #[test]
    fn a_lookalike_of_the_expected_tool_confuses_the_mock() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/probes/tool-selection-with-overlapping-catalogs/overlapping-tools.yaml"
        ));
        let probe = Probe::load(path).unwrap();
        let lib = AxisLibrary::embedded();
        let x = ProbeExpansion::new(&probe, &lib).unwrap();
        let at = |tools: &str| {
            let axes = VariantAxes {
                tools: tools.into(),
                ..VariantAxes::default()
            };
            x.variant(axes).unwrap()
        };
        let model = "mock-brittle-1";
        let base = pass_probability(model, &at("original").request, &probe.checks);
        for v in ["shuffled", "terse"] {
            let p = pass_probability(model, &at(v).request, &probe.checks);
            assert!((p - base).abs() < 1e-9, "{v}: {p} against {base}");
        }
        let over = at("overlapping");
        let p = pass_probability(model, &over.request, &probe.checks);
        // 0.45 for the look-alike, 0.02 for each of the two added tools beyond three.
        assert!((base - p - 0.49).abs() < 1e-9, "{p} against {base}");
        let mut wrong = 0;
        for sample in 0..200 {
            let mut req = over.request.clone();
            req.messages[1].content = Some(format!("{sample}"));
            let a = answer(model, &req, &probe.checks, 0);
            let called = &a.tool_calls[0].function.name;
            if called != "void_authorization" {
                assert_eq!(
                    over.added_tools.get(called).map(String::as_str),
                    Some("void_authorization"),
                    "{called}"
                );
                wrong += 1;
            }
        }
        assert!(wrong > 40, "{wrong} of 200 picked the look-alike");
    }
}
