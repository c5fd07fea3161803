//! Judge checks and invariant probes through the real binary, against one local HTTP server
//! that plays both the graded model and the judge (routed by the `model` field of the body).
//!
//! The graded model answers "delayed" except when the order table reaches it as XML or an HTML
//! table, where it says "shipped"; the judge passes answers that say "delayed". Statuses,
//! stored reasons, judge errors, the cache and the missing-`[judge]` refusal are checked on the
//! export; invariance is checked through `cliffprobe brittleness --format json`.

use crate::support::http_server;
use crate::support::project;

use http_server::{Reply, TestServer, openai_completion};
use project::{Project, count, model};
use serde_json::{Value, json};

const KEY: &str = "test-key-123";
const ORDER_STATUS: &str = "order-status-table.yaml";
const PROBE: &str = "probes/reading-a-status-from-a-tool-s-table-output/order-status-table.yaml";
/// The canonical variant plus every `format` value: 9 variants.
const FORMAT_AXIS: [&str; 4] = ["--strategy", "one-at-a-time", "--axes", "format"];
const ANSWER_HEADING: &str = "## The assistant's answer to grade";

fn env() -> [(&'static str, &'static str); 1] {
    [("TEST_KEY", KEY)]
}

/// Whether the order table reached the graded model as markup (XML or an HTML table).
fn markup_table(req: &Value) -> bool {
    req["messages"].as_array().is_some_and(|ms| {
        ms.iter().any(|m| {
            m["role"] == "tool"
                && m["content"]
                    .as_str()
                    .is_some_and(|c| c.trim_start().starts_with('<'))
        })
    })
}

/// Whether the order table reached the graded model as XML (not an HTML table).
fn xml_table(req: &Value) -> bool {
    req["messages"].as_array().is_some_and(|ms| {
        ms.iter().any(|m| {
            m["role"] == "tool"
                && m["content"].as_str().is_some_and(|c| {
                    c.trim_start().starts_with('<') && !c.to_lowercase().contains("<table")
                })
        })
    })
}

/// The answer under review in a judge request.
fn judged_answer(req: &Value) -> String {
    let user = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    user.rsplit(ANSWER_HEADING).next().unwrap().to_string()
}

fn is_judge(req: &Value) -> bool {
    req["model"] == "judge-2024-01-01"
}

/// A project with the order-status probe whose checks are one judge rubric.
fn judge_project(server: &TestServer, with_judge: bool) -> Project {
    let url = format!("{}/v1", server.url());
    let mut models = model("gpt", "openai", &url, "max_retries = 1\ntimeout = 5");
    models.push_str(&model(
        "judge",
        "openai",
        &url,
        "max_retries = 1\ntimeout = 5\nprice_input = 1.0\nprice_output = 1.0",
    ));
    if with_judge {
        models.push_str("[judge]\nmodel = \"judge\"\nconcurrency = 4\n");
    }
    let p = Project::new(&models);
    p.templatize(ORDER_STATUS);
    let text = std::fs::read_to_string(p.root().join(PROBE)).unwrap();
    let start = text.find("\nchecks:\n").unwrap();
    let end = text.find("\naxes:\n").unwrap();
    let edited = format!(
        "{}\nchecks:\n- judge:\n    rubric: Says plainly that order A-10442 is delayed, never that it shipped.{}",
        &text[..start],
        &text[end..]
    );
    p.write(PROBE, &edited);
    p
}

fn model_reply(req: &Value) -> Reply {
    let text = if markup_table(req) {
        "Good news: order A-10442 has shipped."
    } else {
        "Order A-10442 is delayed; new dispatch date 2026-10-09."
    };
    Reply::json(200, openai_completion("gpt-2024-01-01", text))
}

/// A judge reply in prose with a fenced JSON verdict (parsed tolerantly), with its own usage.
fn judge_reply(req: &Value) -> Reply {
    let answer = judged_answer(req);
    let (verdict, reason) = if answer.contains("delayed") {
        ("pass", "JUDGE-OK: it says the order is delayed")
    } else {
        ("fail", "JUDGE-NO: it claims the order shipped")
    };
    let content = format!(
        "Here is my assessment.\n```json\n{}\n```",
        json!({"verdict": verdict, "reason": reason})
    );
    let mut body = openai_completion("judge-2024-01-01", &content);
    body["usage"] = json!({"prompt_tokens": 500, "completion_tokens": 40, "total_tokens": 540});
    Reply::json(200, body)
}

#[test]
fn judge_verdicts_grade_cases_store_reasons_and_come_from_the_cache_on_a_rerun() {
    let server = TestServer::start(|req, _| {
        let body = req.json();
        if is_judge(body) {
            judge_reply(body)
        } else {
            model_reply(body)
        }
    });
    let p = judge_project(&server, true);
    let out = p.sweep(&FORMAT_AXIS, &env()).success();
    let reqs = server.requests();
    let judge_calls = reqs.iter().filter(|r| is_judge(r.json())).count();
    assert_eq!(reqs.len() - judge_calls, 9, "one model call per variant");
    assert_eq!(judge_calls, 9, "one judge call per answer");
    // The judge model is not swept as a graded model, and its tokens are not the model's.
    let summary = out.summary();
    assert_eq!(summary.len(), 1, "{}", out.stdout);
    assert_eq!(summary["gpt"]["tokens in/out"], "99/63", "{}", out.stdout);
    assert!(
        out.stdout
            .contains("judge judge: 9 verdicts (0 cached, 9 requests)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("tokens in/out 4500/360"),
        "{}",
        out.stdout
    );

    let rows = p.export(None);
    assert_eq!(rows.len(), 9);
    let mut failed_xml = false;
    for r in &rows {
        let checks = r["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 1, "{r}");
        assert_eq!(checks[0]["check"], "judge");
        let says_delayed = r["output"].as_str().unwrap().contains("delayed");
        if says_delayed {
            assert_eq!(r["status"], "pass", "{r}");
            assert_eq!(checks[0]["passed"], true);
            assert_eq!(
                checks[0]["reason"],
                "JUDGE-OK: it says the order is delayed"
            );
        } else {
            assert_eq!(r["status"], "fail", "{r}");
            assert_eq!(checks[0]["passed"], false);
            assert_eq!(checks[0]["reason"], "JUDGE-NO: it claims the order shipped");
            failed_xml |= r["axes"]["format"] == "xml";
        }
    }
    assert!(failed_xml, "the XML variant fails: {rows:#?}");
    assert!(count(&rows, "gpt", "fail") >= 1 && count(&rows, "gpt", "pass") >= 1);

    // A second sweep: every answer and every verdict from the cache, the same statuses.
    let before = server.request_count();
    let again = p.sweep(&FORMAT_AXIS, &env()).success();
    assert_eq!(
        server.request_count(),
        before,
        "no model and no judge request"
    );
    assert!(
        again
            .stdout
            .contains("judge judge: 9 verdicts (9 cached, 0 requests)"),
        "{}",
        again.stdout
    );
    let rerun = p.export(None);
    let statuses = |rows: &[Value]| {
        let mut s: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r["variant"].to_string(), r["status"].to_string()))
            .collect();
        s.sort();
        s
    };
    assert_ne!(rerun[0]["run"], rows[0]["run"]);
    assert_eq!(statuses(&rerun), statuses(&rows));
    assert!(rerun.iter().all(|r| r["cached"] == true));
}

#[test]
fn a_judge_that_answers_500s_or_garbage_makes_errors_never_passes() {
    // Judging an answer that says "shipped": 500 forever; one that says "delayed": prose
    // without a verdict.
    let server = TestServer::start(|req, _| {
        let body = req.json();
        if !is_judge(body) {
            return model_reply(body);
        }
        if judged_answer(body).contains("shipped") {
            Reply::json(500, json!({"error": {"message": "judge overloaded"}}))
        } else {
            Reply::json(
                200,
                openai_completion("judge-2024-01-01", "I think this answer is quite good!"),
            )
        }
    });
    let p = judge_project(&server, true);
    // Every case is an error: the sweep says so and exits 1.
    let out = p.sweep(&FORMAT_AXIS, &env()).exits(1);
    assert!(out.stderr.contains("every case"), "{}", out.stderr);
    let rows = p.export(None);
    assert_eq!(rows.len(), 9);
    assert_eq!(count(&rows, "gpt", "error"), 9, "{rows:#?}");
    let mut shipped = 0;
    for r in &rows {
        let err = r["error"].as_str().unwrap();
        assert!(err.starts_with("judge: "), "{err}");
        assert_eq!(r["checks"], json!([]));
        if r["output"].as_str().unwrap().contains("shipped") {
            shipped += 1;
            assert!(err.contains("HTTP 500"), "{err}");
        } else {
            assert!(err.contains("no JSON object with a \"verdict\""), "{err}");
            assert!(err.contains("after 3 replies"), "{err}");
        }
    }
    assert!((1..9).contains(&shipped));
    // 500s: 1 + max_retries (1) attempts; garbage: 3 replies.
    let judge_calls = server
        .requests()
        .iter()
        .filter(|r| is_judge(r.json()))
        .count();
    assert_eq!(judge_calls, shipped * 2 + (9 - shipped) * 3);
}

#[test]
fn judge_checks_without_a_judge_table_are_refused_before_any_call() {
    let server = TestServer::start(|req, _| model_reply(req.json()));
    let p = judge_project(&server, false);
    let out = p.sweep(&FORMAT_AXIS, &env()).exits(2);
    assert!(
        out.stderr.contains("order-status-table.yaml"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("checks[0].judge"), "{}", out.stderr);
    assert!(out.stderr.contains("[judge]"), "{}", out.stderr);
    assert_eq!(server.request_count(), 0);
    assert!(!p.store_path().exists(), "nothing written");
    // A [judge] naming no configured model: exit 2 with the line.
    let url = format!("{}/v1", server.url());
    p.write_config(&format!(
        "{}[judge]\nmodel = \"nobody\"\n",
        model("gpt", "openai", &url, "")
    ));
    let out = p.sweep(&FORMAT_AXIS, &env()).exits(2);
    assert!(out.stderr.contains("judge.model"), "{}", out.stderr);
    assert!(out.stderr.contains("nobody"), "{}", out.stderr);
    assert_eq!(server.request_count(), 0);
}

#[test]
fn invariance_fails_exactly_the_variants_whose_answer_changes_and_brittleness_finds_the_axis() {
    // The answer changes only when the table arrives as XML.
    let server = TestServer::start(|req, _| {
        let text = if xml_table(req.json()) {
            "The total of order A-10442 is 351.00 EUR."
        } else {
            "The total of order A-10442 is 349.00 EUR."
        };
        Reply::json(200, openai_completion("gpt-2024-01-01", text))
    });
    let url = format!("{}/v1", server.url());
    let p = Project::new(&model("gpt", "openai", &url, "max_retries = 1"));
    p.templatize(ORDER_STATUS);
    let text = std::fs::read_to_string(p.root().join(PROBE)).unwrap();
    let start = text.find("\nchecks:\n").unwrap();
    let end = text.find("\naxes:\n").unwrap();
    let edited = format!("{}\nchecks: []{}", &text[..start], &text[end..]).replacen(
        "\ntier: hard\n",
        "\ntier: hard\ninvariant: true\n",
        1,
    );
    p.write(PROBE, &edited);
    // The edit keeps the variant ids: `invariant` is not part of the probe digest.
    p.sweep(&FORMAT_AXIS, &env()).success();
    let rows = p.export(None);
    assert_eq!(rows.len(), 9);
    for r in &rows {
        let checks = r["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 1, "{r}");
        assert_eq!(checks[0]["check"], "invariant");
        if r["axes"]["format"] == "xml" {
            assert_eq!(r["status"], "fail", "{r}");
            let reason = checks[0]["reason"].as_str().unwrap();
            assert!(
                reason.starts_with(
                    "answer differs from canonical: the total of order a-10442 is 351.00 eur"
                ),
                "{reason}"
            );
        } else {
            assert_eq!(r["status"], "pass", "{r}");
        }
    }
    assert_eq!(count(&rows, "gpt", "fail"), 1);

    let out = p.run(&["brittleness", "--format", "json"], &[]).success();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let result = &v["results"][0];
    assert_eq!(result["model"], "gpt");
    assert_eq!(result["canonical_passed"], true);
    assert_eq!(result["label"], "brittle", "{result:#}");
    assert_eq!(result["minimal_failing"], json!({"format": "xml"}));
    assert_eq!(result["axes"]["format"]["xml"]["passed"], 0);
    for (value, s) in result["axes"]["format"].as_object().unwrap() {
        if value != "xml" {
            assert_eq!(s["passed"], s["cases"], "format={value}: {s}");
        }
    }

    // Finalisation is idempotent: a resume of the complete run changes nothing.
    p.sweep(&["--resume", "--axes", "format"], &env()).success();
    let again = p.export(None);
    assert_eq!(again, rows);
}

#[test]
fn the_mock_judge_grades_offline() {
    let p = Project::new(
        "[models.prod]\nprovider = \"mock\"\nmodel = \"mock-perfect-1\"\n\n[models.bad]\nprovider = \"mock\"\nmodel = \"mock-hopeless-1\"\n\n[models.referee]\nprovider = \"mock\"\nmodel = \"mock-judge-1\"\n\n[judge]\nmodel = \"referee\"\n",
    );
    p.templatize(ORDER_STATUS);
    let text = std::fs::read_to_string(p.root().join(PROBE)).unwrap();
    let start = text.find("\nchecks:\n").unwrap();
    let end = text.find("\naxes:\n").unwrap();
    p.write(
        PROBE,
        &format!(
            "{}\nchecks:\n- judge:\n    rubric: Answers the question.{}",
            &text[..start],
            &text[end..]
        ),
    );
    let out = p.sweep(&FORMAT_AXIS, &[]).success();
    assert!(
        out.stdout.contains("(mock: simulated verdicts)"),
        "{}",
        out.stdout
    );
    let rows = p.export(None);
    assert_eq!(rows.len(), 18, "prod and bad, not the referee");
    assert_eq!(count(&rows, "prod", "pass"), 9);
    assert_eq!(count(&rows, "bad", "fail"), 9);
    assert!(rows.iter().all(|r| {
        r["checks"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("mock judge (simulated")
    }));
}

#[test]
fn only_invariant_probes_may_have_no_checks_and_the_new_keys_keep_variant_ids() {
    let p = Project::new("[models.m]\nprovider = \"mock\"\nmodel = \"mock-perfect-1\"\n");
    p.templatize(ORDER_STATUS);
    let ids = |p: &Project| -> Vec<String> {
        p.run(&["expand", "--strategy", "one-at-a-time"], &[])
            .success()
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["variant"].to_string())
            .collect()
    };
    let before = ids(&p);
    let text = std::fs::read_to_string(p.root().join(PROBE)).unwrap();
    let start = text.find("\nchecks:\n").unwrap();
    let end = text.find("\naxes:\n").unwrap();
    let no_checks = format!("{}\nchecks: []{}", &text[..start], &text[end..]);

    p.write(PROBE, &no_checks);
    let out = p.run(&["validate"], &[]).exits(2);
    assert!(out.stderr.contains("field `checks`"), "{}", out.stderr);
    assert!(out.stderr.contains("invariant: true"), "{}", out.stderr);

    let invariant = no_checks.replacen("\ntier: hard\n", "\ntier: hard\ninvariant: true\n", 1);
    p.write(
        PROBE,
        &invariant.replacen(
            "\ninvariant: true\n",
            "\ninvariant: true\nanswer_pattern: '(unclosed'\n",
            1,
        ),
    );
    let out = p.run(&["validate"], &[]).exits(2);
    assert!(out.stderr.contains("answer_pattern"), "{}", out.stderr);

    p.write(
        PROBE,
        &invariant.replacen(
            "\ninvariant: true\n",
            "\ninvariant: true\nanswer_pattern: 'status is (\\w+)'\n",
            1,
        ),
    );
    p.run(&["validate"], &[]).success();
    assert_eq!(
        ids(&p),
        before,
        "invariant and answer_pattern are not in the digest"
    );
}

/// The shipped config judges with the mock (the offline demo). Once a real model is swept, a
/// mock judge's verdicts are simulated grades of real answers: the sweep says so.
#[test]
fn a_mock_judge_of_real_models_is_a_loud_warning() {
    let server = TestServer::start(|req, _| model_reply(req.json()));
    let p = judge_project(&server, false);
    let mut models = model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "max_retries = 1\ntimeout = 5",
    );
    models.push_str(
        "[models.mj]\nprovider = \"mock\"\nmodel = \"mock-judge-1\"\n\n[judge]\nmodel = \"mj\"\n",
    );
    p.write_config(&models);
    let out = p.sweep(&FORMAT_AXIS, &env()).success();
    assert!(
        out.stderr.contains(
            "warning: [judge] model `mj` is the built-in mock: judge checks get simulated verdicts"
        ),
        "{}",
        out.stderr
    );
    // Mock graded models with the mock judge (the demo): no warning.
    p.write_config("[models.m]\nprovider = \"mock\"\nmodel = \"mock-steady-1\"\n\n[models.mj]\nprovider = \"mock\"\nmodel = \"mock-judge-1\"\n\n[judge]\nmodel = \"mj\"\n");
    let out = p.sweep(&FORMAT_AXIS, &env()).success();
    assert!(!out.stderr.contains("warning: [judge]"), "{}", out.stderr);
}
