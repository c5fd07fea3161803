//! The real `cliffprobe` binary, end to end, against the scripted local HTTP server: a project
//! in a temporary folder (`templatize` an example incident, `sweep`, `export`), with the
//! outcome read back from the store and the export. Each test checks exact case statuses and
//! counts: wire formats (OpenAI, Anthropic with tools), rate limits, 5xx, timeouts, malformed
//! bodies, kill-and-resume, API-key secrecy, the response cache and config errors.

use crate::support::http_server;
use crate::support::project;

use cliffprobe::store::RunStatus;
use http_server::{Reply, TestServer, anthropic_message, openai_completion, openai_error};
use project::{Project, contains_bytes, count, model};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "test-key-123";
const ORDER_STATUS: &str = "order-status-table.yaml";
const OVERLAPPING_TOOLS: &str = "overlapping-tools.yaml";
/// The canonical variant plus every `format` value of the order-status probe: 9 variants.
const FORMAT_AXIS: [&str; 4] = ["--strategy", "one-at-a-time", "--axes", "format"];
const FORMAT_VARIANTS: usize = 9;

fn env() -> [(&'static str, &'static str); 1] {
    [("TEST_KEY", KEY)]
}

fn openai_url(server: &TestServer) -> String {
    format!("{}/v1", server.url())
}

/// The distinct `(model, variant, sample)` keys of export rows.
fn case_keys(rows: &[Value]) -> BTreeSet<(String, String, u64)> {
    rows.iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap().to_string(),
                r["variant"].as_str().unwrap().to_string(),
                r["sample"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `cliffprobe expand ARGS` in the project: the variants' ids and requests.
fn expand(p: &Project, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["expand"];
    all.extend_from_slice(args);
    p.run(&all, &[])
        .success()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An OpenAI endpoint that always answers "The order is delayed." (every check passes), and a
/// project with one model `gpt` on it and the order-status probe templatized.
fn order_delayed_project() -> (TestServer, Project) {
    let server = TestServer::start(|_, _| {
        Reply::json(200, openai_completion("gpt", "The order is delayed."))
    });
    let p = Project::new(&model("gpt", "openai", &openai_url(&server), "timeout = 5"));
    p.templatize(ORDER_STATUS);
    (server, p)
}

/// A sweep over [`FORMAT_AXIS`] after one that asked the server for every variant: it must
/// succeed with every case answered from the cache, and no new request.
fn sweep_from_the_cache(p: &Project, server: &TestServer) -> project::Outcome {
    let out = p.sweep(&FORMAT_AXIS, &env()).success();
    assert_eq!(
        server.request_count(),
        FORMAT_VARIANTS,
        "no new HTTP request"
    );
    assert_eq!(out.summary_count("gpt", "cached"), FORMAT_VARIANTS as u64);
    out
}

/// The values sorted by their JSON text, for order-insensitive comparison.
fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x.to_string());
    v
}

// ---- 1. OpenAI wire format ----------------------------------------------------------------

#[test]
fn openai_wire_format_all_pass() {
    let (server, p) = order_delayed_project();
    assert_eq!(p.planned(&FORMAT_AXIS), FORMAT_VARIANTS as u64);

    let out = p.sweep(&FORMAT_AXIS, &env()).success();
    assert_eq!(out.summary_count("gpt", "cases"), FORMAT_VARIANTS as u64);
    assert_eq!(out.summary_count("gpt", "pass"), FORMAT_VARIANTS as u64);
    assert_eq!(out.summary_count("gpt", "error"), 0);

    // The sweep leaves its run's brief snapshot, current: the first analysis reads it.
    let db = rusqlite::Connection::open(p.store_path()).unwrap();
    let current: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM run_briefs b JOIN runs r \
             ON r.id = b.run_id AND r.generation = b.generation",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(current, 1);

    let rows = p.export(None);
    assert_eq!(rows.len(), FORMAT_VARIANTS);
    assert_eq!(count(&rows, "gpt", "pass"), FORMAT_VARIANTS, "{rows:#?}");
    assert_eq!(case_keys(&rows).len(), FORMAT_VARIANTS);
    for r in &rows {
        assert_eq!(r["output"], "The order is delayed.");
        assert_eq!(r["error"], Value::Null);
        assert_eq!(r["cached"], false);
        assert_eq!(r["input_tokens"], 11);
        assert_eq!(r["output_tokens"], 7);
        assert_eq!(r["checks"].as_array().unwrap().len(), 2, "{r}");
        assert!(
            r["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["passed"] == true),
            "{r}"
        );
    }
    assert_eq!(rows.iter().filter(|r| r["canonical"] == true).count(), 1);

    // One request per case, each a POST to /v1/chat/completions with the key from TEST_KEY.
    let requests = server.requests();
    assert_eq!(requests.len(), FORMAT_VARIANTS);
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json();
        assert_eq!(body["model"], "gpt-2024-01-01");
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["tools"][0]["function"]["name"], "lookup_orders");
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "system");
        assert!(
            messages[0]["content"]
                .as_str()
                .unwrap()
                .contains("Fernhill Outdoor")
        );
        assert_eq!(
            messages.last().unwrap(),
            &json!({"role": "user", "content": "Great, so what is the status of order A-10442?"})
        );
        assert!(
            messages
                .iter()
                .any(|m| m["role"] == "tool" && m["content"].as_str().unwrap().contains("A-10442")),
            "the tool output is rendered: {body}"
        );
    }
    // The bodies carry exactly the rendered messages of the planned variants.
    let expanded = expand(&p, &FORMAT_AXIS);
    let want: Vec<Value> = expanded
        .iter()
        .map(|v| v["request"]["messages"].clone())
        .collect();
    let got: Vec<Value> = requests
        .iter()
        .map(|r| http_server::neutral_messages(&r.json()["messages"]))
        .collect();
    assert_eq!(sorted(got), sorted(want));
    let want_variants: BTreeSet<String> = expanded
        .iter()
        .map(|v| v["variant"].as_str().unwrap().to_string())
        .collect();
    let got_variants: BTreeSet<String> = rows
        .iter()
        .map(|r| r["variant"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got_variants, want_variants);
}

// ---- 2. Anthropic wire format with tool calls ---------------------------------------------

/// The overlapping-tools incident is an agent episode (the agent looked the order up, then
/// refunded): the server acts on its first call (the right or the wrong tool) and answers in
/// text once it has the tool's result.
#[test]
fn anthropic_wire_format_with_tool_calls() {
    let server = TestServer::start(|req, i| {
        let model = req.json()["model"].as_str().unwrap_or("").to_string();
        let tool = if model.starts_with("right") {
            "void_authorization"
        } else {
            "refund_payment"
        };
        let answered = req.json()["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "assistant"));
        if answered {
            return Reply::json(
                200,
                anthropic_message(
                    &model,
                    vec![json!({"type": "text", "text": "Done."})],
                    "end_turn",
                ),
            );
        }
        Reply::json(
            200,
            anthropic_message(
                &model,
                vec![
                    json!({"type": "text", "text": "Let me take care of that."}),
                    json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": tool,
                           "input": {"order_id": "B-20931", "reason": "wrong artwork"}}),
                ],
                "tool_use",
            ),
        )
    });
    let models = model("right", "anthropic", &server.url(), "timeout = 5")
        + &model("wrong", "anthropic", &server.url(), "timeout = 5");
    let p = Project::new(&models);
    p.templatize(OVERLAPPING_TOOLS);
    // The incident's catalog on every request: the `tools` axis is left out here.
    let args = ["--strategy", "sample:3", "--axes", "persona,phrasing"];
    assert_eq!(p.planned(&args), 6);

    let out = p.sweep(&args, &env()).success();
    assert_eq!(out.summary_count("right", "pass"), 3);
    assert_eq!(out.summary_count("wrong", "fail"), 3);
    assert_eq!(out.summary_count("wrong", "error"), 0);

    let rows = p.export(None);
    assert_eq!(rows.len(), 6);
    assert_eq!(count(&rows, "right", "pass"), 3, "{rows:#?}");
    assert_eq!(count(&rows, "wrong", "fail"), 3, "{rows:#?}");
    for r in &rows {
        let calls = r["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1, "{r}");
        let args: Value =
            serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["order_id"], "B-20931");
        assert_eq!(r["output"], "Done.");
        assert_eq!(r["error"], Value::Null);
        assert_eq!(r["stop_reason"], "answered");
        assert_eq!(
            r["trajectory"][0]["text"], "Let me take care of that.",
            "{r}"
        );
        let check = &r["checks"][0];
        assert_eq!(check["check"], "tool_call");
        assert_eq!(check["passed"], r["model"] == "right", "{r}");
    }

    let requests = server.requests();
    assert_eq!(requests.len(), 12, "two model calls per episode");
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/messages");
        assert_eq!(r.header("x-api-key"), Some(KEY));
        assert!(r.header("authorization").is_none());
        assert!(r.header("anthropic-version").is_some_and(|v| !v.is_empty()));
        let body = r.json();
        assert!(
            body["system"].as_str().unwrap().contains("Quillbrook"),
            "system is top-level: {body}"
        );
        assert!(body["max_tokens"].as_u64().is_some());
        let messages = body["messages"].as_array().unwrap();
        assert!(
            messages.iter().all(|m| m["role"] != "system"),
            "no system turn in messages: {body}"
        );
        assert_eq!(messages[0]["role"], "user");
        let tools = body["tools"].as_array().unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "search_orders",
                "get_order_by_id",
                "refund_payment",
                "void_authorization"
            ]
        );
        for t in tools {
            assert_eq!(t["input_schema"]["type"], "object", "{t}");
            assert!(t.get("parameters").is_none() && t.get("function").is_none());
        }
    }
}

// ---- 3. 429 with Retry-After --------------------------------------------------------------

/// A request as the handler saw it: its index, when, and its body.
type Arrival = (usize, Instant, Vec<u8>);

#[test]
fn rate_limits_are_waited_out_and_retried() {
    let seen: Arc<Mutex<Vec<Arrival>>> = Arc::default();
    let log = seen.clone();
    let server = TestServer::start(move |req, i| {
        log.lock()
            .unwrap()
            .push((i, Instant::now(), req.body.clone()));
        if i < 3 {
            Reply::json(
                429,
                openai_error("Rate limit reached", "rate_limit_exceeded"),
            )
            .header("retry-after", "1")
        } else {
            Reply::json(200, openai_completion("gpt", "The order is delayed."))
        }
    });
    let p = Project::new(&model(
        "gpt",
        "openai",
        &openai_url(&server),
        "timeout = 5\nmax_retries = 0",
    ));
    p.templatize(ORDER_STATUS);
    let out = p.sweep(&FORMAT_AXIS, &env()).success();
    assert_eq!(out.summary_count("gpt", "pass"), FORMAT_VARIANTS as u64);
    assert_eq!(out.summary_count("gpt", "error"), 0);

    let rows = p.export(None);
    assert_eq!(rows.len(), FORMAT_VARIANTS);
    assert_eq!(count(&rows, "gpt", "pass"), FORMAT_VARIANTS, "{rows:#?}");
    assert!(rows.iter().all(|r| r["error"].is_null()));

    // Three rate-limited attempts were retried: one extra request each, and nothing more.
    assert_eq!(server.request_count(), FORMAT_VARIANTS + 3);
    let store = p.store();
    let run = store.latest_run().unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    let mut attempts = 0;
    store
        .for_each_case(&run.id, |row| {
            attempts += row.case.attempts as usize;
            Ok(())
        })
        .unwrap();
    assert_eq!(attempts, FORMAT_VARIANTS + 3);

    // Each retry came after the wait the server asked for.
    let seen = seen.lock().unwrap();
    let limited: Vec<_> = seen.iter().filter(|(i, _, _)| *i < 3).collect();
    assert_eq!(limited.len(), 3);
    for (_, at, body) in limited {
        let retries: Vec<_> = seen
            .iter()
            .filter(|(i, _, b)| *i >= 3 && b == body)
            .collect();
        assert_eq!(
            retries.len(),
            1,
            "the rate-limited request was retried once"
        );
        let waited = retries[0].1.duration_since(*at);
        assert!(
            waited >= Duration::from_millis(950),
            "retried after {waited:?}, before Retry-After: 1"
        );
    }
}

// ---- 4. 5xx: retried, then an error (never a fail) ----------------------------------------

#[test]
fn server_errors_retry_then_count_as_errors() {
    // Every distinct request fails once with 500, then succeeds.
    let failed_once: Mutex<HashSet<Vec<u8>>> = Mutex::default();
    let flaky = TestServer::start(move |req, _| {
        if failed_once.lock().unwrap().insert(req.body.clone()) {
            Reply::json(500, openai_error("The server had an error", "server_error"))
        } else {
            Reply::json(200, openai_completion("gpt", "The order is delayed."))
        }
    });
    // Each answer differs (a request id, as real servers add), so this is a flaky-then-dead
    // endpoint, not the same error again and again (which stops the model early).
    let broken = TestServer::start(|_, i| {
        Reply::json(
            500,
            openai_error(
                &format!("The server had an error (req {i})"),
                "server_error",
            ),
        )
    });
    let models = model(
        "flaky",
        "openai",
        &openai_url(&flaky),
        "timeout = 5\nmax_retries = 1",
    ) + &model(
        "broken",
        "openai",
        &openai_url(&broken),
        "timeout = 5\nmax_retries = 1",
    );
    let p = Project::new(&models);
    p.templatize(ORDER_STATUS);
    let out = p.sweep(&FORMAT_AXIS, &env()).success();

    let n = FORMAT_VARIANTS as u64;
    assert_eq!(out.summary_count("flaky", "pass"), n);
    assert_eq!(out.summary_count("flaky", "error"), 0);
    assert_eq!(out.summary_count("broken", "cases"), n);
    assert_eq!(out.summary_count("broken", "error"), n);
    assert_eq!(out.summary_count("broken", "fail"), 0);
    assert_eq!(out.summary_count("broken", "pass"), 0);
    // Errors are outside the pass rate: with no graded case there is no rate.
    assert_eq!(out.summary()["broken"]["pass rate"], "–");
    assert_eq!(out.summary()["flaky"]["pass rate"], "100.0%");

    let rows = p.export(None);
    assert_eq!(rows.len(), 2 * FORMAT_VARIANTS);
    assert_eq!(count(&rows, "flaky", "pass"), FORMAT_VARIANTS, "{rows:#?}");
    assert_eq!(
        count(&rows, "broken", "error"),
        FORMAT_VARIANTS,
        "{rows:#?}"
    );
    for r in rows.iter().filter(|r| r["model"] == "broken") {
        let reason = r["error"].as_str().expect("an error has a reason");
        assert!(reason.contains("HTTP 500"), "{reason}");
        assert!(reason.contains("The server had an error"), "{reason}");
        assert!(reason.contains("2 attempts"), "{reason}");
        assert_eq!(r["checks"], json!([]), "an error is never graded: {r}");
        assert_eq!(r["output"], "");
    }
    // max_retries = 1: exactly two attempts per case on both servers.
    assert_eq!(flaky.request_count(), 2 * FORMAT_VARIANTS);
    assert_eq!(broken.request_count(), 2 * FORMAT_VARIANTS);
    let store = p.store();
    let run = store.latest_run().unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    store
        .for_each_case(&run.id, |row| {
            assert_eq!(row.case.attempts, 2, "{:?}", row.case);
            Ok(())
        })
        .unwrap();

    // The CSV export agrees.
    let csv = p.run(&["export", "--format", "csv"], &[]).success().stdout;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut statuses: BTreeMap<(String, String), usize> = BTreeMap::new();
    for rec in reader.records() {
        let rec = rec.unwrap();
        *statuses
            .entry((
                rec[col("model")].to_string(),
                rec[col("status")].to_string(),
            ))
            .or_default() += 1;
    }
    assert_eq!(
        statuses,
        BTreeMap::from([
            (("broken".into(), "error".into()), FORMAT_VARIANTS),
            (("flaky".into(), "pass".into()), FORMAT_VARIANTS),
        ])
    );
}

// ---- 5. A hang past the timeout -----------------------------------------------------------

#[test]
fn hang_past_timeout_is_an_error() {
    let server = TestServer::start(|_, _| Reply::Hang);
    let p = Project::new(&model(
        "gpt",
        "openai",
        &openai_url(&server),
        "timeout = 0.3\nmax_retries = 0",
    ));
    p.templatize(ORDER_STATUS);
    // Nothing could be graded: the sweep says so and exits 1, after the summary.
    let out = p.sweep(&FORMAT_AXIS, &env()).exits(1);
    assert!(out.stderr.contains("every case of run"), "{}", out.stderr);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert_eq!(out.summary_count("gpt", "error"), FORMAT_VARIANTS as u64);
    assert_eq!(out.summary_count("gpt", "fail"), 0);

    let rows = p.export(None);
    assert_eq!(rows.len(), FORMAT_VARIANTS);
    assert_eq!(count(&rows, "gpt", "error"), FORMAT_VARIANTS, "{rows:#?}");
    for r in &rows {
        let reason = r["error"].as_str().unwrap();
        assert!(reason.contains("timed out"), "{reason}");
        assert!(reason.contains("0.3"), "{reason}");
        assert_eq!(r["checks"], json!([]));
        assert!(r["latency_ms"].as_u64().unwrap() >= 250, "{r}");
    }
    // max_retries = 0: one attempt per case.
    assert_eq!(server.request_count(), FORMAT_VARIANTS);
}

// ---- 6. Malformed bodies ------------------------------------------------------------------

#[test]
fn malformed_json_is_an_ungraded_error() {
    let garbage = TestServer::start(|_, _| Reply::text(200, "{\"choices\": [oops not json"));
    let shapeless = TestServer::start(|_, _| Reply::json(200, json!({"hello": "world"})));
    let anthropic_garbage = TestServer::start(|_, _| Reply::text(200, "<html>bad gateway</html>"));
    let models = model(
        "garbage",
        "openai",
        &openai_url(&garbage),
        "timeout = 5\nmax_retries = 0",
    ) + &model(
        "shapeless",
        "openai",
        &openai_url(&shapeless),
        "timeout = 5\nmax_retries = 0",
    ) + &model(
        "claude",
        "anthropic",
        &anthropic_garbage.url(),
        "timeout = 5\nmax_retries = 0",
    );
    let p = Project::new(&models);
    p.templatize(ORDER_STATUS);
    // Nothing could be graded: the sweep says so and exits 1, after the summary.
    let out = p.sweep(&FORMAT_AXIS, &env()).exits(1);
    assert!(out.stderr.contains("every case of run"), "{}", out.stderr);
    for m in ["garbage", "shapeless", "claude"] {
        assert_eq!(out.summary_count(m, "error"), FORMAT_VARIANTS as u64, "{m}");
        assert_eq!(out.summary_count(m, "fail"), 0, "{m}");
        assert_eq!(out.summary_count(m, "pass"), 0, "{m}");
    }
    let rows = p.export(None);
    assert_eq!(rows.len(), 3 * FORMAT_VARIANTS);
    for r in &rows {
        assert_eq!(r["status"], "error", "{r}");
        assert_eq!(r["checks"], json!([]), "never graded: {r}");
        let reason = r["error"].as_str().unwrap();
        match r["model"].as_str().unwrap() {
            "garbage" | "claude" => assert!(reason.contains("not valid JSON"), "{reason}"),
            _ => assert!(reason.contains("choices"), "{reason}"),
        }
    }
}

// ---- 7. Kill and resume -------------------------------------------------------------------

/// Spawns `cliffprobe ARGS` in the project and SIGKILLs it once `server` has received
/// `requests` requests in all; fails if it ends by itself first.
fn kill_after(p: &Project, args: &[&str], server: &TestServer, requests: usize) {
    let mut child = p
        .std_cmd()
        .args(args)
        .env("TEST_KEY", KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn cliffprobe");
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.request_count() < requests {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "`cliffprobe {}` ended ({status}) before it could be killed",
                args.join(" ")
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`cliffprobe {}` made no progress", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
}

#[test]
fn killed_sweep_resumes_without_loss_or_duplicates() {
    let server = TestServer::start(|_, _| {
        Reply::json(200, openai_completion("gpt", "The order is delayed."))
            .after(Duration::from_millis(20))
    });
    let p = Project::new(&model(
        "gpt",
        "openai",
        &openai_url(&server),
        "timeout = 5\nmax_concurrency = 2",
    ));
    p.templatize(ORDER_STATUS);
    // 45 variants (42, and the three tools catalogs of its one tool) × 5 samples.
    let args = [
        "--strategy",
        "one-at-a-time",
        "--repeats",
        "5",
        "--concurrency",
        "2",
    ];
    let planned = p.planned(&args);
    assert_eq!(planned, 225);

    // Kill it mid-run (once about a fifth of the cases have been asked for, ≈ 1 s in), then
    // kill a resume of it mid-run too.
    let first: Vec<&str> = ["sweep", "-q"].iter().chain(&args).copied().collect();
    kill_after(&p, &first, &server, 40);
    let (run_id, stored_first) = {
        let store = p.store();
        let run = store
            .latest_run()
            .unwrap()
            .expect("the killed run is recorded");
        assert_eq!(run.status, RunStatus::Running, "killed, so never finished");
        assert_eq!(run.planned, planned);
        let stored = store.case_count(&run.id).unwrap();
        assert!(
            stored > 0 && stored < planned,
            "killed mid-run, yet {stored} of {planned} cases stored"
        );
        (run.id, stored)
    };
    kill_after(&p, &["sweep", "-q", "--resume"], &server, 80);
    let stored_before = {
        let store = p.store();
        let run = store.run(&run_id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Running, "killed again");
        let stored = store.case_count(&run_id).unwrap();
        assert!(
            stored > stored_first && stored < planned,
            "the killed resume went from {stored_first} to {stored} of {planned} cases"
        );
        stored
    };
    let requests_before = server.request_count();

    let out = p.sweep(&["--resume"], &env()).success();
    assert!(out.stderr.contains(&run_id), "{}", out.stderr);
    assert_eq!(out.summary_count("gpt", "pass"), planned - stored_before);

    let store = p.store();
    let run = store.run(&run_id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete, "{run:?}");
    assert_eq!(run.planned, planned);
    assert_eq!(store.case_count(&run_id).unwrap(), planned);
    assert_eq!(store.runs().unwrap().len(), 1, "the resume made no new run");

    let rows = p.export(Some(&run_id));
    assert_eq!(rows.len() as u64, planned);
    assert_eq!(case_keys(&rows).len() as u64, planned, "no duplicates");
    assert_eq!(count(&rows, "gpt", "pass") as u64, planned);
    // Exactly the planned variants: the resume followed the run's own plan.
    let want: BTreeSet<(String, String, u64)> = expand(&p, &["--strategy", "one-at-a-time"])
        .iter()
        .flat_map(|v| {
            (0..5).map(|sample| {
                let id = v["variant"].as_str().unwrap().to_string();
                ("gpt".to_string(), id, sample)
            })
        })
        .collect();
    assert_eq!(want.len() as u64, planned);
    assert_eq!(case_keys(&rows), want);
    // Only the missing cases were asked for again (a stored case is never re-run; a case in
    // flight at the kill was not stored, nor cached, so it is asked for once more).
    assert_eq!(
        (server.request_count() - requests_before) as u64,
        planned - stored_before
    );
}

// ---- 8. API key secrecy -------------------------------------------------------------------

#[test]
fn api_key_never_leaves_the_environment() {
    const SECRET: &str = "sk-test-SECRET-abc123";
    let server = TestServer::start(|req, i| {
        let echoed: Vec<String> = req
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        match i % 6 {
            0 => Reply::json(
                500,
                openai_error(
                    &format!("internal error; request headers: {}", echoed.join("; ")),
                    "server_error",
                ),
            ),
            1 => Reply::json(
                401,
                openai_error(
                    &format!("Incorrect API key provided: {SECRET}."),
                    "invalid_api_key",
                ),
            ),
            2 => Reply::Body(
                500,
                vec![("content-type".into(), "text/plain".into())],
                format!("upstream failed for {}", echoed.join(" | ")).into_bytes(),
            ),
            3 => Reply::json(200, openai_completion("gpt", "The order is delayed.")),
            // The key echoed where an error message is cut short (a 200-character excerpt of
            // a plain body, a 300-character excerpt of `error.message`): the cut falls inside
            // the key, 16 characters in.
            4 => Reply::Body(
                502,
                vec![("content-type".into(), "text/plain".into())],
                format!("{}{SECRET}", "e".repeat(200 - 16)).into_bytes(),
            ),
            _ => Reply::json(
                403,
                openai_error(&format!("{}{SECRET}", "e".repeat(300 - 16)), "forbidden"),
            ),
        }
    });
    let p = Project::new(&model(
        "gpt",
        "openai",
        &openai_url(&server),
        "timeout = 5\nmax_retries = 0",
    ));
    p.templatize(ORDER_STATUS);
    // Without -q: the plain progress lines are checked too.
    let sweep = p.run(
        &["sweep", "--strategy", "one-at-a-time", "--axes", "format"],
        &[("TEST_KEY", SECRET)],
    );
    let sweep = sweep.success();
    // The key was sent, so the test means something.
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {SECRET}")))
    );
    let rows = p.export(None);
    assert_eq!(rows.len(), FORMAT_VARIANTS);
    // Requests 0-8 got shapes 0, 1, 2, 3, 4, 5, 0, 1, 2: one answer, eight errors.
    assert_eq!(count(&rows, "gpt", "error"), 8, "{rows:#?}");
    assert_eq!(count(&rows, "gpt", "pass"), 1, "{rows:#?}");
    assert!(
        rows.iter()
            .any(|r| r["error"].as_str().is_some_and(|e| e.contains("HTTP 401"))),
        "{rows:#?}"
    );
    assert!(
        rows.iter().any(|r| r["error"]
            .as_str()
            .is_some_and(|e| e.contains("<redacted>"))),
        "the echoed key was scrubbed: {rows:#?}"
    );

    let mut texts = vec![
        ("sweep stdout", sweep.stdout),
        ("sweep stderr", sweep.stderr),
    ];
    for format in ["jsonl", "csv"] {
        let out = p
            .run(&["export", "--format", format], &[("TEST_KEY", SECRET)])
            .success();
        texts.push(("export stdout", out.stdout));
        texts.push(("export stderr", out.stderr));
    }
    // Neither the key nor a telling piece of it (its middle: what a cut-short echo leaves
    // once the first and last eight characters are scrubbed).
    const PIECE: &str = "SECRET";
    for (what, text) in &texts {
        assert!(!text.contains(SECRET), "the key is in the {what}:\n{text}");
        assert!(
            !text.contains(PIECE),
            "part of the key is in the {what}:\n{text}"
        );
    }
    // Every file of the project: the store (with -wal / -shm when present), probes, config.
    let files = p.files();
    assert!(
        files
            .iter()
            .any(|(f, _)| f.ends_with(".cliffprobe/cliffprobe.db"))
    );
    assert!(
        files
            .iter()
            .any(|(f, _)| f.extension().is_some_and(|e| e == "yaml"))
    );
    for (path, bytes) in &files {
        assert!(
            !contains_bytes(bytes, SECRET.as_bytes()),
            "the key is in {}",
            path.display()
        );
        assert!(
            !contains_bytes(bytes, PIECE.as_bytes()),
            "part of the key is in {}",
            path.display()
        );
    }
}

// ---- 9. Response cache --------------------------------------------------------------------

#[test]
fn response_cache_answers_repeat_sweeps() {
    let (server, p) = order_delayed_project();

    let first = p.sweep(&FORMAT_AXIS, &env()).success();
    assert_eq!(first.summary_count("gpt", "cached"), 0);
    assert_eq!(server.request_count(), FORMAT_VARIANTS);
    let first_rows = p.export(None);
    assert!(first_rows.iter().all(|r| r["cached"] == false));

    let second = sweep_from_the_cache(&p, &server);
    assert_eq!(second.summary_count("gpt", "pass"), FORMAT_VARIANTS as u64);
    let rows = p.export(None);
    assert_ne!(rows[0]["run"], first_rows[0]["run"], "a new run");
    assert_eq!(rows.len(), FORMAT_VARIANTS);
    for r in &rows {
        assert_eq!(r["cached"], true, "{r}");
        assert_eq!(r["status"], "pass", "{r}");
        assert_eq!(r["output"], "The order is delayed.");
    }
    assert_eq!(
        case_keys(&rows),
        case_keys(&first_rows).into_iter().collect()
    );

    let mut args = FORMAT_AXIS.to_vec();
    args.push("--no-cache");
    let third = p.sweep(&args, &env()).success();
    assert_eq!(server.request_count(), 2 * FORMAT_VARIANTS);
    assert_eq!(third.summary_count("gpt", "cached"), 0);
    let rows = p.export(None);
    assert_eq!(rows.len(), FORMAT_VARIANTS);
    assert!(
        rows.iter()
            .all(|r| r["cached"] == false && r["status"] == "pass")
    );
    assert_eq!(p.store().runs().unwrap().len(), 3);
}

#[test]
fn a_probe_renamed_after_a_sweep_is_answered_from_the_cache_under_its_new_variant_ids() {
    // Renaming a probe changes its digest, and so every variant id, but not a byte of the
    // requests: the answers come from the cache for variants the store has never seen, whose
    // rows must be written before their cases (the sweep skips writing only variants the
    // store already has).
    let (server, p) = order_delayed_project();
    p.sweep(&FORMAT_AXIS, &env()).success();
    let first_rows = p.export(None);

    let (probe, bytes) = p
        .files()
        .into_iter()
        .find(|(f, _)| {
            f.starts_with(p.root().join("probes")) && f.extension().is_some_and(|e| e == "yaml")
        })
        .expect("the templatized probe");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("id: order-status-table\n"), "{text}");
    std::fs::write(
        &probe,
        text.replacen("id: order-status-table\n", "id: order-status-renamed\n", 1),
    )
    .unwrap();

    sweep_from_the_cache(&p, &server);
    let rows = p.export(None);
    assert_eq!(rows.len(), FORMAT_VARIANTS);
    let old: BTreeSet<_> = case_keys(&first_rows);
    assert!(
        case_keys(&rows).is_disjoint(&old),
        "new variant ids: {rows:?}"
    );
    let db = rusqlite::Connection::open(p.store_path()).unwrap();
    let variants: i64 = db
        .query_row("SELECT COUNT(*) FROM variants", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        variants,
        2 * FORMAT_VARIANTS as i64,
        "both versions' variants stored"
    );
    assert!(rows.iter().all(|r| r["probe"] == "order-status-renamed"));
    // And a report over the new run reads them.
    let report = p.run(&["report", "--format", "json"], &[]).success();
    assert!(
        report.stdout.contains("order-status-renamed"),
        "{}",
        report.stdout
    );
}

// ---- 10. Bad config -----------------------------------------------------------------------

#[test]
fn bad_config_names_file_and_line() {
    let p = Project::new("");
    p.templatize(ORDER_STATUS);
    // An unknown key in a model table, on line 7.
    p.write(
        "cliffprobe.toml",
        "suite = \"probes\"\n\n[models.gpt]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"gpt-2024-01-01\"\nmax_concurency = 4\n",
    );
    let out = p.sweep(&FORMAT_AXIS, &env());
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("cliffprobe.toml:7"), "{}", out.stderr);
    assert!(out.stderr.contains("max_concurency"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // An unknown key in [sweep], on line 4.
    p.write(
        "cliffprobe.toml",
        "suite = \"probes\"\n\n[sweep]\nconcurrancy = 3\n",
    );
    let out = p.sweep(&[], &env());
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("cliffprobe.toml:4"), "{}", out.stderr);
    assert!(out.stderr.contains("concurrancy"), "{}", out.stderr);

    // A missing key variable: exit 2, naming the variable and the model.
    p.write_config(&model("gpt", "openai", "http://127.0.0.1:9/v1", ""));
    let o = p
        .cmd()
        .args(["sweep", "-q"])
        .env_remove("TEST_KEY")
        .output()
        .unwrap();
    let out = project::Outcome {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("TEST_KEY"), "{}", out.stderr);
    assert!(out.stderr.contains("gpt"), "{}", out.stderr);

    // Nothing was written by any of these.
    assert!(!p.root().join(".cliffprobe").exists());
}
