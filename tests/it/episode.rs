//! Agent episodes over real HTTP: scripted agent servers (OpenAI and Anthropic wire formats)
//! that look up then act, loop for ever, call an unknown tool, or fail on their second step;
//! the tool simulator's answers reach them as native tool messages; the per-step cache makes a
//! re-run free; a sweep killed mid-episode resumes to exactly one result per case.

use crate::support::http_server::{
    Reply, TestServer, anthropic_error, anthropic_message, openai_completion, openai_error,
    openai_tool_calls,
};
use crate::support::project::{Project, count, model};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

const KEY: &str = "episode-key";

fn env() -> [(&'static str, &'static str); 1] {
    [("TEST_KEY", KEY)]
}

/// A payments-agent episode: look up the order, then void (never refund) it.
fn probe(on_miss: &str, budget: &str) -> String {
    format!(
        r#"id: void-order
capability: tool selection with overlapping catalogs
tier: hard
messages:
- role: system
  content: You are the payments agent. Look orders up before acting on them.
- role: user
  content: "{{{{ question }}}}"
tools:
- type: function
  function:
    name: get_order
    description: Fetch one order with its payment state.
    parameters: {{type: object, properties: {{order_id: {{type: string}}}}, required: [order_id]}}
- type: function
  function:
    name: refund_payment
    description: Refund a captured payment.
    parameters: {{type: object, properties: {{order_id: {{type: string}}}}, required: [order_id]}}
- type: function
  function:
    name: void_authorization
    description: Void an authorization that was not captured.
    parameters: {{type: object, properties: {{order_id: {{type: string}}}}, required: [order_id]}}
slots:
  question: Please stop order B-20931 and release the hold on my card.
checks:
- tool_call:
    name: void_authorization
    arguments:
      order_id: B-20931
- no_tool_call: refund_payment
episode:
  tools:
    get_order:
      recorded:
      - arguments: {{order_id: B-20931}}
        result: '{{"order_id": "B-20931", "payment_state": "authorized"}}'
    void_authorization:
      mutating: true
      static: '{{"status": "voided"}}'
    refund_payment:
      mutating: true
      static: '{{"status": "queued"}}'
  on_miss: {on_miss}
  budget: {budget}
axes:
- persona
- phrasing
"#
    )
}

const ARGS: [&str; 2] = ["--strategy", "sample:3"];

/// The step of an agent request: the assistant turns it already holds.
fn step(req: &Value) -> usize {
    req["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["role"] == "assistant").count())
        .unwrap_or(0)
}

fn project_with(server: &TestServer, provider: &str, probe_text: &str) -> Project {
    let url = if provider == "openai" {
        format!("{}/v1", server.url())
    } else {
        server.url()
    };
    let p = Project::new(&model(
        "agent",
        provider,
        &url,
        "timeout = 5\nmax_retries = 0",
    ));
    p.write("probes/void-order.yaml", probe_text);
    p
}

/// An OpenAI agent that looks the order up, then (in parallel) voids it (refunds it, when the
/// model id starts with `bad`) and looks it up again, then answers; it checks that each result
/// came back as a `tool` message answering its call.
fn look_up_then_act_openai() -> TestServer {
    TestServer::start(|req, _| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("?").to_string();
        let messages = body["messages"].as_array().unwrap();
        match step(body) {
            0 => Reply::json(
                200,
                openai_tool_calls(
                    &model,
                    &[("c1", "get_order", json!({"order_id": "B-20931"}))],
                ),
            ),
            1 => {
                let last = messages.last().unwrap();
                assert_eq!(last["role"], "tool");
                assert_eq!(last["tool_call_id"], "c1");
                assert!(last["content"].as_str().unwrap().contains("authorized"));
                Reply::json(
                    200,
                    openai_tool_calls(
                        &model,
                        &[
                            (
                                "c2",
                                if model.starts_with("bad") {
                                    "refund_payment"
                                } else {
                                    "void_authorization"
                                },
                                json!({"order_id": "B-20931"}),
                            ),
                            ("c3", "get_order", json!({"order_id": " B-20931 "})),
                        ],
                    ),
                )
            }
            _ => Reply::json(
                200,
                openai_completion(&model, "The hold on B-20931 is released."),
            ),
        }
    })
}

#[test]
fn an_agent_that_looks_up_then_acts_passes_and_a_rerun_is_free() {
    let server = look_up_then_act_openai();
    let url = format!("{}/v1", server.url());
    let extra = "timeout = 5\nmax_retries = 0";
    let p = Project::new(
        &(model("good", "openai", &url, extra) + &model("bad", "openai", &url, extra)),
    );
    p.write(
        "probes/void-order.yaml",
        &probe("{error: no such tool}", "{max_turns: 5}"),
    );
    let planned = p.planned(&ARGS);
    assert_eq!(planned, 6);
    let out = p.sweep(&ARGS, &env()).success();
    assert_eq!(out.summary_count("good", "pass"), 3, "{}", out.stdout);
    assert_eq!(out.summary_count("bad", "fail"), 3, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("model calls: good 9 (3 episodes), bad 9 (3 episodes)"),
        "{}",
        out.stdout
    );
    assert_eq!(server.request_count(), 18, "three model calls per episode");

    // The third call of an episode carries both parallel calls and both results, in order.
    let third = server
        .requests()
        .into_iter()
        .find(|r| step(r.json()) == 2 && r.json()["model"] == "good-2024-01-01")
        .unwrap();
    let messages = third.json()["messages"].as_array().unwrap().clone();
    let n = messages.len();
    assert_eq!(messages[n - 3]["role"], "assistant");
    let ids: Vec<&str> = messages[n - 3]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c2", "c3"]);
    assert_eq!(messages[n - 2]["tool_call_id"], "c2");
    assert_eq!(messages[n - 2]["content"], "{\"status\": \"voided\"}");
    assert_eq!(messages[n - 1]["tool_call_id"], "c3");
    assert!(
        messages[n - 1]["content"]
            .as_str()
            .unwrap()
            .contains("authorized"),
        "normalised arguments match the recording: {}",
        messages[n - 1]
    );

    let rows = p.export(None);
    assert_eq!(rows.len(), 6);
    for r in rows.iter().filter(|r| r["model"] == "good") {
        assert_eq!(r["status"], "pass", "{r}");
        assert_eq!(r["stop_reason"], "answered");
        assert_eq!(r["output"], "The hold on B-20931 is released.");
        let steps = r["trajectory"].as_array().unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[1]["results"][0]["source"], "static");
        assert_eq!(steps[1]["results"][0]["mutating"], true);
        assert_eq!(steps[1]["results"][1]["source"], "recorded");
        assert_eq!(r["tool_calls"].as_array().unwrap().len(), 3);
        // Tokens sum over the steps: 20 + 20 + 11 in, 9 + 9 + 7 out.
        assert_eq!(r["input_tokens"], 51);
        assert_eq!(r["output_tokens"], 25);
    }

    for r in rows.iter().filter(|r| r["model"] == "bad") {
        assert_eq!(r["status"], "fail", "{r}");
        let v = &r["checks"][1];
        assert_eq!(v["check"], "no_tool_call");
        assert!(
            v["reason"].as_str().unwrap().contains("refund_payment"),
            "{v}"
        );
    }

    // A second sweep replays every step from the cache: no HTTP at all.
    let again = p.sweep(&ARGS, &env()).success();
    assert_eq!(server.request_count(), 18, "{}", again.stdout);
    assert_eq!(again.summary_count("good", "pass"), 3);
    assert_eq!(again.summary_count("good", "cached"), 3);
    assert!(
        again
            .stdout
            .contains("model calls: good 0 (3 episodes), bad 0 (3 episodes)"),
        "{}",
        again.stdout
    );
    let rows = p.export(None);
    assert!(rows.iter().all(|r| r["cached"] == true));

    // The report shows a regression's trajectory compactly; the HTML report in full.
    let report = p.run(&["report", "--baseline", "good"], &[]).success();
    assert!(
        report.stdout.contains(
            "trajectory: get_order(B-20931) → refund_payment!(B-20931) → get_order(B-20931) → \"The hold on B-20931 is released.\" [answered]"
        ),
        "{}",
        report.stdout
    );
    let html = p
        .run(&["report", "--baseline", "good", "--format", "html"], &[])
        .success();
    assert!(html.stdout.contains("[step 3]"), "{}", html.stdout);
    assert!(
        html.stdout
            .contains("result (static): {&quot;status&quot;: &quot;queued&quot;}"),
        "{}",
        html.stdout
    );
}

#[test]
fn an_agent_that_loops_for_ever_fails_on_the_budget() {
    let server = TestServer::start(|req, _| {
        let model = req.json()["model"].as_str().unwrap_or("?").to_string();
        Reply::json(
            200,
            openai_tool_calls(
                &model,
                &[("c", "get_order", json!({"order_id": "B-20931"}))],
            ),
        )
    });
    let p = project_with(&server, "openai", &probe("off-script", "{max_turns: 4}"));
    let out = p.sweep(&ARGS, &env()).success();
    assert_eq!(out.summary_count("agent", "fail"), 3, "{}", out.stdout);
    assert_eq!(out.summary_count("agent", "error"), 0);
    assert_eq!(
        server.request_count(),
        12,
        "stopped after max_turns = 4 calls each"
    );
    for r in p.export(None) {
        assert_eq!(r["stop_reason"], "budget", "{r}");
        let budget = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "budget")
            .unwrap_or_else(|| panic!("no budget verdict: {r}"));
        assert_eq!(budget["passed"], false);
        assert!(
            budget["reason"]
                .as_str()
                .unwrap()
                .starts_with("budget: 4 model calls"),
            "{budget}"
        );
        assert_eq!(r["trajectory"].as_array().unwrap().len(), 4);
    }
}

/// An agent that first calls a tool nobody offered, then gives up in text.
fn unknown_tool_agent() -> TestServer {
    TestServer::start(|req, _| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("?").to_string();
        if step(body) == 0 {
            Reply::json(
                200,
                openai_tool_calls(&model, &[("c1", "cancel_everything", json!({}))]),
            )
        } else {
            let last = body["messages"].as_array().unwrap().last().unwrap().clone();
            Reply::json(
                200,
                openai_completion(
                    &model,
                    &format!("The tool said: {}", last["content"].as_str().unwrap()),
                ),
            )
        }
    })
}

#[test]
fn an_unknown_tool_gets_the_on_miss_answer_or_stops_off_script() {
    let server = unknown_tool_agent();
    let p = project_with(
        &server,
        "openai",
        &probe("{error: 'no such tool here'}", "{max_turns: 4}"),
    );
    let out = p.sweep(&ARGS, &env()).success();
    assert_eq!(out.summary_count("agent", "fail"), 3, "{}", out.stdout);
    for r in p.export(None) {
        assert_eq!(r["stop_reason"], "answered");
        assert_eq!(r["output"], "The tool said: no such tool here");
        assert_eq!(r["trajectory"][0]["results"][0]["source"], "miss");
    }
    assert_eq!(server.request_count(), 6);

    let server = unknown_tool_agent();
    let p = project_with(&server, "openai", &probe("off-script", "{max_turns: 4}"));
    let out = p.sweep(&ARGS, &env()).success();
    assert_eq!(out.summary_count("agent", "fail"), 3, "{}", out.stdout);
    assert_eq!(
        out.summary_count("agent", "error"),
        0,
        "off-script is a fail"
    );
    assert_eq!(server.request_count(), 3, "the episode stops at the call");
    for r in p.export(None) {
        assert_eq!(r["stop_reason"], "off-script");
        let v = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "off-script")
            .unwrap()
            .clone();
        assert!(
            v["reason"].as_str().unwrap().contains("cancel_everything"),
            "{v}"
        );
    }
}

#[test]
fn a_provider_error_on_step_two_is_an_error_never_a_fail() {
    let server = TestServer::start(|req, _| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("?").to_string();
        if step(body) == 0 {
            Reply::json(
                200,
                openai_tool_calls(
                    &model,
                    &[("c1", "get_order", json!({"order_id": "B-20931"}))],
                ),
            )
        } else {
            Reply::json(
                400,
                openai_error("messages: malformed tool turn", "invalid_request_error"),
            )
        }
    });
    let p = project_with(&server, "openai", &probe("off-script", "{max_turns: 4}"));
    // Every case an error: the sweep says so and exits 1 (nothing could be graded).
    let out = p.sweep(&ARGS, &env()).exits(1);
    assert!(out.stderr.contains("step 2: HTTP 400"), "{}", out.stderr);
    assert_eq!(out.summary_count("agent", "error"), 3, "{}", out.stdout);
    assert_eq!(out.summary_count("agent", "fail"), 0);
    for r in p.export(None) {
        assert_eq!(r["status"], "error");
        assert_eq!(r["stop_reason"], "error");
        let e = r["error"].as_str().unwrap();
        assert!(
            e.starts_with("step 2: ") && e.contains("malformed tool turn"),
            "{e}"
        );
        assert_eq!(r["trajectory"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn anthropic_agents_get_tool_results_as_blocks() {
    let server = TestServer::start(|req, _| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("?").to_string();
        let messages = body["messages"].as_array().unwrap();
        match step(body) {
            0 => Reply::json(
                200,
                anthropic_message(
                    &model,
                    vec![
                        json!({"type": "text", "text": "Let me check."}),
                        json!({"type": "tool_use", "id": "toolu_1", "name": "get_order", "input": {"order_id": "B-20931"}}),
                        json!({"type": "tool_use", "id": "toolu_2", "name": "get_order", "input": {"order_id": "B-1"}}),
                    ],
                    "tool_use",
                ),
            ),
            1 => {
                let assistant = &messages[messages.len() - 2];
                assert_eq!(assistant["role"], "assistant");
                let uses: Vec<&Value> = assistant["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|b| b["type"] == "tool_use")
                    .collect();
                assert_eq!(uses.len(), 2);
                let results = messages.last().unwrap();
                assert_eq!(results["role"], "user");
                let blocks = results["content"].as_array().unwrap();
                assert_eq!(blocks.len(), 2);
                assert_eq!(blocks[0]["type"], "tool_result");
                assert_eq!(blocks[0]["tool_use_id"], "toolu_1");
                assert!(blocks[0]["content"].to_string().contains("authorized"));
                assert_eq!(blocks[1]["tool_use_id"], "toolu_2");
                assert!(blocks[1]["content"].to_string().contains("not found"));
                Reply::json(
                    200,
                    anthropic_message(
                        &model,
                        vec![
                            json!({"type": "tool_use", "id": "toolu_3", "name": "void_authorization", "input": {"order_id": "B-20931"}}),
                        ],
                        "tool_use",
                    ),
                )
            }
            2 => Reply::json(
                200,
                anthropic_message(
                    &model,
                    vec![json!({"type": "text", "text": "Voided."})],
                    "end_turn",
                ),
            ),
            _ => Reply::json(500, anthropic_error("api_error", "too many steps")),
        }
    });
    let p = project_with(
        &server,
        "anthropic",
        &probe("{error: 'order not found'}", "{max_turns: 5}"),
    );
    let out = p.sweep(&ARGS, &env()).success();
    assert_eq!(out.summary_count("agent", "pass"), 3, "{}", out.stdout);
    assert_eq!(server.request_count(), 9);
    for r in server.requests() {
        assert_eq!(r.path, "/v1/messages");
    }
    for r in p.export(None) {
        assert_eq!(r["stop_reason"], "answered");
        assert_eq!(r["trajectory"][0]["text"], "Let me check.");
        assert_eq!(r["tool_calls"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn a_sweep_killed_mid_episode_resumes_to_one_result_per_case() {
    let server = TestServer::start(|req, _| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("?").to_string();
        let reply = match step(body) {
            0 => openai_tool_calls(
                &model,
                &[("c1", "get_order", json!({"order_id": "B-20931"}))],
            ),
            1 => openai_tool_calls(
                &model,
                &[("c2", "void_authorization", json!({"order_id": "B-20931"}))],
            ),
            _ => openai_completion(&model, "Done."),
        };
        Reply::json(200, reply).after(Duration::from_millis(40))
    });
    let p = project_with(&server, "openai", &probe("off-script", "{max_turns: 5}"));
    let args = ["--strategy", "full", "--repeats", "2", "--concurrency", "4"];
    let planned = p.planned(&args);
    assert!(planned >= 40, "{planned}");
    let mut child = p
        .std_cmd()
        .args(["sweep", "-q"])
        .args(args)
        .env("TEST_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Kill once episodes are under way (some but not all steps made).
    while server.request_count() < 20 {
        assert!(Instant::now() < deadline, "the sweep made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = server.request_count();
    assert!((before as u64) < planned * 3, "killed mid-sweep");

    p.sweep(&["--resume"], &env()).success();
    let rows = p.export(None);
    assert_eq!(rows.len() as u64, planned);
    let keys: BTreeSet<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["variant"].as_str().unwrap().to_string(),
                r["sample"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys.len() as u64, planned, "exactly one result per case");
    assert_eq!(count(&rows, "agent", "pass") as u64, planned);
    for r in &rows {
        assert_eq!(r["trajectory"].as_array().unwrap().len(), 3, "{r}");
    }
    // Steps finished before the kill were replayed from the cache: the whole sweep made
    // fewer requests than one per step of every case plus the in-flight ones re-asked.
    assert!(server.request_count() as u64 <= planned * 3 + 8);
}

/// A refund agent's incident, as recorded: a search, a look-up of the wrong order, then a
/// refund of it (the bad output). As native YAML.
const MULTI_STEP_NATIVE: &str = r#"title: Billing agent refunded the wrong order after a search
capability: multi-step tool use
conversation:
  - role: system
    content: You are the billing agent. Look orders up before acting; refund only captured payments.
  - role: user
    content: Order C-5512 arrived broken, please refund it.
  - role: assistant
    content: Let me look that up.
    tool_calls:
      - {id: call_1, type: function, function: {name: search_orders, arguments: '{"query": "C-5512"}'}}
  - role: tool
    tool_call_id: call_1
    content: '[{"order_id": "C-5512", "payment": "captured", "total": 42.5}, {"order_id": "C-5521", "payment": "authorized", "total": 19.0}]'
  - role: assistant
    tool_calls:
      - {id: call_2, type: function, function: {name: get_order, arguments: '{"order_id": "C-5521"}'}}
  - role: tool
    tool_call_id: call_2
    content: '{"order_id": "C-5521", "payment": "authorized", "total": 19.0}'
tools:
  - {type: function, function: {name: search_orders, parameters: {type: object, properties: {query: {type: string}}}}}
  - {type: function, function: {name: get_order, parameters: {type: object, properties: {order_id: {type: string}}}}}
  - {type: function, function: {name: refund_payment, parameters: {type: object, properties: {order_id: {type: string}}}}}
bad_output:
  tool_calls:
    - {id: call_3, type: function, function: {name: refund_payment, arguments: '{"order_id": "C-5521"}'}}
expected:
  - tool_call: {name: refund_payment, arguments: {order_id: C-5512}}
"#;

fn templatize(
    p: &Project,
    file: &str,
    text: &str,
    extra: &[&str],
) -> crate::support::project::Outcome {
    p.write(file, text);
    let mut args = vec![
        "templatize",
        file,
        "--suite",
        "probes",
        "--capability",
        "multi-step tool use",
    ];
    args.extend_from_slice(extra);
    p.run(&args, &[])
}

fn written(p: &Project) -> cliffprobe::probe::Probe {
    let files = cliffprobe::probe::discover(&[p.root().join("probes")]).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    cliffprobe::probe::Probe::load(&files[0]).unwrap()
}

#[test]
fn templatize_makes_episodes_of_multi_step_incidents_in_every_format() {
    // Native YAML.
    let p = Project::new("");
    let out = templatize(&p, "native.yaml", MULTI_STEP_NATIVE, &[]).success();
    assert!(out.stdout.contains("episode"), "{}", out.stdout);
    let probe = written(&p);
    let e = probe.episode.as_ref().expect("an episode");
    assert_eq!(
        probe.messages.len(),
        2,
        "the episode starts at the question"
    );
    assert_eq!(e.tools["get_order"].recorded.len(), 1);
    assert!(
        e.tools["get_order"].records.is_some(),
        "look-ups over the listed records"
    );
    assert!(e.tools["refund_payment"].mutating);
    assert_eq!(
        probe.source.bad_output.as_deref(),
        Some("search_orders(C-5512) → get_order(C-5521) → refund_payment(C-5521)")
    );

    // The same incident as a captured OpenAI request + response.
    let openai = json!({
        "request": {
            "model": "gpt-4.1",
            "messages": [
                {"role": "system", "content": "You are the billing agent."},
                {"role": "user", "content": "Order C-5512 arrived broken, please refund it."},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "search_orders", "arguments": "{\"query\": \"C-5512\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "[{\"order_id\": \"C-5512\", \"payment\": \"captured\"}, {\"order_id\": \"C-5521\", \"payment\": \"authorized\"}]"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_2", "type": "function", "function": {"name": "get_order", "arguments": "{\"order_id\": \"C-5521\"}"}},
                    {"id": "call_2b", "type": "function", "function": {"name": "get_order", "arguments": "{\"order_id\": \"C-5512\"}"}}]},
                {"role": "tool", "tool_call_id": "call_2", "content": "{\"order_id\": \"C-5521\", \"payment\": \"authorized\"}"},
                {"role": "tool", "tool_call_id": "call_2b", "content": "{\"order_id\": \"C-5512\", \"payment\": \"captured\"}"}
            ],
            "tools": [
                {"type": "function", "function": {"name": "search_orders", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "get_order", "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "refund_payment", "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}}
            ]
        },
        "response": {"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_3", "type": "function", "function": {"name": "refund_payment", "arguments": "{\"order_id\": \"C-5521\"}"}}]},
            "finish_reason": "tool_calls"}]}
    });
    let p = Project::new("");
    templatize(
        &p,
        "openai.json",
        &openai.to_string(),
        &[
            "--expect",
            "tool_call={name: refund_payment, arguments: {order_id: C-5512}}",
        ],
    )
    .success();
    let probe = written(&p);
    let e = probe.episode.as_ref().expect("an episode");
    assert_eq!(
        e.tools["get_order"].recorded.len(),
        2,
        "parallel results, matched by id"
    );
    assert_eq!(probe.messages.len(), 2);

    // As a captured Anthropic request (tool_use / tool_result rounds) + response.
    let anthropic = json!({
        "request": {
            "model": "claude-x",
            "system": "You are the billing agent.",
            "max_tokens": 512,
            "messages": [
                {"role": "user", "content": "Order C-5512 arrived broken, please refund it."},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "search_orders", "input": {"query": "C-5512"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "[{\"order_id\": \"C-5512\", \"payment\": \"captured\"}, {\"order_id\": \"C-5521\", \"payment\": \"authorized\"}]"}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_2", "name": "get_order", "input": {"order_id": "C-5521"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_2", "content": [{"type": "text", "text": "{\"order_id\": \"C-5521\", \"payment\": \"authorized\"}"}]}]}
            ],
            "tools": [
                {"name": "search_orders", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}},
                {"name": "get_order", "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}}},
                {"name": "refund_payment", "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}}}
            ]
        },
        "response": {"type": "message", "role": "assistant", "stop_reason": "tool_use", "content": [
            {"type": "tool_use", "id": "tu_3", "name": "refund_payment", "input": {"order_id": "C-5521"}}]}
    });
    let p = Project::new("");
    templatize(
        &p,
        "anthropic.json",
        &anthropic.to_string(),
        &[
            "--expect",
            "no_tool_call={name: refund_payment, arguments: {order_id: C-5521}}",
        ],
    )
    .success();
    let probe = written(&p);
    let e = probe.episode.as_ref().expect("an episode");
    assert_eq!(
        e.tools["get_order"].recorded[0].result,
        "{\"order_id\": \"C-5521\", \"payment\": \"authorized\"}"
    );
    assert_eq!(e.tools["search_orders"].recorded.len(), 1);
    assert_eq!(
        probe.messages.last().unwrap().content.as_deref(),
        Some("{{ question }}")
    );
}

#[test]
fn templatize_refuses_checks_the_recorded_trajectory_passes_and_honours_the_flags() {
    // `tool_call` matches any call of the episode: get_order was called, so this passes the
    // bad trajectory and is refused.
    let p = Project::new("");
    let out = templatize(
        &p,
        "native.yaml",
        &MULTI_STEP_NATIVE.replace(
            "  - tool_call: {name: refund_payment, arguments: {order_id: C-5512}}",
            "  - tool_call: {name: get_order}",
        ),
        &[],
    )
    .exits(2);
    assert!(
        out.stderr.contains("PASS the recorded trajectory"),
        "{}",
        out.stderr
    );
    // A trajectory check that catches it is accepted.
    let p = Project::new("");
    templatize(
        &p,
        "native.yaml",
        &MULTI_STEP_NATIVE.replace(
            "  - tool_call: {name: refund_payment, arguments: {order_id: C-5512}}",
            "  - tool_sequence: [get_order, refund_payment]\n  - max_tool_calls: 2",
        ),
        &[],
    )
    .success();

    // --no-episode freezes the recorded turns into the prompt, as before.
    let p = Project::new("");
    templatize(&p, "native.yaml", MULTI_STEP_NATIVE, &["--no-episode"]).success();
    let probe = written(&p);
    assert!(probe.episode.is_none());
    assert_eq!(probe.messages.len(), 6);

    // One look-up and a wrong final answer: single-turn by default, an episode with --episode.
    let start = MULTI_STEP_NATIVE
        .find("  - role: assistant\n    tool_calls:\n      - {id: call_2")
        .unwrap();
    let end = MULTI_STEP_NATIVE.find("tools:\n").unwrap();
    let incident = format!(
        "{}{}",
        &MULTI_STEP_NATIVE[..start],
        &MULTI_STEP_NATIVE[end..]
    )
    .replace(
        "bad_output:\n  tool_calls:\n    - {id: call_3, type: function, function: {name: refund_payment, arguments: '{\"order_id\": \"C-5521\"}'}}\n",
        "bad_output: I have refunded order C-5521.\n",
    )
    .replace(
        "  - tool_call: {name: refund_payment, arguments: {order_id: C-5512}}",
        "  - contains: C-5512",
    );
    assert!(
        incident.contains("bad_output: I have refunded"),
        "{incident}"
    );
    let p = Project::new("");
    templatize(&p, "one.yaml", &incident, &[]).success();
    assert!(written(&p).episode.is_none());
    let p = Project::new("");
    templatize(&p, "one.yaml", &incident, &["--episode"]).success();
    let probe = written(&p);
    let e = probe.episode.as_ref().expect("--episode");
    assert!(e.tools["refund_payment"].mutating);
    assert_eq!(
        e.tools["refund_payment"].static_result.as_deref(),
        Some(r#"{"status": "ok"}"#)
    );
    assert_eq!(e.tools["search_orders"].recorded.len(), 1);

    // --episode and --no-episode together are refused.
    let p = Project::new("");
    templatize(&p, "one.yaml", &incident, &["--episode", "--no-episode"]).exits(2);
}

/// An agent endpoint with a planted fault: it refunds instead of voiding when the look-up's
/// result reached it as XML. Verdicts follow what it did, and brittleness puts the failures on
/// `format=xml` and on nothing in persona or phrasing (the simulator gives every voice the same
/// results).
#[test]
fn a_planted_format_fault_is_attributed_to_the_format_axis_only() {
    let server = TestServer::start(|req, _| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("?").to_string();
        let messages = body["messages"].as_array().unwrap();
        match step(body) {
            0 => Reply::json(
                200,
                openai_tool_calls(
                    &model,
                    &[("c1", "get_order", json!({"order_id": "B-20931"}))],
                ),
            ),
            1 => {
                let result = messages.last().unwrap()["content"].as_str().unwrap_or("");
                let tool = if result.trim_start().starts_with('<') {
                    "refund_payment"
                } else {
                    "void_authorization"
                };
                Reply::json(
                    200,
                    openai_tool_calls(&model, &[("c2", tool, json!({"order_id": "B-20931"}))]),
                )
            }
            _ => Reply::json(200, openai_completion(&model, "Done.")),
        }
    });
    let text = probe("off-script", "{max_turns: 5}").replace(
        "axes:\n- persona\n- phrasing\n",
        "axes:\n- persona\n- phrasing\n- format\n",
    );
    let p = project_with(&server, "openai", &text);
    let args = [
        "--strategy",
        "full",
        "--axes",
        "persona=terse-expert|manager-in-a-hurry,phrasing=conditional|scoped-request,format=xml|csv|yaml",
    ];
    let planned = p.planned(&args);
    assert_eq!(planned, 3 * 3 * 4);
    p.sweep(&args, &env()).success();
    let rows = p.export(None);
    for r in &rows {
        let xml = r["axes"]["format"] == "xml";
        assert_eq!(r["status"], if xml { "fail" } else { "pass" }, "{r}");
        let calls: Vec<&str> = r["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            calls[1],
            if xml {
                "refund_payment"
            } else {
                "void_authorization"
            }
        );
    }
    let out = p.run(&["brittleness", "--format", "json"], &[]).success();
    let b: Value = serde_json::from_str(&out.stdout).unwrap();
    let axes = &b["results"][0]["axes"];
    assert_eq!(axes["format"]["xml"]["pass_rate"], 0.0, "{axes}");
    assert_eq!(axes["format"]["xml"]["significant"], true, "{axes}");
    for axis in ["persona", "phrasing"] {
        for (value, v) in axes[axis].as_object().unwrap() {
            assert_eq!(v["significant"], false, "{axis}={value}: {v}");
        }
    }
}

/// A `judge` check of an episode sees the whole trajectory: every step's calls and results,
/// then the final answer.
#[test]
fn the_judge_reads_the_whole_trajectory() {
    let judged = TestServer::start(|req, _| {
        let body = req.json();
        let user = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .unwrap()["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let ok = user.contains("[step 1]")
            && user.contains("call get_order(")
            && user.contains("result (recorded)")
            && user.contains("[final answer]");
        let verdict = if ok {
            json!({"verdict": "pass", "reason": "saw the trajectory"})
        } else {
            json!({"verdict": "fail", "reason": "no trajectory in the answer section"})
        };
        Reply::json(200, openai_completion("judge", &verdict.to_string()))
    });
    let agent = look_up_then_act_openai();
    let extra = "timeout = 5\nmax_retries = 0";
    let models = model("good", "openai", &format!("{}/v1", agent.url()), extra)
        + &model("judge", "openai", &format!("{}/v1", judged.url()), extra)
        + "[judge]\nmodel = \"judge\"\n";
    let p = Project::new(&models);
    p.write(
        "probes/void-order.yaml",
        &probe("{error: no such tool}", "{max_turns: 5}").replace(
            "- no_tool_call: refund_payment\n",
            "- no_tool_call: refund_payment\n- judge: {rubric: Looks the order up before voiding it.}\n",
        ),
    );
    let out = p.sweep(&ARGS, &env()).success();
    assert_eq!(out.summary_count("good", "pass"), 3, "{}", out.stdout);
    assert_eq!(judged.request_count(), 3);
    for r in p.export(None) {
        let j = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "judge")
            .unwrap()
            .clone();
        assert_eq!(j["reason"], "saw the trajectory", "{r}");
    }
}

/// A support agent's incident as a captured OpenAI request alone: it found the customer, read
/// their subscriptions, then cancelled the active one (its result recorded) instead of the old
/// one the customer named.
const CANCEL_CAPTURE: &str = r#"{"model": "gpt-4o-2024-08-06",
 "messages": [
  {"role": "system", "content": "You are the support agent. Look the customer up, read their subscriptions, then act."},
  {"role": "user", "content": "Please cancel my old subscription SUB-1022, keep the other one. I am jane.doe@example.com."},
  {"role": "assistant", "content": null, "tool_calls": [{"id": "a1", "type": "function", "function": {"name": "find_customer", "arguments": "{\"email\": \"jane.doe@example.com\"}"}}]},
  {"role": "tool", "tool_call_id": "a1", "content": "{\"customer_id\": \"C-88213\", \"email\": \"jane.doe@example.com\"}"},
  {"role": "assistant", "content": null, "tool_calls": [{"id": "a2", "type": "function", "function": {"name": "get_subscriptions", "arguments": "{\"customer_id\": \"C-88213\"}"}}]},
  {"role": "tool", "tool_call_id": "a2", "content": "[{\"subscription_id\": \"SUB-4471\", \"state\": \"active\"}, {\"subscription_id\": \"SUB-1022\", \"state\": \"old\"}]"},
  {"role": "assistant", "content": null, "tool_calls": [{"id": "a3", "type": "function", "function": {"name": "cancel_subscription", "arguments": "{\"subscription_id\": \"SUB-4471\"}"}}]},
  {"role": "tool", "tool_call_id": "a3", "content": "{\"status\": \"cancelled\", \"subscription_id\": \"SUB-4471\"}"},
  {"role": "assistant", "content": "Done, SUB-4471 is cancelled."}
 ],
 "tools": [
  {"type": "function", "function": {"name": "find_customer", "parameters": {"type": "object", "properties": {"email": {"type": "string"}}}}},
  {"type": "function", "function": {"name": "get_subscriptions", "parameters": {"type": "object", "properties": {"customer_id": {"type": "string"}}}}},
  {"type": "function", "function": {"name": "cancel_subscription", "parameters": {"type": "object", "properties": {"subscription_id": {"type": "string"}}}}}
 ]}"#;

#[test]
fn an_acting_call_the_incident_never_saw_is_acknowledged_even_when_the_tool_has_recorded_results() {
    let p = Project::new("");
    templatize(
        &p,
        "cancel.json",
        CANCEL_CAPTURE,
        &[
            "--expect",
            "tool_call={name: cancel_subscription, arguments: {subscription_id: SUB-1022}}",
            "--expect",
            "no_tool_call={name: cancel_subscription, arguments: {subscription_id: SUB-4471}}",
        ],
    )
    .success();
    let probe = written(&p);
    let e = probe.episode.as_ref().expect("an episode");
    assert_eq!(e.tools["cancel_subscription"].recorded.len(), 1);

    // A careful agent: looks up, reads, cancels the subscription the customer named, and
    // answers with what the tool said.
    let server = TestServer::start(|req, _| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("?").to_string();
        let last = body["messages"].as_array().unwrap().last().unwrap().clone();
        let call = |id: &str, name: &str, args: Value| {
            Reply::json(200, openai_tool_calls(&model, &[(id, name, args)]))
        };
        match step(body) {
            0 => call(
                "c1",
                "find_customer",
                json!({"email": "jane.doe@example.com"}),
            ),
            1 => call("c2", "get_subscriptions", json!({"customer_id": "C-88213"})),
            2 => call(
                "c3",
                "cancel_subscription",
                json!({"subscription_id": "SUB-1022"}),
            ),
            _ => Reply::json(
                200,
                openai_completion(
                    &model,
                    &format!("The tool said: {}", last["content"].as_str().unwrap()),
                ),
            ),
        }
    });
    p.write_config(&model(
        "agent",
        "openai",
        &format!("{}/v1", server.url()),
        "timeout = 5\nmax_retries = 0",
    ));
    let out = p.sweep(&ARGS, &env()).success();
    assert_eq!(out.summary_count("agent", "pass"), 3, "{}", out.stdout);
    for r in p.export(None) {
        assert_eq!(r["stop_reason"], "answered", "{r}");
        let act = &r["trajectory"][2]["results"][0];
        assert_eq!(act["tool"], "cancel_subscription");
        assert_eq!(
            act["source"], "static",
            "a new acting call is acknowledged, not told it missed: {act}"
        );
        assert!(act["content"].as_str().unwrap().contains("ok"), "{act}");
        assert!(!r["output"].as_str().unwrap().contains("not found"), "{r}");
    }
}

#[test]
fn the_length_axis_never_grows_an_acknowledgement_into_copies_of_itself() {
    let p = Project::new("");
    templatize(
        &p,
        "cancel.json",
        CANCEL_CAPTURE,
        &[
            "--expect",
            "tool_call={name: cancel_subscription, arguments: {subscription_id: SUB-1022}}",
            "--expect",
            "no_tool_call={name: cancel_subscription, arguments: {subscription_id: SUB-4471}}",
        ],
    )
    .success();
    // Acts at once, then answers.
    let server = TestServer::start(|req, _| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("?").to_string();
        if step(body) == 0 {
            Reply::json(
                200,
                openai_tool_calls(
                    &model,
                    &[(
                        "c1",
                        "cancel_subscription",
                        json!({"subscription_id": "SUB-1022"}),
                    )],
                ),
            )
        } else {
            Reply::json(200, openai_completion(&model, "Cancelled."))
        }
    });
    p.write_config(&model(
        "agent",
        "openai",
        &format!("{}/v1", server.url()),
        "timeout = 5\nmax_retries = 0",
    ));
    p.sweep(&["--strategy", "one-at-a-time", "--axes", "length"], &env())
        .success();
    let rows = p.export(None);
    assert!(
        rows.iter().any(|r| r["axes"]["length"] == "32k-middle"),
        "the length axis was swept"
    );
    for r in rows {
        let ack = r["trajectory"][0]["results"][0]["content"]
            .as_str()
            .unwrap();
        assert_eq!(
            ack.matches("ok").count(),
            1,
            "{}: the acknowledgement, not {} bytes of copies",
            r["axes"],
            ack.len()
        );
    }
}
