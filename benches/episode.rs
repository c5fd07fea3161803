//! Episode sweep throughput (`cargo bench --bench episode`): cases/s of `cliffprobe sweep` on
//! agent episodes against a canned agent endpoint, two model calls per case.
//!
//! The endpoint (the integration tests' loopback HTTP server) plays a look-up-then-answer
//! agent: a request without a tool result gets a `get_order` tool call, a request with one gets
//! a text answer. Each probe family is an episode (`get_order` answered from its recorded
//! result), `sample:100` variants over persona × phrasing, so a case is two model calls, one
//! simulated tool result and a graded trajectory. The real binary sweeps `CASES` cases with
//! `--no-cache`, then again with the cache on (every step replayed without HTTP).
//!
//! Figures: cases/s and model calls/s of the uncached sweep, requests the endpoint saw (must be
//! exactly 2 × cases), cases/s of the cached re-run (0 requests), every case `pass`.
//!
//! Environment: `CASES` (10000; a multiple of 100), `SMOKE=1` (1000), `BENCH_OUT` (JSON path,
//! default `<target>/bench/episode.json`).

#[allow(dead_code)]
#[path = "../tests/it/support/http_server.rs"]
mod http_server;
#[allow(dead_code)]
#[path = "../tests/it/support/postgres.rs"]
mod postgres;

#[allow(dead_code)]
#[path = "../tests/it/support/project.rs"]
mod project;

use http_server::{Reply, TestServer, openai_completion, openai_tool_calls};
use project::{Project, model};
use serde_json::json;
use std::time::Instant;

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Probe family `j`: look the order up, then answer with its status.
fn probe(j: usize) -> String {
    format!(
        r#"id: episode-{j:05}
capability: multi-step tool use
tier: hard
messages:
- role: system
  content: You are the support agent of shop {j}. Look orders up before answering.
- role: user
  content: "{{{{ question }}}}"
tools:
- type: function
  function:
    name: get_order
    description: Fetch one order by its id.
    parameters: {{type: object, properties: {{order_id: {{type: string}}}}, required: [order_id]}}
slots:
  question: What is the status of order A-{j}?
checks:
- tool_call: {{name: get_order}}
- contains: BENCH-OK
episode:
  tools:
    get_order:
      recorded:
      - arguments: {{order_id: A-{j}}}
        result: '{{"order_id": "A-{j}", "status": "delayed", "carrier": "DHL"}}'
  budget: {{max_turns: 4}}
axes: [persona, phrasing]
"#
    )
}

fn main() {
    let smoke = std::env::var("SMOKE").is_ok_and(|v| v == "1");
    let cases: usize = env_num("CASES").unwrap_or(if smoke { 1000 } else { 10_000 });
    let probes = cases.div_ceil(100).max(1);
    let planned = probes * 100;
    let server = TestServer::start(|req, _| {
        let body = String::from_utf8_lossy(&req.body);
        if body.contains("\"role\":\"tool\"") {
            Reply::json(
                200,
                openai_completion("agent", "Order status: delayed. BENCH-OK"),
            )
        } else {
            Reply::json(
                200,
                openai_tool_calls(
                    "agent",
                    &[("call_1", "get_order", json!({"order_id": "A-1"}))],
                ),
            )
        }
    });
    let p = Project::new(&model(
        "agent",
        "openai",
        &format!("{}/v1", server.url()),
        "max_concurrency = 64\ntimeout = 10",
    ));
    for j in 0..probes {
        p.write(&format!("probes/episode-{j:05}.yaml"), &probe(j));
    }
    let args = [
        "--concurrency",
        "64",
        "--strategy",
        "sample:100",
        "--axes",
        "persona,phrasing",
        "--repeats",
        "1",
        "--yes",
    ];
    println!(
        "episode sweep: {planned} cases ({probes} episode probes × 100 variants), two model calls each, against a canned agent endpoint"
    );
    let sweep = |cached: bool| {
        let before = server.request_count();
        let started = Instant::now();
        let mut all = vec!["sweep", "-q"];
        if !cached {
            all.push("--no-cache");
        }
        all.extend_from_slice(&args);
        let out = p.run(&all, &[("TEST_KEY", "k")]).success();
        let secs = started.elapsed().as_secs_f64();
        let pass = out.summary_count("agent", "pass") as usize;
        assert_eq!(pass, planned, "every case passes:\n{}", out.stdout);
        (secs, server.request_count() - before)
    };
    let (secs, requests) = sweep(false);
    assert_eq!(requests, planned * 2, "two model calls per case");
    let rate = planned as f64 / secs;
    println!(
        "uncached: {planned} cases in {secs:.2} s = {rate:.0} cases/s ({:.0} model calls/s); the endpoint saw {requests} requests",
        requests as f64 / secs
    );
    let (csecs, crequests) = sweep(true);
    assert_eq!(crequests, 0, "a cached re-run makes no request");
    let crate_ = planned as f64 / csecs;
    println!("cached re-run: {planned} cases in {csecs:.2} s = {crate_:.0} cases/s; 0 requests");
    let out = std::env::var("BENCH_OUT").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        format!("{target}/bench/episode.json")
    });
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(
        &out,
        serde_json::to_string_pretty(&json!({
            "cases": planned,
            "model_calls": requests,
            "uncached_s": secs,
            "cases_per_s": rate,
            "cached_s": csecs,
            "cached_cases_per_s": crate_,
        }))
        .unwrap_or_default(),
    );
}
