//! `cliffprobe replay`, end to end: the real binary against the scripted local server, on
//! OpenAI JSONL, Anthropic JSONL and OTLP JSON logs whose flips are known exactly. Each test
//! checks the counts, the classes, the transitions and the contested list against the truth
//! computed here; and malformed records reported with their place, kill -9 + resume (one
//! stored result per record), a cached re-run that makes no HTTP call, errors kept apart from
//! flips, the judge's split, the noise floor, and incidents that `templatize` takes.

use crate::support::http_server;
use crate::support::project;

use http_server::{Reply, TestServer, anthropic_text, openai_completion, openai_tool_calls};
use project::{Project, model};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const KEY: &str = "replay-key";
const CLASSES: [&str; 3] = ["refunds", "billing", "shipping"];

fn env() -> [(&'static str, &'static str); 1] {
    [("TEST_KEY", KEY)]
}

/// The ticket number a request is about (`ticket T17`), read from its body.
fn ticket(body: &str) -> Option<u64> {
    let i = body.find("ticket T")? + "ticket T".len();
    body[i..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// What the logged model decided for ticket `i`.
fn logged_decision(i: u64) -> &'static str {
    if i.is_multiple_of(2) {
        "approve"
    } else {
        "deny"
    }
}

/// What the candidate decides for ticket `i`: it flips every ticket divisible by 3 or 7.
fn candidate_decision(i: u64) -> &'static str {
    let d = logged_decision(i);
    if i.is_multiple_of(3) || i.is_multiple_of(7) {
        if d == "approve" { "deny" } else { "approve" }
    } else {
        d
    }
}

fn class_of(i: u64) -> &'static str {
    CLASSES[(i % 3) as usize]
}

/// The truth for tickets `ids`: per class (replayed, flipped), transitions, flipped ids.
struct Truth {
    by_class: BTreeMap<String, (u64, u64)>,
    transitions: BTreeMap<(String, String), u64>,
    flipped: Vec<String>,
}

fn truth(ids: impl IntoIterator<Item = u64>, class: impl Fn(u64) -> String) -> Truth {
    let mut t = Truth {
        by_class: BTreeMap::new(),
        transitions: BTreeMap::new(),
        flipped: Vec::new(),
    };
    for i in ids {
        let e = t.by_class.entry(class(i)).or_default();
        e.0 += 1;
        let (a, b) = (logged_decision(i), candidate_decision(i));
        if a != b {
            e.1 += 1;
            *t.transitions.entry((a.into(), b.into())).or_default() += 1;
            t.flipped.push(format!("rec-{i}"));
        }
    }
    t
}

/// Checks a JSON report against the truth.
#[track_caller]
fn assert_report(report: &Value, t: &Truth) {
    let flipped: u64 = t.by_class.values().map(|v| v.1).sum();
    let replayed: u64 = t.by_class.values().map(|v| v.0).sum();
    assert_eq!(report["replayed"], replayed, "{report:#}");
    assert_eq!(report["flipped"], flipped, "{report:#}");
    let by_class: BTreeMap<String, (u64, u64)> = report["by_class"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["replayed"].as_u64().unwrap() > 0)
        .map(|c| {
            (
                c["class"].as_str().unwrap().to_string(),
                (
                    c["replayed"].as_u64().unwrap(),
                    c["flipped"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(by_class, t.by_class);
    let transitions: BTreeMap<(String, String), u64> = report["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                (
                    x["from"].as_str().unwrap().to_string(),
                    x["to"].as_str().unwrap().to_string(),
                ),
                x["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(transitions, t.transitions);
    let rate = report["flip_rate"]["rate"].as_f64().unwrap();
    assert!((rate - flipped as f64 / replayed as f64).abs() < 1e-6);
    let lo = report["flip_rate"]["interval"]["lo"].as_f64().unwrap();
    let hi = report["flip_rate"]["interval"]["hi"].as_f64().unwrap();
    assert!(lo <= rate && rate <= hi);
}

/// An OpenAI JSONL log line for ticket `i` whose logged answer calls the logged decision.
fn openai_line(i: u64) -> String {
    json!({
        "id": format!("rec-{i}"),
        "timestamp": format!("2026-03-{:02}T10:00:00Z", 1 + i % 28),
        "metadata": {"team": {"queue": class_of(i)}},
        "request": {
            "model": "old-2024-01-01",
            "messages": [
                {"role": "system", "content": "You triage refund requests. Call approve or deny."},
                {"role": "user", "content": format!("Please look at ticket T{i}.")}
            ],
            "tools": [
                {"type": "function", "function": {"name": "approve", "parameters": {"type": "object", "properties": {}}}},
                {"type": "function", "function": {"name": "deny", "parameters": {"type": "object", "properties": {}}}}
            ]
        },
        "response": openai_tool_calls("old", &[("c1", logged_decision(i), json!({}))]),
    })
    .to_string()
}

/// The candidate behind an OpenAI endpoint: a tool call with its decision for the ticket.
fn openai_candidate() -> TestServer {
    TestServer::start(|req, _| {
        let body = req.body_text();
        match ticket(&body) {
            Some(i) => Reply::json(
                200,
                openai_tool_calls("new", &[("x", candidate_decision(i), json!({}))]),
            ),
            None => Reply::json(400, json!({"error": {"message": "no ticket"}})),
        }
    })
}

fn config(server: &TestServer, extra: &str) -> String {
    format!(
        "{}{}",
        model(
            "new",
            "openai",
            &format!("{}/v1", server.url()),
            &format!("max_retries = 0\ntimeout = 5\n{extra}")
        ),
        model(
            "old",
            "openai",
            &format!("{}/v1", server.url()),
            "max_retries = 0\ntimeout = 5"
        )
    )
}

fn replay_json(p: &Project, args: &[&str]) -> Value {
    let mut all = vec!["replay", "-q", "--format", "json"];
    all.extend_from_slice(args);
    let out = p.run(&all, &env()).success();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr))
}

#[test]
fn openai_jsonl_flips_match_the_truth_class_by_class_with_bad_lines_reported() {
    let server = openai_candidate();
    let p = Project::new(&config(&server, ""));
    let mut lines: Vec<String> = (0..40).map(openai_line).collect();
    lines.insert(5, "{\"request\": oops".into());
    lines.insert(12, json!({"id": "text-only", "request": {"messages": [{"role": "user", "content": "ticket T999"}]}, "response": {"choices": [{"message": {"role": "assistant", "content": "I will look into it."}}]}}).to_string());
    lines.insert(20, "[1, 2]".into());
    p.write("logs/prod.jsonl", &(lines.join("\n") + "\n"));
    let report = replay_json(
        &p,
        &[
            "logs/prod.jsonl",
            "--model",
            "new",
            "--decision",
            "tool_call",
            "--class-field",
            "team.queue",
            "--contested",
            "out/contested.jsonl",
        ],
    );
    let t = truth(0..40, |i| class_of(i).to_string());
    assert_report(&report, &t);
    assert_eq!(report["undecided"], 1);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["unreadable"], 2);
    let places: Vec<&str> = report["unreadable_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["place"].as_str().unwrap())
        .collect();
    assert_eq!(places, ["logs/prod.jsonl:6", "logs/prod.jsonl:21"]);
    assert_eq!(
        server.request_count(),
        40,
        "undecided and unreadable records are not sent"
    );
    // The contested list: every flip, in log order, with the contract fields.
    let contested: Vec<Value> = std::fs::read_to_string(p.root().join("out/contested.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = contested
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, t.flipped);
    for c in &contested {
        let i: u64 = c["id"].as_str().unwrap()[4..].parse().unwrap();
        assert_eq!(c["class"], class_of(i));
        assert_eq!(c["old"], logged_decision(i));
        assert_eq!(c["new"], candidate_decision(i));
        assert_eq!(
            c["logged_answer"]["tool_calls"][0]["function"]["name"],
            logged_decision(i)
        );
        assert_eq!(
            c["candidate_answer"]["tool_calls"][0]["function"]["name"],
            candidate_decision(i)
        );
        assert!(c["timestamp"].as_str().unwrap().starts_with("2026-03-"));
    }
    // Earliest and latest flipped timestamps.
    let mut stamps: Vec<&str> = contested
        .iter()
        .map(|c| c["timestamp"].as_str().unwrap())
        .collect();
    stamps.sort();
    assert_eq!(report["first_flip"], stamps[0]);
    assert_eq!(report["last_flip"], *stamps.last().unwrap());
    // The same replay as CSV.
    p.run(
        &[
            "replay",
            "-q",
            "--resume",
            "--contested",
            "out/contested.csv",
        ],
        &env(),
    )
    .success();
    let csv = std::fs::read_to_string(p.root().join("out/contested.csv")).unwrap();
    assert!(csv.starts_with("id,timestamp,class,old,new,logged_answer,candidate_answer"));
    assert_eq!(csv.lines().count(), t.flipped.len() + 1);
    assert_eq!(
        server.request_count(),
        40,
        "resuming a finished replay calls nothing"
    );
}

/// Logs written by SDKs and gateways often hold tool-call arguments already parsed (an object)
/// rather than as the wire's JSON string, in the logged answer and in the conversation history.
#[test]
fn openai_tool_call_arguments_logged_as_objects_are_read() {
    let server = openai_candidate();
    let p = Project::new(&config(&server, ""));
    let lines: Vec<String> = (0..12)
        .map(|i| {
            let mut v: Value = serde_json::from_str(&openai_line(i)).unwrap();
            v["request"]["messages"]
                .as_array_mut()
                .unwrap()
                .extend([
                    json!({"role": "assistant", "content": null, "tool_calls": [
                        {"id": "h1", "type": "function", "function": {"name": "lookup", "arguments": {"ticket": i}}}]}),
                    json!({"role": "tool", "tool_call_id": "h1", "content": "found"}),
                ]);
            v["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] =
                json!({"ticket": i});
            v.to_string()
        })
        .collect();
    p.write("logs/prod.jsonl", &(lines.join("\n") + "\n"));
    let report = replay_json(
        &p,
        &[
            "logs/prod.jsonl",
            "--model",
            "new",
            "--decision",
            "tool_call",
            "--class-field",
            "team.queue",
        ],
    );
    assert_eq!(report["unreadable"], 0, "{report:#}");
    assert_eq!(report["undecided"], 0, "{report:#}");
    assert_report(&report, &truth(0..12, |i| class_of(i).to_string()));
}

#[test]
fn a_cached_rerun_makes_no_call_and_reports_the_same() {
    let server = openai_candidate();
    let p = Project::new(&config(&server, ""));
    p.write(
        "prod.jsonl",
        &(0..25).map(openai_line).collect::<Vec<_>>().join("\n"),
    );
    let args = [
        "prod.jsonl",
        "--model",
        "new",
        "--decision",
        "tool_call",
        "--class-field",
        "team.queue",
    ];
    let first = replay_json(&p, &args);
    assert_eq!(server.request_count(), 25);
    let second = replay_json(&p, &args);
    assert_eq!(
        server.request_count(),
        25,
        "a cached re-run makes no HTTP call"
    );
    assert_eq!(second["cached"], 25);
    assert_ne!(first["replay"], second["replay"]);
    for k in [
        "replayed",
        "flipped",
        "undecided",
        "errors",
        "by_class",
        "transitions",
        "flip_rate",
    ] {
        assert_eq!(first[k], second[k], "{k}");
    }
    assert_report(&second, &truth(0..25, |i| class_of(i).to_string()));
    // The same findings as Markdown and as an HTML page (with the flipped records).
    let md = p
        .run(
            &["replay", "-q", "--resume", "--format", "markdown"],
            &env(),
        )
        .success()
        .stdout;
    let t = truth(0..25, |i| class_of(i).to_string());
    assert!(
        md.contains(&format!("**{} of 25 decisions flipped**", t.flipped.len())),
        "{md}"
    );
    let html = p
        .run(&["replay", "-q", "--resume", "--format", "html"], &env())
        .success()
        .stdout;
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<h2>By class</h2>"));
    for id in &t.flipped {
        assert!(
            html.contains(&format!("<td>{id}</td>")),
            "{id} missing from the HTML page"
        );
    }
    assert_eq!(server.request_count(), 25);
}

#[test]
fn server_errors_are_errors_never_flips() {
    let server = TestServer::start(|req, _| {
        let i = ticket(&req.body_text()).unwrap();
        if i % 5 == 4 {
            Reply::json(500, json!({"error": {"message": "boom"}}))
        } else {
            Reply::json(
                200,
                openai_tool_calls("new", &[("x", candidate_decision(i), json!({}))]),
            )
        }
    });
    let p = Project::new(&config(&server, ""));
    p.write(
        "prod.jsonl",
        &(0..20).map(openai_line).collect::<Vec<_>>().join("\n"),
    );
    let report = replay_json(
        &p,
        &[
            "prod.jsonl",
            "--model",
            "new",
            "--decision",
            "tool_call",
            "--class-field",
            "team.queue",
        ],
    );
    assert_eq!(report["errors"], 4);
    assert_report(
        &report,
        &truth((0..20).filter(|i| i % 5 != 4), |i| class_of(i).to_string()),
    );
}

#[test]
fn anthropic_jsonl_with_a_label_rule() {
    let server = TestServer::start(|req, _| {
        let i = ticket(&req.body_text()).unwrap();
        Reply::json(
            200,
            anthropic_text(
                "claude-new",
                &format!("After review: {}.", candidate_decision(i).to_uppercase()),
            ),
        )
    });
    let p = Project::new(&model(
        "claude",
        "anthropic",
        &server.url(),
        "max_retries = 0\ntimeout = 5",
    ));
    let lines: Vec<String> = (0..30)
        .map(|i| {
            json!({
                "id": format!("rec-{i}"),
                "metadata": {"queue": class_of(i)},
                "request": {"model": "claude-old", "system": "Decide: approve or deny.", "max_tokens": 100,
                            "messages": [{"role": "user", "content": format!("ticket T{i}")}]},
                "response": {"type": "message", "role": "assistant", "content": [{"type": "text", "text": format!("I {} this.", logged_decision(i))}], "stop_reason": "end_turn"}
            })
            .to_string()
        })
        .collect();
    p.write("anthropic.jsonl", &lines.join("\n"));
    let report = replay_json(
        &p,
        &[
            "anthropic.jsonl",
            "--log-format",
            "anthropic",
            "--model",
            "claude",
            "--decision",
            "label:approve|deny",
            "--class-field",
            "queue",
        ],
    );
    assert_report(&report, &truth(0..30, |i| class_of(i).to_string()));
    // The text report: aligned tables (the replay id aside, the same bytes every time).
    let text = p
        .run(&["replay", "-q", "--resume"], &env())
        .success()
        .stdout;
    let id = report["replay"].as_str().unwrap();
    insta::assert_snapshot!("replay_text_anthropic_label", text.replace(id, "REPLAY"));
    let req = &server.requests()[0];
    assert!(req.path.ends_with("/v1/messages"), "{}", req.path);
    assert_eq!(req.json()["system"], "Decide: approve or deny.");
}

/// An OTLP span for ticket `i` (the messages as JSON strings or structured, alternately).
fn otlp_span(i: u64) -> Value {
    let input = json!([
        {"role": "user", "parts": [{"type": "text", "content": format!("ticket T{i}")}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c0", "name": "lookup", "arguments": {"ticket": i}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c0", "response": {"amount": 40}}]}
    ]);
    let output = json!([{"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": logged_decision(i), "arguments": {}}], "finish_reason": "tool_call"}]);
    let sys = json!([{"type": "text", "content": "You triage refunds."}]);
    let value = |v: &Value| {
        if i.is_multiple_of(2) {
            json!({"stringValue": v.to_string()})
        } else {
            any(v)
        }
    };
    json!({
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": format!("s{i:04}"),
        "name": "chat old",
        "kind": 3,
        "startTimeUnixNano": format!("{}", 1_767_225_600_000_000_000u64 + i * 1_000_000_000),
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "old-2024-01-01"}},
            {"key": "app.queue", "value": {"stringValue": class_of(i)}},
            {"key": "gen_ai.input.messages", "value": value(&input)},
            {"key": "gen_ai.output.messages", "value": value(&output)},
            {"key": "gen_ai.system_instructions", "value": value(&sys)},
        ]
    })
}

fn any(v: &Value) -> Value {
    match v {
        Value::String(s) => json!({"stringValue": s}),
        Value::Number(n) => json!({"intValue": n.to_string()}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Array(a) => json!({"arrayValue": {"values": a.iter().map(any).collect::<Vec<_>>()}}),
        Value::Object(o) => {
            json!({"kvlistValue": {"values": o.iter().map(|(k, v)| json!({"key": k, "value": any(v)})).collect::<Vec<_>>()}})
        }
        Value::Null => json!({}),
    }
}

#[test]
fn otlp_traces_one_object_and_json_lines() {
    let server = openai_candidate();
    let p = Project::new(&config(&server, ""));
    let http_span = json!({"spanId": "http1", "name": "POST", "attributes": [{"key": "http.request.method", "value": {"stringValue": "POST"}}]});
    let broken = json!({"spanId": "bad01", "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]});
    let mut spans: Vec<Value> = (0..24).map(otlp_span).collect();
    spans.insert(3, http_span);
    spans.insert(10, broken);
    let doc = json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "triage"}}]},
        "scopeSpans": [{"scope": {"name": "openai-instrumentation"}, "spans": spans}]}]});
    p.write("traces.json", &serde_json::to_string_pretty(&doc).unwrap());
    // The collector's file exporter: one object per line.
    let lines: Vec<String> = (24..36)
        .map(|i| {
            json!({"resourceSpans": [{"scopeSpans": [{"spans": [otlp_span(i)]}]}]}).to_string()
        })
        .collect();
    p.write("traces.jsonl", &lines.join("\n"));
    let report = replay_json(
        &p,
        &[
            "traces.json",
            "traces.jsonl",
            "--model",
            "new",
            "--decision",
            "tool_call",
            "--class-field",
            "app.queue",
        ],
    );
    assert_report(&report, &truth(0..36, |i| class_of(i).to_string()));
    assert_eq!(report["unreadable"], 1);
    assert_eq!(
        report["unreadable_records"][0]["place"],
        "traces.json: span bad01"
    );
    // The step ended in a tool result: that step is replayed, with the system instructions.
    let req = server
        .requests()
        .into_iter()
        .find(|r| ticket(&r.body_text()) == Some(0))
        .unwrap();
    let msgs = req.json()["messages"].as_array().unwrap().clone();
    assert_eq!(msgs[0]["role"], "system");
    assert_eq!(msgs[0]["content"], "You triage refunds.");
    assert_eq!(msgs.last().unwrap()["role"], "tool");
    assert_eq!(msgs[2]["tool_calls"][0]["function"]["name"], "lookup");
    assert_eq!(report["first_flip"], "2026-01-01T00:00:00.000Z");
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let server = openai_candidate();
    let p = Project::new(&config(&server, ""));
    p.write("prod.jsonl", &openai_line(1));
    let out = p
        .run(
            &[
                "replay",
                "missing.jsonl",
                "--model",
                "new",
                "--decision",
                "tool_call",
            ],
            &env(),
        )
        .exits(2);
    assert!(out.stderr.contains("missing.jsonl"), "{}", out.stderr);
    let out = p
        .run(
            &[
                "replay",
                "prod.jsonl",
                "--model",
                "nope",
                "--decision",
                "tool_call",
            ],
            &env(),
        )
        .exits(2);
    assert!(out.stderr.contains("no model `nope`"), "{}", out.stderr);
    let out = p
        .run(
            &[
                "replay",
                "prod.jsonl",
                "--model",
                "new",
                "--decision",
                "regex:(",
            ],
            &env(),
        )
        .exits(2);
    assert!(out.stderr.contains("regular expression"), "{}", out.stderr);
    let out = p
        .run(
            &[
                "replay",
                "prod.jsonl",
                "--model",
                "new",
                "--decision",
                "vibes",
            ],
            &env(),
        )
        .exits(2);
    assert!(out.stderr.contains("decision rule"), "{}", out.stderr);
    assert_eq!(server.request_count(), 0);
}

#[test]
fn judge_splits_flips_and_incidents_feed_templatize() {
    let server = TestServer::start(|req, _| {
        let body = req.body_text();
        if body.contains("You compare two answers") {
            // The logged answer is right on even tickets (a regression), the candidate on odd.
            let i = ticket(&body).unwrap();
            let right = if i.is_multiple_of(2) { "A" } else { "B" };
            return Reply::json(
                200,
                openai_completion(
                    "judge",
                    &format!("{{\"right\": \"{right}\", \"reason\": \"r\"}}"),
                ),
            );
        }
        let i = ticket(&body).unwrap();
        Reply::json(
            200,
            openai_tool_calls("new", &[("x", candidate_decision(i), json!({}))]),
        )
    });
    let p = Project::new(&format!(
        "{}{}[judge]\nmodel = \"judge\"\n",
        config(&server, ""),
        model(
            "judge",
            "openai",
            &format!("{}/v1", server.url()),
            "max_retries = 0"
        )
    ));
    p.write(
        "prod.jsonl",
        &(0..30).map(openai_line).collect::<Vec<_>>().join("\n"),
    );
    let report = replay_json(
        &p,
        &[
            "prod.jsonl",
            "--model",
            "new",
            "--decision",
            "tool_call",
            "--class-field",
            "team.queue",
            "--judge",
            "--incidents",
            "incidents",
        ],
    );
    let t = truth(0..30, |i| class_of(i).to_string());
    let regressions: Vec<&String> = t
        .flipped
        .iter()
        .filter(|id| id[4..].parse::<u64>().unwrap() % 2 == 0)
        .collect();
    assert_eq!(report["judge"]["regressions"], regressions.len());
    assert_eq!(
        report["judge"]["corrections"],
        t.flipped.len() - regressions.len()
    );
    let mut files: Vec<String> = std::fs::read_dir(p.root().join("incidents"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = regressions.iter().map(|id| format!("{id}.json")).collect();
    want.sort();
    assert_eq!(files, want, "one incident per regression");
    // templatize takes an incident: the candidate's answer fails the derived check.
    let first = p.root().join("incidents").join(&files[0]);
    let out = p
        .run(
            &["templatize", first.to_str().unwrap(), "--suite", "probes"],
            &[],
        )
        .success();
    let probes: Vec<_> = std::fs::read_dir(p.root().join("probes").join("refunds"))
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert_eq!(probes, vec![1], "{}", out.stderr);
    // Judging again is answered from the cache.
    let before = server.request_count();
    p.run(&["replay", "-q", "--resume", "--judge"], &env())
        .success();
    assert_eq!(server.request_count(), before);
}

#[test]
fn the_noise_floor_is_measured_on_the_logged_model() {
    // The logged model, replayed, disagrees with itself on one ticket in ten.
    let server = TestServer::start(|req, _| {
        let body = req.body_text();
        let i = ticket(&body).unwrap();
        let is_old = req.json()["model"] == "old-2024-01-01";
        let d = if is_old {
            if i.is_multiple_of(10) {
                if logged_decision(i) == "approve" {
                    "deny"
                } else {
                    "approve"
                }
            } else {
                logged_decision(i)
            }
        } else {
            candidate_decision(i)
        };
        Reply::json(200, openai_tool_calls("m", &[("x", d, json!({}))]))
    });
    let p = Project::new(&config(&server, ""));
    p.write(
        "prod.jsonl",
        &(0..60).map(openai_line).collect::<Vec<_>>().join("\n"),
    );
    let report = replay_json(
        &p,
        &[
            "prod.jsonl",
            "--model",
            "new",
            "--decision",
            "tool_call",
            "--noise",
            "20",
            "--seed",
            "3",
        ],
    );
    assert_eq!(report["noise"]["replayed"], 20);
    assert_eq!(report["noise"]["model"], "old");
    // The candidate flips 26 of 60 (43 %); the logged model disagrees with itself on one ticket
    // in ten, so the seeded sample of 20 holds 3 self-flips and the candidate reads above noise.
    assert_eq!(report["flipped"], 26);
    let self_flips = report["noise"]["flipped"].as_u64().unwrap();
    assert_eq!(self_flips, 3, "seeded sample: {report:#}");
    assert_eq!(report["noise"]["reading"], "above noise", "{report:#}");
    assert_eq!(server.request_count(), 80);
    // The sample is seeded: the same seed replays the same records (all from the cache).
    let again = replay_json(
        &p,
        &[
            "prod.jsonl",
            "--model",
            "new",
            "--decision",
            "tool_call",
            "--noise",
            "20",
            "--seed",
            "3",
        ],
    );
    assert_eq!(server.request_count(), 80);
    assert_eq!(again["noise"], report["noise"]);
}

#[test]
fn kill_9_then_resume_stores_exactly_one_result_per_record() {
    let server = TestServer::start(|req, _| {
        let i = ticket(&req.body_text()).unwrap();
        Reply::json(
            200,
            openai_tool_calls("new", &[("x", candidate_decision(i), json!({}))]),
        )
        .after(Duration::from_millis(15))
    });
    let p = Project::new(&config(&server, "max_concurrency = 4"));
    const N: u64 = 500;
    p.write(
        "prod.jsonl",
        &(0..N).map(openai_line).collect::<Vec<_>>().join("\n"),
    );
    let mut child = p
        .std_cmd()
        .args([
            "replay",
            "-q",
            "prod.jsonl",
            "--model",
            "new",
            "--decision",
            "tool_call",
            "--class-field",
            "team.queue",
        ])
        .env("TEST_KEY", KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = || -> u64 {
        let Ok(conn) = rusqlite::Connection::open(p.store_path()) else {
            return 0;
        };
        conn.query_row("SELECT COUNT(*) FROM replay_records", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_or(0) as u64
    };
    while stored() < 40 {
        assert!(Instant::now() < deadline, "the replay stored nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = stored();
    assert!(at_kill < N, "killed too late ({at_kill} stored)");
    let report = replay_json(&p, &["--resume"]);
    assert_report(&report, &truth(0..N, |i| class_of(i).to_string()));
    let conn = rusqlite::Connection::open(p.store_path()).unwrap();
    let (rows, distinct): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT seq) FROM replay_records",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows as u64, distinct as u64), (N, N));
    let requests = server.request_count() as u64;
    assert!(
        (N..N + 20).contains(&requests),
        "{requests} requests: only the calls in flight at the kill are asked again"
    );
}

#[test]
fn a_request_budget_stops_the_replay_and_resume_finishes_it() {
    let server = openai_candidate();
    let p = Project::new(&config(&server, "max_concurrency = 1"));
    p.write(
        "prod.jsonl",
        &(0..40).map(openai_line).collect::<Vec<_>>().join("\n"),
    );
    let out = p
        .run(
            &[
                "replay",
                "-q",
                "--format",
                "json",
                "prod.jsonl",
                "--model",
                "new",
                "--decision",
                "tool_call",
                "--class-field",
                "team.queue",
                "--budget-requests",
                "10",
            ],
            &env(),
        )
        .success();
    let partial: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(partial["status"], "partial", "{}", out.stderr);
    assert!(out.stderr.contains("request budget"), "{}", out.stderr);
    assert_eq!(server.request_count(), 10);
    assert_eq!(partial["replayed"], 10);
    let done = replay_json(&p, &["--resume"]);
    assert_eq!(done["status"], "complete");
    assert_eq!(done["replay"], partial["replay"]);
    assert_report(&done, &truth(0..40, |i| class_of(i).to_string()));
    assert_eq!(server.request_count(), 40, "no record is asked twice");
}

#[test]
fn rate_limits_are_waited_out_not_counted_as_errors() {
    let server = TestServer::start(|req, index| {
        if index % 3 == 0 {
            return Reply::json(429, json!({"error": {"message": "slow down"}}))
                .header("retry-after-ms", "5");
        }
        let i = ticket(&req.body_text()).unwrap();
        Reply::json(
            200,
            openai_tool_calls("new", &[("x", candidate_decision(i), json!({}))]),
        )
    });
    let p = Project::new(&config(&server, "max_concurrency = 2"));
    p.write(
        "prod.jsonl",
        &(0..20).map(openai_line).collect::<Vec<_>>().join("\n"),
    );
    let report = replay_json(
        &p,
        &[
            "prod.jsonl",
            "--model",
            "new",
            "--decision",
            "tool_call",
            "--class-field",
            "team.queue",
        ],
    );
    assert_eq!(report["errors"], 0);
    assert_report(&report, &truth(0..20, |i| class_of(i).to_string()));
    assert!(report["requests"].as_u64().unwrap() > 20);
}
