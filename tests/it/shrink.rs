//! `cliffprobe shrink` through the real binary against a local HTTP server whose answer depends
//! on the variant in known ways: the minimal cause it reports is exactly the planted one, a
//! second shrink is answered from the cache, a broken probe stops at the canonical, errors are
//! never failures, and `--promote` writes the minimal variant back.

use crate::support::http_server;
use crate::support::project;

use cliffprobe::probe::{self, Probe};
use http_server::{Reply, TestServer};
use project::Project;
use serde_json::{Value, json};

const RIGHT: &str = "Order A-10442 is delayed; the new dispatch date is 9 October.";
const WRONG: &str = "Good news: order A-10442 has shipped.";
/// What the `terse-expert` persona appends to the question.
const TERSE: &str = "Just the answer, skip the explanation.";
const KEY: [(&str, &str); 1] = [("TEST_KEY", "k")];

/// Whether a chat request's tool output is rendered as XML (not an HTML table).
fn tool_output_is_xml(body: &Value) -> bool {
    body["messages"].as_array().is_some_and(|ms| {
        ms.iter().any(|m| {
            m["role"] == "tool"
                && m["content"].as_str().is_some_and(|c| {
                    let c = c.trim_start();
                    c.starts_with('<') && !c.starts_with("<table")
                })
        })
    })
}

/// Whether the last user message was asked in the terse-expert voice.
fn terse(body: &Value) -> bool {
    body["messages"].as_array().is_some_and(|ms| {
        ms.iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .is_some_and(|c| c.contains(TERSE))
    })
}

/// A server that answers wrongly exactly when `wrong(request body)`.
fn server(wrong: fn(&Value) -> bool) -> TestServer {
    TestServer::start(move |req, _| {
        let answer = if wrong(req.json()) { WRONG } else { RIGHT };
        Reply::json(200, http_server::openai_completion("gpt", answer))
    })
}

fn project(server: &TestServer, extra: &str) -> Project {
    let p = Project::new(&project::model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        extra,
    ));
    p.templatize("order-status-table.yaml");
    p
}

/// The id of the variant with exactly these axis values changed (from `cliffprobe expand`).
fn variant_with(p: &Project, axes: &[(&str, &str)]) -> String {
    let filter: Vec<String> = axes.iter().map(|(a, v)| format!("{a}={v}")).collect();
    let out = p
        .run(
            &["expand", "--strategy", "full", "--axes", &filter.join(",")],
            &[],
        )
        .success();
    for line in out.stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if axes.iter().all(|(a, val)| v["axes"][*a] == *val) {
            return v["variant"].as_str().unwrap().to_string();
        }
    }
    panic!("no variant with {axes:?} in:\n{}", out.stdout);
}

fn shrink_json(p: &Project, args: &[&str], code: i32) -> Value {
    let mut all = vec![
        "shrink",
        "order-status-table",
        "--model",
        "gpt",
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    let out = p.run(&all, &KEY).exits(code);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout was\n{}\nstderr:\n{}", out.stdout, out.stderr))
}

fn probe_file(p: &Project) -> Probe {
    let files = probe::discover(&[p.root().join("probes")]).unwrap();
    assert_eq!(files.len(), 1);
    Probe::load(&files[0]).unwrap()
}

#[test]
fn shrink_finds_format_xml_alone_from_four_changed_axes_and_reruns_from_the_cache() {
    let s = server(tool_output_is_xml);
    let p = project(&s, "");
    let start = variant_with(
        &p,
        &[
            ("persona", "terse-expert"),
            ("phrasing", "direct"),
            ("length", "2k-end"),
            ("format", "xml"),
        ],
    );
    let v = shrink_json(&p, &["--variant", &start], 0);
    assert_eq!(v["verdict"], "minimal", "{v:#}");
    assert_eq!(v["minimal"]["axes"], json!({"format": "xml"}));
    assert_eq!(v["minimal"]["one_minimal"], true);
    assert_eq!(v["start"]["variant"], start.as_str());
    assert_eq!(v["start"]["axes"].as_object().unwrap().len(), 4);
    let tested = v["tested"].as_array().unwrap();
    // The canonical first, and it passes; then the start, which fails.
    assert_eq!(tested[0]["canonical"], true);
    assert_eq!(tested[0]["outcome"], "pass");
    assert_eq!(tested[1]["variant"], start.as_str());
    assert_eq!(tested[1]["outcome"], "fail");
    // Every configuration tested is graded as the server decides it: fail iff format=xml.
    for t in tested {
        let xml = t["axes"]["format"] == "xml";
        assert_eq!(t["outcome"], if xml { "fail" } else { "pass" }, "{t:#}");
    }
    // Fewer configurations than the 16 subsets; one request each, all counted.
    assert!(tested.len() < 16, "{} configurations", tested.len());
    assert_eq!(v["calls"], tested.len() as u64);
    assert_eq!(s.request_count(), tested.len());

    // A second shrink asks the cache, not the server.
    let again = shrink_json(&p, &["--variant", &start], 0);
    assert_eq!(s.request_count(), tested.len(), "the re-run made requests");
    assert_eq!(again["calls"], 0);
    assert_eq!(again["cache_hits"], tested.len() as u64);
    assert_eq!(again["minimal"], v["minimal"]);

    // The text form says it in words.
    let out = p
        .run(
            &[
                "shrink",
                "order-status-table",
                "--model",
                "gpt",
                "--variant",
                &start,
            ],
            &KEY,
        )
        .success();
    assert!(
        out.stdout.contains("fails when format=xml alone"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("0 calls made"), "{}", out.stdout);
}

#[test]
fn shrink_reports_a_pair_that_fails_only_together() {
    let s = server(|b| tool_output_is_xml(b) && terse(b));
    let p = project(&s, "");
    let start = variant_with(
        &p,
        &[
            ("persona", "terse-expert"),
            ("phrasing", "direct"),
            ("format", "xml"),
        ],
    );
    let v = shrink_json(&p, &["--variant", &start, "--repeats", "3"], 0);
    assert_eq!(v["verdict"], "minimal", "{v:#}");
    assert_eq!(
        v["minimal"]["axes"],
        json!({"persona": "terse-expert", "format": "xml"})
    );
    assert_eq!(v["minimal"]["one_minimal"], true);
    assert_eq!(v["repeats"], 3);
    let tested = v["tested"].as_array().unwrap();
    // Each alone was tested and passes (3 samples each).
    for single in [json!({"persona": "terse-expert"}), json!({"format": "xml"})] {
        let t = tested
            .iter()
            .find(|t| t["axes"] == single)
            .unwrap_or_else(|| panic!("{single} not tested: {v:#}"));
        assert_eq!(t["outcome"], "pass");
        assert_eq!(t["passed"], 3);
    }
    assert_eq!(s.request_count() as u64, 3 * tested.len() as u64);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("persona=terse-expert and format=xml together; each alone passes"),
        "{v:#}"
    );
}

#[test]
fn shrink_starts_from_the_runs_minimal_failing_variant_and_promotes_it() {
    let s = server(tool_output_is_xml);
    let p = project(&s, "");
    p.sweep(
        &[
            "--strategy",
            "full",
            "--axes",
            "persona=terse-expert,format=xml",
        ],
        &KEY,
    )
    .success();
    let swept = s.request_count();
    assert_eq!(swept, 4);
    let v = shrink_json(&p, &["--promote"], 0);
    assert_eq!(v["verdict"], "minimal", "{v:#}");
    assert!(v["start"]["from"].as_str().unwrap().starts_with("run "));
    assert_eq!(v["start"]["axes"], json!({"format": "xml"}));
    assert_eq!(v["minimal"]["axes"], json!({"format": "xml"}));
    // The sweep already asked both configurations: no new request.
    assert_eq!(v["calls"], 0);
    assert_eq!(s.request_count(), swept);
    // Promoted: exactly the xml variant, once, even when promoted again.
    let promoted = probe_file(&p);
    assert_eq!(promoted.cases.len(), 1);
    assert_eq!(promoted.cases[0].axes, {
        let mut m = indexmap::IndexMap::new();
        m.insert("format".to_string(), "xml".to_string());
        m
    });
    assert_eq!(
        promoted.cases[0].variant,
        v["minimal"]["variant"].as_str().unwrap()
    );
    assert_eq!(promoted.cases[0].failed_on, vec!["gpt".to_string()]);
    shrink_json(&p, &["--promote"], 0);
    assert_eq!(probe_file(&p).cases.len(), 1);
}

#[test]
fn a_failing_canonical_means_broken_and_stops() {
    let s = server(|_| true);
    let p = project(&s, "");
    let start = variant_with(&p, &[("persona", "terse-expert"), ("format", "xml")]);
    let v = shrink_json(&p, &["--variant", &start], 0);
    assert_eq!(v["verdict"], "canonical-fails", "{v:#}");
    assert_eq!(v["tested"].as_array().unwrap().len(), 1);
    assert!(v["message"].as_str().unwrap().contains("broken"));
    assert_eq!(s.request_count(), 1);
}

#[test]
fn errors_are_unresolved_never_failures() {
    // 503 for every XML variant: the start can never be shown to fail.
    let s = TestServer::start(|req, _| {
        if tool_output_is_xml(req.json()) {
            Reply::json(503, http_server::openai_error("overloaded", "server_error"))
        } else {
            Reply::json(200, http_server::openai_completion("gpt", RIGHT))
        }
    });
    let p = project(&s, "max_retries = 0");
    let start = variant_with(&p, &[("persona", "terse-expert"), ("format", "xml")]);
    let v = shrink_json(&p, &["--variant", &start], 1);
    assert_eq!(v["verdict"], "start-unresolved", "{v:#}");
    assert_eq!(v["tested"][1]["outcome"], "unresolved");
    assert_eq!(v["tested"][1]["errors"], 1);
    assert_eq!(v["tested"][1]["failed"], 0);
    assert!(v["minimal"].is_null());
}

#[test]
fn nothing_failed_is_a_clear_input_error() {
    let s = server(|_| false);
    let p = project(&s, "");
    p.sweep(&["--strategy", "one-at-a-time", "--axes", "format"], &KEY)
        .success();
    let out = p
        .run(&["shrink", "order-status-table", "--model", "gpt"], &KEY)
        .exits(2);
    assert!(out.stderr.contains("nothing to shrink"), "{}", out.stderr);
    let out = p
        .run(&["shrink", "order-status-table", "--model", "nope"], &KEY)
        .exits(2);
    assert!(out.stderr.contains("--model"), "{}", out.stderr);
    let out = p
        .run(
            &[
                "shrink",
                "order-status-table",
                "--model",
                "gpt",
                "--variant",
                "0123456789abcdef",
            ],
            &KEY,
        )
        .exits(2);
    assert!(
        out.stderr.contains("no variant `0123456789abcdef`"),
        "{}",
        out.stderr
    );
}

/// The probe file the order-status incident becomes.
const PROBE_FILE: &str =
    "probes/reading-a-status-from-a-tool-s-table-output/order-status-table.yaml";

/// Replaces the probe's checks (everything from `checks:` to `axes:`) with `checks`.
fn set_checks(p: &Project, header_extra: &str, checks: &str) {
    let text = std::fs::read_to_string(p.root().join(PROBE_FILE)).unwrap();
    let start = text.find("\nchecks:\n").unwrap();
    let end = text.find("\naxes:\n").unwrap();
    let edited = format!("{}\n{checks}{}", &text[..start], &text[end..]).replacen(
        "\ntier: hard\n",
        &format!("\ntier: hard\n{header_extra}"),
        1,
    );
    p.write(PROBE_FILE, &edited);
}

fn is_judge(body: &Value) -> bool {
    body["model"] == "judge-2024-01-01"
}

/// The judge passes an answer that says "delayed", in prose around a JSON verdict.
fn judge_reply(body: &Value) -> Reply {
    let user = body["messages"][1]["content"].as_str().unwrap();
    let answer = user
        .rsplit("## The assistant's answer to grade")
        .next()
        .unwrap();
    let verdict = if answer.contains("delayed") {
        json!({"verdict": "pass", "reason": "JUDGE-OK"})
    } else {
        json!({"verdict": "fail", "reason": "JUDGE-NO: says it shipped"})
    };
    Reply::json(
        200,
        http_server::openai_completion("judge", &format!("My verdict: {verdict}")),
    )
}

fn judge_project(s: &TestServer, with_judge: bool) -> Project {
    let url = format!("{}/v1", s.url());
    let mut models = project::model("gpt", "openai", &url, "");
    models.push_str(&project::model("judge", "openai", &url, ""));
    if with_judge {
        models.push_str("[judge]\nmodel = \"judge\"\n");
    }
    let p = Project::new(&models);
    p.templatize("order-status-table.yaml");
    set_checks(
        &p,
        "",
        "checks:\n- judge:\n    rubric: Says that order A-10442 is delayed, never that it shipped.",
    );
    p
}

#[test]
fn shrink_grades_judge_checks_with_the_judge_model_and_caches_the_verdicts() {
    let s = TestServer::start(|req, _| {
        let body = req.json();
        if is_judge(body) {
            judge_reply(body)
        } else {
            let answer = if tool_output_is_xml(body) {
                WRONG
            } else {
                RIGHT
            };
            Reply::json(200, http_server::openai_completion("gpt", answer))
        }
    });
    let p = judge_project(&s, true);
    let start = variant_with(&p, &[("persona", "terse-expert"), ("format", "xml")]);
    let v = shrink_json(&p, &["--variant", &start], 0);
    assert_eq!(v["verdict"], "minimal", "{v:#}");
    assert_eq!(v["minimal"]["axes"], json!({"format": "xml"}));
    assert_eq!(v["judge"], "judge");
    let tested = v["tested"].as_array().unwrap();
    // One judge verdict per answer: the judge graded every configuration (nothing ungraded).
    let model_calls = s.requests().iter().filter(|r| !is_judge(r.json())).count();
    let judge_calls = s.requests().iter().filter(|r| is_judge(r.json())).count();
    assert_eq!(model_calls, tested.len());
    assert_eq!(judge_calls, tested.len());
    assert_eq!(v["judge_calls"], tested.len() as u64);
    assert!(tested.iter().all(|t| t["errors"] == 0), "{v:#}");
    assert_eq!(tested[0]["outcome"], "pass", "the canonical passes");

    // Again: the answers and the verdicts come from the response cache.
    let before = s.request_count();
    let again = shrink_json(&p, &["--variant", &start], 0);
    assert_eq!(s.request_count(), before, "no call the second time");
    assert_eq!(again["minimal"], v["minimal"]);
    assert_eq!(again["judge_cache_hits"], tested.len() as u64);
    assert!(again.get("judge_calls").is_none(), "{again:#}");

    // A judge whose replies never hold a verdict: errors, never failures.
    {
        let s2 = TestServer::start(|req, _| {
            let body = req.json();
            let text = if is_judge(body) {
                "I cannot decide."
            } else {
                RIGHT
            };
            Reply::json(200, http_server::openai_completion("x", text))
        });
        let p2 = judge_project(&s2, true);
        let v = shrink_json(&p2, &["--variant", &start], 1);
        assert_eq!(v["verdict"], "canonical-unresolved", "{v:#}");
        let err = v["tested"][0]["error"].as_str().unwrap();
        assert!(err.contains("judge:") && err.contains("verdict"), "{err}");
        assert_eq!(v["tested"][0]["judge_calls"], 3, "re-asked up to 3 replies");
    }
}

#[test]
fn shrink_refuses_judge_checks_without_a_judge_table() {
    let s =
        TestServer::start(|_, _| Reply::json(200, http_server::openai_completion("gpt", RIGHT)));
    let p = judge_project(&s, false);
    let out = p
        .run(
            &[
                "shrink",
                "order-status-table",
                "--model",
                "gpt",
                "--variant",
                "0",
            ],
            &KEY,
        )
        .exits(2);
    assert!(out.stderr.contains("checks[0].judge"), "{}", out.stderr);
    assert!(out.stderr.contains("[judge]"), "{}", out.stderr);
    assert_eq!(s.request_count(), 0, "refused before any call");
}

#[test]
fn shrink_an_invariant_probe_compares_each_configuration_with_the_canonical() {
    // No expected answer: the canonical's answer is the reference. The model answers in other
    // words (same answer key) for the terse persona, and differently when the table is XML.
    let s = TestServer::start(|req, _| {
        let body = req.json();
        let answer = if tool_output_is_xml(body) {
            "Status: shipped."
        } else if terse(body) {
            "  status: DELAYED "
        } else {
            "Status: delayed."
        };
        Reply::json(200, http_server::openai_completion("gpt", answer))
    });
    let p = project(&s, "");
    set_checks(
        &p,
        "invariant: true\nanswer_pattern: 'tatus: (\\w+)'\n",
        "checks: []",
    );
    let start = variant_with(
        &p,
        &[
            ("persona", "terse-expert"),
            ("length", "2k-end"),
            ("format", "xml"),
        ],
    );
    let v = shrink_json(&p, &["--variant", &start, "--repeats", "2"], 0);
    assert_eq!(v["verdict"], "minimal", "{v:#}");
    assert_eq!(v["minimal"]["axes"], json!({"format": "xml"}));
    assert_eq!(v["invariant"], true);
    let tested = v["tested"].as_array().unwrap();
    assert_eq!(tested[0]["canonical"], true);
    assert_eq!(tested[0]["passed"], 2, "the canonical is the reference");
    // Every configuration with the XML table differs from the canonical; every other one
    // (the terse persona's "  status: DELAYED " included) has the canonical's answer key.
    for t in tested {
        let xml = t["axes"].get("format").is_some();
        assert_eq!(t["outcome"], if xml { "fail" } else { "pass" }, "{t:#}");
    }
    assert!(
        tested
            .iter()
            .any(|t| t["axes"].get("persona").is_some() && t["axes"].get("format").is_none()),
        "a terse configuration was compared: {v:#}"
    );
    // The text output says how it was graded.
    let out = p
        .run(
            &[
                "shrink",
                "order-status-table",
                "--model",
                "gpt",
                "--variant",
                &start,
            ],
            &KEY,
        )
        .success();
    assert!(
        out.stdout
            .contains("minimal cause: fails when format=xml alone"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("invariant probe"), "{}", out.stdout);
}

#[test]
fn an_invariant_variant_without_a_canonical_answer_is_never_a_pass() {
    // The canonical always errors: nothing can be compared, the search concludes nothing.
    let s = TestServer::start(|req, _| {
        let body = req.json();
        if tool_output_is_xml(body) {
            Reply::json(200, http_server::openai_completion("gpt", "shipped"))
        } else {
            Reply::json(
                400,
                http_server::openai_error("bad request", "invalid_request_error"),
            )
        }
    });
    let p = project(&s, "max_retries = 0");
    set_checks(&p, "invariant: true\n", "checks: []");
    let start = variant_with(&p, &[("format", "xml")]);
    let v = shrink_json(&p, &["--variant", &start], 1);
    assert_eq!(v["verdict"], "canonical-unresolved", "{v:#}");
    assert_eq!(v["tested"].as_array().unwrap().len(), 1);
}
