//! `cliffprobe models` and `models --check`, and the check a first sweep runs, with the real
//! binary against local servers that play the failures real servers show: a rejected key, a
//! wrong URL, no tool support, a context window too small for the suite's longest variant, and
//! llama-cpp-python's 500 on a tool-call turn without `content`.

use crate::support::http_server;
use crate::support::project;

use http_server::{ReceivedRequest, Reply, TestServer, openai_completion, openai_error};
use project::{Outcome, Project, model};
use serde_json::{Value, json};

const KEY: &str = "test-key-123";

/// A well-behaved OpenAI-compatible server: calls the tool when offered one, answers otherwise.
/// `window`: prompts longer than this many characters get llama-cpp-python's context error.
fn good_server(window: Option<usize>) -> TestServer {
    TestServer::start(move |req, _| answer(req, window))
}

fn answer(req: &ReceivedRequest, window: Option<usize>) -> Reply {
    if req.method == "GET" {
        return Reply::json(404, json!({"detail": "Not Found"}));
    }
    let body = req.json();
    let chars: usize = body["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| m["content"].as_str().map_or(0, str::len))
                .sum()
        })
        .unwrap_or(0);
    if let Some(w) = window
        && chars > w
    {
        return Reply::json(
            400,
            json!({"error": {"message": format!("Requested tokens ({}) exceed context window of {}", chars / 4, w / 4), "type": "invalid_request_error"}}),
        );
    }
    let last_is_tool = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(|m| m["role"] == "tool");
    if body.get("tools").is_some() && !last_is_tool {
        return Reply::json(
            200,
            http_server::openai_tool_calls(
                "m",
                &[("call_9", "get_order_status", json!({"order_id": "A-17"}))],
            ),
        );
    }
    // Usage counts the prompt as a server would (about four characters a token).
    let mut done = openai_completion("m", "ready");
    done["usage"]["prompt_tokens"] = json!(chars / 4 + 1);
    Reply::json(200, done)
}

fn project_for(url: &str, extra: &str) -> Project {
    Project::new(&model("local", "openai", &format!("{url}/v1"), extra))
}

fn check(p: &Project, args: &[&str]) -> Outcome {
    let mut all = vec!["models", "--check"];
    all.extend_from_slice(args);
    p.run(&all, &[("TEST_KEY", KEY)])
}

fn check_json(p: &Project) -> (Outcome, Value) {
    let out = check(p, &["--format", "json"]);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", out.stdout, out.stderr));
    (out, v)
}

/// `sweep` with the check on (the test harness turns it off by default).
fn sweep_checked(p: &Project, args: &[&str]) -> Outcome {
    let mut c = p.cmd();
    c.env_remove("CLIFFPROBE_NO_CHECK")
        .env("TEST_KEY", KEY)
        .args(["sweep", "-q"])
        .args(args);
    let out = c.output().expect("run cliffprobe");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_good_server_passes_with_every_field() {
    let server = good_server(None);
    let p = project_for(&server.url(), "");
    p.templatize("order-status-table.yaml");
    let (out, v) = check_json(&p);
    let out = out.success();
    let c = &v[0];
    assert_eq!(c["model"], "local", "{}", out.stdout);
    assert_eq!(c["reachable"], true);
    assert_eq!(c["key_accepted"], true);
    assert_eq!(c["tool_calls"], "called");
    assert_eq!(c["round_trip"], true);
    assert_eq!(c["longest_variant"]["accepted"], true);
    assert!(c["latency_ms"].as_u64().is_some());
    assert_eq!(c["problems"], json!([]));
    // The round trip carries the model's own call, its result, and content "" on the call turn.
    let reqs = server.requests();
    let trip = reqs
        .iter()
        .find(|r| {
            r.method == "POST"
                && r.json()["messages"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"))
        })
        .expect("a round-trip request");
    let msgs = trip.json()["messages"].as_array().unwrap();
    let call_turn = msgs.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(call_turn["content"], "");
    assert_eq!(call_turn["tool_calls"][0]["id"], "call_9");
    assert_eq!(msgs.last().unwrap()["tool_call_id"], "call_9");
    assert_eq!(
        trip.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    // Text output: the table and the count.
    let text = check(&p, &[]).success();
    assert!(
        text.stdout.contains("1 of 1 model(s) passed"),
        "{}",
        text.stdout
    );
    // Listing says it was checked.
    let list = p.run(&["models"], &[]).success();
    assert!(list.stdout.contains("local"), "{}", list.stdout);
    assert!(list.stdout.contains("yes"), "{}", list.stdout);
}

#[test]
fn a_wrong_key_is_named_with_its_variable() {
    let server = TestServer::start(|_, _| {
        Reply::json(
            401,
            openai_error(
                "Authentication Error, Invalid proxy server token passed.",
                "auth_error",
            ),
        )
    });
    let p = project_for(&server.url(), "");
    let out = check(&p, &[]).exits(1);
    assert!(out.stdout.contains("✗ local [key]"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Invalid proxy server token"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("$TEST_KEY"), "{}", out.stdout);
    assert!(
        !out.stdout.contains(KEY),
        "the key is never echoed: {}",
        out.stdout
    );
    // Only the minimal request was sent: nothing after a rejected key.
    assert_eq!(server.request_count(), 1);
}

#[test]
fn a_wrong_url_says_nothing_answers_or_no_endpoint_is_there() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = project_for(
        &format!("http://127.0.0.1:{port}"),
        "timeout = 5\nmax_retries = 0",
    );
    let (out, v) = check_json(&p);
    out.exits(1);
    assert_eq!(v[0]["reachable"], false);
    assert_eq!(v[0]["problems"][0]["step"], "reach");
    assert!(
        v[0]["problems"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("nothing answers at"),
        "{v}"
    );
    // A server that is up but has no chat endpoint there (base_url without /v1).
    let server = TestServer::start(|_, _| Reply::json(404, json!({"detail": "Not Found"})));
    let p = Project::new(&model("local", "openai", &server.url(), ""));
    let out = check(&p, &[]).exits(1);
    assert!(
        out.stdout.contains("✗ local [reachable]: HTTP 404"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("ending in /v1"), "{}", out.stdout);
}

#[test]
fn a_server_without_tool_support_fails_the_tool_step() {
    let server = TestServer::start(|req, _| {
        if req.json().get("tools").is_some() {
            Reply::json(
                400,
                openai_error(
                    "registry/smol:135m does not support tools",
                    "invalid_request_error",
                ),
            )
        } else {
            Reply::json(200, openai_completion("m", "ready"))
        }
    });
    let p = project_for(&server.url(), "");
    let (out, v) = check_json(&p);
    out.exits(1);
    assert_eq!(v[0]["reachable"], true);
    assert_eq!(v[0]["tool_calls"], "rejected");
    assert_eq!(v[0]["round_trip"], Value::Null);
    let problem = &v[0]["problems"][0];
    assert_eq!(problem["step"], "tool_call");
    assert!(
        problem["server_said"]
            .as_str()
            .unwrap()
            .contains("does not support tools"),
        "{v}"
    );
}

#[test]
fn a_model_that_does_not_call_the_tool_is_a_warning_not_a_failure() {
    let server =
        TestServer::start(|_, _| Reply::json(200, openai_completion("m", "I think it shipped.")));
    let p = project_for(&server.url(), "");
    let out = check(&p, &[]).success();
    assert!(out.stdout.contains("not called"), "{}", out.stdout);
    assert!(
        out.stdout.contains("! local: the model answered in text"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_context_window_too_small_for_the_longest_variant_is_found() {
    // Short requests pass; the suite's longest variant (long documents) does not.
    let server = good_server(Some(4000));
    let p = project_for(&server.url(), "");
    p.templatize("long-contract-notice-period.yaml");
    let (out, v) = check_json(&p);
    out.exits(1);
    let c = &v[0];
    assert_eq!(c["round_trip"], true);
    assert_eq!(c["longest_variant"]["accepted"], false);
    assert_eq!(c["longest_variant"]["too_long"], true);
    assert_eq!(c["problems"][0]["step"], "context");
    let said = c["problems"][0]["server_said"].as_str().unwrap();
    assert!(said.contains("exceed context window"), "{said}");
    assert!(said.contains("probe "), "{said}");
    assert!(
        c["problems"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("--n_ctx"),
        "{c}"
    );
}

#[test]
fn a_reported_window_smaller_than_the_longest_variant_is_found_even_when_accepted() {
    // A server that reports n_ctx on /props and silently truncates (as Ollama does).
    let server = TestServer::start(|req, _| {
        if req.method == "GET" && req.path == "/props" {
            return Reply::json(200, json!({"default_generation_settings": {"n_ctx": 512}}));
        }
        answer(req, None)
    });
    let p = project_for(&server.url(), "");
    p.templatize("long-contract-notice-period.yaml");
    let (out, v) = check_json(&p);
    out.exits(1);
    assert_eq!(v[0]["context_window"], 512);
    assert_eq!(v[0]["context_window_source"], "/props n_ctx");
    assert_eq!(v[0]["problems"][0]["step"], "context");
    assert_eq!(v[0]["longest_variant"]["too_long"], true);
    let text = check(&p, &[]).exits(1);
    assert!(text.stdout.contains("512 (too small)"), "{}", text.stdout);
}

#[test]
fn a_window_in_the_model_listing_is_read() {
    // vLLM's /v1/models carries max_model_len.
    let server = TestServer::start(|req, _| {
        if req.method == "GET" && req.path == "/v1/models" {
            return Reply::json(
                200,
                json!({"object": "list", "data": [{"id": "local-2024-01-01", "max_model_len": 32768}]}),
            );
        }
        answer(req, None)
    });
    let p = project_for(&server.url(), "");
    let (out, v) = check_json(&p);
    out.success();
    assert_eq!(v[0]["context_window"], 32768);
    assert_eq!(v[0]["context_window_source"], "/v1/models max_model_len");
}

/// llama-cpp-python 0.3.36's chat templates read `message.content`: an assistant tool-call turn
/// without the key is a 500. The default wire shape passes; `compat.tool_call_content = "omit"`
/// reproduces the failure, and the check says which setting to change.
#[test]
fn the_round_trip_shape_is_checked_and_the_compat_setting_named() {
    let llama_like = || {
        TestServer::start(|req, _| {
            if req.method == "POST"
                && req.json()["messages"].as_array().is_some_and(|ms| {
                    ms.iter()
                        .any(|m| m["role"] == "assistant" && !m["content"].is_string())
                })
            {
                return Reply::json(
                    500,
                    json!({"error": {"message": "'dict object' has no attribute 'content'", "type": "internal_server_error"}}),
                );
            }
            answer(req, None)
        })
    };
    let server = llama_like();
    let p = project_for(&server.url(), "");
    check(&p, &[]).success();

    let server = llama_like();
    let p = project_for(
        &server.url(),
        "max_retries = 0\n[models.local.compat]\ntool_call_content = \"omit\"",
    );
    let out = check(&p, &[]).exits(1);
    assert!(
        out.stdout.contains("✗ local [round trip]"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("has no attribute 'content'"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("[models.local.compat] tool_call_content = \"empty\""),
        "{}",
        out.stdout
    );
}

#[test]
fn the_mock_passes_and_is_named_as_the_mock() {
    let p = Project::new("[models.demo]\nprovider = \"mock\"\nmodel = \"mock-steady-1\"\n");
    let out = check(&p, &[]).success();
    assert!(out.stdout.contains("demo (mock)"), "{}", out.stdout);
    assert!(out.stdout.contains("built-in mock"), "{}", out.stdout);
    let list = p.run(&["models", "--format", "json"], &[]).success();
    let v: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(v[0]["provider"], "mock");
}

#[test]
fn unknown_names_and_formats_are_input_errors() {
    let p = Project::new("[models.demo]\nprovider = \"mock\"\nmodel = \"mock-steady-1\"\n");
    let out = p.run(&["models", "--check", "nope"], &[]).exits(2);
    assert!(out.stderr.contains("no model `nope`"), "{}", out.stderr);
    assert!(out.stderr.contains("demo"), "{}", out.stderr);
    p.run(&["models", "--format", "yaml"], &[]).exits(2);
}

#[test]
fn a_first_sweep_checks_the_model_once_and_a_broken_one_fails_in_seconds() {
    let server = good_server(None);
    let p = project_for(&server.url(), "");
    p.templatize("order-status-table.yaml");
    let args = ["--strategy", "one-at-a-time", "--axes", "format"];
    let first = sweep_checked(&p, &args).success();
    assert!(
        first.stderr.contains("checking local before the sweep"),
        "{}",
        first.stderr
    );
    let checks = server.request_count();
    assert!(checks > 9, "the check's requests and the sweep's");
    // Reached before: no check the second time.
    let second = sweep_checked(&p, &[&args[..], &["--no-cache"]].concat()).success();
    assert!(!second.stderr.contains("checking"), "{}", second.stderr);

    // A wrong key fails before any case is planned or stored.
    let refusing =
        TestServer::start(|_, _| Reply::json(401, openai_error("invalid api key", "auth")));
    let p = project_for(&refusing.url(), "");
    p.templatize("order-status-table.yaml");
    let started = std::time::Instant::now();
    let out = sweep_checked(&p, &args).exits(1);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(out.stderr.contains("✗ local [key]"), "{}", out.stderr);
    assert!(out.stderr.contains("no sweep started"), "{}", out.stderr);
    assert_eq!(refusing.request_count(), 1);
    assert!(!p.store_path().exists(), "nothing stored");
    // --no-check goes ahead (and records errors, as before).
    let out = sweep_checked(&p, &[&args[..], &["--no-check"]].concat());
    assert!(!out.stderr.contains("checking"), "{}", out.stderr);
    assert!(refusing.request_count() > 1);
}
