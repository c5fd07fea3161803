//! `sweep --strategy adaptive` against a local server with planted causes: a single-axis cause
//! (XML tool output), a threshold cause (80 % of prompts past ~20,000 characters, i.e. every
//! 8k and 32k length value), a two-axis cause (the terse-expert persona only together with the
//! scoped-request phrasing), a flaky axis value (every call with the anxious-novice persona
//! fails at random with probability 0.3, drawn per call from the server's request counter, so
//! the same prompt sent twice can get both answers) and 5 % noise on every request. Every
//! planted single and threshold cause must be found, nothing else called a cause (the flaky
//! value included), in at most 5 % of the full product's calls.

use crate::support::{http_server, project};

use http_server::{Reply, TestServer};
use project::Project;
use serde_json::Value;

const RIGHT: &str = "Order A-10442 is delayed; the new dispatch date is 9 October.";
const WRONG: &str = "Good news: order A-10442 has shipped.";
const KEY: [(&str, &str); 1] = [("TEST_KEY", "k")];
const TERSE: &str = "Just the answer, skip the explanation.";
const SCOPED: &str = "just this one thing.";
/// Text of the anxious-novice persona: the flaky value.
const NOVICE: &str = "I'm really new to all of this";
/// Chance in percent that a call with the flaky value fails.
const FLAKY_PERCENT: u64 = 30;
/// The probe's four data axes: the 13 × 13 × 10 × 9 product the figures are quoted for (its
/// tools axis is left out: nothing here depends on the tool catalog).
const FOUR_AXES: &str = "persona,phrasing,length,format";

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

fn user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn chars(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str())
        .map(str::len)
        .sum()
}

/// A number in 0..100 fixed by the request and a salt: the same prompt always draws the same.
fn draw(body: &Value, salt: &str) -> u64 {
    let h = blake3::hash(format!("{salt}\0{body}").as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) % 100
}

/// A number in 0..100 drawn afresh for every call: seeded by the server's request counter and
/// the run's seed, not by the prompt.
fn draw_per_call(call: usize, seed: &str) -> u64 {
    let h = blake3::hash(format!("flaky\0{seed}\0{call}").as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) % 100
}

/// The planted causes; `flaky` the seed of the flaky value's draws, or `None` for no flaky
/// value.
fn planted(body: &Value, call: usize, flaky: Option<&str>) -> bool {
    let text = user_text(body);
    tool_output_is_xml(body)
        || (chars(body) > 20_000 && draw(body, "long") < 80)
        || (text.contains(TERSE) && text.contains(SCOPED))
        || flaky
            .is_some_and(|seed| text.contains(NOVICE) && draw_per_call(call, seed) < FLAKY_PERCENT)
        || draw(body, "noise") < 5
}

/// Three seeds: three different covering arrays and follow-up draws, the same findings.
#[test]
fn adaptive_finds_every_planted_cause_within_five_percent_of_the_full_product() {
    for seed in ["7", "2", "5"] {
        one_run(seed, false);
    }
}

/// The same with the flaky value: it is never called a cause and nothing else is flagged, in
/// at most 5 % of the calls. Its chance failures cost budget: in some runs the budget ends
/// with a length value undecided (the threshold then reads as separate length causes) or
/// before the two-axis cause is reached, so those two are printed, not asserted.
#[test]
fn adaptive_with_a_flaky_value_flags_nothing_false_within_five_percent() {
    for seed in ["7", "2", "5"] {
        one_run(seed, true);
    }
}

fn one_run(seed: &str, flaky: bool) {
    let server_seed = seed.to_string();
    let server = TestServer::start(move |req, call| {
        let answer = if planted(req.json(), call, flaky.then_some(server_seed.as_str())) {
            WRONG
        } else {
            RIGHT
        };
        Reply::json(200, http_server::openai_completion("gpt", answer))
    });
    let p = Project::new(&project::model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "",
    ));
    p.templatize("order-status-table.yaml");
    let full = p.planned(&["--strategy", "full", "--axes", FOUR_AXES]);
    assert_eq!(full, 13 * 13 * 10 * 9);
    let json = p.root().join("adaptive.json");
    let out = p
        .sweep(
            &[
                "--strategy",
                "adaptive",
                "--axes",
                FOUR_AXES,
                "--adaptive-json",
                json.to_str().unwrap(),
                "--seed",
                seed,
            ],
            &KEY,
        )
        .success();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let calls = server.request_count() as u64;
    eprintln!("{}", out.stdout);
    assert!(
        calls * 20 <= full,
        "{calls} calls of a {full}-case product:\n{}",
        out.stdout
    );
    assert_eq!(r["cases"].as_u64().unwrap(), calls);
    // The run holds every case it planned: complete, planned = the rounds' cases.
    let store = p.store();
    let run = store.run(r["run"].as_str().unwrap()).unwrap().unwrap();
    assert_eq!(run.planned, calls);
    assert_eq!(run.status, cliffprobe::store::RunStatus::Complete);
    assert_eq!(run.strategy, "adaptive");
    drop(store);
    let g = &r["groups"][0];
    let causes: Vec<&str> = g["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let expected = [
        "length from 8k on, any position (6 values)",
        "format=xml",
        "persona=terse-expert + phrasing=scoped-request together (each alone cleared)",
    ];
    let found = expected.iter().filter(|c| causes.contains(c)).count();
    let values = g["values"].as_array().unwrap();
    let flaky_value = values
        .iter()
        .find(|v| v["axis"] == "persona" && v["value"] == "anxious-novice")
        .unwrap();
    // The figures the README quotes (`cargo test --test it adaptive -- --nocapture`).
    eprintln!(
        "figures: flaky {flaky}, seed {seed}: {calls} calls of {full} ({:.2} %), {found} of 3 \
         causes found as expected; persona=anxious-novice {} ({} of {} clean variants failed, \
         flaky {}, {} repeats); {} repeats in all; causes: {causes:?}",
        calls as f64 * 100.0 / full as f64,
        flaky_value["decision"].as_str().unwrap(),
        flaky_value["clean_failed"],
        flaky_value["clean_variants"],
        flaky_value["flaky"],
        flaky_value["repeats"],
        g["repeats"],
    );
    let shown_flaky: Vec<String> = values
        .iter()
        .filter(|v| v["flaky"] == true)
        .map(|v| {
            format!(
                "{}={} ({} repeats)",
                v["axis"].as_str().unwrap(),
                v["value"].as_str().unwrap(),
                v["repeats"]
            )
        })
        .collect();
    let undecided: Vec<String> = values
        .iter()
        .filter(|v| v["decision"] == "undecided")
        .map(|v| {
            format!(
                "{}={} ({} of {})",
                v["axis"].as_str().unwrap(),
                v["value"].as_str().unwrap(),
                v["clean_failed"],
                v["clean_variants"]
            )
        })
        .collect();
    eprintln!(
        "flaky values: {shown_flaky:?}; undecided: {undecided:?}; canonical flaky: {}; ended: {}",
        g["canonical_flaky"], r["ended"]
    );
    // Samples disagree only where a call fails at random: with answers fixed by the prompt
    // (the 5 % noise, the planted causes) no value is shown flaky. The flaky value is shown
    // flaky in most runs (the figures line says), but not always: its one probed variant may
    // be a noise failure, which fails again, and single samples can clear it first.
    if flaky {
        // A value that shares a disagreeing variant with the flaky one may be shown flaky too
        // (which value explains the disagreement depends on arrival order); what must hold is
        // that it got repeats and is never called a cause (checked with every value below).
        for v in values.iter().filter(|v| v["flaky"] == true) {
            assert!(v["repeats"].as_u64().unwrap() > 0, "{}", out.stdout);
            assert_ne!(v["decision"], "cause", "{}", out.stdout);
        }
        assert_ne!(flaky_value["decision"], "cause", "{}", out.stdout);
    } else {
        assert!(shown_flaky.is_empty(), "{shown_flaky:?}\n{}", out.stdout);
        assert_eq!(g["canonical_flaky"], false);
    }
    if !flaky {
        assert_eq!(causes, expected, "{}", out.stdout);
        assert_eq!(g["thresholds"][0]["from"], "8k");
        assert!(
            out.stdout
                .contains("causes: length from 8k on, any position")
        );
    }
    // The two-axis cause is not split into two single causes; neither noise nor the flaky
    // value is flagged; XML is always found and no failing length value is ever cleared.
    for v in values {
        let name = format!(
            "{}={}",
            v["axis"].as_str().unwrap(),
            v["value"].as_str().unwrap()
        );
        let long = name.starts_with("length=8k") || name.starts_with("length=32k");
        let cause = name == "format=xml" || long;
        if flaky && long {
            assert_ne!(v["decision"], "cleared", "{name}: {v}\n{}", out.stdout);
        } else {
            assert_eq!(
                v["decision"] == "cause",
                cause,
                "{name}: {v}\n{}",
                out.stdout
            );
        }
    }
    for c in &causes {
        assert!(
            c.starts_with("length") || expected.contains(c),
            "false alarm {c}\n{}",
            out.stdout
        );
    }
    // Brittleness over the same run reports a one-axis minimal failing variant (the adaptive
    // rounds ran the witnesses), not a three-axis one from the covering array.
    let out = p.run(&["brittleness", "--format", "json"], &[]).success();
    let b: Value = serde_json::from_str(&out.stdout).unwrap();
    let minimal_failing = b["results"][0]["minimal_failing"].as_object().unwrap();
    assert_eq!(minimal_failing.len(), 1, "{b:#}");
}

/// A model that always answers right: nothing is a cause, every value is cleared, and the
/// rounds end by themselves within the default budget.
#[test]
fn adaptive_on_a_solid_model_clears_every_value_and_flags_nothing() {
    let server = TestServer::start(move |_, _| {
        Reply::json(200, http_server::openai_completion("gpt", RIGHT))
    });
    let p = Project::new(&project::model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "",
    ));
    p.templatize("order-status-table.yaml");
    let json = p.root().join("adaptive.json");
    let out = p
        .sweep(
            &[
                "--strategy",
                "adaptive",
                "--axes",
                "persona,phrasing,format",
                "--adaptive-json",
                json.to_str().unwrap(),
            ],
            &KEY,
        )
        .success();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    eprintln!("{}", out.stdout);
    assert_eq!(r["full_product"], 13 * 13 * 9);
    assert!(r["cases"].as_u64().unwrap() <= r["budget"].as_u64().unwrap());
    let g = &r["groups"][0];
    assert_eq!(g["canonical"], "pass");
    assert_eq!(g["causes"], serde_json::json!([]));
    assert!(out.stdout.contains("causes: none shown"), "{}", out.stdout);
    for v in g["values"].as_array().unwrap() {
        assert_ne!(v["decision"], "cause", "{v}");
    }
}

/// A budget that ends the rounds early leaves values undecided and says so; `--resume` with a
/// larger budget goes on from the stored evidence to the same findings.
#[test]
fn adaptive_stops_at_its_budget_and_resumes_from_the_stored_evidence() {
    // The resume is under test here, not flakiness: the planted causes without the flaky value.
    let server = TestServer::start(move |req, call| {
        let answer = if planted(req.json(), call, None) {
            WRONG
        } else {
            RIGHT
        };
        Reply::json(200, http_server::openai_completion("gpt", answer))
    });
    let p = Project::new(&project::model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "",
    ));
    p.templatize("order-status-table.yaml");
    let json = p.root().join("adaptive.json");
    let json = json.to_str().unwrap();
    let first = p
        .sweep(
            &[
                "--strategy",
                "adaptive",
                "--axes",
                FOUR_AXES,
                "--budget-requests",
                "250",
                "--adaptive-json",
                json,
            ],
            &KEY,
        )
        .success();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert!(r["cases"].as_u64().unwrap() <= 250, "{}", first.stdout);
    assert_eq!(server.request_count() as u64, r["cases"].as_u64().unwrap());
    assert!(
        r["ended"].as_str().unwrap().contains("budget"),
        "{}",
        first.stdout
    );
    let undecided = r["groups"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["decision"] == "undecided")
        .count();
    assert!(undecided > 0, "{}", first.stdout);
    let run = r["run"].as_str().unwrap().to_string();
    let second = p
        .sweep(
            &[
                "--resume",
                &run,
                "--budget-requests",
                "700",
                "--adaptive-json",
                json,
            ],
            &KEY,
        )
        .success();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(r["run"], run.as_str());
    assert_eq!(server.request_count() as u64, r["cases"].as_u64().unwrap());
    let causes = r["groups"][0]["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 3, "{}", second.stdout);
    assert_eq!(causes[0], "length from 8k on, any position (6 values)");
    assert_eq!(causes[1], "format=xml");
}
